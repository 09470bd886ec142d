import GLMCIR
import GLMCOps

/// Fuses Conv, MatMul or Gemm with a following bias Add and activation into one kernel.
public struct FuseProducerActivation: Pass {
    public static let name = "fuse-conv-activation"
    public static let summary = "Fuses Conv, MatMul or Gemm with a following bias Add and activation into one kernel."
    public init() {}

    public func run(on module: inout Module, context: PassContext) throws -> Bool {
        false // being written
    }
}
