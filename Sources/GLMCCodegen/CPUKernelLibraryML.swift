import GLMCIR
import GLMCOps

/// Kernels of the `ai.onnx.ml` ops, the training optimizers, TfIdfVectorizer and Range (see
/// `CPUPlanBuilderML.swift`); same ABI and portable subset as the rest of `CPUKernelLibrary`.
/// Arithmetic is in double, as the interpreter computes it.
extension CPUKernelLibrary {
    /// A double as a C literal (the shortest text that reads back as the same double).
    static func doubleLiteral(_ x: Double) -> String {
        if x.isNaN { return "(double)NAN" }
        if x.isInfinite { return x > 0 ? "(double)INFINITY" : "(-(double)INFINITY)" }
        let text = "\(x)"
        return text.contains(".") || text.contains("e") ? "(\(text))" : "(\(text).0)"
    }

    static func doubleArray(_ name: String, _ values: [Double]) -> String {
        "  GLMC_TABLE double \(name)[\(max(1, values.count))] = {\(values.isEmpty ? "0.0" : values.map(doubleLiteral).joined(separator: ", "))};\n"
    }

    // MARK: Optimizers

    /// An `ai.onnx.preview.training` optimizer with its attributes (as doubles of the float
    /// attributes, as the interpreter reads them).
    enum Optimizer {
        case adagrad(norm: Double, decay: Double, epsilon: Double)
        case momentum(alpha: Double, beta: Double, norm: Double, nesterov: Bool)
        case adam(alpha: Double, beta: Double, epsilon: Double, norm: Double, normPost: Double)

        /// Operand tensors per optimized tensor: X, G, then the state (H; V; V and H).
        var groupSize: Int { if case .adam = self { return 4 } else { return 3 } }
        /// The operand kinds whose updated tensors are the results, in result order.
        var updated: [Int] { if case .adam = self { return [0, 2, 3] } else { return [0, 2] } }
    }

    /// One optimizer step over one optimized tensor. Parallel range: its element count.
    /// Arguments: R, T (int64), the group's tensors (X, G, state...), then the updated tensors in
    /// use (`outputs[j]` nil: result j is not written).
    static func optimizer(name: String, _ kind: Optimizer, r: CScalar, inputs: [CScalar], outputs: [CScalar?]) -> String {
        let d = doubleLiteral
        var s = "// \(name): optimizer step\nvoid \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        s += r.pointer("R", 0) + "  GLMC_GLOBAL const int64_t *T = (GLMC_GLOBAL const int64_t *)args[1];\n"
        let names = ["X", "G", "S1", "S2"]
        for (i, scalar) in inputs.enumerated() { s += scalar.pointer(names[i], 2 + i) }
        var next = 2 + inputs.count
        var outNames: [String?] = []
        for (j, o) in outputs.enumerated() {
            guard let o else { outNames.append(nil); continue }
            s += o.pointer("Y\(j)", next, const: false)
            next += 1
            outNames.append("Y\(j)")
        }
        func store(_ j: Int, _ value: String) -> String {
            guard let name = outNames[j], let o = outputs[j] else { return "" }
            return " " + o.store(name, "u", value)
        }
        s += "  double r = \(r.load("R", "0")); int64_t t = T[0];\n"
        let (x, g) = (inputs[0].load("X", "u"), inputs[1].load("G", "u"))
        switch kind {
        case .adagrad(let norm, let decay, let epsilon):
            s += "  double rate = r / (1.0 + (double)t * \(d(decay)));\n"
            s += "  for (long u = begin; u < end; ++u) {\n"
            s += "    double x = \(x), gr = \(d(norm)) * x + \(g);\n"
            s += "    double h = \(inputs[2].load("S1", "u")) + gr * gr;\n"
            s += "   \(store(0, "x - rate * gr / (sqrt(h) + \(d(epsilon)))"))\(store(1, "h"))\n  }\n"
        case .momentum(let alpha, let beta, let norm, let nesterov):
            // The gradient's coefficient is 1 at the first iteration.
            s += "  double beta = t > 0 ? \(d(beta)) : 1.0;\n"
            s += "  for (long u = begin; u < end; ++u) {\n"
            s += "    double x = \(x), gr = \(d(norm)) * x + \(g);\n"
            s += "    double m = \(d(alpha)) * \(inputs[2].load("S1", "u")) + beta * gr;\n"
            s += "   \(store(0, nesterov ? "x - r * (gr + \(d(alpha)) * m)" : "x - r * m"))\(store(1, "m"))\n  }\n"
        case .adam(let alpha, let beta, let epsilon, let norm, let normPost):
            // Bias correction of both moments, from the second update on.
            s += "  double rate = t > 0 ? r * sqrt(1.0 - pow(\(d(beta)), (double)t)) / (1.0 - pow(\(d(alpha)), (double)t)) : r;\n"
            s += "  for (long u = begin; u < end; ++u) {\n"
            s += "    double x = \(x), gr = \(d(norm)) * x + \(g);\n"
            s += "    double m = \(d(alpha)) * \(inputs[2].load("S1", "u")) + (1.0 - \(d(alpha))) * gr;\n"
            s += "    double h = \(d(beta)) * \(inputs[3].load("S2", "u")) + (1.0 - \(d(beta))) * gr * gr;\n"
            s += "   \(store(0, "(1.0 - \(d(normPost))) * (x - rate * m / (sqrt(h) + \(d(epsilon))))"))\(store(1, "m"))\(store(2, "h"))\n  }\n"
        }
        return s + "}\n"
    }

