import Foundation
import GLMCIR

/// Reductions and the ops that scan or rank along an axis: Reduce*, ArgMax/ArgMin, Softmax/LogSoftmax/
/// Hardmax, CumSum/CumProd and TopK. Normalizations live in ReductionNormalization.swift, MatMul/Gemm/
/// Einsum/Det in ReductionLinearAlgebra.swift; shared helpers in ReductionSupport.swift.
public enum ReductionOps {
    public static let all: [OpDefinition] =
        reduceOps + [argOp("ArgMax", findMax: true), argOp("ArgMin", findMax: false)]
        + softmaxOps + [cumulativeOp("CumSum", since: [11, 14], product: false),
                        cumulativeOp("CumProd", since: [26], product: true), topK]
        + ReductionNormalization.all + ReductionLinearAlgebra.all + ReductionLosses.all
}

// MARK: - Reduce*

/// What a Reduce* op computes over each group of elements.
enum ReduceKind: Sendable {
    case sum, mean, max, min, prod, l1, l2, logSum, logSumExp, sumSquare
}

extension ReductionOps {
    /// name, schema versions, the opset from which `axes` is an input rather than an attribute, kind.
    private static let reduceTable: [(String, [Int], Int, ReduceKind)] = [
        ("ReduceSum", [1, 11, 13], 13, .sum),
        ("ReduceMean", [1, 11, 13, 18], 18, .mean),
        ("ReduceMax", [1, 11, 12, 13, 18, 20], 18, .max),
        ("ReduceMin", [1, 11, 12, 13, 18, 20], 18, .min),
        ("ReduceProd", [1, 11, 13, 18], 18, .prod),
        ("ReduceL1", [1, 11, 13, 18], 18, .l1),
        ("ReduceL2", [1, 11, 13, 18], 18, .l2),
        ("ReduceLogSum", [1, 11, 13, 18, 28], 18, .logSum),
        ("ReduceLogSumExp", [1, 11, 13, 18, 28], 18, .logSumExp),
        ("ReduceSumSquare", [1, 11, 13, 18], 18, .sumSquare),
    ]

    static let reduceOps: [OpDefinition] = reduceTable.map { name, since, axesInputSince, kind in
        OpDefinition(name, since: since, infer: { ctx in
            let x = try ctx.requiredInput(0)
            try ReductionSupport.requireNumeric(x.dtype, ctx, allowBool: kind == .max || kind == .min)
            let keep = try ctx.int("keepdims", default: 1) != 0
            let axes: [Int]?
            if ctx.opset >= axesInputSince, ctx.inputType(1) != nil {
                guard let c = ctx.constant(1) else {
                    // Unknown axes: with keepdims the rank survives, every size may become 1.
                    let dims = x.shape.dims.map { [Dim](repeating: .unknown, count: $0.count) }
                    return [TensorType(x.dtype, keep ? Shape(dims) : .unranked)]
                }
                axes = try ReductionSupport.integers(c, ctx, what: "axes")
            } else {
                axes = try ctx.ints("axes")
            }
            guard let dims = x.shape.dims else { return [TensorType(x.dtype, .unranked)] }
            guard let reduced = try reducedAxes(axes, rank: dims.count, axesInputSince: axesInputSince, ctx) else {
                return [x]
            }
            var out: [Dim] = []
            for (i, d) in dims.enumerated() {
                if !reduced.contains(i) { out.append(d) } else if keep { out.append(.known(1)) }
            }
            return [TensorType(x.dtype, Shape(out))]
        }, evaluate: { ctx in
            let x = try ctx.requiredInput(0)
            try ReductionSupport.requireNumeric(x.dtype, ctx, allowBool: kind == .max || kind == .min)
            let keep = try ctx.int("keepdims", default: 1) != 0
            let axes: [Int]?
            if ctx.opset >= axesInputSince {
                axes = try ctx.input(1).map { try ReductionSupport.integers($0, ctx, what: "axes") }
            } else {
                axes = try ctx.ints("axes")
            }
            guard let reduced = try reducedAxes(axes, rank: x.rank, axesInputSince: axesInputSince, ctx) else {
                return [x]
            }
            let plan = ReducePlan(shape: x.shape, axes: Set(reduced), keepDims: keep)
            return [reduce(x, plan, kind)]
        })
    }

