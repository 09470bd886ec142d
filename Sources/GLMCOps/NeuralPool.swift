import GLMCIR
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Pooling: MaxPool, AveragePool, LpPool, their global forms, MaxRoiPool and MaxUnpool.
/// Windowed pools share one kernel (`pool`) that walks each window's in-bounds positions.
extension NeuralOps {
    static let poolOps: [OpDefinition] = [
        OpDefinition("MaxPool", since: [1, 8, 10, 11, 12, 22], infer: inferPool, evaluate: { ctx in
            try evalPool(ctx, .max(columnMajorIndices: try ctx.int("storage_order", default: 0) == 1))
        }),
        OpDefinition("AveragePool", since: [1, 7, 10, 11, 19, 22], infer: inferPool, evaluate: { ctx in
            try evalPool(ctx, .average(countPadding: try ctx.int("count_include_pad", default: 0) != 0))
        }),
        OpDefinition("LpPool", since: [1, 2, 11, 18, 22], infer: inferPool, evaluate: { ctx in
            try evalPool(ctx, .lp(p: Double(try ctx.float("p", default: 2))))
        }),
        OpDefinition("GlobalMaxPool", since: [1, 22], infer: inferGlobalPool, evaluate: { ctx in
            try evalGlobalPool(ctx, .max(columnMajorIndices: false))
        }),
        OpDefinition("GlobalAveragePool", since: [1, 22], infer: inferGlobalPool, evaluate: { ctx in
            try evalGlobalPool(ctx, .average(countPadding: false))
        }),
        OpDefinition("GlobalLpPool", since: [1, 2, 22], infer: inferGlobalPool, evaluate: { ctx in
            try evalGlobalPool(ctx, .lp(p: Double(try ctx.float("p", default: 2))))
        }),
        OpDefinition("MaxRoiPool", since: [1, 22], infer: inferMaxRoiPool, evaluate: evalMaxRoiPool),
        OpDefinition("MaxUnpool", since: [9, 11, 22], infer: inferMaxUnpool, evaluate: evalMaxUnpool),
    ]
}

/// What a pooling window computes.
private enum PoolKind {
    /// Maximum; the optional indices output is row-major unless `columnMajorIndices`
    /// (MaxPool's storage_order = 1).
    case max(columnMajorIndices: Bool)
    /// Mean; `countPadding` divides by the window size within the explicit padding
    /// (count_include_pad) rather than by the number of input elements in it.
    case average(countPadding: Bool)
    /// (Σ |x|^p)^(1/p) over the input elements in the window.
    case lp(p: Double)
}

/// Element types pooling accepts: floats, and 8-bit integers for MaxPool (opset 12).
private func checkPoolInput(_ x: Tensor, _ kind: PoolKind, _ ctx: some NodeContext) throws {
    if case .max = kind, x.dtype == .i8 || x.dtype == .u8 { return }
    try NeuralOps.requireFloat(x, "input", ctx)
}

private func inferPool(_ ctx: InferenceContext) throws -> [TensorType] {
    let x = try ctx.requiredInput(0)
    guard let dims = x.shape.dims else {
        return [TensorType(x.dtype, .unranked), TensorType(.i64, .unranked)].prefix(ctx.outputCount).map { $0 }
    }
    guard dims.count >= 3 else { throw ctx.error("input must have rank >= 3, got \(x)") }
    let attrs = try WindowAttributes(ctx, rank: dims.count - 2, kernel: nil)
    let shape = Shape(Array(dims.prefix(2)) + (try attrs.outputDims(Array(dims.dropFirst(2)), ctx)))
    return [TensorType(x.dtype, shape), TensorType(.i64, shape)].prefix(ctx.outputCount).map { $0 }
}

private func evalPool(_ ctx: EvalContext, _ kind: PoolKind) throws -> [Tensor] {
    let x = try ctx.requiredInput(0)
    try checkPoolInput(x, kind, ctx)
    guard x.rank >= 3 else { throw ctx.error("input must have rank >= 3, got shape \(x.shape)") }
    let rank = x.rank - 2
    // Dilations exist from MaxPool-10, AveragePool-19 and LpPool-18.
    let dilated = ctx.op.type == "MaxPool" ? ctx.opset >= 10 : ctx.op.type == "AveragePool" ? ctx.opset >= 19 : ctx.opset >= 18
    let attrs = try WindowAttributes(ctx, rank: rank, kernel: nil, allowDilations: dilated)
    var windows: [PoolWindow] = []
    for d in 0..<rank {
        let r = try attrs.resolve(d, input: x.shape[d + 2], ctx)
        windows.append(PoolWindow(input: x.shape[d + 2], output: r.output, kernel: attrs.kernel[d],
                                  stride: attrs.strides[d], dilation: attrs.dilations[d],
                                  padBegin: r.padBegin, padEnd: r.padEnd))
    }
    let shape = Array(x.shape.prefix(2)) + windows.map(\.output)
    guard try NeuralOps.count(shape, ctx) > 0 else {
        return [Tensor.zeros(x.dtype, shape: shape), Tensor.zeros(.i64, shape: shape)].prefix(max(ctx.outputCount, 1)).map { $0 }
    }
    let (values, indices) = pool(x.doubles, planes: x.shape[0] * x.shape[1], windows, kind,
                                 wantIndices: ctx.outputCount > 1)
    var results = [Tensor(doubles: values, dtype: x.dtype, shape: shape)]
    if let indices { results.append(Tensor(indices, shape: shape)) }
    return results
}

