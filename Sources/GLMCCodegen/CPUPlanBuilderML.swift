import GLMCIR
import GLMCOps
import GLMCPlan

/// Lowering of the `ai.onnx.ml` ops (Binarizer, ArrayFeatureExtractor, TreeEnsemble), the
/// `ai.onnx.preview.training` optimizers (Adagrad, Momentum, Adam), TfIdfVectorizer on integer
/// input and Range with runtime bounds to the kernels of `CPUKernelLibraryML.swift`. Semantics
/// follow the interpreter's definitions (`GLMCOps/MiscML.swift`, `MiscTraining.swift`,
/// `MiscStrings.swift`, `MovementSourceOps.swift`).
extension CPUPlanBuilder.Generator {
    /// Ops of the default domain lowered here (the ml and training domains are lowered here whole).
    static let mlOps: Set<String> = ["TfIdfVectorizer", "Range"]

    mutating func lowerML(_ inst: Instruction) throws {
        includeReductionHelpers()
        switch (inst.op.domain, inst.op.type) {
        case ("ai.onnx.preview.training", "Adagrad"), ("ai.onnx.preview.training", "Momentum"), ("ai.onnx.preview.training", "Adam"):
            return try lowerOptimizer(inst)
        case ("ai.onnx.ml", "Binarizer"): return try lowerBinarizer(inst)
        case ("ai.onnx.ml", "ArrayFeatureExtractor"): return try lowerArrayFeatureExtractor(inst)
        case ("ai.onnx.ml", "TreeEnsemble"): return try lowerTreeEnsemble(inst)
        case ("", "TfIdfVectorizer"), ("ai.onnx", "TfIdfVectorizer"): return try lowerTfIdfVectorizer(inst)
        case ("", "Range"), ("ai.onnx", "Range"): return try lowerRange(inst)
        default: throw unsupported(inst)
        }
    }

    /// The node's attributes as the interpreter's definitions read them.
    func nodeContext(_ inst: Instruction) -> InferenceContext {
        InferenceContext(op: inst.op, nodeName: inst.nodeName, opset: inst.opset, attributes: inst.attributes,
                         outputCount: inst.results.count, inputTypes: inst.operands.map { $0.map { f.type(of: $0) } })
    }

    // MARK: Optimizers

    /// One step per optimized tensor: it reads R, T and the tensor's group (X, G and the state
    /// tensors) and writes the group's updated tensors that are in use.
    mutating func lowerOptimizer(_ inst: Instruction) throws {
        let kind: CPUKernelLibrary.Optimizer
        let ctx = nodeContext(inst)
        do {
            switch inst.op.type {
            case "Adagrad":
                kind = .adagrad(norm: Double(try ctx.float("norm_coefficient", default: 0)), decay: Double(try ctx.float("decay_factor", default: 0)),
                                epsilon: Double(try ctx.float("epsilon", default: 1e-6)))
            case "Momentum":
                guard let alpha = try ctx.float("alpha"), let beta = try ctx.float("beta"), let norm = try ctx.float("norm_coefficient"),
                      let mode = try ctx.string("mode"), mode == "standard" || mode == "nesterov" else {
                    throw unsupported(inst, "without alpha, beta, norm_coefficient and a mode 'standard' or 'nesterov'")
                }
                kind = .momentum(alpha: Double(alpha), beta: Double(beta), norm: Double(norm), nesterov: mode == "nesterov")
            default:
                kind = .adam(alpha: Double(try ctx.float("alpha", default: 0.9)), beta: Double(try ctx.float("beta", default: 0.999)),
                             epsilon: Double(try ctx.float("epsilon", default: 1e-6)), norm: Double(try ctx.float("norm_coefficient", default: 0)),
                             normPost: Double(try ctx.float("norm_coefficient_post", default: 0)))
            }
        } catch let e as GLMCError { throw unsupported(inst, "(\(e.message))") }
        let kinds = kind.groupSize, updated = kind.updated
        let operands = inst.operands
        guard operands.count > 2, (operands.count - 2) % kinds == 0, operands.allSatisfy({ $0 != nil }) else {
            throw unsupported(inst, "with \(operands.count) operands (R, T and \(kinds) tensors per optimized tensor)")
        }
        let n = (operands.count - 2) / kinds
        let rv = operands[0]!, tv = operands[1]!
        let rs = try floatScalar(rv, inst)
        guard try sizes(rv, inst).reduce(1, *) == 1, f.type(of: tv).dtype == .i64, try sizes(tv, inst).reduce(1, *) == 1 else {
            throw unsupported(inst, "with R \(f.type(of: rv)) and T \(f.type(of: tv)) (scalars of float and int64)")
        }
        for i in 0 ..< n {
            let group = (0 ..< kinds).map { operands[2 + $0 * n + i]! }
            let shape = try sizes(group[0], inst)
            var scalars: [CScalar] = []
            for v in group {
                guard try sizes(v, inst) == shape else { throw unsupported(inst, "on tensors of different shapes in optimized tensor \(i)") }
                let s = try floatScalar(v, inst)
                guard s.dtype == .f32 || s.dtype == .f64 else { throw unsupported(inst, "on \(s.dtype) tensors") }
                scalars.append(s)
            }
            var args = [try argument(rv, inst), try argument(tv, inst)] + (try group.map { try argument($0, inst) })
            var outputs: [CScalar?] = []
            for j in updated.indices {
                let r = j * n + i
                guard r < inst.results.count, isUsed(inst.results[r]), let b = bufferOf[inst.results[r]] else { outputs.append(nil); continue }
                outputs.append(scalars[updated[j]])
                args.append(.buffer(b))
            }
            guard outputs.contains(where: { $0 != nil }) else { continue }
            let count = shape.reduce(1, *)
            addStep(kind: "optimizer", code: CPUKernelLibrary.optimizer(name: nextSymbol, kind, r: rs, inputs: scalars, outputs: outputs),
                    arguments: args, range: count, work: 8)
        }
    }

