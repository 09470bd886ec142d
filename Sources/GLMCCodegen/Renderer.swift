/// What differs between the C-like languages a kernel is rendered in. The renderer is one; the
/// languages are values of this type (`.c`, `.openCL`, `.cuda`).
public struct Dialect: Hashable, Sendable {
    /// How the iterations are spread.
    public enum Loop: Hashable, Sendable {
        /// A loop over `[begin, end)`, two extra `long` parameters so that the runtime can split the
        /// range across threads; `pragma` (say `#pragma omp simd`) goes before the loop.
        case range(pragma: String?)
        /// One work-item per element: `long i = <index>;` and a bounds check against the count.
        case grid(index: String)
    }

    public var name: String
    /// Source text before the kernel (includes, extensions).
    public var prelude: String
    /// What comes before the kernel's name: `void`, `__kernel void`, `extern "C" __global__ void`.
    public var kernelQualifier: String
    /// The address-space prefix of buffer parameters (`__global ` in OpenCL C).
    public var bufferAddressSpace: String
    /// The no-alias qualifier written after the `*` of buffer parameters.
    public var restrict: String
    public var loop: Loop
    /// The index type (64-bit everywhere here).
    public var indexType: String
    /// The names of the computed types: f32, f64, the integer types, and bool (the type of computed
    /// truth values).
    public var typeNames: [ScalarType: String]
    /// The element type of stored truth values (one byte).
    public var boolStorageType: String
    /// Appended to the math functions' names for f32: `expf` in C and CUDA, the overloaded `exp`
    /// in OpenCL.
    public var mathSuffix: String
    public var infinity: String
    public var nan: String
    /// Appended to the prelude when a kernel has integer values.
    public var integerPrelude: String
    /// Prepended to the prelude when a kernel computes in f64.
    public var doublePrelude: String
    /// The element type of f16 buffers.
    public var halfType: String
    /// Prepended to the prelude when a kernel has f16 buffers or rounds to half.
    public var halfPrelude: String
    /// Widening and narrowing, with `%` standing for the operand; `doubleToHalf` rounds an f64
    /// directly (once).
    public var halfToFloat: String
    public var floatToHalf: String
    public var doubleToHalf: String
    /// What helper functions (bfloat16 conversion, integer power) are declared with.
    public var helperQualifier: String
    /// Bit casts between f32 and a 32-bit unsigned integer, with `%` standing for the operand, and
    /// the helpers they need (C has no such operator: a union does it).
    public var floatFromBits: String
    public var bitsFromFloat: String
    public var bitCastPrelude: String

    public init(name: String, prelude: String, kernelQualifier: String, bufferAddressSpace: String, restrict: String,
                loop: Loop, indexType: String, typeNames: [ScalarType: String], boolStorageType: String,
                mathSuffix: String, infinity: String, nan: String, integerPrelude: String, doublePrelude: String,
                halfType: String, halfPrelude: String, halfToFloat: String, floatToHalf: String, doubleToHalf: String,
                helperQualifier: String, floatFromBits: String, bitsFromFloat: String, bitCastPrelude: String) {
        self.name = name; self.prelude = prelude; self.kernelQualifier = kernelQualifier
        self.bufferAddressSpace = bufferAddressSpace; self.restrict = restrict; self.loop = loop
        self.indexType = indexType; self.typeNames = typeNames
        self.boolStorageType = boolStorageType; self.mathSuffix = mathSuffix; self.infinity = infinity; self.nan = nan
        self.integerPrelude = integerPrelude; self.doublePrelude = doublePrelude
        self.halfType = halfType; self.halfPrelude = halfPrelude; self.halfToFloat = halfToFloat; self.floatToHalf = floatToHalf
        self.doubleToHalf = doubleToHalf; self.helperQualifier = helperQualifier
        self.floatFromBits = floatFromBits; self.bitsFromFloat = bitsFromFloat; self.bitCastPrelude = bitCastPrelude
    }

