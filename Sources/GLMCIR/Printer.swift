/// Writes a module as glmc IR text (see Docs/IR.md). The output is deterministic: values are
/// numbered in definition order, attributes are sorted by name, and `Parser` reads it back exactly.
public struct Printer {
    public enum WeightMode: Sendable {
        /// Small tensors as literals, external data by reference, other bytes as
        /// `dense_resource<__elided__>` (what a person wants to read).
        case elideLarge
        /// Every byte printed (hex for large tensors): the text alone reproduces the module.
        case full
    }

    /// Tensors with at most this many elements print as literal lists.
    public static let literalLimit = 16

    public var weights: WeightMode

    public init(weights: WeightMode = .elideLarge) { self.weights = weights }

    public func print(_ module: Module) -> String {
        var out = ""
        if !module.metadata.isEmpty {
            let items = module.metadata.keys.sorted().map { "\(identifierOrQuoted($0)) = \(quoted(module.metadata[$0]!))" }
            out += "module attributes {" + items.joined(separator: ", ") + "}\n"
        }
        let opsets = module.opsets.keys.sorted().map { "\(quoted($0)) = \(module.opsets[$0]!)" }
        out += "opsets {" + opsets.joined(separator: ", ") + "}\n\n"
        var state = State(opsets: module.opsets)
        out += "func @" + identifierOrQuoted(module.main.name)
        printFunction(module.main, indent: "", outerNames: [:], state: &state, into: &out)
        out += "\n"
        return out
    }

    /// Prints one function's signature and body (after its `func @name` or `graph` keyword).
    private func printFunction(_ f: Function, indent: String, outerNames: [ValueID: String],
                               state: inout State, into out: inout String) {
        var names: [ValueID: String] = [:]
        func define(_ v: ValueID) -> String {
            let n = "%\(state.counter)"
            state.counter += 1
            names[v] = n
            return n
        }
        let args = f.arguments.map { v -> String in
            let n = define(v)
            return "\(n): \(typeText(f.type(of: v)))" + loc([f.name(of: v)])
        }
        out += "(" + args.joined(separator: ", ") + ")"
        if !f.captures.isEmpty {
            let caps = f.captures.map { c -> String in
                let outer = outerNames[c.outer] ?? "%<invalid>"
                let inner = define(c.inner)
                return "\(outer) as \(inner): \(typeText(f.type(of: c.inner)))" + loc([f.name(of: c.inner)])
            }
            out += " captures(" + caps.joined(separator: ", ") + ")"
        }
        let results = f.outputs.enumerated().map { i, v in
            typeText(f.type(of: v)) + loc([i < f.outputNames.count ? f.outputNames[i] : ""])
        }
        out += " -> (" + results.joined(separator: ", ") + ") {\n"
        let inner = indent + "  "
        for inst in f.body {
            out += inner
            let resultNames = inst.results.map { define($0) }
            let operandText = inst.operands.map { $0.map { names[$0] ?? "%<undefined>" } ?? "_" }
            // An instruction without results prints as just `Op(...)`.
            if !resultNames.isEmpty { out += resultNames.joined(separator: ", ") + " = " }
            if let value = inst.constantValue, inst.attributes.count == 1, inst.operands.isEmpty,
               inst.results.count == 1, f.type(of: inst.results[0]) == value.type,
               inst.opset == state.opsets[""] {
                // The short form carries no opset, operands or separate tensor type: anything else
                // prints as `Constant(...) {value = ...}`.
                out += "const " + data(value)
            } else {
                out += inst.op.description.isIdentifierLike ? inst.op.description : quoted(inst.op.description)
                if inst.opset != state.opsets[inst.op.domain] { out += "@\(inst.opset)" }
                out += "(" + operandText.joined(separator: ", ") + ")"
                if !inst.attributes.isEmpty {
                    let attrs = inst.attributes.keys.sorted().map { key in
                        "\(identifierOrQuoted(key)) = " + attribute(inst.attributes[key]!, indent: inner, names: names, state: &state)
                    }
                    out += " {" + attrs.joined(separator: ", ") + "}"
                }
            }
            if !inst.results.isEmpty {
                out += " : " + inst.results.map { typeText(f.type(of: $0)) }.joined(separator: ", ")
            }
            out += loc(inst.results.map { f.name(of: $0) })
            if !inst.nodeName.isEmpty { out += " node(\(quoted(inst.nodeName)))" }
            out += "\n"
        }
        out += inner + "return " + f.outputs.map { names[$0] ?? "%<undefined>" }.joined(separator: ", ") + "\n"
        out += indent + "}"
    }

    private struct State {
        var opsets: [String: Int]
        var counter = 0
    }

    private func loc(_ names: [String]) -> String {
        names.allSatisfy(\.isEmpty) ? "" : " loc(" + names.map(quoted).joined(separator: ", ") + ")"
    }

    private func attribute(_ a: Attribute, indent: String, names: [ValueID: String], state: inout State) -> String {
        switch a {
        case .int(let v): return String(v)
        case .float(let v): return floatText(v)
        case .string(let s): return quoted(s)
        case .tensor(let t): return data(t) + " : " + typeText(t.type)
        case .graph(let g): return graph(g, indent: indent, names: names, state: &state)
        case .ints(let v): return "[" + v.map(String.init).joined(separator: ", ") + "]"
        case .floats(let v): return "[" + v.map(floatText).joined(separator: ", ") + "]"
        case .strings(let v): return "[" + v.map(quoted).joined(separator: ", ") + "]"
        case .tensors(let v): return "[" + v.map { data($0) + " : " + typeText($0.type) }.joined(separator: ", ") + "]"
        case .graphs(let v):
            var parts: [String] = []
            for g in v { parts.append(graph(g, indent: indent, names: names, state: &state)) }
            return "[" + parts.joined(separator: ", ") + "]"
        }
    }

