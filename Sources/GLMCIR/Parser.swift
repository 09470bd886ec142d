/// Reads glmc IR text (the format `Printer` writes; see Docs/IR.md) back into a `Module`.
///
/// The parser checks syntax and the scoping rules of the text (every value defined once in its
/// function and defined before use, counts of types, names and data elements); it does not check
/// operand types against the op set — that is the verifier's job. Every error is a `GLMCError`
/// whose message starts with `line:column: `.
public struct Parser {
    private var lexer: Lexer
    /// The current token (one token of lookahead).
    private var tok: Token
    private var opsets: [String: Int] = [:]
    private let baseDirectory: String?
    private var mappedFiles: [String: ByteStorage] = [:]
    private var opNames: [String: OpName] = [:]

    /// How deeply graph attributes may nest (If inside Loop inside ...).
    public static let maxGraphDepth = 64

    private init(bytes: [UInt8], baseDirectory: String?) throws(ParseFailure) {
        lexer = Lexer(bytes: bytes)
        tok = Token(kind: .eof, start: 0, end: 0)
        self.baseDirectory = baseDirectory
        tok = try lexer.next()
    }

    /// Parses a module. `baseDirectory` resolves relative `external<"path", ...>` data paths
    /// (normally the directory of the text file); without it they are relative to the working directory.
    public static func parse(_ text: String, baseDirectory: String? = nil) throws -> Module {
        let bytes = Array(text.utf8)
        do throws(ParseFailure) {
            var parser = try Parser(bytes: bytes, baseDirectory: baseDirectory)
            return try parser.parseModule()
        } catch {
            throw GLMCError(location(of: error.offset, in: bytes) + ": " + error.message)
        }
    }

    /// `line:column` (both 1-based, columns in Unicode scalars) of a byte offset.
    static func location(of offset: Int, in bytes: [UInt8]) -> String {
        var line = 1, column = 1
        var i = 0
        let end = min(max(offset, 0), bytes.count)
        while i < end {
            let b = bytes[i]
            if b == 0x0A { line += 1; column = 1 } else if (b & 0xC0) != 0x80 { column += 1 }
            i += 1
        }
        return "\(line):\(column)"
    }

    // MARK: - Token helpers

    private var bytes: [UInt8] { lexer.bytes }

    private mutating func advance() throws(ParseFailure) { tok = try lexer.next() }

    /// The token after the current one, without consuming anything.
    private func peek() throws(ParseFailure) -> Token {
        var copy = lexer
        return try copy.next()
    }

    private func fail(_ message: String, at offset: Int? = nil) -> ParseFailure {
        ParseFailure(offset: offset ?? tok.start, message: message)
    }

    /// Describes the current token for "expected X, found Y" messages.
    private var found: String {
        switch tok.kind {
        case .eof: return "end of input"
        case .identifier, .integer, .float, .value, .question:
            return "'" + text(tok) + "'"
        case .string: return "string"
        default: return tok.kind.spelling
        }
    }

    private func text(_ t: Token) -> String { String(decoding: bytes[t.start ..< t.end], as: UTF8.self) }

    private mutating func expect(_ kind: TokenKind, _ context: String) throws(ParseFailure) {
        guard tok.kind == kind else { throw fail("expected \(kind.spelling) \(context), found \(found)") }
        try advance()
    }

    private mutating func consume(_ kind: TokenKind) throws(ParseFailure) -> Bool {
        guard tok.kind == kind else { return false }
        try advance()
        return true
    }

    private func isIdentifier(_ word: StaticString, _ t: Token? = nil) -> Bool {
        let t = t ?? tok
        let n = word.utf8CodeUnitCount
        guard t.kind == .identifier, t.end - t.start == n else { return false }
        let p = word.utf8Start
        for i in 0 ..< n where bytes[t.start + i] != p[i] { return false }
        return true
    }

    private mutating func expectIdentifier(_ word: StaticString, _ context: String) throws(ParseFailure) {
        guard isIdentifier(word) else { throw fail("expected '\(word)' \(context), found \(found)") }
        try advance()
    }

    private mutating func parseString(_ context: String) throws(ParseFailure) -> String {
        guard tok.kind == .string else { throw fail("expected a string \(context), found \(found)") }
        let s = try lexer.stringValue(tok)
        try advance()
        return s
    }

