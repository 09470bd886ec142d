import Foundation
import GLMCInterpreter
import GLMCOps
import GLMCTestSupport
import XCTest

/// `glmc convert` on the TorchScript fixtures (Tests/Fixtures/torchscript, made by
/// scripts/make_torchscript_fixtures.py): CPU plans and ONNX files that match PyTorch's outputs.
final class TorchScriptCLITests: XCTestCase {
    static let directory = Fixtures.directory + "/torchscript/"

    /// name, the archive, extra convert arguments, the input's name.
    static let models: [(name: String, archive: String, arguments: [String], input: String)] = [
        ("cnn", "cnn.pt", ["--input-shape", "x=1x3x16x16"], "x"),
        ("cnn_unfrozen", "cnn_unfrozen.pt", [], "x"),
        ("encoder", "encoder.pt", ["--input-shape", "ids=1x8", "--input-type", "ids=i64"], "ids"),
        ("encoder_unfrozen", "encoder_unfrozen.pt", [], "ids"),
    ]

    var temporary: String!

    override func setUpWithError() throws {
        temporary = NSTemporaryDirectory() + "glmc-torchscript-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: temporary, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: temporary) }

    func assertClose(_ actual: Tensor, _ expected: Tensor, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.shape, expected.shape, what, file: file, line: line)
        for (a, e) in zip(actual.doubles, expected.doubles) where abs(a - e) > 1e-3 * abs(e) + 1e-5 {
            return XCTFail("\(what): \(a) differs from PyTorch's \(e)", file: file, line: line)
        }
    }

    func testFrozenCNNConvertsToACPUPlanThatMatchesPyTorch() throws { try assertCPUPlanMatches(Self.models[0]) }
    func testUnfrozenCNNConvertsToACPUPlanThatMatchesPyTorch() throws { try assertCPUPlanMatches(Self.models[1]) }
    func testFrozenEncoderConvertsToACPUPlanThatMatchesPyTorch() throws { try assertCPUPlanMatches(Self.models[2]) }
    func testUnfrozenEncoderConvertsToACPUPlanThatMatchesPyTorch() throws { try assertCPUPlanMatches(Self.models[3]) }

    func assertCPUPlanMatches(_ m: (name: String, archive: String, arguments: [String], input: String)) throws {
        do {
            let plan = "\(temporary!)/\(m.name).plan"
            let convert = try GLMC.run(["convert", Self.directory + m.archive, "--target", "cpu", "-o", plan] + m.arguments, timeout: 120)
            XCTAssertEqual(convert.status, 0, "\(m.name): \(convert.stderr)")
            let out = "\(temporary!)/\(m.name)-out"
            let run = try GLMC.run(["run", plan, "--input", Self.directory + m.name + ".input.npy", "--output-dir", out])
            XCTAssertEqual(run.status, 0, "\(m.name): \(run.stderr)")
            assertClose(try NPY.read(path: out + "/output_0.npy"), try NPY.read(path: Self.directory + m.name + ".output.npy"), m.name)
        }
    }

    func testNonFrozenArchiveRunsInTheInterpreter() throws {
        let out = "\(temporary!)/out"
        let run = try GLMC.run(["run", Self.directory + "cnn_unfrozen.pt", "--input", Self.directory + "cnn_unfrozen.input.npy", "--output-dir", out])
        XCTAssertEqual(run.status, 0, run.stderr)
        assertClose(try NPY.read(path: out + "/output_0.npy"), try NPY.read(path: Self.directory + "cnn_unfrozen.output.npy"), "interpreter")
    }

