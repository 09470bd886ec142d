/// The DFT and STFT kernel: each output bin is the direct sum of its sequence times the twiddle
/// factors, in double, the twiddles (cos and sin of 2πj/n, computed at convert time as the
/// interpreter computes them) read from a weight. The interpreter uses FFTs where they pay; the
/// direct sum gives the same values to well below float precision, at O(n) work per bin.
extension CPUKernelLibrary {
    /// Where one transform's sequences lie and what it produces. Units of work: outer x bins x
    /// inner; unit u = (o * bins + k) * inner + i.
    struct FourierGeometry {
        var inner: Int, bins: Int
        /// Transform length and the sequence elements read (the rest is zero padding).
        var length: Int, used: Int
        /// Sequence o, i starts at (o / framesPerOuter) * outerStride + (o % framesPerOuter) *
        /// frameStride + i * inComponents; element j is `jStride` further per j.
        var outerStride: Int, jStride: Int
        /// The first twiddle of this length in the twiddle weight (cosines, then sines).
        var twiddleBase: Int
    }

    struct FourierSpec {
        var element: CScalar
        /// Input components per element (1 real, 2 complex); output components (2, or 1 for an IRFFT).
        var inComponents: Int, outComponents: Int
        var inverse: Bool
        /// Inverse of a one-sided spectrum: the other half is rebuilt as the conjugate mirror.
        var irfft: Bool
        var hasWindow: Bool
        /// STFT framing (1 and 0 for a DFT).
        var framesPerOuter: Int, frameStride: Int
        /// One geometry; or, when the axis is read at run time (`runtimeAxis`, its type), one per
        /// axis it may name (index = the axis), all with the same number of units.
        var geometries: [FourierGeometry]
        var runtimeAxis: CScalar?
    }

    /// Parallel range: outer * bins * inner. Arguments: X, twiddles (f64), [window], [axis], Y. An
    /// axis outside the signal axes (the interpreter's error) fills the output with NaN.
    static func fourier(name: String, _ p: FourierSpec) -> String {
        let e = p.element, g0 = p.geometries[0]
        var s = "// \(name): \(p.inverse ? "inverse " : "")dft\(p.runtimeAxis != nil ? " along a runtime axis" : " of length \(g0.length)")\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        s += e.pointer("X", 0)
        s += "  GLMC_GLOBAL const double *T = (GLMC_GLOBAL const double *)args[1];\n"
        var next = 2
        if p.hasWindow { s += e.pointer("Wn", next); next += 1 }
        if let a = p.runtimeAxis { s += a.pointer("AX", next); next += 1 }
        s += e.pointer("Y", next, const: false)
        s += "  long inner = \(g0.inner), bins = \(g0.bins), n = \(g0.length), used = \(g0.used), os = \(g0.outerStride), js = \(g0.jStride), tb = \(g0.twiddleBase);\n"
        if p.runtimeAxis != nil {
            let rank = p.geometries.count + 1
            for (label, values) in [("inners", p.geometries.map(\.inner)), ("binss", p.geometries.map(\.bins)), ("lens", p.geometries.map(\.length)),
                                    ("useds", p.geometries.map(\.used)), ("oss", p.geometries.map(\.outerStride)),
                                    ("jss", p.geometries.map(\.jStride)), ("tbs", p.geometries.map(\.twiddleBase))] {
                s += longArray(label, values)
            }
            s += "  long ax = (long)AX[0];\n  if (ax < 0) ax += \(rank);\n"
            s += "  if (ax < 0 || ax > \(rank - 2)) { for (long u = begin; u < end; ++u) { \(e.store("Y", "u * \(p.outComponents)", "NAN"))\(p.outComponents == 2 ? " \(e.store("Y", "u * 2 + 1", "NAN"))" : "") } return; }\n"
            s += "  inner = inners[ax]; bins = binss[ax]; n = lens[ax]; used = useds[ax]; os = oss[ax]; js = jss[ax]; tb = tbs[ax];\n"
        }
        s += "  for (long u = begin; u < end; ++u) {\n"
        s += "    long i = u % inner, k = (u / inner) % bins, o = u / (inner * bins);\n"
        s += "    long base = (o / \(p.framesPerOuter)) * os + (o % \(p.framesPerOuter)) * \(p.frameStride) + i * \(p.inComponents);\n"
        s += "    double sr = 0.0, si = 0.0;\n"
        s += "    long t = 0;\n"
        s += "    for (long j = 0; j < n; ++j) {\n"
        s += "      long jj = j;\n      double xr = 0.0, xi = 0.0, c, sn;\n"
        if p.irfft { s += "      if (j > n / 2) jj = n - j;\n" }
        s += "      if (jj < used) {\n"
        s += "        xr = \(e.load("X", "base + jj * js"));\n"
        if p.inComponents == 2 { s += "        xi = \(e.load("X", "base + jj * js + 1"));\n" }
        if p.hasWindow {
            s += "        xr = xr * \(e.load("Wn", "jj"));\n"
            if p.inComponents == 2 { s += "        xi = xi * \(e.load("Wn", "jj"));\n" }
        }
        s += "      }\n"
        if p.irfft {
            // The DC and Nyquist bins are real; the mirrored half is conjugated.
            s += "      if (jj == 0 || (n % 2 == 0 && jj == n / 2)) xi = 0.0;\n"
            s += "      if (j > n / 2) xi = -xi;\n"
        }
        s += "      c = T[tb + t]; sn = \(p.inverse ? "" : "-")T[tb + n + t];\n"
        s += "      sr += xr * c - xi * sn;\n      si += xr * sn + xi * c;\n"
        s += "      t += k;\n      while (t >= n) t -= n;\n"
        s += "    }\n"
        if p.inverse { s += "    sr = sr * (1.0 / (double)n); si = si * (1.0 / (double)n);\n" }
        s += "    \(e.store("Y", "u * \(p.outComponents)", "sr"))\n"
        if p.outComponents == 2 { s += "    \(e.store("Y", "u * 2 + 1", "si"))\n" }
        s += "  }\n}\n"
        return s
    }

