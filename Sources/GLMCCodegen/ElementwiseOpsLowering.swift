import GLMCIR
import GLMCOps

// Each ONNX elementwise op as a kernel-IR expression, following its definition in
// `GLMCOps/Elementwise*.swift` (the single source of truth): the same comparisons in the same order,
// so that NaN, signed zeros and integer edge cases come out as the interpreter's. Where the
// interpreter computes a float function in Double, the kernel computes in the value's own type
// (f32 math functions, within the conformance tolerance) except for Pow, which is computed in f64
// like the interpreter's.

extension ElementwiseLowering.Builder {
    /// `x` as a constant of the (computed) type `t`.
    func c(_ x: Double, _ t: ScalarType) -> Expr { .constant(x, t) }

    func requireFloat(_ inst: Instruction, _ x: Expr) throws {
        guard type(of: x).isFloat else { throw ElementwiseLowering.unsupported("\(inst.op) on \(type(of: x))") }
    }

    func requireSameType(_ inst: Instruction, _ operands: [Expr]) throws {
        let types = Set(operands.map { type(of: $0) })
        guard types.count == 1 else {
            throw ElementwiseLowering.unsupported("\(inst.op) on operands of types \(types.map(\.rawValue).sorted())")
        }
    }

    /// All present operands, at least `minimum`.
    mutating func operands(_ inst: Instruction, minimum: Int) throws -> [Expr] {
        var out: [Expr] = []
        for k in inst.operands.indices { if let e = try operand(inst, k) { out.append(e) } }
        guard out.count >= minimum else { throw ElementwiseLowering.unsupported("\(inst.op) with \(out.count) operands") }
        return out
    }

    func integerAttribute(_ inst: Instruction, _ name: String, _ value: Int) -> Int {
        if case .int(let x)? = inst.attributes[name] { return x }
        return value
    }

    /// `f` of a float operand; of an integer one computed in f64 and truncated back (Erf before
    /// opset 13 and Shrink accept integers: the interpreter's `viaDouble`).
    mutating func viaDouble(_ inst: Instruction, _ x: Expr, _ f: (Self, Expr, ScalarType) -> Expr) throws -> Expr {
        let t = type(of: x)
        if t.isFloat { return f(self, x, t) }
        guard t.isInteger else { throw ElementwiseLowering.unsupported("\(inst.op) on \(t)") }
        let wideX = bind(.cast(x, to: .f64))
        let wide = f(self, wideX, .f64)
        return .cast(bind(wide), to: t)
    }

    static let mathFunctions: [String: UnaryOp] = [
        "Exp": .exp, "Log": .log, "Sqrt": .sqrt, "Sin": .sin, "Cos": .cos, "Tan": .tan, "Asin": .asin,
        "Acos": .acos, "Atan": .atan, "Sinh": .sinh, "Cosh": .cosh, "Tanh": .tanh, "Asinh": .asinh,
        "Acosh": .acosh, "Atanh": .atanh, "Ceil": .ceil, "Floor": .floor, "Round": .round,
    ]
    static let comparisons: [String: CompareOp] = [
        "Less": .lt, "LessOrEqual": .le, "Greater": .gt, "GreaterOrEqual": .ge, "Equal": .eq,
    ]
    static let arithmetic: [String: BinaryOp] = [
        "Add": .add, "Sub": .sub, "Mul": .mul, "Div": .div,
        "BitwiseAnd": .and, "BitwiseOr": .or, "BitwiseXor": .xor, "And": .and, "Or": .or, "Xor": .xor,
    ]

