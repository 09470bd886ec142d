import GLMCIR

// Cast and CastLike between every pair of glmc's element types, following NumPy's `astype` (which the
// ONNX reference implementation uses): floats round to nearest even, floats to integers truncate toward
// zero (wrapping like a C cast on x86), integers wrap, anything nonzero (NaN too) is true, and numbers
// format/parse as NumPy's `str`/`float` do. The `saturate` and `round_mode` attributes only concern
// float8 types, which glmc does not have.

extension ElementwiseOps {
    static let castOps: [OpDefinition] = [cast, castLike]

    static let cast = OpDefinition("Cast", since: [1, 6, 9, 13, 19, 21, 23, 24, 25, 28], infer: { ctx in
        try results(ctx, [TensorType(try castTarget(ctx), try ctx.requiredInput(0).shape)])
    }, evaluate: { ctx in
        let x = try ctx.operand(0)
        return [Tensor(shape: x.shape, storage: try convert(x, to: try castTarget(ctx), ctx))]
    })

    /// CastLike(input, target_type): Cast to the element type of the second operand.
    static let castLike = OpDefinition("CastLike", since: [15, 19, 21, 23, 24, 25], infer: { ctx in
        try results(ctx, [TensorType(try ctx.requiredInput(1).dtype, try ctx.requiredInput(0).shape)])
    }, evaluate: { ctx in
        let x = try ctx.operand(0), like = try ctx.requiredInput(1)
        return [Tensor(shape: x.shape, storage: try convert(x, to: like.dtype, ctx))]
    })

    /// The `to` attribute: a data-type code, or before opset 6 a type name such as "FLOAT".
    private static func castTarget(_ ctx: some NodeContext) throws -> DType {
        if ctx.opset < 6, case .string(let name)? = ctx.attributes["to"] {
            guard let t = DType.allCases.first(where: { DType.onnxName(ofCode: $0.onnxCode) == name.uppercased() }) else {
                throw ctx.unsupported("Cast to \(name)")
            }
            return t
        }
        guard let to = try ctx.int("to") else { throw ctx.error("missing attribute 'to'") }
        let code = Int32(truncatingIfNeeded: to)
        guard let t = DType(onnxCode: code) else { throw ctx.unsupported("Cast to \(DType.onnxName(ofCode: code))") }
        return t
    }

    /// The elements of `x` converted to `dtype`.
    static func convert(_ x: Tensor, to dtype: DType, _ ctx: some NodeContext) throws -> TensorStorage {
        if x.dtype == dtype { return x.storage }
        if case .string(let strings) = x.storage { return try parse(strings, to: dtype, ctx) }
        switch dtype {
        case .string:
            switch x.storage {
            case .bool(let a): return .string(a.map { $0 ? "True" : "False" })
            case .u64(let a): return .string(a.map { String($0) })
            default:
                if x.dtype.isFloatingPoint { return .string(doubles(x).map { formatFloat($0, x.dtype) }) }
                return .string(x.int64s.map { String($0) })
            }
        case .f64: return .f64(doubles(x))
        case .f32:
            // Directly from 64-bit integers, which Double would round first; half types exactly.
            switch x.storage {
            case .i64(let a): return .f32(a.map { Float($0) })
            case .u64(let a): return .f32(a.map { Float($0) })
            case .f16(let a): return .f32(a.map(halfToFloat))
            case .bf16(let a): return .f32(a.map(bfloat16ToFloat))
            default: return .f32(doubles(x).map { Float($0) })
            }
        case .f16:
            if case .f32(let a) = x.storage { return .f16(a.map(floatToHalf)) }
            return .f16(doubles(x).map { floatToHalf(floatRoundedToOdd($0)) })
        case .bf16:
            if case .f32(let a) = x.storage { return .bf16(a.map(floatToBFloat16)) }
            return .bf16(doubles(x).map { floatToBFloat16(floatRoundedToOdd($0)) })
        case .bool: return .bool(doubles(x).map { $0 != 0 })
        case .i64: return integers(x, as: Int64.self)
        case .i32: return integers(x, as: Int32.self)
        case .i16: return integers(x, as: Int16.self)
        case .i8: return integers(x, as: Int8.self)
        case .u64: return integers(x, as: UInt64.self)
        case .u32: return integers(x, as: UInt32.self)
        case .u16: return integers(x, as: UInt16.self)
        case .u8: return integers(x, as: UInt8.self)
        }
    }

    private static func integers<T: IntElement>(_ x: Tensor, as: T.Type) -> TensorStorage {
        if x.dtype.isFloatingPoint { return T.ewStorage(doubles(x).map { truncatingInteger($0) }) }
        if case .u64(let a) = x.storage { return T.ewStorage(a.map { T(truncatingIfNeeded: $0) }) }
        return T.ewStorage(x.int64s.map { T(truncatingIfNeeded: $0) })
    }

    /// `v` rounded to Float with round-to-odd, so that rounding the result again to a narrower type
    /// (half, bfloat16) gives the correctly rounded value of `v` (no double-rounding error).
    static func floatRoundedToOdd(_ v: Double) -> Float {
        var f = Float(v)
        guard f.isFinite, Double(f) != v else { return f }
        if Swift.abs(Double(f)) > Swift.abs(v) { f = Float(bitPattern: f.bitPattern - 1) } // toward zero
        return Float(bitPattern: f.bitPattern | 1)
    }

