import GLMCIR

/// General kernels for the convolution family, windowed pooling and matrix products: any number of
/// spatial dims, any element type `CScalar` handles, one output element per unit of the range (so
/// a GPU work-item computes one element, and a CPU thread a run of them). Every shape is baked in;
/// floating-point values are computed in double and rounded once on store, like the interpreter's
/// reference (`GLMCOps/NeuralConv.swift`, `NeuralPool.swift`, `ReductionLinearAlgebra.swift`).
/// The fast f32 paths (blocked GEMM, im2col, depthwise, the 2-D direct kernels) stay where they
/// are; these kernels cover the rest.
extension CPUKernelLibrary {
    /// The geometry of one convolution or transposed convolution, auto_pad resolved.
    struct ConvolutionShape: Equatable {
        var batch: Int
        var inChannels: Int
        var outChannels: Int
        var group: Int
        var inSpatial: [Int]
        var outSpatial: [Int]
        var kernel: [Int]
        var strides: [Int]
        var dilations: [Int]
        var padBegin: [Int]
        /// ConvTranspose: the weight is [C, M/group, k...] and every input position scatters into
        /// the outputs its kernel covers; the kernel gathers, per output position, the input
        /// positions whose window covers it.
        var transposed: Bool

        var rank: Int { kernel.count }
        var outputCount: Int { batch * outChannels * outSpatial.reduce(1, *) }
        /// Multiply-adds per output element (a unit of the range).
        var work: Int { inChannels / group * kernel.reduce(1, *) }
    }

    /// How a quantized operand's zero point is indexed (ConvInteger, MatMulInteger).
    enum ZeroPoint: Equatable {
        /// One value for the whole operand.
        case scalar(CScalar)
        /// One value per output channel (a convolution weight) or per row (A) or column (B) of a
        /// matrix product.
        case perChannel(CScalar)

        var scalar: CScalar {
            switch self { case .scalar(let s), .perChannel(let s): return s }
        }
    }

    /// The row-major multi-index of `index` over `sizes` into `o0`, `o1`, ...; what is left in `rest`.
    static func unravelCode(_ index: String, sizes: [Int], prefix: String = "o", rest: String = "rest", indent: String = "    ") -> String {
        var s = "\(indent)long \(rest) = \(index);\n"
        for d in sizes.indices.reversed() { s += "\(indent)long \(prefix)\(d) = \(rest) % \(sizes[d]); \(rest) /= \(sizes[d]);\n" }
        return s
    }

