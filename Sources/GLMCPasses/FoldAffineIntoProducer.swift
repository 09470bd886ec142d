import GLMCIR
import GLMCOps

/// Folds Mul / Add (and Sub / Div) by a per-channel constant into the weights and bias of the
/// producing Conv, ConvTranspose, Gemm or MatMul.
///
/// y = P(x) ∘ c, where P is a `LinearProducer` whose result only this instruction reads and c is a
/// constant that varies at most along P's output channels ([C,1,1] or [1,C,1,1] after a 2-D Conv,
/// [N] or [1,N] after a Gemm / MatMul, or a scalar) without enlarging the result:
/// - Mul by c (either operand order) scales W and b by c; Div by c scales them by 1/c;
/// - Add of c (either order) adds c to b; Sub of c adds −c. A Conv without a bias gets one; a MatMul
///   with a 2-D input becomes a Gemm with C = c (other MatMuls keep their Add).
/// Chains (Conv → Mul → Add) fold one step at a time.
public struct FoldAffineIntoProducer: Pass {
    public static let name = "fold-affine"
    public static let summary = "Folds Mul/Add by a per-channel constant into the weights and bias of the producing Conv, Gemm or MatMul."
    public init() {}

    public func run(on module: inout Module, context: PassContext) throws -> Bool {
        LinearProducer.foldRepeatedly(in: &module, context: context, statistic: "instructions folded") { view, start in
            Self.match(view, from: start)
        }
    }

    /// The first foldable instruction at or after `start`, with its producer and the scale or shift.
    static func match(_ view: PatternView, from start: Int) -> (Int, LinearProducer, [Double]?, [Double]?)? {
        for i in start ..< view.f.body.count {
            let inst = view.f.body[i]
            guard inst.isOp("Mul", "Add", "Sub", "Div"), inst.attributes.isEmpty, inst.operands.count == 2,
                  inst.results.count == 1 else { continue }
            // (producer operand, constant operand) in the orders the op allows.
            let orders = inst.isOp("Mul", "Add") ? [(0, 1), (1, 0)] : [(0, 1)]
            for (p, c) in orders {
                guard let x = inst.operands[p], let data = view.constantData(inst.operands[c]),
                      let producer = LinearProducer(view, producing: x), let values = producer.perChannel(data, in: view.f) else { continue }
                switch inst.op.type {
                case "Mul": return (i, producer, values, nil)
                case "Div" where !values.contains(0): return (i, producer, values.map { 1 / $0 }, nil)
                case "Add" where producer.canShift(in: view.f): return (i, producer, nil, values)
                case "Sub" where producer.canShift(in: view.f): return (i, producer, nil, values.map { -$0 })
                default: continue
                }
            }
        }
        return nil
    }
}