    /// C99 for the CPU: a function over `[begin, end)` for the runtime's threads to call.
    public static let c = Dialect(
        name: "c", prelude: "#include <math.h>\n", kernelQualifier: "void", bufferAddressSpace: "",
        restrict: "restrict", loop: .range(pragma: "#pragma omp simd"), indexType: "long",
        typeNames: [.f32: "float", .f64: "double", .bool: "int", .i8: "int8_t", .i16: "int16_t", .i32: "int32_t",
                    .i64: "int64_t", .u8: "uint8_t", .u16: "uint16_t", .u32: "uint32_t", .u64: "uint64_t"],
        boolStorageType: "unsigned char", mathSuffix: "f", infinity: "INFINITY", nan: "NAN",
        integerPrelude: "#include <stdint.h>\n", doublePrelude: "",
        halfType: "_Float16", halfPrelude: "", halfToFloat: "(float)%", floatToHalf: "(_Float16)(%)", doubleToHalf: "(_Float16)(%)",
        helperQualifier: "static inline", floatFromBits: "glmc_float_from_bits(%)", bitsFromFloat: "glmc_bits_from_float(%)",
        bitCastPrelude: """
        static inline float glmc_float_from_bits(uint32_t b) { union { uint32_t u; float f; } v; v.u = b; return v.f; }
        static inline uint32_t glmc_bits_from_float(float f) { union { uint32_t u; float f; } v; v.f = f; return v.u; }

        """)

    /// OpenCL C 1.2: one work-item per element.
    public static let openCL = Dialect(
        name: "opencl", prelude: "", kernelQualifier: "__kernel void", bufferAddressSpace: "__global ",
        restrict: "restrict", loop: .grid(index: "get_global_id(0)"), indexType: "long",
        typeNames: [.f32: "float", .f64: "double", .bool: "int", .i8: "char", .i16: "short", .i32: "int",
                    .i64: "long", .u8: "uchar", .u16: "ushort", .u32: "uint", .u64: "ulong"],
        boolStorageType: "uchar", mathSuffix: "", infinity: "INFINITY", nan: "NAN", integerPrelude: "",
        doublePrelude: "#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n",
        // f16 is stored as its bits: without cl_khr_fp16 (PoCL, many GPUs) `half` is a storage
        // type only, converted by the core vload_half / vstore_half_rte.
        halfType: "ushort", halfPrelude: """
        #pragma OPENCL EXTENSION cl_khr_fp64 : enable
        #ifndef GLMC_HALF_HELPERS
        #define GLMC_HALF_HELPERS
        static inline float glmc_h2f(ushort h) { return vload_half(0, (const __private half *)&h); }
        static inline ushort glmc_f2h(float f) { ushort h; vstore_half_rte(f, 0, (__private half *)&h); return h; }
        static inline ushort glmc_d2h(double d) { ushort h; vstore_half_rte(d, 0, (__private half *)&h); return h; }
        #endif

        """, halfToFloat: "glmc_h2f(%)", floatToHalf: "glmc_f2h(%)", doubleToHalf: "glmc_d2h(%)",
        helperQualifier: "static inline", floatFromBits: "as_float(%)", bitsFromFloat: "as_uint(%)", bitCastPrelude: "")

