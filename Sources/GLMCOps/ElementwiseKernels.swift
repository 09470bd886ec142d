#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import GLMCIR

// The machinery every elementwise op shares: element-type protocols that let one generic kernel serve
// all storage cases, a dispatcher from `TensorStorage` to those kernels, NumPy broadcasting, and
// helpers for the ops' inference and operand checking. Everything is nested in `ElementwiseOps` so
// that names cannot clash with other op families in the module.

// MARK: - Element types

extension ElementwiseOps {
    /// An element type with a `TensorStorage` case of its own, so generic kernels can take arrays out of
    /// storage and put results back.
    protocol Element: Sendable {
        /// The elements of `storage` as `Self`, or nil when it holds another type. `Float` also reads
        /// f16/bf16 storage (decoded), because half-precision kernels compute in Float.
        static func ewValues(of storage: TensorStorage) -> [Self]?
        static func ewStorage(_ values: [Self]) -> TensorStorage
    }

    /// The floating-point types kernels compute in (f16/bf16 compute in Float).
    protocol FloatElement: Element, BinaryFloatingPoint {
        init(ewDouble: Double)
        var ewDouble: Double { get }
        /// C `fmod`.
        static func ewFmod(_ a: Self, _ b: Self) -> Self
    }

    protocol IntElement: Element, FixedWidthInteger {}
}

extension Float: ElementwiseOps.FloatElement {
    static func ewValues(of storage: TensorStorage) -> [Float]? {
        switch storage {
        case .f32(let a): return a
        case .f16(let a): return a.map(halfToFloat)
        case .bf16(let a): return a.map(bfloat16ToFloat)
        default: return nil
        }
    }
    static func ewStorage(_ values: [Float]) -> TensorStorage { .f32(values) }
    init(ewDouble value: Double) { self.init(value) }
    var ewDouble: Double { Double(self) }
    static func ewFmod(_ a: Float, _ b: Float) -> Float { fmodf(a, b) }
}

extension Double: ElementwiseOps.FloatElement {
    static func ewValues(of storage: TensorStorage) -> [Double]? { if case .f64(let a) = storage { return a } else { return nil } }
    static func ewStorage(_ values: [Double]) -> TensorStorage { .f64(values) }
    init(ewDouble value: Double) { self = value }
    var ewDouble: Double { self }
    static func ewFmod(_ a: Double, _ b: Double) -> Double { fmod(a, b) }
}

extension Int64: ElementwiseOps.IntElement {
    static func ewValues(of storage: TensorStorage) -> [Int64]? { if case .i64(let a) = storage { return a } else { return nil } }
    static func ewStorage(_ values: [Int64]) -> TensorStorage { .i64(values) }
}
extension Int32: ElementwiseOps.IntElement {
    static func ewValues(of storage: TensorStorage) -> [Int32]? { if case .i32(let a) = storage { return a } else { return nil } }
    static func ewStorage(_ values: [Int32]) -> TensorStorage { .i32(values) }
}
extension Int16: ElementwiseOps.IntElement {
    static func ewValues(of storage: TensorStorage) -> [Int16]? { if case .i16(let a) = storage { return a } else { return nil } }
    static func ewStorage(_ values: [Int16]) -> TensorStorage { .i16(values) }
}
extension Int8: ElementwiseOps.IntElement {
    static func ewValues(of storage: TensorStorage) -> [Int8]? { if case .i8(let a) = storage { return a } else { return nil } }
    static func ewStorage(_ values: [Int8]) -> TensorStorage { .i8(values) }
}
extension UInt64: ElementwiseOps.IntElement {
    static func ewValues(of storage: TensorStorage) -> [UInt64]? { if case .u64(let a) = storage { return a } else { return nil } }
    static func ewStorage(_ values: [UInt64]) -> TensorStorage { .u64(values) }
}
extension UInt32: ElementwiseOps.IntElement {
    static func ewValues(of storage: TensorStorage) -> [UInt32]? { if case .u32(let a) = storage { return a } else { return nil } }
    static func ewStorage(_ values: [UInt32]) -> TensorStorage { .u32(values) }
}
extension UInt16: ElementwiseOps.IntElement {
    static func ewValues(of storage: TensorStorage) -> [UInt16]? { if case .u16(let a) = storage { return a } else { return nil } }
    static func ewStorage(_ values: [UInt16]) -> TensorStorage { .u16(values) }
}
extension UInt8: ElementwiseOps.IntElement {
    static func ewValues(of storage: TensorStorage) -> [UInt8]? { if case .u8(let a) = storage { return a } else { return nil } }
    static func ewStorage(_ values: [UInt8]) -> TensorStorage { .u8(values) }
}

