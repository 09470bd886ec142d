import GLMCIR

/// A position in a serialized code member, for error messages.
struct SourceLocation: CustomStringConvertible {
    var member: String
    var line: Int
    var column: Int
    var description: String { "\(member):\(line):\(column)" }
}

/// An expression of the Python subset TorchScript serializes.
indirect enum CodeExpr {
    case name(String, SourceLocation)
    case int(Int)
    case float(Double)
    case string(String)
    case bool(Bool)
    case none
    case attribute(CodeExpr, String, SourceLocation)
    case call(CodeExpr, [CodeExpr], [(String, CodeExpr)], SourceLocation)
    case index(CodeExpr, CodeExpr, SourceLocation)
    case list([CodeExpr])
    case tuple([CodeExpr])
    case binary(String, CodeExpr, CodeExpr, SourceLocation)
    case unary(String, CodeExpr, SourceLocation)

    /// `torch.conv2d` → "torch.conv2d"; nil unless a chain of names.
    var dottedName: String? {
        switch self {
        case .name(let n, _): return n
        case .attribute(let base, let n, _): return base.dottedName.map { $0 + "." + n }
        default: return nil
        }
    }
}

enum CodeStatement {
    /// `a = e` or `a, b = e`.
    case assign([String], CodeExpr, SourceLocation)
    case expression(CodeExpr, SourceLocation)
    case `return`(CodeExpr, SourceLocation)
    /// Control flow and other statements a straight-line trace never has: refused when run.
    case unsupported(String, SourceLocation)
}

struct CodeMethod {
    var name: String
    var parameters: [String]
    var body: [CodeStatement]
    var location: SourceLocation
}

struct CodeClass {
    /// `__torch__.torch.nn.modules.conv.___torch_mangle_15.Conv2d`.
    var qualifiedName: String
    var methods: [String: CodeMethod]
}

/// Parses serialized TorchScript code (`code/__torch__/….py`): class definitions whose methods are
/// straight-line assignments of calls, as `torch.jit.save` writes them.
struct CodeParser {
    enum Token: Equatable {
        case name(String)
        case int(Int)
        case float(Double)
        case string(String)
        case op(String)
        case newline
        case indent
        case dedent
        case end
    }

    let member: String
    var tokens: [(token: Token, line: Int, column: Int)] = []
    var index = 0

    /// Parses one code member into its classes. `modulePath` is the member's path as a dotted
    /// module name (`__torch__.torch.nn.modules.conv.___torch_mangle_15`).
    static func parse(_ text: String, member: String, modulePath: String) throws -> [CodeClass] {
        var parser = CodeParser(member: member)
        try parser.tokenize(text)
        return try parser.parseFile(modulePath: modulePath)
    }

    init(member: String) { self.member = member }

    func error(_ message: String, line: Int, column: Int) -> GLMCError {
        GLMCError("\(member):\(line):\(column): \(message)")
    }

    func error(_ message: String) -> GLMCError {
        let t = tokens[min(index, tokens.count - 1)]
        return error(message, line: t.line, column: t.column)
    }

    var location: SourceLocation {
        let t = tokens[min(index, tokens.count - 1)]
        return SourceLocation(member: member, line: t.line, column: t.column)
    }

    // MARK: Tokens

