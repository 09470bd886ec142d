import GLMCIR

/// String processing: StringConcat, StringSplit, StringNormalizer, RegexFullMatch (on the engine in
/// MiscRegex.swift) and TfIdfVectorizer (n-gram counting over strings or integers).
extension MiscOps {
    static let stringOps: [OpDefinition] = [stringConcat, stringSplit, stringNormalizer, regexFullMatch, tfIdfVectorizer]

    static func strings(_ t: Tensor, _ ctx: some NodeContext) throws -> [String] {
        guard case .string(let a) = t.storage else { throw ctx.error("expects a string tensor, got \(t.type)") }
        return a
    }

    static func requireString(_ t: TensorType, _ ctx: some NodeContext) throws {
        guard t.dtype == .string else { throw ctx.error("expects a string tensor, got \(t)") }
    }
}

// MARK: - StringConcat

extension MiscOps {
    static let stringConcat = OpDefinition("StringConcat", since: [20], infer: { ctx in
        let a = try ctx.requiredInput(0), b = try ctx.requiredInput(1)
        try requireString(a, ctx); try requireString(b, ctx)
        return [TensorType(.string, try ShapeHelpers.broadcast([a.shape, b.shape], context: ctx))]
    }, evaluate: { ctx in
        let a = try ctx.operand(0), b = try ctx.operand(1)
        let sa = try strings(a, ctx), sb = try strings(b, ctx)
        guard let shape = ShapeHelpers.broadcast([a.shape, b.shape]) else {
            throw ctx.error("cannot broadcast shapes \(a.shape) and \(b.shape)")
        }
        _ = try resultCount(shape, ctx)
        let ia = broadcastIndices(from: a.shape, to: shape), ib = broadcastIndices(from: b.shape, to: shape)
        return [Tensor(shape: shape, storage: .string(zip(ia, ib).map { sa[$0] + sb[$1] }))]
    })
}

// MARK: - StringSplit

extension MiscOps {
    /// Python's whitespace (str.isspace): Unicode White_Space plus the separators U+001C–U+001F.
    public static func isPythonSpace(_ c: Unicode.Scalar) -> Bool {
        c.properties.isWhitespace || (0x1C ... 0x1F).contains(c.value)
    }

    /// Python's `str.split(separator, maxsplit)` on Unicode scalars: with no separator, runs of
    /// whitespace separate and leading/trailing whitespace is dropped; `maxSplits` nil is unlimited.
    static func pythonSplit(_ text: String, separator: [Unicode.Scalar]?, maxSplits: Int?) -> [String] {
        let s = Array(text.unicodeScalars)
        func piece(_ r: Range<Int>) -> String {
            var out = String.UnicodeScalarView()
            out.append(contentsOf: s[r])
            return String(out)
        }
        var parts: [String] = []
        var remaining = maxSplits ?? Int.max
        var i = 0
        guard let sep = separator, !sep.isEmpty else {
            while remaining > 0 {
                while i < s.count, isPythonSpace(s[i]) { i += 1 }
                if i == s.count { break }
                let j = i
                while i < s.count, !isPythonSpace(s[i]) { i += 1 }
                parts.append(piece(j ..< i))
                remaining -= 1
            }
            // The unsplit rest after maxsplit splits, without its leading whitespace.
            while i < s.count, isPythonSpace(s[i]) { i += 1 }
            if i < s.count { parts.append(piece(i ..< s.count)) }
            return parts
        }
        var j = 0
        while remaining > 0, j + sep.count <= s.count {
            if s[j ..< j + sep.count].elementsEqual(sep) {
                parts.append(piece(i ..< j))
                j += sep.count
                i = j
                remaining -= 1
            } else {
                j += 1
            }
        }
        parts.append(piece(i ..< s.count))
        return parts
    }

    static let stringSplit = OpDefinition("StringSplit", since: [20], infer: { ctx in
        let x = try ctx.requiredInput(0)
        try requireString(x, ctx)
        let substrings = TensorType(.string, Shape(x.shape.dims.map { $0 + [.unknown] }))
        return try results(ctx, [substrings, TensorType(.i64, x.shape)])
    }, evaluate: { ctx in
        let x = try ctx.operand(0)
        let delimiter = try ctx.string("delimiter", default: "")
        let maxSplit = try ctx.int("maxsplit").flatMap { $0 < 0 ? nil : $0 }
        let separator = delimiter.isEmpty ? nil : Array(delimiter.unicodeScalars)
        let split = try strings(x, ctx).map { pythonSplit($0, separator: separator, maxSplits: maxSplit) }
        let width = split.map(\.count).max() ?? 0
        // Pad every element's substrings with empty strings to the widest.
        let padded = split.flatMap { $0 + [String](repeating: "", count: width - $0.count) }
        return try results(ctx, [Tensor(shape: x.shape + [width], storage: .string(padded)),
                                 Tensor(split.map { Int64($0.count) }, shape: x.shape)])
    })
}

