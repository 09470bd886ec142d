/// An instruction attribute: the ONNX attribute kinds. Graph attributes hold nested regions
/// (the bodies of If, Loop and Scan).
public enum Attribute: Sendable {
    case int(Int)
    case float(Float)
    case string(String)
    case tensor(TensorData)
    case graph(Function)
    case ints([Int])
    case floats([Float])
    case strings([String])
    case tensors([TensorData])
    case graphs([Function])

    /// ONNX's word for the kind, for error messages ("expected INTS, got FLOAT").
    public var kindName: String {
        switch self {
        case .int: return "INT"
        case .float: return "FLOAT"
        case .string: return "STRING"
        case .tensor: return "TENSOR"
        case .graph: return "GRAPH"
        case .ints: return "INTS"
        case .floats: return "FLOATS"
        case .strings: return "STRINGS"
        case .tensors: return "TENSORS"
        case .graphs: return "GRAPHS"
        }
    }
}
