import GLMCIR
import GLMCOps
import GLMCPasses
import GLMCPlan

/// Attention (opsets 23-24), LinearAttention, FlexAttention (score/prob modifiers that are
/// elementwise once specialized to the static shape),
/// RotaryEmbedding and TopK on the CPU target: lowering and kernels.
/// Semantics follow the interpreter (`GLMCOps/NeuralAttention.swift`, `ReductionOps.swift`).
extension CPUPlanBuilder.Generator {
    static let attentionOps: Set<String> = ["Attention", "LinearAttention", "RotaryEmbedding", "TopK"]

    mutating func lowerAttentionFamily(_ inst: Instruction) throws {
        includeReductionHelpers()
        switch inst.op.type {
        case "Attention": try lowerAttention(inst)
        case "LinearAttention": try lowerLinearAttention(inst)
        case "RotaryEmbedding": try lowerRotaryEmbedding(inst)
        default: try lowerTopK(inst)
        }
    }

    func operand(_ inst: Instruction, _ i: Int) -> ValueID? {
        i < inst.operands.count ? inst.operands[i] : nil
    }

    mutating func lowerAttention(_ inst: Instruction) throws {
        guard let qv = operand(inst, 0), let kv = operand(inst, 1), let vv = operand(inst, 2) else { throw unsupported(inst) }
        let q = try sizes(qv, inst), k = try sizes(kv, inst), v = try sizes(vv, inst)
        let qs = try floatScalar(qv, inst), ks = try floatScalar(kv, inst), vs = try floatScalar(vv, inst)
        let ys = try floatScalar(inst.results[0], inst)
        let maskV = operand(inst, 3), pastKV = operand(inst, 4), pastVV = operand(inst, 5), nonpadV = operand(inst, 6)
        guard (pastKV == nil) == (pastVV == nil), nonpadV == nil || pastKV == nil else { throw unsupported(inst, "with inconsistent optional inputs") }
        guard q.count == k.count, q.count == v.count, q.count == 3 || q.count == 4 else {
            throw unsupported(inst, "with Q \(q), K \(k), V \(v)")
        }
        var d = CPUKernelLibrary.AttentionShape(batch: q[0], qHeads: 0, kvHeads: 0, qLen: 0, pastLen: 0, kvLen: 0, headSize: 0,
                                                vHeadSize: 0, threeD: q.count == 3)
        if q.count == 4 {
            guard k[0] == q[0], v[0] == q[0], k[1] == v[1], k[2] == v[2], k[3] == q[3] else { throw unsupported(inst, "with Q \(q), K \(k), V \(v)") }
            (d.qHeads, d.kvHeads, d.qLen, d.kvLen, d.headSize, d.vHeadSize) = (q[1], k[1], q[2], k[2], q[3], v[3])
        } else {
            let qh = intAttr(inst, "q_num_heads", 0), kvh = intAttr(inst, "kv_num_heads", 0)
            guard qh > 0, kvh > 0, q[2] % qh == 0, k[2] % kvh == 0, v[2] % kvh == 0, k[0] == q[0], v[0] == q[0], k[1] == v[1],
                  k[2] / kvh == q[2] / qh else {
                throw unsupported(inst, "with Q \(q), K \(k), V \(v) and heads \(qh), \(kvh)")
            }
            (d.qHeads, d.kvHeads, d.qLen, d.kvLen, d.headSize, d.vHeadSize) = (qh, kvh, q[1], k[1], q[2] / qh, v[2] / kvh)
        }
        guard d.kvHeads > 0, d.qHeads % d.kvHeads == 0 else { throw unsupported(inst, "with \(d.qHeads) query and \(d.kvHeads) key/value heads") }
        if let pastKV, let pastVV {
            let pk = try sizes(pastKV, inst), pv = try sizes(pastVV, inst)
            guard pk.count == 4 else { throw unsupported(inst, "with past_key \(pk)") }
            d.pastLen = pk[2]
            guard pk == [d.batch, d.kvHeads, d.pastLen, d.headSize], pv == [d.batch, d.kvHeads, d.pastLen, d.vHeadSize] else {
                throw unsupported(inst, "with past_key \(pk) / past_value \(pv)")
            }
        }
        let left = intAttr(inst, "left_window_size", -1), right = intAttr(inst, "right_window_size", -1)
        guard left >= -1, right >= -1 else { throw unsupported(inst, "with window sizes \(left), \(right)") }
        var mask: CPUKernelLibrary.AttentionMask?
        if let maskV {
            let m = try sizes(maskV, inst), ms = try scalar(maskV, inst)
            guard m.count >= 1, m.count <= 4, ms.isFloat || ms.dtype == .bool else { throw unsupported(inst, "with attn_mask \(ms.dtype)\(m)") }
            let full = [Int](repeating: 1, count: 4 - m.count) + m
            let target = [d.batch, d.qHeads, d.qLen]
            var strides = [0, 0, 0], acc = full[3]
            guard full[3] <= d.pastLen + d.kvLen else { throw unsupported(inst, "with an attn_mask longer than the key sequence") }
            for axis in stride(from: 2, through: 0, by: -1) {
                guard full[axis] == 1 || full[axis] == target[axis] else { throw unsupported(inst, "with attn_mask \(m)") }
                strides[axis] = full[axis] == 1 ? 0 : acc
                acc *= full[axis]
            }
            mask = .init(scalar: ms, strides: strides, length: full[3])
        }
        var nonpad: CScalar?
        if let nonpadV {
            nonpad = try scalar(nonpadV, inst)
            guard nonpad?.dtype == .i64 || nonpad?.dtype == .i32, try sizes(nonpadV, inst).reduce(1, *) == d.batch else {
                throw unsupported(inst, "with nonpad_kv_seqlen \(try sizes(nonpadV, inst))")
            }
        }
        let scaleAttr: Double? = { if case .float(let s)? = inst.attributes["scale"] { return Double(s) }; return nil }()
        let options = CPUKernelLibrary.AttentionOptions(
            isCausal: intAttr(inst, "is_causal", 0) != 0, softcap: numberAttr(inst, "softcap", 0),
            scale: scaleAttr ?? 1 / Double(d.headSize).squareRoot(), leftWindow: left, rightWindow: right,
            qkMode: intAttr(inst, "qk_matmul_output_mode", 0))
        let qkBuffer = usedResultBuffer(inst, 3)
        var args = [try argument(qv, inst), try argument(kv, inst), try argument(vv, inst)]
        for case let o? in [maskV, pastKV, pastVV, nonpadV] { args.append(try argument(o, inst)) }
        args.append(try output(inst))
        if let qkBuffer {
            args.append(.buffer(qkBuffer))
            guard try floatScalar(inst.results[3], inst) == qs else { throw unsupported(inst, "with a qk output of another type") }
        }
        let total = d.pastLen + d.kvLen
        addStep(kind: "attention", code: CPUKernelLibrary.attention(name: nextSymbol, d, q: qs, k: ks, v: vs, y: ys, mask: mask, hasPast: pastKV != nil,
                                                                    nonpad: nonpad, qkOutput: qkBuffer != nil, options: options),
                arguments: args, range: d.batch * d.qHeads * d.qLen, work: total * (d.headSize + d.vHeadSize), scratchPerUnit: 16 * max(total, 1))
        // present_key / present_value: past and new keys (values) concatenated, heads first.
        let presentKey = usedResultBuffer(inst, 1), presentValue = usedResultBuffer(inst, 2)
        if presentKey != nil || presentValue != nil {
            var args = [try argument(kv, inst), try argument(vv, inst)]
            if let pastKV, let pastVV { args += [try argument(pastKV, inst), try argument(pastVV, inst)] }
            for case let b? in [presentKey, presentValue] { args.append(.buffer(b)) }
            for (r, s) in [(1, ks), (2, vs)] where usedResultBuffer(inst, r) != nil {
                guard try scalar(inst.results[r], inst) == s else { throw unsupported(inst, "with a present output of another type") }
            }
            addStep(kind: "attention_present", code: CPUKernelLibrary.attentionPresent(name: nextSymbol, d, k: ks, v: vs, hasPast: pastKV != nil,
                                                                                      key: presentKey != nil, value: presentValue != nil),
                    arguments: args, range: d.batch * d.kvHeads * total, work: d.headSize + d.vHeadSize)
        }
    }

