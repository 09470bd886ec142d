import GLMCIR

/// Typed element storage of a runtime tensor. Half-precision types keep their raw bit patterns
/// (convert with `halfToFloat` / `bfloat16ToFloat`).
public enum TensorStorage: Sendable {
    case f64([Double]), f32([Float]), f16([UInt16]), bf16([UInt16])
    case i64([Int64]), i32([Int32]), i16([Int16]), i8([Int8])
    case u64([UInt64]), u32([UInt32]), u16([UInt16]), u8([UInt8])
    case bool([Bool]), string([String])

    public var dtype: DType {
        switch self {
        case .f64: return .f64
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        case .i64: return .i64
        case .i32: return .i32
        case .i16: return .i16
        case .i8: return .i8
        case .u64: return .u64
        case .u32: return .u32
        case .u16: return .u16
        case .u8: return .u8
        case .bool: return .bool
        case .string: return .string
        }
    }

    public var count: Int {
        switch self {
        case .f64(let a): return a.count
        case .f32(let a): return a.count
        case .f16(let a), .bf16(let a), .u16(let a): return a.count
        case .i64(let a): return a.count
        case .i32(let a): return a.count
        case .i16(let a): return a.count
        case .i8(let a): return a.count
        case .u64(let a): return a.count
        case .u32(let a): return a.count
        case .u8(let a): return a.count
        case .bool(let a): return a.count
        case .string(let a): return a.count
        }
    }
}

/// A runtime tensor with a concrete shape: what the interpreter and constant folding compute with.
/// Elements are row-major (C order).
public struct Tensor: Sendable {
    public var shape: [Int]
    public var storage: TensorStorage

    public init(shape: [Int], storage: TensorStorage) {
        self.shape = shape; self.storage = storage
    }

    public var dtype: DType { storage.dtype }
    public var count: Int { storage.count }
    public var rank: Int { shape.count }
    public var type: TensorType { TensorType(dtype, static: shape) }

    public init(_ values: [Float], shape: [Int]) { self.init(shape: shape, storage: .f32(values)) }
    public init(_ values: [Int64], shape: [Int]) { self.init(shape: shape, storage: .i64(values)) }
    public init(_ values: [Bool], shape: [Int]) { self.init(shape: shape, storage: .bool(values)) }

    /// A tensor of `dtype` and `shape` filled with zeros (empty strings, false).
    public static func zeros(_ dtype: DType, shape: [Int]) -> Tensor {
        let n = shape.reduce(1, *)
        return Tensor(doubles: [Double](repeating: 0, count: n), dtype: dtype, shape: shape)
    }

    /// Every element as Double (bool → 0/1, strings → NaN). Convenient for generic numeric kernels.
    public var doubles: [Double] {
        switch storage {
        case .f64(let a): return a
        case .f32(let a): return a.map(Double.init)
        case .f16(let a): return a.map { Double(halfToFloat($0)) }
        case .bf16(let a): return a.map { Double(bfloat16ToFloat($0)) }
        case .i64(let a): return a.map(Double.init)
        case .i32(let a): return a.map(Double.init)
        case .i16(let a): return a.map(Double.init)
        case .i8(let a): return a.map(Double.init)
        case .u64(let a): return a.map { Double($0) } // not `Double.init`: that picks init(bitPattern:)
        case .u32(let a): return a.map(Double.init)
        case .u16(let a): return a.map(Double.init)
        case .u8(let a): return a.map(Double.init)
        case .bool(let a): return a.map { $0 ? 1 : 0 }
        case .string(let a): return a.map { _ in .nan }
        }
    }

    /// Every element as Int64 (floats truncate toward zero; only meaningful for integer-valued data).
    public var int64s: [Int64] {
        switch storage {
        case .i64(let a): return a
        case .i32(let a): return a.map(Int64.init)
        case .i16(let a): return a.map(Int64.init)
        case .i8(let a): return a.map(Int64.init)
        case .u64(let a): return a.map { Int64(truncatingIfNeeded: $0) }
        case .u32(let a): return a.map(Int64.init)
        case .u16(let a): return a.map(Int64.init)
        case .u8(let a): return a.map(Int64.init)
        case .bool(let a): return a.map { $0 ? 1 : 0 }
        default: return doubles.map { $0.isFinite ? Int64(clamping: Int64(exactly: $0.rounded(.towardZero)) ?? 0) : 0 }
        }
    }

