/// The RNN, GRU and LSTM kernel: one unit of work runs one direction of one batch row through the
/// whole sequence, in double, step by step as the interpreter's definition does
/// (`GLMCOps/NeuralRecurrent.swift`), so that results agree to the last float bit.
extension CPUKernelLibrary {
    struct RecurrentSpec {
        enum Cell { case rnn, gru, lstm }
        var cell: Cell
        var element: CScalar
        var sequence: Int, batch: Int, inputSize: Int, hidden: Int, directions: Int
        /// direction "reverse" (with "bidirectional", direction 1 runs in reverse).
        var reverseOnly: Bool
        /// layout 1: X [batch, seq, input], Y [batch, seq, dirs, hidden], states [batch, dirs, hidden].
        var batchFirst: Bool
        /// Per direction, the activations f, g, h (as many as the cell uses), each a C expression of `v`.
        var activations: [[String]]
        var clip: Float?
        var linearBeforeReset: Bool
        var inputForget: Bool
        /// Optional operands, in argument order after X, W, R: bias, sequence lengths (their type),
        /// initial h, initial c, peepholes.
        var hasBias: Bool, lengths: CScalar?, hasInitialH: Bool, hasInitialC: Bool, hasPeepholes: Bool
        /// Which of Y, Y_h, Y_c are written (in that order, after the operands).
        var outputs: [Bool]

        var gates: Int { cell == .rnn ? 1 : cell == .gru ? 3 : 4 }
        /// Doubles of scratch one unit uses: h, c, the gates' input and recurrent sums, the next h,
        /// GRU's update and reset gates.
        var scratchPerUnit: Int { (5 + 2 * gates) * hidden }
    }

