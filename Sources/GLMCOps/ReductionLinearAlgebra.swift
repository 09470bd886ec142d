import Foundation
import GLMCIR

/// Linear algebra: MatMul, Gemm, MatMulInteger, QLinearMatMul, Einsum and Det.
///
/// Matrix products run on one of three element domains: Float (f32, and f16/bf16 widened to it), Double
/// (f64) and wrapping Int64 (every integer type; wrapping makes the result exact modulo the type's
/// width). The Float kernel is the hot one and is blocked for cache and registers.
enum ReductionLinearAlgebra {
    static let all: [OpDefinition] = [matMul, gemm, matMulInteger, qLinearMatMul, einsum, det]

    // MARK: Element domains

    /// A tensor's elements in the domain its products are computed in.
    enum Numbers {
        case float([Float]), double([Double]), int([Int64])

        init(_ t: Tensor, _ ctx: some NodeContext) throws {
            switch t.storage {
            case .f32(let a): self = .float(a)
            case .f16(let a): self = .float(a.map(halfToFloat))
            case .bf16(let a): self = .float(a.map(bfloat16ToFloat))
            case .f64(let a): self = .double(a)
            case .string, .bool: throw ctx.unsupported("\(t.dtype) operands")
            default: self = .int(t.int64s)
            }
        }

        /// Back to a tensor of `dtype` (the element domain's natural conversion).
        func tensor(_ dtype: DType, shape: [Int]) -> Tensor {
            switch self {
            case .float(let a):
                switch dtype {
                case .f32: return Tensor(a, shape: shape)
                case .f16: return Tensor(shape: shape, storage: .f16(a.map(floatToHalf)))
                case .bf16: return Tensor(shape: shape, storage: .bf16(a.map(floatToBFloat16)))
                default: return Tensor(doubles: a.map(Double.init), dtype: dtype, shape: shape)
                }
            case .double(let a): return Tensor(doubles: a, dtype: dtype, shape: shape)
            case .int(let a): return Tensor(int64s: a, dtype: dtype, shape: shape)
            }
        }

        var doubles: [Double] {
            switch self {
            case .float(let a): return a.map(Double.init)
            case .double(let a): return a
            case .int(let a): return a.map(Double.init)
            }
        }
    }

    // MARK: Batched matrix products

    /// The NumPy matmul view of two operand shapes: batch broadcasting and 1-D promotion.
    struct MatMulLayout {
        var m = 0, k = 0, n = 0
        /// Output shape (promoted 1-D axes removed again).
        var outShape: [Int] = []
        /// Per output batch, the element offset of the matching matrix of A and of B.
        var aOffsets: [Int] = [], bOffsets: [Int] = []

        init(_ aShape: [Int], _ bShape: [Int], _ ctx: some NodeContext) throws {
            guard !aShape.isEmpty, !bShape.isEmpty else { throw ctx.error("MatMul operands must have rank ≥ 1") }
            let a = aShape.count == 1 ? [1] + aShape : aShape
            let b = bShape.count == 1 ? bShape + [1] : bShape
            (m, k) = (a[a.count - 2], a[a.count - 1])
            n = b[b.count - 1]
            guard b[b.count - 2] == k else {
                throw ctx.error("inner dimensions of \(aShape) and \(bShape) do not match")
            }
            let aBatch = Array(a.dropLast(2)), bBatch = Array(b.dropLast(2))
            guard let batch = ShapeHelpers.broadcast([aBatch, bBatch]),
                  let aStrides = ReductionSupport.broadcastStrides(from: aBatch, to: batch),
                  let bStrides = ReductionSupport.broadcastStrides(from: bBatch, to: batch) else {
                throw ctx.error("batch dimensions of \(aShape) and \(bShape) do not broadcast")
            }
            aOffsets = ReductionSupport.stridedOffsets(shape: batch, strides: aStrides.map { $0 * m * k })
            bOffsets = ReductionSupport.stridedOffsets(shape: batch, strides: bStrides.map { $0 * k * n })
            outShape = batch + (aShape.count == 1 ? [] : [m]) + (bShape.count == 1 ? [] : [n])
            _ = try ReductionSupport.count(batch + [m, n], ctx)
            if bBatch.isEmpty && !aBatch.isEmpty {
                // A shared B: the batches of A are one tall contiguous matrix (one larger product).
                m *= aOffsets.count
                (aOffsets, bOffsets) = ([0], [0])
            }
        }