    // MARK: ai.onnx.ml

    /// Binarizer: 1 where x > threshold, else 0 (NaN gives 0). Parallel range: the element count.
    /// Arguments: X, Y.
    static func binarizer(name: String, scalar: CScalar, threshold: Double) -> String {
        "// \(name): binarizer\nvoid \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n" + scalar.pointer("X", 0) + scalar.pointer("Y", 1, const: false)
            + "  for (long u = begin; u < end; ++u) \(scalar.store("Y", "u", "\(scalar.load("X", "u")) > \(doubleLiteral(threshold)) ? 1.0 : 0.0"))\n}\n"
    }

    /// ArrayFeatureExtractor: Y[r, j] = X[r, I[j]] along X's last axis; an index out of range
    /// gives 0. Parallel range: rows · selected. Arguments: X, I (int64), Y.
    static func arrayFeatureExtractor(name: String, scalar: CScalar, last: Int, selected: Int) -> String {
        var s = "// \(name): array feature extractor, \(selected) of \(last)\nvoid \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        s += scalar.pointer("X", 0) + "  GLMC_GLOBAL const int64_t *I = (GLMC_GLOBAL const int64_t *)args[1];\n" + scalar.pointer("Y", 2, const: false)
        s += "  for (long u = begin; u < end; ++u) {\n"
        s += "    long r = u / \(max(selected, 1)); int64_t i = I[u % \(max(selected, 1))];\n"
        s += "    if (i >= 0 && i < \(last)) Y[u] = X[r * \(last) + i]; else Y[u] = 0;\n  }\n}\n"
        return s
    }

