import GLMCIR
import GLMCOps

/// Folds inference BatchNormalization into the weights of a preceding Conv, ConvTranspose or Gemm
/// (or a MatMul of 2-D operands, which becomes a Gemm).
///
/// In inference BatchNormalization is y = (x − mean)·γ/√(var+ε) + β per channel, an affine map
/// y = x·a + s with a = γ/√(var+ε) and s = β − mean·a. When x comes from a `LinearProducer` read only
/// by the BatchNormalization and the four statistics are constants, the producer gets new weights
/// W·a and bias b·a + s (a bias is added when it had none) and the BatchNormalization disappears.
///
/// Left alone: training mode (`training_mode = 1`, or opset < 7 without `is_test = 1`), more than
/// one result, per-element statistics (`spatial = 0` before opset 9), non-constant statistics,
/// non-float types, unknown attributes, and producers whose result has another reader.
public struct FoldBatchNorm: Pass {
    public static let name = "fold-batch-norm"
    public static let summary = "Folds inference BatchNormalization into the weights of a preceding Conv, ConvTranspose or Gemm."
    public init() {}

    public func run(on module: inout Module, context: PassContext) throws -> Bool {
        LinearProducer.foldRepeatedly(in: &module, context: context, statistic: "batch normalizations folded") { view, start in
            Self.match(view, from: start).map { ($0.0, $0.1, $0.2, $0.3) }
        }
    }

    /// The first foldable BatchNormalization at or after `start`: its index, producer, and the
    /// per-channel scale a and shift s it applies.
    static func match(_ view: PatternView, from start: Int) -> (Int, LinearProducer, [Double], [Double])? {
        for i in start ..< view.f.body.count {
            let bn = view.f.body[i]
            guard bn.isOp("BatchNormalization"), bn.results.count == 1, bn.operands.count == 5,
                  bn.hasOnlyAttributes(["epsilon", "momentum", "spatial", "is_test", "training_mode", "consumed_inputs"]),
                  bn.int("training_mode", 0) == 0, bn.opset >= 7 || bn.int("is_test", 0) == 1,
                  bn.opset >= 9 || bn.int("spatial", 1) == 1,
                  let epsilon = bn.float("epsilon", 1e-5),
                  let x = bn.operands[0], let producer = LinearProducer(view, producing: x),
                  producer.channelAxis == 1, producer.canShift(in: view.f) else { continue }
            let stats = bn.operands[1...].compactMap { view.constant($0) }
            guard stats.count == 4, stats.allSatisfy({ $0.shape == [producer.channels] && $0.dtype.isFloatingPoint }) else { continue }
            let (gamma, beta, mean, variance) = (stats[0].doubles, stats[1].doubles, stats[2].doubles, stats[3].doubles)
            let scale = (0 ..< producer.channels).map { gamma[$0] / (variance[$0] + Double(epsilon)).squareRoot() }
            let shift = (0 ..< producer.channels).map { beta[$0] - mean[$0] * scale[$0] }
            return (i, producer, scale, shift)
        }
        return nil
    }
}