    /// The axes to reduce, sorted; nil when the node is a no-op (no axes and noop_with_empty_axes).
    private static func reducedAxes(_ axes: [Int]?, rank: Int, axesInputSince: Int,
                                    _ ctx: some NodeContext) throws -> [Int]? {
        if let axes, !axes.isEmpty { return try ReductionSupport.normalizeAxes(axes, rank: rank, ctx).sorted() }
        if ctx.opset >= axesInputSince, try ctx.int("noop_with_empty_axes", default: 0) != 0 { return nil }
        return Array(0..<rank)
    }

    /// Reduces `x` with `kind`. Integer and bool sums, products and extrema are computed exactly in
    /// wrapping Int64 arithmetic; everything else goes through Double.
    static func reduce(_ x: Tensor, _ plan: ReducePlan, _ kind: ReduceKind) -> Tensor {
        if !x.dtype.isFloatingPoint, let intKind = IntegerReduction(kind, x.dtype) {
            return Tensor(int64s: intKind.apply(x, plan), dtype: x.dtype, shape: plan.outShape)
        }
        return Tensor(doubles: reduceDoubles(x.doubles, plan, kind), dtype: x.dtype, shape: plan.outShape)
    }

    static func reduceDoubles(_ x: [Double], _ plan: ReducePlan, _ kind: ReduceKind) -> [Double] {
        let index = plan.outIndex
        switch kind {
        case .max, .min:
            let isMax = kind == .max
            var acc = [Double](repeating: isMax ? -.infinity : .infinity, count: plan.outCount)
            for (i, v) in x.enumerated() {
                let o = index[i], a = acc[o]
                // NaN wins and then sticks (no comparison with NaN is true).
                if v.isNaN || (isMax ? v > a : v < a) { acc[o] = v }
            }
            return acc
        case .logSumExp:
            // Shift by the maximum so exp cannot overflow.
            let m = reduceDoubles(x, plan, .max)
            var s = [Double](repeating: 0, count: plan.outCount)
            for (i, v) in x.enumerated() { let o = index[i]; if m[o].isFinite { s[o] += Foundation.exp(v - m[o]) } }
            return zip(m, s).map { m, s in m.isFinite ? m + Foundation.log(s) : m }
        case .prod:
            var acc = [Double](repeating: 1, count: plan.outCount)
            for (i, v) in x.enumerated() { acc[index[i]] *= v }
            return acc
        case .sum, .mean, .l1, .l2, .logSum, .sumSquare:
            var acc = [Double](repeating: 0, count: plan.outCount)
            switch kind {
            case .l1: for (i, v) in x.enumerated() { acc[index[i]] += abs(v) }
            case .l2, .sumSquare: for (i, v) in x.enumerated() { acc[index[i]] += v * v }
            default: for (i, v) in x.enumerated() { acc[index[i]] += v }
            }
            switch kind {
            case .mean: let n = Double(plan.groupSize); return acc.map { $0 / n }
            case .l2: return acc.map { $0.squareRoot() }
            case .logSum: return acc.map { Foundation.log($0) }
            default: return acc
            }
        }
    }
}

/// How each input element maps onto the reduced output.
struct ReducePlan {
    /// Output shape (reduced axes kept as 1 or dropped, per keepdims).
    let outShape: [Int]
    let outCount: Int
    /// How many input elements fold into each output element.
    let groupSize: Int
    /// For every input element (row-major), the output element it folds into.
    let outIndex: [Int]

    init(shape: [Int], axes: Set<Int>, keepDims: Bool) {
        let kept = shape.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
        let keptStrides = ShapeHelpers.strides(kept)
        let strides = shape.indices.map { axes.contains($0) ? 0 : keptStrides[$0] }
        outShape = keepDims ? kept : shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
        outCount = kept.reduce(1, *)
        groupSize = axes.reduce(1) { $0 * shape[$1] }
        outIndex = ReductionSupport.stridedOffsets(shape: shape, strides: strides)
    }
}

/// The reductions that stay exact on integers (and bool): wrapping Int64 sums/products, extrema with
/// the data type's range as the empty-set identity.
private struct IntegerReduction {
    let kind: ReduceKind
    let dtype: DType

    init?(_ kind: ReduceKind, _ dtype: DType) {
        switch kind {
        case .sum, .prod, .max, .min, .l1, .sumSquare: self.kind = kind; self.dtype = dtype
        default: return nil
        }
    }

