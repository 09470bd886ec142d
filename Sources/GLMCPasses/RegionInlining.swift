import GLMCIR
import GLMCOps

/// Copying a nested region (an If branch, a Loop or Scan body) into the function around it, for the
/// passes that replace control flow by straight-line code (inline-constant-if, unroll-loops).
///
/// A region is a closed function with its own value numbering: its arguments and captures stand for
/// values of the enclosing function. Inlining binds them (captures to their outer values, arguments
/// to the values given), gives every result a fresh value of the enclosing function, and renames the
/// operands — and the outer side of the captures of regions nested deeper — accordingly. The copied
/// instructions keep their op, opset, attributes and node names.
enum RegionInlining {
    /// One copy of a region into the enclosing function `f`, made instruction by instruction so that
    /// the caller can process each copied instruction (inline or unroll it in turn) before the next
    /// is copied: `rename` — the caller's renaming of results it replaced — then applies to the
    /// instructions after it, and their types are inferred from what the operands have become.
    struct Copy {
        let region: Function
        let nameSuffix: String
        /// Region value → value of `f`.
        private var map: [ValueID: ValueID] = [:]

        /// Binds the region's captures to their outer values and its arguments to `arguments` (values
        /// of `f`). `nameSuffix` is appended to the copied values' source names, so that the copies
        /// of one body in different iterations stay apart ("h" → "h_iter2"); empty names stay empty.
        init(_ region: Function, arguments: [ValueID], nameSuffix: String = "") {
            self.region = region
            self.nameSuffix = nameSuffix
            for c in region.captures { map[c.inner] = c.outer }
            for (a, v) in zip(region.arguments, arguments) { map[a] = v }
        }

        /// A copy of `original` (an instruction of the region) as an instruction of `f`, with fresh
        /// result values. Result types are inferred again from the operands' types in `f` (and the
        /// constants known in `constants`, which a copied constant joins): a body's declared types
        /// describe every iteration at once (a loop-carried value that grows has a `?` there), the
        /// copy is one iteration. The declared type fills in what inference leaves open.
        mutating func copy(_ original: Instruction, into f: inout Function, constants: inout [ValueID: TensorData],
                           rename: [ValueID: ValueID]) -> Instruction {
            var inst = original
            Folding.rename(&inst, map)
            Folding.rename(&inst, rename)
            let inferred = original.constantValue == nil ? RegionInlining.inferredTypes(of: inst, in: f, constants: constants) : nil
            var results: [ValueID] = []
            for (k, r) in original.results.enumerated() {
                let declared = region.type(of: r)
                var type = declared
                if let inferred, k < inferred.count {
                    let t = inferred[k]
                    type = t.isCompatible(with: declared) ? TensorType(t.dtype, t.shape.refined(by: declared.shape)) : t
                }
                let name = region.name(of: r)
                let v = f.addValue(type, name: name.isEmpty ? "" : name + nameSuffix)
                map[r] = v
                results.append(v)
            }
            inst.results = results
            if let c = inst.constantValue { constants[results[0]] = c }
            return inst
        }

        /// The values of `f` the region's outputs became (after all instructions were copied).
        func outputs(rename: [ValueID: ValueID]) -> [ValueID] {
            region.outputs.map { v in map[v].map { rename[$0] ?? $0 } ?? v }
        }
    }

    /// What shape inference gives for `inst`'s results with the operand types of `f` (nil when the
    /// op is unknown or inference fails).
    static func inferredTypes(of inst: Instruction, in f: Function, constants: [ValueID: TensorData]) -> [TensorType]? {
        guard let definition = OpRegistry.definition(of: inst.op),
              definition.schemaVersion(forOpset: inst.opset) != nil else { return nil }
        let context = InferenceContext(op: inst.op, nodeName: inst.nodeName, opset: inst.opset, attributes: inst.attributes,
                                       outputCount: inst.results.count,
                                       inputTypes: inst.operands.map { $0.map { f.type(of: $0) } },
                                       constantInputs: inst.operands.map { $0.flatMap { constants[$0] } })
        guard let inferred = try? definition.infer(context), inferred.count == inst.results.count else { return nil }
        return inferred
    }

    /// Makes `replacement` stand for the control-flow result `result` from here on: readers are
    /// renamed through `rename`; the replacement's type takes what the result's declared type knows
    /// more of; a value the inlining created takes the result's source name (the tensor name the
    /// model gave it), as folding passes do.
    static func replace(_ result: ValueID, by replacement: ValueID, in f: inout Function,
                        rename: inout [ValueID: ValueID], createdFrom firstNew: Int) {
        rename[result] = replacement
        let declared = f.type(of: result), now = f.type(of: replacement)
        if declared.isCompatible(with: now) {
            f.values[replacement.index].type = TensorType(now.dtype, now.shape.refined(by: declared.shape))
        }
        if replacement.index >= firstNew, !f.name(of: result).isEmpty {
            f.values[replacement.index].name = f.name(of: result)
        }
    }

    /// Whether `inst` is the default-domain control-flow op `type` ("If", "Loop", "Scan").
    static func isOp(_ inst: Instruction, _ type: String) -> Bool {
        inst.op.type == type && (inst.op.domain.isEmpty || inst.op.domain == "ai.onnx")
    }

    /// The graph attribute `name` of `inst`.
    static func graph(_ inst: Instruction, _ name: String) -> Function? {
        if case .graph(let g)? = inst.attributes[name] { return g }
        return nil
    }

    /// The single element of a constant as a truth value or integer (nil when it is not a
    /// one-element, non-elided constant of a numeric or bool type).
    static func scalar(_ v: ValueID?, _ constants: [ValueID: TensorData]) -> Double? {
        guard let v, let data = constants[v], !data.isElided, data.elementCount == 1,
              let t = try? Tensor(data), t.count == 1 else { return nil }
        return t.doubles[0]
    }
}
