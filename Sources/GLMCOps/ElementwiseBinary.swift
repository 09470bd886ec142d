#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import GLMCIR

// Broadcasting binary ops (arithmetic, comparison, logic, bitwise, Pow, BitShift, PRelu), the variadic
// Sum/Mean/Max/Min, Where and Clip. Integer arithmetic wraps like NumPy; integer division and
// remainder by zero give 0 (NumPy's result) instead of trapping.

// MARK: - Arithmetic on two operands of one type

extension ElementwiseOps {
    enum Arithmetic: Sendable {
        case add, sub, mul, div, max, min, prelu
        /// `fmod`: C's remainder (sign of the dividend); otherwise Python's (sign of the divisor).
        case mod(fmod: Bool)
        case bitAnd, bitOr, bitXor
    }

    struct ArithmeticKernel: Kernel {
        var op: Arithmetic
        var b: Tensor
        var bc: Broadcast

        func floating<T: FloatElement>(_ a: [T]) throws -> TensorStorage {
            let b: [T] = try values(self.b)
            let r: [T]
            switch op {
            case .add: r = map2(a, b, bc) { $0 + $1 }
            case .sub: r = map2(a, b, bc) { $0 - $1 }
            case .mul: r = map2(a, b, bc) { $0 * $1 }
            case .div: r = map2(a, b, bc) { $0 / $1 }
            // NaN propagates, as with NumPy's maximum/minimum.
            case .max: r = map2(a, b, bc) { $0.isNaN || $0 > $1 ? $0 : $1 }
            case .min: r = map2(a, b, bc) { $0.isNaN || $0 < $1 ? $0 : $1 }
            case .prelu: r = map2(a, b, bc) { $0 < 0 ? $0 * $1 : $0 }
            case .mod(fmod: true): r = map2(a, b, bc) { T.ewFmod($0, $1) }
            case .mod(fmod: false): r = map2(a, b, bc) { pythonMod($0, $1) }
            case .bitAnd, .bitOr, .bitXor: throw UnsupportedElementType()
            }
            return T.ewStorage(r)
        }

        func integer<T: IntElement>(_ a: [T]) throws -> TensorStorage {
            let b: [T] = try values(self.b)
            let r: [T]
            switch op {
            case .add: r = map2(a, b, bc) { $0 &+ $1 }
            case .sub: r = map2(a, b, bc) { $0 &- $1 }
            case .mul: r = map2(a, b, bc) { $0 &* $1 }
            // Truncating like C; the one overflowing quotient (min / -1) wraps.
            case .div: r = map2(a, b, bc) { $1 == 0 ? 0 : $0.dividedReportingOverflow(by: $1).partialValue }
            case .max: r = map2(a, b, bc) { Swift.max($0, $1) }
            case .min: r = map2(a, b, bc) { Swift.min($0, $1) }
            case .prelu: r = map2(a, b, bc) { $0 < 0 ? $0 &* $1 : $0 }
            case .mod(let fmod):
                r = map2(a, b, bc) { x, y in
                    guard y != 0 else { return 0 }
                    let rem = x.remainderReportingOverflow(dividingBy: y).partialValue
                    return !fmod && rem != 0 && (rem < 0) != (y < 0) ? rem &+ y : rem
                }
            case .bitAnd: r = map2(a, b, bc) { $0 & $1 }
            case .bitOr: r = map2(a, b, bc) { $0 | $1 }
            case .bitXor: r = map2(a, b, bc) { $0 ^ $1 }
            }
            return T.ewStorage(r)
        }
    }

    /// NumPy's floating-point `mod`: the remainder takes the divisor's sign (a zero result too).
    @inline(__always)
    static func pythonMod<T: FloatElement>(_ a: T, _ b: T) -> T {
        let m = T.ewFmod(a, b)
        if b == 0 { return m }
        if m != 0 { return (b < 0) != (m < 0) ? m + b : m }
        return T(signOf: b, magnitudeOf: 0)
    }

