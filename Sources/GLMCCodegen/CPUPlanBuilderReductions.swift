import GLMCIR
import GLMCOps
import GLMCPlan

/// Lowering of reductions, scans, the softmax family, normalizations and classification losses
/// to the kernels of `CPUKernelLibraryReductions.swift`. Semantics follow the interpreter's
/// definitions (`GLMCOps/Reduction*.swift`, `NeuralPool.swift`).
extension CPUPlanBuilder.Generator {
    static let reductionOps: Set<String> = [
        "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
        "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin", "CumSum", "CumProd", "Softmax", "LogSoftmax", "Hardmax",
        "LayerNormalization", "RMSNormalization", "InstanceNormalization", "GroupNormalization", "LpNormalization",
        "MeanVarianceNormalization", "GlobalMaxPool", "GlobalLpPool", "SoftmaxCrossEntropyLoss", "NegativeLogLikelihoodLoss", "LpPool",
    ]

    /// The element type of `v` as the kernels handle it.
    func scalar(_ v: ValueID, _ inst: Instruction) throws -> CScalar {
        guard let s = CScalar(f.type(of: v).dtype) else { throw unsupported(inst, "on \(f.type(of: v).dtype) tensors") }
        return s
    }

    func floatScalar(_ v: ValueID, _ inst: Instruction) throws -> CScalar {
        let s = try scalar(v, inst)
        guard s.isFloat else { throw unsupported(inst, "on \(s.dtype) tensors") }
        return s
    }

    /// Integer values of a constant operand (axes, axis, ...).
    func constantIntegers(_ v: ValueID, _ inst: Instruction, what: String) throws -> [Int] {
        guard let c = constants[v], !c.isElided else { throw unsupported(inst, "whose '\(what)' operand is not a constant") }
        switch c.dtype {
        case .i64: return c.elements(as: Int64.self).map { Int($0) }
        case .i32: return c.elements(as: Int32.self).map { Int($0) }
        default: throw unsupported(inst, "whose '\(what)' operand is \(c.dtype)")
        }
    }

