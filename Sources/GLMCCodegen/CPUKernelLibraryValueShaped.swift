/// Kernels of the value-shaped ops (NonZero, Unique, NonMaxSuppression; see
/// `CPUPlanBuilderValueShaped.swift`). Each is one sequential work-item (range 1): it writes its
/// results densely in their actual shape at the start of their (upper-bound sized) buffers, and
/// the actual extent (rows, unique slices, selected boxes) into the i64 slot that is its argument
/// after the results. Semantics follow the op definitions in `GLMCOps` exactly.
extension CPUKernelLibrary {
    /// NonZero of a tensor of `shape` (a scalar as [1]): Y is [rank, nnz], row d the d-th
    /// coordinates of the non-zero elements in row-major order. Arguments: X, Y, N.
    static func nonZero(name: String, scalar: CScalar, shape: [Int]) -> String {
        let n = shape.reduce(1, *)
        let test = scalar.isFloat ? "\(scalar.load("X", "i")) != 0.0" : "X[i] != 0"
        var s = "// \(name): nonzero of \(shape)\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n" + scalar.pointer("X", 0)
        s += "  GLMC_GLOBAL int64_t *Y = (GLMC_GLOBAL int64_t *)args[1];\n  GLMC_GLOBAL int64_t *N = (GLMC_GLOBAL int64_t *)args[2];\n"
        s += "  if (begin >= end) return;\n"
        // Counting first: row d of the dense [rank, nnz] result starts at d * nnz.
        s += "  long nnz = 0;\n  for (long i = 0; i < \(n); ++i) if (\(test)) ++nnz;\n"
        s += "  long k = 0;\n  for (long i = 0; i < \(n); ++i) {\n    if (!(\(test))) continue;\n    long r = i;\n"
        for d in shape.indices.reversed() { s += "    Y[\(d) * nnz + k] = r % \(shape[d]); r /= \(shape[d]);\n" }
        s += "    ++k;\n  }\n  N[0] = nnz;\n}\n"
        return s
    }

