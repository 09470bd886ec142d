import GLMCIR

extension NeuralOps {
    static let samplingOps: [OpDefinition] = []
}