/// One spatial dim of a pooling window: the in-bounds kernel taps of each output position.
private struct PoolWindow {
    var input: Int, output: Int, kernel: Int, stride: Int, dilation: Int, padBegin: Int, padEnd: Int

    /// The first in-bounds input position, the number of in-bounds taps, and the number of taps
    /// inside the explicitly padded input, for output position `o`.
    func taps(_ o: Int) -> (first: Int, count: Int, padded: Int) {
        let start = o * stride - padBegin
        // The taps j in 0..<kernel whose position start + j·dilation lies in lo..<hi.
        func taps(in lo: Int, _ hi: Int) -> (Int, Int) {
            let first = max(0, -NeuralOps.floorDiv(start - lo, dilation))
            let end = min(kernel, NeuralOps.floorDiv(hi - 1 - start, dilation) + 1)
            return (first, max(end, first))
        }
        let (lo, hi) = taps(in: 0, input)
        let (plo, phi) = taps(in: -padBegin, input + padEnd)
        return (start + lo * dilation, hi - lo, phi - plo)
    }

    /// A size-1 dim, used to lift 1-D and 2-D pools to 3-D.
    static let unit = PoolWindow(input: 1, output: 1, kernel: 1, stride: 1, dilation: 1, padBegin: 0, padEnd: 0)
}

/// Pools every one of `planes` planes of `x` (N·C planes of the input's spatial size). Spatial
/// ranks up to 3 are lifted to 3 by leading unit dims; higher ranks are walked by an odometer over
/// the leading dims.
private func pool(_ x: [Double], planes: Int, _ windows: [PoolWindow], _ kind: PoolKind,
                  wantIndices: Bool) -> ([Double], [Int64]?) {
    let w = windows.count >= 3 ? windows : [PoolWindow](repeating: .unit, count: 3 - windows.count) + windows
    let inSizes = w.map(\.input), outSizes = w.map(\.output)
    let inStrides = ShapeHelpers.strides(inSizes)
    // Column-major strides over the spatial dims for storage_order = 1.
    var colStrides = [Int](repeating: 1, count: w.count)
    for d in 1..<w.count { colStrides[d] = colStrides[d - 1] * inSizes[d - 1] }
    let inPlane = inSizes.reduce(1, *), outPlane = outSizes.reduce(1, *)
    let taps = w.map { win in (0..<win.output).map(win.taps) }
    var values = [Double](repeating: 0, count: planes * outPlane)
    var indices: [Int64]? = wantIndices ? [Int64](repeating: 0, count: planes * outPlane) : nil
    let lead = w.count - 2  // dims walked by the odometer; the last two are nested loops
    let leadOut = Array(outSizes.prefix(lead))
    let leadCount = leadOut.reduce(1, *)
    for plane in 0..<planes {
        let xBase = plane * inPlane
        for leadIndex in 0..<leadCount {
            let lo = NeuralOps.unravel(leadIndex, leadOut)
            // Input offsets (row-major and column-major) of every in-bounds tap of the leading dims.
            var leadTaps: [(Int, Int)] = [(0, 0)]
            var leadPadded = 1
            for d in 0..<lead {
                let t = taps[d][lo[d]]
                leadPadded *= t.padded
                var next: [(Int, Int)] = []
                for (row, col) in leadTaps {
                    for j in 0..<t.count {
                        let p = t.first + j * w[d].dilation
                        next.append((row + p * inStrides[d], col + p * colStrides[d]))
                    }
                }
                leadTaps = next
            }
            let (dh, dw) = (lead, lead + 1)
            for oh in 0..<outSizes[dh] {
                let th = taps[dh][oh]
                for ow in 0..<outSizes[dw] {
                    let tw = taps[dw][ow]
                    let out = (plane * leadCount + leadIndex) * outSizes[dh] * outSizes[dw] + oh * outSizes[dw] + ow
                    var best = -Double.infinity, bestRow = -1, bestCol = -1
                    var sum = 0.0
                    for (leadRow, leadCol) in leadTaps {
                        for i in 0..<th.count {
                            let h = th.first + i * w[dh].dilation
                            let rowBase = leadRow + h * inStrides[dh]
                            for j in 0..<tw.count {
                                let ww = tw.first + j * w[dw].dilation
                                let v = x[xBase + rowBase + ww]
                                switch kind {
                                case .max:
                                    if v > best || bestRow < 0 {
                                        best = v; bestRow = rowBase + ww
                                        bestCol = leadCol + h * colStrides[dh] + ww * colStrides[dw]
                                    }
                                case .average: sum += v
                                case .lp(let p): sum += pow(abs(v), p)
                                }
                            }
                        }
                    }
                    let inBounds = leadTaps.count * th.count * tw.count
                    switch kind {
                    case .max(let columnMajor):
                        values[out] = best
                        indices?[out] = Int64(plane * inPlane + (columnMajor ? bestCol : bestRow))
                    case .average(let countPadding):
                        let n = countPadding ? leadPadded * th.padded * tw.padded : inBounds
                        values[out] = sum / Double(n)
                    case .lp(let p):
                        values[out] = pow(sum, 1 / p)
                    }
                }
            }
        }
    }
    return (values, indices)
}

