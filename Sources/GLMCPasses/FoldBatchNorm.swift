import GLMCIR
import GLMCOps

/// Folds inference BatchNormalization into the weights of a preceding Conv, ConvTranspose or Gemm.
public struct FoldBatchNorm: Pass {
    public static let name = "fold-batch-norm"
    public static let summary = "Folds inference BatchNormalization into the weights of a preceding Conv, ConvTranspose or Gemm."
    public init() {}

    public func run(on module: inout Module, context: PassContext) throws -> Bool {
        false // being written
    }
}
