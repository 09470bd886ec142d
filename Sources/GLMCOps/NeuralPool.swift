import GLMCIR

extension NeuralOps {
    static let poolOps: [OpDefinition] = []
}
