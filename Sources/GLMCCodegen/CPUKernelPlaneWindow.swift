/// 2-D window ops that work plane by plane, NCHW: depthwise convolution (one input channel per
/// output channel, where a GEMM would have a depth of only KH*KW, all packing) and MaxPool.
/// Parallel range: N*C planes. Arguments: X, [W, [B]], Y. Three schedules:
///
/// - **Stride 1** (`flat`): the plane is copied into a padded scratch plane `xp` (row pitch WP; the
///   padding, 0 for a convolution and -inf for a max, written once per call since planes overwrite
///   only the image), so no tap needs a bounds check, and output (oy, ox) reads `xp[j + tap offset]`
///   for `j = oy * WP + ox`: one flat loop over the whole plane (the WP - OW columns past each row
///   are computed and dropped), which vectorizes well even when rows are short (7 or 14 wide).
/// - **Strided depthwise convolution**: no copy (it would cost as much as the convolution): the
///   outputs whose taps all lie inside the plane read it in place; the border outputs check bounds
///   (`NAME_border`).
/// - **Strided MaxPool**, separable: the maximum along each input row's windows (scratch `hm`, one
///   row of OW per input row), then down the columns; in place, bounds-checked on the border. Two
///   short vectorizable passes instead of KH*KW strided loads per output.
///
/// Up to 49 taps are unrolled (a convolution's weights in registers), so each output is combined
/// in a register and stored once.
public enum CPUKernelPlaneWindow {
    public enum Operation: Sendable {
        /// Depthwise convolution: bias + sum of weight x input, then the epilogue.
        case depthwise(hasBias: Bool, epilogue: [CPUKernelLibrary.Epilogue])
        /// MaxPool: the maximum over the window (a NaN wins); a window wholly in padding gives -inf.
        case maximum
    }

    static let maximumUnrolledTaps = 49
    /// Keeps the first NaN, else the larger: `v` so far, `t` the next tap.
    static let takeMaximum = "v = t > v || t != t ? t : v;"

    /// One spatial axis of the window.
    struct Axis {
        var input: Int, output: Int, kernel: Int, pad: Int, stride: Int, dilation: Int
        /// The input index of output `o`'s tap `k`, as C.
        func index(_ o: String, _ k: String) -> String { "\(o) * \(stride) - \(pad) + \(k) * \(dilation)" }
        /// Outputs whose taps all lie inside the input.
        var interior: Range<Int> {
            let lo = min(output, (pad + stride - 1) / stride)
            let last = input - 1 - (kernel - 1) * dilation + pad
            return lo ..< (last < 0 ? lo : max(lo, min(output, last / stride + 1)))
        }
        /// The padded extent every window lies inside (the stride-1 schedule copies the input into
        /// it; so does a convolution reading its patches in place).
        var padded: Int { max(input + pad, (output - 1) * stride + (kernel - 1) * dilation + 1) }
    }

    public static func kernel(name: String, _ op: Operation, planes: Int, channels: Int, h: Int, w: Int, oh: Int, ow: Int,
                              kh: Int, kw: Int, padTop: Int, padLeft: Int, strideH: Int, strideW: Int,
                              dilationH: Int, dilationW: Int) -> String {
        let y = Axis(input: h, output: oh, kernel: kh, pad: padTop, stride: strideH, dilation: dilationH)
        let x = Axis(input: w, output: ow, kernel: kw, pad: padLeft, stride: strideW, dilation: dilationW)
        let flat = strideH == 1 && strideW == 1
        var what = "max pool", arguments = 2
        if case .depthwise(let hasBias, _) = op { what = "depthwise conv2d"; arguments = hasBias ? 4 : 3 }
        var c = "// \(name): \(what) \(planes) planes [\(h)x\(w)] -> [\(oh)x\(ow)] kernel \(kh)x\(kw)\(flat ? ", flat" : "")\n"
        if case .depthwise = op, !flat { c += depthwiseBorder(name: name, y, x) }
        c += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        c += "  GLMC_GLOBAL const float *X = (GLMC_GLOBAL const float *)args[0];\n"
        if case .depthwise(let hasBias, _) = op {
            c += "  GLMC_GLOBAL const float *W = (GLMC_GLOBAL const float *)args[1];\n"
            if hasBias { c += "  GLMC_GLOBAL const float *B = (GLMC_GLOBAL const float *)args[2];\n" }
        }
        c += "  GLMC_GLOBAL float *Y = (GLMC_GLOBAL float *)args[\(arguments - 1)];\n"
        let scratch = flat ? y.padded * x.padded + oh * x.padded : (op.isMaximum ? h * ow : 0)
        if scratch > 0 { c += "  GLMC_SCRATCH(float, xp, \(scratch), \(arguments));\n" }
        if flat { c += "  for (long q = 0; q < \(y.padded * x.padded); ++q) xp[q] = \(op.isMaximum ? "-INFINITY" : "0.0f");\n" }
        c += "  for (long plane = begin; plane < end; ++plane) {\n"
        c += "    GLMC_GLOBAL const float *x = X + plane * \(h * w);\n    GLMC_GLOBAL float *y = Y + plane * \(oh * ow);\n"
        if case .depthwise(let hasBias, _) = op {
            c += "    long ch = plane % \(channels);\n"
            c += "    GLMC_GLOBAL const float *wk = W + ch * \(kh * kw);\n"
            c += "    float init = \(hasBias ? "B[ch]" : "0.0f");\n"
            if kh * kw <= maximumUnrolledTaps { c += "    float " + (0 ..< kh * kw).map { "w\($0) = wk[\($0)]" }.joined(separator: ", ") + ";\n" }
        }
        switch (flat, op) {
        case (true, _): c += flatPlane(op, y, x)
        case (false, .depthwise): c += stridedDepthwisePlane(name: name, op, y, x)
        case (false, .maximum): c += separableMaximumPlane(y, x)
        }
        c += "  }\n" + (scratch > 0 ? "  GLMC_SCRATCH_FREE(xp);\n" : "") + "}\n"
        return c
    }

