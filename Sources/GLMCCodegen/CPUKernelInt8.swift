/// C kernels of int8 plans (`glmc convert --target cpu --precision int8`), with the plan's uniform
/// CPU ABI (see `CPUKernelLibrary`).
///
/// A quantized Gemm or MatMul is two steps: a quantize step turns the fp32 input into int8 rows
/// `Q[rows, K]`; a Conv quantizes its input channels-last and then im2cols it into rows (one per output pixel
/// holding its receptive field, zero where it reads padding, which is exact since the quantization
/// is symmetric). Then a dot step
/// computes, per row and output channel, the int32 dot product of the row with that channel's
/// pre-quantized weights `W[channels, K]`, dequantizes it (`acc * scale[c] + bias[c]`, where
/// `scale[c] = s_in * s_w[c]`), applies the fused epilogue and stores fp32.
public enum CPUKernelInt8 {
    /// Helpers shared by the int8 kernels, emitted once per translation unit.
    ///
    /// `glmc_dot1` / `glmc_dot4`: the int32 dot product of an int8 row with one or four int8 weight
    /// rows (four share each load of the row). Plans are compiled for the instruction set `--cpu`
    /// names (never VNNI, and GCC 12 widens a portable int8 dot loop with `pmullw` instead of
    /// `pmaddwd`), so on x86-64 with GCC or Clang there are AVX-512 VNNI (`vpdpwssd` on
    /// sign-extended 16-bit lanes) and AVX2 (`vpmaddwd`) versions in functions with a `target`
    /// attribute, and a constructor run when the plan's code is loaded picks the best one the CPU
    /// has; elsewhere, and on CPUs without AVX2, the portable loops.
    public static let helpers = """
    #include <stdint.h>
    typedef int32_t (*glmc_dot1_fn)(const uint8_t *, const int8_t *, long);
    typedef void (*glmc_dot4_fn)(const uint8_t *, const int8_t *, long, int32_t *);
    static int32_t glmc_dot1_portable(const uint8_t *a, const int8_t *b, long k) {
      int32_t acc = 0;
      for (long p = 0; p < k; ++p) acc += (int32_t)a[p] * (int32_t)b[p];
      return acc;
    }
    static void glmc_dot4_portable(const uint8_t *a, const int8_t *b, long k, int32_t *out) {
      for (int j = 0; j < 4; ++j) out[j] = glmc_dot1_portable(a, b + j * k, k);
    }
    static glmc_dot1_fn glmc_dot1 = glmc_dot1_portable;
    static glmc_dot4_fn glmc_dot4 = glmc_dot4_portable;
    #if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    #include <immintrin.h>
    __attribute__((target("avx2")))
    static int32_t glmc_hsum_avx2(__m256i v) {
      __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
      s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
      s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
      return _mm_cvtsi128_si32(s);
    }
    __attribute__((target("avx2")))
    static int32_t glmc_dot1_avx2(const uint8_t *a, const int8_t *b, long k) {
      __m256i acc = _mm256_setzero_si256();
      long p = 0;
      for (; p + 16 <= k; p += 16) {
        __m256i x = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(a + p)));
        __m256i y = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + p)));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(x, y));
      }
      int32_t r = glmc_hsum_avx2(acc);
      for (; p < k; ++p) r += (int32_t)a[p] * (int32_t)b[p];
      return r;
    }
    __attribute__((target("avx2")))
    static void glmc_dot4_avx2(const uint8_t *a, const int8_t *b, long k, int32_t *out) {
      __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
      long p = 0;
      for (; p + 16 <= k; p += 16) {
        __m256i x = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(a + p)));
        s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(x, _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + p)))));
        s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(x, _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + k + p)))));
        s2 = _mm256_add_epi32(s2, _mm256_madd_epi16(x, _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + 2 * k + p)))));
        s3 = _mm256_add_epi32(s3, _mm256_madd_epi16(x, _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + 3 * k + p)))));
      }
      out[0] = glmc_hsum_avx2(s0); out[1] = glmc_hsum_avx2(s1); out[2] = glmc_hsum_avx2(s2); out[3] = glmc_hsum_avx2(s3);
      for (; p < k; ++p)
        for (int j = 0; j < 4; ++j) out[j] += (int32_t)a[p] * (int32_t)b[j * k + p];
    }
    /* vpdpbusd: 64 unsigned x signed byte products per instruction, summed in groups of four
       into int32 lanes without saturation. */
    __attribute__((target("avx512f,avx512bw,avx512vnni")))
    static int32_t glmc_dot1_vnni(const uint8_t *a, const int8_t *b, long k) {
      __m512i acc = _mm512_setzero_si512();
      long p = 0;
      for (; p + 64 <= k; p += 64) acc = _mm512_dpbusd_epi32(acc, _mm512_loadu_si512(a + p), _mm512_loadu_si512(b + p));
      int32_t r = _mm512_reduce_add_epi32(acc);
      for (; p < k; ++p) r += (int32_t)a[p] * (int32_t)b[p];
      return r;
    }
    __attribute__((target("avx512f,avx512bw,avx512vnni")))
    static void glmc_dot4_vnni(const uint8_t *a, const int8_t *b, long k, int32_t *out) {
      __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
      long p = 0;
      for (; p + 64 <= k; p += 64) {
        __m512i x = _mm512_loadu_si512(a + p);
        s0 = _mm512_dpbusd_epi32(s0, x, _mm512_loadu_si512(b + p));
        s1 = _mm512_dpbusd_epi32(s1, x, _mm512_loadu_si512(b + k + p));
        s2 = _mm512_dpbusd_epi32(s2, x, _mm512_loadu_si512(b + 2 * k + p));
        s3 = _mm512_dpbusd_epi32(s3, x, _mm512_loadu_si512(b + 3 * k + p));
      }
      out[0] = _mm512_reduce_add_epi32(s0); out[1] = _mm512_reduce_add_epi32(s1);
      out[2] = _mm512_reduce_add_epi32(s2); out[3] = _mm512_reduce_add_epi32(s3);
      for (; p < k; ++p)
        for (int j = 0; j < 4; ++j) out[j] += (int32_t)a[p] * (int32_t)b[j * k + p];
    }
    __attribute__((constructor))
    static void glmc_pick_int8_kernels(void) {
      __builtin_cpu_init();
      if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw")) {
        glmc_dot1 = glmc_dot1_vnni; glmc_dot4 = glmc_dot4_vnni;
      } else if (__builtin_cpu_supports("avx2")) {
        glmc_dot1 = glmc_dot1_avx2; glmc_dot4 = glmc_dot4_avx2;
      }
    }
    #endif
    /* An activation q in [-127, 127] is stored as the byte q + 128 (so 0 is 128). */
    static inline uint8_t glmc_quantize_u8(float x, float inverseScale) {
      float t = x * inverseScale;
      t = t > 127.0f ? 127.0f : (t < -127.0f ? -127.0f : t);
      return (uint8_t)((t >= 0.0f ? (int)(t + 0.5f) : (int)(t - 0.5f)) + 128);
    }

    """

