import GLMCIR

/// Resize and Upsample. Interpolation is separable: each resized axis is processed on its own,
/// from a per-axis plan that lists, for every output position, the input taps and their weights
/// (following the ONNX reference's coefficient rules exactly, including edge clamping).
extension NeuralOps {
    static let resizeOps: [OpDefinition] = [
        OpDefinition("Resize", since: [10, 11, 13, 18, 19], infer: inferResize, evaluate: evalResize),
        OpDefinition("Upsample", since: [7, 9, 10], infer: inferResize, evaluate: evalResize),
    ]
}

/// How the nearest tap is chosen.
private enum NearestMode: String {
    case roundPreferFloor = "round_prefer_floor", roundPreferCeil = "round_prefer_ceil", floor, ceil
    /// Resize-10 and Upsample: floor when upsampling, ceil when downsampling.
    case simple
}

/// Everything a Resize node's attributes and small inputs determine, resolved against a shape.
private struct ResizeSpec {
    enum Mode { case nearest(NearestMode), linear, cubic(a: Double) }
    var mode: Mode
    var coordinates: String
    var excludeOutside: Bool
    var extrapolation: Double
    var antialias: Bool
    /// Per-axis output sizes and scale factors.
    var outSizes: [Int]
    var scales: [Double]
    /// Full-rank roi (starts, then ends) for tf_crop_and_resize.
    var roi: [Double]?

    /// `scalesInput`, `sizesInput` and `roiInput` are the values of the respective inputs when
    /// known; shapes with unknown dims make the affected output sizes nil.
    init(_ ctx: some NodeContext, inputShape: [Int?], roiInput: [Double]?, scalesInput: [Double]?,
         sizesInput: [Int]?) throws {
        let rank = inputShape.count
        let isResize = ctx.op.type == "Resize"
        let legacy = !isResize || ctx.opset < 11
        let modeName = try ctx.string("mode", default: "nearest")
        switch modeName {
        case "nearest":
            let nm = legacy ? "simple" : try ctx.string("nearest_mode", default: "round_prefer_floor")
            guard let m = NearestMode(rawValue: nm) else { throw ctx.unsupported("nearest_mode '\(nm)'") }
            mode = .nearest(m)
        case "linear", "bilinear", "trilinear": mode = .linear
        case "cubic" where !legacy: mode = .cubic(a: Double(try ctx.float("cubic_coeff_a", default: -0.75)))
        default: throw ctx.unsupported("mode '\(modeName)'")
        }
        coordinates = legacy ? "asymmetric" : try ctx.string("coordinate_transformation_mode", default: "half_pixel")
        let known = ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
                     "tf_half_pixel_for_nn", "tf_crop_and_resize"]
        guard known.contains(coordinates) else { throw ctx.unsupported("coordinate_transformation_mode '\(coordinates)'") }
        excludeOutside = legacy ? false : try ctx.int("exclude_outside", default: 0) != 0
        extrapolation = legacy ? 0 : Double(try ctx.float("extrapolation_value", default: 0))
        antialias = isResize && ctx.opset >= 18 ? try ctx.int("antialias", default: 0) != 0 : false
        if antialias, case .nearest = mode { throw ctx.error("antialias is not defined for nearest mode") }

