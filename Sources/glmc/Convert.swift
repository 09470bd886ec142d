import ArgumentParser
import Foundation
import GLMCCalibration
import GLMCCodegen
import GLMCFrontends
import GLMCIR
import GLMCOps
import GLMCPlan
import GLMCRuntime
import GLMCTorchScript

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compile a model into a plan (cpu, opencl, cuda) or optimized ONNX.",
        discussion: """
        --target onnx imports the model, verifies it, runs the optimization pipeline (-O2 unless -O or \
        --passes says otherwise) and writes the result as an ONNX model. Fusion groups whose body \
        occurs more than once become model-local functions (domain glmc.fused); the others are \
        expanded back into ONNX nodes.
        --target cpu runs the pipeline (-O3 unless -O or --passes says otherwise), needs static shapes \
        (bind symbolic dimensions with --input-shape, and the values of integer inputs that decide shapes \
        with --input-value; the plan then refuses other values), generates one C kernel per instruction or fusion \
        group, compiles them with $CC (or cc) into a shared object and writes a plan holding the code, \
        the kernel source, the weights and the memory plan (see Docs/Backends.md).
        --target opencl writes the same plan with OpenCL C kernels (built by the runtime when it loads \
        the plan); --target cuda with CUDA C kernels, compiled to PTX for --gpu-arch with NVRTC when it is \
        found ($GLMC_NVRTC or libnvrtc.so.12), else source only.
        """)

    enum Target: String, ExpressibleByArgument, CaseIterable { case cpu, opencl, cuda, onnx }
    enum Precision: String, ExpressibleByArgument, CaseIterable { case fp32, fp16, int8 }

    @Argument(help: "An ONNX model, glmc IR text, a TorchScript archive or TorchScript IR text.") var model: String
    @Option(help: "What to produce.") var target: Target
    @Option(name: .shortAndLong, help: "Output file.") var output: String
    @Option(name: .customLong("input-shape"), help: "NAME=1x3x224x224 to fix a symbolic input shape; repeatable.") var inputShapes: [String] = []
    @Option(name: .customLong("input-type"), help: "NAME=i64: element type of a TorchScript input (default f32); repeatable.") var inputTypes: [String] = []
    @Option(name: .customLong("input-value"), help: "NAME=FILE.npy to bind an input's value at convert time (cpu plans; for inputs that decide shapes, e.g. Slice bounds); repeatable.") var inputValues: [String] = []
    @Option(help: "Numeric precision of the plan: fp32; int8 (--target cpu, with --calibration-data); fp16 (GPU targets: GEMM and convolution weights stored as f16).") var precision: Precision = .fp32
    @Option(help: "Folder of calibration samples (or random:N): embeds an INT8 calibration table in the plan and writes <plan>.calib.cache.") var calibrationData: String?
    @Option(help: "Calibration method with --calibration-data: minmax, entropy or percentile[:P].") var calibrationMethod: String = "entropy"
    @Option(help: "Instruction set of a cpu plan's kernels: native (the best this host runs), generic, avx2 or avx512.")
    var cpu: CPUChoice = .native
    @Option(help: "GPU architecture of a cuda plan, sm_NN (default sm_80: Ampere; sm_90: Hopper): NVRTC writes PTX for compute_NN, which runs on that architecture and later ones.")
    var gpuArch: String?
    @OptionGroup var passOptions: PassOptions

    func run() throws {
        try reportingErrors {
            try checkGPUArch()
            if let planTarget = PlanTarget(rawValue: target.rawValue) { return try convertToPlan(planTarget) }
            guard precision == .fp32, calibrationData == nil, inputValues.isEmpty else {
                throw GLMCError("unsupported: --precision, --calibration-data and --input-value apply to plans, not to --target onnx")
            }
            let shapes = try inputShapes.map(InputShapes.parse)
            let result = try ModelLoader.load(path: model, allowUnsupported: true,
                                              torchScriptInputs: try InputShapes.torchScriptInputs(model: model, shapes: shapes, types: inputTypes))
            for u in result.unsupported {
                printWarning("unsupported op \(u.op) (\(u.count) node\(u.count == 1 ? "" : "s")): \(u.reason); written back unchanged")
            }
            var module = result.module
            try ModuleVerifier.verify(module)
            if !shapes.isEmpty {
                try InputShapes.apply(shapes, to: &module)
                try ModuleVerifier.verify(module)
            }
            try passOptions.optimize(&module, defaultLevel: 2)
            try ONNXWriter.write(module, to: output)
        }
    }
}

