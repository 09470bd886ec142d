import GLMCIR

/// How a kernel of `CPUKernelLibrary` reads and writes one element type. Floating-point values are
/// computed in `double` and rounded once on store, as the interpreter does; integers keep their C
/// type where the interpreter is exact (wrapping sums and products, extrema), and go through
/// `double` (truncated towards zero on store) where it computes in Double.
struct CScalar: Equatable {
    let dtype: DType

    init?(_ dtype: DType) {
        guard dtype != .string, dtype.byteSize > 0 else { return nil }
        self.dtype = dtype
    }

    /// The C type an element is stored as.
    var storage: String {
        switch dtype {
        case .f64: return "double"
        case .f32: return "float"
        case .f16, .bf16: return "unsigned short"
        case .i64: return "int64_t"
        case .i32: return "int"
        case .i16: return "short"
        case .i8: return "signed char"
        case .u64: return "uint64_t"
        case .u32: return "unsigned int"
        case .u16: return "unsigned short"
        case .u8, .bool: return "unsigned char"
        case .string: return "void"
        }
    }

    var isFloat: Bool { dtype.isFloatingPoint }
    var isUnsigned: Bool { dtype.isUnsignedInteger || dtype == .bool }

    /// C expression: element `index` of `pointer`, as a double.
    func load(_ pointer: String, _ index: String) -> String {
        switch dtype {
        case .f16: return "(double)glmcr_h2f(\(pointer)[\(index)])"
        case .bf16: return "(double)glmcr_bf2f(\(pointer)[\(index)])"
        default: return "(double)\(pointer)[\(index)]"
        }
    }

    /// C statement: stores the double expression `value` into element `index` of `pointer`.
    func store(_ pointer: String, _ index: String, _ value: String) -> String {
        switch dtype {
        case .f64: return "\(pointer)[\(index)] = (\(value));"
        case .f32: return "\(pointer)[\(index)] = (float)(\(value));"
        case .f16: return "\(pointer)[\(index)] = glmcr_f2h((float)(\(value)));"
        case .bf16: return "\(pointer)[\(index)] = glmcr_f2bf((float)(\(value)));"
        case .bool: return "\(pointer)[\(index)] = (\(value)) != 0.0;"
        default: return "\(pointer)[\(index)] = (\(storage))glmcr_d2i(\(value));"
        }
    }

    /// C expression: the double `value` rounded to this (floating-point) type and back.
    func round(_ value: String) -> String {
        switch dtype {
        case .f32: return "(double)(float)(\(value))"
        case .f16: return "(double)glmcr_h2f(glmcr_f2h((float)(\(value))))"
        case .bf16: return "(double)glmcr_bf2f(glmcr_f2bf((float)(\(value))))"
        default: return "(\(value))"
        }
    }

    /// C expression: exp(`value`) rounded to this (floating-point) type, as a double. Types
    /// narrower than double use expf: the interpreter rounds the exponential to the element type
    /// anyway, and expf is several times cheaper than exp.
    func roundedExp(_ value: String) -> String {
        dtype == .f64 ? "exp(\(value))" : round("expf((float)(\(value)))")
    }

    /// The smallest and largest value, as C literals (integer types and bool).
    var range: (String, String) {
        switch dtype {
        case .i64: return ("(-9223372036854775807L - 1)", "9223372036854775807L")
        case .i32: return ("(-2147483647 - 1)", "2147483647")
        case .i16: return ("-32768", "32767")
        case .i8: return ("-128", "127")
        case .u64: return ("0UL", "18446744073709551615UL")
        case .u32: return ("0U", "4294967295U")
        case .u16: return ("0", "65535")
        case .u8: return ("0", "255")
        default: return ("0", "1")
        }
    }

    /// `const T *NAME = (const T *)args[i];` (or writable).
    func pointer(_ name: String, _ arg: Int, const: Bool = true) -> String {
        "  GLMC_GLOBAL \(const ? "const " : "")\(storage) *\(name) = (GLMC_GLOBAL \(const ? "const " : "")\(storage) *)args[\(arg)];\n"
    }
}

