#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import GLMCIR

/// Tensor utilities without a family of their own: BitCast, SwiGLU, TensorScatter, and the
/// optional-value queries OptionalHasElement / OptionalGetElement on plain tensors.
extension MiscOps {
    static let tensorOps: [OpDefinition] = [bitCast, swiGLU, tensorScatter, optionalHasElement, optionalGetElement]
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
        let x = try ctx.operand(0)
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
        let a = try ctx.operand(0), b = try ctx.operand(1)
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
        let past = try ctx.operand(0), update = try ctx.operand(1)
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
        if let w = try ctx.optionalOperand(2) {
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

// MARK: - Optional values

extension MiscOps {
    /// The IR has no optional type: an optional operand is a tensor or is omitted, so "has an
    /// element" means "was given" (the ONNX form since opset 18, where plain tensors are allowed).
    static let optionalHasElement = OpDefinition("OptionalHasElement", since: [15, 18, 28], infer: { _ in
        [TensorType(.bool, .scalar)]
    }, evaluate: { ctx in
        [Tensor([ctx.input(0) != nil], shape: [])]
    })

    static let optionalGetElement = OpDefinition("OptionalGetElement", since: [15, 18, 28], infer: { ctx in
        [try ctx.requiredInput(0)]
    }, evaluate: { ctx in
        guard let x = ctx.input(0) else { throw ctx.error("the optional input is empty") }
        return [x]
    })
}
