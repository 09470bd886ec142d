import Foundation
import GLMCIR

/// Normalization ops: BatchNormalization, InstanceNormalization, LayerNormalization,
/// GroupNormalization, RMSNormalization, LpNormalization, MeanVarianceNormalization and LRN.
/// All compute in Double and round once to the input's type.
enum ReductionNormalization {
    static let all: [OpDefinition] = [
        batchNormalization, instanceNormalization, layerNormalization, groupNormalization,
        rmsNormalization, lpNormalization, meanVarianceNormalization, lrn,
    ]

    // MARK: Shared pieces

    /// Mean and population variance of each contiguous row of `rowLength` elements (two passes, so
    /// large offsets do not cancel).
    static func rowMoments(_ x: [Double], rowLength: Int) -> (mean: [Double], variance: [Double]) {
        let rows = rowLength == 0 ? 0 : x.count / rowLength
        var mean = [Double](repeating: 0, count: rows), variance = mean
        guard rowLength > 0 else { return (mean, variance) }
        let n = Double(rowLength)
        for r in 0..<rows {
            let row = x[(r * rowLength)..<((r + 1) * rowLength)]
            let m = row.reduce(0, +) / n
            mean[r] = m
            variance[r] = row.reduce(0) { $0 + ($1 - m) * ($1 - m) } / n
        }
        return (mean, variance)
    }

    /// Infers "same type as input 0, which must be floating point", plus `extra` for further outputs.
    private static func sameAsInput(_ ctx: InferenceContext, extra: (TensorType) throws -> [TensorType] = { _ in [] })
        throws -> [TensorType] {
        let x = try ReductionSupport.floatType(ctx, 0)
        return Array(([x] + (try extra(x))).prefix(ctx.outputCount))
    }

    /// A per-channel parameter operand as Doubles, checking it holds `count` values.
    private static func channelParam(_ ctx: EvalContext, _ i: Int, count: Int, name: String) throws -> [Double] {
        let t = try ReductionSupport.floatInput(ctx, i)
        guard t.count == count else { throw ctx.error("\(name) must have \(count) elements, got shape \(t.shape)") }
        return t.doubles
    }

    /// (N, C, spatial size) of an N x C x D1 x ... input.
    private static func channelLayout(_ x: Tensor, _ ctx: EvalContext) throws -> (n: Int, c: Int, spatial: Int) {
        guard x.rank >= 2 else { throw ctx.error("input must have rank ≥ 2 (N x C x ...), got shape \(x.shape)") }
        return (x.shape[0], x.shape[1], x.shape[2...].reduce(1, *))
    }

    /// `param` broadcast (NumPy rules) to `shape`, as Doubles.
    private static func broadcastParam(_ t: Tensor, to shape: [Int], _ ctx: EvalContext, name: String) throws -> [Double] {
        guard let v = ReductionSupport.expand(t.doubles, from: t.shape, to: shape) else {
            throw ctx.error("\(name) of shape \(t.shape) does not broadcast to \(shape)")
        }
        return v
    }

    /// The stash (statistics) type of LayerNormalization/GroupNormalization/RMSNormalization.
    private static func stashType(_ ctx: some NodeContext) throws -> DType {
        let code = try ctx.int("stash_type", default: 1)
        guard let t = DType(onnxCode: Int32(truncatingIfNeeded: code)), t.isFloatingPoint else {
            throw ctx.unsupported("stash_type \(code)")
        }
        return t
    }

    // MARK: BatchNormalization

