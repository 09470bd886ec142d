import GLMCIR

/// Everything glmc knows about one operator, defined once: which opset versions changed it, how to
/// infer result types, and what it computes. The interpreter, constant folding and the verifier all
/// use this one definition.
public struct OpDefinition: Sendable {
    public var name: OpName
    /// The opset versions at which the op's schema changed (ONNX's "since version"s), ascending.
    /// A node at opset N follows the largest entry ≤ N; the op does not exist below the first.
    public var sinceVersions: [Int]
    /// Result types from operand types (and constant operands, when known).
    public var infer: @Sendable (InferenceContext) throws -> [TensorType]
    /// Results from runtime tensors.
    public var evaluate: @Sendable (EvalContext) throws -> [Tensor]

    public init(_ type: String, domain: String = "", since sinceVersions: [Int],
                infer: @escaping @Sendable (InferenceContext) throws -> [TensorType],
                evaluate: @escaping @Sendable (EvalContext) throws -> [Tensor]) {
        self.name = OpName(type, domain: domain)
        self.sinceVersions = sinceVersions
        self.infer = infer
        self.evaluate = evaluate
    }

    /// The schema version a node at domain opset `opset` follows, or nil if the op did not exist yet.
    public func schemaVersion(forOpset opset: Int) -> Int? {
        sinceVersions.last(where: { $0 <= opset })
    }
}

/// What shape inference and evaluation both read about a node.
public protocol NodeContext {
    var op: OpName { get }
    var nodeName: String { get }
    /// The opset version of the node's domain (e.g. 13 for a Softmax in an opset-13 model).
    var opset: Int { get }
    var attributes: [String: Attribute] { get }
    /// How many results the node has (trailing optional outputs that were omitted are not counted).
    var outputCount: Int { get }
}

extension NodeContext {
    /// "node 'name' (Op)" for error messages.
    public var where_: String { nodeName.isEmpty ? "\(op)" : "node '\(nodeName)' (\(op))" }

    /// An error that names the node. Messages about missing features should say "unsupported".
    public func error(_ message: String) -> GLMCError { GLMCError("\(where_): \(message)") }
    public func unsupported(_ what: String) -> GLMCError { GLMCError("\(where_): unsupported: \(what)") }

    public func has(_ name: String) -> Bool { attributes[name] != nil }

    public func int(_ name: String) throws -> Int? {
        switch attributes[name] {
        case nil: return nil
        case .int(let v)?: return v
        case let other?: throw error("attribute '\(name)' must be INT, got \(other.kindName)")
        }
    }
    public func int(_ name: String, default value: Int) throws -> Int { try int(name) ?? value }

    public func float(_ name: String) throws -> Float? {
        switch attributes[name] {
        case nil: return nil
        case .float(let v)?: return v
        case .int(let v)?: return Float(v)
        case let other?: throw error("attribute '\(name)' must be FLOAT, got \(other.kindName)")
        }
    }
    public func float(_ name: String, default value: Float) throws -> Float { try float(name) ?? value }

    public func string(_ name: String) throws -> String? {
        switch attributes[name] {
        case nil: return nil
        case .string(let v)?: return v
        case let other?: throw error("attribute '\(name)' must be STRING, got \(other.kindName)")
        }
    }
    public func string(_ name: String, default value: String) throws -> String { try string(name) ?? value }

    public func ints(_ name: String) throws -> [Int]? {
        switch attributes[name] {
        case nil: return nil
        case .ints(let v)?: return v
        case .floats(let v)? where v.isEmpty: return []
        case let other?: throw error("attribute '\(name)' must be INTS, got \(other.kindName)")
        }
    }
    public func floats(_ name: String) throws -> [Float]? {
        switch attributes[name] {
        case nil: return nil
        case .floats(let v)?: return v
        case .ints(let v)?: return v.map(Float.init)
        case let other?: throw error("attribute '\(name)' must be FLOATS, got \(other.kindName)")
        }
    }
    public func strings(_ name: String) throws -> [String]? {
        switch attributes[name] {
        case nil: return nil
        case .strings(let v)?: return v
        case .ints(let v)? where v.isEmpty: return []
        case let other?: throw error("attribute '\(name)' must be STRINGS, got \(other.kindName)")
        }
    }
    public func tensor(_ name: String) throws -> TensorData? {
        switch attributes[name] {
        case nil: return nil
        case .tensor(let v)?: return v
        case let other?: throw error("attribute '\(name)' must be TENSOR, got \(other.kindName)")
        }
    }
    public func graph(_ name: String) throws -> Function? {
        switch attributes[name] {
        case nil: return nil
        case .graph(let v)?: return v
        case let other?: throw error("attribute '\(name)' must be GRAPH, got \(other.kindName)")
        }
    }
}