    /// An identifier or a quoted string (names of functions, attributes, metadata keys).
    private mutating func parseName(_ context: String) throws(ParseFailure) -> String {
        if tok.kind == .identifier {
            let s = text(tok)
            try advance()
            return s
        }
        guard tok.kind == .string else { throw fail("expected a name \(context), found \(found)") }
        return try parseString(context)
    }

    private mutating func parseInteger(_ context: String) throws(ParseFailure) -> Int {
        guard tok.kind == .integer else { throw fail("expected an integer \(context), found \(found)") }
        guard let v = Int(text(tok)) else { throw fail("integer \(text(tok)) is out of range") }
        try advance()
        return v
    }

    // MARK: - Module

    private mutating func parseModule() throws(ParseFailure) -> Module {
        var metadata: [String: String] = [:]
        if isIdentifier("module") {
            try advance()
            try expectIdentifier("attributes", "after 'module'")
            try expect(.lBrace, "after 'module attributes'")
            if tok.kind != .rBrace {
                repeat {
                    let at = tok.start
                    let key = try parseName("for a module attribute")
                    try expect(.equal, "after module attribute name")
                    let value = try parseString("as module attribute value")
                    guard metadata.updateValue(value, forKey: key) == nil else {
                        throw fail("duplicate module attribute '\(key)'", at: at)
                    }
                } while try consume(.comma)
            }
            try expect(.rBrace, "after module attributes")
        }
        if isIdentifier("opsets") {
            try advance()
            try expect(.lBrace, "after 'opsets'")
            if tok.kind != .rBrace {
                repeat {
                    let at = tok.start
                    let domain = try parseName("for an opset domain")
                    try expect(.equal, "after opset domain")
                    let version = try parseInteger("as opset version")
                    guard opsets.updateValue(version, forKey: domain) == nil else {
                        throw fail("duplicate opset for domain \(quoted(domain))", at: at)
                    }
                } while try consume(.comma)
            }
            try expect(.rBrace, "after opsets")
        }
        try expectIdentifier("func", "to start the main function")
        try expect(.at, "after 'func'")
        var main = Function(name: try parseName("after 'func @'"))
        try parseFunction(&main, outer: nil, depth: 0)
        guard tok.kind == .eof else { throw fail("expected end of input after the function, found \(found)") }
        return Module(opsets: opsets, main: main, metadata: metadata)
    }

    // MARK: - Functions

    /// Value names visible in one function. `%N` names (the printer's) live in an array indexed from
    /// the first number the function defines (no hashing); other names, and numbers far outside
    /// that window, in a dictionary.
    private struct Scope {
        enum Key: Hashable {
            case number(Int)
            case name(String)
        }
        var base = -1
        /// Value index + 1 per number `base + i`; 0 where undefined.
        var slots: [Int32] = []
        var others: [Key: ValueID] = [:]

        subscript(key: Key) -> ValueID? {
            if case .number(let n) = key, base >= 0 {
                let i = n &- base
                if i >= 0 && i < slots.count && slots[i] != 0 { return ValueID(Int(slots[i]) - 1) }
            }
            return others.isEmpty ? nil : others[key]
        }

        mutating func define(_ key: Key, _ v: ValueID) {
            if case .number(let n) = key, v.index < Int(Int32.max) {
                if base < 0 { base = n }
                let i = n &- base
                if i >= 0 && i < slots.count { slots[i] = Int32(v.index + 1); return }
                // Grow for roughly dense numbering; far-away numbers go to the dictionary.
                if i >= slots.count && i < 2 * slots.count + 4096 {
                    slots.append(contentsOf: repeatElement(0, count: i + 1 - slots.count))
                    slots[i] = Int32(v.index + 1)
                    return
                }
            }
            others[key] = v
        }
    }

    private func key(_ t: Token) -> Scope.Key {
        let start = t.payloadStart, end = t.payloadEnd
        let n = end - start
        if n > 0 && n <= 18 && (n == 1 || bytes[start] != UInt8(ascii: "0")) {
            var v = 0
            var i = start
            while i < end {
                let c = bytes[i]
                guard Lexer.isDigit(c) else { break }
                v = v * 10 + Int(c - 0x30)
                i += 1
            }
            if i == end { return .number(v) }
        }
        return .name(String(decoding: bytes[start ..< end], as: UTF8.self))
    }

