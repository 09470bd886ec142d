/// Kernels of QuantizeLinear, DequantizeLinear and DynamicQuantizeLinear (plan ABI, shapes and
/// types baked in). They follow the interpreter's definitions in `GLMCOps/ElementwiseQuantize.swift`
/// step by step, in the same precision: a value rounded to float32 where the ONNX reference computes
/// in float32 can land on the other side of a rounding boundary than one kept in double.
extension CPUKernelLibrary {
    /// QuantizeLinear: `y = saturate(round_half_even(x / scale) + zero_point)`, the quotient
    /// rounded to `division` first. `scaleIndex` / `zeroIndex`: C expressions of the element number
    /// `i` giving the parameter's element. Parallel range: the element count.
    /// Arguments: X, scale, [zero point], Y.
    static func quantizeLinear(name: String, x: CScalar, scale: CScalar, zero: CScalar?, y: CScalar, division: CScalar,
                               scaleIndex: String, zeroIndex: String?) -> String {
        let (low, high) = y.range
        var s = "// \(name): quantize_linear \(x.dtype) to \(y.dtype), divided in \(division.dtype)\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        s += x.pointer("X", 0) + scale.pointer("S", 1)
        if let zero { s += zero.pointer("Z", 2) }
        s += y.pointer("Y", zero == nil ? 2 : 3, const: false)
        s += "  for (long i = begin; i < end; ++i) {\n"
        s += "    double q = rint(\(division.round("\(x.load("X", "i")) / \(scale.load("S", scaleIndex))")));\n"
        if let zero, let zeroIndex { s += "    q += \(zero.load("Z", zeroIndex));\n" }
        s += "    if (q != q) q = \(low);\n"
        s += "    if (q < \(low)) q = \(low);\n    if (q > \(high)) q = \(high);\n"
        s += "    \(y.store("Y", "i", "q"))\n"
        s += "  }\n}\n"
        return s
    }

    /// DequantizeLinear: `y = (x - zero_point) * scale`, each step rounded to `step` (float32, or
    /// double for 32-bit data with a zero point or a double scale). Parallel range: the element
    /// count. Arguments: X, scale, [zero point], Y.
    static func dequantizeLinear(name: String, x: CScalar, scale: CScalar, zero: CScalar?, y: CScalar, step: CScalar,
                                 scaleIndex: String, zeroIndex: String?) -> String {
        var s = "// \(name): dequantize_linear \(x.dtype) to \(y.dtype), computed in \(step.dtype)\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        s += x.pointer("X", 0) + scale.pointer("S", 1)
        if let zero { s += zero.pointer("Z", 2) }
        s += y.pointer("Y", zero == nil ? 2 : 3, const: false)
        s += "  for (long i = begin; i < end; ++i) {\n"
        // The reference reads the quantized value as float32 first (exact up to 24 bits).
        s += "    double d = (double)(float)\(x.load("X", "i"));\n"
        if let zero, let zeroIndex { s += "    d = \(step.round("d - \(zero.load("Z", zeroIndex))"));\n" }
        s += "    d = \(step.round("d * \(scale.load("S", scaleIndex))"));\n"
        s += "    \(y.store("Y", "i", "d"))\n"
        s += "  }\n}\n"
        return s
    }

    /// DynamicQuantizeLinear, first step: the scale and zero point of float32 data from its range
    /// widened to include 0 (NaNs ignored), in float32. One unit of work reads all `count` elements.
    /// Arguments: X, scale (f32[]), zero point (u8[]).
    static func dynamicQuantizeParameters(name: String, count: Int) -> String {
        """
        // \(name): dynamic_quantize_parameters of \(count) elements
        void \(name)(GLMC_GLOBAL void **args, long begin, long end) {
          GLMC_GLOBAL const float *X = (GLMC_GLOBAL const float *)args[0];
          GLMC_GLOBAL float *S = (GLMC_GLOBAL float *)args[1];
          GLMC_GLOBAL unsigned char *Z = (GLMC_GLOBAL unsigned char *)args[2];
          float lo = 0.0f, hi = 0.0f, s, z;
          if (begin >= end) return;
          for (long i = 0; i < \(count); ++i) { float v = X[i]; if (v < lo) lo = v; if (v > hi) hi = v; }
          s = (hi == lo ? 1.0f : hi - lo) / 255.0f;
          z = 0.0f - lo / s;
          z = z != z ? 0.0f : rintf(z < 0.0f ? 0.0f : (z > 255.0f ? 255.0f : z));
          S[0] = s;
          Z[0] = (unsigned char)z;
        }

        """
    }