/// Reductions, scans, the softmax family, normalizations, losses and attention. Every kernel has
/// the plan's ABI; shapes are baked in. Helpers shared by these kernels (half-float conversions,
/// double-to-integer stores) go into the translation unit once, before the first of these kernels
/// (`includeReductionHelpers`).
extension CPUKernelLibrary {
    static let reductionHelpers = """
    #ifndef GLMCR_HELPERS
    #define GLMCR_HELPERS
    static inline float glmcr_h2f(unsigned short h) {
      unsigned int s = (unsigned int)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, bits;
      float f;
      if (e == 0) { f = ldexpf((float)m, -24); return s ? -f : f; }
      bits = e == 31 ? (s | 0x7f800000u | (m << 13)) : (s | ((e + 112u) << 23) | (m << 13));
      return GLMC_FLOAT_FROM_BITS(bits);
    }
    static inline unsigned short glmcr_f2h(float f) {
      unsigned int x = GLMC_BITS_FROM_FLOAT(f), ax, sign, h, rest;
      sign = (x >> 16) & 0x8000u; ax = x & 0x7fffffffu;
      if (ax > 0x7f800000u) return (unsigned short)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
      if (ax >= 0x477ff000u) return (unsigned short)(sign | 0x7c00u);
      if (ax < 0x38800000u) { float a = GLMC_FLOAT_FROM_BITS(ax); return (unsigned short)(sign | (unsigned int)rintf(a * 16777216.0f)); }
      h = (((ax >> 23) - 112u) << 10) | ((ax & 0x7fffffu) >> 13);
      rest = ax & 0x1fffu;
      if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h += 1;
      return (unsigned short)(sign | h);
    }
    static inline float glmcr_bf2f(unsigned short b) { return GLMC_FLOAT_FROM_BITS((unsigned int)b << 16); }
    static inline unsigned short glmcr_f2bf(float f) {
      unsigned int x = GLMC_BITS_FROM_FLOAT(f);
      if (f != f) return (unsigned short)((x >> 16) | 0x40u);
      return (unsigned short)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
    }
    /* Double to integer as the interpreter stores it: towards zero, non-finite values give 0. */
    static inline int64_t glmcr_d2i(double v) {
      if (!(v == v) || v == INFINITY || v == -INFINITY) return 0;
      v = trunc(v);
      if (v >= 9223372036854775807.0) return 9223372036854775807L;
      if (v <= -9223372036854775808.0) return (-9223372036854775807L - 1);
      return (int64_t)v;
    }
    #endif

    """

    /// C statements that set `into` to the offset, under `strides`, of the row-major multi-index
    /// of `index` over `sizes`.
    static func offsetCode(_ index: String, sizes: [Int], strides: [Int], into: String, indent: String = "    ") -> String {
        var s = "\(indent)long \(into) = 0;\n"
        guard !sizes.isEmpty else { return s }
        s += "\(indent){ long rem_ = \(index);\n"
        for d in sizes.indices.reversed() {
            if strides[d] != 0 { s += "\(indent)  \(into) += (rem_ % \(sizes[d])) * \(strides[d]);\n" }
            if d > 0 { s += "\(indent)  rem_ /= \(sizes[d]);\n" }
        }
        return s + "\(indent)}\n"
    }

    /// Nested C loops over `sizes`, with `offset` = `base` + Σ index·stride inside `body`.
    static func nestedLoops(sizes: [Int], strides: [Int], base: String, offset: String, body: String, indent: String = "    ") -> String {
        guard !sizes.isEmpty else { return "\(indent){ long \(offset) = \(base);\n\(body)\(indent)}\n" }
        var s = "", pad = indent, term = base
        for d in sizes.indices {
            s += "\(pad)for (long i\(d)_ = 0; i\(d)_ < \(sizes[d]); ++i\(d)_) {\n"
            term += " + i\(d)_ * \(strides[d])"
            pad += "  "
        }
        s += "\(pad)long \(offset) = \(term);\n" + body
        for _ in sizes.indices { pad.removeLast(2); s += "\(pad)}\n" }
        return s
    }

    /// What a generic reduction computes over each group.
    enum ReductionKind: Equatable {
        case sum, mean, max, min, prod, l1, l2, logSum, logSumExp, sumSquare
        /// (Σ |x|^p)^(1/p) (GlobalLpPool).
        case lp(Double)
    }

