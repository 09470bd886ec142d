import GLMCIR
import GLMCOps

/// Folds Add and Mul by a per-channel constant into a preceding Conv or Gemm.
public struct FoldAffineIntoProducer: Pass {
    public static let name = "fold-affine"
    public static let summary = "Folds Add and Mul by a per-channel constant into a preceding Conv or Gemm."
    public init() {}

    public func run(on module: inout Module, context: PassContext) throws -> Bool {
        false // being written
    }
}
