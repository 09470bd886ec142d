import GLMCIR
import GLMCOps

/// Lowers a `glmc.Fused` group (or one instruction) made of elementwise and broadcast ops on f32
/// tensors with static shapes to a `Kernel`.
///
/// Every value is computed at the output index `i`: an operand of a broadcast shape is loaded at
/// the index its broadcast gives (`(i / stride) % size` terms from the static shapes), which is
/// right because broadcasting composes. Each body instruction becomes one temporary, in order;
/// loads become temporaries when first used; an expression that was already bound reuses its
/// temporary. One-element constants become literals.
public enum ElementwiseLowering {
    /// Lowers `instruction` (an instruction of `f`) to a kernel named after its body graph (a
    /// `glmc.Fused` group) or its op (one instruction).
    /// Throws `GLMCError` "unsupported: ..." for anything it cannot lower yet.
    public static func lower(_ instruction: Instruction, in f: Function) throws -> Kernel {
        if instruction.op == FusedOps.fused {
            guard case .graph(let body)? = instruction.attributes["body"] else {
                throw GLMCError("unsupported: glmc.Fused without a body graph")
            }
            guard body.captures.isEmpty, body.arguments.count == instruction.operands.count else {
                throw GLMCError("unsupported: glmc.Fused body with captures or a mismatched argument list")
            }
            for member in body.body where member.constantValue == nil {
                try checkSupported(member)
            }
            // The body's name (`elementwise_0`) is unique in the module; the kind is not.
            var name = body.name
            if name.isEmpty, case .string(let kind)? = instruction.attributes["kind"] { name = kind }
            if name.isEmpty { name = "fused" }
            var builder = try Builder(function: body, arguments: body.arguments, outputs: body.outputs, name: name)
            try builder.lower(body.body)
            return try builder.finish()
        }
        try checkSupported(instruction)
        // One instruction: its operands are the arguments, except one-element constants of `f`.
        var builder = try Builder(function: f, arguments: [], outputs: instruction.results,
                                  name: sanitize(instruction.op.type.lowercased()))
        let defining = f.definingInstructions()
        for case let v? in instruction.operands where builder.values[v] == nil {
            if let d = defining[v], let c = f.body[d].constantValue, let literal = try? literal(c) {
                builder.values[v] = .constant(literal)
            } else {
                try builder.addArgument(v)
            }
        }
        try builder.lower([instruction])
        return try builder.finish()
    }

    /// The ops this lowering handles (of the default ONNX domain).
    public static let supportedOps: Set<String> = [
        "Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Neg", "Exp", "Log", "Sqrt", "Tanh", "Erf", "Relu",
        "Sigmoid", "LeakyRelu", "Gelu", "Clip", "Where", "Cast", "Identity",
        "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "Equal",
    ]

    static func checkSupported(_ inst: Instruction) throws {
        guard inst.op.domain.isEmpty || inst.op.domain == "ai.onnx", supportedOps.contains(inst.op.type) else {
            throw unsupported("\(inst.op)")
        }
    }

    static func sanitize(_ s: String) -> String {
        let chars = s.map { $0.isASCII && ($0.isLetter || $0.isNumber) ? $0 : "_" }
        let out = String(chars)
        return out.first?.isNumber ?? true ? "k_" + out : out
    }

    static func unsupported(_ what: String) -> GLMCError {
        GLMCError("unsupported: cannot lower \(what) to an elementwise kernel yet")
    }

    /// The value of a one-element f32 or bool constant.
    static func literal(_ c: TensorData) throws -> Float {
        guard c.elementCount == 1 else { throw unsupported("a constant of \(c.type)") }
        switch c.dtype {
        case .f32: return c.elements(as: Float.self)[0]
        case .bool: return c.elements(as: UInt8.self)[0] != 0 ? 1 : 0
        default: throw unsupported("a constant of \(c.type)")
        }
    }

    /// The element index of an operand of static shape `shape` broadcast to `output`
    /// (right-aligned, numpy rules), as a function of the flat output index `i`.
    public static func broadcastIndex(from shape: [Int], to output: [Int]) throws -> IndexExpr {
        guard shape.count <= output.count else { throw GLMCError("unsupported: shape \(shape) does not broadcast to \(output)") }
        let padded = [Int](repeating: 1, count: output.count - shape.count) + shape
        if padded == output { return .i }
        // Runs of adjacent output axes that are either all read (same size) or all broadcast.
        var runs: [(read: Bool, size: Int)] = []
        for (s, o) in zip(padded, output) {
            guard s == o || s == 1 else { throw GLMCError("unsupported: shape \(shape) does not broadcast to \(output)") }
            if o == 1 { continue }
            let read = s == o
            if let last = runs.last, last.read == read { runs[runs.count - 1].size *= o } else { runs.append((read, o)) }
        }
        var outStride = 1, inStride = 1
        var terms: [IndexExpr] = []
        for run in runs.reversed() {
            if run.read {
                var e: IndexExpr = outStride == 1 ? .i : .div(.i, outStride)
                if outStride * run.size < output.reduce(1, *) { e = .mod(e, run.size) }
                if inStride != 1 { e = .mul(e, inStride) }
                terms.append(e)
                inStride *= run.size
            }
            outStride *= run.size
        }
        guard var result = terms.popLast() else { return .constant(0) }
        while let t = terms.popLast() { result = .add(result, t) }
        return result
    }

