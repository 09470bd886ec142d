#if canImport(Glibc)
import Glibc
#endif
import CONNXProto
import GLMCIR
import GLMCOps

/// Reads ONNX models into the IR. Decoding is done by protobuf-c's generated code for the
/// `onnx.proto` that Debian's libonnx-dev ships; this file only walks the decoded message.
///
/// Nodes are imported in topological order (the file's order when it is one), model-local functions
/// are inlined, `Constant` nodes and initializers become `const` instructions, and every result type
/// is the op's shape inference refined by the model's `value_info` hints.
public enum ONNXImporter {
    /// Imports the model at `path`. With `allowUnsupported`, ops glmc lacks are kept (typed from the
    /// model's hints) and listed in the result instead of failing the import.
    public static func importModel(path: String, allowUnsupported: Bool = false) throws -> ImportResult {
        let file = try ByteStorage.mapping(path: path)
        guard file.count > 0 else { throw GLMCError("\(path): the file is empty") }
        let directory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        return try importModel(bytes: file.bytes, baseDirectory: directory.isEmpty ? "/" : directory,
                               allowUnsupported: allowUnsupported)
    }

    public static func importModel(bytes: UnsafeRawBufferPointer, baseDirectory: String,
                                   allowUnsupported: Bool = false) throws -> ImportResult {
        guard let base = bytes.baseAddress, bytes.count > 0 else { throw GLMCError("the model is empty") }
        guard let message = onnx__model_proto__unpack(nil, bytes.count, base.assumingMemoryBound(to: UInt8.self)) else {
            throw GLMCError("not a valid ONNX model: protobuf decoding failed (truncated or not an ONNX file)")
        }
        // Tensors may point into the decoded message; it is freed when the last of them goes away.
        let owner = ByteStorage.wrapping(base: UnsafeRawPointer(message), count: 0) { p, _ in
            onnx__model_proto__free_unpacked(UnsafeMutablePointer(mutating: p!.assumingMemoryBound(to: Onnx__ModelProto.self)), nil)
        }
        let importer = Importer(decoder: ONNXTensorDecoder(baseDirectory: baseDirectory, messageOwner: owner),
                                allowUnsupported: allowUnsupported)
        return try importer.importModel(message.pointee)
    }
}

/// Walks one decoded model. A class because it accumulates unsupported-op records and the
/// name tables of the graphs being built.
private final class Importer {
    let decoder: ONNXTensorDecoder
    let allowUnsupported: Bool
    var functions: [OpName: UnsafePointer<Onnx__FunctionProto>] = [:]
    var inlineCounter = 0

    init(decoder: ONNXTensorDecoder, allowUnsupported: Bool) {
        self.decoder = decoder
        self.allowUnsupported = allowUnsupported
    }

    func importModel(_ m: Onnx__ModelProto) throws -> ImportResult {
        guard let graph = m.graph else { throw GLMCError("not a valid ONNX model: it has no graph") }
        guard (m.has_ir_version != 0) else { throw GLMCError("not a valid ONNX model: it has no ir_version") }
        let opsets = try opsetMap(count: m.n_opset_import, m.opset_import, what: "the model")
        for i in 0 ..< m.n_functions {
            guard let f = m.functions[i] else { continue }
            functions[OpName(string(f.pointee.name), domain: normalizedDomain(string(f.pointee.domain)))] = UnsafePointer(f)
        }
        var metadata: [String: String] = ["ir_version": String(m.ir_version)]
        for (key, value) in [("producer_name", m.producer_name), ("producer_version", m.producer_version), ("domain", m.domain)] {
            let v = string(value)
            if !v.isEmpty { metadata[key] = v }
        }
        if (m.has_model_version != 0) { metadata["model_version"] = String(m.model_version) }
        for i in 0 ..< m.n_metadata_props {
            guard let e = m.metadata_props[i]?.pointee else { continue }
            metadata["meta." + string(e.key)] = string(e.value)
        }

        let builder = GraphBuilder(name: string(graph.pointee.name).isEmpty ? "main" : string(graph.pointee.name),
                                   parent: nil, opsets: opsets)
        try importGraph(graph.pointee, into: builder, isMain: true)
        let module = Module(opsets: opsets, main: builder.function, metadata: metadata)
        return try ImportResult(checking: module, allowUnsupported: allowUnsupported)
    }

    // MARK: Opsets