        /// Result type of a matmul of two (possibly symbolic) operand types.
        static func infer(_ a: Shape, _ b: Shape, _ ctx: some NodeContext) throws -> Shape {
            guard let ad = a.dims, let bd = b.dims else { return .unranked }
            guard !ad.isEmpty, !bd.isEmpty else { throw ctx.error("MatMul operands must have rank ≥ 1") }
            let a2 = ad.count == 1 ? [.known(1)] + ad : ad, b2 = bd.count == 1 ? bd + [.known(1)] : bd
            if let ka = a2.last?.value, let kb = b2[b2.count - 2].value, ka != kb {
                throw ctx.error("inner dimensions of \(a) and \(b) do not match")
            }
            let batch = try ShapeHelpers.broadcast([Shape(Array(a2.dropLast(2))), Shape(Array(b2.dropLast(2)))], context: ctx)
            return Shape((batch.dims ?? []) + (ad.count == 1 ? [] : [a2[a2.count - 2]]) + (bd.count == 1 ? [] : [b2[b2.count - 1]]))
        }
    }

    /// All batches of A·B in one element domain.
    static func batchedProduct(_ a: Numbers, _ b: Numbers, _ l: MatMulLayout, _ ctx: some NodeContext) throws -> Numbers {
        let size = l.m * l.n
        switch (a, b) {
        case (.float(let a), .float(let b)):
            var c = [Float](repeating: 0, count: l.aOffsets.count * size)
            a.withUnsafeBufferPointer { a in b.withUnsafeBufferPointer { b in c.withUnsafeMutableBufferPointer { c in
                for (i, (ao, bo)) in zip(l.aOffsets, l.bOffsets).enumerated() where size > 0 && l.k > 0 {
                    sgemm(a.baseAddress! + ao, b.baseAddress! + bo, c.baseAddress! + i * size, m: l.m, k: l.k, n: l.n)
                }
            } } }
            return .float(c)
        case (.double(let a), .double(let b)): return .double(genericProduct(a, b, l))
        case (.int(let a), .int(let b)): return .int(genericProduct(a, b, l))
        default: throw ctx.error("operands have different element types")
        }
    }

    private static func genericProduct<T: LinearAlgebraScalar>(_ a: [T], _ b: [T], _ l: MatMulLayout) -> [T] {
        let size = l.m * l.n
        var c = [T](repeating: .zero, count: l.aOffsets.count * size)
        a.withUnsafeBufferPointer { a in b.withUnsafeBufferPointer { b in c.withUnsafeMutableBufferPointer { c in
            for (batch, (ao, bo)) in zip(l.aOffsets, l.bOffsets).enumerated() {
                for i in 0..<l.m {
                    let cRow = batch * size + i * l.n
                    for p in 0..<l.k {
                        let av = a[ao + i * l.k + p], bRow = bo + p * l.n
                        for j in 0..<l.n { c[cRow + j] = T.mulAdd(c[cRow + j], av, b[bRow + j]) }
                    }
                }
            }
        } } }
        return c
    }

