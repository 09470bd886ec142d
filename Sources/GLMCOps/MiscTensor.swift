#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import GLMCIR

/// Tensor utilities without a family of their own: BitCast, SwiGLU, TensorScatter and Col2Im.
extension MiscOps {
    static let tensorOps: [OpDefinition] = [bitCast, swiGLU, tensorScatter, col2Im]
}

// MARK: - BitCast

extension MiscOps {
    /// Each element's bit pattern, zero-extended to 64 bits (nil for strings).
    static func bitPatterns(_ s: TensorStorage) -> [UInt64]? {
        switch s {
        case .f64(let a): return a.map(\.bitPattern)
        case .f32(let a): return a.map { UInt64($0.bitPattern) }
        case .f16(let a), .bf16(let a), .u16(let a): return a.map(UInt64.init)
        case .i64(let a): return a.map { UInt64(bitPattern: $0) }
        case .i32(let a): return a.map { UInt64(UInt32(bitPattern: $0)) }
        case .i16(let a): return a.map { UInt64(UInt16(bitPattern: $0)) }
        case .i8(let a): return a.map { UInt64(UInt8(bitPattern: $0)) }
        case .u64(let a): return a
        case .u32(let a): return a.map(UInt64.init)
        case .u8(let a): return a.map(UInt64.init)
        case .bool(let a): return a.map { $0 ? 1 : 0 }
        case .string: return nil
        }
    }

    /// Elements of `dtype` with the given bit patterns (the low `dtype.byteSize` bytes of each).
    static func storage(bitPatterns p: [UInt64], _ dtype: DType) -> TensorStorage? {
        switch dtype {
        case .f64: return .f64(p.map { Double(bitPattern: $0) })
        case .f32: return .f32(p.map { Float(bitPattern: UInt32(truncatingIfNeeded: $0)) })
        case .f16: return .f16(p.map { UInt16(truncatingIfNeeded: $0) })
        case .bf16: return .bf16(p.map { UInt16(truncatingIfNeeded: $0) })
        case .u16: return .u16(p.map { UInt16(truncatingIfNeeded: $0) })
        case .i64: return .i64(p.map { Int64(bitPattern: $0) })
        case .i32: return .i32(p.map { Int32(truncatingIfNeeded: $0) })
        case .i16: return .i16(p.map { Int16(truncatingIfNeeded: $0) })
        case .i8: return .i8(p.map { Int8(truncatingIfNeeded: $0) })
        case .u64: return .u64(p)
        case .u32: return .u32(p.map { UInt32(truncatingIfNeeded: $0) })
        case .u8: return .u8(p.map { UInt8(truncatingIfNeeded: $0) })
        case .bool: return .bool(p.map { $0 & 0xFF != 0 })
        case .string: return nil
        }
    }

    /// BitCast's target type, checked against the source's width.
    static func bitCastTarget(_ source: DType, _ ctx: some NodeContext) throws -> DType {
        let target = try dtypeAttribute(ctx, "to")
        guard source != .string, target != .string else { throw ctx.error("cannot bitcast strings") }
        guard source.byteSize == target.byteSize else {
            throw ctx.error("cannot bitcast \(source) (\(source.byteSize * 8) bits) to \(target) (\(target.byteSize * 8) bits)")
        }
        return target
    }

    static let bitCast = OpDefinition("BitCast", since: [26], infer: { ctx in
        let x = try ctx.requiredInput(0)
        return [TensorType(try bitCastTarget(x.dtype, ctx), x.shape)]
    }, evaluate: { ctx in
        let x = try operand(ctx, 0)
        let target = try bitCastTarget(x.dtype, ctx)
        guard let bits = bitPatterns(x.storage), let storage = storage(bitPatterns: bits, target) else {
            throw ctx.error("cannot bitcast \(x.dtype) to \(target)")
        }
        return [Tensor(shape: x.shape, storage: storage)]
    })
}

// MARK: - SwiGLU

extension MiscOps {
    /// Two shapes that must be identical (no broadcasting), merged: known sizes win over symbols,
    /// symbols over unknowns; conflicting known sizes are an error.
    static func identicalShapes(_ a: Shape, _ b: Shape, _ ctx: some NodeContext) throws -> Shape {
        guard let da = a.dims else { return b }
        guard let db = b.dims else { return a }
        guard da.count == db.count else { throw ctx.error("operands must have one shape, got \(a) and \(b)") }
        return Shape(try zip(da, db).map { x, y -> Dim in
            switch (x, y) {
            case (.known(let p), .known(let q)):
                guard p == q else { throw ctx.error("operands must have one shape, got \(a) and \(b)") }
                return x
            case (.known, _): return x
            case (_, .known): return y
            // Both name the one size; any name will do.
            case (.symbol, _): return x
            default: return y
            }
        })
    }

