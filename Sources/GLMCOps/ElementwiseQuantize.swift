import GLMCIR

// QuantizeLinear, DequantizeLinear and DynamicQuantizeLinear with integer quantized types (8-, 16- and
// 32-bit). Parameters are per tensor, per axis or blocked. Arithmetic follows the ONNX reference
// implementation's NumPy types step by step (e.g. float32 division, then round half to even), since a
// different intermediate precision can move a value across a rounding boundary.

extension ElementwiseOps {
    static let quantizeOps: [OpDefinition] = [quantizeLinear, dequantizeLinear, dynamicQuantizeLinear]

    /// Where each element of a tensor finds its quantization parameter (scale or zero point).
    struct QuantizationLayout {
        private enum Kind { case perTensor, perAxis, blocked }
        private let kind: Kind
        /// Elements after the axis, the size of the axis, the parameter's size along it, block size.
        private let inner, dim, paramDim, blockSize: Int

        /// A parameter with one element applies to all; otherwise it is 1-D along `axis` (`blockSize` 0)
        /// or has the data's shape with ceil(size / blockSize) along `axis`.
        init(param: [Int], data: [Int], axis: Int, blockSize: Int, _ ctx: some NodeContext) throws {
            if checkedElementCount(param) == 1 {
                kind = .perTensor; inner = 1; dim = 1; paramDim = 1; self.blockSize = 1
                return
            }
            let a = try ShapeHelpers.normalizeAxis(axis, rank: data.count, context: ctx)
            guard a < data.count else { throw ctx.error("axis \(axis) is out of range for a scalar") }
            dim = data[a]
            inner = data[(a + 1)...].reduce(1, *)
            if blockSize <= 0 {
                guard param == [dim] else {
                    throw ctx.error("per-axis parameters must have shape [\(dim)], got \(param)")
                }
                kind = .perAxis; paramDim = dim; self.blockSize = 1
            } else {
                var expected = data
                expected[a] = dim / blockSize + (dim % blockSize == 0 ? 0 : 1)
                guard param == expected else {
                    throw ctx.error("blocked parameters must have shape \(expected), got \(param)")
                }
                kind = .blocked; paramDim = expected[a]; self.blockSize = blockSize
            }
        }

        @inline(__always)
        func index(_ i: Int) -> Int {
            switch kind {
            case .perTensor: return 0
            case .perAxis: return (i / inner) % dim
            case .blocked:
                let q = i / inner
                return ((q / dim) * paramDim + (q % dim) / blockSize) * inner + i % inner
            }
        }
    }

    static let quantizedTypes: Set<DType> = [.u8, .i8, .u16, .i16, .u32, .i32]

    /// The smallest and largest value of a quantized integer type.
    private static func range(of dtype: DType) -> (Double, Double) {
        switch dtype {
        case .i8: return (Double(Int8.min), Double(Int8.max))
        case .u8: return (0, Double(UInt8.max))
        case .i16: return (Double(Int16.min), Double(Int16.max))
        case .u16: return (0, Double(UInt16.max))
        case .i32: return (Double(Int32.min), Double(Int32.max))
        default: return (0, Double(UInt32.max))
        }
    }

    /// A data-type attribute (`output_dtype`, `precision`): nil when 0 or absent.
    private static func typeAttribute(_ ctx: some NodeContext, _ name: String) throws -> DType? {
        let code = Int32(truncatingIfNeeded: try ctx.int(name, default: 0))
        if code == 0 { return nil }
        guard let t = DType(onnxCode: code) else { throw ctx.unsupported("\(name) \(DType.onnxName(ofCode: code))") }
        return t
    }

    /// QuantizeLinear's result type: the zero point's, else `output_dtype`, else uint8.
    private static func quantizedType(_ ctx: some NodeContext, zeroPoint: DType?) throws -> DType {
        let declared = try typeAttribute(ctx, "output_dtype")
        if let zeroPoint, let declared, declared != zeroPoint {
            throw ctx.error("output_dtype \(declared) differs from the zero point's type \(zeroPoint)")
        }
        let t = zeroPoint ?? declared ?? .u8
        try require(t, in: quantizedTypes, ctx)
        return t
    }

    /// `v` rounded to the precision of float type `dtype` (as NumPy computes in that type).
    static func rounded(_ v: Double, to dtype: DType) -> Double {
        switch dtype {
        case .f32: return Double(Float(v))
        case .f16: return Double(halfToFloat(floatToHalf(Float(v))))
        case .bf16: return Double(bfloat16ToFloat(floatToBFloat16(Float(v))))
        default: return v
        }
    }

    /// NumPy's result type of arithmetic between `a` and `b`, restricted to what quantization meets:
    /// integers with floats give f64, mixed 16-bit floats give f32.
    private static func promoted(_ a: DType, _ b: DType) -> DType {
        if !a.isFloatingPoint || !b.isFloatingPoint || a == .f64 || b == .f64 { return .f64 }
        return a == b ? a : .f32
    }

    private static func layouts(_ ctx: EvalContext, data: Tensor, scale: Tensor, zeroPoint: Tensor?)
        throws -> (QuantizationLayout, QuantizationLayout?) {
        let axis = try ctx.int("axis", default: 1)
        let blockSize = try ctx.int("block_size", default: 0)
        let scaleAt = try QuantizationLayout(param: scale.shape, data: data.shape, axis: axis, blockSize: blockSize, ctx)
        let zeroAt = try zeroPoint.map {
            try QuantizationLayout(param: $0.shape, data: data.shape, axis: axis, blockSize: blockSize, ctx)
        }
        return (scaleAt, zeroAt)
    }

