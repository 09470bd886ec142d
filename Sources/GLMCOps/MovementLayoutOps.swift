import GLMCIR

/// Ops that change a tensor's shape or rearrange its elements: Reshape, Flatten, Squeeze, Unsqueeze,
/// Transpose, Expand, Tile, Concat, Split, Slice, Pad, DepthToSpace, SpaceToDepth, ReverseSequence,
/// CenterCropPad, Col2Im.
enum MovementLayoutOps {
    static let all: [OpDefinition] = [
        reshape, flatten, squeeze, unsqueeze, transpose, expand, tile, concat, split, slice, pad,
        depthToSpace, spaceToDepth, reverseSequence, centerCropPad, col2Im,
    ]

    // MARK: Reshape, Flatten

    /// Reshape's allowzero (opset 14): a 0 in the target is a real 0 rather than "copy the input dim".
    private static func allowsZero(_ ctx: some NodeContext) throws -> Bool {
        guard ctx.opset >= 14 else { return false }
        return try ctx.int("allowzero", default: 0) != 0
    }

    /// Reshape's target with 0 (copy the input dim, unless allowzero) and -1 (infer) resolved.
    private static func reshapeTarget(_ ctx: some NodeContext, input: [Int], target: [Int]) throws -> [Int] {
        let allowZero = try allowsZero(ctx)
        var out = target
        var inferred: Int?
        for (i, t) in target.enumerated() {
            if t == -1 {
                guard inferred == nil else { throw ctx.error("shape \(target) has more than one -1") }
                inferred = i
            } else if t == 0 && !allowZero {
                guard i < input.count else { throw ctx.error("shape \(target) copies dim \(i) of a rank-\(input.count) input") }
                out[i] = input[i]
            } else if t < 0 {
                throw ctx.error("invalid dim \(t) in shape \(target)")
            }
        }
        let total = try ctx.checkedCount(input)
        if let k = inferred {
            out[k] = 1
            guard let rest = checkedElementCount(out), rest != 0, total % rest == 0 else {
                throw ctx.error("cannot reshape \(input) to \(target)")
            }
            out[k] = total / rest
        }
        guard checkedElementCount(out) == total else { throw ctx.error("cannot reshape \(input) to \(target)") }
        return out
    }

    /// The -1 dim of a symbolic reshape: what is left of the input after cancelling the other output
    /// dims (equal symbols cancel, known sizes divide), when that is a known size or a single symbol.
    private static func inferredDim(input: [Dim], others: [Dim]) -> Dim {
        var symbols: [String] = []
        var inKnown = 1, outKnown = 1
        for d in input {
            switch d {
            case .known(let v):
                guard let p = checkedProduct(inKnown, v) else { return .unknown }
                inKnown = p
            case .symbol(let s): symbols.append(s)
            case .unknown: return .unknown
            }
        }
        for d in others {
            switch d {
            case .known(let v):
                guard let p = checkedProduct(outKnown, v) else { return .unknown }
                outKnown = p
            case .symbol(let s):
                guard let i = symbols.firstIndex(of: s) else { return .unknown }
                symbols.remove(at: i)
            case .unknown: return .unknown
            }
        }
        if symbols.isEmpty, outKnown != 0, inKnown % outKnown == 0 { return .known(inKnown / outKnown) }
        if symbols.count == 1, inKnown == outKnown, inKnown != 0 { return .symbol(symbols[0]) }
        return .unknown
    }

    private static func reshapeTargetOperand(_ ctx: InferenceContext) throws -> IntsOperand {
        if ctx.opset < 5 { return (try ctx.ints("shape")).map(IntsOperand.known) ?? .absent }
        return ctx.intsOperand(1)
    }

    static let reshape = OpDefinition("Reshape", since: [1, 5, 13, 14, 19, 21, 23, 24, 25], infer: { ctx in
        let x = try ctx.requiredInput(0)
        switch try reshapeTargetOperand(ctx) {
        case .known(let target):
            // Inconsistent static shapes are left to evaluation: they may sit in a branch never taken.
            if let sizes = x.shape.staticSizes, let out = try? reshapeTarget(ctx, input: sizes, target: target) {
                return [TensorType(x.dtype, static: out)]
            }
            let allowZero = try allowsZero(ctx)
            var dims: [Dim] = target.enumerated().map { i, t in
                if t == 0 && !allowZero { return x.shape.dims.flatMap { i < $0.count ? $0[i] : nil } ?? .unknown }
                return t < 0 ? .unknown : .known(t)
            }
            if let k = target.firstIndex(of: -1), let input = x.shape.dims {
                dims[k] = inferredDim(input: input, others: dims.enumerated().filter { $0.offset != k }.map(\.element))
            }
            return [TensorType(x.dtype, Shape(dims))]
        case .absent:
            throw ctx.error("Reshape needs a target shape")
        case .unknown:
            let length = try ctx.requiredInput(1).shape.dims?.first?.value
            return [TensorType(x.dtype, Shape(length.map { [Dim](repeating: .unknown, count: $0) }))]
        }
    }, evaluate: { ctx in
        let x = try ctx.requiredInput(0)
        let target = ctx.opset < 5 ? try ctx.ints("shape") : ctx.intsInput(1)
        guard let target else { throw ctx.error("Reshape needs a target shape") }
        return [x.reshaped(try reshapeTarget(ctx, input: x.shape, target: target))]
    })

