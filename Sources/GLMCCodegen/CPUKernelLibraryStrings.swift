import GLMCOps

/// C kernels over string tensors (CPU plans only; see Docs/PlanFormat.md, "Strings"). A string
/// element in the arena is a pointer to a `glmc_string` (byte count, UTF-8 bytes, NUL) owned by the
/// runtime; kernels that create strings take the run's `glmc_string_heap *` as their last argument
/// and allocate through it. Strings are never modified once made, so a kernel may store a pointer it
/// read (a string passed through unchanged is shared, not copied). String constants (LabelEncoder
/// keys, ...) are baked into the kernel as byte tables.
enum CPUKernelLibraryStrings {
    /// The declarations every string kernel needs, emitted once per translation unit. The two structs
    /// are the runtime's ABI (`CGLMCRuntimeSupport/include/glmc_runtime_support.h`).
    static let prelude = """
    typedef struct glmc_string { int64_t length; char bytes[]; } glmc_string;
    typedef struct glmc_string_heap glmc_string_heap;
    struct glmc_string_heap {
      glmc_string *(*alloc)(glmc_string_heap *heap, int64_t length);
      glmc_string *(*change_case)(glmc_string_heap *heap, const glmc_string *s, int upper);
      glmc_string *(*canonical)(glmc_string_heap *heap, const glmc_string *s);
    };
    /* `s` itself when it is ASCII, else its NFC form from the runtime (NULL: out of memory): two
       strings the interpreter finds equal (canonically equivalent) have the same canonical bytes. */
    static const glmc_string *glmc_string_canonical(glmc_string_heap *heap, const glmc_string *s) {
      for (int64_t k = 0; k < s->length; ++k) {
        if ((unsigned char)s->bytes[k] >= 0x80) return heap->canonical(heap, s);
      }
      return s;
    }
    /* Byte-wise order of `s` and the n bytes at `b` (a shorter prefix first). */
    static int glmc_string_compare(const glmc_string *s, const unsigned char *b, int64_t n) {
      int64_t m = s->length < n ? s->length : n;
      int c = memcmp(s->bytes, b, (size_t)m);
      if (c != 0) return c;
      return s->length < n ? -1 : (s->length > n ? 1 : 0);
    }
    /* A new heap string holding the n bytes at `b` (NULL when out of memory). */
    static glmc_string *glmc_string_make(glmc_string_heap *heap, const unsigned char *b, int64_t n) {
      glmc_string *s = heap->alloc(heap, n);
      if (s && n > 0) memcpy(s->bytes, b, (size_t)n);
      return s;
    }
    /* The Unicode scalar at s[*i] (UTF-8; a malformed byte reads as U+FFFD), advancing *i past it. */
    static uint32_t glmc_utf8_next(const unsigned char *s, int64_t n, int64_t *i) {
      uint32_t c = s[*i];
      int extra = c < 0x80 ? 0 : c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : -1;
      if (extra == 0) { *i += 1; return c; }
      if (extra < 0 || *i + extra >= n) { *i += 1; return 0xFFFD; }
      c &= (uint32_t)(0x7F >> (extra + 1));
      for (int k = 1; k <= extra; ++k) {
        uint32_t b = s[*i + k];
        if ((b & 0xC0) != 0x80) { *i += 1; return 0xFFFD; }
        c = (c << 6) | (b & 0x3F);
      }
      *i += extra + 1;
      return c;
    }

    """

    /// A C byte-array initializer for `bytes` (never empty: a trailing 0).
    static func byteTable(_ bytes: [UInt8]) -> String {
        "{" + (bytes + [0]).map { String($0) }.joined(separator: ", ") + "}"
    }

    static func intTable(_ values: [Int]) -> String {
        "{" + (values.isEmpty ? [0] : values).map { String($0) }.joined(separator: ", ") + "}"
    }

    /// Equal on strings: `y[i] = a[ia(i)] == b[ib(i)]` as the interpreter compares (canonical
    /// equivalence: the NFC forms' bytes).
    static func equal(name: String, indexA: String, indexB: String) -> String {
        """
        // \(name): Equal on strings
        void \(name)(GLMC_GLOBAL void **args, long begin, long end) {
          glmc_string *const *a = (glmc_string *const *)args[0];
          glmc_string *const *b = (glmc_string *const *)args[1];
          uint8_t *y = (uint8_t *)args[2];
          glmc_string_heap *heap = (glmc_string_heap *)args[3];
          for (long i = begin; i < end; ++i) {
            const glmc_string *l = glmc_string_canonical(heap, a[\(indexA)]), *r = glmc_string_canonical(heap, b[\(indexB)]);
            if (!l || !r) return;
            y[i] = glmc_string_compare(l, (const unsigned char *)r->bytes, r->length) == 0;
          }
        }

        """
    }

