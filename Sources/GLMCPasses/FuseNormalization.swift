import GLMCIR
import GLMCOps

/// Recognizes LayerNormalization and RMSNormalization written out as reductions and elementwise ops.
public struct FuseNormalization: Pass {
    public static let name = "fuse-normalization"
    public static let summary = "Recognizes LayerNormalization and RMSNormalization written out as reductions and elementwise ops."
    public init() {}

    public func run(on module: inout Module, context: PassContext) throws -> Bool {
        false // being written
    }
}
