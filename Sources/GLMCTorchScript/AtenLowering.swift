import Foundation
import GLMCIR
import GLMCOps

/// The arguments of one aten/prim call: positional, plus keywords (serialized code passes some
/// by name, e.g. `torch.gelu(x, approximate="none")`; IR text passes everything by position).
struct CallArguments {
    var positional: [TorchValue]
    var keywords: [String: TorchValue] = [:]

    /// Argument `index`, or the keyword `name`; nil when absent.
    func value(_ index: Int, _ name: String) -> TorchValue? {
        if index < positional.count { return positional[index] }
        return keywords[name]
    }
}

/// The one aten → IR mapping (Docs/TorchScript.md lists it). Each case lowers one aten or prim op
/// onto ONNX-domain ops of glmc's op set; values known at convert time (sizes, flags, integer
/// arithmetic on them) are computed here and never reach the IR.
struct AtenLowering {
    let b: GraphBuilder
    let op: String
    let args: CallArguments

    func error(_ message: String) -> GLMCError { b.error("\(op): \(message)") }

    // MARK: Argument accessors

    func value(_ i: Int, _ name: String) throws -> TorchValue {
        guard let v = args.value(i, name) else { throw error("missing argument \(i) ('\(name)')") }
        return v
    }

    func optional(_ i: Int, _ name: String) -> TorchValue? {
        guard let v = args.value(i, name) else { return nil }
        if case .none = v { return nil }
        return v
    }

    func tensor(_ i: Int, _ name: String) throws -> ValueID {
        let v = try value(i, name)
        guard case .tensor(let id) = v else { throw error("argument '\(name)' is \(v.kindName), expected a Tensor") }
        return id
    }

    func optionalTensor(_ i: Int, _ name: String) throws -> ValueID? {
        guard let v = optional(i, name) else { return nil }
        guard case .tensor(let id) = v else { throw error("argument '\(name)' is \(v.kindName), expected a Tensor or None") }
        return id
    }

    /// Argument `i` converted by `convert`; when it is absent or None, `d`, else an error.
    func required<T>(_ i: Int, _ name: String, default d: T?, _ convert: (TorchValue) throws -> T) throws -> T {
        guard let v = optional(i, name) else {
            if let d { return d }
            throw error("missing argument \(i) ('\(name)')")
        }
        return try convert(v)
    }

    func int(_ i: Int, _ name: String, default d: Int? = nil) throws -> Int {
        try required(i, name, default: d) { try toInt($0, name) }
    }

    func toInt(_ v: TorchValue, _ name: String) throws -> Int {
        switch v {
        case .int(let x): return x
        case .bool(let x): return x ? 1 : 0
        case .tensor(let id):
            if let c = b.constants[id], c.elementCount == 1, let x = c.integers()?.first ?? scalarValue(c).flatMap({ Int(exactly: $0.rounded(.towardZero)) }) {
                return x
            }
            throw error("argument '\(name)' is a tensor computed at run time, needed as an integer at convert time (data-dependent)")
        default: throw error("argument '\(name)' is \(v.kindName), expected an int")
        }
    }

    func ints(_ i: Int, _ name: String, default d: [Int]? = nil) throws -> [Int] {
        try required(i, name, default: d) { v in
            if let items = v.items { return try items.map { try toInt($0, name) } }
            return [try toInt(v, name)]
        }
    }

    func double(_ i: Int, _ name: String, default d: Double? = nil) throws -> Double {
        try required(i, name, default: d) { try toDouble($0, name) }
    }

    func toDouble(_ v: TorchValue, _ name: String) throws -> Double {
        switch v {
        case .int(let x): return Double(x)
        case .float(let x): return x
        case .bool(let x): return x ? 1 : 0
        case .tensor(let id):
            if let c = b.constants[id], c.elementCount == 1, let x = scalarValue(c) { return x }
            throw error("argument '\(name)' is a tensor computed at run time, needed as a number at convert time (data-dependent)")
        default: throw error("argument '\(name)' is \(v.kindName), expected a number")
        }
    }

    func bool(_ i: Int, _ name: String, default d: Bool) throws -> Bool {
        guard let v = optional(i, name) else { return d }
        return try toInt(v, name) != 0
    }

    func string(_ i: Int, _ name: String, default d: String) throws -> String {
        guard let v = optional(i, name) else { return d }
        guard case .string(let s) = v else { throw error("argument '\(name)' is \(v.kindName), expected a str") }
        return s
    }

    func dtypeArgument(_ i: Int, _ name: String) throws -> DType? {
        guard let v = optional(i, name) else { return nil }
        let code = try toInt(v, name)
        guard let d = TorchDType.dtype(code: code) else { throw error("unsupported: dtype code \(code)") }
        return d
    }

    func tensors(_ i: Int, _ name: String) throws -> [ValueID] {
        let v = try value(i, name)
        guard let items = v.items else { throw error("argument '\(name)' is \(v.kindName), expected a list of tensors") }
        return try items.map {
            guard case .tensor(let id) = $0 else { throw error("argument '\(name)' holds a \($0.kindName), expected tensors") }
            return id
        }
    }

    func normalized(_ dim: Int, rank: Int) throws -> Int {
        let d = dim < 0 ? dim + rank : dim
        guard d >= 0, d < max(rank, 1) else { throw error("dimension \(dim) is out of range for rank \(rank)") }
        return d
    }

    // MARK: Numbers and promotion

    /// A tensor for a value that may be a number; numbers take `dtype`.
    func asTensor(_ v: TorchValue, dtype: DType) throws -> ValueID {
        switch v {
        case .tensor(let id): return id
        case .int(let x): return try b.scalar(Double(x), dtype)
        case .float(let x): return try b.scalar(x, dtype)
        case .bool(let x): return try b.scalar(x ? 1 : 0, dtype)
        default: throw error("expected a Tensor or a number, got \(v.kindName)")
        }
    }