    private static func flattenAxis(_ ctx: some NodeContext, rank: Int) throws -> Int {
        let axis = try ctx.int("axis", default: 1)
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0 && a <= rank else { throw ctx.error("axis \(axis) is out of range for rank \(rank)") }
        return a
    }

    static let flatten = OpDefinition("Flatten", since: [1, 9, 11, 13, 21, 23, 24, 25], infer: { ctx in
        let x = try ctx.requiredInput(0)
        guard let dims = x.shape.dims else { return [TensorType(x.dtype, Shape([.unknown, .unknown]))] }
        let a = try flattenAxis(ctx, rank: dims.count)
        return [TensorType(x.dtype, Shape([Dim.product(dims[..<a]), Dim.product(dims[a...])]))]
    }, evaluate: { ctx in
        let x = try ctx.requiredInput(0)
        let a = try flattenAxis(ctx, rank: x.rank)
        return [x.reshaped([x.shape[..<a].reduce(1, *), x.shape[a...].reduce(1, *)])]
    })

    // MARK: Squeeze, Unsqueeze

    /// Axes from the `axes` attribute before opset 13 and from input 1 since.
    private static func axesOperand(_ ctx: InferenceContext) throws -> IntsOperand {
        if ctx.opset < 13 { return (try ctx.ints("axes")).map(IntsOperand.known) ?? .absent }
        return ctx.intsOperand(1)
    }

    private static func axesInput(_ ctx: EvalContext) throws -> [Int]? {
        ctx.opset < 13 ? try ctx.ints("axes") : ctx.intsInput(1)
    }

    /// The dims Squeeze keeps: all but `axes` (which must be 1), or all but the 1s when axes are absent.
    private static func squeezed(_ ctx: some NodeContext, _ dims: [Dim], axes: [Int]?) throws -> [Dim]? {
        guard let axes else {
            if dims.contains(where: { $0.value == nil }) { return nil }
            return dims.filter { $0.value != 1 }
        }
        let drop = Set(try ctx.normalizedAxes(axes, rank: dims.count))
        for a in drop {
            if let v = dims[a].value, v != 1 { throw ctx.error("cannot squeeze axis \(a) of size \(v)") }
        }
        return dims.enumerated().filter { !drop.contains($0.offset) }.map(\.element)
    }

    static let squeeze = OpDefinition("Squeeze", since: [1, 11, 13, 21, 23, 24, 25], infer: { ctx in
        let x = try ctx.requiredInput(0)
        guard let dims = x.shape.dims else { return [TensorType(x.dtype, .unranked)] }
        switch try axesOperand(ctx) {
        case .known(let axes): return [TensorType(x.dtype, Shape(try squeezed(ctx, dims, axes: axes)))]
        case .absent: return [TensorType(x.dtype, Shape(try squeezed(ctx, dims, axes: nil)))]
        case .unknown: return [TensorType(x.dtype, .unranked)]
        }
    }, evaluate: { ctx in
        let x = try ctx.requiredInput(0)
        let dims = try squeezed(ctx, x.shape.map(Dim.known), axes: try axesInput(ctx)) ?? []
        return [x.reshaped(dims.compactMap(\.value))]
    })

    private static func unsqueezed(_ ctx: some NodeContext, _ dims: [Dim], axes: [Int]) throws -> [Dim] {
        let rank = dims.count + axes.count
        let inserted = Set(try ctx.normalizedAxes(axes, rank: rank))
        var rest = dims.makeIterator()
        return (0 ..< rank).map { inserted.contains($0) ? .known(1) : rest.next() ?? .unknown }
    }

    static let unsqueeze = OpDefinition("Unsqueeze", since: [1, 11, 13, 21, 23, 24, 25], infer: { ctx in
        let x = try ctx.requiredInput(0)
        guard let dims = x.shape.dims else { return [TensorType(x.dtype, .unranked)] }
        switch try axesOperand(ctx) {
        case .known(let axes): return [TensorType(x.dtype, Shape(try unsqueezed(ctx, dims, axes: axes)))]
        case .absent: throw ctx.error("Unsqueeze needs axes")
        case .unknown:
            let count = try ctx.requiredInput(1).shape.dims?.first?.value
            return [TensorType(x.dtype, Shape(count.map { [Dim](repeating: .unknown, count: dims.count + $0) }))]
        }
    }, evaluate: { ctx in
        let x = try ctx.requiredInput(0)
        guard let axes = try axesInput(ctx) else { throw ctx.error("Unsqueeze needs axes") }
        return [x.reshaped(try unsqueezed(ctx, x.shape.map(Dim.known), axes: axes).compactMap(\.value))]
    })

    // MARK: Transpose

    private static func permutation(_ ctx: some NodeContext, rank: Int) throws -> [Int] {
        guard let perm = try ctx.ints("perm") else { return Array((0 ..< rank).reversed()) }
        guard perm.count == rank, Set(perm) == Set(0 ..< rank) else {
            throw ctx.error("perm \(perm) is not a permutation of rank \(rank)")
        }
        return perm
    }

