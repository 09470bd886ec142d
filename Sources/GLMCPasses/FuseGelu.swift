import GLMCIR
import GLMCOps

/// Recognizes GELU written out with Erf or Tanh.
public struct FuseGelu: Pass {
    public static let name = "fuse-gelu"
    public static let summary = "Recognizes GELU written out with Erf or Tanh."
    public init() {}

    public func run(on module: inout Module, context: PassContext) throws -> Bool {
        false // being written
    }
}