extension Bool: ElementwiseOps.Element {
    static func ewValues(of storage: TensorStorage) -> [Bool]? { if case .bool(let a) = storage { return a } else { return nil } }
    static func ewStorage(_ values: [Bool]) -> TensorStorage { .bool(values) }
}
extension String: ElementwiseOps.Element {
    static func ewValues(of storage: TensorStorage) -> [String]? { if case .string(let a) = storage { return a } else { return nil } }
    static func ewStorage(_ values: [String]) -> TensorStorage { .string(values) }
}

// MARK: - Kernels and dispatch

extension ElementwiseOps {
    /// Thrown by a kernel for an element type it does not handle; `apply` turns it into an
    /// "unsupported" error naming the node.
    struct UnsupportedElementType: Error {}

    /// A computation generic over element types. `apply` calls the method for a tensor's element type;
    /// methods a kernel does not implement reject that type.
    protocol Kernel {
        func floating<T: FloatElement>(_ x: [T]) throws -> TensorStorage
        func integer<T: IntElement>(_ x: [T]) throws -> TensorStorage
        func boolean(_ x: [Bool]) throws -> TensorStorage
        func string(_ x: [String]) throws -> TensorStorage
    }

    /// Runs `kernel` on the elements of `t`. Half-precision tensors compute in Float; a Float result is
    /// re-encoded to the input's half type (results of other types, e.g. bool, are kept).
    static func apply<K: Kernel>(_ kernel: K, to t: Tensor, _ ctx: some NodeContext) throws -> TensorStorage {
        do {
            switch t.storage {
            case .f32(let a): return try kernel.floating(a)
            case .f64(let a): return try kernel.floating(a)
            case .f16(let a): return reencode(try kernel.floating(a.map(halfToFloat)), as: .f16)
            case .bf16(let a): return reencode(try kernel.floating(a.map(bfloat16ToFloat)), as: .bf16)
            case .i64(let a): return try kernel.integer(a)
            case .i32(let a): return try kernel.integer(a)
            case .i16(let a): return try kernel.integer(a)
            case .i8(let a): return try kernel.integer(a)
            case .u64(let a): return try kernel.integer(a)
            case .u32(let a): return try kernel.integer(a)
            case .u16(let a): return try kernel.integer(a)
            case .u8(let a): return try kernel.integer(a)
            case .bool(let a): return try kernel.boolean(a)
            case .string(let a): return try kernel.string(a)
            }
        } catch is UnsupportedElementType {
            throw ctx.unsupported("\(t.dtype) operands")
        }
    }

    private static func reencode(_ storage: TensorStorage, as dtype: DType) -> TensorStorage {
        guard case .f32(let values) = storage else { return storage }
        return dtype == .bf16 ? .bf16(values.map(floatToBFloat16)) : .f16(values.map(floatToHalf))
    }

    /// The elements of a second operand in the element type the kernel runs in (callers have checked
    /// that the operands' dtypes agree).
    static func values<T: Element>(_ t: Tensor, as: T.Type = T.self) throws -> [T] {
        guard let v = T.ewValues(of: t.storage) else { throw UnsupportedElementType() }
        return v
    }

    /// Every element as Double. Reads u64 itself: `Tensor.doubles` maps u64 through `Double.init`,
    /// which resolves to `init(bitPattern:)`.
    static func doubles(_ t: Tensor) -> [Double] {
        if case .u64(let a) = t.storage { return a.map { Double($0) } }
        return t.doubles
    }

    /// Double → integer like a C cast where defined: truncation toward zero, wrapping through Int64;
    /// NaN gives 0 and values beyond Int64 saturate.
    @inline(__always)
    static func truncatingInteger<T: FixedWidthInteger>(_ v: Double) -> T {
        guard v.isFinite else { return 0 }
        let t = v.rounded(.towardZero)
        if let exact = T(exactly: t) { return exact }
        if let wide = Int64(exactly: t) { return T(truncatingIfNeeded: wide) }
        return t < 0 ? T.min : T.max
    }
}

extension ElementwiseOps.Kernel {
    func floating<T: ElementwiseOps.FloatElement>(_ x: [T]) throws -> TensorStorage { throw ElementwiseOps.UnsupportedElementType() }
    func integer<T: ElementwiseOps.IntElement>(_ x: [T]) throws -> TensorStorage { throw ElementwiseOps.UnsupportedElementType() }
    func boolean(_ x: [Bool]) throws -> TensorStorage { throw ElementwiseOps.UnsupportedElementType() }
    func string(_ x: [String]) throws -> TensorStorage { throw ElementwiseOps.UnsupportedElementType() }
}

// MARK: - Broadcasting