    static let transpose = OpDefinition("Transpose", since: [1, 13, 21, 23, 24, 25], infer: { ctx in
        let x = try ctx.requiredInput(0)
        guard let dims = x.shape.dims else {
            let count = try ctx.ints("perm")?.count
            return [TensorType(x.dtype, Shape(count.map { [Dim](repeating: .unknown, count: $0) }))]
        }
        return [TensorType(x.dtype, Shape(try permutation(ctx, rank: dims.count).map { dims[$0] }))]
    }, evaluate: { ctx in
        let x = try ctx.requiredInput(0)
        let perm = try permutation(ctx, rank: x.rank)
        return [try x.gathering(AxisGather(viewShape: x.shape, perm: perm))]
    })

    // MARK: Expand, Tile

    /// Broadcasting a tensor of shape `from` to shape `to` (which `from` broadcasts to).
    static func broadcastGather(from: [Int], to: [Int]) -> AxisGather {
        let offset = to.count - from.count
        let strides = ShapeHelpers.strides(from)
        var maps: [[Int]] = [], mapStrides: [Int] = []
        for (d, n) in to.enumerated() {
            let j = d - offset
            let broadcast = j < 0 || from[j] == 1
            maps.append(broadcast ? [Int](repeating: 0, count: n) : Array(0 ..< n))
            mapStrides.append(j < 0 ? 0 : strides[j])
        }
        return AxisGather(maps: maps, strides: mapStrides)
    }

    static let expand = OpDefinition("Expand", since: [8, 13], infer: { ctx in
        let x = try ctx.requiredInput(0)
        switch ctx.intsOperand(1) {
        case .known(let sizes):
            return [TensorType(x.dtype, try ShapeHelpers.broadcast([x.shape, Shape(static: sizes)], context: ctx))]
        default:
            guard let rank = x.shape.rank, let length = try ctx.requiredInput(1).shape.dims?.first?.value else {
                return [TensorType(x.dtype, .unranked)]
            }
            return [TensorType(x.dtype, Shape([Dim](repeating: .unknown, count: max(rank, length))))]
        }
    }, evaluate: { ctx in
        let x = try ctx.requiredInput(0)
        let sizes = try ctx.requiredInput(1).ints
        guard let shape = ShapeHelpers.broadcast([x.shape, sizes]) else {
            throw ctx.error("cannot expand \(x.shape) to \(sizes)")
        }
        _ = try ctx.checkedCount(shape)
        return [try x.gathering(broadcastGather(from: x.shape, to: shape))]
    })

    static let tile = OpDefinition("Tile", since: [1, 6, 13], infer: { ctx in
        let x = try ctx.requiredInput(0)
        guard let dims = x.shape.dims else { return [TensorType(x.dtype, .unranked)] }
        guard case .known(let repeats) = ctx.intsOperand(1) else {
            return [TensorType(x.dtype, Shape(dims.map { $0.value == 0 ? $0 : .unknown }))]
        }
        guard repeats.count == dims.count else { throw ctx.error("repeats \(repeats) do not match rank \(dims.count)") }
        return [TensorType(x.dtype, Shape(zip(dims, repeats).map { d, r in
            r == 1 ? d : d.value.flatMap { checkedProduct($0, r) }.map(Dim.known) ?? (r == 0 ? .known(0) : .unknown)
        }))]
    }, evaluate: { ctx in
        let x = try ctx.requiredInput(0)
        let repeats = try ctx.requiredInput(1).ints
        guard repeats.count == x.rank, repeats.allSatisfy({ $0 >= 0 }) else {
            throw ctx.error("repeats \(repeats) do not fit shape \(x.shape)")
        }
        let shape = zip(x.shape, repeats).map { checkedProduct($0, $1) ?? -1 }
        _ = try ctx.checkedCount(shape)
        let maps = zip(x.shape, shape).map { n, m in (0 ..< m).map { $0 % n } }
        return [try x.gathering(AxisGather(maps: maps, strides: ShapeHelpers.strides(x.shape)))]
    })

    // MARK: Concat, Split

