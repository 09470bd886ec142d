extension CPUKernelLibrary {
    /// Sets every element of the output to one (true for bool): inference Dropout's mask.
    /// Parallel range: the element count. Arguments: Y.
    static func oneFill(name: String, scalar: CScalar) -> String {
        let one = scalar.isFloat ? scalar.store("Y", "u", "1.0") : "Y[u] = 1;"
        return "// \(name): one fill\nvoid \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n" + scalar.pointer("Y", 0, const: false)
            + "  for (long u = begin; u < end; ++u) \(one)\n}\n"
    }
}

extension CPUKernelLibrary {
    /// SwiGLU: `Y = A * sigmoid(alpha * A) * B`, in float for f32 (as the interpreter computes it)
    /// and in double for the other float types. Parallel range: the element count. Arguments: A, B, Y.
    static func swiGLU(name: String, scalar: CScalar, alpha: Float) -> String {
        var s = "// \(name): swiglu\nvoid \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        s += scalar.pointer("A", 0) + scalar.pointer("B", 1) + scalar.pointer("Y", 2, const: false)
        if scalar.dtype == .f32 {
            s += "  for (long u = begin; u < end; ++u) { float a = A[u]; Y[u] = a / (1.0f + expf(-(\(lit(alpha))) * a)) * B[u]; }\n"
        } else {
            s += "  for (long u = begin; u < end; ++u) { double a = \(scalar.load("A", "u")); \(scalar.store("Y", "u", "a / (1.0 + exp(-(double)(\(lit(alpha))) * a)) * \(scalar.load("B", "u"))")) }\n"
        }
        return s + "}\n"
    }
}

extension CPUKernelLibrary {
    /// Det of each n×n matrix: LU decomposition with partial pivoting in double, the interpreter's
    /// algorithm step for step (a zero pivot gives 0). Parallel range: the matrix count.
    /// Arguments: X, Y, [scratch: n*n doubles per matrix].
    static func determinant(name: String, scalar: CScalar, n: Int) -> String {
        var s = "// \(name): determinant of \(n)x\(n) matrices\nvoid \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        s += scalar.pointer("X", 0) + scalar.pointer("Y", 1, const: false)
        s += "  GLMC_SCRATCH(double, a, \(n * n), 2);\n"
        s += """
          for (long m = begin; m < end; ++m) {
            for (long i = 0; i < \(n * n); ++i) a[i] = \(scalar.load("X", "m * \(n * n) + i"));
            double det = 1.0;
            for (long col = 0; col < \(n); ++col) {
              long pivot = col;
              for (long r = col + 1; r < \(n); ++r) if (fabs(a[r * \(n) + col]) > fabs(a[pivot * \(n) + col])) pivot = r;
              if (a[pivot * \(n) + col] == 0.0) { det = 0.0; break; }
              if (pivot != col) {
                for (long c = 0; c < \(n); ++c) { double t = a[pivot * \(n) + c]; a[pivot * \(n) + c] = a[col * \(n) + c]; a[col * \(n) + c] = t; }
                det = -det;
              }
              double p = a[col * \(n) + col];
              det *= p;
              for (long r = col + 1; r < \(n); ++r) {
                double f = a[r * \(n) + col] / p;
                if (f != 0.0) for (long c = col; c < \(n); ++c) a[r * \(n) + c] -= f * a[col * \(n) + c];
              }
            }
            \(scalar.store("Y", "m", "det"))
          }
          GLMC_SCRATCH_FREE(a);
        }

        """
        return s
    }
}

