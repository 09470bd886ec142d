#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import GLMCIR

/// Elementwise ops of the default ONNX domain. This file holds the unary math functions and
/// activations; ElementwiseBinary.swift the broadcasting binary, variadic and selection ops,
/// ElementwiseCast.swift Cast/CastLike, ElementwiseQuantize.swift the quantization ops, and
/// ElementwiseKernels.swift the shared kernels and broadcasting.
public enum ElementwiseOps {
    public static let all: [OpDefinition] =
        unaryMath.map(\.definition) + [isNaN, isInf, not]
        + binaryOps + variadicOps + [power, bitShift, prelu, where_, clip]
        + castOps + quantizeOps
}

// MARK: - Unary math and activations

extension ElementwiseOps {
    /// What a unary op does to integer elements.
    enum IntegerRule: Sendable {
        case abs, neg, sign, relu, bitwiseNot
        /// Through the op's Double function, truncated back toward zero (Erf before opset 13, Shrink).
        case viaDouble
    }

    /// A unary op whose result has its operand's type. Floating-point elements go through `function`
    /// (computed in Double, which is exact for every input type and at least as accurate as NumPy's
    /// float32 math); integer elements follow `integers`.
    struct UnaryMath: Sendable {
        var name: String
        var since: [Int]
        var allowed: Set<DType> = floatTypes
        var integers: IntegerRule? = nil
        /// Builds the scalar function from the node's attributes; nil when floats are not allowed.
        var function: (@Sendable (any NodeContext) throws -> @Sendable (Double) -> Double)?

        var definition: OpDefinition {
            let spec = self
            return OpDefinition(name, since: since, infer: { ctx in
                let x = try ctx.requiredInput(0)
                try require(x.dtype, in: spec.allowed, ctx)
                return try results(ctx, [x])
            }, evaluate: { ctx in
                let x = try ctx.operand(0)
                try require(x.dtype, in: spec.allowed, ctx)
                let kernel = UnaryKernel(function: try spec.function?(ctx), integers: spec.integers)
                return [Tensor(shape: x.shape, storage: try apply(kernel, to: x, ctx))]
            })
        }
    }

    struct UnaryKernel: Kernel {
        var function: ((Double) -> Double)?
        var integers: IntegerRule?

        func floating<T: FloatElement>(_ x: [T]) throws -> TensorStorage {
            guard let f = function else { throw UnsupportedElementType() }
            return T.ewStorage(x.map { T(ewDouble: f($0.ewDouble)) })
        }

        func integer<T: IntElement>(_ x: [T]) throws -> TensorStorage {
            guard let rule = integers else { throw UnsupportedElementType() }
            let minusOne: T = 0 &- 1
            switch rule {
            // Wrapping like NumPy: abs/neg of the most negative value is itself.
            case .abs: return T.ewStorage(T.isSigned ? x.map { $0 < 0 ? 0 &- $0 : $0 } : x)
            case .neg: return T.ewStorage(x.map { 0 &- $0 })
            case .sign: return T.ewStorage(x.map { $0 > 0 ? 1 : ($0 < 0 ? minusOne : 0) })
            case .relu: return T.ewStorage(x.map { $0 < 0 ? 0 : $0 })
            case .bitwiseNot: return T.ewStorage(x.map { ~$0 })
            case .viaDouble:
                guard let f = function else { throw UnsupportedElementType() }
                return T.ewStorage(x.map { truncatingInteger(f(Double($0))) })
            }
        }
    }

    /// Reads a FLOAT attribute as Double.
    private static func attribute(_ ctx: any NodeContext, _ name: String, _ value: Float) throws -> Double {
        Double(try ctx.float(name, default: value))
    }

    private static func softplus(_ x: Double) -> Double {
        // log(1 + e^x) without overflow for large x.
        x > 0 ? x + log1p(exp(-x)) : log1p(exp(x))
    }

