import Foundation
import GLMCFrontends
import GLMCIR
import GLMCOps
import GLMCTestSupport
import XCTest

/// The ONNX writer: import → write → re-import gives the same IR (modulo the names the writer had
/// to invent and the position of constants, which come back as initializers first), and the files
/// pass `onnx.checker.check_model(full_check=True)` and run in ONNX Runtime (through the venv's
/// python; those checks skip when the venv is missing).
final class ONNXWriterTests: XCTestCase {
    var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("glmc-onnxwriter-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: scratch)
    }

    // MARK: Models

    func testSampleAndLightModelsRoundTrip() throws {
        var models = Fixtures.sampleModels()
        XCTAssertEqual(models.count, 3)
        models += Fixtures.lightModels()
        var written: [String] = []
        for path in models {
            let module = try ModelLoader.load(path: path, allowUnsupported: true).module
            try ModuleVerifier.verify(module)
            let out = scratch.appendingPathComponent((path as NSString).lastPathComponent).path
            try ONNXWriter.write(module, to: out)
            let back = try ONNXImporter.importModel(path: out).module
            try ModuleVerifier.verify(back)
            XCTAssertEqual(back.metadata["ir_version"], "10", path)
            assertSameIR(back, module, path)
            written.append(out)
        }
        try checkModels(written)
    }

    // MARK: Nested graphs

    /// If branches that capture outer values (and reuse a tensor name between siblings), and a Loop
    /// whose body returns its condition argument directly.
    static let controlFlow = """
    opsets {"" = 17}

    func @main(%c: bool[] loc("cond"), %x: f32[3] loc("x")) -> (f32[3] loc("y"), f32[3] loc("z")) {
      %w = const dense<[1.0, 2.0, 3.0]> : f32[3] loc("w")
      %y = If(%c) {else_branch = graph @else() captures(%x as %ex: f32[3] loc("x")) -> (f32[3] loc("t")) {
        %n = Neg(%ex) : f32[3] loc("t")
        return %n
      }, then_branch = graph @then() captures(%x as %tx: f32[3] loc("x"), %w as %tw: f32[3] loc("w")) -> (f32[3] loc("t")) {
        %k = const dense<[0.5, 0.5, 0.5]> : f32[3] loc("half")
        %m = Mul(%tx, %tw) : f32[3] loc("t2")
        %h = Mul(%m, %k) : f32[3] loc("t")
        return %h
      }} : f32[3] loc("y")
      %trip = const dense<[3]> : i64[] loc("trip")
      %z = Loop(%trip, _, %x) {body = graph @body(%i: i64[] loc("i"), %cond: bool[] loc("cond_in"), %acc: f32[3] loc("acc")) captures(%w as %bw: f32[3] loc("w")) -> (bool[] loc("cond_in"), f32[3] loc("acc_out")) {
        %s = Add(%acc, %bw) : f32[3] loc("acc_out")
        return %cond, %s
      }} : f32[3] loc("z")
      return %y, %z
    }
    """

    func testNestedGraphsRoundTripAndRun() throws {
        let module = try Parser.parse(Self.controlFlow)
        try ModuleVerifier.verify(module)
        let out = scratch.appendingPathComponent("control.onnx").path
        try ONNXWriter.write(module, to: out)
        let back = try ONNXImporter.importModel(path: out).module
        try ModuleVerifier.verify(back)
        assertSameIR(back, module, "control flow")
        // The second branch's "t" had to be renamed: ONNX names are unique across subgraphs.
        let text = Printer().print(back)
        XCTAssertTrue(text.contains("loc(\"t__1\")"), text)

        guard let ort = try runInORT(out, feeds: ["cond": true, "x": [1.0, -2.0, 4.0]]) else { return }
        XCTAssertEqual(ort.outputs[0], [0.5, -2, 6])   // (x * w) * 0.5
        XCTAssertEqual(ort.outputs[1], [4, 4, 13])     // x + 3w
        let other = try runInORT(out, feeds: ["cond": false, "x": [1.0, -2.0, 4.0]])
        XCTAssertEqual(other?.outputs[0], [-1, 2, -4])
    }

    // MARK: Fusion groups