    /// Rows are padded with zeros to `paddedK` (a multiple of the widest vector loop, `rowAlignment`)
    /// so the dot loops have no scalar tail.
    public static let rowAlignment = 64

    /// Quantizes a [rows, K] matrix (stored [K, rows] when `transposed`) into int8 rows.
    /// Parallel range: rows. Arguments: X (f32), Q (int8 scratch).
    public static func quantizeRows(name: String, rows: Int, k: Int, paddedK: Int, transposed: Bool, inverseScale: Float) -> String {
        let index = transposed ? "p * \(rows) + r" : "r * \(k) + p"
        return """
        // \(name): quantize \(rows) rows of \(k)\(transposed ? " (transposed)" : "") to int8, rows padded to \(paddedK)
        void \(name)(void **args, long begin, long end) {
          const float *X = (const float *)args[0];
          uint8_t *Q = (uint8_t *)args[1];
          for (long r = begin; r < end; ++r) {
            for (long p = 0; p < \(k); ++p) Q[r * \(paddedK) + p] = glmc_quantize_u8(X[\(index)], \(CPUKernelLibrary.lit(inverseScale)));
            for (long p = \(k); p < \(paddedK); ++p) Q[r * \(paddedK) + p] = 128;
          }
        }

        """
    }

    /// Quantizes an NCHW image into channels-last bytes per group, `[N*group, H, W, C/group]`, so
    /// im2col copies each tap's channels as one run. Parallel range: N * group * H.
    /// Arguments: X (f32), Q (u8).
    public static func quantizeChannelsLast(name: String, n: Int, c: Int, h: Int, w: Int, group: Int, inverseScale: Float) -> String {
        let cg = c / group
        return """
        // \(name): quantize [\(n),\(c),\(h),\(w)] to int8, channels last per group of \(cg)
        void \(name)(void **args, long begin, long end) {
          const float *X = (const float *)args[0];
          uint8_t *Q = (uint8_t *)args[1];
          for (long line = begin; line < end; ++line) {
            long bg = line / \(h), iy = line % \(h);
            const float *x = X + bg * \(cg * h * w) + iy * \(w);
            uint8_t *q = Q + line * \(w * cg);
            for (long ic = 0; ic < \(cg); ++ic)
              for (long ix = 0; ix < \(w); ++ix) q[ix * \(cg) + ic] = glmc_quantize_u8(x[ic * \(h * w) + ix], \(CPUKernelLibrary.lit(inverseScale)));
          }
        }

        """
    }

