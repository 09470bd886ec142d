import GLMCIR

/// Data-movement ops: ops that create, reshape, rearrange, select or scatter elements without
/// (much) arithmetic. They are split over several files by theme:
/// - MovementSourceOps.swift: Constant, Identity, Dropout, Shape, Size, ConstantOfShape, EyeLike, Range,
///   OneHot, Trilu;
/// - MovementLayoutOps.swift: Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Expand, Tile, Concat,
///   Split, Slice, Pad, DepthToSpace, SpaceToDepth, ReverseSequence, CenterCropPad, Col2Im;
/// - MovementIndexOps.swift: Gather, GatherElements, GatherND, Scatter, ScatterElements, ScatterND,
///   Compress, NonZero, Unique.
///
/// Almost every kernel here computes, for each output element, the flat index of the input element it
/// copies (or -1 for "a fill value"), then lets `Tensor.picking` move the elements of whatever dtype the
/// tensor holds. Index computation is dtype-independent; element movement is one generic loop.
public enum MovementOps {
    public static let all: [OpDefinition] = MovementSourceOps.all + MovementLayoutOps.all + MovementIndexOps.all
}

// MARK: - Dtype-generic element movement

/// An element rearrangement that works the same for every element type: it receives the typed
/// arrays of one or more same-dtype storages and builds the result array.
protocol ElementRearrangement {
    func apply<T>(_ arrays: [[T]]) throws -> [T]
}

extension TensorStorage {
    /// Applies `r` to the arrays of `storages`, which must all hold the same dtype.
    static func rearranging(_ storages: [TensorStorage], with r: some ElementRearrangement) throws -> TensorStorage {
        guard let first = storages.first else { throw GLMCError("internal: nothing to rearrange") }
        func arrays<T>(_ extract: (TensorStorage) -> [T]?) throws -> [[T]] {
            try storages.map { s in
                guard let a = extract(s) else {
                    throw GLMCError("element types differ: \(first.dtype) and \(s.dtype)")
                }
                return a
            }
        }
        switch first {
        case .f64: return .f64(try r.apply(arrays { if case .f64(let a) = $0 { a } else { nil } }))
        case .f32: return .f32(try r.apply(arrays { if case .f32(let a) = $0 { a } else { nil } }))
        case .f16: return .f16(try r.apply(arrays { if case .f16(let a) = $0 { a } else { nil } }))
        case .bf16: return .bf16(try r.apply(arrays { if case .bf16(let a) = $0 { a } else { nil } }))
        case .i64: return .i64(try r.apply(arrays { if case .i64(let a) = $0 { a } else { nil } }))
        case .i32: return .i32(try r.apply(arrays { if case .i32(let a) = $0 { a } else { nil } }))
        case .i16: return .i16(try r.apply(arrays { if case .i16(let a) = $0 { a } else { nil } }))
        case .i8: return .i8(try r.apply(arrays { if case .i8(let a) = $0 { a } else { nil } }))
        case .u64: return .u64(try r.apply(arrays { if case .u64(let a) = $0 { a } else { nil } }))
        case .u32: return .u32(try r.apply(arrays { if case .u32(let a) = $0 { a } else { nil } }))
        case .u16: return .u16(try r.apply(arrays { if case .u16(let a) = $0 { a } else { nil } }))
        case .u8: return .u8(try r.apply(arrays { if case .u8(let a) = $0 { a } else { nil } }))
        case .bool: return .bool(try r.apply(arrays { if case .bool(let a) = $0 { a } else { nil } }))
        case .string: return .string(try r.apply(arrays { if case .string(let a) = $0 { a } else { nil } }))
        }
    }
}

/// `out[k] = source[indices[k]]`, where a negative index selects the single element of the optional
/// second array (the fill value). Callers guarantee indices are in range.
struct PickElements: ElementRearrangement {
    var indices: [Int]
    func apply<T>(_ arrays: [[T]]) throws -> [T] {
        let source = arrays[0]
        if arrays.count > 1, let fill = arrays[1].first {
            return indices.map { $0 < 0 ? fill : source[$0] }
        }
        if indices.contains(where: { $0 < 0 }) { throw GLMCError("internal: fill index without a fill value") }
        return source.withUnsafeBufferPointer { src in indices.map { src[$0] } }
    }
}

/// All arrays one after the other.
struct JoinElements: ElementRearrangement {
    func apply<T>(_ arrays: [[T]]) throws -> [T] { Array(arrays.joined()) }
}

/// A copy of the first array with `out[positions[k]] = updates[k]` (later writes win).
struct OverwriteElements: ElementRearrangement {
    var positions: [Int]
    func apply<T>(_ arrays: [[T]]) throws -> [T] {
        var out = arrays[0]
        let updates = arrays[1]
        for (k, p) in positions.enumerated() { out[p] = updates[k] }
        return out
    }
}

extension Tensor {
    /// A tensor of `shape` whose element k is this tensor's element `indices[k]`, or `fill`'s first
    /// element where the index is negative.
    func picking(_ indices: [Int], shape: [Int], fill: Tensor? = nil) throws -> Tensor {
        var storages = [storage]
        if let fill { storages.append(fill.storage) }
        return Tensor(shape: shape, storage: try .rearranging(storages, with: PickElements(indices: indices)))
    }