    /// StringConcat: `y[i] = a[ia(i)] + b[ib(i)]`, a new heap string.
    static func concat(name: String, indexA: String, indexB: String) -> String {
        """
        // \(name): StringConcat
        void \(name)(GLMC_GLOBAL void **args, long begin, long end) {
          glmc_string *const *a = (glmc_string *const *)args[0];
          glmc_string *const *b = (glmc_string *const *)args[1];
          glmc_string **y = (glmc_string **)args[2];
          glmc_string_heap *heap = (glmc_string_heap *)args[3];
          for (long i = begin; i < end; ++i) {
            const glmc_string *l = a[\(indexA)], *r = b[\(indexB)];
            glmc_string *s = heap->alloc(heap, l->length + r->length);
            if (!s) return;
            memcpy(s->bytes, l->bytes, (size_t)l->length);
            memcpy(s->bytes + l->length, r->bytes, (size_t)r->length);
            y[i] = s;
          }
        }

        """
    }

    /// StringNormalizer without stop words: the same strings (`upper` nil) or their case changed by
    /// the runtime's Unicode case mapping (the interpreter's).
    static func changeCase(name: String, upper: Bool?) -> String {
        let body = upper.map { "y[i] = heap->change_case(heap, x[i], \($0 ? 1 : 0));\n    if (!y[i]) return;" } ?? "y[i] = x[i];"
        return """
        // \(name): StringNormalizer (\(upper.map { $0 ? "UPPER" : "LOWER" } ?? "NONE"))
        void \(name)(GLMC_GLOBAL void **args, long begin, long end) {
          glmc_string *const *x = (glmc_string *const *)args[0];
          glmc_string **y = (glmc_string **)args[1];
          glmc_string_heap *heap = (glmc_string_heap *)args[2];
          (void)heap;
          for (long i = begin; i < end; ++i) {
            \(body)
          }
        }

        """
    }

    /// StringNormalizer with stop words, or on an empty input: one sequential work-item that keeps
    /// the strings whose key (the string, lowercased unless `caseSensitive`, in NFC form) is none of
    /// `stopWords` (those keys' bytes, sorted, unique), changes their case, writes them densely and,
    /// with `writesExtent`, their count into the extent slot; none kept: one empty string.
    /// Arguments: x, y, [extent], heap.
    static func normalizeWithStopWords(name: String, count: Int, stopWords: [[UInt8]], caseSensitive: Bool, upper: Bool?,
                                       writesExtent: Bool) -> String {
        let offsets = stopWords.reduce(into: [0]) { $0.append($0.last! + $1.count) }
        let change = upper.map { "heap->change_case(heap, x[i], \($0 ? 1 : 0))" } ?? "x[i]"
        var text = """
        // \(name): StringNormalizer of \(count) strings, \(stopWords.count) stop words (\(caseSensitive ? "case-sensitive" : "any case")), \(upper.map { $0 ? "UPPER" : "LOWER" } ?? "NONE")
        GLMC_TABLE unsigned char \(name)_key_bytes[] = \(byteTable(stopWords.flatMap { $0 }));
        GLMC_TABLE long \(name)_key_offsets[] = \(intTable(offsets));
        void \(name)(GLMC_GLOBAL void **args, long begin, long end) {
          glmc_string *const *x = (glmc_string *const *)args[0];
          glmc_string **y = (glmc_string **)args[1];
          glmc_string_heap *heap = (glmc_string_heap *)args[\(writesExtent ? 3 : 2)];
          if (begin >= end) return;
          long kept = 0;
          for (long i = 0; i < \(count); ++i) {
            const glmc_string *key = x[i];

        """
        if !caseSensitive { text += "    key = heap->change_case(heap, key, 0);\n    if (!key) return;\n" }
        text += """
            key = glmc_string_canonical(heap, key);
            if (!key) return;
            long lo = 0, hi = \(stopWords.count);
            int stop = 0;
            while (lo < hi) {
              long mid = lo + (hi - lo) / 2;
              int c = glmc_string_compare(key, \(name)_key_bytes + \(name)_key_offsets[mid], \(name)_key_offsets[mid + 1] - \(name)_key_offsets[mid]);
              if (c == 0) { stop = 1; break; }
              if (c > 0) lo = mid + 1; else hi = mid;
            }
            if (stop) continue;
            y[kept] = \(change);
            if (!y[kept]) return;
            ++kept;
          }
          if (kept == 0) {
            y[0] = glmc_string_make(heap, (const unsigned char *)"", 0);
            if (!y[0]) return;
            kept = 1;
          }

        """
        if writesExtent { text += "  ((int64_t *)args[2])[0] = kept;\n" }
        return text + "}\n"
    }

