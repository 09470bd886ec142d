import GLMCIR

extension NeuralOps {
    static let resizeOps: [OpDefinition] = []
}