    /// The expression computing `inst`'s result.
    mutating func expression(_ inst: Instruction) throws -> Expr {
        let op = inst.op.type
        func unsupported(_ why: String) -> GLMCError { ElementwiseLowering.unsupported("\(inst.op) \(why)") }

        if let f = Self.mathFunctions[op] {
            let x = try required(inst, 0)
            try requireFloat(inst, x)
            return .unary(f, x)
        }
        if let compare = Self.comparisons[op] {
            let a = try required(inst, 0), b = try required(inst, 1)
            try requireSameType(inst, [a, b])
            return .compare(compare, a, b)
        }
        if let binary = Self.arithmetic[op] {
            let a = try required(inst, 0), b = try required(inst, 1)
            try requireSameType(inst, [a, b])
            let t = type(of: a)
            let logical = ["And", "Or", "Xor"].contains(op), bitwise = op.hasPrefix("Bitwise")
            guard logical ? t == .bool : bitwise ? t.isInteger : t.isFloat || t.isInteger else { throw unsupported("on \(t)") }
            return .binary(binary, a, b)
        }

        switch op {
        case "Identity":
            return try required(inst, 0)
        case "Neg", "Abs":
            let x = try required(inst, 0)
            guard type(of: x) != .bool else { throw unsupported("on bool") }
            return .unary(op == "Neg" ? .neg : .abs, x)
        case "Sign":
            let x = try required(inst, 0), t = type(of: x)
            guard t != .bool else { throw unsupported("on bool") }
            // x > 0 ? 1 : (x < 0 ? -1 : x): NaN and -0 stay, an integer 0 is x.
            let negative: Expr = t.isUnsignedInteger ? x : .select(.compare(.lt, x, c(0, t)), c(-1, t), x)
            return .select(.compare(.gt, x, c(0, t)), c(1, t), negative)
        case "Reciprocal":
            let x = try required(inst, 0)
            try requireFloat(inst, x)
            return .binary(.div, c(1, type(of: x)), x)
        case "Erf":
            let x = try required(inst, 0)
            return try viaDouble(inst, x) { _, x, _ in .unary(.erf, x) }
        case "Not":
            let x = try required(inst, 0)
            guard type(of: x) == .bool else { throw unsupported("on \(type(of: x))") }
            return .unary(.not, x)
        case "BitwiseNot":
            let x = try required(inst, 0)
            guard type(of: x).isInteger else { throw unsupported("on \(type(of: x))") }
            return .unary(.bitNot, x)
        case "IsNaN", "IsInf":
            let x = try required(inst, 0), t = type(of: x)
            try requireFloat(inst, x)
            if op == "IsNaN" { return .compare(.ne, x, x) }
            let positive: Expr = .compare(.eq, x, c(.infinity, t)), negative: Expr = .compare(.eq, x, c(-.infinity, t))
            switch (integerAttribute(inst, "detect_positive", 1) != 0, integerAttribute(inst, "detect_negative", 1) != 0) {
            case (true, true): return .binary(.or, positive, negative)
            case (true, false): return positive
            case (false, true): return negative
            case (false, false): return c(0, .bool)
            }
        case "BitShift":
            let a = try required(inst, 0), b = try required(inst, 1)
            try requireSameType(inst, [a, b])
            guard type(of: a).isInteger else { throw unsupported("on \(type(of: a))") }
            guard case .string(let direction)? = inst.attributes["direction"], ["LEFT", "RIGHT"].contains(direction) else {
                throw unsupported("without direction LEFT or RIGHT")
            }
            return .binary(direction == "LEFT" ? .shl : .shr, a, b)
        case "Mod":
            let a = try required(inst, 0), b = try required(inst, 1)
            try requireSameType(inst, [a, b])
            let t = type(of: a)
            guard t.isFloat || t.isInteger else { throw unsupported("on \(t)") }
            let r = bind(.binary(.rem, a, b))
            if integerAttribute(inst, "fmod", 0) != 0 || t.isUnsignedInteger { return r }
            // Python's remainder: the divisor's sign.
            let differ: Expr = .compare(.ne, .compare(.lt, r, c(0, t)), .compare(.lt, b, c(0, t)))
            if t.isInteger {
                return .select(.binary(.and, .compare(.ne, r, c(0, t)), differ), .binary(.add, r, b), r)
            }
            let signedZero: Expr = .select(.compare(.lt, b, c(0, t)), c(-0.0, t), c(0, t))
            return .select(.compare(.eq, b, c(0, t)), r,
                           .select(.compare(.ne, r, c(0, t)), .select(differ, .binary(.add, r, b), r), signedZero))
        case "Pow":
            let base = try required(inst, 0), exponent = try required(inst, 1)
            let t = type(of: base), e = type(of: exponent)
            guard t.isFloat || t.isInteger, e.isFloat || e.isInteger || e == .bool else { throw unsupported("on \(t) and \(e)") }
            if t.isInteger && !e.isFloat { return .binary(.pow, base, exponent) }
            // In f64, as the interpreter; integer bases truncate back.
            let wide: Expr = .binary(.pow, t == .f64 ? base : .cast(base, to: .f64), e == .f64 ? exponent : .cast(exponent, to: .f64))
            return t == .f64 ? wide : .cast(bind(wide), to: t)
        case "PRelu":
            let x = try required(inst, 0), slope = try required(inst, 1)
            try requireSameType(inst, [x, slope])
            let t = type(of: x)
            guard t.isFloat || t.isInteger else { throw unsupported("on \(t)") }
            return .select(.compare(.lt, x, c(0, t)), .binary(.mul, x, slope), x)
        case "Sum", "Mean", "Max", "Min":
            let xs = try operands(inst, minimum: 1)
            try requireSameType(inst, xs)
            let t = type(of: xs[0])
            let combine: BinaryOp = op == "Max" ? .max : op == "Min" ? .min : .add
            guard t.isFloat || (t.isInteger && (op == "Max" || op == "Min")) else { throw unsupported("on \(t)") }
            // A left fold, rounding each partial result of a half type as the interpreter does.
            let resultType = try scalarType(inst.results[0])
            var acc = xs[0]
            for x in xs.dropFirst() { acc = roundedIfHalf(.binary(combine, acc, x), resultType) }
            if op == "Mean" && xs.count > 1 { acc = .binary(.div, acc, c(Double(xs.count), t)) }
            return acc
        case "Where":
            let condition = try required(inst, 0), a = try required(inst, 1), b = try required(inst, 2)
            guard type(of: condition) == .bool else { throw unsupported("with a \(type(of: condition)) condition") }
            try requireSameType(inst, [a, b])
            return .select(condition, a, b)
        case "Clip":
            let x = try required(inst, 0), t = type(of: x)
            guard t.isFloat || t.isInteger else { throw unsupported("on \(t)") }
            var low: Expr?, high: Expr?
            if inst.opset < 11 {
                if inst.attributes["min"] != nil { low = c(Double(float(inst, "min", 0)), t) }
                if inst.attributes["max"] != nil { high = c(Double(float(inst, "max", 0)), t) }
            } else {
                low = try operand(inst, 1)
                high = try operand(inst, 2)
                try requireSameType(inst, [x] + [low, high].compactMap { $0 })
            }
            // As the interpreter (NumPy): below low gives low, then above high gives high; NaN stays.
            var r = x
            if let low { r = bind(.select(.compare(.lt, r, low), low, r)) }
            if let high { r = .select(.compare(.gt, r, high), high, r) }
            return r
        case "Cast", "CastLike":
            let x = try required(inst, 0)
            let target = function.type(of: inst.results[0]).dtype
            guard let to = ElementwiseLowering.scalarType(target), let from = inst.operands[0].flatMap({ ElementwiseLowering.scalarType(function.type(of: $0).dtype) }) else {
                throw unsupported("to \(target)")
            }
            // Halves are computed as f32 already: widening them is no conversion.
            return from == to || (to == .f32 && from.computed == .f32) ? x : .cast(x, to: to)
        default:
            return try activation(inst)
        }
    }