    static func fusedModule(_ secondGroup: String) -> String {
        """
        opsets {"" = 17, glmc = 1}

        func @main(%x: f32[2,3] loc("x"), %y: f32[2,3] loc("y")) -> (f32[2,3] loc("out"), f32[2,3] loc("mid"), f32[2,3] loc("neg")) {
          %a = glmc.Fused(%x, %y) {body = graph @g(%p: f32[2,3] loc("x"), %q: f32[2,3] loc("y")) -> (f32[2,3] loc("mid")) {
            %s = Add(%p, %q) : f32[2,3] loc("sum")
            %r = Relu(%s) : f32[2,3] loc("mid")
            return %r
          }, kind = "add_relu"} : f32[2,3] loc("mid") node("Add_0")
          \(secondGroup)
          %c = const dense<[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]> : f32[2,3] loc("scale")
          %d, %e = glmc.Fused(%b, %c) {body = graph @h(%u: f32[2,3], %v: f32[2,3]) -> (f32[2,3], f32[2,3]) {
            %m = Mul(%u, %v) : f32[2,3] loc("out")
            %n = Neg(%m) : f32[2,3]
            return %m, %n
          }, kind = "mul_neg"} : f32[2,3], f32[2,3] loc("out", "")
          return %d, %a, %e
        }
        """
    }

    /// The same add-relu body again (other value names): with `.functionsWhenRepeated` the two
    /// groups share one model-local function.
    static let repeatedGroup = """
    %b = glmc.Fused(%a, %y) {body = graph @g2(%p2: f32[2,3], %q2: f32[2,3]) -> (f32[2,3]) {
        %s2 = Add(%p2, %q2) : f32[2,3] loc("sum")
        %r2 = Relu(%s2) : f32[2,3]
        return %r2
      }, kind = "add_relu"} : f32[2,3] loc("b")
    """

    static let uniqueGroup = """
    %b = glmc.Fused(%a, %y) {body = graph @g2(%p2: f32[2,3], %q2: f32[2,3]) -> (f32[2,3]) {
        %s2 = Sub(%p2, %q2) : f32[2,3] loc("sum")
        return %s2
      }, kind = "sub"} : f32[2,3] loc("b")
    """

    static let x: [Double] = [1, -2, 3, -4, 5, -6], y: [Double] = [0.5, 0.5, -1, 2, -3, 1]
    static let scale: [Double] = [1, 2, 3, 4, 5, 6]

    /// Expected outputs (out, mid, neg) for `second` as the middle group.
    static func expected(_ second: (Double, Double) -> Double) -> [[Double]] {
        let mid = zip(x, y).map { max($0 + $1, 0) }
        let b = zip(mid, y).map { second($0, $1) }
        let out = zip(b, scale).map { $0 * $1 }
        return [out, mid, out.map { -$0 }]
    }

    func testRepeatedFusionBodiesBecomeOneFunction() throws {
        let module = try Parser.parse(Self.fusedModule(Self.repeatedGroup))
        try ModuleVerifier.verify(module)
        let out = scratch.appendingPathComponent("fused.onnx").path
        try ONNXWriter.write(module, to: out)
        let back = try ONNXImporter.importModel(path: out).module
        try ModuleVerifier.verify(back)
        let ops = back.main.body.map(\.op.description)
        XCTAssertFalse(ops.contains { $0.hasPrefix("glmc") }, "\(ops)")
        XCTAssertEqual(back.main.outputNames, ["out", "mid", "neg"])
        XCTAssertEqual(ops.filter { $0 == "Relu" }.count, 2) // the function, inlined again on import

        guard let ort = try runInORT(out, feeds: ["x": Self.x, "y": Self.y]) else { return }
        XCTAssertEqual(ort.functions, 1)
        XCTAssertEqual(ort.nodes, ["add_relu", "add_relu", "Mul", "Neg"])
        assertClose(ort.outputs, Self.expected { max($0 + $1, 0) })
    }

