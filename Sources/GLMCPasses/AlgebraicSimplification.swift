import GLMCIR
import GLMCOps

/// Removes no-op ops (Identity, inference Dropout, no-op Cast/Reshape/Transpose/Slice/Pad/Expand), merges Transpose and Reshape chains, and folds x*1, x+0, double negation and Where with a constant condition.
public struct AlgebraicSimplification: Pass {
    public static let name = "simplify"
    public static let summary = "Removes no-op ops (Identity, inference Dropout, no-op Cast/Reshape/Transpose/Slice/Pad/Expand), merges Transpose and Reshape chains, and folds x*1, x+0, double negation and Where with a constant condition."
    public init() {}

    public func run(on module: inout Module, context: PassContext) throws -> Bool {
        false // being written
    }
}
