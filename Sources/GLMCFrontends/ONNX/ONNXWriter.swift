#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CONNXProto
import GLMCIR
import GLMCOps

/// Writes a module as an ONNX model, through protobuf-c's generated code for the same `onnx.proto`
/// the importer reads.
///
/// - Names: graph inputs and outputs keep their names (`Function.outputNames`), every other value
///   keeps its source name. ONNX wants one name per tensor across the whole model (subgraphs
///   included), so a value without a name, or with a name already taken, gets an invented one:
///   `<name>__<n>` (or `<op>__<n>` when it had none).
/// - Constants become initializers of the graph they live in (`raw_data`, little-endian, pointing
///   at the weights without copying them; strings as `string_data`). A constant that is itself a
///   graph output is a `Constant` node instead.
/// - Nested regions (If/Loop/Scan bodies) become `GraphProto`s. Their captures are not inputs:
///   ONNX subgraphs see the enclosing graph's tensors by name, so a capture is written as the
///   outer value's name.
/// - `glmc.Fused` groups have no ONNX op. A group whose body occurs once is expanded in place; a body
///   that occurs several times (same ops, attributes and constants; shapes may differ) becomes a
///   model-local function (`FunctionProto`, domain `glmc.fused`) called once per group.
/// - Every value's type is written (graph inputs, outputs and `value_info`); symbolic dimensions as
///   `dim_param`. `opset_import` is the module's opsets without the `glmc` domain.
///
/// The file is written to a temporary file next to the target and renamed over it, so an error
/// never leaves a half-written model behind.
public enum ONNXWriter {
    /// How `glmc.Fused` groups are written.
    public enum FusedGroups: Sendable {
        /// Every group is expanded into its body's nodes.
        case inline
        /// Bodies that occur more than once become model-local functions; the others are expanded.
        case functionsWhenRepeated
    }

    /// The domain of the model-local functions made from fusion groups.
    public static let functionDomain = "glmc.fused"

    public static func write(_ module: Module, to path: String, fusedGroups: FusedGroups = .functionsWhenRepeated) throws {
        try withSerialized(module, fusedGroups: fusedGroups) { try writeAtomically($0, to: path) }
    }

    /// The encoded model.
    public static func serialize(_ module: Module, fusedGroups: FusedGroups = .functionsWhenRepeated) throws -> [UInt8] {
        try withSerialized(module, fusedGroups: fusedGroups) { [UInt8]($0) }
    }

    /// The IR version for a model importing `opset` of the default domain: the version ONNX released
    /// with that opset (onnx.helper.VERSION_TABLE), and at least 10 (IR 10 came with opset 21 and
    /// allows everything written here, model-local functions included).
    public static func irVersion(forDefaultOpset opset: Int) -> Int {
        switch opset {
        case ...22: return 10
        case 23: return 11
        case 24: return 12
        case 25 ... 27: return 13
        default: return 14
        }
    }

    static func withSerialized<R>(_ module: Module, fusedGroups: FusedGroups, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let builder = ModelBuilder(module: module, fusedGroups: fusedGroups)
        let model = try builder.model()
        let size = onnx__model_proto__get_packed_size(model)
        guard size <= Int(Int32.max) else {
            throw GLMCError("the model would be \(size) bytes, over ONNX's 2 GiB protobuf limit (writing external data is not supported)")
        }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(size, 1), alignment: 16)
        defer { buffer.deallocate() }
        let written = onnx__model_proto__pack(model, buffer.assumingMemoryBound(to: UInt8.self))
        guard written == size else { throw GLMCError("internal error: protobuf-c packed \(written) of \(size) bytes") }
        return try withExtendedLifetime(builder) { try body(UnsafeRawBufferPointer(start: buffer, count: size)) }
    }

    /// Writes `bytes` to a temporary file in the target's folder, then renames it over `path`.
    static func writeAtomically(_ bytes: UnsafeRawBufferPointer, to path: String) throws {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[..<$0]) } ?? "."
        let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
        guard !base.isEmpty else { throw GLMCError("cannot write '\(path)': it names a folder") }
        var template = Array("\(directory.isEmpty ? "/" : directory)/.\(base).tmp-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw GLMCError("cannot write '\(path)': \(String(cString: strerror(errno)))") }
        let temporary = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var done = false
        defer { if !done { close(fd); unlink(temporary) } }
        var offset = 0
        while offset < bytes.count {
            let n = posixWrite(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw GLMCError("cannot write '\(path)': \(String(cString: strerror(errno)))") }
            offset += n
        }
        // mkstemp makes the file private; give it the permissions a new file normally gets.
        let mask = umask(0)
        umask(mask)
        fchmod(fd, 0o666 & ~mask)
        guard fsync(fd) == 0 else { throw GLMCError("cannot write '\(path)': \(String(cString: strerror(errno)))") }
        done = true
        close(fd)
        guard rename(temporary, path) == 0 else {
            let message = String(cString: strerror(errno))
            unlink(temporary)
            throw GLMCError("cannot write '\(path)': \(message)")
        }
    }
}