    static let unaryMath: [UnaryMath] = [
        UnaryMath(name: "Abs", since: [1, 6, 13], allowed: numericTypes, integers: .abs) { _ in { Swift.abs($0) } },
        UnaryMath(name: "Neg", since: [1, 6, 13], allowed: signedNumericTypes, integers: .neg) { _ in { -$0 } },
        UnaryMath(name: "Sign", since: [9, 13], allowed: numericTypes, integers: .sign) { _ in { $0 > 0 ? 1 : ($0 < 0 ? -1 : $0) } },
        UnaryMath(name: "Reciprocal", since: [1, 6, 13]) { _ in { 1 / $0 } },
        UnaryMath(name: "Sqrt", since: [1, 6, 13]) { _ in { sqrt($0) } },
        UnaryMath(name: "Exp", since: [1, 6, 13]) { _ in { exp($0) } },
        UnaryMath(name: "Log", since: [1, 6, 13]) { _ in { log($0) } },
        UnaryMath(name: "Ceil", since: [1, 6, 13]) { _ in { $0.rounded(.up) } },
        UnaryMath(name: "Floor", since: [1, 6, 13]) { _ in { $0.rounded(.down) } },
        UnaryMath(name: "Round", since: [11, 22]) { _ in { $0.rounded(.toNearestOrEven) } },
        UnaryMath(name: "Erf", since: [9, 13], allowed: numericTypes, integers: .viaDouble) { _ in { erf($0) } },
        UnaryMath(name: "Sin", since: [7, 22]) { _ in { sin($0) } },
        UnaryMath(name: "Cos", since: [7, 22]) { _ in { cos($0) } },
        UnaryMath(name: "Tan", since: [7, 22]) { _ in { tan($0) } },
        UnaryMath(name: "Asin", since: [7, 22]) { _ in { asin($0) } },
        UnaryMath(name: "Acos", since: [7, 22]) { _ in { acos($0) } },
        UnaryMath(name: "Atan", since: [7, 22]) { _ in { atan($0) } },
        UnaryMath(name: "Sinh", since: [9, 22]) { _ in { sinh($0) } },
        UnaryMath(name: "Cosh", since: [9, 22]) { _ in { cosh($0) } },
        UnaryMath(name: "Tanh", since: [1, 6, 13]) { _ in { tanh($0) } },
        UnaryMath(name: "Asinh", since: [9, 22]) { _ in { asinh($0) } },
        UnaryMath(name: "Acosh", since: [9, 22]) { _ in { acosh($0) } },
        UnaryMath(name: "Atanh", since: [9, 22]) { _ in { atanh($0) } },
        UnaryMath(name: "BitwiseNot", since: [18], allowed: intTypes, integers: .bitwiseNot, function: nil),

        // Activations. NaN passes through the comparisons unchanged, as with NumPy's maximum/minimum.
        UnaryMath(name: "Relu", since: [1, 6, 13, 14], allowed: signedNumericTypes, integers: .relu) { _ in { $0 < 0 ? 0 : $0 } },
        UnaryMath(name: "LeakyRelu", since: [1, 6, 16]) { ctx in
            let alpha = try attribute(ctx, "alpha", 0.01)
            return { $0 < 0 ? alpha * $0 : $0 }
        },
        UnaryMath(name: "Elu", since: [1, 6, 22]) { ctx in
            let alpha = try attribute(ctx, "alpha", 1)
            return { $0 < 0 ? alpha * expm1($0) : $0 }
        },
        UnaryMath(name: "Selu", since: [1, 6, 22]) { ctx in
            let alpha = try attribute(ctx, "alpha", 1.67326319217681884765625)
            let gamma = try attribute(ctx, "gamma", 1.05070102214813232421875)
            return { $0 <= 0 ? gamma * (alpha * exp($0) - alpha) : gamma * $0 }
        },
        UnaryMath(name: "Celu", since: [12, 28]) { ctx in
            let alpha = try attribute(ctx, "alpha", 1)
            return { Swift.max(0, $0) + Swift.min(0, alpha * expm1($0 / alpha)) }
        },
        UnaryMath(name: "Sigmoid", since: [1, 6, 13]) { _ in { 1 / (1 + exp(-$0)) } },
        UnaryMath(name: "HardSigmoid", since: [1, 6, 22]) { ctx in
            let alpha = try attribute(ctx, "alpha", 0.2), beta = try attribute(ctx, "beta", 0.5)
            return { Swift.max(0, Swift.min(1, alpha * $0 + beta)) }
        },
        UnaryMath(name: "HardSwish", since: [14, 22]) { _ in { $0 * Swift.max(0, Swift.min(1, $0 / 6 + 0.5)) } },
        UnaryMath(name: "Softplus", since: [1, 22]) { _ in { softplus($0) } },
        UnaryMath(name: "Softsign", since: [1, 22]) { _ in { $0 / (1 + Swift.abs($0)) } },
        UnaryMath(name: "Mish", since: [18, 22]) { _ in { $0 * tanh(softplus($0)) } },
        UnaryMath(name: "Gelu", since: [20]) { ctx in
            switch try ctx.string("approximate", default: "none") {
            case "none": return { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot())) }
            case "tanh":
                let k = (2 / Double.pi).squareRoot()
                return { 0.5 * $0 * (1 + tanh(k * ($0 + 0.044715 * $0 * $0 * $0))) }
            case let other: throw ctx.error("unknown approximate '\(other)' (expected 'none' or 'tanh')")
            }
        },
        UnaryMath(name: "ThresholdedRelu", since: [10, 22]) { ctx in
            let alpha = try attribute(ctx, "alpha", 1)
            return { $0 > alpha ? $0 : 0 }
        },
        UnaryMath(name: "Shrink", since: [9], allowed: numericTypes, integers: .viaDouble) { ctx in
            let lambd = try attribute(ctx, "lambd", 0.5), bias = try attribute(ctx, "bias", 0)
            return { $0 < -lambd ? $0 + bias : ($0 > lambd ? $0 - bias : 0) }
        },
        UnaryMath(name: "Swish", since: [24]) { ctx in
            let alpha = try attribute(ctx, "alpha", 1)
            return { $0 / (1 + exp(-alpha * $0)) }
        },
    ]
}

