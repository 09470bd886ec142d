import GLMCIR

/// Ops that produce tensors from attributes, shapes or scalars, or pass them through:
/// Constant, Identity, Dropout, Shape, Size, ConstantOfShape, EyeLike, Range, OneHot, Trilu.
enum MovementSourceOps {
    static let all: [OpDefinition] = [
        constant, identity, dropout, shape, size, constantOfShape, eyeLike, range, oneHot, trilu,
    ]

    // MARK: Constant

    /// The value of a Constant node from whichever `value*` attribute it carries. `value` tensors keep
    /// their IR form for inference (so elided weights still have a type).
    private static func constantValue(_ ctx: some NodeContext) throws -> Tensor {
        if let t = try ctx.tensor("value") { return try Tensor(t) }
        if let v = try ctx.float("value_float") { return Tensor([v], shape: []) }
        if let v = try ctx.floats("value_floats") { return Tensor(v, shape: [v.count]) }
        if let v = try ctx.int("value_int") { return Tensor([Int64(v)], shape: []) }
        if let v = try ctx.ints("value_ints") { return Tensor(v.map(Int64.init), shape: [v.count]) }
        if let v = try ctx.string("value_string") { return Tensor(shape: [], storage: .string([v])) }
        if let v = try ctx.strings("value_strings") { return Tensor(shape: [v.count], storage: .string(v)) }
        if ctx.has("sparse_value") { throw ctx.unsupported("sparse_value of Constant") }
        throw ctx.error("Constant has no value attribute")
    }

    static let constant = OpDefinition("Constant", since: [1, 9, 11, 12, 13, 19, 21, 23, 24, 25], infer: { ctx in
        if let t = try ctx.tensor("value") { return [t.type] }
        return [try constantValue(ctx).type]
    }, evaluate: { ctx in [try constantValue(ctx)] })

    // MARK: Identity, Dropout

    static let identity = OpDefinition("Identity", since: [1, 13, 14, 16, 19, 21, 23, 24, 25], infer: { ctx in
        [try ctx.requiredInput(0)]
    }, evaluate: { ctx in [try ctx.requiredInput(0)] })

    /// Inference mode is a copy (with an all-true mask). Training mode draws the keep-mask like the ONNX
    /// reference, `RandomState(seed).uniform(0, 1, shape) >= ratio`, so seeded results match it exactly.
    static let dropout = OpDefinition("Dropout", since: [1, 6, 7, 10, 12, 13, 22], infer: { ctx in
        let x = try ctx.requiredInput(0)
        var out = [x]
        // The mask is bool from opset 10; before it had the data's type.
        if ctx.outputCount > 1 { out.append(TensorType(ctx.opset >= 10 ? .bool : x.dtype, x.shape)) }
        return out
    }, evaluate: { ctx in
        let x = try ctx.requiredInput(0)
        let ratio: Double
        let training: Bool
        if ctx.opset >= 12 {
            ratio = ctx.input(1)?.doubles.first ?? 0.5
            training = ctx.input(2)?.doubles.first.map { $0 != 0 } ?? false
        } else {
            ratio = Double(try ctx.float("ratio", default: 0.5))
            // Before opset 7, `is_test = 0` asked for training behaviour.
            training = try ctx.opset < 7 && ctx.int("is_test", default: 0) == 0
        }
        guard ratio >= 0 && ratio < 1 || !training else { throw ctx.error("dropout ratio \(ratio) must be in [0, 1)") }
        let maskType: DType = ctx.opset >= 10 ? .bool : x.dtype
        guard training && ratio > 0 else {
            var out = [x]
            if ctx.outputCount > 1 { out.append(Tensor(doubles: [Double](repeating: 1, count: x.count), dtype: maskType, shape: x.shape)) }
            return out
        }
        guard x.dtype.isFloatingPoint else { throw ctx.error("Dropout needs floating-point data, got \(x.dtype)") }
        var rng = NumPyMT19937(seed: UInt32(truncatingIfNeeded: try ctx.int("seed", default: 0)))
        let keep = (0 ..< x.count).map { _ in rng.nextDouble() >= ratio }
        let scale = 1 / (1 - ratio)
        let y = zip(x.doubles, keep).map { v, k in k ? v * scale : 0 }
        var out = [Tensor(doubles: y, dtype: x.dtype, shape: x.shape)]
        if ctx.outputCount > 1 { out.append(Tensor(doubles: keep.map { $0 ? 1 : 0 }, dtype: maskType, shape: x.shape)) }
        return out
    })

