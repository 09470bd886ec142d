import GLMCIR
import GLMCOps

/// Evaluates instructions whose operands are all constants with the interpreter (under a size cap).
///
/// One forward sweep per function (nested regions first): an instruction whose operands — and the
/// values its nested regions capture — are all constants is evaluated with its op definition and
/// replaced by one `const` per result, keeping the result ids and names; the types become the
/// computed static types. Folded results are constants for the instructions after them, so whole
/// chains fold in one sweep. Not folded: random ops (and training-mode Dropout), `glmc.Fused`,
/// unknown ops, anything whose evaluation fails, and results larger than
/// `PassContext.foldSizeLimitBytes` (so folding never materializes a huge Expand, Tile or
/// ConstantOfShape into the weights). Afterwards, dependent types are tightened with shape inference.
public struct ConstantFold: Pass {
    public static let name = "constant-fold"
    public static let summary = "Evaluates instructions whose operands are all constants with the interpreter (under a size cap)."
    public init() {}

    public func run(on module: inout Module, context: PassContext) throws -> Bool {
        let opset = Folding.constantOpset(module)
        return Folding.forEachFunction(&module.main) { f in
            let folded = Self.fold(in: &f, opset: opset, limit: context.foldSizeLimitBytes)
            guard folded > 0 else { return false }
            context.count("instructions folded", folded)
            Folding.refineTypes(in: &f)
            return true
        }
    }

    /// Folds what it can in one sweep over `f`; returns how many instructions were folded.
    static func fold(in f: inout Function, opset: Int, limit: Int) -> Int {
        var constants = Folding.constants(in: f)
        var body: [Instruction] = []
        body.reserveCapacity(f.body.count)
        var folded = 0
        for inst in f.body {
            // A `Constant` already in `value` form is what folding produces; other forms (value_int...) fold.
            guard inst.constantValue == nil, let tensors = Folding.evaluate(inst, in: f, constants: constants, limit: limit) else {
                body.append(inst)
                continue
            }
            let consts = Folding.constantInstructions(for: inst.results, tensors: tensors, in: &f, opset: opset, nodeName: inst.nodeName)
            for c in consts { constants[c.results[0]] = c.constantValue }
            body += consts
            folded += 1
        }
        f.body = body
        return folded
    }
}