    /// CUDA C++: one thread per element.
    public static let cuda = Dialect(
        name: "cuda", prelude: "", kernelQualifier: "extern \"C\" __global__ void", bufferAddressSpace: "",
        restrict: "__restrict__", loop: .grid(index: "(long)blockIdx.x * blockDim.x + threadIdx.x"), indexType: "long",
        typeNames: [.f32: "float", .f64: "double", .bool: "bool", .i8: "signed char", .i16: "short", .i32: "int",
                    .i64: "long long", .u8: "unsigned char", .u16: "unsigned short", .u32: "unsigned int",
                    .u64: "unsigned long long"],
        boolStorageType: "unsigned char", mathSuffix: "f",
        infinity: "__int_as_float(0x7f800000)", nan: "__int_as_float(0x7fffffff)", integerPrelude: "", doublePrelude: "",
        // f16 is stored as its bits and converted by PTX's cvt, so NVRTC needs no headers.
        halfType: "unsigned short", halfPrelude: """
        #ifndef GLMC_HALF_HELPERS
        #define GLMC_HALF_HELPERS
        static __device__ inline float glmc_h2f(unsigned short h) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
        static __device__ inline unsigned short glmc_f2h(float f) { unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }
        static __device__ inline unsigned short glmc_d2h(double d) { unsigned short h; asm("cvt.rn.f16.f64 %0, %1;" : "=h"(h) : "d"(d)); return h; }
        #endif

        """, halfToFloat: "glmc_h2f(%)", floatToHalf: "glmc_f2h(%)", doubleToHalf: "glmc_d2h(%)",
        helperQualifier: "static __device__ inline", floatFromBits: "__uint_as_float(%)", bitsFromFloat: "__float_as_uint(%)",
        bitCastPrelude: "")

    /// The source name of a computed type.
    public func name(of t: ScalarType) -> String {
        typeNames[t.computed] ?? "float"
    }

    /// The source name of a buffer element type.
    public func storageName(of t: ScalarType) -> String {
        switch t {
        case .bool: return boolStorageType
        case .f16: return halfType
        case .bf16: return name(of: .u16)
        default: return name(of: t)
        }
    }
}

/// Renders a `Kernel` as C-like source in a `Dialect`.
public struct Renderer: Sendable {
    public var dialect: Dialect
    public init(dialect: Dialect) { self.dialect = dialect }

    /// The C type of a buffer parameter: `__global const float *` and the like.
    public func parameterType(of b: KernelBuffer) -> String {
        let const = b.access == .read ? "const " : ""
        return "\(dialect.bufferAddressSpace)\(const)\(dialect.storageName(of: b.elementType)) *"
    }

    public func render(_ kernel: Kernel) -> String {
        var e = Emitter(d: dialect, k: kernel)
        let d = dialect
        var params = kernel.buffers.map { "\(parameterType(of: $0))\(d.restrict) \($0.name)" }
        var code = ""
        var indent = "  "
        switch d.loop {
        case .range(let pragma):
            params += ["\(d.indexType) begin", "\(d.indexType) end"]
            code += "\(d.kernelQualifier) \(kernel.name)(\(params.joined(separator: ", "))) {\n"
            if let pragma { code += "  \(pragma)\n" }
            code += "  for (\(d.indexType) i = begin; i < end; ++i) {\n"
            indent = "    "
        case .grid(let index):
            code += "\(d.kernelQualifier) \(kernel.name)(\(params.joined(separator: ", "))) {\n"
            code += "  \(d.indexType) i = \(index);\n"
            code += "  if (i >= \(kernel.count)) return;\n"
        }
        for s in kernel.body {
            switch s {
            case .let(let t, let type, let value):
                code += "\(indent)\(d.name(of: type)) t\(t) = \(e.expr(value, top: true));\n"
                e.temps[t] = type.computed
            case .store(let b, let index, let value):
                code += "\(indent)\(kernel.buffers[b].name)[\(self.index(index, top: true))] = \(e.stored(value, as: kernel.buffers[b].elementType));\n"
            }
        }
        if case .range = d.loop { code += "  }\n" }
        code += "}\n"

        var prelude = (kernel.usesHalf ? d.halfPrelude : "") + (kernel.usesDouble || e.usesRoundToOdd ? d.doublePrelude : "") + d.prelude
        if kernel.usesIntegers || e.usesBFloat16 { prelude += d.integerPrelude }
        // Helpers are guarded: a translation unit holds many kernels.
        func guarded(_ name: String, _ text: String) -> String { "#ifndef \(name)\n#define \(name)\n\(text)#endif\n" }
        var helpers = ""
        if e.usesBFloat16 { helpers += guarded("GLMC_BF16_HELPERS", d.bitCastPrelude + bfloat16Helpers) }
        if e.usesRoundToOdd { helpers += guarded("GLMC_ROUND_TO_ODD_HELPER", roundToOddHelper) }
        if e.usesIntegerPower { helpers += guarded("GLMC_POWI_HELPER", integerPowerHelper) }
        var out = prelude.isEmpty ? "" : prelude + "\n"
        if !helpers.isEmpty { out += helpers + "\n" }
        return out + "// \(kernel.name): \(kernel.count) elements\n" + code
    }