    mutating func lowerLinearAttention(_ inst: Instruction) throws {
        guard let qv = operand(inst, 0), let kv = operand(inst, 1), let vv = operand(inst, 2) else { throw unsupported(inst) }
        let pastV = operand(inst, 3), decayV = operand(inst, 4), betaV = operand(inst, 5)
        let q = try sizes(qv, inst), k = try sizes(kv, inst), v = try sizes(vv, inst)
        let rule = stringAttr(inst, "update_rule", "gated_delta")
        let gated = rule.hasPrefix("gated"), delta = rule.hasSuffix("delta")
        guard ["linear", "gated", "delta", "gated_delta"].contains(rule), gated == (decayV != nil), delta == (betaV != nil) else {
            throw unsupported(inst, "with update_rule '\(rule)' and its decay/beta operands")
        }
        let qh = intAttr(inst, "q_num_heads", 0), kvh = intAttr(inst, "kv_num_heads", 0)
        guard qh > 0, kvh > 0, qh % kvh == 0, q.count == 3, k.count == 3, v.count == 3, k[0] == q[0], v[0] == q[0],
              k[1] == q[1], v[1] == q[1], q[2] % qh == 0, k[2] % kvh == 0, v[2] % kvh == 0, q[2] / qh == k[2] / kvh else {
            throw unsupported(inst, "with query \(q), key \(k), value \(v) and heads \(qh), \(kvh)")
        }
        var shape = CPUKernelLibrary.LinearAttentionShape(batch: q[0], steps: q[1], qHeads: qh, kvHeads: kvh, keySize: q[2] / qh,
                                                          valueSize: v[2] / kvh, decayWidth: 0, betaWidth: 0)
        let (b, t, dk, dv) = (shape.batch, shape.steps, shape.keySize, shape.valueSize)
        if let pastV, try sizes(pastV, inst) != [b, kvh, dk, dv] { throw unsupported(inst, "with past_state \(try sizes(pastV, inst))") }
        if let decayV {
            let g = try sizes(decayV, inst)
            guard g.count == 3, g[0] == b, g[1] == t, g[2] == kvh || g[2] == kvh * dk else { throw unsupported(inst, "with decay \(g)") }
            shape.decayWidth = g[2]
        }
        if let betaV {
            let e = try sizes(betaV, inst)
            guard e.count == 3, e[0] == b, e[1] == t, e[2] == kvh || e[2] == 1 else { throw unsupported(inst, "with beta \(e)") }
            shape.betaWidth = e[2]
        }
        let scaleAttr = numberAttr(inst, "scale", 0)
        var args: [PlanArgument] = []
        var scalars: [CScalar] = []
        for case let o? in [qv, kv, vv, pastV, decayV, betaV] { args.append(try argument(o, inst)); scalars.append(try floatScalar(o, inst)) }
        args.append(try output(inst))
        let state = usedResultBuffer(inst, 1)
        if let state { args.append(.buffer(state)) }
        addStep(kind: "linear_attention",
                code: CPUKernelLibrary.linearAttention(name: nextSymbol, shape, q: scalars[0], k: scalars[1], v: scalars[2],
                                                       past: pastV == nil ? nil : scalars[3],
                                                       decay: decayV.map { _ in scalars[pastV == nil ? 3 : 4] },
                                                       beta: betaV.map { _ in scalars.last! },
                                                       y: try floatScalar(inst.results[0], inst),
                                                       state: try state.map { _ in try floatScalar(inst.results[1], inst) },
                                                       scale: scaleAttr == 0 ? 1 / Double(dk).squareRoot() : scaleAttr),
                arguments: args, range: b * kvh, work: t * dk * dv * (qh / kvh + 3), scratchPerUnit: 8 * (dk * dv + dv))
    }

