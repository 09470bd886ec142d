import GLMCIR
import GLMCOps

// What the folding and fusion passes share: a read-only index of a function for matching
// (definitions, users, constants), small matchers (commutative operands, scalar constants compared
// with a tolerance, per-channel broadcast shapes) and the edits they make (new constants, replacing
// or fusing a matched group, visiting nested regions).

/// A snapshot of one function for pattern matching. Rebuild it after editing the function.
struct PatternView {
    let f: Function
    private let defining: [ValueID: Int]
    private let useCounts: [Int]
    private let userMap: [ValueID: [Int]]

    init(_ f: Function) {
        self.f = f
        defining = f.definingInstructions()
        useCounts = f.useCounts()
        userMap = f.users()
    }

    /// The index of the instruction defining `v` (nil for arguments, captures and omitted operands).
    func definer(_ v: ValueID?) -> Int? { v.flatMap { defining[$0] } }

    /// The index of the instruction defining `v` when it is one of the default-domain ops `types`
    /// without attributes (as the elementwise ops that patterns are made of are).
    func plain(_ v: ValueID?, _ types: String...) -> Int? {
        guard let i = definer(v), f.body[i].isOp(types), f.body[i].attributes.isEmpty else { return nil }
        return i
    }

    /// How often `v` is read (operands, captures and function outputs).
    func uses(_ v: ValueID) -> Int { useCounts[v.index] }

    /// The instructions reading `v`, by index (one entry per read).
    func users(_ v: ValueID) -> [Int] { userMap[v] ?? [] }

    /// The index of the only instruction reading `v`, when exactly one read exists (a returned value
    /// has none).
    func soleUser(_ v: ValueID) -> Int? {
        guard uses(v) == 1, let u = userMap[v], u.count == 1 else { return nil }
        return u[0]
    }

    /// The data of `v` when a `Constant` instruction defines it with readable bytes (not copied).
    func constantData(_ v: ValueID?) -> TensorData? {
        guard let i = definer(v), let data = f.body[i].constantValue, !data.isElided, data.type.shape.isStatic else { return nil }
        return data
    }

    /// The value of `v` when a `Constant` instruction defines it (nil for elided data).
    func constant(_ v: ValueID?) -> Tensor? {
        constantData(v).flatMap { try? Tensor($0) }
    }

    /// The element of a one-element numeric constant that cannot broadcast a value of `like`'s type
    /// to a larger rank (its rank is 0, or at most `like`'s known rank).
    func scalar(_ v: ValueID?, like: ValueID) -> Double? {
        guard let data = constantData(v), data.elementCount == 1, let t = try? Tensor(data), t.dtype != .string else { return nil }
        if t.rank > 0 {
            guard let rank = f.type(of: like).shape.rank, t.rank <= rank else { return nil }
        }
        return t.doubles[0]
    }

    /// For a commutative binary instruction, the operand that is not `v` (nil when neither or both are).
    func other(of inst: Instruction, than v: ValueID) -> ValueID? {
        guard inst.operands.count == 2, let a = inst.operands[0], let b = inst.operands[1], a != b else { return nil }
        return a == v ? b : (b == v ? a : nil)
    }

    /// Matches a commutative binary instruction with one operand a scalar constant close to `expected`
    /// (relative tolerance 1e-4); returns the other operand.
    func operand(of inst: Instruction, withScalar expected: Double) -> ValueID? {
        guard inst.operands.count == 2 else { return nil }
        for (x, c) in [(0, 1), (1, 0)] {
            if let xv = inst.operands[x], let s = scalar(inst.operands[c], like: xv), nearlyEqual(s, expected) { return xv }
        }
        return nil
    }

    /// Whether the group's results other than `output` are read only inside the group, so replacing
    /// the group by one instruction computing `output` loses nothing.
    func isClosed(_ group: [Int], output: ValueID) -> Bool {
        let members = Set(group)
        for i in group {
            for r in f.body[i].results where r != output {
                let readers = users(r)
                if readers.count != uses(r) || readers.contains(where: { !members.contains($0) }) { return false }
            }
        }
        return true
    }

    /// The group plus the one-element constants only the group reads (scale factors, epsilons, axes),
    /// which belong inside a fused body rather than becoming operands of it. Weights (operands of
    /// Conv, ConvTranspose, Gemm, MatMul) stay operands however small.
    func withPrivateConstants(_ group: [Int]) -> [Int] {
        let members = Set(group)
        var extra = Set<Int>()
        for i in group where !f.body[i].isOp("Conv", "ConvTranspose", "Gemm", "MatMul") {
            for case let v? in f.body[i].operands {
                guard let d = definer(v), !members.contains(d), let data = f.body[d].constantValue,
                      data.elementCount == 1, users(v).count == uses(v),
                      users(v).allSatisfy({ members.contains($0) }) else { continue }
                extra.insert(d)
            }
        }
        return group + extra.sorted()
    }
}

extension Instruction {
    /// Whether this is one of the default-domain ops `types` (the domain may be spelled "ai.onnx").
    func isOp(_ types: [String]) -> Bool {
        (op.domain.isEmpty || op.domain == "ai.onnx") && types.contains(op.type)
    }
    func isOp(_ types: String...) -> Bool { isOp(types) }

    /// Whether every attribute is one of `names` (an unknown attribute means "leave it alone").
    func hasOnlyAttributes(_ names: Set<String>) -> Bool { attributes.keys.allSatisfy { names.contains($0) } }

