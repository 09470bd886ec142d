import ArgumentParser
import Foundation
import GLMCFrontends
import GLMCInterpreter
import GLMCIR
import GLMCOps

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a model (or, later, a plan) on .npy inputs and write output_<i>.npy files.",
        discussion: """
        Inputs given as FILE.npy bind to the model's runtime inputs in order; NAME=FILE.npy binds by name.
        -O1..-O3 or --passes run the optimization pipeline first (default -O0: the imported graph).
        Outputs are written in graph-output order as output_0.npy, output_1.npy, ... only after the whole
        run succeeded.
        """)

    enum Engine: String, ExpressibleByArgument, CaseIterable { case interpreter, cpu, opencl, cuda }

    @Argument(help: "An ONNX model or glmc IR text.")
    var model: String

    @Option(help: "Which engine runs the model.")
    var engine: Engine = .interpreter

    @Option(name: .customLong("input"), help: "An input as [NAME=]FILE.npy; repeat for several.")
    var inputs: [String] = []

    @Option(help: "Folder for output_<i>.npy (created if missing).")
    var outputDir: String = "."

    @Option(name: .customLong("repeat"), help: "Timed runs (the outputs of the last are written).")
    var repeatCount: Int = 1

    @Option(help: "Untimed runs before the timed ones.")
    var warmup: Int = 0

    @Flag(help: "Print one JSON line with timing (median_ms, min_ms, p90_ms, runs).")
    var json = false

    @OptionGroup var passOptions: PassOptions

    func validate() throws {
        guard repeatCount >= 1 else { throw ValidationError("--repeat must be at least 1") }
        guard warmup >= 0 else { throw ValidationError("--warmup must not be negative") }
    }

    func run() throws {
        try reportingErrors {
            guard engine == .interpreter else {
                throw GLMCError("unsupported: engine '\(engine.rawValue)' is not built yet; use --engine interpreter")
            }
            var module = try ModelLoader.load(path: model).module
            try ModuleVerifier.verify(module)
            try passOptions.optimize(&module, defaultLevel: 0)
            let tensors = try bindInputs(module.main)

            for _ in 0 ..< warmup { _ = try Interpreter.run(module, inputs: tensors) }
            var times: [Double] = []
            var outputs: [Tensor] = []
            for _ in 0 ..< repeatCount {
                let start = nowMilliseconds()
                outputs = try Interpreter.run(module, inputs: tensors)
                times.append(nowMilliseconds() - start)
            }
            // Encode every output before writing any, so a failure (e.g. a bfloat16 output, which
            // .npy cannot hold) leaves no output files behind.
            let encoded = try outputs.enumerated().map { i, t in
                do { return try NPY.encode(t) } catch let e as GLMCError {
                    throw GLMCError("output \(i) ('\(module.main.outputNames[i])'): \(e.message)")
                }
            }
            do {
                try FileManager.default.createDirectory(atPath: outputDir, withIntermediateDirectories: true)
            } catch {
                throw GLMCError("cannot create the output folder '\(outputDir)': \(error.localizedDescription)")
            }
            var written: [String] = []
            for (i, bytes) in encoded.enumerated() {
                let path = (outputDir as NSString).appendingPathComponent("output_\(i).npy")
                do {
                    try NPY.write(encoded: bytes, to: path)
                } catch {
                    for w in written { unlink(w) }
                    throw error
                }
                written.append(path)
            }
            if json {
                let sorted = times.sorted()
                let median = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
                let p90 = sorted[min(sorted.count - 1, Int((Double(sorted.count) * 0.9).rounded(.up)) - 1)]
                print(String(format: "{\"engine\":\"%@\",\"median_ms\":%.4f,\"min_ms\":%.4f,\"p90_ms\":%.4f,\"runs\":%d,\"warmup\":%d}",
                             engine.rawValue, median, sorted[0], p90, sorted.count, warmup))
            }
        }
    }

    /// Reads the `--input` files and orders them like the function's arguments.
    func bindInputs(_ f: Function) throws -> [Tensor] {
        var bound = [Tensor?](repeating: nil, count: f.arguments.count)
        var next = 0
        for spec in inputs {
            let index: Int, path: String
            if let eq = spec.firstIndex(of: "="), !FileManager.default.fileExists(atPath: spec) {
                let name = String(spec[..<eq])
                path = String(spec[spec.index(after: eq)...])
                guard let i = f.arguments.firstIndex(where: { f.name(of: $0) == name }) else {
                    let known = f.arguments.map { "'\(f.name(of: $0))'" }.joined(separator: ", ")
                    throw GLMCError("--input \(spec): the model has no input named '\(name)' (inputs: \(known))")
                }
                index = i
            } else {
                while next < bound.count && bound[next] != nil { next += 1 }
                guard next < bound.count else { throw GLMCError("--input \(spec): the model has only \(f.arguments.count) inputs") }
                index = next
                path = spec
            }
            guard bound[index] == nil else { throw GLMCError("--input \(spec): input '\(f.name(of: f.arguments[index]))' is given twice") }
            bound[index] = try NPY.read(path: path)
        }
        return try bound.enumerated().map { i, t in
            guard let t else { throw GLMCError("missing --input for '\(f.name(of: f.arguments[i]))' (\(f.type(of: f.arguments[i])))") }
            return t
        }
    }
}
