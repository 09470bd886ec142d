import GLMCIR
import GLMCInterpreter
import GLMCOps

/// Helpers shared by the folding and simplification passes (constant-fold, fold-shape-computations,
/// cse, simplify): walking nested regions, evaluating instructions on constants, turning results
/// into `const` instructions, tightening declared types with shape inference, and renaming values.
enum Folding {
    // MARK: Walking functions

    /// Applies `transform` to every nested region of `f` (innermost first), then to `f` itself.
    /// Returns whether any call changed something.
    @discardableResult
    static func forEachFunction(_ f: inout Function, _ transform: (inout Function) throws -> Bool) rethrows -> Bool {
        var changed = false
        for i in f.body.indices {
            for key in f.body[i].attributes.keys.sorted() {
                switch f.body[i].attributes[key]! {
                case .graph(var g):
                    if try forEachFunction(&g, transform) { f.body[i].attributes[key] = .graph(g); changed = true }
                case .graphs(var gs):
                    var any = false
                    for j in gs.indices where try forEachFunction(&gs[j], transform) { any = true }
                    if any { f.body[i].attributes[key] = .graphs(gs); changed = true }
                default: break
                }
            }
        }
        if try transform(&f) { changed = true }
        return changed
    }

    // MARK: Ops that must not be evaluated or merged

    /// Ops whose results are drawn at random: folding or merging them would fix one draw.
    static let randomOps: Set<String> = [
        "RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Bernoulli", "Multinomial",
    ]

    /// Whether `inst` (or anything in its nested regions) may give different results on different
    /// runs: random ops and Dropout in training mode (unless its training flag is a constant false).
    static func hasRandomOutput(_ inst: Instruction, constants: [ValueID: TensorData] = [:]) -> Bool {
        if inst.op.domain.isEmpty || inst.op.domain == "ai.onnx" {
            if randomOps.contains(inst.op.type) { return true }
            if inst.op.type == "Dropout", !isInferenceDropout(inst, constants: constants) { return true }
        }
        return inst.nestedFunctions.contains { g in g.body.contains { hasRandomOutput($0) } }
    }

    /// Dropout that is a plain copy: opset ≥ 12 without a training_mode operand or with a constant
    /// false one; opset 7-11 always (training was left to the runtime, glmc runs inference); before 7
    /// when `is_test` is set.
    static func isInferenceDropout(_ inst: Instruction, constants: [ValueID: TensorData]) -> Bool {
        if inst.opset >= 12 {
            guard inst.operands.count > 2, let mode = inst.operands[2] else { return true }
            guard let data = constants[mode], let t = try? Tensor(data) else { return false }
            return t.doubles.allSatisfy { $0 == 0 }
        }
        if inst.opset >= 7 { return true }
        guard case .int(let isTest)? = inst.attributes["is_test"] else { return false }
        return isTest != 0
    }

    // MARK: Constants

    /// The constants defined in `f`'s body, by value.
    static func constants(in f: Function) -> [ValueID: TensorData] {
        var map: [ValueID: TensorData] = [:]
        for inst in f.body { if let c = inst.constantValue { map[inst.results[0]] = c } }
        return map
    }

    /// Bytes a tensor takes as a constant (strings count their UTF-8 length).
    static func byteSize(_ t: Tensor) -> Int {
        if case .string(let s) = t.storage { return s.reduce(0) { $0 + $1.utf8.count } }
        return t.count * t.dtype.byteSize
    }

    /// Bytes of a type's data when its shape is static (nil otherwise, or on overflow).
    static func byteSize(_ t: TensorType) -> Int? {
        guard let sizes = t.shape.staticSizes, let n = checkedElementCount(sizes) else { return nil }
        let (bytes, overflow) = n.multipliedReportingOverflow(by: max(t.dtype.byteSize, 1))
        return overflow ? nil : bytes
    }

