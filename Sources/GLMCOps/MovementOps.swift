import GLMCIR

/// Movement ops. (Being written.)
public enum MovementOps {
    public static let all: [OpDefinition] = []
}