    /// Any reduction over any set of axes. Parallel range: the output count; for each output, the
    /// input offset of its kept multi-index (`keptSizes`/`keptStrides`, strides of the input),
    /// then nested loops over the reduced axes. An empty reduced set (a size 0) gives the identity.
    /// Arguments: X, Y.
    static func reduce(name: String, kind: ReductionKind, input: CScalar, output: CScalar, keptSizes: [Int], keptStrides: [Int],
                       reducedSizes: [Int], reducedStrides: [Int]) -> String {
        let groupSize = reducedSizes.reduce(1, *)
        var s = "// \(name): reduce \(kind) of \(input.dtype) over \(reducedSizes) (kept \(keptSizes))\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n" + input.pointer("X", 0) + output.pointer("Y", 1, const: false)
        s += "  for (long o = begin; o < end; ++o) {\n"
        s += offsetCode("o", sizes: keptSizes, strides: keptStrides, into: "base")
        func loop(_ body: String) -> String {
            nestedLoops(sizes: reducedSizes, strides: reducedStrides, base: "base", offset: "p", body: body, indent: "    ")
        }
        let exactInteger = !input.isFloat && [.sum, .prod, .max, .min, .l1, .sumSquare].contains(kind)
        if exactInteger {
            if kind == .max || kind == .min {
                let (lo, hi) = input.range
                s += "    \(input.storage) a = \(kind == .max ? lo : hi);\n"
                s += loop("      \(input.storage) v = X[p]; if (v \(kind == .max ? ">" : "<") a) a = v;\n")
                s += "    Y[o] = (\(output.storage))a;\n"
            } else {
                // Wrapping 64-bit arithmetic, as the interpreter's Int64 &+ / &*.
                s += "    uint64_t a = \(kind == .prod ? "1UL" : "0UL");\n"
                let v = "(uint64_t)X[p]"
                let term: String
                switch kind {
                case .prod: term = "a *= \(v);"
                case .l1: term = input.isUnsigned ? "a += \(v);" : "a += X[p] >= 0 ? \(v) : 0UL - \(v);"
                case .sumSquare: term = "a += \(v) * \(v);"
                default: term = "a += \(v);"
                }
                s += loop("      \(term)\n")
                s += "    Y[o] = (\(output.storage))a;\n"
            }
            return s + "  }\n}\n"
        }
        let x = input.load("X", "p")
        switch kind {
        case .max, .min:
            s += "    double a = \(kind == .max ? "-INFINITY" : "INFINITY");\n"
            // NaN wins and then sticks.
            s += loop("      double v = \(x); if (v != v || v \(kind == .max ? ">" : "<") a) a = v;\n")
        case .logSumExp:
            s += "    double m = -INFINITY, a = 0.0;\n"
            s += loop("      double v = \(x); if (v != v || v > m) m = v;\n")
            s += "    if (isfinite(m)) {\n" + loop("        a += exp(\(x) - m);\n") + "      a = m + log(a);\n    } else a = m;\n"
        case .prod:
            s += "    double a = 1.0;\n" + loop("      a *= \(x);\n")
        case .lp(let p):
            s += "    double a = 0.0;\n" + loop("      a += pow(fabs(\(x)), \(p));\n") + "    a = pow(a, 1.0 / \(p));\n"
        default:
            s += "    double a = 0.0;\n"
            switch kind {
            case .l1: s += loop("      a += fabs(\(x));\n")
            case .l2, .sumSquare: s += loop("      double v = \(x); a += v * v;\n")
            default: s += loop("      a += \(x);\n")
            }
            switch kind {
            case .mean: s += "    a = a / \(groupSize).0;\n"
            case .l2: s += "    a = sqrt(a);\n"
            case .logSum: s += "    a = log(a);\n"
            default: break
            }
        }
        s += "    " + output.store("Y", "o", "a") + "\n"
        return s + "  }\n}\n"
    }