private func posixWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(fd, p, count)
    #else
    return Darwin.write(fd, p, count)
    #endif
}

// MARK: - Memory

/// Owns every C allocation of one model under construction; all of it is freed together.
private final class Arena {
    private var allocations: [UnsafeMutableRawPointer] = []
    /// Weights referenced (not copied) by `raw_data` fields.
    var retained: [ByteStorage] = []

    deinit { for p in allocations { free(p) } }

    func allocate<T>(_: T.Type, count: Int) throws -> UnsafeMutablePointer<T> {
        guard let raw = calloc(max(count, 1), MemoryLayout<T>.stride) else {
            throw GLMCError("out of memory while building the ONNX model")
        }
        allocations.append(raw)
        return raw.bindMemory(to: T.self, capacity: max(count, 1))
    }

    /// A new message, set up by its protobuf-c `..._init` function.
    func message<T>(_ initialize: (UnsafeMutablePointer<T>) -> Void) throws -> UnsafeMutablePointer<T> {
        let p = try allocate(T.self, count: 1)
        initialize(p)
        return p
    }

    /// A C array holding `items` (nil when empty), with its count.
    func array<T>(_ items: [T]) throws -> (Int, UnsafeMutablePointer<T>?) {
        guard !items.isEmpty else { return (0, nil) }
        let p = try allocate(T.self, count: items.count)
        p.initialize(from: items, count: items.count)
        return (items.count, p)
    }

    func string(_ s: String) throws -> UnsafeMutablePointer<CChar> {
        let utf8 = s.utf8CString
        let p = try allocate(CChar.self, count: utf8.count)
        utf8.withUnsafeBufferPointer { p.initialize(from: $0.baseAddress!, count: utf8.count) }
        return p
    }

    func strings(_ list: [String]) throws -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) {
        try array(list.map { Optional(try string($0)) })
    }

    func bytes(_ b: [UInt8]) throws -> ProtobufCBinaryData {
        let p = try allocate(UInt8.self, count: b.count)
        if !b.isEmpty { p.initialize(from: b, count: b.count) }
        return ProtobufCBinaryData(len: b.count, data: p)
    }
}

// MARK: - Names

/// Tensor names already taken in one naming scope (the model, or one model-local function).
private final class NameTable {
    private var used = Set<String>()
    private var nextSuffix: [String: Int] = [:]

    /// `preferred` when it is free, else a fresh `<preferred>__<n>` (`<fallback>__<n>` for "").
    func claim(_ preferred: String, fallback: String) -> String {
        if !preferred.isEmpty, used.insert(preferred).inserted { return preferred }
        let base = preferred.isEmpty ? fallback : preferred
        var n = nextSuffix[base, default: 0]
        while true {
            n += 1
            let candidate = "\(base)__\(n)"
            if used.insert(candidate).inserted {
                nextSuffix[base] = n
                return candidate
            }
        }
    }
}

