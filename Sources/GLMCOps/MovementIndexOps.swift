import GLMCIR

/// Ops that select or write elements by index or by condition: Gather, GatherElements, GatherND,
/// Scatter, ScatterElements, ScatterND, Compress, NonZero, Unique.
enum MovementIndexOps {
    static let all: [OpDefinition] = [
        gather, gatherElements, gatherND, scatter, scatterElements, scatterND, compress, nonZero, unique,
    ]

    /// Index values resolved against an axis of size `bound` (negative ones count from the end);
    /// out-of-range values are an error naming the node.
    private static func resolvedIndices(_ ctx: some NodeContext, _ indices: Tensor, bound: Int) throws -> [Int] {
        guard indices.dtype.isInteger else { throw ctx.error("indices must be integers, got \(indices.dtype)") }
        return try indices.ints.map { i in
            let r = i < 0 ? i + bound : i
            guard r >= 0 && r < bound else { throw ctx.error("index \(i) is out of range for a dim of size \(bound)") }
            return r
        }
    }

    // MARK: Gather

    static let gather = OpDefinition("Gather", since: [1, 11, 13], infer: { ctx in
        let data = try ctx.requiredInput(0)
        guard let dims = data.shape.dims, let indexDims = try ctx.dims(1) else { return [TensorType(data.dtype, .unranked)] }
        let axis = try ctx.normalizedAxis(try ctx.int("axis", default: 0), rank: dims.count)
        return [TensorType(data.dtype, Shape(Array(dims[..<axis]) + indexDims + dims[(axis + 1)...]))]
    }, evaluate: { ctx in
        let data = try ctx.requiredInput(0), indices = try ctx.requiredInput(1)
        let axis = try ctx.normalizedAxis(try ctx.int("axis", default: 0), rank: data.rank)
        let dim = data.shape[axis]
        let outer = data.shape[..<axis].reduce(1, *), inner = data.shape[(axis + 1)...].reduce(1, *)
        // Output (outer, index, inner) reads data (outer, indices[index], inner).
        let maps = [Array(0 ..< outer), try resolvedIndices(ctx, indices, bound: dim), Array(0 ..< inner)]
        let shape = Array(data.shape[..<axis]) + indices.shape + data.shape[(axis + 1)...]
        _ = try ctx.checkedCount(shape)
        return [try data.gathering(AxisGather(maps: maps, strides: [dim * inner, inner, 1]), shape: shape)]
    })

    // MARK: GatherElements, ScatterElements, Scatter

    /// Flat data positions addressed by GatherElements/ScatterElements indices: the index's own
    /// coordinates with the `axis` coordinate replaced by the index value.
    private static func elementPositions(_ ctx: some NodeContext, dataShape: [Int], indices: Tensor) throws -> [Int] {
        let rank = dataShape.count
        let axis = try ctx.normalizedAxis(try ctx.int("axis", default: 0), rank: rank)
        guard indices.rank == rank,
              (0 ..< rank).allSatisfy({ $0 == axis || indices.shape[$0] <= dataShape[$0] }) else {
            throw ctx.error("indices of shape \(indices.shape) do not fit data of shape \(dataShape)")
        }
        let values = try resolvedIndices(ctx, indices, bound: dataShape[axis])
        let strides = ShapeHelpers.strides(dataShape)
        var positions = [Int](repeating: 0, count: values.count)
        MovementIndexing.forEachCoordinate(indices.shape) { c, flat in
            var p = 0
            for d in 0 ..< rank { p += (d == axis ? values[flat] : c[d]) * strides[d] }
            positions[flat] = p
        }
        return positions
    }

    static let gatherElements = OpDefinition("GatherElements", since: [11, 13], infer: { ctx in
        [TensorType(try ctx.requiredInput(0).dtype, try ctx.requiredInput(1).shape)]
    }, evaluate: { ctx in
        let data = try ctx.requiredInput(0), indices = try ctx.requiredInput(1)
        return [try data.picking(try elementPositions(ctx, dataShape: data.shape, indices: indices), shape: indices.shape)]
    })