    /// A one-element tensor of this dtype holding zero (false, "").
    var zeroScalar: Tensor { Tensor.zeros(dtype, shape: []) }
}

// MARK: - Index computation

enum MovementIndexing {
    /// Flat source indices of an "outer product" gather: output axis d at coordinate c reads source
    /// coordinate `maps[d][c]` along a source direction of stride `strides[d]`; a negative map entry
    /// makes the whole element a fill (-1). Row-major over the output, whose shape is `maps.map(\.count)`.
    /// Transpose, Expand, Tile, Slice, Pad, crops and block rearrangements are all this one loop.
    static func productIndices(maps: [[Int]], strides: [Int]) -> [Int] {
        // An empty axis empties the result; stop before earlier axes build a large partial list.
        if maps.contains(where: \.isEmpty) { return [] }
        var out = [0]
        for (map, stride) in zip(maps, strides) {
            var next = [Int]()
            next.reserveCapacity(out.count * map.count)
            for base in out {
                for m in map { next.append(base < 0 || m < 0 ? -1 : base + m * stride) }
            }
            out = next
        }
        return out
    }

    /// Source indices of `transpose(reshape(x, viewShape), perm)`.
    static func transposedIndices(viewShape: [Int], perm: [Int]) -> [Int] {
        let strides = ShapeHelpers.strides(viewShape)
        return productIndices(maps: perm.map { Array(0 ..< viewShape[$0]) }, strides: perm.map { strides[$0] })
    }

    /// Calls `body(coordinates, flatIndex)` for every element of `shape`, row-major.
    static func forEachCoordinate(_ shape: [Int], _ body: ([Int], Int) throws -> Void) rethrows {
        let count = shape.reduce(1, *)
        guard count > 0 else { return }
        var coords = [Int](repeating: 0, count: shape.count)
        for flat in 0 ..< count {
            try body(coords, flat)
            var d = shape.count - 1
            while d >= 0 {
                coords[d] += 1
                if coords[d] < shape[d] { break }
                coords[d] = 0
                d -= 1
            }
        }
    }
}

// MARK: - Operand and attribute reading shared by the movement ops

/// Element counts beyond this are refused rather than allocated (a hostile shape must not crash the
/// process): 2^31 elements.
let movementElementLimit = 1 << 31

extension NodeContext {
    /// The element count of `shape`, throwing on negative sizes, overflow or absurd sizes.
    func checkedCount(_ shape: [Int]) throws -> Int {
        guard let n = checkedElementCount(shape) else { throw error("invalid shape \(shape)") }
        guard n <= movementElementLimit else { throw unsupported("a result of \(n) elements (shape \(shape))") }
        return n
    }

    /// Resolves a possibly negative axis of a tensor of rank `rank` (which must be at least 1).
    func normalizedAxis(_ axis: Int, rank: Int) throws -> Int {
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0 && a < rank else { throw error("axis \(axis) is out of range for rank \(rank)") }
        return a
    }

    /// Resolves a list of possibly negative axes against `rank`, rejecting duplicates.
    func normalizedAxes(_ axes: [Int], rank: Int) throws -> [Int] {
        let out = try axes.map { a -> Int in
            let n = a < 0 ? a + rank : a
            guard n >= 0 && n < rank else { throw error("axis \(a) is out of range for rank \(rank)") }
            return n
        }
        guard Set(out).count == out.count else { throw error("repeated axis in \(axes)") }
        return out
    }
}

/// `a + b + c` of sizes, or nil when it overflows (hostile pads or split sizes).
func checkedSum(_ values: [Int]) -> Int? {
    var total = 0
    for v in values {
        let (s, overflow) = total.addingReportingOverflow(v)
        if overflow { return nil }
        total = s
    }
    return total
}

/// `a * b`, or nil when it overflows.
func checkedProduct(_ a: Int, _ b: Int) -> Int? {
    let (p, overflow) = a.multipliedReportingOverflow(by: b)
    return overflow ? nil : p
}

extension Tensor {
    /// Integer elements as `Int` (shapes, axes, indices...).
    var ints: [Int] { int64s.map { Int($0) } }
}

/// An integer-list operand as seen by shape inference: omitted, a known constant, or computed at run time.
enum IntsOperand {
    case absent, known([Int]), unknown
}

extension InferenceContext {
    func intsOperand(_ i: Int) -> IntsOperand {
        guard inputType(i) != nil else { return .absent }
        guard let c = constant(i) else { return .unknown }
        return .known(c.ints)
    }

    /// The dims of a required operand, or nil when its rank is unknown.
    func dims(_ i: Int) throws -> [Dim]? { try requiredInput(i).shape.dims }
}

extension EvalContext {
    /// An optional integer-list operand.
    func intsInput(_ i: Int) -> [Int]? { input(i)?.ints }
}

extension Dim {
    /// The product of dims: known when all are known, the symbol itself for one symbol times 1s.
    static func product(_ dims: some Collection<Dim>) -> Dim {
        var known = 1
        var others: [Dim] = []
        for d in dims {
            guard let v = d.value else { others.append(d); continue }
            let (p, overflow) = known.multipliedReportingOverflow(by: v)
            if overflow { return .unknown }
            known = p
        }
        if others.isEmpty { return .known(known) }
        if known == 0 { return .known(0) }
        if others.count == 1, known == 1 { return others[0] }
        return .unknown
    }
}