    /// FlexAttention (ai.onnx.preview): scores and probabilities rounded to the softmax
    /// precision, as the interpreter computes them. Without score_mod / prob_mod graphs, one
    /// kernel; with them, see `lowerModifiedFlexAttention`.
    mutating func lowerFlexAttention(_ inst: Instruction) throws {
        includeReductionHelpers()
        guard let qv = operand(inst, 0), let kv = operand(inst, 1), let vv = operand(inst, 2) else { throw unsupported(inst) }
        let q = try sizes(qv, inst), k = try sizes(kv, inst), v = try sizes(vv, inst)
        let qs = try floatScalar(qv, inst), ks = try floatScalar(kv, inst), vs = try floatScalar(vv, inst)
        guard q.count == 4, k.count == 4, v.count == 4, k[0] == q[0], v[0] == q[0], k[1] == v[1], k[2] == v[2], k[3] == q[3],
              k[1] > 0, q[1] % k[1] == 0 else {
            throw unsupported(inst, "with Q \(q), K \(k), V \(v)")
        }
        let computeType: DType
        switch intAttr(inst, "softmax_precision", qs.dtype == .f64 ? 11 : 1) {
        case 1: computeType = .f32
        case 10: computeType = .f16
        case 11: computeType = .f64
        case 16: computeType = .bf16
        case let code: throw unsupported(inst, "with softmax_precision \(code)")
        }
        // The interpreter's default scale is 1/sqrt(E) rounded to float.
        let scale = numberAttr(inst, "scale", Float(1 / Double(q[3]).squareRoot()))
        let shape = CPUKernelLibrary.AttentionShape(batch: q[0], qHeads: q[1], kvHeads: k[1], qLen: q[2], pastLen: 0, kvLen: k[2],
                                                    headSize: q[3], vHeadSize: v[3], threeD: false)
        if inst.attributes["score_mod"] != nil || inst.attributes["prob_mod"] != nil {
            return try lowerModifiedFlexAttention(inst, shape, q: qs, k: ks, v: vs, compute: CScalar(computeType)!, scale: scale)
        }
        addStep(kind: "flex_attention",
                code: CPUKernelLibrary.flexAttention(name: nextSymbol, shape, q: qs, k: ks, v: vs, y: try floatScalar(inst.results[0], inst),
                                                     compute: CScalar(computeType)!, scale: scale),
                arguments: [try argument(qv, inst), try argument(kv, inst), try argument(vv, inst), try output(inst)],
                range: q[0] * q[1] * q[2], work: k[2] * (q[3] + v[3]), scratchPerUnit: 8 * max(k[2], 1))
    }

    /// FlexAttention with score_mod and/or prob_mod graphs, as steps over two arena buffers of
    /// the [B, Hq, L, S] scores in the softmax precision: the scaled scores; each modifier as an
    /// elementwise kernel from one buffer into the other; the softmax of each row in place; the
    /// weighted sum of the values.
    ///
    /// A modifier graph maps the whole scores tensor to a new one; specialized to the static
    /// shape, its shape arithmetic (Shape, Gather, Range, Reshape of the positions...) folds into
    /// constants, and what is left must be elementwise on the scores with constant (broadcast)
    /// operands: those become the kernel's weights. Anything else is refused.
    mutating func lowerModifiedFlexAttention(_ inst: Instruction, _ d: CPUKernelLibrary.AttentionShape, q: CScalar, k: CScalar, v: CScalar,
                                             compute: CScalar, scale: Double) throws {
        guard let qv = operand(inst, 0), let kv = operand(inst, 1), let vv = operand(inst, 2) else { throw unsupported(inst) }
        let scoresShape = [d.batch, d.qHeads, d.qLen, d.kvLen]
        var modifiers: [String: (kernel: Kernel, weights: [TensorData])] = [:]
        for name in ["score_mod", "prob_mod"] {
            guard let attribute = inst.attributes[name] else { continue }
            guard case .graph(let graph) = attribute else { throw unsupported(inst, "whose \(name) is not a graph") }
            do {
                modifiers[name] = try Self.modifierKernel(graph, shape: scoresShape, compute: compute.dtype)
            } catch let e as GLMCError {
                throw unsupported(inst, "with a \(name) graph that is not elementwise on the scores (\(e.message))")
            }
        }
        let rows = d.batch * d.qHeads * d.qLen, count = rows * d.kvLen
        let buffersBytes = count * compute.dtype.byteSize
        let scores = addBuffer(offset: arenaBytes, bytes: buffersBytes)
        let other = addBuffer(offset: PlanLayout.align(arenaBytes + buffersBytes), bytes: buffersBytes)
        arenaBytes = PlanLayout.align(PlanLayout.align(arenaBytes + buffersBytes) + buffersBytes)
        addStep(kind: "flex_attention_scores", code: CPUKernelLibrary.flexScores(name: nextSymbol, d, q: q, k: k, compute: compute, scale: scale),
                arguments: [try argument(qv, inst), try argument(kv, inst), .buffer(scores)], range: rows, work: d.kvLen * d.headSize)
        var current = scores, spare = other
        // Runs modifier `name` from the current buffer into the spare one.
        func modify(_ name: String, _ g: inout CPUPlanBuilder.Generator) throws {
            guard let (kernel, weights) = modifiers[name] else { return }
            var args: [PlanArgument] = [.buffer(current)]
            for (i, w) in weights.enumerated() { args.append(try g.weight(key: "\(inst.nodeName)#\(name)#\(g.steps.count)#\(i)", name: "\(name)_\(i)", w, inst)) }
            g.addElementwiseStep(kernel, arguments: args + [.buffer(spare)])
            swap(&current, &spare)
        }
        try modify("score_mod", &self)
        addStep(kind: "flex_attention_softmax", code: CPUKernelLibrary.flexSoftmax(name: nextSymbol, length: d.kvLen, compute: compute),
                arguments: [.buffer(current)], range: rows, work: 3 * d.kvLen)
        try modify("prob_mod", &self)
        addStep(kind: "flex_attention_values", code: CPUKernelLibrary.flexValues(name: nextSymbol, d, v: v, y: try floatScalar(inst.results[0], inst), compute: compute),
                arguments: [.buffer(current), try argument(vv, inst), try output(inst)], range: rows, work: d.kvLen * d.vHeadSize)
    }

    /// The elementwise kernel of a FlexAttention modifier graph specialized to scores of `shape`
    /// in `compute`, and the constants its buffers after the scores hold (one-element constants
    /// become literals). Throws a `GLMCError` for a graph that is not elementwise on the scores.
    static func modifierKernel(_ graph: Function, shape: [Int], compute: DType) throws -> (kernel: Kernel, weights: [TensorData]) {
        guard graph.arguments.count == 1, graph.outputs.count == 1, graph.captures.isEmpty else {
            throw GLMCError("it must take the scores alone and return one tensor")
        }
        var g = graph
        // Groups the pipeline fused in the graph are flattened: their types are re-inferred.
        while let i = g.body.firstIndex(where: { $0.op == FusedOps.fused }) {
            guard CPUPlanBuilder.inlineFusedGroup(at: i, in: &g) else { throw GLMCError("a fused group cannot be flattened") }
        }
        g.values[g.arguments[0].index].type = TensorType(compute, static: shape)
        try inferTypes(in: &g)
        let opset = g.body.filter { $0.op.domain.isEmpty }.map(\.opset).max() ?? OpRegistry.newestOpset
        var module = Module(opsets: ["": opset], main: g)
        let context = PassContext()
        _ = try FoldShapeComputations().run(on: &module, context: context)
        _ = try ConstantFold().run(on: &module, context: context)
        _ = try DeadCodeElimination().run(on: &module, context: context)
        g = module.main
        try inferTypes(in: &g)
        let out = g.type(of: g.outputs[0])
        guard out.dtype == compute, out.shape.staticSizes == shape else {
            throw GLMCError("it returns \(out) for scores \(TensorType(compute, static: shape))")
        }
        // Constants the kernel cannot inline become its arguments after the scores.
        var weights: [TensorData] = []
        g.body = g.body.filter { inst in
            guard let c = inst.constantValue, !ElementwiseLowering.inlinesConstant(c) else { return true }
            g.arguments.append(inst.results[0])
            weights.append(c)
            return false
        }
        let fused = Instruction(op: FusedOps.fused, opset: 1, operands: g.arguments.map { Optional($0) }, results: [],
                                attributes: ["body": .graph(g)])
        return (try ElementwiseLowering.lower(fused, in: g), weights)
    }