    /// The Unicode scalars StringSplit splits on without a delimiter (the interpreter's
    /// `MiscOps.isPythonSpace`), as ranges: read off the definition once.
    static let pythonSpaceRanges: [ClosedRange<UInt32>] = {
        var ranges: [ClosedRange<UInt32>] = []
        for v in UInt32(0) ... 0x10FFFF {
            guard let c = Unicode.Scalar(v), MiscOps.isPythonSpace(c) else { continue }
            if let last = ranges.last, last.upperBound == v - 1 { ranges[ranges.count - 1] = last.lowerBound ... v } else { ranges.append(v ... v) }
        }
        return ranges
    }()

    /// StringSplit of `count` strings as the interpreter splits them (Python's `str.split`): on the
    /// bytes of `delimiter`, or on runs of whitespace when it is empty (leading and trailing
    /// whitespace dropped), at most `maxSplit` times. One sequential work-item: a first pass counts
    /// each string's parts (Z) and the widest (the extent), a second writes the parts into Y,
    /// [count, width] densely, padded with one empty string. `bound`: Y's buffer holds `count ×
    /// bound` pointers; nil: Y is heap-resident, allocated on the heap after the first pass, its
    /// buffer given the pointer. Arguments: x, Y, Z, extent, heap.
    ///
    /// The delimiter is searched byte by byte: in valid UTF-8 (every string in a plan is) a match
    /// starts only where a scalar does, so this finds what the interpreter's scalar-wise search finds.
    static func split(name: String, count: Int, delimiter: [UInt8], maxSplit: Int?, bound: Int?) -> String {
        let part = "if (parts && !(parts[count] = glmc_string_make(heap, b + PART_START, PART_END - PART_START))) return -1;\n    ++count;"
        func emitPart(_ start: String, _ end: String, indent: String) -> String {
            indent + part.replacingOccurrences(of: "PART_START", with: start).replacingOccurrences(of: "PART_END", with: end)
                .replacingOccurrences(of: "\n    ", with: "\n" + indent)
        }
        var text = "// \(name): StringSplit of \(count) strings "
        text += delimiter.isEmpty ? "on whitespace" : "on a \(delimiter.count)-byte delimiter"
        text += maxSplit.map { ", at most \($0) splits" } ?? ""
        text += bound.map { ", at most \($0) parts\n" } ?? ", heap-resident parts\n"
        var body: String
        if delimiter.isEmpty {
            let hex = { (v: UInt32) in "0x" + String(v, radix: 16, uppercase: true) }
            let test = pythonSpaceRanges.map { r in r.count == 1 ? "c == \(hex(r.lowerBound))" : "(c >= \(hex(r.lowerBound)) && c <= \(hex(r.upperBound)))" }
            text += "static int \(name)_space(uint32_t c) {\n  return \(test.joined(separator: " || "));\n}\n"
            body = """
              while (remaining > 0) {
                while (i < n) { int64_t j = i; if (!\(name)_space(glmc_utf8_next(b, n, &j))) break; i = j; }
                if (i == n) break;
                int64_t start = i;
                while (i < n) { int64_t j = i; if (\(name)_space(glmc_utf8_next(b, n, &j))) break; i = j; }
            \(emitPart("start", "i", indent: "    "))
                --remaining;
              }
              /* After maxsplit splits: the rest, without its leading whitespace. */
              while (i < n) { int64_t j = i; if (!\(name)_space(glmc_utf8_next(b, n, &j))) break; i = j; }
              if (i < n) {
            \(emitPart("i", "n", indent: "    "))
              }

            """
        } else {
            text += "GLMC_TABLE unsigned char \(name)_delimiter[] = \(byteTable(delimiter));\n"
            body = """
              int64_t j = 0;
              while (remaining > 0 && j + \(delimiter.count) <= n) {
                if (memcmp(b + j, \(name)_delimiter, \(delimiter.count)) != 0) { ++j; continue; }
            \(emitPart("i", "j", indent: "    "))
                j += \(delimiter.count);
                i = j;
                --remaining;
              }
            \(emitPart("i", "n", indent: "  "))

            """
        }
        text += """
        /* The parts of s, stored from parts[0] on as new heap strings unless parts is NULL; returns
           their count, -1 when out of memory. */
        static int64_t \(name)_split(const glmc_string *s, glmc_string **parts, glmc_string_heap *heap) {
          const unsigned char *b = (const unsigned char *)s->bytes;
          int64_t n = s->length, count = 0, i = 0, remaining = \(maxSplit.map { "\($0)LL" } ?? "INT64_MAX");
        \(body)  return count;
        }
        void \(name)(GLMC_GLOBAL void **args, long begin, long end) {
          glmc_string *const *x = (glmc_string *const *)args[0];
          int64_t *Z = (int64_t *)args[2];
          glmc_string_heap *heap = (glmc_string_heap *)args[4];
          if (begin >= end) return;
          int64_t width = 0;
          for (long i = 0; i < \(count); ++i) {
            Z[i] = \(name)_split(x[i], NULL, heap);
            if (Z[i] > width) width = Z[i];
          }
          ((int64_t *)args[3])[0] = width;

        """
        if let bound {
            text += """
              /* Cannot happen (maxsplit bounds the parts); the runtime refuses the extent. */
              if (width > \(bound)) return;
              glmc_string **y = (glmc_string **)args[1];

            """
        } else {
            // A negative length fails the allocation, and so the run, like an out-of-memory one.
            text += """
              glmc_string *block = heap->alloc(heap, width <= INT64_MAX / \(8 * max(count, 1)) ? width * \(8 * count) : -1);
              if (!block) return;
              glmc_string **y = (glmc_string **)block->bytes;
              *(glmc_string ***)args[1] = y;

            """
        }
        text += """
          glmc_string *empty = NULL;
          for (long i = 0; i < \(count); ++i) {
            int64_t k = \(name)_split(x[i], y + i * width, heap);
            if (k < 0) return;
            for (; k < width; ++k) {
              if (!empty && !(empty = glmc_string_make(heap, (const unsigned char *)"", 0))) return;
              y[i * width + k] = empty;
            }
          }
        }

        """
        return text
    }

