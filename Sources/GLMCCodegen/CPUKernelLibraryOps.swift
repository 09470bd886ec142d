/// More hand-written CPU kernels (same ABI and conventions as the rest of `CPUKernelLibrary`):
/// BatchNormalization, LRN, data movement and batched MatMul.
extension CPUKernelLibrary {
    static func longArray(_ name: String, _ values: [Int]) -> String {
        "  GLMC_TABLE long \(name)[\(max(1, values.count))] = {\(values.isEmpty ? "0" : values.map(String.init).joined(separator: ", "))};\n"
    }

    /// BatchNormalization (inference): `y = (x - mean) / sqrt(var + eps) * scale + bias` per
    /// channel. Parallel range: N*C planes. Arguments: X, scale, B, mean, var, Y.
    public static func batchNorm(name: String, channels: Int, planes: Int, size: Int, epsilon: Float) -> String {
        """
        // \(name): batch_norm \(planes) planes of \(size), \(channels) channels
        void \(name)(GLMC_GLOBAL void **args, long begin, long end) {
          GLMC_GLOBAL const float *X = (GLMC_GLOBAL const float *)args[0], *S = (GLMC_GLOBAL const float *)args[1], *B = (GLMC_GLOBAL const float *)args[2];
          GLMC_GLOBAL const float *M = (GLMC_GLOBAL const float *)args[3], *V = (GLMC_GLOBAL const float *)args[4];
          GLMC_GLOBAL float *Y = (GLMC_GLOBAL float *)args[5];
          for (long p = begin; p < end; ++p) {
            long c = p % \(channels);
            float a = S[c] / sqrtf(V[c] + \(lit(epsilon))), b = B[c] - M[c] * a;
            GLMC_GLOBAL const float *x = X + p * \(size); GLMC_GLOBAL float *y = Y + p * \(size);
            for (long i = 0; i < \(size); ++i) y[i] = x[i] * a + b;
          }
        }

        """
    }

    /// Local response normalization across channels, NCHW. Parallel range: N*C planes.
    /// Arguments: X, Y.
    public static func lrn(name: String, channels: Int, size: Int, plane: Int, alpha: Float, beta: Float, bias: Float) -> String {
        let lo = (size - 1) / 2, hi = size - 1 - lo
        return """
        // \(name): lrn size \(size) over \(channels) channels
        void \(name)(GLMC_GLOBAL void **args, long begin, long end) {
          GLMC_GLOBAL const float *X = (GLMC_GLOBAL const float *)args[0];
          GLMC_GLOBAL float *Y = (GLMC_GLOBAL float *)args[1];
          for (long p = begin; p < end; ++p) {
            long c = p % \(channels), n = p / \(channels);
            long c0 = c - \(lo) < 0 ? 0 : c - \(lo), c1 = c + \(hi) > \(channels - 1) ? \(channels - 1) : c + \(hi);
            for (long i = 0; i < \(plane); ++i) {
              float s = 0.0f;
              for (long q = c0; q <= c1; ++q) { float v = X[(n * \(channels) + q) * \(plane) + i]; s += v * v; }
              Y[p * \(plane) + i] = X[p * \(plane) + i] / powf(\(lit(bias)) + \(lit(alpha / Float(size))) * s, \(lit(beta)));
            }
          }
        }

        """
    }

    /// Concat: the output seen as [outer, sum of the inputs' chunks]; input j contributes
    /// `chunks[j]` bytes per outer index. Parallel range: outer. Arguments: the inputs, Y.
    public static func concat(name: String, outer: Int, chunks: [Int]) -> String {
        let total = chunks.reduce(0, +)
        var s = "// \(name): concat of \(chunks.count) inputs, \(outer) x \(total) bytes\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        s += "  GLMC_GLOBAL char *Y = (GLMC_GLOBAL char *)args[\(chunks.count)];\n"
        s += "  for (long o = begin; o < end; ++o) {\n"
        var offset = 0
        for (j, c) in chunks.enumerated() {
            if c > 0 { s += "    memcpy(Y + o * \(total) + \(offset), (GLMC_GLOBAL const char *)args[\(j)] + o * \(c), \(c));\n" }
            offset += c
        }
        s += "  }\n}\n"
        return s
    }

