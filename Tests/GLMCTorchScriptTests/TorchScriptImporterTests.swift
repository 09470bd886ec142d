import Foundation
import GLMCInterpreter
import GLMCIR
import GLMCOps
@testable import GLMCTorchScript
import XCTest

/// The archives and IR text dumps of Tests/Fixtures/torchscript (made by
/// scripts/make_torchscript_fixtures.py with PyTorch) against PyTorch's outputs.
final class TorchScriptImporterTests: XCTestCase {
    static let directory: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0 ..< 3 { url.deleteLastPathComponent() }
        return url.path + "/Tests/Fixtures/torchscript/"
    }()

    func fixture(_ name: String) -> String { Self.directory + name }

    /// Runs `module` on the fixture's input and compares with PyTorch's output (rtol 1e-3).
    func assertMatchesPyTorch(_ module: Module, _ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let input = try NPY.read(path: fixture(name + ".input.npy"))
        let expected = try NPY.read(path: fixture(name + ".output.npy"))
        var arguments = [input]
        // Elided constants of IR text become extra arguments; the tests feed none of those here.
        XCTAssertEqual(module.main.arguments.count, 1, "arguments", file: file, line: line)
        arguments = Array(arguments.prefix(module.main.arguments.count))
        let outputs = try Interpreter.run(module, inputs: arguments)
        XCTAssertEqual(outputs.count, 1, file: file, line: line)
        XCTAssertEqual(outputs[0].shape, expected.shape, file: file, line: line)
        let worst = zip(outputs[0].doubles, expected.doubles).map { abs($0 - $1) / max(abs($1), 1e-3) }.max() ?? 0
        XCTAssertLessThan(worst, 1e-3, "\(name): largest relative difference", file: file, line: line)
    }

    func testFrozenCNNArchiveMatchesPyTorch() throws {
        let module = try TorchScriptImporter.importArchive(path: fixture("cnn.pt"), inputs: ["x": TorchScriptInput(sizes: [1, 3, 16, 16])])
        try assertMatchesPyTorch(module, "cnn")
        XCTAssertEqual(module.main.name(of: module.main.arguments[0]), "x")
    }

    func testUnfrozenCNNArchiveTakesItsShapesFromTheTracedInputs() throws {
        let module = try TorchScriptImporter.importArchive(path: fixture("cnn_unfrozen.pt"))
        try assertMatchesPyTorch(module, "cnn_unfrozen")
        // Parameters are named after their module path.
        let names = Set(module.main.values.map(\.name))
        XCTAssertTrue(names.contains("conv1.weight") && names.contains("bn1.running_var") && names.contains("fc.bias"), "\(names.sorted())")
    }

    func testFrozenEncoderArchiveMatchesPyTorch() throws {
        let module = try TorchScriptImporter.importArchive(path: fixture("encoder.pt"), inputs: ["ids": TorchScriptInput(sizes: [1, 8], dtype: .i64)])
        try assertMatchesPyTorch(module, "encoder")
    }

    func testUnfrozenEncoderArchiveAndItsInlinedGraphMatchPyTorch() throws {
        // Submodules in a ModuleList (`getattr(layers, "0")`), an i64 input recorded by the trace.
        let module = try TorchScriptImporter.importArchive(path: fixture("encoder_unfrozen.pt"))
        XCTAssertEqual(module.main.type(of: module.main.arguments[0]), TensorType(.i64, static: [1, 8]))
        try assertMatchesPyTorch(module, "encoder_unfrozen")
        let text = try String(contentsOfFile: fixture("encoder_unfrozen.inlined_graph.txt"), encoding: .utf8)
        let fromText = try TorchScriptImporter.importGraphText(text, path: "encoder_unfrozen.inlined_graph.txt",
                                                               archive: try TorchArchive(path: fixture("encoder_unfrozen.pt")))
        try assertMatchesPyTorch(fromText, "encoder_unfrozen")
    }

    /// Twenty-one results covering most rows of the mapping table (activations, arithmetic with
    /// promotion and rounding modes, reductions, movement, indexing, creation, pooling, linear algebra).
    func testOpZooMatchesPyTorch() throws {
        let module = try TorchScriptImporter.importArchive(path: fixture("ops.pt"))
        let outputs = try Interpreter.run(module, inputs: [try NPY.read(path: fixture("ops.input.npy"))])
        XCTAssertEqual(outputs.count, 21)
        for (k, out) in outputs.enumerated() {
            let expected = try NPY.read(path: fixture("ops.output_\(k).npy"))
            XCTAssertEqual(out.shape, expected.shape, "output \(k)")
            XCTAssertEqual(out.dtype, expected.dtype, "output \(k)")
            for (a, e) in zip(out.doubles, expected.doubles) where abs(a - e) > 1e-4 * abs(e) + 1e-5 {
                XCTFail("output \(k): \(a) differs from PyTorch's \(e)")
                break
            }
        }
    }

    func testFrozenArchiveWithoutInputShapesSaysHowToGiveThem() {
        XCTAssertThrowsError(try TorchScriptImporter.importArchive(path: fixture("cnn.pt"))) { e in
            let m = (e as? GLMCError)?.message ?? ""
            XCTAssertTrue(m.contains("input 'x' of forward has no recorded shape") && m.contains("--input-shape x="), m)
        }
        XCTAssertThrowsError(try TorchScriptImporter.importArchive(path: fixture("cnn.pt"), inputs: ["y": TorchScriptInput(sizes: [1])])) { e in
            XCTAssertTrue(((e as? GLMCError)?.message ?? "").contains("no input named 'y'"), "\(e)")
        }
    }

    func testInlinedGraphTextWithItsArchiveMatchesPyTorch() throws {
        let text = try String(contentsOfFile: fixture("cnn_unfrozen.inlined_graph.txt"), encoding: .utf8)
        let archive = try TorchArchive(path: fixture("cnn_unfrozen.pt"))
        let module = try TorchScriptImporter.importGraphText(text, path: "cnn_unfrozen.inlined_graph.txt", archive: archive)
        try assertMatchesPyTorch(module, "cnn_unfrozen")
    }

    func testFrozenGraphTextParsesWithElidedConstantsAsArguments() throws {
        let text = try String(contentsOfFile: fixture("cnn.graph.txt"), encoding: .utf8)
        let module = try TorchScriptImporter.importGraphText(text, path: "cnn.graph.txt", inputs: ["x": TorchScriptInput(sizes: [1, 3, 16, 16])])
        let f = module.main
        let names = f.arguments.map { f.name(of: $0) }
        XCTAssertEqual(names.first, "x")
        XCTAssertTrue(names.contains("self.fc.weight") && names.contains("self.conv2.weight"), "\(names)")
        XCTAssertEqual(f.type(of: f.outputs[0]), TensorType(.f32, static: [1, 10]))
        // The text's inline constants (rounded by PyTorch's printer) are constants.
        XCTAssertTrue(f.body.contains { $0.nodeName == "self.fc.bias" && $0.op == .constant })
    }

    func testEncoderGraphTextsParse() throws {
        for name in ["encoder.graph.txt", "encoder.inlined_graph.txt"] {
            // Frozen graphs type their input as plain Tensor: sizes and element type are given.
            let text = try String(contentsOfFile: fixture(name), encoding: .utf8)
            let module = try TorchScriptImporter.importGraphText(text, path: name, inputs: ["ids": TorchScriptInput(sizes: [1, 8], dtype: .i64)])
            XCTAssertEqual(module.main.type(of: module.main.outputs[0]), TensorType(.f32, static: [1, 8, 50]), name)
        }
    }

    func testGraphWithSubmoduleCallsPointsToTheInlinedGraph() throws {
        let text = try String(contentsOfFile: fixture("cnn_unfrozen.graph.txt"), encoding: .utf8)
        let archive = try TorchArchive(path: fixture("cnn_unfrozen.pt"))
        XCTAssertThrowsError(try TorchScriptImporter.importGraphText(text, path: "g.txt", archive: archive)) { e in
            let m = (e as? GLMCError)?.message ?? ""
            XCTAssertTrue(m.hasPrefix("g.txt:9: prim::CallMethod") && m.contains("inlined_graph"), m)
        }
    }

    func testEveryUnsupportedOpIsListedAtOnce() {
        let text = """
        graph(%x : Float(2, 3, strides=[3, 1], requires_grad=0, device=cpu)):
          %1 : Tensor = aten::frobnicate(%x) # model.py:3:0
          %2 : Tensor = aten::relu(%1)
          %3 : Tensor = aten::fft_fft(%2)
          %4 : Tensor = aten::frobnicate(%3)
          return (%4)
        """
        XCTAssertThrowsError(try TorchScriptImporter.importGraphText(text, path: "t.txt")) { e in
            XCTAssertEqual((e as? GLMCError)?.message, "t.txt: unsupported ops: aten::frobnicate (first at t.txt:2), aten::fft_fft (first at t.txt:4)")
        }
    }

    func testControlFlowInGraphTextIsRefusedWithItsLine() {
        let text = """
        graph(%x : Float(2, strides=[1], requires_grad=0, device=cpu),
              %c : bool):
          %y : Tensor = prim::If(%c)
            block0():
              -> (%x)
            block1():
              -> (%x)
          return (%y)
        """
        XCTAssertThrowsError(try TorchScriptImporter.importGraphText(text, path: "t.txt")) { e in
            let m = (e as? GLMCError)?.message ?? ""
            XCTAssertTrue(m.hasPrefix("t.txt:3: prim::If: control flow"), m)
        }
    }

    func testMalformedGraphTextNamesTheLine() {
        for (text, expected) in [("graph(%x : Float(2)):\n  %y : Tensor = aten::relu(%z)\n  return (%y)", "t.txt:2: %z is used before it is defined"),
                                 ("graph(%x : Float(2)):\n  %y : Tensor = aten::relu(%x)\n", "the graph ends without 'return'"),
                                 ("graph(%x : Float(2)):\n  %y : Tensor = relu(%x)\n  return (%y)", "t.txt:2: expected an op"),
                                 ("graph(%x : Tensor):\n  return (%x)", "t.txt:1: input '%x' is typed Tensor, without sizes")] {
            XCTAssertThrowsError(try TorchScriptImporter.importGraphText(text, path: "t.txt"), expected) { e in
                let m = (e as? GLMCError)?.message ?? ""
                XCTAssertTrue(m.contains(expected), "\(m) does not contain \(expected)")
            }
        }
    }

    func testBadArchivesGiveOneClearError() {
        let cases = [("bad_global.pt", ["bad_global.pt:cnn/data.pkl", "global 'os.system' is not allowed"]),
                     ("no_code.pt", ["no_code.pt", "no TorchScript code"]),
                     ("malformed_code.pt", ["malformed_code.pt:cnn/code/__torch__/", ".py:6:22: the bracket opened here is never closed"]),
                     ("bad_global.pkl", ["bad_global.pkl", "not a readable zip archive"]),
                     ("big_endian.pt", ["big_endian.pt: unsupported: storages in big byte order (cnn/byteorder)"])]
        for (name, parts) in cases {
            XCTAssertThrowsError(try TorchScriptImporter.importArchive(path: fixture(name), inputs: ["x": TorchScriptInput(sizes: [1, 3, 16, 16])]), name) { e in
                let m = (e as? GLMCError)?.message ?? "\(e)"
                for p in parts { XCTAssertTrue(m.contains(p), "\(name): '\(m)' does not contain '\(p)'") }
            }
        }
    }

    func testMalformedCodeNamesMemberLineAndColumn() {
        let deep = "class M(Module):\n  def forward(self, x):\n    return " + String(repeating: "(", count: 5000) + "x" + String(repeating: ")", count: 5000) + "\n"
        let cases = [("class M(Module):\n  def forward(self, x):\n    _0 = torch.relu(x) +\n    return _0\n", "c.py:3:25: expected an expression, found the end of the line"),
                     ("class M(Module):\n  def forward(self, x):\n    _0 = \"abc\n", "c.py:3:10: unterminated string"),
                     ("class M(Module):\n  def forward(self, x):\n      _0 = x\n    return _0\n", "c.py:4:5: inconsistent indentation"),
                     ("class M(Module):\n  def forward(self, x):\n    _0 = x $ 1\n", "c.py:3:12: unexpected character '$'"),
                     (deep, "c.py:3:"), ("class M(Module):\n  def forward(self, x)\n", "c.py:2:23: expected ':' after the signature")]
        for (code, expected) in cases {
            XCTAssertThrowsError(try CodeParser.parse(code, member: "c.py", modulePath: "__torch__"), expected) { e in
                let m = (e as? GLMCError)?.message ?? "\(e)"
                XCTAssertTrue(m.hasPrefix(expected), "'\(m)' does not start with '\(expected)'")
            }
        }
    }

    func testCodeWithControlFlowNamesTheMethodAndLine() throws {
        let code = """
        class M(Module):
          __parameters__ = []
          def forward(self: __torch__.M,
            x: Tensor) -> Tensor:
            _0 = torch.relu(x)
            if bool(torch.gt(torch.sum(_0), 0)):
              _1 = _0
            else:
              _1 = torch.neg(_0)
            return _1
        """
        let classes = try CodeParser.parse(code, member: "m.pt:m/code/__torch__.py", modulePath: "__torch__")
        let method = try XCTUnwrap(classes.first?.methods["forward"])
        let b = GraphBuilder(name: "forward")
        let x = b.argument(TensorType(.f32, static: [2]), name: "x")
        let converter = CodeConverter(builder: b, archive: try TorchArchive(path: fixture("cnn.pt")), classes: ["__torch__.M": classes[0]], constants: [])
        XCTAssertThrowsError(try converter.call(method, on: ModuleObject(className: "__torch__.M", path: "", attributes: []),
                                                arguments: [.tensor(x)], className: "__torch__.M")) { e in
            let m = (e as? GLMCError)?.message ?? ""
            XCTAssertTrue(m.hasPrefix("m.pt:m/code/__torch__.py:6:5 in M.forward: unsupported: 'if' statement"), m)
        }
    }
}