    static let swiGLU = OpDefinition("SwiGLU", since: [28], infer: { ctx in
        let a = try ctx.requiredInput(0), b = try ctx.requiredInput(1)
        try require(a.dtype, in: floatTypes, ctx)
        guard a.dtype == b.dtype else { throw ctx.error("A is \(a.dtype) but B is \(b.dtype)") }
        return [TensorType(a.dtype, try identicalShapes(a.shape, b.shape, ctx))]
    }, evaluate: { ctx in
        let a = try operand(ctx, 0), b = try operand(ctx, 1)
        try require(a.dtype, in: floatTypes, ctx)
        guard a.dtype == b.dtype, a.shape == b.shape else {
            throw ctx.error("A and B must have one type and shape (no broadcasting), got \(a.type) and \(b.type)")
        }
        let alpha = try ctx.float("alpha", default: 1)
        // Y = A·sigmoid(alpha·A)·B; f32 stays in Float (a hot op in LLM MLPs).
        if case .f32(let x) = a.storage, case .f32(let y) = b.storage {
            var out = [Float](repeating: 0, count: x.count)
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeBufferPointer { yp in
                    for i in 0 ..< xp.count { out[i] = xp[i] / (1 + expf(-alpha * xp[i])) * yp[i] }
                }
            }
            return [Tensor(out, shape: a.shape)]
        }
        let x = a.doubles, y = b.doubles, al = Double(alpha)
        let out = (0 ..< x.count).map { i in x[i] / (1 + exp(-al * x[i])) * y[i] }
        return [Tensor(doubles: out, dtype: a.dtype, shape: a.shape)]
    })
}

// MARK: - TensorScatter

extension MiscOps {
    static let tensorScatter = OpDefinition("TensorScatter", since: [24], infer: { ctx in
        let past = try ctx.requiredInput(0), update = try ctx.requiredInput(1)
        guard past.dtype == update.dtype else { throw ctx.error("past_cache is \(past.dtype) but update is \(update.dtype)") }
        return [past]
    }, evaluate: { ctx in
        let past = try operand(ctx, 0), update = try operand(ctx, 1)
        guard past.dtype == update.dtype, past.rank == update.rank, past.rank >= 2 else {
            throw ctx.error("past_cache and update must share a type and a rank ≥ 2, got \(past.type) and \(update.type)")
        }
        let rank = past.rank
        let axis = try ShapeHelpers.normalizeAxis(ctx.int("axis", default: -2), rank: rank, context: ctx)
        guard axis != 0 else { throw ctx.error("axis cannot be the batch axis") }
        for k in 0 ..< rank where k != axis && past.shape[k] != update.shape[k] {
            throw ctx.error("update shape \(update.shape) does not match past_cache shape \(past.shape) outside axis \(axis)")
        }
        let maxLength = past.shape[axis], length = update.shape[axis]
        guard length <= maxLength else { throw ctx.error("update is longer (\(length)) than the cache (\(maxLength))") }
        let mode = try ctx.string("mode", default: "linear")
        guard mode == "linear" || mode == "circular" else { throw ctx.error("unknown mode '\(mode)'") }
        let batch = past.shape[0]
        let writeIndices: [Int64]
        if let w = try optionalOperand(ctx, 2) {
            guard w.dtype == .i64, w.shape == [batch] else { throw ctx.error("write_indices must be int64 of shape [\(batch)], got \(w.type)") }
            writeIndices = w.int64s
        } else {
            writeIndices = [Int64](repeating: 0, count: batch)
        }
        // The result picks from past_cache (indices < past.count) or from update (offset by past.count).
        let outer = product(past.shape[..<axis]), inner = product(past.shape[(axis + 1)...])
        let perBatch = outer / max(batch, 1)
        var indices = Array(0 ..< past.count)
        for o in 0 ..< outer {
            let start = writeIndices[o / max(perBatch, 1)]
            for s in 0 ..< length {
                var position = Int(clamping: start) &+ s
                if mode == "circular" {
                    position = maxLength == 0 ? 0 : ((position % maxLength) + maxLength) % maxLength
                } else if position < 0 || position >= maxLength {
                    throw ctx.error("write index \(start) + \(length) updates does not fit a cache of \(maxLength) (mode linear)")
                }
                for i in 0 ..< inner {
                    indices[(o * maxLength + position) * inner + i] = past.count + (o * length + s) * inner + i
                }
            }
        }
        guard let joined = TensorStorage.concatenating([past.storage, update.storage], dtype: past.dtype) else {
            throw ctx.error("past_cache and update have different element types")
        }
        return [Tensor(shape: past.shape, storage: joined.picking(indices))]
    })
}

