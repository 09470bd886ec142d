import GLMCIR
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Attention (opsets 23-25) and RotaryEmbedding (23).
extension NeuralOps {
    static let attentionOps: [OpDefinition] = [
        OpDefinition("Attention", since: [23, 24, 25], infer: inferAttention, evaluate: evalAttention),
        OpDefinition("RotaryEmbedding", since: [23], infer: sameAsInput, evaluate: evalRotaryEmbedding),
        OpDefinition("LinearAttention", since: [27], infer: inferLinearAttention, evaluate: evalLinearAttention),
        OpDefinition("FlexAttention", domain: "ai.onnx.preview", since: [1], infer: inferFlexAttention,
                     evaluate: evalFlexAttention),
    ]
}

// MARK: - Attention

/// Sizes of one Attention node: batch, query and key/value heads, query length, past and new
/// key/value lengths, head sizes of Q/K and of V.
private struct AttentionDims {
    var batch: Int, qHeads: Int, kvHeads: Int, qLen: Int, pastLen: Int, kvLen: Int, headSize: Int, vHeadSize: Int
    var totalLen: Int { pastLen + kvLen }
    var threeD: Bool
}

private func attentionDims(_ ctx: some NodeContext, q: [Int], k: [Int], v: [Int], past: [Int]?) throws -> AttentionDims {
    guard q.count == k.count, q.count == v.count, q.count == 3 || q.count == 4 else {
        throw ctx.error("Q, K and V must all have rank 3 or all rank 4, got \(q), \(k), \(v)")
    }
    let pastLen = past.map { $0.count == 4 ? $0[2] : -1 } ?? 0
    guard pastLen >= 0 else { throw ctx.error("past_key must have rank 4") }
    if q.count == 4 {
        guard k[0] == q[0], v[0] == q[0], k[1] == v[1], k[2] == v[2], k[3] == q[3] else {
            throw ctx.error("inconsistent Q \(q), K \(k), V \(v) shapes")
        }
        return AttentionDims(batch: q[0], qHeads: q[1], kvHeads: k[1], qLen: q[2], pastLen: pastLen, kvLen: k[2],
                             headSize: q[3], vHeadSize: v[3], threeD: false)
    }
    guard let qh = try ctx.int("q_num_heads"), let kvh = try ctx.int("kv_num_heads"), qh > 0, kvh > 0 else {
        throw ctx.error("3-D inputs need positive q_num_heads and kv_num_heads attributes")
    }
    guard q[2] % qh == 0, k[2] % kvh == 0, v[2] % kvh == 0, k[0] == q[0], v[0] == q[0], k[1] == v[1],
          k[2] / kvh == q[2] / qh else {
        throw ctx.error("hidden sizes of Q \(q), K \(k), V \(v) do not fit \(qh) and \(kvh) heads")
    }
    return AttentionDims(batch: q[0], qHeads: qh, kvHeads: kvh, qLen: q[1], pastLen: pastLen, kvLen: k[1],
                         headSize: q[2] / qh, vHeadSize: v[2] / kvh, threeD: true)
}

