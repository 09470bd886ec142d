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
/// and every float result of a top-level instruction that is not computable from weights alone.
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
        var fromWeights = Set<ValueID>()
        for inst in f.body {
            if inst.constantValue != nil || (inst.nestedFunctions.isEmpty && !inst.operands.isEmpty
                && inst.operands.allSatisfy({ $0.map { fromWeights.contains($0) } ?? true })) {
                fromWeights.formUnion(inst.results)
                continue
            }
            for r in inst.results {
                let name = f.name(of: r)
                guard !name.isEmpty, ObservedElements.isObserved(f.type(of: r).dtype), seen.insert(name).inserted else { continue }
                names.append(name)
                activations.append(r)
            }
        }
        var tapped = module
        tapped.main.outputs = activations
        tapped.main.outputNames = activations.map { f.name(of: $0) }
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
        plan = try CPUPlanBuilder.build(tapped, options: options)
    }

    /// How long calibration took.
    public struct Timing: Sendable {
        public var seconds: Double
        /// Sample runs (samples times passes over them).
        public var runs: Int
        public var passes: Int
        public var samplesPerSecond: Double { seconds > 0 ? Double(runs) / seconds : 0 }
    }

    /// Streams the samples through the plan (twice for methods that need a histogram: once for
    /// the range, once for the histogram over [0, amax]) and computes the table.
    public func run(_ samples: CalibrationSamples, method: CalibrationMethod, threads: Int = 1,
                    progress: ((_ pass: Int, _ passes: Int, _ done: Int, _ total: Int) -> Void)? = nil) throws -> (CalibrationTable, Timing) {
        let executor: CPUExecutor
        do { executor = try CPUExecutor(plan: plan, threads: threads) } catch let e as RuntimeError { throw GLMCError(e.message) }
        let start = nowSeconds()
        let passes = method.needsHistogram ? 2 : 1
        var stats = [TensorStatistics](repeating: TensorStatistics(), count: names.count)
        var histograms: [AbsHistogram] = []
        for pass in 1 ... passes {
            if pass == 2 { histograms = stats.map { AbsHistogram(range: $0.amax) } }
            for i in 0 ..< samples.count {
                try observeSample(i, samples: samples, executor: executor) { k, values in
                    if pass == 1 {
                        if let bad = stats[k].observe(values) {
                            throw GLMCError("\(samples.label(i)): tensor '\(names[k])' has a non-finite value (\(values[bad])) at element \(bad)")
                        }
                    } else {
                        histograms[k].add(values)
                    }
                }
                progress?(pass, passes, i + 1, samples.count)
            }
        }
        let entries = names.indices.map { k in
            CalibrationTable.Entry(name: names[k], min: stats[k].min, max: stats[k].max,
                                   amax: method.amax(stats[k], histogram: histograms.isEmpty ? nil : histograms[k]),
                                   samples: stats[k].sampleCount)
        }
        let timing = Timing(seconds: nowSeconds() - start, runs: samples.count * passes, passes: passes)
        return (CalibrationTable(method: method, sampleCount: samples.count, entries: entries), timing)
    }

    /// Runs sample `i` and hands every observed tensor's values to `observe(k, values)`.
    func observeSample(_ i: Int, samples: CalibrationSamples, executor: CPUExecutor,
                       _ observe: (Int, UnsafeBufferPointer<Float>) throws -> Void) throws {
        let tensors = try samples.sample(i, inputs: inputs)
        var given: [String: HostTensor] = [:]
        var inputBytes: [Data] = []
        for (input, t) in zip(inputs, tensors) {
            let bytes = t.tensorData.withRawBytes { Data($0) }
            inputBytes.append(bytes)
            given[input.name] = HostTensor(name: input.name, dtype: t.dtype.rawValue, shape: t.shape, bytes: bytes)
        }
        let results: [HostTensor]
        do { results = try executor.run(inputs: given) } catch let e as RuntimeError {
            throw GLMCError("\(samples.label(i)): \(e.message)")
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
}

func nowSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