    // MARK: Shape, Size

    /// The [start, end) range of dimensions Shape reports (opset 15 added start/end, clamped to the rank).
    private static func shapeRange(_ ctx: some NodeContext, rank: Int) throws -> Range<Int> {
        guard ctx.opset >= 15 else { return 0 ..< rank }
        func clamp(_ v: Int) -> Int { min(max(v < 0 ? v + rank : v, 0), rank) }
        let start = clamp(try ctx.int("start", default: 0))
        let end = clamp(try ctx.int("end") ?? rank)
        return start ..< max(start, end)
    }

    static let shape = OpDefinition("Shape", since: [1, 13, 15, 19, 21, 23, 24, 25], infer: { ctx in
        guard let rank = try ctx.requiredInput(0).shape.rank else { return [TensorType(.i64, Shape([.unknown]))] }
        return [TensorType(.i64, static: [try shapeRange(ctx, rank: rank).count])]
    }, evaluate: { ctx in
        let x = try ctx.requiredInput(0)
        let dims = x.shape[try shapeRange(ctx, rank: x.rank)]
        return [Tensor(dims.map { Int64($0) }, shape: [dims.count])]
    })

    static let size = OpDefinition("Size", since: [1, 13, 19, 21, 23, 24, 25], infer: { _ in
        [TensorType(.i64, .scalar)]
    }, evaluate: { ctx in [Tensor([Int64(try ctx.requiredInput(0).count)], shape: [])] })

    // MARK: ConstantOfShape, EyeLike

    /// ConstantOfShape's fill value: the one-element `value` attribute, or f32 zero.
    private static func fillValue(_ ctx: some NodeContext) throws -> Tensor {
        guard let t = try ctx.tensor("value") else { return Tensor([Float(0)], shape: [1]) }
        let v = try Tensor(t)
        guard v.count == 1 else { throw ctx.error("'value' must hold exactly one element, got \(v.count)") }
        return v
    }

    static let constantOfShape = OpDefinition("ConstantOfShape", since: [9, 20, 21, 23, 24, 25], infer: { ctx in
        let dtype = try ctx.tensor("value")?.dtype ?? .f32
        switch ctx.intsOperand(0) {
        case .known(let sizes): return [TensorType(dtype, static: sizes)]
        default:
            let length = try ctx.requiredInput(0).shape.dims?.first?.value
            return [TensorType(dtype, Shape(length.map { [Dim](repeating: .unknown, count: $0) }))]
        }
    }, evaluate: { ctx in
        let sizes = try ctx.requiredInput(0).ints
        let n = try ctx.checkedCount(sizes)
        return [try fillValue(ctx).picking([Int](repeating: 0, count: n), shape: sizes)]
    })

    private static func eyeLikeType(_ ctx: some NodeContext, input: DType) throws -> DType {
        guard let code = try ctx.int("dtype") else { return input }
        guard let t = DType(onnxCode: Int32(truncatingIfNeeded: code)) else {
            throw ctx.unsupported("dtype \(DType.onnxName(ofCode: Int32(truncatingIfNeeded: code)))")
        }
        return t
    }

    static let eyeLike = OpDefinition("EyeLike", since: [9, 22], infer: { ctx in
        let x = try ctx.requiredInput(0)
        if let r = x.shape.rank, r != 2 { throw ctx.error("EyeLike needs a 2-D input, got \(x.shape)") }
        return [TensorType(try eyeLikeType(ctx, input: x.dtype), x.shape.rank == nil ? Shape([.unknown, .unknown]) : x.shape)]
    }, evaluate: { ctx in
        let x = try ctx.requiredInput(0)
        guard x.rank == 2 else { throw ctx.error("EyeLike needs a 2-D input, got \(x.shape)") }
        let k = try ctx.int("k", default: 0)
        let (rows, cols) = (x.shape[0], x.shape[1])
        var values = [Double](repeating: 0, count: rows * cols)
        for i in 0 ..< rows {
            let j = i + k
            if j >= 0 && j < cols { values[i * cols + j] = 1 }
        }
        return [Tensor(doubles: values, dtype: try eyeLikeType(ctx, input: x.dtype), shape: x.shape)]
    })