private func inferAttention(_ ctx: InferenceContext) throws -> [TensorType] {
    let q = try ctx.requiredInput(0), k = try ctx.requiredInput(1), v = try ctx.requiredInput(2)
    // Symbolic dims pass through; sizes derived by arithmetic need known operands.
    func div(_ d: Dim, _ n: Int) -> Dim { d.value.map { .known($0 / n) } ?? .unknown }
    func mul(_ d: Dim, _ n: Int) -> Dim { d.value.map { .known($0 * n) } ?? .unknown }
    let unknown4 = Shape([Dim](repeating: .unknown, count: 4))
    guard let qd = q.shape.dims, let kd = k.shape.dims, let vd = v.shape.dims,
          qd.count == kd.count, qd.count == vd.count, qd.count == 3 || qd.count == 4 else {
        let types = [TensorType(q.dtype, .unranked), TensorType(q.dtype, unknown4), TensorType(v.dtype, unknown4),
                     TensorType(q.dtype, unknown4)]
        return Array(types.prefix(ctx.outputCount))
    }
    let batch = qd[0], qLen = qd.count == 4 ? qd[2] : qd[1]
    let qHeads: Dim, kvHeads: Dim, headSize: Dim, vHeadSize: Dim, kvLen: Dim, y: Shape
    if qd.count == 4 {
        (qHeads, kvHeads, headSize, vHeadSize, kvLen) = (qd[1], kd[1], qd[3], vd[3], kd[2])
        y = Shape([batch, qHeads, qLen, vHeadSize])
    } else {
        let qh = try ctx.int("q_num_heads", default: 0), kvh = try ctx.int("kv_num_heads", default: 0)
        guard qh > 0, kvh > 0 else { throw ctx.error("3-D inputs need positive q_num_heads and kv_num_heads") }
        (qHeads, kvHeads, headSize, vHeadSize, kvLen) = (.known(qh), .known(kvh), div(kd[2], kvh), div(vd[2], kvh), kd[1])
        y = Shape([batch, qLen, mul(vHeadSize, qh)])
    }
    var total = kvLen
    if let past = ctx.inputType(4) {
        let pastLen = past.shape.dims.flatMap { $0.count == 4 ? $0[2] : nil } ?? .unknown
        total = pastLen.value.flatMap { p in kvLen.value.map { .known(p + $0) } } ?? .unknown
    }
    let types = [TensorType(q.dtype, y), TensorType(k.dtype, Shape([batch, kvHeads, total, headSize])),
                 TensorType(v.dtype, Shape([batch, kvHeads, total, vHeadSize])),
                 TensorType(q.dtype, Shape([batch, qHeads, qLen, total]))]
    return Array(types.prefix(ctx.outputCount))
}

/// Reads a 3-D ([B, S, H·D]) or 4-D ([B, H, S, D]) tensor as [B, H, S, D] values.
private func headsFirst(_ t: Tensor, heads: Int, threeD: Bool) -> [Double] {
    let v = t.doubles
    guard threeD else { return v }
    let (b, s, hidden) = (t.shape[0], t.shape[1], t.shape[2])
    let d = hidden / heads
    var out = [Double](repeating: 0, count: v.count)
    for bi in 0..<b { for si in 0..<s { for h in 0..<heads { for di in 0..<d {
        out[((bi * heads + h) * s + si) * d + di] = v[(bi * s + si) * hidden + h * d + di]
    } } } }
    return out
}

/// Concatenates past ([B, H, P, D]) and new ([B, H, S, D]) along the sequence axis.
private func concatSequence(_ past: [Double]?, _ new: [Double], batchHeads: Int, pastLen: Int, newLen: Int,
                            size: Int) -> [Double] {
    guard let past, pastLen > 0 else { return new }
    var out: [Double] = []
    out.reserveCapacity(past.count + new.count)
    for bh in 0..<batchHeads {
        out += past[(bh * pastLen * size)..<((bh + 1) * pastLen * size)]
        out += new[(bh * newLen * size)..<((bh + 1) * newLen * size)]
    }
    return out
}

/// The attention mask broadcast to [B, Hq, Sq, T] as additive bias values (boolean masks become
/// 0 / -inf); positions past the mask's last dim count as masked.
private struct AttentionMask {
    let values: [Double]
    let strides: [Int]  // per (b, h, i) dim; 0 where broadcast
    let length: Int

    init(_ t: Tensor, _ d: AttentionDims, _ ctx: some NodeContext) throws {
        guard t.rank >= 1 && t.rank <= 4 else { throw ctx.error("attn_mask must have rank 1 to 4, got \(t.shape)") }
        let full = [Int](repeating: 1, count: 4 - t.rank) + t.shape
        length = full[3]
        guard length <= d.totalLen else { throw ctx.error("attn_mask is longer than the key sequence") }
        let target = [d.batch, d.qHeads, d.qLen]
        var s = [Int](repeating: 0, count: 3)
        var acc = length
        for axis in stride(from: 2, through: 0, by: -1) {
            guard full[axis] == 1 || full[axis] == target[axis] else {
                throw ctx.error("attn_mask shape \(t.shape) does not broadcast to \(target + [d.totalLen])")
            }
            s[axis] = full[axis] == 1 ? 0 : acc
            acc *= full[axis]
        }
        strides = s
        values = t.dtype == .bool ? t.doubles.map { $0 != 0 ? 0 : -.infinity } : t.doubles
    }

    func bias(_ b: Int, _ h: Int, _ i: Int, _ j: Int) -> Double {
        j < length ? values[b * strides[0] + h * strides[1] + i * strides[2] + j] : -.infinity
    }
}