    /// LabelEncoder with string keys: a binary search for the input's canonical form (NFC) over the
    /// keys' (sorted byte-wise, unique); key
    /// k maps to entry k of the value table, a key not found to the last entry (the default). The
    /// result is a value of `numericValueBytes` bytes copied from the value table (arguments: x,
    /// table, y, heap), or with string values (`stringValues`) a new heap string (arguments: x, y, heap).
    static func labelEncodeStrings(name: String, keys: [[UInt8]], numericValueBytes: Int?, stringValues: [[UInt8]]) -> String {
        let offsets = keys.reduce(into: [0]) { $0.append($0.last! + $1.count) }
        var text = """
        // \(name): LabelEncoder (\(keys.count) string keys)
        GLMC_TABLE unsigned char \(name)_key_bytes[] = \(byteTable(keys.flatMap { $0 }));
        GLMC_TABLE long \(name)_key_offsets[] = \(intTable(offsets));

        """
        if numericValueBytes == nil { text += valueTables(name: name, stringValues) }
        text += """
        void \(name)(GLMC_GLOBAL void **args, long begin, long end) {
          glmc_string *const *x = (glmc_string *const *)args[0];
          glmc_string_heap *heap = (glmc_string_heap *)args[\(numericValueBytes == nil ? 2 : 3)];
          for (long i = begin; i < end; ++i) {
            const glmc_string *key = glmc_string_canonical(heap, x[i]);
            if (!key) return;
            long lo = 0, hi = \(keys.count);
            while (lo < hi) {
              long mid = lo + (hi - lo) / 2;
              int c = glmc_string_compare(key, \(name)_key_bytes + \(name)_key_offsets[mid], \(name)_key_offsets[mid + 1] - \(name)_key_offsets[mid]);
              if (c == 0) { lo = mid; hi = -1; break; }
              if (c > 0) lo = mid + 1; else hi = mid;
            }
            long k = hi == -1 ? lo : \(keys.count);
            \(storeValue(name: name, numericValueBytes: numericValueBytes, output: numericValueBytes == nil ? 1 : 2, heap: 2))
          }
        }

        """
        return text
    }