    /// bfloat16 ↔ f32 (round to nearest even, NaN stays NaN, as `floatToBFloat16`).
    var bfloat16Helpers: String {
        let d = dialect, u16 = d.name(of: .u16), u32 = d.name(of: .u32), q = d.helperQualifier
        func fromBits(_ x: String) -> String { d.floatFromBits.replacingOccurrences(of: "%", with: x) }
        func toBits(_ x: String) -> String { d.bitsFromFloat.replacingOccurrences(of: "%", with: x) }
        return """
        \(q) float glmc_bf16_to_f32(\(u16) b) { return \(fromBits("(\(u32))b << 16")); }
        \(q) \(u16) glmc_f32_to_bf16(float f) {
          \(u32) u = \(toBits("f"));
          if (f != f) return (\(u16))((u >> 16) | 0x40);
          return (\(u16))((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
        }

        """
    }

    /// f64 → f32 rounded to odd, so that rounding again to bfloat16 is correct (as
    /// `floatRoundedToOdd`).
    var roundToOddHelper: String {
        let d = dialect, u32 = d.name(of: .u32), q = d.helperQualifier
        func fromBits(_ x: String) -> String { d.floatFromBits.replacingOccurrences(of: "%", with: x) }
        func toBits(_ x: String) -> String { d.bitsFromFloat.replacingOccurrences(of: "%", with: x) }
        return """
        \(q) float glmc_round_to_odd(double d) {
          float f = (float)d;
          if (!isfinite(f) || (double)f == d) return f;
          \(u32) u = \(toBits("f"));
          if (fabs((double)f) > fabs(d)) u -= 1;
          return \(fromBits("u | 1"));
        }

        """
    }

    /// An integer power with wrapping, in 64 bits (a narrower type's result is the truncation).
    var integerPowerHelper: String {
        let d = dialect, u64 = d.name(of: .u64), i64 = d.name(of: .i64)
        return """
        \(d.helperQualifier) \(u64) glmc_powi(\(u64) base, \(i64) exponent, int base_is_minus_one) {
          if (exponent < 0) return base == 1 ? 1 : base_is_minus_one ? ((exponent & 1) ? base : 1) : 0;
          \(u64) result = 1;
          while (exponent > 0) { if (exponent & 1) result *= base; base *= base; exponent >>= 1; }
          return result;
        }

        """
    }

    func index(_ e: IndexExpr, top: Bool = false) -> String {
        let s: String
        switch e {
        case .i: return "i"
        case .constant(let c): return "\(c)"
        case .div(let a, let c): s = "\(index(a)) / \(c)"
        case .mod(let a, let c): s = "\(index(a)) % \(c)"
        case .mul(let a, let c): s = "\(index(a)) * \(c)"
        case .add(let a, let b): s = "\(index(a)) + \(index(b))"
        }
        return top ? s : "(\(s))"
    }

    /// Renders expressions, tracking the temporaries' types and which helpers are needed.
    struct Emitter {
        let d: Dialect
        let k: Kernel
        var temps: [Int: ScalarType] = [:]
        var usesBFloat16 = false
        var usesRoundToOdd = false
        var usesIntegerPower = false