    func opsetMap(count: Int, _ list: UnsafeMutablePointer<UnsafeMutablePointer<Onnx__OperatorSetIdProto>?>?,
                  what: String) throws -> [String: Int] {
        var map: [String: Int] = [:]
        for i in 0 ..< count {
            guard let entry = list?[i]?.pointee else { continue }
            let domain = normalizedDomain(string(entry.domain))
            let version = Int(entry.version)
            if domain.isEmpty, version < 1 || version > OpRegistry.newestOpset {
                throw GLMCError("unsupported opset version \(version) of the default ONNX domain in \(what) (glmc knows 1 to \(OpRegistry.newestOpset))")
            }
            map[domain] = version
        }
        if map.isEmpty { map[""] = 1 } // ONNX: no opset_import means opset 1 of the default domain
        return map
    }

    // MARK: Graphs

    /// `argumentTypes`: for bodies of Loop and Scan, the types their inputs must have, used when the
    /// body's inputs carry no type of their own (ONNX allows that in subgraphs).
    func importGraph(_ g: Onnx__GraphProto, into b: GraphBuilder, isMain: Bool, argumentTypes: [TensorType?] = []) throws {
        if g.n_sparse_initializer > 0 { throw GLMCError("unsupported: sparse initializers (graph '\(b.function.name)')") }
        var hints: [String: TensorType] = [:]
        for (count, list) in [(g.n_value_info, g.value_info), (g.n_output, g.output)] {
            for i in 0 ..< count {
                guard let vi = list?[i]?.pointee, let t = try? tensorType(vi.type, name: string(vi.name)) else { continue }
                hints[string(vi.name)] = t
            }
        }
        // Initializers are constants, even when they also appear among the inputs (ONNX IR >= 4).
        var initializerNames = Set<String>()
        for i in 0 ..< g.n_initializer {
            guard let t = g.initializer[i] else { continue }
            let name = string(t.pointee.name)
            guard !name.isEmpty else { throw GLMCError("an initializer of graph '\(b.function.name)' has no name") }
            guard initializerNames.insert(name).inserted else { throw GLMCError("initializer '\(name)' is defined twice") }
            let data = try decoder.decode(t, what: "initializer")
            b.defineConstant(data, name: name)
        }
        for i in 0 ..< g.n_input {
            guard let vi = g.input[i]?.pointee else { continue }
            let name = string(vi.name)
            if initializerNames.contains(name) { continue }
            guard b.names[name] == nil else { throw GLMCError("graph input '\(name)' is defined twice") }
            let fallback = b.function.arguments.count < argumentTypes.count ? argumentTypes[b.function.arguments.count] : nil
            guard let type = try tensorType(vi.type, name: name, required: fallback == nil) ?? fallback else {
                throw GLMCError("unsupported: value '\(name)' has no type")
            }
            let id = b.function.addValue(type, name: name)
            b.function.arguments.append(id)
            b.names[name] = id
        }
        let nodes = (0 ..< g.n_node).compactMap { g.node[$0].map { UnsafePointer($0) } }
        for node in try topologicalOrder(nodes, graph: b) {
            try importNode(node, into: b, hints: hints, functionScope: nil)
        }
        for i in 0 ..< g.n_output {
            guard let vi = g.output[i]?.pointee else { continue }
            let name = string(vi.name)
            guard let id = b.lookup(name) else {
                throw GLMCError("graph output '\(name)' is not produced by any node, input or initializer")
            }
            if let declared = hints[name], !declared.isCompatible(with: b.function.type(of: id)) {
                throw GLMCError("graph output '\(name)' is declared \(declared) but computed as \(b.function.type(of: id))")
            }
            if let declared = hints[name] { b.function.values[id.index].type = b.function.type(of: id).refinedBy(declared) }
            b.function.outputs.append(id)
            b.function.outputNames.append(name)
        }
    }