    private func lookup(_ t: Token, in scope: Scope, nested: Bool) throws(ParseFailure) -> ValueID {
        if let v = scope[key(t)] { return v }
        let hint = nested ? " (a nested graph sees only its own arguments, captures and values)" : ""
        throw fail("use of undefined value \(text(t))" + hint, at: t.start)
    }

    private func checkFresh(_ t: Token, in scope: Scope) throws(ParseFailure) {
        if scope[key(t)] != nil { throw fail("redefinition of value \(text(t))", at: t.start) }
    }

    /// Parses `(args) [captures(...)] -> (results) { body return ... }` into `f`. `outer` is the
    /// enclosing function's scope for a nested graph (nil for the main function).
    private mutating func parseFunction(_ f: inout Function, outer: Scope?, depth: Int) throws(ParseFailure) {
        var scope = Scope()
        let nested = outer != nil
        try expect(.lParen, "before function arguments")
        if tok.kind != .rParen {
            repeat {
                guard tok.kind == .value else { throw fail("expected an argument name, found \(found)") }
                let nameTok = tok
                try checkFresh(nameTok, in: scope)
                try advance()
                try expect(.colon, "after argument name")
                let type = try parseType()
                let names = try parseLoc(count: 1)
                let v = f.addValue(type, name: names?[0] ?? "")
                scope.define(key(nameTok), v)
                f.arguments.append(v)
            } while try consume(.comma)
        }
        try expect(.rParen, "after function arguments")

        if isIdentifier("captures") {
            guard let outer else { throw fail("only nested graphs can have captures") }
            try advance()
            try expect(.lParen, "after 'captures'")
            if tok.kind != .rParen {
                repeat {
                    guard tok.kind == .value else { throw fail("expected a captured value name, found \(found)") }
                    let outerValue = try lookup(tok, in: outer, nested: depth > 1)
                    try advance()
                    try expectIdentifier("as", "after captured value")
                    guard tok.kind == .value else { throw fail("expected a value name after 'as', found \(found)") }
                    let nameTok = tok
                    try checkFresh(nameTok, in: scope)
                    try advance()
                    try expect(.colon, "after capture name")
                    let type = try parseType()
                    let names = try parseLoc(count: 1)
                    let inner = f.addValue(type, name: names?[0] ?? "")
                    scope.define(key(nameTok), inner)
                    f.captures.append(Function.Capture(outer: outerValue, inner: inner))
                } while try consume(.comma)
            }
            try expect(.rParen, "after captures")
        }

        try expect(.arrow, "before function result types")
        try expect(.lParen, "before function result types")
        var resultTypes: [(type: TensorType, offset: Int)] = []
        var outputNames: [String] = []
        if tok.kind != .rParen {
            repeat {
                let at = tok.start
                let type = try parseType()
                resultTypes.append((type, at))
                outputNames.append(try parseLoc(count: 1)?[0] ?? "")
            } while try consume(.comma)
        }
        try expect(.rParen, "after function result types")
        try expect(.lBrace, "to open the function body")

        while true {
            if isIdentifier("return") {
                let next = try peek()
                if next.kind != .lParen && next.kind != .at { break }
            }
            if tok.kind == .rBrace { throw fail("expected 'return' before '}'") }
            if tok.kind == .eof { throw fail("unexpected end of input in function body (missing 'return')") }
            try parseInstruction(&f, scope: &scope, depth: depth)
        }

        let returnAt = tok.start
        try advance()
        var returned: [(ValueID, Token)] = []
        if tok.kind == .value {
            repeat {
                guard tok.kind == .value else { throw fail("expected a value name after ',' in return, found \(found)") }
                returned.append((try lookup(tok, in: scope, nested: nested), tok))
                try advance()
            } while try consume(.comma)
        }
        guard returned.count == resultTypes.count else {
            throw fail("return has \(returned.count) value\(returned.count == 1 ? "" : "s") but the signature declares \(resultTypes.count) result\(resultTypes.count == 1 ? "" : "s")", at: returnAt)
        }
        for (i, (v, t)) in returned.enumerated() where f.type(of: v) != resultTypes[i].type {
            throw fail("return value \(text(t)) has type \(f.type(of: v)) but the signature declares \(resultTypes[i].type)", at: t.start)
        }
        f.outputs = returned.map(\.0)
        f.outputNames = outputNames
        try expect(.rBrace, "after return")
    }