    enum Comparison: Sendable { case equal, less, lessOrEqual, greater, greaterOrEqual }

    struct ComparisonKernel: Kernel {
        var op: Comparison
        var b: Tensor
        var bc: Broadcast

        private func compare<T: Element & Comparable>(_ a: [T]) throws -> TensorStorage {
            let b: [T] = try values(self.b)
            switch op {
            case .equal: return .bool(map2(a, b, bc) { $0 == $1 })
            case .less: return .bool(map2(a, b, bc) { $0 < $1 })
            case .lessOrEqual: return .bool(map2(a, b, bc) { $0 <= $1 })
            case .greater: return .bool(map2(a, b, bc) { $0 > $1 })
            case .greaterOrEqual: return .bool(map2(a, b, bc) { $0 >= $1 })
            }
        }

        func floating<T: FloatElement>(_ a: [T]) throws -> TensorStorage { try compare(a) }
        func integer<T: IntElement>(_ a: [T]) throws -> TensorStorage { try compare(a) }
        func string(_ a: [String]) throws -> TensorStorage {
            guard case .equal = op else { throw UnsupportedElementType() }
            return try compare(a)
        }
        func boolean(_ a: [Bool]) throws -> TensorStorage {
            guard case .equal = op else { throw UnsupportedElementType() }
            return .bool(map2(a, try values(b), bc) { $0 == $1 })
        }
    }

    enum Logic: Sendable { case and, or, xor }

    struct LogicKernel: Kernel {
        var op: Logic
        var b: Tensor
        var bc: Broadcast

        func boolean(_ a: [Bool]) throws -> TensorStorage {
            let b: [Bool] = try values(self.b)
            switch op {
            case .and: return .bool(map2(a, b, bc) { $0 && $1 })
            case .or: return .bool(map2(a, b, bc) { $0 || $1 })
            case .xor: return .bool(map2(a, b, bc) { $0 != $1 })
            }
        }
    }

    /// A broadcasting op on two operands of one element type; `compute` runs a kernel on A (with B and
    /// the layout in hand). Handles the opset < 7 `broadcast`/`axis` attributes.
    static func binary(_ name: String, since: [Int], allowed: Set<DType>, result: DType? = nil,
                       _ compute: @escaping @Sendable (EvalContext, Tensor, Tensor, Broadcast) throws -> TensorStorage) -> OpDefinition {
        OpDefinition(name, since: since, infer: { ctx in
            try results(ctx, [inferBroadcast(ctx, operands: [0, 1], allowed: allowed, result: result)])
        }, evaluate: { ctx in
            let (a, b, bc) = try binaryOperands(ctx, allowed: allowed)
            return [Tensor(shape: bc.shape, storage: try compute(ctx, a, b, bc))]
        })
    }

    /// Operands A and B (B reshaped for legacy broadcasting) and their layout; with `sameType`, their
    /// element types must agree.
    static func binaryOperands(_ ctx: EvalContext, allowed: Set<DType>, sameType: Bool = true) throws -> (Tensor, Tensor, Broadcast) {
        let a = try ctx.operand(0)
        var b = try ctx.operand(1)
        if sameType { _ = try commonType([a.dtype, b.dtype], ctx) }
        try require(a.dtype, in: allowed, ctx)
        b = b.reshaped(try legacyOperandShape(b.shape, aRank: a.rank, one: 1, ctx))
        return (a, b, try broadcast([a.shape, b.shape], ctx))
    }

    private static func arithmetic(_ name: String, since: [Int], allowed: Set<DType>,
                                   _ op: @escaping @Sendable (EvalContext) throws -> Arithmetic) -> OpDefinition {
        binary(name, since: since, allowed: allowed) { ctx, a, b, bc in
            try apply(ArithmeticKernel(op: try op(ctx), b: b, bc: bc), to: a, ctx)
        }
    }

