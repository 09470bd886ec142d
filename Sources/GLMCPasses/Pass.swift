import GLMCIR
import GLMCOps

/// A transformation of a module. Passes are small value types with no state that survives between
/// runs; what they want to report goes through the context's statistics. A pass never prints.
public protocol Pass: Sendable {
    /// Kebab-case name used by `--passes` and `--print-ir-after=`.
    static var name: String { get }
    /// One line for `Docs/Passes.md` and `glmc passes`.
    static var summary: String { get }
    init()
    /// Transforms `module` in place; returns whether anything changed.
    func run(on module: inout Module, context: PassContext) throws -> Bool
}

extension Pass {
    public var name: String { Self.name }
}

/// Per-run services for a pass: statistics and tuning knobs. A new context is made for every run.
public final class PassContext: @unchecked Sendable {
    /// Constant folding never creates a tensor larger than this many bytes (folding must not blow
    /// up the weights, e.g. by materializing a broadcast).
    public var foldSizeLimitBytes: Int
    public private(set) var statistics: [(key: String, value: Int)] = []

    public init(foldSizeLimitBytes: Int = 1 << 20) {
        self.foldSizeLimitBytes = foldSizeLimitBytes
    }

    /// Adds `value` to the statistic `key` ("instructions folded" → "constant-fold: 42 instructions folded").
    public func count(_ key: String, _ value: Int = 1) {
        if let i = statistics.firstIndex(where: { $0.key == key }) {
            statistics[i].value += value
        } else {
            statistics.append((key, value))
        }
    }
}

/// Every pass glmc has, by name, and the -O pipelines.
public enum PassRegistry {
    public static let all: [any Pass.Type] = [
        ConstantFold.self, FoldShapeComputations.self, DeadCodeElimination.self,
        CommonSubexpressionElimination.self, AlgebraicSimplification.self,
        FoldBatchNorm.self, FoldAffineIntoProducer.self,
        FuseNormalization.self, FuseGelu.self, FuseAttention.self,
        FuseProducerActivation.self, FuseElementwise.self,
        InlineConstantIf.self, UnrollLoops.self,
    ]

    public static func pass(named name: String) -> (any Pass.Type)? {
        all.first { $0.name == name }
    }

    /// The passes of optimization level 0-3.
    /// - O0: nothing (the imported graph).
    /// - O1: folding and cleanup; Ifs with a constant condition inlined (and folded again).
    /// - O2: + algebraic simplification, CSE and folding of BatchNormalization / affine ops into weights.
    /// - O3: + loops of constant trip count unrolled, pattern fusions and general elementwise fusion.
    /// Inlining and unrolling expose constants (an If's condition computed from a bound input, a
    /// trip count computed in an outer body) that only folding after them reveals, so each is
    /// followed by folding, and the later levels run them again.
    public static func pipeline(level: Int) -> [any Pass.Type] {
        let cleanup: [any Pass.Type] = [FoldShapeComputations.self, ConstantFold.self, DeadCodeElimination.self]
        let inlineIfs: [any Pass.Type] = [InlineConstantIf.self] + cleanup
        switch level {
        case ...0: return []
        case 1: return cleanup + inlineIfs
        case 2:
            return pipeline(level: 1) + [AlgebraicSimplification.self, CommonSubexpressionElimination.self,
                                         FoldBatchNorm.self, FoldAffineIntoProducer.self] + inlineIfs
        default:
            let unroll: [any Pass.Type] = [UnrollLoops.self] + inlineIfs
            return pipeline(level: 2) + unroll + unroll
                + [AlgebraicSimplification.self, CommonSubexpressionElimination.self, DeadCodeElimination.self,
                   FuseNormalization.self, FuseGelu.self, FuseAttention.self,
                   FuseProducerActivation.self, FuseElementwise.self, DeadCodeElimination.self]
        }
    }

    /// Passes from a comma-separated list of names; unknown names are an error listing the known ones.
    public static func pipeline(names: String) throws -> [any Pass.Type] {
        try names.split(separator: ",").map { raw in
            let name = raw.trimmingCharacters(in: .whitespaces)
            guard let pass = pass(named: name) else {
                throw GLMCError("unknown pass '\(name)'; known passes: \(all.map { $0.name }.joined(separator: ", "))")
            }
            return pass
        }
    }
}
