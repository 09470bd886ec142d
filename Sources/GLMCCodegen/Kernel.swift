/// The kernel IR: one data-parallel loop over a flat index `i` in `[0, count)`.
///
/// A kernel is what a renderer turns into source text. Its body is a list of statements executed
/// for every `i`: `let` statements bind numbered temporaries (`t0`, `t1`, ...) to scalar
/// expressions, and `store` statements write a value into an output buffer. Buffers are flat,
/// row-major arrays; broadcasting is expressed in the index expressions of loads.
///
/// Every expression has a type (`Expr.type`): the computed type of what it reads. The operations
/// are defined for every type they accept, with no undefined behaviour in any dialect: integer
/// arithmetic wraps, integer division by zero gives 0, shifts by out-of-range amounts saturate (see
/// `BinaryOp`). The renderer maps each one to source per dialect.

/// The scalar types a kernel stores and computes with.
public enum ScalarType: String, Hashable, Sendable, CaseIterable {
    /// IEEE binary32 and binary64.
    case f32, f64
    /// IEEE half and bfloat16: buffer element types only. Loads widen to f32, stores narrow, and
    /// arithmetic is f32; `Expr.cast(x, to: .f16/.bf16)` rounds to the narrow type (and stays f32).
    case f16, bf16
    case i8, i16, i32, i64, u8, u16, u32, u64
    /// A truth value: 0 or 1 in a byte when stored, an `int`/`bool` when computed.
    case bool

    /// The type values of this type are computed in (halves widen to f32).
    public var computed: ScalarType { self == .f16 || self == .bf16 ? .f32 : self }
    public var isFloat: Bool { self == .f32 || self == .f64 || self == .f16 || self == .bf16 }
    public var isSignedInteger: Bool { self == .i8 || self == .i16 || self == .i32 || self == .i64 }
    public var isUnsignedInteger: Bool { self == .u8 || self == .u16 || self == .u32 || self == .u64 }
    public var isInteger: Bool { isSignedInteger || isUnsignedInteger }
    /// Bits of an element (8 for bool).
    public var bitWidth: Int {
        switch self {
        case .i8, .u8, .bool: return 8
        case .i16, .u16, .f16, .bf16: return 16
        case .i32, .u32, .f32: return 32
        case .i64, .u64, .f64: return 64
        }
    }
    /// The unsigned type integer arithmetic of this type is done in, so that it wraps instead of
    /// overflowing: at least 32 bits, because narrower operands are promoted to (signed) int.
    public var wrappingType: ScalarType { bitWidth == 64 ? .u64 : .u32 }
    /// The least and greatest value of an integer type.
    public var integerRange: (min: Int64, max: UInt64) {
        switch self {
        case .i8: return (Int64(Int8.min), UInt64(Int8.max))
        case .i16: return (Int64(Int16.min), UInt64(Int16.max))
        case .i32: return (Int64(Int32.min), UInt64(Int32.max))
        case .i64: return (Int64.min, UInt64(Int64.max))
        case .u8: return (0, UInt64(UInt8.max))
        case .u16: return (0, UInt64(UInt16.max))
        case .u32: return (0, UInt64(UInt32.max))
        case .u64: return (0, UInt64.max)
        default: return (0, 1)
        }
    }
}

/// A constant of a computed type.
public enum Literal: Hashable, Sendable {
    /// An f32 (its value exactly representable in f32) or f64 constant.
    case float(Double, ScalarType)
    /// A signed integer or bool (0 or 1) constant.
    case int(Int64, ScalarType)
    /// An unsigned integer constant.
    case uint(UInt64, ScalarType)

    public var type: ScalarType {
        switch self {
        case .float(_, let t), .int(_, let t), .uint(_, let t): return t
        }
    }