    /// Nodes in an order where producers come first. Keeps the file's order when it already is one;
    /// otherwise a stable Kahn sort. Reports cycles and tensors defined twice.
    func topologicalOrder(_ nodes: [UnsafePointer<Onnx__NodeProto>], graph b: GraphBuilder) throws -> [UnsafePointer<Onnx__NodeProto>] {
        var producer: [String: Int] = [:]
        for (i, n) in nodes.enumerated() {
            for k in 0 ..< n.pointee.n_output {
                let name = string(n.pointee.output[k])
                if name.isEmpty { continue }
                if let j = producer[name] {
                    throw GLMCError("tensor '\(name)' is defined twice (by node '\(nodeName(nodes[j]))' and node '\(nodeName(n))')")
                }
                if b.names[name] != nil {
                    throw GLMCError("tensor '\(name)' is defined twice (a graph input or initializer, and node '\(nodeName(n))')")
                }
                producer[name] = i
            }
        }
        var dependencies: [[Int]] = []
        dependencies.reserveCapacity(nodes.count)
        var sorted = true
        for (i, n) in nodes.enumerated() {
            var deps: [Int] = []
            for name in inputNames(of: n) { if let j = producer[name], j != i { deps.append(j) } }
            for k in 0 ..< n.pointee.n_input {
                let name = string(n.pointee.input[k])
                if producer[name] == i { throw GLMCError("node '\(nodeName(n))' (\(string(n.pointee.op_type))) reads its own output '\(name)': a cycle") }
            }
            if deps.contains(where: { $0 > i }) { sorted = false }
            dependencies.append(deps)
        }
        if sorted { return nodes }

        var users = [[Int]](repeating: [], count: nodes.count)
        var pending = [Int](repeating: 0, count: nodes.count)
        for (i, deps) in dependencies.enumerated() {
            pending[i] = deps.count
            for d in deps { users[d].append(i) }
        }
        var ready = MinHeap()
        for i in 0 ..< nodes.count where pending[i] == 0 { ready.push(i) }
        var order: [UnsafePointer<Onnx__NodeProto>] = []
        order.reserveCapacity(nodes.count)
        while let i = ready.pop() {
            order.append(nodes[i])
            for u in users[i] {
                pending[u] -= 1
                if pending[u] == 0 { ready.push(u) }
            }
        }
        if order.count < nodes.count, let stuck = pending.firstIndex(where: { $0 > 0 }) {
            throw GLMCError("the graph has a cycle through node '\(nodeName(nodes[stuck]))' (\(string(nodes[stuck].pointee.op_type)))")
        }
        return order
    }

    /// Names a node reads: its inputs, plus the outer names its subgraphs use.
    func inputNames(of n: UnsafePointer<Onnx__NodeProto>) -> [String] {
        var names = (0 ..< n.pointee.n_input).map { string(n.pointee.input[$0]) }.filter { !$0.isEmpty }
        for a in 0 ..< n.pointee.n_attribute {
            guard let attr = n.pointee.attribute[a]?.pointee else { continue }
            if let g = attr.g { names += freeNames(g.pointee) }
            for k in 0 ..< attr.n_graphs { if let g = attr.graphs[k] { names += freeNames(g.pointee) } }
        }
        return names
    }

    /// Names a subgraph reads from enclosing scopes.
    func freeNames(_ g: Onnx__GraphProto) -> [String] {
        var defined = Set<String>()
        for i in 0 ..< g.n_input { if let v = g.input[i] { defined.insert(string(v.pointee.name)) } }
        for i in 0 ..< g.n_initializer { if let t = g.initializer[i] { defined.insert(string(t.pointee.name)) } }
        for i in 0 ..< g.n_node { if let n = g.node[i] { for k in 0 ..< n.pointee.n_output { defined.insert(string(n.pointee.output[k])) } } }
        var free: [String] = []
        for i in 0 ..< g.n_node {
            guard let n = g.node[i] else { continue }
            for name in inputNames(of: UnsafePointer(n)) where !defined.contains(name) { free.append(name) }
        }
        for i in 0 ..< g.n_output { if let v = g.output[i] { let name = string(v.pointee.name); if !defined.contains(name) { free.append(name) } } }
        return free
    }

    // MARK: Nodes

    /// The scope of a model-local function being inlined: its formal names, opsets and the caller's
    /// attributes (for `ref_attr_name`).
    struct FunctionScope {
        var opsets: [String: Int]
        var callerAttributes: [String: Attribute]
        var prefix: String
        var depth: Int
    }

