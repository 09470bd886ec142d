import ArgumentParser
import GLMCIR
import GLMCPlan

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Summarize a plan file (target, kernels, arena, weights, inputs and outputs).",
        discussion: "The plan's format version and checksum are verified first (Docs/PlanFormat.md).")

    @Argument(help: "A plan file.") var plan: String
    @Flag(help: "Print one JSON object (keys include target, kernels, arena_bytes, weights_bytes, inputs, outputs).")
    var json = false

    func run() throws {
        try reportingErrors {
            let file: PlanFile
            do {
                file = try PlanReader.read(path: plan)
            } catch let e as PlanError {
                throw GLMCError(e.message.hasPrefix(plan) ? e.message : "\(plan): \(e.message)")
            }
            let summary = PlanSummary(file)
            print(json ? summary.json() : summary.text)
        }
    }
}