extension ElementwiseOps {
    /// How the operands of a NumPy-broadcasting op map onto its result. Result dimensions of size 1 are
    /// dropped and adjacent dimensions that every operand walks contiguously (or not at all) are merged,
    /// so equal shapes become one run and `[N,C,H,W] + [C,1,1]` becomes runs of H·W.
    struct Broadcast {
        let shape: [Int]
        let count: Int
        /// Merged result dimensions, outermost first.
        private let dims: [Int]
        /// Per operand: its element stride along each of `dims` (0 where it is broadcast).
        private let strides: [[Int]]

        /// nil when the shapes do not broadcast.
        init?(_ shapes: [[Int]]) {
            guard let out = ShapeHelpers.broadcast(shapes), let n = checkedElementCount(out) else { return nil }
            shape = out
            count = n
            let rank = out.count
            let full: [[Int]] = shapes.map { s in
                var st = [Int](repeating: 0, count: rank)
                var acc = 1
                for i in stride(from: s.count - 1, through: 0, by: -1) {
                    st[rank - s.count + i] = s[i] == 1 ? 0 : acc
                    acc *= s[i]
                }
                return st
            }
            var dims: [Int] = []
            var strides = [[Int]](repeating: [], count: shapes.count)
            for j in 0 ..< rank where out[j] != 1 {
                let mergeable = !dims.isEmpty && strides.indices.allSatisfy { k in
                    strides[k][strides[k].count - 1] == full[k][j] * out[j]
                }
                if mergeable {
                    dims[dims.count - 1] *= out[j]
                    for k in strides.indices { strides[k][strides[k].count - 1] = full[k][j] }
                } else {
                    dims.append(out[j])
                    for k in strides.indices { strides[k].append(full[k][j]) }
                }
            }
            self.dims = dims
            self.strides = strides
        }

        /// Per operand: how far it advances along a run.
        var innerStrides: [Int] { strides.map { $0.last ?? 0 } }

        /// Calls `body(start, length, offsets)` for each innermost run of the result in row-major order;
        /// `offsets[k]` is the index of operand k's element at result index `start`.
        @inline(__always)
        func forEachRun(_ body: (_ start: Int, _ length: Int, _ offsets: [Int]) -> Void) {
            guard count > 0 else { return }
            var offsets = [Int](repeating: 0, count: strides.count)
            guard let length = dims.last else { body(0, 1, offsets); return }
            let outer = dims.count - 1
            var index = [Int](repeating: 0, count: outer)
            var start = 0
            while start < count {
                body(start, length, offsets)
                start += length
                var d = outer - 1
                while d >= 0 {
                    index[d] += 1
                    for k in offsets.indices { offsets[k] += strides[k][d] }
                    if index[d] < dims[d] { break }
                    for k in offsets.indices { offsets[k] -= strides[k][d] * dims[d] }
                    index[d] = 0
                    d -= 1
                }
            }
        }
    }

    /// `f` applied to broadcast pairs of `a` and `b` (laid out as `bc`, built from their shapes).
    @inline(__always)
    static func map2<A, B, R>(_ a: [A], _ b: [B], _ bc: Broadcast, _ f: (A, B) -> R) -> [R] {
        let inner = bc.innerStrides
        let sa = inner[0], sb = inner[1]
        return [R](unsafeUninitializedCapacity: bc.count) { out, initialized in
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    bc.forEachRun { start, length, offsets in
                        // Rebased buffers and separate loops for the common stride patterns let the
                        // compiler vectorize contiguous and scalar-operand runs.
                        let o = UnsafeMutableBufferPointer(rebasing: out[start ..< start + length])
                        let ia = offsets[0], ib = offsets[1]
                        switch (sa, sb) {
                        case (1, 1):
                            let x = UnsafeBufferPointer(rebasing: pa[ia ..< ia + length])
                            let y = UnsafeBufferPointer(rebasing: pb[ib ..< ib + length])
                            for j in 0 ..< length { o.initializeElement(at: j, to: f(x[j], y[j])) }
                        case (1, 0):
                            let x = UnsafeBufferPointer(rebasing: pa[ia ..< ia + length]), y = pb[ib]
                            for j in 0 ..< length { o.initializeElement(at: j, to: f(x[j], y)) }
                        case (0, 1):
                            let x = pa[ia], y = UnsafeBufferPointer(rebasing: pb[ib ..< ib + length])
                            for j in 0 ..< length { o.initializeElement(at: j, to: f(x, y[j])) }
                        default:
                            for j in 0 ..< length { o.initializeElement(at: j, to: f(pa[ia + j * sa], pb[ib + j * sb])) }
                        }
                    }
                }
            }
            initialized = bc.count
        }
    }

    /// `f` applied to broadcast triples (Where).
    @inline(__always)
    static func map3<A, B, C, R>(_ a: [A], _ b: [B], _ c: [C], _ bc: Broadcast, _ f: (A, B, C) -> R) -> [R] {
        let inner = bc.innerStrides
        let sa = inner[0], sb = inner[1], sc = inner[2]
        return [R](unsafeUninitializedCapacity: bc.count) { out, initialized in
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    c.withUnsafeBufferPointer { pc in
                        bc.forEachRun { start, length, offsets in
                            for j in 0 ..< length {
                                out.initializeElement(at: start + j, to: f(pa[offsets[0] + j * sa], pb[offsets[1] + j * sb], pc[offsets[2] + j * sc]))
                            }
                        }
                    }
                }
            }
            initialized = bc.count
        }
    }

    /// The broadcast layout of operands with `shapes`, or an error naming the node.
    static func broadcast(_ shapes: [[Int]], _ ctx: some NodeContext) throws -> Broadcast {
        guard let bc = Broadcast(shapes) else {
            throw ctx.error("cannot broadcast shapes \(shapes.map { "\($0)" }.joined(separator: " and "))")
        }
        return bc
    }
}