    /// TreeEnsemble, one row of X per unit of the parallel range: every tree is walked from its
    /// root to a leaf (the nodes as tables), the leaves' weights are aggregated per target in
    /// double (average, sum, min, max), then the row is post-transformed (softmax, logistic,
    /// softmax that keeps zeros). Arguments: X, Y, [scratch: targets doubles per row].
    static func treeEnsemble(name: String, scalar: CScalar, _ m: MiscOps.TreeEnsembleModel, features: Int) -> String {
        let nodes = m.modes.count, targets = m.targets
        var memberStart: [Int] = [], memberCount: [Int] = [], memberValues: [Double] = []
        for i in 0 ..< nodes {
            let set = m.members[i].map { $0.sorted() } ?? []
            memberStart.append(memberValues.count); memberCount.append(set.count)
            memberValues += set
        }
        let largest: Double = scalar.dtype == .f64 ? .greatestFiniteMagnitude : (scalar.dtype == .f32 ? Double(Float.greatestFiniteMagnitude) : 65504)
        let initial: Double = m.aggregate == 2 ? largest : (m.aggregate == 3 ? -largest : 0)
        var s = "// \(name): tree ensemble, \(m.roots.count) trees, \(nodes) nodes, \(targets) targets\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n" + scalar.pointer("X", 0) + scalar.pointer("Y", 1, const: false)
        s += longArray("mode", m.modes.map(\.rawValue)) + longArray("feature", m.features) + doubleArray("split", m.splits)
        s += longArray("trueId", m.trueIds) + longArray("falseId", m.falseIds)
        s += longArray("trueLeaf", m.trueLeaf.map { $0 ? 1 : 0 }) + longArray("falseLeaf", m.falseLeaf.map { $0 ? 1 : 0 })
        s += longArray("missingTrue", m.missingTracksTrue.isEmpty ? [Int](repeating: 0, count: nodes) : m.missingTracksTrue.map { $0 ? 1 : 0 })
        s += longArray("memberStart", memberStart) + longArray("memberCount", memberCount) + doubleArray("members", memberValues)
        s += doubleArray("leafWeight", m.leafWeights) + longArray("leafTarget", m.leafTargets) + longArray("roots", m.roots)
        s += "  GLMC_SCRATCH(double, acc, \(max(targets, 1)), 2);\n"
        s += "  for (long r = begin; r < end; ++r) {\n"
        s += "    for (long o = 0; o < \(targets); ++o) acc[o] = \(doubleLiteral(initial));\n"
        s += "    for (long tree = 0; tree < \(m.roots.count); ++tree) {\n"
        s += "      long node = roots[tree], leaf = -1;\n"
        // Trees were checked to be acyclic: a walk ends within `nodes` steps.
        s += "      for (long step = 0; step <= \(nodes) && leaf < 0; ++step) {\n"
        s += "        double x = \(scalar.load("X", "r * \(features) + feature[node]")), sp = split[node];\n"
        s += "        int taken;\n"
        s += "        if (x != x && missingTrue[node]) taken = 1;\n"
        s += "        else switch (mode[node]) {\n"
        s += "          case 0: taken = x <= sp; break;\n          case 1: taken = x < sp; break;\n"
        s += "          case 2: taken = x >= sp; break;\n          case 3: taken = x > sp; break;\n"
        s += "          case 4: taken = x == sp; break;\n          case 5: taken = x != sp; break;\n"
        s += "          default: taken = 0; for (long k = 0; k < memberCount[node]; ++k) if (members[memberStart[node] + k] == x) taken = 1; break;\n"
        s += "        }\n"
        s += "        if (taken ? trueLeaf[node] : falseLeaf[node]) leaf = taken ? trueId[node] : falseId[node];\n"
        s += "        else node = taken ? trueId[node] : falseId[node];\n      }\n"
        s += "      if (leaf < 0) continue;\n"
        s += "      double w = leafWeight[leaf]; long o = leafTarget[leaf];\n"
        switch m.aggregate {
        case 0: s += "      acc[o] += w / \(m.roots.count).0;\n"
        case 1: s += "      acc[o] += w;\n"
        case 2: s += "      if (w < acc[o]) acc[o] = w;\n"
        default: s += "      if (w > acc[o]) acc[o] = w;\n"
        }
        s += "    }\n"
        switch m.postTransform {
        case 1, 3:
            let keep = m.postTransform == 3 ? "acc[o] != 0.0" : "1"
            s += "    double mx = 0.0, sum = 0.0; int any = 0;\n"
            s += "    for (long o = 0; o < \(targets); ++o) if (\(keep) && (!any || acc[o] > mx)) { mx = acc[o]; any = 1; }\n"
            s += "    for (long o = 0; o < \(targets); ++o) if (\(keep)) { acc[o] = exp(acc[o] - mx); sum += acc[o]; }\n"
            s += "    if (sum > 0.0) for (long o = 0; o < \(targets); ++o) if (\(keep)) acc[o] /= sum;\n"
        case 2:
            s += "    for (long o = 0; o < \(targets); ++o) acc[o] = 1.0 / (1.0 + exp(-acc[o]));\n"
        default: break
        }
        s += "    for (long o = 0; o < \(targets); ++o) \(scalar.store("Y", "r * \(targets) + o", "acc[o]"))\n"
        return s + "  }\n  GLMC_SCRATCH_FREE(acc);\n}\n"
    }

    // MARK: TfIdfVectorizer, Range

    /// The n-grams a TfIdfVectorizer counts, each with its output index, and how counts become
    /// outputs.
    struct NGramTable {
        enum Weighting: String { case tf = "TF", idf = "IDF", tfidf = "TFIDF" }
        var grams: [(items: [Int], output: Int)]
        var minLength: Int, maxLength: Int, maxSkip: Int
        var outputSize: Int
        var weighting: Weighting
        var weights: [Float]?
    }

