import GLMCIR
import GLMCOps

/// Lowers a `glmc.Fused` group (or one instruction) made of elementwise and broadcast ops on
/// tensors of static shapes and any element type but string to a `Kernel`.
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

    /// The ops this lowering handles (of the default ONNX domain); `ElementwiseOpsLowering.swift`
    /// defines each.
    public static let supportedOps: Set<String> = [
        "Identity", "Neg", "Abs", "Sign", "Reciprocal", "Exp", "Log", "Sqrt", "Erf", "Sin", "Cos", "Tan",
        "Asin", "Acos", "Atan", "Sinh", "Cosh", "Tanh", "Asinh", "Acosh", "Atanh", "Ceil", "Floor", "Round",
        "Relu", "LeakyRelu", "Elu", "Selu", "Celu", "Sigmoid", "HardSigmoid", "HardSwish", "Softplus", "Softsign",
        "Mish", "Gelu", "ThresholdedRelu", "Shrink", "Swish", "PRelu",
        "IsNaN", "IsInf", "Not", "And", "Or", "Xor", "BitwiseNot", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitShift",
        "Add", "Sub", "Mul", "Div", "Mod", "Pow", "Sum", "Mean", "Max", "Min", "Clip", "Where",
        "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "Cast", "CastLike",
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

    /// The kernel type of a tensor element type (every one but string).
    public static func scalarType(_ dtype: DType) -> ScalarType? {
        ScalarType(rawValue: dtype.rawValue)
    }

    /// The value of a one-element constant of any numeric or bool type, as a literal of its computed
    /// type (halves widen exactly to f32).
    static func literal(_ c: TensorData) throws -> Literal {
        guard c.elementCount == 1, !c.isElided, let type = scalarType(c.dtype) else { throw unsupported("a constant of \(c.type)") }
        switch c.dtype {
        case .f32: return .float(Double(c.elements(as: Float.self)[0]), .f32)
        case .f64: return .float(c.elements(as: Double.self)[0], .f64)
        case .f16: return .float(Double(halfToFloat(c.elements(as: UInt16.self)[0])), .f32)
        case .bf16: return .float(Double(bfloat16ToFloat(c.elements(as: UInt16.self)[0])), .f32)
        case .bool: return .int(c.elements(as: UInt8.self)[0] != 0 ? 1 : 0, .bool)
        case .i8: return .int(Int64(c.elements(as: Int8.self)[0]), type)
        case .i16: return .int(Int64(c.elements(as: Int16.self)[0]), type)
        case .i32: return .int(Int64(c.elements(as: Int32.self)[0]), type)
        case .i64: return .int(c.elements(as: Int64.self)[0], type)
        case .u8: return .uint(UInt64(c.elements(as: UInt8.self)[0]), type)
        case .u16: return .uint(UInt64(c.elements(as: UInt16.self)[0]), type)
        case .u32: return .uint(UInt64(c.elements(as: UInt32.self)[0]), type)
        case .u64: return .uint(c.elements(as: UInt64.self)[0], type)
        case .string: throw unsupported("a constant of \(c.type)")
        }
    }

    /// Whether a single instruction's constant operand `c` becomes a literal in its kernel (and so is
    /// no buffer argument of it).
    public static func inlinesConstant(_ c: TensorData) -> Bool {
        (try? literal(c)) != nil
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
        var boundValues: [Int: Expr] = [:]
        /// Arguments whose shape does not broadcast to the output (see `addArgument`).
        var unreadable: Set<ValueID> = []
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
                _ = try scalarType(o)
            }
            for a in arguments { try addArgument(a) }
        }

        func scalarType(_ v: ValueID) throws -> ScalarType {
            let dtype = function.type(of: v).dtype
            guard let t = ElementwiseLowering.scalarType(dtype) else { throw unsupported("a value of type \(dtype)") }
            return t
        }

        mutating func addArgument(_ v: ValueID) throws {
            let t = function.type(of: v)
            guard let shape = t.shape.staticSizes else { throw unsupported("an operand of dynamic shape \(t)") }
            let count = shape.reduce(1, *)
            // A one-element operand (Clip's bounds) is read at 0 whatever its rank. An operand that
            // does not broadcast to the output (CastLike's type donor) is a buffer nothing reads.
            var index = IndexExpr.constant(0)
            if count != 1 {
                do { index = try broadcastIndex(from: shape, to: outputShape) } catch { unreadable.insert(v) }
            }
            let b = buffers.count
            buffers.append(KernelBuffer(name: "in\(b)", elementType: try scalarType(v), count: count, access: .read))
            values[v] = .load(buffer: b, index: index)
        }

        /// Binds `e` to a temporary (or finds the one it already has) and returns the reference.
        mutating func bind(_ e: Expr, _ type: ScalarType) -> Expr {
            let type = type.computed
            switch e {
            case .constant, .temp: return e
            default: break
            }
            if let t = bound[e] { return .temp(t) }
            let t = bound.count
            bound[e] = t
            boundValues[t] = e
            types[t] = type
            body.append(.let(temp: t, type: type, value: e))
            return .temp(t)
        }

        /// Binds `e` to a temporary of its own type: for a value used several times.
        mutating func bind(_ e: Expr) -> Expr { bind(e, type(of: e)) }

        func type(of e: Expr) -> ScalarType { e.type(buffers: buffers, temps: types) }

        /// The operand as an expression; loads are bound to temporaries on first use.
        mutating func operand(_ inst: Instruction, _ k: Int) throws -> Expr? {
            guard k < inst.operands.count, let v = inst.operands[k] else { return nil }
            guard let e = values[v] else { throw unsupported("\(inst.op) reading a value from outside the group") }
            guard !unreadable.contains(v) else {
                throw unsupported("\(inst.op) reading a value of shape \(function.type(of: v).shape) that does not broadcast to \(outputShape)")
            }
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
                guard let shape = rt.shape.staticSizes else { throw unsupported("\(inst.op) of dynamic shape \(rt)") }
                _ = try broadcastIndex(from: shape, to: outputShape)
                let resultType = try scalarType(r)
                for case let v? in inst.operands { _ = try scalarType(v) }
                var e = try expression(inst)
                // A check of the lowering itself: what it computes has the result's type.
                guard type(of: e) == resultType.computed else {
                    throw unsupported("\(inst.op) computing \(type(of: e)) for a \(rt.dtype) result")
                }
                // The interpreter rounds every half-precision result; so does the kernel.
                e = roundedIfHalf(e, resultType)
                values[r] = bind(e, resultType)
            }
        }

        /// `e` rounded to `type` when that is f16 or bf16 (and `e` is not such a value already).
        func roundedIfHalf(_ e: Expr, _ type: ScalarType) -> Expr {
            guard type == .f16 || type == .bf16, !isRounded(e, to: type) else { return e }
            return .cast(e, to: type)
        }

        func isRounded(_ e: Expr, to type: ScalarType) -> Bool {
            switch e {
            case .cast(_, let t): return t == type
            case .load(let b, _): return buffers[b].elementType == type
            case .temp(let t): return boundValues[t].map { isRounded($0, to: type) } ?? false
            default: return false
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
