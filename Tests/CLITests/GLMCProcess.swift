import Foundation
import GLMCIR
import GLMCOps
import GLMCTestSupport
import XCTest

/// What one run of the `glmc` binary did.
struct CLIResult {
    var status: Int32
    var stdout: String
    var stderr: String
    var timedOut: Bool
    var signaled: Bool
}

/// Runs the `glmc` executable that `swift build` / `swift test` built (CLITests depends on it).
enum GLMC {
    /// The built binary. SwiftPM puts it next to the test runner: on Linux `Bundle.main` is the
    /// runner's folder (`.build/<triple>/debug`); on macOS the `.xctest` bundle sits in that folder.
    /// Falls back to `<package>/.build/debug/glmc`.
    static let path: String = {
        var candidates = [Bundle.main.bundleURL.appendingPathComponent("glmc").path]
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            candidates.append(bundle.bundleURL.deletingLastPathComponent().appendingPathComponent("glmc").path)
        }
        candidates.append(Fixtures.packageRoot + "/.build/debug/glmc")
        let fm = FileManager.default
        return candidates.first { fm.isExecutableFile(atPath: $0) } ?? candidates.last!
    }()

    /// Runs `glmc args...` with stdin closed and `environment` added to this process's; kills it
    /// after `timeout` seconds.
    static func run(_ args: [String], timeout: TimeInterval = 20, cwd: String? = nil,
                    environment: [String: String] = [:]) throws -> CLIResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = args
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        if let cwd { process.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()

        // Read both pipes concurrently so neither can fill up and block the child.
        let collected = Collected()
        let group = DispatchGroup()
        let outHandle = out.fileHandleForReading, errHandle = err.fileHandleForReading
        DispatchQueue.global().async(group: group) { collected.set(out: outHandle.readDataToEndOfFile()) }
        DispatchQueue.global().async(group: group) { collected.set(err: errHandle.readDataToEndOfFile()) }
        var timedOut = false
        if group.wait(timeout: .now() + timeout) == .timedOut {
            timedOut = true
            kill(process.processIdentifier, SIGKILL)
            group.wait()
        }
        process.waitUntilExit()
        let signaled = process.terminationReason == .uncaughtSignal
        let status = signaled ? 128 + process.terminationStatus : process.terminationStatus
        return CLIResult(status: status, stdout: String(decoding: collected.out, as: UTF8.self),
                         stderr: String(decoding: collected.err, as: UTF8.self), timedOut: timedOut, signaled: signaled)
    }

    private final class Collected: @unchecked Sendable {
        private let lock = NSLock()
        private var _out = Data(), _err = Data()
        var out: Data { lock.lock(); defer { lock.unlock() }; return _out }
        var err: Data { lock.lock(); defer { lock.unlock() }; return _err }
        func set(out: Data) { lock.lock(); _out = out; lock.unlock() }
        func set(err: Data) { lock.lock(); _err = err; lock.unlock() }
    }
}

extension XCTestCase {
    /// Exit status 1, and stderr exactly one `error: ` line containing every one of `parts`.
    func assertFails(_ r: CLIResult, containing parts: [String], stdoutEmpty: Bool = true,
                     _ context: String = "", file: StaticString = #filePath, line: UInt = #line) {
        let what = context.isEmpty ? "" : context + ": "
        XCTAssertFalse(r.timedOut, "\(what)timed out", file: file, line: line)
        XCTAssertFalse(r.signaled, "\(what)crashed (status \(r.status)); stderr: \(r.stderr)", file: file, line: line)
        XCTAssertEqual(r.status, 1, "\(what)exit status; stderr: \(r.stderr)", file: file, line: line)
        XCTAssertTrue(r.stderr.hasPrefix("error: "), "\(what)stderr does not start with 'error: ': \(r.stderr)", file: file, line: line)
        XCTAssertTrue(r.stderr.hasSuffix("\n"), "\(what)stderr is not one whole line: \(r.stderr)", file: file, line: line)
        XCTAssertEqual(r.stderr.filter { $0 == "\n" }.count, 1, "\(what)stderr is not exactly one line: \(r.stderr)", file: file, line: line)
        for part in parts where !r.stderr.contains(part) {
            XCTFail("\(what)stderr '\(r.stderr.trimmingCharacters(in: .newlines))' does not contain '\(part)'", file: file, line: line)
        }
        if stdoutEmpty { XCTAssertEqual(r.stdout, "", "\(what)stdout", file: file, line: line) }
    }

    /// Exit status 0 and nothing on stderr.
    func assertSucceeds(_ r: CLIResult, _ context: String = "", file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(r.timedOut, "\(context): timed out", file: file, line: line)
        XCTAssertEqual(r.status, 0, "\(context): exit status; stderr: \(r.stderr)", file: file, line: line)
        XCTAssertEqual(r.stderr, "", "\(context): stderr", file: file, line: line)
    }

    /// Same shape, dtype and elements (bytes for numbers, strings for strings).
    func assertSameTensor(_ a: Tensor, _ b: Tensor, _ context: String = "", file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.dtype, b.dtype, context, file: file, line: line)
        XCTAssertEqual(a.shape, b.shape, context, file: file, line: line)
        if case .string(let x) = a.storage, case .string(let y) = b.storage {
            XCTAssertEqual(x, y, context, file: file, line: line)
        } else {
            XCTAssertEqual(a.tensorData.bytes, b.tensorData.bytes, context, file: file, line: line)
        }
    }
}
