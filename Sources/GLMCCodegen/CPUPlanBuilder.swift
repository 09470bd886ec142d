import Foundation
import GLMCIR
import GLMCInterpreter
import GLMCOps
import GLMCPasses
import GLMCPlan

/// What a CPU plan records about where it came from.
public struct CPUPlanOptions: Sendable {
    public var sourceModelSha256: String
    public var glmcVersion: String
    public var pipeline: [String]
    /// The C compiler (a path or a name on PATH); nil: `$CC`, else `cc`, `gcc`, `clang`.
    public var compiler: String?
    /// What the kernels are compiled for; the plan's `cpu_features` are what it requires.
    public var instructionSet: CPUInstructionSet
    /// Inputs whose values were bound at convert time (by name; the module reads constants in
    /// their place): the manifest records each value, and a runtime refuses any other.
    public var boundInputs: [String: TensorData]
    /// Set for an int8 plan: the activation scales of the calibration table (amax / 127) by source
    /// tensor name; Conv, Gemm and MatMul with constant weights and a scaled input are quantized
    /// (see `CPUPlanBuilderInt8.swift`).
    public var int8ActivationScales: [String: Float]?
    /// What the kernels are generated for: C compiled now (`cpu`), OpenCL C built by the runtime
    /// at load (`opencl`), or CUDA C compiled to PTX with NVRTC when it is found (`cuda`).
    public var target: PlanTarget
    /// The GPU architecture of a CUDA plan (`sm_80`, `sm_90`, ...).
    public var gpuArch: String
    /// `--precision fp16` (GPU targets): constant GEMM and convolution weights are stored as f16
    /// and widened to f32 as the tiled kernels load them (fp32 accumulation, fp32 activations).
    public var fp16Weights = false
    public init(sourceModelSha256: String, glmcVersion: String, pipeline: [String] = [], compiler: String? = nil,
                instructionSet: CPUInstructionSet = .generic, boundInputs: [String: TensorData] = [:],
                int8ActivationScales: [String: Float]? = nil, target: PlanTarget = .cpu, gpuArch: String = "sm_80") {
        self.sourceModelSha256 = sourceModelSha256; self.glmcVersion = glmcVersion
        self.pipeline = pipeline; self.compiler = compiler; self.instructionSet = instructionSet
        self.boundInputs = boundInputs; self.int8ActivationScales = int8ActivationScales
        self.target = target; self.gpuArch = gpuArch
    }
}

/// Builds a plan for `--target cpu` from an optimized module with static shapes: one arena (the
/// memory planner's intermediates, then each input and output in a slot of its own), the constants
/// as 64-byte aligned weights, and one step per instruction or fusion group, each calling a C
/// kernel with the uniform ABI `void k(void **args, long begin, long end)` (see
/// `CPUKernelLibrary`). All kernels form one C translation unit, compiled at build time into the
/// plan's `code/kernels.so`; the source goes into `source/kernels.c`.
public enum CPUPlanBuilder {
    /// The generated part of a plan, before compilation.
    public struct Generated: Sendable {
        public var manifest: PlanManifest
        public var weights: Data
        public var source: String
    }

    /// Generates, compiles and assembles the plan: a CPU plan carries the shared object, a CUDA
    /// plan the PTX (when NVRTC is found), an OpenCL plan its source only (built at load).
    public static func build(_ module: Module, options: CPUPlanOptions) throws -> PlanFile {
        let generated = try generate(module, options: options)
        var code: [String: Data] = [:]
        switch options.target {
        case .cpu: code["kernels.so"] = try compile(source: generated.source, compiler: options.compiler, instructionSet: options.instructionSet)
        case .opencl: break
        case .cuda: code["kernels.ptx"] = try NVRTCCompiler.ptx(source: generated.source, arch: options.gpuArch)
        }
        let plan = PlanFile(manifest: generated.manifest, sources: [options.target.sourceName: generated.source],
                            code: code, weights: generated.weights)
        try plan.validate()
        return plan
    }

