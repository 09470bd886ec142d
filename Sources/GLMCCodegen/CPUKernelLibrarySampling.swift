/// The GridSample kernel: per output position, the taps of each spatial dimension are found from
/// the grid at run time exactly as the interpreter's definition finds them
/// (`GLMCOps/NeuralSampling.swift`): coordinates denormalised in the grid's precision, borders
/// clamped or reflected, weights multiplied dimension after dimension and summed in double.
extension CPUKernelLibrary {
    struct GridSampleSpec {
        enum Mode { case nearest, linear, cubic }
        var mode: Mode
        /// "zeros", "border" or "reflection".
        var padding: String
        var alignCorners: Bool
        var element: CScalar
        /// The grid's type: f64 grids are denormalised in double, others in float32.
        var gridIsDouble: Bool
        var batch: Int, channels: Int
        /// Spatial sizes of the input; positions of the output plane.
        var inputDims: [Int]
        var outPlane: Int
    }

    static let gridSampleHelpers = """
    #ifndef GLMC_GRID_SAMPLE
    #define GLMC_GRID_SAMPLE
    /* Reflects x into [lo, hi] by folding at the borders. */
    static inline double glmc_gs_reflect(double x, double lo, double hi) {
      double range = hi - lo, dx, n, r;
      if (!(range > 0.0)) return lo;
      if (x < lo) { dx = lo - x; n = trunc(dx / range); r = dx - n * range; return fmod(n, 2.0) == 0.0 ? lo + r : hi - r; }
      if (x > hi) { dx = x - hi; n = trunc(dx / range); r = dx - n * range; return fmod(n, 2.0) == 0.0 ? hi - r : lo + r; }
      return x;
    }
    #endif

    """

    /// Parallel range: batch * output positions (each unit computes every channel of its
    /// position). Arguments: X, grid, Y.
    static func gridSample(name: String, _ p: GridSampleSpec, grid: CScalar) -> String {
        let k = p.inputDims.count, e = p.element
        let inPlane = p.inputDims.reduce(1, *)
        var strides = [Int](repeating: 1, count: k)
        for d in stride(from: k - 2, through: 0, by: -1) { strides[d] = strides[d + 1] * p.inputDims[d + 1] }
        let taps = p.mode == .cubic ? 4 : p.mode == .linear ? 2 : 1
        var s = "// \(name): grid_sample \(p.mode) \(p.padding) over \(p.inputDims), \(p.channels) channels\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        s += e.pointer("X", 0) + grid.pointer("G", 1) + e.pointer("Y", 2, const: false)
        s += "  for (long u = begin; u < end; ++u) {\n"
        s += "    long b = u / \(p.outPlane), p = u % \(p.outPlane);\n"
        for d in 0 ..< k {
            let len = p.inputDims[d]
            let lo = p.alignCorners ? "0.0" : "-0.5", hi = p.alignCorners ? "\(len - 1).0" : "\(Double(len) - 0.5)"
            s += "    long ix\(d)[\(taps)]; double wx\(d)[\(taps)]; int nx\(d) = 0;\n"
            s += "    {\n"
            let coordinate = grid.load("G", "u * \(k) + \(k - 1 - d)")
            if p.gridIsDouble {
                let g = "(\(coordinate))"
                s += "      double v = (double)(float)(\(p.alignCorners ? "(\(g) + 1.0) / 2.0 * \(len - 1).0" : "((\(g) + 1.0) * \(len).0 - 1.0) / 2.0"));\n"
            } else {
                s += "      float f = (float)\(coordinate);\n"
                s += "      double v = (double)(\(p.alignCorners ? "(f + 1.0f) / 2.0f * \(len - 1).0f" : "((f + 1.0f) * \(len).0f - 1.0f) / 2.0f"));\n"
            }
            if p.mode == .nearest { s += "      v = rint(v);\n" }
            switch p.padding {
            case "border": s += "      if (v < \(lo) || v > \(hi)) v = v < 0.0 ? 0.0 : (v > \(len - 1).0 ? \(len - 1).0 : v);\n"
            case "reflection": s += "      if (v < \(lo) || v > \(hi)) v = glmc_gs_reflect(v, \(lo), \(hi));\n"
            default: break
            }
            s += "      if (v == v && v != INFINITY && v != -INFINITY) {\n"
            s += "        double fl = floor(v), t = v - fl;\n"
            s += "        long i0 = (long)(fl < -1099511627776.0 ? -1099511627776.0 : (fl > 1099511627776.0 ? 1099511627776.0 : fl));\n"
            func tap(_ index: String, _ weight: String) -> String {
                var c = "        { long j = \(index); int ok = 1;\n"
                switch p.padding {
                case "border": c += "          if (j < 0) j = 0; if (j > \(len - 1)) j = \(len - 1);\n"
                case "reflection":
                    c += "          if (j < 0 || j >= \(len)) { j = (long)glmc_gs_reflect((double)j, \(lo), \(hi)); if (j < 0) j = 0; if (j > \(len - 1)) j = \(len - 1); }\n"
                default: c += "          if (j < 0 || j >= \(len)) ok = 0;\n"
                }
                c += "          if (ok) { ix\(d)[nx\(d)] = j; wx\(d)[nx\(d)] = \(weight); ++nx\(d); } }\n"
                return c
            }
            switch p.mode {
            case .nearest: s += tap("i0", "1.0")  // v is integral already
            case .linear: s += tap("i0", "1.0 - t") + tap("i0 + 1", "t")
            case .cubic:
                // Keys' cubic convolution weights, A = -0.75.
                let a = "(-0.75)"
                s += tap("i0 - 1", "((\(a) * (t + 1.0) - 5.0 * \(a)) * (t + 1.0) + 8.0 * \(a)) * (t + 1.0) - 4.0 * \(a)")
                s += tap("i0", "((\(a) + 2.0) * t - (\(a) + 3.0)) * t * t + 1.0")
                s += tap("i0 + 1", "((\(a) + 2.0) * (1.0 - t) - (\(a) + 3.0)) * (1.0 - t) * (1.0 - t) + 1.0")
                s += tap("i0 + 2", "((\(a) * (2.0 - t) - 5.0 * \(a)) * (2.0 - t) + 8.0 * \(a)) * (2.0 - t) - 4.0 * \(a)")
            }
            s += "      }\n    }\n"
        }
        s += "    for (long ch = 0; ch < \(p.channels); ++ch) {\n"
        s += "      long base = (b * \(p.channels) + ch) * \(inPlane);\n"
        s += "      double acc = 0.0;\n"
        var indent = "      ", weight = "1.0", offset = "base"
        for d in 0 ..< k {
            s += "\(indent)for (int a\(d) = 0; a\(d) < nx\(d); ++a\(d)) {\n"
            indent += "  "
            s += "\(indent)double q\(d) = \(weight) * wx\(d)[a\(d)];\n"
            s += "\(indent)long o\(d) = \(offset) + ix\(d)[a\(d)] * \(strides[d]);\n"
            weight = "q\(d)"; offset = "o\(d)"
        }
        s += "\(indent)acc += \(weight) * \(e.load("X", offset));\n"
        for _ in 0 ..< k { indent.removeLast(2); s += "\(indent)}\n" }
        s += "      \(e.store("Y", "(b * \(p.channels) + ch) * \(p.outPlane) + p", "acc"))\n"
        s += "    }\n  }\n}\n"
        return s
    }

