import GLMCIR

extension NeuralOps {
    static let recurrentOps: [OpDefinition] = []
}