    mutating func tokenize(_ text: String) throws {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        var indents = [0]
        var depth = 0
        /// Where the outermost open bracket is, for the error when it is never closed.
        var opened = (line: 0, column: 0)
        for (n, rawLine) in lines.enumerated() {
            let line = Array(rawLine.utf8)
            let lineNumber = n + 1
            var i = 0
            if depth == 0 {
                while i < line.count, line[i] == 0x20 { i += 1 }
                if i < line.count, line[i] == 0x09 { throw error("tabs are not used in serialized code", line: lineNumber, column: i + 1) }
                if i == line.count || line[i] == 0x23 { continue } // blank line or comment
                if i > indents.last! {
                    indents.append(i)
                    tokens.append((.indent, lineNumber, i + 1))
                } else {
                    while i < indents.last! {
                        indents.removeLast()
                        tokens.append((.dedent, lineNumber, i + 1))
                    }
                    guard i == indents.last! else { throw error("inconsistent indentation", line: lineNumber, column: i + 1) }
                }
            }
            while i < line.count {
                let c = line[i]
                let column = i + 1
                if c == 0x20 || c == 0x0d { i += 1; continue }
                if c == 0x23 { break } // comment
                if isNameStart(c) {
                    var j = i
                    while j < line.count, isNameStart(line[j]) || (line[j] >= 0x30 && line[j] <= 0x39) { j += 1 }
                    tokens.append((.name(String(decoding: line[i ..< j], as: UTF8.self)), lineNumber, column))
                    i = j
                } else if (c >= 0x30 && c <= 0x39) || (c == 0x2e && i + 1 < line.count && line[i + 1] >= 0x30 && line[i + 1] <= 0x39) {
                    var j = i
                    var isFloat = false
                    while j < line.count {
                        let d = line[j]
                        if d >= 0x30 && d <= 0x39 { j += 1 }
                        else if d == 0x2e || d == 0x65 || d == 0x45 { isFloat = true; j += 1 }
                        else if (d == 0x2b || d == 0x2d) && (line[j - 1] == 0x65 || line[j - 1] == 0x45) { j += 1 }
                        else { break }
                    }
                    let s = String(decoding: line[i ..< j], as: UTF8.self)
                    if isFloat {
                        guard let v = Double(s) else { throw error("bad number '\(s)'", line: lineNumber, column: column) }
                        tokens.append((.float(v), lineNumber, column))
                    } else {
                        guard let v = Int(s) else { throw error("integer '\(s)' does not fit 64 bits", line: lineNumber, column: column) }
                        tokens.append((.int(v), lineNumber, column))
                    }
                    i = j
                } else if c == 0x22 || c == 0x27 {
                    var j = i + 1
                    var s: [UInt8] = []
                    while j < line.count, line[j] != c {
                        if line[j] == 0x5c, j + 1 < line.count {
                            j += 1
                            switch line[j] {
                            case 0x6e: s.append(0x0a)
                            case 0x74: s.append(0x09)
                            default: s.append(line[j])
                            }
                        } else { s.append(line[j]) }
                        j += 1
                    }
                    guard j < line.count else { throw error("unterminated string", line: lineNumber, column: column) }
                    tokens.append((.string(String(decoding: s, as: UTF8.self)), lineNumber, column))
                    i = j + 1
                } else {
                    let two = i + 1 < line.count ? String(decoding: line[i ... i + 1], as: UTF8.self) : ""
                    if ["->", "==", "!=", "<=", ">=", "//", "**"].contains(two) {
                        tokens.append((.op(two), lineNumber, column))
                        i += 2
                        continue
                    }
                    let one = String(decoding: [c], as: UTF8.self)
                    guard c >= 0x20, c < 0x7f else {
                        throw error("unexpected byte 0x\(String(c, radix: 16, uppercase: false))", line: lineNumber, column: column)
                    }
                    guard "()[]{},:.=+-*/<>%~&|".contains(one) else {
                        throw error("unexpected character '\(one)'", line: lineNumber, column: column)
                    }
                    if "([{".contains(one) {
                        if depth == 0 { opened = (lineNumber, column) }
                        depth += 1
                    }
                    if ")]}".contains(one) { depth = max(0, depth - 1) }
                    tokens.append((.op(one), lineNumber, column))
                    i += 1
                }
            }
            if depth == 0, let last = tokens.last?.token, last != .newline, last != .indent, last != .dedent {
                tokens.append((.newline, lineNumber, line.count + 1))
            }
        }
        if depth != 0 { throw error("the bracket opened here is never closed (the code ends inside it)", line: opened.line, column: opened.column) }
        while indents.count > 1 { indents.removeLast(); tokens.append((.dedent, lines.count, 1)) }
        tokens.append((.end, lines.count, 1))
    }