    /// Transpose: output element i reads the input at the offset given by the input strides of
    /// the output's axes. Parallel range: the element count. Arguments: X, Y.
    public static func transpose(name: String, outShape: [Int], inStrides: [Int], elementBytes: Int) -> String {
        let type = elementType(bytes: elementBytes)!
        var s = "// \(name): transpose to \(outShape)\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        s += "  GLMC_GLOBAL const \(type) *X = (GLMC_GLOBAL const \(type) *)args[0];\n  GLMC_GLOBAL \(type) *Y = (GLMC_GLOBAL \(type) *)args[1];\n"
        s += longArray("shape", outShape) + longArray("stride", inStrides)
        s += "  for (long i = begin; i < end; ++i) {\n"
        s += "    long rest = i, off = 0;\n"
        s += "    for (int d = \(outShape.count - 1); d >= 0; --d) { off += (rest % shape[d]) * stride[d]; rest /= shape[d]; }\n"
        s += "    Y[i] = X[off];\n  }\n}\n"
        return s
    }

    /// Gather along an axis, the data seen as [outer, axisLen, inner bytes], the indices
    /// (`indexBytes` 8 or 4, negative ones counted from the end, out-of-range ones clamped).
    /// Parallel range: outer * count of indices. Arguments: data, indices, Y.
    public static func gather(name: String, outer: Int, axisLen: Int, innerBytes: Int, indices: Int, indexBytes: Int) -> String {
        let it = indexBytes == 8 ? "int64_t" : "int"
        return """
        // \(name): gather \(indices) of \(axisLen) slices of \(innerBytes) bytes, \(outer) times
        void \(name)(GLMC_GLOBAL void **args, long begin, long end) {
          GLMC_GLOBAL const char *X = (GLMC_GLOBAL const char *)args[0];
          GLMC_GLOBAL const \(it) *I = (GLMC_GLOBAL const \(it) *)args[1];
          GLMC_GLOBAL char *Y = (GLMC_GLOBAL char *)args[2];
          for (long u = begin; u < end; ++u) {
            long o = u / \(indices), j = u % \(indices);
            long k = (long)I[j];
            if (k < 0) k += \(axisLen);
            if (k < 0) k = 0;
            if (k > \(axisLen - 1)) k = \(axisLen - 1);
            memcpy(Y + u * \(innerBytes), X + (o * \(axisLen) + k) * \(innerBytes), \(innerBytes));
          }
        }

        """
    }

    /// Batched MatMul: `batch` products [M,K] x [K,N]; B shared by all batches when `bBatched` is
    /// false. Parallel range: batch*M*N outputs. Arguments: A, B, Y.
    public static func batchedMatMul(name: String, batch: Int, m: Int, n: Int, k: Int, bBatched: Bool, epilogue: [Epilogue]) -> String {
        var s = "// \(name): batched matmul \(batch) x \(m)x\(k) * \(k)x\(n)\(bBatched ? "" : " (shared B)")\n"
        s += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        s += "  GLMC_GLOBAL const float *A = (GLMC_GLOBAL const float *)args[0];\n  GLMC_GLOBAL const float *B = (GLMC_GLOBAL const float *)args[1];\n  GLMC_GLOBAL float *Y = (GLMC_GLOBAL float *)args[2];\n"
        s += "  for (long i = begin; i < end; ++i) {\n"
        s += "    long b = i / \(m * n), r = (i / \(n)) % \(m), c = i % \(n);\n"
        s += "    GLMC_GLOBAL const float *a = A + b * \(m * k) + r * \(k);\n"
        s += "    GLMC_GLOBAL const float *bb = B + \(bBatched ? "b * \(k * n)" : "0") + c;\n"
        s += "    float v = 0.0f;\n"
        s += "    for (long p = 0; p < \(k); ++p) v += a[p] * bb[p * \(n)];\n"
        if !epilogue.isEmpty { s += "    {\n" + epilogueCode(epilogue, "v") + "\n    }\n" }
        s += "    Y[i] = v;\n  }\n}\n"
        return s
    }
}
