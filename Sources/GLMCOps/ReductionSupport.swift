import GLMCIR

/// Helpers shared by the reduction, normalization and linear-algebra op files (ReductionOps.swift,
/// ReductionNormalization.swift, ReductionLinearAlgebra.swift). Internal to GLMCOps.
enum ReductionSupport {
    // MARK: Shapes

    /// For every element of a row-major `shape`, the offset Σ index[d] * strides[d]. With zero strides
    /// on some axes this maps elements onto a broadcast or reduced tensor.
    static func stridedOffsets(shape: [Int], strides: [Int]) -> [Int] {
        var offsets = [0]
        for (size, stride) in zip(shape, strides) {
            var next = [Int]()
            next.reserveCapacity(offsets.count * size)
            for base in offsets {
                var o = base
                for _ in 0..<size { next.append(o); o += stride }
            }
            offsets = next
        }
        return offsets
    }

    /// Strides that read a tensor of shape `from` as if it had shape `to` (NumPy unidirectional
    /// broadcasting: `from` is right-aligned, size-1 axes repeat). Nil when `from` does not broadcast.
    static func broadcastStrides(from: [Int], to: [Int]) -> [Int]? {
        guard from.count <= to.count else { return nil }
        let own = ShapeHelpers.strides(from)
        let offset = to.count - from.count
        var out = [Int](repeating: 0, count: to.count)
        for (i, size) in from.enumerated() {
            if size == to[offset + i] { out[offset + i] = size == 1 ? 0 : own[i] }
            else if size != 1 { return nil }
        }
        return out
    }

    /// `values` (of shape `from`) broadcast to shape `to`; nil when the shapes do not broadcast.
    static func expand<T>(_ values: [T], from: [Int], to: [Int]) -> [T]? {
        guard let strides = broadcastStrides(from: from, to: to) else { return nil }
        return stridedOffsets(shape: to, strides: strides).map { values[$0] }
    }

    /// Sizes before, at and after `axis`: the (outer, n, inner) view every single-axis op uses.
    static func split(_ shape: [Int], axis: Int) -> (outer: Int, n: Int, inner: Int) {
        guard axis < shape.count else { return (shape.reduce(1, *), 1, 1) }
        return (shape[..<axis].reduce(1, *), shape[axis], shape[(axis + 1)...].reduce(1, *))
    }

    /// Element count of a shape computed from inputs; throws instead of overflowing.
    static func count(_ shape: [Int], _ ctx: some NodeContext) throws -> Int {
        guard let n = checkedElementCount(shape) else { throw ctx.error("result shape \(shape) is too large") }
        return n
    }

    /// Normalizes a list of possibly negative axes; throws on out-of-range or repeated axes.
    static func normalizeAxes(_ axes: [Int], rank: Int, _ ctx: some NodeContext) throws -> [Int] {
        var seen = Set<Int>()
        return try axes.map { a in
            let n = a < 0 ? a + rank : a
            guard n >= 0 && n < rank else { throw ctx.error("axis \(a) is out of range for rank \(rank)") }
            guard seen.insert(n).inserted else { throw ctx.error("axis \(a) is repeated") }
            return n
        }
    }

    /// Integer values of an int32/int64 operand (axes, k, ...).
    static func integers(_ t: Tensor, _ ctx: some NodeContext, what: String) throws -> [Int] {
        guard t.dtype == .i64 || t.dtype == .i32 else { throw ctx.error("\(what) must be int64 or int32, got \(t.dtype)") }
        return t.int64s.map { Int(truncatingIfNeeded: $0) }
    }

    /// A single integer from a scalar or one-element operand.
    static func scalarInteger(_ t: Tensor, _ ctx: some NodeContext, what: String) throws -> Int {
        let v = try integers(t, ctx, what: what)
        guard v.count == 1, t.rank <= 1 else { throw ctx.error("\(what) must hold a single value, got shape \(t.shape)") }
        return v[0]
    }