    /// `loc("a", "b")` with exactly `count` names, or nil when absent.
    private mutating func parseLoc(count: Int) throws(ParseFailure) -> [String]? {
        guard isIdentifier("loc") else { return nil }
        let at = tok.start
        try advance()
        try expect(.lParen, "after 'loc'")
        var names: [String] = []
        if tok.kind != .rParen {
            repeat { names.append(try parseString("in loc(...)")) } while try consume(.comma)
        }
        try expect(.rParen, "after loc names")
        guard names.count == count else {
            throw fail("loc(...) has \(names.count) name\(names.count == 1 ? "" : "s") but there \(count == 1 ? "is 1 value" : "are \(count) values")", at: at)
        }
        return names
    }

    // MARK: - Instructions

    private mutating func parseInstruction(_ f: inout Function, scope: inout Scope, depth: Int) throws(ParseFailure) {
        var resultToks: [Token] = []
        if tok.kind == .value {
            repeat {
                guard tok.kind == .value else { throw fail("expected a result name after ',', found \(found)") }
                try checkFresh(tok, in: scope)
                for r in resultToks where key(r) == key(tok) { throw fail("redefinition of value \(text(tok))") }
                resultToks.append(tok)
                try advance()
            } while try consume(.comma)
            try expect(.equal, "after result names")
        }
        let instAt = tok.start
        var inst: Instruction
        var pendingConstant: PendingData? = nil
        let next = isIdentifier("const") ? try peek() : tok
        if isIdentifier("const") && next.kind != .lParen && next.kind != .at {
            try advance()
            guard let opset = opsets[""] else {
                throw fail("'const' needs an opset for the default domain \"\" in 'opsets {...}'", at: instAt)
            }
            pendingConstant = try parseData()
            inst = Instruction(op: .constant, opset: opset, operands: [], results: [])
        } else {
            guard tok.kind == .identifier || tok.kind == .string else {
                throw fail(resultToks.isEmpty ? "expected an instruction or 'return', found \(found)"
                                              : "expected an op name after '=', found \(found)")
            }
            let opText = tok.kind == .identifier ? text(tok) : try lexer.stringValue(tok)
            let op = opName(opText)
            try advance()
            let opset: Int
            if try consume(.at) {
                opset = try parseInteger("after '@' (the op's opset version)")
            } else if let v = opsets[op.domain] {
                opset = v
            } else {
                throw fail("no opset for domain \(quoted(op.domain)) of \(op); declare it in 'opsets {...}' or write \(op)@N", at: instAt)
            }
            try expect(.lParen, "after op name")
            var operands: [ValueID?] = []
            if tok.kind != .rParen {
                repeat {
                    if tok.kind == .value {
                        operands.append(try lookup(tok, in: scope, nested: depth > 0))
                    } else if isIdentifier("_") {
                        operands.append(nil)
                    } else {
                        throw fail("expected an operand (a value name or '_'), found \(found)")
                    }
                    try advance()
                } while try consume(.comma)
            }
            try expect(.rParen, "after operands")
            inst = Instruction(op: op, opset: opset, operands: operands, results: [])
            if tok.kind == .lBrace {
                try parseAttributes(&inst.attributes, f: f, scope: scope, depth: depth)
            }
        }

        var types: [TensorType] = []
        if !resultToks.isEmpty {
            try expect(.colon, "before result types")
            let at = tok.start
            repeat { types.append(try parseType()) } while try consume(.comma)
            guard types.count == resultToks.count else {
                throw fail("\(resultToks.count) result\(resultToks.count == 1 ? "" : "s") but \(types.count) type\(types.count == 1 ? "" : "s")", at: at)
            }
        }
        if let pendingConstant {
            guard types.count == 1 else { throw fail("'const' defines exactly one value", at: instAt) }
            inst.attributes["value"] = .tensor(try materialize(pendingConstant, type: types[0]))
        }

        // `loc(...)` and `node(...)` in either order; a zero-result instruction named loc/node is told
        // apart by what follows its '(' (a string here, operands there).
        var names: [String]? = nil
        var sawNode = false
        while true {
            let isLoc = names == nil && isIdentifier("loc") && !resultToks.isEmpty
            let isNode = !sawNode && isIdentifier("node")
            guard isLoc || isNode, try isClause() else { break }
            if isLoc {
                names = try parseLoc(count: resultToks.count)
            } else {
                try advance()
                try expect(.lParen, "after 'node'")
                inst.nodeName = try parseString("in node(...)")
                try expect(.rParen, "after node name")
                sawNode = true
            }
        }

        inst.results.reserveCapacity(resultToks.count)
        for (i, r) in resultToks.enumerated() {
            let v = f.addValue(types[i], name: names?[i] ?? "")
            scope.define(key(r), v)
            inst.results.append(v)
        }
        f.body.append(inst)
    }

