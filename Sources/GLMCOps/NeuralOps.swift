import GLMCIR

/// Neural-network ops: convolutions, pooling, resizing and sampling, recurrent layers, attention.
/// Each family lives in its own `Neural*.swift` file and contributes one list here.
public enum NeuralOps {
    public static let all: [OpDefinition] =
        convOps + poolOps + resizeOps + samplingOps + recurrentOps + attentionOps
}

// MARK: - Computation precision

/// The real types the convolution kernels compute in: f64 tensors in Double, every other floating
/// type (f32, f16, bf16) in Float. Integer-valued ops (ConvInteger, QLinearConv) use Double, which
/// is exact for their accumulators. The other neural ops are not hot enough to need this: they
/// compute through `Tensor.doubles`. (Codable only because `SIMD8<Self>` requires it.)
protocol NeuralScalar: BinaryFloatingPoint, SIMDScalar, Sendable, Codable {
    /// The elements of `t` converted to this type (no copy when the storage already is).
    static func neuralArray(_ t: Tensor) -> [Self]
    /// A tensor of `dtype` holding `values` (rounded to the dtype).
    static func neuralTensor(_ values: [Self], dtype: DType, shape: [Int]) -> Tensor
}

extension Float: NeuralScalar {
    static func neuralArray(_ t: Tensor) -> [Float] {
        switch t.storage {
        case .f32(let a): return a
        case .f16(let a): return a.map(halfToFloat)
        case .bf16(let a): return a.map(bfloat16ToFloat)
        default: return t.doubles.map { Float($0) }
        }
    }
    static func neuralTensor(_ values: [Float], dtype: DType, shape: [Int]) -> Tensor {
        switch dtype {
        case .f32: return Tensor(shape: shape, storage: .f32(values))
        case .f16: return Tensor(shape: shape, storage: .f16(values.map(floatToHalf)))
        case .bf16: return Tensor(shape: shape, storage: .bf16(values.map(floatToBFloat16)))
        default: return Tensor(doubles: values.map(Double.init), dtype: dtype, shape: shape)
        }
    }
}

extension Double: NeuralScalar {
    static func neuralArray(_ t: Tensor) -> [Double] { t.doubles }
    static func neuralTensor(_ values: [Double], dtype: DType, shape: [Int]) -> Tensor {
        Tensor(doubles: values, dtype: dtype, shape: shape)
    }
}

// MARK: - Shared helpers

extension NeuralOps {
    static let floatTypes: Set<DType> = [.f64, .f32, .f16, .bf16]

    /// Throws unless `t` has a floating-point element type.
    static func requireFloat(_ t: Tensor, _ what: String, _ ctx: some NodeContext) throws {
        guard floatTypes.contains(t.dtype) else {
            throw ctx.unsupported("\(what) of element type \(t.dtype)")
        }
    }

    /// Throws unless `t` has rank `rank`.
    static func requireRank(_ t: Tensor, _ rank: Int, _ what: String, _ ctx: some NodeContext) throws {
        guard t.rank == rank else { throw ctx.error("\(what) must have rank \(rank), got shape \(t.shape)") }
    }

    /// Element count of `shape`, throwing on overflow or negative sizes.
    static func count(_ shape: [Int], _ ctx: some NodeContext) throws -> Int {
        guard let n = checkedElementCount(shape) else { throw ctx.error("invalid result shape \(shape)") }
        return n
    }

    /// Result types for ops whose single result has the type of operand 0.
    static func sameAsInput(_ ctx: InferenceContext) throws -> [TensorType] {
        [try ctx.requiredInput(0)]
    }

    /// The row-major multi-index of flat `index` in `sizes`.
    static func unravel(_ index: Int, _ sizes: [Int]) -> [Int] {
        var rest = index
        var out = [Int](repeating: 0, count: sizes.count)
        for d in stride(from: sizes.count - 1, through: 0, by: -1) where sizes[d] > 0 {
            out[d] = rest % sizes[d]
            rest /= sizes[d]
        }
        return out
    }

    /// Floor division that rounds toward negative infinity (Swift's `/` truncates).
    @inline(__always) static func floorDiv(_ a: Int, _ b: Int) -> Int {
        let q = a / b
        return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q
    }

    /// `Int(v)` for a value that may be non-finite or huge (hostile coordinates): clamped to
    /// ±2^40, far outside any tensor, so index checks downstream reject it instead of trapping.
    @inline(__always) static func safeInt(_ v: Double) -> Int {
        guard v.isFinite else { return v > 0 ? 1 << 40 : -(1 << 40) }
        return Int(min(max(v, -1_099_511_627_776), 1_099_511_627_776))
    }

    /// Reads an optional 1-element (or empty) tensor input as a Double.
    static func scalar(_ t: Tensor?, default value: Double) -> Double {
        guard let t, t.count > 0 else { return value }
        return t.doubles[0]
    }
}

// MARK: - Sliding-window geometry (Conv, ConvTranspose, pooling)