    static let concat = OpDefinition("Concat", since: [1, 4, 11, 13], infer: { ctx in
        let types = ctx.inputTypes.compactMap { $0 }
        guard let first = types.first else { throw ctx.error("Concat needs inputs") }
        let shapes = types.compactMap(\.shape.dims)
        guard let rank = shapes.first?.count else { return [TensorType(first.dtype, .unranked)] }
        let axis = try ctx.normalizedAxis(try ctx.int("axis", default: ctx.opset < 4 ? 1 : 0), rank: rank)
        for s in shapes where s.count != rank { throw ctx.error("Concat inputs have different ranks") }
        var dims = shapes[0]
        for s in shapes.dropFirst() {
            for d in 0 ..< rank where d != axis {
                if let a = dims[d].value, let b = s[d].value, a != b {
                    throw ctx.error("Concat inputs differ in dim \(d): \(a) and \(b)")
                }
                dims[d] = Shape([dims[d]]).refined(by: Shape([s[d]])).dims?[0] ?? .unknown
            }
        }
        // Along the axis: the sum when all sizes are known, the lone non-empty operand's dim otherwise.
        let along = types.map { $0.shape.dims?[axis] ?? .unknown }
        let knownSizes = along.compactMap(\.value)
        if knownSizes.count == along.count {
            dims[axis] = checkedSum(knownSizes).map(Dim.known) ?? .unknown
        } else {
            let nonEmpty = along.filter { $0.value != 0 }
            dims[axis] = nonEmpty.count == 1 ? nonEmpty[0] : .unknown
        }
        return [TensorType(first.dtype, Shape(dims))]
    }, evaluate: { ctx in
        let parts = ctx.inputs.compactMap { $0 }
        guard let first = parts.first else { throw ctx.error("Concat needs inputs") }
        let rank = first.rank
        let axis = try ctx.normalizedAxis(try ctx.int("axis", default: ctx.opset < 4 ? 1 : 0), rank: rank)
        for p in parts {
            guard p.rank == rank, (0 ..< rank).allSatisfy({ $0 == axis || p.shape[$0] == first.shape[$0] }) else {
                throw ctx.error("cannot concatenate \(first.shape) and \(p.shape) along axis \(axis)")
            }
        }
        var shape = first.shape
        shape[axis] = parts.reduce(0) { $0 + $1.shape[axis] }
        _ = try ctx.checkedCount(shape)
        let outer = first.shape[..<axis].reduce(1, *)
        let inner = first.shape[(axis + 1)...].reduce(1, *)
        let chunks = ConcatenateChunks(outer: outer, chunks: parts.map { $0.shape[axis] * inner })
        return [Tensor(shape: shape, storage: try .rearranging(parts.map(\.storage), with: chunks))]
    })

    /// Split's part sizes along an axis of size `dim` (nil when symbolic), or nil when they depend on it.
    private static func splitSizes(_ ctx: some NodeContext, explicit: [Int]?, dim: Int?) throws -> [Int]? {
        if let explicit {
            guard explicit.count == ctx.outputCount, explicit.allSatisfy({ $0 >= 0 }) else {
                throw ctx.error("split \(explicit) does not give \(ctx.outputCount) non-negative sizes")
            }
            if let dim, checkedSum(explicit) != dim { throw ctx.error("split \(explicit) does not sum to \(dim)") }
            return explicit
        }
        let n = ctx.opset >= 18 ? try ctx.int("num_outputs") ?? ctx.outputCount : ctx.outputCount
        guard n == ctx.outputCount, n > 0 else { throw ctx.error("num_outputs \(n) differs from the \(ctx.outputCount) results") }
        guard let dim else { return nil }
        if dim % n == 0 { return [Int](repeating: dim / n, count: n) }
        // Opset 18: chunks of ceil(dim / n), the last one smaller.
        let chunk = (dim + n - 1) / n
        guard ctx.opset >= 18, chunk * (n - 1) < dim else { throw ctx.error("cannot split \(dim) into \(n) equal parts") }
        return [Int](repeating: chunk, count: n - 1) + [dim - chunk * (n - 1)]
    }

    static let split = OpDefinition("Split", since: [1, 2, 11, 13, 18], infer: { ctx in
        let x = try ctx.requiredInput(0)
        guard var dims = x.shape.dims else { return [TensorType](repeating: TensorType(x.dtype, .unranked), count: ctx.outputCount) }
        let axis = try ctx.normalizedAxis(try ctx.int("axis", default: 0), rank: dims.count)
        let explicit: IntsOperand = ctx.opset >= 13 || (ctx.opset < 2 && ctx.inputType(1) != nil)
            ? ctx.intsOperand(1) : (try ctx.ints("split")).map(IntsOperand.known) ?? .absent
        // Sizes that do not fit are left to evaluation (unknown here): they may sit in a branch never taken.
        var sizes: [Int]?
        switch explicit {
        case .known(let s): sizes = try? splitSizes(ctx, explicit: s, dim: dims[axis].value)
        case .absent: sizes = try? splitSizes(ctx, explicit: nil, dim: dims[axis].value)
        case .unknown: sizes = nil
        }
        return (0 ..< ctx.outputCount).map { i in
            dims[axis] = sizes.map { .known($0[i]) } ?? .unknown
            return TensorType(x.dtype, Shape(dims))
        }
    }, evaluate: { ctx in
        let x = try ctx.requiredInput(0)
        let axis = try ctx.normalizedAxis(try ctx.int("axis", default: 0), rank: x.rank)
        let explicit = ctx.opset >= 13 || (ctx.opset < 2 && ctx.input(1) != nil) ? ctx.intsInput(1) : try ctx.ints("split")
        guard let sizes = try splitSizes(ctx, explicit: explicit, dim: x.shape[axis]) else { throw ctx.error("no split sizes") }
        var start = 0
        return try sizes.map { n in
            defer { start += n }
            return try sliced(x, axis: axis, range: start ..< start + n)
        }
    })

    /// `x` restricted to `range` along `axis`.
    private static func sliced(_ x: Tensor, axis: Int, range: Range<Int>) throws -> Tensor {
        var gather = AxisGather(identity: x.shape)
        gather.maps[axis] = Array(range)
        return try x.gathering(gather)
    }