/// What a graph (or function) body being written collects.
private final class GraphParts {
    /// Function bodies have no initializers and no value_info.
    let isFunction: Bool
    var nodes: [UnsafeMutablePointer<Onnx__NodeProto>?] = []
    var initializers: [UnsafeMutablePointer<Onnx__TensorProto>?] = []
    var valueInfo: [(String, TensorType)] = []
    init(isFunction: Bool) { self.isFunction = isFunction }
}

/// How a body's outputs are named.
private enum OutputPolicy {
    /// The main graph: these exact names (already claimed).
    case required([String])
    /// A subgraph: any names, each a value of this graph (an argument or a result), no name twice.
    case subgraph
    /// A model-local function: like `subgraph`, but an output may not be an input.
    case function
    /// A fusion group expanded in place: results name themselves (outer results alias them),
    /// except those that must carry a required name.
    case inline([String?])

    var required: [String?]? {
        switch self {
        case .required(let names): return names
        case .inline(let names): return names
        default: return nil
        }
    }
}

// MARK: - Building the model

private final class ModelBuilder {
    let module: Module
    let fusedGroups: ONNXWriter.FusedGroups
    let arena = Arena()
    /// How often each fusion body occurs (by canonical text).
    var fusedCounts: [String: Int] = [:]
    var functionNames: [String: String] = [:]
    let functionNameTable = NameTable()
    var functions: [UnsafeMutablePointer<Onnx__FunctionProto>?] = []
    var needsDefaultDomain = false

    init(module: Module, fusedGroups: ONNXWriter.FusedGroups) {
        self.module = module
        self.fusedGroups = fusedGroups
    }

    func model() throws -> UnsafeMutablePointer<Onnx__ModelProto> {
        if fusedGroups == .functionsWhenRepeated { countFusedBodies(module.main) }
        let graph = try mainGraph()

        let m: UnsafeMutablePointer<Onnx__ModelProto> = try arena.message(onnx__model_proto__init)
        if needsDefaultDomain && module.opsets[""] == nil { throw GLMCError("cannot write the model: it needs an Identity node but imports no opset of the default ONNX domain") }
        let opsets = modelOpsets()
        m.pointee.has_ir_version = 1
        m.pointee.ir_version = Int64(ONNXWriter.irVersion(forDefaultOpset: module.opsets[""] ?? 1))
        (m.pointee.n_opset_import, m.pointee.opset_import) = try arena.array(opsets.map { Optional(try opsetID($0.0, $0.1)) })
        let meta = module.metadata
        m.pointee.producer_name = try arena.string(meta["producer_name"] ?? "glmc")
        if let v = meta["producer_version"] ?? (meta["producer_name"] == nil ? "0.1.0" : nil) { m.pointee.producer_version = try arena.string(v) }
        if let v = meta["domain"] { m.pointee.domain = try arena.string(v) }
        if let v = meta["model_version"].flatMap({ Int64($0) }) { m.pointee.has_model_version = 1; m.pointee.model_version = v }
        let special: Set<String> = ["ir_version", "producer_name", "producer_version", "domain", "model_version"]
        var props: [UnsafeMutablePointer<Onnx__StringStringEntryProto>?] = []
        for key in meta.keys.sorted() where !special.contains(key) {
            let entry: UnsafeMutablePointer<Onnx__StringStringEntryProto> = try arena.message(onnx__string_string_entry_proto__init)
            entry.pointee.key = try arena.string(key.hasPrefix("meta.") ? String(key.dropFirst(5)) : key)
            entry.pointee.value = try arena.string(meta[key]!)
            props.append(entry)
        }
        (m.pointee.n_metadata_props, m.pointee.metadata_props) = try arena.array(props)
        m.pointee.graph = graph
        (m.pointee.n_functions, m.pointee.functions) = try arena.array(functions)
        return m
    }

    /// The model's opset imports: the module's, without glmc's own domain, plus the domain of
    /// the fusion functions when there are any; the default domain first.
    func modelOpsets() -> [(String, Int)] {
        var opsets = module.opsets.filter { $0.key != FusedOps.domain }
        if !functions.isEmpty { opsets[ONNXWriter.functionDomain] = 1 }
        return opsets.keys.sorted().map { ($0, opsets[$0]!) }
    }