// MARK: - Operands, dtype sets, inference

extension ElementwiseOps {
    static let floatTypes: Set<DType> = [.f16, .bf16, .f32, .f64]
    static let signedIntTypes: Set<DType> = [.i8, .i16, .i32, .i64]
    static let intTypes: Set<DType> = signedIntTypes.union([.u8, .u16, .u32, .u64])
    static let numericTypes: Set<DType> = floatTypes.union(intTypes)
    static let signedNumericTypes: Set<DType> = floatTypes.union(signedIntTypes)

    /// Throws unless `dtype` is one of `allowed`.
    static func require(_ dtype: DType, in allowed: Set<DType>, _ ctx: some NodeContext) throws {
        guard allowed.contains(dtype) else {
            let names = allowed.map(\.rawValue).sorted().joined(separator: ", ")
            throw ctx.error("element type \(dtype) is not allowed (expected one of \(names))")
        }
    }

    /// Throws unless all present operand types share one element type; returns it.
    static func commonType(_ types: [DType], _ ctx: some NodeContext) throws -> DType {
        guard let first = types.first else { throw ctx.error("missing operands") }
        for t in types where t != first {
            throw ctx.error("operands have different element types \(types.map(\.rawValue).joined(separator: ", "))")
        }
        return first
    }

    /// Before opset 7, binary ops broadcast only when the `broadcast` attribute is 1, with B's
    /// dimensions lined up from `axis` of A (or from the right when `axis` is absent). Returns the
    /// shape B has under NumPy rules, which then broadcasts against A as usual.
    static func legacyOperandShape<D>(_ b: [D], aRank: Int, one: D, _ ctx: some NodeContext) throws -> [D] {
        guard ctx.opset < 7, try ctx.int("broadcast", default: 0) == 1, let axis = try ctx.int("axis") else { return b }
        let start = axis < 0 ? axis + aRank : axis
        guard start >= 0, start + b.count <= aRank else {
            throw ctx.error("axis \(axis) does not fit a rank-\(b.count) operand into rank \(aRank)")
        }
        return [D](repeating: one, count: start) + b + [D](repeating: one, count: aRank - start - b.count)
    }

    /// Result type of a broadcasting op over operands `indices` (absent ones skipped): their common
    /// element type (or `result` when given; the first operand's without `sameType`) and the
    /// broadcast shape.
    static func inferBroadcast(_ ctx: InferenceContext, operands indices: [Int], allowed: Set<DType>? = nil,
                               result: DType? = nil, sameType: Bool = true) throws -> TensorType {
        var types: [TensorType] = []
        for i in indices { if let t = ctx.inputType(i) { types.append(t) } }
        guard let first = types.first else { throw ctx.error("missing operands") }
        let dtype = sameType ? try commonType(types.map(\.dtype), ctx) : first.dtype
        if let allowed { try require(dtype, in: allowed, ctx) }
        var shapes = types.map(\.shape)
        if shapes.count == 2, let a = shapes[0].dims, let b = shapes[1].dims {
            shapes[1] = Shape(try legacyOperandShape(b, aRank: a.count, one: Dim.known(1), ctx))
        }
        return TensorType(result ?? dtype, try ShapeHelpers.broadcast(shapes, context: ctx))
    }

    /// The first `ctx.outputCount` of an op's result types; throws when the node asks for more.
    static func results(_ ctx: some NodeContext, _ types: [TensorType]) throws -> [TensorType] {
        guard ctx.outputCount <= types.count else { throw ctx.error("expects at most \(types.count) results, got \(ctx.outputCount)") }
        return Array(types.prefix(ctx.outputCount))
    }
}