    /// The results of `inst` computed from constant operands, or nil when it cannot or must not be
    /// folded: an operand or captured value is not a constant, the op is random, fused or unknown,
    /// evaluation fails, a result would exceed `limit` bytes or does not fit its declared type.
    static func evaluate(_ inst: Instruction, in f: Function, constants: [ValueID: TensorData], limit: Int) -> [Tensor]? {
        guard inst.op != FusedOps.fused, !hasRandomOutput(inst, constants: constants),
              let definition = OpRegistry.definition(of: inst.op),
              definition.schemaVersion(forOpset: inst.opset) != nil else { return nil }
        var inputs: [Tensor?] = []
        var inputData: [TensorData?] = []
        for operand in inst.operands {
            guard let v = operand else { inputs.append(nil); inputData.append(nil); continue }
            guard let data = constants[v], let t = try? Tensor(data) else { return nil }
            inputs.append(t)
            inputData.append(data)
        }
        // Values the nested regions capture must be constants too; they are bound by outer value.
        var captured: [ValueID: Tensor] = [:]
        for g in inst.nestedFunctions {
            for c in g.captures {
                guard let data = constants[c.outer], let t = try? Tensor(data) else { return nil }
                captured[c.outer] = t
            }
        }
        // Refuse up front what inference already shows to be too large, before computing it.
        let inference = InferenceContext(op: inst.op, nodeName: inst.nodeName, opset: inst.opset, attributes: inst.attributes,
                                         outputCount: inst.results.count, inputTypes: inst.operands.map { $0.map { f.type(of: $0) } },
                                         constantInputs: inputData)
        if let inferred = try? definition.infer(inference) {
            for t in inferred { if let bytes = byteSize(t), bytes > limit { return nil } }
        }
        for r in inst.results { if let bytes = byteSize(f.type(of: r)), bytes > limit { return nil } }
        let context = EvalContext(
            op: inst.op, nodeName: inst.nodeName, opset: inst.opset, attributes: inst.attributes,
            outputCount: inst.results.count, inputs: inputs,
            runSubgraph: { body, arguments in
                let values = try body.captures.map { c -> Tensor in
                    guard let t = captured[c.outer] else { throw GLMCError("captured value is not a constant") }
                    return t
                }
                return try Interpreter.run(body, arguments: arguments, captured: values)
            })
        guard let results = try? definition.evaluate(context), results.count >= inst.results.count else { return nil }
        let used = Array(results.prefix(inst.results.count))
        for (r, t) in zip(inst.results, used) {
            let declared = f.type(of: r)
            guard declared.dtype == t.dtype, declared.shape.isCompatible(with: Shape(static: t.shape)),
                  byteSize(t) <= limit else { return nil }
        }
        return used
    }

    /// `const` instructions defining `results` (the ids of the instruction they replace) as `tensors`;
    /// the values' types become the tensors' static types, their names stay.
    static func constantInstructions(for results: [ValueID], tensors: [Tensor], in f: inout Function,
                                     opset: Int, nodeName: String) -> [Instruction] {
        zip(results, tensors).map { r, t in
            f.values[r.index].type = t.type
            return Instruction(op: .constant, opset: opset, operands: [], results: [r],
                               attributes: ["value": .tensor(t.tensorData)], nodeName: nodeName)
        }
    }

    /// The opset version new `Constant` instructions use: the module's default-domain version.
    static func constantOpset(_ module: Module) -> Int {
        module.opsets[""] ?? module.opsets["ai.onnx"] ?? OpRegistry.newestOpset
    }

    // MARK: Type refinement

    /// Re-runs shape inference over `f`'s body in order (with the constants now known) and tightens
    /// every declared result type that inference knows more about: a Reshape whose target became a
    /// constant gets a static type, a `?` becomes `?batch`. Results whose declared type disagrees with
    /// inference, and ops without a definition, are left alone. Returns how many types changed.
    @discardableResult
    static func refineTypes(in f: inout Function) -> Int {
        var constants: [ValueID: TensorData] = [:]
        var count = 0
        for inst in f.body {
            if let c = inst.constantValue { constants[inst.results[0]] = c; continue }
            guard let definition = OpRegistry.definition(of: inst.op),
                  definition.schemaVersion(forOpset: inst.opset) != nil else { continue }
            let context = InferenceContext(op: inst.op, nodeName: inst.nodeName, opset: inst.opset, attributes: inst.attributes,
                                           outputCount: inst.results.count,
                                           inputTypes: inst.operands.map { $0.map { f.type(of: $0) } },
                                           constantInputs: inst.operands.map { $0.flatMap { constants[$0] } })
            guard let inferred = try? definition.infer(context), inferred.count == inst.results.count else { continue }
            for (r, t) in zip(inst.results, inferred) {
                let declared = f.type(of: r)
                guard declared.isCompatible(with: t) else { continue }
                let refined = TensorType(declared.dtype, declared.shape.refined(by: t.shape))
                if refined != declared { f.values[r.index].type = refined; count += 1 }
            }
        }
        return count
    }