private func evalAttention(_ ctx: EvalContext) throws -> [Tensor] {
    let q = try ctx.requiredInput(0), k = try ctx.requiredInput(1), v = try ctx.requiredInput(2)
    let mask = ctx.input(3), pastKey = ctx.input(4), pastValue = ctx.input(5), nonpad = ctx.input(6)
    try NeuralOps.requireFloat(q, "Q", ctx)
    guard k.dtype == q.dtype, NeuralOps.floatTypes.contains(v.dtype) else {
        throw ctx.error("Q and K must have the same floating element type")
    }
    guard (pastKey == nil) == (pastValue == nil) else { throw ctx.error("past_key and past_value go together") }
    if nonpad != nil && pastKey != nil { throw ctx.error("nonpad_kv_seqlen cannot be combined with past_key") }
    let d = try attentionDims(ctx, q: q.shape, k: k.shape, v: v.shape, past: pastKey?.shape)
    if let pastKey, let pastValue {
        guard pastKey.shape == [d.batch, d.kvHeads, d.pastLen, d.headSize],
              pastValue.shape == [d.batch, d.kvHeads, d.pastLen, d.vHeadSize] else {
            throw ctx.error("past_key \(pastKey.shape) / past_value \(pastValue.shape) do not match K and V")
        }
    }
    guard d.kvHeads > 0, d.qHeads % d.kvHeads == 0 else {
        throw ctx.error("q_num_heads \(d.qHeads) is not a multiple of kv_num_heads \(d.kvHeads)")
    }
    let isCausal = try ctx.int("is_causal", default: 0) != 0
    let softcap = Double(try ctx.float("softcap", default: 0))
    let outputMode = try ctx.int("qk_matmul_output_mode", default: 0)
    let leftWindow = try ctx.int("left_window_size", default: -1)
    let rightWindow = try ctx.int("right_window_size", default: -1)
    guard leftWindow >= -1, rightWindow >= -1 else { throw ctx.error("window sizes must be -1 or non-negative") }
    let scaleAttr = try ctx.float("scale")
    let scale = scaleAttr.map(Double.init) ?? 1 / Double(d.headSize).squareRoot()
    let attnMask = try mask.map { try AttentionMask($0, d, ctx) }
    let nonpadLens = nonpad?.int64s.map { Int($0) }
    if let nonpadLens, nonpadLens.count != d.batch { throw ctx.error("nonpad_kv_seqlen must have \(d.batch) values") }

    let qs = headsFirst(q, heads: d.qHeads, threeD: d.threeD)
    let keys = concatSequence(pastKey?.doubles, headsFirst(k, heads: d.kvHeads, threeD: d.threeD),
                              batchHeads: d.batch * d.kvHeads, pastLen: d.pastLen, newLen: d.kvLen, size: d.headSize)
    let values = concatSequence(pastValue?.doubles, headsFirst(v, heads: d.kvHeads, threeD: d.threeD),
                                batchHeads: d.batch * d.kvHeads, pastLen: d.pastLen, newLen: d.kvLen, size: d.vHeadSize)
    let total = d.totalLen, group = d.qHeads / d.kvHeads
    var y = [Double](repeating: 0, count: d.batch * d.qHeads * d.qLen * d.vHeadSize)
    var qkOut = [Double](repeating: 0, count: ctx.outputCount > 3 ? d.batch * d.qHeads * d.qLen * total : 0)
    var scores = [Double](repeating: 0, count: total), bias = [Double](repeating: 0, count: total)
    for b in 0..<d.batch {
        // Keys visible before the query block: the causal / window frontier's offset.
        let offset = nonpadLens.map { $0[b] - d.qLen } ?? d.pastLen
        for h in 0..<d.qHeads {
            let kvh = h / group
            for i in 0..<d.qLen {
                let qRow = ((b * d.qHeads + h) * d.qLen + i) * d.headSize
                var biasMax = -Double.infinity
                for j in 0..<total {
                    var bj = attnMask?.bias(b, h, i, j) ?? 0
                    if isCausal && j > i + offset { bj = -.infinity }
                    let diff = i + offset - j
                    if (leftWindow >= 0 && diff > leftWindow) || (rightWindow >= 0 && -diff > rightWindow) {
                        bj = -.infinity
                    }
                    if let nonpadLens, j >= nonpadLens[b] { bj = -.infinity }
                    bias[j] = bj
                    biasMax = max(biasMax, bj)
                    let kRow = ((b * d.kvHeads + kvh) * total + j) * d.headSize
                    var dot = 0.0
                    for t in 0..<d.headSize { dot += qs[qRow + t] * keys[kRow + t] }
                    dot *= scale
                    if softcap > 0 { dot = softcap * tanh(dot / softcap) }
                    scores[j] = dot
                }
                let outRow = ((b * d.qHeads + h) * d.qLen + i) * total
                if !qkOut.isEmpty && outputMode <= 1 {
                    for j in 0..<total { qkOut[outRow + j] = scores[j] }
                }
                for j in 0..<total { scores[j] += bias[j] }
                if !qkOut.isEmpty && outputMode == 2 {
                    for j in 0..<total { qkOut[outRow + j] = scores[j] }
                }
                // Softmax; a row whose bias masks every key yields zeros, not NaN.
                let rowMasked = biasMax == -.infinity
                var m = scores.max() ?? 0
                if m == -.infinity { m = 0 }
                var sum = 0.0
                for j in 0..<total { scores[j] = rowMasked ? 0 : exp(scores[j] - m); sum += scores[j] }
                if sum == 0 { sum = 1 }
                for j in 0..<total { scores[j] /= sum }
                if !qkOut.isEmpty && outputMode == 3 {
                    for j in 0..<total { qkOut[outRow + j] = scores[j] }
                }
                let yRow = ((b * d.qHeads + h) * d.qLen + i) * d.vHeadSize
                for j in 0..<total where scores[j] != 0 {
                    let vRow = ((b * d.kvHeads + kvh) * total + j) * d.vHeadSize
                    for t in 0..<d.vHeadSize { y[yRow + t] += scores[j] * values[vRow + t] }
                }
            }
        }
    }
    var yShape = [d.batch, d.qHeads, d.qLen, d.vHeadSize]
    if d.threeD {
        // Back to [B, S, H·Dv].
        var t = [Double](repeating: 0, count: y.count)
        for bi in 0..<d.batch { for h in 0..<d.qHeads { for i in 0..<d.qLen { for c in 0..<d.vHeadSize {
            t[((bi * d.qLen + i) * d.qHeads + h) * d.vHeadSize + c] = y[((bi * d.qHeads + h) * d.qLen + i) * d.vHeadSize + c]
        } } } }
        y = t
        yShape = [d.batch, d.qLen, d.qHeads * d.vHeadSize]
    }
    var results = [Tensor(doubles: y, dtype: q.dtype, shape: yShape)]
    if ctx.outputCount > 1 {
        results.append(Tensor(doubles: keys, dtype: k.dtype, shape: [d.batch, d.kvHeads, total, d.headSize]))
    }
    if ctx.outputCount > 2 {
        results.append(Tensor(doubles: values, dtype: v.dtype, shape: [d.batch, d.kvHeads, total, d.vHeadSize]))
    }
    if ctx.outputCount > 3 {
        results.append(Tensor(doubles: qkOut, dtype: q.dtype, shape: [d.batch, d.qHeads, d.qLen, total]))
    }
    return results
}

