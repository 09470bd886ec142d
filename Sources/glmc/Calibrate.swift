import ArgumentParser
import Foundation
import GLMCCalibration
import GLMCCodegen
import GLMCFrontends
import GLMCIR
import GLMCOps
import GLMCPlan

struct Calibrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compute an INT8 calibration table (TensorRT cache format).",
        discussion: """
        Runs the model over the samples through a CPU plan (-O3 unless -O or --passes says otherwise) \
        that also returns every activation of the source model, and writes one scale per float \
        runtime input and activation, by source tensor name, as a TensorRT calibration cache (and as \
        JSON with --json). --data DIR holds one sample per entry: FILE.npy (single-input models), \
        FILE.npz keyed by input name, or a folder of ONNX TensorProto .pb files; random:N draws N \
        seeded standard-normal samples. Methods: minmax, entropy (TensorRT's EntropyCalibration2), \
        percentile[:P] (default 99.99); see Docs/Calibration.md.
        """)

    @Argument(help: "An ONNX model or glmc IR text.") var model: String
    @Option(help: "Folder of samples, or random:N.") var data: String
    @Option(help: "minmax, entropy or percentile[:P].") var method: String = "entropy"
    @Option(name: .shortAndLong, help: "Output .cache file.") var output: String
    @Option(help: "Also write the table as JSON (per tensor min, max, amax, scale).") var json: String?
    @Option(name: .customLong("input-shape"), help: "NAME=1x3x224x224 to fix a symbolic input shape; repeatable (else the first sample's shape).")
    var inputShapes: [String] = []
    @Option(name: .customLong("input-type"), help: "NAME=i64: element type of a TorchScript input (default f32); repeatable.")
    var inputTypes: [String] = []
    @Option(help: "Samples per run, concatenated along the first axis (inputs need a symbolic first dimension).") var batch: Int = 1
    @Option(help: "Threads a plan's steps are split across.") var threads: Int = 1
    @OptionGroup var passOptions: PassOptions

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
    }

    func run() throws {
        try reportingErrors {
            let method = try CalibrationMethod.parse(self.method)
            let samples = try CalibrationSamples.open(data)
            let (table, timing, tensors) = try CalibrationDriver.calibrate(
                model: model, samples: samples, method: method, inputShapes: inputShapes, inputTypes: inputTypes,
                passOptions: passOptions, batch: batch, threads: threads)
            // Both files are produced before either is written.
            let cache = table.tensorRTCache()
            let jsonText = try json.map { _ in try table.json() }
            try CalibrationDriver.write(cache, to: output)
            if let json, let jsonText { try CalibrationDriver.write(jsonText, to: json) }
            print(String(format: "calibrated %d tensors (%@) over %d samples: ran them in %.2f s, %.1f samples/s (%d pass%@)",
                         tensors, method.description, samples.count, timing.seconds, timing.samplesPerSecond,
                         timing.passes, timing.passes == 1 ? "" : "es"))
        }
    }
}

/// Calibration as `glmc calibrate` and `glmc convert --calibration-data` run it.
enum CalibrationDriver {
    /// Loads the model, binds its input shapes (from `--input-shape`, else from the first sample;
    /// with `batch` > 1 the first dimension holds `batch` samples), builds the tapped plan and runs
    /// the samples through it. Returns the table, the timing and the number of observed tensors.
    static func calibrate(model: String, samples: CalibrationSamples, method: CalibrationMethod, inputShapes: [String],
                          inputTypes: [String] = [], passOptions: PassOptions, batch: Int = 1,
                          threads: Int) throws -> (CalibrationTable, Calibrator.Timing, Int) {
        if samples.isRandom {
            printWarning("calibrating on random samples (--data \(samplesSpec(samples))): real data calibrates better")
        }
        let modelBytes: Data
        do { modelBytes = try Data(contentsOf: URL(fileURLWithPath: model), options: .mappedIfSafe) } catch {
            throw GLMCError("cannot read \(model): \(error.localizedDescription)")
        }
        let specs = try inputShapes.map(InputShapes.parse)
        var module = try ModelLoader.load(path: model, torchScriptInputs: try InputShapes.torchScriptInputs(model: model, shapes: specs, types: inputTypes)).module
        try ModuleVerifier.verify(module)
        if !specs.isEmpty {
            try InputShapes.apply(specs, to: &module)
            try ModuleVerifier.verify(module)
        }
        let f = module.main
        if batch > 1 {
            for a in f.arguments {
                let t = f.type(of: a)
                guard let d = t.shape.dims?.first, case .symbol = d else {
                    throw GLMCError("--batch \(batch): input '\(f.name(of: a))' is \(t); batching needs a symbolic first dimension not fixed by --input-shape")
                }
            }
        }
        let modelInputs = f.arguments.map { CalibrationInput(name: f.name(of: $0), type: f.type(of: $0)) }
        // Read before the (slow) plan build: it binds symbolic dimensions, and a sample of the wrong
        // type or shape fails fast.
        let first = try samples.sample(0, inputs: modelInputs)
        let options = CPUPlanOptions(sourceModelSha256: SHA256Digest.hex(SHA256Digest.hash(modelBytes)),
                                     glmcVersion: GLMC.configuration.version,
                                     pipeline: try passOptions.pipelineNames(defaultLevel: 3))
        // The tapped plan for runs of `size` samples.
        func calibrator(_ size: Int) throws -> Calibrator {
            var m = module, bound: [(name: String, sizes: [Int])] = []
            for (a, t) in zip(f.arguments, first) where !f.type(of: a).shape.isStatic {
                var sizes = t.shape
                if batch > 1 { sizes[0] *= size }
                bound.append((f.name(of: a), sizes))
            }
            if !bound.isEmpty {
                try InputShapes.apply(bound, to: &m)
                try ModuleVerifier.verify(m)
            }
            return try Calibrator(m, options: options) { try passOptions.optimize(&$0, defaultLevel: 3) }
        }
        var calibrators: [Int: Calibrator] = [:]
        let bar = ProgressBar()
        let (table, timing) = try Calibrator.run(samples, method: method, batch: batch, threads: threads, plans: { size in
            if let c = calibrators[size] { return c }
            let c = try calibrator(size)
            calibrators[size] = c
            return c
        }) { pass, passes, done, total in
            bar?.update(pass: pass, passes: passes, done: done, total: total)
        }
        bar?.finish()
        return (table, timing, table.entries.count)
    }

    static func samplesSpec(_ samples: CalibrationSamples) -> String {
        if case .random(let n) = samples { return "random:\(n)" }
        return ""
    }

    static func write(_ text: String, to path: String) throws {
        do { try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw GLMCError("cannot write \(path): \(error.localizedDescription)")
        }
    }
}

/// A one-line progress bar on stderr, only when stderr is a terminal.
final class ProgressBar {
    init?() { guard isatty(2) != 0 else { return nil } }

    func update(pass: Int, passes: Int, done: Int, total: Int) {
        let width = 30, filled = total > 0 ? done * width / total : width
        let bar = String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled)
        let what = passes > 1 ? (pass == 1 ? "range" : "histogram") : "range"
        FileHandle.standardError.write(Data("\rcalibrating (\(what) pass \(pass)/\(passes)) [\(bar)] \(done)/\(total)".utf8))
    }

    func finish() { FileHandle.standardError.write(Data("\n".utf8)) }
}
