import GLMCIR
import GLMCOps

/// Evaluates instructions whose operands are all constants with the interpreter (under a size cap).
public struct ConstantFold: Pass {
    public static let name = "constant-fold"
    public static let summary = "Evaluates instructions whose operands are all constants with the interpreter (under a size cap)."
    public init() {}

    public func run(on module: inout Module, context: PassContext) throws -> Bool {
        false // being written
    }
}
