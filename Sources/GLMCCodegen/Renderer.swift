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
    /// Source text before the kernel (includes, extensions, helpers).
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
    public var floatType: String
    /// The type of computed truth values (temporaries of `ScalarType.bool`).
    public var boolType: String
    /// The element type of stored truth values (one byte).
    public var boolStorageType: String
    /// Appended to the math functions' names: `expf` in C and CUDA, the overloaded `exp` in OpenCL.
    public var mathSuffix: String
    public var infinity: String
    public var nan: String
    /// The element type of f16 buffers.
    public var halfType: String
    /// Prepended to the prelude when a kernel has f16 buffers or rounds to half.
    public var halfPrelude: String
    /// Widening and narrowing, with `%` standing for the operand.
    public var halfToFloat: String
    public var floatToHalf: String

    public init(name: String, prelude: String, kernelQualifier: String, bufferAddressSpace: String, restrict: String,
                loop: Loop, indexType: String, floatType: String, boolType: String, boolStorageType: String,
                mathSuffix: String, infinity: String, nan: String,
                halfType: String, halfPrelude: String, halfToFloat: String, floatToHalf: String) {
        self.name = name; self.prelude = prelude; self.kernelQualifier = kernelQualifier
        self.bufferAddressSpace = bufferAddressSpace; self.restrict = restrict; self.loop = loop
        self.indexType = indexType; self.floatType = floatType; self.boolType = boolType
        self.boolStorageType = boolStorageType; self.mathSuffix = mathSuffix; self.infinity = infinity; self.nan = nan
        self.halfType = halfType; self.halfPrelude = halfPrelude; self.halfToFloat = halfToFloat; self.floatToHalf = floatToHalf
    }

    /// C99 for the CPU: a function over `[begin, end)` for the runtime's threads to call.
    public static let c = Dialect(
        name: "c", prelude: "#include <math.h>\n", kernelQualifier: "void", bufferAddressSpace: "",
        restrict: "restrict", loop: .range(pragma: "#pragma omp simd"), indexType: "long", floatType: "float",
        boolType: "int", boolStorageType: "unsigned char", mathSuffix: "f", infinity: "INFINITY", nan: "NAN",
        halfType: "_Float16", halfPrelude: "", halfToFloat: "(float)%", floatToHalf: "(_Float16)(%)")

    /// OpenCL C 1.2: one work-item per element.
    public static let openCL = Dialect(
        name: "opencl", prelude: "", kernelQualifier: "__kernel void", bufferAddressSpace: "__global ",
        restrict: "restrict", loop: .grid(index: "get_global_id(0)"), indexType: "long", floatType: "float",
        boolType: "int", boolStorageType: "uchar", mathSuffix: "", infinity: "INFINITY", nan: "NAN",
        halfType: "half", halfPrelude: "#pragma OPENCL EXTENSION cl_khr_fp16 : enable\n", halfToFloat: "(float)%", floatToHalf: "(half)(%)")

    /// CUDA C++: one thread per element.
    public static let cuda = Dialect(
        name: "cuda", prelude: "", kernelQualifier: "extern \"C\" __global__ void", bufferAddressSpace: "",
        restrict: "__restrict__", loop: .grid(index: "(long)blockIdx.x * blockDim.x + threadIdx.x"), indexType: "long",
        floatType: "float", boolType: "bool", boolStorageType: "unsigned char", mathSuffix: "f",
        infinity: "__int_as_float(0x7f800000)", nan: "__int_as_float(0x7fffffff)",
        halfType: "__half", halfPrelude: "#include <cuda_fp16.h>\n", halfToFloat: "__half2float(%)", floatToHalf: "__float2half(%)")
}

/// Renders a `Kernel` as C-like source in a `Dialect`.
public struct Renderer: Sendable {
    public var dialect: Dialect
    public init(dialect: Dialect) { self.dialect = dialect }