    /// Whether the identifier at `tok` starts a `loc("...")` / `node("...")` clause rather than a
    /// zero-result instruction of an op named `loc` or `node`.
    private func isClause() throws(ParseFailure) -> Bool {
        var copy = lexer
        let paren = try copy.next()
        guard paren.kind == .lParen else { return false }
        return try copy.next().kind == .string
    }

    private mutating func opName(_ s: String) -> OpName {
        if let cached = opNames[s] { return cached }
        let op: OpName
        if let dot = s.lastIndex(of: ".") {
            op = OpName(String(s[s.index(after: dot)...]), domain: String(s[..<dot]))
        } else {
            op = OpName(s)
        }
        opNames[s] = op
        return op
    }

    // MARK: - Attributes

    private mutating func parseAttributes(_ attributes: inout [String: Attribute], f: Function, scope: Scope,
                                          depth: Int) throws(ParseFailure) {
        try expect(.lBrace, "before attributes")
        if tok.kind != .rBrace {
            repeat {
                let at = tok.start
                let name = try parseName("for an attribute")
                try expect(.equal, "after attribute name")
                let value = try parseAttributeValue(scope: scope, depth: depth)
                guard attributes.updateValue(value, forKey: name) == nil else {
                    throw fail("duplicate attribute '\(name)'", at: at)
                }
            } while try consume(.comma)
        }
        try expect(.rBrace, "after attributes")
    }

    private enum ListElement {
        case int(Int), float(Float), string(String), tensor(TensorData), graph(Function)
    }

    private mutating func parseAttributeValue(scope: Scope, depth: Int) throws(ParseFailure) -> Attribute {
        if tok.kind == .lBracket {
            let listAt = tok.start
            try advance()
            var items: [(ListElement, Int)] = []
            if tok.kind != .rBracket {
                repeat {
                    let at = tok.start
                    guard tok.kind != .lBracket else { throw fail("attribute lists cannot nest") }
                    items.append((try parseAttributeElement(scope: scope, depth: depth), at))
                } while try consume(.comma)
            }
            try expect(.rBracket, "after attribute list")
            return try makeList(items, at: listAt)
        }
        switch try parseAttributeElement(scope: scope, depth: depth) {
        case .int(let v): return .int(v)
        case .float(let v): return .float(v)
        case .string(let v): return .string(v)
        case .tensor(let v): return .tensor(v)
        case .graph(let v): return .graph(v)
        }
    }

    private func makeList(_ items: [(ListElement, Int)], at: Int) throws(ParseFailure) -> Attribute {
        guard let first = items.first else { return .ints([]) }
        func mismatch(_ offset: Int) -> ParseFailure {
            ParseFailure(offset: offset, message: "attribute list mixes element kinds")
        }
        switch first.0 {
        case .int, .float:
            var ints: [Int] = []
            var floats: [Float] = []
            var anyFloat = false
            for (e, offset) in items {
                switch e {
                case .int(let v): ints.append(v); floats.append(Float(v))
                case .float(let v): anyFloat = true; floats.append(v)
                default: throw mismatch(offset)
                }
            }
            return anyFloat ? .floats(floats) : .ints(ints)
        case .string:
            var out: [String] = []
            for (e, offset) in items { guard case .string(let v) = e else { throw mismatch(offset) }; out.append(v) }
            return .strings(out)
        case .tensor:
            var out: [TensorData] = []
            for (e, offset) in items { guard case .tensor(let v) = e else { throw mismatch(offset) }; out.append(v) }
            return .tensors(out)
        case .graph:
            var out: [Function] = []
            for (e, offset) in items { guard case .graph(let v) = e else { throw mismatch(offset) }; out.append(v) }
            return .graphs(out)
        }
    }