    // Floats compare by bit pattern: -0 and 0 are different constants (x + -0 keeps a -0 that
    // x + 0 does not), and a NaN constant equals itself, so that expressions are shared right.
    public static func == (a: Literal, b: Literal) -> Bool {
        switch (a, b) {
        case (.float(let x, let s), .float(let y, let t)): return x.bitPattern == y.bitPattern && s == t
        case (.int(let x, let s), .int(let y, let t)): return x == y && s == t
        case (.uint(let x, let s), .uint(let y, let t)): return x == y && s == t
        default: return false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .float(let x, let t): hasher.combine(0); hasher.combine(x.bitPattern); hasher.combine(t)
        case .int(let x, let t): hasher.combine(1); hasher.combine(x); hasher.combine(t)
        case .uint(let x, let t): hasher.combine(2); hasher.combine(x); hasher.combine(t)
        }
    }

    /// `x` as a constant of the computed type `type` (a float, integer or bool type); integers
    /// truncate toward zero and saturate.
    public static func of(_ x: Double, _ type: ScalarType) -> Literal {
        let t = type.computed
        if t == .f64 { return .float(x, t) }
        if t == .f32 { return .float(Double(Float(x)), t) }
        if t == .bool { return .int(x != 0 ? 1 : 0, t) }
        // Out of range (or NaN) saturates rather than trapping; callers pass small integers.
        let v = x.isNaN ? 0 : x.rounded(.towardZero)
        if t.isUnsignedInteger { return .uint(v <= 0 ? 0 : v >= 0x1p64 ? .max : UInt64(v), t) }
        return .int(v <= -0x1p63 ? .min : v >= 0x1p63 ? .max : Int64(v), t)
    }
}

/// One buffer parameter of a kernel.
public struct KernelBuffer: Hashable, Sendable {
    public enum Access: String, Hashable, Sendable { case read, write }
    public var name: String
    public var elementType: ScalarType
    /// The number of elements (the buffer's size is this times the element size).
    public var count: Int
    public var access: Access
    public init(name: String, elementType: ScalarType, count: Int, access: Access) {
        self.name = name; self.elementType = elementType; self.count = count; self.access = access
    }
}

/// An element index, computed from the loop index `i` with constant strides.
public indirect enum IndexExpr: Hashable, Sendable {
    /// The loop index.
    case i
    case constant(Int)
    case div(IndexExpr, Int)
    case mod(IndexExpr, Int)
    case mul(IndexExpr, Int)
    case add(IndexExpr, IndexExpr)

    /// The index for `i`, as the renderer's expression computes it.
    public func evaluate(_ i: Int) -> Int {
        switch self {
        case .i: return i
        case .constant(let c): return c
        case .div(let a, let c): return a.evaluate(i) / c
        case .mod(let a, let c): return a.evaluate(i) % c
        case .mul(let a, let c): return a.evaluate(i) * c
        case .add(let a, let b): return a.evaluate(i) + b.evaluate(i)
        }
    }
}

/// An operation on one value, whose result has the operand's type.
public enum UnaryOp: String, Hashable, Sendable, CaseIterable {
    /// Negation; on integers it wraps (the most negative value is its own negation).
    case neg
    /// Absolute value; on signed integers it wraps like `neg`.
    case abs
    // Math functions of floats (f32 or f64). `round` rounds half to even.
    case exp, expm1, log, log1p, sqrt, erf, sin, cos, tan, asin, acos, atan, sinh, cosh, tanh, asinh, acosh, atanh
    case ceil, floor, round
    /// Logical not of a bool.
    case not
    /// Bitwise complement of an integer.
    case bitNot
}

