/// Hand-written kernels, with every shape baked in as a constant, in the portable subset of C99
/// that every `PlanTarget`'s prelude maps onto its language (see `PlanTarget`).
///
/// Every kernel has the plan's uniform ABI (a GPU entry point calls it for one unit):
///
///     void NAME(GLMC_GLOBAL void **args, long begin, long end)
///
/// `args` holds pointers to the step's buffers and weights in the step's argument order (inputs
/// first, the output last); `[begin, end)` is a slice of the step's parallel range (the plan step's
/// `launch["range"]`), so a runtime may split the range across threads. All tensors are f32,
/// row-major and contiguous.
public enum CPUKernelLibrary {
    /// An elementwise epilogue applied to each value a producer (Gemm, MatMul, Conv) computes: a C
    /// expression over the float variable `v`, applied in order.
    public enum Epilogue: Hashable, Sendable {
        case relu
        case leakyRelu(alpha: Float)
        case clip(min: Float, max: Float)
        case sigmoid
        case tanh

        func apply(_ v: String) -> String {
            switch self {
            case .relu: return "\(v) = \(v) > 0.0f ? \(v) : 0.0f;"
            case .leakyRelu(let a): return "\(v) = \(v) >= 0.0f ? \(v) : \(lit(a)) * \(v);"
            case .clip(let lo, let hi): return "\(v) = \(v) < \(lit(lo)) ? \(lit(lo)) : (\(v) > \(lit(hi)) ? \(lit(hi)) : \(v));"
            case .sigmoid: return "\(v) = 1.0f / (1.0f + expf(-\(v)));"
            case .tanh: return "\(v) = tanhf(\(v));"
            }
        }
    }

    static func lit(_ x: Float) -> String {
        if x.isInfinite { return x > 0 ? "INFINITY" : "-INFINITY" }
        if x.isNaN { return "NAN" }
        return "\(x)f"
    }

    static func epilogueCode(_ e: [Epilogue], _ v: String) -> String {
        e.map { "      " + $0.apply(v) }.joined(separator: "\n")
    }

    /// Gemm: `Y[M,N] = alpha * op(A) op(B) + beta * C`, C broadcast to [M,N] (strides 0 where its
    /// size is 1). Parallel range: M*N output elements. Arguments: A, B, [C], Y.
    public static func gemm(name: String, m: Int, n: Int, k: Int, transA: Bool, transB: Bool, alpha: Float, beta: Float,
                            bias: (rowStride: Int, colStride: Int)?, epilogue: [Epilogue]) -> String {
        let aIndex = transA ? "p * \(m) + r" : "r * \(k) + p"
        let bIndex = transB ? "c * \(k) + p" : "p * \(n) + c"
        let y = bias == nil ? "args[2]" : "args[3]"
        var s = "// \(name): gemm \(m)x\(k) * \(k)x\(n)\(transA ? " transA" : "")\(transB ? " transB" : "")\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        s += "  GLMC_GLOBAL const float *A = (GLMC_GLOBAL const float *)args[0];\n  GLMC_GLOBAL const float *B = (GLMC_GLOBAL const float *)args[1];\n"
        if bias != nil { s += "  GLMC_GLOBAL const float *C = (GLMC_GLOBAL const float *)args[2];\n" }
        s += "  GLMC_GLOBAL float *Y = (GLMC_GLOBAL float *)\(y);\n"
        s += "  for (long i = begin; i < end; ++i) {\n"
        s += "    long r = i / \(n), c = i % \(n);\n"
        s += "    float acc = 0.0f;\n"
        s += "    for (long p = 0; p < \(k); ++p) acc += A[\(aIndex)] * B[\(bIndex)];\n"
        s += "    float v = \(alpha == 1 ? "acc" : "\(lit(alpha)) * acc");\n"
        if let bias {
            let ci = "r * \(bias.rowStride) + c * \(bias.colStride)"
            s += "    v += \(beta == 1 ? "C[\(ci)]" : "\(lit(beta)) * C[\(ci)]");\n"
        }
        if !epilogue.isEmpty { s += "    {\n" + epilogueCode(epilogue, "v") + "\n    }\n" }
        s += "    Y[i] = v;\n  }\n}\n"
        return s
    }

