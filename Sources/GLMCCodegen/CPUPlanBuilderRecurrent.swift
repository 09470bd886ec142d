import GLMCIR
import GLMCOps
import GLMCPlan

/// Lowering of RNN, GRU and LSTM to the kernel of `CPUKernelLibraryRecurrent.swift`: every
/// attribute the interpreter reads (directions, activations with their alphas and betas, clip,
/// linear_before_reset, input_forget, layout) is resolved now and baked into the kernel. The
/// sequence runs step after step inside one unit of work per direction and batch row, so the
/// step's parallelism is directions * batch (the recurrence allows no more without changing the
/// order of the sums).
extension CPUPlanBuilder.Generator {
    static let recurrentOps: Set<String> = ["RNN", "GRU", "LSTM"]

    mutating func lowerRecurrent(_ inst: Instruction) throws {
        let cell: CPUKernelLibrary.RecurrentSpec.Cell = inst.op.type == "RNN" ? .rnn : inst.op.type == "GRU" ? .gru : .lstm
        guard inst.operands.count >= 3, let xv = inst.operands[0], let wv = inst.operands[1], let rv = inst.operands[2] else {
            throw unsupported(inst)
        }
        func operand(_ i: Int) -> ValueID? { i < inst.operands.count ? inst.operands[i] : nil }
        let dtype = f.type(of: xv).dtype
        guard dtype.isFloatingPoint, let element = CScalar(dtype) else { throw unsupported(inst, "on \(dtype) tensors") }
        for case let v? in [wv, rv, operand(3), operand(5), operand(6), operand(7)] where f.type(of: v).dtype != dtype {
            throw unsupported(inst, "with operands of mixed types")
        }
        let x = try sizes(xv, inst), w = try sizes(wv, inst), r = try sizes(rv, inst)
        let direction: String
        if case .string(let s)? = inst.attributes["direction"] { direction = s } else { direction = "forward" }
        guard ["forward", "reverse", "bidirectional"].contains(direction) else { throw unsupported(inst, "with direction '\(direction)'") }
        let dirs = direction == "bidirectional" ? 2 : 1
        let batchFirst = inst.opset >= 14 && intAttr(inst, "layout", 0) == 1
        guard x.count == 3, r.count == 3, r[0] == dirs else { throw unsupported(inst, "with X \(x), R \(r)") }
        let (seq, batch, inputSize) = batchFirst ? (x[1], x[0], x[2]) : (x[0], x[1], x[2])
        let hidden = r[2], gates = cell == .rnn ? 1 : cell == .gru ? 3 : 4
        guard w == [dirs, gates * hidden, inputSize], r == [dirs, gates * hidden, hidden] else {
            throw unsupported(inst, "with W \(w) and R \(r) for \(dirs) direction(s), \(gates) gate(s), hidden \(hidden), input \(inputSize)")
        }
        let stateShape = batchFirst ? [batch, dirs, hidden] : [dirs, batch, hidden]
        if let b = operand(3), try sizes(b, inst) != [dirs, 2 * gates * hidden] { throw unsupported(inst, "with B \(try sizes(b, inst))") }
        if let l = operand(4) {
            guard try sizes(l, inst) == [batch], [.i32, .i64].contains(f.type(of: l).dtype) else { throw unsupported(inst, "with sequence_lens \(f.type(of: l))") }
        }
        for i in [5, 6] where i < 6 || cell == .lstm {
            if let s = operand(i), try sizes(s, inst) != stateShape { throw unsupported(inst, "with an initial state \(try sizes(s, inst))") }
        }
        if cell == .lstm, let p = operand(7), try sizes(p, inst) != [dirs, 3 * hidden] { throw unsupported(inst, "with P \(try sizes(p, inst))") }

        // The activations of each direction, with their alphas and betas (consumed in list order).
        let defaults = cell == .rnn ? ["Tanh"] : cell == .gru ? ["Sigmoid", "Tanh"] : ["Sigmoid", "Tanh", "Tanh"]
        var names: [String] = []
        if case .strings(let s)? = inst.attributes["activations"] { names = s }
        if names.isEmpty { names = Array([[String]](repeating: defaults, count: dirs).joined()) }
        guard names.count == defaults.count * dirs else { throw unsupported(inst, "with \(names.count) activations") }
        var alphas: ArraySlice<Float> = [], betas: ArraySlice<Float> = []
        if case .floats(let a)? = inst.attributes["activation_alpha"] { alphas = ArraySlice(a) }
        if case .floats(let b)? = inst.attributes["activation_beta"] { betas = ArraySlice(b) }
        var expressions: [String] = []
        for name in names {
            guard let e = CPUKernelLibrary.recurrentActivation(name, alpha: &alphas, beta: &betas) else {
                throw unsupported(inst, "with activation '\(name)'")
            }
            expressions.append(e)
        }
        var clip: Float?
        if case .float(let c)? = inst.attributes["clip"] { clip = c }

        var args = [try argument(xv, inst), try argument(wv, inst), try argument(rv, inst)]
        let optional = cell == .lstm ? [3, 4, 5, 6, 7] : [3, 4, 5]
        for i in optional { if let v = operand(i) { args.append(try argument(v, inst)) } }
        var outputs: [Bool] = []
        for k in 0 ..< 3 {
            guard k < inst.results.count, k < 2 || cell == .lstm else { outputs.append(false); continue }
            guard let b = bufferOf[inst.results[k]] else { throw unsupported(inst, "whose result '\(f.name(of: inst.results[k]))' has no buffer") }
            args.append(.buffer(b))
            outputs.append(true)
        }
        includeReductionHelpers()
        let spec = CPUKernelLibrary.RecurrentSpec(
            cell: cell, element: element, sequence: seq, batch: batch, inputSize: inputSize, hidden: hidden, directions: dirs,
            reverseOnly: direction == "reverse", batchFirst: batchFirst,
            activations: (0 ..< dirs).map { Array(expressions[($0 * defaults.count) ..< (($0 + 1) * defaults.count)]) },
            clip: clip, linearBeforeReset: cell == .gru && intAttr(inst, "linear_before_reset", 0) != 0,
            inputForget: cell == .lstm && intAttr(inst, "input_forget", 0) != 0,
            hasBias: operand(3) != nil, lengths: operand(4).flatMap { CScalar(f.type(of: $0).dtype) },
            hasInitialH: operand(5) != nil, hasInitialC: cell == .lstm && operand(6) != nil,
            hasPeepholes: cell == .lstm && operand(7) != nil, outputs: outputs)
        addStep(kind: inst.op.type.lowercased(), code: CPUKernelLibrary.recurrent(name: nextSymbol, spec), arguments: args,
                range: dirs * batch, work: CPUPlanBuilder.Generator.grainWork, scratchPerUnit: 8 * spec.scratchPerUnit)
    }
}