    /// Builds a tensor of `dtype` from Double values: floats round to nearest, integers truncate
    /// toward zero and wrap like a C cast, bool is `value != 0`. (Cast has its own exact rules.)
    public init(doubles values: [Double], dtype: DType, shape: [Int]) {
        func int<T: FixedWidthInteger>(_ v: Double) -> T {
            guard v.isFinite else { return 0 }
            let t = v.rounded(.towardZero)
            if let exact = T(exactly: t) { return exact }
            if let wide = Int64(exactly: t) { return T(truncatingIfNeeded: wide) }
            return t < 0 ? T.min : T.max
        }
        let storage: TensorStorage
        switch dtype {
        case .f64: storage = .f64(values)
        case .f32: storage = .f32(values.map { Float($0) })
        case .f16: storage = .f16(values.map { floatToHalf(Float($0)) })
        case .bf16: storage = .bf16(values.map { floatToBFloat16(Float($0)) })
        case .i64: storage = .i64(values.map(int))
        case .i32: storage = .i32(values.map(int))
        case .i16: storage = .i16(values.map(int))
        case .i8: storage = .i8(values.map(int))
        case .u64: storage = .u64(values.map(int))
        case .u32: storage = .u32(values.map(int))
        case .u16: storage = .u16(values.map(int))
        case .u8: storage = .u8(values.map(int))
        case .bool: storage = .bool(values.map { $0 != 0 })
        case .string: storage = .string(values.map { "\($0)" })
        }
        self.init(shape: shape, storage: storage)
    }

    /// Builds an integer tensor of `dtype` from Int64 values (wrapping like a C cast).
    public init(int64s values: [Int64], dtype: DType, shape: [Int]) {
        let storage: TensorStorage
        switch dtype {
        case .i64: storage = .i64(values)
        case .i32: storage = .i32(values.map { Int32(truncatingIfNeeded: $0) })
        case .i16: storage = .i16(values.map { Int16(truncatingIfNeeded: $0) })
        case .i8: storage = .i8(values.map { Int8(truncatingIfNeeded: $0) })
        case .u64: storage = .u64(values.map { UInt64(truncatingIfNeeded: $0) })
        case .u32: storage = .u32(values.map { UInt32(truncatingIfNeeded: $0) })
        case .u16: storage = .u16(values.map { UInt16(truncatingIfNeeded: $0) })
        case .u8: storage = .u8(values.map { UInt8(truncatingIfNeeded: $0) })
        case .bool: storage = .bool(values.map { $0 != 0 })
        default: self.init(doubles: values.map(Double.init), dtype: dtype, shape: shape); return
        }
        self.init(shape: shape, storage: storage)
    }

    /// Same elements, new shape (element counts must agree; callers check).
    public func reshaped(_ newShape: [Int]) -> Tensor { Tensor(shape: newShape, storage: storage) }
}

// MARK: - Conversion to and from IR constants

extension Tensor {
    /// Reads a constant's bytes into a runtime tensor. Throws for elided data.
    public init(_ data: TensorData) throws {
        guard let sizes = data.type.shape.staticSizes else {
            throw GLMCError("constant of type \(data.type) has no static shape")
        }
        if case .elided = data.contents {
            throw GLMCError("the data of a \(data.type) constant was elided from the IR text (dump with --weights full)")
        }
        let storage: TensorStorage
        switch data.dtype {
        case .f64: storage = .f64(data.elements())
        case .f32: storage = .f32(data.elements())
        case .f16: storage = .f16(data.elements())
        case .bf16: storage = .bf16(data.elements())
        case .i64: storage = .i64(data.elements())
        case .i32: storage = .i32(data.elements())
        case .i16: storage = .i16(data.elements())
        case .i8: storage = .i8(data.elements())
        case .u64: storage = .u64(data.elements())
        case .u32: storage = .u32(data.elements())
        case .u16: storage = .u16(data.elements())
        case .u8: storage = .u8(data.elements())
        case .bool: storage = .bool(data.elements(as: UInt8.self).map { $0 != 0 })
        case .string: storage = .string(data.strings)
        }
        let expected = checkedElementCount(sizes) ?? -1
        guard storage.count == expected else {
            throw GLMCError("constant of type \(data.type) holds \(storage.count) elements, expected \(expected)")
        }
        self.init(shape: sizes, storage: storage)
    }

    /// This tensor as an IR constant (copies the elements into new storage).
    public var tensorData: TensorData {
        let type = self.type
        switch storage {
        case .f64(let a): return TensorData(type: type, elements: a)
        case .f32(let a): return TensorData(type: type, elements: a)
        case .f16(let a), .bf16(let a), .u16(let a): return TensorData(type: type, elements: a)
        case .i64(let a): return TensorData(type: type, elements: a)
        case .i32(let a): return TensorData(type: type, elements: a)
        case .i16(let a): return TensorData(type: type, elements: a)
        case .i8(let a): return TensorData(type: type, elements: a)
        case .u64(let a): return TensorData(type: type, elements: a)
        case .u32(let a): return TensorData(type: type, elements: a)
        case .u8(let a): return TensorData(type: type, elements: a)
        case .bool(let a): return TensorData(type: type, elements: a.map { UInt8($0 ? 1 : 0) })
        case .string(let a): return TensorData(type: type, contents: .strings(a))
        }
    }
}