    /// DynamicQuantizeLinear, second step: `y = saturate(round_half_even(x / scale) + zero_point)`
    /// in float32, NaN to 0. Parallel range: the element count. Arguments: X, scale, zero point, Y.
    static func dynamicQuantize(name: String) -> String {
        """
        // \(name): dynamic_quantize f32 to u8
        void \(name)(GLMC_GLOBAL void **args, long begin, long end) {
          GLMC_GLOBAL const float *X = (GLMC_GLOBAL const float *)args[0];
          GLMC_GLOBAL const float *S = (GLMC_GLOBAL const float *)args[1];
          GLMC_GLOBAL const unsigned char *Z = (GLMC_GLOBAL const unsigned char *)args[2];
          GLMC_GLOBAL unsigned char *Y = (GLMC_GLOBAL unsigned char *)args[3];
          float s = S[0], z = (float)Z[0];
          for (long i = begin; i < end; ++i) {
            float q = rintf(X[i] / s) + z;
            Y[i] = q != q ? 0 : (unsigned char)(q < 0.0f ? 0.0f : (q > 255.0f ? 255.0f : q));
          }
        }

        """
    }

    /// QLinearMatMul with per-tensor parameters: `y = saturate(round_half_even(acc * a_scale *
    /// b_scale / y_scale) + y_zero_point)`, `acc` the exact integer product of the operands minus
    /// their zero points, the scale and rounding in double as the interpreter computes them.
    /// `aBatched` / `bBatched`: whether the operand has the batch dimensions (else it is shared).
    /// Parallel range: batch * M * N. Arguments: A, a_scale, [a_zero_point], B, b_scale,
    /// [b_zero_point], y_scale, y_zero_point, Y.
    static func qLinearMatMul(name: String, a: CScalar, b: CScalar, y: CScalar, aScale: CScalar, bScale: CScalar, yScale: CScalar,
                              hasAZero: Bool, hasBZero: Bool, m: Int, k: Int, n: Int, aBatched: Bool, bBatched: Bool) -> String {
        let (low, high) = y.range
        var s = "// \(name): qlinear_matmul \(m)x\(k) * \(k)x\(n)\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        var next = 0
        func arg(_ scalar: CScalar, _ label: String, const: Bool = true) -> String {
            defer { next += 1 }
            return scalar.pointer(label, next, const: const)
        }
        s += arg(a, "A") + arg(aScale, "SA")
        if hasAZero { s += arg(a, "ZA") }
        s += arg(b, "B") + arg(bScale, "SB")
        if hasBZero { s += arg(b, "ZB") }
        s += arg(yScale, "SY") + arg(y, "ZY") + arg(y, "Y", const: false)
        s += "  double scale = \(k == 0 ? "0.0" : "\(aScale.load("SA", "0")) * \(bScale.load("SB", "0")) / \(yScale.load("SY", "0"))");\n"
        s += "  int64_t za = \(hasAZero ? "(int64_t)ZA[0]" : "0"), zb = \(hasBZero ? "(int64_t)ZB[0]" : "0");\n"
        s += "  for (long i = begin; i < end; ++i) {\n"
        s += "    long bt = i / \(m * n), r = (i / \(n)) % \(m), c = i % \(n);\n"
        s += "    GLMC_GLOBAL const \(a.storage) *ar = A + \(aBatched ? "bt * \(m * k) + " : "")r * \(k);\n"
        s += "    GLMC_GLOBAL const \(b.storage) *bc = B + \(bBatched ? "bt * \(k * n) + " : "")c;\n"
        s += "    int64_t acc = 0;\n"
        s += "    double q;\n"
        s += "    for (long p = 0; p < \(k); ++p) acc += ((int64_t)ar[p] - za) * ((int64_t)bc[p * \(n)] - zb);\n"
        s += "    q = rint((double)acc * scale) + (double)ZY[0];\n"
        s += "    if (q < \(low)) q = \(low);\n    if (q > \(high)) q = \(high);\n"
        s += "    \(y.store("Y", "i", "q"))\n"
        s += "  }\n}\n"
        return s
    }