    /// im2col of a channels-last int8 image (`quantizeChannelsLast`) into rows, one per (image,
    /// group, output pixel): row `(b * group + g) * OH*OW + pixel` holds the kernel taps in order,
    /// each tap the group's input channels (the weights are stored in that order), the value 0
    /// (byte 128) where the tap reads padding, then zero-padded to `paddedK`.
    /// Parallel range: N * group * OH. Arguments: X (u8), Q (u8 rows).
    public static func im2col(name: String, n: Int, c: Int, h: Int, w: Int, oh: Int, ow: Int, kh: Int, kw: Int,
                              group: Int, padTop: Int, padLeft: Int, strideH: Int, strideW: Int,
                              dilationH: Int, dilationW: Int, paddedK: Int) -> String {
        let cg = c / group, k = cg * kh * kw
        return """
        // \(name): im2col [\(n),\(c),\(h),\(w)] int8 -> \(n * group * oh * ow) rows of \(k) (padded to \(paddedK)), kernel \(kh)x\(kw) group \(group)
        void \(name)(void **args, long begin, long end) {
          const uint8_t *X = (const uint8_t *)args[0];
          uint8_t *Q = (uint8_t *)args[1];
          for (long line = begin; line < end; ++line) {
            long bg = line / \(oh), oy = line % \(oh);
            const uint8_t *x = X + bg * \(h * w * cg);
            for (long ox = 0; ox < \(ow); ++ox) {
              uint8_t *q = Q + (line * \(ow) + ox) * \(paddedK);
              for (long ky = 0; ky < \(kh); ++ky) {
                long iy = oy * \(strideH) - \(padTop) + ky * \(dilationH);
                for (long kx = 0; kx < \(kw); ++kx, q += \(cg)) {
                  long ix = ox * \(strideW) - \(padLeft) + kx * \(dilationW);
                  if (iy < 0 || iy >= \(h) || ix < 0 || ix >= \(w)) memset(q, 128, \(cg));
                  else memcpy(q, x + (iy * \(w) + ix) * \(cg), \(cg));
                }
              }
              \(paddedK > k ? "memset(q, 128, \(paddedK - k));" : "")
            }
          }
        }

        """
    }

