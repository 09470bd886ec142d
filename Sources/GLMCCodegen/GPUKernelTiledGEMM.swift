import GLMCPlan

/// The tiled GEMM of the GPU targets (OpenCL and CUDA, from one source): each work-group of 256
/// work-items computes a `tile`×`tile` block of the output (4×4 or 1×1 outputs per work-item),
/// walking the depth in slices of 16 that the group first stages in local (shared) memory, so every
/// element of A and B read from global memory is used `tile` times. Convolution runs through the
/// same kernel as an implicit GEMM: the B operand's loader computes the im2col element on the fly.
///
/// Operand loaders are C statements that set `float v` from the row `r` (or column `c`), the depth
/// index `p` and the batch index `bt`, so GEMM, batched MatMul and convolution differ only there.
/// The kernel is an entry point of its own (`NAME(arena, weights)`): its tiles live at kernel scope,
/// where OpenCL C requires local arrays to be declared.
/// An operand of a tiled step: the pointer's name in the kernel, what it points at, and whether it
/// holds f16 bits (`--precision fp16` weights) that loads widen to f32.
struct TiledOperand {
    var name: String
    var argument: PlanArgument
    var half = false

    /// The C expression of element `index`, as a float.
    func load(_ index: String) -> String { half ? "glmc_h2f(\(name)[\(index)])" : "\(name)[\(index)]" }
}

enum GPUKernelTiledGEMM {
    /// Work (M·N·K per batch) from which a step uses this kernel (smaller ones run one output per
    /// work-item).
    static let minimumWork = 32 * 32 * 32
    static let threads = 256
    static let depthSlice = 16

    struct Spec {
        var m: Int, n: Int, k: Int
        var batches = 1
        /// Statements setting `float v` to A[r, p] and B[p, c] of batch `bt`.
        var loadA: String
        var loadB: String
        /// Pointer declarations (`GLMC_GLOBAL const float *A = ...;`) the loaders and the store use.
        var pointers: String
        /// Statement storing `float v` as output (r, c) of batch `bt`.
        var store: String
        var alpha: Float = 1
        /// Expression added to `alpha * acc` (the bias term, over r, c, bt), if any.
        var bias: String?
        var epilogue: [CPUKernelLibrary.Epilogue] = []

        /// 64×64 tiles (4×4 outputs per work-item) when both sides are large enough, else 16×16.
        var outputsPerItem: Int { m >= 64 && n >= 64 ? 4 : 1 }
        var tile: Int { 16 * outputsPerItem }
        var groups: Int { batches * ((m + tile - 1) / tile) * ((n + tile - 1) / tile) }
    }

    static func kernel(name: String, _ s: Spec, target: PlanTarget) -> String {
        let r = s.outputsPerItem, t = s.tile, kt = depthSlice
        let tilesM = (s.m + t - 1) / t, tilesN = (s.n + t - 1) / t
        let (entry, byte, local, localID, groupID, barrier): (String, String, String, String, String, String)
        switch target {
        case .opencl:
            (entry, byte, local, localID, groupID, barrier) = ("__kernel void", "uchar", "__local", "get_local_id(0)", "get_group_id(0)",
                                                              "barrier(CLK_LOCAL_MEM_FENCE)")
        default:
            (entry, byte, local, localID, groupID, barrier) = ("extern \"C\" __global__ void", "unsigned char", "__shared__", "threadIdx.x",
                                                              "blockIdx.x", "__syncthreads()")
        }
        var c = "// \(name): tiled GEMM \(s.batches) x [\(s.m)x\(s.k)] * [\(s.k)x\(s.n)], \(t)x\(t) tiles, \(r)x\(r) per work-item\n"
        c += "\(entry) \(name)(GLMC_GLOBAL \(byte) *arena, GLMC_GLOBAL \(byte) *weights) {\n"
        c += "  \(local) float As[\(kt)][\(t + 1)];\n  \(local) float Bs[\(kt)][\(t + 1)];\n"
        c += s.pointers
        c += "  long lid = \(localID), gid = \(groupID);\n"
        c += "  long tx = lid % 16, ty = lid / 16;\n"
        c += "  long bt = gid / \(tilesM * tilesN), tile = gid % \(tilesM * tilesN);\n"
        c += "  long r0 = (tile / \(tilesN)) * \(t), c0 = (tile % \(tilesN)) * \(t);\n"
        c += "  float acc[\(r)][\(r)];\n"
        c += "  for (long i = 0; i < \(r); ++i) for (long j = 0; j < \(r); ++j) acc[i][j] = 0.0f;\n"
        c += "  for (long k0 = 0; k0 < \(s.k); k0 += \(kt)) {\n"
        // Stage A[r0.., k0..] and B[k0.., c0..]; out-of-range elements are zero.
        c += "    for (long e = lid; e < \(t * kt); e += \(threads)) {\n"
        c += "      long r = r0 + e / \(kt), p = k0 + e % \(kt);\n      float v = 0.0f;\n"
        c += "      if (r < \(s.m) && p < \(s.k)) { \(s.loadA) }\n"
        c += "      As[e % \(kt)][e / \(kt)] = v;\n"
        c += "      long c = c0 + e % \(t);\n      p = k0 + e / \(t);\n      v = 0.0f;\n"
        c += "      if (p < \(s.k) && c < \(s.n)) { \(s.loadB) }\n"
        c += "      Bs[e / \(t)][e % \(t)] = v;\n"
        c += "    }\n    \(barrier);\n"
        c += "    for (long q = 0; q < \(kt); ++q) {\n"
        c += "      float a[\(r)], b[\(r)];\n"
        c += "      for (long i = 0; i < \(r); ++i) { a[i] = As[q][ty + 16 * i]; b[i] = Bs[q][tx + 16 * i]; }\n"
        c += "      for (long i = 0; i < \(r); ++i) for (long j = 0; j < \(r); ++j) acc[i][j] += a[i] * b[j];\n"
        c += "    }\n    \(barrier);\n  }\n"
        c += "  for (long i = 0; i < \(r); ++i) for (long j = 0; j < \(r); ++j) {\n"
        c += "    long r = r0 + ty + 16 * i, c = c0 + tx + 16 * j;\n"
        c += "    if (r >= \(s.m) || c >= \(s.n)) continue;\n"
        c += "    float v = \(s.alpha == 1 ? "acc[i][j]" : "\(CPUKernelLibrary.lit(s.alpha)) * acc[i][j]");\n"
        if let bias = s.bias { c += "    v += \(bias);\n" }
        for e in s.epilogue { c += "    " + e.apply("v") + "\n" }
        c += "    \(s.store)\n  }\n}\n"
        return c
    }

    /// The launch of a tiled step: one work-group (block) of `threads` per output tile.
    static func launch(_ s: Spec, target: PlanTarget) -> [String: Int] {
        switch target {
        case .opencl: return ["range": s.groups * threads, "global": s.groups * threads, "local": threads]
        default: return ["range": s.groups * threads, "grid_x": s.groups, "block_x": threads, "shared_bytes": 0]
        }
    }
}
