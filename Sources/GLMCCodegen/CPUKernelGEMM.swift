/// The instruction set a CPU plan's kernels are compiled for (`glmc convert --cpu`). It decides the
/// vector width and micro-tile of the blocked GEMM, the compiler's `-m` flags and the plan's
/// `cpu_features` (what a runtime must find on its host).
public enum CPUInstructionSet: String, CaseIterable, Sendable {
    /// Portable C: GCC/Clang vector extensions of 4 floats (SSE2 on x86-64), no `-m` flags.
    case generic
    /// AVX2 + FMA: 8-float vectors, 6x16 micro-tiles.
    case avx2
    /// AVX-512F (+ AVX2, FMA): 16-float vectors, 8x32 micro-tiles.
    case avx512

    /// The features a plan built for this instruction set requires, sorted (its `cpu_features`).
    public var requiredFeatures: [String] {
        switch self {
        case .generic: return []
        case .avx2: return ["avx2", "fma"]
        case .avx512: return ["avx2", "avx512f", "fma"]
        }
    }

    /// The C compiler flags that let the kernels use it.
    public var compilerFlags: [String] {
        switch self {
        case .generic: return []
        case .avx2: return ["-mavx2", "-mfma"]
        case .avx512: return ["-mavx512f", "-mavx2", "-mfma"]
        }
    }

    /// The widest one whose features are all in `features` (a host's, for `--cpu native`).
    public static func best(for features: Set<String>) -> CPUInstructionSet {
        for isa in [CPUInstructionSet.avx512, .avx2] where Set(isa.requiredFeatures).isSubset(of: features) { return isa }
        return .generic
    }

    /// Whether the prelude has `glmc_vmax`/`glmc_vmin` (x86 max/min: the second operand when
    /// either is NaN, which the vector epilogue relies on).
    var hasVectorMinMax: Bool { self != .generic }

    /// Floats per vector register.
    var vectorWidth: Int {
        switch self { case .generic: return 4; case .avx2: return 8; case .avx512: return 16 }
    }

    /// The register-blocked micro-tile: `rows` x `columns` accumulators (columns a multiple of
    /// the vector width), sized so accumulators, B vectors and one broadcast fit the register file.
    var microTile: (rows: Int, columns: Int) {
        switch self { case .generic: return (4, 8); case .avx2: return (6, 16); case .avx512: return (8, 32) }
    }

