import GLMCIR

/// The op set: every definition, looked up by name.
public enum OpRegistry {
    /// All definitions. Each family of ops lives in its own file and lists its definitions there.
    public static let all: [OpDefinition] =
        ElementwiseOps.all + ReductionOps.all + MovementOps.all + NeuralOps.all + ControlOps.all + MiscOps.all + FusedOps.all

    private static let byName: [OpName: OpDefinition] = {
        var map: [OpName: OpDefinition] = [:]
        for d in all { map[d.name] = d }
        return map
    }()

    public static func definition(of name: OpName) -> OpDefinition? { byName[name] }

    /// The newest opset version of the default ONNX domain that glmc knows (onnx 1.23.2 defines 28).
    public static let newestOpset = 28
}