    // MARK: Renaming values

    /// Applies `rename` (old value → replacement) to `inst`'s operands and to the outer side of its
    /// nested regions' captures.
    static func rename(_ inst: inout Instruction, _ rename: [ValueID: ValueID]) {
        guard !rename.isEmpty else { return }
        for k in inst.operands.indices { if let v = inst.operands[k], let n = rename[v] { inst.operands[k] = n } }
        for key in inst.attributes.keys {
            switch inst.attributes[key]! {
            case .graph(var g):
                if renameCaptures(&g, rename) { inst.attributes[key] = .graph(g) }
            case .graphs(var gs):
                var changed = false
                for j in gs.indices where renameCaptures(&gs[j], rename) { changed = true }
                if changed { inst.attributes[key] = .graphs(gs) }
            default: break
            }
        }
    }

    private static func renameCaptures(_ g: inout Function, _ rename: [ValueID: ValueID]) -> Bool {
        var changed = false
        for k in g.captures.indices { if let n = rename[g.captures[k].outer] { g.captures[k].outer = n; changed = true } }
        return changed
    }

    /// Applies `rename` to the function's outputs (their source names stay).
    static func renameOutputs(_ f: inout Function, _ rename: [ValueID: ValueID]) {
        for k in f.outputs.indices { if let n = rename[f.outputs[k]] { f.outputs[k] = n } }
    }

    // MARK: Reading operands

    /// An integer list given either as an attribute (older opsets) or a constant operand.
    static func ints(_ inst: Instruction, operand i: Int, constants: [ValueID: TensorData]) -> [Int]?? {
        guard i < inst.operands.count, let v = inst.operands[i] else { return .some(nil) }
        guard let data = constants[v], data.dtype.isInteger, !data.isElided, let values = data.integers(),
              values.count == data.elementCount else { return nil }
        return .some(values)
    }

    static func intsAttribute(_ inst: Instruction, _ name: String) -> [Int]?? {
        switch inst.attributes[name] {
        case nil: return .some(nil)
        case .ints(let v)?: return .some(v)
        default: return nil
        }
    }

    /// Slice's constant bounds: attributes before opset 10, operands 1-4 since (axes and steps may be
    /// absent). Nil when starts/ends are missing or something is not a constant.
    static func sliceBounds(_ inst: Instruction, constants: [ValueID: TensorData])
        -> (starts: [Int], ends: [Int], axes: [Int]?, steps: [Int]?)? {
        let starts, ends, axes, steps: [Int]?
        if inst.opset < 10 {
            guard let s = intsAttribute(inst, "starts"), let e = intsAttribute(inst, "ends"),
                  let a = intsAttribute(inst, "axes") else { return nil }
            (starts, ends, axes, steps) = (s, e, a, nil)
        } else {
            guard let s = ints(inst, operand: 1, constants: constants), let e = ints(inst, operand: 2, constants: constants),
                  let a = ints(inst, operand: 3, constants: constants), let st = ints(inst, operand: 4, constants: constants)
            else { return nil }
            (starts, ends, axes, steps) = (s, e, a, st)
        }
        guard let starts, let ends, ends.count == starts.count else { return nil }
        return (starts, ends, axes, steps)
    }

    /// Reshape's allowzero (opset 14): a 0 in the target is a real 0 rather than "copy the input
    /// dim". Nil when the attribute is not an INT.
    static func reshapeAllowsZero(_ inst: Instruction) -> Bool? {
        switch inst.attributes["allowzero"] {
        case nil: return false
        case .int(let v)?: return inst.opset >= 14 && v != 0
        default: return nil
        }
    }
}