// MARK: - RotaryEmbedding

/// Rotates the first `rotary_embedding_dim` features of every head by the cached angles of its
/// position: pairs are (x[i], x[i + half]) or, when interleaved, (x[2i], x[2i + 1]).
private func evalRotaryEmbedding(_ ctx: EvalContext) throws -> [Tensor] {
    let x = try ctx.requiredInput(0), cosT = try ctx.requiredInput(1), sinT = try ctx.requiredInput(2)
    let positions = ctx.input(3)
    try NeuralOps.requireFloat(x, "input", ctx)
    let interleaved = try ctx.int("interleaved", default: 0) != 0
    guard x.rank == 3 || x.rank == 4 else { throw ctx.error("input must have rank 3 or 4, got \(x.shape)") }
    let batch = x.shape[0]
    let (heads, seq, headSize): (Int, Int, Int)
    if x.rank == 4 {
        (heads, seq, headSize) = (x.shape[1], x.shape[2], x.shape[3])
    } else {
        let n = try ctx.int("num_heads", default: 0)
        guard n > 0, x.shape[2] % n == 0 else { throw ctx.error("3-D input needs num_heads dividing \(x.shape[2])") }
        (heads, seq, headSize) = (n, x.shape[1], x.shape[2] / n)
    }
    var rotary = try ctx.int("rotary_embedding_dim", default: 0)
    if rotary == 0 { rotary = headSize }
    guard rotary > 0, rotary <= headSize, rotary % 2 == 0 else {
        throw ctx.error("rotary_embedding_dim \(rotary) must be even and at most the head size \(headSize)")
    }
    let half = rotary / 2
    guard cosT.shape.last == half, sinT.shape == cosT.shape else {
        throw ctx.error("cos/sin caches \(cosT.shape) must end in rotary_embedding_dim / 2 = \(half)")
    }
    let cosV = cosT.doubles, sinV = sinT.doubles
    // Row of the caches for (batch, position).
    var cacheRow: (Int, Int) throws -> Int
    if let positions {
        guard positions.shape == [batch, seq], cosT.rank == 2 else {
            throw ctx.error("position_ids \(positions.shape) must be [\(batch), \(seq)] with 2-D caches")
        }
        let ids = positions.int64s
        let rows = cosT.shape[0]
        cacheRow = { b, s in
            let p = Int(ids[b * seq + s])
            guard p >= 0 && p < rows else { throw ctx.error("position id \(p) is outside the cache of \(rows)") }
            return p
        }
    } else {
        guard cosT.shape == [batch, seq, half] else {
            throw ctx.error("without position_ids the caches must be [\(batch), \(seq), \(half)], got \(cosT.shape)")
        }
        cacheRow = { b, s in b * seq + s }
    }
    var v = x.doubles
    for b in 0..<batch {
        for s in 0..<seq {
            let row = try cacheRow(b, s) * half
            for h in 0..<heads {
                let base = x.rank == 4 ? ((b * heads + h) * seq + s) * headSize : ((b * seq + s) * heads + h) * headSize
                for i in 0..<half {
                    let (a, c) = interleaved ? (base + 2 * i, base + 2 * i + 1) : (base + i, base + i + half)
                    let (x1, x2) = (v[a], v[c])
                    let (co, si) = (cosV[row + i], sinV[row + i])
                    v[a] = co * x1 - si * x2
                    v[c] = si * x1 + co * x2
                }
            }
        }
    }
    return [Tensor(doubles: v, dtype: x.dtype, shape: x.shape)]
}