    func apply(_ x: Tensor, _ plan: ReducePlan) -> [Int64] {
        let index = plan.outIndex
        switch kind {
        case .max, .min:
            // u64 compares in Int64 with its sign bit flipped; bit patterns are flipped back after.
            let flip: Int64 = dtype == .u64 ? .min : 0
            let values = x.int64s.map { $0 ^ flip }
            let (lo, hi) = range
            var acc = [Int64](repeating: kind == .max ? lo : hi, count: plan.outCount)
            for (i, v) in values.enumerated() {
                let o = index[i]
                if kind == .max ? v > acc[o] : v < acc[o] { acc[o] = v }
            }
            return acc.map { $0 ^ flip }
        case .prod:
            var acc = [Int64](repeating: 1, count: plan.outCount)
            for (i, v) in x.int64s.enumerated() { acc[index[i]] &*= v }
            return acc
        default:
            var acc = [Int64](repeating: 0, count: plan.outCount)
            let unsigned = dtype.isUnsignedInteger
            for (i, v) in x.int64s.enumerated() {
                let term: Int64
                switch kind {
                case .l1: term = unsigned || v >= 0 ? v : 0 &- v
                case .sumSquare: term = v &* v
                default: term = v
                }
                acc[index[i]] &+= term
            }
            return acc
        }
    }

    /// The data type's value range in the (sign-flipped for u64) Int64 space used for comparisons.
    private var range: (Int64, Int64) {
        switch dtype {
        case .i32: return (Int64(Int32.min), Int64(Int32.max))
        case .i16: return (Int64(Int16.min), Int64(Int16.max))
        case .i8: return (Int64(Int8.min), Int64(Int8.max))
        case .u32: return (0, Int64(UInt32.max))
        case .u16: return (0, Int64(UInt16.max))
        case .u8: return (0, Int64(UInt8.max))
        case .bool: return (0, 1)
        default: return (.min, .max)
        }
    }
}

// MARK: - ArgMax / ArgMin

extension ReductionOps {
    static func argOp(_ name: String, findMax: Bool) -> OpDefinition {
        OpDefinition(name, since: [1, 11, 12, 13], infer: { ctx in
            let x = try ctx.requiredInput(0)
            try ReductionSupport.requireNumeric(x.dtype, ctx, allowBool: true)
            guard let rank = x.shape.rank else { return [TensorType(.i64, .unranked)] }
            let axis = try ShapeHelpers.normalizeAxis(try ctx.int("axis", default: 0), rank: rank, context: ctx)
            let keep = try ctx.int("keepdims", default: 1) != 0
            return [TensorType(.i64, ReductionSupport.replacing(x.shape, axis: axis, with: keep ? .known(1) : nil))]
        }, evaluate: { ctx in
            let x = try ctx.requiredInput(0)
            let axis = try ShapeHelpers.normalizeAxis(try ctx.int("axis", default: 0), rank: x.rank, context: ctx)
            let keep = try ctx.int("keepdims", default: 1) != 0
            let last = try ctx.opset >= 12 && ctx.int("select_last_index", default: 0) != 0
            let (outer, n, inner) = ReductionSupport.split(x.shape, axis: axis)
            guard n > 0 else { throw ctx.error("cannot take \(name) over an empty axis") }
            func run<K: ReductionOrderKey>(_ keys: [K]) -> [Int64] {
                var out = [Int64](repeating: 0, count: outer * inner)
                for o in 0..<outer {
                    for i in 0..<inner {
                        let base = o * n * inner + i
                        var best = 0, bestKey = keys[base]
                        for j in 1..<max(n, 1) {
                            let k = keys[base + j * inner]
                            // NaN beats every number (NumPy); ties go to the first or, with
                            // select_last_index, the last index.
                            let better = !bestKey.isNaNKey && (k.isNaNKey || (findMax ? k > bestKey : k < bestKey))
                            let tie = last && (k == bestKey || (k.isNaNKey && bestKey.isNaNKey))
                            if better || tie { best = j; bestKey = k }
                        }
                        out[o * inner + i] = Int64(best)
                    }
                }
                return out
            }
            let result: [Int64]
            switch try ReductionSupport.orderKeys(x, ctx) {
            case .float(let k): result = run(k)
            case .int(let k): result = run(k)
            }
            var shape = x.shape
            if shape.isEmpty { shape = [] } else if keep { shape[axis] = 1 } else { shape.remove(at: axis) }
            return [Tensor(result, shape: shape)]
        })
    }
}