    // MARK: Types

    /// The operand's type when it is a floating-point tensor; throws otherwise.
    static func floatType(_ ctx: InferenceContext, _ i: Int) throws -> TensorType {
        let t = try ctx.requiredInput(i)
        guard t.dtype.isFloatingPoint else { throw ctx.error("input \(i) must be a floating-point tensor, got \(t.dtype)") }
        return t
    }

    /// The operand when it is a floating-point tensor; throws otherwise.
    static func floatInput(_ ctx: EvalContext, _ i: Int) throws -> Tensor {
        let t = try ctx.requiredInput(i)
        guard t.dtype.isFloatingPoint else { throw ctx.error("input \(i) must be a floating-point tensor, got \(t.dtype)") }
        return t
    }

    /// Rejects strings (and bool when `allowBool` is false) for numeric ops.
    static func requireNumeric(_ dtype: DType, _ ctx: some NodeContext, allowBool: Bool = false) throws {
        if dtype == .string || (dtype == .bool && !allowBool) {
            throw ctx.unsupported("\(dtype) input")
        }
    }

    /// Shape with `axis` replaced by `dim` (or removed when `dim` is nil).
    static func replacing(_ shape: Shape, axis: Int, with dim: Dim?) -> Shape {
        guard var dims = shape.dims, axis < dims.count else { return shape }
        if let dim { dims[axis] = dim } else { dims.remove(at: axis) }
        return Shape(dims)
    }

    // MARK: Ordering

    /// Element values as totally ordered keys: Doubles for floats, Int64 for integers and bool (u64 with
    /// its sign bit flipped, which keeps its order in Int64).
    enum OrderKeys {
        case float([Double])
        case int([Int64])
    }

    static func orderKeys(_ t: Tensor, _ ctx: some NodeContext) throws -> OrderKeys {
        switch t.storage {
        case .string: throw ctx.unsupported("string input")
        case .u64(let a): return .int(a.map { Int64(bitPattern: $0 ^ (1 << 63)) })
        default: return t.dtype.isFloatingPoint ? .float(t.doubles) : .int(t.int64s)
        }
    }

    /// Elements of `t` at `indices`, keeping the storage type exactly.
    static func gather(_ t: Tensor, _ indices: [Int], shape: [Int]) -> Tensor {
        func pick<T>(_ a: [T]) -> [T] { indices.map { a[$0] } }
        let s: TensorStorage
        switch t.storage {
        case .f64(let a): s = .f64(pick(a))
        case .f32(let a): s = .f32(pick(a))
        case .f16(let a): s = .f16(pick(a))
        case .bf16(let a): s = .bf16(pick(a))
        case .i64(let a): s = .i64(pick(a))
        case .i32(let a): s = .i32(pick(a))
        case .i16(let a): s = .i16(pick(a))
        case .i8(let a): s = .i8(pick(a))
        case .u64(let a): s = .u64(pick(a))
        case .u32(let a): s = .u32(pick(a))
        case .u16(let a): s = .u16(pick(a))
        case .u8(let a): s = .u8(pick(a))
        case .bool(let a): s = .bool(pick(a))
        case .string(let a): s = .string(pick(a))
        }
        return Tensor(shape: shape, storage: s)
    }
}

/// Keys that sort with NaN above every number (NumPy's order for sort/argmax).
protocol ReductionOrderKey: Comparable {
    var isNaNKey: Bool { get }
}
extension Double: ReductionOrderKey { var isNaNKey: Bool { isNaN } }
extension Int64: ReductionOrderKey { var isNaNKey: Bool { false } }

extension ReductionOrderKey {
    /// Strict "a sorts above b", NaN being the largest value.
    @inline(__always) func isAbove(_ b: Self) -> Bool {
        if isNaNKey { return !b.isNaNKey }
        return !b.isNaNKey && self > b
    }
}