    /// `float v` = the window whose tap (ky, kx) is `source[base + ky * dilationH * pitch + kx * dilationW]`.
    static func window(_ op: Operation, _ source: String, base: String, pitch: Int, _ y: Axis, _ x: Axis, indent: String) -> String {
        let taps = y.kernel * x.kernel
        let offset = { (t: Int) in t / x.kernel * y.dilation * pitch + t % x.kernel * x.dilation }
        switch op {
        case .depthwise:
            if taps <= maximumUnrolledTaps { return indent + "float v = init" + (0 ..< taps).map { " + w\($0) * \(source)[\(base) + \(offset($0))]" }.joined() + ";\n" }
            return indent + "float v = init;\n" + indent + "for (long t = 0; t < \(taps); ++t) v += wk[t] * \(source)[\(base) + t / \(x.kernel) * \(y.dilation * pitch) + t % \(x.kernel) * \(x.dilation)];\n"
        case .maximum:
            if taps <= maximumUnrolledTaps { return indent + "float v = -INFINITY, t;" + (0 ..< taps).map { " t = \(source)[\(base) + \(offset($0))]; \(takeMaximum)" }.joined() + "\n" }
            return indent + "float v = -INFINITY;\n" + indent + "for (long k = 0; k < \(taps); ++k) { float t = \(source)[\(base) + k / \(x.kernel) * \(y.dilation * pitch) + k % \(x.kernel) * \(x.dilation)]; \(takeMaximum) }\n"
        }
    }

    static func flatPlane(_ op: Operation, _ y: Axis, _ x: Axis) -> String {
        let wp = x.padded
        var c = "    GLMC_GLOBAL float *acc = xp + \(y.padded * wp);\n"
        c += "    for (long iy = 0; iy < \(y.input); ++iy) for (long q = 0; q < \(x.input); ++q) xp[(iy + \(y.pad)) * \(wp) + \(x.pad) + q] = x[iy * \(x.input) + q];\n"
        c += "    for (long j = 0; j < \((y.output - 1) * wp + x.output); ++j) {\n" + window(op, "xp", base: "j", pitch: wp, y, x, indent: "      ") + "      acc[j] = v;\n    }\n"
        c += "    for (long oy = 0; oy < \(y.output); ++oy) for (long ox = 0; ox < \(x.output); ++ox) { float v = acc[oy * \(wp) + ox];\(op.finish) y[oy * \(x.output) + ox] = v; }\n"
        return c
    }