    /// LabelEncoder with integer keys (read as int64) and string values.
    static func labelEncodeIntegers(name: String, inputType: String, keys: [Int64], stringValues: [[UInt8]]) -> String {
        """
        // \(name): LabelEncoder (\(keys.count) integer keys, string values)
        GLMC_TABLE int64_t \(name)_keys[] = {\((keys.isEmpty ? [0] : keys).map { $0 == Int64.min ? "INT64_MIN" : "\($0)LL" }.joined(separator: ", "))};
        \(valueTables(name: name, stringValues))
        void \(name)(GLMC_GLOBAL void **args, long begin, long end) {
          const \(inputType) *x = (const \(inputType) *)args[0];
          for (long i = begin; i < end; ++i) {
            int64_t v = (int64_t)x[i];
            long lo = 0, hi = \(keys.count);
            while (lo < hi) {
              long mid = lo + (hi - lo) / 2;
              if (\(name)_keys[mid] == v) { lo = mid; hi = -1; break; }
              if (\(name)_keys[mid] < v) lo = mid + 1; else hi = mid;
            }
            long k = hi == -1 ? lo : \(keys.count);
            \(storeValue(name: name, numericValueBytes: nil, output: 1, heap: 2))
          }
        }

        """
    }

    static func valueTables(name: String, _ values: [[UInt8]]) -> String {
        let offsets = values.reduce(into: [0]) { $0.append($0.last! + $1.count) }
        return """
        GLMC_TABLE unsigned char \(name)_value_bytes[] = \(byteTable(values.flatMap { $0 }));
        GLMC_TABLE long \(name)_value_offsets[] = \(intTable(offsets));

        """
    }

    static func storeValue(name: String, numericValueBytes: Int?, output: Int, heap: Int) -> String {
        if let size = numericValueBytes {
            return "memcpy((char *)args[\(output)] + i * \(size), (const char *)args[1] + k * \(size), \(size));"
        }
        return """
        glmc_string *s = glmc_string_make((glmc_string_heap *)args[\(heap)], \(name)_value_bytes + \(name)_value_offsets[k], \(name)_value_offsets[k + 1] - \(name)_value_offsets[k]);
            if (!s) return;
            ((glmc_string **)args[\(output)])[i] = s;
        """
    }