    func opsetID(_ domain: String, _ version: Int) throws -> UnsafeMutablePointer<Onnx__OperatorSetIdProto> {
        let p: UnsafeMutablePointer<Onnx__OperatorSetIdProto> = try arena.message(onnx__operator_set_id_proto__init)
        p.pointee.domain = try arena.string(domain)
        p.pointee.has_version = 1
        p.pointee.version = Int64(version)
        return p
    }

    func mainGraph() throws -> UnsafeMutablePointer<Onnx__GraphProto> {
        let f = module.main
        let names = NameTable()
        var scope: [ValueID: String] = [:]
        var inputs: [(String, TensorType)] = []
        for a in f.arguments {
            let name = names.claim(f.name(of: a), fallback: "input")
            scope[a] = name
            inputs.append((name, f.type(of: a)))
        }
        // Output names are the model's interface: claim them before any inner value can take them.
        var required: [String] = []
        for (i, v) in f.outputs.enumerated() {
            let wanted = i < f.outputNames.count ? f.outputNames[i] : ""
            if f.arguments.contains(v), scope[v] == wanted, !required.contains(wanted) {
                required.append(wanted)
            } else {
                required.append(names.claim(wanted, fallback: "output"))
            }
        }
        let parts = GraphParts(isFunction: false)
        let outputs = try emitBody(f, into: parts, names: names, scope: &scope, policy: .required(required))
        return try graphProto(name: f.name, parts: parts, inputs: inputs,
                              outputs: zip(outputs, f.outputs).map { ($0, f.type(of: $1)) })
    }

    /// A nested region as a subgraph: its captures are the outer values' names.
    func subgraph(_ g: Function, outerScope: [ValueID: String], names: NameTable) throws -> UnsafeMutablePointer<Onnx__GraphProto> {
        var scope: [ValueID: String] = [:]
        for c in g.captures {
            guard let outer = outerScope[c.outer] else { throw GLMCError("graph '\(g.name)' captures a value the enclosing graph does not define") }
            scope[c.inner] = outer
        }
        var inputs: [(String, TensorType)] = []
        for a in g.arguments {
            let name = names.claim(g.name(of: a), fallback: "input")
            scope[a] = name
            inputs.append((name, g.type(of: a)))
        }
        let parts = GraphParts(isFunction: false)
        let outputs = try emitBody(g, into: parts, names: names, scope: &scope, policy: .subgraph)
        return try graphProto(name: g.name, parts: parts, inputs: inputs,
                              outputs: zip(outputs, g.outputs).map { ($0, g.type(of: $1)) })
    }

    func graphProto(name: String, parts: GraphParts, inputs: [(String, TensorType)],
                    outputs: [(String, TensorType)]) throws -> UnsafeMutablePointer<Onnx__GraphProto> {
        let g: UnsafeMutablePointer<Onnx__GraphProto> = try arena.message(onnx__graph_proto__init)
        g.pointee.name = try arena.string(name)
        (g.pointee.n_node, g.pointee.node) = try arena.array(parts.nodes)
        (g.pointee.n_initializer, g.pointee.initializer) = try arena.array(parts.initializers)
        (g.pointee.n_input, g.pointee.input) = try arena.array(inputs.map { Optional(try valueInfo($0.0, $0.1)) })
        (g.pointee.n_output, g.pointee.output) = try arena.array(outputs.map { Optional(try valueInfo($0.0, $0.1)) })
        let declared = Set(inputs.map(\.0) + outputs.map(\.0))
        (g.pointee.n_value_info, g.pointee.value_info) = try arena.array(
            parts.valueInfo.filter { !declared.contains($0.0) }.map { Optional(try valueInfo($0.0, $0.1)) })
        return g
    }

    // MARK: Bodies