    func isNameStart(_ c: UInt8) -> Bool { (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c == 0x5f }

    var current: Token { tokens[index].token }

    mutating func advance() { if index < tokens.count - 1 { index += 1 } }

    mutating func accept(_ t: Token) -> Bool {
        if current == t { advance(); return true }
        return false
    }

    mutating func expect(_ t: Token, _ what: String) throws {
        guard accept(t) else { throw error("expected \(what), found \(describe(current))") }
    }

    mutating func expectName() throws -> String {
        guard case .name(let n) = current else { throw error("expected a name, found \(describe(current))") }
        advance()
        return n
    }

    func describe(_ t: Token) -> String {
        switch t {
        case .name(let n): return "'\(n)'"
        case .int(let v): return "\(v)"
        case .float(let v): return "\(v)"
        case .string(let s): return "\"\(s)\""
        case .op(let o): return "'\(o)'"
        case .newline: return "the end of the line"
        case .indent: return "an indented block"
        case .dedent: return "the end of a block"
        case .end: return "the end of the code"
        }
    }

    /// Skips to the end of the current logical line (and any block it opens).
    mutating func skipLine() {
        while current != .newline && current != .end { advance() }
        _ = accept(.newline)
        if current == .indent { skipBlock() }
    }

    mutating func skipBlock() {
        var level = 0
        repeat {
            if current == .indent { level += 1 }
            if current == .dedent { level -= 1 }
            advance()
        } while level > 0 && current != .end
    }

    // MARK: Structure

    mutating func parseFile(modulePath: String) throws -> [CodeClass] {
        var classes: [CodeClass] = []
        while current != .end {
            if current == .name("class") {
                classes.append(try parseClass(modulePath: modulePath))
            } else {
                skipLine() // `import …`, `op_version_set = …` and similar module-level lines
            }
        }
        return classes
    }

    mutating func parseClass(modulePath: String) throws -> CodeClass {
        advance()
        let name = try expectName()
        if accept(.op("(")) {
            while current != .op(")") && current != .end { advance() }
            try expect(.op(")"), "')'")
        }
        try expect(.op(":"), "':' after the class name")
        try expect(.newline, "a new line")
        var methods: [String: CodeMethod] = [:]
        guard accept(.indent) else { return CodeClass(qualifiedName: modulePath + "." + name, methods: [:]) }
        while current != .dedent && current != .end {
            if current == .name("def") {
                let method = try parseMethod()
                methods[method.name] = method
            } else {
                skipLine() // attribute annotations and __parameters__ lists
            }
        }
        _ = accept(.dedent)
        return CodeClass(qualifiedName: modulePath + "." + name, methods: methods)
    }

    mutating func parseMethod() throws -> CodeMethod {
        let start = location
        advance()
        let name = try expectName()
        try expect(.op("("), "'(' after the method name")
        var parameters: [String] = []
        while current != .op(")") {
            parameters.append(try expectName())
            if accept(.op(":")) { try skipType() }
            if accept(.op("=")) { _ = try parseExpression() }
            if !accept(.op(",")) { break }
        }
        try expect(.op(")"), "')' after the parameters")
        if accept(.op("->")) { try skipType() }
        try expect(.op(":"), "':' after the signature")
        try expect(.newline, "a new line after the signature")
        try expect(.indent, "the method's body")
        var body: [CodeStatement] = []
        while current != .dedent && current != .end {
            body.append(try parseStatement())
        }
        _ = accept(.dedent)
        return CodeMethod(name: name, parameters: parameters, body: body, location: start)
    }

    /// Skips a type annotation (`Tensor`, `List[int]`, `__torch__.a.B`, `Tuple[Tensor, Tensor]`).
    mutating func skipType() throws {
        var depth = 0
        while true {
            switch current {
            case .op("["): depth += 1
            case .op("]"): depth -= 1
            case .op(","), .op(")"), .op("="), .op(":"):
                if depth == 0 { return }
            case .newline, .end: return
            default: break
            }
            advance()
        }
    }

    mutating func parseStatement() throws -> CodeStatement {
        let start = location
        if case .name(let keyword) = current,
           ["if", "for", "while", "with", "try", "raise", "assert", "del", "break", "continue", "elif", "else", "global"].contains(keyword) {
            skipLine()
            return .unsupported(keyword, start)
        }
        if accept(.name("pass")) { try expect(.newline, "a new line"); return .expression(.none, start) }
        if accept(.name("return")) {
            var values = [try parseExpression()]
            while accept(.op(",")) { values.append(try parseExpression()) }
            try expect(.newline, "a new line after return")
            return .return(values.count == 1 ? values[0] : .tuple(values), start)
        }
        let first = try parseExpression()
        if current == .op(",") || current == .op("=") || current == .op(":") {
            var targets = [first]
            while accept(.op(",")) { targets.append(try parseExpression()) }
            if accept(.op(":")) { try skipType() }
            try expect(.op("="), "'='")
            let value = try parseExpression()
            var extra: [CodeExpr] = []
            while accept(.op(",")) { extra.append(try parseExpression()) }
            try expect(.newline, "a new line after the assignment")
            let names = try targets.map { t -> String in
                guard case .name(let n, _) = t else { throw error("only names can be assigned to", line: start.line, column: start.column) }
                return n
            }
            return .assign(names, extra.isEmpty ? value : .tuple([value] + extra), start)
        }
        try expect(.newline, "a new line after the expression")
        return .expression(first, start)
    }

    // MARK: Expressions

    static let precedence: [String: Int] = ["|": 1, "^": 2, "&": 3, "==": 4, "!=": 4, "<": 4, "<=": 4, ">": 4, ">=": 4,
                                            "+": 5, "-": 5, "*": 6, "/": 6, "//": 6, "%": 6]

    /// Deepest nesting of expressions: the parser and the converter recurse once per level.
    static let maxNesting = 200
    var nesting = 0

    mutating func parseExpression(minimum: Int = 0) throws -> CodeExpr {
        nesting += 1
        defer { nesting -= 1 }
        guard nesting <= Self.maxNesting else { throw error("expressions nest more than \(Self.maxNesting) deep") }
        if accept(.name("not")) {
            let loc = location
            return .unary("not", try parseExpression(minimum: 4), loc)
        }
        var left = try parseUnary()
        while case .op(let o) = current, let p = Self.precedence[o], p > minimum {
            let loc = location
            advance()
            let right = try parseExpression(minimum: p)
            left = .binary(o, left, right, loc)
        }
        if current == .name("and") || current == .name("or") {
            let o: String = current == .name("and") ? "&" : "|"
            let loc = location
            advance()
            left = .binary(o, left, try parseExpression(), loc)
        }
        return left
    }

    mutating func parseUnary() throws -> CodeExpr {
        let loc = location
        if accept(.op("-")) {
            nesting += 1
            defer { nesting -= 1 }
            guard nesting <= Self.maxNesting else { throw error("expressions nest more than \(Self.maxNesting) deep") }
            switch current {
            case .int(let v): advance(); return try parsePostfix(.int(-v))
            case .float(let v): advance(); return try parsePostfix(.float(-v))
            default: return .unary("-", try parseUnary(), loc)
            }
        }
        if accept(.op("~")) { return .unary("~", try parseUnary(), loc) }
        let base = try parsePrimary()
        if accept(.op("**")) { return .binary("**", base, try parseUnary(), loc) }
        return base
    }

    mutating func parsePrimary() throws -> CodeExpr {
        let loc = location
        let t = current
        switch t {
        case .int(let v): advance(); return try parsePostfix(.int(v))
        case .float(let v): advance(); return try parsePostfix(.float(v))
        case .string(let s): advance(); return try parsePostfix(.string(s))
        case .name("True"): advance(); return .bool(true)
        case .name("False"): advance(); return .bool(false)
        case .name("None"): advance(); return .none
        case .name("inf"): advance(); return .float(.infinity)
        case .name("nan"): advance(); return .float(.nan)
        case .name(let n): advance(); return try parsePostfix(.name(n, loc))
        case .op("["):
            advance()
            var items: [CodeExpr] = []
            while current != .op("]") {
                items.append(try parseExpression())
                if !accept(.op(",")) { break }
            }
            try expect(.op("]"), "']'")
            return try parsePostfix(.list(items))
        case .op("("):
            advance()
            var items: [CodeExpr] = []
            var trailingComma = false
            while current != .op(")") {
                items.append(try parseExpression())
                trailingComma = accept(.op(","))
                if !trailingComma { break }
            }
            try expect(.op(")"), "')'")
            return try parsePostfix(items.count == 1 && !trailingComma ? items[0] : .tuple(items))
        default:
            throw error("expected an expression, found \(describe(t))")
        }
    }

    mutating func parsePostfix(_ base: CodeExpr) throws -> CodeExpr {
        var e = base
        while true {
            let loc = location
            if accept(.op(".")) {
                e = .attribute(e, try expectName(), loc)
            } else if accept(.op("(")) {
                var positional: [CodeExpr] = []
                var keywords: [(String, CodeExpr)] = []
                while current != .op(")") {
                    if case .name(let n) = current, tokens[index + 1].token == .op("=") {
                        advance(); advance()
                        keywords.append((n, try parseExpression()))
                    } else {
                        guard keywords.isEmpty else { throw error("a positional argument after keyword arguments") }
                        positional.append(try parseExpression())
                    }
                    if !accept(.op(",")) { break }
                }
                try expect(.op(")"), "')' closing the call")
                e = .call(e, positional, keywords, loc)
            } else if accept(.op("[")) {
                let index = try parseExpression()
                try expect(.op("]"), "']'")
                e = .index(e, index, loc)
            } else {
                return e
            }
        }
    }
}
