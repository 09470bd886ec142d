import GLMCIR

/// Control ops. (Being written.)
public enum ControlOps {
    public static let all: [OpDefinition] = []
}