extension Convert {
    /// The architecture of a cuda plan when none is asked for.
    static let defaultGPUArch = "sm_80"

    /// `--gpu-arch` is for cuda plans only and has the form sm_NN.
    func checkGPUArch() throws {
        guard let gpuArch else { return }
        guard target == .cuda else { throw GLMCError("--gpu-arch applies to --target cuda, not --target \(target.rawValue)") }
        guard NVRTCCompiler.isValidArch(gpuArch) else {
            throw GLMCError("--gpu-arch \(gpuArch): expected sm_NN (for example sm_80, sm_90)")
        }
    }

    /// A cuda plan without PTX (NVRTC was not found) still runs where NVRTC is: say so.
    func warnIfSourceOnly(_ plan: PlanFile) {
        if plan.manifest.target == "cuda", plan.code["kernels.ptx"] == nil { printWarning(NVRTCCompiler.missingWarning) }
    }

    /// `--target cpu|opencl|cuda`: optimize, generate (and for cpu and cuda compile) the kernels, write the plan.
    func convertToPlan(_ planTarget: PlanTarget) throws {
        guard precision != .fp16 || planTarget.isGPU else {
            throw GLMCError("unsupported: --precision fp16 is for GPU plans (--target opencl or cuda); --target cpu builds fp32 and int8 plans")
        }
        guard precision != .int8 || planTarget == .cpu else {
            throw GLMCError("unsupported: --precision int8 builds CPU plans only (--target cpu)")
        }
        guard precision != .int8 || calibrationData != nil else {
            throw GLMCError("--precision int8 needs --calibration-data DIR (or random:N): the activation scales come from calibration")
        }
        // Checked before the (slow) build, so a bad option fails fast.
        let calibration = try calibrationData.map { (try CalibrationSamples.open($0), try CalibrationMethod.parse(calibrationMethod)) }
        var shapes = try inputShapes.map(InputShapes.parse)
        let values = try inputValues.map(InputValues.parse)
        let modelBytes: Data
        do { modelBytes = try Data(contentsOf: URL(fileURLWithPath: model), options: .mappedIfSafe) } catch {
            throw GLMCError("cannot read \(model): \(error.localizedDescription)")
        }
        var module = try ModelLoader.load(path: model,
                                          torchScriptInputs: try InputShapes.torchScriptInputs(model: model, shapes: shapes, types: inputTypes)).module
        try ModuleVerifier.verify(module)
        let bound = try InputValues.resolve(values, in: module.main, what: "--input-value")
        // A bound input with symbolic dimensions takes its value's shape.
        for (arg, value) in bound where !module.main.type(of: arg).shape.isStatic {
            let name = module.main.name(of: arg)
            if !shapes.contains(where: { $0.name == name }) { shapes.append((name, value.shape)) }
        }
        if !shapes.isEmpty {
            try InputShapes.apply(shapes, to: &module)
            try ModuleVerifier.verify(module)
        }
        let boundByName = InputValues.byName(bound, in: module.main)
        if !bound.isEmpty {
            InputValues.bind(bound, in: &module)
            try InputShapes.propagate(&module.main)
            try ModuleVerifier.verify(module)
        }
        let defaultLevel = 3
        try passOptions.optimize(&module, defaultLevel: defaultLevel)
        // Folding may have turned shape computations into constants: infer the types again.
        try InputShapes.propagate(&module.main)
        // Calibration observes the source model, so it does not depend on the plan; an int8 plan
        // is built from its scales.
        var table: CalibrationTable?
        if let (samples, method) = calibration {
            table = try CalibrationDriver.calibrate(model: model, samples: samples, method: method, inputShapes: inputShapes,
                                                    inputTypes: inputTypes, passOptions: passOptions, threads: 1).0
        }
        var options = CPUPlanOptions(sourceModelSha256: SHA256Digest.hex(SHA256Digest.hash(modelBytes)),
                                     glmcVersion: GLMC.configuration.version,
                                     pipeline: try passOptions.pipelineNames(defaultLevel: defaultLevel),
                                     instructionSet: cpu.instructionSet, boundInputs: boundByName,
                                     target: planTarget, gpuArch: gpuArch ?? Self.defaultGPUArch)
        options.fp16Weights = precision == .fp16
        if precision == .int8, let table {
            options.int8ActivationScales = Dictionary(table.entries.map { ($0.name, $0.scale) }, uniquingKeysWith: { a, _ in a })
        }
        var plan = try CPUPlanBuilder.build(module, options: options)
        var cache: String?
        if let table {
            cache = table.tensorRTCache()
            plan.calibration = cache
            plan.manifest.metadata["calibration_method"] = table.method.description
        }
        warnIfSourceOnly(plan)
        do { try PlanWriter.write(plan, to: output) } catch let e as PlanError { throw GLMCError(e.message) }
        if let cache { try CalibrationDriver.write(cache, to: output + ".calib.cache") }
    }
}

