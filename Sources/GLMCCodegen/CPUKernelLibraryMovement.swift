/// CPU kernels for data movement (same ABI and conventions as the rest of `CPUKernelLibrary`, any
/// fixed-size element type): the generic index-table gather, and gathers, scatters and one-hot
/// encodings whose indices are only known at run time.
extension CPUKernelLibrary {
    /// The C type that moves one element of `bytes` bytes (nil: no such type).
    static func elementType(bytes: Int) -> String? {
        switch bytes {
        case 1: return "unsigned char"
        case 2: return "unsigned short"
        case 4: return "unsigned int"
        case 8: return "uint64_t"
        default: return nil
        }
    }

    /// `Y[i] = X[T[i]]`, or `F[-1 - T[i]]` where the table entry is negative (a fill value such as
    /// Pad's constant). With several sources (`sourceStarts`: where each one's element numbers
    /// start; the first is 0), an entry selects the last source starting at or before it. The
    /// table is int32 (`indexBytes` 4) or int64. Parallel range: the output elements.
    /// Arguments: the sources, T, [F], Y.
    public static func indexTableGather(name: String, elementBytes: Int, indexBytes: Int, sourceStarts: [Int] = [0],
                                        hasFills: Bool) -> String {
        let t = elementType(bytes: elementBytes)!, ix = indexBytes == 4 ? "int" : "int64_t"
        let k = sourceStarts.count
        var s = "// \(name): gather through an index table, \(elementBytes)-byte elements, \(k) source\(k == 1 ? "" : "s")\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        for j in 0 ..< k { s += "  GLMC_GLOBAL const \(t) *X\(j) = (GLMC_GLOBAL const \(t) *)args[\(j)];\n" }
        s += "  GLMC_GLOBAL const \(ix) *T = (GLMC_GLOBAL const \(ix) *)args[\(k)];\n"
        if hasFills { s += "  GLMC_GLOBAL const \(t) *F = (GLMC_GLOBAL const \(t) *)args[\(k + 1)];\n" }
        s += "  GLMC_GLOBAL \(t) *Y = (GLMC_GLOBAL \(t) *)args[\(k + (hasFills ? 2 : 1))];\n"
        // The source of entry j: the last one starting at or before j.
        var pick = "X\(k - 1)[j - \(sourceStarts[k - 1])]"
        for j in stride(from: k - 2, through: 0, by: -1) {
            pick = "j < \(sourceStarts[j + 1]) ? X\(j)[j - \(sourceStarts[j])] : " + pick
        }
        if k == 1 { pick = "X0[j]" }
        s += "  for (long i = begin; i < end; ++i) { int64_t j = T[i]; Y[i] = "
        s += hasFills ? "j >= 0 ? (\(pick)) : F[-1 - j]; }\n" : "\(pick); }\n"
        s += "}\n"
        return s
    }

    /// Trilu with a runtime diagonal offset K (an i64 scalar): keeps element (i, j) of each
    /// [rows, cols] matrix where `j - i >= K` (upper) or `j - i <= K` (lower), else zero.
    /// Parallel range: the elements. Arguments: X, K, Y.
    public static func trilu(name: String, elementBytes: Int, rows: Int, cols: Int, upper: Bool) -> String {
        let t = elementType(bytes: elementBytes)!
        return """
        // \(name): trilu \(upper ? "upper" : "lower") of [\(rows), \(cols)] matrices, runtime k
        void \(name)(GLMC_GLOBAL void **args, long begin, long end) {
          GLMC_GLOBAL const \(t) *X = (GLMC_GLOBAL const \(t) *)args[0];
          int64_t k = *(GLMC_GLOBAL const int64_t *)args[1];
          GLMC_GLOBAL \(t) *Y = (GLMC_GLOBAL \(t) *)args[2];
          for (long e = begin; e < end; ++e) {
            int64_t j = e % \(cols), i = (e / \(cols)) % \(rows);
            Y[e] = (j - i \(upper ? ">=" : "<=") k) ? X[e] : (\(t))0;
          }
        }

        """
    }

    /// ReverseSequence with runtime lengths L (int64, one per batch entry): along the time axis,
    /// the first `L[b]` elements of each batch entry reversed, the rest copied (L clamped to
    /// [0, T]). Parallel range: the elements. Arguments: X, L, Y.
    public static func reverseSequence(name: String, elementBytes: Int, timeLen: Int, timeStride: Int,
                                       batchLen: Int, batchStride: Int) -> String {
        let t = elementType(bytes: elementBytes)!
        return """
        // \(name): reverse_sequence, time \(timeLen) (stride \(timeStride)), batch \(batchLen) (stride \(batchStride))
        void \(name)(GLMC_GLOBAL void **args, long begin, long end) {
          GLMC_GLOBAL const \(t) *X = (GLMC_GLOBAL const \(t) *)args[0];
          GLMC_GLOBAL const int64_t *L = (GLMC_GLOBAL const int64_t *)args[1];
          GLMC_GLOBAL \(t) *Y = (GLMC_GLOBAL \(t) *)args[2];
          for (long e = begin; e < end; ++e) {
            long t = (e / \(timeStride)) % \(timeLen), b = (e / \(batchStride)) % \(batchLen);
            int64_t len = L[b];
            if (len < 0) len = 0;
            if (len > \(timeLen)) len = \(timeLen);
            Y[e] = t < len ? X[e + (len - 1 - 2 * t) * \(timeStride)] : X[e];
          }
        }

        """
    }