    /// ArgMax/ArgMin over the middle axis of an (outer, n, inner) view; NaN beats every number,
    /// ties go to the first (or, with `selectLast`, the last) index. Parallel range: outer*inner.
    /// Arguments: X, Y (int64).
    static func argReduce(name: String, findMax: Bool, input: CScalar, outer: Int, n: Int, inner: Int, selectLast: Bool) -> String {
        var s = "// \(name): arg\(findMax ? "max" : "min") over \(n)\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n" + input.pointer("X", 0) + "  GLMC_GLOBAL int64_t *Y = (GLMC_GLOBAL int64_t *)args[1];\n"
        s += "  for (long idx = begin; idx < end; ++idx) {\n"
        s += "    long base = (idx / \(inner)) * \(n * inner) + idx % \(inner), best = 0;\n"
        let cmp = findMax ? ">" : "<"
        if input.isFloat {
            s += "    double bk = \(input.load("X", "base"));\n"
            s += "    for (long j = 1; j < \(n); ++j) {\n      double k = \(input.load("X", "base + j * \(inner)"));\n"
            s += "      int better = bk == bk && (k != k || k \(cmp) bk);\n"
            s += "      int tie = \(selectLast ? 1 : 0) && (k == bk || (k != k && bk != bk));\n"
        } else {
            s += "    \(input.storage) bk = X[base];\n"
            s += "    for (long j = 1; j < \(n); ++j) {\n      \(input.storage) k = X[base + j * \(inner)];\n"
            s += "      int better = k \(cmp) bk, tie = \(selectLast ? 1 : 0) && k == bk;\n"
        }
        s += "      if (better || tie) { best = j; bk = k; }\n    }\n    Y[idx] = best;\n  }\n}\n"
        return s
    }

    /// The (outer, n, inner) view of a cumulative sum or product along one axis.
    struct CumulativeGeometry: Equatable { var outer, n, inner: Int }

    /// CumSum/CumProd along the middle axis of an (outer, n, inner) view. Floats accumulate in
    /// double, integers in wrapping 64-bit arithmetic. With `runtimeAxis` (the axis operand's type)
    /// there is one geometry per axis of the input and the kernel takes the one the axis names; an
    /// axis outside the input (the interpreter's error) fills the output with NaN (zero for
    /// integers). Parallel range: the largest outer*inner. Arguments: X, [axis], Y.
    static func cumulative(name: String, product: Bool, scalar: CScalar, geometries: [CumulativeGeometry], runtimeAxis: CScalar?,
                           exclusive: Bool, reverse: Bool) -> String {
        let g0 = geometries[0]
        var s = "// \(name): cum\(product ? "prod" : "sum")\(runtimeAxis != nil ? " along a runtime axis" : " over \(g0.n)")\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n" + scalar.pointer("X", 0)
        if let runtimeAxis { s += runtimeAxis.pointer("AX", 1) }
        s += scalar.pointer("Y", runtimeAxis != nil ? 2 : 1, const: false)
        s += "  long outer = \(g0.outer), n = \(g0.n), inner = \(g0.inner);\n"
        if runtimeAxis != nil {
            let rank = geometries.count
            s += longArray("outers", geometries.map(\.outer)) + longArray("ns", geometries.map(\.n)) + longArray("inners", geometries.map(\.inner))
            s += "  long ax = (long)AX[0];\n  if (ax < 0) ax += \(rank);\n"
            let fill = scalar.isFloat ? scalar.store("Y", "u", "NAN") : "Y[u] = 0;"
            s += "  if (ax < 0 || ax >= \(rank)) { if (begin == 0) for (long u = 0; u < \(geometries.map { $0.outer * $0.n * $0.inner }.max() ?? 0); ++u) { \(fill) } return; }\n"
            s += "  outer = outers[ax]; n = ns[ax]; inner = inners[ax];\n"
        }
        s += "  for (long idx = begin; idx < end && idx < outer * inner; ++idx) {\n"
        s += "    long base = (idx / inner) * (n * inner) + idx % inner;\n"
        let acc = scalar.isFloat ? "double" : "uint64_t"
        s += "    \(acc) a = \(product ? "1" : "0");\n"
        s += "    for (long step = 0; step < n; ++step) {\n"
        s += "      long p = base + \(reverse ? "(n - 1 - step)" : "step") * inner;\n"
        let v = scalar.isFloat ? scalar.load("X", "p") : "(uint64_t)X[p]"
        let combine = product ? "a *= \(v);" : "a += \(v);"
        let store = scalar.isFloat ? scalar.store("Y", "p", "a") : "Y[p] = (\(scalar.storage))a;"
        s += exclusive ? "      \(store) \(combine)\n" : "      \(combine) \(store)\n"
        return s + "    }\n  }\n}\n"
    }

