import GLMCIR
import GLMCOps

/// Replaces Shape/Size of statically known dimensions, and the Gather/Unsqueeze/Concat/Slice/Cast arithmetic on them, with constants.
public struct FoldShapeComputations: Pass {
    public static let name = "fold-shape-computations"
    public static let summary = "Replaces Shape/Size of statically known dimensions, and the Gather/Unsqueeze/Concat/Slice/Cast arithmetic on them, with constants."
    public init() {}

    public func run(on module: inout Module, context: PassContext) throws -> Bool {
        false // being written
    }
}