    /// c[m×n] += a[m×k] · b[k×n], all row-major and contiguous.
    ///
    /// For each block of 256 rows of B, 16-column panels of B (16 KB, L1-resident) are swept by
    /// 4-row strips of A; each 4×16 tile of C is held in eight SIMD registers across the whole
    /// block. Leftover rows and columns take a plain loop over contiguous columns.
    static func sgemm(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
                      m: Int, k: Int, n: Int) {
        typealias V = SIMD8<Float>
        let kBlock = 256
        let nTiles = n / 16 * 16, mTiles = m / 4 * 4
        @inline(__always) func load(_ p: UnsafeMutablePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
        @inline(__always) func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
        @inline(__always) func store(_ v: V, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self) }
        for p0 in stride(from: 0, to: k, by: kBlock) {
            let p1 = min(p0 + kBlock, k)
            for j in stride(from: 0, to: nTiles, by: 16) {
                for i in stride(from: 0, to: mTiles, by: 4) {
                    let c0 = c + i * n + j, c1 = c0 + n, c2 = c1 + n, c3 = c2 + n
                    var r00 = load(c0), r01 = load(c0 + 8), r10 = load(c1), r11 = load(c1 + 8)
                    var r20 = load(c2), r21 = load(c2 + 8), r30 = load(c3), r31 = load(c3 + 8)
                    let a0 = a + i * k, a1 = a0 + k, a2 = a1 + k, a3 = a2 + k
                    for p in p0..<p1 {
                        let bp = b + p * n + j
                        let b0 = load(bp), b1 = load(bp + 8)
                        let x0 = V(repeating: a0[p]), x1 = V(repeating: a1[p])
                        let x2 = V(repeating: a2[p]), x3 = V(repeating: a3[p])
                        r00 += x0 * b0; r01 += x0 * b1; r10 += x1 * b0; r11 += x1 * b1
                        r20 += x2 * b0; r21 += x2 * b1; r30 += x3 * b0; r31 += x3 * b1
                    }
                    store(r00, c0); store(r01, c0 + 8); store(r10, c1); store(r11, c1 + 8)
                    store(r20, c2); store(r21, c2 + 8); store(r30, c3); store(r31, c3 + 8)
                }
            }
            // Rows below the last full strip (all columns), then columns right of the last full
            // panel (strip rows only).
            for i in 0..<m {
                let (jStart, jEnd) = i < mTiles ? (nTiles, n) : (0, n)
                guard jStart < jEnd else { continue }
                let ci = c + i * n, ai = a + i * k
                for p in p0..<p1 {
                    let x = ai[p], bp = b + p * n
                    for j in jStart..<jEnd { ci[j] += x * bp[j] }
                }
            }
        }
    }

    /// c[m×n] += a[m×k] · bᵀ where `bt` is b stored transposed (n×k, row-major): every output
    /// element is a dot product of two contiguous rows. Used for Gemm with transB and few rows of A
    /// (fully connected layers), where transposing B would cost more than the product.
    static func sgemmTransposedB(_ a: UnsafePointer<Float>, _ bt: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
                                 m: Int, k: Int, n: Int) {
        for i in 0..<m {
            let row = UnsafeRawPointer(a + i * k)
            for j in 0..<n {
                let col = UnsafeRawPointer(bt + j * k)
                var acc = SIMD8<Float>(), p = 0
                while p + 8 <= k {
                    acc += row.loadUnaligned(fromByteOffset: p * 4, as: SIMD8<Float>.self)
                        * col.loadUnaligned(fromByteOffset: p * 4, as: SIMD8<Float>.self)
                    p += 8
                }
                var sum = acc.sum()
                while p < k { sum += a[i * k + p] * bt[j * k + p]; p += 1 }
                c[i * n + j] += sum
            }
        }
    }

    /// A row-major rows×cols matrix transposed, in cache-sized tiles.
    static func transposed<T>(_ a: [T], rows: Int, cols: Int) -> [T] {
        guard rows > 1 && cols > 1 else { return a }
        var out = a
        let tile = 32
        a.withUnsafeBufferPointer { src in out.withUnsafeMutableBufferPointer { dst in
            for r0 in stride(from: 0, to: rows, by: tile) {
                for c0 in stride(from: 0, to: cols, by: tile) {
                    for r in r0..<min(r0 + tile, rows) {
                        for c in c0..<min(c0 + tile, cols) { dst[c * rows + r] = src[r * cols + c] }
                    }
                }
            }
        } }
        return out
    }

    // MARK: MatMul / Gemm

    static let matMul = OpDefinition("MatMul", since: [1, 9, 13], infer: { ctx in
        let a = try ctx.requiredInput(0), b = try ctx.requiredInput(1)
        try ReductionSupport.requireNumeric(a.dtype, ctx)
        guard a.dtype == b.dtype else { throw ctx.error("operand types \(a.dtype) and \(b.dtype) differ") }
        return [TensorType(a.dtype, try MatMulLayout.infer(a.shape, b.shape, ctx))]
    }, evaluate: { ctx in
        let a = try ctx.requiredInput(0), b = try ctx.requiredInput(1)
        guard a.dtype == b.dtype else { throw ctx.error("operand types \(a.dtype) and \(b.dtype) differ") }
        let layout = try MatMulLayout(a.shape, b.shape, ctx)
        let c = try batchedProduct(try Numbers(a, ctx), try Numbers(b, ctx), layout, ctx)
        return [c.tensor(a.dtype, shape: layout.outShape)]
    })

