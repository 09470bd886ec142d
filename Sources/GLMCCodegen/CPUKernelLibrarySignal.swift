/// The DFT and STFT kernel: each output bin is the direct sum of its sequence times the twiddle
/// factors, in double, the twiddles (cos and sin of 2πj/n, computed at convert time as the
/// interpreter computes them) read from a weight. The interpreter uses FFTs where they pay; the
/// direct sum gives the same values to well below float precision, at O(n) work per bin.
extension CPUKernelLibrary {
    struct FourierSpec {
        var element: CScalar
        /// Units of work: outer x bins x inner; unit u = (o * bins + k) * inner + i.
        var outer: Int, bins: Int, inner: Int
        /// Transform length and the sequence elements read (the rest is zero padding).
        var length: Int, used: Int
        /// Input components per element (1 real, 2 complex); output components (2, or 1 for an IRFFT).
        var inComponents: Int, outComponents: Int
        /// Where sequence o, i starts: (o / framesPerOuter) * outerStride + (o % framesPerOuter) *
        /// frameStride + i * inComponents; element j is `jStride` further per j.
        var framesPerOuter: Int, outerStride: Int, frameStride: Int, jStride: Int
        var inverse: Bool
        /// Inverse of a one-sided spectrum: the other half is rebuilt as the conjugate mirror.
        var irfft: Bool
        var hasWindow: Bool
    }

    /// Parallel range: outer * bins * inner. Arguments: X, twiddles (f64 [2, length]: cosines then
    /// sines), [window], Y.
    static func fourier(name: String, _ p: FourierSpec) -> String {
        let e = p.element, n = p.length
        var s = "// \(name): \(p.inverse ? "inverse " : "")dft of length \(n), \(p.outer) x \(p.bins) x \(p.inner) bins\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        s += e.pointer("X", 0)
        s += "  GLMC_GLOBAL const double *T = (GLMC_GLOBAL const double *)args[1];\n"
        if p.hasWindow { s += e.pointer("Wn", 2) }
        s += e.pointer("Y", p.hasWindow ? 3 : 2, const: false)
        s += "  for (long u = begin; u < end; ++u) {\n"
        s += "    long i = u % \(p.inner), k = (u / \(p.inner)) % \(p.bins), o = u / \(p.inner * p.bins);\n"
        s += "    long base = (o / \(p.framesPerOuter)) * \(p.outerStride) + (o % \(p.framesPerOuter)) * \(p.frameStride) + i * \(p.inComponents);\n"
        s += "    double sr = 0.0, si = 0.0;\n"
        s += "    long t = 0;\n"
        s += "    for (long j = 0; j < \(n); ++j) {\n"
        s += "      long jj = j;\n      double xr = 0.0, xi = 0.0, c, sn;\n"
        if p.irfft { s += "      if (j > \(n / 2)) jj = \(n) - j;\n" }
        s += "      if (jj < \(p.used)) {\n"
        s += "        xr = \(e.load("X", "base + jj * \(p.jStride)"));\n"
        if p.inComponents == 2 { s += "        xi = \(e.load("X", "base + jj * \(p.jStride) + 1"));\n" }
        if p.hasWindow {
            s += "        xr = xr * \(e.load("Wn", "jj"));\n"
            if p.inComponents == 2 { s += "        xi = xi * \(e.load("Wn", "jj"));\n" }
        }
        s += "      }\n"
        if p.irfft {
            // The DC and Nyquist bins are real; the mirrored half is conjugated.
            s += "      if (jj == 0\(n % 2 == 0 ? " || jj == \(n / 2)" : "")) xi = 0.0;\n"
            s += "      if (j > \(n / 2)) xi = -xi;\n"
        }
        s += "      c = T[t]; sn = \(p.inverse ? "" : "-")T[\(n) + t];\n"
        s += "      sr += xr * c - xi * sn;\n      si += xr * sn + xi * c;\n"
        s += "      t += k;\n      while (t >= \(n)) t -= \(n);\n"
        s += "    }\n"
        if p.inverse { s += "    sr = sr * (1.0 / \(n).0); si = si * (1.0 / \(n).0);\n" }
        s += "    \(e.store("Y", "u * \(p.outComponents)", "sr"))\n"
        if p.outComponents == 2 { s += "    \(e.store("Y", "u * 2 + 1", "si"))\n" }
        s += "  }\n}\n"
        return s
    }
}