    /// Convolution (Conv, ConvInteger) or transposed convolution over any number of spatial dims,
    /// with groups, pads, strides and dilations. Per output element: the bias (or 0), plus for
    /// each input channel of its group and each kernel tap inside the input, (x - x_zero) ·
    /// (w - w_zero), accumulated in double; the f32 epilogue applies to the float result.
    /// Parallel range: N·M·output plane. Arguments: X, W, [B], [x zero point], [w zero point], Y.
    static func convolution(name: String, _ g: ConvolutionShape, x: CScalar, w: CScalar, bias: CScalar?, y: CScalar,
                            xZeroPoint: CScalar? = nil, wZeroPoint: ZeroPoint? = nil, epilogue: [Epilogue] = []) -> String {
        let rank = g.rank
        let cg = g.inChannels / g.group, mg = g.outChannels / g.group
        let inPlane = g.inSpatial.reduce(1, *), taps = g.kernel.reduce(1, *)
        let inStrides = CPUPlanBuilder.Generator.rowMajorStrides(g.inSpatial), kStrides = CPUPlanBuilder.Generator.rowMajorStrides(g.kernel)
        var s = "// \(name): \(g.transposed ? "conv_transpose" : "conv") [\(g.batch),\(g.inChannels)]\(g.inSpatial) -> [\(g.batch),\(g.outChannels)]\(g.outSpatial)"
        s += " kernel \(g.kernel) group \(g.group), \(x.dtype)\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n" + x.pointer("X", 0) + w.pointer("W", 1)
        var next = 2
        if let bias { s += bias.pointer("B", next); next += 1 }
        if let xZeroPoint { s += xZeroPoint.pointer("XZ", next); next += 1 }
        if let wZeroPoint { s += wZeroPoint.scalar.pointer("WZ", next); next += 1 }
        s += y.pointer("Y", next, const: false)
        s += "  for (long u = begin; u < end; ++u) {\n"
        s += unravelCode("u", sizes: g.outSpatial)
        s += "    long m = rest % \(g.outChannels), n = rest / \(g.outChannels), g = m / \(mg);\n"
        s += "    double acc = \(bias.map { $0.load("B", "m") } ?? "0.0");\n"
        if let xZeroPoint { s += "    double xz = \(xZeroPoint.load("XZ", "0"));\n" }
        if let wZeroPoint {
            if case .perChannel = wZeroPoint { s += "    double wz = \(wZeroPoint.scalar.load("WZ", "m"));\n" } else { s += "    double wz = \(wZeroPoint.scalar.load("WZ", "0"));\n" }
        }
        s += "    for (long c = 0; c < \(cg); ++c) {\n"
        s += "      long xBase = (n * \(g.inChannels) + g * \(cg) + c) * \(inPlane);\n"
        // Conv weights are [M, C/group, k...]; ConvTranspose weights [C, M/group, k...].
        s += g.transposed ? "      long wBase = ((g * \(cg) + c) * \(mg) + m - g * \(mg)) * \(taps);\n"
                          : "      long wBase = (m * \(cg) + c) * \(taps);\n"
        var pad = "      ", xTerm = "xBase", wTerm = "wBase"
        for d in 0 ..< rank {
            s += "\(pad)for (long k\(d) = 0; k\(d) < \(g.kernel[d]); ++k\(d)) {\n"
            pad += "  "
            if g.transposed {
                // Output o = i·stride - pad + k·dilation: i = (o + pad - k·dilation) / stride when exact.
                s += "\(pad)long t\(d) = o\(d) + \(g.padBegin[d]) - k\(d) * \(g.dilations[d]);\n"
                s += "\(pad)if (t\(d) < 0\(g.strides[d] == 1 ? "" : " || t\(d) % \(g.strides[d]) != 0")) continue;\n"
                s += "\(pad)long i\(d) = t\(d) / \(g.strides[d]);\n\(pad)if (i\(d) >= \(g.inSpatial[d])) continue;\n"
            } else {
                s += "\(pad)long i\(d) = o\(d) * \(g.strides[d]) - \(g.padBegin[d]) + k\(d) * \(g.dilations[d]);\n"
                s += "\(pad)if (i\(d) < 0 || i\(d) >= \(g.inSpatial[d])) continue;\n"
            }
            xTerm += " + i\(d) * \(inStrides[d])"
            wTerm += " + k\(d) * \(kStrides[d])"
        }
        let xv = x.load("X", xTerm) + (xZeroPoint == nil ? "" : " - xz")
        let wv = w.load("W", wTerm) + (wZeroPoint == nil ? "" : " - wz")
        s += "\(pad)acc += (\(xv)) * (\(wv));\n"
        for _ in 0 ..< rank { pad.removeLast(2); s += "\(pad)}\n" }
        s += "    }\n"
        if !epilogue.isEmpty, y.dtype == .f32 {
            s += "    {\n      float v = (float)acc;\n" + epilogueCode(epilogue, "v") + "\n      Y[u] = v;\n    }\n"
        } else {
            s += "    \(y.store("Y", "u", "acc"))\n"
        }
        return s + "  }\n}\n"
    }

    /// What a windowed pool computes.
    enum WindowPoolKind: Equatable {
        /// The maximum (the first of equal ones, as the interpreter keeps it); with `indices`, its
        /// flat input position (row-major, or column-major over the spatial dims with
        /// storage_order 1) goes to an int64 output.
        case max(indices: Bool, columnMajor: Bool)
        /// The mean of the taps inside the input, or (`countPadding`) the sum divided by the
        /// number of taps inside the explicitly padded input.
        case average(countPadding: Bool)
    }