    private static func comparison(_ name: String, since: [Int], allowed: Set<DType>, _ op: Comparison) -> OpDefinition {
        binary(name, since: since, allowed: allowed, result: .bool) { ctx, a, b, bc in
            try apply(ComparisonKernel(op: op, b: b, bc: bc), to: a, ctx)
        }
    }

    private static func logic(_ name: String, _ op: Logic) -> OpDefinition {
        binary(name, since: [1, 7], allowed: [.bool]) { ctx, a, b, bc in
            try apply(LogicKernel(op: op, b: b, bc: bc), to: a, ctx)
        }
    }

    static let binaryOps: [OpDefinition] = [
        arithmetic("Add", since: [1, 6, 7, 13, 14], allowed: numericTypes) { _ in .add },
        arithmetic("Sub", since: [1, 6, 7, 13, 14], allowed: numericTypes) { _ in .sub },
        arithmetic("Mul", since: [1, 6, 7, 13, 14], allowed: numericTypes) { _ in .mul },
        arithmetic("Div", since: [1, 6, 7, 13, 14], allowed: numericTypes) { _ in .div },
        arithmetic("Mod", since: [10, 13, 28], allowed: numericTypes) { ctx in
            .mod(fmod: try ctx.int("fmod", default: 0) != 0)
        },
        arithmetic("BitwiseAnd", since: [18], allowed: intTypes) { _ in .bitAnd },
        arithmetic("BitwiseOr", since: [18], allowed: intTypes) { _ in .bitOr },
        arithmetic("BitwiseXor", since: [18], allowed: intTypes) { _ in .bitXor },
        logic("And", .and),
        logic("Or", .or),
        logic("Xor", .xor),
        comparison("Equal", since: [1, 7, 11, 13, 19], allowed: numericTypes.union([.bool, .string]), .equal),
        comparison("Less", since: [1, 7, 9, 13], allowed: numericTypes, .less),
        comparison("LessOrEqual", since: [12, 16], allowed: numericTypes, .lessOrEqual),
        comparison("Greater", since: [1, 7, 9, 13], allowed: numericTypes, .greater),
        comparison("GreaterOrEqual", since: [12, 16], allowed: numericTypes, .greaterOrEqual),
    ]

    /// PRelu: `x < 0 ? slope * x : x`, the slope broadcasting against X.
    static let prelu = arithmetic("PRelu", since: [1, 6, 7, 9, 16], allowed: floatTypes.union([.i32, .i64, .u32, .u64])) { _ in .prelu }
}

// MARK: - Pow and BitShift

extension ElementwiseOps {
    /// Pow's base and exponent may have different types (opset 12+); the result has the base's type.
    /// As in NumPy, a float power is computed in Double and converted back; an integer power of an
    /// integer is exact with wrapping.
    private struct PowKernel: Kernel {
        var exponent: Tensor
        var bc: Broadcast

        func floating<T: FloatElement>(_ base: [T]) throws -> TensorStorage {
            T.ewStorage(map2(base, doubles(exponent), bc) { T(ewDouble: pow($0.ewDouble, $1)) })
        }

        func integer<T: IntElement>(_ base: [T]) throws -> TensorStorage {
            if exponent.dtype.isInteger || exponent.dtype == .bool {
                return T.ewStorage(map2(base, exponent.int64s, bc) { integerPower($0, $1) })
            }
            return T.ewStorage(map2(base, doubles(exponent), bc) { truncatingInteger(pow(Double($0), $1)) })
        }
    }

    /// `base` to a non-negative integer power with wrapping; a negative power truncates 1/base^n
    /// toward zero like C (0 unless |base| is 1).
    static func integerPower<T: FixedWidthInteger>(_ base: T, _ exponent: Int64) -> T {
        if exponent < 0 {
            if base == 1 { return 1 }
            if T.isSigned && base == 0 &- 1 { return exponent & 1 == 0 ? 1 : base }
            return 0
        }
        var result: T = 1, b = base, e = exponent
        while e > 0 {
            if e & 1 == 1 { result = result &* b }
            b = b &* b
            e >>= 1
        }
        return result
    }