    /// Unique over the `slices` sub-tensors of an (outer, slices, inner) view (without an axis:
    /// 1, count, 1): slices sorted by content (lexicographic, elements compared by value), ties by
    /// position, equal neighbours grouped; with `sorted` false the groups in order of first
    /// occurrence. `outputs`: which of Y, indices, inverse_indices, counts the step passes.
    /// Arguments: X, the present outputs, N (the number of unique slices), [scratch].
    static func unique(name: String, scalar: CScalar, outer: Int, slices: Int, inner: Int, sorted: Bool, outputs: [Bool]) -> String {
        let t = scalar.storage, key = scalar.isFloat ? "double" : t, s1 = max(slices, 1)
        let load = { (i: String) in scalar.isFloat ? scalar.load("X", i) : "X[\(i)]" }
        var s = "// \(name): unique of \(slices) slices [\(outer), \(slices), \(inner)], \(sorted ? "sorted" : "in order of occurrence")\n"
        // Three-way comparison of slices a and b, element by element in row-major order.
        s += "static int \(name)_compare(GLMC_GLOBAL const \(t) *X, long a, long b) {\n"
        s += "  for (long o = 0; o < \(outer); ++o) for (long e = 0; e < \(inner); ++e) {\n"
        s += "    \(key) va = \(load("(o * \(slices) + a) * \(inner) + e")), vb = \(load("(o * \(slices) + b) * \(inner) + e"));\n"
        if scalar.isFloat {
            // NaN sorts after every number, and NaNs are one group: a total order for the sort.
            s += "    if (va != va || vb != vb) { if (va != va && vb != vb) continue; return va != va ? 1 : -1; }\n"
        }
        s += "    if (va < vb) return -1;\n    if (va > vb) return 1;\n  }\n  return 0;\n}\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n" + scalar.pointer("X", 0)
        var next = 1
        for (present, declaration) in zip(outputs, ["GLMC_GLOBAL \(t) *Y = (GLMC_GLOBAL \(t) *)", "GLMC_GLOBAL int64_t *I = (GLMC_GLOBAL int64_t *)",
                                                    "GLMC_GLOBAL int64_t *V = (GLMC_GLOBAL int64_t *)", "GLMC_GLOBAL int64_t *C = (GLMC_GLOBAL int64_t *)"]) where present {
            s += "  \(declaration)args[\(next)];\n"; next += 1
        }
        s += "  GLMC_GLOBAL int64_t *N = (GLMC_GLOBAL int64_t *)args[\(next)];\n"
        s += "  if (begin >= end) return;\n"
        s += "  GLMC_SCRATCH(long, work, \(6 * s1), \(next + 1));\n"
        s += "  GLMC_GLOBAL long *order = work, *tmp = work + \(s1), *first = work + \(2 * s1), *count = work + \(3 * s1), *group = work + \(4 * s1), *rank = work + \(5 * s1);\n"
        // A stable merge sort of the slice numbers: the right run goes first only when strictly smaller.
        s += "  for (long j = 0; j < \(slices); ++j) order[j] = j;\n"
        s += "  for (long width = 1; width < \(slices); width *= 2) {\n"
        s += "    for (long lo = 0; lo < \(slices); lo += 2 * width) {\n"
        s += "      long mid = lo + width < \(slices) ? lo + width : \(slices), hi = lo + 2 * width < \(slices) ? lo + 2 * width : \(slices), a = lo, c = mid, t = lo;\n"
        s += "      while (a < mid && c < hi) { if (\(name)_compare(X, order[c], order[a]) < 0) tmp[t++] = order[c++]; else tmp[t++] = order[a++]; }\n"
        s += "      while (a < mid) tmp[t++] = order[a++];\n      while (c < hi) tmp[t++] = order[c++];\n"
        s += "    }\n    GLMC_GLOBAL long *swap = order; order = tmp; tmp = swap;\n  }\n"
        // Groups of equal slices; each group's first member is its smallest slice number.
        s += "  long groups = 0;\n  for (long p = 0; p < \(slices); ++p) {\n    long j = order[p];\n"
        s += "    if (groups == 0 || \(name)_compare(X, first[groups - 1], j) != 0) { first[groups] = j; count[groups] = 0; ++groups; }\n"
        s += "    count[groups - 1] += 1;\n    group[j] = groups - 1;\n  }\n"
        if sorted {
            s += "  for (long g = 0; g < groups; ++g) rank[g] = g;\n"
        } else {
            s += "  long q = 0;\n  for (long j = 0; j < \(slices); ++j) if (first[group[j]] == j) rank[group[j]] = q++;\n"
        }
        s += "  for (long g = 0; g < groups; ++g) {\n    long r = rank[g];\n"
        if outputs[0] {
            s += "    for (long o = 0; o < \(outer); ++o) for (long e = 0; e < \(inner); ++e)\n"
            s += "      Y[(o * groups + r) * \(inner) + e] = X[(o * \(slices) + first[g]) * \(inner) + e];\n"
        }
        if outputs.count > 1, outputs[1] { s += "    I[r] = first[g];\n" }
        if outputs.count > 3, outputs[3] { s += "    C[r] = count[g];\n" }
        s += "  }\n"
        if outputs.count > 2, outputs[2] { s += "  for (long j = 0; j < \(slices); ++j) V[j] = rank[group[j]];\n" }
        s += "  N[0] = groups;\n  GLMC_SCRATCH_FREE(work);\n}\n"
        return s
    }

    /// What a NonMaxSuppression kernel is generated for. Each optional operand: its type and
    /// element count (an empty one counts as absent, as in the op's definition).
    struct NMSShape {
        var batches: Int, classes: Int, boxes: Int
        var centerPointBox: Bool
        var maxOutput: (CScalar, Int)?, iouThreshold: (CScalar, Int)?, scoreThreshold: (CScalar, Int)?
        var writesResult: Bool
    }

