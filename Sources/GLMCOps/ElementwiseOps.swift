import GLMCIR

/// Elementwise ops. (Being written.)
public enum ElementwiseOps {
    public static let all: [OpDefinition] = []
}