    /// The int8 dot step. `rows` rows of `Q` (int8, [rows, K]) against `channels` weight rows of
    /// `W` (int8, [channels, K]), dequantized with `S` (f32 [channels], s_in * s_w) plus `B` (f32
    /// [channels]) and the epilogue. Rows come in blocks of `rowsPerBlock` sharing `channels`
    /// (a Conv: one block per image and group, `channels` = the group's output channels); output
    /// element (row r of block b, channel c of the block's group) is at
    /// `Y[b * blockStride + c * channelStride + r * rowStride]`.
    /// Parallel range: all rows. Arguments: Q, W, S, B, Y.
    public static func dot(name: String, rows: Int, rowsPerBlock: Int, channels: Int, k: Int, groups: Int,
                           blockStride: Int, channelStride: Int, rowStride: Int,
                           epilogue: [CPUKernelLibrary.Epilogue]) -> String {
        // Rows go in tiles of up to 16 (within one block): each group of four weight rows is read
        // once per tile, and each channel's results are stored as one run (contiguous for a Conv).
        let epilogueCode = epilogue.isEmpty ? "" : "          {\n" + CPUKernelLibrary.epilogueCode(epilogue, "v") + "\n          }\n"
        var s = "// \(name): int8 dot, \(rows) rows x \(channels) channels x \(k)\(groups > 1 ? ", \(groups) groups" : "")\n"
        s += "void \(name)(void **args, long begin, long end) {\n"
        s += "  const uint8_t *Q = (const uint8_t *)args[0];\n  const int8_t *W = (const int8_t *)args[1];\n"
        s += "  const float *S = (const float *)args[2];\n  const float *B = (const float *)args[3];\n"
        s += "  const int32_t *C = (const int32_t *)args[4];\n  float *Y = (float *)args[5];\n"
        s += "  int32_t acc[16][4];\n"
        s += "  for (long i = begin; i < end;) {\n"
        s += "    long block = i / \(rowsPerBlock), r = i % \(rowsPerBlock), base = (block % \(groups)) * \(channels);\n"
        s += "    long tile = end - i;\n    if (tile > 16) tile = 16;\n    if (tile > \(rowsPerBlock) - r) tile = \(rowsPerBlock) - r;\n"
        s += "    const uint8_t *q = Q + i * \(k);\n"
        s += "    float *y = Y + block * \(blockStride) + r * \(rowStride);\n"
        s += "    long c = 0;\n"
        s += "    for (; c + 4 <= \(channels); c += 4) {\n"
        s += "      const int8_t *w = W + (base + c) * \(k);\n"
        s += "      for (long t = 0; t < tile; ++t) glmc_dot4(q + t * \(k), w, \(k), acc[t]);\n"
        s += "      for (int j = 0; j < 4; ++j) {\n"
        s += "        float scale = S[base + c + j], bias = B[base + c + j];\n        int32_t offset = C[base + c + j];\n"
        s += "        float *yc = y + (c + j) * \(channelStride);\n"
        s += "        for (long t = 0; t < tile; ++t) {\n"
        s += "          float v = (float)(acc[t][j] - offset) * scale + bias;\n"
        s += epilogueCode
        s += "          yc[t * \(rowStride)] = v;\n        }\n      }\n    }\n"
        s += "    for (; c < \(channels); ++c) {\n"
        s += "      const int8_t *w = W + (base + c) * \(k);\n"
        s += "      float scale = S[base + c], bias = B[base + c];\n      int32_t offset = C[base + c];\n"
        s += "      float *yc = y + c * \(channelStride);\n"
        s += "      for (long t = 0; t < tile; ++t) {\n"
        s += "          float v = (float)(glmc_dot1(q + t * \(k), w, \(k)) - offset) * scale + bias;\n"
        s += epilogueCode
        s += "          yc[t * \(rowStride)] = v;\n      }\n    }\n"
        s += "    i += tile;\n  }\n}\n"
        return s
    }
}
