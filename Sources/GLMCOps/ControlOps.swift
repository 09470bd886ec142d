import GLMCIR

/// Control flow: If, Loop and Scan. Their bodies are nested functions (graph attributes) run through
/// `EvalContext.runSubgraph`, which binds the values a body captures from the enclosing function.
public enum ControlOps {
    public static let all: [OpDefinition] = [ifOp, loopOp, scanOp]

    static let versions = [1, 11, 13, 16, 19, 21, 23, 24, 25]

    /// Loops without a trip count stop when their condition turns false; this bound turns a
    /// runaway loop in a hostile model into an error instead of a hang.
    static let maxIterations = 10_000_000

    static let ifOp = OpDefinition("If", since: versions, infer: { ctx in
        guard let thenBranch = try ctx.graph("then_branch"), let elseBranch = try ctx.graph("else_branch") else {
            throw ctx.error("needs then_branch and else_branch graphs")
        }
        guard thenBranch.outputs.count == elseBranch.outputs.count, thenBranch.outputs.count >= ctx.outputCount else {
            throw ctx.error("then_branch has \(thenBranch.outputs.count) outputs, else_branch \(elseBranch.outputs.count), the node \(ctx.outputCount)")
        }
        return (0 ..< ctx.outputCount).map { i in
            merged(thenBranch.type(of: thenBranch.outputs[i]), elseBranch.type(of: elseBranch.outputs[i]))
        }
    }, evaluate: { ctx in
        let condition = try ctx.requiredInput(0)
        guard condition.count == 1 else { throw ctx.error("condition must hold one element, has shape \(condition.shape)") }
        let branch = try ctx.graph(condition.doubles[0] != 0 ? "then_branch" : "else_branch")
        guard let branch else { throw ctx.error("missing branch graph") }
        return Array(try ctx.runSubgraph(branch, []).prefix(ctx.outputCount))
    })

    static let loopOp = OpDefinition("Loop", since: versions, infer: { ctx in
        guard let body = try ctx.graph("body") else { throw ctx.error("needs a body graph") }
        let carried = max(0, ctx.inputTypes.count - 2)
        guard body.arguments.count == carried + 2, body.outputs.count >= carried + 1 else {
            throw ctx.error("body takes \(body.arguments.count) inputs and gives \(body.outputs.count) outputs for \(carried) loop-carried values")
        }
        return (0 ..< ctx.outputCount).map { i in
            let bodyType = body.type(of: body.outputs[i + 1])
            if i < carried, let initial = ctx.inputType(i + 2) { return merged(initial, bodyType) }
            return TensorType(bodyType.dtype, Shape(bodyType.shape.dims.map { [.unknown] + $0 }))
        }
    }, evaluate: { ctx in
        guard let body = try ctx.graph("body") else { throw ctx.error("needs a body graph") }
        let tripCount = try ctx.input(0).map { t -> Int in
            guard t.count == 1 else { throw ctx.error("M must hold one element") }
            return Int(clamping: t.int64s[0])
        }
        var condition = try ctx.input(1).map { t -> Bool in
            guard t.count == 1 else { throw ctx.error("cond must hold one element") }
            return t.doubles[0] != 0
        } ?? true
        var carried = try (2 ..< max(2, ctx.inputs.count)).map { try ctx.requiredInput($0) }
        var scans: [[Tensor]] = []
        var iteration = 0
        while condition && iteration < (tripCount ?? Int.max) {
            guard iteration < maxIterations else { throw ctx.error("more than \(maxIterations) iterations; refusing to run on") }
            let outs = try ctx.runSubgraph(body, [Tensor([Int64(iteration)], shape: []), Tensor([condition], shape: [])] + carried)
            guard outs.count >= carried.count + 1 else { throw ctx.error("body returned \(outs.count) values") }
            condition = outs[0].count > 0 && outs[0].doubles[0] != 0
            carried = Array(outs[1 ... carried.count])
            let scanOutputs = Array(outs[(carried.count + 1)...])
            if scans.isEmpty { scans = scanOutputs.map { [$0] } } else {
                for (k, t) in scanOutputs.enumerated() { scans[k].append(t) }
            }
            iteration += 1
        }
        let scanCount = body.outputs.count - 1 - carried.count
        let stacked = try (0 ..< scanCount).map { k -> Tensor in
            guard k < scans.count, !scans[k].isEmpty else {
                let t = body.type(of: body.outputs[1 + carried.count + k])
                return Tensor.zeros(t.dtype, shape: [0] + (t.shape.staticSizes ?? []))
            }
            guard let s = Tensor.stack(scans[k], axis: 0) else {
                throw ctx.error("scan output \(k) changes shape between iterations; unsupported")
            }
            return s
        }
        return Array((carried + stacked).prefix(ctx.outputCount))
    })

