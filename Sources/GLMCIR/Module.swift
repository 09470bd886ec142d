/// Names a value inside one function: an index into `Function.values`.
public struct ValueID: Hashable, Comparable, Sendable {
    public var index: Int
    public init(_ index: Int) { self.index = index }
    public static func < (a: ValueID, b: ValueID) -> Bool { a.index < b.index }
}

/// What is known of a value: its type and the source tensor name it came from ("" if none).
public struct ValueInfo: Sendable {
    public var type: TensorType
    public var name: String
    public init(type: TensorType, name: String = "") { self.type = type; self.name = name }
}

/// An operator name: ONNX op type plus domain ("" is the default ONNX domain, printed bare;
/// other domains print as `domain.OpType`).
public struct OpName: Hashable, Sendable, CustomStringConvertible {
    public var domain: String
    public var type: String
    public init(_ type: String, domain: String = "") { self.type = type; self.domain = domain }
    public var description: String { domain.isEmpty ? type : domain + "." + type }

    /// Constant tensors are instructions of this op with a `value` tensor attribute.
    public static let constant = OpName("Constant")
}

/// One three-address instruction: `%r0, %r1 = Op(%a, _, %b) {attrs} : types`.
public struct Instruction: Sendable {
    public var op: OpName
    /// The opset version of `op.domain` this instruction follows (semantics change across versions).
    public var opset: Int
    /// Operands in order; nil is an omitted optional input (ONNX's empty name, printed `_`).
    public var operands: [ValueID?]
    public var results: [ValueID]
    public var attributes: [String: Attribute]
    /// The source node's name ("" if none), for error messages.
    public var nodeName: String

    public init(op: OpName, opset: Int, operands: [ValueID?], results: [ValueID],
                attributes: [String: Attribute] = [:], nodeName: String = "") {
        self.op = op; self.opset = opset; self.operands = operands; self.results = results
        self.attributes = attributes; self.nodeName = nodeName
    }

    /// The tensor of a `Constant` instruction.
    public var constantValue: TensorData? {
        guard op == .constant, case .tensor(let t)? = attributes["value"] else { return nil }
        return t
    }

    /// The nested regions held in graph attributes, in attribute-name order.
    public var nestedFunctions: [Function] {
        var found: [(key: String, graphs: [Function])] = []
        for (key, value) in attributes {
            switch value {
            case .graph(let g): found.append((key, [g]))
            case .graphs(let gs): found.append((key, gs))
            default: break
            }
        }
        if found.count > 1 { found.sort { $0.key < $1.key } }
        return found.flatMap(\.graphs)
    }

    /// "node 'conv1' (Conv)" or "Conv instruction" for messages.
    public var displayName: String {
        nodeName.isEmpty ? "\(op) instruction" : "node '\(nodeName)' (\(op))"
    }
}

/// A function: arguments, a straight-line body in SSA form, and results. Nested regions (If/Loop/Scan
/// bodies) are functions too; they see outer values only through `captures`, so every function is closed.
public struct Function: Sendable {
    /// Binds a value of the enclosing function to an argument-like value of this one.
    public struct Capture: Sendable {
        public var outer: ValueID
        public var inner: ValueID
        public init(outer: ValueID, inner: ValueID) { self.outer = outer; self.inner = inner }
    }

    public var name: String
    public var values: [ValueInfo] = []
    public var arguments: [ValueID] = []
    public var captures: [Capture] = []
    public var body: [Instruction] = []
    public var outputs: [ValueID] = []
    /// Source names of the outputs (ONNX graph output names), kept even if passes replace the value.
    public var outputNames: [String] = []

    public init(name: String) { self.name = name }

    /// Adds a value and returns its id.
    public mutating func addValue(_ type: TensorType, name: String = "") -> ValueID {
        values.append(ValueInfo(type: type, name: name))
        return ValueID(values.count - 1)
    }

    public func type(of v: ValueID) -> TensorType { values[v.index].type }
    public func name(of v: ValueID) -> String { values[v.index].name }

    /// Map from each value to the index of the instruction defining it (arguments and captures absent).
    public func definingInstructions() -> [ValueID: Int] {
        var map: [ValueID: Int] = [:]
        for (i, inst) in body.enumerated() { for r in inst.results { map[r] = i } }
        return map
    }
}

/// A compilation unit: the main function plus the opset versions the model imports.
public struct Module: Sendable {
    /// Opset version per domain ("" is the default ONNX domain).
    public var opsets: [String: Int]
    public var main: Function
    /// Free-form metadata from the source (producer name, ir_version, doc strings...).
    public var metadata: [String: String]

    public init(opsets: [String: Int], main: Function, metadata: [String: String] = [:]) {
        self.opsets = opsets; self.main = main; self.metadata = metadata
    }
}