    enum SoftmaxKind { case softmax, logSoftmax, hardmax }

    /// Softmax, LogSoftmax or Hardmax over the middle axis of an (outer, n, inner) view, the
    /// exponentials and their sum rounded to the element type (as the interpreter does). Parallel
    /// range: outer*inner. Arguments: X, Y.
    static func softmaxFamily(name: String, kind: SoftmaxKind, scalar: CScalar, outer: Int, n: Int, inner: Int) -> String {
        var s = "// \(name): \(kind) over \(n)\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n" + scalar.pointer("X", 0) + scalar.pointer("Y", 1, const: false)
        s += "  for (long idx = begin; idx < end; ++idx) {\n"
        let at = "base + j * \(inner)"
        s += "    long base = (idx / \(inner)) * \(n * inner) + idx % \(inner);\n"
        // The maximum (its first index for hardmax); exponents are shifted by it to stay finite.
        let trackArg = kind == .hardmax
        s += "    double m = \(scalar.load("X", "base"));\(trackArg ? " long arg = 0;" : "")\n"
        s += "    for (long j = 1; j < \(n); ++j) { double v = \(scalar.load("X", at)); if (v > m) { m = v;\(trackArg ? " arg = j;" : "") } }\n"
        switch kind {
        case .hardmax:
            s += "    for (long j = 0; j < \(n); ++j) \(scalar.store("Y", at, "j == arg ? 1.0 : 0.0"))\n"
        case .softmax:
            // The exponentials, rounded to the element type as the interpreter rounds them, are
            // stored, summed, then scaled in place: one exponential per element. Storing and
            // summing are separate loops so the first vectorizes (the sum's order stays sequential).
            s += "    double sum = 0.0;\n"
            s += "    for (long j = 0; j < \(n); ++j) { double e = \(scalar.roundedExp("\(scalar.load("X", at)) - m")); \(scalar.store("Y", at, "e")) }\n"
            s += "    for (long j = 0; j < \(n); ++j) sum += \(scalar.load("Y", at));\n"
            s += "    sum = \(scalar.round("sum"));\n"
            s += "    for (long j = 0; j < \(n); ++j) \(scalar.store("Y", at, "\(scalar.load("Y", at)) / sum"))\n"
        case .logSoftmax:
            s += "    double sum = 0.0;\n"
            s += "    for (long j = 0; j < \(n); ++j) sum += \(scalar.roundedExp("\(scalar.load("X", at)) - m"));\n"
            s += "    double logSum = log(\(scalar.round("sum")));\n"
            s += "    for (long j = 0; j < \(n); ++j) \(scalar.store("Y", at, "\(scalar.load("X", at)) - m - logSum"))\n"
        }
        return s + "  }\n}\n"
    }

    /// How `normalizeRows` normalizes a row.
    enum RowNormalization: Equatable {
        /// (x - mean) / sqrt(var + eps) * scale + bias; optional Mean and InvStdDev outputs.
        case layer(epsilon: Double, mean: Bool, invStdDev: Bool)
        /// x / sqrt(mean(x²) + eps) * scale.
        case rms(epsilon: Double)
    }

    /// A parameter (scale or bias) read at the offset of the element's index in `viewSizes`
    /// under `strides` (0 on broadcast axes).
    struct Parameter {
        var scalar: CScalar
        var strides: [Int]

        /// Whether the parameter is indexed by the position in the row alone (its strides are 0
        /// on the leading axes and row-major over trailing axes that make up one row): the
        /// common case of a scale with the normalized shape, read without index arithmetic.
        func isRowShaped(viewSizes: [Int], rowLength: Int) -> Bool {
            let rowMajor = CPUPlanBuilder.Generator.rowMajorStrides(viewSizes)
            return (0 ... viewSizes.count).contains { k in
                viewSizes[k...].reduce(1, *) == rowLength
                    && viewSizes.indices.allSatisfy { d in viewSizes[d] == 1 || strides[d] == (d < k ? 0 : rowMajor[d]) }
            }
        }
    }

