import Foundation
import GLMCIR
import GLMCOps
import GLMCPasses
import GLMCTestSupport
import XCTest

/// Runs every `Inputs/*.glir` file: each case is parsed, run through the passes its `// RUN:` line
/// names (with the verifier after every pass), printed, and matched against its CHECK lines.
final class GoldenPassTests: XCTestCase {
    static let inputs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Inputs")

    /// `--passes=a,b` or `-O<n>` from a RUN line.
    static func pipeline(_ run: String) throws -> [any Pass.Type] {
        if run.hasPrefix("--passes=") { return try PassRegistry.pipeline(names: String(run.dropFirst("--passes=".count))) }
        if run.hasPrefix("-O"), let level = Int(run.dropFirst(2)) { return PassRegistry.pipeline(level: level) }
        throw GLMCError("bad RUN line '\(run)'")
    }

    func testGoldenFiles() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.inputs.path).filter { $0.hasSuffix(".glir") }.sorted()
        XCTAssertFalse(files.isEmpty, "no .glir files in \(Self.inputs.path)")
        var caseCount = 0
        for file in files {
            let text = try String(contentsOf: Self.inputs.appendingPathComponent(file), encoding: .utf8)
            let golden = GoldenFile(text: text)
            let passes = try Self.pipeline(golden.run)
            for c in golden.cases {
                caseCount += 1
                let label = "\(file):\(c.firstLine)"
                do {
                    var module = try Parser.parse(c.text)
                    try ModuleVerifier.verify(module)
                    var manager = PassManager(passes: passes)
                    manager.instrumentation.verifyEach = true
                    try manager.run(&module)
                    let output = Printer(weights: .full).print(module)
                    let check = FileCheck(checks: c.text, firstLine: c.firstLine)
                    XCTAssertFalse(check.directives.isEmpty, "\(label): case has no CHECK lines")
                    if let failure = check.match(output) {
                        XCTFail("\(label): \(failure)\n--- output ---\n\(output)")
                    }
                } catch {
                    XCTFail("\(label): \(error)")
                }
            }
        }
        print("golden pass tests: \(caseCount) cases in \(files.count) files")
    }
}