// MARK: - Predicates and Not

extension ElementwiseOps {
    /// A test on floating-point elements giving a bool tensor of the same shape.
    private struct PredicateKernel: Kernel {
        var test: (Double) -> Bool
        func floating<T: FloatElement>(_ x: [T]) throws -> TensorStorage { .bool(x.map { test($0.ewDouble) }) }
    }

    private static func predicate(_ name: String, since: [Int],
                                  _ makeTest: @escaping @Sendable (EvalContext) throws -> (Double) -> Bool) -> OpDefinition {
        OpDefinition(name, since: since, infer: { ctx in
            let x = try ctx.requiredInput(0)
            try require(x.dtype, in: floatTypes, ctx)
            return try results(ctx, [TensorType(.bool, x.shape)])
        }, evaluate: { ctx in
            let x = try ctx.operand(0)
            try require(x.dtype, in: floatTypes, ctx)
            return [Tensor(shape: x.shape, storage: try apply(PredicateKernel(test: try makeTest(ctx)), to: x, ctx))]
        })
    }

    static let isNaN = predicate("IsNaN", since: [9, 13, 20]) { _ in { $0.isNaN } }

    static let isInf = predicate("IsInf", since: [10, 20]) { ctx in
        let positive = try ctx.int("detect_positive", default: 1) != 0
        let negative = try ctx.int("detect_negative", default: 1) != 0
        return { $0.isInfinite && ($0 > 0 ? positive : negative) }
    }

    static let not = OpDefinition("Not", since: [1], infer: { ctx in
        let x = try ctx.requiredInput(0)
        try require(x.dtype, in: [.bool], ctx)
        return try results(ctx, [x])
    }, evaluate: { ctx in
        let x = try ctx.operand(0)
        guard case .bool(let values) = x.storage else { throw ctx.unsupported("\(x.dtype) operands") }
        return [Tensor(shape: x.shape, storage: .bool(values.map { !$0 }))]
    })
}