// MARK: - LinearAttention

private func inferLinearAttention(_ ctx: InferenceContext) throws -> [TensorType] {
    let q = try ctx.requiredInput(0), k = try ctx.requiredInput(1), v = try ctx.requiredInput(2)
    let qh = try ctx.int("q_num_heads", default: 0), kvh = try ctx.int("kv_num_heads", default: 0)
    var out = Shape([Dim](repeating: .unknown, count: 3)), state = Shape([Dim](repeating: .unknown, count: 4))
    if let qd = q.shape.dims, qd.count == 3, qh > 0, kvh > 0 {
        let dk = k.shape.dims.flatMap { $0.count == 3 ? $0[2].value.map { $0 / kvh } : nil }
        let dv = v.shape.dims.flatMap { $0.count == 3 ? $0[2].value.map { $0 / kvh } : nil }
        out = Shape([qd[0], qd[1], dv.map { .known($0 * qh) } ?? .unknown])
        state = Shape([qd[0], .known(kvh), dk.map { .known($0) } ?? .unknown, dv.map { .known($0) } ?? .unknown])
    }
    let stateType = ctx.inputType(3)?.dtype ?? q.dtype
    return Array([TensorType(q.dtype, out), TensorType(stateType, state)].prefix(ctx.outputCount))
}

