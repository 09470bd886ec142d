import Foundation
import GLMCIR
import GLMCOps

/// What the user says about a model input that the TorchScript source leaves open (archives of
/// frozen modules type inputs as plain `Tensor`).
public struct TorchScriptInput: Sendable {
    public var sizes: [Int]?
    public var dtype: DType?
    public init(sizes: [Int]? = nil, dtype: DType? = nil) { self.sizes = sizes; self.dtype = dtype }
}

/// The TorchScript front end: archives (`torch.jit.save`) and IR text (`print(module.graph)`) into
/// the same IR as ONNX models. See Docs/TorchScript.md.
public enum TorchScriptImporter {
    /// Imports the `forward` method of the archive at `path`. Input sizes and element types come
    /// from `inputs`, else from the archive's `traced_inputs.pkl` (non-frozen traced modules);
    /// element types default to f32.
    public static func importArchive(path: String, inputs: [String: TorchScriptInput] = [:]) throws -> Module {
        let archive = try TorchArchive(path: path)
        var classes: [String: CodeClass] = [:]
        for (name, text) in archive.codeFiles {
            let modulePath = String(name.dropFirst("code/".count).dropLast(".py".count)).replacingOccurrences(of: "/", with: ".")
            for c in try CodeParser.parse(text, member: archive.label(name), modulePath: modulePath) { classes[c.qualifiedName] = c }
        }
        guard case .object(let className, let attributes, _)? = try archive.pickle("data.pkl") else {
            throw GLMCError("\(archive.label("data.pkl")): the root value is not a TorchScript module object")
        }
        let root = ModuleObject(className: className, path: "", attributes: attributes)
        let constants = try archive.pickle("constants.pkl")?.items ?? []
        var traced: [TorchScriptInput] = []
        if case .dict(let entries)? = try archive.pickle("traced_inputs.pkl"),
           let forward = entries.first(where: { $0.key.asString == "forward" })?.value.items {
            traced = forward.map { v in
                if case .tensor(let t) = v { return TorchScriptInput(sizes: t.sizes, dtype: t.dtype) }
                return TorchScriptInput()
            }
        }

        let builder = GraphBuilder(name: "forward")
        let converter = CodeConverter(builder: builder, archive: archive, classes: classes, constants: constants)
        let forward = try converter.method("forward", of: root, at: archive.label("data.pkl"))
        let names = forward.parameters.first == "self" ? Array(forward.parameters.dropFirst()) : forward.parameters
        try checkInputNames(inputs, known: names, what: "forward")
        var arguments: [TorchValue] = []
        for (k, name) in names.enumerated() {
            let given = inputs[name], fromTrace = k < traced.count ? traced[k] : TorchScriptInput()
            guard let sizes = given?.sizes ?? fromTrace.sizes else {
                throw GLMCError("\(path): input '\(name)' of forward has no recorded shape (frozen archives keep none): give it with --input-shape \(name)=1x3x224x224 (and --input-type \(name)=i64 for integer inputs)")
            }
            let dtype = given?.dtype ?? fromTrace.dtype ?? .f32
            arguments.append(.tensor(builder.argument(TensorType(dtype, static: sizes), name: name)))
        }
        let result = try converter.call(forward, on: root, arguments: arguments, className: className)
        try reportUnsupported(converter.unsupported, in: path)
        return try finish(builder, result: result, path: path)
    }

    /// Imports IR text (`print(module.graph)` or `module.inlined_graph`). Elided tensor constants
    /// (`<Tensor>`) become function arguments named after their values; `prim::GetAttr` chains read
    /// the parameters of `archive` (the archive the text was printed from, not frozen).
    public static func importGraphText(_ text: String, path: String, archive: TorchArchive? = nil,
                                       inputs: [String: TorchScriptInput] = [:]) throws -> Module {
        var graph = try GraphText.parse(text, path: path)
        let builder = GraphBuilder(name: "forward")
        let converter = GraphTextConverter(builder: builder, archive: archive, path: path)
        try checkInputNames(inputs, known: graph.parameters.map(\.name).filter { !$0.hasPrefix("self") }, what: "graph")
        for i in graph.parameters.indices { if let given = inputs[graph.parameters[i].name] { graph.parameters[i].override = given } }
        let result = try converter.convert(graph)
        try reportUnsupported(converter.unsupported, in: path)
        return try finish(builder, result: result, path: path)
    }

    static func checkInputNames(_ inputs: [String: TorchScriptInput], known: [String], what: String) throws {
        for name in inputs.keys.sorted() where !known.contains(name) {
            throw GLMCError("--input-shape \(name): the \(what) has no input named '\(name)' (inputs: \(known.map { "'\($0)'" }.joined(separator: ", ")))")
        }
    }

    static func reportUnsupported(_ list: [(op: String, location: String)], in path: String) throws {
        guard !list.isEmpty else { return }
        let items = list.map { "\($0.op) (first at \($0.location))" }
        throw GLMCError("\(path): unsupported op\(list.count > 1 ? "s" : ""): \(items.joined(separator: ", "))")
    }

    /// Binds the returned values as the function's outputs (tuples flattened, numbers as constants).
    static func finish(_ builder: GraphBuilder, result: TorchValue, path: String) throws -> Module {
        var outputs: [ValueID] = []
        func collect(_ v: TorchValue) throws {
            switch v {
            case .tensor(let id): outputs.append(id)
            case .list(let items), .tuple(let items): try items.forEach(collect)
            case .int(let x): outputs.append(try builder.scalar(Double(x), .i64))
            case .float(let x): outputs.append(try builder.scalar(x, .f32))
            case .bool(let x): outputs.append(try builder.scalar(x ? 1 : 0, .bool))
            default: throw GLMCError("\(path): forward returns a \(v.kindName), which is not a tensor")
            }
        }
        try collect(result)
        guard !outputs.isEmpty else { throw GLMCError("\(path): forward returns nothing") }
        builder.removeUnusedConstants(keeping: outputs)
        builder.function.outputs = outputs
        builder.function.outputNames = outputs.count == 1 ? ["output"] : outputs.indices.map { "output_\($0)" }
        let module = Module(opsets: ["": GraphBuilder.opset], main: builder.function,
                            metadata: ["producer_name": "glmc TorchScript front end"])
        try ModuleVerifier.verify(module)
        return module
    }

    /// A pickled attribute or constant as a converter value; tensors become `const` instructions
    /// named `path`.
    static func value(_ p: PickleValue, archive: TorchArchive, folder: String, path: String, builder: GraphBuilder) throws -> TorchValue {
        switch p {
        case .none: return .none
        case .bool(let b): return .bool(b)
        case .int(let i): return .int(i)
        case .float(let f): return .float(f)
        case .string(let s): return .string(s)
        case .tensor(let t): return .tensor(builder.constant(try archive.tensorData(t, folder: folder), name: path))
        case .list(let items), .tuple(let items):
            let values = try items.enumerated().map { try value($1, archive: archive, folder: folder, path: "\(path).\($0)", builder: builder) }
            if case .list = p { return .list(values) } else { return .tuple(values) }
        case .object(let className, let attributes, _):
            return .object(ModuleObject(className: className, path: path, attributes: attributes))
        default:
            throw GLMCError("\(archive.path): attribute \(path) is a pickled value glmc does not read")
        }
    }
}