    private mutating func parseAttributeElement(scope: Scope, depth: Int) throws(ParseFailure) -> ListElement {
        switch tok.kind {
        case .integer:
            guard let v = Int(text(tok)) else { throw fail("integer \(text(tok)) is out of range") }
            try advance()
            return .int(v)
        case .float:
            let v = try floatValue(tok)
            try advance()
            return .float(v)
        case .string:
            return .string(try parseString("as attribute value"))
        case .identifier:
            if isIdentifier("inf") || isIdentifier("nan") {
                let v = try floatValue(tok)
                try advance()
                return .float(v)
            }
            if isIdentifier("dense") || isIdentifier("dense_resource") || isIdentifier("external") {
                let data = try parseData()
                try expect(.colon, "before tensor attribute type")
                return .tensor(try materialize(data, type: try parseType()))
            }
            if isIdentifier("graph") {
                guard depth < Parser.maxGraphDepth else {
                    throw fail("graphs nest more than \(Parser.maxGraphDepth) deep")
                }
                try advance()
                try expect(.at, "after 'graph'")
                var g = Function(name: try parseName("after 'graph @'"))
                try parseFunction(&g, outer: scope, depth: depth + 1)
                return .graph(g)
            }
            throw fail("expected an attribute value, found \(found)")
        default:
            throw fail("expected an attribute value, found \(found)")
        }
    }

    private func floatValue(_ t: Token) throws(ParseFailure) -> Float {
        guard let v = Float(text(t)) else { throw fail("malformed float '\(text(t))'", at: t.start) }
        return v
    }

    // MARK: - Types

    private mutating func parseType() throws(ParseFailure) -> TensorType {
        guard tok.kind == .identifier else { throw fail("expected a type, found \(found)") }
        let name = text(tok)
        guard let dtype = DType(rawValue: name) else { throw fail("unknown dtype '\(name)'") }
        try advance()
        try expect(.lBracket, "after element type '\(name)'")
        if try consume(.star) {
            try expect(.rBracket, "after '*' in type")
            return TensorType(dtype, .unranked)
        }
        var dims: [Dim] = []
        if tok.kind != .rBracket {
            repeat {
                switch tok.kind {
                case .integer:
                    guard let v = Int(text(tok)), v >= 0 else { throw fail("bad dimension \(text(tok)) in type") }
                    dims.append(.known(v))
                    try advance()
                case .question:
                    if tok.payloadEnd > tok.payloadStart {
                        dims.append(.symbol(String(decoding: bytes[tok.payloadStart ..< tok.payloadEnd], as: UTF8.self)))
                        try advance()
                    } else {
                        try advance()
                        if tok.kind == .string {
                            dims.append(.symbol(try parseString("as dimension name")))
                        } else {
                            dims.append(.unknown)
                        }
                    }
                default:
                    throw fail("expected a dimension (a size, '?' or '?name') in type, found \(found)")
                }
            } while try consume(.comma)
        }
        try expect(.rBracket, "after dimensions")
        return TensorType(dtype, Shape(dims))
    }

    // MARK: - Tensor data

    /// Tensor data read before its type is known (the type follows the data in the text).
    private enum PendingData {
        case literals([Token], at: Int)
        case hex(Token)
        case external(path: String, offset: Int, length: Int, at: Int)
        case elided(at: Int)
    }