/// `--cpu`: the instruction set of a CPU plan, `native` resolved against this host.
enum CPUChoice: String, ExpressibleByArgument, CaseIterable {
    case native, generic, avx2, avx512

    var instructionSet: CPUInstructionSet {
        switch self {
        case .native: return CPUInstructionSet.best(for: HostCPU.features)
        case .generic: return .generic
        case .avx2: return .avx2
        case .avx512: return .avx512
        }
    }
}

/// `--input-shape NAME=1x3x224x224`: gives inputs static shapes and propagates them through the
/// module's types before the passes run, so shape-dependent rewrites see static shapes.
enum InputShapes {
    /// "NAME=1x3x224x224" → ("NAME", [1, 3, 224, 224]); "NAME=" is a scalar.
    static func parse(_ spec: String) throws -> (name: String, sizes: [Int]) {
        guard let eq = spec.lastIndex(of: "="), eq != spec.startIndex else {
            throw GLMCError("--input-shape '\(spec)': expected NAME=DxDx... (for example input=1x3x224x224)")
        }
        let name = String(spec[..<eq])
        let text = spec[spec.index(after: eq)...]
        if text.isEmpty { return (name, []) }
        var sizes: [Int] = []
        for part in text.split(separator: "x", omittingEmptySubsequences: false) {
            guard let v = Int(part), v >= 0 else {
                throw GLMCError("--input-shape '\(spec)': '\(part)' is not a dimension size (sizes are non-negative integers separated by 'x')")
            }
            sizes.append(v)
        }
        return (name, sizes)
    }

    /// TorchScript models take `--input-shape` (and `--input-type NAME=i64`) while they are imported:
    /// their size arithmetic is resolved then. Other formats take no `--input-type`.
    static func torchScriptInputs(model: String, shapes: [(name: String, sizes: [Int])], types: [String]) throws -> [String: TorchScriptInput] {
        let format = try ModelLoader.detectFormat(path: model)
        let isTorchScript = format == .torchScriptArchive || format == .torchScriptText
        guard isTorchScript else {
            if let first = types.first { throw GLMCError("--input-type \(first): only TorchScript models take --input-type (\(model) is \(format.rawValue))") }
            return [:]
        }
        var inputs: [String: TorchScriptInput] = [:]
        for (name, sizes) in shapes { inputs[name, default: TorchScriptInput()].sizes = sizes }
        for spec in types {
            guard let eq = spec.lastIndex(of: "="), eq != spec.startIndex, let dtype = DType(rawValue: String(spec[spec.index(after: eq)...])),
                  dtype != .string else {
                throw GLMCError("--input-type '\(spec)': expected NAME=TYPE with TYPE one of f32, f64, f16, i64, i32, bool, ...")
            }
            inputs[String(spec[..<eq]), default: TorchScriptInput()].dtype = dtype
        }
        return inputs
    }