/// The window attributes shared by Conv-like and pooling ops, validated, for `rank` spatial dims.
struct WindowAttributes {
    /// The `auto_pad` attribute.
    enum AutoPad: String {
        case notSet = "NOTSET", sameUpper = "SAME_UPPER", sameLower = "SAME_LOWER", valid = "VALID"
    }

    var kernel: [Int]
    var strides: [Int]
    var dilations: [Int]
    /// Explicit pads: begins of every spatial dim, then ends.
    var pads: [Int]
    var autoPad: AutoPad
    var ceilMode: Bool

    /// `kernel` is the kernel shape when it comes from the weights; otherwise the attribute is
    /// required.
    init(_ ctx: some NodeContext, rank: Int, kernel: [Int]?, allowDilations: Bool = true) throws {
        if let k = try ctx.ints("kernel_shape") {
            self.kernel = k
        } else if let kernel {
            self.kernel = kernel
        } else {
            throw ctx.error("attribute 'kernel_shape' is required")
        }
        strides = try ctx.ints("strides") ?? []
        if strides.isEmpty { strides = [Int](repeating: 1, count: rank) }
        dilations = allowDilations ? (try ctx.ints("dilations") ?? []) : []
        if dilations.isEmpty { dilations = [Int](repeating: 1, count: rank) }
        pads = try ctx.ints("pads") ?? []
        if pads.isEmpty { pads = [Int](repeating: 0, count: 2 * rank) }
        let ap = try ctx.string("auto_pad", default: "NOTSET")
        guard let autoPad = AutoPad(rawValue: ap) else { throw ctx.unsupported("auto_pad '\(ap)'") }
        self.autoPad = autoPad
        ceilMode = try ctx.int("ceil_mode", default: 0) != 0
        guard self.kernel.count == rank, strides.count == rank, dilations.count == rank,
              pads.count == 2 * rank else {
            throw ctx.error("kernel_shape \(self.kernel), strides \(strides), dilations \(dilations), "
                + "pads \(pads) do not match \(rank) spatial dimensions")
        }
        // The upper bound keeps all window arithmetic far from Int overflow on hostile models.
        let limit = WindowAttributes.limit
        guard self.kernel.allSatisfy({ $0 > 0 && $0 <= limit }), strides.allSatisfy({ $0 > 0 && $0 <= limit }),
              dilations.allSatisfy({ $0 > 0 && $0 <= limit }), pads.allSatisfy({ $0 >= 0 && $0 <= limit }) else {
            throw ctx.error("kernel_shape, strides and dilations must be positive and pads non-negative "
                + "(and all at most \(limit))")
        }
    }

    /// Largest kernel size, stride, dilation or pad accepted.
    static let limit = 1 << 24

    var rank: Int { kernel.count }

    /// The extent of the dilated kernel along dim `d`.
    func span(_ d: Int) -> Int { (kernel[d] - 1) * dilations[d] + 1 }

    /// Output size and padding along spatial dim `d` for input size `n`.
    func resolve(_ d: Int, input n: Int, _ ctx: some NodeContext) throws -> (output: Int, padBegin: Int, padEnd: Int) {
        let span = self.span(d), s = strides[d]
        switch autoPad {
        case .valid:
            return (n >= span ? (n - span) / s + 1 : 0, 0, 0)
        case .sameUpper, .sameLower:
            let out = (n + s - 1) / s
            let total = max(0, (out - 1) * s + span - n)
            let begin = autoPad == .sameUpper ? total / 2 : (total + 1) / 2
            return (out, begin, total - begin)
        case .notSet:
            let pb = pads[d], pe = pads[rank + d]
            let room = n + pb + pe - span
            guard room >= 0 else {
                throw ctx.error("window of size \(span) does not fit input size \(n) with pads \(pb),\(pe)")
            }
            var out = room / s + 1
            if ceilMode {
                out = (room + s - 1) / s + 1
                // The last window must start inside the input or the begin padding.
                if (out - 1) * s >= n + pb { out -= 1 }
            }
            return (out, pb, pe)
        }
    }

    /// Output dims for possibly unknown input dims (shape inference).
    func outputDims(_ input: [Dim], _ ctx: some NodeContext) throws -> [Dim] {
        try input.enumerated().map { d, dim in
            guard let n = dim.value else { return .unknown }
            return .known(try resolve(d, input: n, ctx).output)
        }
    }
}

/// For each kernel offset `k` and each position `i` along one spatial dim, the position it reads
/// or writes on the other side of a sliding window (`i * stride - pad + k * dilation`), or -1 when
/// that falls outside `0..<limit`. Conv's im2col maps output→input, ConvTranspose's col2im
/// input→output.
struct WindowMap {
    let count: Int
    let table: [Int]

    init(count: Int, kernel: Int, stride: Int, dilation: Int, pad: Int, limit: Int) {
        self.count = count
        var t = [Int](repeating: -1, count: count * kernel)
        for k in 0..<kernel {
            for i in 0..<count {
                let p = i * stride - pad + k * dilation
                if p >= 0 && p < limit { t[k * count + i] = p }
            }
        }
        table = t
    }

    @inline(__always) subscript(k: Int, i: Int) -> Int { table[k * count + i] }
}
