/// Tokens of the IR text format (see Docs/IR.md). The lexer works on UTF-8 bytes and produces one
/// token at a time; a token is only byte offsets into the text, so lexing allocates nothing.

enum TokenKind: UInt8, Sendable {
    case eof
    /// `[A-Za-z_][A-Za-z0-9_.-]*`
    case identifier
    /// `%name`; the payload is the name after `%`.
    case value
    /// `-?[0-9]+`
    case integer
    /// `-?[0-9]+(.[0-9]*)?([eE][+-]?[0-9]+)?` with a dot or exponent, or `-inf` / `-nan`.
    case float
    /// `"..."`; the payload is the text between the quotes, still escaped when `escaped` is set.
    case string
    case at, lParen, rParen, lBrace, rBrace, lBracket, rBracket, less, greater
    case comma, colon, equal, arrow, star
    /// `?` with an optional symbol name directly after it (the payload).
    case question

    var spelling: String {
        switch self {
        case .eof: return "end of input"
        case .identifier: return "identifier"
        case .value: return "value name"
        case .integer: return "integer"
        case .float: return "float"
        case .string: return "string"
        case .at: return "'@'"
        case .lParen: return "'('"
        case .rParen: return "')'"
        case .lBrace: return "'{'"
        case .rBrace: return "'}'"
        case .lBracket: return "'['"
        case .rBracket: return "']'"
        case .less: return "'<'"
        case .greater: return "'>'"
        case .comma: return "','"
        case .colon: return "':'"
        case .equal: return "'='"
        case .arrow: return "'->'"
        case .star: return "'*'"
        case .question: return "'?'"
        }
    }
}

struct Token: Sendable {
    var kind: TokenKind
    /// Byte offset of the token's first byte, for error locations.
    var start: Int
    /// Byte offset just past the token.
    var end: Int
    /// The token's meaningful bytes: a string's contents, a value's name, a `?` dim's symbol.
    var payloadStart: Int
    var payloadEnd: Int
    /// A string token contains backslash escapes.
    var escaped: Bool = false

    init(kind: TokenKind, start: Int, end: Int) {
        self.kind = kind; self.start = start; self.end = end
        self.payloadStart = start; self.payloadEnd = end
    }

    init(kind: TokenKind, start: Int, end: Int, payloadStart: Int, payloadEnd: Int, escaped: Bool = false) {
        self.kind = kind; self.start = start; self.end = end
        self.payloadStart = payloadStart; self.payloadEnd = payloadEnd; self.escaped = escaped
    }
}

/// A syntax or semantic error at a byte offset; `Parser` turns it into a `GLMCError` with line:column.
struct ParseFailure: Error {
    var offset: Int
    var message: String
}

struct Lexer {
    let bytes: [UInt8]
    var pos: Int = 0

    init(bytes: [UInt8]) {
        self.bytes = bytes
        // A leading UTF-8 byte-order mark is not part of the text.
        if bytes.count >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF { pos = 3 }
    }