extension CPUKernelLibrary {
    /// TensorScatter: the cache viewed as (outer, maxLength, inner) with `perBatch` outer rows per
    /// batch entry; positions start + s (mod maxLength in circular mode) for s < length take
    /// update row s, the rest keep the cache. A linear write past the cache (the interpreter's
    /// error) leaves those positions unwritten: they keep the cache. Parallel range: the cache's
    /// element count. Arguments: past, update, [write_indices (int64)], Y.
    static func tensorScatter(name: String, scalar: CScalar, maxLength: Int, length: Int, inner: Int, perBatch: Int,
                              hasWriteIndices: Bool, circular: Bool) -> String {
        var s = "// \(name): tensor scatter of \(length) into \(maxLength)\(circular ? " (circular)" : "")\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n" + scalar.pointer("P", 0) + scalar.pointer("U", 1)
        if hasWriteIndices { s += "  GLMC_GLOBAL const int64_t *W = (GLMC_GLOBAL const int64_t *)args[2];\n" }
        s += scalar.pointer("Y", hasWriteIndices ? 3 : 2, const: false)
        // An empty cache has an empty range; the divisors stay nonzero so that the C is defined.
        let maxLength = max(maxLength, 1), inner = max(inner, 1)
        s += "  for (long u = begin; u < end; ++u) {\n"
        s += "    long i = u % \(inner), pos = (u / \(inner)) % \(maxLength), o = u / \(inner * maxLength);\n"
        s += "    long start = \(hasWriteIndices ? "(long)W[o / \(max(perBatch, 1))]" : "0");\n"
        if circular {
            s += "    long step = ((pos - start) % \(maxLength) + \(maxLength)) % \(maxLength);\n"
        } else {
            s += "    long step = pos - start;\n"
        }
        s += "    Y[u] = step >= 0 && step < \(length) ? U[(o * \(length) + step) * \(inner) + i] : P[u];\n"
        return s + "  }\n}\n"
    }
}

extension CPUKernelLibrary {
    /// Col2Im over `nd` spatial dims: each image pixel sums, in double and in block order (the
    /// interpreter's order), the columns whose block element lands on it: g·stride − pad + k·dilation.
    /// Parallel range: N·C·pixels. Arguments: X [N, C·blockSize, L], Y [N, C, image...].
    static func col2Im(name: String, scalar: CScalar, image: [Int], block: [Int], grid: [Int], strides: [Int], pads: [Int], dilations: [Int]) -> String {
        let nd = image.count, pixels = image.reduce(1, *), blockSize = block.reduce(1, *), columns = grid.reduce(1, *)
        var s = "// \(name): col2im of \(block) blocks into \(image)\nvoid \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        s += scalar.pointer("X", 0) + scalar.pointer("Y", 1, const: false)
        s += longArray("image", image) + longArray("block", block) + longArray("grid", grid) + longArray("stride", strides)
            + longArray("pad", Array(pads.prefix(nd))) + longArray("dil", dilations)
        s += """
          for (long u = begin; u < end; ++u) {
            long pixel = u % \(max(pixels, 1)), plane = u / \(max(pixels, 1));
            long p[\(nd)];
            for (long d = \(nd - 1), r = pixel; d >= 0; --d) { p[d] = r % image[d]; r /= image[d]; }
            double sum = 0.0;
            for (long k = 0; k < \(blockSize); ++k) {
              long column = 0, ok = 1;
              for (long d = 0, r = k, kstride = \(blockSize); d < \(nd); ++d) {
                kstride /= block[d];
                long kd = r / kstride; r %= kstride;
                long t = p[d] + pad[d] - kd * dil[d];
                if (t < 0 || t % stride[d] != 0 || t / stride[d] >= grid[d]) { ok = 0; break; }
                column = column * grid[d] + t / stride[d];
              }
              if (ok) sum += \(scalar.load("X", "(plane * \(blockSize) + k) * \(columns) + column"));
            }
            \(scalar.store("Y", "u", "sum"))
          }
        }

        """
        return s
    }
}

extension CPUKernelLibrary {
    /// Training-mode BatchNormalization, one channel per unit, in double as the interpreter: the
    /// batch's mean and (biased) variance over N and the spatial axes normalize the channel, and
    /// blend into the running statistics `stat·momentum + batch·(1 − momentum)` when those outputs
    /// are used. Parallel range: C. Arguments: X, scale, B, mean, var, Y, [running mean], [running var].
    static func trainingBatchNorm(name: String, x: CScalar, parameters: [CScalar], runningMean: CScalar?, runningVar: CScalar?,
                                  batch: Int, channels: Int, spatial: Int, epsilon: Float, momentum: Float) -> String {
        var s = "// \(name): batch normalization (training)\nvoid \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        s += x.pointer("X", 0)
        for (k, label) in ["S", "B", "M", "V"].enumerated() { s += parameters[k].pointer(label, k + 1) }
        s += x.pointer("Y", 5, const: false)
        var next = 6
        if let runningMean { s += runningMean.pointer("RM", next, const: false); next += 1 }
        if let runningVar { s += runningVar.pointer("RV", next, const: false) }
        let at = "(n * \(channels) + c) * \(spatial) + i"
        s += """
          for (long c = begin; c < end; ++c) {
            double sum = 0.0, sq = 0.0, count = (double)\(batch * spatial);
            for (long n = 0; n < \(batch); ++n) for (long i = 0; i < \(spatial); ++i) sum += \(x.load("X", at));
            double mean = sum / count;
            for (long n = 0; n < \(batch); ++n) for (long i = 0; i < \(spatial); ++i) { double d = \(x.load("X", at)) - mean; sq += d * d; }
            double var = sq / count, momentum = (double)\(lit(momentum));
            double a = \(parameters[0].load("S", "c")) / sqrt(var + (double)\(lit(epsilon))), b = \(parameters[1].load("B", "c")) - mean * a;
            for (long n = 0; n < \(batch); ++n) for (long i = 0; i < \(spatial); ++i) \(x.store("Y", at, "\(x.load("X", at)) * a + b"))

        """
        if runningMean != nil { s += "    \(runningMean!.store("RM", "c", "\(parameters[2].load("M", "c")) * momentum + mean * (1.0 - momentum)"))\n" }
        if runningVar != nil { s += "    \(runningVar!.store("RV", "c", "\(parameters[3].load("V", "c")) * momentum + var * (1.0 - momentum)"))\n" }
        return s + "  }\n}\n"
    }
}

