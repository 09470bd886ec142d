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