    static let gemm = OpDefinition("Gemm", since: [1, 6, 7, 9, 11, 13], infer: { ctx in
        let a = try ctx.requiredInput(0), b = try ctx.requiredInput(1)
        try ReductionSupport.requireNumeric(a.dtype, ctx)
        let ta = try ctx.int("transA", default: 0) != 0, tb = try ctx.int("transB", default: 0) != 0
        guard let ad = a.shape.dims, let bd = b.shape.dims else { return [TensorType(a.dtype, Shape([.unknown, .unknown]))] }
        guard ad.count == 2, bd.count == 2 else { throw ctx.error("Gemm operands must be 2-D, got \(a.shape) and \(b.shape)") }
        return [TensorType(a.dtype, Shape([ta ? ad[1] : ad[0], tb ? bd[0] : bd[1]]))]
    }, evaluate: { ctx in
        let a = try ctx.requiredInput(0), b = try ctx.requiredInput(1)
        guard a.dtype == b.dtype else { throw ctx.error("operand types \(a.dtype) and \(b.dtype) differ") }
        guard a.rank == 2, b.rank == 2 else { throw ctx.error("Gemm operands must be 2-D, got \(a.shape) and \(b.shape)") }
        let ta = try ctx.int("transA", default: 0) != 0, tb = try ctx.int("transB", default: 0) != 0
        let alpha = Double(try ctx.float("alpha", default: 1)), beta = Double(try ctx.float("beta", default: 1))
        func operand(_ t: Tensor, transpose: Bool) throws -> (Numbers, [Int]) {
            let (r, c) = (t.shape[0], t.shape[1])
            guard transpose else { return (try Numbers(t, ctx), t.shape) }
            switch try Numbers(t, ctx) {
            case .float(let v): return (.float(transposed(v, rows: r, cols: c)), [c, r])
            case .double(let v): return (.double(transposed(v, rows: r, cols: c)), [c, r])
            case .int(let v): return (.int(transposed(v, rows: r, cols: c)), [c, r])
            }
        }
        let (an, aShape) = try operand(a, transpose: ta)
        let product: Numbers, layout: MatMulLayout
        if tb, case .float(let av) = an, case .f32(let bt) = b.storage, aShape[0] <= 16 {
            // Few rows against a transposed B: dot products of contiguous rows, no transposition.
            layout = try MatMulLayout(aShape, [b.shape[1], b.shape[0]], ctx)
            var y = [Float](repeating: 0, count: layout.m * layout.n)
            if layout.k > 0 && !y.isEmpty {
                av.withUnsafeBufferPointer { ap in bt.withUnsafeBufferPointer { bp in y.withUnsafeMutableBufferPointer { yp in
                    sgemmTransposedB(ap.baseAddress!, bp.baseAddress!, yp.baseAddress!, m: layout.m, k: layout.k, n: layout.n)
                } } }
            }
            product = .float(y)
        } else {
            let (bn, bShape) = try operand(b, transpose: tb)
            layout = try MatMulLayout(aShape, bShape, ctx)
            product = try batchedProduct(an, bn, layout, ctx)
        }
        let shape = [layout.m, layout.n]
        let c = ctx.input(2)
        // The common f32 case stays in Float; alpha = beta = 1 on integers stays exact.
        switch product {
        case .float(var y) where a.dtype == .f32 && (c == nil || c?.dtype == .f32):
            if alpha != 1 { let s = Float(alpha); for i in y.indices { y[i] *= s } }
            if let c, beta != 0 {
                guard case .f32(let cv) = c.storage, let full = ReductionSupport.expand(cv, from: c.shape, to: shape) else {
                    throw ctx.error("C of shape \(c.shape) does not broadcast to \(shape)")
                }
                let s = Float(beta)
                for i in y.indices { y[i] += s * full[i] }
            }
            return [Tensor(y, shape: shape)]
        case .int(var y) where alpha == 1 && beta == 1:
            if let c {
                guard let full = ReductionSupport.expand(c.int64s, from: c.shape, to: shape) else {
                    throw ctx.error("C of shape \(c.shape) does not broadcast to \(shape)")
                }
                for i in y.indices { y[i] &+= full[i] }
            }
            return [Tensor(int64s: y, dtype: a.dtype, shape: shape)]
        default:
            var y = product.doubles.map { $0 * alpha }
            if let c, beta != 0 {
                guard let full = ReductionSupport.expand(c.doubles, from: c.shape, to: shape) else {
                    throw ctx.error("C of shape \(c.shape) does not broadcast to \(shape)")
                }
                for i in y.indices { y[i] += beta * full[i] }
            }
            return [Tensor(doubles: y, dtype: a.dtype, shape: shape)]
        }
    })