    @inline(__always) static func isIdentStart(_ c: UInt8) -> Bool {
        (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || c == 0x5F
    }
    @inline(__always) static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
    @inline(__always) static func isIdentChar(_ c: UInt8) -> Bool {
        isIdentStart(c) || isDigit(c) || c == 0x2E || c == 0x2D
    }

    @inline(__always) private func byte(_ i: Int) -> UInt8 { i < bytes.count ? bytes[i] : 0 }

    /// Skips spaces, tabs, newlines and `//` comments.
    private mutating func skipTrivia() {
        let n = bytes.count
        while pos < n {
            let c = bytes[pos]
            if c == 0x20 || c == 0x0A || c == 0x09 || c == 0x0D {
                pos += 1
            } else if c == 0x2F && byte(pos + 1) == 0x2F {
                pos += 2
                while pos < n && bytes[pos] != 0x0A { pos += 1 }
            } else {
                return
            }
        }
    }

    mutating func next() throws(ParseFailure) -> Token {
        skipTrivia()
        let start = pos
        guard pos < bytes.count else { return Token(kind: .eof, start: start, end: start) }
        let c = bytes[pos]
        func single(_ kind: TokenKind) -> Token {
            pos += 1
            return Token(kind: kind, start: start, end: pos)
        }
        switch c {
        case UInt8(ascii: "("): return single(.lParen)
        case UInt8(ascii: ")"): return single(.rParen)
        case UInt8(ascii: "{"): return single(.lBrace)
        case UInt8(ascii: "}"): return single(.rBrace)
        case UInt8(ascii: "["): return single(.lBracket)
        case UInt8(ascii: "]"): return single(.rBracket)
        case UInt8(ascii: "<"): return single(.less)
        case UInt8(ascii: ">"): return single(.greater)
        case UInt8(ascii: ","): return single(.comma)
        case UInt8(ascii: ":"): return single(.colon)
        case UInt8(ascii: "="): return single(.equal)
        case UInt8(ascii: "@"): return single(.at)
        case UInt8(ascii: "*"): return single(.star)
        case UInt8(ascii: "?"):
            pos += 1
            while pos < bytes.count && Lexer.isIdentChar(bytes[pos]) { pos += 1 }
            return Token(kind: .question, start: start, end: pos, payloadStart: start + 1, payloadEnd: pos)
        case UInt8(ascii: "%"):
            pos += 1
            while pos < bytes.count && Lexer.isIdentChar(bytes[pos]) { pos += 1 }
            guard pos > start + 1 else { throw ParseFailure(offset: start, message: "expected a value name after '%'") }
            return Token(kind: .value, start: start, end: pos, payloadStart: start + 1, payloadEnd: pos)
        case UInt8(ascii: "\""):
            return try lexString()
        case UInt8(ascii: "-"):
            if byte(pos + 1) == UInt8(ascii: ">") { pos += 2; return Token(kind: .arrow, start: start, end: pos) }
            if Lexer.isDigit(byte(pos + 1)) { return try lexNumber() }
            if Lexer.isIdentStart(byte(pos + 1)) {
                var e = pos + 1
                while e < bytes.count && Lexer.isIdentChar(bytes[e]) { e += 1 }
                let word = bytes[(pos + 1) ..< e]
                if word.elementsEqual("inf".utf8) || word.elementsEqual("nan".utf8) {
                    pos = e
                    return Token(kind: .float, start: start, end: pos)
                }
            }
            throw ParseFailure(offset: start, message: "unexpected character '-'")
        default:
            if Lexer.isDigit(c) { return try lexNumber() }
            if Lexer.isIdentStart(c) {
                pos += 1
                while pos < bytes.count && Lexer.isIdentChar(bytes[pos]) { pos += 1 }
                return Token(kind: .identifier, start: start, end: pos)
            }
            throw ParseFailure(offset: start, message: "unexpected character \(describeCharacter(at: start))")
        }
    }

    private func describeCharacter(at offset: Int) -> String {
        let c = bytes[offset]
        if c < 0x20 || c == 0x7F { return "U+" + String(c, radix: 16, uppercase: true) }
        var end = offset + 1
        while end < bytes.count && end < offset + 4 && (bytes[end] & 0xC0) == 0x80 { end += 1 }
        let s = String(decoding: bytes[offset ..< end], as: UTF8.self)
        return "'" + s + "'"
    }

    private mutating func lexNumber() throws(ParseFailure) -> Token {
        let start = pos
        var isFloat = false
        if bytes[pos] == UInt8(ascii: "-") { pos += 1 }
        while pos < bytes.count && Lexer.isDigit(bytes[pos]) { pos += 1 }
        if byte(pos) == UInt8(ascii: ".") {
            isFloat = true
            pos += 1
            while pos < bytes.count && Lexer.isDigit(bytes[pos]) { pos += 1 }
        }
        let e = byte(pos)
        if e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            var p = pos + 1
            let s = byte(p)
            if s == UInt8(ascii: "+") || s == UInt8(ascii: "-") { p += 1 }
            if Lexer.isDigit(byte(p)) {
                isFloat = true
                pos = p
                while pos < bytes.count && Lexer.isDigit(bytes[pos]) { pos += 1 }
            }
        }
        if pos < bytes.count && Lexer.isIdentChar(bytes[pos]) {
            var end = pos
            while end < bytes.count && Lexer.isIdentChar(bytes[end]) { end += 1 }
            let text = String(decoding: bytes[start ..< end], as: UTF8.self)
            throw ParseFailure(offset: start, message: "malformed number '\(text)'")
        }
        return Token(kind: isFloat ? .float : .integer, start: start, end: pos)
    }

    private mutating func lexString() throws(ParseFailure) -> Token {
        let start = pos
        pos += 1
        var escaped = false
        let n = bytes.count
        while pos < n {
            let c = bytes[pos]
            if c == UInt8(ascii: "\"") {
                pos += 1
                return Token(kind: .string, start: start, end: pos, payloadStart: start + 1, payloadEnd: pos - 1, escaped: escaped)
            }
            if c == UInt8(ascii: "\\") {
                escaped = true
                pos += 2
                continue
            }
            if c == 0x0A { break }
            pos += 1
        }
        throw ParseFailure(offset: start, message: "unterminated string")
    }

    /// The text of a string token with its escapes (`\" \\ \n \t \r \u{hex}`) decoded.
    func stringValue(_ t: Token) throws(ParseFailure) -> String {
        let range = t.payloadStart ..< t.payloadEnd
        if !t.escaped { return String(decoding: bytes[range], as: UTF8.self) }
        var out: [UInt8] = []
        out.reserveCapacity(range.count)
        var i = range.lowerBound
        while i < range.upperBound {
            let c = bytes[i]
            guard c == UInt8(ascii: "\\") else { out.append(c); i += 1; continue }
            let e = i + 1 < range.upperBound ? bytes[i + 1] : 0
            switch e {
            case UInt8(ascii: "\""): out.append(0x22); i += 2
            case UInt8(ascii: "\\"): out.append(0x5C); i += 2
            case UInt8(ascii: "n"): out.append(0x0A); i += 2
            case UInt8(ascii: "t"): out.append(0x09); i += 2
            case UInt8(ascii: "r"): out.append(0x0D); i += 2
            case UInt8(ascii: "u"):
                guard i + 2 < range.upperBound, bytes[i + 2] == UInt8(ascii: "{") else {
                    throw ParseFailure(offset: i, message: "expected '{' after '\\u' in string")
                }
                var j = i + 3
                var value: UInt32 = 0
                var digits = 0
                while j < range.upperBound, let d = hexValue(bytes[j]) {
                    value = value &* 16 &+ UInt32(d)
                    digits += 1
                    j += 1
                }
                guard digits > 0, digits <= 6, j < range.upperBound, bytes[j] == UInt8(ascii: "}") else {
                    throw ParseFailure(offset: i, message: "malformed '\\u{...}' escape in string")
                }
                guard let scalar = Unicode.Scalar(value) else {
                    throw ParseFailure(offset: i, message: "'\\u{\(String(value, radix: 16))}' is not a Unicode scalar value")
                }
                out.append(contentsOf: String(scalar).utf8)
                i = j + 1
            default:
                throw ParseFailure(offset: i, message: "unknown escape sequence in string")
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

@inline(__always) func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case 0x30 ... 0x39: return c - 0x30
    case 0x41 ... 0x46: return c - 0x41 + 10
    case 0x61 ... 0x66: return c - 0x61 + 10
    default: return nil
    }
}
