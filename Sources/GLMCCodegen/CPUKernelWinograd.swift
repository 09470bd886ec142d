/// Winograd F(2x2, 3x3) convolution for CPU plans: a 3x3, stride-1, undilated, ungrouped f32
/// convolution computes each 2x2 output tile from a 4x4 input tile with 16 multiplications per
/// (input channel, output channel) instead of 36, so its multiply-adds drop 2.25x (less on images
/// whose size is odd, where the last tiles are partly wasted).
///
/// Three steps, the middle one the blocked GEMM (`CPUKernelGEMM`):
/// 1. input transform, one unit per (image, input channel) plane: every 4x4 tile `d` (stride 2,
///    zero outside the image) becomes `V = Bᵀ d B`, stored as `V[ξ][ic][t]` (ξ = 0..15 the element of
///    the 4x4 result, t the tile over all images);
/// 2. 16 GEMMs `M[ξ] = V[ξ]ᵀ U[ξ]`: [tiles, IC] x [IC, OC], A read in place, B the transformed
///    weights `U = G g Gᵀ`, packed into column panels at convert time;
/// 3. output transform, one unit per (image, block of 16 output channels): `Y = Aᵀ M A` per tile,
///    then the bias and the epilogue, stored where the tile lies inside the output.
/// F(2x2, 3x3)'s transforms have only 0, ±1 and ±½ entries, so it loses next to no accuracy (the
/// larger F(4x4, 3x3) would need constants up to 8 and lose about one decimal digit).
public enum CPUKernelWinograd {
    /// The convolution's sizes (NCHW, weights [OC, IC, 3, 3]).
    public struct Shape: Sendable {
        public var images: Int, inputChannels: Int, height: Int, width: Int
        public var outputChannels: Int, outputHeight: Int, outputWidth: Int
        public var padTop: Int, padLeft: Int
        public init(images: Int, inputChannels: Int, height: Int, width: Int, outputChannels: Int,
                    outputHeight: Int, outputWidth: Int, padTop: Int, padLeft: Int) {
            self.images = images; self.inputChannels = inputChannels; self.height = height; self.width = width
            self.outputChannels = outputChannels; self.outputHeight = outputHeight; self.outputWidth = outputWidth
            self.padTop = padTop; self.padLeft = padLeft
        }
        var tileRows: Int { (outputHeight + 1) / 2 }
        var tileColumns: Int { (outputWidth + 1) / 2 }
        var tilesPerImage: Int { tileRows * tileColumns }
        /// Tiles over all images: the GEMMs' M.
        public var tiles: Int { images * tilesPerImage }
        /// Floats of the transformed input V, then of the GEMMs' result M (one scratch buffer holds both).
        public var inputTransformFloats: Int { 16 * inputChannels * tiles }
        public var productFloats: Int { 16 * tiles * outputChannels }
    }

    /// Output channels one unit of the output transform handles (a 64-byte line of M).
    static let channelBlock = 16

    /// Channels below which im2col + GEMM stays: with a shallow GEMM the transforms and the trip of
    /// M through memory cost more than they save (measured on SqueezeNet's 16-channel fire modules).
    public static let minimumChannels = 32

    /// The most scratch memory a Winograd convolution may take (V: 16 floats per tile and input
    /// channel; M: 16 per tile and output channel); a larger one (big images) stays on im2col.
    public static let maximumScratchBytes = 64 << 20

    /// Whether Winograd pays and fits for this shape.
    public static func applies(to s: Shape) -> Bool {
        min(s.inputChannels, s.outputChannels) >= minimumChannels
            && 4 * (s.inputTransformFloats + s.productFloats) <= maximumScratchBytes
    }

    /// The transformed weights `U[ξ] = (G g Gᵀ)[ξ]` as 16 [IC, OC] matrices, each packed into
    /// column panels of `panel` (`CPUKernelGEMM.packPanels`), one after another.
    public static func transformedWeights(_ w: [Float], outputChannels oc: Int, inputChannels ic: Int, panel: Int) -> [Float] {
        var u = [[Float]](repeating: [Float](repeating: 0, count: ic * oc), count: 16)
        for o in 0 ..< oc {
            for i in 0 ..< ic {
                let g = Array(w[(o * ic + i) * 9 ..< (o * ic + i) * 9 + 9])
                // G g: 4x3, G = [[1,0,0],[½,½,½],[½,-½,½],[0,0,1]].
                var gg = [Float](repeating: 0, count: 12)
                for c in 0 ..< 3 {
                    let (g0, g1, g2) = (g[c], g[3 + c], g[6 + c])
                    gg[c] = g0; gg[3 + c] = 0.5 * (g0 + g1 + g2); gg[6 + c] = 0.5 * (g0 - g1 + g2); gg[9 + c] = g2
                }
                // (G g) Gᵀ: 4x4.
                for r in 0 ..< 4 {
                    let (a0, a1, a2) = (gg[r * 3], gg[r * 3 + 1], gg[r * 3 + 2])
                    let row = [a0, 0.5 * (a0 + a1 + a2), 0.5 * (a0 - a1 + a2), a2]
                    for c in 0 ..< 4 { u[r * 4 + c][i * oc + o] = row[c] }
                }
            }
        }
        return u.flatMap { CPUKernelGEMM.packPanels($0, rows: oc, depth: ic, panel: panel, transposed: true) }
    }