    // MARK: Quantized products

    /// A zero point or scale of a quantized operand spread over the operand's full shape: a scalar
    /// everywhere, a 1-D per-row vector (A side, `perRow`) along rows, otherwise NumPy broadcasting.
    private static func spread(_ t: Tensor?, over shape: [Int], perRow: Bool, _ ctx: some NodeContext,
                               name: String) throws -> [Double]? {
        guard let t else { return nil }
        let count = shape.reduce(1, *)
        if t.count == 1 { return [Double](repeating: t.doubles[0], count: count) }
        let from = perRow && t.rank == 1 && shape.count >= 2 ? t.shape + [1] : t.shape
        guard let v = ReductionSupport.expand(t.doubles, from: from, to: shape) else {
            throw ctx.error("\(name) of shape \(t.shape) does not fit an operand of shape \(shape)")
        }
        return v
    }

    /// An 8-bit quantized operand minus its zero point, as Int64.
    private static func dequantizedIntegers(_ t: Tensor, zeroPoint: Tensor?, perRow: Bool,
                                            _ ctx: some NodeContext, name: String) throws -> [Int64] {
        guard t.dtype == .u8 || t.dtype == .i8 else { throw ctx.unsupported("\(t.dtype) quantized operand") }
        if let zeroPoint, zeroPoint.dtype != t.dtype {
            throw ctx.error("\(name) must have type \(t.dtype), got \(zeroPoint.dtype)")
        }
        let v = t.int64s
        guard let zp = try spread(zeroPoint, over: t.shape, perRow: perRow, ctx, name: name) else { return v }
        return zip(v, zp).map { $0 - Int64($1) }
    }

    static let matMulInteger = OpDefinition("MatMulInteger", since: [10], infer: { ctx in
        let a = try ctx.requiredInput(0), b = try ctx.requiredInput(1)
        return [TensorType(.i32, try MatMulLayout.infer(a.shape, b.shape, ctx))]
    }, evaluate: { ctx in
        let a = try ctx.requiredInput(0), b = try ctx.requiredInput(1)
        let layout = try MatMulLayout(a.shape, b.shape, ctx)
        let av = try dequantizedIntegers(a, zeroPoint: ctx.input(2), perRow: true, ctx, name: "a_zero_point")
        let bv = try dequantizedIntegers(b, zeroPoint: ctx.input(3), perRow: false, ctx, name: "b_zero_point")
        return [try batchedProduct(.int(av), .int(bv), layout, ctx).tensor(.i32, shape: layout.outShape)]
    })

