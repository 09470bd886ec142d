import GLMCIR
import GLMCOps

/// Groups chains of elementwise, broadcast and cheap movement ops into one kernel, and into the epilogue of a producing Conv/MatMul or a reduction (TVM FuseOps style).
public struct FuseElementwise: Pass {
    public static let name = "fuse-elementwise"
    public static let summary = "Groups chains of elementwise, broadcast and cheap movement ops into one kernel, and into the epilogue of a producing Conv/MatMul or a reduction (TVM FuseOps style)."
    public init() {}

    public func run(on module: inout Module, context: PassContext) throws -> Bool {
        false // being written
    }
}