    // MARK: Slice

    /// Slice's bounds for one axis of size `dim`, clamped as the spec says: the first index and count.
    private static func sliceBounds(start: Int, end: Int, step: Int, dim: Int) -> (first: Int, count: Int) {
        var s = start < 0 ? start + dim : start
        var e = end < 0 ? end + dim : end
        if step > 0 {
            s = min(max(s, 0), dim)
            e = min(max(e, 0), dim)
            return (s, e > s ? (e - s - 1) / step + 1 : 0)
        }
        s = min(max(s, 0), dim - 1)
        e = min(max(e, -1), dim - 1)
        // `step.magnitude`: -Int.min does not fit in Int.
        return (s, s > e ? Int(UInt(s - e - 1) / step.magnitude) + 1 : 0)
    }

    /// Slice's parameters per sliced axis (normalized axis, start, end, step), validated.
    private static func sliceParameters(_ ctx: some NodeContext, rank: Int, starts: [Int], ends: [Int],
                                        axes: [Int]?, steps: [Int]?) throws -> [(axis: Int, start: Int, end: Int, step: Int)] {
        let axes = try ctx.normalizedAxes(axes ?? Array(0 ..< starts.count), rank: rank)
        let steps = steps ?? [Int](repeating: 1, count: starts.count)
        guard ends.count == starts.count, axes.count == starts.count, steps.count == starts.count else {
            throw ctx.error("starts, ends, axes and steps have different lengths")
        }
        guard !steps.contains(0) else { throw ctx.error("Slice step must not be 0") }
        return (0 ..< starts.count).map { (axes[$0], starts[$0], ends[$0], steps[$0]) }
    }

    /// Slice's starts/ends/axes/steps from attributes before opset 10 and inputs 1–4 since.
    private static func sliceOperands(_ ctx: InferenceContext) throws -> [IntsOperand] {
        if ctx.opset < 10 {
            return try ["starts", "ends", "axes"].map { (try ctx.ints($0)).map(IntsOperand.known) ?? .absent } + [.absent]
        }
        return (1 ... 4).map { ctx.intsOperand($0) }
    }

    static let slice = OpDefinition("Slice", since: [1, 10, 11, 13], infer: { ctx in
        let x = try ctx.requiredInput(0)
        guard var dims = x.shape.dims else { return [TensorType(x.dtype, .unranked)] }
        let ops = try sliceOperands(ctx)
        func list(_ o: IntsOperand) -> [Int]?? {
            switch o { case .known(let v): return .some(v); case .absent: return .some(nil); case .unknown: return nil }
        }
        guard case .known(let starts) = ops[0], case .known(let ends) = ops[1],
              let axes = list(ops[2]), let steps = list(ops[3]) else {
            // Bounds known only at run time: the sliced axes (all, if they are unknown too) lose their sizes.
            if case .known(let axes) = ops[2] {
                for a in try ctx.normalizedAxes(axes, rank: dims.count) { dims[a] = .unknown }
                return [TensorType(x.dtype, Shape(dims))]
            }
            return [TensorType(x.dtype, Shape(dims.map { _ in .unknown }))]
        }
        for p in try sliceParameters(ctx, rank: dims.count, starts: starts, ends: ends, axes: axes, steps: steps) {
            if let dim = dims[p.axis].value {
                dims[p.axis] = .known(sliceBounds(start: p.start, end: p.end, step: p.step, dim: dim).count)
            } else if !(p.start == 0 && p.step == 1 && p.end >= Int(Int32.max)) {
                dims[p.axis] = .unknown // a whole-axis slice keeps a symbolic size; anything else is unknown
            }
        }
        return [TensorType(x.dtype, Shape(dims))]
    }, evaluate: { ctx in
        let x = try ctx.requiredInput(0)
        let starts: [Int]?, ends: [Int]?, axes: [Int]?, steps: [Int]?
        if ctx.opset < 10 {
            (starts, ends, axes, steps) = (try ctx.ints("starts"), try ctx.ints("ends"), try ctx.ints("axes"), nil)
        } else {
            (starts, ends, axes, steps) = (ctx.intsInput(1), ctx.intsInput(2), ctx.intsInput(3), ctx.intsInput(4))
        }
        guard let starts, let ends else { throw ctx.error("Slice needs starts and ends") }
        var gather = AxisGather(identity: x.shape)
        for p in try sliceParameters(ctx, rank: x.rank, starts: starts, ends: ends, axes: axes, steps: steps) {
            let (first, count) = sliceBounds(start: p.start, end: p.end, step: p.step, dim: x.shape[p.axis])
            gather.maps[p.axis] = (0 ..< count).map { first + $0 * p.step }
        }
        return [try x.gathering(gather)]
    })

    // MARK: Pad

    /// Pad's per-axis (before, after) amounts over the full rank, from pads laid out
    /// [x1_begin, x2_begin, ..., x1_end, x2_end, ...] over `axes` (all axes when nil).
    private static func padAmounts(_ ctx: some NodeContext, rank: Int, pads: [Int], axes: [Int]?) throws -> [(Int, Int)] {
        let axes = try ctx.normalizedAxes(axes ?? Array(0 ..< rank), rank: rank)
        guard pads.count == 2 * axes.count else {
            throw ctx.error("pads \(pads) must have 2 × \(axes.count) entries")
        }
        var out = [(Int, Int)](repeating: (0, 0), count: rank)
        for (i, a) in axes.enumerated() { out[a] = (pads[i], pads[axes.count + i]) }
        return out
    }