    /// Normalizes each contiguous row of `rowLength` elements (LayerNormalization,
    /// RMSNormalization, InstanceNormalization, GroupNormalization). Statistics in double, two
    /// passes. Parallel range: rows. Arguments: X, [scale], [bias], Y, [Mean], [InvStdDev].
    static func normalizeRows(name: String, kind: RowNormalization, scalar: CScalar, rows: Int, rowLength: Int,
                              viewSizes: [Int], scale: Parameter?, bias: Parameter?, stash: CScalar) -> String {
        var s = "// \(name): \(kind) of \(rows) rows of \(rowLength)\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n" + scalar.pointer("X", 0)
        var next = 1
        if let scale { s += scale.scalar.pointer("S", next); next += 1 }
        if let bias { s += bias.scalar.pointer("B", next); next += 1 }
        s += scalar.pointer("Y", next, const: false); next += 1
        var statOutputs: [String] = []
        if case .layer(_, let mean, let inv) = kind {
            if mean { s += stash.pointer("M", next, const: false); next += 1; statOutputs.append("M") }
            if inv { s += stash.pointer("I", next, const: false); next += 1; statOutputs.append("I") }
        }
        s += "  for (long r = begin; r < end; ++r) {\n    long base = r * \(rowLength);\n"
        let x = scalar.load("X", "base + j")
        func param(_ p: Parameter, _ pointer: String) -> String {
            if p.isRowShaped(viewSizes: viewSizes, rowLength: rowLength) {
                return "      double \(pointer.lowercased())v = \(p.scalar.load(pointer, "j"));\n"
            }
            return offsetCode("base + j", sizes: viewSizes, strides: p.strides, into: "o\(pointer)", indent: "      ")
                + "      double \(pointer.lowercased())v = \(p.scalar.load(pointer, "o\(pointer)"));\n"
        }
        var body = "      double v = \(x);\n"
        if let scale { body += param(scale, "S") }
        if let bias { body += param(bias, "B") }
        switch kind {
        case .layer(let eps, _, _):
            s += "    double mean = 0.0, var = 0.0;\n"
            s += "    for (long j = 0; j < \(rowLength); ++j) mean += \(x);\n    mean /= \(rowLength).0;\n"
            s += "    for (long j = 0; j < \(rowLength); ++j) { double d = \(x) - mean; var += d * d; }\n    var /= \(rowLength).0;\n"
            s += "    double inv = 1.0 / sqrt(var + \(eps));\n"
            body += "      double y = (v - mean) * inv\(scale == nil ? "" : " * sv")\(bias == nil ? "" : " + bv");\n"
            if statOutputs.contains("M") { s += "    \(stash.store("M", "r", "mean"))\n" }
            if statOutputs.contains("I") { s += "    \(stash.store("I", "r", "inv"))\n" }
        case .rms(let eps):
            s += "    double ms = 0.0;\n"
            s += "    for (long j = 0; j < \(rowLength); ++j) { double d = \(x); ms += d * d; }\n"
            s += "    double inv = 1.0 / sqrt(ms / \(rowLength).0 + \(eps));\n"
            body += "      double y = v * inv\(scale == nil ? "" : " * sv")\(bias == nil ? "" : " + bv");\n"
        }
        let parameters = [scale, bias].compactMap { $0 }
        if scalar.dtype == .f32, parameters.allSatisfy({ $0.scalar.dtype == .f32 && $0.isRowShaped(viewSizes: viewSizes, rowLength: rowLength) }) {
            // f32 with parameters of the row's shape: the centred value in double, the scaling in
            // float, which vectorizes twice as wide (a few float ulps from the all-double result).
            var centred = "(float)((double)X[base + j] - mean)"
            if case .rms = kind { centred = "X[base + j]" }
            s += "    float finv = (float)inv;\n"
            s += "    for (long j = 0; j < \(rowLength); ++j) Y[base + j] = \(centred) * finv\(scale == nil ? "" : " * S[j]")\(bias == nil ? "" : " + B[j]");\n"
            return s + "  }\n}\n"
        }
        body += "      \(scalar.store("Y", "base + j", "y"))\n"
        s += "    for (long j = 0; j < \(rowLength); ++j) {\n" + body + "    }\n"
        return s + "  }\n}\n"
    }