    /// MaxPool or AveragePool over any number of spatial dims, any element type (computed in
    /// double). Parallel range: N·C·output plane. Arguments: X, Y, [Indices].
    static func windowPool(name: String, kind: WindowPoolKind, scalar: CScalar, inSizes: [Int], outSizes: [Int], kernel: [Int],
                           strides: [Int], dilations: [Int], padBegin: [Int], padEnd: [Int]) -> String {
        let rank = inSizes.count
        let inPlane = inSizes.reduce(1, *)
        let rowStrides = CPUPlanBuilder.Generator.rowMajorStrides(inSizes)
        var colStrides = [Int](repeating: 1, count: rank)
        for d in stride(from: 1, to: rank, by: 1) { colStrides[d] = colStrides[d - 1] * inSizes[d - 1] }
        var s = "// \(name): \(kind) pool \(inSizes) -> \(outSizes), kernel \(kernel), \(scalar.dtype)\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n" + scalar.pointer("X", 0) + scalar.pointer("Y", 1, const: false)
        var withIndices = false, columnMajor = false, countPadding = false
        switch kind {
        case .max(let i, let c): withIndices = i; columnMajor = c
        case .average(let c): countPadding = c
        }
        if withIndices { s += "  GLMC_GLOBAL int64_t *I = (GLMC_GLOBAL int64_t *)args[2];\n" }
        s += "  for (long u = begin; u < end; ++u) {\n"
        s += unravelCode("u", sizes: outSizes)
        s += "    GLMC_GLOBAL const \(scalar.storage) *x = X + rest * \(inPlane);\n"
        if case .max = kind {
            s += "    double best = -INFINITY; long bestAt = -1;\n"
        } else {
            s += "    double sum = 0.0; long count = 0;\n"
        }
        var pad = "    ", at = "0", colAt = "0"
        for d in 0 ..< rank {
            s += "\(pad)for (long k\(d) = 0; k\(d) < \(kernel[d]); ++k\(d)) {\n"
            pad += "  "
            s += "\(pad)long i\(d) = o\(d) * \(strides[d]) - \(padBegin[d]) + k\(d) * \(dilations[d]);\n"
            // With count_include_pad the taps in the padding are walked (and counted) too.
            let lo = countPadding ? -padBegin[d] : 0, hi = inSizes[d] + (countPadding ? padEnd[d] : 0)
            s += "\(pad)if (i\(d) < \(lo) || i\(d) >= \(hi)) continue;\n"
            at += " + i\(d) * \(rowStrides[d])"
            colAt += " + i\(d) * \(colStrides[d])"
        }
        switch kind {
        case .max:
            s += "\(pad)double v = \(scalar.load("x", at));\n"
            s += "\(pad)if (bestAt < 0 || v > best) { best = v; bestAt = \(columnMajor ? colAt : at); }\n"
        case .average:
            if countPadding {
                s += "\(pad)++count;\n"
                s += "\(pad)if (\((0 ..< rank).map { "i\($0) < 0 || i\($0) >= \(inSizes[$0])" }.joined(separator: " || "))) continue;\n"
                s += "\(pad)sum += \(scalar.load("x", at));\n"
            } else {
                s += "\(pad)sum += \(scalar.load("x", at)); ++count;\n"
            }
        }
        for _ in 0 ..< rank { pad.removeLast(2); s += "\(pad)}\n" }
        if case .max = kind {
            s += "    \(scalar.store("Y", "u", "best"))\n"
            if withIndices { s += "    I[u] = rest * \(inPlane) + bestAt;\n" }
        } else {
            // An empty window divides 0 by 0, as the interpreter does.
            s += "    \(scalar.store("Y", "u", "sum / (double)count"))\n"
        }
        return s + "  }\n}\n"
    }

