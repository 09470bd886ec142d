import GLMCIR
import GLMCOps

/// Merges instructions that compute the same op on the same operands with the same attributes.
public struct CommonSubexpressionElimination: Pass {
    public static let name = "cse"
    public static let summary = "Merges instructions that compute the same op on the same operands with the same attributes."
    public init() {}

    public func run(on module: inout Module, context: PassContext) throws -> Bool {
        false // being written
    }
}