    struct Builder {
        let function: Function
        let outputShape: [Int]
        let name: String
        var buffers: [KernelBuffer] = []
        var values: [ValueID: Expr] = [:]
        var body: [Statement] = []
        var bound: [Expr: Int] = [:]
        var types: [Int: ScalarType] = [:]
        var outputs: [ValueID]

        init(function: Function, arguments: [ValueID], outputs: [ValueID], name: String) throws {
            self.function = function
            self.outputs = outputs
            self.name = ElementwiseLowering.sanitize(name)
            guard let first = outputs.first else { throw unsupported("an instruction without results") }
            guard let shape = function.type(of: first).shape.staticSizes else {
                throw unsupported("a result of dynamic shape \(function.type(of: first))")
            }
            outputShape = shape
            for o in outputs {
                let t = function.type(of: o)
                guard t.shape.staticSizes == shape else { throw unsupported("results of different shapes (\(shape) and \(t.shape))") }
                guard [.f32, .bool, .f16].contains(t.dtype) else { throw unsupported("a result of type \(t.dtype)") }
            }
            for a in arguments { try addArgument(a) }
        }

        func scalarType(_ v: ValueID) throws -> ScalarType {
            switch function.type(of: v).dtype {
            case .f32: return .f32
            case .bool: return .bool
            case .f16: return .f16
            case let t: throw unsupported("a value of type \(t)")
            }
        }

        mutating func addArgument(_ v: ValueID) throws {
            let t = function.type(of: v)
            guard let shape = t.shape.staticSizes else { throw unsupported("an operand of dynamic shape \(t)") }
            let index = try broadcastIndex(from: shape, to: outputShape)
            let b = buffers.count
            buffers.append(KernelBuffer(name: "in\(b)", elementType: try scalarType(v), count: shape.reduce(1, *), access: .read))
            values[v] = .load(buffer: b, index: index)
        }

        /// Binds `e` to a temporary (or finds the one it already has) and returns the reference.
        mutating func bind(_ e: Expr, _ type: ScalarType) -> Expr {
            let type = type == .f16 ? .f32 : type  // halves are computed as floats
            switch e {
            case .constant, .temp: return e
            default: break
            }
            if let t = bound[e] { return .temp(t) }
            let t = bound.count
            bound[e] = t
            types[t] = type
            body.append(.let(temp: t, type: type, value: e))
            return .temp(t)
        }

        func type(of e: Expr) -> ScalarType {
            switch e {
            case .load(let b, _): return buffers[b].elementType == .f16 ? .f32 : buffers[b].elementType
            case .constant, .unary, .binary: return .f32
            case .temp(let t): return types[t] ?? .f32
            case .select(_, let a, _): return type(of: a)
            case .compare: return .bool
            case .cast(_, let t): return t == .f16 ? .f32 : t
            }
        }

        /// The operand as an expression; loads are bound to temporaries on first use.
        mutating func operand(_ inst: Instruction, _ k: Int) throws -> Expr? {
            guard k < inst.operands.count, let v = inst.operands[k] else { return nil }
            guard let e = values[v] else { throw unsupported("\(inst.op) reading a value from outside the group") }
            if case .load = e {
                let t = bind(e, type(of: e))
                values[v] = t
                return t
            }
            return e
        }

        mutating func required(_ inst: Instruction, _ k: Int) throws -> Expr {
            guard let e = try operand(inst, k) else { throw unsupported("\(inst.op) without operand \(k)") }
            return e
        }

        func float(_ inst: Instruction, _ name: String, _ value: Float) -> Float {
            switch inst.attributes[name] {
            case .float(let x)?: return x
            case .int(let x)?: return Float(x)
            default: return value
            }
        }

        mutating func lower(_ instructions: [Instruction]) throws {
            for inst in instructions {
                if let c = inst.constantValue {
                    values[inst.results[0]] = .constant(try literal(c))
                    continue
                }
                guard inst.op.domain.isEmpty || inst.op.domain == "ai.onnx", inst.results.count == 1,
                      inst.nestedFunctions.isEmpty else { throw unsupported("\(inst.op)") }
                let r = inst.results[0]
                let rt = function.type(of: r)
                guard rt.dtype == .f32 || (rt.dtype == .f16 && inst.op.type == "Cast") || (rt.dtype == .bool && ["Greater", "Less", "Equal", "GreaterOrEqual", "LessOrEqual"].contains(inst.op.type)) else {
                    throw unsupported("\(inst.op) on \(rt.dtype)")
                }
                guard let shape = rt.shape.staticSizes else { throw unsupported("\(inst.op) of dynamic shape \(rt)") }
                _ = try broadcastIndex(from: shape, to: outputShape)
                // Every f32 operand must be f32 too (Where's condition is bool).
                for (k, v) in inst.operands.enumerated() {
                    guard let v else { continue }
                    let dt = function.type(of: v).dtype
                    if dt != .f32 && !(inst.op.type == "Where" && k == 0 && dt == .bool) && !(inst.op.type == "Cast" && dt == .f16) {
                        throw unsupported("\(inst.op) on \(dt)")
                    }
                }
                let e = try expression(inst)
                values[r] = bind(e, try scalarType(r))
            }
        }