    /// Both operands as tensors of one element type, following torch's promotion: a float anywhere
    /// makes the result float; numbers take the tensor's type when it is wide enough.
    func promoted(_ x: TorchValue, _ y: TorchValue) throws -> (ValueID, ValueID) {
        func dtypeOf(_ v: TorchValue) -> DType? { if case .tensor(let id) = v { return b.type(of: id).dtype } else { return nil } }
        func isFloatNumber(_ v: TorchValue) -> Bool { if case .float = v { return true } else { return false } }
        var target: DType
        switch (dtypeOf(x), dtypeOf(y)) {
        case let (a?, c?):
            // A 0-d tensor (a traced Python number) does not widen a tensor of its own category.
            let scalarX = (try? b.rank(of: asTensor(x, dtype: a))) == 0, scalarY = (try? b.rank(of: asTensor(y, dtype: c))) == 0
            if a == c { target = a }
            else if scalarX != scalarY, a.isFloatingPoint == c.isFloatingPoint, a != .bool, c != .bool { target = scalarX ? c : a }
            else if a.isFloatingPoint != c.isFloatingPoint { target = a.isFloatingPoint ? a : c }
            else if a == .bool { target = c } else if c == .bool { target = a }
            else { target = a.byteSize >= c.byteSize ? a : c }
        case let (a?, nil): target = a.isFloatingPoint || !isFloatNumber(y) ? a : .f32
        case let (nil, c?): target = c.isFloatingPoint || !isFloatNumber(x) ? c : .f32
        default: throw error("expected at least one tensor operand")
        }
        if target == .bool, case .tensor = x, case .tensor = y {} else if target == .bool { target = .i64 }
        return (try b.cast(asTensor(x, dtype: target), to: target), try b.cast(asTensor(y, dtype: target), to: target))
    }

    func binary(_ onnx: String, _ x: TorchValue, _ y: TorchValue) throws -> TorchValue {
        let (p, q) = try promoted(x, y)
        return .tensor(try b.emit1(onnx, [p, q]))
    }

    func isNumber(_ v: TorchValue) -> Bool {
        switch v {
        case .int, .float, .bool: return true
        default: return false
        }
    }

    /// Integer and float arithmetic on numbers known at convert time (sizes and their products).
    func numeric(_ x: TorchValue, _ y: TorchValue, int: (Int, Int) -> Int?, float: (Double, Double) -> Double) throws -> TorchValue {
        if case .int(let a) = x, case .int(let c) = y {
            guard let r = int(a, c) else { throw error("integer arithmetic on \(a) and \(c) is undefined") }
            return .int(r)
        }
        return .float(float(try toDouble(x, "self"), try toDouble(y, "other")))
    }

    // MARK: The table