    /// `onnx.checker` (full check) and ONNX Runtime on the `--target onnx` conversions, through the
    /// project venv's Python (one process for all models); skipped when the venv is missing.
    func testArchivesConvertToONNXThatPassesTheCheckerAndMatchesInONNXRuntime() throws {
        let python = Fixtures.packageRoot + "/.venv/bin/python"
        guard FileManager.default.isExecutableFile(atPath: python) else { throw XCTSkip("no .venv with onnx and onnxruntime") }
        // Per model: the .onnx, the input's name and file, the number of outputs, their reference files.
        var arguments: [String] = []
        for m in Self.models + [("ops", "ops.pt", [], "x")] {
            let onnx = "\(temporary!)/\(m.name).onnx"
            let convert = try GLMC.run(["convert", Self.directory + m.archive, "--target", "onnx", "-o", onnx] + m.arguments, timeout: 60)
            XCTAssertEqual(convert.status, 0, "\(m.name): \(convert.stderr)")
            let references = m.name == "ops" ? (0 ..< 21).map { Self.directory + "ops.output_\($0).npy" } : [Self.directory + m.name + ".output.npy"]
            arguments += [onnx, m.input, Self.directory + m.name + ".input.npy", String(references.count)] + references
        }
        let script = """
        import sys, numpy as np, onnx, onnxruntime as ort
        args = sys.argv[1:]
        while args:
            path, name, input_path, count = args[:4]
            refs = [np.load(p) for p in args[4:4 + int(count)]]
            args = args[4 + int(count):]
            onnx.checker.check_model(onnx.load(path), full_check=True)
            session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            outs = session.run(None, {name: np.load(input_path)})
            assert len(outs) == len(refs), (path, len(outs), len(refs))
            for k, (out, ref) in enumerate(zip(outs, refs)):
                assert out.shape == ref.shape and out.dtype == ref.dtype, (path, k, out.shape, ref.shape, out.dtype, ref.dtype)
                assert np.allclose(out, ref, rtol=1e-3, atol=1e-5), (path, k, float(np.abs(out - ref).max()))
        """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-c", script] + arguments
        let err = Pipe()
        process.standardError = err
        process.standardOutput = Pipe()
        try process.run()
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, message.split(separator: "\n").filter { !$0.contains("Removing initializer") }.suffix(3).joined(separator: "\n"))
    }

    func testIRTextWithPrintedShapesRunsThroughTheCLI() throws {
        // The frozen graph's elided weights are inputs named after their values: the checker lists them.
        let r = try GLMC.run(["dump", Self.directory + "cnn_unfrozen.inlined_graph.txt"])
        assertFails(r, containing: ["cnn_unfrozen.inlined_graph.txt:3: prim::GetAttr 'fc'", "convert the archive"])
        let text = "graph(%x : Float(2, 3, strides=[3, 1], requires_grad=0, device=cpu)):\n  %1 : int = prim::Constant[value=1]()\n  %2 : NoneType = prim::Constant()\n  %y : Tensor = aten::softmax(%x, %1, %2)\n  return (%y)\n"
        let path = "\(temporary!)/g.txt"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let dump = try GLMC.run(["dump", path])
        XCTAssertEqual(dump.status, 0, dump.stderr)
        XCTAssertTrue(dump.stdout.contains("Softmax"), dump.stdout)
    }

    func testBadTorchScriptInputsGiveOneErrorLine() throws {
        let d = Self.directory
        let cases: [([String], [String])] = [
            (["convert", d + "bad_global.pt", "--target", "onnx", "-o", "\(temporary!)/a.onnx", "--input-shape", "x=1x3x16x16"],
             ["bad_global.pt:cnn/data.pkl", "global 'os.system' is not allowed"]),
            (["convert", d + "no_code.pt", "--target", "cpu", "-o", "\(temporary!)/b.plan"], ["no_code.pt", "no TorchScript code"]),
            (["convert", d + "malformed_code.pt", "--target", "cpu", "-o", "\(temporary!)/c.plan", "--input-shape", "x=1x3x16x16"],
             ["malformed_code.pt:cnn/code/__torch__/", ":6:22: the bracket opened here is never closed"]),
            (["convert", d + "cnn.pt", "--target", "cpu", "-o", "\(temporary!)/d.plan"], ["input 'x' of forward has no recorded shape", "--input-shape x="]),
            (["convert", d + "cnn.pt", "--target", "cpu", "-o", "\(temporary!)/e.plan", "--input-shape", "x=1x3x16x16", "--input-type", "x=q8"],
             ["--input-type 'x=q8'"]),
            (["convert", Fixtures.model("mlp.onnx"), "--target", "onnx", "-o", "\(temporary!)/f.onnx", "--input-type", "x=i64"],
             ["only TorchScript models take --input-type"]),
        ]
        for (arguments, parts) in cases {
            let r = try GLMC.run(arguments, timeout: 60)
            assertFails(r, containing: parts, arguments.joined(separator: " "))
            XCTAssertFalse(FileManager.default.fileExists(atPath: arguments[arguments.firstIndex(of: "-o")! + 1]), "nothing half-written")
        }
    }
}