    /// `data` with `updates[k]` written (or combined by `reduction`) at `positions[k]`, in order.
    private static func scattered(_ ctx: some NodeContext, data: Tensor, updates: Tensor, positions: [Int]) throws -> Tensor {
        guard updates.count == positions.count, updates.dtype == data.dtype else {
            throw ctx.error("updates \(updates.type) do not match the \(positions.count) indexed \(data.dtype) elements")
        }
        let reduction = ctx.opset >= 16 ? try ctx.string("reduction", default: "none") : "none"
        if reduction == "none" {
            let storage = try TensorStorage.rearranging([data.storage, updates.storage], with: OverwriteElements(positions: positions))
            return Tensor(shape: data.shape, storage: storage)
        }
        guard data.dtype != .string else { throw ctx.unsupported("reduction '\(reduction)' on strings") }
        // Integers (and bool) combine exactly in Int64 with wrap-around; floats in Double.
        func combine<T>(_ values: [T], _ updates: [T], _ f: (T, T) -> T) -> [T] {
            var out = values
            for (k, p) in positions.enumerated() { out[p] = f(out[p], updates[k]) }
            return out
        }
        if data.dtype.isFloatingPoint {
            let f: (Double, Double) -> Double
            switch reduction {
            case "add": f = (+)
            case "mul": f = (*)
            case "max": f = { $0.isNaN || $1.isNaN ? .nan : Swift.max($0, $1) }
            case "min": f = { $0.isNaN || $1.isNaN ? .nan : Swift.min($0, $1) }
            default: throw ctx.unsupported("reduction '\(reduction)'")
            }
            return Tensor(doubles: combine(data.doubles, updates.doubles, f), dtype: data.dtype, shape: data.shape)
        }
        let f: (Int64, Int64) -> Int64
        switch reduction {
        case "add": f = (&+)
        case "mul": f = (&*)
        case "max": f = { Swift.max($0, $1) }
        case "min": f = { Swift.min($0, $1) }
        default: throw ctx.unsupported("reduction '\(reduction)'")
        }
        return Tensor(int64s: combine(data.int64s, updates.int64s, f), dtype: data.dtype, shape: data.shape)
    }

    private static let scatterElementsInfer: @Sendable (InferenceContext) throws -> [TensorType] = { ctx in
        [try ctx.requiredInput(0)]
    }
    private static let scatterElementsEval: @Sendable (EvalContext) throws -> [Tensor] = { ctx in
        let data = try ctx.requiredInput(0), indices = try ctx.requiredInput(1), updates = try ctx.requiredInput(2)
        guard updates.shape == indices.shape else {
            throw ctx.error("updates of shape \(updates.shape) differ from indices of shape \(indices.shape)")
        }
        let positions = try elementPositions(ctx, dataShape: data.shape, indices: indices)
        return [try scattered(ctx, data: data, updates: updates, positions: positions)]
    }

    /// Scatter is the deprecated name of ScatterElements (without reductions).
    static let scatter = OpDefinition("Scatter", since: [9, 11], infer: scatterElementsInfer, evaluate: scatterElementsEval)
    static let scatterElements = OpDefinition("ScatterElements", since: [11, 13, 16, 18],
                                              infer: scatterElementsInfer, evaluate: scatterElementsEval)

    // MARK: GatherND, ScatterND

    /// Where GatherND/ScatterND index tuples point: the flat data offset of each addressed slice,
    /// the slice size, and the shape of the tuple grid (indices.shape without its last dim).
    private static func ndOffsets(_ ctx: some NodeContext, dataShape: [Int], indices: Tensor,
                                  batchDims b: Int) throws -> (offsets: [Int], sliceShape: [Int], grid: [Int]) {
        let r = dataShape.count
        guard let k = indices.shape.last, b >= 0, b < indices.rank, b + k <= r,
              Array(indices.shape[..<b]) == Array(dataShape[..<b]) else {
            throw ctx.error("indices of shape \(indices.shape) do not fit data of shape \(dataShape) with batch_dims \(b)")
        }
        let strides = ShapeHelpers.strides(dataShape)
        let values = indices.ints
        let tuples = values.count / max(k, 1)
        let batchCount = dataShape[..<b].reduce(1, *)
        let perBatch = batchCount == 0 ? 0 : (k == 0 ? indices.shape[b ..< indices.rank - 1].reduce(1, *) : tuples / batchCount)
        let batchStride = dataShape[b...].reduce(1, *)
        var offsets: [Int] = []
        offsets.reserveCapacity(batchCount * perBatch)
        for batch in 0 ..< batchCount {
            for t in 0 ..< perBatch {
                var offset = batch * batchStride
                for j in 0 ..< k {
                    let bound = dataShape[b + j]
                    let i = values[(batch * perBatch + t) * k + j]
                    let v = i < 0 ? i + bound : i
                    guard v >= 0 && v < bound else { throw ctx.error("index \(i) is out of range for a dim of size \(bound)") }
                    offset += v * strides[b + j]
                }
                offsets.append(offset)
            }
        }
        return (offsets, Array(dataShape[(b + k)...]), Array(indices.shape.dropLast()))
    }

