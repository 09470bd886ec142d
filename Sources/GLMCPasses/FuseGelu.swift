import GLMCIR
import GLMCOps

/// Recognizes GELU written out with Erf or Tanh.
///
/// The match starts at the Erf or Tanh:
/// - erf form: Erf(x / 1.4142135) or Erf(x · 0.70710677);
/// - tanh form: Tanh(√(2/π) · (x + 0.044715 · x³)), x³ as Pow(x, 3), (x·x)·x or x·(x·x).
/// Then a = 1 + that, and the product 0.5 · x · a in any of its arrangements: (x·a)·0.5,
/// (0.5·a)·x or (x·0.5)·a, each multiplication in either operand order. Constants match to a
/// relative 1e-4; intermediates must be read only inside the group.
///
/// The group becomes `Gelu(x)` (approximate "tanh" for the tanh form) when the module's default
/// opset is ≥ 20, else a `glmc.Fused` of kind `gelu` / `gelu_tanh`.
public struct FuseGelu: Pass {
    public static let name = "fuse-gelu"
    public static let summary = "Recognizes GELU written out with Erf or Tanh."
    public init() {}

    public func run(on module: inout Module, context: PassContext) throws -> Bool {
        let opset = PatternRewrite.defaultOpset(module)
        return PatternRewrite.eachFunction(in: &module, intoFused: false) { f, module in
            var changed = false
            var start = 0
            while let (group, x, output, isTanh, next) = Self.match(PatternView(f), from: start) {
                start = next
                let view = PatternView(f)
                if opset >= 20 {
                    let members = view.withPrivateConstants(group)
                    guard view.isClosed(members, output: output) else { continue }
                    let gelu = Instruction(op: OpName("Gelu"), opset: opset, operands: [x], results: [],
                                           attributes: isTanh ? ["approximate": .string("tanh")] : [:])
                    PatternRewrite.replace(members, computing: output, with: gelu, in: &f)
                } else if !PatternRewrite.fuse(group, computing: output, view: view, kind: isTanh ? "gelu_tanh" : "gelu",
                                               in: &module, &f) {
                    continue
                }
                changed = true
                start = 0
                context.count("gelus fused")
            }
            return changed
        }
    }

    /// The first GELU whose Erf / Tanh is at or after `start`: group, input, output, whether it is
    /// the tanh form, and where to continue.
    static func match(_ view: PatternView, from start: Int) -> ([Int], ValueID, ValueID, Bool, Int)? {
        let f = view.f
        for i in start ..< f.body.count {
            let inst = f.body[i]
            guard inst.isOp("Erf", "Tanh"), inst.attributes.isEmpty, inst.operands.count == 1, inst.results.count == 1,
                  let inner = inst.operands[0], let (x, front) = inst.isOp("Erf") ? erfArgument(inner, view) : tanhArgument(inner, view),
                  f.type(of: x).dtype.isFloatingPoint,
                  let (back, output) = halfProduct(x, onePlus: inst.results[0], view) else { continue }
            return (front + [i] + back, x, output, inst.isOp("Tanh"), i + 1)
        }
        return nil
    }

    /// x and the instructions of x / √2 or x · (1/√2).
    static func erfArgument(_ t: ValueID, _ view: PatternView) -> (ValueID, [Int])? {
        guard let d = view.plain(t, "Div", "Mul") else { return nil }
        let inst = view.f.body[d]
        if inst.isOp("Div"), inst.operands.count == 2, let x = inst.operands[0],
           let c = view.scalar(inst.operands[1], like: x), nearlyEqual(c, 2.0.squareRoot()) {
            return (x, [d])
        }
        if inst.isOp("Mul"), let x = view.operand(of: inst, withScalar: 0.5.squareRoot()) { return (x, [d]) }
        return nil
    }

    /// x and the instructions of √(2/π) · (x + 0.044715 · x³).
    static func tanhArgument(_ u: ValueID, _ view: PatternView) -> (ValueID, [Int])? {
        let f = view.f
        guard let scaled = view.plain(u, "Mul"), let s = view.operand(of: f.body[scaled], withScalar: (2 / Double.pi).squareRoot()),
              let sum = view.plain(s, "Add"), f.body[sum].operands.count == 2 else { return nil }
        for (a, b) in [(0, 1), (1, 0)] {
            guard let x = f.body[sum].operands[a], let k = view.plain(f.body[sum].operands[b], "Mul"),
                  let cube = view.operand(of: f.body[k], withScalar: 0.044715), let cubeGroup = cubeOf(x, cube, view) else { continue }
            return (x, [scaled, sum, k] + cubeGroup)
        }
        return nil
    }

    /// The instructions computing `v` = x³ as Pow(x, 3), (x·x)·x or x·(x·x).
    static func cubeOf(_ x: ValueID, _ v: ValueID, _ view: PatternView) -> [Int]? {
        let f = view.f
        if let p = view.plain(v, "Pow") {
            return f.body[p].operands.count == 2 && f.body[p].operands[0] == x && view.scalar(f.body[p].operands[1], like: x) == 3 ? [p] : nil
        }
        guard let m = view.plain(v, "Mul"), let other = view.other(of: f.body[m], than: x),
              let sq = view.plain(other, "Mul"), f.body[sq].operands == [x, x] else { return nil }
        return [m, sq]
    }

    /// The instructions of 0.5 · x · a, where a = 1 + `t`, and the value computing it.
    static func halfProduct(_ x: ValueID, onePlus t: ValueID, _ view: PatternView) -> ([Int], ValueID)? {
        let f = view.f
        guard let ai = view.soleUser(t), f.body[ai].isOp("Add"), f.body[ai].attributes.isEmpty,
              view.operand(of: f.body[ai], withScalar: 1) == t else { return nil }
        let a = f.body[ai].results[0]
        guard let m1 = view.soleUser(a), f.body[m1].isOp("Mul"), f.body[m1].attributes.isEmpty,
              let other = view.other(of: f.body[m1], than: a) else { return nil }
        let r1 = f.body[m1].results[0]
        // (x · 0.5) · a
        if let half = view.plain(other, "Mul"), view.operand(of: f.body[half], withScalar: 0.5) == x {
            return ([ai, half, m1], r1)
        }
        // (x · a) · 0.5 or (0.5 · a) · x
        guard other == x || view.scalar(other, like: a).map({ nearlyEqual($0, 0.5) }) == true,
              let m2 = view.soleUser(r1), f.body[m2].isOp("Mul"), f.body[m2].attributes.isEmpty else { return nil }
        let match = other == x ? view.operand(of: f.body[m2], withScalar: 0.5) == r1 : view.other(of: f.body[m2], than: r1) == x
        return match ? ([ai, m1, m2], f.body[m2].results[0]) : nil
    }
}
