import Foundation
import GLMCFrontends
import GLMCIR
import GLMCOps
import GLMCTestSupport
import XCTest

/// The ONNX importer on the fixtures of `scripts/make_bad_inputs.py`: the IR it builds from valid
/// models (types, symbolic dims, constant bytes, names, captures, inlined functions, external data),
/// and the error it throws for each invalid one.
final class ONNXImporterTests: XCTestCase {
    func load(_ path: String, allowUnsupported: Bool = true) throws -> ImportResult {
        try ONNXImporter.importModel(path: path, allowUnsupported: allowUnsupported)
    }

    /// The message of the GLMCError `body` throws (fails the test if it throws nothing or another error).
    func errorMessage(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            try body()
            XCTFail("expected an error, got none", file: file, line: line)
        } catch let e as GLMCError {
            return e.message
        } catch {
            XCTFail("expected a GLMCError, got \(error)", file: file, line: line)
        }
        return ""
    }

    func assertContains(_ message: String, _ parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        for part in parts where !message.contains(part) {
            XCTFail("'\(message)' does not contain '\(part)'", file: file, line: line)
        }
    }

    /// The constant defining output `name` of `f`.
    func constant(named name: String, in f: Function, file: StaticString = #filePath, line: UInt = #line) -> TensorData? {
        guard let k = f.outputNames.firstIndex(of: name) else { XCTFail("no output '\(name)'", file: file, line: line); return nil }
        let id = f.outputs[k]
        guard let inst = f.body.first(where: { $0.results.contains(id) }), let data = inst.constantValue else {
            XCTFail("output '\(name)' is not a constant", file: file, line: line); return nil
        }
        XCTAssertEqual(f.name(of: id), name, "the value keeps its source name", file: file, line: line)
        return data
    }

    // MARK: Every dtype, typed fields and raw_data

    /// The values `make_bad_inputs.py` stores in both typed_fields.onnx and raw_data.onnx.
    func checkDtypeValues(_ f: Function, file: StaticString = #filePath, line: UInt = #line) throws {
        func check<T: Equatable>(_ name: String, _ type: String, _ expected: [T]) {
            guard let data = constant(named: name, in: f, file: file, line: line) else { return }
            XCTAssertEqual(data.type.description, type, name, file: file, line: line)
            XCTAssertEqual(data.elements(as: T.self), expected, name, file: file, line: line)
            XCTAssertEqual(data.bytes.count, expected.count * MemoryLayout<T>.size, name, file: file, line: line)
        }
        check("t_f32", "f32[1,3]", [Float(1.5), -2.25, 3.0])
        check("t_f64", "f64[2]", [1e100, -0.5])
        check("t_i64", "i64[2]", [Int64(-(1 << 40)), 7])
        check("t_i32", "i32[2]", [Int32(-123456), Int32.max])
        check("t_i16", "i16[2]", [Int16.min, Int16.max])
        check("t_i8", "i8[2]", [Int8.min, Int8.max])
        check("t_u8", "u8[2]", [UInt8(0), 255])
        check("t_u16", "u16[2]", [UInt16(65535), 1])
        check("t_u32", "u32[2]", [UInt32.max, 0])
        check("t_u64", "u64[2]", [UInt64.max, 1])
        check("t_bool", "bool[3]", [UInt8(1), 0, 1])
        check("t_f16", "f16[2]", [UInt16(0x3C00), 0xC000])
        check("t_bf16", "bf16[2]", [UInt16(0x3F80), 0x4040])
        XCTAssertEqual(f.outputs.map { f.type(of: $0).dtype }.prefix(13),
                       [.f32, .f64, .i64, .i32, .i16, .i8, .u8, .u16, .u32, .u64, .bool, .f16, .bf16], file: file, line: line)
    }

    func testTypedFieldsOfEveryDtype() throws {
        let result = try load(Fixtures.good("typed_fields.onnx"))
        let f = result.module.main
        XCTAssertEqual(f.body.count, 14)
        XCTAssertTrue(f.arguments.isEmpty)
        XCTAssertTrue(f.body.allSatisfy { $0.op == .constant })
        try checkDtypeValues(f)
        let strings = try XCTUnwrap(constant(named: "t_string", in: f))
        XCTAssertEqual(strings.type.description, "string[3]")
        XCTAssertEqual(strings.strings, ["hello", "w\u{f6}rld", ""])
        XCTAssertTrue(result.unsupported.isEmpty)
    }

    func testRawDataOfEveryDtype() throws {
        let f = try load(Fixtures.good("raw_data.onnx")).module.main
        XCTAssertEqual(f.body.count, 13)
        try checkDtypeValues(f)
    }

    func testModelMetadataAndOpsets() throws {
        let module = try load(Fixtures.good("raw_data.onnx")).module
        XCTAssertEqual(module.opsets, ["": 17])
        XCTAssertEqual(module.metadata["ir_version"], "8")
        XCTAssertEqual(module.metadata["producer_name"], "glmc-make_bad_inputs")
        XCTAssertEqual(module.main.name, "raw_data")
    }

    // MARK: Inputs and shapes

    func testSymbolicAndUnknownDims() throws {
        let f = try load(Fixtures.good("symbolic.onnx")).module.main
        XCTAssertEqual(f.arguments.count, 1)
        let type = f.type(of: f.arguments[0])
        XCTAssertEqual(type.dtype, .f32)
        XCTAssertEqual(type.shape.dims, [.symbol("batch"), .unknown, .known(4)])
        XCTAssertEqual(type.description, "f32[?batch,?,4]")
        XCTAssertEqual(f.name(of: f.arguments[0]), "x")
        XCTAssertEqual(f.outputs, f.arguments, "the output is the input itself")
    }

    func testPassthroughKeepsInputOrderAndNames() throws {
        let f = try load(Fixtures.good("passthrough.onnx")).module.main
        XCTAssertEqual(f.arguments.map { f.name(of: $0) }, ["x", "ids"])
        XCTAssertEqual(f.arguments.map { f.type(of: $0).description }, ["f32[?batch,3]", "i64[2]"])
        XCTAssertEqual(f.outputs, f.arguments)
        XCTAssertEqual(f.outputNames, ["x", "ids"])
        XCTAssertTrue(f.body.isEmpty)
    }

    func testInputsThatAreInitializersAreConstants() throws {
        let f = try load(Fixtures.good("input_initializer.onnx")).module.main
        XCTAssertEqual(f.arguments.map { f.name(of: $0) }, ["x"], "w and k have initializers: not runtime inputs")
        XCTAssertEqual(try XCTUnwrap(constant(named: "w", in: f)).elements(as: Float.self), [0.5, 4.0])
        let k = try XCTUnwrap(constant(named: "k", in: f))
        XCTAssertEqual(k.type.description, "i64[]")
        XCTAssertEqual(k.elements(as: Int64.self), [9])
        XCTAssertEqual(f.outputs[0], f.arguments[0])
    }

    // MARK: Constant nodes

    func testConstantNodeOfEveryValueKind() throws {
        let f = try load(Fixtures.good("constants.onnx")).module.main
        XCTAssertEqual(f.body.count, 7)
        let tensor = try XCTUnwrap(constant(named: "c_tensor", in: f))
        XCTAssertEqual(tensor.type.description, "i32[2,2]")
        XCTAssertEqual(tensor.elements(as: Int32.self), [1, 2, 3, 4])
        let float = try XCTUnwrap(constant(named: "c_float", in: f))
        XCTAssertEqual(float.type.description, "f32[]")
        XCTAssertEqual(float.elements(as: Float.self), [0.25])
        let floats = try XCTUnwrap(constant(named: "c_floats", in: f))
        XCTAssertEqual(floats.type.description, "f32[2]")
        XCTAssertEqual(floats.elements(as: Float.self), [1.0, -1.5])
        let int = try XCTUnwrap(constant(named: "c_int", in: f))
        XCTAssertEqual(int.type.description, "i64[]")
        XCTAssertEqual(int.elements(as: Int64.self), [-7])
        let ints = try XCTUnwrap(constant(named: "c_ints", in: f))
        XCTAssertEqual(ints.type.description, "i64[2]")
        XCTAssertEqual(ints.elements(as: Int64.self), [3, 1 << 33])
        let string = try XCTUnwrap(constant(named: "c_string", in: f))
        XCTAssertEqual(string.type.description, "string[]")
        XCTAssertEqual(string.strings, ["abc"])
        let strings = try XCTUnwrap(constant(named: "c_strings", in: f))
        XCTAssertEqual(strings.type.description, "string[2]")
        XCTAssertEqual(strings.strings, ["x", "yz"])
        // Node names survive for messages.
        XCTAssertEqual(f.body.map(\.nodeName), ["n_tensor", "n_float", "n_floats", "n_int", "n_ints", "n_string", "n_strings"])
    }

    func testNamesAppearAsLocInPrintedIR() throws {
        let module = try load(Fixtures.good("constants.onnx")).module
        let text = Printer().print(module)
        XCTAssertTrue(text.contains(#"loc("c_float") node("n_float")"#), text)
        XCTAssertTrue(text.contains(#"const dense<[3, 8589934592]> : i64[2]"#), text)
    }

    // MARK: Functions and subgraphs

    func testModelLocalFunctionsAreInlined() throws {
        let result = try load(Fixtures.good("function.onnx"))
        let f = result.module.main
        XCTAssertEqual(f.body.map(\.op.description), ["Constant", "Add", "Mul", "Constant", "Add", "Mul", "Constant"])
        let (x, y) = (f.arguments[0], f.arguments[1])
        let b = f.body
        // call1: first = (x + 2) * y
        XCTAssertEqual(b[1].operands, [x, b[0].results[0]])
        XCTAssertEqual(b[2].operands, [b[1].results[0], y])
        XCTAssertEqual(f.name(of: b[2].results[0]), "first", "a function's output takes the caller's name")
        // call2: second = (first + 2) * x — reads call1's result by its caller-side name.
        XCTAssertEqual(b[4].operands, [b[2].results[0], b[3].results[0]])
        XCTAssertEqual(b[5].operands, [b[4].results[0], x])
        // Internal names are prefixed per call, so the two inlined copies never collide.
        XCTAssertEqual(f.name(of: b[1].results[0]), "AddMul_1/t")
        XCTAssertEqual(f.name(of: b[4].results[0]), "AddMul_2/t")
        XCTAssertEqual(f.name(of: b[0].results[0]), "AddMul_1/two")
        XCTAssertEqual(b[0].constantValue?.elements(as: Float.self), [2.0])
        // A function whose body is a Constant: its output is renamed to the caller's 'answer'.
        XCTAssertEqual(f.outputNames, ["second", "answer"])
        XCTAssertEqual(f.outputs, [b[5].results[0], b[6].results[0]])
        XCTAssertEqual(f.name(of: b[6].results[0]), "answer")
        XCTAssertEqual(b[6].constantValue?.elements(as: Int64.self), [42])
        XCTAssertEqual(f.type(of: f.outputs[0]).description, "f32[]")
        XCTAssertEqual(b[2].opset, 17, "inlined nodes follow the function's opset import")
    }

    func testIfBranchesCaptureOuterTensors() throws {
        let f = try load(Fixtures.good("if_capture.onnx")).module.main
        let cond = f.arguments[0], x = f.arguments[1]
        XCTAssertEqual(f.body.count, 2)
        let outerConst = f.body[0].results[0]
        XCTAssertEqual(f.name(of: outerConst), "outer_c")
        let ifInst = f.body[1]
        XCTAssertEqual(ifInst.op.type, "If")
        XCTAssertEqual(ifInst.nodeName, "the_if")
        XCTAssertEqual(ifInst.operands, [cond])
        XCTAssertEqual(f.type(of: ifInst.results[0]).description, "f32[2]", "typed from the graph output")

        guard case .graph(let thenBranch)? = ifInst.attributes["then_branch"],
              case .graph(let elseBranch)? = ifInst.attributes["else_branch"] else {
            return XCTFail("If without graph attributes: \(ifInst.attributes.keys)")
        }
        XCTAssertEqual(thenBranch.name, "then_branch")
        XCTAssertTrue(thenBranch.arguments.isEmpty)
        XCTAssertEqual(thenBranch.captures.map(\.outer), [x])
        XCTAssertEqual(thenBranch.captures.map { thenBranch.name(of: $0.inner) }, ["x"])
        XCTAssertEqual(thenBranch.captures.map { thenBranch.type(of: $0.inner).description }, ["f32[2]"])
        XCTAssertEqual(thenBranch.body.map(\.op.type), ["Identity"])
        XCTAssertEqual(thenBranch.body[0].operands, [thenBranch.captures[0].inner])
        XCTAssertEqual(thenBranch.outputNames, ["then_out"])

        XCTAssertEqual(elseBranch.captures.map(\.outer), [x, outerConst])
        XCTAssertEqual(elseBranch.captures.map { elseBranch.name(of: $0.inner) }, ["x", "outer_c"])
        XCTAssertEqual(elseBranch.body.count, 1)
        XCTAssertEqual(elseBranch.body[0].nodeName, "inner_add")
        XCTAssertEqual(elseBranch.body[0].operands, elseBranch.captures.map(\.inner))
        XCTAssertEqual(elseBranch.outputs, [elseBranch.body[0].results[0]])
        // The structural verifier accepts the captures.
        XCTAssertNoThrow(try Verifier.verifyStructure(try load(Fixtures.good("if_capture.onnx")).module))
    }

    // MARK: External data

    func testExternalDataIsMappedWithItsOrigin() throws {
        let f = try load(Fixtures.good("external/model.onnx")).module.main
        let w = try XCTUnwrap(constant(named: "w", in: f))
        XCTAssertEqual(w.type.description, "f32[2,3]")
        XCTAssertEqual(w.elements(as: Float.self), [1, 2, 3, 4, 5, 6])
        let origin = try XCTUnwrap(w.origin)
        XCTAssertTrue(origin.path.hasSuffix("/Tests/Fixtures/good/external/weights.bin"), origin.path)
        XCTAssertTrue(origin.path.hasPrefix("/"), "resolved to an absolute path")
        XCTAssertEqual(origin.offset, 0)
        XCTAssertEqual(origin.length, 24)
        let b = try XCTUnwrap(constant(named: "b", in: f))
        XCTAssertEqual(b.elements(as: Int64.self), [-1, 1 << 50])
        XCTAssertEqual(b.origin, TensorData.ExternalOrigin(path: origin.path, offset: 64, length: 16))
        // Both point into one mapping of the file, not copies.
        guard case .bytes(let ws, _, _) = w.contents, case .bytes(let bs, let offset, _) = b.contents else {
            return XCTFail("external tensors without bytes")
        }
        XCTAssertTrue(ws === bs, "one mapping shared by both tensors")
        XCTAssertEqual(ws.count, 80)
        XCTAssertEqual(offset, 64)
    }

    func testExternalDataThroughASymlinkInsideTheFolder() throws {
        let tree = try Fixtures.symlinkModel(linkTarget: "data/inside.bin")
        defer { try? FileManager.default.removeItem(atPath: tree.root) }
        let f = try load(tree.model).module.main
        let w = try XCTUnwrap(constant(named: "ext_w", in: f))
        XCTAssertEqual(w.elements(as: Float.self), [1, 2])
        XCTAssertEqual(w.origin.map { URL(fileURLWithPath: $0.path).lastPathComponent }, "inside.bin")
    }

    func testExternalDataSymlinkOutOfTheFolderIsRefused() throws {
        let tree = try Fixtures.symlinkModel(linkTarget: "../outside.bin")
        defer { try? FileManager.default.removeItem(atPath: tree.root) }
        let expected = ["initializer 'ext_w'", "'link.bin'", "escapes the model's folder", "outside.bin"]
        assertContains(errorMessage { _ = try load(tree.model) }, expected)
        // The same with an absolute symlink.
        let link = tree.root + "/model/link.bin"
        try FileManager.default.removeItem(atPath: link)
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: tree.root + "/outside.bin")
        assertContains(errorMessage { _ = try load(tree.model) }, expected)
    }

    // MARK: Unsupported ops

    func testUnsupportedOpsAreListedOrRefused() throws {
        let result = try load(Fixtures.good("custom_op.onnx"))
        XCTAssertEqual(result.unsupported.map(\.op.description), ["com.example.Frobnicate"])
        XCTAssertEqual(result.unsupported.first?.nodeNames, ["frob"])
        XCTAssertEqual(result.unsupported.first?.reason, "domain 'com.example' is not supported")
        let f = result.module.main
        XCTAssertEqual(f.type(of: f.body[0].results[0]).description, "f32[2]", "typed from the model's hints")
        let message = errorMessage { _ = try load(Fixtures.good("custom_op.onnx"), allowUnsupported: false) }
        assertContains(message, ["unsupported op", "com.example.Frobnicate", "'frob'"])
    }

    // MARK: Bad inputs

    func testEveryBadInputIsRefusedWithItsReason() {
        for bad in Fixtures.badInputs {
            let message = errorMessage { _ = try load(bad.path) }
            XCTAssertFalse(message.contains("\n"), "\(bad.file): one line")
            for reason in bad.reasons where !message.contains(reason) {
                XCTFail("\(bad.file): '\(message)' does not contain '\(reason)'")
            }
        }
    }

    func testBadInputsAreRefusedFromMemoryToo() throws {
        // The bytes entry point (no path, no folder checks) refuses the same decoding problems.
        for name in ["random_bytes.onnx", "truncated.onnx", "deep_nesting.onnx", "no_graph.onnx"] {
            let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.bad(name)))
            let message = errorMessage {
                _ = try data.withUnsafeBytes { try ONNXImporter.importModel(bytes: $0, baseDirectory: "/nonexistent") }
            }
            XCTAssertFalse(message.isEmpty, name)
            XCTAssertTrue(message.contains("not a valid ONNX model") || message.contains("nest more than"), "\(name): \(message)")
        }
    }

    func testWrongAttributeKindOnCast() throws {
        // Cast's `to` given as a STRING. The importer does not know Cast's schema; Cast's own checks
        // refuse it once glmc has Cast, and until then Cast is reported as unsupported.
        let path = Fixtures.bad("wrong_attr_cast.onnx")
        if OpRegistry.definition(of: OpName("Cast")) != nil {
            assertContains(errorMessage { _ = try load(path) }, ["node 'bad_cast' (Cast)", "'to'", "STRING"])
        } else {
            let result = try load(path)
            XCTAssertEqual(result.unsupported.map(\.op.description), ["Cast"])
            guard case .string(let to)? = result.module.main.body.first?.attributes["to"] else {
                return XCTFail("the `to` attribute is not kept as a STRING")
            }
            XCTAssertEqual(to, "FLOAT16")
        }
    }

    func testMissingFilesAndFolders() {
        assertContains(errorMessage { _ = try load(Fixtures.directory + "/does-not-exist.onnx") },
                       ["does-not-exist.onnx", "No such file"])
        assertContains(errorMessage { _ = try load(Fixtures.directory + "/good") }, ["good", "directory"])
        assertContains(errorMessage { _ = try ModelLoader.load(path: Fixtures.directory + "/good") },
                       ["is a directory, not a model file"])
        assertContains(errorMessage { _ = try ModelLoader.load(path: Fixtures.directory + "/nope.onnx") },
                       ["nope.onnx: no such file"])
    }

    func testModelLoaderPrefixesThePath() {
        let path = Fixtures.bad("cycle.onnx")
        let message = errorMessage { _ = try ModelLoader.load(path: path, allowUnsupported: true) }
        XCTAssertTrue(message.hasPrefix(path + ": "), message)
        XCTAssertTrue(message.contains("cycle"), message)
    }
}
