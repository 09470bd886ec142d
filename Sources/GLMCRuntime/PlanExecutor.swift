import GLMCPlan

/// What a caller (the CLI's `run`) needs of the executor of any target: run the plan on inputs by
/// name, and the time its steps took when the executor measures that itself.
public protocol PlanExecutor: AnyObject {
    var manifest: PlanManifest { get }
    /// Runs the plan on `inputs` (validated with `PlanInputs.validate`) and returns the outputs in
    /// the manifest's order.
    func run(inputs: [String: HostTensor]) throws -> [HostTensor]
    /// Milliseconds the last `run`'s steps took, as the executor measures them (a GPU executor:
    /// without the copies in and out); nil when the caller should time the whole `run` call.
    var lastStepsMilliseconds: Double? { get }
}

extension CPUExecutor: PlanExecutor {
    /// The CPU runtime's steps run on the calling thread: the caller times `run` itself.
    public var lastStepsMilliseconds: Double? { nil }
}

extension OpenCLExecutor: PlanExecutor {}
