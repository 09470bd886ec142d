import GLMCIR

/// Classification losses: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (a log-softmax over
/// the class axis followed by the same gather-and-reduce).
enum ReductionLosses {
    static let all: [OpDefinition] = [negativeLogLikelihood, softmaxCrossEntropy]

    /// Loss type: a scalar after "mean"/"sum", else the target's shape. SoftmaxCrossEntropyLoss's
    /// optional log_prob output has the scores' type.
    private static func infer(_ ctx: InferenceContext) throws -> [TensorType] {
        let x = try ReductionSupport.floatType(ctx, 0)
        let target = try ctx.requiredInput(1)
        let reduction = try ctx.string("reduction", default: "mean")
        let loss = TensorType(x.dtype, reduction == "none" ? target.shape : .scalar)
        return Array([loss, x].prefix(ctx.outputCount))
    }

    static let negativeLogLikelihood = OpDefinition("NegativeLogLikelihoodLoss", since: [12, 13, 22], infer: infer,
                                                    evaluate: { ctx in
        let x = try ReductionSupport.floatInput(ctx, 0)
        return [try loss(logProb: x.doubles, x, ctx)]
    })

    static let softmaxCrossEntropy = OpDefinition("SoftmaxCrossEntropyLoss", since: [12, 13], infer: infer,
                                                  evaluate: { ctx in
        let x = try ReductionSupport.floatInput(ctx, 0)
        guard x.rank >= 2 else { throw ctx.error("scores must have shape (N, C, ...), got \(x.shape)") }
        let (outer, n, inner) = ReductionSupport.split(x.shape, axis: 1)
        let logProb = ReductionOps.softmax(x.doubles, outer: outer, n: n, inner: inner, .logSoftmax, roundingTo: x.dtype)
        let result = try loss(logProb: logProb, x, ctx)
        return Array([result, Tensor(doubles: logProb, dtype: x.dtype, shape: x.shape)].prefix(ctx.outputCount))
    })

    /// loss[n, d...] = -logProb[n, target, d...] * weight[target] (0 where target == ignore_index),
    /// then "none", "sum" or "mean" (sum of losses over sum of the weights used).
    private static func loss(logProb: [Double], _ x: Tensor, _ ctx: EvalContext) throws -> Tensor {
        let targetT = try ctx.requiredInput(1)
        guard x.rank >= 2, targetT.shape == [x.shape[0]] + x.shape[2...] else {
            throw ctx.error("target of shape \(targetT.shape) does not match input of shape \(x.shape)")
        }
        let target = try ReductionSupport.integers(targetT, ctx, what: "target")
        let classes = x.shape[1], inner = x.shape[2...].reduce(1, *)
        let weight = try ctx.input(2).map { w -> [Double] in
            guard w.shape == [classes] else { throw ctx.error("weight must have shape [\(classes)], got \(w.shape)") }
            return w.doubles
        }
        let ignore = try ctx.int("ignore_index")
        var losses = [Double](repeating: 0, count: target.count), weightSum = 0.0
        for (i, t) in target.enumerated() where t != ignore {
            guard t >= 0 && t < classes else { throw ctx.error("target \(t) is not a class index in [0, \(classes))") }
            let w = weight?[t] ?? 1
            let (sample, d) = (i / max(inner, 1), i % max(inner, 1))
            losses[i] = -logProb[(sample * classes + t) * inner + d] * w
            weightSum += w
        }
        switch try ctx.string("reduction", default: "mean") {
        case "none": return Tensor(doubles: losses, dtype: x.dtype, shape: targetT.shape)
        case "sum": return Tensor(doubles: [losses.reduce(0, +)], dtype: x.dtype, shape: [])
        case "mean": return Tensor(doubles: [losses.reduce(0, +) / weightSum], dtype: x.dtype, shape: [])
        case let other: throw ctx.unsupported("reduction '\(other)'")
        }
    }
}