    /// Parallel range: directions * batch. Arguments: X, W, R, the optional operands present
    /// (see `RecurrentSpec`), the outputs written, then the scratch buffer (its index on a GPU).
    static func recurrent(name: String, _ p: RecurrentSpec) -> String {
        let e = p.element, hid = p.hidden, g = p.gates, n = p.inputSize
        var s = "// \(name): \(p.cell) over \(p.sequence) steps, batch \(p.batch), hidden \(hid), \(p.directions) direction(s)\n"
        // The activations, as functions of their own.
        for (d, acts) in p.activations.enumerated() {
            for (k, a) in acts.enumerated() {
                s += "static inline double \(name)_act\(d)_\(k)(double v) { return \(a); }\n"
            }
        }
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        s += e.pointer("X", 0) + e.pointer("W", 1) + e.pointer("R", 2)
        var next = 3
        if p.hasBias { s += e.pointer("B", next); next += 1 }
        if let l = p.lengths { s += l.pointer("L", next); next += 1 }
        if p.hasInitialH { s += e.pointer("H0", next); next += 1 }
        if p.hasInitialC { s += e.pointer("C0", next); next += 1 }
        if p.hasPeepholes { s += e.pointer("P", next); next += 1 }
        for (k, name) in ["Y", "YH", "YC"].enumerated() where p.outputs[k] { s += e.pointer(name, next, const: false); next += 1 }
        s += "  GLMC_SCRATCH(double, scratch, \(p.scratchPerUnit), \(next));\n"
        s += "  for (long u = begin; u < end; ++u) {\n"
        s += "    long d = u / \(p.batch), b = u % \(p.batch), len = \(p.sequence);\n"
        s += "    int reverse = \(p.reverseOnly ? "1" : "d == 1");\n"
        s += "    GLMC_GLOBAL double *h = scratch, *c = h + \(hid), *pre = c + \(hid), *rec = pre + \(g * hid), *nh = rec + \(g * hid);\n"
        s += "    GLMC_GLOBAL double *z = nh + \(hid), *rg = z + \(hid);\n"
        let state = p.batchFirst ? "(b * \(p.directions) + d) * \(hid) + j" : "(d * \(p.batch) + b) * \(hid) + j"
        let yIndex = p.batchFirst ? "((b * \(p.sequence) + t) * \(p.directions) + d) * \(hid) + j" : "((t * \(p.directions) + d) * \(p.batch) + b) * \(hid) + j"
        if p.lengths != nil {
            // The interpreter refuses lengths outside 0...seq; a plan cannot, so it clamps them.
            s += "    len = (long)\(p.lengths!.load("L", "b"));\n    if (len < 0) len = 0;\n    if (len > \(p.sequence)) len = \(p.sequence);\n"
        }
        s += "    for (long j = 0; j < \(hid); ++j) {\n"
        s += "      h[j] = \(p.hasInitialH ? e.load("H0", state) : "0.0");\n"
        s += "      c[j] = \(p.hasInitialC ? e.load("C0", state) : "0.0");\n"
        s += "    }\n"
        if p.outputs[0] {
            // Steps past a row's length stay 0.
            s += "    for (long t = 0; t < \(p.sequence); ++t) for (long j = 0; j < \(hid); ++j) \(e.store("Y", yIndex, "0.0"))\n"
        }
        s += "    for (long step = 0; step < len; ++step) {\n"
        s += "      long t = reverse ? len - 1 - step : step;\n"
        s += "      long xb = \(p.batchFirst ? "(b * \(p.sequence) + t) * \(n)" : "(t * \(p.batch) + b) * \(n)");\n"
        s += "      for (long row = 0; row < \(g * hid); ++row) {\n"
        s += "        double a = \(p.hasBias ? e.load("B", "d * \(2 * g * hid) + row") : "0.0");\n"
        s += "        double r = \(p.hasBias ? e.load("B", "d * \(2 * g * hid) + \(g * hid) + row") : "0.0");\n"
        s += "        for (long i = 0; i < \(n); ++i) a += \(e.load("X", "xb + i")) * \(e.load("W", "(d * \(g * hid) + row) * \(n) + i"));\n"
        s += "        for (long j = 0; j < \(hid); ++j) r += h[j] * \(e.load("R", "(d * \(g * hid) + row) * \(hid) + j"));\n"
        s += "        pre[row] = a; rec[row] = r;\n"
        s += "      }\n"
        func clipped(_ v: String) -> String {
            guard let c = p.clip else { return v }
            return "glmc_rnn_clip(\(v), (double)\(lit(c)))"
        }
        func act(_ k: Int, _ v: String) -> String {
            let names = p.activations.indices.map { "\(name)_act\($0)_\(k)(\(v))" }
            return names.count == 1 ? names[0] : "(d == 0 ? \(names[0]) : \(names[1]))"
        }
        func peephole(_ gate: Int, _ cell: String) -> String {
            p.hasPeepholes ? " + \(e.load("P", "d * \(3 * hid) + \(gate * hid) + j")) * \(cell)" : " + 0.0 * \(cell)"
        }
        switch p.cell {
        case .rnn:
            s += "      for (long j = 0; j < \(hid); ++j) nh[j] = \(act(0, clipped("pre[j] + rec[j]")));\n"
        case .gru:
            s += "      for (long j = 0; j < \(hid); ++j) {\n"
            s += "        z[j] = \(act(0, clipped("pre[j] + rec[j]")));\n"
            s += "        rg[j] = \(act(0, clipped("pre[\(hid) + j] + rec[\(hid) + j]")));\n"
            s += "      }\n"
            s += "      for (long j = 0; j < \(hid); ++j) {\n"
            if p.linearBeforeReset {
                s += "        double q = rg[j] * rec[\(2 * hid) + j];\n"
            } else {
                s += "        double q = \(p.hasBias ? e.load("B", "d * \(2 * g * hid) + \(g * hid) + \(2 * hid) + j") : "0.0");\n"
                s += "        for (long k = 0; k < \(hid); ++k) q += rg[k] * h[k] * \(e.load("R", "(d * \(g * hid) + \(2 * hid) + j) * \(hid) + k"));\n"
            }
            s += "        double cand = \(act(1, clipped("pre[\(2 * hid) + j] + q")));\n"
            s += "        nh[j] = (1.0 - z[j]) * cand + z[j] * h[j];\n"
            s += "      }\n"
        case .lstm:
            s += "      for (long j = 0; j < \(hid); ++j) {\n"
            s += "        double ig = \(act(0, clipped("pre[j] + rec[j]" + peephole(0, "c[j]"))));\n"
            s += "        double fg = \(act(0, clipped("pre[\(2 * hid) + j] + rec[\(2 * hid) + j]" + peephole(2, "c[j]"))));\n"
            if p.inputForget { s += "        fg = 1.0 - ig;\n" }
            s += "        double cand = \(act(1, clipped("pre[\(3 * hid) + j] + rec[\(3 * hid) + j]")));\n"
            s += "        double cn = fg * c[j] + ig * cand;\n"
            s += "        double og = \(act(0, clipped("pre[\(hid) + j] + rec[\(hid) + j]" + peephole(1, "cn"))));\n"
            s += "        c[j] = cn;\n"
            s += "        nh[j] = og * \(act(2, "cn"));\n"
            s += "      }\n"
        }
        s += "      for (long j = 0; j < \(hid); ++j) h[j] = nh[j];\n"
        if p.outputs[0] { s += "      for (long j = 0; j < \(hid); ++j) \(e.store("Y", yIndex, "h[j]"))\n" }
        s += "    }\n"
        if p.outputs[1] { s += "    for (long j = 0; j < \(hid); ++j) \(e.store("YH", state, "h[j]"))\n" }
        if p.outputs[2] { s += "    for (long j = 0; j < \(hid); ++j) \(e.store("YC", state, "c[j]"))\n" }
        s += "  }\n  GLMC_SCRATCH_FREE(scratch);\n}\n"
        if p.clip != nil {
            s = "#ifndef GLMC_RNN_CLIP\n#define GLMC_RNN_CLIP\n"
                + "static inline double glmc_rnn_clip(double v, double c) { return v < -c ? -c : (v > c ? c : v); }\n#endif\n" + s
        }
        return s
    }

