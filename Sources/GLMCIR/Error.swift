/// The one error type glmc's libraries throw for bad input. The message says what went wrong and
/// where (file offset, line:column, node or tensor name); the CLI prints it as one `error:` line.
public struct GLMCError: Error, CustomStringConvertible, Sendable, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