    /// Fixes each named input's shape. A symbolic dimension takes the size everywhere its symbol
    /// appears (symbols name equal sizes); then result types are re-inferred in order.
    static func apply(_ specs: [(name: String, sizes: [Int])], to module: inout Module) throws {
        let f = module.main
        var symbols: [String: Int] = [:]
        var fixed: [ValueID: [Int]] = [:]
        for (name, sizes) in specs {
            guard let arg = f.arguments.first(where: { f.name(of: $0) == name }) else {
                let known = f.arguments.map { "'\(f.name(of: $0))'" }.joined(separator: ", ")
                throw GLMCError("--input-shape \(name): the model has no input named '\(name)' (inputs: \(known))")
            }
            guard fixed[arg] == nil else { throw GLMCError("--input-shape \(name): given twice") }
            let type = f.type(of: arg)
            let shapeText = sizes.map(String.init).joined(separator: "x")
            if let dims = type.shape.dims {
                guard dims.count == sizes.count else {
                    throw GLMCError("--input-shape \(name)=\(shapeText): input '\(name)' is \(type), rank \(dims.count), not \(sizes.count)")
                }
                for (d, size) in zip(dims, sizes) {
                    switch d {
                    case .known(let v) where v != size:
                        throw GLMCError("--input-shape \(name)=\(shapeText): input '\(name)' is \(type); a dimension of size \(v) cannot become \(size)")
                    case .symbol(let s):
                        if let bound = symbols[s], bound != size {
                            throw GLMCError("--input-shape \(name)=\(shapeText): ?\(s) is already \(bound) from another --input-shape")
                        }
                        symbols[s] = size
                    default: break
                    }
                }
            }
            fixed[arg] = sizes
        }
        substitute(symbols, in: &module.main)
        for (arg, sizes) in fixed { module.main.values[arg.index].type = TensorType(f.type(of: arg).dtype, static: sizes) }
        try propagate(&module.main)
    }

    /// Replaces the bound symbols by their sizes in every type of `f` and its nested regions.
    static func substitute(_ symbols: [String: Int], in f: inout Function) {
        guard !symbols.isEmpty else { return }
        for i in f.values.indices {
            guard let dims = f.values[i].type.shape.dims else { continue }
            f.values[i].type.shape = Shape(dims.map { d in
                if case .symbol(let s) = d, let v = symbols[s] { return .known(v) }
                return d
            })
        }
        editNestedFunctions(of: &f) { substitute(symbols, in: &$0) }
    }

    /// Re-infers result types in order, keeping whatever the old type knew beyond the inferred one.
    /// Ops glmc cannot infer (and everything downstream of them) keep their types.
    static func propagate(_ f: inout Function) throws {
        var constants: [ValueID: TensorData] = [:]
        var unchecked = Set<ValueID>()
        for i in f.body.indices {
            let inst = f.body[i]
            if let data = inst.constantValue { constants[inst.results[0]] = data; continue }
            // Nested regions first: their captures see the refined outer types.
            let outer = f
            try editNestedFunctions(of: &f.body[i]) { g in
                for c in g.captures {
                    let inner = g.type(of: c.inner), now = outer.type(of: c.outer)
                    if inner.isCompatible(with: now) { g.values[c.inner.index].type = now.refinedBy(inner) }
                }
                try propagate(&g)
            }
            guard let definition = OpRegistry.definition(of: inst.op), definition.schemaVersion(forOpset: inst.opset) != nil,
                  !inst.operands.contains(where: { $0.map { unchecked.contains($0) } ?? false }) else {
                unchecked.formUnion(inst.results)
                continue
            }
            let context = InferenceContext(op: inst.op, nodeName: inst.nodeName, opset: inst.opset,
                                           attributes: f.body[i].attributes, outputCount: inst.results.count,
                                           inputTypes: inst.operands.map { $0.map { f.type(of: $0) } },
                                           constantInputs: inst.operands.map { $0.flatMap { constants[$0] } })
            let inferred = try definition.infer(context)
            for (r, t) in zip(inst.results, inferred) {
                let old = f.type(of: r)
                guard t.isCompatible(with: old) else {
                    throw GLMCError("--input-shape: \(inst.displayName) now gives \(t) for '\(f.name(of: r))', which the model declares \(old)")
                }
                f.values[r.index].type = t.refinedBy(old)
            }
        }
    }

    static func editNestedFunctions(of f: inout Function, _ edit: (inout Function) throws -> Void) rethrows {
        for i in f.body.indices { try editNestedFunctions(of: &f.body[i], edit) }
    }

    static func editNestedFunctions(of inst: inout Instruction, _ edit: (inout Function) throws -> Void) rethrows {
        for key in inst.attributes.keys {
            switch inst.attributes[key]! {
            case .graph(var g):
                try edit(&g)
                inst.attributes[key] = .graph(g)
            case .graphs(var gs):
                for j in gs.indices { try edit(&gs[j]) }
                inst.attributes[key] = .graphs(gs)
            default: break
            }
        }
    }
}

extension TensorType {
    /// This type with the dimensions `other` knows better filled in (see `Shape.refined(by:)`).
    func refinedBy(_ other: TensorType) -> TensorType { TensorType(dtype, shape.refined(by: other.shape)) }
}