    /// Infers every result type of `g` again from its arguments' types (the graph's declared,
    /// symbolic types give way to what the static arguments imply).
    static func inferTypes(in g: inout Function) throws {
        var constants: [ValueID: TensorData] = [:]
        for inst in g.body {
            if let c = inst.constantValue { constants[inst.results[0]] = c; continue }
            guard let definition = OpRegistry.definition(of: inst.op) else { throw GLMCError("unknown op \(inst.op)") }
            let context = InferenceContext(op: inst.op, nodeName: inst.nodeName, opset: inst.opset, attributes: inst.attributes,
                                           outputCount: inst.results.count, inputTypes: inst.operands.map { $0.map { g.type(of: $0) } },
                                           constantInputs: inst.operands.map { $0.flatMap { constants[$0] } })
            for (r, t) in zip(inst.results, try definition.infer(context)) { g.values[r.index].type = t }
        }
    }

    mutating func lowerRotaryEmbedding(_ inst: Instruction) throws {
        guard let xv = operand(inst, 0), let cv = operand(inst, 1), let sv = operand(inst, 2) else { throw unsupported(inst) }
        let x = try sizes(xv, inst), xs = try floatScalar(xv, inst)
        let cosShape = try sizes(cv, inst), cs = try floatScalar(cv, inst), ss = try floatScalar(sv, inst)
        guard x.count == 3 || x.count == 4 else { throw unsupported(inst, "of rank \(x.count)") }
        let batch = x[0]
        let (heads, seq, headSize): (Int, Int, Int)
        if x.count == 4 {
            (heads, seq, headSize) = (x[1], x[2], x[3])
        } else {
            let n = intAttr(inst, "num_heads", 0)
            guard n > 0, x[2] % n == 0 else { throw unsupported(inst, "with num_heads \(n) for \(x)") }
            (heads, seq, headSize) = (n, x[1], x[2] / n)
        }
        var rotary = intAttr(inst, "rotary_embedding_dim", 0)
        if rotary == 0 { rotary = headSize }
        guard rotary > 0, rotary <= headSize, rotary % 2 == 0, cosShape.last == rotary / 2, try sizes(sv, inst) == cosShape else {
            throw unsupported(inst, "with rotary_embedding_dim \(rotary) and caches \(cosShape)")
        }
        var args = [try argument(xv, inst), try argument(cv, inst), try argument(sv, inst)]
        var positions: CScalar?
        if let pv = operand(inst, 3) {
            positions = try scalar(pv, inst)
            guard positions?.dtype == .i64 || positions?.dtype == .i32, try sizes(pv, inst) == [batch, seq], cosShape.count == 2 else {
                throw unsupported(inst, "with position_ids \(try sizes(pv, inst)) and caches \(cosShape)")
            }
            args.append(try argument(pv, inst))
        } else {
            guard cosShape == [batch, seq, rotary / 2] else { throw unsupported(inst, "with caches \(cosShape) and no position_ids") }
        }
        args.append(try output(inst))
        addStep(kind: "rotary_embedding",
                code: CPUKernelLibrary.rotaryEmbedding(name: nextSymbol, x: xs, cache: cs, sin: ss, positions: positions, cacheRows: cosShape[0],
                                                       batch: batch, heads: heads, seq: seq, headSize: headSize, rotary: rotary,
                                                       headsFirst: x.count == 4, interleaved: intAttr(inst, "interleaved", 0) != 0),
                arguments: args, range: batch * seq * heads, work: headSize * 2)
    }

    mutating func lowerTopK(_ inst: Instruction) throws {
        guard let xv = operand(inst, 0) else { throw unsupported(inst) }
        let x = try sizes(xv, inst), xs = try scalar(xv, inst)
        guard !x.isEmpty, xs.dtype != .bool else { throw unsupported(inst, "on \(xs.dtype)\(x)") }
        let axis = try normalizedAxis(intAttr(inst, "axis", -1), rank: x.count, inst)
        let k: Int
        if inst.opset < 10 {
            k = intAttr(inst, "k", -1)
        } else {
            guard let kv = operand(inst, 1) else { throw unsupported(inst, "without K") }
            let values = try constantIntegers(kv, inst, what: "K")
            guard values.count == 1 else { throw unsupported(inst, "with K \(values)") }
            k = values[0]
        }
        let (outer, n, inner) = (x[..<axis].reduce(1, *), x[axis], x[(axis + 1)...].reduce(1, *))
        guard k >= 0, k <= n else { throw unsupported(inst, "with k = \(k) for an axis of \(n)") }
        let largest = inst.opset < 11 || intAttr(inst, "largest", 1) != 0
        let values = usedResultBuffer(inst, 0), indices = usedResultBuffer(inst, 1)
        var args = [try argument(xv, inst)]
        for case let b? in [values, indices] { args.append(.buffer(b)) }
        guard args.count > 1 else { return }
        addStep(kind: "top_k", code: CPUKernelLibrary.topK(name: nextSymbol, scalar: xs, outer: outer, n: n, inner: inner, k: k, largest: largest,
                                                           values: values != nil, indices: indices != nil),
                arguments: args, range: outer * inner, work: n * 8, scratchPerUnit: 16 * max(n, 1))
    }
}

extension CPUKernelLibrary {
    /// Sizes of one Attention node.
    struct AttentionShape {
        var batch: Int, qHeads: Int, kvHeads: Int, qLen: Int, pastLen: Int, kvLen: Int, headSize: Int, vHeadSize: Int
        var threeD: Bool
    }

    /// attn_mask broadcast to [B, Hq, Sq, T]: strides for (b, h, i), its own last length (keys past
    /// it are masked), bool (true keeps) or additive float.
    struct AttentionMask {
        var scalar: CScalar
        var strides: [Int]
        var length: Int
    }

    struct AttentionOptions {
        var isCausal: Bool, softcap: Double, scale: Double, leftWindow: Int, rightWindow: Int, qkMode: Int
    }

