import GLMCIR
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Convolutions: Conv, ConvTranspose, ConvInteger, QLinearConv, DeformConv. All lower to the packed
/// GEMM in NeuralGemm.swift: Conv-like ops gather windows into the packed B operand (im2col),
/// ConvTranspose multiplies first and scatters the product back (col2im).
extension NeuralOps {
    static let convOps: [OpDefinition] = [
        OpDefinition("Conv", since: [1, 11, 22], infer: { try inferConv($0, dtype: nil) }, evaluate: evalConv),
        OpDefinition("ConvInteger", since: [10], infer: { try inferConv($0, dtype: .i32) }, evaluate: evalConvInteger),
        OpDefinition("QLinearConv", since: [10], infer: inferQLinearConv, evaluate: evalQLinearConv),
        OpDefinition("ConvTranspose", since: [1, 11, 22], infer: inferConvTranspose, evaluate: evalConvTranspose),
        OpDefinition("DeformConv", since: [19, 22], infer: { try inferConv($0, dtype: nil) }, evaluate: evalDeformConv),
        OpDefinition("CausalConvWithState", since: [27], infer: inferCausalConv, evaluate: evalCausalConv),
    ]
}

// MARK: - Geometry

/// Sizes and window of one convolution, validated against its operands.
struct ConvGeometry {
    var batch: Int
    var inChannels: Int
    var outChannels: Int
    var group: Int
    var inSpatial: [Int]
    var outSpatial: [Int]
    var kernel: [Int]
    var strides: [Int]
    var dilations: [Int]
    var padBegin: [Int]

    var rank: Int { kernel.count }
    var inPlane: Int { inSpatial.reduce(1, *) }
    var outPlane: Int { outSpatial.reduce(1, *) }
    var kernelSize: Int { kernel.reduce(1, *) }
}

extension ConvGeometry {
    /// Geometry of a Conv-like op with input shape `x` and weight shape `w` ([M, C/group, k...]).
    init(_ ctx: some NodeContext, x: [Int], w: [Int]) throws {
        guard x.count >= 3 else { throw ctx.error("input must have rank >= 3, got shape \(x)") }
        guard w.count == x.count else { throw ctx.error("weight shape \(w) does not match input shape \(x)") }
        let rank = x.count - 2
        let attrs = try WindowAttributes(ctx, rank: rank, kernel: Array(w.dropFirst(2)))
        guard attrs.kernel == Array(w.dropFirst(2)) else {
            throw ctx.error("kernel_shape \(attrs.kernel) does not match weight shape \(w)")
        }
        group = try ctx.int("group", default: 1)
        batch = x[0]; inChannels = x[1]; outChannels = w[0]
        guard group > 0, group <= max(inChannels, 1), inChannels == w[1] * group, outChannels % group == 0 else {
            throw ctx.error("input channels \(x[1]), weight shape \(w) and group \(group) are inconsistent")
        }
        inSpatial = Array(x.dropFirst(2))
        kernel = attrs.kernel; strides = attrs.strides; dilations = attrs.dilations
        outSpatial = []; padBegin = []
        for d in 0..<rank {
            let r = try attrs.resolve(d, input: inSpatial[d], ctx)
            outSpatial.append(r.output); padBegin.append(r.padBegin)
        }
    }

    /// Output→input maps for im2col, one per spatial dim.
    var gatherMaps: [WindowMap] {
        (0..<rank).map {
            WindowMap(count: outSpatial[$0], kernel: kernel[$0], stride: strides[$0], dilation: dilations[$0],
                      pad: padBegin[$0], limit: inSpatial[$0])
        }
    }
}

/// Result type of Conv-like ops ([N, M, out...]) from operand types, with unknown spatial sizes
/// where the input's are unknown.
private func inferConv(_ ctx: InferenceContext, dtype: DType?) throws -> [TensorType] {
    let x = try ctx.requiredInput(0), w = try ctx.requiredInput(1)
    let resultType = dtype ?? x.dtype
    guard let xd = x.shape.dims else { return [TensorType(resultType, .unranked)] }
    guard xd.count >= 3 else { throw ctx.error("input must have rank >= 3, got \(x)") }
    let rank = xd.count - 2
    let wd = w.shape.dims
    let kernelFromWeights = wd.flatMap { Shape(Array($0.dropFirst(2))).staticSizes }
    var spatial = [Dim](repeating: .unknown, count: rank)
    if ctx.has("kernel_shape") || kernelFromWeights?.count == rank {
        let attrs = try WindowAttributes(ctx, rank: rank, kernel: kernelFromWeights)
        spatial = try attrs.outputDims(Array(xd.dropFirst(2)), ctx)
    }
    return [TensorType(resultType, Shape([xd[0], wd?.first ?? .unknown] + spatial))]
}