/// The linear-attention recurrence token by token: per key/value head a d_k×d_v state is decayed
/// (gated rules), corrected towards the value (delta rules) and extended by k⊗v; each query head
/// reads its group's state.
private func evalLinearAttention(_ ctx: EvalContext) throws -> [Tensor] {
    let q = try ctx.requiredInput(0), k = try ctx.requiredInput(1), v = try ctx.requiredInput(2)
    let past = ctx.input(3), decay = ctx.input(4), betaT = ctx.input(5)
    try NeuralOps.requireFloat(q, "query", ctx)
    let rule = try ctx.string("update_rule", default: "gated_delta")
    guard ["linear", "gated", "delta", "gated_delta"].contains(rule) else { throw ctx.unsupported("update_rule '\(rule)'") }
    let gated = rule.hasPrefix("gated"), delta = rule.hasSuffix("delta")
    guard gated == (decay != nil), delta == (betaT != nil) else {
        throw ctx.error("update_rule '\(rule)' \(gated ? "requires" : "forbids") decay and \(delta ? "requires" : "forbids") beta")
    }
    let qh = try ctx.int("q_num_heads", default: 0), kvh = try ctx.int("kv_num_heads", default: 0)
    guard qh > 0, kvh > 0, qh % kvh == 0 else { throw ctx.error("q_num_heads must be a positive multiple of kv_num_heads") }
    guard q.rank == 3, k.rank == 3, v.rank == 3, k.shape[0] == q.shape[0], v.shape[0] == q.shape[0],
          k.shape[1] == q.shape[1], v.shape[1] == q.shape[1], q.shape[2] % qh == 0, k.shape[2] % kvh == 0,
          v.shape[2] % kvh == 0, q.shape[2] / qh == k.shape[2] / kvh else {
        throw ctx.error("query \(q.shape), key \(k.shape), value \(v.shape) do not fit \(qh) and \(kvh) heads")
    }
    let (b, t) = (q.shape[0], q.shape[1])
    let dk = q.shape[2] / qh, dv = v.shape[2] / kvh, group = qh / kvh
    if let past, past.shape != [b, kvh, dk, dv] { throw ctx.error("past_state must have shape \([b, kvh, dk, dv])") }
    // Decay is per head or per head and key dim; beta per head or shared by all heads.
    let decayWidth = decay?.shape.last ?? kvh, betaWidth = betaT?.shape.last ?? kvh
    if let decay, !(decay.rank == 3 && decay.shape[0] == b && decay.shape[1] == t
                    && (decayWidth == kvh || decayWidth == kvh * dk)) {
        throw ctx.error("decay shape \(decay.shape) must be (B, T, H_kv) or (B, T, H_kv * d_k)")
    }
    if let betaT, !(betaT.rank == 3 && betaT.shape[0] == b && betaT.shape[1] == t && (betaWidth == kvh || betaWidth == 1)) {
        throw ctx.error("beta shape \(betaT.shape) must be (B, T, H_kv) or (B, T, 1)")
    }
    let decayPerKey = decayWidth == kvh * dk && dk != 1
    let scaleAttr = Double(try ctx.float("scale", default: 0))
    let scale = scaleAttr == 0 ? 1 / Double(dk).squareRoot() : scaleAttr
    let qs = q.doubles, ks = k.doubles, vs = v.doubles, gs = decay?.doubles, bs = betaT?.doubles
    var state = past?.doubles ?? [Double](repeating: 0, count: b * kvh * dk * dv)
    var out = [Double](repeating: 0, count: b * t * qh * dv)
    var update = [Double](repeating: 0, count: dv)
    for bi in 0..<b {
        for ti in 0..<t {
            for h in 0..<kvh {
                let s0 = (bi * kvh + h) * dk * dv
                let kBase = (bi * t + ti) * kvh * dk + h * dk, vBase = (bi * t + ti) * kvh * dv + h * dv
                if let gs {
                    let gBase = (bi * t + ti) * decayWidth
                    for d in 0..<dk {
                        let g = exp(gs[gBase + (decayPerKey ? h * dk + d : h)])
                        for m in 0..<dv { state[s0 + d * dv + m] *= g }
                    }
                }
                for m in 0..<dv { update[m] = vs[vBase + m] }
                if let bs {
                    let beta = bs[(bi * t + ti) * betaWidth + (betaWidth == 1 ? 0 : h)]
                    for m in 0..<dv {
                        var retrieved = 0.0
                        for d in 0..<dk { retrieved += state[s0 + d * dv + m] * ks[kBase + d] }
                        update[m] = beta * (update[m] - retrieved)
                    }
                }
                for d in 0..<dk { for m in 0..<dv { state[s0 + d * dv + m] += ks[kBase + d] * update[m] } }
                for hq in (h * group)..<((h + 1) * group) {
                    let qBase = (bi * t + ti) * qh * dk + hq * dk, oBase = (bi * t + ti) * qh * dv + hq * dv
                    for m in 0..<dv {
                        var acc = 0.0
                        for d in 0..<dk { acc += qs[qBase + d] * state[s0 + d * dv + m] }
                        out[oBase + m] = scale * acc
                    }
                }
            }
        }
    }
    return [Tensor(doubles: out, dtype: q.dtype, shape: [b, t, qh * dv]),
            Tensor(doubles: state, dtype: past?.dtype ?? q.dtype, shape: [b, kvh, dk, dv])]
        .prefix(max(ctx.outputCount, 1)).map { $0 }
}

