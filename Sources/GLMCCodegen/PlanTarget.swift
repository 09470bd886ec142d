/// What a plan's kernels are generated for. The three targets share the lowering and the kernel
/// library: library kernels are written once, in a portable subset of C99 (see Docs/Codegen.md),
/// and each target's `prelude` maps that subset onto its language; elementwise kernels are rendered
/// by `Renderer` in the target's `Dialect`.
///
/// The portable subset: every pointer into a buffer or weight is declared `GLMC_GLOBAL T *` (OpenCL
/// C 1.2 has no generic address space); kernels have the ABI
/// `void NAME(GLMC_GLOBAL void **args, long begin, long end)`; fixed-width integer types
/// (`int64_t`, ...) and `long` (64 bits on every target here) only; float math through the C99
/// `...f` functions; per-slice scratch memory only through `GLMC_SCRATCH` / `GLMC_SCRATCH_FREE`;
/// constant tables through `GLMC_TABLE`; type punning through `GLMC_FLOAT_FROM_BITS` /
/// `GLMC_BITS_FROM_FLOAT`; `memcpy` only between buffers.
public enum PlanTarget: String, Sendable, CaseIterable {
    case cpu, opencl, cuda

    public var isGPU: Bool { self != .cpu }

    /// The translation unit's name in the plan (`source/<name>`) and its language tag.
    public var sourceName: String {
        switch self { case .cpu: return "kernels.c"; case .opencl: return "kernels.cl"; case .cuda: return "kernels.cu" }
    }
    public var language: String {
        switch self { case .cpu: return "c"; case .opencl: return "opencl-c"; case .cuda: return "cuda-c" }
    }

    /// How elementwise kernels are rendered: as a function over `[begin, end)` everywhere (a GPU
    /// entry point calls it for its one element), in the target's types.
    public var bodyDialect: Dialect {
        switch self {
        case .cpu: return .c
        case .opencl:
            var d = Dialect.openCL
            d.kernelQualifier = "void"
            d.loop = .range(pragma: nil)
            return d
        case .cuda:
            var d = Dialect.cuda
            d.kernelQualifier = "static __device__ void"
            d.loop = .range(pragma: nil)
            return d
        }
    }

    /// The start of the translation unit.
    public var prelude: String {
        switch self {
        case .cpu: return Self.cPrelude
        case .opencl: return Self.openCLPrelude
        case .cuda: return Self.cudaPrelude
        }
    }

    static let cPrelude = """
    #include <math.h>
    #include <string.h>
    #include <float.h>
    #include <stdint.h>
    #include <stdlib.h>
    #define GLMC_GLOBAL
    #define GLMC_TABLE static const
    /* Scratch memory of one slice of a step's range: the heap on the CPU. */
    #define GLMC_SCRATCH(T, name, count, arg) T *name = (T *)malloc(sizeof(T) * (size_t)(count)); if (!name) return
    #define GLMC_SCRATCH_FREE(p) free(p)
    static inline float glmc_float_from_bits_(uint32_t b) { union { uint32_t u; float f; } v; v.u = b; return v.f; }
    static inline uint32_t glmc_bits_from_float_(float f) { union { uint32_t u; float f; } v; v.f = f; return v.u; }
    #define GLMC_FLOAT_FROM_BITS(b) glmc_float_from_bits_((uint32_t)(b))
    #define GLMC_BITS_FROM_FLOAT(f) glmc_bits_from_float_(f)
    #if defined(GLMC_LIBMVEC) && defined(__GLIBC__) && defined(__GNUC__) && !defined(__clang__)
    /* glibc's vector math library has SIMD variants of these (at most 4 ulp from the scalar ones):
       declared so, GCC vectorizes the loops that call them (errno is off: -fno-math-errno). */
    #define GLMC_SIMD_MATH __attribute__((simd("notinbranch")))
    float expf(float) GLMC_SIMD_MATH; float logf(float) GLMC_SIMD_MATH; float sinf(float) GLMC_SIMD_MATH;
    float cosf(float) GLMC_SIMD_MATH; float powf(float, float) GLMC_SIMD_MATH;
    #if __GLIBC__ > 2 || __GLIBC_MINOR__ >= 35
    float erff(float) GLMC_SIMD_MATH; float tanhf(float) GLMC_SIMD_MATH; float tanf(float) GLMC_SIMD_MATH;
    float expm1f(float) GLMC_SIMD_MATH; float log1pf(float) GLMC_SIMD_MATH; float atanf(float) GLMC_SIMD_MATH;
    float asinf(float) GLMC_SIMD_MATH; float acosf(float) GLMC_SIMD_MATH; float sinhf(float) GLMC_SIMD_MATH;
    float coshf(float) GLMC_SIMD_MATH; float asinhf(float) GLMC_SIMD_MATH; float acoshf(float) GLMC_SIMD_MATH;
    float atanhf(float) GLMC_SIMD_MATH;
    #endif
    #endif

    """

