import GLMCIR
