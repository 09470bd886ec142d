/// 2-D window ops that work plane by plane, NCHW: depthwise convolution (one input channel per
/// output channel, where a GEMM would have a depth of only KH*KW, all packing) and MaxPool.
/// Per plane, the input is first copied into a padded scratch plane `xp` (row pitch WP; the padding
/// is 0 for a convolution, -inf for a max, written once per call since planes overwrite only the
/// image), so no tap needs a bounds check. With stride 1, output (oy, ox) reads `xp[j + tap offset]`
/// for `j = oy * WP + ox`: one flat loop over the whole plane (the WP - OW columns past each row are
/// computed and dropped), which vectorizes well even when rows are short (7 or 14 wide). A strided
/// depthwise convolution makes no copy (it would cost as much as the convolution): it reads the
/// plane in place where every tap lies inside it, and checks bounds only for the border outputs
/// (`NAME_border`). Up to 49 taps are unrolled (a convolution's weights in
/// registers), so each output is combined in a register and stored once. A strided MaxPool is
/// separable: the maximum along each padded row's windows first (scratch `hm`), then down the
/// columns, two short vectorizable passes instead of KH*KW strided loads per output; when every
/// window lies inside the image it reads the input in place, without the padded copy.
/// Parallel range: N*C planes. Arguments: X, [W, [B]], Y.
public enum CPUKernelPlaneWindow {
    public enum Operation: Sendable {
        /// Depthwise convolution: bias + sum of weight x input, then the epilogue.
        case depthwise(hasBias: Bool, epilogue: [CPUKernelLibrary.Epilogue])
        /// MaxPool: the maximum over the window (a NaN wins); a window wholly in padding gives -inf.
        case maximum
    }

    static let maximumUnrolledTaps = 49