    /// Scratch on a GPU: a region of the plan's scratch buffer per work-item (argument `arg`, `count`
    /// elements per unit of the range, which is also one work-item's slice).
    static let gpuScratch = """
    #define GLMC_SCRATCH(T, name, count, arg) GLMC_GLOBAL T *name = (GLMC_GLOBAL T *)args[arg] + begin * (long)(count)
    #define GLMC_SCRATCH_FREE(p)

    """

    /// OpenCL C 1.2: address spaces, no `...f` math names, no `long long`, no function-scope statics.
    static let openCLPrelude = """
    #pragma OPENCL EXTENSION cl_khr_fp64 : enable
    #define GLMC_GLOBAL __global
    #define GLMC_TABLE const
    typedef char int8_t;
    typedef uchar uint8_t;
    typedef short int16_t;
    typedef ushort uint16_t;
    typedef int int32_t;
    typedef uint uint32_t;
    typedef long int64_t;
    typedef ulong uint64_t;
    #define GLMC_FLOAT_FROM_BITS(b) as_float((uint)(b))
    #define GLMC_BITS_FROM_FLOAT(f) as_uint(f)
    \(mathAliases)
    static inline void glmc_memcpy(__global void *d, __global const void *s, ulong n) {
      __global uchar *dst = (__global uchar *)d;
      __global const uchar *src = (__global const uchar *)s;
      for (ulong i = 0; i < n; ++i) dst[i] = src[i];
    }
    #define memcpy(d, s, n) glmc_memcpy((d), (s), (ulong)(n))
    \(gpuScratch)
    """

    /// CUDA C++ (NVRTC, no headers): compiled with `-default-device`, so functions without an
    /// execution space are device functions.
    static let cudaPrelude = """
    #define GLMC_GLOBAL
    #define GLMC_TABLE const
    #define restrict __restrict__
    typedef signed char int8_t;
    typedef unsigned char uint8_t;
    typedef short int16_t;
    typedef unsigned short uint16_t;
    typedef int int32_t;
    typedef unsigned int uint32_t;
    typedef long int64_t;
    typedef unsigned long uint64_t;
    typedef unsigned long size_t;
    #define INFINITY __int_as_float(0x7f800000)
    #define NAN __int_as_float(0x7fffffff)
    #define FLT_MAX 3.402823466e+38F
    #define DBL_MAX 1.7976931348623157e+308
    #define GLMC_FLOAT_FROM_BITS(b) __uint_as_float((unsigned int)(b))
    #define GLMC_BITS_FROM_FLOAT(f) __float_as_uint(f)
    \(gpuScratch)
    """

    /// C99 float math names as OpenCL's overloaded functions.
    static let mathAliases: String = {
        let names = ["exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sqrt", "cbrt", "pow", "fabs", "floor", "ceil",
                     "trunc", "round", "rint", "fmod", "remainder", "fmin", "fmax", "sin", "cos", "tan", "asin", "acos", "atan",
                     "atan2", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "erf", "erfc", "tgamma", "lgamma", "ldexp",
                     "copysign", "hypot", "fma"]
        return names.map { "#define \($0)f \($0)" }.joined(separator: "\n") + "\n#define nearbyintf rint\n#define nearbyint rint\n"
    }()

    /// The entry point of one step on a GPU: it computes the arguments' addresses from the two
    /// buffers it is given and runs the step's body for its one unit of the range.
    func entryPoint(name: String, body: String, addresses: [String], range: Int) -> String {
        let list = addresses.joined(separator: ", ")
        switch self {
        case .cpu:
            preconditionFailure("CPU steps are called directly")
        case .opencl:
            return """
            __kernel void \(name)(__global uchar *arena, __global uchar *weights) {
              long i = get_global_id(0);
              if (i >= \(range)) return;
              __global void *args[\(max(1, addresses.count))] = {\(list)};
              \(body)(args, i, i + 1);
            }

            """
        case .cuda:
            return """
            extern "C" __global__ void \(name)(unsigned char *arena, unsigned char *weights) {
              long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
              if (i >= \(range)) return;
              void *args[\(max(1, addresses.count))] = {\(list)};
              \(body)(args, i, i + 1);
            }

            """
        }
    }

    /// Work-group (OpenCL) or block (CUDA) size: 64 keeps small ranges in few groups and PoCL's
    /// work-group loops short; a launch covers `range` rounded up to it.
    static let groupSize = 64

    /// The launch parameters of a step over `range` units.
    func launch(range: Int) -> [String: Int] {
        let groups = (range + Self.groupSize - 1) / Self.groupSize
        switch self {
        case .cpu: return ["range": range]
        case .opencl: return ["range": range, "global": groups * Self.groupSize, "local": Self.groupSize]
        case .cuda: return ["range": range, "grid_x": groups, "block_x": Self.groupSize, "shared_bytes": 0]
        }
    }
}