    /// The vector type and operations the GEMM kernels are written in, defined once per
    /// translation unit (after the target's prelude).
    var vectorPrelude: String {
        switch self {
        case .generic:
            return """
            typedef float glmc_vf __attribute__((vector_size(16)));
            static inline glmc_vf glmc_vload(GLMC_GLOBAL const float *p) { glmc_vf v; memcpy(&v, p, sizeof v); return v; }
            static inline void glmc_vstore(GLMC_GLOBAL float *p, glmc_vf v) { memcpy(p, &v, sizeof v); }
            static inline glmc_vf glmc_vbroadcast(float x) { glmc_vf v = {x, x, x, x}; return v; }
            #define glmc_vzero() ((glmc_vf){0.0f, 0.0f, 0.0f, 0.0f})
            #define glmc_vfma(a, b, c) ((a) * (b) + (c))
            #define glmc_vadd(a, b) ((a) + (b))
            #define glmc_vmul(a, b) ((a) * (b))

            """
        case .avx2:
            return """
            #include <immintrin.h>
            typedef __m256 glmc_vf;
            #define glmc_vload(p) _mm256_loadu_ps(p)
            #define glmc_vstore(p, v) _mm256_storeu_ps((p), (v))
            #define glmc_vbroadcast(x) _mm256_set1_ps(x)
            #define glmc_vzero() _mm256_setzero_ps()
            #define glmc_vfma(a, b, c) _mm256_fmadd_ps((a), (b), (c))
            #define glmc_vadd(a, b) _mm256_add_ps((a), (b))
            #define glmc_vmul(a, b) _mm256_mul_ps((a), (b))
            #define glmc_vmax(a, b) _mm256_max_ps((a), (b))
            #define glmc_vmin(a, b) _mm256_min_ps((a), (b))

            """
        case .avx512:
            return """
            #include <immintrin.h>
            typedef __m512 glmc_vf;
            #define glmc_vload(p) _mm512_loadu_ps(p)
            #define glmc_vstore(p, v) _mm512_storeu_ps((p), (v))
            #define glmc_vbroadcast(x) _mm512_set1_ps(x)
            #define glmc_vzero() _mm512_setzero_ps()
            #define glmc_vfma(a, b, c) _mm512_fmadd_ps((a), (b), (c))
            #define glmc_vadd(a, b) _mm512_add_ps((a), (b))
            #define glmc_vmul(a, b) _mm512_mul_ps((a), (b))
            #define glmc_vmax(a, b) _mm512_max_ps((a), (b))
            #define glmc_vmin(a, b) _mm512_min_ps((a), (b))
            /* c[l * ld + r] = r_r[l] for 8 rows of 16 floats: two in-lane stages give, per 128-bit lane q,
               column 4q + k of rows 0-3 in s_k and of rows 4-7 in s_(k+4); each is stored as two runs of 4. */
            static inline void glmc_store_transposed_8x16(float *c, long ld, __m512 r0, __m512 r1, __m512 r2, __m512 r3,
                                                          __m512 r4, __m512 r5, __m512 r6, __m512 r7) {
              __m512 t0 = _mm512_unpacklo_ps(r0, r1), t1 = _mm512_unpackhi_ps(r0, r1), t2 = _mm512_unpacklo_ps(r2, r3), t3 = _mm512_unpackhi_ps(r2, r3);
              __m512 t4 = _mm512_unpacklo_ps(r4, r5), t5 = _mm512_unpackhi_ps(r4, r5), t6 = _mm512_unpacklo_ps(r6, r7), t7 = _mm512_unpackhi_ps(r6, r7);
              __m512 s0 = _mm512_shuffle_ps(t0, t2, 0x44), s1 = _mm512_shuffle_ps(t0, t2, 0xEE), s2 = _mm512_shuffle_ps(t1, t3, 0x44), s3 = _mm512_shuffle_ps(t1, t3, 0xEE);
              __m512 s4 = _mm512_shuffle_ps(t4, t6, 0x44), s5 = _mm512_shuffle_ps(t4, t6, 0xEE), s6 = _mm512_shuffle_ps(t5, t7, 0x44), s7 = _mm512_shuffle_ps(t5, t7, 0xEE);
              _mm_storeu_ps(c + 0 * ld, _mm512_extractf32x4_ps(s0, 0)); _mm_storeu_ps(c + 0 * ld + 4, _mm512_extractf32x4_ps(s4, 0)); _mm_storeu_ps(c + 1 * ld, _mm512_extractf32x4_ps(s1, 0)); _mm_storeu_ps(c + 1 * ld + 4, _mm512_extractf32x4_ps(s5, 0)); _mm_storeu_ps(c + 2 * ld, _mm512_extractf32x4_ps(s2, 0)); _mm_storeu_ps(c + 2 * ld + 4, _mm512_extractf32x4_ps(s6, 0)); _mm_storeu_ps(c + 3 * ld, _mm512_extractf32x4_ps(s3, 0)); _mm_storeu_ps(c + 3 * ld + 4, _mm512_extractf32x4_ps(s7, 0));
              _mm_storeu_ps(c + 4 * ld, _mm512_extractf32x4_ps(s0, 1)); _mm_storeu_ps(c + 4 * ld + 4, _mm512_extractf32x4_ps(s4, 1)); _mm_storeu_ps(c + 5 * ld, _mm512_extractf32x4_ps(s1, 1)); _mm_storeu_ps(c + 5 * ld + 4, _mm512_extractf32x4_ps(s5, 1)); _mm_storeu_ps(c + 6 * ld, _mm512_extractf32x4_ps(s2, 1)); _mm_storeu_ps(c + 6 * ld + 4, _mm512_extractf32x4_ps(s6, 1)); _mm_storeu_ps(c + 7 * ld, _mm512_extractf32x4_ps(s3, 1)); _mm_storeu_ps(c + 7 * ld + 4, _mm512_extractf32x4_ps(s7, 1));
              _mm_storeu_ps(c + 8 * ld, _mm512_extractf32x4_ps(s0, 2)); _mm_storeu_ps(c + 8 * ld + 4, _mm512_extractf32x4_ps(s4, 2)); _mm_storeu_ps(c + 9 * ld, _mm512_extractf32x4_ps(s1, 2)); _mm_storeu_ps(c + 9 * ld + 4, _mm512_extractf32x4_ps(s5, 2)); _mm_storeu_ps(c + 10 * ld, _mm512_extractf32x4_ps(s2, 2)); _mm_storeu_ps(c + 10 * ld + 4, _mm512_extractf32x4_ps(s6, 2)); _mm_storeu_ps(c + 11 * ld, _mm512_extractf32x4_ps(s3, 2)); _mm_storeu_ps(c + 11 * ld + 4, _mm512_extractf32x4_ps(s7, 2));
              _mm_storeu_ps(c + 12 * ld, _mm512_extractf32x4_ps(s0, 3)); _mm_storeu_ps(c + 12 * ld + 4, _mm512_extractf32x4_ps(s4, 3)); _mm_storeu_ps(c + 13 * ld, _mm512_extractf32x4_ps(s1, 3)); _mm_storeu_ps(c + 13 * ld + 4, _mm512_extractf32x4_ps(s5, 3)); _mm_storeu_ps(c + 14 * ld, _mm512_extractf32x4_ps(s2, 3)); _mm_storeu_ps(c + 14 * ld + 4, _mm512_extractf32x4_ps(s6, 3)); _mm_storeu_ps(c + 15 * ld, _mm512_extractf32x4_ps(s3, 3)); _mm_storeu_ps(c + 15 * ld + 4, _mm512_extractf32x4_ps(s7, 3));
            }

            """
        }
    }
}