    // MARK: Strings

    /// NumPy's `str` of a float of type `dtype`: the shortest digits that round-trip in that type,
    /// positional for 1e-4 ≤ |v| < 1e16 (f64), 1e6 (f32) or 1e3 (16-bit types), scientific otherwise:
    /// "0.1", "3.0", "1e-05", "1.2345679e+08", "inf", "nan".
    static func formatFloat(_ v: Double, _ dtype: DType) -> String {
        if v.isNaN { return "nan" }
        if v.isInfinite { return v < 0 ? "-inf" : "inf" }
        let sign = v.sign == .minus ? "-" : ""
        let magnitude = Swift.abs(v)
        if magnitude == 0 { return sign + "0.0" }
        let (digits, exponent) = shortestDigits(magnitude, dtype)
        let upper: Double = dtype == .f64 ? 1e16 : (dtype == .f32 ? 1e6 : 1e3)
        if magnitude >= 1e-4 && magnitude < upper {
            if exponent < 0 {
                return sign + "0." + String(repeating: "0", count: -exponent - 1) + digits
            }
            let intCount = exponent + 1
            if digits.count <= intCount {
                return sign + digits + String(repeating: "0", count: intCount - digits.count) + ".0"
            }
            return sign + digits.prefix(intCount) + "." + digits.dropFirst(intCount)
        }
        let mantissa = digits.count > 1 ? digits.prefix(1) + "." + digits.dropFirst() : digits
        let e = Swift.abs(exponent)
        return sign + mantissa + "e" + (exponent < 0 ? "-" : "+") + (e < 10 ? "0" : "") + String(e)
    }

    /// Significant digits (no trailing zeros) and decimal exponent of the first digit of the shortest
    /// decimal that reads back as the same `dtype` value as the positive, finite `v`.
    private static func shortestDigits(_ v: Double, _ dtype: DType) -> (String, Int) {
        switch dtype {
        case .f64: return digitsOf(v.description)
        case .f32: return digitsOf(Float(v).description)
        default:
            // 16-bit types: the first precision whose rounding reads back as the same value.
            let same: (Double) -> Bool = dtype == .bf16
                ? { floatToBFloat16(Float($0)) == floatToBFloat16(Float(v)) }
                : { floatToHalf(Float($0)) == floatToHalf(Float(v)) }
            let exponent = digitsOf(v.description).1
            for precision in 1 ... 8 {
                let shift = precision - 1 - exponent
                let scaled = shift >= 0 ? v * pow10(shift) : v / pow10(-shift)
                let m = scaled.rounded(.toNearestOrEven)
                guard let candidate = Double("\(Int(m))e\(-shift)"), same(candidate) else { continue }
                return digitsOf("\(Int(m))e\(-shift)")
            }
            return digitsOf(Float(v).description)
        }
    }

    private static func pow10(_ n: Int) -> Double {
        var r = 1.0
        for _ in 0 ..< n { r *= 10 }
        return r
    }

    /// Digits and first-digit exponent of a Swift/NumPy float text like "123.45", "1e-05", "1.5e+20".
    private static func digitsOf(_ text: String) -> (String, Int) {
        var mantissa = Substring(text)
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            mantissa = text[..<e]
            exponent = Int(text[text.index(after: e)...]) ?? 0
        }
        let parts = mantissa.split(separator: ".", omittingEmptySubsequences: false)
        let whole = parts[0], fraction = parts.count > 1 ? parts[1] : ""
        var digits = Array(whole + fraction)
        exponent += whole.count - 1
        while digits.first == "0" { digits.removeFirst(); exponent -= 1 }
        while digits.last == "0" { digits.removeLast() }
        return (digits.isEmpty ? "0" : String(digits), exponent)
    }

    /// Strings to `dtype`, as NumPy parses them: surrounding whitespace ignored, "inf"/"INF"/"-inf"/
    /// "nan" in any case; integers parse exactly, and text like "2.5" truncates for integer targets.
    /// For bool, "true"/"false" (any case) and numbers (nonzero is true) are accepted.
    private static func parse(_ strings: [String], to dtype: DType, _ ctx: some NodeContext) throws -> TensorStorage {
        let texts = strings.map { s -> Substring in
            let start = s.drop(while: \.isWhitespace)
            return start.dropLast(start.reversed().prefix(while: \.isWhitespace).count)
        }
        func number(_ t: Substring) throws -> Double {
            if let v = Double(t) { return v }
            throw ctx.error("cannot convert string '\(t)' to \(dtype)")
        }
        switch dtype {
        case .string: return .string(strings)
        case .f32:
            return .f32(try texts.map { t in
                if let v = Float(t) { return v }
                throw ctx.error("cannot convert string '\(t)' to \(dtype)")
            })
        case .bool:
            return .bool(try texts.map { t in
                switch t.lowercased() {
                case "true": return true
                case "false": return false
                default: return try number(t) != 0
                }
            })
        default:
            if dtype.isInteger {
                let exact = texts.compactMap { Int64($0) }
                if exact.count == texts.count { return try convert(Tensor(shape: [exact.count], storage: .i64(exact)), to: dtype, ctx) }
            }
            let values = try texts.map(number)
            return try convert(Tensor(shape: [values.count], storage: .f64(values)), to: dtype, ctx)
        }
    }
}
