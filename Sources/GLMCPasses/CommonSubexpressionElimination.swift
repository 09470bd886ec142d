import GLMCIR
import GLMCOps

/// Merges instructions that compute the same op on the same operands with the same attributes.
///
/// One forward sweep per function (nested regions separately): each instruction, with its operands
/// already renamed to the surviving copies, gets a key — op, opset, operands, attributes compared
/// structurally (floats by bits, tensors by type and bytes) and result types. The first instruction
/// with a key survives; later ones are removed and their results renamed to its results. Constants
/// merge the same way (same type and bytes), which also makes their users mergeable. Two-operand
/// Add, Mul, And, Or, Xor and Equal are keyed with their operands in a canonical order (they are
/// exactly commutative). Not merged: random ops, ops glmc does not define (their semantics are
/// unknown), instructions with nested regions, and constants whose bytes were elided.
public struct CommonSubexpressionElimination: Pass {
    public static let name = "cse"
    public static let summary = "Merges instructions that compute the same op on the same operands with the same attributes."
    public init() {}

    public func run(on module: inout Module, context: PassContext) throws -> Bool {
        Folding.forEachFunction(&module.main) { f in
            let merged = Self.merge(in: &f)
            if merged > 0 { context.count("instructions merged", merged) }
            return merged > 0
        }
    }

    static let commutative: Set<String> = ["Add", "Mul", "And", "Or", "Xor", "Equal"]

    static func merge(in f: inout Function) -> Int {
        var seen: [InstructionKey: Int] = [:]
        var rename: [ValueID: ValueID] = [:]
        var removed = Set<Int>()
        for i in f.body.indices {
            Folding.rename(&f.body[i], rename)
            let inst = f.body[i]
            guard let key = key(inst, in: f) else { continue }
            if let first = seen[key] {
                for (old, new) in zip(inst.results, f.body[first].results) { rename[old] = new }
                removed.insert(i)
            } else {
                seen[key] = i
            }
        }
        guard !removed.isEmpty else { return 0 }
        Folding.renameOutputs(&f, rename)
        f.removeInstructions(at: removed)
        return removed.count
    }

    /// The instruction's identity, or nil when it must not be merged.
    static func key(_ inst: Instruction, in f: Function) -> InstructionKey? {
        if let c = inst.constantValue, c.isElided { return nil }
        guard inst.nestedFunctions.isEmpty, !Folding.hasRandomOutput(inst),
              inst.op == .constant || OpRegistry.definition(of: inst.op) != nil else { return nil }
        var operands = inst.operands
        if inst.op.domain.isEmpty, commutative.contains(inst.op.type), operands.count == 2, let a = operands[0], let b = operands[1], b < a {
            operands = [b, a]
        }
        return InstructionKey(op: inst.op, opset: inst.opset, operands: operands, attributes: inst.attributes,
                              resultTypes: inst.results.map { f.type(of: $0) })
    }
}

/// What makes two instructions interchangeable. Attribute values compare structurally: floats by bit
/// pattern (so NaN matches NaN and 0.0 differs from -0.0), tensors by type and bytes.
struct InstructionKey: Hashable {
    var op: OpName
    var opset: Int
    var operands: [ValueID?]
    var attributes: [String: Attribute]
    var resultTypes: [TensorType]

    static func == (a: InstructionKey, b: InstructionKey) -> Bool {
        guard a.op == b.op, a.opset == b.opset, a.operands == b.operands, a.resultTypes == b.resultTypes,
              a.attributes.count == b.attributes.count else { return false }
        for (name, x) in a.attributes {
            guard let y = b.attributes[name], Self.equal(x, y) else { return false }
        }
        return true
    }

    func hash(into h: inout Hasher) {
        h.combine(op); h.combine(opset); h.combine(operands); h.combine(resultTypes)
        for name in attributes.keys.sorted() {
            h.combine(name)
            Self.hash(attributes[name]!, into: &h)
        }
    }

    static func equal(_ x: Attribute, _ y: Attribute) -> Bool {
        switch (x, y) {
        case (.int(let a), .int(let b)): return a == b
        case (.float(let a), .float(let b)): return a.bitPattern == b.bitPattern
        case (.string(let a), .string(let b)): return a == b
        case (.ints(let a), .ints(let b)): return a == b
        case (.floats(let a), .floats(let b)): return a.map(\.bitPattern) == b.map(\.bitPattern)
        case (.strings(let a), .strings(let b)): return a == b
        case (.tensor(let a), .tensor(let b)): return equal(a, b)
        case (.tensors(let a), .tensors(let b)): return a.count == b.count && zip(a, b).allSatisfy { equal($0, $1) }
        default: return false // graphs are never merged
        }
    }

    /// Same type and contents; elided data is unknown, so never equal.
    static func equal(_ a: TensorData, _ b: TensorData) -> Bool {
        guard a.type == b.type else { return false }
        switch (a.contents, b.contents) {
        case (.strings(let x), .strings(let y)): return x == y
        case (.bytes, .bytes): return a.withRawBytes { x in b.withRawBytes { y in x.elementsEqual(y) } }
        default: return false
        }
    }

    static func hash(_ x: Attribute, into h: inout Hasher) {
        switch x {
        case .int(let v): h.combine(0); h.combine(v)
        case .float(let v): h.combine(1); h.combine(v.bitPattern)
        case .string(let v): h.combine(2); h.combine(v)
        case .ints(let v): h.combine(3); h.combine(v)
        case .floats(let v): h.combine(4); h.combine(v.map(\.bitPattern))
        case .strings(let v): h.combine(5); h.combine(v)
        case .tensor(let t): h.combine(6); hash(t, into: &h)
        case .tensors(let ts): h.combine(7); for t in ts { hash(t, into: &h) }
        case .graph, .graphs: h.combine(8)
        }
    }

    static func hash(_ t: TensorData, into h: inout Hasher) {
        h.combine(t.type)
        switch t.contents {
        case .strings(let s): h.combine(s)
        case .bytes: t.withRawBytes { h.combine(bytes: $0) }
        case .elided: break
        }
    }
}