// MARK: - Conv

private func evalConv(_ ctx: EvalContext) throws -> [Tensor] {
    let x = try ctx.requiredInput(0), w = try ctx.requiredInput(1), b = ctx.input(2)
    try NeuralOps.requireFloat(x, "input", ctx)
    guard w.dtype == x.dtype, b == nil || b?.dtype == x.dtype else {
        throw ctx.error("input, weight and bias must have the same element type")
    }
    let geo = try ConvGeometry(ctx, x: x.shape, w: w.shape)
    if let b, b.count != geo.outChannels { throw ctx.error("bias has \(b.count) elements, expected \(geo.outChannels)") }
    let shape = [geo.batch, geo.outChannels] + geo.outSpatial
    _ = try NeuralOps.count(shape, ctx)
    func run<T: NeuralScalar>(_: T.Type) -> Tensor {
        let y = convolve(x: T.neuralArray(x), w: T.neuralArray(w), bias: b.map(T.neuralArray), geo)
        return T.neuralTensor(y, dtype: x.dtype, shape: shape)
    }
    return [x.dtype == .f64 ? run(Double.self) : run(Float.self)]
}

/// Output columns gathered per GEMM call: bounds the packed im2col buffer and keeps it cache-sized.
private let convColumnChunk = 512

/// Conv of `x` ([N, C, in...]) with `w` ([M, C/group, k...]) plus optional `bias`, via im2col + GEMM.
private func convolve<T: NeuralScalar>(x: [T], w: [T], bias: [T]?, _ geo: ConvGeometry) -> [T] {
    let outPlane = geo.outPlane, inPlane = geo.inPlane, ks = geo.kernelSize
    let cg = geo.inChannels / geo.group, mg = geo.outChannels / geo.group, k = cg * ks
    var y = [T](repeating: 0, count: geo.batch * geo.outChannels * outPlane)
    guard !y.isEmpty else { return y }
    guard k > 0 else {
        // No input channels: the output is the bias alone.
        if let bias { for i in y.indices { y[i] = bias[(i / outPlane) % geo.outChannels] } }
        return y
    }
    let maps = geo.gatherMaps
    let inStrides = ShapeHelpers.strides(geo.inSpatial)
    if cg == 1 && mg == 1 {
        depthwise(x: x, w: w, bias: bias, into: &y, geo, maps: maps, inStrides: inStrides)
        return y
    }
    let aCount = NeuralGemm.packedACount(m: mg, k: k)
    var packedA = [T](repeating: 0, count: aCount * geo.group)
    packedA.withUnsafeMutableBufferPointer { pa in
        w.withUnsafeBufferPointer { wp in
            for g in 0..<geo.group {
                NeuralGemm.packA(wp.baseAddress! + g * mg * k, m: mg, k: k, rowStride: k, colStride: 1,
                                 into: pa.baseAddress! + g * aCount)
            }
        }
    }
    let chunk = min(convColumnChunk, (outPlane + NeuralGemm.nr - 1) / NeuralGemm.nr * NeuralGemm.nr)
    var packedB = [T](repeating: 0, count: NeuralGemm.packedBCount(k: k, n: chunk))
    x.withUnsafeBufferPointer { xp in
        y.withUnsafeMutableBufferPointer { yp in
            packedA.withUnsafeBufferPointer { pa in
                packedB.withUnsafeMutableBufferPointer { pb in
                    for n in 0..<geo.batch {
                        for g in 0..<geo.group {
                            let xg = xp.baseAddress! + (n * geo.inChannels + g * cg) * inPlane
                            let yg = yp.baseAddress! + (n * geo.outChannels + g * mg) * outPlane
                            if let bias {
                                for m in 0..<mg {
                                    (yg + m * outPlane).update(repeating: bias[g * mg + m], count: outPlane)
                                }
                            }
                            var p0 = 0
                            while p0 < outPlane {
                                let pc = min(chunk, outPlane - p0)
                                im2col(xg, channels: cg, inPlane: inPlane, inStrides: inStrides, kernel: geo.kernel,
                                       maps: maps, outSpatial: geo.outSpatial, first: p0, count: pc, rows: k,
                                       into: pb.baseAddress!)
                                NeuralGemm.multiply(m: mg, n: pc, k: k, packedA: pa.baseAddress! + g * aCount,
                                                    packedB: pb.baseAddress!, c: yg + p0, ldc: outPlane)
                                p0 += pc
                            }
                        }
                    }
                }
            }
        }
    }
    return y
}