/// Cache-blocked, register-blocked GEMM kernels (Gemm, MatMul and convolution through im2col).
///
/// `C[M,N] = alpha * A[M,K] B[K,N] + beta * bias`, then an elementwise epilogue, for `batches`
/// independent products (batched MatMul; convolution's images x groups). The schedule:
///
///     for each job (batch, block of MC rows, block of NC columns)   -- the parallel range
///       for each depth block of KC
///         for each panel of NR columns: B's KC x NR panel (packed)  -- stays in L1
///           for each micro-tile of MR rows: MR x NR accumulators in registers over the KC block,
///             then added into C (the epilogue when the last depth block is done)
///
/// B is read from a panel layout: `[N/NR][K][NR]` floats, zero-padded to whole panels. Constant B
/// (weights) is packed that way at convert time (`packPanels`); otherwise each panel is packed at
/// run time into a stack buffer, from a strided matrix or straight from the image (im2col: the
/// patch matrix is never materialised). A is read in place through MR row pointers (activations,
/// any row/depth strides: transposed A is free) or from the same panel layout `[M/MR][K][MR]`
/// (convolution weights, packed at convert time). Rows past M are clamped or zero-padded, columns
/// past N are computed on zeros and not stored. A convolution may compute Yᵀ instead (`cTransposed`:
/// pixels as rows, channels as columns, the depth one block), its A then being its input read in
/// place or packed per job, or its patches read straight from the image (`AOperand.patches`).
public enum CPUKernelGEMM {
    /// Where A comes from.
    public enum AOperand: Sendable {
        /// In place: element (r, p) at `r * rowStride + p * depthStride`.
        case strided(rowStride: Int, depthStride: Int)
        /// Packed panels of MR rows (`packPanels(rows:...)` of an [M, K] matrix).
        case packed
        /// The transposed patch matrix of a convolution (rows: output pixels; depth: channel, ky,
        /// kx) read straight from an image that every window lies inside (padded beforehand:
        /// `padImage`; the geometry's pads are 0): element (r, p) at `rowBase(r) + tapOffset(p)`,
        /// a row pointer per micro-tile row and a table of tap offsets, so nothing is packed.
        case patches(Im2Col)
    }

    /// The geometry of a 2-D convolution seen as a GEMM over its patch matrix (one image, one group).
    public struct Im2Col: Sendable {
        public var channels: Int, height: Int, width: Int
        public var kernelHeight: Int, kernelWidth: Int
        public var outputHeight: Int, outputWidth: Int
        public var strideH: Int, strideW: Int, padTop: Int, padLeft: Int, dilationH: Int, dilationW: Int
        public init(channels: Int, height: Int, width: Int, kernelHeight: Int, kernelWidth: Int, outputHeight: Int, outputWidth: Int,
                    strideH: Int, strideW: Int, padTop: Int, padLeft: Int, dilationH: Int, dilationW: Int) {
            self.channels = channels; self.height = height; self.width = width
            self.kernelHeight = kernelHeight; self.kernelWidth = kernelWidth
            self.outputHeight = outputHeight; self.outputWidth = outputWidth
            self.strideH = strideH; self.strideW = strideW; self.padTop = padTop; self.padLeft = padLeft
            self.dilationH = dilationH; self.dilationW = dilationW
        }
    }

    /// Where B comes from.
    public enum BOperand: Sendable {
        /// Packed panels of NR columns (`packPanels(columns:...)`), made at convert time.
        case packed
        /// Element (p, c) at `p * depthStride + c * columnStride`; packed at run time.
        case strided(depthStride: Int, columnStride: Int)
        /// The patch matrix of a convolution's input; packed at run time.
        case im2col(Im2Col)
    }

    /// One GEMM step. Offsets are C expressions in the batch index `bt` (in floats).
    public struct Spec: Sendable {
        public var m: Int, n: Int, k: Int
        public var batches = 1
        public var a: AOperand, aOffset = "0"
        public var b: BOperand, bOffset = "0"
        public var cOffset = "0"
        /// C stored column by column: element (r, c) at `c * m + r`. A convolution whose images are
        /// small computes its output transposed (rows = pixels, columns = output channels), so that
        /// the many channels fill whole NR-wide panels and the few pixels the MR-row tiles.
        public var cTransposed = false
        public var alpha: Float = 1, beta: Float = 1
        /// The bias: element (r, c) at `offset + r * rowStride + c * columnStride`.
        public var bias: (rowStride: Int, columnStride: Int, offset: String)?
        public var epilogue: [CPUKernelLibrary.Epilogue] = []
        /// Argument indices of A, B, the bias and C.
        public var arguments: (a: Int, b: Int, bias: Int?, c: Int)
        public init(m: Int, n: Int, k: Int, a: AOperand, b: BOperand, arguments: (a: Int, b: Int, bias: Int?, c: Int)) {
            self.m = m; self.n = n; self.k = k; self.a = a; self.b = b; self.arguments = arguments
        }
    }

    /// Depth block: B's KC x NR panel stays in L1, A's MC x KC block in L2.
    static let depthBlock = 256
    /// Most rows per job: MC x KC of A stays in L2 (256 KiB at 256 x 256). Each job packs its own
    /// B panels, so when B is packed at run time (im2col above all) fewer, taller row blocks pack
    /// each panel fewer times; a B packed at convert time costs nothing to share.
    static let maxRowsPerBlockPackedB = 96
    static let maxRowsPerBlockPackingB = 256
    /// Jobs a step should offer at least, when it is big enough, so threads balance.
    static let desiredJobs = 8

    /// Multiply-adds below which the plain kernels (`CPUKernelLibrary.gemm`/`conv2d`) are used:
    /// too small for packing to pay.
    public static let minimumWork = 4096

    /// The blocking of a spec: rows per job (MC), columns per job (NC), job counts.
    struct Blocking {
        var mc: Int, nc: Int, mBlocks: Int, nBlocks: Int, kc: Int
        var jobs: Int
    }