/// Input to shape inference: operand types (nil for omitted optional operands) and, where an operand
/// is a constant, its value — so Reshape's target shape or Slice's bounds can be read.
public struct InferenceContext: NodeContext, Sendable {
    public var op: OpName
    public var nodeName: String
    public var opset: Int
    public var attributes: [String: Attribute]
    public var outputCount: Int
    public var inputTypes: [TensorType?]
    public var constantInputs: [TensorData?]

    public init(op: OpName, nodeName: String = "", opset: Int, attributes: [String: Attribute],
                outputCount: Int, inputTypes: [TensorType?], constantInputs: [TensorData?] = []) {
        self.op = op; self.nodeName = nodeName; self.opset = opset; self.attributes = attributes
        self.outputCount = outputCount; self.inputTypes = inputTypes; self.constantInputs = constantInputs
    }

    /// The type of operand `i`, or nil when absent.
    public func inputType(_ i: Int) -> TensorType? { i < inputTypes.count ? inputTypes[i] : nil }

    /// The type of a required operand; throws naming the node when it is missing.
    public func requiredInput(_ i: Int) throws -> TensorType {
        guard let t = inputType(i) else { throw error("missing required input \(i)") }
        return t
    }

    /// The value of operand `i` when it is a constant (nil otherwise).
    public func constant(_ i: Int) -> Tensor? {
        guard i < constantInputs.count, let data = constantInputs[i] else { return nil }
        return try? Tensor(data)
    }
}

/// Input to evaluation: runtime tensors (nil for omitted optional operands), plus a way to run nested
/// regions (If/Loop/Scan bodies) with the enclosing values they capture.
public struct EvalContext: NodeContext {
    public var op: OpName
    public var nodeName: String
    public var opset: Int
    public var attributes: [String: Attribute]
    public var outputCount: Int
    public var inputs: [Tensor?]
    /// Runs a nested function on argument tensors; captures are bound by the caller's environment.
    public var runSubgraph: (Function, [Tensor]) throws -> [Tensor]

    public init(op: OpName, nodeName: String = "", opset: Int, attributes: [String: Attribute],
                outputCount: Int, inputs: [Tensor?],
                runSubgraph: @escaping (Function, [Tensor]) throws -> [Tensor] = { _, _ in
                    throw GLMCError("unsupported: nested graphs in this context") }) {
        self.op = op; self.nodeName = nodeName; self.opset = opset; self.attributes = attributes
        self.outputCount = outputCount; self.inputs = inputs; self.runSubgraph = runSubgraph
    }

    public func input(_ i: Int) -> Tensor? { i < inputs.count ? inputs[i] : nil }

    public func requiredInput(_ i: Int) throws -> Tensor {
        guard let t = input(i) else { throw error("missing required input \(i)") }
        return t
    }

    /// Required operand `i`, checked for an element count that matches its shape, so kernels can
    /// index without bounds checks.
    public func operand(_ i: Int) throws -> Tensor {
        let t = try requiredInput(i)
        try checkConsistent(t)
        return t
    }

    /// Optional operand `i` (nil when omitted), checked like `operand`.
    public func optionalOperand(_ i: Int) throws -> Tensor? {
        guard let t = input(i) else { return nil }
        try checkConsistent(t)
        return t
    }

    private func checkConsistent(_ t: Tensor) throws {
        guard checkedElementCount(t.shape) == t.count else {
            throw error("operand of shape \(t.shape) holds \(t.count) elements")
        }
    }
}