    private mutating func parseData() throws(ParseFailure) -> PendingData {
        let at = tok.start
        if isIdentifier("dense_resource") {
            try advance()
            try expect(.less, "after 'dense_resource'")
            try expectIdentifier("__elided__", "in dense_resource<...>")
            try expect(.greater, "after '__elided__'")
            return .elided(at: at)
        }
        if isIdentifier("external") {
            try advance()
            try expect(.less, "after 'external'")
            let path = try parseString("(the external data path)")
            try expect(.comma, "after external data path")
            let offset = try parseInteger("(the external data offset)")
            try expect(.comma, "after external data offset")
            let length = try parseInteger("(the external data length)")
            try expect(.greater, "after external data length")
            return .external(path: path, offset: offset, length: length, at: at)
        }
        guard isIdentifier("dense") else {
            throw fail("expected tensor data (dense<...>, external<...> or dense_resource<__elided__>), found \(found)")
        }
        try advance()
        try expect(.less, "after 'dense'")
        let result: PendingData
        if tok.kind == .string {
            result = .hex(tok)
            try advance()
        } else {
            try expect(.lBracket, "or a hex string after 'dense<'")
            var items: [Token] = []
            if tok.kind != .rBracket {
                repeat {
                    switch tok.kind {
                    case .integer, .float, .string: items.append(tok)
                    case .identifier where isIdentifier("true") || isIdentifier("false") || isIdentifier("inf") || isIdentifier("nan"):
                        items.append(tok)
                    default:
                        throw fail("expected a literal element, found \(found)")
                    }
                    try advance()
                } while try consume(.comma)
            }
            try expect(.rBracket, "after dense elements")
            result = .literals(items, at: at)
        }
        try expect(.greater, "after dense data")
        return result
    }

    /// The element count of a data-bearing type, or an error at `at`.
    private func staticCount(_ type: TensorType, at: Int) throws(ParseFailure) -> Int {
        guard let sizes = type.shape.staticSizes else {
            throw fail("tensor data needs a static shape, not \(type)", at: at)
        }
        guard let n = checkedElementCount(sizes), type.dtype == .string || n.multipliedReportingOverflow(by: type.dtype.byteSize).overflow == false else {
            throw fail("tensor type \(type) is too large", at: at)
        }
        return n
    }

    private mutating func materialize(_ data: PendingData, type: TensorType) throws(ParseFailure) -> TensorData {
        switch data {
        case .elided:
            return TensorData(type: type, contents: .elided)
        case .literals(let items, let at):
            let n = try staticCount(type, at: at)
            guard items.count == n else {
                throw fail("dense data has \(items.count) element\(items.count == 1 ? "" : "s") but type \(type) needs \(n)", at: at)
            }
            return try literalTensor(items, type: type)
        case .hex(let t):
            let n = try staticCount(type, at: t.start)
            guard type.dtype != .string else { throw fail("string tensors cannot be written as hex", at: t.start) }
            let digits = t.payloadEnd - t.payloadStart - 2
            guard !t.escaped, digits >= 0, bytes[t.payloadStart] == UInt8(ascii: "0"),
                  bytes[t.payloadStart + 1] | 0x20 == UInt8(ascii: "x"), digits % 2 == 0 else {
                throw fail("expected a hex string \"0x...\" with an even number of digits", at: t.start)
            }
            let count = digits / 2
            guard count == n * type.dtype.byteSize else {
                throw fail("hex data has \(count) bytes but type \(type) needs \(n * type.dtype.byteSize)", at: t.start)
            }
            var bad: Int? = nil
            let text = bytes
            let storage = ByteStorage.filling(count: count) { buffer in
                var p = t.payloadStart + 2
                for i in 0 ..< count {
                    guard let hi = hexValue(text[p]), let lo = hexValue(text[p + 1]) else { bad = p; return }
                    buffer[i] = hi << 4 | lo
                    p += 2
                }
            }
            if let bad { throw fail("invalid hex digit in dense data", at: bad) }
            return TensorData(type: type, contents: .bytes(storage, offset: 0, byteCount: count))
        case .external(let path, let offset, let length, let at):
            let n = try staticCount(type, at: at)
            guard type.dtype != .string else { throw fail("string tensors cannot be external data", at: at) }
            guard length == n * type.dtype.byteSize else {
                throw fail("external data has \(length) bytes but type \(type) needs \(n * type.dtype.byteSize)", at: at)
            }
            let resolved: String
            if path.hasPrefix("/") || baseDirectory == nil {
                resolved = path
            } else if let base = baseDirectory {
                resolved = base.hasSuffix("/") ? base + path : base + "/" + path
            } else {
                resolved = path
            }
            let storage: ByteStorage
            if let cached = mappedFiles[resolved] {
                storage = cached
            } else {
                do {
                    storage = try ByteStorage.mapping(path: resolved)
                } catch {
                    throw fail("\(error)", at: at)
                }
                mappedFiles[resolved] = storage
            }
            guard offset >= 0, length >= 0, offset <= storage.count, length <= storage.count - offset else {
                throw fail("external data range \(offset)..<\(offset &+ length) is outside '\(path)' (\(storage.count) bytes)", at: at)
            }
            return TensorData(type: type, contents: .bytes(storage, offset: offset, byteCount: length),
                              origin: TensorData.ExternalOrigin(path: path, offset: offset, length: length))
        }
    }

