import GLMCIR

/// TorchScript IR text as `print(module.graph)` writes it:
/// ```
/// graph(%self.1 : __torch__.Model,
///       %x : Float(1, 3, 16, 16, strides=[768, 256, 16, 1], requires_grad=0, device=cpu)):
///   %4 : int[] = prim::ListConstruct(%3, %3)
///   %y : Tensor = aten::relu(%x), scope: __module.relu # model.py:12:0
///   return (%y)
/// ```
struct GraphText {
    struct Parameter {
        var name: String
        var type: DeclaredType
        var line: Int
        /// Sizes and element type the user gave for this input.
        var override: TorchScriptInput?
    }

    /// What a `: Type` annotation says: a tensor's element type and sizes when printed, or a class name.
    struct DeclaredType {
        var text: String
        var dtype: DType?
        var sizes: [Int]?
    }

    enum AttributeValue {
        case int(Int)
        case float(Double)
        case string(String)
        case list([AttributeValue])
        /// `<Tensor>`: the printer left the values out.
        case elidedTensor
        /// A tensor printed inline (rounded by PyTorch's printer).
        case tensor(TensorData)
    }

    struct Node {
        var outputs: [(name: String, type: DeclaredType)]
        var kind: String
        var attributes: [String: AttributeValue]
        var inputs: [String]
        var line: Int
    }

    var parameters: [Parameter] = []
    var nodes: [Node] = []
    var returns: [String] = []

    static func parse(_ text: String, path: String) throws -> GraphText {
        var scanner = Scanner(bytes: Array(text.utf8), path: path)
        return try scanner.parseGraph()
    }

    struct Scanner {
        let bytes: [UInt8]
        let path: String
        var position = 0
        var line = 1

        init(bytes: [UInt8], path: String) { self.bytes = bytes; self.path = path }

        func error(_ message: String) -> GLMCError { GLMCError("\(path):\(line): \(message)") }

        var atEnd: Bool { position >= bytes.count }
        var peek: UInt8 { atEnd ? 0 : bytes[position] }

        mutating func advance() {
            if peek == 0x0a { line += 1 }
            position += 1
        }

        mutating func skipSpaces(newlines: Bool = false) {
            while !atEnd, peek == 0x20 || peek == 0x09 || peek == 0x0d || (newlines && peek == 0x0a) { advance() }
        }

        func startsWith(_ s: String) -> Bool {
            let u = Array(s.utf8)
            return position + u.count <= bytes.count && Array(bytes[position ..< position + u.count]) == u
        }

        mutating func expect(_ s: String) throws {
            guard startsWith(s) else { throw error("expected '\(s)', found \(foundDescription)") }
            for _ in s.utf8 { advance() }
        }

        var foundDescription: String {
            if atEnd { return "the end of the text" }
            let end = bytes[position...].prefix(24).firstIndex(of: 0x0a) ?? min(bytes.count, position + 24)
            return "'\(String(decoding: bytes[position ..< end], as: UTF8.self))'"
        }

        /// `%name` (names may contain dots: `%self.1`, `%input.5`).
        mutating func valueName() throws -> String {
            try expect("%")
            let start = position
            while !atEnd, isNameByte(peek) { advance() }
            guard position > start else { throw error("expected a value name after '%'") }
            return String(decoding: bytes[start ..< position], as: UTF8.self)
        }

        func isNameByte(_ c: UInt8) -> Bool {
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x5f || c == 0x2e
        }

        /// A type up to the `,` `)` or ` =` that ends it, with brackets balanced.
        mutating func declaredType() throws -> DeclaredType {
            skipSpaces()
            let start = position
            var depth = 0
            while !atEnd {
                let c = peek
                if c == 0x28 || c == 0x5b { depth += 1 }
                else if c == 0x29 || c == 0x5d {
                    if depth == 0 { break }
                    depth -= 1
                } else if depth == 0, c == 0x2c || c == 0x3d || c == 0x0a { break }
                advance()
            }
            let text = String(decoding: bytes[start ..< position], as: UTF8.self).trimmingSpaces
            guard !text.isEmpty else { throw error("expected a type after ':'") }
            return Self.interpret(text)
        }

        /// `Float(1, 3, strides=[...], requires_grad=0, device=cpu)` → f32 [1, 3].
        static func interpret(_ text: String) -> DeclaredType {
            guard let open = text.firstIndex(of: "("), text.hasSuffix(")"),
                  let dtype = TorchDType.textNames[String(text[..<open])] else {
                return DeclaredType(text: text, dtype: TorchDType.textNames[text], sizes: nil)
            }
            let inner = text[text.index(after: open) ..< text.index(before: text.endIndex)]
            var sizes: [Int] = []
            for part in inner.split(separator: ",") {
                let p = part.trimming(" ")
                if p.contains("=") || p.contains("[") || p.contains("]") { break }
                guard let v = Int(p) else { return DeclaredType(text: text, dtype: dtype, sizes: nil) }
                sizes.append(v)
            }
            return DeclaredType(text: text, dtype: dtype, sizes: sizes)
        }