    /// Scaled dot-product attention, one (batch, query head, query position) row per unit of the
    /// parallel range: scores over past and new keys, bias from the mask, causal and window
    /// limits, softmax (a fully masked row gives zeros), weighted sum of the values. 3-D
    /// ([B, S, H·D]) inputs are read in place. Arguments: Q, K, V, [mask], [past_key, past_value],
    /// [nonpad_kv_seqlen], Y, [qk_matmul_output].
    static func attention(name: String, _ d: AttentionShape, q: CScalar, k: CScalar, v: CScalar, y: CScalar, mask: AttentionMask?,
                          hasPast: Bool, nonpad: CScalar?, qkOutput: Bool, options o: AttentionOptions) -> String {
        let total = d.pastLen + d.kvLen, group = d.qHeads / d.kvHeads
        var s = "// \(name): attention B=\(d.batch) Hq=\(d.qHeads) Hkv=\(d.kvHeads) S=\(d.qLen) T=\(total) D=\(d.headSize) Dv=\(d.vHeadSize)\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n" + q.pointer("Q", 0) + k.pointer("K", 1) + v.pointer("V", 2)
        var next = 3
        if let mask { s += mask.scalar.pointer("Mk", next); next += 1 }
        if hasPast { s += k.pointer("PK", next) + v.pointer("PV", next + 1); next += 2 }
        if let nonpad { s += nonpad.pointer("NP", next); next += 1 }
        s += y.pointer("Y", next, const: false); next += 1
        if qkOutput { s += q.pointer("QK", next, const: false); next += 1 }
        s += "  GLMC_SCRATCH(double, scores, \(2 * max(total, 1)), \(next));\n"
        s += "  GLMC_GLOBAL double *bias = scores + \(max(total, 1));\n"
        s += "  for (long row = begin; row < end; ++row) {\n"
        s += "    long i = row % \(d.qLen), h = (row / \(d.qLen)) % \(d.qHeads), b = row / \(d.qLen * d.qHeads), kvh = h / \(group);\n"
        s += nonpad.map { _ in "    long offset = (long)NP[b] - \(d.qLen), valid = (long)NP[b];\n" } ?? "    long offset = \(d.pastLen);\n"
        let qRow = d.threeD ? "(b * \(d.qLen) + i) * \(d.qHeads * d.headSize) + h * \(d.headSize)" : "((b * \(d.qHeads) + h) * \(d.qLen) + i) * \(d.headSize)"
        // Row start of key (value) j among the new keys (values).
        func newRow(_ size: Int) -> String {
            d.threeD ? "(b * \(d.kvLen) + (j - \(d.pastLen))) * \(d.kvHeads * size) + kvh * \(size)"
                : "((b * \(d.kvHeads) + kvh) * \(d.kvLen) + (j - \(d.pastLen))) * \(size)"
        }
        func pastRow(_ size: Int) -> String { "((b * \(d.kvHeads) + kvh) * \(d.pastLen) + j) * \(size)" }
        s += "    long qRow = \(qRow);\n    double biasMax = -INFINITY;\n"
        s += "    for (long j = 0; j < \(total); ++j) {\n      double bj = 0.0;\n"
        if let mask {
            let at = "b * \(mask.strides[0]) + h * \(mask.strides[1]) + i * \(mask.strides[2]) + j"
            let value = mask.scalar.dtype == .bool ? "(Mk[\(at)] ? 0.0 : -INFINITY)" : mask.scalar.load("Mk", at)
            s += "      bj = j < \(mask.length) ? \(value) : -INFINITY;\n"
        }
        if o.isCausal { s += "      if (j > i + offset) bj = -INFINITY;\n" }
        if o.leftWindow >= 0 || o.rightWindow >= 0 {
            s += "      { long diff = i + offset - j;\n"
            if o.leftWindow >= 0 { s += "        if (diff > \(o.leftWindow)) bj = -INFINITY;\n" }
            if o.rightWindow >= 0 { s += "        if (-diff > \(o.rightWindow)) bj = -INFINITY;\n" }
            s += "      }\n"
        }
        if nonpad != nil { s += "      if (j >= valid) bj = -INFINITY;\n" }
        s += "      bias[j] = bj; if (bj > biasMax) biasMax = bj;\n"
        s += "      double dot = 0.0;\n"
        let dot = { (p: String, row: String) in
            "for (long t = 0; t < \(d.headSize); ++t) dot += \(q.load("Q", "qRow + t")) * \(k.load(p, "(\(row)) + t"));"
        }
        if hasPast {
            s += "      if (j < \(d.pastLen)) { \(dot("PK", pastRow(d.headSize))) }\n      else { \(dot("K", newRow(d.headSize))) }\n"
        } else {
            s += "      \(dot("K", newRow(d.headSize)))\n"
        }
        s += "      dot *= \(o.scale);\n"
        if o.softcap > 0 { s += "      dot = \(o.softcap) * tanh(dot / \(o.softcap));\n" }
        s += "      scores[j] = dot;\n    }\n"
        let qkRow = "row * \(total)"
        if qkOutput && o.qkMode <= 1 { s += "    for (long j = 0; j < \(total); ++j) \(q.store("QK", "\(qkRow) + j", "scores[j]"))\n" }
        s += "    for (long j = 0; j < \(total); ++j) scores[j] += bias[j];\n"
        if qkOutput && o.qkMode == 2 { s += "    for (long j = 0; j < \(total); ++j) \(q.store("QK", "\(qkRow) + j", "scores[j]"))\n" }
        s += "    double m = -INFINITY, sum = 0.0;\n"
        s += "    for (long j = 0; j < \(total); ++j) if (scores[j] > m) m = scores[j];\n"
        s += "    if (m == -INFINITY) m = 0.0;\n"
        s += "    for (long j = 0; j < \(total); ++j) { scores[j] = biasMax == -INFINITY ? 0.0 : exp(scores[j] - m); sum += scores[j]; }\n"
        s += "    if (sum == 0.0) sum = 1.0;\n    for (long j = 0; j < \(total); ++j) scores[j] /= sum;\n"
        if qkOutput && o.qkMode == 3 { s += "    for (long j = 0; j < \(total); ++j) \(q.store("QK", "\(qkRow) + j", "scores[j]"))\n" }
        let yRow = d.threeD ? "(b * \(d.qLen) + i) * \(d.qHeads * d.vHeadSize) + h * \(d.vHeadSize)" : "row * \(d.vHeadSize)"
        s += "    long yRow = \(yRow);\n"
        s += "    for (long t = 0; t < \(d.vHeadSize); ++t) {\n      double acc = 0.0;\n"
        s += "      for (long j = 0; j < \(total); ++j) {\n        if (scores[j] == 0.0) continue;\n"
        let vTerm = { (p: String, row: String) in "acc += scores[j] * \(v.load(p, "(\(row)) + t"));" }
        if hasPast {
            s += "        if (j < \(d.pastLen)) \(vTerm("PV", pastRow(d.vHeadSize))) else \(vTerm("V", newRow(d.vHeadSize)))\n"
        } else {
            s += "        \(vTerm("V", newRow(d.vHeadSize)))\n"
        }
        s += "      }\n      \(y.store("Y", "yRow + t", "acc"))\n    }\n  }\n  GLMC_SCRATCH_FREE(scores);\n}\n"
        return s
    }