    /// Step 1. Arguments: X, scratch (V at its start). Parallel range: images x input channels.
    /// Each plane is first copied into a zero-padded scratch plane `xp` (its padding is zeroed once
    /// per call: planes overwrite only the image), so the loop over a row of tiles has no bounds
    /// checks and vectorizes (V is contiguous along t).
    public static func inputTransform(name: String, _ s: Shape) -> String {
        let (h, w, t, tw) = (s.height, s.width, s.tiles, s.tileColumns)
        let stride = s.inputChannels * t
        // The rows and columns the tiles read; the image may reach past them (unpadded, even sizes).
        let hp = 2 * s.tileRows + 2, wp = 2 * tw + 2
        let rows = min(h, hp - s.padTop), columns = min(w, wp - s.padLeft)
        var c = "// \(name): winograd F(2x2,3x3) input transform, \(s.images)x\(s.inputChannels) planes [\(h)x\(w)] -> \(s.tileRows)x\(tw) tiles\n"
        c += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        c += "  GLMC_GLOBAL const float *X = (GLMC_GLOBAL const float *)args[0];\n"
        c += "  GLMC_GLOBAL float *V = (GLMC_GLOBAL float *)args[1];\n"
        c += "  GLMC_SCRATCH(float, xp, \(hp * wp), 2);\n"
        c += "  for (long q = 0; q < \(hp * wp); ++q) xp[q] = 0.0f;\n"
        c += "  for (long plane = begin; plane < end; ++plane) {\n"
        c += "    long n = plane / \(s.inputChannels), ic = plane % \(s.inputChannels);\n"
        c += "    GLMC_GLOBAL const float *x = X + plane * \(h * w);\n"
        c += "    for (long iy = 0; iy < \(rows); ++iy) for (long q = 0; q < \(columns); ++q) xp[(iy + \(s.padTop)) * \(wp) + \(s.padLeft) + q] = x[iy * \(w) + q];\n"
        c += "    for (long ty = 0; ty < \(s.tileRows); ++ty) {\n"
        c += "      GLMC_GLOBAL const float *r0 = xp + ty * \(2 * wp), *r1 = r0 + \(wp), *r2 = r1 + \(wp), *r3 = r2 + \(wp);\n"
        c += "      GLMC_GLOBAL float *v = V + ic * \(t) + n * \(s.tilesPerImage) + ty * \(tw);\n"
        c += "      for (long tx = 0; tx < \(tw); ++tx) {\n"
        c += "        float e[4][4];\n"
        // Bᵀ d, with Bᵀ = [[1,0,-1,0],[0,1,1,0],[0,-1,1,0],[0,1,0,-1]]; then (Bᵀ d) B.
        c += "        for (int j = 0; j < 4; ++j) {\n"
        c += "          float d0 = r0[2 * tx + j], d1 = r1[2 * tx + j], d2 = r2[2 * tx + j], d3 = r3[2 * tx + j];\n"
        c += "          e[0][j] = d0 - d2; e[1][j] = d1 + d2; e[2][j] = d2 - d1; e[3][j] = d1 - d3;\n"
        c += "        }\n"
        c += "        for (int i = 0; i < 4; ++i) {\n"
        c += "          v[(i * 4) * \(stride) + tx] = e[i][0] - e[i][2]; v[(i * 4 + 1) * \(stride) + tx] = e[i][1] + e[i][2];\n"
        c += "          v[(i * 4 + 2) * \(stride) + tx] = e[i][2] - e[i][1]; v[(i * 4 + 3) * \(stride) + tx] = e[i][1] - e[i][3];\n"
        c += "        }\n      }\n    }\n  }\n  GLMC_SCRATCH_FREE(xp);\n}\n"
        return c
    }