    private func graph(_ g: Function, indent: String, names: [ValueID: String], state: inout State) -> String {
        var text = "graph @" + identifierOrQuoted(g.name)
        printFunction(g, indent: indent, outerNames: names, state: &state, into: &text)
        return text
    }

    /// `dense<[...]>`, `dense<"0x...">`, `external<"path", offset, length>` or `dense_resource<__elided__>`.
    public func data(_ t: TensorData) -> String {
        switch t.contents {
        case .elided: return "dense_resource<__elided__>"
        case .strings(let s): return "dense<[" + s.map(quoted).joined(separator: ", ") + "]>"
        case .bytes:
            if let origin = t.origin {
                return "external<\(quoted(origin.path)), \(origin.offset), \(origin.length)>"
            }
            if t.elementCount <= Printer.literalLimit, let items = literalElements(t) {
                return "dense<[" + items.joined(separator: ", ") + "]>"
            }
            if weights == .elideLarge && t.elementCount > Printer.literalLimit { return "dense_resource<__elided__>" }
            return "dense<\"0x" + t.withRawBytes(hex) + "\">"
        }
    }

    /// Decimal literals for every element, or nil when some float is not finite (those print as hex
    /// so NaN payloads and signs survive).
    private func literalElements(_ t: TensorData) -> [String]? {
        switch t.dtype {
        case .f64:
            let v = t.elements(as: Double.self)
            guard v.allSatisfy(\.isFinite) else { return nil }
            return v.map { withDot("\($0)") }
        case .f32:
            let v = t.elements(as: Float.self)
            guard v.allSatisfy(\.isFinite) else { return nil }
            return v.map(floatText)
        case .f16, .bf16:
            let v = t.elements(as: UInt16.self).map { t.dtype == .f16 ? halfToFloat($0) : bfloat16ToFloat($0) }
            guard v.allSatisfy(\.isFinite) else { return nil }
            return v.map(floatText)
        case .bool: return t.elements(as: UInt8.self).map { $0 != 0 ? "true" : "false" }
        case .string: return nil
        case .u64: return t.elements(as: UInt64.self).map { String($0) }
        default: return t.integers()?.map { String($0) }
        }
    }
}

/// A type as IR text: `TensorType.description`, except that a symbolic dimension whose name is not
/// made of `[A-Za-z0-9_.-]` (or is empty) prints quoted, `?"seq len"`, so it reads back.
public func typeText(_ t: TensorType) -> String {
    guard let dims = t.shape.dims, dims.contains(where: { if case .symbol(let s) = $0 { return !s.isSymbolLike } else { return false } }) else {
        return t.description
    }
    return t.dtype.rawValue + "[" + dims.map { d -> String in
        if case .symbol(let s) = d, !s.isSymbolLike { return "?" + quoted(s) }
        return d.description
    }.joined(separator: ",") + "]"
}

/// A float as IR text: Swift's shortest round-tripping form, always with a `.` or exponent so it
/// never reads back as an integer; `inf`, `-inf`, `nan` for the rest.
public func floatText(_ v: Float) -> String {
    if v.isNaN { return "nan" }
    if v.isInfinite { return v < 0 ? "-inf" : "inf" }
    return withDot("\(v)")
}

func withDot(_ s: String) -> String {
    s.contains(where: { $0 == "." || $0 == "e" || $0 == "E" || $0 == "n" || $0 == "i" }) ? s : s + ".0"
}

func hex(_ bytes: UnsafeRawBufferPointer) -> String {
    let digits = Array("0123456789ABCDEF".utf8)
    var out = [UInt8]()
    out.reserveCapacity(bytes.count * 2)
    for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
    return String(decoding: out, as: UTF8.self)
}

/// `"text"` with C-style escapes for quotes, backslashes and control characters.
public func quoted(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case "\r": out += "\\r"
        default:
            if scalar.value < 0x20 || scalar.value == 0x7F {
                out += "\\u{" + String(scalar.value, radix: 16) + "}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}

func identifierOrQuoted(_ s: String) -> String { s.isIdentifierLike ? s : quoted(s) }

extension String {
    /// Letters, digits, `_`, `.` and `-`, not starting with a digit or `-`, and not empty.
    var isIdentifierLike: Bool {
        guard let first = unicodeScalars.first, first.isASCIILetter || first == "_" else { return false }
        return unicodeScalars.allSatisfy { $0.isASCIILetter || ("0"..."9").contains($0) || $0 == "_" || $0 == "." || $0 == "-" }
    }
}

extension String {
    /// Non-empty and only `[A-Za-z0-9_.-]`: a symbolic dimension that prints bare after `?`.
    var isSymbolLike: Bool {
        !isEmpty && utf8.allSatisfy { c in
            (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || (c >= 0x30 && c <= 0x39) || c == 0x5F || c == 0x2E || c == 0x2D
        }
    }
}

extension Unicode.Scalar {
    var isASCIILetter: Bool { ("a"..."z").contains(self) || ("A"..."Z").contains(self) }
}
