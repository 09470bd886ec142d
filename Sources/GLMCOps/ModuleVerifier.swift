import GLMCIR

/// The full verifier: the IR's structural rules, plus for every instruction whose op glmc defines,
/// result types consistent with the op's shape inference and constants whose data matches their type.
public enum ModuleVerifier {
    public static func verify(_ module: Module) throws {
        try Verifier.verifyStructure(module)
        try verifyTypes(module.main)
    }

    static func verifyTypes(_ f: Function) throws {
        var constants: [ValueID: TensorData] = [:]
        var unchecked = Set<ValueID>()
        for inst in f.body {
            for body in inst.nestedFunctions { try verifyTypes(body) }
            if let data = inst.constantValue {
                let declared = f.type(of: inst.results[0])
                guard data.type == declared || (data.type.dtype == declared.dtype && data.type.shape.isCompatible(with: declared.shape)) else {
                    throw GLMCError("\(inst.displayName): constant of type \(data.type) is declared \(declared)")
                }
                constants[inst.results[0]] = data
                continue
            }
            // Unsupported ops have no inference; their results' types are the model's word, and
            // instructions reading them cannot be checked either.
            guard let definition = OpRegistry.definition(of: inst.op),
                  definition.schemaVersion(forOpset: inst.opset) != nil,
                  !inst.operands.contains(where: { $0.map { unchecked.contains($0) } ?? false }) else {
                unchecked.formUnion(inst.results)
                continue
            }
            let context = InferenceContext(op: inst.op, nodeName: inst.nodeName, opset: inst.opset,
                                           attributes: inst.attributes, outputCount: inst.results.count,
                                           inputTypes: inst.operands.map { $0.map { f.type(of: $0) } },
                                           constantInputs: inst.operands.map { $0.flatMap { constants[$0] } })
            let inferred = try definition.infer(context)
            guard inferred.count == inst.results.count else {
                throw GLMCError("\(inst.displayName): has \(inst.results.count) results, its op gives \(inferred.count)")
            }
            for (r, t) in zip(inst.results, inferred) where !f.type(of: r).isCompatible(with: t) {
                throw GLMCError("\(inst.displayName): result '\(f.name(of: r))' is declared \(f.type(of: r)), but its operands give \(t)")
            }
        }
    }
}
