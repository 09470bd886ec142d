/// The kernel IR: one data-parallel loop over a flat index `i` in `[0, count)`.
///
/// A kernel is what a renderer turns into source text. Its body is a list of statements executed
/// for every `i`: `let` statements bind numbered temporaries (`t0`, `t1`, ...) to scalar
/// expressions, and `store` statements write a value into an output buffer. Buffers are flat,
/// row-major arrays; broadcasting is expressed in the index expressions of loads.

/// The scalar types a kernel computes with and stores.
public enum ScalarType: String, Hashable, Sendable {
    /// 32-bit IEEE float.
    case f32
    /// A truth value: 0 or 1 in a byte when stored, an `int`/`bool` when computed.
    case bool
    /// IEEE half: a buffer element type only. Loads widen to f32, stores narrow, and arithmetic is
    /// f32; `Expr.cast(x, to: .f16)` rounds an f32 value to the nearest half (and stays f32).
    case f16
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

public enum UnaryOp: String, Hashable, Sendable, CaseIterable {
    case neg, exp, log, sqrt, tanh, erf
}

public enum BinaryOp: String, Hashable, Sendable, CaseIterable {
    case add, sub, mul, div, max, min
}

public enum CompareOp: String, Hashable, Sendable, CaseIterable {
    case lt, le, gt, ge, eq
}

/// A scalar expression, evaluated at the current `i`.
public indirect enum Expr: Hashable, Sendable {
    /// An element of a buffer parameter (by index into `Kernel.buffers`).
    case load(buffer: Int, index: IndexExpr)
    /// An f32 literal.
    case constant(Float)
    /// A temporary bound by an earlier `let` statement.
    case temp(Int)
    case unary(UnaryOp, Expr)
    case binary(BinaryOp, Expr, Expr)
    /// `condition ? then : else`.
    case select(Expr, Expr, Expr)
    /// A bool-valued comparison of two f32 values.
    case compare(CompareOp, Expr, Expr)
    /// A conversion to `ScalarType` (to `.f16`: rounding to half precision, the result still f32).
    case cast(Expr, to: ScalarType)
}

public enum Statement: Hashable, Sendable {
    /// `type t<temp> = value;`
    case `let`(temp: Int, type: ScalarType, value: Expr)
    /// `buffer[index] = value;`
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
}