    static func blocking(_ s: Spec, isa: CPUInstructionSet) -> Blocking {
        let (mr, nr) = isa.microTile
        let mTiles = (s.m + mr - 1) / mr, nPanels = (s.n + nr - 1) / nr
        // Equal row blocks.
        var maxTiles = maxRowsPerBlockPackedB / mr
        if case .packed = s.b {} else { maxTiles = max(1, maxRowsPerBlockPackingB / mr) }
        let mBlocks = (mTiles + maxTiles - 1) / maxTiles
        let mc = mr * ((mTiles + mBlocks - 1) / mBlocks)
        // Up to 4 panels per job, fewer when that leaves too few jobs.
        let otherJobs = max(1, mBlocks * s.batches)
        let panelsPerJob = max(1, min(4, nPanels * otherJobs / desiredJobs))
        let nBlocks = (nPanels + panelsPerJob - 1) / panelsPerJob
        // A depth just above a block is split evenly rather than leaving a thin tail.
        let kBlocks = s.cTransposed ? 1 : (s.k + depthBlock - 1) / depthBlock
        let kc = (s.k + kBlocks - 1) / kBlocks
        return Blocking(mc: mc, nc: nr * panelsPerJob, mBlocks: mBlocks, nBlocks: nBlocks, kc: max(1, kc),
                        jobs: s.batches * mBlocks * nBlocks)
    }

    /// Deepest product computed with a transposed C: its depth is one block, and the packed A of a
    /// job (up to 96 rows x depth floats, 768 KiB here) lives on the stack.
    public static let maximumTransposedDepth = 2048

    /// The multiply-adds an M x N product computes per depth index, counting the zero padding
    /// of partial micro-tiles and panels.
    public static func paddedArea(rows: Int, columns: Int, isa: CPUInstructionSet) -> Int {
        let (mr, nr) = isa.microTile
        return (rows + mr - 1) / mr * mr * ((columns + nr - 1) / nr * nr)
    }

    /// The parallel range of the step (its jobs).
    public static func jobs(_ s: Spec, isa: CPUInstructionSet) -> Int { blocking(s, isa: isa).jobs }

    /// Copies `planes` planes [h, w] into planes [hp, wp] with `padTop` rows and `padLeft` columns
    /// of zeros before them and zeros after (the image a `.patches` A reads). Parallel range: planes.
    public static func padImage(name: String, planes: Int, h: Int, w: Int, hp: Int, wp: Int, padTop: Int, padLeft: Int) -> String {
        var c = "// \(name): \(planes) planes [\(h)x\(w)] zero-padded to [\(hp)x\(wp)]\n"
        c += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        c += "  GLMC_GLOBAL const float *X = (GLMC_GLOBAL const float *)args[0];\n  GLMC_GLOBAL float *P = (GLMC_GLOBAL float *)args[1];\n"
        c += "  for (long plane = begin; plane < end; ++plane) {\n"
        c += "    GLMC_GLOBAL const float *x = X + plane * \(h * w);\n    GLMC_GLOBAL float *p = P + plane * \(hp * wp);\n"
        c += "    for (long r = 0; r < \(hp); ++r) {\n      GLMC_GLOBAL float *d = p + r * \(wp);\n      long iy = r - \(padTop);\n"
        c += "      if (iy < 0 || iy >= \(h)) { for (long q = 0; q < \(wp); ++q) d[q] = 0.0f; continue; }\n"
        c += "      for (long q = 0; q < \(padLeft); ++q) d[q] = 0.0f;\n"
        c += "      for (long q = 0; q < \(min(w, wp - padLeft)); ++q) d[\(padLeft) + q] = x[iy * \(w) + q];\n"
        c += "      for (long q = \(padLeft + w); q < \(wp); ++q) d[q] = 0.0f;\n"
        c += "    }\n  }\n}\n"
        return c
    }

    /// Packs an [rows, depth] matrix (`transposed`: given as [depth, rows]) into panels of
    /// `panel` rows: `[ceil(rows/panel)][depth][panel]`, zero-padded. B's panels are its columns:
    /// pack B[K,N] with `transposed: true`, B given as [N,K] with `transposed: false`.
    public static func packPanels(_ x: [Float], rows: Int, depth: Int, panel: Int, transposed: Bool) -> [Float] {
        let panels = (rows + panel - 1) / panel
        var out = [Float](repeating: 0, count: panels * depth * panel)
        for r in 0 ..< rows {
            let base = (r / panel) * depth * panel + r % panel
            for p in 0 ..< depth { out[base + p * panel] = transposed ? x[p * rows + r] : x[r * depth + p] }
        }
        return out
    }

