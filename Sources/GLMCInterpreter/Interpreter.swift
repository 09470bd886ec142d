import GLMCIR
import GLMCOps

/// The reference interpreter: runs a function instruction by instruction with the op set's
/// semantics. Tensors are released after their last use, so peak memory follows liveness.
public enum Interpreter {
    /// Runs `module.main` on `inputs` (in argument order). Inputs are checked against the argument
    /// types first; a symbolic dimension must have one size across all inputs.
    public static func run(_ module: Module, inputs: [Tensor]) throws -> [Tensor] {
        let f = module.main
        guard inputs.count == f.arguments.count else {
            throw GLMCError("the model has \(f.arguments.count) runtime input\(f.arguments.count == 1 ? "" : "s"), \(inputs.count) given")
        }
        var symbols: [String: Int] = [:]
        for (arg, tensor) in zip(f.arguments, inputs) {
            try checkInput(tensor, against: f.type(of: arg), name: f.name(of: arg), symbols: &symbols)
        }
        return try run(f, arguments: inputs, captured: [])
    }

    /// Checks one runtime input against its declared type; both appear in the message.
    public static func checkInput(_ t: Tensor, against type: TensorType, name: String, symbols: inout [String: Int]) throws {
        let label = name.isEmpty ? "input" : "input '\(name)'"
        guard t.dtype == type.dtype else {
            throw GLMCError("\(label) expects \(type) but was given \(t.type)")
        }
        guard let dims = type.shape.dims else { return }
        guard dims.count == t.shape.count else {
            throw GLMCError("\(label) expects \(type) but was given \(t.type) (rank \(t.shape.count) instead of \(dims.count))")
        }
        for (d, size) in zip(dims, t.shape) {
            switch d {
            case .known(let v) where v != size:
                throw GLMCError("\(label) expects \(type) but was given \(t.type)")
            case .symbol(let s):
                if let bound = symbols[s], bound != size {
                    throw GLMCError("\(label) expects \(type) but was given \(t.type): ?\(s) is already \(bound)")
                }
                symbols[s] = size
            default: break
            }
        }
    }

    /// Runs one function (the main one or a nested region) on argument and capture tensors.
    public static func run(_ f: Function, arguments: [Tensor], captured: [Tensor]) throws -> [Tensor] {
        guard arguments.count == f.arguments.count else {
            throw GLMCError("graph '\(f.name)' takes \(f.arguments.count) arguments, \(arguments.count) given")
        }
        var env = [Tensor?](repeating: nil, count: f.values.count)
        for (id, t) in zip(f.arguments, arguments) { env[id.index] = t }
        for (c, t) in zip(f.captures, captured) { env[c.inner.index] = t }

        // Index of the last instruction reading each value; outputs are never released.
        var lastUse = [Int](repeating: -1, count: f.values.count)
        for (i, inst) in f.body.enumerated() {
            for case let v? in inst.operands { lastUse[v.index] = i }
            for body in inst.nestedFunctions { for c in body.captures { lastUse[c.outer.index] = i } }
        }
        for v in f.outputs { lastUse[v.index] = Int.max }

        for (i, inst) in f.body.enumerated() {
            let results: [Tensor]
            if let value = inst.constantValue {
                results = [try Tensor(value)]
            } else {
                results = try evaluate(inst, in: f, env: env)
            }
            guard results.count >= inst.results.count else {
                throw GLMCError("\(inst.displayName): produced \(results.count) results, expected \(inst.results.count)")
            }
            for (id, t) in zip(inst.results, results) {
                let declared = f.type(of: id)
                guard declared.dtype == t.dtype, declared.shape.isCompatible(with: Shape(static: t.shape)) else {
                    throw GLMCError("\(inst.displayName): computed \(t.type) for '\(f.name(of: id))', but its type is \(declared)")
                }
                env[id.index] = t
            }
            for case let v? in inst.operands where lastUse[v.index] == i { env[v.index] = nil }
            for body in inst.nestedFunctions { for c in body.captures where lastUse[c.outer.index] == i { env[c.outer.index] = nil } }
        }
        return try f.outputs.map { id in
            guard let t = env[id.index] else { throw GLMCError("graph '\(f.name)': output '\(f.name(of: id))' was not computed") }
            return t
        }
    }

    /// Results larger than this are refused before any kernel allocates them (a hostile model can
    /// ask for a legal but enormous Resize or Expand).
    public static let maxResultBytes = 8 << 30

    static func evaluate(_ inst: Instruction, in f: Function, env: [Tensor?]) throws -> [Tensor] {
        for r in inst.results {
            let t = f.type(of: r)
            if let sizes = t.shape.staticSizes {
                let bytes = checkedElementCount(sizes + [max(t.dtype.byteSize, 1)])
                if bytes == nil || bytes! > maxResultBytes {
                    throw GLMCError("\(inst.displayName): result '\(f.name(of: r))' of type \(t) is too large to compute (limit \(maxResultBytes >> 30) GiB)")
                }
            }
        }
        guard let definition = OpRegistry.definition(of: inst.op) else {
            throw GLMCError("\(inst.displayName): unsupported op \(inst.op)")
        }
        guard definition.schemaVersion(forOpset: inst.opset) != nil else {
            throw GLMCError("\(inst.displayName): unsupported: \(inst.op) does not exist in opset \(inst.opset)")
        }
        let inputs = inst.operands.map { $0.flatMap { env[$0.index] } }
        let context = EvalContext(
            op: inst.op, nodeName: inst.nodeName, opset: inst.opset, attributes: inst.attributes,
            outputCount: inst.results.count, inputs: inputs,
            runSubgraph: { body, args in
                let captured = try body.captures.map { c -> Tensor in
                    guard let t = env[c.outer.index] else {
                        throw GLMCError("\(inst.displayName): captured value '\(f.name(of: c.outer))' is not available")
                    }
                    return t
                }
                return try run(body, arguments: args, captured: captured)
            })
        return try definition.evaluate(context)
    }
}