        mutating func expression(_ inst: Instruction) throws -> Expr {
            let op = inst.op.type
            let binary: [String: BinaryOp] = ["Add": .add, "Sub": .sub, "Mul": .mul, "Div": .div, "Max": .max, "Min": .min, "Sum": .add]
            let unary: [String: UnaryOp] = ["Neg": .neg, "Exp": .exp, "Log": .log, "Sqrt": .sqrt, "Tanh": .tanh, "Erf": .erf]
            let compare: [String: (CompareOp, Bool)] = ["Less": (.lt, false), "LessOrEqual": (.le, false), "Greater": (.gt, false),
                                                        "GreaterOrEqual": (.ge, false), "Equal": (.eq, false)]
            if let b = binary[op] {
                var e = try required(inst, 0)
                guard inst.operands.count >= 2 || ["Max", "Min", "Sum"].contains(op) else { throw unsupported("\(op) with one operand") }
                for k in 1 ..< inst.operands.count { e = .binary(b, e, try required(inst, k)) }
                return e
            }
            if let u = unary[op] { return .unary(u, try required(inst, 0)) }
            if let (c, _) = compare[op] { return .compare(c, try required(inst, 0), try required(inst, 1)) }
            switch op {
            case "Relu":
                return .binary(.max, try required(inst, 0), .constant(0))
            case "Sigmoid":
                return .binary(.div, .constant(1), .binary(.add, .constant(1), .unary(.exp, .unary(.neg, try required(inst, 0)))))
            case "LeakyRelu":
                let x = try required(inst, 0)
                return .select(.compare(.lt, x, .constant(0)), .binary(.mul, .constant(float(inst, "alpha", 0.01)), x), x)
            case "Gelu":
                let x = try required(inst, 0)
                var approximate = "none"
                if case .string(let s)? = inst.attributes["approximate"] { approximate = s }
                let inner: Expr
                switch approximate {
                case "none":
                    inner = .unary(.erf, .binary(.mul, x, .constant(Float(0.5.squareRoot()))))
                case "tanh":
                    let cube = Expr.binary(.mul, .binary(.mul, .binary(.mul, .constant(0.044715), x), x), x)
                    inner = .unary(.tanh, .binary(.mul, .constant(Float((2 / Double.pi).squareRoot())), .binary(.add, x, cube)))
                default:
                    throw unsupported("Gelu with approximate = \"\(approximate)\"")
                }
                return .binary(.mul, .binary(.mul, .constant(0.5), x), .binary(.add, .constant(1), inner))
            case "Clip":
                var e = try required(inst, 0)
                var low: Float?, high: Float?
                if inst.opset < 11 {
                    if inst.attributes["min"] != nil { low = float(inst, "min", 0) }
                    if inst.attributes["max"] != nil { high = float(inst, "max", 0) }
                } else {
                    for (k, isLow) in [(1, true), (2, false)] {
                        guard let b = try operand(inst, k) else { continue }
                        guard case .constant(let x) = b else { throw unsupported("Clip with a bound that is not a one-element constant") }
                        if isLow { low = x } else { high = x }
                    }
                }
                if let low { e = .binary(.max, e, .constant(low)) }
                if let high { e = .binary(.min, e, .constant(high)) }
                return e
            case "Where":
                return .select(try required(inst, 0), try required(inst, 1), try required(inst, 2))
            case "Cast":
                guard case .int(let to)? = inst.attributes["to"], let target = DType(onnxCode: Int32(to)),
                      target == .f32 || target == .f16 else {
                    throw unsupported("Cast to anything but f32 or f16")
                }
                let x = try required(inst, 0)
                // f16 → f32 is exact (loads already widen); f32 → f16 rounds.
                let source = function.type(of: inst.operands[0]!).dtype
                return target == .f16 && source == .f32 ? .cast(x, to: .f16) : x
            case "Identity":
                return try required(inst, 0)
            default:
                throw unsupported(op)
            }
        }

        mutating func finish() throws -> Kernel {
            let n = outputShape.reduce(1, *)
            var stores: [Statement] = []
            for (k, o) in outputs.enumerated() {
                guard let e = values[o] else { throw unsupported("a group whose output is not computed in it") }
                let b = buffers.count
                let type = try scalarType(o)
                buffers.append(KernelBuffer(name: "out\(k)", elementType: type, count: n, access: .write))
                var value = e
                if case .load = e { value = bind(e, type) }
                stores.append(.store(buffer: b, index: .i, value: value))
            }
            return Kernel(name: name, buffers: buffers, count: n, body: body + stores)
        }
    }
}
