import GLMCIR
import GLMCOps

/// Fuses Conv / MatMul / Gemm, an optional bias Add and one activation into a `glmc.Fused` group.
///
/// The group is the anchor, then (optionally) an Add of a constant that varies only along the
/// anchor's output channels (axis 1 of a Conv result, the last axis of a MatMul / Gemm result), then
/// one activation: Relu, Clip with constant bounds (`relu6` for [0, 6]), LeakyRelu, Sigmoid,
/// HardSigmoid, HardSwish, SiLU (x·Sigmoid(x)), Gelu (the op, or a `glmc.Fused` gelu / gelu_tanh
/// group made by fuse-gelu) or Tanh. Every intermediate must be read only inside the group. The
/// kind lists the parts: `conv_relu`, `conv_bias_relu` (with the Add), `matmul_bias_gelu`,
/// `gemm_silu`.
public struct FuseProducerActivation: Pass {
    public static let name = "fuse-conv-activation"
    public static let summary = "Fuses Conv/MatMul/Gemm, an optional bias Add and an activation into one group."
    public init() {}

    public func run(on module: inout Module, context: PassContext) throws -> Bool {
        PatternRewrite.eachFunction(in: &module, intoFused: false) { f, module in
            var changed = false
            var start = 0
            while let (group, output, kind, next) = Self.match(PatternView(f), from: start) {
                start = next
                if PatternRewrite.fuse(group, computing: output, view: PatternView(f), kind: kind, in: &module, &f) {
                    changed = true
                    context.count("groups fused")
                    start = 0 // indices moved
                }
            }
            return changed
        }
    }

    /// The first anchor at or after `start` with a fusable epilogue: the group, its output, its kind
    /// and where to continue when the group cannot be fused after all.
    static func match(_ view: PatternView, from start: Int) -> ([Int], ValueID, String, Int)? {
        let f = view.f
        for i in start ..< f.body.count {
            let anchor = f.body[i]
            guard anchor.isOp("Conv", "MatMul", "Gemm"), anchor.results.count == 1,
                  let rank = f.type(of: anchor.results[0]).shape.rank else { continue }
            var group = [i]
            var value = anchor.results[0]
            var kind = anchor.op.type.lowercased()
            // An Add of a bias along the channel axis.
            if let u = view.soleUser(value), f.body[u].isOp("Add"), f.body[u].attributes.isEmpty,
               let b = view.other(of: f.body[u], than: value), let bias = view.constantData(b)?.sizes {
                let axis = anchor.isOp("Conv") ? 1 : rank - 1
                let size = f.type(of: value).shape.dims?[axis].value ?? bias.max() ?? 1
                if broadcastsOnlyAlong(bias, axis: axis, size: size, rank: rank) {
                    group.append(u)
                    value = f.body[u].results[0]
                    kind += "_bias"
                }
            }
            guard let (activation, name, output) = Self.activation(after: value, view) else { continue }
            return (group + activation, output, kind + "_" + name, i + 1)
        }
        return nil
    }

    /// The activation reading `x` (only it): its instructions, its name and its result.
    static func activation(after x: ValueID, _ view: PatternView) -> ([Int], String, ValueID)? {
        let f = view.f
        let readers = view.users(x)
        guard view.uses(x) == readers.count else { return nil }
        // SiLU: x is read by a Sigmoid and by the Mul of x and that Sigmoid.
        if readers.count == 2, let s = readers.first(where: { f.body[$0].isOp("Sigmoid") }),
           let m = readers.first(where: { $0 != s }), f.body[m].isOp("Mul"),
           let sig = f.body[s].results.first, view.other(of: f.body[m], than: x) == sig,
           view.soleUser(sig) == m, f.body[s].attributes.isEmpty, f.body[m].attributes.isEmpty {
            return ([s, m], "silu", f.body[m].results[0])
        }
        guard readers.count == 1 else { return nil }
        let i = readers[0], inst = f.body[i]
        guard inst.operands.first == x, inst.results.count == 1 else { return nil }
        let out = inst.results[0]
        if inst.op == FusedOps.fused, case .string(let kind)? = inst.attributes["kind"],
           kind == "gelu" || kind == "gelu_tanh", inst.operands.count == 1 {
            return ([i], kind, out)
        }
        switch inst.op.type {
        case "Relu" where inst.isOp("Relu") && inst.hasOnlyAttributes(["consumed_inputs"]): return ([i], "relu", out)
        case "Sigmoid" where inst.isOp("Sigmoid") && inst.hasOnlyAttributes(["consumed_inputs"]): return ([i], "sigmoid", out)
        case "Tanh" where inst.isOp("Tanh") && inst.hasOnlyAttributes(["consumed_inputs"]): return ([i], "tanh", out)
        case "HardSwish" where inst.isOp("HardSwish") && inst.attributes.isEmpty: return ([i], "hard_swish", out)
        case "LeakyRelu" where inst.isOp("LeakyRelu") && inst.hasOnlyAttributes(["alpha", "consumed_inputs"]):
            return ([i], "leaky_relu", out)
        case "HardSigmoid" where inst.isOp("HardSigmoid") && inst.hasOnlyAttributes(["alpha", "beta", "consumed_inputs"]):
            return ([i], "hard_sigmoid", out)
        case "Gelu" where inst.isOp("Gelu") && inst.hasOnlyAttributes(["approximate"]):
            guard case .string(let mode)? = inst.attributes["approximate"] ?? .string("none") else { return nil }
            return mode == "tanh" ? ([i], "gelu_tanh", out) : mode == "none" ? ([i], "gelu", out) : nil
        case "Clip" where inst.isOp("Clip"):
            // Bounds are attributes before opset 11 and constant operands after.
            let bounds: [Double?]
            if inst.opset < 11 {
                guard inst.hasOnlyAttributes(["min", "max", "consumed_inputs"]), let lo = inst.float("min", -.infinity),
                      let hi = inst.float("max", .infinity), inst.operands.count == 1 else { return nil }
                bounds = [Double(lo), Double(hi)]
            } else {
                guard inst.attributes.isEmpty else { return nil }
                var found: [Double?] = [-.infinity, .infinity]
                for k in [1, 2] where k < inst.operands.count && inst.operands[k] != nil {
                    guard let v = view.scalar(inst.operands[k], like: x) else { return nil }
                    found[k - 1] = v
                }
                bounds = found
            }
            return ([i], bounds == [0, 6] ? "relu6" : "clip", out)
        default:
            return nil
        }
    }
}