    static let gatherND = OpDefinition("GatherND", since: [11, 12, 13], infer: { ctx in
        let data = try ctx.requiredInput(0)
        let b = ctx.opset >= 12 ? try ctx.int("batch_dims", default: 0) : 0
        guard let dims = data.shape.dims, let indexDims = try ctx.dims(1), let k = indexDims.last?.value,
              b + k <= dims.count else {
            return [TensorType(data.dtype, .unranked)]
        }
        return [TensorType(data.dtype, Shape(Array(indexDims.dropLast()) + dims[(b + k)...]))]
    }, evaluate: { ctx in
        let data = try ctx.requiredInput(0), indices = try ctx.requiredInput(1)
        let b = ctx.opset >= 12 ? try ctx.int("batch_dims", default: 0) : 0
        let (offsets, sliceShape, grid) = try ndOffsets(ctx, dataShape: data.shape, indices: indices, batchDims: b)
        _ = try ctx.checkedCount(grid + sliceShape)
        return [try data.picking(offsets, runLength: sliceShape.reduce(1, *), shape: grid + sliceShape)]
    })

    static let scatterND = OpDefinition("ScatterND", since: [11, 13, 16, 18], infer: { ctx in
        [try ctx.requiredInput(0)]
    }, evaluate: { ctx in
        let data = try ctx.requiredInput(0), indices = try ctx.requiredInput(1), updates = try ctx.requiredInput(2)
        let (offsets, sliceShape, grid) = try ndOffsets(ctx, dataShape: data.shape, indices: indices, batchDims: 0)
        guard updates.shape == grid + sliceShape else {
            throw ctx.error("updates of shape \(updates.shape) should have shape \(grid + sliceShape)")
        }
        let sliceSize = sliceShape.reduce(1, *)
        let positions = offsets.flatMap { $0 ..< $0 + sliceSize }
        return [try scattered(ctx, data: data, updates: updates, positions: positions)]
    })

    // MARK: Compress, NonZero

    static let compress = OpDefinition("Compress", since: [9, 11, 28], infer: { ctx in
        let x = try ctx.requiredInput(0)
        let kept: Dim = ctx.constant(1).map { c in .known(c.doubles.filter { $0 != 0 }.count) } ?? .unknown
        guard let axis = try ctx.int("axis") else { return [TensorType(x.dtype, Shape([kept]))] }
        guard var dims = x.shape.dims else { return [TensorType(x.dtype, .unranked)] }
        dims[try ctx.normalizedAxis(axis, rank: dims.count)] = kept
        return [TensorType(x.dtype, Shape(dims))]
    }, evaluate: { ctx in
        var x = try ctx.requiredInput(0)
        let condition = try ctx.requiredInput(1)
        guard condition.rank == 1 else { throw ctx.error("condition must be 1-D, got \(condition.shape)") }
        var axis = 0
        if let a = try ctx.int("axis") {
            axis = try ctx.normalizedAxis(a, rank: x.rank)
        } else {
            x = x.reshaped([x.count])
        }
        let selected = condition.doubles.enumerated().filter { $0.element != 0 }.map(\.offset)
        if let last = selected.last, last >= x.shape[axis] {
            throw ctx.error("condition selects index \(last) of a dim of size \(x.shape[axis])")
        }
        var gather = AxisGather(identity: x.shape)
        gather.maps[axis] = selected
        return [try x.gathering(gather)]
    })

