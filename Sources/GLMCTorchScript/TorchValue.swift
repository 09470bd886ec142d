import GLMCIR

/// What a TorchScript variable holds while a graph is converted. Tensors are IR values; everything
/// else (sizes, dims, flags, lists of them) is known at convert time, so the integer arithmetic traced
/// models do on shapes folds away and never reaches the IR.
indirect enum TorchValue {
    case tensor(ValueID)
    case int(Int)
    case float(Double)
    case bool(Bool)
    case none
    case string(String)
    case device(String)
    case list([TorchValue])
    case tuple([TorchValue])
    /// A module object of a non-frozen archive (`self`, `self.conv1`): its class and attributes.
    case object(ModuleObject)
    /// The result of an op glmc does not support: carried along so that every unsupported op of a
    /// model is found before the import fails.
    case unsupported

    var kindName: String {
        switch self {
        case .tensor: return "Tensor"
        case .int: return "int"
        case .float: return "float"
        case .bool: return "bool"
        case .none: return "None"
        case .string: return "str"
        case .device: return "Device"
        case .list: return "list"
        case .tuple: return "tuple"
        case .object(let o): return o.className
        case .unsupported: return "unsupported"
        }
    }

    var items: [TorchValue]? {
        switch self {
        case .list(let v), .tuple(let v): return v
        default: return nil
        }
    }

    var isUnsupported: Bool {
        switch self {
        case .unsupported: return true
        case .list(let v), .tuple(let v): return v.contains { $0.isUnsupported }
        default: return false
        }
    }
}

/// A TorchScript module object read from `data.pkl`.
struct ModuleObject {
    var className: String
    /// Dotted path from the root (`conv1`, `layers.0.q`), for constant names.
    var path: String
    var attributes: [(name: String, value: PickleValue)]

    func attribute(_ name: String) -> PickleValue? { attributes.first { $0.name == name }?.value }
}

/// TorchScript's ScalarType codes (c10/core/ScalarType.h) as IR element types.
enum TorchDType {
    static let codes: [Int: DType] = [0: .u8, 1: .i8, 2: .i16, 3: .i32, 4: .i64, 5: .f16, 6: .f32, 7: .f64, 11: .bool, 15: .bf16]

    static func dtype(code: Int) -> DType? { codes[code] }
    static func code(of dtype: DType) -> Int? { codes.first { $0.value == dtype }?.key }

    /// IR text type names (`Float(1, 3, strides=...)`, `Long(...)`).
    static let textNames: [String: DType] = [
        "Float": .f32, "Double": .f64, "Half": .f16, "BFloat16": .bf16, "Long": .i64, "Int": .i32,
        "Short": .i16, "Char": .i8, "Byte": .u8, "Bool": .bool,
    ]
}
