import ArgumentParser
import GLMCOps

struct Ops: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the ops glmc supports, with the opset versions at which each changed.")

    @Flag(help: "Print a Markdown table (Docs/Ops.md is made this way).")
    var markdown = false

    func run() {
        let definitions = OpRegistry.all.sorted { ($0.name.domain, $0.name.type) < ($1.name.domain, $1.name.type) }
        if markdown {
            print("| op | domain | schema versions |\n|---|---|---|")
            for d in definitions {
                print("| \(d.name.type) | \(d.name.domain.isEmpty ? "ai.onnx" : d.name.domain) | \(d.sinceVersions.map(String.init).joined(separator: ", ")) |")
            }
        } else {
            for d in definitions {
                print("\(d.name)\t\(d.sinceVersions.map(String.init).joined(separator: ","))")
            }
        }
    }
}