    static let nonZero = OpDefinition("NonZero", since: [9, 13], infer: { ctx in
        let rank = try ctx.requiredInput(0).shape.rank
        return [TensorType(.i64, Shape([rank.map { .known(max($0, 1)) } ?? .unknown, .unknown]))]
    }, evaluate: { ctx in
        let x = try ctx.requiredInput(0)
        guard x.dtype != .string else { throw ctx.unsupported("NonZero of strings") }
        // A scalar counts as a one-element vector (NumPy's behaviour).
        let shape = x.rank == 0 ? [1] : x.shape
        let values = x.doubles
        var coords: [[Int64]] = Array(repeating: [], count: shape.count)
        MovementIndexing.forEachCoordinate(shape) { c, flat in
            guard values[flat] != 0 else { return }
            for d in 0 ..< c.count { coords[d].append(Int64(c[d])) }
        }
        let nnz = coords.first?.count ?? 0
        return [Tensor(Array(coords.joined()), shape: [shape.count, nnz])]
    })

    // MARK: Unique

    /// A totally ordered view of one element, so every dtype sorts by value (f16 bits would not).
    private enum UniqueKey: Comparable {
        case int(Int64), uint(UInt64), real(Double), text(String)
    }

    private static func uniqueKeys(_ x: Tensor) -> [UniqueKey] {
        switch x.storage {
        case .u64(let a): return a.map { .uint($0) }
        case .string(let a): return a.map { .text($0) }
        default: return x.dtype.isFloatingPoint ? x.doubles.map { .real($0) } : x.int64s.map { .int($0) }
        }
    }

    static let unique = OpDefinition("Unique", since: [11, 28], infer: { ctx in
        let x = try ctx.requiredInput(0)
        var types = [TensorType]()
        var inverseLength = Dim.unknown
        if let axis = try ctx.int("axis") {
            guard var dims = x.shape.dims else { return [TensorType(x.dtype, .unranked)] + Array(repeating: TensorType(.i64, Shape([.unknown])), count: ctx.outputCount - 1) }
            let a = try ctx.normalizedAxis(axis, rank: dims.count)
            inverseLength = dims[a]
            dims[a] = .unknown
            types.append(TensorType(x.dtype, Shape(dims)))
        } else {
            inverseLength = x.shape.dims.map { Dim.product($0) } ?? .unknown
            types.append(TensorType(x.dtype, Shape([.unknown])))
        }
        let extras = [TensorType(.i64, Shape([.unknown])), TensorType(.i64, Shape([inverseLength])), TensorType(.i64, Shape([.unknown]))]
        return Array((types + extras).prefix(ctx.outputCount))
    }, evaluate: { ctx in
        var x = try ctx.requiredInput(0)
        var axis = 0
        if let a = try ctx.int("axis") {
            axis = try ctx.normalizedAxis(a, rank: x.rank)
        } else {
            x = x.reshaped([x.count])
        }
        // The sub-tensors along `axis`, each as the flat indices of its elements and their keys.
        let sliceCount = x.shape[axis]
        let slices: [[Int]] = (0 ..< sliceCount).map { j in
            var gather = AxisGather(identity: x.shape)
            gather.maps[axis] = [j]
            return gather.indices
        }
        let elementKeys = uniqueKeys(x)
        let keys = slices.map { $0.map { elementKeys[$0] } }
        // Sort slice numbers by content, ties by position, then group equal neighbours.
        let order = (0 ..< sliceCount).sorted { a, b in
            keys[a] == keys[b] ? a < b : keys[a].lexicographicallyPrecedes(keys[b])
        }
        var groups: [(first: Int, members: [Int])] = []
        for j in order {
            if let last = groups.last, keys[last.first] == keys[j] {
                groups[groups.count - 1].members.append(j)
            } else {
                groups.append((j, [j]))
            }
        }
        if try ctx.int("sorted", default: 1) == 0 { groups.sort { $0.first < $1.first } }
        var inverse = [Int64](repeating: 0, count: sliceCount)
        for (g, group) in groups.enumerated() { for j in group.members { inverse[j] = Int64(g) } }

        var gather = AxisGather(identity: x.shape)
        gather.maps[axis] = groups.map(\.first)
        let y = try x.gathering(gather)
        let outputs = [
            y,
            Tensor(groups.map { Int64($0.first) }, shape: [groups.count]),
            Tensor(inverse, shape: [sliceCount]),
            Tensor(groups.map { Int64($0.members.count) }, shape: [groups.count]),
        ]
        return Array(outputs.prefix(ctx.outputCount))
    })
}