// MARK: - StringNormalizer

extension MiscOps {
    /// Drops the elements of a [C] or [1, C] string tensor that are stop words (compared with or
    /// without case), then changes case. A result with no elements holds one empty string.
    static let stringNormalizer = OpDefinition("StringNormalizer", since: [10], infer: { ctx in
        let x = try ctx.requiredInput(0)
        try requireString(x, ctx)
        guard let d = x.shape.dims else { return [TensorType(.string, .unranked)] }
        guard d.count == 1 || (d.count == 2 && d[0].value.map({ $0 == 1 }) ?? true) else {
            throw ctx.error("input must be [C] or [1, C], got \(x.shape)")
        }
        let noStopWords = (try ctx.strings("stopwords") ?? []).isEmpty
        // Without stop words only an empty input changes size (to one empty string).
        let count: Dim = noStopWords && (d.last?.value ?? 0) > 0 ? d[d.count - 1] : .unknown
        return [TensorType(.string, Shape(d.count == 1 ? [count] : [.known(1), count]))]
    }, evaluate: { ctx in
        let x = try ctx.operand(0)
        guard x.rank == 1 || (x.rank == 2 && x.shape[0] == 1) else {
            throw ctx.error("input must be [C] or [1, C], got \(x.shape)")
        }
        let action = try ctx.string("case_change_action", default: "NONE")
        let change: (String) -> String
        switch action {
        case "NONE": change = { $0 }
        case "LOWER": change = { $0.lowercased() }
        case "UPPER": change = { $0.uppercased() }
        default: throw ctx.error("unknown case_change_action '\(action)'")
        }
        let caseSensitive = try ctx.int("is_case_sensitive", default: 0) != 0
        // Unicode's default case mapping is every locale's but Turkish, Azeri and Lithuanian.
        if let locale = try ctx.string("locale"), ["tr", "az", "lt"].contains(where: { locale.lowercased().hasPrefix($0) }) {
            throw ctx.unsupported("locale '\(locale)' (glmc changes case by Unicode's default rules)")
        }
        let key: (String) -> String = caseSensitive ? { $0 } : { $0.lowercased() }
        let stopWords = Set((try ctx.strings("stopwords") ?? []).map(key))
        var kept = try strings(x, ctx).filter { !stopWords.contains(key($0)) }.map(change)
        if kept.isEmpty { kept = [""] }
        return [Tensor(shape: x.rank == 1 ? [kept.count] : [1, kept.count], storage: .string(kept))]
    })
}

// MARK: - RegexFullMatch

extension MiscOps {
    static func compiledPattern(_ ctx: some NodeContext) throws -> RE2Regex {
        guard let pattern = try ctx.string("pattern") else { throw ctx.error("missing attribute 'pattern'") }
        do {
            return try RE2Regex(pattern)
        } catch let e as RE2Regex.SyntaxError {
            throw ctx.error("pattern '\(pattern)': \(e.message)")
        }
    }

    static let regexFullMatch = OpDefinition("RegexFullMatch", since: [20], infer: { ctx in
        let x = try ctx.requiredInput(0)
        try requireString(x, ctx)
        _ = try compiledPattern(ctx)
        return [TensorType(.bool, x.shape)]
    }, evaluate: { ctx in
        let x = try ctx.operand(0)
        let regex = try compiledPattern(ctx)
        return [Tensor(try strings(x, ctx).map(regex.fullMatch), shape: x.shape)]
    })
}

// MARK: - TfIdfVectorizer

extension MiscOps {
    /// An n-gram key: integers or strings.
    enum GramItem: Hashable { case int(Int64), string(String) }