    /// Lowers the call; nil when the op is not in the table.
    func lower() throws -> [TorchValue]? {
        let name = op.hasSuffix("_") && !op.hasSuffix("__") ? String(op.dropLast()) : op  // in-place forms
        switch name {
        // prim: values known at convert time
        case "prim::ListConstruct": return [.list(args.positional)]
        case "prim::TupleConstruct": return [.tuple(args.positional)]
        case "prim::ListUnpack", "prim::TupleUnpack":
            guard let items = try value(0, "input").items else { throw error("unpacks a \(try value(0, "input").kindName)") }
            return items
        case "prim::TupleIndex", "aten::__getitem__":
            guard let items = try value(0, "self").items else { throw error("indexes a \(try value(0, "self").kindName)") }
            let i = try int(1, "idx")
            let k = i < 0 ? i + items.count : i
            guard k >= 0, k < items.count else { throw error("index \(i) is out of range for \(items.count) items") }
            return [items[k]]
        case "aten::len":
            guard let items = try value(0, "a").items else { throw error("len of a \(try value(0, "a").kindName)") }
            return [.int(items.count)]
        case "prim::NumToTensor", "aten::scalar_tensor", "aten::tensor":
            let v = try value(0, "s")
            if case .tensor = v { return [v] }
            let dtype: DType
            if case .float = v { dtype = .f32 } else if case .bool = v { dtype = .bool } else { dtype = .i64 }
            return [.tensor(try asTensor(v, dtype: try dtypeArgument(1, "dtype") ?? dtype))]
        case "aten::Int", "aten::IntImplicit": return [.int(try toInt(try value(0, "a"), "a"))]
        case "aten::Float", "aten::FloatImplicit": return [.float(try toDouble(try value(0, "a"), "a"))]
        case "aten::ScalarImplicit", "aten::item":
            let v = try value(0, "a")
            if case .tensor(let id) = v, b.type(of: id).dtype.isFloatingPoint { return [.float(try toDouble(v, "a"))] }
            return [.int(try toInt(v, "a"))]
        case "prim::device": return [.device("cpu")]
        case "prim::dtype":
            guard let code = TorchDType.code(of: b.type(of: try tensor(0, "a")).dtype) else { throw error("unsupported element type") }
            return [.int(code)]
        case "aten::dim": return [.int(try b.rank(of: try tensor(0, "self")))]
        case "aten::size":
            let sizes = try b.sizes(of: try tensor(0, "self"))
            guard optional(1, "dim") != nil else { return [.list(sizes.map { .int($0) })] }
            return [.int(sizes[try normalized(try int(1, "dim"), rank: sizes.count)])]
        case "aten::numel": return [.int(try b.sizes(of: try tensor(0, "self")).reduce(1, *))]
        case "aten::floordiv":
            return [try numeric(try value(0, "a"), try value(1, "b"), int: { $1 == 0 ? nil : Int((Double($0) / Double($1)).rounded(.down)) },
                                float: { ($0 / $1).rounded(.down) })]

        // identities at inference
        case "aten::contiguous", "aten::dropout", "aten::feature_dropout", "aten::alpha_dropout", "aten::detach",
             "aten::clone", "aten::alias", "aten::lift_fresh":
            return [.tensor(try tensor(0, "input"))]

        // linear algebra
        case "aten::linear":
            let x = try tensor(0, "input"), w = try tensor(1, "weight")
            let wt = try b.emit1("Transpose", [w], ["perm": .ints([1, 0])])
            var y = try b.emit1("MatMul", [x, wt])
            if let bias = try optionalTensor(2, "bias") { y = try b.emit1("Add", [y, bias]) }
            return [.tensor(y)]
        case "aten::addmm":
            let beta = try double(3, "beta", default: 1), alpha = try double(4, "alpha", default: 1)
            return [.tensor(try b.emit1("Gemm", [try tensor(1, "mat1"), try tensor(2, "mat2"), try tensor(0, "self")],
                                        ["alpha": .float(Float(alpha)), "beta": .float(Float(beta))]))]
        case "aten::matmul", "aten::bmm", "aten::mm":
            return [.tensor(try b.emit1("MatMul", [try tensor(0, "self"), try tensor(1, "other")]))]
        case "aten::t":
            let x = try tensor(0, "self")
            return [.tensor(try b.rank(of: x) < 2 ? x : b.emit1("Transpose", [x], ["perm": .ints([1, 0])]))]

        // convolution and pooling
        case "aten::_convolution", "aten::conv1d", "aten::conv2d", "aten::conv3d":
            return [.tensor(try convolution())]
        case "aten::max_pool1d", "aten::max_pool2d", "aten::max_pool3d":
            let x = try tensor(0, "self")
            let spatial = try b.rank(of: x) - 2
            let kernel = try expand(try ints(1, "kernel_size"), spatial)
            var strides = try expand(try ints(2, "stride", default: []), spatial)
            if strides.isEmpty { strides = kernel }
            let pads = try expand(try ints(3, "padding", default: [0]), spatial)
            let dilations = try expand(try ints(4, "dilation", default: [1]), spatial)
            return [.tensor(try b.emit1("MaxPool", [x], ["kernel_shape": .ints(kernel), "strides": .ints(strides),
                                                         "pads": .ints(pads + pads), "dilations": .ints(dilations),
                                                         "ceil_mode": .int(try bool(5, "ceil_mode", default: false) ? 1 : 0)]))]
        case "aten::avg_pool1d", "aten::avg_pool2d", "aten::avg_pool3d":
            let x = try tensor(0, "self")
            let spatial = try b.rank(of: x) - 2
            let kernel = try expand(try ints(1, "kernel_size"), spatial)
            var strides = try expand(try ints(2, "stride", default: []), spatial)
            if strides.isEmpty { strides = kernel }
            let pads = try expand(try ints(3, "padding", default: [0]), spatial)
            if optional(6, "divisor_override") != nil { throw error("unsupported: divisor_override") }
            return [.tensor(try b.emit1("AveragePool", [x], ["kernel_shape": .ints(kernel), "strides": .ints(strides), "pads": .ints(pads + pads),
                                                             "ceil_mode": .int(try bool(4, "ceil_mode", default: false) ? 1 : 0),
                                                             "count_include_pad": .int(try bool(5, "count_include_pad", default: true) ? 1 : 0)]))]
        case "aten::adaptive_avg_pool1d", "aten::adaptive_avg_pool2d", "aten::adaptive_avg_pool3d":
            let x = try tensor(0, "self")
            let sizes = try b.sizes(of: x)
            let spatial = Array(sizes.dropFirst(2))
            let output = try expand(try ints(1, "output_size"), spatial.count)
            if output.allSatisfy({ $0 == 1 }) { return [.tensor(try b.emit1("GlobalAveragePool", [x]))] }
            guard zip(spatial, output).allSatisfy({ $1 > 0 && $0 % $1 == 0 }) else {
                throw error("unsupported: adaptive pooling from \(spatial) to \(output) (only whole-window sizes)")
            }
            let kernel = zip(spatial, output).map { $0 / $1 }
            return [.tensor(try b.emit1("AveragePool", [x], ["kernel_shape": .ints(kernel), "strides": .ints(kernel)]))]

        // activations
        case "aten::relu": return [.tensor(try b.emit1("Relu", [try tensor(0, "self")]))]
        case "aten::sigmoid": return [.tensor(try b.emit1("Sigmoid", [try tensor(0, "self")]))]
        case "aten::tanh": return [.tensor(try b.emit1("Tanh", [try tensor(0, "self")]))]
        case "aten::exp", "aten::log", "aten::sqrt", "aten::neg", "aten::abs", "aten::erf", "aten::floor", "aten::ceil",
             "aten::sin", "aten::cos", "aten::reciprocal":
            let onnx = ["exp": "Exp", "log": "Log", "sqrt": "Sqrt", "neg": "Neg", "abs": "Abs", "erf": "Erf", "floor": "Floor",
                        "ceil": "Ceil", "sin": "Sin", "cos": "Cos", "reciprocal": "Reciprocal"][String(name.dropFirst(6))]!
            var x = try tensor(0, "self")
            if ["Exp", "Log", "Sqrt", "Erf", "Sin", "Cos", "Reciprocal"].contains(onnx), !b.type(of: x).dtype.isFloatingPoint { x = try b.cast(x, to: .f32) }
            return [.tensor(try b.emit1(onnx, [x]))]
        case "aten::rsqrt":
            return [.tensor(try b.emit1("Reciprocal", [try b.emit1("Sqrt", [try tensor(0, "self")])]))]
        case "aten::silu":
            let x = try tensor(0, "self")
            return [.tensor(try b.emit1("Mul", [x, try b.emit1("Sigmoid", [x])]))]
        case "aten::gelu":
            let approximate = try string(1, "approximate", default: "none")
            guard approximate == "none" || approximate == "tanh" else { throw error("unknown approximation '\(approximate)'") }
            return [.tensor(try b.emit1("Gelu", [try tensor(0, "self")], ["approximate": .string(approximate)]))]
        case "aten::hardtanh":
            let x = try tensor(0, "self"), dtype = b.type(of: x).dtype
            return [.tensor(try b.emit1("Clip", [x, try b.scalar(try double(1, "min_val", default: -1), dtype),
                                                 try b.scalar(try double(2, "max_val", default: 1), dtype)]))]
        case "aten::clamp", "aten::clip", "aten::clamp_min", "aten::clamp_max":
            let x = try tensor(0, "self"), dtype = b.type(of: x).dtype
            func bound(_ v: TorchValue?) throws -> ValueID? { try v.map { try b.cast(try asTensor($0, dtype: dtype), to: dtype) } }
            let low = name == "aten::clamp_max" ? nil : try bound(optional(1, "min"))
            let high = name == "aten::clamp_min" ? nil : try bound(optional(name == "aten::clamp_max" ? 1 : 2, "max"))
            return [.tensor(try b.emit1("Clip", [x, low, high]))]
        case "aten::relu6":
            let x = try tensor(0, "self"), dtype = b.type(of: x).dtype
            return [.tensor(try b.emit1("Clip", [x, try b.scalar(0, dtype), try b.scalar(6, dtype)]))]
        case "aten::hardswish": return [.tensor(try b.emit1("HardSwish", [try tensor(0, "self")]))]
        case "aten::hardsigmoid":
            return [.tensor(try b.emit1("HardSigmoid", [try tensor(0, "self")], ["alpha": .float(1.0 / 6), "beta": .float(0.5)]))]
        case "aten::leaky_relu":
            return [.tensor(try b.emit1("LeakyRelu", [try tensor(0, "self")], ["alpha": .float(Float(try double(1, "negative_slope", default: 0.01)))]))]
        case "aten::softmax", "aten::log_softmax":
            var x = try tensor(0, "self")
            if let dtype = try dtypeArgument(2, "dtype") { x = try b.cast(x, to: dtype) }
            let axis = try normalized(try int(1, "dim"), rank: try b.rank(of: x))
            return [.tensor(try b.emit1(name == "aten::softmax" ? "Softmax" : "LogSoftmax", [x], ["axis": .int(axis)]))]

        // normalization
        case "aten::layer_norm":
            let x = try tensor(0, "input")
            let normalized = try ints(1, "normalized_shape")
            let dtype = b.type(of: x).dtype
            let scale = try optionalTensor(2, "weight") ?? ones(normalized, dtype)
            let bias = try optionalTensor(3, "bias") ?? zeros(normalized, dtype)
            return [.tensor(try b.emit1("LayerNormalization", [x, scale, bias],
                                        ["axis": .int(-normalized.count), "epsilon": .float(Float(try double(4, "eps", default: 1e-5)))]))]
        case "aten::batch_norm":
            let x = try tensor(0, "input")
            guard !(try bool(5, "training", default: false)) else { throw error("unsupported: batch_norm in training mode") }
            let channels = try b.sizes(of: x)[1], dtype = b.type(of: x).dtype
            guard let mean = try optionalTensor(3, "running_mean"), let variance = try optionalTensor(4, "running_var") else {
                throw error("unsupported: batch_norm without running statistics")
            }
            let scale = try optionalTensor(1, "weight") ?? ones([channels], dtype)
            let bias = try optionalTensor(2, "bias") ?? zeros([channels], dtype)
            return [.tensor(try b.emit1("BatchNormalization", [x, scale, bias, mean, variance],
                                        ["epsilon": .float(Float(try double(7, "eps", default: 1e-5)))]))]

        // arithmetic
        case "aten::add", "aten::sub":
            let x = try value(0, "self"), y = try value(1, "other")
            let alpha = try double(2, "alpha", default: 1)
            if isNumber(x), isNumber(y) {
                return [name == "aten::add" ? try numeric(x, y, int: { $0 + $1 }, float: { $0 + $1 })
                                            : try numeric(x, y, int: { $0 - $1 }, float: { $0 - $1 })]
            }
            var other = y
            if alpha != 1 { other = try binary("Mul", y, .float(alpha)) }
            return [try binary(name == "aten::add" ? "Add" : "Sub", x, other)]
        case "aten::rsub":
            let x = try value(0, "self"), y = try value(1, "other")
            let alpha = try double(2, "alpha", default: 1)
            return [try binary("Sub", y, alpha == 1 ? x : try binary("Mul", x, .float(alpha)))]
        case "aten::mul":
            let x = try value(0, "self"), y = try value(1, "other")
            if isNumber(x), isNumber(y) { return [try numeric(x, y, int: { $0 * $1 }, float: { $0 * $1 })] }
            return [try binary("Mul", x, y)]
        case "aten::div", "aten::true_divide":
            let x = try value(0, "self"), y = try value(1, "other")
            let mode = try string(2, "rounding_mode", default: "true")
            if isNumber(x), isNumber(y) {
                let q = try toDouble(x, "self") / toDouble(y, "other")
                return [mode == "floor" ? .float(q.rounded(.down)) : mode == "trunc" ? .float(q.rounded(.towardZero)) : .float(q)]
            }
            var (p, q) = try promoted(x, y)
            if mode == "true", !b.type(of: p).dtype.isFloatingPoint { p = try b.cast(p, to: .f32); q = try b.cast(q, to: .f32) }
            var r = try b.emit1("Div", [p, q])
            if mode == "floor", b.type(of: r).dtype.isFloatingPoint { r = try b.emit1("Floor", [r]) }
            return [.tensor(r)]
        case "aten::floor_divide":
            let x = try value(0, "self"), y = try value(1, "other")
            if isNumber(x), isNumber(y) {
                return [try numeric(x, y, int: { $1 == 0 ? nil : Int((Double($0) / Double($1)).rounded(.down)) }, float: { ($0 / $1).rounded(.down) })]
            }
            let (p, q) = try promoted(x, y)
            if b.type(of: p).dtype.isFloatingPoint { return [.tensor(try b.emit1("Floor", [try b.emit1("Div", [p, q])]))] }
            // Integer floor division: through f64 so negative quotients round down as in torch.
            let quotient = try b.emit1("Floor", [try b.emit1("Div", [try b.cast(p, to: .f64), try b.cast(q, to: .f64)])])
            return [.tensor(try b.cast(quotient, to: b.type(of: p).dtype))]
        case "aten::remainder":
            let (p, q) = try promoted(try value(0, "self"), try value(1, "other"))
            return [.tensor(try b.emit1("Mod", [p, q], ["fmod": .int(b.type(of: p).dtype.isFloatingPoint ? 1 : 0)]))]
        case "aten::pow":
            let x = try value(0, "self"), y = try value(1, "exponent")
            if isNumber(x), isNumber(y) { return [.float(pow(try toDouble(x, "self"), try toDouble(y, "exponent")))] }
            guard case .tensor(var base) = x else { return [try binary("Pow", x, y)] }
            // ONNX Pow keeps the base's type; torch promotes an integer base with a float exponent.
            var exponentType = b.type(of: base).dtype
            if case .float = y, !exponentType.isFloatingPoint { base = try b.cast(base, to: .f32); exponentType = .f32 }
            if case .tensor(let e) = y, b.type(of: e).dtype.isFloatingPoint, !exponentType.isFloatingPoint {
                base = try b.cast(base, to: b.type(of: e).dtype); exponentType = b.type(of: e).dtype
            }
            return [.tensor(try b.emit1("Pow", [base, try asTensor(y, dtype: exponentType)]))]
        case "aten::eq", "aten::ne", "aten::lt", "aten::le", "aten::gt", "aten::ge":
            let x = try value(0, "self"), y = try value(1, "other")
            if isNumber(x), isNumber(y) {
                let p = try toDouble(x, "self"), q = try toDouble(y, "other")
                let r = ["aten::eq": p == q, "aten::ne": p != q, "aten::lt": p < q, "aten::le": p <= q, "aten::gt": p > q, "aten::ge": p >= q][name]!
                return [.bool(r)]
            }
            let onnx = ["aten::eq": "Equal", "aten::ne": "Equal", "aten::lt": "Less", "aten::le": "LessOrEqual",
                        "aten::gt": "Greater", "aten::ge": "GreaterOrEqual"][name]!
            guard case .tensor(let r) = try binary(onnx, x, y) else { throw error("comparison gave no tensor") }
            return [.tensor(name == "aten::ne" ? try b.emit1("Not", [r]) : r)]
        case "aten::__and__", "aten::bitwise_and", "aten::logical_and", "aten::__or__", "aten::bitwise_or", "aten::logical_or",
             "aten::__xor__", "aten::bitwise_xor", "aten::logical_xor":
            let x = try value(0, "self"), y = try value(1, "other")
            let kind = name.contains("and") ? "And" : name.contains("xor") ? "Xor" : "Or"
            if case .bool(let p) = x, case .bool(let q) = y { return [.bool(kind == "And" ? p && q : kind == "Or" ? p || q : p != q)] }
            let (p, q) = try promoted(x, y)
            if b.type(of: p).dtype == .bool || name.hasPrefix("aten::logical") {
                return [.tensor(try b.emit1(kind, [try b.cast(p, to: .bool), try b.cast(q, to: .bool)]))]
            }
            return [.tensor(try b.emit1("Bitwise" + kind, [p, q]))]
        case "aten::bitwise_not", "aten::logical_not":
            let x = try tensor(0, "self")
            if b.type(of: x).dtype == .bool || name == "aten::logical_not" { return [.tensor(try b.emit1("Not", [try b.cast(x, to: .bool)]))] }
            return [.tensor(try b.emit1("BitwiseNot", [x]))]

        // reductions
        case "aten::mean", "aten::sum":
            var x = try tensor(0, "self")
            let rank = try b.rank(of: x)
            var dims = try ints(1, "dim", default: [])
            let keep = try bool(2, "keepdim", default: false)
            if let dtype = try dtypeArgument(3, "dtype") { x = try b.cast(x, to: dtype) }
            if dims.isEmpty { dims = Array(0 ..< rank) }
            dims = try dims.map { try normalized($0, rank: rank) }
            return [.tensor(try b.emit1(name == "aten::mean" ? "ReduceMean" : "ReduceSum", [x, b.int64s(dims)], ["keepdims": .int(keep ? 1 : 0)]))]

        // movement
        case "aten::view", "aten::reshape", "aten::_reshape_alias":
            return [.tensor(try b.emit1("Reshape", [try tensor(0, "self"), b.int64s(try ints(1, "size"))]))]
        case "aten::flatten":
            let x = try tensor(0, "input")
            let sizes = try b.sizes(of: x)
            if sizes.isEmpty { return [.tensor(try b.emit1("Reshape", [x, b.int64s([1])]))] }
            let start = try normalized(try int(1, "start_dim", default: 0), rank: sizes.count)
            let end = try normalized(try int(2, "end_dim", default: -1), rank: sizes.count)
            let shape = Array(sizes[..<start]) + [sizes[start ... end].reduce(1, *)] + Array(sizes[(end + 1)...])
            return [.tensor(try b.emit1("Reshape", [x, b.int64s(shape)]))]
        case "aten::unflatten":
            let x = try tensor(0, "self")
            let sizes = try b.sizes(of: x)
            let dim = try normalized(try int(1, "dim"), rank: sizes.count)
            let shape = Array(sizes[..<dim]) + (try ints(2, "sizes")) + Array(sizes[(dim + 1)...])
            return [.tensor(try b.emit1("Reshape", [x, b.int64s(shape)]))]
        case "aten::permute":
            let x = try tensor(0, "self")
            let rank = try b.rank(of: x)
            return [.tensor(try b.emit1("Transpose", [x], ["perm": .ints(try ints(1, "dims").map { try normalized($0, rank: rank) })]))]
        case "aten::transpose":
            let x = try tensor(0, "self")
            let rank = try b.rank(of: x)
            var perm = Array(0 ..< rank)
            perm.swapAt(try normalized(try int(1, "dim0"), rank: rank), try normalized(try int(2, "dim1"), rank: rank))
            return [.tensor(try b.emit1("Transpose", [x], ["perm": .ints(perm)]))]
        case "aten::unsqueeze":
            let x = try tensor(0, "self")
            let axis = try normalized(try int(1, "dim"), rank: try b.rank(of: x) + 1)
            return [.tensor(try b.emit1("Unsqueeze", [x, b.int64s([axis])]))]
        case "aten::squeeze":
            let x = try tensor(0, "self")
            let sizes = try b.sizes(of: x)
            var dims = try ints(1, "dim", default: Array(sizes.indices)).map { try normalized($0, rank: sizes.count) }
            dims = dims.filter { sizes[$0] == 1 } // torch leaves dimensions that are not 1
            if dims.isEmpty { return [.tensor(x)] }
            return [.tensor(try b.emit1("Squeeze", [x, b.int64s(dims)]))]
        case "aten::expand", "aten::expand_as", "aten::broadcast_to":
            let x = try tensor(0, "self")
            var target: [Int]
            if name == "aten::expand_as" { target = try b.sizes(of: try tensor(1, "other")) } else { target = try ints(1, "size") }
            let sizes = try b.sizes(of: x)
            // -1 keeps the input's size (aligned from the right).
            for i in target.indices where target[i] == -1 {
                let k = i - (target.count - sizes.count)
                guard k >= 0 else { throw error("-1 for a new leading dimension") }
                target[i] = sizes[k]
            }
            return [.tensor(try b.emit1("Expand", [x, b.int64s(target)]))]
        case "aten::cat", "aten::concat":
            let xs = try tensors(0, "tensors")
            guard let first = xs.first else { throw error("concatenates no tensors") }
            let axis = try normalized(try int(1, "dim", default: 0), rank: try b.rank(of: first))
            return [.tensor(try b.emit1("Concat", xs, ["axis": .int(axis)]))]
        case "aten::stack":
            let xs = try tensors(0, "tensors")
            guard let first = xs.first else { throw error("stacks no tensors") }
            let axis = try normalized(try int(1, "dim", default: 0), rank: try b.rank(of: first) + 1)
            let axes = b.int64s([axis])
            return [.tensor(try b.emit1("Concat", try xs.map { try b.emit1("Unsqueeze", [$0, axes]) }, ["axis": .int(axis)]))]
        case "aten::slice":
            let x = try tensor(0, "self")
            let sizes = try b.sizes(of: x)
            let dim = try normalized(try int(1, "dim", default: 0), rank: sizes.count)
            let start = try int(2, "start", default: 0), end = try int(3, "end", default: Int(Int64.max))
            let step = try int(4, "step", default: 1)
            guard step > 0 else { throw error("step \(step) is not positive") }
            if start == 0, end >= sizes[dim], step == 1 { return [.tensor(x)] }
            return [.tensor(try b.emit1("Slice", [x, b.int64s([start]), b.int64s([min(end, Int(Int64.max))]), b.int64s([dim]), b.int64s([step])]))]
        case "aten::select":
            let x = try tensor(0, "self")
            let sizes = try b.sizes(of: x)
            let dim = try normalized(try int(1, "dim"), rank: sizes.count)
            let index = try int(2, "index")
            let scalarIndex = b.constant(TensorData(type: TensorType(.i64, static: []), elements: [Int64(index)]))
            return [.tensor(try b.emit1("Gather", [x, scalarIndex], ["axis": .int(dim)]))]
        case "aten::index_select":
            let x = try tensor(0, "self")
            let dim = try normalized(try int(1, "dim"), rank: try b.rank(of: x))
            return [.tensor(try b.emit1("Gather", [x, try tensor(2, "index")], ["axis": .int(dim)]))]
        case "aten::embedding":
            return [.tensor(try b.emit1("Gather", [try tensor(0, "weight"), try tensor(1, "indices")], ["axis": .int(0)]))]
        case "aten::gather":
            let x = try tensor(0, "self")
            let dim = try normalized(try int(1, "dim"), rank: try b.rank(of: x))
            return [.tensor(try b.emit1("GatherElements", [x, try tensor(2, "index")], ["axis": .int(dim)]))]
        case "aten::index":
            // x[idx] with one integer index tensor (others None): a Gather on that dimension.
            let x = try tensor(0, "self")
            guard let indices = try value(1, "indices").items else { throw error("indices are not a list") }
            let given = indices.enumerated().filter { if case .none = $0.element { return false } else { return true } }
            guard given.count == 1, case .tensor(let index) = given[0].element, b.type(of: index).dtype.isInteger else {
                throw error("unsupported: indexing other than by one integer index tensor")
            }
            return [.tensor(try b.emit1("Gather", [x, index], ["axis": .int(given[0].offset)]))]
        case "aten::masked_fill":
            let x = try tensor(0, "self")
            let mask = try b.cast(try tensor(1, "mask"), to: .bool)
            let fill = try asTensor(try value(2, "value"), dtype: b.type(of: x).dtype)
            return [.tensor(try b.emit1("Where", [mask, try b.cast(fill, to: b.type(of: x).dtype), x]))]
        case "aten::where":
            let condition = try b.cast(try tensor(0, "condition"), to: .bool)
            let (p, q) = try promoted(try value(1, "self"), try value(2, "other"))
            return [.tensor(try b.emit1("Where", [condition, p, q]))]
        case "aten::to", "aten::type_as":
            let x = try tensor(0, "self")
            if name == "aten::type_as" { return [.tensor(try b.cast(x, to: b.type(of: try tensor(1, "other")).dtype))] }
            // to(self, dtype, …), to(self, device, dtype, …), to(self, other, …): devices are ignored.
            let rest = args.positional.dropFirst()
            if case .tensor(let other)? = rest.first { return [.tensor(try b.cast(x, to: b.type(of: other).dtype))] }
            let code = rest.prefix(2).first { if case .int = $0 { return true } else { return false } } ?? args.keywords["dtype"]
            guard let code, case .int(let c) = code else { return [.tensor(x)] }
            guard let dtype = TorchDType.dtype(code: c) else { throw error("unsupported: dtype code \(c)") }
            return [.tensor(try b.cast(x, to: dtype))]

        // creation (all at convert time: traced sizes are static)
        case "aten::arange":
            return [.tensor(try arange())]
        case "aten::zeros", "aten::ones", "aten::full", "aten::new_zeros", "aten::new_ones", "aten::new_full",
             "aten::zeros_like", "aten::ones_like", "aten::full_like":
            return [.tensor(try filled(name))]

        // attention
        case "aten::scaled_dot_product_attention":
            return [.tensor(try scaledDotProductAttention())]
        case "aten::_native_multi_head_attention":
            return try nativeMultiHeadAttention()
        default:
            return nil
        }
    }