    func importNode(_ nodePointer: UnsafePointer<Onnx__NodeProto>, into b: GraphBuilder,
                    hints: [String: TensorType], functionScope: FunctionScope?) throws {
        let n = nodePointer.pointee
        let name = string(n.name)
        let opType = string(n.op_type)
        let domain = normalizedDomain(string(n.domain))
        let op = OpName(opType, domain: domain)
        let label = name.isEmpty ? "a \(op) node" : "node '\(name)' (\(op))"
        guard !opType.isEmpty else { throw GLMCError("\(name.isEmpty ? "a node" : "node '\(name)'") has no op_type") }
        let opsets = functionScope?.opsets ?? b.opsets
        guard let opset = opsets[domain] else {
            throw GLMCError("\(label) uses domain '\(domain)', which the model does not import")
        }

        var operands: [ValueID?] = []
        for k in 0 ..< n.n_input {
            let inputName = string(n.input[k])
            if inputName.isEmpty { operands.append(nil); continue }
            guard let id = b.lookup(inputName) else { throw GLMCError("\(label) reads undefined tensor '\(inputName)'") }
            operands.append(id)
        }
        let operandTypes = operands.map { $0.map { b.function.type(of: $0) } }
        let argumentTypes = bodyArgumentTypes(op: op, opset: opset, node: n, operandTypes: operandTypes)
        var attributes: [String: Attribute] = [:]
        for a in 0 ..< n.n_attribute {
            guard let attr = n.attribute[a] else { continue }
            let attrName = string(attr.pointee.name)
            if let value = try attribute(attr.pointee, label: label, graph: b, functionScope: functionScope,
                                         argumentTypes: argumentTypes) {
                attributes[attrName] = value
            }
        }
        var outputNames = (0 ..< n.n_output).map { string(n.output[$0]) }
        while outputNames.last == "" { outputNames.removeLast() }
        if outputNames.isEmpty { return } // nothing observable: the node is dead

        if let function = functions[op] {
            try inline(function, node: n, label: label, operands: operands, outputNames: outputNames,
                       attributes: attributes, into: b, scope: functionScope)
            return
        }
        if op == .constant {
            let data = try constantValue(attributes, label: label)
            b.defineConstant(data, name: outputNames[0], nodeName: name)
            return
        }

        // Results of unsupported ops have placeholder types; inference downstream of them would
        // only report noise, so those nodes take the model's hints too.
        let inputsKnown = !operands.contains { $0.map { b.placeholders.contains($0) } ?? false }
        var inferred: [TensorType]? = nil
        if inputsKnown, let definition = OpRegistry.definition(of: op) {
            if definition.schemaVersion(forOpset: opset) != nil {
                let context = InferenceContext(op: op, nodeName: name, opset: opset, attributes: attributes,
                                               outputCount: outputNames.count,
                                               inputTypes: operands.map { $0.map { b.function.type(of: $0) } },
                                               constantInputs: operands.map { $0.flatMap { b.constants[$0] } })
                let types = try definition.infer(context)
                guard types.count == outputNames.count else {
                    throw GLMCError("\(label): inferred \(types.count) result types for \(outputNames.count) outputs")
                }
                inferred = types
            }
        }

        var results: [ValueID] = []
        for (k, outName) in outputNames.enumerated() {
            let hint = outName.isEmpty ? nil : hints[outName]
            var type = inferred?[k] ?? hint ?? TensorType(.f32, .unranked)
            if let hint, let inferredType = inferred?[k] {
                guard inferredType.isCompatible(with: hint) else {
                    throw GLMCError("\(label): output '\(outName)' is declared \(hint) but its inputs give \(inferredType)")
                }
                type = inferredType.refinedBy(hint)
            }
            let sourceName = outName.isEmpty || functionScope == nil ? outName : functionScope!.prefix + outName
            let id = b.function.addValue(type, name: sourceName)
            if !outName.isEmpty {
                guard b.names[outName] == nil else { throw GLMCError("tensor '\(outName)' is defined twice (again by \(label))") }
                b.names[outName] = id
            }
            results.append(id)
            if inferred == nil { b.placeholders.insert(id) }
        }
        b.function.body.append(Instruction(op: op, opset: opset, operands: operands, results: results,
                                           attributes: attributes, nodeName: name))
    }