        init(d: Dialect, k: Kernel) {
            self.d = d; self.k = k
            usesBFloat16 = k.buffers.contains { $0.elementType == .bf16 }
        }

        func type(_ e: Expr) -> ScalarType { e.type(buffers: k.buffers, temps: temps) }

        func literal(_ l: Literal) -> String {
            switch l {
            case .float(let x, let t):
                if x.isNaN { return d.nan }
                if x.isInfinite { return x < 0 ? "-" + d.infinity : d.infinity }
                if t == .f64 {
                    let s = "\(x)"
                    return s.contains(".") || s.contains("e") ? s : s + ".0"
                }
                let s = "\(Float(x))"
                return (s.contains(".") || s.contains("e") ? s : s + ".0") + "f"
            case .int(let v, let t):
                if t == .bool || (v > Int64(Int32.min) && v <= Int64(Int32.max)) { return "\(v)" }
                return "((\(d.name(of: t)))0x\(String(UInt64(bitPattern: v), radix: 16)))"
            case .uint(let v, let t):
                if v <= UInt64(Int32.max) { return "\(v)" }
                return "((\(d.name(of: t)))0x\(String(v, radix: 16)))"
            }
        }

        func math(_ name: String, _ t: ScalarType) -> String { name + (t == .f32 ? d.mathSuffix : "") }

        func apply(_ template: String, _ x: String) -> String { template.replacingOccurrences(of: "%", with: x) }

        /// `value` converted for a store into a buffer of element type `t`.
        mutating func stored(_ value: Expr, as t: ScalarType) -> String {
            let v = expr(value, top: true)
            switch t {
            case .bool: return "(\(d.boolStorageType))(\(v))"
            case .f16: return apply(d.floatToHalf, v)
            case .bf16: return "glmc_f32_to_bf16(\(v))"
            default: return v
            }
        }

        mutating func expr(_ e: Expr, top: Bool = false) -> String {
            let s: String
            switch e {
            case .load(let b, let i):
                let load = "\(k.buffers[b].name)[\(Renderer(dialect: d).index(i, top: true))]"
                switch k.buffers[b].elementType {
                case .f16: return apply(d.halfToFloat, load)
                case .bf16: return "glmc_bf16_to_f32(\(load))"
                default: return load
                }
            case .constant(let l):
                let text = literal(l)
                return text.hasPrefix("-") && !top ? "(\(text))" : text
            case .temp(let t):
                return "t\(t)"
            case .unary(let op, let a):
                let t = type(a)
                s = unary(op, a, t)
                // A function call needs no parentheses.
                if t.isFloat && op != .neg { return s }
            case .binary(let op, let a, let b):
                let t = type(a)
                s = binary(op, a, b, t)
                if t.isFloat && (op == .rem || op == .pow) { return s }
            case .select(let c, let a, let b):
                s = "\(expr(c)) ? \(expr(a)) : \(expr(b))"
            case .compare(let op, let a, let b):
                let symbol: String
                switch op {
                case .lt: symbol = "<"
                case .le: symbol = "<="
                case .gt: symbol = ">"
                case .ge: symbol = ">="
                case .eq: symbol = "=="
                case .ne: symbol = "!="
                }
                s = "\(expr(a)) \(symbol) \(expr(b))"
            case .cast(let a, let to):
                return cast(a, from: type(a), to: to)
            }
            return top ? s : "(\(s))"
        }

        /// `(T)(x)` for a narrow integer type whose arithmetic C promotes to int; `x` otherwise.
        func narrowed(_ x: String, _ t: ScalarType) -> String {
            t.isInteger && t.bitWidth < 32 ? "(\(d.name(of: t)))(\(x))" : x
        }