    static let power = OpDefinition("Pow", since: [1, 7, 12, 13, 15], infer: { ctx in
        try results(ctx, [inferBroadcast(ctx, operands: [0, 1], allowed: numericTypes, sameType: false)])
    }, evaluate: { ctx in
        let (base, exponent, bc) = try binaryOperands(ctx, allowed: numericTypes, sameType: false)
        try require(exponent.dtype, in: numericTypes, ctx)
        return [Tensor(shape: bc.shape, storage: try apply(PowKernel(exponent: exponent, bc: bc), to: base, ctx))]
    })

    private struct BitShiftKernel: Kernel {
        var left: Bool
        var b: Tensor
        var bc: Broadcast

        func integer<T: IntElement>(_ a: [T]) throws -> TensorStorage {
            let width = T(T.bitWidth)
            let minusOne: T = 0 &- 1
            // A shift by a negative amount or by the bit width or more fills the result entirely:
            // with zeros, or for a right shift of a negative value with ones (NumPy's result).
            let r: [T] = left
                ? map2(a, try values(b), bc) { x, s in s < 0 || s >= width ? 0 : x << s }
                : map2(a, try values(b), bc) { x, s in s < 0 || s >= width ? (x < 0 ? minusOne : 0) : x >> s }
            return T.ewStorage(r)
        }
    }

    static let bitShift = binary("BitShift", since: [11, 28], allowed: intTypes) { ctx, a, b, bc in
        let left: Bool
        switch try ctx.string("direction", default: "") {
        case "LEFT": left = true
        case "RIGHT": left = false
        case let other: throw ctx.error("direction must be LEFT or RIGHT, got '\(other)'")
        }
        return try apply(BitShiftKernel(left: left, b: b, bc: bc), to: a, ctx)
    }
}

// MARK: - Variadic ops

extension ElementwiseOps {
    /// Sum/Mean/Max/Min: a left fold of the binary operation over all operands, broadcasting as it goes
    /// (the same result as broadcasting all at once, since the operations are commutative).
    private static func variadic(_ name: String, since: [Int], allowed: Set<DType>, _ op: Arithmetic,
                                 mean: Bool = false) -> OpDefinition {
        OpDefinition(name, since: since, infer: { ctx in
            try results(ctx, [inferBroadcast(ctx, operands: Array(ctx.inputTypes.indices), allowed: allowed)])
        }, evaluate: { ctx in
            guard !ctx.inputs.isEmpty else { throw ctx.error("expects at least one operand") }
            var acc = try ctx.operand(0)
            try require(acc.dtype, in: allowed, ctx)
            for i in 1 ..< ctx.inputs.count {
                let t = try ctx.operand(i)
                _ = try commonType([acc.dtype, t.dtype], ctx)
                let bc = try broadcast([acc.shape, t.shape], ctx)
                acc = Tensor(shape: bc.shape, storage: try apply(ArithmeticKernel(op: op, b: t, bc: bc), to: acc, ctx))
            }
            if mean && ctx.inputs.count > 1 {
                let n = Tensor(doubles: [Double(ctx.inputs.count)], dtype: acc.dtype, shape: [])
                let bc = try broadcast([acc.shape, []], ctx)
                acc = Tensor(shape: acc.shape, storage: try apply(ArithmeticKernel(op: .div, b: n, bc: bc), to: acc, ctx))
            }
            return [acc]
        })
    }

    static let variadicOps: [OpDefinition] = [
        variadic("Sum", since: [1, 6, 8, 13], allowed: floatTypes, .add),
        variadic("Mean", since: [1, 6, 8, 13], allowed: floatTypes, .add, mean: true),
        variadic("Max", since: [1, 6, 8, 12, 13], allowed: numericTypes, .max),
        variadic("Min", since: [1, 6, 8, 12, 13], allowed: numericTypes, .min),
    ]
}

// MARK: - Where and Clip