        mutating func parseGraph() throws -> GraphText {
            var graph = GraphText()
            skipSpaces(newlines: true)
            try expect("graph(")
            skipSpaces(newlines: true)
            while peek == 0x25 {
                let paramLine = line
                let name = try valueName()
                skipSpaces()
                try expect(":")
                graph.parameters.append(Parameter(name: name, type: try declaredType(), line: paramLine))
                skipSpaces(newlines: true)
                if peek == 0x2c { advance(); skipSpaces(newlines: true) }
            }
            try expect(")")
            skipSpaces()
            try expect(":")
            while true {
                skipSpaces(newlines: true)
                if atEnd { throw error("the graph ends without 'return'") }
                if startsWith("return") {
                    try expect("return")
                    skipSpaces()
                    try expect("(")
                    skipSpaces()
                    while peek == 0x25 {
                        graph.returns.append(try valueName())
                        skipSpaces()
                        if peek == 0x2c { advance(); skipSpaces() }
                    }
                    try expect(")")
                    return graph
                }
                graph.nodes.append(try node())
            }
        }

        mutating func node() throws -> Node {
            let nodeLine = line
            var outputs: [(String, DeclaredType)] = []
            while peek == 0x25 {
                let name = try valueName()
                skipSpaces()
                try expect(":")
                outputs.append((name, try declaredType()))
                skipSpaces()
                if peek == 0x2c { advance(); skipSpaces() }
            }
            try expect("=")
            skipSpaces()
            let start = position
            while !atEnd, peek != 0x5b, peek != 0x28, peek != 0x0a, peek != 0x20 { advance() }
            let kind = String(decoding: bytes[start ..< position], as: UTF8.self)
            guard kind.contains("::") else { throw error("expected an op such as aten::relu, found '\(kind)'") }
            if kind == "prim::If" || kind == "prim::Loop" {
                throw error("\(kind): control flow in the graph (data-dependent branches or loops) cannot be converted; trace the model or freeze it")
            }
            var attributes: [String: AttributeValue] = [:]
            if peek == 0x5b { attributes = try attributeList() }
            try expect("(")
            var inputs: [String] = []
            skipSpaces(newlines: true)
            while peek == 0x25 {
                inputs.append(try valueName())
                skipSpaces(newlines: true)
                if peek == 0x2c { advance(); skipSpaces(newlines: true) }
            }
            try expect(")")
            // `, scope: …` and `# file:line:col` run to the end of the line.
            while !atEnd, peek != 0x0a { advance() }
            return Node(outputs: outputs, kind: kind, attributes: attributes, inputs: inputs, line: nodeLine)
        }

        /// `[name=value, …]`, brackets balanced (printed tensors nest `[ CPUFloatType{2} ]`).
        mutating func attributeList() throws -> [String: AttributeValue] {
            try expect("[")
            var result: [String: AttributeValue] = [:]
            while true {
                skipSpaces(newlines: true)
                let start = position
                while !atEnd, isNameByte(peek) { advance() }
                let name = String(decoding: bytes[start ..< position], as: UTF8.self)
                guard !name.isEmpty else { throw error("expected an attribute name, found \(foundDescription)") }
                try expect("=")
                let valueStart = position
                var depth = 0
                var inString = false
                while !atEnd {
                    let c = peek
                    if inString { if c == 0x5c { advance() } else if c == 0x22 { inString = false } }
                    else if c == 0x22 { inString = true }
                    else if c == 0x5b || c == 0x7b { depth += 1 }
                    else if c == 0x5d || c == 0x7d { if depth == 0 { break }; depth -= 1 }
                    else if c == 0x2c, depth == 0 { break }
                    advance()
                }
                guard !atEnd else { throw error("the attribute list of this node is not closed") }
                result[name] = try attributeValue(String(decoding: bytes[valueStart ..< position], as: UTF8.self))
                if peek == 0x2c { advance(); continue }
                try expect("]")
                return result
            }
        }