        mutating func unary(_ op: UnaryOp, _ a: Expr, _ t: ScalarType) -> String {
            let x = expr(a)
            let T = d.name(of: t), U = d.name(of: t.wrappingType)
            switch op {
            case .neg:
                return t.isInteger ? "(\(T))(-(\(U))\(x))" : "-\(x)"
            case .abs:
                if t.isUnsignedInteger { return expr(a, top: true) }
                if t.isSignedInteger { return "(\(T))(\(x) < 0 ? -(\(U))\(x) : (\(U))\(x))" }
                return "\(math("fabs", t))(\(expr(a, top: true)))"
            case .not:
                return "!\(x)"
            case .bitNot:
                return "(\(T))~\(x)"
            case .round:
                return "\(math("rint", t))(\(expr(a, top: true)))"
            default:
                return "\(math(op.rawValue, t))(\(expr(a, top: true)))"
            }
        }

        mutating func binary(_ op: BinaryOp, _ a: Expr, _ b: Expr, _ t: ScalarType) -> String {
            let x = expr(a), y = expr(b)
            if t.isFloat {
                switch op {
                case .add: return "\(x) + \(y)"
                case .sub: return "\(x) - \(y)"
                case .mul: return "\(x) * \(y)"
                case .div: return "\(x) / \(y)"
                case .rem: return "\(math("fmod", t))(\(expr(a, top: true)), \(expr(b, top: true)))"
                case .pow: return "\(math("pow", t))(\(expr(a, top: true)), \(expr(b, top: true)))"
                // NaN propagates from either operand, as the interpreter's (NumPy's) maximum/minimum.
                case .max: return "\(x) != \(x) || \(x) > \(y) ? \(x) : \(y)"
                case .min: return "\(x) != \(x) || \(x) < \(y) ? \(x) : \(y)"
                // Not operations of floats; the lowering never builds them (it checks the types).
                case .and, .or, .xor, .shl, .shr: preconditionFailure("\(op) of \(t) values")
                }
            }
            if t == .bool {
                switch op {
                case .and: return "\(x) & \(y)"
                case .or: return "\(x) | \(y)"
                case .xor: return "\(x) ^ \(y)"
                case .max: return "\(x) | \(y)"
                case .min: return "\(x) & \(y)"
                default: preconditionFailure("\(op) of bool values")
                }
            }
            let T = d.name(of: t), U = d.name(of: t.wrappingType)
            let wraps = t != t.wrappingType
            let signed = t.isSignedInteger
            switch op {
            case .add, .sub, .mul:
                let symbol = op == .add ? "+" : op == .sub ? "-" : "*"
                return wraps ? "(\(T))((\(U))\(x) \(symbol) (\(U))\(y))" : "\(x) \(symbol) \(y)"
            case .div:
                return signed ? "(\(T))(\(y) == 0 ? 0 : \(y) == -1 ? -(\(U))\(x) : (\(U))(\(x) / \(y)))"
                              : "(\(T))(\(y) == 0 ? 0 : \(x) / \(y))"
            case .rem:
                return signed ? "(\(T))(\(y) == 0 || \(y) == -1 ? 0 : \(x) % \(y))" : "(\(T))(\(y) == 0 ? 0 : \(x) % \(y))"
            case .max: return "\(x) > \(y) ? \(x) : \(y)"
            case .min: return "\(x) < \(y) ? \(x) : \(y)"
            case .and: return narrowed("\(x) & \(y)", t)
            case .or: return narrowed("\(x) | \(y)", t)
            case .xor: return narrowed("\(x) ^ \(y)", t)
            case .shl:
                let out = signed ? "\(y) < 0 || \(y) >= \(t.bitWidth)" : "\(y) >= \(t.bitWidth)"
                return "(\(T))(\(out) ? 0 : (\(U))\(x) << \(y))"
            case .shr:
                if signed { return "(\(T))(\(y) < 0 || \(y) >= \(t.bitWidth) ? (\(x) < 0 ? -1 : 0) : \(x) >> \(y))" }
                return "(\(T))(\(y) >= \(t.bitWidth) ? 0 : \(x) >> \(y))"
            case .pow:
                usesIntegerPower = true
                let u64 = d.name(of: .u64), i64 = d.name(of: .i64)
                return "(\(T))glmc_powi((\(u64))\(x), (\(i64))\(y), \(signed ? "\(x) == -1" : "0"))"
            }
        }

