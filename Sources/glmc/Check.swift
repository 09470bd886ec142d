import ArgumentParser
import Foundation
import GLMCFrontends
import GLMCIR
import GLMCOps

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate a model and list every op glmc does not support.",
        discussion: "Exit status 0 when the model imports, verifies and uses only supported ops; 1 otherwise.")

    @Argument(help: "An ONNX model or glmc IR text (detected by content).")
    var model: String

    @Flag(help: "Print import and verify times (milliseconds) on a `timing:` line.")
    var timing = false

    func run() throws {
        try reportingErrors {
            let start = nowMilliseconds()
            let result = try ModelLoader.load(path: model, allowUnsupported: true)
            let imported = nowMilliseconds()
            try ModuleVerifier.verify(result.module)
            let verified = nowMilliseconds()
            if timing {
                print(String(format: "timing: import_ms=%.3f verify_ms=%.3f", imported - start, verified - imported))
            }
            let f = result.module.main
            if result.unsupported.isEmpty {
                let ops = Set(f.body.map(\.op)).count
                print("ok: \(model): \(f.body.count) instructions, \(ops) distinct ops, \(f.arguments.count) inputs, \(f.outputs.count) outputs")
                return
            }
            print("op\tdomain\topset\tcount\tfirst nodes\treason")
            for u in result.unsupported {
                let domain = u.op.domain.isEmpty ? "ai.onnx" : u.op.domain
                print("\(u.op.type)\t\(domain)\t\(u.opset)\t\(u.count)\t\(u.nodeNames.map { $0.isEmpty ? "<unnamed>" : $0 }.joined(separator: ","))\t\(u.reason)")
            }
            let total = result.unsupported.reduce(0) { $0 + $1.count }
            throw GLMCError("\(model): \(result.unsupported.count) unsupported op type\(result.unsupported.count == 1 ? "" : "s") (\(total) node\(total == 1 ? "" : "s"))")
        }
    }
}
