// Temporary stand-in; replaced by the parser branch.
public struct Parser {
    public static func parse(_ text: String, baseDirectory: String? = nil) throws -> Module {
        throw GLMCError("unsupported: reading IR text is not built yet")
    }
}