    static let scanOp = OpDefinition("Scan", since: [8, 9, 11, 16, 19, 21, 23, 24, 25], infer: { ctx in
        guard ctx.opset >= 9 else { return try inferScan8(ctx) }
        guard let body = try ctx.graph("body") else { throw ctx.error("needs a body graph") }
        let scanInputs = try ctx.int("num_scan_inputs") ?? 0
        let states = ctx.inputTypes.count - scanInputs
        guard states >= 0, body.arguments.count == ctx.inputTypes.count, body.outputs.count >= states else {
            throw ctx.error("body signature does not match \(ctx.inputTypes.count) inputs with \(scanInputs) scan inputs")
        }
        let outputAxes = try ctx.ints("scan_output_axes") ?? []
        let length: Dim = {
            guard scanInputs > 0, let t = ctx.inputType(states), let dims = t.shape.dims else { return .unknown }
            let axes = (try? ctx.ints("scan_input_axes")) ?? nil
            let axis = axes?.first ?? 0
            let a = axis < 0 ? axis + dims.count : axis
            return a >= 0 && a < dims.count ? dims[a] : .unknown
        }()
        return (0 ..< ctx.outputCount).map { i in
            let t = body.type(of: body.outputs[i])
            if i < states { return t }
            guard var dims = t.shape.dims else { return TensorType(t.dtype, .unranked) }
            let k = i - states
            var axis = k < outputAxes.count ? outputAxes[k] : 0
            if axis < 0 { axis += dims.count + 1 }
            dims.insert(length, at: max(0, min(axis, dims.count)))
            return TensorType(t.dtype, Shape(dims))
        }
    }, evaluate: { ctx in
        guard ctx.opset >= 9 else { return try evaluateScan8(ctx) }
        guard let body = try ctx.graph("body") else { throw ctx.error("needs a body graph") }
        let scanCount = try ctx.int("num_scan_inputs") ?? 0
        let inputs = try ctx.inputs.indices.map { try ctx.requiredInput($0) }
        let stateCount = inputs.count - scanCount
        guard stateCount >= 0 else { throw ctx.error("num_scan_inputs \(scanCount) exceeds the \(inputs.count) inputs") }
        func axes(_ name: String, count: Int, rankOf: (Int) -> Int) throws -> [Int] {
            let given = try ctx.ints(name) ?? []
            return try (0 ..< count).map { k in
                try ShapeHelpers.normalizeAxis(k < given.count ? given[k] : 0, rank: rankOf(k), context: ctx)
            }
        }
        let scanned = Array(inputs[stateCount...])
        let inputAxes = try axes("scan_input_axes", count: scanCount) { scanned[$0].rank }
        let inputReversed = (try ctx.ints("scan_input_directions") ?? []).map { $0 == 1 }
        guard let length = scanned.first.map({ $0.shape[inputAxes[0]] }) else { throw ctx.error("needs at least one scan input") }
        for (k, t) in scanned.enumerated() where t.shape[inputAxes[k]] != length {
            throw ctx.error("scan inputs disagree on the sequence length (\(length) vs \(t.shape[inputAxes[k]]))")
        }
        var states = Array(inputs[..<stateCount])
        var collected: [[Tensor]] = Array(repeating: [], count: body.outputs.count - stateCount)
        for step in 0 ..< length {
            let slices = scanned.enumerated().map { k, t in
                t.slice(at: k < inputReversed.count && inputReversed[k] ? length - 1 - step : step, axis: inputAxes[k])
            }
            let outs = try ctx.runSubgraph(body, states + slices)
            guard outs.count == body.outputs.count else { throw ctx.error("body returned \(outs.count) values") }
            states = Array(outs[..<stateCount])
            for k in collected.indices { collected[k].append(outs[stateCount + k]) }
        }
        let outputReversed = (try ctx.ints("scan_output_directions") ?? []).map { $0 == 1 }
        let outputAxesGiven = try ctx.ints("scan_output_axes") ?? []
        let stacked = try collected.enumerated().map { k, parts -> Tensor in
            let ordered = k < outputReversed.count && outputReversed[k] ? Array(parts.reversed()) : parts
            let rank = (parts.first?.rank ?? 0) + 1
            let axis = try ShapeHelpers.normalizeAxis(k < outputAxesGiven.count ? outputAxesGiven[k] : 0, rank: rank, context: ctx)
            guard let s = Tensor.stack(ordered, axis: axis) else {
                if parts.isEmpty {
                    let t = body.type(of: body.outputs[stateCount + k])
                    return Tensor.zeros(t.dtype, shape: [0] + (t.shape.staticSizes ?? []))
                }
                throw ctx.error("scan output \(k) changes shape between iterations")
            }
            return s
        }
        return Array((states + stacked).prefix(ctx.outputCount))
    })