    static let batchNormalization = OpDefinition("BatchNormalization", since: [1, 6, 7, 9, 14, 15], infer: { ctx in
        try sameAsInput(ctx) { x in
            // Training-mode outputs (running mean and variance) have the mean operand's type.
            let stat = ctx.inputType(3) ?? TensorType(x.dtype, .unranked)
            return [stat, ctx.inputType(4) ?? stat]
        }
    }, evaluate: { ctx in
        let x = try ReductionSupport.floatInput(ctx, 0)
        let (batch, c, spatial) = try channelLayout(x, ctx)
        let epsilon = Double(try ctx.float("epsilon", default: 1e-5))
        let training = try ctx.opset >= 14 && ctx.int("training_mode", default: 0) != 0
        if ctx.opset < 14 && ctx.outputCount > 1 {
            throw ctx.unsupported("training-mode outputs of BatchNormalization before opset 14")
        }
        // Parameters are per channel; before opset 9, spatial=0 makes them per (channel, position).
        let perElement = try ctx.opset < 9 && ctx.int("spatial", default: 1) == 0
        let paramCount = perElement ? c * spatial : c
        let scale = try channelParam(ctx, 1, count: paramCount, name: "scale")
        let bias = try channelParam(ctx, 2, count: paramCount, name: "B")
        var mean = try channelParam(ctx, 3, count: paramCount, name: "mean")
        var variance = try channelParam(ctx, 4, count: paramCount, name: "var")
        let v = x.doubles
        var outputs: [Tensor] = []
        if training {
            // Statistics of this batch over N and the spatial axes; running statistics blend in.
            let momentum = Double(try ctx.float("momentum", default: 0.9))
            var sum = [Double](repeating: 0, count: c), sq = sum
            for i in 0..<v.count { sum[(i / spatial) % c] += v[i] }
            let count = Double(batch * spatial)
            let batchMean = sum.map { $0 / count }
            for i in 0..<v.count { let d = v[i] - batchMean[(i / spatial) % c]; sq[(i / spatial) % c] += d * d }
            let batchVar = sq.map { $0 / count }
            let runningMean = zip(mean, batchMean).map { $0 * momentum + $1 * (1 - momentum) }
            let runningVar = zip(variance, batchVar).map { $0 * momentum + $1 * (1 - momentum) }
            let meanT = try ctx.requiredInput(3), varT = try ctx.requiredInput(4)
            outputs = [Tensor(doubles: runningMean, dtype: meanT.dtype, shape: meanT.shape),
                       Tensor(doubles: runningVar, dtype: varT.dtype, shape: varT.shape)]
            mean = batchMean; variance = batchVar
        }
        // y = (x - mean) / sqrt(var + eps) * scale + B, folded into y = x * a + b.
        let a = (0..<paramCount).map { scale[$0] / (variance[$0] + epsilon).squareRoot() }
        let b = (0..<paramCount).map { bias[$0] - mean[$0] * a[$0] }
        var y = v
        for i in 0..<v.count {
            let p = perElement ? i % (c * spatial) : (i / spatial) % c
            y[i] = v[i] * a[p] + b[p]
        }
        return Array(([Tensor(doubles: y, dtype: x.dtype, shape: x.shape)] + outputs).prefix(ctx.outputCount))
    })

    // MARK: InstanceNormalization / GroupNormalization

    static let instanceNormalization = OpDefinition("InstanceNormalization", since: [1, 6, 22], infer: { ctx in
        try sameAsInput(ctx)
    }, evaluate: { ctx in
        let x = try ReductionSupport.floatInput(ctx, 0)
        let (_, c, _) = try channelLayout(x, ctx)
        let scale = try channelParam(ctx, 1, count: c, name: "scale")
        let bias = try channelParam(ctx, 2, count: c, name: "B")
        return [try normalizeGroups(x, groups: c, scale: scale, bias: bias, ctx)]
    })

    static let groupNormalization = OpDefinition("GroupNormalization", since: [18, 21], infer: { ctx in
        try sameAsInput(ctx)
    }, evaluate: { ctx in
        let x = try ReductionSupport.floatInput(ctx, 0)
        let (_, c, _) = try channelLayout(x, ctx)
        guard let groups = try ctx.int("num_groups"), groups > 0, c % groups == 0 else {
            throw ctx.error("num_groups must be a positive divisor of the channel count \(c)")
        }
        _ = try stashType(ctx)
        // Opset 18 has one scale/bias per group, opset 21 one per channel; the count tells which.
        let scaleT = try ReductionSupport.floatInput(ctx, 1)
        let count = scaleT.count == c ? c : groups
        let scale = try channelParam(ctx, 1, count: count, name: "scale")
        let bias = try channelParam(ctx, 2, count: count, name: "bias")
        let perChannel = count == c
        return [try normalizeGroups(x, groups: groups,
                                    scale: perChannel ? scale : scale.flatMap { [Double](repeating: $0, count: c / groups) },
                                    bias: perChannel ? bias : bias.flatMap { [Double](repeating: $0, count: c / groups) },
                                    ctx)]
    })