    /// How `normalizeGroups` rescales a group.
    enum GroupNormalization: Equatable {
        /// (x - E[x]) / (sqrt(E[x²] - E[x]²) + 1e-9) (MeanVarianceNormalization).
        case meanVariance
        /// x / ‖x‖_p, 0 where the norm is 0 (LpNormalization, p = 1 or 2).
        case lp(Int)
    }

    /// Normalizes each group of elements sharing their kept multi-index (any set of reduced axes).
    /// Parallel range: the group count. Arguments: X, Y.
    static func normalizeGroups(name: String, kind: GroupNormalization, scalar: CScalar, keptSizes: [Int], keptStrides: [Int],
                                reducedSizes: [Int], reducedStrides: [Int]) -> String {
        let n = reducedSizes.reduce(1, *)
        var s = "// \(name): \(kind) over \(reducedSizes)\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n" + scalar.pointer("X", 0) + scalar.pointer("Y", 1, const: false)
        s += "  for (long o = begin; o < end; ++o) {\n" + offsetCode("o", sizes: keptSizes, strides: keptStrides, into: "base")
        func loop(_ body: String) -> String {
            nestedLoops(sizes: reducedSizes, strides: reducedStrides, base: "base", offset: "p", body: body)
        }
        let x = scalar.load("X", "p")
        switch kind {
        case .meanVariance:
            s += "    double mean = 0.0, sq = 0.0;\n" + loop("      double v = \(x); mean += v; sq += v * v;\n")
            s += "    mean /= \(n).0; sq /= \(n).0;\n    double sd = sqrt(sq - mean * mean);\n"
            s += loop("      \(scalar.store("Y", "p", "(\(x) - mean) / (sd + 1e-9)"))\n")
        case .lp(let p):
            s += "    double norm = 0.0;\n"
            s += loop(p == 1 ? "      norm += fabs(\(x));\n" : "      double v = \(x); norm += v * v;\n")
            if p != 1 { s += "    norm = sqrt(norm);\n" }
            s += loop("      \(scalar.store("Y", "p", "norm == 0.0 ? 0.0 : \(x) / norm"))\n")
        }
        return s + "  }\n}\n"
    }