    /// y = saturate(round_half_even(x / scale) + zero_point).
    static let quantizeLinear = OpDefinition("QuantizeLinear", since: [10, 13, 19, 21, 23, 24, 25, 28], infer: { ctx in
        let x = try ctx.requiredInput(0)
        return try results(ctx, [TensorType(try quantizedType(ctx, zeroPoint: ctx.inputType(2)?.dtype), x.shape)])
    }, evaluate: { ctx in
        let x = try ctx.operand(0), scale = try ctx.operand(1), zeroPoint = try ctx.optionalOperand(2)
        let outType = try quantizedType(ctx, zeroPoint: zeroPoint?.dtype)
        try require(x.dtype, in: floatTypes.union([.i32]), ctx)
        try require(scale.dtype, in: floatTypes.union([.i32]), ctx)
        let (scaleAt, zeroAt) = try layouts(ctx, data: x, scale: scale, zeroPoint: zeroPoint)
        let division = try typeAttribute(ctx, "precision") ?? promoted(x.dtype, scale.dtype)
        let (low, high) = range(of: outType)
        let xs = doubles(x), scales = doubles(scale), zeros = zeroPoint.map(doubles) ?? []
        let y = (0 ..< xs.count).map { i -> Double in
            let q = rounded(xs[i] / scales[scaleAt.index(i)], to: division).rounded(.toNearestOrEven)
            let z = zeroAt.map { zeros[$0.index(i)] } ?? 0
            return q.isNaN ? low : Swift.min(high, Swift.max(low, q + z))
        }
        return [Tensor(doubles: y, dtype: outType, shape: x.shape)]
    })

    /// y = (x - zero_point) * scale, in float32 like the reference (float64 when an operand is 32-bit
    /// integer or double).
    static let dequantizeLinear = OpDefinition("DequantizeLinear", since: [10, 13, 19, 21, 23, 24, 25, 28], infer: { ctx in
        let x = try ctx.requiredInput(0), scale = try ctx.requiredInput(1)
        try require(x.dtype, in: quantizedTypes, ctx)
        return try results(ctx, [TensorType(try typeAttribute(ctx, "output_dtype") ?? scale.dtype, x.shape)])
    }, evaluate: { ctx in
        let x = try ctx.operand(0), scale = try ctx.operand(1), zeroPoint = try ctx.optionalOperand(2)
        try require(x.dtype, in: quantizedTypes, ctx)
        try require(scale.dtype, in: floatTypes, ctx)
        if let zeroPoint, zeroPoint.dtype != x.dtype {
            throw ctx.error("zero point type \(zeroPoint.dtype) differs from the input's \(x.dtype)")
        }
        let outType = try typeAttribute(ctx, "output_dtype") ?? scale.dtype
        try require(outType, in: floatTypes, ctx)
        let (scaleAt, zeroAt) = try layouts(ctx, data: x, scale: scale, zeroPoint: zeroPoint)
        let wide = x.dtype.byteSize >= 4 && zeroPoint != nil || scale.dtype == .f64
        let step: DType = wide ? .f64 : .f32
        let xs = doubles(x), scales = doubles(scale), zeros = zeroPoint.map(doubles) ?? []
        let y = (0 ..< xs.count).map { i -> Double in
            var d = Double(Float(xs[i]))
            if let zeroAt { d = rounded(d - zeros[zeroAt.index(i)], to: step) }
            return rounded(d * scales[scaleAt.index(i)], to: step)
        }
        return [Tensor(doubles: y, dtype: outType, shape: x.shape)]
    })

    /// Quantizes float32 to uint8 with a scale and zero point chosen from the data's range (which is
    /// widened to include 0), all in float32 as the reference does.
    static let dynamicQuantizeLinear = OpDefinition("DynamicQuantizeLinear", since: [11], infer: { ctx in
        let x = try ctx.requiredInput(0)
        try require(x.dtype, in: [.f32], ctx)
        return try results(ctx, [TensorType(.u8, x.shape), TensorType(.f32, .scalar), TensorType(.u8, .scalar)])
    }, evaluate: { ctx in
        let x = try ctx.operand(0)
        guard case .f32(let xs) = x.storage else { throw ctx.unsupported("\(x.dtype) input") }
        var low: Float = 0, high: Float = 0
        for v in xs { low = Swift.min(low, v); high = Swift.max(high, v) }
        let scale = (high == low ? 1 : high - low) / 255
        let initialZero = 0 - low / scale
        let zero = initialZero.isNaN ? 0 : Swift.max(0, Swift.min(255, initialZero)).rounded(.toNearestOrEven)
        let y = xs.map { v -> UInt8 in
            let q = (v / scale).rounded(.toNearestOrEven) + zero
            return q.isNaN ? 0 : UInt8(Swift.max(0, Swift.min(255, q)))
        }
        let all = [Tensor(shape: x.shape, storage: .u8(y)), Tensor([scale], shape: []),
                   Tensor(shape: [], storage: .u8([UInt8(zero)]))]
        return Array(all.prefix(ctx.outputCount))
    })
}