extension CPUKernelLibrary {
    /// Dropout whose ratio or training_mode is read at run time. Inference (training false, or a
    /// zero ratio) copies X and sets the mask; training draws the keep-mask as the interpreter does,
    /// NumPy's `RandomState(seed).uniform(0, 1) >= ratio` (MT19937, 53-bit doubles), and scales the
    /// kept elements by 1 / (1 − ratio). The draws are sequential, so one unit does the whole
    /// tensor. A ratio outside [0, 1) in training (the interpreter's error) gives NaN and a false
    /// mask. Parallel range: 1. Arguments: X, [ratio], [training_mode], Y, [mask].
    static func runtimeDropout(name: String, x: CScalar, ratio: CScalar?, training: CScalar?, mask: CScalar?, count: Int, seed: UInt32) -> String {
        var s = "// \(name): dropout with a runtime ratio or training mode\nvoid \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        s += x.pointer("X", 0)
        var next = 1
        if let ratio { s += ratio.pointer("R", next); next += 1 }
        if let training { s += training.pointer("T", next); next += 1 }
        s += x.pointer("Y", next, const: false)
        if let mask { s += mask.pointer("K", next + 1, const: false) }
        let keep = { (v: String) in mask.map { $0.isFloat ? $0.store("K", "u", v) : "K[u] = (\($0.storage))(\(v));" } ?? "" }
        s += "  if (begin != 0) return;\n"
        s += "  double ratio = \(ratio.map { $0.load("R", "0") } ?? "0.5");\n"
        s += "  int training = \(training.map { _ in "T[0] != 0" } ?? "0");\n"
        s += "  if (!training || !(ratio > 0.0)) { for (long u = 0; u < \(count); ++u) { \(x.store("Y", "u", x.load("X", "u"))) \(keep("1")) } return; }\n"
        s += "  if (!(ratio >= 0.0 && ratio < 1.0)) { for (long u = 0; u < \(count); ++u) { \(x.store("Y", "u", "NAN")) \(keep("0")) } return; }\n"
        s += """
          uint32_t mt[624];
          mt[0] = \(seed)u;
          for (int i = 1; i < 624; ++i) mt[i] = 1812433253u * (mt[i - 1] ^ (mt[i - 1] >> 30)) + (uint32_t)i;
          int position = 624;
          double scale = 1.0 / (1.0 - ratio);
          for (long u = 0; u < \(count); ++u) {
            uint32_t draw[2];
            for (int d = 0; d < 2; ++d) {
              if (position >= 624) {
                for (int i = 0; i < 624; ++i) {
                  uint32_t y = (mt[i] & 0x80000000u) | (mt[(i + 1) % 624] & 0x7fffffffu);
                  mt[i] = mt[(i + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
                }
                position = 0;
              }
              uint32_t y = mt[position++];
              y ^= y >> 11; y ^= (y << 7) & 0x9d2c5680u; y ^= (y << 15) & 0xefc60000u; y ^= y >> 18;
              draw[d] = y;
            }
            double r = ((double)(draw[0] >> 5) * 67108864.0 + (double)(draw[1] >> 6)) / 9007199254740992.0;
            int kept = r >= ratio;
            \(x.store("Y", "u", "kept ? \(x.load("X", "u")) * scale : 0.0"))
            \(keep("kept"))
          }
        }

        """
        return s
    }
}
