import Foundation
import GLMCCodegen
import GLMCIR
import GLMCOps
import GLMCPlan
import GLMCRuntime

/// Runs a model over calibration samples through a CPU plan with observation taps and turns what
/// it saw into a `CalibrationTable`.
///
/// Observed tensors are those of the *source* model, by source name: every float runtime input
/// and every float result of a top-level instruction that is not computable from weights alone
/// and that something reads (another instruction or the model's outputs).
/// Before optimization the activations become the function's outputs (its only outputs), so the
/// passes keep each of them whatever they fuse; the plan then returns them on every run. A tap
/// that optimization turned into an input (e.g. an Identity's result) is observed from the input,
/// one it folded to a constant from the constant.
public struct Calibrator {
    enum Source {
        case input(Int)
        case output(Int)
        case constant(TensorData)
    }

    /// Names of the observed tensors, runtime inputs first, then activations in execution order.
    public let names: [String]
    /// The plan's runtime inputs (static shapes), in order.
    public let inputs: [CalibrationInput]
    public let plan: PlanFile
    let sources: [Source]

    /// Selects the observed tensors of `module` (static input shapes already bound), taps them,
    /// runs `optimize` on the tapped module and builds its CPU plan.
    public init(_ module: Module, options: CPUPlanOptions, optimize: (inout Module) throws -> Void) throws {
        let f = module.main
        var names: [String] = [], seen = Set<String>(), activations: [ValueID] = []
        for a in f.arguments where ObservedElements.isObserved(f.type(of: a).dtype) {
            names.append(f.name(of: a)); seen.insert(f.name(of: a))
        }
        // Results nothing reads (an inference Dropout's mask) are never computed by an engine
        // that removes dead code: there is nothing to calibrate.
        var read = Set(f.outputs)
        for inst in f.body {
            read.formUnion(inst.operands.compactMap { $0 })
            read.formUnion(inst.nestedFunctions.flatMap { $0.captures.map(\.outer) })
        }
        var fromWeights = Set<ValueID>()
        for inst in f.body {
            if inst.constantValue != nil || (inst.nestedFunctions.isEmpty && !inst.operands.isEmpty
                && inst.operands.allSatisfy({ $0.map { fromWeights.contains($0) } ?? true })) {
                fromWeights.formUnion(inst.results)
                continue
            }
            for r in inst.results {
                // A value without a name of its own goes by the model output name it has, if any.
                let name = f.name(of: r).isEmpty ? (f.outputs.firstIndex(of: r).flatMap { $0 < f.outputNames.count ? f.outputNames[$0] : nil } ?? "")
                    : f.name(of: r)
                guard !name.isEmpty, read.contains(r), ObservedElements.isObserved(f.type(of: r).dtype),
                      seen.insert(name).inserted else { continue }
                names.append(name)
                activations.append(r)
            }
        }
        var tapped = module
        tapped.main.outputs = activations
        tapped.main.outputNames = Array(names.suffix(activations.count))
        try optimize(&tapped)

        // Map each tap (in order: optimization keeps the function's outputs) to where it is read.
        let g = tapped.main
        let defining = g.definingInstructions()
        var sources: [Source] = []
        for a in f.arguments where ObservedElements.isObserved(f.type(of: a).dtype) {
            sources.append(.input(f.arguments.firstIndex(of: a)!))
        }
        var kept: [ValueID] = [], keptNames: [String] = []
        for (k, v) in g.outputs.enumerated() {
            if let i = g.arguments.firstIndex(of: v) {
                sources.append(.input(i))
            } else if let d = defining[v], let c = g.body[d].constantValue {
                sources.append(.constant(c))
            } else {
                sources.append(.output(kept.count))
                kept.append(v)
                keptNames.append(g.outputNames[k])
            }
        }
        tapped.main.outputs = kept
        tapped.main.outputNames = keptNames
        self.names = names
        self.sources = sources
        inputs = g.arguments.map { CalibrationInput(name: g.name(of: $0), type: g.type(of: $0)) }
        do { plan = try CPUPlanBuilder.build(tapped, options: options) } catch let e as GLMCError {
            throw GLMCError("calibration runs the model as a CPU plan: \(e.message)")
        }
    }

    /// How long running the samples took (plan building excluded).
    public struct Timing: Sendable {
        public var seconds: Double
        /// Sample runs (samples times passes over them).
        public var runs: Int
        public var passes: Int
        public var samplesPerSecond: Double { seconds > 0 ? Double(runs) / seconds : 0 }
    }

    /// Streams the samples through the plan (twice for methods that need a histogram: once for
    /// the range, once for the histogram over [0, amax]) and computes the table, one sample per run.
    public func run(_ samples: CalibrationSamples, method: CalibrationMethod, threads: Int = 1,
                    progress: ((_ pass: Int, _ passes: Int, _ done: Int, _ total: Int) -> Void)? = nil) throws -> (CalibrationTable, Timing) {
        try Self.run(samples, method: method, batch: 1, threads: threads, plans: { _ in self }, progress: progress)
    }

