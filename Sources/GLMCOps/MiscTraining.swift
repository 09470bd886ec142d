#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import GLMCIR

/// The optimizers of the `ai.onnx.preview.training` domain: Adagrad, Momentum (standard and
/// Nesterov) and Adam. Each updates several tensors at once: its operands are the learning rate R,
/// the update count T, then one group of tensors per kind (all X's, all gradients, ...).
extension MiscOps {
    static let trainingDomain = "ai.onnx.preview.training"
    static let trainingOps: [OpDefinition] = [adagrad, momentum, adam]

    /// One optimizer step over one optimized tensor: from (R, T, [X, G, state...] as Doubles) to the
    /// results ([X_new, state_new...]).
    typealias OptimizerStep = @Sendable (_ r: Double, _ t: Int64, _ tensors: [[Double]]) -> [[Double]]

    /// An optimizer whose operands come in `kinds` groups after R and T, and whose results are the
    /// updated groups `updated` (indices into the operand groups, for their types).
    static func optimizer(_ name: String, kinds: Int, updated: [Int],
                          makeStep: @escaping @Sendable (EvalContext) throws -> OptimizerStep) -> OpDefinition {
        return OpDefinition(name, domain: trainingDomain, since: [1], infer: { ctx in
            let n = try optimizedCount(ctx.inputTypes.count, kinds: kinds, results: updated.count, ctx)
            try require(ctx.requiredInput(0).dtype, in: [.f32, .f64], ctx, "R")
            try require(ctx.requiredInput(1).dtype, in: [.i64], ctx, "T")
            var types: [TensorType] = []
            for kind in updated { for i in 0 ..< n { types.append(try ctx.requiredInput(2 + kind * n + i)) } }
            for t in types { try require(t.dtype, in: [.f32, .f64], ctx) }
            return Array(types.prefix(ctx.outputCount))
        }, evaluate: { ctx in
            let n = try optimizedCount(ctx.inputs.count, kinds: kinds, results: updated.count, ctx)
            let rTensor = try ctx.operand(0), tTensor = try ctx.operand(1)
            try require(rTensor.dtype, in: [.f32, .f64], ctx, "R")
            try require(tTensor.dtype, in: [.i64], ctx, "T")
            let r = try scalarDouble(rTensor, "R", ctx)
            guard tTensor.count == 1 else { throw ctx.error("T must be a scalar") }
            let t = tTensor.int64s[0]
            let step = try makeStep(ctx)
            var results = [Tensor?](repeating: nil, count: n * updated.count)
            for i in 0 ..< n {
                let group = try (0 ..< kinds).map { try ctx.operand(2 + $0 * n + i) }
                for g in group {
                    try require(g.dtype, in: [.f32, .f64], ctx)
                    guard g.shape == group[0].shape else {
                        throw ctx.error("tensors of optimized tensor \(i) have different shapes \(group.map(\.shape))")
                    }
                }
                let outs = step(r, t, group.map(\.doubles))
                for (j, kind) in updated.enumerated() {
                    results[j * n + i] = Tensor(doubles: outs[j], dtype: group[kind].dtype, shape: group[0].shape)
                }
            }
            return Array(results.compactMap { $0 }.prefix(ctx.outputCount))
        })
    }

    /// How many tensors an optimizer node updates, from its operand count.
    static func optimizedCount(_ operands: Int, kinds: Int, results: Int, _ ctx: some NodeContext) throws -> Int {
        let n = (operands - 2) / kinds
        guard operands > 2, (operands - 2) % kinds == 0 else {
            throw ctx.error("expects R, T and \(kinds) tensors per optimized tensor, got \(operands) operands")
        }
        guard ctx.outputCount <= n * results else {
            throw ctx.error("expects at most \(n * results) results, got \(ctx.outputCount)")
        }
        return n
    }

    /// Adagrad: operands X, G, H; results X_new, H_new.
    static let adagrad = optimizer("Adagrad", kinds: 3, updated: [0, 2]) { ctx in
        let norm = Double(try ctx.float("norm_coefficient", default: 0))
        let decay = Double(try ctx.float("decay_factor", default: 0))
        let epsilon = Double(try ctx.float("epsilon", default: 1e-6))
        return { r, t, v in
            let (x, g, h) = (v[0], v[1], v[2])
            let rate = r / (1 + Double(t) * decay)
            var xNew = x, hNew = h
            for e in 0 ..< x.count {
                let gr = norm * x[e] + g[e]
                hNew[e] = h[e] + gr * gr
                xNew[e] = x[e] - rate * gr / (hNew[e].squareRoot() + epsilon)
            }
            return [xNew, hNew]
        }
    }

    /// Momentum: operands X, G, V; results X_new, V_new.
    static let momentum = optimizer("Momentum", kinds: 3, updated: [0, 2]) { ctx in
        guard let alpha = try ctx.float("alpha"), let beta = try ctx.float("beta"),
              let norm = try ctx.float("norm_coefficient"), let mode = try ctx.string("mode") else {
            throw ctx.error("needs attributes alpha, beta, norm_coefficient and mode")
        }
        guard mode == "standard" || mode == "nesterov" else { throw ctx.error("unknown mode '\(mode)'") }
        let nesterov = mode == "nesterov"
        let (a, b, nc) = (Double(alpha), Double(beta), Double(norm))
        return { r, t, v in
            let (x, g, m) = (v[0], v[1], v[2])
            // The gradient's coefficient is 1 at the first iteration.
            let beta = t > 0 ? b : 1
            var xNew = x, mNew = m
            for e in 0 ..< x.count {
                let gr = nc * x[e] + g[e]
                mNew[e] = a * m[e] + beta * gr
                xNew[e] = x[e] - r * (nesterov ? gr + a * mNew[e] : mNew[e])
            }
            return [xNew, mNew]
        }
    }

    /// Adam: operands X, G, V, H; results X_new, V_new, H_new.
    static let adam = optimizer("Adam", kinds: 4, updated: [0, 2, 3]) { ctx in
        let alpha = Double(try ctx.float("alpha", default: 0.9))
        let beta = Double(try ctx.float("beta", default: 0.999))
        let epsilon = Double(try ctx.float("epsilon", default: 1e-6))
        let norm = Double(try ctx.float("norm_coefficient", default: 0))
        let normPost = Double(try ctx.float("norm_coefficient_post", default: 0))
        return { r, t, v in
            let (x, g, m, h) = (v[0], v[1], v[2], v[3])
            // Bias correction of both moments, from the second update on.
            let rate = t > 0 ? r * (1 - pow(beta, Double(t))).squareRoot() / (1 - pow(alpha, Double(t))) : r
            var xNew = x, mNew = m, hNew = h
            for e in 0 ..< x.count {
                let gr = norm * x[e] + g[e]
                mNew[e] = alpha * m[e] + (1 - alpha) * gr
                hNew[e] = beta * h[e] + (1 - beta) * gr * gr
                xNew[e] = (1 - normPost) * (x[e] - rate * mNew[e] / (hNew[e].squareRoot() + epsilon))
            }
            return [xNew, mNew, hNew]
        }
    }
}