    /// Inlines a model-local function: its body is imported with formal names bound to the caller's
    /// operands, internal tensors renamed under a unique prefix, and outputs bound to the caller's names.
    func inline(_ fp: UnsafePointer<Onnx__FunctionProto>, node: Onnx__NodeProto, label: String,
                operands: [ValueID?], outputNames: [String], attributes: [String: Attribute],
                into b: GraphBuilder, scope: FunctionScope?) throws {
        let f = fp.pointee
        let depth = (scope?.depth ?? 0) + 1
        guard depth <= 64 else { throw GLMCError("\(label): model-local functions nest more than 64 deep (recursive?)") }
        var opsets = try opsetMap(count: f.n_opset_import, f.opset_import, what: "function '\(string(f.name))'")
        if f.n_opset_import == 0 { opsets = scope?.opsets ?? b.opsets }
        inlineCounter += 1
        let prefix = "\(string(f.name))_\(inlineCounter)/"
        let inner = FunctionScope(opsets: opsets, callerAttributes: attributes, prefix: prefix, depth: depth)

        // Function bodies are closed: only their formal inputs are visible inside.
        let saved = b.names
        let savedClosed = b.closed
        b.names = [:]
        b.closed = true
        // Restores the caller's names on errors; on success they are restored below, before the
        // function's outputs are bound (a plain defer would run after that and drop the bindings).
        var restored = false
        defer { if !restored { b.names = saved; b.closed = savedClosed } }
        for k in 0 ..< f.n_input where k < operands.count {
            if let id = operands[k] { b.names[string(f.input[k])] = id }
        }
        for i in 0 ..< f.n_node {
            guard let inner_node = f.node[i] else { continue }
            try importNode(UnsafePointer(inner_node), into: b, hints: [:], functionScope: inner)
        }
        var produced: [ValueID] = []
        for k in 0 ..< outputNames.count {
            guard k < f.n_output, let id = b.names[string(f.output[k])] else {
                throw GLMCError("\(label): model-local function '\(string(f.name))' does not produce output \(k)")
            }
            produced.append(id)
        }
        b.names = saved
        b.closed = savedClosed
        restored = true
        for (k, outName) in outputNames.enumerated() where !outName.isEmpty {
            guard b.names[outName] == nil else { throw GLMCError("tensor '\(outName)' is defined twice (again by \(label))") }
            b.names[outName] = produced[k]
            if b.function.values[produced[k].index].name.hasPrefix(prefix) || b.function.values[produced[k].index].name.isEmpty {
                b.function.values[produced[k].index].name = outName
            }
        }
    }

    /// What a Loop or Scan body's inputs are, from the node's operands: Loop passes the iteration
    /// number, the condition and the loop-carried values; Scan the states and one slice of each
    /// scanned input.
    func bodyArgumentTypes(op: OpName, opset: Int, node: Onnx__NodeProto, operandTypes: [TensorType?]) -> [TensorType?] {
        guard op.domain.isEmpty else { return [] }
        switch op.type {
        case "Loop":
            return [TensorType(.i64, static: []), TensorType(.bool, static: [])] + operandTypes.dropFirst(2)
        case "Scan" where opset >= 9:
            var scanCount = 0
            var axes: [Int] = []
            for a in 0 ..< node.n_attribute {
                guard let attr = node.attribute[a]?.pointee else { continue }
                if string(attr.name) == "num_scan_inputs" { scanCount = Int(attr.i) }
                if string(attr.name) == "scan_input_axes" { axes = (0 ..< attr.n_ints).map { Int(attr.ints[$0]) } }
            }
            let stateCount = max(0, operandTypes.count - scanCount)
            let slices = operandTypes.dropFirst(stateCount).enumerated().map { k, t -> TensorType? in
                guard let t, var dims = t.shape.dims, !dims.isEmpty else { return t.map { TensorType($0.dtype, .unranked) } }
                var axis = k < axes.count ? axes[k] : 0
                if axis < 0 { axis += dims.count }
                guard axis >= 0 && axis < dims.count else { return TensorType(t.dtype, .unranked) }
                dims.remove(at: axis)
                return TensorType(t.dtype, Shape(dims))
            }
            return Array(operandTypes.prefix(stateCount)) + slices
        default:
            return []
        }
    }

    // MARK: Attributes and constants