    /// Source coordinates along one axis of size `dim` padded by (before, after) in `mode`; -1 = fill.
    /// Negative amounts crop first; the padding then extends the cropped extent.
    private static func padMap(_ ctx: some NodeContext, dim: Int, before: Int, after: Int, mode: String) throws -> [Int] {
        guard before > Int.min, after > Int.min, let size = checkedSum([dim, before, after]),
              size >= 0, size <= movementElementLimit else {
            throw ctx.error("pads (\(before), \(after)) do not fit a dim of \(dim)")
        }
        let lo = max(0, -before), hi = dim - max(0, -after)
        let m = hi - lo
        guard m >= 0 else { throw ctx.error("pads (\(before), \(after)) crop more than the dim \(dim)") }
        guard m > 0 || mode == "constant" || size == 0 else { throw ctx.error("cannot \(mode)-pad an empty axis") }
        return try (0 ..< size).map { o in
            let p = o - max(0, before)
            if p >= 0 && p < m { return lo + p }
            switch mode {
            case "constant": return -1
            case "edge": return lo + min(max(p, 0), m - 1)
            case "wrap": return lo + ((p % m) + m) % m
            case "reflect":
                guard m > 1 else { return lo }
                let period = 2 * (m - 1)
                let q = ((p % period) + period) % period
                return lo + (q < m ? q : period - q)
            default: throw ctx.unsupported("Pad mode '\(mode)'")
            }
        }
    }

    static let pad = OpDefinition("Pad", since: [1, 2, 11, 13, 18, 19, 21, 23, 24, 25], infer: { ctx in
        let x = try ctx.requiredInput(0)
        guard var dims = x.shape.dims else { return [TensorType(x.dtype, .unranked)] }
        let pads: IntsOperand = ctx.opset < 11 ? (try ctx.ints(ctx.opset < 2 ? "paddings" : "pads")).map(IntsOperand.known) ?? .absent
                                              : ctx.intsOperand(1)
        let axes: IntsOperand = ctx.opset >= 18 ? ctx.intsOperand(3) : .absent
        guard case .known(let p) = pads else { return [TensorType(x.dtype, Shape(dims.map { _ in .unknown }))] }
        var axisList: [Int]?
        switch axes {
        case .known(let a): axisList = a
        case .absent: axisList = nil
        case .unknown: return [TensorType(x.dtype, Shape(dims.map { _ in .unknown }))]
        }
        for (d, (b, e)) in try padAmounts(ctx, rank: dims.count, pads: p, axes: axisList).enumerated() where b != 0 || e != 0 {
            dims[d] = dims[d].value.flatMap { checkedSum([$0, b, e]) }.map(Dim.known) ?? .unknown
        }
        return [TensorType(x.dtype, Shape(dims))]
    }, evaluate: { ctx in
        let x = try ctx.requiredInput(0)
        let mode = try ctx.string("mode", default: "constant")
        let pads: [Int]?, axes: [Int]?
        var fill = x.zeroScalar
        if ctx.opset < 11 {
            pads = try ctx.ints(ctx.opset < 2 ? "paddings" : "pads")
            axes = nil
            fill = Tensor(doubles: [Double(try ctx.float("value", default: 0))], dtype: x.dtype, shape: [])
        } else {
            pads = ctx.intsInput(1)
            axes = ctx.opset >= 18 ? ctx.intsInput(3) : nil
            if let c = ctx.input(2), c.count > 0 {
                fill = c.dtype == x.dtype ? c : Tensor(doubles: c.doubles, dtype: x.dtype, shape: c.shape)
            }
        }
        guard let pads else { throw ctx.error("Pad needs pads") }
        let amounts = try padAmounts(ctx, rank: x.rank, pads: pads, axes: axes)
        let maps = try zip(x.shape, amounts).map { try padMap(ctx, dim: $0, before: $1.0, after: $1.1, mode: mode) }
        let gather = AxisGather(maps: maps, strides: ShapeHelpers.strides(x.shape))
        _ = try ctx.checkedCount(gather.shape)
        return [try x.gathering(gather, fill: fill)]
    })

    // MARK: DepthToSpace, SpaceToDepth

    private static func blockOperands(_ ctx: some NodeContext, _ x: Tensor) throws -> (b: Int, mode: String) {
        guard x.rank == 4 else { throw ctx.error("\(ctx.op) needs a 4-D input, got \(x.shape)") }
        guard let b = try ctx.int("blocksize"), b > 0, b <= 1 << 16 else { throw ctx.error("blocksize must be in 1...65536") }
        let mode = try ctx.string("mode", default: "DCR")
        guard mode == "DCR" || mode == "CRD" else { throw ctx.unsupported("mode '\(mode)'") }
        return (b, mode)
    }