        /// A conversion with the interpreter's rules (see `Expr.cast`).
        mutating func cast(_ a: Expr, from: ScalarType, to: ScalarType) -> String {
            let T = d.name(of: to)
            if to == .bool { return from == .bool ? expr(a) : "(\(expr(a)) != 0)" }
            if to == .f16 {
                let x = expr(a, top: true)
                let half = from == .f64 ? apply(d.doubleToHalf, x) : apply(d.floatToHalf, from == .f32 ? x : "(float)(\(x))")
                return apply(d.halfToFloat, half)
            }
            if to == .bf16 {
                usesBFloat16 = true
                let x = expr(a, top: true)
                if from == .f32 { return "glmc_bf16_to_f32(glmc_f32_to_bf16(\(x)))" }
                // Through f64 and f32 rounded to odd: one correct rounding, as the interpreter.
                usesRoundToOdd = true
                let wide = from == .f64 ? x : "(double)(\(x))"
                return "glmc_bf16_to_f32(glmc_f32_to_bf16(glmc_round_to_odd(\(wide))))"
            }
            if from == to.computed { return expr(a) }
            if from.isFloat && to.isInteger { return "(\(floatToInteger(expr(a), from: from, to: to)))" }
            return "((\(T))\(expr(a)))"
        }

        /// Float → integer like `truncatingInteger`: toward zero, wrapping through i64; NaN and
        /// infinities give 0, values beyond i64 saturate.
        func floatToInteger(_ x: String, from f: ScalarType, to t: ScalarType) -> String {
            let T = d.name(of: t), I64 = d.name(of: .i64)
            func bound(_ v: Double) -> String { literal(.float(v, f)) }
            let (lo, hi) = t.integerRange
            let low = t.isUnsignedInteger ? literal(.uint(0, t)) : literal(.int(lo, t))
            let high = t.isUnsignedInteger ? literal(.uint(hi, t)) : literal(.int(Int64(hi), t))
            let saturated = "\(x) < 0 ? \(low) : \(high)"
            let wrapped = "\(x) >= \(bound(-0x1p63)) && \(x) < \(bound(0x1p63))"
            if t == .u64 {
                return "!isfinite(\(x)) ? 0 : \(x) > \(bound(-1)) && \(x) < \(bound(0x1p64)) ? (\(T))\(x) : \(wrapped) ? (\(T))(\(I64))\(x) : \(saturated)"
            }
            return "!isfinite(\(x)) ? 0 : \(wrapped) ? (\(T))(\(I64))\(x) : \(saturated)"
        }
    }
}

extension Kernel {
    /// Whether the kernel reads or writes f16 buffers or rounds to half precision.
    public var usesHalf: Bool {
        buffers.contains { $0.elementType == .f16 } || expressions.contains { e in
            if case .cast(_, .f16) = e { return true }
            return false
        }
    }

    /// Whether the kernel has f64 buffers, values, constants or conversions.
    public var usesDouble: Bool {
        buffers.contains { $0.elementType == .f64 } || body.contains { s in
            if case .let(_, .f64, _) = s { return true }
            return false
        } || expressions.contains { e in
            switch e {
            case .cast(_, .f64): return true
            case .constant(let l): return l.type == .f64
            default: return false
            }
        }
    }

    /// Whether the kernel has integer buffers, constants or conversions.
    public var usesIntegers: Bool {
        buffers.contains { $0.elementType.isInteger } || body.contains { s in
            if case .let(_, let t, _) = s { return t.isInteger }
            return false
        } || expressions.contains { e in
            switch e {
            case .cast(_, let t): return t.isInteger
            case .constant(let l): return l.type.isInteger
            default: return false
            }
        }
    }
}
