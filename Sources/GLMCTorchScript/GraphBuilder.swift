import GLMCIR
import GLMCOps

/// Builds the IR function of a TorchScript graph: ONNX-domain instructions at one opset, each
/// typed by the op set's shape inference as it is added (so sizes are known for what follows).
final class GraphBuilder {
    /// Opset of every instruction: 20 has Gelu with both approximations and LayerNormalization.
    static let opset = 20

    var function: Function
    /// Constant values, for shape inference and for folding `aten::Int` of a known tensor.
    var constants: [ValueID: TensorData] = [:]
    /// Where the node being converted is (member:line:column or IR text line), for errors.
    var location = ""
    var counter = 0
    /// Largest result (in elements) evaluated at convert time when all operands are constants.
    static let foldLimit = 1 << 16

    init(name: String) { function = Function(name: name) }

    func error(_ message: String) -> GLMCError { GLMCError("\(location): \(message)") }

    func type(of v: ValueID) -> TensorType { function.type(of: v) }

    /// The static sizes of `v`; traced graphs have them once the inputs do.
    func sizes(of v: ValueID) throws -> [Int] {
        guard let s = type(of: v).shape.staticSizes else {
            throw error("the shape of '\(function.name(of: v))' is \(type(of: v)), not static (give the inputs static shapes with --input-shape)")
        }
        return s
    }

    func rank(of v: ValueID) throws -> Int { try sizes(of: v).count }

    func argument(_ type: TensorType, name: String) -> ValueID {
        let id = function.addValue(type, name: name)
        function.arguments.append(id)
        return id
    }

    func constant(_ data: TensorData, name: String = "") -> ValueID {
        counter += 1
        let id = function.addValue(data.type, name: name.isEmpty ? "const_\(counter)" : name)
        function.body.append(Instruction(op: .constant, opset: Self.opset, operands: [], results: [id],
                                         attributes: ["value": .tensor(data)], nodeName: name))
        constants[id] = data
        return id
    }

    func int64s(_ values: [Int]) -> ValueID {
        constant(TensorData(type: TensorType(.i64, static: [values.count]), elements: values.map(Int64.init)))
    }

    func scalar(_ value: Double, _ dtype: DType) throws -> ValueID {
        let t = TensorType(dtype, static: [])
        switch dtype {
        case .f32: return constant(TensorData(type: t, elements: [Float(value)]))
        case .f64: return constant(TensorData(type: t, elements: [value]))
        case .f16: return constant(TensorData(type: t, elements: [floatToHalf(Float(value))]))
        case .i64: return constant(TensorData(type: t, elements: [Int64(exactly: value.rounded(.towardZero)) ?? 0]))
        case .i32: return constant(TensorData(type: t, elements: [Int32(clamping: Int64(exactly: value.rounded(.towardZero)) ?? 0)]))
        case .bool: return constant(TensorData(type: t, elements: [value != 0 ? UInt8(1) : 0]))
        default: throw error("unsupported: a scalar of element type \(dtype)")
        }
    }

    /// Adds `op` and returns its results, typed by the op's shape inference.
    @discardableResult
    func emit(_ op: String, _ operands: [ValueID?], _ attributes: [String: Attribute] = [:], results: Int = 1) throws -> [ValueID] {
        let name = OpName(op)
        guard let definition = OpRegistry.definition(of: name), definition.schemaVersion(forOpset: Self.opset) != nil else {
            throw error("glmc's op set has no \(op) at opset \(Self.opset)")
        }
        counter += 1
        let nodeName = "\(op)_\(counter)"
        let context = InferenceContext(op: name, nodeName: nodeName, opset: Self.opset, attributes: attributes,
                                       outputCount: results,
                                       inputTypes: operands.map { $0.map { type(of: $0) } },
                                       constantInputs: operands.map { $0.flatMap { constants[$0] } })
        let types: [TensorType]
        do { types = try definition.infer(context) } catch let e as GLMCError { throw error(e.message) }
        // Small values computed from constants only (sizes, masks, positions) are evaluated now:
        // traced code reads some of them back as numbers (`int(floor_divide(d, 4))`).
        let operandConstants = operands.compactMap { $0 }.compactMap { constants[$0] }
        if operandConstants.count == operands.compactMap({ $0 }).count,
           types.allSatisfy({ ($0.shape.staticSizes.flatMap(checkedElementCount) ?? Int.max) <= Self.foldLimit }) {
            let inputs = try operands.map { try $0.map { try Tensor(constants[$0]!) } }
            let evaluation = EvalContext(op: name, nodeName: nodeName, opset: Self.opset, attributes: attributes,
                                         outputCount: results, inputs: inputs)
            let values: [Tensor]
            do { values = try definition.evaluate(evaluation) } catch let e as GLMCError { throw error(e.message) }
            return values.prefix(results).map { constant($0.tensorData) }
        }
        let ids = types.prefix(results).map { function.addValue($0, name: "\(nodeName)_out") }
        function.body.append(Instruction(op: name, opset: Self.opset, operands: operands, results: ids,
                                         attributes: attributes, nodeName: nodeName))
        return ids
    }

    func emit1(_ op: String, _ operands: [ValueID?], _ attributes: [String: Attribute] = [:]) throws -> ValueID {
        try emit(op, operands, attributes)[0]
    }

    func cast(_ v: ValueID, to dtype: DType) throws -> ValueID {
        if type(of: v).dtype == dtype { return v }
        return try emit1("Cast", [v], ["to": .int(Int(dtype.onnxCode))])
    }

    /// Drops constants nothing reads: inputs of ops evaluated at convert time, and attributes
    /// read but unused. Values keep their slots; only instructions go.
    func removeUnusedConstants(keeping outputs: [ValueID]) {
        var used = Set(outputs)
        for inst in function.body { for case let v? in inst.operands { used.insert(v) } }
        function.body.removeAll { $0.op == .constant && !used.contains($0.results[0]) }
    }
}