    /// The shapes of a matrix product [batch..., M, K] x [batch..., K, N] -> [batch..., M, N] whose
    /// operands' batch dims broadcast (strides 0 on a broadcast dim, in elements).
    struct MatMulShape: Equatable {
        var batch: [Int]
        var aBatchStrides: [Int]
        var bBatchStrides: [Int]
        var m: Int, k: Int, n: Int
    }

    /// MatMul or MatMulInteger on any element type. Floats multiply and accumulate in double and
    /// round once; integers in wrapping 64-bit arithmetic (the interpreter's Int64 &+ / &*),
    /// truncated to the output type; zero points (MatMulInteger: A's scalar or per row, B's scalar
    /// or per column) are subtracted first. Parallel range: batch·M·N. Arguments: A, B, [A zero
    /// point], [B zero point], Y.
    static func matMul(name: String, _ p: MatMulShape, a: CScalar, b: CScalar, y: CScalar,
                       aZeroPoint: ZeroPoint? = nil, bZeroPoint: ZeroPoint? = nil) -> String {
        var s = "// \(name): matmul batch \(p.batch) \(p.m)x\(p.k) * \(p.k)x\(p.n), \(a.dtype) x \(b.dtype) -> \(y.dtype)\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n" + a.pointer("A", 0) + b.pointer("B", 1)
        var next = 2
        if let aZeroPoint { s += aZeroPoint.scalar.pointer("AZ", next); next += 1 }
        if let bZeroPoint { s += bZeroPoint.scalar.pointer("BZ", next); next += 1 }
        s += y.pointer("Y", next, const: false)
        s += "  for (long u = begin; u < end; ++u) {\n"
        s += "    long c = u % \(p.n), r = u / \(p.n) % \(p.m), bt = u / \(p.m * p.n);\n"
        s += offsetCode("bt", sizes: p.batch, strides: p.aBatchStrides, into: "aBase")
        s += offsetCode("bt", sizes: p.batch, strides: p.bBatchStrides, into: "bBase")
        let aAt = "aBase + r * \(p.k) + q", bAt = "bBase + q * \(p.n) + c"
        if a.isFloat {
            s += "    double acc = 0.0;\n"
            s += "    for (long q = 0; q < \(p.k); ++q) acc += \(a.load("A", aAt)) * \(b.load("B", bAt));\n"
            s += "    \(y.store("Y", "u", "acc"))\n"
        } else {
            func zero(_ z: ZeroPoint?, _ pointer: String, perChannelIndex: String) -> String {
                guard let z else { return "" }
                if case .perChannel = z { return " - (int64_t)\(pointer)[\(perChannelIndex)]" }
                return " - (int64_t)\(pointer)[0]"
            }
            s += "    uint64_t acc = 0UL;\n"
            s += "    for (long q = 0; q < \(p.k); ++q) acc += (uint64_t)((int64_t)A[\(aAt)]\(zero(aZeroPoint, "AZ", perChannelIndex: "r")))"
            s += " * (uint64_t)((int64_t)B[\(bAt)]\(zero(bZeroPoint, "BZ", perChannelIndex: "c")));\n"
            s += "    Y[u] = (\(y.storage))acc;\n"
        }
        return s + "  }\n}\n"
    }
}

