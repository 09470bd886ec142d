/// Element types of IR tensors. Names are the ones the IR text uses.
public enum DType: String, CaseIterable, Sendable, Hashable {
    case f64, f32, f16, bf16
    case i64, i32, i16, i8
    case u64, u32, u16, u8
    case bool, string

    /// Bytes per element; strings have no fixed size and report 0.
    public var byteSize: Int {
        switch self {
        case .f64, .i64, .u64: return 8
        case .f32, .i32, .u32: return 4
        case .f16, .bf16, .i16, .u16: return 2
        case .i8, .u8, .bool: return 1
        case .string: return 0
        }
    }

    public var isFloatingPoint: Bool { self == .f64 || self == .f32 || self == .f16 || self == .bf16 }
    public var isSignedInteger: Bool { self == .i64 || self == .i32 || self == .i16 || self == .i8 }
    public var isUnsignedInteger: Bool { self == .u64 || self == .u32 || self == .u16 || self == .u8 }
    public var isInteger: Bool { isSignedInteger || isUnsignedInteger }

    /// The ONNX `TensorProto.DataType` code of this type.
    public var onnxCode: Int32 {
        switch self {
        case .f32: return 1
        case .u8: return 2
        case .i8: return 3
        case .u16: return 4
        case .i16: return 5
        case .i32: return 6
        case .i64: return 7
        case .string: return 8
        case .bool: return 9
        case .f16: return 10
        case .f64: return 11
        case .u32: return 12
        case .u64: return 13
        case .bf16: return 16
        }
    }

    /// The element type for an ONNX `TensorProto.DataType` code, or nil when glmc does not support it.
    public init?(onnxCode: Int32) {
        guard let match = DType.allCases.first(where: { $0.onnxCode == onnxCode }) else { return nil }
        self = match
    }

    /// ONNX's name for a data-type code, for error messages about unsupported types.
    public static func onnxName(ofCode code: Int32) -> String {
        let names: [Int32: String] = [
            0: "UNDEFINED", 1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32",
            7: "INT64", 8: "STRING", 9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32",
            13: "UINT64", 14: "COMPLEX64", 15: "COMPLEX128", 16: "BFLOAT16", 17: "FLOAT8E4M3FN",
            18: "FLOAT8E4M3FNUZ", 19: "FLOAT8E5M2", 20: "FLOAT8E5M2FNUZ", 21: "UINT4", 22: "INT4",
            23: "FLOAT4E2M1", 24: "FLOAT8E8M0", 25: "UINT2", 26: "INT2",
        ]
        return names[code] ?? "code \(code)"
    }
}