    /// FlexAttention without modifiers, one (batch, query head, query position) row per unit of
    /// the parallel range: scores rounded to the `compute` type, softmax in double, probabilities
    /// rounded to `compute`, weighted sum of the values. Arguments: Q, K, V, Y.
    static func flexAttention(name: String, _ d: AttentionShape, q: CScalar, k: CScalar, v: CScalar, y: CScalar, compute: CScalar,
                              scale: Double) -> String {
        let (s, e, ev, group) = (d.kvLen, d.headSize, d.vHeadSize, d.qHeads / d.kvHeads)
        var c = "// \(name): flex attention B=\(d.batch) Hq=\(d.qHeads) Hkv=\(d.kvHeads) L=\(d.qLen) S=\(s) E=\(e) Ev=\(ev)\n"
        c += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n" + q.pointer("Q", 0) + k.pointer("K", 1) + v.pointer("V", 2)
        c += y.pointer("Y", 3, const: false)
        c += "  GLMC_SCRATCH(double, p, \(max(s, 1)), 4);\n"
        c += "  for (long row = begin; row < end; ++row) {\n"
        c += "    long h = (row / \(d.qLen)) % \(d.qHeads), b = row / \(d.qLen * d.qHeads), kvh = h / \(group);\n"
        c += "    long qRow = row * \(e), kBase = (b * \(d.kvHeads) + kvh) * \(s);\n"
        c += "    double m = -INFINITY, sum = 0.0;\n"
        c += "    for (long j = 0; j < \(s); ++j) {\n      double dot = 0.0;\n"
        c += "      for (long t = 0; t < \(e); ++t) dot += \(q.load("Q", "qRow + t")) * \(k.load("K", "(kBase + j) * \(e) + t"));\n"
        c += "      p[j] = \(compute.round("dot * \(scale)"));\n      if (p[j] > m) m = p[j];\n    }\n"
        c += "    for (long j = 0; j < \(s); ++j) { p[j] = exp(p[j] - m); sum += p[j]; }\n"
        c += "    for (long j = 0; j < \(s); ++j) p[j] = \(compute.round("p[j] / sum"));\n"
        c += "    for (long t = 0; t < \(ev); ++t) {\n      double acc = 0.0;\n"
        c += "      for (long j = 0; j < \(s); ++j) acc += p[j] * \(v.load("V", "(kBase + j) * \(ev) + t"));\n"
        c += "      \(y.store("Y", "row * \(ev) + t", "acc"))\n    }\n  }\n  GLMC_SCRATCH_FREE(p);\n}\n"
        return c
    }

    /// The scaled scores of FlexAttention, rounded to `compute`, one (batch, query head, query
    /// position) row per unit of the parallel range. Arguments: Q, K, scores [rows, S] of `compute`.
    static func flexScores(name: String, _ d: AttentionShape, q: CScalar, k: CScalar, compute: CScalar, scale: Double) -> String {
        let (s, e, group) = (d.kvLen, d.headSize, d.qHeads / d.kvHeads)
        var c = "// \(name): flex attention scores B=\(d.batch) Hq=\(d.qHeads) Hkv=\(d.kvHeads) L=\(d.qLen) S=\(s) E=\(e)\n"
        c += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n" + q.pointer("Q", 0) + k.pointer("K", 1) + compute.pointer("P", 2, const: false)
        c += "  for (long row = begin; row < end; ++row) {\n"
        c += "    long h = (row / \(d.qLen)) % \(d.qHeads), b = row / \(d.qLen * d.qHeads), kvh = h / \(group);\n"
        c += "    long qRow = row * \(e), kBase = (b * \(d.kvHeads) + kvh) * \(s);\n"
        c += "    for (long j = 0; j < \(s); ++j) {\n      double dot = 0.0;\n"
        c += "      for (long t = 0; t < \(e); ++t) dot += \(q.load("Q", "qRow + t")) * \(k.load("K", "(kBase + j) * \(e) + t"));\n"
        c += "      \(compute.store("P", "row * \(s) + j", "dot * \(scale)"))\n    }\n  }\n}\n"
        return c
    }

    /// The softmax of each row of `length` scores, in double, rounded back to `compute`, in place.
    /// Parallel range: the rows. Arguments: scores.
    static func flexSoftmax(name: String, length: Int, compute: CScalar) -> String {
        var c = "// \(name): flex attention softmax of rows of \(length)\n"
        c += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n" + compute.pointer("P", 0, const: false)
        c += "  for (long row = begin; row < end; ++row) {\n"
        c += "    GLMC_GLOBAL \(compute.storage) *p = P + row * \(length);\n"
        c += "    double m = -INFINITY, sum = 0.0;\n"
        c += "    for (long j = 0; j < \(length); ++j) { double x = \(compute.load("p", "j")); if (x > m) m = x; }\n"
        c += "    for (long j = 0; j < \(length); ++j) sum += exp(\(compute.load("p", "j")) - m);\n"
        c += "    for (long j = 0; j < \(length); ++j) \(compute.store("p", "j", "exp(\(compute.load("p", "j")) - m) / sum"))\n"
        return c + "  }\n}\n"
    }

    /// The probabilities (rows of `compute`) times the values. Parallel range: the rows.
    /// Arguments: probabilities, V, Y.
    static func flexValues(name: String, _ d: AttentionShape, v: CScalar, y: CScalar, compute: CScalar) -> String {
        let (s, ev, group) = (d.kvLen, d.vHeadSize, d.qHeads / d.kvHeads)
        var c = "// \(name): flex attention values S=\(s) Ev=\(ev)\n"
        c += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n" + compute.pointer("P", 0) + v.pointer("V", 1) + y.pointer("Y", 2, const: false)
        c += "  for (long row = begin; row < end; ++row) {\n"
        c += "    long h = (row / \(d.qLen)) % \(d.qHeads), b = row / \(d.qLen * d.qHeads), kBase = (b * \(d.kvHeads) + h / \(group)) * \(s);\n"
        c += "    for (long t = 0; t < \(ev); ++t) {\n      double acc = 0.0;\n"
        c += "      for (long j = 0; j < \(s); ++j) acc += \(compute.load("P", "row * \(s) + j")) * \(v.load("V", "(kBase + j) * \(ev) + t"));\n"
        c += "      \(y.store("Y", "row * \(ev) + t", "acc"))\n    }\n  }\n}\n"
        return c
    }