    /// Writes the instructions of `f` into `parts`; `scope` maps `f`'s values to tensor names (it
    /// holds the arguments and captures on entry). Returns the names of `f`'s outputs.
    func emitBody(_ f: Function, into parts: GraphParts, names: NameTable, scope: inout [ValueID: String],
                  policy: OutputPolicy) throws -> [String] {
        let entryValues = Set(f.arguments + f.captures.map(\.inner))
        // Results that must carry a required output name get it directly (no Identity).
        var preassigned: [ValueID: String] = [:]
        if let required = policy.required {
            for (i, v) in f.outputs.enumerated() where !entryValues.contains(v) && preassigned[v] == nil {
                if let r = required[i] { preassigned[v] = r }
            }
        }
        let uses = f.useCounts()
        let outputSet = Set(f.outputs)
        for inst in f.body {
            if inst.op == FusedOps.fused {
                try emitFused(inst, in: f, into: parts, names: names, scope: &scope, preassigned: preassigned)
                continue
            }
            // An unnamed result nobody reads stays an empty (omitted) output, unless the node
            // would then have no output at all.
            let allUnnamed = inst.results.allSatisfy { f.name(of: $0).isEmpty && preassigned[$0] == nil }
            var resultNames: [String] = []
            for (k, r) in inst.results.enumerated() {
                let name: String
                if let p = preassigned[r] {
                    name = p
                } else if f.name(of: r).isEmpty && uses[r.index] == 0 && !(allUnnamed && k == 0) {
                    name = ""
                } else {
                    name = names.claim(f.name(of: r), fallback: inst.op.type)
                }
                scope[r] = name
                resultNames.append(name)
            }
            if let data = inst.constantValue, inst.attributes.count == 1, inst.operands.isEmpty, inst.results.count == 1 {
                let r = inst.results[0]
                let asNode = parts.isFunction || preassigned[r] != nil || (policy.required == nil && outputSet.contains(r))
                if !asNode {
                    parts.initializers.append(try tensor(data, name: resultNames[0]))
                    continue
                }
            } else {
                try checkOpset(inst)
            }
            let operands = try inst.operands.map { v -> String in
                guard let v else { return "" }
                guard let name = scope[v] else { throw GLMCError("\(inst.displayName) reads a value that is not defined before it") }
                return name
            }
            var attributes: [UnsafeMutablePointer<Onnx__AttributeProto>?] = []
            for key in inst.attributes.keys.sorted() {
                attributes.append(try attribute(key, inst.attributes[key]!, scope: scope, names: names, label: inst.displayName))
            }
            var outputs = resultNames
            while outputs.last == "" { outputs.removeLast() }
            parts.nodes.append(try node(inst.op, name: inst.nodeName, inputs: operands, outputs: outputs, attributes: attributes))
            if !parts.isFunction {
                for (r, name) in zip(inst.results, resultNames) where !name.isEmpty { parts.valueInfo.append((name, f.type(of: r))) }
            }
        }

        // Outputs, with Identity nodes where a value cannot itself carry the output's name.
        var result: [String] = []
        var taken = Set<String>()
        for (i, v) in f.outputs.enumerated() {
            guard let name = scope[v] else { throw GLMCError("graph '\(f.name)' returns a value it does not define") }
            let wanted = i < f.outputNames.count ? f.outputNames[i] : ""
            switch policy {
            case .required, .inline:
                guard let r = policy.required![i] else { result.append(name); continue }
                if name != r { try identity(from: name, to: r, into: parts) }
                result.append(r)
            case .subgraph, .function:
                let local = !f.captures.contains { $0.inner == v } && !(policy.isFunction && f.arguments.contains(v))
                if local && taken.insert(name).inserted {
                    result.append(name)
                } else {
                    let fresh = names.claim(wanted, fallback: "output")
                    try identity(from: name, to: fresh, into: parts)
                    taken.insert(fresh)
                    result.append(fresh)
                }
            }
        }
        return result
    }

    func identity(from source: String, to target: String, into parts: GraphParts) throws {
        needsDefaultDomain = true
        parts.nodes.append(try node(OpName("Identity"), name: "", inputs: [source], outputs: [target], attributes: []))
    }