    /// The C kernel (ABI `void NAME(void **args, long begin, long end)`, parallel range: `jobs`).
    public static func kernel(name: String, _ s: Spec, isa: CPUInstructionSet) -> String {
        let (mr, nr) = isa.microTile
        let vw = isa.vectorWidth, nv = nr / vw
        let bl = blocking(s, isa: isa)
        let lit = CPUKernelLibrary.lit
        var c = "// \(name): gemm \(s.batches > 1 ? "\(s.batches) x " : "")\(s.m)x\(s.k) * \(s.k)x\(s.n), \(describe(s)); "
        c += "\(mr)x\(nr) micro-tiles (\(isa.rawValue)), blocks MC \(bl.mc) NC \(bl.nc) KC \(bl.kc)\n"
        c += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        c += "  GLMC_GLOBAL const float *A = (GLMC_GLOBAL const float *)args[\(s.arguments.a)];\n"
        c += "  GLMC_GLOBAL const float *B = (GLMC_GLOBAL const float *)args[\(s.arguments.b)];\n"
        if let i = s.arguments.bias { c += "  GLMC_GLOBAL const float *bias = (GLMC_GLOBAL const float *)args[\(i)];\n" }
        c += "  GLMC_GLOBAL float *C = (GLMC_GLOBAL float *)args[\(s.arguments.c)];\n"
        let packsAtRunTime: Bool
        if case .packed = s.b { packsAtRunTime = false } else { packsAtRunTime = true }
        if packsAtRunTime { c += "  float bpack[\(bl.kc * nr)] __attribute__((aligned(64)));\n" }
        // A stored column by column (rows adjacent) is packed per job and depth block into MR-row
        // panels: read in place, each micro-tile would touch a cache line per depth index. Measured
        // exception: a transposed product over 128 or more pixels (13x13, 14x14 images) runs 7-8%
        // faster reading them in place; 7x7 ones and Winograd's products run faster packed.
        let columnMajorA: Int?
        if case .strided(1, let ds) = s.a, !(s.cTransposed && ds >= 128) { columnMajorA = ds } else { columnMajorA = nil }
        if columnMajorA != nil { c += "  float apack[\(bl.mc * bl.kc)] __attribute__((aligned(64)));\n" }
        c += "  float tile[\(mr * nr)] __attribute__((aligned(64)));\n"
        if case .patches(let g) = s.a {
            let taps = g.kernelHeight * g.kernelWidth
            c += "  int tapoff[\(s.k)];\n"
            c += "  for (int p = 0; p < \(s.k); ++p) tapoff[p] = p / \(taps) * \(g.height * g.width) + p / \(g.kernelWidth) % \(g.kernelHeight) * \(g.dilationH * g.width) + p % \(g.kernelWidth) * \(g.dilationW);\n"
        }
        c += "  for (long job = begin; job < end; ++job) {\n"
        c += "    long bt = job / \(bl.mBlocks * bl.nBlocks), mb = job / \(bl.nBlocks) % \(bl.mBlocks), nb = job % \(bl.nBlocks);\n"
        c += "    (void)bt;\n"
        c += "    GLMC_GLOBAL const float *Ab = A + (\(s.aOffset));\n    GLMC_GLOBAL const float *Bb = B + (\(s.bOffset));\n    GLMC_GLOBAL float *Cb = C + (\(s.cOffset));\n"
        if let bias = s.bias { c += "    GLMC_GLOBAL const float *biasb = bias + (\(bias.offset));\n" }
        c += "    long m0 = mb * \(bl.mc), m1 = m0 + \(bl.mc) < \(s.m) ? m0 + \(bl.mc) : \(s.m);\n"
        c += "    long n0 = nb * \(bl.nc), n1 = n0 + \(bl.nc) < \(s.n) ? n0 + \(bl.nc) : \(s.n);\n"
        c += "    for (long k0 = 0; k0 < \(s.k); k0 += \(bl.kc)) {\n"
        c += "      long kc = \(s.k) - k0 < \(bl.kc) ? \(s.k) - k0 : \(bl.kc);\n"
        c += "      int first = k0 == 0, last = k0 + kc == \(s.k);\n"
        if let ds = columnMajorA {
            c += "      for (long i0 = m0; i0 < m1; i0 += \(mr)) {\n"
            c += "        float *dst = apack + (i0 - m0) * kc;\n        long rows = m1 - i0 < \(mr) ? m1 - i0 : \(mr);\n"
            c += "        for (long p = 0; p < kc; ++p) {\n"
            c += "          GLMC_GLOBAL const float *src = Ab + i0 + (k0 + p) * \(ds);\n"
            c += "          if (rows == \(mr)) { for (long r = 0; r < \(mr); ++r) dst[p * \(mr) + r] = src[r]; }\n"
            c += "          else { for (long r = 0; r < \(mr); ++r) dst[p * \(mr) + r] = r < rows ? src[r] : 0.0f; }\n"
            c += "        }\n      }\n"
        }
        c += "      for (long j0 = n0; j0 < n1; j0 += \(nr)) {\n"
        c += "        long nr = n1 - j0 < \(nr) ? n1 - j0 : \(nr);\n"
        c += packB(s.b, k: s.k, panelWidth: nr)
        c += "        for (long i0 = m0; i0 < m1; i0 += \(mr)) {\n"
        c += "          long mr = m1 - i0 < \(mr) ? m1 - i0 : \(mr);\n"
        // Row pointers of A at (i0 + r, k0) and the index of depth p from them.
        var aIndex = "p * \(mr)"
        switch s.a {
        case .patches(let g):
            aIndex = "o"
            for r in 0 ..< mr {
                c += "          long pix\(r) = i0 + (\(r) < mr ? \(r) : 0);\n"
                c += "          GLMC_GLOBAL const float *a\(r) = Ab + pix\(r) / \(g.outputWidth) * \(g.strideH * g.width) + pix\(r) % \(g.outputWidth) * \(g.strideW);\n"
            }
            c += "          const int *to = tapoff + k0;\n"
        case .strided where columnMajorA != nil:
            c += "          const float *ap = apack + (i0 - m0) * kc;\n"
            for r in 0 ..< mr { c += "          const float *a\(r) = ap + \(r);\n" }
        case .strided(let rs, let ds):
            aIndex = "p * \(ds)"
            for r in 0 ..< mr { c += "          GLMC_GLOBAL const float *a\(r) = Ab + (i0 + (\(r) < mr ? \(r) : 0)) * \(rs) + k0 * \(ds);\n" }
        case .packed:
            c += "          GLMC_GLOBAL const float *ap = Ab + (i0 / \(mr)) * \(s.k * mr) + k0 * \(mr);\n"
            for r in 0 ..< mr { c += "          GLMC_GLOBAL const float *a\(r) = ap + \(r);\n" }
        }
        // The micro-kernel.
        var acc: [String] = []
        for r in 0 ..< mr { for v in 0 ..< nv { acc.append("c\(r)_\(v)") } }
        c += "          glmc_vf " + acc.map { "\($0) = glmc_vzero()" }.joined(separator: ", ") + ";\n"
        c += "          for (long p = 0; p < kc; ++p) {\n"
        c += "            GLMC_GLOBAL const float *bq = bp + p * bpitch;\n"
        if case .patches = s.a { c += "            long o = to[p];\n" }
        c += "            glmc_vf " + (0 ..< nv).map { "b\($0) = glmc_vload(bq + \($0 * vw))" }.joined(separator: ", ") + ";\n"
        for r in 0 ..< mr {
            c += "            { glmc_vf a = glmc_vbroadcast(a\(r)[\(aIndex)]); "
            c += (0 ..< nv).map { "c\(r)_\($0) = glmc_vfma(a, b\($0), c\(r)_\($0));" }.joined(separator: " ") + " }\n"
        }
        c += "          }\n"
        if s.cTransposed, isa == .avx512, mr == 8, let fast = vectorWriteOut(s, isa: isa) {
            // A whole tile straight into C: vector v of row r holds 16 columns, which are 16 rows of
            // C; each 8 x 16 block is transposed in registers and stored as 16 runs of 8 floats.
            c += "          if (mr == \(mr) && nr == \(nr)) {\n"
            for v in 0 ..< nv {
                c += "            { glmc_vf " + (0 ..< mr).map { "t\($0) = c\($0)_\(v)" }.joined(separator: ", ") + ";\n"
                for r in 0 ..< mr where !fast(r, v).isEmpty { c += "              { glmc_vf t = t\(r);\(fast(r, v)) t\(r) = t; }\n" }
                c += "              glmc_store_transposed_8x16(Cb + (j0 + \(v * vw)) * \(s.m) + i0, \(s.m), " + (0 ..< mr).map { "t\($0)" }.joined(separator: ", ") + "); }\n"
            }
            c += "            continue;\n          }\n"
        }
        if !s.cTransposed, let fast = vectorWriteOut(s, isa: isa) {
            // A whole tile goes from the registers into C (adding earlier depth blocks, then
            // alpha, bias and epilogue), without the round trip through `tile`.
            c += "          if (mr == \(mr) && nr == \(nr)) {\n"
            for r in 0 ..< mr {
                for v in 0 ..< nv {
                    c += "            { GLMC_GLOBAL float *cp = Cb + (i0 + \(r)) * \(s.n) + j0 + \(v * vw); glmc_vf t = c\(r)_\(v);\n"
                    c += "              if (!first) t = glmc_vadd(t, glmc_vload(cp));\n"
                    if !fast(r, v).isEmpty { c += "              if (last) {\(fast(r, v))}\n" }
                    c += "              glmc_vstore(cp, t); }\n"
                }
            }
            c += "            continue;\n          }\n"
        }
        for r in 0 ..< mr { for v in 0 ..< nv { c += "          glmc_vstore(tile + \(r * nr + v * vw), c\(r)_\(v));\n" } }
        // Into C: the first depth block stores, later ones add, the last applies the epilogue.
        // One plain loop per case, so each vectorizes.
        var finish = ""
        if s.alpha != 1 { finish += " v *= \(lit(s.alpha));" }
        if let bias = s.bias {
            let e = "biasb[(i0 + r) * \(bias.rowStride) + (j0 + j) * \(bias.columnStride)]"
            finish += " v += \(s.beta == 1 ? e : "\(lit(s.beta)) * \(e)");"
        }
        for e in s.epilogue { finish += " " + e.apply("v") }
        if s.cTransposed {
            // The depth is one block, so the tile holds whole sums. Column j of it is a run of mr
            // consecutive floats of C.
            c += "          for (long j = 0; j < nr; ++j) {\n"
            c += "            GLMC_GLOBAL float *cr = Cb + (j0 + j) * \(s.m) + i0;\n            const float *tr = tile + j;\n"
            c += "            for (long r = 0; r < mr; ++r) { float v = tr[r * \(nr)];\(finish) cr[r] = v; }\n"
            c += "          }\n"
        } else {
            c += "          for (long r = 0; r < mr; ++r) {\n"
            c += "            GLMC_GLOBAL float *cr = Cb + (i0 + r) * \(s.n) + j0;\n            const float *tr = tile + r * \(nr);\n"
            c += "            if (last && first) { for (long j = 0; j < nr; ++j) { float v = tr[j];\(finish) cr[j] = v; } }\n"
            c += "            else if (last) { for (long j = 0; j < nr; ++j) { float v = cr[j] + tr[j];\(finish) cr[j] = v; } }\n"
            c += "            else if (first) { for (long j = 0; j < nr; ++j) cr[j] = tr[j]; }\n"
            c += "            else { for (long j = 0; j < nr; ++j) cr[j] += tr[j]; }\n"
            c += "          }\n"
        }
        c += "        }\n      }\n    }\n  }\n}\n"
        return c
    }

