import ArgumentParser
import Foundation
import GLMCCodegen
import GLMCFrontends
import GLMCInterpreter
import GLMCIR
import GLMCOps
import GLMCPlan
import GLMCRuntime

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a model or a plan on .npy inputs and write output_<i>.npy files.",
        discussion: """
        A plan file (written by glmc convert; recognized by its magic GLMCPLAN) runs on the runtime of its \
        target: a cpu plan on the CPU, an opencl plan on an OpenCL device (--device N; default the first GPU, \
        else the first device), a cuda plan on a CUDA GPU (--device N; default 0); its inputs must have the dtypes and shapes it was compiled for. --engine cpu, \
        opencl or cuda (sm_80 PTX, which the driver compiles for the device) on a model builds such a plan first (-O3 unless told otherwise; symbolic dimensions from \
        the inputs; inputs whose values decide shapes, such as Slice bounds or Reshape shapes, bound to the given \
        values) and keeps it in the plan cache ($GLMC_CACHE_DIR, else $XDG_CACHE_HOME/glmc, else ~/.cache/glmc) \
        for the next run.
        Inputs given as FILE.npy bind to the model's runtime inputs in order; NAME=FILE.npy binds by name.
        -O1..-O3 or --passes run the optimization pipeline first (default -O0: the imported graph).
        Outputs are written in graph-output order as output_0.npy, output_1.npy, ... only after the whole
        run succeeded.
        """)

    enum Engine: String, ExpressibleByArgument, CaseIterable { case interpreter, cpu, opencl, cuda }

    @Argument(help: "An ONNX model, glmc IR text, or a plan.")
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

    @Option(help: "Threads a plan's steps are split across (plans only; default: all cores).")
    var threads: Int?

    @Option(help: "The device a GPU plan runs on: an OpenCL device index (default: the first GPU, else the first device) or a CUDA device ordinal (default 0).")
    var device: Int?

    @Flag(help: "With --engine cpu or opencl on a model: build the plan afresh and do not store it in the plan cache.")
    var noCache = false

    @Flag(help: "Print one JSON line with timing (median_ms, min_ms, p90_ms, runs).")
    var json = false

    @Flag(help: "Time each step of a cpu plan over the timed runs and print a table, slowest first, to stderr.")
    var profile = false

    @OptionGroup var passOptions: PassOptions

    func validate() throws {
        guard repeatCount >= 1 else { throw ValidationError("--repeat must be at least 1") }
        guard warmup >= 0 else { throw ValidationError("--warmup must not be negative") }
        guard (threads ?? 1) >= 1 else { throw ValidationError("--threads must be at least 1") }
        guard (device ?? 0) >= 0 else { throw ValidationError("--device must not be negative") }
    }

    func run() throws {
        try reportingErrors {
            if Self.isPlan(path: model) { return try runPlan() }
            switch engine {
            case .interpreter: break
            case .cpu, .opencl, .cuda: return try runModelAsPlan()
            }
            guard device == nil else { throw GLMCError("--device applies to opencl and cuda plans and --engine opencl") }
            guard !profile else { throw GLMCError("--profile applies to cpu plans (a plan file, or --engine cpu)") }
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
            try writeOutputs(outputs, names: module.main.outputNames)
            printTiming(times, engine: engine.rawValue)
        }
    }

    /// Encodes every output before writing any, so a failure (e.g. a bfloat16 output, which .npy
    /// cannot hold) leaves no output files behind.
    func writeOutputs(_ outputs: [Tensor], names: [String]) throws {
        let encoded = try outputs.enumerated().map { i, t in
            do { return try NPY.encode(t) } catch let e as GLMCError {
                throw GLMCError("output \(i) ('\((i < names.count ? names[i] : ""))'): \(e.message)")
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
    }

    func printTiming(_ times: [Double], engine: String) {
        if json {
            let sorted = times.sorted()
            let median = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
            let p90 = sorted[min(sorted.count - 1, Int((Double(sorted.count) * 0.9).rounded(.up)) - 1)]
            print(String(format: "{\"engine\":\"%@\",\"median_ms\":%.4f,\"min_ms\":%.4f,\"p90_ms\":%.4f,\"runs\":%d,\"warmup\":%d}",
                         engine, median, sorted[0], p90, sorted.count, warmup))
        }
    }

    /// The `--profile` table: each step's median over the timed runs, slowest first.
    func printProfile(_ milliseconds: [[Double]], steps: [PlanStep]) {
        let medians = milliseconds.map { runs -> Double in
            let sorted = runs.sorted()
            guard !sorted.isEmpty else { return 0 }
            return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        }
        let total = medians.reduce(0, +)
        func column(_ text: String, _ width: Int) -> String { text.padding(toLength: max(width, text.count), withPad: " ", startingAt: 0) }
        var lines = [" step  " + column("kernel", 24) + " " + column("kind", 28) + " median ms    share"]
        for i in medians.indices.sorted(by: { medians[$0] > medians[$1] }) {
            lines.append(String(format: "%5d  ", i) + column(steps[i].kernel, 24) + " " + column(steps[i].kind, 28)
                         + String(format: " %9.4f  %6.1f%%", medians[i], total > 0 ? 100 * medians[i] / total : 0))
        }
        lines.append(String(format: "steps: %d, sum of the step medians: %.4f ms over %d runs", medians.count, total, repeatCount))
        FileHandle.standardError.write(Data((lines.joined(separator: "\n") + "\n").utf8))
    }

    static func isPlan(path: String) -> Bool {
        guard let h = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? h.close() }
        let magic = (try? h.read(upToCount: 8)) ?? Data()
        return magic == Data("GLMCPLAN".utf8)
    }

    /// Runs a plan on the runtime of its target (timing covers plan execution only).
    func runPlan() throws {
        guard passOptions.level == nil, passOptions.passes == nil else {
            throw GLMCError("-O and --passes apply to models; a plan is already optimized")
        }
        let plan: PlanFile
        do { plan = try PlanReader.read(path: model) } catch let e as PlanError { throw GLMCError(e.message) }
        // The default engine (interpreter) means "not asked for": a plan runs on its own target.
        guard engine == .interpreter || engine.rawValue == plan.manifest.target else {
            throw GLMCError("--engine \(engine.rawValue) cannot run this plan: it is for target '\(plan.manifest.target)'")
        }
        let names = plan.manifest.inputs.map(\.name)
        let tensors = try bind(names: names) { i in
            let t = plan.manifest.inputs[i]
            return "\(t.dtype)[\(t.shape.map(String.init).joined(separator: ","))]"
        }
        try execute(plan, inputs: tensors)
    }

    /// `--engine cpu`, `opencl` or `cuda` on a model: optimizes it (-O3 unless told otherwise),
    /// fixes symbolic input dimensions from the given inputs, builds a plan for the engine's target
    /// in memory (or takes it from the plan cache) and runs it (timing covers plan execution only,
    /// not compilation).
    func runModelAsPlan() throws {
        let target = try planTarget()
        guard device == nil || target != .cpu else { throw GLMCError("--device applies to opencl and cuda plans and --engine opencl") }
        // A CUDA plan is built only where it can run.
        if target == .cuda, let why = CUDAExecutor.unavailableReason {
            throw GLMCError(why.hasPrefix("CUDA is not available") ? why : "CUDA is not available: \(why)")
        }
        let modelBytes: Data
        do { modelBytes = try Data(contentsOf: URL(fileURLWithPath: model), options: .mappedIfSafe) } catch {
            throw GLMCError("cannot read \(model): \(error.localizedDescription)")
        }
        var module = try ModelLoader.load(path: model).module
        try ModuleVerifier.verify(module)
        let f = module.main
        let tensors = try bindInputs(f)
        var specs: [(name: String, sizes: [Int])] = []
        for (a, t) in zip(f.arguments, tensors) where !f.type(of: a).shape.isStatic {
            specs.append((f.name(of: a), t.shape))
        }
        if !specs.isEmpty {
            try InputShapes.apply(specs, to: &module)
            try ModuleVerifier.verify(module)
        }
        // Inputs whose values decide shapes are bound to the given values.
        let given = Dictionary(uniqueKeysWithValues: zip(module.main.arguments, tensors))
        let bound = try InputValues.shapeDetermining(module, values: given)
        let boundByName = InputValues.byName(bound, in: module.main)
        if !bound.isEmpty {
            InputValues.bind(bound, in: &module)
            try InputShapes.propagate(&module.main)
            try ModuleVerifier.verify(module)
        }
        let modelSha256 = SHA256Digest.hex(SHA256Digest.hash(modelBytes))
        let pipeline = try passOptions.pipelineNames(defaultLevel: 3)
        let cache = noCache ? nil : PlanCache.standard()
        let reuse = !passOptions.observesPasses
        let instructionSet = CPUInstructionSet.best(for: HostCPU.features)
        let key = PlanCache.key(modelSha256: modelSha256, options: [
            "target=" + target.rawValue,
            "pipeline=" + pipeline.joined(separator: ","),
            "cpu=" + instructionSet.rawValue,
            "shapes=" + specs.map { "\($0.name)=\($0.sizes.map(String.init).joined(separator: "x"))" }.joined(separator: ";"),
            "values=" + boundByName.sorted { $0.key < $1.key }.map { name, value in
                "\(name):\(value.dtype.rawValue)=" + value.withRawBytes { $0.map { String(format: "%02x", $0) }.joined() }
            }.joined(separator: ";"),
        ])
        if reuse, let plan = cache?.lookup(key) {
            try execute(plan, inputs: tensors)
        } else {
            try passOptions.optimize(&module, defaultLevel: 3)
            // Folding may have turned shape computations into constants: infer the types again.
            try InputShapes.propagate(&module.main)
            let options = CPUPlanOptions(sourceModelSha256: modelSha256, glmcVersion: GLMC.configuration.version,
                                         pipeline: pipeline, instructionSet: instructionSet, boundInputs: boundByName,
                                         target: target)
            let plan = try CPUPlanBuilder.build(module, options: options)
            cache?.store(plan, key: key)
            try execute(plan, inputs: tensors)
        }
        if !boundByName.isEmpty {
            let names = boundByName.keys.sorted().map { "'\($0)'" }.joined(separator: ", ")
            FileHandle.standardError.write(Data("note: the plan was built for the given values of \(names) (they decide shapes)\n".utf8))
        }
    }

    /// The plan target of `--engine` on a model.
    func planTarget() throws -> PlanTarget {
        switch engine {
        case .cpu: return .cpu
        case .opencl: return .opencl
        case .cuda: return .cuda
        case .interpreter: throw GLMCError("unsupported: engine '\(engine.rawValue)' does not build plans")
        }
    }

    /// The executor of `plan`'s target. Cases are the targets with a runtime here.
    func executor(for plan: PlanFile) throws -> any PlanExecutor {
        let target = plan.manifest.target
        guard device == nil || target != "cpu" else { throw GLMCError("--device applies to opencl and cuda plans; this plan is for the cpu") }
        switch target {
        case "cpu": return try CPUExecutor(plan: plan, threads: threads ?? HostCPU.cores)
        case "opencl": return try OpenCLExecutor(plan: plan, device: device)
        case "cuda": return try CUDAExecutor(plan: plan, device: device ?? 0)
        default: throw GLMCError("unsupported: this plan is for target '\(target)', which has no runtime yet (plans for cpu, opencl and cuda run)")
        }
    }

    /// Runs `plan` on the runtime of its target with `tensors` (in the plan's input order) and
    /// writes the outputs. Timing: the executor's own measure of its steps where it has one (a GPU
    /// runtime: from the first enqueue to the end of the last step, with CUDA events or
    /// `clFinish`), else the whole `run` call.
    func execute(_ plan: PlanFile, inputs tensors: [Tensor]) throws {
        do {
            let executor = try executor(for: plan)
            var given: [String: HostTensor] = [:]
            for (input, t) in zip(plan.manifest.inputs, tensors) {
                if case .string(let strings) = t.storage {
                    given[input.name] = HostTensor(name: input.name, shape: t.shape, strings: strings)
                } else {
                    given[input.name] = HostTensor(name: input.name, dtype: t.dtype.rawValue, shape: t.shape,
                                                   bytes: t.tensorData.withRawBytes { Data($0) })
                }
            }
            for _ in 0 ..< warmup { _ = try executor.run(inputs: given) }
            let profiled = executor as? CPUExecutor
            if profile {
                guard let profiled else { throw GLMCError("--profile applies to cpu plans; this one is for target '\(plan.manifest.target)'") }
                profiled.profiling = true
            }
            var times: [Double] = []
            var results: [HostTensor] = []
            for _ in 0 ..< repeatCount {
                let start = nowMilliseconds()
                results = try executor.run(inputs: given)
                times.append(executor.lastStepsMilliseconds ?? nowMilliseconds() - start)
            }
            let outputs = try results.map { r -> Tensor in
                guard let dtype = DType(rawValue: r.dtype) else { throw GLMCError("output '\(r.name)' has unknown dtype \(r.dtype)") }
                if dtype == .string { return Tensor(shape: r.shape, storage: .string(r.strings ?? [])) }
                return try r.bytes.withUnsafeBytes { try Tensor(TensorData(type: TensorType(dtype, static: r.shape), copying: $0)) }
            }
            try writeOutputs(outputs, names: results.map(\.name))
            printTiming(times, engine: plan.manifest.target)
            if profile, let profiled { printProfile(profiled.stepMilliseconds, steps: plan.manifest.steps) }
        } catch let e as PlanError {
            throw GLMCError(e.message)
        } catch let e as RuntimeError {
            throw GLMCError(e.message)
        }
    }

    /// Reads the `--input` files and orders them like the function's arguments.
    func bindInputs(_ f: Function) throws -> [Tensor] {
        try bind(names: f.arguments.map { f.name(of: $0) }) { i in "\(f.type(of: f.arguments[i]))" }
    }

    /// Reads the `--input` files and orders them like `names` (FILE.npy in order, NAME=FILE.npy by name).
    func bind(names: [String], describe: (Int) -> String) throws -> [Tensor] {
        var bound = [Tensor?](repeating: nil, count: names.count)
        var next = 0
        for spec in inputs {
            let index: Int, path: String
            if let eq = spec.firstIndex(of: "="), !FileManager.default.fileExists(atPath: spec) {
                let name = String(spec[..<eq])
                path = String(spec[spec.index(after: eq)...])
                guard let i = names.firstIndex(of: name) else {
                    let known = names.map { "'\($0)'" }.joined(separator: ", ")
                    throw GLMCError("--input \(spec): the model has no input named '\(name)' (inputs: \(known))")
                }
                index = i
            } else {
                while next < bound.count && bound[next] != nil { next += 1 }
                guard next < bound.count else { throw GLMCError("--input \(spec): the model has only \(names.count) inputs") }
                index = next
                path = spec
            }
            guard bound[index] == nil else { throw GLMCError("--input \(spec): input '\(names[index])' is given twice") }
            bound[index] = try NPY.read(path: path)
        }
        return try bound.enumerated().map { i, t in
            guard let t else { throw GLMCError("missing --input for '\(names[i])' (\(describe(i)))") }
            return t
        }
    }
}