    public static func kernel(name: String, _ op: Operation, planes: Int, channels: Int, h: Int, w: Int, oh: Int, ow: Int,
                              kh: Int, kw: Int, padTop: Int, padLeft: Int, strideH: Int, strideW: Int,
                              dilationH: Int, dilationW: Int) -> String {
        let hp = max(h + padTop, (oh - 1) * strideH + (kh - 1) * dilationH + 1)
        let wp = max(w + padLeft, (ow - 1) * strideW + (kw - 1) * dilationW + 1)
        let flat = strideH == 1 && strideW == 1
        // A strided convolution reads the input in place (pitch W) inside the image and checks
        // bounds only on its border: a padded copy would cost as much as the convolution.
        var borderChecked = false
        if case .depthwise = op, !flat { borderChecked = true }
        let pitch = borderChecked ? w : wp
        let taps = (0 ..< kh).flatMap { ky in (0 ..< kw).map { kx in (index: ky * kw + kx, offset: ky * dilationH * pitch + kx * dilationW) } }
        let unrolled = taps.count <= maximumUnrolledTaps
        var arguments = 2, finish = "", padding = "-INFINITY", what = "max pool"
        if case .depthwise(let hasBias, let epilogue) = op {
            arguments = hasBias ? 4 : 3
            finish = epilogue.map { " " + $0.apply("v") }.joined()
            padding = "0.0f"
            what = "depthwise conv2d"
        }
        /// `v` = the window at `xp[base + tap offset]` combined.
        func combine(_ base: String, indent: String) -> String {
            switch op {
            case .depthwise:
                if unrolled { return indent + "float v = init" + taps.map { " + w\($0.index) * xp[\(base) + \($0.offset)]" }.joined() + ";\n" }
                return indent + "float v = init;\n" + indent + "for (long t = 0; t < \(taps.count); ++t) v += wk[t] * xp[\(base) + t / \(kw) * \(dilationH * pitch) + t % \(kw) * \(dilationW)];\n"
            case .maximum:
                let take = "v = t > v || t != t ? t : v;"
                if unrolled { return indent + "float v = -INFINITY, t;" + taps.map { " t = xp[\(base) + \($0.offset)]; \(take)" }.joined() + "\n" }
                return indent + "float v = -INFINITY;\n" + indent + "for (long k = 0; k < \(taps.count); ++k) { float t = xp[\(base) + k / \(kw) * \(dilationH * wp) + k % \(kw) * \(dilationW)]; \(take) }\n"
            }
        }
        var c = "// \(name): \(what) \(planes) planes [\(h)x\(w)] -> [\(oh)x\(ow)] kernel \(kh)x\(kw)\(flat ? ", flat" : "")\n"
        // Outputs whose taps all lie inside the image: [oy0, oy1) x [ox0, ox1).
        func interior(_ o: Int, pad: Int, stride: Int, dilation: Int, k: Int, size: Int) -> Range<Int> {
            let lo = min(o, (pad + stride - 1) / stride)
            let last = size - 1 - (k - 1) * dilation + pad
            let hi = last < 0 ? lo : max(lo, min(o, last / stride + 1))
            return lo ..< hi
        }
        let rows = interior(oh, pad: padTop, stride: strideH, dilation: dilationH, k: kh, size: h)
        let columns = interior(ow, pad: padLeft, stride: strideW, dilation: dilationW, k: kw, size: w)
        if borderChecked {
            c += "static inline float \(name)_border(GLMC_GLOBAL const float *x, GLMC_GLOBAL const float *wk, float init, long oy, long ox) {\n"
            c += "  float v = init;\n  for (long ky = 0; ky < \(kh); ++ky) {\n"
            c += "    long iy = oy * \(strideH) - \(padTop) + ky * \(dilationH);\n    if (iy < 0 || iy >= \(h)) continue;\n"
            c += "    for (long kx = 0; kx < \(kw); ++kx) {\n      long ix = ox * \(strideW) - \(padLeft) + kx * \(dilationW);\n"
            c += "      if (ix >= 0 && ix < \(w)) v += wk[ky * \(kw) + kx] * x[iy * \(w) + ix];\n    }\n  }\n  return v;\n}\n"
        }
        c += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        c += "  GLMC_GLOBAL const float *X = (GLMC_GLOBAL const float *)args[0];\n"
        if case .depthwise(let hasBias, _) = op {
            c += "  GLMC_GLOBAL const float *W = (GLMC_GLOBAL const float *)args[1];\n"
            if hasBias { c += "  GLMC_GLOBAL const float *B = (GLMC_GLOBAL const float *)args[2];\n" }
        }
        c += "  GLMC_GLOBAL float *Y = (GLMC_GLOBAL float *)args[\(arguments - 1)];\n"
        var separable = false
        if case .maximum = op, !flat { separable = true }
        // The padded plane's rows: `xp` (pitch WP), or the input itself (pitch W) when a separable
        // max pool's windows all lie inside the image.
        let inPlace = borderChecked || (separable && padTop == 0 && padLeft == 0 && hp <= h && wp <= w)
        let plane = inPlace ? 0 : hp * wp
        if borderChecked {
            c += "  GLMC_GLOBAL const float *xp = X;\n"
        } else {
            c += "  GLMC_SCRATCH(float, xp, \(plane + (flat ? oh * wp : separable ? hp * ow : 0)), \(arguments));\n"
        }
        if flat { c += "  GLMC_GLOBAL float *acc = xp + \(hp * wp);\n" }
        if separable { c += "  GLMC_GLOBAL float *hm = xp + \(plane);\n" }
        if plane > 0 { c += "  for (long q = 0; q < \(hp * wp); ++q) xp[q] = \(padding);\n" }
        c += "  for (long plane = begin; plane < end; ++plane) {\n"
        c += "    GLMC_GLOBAL const float *x = X + plane * \(h * w);\n    GLMC_GLOBAL float *y = Y + plane * \(oh * ow);\n"
        if case .depthwise(let hasBias, _) = op {
            c += "    long ch = plane % \(channels);\n"
            c += "    GLMC_GLOBAL const float *wk = W + ch * \(kh * kw);\n"
            c += "    float init = \(hasBias ? "B[ch]" : "0.0f");\n"
            if unrolled { c += "    float " + taps.map { "w\($0.index) = wk[\($0.index)]" }.joined(separator: ", ") + ";\n" }
        }
        if plane > 0 {
            c += "    for (long iy = 0; iy < \(h); ++iy) for (long q = 0; q < \(w); ++q) xp[(iy + \(padTop)) * \(wp) + \(padLeft) + q] = x[iy * \(w) + q];\n"
        }
        if flat {
            c += "    for (long j = 0; j < \((oh - 1) * wp + ow); ++j) {\n" + combine("j", indent: "      ") + "      acc[j] = v;\n    }\n"
            c += "    for (long oy = 0; oy < \(oh); ++oy) for (long ox = 0; ox < \(ow); ++ox) { float v = acc[oy * \(wp) + ox];\(finish) y[oy * \(ow) + ox] = v; }\n"
        } else if separable {
            let take = "v = t > v || t != t ? t : v;"
            c += "    for (long r = 0; r < \(hp); ++r) {\n      GLMC_GLOBAL const float *s = \(inPlace ? "x + r * \(w)" : "xp + r * \(wp)");\n      GLMC_GLOBAL float *d = hm + r * \(ow);\n"
            c += "      for (long ox = 0; ox < \(ow); ++ox) { float v = -INFINITY, t;"
            c += (0 ..< kw).map { " t = s[ox * \(strideW) + \($0 * dilationW)]; \(take)" }.joined() + " d[ox] = v; }\n    }\n"
            c += "    for (long oy = 0; oy < \(oh); ++oy) {\n"
            c += "      for (long ox = 0; ox < \(ow); ++ox) { float v = -INFINITY, t;"
            c += (0 ..< kh).map { " t = hm[(oy * \(strideH) + \($0 * dilationH)) * \(ow) + ox]; \(take)" }.joined() + " y[oy * \(ow) + ox] = v; }\n    }\n"
        } else {
            // Depthwise, strided: xp is the plane itself.
            let border = "{ float v = \(name)_border(x, wk, init, oy, ox);\(finish) y[oy * \(ow) + ox] = v; }"
            c += "    xp = x;\n"
            c += "    for (long oy = 0; oy < \(oh); ++oy) {\n"
            c += "      if (oy < \(rows.lowerBound) || oy >= \(rows.upperBound)) { for (long ox = 0; ox < \(ow); ++ox) \(border) continue; }\n"
            c += "      for (long ox = 0; ox < \(columns.lowerBound); ++ox) \(border)\n"
            c += "      for (long ox = \(columns.lowerBound); ox < \(columns.upperBound); ++ox) {\n"
            c += combine("(oy * \(strideH) - \(padTop)) * \(w) + ox * \(strideW) - \(padLeft)", indent: "        ")
            c += "       \(finish) y[oy * \(ow) + ox] = v;\n      }\n"
            c += "      for (long ox = \(columns.upperBound); ox < \(ow); ++ox) \(border)\n    }\n"
        }
        c += borderChecked ? "  }\n}\n" : "  }\n  GLMC_SCRATCH_FREE(xp);\n}\n"
        return c
    }
}