        func attributeValue(_ raw: String) throws -> AttributeValue {
            let text = raw.trimming(" \n")
            if text == "<Tensor>" { return .elidedTensor }
            if text.hasPrefix("\""), text.hasSuffix("\""), text.count >= 2 {
                return .string(String(text.dropFirst().dropLast()).replacingOccurrences(of: "\\\"", with: "\""))
            }
            if text.hasPrefix("["), text.hasSuffix("]") {
                let inner = text.dropFirst().dropLast().trimming(" ")
                if inner.isEmpty { return .list([]) }
                return .list(try inner.split(separator: ",").map { try attributeValue(String($0)) })
            }
            if let i = Int(text) { return .int(i) }
            if let d = Self.number(text) { return .float(d) }
            // `{4}` is a Long scalar tensor, `{0.5}` or `{4.}` a floating-point one.
            if text.hasPrefix("{"), text.hasSuffix("}"), let i = Int(String(text.dropFirst().dropLast()).trimmingSpaces) {
                return .tensor(TensorData(type: TensorType(.i64, static: []), elements: [Int64(i)]))
            }
            if text.hasPrefix("{"), text.hasSuffix("}"), let d = Self.number(String(text.dropFirst().dropLast()).trimmingSpaces) {
                return .tensor(TensorData(type: TensorType(.f64, static: []), elements: [d]))
            }
            if let t = try printedTensor(text) { return .tensor(t) }
            return .string(text)
        }

        static func number(_ s: String) -> Double? {
            switch s {
            case "inf": return .infinity
            case "-inf": return -.infinity
            case "nan": return .nan
            default: return Double(s)
            }
        }

        /// ` 0.25  0.5 [ CPUFloatType{2} ]` (optionally `1e-02 *` scaled): values as PyTorch printed them.
        func printedTensor(_ text: String) throws -> TensorData? {
            guard let open = text.range(of: "[ CPU", options: .backwards), let brace = text[open.upperBound...].firstIndex(of: "{"),
                  let close = text[brace...].firstIndex(of: "}") else { return nil }
            let typeName = String(text[open.upperBound ..< brace])
            let dims = text[text.index(after: brace) ..< close].split(separator: ",").compactMap { Int($0.trimmingSpaces) }
            let dtypes: [String: DType] = ["FloatType": .f32, "DoubleType": .f64, "LongType": .i64, "IntType": .i32, "BoolType": .bool]
            guard let dtype = dtypes[typeName] else { throw error("unsupported: an inline tensor of \(typeName)") }
            var words = text[..<open.lowerBound].split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "(" || $0 == ")" || $0 == "," || $0 == ":" })
            var scale = 1.0
            if let star = words.firstIndex(of: "*"), star == 1, let s = Double(words[0]) { scale = s; words.removeFirst(2) }
            // Higher-rank tensors print slices as `(1,.,.) =`: keep only numbers.
            let values = words.compactMap { Self.number(String($0)) }.map { $0 * scale }
            guard values.count == (checkedElementCount(dims) ?? -1) else {
                throw error("an inline tensor has \(values.count) values for sizes \(dims)")
            }
            let t = TensorType(dtype, static: dims)
            switch dtype {
            case .f32: return TensorData(type: t, elements: values.map { Float($0) })
            case .f64: return TensorData(type: t, elements: values)
            case .i64: return TensorData(type: t, elements: values.map { Int64($0) })
            case .i32: return TensorData(type: t, elements: values.map { Int32($0) })
            default: return TensorData(type: t, elements: values.map { $0 != 0 ? UInt8(1) : 0 })
            }
        }
    }
}

extension StringProtocol {
    var trimmingSpaces: String { trimming(" \t\r\n") }

    func trimming(_ set: String) -> String {
        let chars = Set(set)
        var s = Substring(self)
        while let f = s.first, chars.contains(f) { s.removeFirst() }
        while let l = s.last, chars.contains(l) { s.removeLast() }
        return String(s)
    }
}

/// Converts a parsed graph: values by name, each node through `AtenLowering`.
final class GraphTextConverter {
    let builder: GraphBuilder
    let archive: TorchArchive?
    let path: String
    var unsupported: [(op: String, location: String)] = []
    var attributeCache: [String: TorchValue] = [:]

    init(builder: GraphBuilder, archive: TorchArchive?, path: String) {
        self.builder = builder
        self.archive = archive
        self.path = path
    }

