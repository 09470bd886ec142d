/// The interpolating Resize kernel (linear and cubic modes, antialiased or not): a weighted gather
/// whose taps and weights were computed at convert time by the interpreter's own definition
/// (`NeuralOps.resizeInterpolation`).
extension CPUKernelLibrary {
    /// One resized axis of the output: `taps` entries per output position, from entry `base` on,
    /// in the kernel's two tables.
    struct ResizeAxisTaps {
        var taps: Int
        var base: Int
    }

    /// Resize by interpolation. Each output element sums, over every combination of its resized
    /// axes' taps, the product of their weights times the input element they select, in double
    /// (as the interpreter computes); axes that are not resized (`axes[a]` nil) read the same
    /// position, whose offset is `position * inputStrides[a]`.
    ///
    /// Tables: `I` (int64) holds per tap the input offset along its axis (the input index times the
    /// axis stride), or -1 for a position outside the input, which takes the extrapolation value;
    /// `W` (double) the tap weights, then the extrapolation value at `W[extrapolationAt]`. Taps of
    /// weight 0 are skipped, as in the interpreter (so that an infinity there does not make a NaN).
    /// Integer results are rounded half to even and saturated. Parallel range: the output element
    /// count. Arguments: X, I, W, Y.
    static func resizeInterpolate(name: String, element: CScalar, outShape: [Int], axes: [ResizeAxisTaps?],
                                  inputStrides: [Int], extrapolationAt: Int) -> String {
        var s = "// \(name): resize (interpolating) to \(outShape)\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        s += element.pointer("X", 0)
        s += "  GLMC_GLOBAL const int64_t *I = (GLMC_GLOBAL const int64_t *)args[1];\n"
        s += "  GLMC_GLOBAL const double *W = (GLMC_GLOBAL const double *)args[2];\n"
        s += element.pointer("Y", 3, const: false)
        s += "  for (long i = begin; i < end; ++i) {\n"
        s += "    long rest = i, o = 0;\n"
        s += "    double acc = 0.0;\n"
        for a in stride(from: outShape.count - 1, through: 0, by: -1) {
            s += "    long c\(a) = rest % \(max(1, outShape[a])); rest /= \(max(1, outShape[a]));\n"
            if axes[a] == nil { s += "    o += c\(a) * \(inputStrides[a]);\n" }
        }
        let resized = axes.indices.filter { axes[$0] != nil }
        let outside = resized.map { "I[\(axes[$0]!.base) + c\($0) * \(axes[$0]!.taps)] < 0" }
        s += "    if (\(outside.joined(separator: " || "))) {\n"
        s += "      acc = W[\(extrapolationAt)];\n"
        s += "    } else {\n"
        var indent = "      ", weight = "1.0", offset = "o"
        for a in resized {
            let t = axes[a]!
            s += "\(indent)for (long t\(a) = 0; t\(a) < \(t.taps); ++t\(a)) {\n"
            indent += "  "
            s += "\(indent)long e\(a) = \(t.base) + c\(a) * \(t.taps) + t\(a);\n"
            s += "\(indent)double w\(a) = \(weight == "1.0" ? "" : weight + " * ")W[e\(a)];\n"
            s += "\(indent)long o\(a) = \(offset) + (long)I[e\(a)];\n"
            s += "\(indent)if (W[e\(a)] == 0.0) continue;\n"
            weight = "w\(a)"; offset = "o\(a)"
        }
        s += "\(indent)acc += \(weight) * \(element.load("X", offset));\n"
        for _ in resized {
            indent.removeLast(2)
            s += "\(indent)}\n"
        }
        s += "    }\n"
        if !element.isFloat {
            let (low, high) = element.range
            s += "    acc = rint(acc);\n    if (acc < \(low)) acc = \(low);\n    if (acc > \(high)) acc = \(high);\n"
        }
        s += "    \(element.store("Y", "i", "acc"))\n"
        s += "  }\n}\n"
        return s
    }
}