    /// Normalizes each (sample, group of C/groups channels) to zero mean and unit variance, then
    /// applies per-channel `scale` and `bias`.
    private static func normalizeGroups(_ x: Tensor, groups: Int, scale: [Double], bias: [Double],
                                        _ ctx: EvalContext) throws -> Tensor {
        let (_, c, spatial) = try channelLayout(x, ctx)
        let epsilon = Double(try ctx.float("epsilon", default: 1e-5))
        let v = x.doubles
        let rowLength = c / groups * spatial
        let (mean, variance) = rowMoments(v, rowLength: rowLength)
        var y = v
        for i in 0..<v.count {
            let row = i / max(rowLength, 1), channel = (i / max(spatial, 1)) % c
            y[i] = (v[i] - mean[row]) / (variance[row] + epsilon).squareRoot() * scale[channel] + bias[channel]
        }
        return Tensor(doubles: y, dtype: x.dtype, shape: x.shape)
    }

    // MARK: LayerNormalization / RMSNormalization

    /// Shape inference shared by the two: Y like X; LayerNormalization's Mean and InvStdDev have X's
    /// shape with the normalized axes set to 1 and the stash type.
    private static func inferNormalizedRows(_ ctx: InferenceContext) throws -> [TensorType] {
        try sameAsInput(ctx) { x in
            let stash = try stashType(ctx)
            guard let dims = x.shape.dims else { return [TensorType(stash, .unranked), TensorType(stash, .unranked)] }
            let axis = try ShapeHelpers.normalizeAxis(try ctx.int("axis", default: -1), rank: dims.count, context: ctx)
            let stats = Shape(dims.enumerated().map { $0.offset < axis ? $0.element : .known(1) })
            return [TensorType(stash, stats), TensorType(stash, stats)]
        }
    }

    static let layerNormalization = OpDefinition("LayerNormalization", since: [17], infer: inferNormalizedRows,
                                                 evaluate: { ctx in
        let x = try ReductionSupport.floatInput(ctx, 0)
        let axis = try ShapeHelpers.normalizeAxis(try ctx.int("axis", default: -1), rank: x.rank, context: ctx)
        let epsilon = Double(try ctx.float("epsilon", default: 1e-5))
        let stash = try stashType(ctx)
        let scale = try broadcastParam(try ReductionSupport.floatInput(ctx, 1), to: x.shape, ctx, name: "Scale")
        let bias = try ctx.input(2).map { try broadcastParam($0, to: x.shape, ctx, name: "B") }
        let rowLength = x.shape[axis...].reduce(1, *)
        let v = x.doubles
        let (mean, variance) = rowMoments(v, rowLength: rowLength)
        let invStd = variance.map { 1 / ($0 + epsilon).squareRoot() }
        var y = v
        for i in 0..<v.count {
            let row = i / rowLength
            y[i] = (v[i] - mean[row]) * invStd[row] * scale[i] + (bias?[i] ?? 0)
        }
        let statsShape = x.shape.enumerated().map { $0.offset < axis ? $0.element : 1 }
        return Array([Tensor(doubles: y, dtype: x.dtype, shape: x.shape),
                      Tensor(doubles: mean, dtype: stash, shape: statsShape),
                      Tensor(doubles: invStd, dtype: stash, shape: statsShape)].prefix(ctx.outputCount))
    })

    static let rmsNormalization = OpDefinition("RMSNormalization", since: [23], infer: inferNormalizedRows,
                                               evaluate: { ctx in
        let x = try ReductionSupport.floatInput(ctx, 0)
        let axis = try ShapeHelpers.normalizeAxis(try ctx.int("axis", default: -1), rank: x.rank, context: ctx)
        let epsilon = Double(try ctx.float("epsilon", default: 1e-5))
        _ = try stashType(ctx)
        let scale = try broadcastParam(try ReductionSupport.floatInput(ctx, 1), to: x.shape, ctx, name: "scale")
        let rowLength = x.shape[axis...].reduce(1, *)
        let v = x.doubles
        var y = v
        for r in 0..<(rowLength == 0 ? 0 : v.count / rowLength) {
            let row = (r * rowLength)..<((r + 1) * rowLength)
            let meanSquare = v[row].reduce(0) { $0 + $1 * $1 } / Double(rowLength)
            let inv = 1 / (meanSquare + epsilon).squareRoot()
            for i in row { y[i] = v[i] * inv * scale[i] }
        }
        return [Tensor(doubles: y, dtype: x.dtype, shape: x.shape)]
    })

