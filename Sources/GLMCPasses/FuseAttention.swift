import GLMCIR
import GLMCOps

/// Recognizes scaled-dot-product attention: MatMul, scale, mask, Softmax (Dropout), MatMul.
///
/// The chain, each step the only reader of the previous one:
///   S = MatMul(Q, Kᵀ) → optional Mul / Div by a scalar constant → optional Add of a mask (any
///   value, either operand order) → Softmax over the last axis → optional inference Dropout →
///   MatMul(·, V).
/// It becomes a `glmc.Fused` of kind `attention` with operands Q, Kᵀ, (mask,) V. ONNX's own
/// Attention op expects another layout (heads not split), so the group is kept as it is; the
/// Transposes and Reshapes that split heads and transpose K stay outside the group.
public struct FuseAttention: Pass {
    public static let name = "fuse-attention"
    public static let summary = "Recognizes scaled-dot-product attention: MatMul, scale, mask, Softmax (Dropout), MatMul."
    public init() {}

    public func run(on module: inout Module, context: PassContext) throws -> Bool {
        PatternRewrite.eachFunction(in: &module, intoFused: false) { f, module in
            var changed = false
            var start = 0
            while let (group, output, next) = Self.match(PatternView(f), from: start) {
                start = next
                if PatternRewrite.fuse(group, computing: output, view: PatternView(f), kind: "attention", in: &module, &f) {
                    changed = true
                    start = 0
                    context.count("attention groups fused")
                }
            }
            return changed
        }
    }

    /// The first attention chain whose score MatMul is at or after `start`: the group, its output and
    /// where to continue.
    static func match(_ view: PatternView, from start: Int) -> ([Int], ValueID, Int)? {
        let f = view.f
        for i in start ..< f.body.count {
            guard f.body[i].isOp("MatMul"), f.body[i].results.count == 1,
                  let rank = f.type(of: f.body[i].results[0]).shape.rank, rank >= 2 else { continue }
            var group = [i]
            var v = f.body[i].results[0]
            /// The sole reader of `v` when it is `type` and satisfies `accept`; it joins the group.
            func step(_ type: String, _ accept: (Instruction) -> Bool) -> Bool {
                guard let u = view.soleUser(v), f.body[u].isOp(type), f.body[u].results.count == 1, accept(f.body[u]) else { return false }
                group.append(u)
                v = f.body[u].results[0]
                return true
            }
            _ = step("Mul") { $0.attributes.isEmpty && view.scalar(view.other(of: $0, than: v), like: v) != nil }
                || step("Div") { $0.attributes.isEmpty && $0.operands.count == 2 && $0.operands[0] == v && view.scalar($0.operands[1], like: v) != nil }
            _ = step("Add") { $0.attributes.isEmpty && view.other(of: $0, than: v) != nil }
            guard step("Softmax", { softmax in
                guard softmax.hasOnlyAttributes(["axis"]), let axis = softmax.int("axis", softmax.opset < 13 ? 1 : -1),
                      let r = f.type(of: v).shape.rank else { return false }
                return axis == -1 || axis == r - 1
            }) else { continue }
            _ = step("Dropout") { dropout in
                // Inference only: no mask output, and no training_mode operand that could be true.
                guard dropout.hasOnlyAttributes(["ratio", "seed", "is_test"]), dropout.opset >= 7 || dropout.int("is_test", 0) == 1 else { return false }
                let training = dropout.operands.count > 2 ? dropout.operands[2] : nil
                return training == nil || view.constant(training)?.doubles == [0]
            }
            guard step("MatMul", { $0.operands.first == v }) else { continue }
            return (group, v, i + 1)
        }
        return nil
    }
}