// MARK: - Softmax / LogSoftmax / Hardmax

extension ReductionOps {
    enum SoftmaxKind { case softmax, logSoftmax, hardmax }

    private static let softmaxOps: [OpDefinition] = [
        ("Softmax", SoftmaxKind.softmax), ("LogSoftmax", .logSoftmax), ("Hardmax", .hardmax),
    ].map { name, kind in
        OpDefinition(name, since: [1, 11, 13], infer: { ctx in
            let x = try ReductionSupport.floatType(ctx, 0)
            if let rank = x.shape.rank {
                _ = try ShapeHelpers.normalizeAxis(try ctx.int("axis", default: ctx.opset < 13 ? 1 : -1), rank: rank, context: ctx)
            }
            return [x]
        }, evaluate: { ctx in
            let x = try ReductionSupport.floatInput(ctx, 0)
            let axis = try ShapeHelpers.normalizeAxis(try ctx.int("axis", default: ctx.opset < 13 ? 1 : -1),
                                                      rank: x.rank, context: ctx)
            // Before opset 13 the input is coerced to 2-D at `axis` and each row is normalized;
            // from 13 only the one axis is.
            var (outer, n, inner) = ReductionSupport.split(x.shape, axis: axis)
            if ctx.opset < 13 { n *= inner; inner = 1 }
            let v = softmax(x.doubles, outer: outer, n: n, inner: inner, kind, roundingTo: x.dtype)
            return [Tensor(doubles: v, dtype: x.dtype, shape: x.shape)]
        })
    }

    /// Softmax, log-softmax or hardmax over the middle axis of an (outer, n, inner) view. The
    /// exponentials and their sum are rounded to `dtype` as the ONNX reference computes them in the
    /// input's precision (for f16 that is visible in the result's last bit).
    static func softmax(_ x: [Double], outer: Int, n: Int, inner: Int, _ kind: SoftmaxKind,
                        roundingTo dtype: DType) -> [Double] {
        let round: (Double) -> Double
        switch dtype {
        case .f16: round = { Double(halfToFloat(floatToHalf(Float($0)))) }
        case .bf16: round = { Double(bfloat16ToFloat(floatToBFloat16(Float($0)))) }
        case .f32: round = { Double(Float($0)) }
        default: round = { $0 }
        }
        var v = x
        for o in 0..<outer {
            for i in 0..<inner {
                let base = o * n * inner + i
                // The maximum (first one for hardmax); exponents are shifted by it to stay finite.
                var m = -Double.infinity, arg = 0
                for j in 0..<n where v[base + j * inner] > m || j == 0 { m = v[base + j * inner]; arg = j }
                switch kind {
                case .hardmax:
                    for j in 0..<n { v[base + j * inner] = j == arg ? 1 : 0 }
                case .softmax, .logSoftmax:
                    var s = 0.0
                    for j in 0..<n { s += round(Foundation.exp(v[base + j * inner] - m)) }
                    s = round(s)
                    let logS = Foundation.log(s)
                    for j in 0..<n {
                        let shifted = v[base + j * inner] - m
                        v[base + j * inner] = kind == .softmax ? round(Foundation.exp(shifted)) / s : shifted - logS
                    }
                }
            }
        }
        return v
    }
}

// MARK: - CumSum / CumProd