    // MARK: LpNormalization / MeanVarianceNormalization / LRN

    static let lpNormalization = OpDefinition("LpNormalization", since: [1, 22], infer: { ctx in
        try sameAsInput(ctx)
    }, evaluate: { ctx in
        let x = try ReductionSupport.floatInput(ctx, 0)
        let axis = try ShapeHelpers.normalizeAxis(try ctx.int("axis", default: -1), rank: x.rank, context: ctx)
        let p = try ctx.int("p", default: 2)
        guard p == 1 || p == 2 else { throw ctx.unsupported("p = \(p) (only 1 and 2 are defined)") }
        let plan = ReducePlan(shape: x.shape, axes: [axis], keepDims: true)
        let v = x.doubles
        let norms = ReductionOps.reduceDoubles(v, plan, p == 1 ? .l1 : .l2)
        // A zero norm gives 0 rather than NaN (as the ONNX reference does).
        let y = v.indices.map { i in norms[plan.outIndex[i]] == 0 ? 0 : v[i] / norms[plan.outIndex[i]] }
        return [Tensor(doubles: y, dtype: x.dtype, shape: x.shape)]
    })

    static let meanVarianceNormalization = OpDefinition("MeanVarianceNormalization", since: [9, 13], infer: { ctx in
        try sameAsInput(ctx)
    }, evaluate: { ctx in
        let x = try ReductionSupport.floatInput(ctx, 0)
        let axes = try ReductionSupport.normalizeAxes(try ctx.ints("axes") ?? [0, 2, 3], rank: x.rank, ctx)
        let plan = ReducePlan(shape: x.shape, axes: Set(axes), keepDims: true)
        let v = x.doubles
        let mean = ReductionOps.reduceDoubles(v, plan, .mean)
        let meanSquare = ReductionOps.reduceDoubles(v.map { $0 * $0 }, plan, .mean)
        // The ONNX definition: (X - E[X]) / (sqrt(E[X²] - E[X]²) + 1e-9).
        let std = zip(meanSquare, mean).map { ($0 - $1 * $1).squareRoot() }
        let y = v.indices.map { i in (v[i] - mean[plan.outIndex[i]]) / (std[plan.outIndex[i]] + 1e-9) }
        return [Tensor(doubles: y, dtype: x.dtype, shape: x.shape)]
    })

    static let lrn = OpDefinition("LRN", since: [1, 13], infer: { ctx in
        try sameAsInput(ctx)
    }, evaluate: { ctx in
        let x = try ReductionSupport.floatInput(ctx, 0)
        let (batch, c, spatial) = try channelLayout(x, ctx)
        guard let size = try ctx.int("size"), size > 0 else { throw ctx.error("attribute 'size' must be positive") }
        let alpha = Double(try ctx.float("alpha", default: 1e-4))
        let beta = Double(try ctx.float("beta", default: 0.75))
        let bias = Double(try ctx.float("bias", default: 1))
        // Channels c - floor((size-1)/2) ... c + ceil((size-1)/2) contribute to channel c.
        let before = (size - 1) / 2, after = size - 1 - before
        let v = x.doubles
        var y = v
        for n in 0..<batch {
            for ch in 0..<c {
                for s in 0..<spatial {
                    var sum = 0.0
                    for other in max(0, ch - before)...min(c - 1, ch + after) {
                        let e = v[(n * c + other) * spatial + s]
                        sum += e * e
                    }
                    let i = (n * c + ch) * spatial + s
                    y[i] = v[i] / Foundation.pow(bias + alpha / Double(size) * sum, beta)
                }
            }
        }
        return [Tensor(doubles: y, dtype: x.dtype, shape: x.shape)]
    })
}