    // MARK: ai.onnx.ml

    mutating func lowerBinarizer(_ inst: Instruction) throws {
        guard let xv = inst.operands.first ?? nil else { throw unsupported(inst) }
        let xs = try scalar(xv, inst)
        guard [.f32, .f64, .i64, .i32].contains(xs.dtype) else { throw unsupported(inst, "on \(xs.dtype) tensors") }
        let threshold: Double
        do { threshold = Double(try nodeContext(inst).float("threshold", default: 0)) } catch let e as GLMCError { throw unsupported(inst, "(\(e.message))") }
        addStep(kind: "binarizer", code: CPUKernelLibrary.binarizer(name: nextSymbol, scalar: xs, threshold: threshold),
                arguments: [try argument(xv, inst), try output(inst)], range: try sizes(xv, inst).reduce(1, *), work: 1)
    }

    /// ArrayFeatureExtractor on numeric X. Constant indices are checked now; runtime indices out
    /// of range (the interpreter's error) give zeros.
    mutating func lowerArrayFeatureExtractor(_ inst: Instruction) throws {
        guard inst.operands.count == 2, let xv = inst.operands[0], let iv = inst.operands[1] else { throw unsupported(inst) }
        let x = try sizes(xv, inst), k = try sizes(iv, inst).reduce(1, *)
        let xs = try scalar(xv, inst)
        guard let last = x.last, f.type(of: iv).dtype == .i64 else { throw unsupported(inst, "on \(f.type(of: xv)) with indices \(f.type(of: iv))") }
        if let c = constants[iv], !c.isElided, let bad = c.elements(as: Int64.self).first(where: { $0 < 0 || $0 >= last }) {
            throw nodeContext(inst).error("index \(bad) is out of range for a last axis of \(last)")
        }
        let rows = x.reduce(1, *) / max(last, 1)
        addStep(kind: "array_feature_extractor", code: CPUKernelLibrary.arrayFeatureExtractor(name: nextSymbol, scalar: xs, last: last, selected: k),
                arguments: [try argument(xv, inst), try argument(iv, inst), try output(inst)], range: rows * k, work: 1)
    }

    /// TreeEnsemble: the interpreter's decoded trees, baked into tables. Trees are checked now:
    /// every node reachable from a root must read a feature of X, and no tree may have a cycle
    /// (the interpreter's errors, which a kernel cannot raise).
    mutating func lowerTreeEnsemble(_ inst: Instruction) throws {
        guard let xv = inst.operands.first ?? nil else { throw unsupported(inst) }
        let x = try sizes(xv, inst), xs = try floatScalar(xv, inst)
        guard x.count == 2 else { throw unsupported(inst, "on X \(x) (it must be [N, F])") }
        let model: MiscOps.TreeEnsembleModel
        do { model = try MiscOps.TreeEnsembleModel(nodeContext(inst)) } catch let e as GLMCError { throw unsupported(inst, "(\(e.message))") }
        guard try sizes(inst.results[0], inst) == [x[0], model.targets] else {
            throw unsupported(inst, "whose result \(f.type(of: inst.results[0])) is not [\(x[0]), \(model.targets)]")
        }
        if let problem = Self.treeProblem(model, features: x[1]) { throw unsupported(inst, problem) }
        addStep(kind: "tree_ensemble", code: CPUKernelLibrary.treeEnsemble(name: nextSymbol, scalar: xs, model, features: x[1]),
                arguments: [try argument(xv, inst), try output(inst)], range: x[0], work: model.roots.count * 16,
                scratchPerUnit: 8 * max(model.targets, 1))
    }