extension ReductionOps {
    static func cumulativeOp(_ name: String, since: [Int], product: Bool) -> OpDefinition {
        OpDefinition(name, since: since, infer: { ctx in
            let x = try ctx.requiredInput(0)
            try ReductionSupport.requireNumeric(x.dtype, ctx)
            return [x]
        }, evaluate: { ctx in
            let x = try ctx.requiredInput(0)
            try ReductionSupport.requireNumeric(x.dtype, ctx)
            let axisValue = try ReductionSupport.scalarInteger(try ctx.requiredInput(1), ctx, what: "axis")
            let axis = try ShapeHelpers.normalizeAxis(axisValue, rank: x.rank, context: ctx)
            let exclusive = try ctx.int("exclusive", default: 0) != 0
            let reverse = try ctx.int("reverse", default: 0) != 0
            let (outer, n, inner) = ReductionSupport.split(x.shape, axis: axis)
            func scan<T>(_ v: [T], identity: T, _ combine: (T, T) -> T) -> [T] {
                var out = v
                for o in 0..<outer {
                    for i in 0..<inner {
                        var acc = identity
                        for step in 0..<n {
                            let j = reverse ? n - 1 - step : step
                            let p = (o * n + j) * inner + i
                            if exclusive { out[p] = acc; acc = combine(acc, v[p]) } else { acc = combine(acc, v[p]); out[p] = acc }
                        }
                    }
                }
                return out
            }
            if x.dtype.isFloatingPoint {
                let r = product ? scan(x.doubles, identity: 1, *) : scan(x.doubles, identity: 0, +)
                return [Tensor(doubles: r, dtype: x.dtype, shape: x.shape)]
            }
            // Wrapping Int64 arithmetic gives every integer type's exact (wrapped) result.
            let r = product ? scan(x.int64s, identity: 1, &*) : scan(x.int64s, identity: 0, &+)
            return [Tensor(int64s: r, dtype: x.dtype, shape: x.shape)]
        })
    }
}

// MARK: - TopK

extension ReductionOps {
    static let topK = OpDefinition("TopK", since: [1, 10, 11, 24], infer: { ctx in
        let x = try ctx.requiredInput(0)
        try ReductionSupport.requireNumeric(x.dtype, ctx)
        guard let rank = x.shape.rank else {
            return [TensorType(x.dtype, .unranked), TensorType(.i64, .unranked)].prefix(ctx.outputCount).map { $0 }
        }
        let axis = try ShapeHelpers.normalizeAxis(try ctx.int("axis", default: -1), rank: rank, context: ctx)
        var k: Dim = .unknown
        if ctx.opset < 10 {
            guard let v = try ctx.int("k") else { throw ctx.error("missing attribute 'k'") }
            k = .known(v)
        } else if let c = ctx.constant(1) {
            k = .known(try ReductionSupport.scalarInteger(c, ctx, what: "K"))
        }
        let shape = ReductionSupport.replacing(x.shape, axis: axis, with: k)
        return [TensorType(x.dtype, shape), TensorType(.i64, shape)].prefix(ctx.outputCount).map { $0 }
    }, evaluate: { ctx in
        let x = try ctx.requiredInput(0)
        guard x.rank > 0 else { throw ctx.error("TopK needs an input of rank ≥ 1") }
        let axis = try ShapeHelpers.normalizeAxis(try ctx.int("axis", default: -1), rank: x.rank, context: ctx)
        let k: Int
        if ctx.opset < 10 {
            guard let v = try ctx.int("k") else { throw ctx.error("missing attribute 'k'") }
            k = v
        } else {
            k = try ReductionSupport.scalarInteger(try ctx.requiredInput(1), ctx, what: "K")
        }
        let largest = try ctx.opset < 11 || ctx.int("largest", default: 1) != 0
        let (outer, n, inner) = ReductionSupport.split(x.shape, axis: axis)
        guard k >= 0 && k <= n else { throw ctx.error("k = \(k) is out of range for an axis of size \(n)") }
        // Indices (into x) of the selected elements in output order; equal values keep index order.
        func select<K: ReductionOrderKey>(_ keys: [K]) -> [Int] {
            var picked = [Int](repeating: 0, count: outer * k * inner)
            var order = [Int](repeating: 0, count: n)
            for o in 0..<outer {
                for i in 0..<inner {
                    let base = o * n * inner + i
                    for j in 0..<n { order[j] = j }
                    order.sort { a, b in
                        let ka = keys[base + a * inner], kb = keys[base + b * inner]
                        if largest ? ka.isAbove(kb) : kb.isAbove(ka) { return true }
                        if largest ? kb.isAbove(ka) : ka.isAbove(kb) { return false }
                        return a < b
                    }
                    for j in 0..<k { picked[(o * k + j) * inner + i] = base + order[j] * inner }
                }
            }
            return picked
        }
        let picked: [Int]
        switch try ReductionSupport.orderKeys(x, ctx) {
        case .float(let keys): picked = select(keys)
        case .int(let keys): picked = select(keys)
        }
        var shape = x.shape
        shape[axis] = k
        let values = ReductionSupport.gather(x, picked, shape: shape)
        let indices = Tensor(picked.map { Int64(($0 / inner) % max(n, 1)) }, shape: shape)
        return [values, indices].prefix(ctx.outputCount).map { $0 }
    })
}