    func attribute(_ a: Onnx__AttributeProto, label: String, graph b: GraphBuilder,
                   functionScope: FunctionScope?, argumentTypes: [TensorType?] = []) throws -> Attribute? {
        let name = string(a.name)
        let reference = string(a.ref_attr_name)
        if !reference.isEmpty {
            guard let scope = functionScope else {
                throw GLMCError("\(label): attribute '\(name)' refers to '\(reference)' outside a function")
            }
            return scope.callerAttributes[reference] // absent: the function's default applies
        }
        var type = (a.has_type != 0) ? a.type : ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED
        if type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED {
            // Old models omit the type; take it from whichever field is set.
            if (a.has_f != 0) { type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT }
            else if (a.has_i != 0) { type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT }
            else if (a.has_s != 0) { type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING }
            else if a.t != nil { type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR }
            else if a.g != nil { type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH }
            else if a.n_floats > 0 { type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS }
            else if a.n_ints > 0 { type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS }
            else if a.n_strings > 0 { type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS }
            else if a.n_tensors > 0 { type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSORS }
            else if a.n_graphs > 0 { type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS }
            else { throw GLMCError("\(label): attribute '\(name)' has no type and no value") }
        }
        func bytesString(_ b: ProtobufCBinaryData) -> String {
            String(decoding: UnsafeRawBufferPointer(start: b.data, count: b.len), as: UTF8.self)
        }
        switch type {
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT: return .float(a.f)
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT: return .int(Int(a.i))
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING: return .string(bytesString(a.s))
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR:
            guard let t = a.t else { throw GLMCError("\(label): tensor attribute '\(name)' has no tensor") }
            return .tensor(try decoder.decode(t, what: "tensor attribute '\(name)' of \(label)"))
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH:
            guard let g = a.g else { throw GLMCError("\(label): graph attribute '\(name)' has no graph") }
            return .graph(try subgraph(g.pointee, name: name, parent: b, argumentTypes: argumentTypes))
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS: return .floats(Array(UnsafeBufferPointer(start: a.floats, count: a.n_floats)))
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS: return .ints((0 ..< a.n_ints).map { Int(a.ints[$0]) })
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS: return .strings((0 ..< a.n_strings).map { bytesString(a.strings[$0]) })
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSORS:
            return .tensors(try (0 ..< a.n_tensors).compactMap { k in
                try a.tensors[k].map { try decoder.decode($0, what: "tensor attribute '\(name)' of \(label)") }
            })
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS:
            return .graphs(try (0 ..< a.n_graphs).compactMap { k in try a.graphs[k].map { try subgraph($0.pointee, name: name, parent: b, argumentTypes: argumentTypes) } })
        default:
            throw GLMCError("unsupported: \(label): attribute '\(name)' of kind \(type.rawValue) (sparse tensors and type protos)")
        }
    }

    /// A nested region (If/Loop/Scan body). Outer tensors it reads become captures.
    func subgraph(_ g: Onnx__GraphProto, name: String, parent: GraphBuilder, argumentTypes: [TensorType?]) throws -> Function {
        let graphName = string(g.name).isEmpty ? name : string(g.name)
        let b = GraphBuilder(name: graphName, parent: parent, opsets: parent.opsets)
        try importGraph(g, into: b, isMain: false, argumentTypes: argumentTypes)
        return b.function
    }

    /// The tensor of a `Constant` node, from whichever `value*` attribute it has.
    func constantValue(_ attributes: [String: Attribute], label: String) throws -> TensorData {
        guard attributes.count == 1, let (key, value) = attributes.first else {
            throw GLMCError("\(label): a Constant needs exactly one value attribute, found \(attributes.count)")
        }
        switch (key, value) {
        case ("value", .tensor(let t)): return t
        case ("value_float", .float(let v)): return TensorData(type: TensorType(.f32, static: []), elements: [v])
        case ("value_floats", .floats(let v)): return TensorData(type: TensorType(.f32, static: [v.count]), elements: v)
        case ("value_floats", .ints(let v)) where v.isEmpty: return TensorData(type: TensorType(.f32, static: [0]), elements: [Float]())
        case ("value_int", .int(let v)): return TensorData(type: TensorType(.i64, static: []), elements: [Int64(v)])
        case ("value_ints", .ints(let v)): return TensorData(type: TensorType(.i64, static: [v.count]), elements: v.map(Int64.init))
        case ("value_string", .string(let s)): return TensorData(type: TensorType(.string, static: []), contents: .strings([s]))
        case ("value_strings", .strings(let s)): return TensorData(type: TensorType(.string, static: [s.count]), contents: .strings(s))
        default: throw GLMCError("unsupported: \(label): Constant with attribute '\(key)' of kind \(value.kindName)")
        }
    }

    // MARK: Types

