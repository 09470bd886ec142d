import GLMCIR

/// Reduction ops. (Being written.)
public enum ReductionOps {
    public static let all: [OpDefinition] = []
}
