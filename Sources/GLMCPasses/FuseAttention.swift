import GLMCIR
import GLMCOps

/// Recognizes scaled-dot-product attention: MatMul, scale, mask, Softmax (Dropout), MatMul.
public struct FuseAttention: Pass {
    public static let name = "fuse-attention"
    public static let summary = "Recognizes scaled-dot-product attention: MatMul, scale, mask, Softmax (Dropout), MatMul."
    public init() {}

    public func run(on module: inout Module, context: PassContext) throws -> Bool {
        false // being written
    }
}