extension CPUKernelLibrary {
    /// CausalConvWithState: per (batch, channel) plane a depthwise causal 1-D convolution over
    /// [past state (or zeros) ++ input], in double, optionally SiLU-activated (on the value rounded
    /// to float, as the interpreter does); the units past the output's are the new state (the last
    /// `kernel - 1` positions of the padded row). Parallel range: planes·length + planes·(kernel-1).
    /// Arguments: X, W, [B], [past state], Y, state.
    static func causalConvolution(name: String, scalar: CScalar, planes: Int, channels: Int, length: Int, kernel: Int,
                                  bias: CScalar?, past: CScalar?, silu: Bool) -> String {
        let history = kernel - 1
        var s = "// \(name): causal conv with state, \(planes) planes of \(length), kernel \(kernel)\(silu ? ", silu" : "")\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n" + scalar.pointer("X", 0) + scalar.pointer("W", 1)
        var next = 2
        if let bias { s += bias.pointer("B", next); next += 1 }
        if let past { s += past.pointer("P", next); next += 1 }
        s += scalar.pointer("Y", next, const: false) + scalar.pointer("S", next + 1, const: false)
        // Position i of a plane's padded row: the past state (zeros without one), then the input.
        let pastValue = past.map { $0.load("P", "plane * \(history) + (i)") } ?? "0.0"
        s += "  for (long u = begin; u < end; ++u) {\n"
        s += "    if (u < \(planes * length)) {\n"
        s += "      long plane = u / \(length), t = u % \(length), ch = plane % \(channels);\n"
        s += "      double acc = \(bias.map { $0.load("B", "ch") } ?? "0.0");\n"
        s += "      for (long j = 0; j < \(kernel); ++j) {\n        long i = t + j;\n"
        s += "        double r = i < \(history) ? \(pastValue) : \(scalar.load("X", "plane * \(length) + i - \(history)"));\n"
        s += "        acc += \(scalar.load("W", "ch * \(kernel) + j")) * r;\n      }\n"
        if silu { s += "      { double v = (double)(float)acc; acc = v / (1.0 + exp(-v)); }\n" }
        s += "      \(scalar.store("Y", "u", "acc"))\n"
        s += "    } else {\n"
        s += "      long v = u - \(planes * length), plane = v / \(max(history, 1)), i = \(length) + v % \(max(history, 1));\n"
        s += "      double r = i < \(history) ? \(pastValue) : \(scalar.load("X", "plane * \(length) + i - \(history)"));\n"
        s += "      \(scalar.store("S", "v", "r"))\n"
        s += "    }\n  }\n}\n"
        return s
    }
}

extension CPUKernelLibrary {
    /// Sets every element of the output to zero (the first step of MaxUnpool). Parallel range:
    /// the element count. Arguments: Y.
    static func zeroFill(name: String, scalar: CScalar) -> String {
        "// \(name): zero fill\nvoid \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n" + scalar.pointer("Y", 0, const: false)
            + "  for (long u = begin; u < end; ++u) Y[u] = 0;\n}\n"
    }

    /// MaxUnpool's scatter: element u of X goes to the flat position I[u] of the unpooled shape
    /// `unpooled`, placed at the origin of `output` (positions outside it, or out of range, are
    /// dropped: a plan cannot report the interpreter's error). Parallel range: X's element count.
    /// Arguments: X, I (int64), Y (zero-filled before).
    static func unpoolScatter(name: String, scalar: CScalar, unpooled: [Int], output: [Int]) -> String {
        let total = unpooled.reduce(1, *), outStrides = CPUPlanBuilder.Generator.rowMajorStrides(output)
        var s = "// \(name): max unpool scatter into \(unpooled) at the origin of \(output)\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n" + scalar.pointer("X", 0)
        s += "  GLMC_GLOBAL const int64_t *I = (GLMC_GLOBAL const int64_t *)args[1];\n" + scalar.pointer("Y", 2, const: false)
        s += "  for (long u = begin; u < end; ++u) {\n    int64_t t = I[u];\n    if (t < 0 || t >= \(total)) continue;\n"
        s += unravelCode("(long)t", sizes: unpooled)
        let inside = unpooled.indices.filter { output[$0] < unpooled[$0] }.map { "o\($0) >= \(output[$0])" }
        if !inside.isEmpty { s += "    if (\(inside.joined(separator: " || "))) continue;\n" }
        s += "    Y[\(unpooled.indices.map { "o\($0) * \(outStrides[$0])" }.joined(separator: " + "))] = X[u];\n"
        return s + "  }\n}\n"
    }
}