    /// Reads index `k` of an int32 or int64 index tensor `I` as a C expression.
    static func indexLoad(_ array: String, _ k: String, indexBytes: Int) -> String {
        indexBytes == 4 ? "(int64_t)((GLMC_GLOBAL const int *)\(array))[\(k)]" : "((GLMC_GLOBAL const int64_t *)\(array))[\(k)]"
    }

    /// GatherElements: `Y[o] = X[o with its axis coordinate replaced by I[o]]` (negative indices
    /// count from the end; out-of-range ones are clamped, as a kernel must not read outside X).
    /// The output has the shape of I, seen as [outer, len, inner] around the axis. Parallel range:
    /// the output elements. Arguments: X, I, Y.
    public static func gatherElements(name: String, elementBytes: Int, indexBytes: Int, outShape: [Int], axis: Int,
                                      inStrides: [Int], axisLen: Int) -> String {
        let t = elementType(bytes: elementBytes)!
        var s = "// \(name): gather_elements on axis \(axis), output \(outShape)\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        s += "  GLMC_GLOBAL const \(t) *X = (GLMC_GLOBAL const \(t) *)args[0];\n  GLMC_GLOBAL \(t) *Y = (GLMC_GLOBAL \(t) *)args[2];\n"
        s += "  for (long i = begin; i < end; ++i) {\n    long rest = i, off = 0;\n"
        for d in stride(from: outShape.count - 1, through: 0, by: -1) {
            s += "    { long c = rest % \(outShape[d]); rest /= \(outShape[d]);"
            if d == axis {
                s += " int64_t j = \(indexLoad("args[1]", "i", indexBytes: indexBytes)); if (j < 0) j += \(axisLen);"
                s += " if (j < 0) j = 0; if (j > \(axisLen - 1)) j = \(axisLen - 1); c = (long)j;"
            }
            s += " off += c * \(inStrides[d]); }\n"
        }
        s += "    Y[i] = X[off];\n  }\n}\n"
        return s
    }

    /// GatherND: each of the `tuples` index tuples (of `depth` coordinates, after `batch` leading
    /// batch dimensions) picks a slice of `sliceElements` elements. Parallel range: tuples.
    /// Arguments: X, I, Y. `dimSizes`/`dimStrides`: the indexed data dims and their element strides;
    /// `tuplesPerBatch` and `batchStride` locate a tuple's batch in X.
    public static func gatherND(name: String, elementBytes: Int, indexBytes: Int, tuples: Int, depth: Int,
                                dimSizes: [Int], dimStrides: [Int], sliceElements: Int,
                                tuplesPerBatch: Int, batchStride: Int) -> String {
        let t = elementType(bytes: elementBytes)!
        var s = "// \(name): gather_nd, \(tuples) tuples of depth \(depth), slices of \(sliceElements)\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        s += "  GLMC_GLOBAL const \(t) *X = (GLMC_GLOBAL const \(t) *)args[0];\n  GLMC_GLOBAL \(t) *Y = (GLMC_GLOBAL \(t) *)args[2];\n"
        s += longArray("sizes", dimSizes) + longArray("strides", dimStrides)
        s += "  for (long q = begin; q < end; ++q) {\n"
        s += "    long off = (q / \(tuplesPerBatch)) * \(batchStride);\n"
        s += "    for (long d = 0; d < \(depth); ++d) {\n"
        s += "      int64_t j = \(indexLoad("args[1]", "q * \(depth) + d", indexBytes: indexBytes));\n"
        s += "      if (j < 0) j += sizes[d];\n      if (j < 0) j = 0;\n      if (j >= sizes[d]) j = sizes[d] - 1;\n"
        s += "      off += (long)j * strides[d];\n    }\n"
        s += "    memcpy(Y + q * \(sliceElements), X + off, \(sliceElements * elementBytes));\n  }\n}\n"
        return s
    }

    /// How a scatter combines an update with the element already there.
    public enum ScatterReduction: String, Sendable {
        case none, add, mul, max, min

        func combine(_ old: String, _ update: String) -> String {
            switch self {
            case .none: return update
            case .add: return "\(old) + \(update)"
            case .mul: return "\(old) * \(update)"
            case .max: return "(\(update) > \(old) ? \(update) : \(old))"
            case .min: return "(\(update) < \(old) ? \(update) : \(old))"
            }
        }
    }