    /// 2-D convolution, NCHW, with groups, pads, strides and dilations. Parallel range: N*M output
    /// planes. Arguments: X, W, [B], Y.
    ///
    /// Per output plane: start from the bias, then for each input channel and kernel tap add
    /// `w * x` over the output columns whose input column is inside the image (the range is computed
    /// once per tap, so the inner loop has no bounds checks and walks memory with the stride), then
    /// apply the epilogue.
    public static func conv2d(name: String, n: Int, c: Int, h: Int, w: Int, m: Int, oh: Int, ow: Int,
                              kh: Int, kw: Int, group: Int, padTop: Int, padLeft: Int,
                              strideH: Int, strideW: Int, dilationH: Int, dilationW: Int,
                              hasBias: Bool, epilogue: [Epilogue]) -> String {
        let cg = c / group, mg = m / group
        var s = "// \(name): conv2d [\(n),\(c),\(h),\(w)] -> [\(n),\(m),\(oh),\(ow)] kernel \(kh)x\(kw) group \(group)\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        s += "  GLMC_GLOBAL const float *X = (GLMC_GLOBAL const float *)args[0];\n  GLMC_GLOBAL const float *W = (GLMC_GLOBAL const float *)args[1];\n"
        if hasBias { s += "  GLMC_GLOBAL const float *B = (GLMC_GLOBAL const float *)args[2];\n" }
        s += "  GLMC_GLOBAL float *Y = (GLMC_GLOBAL float *)args[\(hasBias ? 3 : 2)];\n"
        s += "  for (long plane = begin; plane < end; ++plane) {\n"
        s += "    long b = plane / \(m), oc = plane % \(m), g = oc / \(mg);\n"
        s += "    GLMC_GLOBAL float *y = Y + plane * \(oh * ow);\n"
        s += "    float init = \(hasBias ? "B[oc]" : "0.0f");\n"
        s += "    for (long j = 0; j < \(oh * ow); ++j) y[j] = init;\n"
        s += "    for (long ic = 0; ic < \(cg); ++ic) {\n"
        s += "      GLMC_GLOBAL const float *x = X + (b * \(c) + g * \(cg) + ic) * \(h * w);\n"
        s += "      GLMC_GLOBAL const float *wk = W + (oc * \(cg) + ic) * \(kh * kw);\n"
        s += "      for (long ky = 0; ky < \(kh); ++ky) {\n"
        s += "        for (long kx = 0; kx < \(kw); ++kx) {\n"
        s += "          float wv = wk[ky * \(kw) + kx];\n"
        s += "          long shift = kx * \(dilationW) - \(padLeft);\n"
        // ox * strideW + shift in [0, w): ox in [lo, hi).
        s += "          long lo = shift >= 0 ? 0 : (-shift + \(strideW - 1)) / \(strideW);\n"
        s += "          long hi = \(w) - shift <= 0 ? 0 : (\(w) - shift + \(strideW - 1)) / \(strideW);\n"
        s += "          if (hi > \(ow)) hi = \(ow);\n"
        s += "          for (long oy = 0; oy < \(oh); ++oy) {\n"
        s += "            long iy = oy * \(strideH) - \(padTop) + ky * \(dilationH);\n"
        s += "            if (iy < 0 || iy >= \(h)) continue;\n"
        s += "            GLMC_GLOBAL const float *restrict xr = x + iy * \(w) + shift;\n"
        s += "            GLMC_GLOBAL float *restrict yr = y + oy * \(ow);\n"
        s += "            for (long ox = lo; ox < hi; ++ox) yr[ox] += wv * xr[ox * \(strideW)];\n"
        s += "          }\n        }\n      }\n    }\n"
        if !epilogue.isEmpty {
            s += "    for (long j = 0; j < \(oh * ow); ++j) {\n      float v = y[j];\n"
            s += epilogueCode(epilogue, "v") + "\n      y[j] = v;\n    }\n"
        }
        s += "  }\n}\n"
        return s
    }