extension CPUKernelLibrary {
    /// DeformConv, 2-D: per output element the bias plus, for each input channel of its group and
    /// kernel tap, the weight times the input sampled bilinearly (zero outside) at the tap's
    /// position moved by its offset, times the mask; all in double, as the interpreter.
    /// Parallel range: N·M·OH·OW. Arguments: X, W, offset, [B], [mask], Y.
    static func deformConvolution(name: String, _ g: ConvolutionShape, offsetGroups: Int, scalar: CScalar, bias: Bool, mask: Bool) -> String {
        let (ih, iw) = (g.inSpatial[0], g.inSpatial[1]), (oh, ow) = (g.outSpatial[0], g.outSpatial[1])
        let (kh, kw) = (g.kernel[0], g.kernel[1]), taps = kh * kw, plane = oh * ow
        let cg = g.inChannels / g.group, mg = g.outChannels / g.group, perOffsetGroup = g.inChannels / offsetGroups
        var s = "// \(name): deform conv [\(g.batch),\(g.inChannels),\(ih),\(iw)] -> [\(g.batch),\(g.outChannels),\(oh),\(ow)] kernel \(kh)x\(kw)\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n" + scalar.pointer("X", 0) + scalar.pointer("W", 1) + scalar.pointer("O", 2)
        var next = 3
        if bias { s += scalar.pointer("B", next); next += 1 }
        if mask { s += scalar.pointer("K", next); next += 1 }
        s += scalar.pointer("Y", next, const: false)
        s += "  for (long u = begin; u < end; ++u) {\n"
        s += "    long p = u % \(plane), m = u / \(plane) % \(g.outChannels), n = u / \(plane * g.outChannels), g = m / \(mg);\n"
        s += "    long oy = p / \(ow), ox = p % \(ow);\n"
        s += "    double acc = \(bias ? scalar.load("B", "m") : "0.0");\n"
        s += "    for (long c = 0; c < \(cg); ++c) {\n"
        s += "      long ic = g * \(cg) + c, og = ic / \(perOffsetGroup), xBase = (n * \(g.inChannels) + ic) * \(ih * iw);\n"
        s += "      for (long kf = 0; kf < \(taps); ++kf) {\n"
        s += "        long tap = (n * \(offsetGroups) + og) * \(taps) + kf;\n"
        s += "        double h = (double)(oy * \(g.strides[0]) - \(g.padBegin[0]) + kf / \(kw) * \(g.dilations[0])) + \(scalar.load("O", "tap * \(2 * plane) + p"));\n"
        s += "        double w = (double)(ox * \(g.strides[1]) - \(g.padBegin[1]) + kf % \(kw) * \(g.dilations[1])) + \(scalar.load("O", "tap * \(2 * plane) + \(plane) + p"));\n"
        s += "        double v = 0.0;\n"
        s += "        if (isfinite(h) && isfinite(w) && h > -1.0 && w > -1.0 && h < \(ih).0 && w < \(iw).0) {\n"
        s += "          double h0 = floor(h), w0 = floor(w), fh = h - h0, fw = w - w0;\n"
        s += "          for (long dy = 0; dy < 2; ++dy) {\n"
        s += "            long yy = (long)h0 + dy; double wy = dy == 0 ? 1.0 - fh : fh;\n"
        s += "            if (yy < 0 || yy >= \(ih) || wy == 0.0) continue;\n"
        s += "            for (long dx = 0; dx < 2; ++dx) {\n"
        s += "              long xx = (long)w0 + dx; double wx = dx == 0 ? 1.0 - fw : fw;\n"
        s += "              if (xx < 0 || xx >= \(iw) || wx == 0.0) continue;\n"
        s += "              v += wy * wx * \(scalar.load("X", "xBase + yy * \(iw) + xx"));\n"
        s += "            }\n          }\n"
        if mask { s += "          v *= \(scalar.load("K", "tap * \(plane) + p"));\n" }
        s += "        }\n"
        s += "        acc += \(scalar.load("W", "(m * \(cg) + c) * \(taps) + kf")) * v;\n"
        s += "      }\n    }\n"
        s += "    \(scalar.store("Y", "u", "acc"))\n  }\n}\n"
        return s
    }
}