    /// Step 2: the 16 GEMMs as one batched blocked GEMM. Arguments: scratch (V), U (the packed
    /// transformed weights), scratch (M after V).
    public static func gemm(_ s: Shape, panel: Int) -> CPUKernelGEMM.Spec {
        let (ic, oc, t) = (s.inputChannels, s.outputChannels, s.tiles)
        var spec = CPUKernelGEMM.Spec(m: t, n: oc, k: ic, a: .strided(rowStride: 1, depthStride: t), b: .packed, arguments: (0, 1, nil, 2))
        spec.batches = 16
        spec.aOffset = "bt * \(ic * t)"
        spec.bOffset = "bt * \((oc + panel - 1) / panel * panel * ic)"
        spec.cOffset = "\(s.inputTransformFloats) + bt * \(t * oc)"
        return spec
    }

    /// Step 3. Arguments: scratch (M after V), [bias], Y. Parallel range: images x channel blocks.
    public static func outputTransform(name: String, _ s: Shape, hasBias: Bool, epilogue: [CPUKernelLibrary.Epilogue]) -> String {
        let (oc, t, b) = (s.outputChannels, s.tiles, channelBlock)
        let blocks = (oc + b - 1) / b
        let (oh, ow) = (s.outputHeight, s.outputWidth)
        var c = "// \(name): winograd F(2x2,3x3) output transform, \(s.images)x\(oc) planes [\(oh)x\(ow)]\n"
        c += "void \(name)(GLMC_GLOBAL void **args, long begin, long end) {\n"
        c += "  GLMC_GLOBAL const float *M = (GLMC_GLOBAL const float *)args[0] + \(s.inputTransformFloats);\n"
        if hasBias { c += "  GLMC_GLOBAL const float *bias = (GLMC_GLOBAL const float *)args[1];\n" }
        c += "  GLMC_GLOBAL float *Y = (GLMC_GLOBAL float *)args[\(hasBias ? 2 : 1)];\n"
        c += "  for (long unit = begin; unit < end; ++unit) {\n"
        c += "    long n = unit / \(blocks), o0 = unit % \(blocks) * \(b), lanes = \(oc) - o0 < \(b) ? \(oc) - o0 : \(b);\n"
        c += "    float init[\(b)];\n"
        c += "    for (long l = 0; l < \(b); ++l) init[l] = \(hasBias ? "l < lanes ? bias[o0 + l] : 0.0f" : "0.0f");\n"
        c += "    for (long ty = 0; ty < \(s.tileRows); ++ty) {\n"
        c += "      for (long tx = 0; tx < \(s.tileColumns); ++tx) {\n"
        c += "        GLMC_GLOBAL const float *mt = M + (n * \(s.tilesPerImage) + ty * \(s.tileColumns) + tx) * \(oc) + o0;\n"
        c += "        float m[16][\(b)], y[4][\(b)];\n"
        c += "        if (lanes == \(b)) { for (int x = 0; x < 16; ++x) for (long l = 0; l < \(b); ++l) m[x][l] = mt[x * \(t * oc) + l]; }\n"
        c += "        else { for (int x = 0; x < 16; ++x) for (long l = 0; l < \(b); ++l) m[x][l] = l < lanes ? mt[x * \(t * oc) + l] : 0.0f; }\n"
        // Aᵀ m A with Aᵀ = [[1,1,1,0],[0,1,-1,-1]]: the rows first, then the columns.
        c += "        for (long l = 0; l < \(b); ++l) {\n"
        c += "          float r0[4], r1[4];\n"
        c += "          for (int j = 0; j < 4; ++j) { r0[j] = m[j][l] + m[4 + j][l] + m[8 + j][l]; r1[j] = m[4 + j][l] - m[8 + j][l] - m[12 + j][l]; }\n"
        c += "          float v;\n"
        for (k, expr) in ["r0[0] + r0[1] + r0[2]", "r0[1] - r0[2] - r0[3]", "r1[0] + r1[1] + r1[2]", "r1[1] - r1[2] - r1[3]"].enumerated() {
            c += "          v = \(expr) + init[l];" + epilogue.map { " " + $0.apply("v") }.joined() + " y[\(k)][l] = v;\n"
        }
        c += "        }\n"
        c += "        long oy = ty * 2, ox = tx * 2;\n"
        c += "        for (long l = 0; l < lanes; ++l) {\n"
        c += "          GLMC_GLOBAL float *yp = Y + ((n * \(oc) + o0 + l) * \(oh) + oy) * \(ow) + ox;\n"
        c += "          yp[0] = y[0][l];\n"
        c += "          if (ox + 1 < \(ow)) yp[1] = y[1][l];\n"
        c += "          if (oy + 1 < \(oh)) { yp[\(ow)] = y[2][l]; if (ox + 1 < \(ow)) yp[\(ow + 1)] = y[3][l]; }\n"
        c += "        }\n      }\n    }\n  }\n}\n"
        return c
    }

    /// The output transform's parallel range.
    public static func outputUnits(_ s: Shape) -> Int { s.images * ((s.outputChannels + channelBlock - 1) / channelBlock) }
}
