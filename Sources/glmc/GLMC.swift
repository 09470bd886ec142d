import ArgumentParser
import Foundation
import GLMCIR

@main
struct GLMC: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "glmc",
        abstract: "A graph compiler and model converter: ONNX models into an SSA IR, optimized, into CPU, OpenCL and CUDA plans.",
        version: "0.1.0",
        subcommands: [Dump.self, Check.self, Run.self, Convert.self, Calibrate.self, Inspect.self, Ops.self]
    )
}

/// Runs a command body; a `GLMCError` becomes one `error:` line on stderr and exit status 1.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as GLMCError {
        printError(error.message)
        throw ExitCode(1)
    } catch let error as ExitCode {
        throw error
    } catch {
        // Foundation and system errors: still one line, still exit status 1.
        printError("\(error.localizedDescription)")
        throw ExitCode(1)
    }
}

func printError(_ message: String) {
    let line = message.replacingOccurrences(of: "\n", with: " ")
    FileHandle.standardError.write(Data("error: \(line)\n".utf8))
}

func printWarning(_ message: String) {
    FileHandle.standardError.write(Data("warning: \(message)\n".utf8))
}

/// Monotonic milliseconds, for `--timing` and `--repeat`.
func nowMilliseconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) * 1e3 + Double(ts.tv_nsec) / 1e6
}