    func testSingleFusionBodiesAreExpanded() throws {
        for policy in [ONNXWriter.FusedGroups.functionsWhenRepeated, .inline] {
            for (group, second) in [(Self.uniqueGroup, { (a: Double, b: Double) in a - b }),
                                    (Self.repeatedGroup, { (a: Double, b: Double) in max(a + b, 0) })] {
                if policy == .functionsWhenRepeated && group == Self.repeatedGroup { continue }
                let module = try Parser.parse(Self.fusedModule(group))
                let out = scratch.appendingPathComponent("expanded.onnx").path
                try ONNXWriter.write(module, to: out, fusedGroups: policy)
                let back = try ONNXImporter.importModel(path: out).module
                try ModuleVerifier.verify(back)
                // Results keep their names; the "out" value inside the last group is the graph output.
                let names = back.main.body.flatMap { inst in inst.results.map { back.main.name(of: $0) } }
                XCTAssertTrue(names.contains("sum") && names.contains("mid") && names.contains("out"), "\(names)")
                guard let ort = try runInORT(out, feeds: ["x": Self.x, "y": Self.y]) else { return }
                XCTAssertEqual(ort.functions, 0)
                XCTAssertFalse(ort.nodes.contains { $0.contains("__") }, "\(ort.nodes)")
                assertClose(ort.outputs, Self.expected(second))
            }
        }
    }

    // MARK: Writing

    func testIRVersionFollowsTheDefaultOpset() {
        XCTAssertEqual(ONNXWriter.irVersion(forDefaultOpset: 9), 10)
        XCTAssertEqual(ONNXWriter.irVersion(forDefaultOpset: 21), 10)
        XCTAssertEqual(ONNXWriter.irVersion(forDefaultOpset: 23), 11)
        XCTAssertEqual(ONNXWriter.irVersion(forDefaultOpset: 28), 14)
    }

    func testErrorsLeaveNoFileBehind() throws {
        let elided = try Parser.parse("""
        opsets {"" = 17}
        func @main(%x: f32[20] loc("x")) -> (f32[20] loc("y")) {
          %w = const dense_resource<__elided__> : f32[20] loc("w")
          %y = Add(%x, %w) : f32[20] loc("y")
          return %y
        }
        """)
        let out = scratch.appendingPathComponent("bad.onnx").path
        XCTAssertThrowsError(try ONNXWriter.write(elided, to: out)) { error in
            XCTAssertTrue("\(error)".contains("elided"), "\(error)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: scratch.path), [])
        // A failing rename (the target is a folder) removes the temporary file.
        let good = try ModelLoader.load(path: Fixtures.sampleModels()[0]).module
        let folder = scratch.appendingPathComponent("folder")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try Data("keep".utf8).write(to: folder.appendingPathComponent("file"))
        XCTAssertThrowsError(try ONNXWriter.write(good, to: folder.path))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: scratch.path), ["folder"])
    }

    func testAnInputReturnedAsOutputAndDuplicateOutputs() throws {
        let module = try Parser.parse("""
        opsets {"" = 17}
        func @main(%x: f32[2] loc("x")) -> (f32[2] loc("x"), f32[2] loc("copy"), f32[2] loc("r"), f32[2] loc("r2"), f32[2] loc("k")) {
          %r = Relu(%x) : f32[2] loc("r")
          %k = const dense<[1.0, 2.0]> : f32[2] loc("k")
          return %x, %x, %r, %r, %k
        }
        """)
        let out = scratch.appendingPathComponent("io.onnx").path
        try ONNXWriter.write(module, to: out)
        let back = try ONNXImporter.importModel(path: out).module
        XCTAssertEqual(back.main.outputNames, ["x", "copy", "r", "r2", "k"])
        try checkModels([out])
        guard let ort = try runInORT(out, feeds: ["x": [-1.0, 2.0]]) else { return }
        assertClose(ort.outputs, [[-1, 2], [-1, 2], [0, 2], [0, 2], [1, 2]])
    }

    // MARK: Helpers

    /// Compares printed IR after moving the constants the writer made initializers to the front
    /// (where import puts them) and dropping invented-name suffixes and the IR version.
    func assertSameIR(_ back: Module, _ original: Module, _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        // The writer adds a producer when there is none and sets its own IR version.
        for (key, value) in original.metadata where key != "ir_version" {
            XCTAssertEqual(back.metadata[key], value, "\(label): metadata \(key)", file: file, line: line)
        }
        func normalized(_ m: Module) -> String {
            var m = m
            m.metadata = [:]
            m.main = Self.hoistingConstants(m.main)
            return Printer(weights: .full).print(m)
        }
        let inventedSuffix = try! Regex("__[0-9]+\"")
        let a = normalized(back).replacing(inventedSuffix, with: "\"")
        let b = normalized(original)
        if a != b {
            let diff = zip(a.split(separator: "\n"), b.split(separator: "\n")).first { $0 != $1 }
            XCTFail("\(label): the re-imported IR differs; first difference:\n\(diff.map { "\($0.0)\n vs\n\($0.1)" } ?? "(length)")", file: file, line: line)
        }
    }