    /// Scan-8 has a leading batch axis on every state and scanned input (time is axis 1) and an
    /// optional `sequence_lens` first operand.
    static func inferScan8(_ ctx: InferenceContext) throws -> [TensorType] {
        guard let body = try ctx.graph("body") else { throw ctx.error("needs a body graph") }
        let scanCount = try ctx.int("num_scan_inputs") ?? 0
        let stateCount = ctx.inputTypes.count - 1 - scanCount
        guard stateCount >= 0, body.outputs.count >= stateCount else { throw ctx.error("body does not match the inputs") }
        let batch = ctx.inputType(1)?.shape.dims?.first ?? .unknown
        let time = ctx.inputType(1 + stateCount)?.shape.dims.flatMap { $0.count > 1 ? $0[1] : nil } ?? .unknown
        return (0 ..< ctx.outputCount).map { i in
            let t = body.type(of: body.outputs[i])
            guard let dims = t.shape.dims else { return TensorType(t.dtype, .unranked) }
            return TensorType(t.dtype, Shape([batch] + (i < stateCount ? [] : [time]) + dims))
        }
    }

    static func evaluateScan8(_ ctx: EvalContext) throws -> [Tensor] {
        guard let body = try ctx.graph("body") else { throw ctx.error("needs a body graph") }
        let scanCount = try ctx.int("num_scan_inputs") ?? 0
        let operands = try (1 ..< ctx.inputs.count).map { try ctx.requiredInput($0) }
        let stateCount = operands.count - scanCount
        guard stateCount >= 0, let first = operands.first, first.rank > 0 else { throw ctx.error("needs batched inputs") }
        let batch = first.shape[0]
        let reversed = (try ctx.ints("directions") ?? []).map { $0 == 1 }
        var finalStates: [[Tensor]] = Array(repeating: [], count: stateCount)
        var scanOutputs: [[Tensor]] = Array(repeating: [], count: body.outputs.count - stateCount)
        for b in 0 ..< batch {
            let perBatch = operands.map { $0.slice(at: b, axis: 0) }
            guard let length = perBatch[stateCount...].first.map({ $0.shape.first ?? 0 }) else { throw ctx.error("needs a scan input") }
            if let lens = ctx.input(0), lens.int64s.contains(where: { Int($0) != length }) {
                throw ctx.unsupported("Scan-8 with sequence_lens shorter than the sequence")
            }
            var states = Array(perBatch[..<stateCount])
            var steps: [[Tensor]] = Array(repeating: [], count: scanOutputs.count)
            for step in 0 ..< length {
                let slices = perBatch[stateCount...].enumerated().map { k, t in
                    t.slice(at: k < reversed.count && reversed[k] ? length - 1 - step : step, axis: 0)
                }
                let outs = try ctx.runSubgraph(body, states + slices)
                states = Array(outs[..<stateCount])
                for k in steps.indices { steps[k].append(outs[stateCount + k]) }
            }
            for k in 0 ..< stateCount { finalStates[k].append(states[k]) }
            for k in steps.indices {
                guard let s = Tensor.stack(steps[k], axis: 0) else { throw ctx.error("scan output \(k) changes shape") }
                scanOutputs[k].append(s)
            }
        }
        let results = try (finalStates + scanOutputs).map { parts -> Tensor in
            guard let s = Tensor.stack(parts, axis: 0) else { throw ctx.error("outputs differ in shape across the batch") }
            return s
        }
        return Array(results.prefix(ctx.outputCount))
    }

    /// The type both branches (or both loop iterations) agree on: same dtype; dims that differ become unknown.
    static func merged(_ a: TensorType, _ b: TensorType) -> TensorType {
        guard let da = a.shape.dims, let db = b.shape.dims, da.count == db.count else { return TensorType(a.dtype, .unranked) }
        return TensorType(a.dtype, Shape(zip(da, db).map { $0 == $1 ? $0 : .unknown }))
    }
}