    /// An ONNX recurrent activation as a C expression of the double `v`, its alpha and beta taken
    /// from the fronts of the lists (defaults where they run out), as the interpreter does.
    static func recurrentActivation(_ name: String, alpha: inout ArraySlice<Float>, beta: inout ArraySlice<Float>) -> String? {
        func take(_ list: inout ArraySlice<Float>, _ fallback: Float) -> String {
            "(double)\(lit(list.isEmpty ? fallback : list.removeFirst()))"
        }
        switch name.lowercased() {
        case "tanh": return "tanh(v)"
        case "sigmoid": return "1.0 / (1.0 + exp(-v))"
        case "relu": return "(0.0 >= v ? 0.0 : v)"
        case "softsign": return "v / (1.0 + fabs(v))"
        case "softplus": return "log1p(exp(v))"
        case "affine":
            let a = take(&alpha, 1), b = take(&beta, 0)
            return "\(a) * v + \(b)"
        case "leakyrelu": return "(v >= 0.0 ? v : \(take(&alpha, 0.01)) * v)"
        case "thresholdedrelu": return "(v > \(take(&alpha, 1)) ? v : 0.0)"
        case "scaledtanh":
            let a = take(&alpha, 1), b = take(&beta, 1)
            return "\(a) * tanh(\(b) * v)"
        case "hardsigmoid":
            let a = take(&alpha, 0.2), b = take(&beta, 0.5)
            return "(\(a) * v + \(b) < 1.0 ? (\(a) * v + \(b) >= 0.0 ? \(a) * v + \(b) : 0.0) : 1.0)"
        case "elu": return "(v >= 0.0 ? v : \(take(&alpha, 1)) * (exp(v) - 1.0))"
        default: return nil
        }
    }
}
