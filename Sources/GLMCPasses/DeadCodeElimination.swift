import GLMCIR
import GLMCOps

/// Removes instructions whose results nothing reads, in every function including nested regions.
/// One backward sweep suffices: walking the body from the end, an instruction is live when one of
/// its results is still counted as used, and removing a dead one releases its operands first.
public struct DeadCodeElimination: Pass {
    public static let name = "dce"
    public static let summary = "Removes instructions whose results nothing reads."
    public init() {}

    public func run(on module: inout Module, context: PassContext) throws -> Bool {
        Self.eliminate(in: &module.main, context: context)
    }

    static func eliminate(in f: inout Function, context: PassContext) -> Bool {
        var changed = false
        // Nested regions first: their dead code may hold captures of outer values.
        for i in f.body.indices {
            for key in f.body[i].attributes.keys.sorted() {
                switch f.body[i].attributes[key]! {
                case .graph(var g):
                    if eliminate(in: &g, context: context) { f.body[i].attributes[key] = .graph(g); changed = true }
                case .graphs(var gs):
                    var any = false
                    for j in gs.indices where eliminate(in: &gs[j], context: context) { any = true }
                    if any { f.body[i].attributes[key] = .graphs(gs); changed = true }
                default: break
                }
            }
        }
        var uses = f.useCounts()
        var dead = Set<Int>()
        for i in f.body.indices.reversed() {
            let inst = f.body[i]
            guard inst.results.allSatisfy({ uses[$0.index] == 0 }) else { continue }
            dead.insert(i)
            for case let v? in inst.operands { uses[v.index] -= 1 }
            for nested in inst.nestedFunctions { for c in nested.captures { uses[c.outer.index] -= 1 } }
        }
        guard !dead.isEmpty else { return changed }
        f.removeInstructions(at: dead)
        context.count("instructions removed", dead.count)
        return true
    }
}