    static func hoistingConstants(_ f: Function) -> Function {
        var f = f
        let outputs = Set(f.outputs)
        func initializer(_ i: Instruction) -> Bool {
            i.constantValue != nil && i.attributes.count == 1 && i.operands.isEmpty && !outputs.contains(i.results[0])
        }
        // Initializers have no node name.
        f.body = f.body.filter(initializer).map { var i = $0; i.nodeName = ""; return i } + f.body.filter { !initializer($0) }
        for i in f.body.indices {
            for (key, value) in f.body[i].attributes {
                switch value {
                case .graph(let g): f.body[i].attributes[key] = .graph(hoistingConstants(g))
                case .graphs(let gs): f.body[i].attributes[key] = .graphs(gs.map(hoistingConstants))
                default: break
                }
            }
        }
        return f
    }

    func assertClose(_ actual: [[Double]], _ expected: [[Double]], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, file: file, line: line)
        for (a, e) in zip(actual, expected) {
            XCTAssertEqual(a.count, e.count, file: file, line: line)
            for (x, y) in zip(a, e) where abs(x - y) > 1e-5 + 1e-4 * abs(y) {
                XCTFail("got \(a), expected \(e)", file: file, line: line)
                break
            }
        }
    }

    static var python: String? {
        let path = RoundTripTests.packageRoot.appendingPathComponent(".venv/bin/python").path
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }

    /// Runs `script` with the venv's python; nil when there is no venv.
    func runPython(_ script: String, _ arguments: [String]) throws -> String? {
        guard let python = Self.python else { return nil }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-c", script] + arguments
        let stdout = Pipe(), stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        let out = stdout.fileHandleForReading.readDataToEndOfFile()
        let err = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            XCTFail("python failed: \(String(decoding: err, as: UTF8.self))")
            return nil
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `onnx.checker.check_model(full_check=True)` on each file.
    func checkModels(_ paths: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let script = """
        import sys, onnx
        for p in sys.argv[1:]:
            try:
                onnx.checker.check_model(onnx.load(p), full_check=True)
                print("ok", p)
            except Exception as e:
                print("FAIL", p, str(e).replace("\\n", " "))
        """
        guard let output = try runPython(script, paths) else {
            print("ONNXWriterTests: no .venv; onnx.checker not run")
            return
        }
        let lines = output.split(separator: "\n")
        XCTAssertEqual(lines.count, paths.count, output, file: file, line: line)
        for l in lines where !l.hasPrefix("ok ") { XCTFail(String(l), file: file, line: line) }
    }

    struct ORTResult { var functions: Int; var nodes: [String]; var outputs: [[Double]] }

    /// Checks the model and runs it in ONNX Runtime with graph optimizations off; nil without a venv.
    func runInORT(_ path: String, feeds: [String: Any]) throws -> ORTResult? {
        let script = """
        import sys, json, numpy as np, onnx, onnxruntime as ort
        path, feeds = sys.argv[1], json.loads(sys.argv[2])
        model = onnx.load(path)
        onnx.checker.check_model(model, full_check=True)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        types = {"tensor(float)": np.float32, "tensor(bool)": np.bool_, "tensor(int64)": np.int64}
        inputs = {i.name: np.array(feeds[i.name], dtype=types[i.type]).reshape([d if isinstance(d, int) else -1 for d in i.shape])
                  for i in session.get_inputs()}
        outputs = session.run(None, inputs)
        print(json.dumps({"functions": len(model.functions), "nodes": [n.op_type for n in model.graph.node],
                          "outputs": [o.astype(np.float64).ravel().tolist() for o in outputs]}))
        """
        let json = String(decoding: try JSONSerialization.data(withJSONObject: feeds), as: UTF8.self)
        guard let output = try runPython(script, [path, json]) else { return nil }
        guard let object = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any],
              let functions = object["functions"] as? Int, let nodes = object["nodes"] as? [String],
              let outputs = object["outputs"] as? [[Double]] else {
            XCTFail("unexpected python output: \(output)")
            return nil
        }
        return ORTResult(functions: functions, nodes: nodes, outputs: outputs)
    }
}
