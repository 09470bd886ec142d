import GLMCIR

/// Sampling and detection ops: GridSample, AffineGrid, RoiAlign, NonMaxSuppression.
extension NeuralOps {
    static let samplingOps: [OpDefinition] = [
        OpDefinition("GridSample", since: [16, 20, 22], infer: inferGridSample, evaluate: evalGridSample),
        OpDefinition("AffineGrid", since: [20], infer: inferAffineGrid, evaluate: evalAffineGrid),
        OpDefinition("RoiAlign", since: [10, 16, 22], infer: inferRoiAlign, evaluate: evalRoiAlign),
        OpDefinition("NonMaxSuppression", since: [10, 11], infer: { _ in
            [TensorType(.i64, Shape([.unknown, .known(3)]))]
        }, evaluate: evalNonMaxSuppression),
    ]
}

// MARK: - GridSample

private func inferGridSample(_ ctx: InferenceContext) throws -> [TensorType] {
    let x = try ctx.requiredInput(0), grid = try ctx.requiredInput(1)
    guard let gd = grid.shape.dims, gd.count >= 3 else {
        return [TensorType(x.dtype, Shape(x.shape.rank.map { [Dim](repeating: .unknown, count: $0) }))]
    }
    let channels = x.shape.dims.map { $0.count > 1 ? $0[1] : .unknown } ?? .unknown
    return [TensorType(x.dtype, Shape([gd[0], channels] + gd.dropFirst().dropLast()))]
}

/// Reflects `x` into [lo, hi] by folding at the borders (the reference's rule).
private func reflect(_ x: Double, _ lo: Double, _ hi: Double) -> Double {
    let range = hi - lo
    guard range > 0 else { return lo }
    if x < lo {
        let dx = lo - x, n = (dx / range).rounded(.towardZero), r = dx - n * range
        return n.truncatingRemainder(dividingBy: 2) == 0 ? lo + r : hi - r
    }
    if x > hi {
        let dx = x - hi, n = (dx / range).rounded(.towardZero), r = dx - n * range
        return n.truncatingRemainder(dividingBy: 2) == 0 ? hi - r : lo + r
    }
    return x
}