    /// The last depth block's work on one accumulator vector `t` (row r, vector v of a whole tile)
    /// as vector code, or nil when something needs the scalar path (LeakyRelu, Sigmoid, Tanh, a
    /// bias strided along the columns, or no vector min/max).
    static func vectorWriteOut(_ s: Spec, isa: CPUInstructionSet) -> ((Int, Int) -> String)? {
        let vw = isa.vectorWidth, lit = CPUKernelLibrary.lit
        var steps: [(Int, Int) -> String] = []
        if s.alpha != 1 { steps.append { _, _ in " t = glmc_vmul(t, glmc_vbroadcast(\(lit(s.alpha))));" } }
        if let bias = s.bias {
            let scaled = { (x: String) in s.beta == 1 ? x : "glmc_vmul(\(x), glmc_vbroadcast(\(lit(s.beta))))" }
            switch bias.columnStride {
            case 0: steps.append { r, _ in " t = glmc_vadd(t, \(scaled("glmc_vbroadcast(biasb[(i0 + \(r)) * \(bias.rowStride)])")));" }
            case 1: steps.append { r, v in " t = glmc_vadd(t, \(scaled("glmc_vload(biasb + (i0 + \(r)) * \(bias.rowStride) + j0 + \(v * vw))")));" }
            default: return nil
            }
        }
        for e in s.epilogue {
            guard isa.hasVectorMinMax else { return nil }
            switch e {
            // max(t, 0) gives 0 for NaN, as `v > 0 ? v : 0` does.
            case .relu: steps.append { _, _ in " t = glmc_vmax(t, glmc_vzero());" }
            // max(lo, t) and min(hi, t) keep a NaN, as the scalar comparisons do.
            case .clip(let lo, let hi):
                guard !(lo > hi) else { return nil }
                if lo > -.infinity { steps.append { _, _ in " t = glmc_vmax(glmc_vbroadcast(\(lit(lo))), t);" } }
                if hi < .infinity { steps.append { _, _ in " t = glmc_vmin(glmc_vbroadcast(\(lit(hi))), t);" } }
            default: return nil
            }
        }
        return { r, v in steps.map { $0(r, v) }.joined() + (steps.isEmpty ? "" : " ") }
    }