    /// Sizes of one LinearAttention node; decay and beta widths 0 when absent.
    struct LinearAttentionShape {
        var batch: Int, steps: Int, qHeads: Int, kvHeads: Int, keySize: Int, valueSize: Int, decayWidth: Int, betaWidth: Int
    }

    /// The linear-attention recurrence, one (batch, key/value head) per unit of the parallel range,
    /// token by token: a d_k×d_v state (in double) is decayed (gated rules), corrected towards the
    /// value (delta rules) and extended by k⊗v; each query head of the group reads it. Arguments:
    /// Q, K, V, [past_state], [decay], [beta], Y, [present_state].
    static func linearAttention(name: String, _ d: LinearAttentionShape, q: CScalar, k: CScalar, v: CScalar, past: CScalar?,
                                decay: CScalar?, beta: CScalar?, y: CScalar, state: CScalar?, scale: Double) -> String {
        let (dk, dv, group) = (d.keySize, d.valueSize, d.qHeads / d.kvHeads)
        var s = "// \(name): linear attention B=\(d.batch) T=\(d.steps) Hq=\(d.qHeads) Hkv=\(d.kvHeads) dk=\(dk) dv=\(dv)\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n" + q.pointer("Q", 0) + k.pointer("K", 1) + v.pointer("V", 2)
        var next = 3
        if let past { s += past.pointer("P", next); next += 1 }
        if let decay { s += decay.pointer("G", next); next += 1 }
        if let beta { s += beta.pointer("Bt", next); next += 1 }
        s += y.pointer("Y", next, const: false); next += 1
        if let state { s += state.pointer("S", next, const: false); next += 1 }
        s += "  GLMC_SCRATCH(double, st, \(dk * dv + dv), \(next));\n  GLMC_GLOBAL double *update = st + \(dk * dv);\n"
        s += "  for (long u = begin; u < end; ++u) {\n    long bi = u / \(d.kvHeads), h = u % \(d.kvHeads), s0 = u * \(dk * dv);\n"
        s += "    for (long e = 0; e < \(dk * dv); ++e) st[e] = \(past.map { $0.load("P", "s0 + e") } ?? "0.0");\n"
        s += "    for (long ti = 0; ti < \(d.steps); ++ti) {\n"
        s += "      long row = bi * \(d.steps) + ti, kBase = row * \(d.kvHeads * dk) + h * \(dk), vBase = row * \(d.kvHeads * dv) + h * \(dv);\n"
        if let decay {
            let perKey = d.decayWidth == d.kvHeads * dk && dk != 1
            s += "      for (long dd = 0; dd < \(dk); ++dd) {\n"
            s += "        double g = exp(\(decay.load("G", "row * \(d.decayWidth) + \(perKey ? "h * \(dk) + dd" : "h")")));\n"
            s += "        for (long m = 0; m < \(dv); ++m) st[dd * \(dv) + m] *= g;\n      }\n"
        }
        s += "      for (long m = 0; m < \(dv); ++m) update[m] = \(v.load("V", "vBase + m"));\n"
        if let beta {
            s += "      double beta = \(beta.load("Bt", "row * \(d.betaWidth) + \(d.betaWidth == 1 ? "0" : "h")"));\n"
            s += "      for (long m = 0; m < \(dv); ++m) {\n        double retrieved = 0.0;\n"
            s += "        for (long dd = 0; dd < \(dk); ++dd) retrieved += st[dd * \(dv) + m] * \(k.load("K", "kBase + dd"));\n"
            s += "        update[m] = beta * (update[m] - retrieved);\n      }\n"
        }
        s += "      for (long dd = 0; dd < \(dk); ++dd) { double kd = \(k.load("K", "kBase + dd")); for (long m = 0; m < \(dv); ++m) st[dd * \(dv) + m] += kd * update[m]; }\n"
        s += "      for (long hq = h * \(group); hq < (h + 1) * \(group); ++hq) {\n"
        s += "        long qBase = row * \(d.qHeads * dk) + hq * \(dk), oBase = row * \(d.qHeads * dv) + hq * \(dv);\n"
        s += "        for (long m = 0; m < \(dv); ++m) {\n          double acc = 0.0;\n"
        s += "          for (long dd = 0; dd < \(dk); ++dd) acc += \(q.load("Q", "qBase + dd")) * st[dd * \(dv) + m];\n"
        s += "          \(y.store("Y", "oBase + m", "\(scale) * acc"))\n        }\n      }\n    }\n"
        if let state { s += "    for (long e = 0; e < \(dk * dv); ++e) \(state.store("S", "s0 + e", "st[e]"))\n" }
        s += "  }\n  GLMC_SCRATCH_FREE(st);\n}\n"
        return s
    }

    /// present_key / present_value ([B, Hkv, T, D]): past and new rows concatenated, 3-D inputs
    /// read heads first. Parallel range: B*Hkv*T rows. Arguments: K, V, [past_key, past_value],
    /// [present_key], [present_value].
    static func attentionPresent(name: String, _ d: AttentionShape, k: CScalar, v: CScalar, hasPast: Bool, key: Bool, value: Bool) -> String {
        let total = d.pastLen + d.kvLen
        var s = "// \(name): attention present key/value, T=\(total)\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n" + k.pointer("K", 0) + v.pointer("V", 1)
        var next = 2
        if hasPast { s += k.pointer("PK", 2) + v.pointer("PV", 3); next = 4 }
        if key { s += k.pointer("OK", next, const: false); next += 1 }
        if value { s += v.pointer("OV", next, const: false) }
        s += "  for (long row = begin; row < end; ++row) {\n"
        s += "    long j = row % \(total), kvh = (row / \(total)) % \(d.kvHeads), b = row / \(total * d.kvHeads);\n"
        for (on, size, src, past, dst, sc) in [(key, d.headSize, "K", "PK", "OK", k), (value, d.vHeadSize, "V", "PV", "OV", v)] where on {
            let newRow = d.threeD ? "(b * \(d.kvLen) + (j - \(d.pastLen))) * \(d.kvHeads * size) + kvh * \(size)"
                : "((b * \(d.kvHeads) + kvh) * \(d.kvLen) + (j - \(d.pastLen))) * \(size)"
            let copyNew = "memcpy(\(dst) + row * \(size), \(src) + \(newRow), sizeof(\(sc.storage)) * \(size));"
            if hasPast {
                s += "    if (j < \(d.pastLen)) memcpy(\(dst) + row * \(size), \(past) + ((b * \(d.kvHeads) + kvh) * \(d.pastLen) + j) * \(size), sizeof(\(sc.storage)) * \(size));\n"
                s += "    else \(copyNew)\n"
            } else {
                s += "    \(copyNew)\n"
            }
        }
        return s + "  }\n}\n"
    }