    /// The bounds-checked sum of a border output.
    static func depthwiseBorder(name: String, _ y: Axis, _ x: Axis) -> String {
        var c = "static inline float \(name)_border(GLMC_GLOBAL const float *x, GLMC_GLOBAL const float *wk, float init, long oy, long ox) {\n"
        c += "  float v = init;\n  for (long ky = 0; ky < \(y.kernel); ++ky) {\n"
        c += "    long iy = \(y.index("oy", "ky"));\n    if (iy < 0 || iy >= \(y.input)) continue;\n"
        c += "    for (long kx = 0; kx < \(x.kernel); ++kx) {\n      long ix = \(x.index("ox", "kx"));\n"
        c += "      if (ix >= 0 && ix < \(x.input)) v += wk[ky * \(x.kernel) + kx] * x[iy * \(x.input) + ix];\n    }\n  }\n  return v;\n}\n"
        return c
    }

    static func stridedDepthwisePlane(name: String, _ op: Operation, _ y: Axis, _ x: Axis) -> String {
        let rows = y.interior, columns = x.interior, ow = x.output
        let border = "{ float v = \(name)_border(x, wk, init, oy, ox);\(op.finish) y[oy * \(ow) + ox] = v; }"
        var c = "    for (long oy = 0; oy < \(y.output); ++oy) {\n"
        c += "      if (oy < \(rows.lowerBound) || oy >= \(rows.upperBound)) { for (long ox = 0; ox < \(ow); ++ox) \(border) continue; }\n"
        c += "      for (long ox = 0; ox < \(columns.lowerBound); ++ox) \(border)\n"
        c += "      for (long ox = \(columns.lowerBound); ox < \(columns.upperBound); ++ox) {\n"
        c += window(op, "x", base: "(\(y.index("oy", "0"))) * \(x.input) + \(x.index("ox", "0"))", pitch: x.input, y, x, indent: "        ")
        c += "       \(op.finish) y[oy * \(ow) + ox] = v;\n      }\n"
        c += "      for (long ox = \(columns.upperBound); ox < \(ow); ++ox) \(border)\n    }\n"
        return c
    }

    static func separableMaximumPlane(_ y: Axis, _ x: Axis) -> String {
        let columns = x.interior, rows = y.interior, ow = x.output
        // Along each input row: hm[iy][ox] = the maximum of row iy over output ox's columns.
        let borderColumn = "{ float v = -INFINITY; for (long kx = 0; kx < \(x.kernel); ++kx) { long ix = \(x.index("ox", "kx")); "
            + "if (ix >= 0 && ix < \(x.input)) { float t = s[ix]; \(takeMaximum) } } d[ox] = v; }"
        var c = "    GLMC_GLOBAL float *hm = xp;\n"
        c += "    for (long iy = 0; iy < \(y.input); ++iy) {\n"
        c += "      GLMC_GLOBAL const float *s = x + iy * \(x.input);\n      GLMC_GLOBAL float *d = hm + iy * \(ow);\n"
        c += "      for (long ox = 0; ox < \(columns.lowerBound); ++ox) \(borderColumn)\n"
        c += "      for (long ox = \(columns.lowerBound); ox < \(columns.upperBound); ++ox) { float v = -INFINITY, t;"
        c += (0 ..< x.kernel).map { " t = s[\(x.index("ox", "\($0)"))]; \(takeMaximum)" }.joined() + " d[ox] = v; }\n"
        c += "      for (long ox = \(columns.upperBound); ox < \(ow); ++ox) \(borderColumn)\n    }\n"
        // Down the columns of hm.
        c += "    for (long oy = 0; oy < \(y.output); ++oy) {\n"
        c += "      if (oy < \(rows.lowerBound) || oy >= \(rows.upperBound)) {\n"
        c += "        for (long ox = 0; ox < \(ow); ++ox) { float v = -INFINITY; for (long ky = 0; ky < \(y.kernel); ++ky) { long iy = \(y.index("oy", "ky")); "
        c += "if (iy >= 0 && iy < \(y.input)) { float t = hm[iy * \(ow) + ox]; \(takeMaximum) } } y[oy * \(ow) + ox] = v; }\n"
        c += "        continue;\n      }\n"
        c += "      for (long ox = 0; ox < \(ow); ++ox) { float v = -INFINITY, t;"
        c += (0 ..< y.kernel).map { " t = hm[(\(y.index("oy", "\($0)"))) * \(ow) + ox]; \(takeMaximum)" }.joined() + " y[oy * \(ow) + ox] = v; }\n    }\n"
        return c
    }
}

extension CPUKernelPlaneWindow.Operation {
    var isMaximum: Bool { if case .maximum = self { return true }; return false }
    /// The statements that finish an output `v`: a convolution's epilogue.
    var finish: String {
        guard case .depthwise(_, let epilogue) = self else { return "" }
        return epilogue.map { " " + $0.apply("v") }.joined()
    }
}