/// Keys' cubic convolution weights (A = -0.75) for the 4 taps around fractional offset `t`.
private func cubicWeights(_ t: Double) -> [Double] {
    let a = -0.75
    return [((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a,
            ((a + 2) * t - (a + 3)) * t * t + 1,
            ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1,
            ((a * (2 - t) - 5 * a) * (2 - t) + 8 * a) * (2 - t) - 4 * a]
}

private func evalGridSample(_ ctx: EvalContext) throws -> [Tensor] {
    let x = try ctx.requiredInput(0), grid = try ctx.requiredInput(1)
    try NeuralOps.requireFloat(grid, "grid", ctx)
    guard x.dtype != .string && x.dtype != .bool else { throw ctx.unsupported("GridSample of \(x.dtype)") }
    let k = x.rank - 2
    guard k >= 1, grid.rank == k + 2, grid.shape[0] == x.shape[0], grid.shape[k + 1] == k else {
        throw ctx.error("grid shape \(grid.shape) does not fit input shape \(x.shape)")
    }
    let modeName = try ctx.string("mode", default: ctx.opset >= 20 ? "linear" : "bilinear")
    enum Mode { case nearest, linear, cubic }
    let mode: Mode
    switch modeName {
    case "nearest": mode = .nearest
    case "linear", "bilinear": mode = .linear
    case "cubic", "bicubic": mode = .cubic
    default: throw ctx.unsupported("mode '\(modeName)'")
    }
    let padding = try ctx.string("padding_mode", default: "zeros")
    guard ["zeros", "border", "reflection"].contains(padding) else { throw ctx.unsupported("padding_mode '\(padding)'") }
    let alignCorners = try ctx.int("align_corners", default: 0) != 0
    let (n, c) = (x.shape[0], x.shape[1])
    let dims = Array(x.shape.dropFirst(2))
    let outSpatial = Array(grid.shape.dropFirst().dropLast())
    let outPlane = outSpatial.reduce(1, *), inPlane = dims.reduce(1, *)
    let shape = [n, c] + outSpatial
    _ = try NeuralOps.count(shape, ctx)
    let inStrides = ShapeHelpers.strides(dims)
    let xs = x.doubles, g = grid.doubles
    let gridIsF32 = grid.dtype != .f64
    let lo = dims.map { _ in alignCorners ? 0.0 : -0.5 }
    let hi = dims.map { alignCorners ? Double($0 - 1) : Double($0) - 0.5 }
    var y = [Double](repeating: 0, count: n * c * outPlane)
    // Input index along dim d for integer position i, or nil for a zero (outside, zeros padding).
    func tap(_ i: Int, _ d: Int) -> Int? {
        if i >= 0 && i < dims[d] { return i }
        switch padding {
        case "border": return min(max(i, 0), dims[d] - 1)
        case "reflection": return min(max(Int(reflect(Double(i), lo[d], hi[d])), 0), dims[d] - 1)
        default: return nil
        }
    }
    var offsets: [Int] = [], weights: [Double] = []
    for b in 0..<n {
        for p in 0..<outPlane {
            let gBase = (b * outPlane + p) * k
            // Per-dim taps: (input index or nil, weight).
            var perDim: [[(Int?, Double)]] = []
            for d in 0..<k {
                let gv = g[gBase + k - 1 - d]
                let len = dims[d]
                // Denormalised in the grid's precision, as the reference does.
                var v: Double
                if gridIsF32 {
                    let f = Float(gv)
                    v = Double(alignCorners ? (f + 1) / 2 * Float(len - 1) : ((f + 1) * Float(len) - 1) / 2)
                } else {
                    v = Double(Float(alignCorners ? (gv + 1) / 2 * Double(len - 1) : ((gv + 1) * Double(len) - 1) / 2))
                }
                if mode == .nearest { v = v.rounded(.toNearestOrEven) }
                if v < lo[d] || v > hi[d] {
                    if padding == "border" { v = min(max(v, 0), Double(len - 1)) }
                    else if padding == "reflection" { v = reflect(v, lo[d], hi[d]) }
                }
                guard v.isFinite else { perDim.append([(nil, 1)]); continue }
                let f = v.rounded(.down), i0 = NeuralOps.safeInt(f), t = v - f
                switch mode {
                case .nearest: perDim.append([(tap(NeuralOps.safeInt(v.rounded(.towardZero)), d), 1)])
                case .linear: perDim.append([(tap(i0, d), 1 - t), (tap(i0 + 1, d), t)])
                case .cubic:
                    let w = cubicWeights(t)
                    perDim.append((0..<4).map { (tap(i0 - 1 + $0, d), w[$0]) })
                }
            }
            // Tensor-product taps as flat offsets; zero-padding taps are dropped.
            offsets = [0]; weights = [1]
            for d in 0..<k {
                var no: [Int] = [], nw: [Double] = []
                for (o, w) in zip(offsets, weights) {
                    for (i, wd) in perDim[d] {
                        guard let i else { continue }
                        no.append(o + i * inStrides[d]); nw.append(w * wd)
                    }
                }
                offsets = no; weights = nw
            }
            for ch in 0..<c {
                let base = (b * c + ch) * inPlane
                var acc = 0.0
                for (o, w) in zip(offsets, weights) { acc += w * xs[base + o] }
                y[(b * c + ch) * outPlane + p] = acc
            }
        }
    }
    return [Tensor(doubles: y, dtype: x.dtype, shape: shape)]
}

// MARK: - AffineGrid

private func inferAffineGrid(_ ctx: InferenceContext) throws -> [TensorType] {
    let theta = try ctx.requiredInput(0)
    if let size = ctx.constant(1)?.int64s, size.count == 4 || size.count == 5 {
        let spatial = size.dropFirst(2).map { Int($0) }
        return [TensorType(theta.dtype, static: [Int(size[0])] + spatial + [spatial.count])]
    }
    if let n = ctx.inputType(1)?.shape.staticSizes?.first, n == 4 || n == 5 {
        let batch = theta.shape.dims?.first ?? .unknown
        return [TensorType(theta.dtype, Shape([batch] + [Dim](repeating: .unknown, count: n - 2) + [.known(n - 2)]))]
    }
    return [TensorType(theta.dtype, .unranked)]
}

/// Grid of normalised sampling coordinates: theta (N×k×(k+1)) applied to the base grid of
/// `size`'s spatial dims, coordinates ordered x (innermost dim) first.
private func evalAffineGrid(_ ctx: EvalContext) throws -> [Tensor] {
    let theta = try ctx.requiredInput(0), sizeT = try ctx.requiredInput(1)
    try NeuralOps.requireFloat(theta, "theta", ctx)
    let size = sizeT.int64s.map { Int($0) }
    guard size.count == 4 || size.count == 5, size.allSatisfy({ $0 >= 0 }) else {
        throw ctx.error("size must be [N, C, H, W] or [N, C, D, H, W], got \(size)")
    }
    let spatial = Array(size.dropFirst(2)), k = spatial.count
    guard theta.shape == [size[0], k, k + 1] else {
        throw ctx.error("theta shape \(theta.shape) does not match size \(size)")
    }
    let alignCorners = try ctx.int("align_corners", default: 0) != 0
    let shape = [size[0]] + spatial + [k]
    let plane = try NeuralOps.count(spatial, ctx)
    guard try NeuralOps.count(shape, ctx) > 0 else { return [Tensor.zeros(theta.dtype, shape: shape)] }
    // Base coordinate along each spatial dim.
    let base = spatial.map { s -> [Double] in
        let size = Double(s)
        return (0..<s).map { i -> Double in
            let di = Double(i)
            if !alignCorners { return -1 + (2 * di + 1) / size }
            return s == 1 ? -1 : -1 + 2 * di / (size - 1)
        }
    }
    let t = theta.doubles
    var out = [Double](repeating: 0, count: size[0] * plane * k)
    for b in 0..<size[0] {
        for p in 0..<plane {
            let idx = NeuralOps.unravel(p, spatial)
            // Homogeneous point (x, y[, z], 1): x runs along the last spatial dim.
            let point = (0..<k).map { base[k - 1 - $0][idx[k - 1 - $0]] } + [1]
            for r in 0..<k {
                var acc = 0.0
                for j in 0...k { acc += t[(b * k + r) * (k + 1) + j] * point[j] }
                out[(b * plane + p) * k + r] = acc
            }
        }
    }
    return [Tensor(doubles: out, dtype: theta.dtype, shape: shape)]
}

// MARK: - RoiAlign

private func inferRoiAlign(_ ctx: InferenceContext) throws -> [TensorType] {
    let x = try ctx.requiredInput(0), rois = try ctx.requiredInput(1)
    let h = try ctx.int("output_height", default: 1), w = try ctx.int("output_width", default: 1)
    let channels = x.shape.dims.map { $0.count > 1 ? $0[1] : .unknown } ?? .unknown
    let count = rois.shape.dims?.first ?? ctx.inputType(2)?.shape.dims?.first ?? .unknown
    return [TensorType(x.dtype, Shape([count, channels, .known(h), .known(w)]))]
}

/// RoiAlign as ONNX Runtime computes it: each bin averages (or takes the max of) bilinear samples
/// on a regular sub-grid; samples more than one pixel outside the image count as zero.
private func evalRoiAlign(_ ctx: EvalContext) throws -> [Tensor] {
    let x = try ctx.requiredInput(0), rois = try ctx.requiredInput(1), batchIndices = try ctx.requiredInput(2)
    try NeuralOps.requireFloat(x, "input", ctx)
    try NeuralOps.requireRank(x, 4, "input", ctx)
    let count = batchIndices.count
    guard rois.rank == 2, rois.shape == [count, 4] else {
        throw ctx.error("rois shape \(rois.shape) must be [\(count), 4]")
    }
    let ph = try ctx.int("output_height", default: 1), pw = try ctx.int("output_width", default: 1)
    guard ph > 0, pw > 0 else { throw ctx.error("output_height and output_width must be positive") }
    let samplingRatio = try ctx.int("sampling_ratio", default: 0)
    let scale = Double(try ctx.float("spatial_scale", default: 1))
    let isMax = try ctx.string("mode", default: "avg") == "max"
    let halfPixel = ctx.opset >= 16
        ? try ctx.string("coordinate_transformation_mode", default: "half_pixel") == "half_pixel" : false
    let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let xs = x.doubles, r = rois.doubles, bi = batchIndices.int64s
    var out = [Double](repeating: 0, count: count * c * ph * pw)
    for roi in 0..<count {
        let b = Int(bi[roi])
        guard b >= 0 && b < n else { throw ctx.error("batch index \(b) out of range for \(n)") }
        let offset = halfPixel ? 0.5 : 0
        let startW = r[roi * 4] * scale - offset, startH = r[roi * 4 + 1] * scale - offset
        var roiW = r[roi * 4 + 2] * scale - offset - startW, roiH = r[roi * 4 + 3] * scale - offset - startH
        if !halfPixel { roiW = max(roiW, 1); roiH = max(roiH, 1) }
        let binH = roiH / Double(ph), binW = roiW / Double(pw)
        let gridH = samplingRatio > 0 ? samplingRatio : max(NeuralOps.safeInt((roiH / Double(ph)).rounded(.up)), 0)
        let gridW = samplingRatio > 0 ? samplingRatio : max(NeuralOps.safeInt((roiW / Double(pw)).rounded(.up)), 0)
        guard gridH <= 1 << 12, gridW <= 1 << 12 else { throw ctx.error("ROI \(roi) is too large to sample") }
        let samples = max(gridH * gridW, 1)
        // Bilinear taps (4 positions and weights) of every sample of every bin.
        var taps: [(Int, Int, Int, Int, Double, Double, Double, Double)] = []
        for i in 0..<ph {
            for j in 0..<pw {
                for iy in 0..<max(gridH, 0) {
                    let yy = startH + Double(i) * binH + (Double(iy) + 0.5) * binH / Double(gridH)
                    for ix in 0..<max(gridW, 0) {
                        let xx = startW + Double(j) * binW + (Double(ix) + 0.5) * binW / Double(gridW)
                        if !(yy >= -1 && yy <= Double(h) && xx >= -1 && xx <= Double(w)) {
                            taps.append((0, 0, 0, 0, 0, 0, 0, 0)); continue
                        }
                        var y = max(yy, 0), xv = max(xx, 0)
                        var yl = Int(y), xl = Int(xv), yh: Int, xh: Int
                        if yl >= h - 1 { yl = h - 1; yh = yl; y = Double(yl) } else { yh = yl + 1 }
                        if xl >= w - 1 { xl = w - 1; xh = xl; xv = Double(xl) } else { xh = xl + 1 }
                        let ly = y - Double(yl), lx = xv - Double(xl), hy = 1 - ly, hx = 1 - lx
                        taps.append((yl * w + xl, yl * w + xh, yh * w + xl, yh * w + xh,
                                     hy * hx, hy * lx, ly * hx, ly * lx))
                    }
                }
            }
        }
        for ch in 0..<c {
            let base = (b * c + ch) * h * w
            var t = 0
            for bin in 0..<(ph * pw) {
                var acc = 0.0, first = true
                for _ in 0..<(max(gridH, 0) * max(gridW, 0)) {
                    let s = taps[t]; t += 1
                    let v1 = s.4 * xs[base + s.0], v2 = s.5 * xs[base + s.1]
                    let v3 = s.6 * xs[base + s.2], v4 = s.7 * xs[base + s.3]
                    if isMax {
                        let m = max(v1, v2, v3, v4)
                        acc = first ? m : max(acc, m)
                        first = false
                    } else {
                        acc += v1 + v2 + v3 + v4
                    }
                }
                out[(roi * c + ch) * ph * pw + bin] = isMax ? acc : acc / Double(samples)
            }
        }
    }
    return [Tensor(doubles: out, dtype: x.dtype, shape: [count, c, ph, pw])]
}

// MARK: - NonMaxSuppression

/// Greedy per-(batch, class) suppression in descending score order (ties: lower box index
/// first); outputs [batch, class, box] triples.
private func evalNonMaxSuppression(_ ctx: EvalContext) throws -> [Tensor] {
    let boxes = try ctx.requiredInput(0), scores = try ctx.requiredInput(1)
    guard boxes.rank == 3, boxes.shape[2] == 4, scores.rank == 3, scores.shape[0] == boxes.shape[0],
          scores.shape[2] == boxes.shape[1] else {
        throw ctx.error("boxes \(boxes.shape) and scores \(scores.shape) must be [B, N, 4] and [B, C, N]")
    }
    let maxPerClass = Int(ctx.input(2)?.int64s.first ?? 0)
    let iouThreshold = NeuralOps.scalar(ctx.input(3), default: 0)
    let scoreThreshold: Double? = ctx.input(4).flatMap { $0.count > 0 ? $0.doubles[0] : nil }
    let centerPoint = try ctx.int("center_point_box", default: 0) != 0
    let (batches, classes, count) = (scores.shape[0], scores.shape[1], scores.shape[2])
    let bx = boxes.doubles, sc = scores.doubles
    // Corners (x1, y1, x2, y2) normalised so that min <= max.
    func corners(_ b: Int, _ i: Int) -> (Double, Double, Double, Double) {
        let o = (b * count + i) * 4
        if centerPoint {
            let (cx, cy, w, h) = (bx[o], bx[o + 1], bx[o + 2], bx[o + 3])
            return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        }
        let (y1, x1, y2, x2) = (bx[o], bx[o + 1], bx[o + 2], bx[o + 3])
        return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
    }
    func suppresses(_ a: (Double, Double, Double, Double), _ b: (Double, Double, Double, Double)) -> Bool {
        let ix = min(a.2, b.2) - max(a.0, b.0), iy = min(a.3, b.3) - max(a.1, b.1)
        guard ix > 0, iy > 0 else { return false }
        let inter = ix * iy
        let areaA = (a.2 - a.0) * (a.3 - a.1), areaB = (b.2 - b.0) * (b.3 - b.1)
        let union = areaA + areaB - inter
        guard areaA > 0, areaB > 0, union > 0 else { return false }
        return inter / union > iouThreshold
    }
    var selected: [Int64] = []
    if maxPerClass > 0 {
        for b in 0..<batches {
            let boxCorners = (0..<count).map { corners(b, $0) }
            for cl in 0..<classes {
                let base = (b * classes + cl) * count
                var candidates = (0..<count).filter { scoreThreshold == nil || sc[base + $0] > scoreThreshold! }
                candidates.sort { sc[base + $0] > sc[base + $1] || (sc[base + $0] == sc[base + $1] && $0 < $1) }
                var kept: [Int] = []
                for i in candidates where kept.count < maxPerClass {
                    if kept.allSatisfy({ !suppresses(boxCorners[i], boxCorners[$0]) }) {
                        kept.append(i)
                        selected += [Int64(b), Int64(cl), Int64(i)]
                    }
                }
            }
        }
    }
    return [Tensor(selected, shape: [selected.count / 3, 3])]
}