    static let tfIdfVectorizer = OpDefinition("TfIdfVectorizer", since: [9], infer: { ctx in
        let x = try ctx.requiredInput(0)
        try require(x.dtype, in: [.string, .i32, .i64], ctx)
        guard let indexes = try ctx.ints("ngram_indexes"), let maxIndex = indexes.max(), maxIndex < maxElements else {
            throw ctx.error("needs a non-empty ngram_indexes attribute")
        }
        let size = Dim.known(maxIndex + 1)
        guard let d = x.shape.dims else { return [TensorType(.f32, .unranked)] }
        guard d.count <= 2 else { throw ctx.error("input must be [C] or [N, C], got \(x.shape)") }
        return [TensorType(.f32, Shape(d.count == 2 ? [d[0], size] : [size]))]
    }, evaluate: { ctx in
        let x = try ctx.operand(0)
        try require(x.dtype, in: [.string, .i32, .i64], ctx)
        guard x.rank <= 2 else { throw ctx.error("input must be [C] or [N, C], got \(x.shape)") }
        guard let mode = try ctx.string("mode"), ["TF", "IDF", "TFIDF"].contains(mode) else {
            throw ctx.error("mode must be TF, IDF or TFIDF")
        }
        guard let minLength = try ctx.int("min_gram_length"), let maxLength = try ctx.int("max_gram_length"),
              let maxSkip = try ctx.int("max_skip_count"), let counts = try ctx.ints("ngram_counts"),
              let indexes = try ctx.ints("ngram_indexes"), let maxIndex = indexes.max(), maxIndex < maxElements,
              minLength >= 1, minLength <= maxLength, maxSkip >= 0 else {
            throw ctx.error("needs 1 ≤ min_gram_length ≤ max_gram_length, max_skip_count ≥ 0, ngram_counts and ngram_indexes")
        }
        guard indexes.allSatisfy({ $0 >= 0 }) else { throw ctx.error("ngram_indexes must not be negative") }
        let weights = try ctx.floats("weights") ?? []
        let outputSize = maxIndex + 1
        guard weights.isEmpty || weights.count >= outputSize else {
            throw ctx.error("weights has \(weights.count) entries for \(outputSize) outputs")
        }
        let pool: [GramItem]
        let items: [GramItem]
        if case .string(let s) = x.storage {
            guard let p = try ctx.strings("pool_strings") else { throw ctx.error("a string input needs pool_strings") }
            pool = p.map { .string($0) }
            items = s.map { .string($0) }
        } else {
            guard let p = try ctx.ints("pool_int64s") else { throw ctx.error("an integer input needs pool_int64s") }
            pool = p.map { .int(Int64($0)) }
            items = x.int64s.map { .int($0) }
        }
        var grams: [[GramItem]: Int] = [:]
        for (gram, output) in try TfIdfPool.grams(pool, counts: counts, indexes: indexes, lengths: minLength ... maxLength, error: ctx.error) {
            grams[gram] = output
        }
        let rows = x.rank == 2 ? x.shape[0] : 1
        let width = x.rank == 0 ? 1 : x.shape[x.rank - 1]
        var frequencies = [Double](repeating: 0, count: try resultCount([rows, outputSize], ctx))
        for r in 0 ..< rows {
            let row = items[(r * width) ..< ((r + 1) * width)]
            // Every start and skip distance; 1-grams (unaffected by skips) are counted only once.
            for skip in 1 ... maxSkip + 1 {
                let smallest = skip == 1 ? minLength : max(minLength, 2)
                guard smallest <= maxLength else { break }
                for start in row.indices {
                    var gram: [GramItem] = []
                    var position = start
                    while gram.count < maxLength, position < row.endIndex {
                        gram.append(row[position])
                        if gram.count >= smallest, let index = grams[gram] { frequencies[r * outputSize + index] += 1 }
                        position += skip
                    }
                }
            }
        }
        let out: [Double]
        switch mode {
        case "TF": out = frequencies
        case "IDF": out = frequencies.indices.map { frequencies[$0] > 0 ? (weights.isEmpty ? 1 : Double(weights[$0 % outputSize])) : 0 }
        default: out = frequencies.indices.map { frequencies[$0] * (weights.isEmpty ? 1 : Double(weights[$0 % outputSize])) }
        }
        return [Tensor(doubles: out, dtype: .f32, shape: x.rank == 2 ? [rows, outputSize] : [outputSize])]
    })
}

/// TfIdfVectorizer's n-gram pool, shared by the interpreter and the plan builder: the pool holds all
/// 1-grams, then all 2-grams, ...; `ngram_counts[k]` is where the (k+1)-grams start, and the g-th
/// n-gram of the pool counts into output `ngram_indexes[g]`.
public enum TfIdfPool {
    /// The n-grams of the lengths in `lengths`, each with its output (a repeated n-gram: the last
    /// one's), in the order of their first occurrence in the pool.
    public static func grams<Item: Hashable>(_ pool: [Item], counts: [Int], indexes: [Int], lengths: ClosedRange<Int>,
                                             error: (String) -> GLMCError) throws -> [(gram: [Item], output: Int)] {
        var output: [[Item]: Int] = [:], order: [[Item]] = []
        var g = 0
        for (k, start) in counts.enumerated() {
            let n = k + 1
            let end = k + 1 < counts.count ? counts[k + 1] : pool.count
            guard start >= 0, start <= end, end <= pool.count else { throw error("ngram_counts do not fit the pool") }
            for first in stride(from: start, to: end - n + 1, by: n) {
                guard g < indexes.count else { throw error("the pool has more n-grams than ngram_indexes") }
                if lengths.contains(n) {
                    let gram = Array(pool[first ..< first + n])
                    if output[gram] == nil { order.append(gram) }
                    output[gram] = indexes[g]
                }
                g += 1
            }
        }
        return order.map { ($0, output[$0]!) }
    }
}