    /// True when the op is not in the table. For ops downstream of an unsupported one, whose
    /// arguments cannot be lowered: a known op throws on them, an unknown one returns nil.
    var isOutsideTheTable: Bool {
        do { return try lower() == nil } catch { return false }
    }

    // MARK: Helpers of the table

    func expand(_ values: [Int], _ count: Int) throws -> [Int] {
        if values.isEmpty { return [] }
        if values.count == count { return values }
        if values.count == 1 { return Array(repeating: values[0], count: count) }
        throw error("\(values) does not give \(count) spatial dimensions")
    }

    func ones(_ sizes: [Int], _ dtype: DType) throws -> ValueID { try fill(sizes, dtype, 1) }
    func zeros(_ sizes: [Int], _ dtype: DType) throws -> ValueID { try fill(sizes, dtype, 0) }

    func fill(_ sizes: [Int], _ dtype: DType, _ value: Double) throws -> ValueID {
        guard let n = checkedElementCount(sizes), n <= 1 << 26 else { throw error("sizes \(sizes) are too large") }
        let t = TensorType(dtype, static: sizes)
        switch dtype {
        case .f32: return b.constant(TensorData(type: t, elements: [Float](repeating: Float(value), count: n)))
        case .f64: return b.constant(TensorData(type: t, elements: [Double](repeating: value, count: n)))
        case .i64: return b.constant(TensorData(type: t, elements: [Int64](repeating: Int64(value), count: n)))
        case .i32: return b.constant(TensorData(type: t, elements: [Int32](repeating: Int32(value), count: n)))
        case .bool, .u8: return b.constant(TensorData(type: t, elements: [UInt8](repeating: value != 0 ? 1 : 0, count: n)))
        default: throw error("unsupported: creating a tensor of element type \(dtype)")
        }
    }