    // MARK: Range

    /// Range's scalar operands, validated: integers exactly as Int64, floats as Double.
    private enum RangeBounds {
        case integer(start: Int64, delta: Int64, count: Int)
        case real(start: Double, delta: Double, count: Int)
    }

    private static func rangeBounds(_ ctx: some NodeContext, _ start: Tensor, _ limit: Tensor, _ delta: Tensor) throws -> RangeBounds {
        for t in [start, limit, delta] where t.count != 1 {
            throw ctx.error("Range inputs must be scalars, got shape \(t.shape)")
        }
        let dtype = start.dtype
        guard limit.dtype == dtype && delta.dtype == dtype else { throw ctx.error("Range inputs must share one type") }
        if dtype.isInteger {
            let (s, l, d) = (start.int64s[0], limit.int64s[0], delta.int64s[0])
            guard d != 0 else { throw ctx.error("Range delta must not be zero") }
            let (span, overflow) = l.subtractingReportingOverflow(s)
            guard !overflow else { throw ctx.error("Range span overflows") }
            // ceil(span / d), clamped at 0.
            let q = span / d, r = span % d
            let n = max(0, Int(q) + ((r != 0 && (r > 0) == (d > 0)) ? 1 : 0))
            _ = try ctx.checkedCount([n])
            return .integer(start: s, delta: d, count: n)
        }
        guard dtype.isFloatingPoint else { throw ctx.unsupported("Range of \(dtype)") }
        let (s, l, d) = (start.doubles[0], limit.doubles[0], delta.doubles[0])
        guard d != 0 else { throw ctx.error("Range delta must not be zero") }
        let steps = ((l - s) / d).rounded(.up)
        guard steps.isFinite, steps <= Double(movementElementLimit) else { throw ctx.error("Range of \(steps) elements") }
        return .real(start: s, delta: d, count: max(0, Int(steps)))
    }

    static let range = OpDefinition("Range", since: [11, 27], infer: { ctx in
        let dtype = try ctx.requiredInput(0).dtype
        if let s = ctx.constant(0), let l = ctx.constant(1), let d = ctx.constant(2),
           let bounds = try? rangeBounds(ctx, s, l, d) {
            switch bounds {
            case .integer(_, _, let n), .real(_, _, let n): return [TensorType(dtype, static: [n])]
            }
        }
        return [TensorType(dtype, Shape([.unknown]))]
    }, evaluate: { ctx in
        let start = try ctx.requiredInput(0)
        // Integers are exact; floats go through Double (for f16/bf16 the reference accumulates in f32,
        // whose rounding vanishes in the final conversion).
        switch try rangeBounds(ctx, start, try ctx.requiredInput(1), try ctx.requiredInput(2)) {
        case .integer(let s, let d, let n):
            return [Tensor(int64s: (0 ..< n).map { s &+ Int64($0) &* d }, dtype: start.dtype, shape: [n])]
        case .real(let s, let d, let n):
            return [Tensor(doubles: (0 ..< n).map { s + Double($0) * d }, dtype: start.dtype, shape: [n])]
        }
    })

    // MARK: OneHot

