import GLMCIR
import GLMCOps

/// Removes no-op ops (Identity, inference Dropout, no-op Cast/Reshape/Transpose/Slice/Pad/Expand), merges Transpose and Reshape chains, and folds x*1, x+0, double negation and Where with a constant condition.
///
/// One forward sweep per function (nested regions separately). Each rewrite either replaces an
/// instruction's result by an existing value (the instruction is removed; later readers are renamed
/// to the value) or replaces the instruction by a cheaper one with the same results:
///
/// | rewrite | when |
/// |---|---|
/// | `Identity(x)` → x | always |
/// | `Dropout(x)` → x | inference mode (see `Folding.isInferenceDropout`) and the mask is unused |
/// | `Cast(x)`, `CastLike(x, y)` → x | the target type is x's type |
/// | `Reshape`/`Flatten`/`Squeeze`/`Unsqueeze`/`Expand(x)` → x | x and the result have the same static shape |
/// | `Transpose(x)` → x | the permutation is the identity |
/// | `Slice(x)` → x | constant bounds take every element of every sliced axis in order |
/// | `Pad(x)` → x | constant pads are all zero |
/// | `Transpose(Transpose(x, p1), p2)` → `Transpose(x, p1∘p2)` (or x) | both perms known |
/// | `Reshape(R(x), s)` → `Reshape(x, s)` | R is a reshape-like op read only here; s is constant without 0 ("copy") entries |
/// | x·1, 1·x, x+0, 0+x, x−0, x/1 → x | the constant is all ones/zeros and broadcasts into x's shape |
/// | `Neg(Neg(x))` → x | always |
/// | `Where(c, a, b)` → a or b | c is a constant all true/false; c and the other branch broadcast into it |
///
/// Because readers are renamed before they are looked at, chains collapse in one sweep. A replaced
/// value's type is tightened with the removed result's type where that says more (both are the
/// same tensor). Removed instructions' producers may become dead: dce cleans up.
public struct AlgebraicSimplification: Pass {
    public static let name = "simplify"
    public static let summary = "Removes no-op ops (Identity, inference Dropout, no-op Cast/Reshape/Transpose/Slice/Pad/Expand), merges Transpose and Reshape chains, and folds x*1, x+0, double negation and Where with a constant condition."
    public init() {}

    public func run(on module: inout Module, context: PassContext) throws -> Bool {
        Folding.forEachFunction(&module.main) { f in
            var simplifier = Simplifier(f)
            simplifier.run()
            for (kind, n) in simplifier.counts { context.count(kind, n) }
            guard !simplifier.counts.isEmpty else { return false }
            f = simplifier.f
            return true
        }
    }
}

/// What a rewrite does with an instruction.
private enum Rewrite {
    /// The (first) result is the existing value.
    case value(ValueID, String)
    /// The instruction becomes this one (same results).
    case instruction(Instruction, String)
}

private struct Simplifier {
    var f: Function
    var constants: [ValueID: TensorData] = [:]
    var defining: [ValueID: Int]
    var uses: [Int]
    var rename: [ValueID: ValueID] = [:]
    var removed = Set<Int>()
    var counts: [(String, Int)] = []

    init(_ f: Function) {
        self.f = f
        defining = f.definingInstructions()
        uses = f.useCounts()
    }

    mutating func run() {
        for i in f.body.indices {
            Folding.rename(&f.body[i], rename)
            let inst = f.body[i]
            if let c = inst.constantValue { constants[inst.results[0]] = c; continue }
            guard inst.op.domain.isEmpty || inst.op.domain == "ai.onnx", let rewrite = rewrite(inst) else { continue }
            switch rewrite {
            case .value(let x, let kind):
                let r = inst.results[0]
                guard f.type(of: x).isCompatible(with: f.type(of: r)) else { continue }
                if defining[x] != nil {
                    f.values[x.index].type.shape = f.type(of: x).shape.refined(by: f.type(of: r).shape)
                }
                rename[r] = x
                uses[x.index] += uses[r.index]
                for case let v? in inst.operands { uses[v.index] -= 1 }
                removed.insert(i)
                count(kind)
            case .instruction(let replacement, let kind):
                for case let v? in inst.operands { uses[v.index] -= 1 }
                for case let v? in replacement.operands { uses[v.index] += 1 }
                f.body[i] = replacement
                count(kind)
            }
        }
        Folding.renameOutputs(&f, rename)
        f.removeInstructions(at: removed)
    }