extension ElementwiseOps {
    private struct SelectKernel: Kernel {
        var condition: [Bool]
        var y: Tensor
        var bc: Broadcast

        private func select<T: Element>(_ x: [T]) throws -> TensorStorage {
            T.ewStorage(map3(condition, x, try values(y), bc) { $0 ? $1 : $2 })
        }
        func floating<T: FloatElement>(_ x: [T]) throws -> TensorStorage { try select(x) }
        func integer<T: IntElement>(_ x: [T]) throws -> TensorStorage { try select(x) }
        func boolean(_ x: [Bool]) throws -> TensorStorage { try select(x) }
        func string(_ x: [String]) throws -> TensorStorage { try select(x) }
    }

    /// Where(condition, X, Y): three-way broadcasting selection.
    static let where_ = OpDefinition("Where", since: [9, 16], infer: { ctx in
        try require(try ctx.requiredInput(0).dtype, in: [.bool], ctx)
        let xy = try inferBroadcast(ctx, operands: [1, 2])
        let shape = try ShapeHelpers.broadcast([try ctx.requiredInput(0).shape, xy.shape], context: ctx)
        return try results(ctx, [TensorType(xy.dtype, shape)])
    }, evaluate: { ctx in
        let c = try ctx.operand(0), x = try ctx.operand(1), y = try ctx.operand(2)
        guard case .bool(let condition) = c.storage else { throw ctx.error("condition must be bool, got \(c.dtype)") }
        _ = try commonType([x.dtype, y.dtype], ctx)
        let bc = try broadcast([c.shape, x.shape, y.shape], ctx)
        return [Tensor(shape: bc.shape, storage: try apply(SelectKernel(condition: condition, y: y, bc: bc), to: x, ctx))]
    })

    private struct ClipKernel: Kernel {
        var low: Tensor?
        var high: Tensor?

        private func clamp<T: Element & Comparable>(_ x: [T]) throws -> TensorStorage {
            let lo: T? = try low.map { try values($0)[0] }
            let hi: T? = try high.map { try values($0)[0] }
            // max then min, as NumPy's clip: NaN stays NaN and low > high gives high.
            return T.ewStorage(x.map { v in
                var r = v
                if let lo, r < lo { r = lo }
                if let hi, r > hi { r = hi }
                return r
            })
        }
        func floating<T: FloatElement>(_ x: [T]) throws -> TensorStorage { try clamp(x) }
        func integer<T: IntElement>(_ x: [T]) throws -> TensorStorage { try clamp(x) }
    }

    /// Clip: bounds are the `min`/`max` attributes before opset 11 and optional scalar operands after.
    static let clip = OpDefinition("Clip", since: [1, 6, 11, 12, 13], infer: { ctx in
        let x = try ctx.requiredInput(0)
        try require(x.dtype, in: numericTypes, ctx)
        for i in [1, 2] {
            if let t = ctx.inputType(i), t.dtype != x.dtype {
                throw ctx.error("bound \(i) has type \(t.dtype), expected \(x.dtype)")
            }
        }
        return try results(ctx, [x])
    }, evaluate: { ctx in
        let x = try ctx.operand(0)
        try require(x.dtype, in: numericTypes, ctx)
        var bounds: [Tensor?] = []
        if ctx.opset < 11 {
            for name in ["min", "max"] {
                bounds.append(try ctx.float(name).map { Tensor(doubles: [Double($0)], dtype: x.dtype, shape: []) })
            }
        } else {
            for i in [1, 2] {
                let t = try ctx.optionalOperand(i)
                if let t, t.count != 1 || t.dtype != x.dtype {
                    throw ctx.error("bound \(i) must be a single \(x.dtype) value, got \(t.dtype)\(t.shape)")
                }
                bounds.append(t)
            }
        }
        return [Tensor(shape: x.shape, storage: try apply(ClipKernel(low: bounds[0], high: bounds[1]), to: x, ctx))]
    })
}
