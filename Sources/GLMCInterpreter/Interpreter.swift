import GLMCIR
import GLMCOps