    /// RegexFullMatch: the interpreter's compiled NFA (`RE2Regex.program`) as tables, simulated over the
    /// string's Unicode scalars exactly as `RE2Regex.fullMatch` does (a thread list per position,
    /// linear in the input).
    static func regexFullMatch(name: String, pattern: String, program: [RE2Regex.Instruction]) -> String {
        // Instruction kinds: 0 char (a: class), 1 split (a, b), 2 jump (a), 3 assertion (a), 4 match.
        var kinds: [Int] = [], a: [Int] = [], b: [Int] = []
        var classStart: [Int] = [0], negated: [Int] = [], lows: [Int] = [], highs: [Int] = []
        func assertionCode(_ x: RE2Regex.Assertion) -> Int {
            switch x {
            case .beginText: return 0
            case .endText: return 1
            case .beginLine: return 2
            case .endLine: return 3
            case .wordBoundary: return 4
            case .notWordBoundary: return 5
            }
        }
        for inst in program {
            switch inst {
            case .char(let c):
                kinds.append(0); a.append(negated.count); b.append(0)
                negated.append(c.negated ? 1 : 0)
                for r in c.ranges { lows.append(Int(r.lowerBound)); highs.append(Int(r.upperBound)) }
                classStart.append(lows.count)
            case .split(let x, let y): kinds.append(1); a.append(x); b.append(y)
            case .jump(let x): kinds.append(2); a.append(x); b.append(0)
            case .assertion(let x): kinds.append(3); a.append(assertionCode(x)); b.append(0)
            case .match: kinds.append(4); a.append(0); b.append(0)
            }
        }
        let count = program.count
        let comment = pattern.unicodeScalars.map { $0.isASCII && $0.value >= 0x20 && $0 != "*" && $0 != "/" ? String($0) : "?" }.joined()
        return """
        // \(name): RegexFullMatch of /\(comment)/ (\(count) NFA instructions)
        GLMC_TABLE int \(name)_kind[] = \(intTable(kinds));
        GLMC_TABLE long \(name)_a[] = \(intTable(a));
        GLMC_TABLE long \(name)_b[] = \(intTable(b));
        GLMC_TABLE long \(name)_class_start[] = \(intTable(classStart));
        GLMC_TABLE int \(name)_class_negated[] = \(intTable(negated));
        GLMC_TABLE uint32_t \(name)_low[] = \(intTable(lows));
        GLMC_TABLE uint32_t \(name)_high[] = \(intTable(highs));
        static int \(name)_word(uint32_t c) {
          return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F;
        }
        /* Adds `pc` and what it reaches without consuming input at position `pos` (scalar index) to
           `list`; `before` / `after` are the scalars around the position (-1: none). */
        static void \(name)_add(long pc, long pos, long before, long after, long *mark, long *list, long *size, long *stack) {
          long top = 0;
          stack[top++] = pc;
          while (top > 0) {
            long p = stack[--top];
            if (mark[p] == pos) continue;
            mark[p] = pos;
            switch (\(name)_kind[p]) {
            case 1: stack[top++] = \(name)_b[p]; stack[top++] = \(name)_a[p]; break;
            case 2: stack[top++] = \(name)_a[p]; break;
            case 3: {
              int holds = 0, w0 = before >= 0 && \(name)_word((uint32_t)before), w1 = after >= 0 && \(name)_word((uint32_t)after);
              switch (\(name)_a[p]) {
              case 0: holds = before < 0; break;
              case 1: holds = after < 0; break;
              case 2: holds = before < 0 || before == 0x0A; break;
              case 3: holds = after < 0 || after == 0x0A; break;
              case 4: holds = w0 != w1; break;
              default: holds = w0 == w1; break;
              }
              if (holds) stack[top++] = p + 1;
              break;
            }
            default: list[(*size)++] = p; break;
            }
          }
        }
        void \(name)(GLMC_GLOBAL void **args, long begin, long end) {
          glmc_string *const *x = (glmc_string *const *)args[0];
          uint8_t *y = (uint8_t *)args[1];
          GLMC_SCRATCH(long, memory, \(5 * count + 1), 2);
          long *mark = memory, *current = memory + \(count), *next = memory + \(2 * count), *stack = memory + \(3 * count);
          for (long i = begin; i < end; ++i) {
            const unsigned char *s = (const unsigned char *)x[i]->bytes;
            int64_t n = x[i]->length, offset = 0;
            for (long p = 0; p < \(count); ++p) mark[p] = -1;
            long size = 0, pos = 0;
            long c = n > 0 ? (long)glmc_utf8_next(s, n, &offset) : -1;
            \(name)_add(0, 0, -1, c, mark, current, &size, stack);
            while (c >= 0 && size > 0) {
              long following = offset < n ? (long)glmc_utf8_next(s, n, &offset) : -1, nextSize = 0;
              for (long t = 0; t < size; ++t) {
                long pc = current[t];
                if (\(name)_kind[pc] != 0) continue;
                long k = \(name)_a[pc];
                int in = 0;
                for (long r = \(name)_class_start[k]; r < \(name)_class_start[k + 1]; ++r) {
                  if ((uint32_t)c >= \(name)_low[r] && (uint32_t)c <= \(name)_high[r]) { in = 1; break; }
                }
                if (in != \(name)_class_negated[k]) \(name)_add(pc + 1, pos + 1, c, following, mark, next, &nextSize, stack);
              }
              long *swap = current; current = next; next = swap;
              size = nextSize;
              pos += 1;
              c = following;
            }
            int matched = 0;
            if (c < 0) for (long t = 0; t < size; ++t) if (\(name)_kind[current[t]] == 4) matched = 1;
            y[i] = (uint8_t)matched;
          }
          GLMC_SCRATCH_FREE(memory);
        }

        """
    }
}