    static func describe(_ s: Spec) -> String {
        let a: String, b: String
        switch s.a {
        case .strided: a = "A in place"
        case .packed: a = "A packed"
        case .patches(let g): a = "A patches of \(g.channels)x\(g.height)x\(g.width), kernel \(g.kernelHeight)x\(g.kernelWidth)"
        }
        switch s.b {
        case .packed: b = "B packed"
        case .strided: b = "B packed at run time"
        case .im2col(let g): b = "B im2col of \(g.channels)x\(g.height)x\(g.width), kernel \(g.kernelHeight)x\(g.kernelWidth)"
        }
        return a + ", " + b + (s.cTransposed ? ", C transposed" : "")
    }

    /// The code that points `bp` at the KC x NR panel of B at (k0, j0). In the C, `nr` is the
    /// panel's count of valid columns; here it is the panel width NR.
    static func packB(_ b: BOperand, k: Int, panelWidth nr: Int) -> String {
        var c = ""
        switch b {
        case .packed:
            c += "        GLMC_GLOBAL const float *bp = Bb + ((j0 / \(nr)) * \(k) + k0) * \(nr);\n        const long bpitch = \(nr);\n"
        case .strided(let ds, let cs):
            c += "        GLMC_GLOBAL const float *bp = bpack;\n        long bpitch = \(nr);\n"
            if cs == 1 {
                // A whole panel of rows of B is read in place.
                c += "        if (nr == \(nr)) { bp = Bb + k0 * \(ds) + j0; bpitch = \(ds); } else\n"
                c += "        for (long p = 0; p < kc; ++p) {\n"
                c += "          GLMC_GLOBAL const float *src = Bb + (k0 + p) * \(ds) + j0;\n          GLMC_GLOBAL float *dst = bpack + p * \(nr);\n"
                c += "          for (long j = 0; j < nr; ++j) dst[j] = src[j];\n"
                c += "          for (long j = nr; j < \(nr); ++j) dst[j] = 0.0f;\n        }\n"
            } else {
                // Columns are the far-apart dimension: read along the depth, write across.
                c += "        for (long j = 0; j < \(nr); ++j) {\n"
                c += "          if (j >= nr) { for (long p = 0; p < kc; ++p) bpack[p * \(nr) + j] = 0.0f; continue; }\n"
                c += "          GLMC_GLOBAL const float *src = Bb + k0 * \(ds) + (j0 + j) * \(cs);\n"
                c += "          for (long p = 0; p < kc; ++p) bpack[p * \(nr) + j] = src[p * \(ds)];\n        }\n"
            }
        case .im2col(let g):
            // The panel's output pixels, cut into runs within one output row; per depth index
            // (channel, ky, kx) each run is a strided row segment of the image, zero outside it.
            let taps = g.kernelHeight * g.kernelWidth
            c += "        GLMC_GLOBAL const float *bp = bpack;\n        const long bpitch = \(nr);\n"
            c += "        long run_j[\(nr + 1)], run_oy[\(nr)], run_ox[\(nr)]; int runs = 0;\n"
            c += "        for (long j = 0; j < nr; ) {\n"
            c += "          long pix = j0 + j, len = \(g.outputWidth) - pix % \(g.outputWidth);\n"
            c += "          if (len > nr - j) len = nr - j;\n"
            c += "          run_j[runs] = j; run_oy[runs] = pix / \(g.outputWidth); run_ox[runs] = pix % \(g.outputWidth); ++runs; j += len;\n"
            c += "        }\n        run_j[runs] = nr;\n"
            // Most runs a panel can have: pixels of a panel span at most this many output rows.
            let maxRuns = min(nr, (nr + g.outputWidth - 1) / g.outputWidth + 1)
            if taps * maxRuns <= 2048 {
                // Per tap and run, where the segment starts and which part lies inside the image:
                // the same for every channel, so computed once per panel instead of per depth index.
                c += "        int tab_off[\(taps * maxRuns)], tab_lo[\(taps * maxRuns)], tab_hi[\(taps * maxRuns)];\n"
                c += "        for (int t = 0; t < \(taps); ++t) {\n"
                c += "          long ky = t / \(g.kernelWidth), kx = t % \(g.kernelWidth);\n"
                c += "          for (int q = 0; q < runs; ++q) {\n"
                c += "            long len = run_j[q + 1] - run_j[q], e = t * \(maxRuns) + q;\n"
                c += "            long iy = run_oy[q] * \(g.strideH) - \(g.padTop) + ky * \(g.dilationH);\n"
                c += "            long ix0 = run_ox[q] * \(g.strideW) - \(g.padLeft) + kx * \(g.dilationW);\n"
                c += "            long lo = ix0 >= 0 ? 0 : (-ix0 + \(g.strideW - 1)) / \(g.strideW);\n"
                c += "            long hi = \(g.width) - ix0 <= 0 ? 0 : (\(g.width) - ix0 + \(g.strideW - 1)) / \(g.strideW);\n"
                c += "            if (hi > len) hi = len;\n            if (lo > hi) lo = hi;\n"
                c += "            if (iy < 0 || iy >= \(g.height)) { lo = hi = 0; iy = 0; ix0 = 0; }\n"
                c += "            tab_off[e] = (int)(iy * \(g.width) + ix0); tab_lo[e] = (int)lo; tab_hi[e] = (int)hi;\n"
                c += "          }\n        }\n"
                c += "        long ic = k0 / \(taps), tap = k0 % \(taps);\n"
                c += "        for (long p = 0; p < kc; ++p) {\n"
                c += "          GLMC_GLOBAL const float *xc = Bb + ic * \(g.height * g.width);\n          GLMC_GLOBAL float *dst = bpack + p * \(nr);\n"
                c += "          for (int q = 0; q < runs; ++q) {\n"
                c += "            long e = tap * \(maxRuns) + q, len = run_j[q + 1] - run_j[q], lo = tab_lo[e], hi = tab_hi[e], u;\n"
                c += "            GLMC_GLOBAL float *d = dst + run_j[q];\n            GLMC_GLOBAL const float *s = xc + tab_off[e];\n"
                c += "            for (u = 0; u < lo; ++u) d[u] = 0.0f;\n"
                c += "            for (u = lo; u < hi; ++u) d[u] = s[u * \(g.strideW)];\n"
                c += "            for (u = hi; u < len; ++u) d[u] = 0.0f;\n"
                c += "          }\n"
                c += "          for (long j = nr; j < \(nr); ++j) dst[j] = 0.0f;\n"
                c += "          if (++tap == \(taps)) { tap = 0; ++ic; }\n        }\n"
                return c
            }
            c += "        for (long p = 0; p < kc; ++p) {\n"
            c += "          long kk = k0 + p, ic = kk / \(taps), ky = kk / \(g.kernelWidth) % \(g.kernelHeight), kx = kk % \(g.kernelWidth);\n"
            c += "          GLMC_GLOBAL const float *xc = Bb + ic * \(g.height * g.width);\n          GLMC_GLOBAL float *dst = bpack + p * \(nr);\n"
            c += "          for (int q = 0; q < runs; ++q) {\n"
            c += "            long j = run_j[q], len = run_j[q + 1] - j, t;\n            GLMC_GLOBAL float *d = dst + j;\n"
            c += "            long iy = run_oy[q] * \(g.strideH) - \(g.padTop) + ky * \(g.dilationH);\n"
            c += "            if (iy < 0 || iy >= \(g.height)) { for (t = 0; t < len; ++t) d[t] = 0.0f; continue; }\n"
            c += "            long ix0 = run_ox[q] * \(g.strideW) - \(g.padLeft) + kx * \(g.dilationW);\n"
            // ix0 + t * strideW in [0, width): t in [lo, hi).
            c += "            long lo = ix0 >= 0 ? 0 : (-ix0 + \(g.strideW - 1)) / \(g.strideW);\n"
            c += "            long hi = \(g.width) - ix0 <= 0 ? 0 : (\(g.width) - ix0 + \(g.strideW - 1)) / \(g.strideW);\n"
            c += "            if (hi > len) hi = len;\n            if (lo > hi) lo = hi;\n"
            c += "            GLMC_GLOBAL const float *s = xc + iy * \(g.width) + ix0;\n"
            c += "            for (t = 0; t < lo; ++t) d[t] = 0.0f;\n"
            c += "            for (t = lo; t < hi; ++t) d[t] = s[t * \(g.strideW)];\n"
            c += "            for (t = hi; t < len; ++t) d[t] = 0.0f;\n"
            c += "          }\n"
            c += "          for (long j = nr; j < \(nr); ++j) dst[j] = 0.0f;\n        }\n"
        }
        return c
    }
}
