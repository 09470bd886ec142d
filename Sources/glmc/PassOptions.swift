import ArgumentParser
import Foundation
import GLMCIR
import GLMCPasses

/// Pipeline selection and pass instrumentation, shared by `dump` and `convert`.
struct PassOptions: ParsableArguments {
    @Option(name: .customShort("O", allowingJoined: true), help: "Optimization level 0-3 (dump: 0, convert: 2 unless given).")
    var level: Int?

    @Option(help: "Run exactly these passes, comma-separated (instead of an -O pipeline).")
    var passes: String?

    @Flag(help: "Print the IR after every pass (to stderr).")
    var printIrAfterAll = false

    @Option(help: "Print the IR before this pass (repeatable).")
    var printIrBefore: [String] = []

    @Option(help: "Print the IR after this pass (repeatable).")
    var printIrAfter: [String] = []

    @Flag(help: "Print the IR after each pass that changed it.")
    var printIrAfterChange = false

    @Flag(help: "Print a table of wall time per pass (to stderr).")
    var timePasses = false

    @Flag(help: "Print each pass's statistics (to stderr).")
    var passStatistics = false

    @Flag(help: "Run the verifier after every pass.")
    var verifyEach = false

    func validate() throws {
        if let level, !(0 ... 3).contains(level) { throw ValidationError("-O takes 0, 1, 2 or 3") }
        if level != nil && passes != nil { throw ValidationError("give either -O or --passes, not both") }
        for name in printIrBefore + printIrAfter where PassRegistry.pass(named: name) == nil {
            throw ValidationError("unknown pass '\(name)'; known passes: \(PassRegistry.all.map { $0.name }.joined(separator: ", "))")
        }
    }

    /// Whether a flag asks to watch the passes run (dumps, timing, statistics, verification): then a
    /// cached plan must not stand in for running them.
    var observesPasses: Bool {
        printIrAfterAll || !printIrBefore.isEmpty || !printIrAfter.isEmpty || printIrAfterChange
            || timePasses || passStatistics || verifyEach
    }

    /// The names of the passes `optimize` runs, in order.
    func pipelineNames(defaultLevel: Int) throws -> [String] {
        let pipeline = try passes.map { try PassRegistry.pipeline(names: $0) } ?? PassRegistry.pipeline(level: level ?? defaultLevel)
        return pipeline.map { $0.name }
    }

    /// Runs the chosen pipeline on `module`, printing what the flags ask for to stderr.
    func optimize(_ module: inout Module, defaultLevel: Int) throws {
        let pipeline = try passes.map { try PassRegistry.pipeline(names: $0) } ?? PassRegistry.pipeline(level: level ?? defaultLevel)
        var manager = PassManager(passes: pipeline)
        manager.instrumentation.printAfterAll = printIrAfterAll
        manager.instrumentation.printBefore = Set(printIrBefore)
        manager.instrumentation.printAfter = Set(printIrAfter)
        manager.instrumentation.printAfterChange = printIrAfterChange
        manager.instrumentation.verifyEach = verifyEach
        let runs = try manager.run(&module) { text in FileHandle.standardError.write(Data(text.utf8)) }
        if timePasses { FileHandle.standardError.write(Data((PassManager.timingTable(runs) + "\n").utf8)) }
        if passStatistics {
            let text = PassManager.statisticsText(runs)
            if !text.isEmpty { FileHandle.standardError.write(Data((text + "\n").utf8)) }
        }
    }
}
