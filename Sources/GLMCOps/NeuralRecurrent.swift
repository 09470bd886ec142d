import GLMCIR
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Recurrent layers: RNN, GRU, LSTM, with every direction, activation list, clip, sequence
/// lengths, initial states and (from opset 14) the batch-first layout.
extension NeuralOps {
    static let recurrentOps: [OpDefinition] = [
        OpDefinition("RNN", since: [1, 7, 14, 22], infer: { try inferRecurrent($0, .rnn) },
                     evaluate: { try evalRecurrent($0, .rnn) }),
        OpDefinition("GRU", since: [1, 3, 7, 14, 22], infer: { try inferRecurrent($0, .gru) },
                     evaluate: { try evalRecurrent($0, .gru) }),
        OpDefinition("LSTM", since: [1, 7, 14, 22], infer: { try inferRecurrent($0, .lstm) },
                     evaluate: { try evalRecurrent($0, .lstm) }),
    ]
}

private enum CellKind {
    case rnn, gru, lstm

    var gates: Int {
        switch self {
        case .rnn: return 1
        case .gru: return 3
        case .lstm: return 4
        }
    }
    /// Default activations of one direction.
    var defaultActivations: [String] {
        switch self {
        case .rnn: return ["Tanh"]
        case .gru: return ["Sigmoid", "Tanh"]
        case .lstm: return ["Sigmoid", "Tanh", "Tanh"]
        }
    }
}

private func directionCount(_ ctx: some NodeContext) throws -> Int {
    let direction = try ctx.string("direction", default: "forward")
    switch direction {
    case "forward", "reverse": return 1
    case "bidirectional": return 2
    default: throw ctx.unsupported("direction '\(direction)'")
    }
}

private func inferRecurrent(_ ctx: InferenceContext, _ kind: CellKind) throws -> [TensorType] {
    let x = try ctx.requiredInput(0)
    let dirs = Dim.known(try directionCount(ctx))
    var hidden = Dim.unknown
    if let h = try ctx.int("hidden_size") { hidden = .known(h) }
    else if let r = ctx.inputType(2)?.shape.dims, r.count == 3 { hidden = r[2] }
    let batchFirst = try ctx.int("layout", default: 0) == 1 && ctx.opset >= 14
    var seq = Dim.unknown, batch = Dim.unknown
    if let d = x.shape.dims, d.count == 3 { (seq, batch) = batchFirst ? (d[1], d[0]) : (d[0], d[1]) }
    let y = batchFirst ? [batch, seq, dirs, hidden] : [seq, dirs, batch, hidden]
    let state = batchFirst ? [batch, dirs, hidden] : [dirs, batch, hidden]
    let types = [TensorType(x.dtype, Shape(y)), TensorType(x.dtype, Shape(state)), TensorType(x.dtype, Shape(state))]
    return Array(types.prefix(ctx.outputCount))
}

/// An ONNX RNN activation function with its alpha/beta.
private func activation(_ name: String, alpha: inout ArraySlice<Float>, beta: inout ArraySlice<Float>,
                        _ ctx: some NodeContext) throws -> @Sendable (Double) -> Double {
    func take(_ list: inout ArraySlice<Float>, _ fallback: Double) -> Double {
        list.isEmpty ? fallback : Double(list.removeFirst())
    }
    switch name.lowercased() {
    case "tanh": return { tanh($0) }
    case "sigmoid": return { 1 / (1 + exp(-$0)) }
    case "relu": return { max($0, 0) }
    case "softsign": return { $0 / (1 + abs($0)) }
    case "softplus": return { log1p(exp($0)) }
    case "affine":
        let a = take(&alpha, 1), b = take(&beta, 0)
        return { a * $0 + b }
    case "leakyrelu":
        let a = take(&alpha, 0.01)
        return { $0 >= 0 ? $0 : a * $0 }
    case "thresholdedrelu":
        let a = take(&alpha, 1)
        return { $0 > a ? $0 : 0 }
    case "scaledtanh":
        let a = take(&alpha, 1), b = take(&beta, 1)
        return { a * tanh(b * $0) }
    case "hardsigmoid":
        let a = take(&alpha, 0.2), b = take(&beta, 0.5)
        return { max(0, min(1, a * $0 + b)) }
    case "elu":
        let a = take(&alpha, 1)
        return { $0 >= 0 ? $0 : a * (exp($0) - 1) }
    default: throw ctx.unsupported("activation '\(name)'")
    }
}