// MARK: - FlexAttention (ai.onnx.preview)

private func inferFlexAttention(_ ctx: InferenceContext) throws -> [TensorType] {
    let q = try ctx.requiredInput(0), v = try ctx.requiredInput(2)
    guard let qd = q.shape.dims, let vd = v.shape.dims, qd.count == 4, vd.count == 4 else {
        return [TensorType(v.dtype, Shape([Dim](repeating: .unknown, count: 4)))]
    }
    return [TensorType(v.dtype, Shape([qd[0], qd[1], qd[2], vd[3]]))]
}

/// Softmax attention whose scores and probabilities may be rewritten by the `score_mod` and
/// `prob_mod` graphs (each maps the whole [B, Hq, L, S] tensor to a new one). Scores are computed
/// in `softmax_precision` (f32 for 16-bit inputs by default).
private func evalFlexAttention(_ ctx: EvalContext) throws -> [Tensor] {
    let q = try ctx.requiredInput(0), k = try ctx.requiredInput(1), v = try ctx.requiredInput(2)
    try NeuralOps.requireFloat(q, "Q", ctx)
    guard q.rank == 4, k.rank == 4, v.rank == 4, k.shape[0] == q.shape[0], v.shape[0] == q.shape[0],
          k.shape[1] == v.shape[1], k.shape[2] == v.shape[2], k.shape[3] == q.shape[3],
          k.shape[1] > 0, q.shape[1] % k.shape[1] == 0 else {
        throw ctx.error("Q \(q.shape), K \(k.shape), V \(v.shape) must be rank-4 with matching sizes")
    }
    let (b, hq, l, e) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
    let (hkv, s, ev) = (k.shape[1], k.shape[2], v.shape[3])
    let group = hq / hkv
    let computeType: DType
    if let code = try ctx.int("softmax_precision") {
        switch code {
        case 1: computeType = .f32
        case 10: computeType = .f16
        case 11: computeType = .f64
        case 16: computeType = .bf16
        default: throw ctx.unsupported("softmax_precision \(code)")
        }
    } else {
        computeType = q.dtype == .f64 ? .f64 : .f32
    }
    let scale = Double(try ctx.float("scale") ?? Float(1 / Double(e).squareRoot()))
    let qs = q.doubles, ks = k.doubles, vs = v.doubles
    var scores = [Double](repeating: 0, count: b * hq * l * s)
    for bi in 0..<b { for h in 0..<hq { for i in 0..<l { for j in 0..<s {
        let qRow = ((bi * hq + h) * l + i) * e, kRow = ((bi * hkv + h / group) * s + j) * e
        var dot = 0.0
        for t in 0..<e { dot += qs[qRow + t] * ks[kRow + t] }
        scores[((bi * hq + h) * l + i) * s + j] = dot * scale
    } } } }
    let shape = [b, hq, l, s]
    // Runs a modifier graph on the whole tensor, in the compute precision.
    func modify(_ name: String, _ values: [Double]) throws -> [Double] {
        let rounded = Tensor(doubles: values, dtype: computeType, shape: shape)
        guard let graph = try ctx.graph(name) else { return rounded.doubles }
        let outs = try ctx.runSubgraph(graph, [rounded])
        guard outs.count == 1, outs[0].count == values.count else {
            throw ctx.error("\(name) must produce one tensor of shape \(shape)")
        }
        return Tensor(doubles: outs[0].doubles, dtype: computeType, shape: shape).doubles
    }
    scores = try modify("score_mod", scores)
    for row in 0..<(b * hq * l) {
        let r = (row * s)..<((row + 1) * s)
        let m = scores[r].max() ?? 0
        var sum = 0.0
        for j in r { scores[j] = exp(scores[j] - m); sum += scores[j] }
        for j in r { scores[j] /= sum }
    }
    let probs = try modify("prob_mod", scores)
    var y = [Double](repeating: 0, count: b * hq * l * ev)
    for bi in 0..<b { for h in 0..<hq { for i in 0..<l {
        let pRow = ((bi * hq + h) * l + i) * s, yRow = ((bi * hq + h) * l + i) * ev
        for j in 0..<s {
            let p = probs[pRow + j], vRow = ((bi * hkv + h / group) * s + j) * ev
            for t in 0..<ev { y[yRow + t] += p * vs[vRow + t] }
        }
    } } }
    return [Tensor(doubles: y, dtype: v.dtype, shape: [b, hq, l, ev])]
}