    static let oneHot = OpDefinition("OneHot", since: [9, 11, 28], infer: { ctx in
        let values = try ctx.requiredInput(2)
        guard var dims = try ctx.dims(0) else { return [TensorType(values.dtype, .unranked)] }
        let axis = try ctx.int("axis", default: -1)
        let a = axis < 0 ? axis + dims.count + 1 : axis
        guard a >= 0 && a <= dims.count else { throw ctx.error("axis \(axis) is out of range for rank \(dims.count + 1)") }
        let depth = ctx.constant(1)?.doubles.first.flatMap { Int(exactly: $0.rounded(.towardZero)) }.map(Dim.known) ?? .unknown
        dims.insert(depth, at: a)
        return [TensorType(values.dtype, Shape(dims))]
    }, evaluate: { ctx in
        let indices = try ctx.requiredInput(0), depthT = try ctx.requiredInput(1), values = try ctx.requiredInput(2)
        guard depthT.count == 1, let depthValue = depthT.doubles.first, depthValue >= 1, depthValue < Double(movementElementLimit) else {
            throw ctx.error("depth must be a positive scalar")
        }
        let depth = Int(depthValue)
        guard values.count == 2 else { throw ctx.error("values must hold [off_value, on_value], got \(values.count) elements") }
        let axis = try ctx.int("axis", default: -1)
        let rank = indices.rank + 1
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0 && a < rank else { throw ctx.error("axis \(axis) is out of range for rank \(rank)") }
        var shape = indices.shape
        shape.insert(depth, at: a)
        let n = try ctx.checkedCount(shape)
        // Output element (outer, d, inner) is on when indices[outer, inner] == d (negative indices wrap).
        let outer = indices.shape[..<a].reduce(1, *), inner = indices.shape[a...].reduce(1, *)
        let idx = indices.doubles.map { v -> Int in
            let i = Int(exactly: v.rounded(.towardZero)) ?? -1 - depth
            return i < 0 ? i + depth : i
        }
        var picks = [Int](repeating: 0, count: n)
        for o in 0 ..< outer {
            for i in 0 ..< inner {
                let d = idx[o * inner + i]
                if d >= 0 && d < depth { picks[(o * depth + d) * inner + i] = 1 }
            }
        }
        return [try values.picking(picks, shape: shape)]
    })

    // MARK: Trilu

    static let trilu = OpDefinition("Trilu", since: [14], infer: { ctx in
        let x = try ctx.requiredInput(0)
        if let r = x.shape.rank, r < 2 { throw ctx.error("Trilu needs rank >= 2, got \(x.shape)") }
        return [x]
    }, evaluate: { ctx in
        let x = try ctx.requiredInput(0)
        guard x.rank >= 2 else { throw ctx.error("Trilu needs rank >= 2, got \(x.shape)") }
        let k = ctx.input(1)?.ints.first ?? 0
        let upper = try ctx.int("upper", default: 1) != 0
        let (rows, cols) = (x.shape[x.rank - 2], x.shape[x.rank - 1])
        // Keep element (i, j) when j - i >= k (upper) or j - i <= k (lower); zero the rest.
        let picks = (0 ..< x.count).map { flat -> Int in
            let j = flat % cols, i = (flat / cols) % rows
            return (upper ? j - i >= k : j - i <= k) ? flat : -1
        }
        return [try x.picking(picks, shape: x.shape, fill: x.zeroScalar)]
    })
}

/// NumPy's legacy `RandomState(seed)` generator (MT19937 with `init_genrand` seeding) and its 53-bit
/// `random_sample` doubles, so seeded Dropout reproduces the ONNX reference masks bit for bit.
struct NumPyMT19937 {
    private var state = [UInt32](repeating: 0, count: 624)
    private var position = 624

    init(seed: UInt32) {
        state[0] = seed
        for i in 1 ..< 624 {
            state[i] = 1_812_433_253 &* (state[i - 1] ^ (state[i - 1] >> 30)) &+ UInt32(i)
        }
    }

    private mutating func twist() {
        for i in 0 ..< 624 {
            let y = (state[i] & 0x8000_0000) | (state[(i + 1) % 624] & 0x7FFF_FFFF)
            state[i] = state[(i + 397) % 624] ^ (y >> 1) ^ ((y & 1) != 0 ? 0x9908_B0DF : 0)
        }
        position = 0
    }

    mutating func nextUInt32() -> UInt32 {
        if position >= 624 { twist() }
        var y = state[position]
        position += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C_5680
        y ^= (y << 15) & 0xEFC6_0000
        y ^= y >> 18
        return y
    }

    /// A double in [0, 1) from two draws, as NumPy's `random_sample`.
    mutating func nextDouble() -> Double {
        let a = Double(nextUInt32() >> 5), b = Double(nextUInt32() >> 6)
        return (a * 67_108_864 + b) / 9_007_199_254_740_992
    }
}