private func evalRecurrent(_ ctx: EvalContext, _ kind: CellKind) throws -> [Tensor] {
    let xIn = try ctx.requiredInput(0), w = try ctx.requiredInput(1), r = try ctx.requiredInput(2)
    try NeuralOps.requireFloat(xIn, "X", ctx)
    let dirs = try directionCount(ctx)
    let reverseOnly = try ctx.string("direction", default: "forward") == "reverse"
    let batchFirst = try ctx.int("layout", default: 0) == 1 && ctx.opset >= 14
    guard xIn.rank == 3 else { throw ctx.error("X must have rank 3, got \(xIn.shape)") }
    let (seq, batch, inputSize) = batchFirst ? (xIn.shape[1], xIn.shape[0], xIn.shape[2])
                                             : (xIn.shape[0], xIn.shape[1], xIn.shape[2])
    guard r.rank == 3, r.shape[0] == dirs else { throw ctx.error("R shape \(r.shape) does not match \(dirs) directions") }
    let hidden = r.shape[2]
    let g = kind.gates
    if let hs = try ctx.int("hidden_size"), hs != hidden { throw ctx.error("hidden_size \(hs) differs from R's \(hidden)") }
    guard w.shape == [dirs, g * hidden, inputSize], r.shape == [dirs, g * hidden, hidden] else {
        throw ctx.error("W \(w.shape) / R \(r.shape) do not match \(dirs) directions, \(g) gates, hidden \(hidden), input \(inputSize)")
    }
    let bInput = ctx.input(3), lensInput = ctx.input(4), h0Input = ctx.input(5)
    let c0Input = kind == .lstm ? ctx.input(6) : nil, pInput = kind == .lstm ? ctx.input(7) : nil
    if let bInput, bInput.shape != [dirs, 2 * g * hidden] { throw ctx.error("B must have shape [\(dirs), \(2 * g * hidden)]") }
    if let pInput, pInput.shape != [dirs, 3 * hidden] { throw ctx.error("P must have shape [\(dirs), \(3 * hidden)]") }
    let stateShape = batchFirst ? [batch, dirs, hidden] : [dirs, batch, hidden]
    for s in [h0Input, c0Input] { if let s, s.shape != stateShape { throw ctx.error("initial state must have shape \(stateShape)") } }
    var lens = [Int](repeating: seq, count: batch)
    if let lensInput {
        lens = lensInput.int64s.map { Int($0) }
        guard lens.count == batch, lens.allSatisfy({ $0 >= 0 && $0 <= seq }) else {
            throw ctx.error("sequence_lens must hold \(batch) lengths within 0...\(seq)")
        }
    }
    // Activations: one list per direction.
    var names = try ctx.strings("activations") ?? []
    if names.isEmpty { names = Array([[String]](repeating: kind.defaultActivations, count: dirs).joined()) }
    guard names.count == kind.defaultActivations.count * dirs else {
        throw ctx.error("expected \(kind.defaultActivations.count * dirs) activations, got \(names.count)")
    }
    var alphas = ArraySlice(try ctx.floats("activation_alpha") ?? [])
    var betas = ArraySlice(try ctx.floats("activation_beta") ?? [])
    let funcs = try names.map { try activation($0, alpha: &alphas, beta: &betas, ctx) }
    let clip = try ctx.float("clip").map(Double.init)
    let linearBeforeReset = try ctx.int("linear_before_reset", default: 0) != 0 && kind == .gru
    let inputForget = try ctx.int("input_forget", default: 0) != 0 && kind == .lstm

    // X as [seq, batch, input]; states as [dirs, batch, hidden].
    var x = xIn.doubles
    func seqMajor(_ v: [Double], _ a: Int, _ b: Int, _ inner: Int) -> [Double] {
        var out = v
        for i in 0..<a { for j in 0..<b { for k in 0..<inner { out[(j * a + i) * inner + k] = v[(i * b + j) * inner + k] } } }
        return out
    }
    if batchFirst { x = seqMajor(x, batch, seq, inputSize) }
    var h0 = h0Input?.doubles ?? [Double](repeating: 0, count: dirs * batch * hidden)
    var c0 = c0Input?.doubles ?? [Double](repeating: 0, count: dirs * batch * hidden)
    if batchFirst {
        if h0Input != nil { h0 = seqMajor(h0, batch, dirs, hidden) }
        if c0Input != nil { c0 = seqMajor(c0, batch, dirs, hidden) }
    }
    let ws = w.doubles, rs = r.doubles
    let bs = bInput?.doubles ?? [Double](repeating: 0, count: dirs * 2 * g * hidden)
    let ps = pInput?.doubles ?? [Double](repeating: 0, count: dirs * 3 * hidden)
    var y = [Double](repeating: 0, count: seq * dirs * batch * hidden)
    var yh = h0, yc = c0
    var pre = [Double](repeating: 0, count: g * hidden)   // X·Wᵀ + Wb per gate
    var rec = [Double](repeating: 0, count: g * hidden)   // H·Rᵀ + Rb per gate
    func clipped(_ v: Double) -> Double { clip.map { min(max(v, -$0), $0) } ?? v }
    for d in 0..<dirs {
        let reverse = reverseOnly || d == 1
        // This direction's activations: f (gates; the only one of RNN), g (candidate), h (LSTM output).
        let acts = Array(funcs[(d * kind.defaultActivations.count)...])
        let f = acts[0]
        let gAct = kind == .rnn ? f : acts[1]
        let hAct = kind == .lstm ? acts[2] : f
        let wBase = d * g * hidden * inputSize, rBase = d * g * hidden * hidden
        let wbBase = d * 2 * g * hidden, rbBase = wbBase + g * hidden, pBase = d * 3 * hidden
        for b in 0..<batch {
            let sBase = (d * batch + b) * hidden
            var h = Array(yh[sBase..<(sBase + hidden)]), c = Array(yc[sBase..<(sBase + hidden)])
            for step in 0..<lens[b] {
                let t = reverse ? lens[b] - 1 - step : step
                let xBase = (t * batch + b) * inputSize
                for row in 0..<(g * hidden) {
                    var a = bs[wbBase + row], e = bs[rbBase + row]
                    let wr = wBase + row * inputSize, rr = rBase + row * hidden
                    for i in 0..<inputSize { a += x[xBase + i] * ws[wr + i] }
                    for j in 0..<hidden { e += h[j] * rs[rr + j] }
                    pre[row] = a; rec[row] = e
                }
                var next = h
                switch kind {
                case .rnn:
                    for j in 0..<hidden { next[j] = f(clipped(pre[j] + rec[j])) }
                case .gru:
                    let z = (0..<hidden).map { f(clipped(pre[$0] + rec[$0])) }
                    let reset = (0..<hidden).map { f(clipped(pre[hidden + $0] + rec[hidden + $0])) }
                    for j in 0..<hidden {
                        var recurrent: Double
                        if linearBeforeReset {
                            recurrent = reset[j] * rec[2 * hidden + j]
                        } else {
                            // (r ⊙ H)·Rhᵀ + Rbh
                            recurrent = bs[rbBase + 2 * hidden + j]
                            let rr = rBase + (2 * hidden + j) * hidden
                            for k in 0..<hidden { recurrent += reset[k] * h[k] * rs[rr + k] }
                        }
                        let candidate = gAct(clipped(pre[2 * hidden + j] + recurrent))
                        next[j] = (1 - z[j]) * candidate + z[j] * h[j]
                    }
                case .lstm:
                    for j in 0..<hidden {
                        let i = f(clipped(pre[j] + rec[j] + ps[pBase + j] * c[j]))
                        var fg = f(clipped(pre[2 * hidden + j] + rec[2 * hidden + j] + ps[pBase + 2 * hidden + j] * c[j]))
                        if inputForget { fg = 1 - i }
                        let cand = gAct(clipped(pre[3 * hidden + j] + rec[3 * hidden + j]))
                        let cNew = fg * c[j] + i * cand
                        let o = f(clipped(pre[hidden + j] + rec[hidden + j] + ps[pBase + hidden + j] * cNew))
                        c[j] = cNew
                        next[j] = o * hAct(cNew)
                    }
                }
                h = next
                let yBase = ((t * dirs + d) * batch + b) * hidden
                for j in 0..<hidden { y[yBase + j] = h[j] }
            }
            for j in 0..<hidden { yh[sBase + j] = h[j]; yc[sBase + j] = c[j] }
        }
    }
    var yShape = [seq, dirs, batch, hidden]
    if batchFirst {
        // [seq, dirs, batch, hidden] → [batch, seq, dirs, hidden]; states [dirs, batch] → [batch, dirs].
        var t = y
        for s in 0..<seq { for d in 0..<dirs { for b in 0..<batch { for j in 0..<hidden {
            t[((b * seq + s) * dirs + d) * hidden + j] = y[((s * dirs + d) * batch + b) * hidden + j]
        } } } }
        y = t
        yShape = [batch, seq, dirs, hidden]
        yh = seqMajor(yh, dirs, batch, hidden)
        yc = seqMajor(yc, dirs, batch, hidden)
    }
    let results = [Tensor(doubles: y, dtype: xIn.dtype, shape: yShape),
                   Tensor(doubles: yh, dtype: xIn.dtype, shape: stateShape),
                   Tensor(doubles: yc, dtype: xIn.dtype, shape: stateShape)]
    return Array(results.prefix(max(1, ctx.outputCount)))
}
