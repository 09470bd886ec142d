import GLMCIR

/// glmc's own ops (domain `glmc`), made by passes rather than front ends.
///
/// `glmc.Fused` is a fusion group: one kernel to the back ends, and to everything else exactly the
/// computation of its `body` (a closed function whose arguments are the op's operands). `kind` names
/// the pattern (`conv_bias_relu`, `layer_norm`, `elementwise`, ...) for dumps and code generation.
public enum FusedOps {
    public static let domain = "glmc"
    public static let version = 1
    public static let fused = OpName("Fused", domain: domain)

    public static let all: [OpDefinition] = [fusedOp]

    static let fusedOp = OpDefinition("Fused", domain: domain, since: [1], infer: { ctx in
        guard let body = try ctx.graph("body") else { throw ctx.error("needs a body graph") }
        guard body.arguments.count == ctx.inputTypes.count, body.captures.isEmpty else {
            throw ctx.error("body takes \(body.arguments.count) arguments and \(body.captures.count) captures for \(ctx.inputTypes.count) operands")
        }
        for (i, (arg, operand)) in zip(body.arguments, ctx.inputTypes).enumerated() {
            if let operand, !operand.isCompatible(with: body.type(of: arg)) {
                throw ctx.error("operand \(i) is \(operand) but the body expects \(body.type(of: arg))")
            }
        }
        guard body.outputs.count == ctx.outputCount else {
            throw ctx.error("body gives \(body.outputs.count) results for \(ctx.outputCount)")
        }
        return body.outputs.map { body.type(of: $0) }
    }, evaluate: { ctx in
        guard let body = try ctx.graph("body") else { throw ctx.error("needs a body graph") }
        let inputs = try ctx.inputs.indices.map { try ctx.requiredInput($0) }
        return try ctx.runSubgraph(body, inputs)
    })
}