    /// The same with `batch` samples per run, concatenated along the first axis: `plans(n)` is
    /// the calibrator for runs of n samples (`batch`, and the remainder for the last run).
    public static func run(_ samples: CalibrationSamples, method: CalibrationMethod, batch: Int, threads: Int = 1,
                           plans: (Int) throws -> Calibrator,
                           progress: ((_ pass: Int, _ passes: Int, _ done: Int, _ total: Int) -> Void)? = nil) throws -> (CalibrationTable, Timing) {
        // Building a plan (compiling its kernels) is not running samples: its time is left out.
        var executors: [Int: (Calibrator, CPUExecutor)] = [:], buildSeconds = 0.0
        func runner(_ size: Int) throws -> (Calibrator, CPUExecutor) {
            if let r = executors[size] { return r }
            let buildStart = nowSeconds()
            defer { buildSeconds += nowSeconds() - buildStart }
            let c = try plans(size)
            do {
                let r = (c, try CPUExecutor(plan: c.plan, threads: threads))
                executors[size] = r
                return r
            } catch let e as RuntimeError { throw GLMCError(e.message) }
        }
        let names = try runner(Swift.min(batch, samples.count)).0.names
        let start = nowSeconds()
        buildSeconds = 0
        let passes = method.needsHistogram ? 2 : 1
        var stats = [TensorStatistics](repeating: TensorStatistics(), count: names.count)
        var histograms: [AbsHistogram] = []
        for pass in 1 ... passes {
            if pass == 2 { histograms = stats.map { AbsHistogram(range: $0.amax) } }
            for first in stride(from: 0, to: samples.count, by: batch) {
                let group = first ..< Swift.min(first + batch, samples.count)
                let (calibrator, executor) = try runner(group.count)
                let label = group.count == 1 ? samples.label(first)
                    : "\(samples.label(first)) to \(samples.label(group.upperBound - 1)) (one batch)"
                try calibrator.observe(group, samples: samples, executor: executor) { k, values in
                    if pass == 1 {
                        if let bad = stats[k].observe(values, samples: group.count) {
                            throw GLMCError("\(label): tensor '\(names[k])' has a non-finite value (\(values[bad])) at element \(bad)")
                        }
                    } else {
                        histograms[k].add(values)
                    }
                }
                progress?(pass, passes, group.upperBound, samples.count)
            }
        }
        // Timed up to here: the threshold searches below are per tensor, not per sample.
        let timing = Timing(seconds: nowSeconds() - start - buildSeconds, runs: samples.count * passes, passes: passes)
        let entries = names.indices.map { k in
            CalibrationTable.Entry(name: names[k], min: stats[k].min, max: stats[k].max,
                                   amax: method.amax(stats[k], histogram: histograms.isEmpty ? nil : histograms[k]),
                                   samples: stats[k].sampleCount)
        }
        return (CalibrationTable(method: method, sampleCount: samples.count, entries: entries), timing)
    }

    /// Runs the samples `group` (as many as the plan takes, concatenated along the first axis)
    /// and hands every observed tensor's values to `observe(k, values)`.
    func observe(_ group: Range<Int>, samples: CalibrationSamples, executor: CPUExecutor,
                 _ observe: (Int, UnsafeBufferPointer<Float>) throws -> Void) throws {
        let perSample = try sampleInputs(batch: group.count)
        var inputBytes = [Data](repeating: Data(), count: inputs.count)
        for i in group {
            for (j, t) in try samples.sample(i, inputs: perSample).enumerated() {
                inputBytes[j].append(t.tensorData.withRawBytes { Data($0) })
            }
        }
        var given: [String: HostTensor] = [:]
        for (input, bytes) in zip(inputs, inputBytes) {
            given[input.name] = HostTensor(name: input.name, dtype: input.type.dtype.rawValue,
                                           shape: input.type.shape.staticSizes ?? [], bytes: bytes)
        }
        let results: [HostTensor]
        do { results = try executor.run(inputs: given) } catch let e as RuntimeError {
            throw GLMCError("\(samples.label(group.lowerBound)): \(e.message)")
        }
        for (k, source) in sources.enumerated() {
            let dtype: DType, bytes: Data
            switch source {
            case .input(let j): dtype = inputs[j].type.dtype; bytes = inputBytes[j]
            case .output(let j): dtype = DType(rawValue: results[j].dtype) ?? .f32; bytes = results[j].bytes
            case .constant(let c): dtype = c.dtype; bytes = c.withRawBytes { Data($0) }
            }
            try bytes.withUnsafeBytes { raw in
                _ = try ObservedElements.withFloats(raw, dtype: dtype) { try observe(k, $0) }
            }
        }
    }

    /// What one sample of a run of `batch` samples looks like: the plan's inputs with the first
    /// dimension divided by `batch`.
    func sampleInputs(batch: Int) throws -> [CalibrationInput] {
        guard batch > 1 else { return inputs }
        return try inputs.map { input in
            guard var sizes = input.type.shape.staticSizes, let first = sizes.first, first % batch == 0 else {
                throw GLMCError("--batch \(batch): input '\(input.name)' (\(input.type)) cannot hold \(batch) samples along its first axis")
            }
            sizes[0] = first / batch
            return CalibrationInput(name: input.name, type: TensorType(input.type.dtype, static: sizes))
        }
    }
}

func nowSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