/// An operation on two values of one type (the result has that type).
public enum BinaryOp: String, Hashable, Sendable, CaseIterable {
    /// On integers these wrap.
    case add, sub, mul
    /// On integers: truncating, `x / 0 == 0`, and the overflowing `min / -1` wraps to `min`.
    case div
    /// The remainder with the dividend's sign (C's `%`, `fmod`); on integers `x rem 0 == 0`.
    case rem
    /// The greater / smaller operand; on floats a NaN operand gives NaN.
    case max, min
    /// `a` to the power `b`, of floats; of integers with wrapping, a negative power truncating
    /// `1 / a^-b` toward zero.
    case pow
    /// Bitwise on integers, logical on bools.
    case and, or, xor
    /// Shifts of integers by `b` bits; a shift by a negative amount or the bit width or more gives 0
    /// (for a right shift of a negative value, -1).
    case shl, shr
}

public enum CompareOp: String, Hashable, Sendable, CaseIterable {
    case lt, le, gt, ge, eq, ne
}

/// A scalar expression, evaluated at the current `i`.
public indirect enum Expr: Hashable, Sendable {
    /// An element of a buffer parameter (by index into `Kernel.buffers`).
    case load(buffer: Int, index: IndexExpr)
    case constant(Literal)
    /// A temporary bound by an earlier `let` statement.
    case temp(Int)
    case unary(UnaryOp, Expr)
    case binary(BinaryOp, Expr, Expr)
    /// `condition ? then : else`.
    case select(Expr, Expr, Expr)
    /// A bool-valued comparison of two values of one type.
    case compare(CompareOp, Expr, Expr)
    /// A conversion to `ScalarType`, with the interpreter's (NumPy's) rules: floats to integers
    /// truncate toward zero, wrapping through i64, NaN and infinities give 0 and values beyond i64
    /// saturate; integers wrap; anything nonzero is true. To `.f16`/`.bf16`: rounding to that
    /// precision (correctly rounded from every type), the result still f32.
    case cast(Expr, to: ScalarType)

    /// An f32 constant.
    public static func f32(_ x: Float) -> Expr { .constant(.float(Double(x), .f32)) }
    /// `x` as a constant of the computed type `type`.
    public static func constant(_ x: Double, _ type: ScalarType) -> Expr { .constant(.of(x, type)) }

    /// The computed type of the expression, given the kernel's buffers and the types of the
    /// temporaries bound so far.
    public func type(buffers: [KernelBuffer], temps: [Int: ScalarType]) -> ScalarType {
        switch self {
        case .load(let b, _): return buffers[b].elementType.computed
        case .constant(let l): return l.type
        case .temp(let t): return temps[t] ?? .f32
        case .unary(_, let a), .binary(_, let a, _), .select(_, let a, _): return a.type(buffers: buffers, temps: temps)
        case .compare: return .bool
        case .cast(_, let t): return t.computed
        }
    }
}

public enum Statement: Hashable, Sendable {
    /// `type t<temp> = value;` (`type` a computed type)
    case `let`(temp: Int, type: ScalarType, value: Expr)
    /// `buffer[index] = value;` (the value of the buffer's computed type)
    case store(buffer: Int, index: IndexExpr, value: Expr)
}

/// A kernel: buffer parameters and a body run for each `i` in `[0, count)`.
public struct Kernel: Hashable, Sendable {
    public var name: String
    public var buffers: [KernelBuffer]
    /// The iteration count: the element count of the outputs.
    public var count: Int
    public var body: [Statement]
    public init(name: String, buffers: [KernelBuffer], count: Int, body: [Statement]) {
        self.name = name; self.buffers = buffers; self.count = count; self.body = body
    }

    /// Every expression of the body, its subexpressions included.
    public var expressions: [Expr] {
        var out: [Expr] = []
        func visit(_ e: Expr) {
            out.append(e)
            switch e {
            case .load, .constant, .temp: break
            case .unary(_, let a), .cast(let a, _): visit(a)
            case .binary(_, let a, let b), .compare(_, let a, let b): visit(a); visit(b)
            case .select(let c, let a, let b): visit(c); visit(a); visit(b)
            }
        }
        for s in body {
            switch s {
            case .let(_, _, let v), .store(_, _, let v): visit(v)
            }
        }
        return out
    }
}