    /// The INT attribute `name`, `fallback` when absent, nil when it has another kind.
    func int(_ name: String, _ fallback: Int) -> Int? {
        switch attributes[name] {
        case nil: return fallback
        case .int(let v)?: return v
        default: return nil
        }
    }

    /// The FLOAT attribute `name`, `fallback` when absent, nil when it has another kind.
    func float(_ name: String, _ fallback: Float) -> Float? {
        switch attributes[name] {
        case nil: return fallback
        case .float(let v)?: return v
        default: return nil
        }
    }
}

/// Equality of pattern constants up to a relative tolerance (exporters round √2, 1/√2, √(2/π)
/// differently).
func nearlyEqual(_ a: Double, _ b: Double, relative: Double = 1e-4) -> Bool {
    abs(a - b) <= relative * max(abs(a), abs(b))
}

/// Whether a value of static shape `shape` broadcast against a result of rank `rank` varies at most
/// along `axis` and leaves the result's shape as it is: it has no more dimensions, and all its
/// dimensions are 1 except the one aligned with `axis`, which is 1 or `size`.
func broadcastsOnlyAlong(_ shape: [Int], axis: Int, size: Int, rank: Int) -> Bool {
    guard shape.count <= rank else { return false }
    for (j, d) in shape.enumerated() where d != 1 {
        guard rank - shape.count + j == axis, d == size else { return false }
    }
    return true
}

/// Evaluates a default-domain op on constant tensors with the op set (nil when it fails).
func evaluate(_ op: String, _ inputs: [Tensor], attributes: [String: Attribute] = [:], opset: Int) -> Tensor? {
    guard let definition = OpRegistry.definition(of: OpName(op)) else { return nil }
    let context = EvalContext(op: OpName(op), opset: opset, attributes: attributes, outputCount: 1, inputs: inputs)
    return (try? definition.evaluate(context))?.first
}

/// Edits shared by the pattern passes.
enum PatternRewrite {
    /// The module's default-domain opset (what new instructions and constants follow).
    static func defaultOpset(_ module: Module) -> Int {
        module.opsets[""] ?? module.opsets["ai.onnx"] ?? OpRegistry.newestOpset
    }

    /// Runs `transform` on every nested region (innermost first) and then on `module.main`; the
    /// bodies of `glmc.Fused` groups only when `intoFused`. Returns whether any call changed something.
    static func eachFunction(in module: inout Module, intoFused: Bool,
                             _ transform: (inout Function, inout Module) throws -> Bool) rethrows -> Bool {
        var main = module.main
        module.main = Function(name: main.name) // so editing `main` copies nothing
        defer { module.main = main }
        return try visit(&main, &module, intoFused, transform)
    }

    private static func visit(_ f: inout Function, _ module: inout Module, _ intoFused: Bool,
                              _ transform: (inout Function, inout Module) throws -> Bool) rethrows -> Bool {
        var changed = false
        for i in f.body.indices where intoFused || f.body[i].op != FusedOps.fused {
            for key in f.body[i].attributes.keys.sorted() {
                switch f.body[i].attributes[key]! {
                case .graph(var g):
                    if try visit(&g, &module, intoFused, transform) { f.body[i].attributes[key] = .graph(g); changed = true }
                case .graphs(var gs):
                    var any = false
                    for j in gs.indices where try visit(&gs[j], &module, intoFused, transform) { any = true }
                    if any { f.body[i].attributes[key] = .graphs(gs); changed = true }
                default: break
                }
            }
        }
        if try transform(&f, &module) { changed = true }
        return changed
    }

    /// Replaces the instruction computing `output` by `replacement` (which must have `output` as its
    /// only result, so no use needs rewriting) and removes the other group members. The group must
    /// be closed (`PatternView.isClosed`); instructions after the group keep their relative order.
    static func replace(_ group: [Int], computing output: ValueID, with replacement: Instruction, in f: inout Function) {
        guard let last = group.first(where: { f.body[$0].results.contains(output) }) else { return }
        var inst = replacement
        inst.results = [output]
        f.body[last] = inst
        f.removeInstructions(at: Set(group).subtracting([last]))
        f.sortTopologically()
    }

    /// Fuses a matched group (plus its private one-element constants) into one `glmc.Fused` of
    /// `kind`, when that is safe: the group is closed apart from `output` and convex.
    @discardableResult
    static func fuse(_ group: [Int], computing output: ValueID, view: PatternView, kind: String,
                     in module: inout Module, _ f: inout Function) -> Bool {
        let members = view.withPrivateConstants(group)
        guard view.isClosed(members, output: output), Fusion.isConvex(members, in: f) else { return false }
        Fusion.fuse(members, in: &module, function: &f, kind: kind)
        return true
    }
}

extension Function {
    /// Appends a `Constant` holding `t` and returns its value. The body is out of order until the
    /// pass calls `sortTopologically()` (constants have no operands, so that always succeeds).
    mutating func appendConstant(_ t: Tensor, name: String, opset: Int) -> ValueID {
        let v = addValue(t.type, name: name)
        body.append(Instruction(op: .constant, opset: opset, operands: [], results: [v],
                                attributes: ["value": .tensor(t.tensorData)]))
        return v
    }

    /// `base`, or `base_N` for the smallest N that no value of the function is named yet ("" stays "").
    func freshName(_ base: String) -> String {
        guard !base.isEmpty else { return "" }
        let taken = Set(values.map(\.name))
        guard taken.contains(base) else { return base }
        var n = 1
        while taken.contains("\(base)_\(n)") { n += 1 }
        return "\(base)_\(n)"
    }
}