    /// zeros/ones/full(size, ...), new_*(self, size, ...), *_like(self, ...).
    func filled(_ name: String) throws -> ValueID {
        let short = String(name.dropFirst(6))
        if short.hasSuffix("_like") {
            let x = try tensor(0, "self")
            let dtype = try dtypeArgument(short == "full_like" ? 2 : 1, "dtype") ?? b.type(of: x).dtype
            return try fill(try b.sizes(of: x), dtype, short == "full_like" ? try double(1, "fill_value") : short == "ones_like" ? 1 : 0)
        }
        if short.hasPrefix("new_") {
            let x = try tensor(0, "self")
            let full = short == "new_full"
            let dtype = try dtypeArgument(full ? 3 : 2, "dtype") ?? b.type(of: x).dtype
            return try fill(try ints(1, "size"), dtype, full ? try double(2, "fill_value") : short == "new_ones" ? 1 : 0)
        }
        let full = short == "full"
        var dtype = try dtypeArgument(full ? 2 : 1, "dtype")
        if dtype == nil, full, case .int? = optional(1, "fill_value") { dtype = .i64 }
        if dtype == nil, full, case .bool? = optional(1, "fill_value") { dtype = .bool }
        return try fill(try ints(0, "size"), dtype ?? .f32, full ? try double(1, "fill_value") : short == "ones" ? 1 : 0)
    }