    /// MelWeightMatrix with the edges and sample rate read at run time: the triangle corners are
    /// recomputed per mel bin as the interpreter computes them (the edges' logarithms rounded to
    /// their own type). Edges or a rate the interpreter refuses give NaN. One unit of work writes
    /// the whole [dftLength / 2 + 1, melBins] matrix. Arguments: sample_rate, lower edge, upper
    /// edge, Y.
    static func melWeightMatrix(name: String, output: CScalar, rate: CScalar, lower: CScalar, upper: CScalar,
                                melBins: Int, dftLength: Int) -> String {
        let spectrogram = dftLength / 2 + 1, m = melBins
        func mel(_ scalar: CScalar, _ v: String) -> String {
            "\(scalar.round("2595.0 * \(scalar.round("log1p(\(scalar.round("\(v) / 700.0")))"))")) / log(10.0)"
        }
        var s = "// \(name): mel_weight_matrix \(spectrogram) x \(m)\n"
        s += "static inline long \(name)_corner(long i, double lowMel, double step, double rate) {\n"
        s += "  double hertz = 700.0 * expm1(((double)i * step + lowMel) / 2595.0 * log(10.0));\n"
        s += "  double bin = floor((double)\(dftLength + 1) * hertz / rate);\n"
        s += "  return bin >= 0.0 && bin < \(spectrogram).0 ? (long)bin : -1;\n}\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        s += rate.pointer("SR", 0) + lower.pointer("LO", 1) + upper.pointer("UP", 2) + output.pointer("Y", 3, const: false)
        s += "  double lo = \(lower.load("LO", "0")), hi = \(upper.load("UP", "0")), rate = (double)(int64_t)\(rate.load("SR", "0"));\n"
        s += "  double lowMel = \(mel(lower, "lo")), highMel = \(mel(upper, "hi")), step = (highMel - lowMel) / \(m + 2).0;\n"
        s += "  int bad = !(rate > 0.0 && lo >= 0.0 && lo < hi);\n"
        s += "  long i, j, e;\n"
        s += "  if (begin >= end) return;\n"
        s += "  for (i = 0; i < \(m + 2) && !bad; ++i) if (\(name)_corner(i, lowMel, step, rate) < 0) bad = 1;\n"
        s += "  for (e = 0; e < \(spectrogram * m); ++e) \(output.store("Y", "e", "bad ? NAN : 0.0"))\n"
        s += "  if (bad) return;\n"
        s += "  for (i = 0; i < \(m); ++i) {\n"
        s += "    long low = \(name)_corner(i, lowMel, step, rate), center = \(name)_corner(i + 1, lowMel, step, rate), high = \(name)_corner(i + 2, lowMel, step, rate);\n"
        s += "    if (center == low) { \(output.store("Y", "center * \(m) + i", "1.0")) }\n"
        s += "    else for (j = low; j <= center; ++j) \(output.store("Y", "j * \(m) + i", "(double)(j - low) / (double)(center - low)"))\n"
        s += "    if (high > center) for (j = center; j < high; ++j) \(output.store("Y", "j * \(m) + i", "(double)(high - j) / (double)(high - center)"))\n"
        s += "  }\n}\n"
        return s
    }
}