    /// Generates the manifest, weights and kernel source (no compiler needed).
    public static func generate(_ module: Module, options: CPUPlanOptions) throws -> Generated {
        // A fusion group that cannot be compiled as one kernel is replaced by its body's
        // instructions (each then a step of its own, its intermediates planned like any other
        // value), and generation starts again.
        var function = module.main
        if options.target.isGPU, options.int8ActivationScales != nil {
            throw GLMCError("unsupported: --precision int8 builds CPU plans only (--target cpu)")
        }
        try refuseControlFlow(in: function, target: options.target)
            evaluateConstantValues(in: &function, opset: module.opsets[""] ?? module.opsets["ai.onnx"] ?? OpRegistry.newestOpset)
        let bounded = try boundValueShapedResults(in: &function, target: options.target)
        var g: Generator
        while true {
            g = try Generator(function: function, target: options.target, int8ActivationScales: options.int8ActivationScales)
            g.bounded = bounded
            g.fp16Weights = options.fp16Weights
            g.instructionSet = options.target == .cpu ? options.instructionSet : .generic
            do { try g.run(); break } catch let failure as FusedGroupFailure {
                guard inlineFusedGroup(at: failure.index, in: &function) else { throw failure.error }
            }
        }
        var source = g.source
        if g.usesVectorPrelude, source.hasPrefix(options.target.prelude) {
            source.insert(contentsOf: options.instructionSet.vectorPrelude, at: source.index(source.startIndex, offsetBy: options.target.prelude.count))
        }
        var inputs = g.inputs
        for i in inputs.indices {
            guard let value = options.boundInputs[inputs[i].name] else { continue }
            let t = try Tensor(value)
            // 16-bit floats are recorded as their bit patterns (the runtime does not convert halves).
            if t.dtype == .f16 || t.dtype == .bf16 {
                inputs[i].value = .integers(value.withRawBytes { raw in (0 ..< raw.count / 2).map { Int64(raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)) } })
            } else {
                inputs[i].value = t.dtype.isFloatingPoint ? .reals(t.doubles) : .integers(t.int64s)
            }
        }
        let gpu = options.target.isGPU
        var manifest = PlanManifest(target: options.target.rawValue, cpuFeatures: gpu ? [] : options.instructionSet.requiredFeatures,
                                    gpuArch: options.target == .cuda ? options.gpuArch : nil,
                                    sourceModelSha256: options.sourceModelSha256,
                                    glmcVersion: options.glmcVersion, pipeline: options.pipeline,
                                    inputs: inputs, outputs: g.outputs, arenaBytes: g.arenaBytes,
                                    buffers: g.buffers, steps: g.steps, weights: g.weightsBuilder.table,
                                    kernelSources: [PlanKernelSource(name: options.target.sourceName, language: options.target.language)],
                                    metadata: ["kernel_abi": gpu ? "NAME(arena, weights)" : "void k(void **args, long begin, long end)"])
        if options.fp16Weights {
            manifest.metadata["precision"] = "fp16"
            manifest.metadata["fp16_weights"] = String(g.fp16WeightCount)
        }
        if options.int8ActivationScales != nil {
            manifest.metadata["precision"] = "int8"
            manifest.metadata["int8_ops"] = String(g.int8Count)
        }
        return Generated(manifest: manifest, weights: g.weightsBuilder.blob, source: source)
    }

    /// Refuses the control flow the passes left (a plan runs straight-line code), saying what would
    /// let inline-constant-if and unroll-loops remove it, before the static-shape check blames a
    /// result of it.
    static func refuseControlFlow(in f: Function, target: PlanTarget) throws {
        for inst in f.body where inst.op.domain.isEmpty || inst.op.domain == "ai.onnx" {
            let why: String
            switch inst.op.type {
            case "If":
                why = "its condition is only known at run time; bind the inputs that decide it with --input-value NAME=FILE.npy, and -O1 or above inlines the branch taken"
            case "Loop":
                why = "-O3 unrolls a Loop only when its trip count is a constant (bind the inputs that decide it with --input-value NAME=FILE.npy) and its condition stays true, within \(UnrollLoops.instructionLimit) instructions"
            case "Scan":
                why = "-O3 unrolls a Scan only when its sequence length is static (--input-shape), within \(UnrollLoops.instructionLimit) instructions"
            default:
                continue
            }
            let node = inst.nodeName.isEmpty ? "" : " (node '\(inst.nodeName)')"
            throw GLMCError("unsupported: --target \(target.rawValue) cannot compile \(inst.op)\(node): \(why)")
        }
    }

    /// Evaluates, with the interpreter, every value computed from constants alone (e.g. a weight
    /// made by ConstantOfShape over a constant shape) that a runtime instruction reads, and replaces
    /// its defining instruction by `Constant`s, so it becomes a plan weight. Values the interpreter
    /// cannot compute (elided constants, ...) are left as they are (and refused later if read).
    static func evaluateConstantValues(in f: inout Function, opset: Int) {
        var computed = Set<ValueID>(), isConstant = [Bool](repeating: false, count: f.body.count)
        for (i, inst) in f.body.enumerated() {
            if inst.constantValue != nil { isConstant[i] = true; computed.formUnion(inst.results); continue }
            if inst.nestedFunctions.isEmpty, !inst.operands.isEmpty,
               inst.operands.allSatisfy({ $0.map { computed.contains($0) } ?? true }) {
                isConstant[i] = true
                computed.formUnion(inst.results)
            }
        }
        var needed: [ValueID] = [], neededSet = Set<ValueID>()
        for (i, inst) in f.body.enumerated() where !isConstant[i] {
            let read = inst.operands.compactMap { $0 } + inst.nestedFunctions.flatMap { $0.captures.map(\.outer) }
            for v in read where computed.contains(v) && !neededSet.contains(v) { neededSet.insert(v); needed.append(v) }
        }
        for v in f.outputs where computed.contains(v) && !neededSet.contains(v) { neededSet.insert(v); needed.append(v) }
        let defining = f.definingInstructions()
        needed = needed.filter { v in defining[v].map { f.body[$0].constantValue == nil } ?? false }
        guard !needed.isEmpty else { return }
        var g = f
        g.body = f.body.indices.filter { isConstant[$0] }.map { f.body[$0] }
        g.arguments = []
        g.captures = []
        g.outputs = needed
        g.outputNames = []
        guard let tensors = try? Interpreter.run(g, arguments: [], captured: []) else { return }
        var replacement: [Int: [Instruction]] = [:]
        for (v, t) in zip(needed, tensors) {
            let i = defining[v]!
            f.values[v.index].type = t.type
            replacement[i, default: []].append(Instruction(op: .constant, opset: opset, operands: [], results: [v],
                                                           attributes: ["value": .tensor(t.tensorData)], nodeName: f.body[i].nodeName))
        }
        var body: [Instruction] = []
        for (i, inst) in f.body.enumerated() {
            guard let r = replacement[i] else { body.append(inst); continue }
            body += r
            // Results of a multi-result instruction that no runtime instruction reads stay with it.
            if inst.results.contains(where: { !neededSet.contains($0) }) {
                var rest = inst
                rest.results = inst.results.map { neededSet.contains($0) ? f.addValue(f.type(of: $0)) : $0 }
                body.append(rest)
            }
        }
        f.body = body
    }

    /// A `glmc.Fused` group (body index `index`) the builder could not compile as one kernel.
    struct FusedGroupFailure: Error {
        var index: Int
        var error: Error
    }

    /// Replaces the `glmc.Fused` instruction at `index` by its body's instructions: the body's
    /// arguments become the operands, its outputs the instruction's results, its other values fresh
    /// values of `f`. False if the body cannot be flattened that simply.
    static func inlineFusedGroup(at index: Int, in f: inout Function) -> Bool {
        let inst = f.body[index]
        guard var members = Fusion.flattenedBody(of: inst, into: &f) else { return false }
        for i in members.indices where members[i].nodeName.isEmpty { members[i].nodeName = inst.nodeName }
        f.body.replaceSubrange(index ... index, with: members)
        return true
    }

    // MARK: Compiling

    /// The C compiler to use: `preferred`, else `$CC`, else the first of cc, gcc, clang on PATH.
    public static func findCompiler(_ preferred: String? = nil) -> String? {
        let env = ProcessInfo.processInfo.environment
        var candidates: [String] = []
        if let preferred, !preferred.isEmpty { candidates = [preferred] }
        else if let cc = env["CC"], !cc.isEmpty { candidates = [cc] }
        else { candidates = ["cc", "gcc", "clang"] }
        let path = (env["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map(String.init)
        for c in candidates {
            if c.contains("/") { if FileManager.default.isExecutableFile(atPath: c) { return c }; continue }
            for dir in path where FileManager.default.isExecutableFile(atPath: dir + "/" + c) { return dir + "/" + c }
        }
        return nil
    }

    /// glibc's vector math library (libmvec) where the linker finds it (x86-64 GNU/Linux): loops
    /// calling expf, erff, tanhf, ... then vectorize, and the plan's shared object needs libmvec.so.1
    /// (part of glibc) where it runs.
    static let vectorMathLibrary: String? = {
        #if os(Linux) && arch(x86_64)
        return ["/usr/lib/x86_64-linux-gnu/libmvec.so", "/lib/x86_64-linux-gnu/libmvec.so", "/usr/lib64/libmvec.so"]
            .first { FileManager.default.fileExists(atPath: $0) }
        #else
        return nil
        #endif
    }()

    /// Compiles one C translation unit into a shared object and returns its bytes. No
    /// `-ffast-math`: results keep IEEE semantics (NaN, infinities); FMAs in the GEMM kernels are
    /// explicit intrinsics.
    public static func compile(source: String, compiler: String? = nil, instructionSet: CPUInstructionSet = .generic) throws -> Data {
        guard let cc = findCompiler(compiler) else {
            let which = compiler ?? ProcessInfo.processInfo.environment["CC"] ?? "cc, gcc or clang"
            throw GLMCError("--target cpu needs a C compiler to build the kernels, and none was found (looked for \(which); set CC)")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("glmc-cpu-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let src = dir.appendingPathComponent("kernels.c"), out = dir.appendingPathComponent("kernels.so")
        try Data(source.utf8).write(to: src)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: cc)
        // The kernels never read errno, so math functions may be pure (and vectorized).
        let vectorMath = vectorMathLibrary != nil ? ["-DGLMC_LIBMVEC", "-lmvec"] : []
        process.arguments = ["-std=c99", "-O3", "-fno-math-errno", "-falign-loops=64", "-fPIC", "-shared"] + instructionSet.compilerFlags
            + ["-o", out.path, src.path] + vectorMath + ["-lm"]
        let errPipe = Pipe()
        process.standardError = errPipe
        process.standardOutput = errPipe
        do { try process.run() } catch {
            throw GLMCError("cannot run the C compiler \(cc): \(error.localizedDescription)")
        }
        let messages = errPipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let text = String(decoding: messages, as: UTF8.self).split(separator: "\n").prefix(20).joined(separator: "\n")
            throw GLMCError("the C compiler \(cc) failed on the generated kernels (status \(process.terminationStatus)):\n\(text)")
        }
        return try Data(contentsOf: out)
    }

    // MARK: Generation

    struct Generator {
        let f: Function
        var inputs: [PlanTensor] = []
        var outputs: [PlanTensor] = []
        var buffers: [PlanBuffer] = []
        var steps: [PlanStep] = []
        var arenaBytes = 0
        var weightsBuilder = PlanWeightsBuilder()
        /// What the kernels are generated for.
        let target: PlanTarget
        var source: String
        /// Arena buffer of each runtime value (arguments, intermediates, outputs).
        var bufferOf: [ValueID: Int] = [:]
        /// Weight names already laid out, by key (outer value or body constant).
        var weightNames: [String: String] = [:]
        var usedWeightNames = Set<String>()
        var constants: [ValueID: TensorData] = [:]
        var constantComputed = Set<ValueID>()
        /// What the blocked GEMM kernels are generated for.
        var instructionSet = CPUInstructionSet.generic
        /// Whether a kernel uses the instruction set's vector prelude (`glmc_vf`, ...).
        var usesVectorPrelude = false
        /// int8 plans (see `CPUPlanBuilderInt8.swift`).
        let int8ActivationScales: [String: Float]?
        var int8HelpersEmitted = false
        var stringPreludeEmitted = false
        var scratchBuffer: Int?
        /// `--precision fp16` on a GPU target, and how many weights were stored as f16.
        var fp16Weights = false
        var fp16WeightCount = 0
        var int8Count = 0
        /// Results of value-shaped ops with upper-bound shapes (`CPUPlanBuilderValueShaped.swift`),
        /// and the arena buffer of each owner's extent slot.
        var bounded: [ValueID: CPUPlanBuilder.BoundedValue] = [:]
        var extentSlots: [ValueID: Int] = [:]
        /// Concat results whose operands were placed inside them (`MemoryPlanner`): no step.
        var concatenatedInPlace: Set<ValueID> = []

        init(function: Function, target: PlanTarget = .cpu, int8ActivationScales: [String: Float]? = nil) throws {
            f = function
            self.target = target
            source = target.prelude
            self.int8ActivationScales = int8ActivationScales
            for (kind, values) in [("input", f.arguments), ("output", f.outputs)] {
                for v in values {
                    let t = f.type(of: v)
                    guard t.shape.staticSizes != nil else {
                        let symbolic = (t.shape.dims ?? []).compactMap { d -> String? in
                            if case .symbol(let s) = d { return "?\(s)" }
                            return nil
                        }
                        let what = symbolic.isEmpty ? "a dynamic shape" : "the symbolic dimension \(symbolic.joined(separator: ", "))"
                        throw GLMCError("--target \(target.rawValue) needs static shapes: \(kind) '\(f.name(of: v))' (\(t)) has \(what); bind it with --input-shape NAME=DxDx..., or the inputs whose values decide it with --input-value NAME=FILE.npy")
                    }
                    guard t.dtype.byteSize > 0 || (t.dtype == .string && target == .cpu) else {
                        let only = t.dtype == .string ? " (string tensors are supported by --target cpu only)" : ""
                        throw GLMCError("unsupported: --target \(target.rawValue) cannot take \(kind) '\(f.name(of: v))' of type \(t.dtype)\(only)")
                    }
                }
            }
        }

        mutating func run() throws {
            for inst in f.body {
                if let c = inst.constantValue { constants[inst.results[0]] = c; continue }
                if inst.nestedFunctions.isEmpty,
                   inst.operands.allSatisfy({ $0.map { constants[$0] != nil || constantComputed.contains($0) } ?? true }) {
                    constantComputed.formUnion(inst.results)
                }
            }
            // The arena: planned intermediates, then inputs and outputs in slots of their own.
            // In place Concats on the CPU only: a GPU's sub-buffers may need a coarser alignment.
            let memory = MemoryPlanner.plan(f, concatInPlace: target == .cpu)
            concatenatedInPlace = memory.concatenatedInPlace
            // Strings of static shape are left to the slots below (the planner sizes no strings).
            let stringSlots = memory.unplanned.filter { target == .cpu && f.type(of: $0).dtype == .string && f.type(of: $0).shape.staticSizes != nil }
            if let v = memory.unplanned.first(where: { !stringSlots.contains($0) }) {
                throw GLMCError("--target \(target.rawValue) needs static shapes: '\(f.name(of: v))' is \(f.type(of: v)); bind symbolic inputs with --input-shape")
            }
            for (v, offset) in memory.offsets.sorted(by: { $0.key.index < $1.key.index }) {
                bufferOf[v] = addBuffer(offset: offset, bytes: memory.sizes[v]!)
            }
            var end = memory.arenaBytes
            func slot(_ v: ValueID) -> Int {
                if let b = bufferOf[v] { return b }
                let bytes = byteCount(v)
                let offset = PlanLayout.align(end)
                end = offset + PlanLayout.align(bytes)
                let b = addBuffer(offset: offset, bytes: bytes)
                bufferOf[v] = b
                return b
            }
            for a in f.arguments {
                let t = f.type(of: a)
                inputs.append(PlanTensor(name: f.name(of: a), dtype: t.dtype.rawValue, shape: t.shape.staticSizes!, buffer: slot(a)))
            }
            // One i64 extent slot per value-shaped instruction with bounded results.
            for owner in Set(bounded.values.map(\.owner)).sorted(by: { $0.index < $1.index }) {
                let offset = PlanLayout.align(end)
                end = offset + PlanLayout.align(8)
                extentSlots[owner] = addBuffer(offset: offset, bytes: 8)
            }
            let argumentSet = Set(f.arguments)
            var copiedOutputs: [(value: ValueID, buffer: Int)] = []
            for (i, o) in f.outputs.enumerated() {
                let t = f.type(of: o)
                let name = i < f.outputNames.count ? f.outputNames[i] : f.name(of: o)
                var buffer: Int
                if argumentSet.contains(o) || constants[o] != nil || constantComputed.contains(o) {
                    // An input or a constant returned as an output is copied into a slot of its own.
                    let offset = PlanLayout.align(end)
                    end = offset + PlanLayout.align(byteCount(o))
                    buffer = addBuffer(offset: offset, bytes: byteCount(o))
                    copiedOutputs.append((o, buffer))
                } else {
                    buffer = slot(o)
                }
                let dynamicDims = bounded[o].map { b in Dictionary(uniqueKeysWithValues: b.dims.map { ($0, buffers[extentSlots[b.owner]!].offset) }) }
                var shape = t.shape.staticSizes!
                if let b = bounded[o], b.heapResident { for d in b.dims { shape[d] = PlanTensor.unbounded } }
                outputs.append(PlanTensor(name: name, dtype: t.dtype.rawValue, shape: shape, buffer: buffer, dynamicDims: dynamicDims))
            }
            for v in stringSlots { _ = slot(v) }
            arenaBytes = PlanLayout.align(end)

            for (index, inst) in f.body.enumerated() where inst.constantValue == nil {
                if inst.results.allSatisfy({ constantComputed.contains($0) }) { continue }
                if inst.op == FusedOps.fused {
                    do { try lower(inst) } catch { throw FusedGroupFailure(index: index, error: error) }
                } else {
                    try lower(inst)
                }
            }
            for (o, buffer) in copiedOutputs { try lowerOutputCopy(o, into: buffer) }
        }

        mutating func addBuffer(offset: Int, bytes: Int) -> Int {
            let id = buffers.count
            buffers.append(PlanBuffer(id: id, offset: offset, bytes: bytes))
            return id
        }

        func byteCount(_ v: ValueID) -> Int {
            // A heap-resident value's buffer is the pointer to its elements.
            if bounded[v]?.heapResident == true { return 8 }
            let t = f.type(of: v)
            return (t.shape.staticSizes ?? []).reduce(1, *) * Self.elementBytes(t.dtype)
        }

        func unsupported(_ inst: Instruction, _ why: String = "") -> GLMCError {
            let node = inst.nodeName.isEmpty ? "" : " (node '\(inst.nodeName)')"
            return GLMCError("unsupported: --target \(target.rawValue) cannot compile \(inst.op)\(why.isEmpty ? "" : " " + why) yet\(node)")
        }

        /// The plan argument for an outer value.
        mutating func argument(_ v: ValueID, _ inst: Instruction) throws -> PlanArgument {
            if let b = bufferOf[v] { return .buffer(b) }
            if let c = constants[v] { return try weight(key: "v\(v.index)", name: f.name(of: v), c, inst) }
            throw unsupported(inst, "with operand '\(f.name(of: v))' computed from constants only (run the constant folder: -O1 or more)")
        }

        mutating func weight(key: String, name: String, _ c: TensorData, _ inst: Instruction) throws -> PlanArgument {
            if let n = weightNames[key] { return .weight(n) }
            guard !c.isElided, c.dtype.byteSize > 0 else { throw unsupported(inst, "with an elided or string constant '\(name)'") }
            var unique = name.isEmpty ? "const" : name
            var k = 1
            while usedWeightNames.contains(unique) { unique = "\(name.isEmpty ? "const" : name)_\(k)"; k += 1 }
            usedWeightNames.insert(unique)
            weightNames[key] = unique
            let bytes = c.withRawBytes { Data($0) }
            weightsBuilder.append(name: unique, dtype: c.dtype.rawValue, shape: c.sizes, bytes: bytes)
            return .weight(unique)
        }

        /// The next step's kernel: the function the runtime calls (CPU) or the entry point (GPU).
        var stepName: String { "glmc_step\(steps.count)" }
        /// The name the next step's body function gets: the kernel itself on the CPU; on a GPU the
        /// entry point `stepName` calls it.
        var nextSymbol: String { target.isGPU ? stepName + "_body" : stepName }

        /// Work (roughly, multiply-adds) below which a slice of a step's range is not worth a thread.
        static let grainWork = 8192

        /// `work`: the rough cost of one unit of the step's range; the step's `grain` is how many
        /// units a thread should get at least. `scratchPerUnit`: bytes of `GLMC_SCRATCH` memory one
        /// unit (a GPU work-item) needs; on a GPU the step gets the scratch buffer as its last argument.
        mutating func addStep(kind: String, code: String, arguments: [PlanArgument], range: Int, work: Int = 1, scratchPerUnit: Int = 0) {
            var arguments = arguments, code = code, launch: [String: Int]
            if target.isGPU {
                if scratchPerUnit > 0 { arguments.append(.buffer(scratch(bytes: max(1, range) * scratchPerUnit))) }
                let weightOffsets = Dictionary(weightsBuilder.table.map { ($0.name, $0.offset) }, uniquingKeysWith: { a, _ in a })
                let addresses = arguments.map { a -> String in
                    switch a {
                    case .buffer(let id): return "arena + \(buffers[id].offset)"
                    case .weight(let name): return "weights + \(weightOffsets[name]!)"
                    case .stringHeap: preconditionFailure("GPU steps take no string heap (lowerStrings refuses strings there)")
                    }
                }
                code += "\n" + target.entryPoint(name: stepName, body: nextSymbol, addresses: addresses, range: range)
                launch = target.launch(range: range)
            } else {
                launch = ["range": range, "grain": max(1, Self.grainWork / max(1, work))]
            }
            steps.append(PlanStep(kernel: stepName, kind: kind, arguments: arguments, launch: launch))
            source += "\n" + code
        }

        /// The arena buffer for scratch memory (int8 rows, GPU per-work-item scratch): one, at the
        /// arena's end, shared by all steps (they run one after another), as large as the largest need.
        mutating func scratch(bytes: Int) -> Int {
            if let id = scratchBuffer {
                if buffers[id].bytes < bytes {
                    buffers[id].bytes = bytes
                    arenaBytes = max(arenaBytes, PlanLayout.align(buffers[id].offset + bytes))
                }
                return id
            }
            let id = addBuffer(offset: arenaBytes, bytes: bytes)
            arenaBytes = PlanLayout.align(arenaBytes + bytes)
            scratchBuffer = id
            return id
        }

        // MARK: Lowering one instruction

        mutating func lower(_ inst: Instruction) throws {
            let op = inst.op
            if op == FusedOps.fused {
                guard case .graph(let body)? = inst.attributes["body"] else { throw unsupported(inst, "without a body graph") }
                let members = body.body.filter { $0.constantValue == nil }
                if let first = members.first, first.op.domain.isEmpty, ["Gemm", "MatMul", "Conv"].contains(first.op.type) {
                    return try lowerProducer(inst, body: body)
                }
                return try lowerElementwise(inst)
            }
            if op.domain == "ai.onnx.preview", op.type == "FlexAttention" { return try lowerFlexAttention(inst) }
            if touchesStrings(inst), try lowerStrings(inst) { return }
            if op.domain == "ai.onnx.ml" || op.domain == "ai.onnx.preview.training" { return try lowerML(inst) }
            guard op.domain.isEmpty || op.domain == "ai.onnx" else { throw unsupported(inst) }
            switch op.type {
            case "Conv" where f.type(of: inst.results[0]).dtype != .f32, "ConvTranspose", "ConvInteger":
                return try lowerConvolution(inst)
            case "MatMul" where needsGeneralMatMul(inst), "MatMulInteger":
                return try lowerGeneralMatMul(inst)
            case "CausalConvWithState":
                return try lowerCausalConvolution(inst)
            case "MaxUnpool":
                return try lowerMaxUnpool(inst)
            case "DeformConv":
                return try lowerDeformConvolution(inst)
            case "Gemm", "MatMul", "Conv":
                return try lowerProducer(inst, body: nil)
            case "MaxPool", "AveragePool":
                return try lowerPool(inst)
            case "GlobalAveragePool":
                try requireF32(inst)
                let x = f.type(of: inst.operands[0]!).shape.staticSizes!
                guard x.count >= 3 else { throw unsupported(inst, "of rank \(x.count)") }
                let planes = x[0] * x[1], size = x.dropFirst(2).reduce(1, *)
                let args = [try argument(inst.operands[0]!, inst), .buffer(bufferOf[inst.results[0]]!)]
                addStep(kind: "global_average_pool", code: CPUKernelLibrary.globalAveragePool(name: nextSymbol, planes: planes, size: size),
                        arguments: args, range: planes, work: size)
            case "Reshape", "Flatten", "Identity", "Squeeze", "Unsqueeze", "BitCast", "OptionalGetElement":
                guard inst.results.count == 1, let x = inst.operands.first ?? nil else { throw unsupported(inst) }
                let bytes = byteCount(inst.results[0])
                guard byteCount(x) == bytes else { throw unsupported(inst, "that changes the byte count") }
                let args = [try argument(x, inst), .buffer(bufferOf[inst.results[0]]!)]
                addStep(kind: "copy", code: CPUKernelLibrary.copy(name: nextSymbol, bytes: bytes), arguments: args, range: bytes, work: 1)
            case let t where Self.reductionOps.contains(t):
                return try lowerReduction(inst)
            case let t where Self.attentionOps.contains(t):
                return try lowerAttentionFamily(inst)
            case let t where Self.moreOps.contains(t):
                return try lowerMore(inst)
            case let t where Self.quantizeOps.contains(t):
                return try lowerQuantize(inst)
            case _ where isInterpolatingResize(inst):
                return try lowerInterpolatingResize(inst)
            case let t where Self.recurrentOps.contains(t):
                return try lowerRecurrent(inst)
            case "GridSample":
                return try lowerGridSample(inst)
            case "AffineGrid":
                return try lowerAffineGrid(inst)
            case "RoiAlign":
                return try lowerRoiAlign(inst)
            case let t where Self.signalOps.contains(t):
                return try lowerSignal(inst)
            case "Einsum":
                return try lowerEinsum(inst)
            case let t where Self.mlOps.contains(t):
                return try lowerML(inst)
            case let t where Self.lastSmallOps.contains(t):
                return try lowerLastSmall(inst)
            case let t where Self.movementOps.contains(t):
                return try lowerMovement(inst)
            default:
                guard ElementwiseLowering.supportedOps.contains(op.type) else { throw unsupported(inst) }
                try lowerElementwise(inst)
            }
        }

        func requireF32(_ inst: Instruction) throws {
            for case let v? in inst.operands + inst.results.map(Optional.some) where f.type(of: v).dtype != .f32 {
                throw unsupported(inst, "on \(f.type(of: v).dtype) tensors")
            }
        }

        /// An elementwise group or instruction: `ElementwiseLowering`, rendered as C and wrapped
        /// into the plan's ABI.
        mutating func lowerElementwise(_ inst: Instruction) throws {
            let kernel: Kernel
            do { kernel = try ElementwiseLowering.lower(inst, in: f) } catch let e as GLMCError {
                let node = inst.nodeName.isEmpty ? "" : " (node '\(inst.nodeName)')"
                throw GLMCError("unsupported: --target \(target.rawValue) cannot compile \(inst.op)\(node) yet: \(e.message)")
            }
            // The kernel's buffers: its arguments (the fused body's arguments in order; or the
            // operands except one-element constants, each once), then its results.
            var args: [PlanArgument] = []
            if inst.op == FusedOps.fused {
                for case let v? in inst.operands { args.append(try argument(v, inst)) }
            } else {
                var seen = Set<ValueID>()
                for case let v? in inst.operands where !seen.contains(v) {
                    seen.insert(v)
                    if let c = constants[v], ElementwiseLowering.inlinesConstant(c) { continue }
                    args.append(try argument(v, inst))
                }
            }
            for r in inst.results {
                guard let b = bufferOf[r] else { throw unsupported(inst, "whose result '\(f.name(of: r))' has no buffer") }
                args.append(.buffer(b))
            }
            guard args.count == kernel.buffers.count else {
                throw unsupported(inst, "(its kernel takes \(kernel.buffers.count) buffers, the step has \(args.count))")
            }
            addElementwiseStep(kernel, arguments: args)
        }

        /// A step running an elementwise `kernel` (rendered in the target's dialect, wrapped into
        /// the plan's ABI) on `arguments`, one per kernel buffer.
        mutating func addElementwiseStep(_ kernel: Kernel, arguments args: [PlanArgument]) {
            var kernel = kernel
            let symbol = nextSymbol
            kernel.name = stepName + "_elementwise"
            let renderer = Renderer(dialect: target.bodyDialect)
            var code = renderer.render(kernel)
            let params = kernel.buffers.enumerated().map { "(\(renderer.parameterType(of: $1)))args[\($0)]" } + ["begin", "end"]
            code += "void \(symbol)(GLMC_GLOBAL void **args, long begin, long end) { \(kernel.name)(\(params.joined(separator: ", "))); }\n"
            addStep(kind: "elementwise", code: code, arguments: args, range: kernel.count, work: 2)
        }

        /// Gemm, MatMul or Conv, alone or as the head of a fusion group whose other members form
        /// an elementwise epilogue on its result (Relu, LeakyRelu, Clip, Sigmoid, Tanh; after a
        /// MatMul, an Add of a bias first).
        mutating func lowerProducer(_ inst: Instruction, body: Function?) throws {
            // Resolution of the producer's (and epilogue's) values to plan arguments.
            let g = body ?? f
            var bodyConstants: [ValueID: TensorData] = [:]
            var members: [Instruction] = [inst]
            if let body {
                members = []
                for m in body.body {
                    if let c = m.constantValue { bodyConstants[m.results[0]] = c } else { members.append(m) }
                }
            }
            func outerValue(_ v: ValueID) -> ValueID? {
                guard let body else { return v }
                guard let j = body.arguments.firstIndex(of: v) else { return nil }
                return inst.operands[j]
            }
            func constant(_ v: ValueID) -> TensorData? {
                if let c = bodyConstants[v] { return c }
                return outerValue(v).flatMap { constants[$0] }
            }
            func resolve(_ v: ValueID) throws -> PlanArgument {
                if let c = bodyConstants[v] { return try weight(key: "\(g.name)#\(v.index)", name: g.name(of: v), c, inst) }
                guard let o = outerValue(v) else { throw unsupported(inst, "with a captured value") }
                return try argument(o, inst)
            }
            func scalar(_ v: ValueID?) -> Float? {
                guard let v, let c = constant(v), c.elementCount == 1, c.dtype == .f32 else { return nil }
                return c.elements(as: Float.self)[0]
            }
            let producer = members[0]
            for m in members {
                for case let v? in m.operands + m.results.map(Optional.some) where g.type(of: v).dtype != .f32 {
                    throw unsupported(inst, "on \(g.type(of: v).dtype) tensors")
                }
            }
            // The epilogue.
            var current = producer.results[0]
            var epilogue: [CPUKernelLibrary.Epilogue] = []
            var extraBias: ValueID?
            for (n, m) in members.dropFirst().enumerated() {
                guard m.op.domain.isEmpty, m.operands.first == current, m.results.count == 1 else {
                    throw unsupported(inst, "group '\(g.name)' (member \(m.op) is not an elementwise epilogue of \(producer.op))")
                }
                switch m.op.type {
                case "Relu": epilogue.append(.relu)
                case "Sigmoid": epilogue.append(.sigmoid)
                case "Tanh": epilogue.append(.tanh)
                case "LeakyRelu":
                    var alpha: Float = 0.01
                    if case .float(let a)? = m.attributes["alpha"] { alpha = a }
                    epilogue.append(.leakyRelu(alpha: alpha))
                case "Clip":
                    var lo = -Float.infinity, hi = Float.infinity
                    // Bounds are attributes before opset 11 and operands from then on (as in GLMCOps).
                    if m.opset < 11, case .float(let a)? = m.attributes["min"] { lo = a }
                    if m.opset < 11, case .float(let a)? = m.attributes["max"] { hi = a }
                    if m.opset >= 11, m.operands.count > 1, let v = m.operands[1] { guard let s = scalar(v) else { throw unsupported(inst, "with a non-constant Clip bound") }; lo = s }
                    if m.opset >= 11, m.operands.count > 2, let v = m.operands[2] { guard let s = scalar(v) else { throw unsupported(inst, "with a non-constant Clip bound") }; hi = s }
                    epilogue.append(.clip(min: lo, max: hi))
                case "Add" where n == 0 && producer.op.type == "MatMul" && m.operands.count == 2 && m.operands[1] != nil:
                    extraBias = m.operands[1]
                default:
                    throw unsupported(inst, "group '\(g.name)' (member \(m.op) is not an elementwise epilogue of \(producer.op))")
                }
                current = m.results[0]
            }
            guard body == nil || body!.outputs == [current] else {
                throw unsupported(inst, "group '\(g.name)' with more than its final result as output")
            }
            let y = inst.results[0]
            guard let yBuffer = bufferOf[y] else { throw unsupported(inst, "whose result has no buffer") }
            let ySizes = f.type(of: y).shape.staticSizes!
            let symbol = nextSymbol
            let attrs = producer.attributes
            func int(_ name: String, _ d: Int) -> Int { if case .int(let v)? = attrs[name] { return v }; return d }
            func float(_ name: String, _ d: Float) -> Float { if case .float(let v)? = attrs[name] { return v }; return d }
            /// The weight key of a constant operand's repacked form.
            func packedKey(_ v: ValueID, _ suffix: String) -> String {
                (bodyConstants[v] != nil ? "\(g.name)#\(v.index)" : "v\(outerValue(v)!.index)") + suffix
            }
            /// A weight operand of a tiled GPU step: stored as f16 under `--precision fp16`.
            func tiledOperand(_ name: String, _ v: ValueID) throws -> TiledOperand {
                guard fp16Weights, let cw = constant(v), cw.dtype == .f32, !cw.isElided else { return TiledOperand(name: name, argument: try resolve(v)) }
                fp16WeightCount += 1
                let halves = cw.elements(as: Float.self).map(floatToHalf)
                return TiledOperand(name: name, argument: try weight(key: packedKey(v, "#f16"), name: g.name(of: v) + ".f16",
                                                                     TensorData(type: TensorType(.f16, static: cw.sizes), elements: halves), inst),
                                    half: true)
            }
            if int8ActivationScales != nil {
                let biasOperand = producer.op.type == "MatMul" ? extraBias : (producer.operands.count > 2 ? producer.operands[2] : nil)
                let isGemm = producer.op.type == "Gemm"
                if try lowerInt8(producer, in: g, input: producer.operands[0].flatMap(outerValue),
                                 weights: producer.operands.count > 1 ? producer.operands[1].flatMap(constant) : nil,
                                 bias: biasOperand.map { constant($0) }, alpha: isGemm ? float("alpha", 1) : 1,
                                 beta: isGemm ? float("beta", 1) : 1, epilogue: epilogue, output: yBuffer) { return }
            }

            switch producer.op.type {
            case "Gemm", "MatMul":
                let isGemm = producer.op.type == "Gemm"
                guard let a = producer.operands[0], let b = producer.operands[1] else { throw unsupported(inst) }
                let aS = g.type(of: a).shape.staticSizes!, bS = g.type(of: b).shape.staticSizes!
                let kind = epilogue.isEmpty ? producer.op.type.lowercased() : producer.op.type.lowercased() + "_epilogue"
                if !isGemm, aS.count > 2, bS.count > 2 {
                    // Batched: [..., M, K] x [..., K, N] with equal batch dims.
                    guard extraBias == nil else { throw unsupported(inst, "batched with a bias") }
                    let m = aS[aS.count - 2], k = aS[aS.count - 1], n = bS[bS.count - 1]
                    let batchDims = Array(aS.dropLast(2))
                    guard bS[bS.count - 2] == k, ySizes == batchDims + [m, n], Array(bS.dropLast(2)) == batchDims else {
                        throw unsupported(inst, "on operands of shapes \(aS) and \(bS) (batched: [..., M, K] x [K, N] or equal batch dimensions)")
                    }
                    let batch = batchDims.reduce(1, *)
                    let args = [try resolve(a), try resolve(b), .buffer(yBuffer)]
                    if target.isGPU, m * n * k >= GPUKernelTiledGEMM.minimumWork {
                        let bOperand = try tiledOperand("B", b)
                        var spec = GPUKernelTiledGEMM.Spec(m: m, n: n, k: k, loadA: "v = A[bt * \(m * k) + r * \(k) + p];",
                                                           loadB: "v = \(bOperand.load("bt * \(k * n) + p * \(n) + c"));", pointers: "",
                                                           store: "Y[bt * \(m * n) + r * \(n) + c] = v;")
                        spec.batches = batch
                        spec.epilogue = epilogue
                        return addTiledGEMMStep(kind: epilogue.isEmpty ? "batched_matmul" : "batched_matmul_epilogue", spec,
                                                operands: [TiledOperand(name: "A", argument: args[0]), bOperand, TiledOperand(name: "Y", argument: args[2])])
                    }
                    if blockedGEMM, m * n * k >= CPUKernelGEMM.minimumWork {
                        var spec = CPUKernelGEMM.Spec(m: m, n: n, k: k, a: .strided(rowStride: k, depthStride: 1),
                                                      b: .strided(depthStride: n, columnStride: 1), arguments: (0, 1, nil, 2))
                        spec.batches = batch
                        spec.aOffset = "bt * \(m * k)"; spec.bOffset = "bt * \(k * n)"; spec.cOffset = "bt * \(m * n)"
                        spec.epilogue = epilogue
                        return addGEMMStep(kind: epilogue.isEmpty ? "batched_matmul" : "batched_matmul_epilogue", spec, arguments: args)
                    }
                    addStep(kind: epilogue.isEmpty ? "batched_matmul" : "batched_matmul_epilogue",
                            code: CPUKernelLibrary.batchedMatMul(name: symbol, batch: batch, m: m, n: n, k: k, bBatched: true, epilogue: epilogue),
                            arguments: args, range: batch * m * n, work: k)
                    return
                }
                // [..., M, K] x [K, N] (B shared by the batch) is one [batch*M, K] x [K, N] product.
                let sharedB = !isGemm && aS.count > 2 && bS.count == 2
                guard (aS.count == 2 || sharedB), bS.count == 2, ySizes.count == aS.count else {
                    throw unsupported(inst, "on operands of rank \(aS.count) and \(bS.count) (only 2-D)")
                }
                let transA = isGemm && int("transA", 0) != 0
                var transB = isGemm && int("transB", 0) != 0
                let rows = sharedB ? aS.dropLast().reduce(1, *) : aS[0]
                let m = transA ? aS[1] : rows, k = transA ? aS[0] : aS[aS.count - 1], n = transB ? bS[0] : bS[1]
                guard (transB ? bS[1] : bS[0]) == k, ySizes.reduce(1, *) == m * n, ySizes.last == n else {
                    throw unsupported(inst, "with inconsistent shapes")
                }
                var biasStrides: (rowStride: Int, colStride: Int)?
                let c: ValueID? = isGemm ? (producer.operands.count > 2 ? producer.operands[2] : nil) : extraBias
                if let c {
                    let cS = g.type(of: c).shape.staticSizes!
                    guard cS.count <= 2 || (sharedB && cS.dropLast().allSatisfy { $0 == 1 }) else { throw unsupported(inst, "with a bias of rank \(cS.count)") }
                    let cm = cS.count >= 2 ? cS.dropLast().reduce(1, *) : 1, cn = cS.count >= 1 ? cS[cS.count - 1] : 1
                    guard cm == 1 || (cm == m && !sharedB), cn == 1 || cn == n else { throw unsupported(inst, "with a bias of shape \(cS)") }
                    biasStrides = (cm == 1 ? 0 : cn, cn == 1 ? 0 : 1)
                }
                let alpha: Float = isGemm ? float("alpha", 1) : 1, beta: Float = isGemm ? float("beta", 1) : 1
                let constantB = constant(b).flatMap { $0.dtype == .f32 && !$0.isElided ? $0 : nil }
                if target.isGPU, m * n * k >= GPUKernelTiledGEMM.minimumWork {
                    let bOperand = try tiledOperand("B", b)
                    var spec = GPUKernelTiledGEMM.Spec(m: m, n: n, k: k, loadA: transA ? "v = A[p * \(m) + r];" : "v = A[r * \(k) + p];",
                                                       loadB: "v = \(bOperand.load(transB ? "c * \(k) + p" : "p * \(n) + c"));", pointers: "",
                                                       store: "Y[r * \(n) + c] = v;")
                    var operands: [TiledOperand] = [TiledOperand(name: "A", argument: try resolve(a)), bOperand]
                    if let c, let strides = biasStrides {
                        operands.append(TiledOperand(name: "C", argument: try resolve(c)))
                        let term = "C[r * \(strides.rowStride) + c * \(strides.colStride)]"
                        spec.bias = beta == 1 ? term : "\(CPUKernelLibrary.lit(beta)) * \(term)"
                    }
                    operands.append(TiledOperand(name: "Y", argument: .buffer(yBuffer)))
                    spec.alpha = alpha
                    spec.epilogue = epilogue
                    return addTiledGEMMStep(kind: kind, spec, operands: operands)
                }
                if blockedGEMM, m * n * k >= CPUKernelGEMM.minimumWork {
                    // Blocked: a constant B is packed into column panels now; otherwise at run time.
                    var args = [try resolve(a)]
                    let bOperand: CPUKernelGEMM.BOperand
                    if let cb = constantB {
                        let nr = instructionSet.microTile.columns
                        let packed = CPUKernelGEMM.packPanels(cb.elements(as: Float.self), rows: n, depth: k, panel: nr, transposed: !transB)
                        args.append(try weight(key: packedKey(b, "#panels\(nr)"), name: g.name(of: b) + ".panels",
                                               TensorData(type: TensorType(.f32, static: [packed.count / (k * nr), k, nr]), elements: packed), inst))
                        bOperand = .packed
                    } else {
                        args.append(try resolve(b))
                        bOperand = .strided(depthStride: transB ? 1 : n, columnStride: transB ? k : 1)
                    }
                    var spec = CPUKernelGEMM.Spec(m: m, n: n, k: k, a: .strided(rowStride: transA ? 1 : k, depthStride: transA ? m : 1),
                                                  b: bOperand, arguments: (0, 1, c == nil ? nil : 2, c == nil ? 2 : 3))
                    if let c, let strides = biasStrides {
                        args.append(try resolve(c))
                        spec.bias = (strides.rowStride, strides.colStride, "0")
                    }
                    args.append(.buffer(yBuffer))
                    spec.alpha = alpha; spec.beta = beta; spec.epilogue = epilogue
                    return addGEMMStep(kind: kind, spec, arguments: args)
                }
                var args = [try resolve(a)]
                if !transB, let cb = constantB {
                    // A constant [K,N] right operand is stored transposed ([N,K]), so every output
                    // is a dot product of two contiguous rows.
                    let e = cb.elements(as: Float.self)
                    var t = [Float](repeating: 0, count: e.count)
                    for p in 0 ..< k { for q in 0 ..< n { t[q * k + p] = e[p * n + q] } }
                    args.append(try weight(key: packedKey(b, "#T"), name: g.name(of: b) + ".T", TensorData(type: TensorType(.f32, static: [n, k]), elements: t), inst))
                    transB = true
                } else {
                    args.append(try resolve(b))
                }
                if let c { args.append(try resolve(c)) }
                args.append(.buffer(yBuffer))
                let code = CPUKernelLibrary.gemm(name: symbol, m: m, n: n, k: k, transA: transA, transB: transB,
                                                 alpha: alpha, beta: beta, bias: biasStrides, epilogue: epilogue)
                addStep(kind: kind, code: code, arguments: args, range: m * n, work: k)
            default:  // Conv
                guard let x = producer.operands[0], let w = producer.operands[1] else { throw unsupported(inst) }
                let xS = g.type(of: x).shape.staticSizes!, wS = g.type(of: w).shape.staticSizes!
                let hasBias = producer.operands.count > 2 && producer.operands[2] != nil
                // 1-D, 3-D, ... (and on a GPU every convolution the tiled kernel does not take): the
                // general kernel (CPUKernelLibraryConv.swift), one output element per unit.
                func generalConvolution() throws {
                    let shape = try convolutionShape(producer, x: xS, w: wS, y: ySizes, inst)
                    var args = [try resolve(x), try resolve(w)]
                    if hasBias { args.append(try resolve(producer.operands[2]!)) }
                    args.append(.buffer(yBuffer))
                    let f32 = CScalar(.f32)!
                    addStep(kind: epilogue.isEmpty ? "conv" : "conv_epilogue",
                            code: CPUKernelLibrary.convolution(name: symbol, shape, x: f32, w: f32, bias: hasBias ? f32 : nil, y: f32, epilogue: epilogue),
                            arguments: args, range: shape.outputCount, work: max(1, shape.work))
                }
                guard xS.count == 4, wS.count == 4, ySizes.count == 4 else { return try generalConvolution() }
                let group = int("group", 1)
                guard group >= 1, xS[1] % group == 0, ySizes[1] % group == 0, wS[1] == xS[1] / group else {
                    throw unsupported(inst, "with inconsistent groups")
                }
                let win = try window(producer, input: Array(xS[2...]), output: Array(ySizes[2...]), kernel: Array(wS[2...]), inst)
                let (pads, strides, dilations) = (win.padBegin, win.strides, win.dilations)
                let kind = epilogue.isEmpty ? "conv2d" : "conv2d_epilogue"
                let cg = xS[1] / group, mg = ySizes[1] / group, depth = cg * wS[2] * wS[3], pixels = ySizes[2] * ySizes[3]
                let depthwise = cg == 1 && mg == 1
                if target.isGPU, !depthwise, mg * pixels * depth >= GPUKernelTiledGEMM.minimumWork {
                    // Implicit GEMM per image and group: W[mg, depth] x patches[depth, pixels], the
                    // patch element computed from (p, c) as it is loaded.
                    let (kh, kw, ow) = (wS[2], wS[3], ySizes[3])
                    let wOperand = try tiledOperand("W", w)
                    var spec = GPUKernelTiledGEMM.Spec(
                        m: mg, n: pixels, k: depth, loadA: "v = \(wOperand.load("(bt % \(group) * \(mg) + r) * \(depth) + p"));",
                        loadB: "long ic = p / \(kh * kw), iy = c / \(ow) * \(strides[0]) - \(pads[0]) + p / \(kw) % \(kh) * \(dilations[0]), "
                            + "ix = c % \(ow) * \(strides[1]) - \(pads[1]) + p % \(kw) * \(dilations[1]); "
                            + "if (iy >= 0 && iy < \(xS[2]) && ix >= 0 && ix < \(xS[3])) v = X[((bt / \(group) * \(xS[1]) + bt % \(group) * \(cg) + ic) * \(xS[2]) + iy) * \(xS[3]) + ix];",
                        pointers: "", store: "Y[(bt / \(group) * \(ySizes[1]) + bt % \(group) * \(mg) + r) * \(pixels) + c] = v;")
                    spec.batches = xS[0] * group
                    var operands: [TiledOperand] = [TiledOperand(name: "X", argument: try resolve(x)), wOperand]
                    if hasBias {
                        operands.append(TiledOperand(name: "Bias", argument: try resolve(producer.operands[2]!)))
                        spec.bias = "Bias[bt % \(group) * \(mg) + r]"
                    }
                    operands.append(TiledOperand(name: "Y", argument: .buffer(yBuffer)))
                    spec.epilogue = epilogue
                    return addTiledGEMMStep(kind: kind, spec, operands: operands)
                }
                if target.isGPU { return try generalConvolution() }
                let winograd = CPUKernelWinograd.Shape(images: xS[0], inputChannels: cg, height: xS[2], width: xS[3], outputChannels: mg,
                                                       outputHeight: ySizes[2], outputWidth: ySizes[3], padTop: pads[0], padLeft: pads[1])
                if blockedGEMM, group == 1, wS[2] == 3, wS[3] == 3, strides == [1, 1], dilations == [1, 1],
                   CPUKernelWinograd.applies(to: winograd), let cw = constant(w), cw.dtype == .f32, !cw.isElided {
                    let shape = winograd
                    let nr = instructionSet.microTile.columns
                    let u = CPUKernelWinograd.transformedWeights(cw.elements(as: Float.self), outputChannels: mg, inputChannels: cg, panel: nr)
                    let scratchBuffer = PlanArgument.buffer(scratch(bytes: 4 * (shape.inputTransformFloats + shape.productFloats)))
                    addStep(kind: "winograd_input", code: CPUKernelWinograd.inputTransform(name: symbol, shape),
                            arguments: [try resolve(x), scratchBuffer], range: xS[0] * cg, work: shape.tilesPerImage * 64)
                    addGEMMStep(kind: "winograd_gemm", CPUKernelWinograd.gemm(shape, panel: nr), arguments: [
                        scratchBuffer, try weight(key: packedKey(w, "#winograd\(nr)"), name: g.name(of: w) + ".winograd",
                                                  TensorData(type: TensorType(.f32, static: [16, u.count / 16]), elements: u), inst),
                        scratchBuffer])
                    var args = [scratchBuffer]
                    if hasBias { args.append(try resolve(producer.operands[2]!)) }
                    args.append(.buffer(yBuffer))
                    return addStep(kind: epilogue.isEmpty ? "winograd_output" : "winograd_output_epilogue",
                                   code: CPUKernelWinograd.outputTransform(name: nextSymbol, shape, hasBias: hasBias, epilogue: epilogue),
                                   arguments: args, range: CPUKernelWinograd.outputUnits(shape), work: shape.tilesPerImage * 16 * 40)
                }
                if blockedGEMM, !depthwise, mg * pixels * depth >= CPUKernelGEMM.minimumWork,
                   let cw = constant(w), cw.dtype == .f32, !cw.isElided {
                    // Per image and group: Y[mg, pixels] = W[mg, depth] x patches[depth, pixels]; the
                    // weights packed into row panels now, the patches at run time (a 1x1, stride 1,
                    // unpadded convolution reads its input as the patch matrix directly).
                    let (mr, nr) = instructionSet.microTile
                    let pointwise = wS[2] == 1 && wS[3] == 1 && pads == [0, 0] && strides == [1, 1] && ySizes[2] == xS[2] && ySizes[3] == xS[3]
                    // A pointwise convolution over a small image computes Y transposed when the
                    // channels fill the micro-tiles better than the pixels would (7x7 images: 49
                    // pixels in two 32-wide panels compute 64 columns; as rows, 56).
                    let transposedPointwise = pointwise && depth <= CPUKernelGEMM.maximumTransposedDepth && CPUKernelGEMM.paddedArea(rows: pixels, columns: mg, isa: instructionSet) * 20
                        < CPUKernelGEMM.paddedArea(rows: mg, columns: pixels, isa: instructionSet) * 19
                    // Other convolutions read their patches straight from the (padded) image into
                    // transposed products, nothing packed at run time (AVX-512, which transposes the
                    // tiles into Y in registers; from a depth of 16, e.g. a first layer's 3x3x3).
                    let hp = CPUKernelPlaneWindow.Axis(input: xS[2], output: ySizes[2], kernel: wS[2], pad: pads[0], stride: strides[0], dilation: dilations[0]).padded
                    let wp = CPUKernelPlaneWindow.Axis(input: xS[3], output: ySizes[3], kernel: wS[3], pad: pads[1], stride: strides[1], dilation: dilations[1]).padded
                    let patches = !pointwise && instructionSet == .avx512 && depth >= 16 && cg * hp * wp < Int(Int32.max)
                    let transposed = transposedPointwise || patches
                    let panel = transposed ? nr : mr
                    let e = cw.elements(as: Float.self)
                    var packed: [Float] = []
                    for gi in 0 ..< group {
                        packed += CPUKernelGEMM.packPanels(Array(e[gi * mg * depth ..< (gi + 1) * mg * depth]), rows: mg, depth: depth, panel: panel, transposed: false)
                    }
                    var args = [try resolve(x), try weight(key: packedKey(w, "#panels\(panel)"), name: g.name(of: w) + ".panels",
                                                           TensorData(type: TensorType(.f32, static: [packed.count / (depth * panel), depth, panel]), elements: packed), inst)]
                    var spec: CPUKernelGEMM.Spec
                    if transposed {
                        // Y^T[pixels, mg] = X^T[pixels, depth] x W^T[depth, mg]: X read in place (a
                        // pointwise convolution's input, or the patches of the padded image), W as B panels.
                        var a = CPUKernelGEMM.AOperand.strided(rowStride: 1, depthStride: pixels)
                        var imageFloats = cg * pixels
                        if patches {
                            a = .patches(.init(channels: cg, height: hp, width: wp, kernelHeight: wS[2], kernelWidth: wS[3],
                                               outputHeight: ySizes[2], outputWidth: ySizes[3], strideH: strides[0], strideW: strides[1],
                                               padTop: 0, padLeft: 0, dilationH: dilations[0], dilationW: dilations[1]))
                            imageFloats = cg * hp * wp
                            if hp != xS[2] || wp != xS[3] || pads[0] != 0 || pads[1] != 0 {
                                let image = PlanArgument.buffer(scratch(bytes: 4 * xS[0] * xS[1] * hp * wp))
                                addStep(kind: "pad_image", code: CPUKernelGEMM.padImage(name: nextSymbol, planes: xS[0] * xS[1], h: xS[2], w: xS[3],
                                                                                       hp: hp, wp: wp, padTop: pads[0], padLeft: pads[1]),
                                        arguments: [args[0], image], range: xS[0] * xS[1], work: hp * wp)
                                args[0] = image
                            }
                        }
                        spec = CPUKernelGEMM.Spec(m: pixels, n: mg, k: depth, a: a, b: .packed, arguments: (0, 1, hasBias ? 2 : nil, hasBias ? 3 : 2))
                        spec.aOffset = "bt * \(imageFloats)"
                        spec.bOffset = "bt % \(group) * \(packed.count / group)"
                        spec.cTransposed = true
                    } else {
                        let bOperand: CPUKernelGEMM.BOperand = pointwise ? .strided(depthStride: xS[2] * xS[3], columnStride: 1) : .im2col(.init(
                            channels: cg, height: xS[2], width: xS[3], kernelHeight: wS[2], kernelWidth: wS[3], outputHeight: ySizes[2], outputWidth: ySizes[3],
                            strideH: strides[0], strideW: strides[1], padTop: pads[0], padLeft: pads[1], dilationH: dilations[0], dilationW: dilations[1]))
                        spec = CPUKernelGEMM.Spec(m: mg, n: pixels, k: depth, a: .packed, b: bOperand, arguments: (1, 0, hasBias ? 2 : nil, hasBias ? 3 : 2))
                        spec.aOffset = "bt % \(group) * \(packed.count / group)"
                        spec.bOffset = "bt * \(cg * xS[2] * xS[3])"
                    }
                    spec.batches = xS[0] * group
                    spec.cOffset = "bt * \(mg * pixels)"
                    if hasBias {
                        args.append(try resolve(producer.operands[2]!))
                        // One bias per output channel: Y's rows, or Y^T's columns.
                        spec.bias = transposed ? (0, 1, "bt % \(group) * \(mg)") : (1, 0, "bt % \(group) * \(mg)")
                    }
                    args.append(.buffer(yBuffer))
                    spec.epilogue = epilogue
                    return addGEMMStep(kind: kind, spec, arguments: args)
                }
                var args = [try resolve(x), try resolve(w)]
                if hasBias { args.append(try resolve(producer.operands[2]!)) }
                args.append(.buffer(yBuffer))
                if depthwise {
                    let code = CPUKernelPlaneWindow.kernel(name: symbol, .depthwise(hasBias: hasBias, epilogue: epilogue), planes: xS[0] * xS[1],
                                                           channels: xS[1], h: xS[2], w: xS[3], oh: ySizes[2], ow: ySizes[3], kh: wS[2], kw: wS[3],
                                                           padTop: pads[0], padLeft: pads[1], strideH: strides[0], strideW: strides[1],
                                                           dilationH: dilations[0], dilationW: dilations[1])
                    return addStep(kind: epilogue.isEmpty ? "depthwise_conv2d" : "depthwise_conv2d_epilogue", code: code, arguments: args,
                                   range: ySizes[0] * ySizes[1], work: ySizes[2] * ySizes[3] * wS[2] * wS[3])
                }
                // Small convolutions and those with computed weights: direct.
                let code = CPUKernelLibrary.conv2d(name: symbol, n: xS[0], c: xS[1], h: xS[2], w: xS[3], m: ySizes[1],
                                                   oh: ySizes[2], ow: ySizes[3], kh: wS[2], kw: wS[3], group: group,
                                                   padTop: pads[0], padLeft: pads[1], strideH: strides[0], strideW: strides[1],
                                                   dilationH: dilations[0], dilationW: dilations[1], hasBias: hasBias, epilogue: epilogue)
                addStep(kind: kind, code: code, arguments: args, range: ySizes[0] * ySizes[1],
                        work: ySizes[2] * ySizes[3] * wS[1] * wS[2] * wS[3])
            }
        }

        /// Whether GEMM and convolution use the blocked, register-tiled CPU kernels (`CPUKernelGEMM`);
        /// on a GPU target the simple kernels, one output (plane) per work-item, run instead.
        var blockedGEMM: Bool { target == .cpu }

        /// A tiled GEMM step of a GPU target (`GPUKernelTiledGEMM`), an entry point of its own;
        /// `operands` name the pointers its loaders and store read and write (the last one is the output).
        mutating func addTiledGEMMStep(kind: String, _ spec: GPUKernelTiledGEMM.Spec, operands: [TiledOperand]) {
            var spec = spec
            let weightOffsets = Dictionary(weightsBuilder.table.map { ($0.name, $0.offset) }, uniquingKeysWith: { a, _ in a })
            for (i, operand) in operands.enumerated() {
                let type = (i == operands.count - 1 ? "" : "const ") + (operand.half ? target.bodyDialect.halfType : "float")
                let address: String
                switch operand.argument {
                case .buffer(let id): address = "arena + \(buffers[id].offset)"
                case .weight(let w): address = "weights + \(weightOffsets[w]!)"
                case .stringHeap: preconditionFailure("tiled GEMM operands are buffers or weights")
                }
                spec.pointers += "  GLMC_GLOBAL \(type) *\(operand.name) = (GLMC_GLOBAL \(type) *)(\(address));\n"
            }
            if operands.contains(where: \.half), !source.contains("#define GLMC_HALF_HELPERS") {
                source += "\n" + target.bodyDialect.halfPrelude
            }
            source += "\n" + GPUKernelTiledGEMM.kernel(name: stepName, spec, target: target)
            steps.append(PlanStep(kernel: stepName, kind: kind + "_tiled", arguments: operands.map(\.argument),
                                  launch: GPUKernelTiledGEMM.launch(spec, target: target)))
        }

        /// A blocked GEMM step (`CPUKernelGEMM`): one job per unit of its range.
        mutating func addGEMMStep(kind: String, _ spec: CPUKernelGEMM.Spec, arguments: [PlanArgument]) {
            usesVectorPrelude = true
            let jobs = CPUKernelGEMM.jobs(spec, isa: instructionSet)
            addStep(kind: kind, code: CPUKernelGEMM.kernel(name: nextSymbol, spec, isa: instructionSet), arguments: arguments,
                    range: jobs, work: Self.grainWork)
        }

        /// MaxPool and AveragePool: 2-D f32 ones without Indices by the per-plane kernel on the CPU,
        /// the rest by the general one (`lowerWindowPool`).
        mutating func lowerPool(_ inst: Instruction) throws {
            guard let x = inst.operands[0] else { throw unsupported(inst, "without an input") }
            let xS = f.type(of: x).shape.staticSizes!, yS = f.type(of: inst.results[0]).shape.staticSizes!
            let isMax = inst.op.type == "MaxPool"
            // On a GPU the general kernel's one output per work-item beats one plane per work-item.
            guard !target.isGPU, xS.count == 4, yS.count == 4, f.type(of: x).dtype == .f32, f.type(of: inst.results[0]).dtype == .f32,
                  !isMax || usedResultBuffer(inst, 1) == nil, intAttr(inst, "storage_order", 0) == 0,
                  case .ints(let kernel)? = inst.attributes["kernel_shape"], kernel.count == 2 else {
                return try lowerWindowPool(inst)
            }
            let win = try window(inst, input: Array(xS[2...]), output: Array(yS[2...]), kernel: kernel,
                                 dilated: isMax ? inst.opset >= 10 : inst.opset >= 19, inst)
            let (pads, strides, dilations) = (win.padBegin, win.strides, win.dilations)
            let countIncludePad = intAttr(inst, "count_include_pad", 0) != 0
            // The per-plane kernel counts padding symmetrically.
            if countIncludePad, win.padEnd != pads { return try lowerWindowPool(inst) }
            let args = [try argument(x, inst), .buffer(bufferOf[inst.results[0]]!)]
            let code = isMax
                ? CPUKernelPlaneWindow.kernel(name: nextSymbol, .maximum, planes: xS[0] * xS[1], channels: xS[1], h: xS[2], w: xS[3],
                                              oh: yS[2], ow: yS[3], kh: kernel[0], kw: kernel[1], padTop: pads[0], padLeft: pads[1],
                                              strideH: strides[0], strideW: strides[1], dilationH: dilations[0], dilationW: dilations[1])
                : CPUKernelLibrary.averagePool2d(name: nextSymbol, planes: xS[0] * xS[1], h: xS[2], w: xS[3], oh: yS[2], ow: yS[3],
                                                 kh: kernel[0], kw: kernel[1], padTop: pads[0], padLeft: pads[1], strideH: strides[0],
                                                 strideW: strides[1], dilationH: dilations[0], dilationW: dilations[1], countIncludePad: countIncludePad)
            addStep(kind: isMax ? "max_pool2d" : "average_pool2d", code: code, arguments: args, range: xS[0] * xS[1],
                    work: yS[2] * yS[3] * kernel[0] * kernel[1])
        }
    }
}