/// Depthwise convolution (one input and one output channel per group) by direct accumulation: a
/// GEMM with a single row per group would waste most of its tile.
private func depthwise<T: NeuralScalar>(x: [T], w: [T], bias: [T]?, into y: inout [T], _ geo: ConvGeometry,
                                        maps: [WindowMap], inStrides: [Int]) {
    let inPlane = geo.inPlane, outPlane = geo.outPlane
    let offsets = kernelOffsets(geo.kernel)
    let last = geo.rank - 1
    let lastMap = maps[last]
    x.withUnsafeBufferPointer { xp in
        y.withUnsafeMutableBufferPointer { yp in
            lastMap.table.withUnsafeBufferPointer { lm in
                for plane in 0..<(geo.batch * geo.outChannels) {
                    let c = plane % geo.outChannels
                    let xc = xp.baseAddress! + plane * inPlane, yc = yp.baseAddress! + plane * outPlane
                    yc.update(repeating: bias?[c] ?? 0, count: outPlane)
                    for (kflat, kid) in offsets.enumerated() {
                        let wv = w[c * offsets.count + kflat]
                        let map = lm.baseAddress! + kid[last] * lastMap.count
                        forEachRun(grid: geo.outSpatial, first: 0, count: outPlane, maps: maps, kid: kid,
                                   otherStrides: inStrides) { j, col, run, base in
                            guard let base else { return }
                            for t in 0..<run {
                                let i = map[col + t]
                                if i >= 0 { yc[j + t] += wv * xc[base + i] }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Multi-indices of every flat kernel offset.
private func kernelOffsets(_ kernel: [Int]) -> [[Int]] {
    (0..<kernel.reduce(1, *)).map { NeuralOps.unravel($0, kernel) }
}

/// Walks flat positions `first..<first+count` of the row-major grid `grid`, one run along the last
/// dim at a time. For each run it reports (index within the walk, last-dim index of its start, run
/// length, offset of the mapped leading coordinates in the other grid — nil when one of them falls
/// outside it). `maps[d]` maps grid coordinates to the other grid at kernel offset `kid[d]`.
@inline(__always)
private func forEachRun(grid: [Int], first: Int, count: Int, maps: [WindowMap], kid: [Int], otherStrides: [Int],
                        _ body: (_ j: Int, _ col: Int, _ run: Int, _ base: Int?) -> Void) {
    let last = grid.count - 1
    let width = grid[last]
    var j = 0, pos = first
    while j < count {
        let col = pos % width
        let run = min(width - col, count - j)
        var rest = pos / width
        var base: Int? = 0
        var d = last - 1
        while d >= 0 {
            let o = rest % grid[d]
            rest /= grid[d]
            let i = maps[d][kid[d], o]
            if i < 0 { base = nil; break }
            base! += i * otherStrides[d]
            d -= 1
        }
        body(j, col, run, base)
        j += run; pos += run
    }
}

/// Gathers the windows of output positions `first..<first+count` of one group's input planes into
/// packed-B layout: row `c * kernelSize + kernelOffset`, column = output position - first.
private func im2col<T: NeuralScalar>(_ x: UnsafePointer<T>, channels: Int, inPlane: Int, inStrides: [Int],
                                     kernel: [Int], maps: [WindowMap], outSpatial: [Int], first: Int, count: Int,
                                     rows: Int, into dst: UnsafeMutablePointer<T>) {
    let offsets = kernelOffsets(kernel)
    let last = kernel.count - 1
    let lastMap = maps[last]
    lastMap.table.withUnsafeBufferPointer { lm in
        for c in 0..<channels {
            let xc = x + c * inPlane
            for (kflat, kid) in offsets.enumerated() {
                let row = c * offsets.count + kflat
                let map = lm.baseAddress! + kid[last] * lastMap.count
                forEachRun(grid: outSpatial, first: first, count: count, maps: maps, kid: kid,
                           otherStrides: inStrides) { j, col, run, base in
                    for t in 0..<run {
                        let idx = NeuralGemm.packedBIndex(row: row, col: j + t, k: rows)
                        if let base, case let i = map[col + t], i >= 0 {
                            dst[idx] = xc[base + i]
                        } else {
                            dst[idx] = 0
                        }
                    }
                }
            }
        }
    }
    // Columns past `count` in the last strip stay as they are: GEMM never stores them.
}

// MARK: - ConvTranspose

/// ConvTranspose attributes resolved against the input: output sizes and begin pads.
private func convTransposeGeometry(_ ctx: some NodeContext, x: [Int], w: [Int]) throws -> ConvGeometry {
    guard x.count >= 3 else { throw ctx.error("input must have rank >= 3, got shape \(x)") }
    guard w.count == x.count else { throw ctx.error("weight shape \(w) does not match input shape \(x)") }
    let rank = x.count - 2
    let attrs = try WindowAttributes(ctx, rank: rank, kernel: Array(w.dropFirst(2)))
    guard attrs.kernel == Array(w.dropFirst(2)) else {
        throw ctx.error("kernel_shape \(attrs.kernel) does not match weight shape \(w)")
    }
    let group = try ctx.int("group", default: 1)
    guard group > 0, group <= max(w[0], 1), x[1] == w[0], w[0] % group == 0 else {
        throw ctx.error("input channels \(x[1]), weight shape \(w) and group \(group) are inconsistent")
    }
    var outputPadding = try ctx.ints("output_padding") ?? []
    if outputPadding.isEmpty { outputPadding = [Int](repeating: 0, count: rank) }
    var outputShape = try ctx.ints("output_shape") ?? []
    if outputShape.count == rank + 2 { outputShape = Array(outputShape.dropFirst(2)) }
    guard outputPadding.count == rank, outputShape.isEmpty || outputShape.count == rank else {
        throw ctx.error("output_padding \(outputPadding) or output_shape \(outputShape) do not match rank \(rank)")
    }
    let limit = WindowAttributes.limit
    guard (outputPadding + outputShape).allSatisfy({ $0 >= 0 && $0 <= limit * limit }),
          x.allSatisfy({ $0 <= limit * limit }) else {
        throw ctx.error("output_padding, output_shape or input sizes out of range")
    }
    let input = Array(x.dropFirst(2))
    var out: [Int] = [], padBegin: [Int] = []
    for d in 0..<rank {
        let full = attrs.strides[d] * (input[d] - 1) + outputPadding[d] + attrs.span(d)
        switch attrs.autoPad {
        case .sameUpper, .sameLower:
            // Pads are derived from the requested output size (input * stride by default).
            let size = outputShape.isEmpty ? input[d] * attrs.strides[d] : outputShape[d]
            let total = full - size
            let half = NeuralOps.floorDiv(total, 2)
            out.append(size)
            padBegin.append(attrs.autoPad == .sameUpper ? half : total - half)
        case .notSet, .valid:
            let pb = attrs.autoPad == .valid ? 0 : attrs.pads[d]
            let pe = attrs.autoPad == .valid ? 0 : attrs.pads[rank + d]
            out.append(outputShape.isEmpty ? full - pb - pe : outputShape[d])
            padBegin.append(pb)
        }
        guard out[d] >= 0 else { throw ctx.error("negative output size \(out[d])") }
    }
    return ConvGeometry(batch: x[0], inChannels: x[1], outChannels: w[1] * group, group: group,
                        inSpatial: input, outSpatial: out, kernel: attrs.kernel, strides: attrs.strides,
                        dilations: attrs.dilations, padBegin: padBegin)
}

private func inferConvTranspose(_ ctx: InferenceContext) throws -> [TensorType] {
    let x = try ctx.requiredInput(0), w = try ctx.requiredInput(1)
    guard let xd = x.shape.dims else { return [TensorType(x.dtype, .unranked)] }
    let rank = xd.count - 2
    let group = try ctx.int("group", default: 1)
    var channels = Dim.unknown
    if let wd = w.shape.dims, wd.count >= 2, let m = wd[1].value { channels = .known(m * group) }
    guard let xs = x.shape.staticSizes, let ws = w.shape.staticSizes else {
        var spatial = [Dim](repeating: .unknown, count: max(rank, 0))
        if let os = try ctx.ints("output_shape"), os.count == rank { spatial = os.map { .known($0) } }
        return [TensorType(x.dtype, Shape([xd.first ?? .unknown, channels] + spatial))]
    }
    let geo = try convTransposeGeometry(ctx, x: xs, w: ws)
    return [TensorType(x.dtype, static: [geo.batch, geo.outChannels] + geo.outSpatial)]
}

private func evalConvTranspose(_ ctx: EvalContext) throws -> [Tensor] {
    let x = try ctx.requiredInput(0), w = try ctx.requiredInput(1), b = ctx.input(2)
    try NeuralOps.requireFloat(x, "input", ctx)
    guard w.dtype == x.dtype, b == nil || b?.dtype == x.dtype else {
        throw ctx.error("input, weight and bias must have the same element type")
    }
    let geo = try convTransposeGeometry(ctx, x: x.shape, w: w.shape)
    if let b, b.count != geo.outChannels { throw ctx.error("bias has \(b.count) elements, expected \(geo.outChannels)") }
    let shape = [geo.batch, geo.outChannels] + geo.outSpatial
    _ = try NeuralOps.count(shape, ctx)
    func run<T: NeuralScalar>(_: T.Type) -> Tensor {
        let y = convolveTransposed(x: T.neuralArray(x), w: T.neuralArray(w), bias: b.map(T.neuralArray), geo)
        return T.neuralTensor(y, dtype: x.dtype, shape: shape)
    }
    return [x.dtype == .f64 ? run(Double.self) : run(Float.self)]
}

/// ConvTranspose of `x` ([N, C, in...]) with `w` ([C, M/group, k...]): per group, the product
/// Wᵀ·X gives every (output channel, kernel offset) contribution of every input position, which
/// col2im adds into the output.
private func convolveTransposed<T: NeuralScalar>(x: [T], w: [T], bias: [T]?, _ geo: ConvGeometry) -> [T] {
    let inPlane = geo.inPlane, outPlane = geo.outPlane, ks = geo.kernelSize
    let cg = geo.inChannels / geo.group, mg = geo.outChannels / geo.group, rowsA = mg * ks
    var y = [T](repeating: 0, count: geo.batch * geo.outChannels * outPlane)
    guard !y.isEmpty else { return y }
    if let bias {
        for n in 0..<geo.batch {
            for m in 0..<geo.outChannels {
                let start = (n * geo.outChannels + m) * outPlane
                for p in start..<(start + outPlane) { y[p] = bias[m] }
            }
        }
    }
    guard inPlane > 0, rowsA > 0, cg > 0 else { return y }
    let maps = (0..<geo.rank).map {
        WindowMap(count: geo.inSpatial[$0], kernel: geo.kernel[$0], stride: geo.strides[$0],
                  dilation: geo.dilations[$0], pad: geo.padBegin[$0], limit: geo.outSpatial[$0])
    }
    let outStrides = ShapeHelpers.strides(geo.outSpatial)
    let offsets = kernelOffsets(geo.kernel)
    let last = geo.rank - 1
    let aCount = NeuralGemm.packedACount(m: rowsA, k: cg)
    var packedA = [T](repeating: 0, count: aCount * geo.group)
    packedA.withUnsafeMutableBufferPointer { pa in
        w.withUnsafeBufferPointer { wp in
            for g in 0..<geo.group {
                // A(r, c) = W[g*cg + c][r]: the transpose of the group's weight rows.
                NeuralGemm.packA(wp.baseAddress! + g * cg * rowsA, m: rowsA, k: cg, rowStride: 1, colStride: rowsA,
                                 into: pa.baseAddress! + g * aCount)
            }
        }
    }
    let chunk = min(convColumnChunk, (inPlane + NeuralGemm.nr - 1) / NeuralGemm.nr * NeuralGemm.nr)
    var packedB = [T](repeating: 0, count: NeuralGemm.packedBCount(k: cg, n: chunk))
    var cols = [T](repeating: 0, count: rowsA * chunk)
    x.withUnsafeBufferPointer { xp in
        y.withUnsafeMutableBufferPointer { yp in
            packedA.withUnsafeBufferPointer { pa in
                packedB.withUnsafeMutableBufferPointer { pb in
                    cols.withUnsafeMutableBufferPointer { cp in
                        let lastMap = maps[last]
                        lastMap.table.withUnsafeBufferPointer { lm in
                            for n in 0..<geo.batch {
                                for g in 0..<geo.group {
                                    let xg = xp.baseAddress! + (n * geo.inChannels + g * cg) * inPlane
                                    let yg = yp.baseAddress! + (n * geo.outChannels + g * mg) * outPlane
                                    var p0 = 0
                                    while p0 < inPlane {
                                        let pc = min(chunk, inPlane - p0)
                                        NeuralGemm.packB(xg + p0, k: cg, n: pc, rowStride: inPlane, colStride: 1,
                                                         into: pb.baseAddress!)
                                        cp.update(repeating: 0)
                                        NeuralGemm.multiply(m: rowsA, n: pc, k: cg, packedA: pa.baseAddress! + g * aCount,
                                                            packedB: pb.baseAddress!, c: cp.baseAddress!, ldc: pc)
                                        // col2im: scatter row (m, kernel offset) into output channel m.
                                        for m in 0..<mg {
                                            let ym = yg + m * outPlane
                                            for (kflat, kid) in offsets.enumerated() {
                                                let row = cp.baseAddress! + (m * ks + kflat) * pc
                                                let map = lm.baseAddress! + kid[last] * lastMap.count
                                                forEachRun(grid: geo.inSpatial, first: p0, count: pc, maps: maps, kid: kid,
                                                           otherStrides: outStrides) { j, col, run, base in
                                                    guard let base else { return }
                                                    for t in 0..<run {
                                                        let o = map[col + t]
                                                        if o >= 0 { ym[base + o] += row[j + t] }
                                                    }
                                                }
                                            }
                                        }
                                        p0 += pc
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    return y
}

// MARK: - ConvInteger and QLinearConv

/// `t` minus its zero point (scalar, or one per output channel along axis 0 when `perChannel`),
/// as Doubles.
private func centered(_ t: Tensor, zeroPoint: Tensor?, perChannel: Bool, _ ctx: some NodeContext) throws -> [Double] {
    var v = t.doubles
    guard let zeroPoint, zeroPoint.count > 0 else { return v }
    let zp = zeroPoint.doubles
    if zp.count == 1 {
        for i in v.indices { v[i] -= zp[0] }
    } else {
        guard perChannel, t.rank > 0, zp.count == t.shape[0] else {
            throw ctx.error("zero point of shape \(zeroPoint.shape) does not match operand shape \(t.shape)")
        }
        let inner = t.shape[0] == 0 ? 0 : t.count / t.shape[0]
        for i in v.indices { v[i] -= zp[i / inner] }
    }
    return v
}

private func evalConvInteger(_ ctx: EvalContext) throws -> [Tensor] {
    let x = try ctx.requiredInput(0), w = try ctx.requiredInput(1)
    guard x.dtype == .u8 || x.dtype == .i8, w.dtype == .u8 || w.dtype == .i8 else {
        throw ctx.unsupported("ConvInteger of \(x.dtype) and \(w.dtype)")
    }
    let geo = try ConvGeometry(ctx, x: x.shape, w: w.shape)
    let xs = try centered(x, zeroPoint: ctx.input(2), perChannel: false, ctx)
    let ws = try centered(w, zeroPoint: ctx.input(3), perChannel: true, ctx)
    let shape = [geo.batch, geo.outChannels] + geo.outSpatial
    _ = try NeuralOps.count(shape, ctx)
    return [Tensor(doubles: convolve(x: xs, w: ws, bias: nil, geo), dtype: .i32, shape: shape)]
}

private func inferQLinearConv(_ ctx: InferenceContext) throws -> [TensorType] {
    let x = try ctx.requiredInput(0), w = try ctx.requiredInput(3)
    let yType = ctx.inputType(7)?.dtype ?? x.dtype
    var rewired = ctx
    rewired.inputTypes = [x, w]
    rewired.constantInputs = []
    return try inferConv(rewired, dtype: yType)
}

private func evalQLinearConv(_ ctx: EvalContext) throws -> [Tensor] {
    let x = try ctx.requiredInput(0), xScale = try ctx.requiredInput(1), xZero = ctx.input(2)
    let w = try ctx.requiredInput(3), wScale = try ctx.requiredInput(4), wZero = ctx.input(5)
    let yScale = try ctx.requiredInput(6), yZero = ctx.input(7), bias = ctx.input(8)
    guard x.dtype == .u8 || x.dtype == .i8, w.dtype == .u8 || w.dtype == .i8 else {
        throw ctx.unsupported("QLinearConv of \(x.dtype) and \(w.dtype)")
    }
    let outType = yZero?.dtype ?? x.dtype
    guard outType == .u8 || outType == .i8 else { throw ctx.unsupported("QLinearConv producing \(outType)") }
    let geo = try ConvGeometry(ctx, x: x.shape, w: w.shape)
    let xs = try centered(x, zeroPoint: xZero, perChannel: false, ctx)
    let ws = try centered(w, zeroPoint: wZero, perChannel: true, ctx)
    if let bias, bias.count != geo.outChannels { throw ctx.error("bias must have \(geo.outChannels) elements") }
    let acc = convolve(x: xs, w: ws, bias: bias?.doubles, geo)
    let wScales = wScale.doubles
    guard wScales.count == 1 || wScales.count == geo.outChannels, xScale.count == 1, yScale.count == 1 else {
        throw ctx.error("scales must be scalars (w_scale may have one per output channel)")
    }
    // Like the reference: the combined scale is formed in f32, the requantisation in f64, rounding
    // half to even.
    let xs0 = Float(xScale.doubles[0]), ys0 = Float(yScale.doubles[0])
    let scales = wScales.map { Double(xs0 * Float($0) / ys0) }
    let zp = NeuralOps.scalar(yZero, default: 0)
    let (lo, hi): (Double, Double) = outType == .u8 ? (0, 255) : (-128, 127)
    let plane = geo.outPlane
    var out = [Double](repeating: 0, count: acc.count)
    for i in acc.indices {
        let channel = plane == 0 ? 0 : (i / plane) % geo.outChannels
        let s = scales.count == 1 ? scales[0] : scales[channel]
        out[i] = min(max((acc[i] * s + zp).rounded(.toNearestOrEven), lo), hi)
    }
    return [Tensor(doubles: out, dtype: outType, shape: [geo.batch, geo.outChannels] + geo.outSpatial)]
}

// MARK: - DeformConv

private func evalDeformConv(_ ctx: EvalContext) throws -> [Tensor] {
    let x = try ctx.requiredInput(0), w = try ctx.requiredInput(1), offset = try ctx.requiredInput(2)
    let b = ctx.input(3), mask = ctx.input(4)
    try NeuralOps.requireFloat(x, "input", ctx)
    let geo = try ConvGeometry(ctx, x: x.shape, w: w.shape)
    guard geo.rank == 2 else { throw ctx.unsupported("DeformConv with \(geo.rank) spatial dimensions") }
    let offsetGroups = try ctx.int("offset_group", default: 1)
    let ks = geo.kernelSize, plane = geo.outPlane
    guard offsetGroups > 0, geo.inChannels % offsetGroups == 0,
          offset.shape == [geo.batch, offsetGroups * ks * 2] + geo.outSpatial else {
        throw ctx.error("offset shape \(offset.shape) does not match offset_group \(offsetGroups) and output \(geo.outSpatial)")
    }
    if let mask, mask.shape != [geo.batch, offsetGroups * ks] + geo.outSpatial {
        throw ctx.error("mask shape \(mask.shape) does not match offset_group \(offsetGroups) and output \(geo.outSpatial)")
    }
    if let b, b.count != geo.outChannels { throw ctx.error("bias must have \(geo.outChannels) elements") }
    let xs = x.doubles, ws = w.doubles, offs = offset.doubles, masks = mask?.doubles
    let (ih, iw) = (geo.inSpatial[0], geo.inSpatial[1]), (ow) = geo.outSpatial[1]
    let cg = geo.inChannels / geo.group, mg = geo.outChannels / geo.group, k = cg * ks
    let perOffsetGroup = geo.inChannels / offsetGroups
    let kernelW = geo.kernel[1]
    let biases = b?.doubles ?? [Double](repeating: 0, count: geo.outChannels)
    var y = [Double](repeating: 0, count: geo.batch * geo.outChannels * plane)
    var cols = [Double](repeating: 0, count: k * plane)
    // Bilinear sample of one input plane, zero outside.
    func sample(_ base: Int, _ h: Double, _ w: Double) -> Double {
        let h0 = h.rounded(.down), w0 = w.rounded(.down)
        let fh = h - h0, fw = w - w0
        var acc = 0.0
        for (dh, wh) in [(0, 1 - fh), (1, fh)] {
            let hh = Int(h0) + dh
            guard hh >= 0 && hh < ih, wh != 0 else { continue }
            for (dw, ww) in [(0, 1 - fw), (1, fw)] {
                let xx = Int(w0) + dw
                guard xx >= 0 && xx < iw, ww != 0 else { continue }
                acc += wh * ww * xs[base + hh * iw + xx]
            }
        }
        return acc
    }
    for n in 0..<geo.batch {
        for g in 0..<geo.group {
            for c in 0..<cg {
                let ic = g * cg + c
                let og = ic / perOffsetGroup
                let xBase = (n * geo.inChannels + ic) * ih * iw
                for kf in 0..<ks {
                    let (kh, kw) = (kf / kernelW, kf % kernelW)
                    let offBase = ((n * offsetGroups + og) * ks + kf) * 2 * plane
                    let maskBase = ((n * offsetGroups + og) * ks + kf) * plane
                    for p in 0..<plane {
                        let (oh, owi) = (p / ow, p % ow)
                        let h = Double(oh * geo.strides[0] - geo.padBegin[0] + kh * geo.dilations[0]) + offs[offBase + p]
                        let wpos = Double(owi * geo.strides[1] - geo.padBegin[1] + kw * geo.dilations[1])
                            + offs[offBase + plane + p]
                        let m = masks.map { $0[maskBase + p] } ?? 1
                        cols[(c * ks + kf) * plane + p] = h.isFinite && wpos.isFinite && h > -1 && wpos > -1
                            && h < Double(ih) && wpos < Double(iw) ? sample(xBase, h, wpos) * m : 0
                    }
                }
            }
            for m in 0..<mg {
                let oc = g * mg + m
                let yBase = (n * geo.outChannels + oc) * plane
                for p in 0..<plane { y[yBase + p] = biases[oc] }
                for r in 0..<k {
                    let wv = ws[oc * k + r]
                    if wv == 0 { continue }
                    for p in 0..<plane { y[yBase + p] += wv * cols[r * plane + p] }
                }
            }
        }
    }
    return [Tensor(doubles: y, dtype: x.dtype, shape: [geo.batch, geo.outChannels] + geo.outSpatial)]
}

// MARK: - CausalConvWithState

private func inferCausalConv(_ ctx: InferenceContext) throws -> [TensorType] {
    let x = try ctx.requiredInput(0), w = try ctx.requiredInput(1)
    var state = Shape([Dim](repeating: .unknown, count: 3))
    if let xd = x.shape.dims, xd.count == 3 {
        let k = w.shape.dims.flatMap { $0.count == 3 ? $0[2].value : nil }
        state = Shape([xd[0], xd[1], k.map { .known($0 - 1) } ?? .unknown])
    }
    return Array([x, TensorType(x.dtype, state)].prefix(ctx.outputCount))
}

/// Depthwise causal 1-D convolution over [past_state (or zeros) ++ input], returning the output
/// (optionally SiLU-activated) and the last k-1 positions as the new state.
private func evalCausalConv(_ ctx: EvalContext) throws -> [Tensor] {
    let x = try ctx.requiredInput(0), w = try ctx.requiredInput(1), bias = ctx.input(2), past = ctx.input(3)
    try NeuralOps.requireFloat(x, "input", ctx)
    guard x.rank == 3, w.rank == 3, w.shape[0] == x.shape[1], w.shape[1] == 1, w.shape[2] >= 1 else {
        throw ctx.error("input \(x.shape) and weight \(w.shape) must be (B, C, L) and (C, 1, k)")
    }
    let (b, c, len, k) = (x.shape[0], x.shape[1], x.shape[2], w.shape[2])
    if let bias, bias.count != c { throw ctx.error("bias must have \(c) elements") }
    if let past, past.shape != [b, c, k - 1] { throw ctx.error("past_state must have shape \([b, c, k - 1])") }
    let activation = try ctx.string("activation", default: "none")
    guard ["none", "silu", "swish"].contains(activation) else { throw ctx.unsupported("activation '\(activation)'") }
    let xs = x.doubles, ws = w.doubles, bs = bias?.doubles, ps = past?.doubles
    let padded = len + k - 1
    var y = [Double](repeating: 0, count: b * c * len)
    var state = [Double](repeating: 0, count: b * c * (k - 1))
    var row = [Double](repeating: 0, count: padded)
    for plane in 0..<(b * c) {
        let ch = plane % c
        for j in 0..<(k - 1) { row[j] = ps?[plane * (k - 1) + j] ?? 0 }
        for t in 0..<len { row[k - 1 + t] = xs[plane * len + t] }
        for t in 0..<len {
            var acc = bs?[ch] ?? 0
            for j in 0..<k { acc += ws[ch * k + j] * row[t + j] }
            if activation != "none" {
                let v = Double(Float(acc))
                acc = v / (1 + exp(-v))
            }
            y[plane * len + t] = acc
        }
        for j in 0..<(k - 1) { state[plane * (k - 1) + j] = row[padded - (k - 1) + j] }
    }
    return [Tensor(doubles: y, dtype: x.dtype, shape: x.shape),
            Tensor(doubles: state, dtype: x.dtype, shape: [b, c, k - 1])].prefix(max(ctx.outputCount, 1)).map { $0 }
}