    /// The float activations.
    mutating func activation(_ inst: Instruction) throws -> Expr {
        let op = inst.op.type
        let raw = try required(inst, 0)
        let t = type(of: raw)
        if op == "Relu" {
            guard t.isFloat || t.isSignedInteger else { throw ElementwiseLowering.unsupported("\(inst.op) on \(t)") }
            return .select(.compare(.lt, raw, c(0, t)), c(0, t), raw)
        }
        if op == "Shrink" {
            let lambd = Double(float(inst, "lambd", 0.5)), bias = Double(float(inst, "bias", 0))
            return try viaDouble(inst, raw) { b, x, t in
                .select(.compare(.lt, x, b.c(-lambd, t)), .binary(.add, x, b.c(bias, t)),
                        .select(.compare(.gt, x, b.c(lambd, t)), .binary(.sub, x, b.c(bias, t)), b.c(0, t)))
            }
        }
        try requireFloat(inst, raw)
        let x = raw
        func k(_ v: Double) -> Expr { c(v, t) }
        func attribute(_ name: String, _ value: Float) -> Expr { k(Double(float(inst, name, value))) }
        func mul(_ a: Expr, _ b: Expr) -> Expr { .binary(.mul, a, b) }
        func add(_ a: Expr, _ b: Expr) -> Expr { .binary(.add, a, b) }
        func div(_ a: Expr, _ b: Expr) -> Expr { .binary(.div, a, b) }
        // Swift's max(0, v) and min(1, v), which the interpreter uses.
        func max0(_ v: Expr) -> Expr { .select(.compare(.ge, v, k(0)), v, k(0)) }
        func min0(_ v: Expr) -> Expr { .select(.compare(.lt, v, k(0)), v, k(0)) }
        func min1(_ v: Expr) -> Expr { .select(.compare(.lt, v, k(1)), v, k(1)) }
        // log(1 + e^x) without overflow for large x.
        func softplus(_ x: Expr) -> Expr {
            .select(.compare(.gt, x, k(0)), add(x, .unary(.log1p, .unary(.exp, .unary(.neg, x)))), .unary(.log1p, .unary(.exp, x)))
        }
        switch op {
        case "LeakyRelu":
            return .select(.compare(.lt, x, k(0)), mul(attribute("alpha", 0.01), x), x)
        case "Elu":
            return .select(.compare(.lt, x, k(0)), mul(attribute("alpha", 1), .unary(.expm1, x)), x)
        case "Selu":
            let alpha = attribute("alpha", 1.67326319217681884765625), gamma = attribute("gamma", 1.05070102214813232421875)
            return .select(.compare(.le, x, k(0)), mul(gamma, .binary(.sub, mul(alpha, .unary(.exp, x)), alpha)), mul(gamma, x))
        case "Celu":
            let alpha = attribute("alpha", 1)
            return add(max0(x), min0(mul(alpha, .unary(.expm1, div(x, alpha)))))
        case "Sigmoid":
            return div(k(1), add(k(1), .unary(.exp, .unary(.neg, x))))
        case "HardSigmoid":
            let v = bind(add(mul(attribute("alpha", 0.2), x), attribute("beta", 0.5)))
            return max0(bind(min1(v)))
        case "HardSwish":
            let v = bind(add(div(x, k(6)), k(0.5)))
            return mul(x, max0(bind(min1(v))))
        case "Softplus":
            return softplus(x)
        case "Softsign":
            return div(x, add(k(1), .unary(.abs, x)))
        case "Mish":
            return mul(x, .unary(.tanh, bind(softplus(x))))
        case "Swish":
            return div(x, add(k(1), .unary(.exp, mul(k(-Double(float(inst, "alpha", 1))), x))))
        case "ThresholdedRelu":
            return .select(.compare(.gt, x, attribute("alpha", 1)), x, k(0))
        case "Gelu":
            var approximate = "none"
            if case .string(let s)? = inst.attributes["approximate"] { approximate = s }
            let inner: Expr
            switch approximate {
            case "none":
                inner = .unary(.erf, div(x, k(2.0.squareRoot())))
            case "tanh":
                let cube = mul(mul(mul(k(0.044715), x), x), x)
                inner = .unary(.tanh, mul(k((2 / Double.pi).squareRoot()), add(x, cube)))
            default:
                throw ElementwiseLowering.unsupported("Gelu with approximate = \"\(approximate)\"")
            }
            return mul(mul(k(0.5), x), add(k(1), inner))
        default:
            throw ElementwiseLowering.unsupported(op)
        }
    }
}