    /// QLinearConv, 2-D NCHW: `acc` = bias + the exact integer convolution of the operands minus
    /// their zero points (padding contributes 0), then `y = saturate(round_half_even(acc * scale +
    /// y_zero_point))` with `scale = x_scale * w_scale / y_scale` formed in float32, as the
    /// interpreter does. `perChannelScale` / `perChannelZero`: w's parameters per output channel.
    /// Parallel range: N * M * OH * OW. Arguments: X, x_scale, [x_zero_point], W, w_scale,
    /// [w_zero_point], y_scale, [y_zero_point], [B], Y.
    static func qLinearConv(name: String, x: CScalar, w: CScalar, y: CScalar, scales: (x: CScalar, w: CScalar, y: CScalar),
                            has: (xZero: Bool, wZero: Bool, yZero: Bool, bias: Bool), perChannelScale: Bool, perChannelZero: Bool,
                            shape: (c: Int, h: Int, w: Int, m: Int, oh: Int, ow: Int, kh: Int, kw: Int, group: Int),
                            pads: [Int], strides: [Int], dilations: [Int]) -> String {
        let (low, high) = y.range, g = shape
        let cg = g.c / g.group, mg = g.m / g.group
        var s = "// \(name): qlinear_conv \(g.c)x\(g.h)x\(g.w) -> \(g.m)x\(g.oh)x\(g.ow), kernel \(g.kh)x\(g.kw), group \(g.group)\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        var next = 0
        func arg(_ scalar: CScalar, _ label: String, const: Bool = true) -> String {
            defer { next += 1 }
            return scalar.pointer(label, next, const: const)
        }
        s += arg(x, "X") + arg(scales.x, "SX")
        if has.xZero { s += arg(x, "ZX") }
        s += arg(w, "W") + arg(scales.w, "SW")
        if has.wZero { s += arg(w, "ZW") }
        s += arg(scales.y, "SY")
        if has.yZero { s += arg(y, "ZY") }
        if has.bias { s += arg(CScalar(.i32)!, "B") }
        s += arg(y, "Y", const: false)
        s += "  float sx = (float)\(scales.x.load("SX", "0")), sy = (float)\(scales.y.load("SY", "0"));\n"
        s += "  int64_t zx = \(has.xZero ? "(int64_t)ZX[0]" : "0");\n"
        s += "  double zy = \(has.yZero ? "(double)ZY[0]" : "0.0");\n"
        s += "  for (long i = begin; i < end; ++i) {\n"
        s += "    long ox = i % \(g.ow), oy = (i / \(g.ow)) % \(g.oh), m = (i / \(g.oh * g.ow)) % \(g.m), n = i / \(g.m * g.oh * g.ow);\n"
        s += "    long c0 = (m / \(mg)) * \(cg);\n"
        s += "    int64_t zw = \(has.wZero ? "(int64_t)ZW[\(perChannelZero ? "m" : "0")]" : "0");\n"
        s += "    int64_t acc = \(has.bias ? "(int64_t)B[m]" : "0");\n"
        s += "    double scale, q;\n"
        s += "    for (long c = 0; c < \(cg); ++c) for (long ky = 0; ky < \(g.kh); ++ky) {\n"
        s += "      long iy = oy * \(strides[0]) - \(pads[0]) + ky * \(dilations[0]);\n"
        s += "      if (iy < 0 || iy >= \(g.h)) continue;\n"
        s += "      for (long kx = 0; kx < \(g.kw); ++kx) {\n"
        s += "        long ix = ox * \(strides[1]) - \(pads[1]) + kx * \(dilations[1]);\n"
        s += "        if (ix < 0 || ix >= \(g.w)) continue;\n"
        s += "        acc += ((int64_t)X[((n * \(g.c) + c0 + c) * \(g.h) + iy) * \(g.w) + ix] - zx) * ((int64_t)W[((m * \(cg) + c) * \(g.kh) + ky) * \(g.kw) + kx] - zw);\n"
        s += "      }\n    }\n"
        s += "    scale = (double)(sx * (float)\(scales.w.load("SW", perChannelScale ? "m" : "0")) / sy);\n"
        s += "    q = rint((double)acc * scale + zy);\n"
        s += "    if (q < \(low)) q = \(low);\n    if (q > \(high)) q = \(high);\n"
        s += "    \(y.store("Y", "i", "q"))\n"
        s += "  }\n}\n"
        return s
    }
}
