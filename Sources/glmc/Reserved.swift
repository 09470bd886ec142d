import ArgumentParser
import GLMCIR

// Commands whose options are fixed now (users and scripts rely on them) and whose work arrives with
// the back ends: each refuses with a clear error until then.

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