    mutating func count(_ kind: String) {
        if let k = counts.firstIndex(where: { $0.0 == kind }) { counts[k].1 += 1 } else { counts.append((kind, 1)) }
    }

    // MARK: Rewrites

    func rewrite(_ inst: Instruction) -> Rewrite? {
        guard let x = inst.operands.first ?? nil else { return nil }
        let result = inst.results[0]
        switch inst.op.type {
        case "Identity":
            return .value(x, "Identity removed")
        case "Dropout":
            guard Folding.isInferenceDropout(inst, constants: constants),
                  inst.results.dropFirst().allSatisfy({ uses[$0.index] == 0 }) else { return nil }
            return .value(x, "inference Dropout removed")
        case "Cast":
            guard case .int(let code)? = inst.attributes["to"], DType(onnxCode: Int32(truncatingIfNeeded: code)) == f.type(of: x).dtype
            else { return nil }
            return .value(x, "no-op Cast removed")
        case "CastLike":
            guard inst.operands.count == 2, let like = inst.operands[1], f.type(of: like).dtype == f.type(of: x).dtype else { return nil }
            return .value(x, "no-op Cast removed")
        case "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Expand":
            if let sizes = f.type(of: x).shape.staticSizes, f.type(of: result).shape.staticSizes == sizes {
                return .value(x, "no-op \(inst.op.type) removed")
            }
            return inst.op.type == "Reshape" ? mergedReshape(inst, x) : nil
        case "Transpose":
            guard let perm = permutation(inst, of: x) else { return nil }
            if perm == Array(perm.indices) { return .value(x, "identity Transpose removed") }
            return mergedTranspose(inst, x, perm: perm)
        case "Slice":
            return takesEverything(inst, x) ? .value(x, "full Slice removed") : nil
        case "Pad":
            let pads = inst.opset < 11 ? Folding.intsAttribute(inst, inst.opset < 2 ? "paddings" : "pads")
                                       : Folding.ints(inst, operand: 1, constants: constants)
            guard let pads, let pads, pads.allSatisfy({ $0 == 0 }) else { return nil }
            return .value(x, "zero Pad removed")
        case "Add", "Sub", "Mul", "Div":
            return arithmeticIdentity(inst)
        case "Neg":
            guard let d = defining[x], f.body[d].op == inst.op, !removed.contains(d), let y = f.body[d].operands.first ?? nil else { return nil }
            return .value(y, "double Neg removed")
        case "Where":
            return constantWhere(inst)
        default:
            return nil
        }
    }

    /// Transpose's permutation: the attribute, or the reversal of a known rank.
    func permutation(_ inst: Instruction, of x: ValueID) -> [Int]? {
        switch inst.attributes["perm"] {
        case .ints(let p)?: return Set(p) == Set(p.indices) ? p : nil
        case nil: return f.type(of: x).shape.rank.map { Array((0 ..< $0).reversed()) }
        default: return nil
        }
    }

    /// `Transpose(Transpose(y, p1), p2)` is y with dim i taken from `p1[p2[i]]`.
    func mergedTranspose(_ inst: Instruction, _ x: ValueID, perm p2: [Int]) -> Rewrite? {
        guard let d = defining[x], !removed.contains(d), f.body[d].op == inst.op, let y = f.body[d].operands.first ?? nil,
              let p1 = permutation(f.body[d], of: y), p1.count == p2.count else { return nil }
        let composed = p2.map { p1[$0] }
        if composed == Array(composed.indices) { return .value(y, "Transpose pair removed") }
        var merged = inst
        merged.operands[0] = y
        merged.attributes["perm"] = .ints(composed)
        return .instruction(merged, "Transposes merged")
    }

    /// `Reshape(R(y), s)` → `Reshape(y, s)` when R only reshapes (Reshape, Flatten, Squeeze,
    /// Unsqueeze), nothing else reads its result, and s has no 0 that would copy one of R's dims.
    func mergedReshape(_ inst: Instruction, _ x: ValueID) -> Rewrite? {
        guard let d = defining[x], !removed.contains(d), uses[x.index] == 1,
              ["Reshape", "Flatten", "Squeeze", "Unsqueeze"].contains(f.body[d].op.type),
              f.body[d].op.domain == inst.op.domain, let y = f.body[d].operands.first ?? nil else { return nil }
        let target = inst.opset < 5 ? Folding.intsAttribute(inst, "shape") : Folding.ints(inst, operand: 1, constants: constants)
        guard let target, let target else { return nil }
        guard let allowZero = Folding.reshapeAllowsZero(inst), allowZero || !target.contains(0) else { return nil }
        var merged = inst
        merged.operands[0] = y
        return .instruction(merged, "Reshapes merged")
    }