    /// TfIdfVectorizer, one row of the input per unit of the parallel range: for every skip
    /// distance and start, the n-grams read at that distance are looked up in the table and
    /// counted (1-grams, which skips do not change, only at distance 1); then TF, IDF or TFIDF.
    /// Arguments: X (int32 or int64), Y (f32, rows × outputSize).
    static func tfIdfVectorizer(name: String, input: CScalar, _ t: NGramTable, width: Int) -> String {
        var starts: [Int] = [], lengths: [Int] = [], outputs: [Int] = [], items: [Int] = []
        for g in t.grams {
            starts.append(items.count); lengths.append(g.items.count); outputs.append(g.output)
            items += g.items
        }
        var s = "// \(name): tfidf vectorizer, \(t.grams.count) n-grams of \(t.minLength)...\(t.maxLength), \(t.outputSize) outputs\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n" + input.pointer("X", 0)
        s += "  GLMC_GLOBAL float *Y = (GLMC_GLOBAL float *)args[1];\n"
        s += longArray("gramStart", starts) + longArray("gramLength", lengths) + longArray("gramOutput", outputs) + longArray("pool", items)
        if let w = t.weights { s += doubleArray("weight", w.map(Double.init)) }
        s += "  for (long r = begin; r < end; ++r) {\n"
        s += "    GLMC_GLOBAL float *y = Y + r * \(t.outputSize);\n"
        s += "    GLMC_GLOBAL const \(input.storage) *x = X + r * \(width);\n"
        s += "    for (long o = 0; o < \(t.outputSize); ++o) y[o] = 0.0f;\n"
        s += "    for (long skip = 1; skip <= \(t.maxSkip + 1); ++skip) {\n"
        s += "      long smallest = skip == 1 ? \(t.minLength) : \(max(t.minLength, 2));\n"
        s += "      if (smallest > \(t.maxLength)) break;\n"
        s += "      for (long start = 0; start < \(width); ++start) {\n"
        s += "        for (long n = 1; n <= \(t.maxLength) && start + (n - 1) * skip < \(width); ++n) {\n"
        s += "          if (n < smallest) continue;\n"
        s += "          for (long g = 0; g < \(t.grams.count); ++g) {\n"
        s += "            if (gramLength[g] != n) continue;\n"
        s += "            long k = 0;\n"
        s += "            while (k < n && (int64_t)x[start + k * skip] == (int64_t)pool[gramStart[g] + k]) ++k;\n"
        s += "            if (k == n) { y[gramOutput[g]] += 1.0f; break; }\n"
        s += "          }\n        }\n      }\n    }\n"
        let w = t.weights == nil ? "1.0" : "weight[o]"
        switch t.weighting {
        case .tf: break
        case .idf: s += "    for (long o = 0; o < \(t.outputSize); ++o) y[o] = y[o] > 0.0f ? (float)\(w) : 0.0f;\n"
        case .tfidf: s += "    for (long o = 0; o < \(t.outputSize); ++o) y[o] = (float)((double)y[o] * \(w));\n"
        }
        return s + "  }\n}\n"
    }

    /// Range: Y[i] = start + i·delta, in double for floats and wrapping 64-bit arithmetic for
    /// integers. Parallel range: the element count. Arguments: start, delta, Y.
    static func range(name: String, scalar: CScalar) -> String {
        var s = "// \(name): range\nvoid \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        s += scalar.pointer("S", 0) + scalar.pointer("D", 1) + scalar.pointer("Y", 2, const: false)
        if scalar.isFloat {
            s += "  double start = \(scalar.load("S", "0")), delta = \(scalar.load("D", "0"));\n"
            s += "  for (long u = begin; u < end; ++u) \(scalar.store("Y", "u", "start + (double)u * delta"))\n"
        } else {
            s += "  uint64_t start = (uint64_t)(int64_t)S[0], delta = (uint64_t)(int64_t)D[0];\n"
            s += "  for (long u = begin; u < end; ++u) Y[u] = (\(scalar.storage))(start + (uint64_t)u * delta);\n"
        }
        return s + "}\n"
    }
}