    static let qLinearMatMul = OpDefinition("QLinearMatMul", since: [10, 21], infer: { ctx in
        let a = try ctx.requiredInput(0), b = try ctx.requiredInput(3)
        let yType = ctx.inputType(7)?.dtype ?? a.dtype
        return [TensorType(yType, try MatMulLayout.infer(a.shape, b.shape, ctx))]
    }, evaluate: { ctx in
        let a = try ctx.requiredInput(0), b = try ctx.requiredInput(3)
        let yZeroPoint = try ctx.requiredInput(7)
        let layout = try MatMulLayout(a.shape, b.shape, ctx)
        let av = try dequantizedIntegers(a, zeroPoint: ctx.input(2), perRow: true, ctx, name: "a_zero_point")
        let bv = try dequantizedIntegers(b, zeroPoint: ctx.input(5), perRow: false, ctx, name: "b_zero_point")
        guard case .int(let acc) = try batchedProduct(.int(av), .int(bv), layout, ctx) else { return [] }
        // Scales: a's per row, b's per column; each output element takes its row's and column's.
        guard let aScale = try spread(ctx.requiredInput(1), over: a.shape, perRow: true, ctx, name: "a_scale"),
              let bScale = try spread(ctx.requiredInput(4), over: b.shape, perRow: false, ctx, name: "b_scale"),
              let yScale = try spread(ctx.requiredInput(6), over: layout.outShape, perRow: false, ctx, name: "y_scale"),
              let yZero = try spread(yZeroPoint, over: layout.outShape, perRow: false, ctx, name: "y_zero_point") else {
            return []
        }
        let (m, k, n) = (layout.m, layout.k, layout.n)
        let (lo, hi): (Double, Double) = yZeroPoint.dtype == .u8 ? (0, 255) : yZeroPoint.dtype == .i8 ? (-128, 127) : (0, 0)
        guard hi > lo else { throw ctx.unsupported("\(yZeroPoint.dtype) output") }
        var y = [Double](repeating: 0, count: acc.count)
        for (batch, (ao, bo)) in zip(layout.aOffsets, layout.bOffsets).enumerated() {
            for i in 0..<m {
                for j in 0..<n {
                    let o = (batch * m + i) * n + j
                    let scale = k == 0 ? 0 : aScale[ao + i * k] * bScale[bo + j] / yScale[o]
                    y[o] = min(max((Double(acc[o]) * scale).rounded(.toNearestOrEven) + yZero[o], lo), hi)
                }
            }
        }
        return [Tensor(doubles: y, dtype: yZeroPoint.dtype, shape: layout.outShape)]
    })

    // MARK: Det

    static let det = OpDefinition("Det", since: [11, 22], infer: { ctx in
        let x = try ReductionSupport.floatType(ctx, 0)
        guard let dims = x.shape.dims else { return [TensorType(x.dtype, .unranked)] }
        guard dims.count >= 2 else { throw ctx.error("Det needs an input of rank ≥ 2, got \(x.shape)") }
        return [TensorType(x.dtype, Shape(Array(dims.dropLast(2))))]
    }, evaluate: { ctx in
        let x = try ReductionSupport.floatInput(ctx, 0)
        guard x.rank >= 2, x.shape[x.rank - 1] == x.shape[x.rank - 2] else {
            throw ctx.error("Det needs square matrices [..., M, M], got \(x.shape)")
        }
        let n = x.shape[x.rank - 1]
        let v = x.doubles
        let batch = Array(x.shape.dropLast(2))
        let results = (0..<batch.reduce(1, *)).map { determinant(Array(v[($0 * n * n)..<(($0 + 1) * n * n)]), n: n) }
        return [Tensor(doubles: results, dtype: x.dtype, shape: batch)]
    })

    /// Determinant by LU decomposition with partial pivoting.
    static func determinant(_ matrix: [Double], n: Int) -> Double {
        var a = matrix, det = 1.0
        for col in 0..<n {
            var pivot = col
            for r in (col + 1)..<max(n, col + 1) where abs(a[r * n + col]) > abs(a[pivot * n + col]) { pivot = r }
            if a[pivot * n + col] == 0 { return 0 }
            if pivot != col {
                for c in 0..<n { a.swapAt(pivot * n + c, col * n + c) }
                det = -det
            }
            let p = a[col * n + col]
            det *= p
            for r in (col + 1)..<max(n, col + 1) {
                let f = a[r * n + col] / p
                if f != 0 { for c in col..<n { a[r * n + c] -= f * a[col * n + c] } }
            }
        }
        return det
    }
}

/// Element types the generic matrix loops run on: Double, and Int64 with wrapping arithmetic.
protocol LinearAlgebraScalar {
    static var zero: Self { get }
    static var one: Self { get }
    static func mulAdd(_ acc: Self, _ a: Self, _ b: Self) -> Self
    static func mul(_ a: Self, _ b: Self) -> Self
}

extension Double: LinearAlgebraScalar {
    static var one: Double { 1 }
    @inline(__always) static func mulAdd(_ acc: Double, _ a: Double, _ b: Double) -> Double { acc + a * b }
    @inline(__always) static func mul(_ a: Double, _ b: Double) -> Double { a * b }
}

extension Int64: LinearAlgebraScalar {
    static var one: Int64 { 1 }
    @inline(__always) static func mulAdd(_ acc: Int64, _ a: Int64, _ b: Int64) -> Int64 { acc &+ a &* b }
    @inline(__always) static func mul(_ a: Int64, _ b: Int64) -> Int64 { a &* b }
}