// MARK: - Global pools

private func inferGlobalPool(_ ctx: InferenceContext) throws -> [TensorType] {
    let x = try ctx.requiredInput(0)
    guard let dims = x.shape.dims else { return [TensorType(x.dtype, .unranked)] }
    guard dims.count >= 2 else { throw ctx.error("input must have rank >= 2, got \(x)") }
    return [TensorType(x.dtype, Shape(Array(dims.prefix(2)) + [Dim](repeating: .known(1), count: dims.count - 2)))]
}

private func evalGlobalPool(_ ctx: EvalContext, _ kind: PoolKind) throws -> [Tensor] {
    let x = try ctx.requiredInput(0)
    try checkPoolInput(x, kind, ctx)
    guard x.rank >= 2 else { throw ctx.error("input must have rank >= 2, got shape \(x.shape)") }
    let planes = x.shape[0] * x.shape[1]
    let size = x.shape.dropFirst(2).reduce(1, *)
    let v = x.doubles
    var out = [Double](repeating: 0, count: planes)
    for p in 0..<planes {
        let plane = v[(p * size)..<((p + 1) * size)]
        switch kind {
        case .max: out[p] = plane.max() ?? -.infinity
        case .average: out[p] = plane.reduce(0, +) / Double(size)
        case .lp(let e): out[p] = pow(plane.reduce(0) { $0 + pow(abs($1), e) }, 1 / e)
        }
    }
    return [Tensor(doubles: out, dtype: x.dtype, shape: Array(x.shape.prefix(2)) + [Int](repeating: 1, count: x.rank - 2))]
}

// MARK: - MaxRoiPool

private func inferMaxRoiPool(_ ctx: InferenceContext) throws -> [TensorType] {
    let x = try ctx.requiredInput(0), rois = try ctx.requiredInput(1)
    guard let pooled = try ctx.ints("pooled_shape"), pooled.count == 2 else {
        throw ctx.error("attribute 'pooled_shape' must hold 2 sizes")
    }
    let channels = x.shape.dims.map { $0.count > 1 ? $0[1] : .unknown } ?? .unknown
    let count = rois.shape.dims?.first ?? .unknown
    return [TensorType(x.dtype, Shape([count, channels, .known(pooled[0]), .known(pooled[1])]))]
}

/// Caffe's ROI max pooling: each ROI (batch, x1, y1, x2, y2), scaled and rounded to pixels, is
/// split into pooled_shape bins whose maxima form the output (0 for empty bins).
private func evalMaxRoiPool(_ ctx: EvalContext) throws -> [Tensor] {
    let x = try ctx.requiredInput(0), rois = try ctx.requiredInput(1)
    try NeuralOps.requireFloat(x, "input", ctx)
    try NeuralOps.requireRank(x, 4, "input", ctx)
    guard rois.rank == 2, rois.shape[1] == 5 else { throw ctx.error("rois must have shape [num_rois, 5], got \(rois.shape)") }
    guard let pooled = try ctx.ints("pooled_shape"), pooled.count == 2, pooled.allSatisfy({ $0 > 0 }) else {
        throw ctx.error("attribute 'pooled_shape' must hold 2 positive sizes")
    }
    let scale = Double(try ctx.float("spatial_scale", default: 1))
    let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (ph, pw) = (pooled[0], pooled[1])
    let xs = x.doubles, r = rois.doubles
    let count = rois.shape[0]
    var out = [Double](repeating: 0, count: count * c * ph * pw)
    for roi in 0..<count {
        let b = NeuralOps.safeInt(r[roi * 5])
        guard b >= 0 && b < n else { throw ctx.error("ROI \(roi) refers to batch \(b) of \(n)") }
        let corner = { (i: Int) in NeuralOps.safeInt((r[roi * 5 + i] * scale).rounded()) }
        let (x1, y1, x2, y2) = (corner(1), corner(2), corner(3), corner(4))
        let binH = Double(max(y2 - y1 + 1, 1)) / Double(ph), binW = Double(max(x2 - x1 + 1, 1)) / Double(pw)
        for ch in 0..<c {
            let base = (b * c + ch) * h * w
            for i in 0..<ph {
                let hs = min(max(NeuralOps.safeInt((Double(i) * binH).rounded(.down)) + y1, 0), h)
                let he = min(max(NeuralOps.safeInt((Double(i + 1) * binH).rounded(.up)) + y1, 0), h)
                for j in 0..<pw {
                    let ws = min(max(NeuralOps.safeInt((Double(j) * binW).rounded(.down)) + x1, 0), w)
                    let we = min(max(NeuralOps.safeInt((Double(j + 1) * binW).rounded(.up)) + x1, 0), w)
                    var best = -Double.infinity
                    for yy in hs..<max(he, hs) { for xx in ws..<max(we, ws) { best = max(best, xs[base + yy * w + xx]) } }
                    out[((roi * c + ch) * ph + i) * pw + j] = best == -.infinity ? 0 : best
                }
            }
        }
    }
    return [Tensor(doubles: out, dtype: x.dtype, shape: [count, c, ph, pw])]
}