    /// Why the kernel cannot walk `model`'s trees (a reachable node reads a feature X does not
    /// have, or a tree has a cycle); nil when it can. A depth-first walk that colours nodes.
    static func treeProblem(_ model: MiscOps.TreeEnsembleModel, features: Int) -> String? {
        var state = [UInt8](repeating: 0, count: model.modes.count) // 0 new, 1 on the path, 2 done
        func visit(_ node: Int, root: Int) -> String? {
            if state[node] == 2 { return nil }
            if state[node] == 1 { return "whose tree from root \(root) has a cycle" }
            guard model.features[node] >= 0, model.features[node] < features else {
                return "whose node \(node) reads feature \(model.features[node]) of \(features)"
            }
            state[node] = 1
            if !model.trueLeaf[node], let p = visit(model.trueIds[node], root: root) { return p }
            if !model.falseLeaf[node], let p = visit(model.falseIds[node], root: root) { return p }
            state[node] = 2
            return nil
        }
        for root in model.roots { if let p = visit(root, root: root) { return p } }
        return nil
    }

    // MARK: TfIdfVectorizer, Range

    /// TfIdfVectorizer on int32 / int64 input: the pool's n-grams (of the counted lengths) become
    /// tables; string input is refused.
    mutating func lowerTfIdfVectorizer(_ inst: Instruction) throws {
        guard let xv = inst.operands.first ?? nil else { throw unsupported(inst) }
        let x = try sizes(xv, inst), xs = try scalar(xv, inst)
        guard xs.dtype == .i64 || xs.dtype == .i32 else { throw unsupported(inst, "on \(xs.dtype) input (integer input only)") }
        guard x.count <= 2 else { throw unsupported(inst, "on input \(x)") }
        let ctx = nodeContext(inst)
        let table: CPUKernelLibrary.NGramTable
        do {
            guard let mode = try ctx.string("mode"), let weighting = CPUKernelLibrary.NGramTable.Weighting(rawValue: mode) else {
                throw ctx.error("mode must be TF, IDF or TFIDF")
            }
            guard let minLength = try ctx.int("min_gram_length"), let maxLength = try ctx.int("max_gram_length"),
                  let maxSkip = try ctx.int("max_skip_count"), let counts = try ctx.ints("ngram_counts"),
                  let indexes = try ctx.ints("ngram_indexes"), let maxIndex = indexes.max(),
                  minLength >= 1, minLength <= maxLength, maxSkip >= 0, indexes.allSatisfy({ $0 >= 0 }) else {
                throw ctx.error("needs 1 ≤ min_gram_length ≤ max_gram_length, max_skip_count ≥ 0, ngram_counts and ngram_indexes ≥ 0")
            }
            guard let pool = try ctx.ints("pool_int64s") else { throw ctx.error("an integer input needs pool_int64s") }
            let weights = try ctx.floats("weights") ?? []
            guard weights.isEmpty || weights.count >= maxIndex + 1 else { throw ctx.error("weights has \(weights.count) entries for \(maxIndex + 1) outputs") }
            let grams = try TfIdfPool.grams(pool, counts: counts, indexes: indexes, lengths: minLength ... maxLength, error: ctx.error)
            table = CPUKernelLibrary.NGramTable(grams: grams.map { ($0.gram, $0.output) }, minLength: minLength, maxLength: maxLength,
                                                maxSkip: maxSkip, outputSize: maxIndex + 1, weighting: weighting,
                                                weights: weights.isEmpty ? nil : Array(weights.prefix(maxIndex + 1)))
        } catch let e as GLMCError { throw unsupported(inst, "(\(e.message))") }
        let rows = x.count == 2 ? x[0] : 1, width = x.isEmpty ? 1 : x[x.count - 1]
        guard try sizes(inst.results[0], inst).reduce(1, *) == rows * table.outputSize else {
            throw unsupported(inst, "whose result \(f.type(of: inst.results[0])) is not \(rows) rows of \(table.outputSize)")
        }
        addStep(kind: "tfidf_vectorizer", code: CPUKernelLibrary.tfIdfVectorizer(name: nextSymbol, input: xs, table, width: width),
                arguments: [try argument(xv, inst), try output(inst)], range: rows,
                work: width * (table.maxSkip + 1) * table.maxLength * max(table.grams.count, 1))
    }

    /// Range whose bounds are known only at run time (f16 and bf16 inputs cannot be bound at
    /// convert time): the element count is the result's static size, and element i is
    /// start + i·delta (in double for floats, wrapping int64 for integers).
    mutating func lowerRange(_ inst: Instruction) throws {
        guard inst.operands.count == 3, let sv = inst.operands[0], let dv = inst.operands[2] else { throw unsupported(inst) }
        let ys = try scalar(inst.results[0], inst), count = try sizes(inst.results[0], inst).reduce(1, *)
        guard ys.dtype != .bool, try scalar(sv, inst) == ys, try scalar(dv, inst) == ys else { throw unsupported(inst, "on \(f.type(of: sv))") }
        addStep(kind: "range", code: CPUKernelLibrary.range(name: nextSymbol, scalar: ys),
                arguments: [try argument(sv, inst), try argument(dv, inst), try output(inst)], range: count, work: 1)
    }
}