    func convert(_ graph: GraphText) throws -> TorchValue {
        var env: [String: TorchValue] = [:]
        for p in graph.parameters {
            builder.location = "\(path):\(p.line)"
            if p.type.dtype == nil, p.type.text.hasPrefix("__torch__.") {
                guard let archive else {
                    env[p.name] = .object(ModuleObject(className: p.type.text, path: "", attributes: []))
                    continue
                }
                guard case .object(let className, let attributes, _)? = try archive.pickle("data.pkl") else {
                    throw GLMCError("\(archive.label("data.pkl")): the root value is not a module object")
                }
                env[p.name] = .object(ModuleObject(className: className, path: "", attributes: attributes))
                continue
            }
            guard let sizes = p.override?.sizes ?? p.type.sizes else {
                throw GLMCError("\(path):\(p.line): input '%\(p.name)' is typed \(p.type.text), without sizes: give them with --input-shape \(p.name)=1x3x224x224")
            }
            let dtype = p.override?.dtype ?? p.type.dtype ?? .f32
            env[p.name] = .tensor(builder.argument(TensorType(dtype, static: sizes), name: p.name))
        }
        for node in graph.nodes {
            builder.location = "\(path):\(node.line)"
            var inputs: [TorchValue] = []
            for name in node.inputs {
                guard let v = env[name] else { throw GLMCError("\(path):\(node.line): %\(name) is used before it is defined") }
                inputs.append(v)
            }
            let results: [TorchValue]
            if inputs.contains(where: { $0.isUnsupported }) {
                // Downstream of an unsupported op: only look for more unsupported ops.
                if AtenLowering(b: builder, op: node.kind, args: CallArguments(positional: inputs)).isOutsideTheTable,
                   !unsupported.contains(where: { $0.op == node.kind }) {
                    unsupported.append((node.kind, builder.location))
                }
                results = Array(repeating: .unsupported, count: node.outputs.count)
            } else {
                results = try convert(node, inputs)
            }
            var values = results
            if values.count == 1, node.outputs.count > 1, let items = values[0].items { values = items }
            guard values.count == node.outputs.count else {
                throw GLMCError("\(path):\(node.line): \(node.kind) gives \(values.count) values for \(node.outputs.count) outputs")
            }
            for (o, v) in zip(node.outputs, values) {
                env[o.name] = v
                if case .tensor(let id) = v, builder.function.name(of: id).hasSuffix("_out") { builder.function.values[id.index].name = o.name }
            }
        }
        let returned = try graph.returns.map { name -> TorchValue in
            guard let v = env[name] else { throw GLMCError("\(path): the graph returns %\(name), which is not defined") }
            return v
        }
        return returned.count == 1 ? returned[0] : .tuple(returned)
    }

    func convert(_ node: GraphText.Node, _ inputs: [TorchValue]) throws -> [TorchValue] {
        switch node.kind {
        case "prim::Constant":
            guard let value = node.attributes["value"] else { return [.none] }
            return [try constant(value, node: node)]
        case "prim::GetAttr":
            guard case .string(let name)? = node.attributes["name"], case .object(let object)? = inputs.first else {
                throw builder.error("prim::GetAttr without a name or a module")
            }
            guard archive != nil else {
                throw builder.error("prim::GetAttr '\(name)' reads a module attribute, which IR text does not hold: convert the archive the graph was printed from (or print the graph of the frozen module)")
            }
            let attributePath = object.path.isEmpty ? name : object.path + "." + name
            if let cached = attributeCache[attributePath] { return [cached] }
            guard let p = object.attribute(name) else { throw builder.error("module \(object.className) has no attribute '\(name)'") }
            let v = try TorchScriptImporter.value(p, archive: archive!, folder: "data", path: attributePath, builder: builder)
            attributeCache[attributePath] = v
            return [v]
        case "prim::CallMethod":
            throw builder.error("prim::CallMethod: calls of submodule methods are not inlined in module.graph; convert module.inlined_graph or the archive")
        default:
            guard let results = try AtenLowering(b: builder, op: node.kind, args: CallArguments(positional: inputs)).lower() else {
                if !unsupported.contains(where: { $0.op == node.kind }) { unsupported.append((node.kind, builder.location)) }
                return Array(repeating: .unsupported, count: node.outputs.count)
            }
            return results
        }
    }

    func constant(_ value: GraphText.AttributeValue, node: GraphText.Node) throws -> TorchValue {
        let declared = node.outputs.first?.type
        switch value {
        case .int(let i):
            if declared?.text == "bool" { return .bool(i != 0) }
            if declared?.text == "float" { return .float(Double(i)) }
            return .int(i)
        case .float(let d): return .float(d)
        case .string(let s): return declared?.text == "Device" ? .device(s) : .string(s)
        case .list(let items): return .list(try items.map { try constant($0, node: node) })
        case .tensor(var data):
            if let dtype = declared?.dtype, dtype != data.dtype, data.sizes.isEmpty, let v = scalarValue(data) {
                return .tensor(try builder.scalar(v, dtype))
            }
            if data.dtype == .f64, data.sizes.isEmpty, let v = scalarValue(data) { data = TensorData(type: TensorType(.f32, static: []), elements: [Float(v)]) }
            return .tensor(builder.constant(data, name: node.outputs.first?.name ?? ""))
        case .elidedTensor:
            guard let out = node.outputs.first, let dtype = out.type.dtype, let sizes = out.type.sizes else {
                throw builder.error("an elided tensor constant (<Tensor>) without a printed type cannot become an input")
            }
            return .tensor(builder.argument(TensorType(dtype, static: sizes), name: out.name))
        }
    }
}