    /// arange(end, ...), arange(start, end, ...), arange(start, end, step, ...): the number arguments
    /// come first, then dtype, layout, device, pin_memory.
    func arange() throws -> ValueID {
        // The schema's trailing four are dtype, layout, device, pin_memory; code passes them by keyword.
        let p = args.positional
        let numberCount = p.count >= 5 ? p.count - 4 : p.count
        var numbers = Array(p.prefix(numberCount))
        if let end = args.keywords["end"] { numbers.append(end) }
        guard (1 ... 3).contains(numbers.count) else { throw error("arange with \(numbers.count) numbers") }
        let dtypeIndex = numbers.count
        let start = numbers.count >= 2 ? try toDouble(numbers[0], "start") : 0
        let end = try toDouble(numbers.count >= 2 ? numbers[1] : numbers[0], "end")
        let step = numbers.count == 3 ? try toDouble(numbers[2], "step") : 1
        guard step != 0 else { throw error("step is zero") }
        let allIntegers = numbers.allSatisfy {
            switch $0 {
            case .int: return true
            case .tensor(let id): return b.type(of: id).dtype.isInteger
            default: return false
            }
        }
        let dtype = try dtypeArgument(dtypeIndex, "dtype") ?? (allIntegers ? .i64 : .f32)
        let count = max(0, Int(((end - start) / step).rounded(.up)))
        guard count <= 1 << 26 else { throw error("\(count) elements is too many") }
        let values = (0 ..< count).map { start + Double($0) * step }
        let t = TensorType(dtype, static: [count])
        switch dtype {
        case .i64: return b.constant(TensorData(type: t, elements: values.map { Int64($0) }))
        case .i32: return b.constant(TensorData(type: t, elements: values.map { Int32($0) }))
        case .f32: return b.constant(TensorData(type: t, elements: values.map { Float($0) }))
        case .f64: return b.constant(TensorData(type: t, elements: values))
        default: throw error("unsupported: arange of element type \(dtype)")
        }
    }

