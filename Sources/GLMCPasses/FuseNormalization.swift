import GLMCIR
import GLMCOps

/// Recognizes decomposed LayerNormalization and RMSNormalization.
///
/// The match starts at the normalizing division n = d / s (or d · Reciprocal(s)) and walks up:
///   s = Sqrt(e), e = Add(v, ε), v = ReduceMean(p) over the trailing axes k..r−1 (keepdims),
///   p = Pow(d, 2) or Mul(d, d).
/// When d = Sub(x, ReduceMean(x)) over the same axes it is a layer norm of x, otherwise an RMS norm
/// of x = d. Then forward: an optional Mul by γ and (layer norm only) an optional Add of β, each a
/// value whose shape spans only the normalized axes. Every intermediate must be read only inside
/// the group. ReduceMean's axes come from the attribute (opset < 18) or a constant operand.
///
/// The group becomes `LayerNormalization` {axis = k, epsilon = ε} when the module's default opset is
/// ≥ 17 (`RMSNormalization` when ≥ 23), with γ (ones when absent) and β expanded to the normalized
/// shape; otherwise (or when that shape is not static) a `glmc.Fused` of kind `layer_norm` /
/// `rms_norm`.
public struct FuseNormalization: Pass {
    public static let name = "fuse-normalization"
    public static let summary = "Recognizes decomposed LayerNormalization and RMSNormalization."
    public init() {}

    struct Match {
        var group: [Int]
        var x: ValueID
        var output: ValueID
        var axis: Int
        var epsilon: Double
        var gamma: ValueID?
        var beta: ValueID?
        var isLayerNorm: Bool
    }

    public func run(on module: inout Module, context: PassContext) throws -> Bool {
        let opset = PatternRewrite.defaultOpset(module)
        return PatternRewrite.eachFunction(in: &module, intoFused: false) { f, module in
            var changed = false
            var start = 0
            while let (m, next) = Self.match(PatternView(f), from: start) {
                start = next
                let view = PatternView(f)
                let members = view.withPrivateConstants(m.group)
                guard view.isClosed(members, output: m.output) else { continue }
                if opset >= (m.isLayerNorm ? 17 : 23), let op = Self.op(for: m, in: &f, opset: opset) {
                    PatternRewrite.replace(members, computing: m.output, with: op, in: &f)
                } else if !PatternRewrite.fuse(m.group, computing: m.output, view: view,
                                               kind: m.isLayerNorm ? "layer_norm" : "rms_norm", in: &module, &f) {
                    continue
                }
                changed = true
                start = 0
                context.count(m.isLayerNorm ? "layer norms fused" : "rms norms fused")
            }
            return changed
        }
    }

    /// The first normalization whose division is at or after `start`, and where to continue.
    static func match(_ view: PatternView, from start: Int) -> (Match, Int)? {
        let f = view.f
        for i in start ..< f.body.count {
            // n = d / s, or d · Reciprocal(s).
            let n = f.body[i]
            var group = [i]
            let d: ValueID, s: ValueID
            guard n.attributes.isEmpty, n.operands.count == 2, let a = n.operands[0], let b = n.operands[1] else { continue }
            if n.isOp("Div") {
                (d, s) = (a, b)
            } else if n.isOp("Mul"), let (ri, other) = [(b, a), (a, b)].lazy.compactMap({ r, other in view.plain(r, "Reciprocal").map { ($0, other) } }).first,
                      let rs = f.body[ri].operands.first ?? nil {
                (d, s) = (other, rs)
                group.append(ri)
            } else { continue }
            guard let rank = f.type(of: d).shape.rank, rank > 0, let sqrt = view.plain(s, "Sqrt"),
                  let add = view.plain(f.body[sqrt].operands.first ?? nil, "Add") else { continue }
            // e = v + ε
            var found: (v: ValueID, eps: Double)?
            for (a, b) in [(0, 1), (1, 0)] where f.body[add].operands.count == 2 {
                if let v = f.body[add].operands[a], let eps = view.scalar(f.body[add].operands[b], like: v) { found = (v, eps) }
            }
            guard let (v, epsilon) = found, let mean2 = view.definer(v),
                  let axis = trailingMeanAxis(f.body[mean2], view, rank: rank),
                  let p = view.definer(f.body[mean2].operands[0]), isSquare(f.body[p], of: d, view) else { continue }
            group += [sqrt, add, mean2, p]
            // d = x − ReduceMean(x) makes it a layer norm.
            var x = d, isLayerNorm = false
            if let sub = view.plain(d, "Sub"), f.body[sub].operands.count == 2, let sx = f.body[sub].operands[0],
               let mean1 = view.definer(f.body[sub].operands[1]), f.body[mean1].operands.first == sx,
               trailingMeanAxis(f.body[mean1], view, rank: rank) == axis {
                x = sx
                isLayerNorm = true
                group += [sub, mean1]
            }
            // Forward: · γ, then + β (layer norm).
            var output = n.results[0]
            let params = f.type(of: x).shape.dims.map { Array($0[axis...]) } ?? []
            func parameter(_ opType: String) -> ValueID? {
                guard let u = view.soleUser(output), f.body[u].isOp(opType), f.body[u].attributes.isEmpty,
                      f.body[u].results.count == 1, let g = view.other(of: f.body[u], than: output),
                      spansNormalizedAxes(f.type(of: g), params) else { return nil }
                group.append(u)
                output = f.body[u].results[0]
                return g
            }
            let gamma = parameter("Mul")
            let beta = isLayerNorm ? parameter("Add") : nil
            return (Match(group: group, x: x, output: output, axis: axis, epsilon: epsilon,
                          gamma: gamma, beta: beta, isLayerNorm: isLayerNorm), i + 1)
        }
        return nil
    }

