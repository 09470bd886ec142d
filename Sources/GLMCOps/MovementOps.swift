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
/// Almost every kernel here describes, per output axis, which input coordinates it reads (an
/// `AxisGather`; -1 for "a fill value"), or lists the flat input index of every output element; then
/// `Tensor.gathering` / `Tensor.picking` move the elements of whatever dtype the tensor holds, copying
/// contiguous runs whole. Index computation is dtype-independent; element movement is one generic loop.
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

/// Copies runs of `length` consecutive source elements: run k starts at `starts[k]`, or is `length`
/// copies of the optional second array's single element (the fill value) where the start is negative.
/// With `length` 1 this is a plain element gather. Callers guarantee the runs are in range.
struct PickRuns: ElementRearrangement {
    var starts: [Int]
    var length = 1

    func apply<T>(_ arrays: [[T]]) throws -> [T] {
        let fill = arrays.count > 1 ? Array(arrays[1].prefix(1)) : []
        guard !fill.isEmpty || !starts.contains(where: { $0 < 0 }) else {
            throw GLMCError("internal: fill index without a fill value")
        }
        return arrays[0].withUnsafeBufferPointer { src in
            if length == 1 { return starts.map { $0 < 0 ? fill[0] : src[$0] } }
            var out = [T]()
            out.reserveCapacity(starts.count * length)
            for s in starts {
                if s < 0 {
                    out.append(contentsOf: repeatElement(fill[0], count: length))
                } else {
                    out.append(contentsOf: src[s ..< s + length])
                }
            }
            return out
        }
    }
}

/// Concatenation: for each of `outer` slices, `chunks[k]` consecutive elements of each array k in turn.
struct ConcatenateChunks: ElementRearrangement {
    var outer: Int
    var chunks: [Int]

    func apply<T>(_ arrays: [[T]]) throws -> [T] {
        var out = [T]()
        out.reserveCapacity(arrays.reduce(0) { $0 + $1.count })
        for o in 0 ..< outer {
            for (a, chunk) in zip(arrays, chunks) { out.append(contentsOf: a[o * chunk ..< (o + 1) * chunk]) }
        }
        return out
    }
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

/// An "outer product" gather: output axis d at coordinate c reads source coordinate `maps[d][c]` along
/// a source direction of stride `strides[d]`; a negative map entry makes the element a fill value.
/// The output is row-major over `maps.map(\.count)`. Transpose, Expand, Tile, Slice, Split, Pad, Gather,
/// crops and block rearrangements are all one of these.
struct AxisGather {
    var maps: [[Int]]
    var strides: [Int]

    /// Reads every axis of a tensor of `shape` whole.
    init(identity shape: [Int]) {
        maps = shape.map { Array(0 ..< $0) }
        strides = ShapeHelpers.strides(shape)
    }

    init(maps: [[Int]], strides: [Int]) { self.maps = maps; self.strides = strides }

    /// `transpose(reshape(x, viewShape), perm)`.
    init(viewShape: [Int], perm: [Int]) {
        let viewStrides = ShapeHelpers.strides(viewShape)
        maps = perm.map { Array(0 ..< viewShape[$0]) }
        strides = perm.map { viewStrides[$0] }
    }

    var shape: [Int] { maps.map(\.count) }

    /// Flat source index of every output element (-1 for fills), row-major.
    var indices: [Int] { MovementIndexing.productIndices(maps: maps[...], strides: strides[...]) }

    /// The output as runs: trailing axes that read whole, contiguous source rows are copied as one run.
    var runs: PickRuns {
        var length = 1, k = maps.count
        while k > 0, strides[k - 1] == length, maps[k - 1].elementsEqual(0 ..< maps[k - 1].count) {
            length *= maps[k - 1].count
            k -= 1
        }
        return PickRuns(starts: MovementIndexing.productIndices(maps: maps[..<k], strides: strides[..<k]), length: length)
    }
}

extension Tensor {
    /// A tensor of `shape` made of runs of `runLength` elements starting at each of `starts` (by default
    /// single elements), or `fill`'s first element where a start is negative.
    func picking(_ starts: [Int], runLength: Int = 1, shape: [Int], fill: Tensor? = nil) throws -> Tensor {
        try rearranged(PickRuns(starts: starts, length: runLength), shape: shape, fill: fill)
    }

    /// The result of `gather` (shaped `shape`, by default the gather's own shape).
    func gathering(_ gather: AxisGather, shape: [Int]? = nil, fill: Tensor? = nil) throws -> Tensor {
        try rearranged(gather.runs, shape: shape ?? gather.shape, fill: fill)
    }

    private func rearranged(_ runs: PickRuns, shape: [Int], fill: Tensor?) throws -> Tensor {
        var storages = [storage]
        if let fill { storages.append(fill.storage) }
        return Tensor(shape: shape, storage: try .rearranging(storages, with: runs))
    }

    /// A one-element tensor of this dtype holding zero (false, "").
    var zeroScalar: Tensor { Tensor.zeros(dtype, shape: []) }
}

// MARK: - Index computation

enum MovementIndexing {
    /// Flat source indices of the outer-product gather described by `maps` and `strides` (see
    /// `AxisGather`); -1 where a map entry is negative.
    static func productIndices(maps: ArraySlice<[Int]>, strides: ArraySlice<Int>) -> [Int] {
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
/// process): 2^30 elements (4 GiB of f32, plus the index lists of a gather).
let movementElementLimit = 1 << 30

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
