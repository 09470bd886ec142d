import GLMCIR
import GLMCOps

/// Replaces an `If` whose condition is a constant by the body of the branch it takes.
///
/// One forward sweep per function (nested regions first, so the branches are already simplified):
/// when an `If`'s condition is a one-element constant, the taken branch is copied in place of the
/// `If` (`RegionInlining.copy`: captures become the outer values they stand for, every branch
/// value a fresh value, result types inferred again), and readers of the `If`'s results read the
/// branch's outputs instead. The copied instructions go through the same sweep, so an `If` in the
/// branch whose condition the copy makes constant (a captured constant) is inlined too; one whose
/// condition must first be folded waits for the next run (the pipelines run this pass again after
/// folding). Regions nested in the copied instructions are kept as they are.
///
/// Why: a branch's results are typed as the merge of both branches (`f32[?]` when they differ),
/// so shapes behind an `If` stay unknown; with the condition known at compile time — a bound
/// `--input-value`, an attribute the exporter turned into a constant — the taken branch gives
/// static shapes, and back ends that cannot run control flow get straight-line code.
public struct InlineConstantIf: Pass {
    public static let name = "inline-constant-if"
    public static let summary = "Replaces an If whose condition is a constant by the body of the branch it takes."
    public init() {}

    public func run(on module: inout Module, context: PassContext) throws -> Bool {
        Folding.forEachFunction(&module.main) { f in
            var inliner = Inliner(f: f)
            for inst in f.body { inliner.emit(inst) }
            guard inliner.inlined > 0 else { return false }
            inliner.f.body = inliner.body
            Folding.renameOutputs(&inliner.f, inliner.rename)
            Folding.refineTypes(in: &inliner.f)
            f = inliner.f
            context.count("ifs inlined", inliner.inlined)
            return true
        }
    }

    /// The sweep over one function: the new body, and how the results of inlined `If`s were renamed.
    private struct Inliner {
        var f: Function
        var constants: [ValueID: TensorData]
        var body: [Instruction] = []
        var rename: [ValueID: ValueID] = [:]
        var inlined = 0

        init(f: Function) {
            self.f = f
            constants = Folding.constants(in: f)
        }

        mutating func emit(_ original: Instruction) {
            var inst = original
            Folding.rename(&inst, rename)
            guard RegionInlining.isOp(inst, "If"), let condition = RegionInlining.scalar(inst.operands.first ?? nil, constants),
                  let branch = RegionInlining.graph(inst, condition != 0 ? "then_branch" : "else_branch"),
                  branch.arguments.isEmpty, branch.outputs.count >= inst.results.count else {
                if let c = inst.constantValue { constants[inst.results[0]] = c }
                body.append(inst)
                return
            }
            let firstNew = f.values.count
            var copy = RegionInlining.Copy(branch, arguments: [])
            for original in branch.body { emit(copy.copy(original, into: &f, constants: &constants, rename: rename)) }
            for (r, output) in zip(inst.results, copy.outputs(rename: rename)) {
                RegionInlining.replace(r, by: output, in: &f, rename: &rename, createdFrom: firstNew)
            }
            inlined += 1
        }
    }
}
