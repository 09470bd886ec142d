import GLMCIR

/// How an op may take part in a fusion group (TVM's `OpPatternKind`), ordered from the most to the
/// least fusable: a group's kind is the largest kind of its members.
///
/// - `elementwise`: each output element depends on the input element at the same index (Relu, Exp).
/// - `broadcast`: elementwise after broadcasting its operands (Add, Where, Clip). An operand that
///   already has the result's shape is read elementwise.
/// - `injective`: each output element reads one input element at a computable index (Reshape,
///   Transpose, Slice, Concat, Gather with constant indices).
/// - `commReduce`: a reduction over some axes (Reduce*, ArgMax, Softmax, the normalizations).
/// - `outEWiseFusable`: a heavy op whose output can take an elementwise epilogue (Conv, MatMul, Gemm).
/// - `opaque`: never fused (pooling, Resize, control flow, data-dependent shapes, RNNs, ...).
public enum FusionKind: Int, Comparable, Sendable, CaseIterable {
    case elementwise, broadcast, injective, commReduce, outEWiseFusable, opaque

    public static func < (a: FusionKind, b: FusionKind) -> Bool { a.rawValue < b.rawValue }

    /// An anchor is the one heavy op a group is built around; a group never holds two.
    public var isAnchor: Bool { self == .commReduce || self == .outEWiseFusable }
}

extension OpRegistry {
    private static let unaryElementwise: Set<String> = [
        "Abs", "Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "BitwiseNot", "Cast", "Ceil", "Celu",
        "Cos", "Cosh", "Elu", "Erf", "Exp", "Floor", "Gelu", "HardSigmoid", "HardSwish", "IsInf", "IsNaN",
        "LeakyRelu", "Log", "Mish", "Neg", "Not", "Reciprocal", "Relu", "Round", "Selu", "Shrink",
        "Sigmoid", "Sign", "Sin", "Sinh", "Softplus", "Softsign", "Sqrt", "Swish", "Tan", "Tanh",
        "ThresholdedRelu",
    ]
    /// Elementwise ops with several operands that broadcast (BatchNormalization in inference mode is
    /// a per-channel affine map).
    private static let broadcasting: Set<String> = [
        "Add", "Sub", "Mul", "Div", "Pow", "Mod", "BitShift", "PRelu", "Where", "Clip", "CastLike",
        "Sum", "Mean", "Max", "Min", "And", "Or", "Xor", "BitwiseAnd", "BitwiseOr", "BitwiseXor",
        "Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "QuantizeLinear",
        "DequantizeLinear", "BatchNormalization",
    ]
    private static let injective: Set<String> = [
        "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Expand", "Slice", "Concat",
        "Gather", "Pad", "DepthToSpace", "SpaceToDepth", "Identity", "Tile",
    ]
    private static let reductions: Set<String> = [
        "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
        "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin", "Softmax",
        "LogSoftmax", "Hardmax", "LayerNormalization", "RMSNormalization", "GroupNormalization",
        "InstanceNormalization", "LpNormalization", "MeanVarianceNormalization",
    ]
    private static let outputFusable: Set<String> = ["Conv", "ConvTranspose", "MatMul", "Gemm"]

    /// The fusion kind of an op of the default ONNX domain, from its name alone. Ops of other domains
    /// (glmc.Fused included: its kind depends on its body) are opaque here; see
    /// `fusionKind(of:isConstant:)` for one instruction.
    public static func fusionKind(of op: OpName) -> FusionKind {
        guard op.domain.isEmpty || op.domain == "ai.onnx" else { return .opaque }
        let t = op.type
        if unaryElementwise.contains(t) { return .elementwise }
        if broadcasting.contains(t) { return .broadcast }
        if injective.contains(t) { return .injective }
        if reductions.contains(t) { return .commReduce }
        if outputFusable.contains(t) { return .outEWiseFusable }
        return .opaque
    }

    /// The fusion kind of one instruction, which may be less fusable than its op: an injective op
    /// whose shape, index or pad operands are not constants (`isConstant`) moves data in a
    /// data-dependent way and is opaque; so are Pad modes other than "constant", training
    /// BatchNormalization, instructions with several results (Dropout's mask) and ones with nested
    /// regions.
    /// A `glmc.Fused` group is outEWiseFusable when its kind starts with conv/matmul/gemm, a
    /// reduction when it names a normalization or softmax, and otherwise takes the kind of its body.
    public static func fusionKind(of inst: Instruction, isConstant: (ValueID) -> Bool) -> FusionKind {
        if inst.op == FusedOps.fused { return fusedGroupKind(inst) }
        let kind = fusionKind(of: inst.op)
        guard kind != .opaque, inst.results.count == 1, inst.nestedFunctions.isEmpty else { return .opaque }
        // Training BatchNormalization normalizes with the batch's own statistics: a reduction.
        if inst.op.type == "BatchNormalization", let training = inst.attributes["training_mode"] {
            guard case .int(0) = training else { return .opaque }
        }
        if kind == .injective, inst.op.type != "Concat" {
            // Operand 0 is the data; every other operand says where it goes.
            for case let v? in inst.operands.dropFirst() where !isConstant(v) { return .opaque }
            if inst.op.type == "Pad", let mode = inst.attributes["mode"] {
                guard case .string("constant") = mode else { return .opaque }
            }
        }
        return kind
    }

    private static func fusedGroupKind(_ inst: Instruction) -> FusionKind {
        guard case .string(let name)? = inst.attributes["kind"], case .graph(let body)? = inst.attributes["body"] else {
            return .opaque
        }
        if ["conv", "matmul", "gemm"].contains(where: name.hasPrefix) { return .outEWiseFusable }
        if name.contains("norm") || name.contains("softmax") { return .commReduce }
        // Otherwise the body decides: elementwise/injective members only, or one anchor among them.
        let constants = Set(body.body.filter { $0.constantValue != nil }.flatMap(\.results))
        var result = FusionKind.elementwise
        var anchors = 0
        for member in body.body where member.constantValue == nil {
            let k = fusionKind(of: member, isConstant: constants.contains)
            if k == .opaque { return .opaque }
            if k.isAnchor { anchors += 1 }
            result = max(result, k)
        }
        return anchors > 1 ? .opaque : result
    }
}
