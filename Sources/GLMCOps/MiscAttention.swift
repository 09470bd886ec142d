#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import GLMCIR

/// FlexAttention of the `ai.onnx.preview` domain: scaled dot-product attention over rank-4 inputs,
/// with optional `score_mod` / `prob_mod` subgraphs applied to the scores and probabilities.
extension MiscOps {
    static let attentionOps: [OpDefinition] = [flexAttention]

    static let flexAttention = OpDefinition("FlexAttention", domain: "ai.onnx.preview", since: [1], infer: { ctx in
        let q = try ctx.requiredInput(0), k = try ctx.requiredInput(1), v = try ctx.requiredInput(2)
        try require(q.dtype, in: floatTypes, ctx)
        guard k.dtype == q.dtype, v.dtype == q.dtype else { throw ctx.error("Q, K and V must share one element type") }
        for t in [q, k, v] where t.shape.rank.map({ $0 != 4 }) ?? false {
            throw ctx.error("Q, K and V must have rank 4, got \(t.shape)")
        }
        let qd = q.shape.dims ?? [.unknown, .unknown, .unknown, .unknown]
        return [TensorType(q.dtype, Shape([qd[0], qd[1], qd[2], v.shape.dims?[3] ?? .unknown]))]
    }, evaluate: { ctx in
        let q = try operand(ctx, 0), k = try operand(ctx, 1), v = try operand(ctx, 2)
        try require(q.dtype, in: floatTypes, ctx)
        guard k.dtype == q.dtype, v.dtype == q.dtype, q.rank == 4, k.rank == 4, v.rank == 4 else {
            throw ctx.error("Q, K and V must be rank-4 tensors of one element type, got \(q.type), \(k.type), \(v.type)")
        }
        let (batch, qHeads, qLength, headSize) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let (kvHeads, kvLength, vHeadSize) = (k.shape[1], k.shape[2], v.shape[3])
        guard k.shape[0] == batch, v.shape[0] == batch, k.shape[3] == headSize, v.shape[1] == kvHeads, v.shape[2] == kvLength,
              kvHeads > 0, qHeads % kvHeads == 0 else {
            throw ctx.error("incompatible shapes Q \(q.shape), K \(k.shape), V \(v.shape)")
        }
        let group = qHeads / kvHeads
        let precision = try ctx.has("softmax_precision") ? dtypeAttribute(ctx, "softmax_precision") : (q.dtype == .f64 ? .f64 : .f32)
        try require(precision, in: floatTypes, ctx, "softmax_precision")
        let scale = try ctx.float("scale").map(Double.init) ?? 1 / Double(headSize).squareRoot()
        // As ONNX's reference: Q and K are each pre-scaled by √scale (taken in f32) in their own
        // precision, the product is rounded to that precision, then to the softmax precision.
        let rootScale = rounded(Double(Float(scale).squareRoot()), to: q.dtype)
        let qs = q.doubles.map { rounded($0 * rootScale, to: q.dtype) }
        let ks = k.doubles.map { rounded($0 * rootScale, to: q.dtype) }
        let scoresShape = [batch, qHeads, qLength, kvLength]
        var scores = [Double](repeating: 0, count: try resultCount(scoresShape, ctx))
        for b in 0 ..< batch {
            for h in 0 ..< qHeads {
                let kvh = h / group
                for l in 0 ..< qLength {
                    let qBase = ((b * qHeads + h) * qLength + l) * headSize
                    for s in 0 ..< kvLength {
                        let kBase = ((b * kvHeads + kvh) * kvLength + s) * headSize
                        var dot = 0.0
                        for e in 0 ..< headSize { dot += qs[qBase + e] * ks[kBase + e] }
                        scores[((b * qHeads + h) * qLength + l) * kvLength + s] = rounded(rounded(dot, to: q.dtype), to: precision)
                    }
                }
            }
        }
        /// Runs a modifier subgraph on a [B, Hq, L, S] tensor of the softmax precision.
        func modify(_ attribute: String, _ values: [Double]) throws -> [Double] {
            guard let graph = try ctx.graph(attribute) else { return values }
            let outs = try ctx.runSubgraph(graph, [Tensor(doubles: values, dtype: precision, shape: scoresShape)])
            guard outs.count == 1, outs[0].shape == scoresShape, outs[0].dtype.isFloatingPoint else {
                throw ctx.error("\(attribute) must return one floating-point tensor of shape \(scoresShape)")
            }
            return outs[0].doubles.map { rounded($0, to: precision) }
        }
        scores = try modify("score_mod", scores)
        for row in 0 ..< (scores.count / max(kvLength, 1)) {
            let range = (row * kvLength) ..< ((row + 1) * kvLength)
            let m = scores[range].max() ?? 0
            var sum = 0.0
            for i in range { scores[i] = exp(scores[i] - m); sum += scores[i] }
            for i in range { scores[i] = rounded(scores[i] / sum, to: precision) }
        }
        let probs = try modify("prob_mod", scores)
        let vs = v.doubles.map { rounded($0, to: precision) }
        var out = [Double](repeating: 0, count: try resultCount([batch, qHeads, qLength, vHeadSize], ctx))
        for b in 0 ..< batch {
            for h in 0 ..< qHeads {
                let kvh = h / group
                for l in 0 ..< qLength {
                    let pBase = ((b * qHeads + h) * qLength + l) * kvLength
                    let oBase = ((b * qHeads + h) * qLength + l) * vHeadSize
                    for s in 0 ..< kvLength {
                        let p = probs[pBase + s], vBase = ((b * kvHeads + kvh) * kvLength + s) * vHeadSize
                        for e in 0 ..< vHeadSize { out[oBase + e] += p * vs[vBase + e] }
                    }
                    for e in 0 ..< vHeadSize { out[oBase + e] = rounded(out[oBase + e], to: precision) }
                }
            }
        }
        return [Tensor(doubles: out, dtype: q.dtype, shape: [batch, qHeads, qLength, vHeadSize])]
    })
}
