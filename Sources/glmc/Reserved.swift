import ArgumentParser
import GLMCIR

// Commands whose options are fixed now (users and scripts rely on them) and whose work arrives with
// the back ends: each refuses with a clear error until then.

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Compile a model into a plan (cpu, opencl, cuda) or optimized ONNX.")

    enum Target: String, ExpressibleByArgument, CaseIterable { case cpu, opencl, cuda, onnx }
    enum Precision: String, ExpressibleByArgument, CaseIterable { case fp32, fp16, int8 }

    @Argument(help: "An ONNX model or glmc IR text.") var model: String
    @Option(help: "What to produce.") var target: Target
    @Option(name: .shortAndLong, help: "Output file.") var output: String
    @Option(name: .customLong("input-shape"), help: "NAME=1x3x224x224 to fix a symbolic input shape; repeatable.") var inputShapes: [String] = []
    @Option(help: "Numeric precision of the plan.") var precision: Precision = .fp32
    @Option(help: "Folder of calibration samples for int8.") var calibrationData: String?
    @OptionGroup var passOptions: PassOptions

    func run() throws {
        try reportingErrors {
            throw GLMCError("unsupported: glmc convert --target \(target.rawValue) is not built yet (it arrives with the back ends); use glmc dump or glmc run --engine interpreter")
        }
    }
}

struct Calibrate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Compute an INT8 calibration table (TensorRT cache format).")
    @Argument(help: "An ONNX model or glmc IR text.") var model: String
    @Option(help: "Folder of samples, or random:N.") var data: String
    @Option(help: "minmax, entropy or percentile[:P].") var method: String = "entropy"
    @Option(name: .shortAndLong, help: "Output .cache file.") var output: String

    func run() throws {
        try reportingErrors { throw GLMCError("unsupported: glmc calibrate is not built yet") }
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Summarize a plan file.")
    @Argument(help: "A plan file.") var plan: String
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        try reportingErrors { throw GLMCError("unsupported: glmc inspect is not built yet (plans arrive with the CPU back end)") }
    }
}