    /// A fusion group: a call of a model-local function when its body repeats, else its body in place.
    func emitFused(_ inst: Instruction, in f: Function, into parts: GraphParts, names: NameTable,
                   scope: inout [ValueID: String], preassigned: [ValueID: String]) throws {
        guard case .graph(let body)? = inst.attributes["body"], body.arguments.count == inst.operands.count,
              body.outputs.count == inst.results.count, body.captures.isEmpty else {
            throw GLMCError("\(inst.displayName): malformed fusion group (needs a closed body graph matching its operands and results)")
        }
        let operands = try inst.operands.map { v -> String in
            guard let v, let name = scope[v] else { throw GLMCError("\(inst.displayName): an operand is missing or undefined") }
            return name
        }
        let key = fusedGroups == .functionsWhenRepeated ? canonicalKey(body) : ""
        if fusedGroups == .functionsWhenRepeated, fusedCounts[key, default: 0] > 1 {
            let kind: String
            if case .string(let s)? = inst.attributes["kind"] { kind = s } else { kind = "fused" }
            let function = try functionName(for: key, body: body, kind: kind)
            let resultNames = inst.results.map { r in preassigned[r] ?? names.claim(f.name(of: r), fallback: kind) }
            for (r, name) in zip(inst.results, resultNames) { scope[r] = name }
            parts.nodes.append(try node(OpName(function, domain: ONNXWriter.functionDomain), name: inst.nodeName,
                                        inputs: operands, outputs: resultNames, attributes: []))
            if !parts.isFunction {
                for (r, name) in zip(inst.results, resultNames) { parts.valueInfo.append((name, f.type(of: r))) }
            }
            return
        }
        var inner: [ValueID: String] = [:]
        for (a, name) in zip(body.arguments, operands) { inner[a] = name }
        let outputs = try emitBody(body, into: parts, names: names, scope: &inner,
                                   policy: .inline(inst.results.map { preassigned[$0] }))
        for (r, name) in zip(inst.results, outputs) { scope[r] = name }
    }

    /// The model-local function for a repeated fusion body, made on first use.
    func functionName(for key: String, body: Function, kind: String) throws -> String {
        if let name = functionNames[key] { return name }
        let safeKind = String(kind.map { $0.isLetter || $0.isNumber || $0 == "_" ? $0 : "_" })
        let name = functionNameTable.claim(safeKind, fallback: "fused")
        functionNames[key] = name
        let names = NameTable()
        var scope: [ValueID: String] = [:]
        let inputs = body.arguments.map { a -> String in
            let n = names.claim(body.name(of: a), fallback: "input")
            scope[a] = n
            return n
        }
        let parts = GraphParts(isFunction: true)
        let outputs = try emitBody(body, into: parts, names: names, scope: &scope, policy: .function)
        let fp: UnsafeMutablePointer<Onnx__FunctionProto> = try arena.message(onnx__function_proto__init)
        fp.pointee.name = try arena.string(name)
        fp.pointee.domain = try arena.string(ONNXWriter.functionDomain)
        (fp.pointee.n_input, fp.pointee.input) = try arena.strings(inputs)
        (fp.pointee.n_output, fp.pointee.output) = try arena.strings(outputs)
        (fp.pointee.n_node, fp.pointee.node) = try arena.array(parts.nodes)
        var opsets = module.opsets.filter { $0.key != FusedOps.domain }
        opsets[ONNXWriter.functionDomain] = 1
        (fp.pointee.n_opset_import, fp.pointee.opset_import) = try arena.array(
            opsets.keys.sorted().map { Optional(try opsetID($0, opsets[$0]!)) })
        functions.append(fp)
        return name
    }

    // MARK: Fusion bodies

    func countFusedBodies(_ f: Function) {
        for inst in f.body {
            if inst.op == FusedOps.fused, case .graph(let body)? = inst.attributes["body"] {
                fusedCounts[canonicalKey(body), default: 0] += 1
            }
            inst.nestedFunctions.forEach(countFusedBodies)
        }
    }

