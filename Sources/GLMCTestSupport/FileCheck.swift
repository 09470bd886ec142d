import Foundation

/// A small FileCheck in the style of LLVM's, for golden IR tests (lit and FileCheck are not on this
/// toolchain). Directives, one per comment line in the check text:
/// - `// CHECK: text`       `text` occurs on a line at or after the current position.
/// - `// CHECK-NEXT: text`  `text` occurs on the line right after the previous match.
/// - `// CHECK-SAME: text`  `text` occurs on the same line as the previous match, after it.
/// - `// CHECK-NOT: text`   `text` does not occur between the previous match and the next one.
/// - `// CHECK-LABEL: text` like CHECK; use it on function headers so failures stay local.
/// Runs of spaces match any run of spaces; `{{regex}}` inside a pattern is a regular expression.
public struct FileCheck {
    public enum Kind: String { case check = "CHECK", next = "CHECK-NEXT", same = "CHECK-SAME", not = "CHECK-NOT", label = "CHECK-LABEL" }

    public struct Directive {
        public var kind: Kind
        public var pattern: String
        public var line: Int
    }

    public var directives: [Directive]

    /// Reads the directives out of `text` (lines are numbered from `firstLine`).
    public init(checks text: String, firstLine: Int = 1) {
        var found: [Directive] = []
        for (offset, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            guard line.hasPrefix("//") else { continue }
            let body = line.dropFirst(2).trimmingCharacters(in: .whitespaces)
            for kind in [Kind.next, .same, .not, .label, .check] where body.hasPrefix(kind.rawValue + ":") {
                let pattern = body.dropFirst(kind.rawValue.count + 1).trimmingCharacters(in: .whitespaces)
                found.append(Directive(kind: kind, pattern: pattern, line: firstLine + offset))
                break
            }
        }
        directives = found
    }

    /// Checks `output`; returns nil on success, else a message naming the failing directive.
    public func match(_ output: String) -> String? {
        let lines = output.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var lineIndex = 0          // where the next CHECK may start
        var column = lines.first.map { $0.startIndex }  // for CHECK-SAME
        var lastMatchLine = -1
        var pendingNots: [Directive] = []

        func fail(_ d: Directive, _ why: String) -> String {
            let context = lastMatchLine >= 0 && lastMatchLine < lines.count ? " (last match on output line \(lastMatchLine + 1): \(lines[lastMatchLine]))" : ""
            return "check line \(d.line): \(d.kind.rawValue): \(d.pattern): \(why)\(context)"
        }
        func checkNots(upTo end: Int) -> String? {
            for d in pendingNots {
                let start = max(lastMatchLine, 0)
                for i in start ..< min(end, lines.count) where Self.find(d.pattern, in: lines[i]) != nil {
                    return fail(d, "found on output line \(i + 1): \(lines[i])")
                }
            }
            pendingNots = []
            return nil
        }

        for d in directives {
            switch d.kind {
            case .not:
                pendingNots.append(d)
            case .check, .label:
                var found: Int? = nil
                for i in lineIndex ..< lines.count where Self.find(d.pattern, in: lines[i]) != nil { found = i; break }
                guard let i = found else { return fail(d, "not found") }
                if let e = checkNots(upTo: i + 1) { return e }
                lastMatchLine = i
                lineIndex = i + 1
                column = Self.find(d.pattern, in: lines[i])?.upperBound
            case .next:
                let i = lastMatchLine + 1
                guard i < lines.count, let r = Self.find(d.pattern, in: lines[i]) else {
                    return fail(d, "not on the next line" + (i < lines.count ? " (which is: \(lines[i]))" : ""))
                }
                if let e = checkNots(upTo: i + 1) { return e }
                lastMatchLine = i
                lineIndex = i + 1
                column = r.upperBound
            case .same:
                guard lastMatchLine >= 0, let start = column else { return fail(d, "CHECK-SAME needs a previous match") }
                let line = lines[lastMatchLine]
                guard let r = Self.find(d.pattern, in: String(line[start...])) else { return fail(d, "not on the same line") }
                column = line.index(start, offsetBy: line[start...].distance(from: line[start...].startIndex, to: r.upperBound))
            }
        }
        return checkNots(upTo: lines.count)
    }

    /// Where `pattern` matches in `line`: literal text (spaces flexible) with `{{regex}}` parts.
    static func find(_ pattern: String, in line: String) -> Range<String.Index>? {
        var regex = ""
        var rest = Substring(pattern)
        while !rest.isEmpty {
            if rest.hasPrefix("{{"), let close = rest.range(of: "}}") {
                regex += "(?:" + rest[rest.index(rest.startIndex, offsetBy: 2) ..< close.lowerBound] + ")"
                rest = rest[close.upperBound...]
            } else {
                let c = rest.removeFirst()
                regex += c == " " ? " +" : NSRegularExpression.escapedPattern(for: String(c))
            }
        }
        guard let re = try? NSRegularExpression(pattern: regex) else { return nil }
        let ns = NSRange(line.startIndex ..< line.endIndex, in: line)
        guard let m = re.firstMatch(in: line, range: ns), let r = Range(m.range, in: line) else { return nil }
        return r
    }
}

/// A golden test file: cases separated by `// -----`, each an IR input followed (anywhere) by
/// CHECK directives. A first line `// RUN: --passes=a,b` (or `-O3`) says what to run.
public struct GoldenFile {
    public struct Case {
        public var text: String
        public var firstLine: Int
    }

    public var run: String
    public var cases: [Case]

    public init(text: String) {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        run = lines.first.flatMap { $0.hasPrefix("// RUN:") ? String($0.dropFirst(7)).trimmingCharacters(in: .whitespaces) : nil } ?? ""
        var cases: [Case] = []
        var current: [String] = []
        var start = 1
        for (i, line) in lines.enumerated() {
            if line.trimmingCharacters(in: .whitespaces) == "// -----" {
                cases.append(Case(text: current.joined(separator: "\n"), firstLine: start))
                current = []
                start = i + 2
            } else {
                current.append(line)
            }
        }
        cases.append(Case(text: current.joined(separator: "\n"), firstLine: start))
        self.cases = cases
    }
}