    /// Whether a Slice with constant bounds keeps every element: step 1, from the start to the end.
    func takesEverything(_ inst: Instruction, _ x: ValueID) -> Bool {
        guard let dims = f.type(of: x).shape.dims else { return false }
        guard let bounds = Folding.sliceBounds(inst, constants: constants) else { return false }
        let (starts, ends, axes, steps) = bounds
        let axisList = axes ?? Array(starts.indices)
        let stepList = steps ?? [Int](repeating: 1, count: starts.count)
        guard axisList.count == starts.count, stepList.count == starts.count else { return false }
        var seen = Set<Int>()
        for k in starts.indices {
            let a = axisList[k] < 0 ? axisList[k] + dims.count : axisList[k]
            guard a >= 0, a < dims.count, seen.insert(a).inserted, stepList[k] == 1 else { return false }
            if let n = dims[a].value {
                // Clamped as the spec says: start to 0 and end to n must both hold.
                let s = starts[k] < 0 ? starts[k] + n : starts[k]
                let e = ends[k] < 0 ? ends[k] + n : ends[k]
                guard s <= 0, e >= n else { return false }
            } else {
                // An unknown size: only the literal "from 0 to the end" form is provably everything.
                guard starts[k] == 0, ends[k] >= Int(Int32.max) else { return false }
            }
        }
        return true
    }

    /// x·1, 1·x, x+0, 0+x, x−0, x/1 when the constant does not broadcast x to a larger shape.
    func arithmeticIdentity(_ inst: Instruction) -> Rewrite? {
        guard inst.operands.count == 2, let a = inst.operands[0], let b = inst.operands[1] else { return nil }
        // Before opset 7 `broadcast` stretched operand 1 over operand 0 only: x must be operand 0 there.
        let legacy = inst.opset < 7 && inst.attributes["broadcast"] != nil
        let neutral: Double = inst.op.type == "Add" || inst.op.type == "Sub" ? 0 : 1
        let commutes = inst.op.type == "Add" || inst.op.type == "Mul"
        let candidates = commutes && !legacy ? [(a, b), (b, a)] : [(a, b)]
        for (x, c) in candidates where isUniform(c, neutral) {
            let xt = f.type(of: x), rt = f.type(of: inst.results[0])
            guard xt.dtype == rt.dtype, broadcastsInto(f.type(of: c).shape, xt.shape) else { continue }
            return .value(x, "arithmetic identity removed")
        }
        return nil
    }

    /// A constant with every element equal to `v`.
    func isUniform(_ v: ValueID, _ value: Double) -> Bool {
        guard let data = constants[v], let t = try? Tensor(data) else { return false }
        return t.count > 0 && t.doubles.allSatisfy { $0 == value }
    }

    /// `Where(c, a, b)` with c a constant all true (→ a) or all false (→ b), when the chosen branch
    /// already has the result's shape: c and the other branch broadcast into it.
    func constantWhere(_ inst: Instruction) -> Rewrite? {
        guard inst.operands.count == 3, let c = inst.operands[0], let a = inst.operands[1], let b = inst.operands[2],
              let data = constants[c], let t = try? Tensor(data), t.count > 0, case .bool(let flags) = t.storage else { return nil }
        let chosen: ValueID, other: ValueID
        if flags.allSatisfy({ $0 }) { (chosen, other) = (a, b) } else if flags.allSatisfy({ !$0 }) { (chosen, other) = (b, a) } else { return nil }
        let shape = f.type(of: chosen).shape
        guard broadcastsInto(f.type(of: c).shape, shape), broadcastsInto(f.type(of: other).shape, shape) else { return nil }
        return .value(chosen, "constant-condition Where removed")
    }

    /// Whether broadcasting `small` with `big` gives `big` (provably, whatever the symbols are).
    func broadcastsInto(_ small: Shape, _ big: Shape) -> Bool {
        guard let s = small.dims, let b = big.dims, s.count <= b.count else { return false }
        for (d, e) in zip(s, b.suffix(s.count)) {
            switch (d, e) {
            case (.known(1), _): continue
            case (.known(let u), .known(let v)) where u == v: continue
            case (.symbol(let u), .symbol(let v)) where u == v: continue
            default: return false
            }
        }
        return true
    }
}