// MARK: - Col2Im

extension MiscOps {
    static let col2Im = OpDefinition("Col2Im", since: [18], infer: { ctx in
        let x = try ctx.requiredInput(0)
        try require(x.dtype, in: numericTypes, ctx)
        let image = ctx.constant(1)?.int64s.map(Int.init), block = ctx.constant(2)?.int64s.map(Int.init)
        guard let d = x.shape.dims else {
            return [TensorType(x.dtype, image.map { Shape([.unknown, .unknown] + $0.map(size)) } ?? .unranked)]
        }
        guard d.count == 3 else { throw ctx.error("input must be [N, C·∏block, L], got \(x.shape)") }
        var channels = Dim.unknown
        if let block, let cb = d[1].value {
            if let size = checkedElementCount(block), size > 0, cb % size == 0 { channels = .known(cb / size) }
        }
        let spatial: [Dim]
        if let image { spatial = image.map(size) } else if let n = ctx.inputType(1)?.shape.dims?.first?.value {
            spatial = [Dim](repeating: .unknown, count: n)
        } else {
            return [TensorType(x.dtype, .unranked)]
        }
        return [TensorType(x.dtype, Shape([d[0], channels] + spatial))]
    }, evaluate: { ctx in
        let x = try operand(ctx, 0)
        try require(x.dtype, in: numericTypes, ctx)
        let image = try operand(ctx, 1).int64s.map { Int(clamping: $0) }
        let block = try operand(ctx, 2).int64s.map { Int(clamping: $0) }
        let n = image.count
        // Sizes below 2^31 keep the block arithmetic below from overflowing.
        let limit = 1 << 31
        guard x.rank == 3, n >= 1, block.count == n, (image + block).allSatisfy({ $0 > 0 && $0 < limit }) else {
            throw ctx.error("needs a rank-3 input and positive image_shape and block_shape of one length")
        }
        let dilations = try ctx.ints("dilations") ?? [Int](repeating: 1, count: n)
        let strides = try ctx.ints("strides") ?? [Int](repeating: 1, count: n)
        let pads = try ctx.ints("pads") ?? [Int](repeating: 0, count: 2 * n)
        guard dilations.count == n, strides.count == n, pads.count == 2 * n,
              (dilations + strides).allSatisfy({ $0 > 0 && $0 < limit }), pads.allSatisfy({ $0 >= 0 && $0 < limit }) else {
            throw ctx.error("dilations, strides (positive) and pads (non-negative) must fit \(n) spatial axes")
        }
        let blockSize = try resultCount(block, ctx)
        guard x.shape[1] % blockSize == 0 else { throw ctx.error("input axis 1 (\(x.shape[1])) is not a multiple of the block size \(blockSize)") }
        let batch = x.shape[0], channels = x.shape[1] / blockSize
        // Block positions along each axis, as in a convolution over the padded image.
        let positions = (0 ..< n).map { k -> Int in
            let span = dilations[k] * (block[k] - 1) + 1
            return (image[k] + pads[k] + pads[k + n] - span) / strides[k] + 1
        }
        guard positions.allSatisfy({ $0 > 0 }), let blockCount = checkedElementCount(positions), blockCount == x.shape[2] else {
            throw ctx.error("input has \(x.shape[2]) blocks but the image and block shapes give \(positions)")
        }
        let imageSize = try resultCount(image, ctx)
        let xs = x.doubles
        var out = [Double](repeating: 0, count: try resultCount([batch, channels] + image, ctx))
        let imageStrides = ShapeHelpers.strides(image)
        var offset = [Int](repeating: 0, count: n), position = [Int](repeating: 0, count: n)
        for b in 0 ..< batch {
            for c in 0 ..< channels {
                for e in 0 ..< blockSize {
                    // e: the element within a block (its multi-index `offset`).
                    var rest = e
                    for k in stride(from: n - 1, through: 0, by: -1) { offset[k] = rest % block[k]; rest /= block[k] }
                    let row = ((b * channels + c) * blockSize + e) * blockCount
                    for l in 0 ..< blockCount {
                        var r = l
                        for k in stride(from: n - 1, through: 0, by: -1) { position[k] = r % positions[k]; r /= positions[k] }
                        var target = 0, inside = true
                        for k in 0 ..< n {
                            let i = position[k] * strides[k] - pads[k] + offset[k] * dilations[k]
                            if i < 0 || i >= image[k] { inside = false; break }
                            target += i * imageStrides[k]
                        }
                        if inside { out[(b * channels + c) * imageSize + target] += xs[row + l] }
                    }
                }
            }
        }
        return [Tensor(doubles: out, dtype: x.dtype, shape: [batch, channels] + image)]
    })
}