        var axes = Array(0..<rank)
        if isResize && ctx.opset >= 18, let a = try ctx.ints("axes") {
            axes = try a.map { try ShapeHelpers.normalizeAxis($0, rank: rank, context: ctx) }
            guard Set(axes).count == axes.count else { throw ctx.error("axes \(a) has duplicates") }
        }
        if let r = roiInput, !r.isEmpty {
            guard r.count == 2 * axes.count else { throw ctx.error("roi has \(r.count) values, expected \(2 * axes.count)") }
            var full = [Double](repeating: 0, count: rank) + [Double](repeating: 1, count: rank)
            for (i, a) in axes.enumerated() { full[a] = r[i]; full[rank + a] = r[axes.count + i] }
            roi = full
        }
        scales = [Double](repeating: 1, count: rank)
        outSizes = inputShape.map { $0 ?? -1 }
        if let sizesInput, !sizesInput.isEmpty {
            guard sizesInput.count == axes.count, sizesInput.allSatisfy({ $0 >= 0 }) else {
                throw ctx.error("sizes \(sizesInput) do not match \(axes.count) axes")
            }
            let policy = isResize && ctx.opset >= 18 ? try ctx.string("keep_aspect_ratio_policy", default: "stretch") : "stretch"
            var axisScales: [Double] = []
            for (i, a) in axes.enumerated() {
                guard let n = inputShape[a] else { axisScales.append(.nan); continue }
                axisScales.append(Double(sizesInput[i]) / Double(n))
            }
            switch policy {
            case "stretch":
                for (i, a) in axes.enumerated() { outSizes[a] = sizesInput[i]; scales[a] = axisScales[i] }
            case "not_larger", "not_smaller":
                let s = policy == "not_larger" ? axisScales.min() ?? 1 : axisScales.max() ?? 1
                for a in axes {
                    scales[a] = s
                    outSizes[a] = inputShape[a].map { NeuralOps.safeInt(s * Double($0) + 0.5) } ?? -1
                }
            default: throw ctx.unsupported("keep_aspect_ratio_policy '\(policy)'")
            }
        } else if let scalesInput, !scalesInput.isEmpty {
            guard scalesInput.count == axes.count, scalesInput.allSatisfy({ $0 > 0 && $0.isFinite }) else {
                throw ctx.error("scales \(scalesInput) must be \(axes.count) positive values")
            }
            for (i, a) in axes.enumerated() {
                scales[a] = scalesInput[i]
                outSizes[a] = inputShape[a].map { NeuralOps.safeInt((scalesInput[i] * Double($0)).rounded(.down)) } ?? -1
            }
        } else {
            throw ctx.error("one of 'scales' and 'sizes' must be given")
        }
        if coordinates == "tf_crop_and_resize" && roi == nil { throw ctx.error("tf_crop_and_resize needs roi") }
    }

    /// Taps and weights of one axis: input size `n` to `outSizes[axis]`.
    func plan(axis: Int, input n: Int) -> (taps: Int, index: [Int], weight: [Double], outside: [Bool]) {
        let out = outSizes[axis], scale = scales[axis]
        let outWidth = scale * Double(n)
        var taps = 0
        var index: [Int] = [], weight: [Double] = [], outside = [Bool](repeating: false, count: out)
        for y in 0..<out {
            let yd = Double(y)
            var x: Double
            switch coordinates {
            case "align_corners": x = outWidth == 1 ? 0 : yd * Double(n - 1) / (outWidth - 1)
            case "asymmetric": x = yd / scale
            case "tf_crop_and_resize":
                let (r0, r1) = (roi![axis], roi![axis + outSizes.count])
                x = outWidth == 1 ? (r1 - r0) * Double(n - 1) / 2 : yd * (r1 - r0) * Double(n - 1) / (outWidth - 1)
                x += r0 * Double(n - 1)
                outside[y] = x < 0 || x > Double(n - 1)
            case "pytorch_half_pixel": x = outWidth == 1 ? -0.5 : (yd + 0.5) / scale - 0.5
            case "half_pixel_symmetric":
                let offset = Double(n) / 2 * (1 - Double(out) / outWidth)
                x = offset + (yd + 0.5) / scale - 0.5
            case "tf_half_pixel_for_nn": x = (yd + 0.5) / scale
            default: x = (yd + 0.5) / scale - 0.5
            }
            let xf = x.rounded(.down)
            let ratio = x == xf ? 1 : x - xf
            var coeffs = coefficients(ratio, scale: scale)
            let k = coeffs.count
            taps = k
            var start: Int
            if k % 2 == 0 {
                start = NeuralOps.safeInt(xf) - k / 2 + (x == xf ? 0 : 1)
            } else {
                start = NeuralOps.safeInt(xf) - (k - 1) / 2 + (x - xf <= 0.5 ? 0 : 1)
            }
            if excludeOutside {
                for t in 0..<k where start + t < 0 || start + t >= n { coeffs[t] = 0 }
                let sum = coeffs.reduce(0, +)
                if sum != 0 { coeffs = coeffs.map { $0 / sum } }
            }
            for t in 0..<k {
                index.append(min(max(start + t, 0), n - 1))
                weight.append(coeffs[t])
            }
        }
        return (taps, index, weight, outside)
    }

    /// The reference's interpolation coefficients for fractional offset `ratio` (1 for an exact
    /// hit), nearest neighbour taps left and right, linear and cubic taps centred on the point.
    func coefficients(_ ratio: Double, scale: Double) -> [Double] {
        switch mode {
        case .nearest(let m):
            if ratio == 1 { return [0, 1] }
            switch m {
            case .roundPreferFloor: return ratio <= 0.5 ? [1, 0] : [0, 1]
            case .roundPreferCeil: return ratio < 0.5 ? [1, 0] : [0, 1]
            case .floor: return [1, 0]
            case .ceil: return [0, 1]
            case .simple: return scale < 1 ? [0, 1] : [1, 0]
            }
        case .linear:
            guard antialias else { return [1 - ratio, ratio] }
            let s = min(scale, 1)
            let start = Int((-1 / s).rounded(.down)) + 1
            let footprint = 2 - 2 * start
            let c = (0..<footprint).map { i in min(max(1 - abs((Double(start + i) - ratio) * s), 0), 1) }
            let sum = c.reduce(0, +)
            return c.map { $0 / sum }
        case .cubic(let a):
            guard antialias else {
                let r = ratio, q = 1 - ratio
                return [((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a,
                        ((a + 2) * r - (a + 3)) * r * r + 1,
                        ((a + 2) * q - (a + 3)) * q * q + 1,
                        ((a * (q + 1) - 5 * a) * (q + 1) + 8 * a) * (q + 1) - 4 * a]
            }
            let s = min(scale, 1)
            let iStart = Int((-2 / s).rounded(.down)) + 1
            let iEnd = 2 - iStart
            let c = (iStart..<iEnd).map { i -> Double in
                let x = abs(s * (Double(i) - ratio))
                if x <= 1 { return (a + 2) * x * x * x - (a + 3) * x * x + 1 }
                if x < 2 { return a * x * x * x - 5 * a * x * x + 8 * a * x - 4 * a }
                return 0
            }
            let sum = c.reduce(0, +)
            return c.map { $0 / sum }
        }
    }
}

/// The values of Resize/Upsample's roi, scales and sizes operands (from `value(i)`), by opset.
private func resizeOperands(_ ctx: some NodeContext, _ value: (Int) -> Tensor?)
    -> (roi: [Double]?, scales: [Double]?, sizes: [Int]?, known: Bool) {
    if ctx.op.type == "Upsample" {
        if ctx.opset < 9 {
            let s = (try? ctx.floats("scales")).flatMap { $0 }.map { $0.map(Double.init) }
            return (nil, s, nil, true)
        }
        let s = value(1)
        return (nil, s?.doubles, nil, s != nil)
    }
    if ctx.opset < 11 {
        let s = value(1)
        return (nil, s?.doubles, nil, s != nil)
    }
    let roi = value(1)?.doubles, scales = value(2), sizes = value(3)
    return (roi, scales?.doubles, sizes?.int64s.map { Int($0) }, scales != nil || sizes != nil)
}

private func inferResize(_ ctx: InferenceContext) throws -> [TensorType] {
    let x = try ctx.requiredInput(0)
    guard let dims = x.shape.dims else { return [TensorType(x.dtype, .unranked)] }
    let ops = resizeOperands(ctx) { ctx.constant($0) }
    guard ops.known else { return [TensorType(x.dtype, Shape([Dim](repeating: .unknown, count: dims.count)))] }
    let spec = try ResizeSpec(ctx, inputShape: dims.map(\.value), roiInput: ops.roi, scalesInput: ops.scales,
                              sizesInput: ops.sizes)
    let out: [Dim] = dims.indices.map { a in
        spec.outSizes[a] >= 0 ? .known(spec.outSizes[a]) : (spec.scales[a] == 1 ? dims[a] : .unknown)
    }
    return [TensorType(x.dtype, Shape(out))]
}

/// What Resize or Upsample computes for one input shape: per axis, for every output position the
/// input positions it reads (its taps) and their weights, or that it lies outside the input and
/// takes the extrapolation value. The output is the tensor product of the axes' interpolations,
/// applied one axis after the other (axes that are left as they are have no plan). The interpreter
/// evaluates it; the CPU plan builder turns it into tables that a kernel reads.
public struct ResizeInterpolation: Sendable {
    public struct Axis: Sendable {
        /// Taps per output position; `index` and `weight` hold `taps` entries per position.
        public var taps: Int
        public var index: [Int]
        public var weight: [Double]
        /// Positions outside the input (tf_crop_and_resize): they take the extrapolation value.
        public var outside: [Bool]
    }
    public var outSizes: [Int]
    /// One entry per axis: nil where the axis is left as it is.
    public var axes: [Axis?]
    public var extrapolation: Double
    /// Whether each output element copies one input element (nearest mode).
    public var isNearest: Bool
}

extension NeuralOps {
    /// The interpolation of a Resize or Upsample node whose data has shape `inputShape`; the
    /// context's inputs 1... (roi, scales, sizes) must be given.
    public static func resizeInterpolation(_ ctx: EvalContext, inputShape: [Int]) throws -> ResizeInterpolation {
        let ops = resizeOperands(ctx) { ctx.input($0) }
        let spec = try ResizeSpec(ctx, inputShape: inputShape.map { $0 }, roiInput: ops.roi, scalesInput: ops.scales,
                                  sizesInput: ops.sizes)
        var axes: [ResizeInterpolation.Axis?] = []
        // (An empty result has no plans: they are not bounded by the result size.)
        let empty = try NeuralOps.count(spec.outSizes, ctx) == 0
        for (axis, n) in inputShape.enumerated() {
            let out = spec.outSizes[axis]
            let defaultRoi = spec.roi.map { abs($0[axis]) < 1e-9 && abs($0[axis + inputShape.count] - 1) < 1e-9 } ?? true
            if empty || abs(spec.scales[axis] - 1) < 1e-9 && out == n && defaultRoi { axes.append(nil); continue }
            guard n > 0 || out == 0 else { throw ctx.error("cannot resize an empty axis \(axis) to \(out)") }
            let plan = spec.plan(axis: axis, input: n)
            axes.append(.init(taps: plan.taps, index: plan.index, weight: plan.weight, outside: plan.outside))
        }
        var isNearest = false
        if case .nearest = spec.mode { isNearest = true }
        return ResizeInterpolation(outSizes: spec.outSizes, axes: axes, extrapolation: spec.extrapolation, isNearest: isNearest)
    }
}

private func evalResize(_ ctx: EvalContext) throws -> [Tensor] {
    let x = try ctx.requiredInput(0)
    guard x.dtype != .string && x.dtype != .bool else { throw ctx.unsupported("Resize of \(x.dtype)") }
    let resize = try NeuralOps.resizeInterpolation(ctx, inputShape: x.shape)
    guard resize.outSizes.reduce(1, *) > 0 else { return [Tensor.zeros(x.dtype, shape: resize.outSizes)] }
    var data = x.doubles
    var shape = x.shape
    for axis in 0..<x.rank {
        guard let plan = resize.axes[axis] else { continue }
        let n = shape[axis], out = resize.outSizes[axis]
        let outer = shape[..<axis].reduce(1, *), inner = shape[(axis + 1)...].reduce(1, *)
        var next = [Double](repeating: 0, count: outer * out * inner)
        for o in 0..<outer {
            for y in 0..<out {
                let dst = (o * out + y) * inner
                if plan.outside[y] {
                    for i in 0..<inner { next[dst + i] = resize.extrapolation }
                    continue
                }
                for t in 0..<plan.taps {
                    let w = plan.weight[y * plan.taps + t]
                    if w == 0 { continue }
                    let src = (o * n + plan.index[y * plan.taps + t]) * inner
                    for i in 0..<inner { next[dst + i] += w * data[src + i] }
                }
            }
        }
        data = next
        shape[axis] = out
    }
    if x.dtype.isInteger {
        // Like the reference: round half to even, then saturate.
        let (lo, hi) = integerRange(x.dtype)
        data = data.map { min(max($0.rounded(.toNearestOrEven), lo), hi) }
    }
    return [Tensor(doubles: data, dtype: x.dtype, shape: shape)]
}

private func integerRange(_ dtype: DType) -> (Double, Double) {
    switch dtype {
    case .i8: return (Double(Int8.min), Double(Int8.max))
    case .u8: return (0, Double(UInt8.max))
    case .i16: return (Double(Int16.min), Double(Int16.max))
    case .u16: return (0, Double(UInt16.max))
    case .i32: return (Double(Int32.min), Double(Int32.max))
    case .u32: return (0, Double(UInt32.max))
    case .u64: return (0, Double(UInt64.max))
    default: return (Double(Int64.min), Double(Int64.max))
    }
}
