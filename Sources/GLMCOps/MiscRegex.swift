import GLMCIR

/// A regular expression in RE2 syntax, for RegexFullMatch. It supports what RE2 supports short of
/// Unicode class names (\p{...}): literals and escapes, `.`, bracket classes with ranges, Perl
/// (\d \w \s and negations, ASCII as in RE2) and POSIX ([:alpha:]) classes, groups (capturing,
/// non-capturing, named), alternation, the repetitions * + ? {n} {n,} {n,m} (greedy or lazy),
/// the assertions ^ $ \A \z \b \B, and the flags i, m, s, U. Matching simulates the compiled NFA
/// over Unicode scalars, so it takes linear time in the input (as RE2 guarantees) whatever the
/// pattern. Only whole-string matching is provided.
public struct RE2Regex: Sendable {
    public struct SyntaxError: Error { public var message: String }

    /// A set of Unicode scalars, as sorted closed ranges (possibly complemented).
    public struct CharClass: Sendable {
        public var ranges: [ClosedRange<UInt32>] = []
        public var negated = false

        func contains(_ c: UInt32) -> Bool {
            var found = false
            for r in ranges where r.contains(c) { found = true; break }
            return found != negated
        }

        /// The ranges of the complement (over all scalars), for negated classes nested in brackets.
        var complementRanges: [ClosedRange<UInt32>] {
            var out: [ClosedRange<UInt32>] = []
            var next: UInt32 = 0
            for r in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
                if r.lowerBound > next { out.append(next ... r.lowerBound - 1) }
                next = max(next, r.upperBound &+ 1)
                if r.upperBound == UInt32.max { return out }
            }
            if next <= 0x10FFFF { out.append(next ... 0x10FFFF) }
            return out
        }
    }

    public enum Assertion: Sendable { case beginText, endText, beginLine, endLine, wordBoundary, notWordBoundary }

    indirect enum Node {
        case empty
        case chars(CharClass)
        case assertion(Assertion)
        case concat([Node])
        case alternate([Node])
        /// `max` nil: unbounded.
        case repeated(Node, min: Int, max: Int?)
    }

    public enum Instruction: Sendable {
        case char(CharClass)
        case split(Int, Int)
        case jump(Int)
        case assertion(Assertion)
        case match
    }

    /// The compiled NFA (`GLMCCodegen` bakes it into a CPU plan's RegexFullMatch kernel).
    public let program: [Instruction]

    /// RE2's limits: repetition counts up to 1000, and a bounded program.
    static let maxRepeat = 1000
    static let maxProgram = 100_000

    public init(_ pattern: String) throws {
        var parser = Parser(Array(pattern.unicodeScalars))
        let node = try parser.parseAll()
        var program: [Instruction] = []
        try RE2Regex.compile(node, into: &program)
        program.append(.match)
        self.program = program
    }

    // MARK: Matching

    public static func isWordChar(_ c: UInt32) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F
    }

    /// Whether the whole of `text` matches.
    func fullMatch(_ text: String) -> Bool {
        let s = text.unicodeScalars.map(\.value)
        let n = s.count
        // Thread lists as sparse sets of program counters; `mark` dedups within one step.
        var current: [Int] = [], next: [Int] = []
        var mark = [Int](repeating: -1, count: program.count)
        var stack: [Int] = []
        func holds(_ a: Assertion, at i: Int) -> Bool {
            switch a {
            case .beginText: return i == 0
            case .endText: return i == n
            case .beginLine: return i == 0 || s[i - 1] == 0x0A
            case .endLine: return i == n || s[i] == 0x0A
            case .wordBoundary, .notWordBoundary:
                let before = i > 0 && RE2Regex.isWordChar(s[i - 1]), after = i < n && RE2Regex.isWordChar(s[i])
                return (before != after) == (a == .wordBoundary)
            }
        }
        /// Adds `pc` and everything reachable from it without consuming input at position `i`.
        func add(_ pc: Int, at i: Int, to list: inout [Int]) {
            stack.append(pc)
            while let p = stack.popLast() {
                guard mark[p] != i else { continue }
                mark[p] = i
                switch program[p] {
                case .jump(let t): stack.append(t)
                case .split(let a, let b): stack.append(b); stack.append(a)
                case .assertion(let a): if holds(a, at: i) { stack.append(p + 1) }
                case .char, .match: list.append(p)
                }
            }
        }
        add(0, at: 0, to: &current)
        for i in 0 ..< n {
            next.removeAll(keepingCapacity: true)
            for pc in current {
                if case .char(let cls) = program[pc], cls.contains(s[i]) { add(pc + 1, at: i + 1, to: &next) }
            }
            swap(&current, &next)
            if current.isEmpty { return false }
        }
        return current.contains { if case .match = program[$0] { return true } else { return false } }
    }

    // MARK: Compilation

    static func compile(_ node: Node, into p: inout [Instruction]) throws {
        guard p.count < maxProgram else { throw SyntaxError(message: "pattern too large") }
        switch node {
        case .empty: break
        case .chars(let c): p.append(.char(c))
        case .assertion(let a): p.append(.assertion(a))
        case .concat(let items): for item in items { try compile(item, into: &p) }
        case .alternate(let options):
            // split L1, next; L1: a; jump end; next: split L2, ... ; last option without split.
            var jumps: [Int] = []
            for (k, option) in options.enumerated() {
                if k < options.count - 1 {
                    let split = p.count
                    p.append(.split(split + 1, -1))
                    try compile(option, into: &p)
                    jumps.append(p.count)
                    p.append(.jump(-1))
                    p[split] = .split(split + 1, p.count)
                } else {
                    try compile(option, into: &p)
                }
            }
            for j in jumps { p[j] = .jump(p.count) }
        case .repeated(let inner, let min, let max):
            for _ in 0 ..< min { try compile(inner, into: &p) }
            if let max {
                // Optional copies: split body, end (each one nested in the previous).
                var splits: [Int] = []
                for _ in min ..< max {
                    splits.append(p.count)
                    p.append(.split(p.count + 1, -1))
                    try compile(inner, into: &p)
                }
                for s in splits { p[s] = .split(s + 1, p.count) }
            } else {
                let loop = p.count
                p.append(.split(loop + 1, -1))
                try compile(inner, into: &p)
                p.append(.jump(loop))
                p[loop] = .split(loop + 1, p.count)
            }
        }
    }

    // MARK: Parsing

    struct Flags { var caseInsensitive = false, multiLine = false, dotAll = false }

    struct Parser {
        let s: [Unicode.Scalar]
        var i = 0
        var flags = Flags()

        init(_ s: [Unicode.Scalar]) { self.s = s }

        func error(_ message: String) -> SyntaxError { SyntaxError(message: "\(message) at offset \(i)") }
        var atEnd: Bool { i >= s.count }
        func peek(_ k: Int = 0) -> Unicode.Scalar? { i + k < s.count ? s[i + k] : nil }

        mutating func parseAll() throws -> Node {
            let node = try parseAlternation()
            guard atEnd else { throw error("unmatched ')'") }
            return node
        }

        /// alternation := concat ('|' concat)*. Flags set inside a group end with it.
        mutating func parseAlternation() throws -> Node {
            let saved = flags
            defer { flags = saved }
            var options = [try parseConcat()]
            while peek() == "|" { i += 1; options.append(try parseConcat()) }
            return options.count == 1 ? options[0] : .alternate(options)
        }

        mutating func parseConcat() throws -> Node {
            var items: [Node] = []
            while let c = peek(), c != "|", c != ")" {
                guard let atom = try parseAtom() else { continue }
                items.append(try parseRepetition(atom))
            }
            return items.isEmpty ? .empty : (items.count == 1 ? items[0] : .concat(items))
        }

        mutating func parseRepetition(_ atom: Node) throws -> Node {
            var node = atom
            var repeated = false
            while let c = peek() {
                var bounds: (Int, Int?)
                switch c {
                case "*": bounds = (0, nil); i += 1
                case "+": bounds = (1, nil); i += 1
                case "?": bounds = (0, 1); i += 1
                case "{":
                    guard let b = try parseBraces() else { return node }
                    bounds = b
                default: return node
                }
                guard !repeated else { throw error("bad repetition operator") }
                repeated = true
                if peek() == "?" { i += 1 } // lazy: the same set of full matches
                node = .repeated(node, min: bounds.0, max: bounds.1)
            }
            return node
        }

        /// {n}, {n,} or {n,m}; nil (and nothing consumed) when the brace is a literal.
        mutating func parseBraces() throws -> (Int, Int?)? {
            let start = i
            i += 1
            func number() -> Int? {
                var v: Int? = nil
                while let c = peek(), let d = Int(String(c)), c.isASCII {
                    v = min((v ?? 0) * 10 + d, 100_000); i += 1
                }
                return v
            }
            guard let low = number() else { i = start; return nil }
            var high: Int? = low
            if peek() == "," { i += 1; high = number() }
            guard peek() == "}" else { i = start; return nil }
            i += 1
            guard low <= RE2Regex.maxRepeat, (high ?? 0) <= RE2Regex.maxRepeat, high.map({ $0 >= low }) ?? true else {
                throw error("bad repetition count")
            }
            return (low, high)
        }

        /// One atom, or nil for a flag group that only changes flags.
        mutating func parseAtom() throws -> Node? {
            guard let c = peek() else { throw error("unexpected end") }
            i += 1
            switch c {
            case "(":
                if peek() == "?" {
                    i += 1
                    if peek() == "P" || peek() == "<" {
                        // Named group: (?P<name>re) or (?<name>re).
                        if peek() == "P" { i += 1 }
                        guard peek() == "<" else { throw error("bad named group") }
                        while let d = peek(), d != ">" { i += 1 }
                        guard peek() == ">" else { throw error("bad named group") }
                        i += 1
                    } else {
                        var on = true
                        var newFlags = flags
                        while let f = peek(), f != ")", f != ":" {
                            switch f {
                            case "i": newFlags.caseInsensitive = on
                            case "m": newFlags.multiLine = on
                            case "s": newFlags.dotAll = on
                            case "U": break // ungreedy: the same set of full matches
                            case "-" where on: on = false
                            default: throw error("unsupported group flag '\(f)'")
                            }
                            i += 1
                        }
                        guard let end = peek() else { throw error("missing ')'") }
                        i += 1
                        if end == ")" { flags = newFlags; return nil }
                        let saved = flags
                        flags = newFlags
                        defer { flags = saved }
                        return try closeGroup()
                    }
                }
                return try closeGroup()
            case ")": throw error("unexpected ')'")
            case "*", "+", "?": throw error("missing argument to repetition operator")
            case ".":
                return .chars(CharClass(ranges: flags.dotAll ? [0 ... 0x10FFFF] : [0 ... 9, 11 ... 0x10FFFF]))
            case "^": return .assertion(flags.multiLine ? .beginLine : .beginText)
            case "$": return .assertion(flags.multiLine ? .endLine : .endText)
            case "[": return .chars(try parseBracket())
            case "\\":
                guard let e = peek() else { throw error("trailing backslash") }
                switch e {
                case "A": i += 1; return .assertion(.beginText)
                case "z": i += 1; return .assertion(.endText)
                case "b": i += 1; return .assertion(.wordBoundary)
                case "B": i += 1; return .assertion(.notWordBoundary)
                default: return .chars(folded(try parseEscape()))
                }
            default:
                return .chars(folded(CharClass(ranges: [c.value ... c.value])))
            }
        }

        mutating func closeGroup() throws -> Node {
            let node = try parseAlternation()
            guard peek() == ")" else { throw error("missing ')'") }
            i += 1
            return node
        }

        /// An escape after '\' (outside or inside brackets): a Perl class or one scalar.
        mutating func parseEscape() throws -> CharClass {
            guard let e = peek() else { throw error("trailing backslash") }
            i += 1
            let digits: [ClosedRange<UInt32>] = [0x30 ... 0x39]
            let word: [ClosedRange<UInt32>] = [0x30 ... 0x39, 0x41 ... 0x5A, 0x5F ... 0x5F, 0x61 ... 0x7A]
            let space: [ClosedRange<UInt32>] = [0x09 ... 0x0A, 0x0C ... 0x0D, 0x20 ... 0x20]
            func one(_ v: UInt32) -> CharClass { CharClass(ranges: [v ... v]) }
            switch e {
            case "d": return CharClass(ranges: digits)
            case "D": return CharClass(ranges: digits, negated: true)
            case "w": return CharClass(ranges: word)
            case "W": return CharClass(ranges: word, negated: true)
            case "s": return CharClass(ranges: space)
            case "S": return CharClass(ranges: space, negated: true)
            case "n": return one(0x0A)
            case "t": return one(0x09)
            case "r": return one(0x0D)
            case "f": return one(0x0C)
            case "v": return one(0x0B)
            case "a": return one(0x07)
            case "x":
                var hex = ""
                if peek() == "{" {
                    i += 1
                    while let h = peek(), h != "}" { hex.unicodeScalars.append(h); i += 1 }
                    guard peek() == "}" else { throw error("bad \\x escape") }
                    i += 1
                } else {
                    for _ in 0 ..< 2 { if let h = peek() { hex.unicodeScalars.append(h); i += 1 } }
                }
                guard let v = UInt32(hex, radix: 16), v <= 0x10FFFF else { throw error("bad \\x escape") }
                return one(v)
            case "0" ... "7":
                // Octal: \0, \01, \012 (RE2 accepts \1-\7 only as backreferences, which it rejects).
                guard e == "0" else { throw error("backreferences are not supported") }
                var v: UInt32 = 0
                for _ in 0 ..< 2 {
                    guard let d = peek(), ("0" ... "7").contains(d) else { break }
                    v = v * 8 + (d.value - 0x30); i += 1
                }
                return one(v)
            default:
                guard !(e.properties.isAlphabetic || ("0" ... "9").contains(e)) else {
                    throw error("unsupported escape \\\(e)")
                }
                return one(e.value)
            }
        }

        static let posixClasses: [String: [ClosedRange<UInt32>]] = [
            "alnum": [0x30 ... 0x39, 0x41 ... 0x5A, 0x61 ... 0x7A], "alpha": [0x41 ... 0x5A, 0x61 ... 0x7A],
            "ascii": [0 ... 0x7F], "blank": [0x09 ... 0x09, 0x20 ... 0x20], "cntrl": [0 ... 0x1F, 0x7F ... 0x7F],
            "digit": [0x30 ... 0x39], "graph": [0x21 ... 0x7E], "lower": [0x61 ... 0x7A], "print": [0x20 ... 0x7E],
            "punct": [0x21 ... 0x2F, 0x3A ... 0x40, 0x5B ... 0x60, 0x7B ... 0x7E],
            "space": [0x09 ... 0x0D, 0x20 ... 0x20], "upper": [0x41 ... 0x5A],
            "word": [0x30 ... 0x39, 0x41 ... 0x5A, 0x5F ... 0x5F, 0x61 ... 0x7A], "xdigit": [0x30 ... 0x39, 0x41 ... 0x46, 0x61 ... 0x66],
        ]

        /// A bracket class after '['.
        mutating func parseBracket() throws -> CharClass {
            var cls = CharClass()
            if peek() == "^" { cls.negated = true; i += 1 }
            var first = true
            while true {
                guard let c = peek() else { throw error("missing ']'") }
                if c == "]" && !first { i += 1; break }
                first = false
                if c == "[", peek(1) == ":" {
                    // [:name:] or [:^name:]
                    let start = i
                    i += 2
                    var negate = false
                    if peek() == "^" { negate = true; i += 1 }
                    var name = ""
                    while let d = peek(), d != ":" { name.unicodeScalars.append(d); i += 1 }
                    guard peek() == ":", peek(1) == "]", let ranges = Parser.posixClasses[name] else {
                        i = start
                        throw error("bad POSIX class")
                    }
                    i += 2
                    let item = CharClass(ranges: ranges, negated: negate)
                    cls.ranges += item.negated ? item.complementRanges : item.ranges
                    continue
                }
                let low: UInt32
                if c == "\\" {
                    i += 1
                    let item = try parseEscape()
                    if item.ranges.count != 1 || item.negated || item.ranges[0].count != 1 {
                        cls.ranges += item.negated ? item.complementRanges : item.ranges
                        continue
                    }
                    low = item.ranges[0].lowerBound
                } else {
                    i += 1
                    low = c.value
                }
                // A range low-high, unless '-' ends the class.
                if peek() == "-", let h = peek(1), h != "]" {
                    i += 1
                    let high: UInt32
                    if h == "\\" {
                        i += 1
                        let item = try parseEscape()
                        guard item.ranges.count == 1, !item.negated, item.ranges[0].count == 1 else { throw error("bad character class range") }
                        high = item.ranges[0].lowerBound
                    } else {
                        i += 1
                        high = h.value
                    }
                    guard low <= high else { throw error("bad character class range") }
                    cls.ranges.append(low ... high)
                } else {
                    cls.ranges.append(low ... low)
                }
            }
            return folded(cls)
        }

        /// Under (?i), the class plus the other case of its letters.
        func folded(_ cls: CharClass) -> CharClass {
            guard flags.caseInsensitive else { return cls }
            var out = cls
            for r in cls.ranges {
                // ASCII letters by arithmetic; other scalars of modest ranges by their simple mappings.
                let lower = max(r.lowerBound, 0x41), upper = min(r.upperBound, 0x5A)
                if lower <= upper { out.ranges.append((lower + 32) ... (upper + 32)) }
                let lower2 = max(r.lowerBound, 0x61), upper2 = min(r.upperBound, 0x7A)
                if lower2 <= upper2 { out.ranges.append((lower2 - 32) ... (upper2 - 32)) }
                guard r.upperBound >= 0x80, r.count <= 2000 else { continue }
                for v in max(r.lowerBound, 0x80) ... r.upperBound {
                    guard let scalar = Unicode.Scalar(v) else { continue }
                    for mapped in [scalar.properties.lowercaseMapping, scalar.properties.uppercaseMapping] {
                        let m = mapped.unicodeScalars
                        if m.count == 1, let only = m.first, only.value != v { out.ranges.append(only.value ... only.value) }
                    }
                }
            }
            return out
        }
    }
}
