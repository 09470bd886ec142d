import GLMCIR

extension NeuralOps {
    static let attentionOps: [OpDefinition] = []
}