    /// NegativeLogLikelihoodLoss / SoftmaxCrossEntropyLoss over (N, C, D) scores (D the product of
    /// the trailing axes), one thread (the reductions "sum" and "mean" need every term). With
    /// `logSoftmax`, log-probabilities are computed first (and written to LogProb when asked).
    /// Arguments: X, target, [weight], loss, [LogProb].
    static func classificationLoss(name: String, scalar: CScalar, target: CScalar, weight: CScalar?, batch: Int, classes: Int, inner: Int,
                                   logSoftmax: Bool, logProbOutput: Bool, ignoreIndex: Int?, reduction: String) -> String {
        var s = "// \(name): \(logSoftmax ? "softmax cross-entropy" : "negative log-likelihood") loss, \(reduction)\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n" + scalar.pointer("X", 0) + target.pointer("T", 1)
        var next = 2
        if let weight { s += weight.pointer("W", next); next += 1 }
        s += scalar.pointer("L", next, const: false); next += 1
        if logProbOutput { s += scalar.pointer("P", next, const: false); next += 1 }
        s += "  if (begin > 0 || end < 1) return;\n"
        if logSoftmax {
            s += "  GLMC_SCRATCH(double, lp, \(max(1, batch * classes * inner)), \(next));\n"
            s += "  for (long n = 0; n < \(batch); ++n) for (long d = 0; d < \(inner); ++d) {\n"
            s += "    long base = n * \(classes * inner) + d;\n    double m = -INFINITY, sum = 0.0;\n"
            s += "    for (long c = 0; c < \(classes); ++c) { double v = \(scalar.load("X", "base + c * \(inner)")); if (v > m || c == 0) m = v; }\n"
            s += "    for (long c = 0; c < \(classes); ++c) sum += \(scalar.roundedExp("\(scalar.load("X", "base + c * \(inner)")) - m"));\n"
            s += "    double logSum = log(\(scalar.round("sum")));\n"
            s += "    for (long c = 0; c < \(classes); ++c) {\n      long p = base + c * \(inner);\n"
            s += "      lp[p] = \(scalar.load("X", "p")) - m - logSum;\n"
            if logProbOutput { s += "      \(scalar.store("P", "p", "lp[p]"))\n" }
            s += "    }\n  }\n"
        }
        let logProb = logSoftmax ? "lp[(n * \(classes) + t) * \(inner) + d]" : scalar.load("X", "(n * \(classes) + t) * \(inner) + d")
        s += "  double total = 0.0, weights = 0.0;\n"
        s += "  for (long i = 0; i < \(batch * inner); ++i) {\n    long n = i / \(inner), d = i % \(inner);\n"
        s += "    int64_t t = (int64_t)T[i];\n    double loss = 0.0;\n"
        // A target outside [0, C) (an error in the interpreter) makes the loss NaN.
        s += "    if (\(ignoreIndex.map { "t == \($0)L" } ?? "0")) loss = 0.0;\n"
        s += "    else if (t < 0 || t >= \(classes)) loss = NAN;\n"
        s += "    else {\n      double w = \(weight.map { $0.load("W", "t") } ?? "1.0");\n"
        s += "      loss = -\(logProb) * w;\n      weights += w;\n    }\n"
        if reduction == "none" { s += "    \(scalar.store("L", "i", "loss"))\n" }
        s += "    total += loss;\n  }\n"
        switch reduction {
        case "sum": s += "  \(scalar.store("L", "0", "total"))\n"
        case "mean": s += "  \(scalar.store("L", "0", "total / weights"))\n"
        default: break
        }
        if logSoftmax { s += "  GLMC_SCRATCH_FREE(lp);\n" }
        return s + "}\n"
    }
}

extension CPUKernelLibrary {
    /// LpPool over any number of spatial dims: per output element, (Σ |x|^p)^(1/p) over the
    /// in-bounds taps of its window. `first[d][o]` and `count[d][o]` (the first in-bounds input
    /// position and the number of in-bounds taps of output position o along spatial dim d) are
    /// baked tables. Parallel range: N·C·output plane. Arguments: X, Y.
    static func lpPool(name: String, scalar: CScalar, inSizes: [Int], outSizes: [Int], dilations: [Int],
                       first: [[Int]], count: [[Int]], p: Double) -> String {
        let rank = inSizes.count
        let inPlane = inSizes.reduce(1, *), outPlane = outSizes.reduce(1, *)
        var s = "// \(name): lp_pool p=\(p) \(inSizes) -> \(outSizes)\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n" + scalar.pointer("X", 0) + scalar.pointer("Y", 1, const: false)
        for d in 0 ..< rank {
            s += longArray("first\(d)", first[d]) + longArray("count\(d)", count[d])
        }
        let inStrides = CPUPlanBuilder.Generator.rowMajorStrides(inSizes)
        s += "  for (long u = begin; u < end; ++u) {\n    long plane = u / \(outPlane), rem = u % \(outPlane);\n"
        for d in (0 ..< rank).reversed() { s += "    long o\(d) = rem % \(outSizes[d]); rem /= \(outSizes[d]);\n" }
        s += "    GLMC_GLOBAL const \(scalar.storage) *x = X + plane * \(inPlane);\n    double sum = 0.0;\n"
        var pad = "    ", term = "0"
        for d in 0 ..< rank {
            s += "\(pad)for (long t\(d) = 0; t\(d) < count\(d)[o\(d)]; ++t\(d)) {\n"
            term += " + (first\(d)[o\(d)] + t\(d) * \(dilations[d])) * \(inStrides[d])"
            pad += "  "
        }
        s += "\(pad)sum += pow(fabs(\(scalar.load("x", term))), \(p));\n"
        for _ in 0 ..< rank { pad.removeLast(2); s += "\(pad)}\n" }
        s += "    \(scalar.store("Y", "u", "pow(sum, 1.0 / \(p))"))\n  }\n}\n"
        return s
    }
}