    /// The body's printed text with names and shapes left out: equal keys compute the same function.
    func canonicalKey(_ body: Function) -> String {
        Printer(weights: .full).print(Module(opsets: module.opsets, main: anonymized(body)))
    }

    func anonymized(_ f: Function) -> Function {
        var g = f
        g.name = "f"
        g.outputNames = g.outputNames.map { _ in "" }
        for i in g.values.indices { g.values[i] = ValueInfo(type: TensorType(g.values[i].type.dtype, .unranked)) }
        for i in g.body.indices {
            g.body[i].nodeName = ""
            for (key, value) in g.body[i].attributes {
                switch value {
                case .graph(let nested): g.body[i].attributes[key] = .graph(anonymized(nested))
                case .graphs(let list): g.body[i].attributes[key] = .graphs(list.map(anonymized))
                default: break
                }
            }
        }
        return g
    }

    // MARK: Messages

    /// ONNX has one opset version per domain and model; an instruction following another version
    /// is writable only when its op did not change between the two.
    func checkOpset(_ inst: Instruction) throws {
        if inst.op.domain == FusedOps.domain {
            throw GLMCError("\(inst.displayName) is a glmc op with no ONNX equivalent")
        }
        guard let version = module.opsets[inst.op.domain] else {
            throw GLMCError("\(inst.displayName) uses domain '\(inst.op.domain)', which the module does not import")
        }
        if version == inst.opset { return }
        if let d = OpRegistry.definition(of: inst.op), let schema = d.schemaVersion(forOpset: version),
           schema == d.schemaVersion(forOpset: inst.opset) { return }
        throw GLMCError("\(inst.displayName) follows opset \(inst.opset) of domain '\(inst.op.domain)' but the model imports opset \(version); ONNX has one version per domain")
    }

    func node(_ op: OpName, name: String, inputs: [String], outputs: [String],
              attributes: [UnsafeMutablePointer<Onnx__AttributeProto>?]) throws -> UnsafeMutablePointer<Onnx__NodeProto> {
        let n: UnsafeMutablePointer<Onnx__NodeProto> = try arena.message(onnx__node_proto__init)
        (n.pointee.n_input, n.pointee.input) = try arena.strings(inputs)
        (n.pointee.n_output, n.pointee.output) = try arena.strings(outputs)
        if !name.isEmpty { n.pointee.name = try arena.string(name) }
        n.pointee.op_type = try arena.string(op.type)
        if !op.domain.isEmpty { n.pointee.domain = try arena.string(op.domain) }
        (n.pointee.n_attribute, n.pointee.attribute) = try arena.array(attributes)
        return n
    }

    func attribute(_ name: String, _ value: Attribute, scope: [ValueID: String], names: NameTable,
                   label: String) throws -> UnsafeMutablePointer<Onnx__AttributeProto> {
        let a: UnsafeMutablePointer<Onnx__AttributeProto> = try arena.message(onnx__attribute_proto__init)
        a.pointee.name = try arena.string(name)
        a.pointee.has_type = 1
        switch value {
        case .int(let v):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT
            a.pointee.has_i = 1
            a.pointee.i = Int64(v)
        case .float(let v):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT
            a.pointee.has_f = 1
            a.pointee.f = v
        case .string(let s):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING
            a.pointee.has_s = 1
            a.pointee.s = try arena.bytes(Array(s.utf8))
        case .tensor(let t):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR
            a.pointee.t = try tensor(t, name: "")
        case .graph(let g):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH
            a.pointee.g = try subgraph(g, outerScope: scope, names: names)
        case .ints(let v):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS
            (a.pointee.n_ints, a.pointee.ints) = try arena.array(v.map { Int64($0) })
        case .floats(let v):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS
            (a.pointee.n_floats, a.pointee.floats) = try arena.array(v)
        case .strings(let v):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS
            (a.pointee.n_strings, a.pointee.strings) = try arena.array(v.map { try arena.bytes(Array($0.utf8)) })
        case .tensors(let v):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSORS
            (a.pointee.n_tensors, a.pointee.tensors) = try arena.array(v.map { Optional(try tensor($0, name: "")) })
        case .graphs(let v):
            a.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS
            (a.pointee.n_graphs, a.pointee.graphs) = try arena.array(v.map { Optional(try subgraph($0, outerScope: scope, names: names)) })
        }
        return a
    }