// MARK: - MaxUnpool

/// The unpooled size implied by the attributes: (in - 1) * stride - pads + kernel per spatial dim.
private func unpooledShape(_ ctx: some NodeContext, input: [Int]) throws -> [Int] {
    guard input.count >= 3 else { throw ctx.error("input must have rank >= 3, got shape \(input)") }
    let rank = input.count - 2
    let attrs = try WindowAttributes(ctx, rank: rank, kernel: nil, allowDilations: false)
    var out = Array(input.prefix(2))
    for d in 0..<rank {
        let size = (input[d + 2] - 1) * attrs.strides[d] - attrs.pads[d] - attrs.pads[rank + d] + attrs.kernel[d]
        guard size >= 0 else { throw ctx.error("negative unpooled size along spatial dim \(d)") }
        out.append(size)
    }
    return out
}

private func inferMaxUnpool(_ ctx: InferenceContext) throws -> [TensorType] {
    let x = try ctx.requiredInput(0)
    if ctx.inputType(2) != nil {
        if let shape = ctx.constant(2)?.int64s { return [TensorType(x.dtype, static: shape.map { Int($0) })] }
        return [TensorType(x.dtype, Shape(x.shape.rank.map { [Dim](repeating: .unknown, count: $0) }))]
    }
    guard let sizes = x.shape.dims else { return [TensorType(x.dtype, .unranked)] }
    guard let s = x.shape.staticSizes else {
        return [TensorType(x.dtype, Shape(Array(sizes.prefix(2)) + [Dim](repeating: .unknown, count: max(sizes.count - 2, 0))))]
    }
    return [TensorType(x.dtype, static: try unpooledShape(ctx, input: s))]
}

/// Scatters X into a zero tensor of the unpooled shape at the flat positions in I, then places
/// that at the origin of `output_shape` when given (as the ONNX reference does).
private func evalMaxUnpool(_ ctx: EvalContext) throws -> [Tensor] {
    let x = try ctx.requiredInput(0), idx = try ctx.requiredInput(1)
    guard idx.shape == x.shape else { throw ctx.error("indices shape \(idx.shape) differs from input shape \(x.shape)") }
    let inferred = try unpooledShape(ctx, input: x.shape)
    let total = try NeuralOps.count(inferred, ctx)
    var y = [Double](repeating: 0, count: total)
    let xs = x.doubles
    for (i, target) in idx.int64s.enumerated() {
        guard target >= 0 && target < total else { throw ctx.error("index \(target) is out of range for \(inferred)") }
        y[Int(target)] = xs[i]
    }
    guard let shapeTensor = ctx.input(2) else { return [Tensor(doubles: y, dtype: x.dtype, shape: inferred)] }
    let shape = shapeTensor.int64s.map { Int($0) }
    guard shape.count == inferred.count, shape.allSatisfy({ $0 >= 0 }) else {
        throw ctx.error("output_shape \(shape) does not match rank \(inferred.count)")
    }
    let count = try NeuralOps.count(shape, ctx)
    var out = [Double](repeating: 0, count: count)
    let outStrides = ShapeHelpers.strides(shape)
    for i in 0..<total {
        let index = NeuralOps.unravel(i, inferred)
        guard zip(index, shape).allSatisfy({ $0 < $1 }) else { continue }
        out[zip(index, outStrides).reduce(0) { $0 + $1.0 * $1.1 }] = y[i]
    }
    return [Tensor(doubles: out, dtype: x.dtype, shape: shape)]
}