    /// ScatterND and ScatterElements: copy X to Y, then apply every update in order (later
    /// updates win; with duplicate indices and a reduction they combine), sequentially, since
    /// updates may hit the same element. Parallel range: 1. Arguments: X, I, U, Y. `cType` is the
    /// arithmetic element type (reductions), `elementBytes` its size.
    ///
    /// ScatterND (`elementsMode` false): `updates` tuples of `depth` coordinates into the dims
    /// `dimSizes` (strides `dimStrides`), each writing `sliceElements` elements.
    /// ScatterElements (`elementsMode` true): one update per element of I (shape `indexShape`),
    /// its axis coordinate replaced by the index.
    public static func scatter(name: String, cType: String, totalElements: Int, indexBytes: Int, reduction: ScatterReduction,
                               nd: (updates: Int, depth: Int, dimSizes: [Int], dimStrides: [Int], sliceElements: Int)?,
                               elements: (indexShape: [Int], axis: Int, dataStrides: [Int], axisLen: Int)?) -> String {
        var s = "// \(name): scatter\(nd != nil ? "_nd" : "_elements") reduction \(reduction.rawValue)\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        s += "  GLMC_GLOBAL const \(cType) *X = (GLMC_GLOBAL const \(cType) *)args[0];\n  GLMC_GLOBAL const \(cType) *U = (GLMC_GLOBAL const \(cType) *)args[2];\n"
        s += "  GLMC_GLOBAL \(cType) *Y = (GLMC_GLOBAL \(cType) *)args[3];\n"
        s += "  if (begin > 0 || end < 1) return;\n"
        s += "  memcpy(Y, X, sizeof(\(cType)) * \(totalElements));\n"
        if let nd {
            s += longArray("sizes", nd.dimSizes) + longArray("strides", nd.dimStrides)
            s += "  for (long q = 0; q < \(nd.updates); ++q) {\n    long off = 0;\n"
            s += "    for (long d = 0; d < \(nd.depth); ++d) {\n"
            s += "      int64_t j = \(indexLoad("args[1]", "q * \(nd.depth) + d", indexBytes: indexBytes));\n"
            s += "      if (j < 0) j += sizes[d];\n      if (j < 0 || j >= sizes[d]) return;\n"
            s += "      off += (long)j * strides[d];\n    }\n"
            s += "    for (long e = 0; e < \(nd.sliceElements); ++e) { GLMC_GLOBAL \(cType) *y = Y + off + e; \(cType) u = U[q * \(nd.sliceElements) + e];"
            s += " *y = \(reduction.combine("*y", "u")); }\n  }\n}\n"
        } else if let el = elements {
            let count = el.indexShape.reduce(1, *)
            s += "  for (long i = 0; i < \(count); ++i) {\n    long rest = i, off = 0;\n"
            for d in stride(from: el.indexShape.count - 1, through: 0, by: -1) {
                s += "    { long c = rest % \(el.indexShape[d]); rest /= \(el.indexShape[d]);"
                if d == el.axis {
                    s += " int64_t j = \(indexLoad("args[1]", "i", indexBytes: indexBytes)); if (j < 0) j += \(el.axisLen);"
                    s += " if (j < 0 || j >= \(el.axisLen)) return; c = (long)j;"
                }
                s += " off += c * \(el.dataStrides[d]); }\n"
            }
            s += "    Y[off] = \(reduction.combine("Y[off]", "U[i]"));\n  }\n}\n"
        }
        return s
    }

    /// OneHot: `Y[outer, d, inner] = I[outer, inner] == d ? on : off` (negative indices count
    /// from the end of depth), with `on`/`off` from the values operand V = [off, on]. Parallel
    /// range: the output elements. Arguments: I, V, Y.
    public static func oneHot(name: String, elementBytes: Int, indexCType: String, depth: Int, inner: Int) -> String {
        let t = elementType(bytes: elementBytes)!
        return """
        // \(name): one_hot, depth \(depth)
        void \(name)(GLMC_GLOBAL void **args, long begin, long end) {
          GLMC_GLOBAL const \(indexCType) *I = (GLMC_GLOBAL const \(indexCType) *)args[0];
          GLMC_GLOBAL const \(t) *V = (GLMC_GLOBAL const \(t) *)args[1];
          GLMC_GLOBAL \(t) *Y = (GLMC_GLOBAL \(t) *)args[2];
          for (long i = begin; i < end; ++i) {
            long inner = i % \(inner), d = (i / \(inner)) % \(depth), outer = i / \(inner * depth);
            int64_t j = (int64_t)I[outer * \(inner) + inner];
            if (j < 0) j += \(depth);
            Y[i] = j == d ? V[1] : V[0];
          }
        }

        """
    }
}