    func tensor(_ t: TensorData, name: String) throws -> UnsafeMutablePointer<Onnx__TensorProto> {
        guard let sizes = t.type.shape.staticSizes else {
            throw GLMCError("cannot write tensor '\(name)': its type \(t.type) has no static shape")
        }
        let p: UnsafeMutablePointer<Onnx__TensorProto> = try arena.message(onnx__tensor_proto__init)
        if !name.isEmpty { p.pointee.name = try arena.string(name) }
        (p.pointee.n_dims, p.pointee.dims) = try arena.array(sizes.map { Int64($0) })
        p.pointee.has_data_type = 1
        p.pointee.data_type = t.dtype.onnxCode
        switch t.contents {
        case .bytes(let storage, let offset, let count):
            guard count == t.elementCount * t.dtype.byteSize, offset >= 0, offset + count <= storage.count else {
                throw GLMCError("cannot write tensor '\(name)': it holds \(count) bytes for type \(t.type)")
            }
            p.pointee.has_raw_data = 1
            if count > 0, let base = storage.base {
                // Points at the weights: `arena.retained` keeps them alive until the model is packed.
                arena.retained.append(storage)
                p.pointee.raw_data = ProtobufCBinaryData(len: count, data: UnsafeMutablePointer(mutating: (base + offset).assumingMemoryBound(to: UInt8.self)))
            } else {
                p.pointee.raw_data = try arena.bytes([])
            }
        case .strings(let list):
            (p.pointee.n_string_data, p.pointee.string_data) = try arena.array(list.map { try arena.bytes(Array($0.utf8)) })
        case .elided:
            throw GLMCError("cannot write tensor '\(name)' of type \(t.type): its bytes were elided (dense_resource<__elided__>)")
        }
        return p
    }

    func valueInfo(_ name: String, _ type: TensorType) throws -> UnsafeMutablePointer<Onnx__ValueInfoProto> {
        let v: UnsafeMutablePointer<Onnx__ValueInfoProto> = try arena.message(onnx__value_info_proto__init)
        v.pointee.name = try arena.string(name)
        let tensorType: UnsafeMutablePointer<Onnx__TypeProto__Tensor> = try arena.message(onnx__type_proto__tensor__init)
        tensorType.pointee.has_elem_type = 1
        tensorType.pointee.elem_type = type.dtype.onnxCode
        if let dims = type.shape.dims {
            let shape: UnsafeMutablePointer<Onnx__TensorShapeProto> = try arena.message(onnx__tensor_shape_proto__init)
            (shape.pointee.n_dim, shape.pointee.dim) = try arena.array(dims.map { d -> UnsafeMutablePointer<Onnx__TensorShapeProto__Dimension>? in
                let dim: UnsafeMutablePointer<Onnx__TensorShapeProto__Dimension> = try arena.message(onnx__tensor_shape_proto__dimension__init)
                switch d {
                case .known(let size):
                    dim.pointee.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE
                    dim.pointee.dim_value = Int64(size)
                case .symbol(let s):
                    dim.pointee.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM
                    dim.pointee.dim_param = try arena.string(s)
                case .unknown:
                    break
                }
                return dim
            })
            tensorType.pointee.shape = shape
        }
        let typeProto: UnsafeMutablePointer<Onnx__TypeProto> = try arena.message(onnx__type_proto__init)
        typeProto.pointee.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE
        typeProto.pointee.tensor_type = tensorType
        v.pointee.type = typeProto
        return v
    }
}

private extension OutputPolicy {
    var isFunction: Bool { if case .function = self { return true } else { return false } }
}