    /// RotaryEmbedding: rotates the first `rotary` features of every head by the cached angles of
    /// its position; pairs (x[i], x[i + rotary/2]) or, interleaved, (x[2i], x[2i + 1]). Parallel
    /// range: batch*seq*heads. Arguments: X, cos, sin, [position_ids], Y.
    static func rotaryEmbedding(name: String, x: CScalar, cache: CScalar, sin: CScalar, positions: CScalar?, cacheRows: Int, batch: Int,
                                heads: Int, seq: Int, headSize: Int, rotary: Int, headsFirst: Bool, interleaved: Bool) -> String {
        let half = rotary / 2
        var s = "// \(name): rotary embedding, \(heads) heads of \(headSize), rotary \(rotary)\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n" + x.pointer("X", 0) + cache.pointer("C", 1) + sin.pointer("Sn", 2)
        if let positions { s += positions.pointer("P", 3) }
        s += x.pointer("Y", positions == nil ? 3 : 4, const: false)
        s += "  for (long u = begin; u < end; ++u) {\n"
        s += "    long h = u % \(heads), sq = (u / \(heads)) % \(seq), b = u / \(heads * seq);\n"
        s += "    long base = \(headsFirst ? "((b * \(heads) + h) * \(seq) + sq) * \(headSize)" : "((b * \(seq) + sq) * \(heads) + h) * \(headSize)");\n"
        if positions != nil {
            // A position id outside the cache (an error in the interpreter) makes the rotated features NaN.
            s += "    long p = (long)P[b * \(seq) + sq];\n    int valid = p >= 0 && p < \(cacheRows);\n    long row = valid ? p * \(half) : 0;\n"
        } else {
            s += "    int valid = 1;\n    long row = (b * \(seq) + sq) * \(half);\n"
        }
        s += "    for (long t = 0; t < \(headSize); ++t) \(x.store("Y", "base + t", x.load("X", "base + t")))\n"
        // The rotated features are the first `rotary` of the head, interleaved or not.
        s += "    if (!valid) { for (long t = 0; t < \(rotary); ++t) \(x.store("Y", "base + t", "NAN")) continue; }\n"
        s += "    for (long t = 0; t < \(half); ++t) {\n"
        s += interleaved ? "      long a = base + 2 * t, c = base + 2 * t + 1;\n" : "      long a = base + t, c = base + t + \(half);\n"
        s += "      double x1 = \(x.load("X", "a")), x2 = \(x.load("X", "c")), co = \(cache.load("C", "row + t")), si = \(sin.load("Sn", "row + t"));\n"
        s += "      \(x.store("Y", "a", "co * x1 - si * x2"))\n      \(x.store("Y", "c", "si * x1 + co * x2"))\n    }\n"
        return s + "  }\n}\n"
    }

    /// TopK along the middle axis of an (outer, n, inner) view: a stable merge sort of the indices
    /// (NaN above every number; equal values keep index order), then the first k. Parallel range:
    /// outer*inner. Arguments: X, [Values], [Indices].
    static func topK(name: String, scalar: CScalar, outer: Int, n: Int, inner: Int, k: Int, largest: Bool, values: Bool, indices: Bool) -> String {
        var s = "// \(name): top \(k) of \(n), \(largest ? "largest" : "smallest")\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n" + scalar.pointer("X", 0)
        var next = 1
        if values { s += scalar.pointer("Yv", next, const: false); next += 1 }
        if indices { s += "  GLMC_GLOBAL int64_t *Yi = (GLMC_GLOBAL int64_t *)args[\(next)];\n"; next += 1 }
        s += "  GLMC_SCRATCH(long, order, \(2 * max(n, 1)), \(next));\n  GLMC_GLOBAL long *tmp = order + \(max(n, 1));\n"
        let key = scalar.isFloat ? "double" : scalar.storage
        let load = { (i: String) in scalar.isFloat ? scalar.load("X", i) : "X[\(i)]" }
        // above(a, b): a sorts strictly above b (NaN the largest).
        let above = scalar.isFloat ? "(ka != ka ? kb == kb : (kb == kb && ka > kb))" : "(ka > kb)"
        let below = scalar.isFloat ? "(kb != kb ? ka == ka : (ka == ka && kb > ka))" : "(kb > ka)"
        s += "  for (long idx = begin; idx < end; ++idx) {\n"
        s += "    long base = (idx / \(inner)) * \(n * inner) + idx % \(inner), ob = (idx / \(inner)) * \(k * inner) + idx % \(inner);\n"
        s += "    for (long j = 0; j < \(n); ++j) order[j] = j;\n"
        s += "    for (long width = 1; width < \(n); width *= 2) {\n"
        s += "      for (long lo = 0; lo < \(n); lo += 2 * width) {\n"
        s += "        long mid = lo + width < \(n) ? lo + width : \(n), hi = lo + 2 * width < \(n) ? lo + 2 * width : \(n), a = lo, c = mid, t = lo;\n"
        s += "        while (a < mid && c < hi) {\n"
        s += "          \(key) ka = \(load("base + order[c] * \(inner)")), kb = \(load("base + order[a] * \(inner)"));\n"
        // Take from the right run only when it sorts strictly first (stability).
        s += "          if (\(largest ? above : below)) tmp[t++] = order[c++]; else tmp[t++] = order[a++];\n        }\n"
        s += "        while (a < mid) tmp[t++] = order[a++];\n        while (c < hi) tmp[t++] = order[c++];\n"
        s += "      }\n      GLMC_GLOBAL long *sw = order; order = tmp; tmp = sw;\n    }\n"
        s += "    for (long j = 0; j < \(k); ++j) {\n"
        if values { s += "      Yv[ob + j * \(inner)] = X[base + order[j] * \(inner)];\n" }
        if indices { s += "      Yi[ob + j * \(inner)] = order[j];\n" }
        s += "    }\n  }\n  GLMC_SCRATCH_FREE(order < tmp ? order : tmp);\n}\n"
        return s
    }
}