    /// k when `inst` is a ReduceMean (keepdims) over the axes k..rank−1, nil otherwise.
    static func trailingMeanAxis(_ inst: Instruction, _ view: PatternView, rank: Int) -> Int? {
        guard inst.isOp("ReduceMean"), inst.hasOnlyAttributes(["axes", "keepdims", "noop_with_empty_axes"]),
              inst.int("keepdims", 1) == 1, inst.results.count == 1 else { return nil }
        var axes: [Int]
        if inst.opset < 18 {
            guard case .ints(let a)? = inst.attributes["axes"], inst.operands.count == 1 else { return nil }
            axes = a
        } else {
            guard inst.operands.count == 2, let a = view.constant(inst.operands[1])?.int64s.map(Int.init) else { return nil }
            axes = a
        }
        axes = axes.map { $0 < 0 ? $0 + rank : $0 }.sorted()
        guard let k = axes.first, k >= 0, axes == Array(k ..< rank) else { return nil }
        return k
    }

    /// Whether `inst` is Pow(d, 2) or Mul(d, d).
    static func isSquare(_ inst: Instruction, of d: ValueID, _ view: PatternView) -> Bool {
        guard inst.attributes.isEmpty, inst.operands.count == 2, inst.operands[0] == d else { return false }
        if inst.isOp("Mul") { return inst.operands[1] == d }
        return inst.isOp("Pow") && view.scalar(inst.operands[1], like: d) == 2
    }

    /// Whether a parameter of type `t` broadcasts only over the normalized dimensions `dims` (it has
    /// no more dimensions than they do, and each of its sizes is 1 or the matching known size).
    static func spansNormalizedAxes(_ t: TensorType, _ dims: [Dim]) -> Bool {
        guard let sizes = t.shape.staticSizes, sizes.count <= dims.count else { return false }
        return zip(sizes, dims.suffix(sizes.count)).allSatisfy { s, d in s == 1 || d.value == s }
    }

    /// The normalization op for a match, with γ (ones when absent) and β as constants of the
    /// normalized shape, or as the values themselves when they have it already. Nil when that shape
    /// is not static or a parameter is neither.
    static func op(for m: Match, in f: inout Function, opset: Int) -> Instruction? {
        let xType = f.type(of: m.x)
        guard let dims = xType.shape.dims, xType.dtype.isFloatingPoint,
              let sizes = Shape(Array(dims[m.axis...])).staticSizes else { return nil }
        let normalized = TensorType(xType.dtype, static: sizes)
        let view = PatternView(f)
        // Each parameter as (the value to pass, or the constant to create).
        func resolve(_ v: ValueID?, fill: Double?) -> (ValueID?, Tensor?)? {
            guard let v else {
                return (nil, fill.map { Tensor(doubles: [Double](repeating: $0, count: sizes.reduce(1, *)), dtype: xType.dtype, shape: sizes) })
            }
            if f.type(of: v) == normalized { return (v, nil) }
            guard let t = view.constant(v), t.dtype == xType.dtype,
                  let e = evaluate("Expand", [t, Tensor(sizes.map(Int64.init), shape: [sizes.count])], opset: opset) else { return nil }
            return (nil, e)
        }
        guard let g = resolve(m.gamma, fill: 1), let b = resolve(m.beta, fill: nil) else { return nil }
        func materialize(_ r: (ValueID?, Tensor?), _ name: String) -> ValueID? {
            r.0 ?? r.1.map { f.appendConstant($0, name: f.freshName(name), opset: opset) }
        }
        let base = f.name(of: m.output)
        let gamma = materialize(g, m.gamma.map { f.name(of: $0) } ?? (base.isEmpty ? "" : base + ".scale"))
        let beta = materialize(b, m.beta.map { f.name(of: $0) } ?? "")
        let type = m.isLayerNorm ? "LayerNormalization" : "RMSNormalization"
        return Instruction(op: OpName(type), opset: opset, operands: [m.x, gamma] + (beta.map { [$0] } ?? []),
                           results: [], attributes: ["axis": .int(m.axis), "epsilon": .float(Float(m.epsilon))])
    }
}
