import GLMCIR

/// Neural ops. (Being written.)
public enum NeuralOps {
    public static let all: [OpDefinition] = []
}