    public func render(_ kernel: Kernel) -> String {
        let d = dialect
        var params = kernel.buffers.map { b in
            let type = b.elementType == .bool ? d.boolStorageType : b.elementType == .f16 ? d.halfType : d.floatType
            let const = b.access == .read ? "const " : ""
            return "\(d.bufferAddressSpace)\(const)\(type) *\(d.restrict) \(b.name)"
        }
        let prelude = (kernel.usesHalf ? d.halfPrelude : "") + d.prelude
        var out = prelude.isEmpty ? "" : prelude + "\n"
        out += "// \(kernel.name): \(kernel.count) elements\n"
        var indent = "  "
        switch d.loop {
        case .range(let pragma):
            params += ["\(d.indexType) begin", "\(d.indexType) end"]
            out += "\(d.kernelQualifier) \(kernel.name)(\(params.joined(separator: ", "))) {\n"
            if let pragma { out += "  \(pragma)\n" }
            out += "  for (\(d.indexType) i = begin; i < end; ++i) {\n"
            indent = "    "
        case .grid(let index):
            out += "\(d.kernelQualifier) \(kernel.name)(\(params.joined(separator: ", "))) {\n"
            out += "  \(d.indexType) i = \(index);\n"
            out += "  if (i >= \(kernel.count)) return;\n"
        }
        for s in kernel.body {
            switch s {
            case .let(let t, let type, let value):
                out += "\(indent)\(type == .bool ? d.boolType : d.floatType) t\(t) = \(expr(value, kernel, top: true));\n"
            case .store(let b, let index, let value):
                var v = expr(value, kernel, top: true)
                if kernel.buffers[b].elementType == .bool { v = "(\(d.boolStorageType))(\(v))" }
                if kernel.buffers[b].elementType == .f16 { v = d.floatToHalf.replacingOccurrences(of: "%", with: v) }
                out += "\(indent)\(kernel.buffers[b].name)[\(self.index(index, top: true))] = \(v);\n"
            }
        }
        if case .range = d.loop { out += "  }\n" }
        out += "}\n"
        return out
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

    func literal(_ x: Float) -> String {
        if x.isNaN { return dialect.nan }
        if x.isInfinite { return x < 0 ? "-" + dialect.infinity : dialect.infinity }
        let s = "\(x)"
        return (s.contains(".") || s.contains("e") ? s : s + ".0") + "f"
    }

    func expr(_ e: Expr, _ k: Kernel, top: Bool = false) -> String {
        let d = dialect
        let s: String
        switch e {
        case .load(let b, let i):
            let load = "\(k.buffers[b].name)[\(index(i, top: true))]"
            return k.buffers[b].elementType == .f16 ? d.halfToFloat.replacingOccurrences(of: "%", with: load) : load
        case .constant(let x):
            let l = literal(x)
            return l.hasPrefix("-") && !top ? "(\(l))" : l
        case .temp(let t):
            return "t\(t)"
        case .unary(.neg, let a):
            s = "-\(expr(a, k))"
        case .unary(let op, let a):
            return "\(op.rawValue)\(d.mathSuffix)(\(expr(a, k, top: true)))"
        case .binary(let op, let a, let b):
            switch op {
            case .add: s = "\(expr(a, k)) + \(expr(b, k))"
            case .sub: s = "\(expr(a, k)) - \(expr(b, k))"
            case .mul: s = "\(expr(a, k)) * \(expr(b, k))"
            case .div: s = "\(expr(a, k)) / \(expr(b, k))"
            case .max, .min: return "f\(op.rawValue)\(d.mathSuffix)(\(expr(a, k, top: true)), \(expr(b, k, top: true)))"
            }
        case .select(let c, let a, let b):
            s = "\(expr(c, k)) ? \(expr(a, k)) : \(expr(b, k))"
        case .compare(let op, let a, let b):
            let symbol = ["lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "=="][op.rawValue]!
            s = "\(expr(a, k)) \(symbol) \(expr(b, k))"
        case .cast(let a, .f16):
            let half = d.floatToHalf.replacingOccurrences(of: "%", with: expr(a, k, top: true))
            return d.halfToFloat.replacingOccurrences(of: "%", with: half)
        case .cast(let a, let to):
            s = "(\(to == .bool ? d.boolType : d.floatType))\(expr(a, k))"
        }
        return top ? s : "(\(s))"
    }
}

extension Kernel {
    /// Whether the kernel reads or writes f16 buffers or rounds to half precision.
    public var usesHalf: Bool {
        func uses(_ e: Expr) -> Bool {
            switch e {
            case .load, .constant, .temp: return false
            case .cast(_, .f16): return true
            case .unary(_, let a), .cast(let a, _): return uses(a)
            case .binary(_, let a, let b), .compare(_, let a, let b): return uses(a) || uses(b)
            case .select(let c, let a, let b): return uses(c) || uses(a) || uses(b)
            }
        }
        return buffers.contains { $0.elementType == .f16 } || body.contains { s in
            switch s {
            case .let(_, _, let v), .store(_, _, let v): return uses(v)
            }
        }
    }
}