    func convolution() throws -> ValueID {
        let x = try tensor(0, "input"), w = try tensor(1, "weight")
        let spatial = try b.rank(of: w) - 2
        let bias = try optionalTensor(2, "bias")
        let strides = try expand(try ints(3, "stride", default: [1]), spatial)
        var padding: [Int]
        if case .string(let mode)? = optional(4, "padding") {
            guard mode == "valid" else { throw error("unsupported: padding='\(mode)'") }
            padding = Array(repeating: 0, count: spatial)
        } else {
            padding = try expand(try ints(4, "padding", default: [0]), spatial)
        }
        let dilations = try expand(try ints(5, "dilation", default: [1]), spatial)
        let groups: Int
        if op == "aten::_convolution" {
            guard !(try bool(6, "transposed", default: false)) else { throw error("unsupported: transposed convolution") }
            groups = try int(8, "groups", default: 1)
        } else {
            groups = try int(6, "groups", default: 1)
        }
        return try b.emit1("Conv", [x, w, bias], ["strides": .ints(strides), "pads": .ints(padding + padding),
                                                  "dilations": .ints(dilations), "group": .int(groups)])
    }

    /// nn.MultiheadAttention's inference fast path (batch first): in-projections from the packed
    /// qkv weight, attention per head, out-projection. Returns the output and, when asked for, the
    /// attention weights averaged over heads (else None).
    func nativeMultiHeadAttention() throws -> [TorchValue] {
        let query = try tensor(0, "query"), key = try tensor(1, "key"), value = try tensor(2, "value")
        let embed = try int(3, "embed_dim"), heads = try int(4, "num_head")
        let qkvWeight = try tensor(5, "qkv_weight"), qkvBias = try tensor(6, "qkv_bias")
        let projWeight = try tensor(7, "proj_weight"), projBias = try tensor(8, "proj_bias")
        let needWeights = try bool(10, "need_weights", default: true)
        let average = try bool(11, "average_attn_weights", default: true)
        let qSizes = try b.sizes(of: query), kSizes = try b.sizes(of: key)
        guard qSizes.count == 3, kSizes.count == 3, heads > 0, embed % heads == 0, qSizes[2] == embed else {
            throw error("expects [batch, length, \(embed)] inputs and \(embed) divisible by \(heads) heads")
        }
        let headSize = embed / heads
        /// Rows [k·E, (k+1)·E) of the packed projection: x·Wₖᵀ + bₖ, split into heads [B, H, L, D].
        func project(_ x: ValueID, _ k: Int, length: Int) throws -> ValueID {
            let rows = [b.int64s([k * embed]), b.int64s([(k + 1) * embed]), b.int64s([0])]
            let w = try b.emit1("Slice", [qkvWeight] + rows)
            let bias = try b.emit1("Slice", [qkvBias] + rows)
            let y = try b.emit1("Add", [try b.emit1("MatMul", [x, try b.emit1("Transpose", [w], ["perm": .ints([1, 0])])]), bias])
            let split = try b.emit1("Reshape", [y, b.int64s([qSizes[0], length, heads, headSize])])
            return try b.emit1("Transpose", [split], ["perm": .ints([0, 2, 1, 3])])
        }
        let q = try project(query, 0, length: qSizes[1]), k = try project(key, 1, length: kSizes[1]), v = try project(value, 2, length: kSizes[1])
        let dtype = b.type(of: query).dtype
        var scores = try b.emit1("Mul", [try b.emit1("MatMul", [q, try b.emit1("Transpose", [k], ["perm": .ints([0, 1, 3, 2])])]),
                                         try b.scalar(1 / Double(headSize).squareRoot(), dtype)])
        if let mask = try optionalTensor(9, "mask") {
            // mask_type 1 is a key padding mask [B, S]; otherwise it broadcasts over [B, H, L, S].
            var m = mask
            if try int(12, "mask_type", default: 0) == 1 { m = try b.emit1("Reshape", [mask, b.int64s([qSizes[0], 1, 1, kSizes[1]])]) }
            if b.type(of: m).dtype == .bool {
                scores = try b.emit1("Where", [m, try b.scalar(-Double.infinity, dtype), scores])  // true = masked out
            } else {
                scores = try b.emit1("Add", [scores, try b.cast(m, to: dtype)])
            }
        }
        let weights = try b.emit1("Softmax", [scores], ["axis": .int(3)])
        let context = try b.emit1("Transpose", [try b.emit1("MatMul", [weights, v])], ["perm": .ints([0, 2, 1, 3])])
        let merged = try b.emit1("Reshape", [context, b.int64s([qSizes[0], qSizes[1], embed])])
        let projT = try b.emit1("Transpose", [projWeight], ["perm": .ints([1, 0])])
        let output = try b.emit1("Add", [try b.emit1("MatMul", [merged, projT]), projBias])
        guard needWeights else { return [.tensor(output), .none] }
        let returned = average ? try b.emit1("ReduceMean", [weights, b.int64s([1])], ["keepdims": .int(0)]) : weights
        return [.tensor(output), .tensor(returned)]
    }