    /// AffineGrid: output point p of batch b, coordinate r = Σ_j theta[b, r, j] * P[p, j], in
    /// double, P the homogeneous base point (x first, then y[, z], then 1) computed at convert time.
    /// Parallel range: batch * points. Arguments: theta, P (f64 [points, k + 1]), grid.
    static func affineGrid(name: String, element: CScalar, points: Int, k: Int) -> String {
        var s = "// \(name): affine_grid of \(points) points, \(k)-D\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        s += element.pointer("T", 0)
        s += "  GLMC_GLOBAL const double *P = (GLMC_GLOBAL const double *)args[1];\n"
        s += element.pointer("G", 2, const: false)
        s += "  for (long u = begin; u < end; ++u) {\n"
        s += "    long b = u / \(points), p = u % \(points);\n"
        s += "    for (long r = 0; r < \(k); ++r) {\n"
        s += "      double acc = 0.0;\n"
        s += "      for (long j = 0; j <= \(k); ++j) acc += \(element.load("T", "(b * \(k) + r) * \(k + 1) + j")) * P[p * \(k + 1) + j];\n"
        s += "      \(element.store("G", "u * \(k) + r", "acc"))\n"
        s += "    }\n  }\n}\n"
        return s
    }

    /// RoiAlign as the interpreter computes it (ONNX Runtime's rule): per output bin, bilinear
    /// samples on a sub-grid whose size is the sampling ratio or, when 0, found from the ROI at
    /// run time; samples more than one pixel outside the image give zero-weight taps; averaged or
    /// maxed in double. A batch index out of range or an ROI too large to sample (the
    /// interpreter's errors) gives NaN. Parallel range: ROIs * C * PH * PW.
    /// Arguments: X, rois, batch_indices, Y.
    static func roiAlign(name: String, element: CScalar, rois: CScalar, indices: CScalar, batch: Int, channels: Int,
                         height: Int, width: Int, outHeight: Int, outWidth: Int, samplingRatio: Int, spatialScale: Float,
                         halfPixel: Bool, isMax: Bool) -> String {
        let (h, w, ph, pw) = (height, width, outHeight, outWidth)
        var s = "// \(name): roi_align \(isMax ? "max" : "avg") to \(ph)x\(pw) over \(channels)x\(h)x\(w)\n"
        s += "#ifndef GLMC_ROI_MAX\n#define GLMC_ROI_MAX\nstatic inline double glmc_roi_max(double a, double b) { return b >= a ? b : a; }\n#endif\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        s += element.pointer("X", 0) + rois.pointer("R", 1) + indices.pointer("BI", 2) + element.pointer("Y", 3, const: false)
        s += "  double scale = (double)\(lit(spatialScale)), offset = \(halfPixel ? "0.5" : "0.0");\n"
        s += "  for (long u = begin; u < end; ++u) {\n"
        s += "    long roi = u / \(channels * ph * pw), ch = (u / \(ph * pw)) % \(channels), i = (u / \(pw)) % \(ph), j = u % \(pw);\n"
        s += "    long b = (long)\(indices.load("BI", "roi")), gh, gw, iy, ix;\n"
        s += "    double sw = \(rois.load("R", "roi * 4")) * scale - offset, sh = \(rois.load("R", "roi * 4 + 1")) * scale - offset;\n"
        s += "    double rw = \(rois.load("R", "roi * 4 + 2")) * scale - offset - sw, rh = \(rois.load("R", "roi * 4 + 3")) * scale - offset - sh;\n"
        s += "    double bh, bw, acc = 0.0, gd;\n"
        s += "    int first = 1;\n"
        s += "    GLMC_GLOBAL const \(element.storage) *x;\n"
        if !halfPixel { s += "    rw = 1.0 >= rw ? 1.0 : rw; rh = 1.0 >= rh ? 1.0 : rh;\n" }
        s += "    bh = rh / \(ph).0; bw = rw / \(pw).0;\n"
        if samplingRatio > 0 {
            s += "    gh = \(samplingRatio); gw = \(samplingRatio);\n"
        } else {
            // The interpreter's safeInt: non-finite to ±2^40, then clamped to ±2^40; negative to 0.
            for (v, r) in [("gh", "rh / \(ph).0"), ("gw", "rw / \(pw).0")] {
                s += "    gd = ceil(\(r));\n"
                s += "    gd = gd != gd ? -1099511627776.0 : (gd > 1099511627776.0 ? 1099511627776.0 : (gd < -1099511627776.0 ? -1099511627776.0 : gd));\n"
                s += "    \(v) = (long)gd; if (\(v) < 0) \(v) = 0;\n"
            }
        }
        s += "    if (b < 0 || b >= \(batch) || gh > 4096 || gw > 4096) { \(element.store("Y", "u", "NAN")) continue; }\n"
        s += "    x = X + (b * \(channels) + ch) * \(h * w);\n"
        s += "    for (iy = 0; iy < gh; ++iy) {\n"
        s += "      double yy = sh + (double)i * bh + ((double)iy + 0.5) * bh / (double)gh;\n"
        s += "      for (ix = 0; ix < gw; ++ix) {\n"
        s += "        double xx = sw + (double)j * bw + ((double)ix + 0.5) * bw / (double)gw;\n"
        s += "        long p1 = 0, p2 = 0, p3 = 0, p4 = 0;\n"
        s += "        double w1 = 0.0, w2 = 0.0, w3 = 0.0, w4 = 0.0, v1, v2, v3, v4;\n"
        s += "        if (yy >= -1.0 && yy <= \(h).0 && xx >= -1.0 && xx <= \(w).0) {\n"
        s += "          double y = 0.0 >= yy ? 0.0 : yy, xv = 0.0 >= xx ? 0.0 : xx, ly, lx;\n"
        s += "          long yl = (long)y, xl = (long)xv, yh, xh;\n"
        s += "          if (yl >= \(h - 1)) { yl = \(h - 1); yh = yl; y = (double)yl; } else yh = yl + 1;\n"
        s += "          if (xl >= \(w - 1)) { xl = \(w - 1); xh = xl; xv = (double)xl; } else xh = xl + 1;\n"
        s += "          ly = y - (double)yl; lx = xv - (double)xl;\n"
        s += "          p1 = yl * \(w) + xl; p2 = yl * \(w) + xh; p3 = yh * \(w) + xl; p4 = yh * \(w) + xh;\n"
        s += "          w1 = (1.0 - ly) * (1.0 - lx); w2 = (1.0 - ly) * lx; w3 = ly * (1.0 - lx); w4 = ly * lx;\n"
        s += "        }\n"
        s += "        v1 = w1 * \(element.load("x", "p1")); v2 = w2 * \(element.load("x", "p2"));\n"
        s += "        v3 = w3 * \(element.load("x", "p3")); v4 = w4 * \(element.load("x", "p4"));\n"
        if isMax {
            s += "        { double m = glmc_roi_max(glmc_roi_max(glmc_roi_max(v1, v2), v3), v4); acc = first ? m : glmc_roi_max(acc, m); first = 0; }\n"
        } else {
            s += "        acc += v1 + v2 + v3 + v4;\n"
        }
        s += "      }\n    }\n"
        s += "    (void)first;\n"
        if !isMax { s += "    acc = acc / (double)(gh * gw > 1 ? gh * gw : 1);\n" }
        s += "    \(element.store("Y", "u", "acc"))\n"
        s += "  }\n}\n"
        return s
    }
}
