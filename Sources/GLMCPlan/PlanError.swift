/// Every failure of writing, reading or validating a plan. Hostile or damaged input produces one of
/// these, never a crash; `message` is a complete sentence fragment suitable for one `error:` line.
public struct PlanError: Error, CustomStringConvertible, Equatable, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