    /// NonMaxSuppression: per batch and class, the boxes above the score threshold in descending
    /// score order (ties: lower index first), each kept unless its IoU with a kept box exceeds the
    /// threshold, at most max_output_boxes_per_class; Y is [selected, 3] (batch, class, box).
    /// Arguments: boxes, scores, the present optional operands, [Y], N, [scratch].
    static func nonMaxSuppression(name: String, boxes: CScalar, scores: CScalar, _ p: NMSShape) -> String {
        let n = p.boxes, n1 = max(p.boxes, 1)
        // Swift's min and max (the interpreter's), NaN included.
        func minimum(_ a: String, _ b: String) -> String { "(\(b) < \(a) ? \(b) : \(a))" }
        func maximum(_ a: String, _ b: String) -> String { "(\(b) >= \(a) ? \(b) : \(a))" }
        var s = "// \(name): non-max suppression, \(p.batches) batches, \(p.classes) classes, \(n) boxes\n"
        s += "static int \(name)_suppresses(GLMC_GLOBAL const \(boxes.storage) *B, long oa, long ob, double threshold) {\n"
        for (box, o) in [("a", "oa"), ("b", "ob")] {
            s += "  double \(box)0 = \(boxes.load("B", o)), \(box)1 = \(boxes.load("B", o + " + 1")), \(box)2 = \(boxes.load("B", o + " + 2")), \(box)3 = \(boxes.load("B", o + " + 3"));\n"
            if p.centerPointBox {
                s += "  double \(box)x1 = \(box)0 - \(box)2 / 2, \(box)y1 = \(box)1 - \(box)3 / 2, \(box)x2 = \(box)0 + \(box)2 / 2, \(box)y2 = \(box)1 + \(box)3 / 2;\n"
            } else {
                // Corners given as (y1, x1, y2, x2) in either order.
                s += "  double \(box)x1 = \(minimum("\(box)1", "\(box)3")), \(box)y1 = \(minimum("\(box)0", "\(box)2")), "
                s += "\(box)x2 = \(maximum("\(box)1", "\(box)3")), \(box)y2 = \(maximum("\(box)0", "\(box)2"));\n"
            }
        }
        s += "  double ix = \(minimum("ax2", "bx2")) - \(maximum("ax1", "bx1")), iy = \(minimum("ay2", "by2")) - \(maximum("ay1", "by1"));\n"
        s += "  if (!(ix > 0 && iy > 0)) return 0;\n"
        s += "  double inter = ix * iy, areaA = (ax2 - ax1) * (ay2 - ay1), areaB = (bx2 - bx1) * (by2 - by1), uni = areaA + areaB - inter;\n"
        s += "  if (!(areaA > 0 && areaB > 0 && uni > 0)) return 0;\n  return inter / uni > threshold;\n}\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n" + boxes.pointer("B", 0) + scores.pointer("S", 1)
        var next = 2
        var limit = "0", threshold = "0.0", scoreTest = "1"
        if let (m, count) = p.maxOutput {
            s += m.pointer("M", next); next += 1
            if count > 0 { limit = "(long)M[0]" }
        }
        if let (t, count) = p.iouThreshold {
            s += t.pointer("T", next); next += 1
            if count > 0 { threshold = t.load("T", "0") }
        }
        if let (t, count) = p.scoreThreshold {
            s += t.pointer("U", next); next += 1
            if count > 0 { scoreTest = "\(scores.load("S", "base + i")) > \(t.load("U", "0"))" }
        }
        if p.writesResult { s += "  GLMC_GLOBAL int64_t *Y = (GLMC_GLOBAL int64_t *)args[\(next)];\n"; next += 1 }
        s += "  GLMC_GLOBAL int64_t *N = (GLMC_GLOBAL int64_t *)args[\(next)];\n"
        s += "  if (begin >= end) return;\n"
        s += "  GLMC_SCRATCH(long, work, \(3 * n1), \(next + 1));\n"
        s += "  GLMC_GLOBAL long *order = work, *tmp = work + \(n1), *kept = work + \(2 * n1);\n"
        s += "  long limit = \(limit), total = 0;\n  double threshold = \(threshold);\n"
        s += "  for (long b = 0; b < \(p.batches); ++b) for (long cl = 0; cl < \(p.classes) && limit > 0; ++cl) {\n"
        s += "    long base = (b * \(p.classes) + cl) * \(n), count = 0;\n"
        s += "    for (long i = 0; i < \(n); ++i) if (\(scoreTest)) order[count++] = i;\n"
        // A stable merge sort by descending score: the right run goes first only when strictly higher.
        s += "    for (long width = 1; width < count; width *= 2) {\n"
        s += "      for (long lo = 0; lo < count; lo += 2 * width) {\n"
        s += "        long mid = lo + width < count ? lo + width : count, hi = lo + 2 * width < count ? lo + 2 * width : count, a = lo, c = mid, t = lo;\n"
        s += "        while (a < mid && c < hi) { if (\(scores.load("S", "base + order[c]")) > \(scores.load("S", "base + order[a]"))) tmp[t++] = order[c++]; else tmp[t++] = order[a++]; }\n"
        s += "        while (a < mid) tmp[t++] = order[a++];\n        while (c < hi) tmp[t++] = order[c++];\n"
        s += "      }\n      GLMC_GLOBAL long *swap = order; order = tmp; tmp = swap;\n    }\n"
        s += "    long selected = 0;\n"
        s += "    for (long q = 0; q < count && selected < limit; ++q) {\n      long i = order[q], keep = 1;\n"
        s += "      for (long k = 0; k < selected; ++k) if (\(name)_suppresses(B, (b * \(n) + i) * 4, (b * \(n) + kept[k]) * 4, threshold)) { keep = 0; break; }\n"
        s += "      if (!keep) continue;\n      kept[selected++] = i;\n"
        if p.writesResult { s += "      Y[total * 3] = b; Y[total * 3 + 1] = cl; Y[total * 3 + 2] = i;\n" }
        s += "      ++total;\n    }\n  }\n"
        s += "  N[0] = total;\n  GLMC_SCRATCH_FREE(work);\n}\n"
        return s
    }
}