    /// 2-D average pooling, NCHW (MaxPool: `CPUKernelPlaneWindow`). Parallel range: N*C planes.
    /// Arguments: X, Y.
    public static func averagePool2d(name: String, planes: Int, h: Int, w: Int, oh: Int, ow: Int,
                                     kh: Int, kw: Int, padTop: Int, padLeft: Int, strideH: Int, strideW: Int,
                                     dilationH: Int, dilationW: Int, countIncludePad: Bool) -> String {
        var s = "// \(name): average pool [\(planes) planes, \(h)x\(w)] -> \(oh)x\(ow), kernel \(kh)x\(kw)\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        s += "  GLMC_GLOBAL const float *X = (GLMC_GLOBAL const float *)args[0];\n  GLMC_GLOBAL float *Y = (GLMC_GLOBAL float *)args[1];\n"
        s += "  for (long plane = begin; plane < end; ++plane) {\n"
        s += "    GLMC_GLOBAL const float *x = X + plane * \(h * w);\n    GLMC_GLOBAL float *y = Y + plane * \(oh * ow);\n"
        s += "    for (long oy = 0; oy < \(oh); ++oy) {\n      for (long ox = 0; ox < \(ow); ++ox) {\n"
        s += "        float acc = 0.0f; long count = 0;\n"
        s += "        for (long ky = 0; ky < \(kh); ++ky) {\n"
        s += "          long iy = oy * \(strideH) - \(padTop) + ky * \(dilationH);\n"
        s += "          for (long kx = 0; kx < \(kw); ++kx) {\n"
        s += "            long ix = ox * \(strideW) - \(padLeft) + kx * \(dilationW);\n"
        if countIncludePad {
            // Padding counts, but positions past the padded input (ceil_mode) do not.
            s += "            if (iy < -\(padTop) || iy >= \(h + padTop) || ix < -\(padLeft) || ix >= \(w + padLeft)) continue;\n"
            s += "            ++count;\n"
            s += "            if (iy < 0 || iy >= \(h) || ix < 0 || ix >= \(w)) continue;\n"
            s += "            acc += x[iy * \(w) + ix];\n"
        } else {
            s += "            if (iy < 0 || iy >= \(h) || ix < 0 || ix >= \(w)) continue;\n"
            s += "            acc += x[iy * \(w) + ix]; ++count;\n"
        }
        s += "          }\n        }\n"
        s += "        y[oy * \(ow) + ox] = count > 0 ? acc / (float)count : 0.0f;\n"
        s += "      }\n    }\n  }\n}\n"
        return s
    }

    /// GlobalAveragePool: the mean of each plane. Parallel range: N*C planes. Arguments: X, Y.
    public static func globalAveragePool(name: String, planes: Int, size: Int) -> String {
        """
        // \(name): global average pool, \(planes) planes of \(size)
        void \(name)(GLMC_GLOBAL void **args, long begin, long end) {
          GLMC_GLOBAL const float *X = (GLMC_GLOBAL const float *)args[0];
          GLMC_GLOBAL float *Y = (GLMC_GLOBAL float *)args[1];
          for (long plane = begin; plane < end; ++plane) {
            GLMC_GLOBAL const float *x = X + plane * \(size);
            float acc = 0.0f;
            for (long j = 0; j < \(size); ++j) acc += x[j];
            Y[plane] = acc / \(size).0f;
          }
        }

        """
    }

    /// A byte copy (Reshape, Flatten, Identity, Squeeze, Unsqueeze). Parallel range: the byte count.
    /// Arguments: X, Y.
    public static func copy(name: String, bytes: Int) -> String {
        """
        // \(name): copy \(bytes) bytes
        void \(name)(GLMC_GLOBAL void **args, long begin, long end) {
          memcpy((GLMC_GLOBAL char *)args[1] + begin, (GLMC_GLOBAL const char *)args[0] + begin, (size_t)(end - begin));
        }

        """
    }
}