    /// The output dims of DepthToSpace (`toSpace`) or SpaceToDepth; symbolic dims become unknown.
    private static func blockDims(_ ctx: InferenceContext, toSpace: Bool) throws -> [TensorType] {
        let x = try ctx.requiredInput(0)
        guard let dims = x.shape.dims else { return [TensorType(x.dtype, Shape([Dim](repeating: .unknown, count: 4)))] }
        guard dims.count == 4 else { throw ctx.error("\(ctx.op) needs a 4-D input, got \(x.shape)") }
        guard let b = try ctx.int("blocksize"), b > 0, b <= 1 << 16 else { throw ctx.error("blocksize must be in 1...65536") }
        func scale(_ d: Dim, up: Bool) throws -> Dim {
            guard let v = d.value else { return .unknown }
            if up { return checkedProduct(v, toSpace ? b : b * b).map(Dim.known) ?? .unknown }
            let q = toSpace ? b * b : b
            guard v % q == 0 else { throw ctx.error("dim \(v) is not divisible by \(q)") }
            return .known(v / q)
        }
        return [TensorType(x.dtype, Shape([dims[0], try scale(dims[1], up: !toSpace),
                                           try scale(dims[2], up: toSpace), try scale(dims[3], up: toSpace)]))]
    }

    static let depthToSpace = OpDefinition("DepthToSpace", since: [1, 11, 13, 28], infer: { ctx in
        try blockDims(ctx, toSpace: true)
    }, evaluate: { ctx in
        let x = try ctx.requiredInput(0)
        let (b, mode) = try blockOperands(ctx, x)
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        guard c % (b * b) == 0 else { throw ctx.error("channels \(c) are not divisible by blocksize² \(b * b)") }
        let (view, perm) = mode == "DCR"
            ? ([n, b, b, c / (b * b), h, w], [0, 3, 4, 1, 5, 2])
            : ([n, c / (b * b), b, b, h, w], [0, 1, 4, 2, 5, 3])
        return [try x.gathering(AxisGather(viewShape: view, perm: perm), shape: [n, c / (b * b), h * b, w * b])]
    })

    static let spaceToDepth = OpDefinition("SpaceToDepth", since: [1, 13, 28], infer: { ctx in
        try blockDims(ctx, toSpace: false)
    }, evaluate: { ctx in
        let x = try ctx.requiredInput(0)
        let (b, mode) = try blockOperands(ctx, x)
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        guard h % b == 0 && w % b == 0 else { throw ctx.error("spatial dims \(h)×\(w) are not divisible by blocksize \(b)") }
        guard let depth = checkedProduct(c, b * b) else { throw ctx.error("channels \(c) × blocksize² overflow") }
        let view = [n, c, h / b, b, w / b, b]
        let perm = mode == "DCR" ? [0, 3, 5, 1, 2, 4] : [0, 1, 3, 5, 2, 4]
        return [try x.gathering(AxisGather(viewShape: view, perm: perm), shape: [n, depth, h / b, w / b])]
    })

    // MARK: ReverseSequence

    static let reverseSequence = OpDefinition("ReverseSequence", since: [10, 28], infer: { ctx in
        [try ctx.requiredInput(0)]
    }, evaluate: { ctx in
        let x = try ctx.requiredInput(0)
        let lens = try ctx.requiredInput(1).ints
        let batchAxis = try ctx.int("batch_axis", default: 1), timeAxis = try ctx.int("time_axis", default: 0)
        guard x.rank >= 2, [batchAxis, timeAxis].sorted() == [0, 1] else {
            throw ctx.error("batch_axis \(batchAxis) and time_axis \(timeAxis) must be 0 and 1 of a rank >= 2 input")
        }
        let (batch, time) = (x.shape[batchAxis], x.shape[timeAxis])
        guard lens.count == batch, lens.allSatisfy({ $0 >= 0 && $0 <= time }) else {
            throw ctx.error("sequence_lens \(lens) do not fit batch \(batch) and time \(time)")
        }
        let timeStride = ShapeHelpers.strides(x.shape)[timeAxis]
        var indices = [Int](repeating: 0, count: x.count)
        MovementIndexing.forEachCoordinate(x.shape) { c, flat in
            let t = c[timeAxis], len = lens[c[batchAxis]]
            indices[flat] = t < len ? flat + (len - 1 - 2 * t) * timeStride : flat
        }
        return [try x.picking(indices, shape: x.shape)]
    })

    // MARK: CenterCropPad

    /// Per-axis source maps of CenterCropPad: crop centred (extra element dropped at the end) or pad
    /// centred with zeros (extra zero at the end).
    private static func centerCropPadMaps(_ ctx: some NodeContext, shape: [Int], target: [Int]) throws -> [[Int]] {
        let axes = try ctx.normalizedAxes(try ctx.ints("axes") ?? Array(0 ..< shape.count), rank: shape.count)
        guard target.count == axes.count, target.allSatisfy({ $0 >= 0 && $0 <= movementElementLimit }) else {
            throw ctx.error("shape \(target) does not match axes \(axes)")
        }
        var maps = shape.map { Array(0 ..< $0) }
        for (a, size) in zip(axes, target) {
            let dim = shape[a]
            maps[a] = size <= dim ? Array((dim - size) / 2 ..< (dim - size) / 2 + size)
                                  : (0 ..< size).map { o in
                                      let s = o - (size - dim) / 2
                                      return s >= 0 && s < dim ? s : -1
                                  }
        }
        return maps
    }