    /// softmax(q·kᵀ·scale + mask)·v. A boolean mask keeps positions where it is true.
    func scaledDotProductAttention() throws -> ValueID {
        let q = try tensor(0, "query"), k = try tensor(1, "key"), v = try tensor(2, "value")
        let qSizes = try b.sizes(of: q), kSizes = try b.sizes(of: k)
        let rank = qSizes.count
        guard rank >= 2, kSizes.count == rank else { throw error("query and key must have the same rank >= 2") }
        guard try double(4, "dropout_p", default: 0) == 0 else { throw error("unsupported: dropout_p other than 0 at inference") }
        if try bool(7, "enable_gqa", default: false) { throw error("unsupported: enable_gqa") }
        let dtype = b.type(of: q).dtype
        let scale = try optional(6, "scale").map { try toDouble($0, "scale") } ?? 1 / Double(qSizes[rank - 1]).squareRoot()
        var perm = Array(0 ..< rank)
        perm.swapAt(rank - 1, rank - 2)
        let kt = try b.emit1("Transpose", [k], ["perm": .ints(perm)])
        var scores = try b.emit1("Mul", [try b.emit1("MatMul", [q, kt]), try b.scalar(scale, dtype)])
        let negativeInfinity = try b.scalar(-Double.infinity, dtype)
        if try bool(5, "is_causal", default: false) {
            let l = qSizes[rank - 2], s = kSizes[rank - 2]
            var keep = [UInt8](repeating: 0, count: l * s)
            for i in 0 ..< l { for j in 0 ..< s where j <= i { keep[i * s + j] = 1 } }
            let mask = b.constant(TensorData(type: TensorType(.bool, static: [l, s]), elements: keep))
            scores = try b.emit1("Where", [mask, scores, negativeInfinity])
        }
        if let mask = try optionalTensor(3, "attn_mask") {
            if b.type(of: mask).dtype == .bool {
                scores = try b.emit1("Where", [mask, scores, negativeInfinity])
            } else {
                scores = try b.emit1("Add", [scores, try b.cast(mask, to: dtype)])
            }
        }
        let weights = try b.emit1("Softmax", [scores], ["axis": .int(rank - 1)])
        return try b.emit1("MatMul", [weights, v])
    }
}

/// The value of a one-element constant as a double.
func scalarValue(_ c: TensorData) -> Double? {
    switch c.dtype {
    case .f32: return Double(c.elements(as: Float.self).first ?? 0)
    case .f64: return c.elements(as: Double.self).first
    case .f16: return Double(halfToFloat(c.elements(as: UInt16.self).first ?? 0))
    default: return c.integers()?.first.map(Double.init)
    }
}