    /// Row-major strides of `shape`.
    static func rowMajorStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        for d in stride(from: shape.count - 2, through: 0, by: -1) { strides[d] = strides[d + 1] * shape[d + 1] }
        return strides
    }

    /// Strides that read a tensor of shape `from` as shape `to` (NumPy broadcasting, right-aligned;
    /// 0 on broadcast axes); nil when it does not broadcast.
    static func broadcastStrides(from: [Int], to: [Int]) -> [Int]? {
        guard from.count <= to.count else { return nil }
        let own = rowMajorStrides(from), offset = to.count - from.count
        var out = [Int](repeating: 0, count: to.count)
        for (i, size) in from.enumerated() {
            if size == to[offset + i] { out[offset + i] = size == 1 ? 0 : own[i] } else if size != 1 { return nil }
        }
        return out
    }

    /// The kept and reduced axes of `shape` as (sizes, strides) pairs over the input's strides.
    static func splitAxes(_ shape: [Int], reduced: Set<Int>) -> (keptSizes: [Int], keptStrides: [Int], reducedSizes: [Int], reducedStrides: [Int]) {
        let strides = rowMajorStrides(shape)
        var ks: [Int] = [], kst: [Int] = [], rs: [Int] = [], rst: [Int] = []
        for d in shape.indices {
            if reduced.contains(d) { rs.append(shape[d]); rst.append(strides[d]) } else { ks.append(shape[d]); kst.append(strides[d]) }
        }
        return (ks, kst, rs, rst)
    }

    /// A FLOAT attribute (an INT one accepted, as the interpreter does), as the interpreter reads it.
    func numberAttr(_ inst: Instruction, _ name: String, _ d: Float) -> Double {
        switch inst.attributes[name] {
        case .float(let v)?: return Double(v)
        case .int(let v)?: return Double(Float(v))
        default: return Double(d)
        }
    }

    func stringAttr(_ inst: Instruction, _ name: String, _ d: String) -> String {
        if case .string(let v)? = inst.attributes[name] { return v }
        return d
    }

    /// The buffer of result `k` when it exists and something reads it.
    func usedResultBuffer(_ inst: Instruction, _ k: Int) -> Int? {
        guard k < inst.results.count, isUsed(inst.results[k]) else { return nil }
        return bufferOf[inst.results[k]]
    }

    /// Adds the helpers the kernels of `CPUKernelLibraryReductions.swift` share to the translation
    /// unit, once.
    mutating func includeReductionHelpers() {
        if !source.contains("#define GLMCR_HELPERS") { source += "\n" + CPUKernelLibrary.reductionHelpers }
    }

    mutating func lowerReduction(_ inst: Instruction) throws {
        includeReductionHelpers()
        let op = inst.op.type
        guard let xv = inst.operands.first ?? nil else { throw unsupported(inst, "without an input") }
        let x = try sizes(xv, inst), xs = try scalar(xv, inst)
        let y = inst.results[0], ys = try scalar(y, inst)
        let yCount = try sizes(y, inst).reduce(1, *)
        let symbol = nextSymbol
        let io: [PlanArgument] = [try argument(xv, inst), try output(inst)]
        switch op {
        case _ where op.hasPrefix("Reduce"):
            let kinds: [String: CPUKernelLibrary.ReductionKind] = [
                "ReduceSum": .sum, "ReduceMean": .mean, "ReduceMax": .max, "ReduceMin": .min, "ReduceProd": .prod,
                "ReduceL1": .l1, "ReduceL2": .l2, "ReduceLogSum": .logSum, "ReduceLogSumExp": .logSumExp, "ReduceSumSquare": .sumSquare,
            ]
            guard let kind = kinds[op] else { throw unsupported(inst) }
            if xs.dtype == .bool, kind != .max, kind != .min { throw unsupported(inst, "on bool tensors") }
            let axesInputSince = op == "ReduceSum" ? 13 : 18
            var axes: [Int] = []
            if inst.opset >= axesInputSince {
                if inst.operands.count > 1, let av = inst.operands[1] { axes = try constantIntegers(av, inst, what: "axes") }
            } else if case .ints(let a)? = inst.attributes["axes"] {
                axes = a
            }
            if axes.isEmpty {
                if inst.opset >= axesInputSince, intAttr(inst, "noop_with_empty_axes", 0) != 0 {
                    // A no-op: the input unchanged.
                    let bytes = byteCount(y)
                    return addStep(kind: "copy", code: CPUKernelLibrary.copy(name: symbol, bytes: bytes), arguments: io, range: bytes)
                }
                axes = Array(x.indices)
            }
            let normalized = try axes.map { try normalizedAxis($0, rank: x.count, inst) }
            guard Set(normalized).count == normalized.count else { throw unsupported(inst, "with repeated axes \(axes)") }
            let split = Self.splitAxes(x, reduced: Set(normalized))
            guard split.keptSizes.reduce(1, *) == yCount, xs == ys else { throw unsupported(inst, "with inconsistent shapes") }
            addStep(kind: "reduce", code: CPUKernelLibrary.reduce(name: symbol, kind: kind, input: xs, output: ys, keptSizes: split.keptSizes,
                                                                 keptStrides: split.keptStrides, reducedSizes: split.reducedSizes,
                                                                 reducedStrides: split.reducedStrides),
                    arguments: io, range: yCount, work: max(1, split.reducedSizes.reduce(1, *)))
        case "GlobalMaxPool", "GlobalLpPool":
            guard xs.isFloat, x.count >= 2 else { throw unsupported(inst, "on \(xs.dtype) of rank \(x.count)") }
            let kind: CPUKernelLibrary.ReductionKind = op == "GlobalMaxPool" ? .max : .lp(numberAttr(inst, "p", 2))
            let split = Self.splitAxes(x, reduced: Set(2 ..< x.count))
            addStep(kind: "reduce", code: CPUKernelLibrary.reduce(name: symbol, kind: kind, input: xs, output: ys, keptSizes: split.keptSizes,
                                                                 keptStrides: split.keptStrides, reducedSizes: split.reducedSizes,
                                                                 reducedStrides: split.reducedStrides),
                    arguments: io, range: x[0] * x[1], work: max(1, split.reducedSizes.reduce(1, *)))
        case "LpPool":
            guard xs.isFloat, x.count >= 3, usedResultBuffer(inst, 1) == nil else { throw unsupported(inst, "on \(xs.dtype) of rank \(x.count)") }
            let rank = x.count - 2, out = try sizes(y, inst)
            func ints(_ name: String, _ d: Int) -> [Int] {
                if case .ints(let v)? = inst.attributes[name] { return v }
                return [Int](repeating: d, count: name == "pads" ? 2 * rank : rank)
            }
            let kernel = ints("kernel_shape", 0), strides = ints("strides", 1), pads = ints("pads", 0)
            let dilations = inst.opset >= 18 ? ints("dilations", 1) : [Int](repeating: 1, count: rank)
            guard kernel.count == rank, strides.count == rank, dilations.count == rank, pads.count == 2 * rank, out.count == x.count,
                  kernel.allSatisfy({ $0 > 0 }), strides.allSatisfy({ $0 > 0 }), dilations.allSatisfy({ $0 > 0 }) else {
                throw unsupported(inst, "with a window that does not fit rank \(rank)")
            }
            let autoPad = stringAttr(inst, "auto_pad", "NOTSET")
            var first: [[Int]] = [], count: [[Int]] = []
            for d in 0 ..< rank {
                let (input, output, k, st, dil) = (x[d + 2], out[d + 2], kernel[d], strides[d], dilations[d])
                let padBegin: Int
                switch autoPad {
                case "NOTSET": padBegin = pads[d]
                case "VALID": padBegin = 0
                case "SAME_UPPER", "SAME_LOWER":
                    let total = max(0, (output - 1) * st + (k - 1) * dil + 1 - input)
                    padBegin = autoPad == "SAME_UPPER" ? total / 2 : total - total / 2
                default: throw unsupported(inst, "with auto_pad \(autoPad)")
                }
                var f: [Int] = [], c: [Int] = []
                for o in 0 ..< output {
                    // The taps j < k whose input position start + j·dil lies in [0, input).
                    let start = o * st - padBegin
                    let lo = start >= 0 ? 0 : (-start + dil - 1) / dil
                    let hi = input - 1 - start < 0 ? 0 : min(k, (input - 1 - start) / dil + 1)
                    f.append(start + lo * dil)
                    c.append(max(0, hi - lo))
                }
                first.append(f); count.append(c)
            }
            addStep(kind: "lp_pool", code: CPUKernelLibrary.lpPool(name: symbol, scalar: xs, inSizes: Array(x[2...]), outSizes: Array(out[2...]),
                                                                  dilations: dilations, first: first, count: count, p: numberAttr(inst, "p", 2)),
                    arguments: io, range: yCount, work: kernel.reduce(1, *))
        case "ArgMax", "ArgMin":
            guard !x.isEmpty else { throw unsupported(inst, "on a scalar") }
            let axis = try normalizedAxis(intAttr(inst, "axis", 0), rank: x.count, inst)
            let (outer, n, inner) = (x[..<axis].reduce(1, *), x[axis], x[(axis + 1)...].reduce(1, *))
            guard n > 0 else { throw unsupported(inst, "over an empty axis") }
            let last = inst.opset >= 12 && intAttr(inst, "select_last_index", 0) != 0
            addStep(kind: "arg_reduce", code: CPUKernelLibrary.argReduce(name: symbol, findMax: op == "ArgMax", input: xs, outer: outer, n: n,
                                                                        inner: inner, selectLast: last),
                    arguments: io, range: outer * inner, work: n)
        case "CumSum", "CumProd":
            guard inst.operands.count > 1, let av = inst.operands[1] else { throw unsupported(inst, "without an axis") }
            guard !x.isEmpty else { throw unsupported(inst, "on a scalar") }
            if xs.dtype == .bool { throw unsupported(inst, "on bool tensors") }
            var geometries: [CPUKernelLibrary.CumulativeGeometry] = []
            var arguments = [io[0]]
            let runtimeAxis: CScalar?
            if constants[av] == nil {
                // A runtime axis: one geometry per axis it may name; the kernel picks by the value it reads.
                guard let a = CScalar(f.type(of: av).dtype), a.dtype == .i64 || a.dtype == .i32, try sizes(av, inst).reduce(1, *) == 1 else {
                    throw unsupported(inst, "with axis \(f.type(of: av))")
                }
                runtimeAxis = a
                geometries = x.indices.map { .init(outer: x[..<$0].reduce(1, *), n: x[$0], inner: x[($0 + 1)...].reduce(1, *)) }
                arguments.append(try argument(av, inst))
            } else {
                let axisValues = try constantIntegers(av, inst, what: "axis")
                guard axisValues.count == 1 else { throw unsupported(inst, "with axis \(axisValues) on rank \(x.count)") }
                let axis = try normalizedAxis(axisValues[0], rank: x.count, inst)
                runtimeAxis = nil
                geometries = [.init(outer: x[..<axis].reduce(1, *), n: x[axis], inner: x[(axis + 1)...].reduce(1, *))]
            }
            arguments.append(io[1])
            addStep(kind: "cumulative", code: CPUKernelLibrary.cumulative(name: symbol, product: op == "CumProd", scalar: xs, geometries: geometries,
                                                                         runtimeAxis: runtimeAxis, exclusive: intAttr(inst, "exclusive", 0) != 0,
                                                                         reverse: intAttr(inst, "reverse", 0) != 0),
                    arguments: arguments, range: geometries.map { $0.outer * $0.inner }.max() ?? 0, work: geometries.map(\.n).max() ?? 0)
        case "Softmax", "LogSoftmax", "Hardmax":
            guard xs.isFloat else { throw unsupported(inst, "on \(xs.dtype) tensors") }
            let axis = try normalizedAxis(intAttr(inst, "axis", inst.opset >= 13 ? -1 : 1), rank: x.count, inst)
            var (outer, n, inner) = axis < x.count ? (x[..<axis].reduce(1, *), x[axis], x[(axis + 1)...].reduce(1, *)) : (x.reduce(1, *), 1, 1)
            // Before opset 13 the input is coerced to 2-D at `axis`: one row is all later axes.
            if inst.opset < 13 { n *= inner; inner = 1 }
            let kind: CPUKernelLibrary.SoftmaxKind = op == "Softmax" ? .softmax : op == "LogSoftmax" ? .logSoftmax : .hardmax
            addStep(kind: op == "Softmax" ? "softmax" : op == "LogSoftmax" ? "log_softmax" : "hardmax",
                    code: CPUKernelLibrary.softmaxFamily(name: symbol, kind: kind, scalar: xs, outer: outer, n: n, inner: inner),
                    arguments: io, range: n == 0 ? 0 : outer * inner, work: n * 4)
        case "LayerNormalization", "RMSNormalization":
            guard xs.isFloat, inst.operands.count >= 2, let sv = inst.operands[1] else { throw unsupported(inst) }
            let axis = try normalizedAxis(intAttr(inst, "axis", -1), rank: x.count, inst)
            let rowLength = x[axis...].reduce(1, *), rows = x[..<axis].reduce(1, *)
            let epsilon = Double(floatAttr(inst, "epsilon", 1e-5))
            func parameter(_ v: ValueID) throws -> CPUKernelLibrary.Parameter {
                guard let strides = Self.broadcastStrides(from: try sizes(v, inst), to: x) else {
                    throw unsupported(inst, "with a parameter of shape \(try sizes(v, inst)) that does not broadcast to \(x)")
                }
                return .init(scalar: try floatScalar(v, inst), strides: strides)
            }
            let bias = op == "LayerNormalization" && inst.operands.count > 2 ? inst.operands[2] : nil
            var args = [try argument(xv, inst), try argument(sv, inst)]
            if let bias { args.append(try argument(bias, inst)) }
            args.append(try output(inst))
            var stash = ys
            let meanBuffer = op == "LayerNormalization" ? usedResultBuffer(inst, 1) : nil
            let invBuffer = op == "LayerNormalization" ? usedResultBuffer(inst, 2) : nil
            if let b = meanBuffer { args.append(.buffer(b)); stash = try floatScalar(inst.results[1], inst) }
            if let b = invBuffer { args.append(.buffer(b)); stash = try floatScalar(inst.results[2], inst) }
            let kind: CPUKernelLibrary.RowNormalization = op == "RMSNormalization" ? .rms(epsilon: epsilon)
                : .layer(epsilon: epsilon, mean: meanBuffer != nil, invStdDev: invBuffer != nil)
            addStep(kind: op == "RMSNormalization" ? "rms_norm" : "layer_norm",
                    code: CPUKernelLibrary.normalizeRows(name: symbol, kind: kind, scalar: xs, rows: rows, rowLength: rowLength, viewSizes: x,
                                                         scale: try parameter(sv), bias: try bias.map(parameter), stash: stash),
                    arguments: args, range: rows, work: rowLength * 4)
        case "InstanceNormalization", "GroupNormalization":
            guard xs.isFloat, x.count >= 2, inst.operands.count == 3, let sv = inst.operands[1], let bv = inst.operands[2] else {
                throw unsupported(inst)
            }
            let (n, c, spatial) = (x[0], x[1], x.dropFirst(2).reduce(1, *))
            let groups = op == "InstanceNormalization" ? c : intAttr(inst, "num_groups", 0)
            guard groups > 0, c % groups == 0 else { throw unsupported(inst, "with num_groups \(groups) for \(c) channels") }
            let paramCount = try sizes(sv, inst).reduce(1, *)
            guard try sizes(bv, inst).reduce(1, *) == paramCount, paramCount == c || paramCount == groups else {
                throw unsupported(inst, "with parameters of \(paramCount) elements for \(c) channels")
            }
            // Per channel: view X as [N, C, spatial]; per group (GroupNormalization-18): [N, G, C/G, spatial].
            let perChannel = paramCount == c
            let view = perChannel ? [n, c, spatial] : [n, groups, c / groups, spatial]
            let strides = perChannel ? [0, 1, 0] : [0, 1, 0, 0]
            let scale = CPUKernelLibrary.Parameter(scalar: try floatScalar(sv, inst), strides: strides)
            let bias = CPUKernelLibrary.Parameter(scalar: try floatScalar(bv, inst), strides: strides)
            let rowLength = c / groups * spatial
            addStep(kind: op == "InstanceNormalization" ? "instance_norm" : "group_norm",
                    code: CPUKernelLibrary.normalizeRows(name: symbol, kind: .layer(epsilon: Double(floatAttr(inst, "epsilon", 1e-5)), mean: false, invStdDev: false),
                                                         scalar: xs, rows: n * groups, rowLength: rowLength, viewSizes: view,
                                                         scale: scale, bias: bias, stash: xs),
                    arguments: [try argument(xv, inst), try argument(sv, inst), try argument(bv, inst), try output(inst)],
                    range: n * groups, work: rowLength * 4)
        case "LpNormalization", "MeanVarianceNormalization":
            guard xs.isFloat else { throw unsupported(inst, "on \(xs.dtype) tensors") }
            let kind: CPUKernelLibrary.GroupNormalization
            let axes: [Int]
            if op == "LpNormalization" {
                let p = intAttr(inst, "p", 2)
                guard p == 1 || p == 2 else { throw unsupported(inst, "with p = \(p)") }
                kind = .lp(p)
                axes = [intAttr(inst, "axis", -1)]
            } else {
                kind = .meanVariance
                if case .ints(let a)? = inst.attributes["axes"] { axes = a } else { axes = [0, 2, 3] }
            }
            let normalized = try axes.map { try normalizedAxis($0, rank: x.count, inst) }
            guard Set(normalized).count == normalized.count else { throw unsupported(inst, "with repeated axes \(axes)") }
            let split = Self.splitAxes(x, reduced: Set(normalized))
            let groups = split.keptSizes.reduce(1, *)
            addStep(kind: op == "LpNormalization" ? "lp_norm" : "mean_variance_norm",
                    code: CPUKernelLibrary.normalizeGroups(name: symbol, kind: kind, scalar: xs, keptSizes: split.keptSizes,
                                                           keptStrides: split.keptStrides, reducedSizes: split.reducedSizes,
                                                           reducedStrides: split.reducedStrides),
                    arguments: io, range: groups, work: max(1, split.reducedSizes.reduce(1, *) * 3))
        default:  // SoftmaxCrossEntropyLoss, NegativeLogLikelihoodLoss
            guard xs.isFloat, x.count >= 2, inst.operands.count >= 2, let tv = inst.operands[1] else { throw unsupported(inst) }
            let ts = try scalar(tv, inst)
            guard ts.dtype == .i64 || ts.dtype == .i32, try sizes(tv, inst) == [x[0]] + x[2...] else {
                throw unsupported(inst, "with a target of type \(ts.dtype) and shape \(try sizes(tv, inst))")
            }
            let reduction = stringAttr(inst, "reduction", "mean")
            guard ["none", "sum", "mean"].contains(reduction) else { throw unsupported(inst, "with reduction '\(reduction)'") }
            var args = [try argument(xv, inst), try argument(tv, inst)]
            var weight: CScalar?
            if inst.operands.count > 2, let wv = inst.operands[2] {
                guard try sizes(wv, inst) == [x[1]] else { throw unsupported(inst, "with a weight of shape \(try sizes(wv, inst))") }
                weight = try floatScalar(wv, inst)
                args.append(try argument(wv, inst))
            }
            args.append(try output(inst))
            let logSoftmax = op == "SoftmaxCrossEntropyLoss"
            let logProb = logSoftmax ? usedResultBuffer(inst, 1) : nil
            if let logProb { args.append(.buffer(logProb)) }
            var ignore: Int?
            if case .int(let v)? = inst.attributes["ignore_index"] { ignore = v }
            addStep(kind: logSoftmax ? "softmax_cross_entropy_loss" : "nll_loss",
                    code: CPUKernelLibrary.classificationLoss(name: symbol, scalar: xs, target: ts, weight: weight, batch: x[0], classes: x[1],
                                                              inner: x[2...].reduce(1, *), logSoftmax: logSoftmax, logProbOutput: logProb != nil,
                                                              ignoreIndex: ignore, reduction: reduction),
                    arguments: args, range: 1, work: 1, scratchPerUnit: logSoftmax ? 8 * max(1, x.reduce(1, *)) : 0)
        }
    }
}