    static let centerCropPad = OpDefinition("CenterCropPad", since: [18], infer: { ctx in
        let x = try ctx.requiredInput(0)
        guard var dims = x.shape.dims else { return [TensorType(x.dtype, .unranked)] }
        guard case .known(let target) = ctx.intsOperand(1) else {
            return [TensorType(x.dtype, Shape(dims.map { _ in .unknown }))]
        }
        let axes = try ctx.normalizedAxes(try ctx.ints("axes") ?? Array(0 ..< dims.count), rank: dims.count)
        guard target.count == axes.count else { throw ctx.error("shape \(target) does not match axes \(axes)") }
        for (a, size) in zip(axes, target) { dims[a] = .known(size) }
        return [TensorType(x.dtype, Shape(dims))]
    }, evaluate: { ctx in
        let x = try ctx.requiredInput(0)
        let maps = try centerCropPadMaps(ctx, shape: x.shape, target: try ctx.requiredInput(1).ints)
        let gather = AxisGather(maps: maps, strides: ShapeHelpers.strides(x.shape))
        _ = try ctx.checkedCount(gather.shape)
        return [try x.gathering(gather, fill: x.zeroScalar)]
    })

    // MARK: Col2Im

    static let col2Im = OpDefinition("Col2Im", since: [18], infer: { ctx in
        let x = try ctx.requiredInput(0)
        guard case .known(let image) = ctx.intsOperand(1), case .known(let block) = ctx.intsOperand(2),
              let dims = x.shape.dims, dims.count == 3 else {
            let n = ctx.inputType(1)?.shape.dims?.first?.value
            return [TensorType(x.dtype, Shape(n.map { [Dim](repeating: .unknown, count: $0 + 2) }))]
        }
        let blockSize = checkedElementCount(block) ?? 0
        let channels: Dim = dims[1].value.map { blockSize > 0 ? .known($0 / blockSize) : .unknown } ?? .unknown
        return [TensorType(x.dtype, Shape([dims[0], channels] + image.map(Dim.known)))]
    }, evaluate: { ctx in
        let x = try ctx.requiredInput(0)
        let image = try ctx.requiredInput(1).ints, block = try ctx.requiredInput(2).ints
        let nd = image.count
        let dilations = try ctx.ints("dilations") ?? [Int](repeating: 1, count: nd)
        let pads = try ctx.ints("pads") ?? [Int](repeating: 0, count: 2 * nd)
        let strides = try ctx.ints("strides") ?? [Int](repeating: 1, count: nd)
        guard x.rank == 3, block.count == nd, dilations.count == nd, strides.count == nd, pads.count == 2 * nd,
              image.allSatisfy({ $0 > 0 }), block.allSatisfy({ $0 > 0 }), dilations.allSatisfy({ $0 > 0 }),
              strides.allSatisfy({ $0 > 0 }), (image + block + dilations + strides + pads).allSatisfy({ $0 >= 0 && $0 < 1 << 31 }) else {
            throw ctx.error("inconsistent Col2Im shapes or attributes")
        }
        guard let blockSize = checkedElementCount(block) else { throw ctx.error("block_shape \(block) is too large") }
        let (n, cb, l) = (x.shape[0], x.shape[1], x.shape[2])
        // Sliding-block grid per spatial dim; its product must be the column count L.
        let grid: [Int] = (0 ..< nd).map { d -> Int in
            let extent: Int = image[d] + pads[d] + pads[nd + d]
            let span: Int = dilations[d] * (block[d] - 1) + 1
            return extent < span ? 0 : (extent - span) / strides[d] + 1
        }
        guard cb % blockSize == 0, grid.allSatisfy({ $0 > 0 }), checkedElementCount(grid) == l else {
            throw ctx.error("input \(x.shape) does not match image \(image) and block \(block)")
        }
        let c = cb / blockSize
        let shape = [n, c] + image
        var out = [Double](repeating: 0, count: try ctx.checkedCount(shape))
        let imageSize = image.reduce(1, *)
        let input = x.doubles
        let imageStrides = ShapeHelpers.strides(image)
        // Column (n, c·block + k, position) adds into pixel position·stride − pad + k·dilation.
        for batch in 0 ..< n {
            for ch in 0 ..< c {
                try MovementIndexing.forEachCoordinate(block) { k, kFlat in
                    try MovementIndexing.forEachCoordinate(grid) { g, gFlat in
                        var pixel = 0
                        for d in 0 ..< nd {
                            let p = g[d] * strides[d] - pads[d] + k[d] * dilations[d]
                            guard p >= 0 && p < image[d] else { return }
                            pixel += p * imageStrides[d]
                        }
                        let src = ((batch * c + ch) * blockSize + kFlat) * l + gFlat
                        guard src < input.count else { throw ctx.error("Col2Im input is too small") }
                        out[(batch * c + ch) * imageSize + pixel] += input[src]
                    }
                }
            }
        }
        return [Tensor(doubles: out, dtype: x.dtype, shape: shape)]
    })
}
