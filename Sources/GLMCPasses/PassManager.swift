#if canImport(Glibc)
import Glibc
#endif
import GLMCIR
import GLMCOps

/// Runs a pipeline of passes and owns all instrumentation: IR dumps before/after passes, timing,
/// statistics and verification after each pass.
public struct PassManager {
    public struct Instrumentation: Sendable {
        public var printBefore: Set<String> = []
        public var printAfter: Set<String> = []
        public var printAfterAll = false
        /// Print after a pass only when it changed the module.
        public var printAfterChange = false
        public var verifyEach = false
        public var weights: Printer.WeightMode = .elideLarge
        public init() {}
    }

    /// What one pass run did.
    public struct PassRun: Sendable {
        public var name: String
        public var milliseconds: Double
        public var changed: Bool
        public var statistics: [String: Int]
        public var statisticsOrder: [String]
    }

    public var passes: [any Pass.Type]
    public var instrumentation: Instrumentation
    public var foldSizeLimitBytes: Int = 1 << 20

    public init(passes: [any Pass.Type], instrumentation: Instrumentation = Instrumentation()) {
        self.passes = passes
        self.instrumentation = instrumentation
    }

    /// Runs every pass in order. IR dumps go to `dump` (headed `// *** IR Dump After <pass> ***`).
    @discardableResult
    public func run(_ module: inout Module, dump: (String) -> Void = { _ in }) throws -> [PassRun] {
        let printer = Printer(weights: instrumentation.weights)
        var runs: [PassRun] = []
        for passType in passes {
            let pass = passType.init()
            let name = passType.name
            if instrumentation.printBefore.contains(name) {
                dump("// *** IR Dump Before \(name) ***\n" + printer.print(module))
            }
            let context = PassContext(foldSizeLimitBytes: foldSizeLimitBytes)
            let start = monotonicMilliseconds()
            let changed: Bool
            do {
                changed = try pass.run(on: &module, context: context)
            } catch let e as GLMCError {
                throw GLMCError("pass \(name): \(e.message)")
            }
            let elapsed = monotonicMilliseconds() - start
            if instrumentation.verifyEach {
                do { try ModuleVerifier.verify(module) } catch let e as GLMCError {
                    throw GLMCError("the IR is invalid after pass \(name): \(e.message)")
                }
            }
            if instrumentation.printAfterAll || instrumentation.printAfter.contains(name)
                || (instrumentation.printAfterChange && changed) {
                dump("// *** IR Dump After \(name) ***\n" + printer.print(module))
            }
            var stats: [String: Int] = [:]
            for s in context.statistics { stats[s.key] = s.value }
            runs.append(PassRun(name: name, milliseconds: elapsed, changed: changed, statistics: stats,
                                statisticsOrder: context.statistics.map(\.key)))
        }
        return runs
    }

    /// `--time-passes`: wall time per pass, in pipeline order, with a total.
    public static func timingTable(_ runs: [PassRun]) -> String {
        let total = runs.reduce(0) { $0 + $1.milliseconds }
        let width = max(20, runs.map(\.name.count).max() ?? 0)
        var lines = ["===== pass timing =====",
                     pad("pass", width) + "      ms       %  changed"]
        for r in runs {
            let share = total > 0 ? r.milliseconds / total * 100 : 0
            lines.append(pad(r.name, width) + format(r.milliseconds, 8, 3) + format(share, 8, 1) + "  " + (r.changed ? "yes" : "no"))
        }
        lines.append(pad("total", width) + format(total, 8, 3))
        return lines.joined(separator: "\n")
    }

    /// Per-pass statistics, one line each: `constant-fold: 42 instructions folded`.
    public static func statisticsText(_ runs: [PassRun]) -> String {
        runs.flatMap { r in r.statisticsOrder.map { "\(r.name): \(r.statistics[$0] ?? 0) \($0)" } }.joined(separator: "\n")
    }
}

private func pad(_ s: String, _ width: Int) -> String { s.count >= width ? s : s + String(repeating: " ", count: width - s.count) }

private func format(_ v: Double, _ width: Int, _ decimals: Int) -> String {
    var scale = 1.0
    for _ in 0 ..< decimals { scale *= 10 }
    let rounded = (v * scale).rounded() / scale
    var text = String(rounded)
    if let dot = text.firstIndex(of: ".") {
        let fraction = text.distance(from: dot, to: text.endIndex) - 1
        if fraction < decimals { text += String(repeating: "0", count: decimals - fraction) }
    } else {
        text += "." + String(repeating: "0", count: decimals)
    }
    return String(repeating: " ", count: max(0, width - text.count)) + text
}

func monotonicMilliseconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) * 1e3 + Double(ts.tv_nsec) / 1e6
}
