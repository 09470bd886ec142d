import GLMCIR

/// Ops that belong to no larger family: signal processing (MiscSignal.swift), tensor utilities
/// (MiscTensor.swift), string processing (MiscStrings.swift, with the regex engine in MiscRegex.swift),
/// the `ai.onnx.ml` domain (MiscML.swift) and the training optimizers of `ai.onnx.preview.training`
/// (MiscTraining.swift). This file holds the helpers they share.
/// (Col2Im and FlexAttention, once planned here, live with the movement and neural ops.)
public enum MiscOps {
    public static let all: [OpDefinition] =
        signalOps + tensorOps + stringOps + mlOps + trainingOps
}

// MARK: - Shared helpers

extension MiscOps {
    static let floatTypes: Set<DType> = [.f16, .bf16, .f32, .f64]
    static let intTypes: Set<DType> = [.i8, .i16, .i32, .i64, .u8, .u16, .u32, .u64]
    static let numericTypes: Set<DType> = floatTypes.union(intTypes)

    /// Throws unless `dtype` is one of `allowed`.
    static func require(_ dtype: DType, in allowed: Set<DType>, _ ctx: some NodeContext, _ what: String = "operand") throws {
        guard allowed.contains(dtype) else {
            let names = allowed.map(\.rawValue).sorted().joined(separator: ", ")
            throw ctx.error("\(what) element type \(dtype) is not allowed (expected one of \(names))")
        }
    }

    /// The single integer of a scalar (or one-element) operand such as a length or a step.
    static func scalarInt(_ t: Tensor, _ what: String, _ ctx: some NodeContext) throws -> Int {
        guard t.count == 1, t.dtype.isInteger else {
            throw ctx.error("\(what) must be one integer, got \(t.type)")
        }
        return Int(clamping: t.int64s[0])
    }

    /// The single number of a scalar (or one-element) floating-point or integer operand.
    static func scalarDouble(_ t: Tensor, _ what: String, _ ctx: some NodeContext) throws -> Double {
        guard t.count == 1, t.dtype != .string else { throw ctx.error("\(what) must be one number, got \(t.type)") }
        return t.doubles[0]
    }

    /// A constant scalar integer operand at inference time, or nil when it is not constant.
    static func constantInt(_ ctx: InferenceContext, _ i: Int) -> Int? {
        guard let t = ctx.constant(i), t.count == 1, t.dtype.isInteger else { return nil }
        return Int(clamping: t.int64s[0])
    }

    /// The element type named by an ONNX data-type attribute (`output_datatype`, `to`).
    static func dtypeAttribute(_ ctx: some NodeContext, _ name: String, default value: DType? = nil) throws -> DType {
        guard let code = try ctx.int(name) else {
            if let value { return value }
            throw ctx.error("missing attribute '\(name)'")
        }
        guard let dtype = DType(onnxCode: Int32(clamping: code)) else {
            throw ctx.unsupported("data type \(DType.onnxName(ofCode: Int32(clamping: code))) in attribute '\(name)'")
        }
        return dtype
    }

    /// The most elements a result of these ops may have: beyond it a (hostile) model gets an error
    /// rather than an allocation failure.
    static let maxElements = 1 << 31

    /// The element count of a result shape; throws when it overflows or exceeds `maxElements`.
    static func resultCount(_ shape: [Int], _ ctx: some NodeContext) throws -> Int {
        guard let n = checkedElementCount(shape), n <= maxElements else {
            throw ctx.error("result shape \(shape) is too large")
        }
        return n
    }

    /// The product of some of a tensor's dimensions. Zero when any is zero, so that it cannot
    /// overflow for a (consistent) tensor whose other dimensions are huge.
    static func product<C: Collection>(_ dims: C) -> Int where C.Element == Int {
        dims.contains(0) ? 0 : dims.reduce(1, *)
    }

    /// The first `ctx.outputCount` of an op's result types; throws when the node asks for more.
    static func results<T>(_ ctx: some NodeContext, _ values: [T]) throws -> [T] {
        guard ctx.outputCount <= values.count else {
            throw ctx.error("expects at most \(values.count) results, got \(ctx.outputCount)")
        }
        return Array(values.prefix(ctx.outputCount))
    }

    /// A size computed at inference time from constants: known when it is a valid size (a constant
    /// that evaluation will reject leaves it unknown).
    static func size(_ value: Int?) -> Dim {
        guard let value, value >= 0 else { return .unknown }
        return .known(value)
    }

    /// For each element of a tensor of shape `to`, the flat index of the element of a tensor of
    /// shape `from` that NumPy broadcasting reads (`from` must broadcast to `to`, whose element
    /// count callers have checked).
    static func broadcastIndices(from: [Int], to: [Int]) -> [Int] {
        let n = to.reduce(1, *)
        guard n > 0 else { return [] }
        let offset = to.count - from.count
        let fromStrides = ShapeHelpers.strides(from)
        // Stride of each output axis in the source: 0 where the source is broadcast.
        var strides = [Int](repeating: 0, count: to.count)
        for (k, d) in from.enumerated() where d != 1 { strides[offset + k] = fromStrides[k] }
        var result = [Int](repeating: 0, count: n)
        var counter = [Int](repeating: 0, count: to.count)
        var index = 0
        for flat in 0 ..< n {
            result[flat] = index
            // Odometer increment of the output multi-index, tracking the source index.
            var axis = to.count - 1
            while axis >= 0 {
                counter[axis] += 1
                index += strides[axis]
                if counter[axis] < to[axis] { break }
                index -= strides[axis] * counter[axis]
                counter[axis] = 0
                axis -= 1
            }
        }
        return result
    }

    /// The value of `x` after rounding to `dtype`'s precision (identity for f64).
    static func rounded(_ x: Double, to dtype: DType) -> Double {
        switch dtype {
        case .f32: return Double(Float(x))
        case .f16: return Double(halfToFloat(floatToHalf(Float(x))))
        case .bf16: return Double(bfloat16ToFloat(floatToBFloat16(Float(x))))
        default: return x
        }
    }
}