    /// The IR type of a `TypeProto`. Missing types give nil unless `required`.
    func tensorType(_ tp: UnsafeMutablePointer<Onnx__TypeProto>?, name: String, required: Bool = false) throws -> TensorType? {
        guard let tp = tp?.pointee else {
            if required { throw GLMCError("unsupported: value '\(name)' has no type") }
            return nil
        }
        guard tp.value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE, let tensor = tp.tensor_type?.pointee else {
            let kind: String
            switch tp.value_case {
            case ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE: kind = "sequence"
            case ONNX__TYPE_PROTO__VALUE_MAP_TYPE: kind = "map"
            case ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE: kind = "optional"
            case ONNX__TYPE_PROTO__VALUE_SPARSE_TENSOR_TYPE: kind = "sparse tensor"
            default: kind = "unknown"
            }
            if required || tp.value_case != ONNX__TYPE_PROTO__VALUE__NOT_SET {
                throw GLMCError("unsupported: value '\(name)' has \(kind) type; glmc handles tensors only")
            }
            return nil
        }
        guard (tensor.has_elem_type != 0), let dtype = DType(onnxCode: tensor.elem_type) else {
            throw GLMCError("unsupported: value '\(name)' has element type \(DType.onnxName(ofCode: (tensor.has_elem_type != 0) ? tensor.elem_type : 0))")
        }
        guard let shape = tensor.shape?.pointee else { return TensorType(dtype, .unranked) }
        var dims: [Dim] = []
        for i in 0 ..< shape.n_dim {
            guard let d = shape.dim[i]?.pointee else { dims.append(.unknown); continue }
            switch d.value_case {
            case ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE:
                guard d.dim_value >= 0 else { throw GLMCError("value '\(name)' has a negative dimension \(d.dim_value)") }
                dims.append(.known(Int(d.dim_value)))
            case ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM:
                let symbol = string(d.dim_param)
                dims.append(symbol.isEmpty ? .unknown : .symbol(symbol))
            default: dims.append(.unknown)
            }
        }
        return TensorType(dtype, Shape(dims))
    }
}

func normalizedDomain(_ d: String) -> String { d == "ai.onnx" ? "" : d }

private func nodeName(_ n: UnsafePointer<Onnx__NodeProto>) -> String {
    let name = string(n.pointee.name)
    return name.isEmpty ? "<unnamed \(string(n.pointee.op_type))>" : name
}

/// The function being built for one ONNX graph, with its name table. Lookups of names defined in an
/// enclosing graph create captures.
private final class GraphBuilder {
    var function: Function
    var names: [String: ValueID] = [:]
    var constants: [ValueID: TensorData] = [:]
    /// Values whose types are placeholders (results of ops glmc cannot infer).
    var placeholders = Set<ValueID>()
    let parent: GraphBuilder?
    let opsets: [String: Int]
    /// True while a model-local function is being inlined: its body sees only its formal names.
    var closed = false

    init(name: String, parent: GraphBuilder?, opsets: [String: Int]) {
        self.function = Function(name: name)
        self.parent = parent
        self.opsets = opsets
    }

    func lookup(_ name: String) -> ValueID? {
        if let id = names[name] { return id }
        guard !closed, let parent, let outer = parent.lookup(name) else { return nil }
        let inner = function.addValue(parent.function.type(of: outer), name: name)
        function.captures.append(Function.Capture(outer: outer, inner: inner))
        names[name] = inner
        if let c = parent.constants[outer] { constants[inner] = c }
        if parent.placeholders.contains(outer) { placeholders.insert(inner) }
        return inner
    }

    func defineConstant(_ data: TensorData, name: String, nodeName: String = "") {
        let id = function.addValue(data.type, name: name)
        function.body.append(Instruction(op: .constant, opset: opsets[""] ?? 1, operands: [], results: [id],
                                         attributes: ["value": .tensor(data)], nodeName: nodeName))
        names[name] = id
        constants[id] = data
    }
}

/// A binary min-heap of node indices, for the stable topological sort.
private struct MinHeap {
    private var items: [Int] = []
    mutating func push(_ v: Int) {
        items.append(v)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if items[p] <= items[i] { break }
            items.swapAt(p, i); i = p
        }
    }
    mutating func pop() -> Int? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && items[l] < items[m] { m = l }
                if r < items.count && items[r] < items[m] { m = r }
                if m == i { break }
                items.swapAt(m, i); i = m
            }
        }
        return top
    }
}

extension TensorType {
    /// This type with dimensions filled in from a compatible declared type.
    func refinedBy(_ other: TensorType) -> TensorType {
        TensorType(dtype, shape.refined(by: other.shape))
    }
}