    private func literalTensor(_ items: [Token], type: TensorType) throws(ParseFailure) -> TensorData {
        switch type.dtype {
        case .string:
            var strings: [String] = []
            strings.reserveCapacity(items.count)
            for t in items {
                guard t.kind == .string else { throw fail("expected a string element for \(type)", at: t.start) }
                strings.append(try lexer.stringValue(t))
            }
            return TensorData(type: type, contents: .strings(strings))
        case .f64: return try store(items, type) { t throws(ParseFailure) in try self.doubleElement(t, type) }
        case .f32: return try store(items, type) { t throws(ParseFailure) in try self.floatElement(t, type) }
        case .f16: return try store(items, type) { t throws(ParseFailure) in floatToHalf(try self.floatElement(t, type)) }
        case .bf16: return try store(items, type) { t throws(ParseFailure) in floatToBFloat16(try self.floatElement(t, type)) }
        case .i64: return try store(items, type) { t throws(ParseFailure) in try self.intElement(t, type, Int64.self) }
        case .i32: return try store(items, type) { t throws(ParseFailure) in try self.intElement(t, type, Int32.self) }
        case .i16: return try store(items, type) { t throws(ParseFailure) in try self.intElement(t, type, Int16.self) }
        case .i8: return try store(items, type) { t throws(ParseFailure) in try self.intElement(t, type, Int8.self) }
        case .u64: return try store(items, type) { t throws(ParseFailure) in try self.intElement(t, type, UInt64.self) }
        case .u32: return try store(items, type) { t throws(ParseFailure) in try self.intElement(t, type, UInt32.self) }
        case .u16: return try store(items, type) { t throws(ParseFailure) in try self.intElement(t, type, UInt16.self) }
        case .u8: return try store(items, type) { t throws(ParseFailure) in try self.intElement(t, type, UInt8.self) }
        case .bool:
            return try store(items, type) { t throws(ParseFailure) -> UInt8 in
                if self.isIdentifier("true", t) { return 1 }
                if self.isIdentifier("false", t) { return 0 }
                if t.kind == .integer, let v = Int(self.text(t)), v == 0 || v == 1 { return UInt8(v) }
                throw self.fail("expected true or false for \(type), found '\(self.text(t))'", at: t.start)
            }
        }
    }

    private func store<T>(_ items: [Token], _ type: TensorType, _ convert: (Token) throws(ParseFailure) -> T) throws(ParseFailure) -> TensorData {
        var values: [T] = []
        values.reserveCapacity(items.count)
        for t in items { values.append(try convert(t)) }
        return TensorData(type: type, elements: values)
    }

    private func checkNumeric(_ t: Token, _ type: TensorType) throws(ParseFailure) {
        switch t.kind {
        case .integer, .float: return
        case .identifier where isIdentifier("inf", t) || isIdentifier("nan", t): return
        default: throw fail("expected a number for \(type), found '\(text(t))'", at: t.start)
        }
    }

    private func floatElement(_ t: Token, _ type: TensorType) throws(ParseFailure) -> Float {
        try checkNumeric(t, type)
        guard let v = Float(text(t)) else { throw fail("malformed number '\(text(t))'", at: t.start) }
        return v
    }

    private func doubleElement(_ t: Token, _ type: TensorType) throws(ParseFailure) -> Double {
        try checkNumeric(t, type)
        guard let v = Double(text(t)) else { throw fail("malformed number '\(text(t))'", at: t.start) }
        return v
    }

    private func intElement<T: FixedWidthInteger>(_ t: Token, _ type: TensorType, _: T.Type) throws(ParseFailure) -> T {
        guard t.kind == .integer else { throw fail("expected an integer for \(type), found '\(text(t))'", at: t.start) }
        guard let v = T(text(t)) else { throw fail("\(text(t)) does not fit in \(type.dtype)", at: t.start) }
        return v
    }
}
