import Foundation
import GLMCInterpreter
import GLMCIR
import GLMCOps
import GLMCPlan
import GLMCTestSupport
import XCTest

/// End-to-end tests of the `glmc` binary: exit statuses, the one-line `error:` contract for bad
/// input, dump formats, check's unsupported-op table, and `run` on op-free models.
final class CLITests: XCTestCase {
    var scratch = ""

    override func setUpWithError() throws {
        scratch = try Fixtures.temporaryDirectory("glmc-cli")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: scratch)
    }

    /// output_*.npy files in `dir` (empty when `dir` does not exist).
    func outputFiles(in dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasPrefix("output_") }.sorted()
    }

    func testBinaryIsFound() {
        print("glmc binary: \(GLMC.path)")
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: GLMC.path), GLMC.path)
    }

    // MARK: Help and version

    func testHelp() throws {
        let r = try GLMC.run(["--help"])
        assertSucceeds(r, "--help")
        XCTAssertTrue(r.stdout.contains("USAGE: glmc <subcommand>"), r.stdout)
        for sub in ["dump", "check", "run", "convert", "calibrate", "inspect"] {
            XCTAssertTrue(r.stdout.contains("\n  \(sub) "), "help lists \(sub): \(r.stdout)")
        }
        let runHelp = try GLMC.run(["run", "--help"])
        assertSucceeds(runHelp, "run --help")
        for option in ["--input", "--output-dir", "--engine", "--repeat", "--warmup", "--json"] {
            XCTAssertTrue(runHelp.stdout.contains(option), "run --help lists \(option)")
        }
    }

    func testVersion() throws {
        let r = try GLMC.run(["--version"])
        assertSucceeds(r, "--version")
        XCTAssertEqual(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "0.1.0")
    }

    // MARK: Bad inputs: one error line, exit 1, no output

    func testEveryBadInputFailsCheckDumpAndRunWithOneErrorLine() throws {
        for bad in Fixtures.badInputs {
            let outDir = scratch + "/out-" + bad.file.replacingOccurrences(of: "/", with: "_")
            try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
            let commands: [[String]] = [
                ["check", bad.path],
                ["dump", bad.path],
                ["dump", "--format", "json", bad.path],
                ["run", bad.path, "--output-dir", outDir],
            ]
            for args in commands {
                let r = try GLMC.run(args)
                assertFails(r, containing: [bad.path + ": "] + bad.reasons, "glmc \(args.joined(separator: " "))")
            }
            XCTAssertEqual(outputFiles(in: outDir), [], "\(bad.file): run left outputs behind")
        }
    }

    func testSymlinkOutOfTheModelFolder() throws {
        let tree = try Fixtures.symlinkModel(linkTarget: "../outside.bin")
        defer { try? FileManager.default.removeItem(atPath: tree.root) }
        for command in ["check", "dump", "run"] {
            let args = command == "run" ? [command, tree.model, "--output-dir", scratch] : [command, tree.model]
            let r = try GLMC.run(args)
            assertFails(r, containing: [tree.model, "initializer 'ext_w'", "'link.bin'", "escapes the model's folder"], command)
        }
        XCTAssertEqual(outputFiles(in: scratch), [])
    }

    func testSymlinkInsideTheModelFolderRuns() throws {
        let tree = try Fixtures.symlinkModel(linkTarget: "data/inside.bin")
        defer { try? FileManager.default.removeItem(atPath: tree.root) }
        assertSucceeds(try GLMC.run(["run", tree.model, "--output-dir", scratch]), "run")
        let out = try NPY.read(path: scratch + "/output_0.npy")
        assertSameTensor(out, Tensor([1, 2] as [Float], shape: [2]))
    }

    func testFIFOsAreRefusedWithoutBlocking() throws {
        // A FIFO as the model, and as an external data file: opening either would block forever.
        let fifo = scratch + "/model.onnx"
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        assertFails(try GLMC.run(["check", fifo], timeout: 10), containing: [fifo, "FIFO"])

        let folder = scratch + "/ext"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Fixtures.bad("external_symlink/model.onnx"), toPath: folder + "/model.onnx")
        XCTAssertEqual(mkfifo(folder + "/link.bin", 0o600), 0)
        assertFails(try GLMC.run(["dump", folder + "/model.onnx"], timeout: 10),
                    containing: ["initializer 'ext_w'", "'link.bin'", "FIFO"])
    }

    func testWrongAttributeKindOnCast() throws {
        let path = Fixtures.bad("wrong_attr_cast.onnx")
        let r = try GLMC.run(["check", path])
        if OpRegistry.definition(of: OpName("Cast")) != nil {
            assertFails(r, containing: [path, "node 'bad_cast' (Cast)", "'to'", "STRING"])
        } else {
            // Without Cast, check lists it as unsupported (and still exits 1).
            assertFails(r, containing: [path, "1 unsupported op type"], stdoutEmpty: false)
            XCTAssertTrue(r.stdout.contains("Cast\tai.onnx\t17\t1\tbad_cast\t"), r.stdout)
        }
    }

    func testMissingAndNonModelPaths() throws {
        let missing = scratch + "/nope.onnx"
        for command in ["check", "dump", "run"] {
            assertFails(try GLMC.run([command, missing]), containing: [missing + ": no such file"], command)
            assertFails(try GLMC.run([command, Fixtures.directory]), containing: [Fixtures.directory + ": is a directory, not a model file"], command)
        }
        assertFails(try GLMC.run(["check", "/dev/null"]), containing: ["/dev/null: is a device, not a regular file"])
    }

    func testRandomBytesNeverCrash() throws {
        // A handful of seeded random files of assorted sizes: always exit 1 with one error line.
        var generator = SplitMix64(seed: 42)
        for size in [1, 2, 3, 7, 16, 100, 1000, 4096] {
            let bytes = (0 ..< size).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            let path = scratch + "/random_\(size).onnx"
            XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
            let r = try GLMC.run(["check", path], timeout: 10)
            assertFails(r, containing: [path + ": "], "random \(size) bytes")
        }
    }

    // MARK: dump

    func testDumpText() throws {
        let path = Fixtures.good("constants.onnx")
        let r = try GLMC.run(["dump", path])
        assertSucceeds(r, "dump")
        XCTAssertTrue(r.stdout.hasPrefix("module attributes {"), r.stdout)
        XCTAssertTrue(r.stdout.contains("opsets {\"\" = 17}"), r.stdout)
        XCTAssertTrue(r.stdout.contains("func @constants() -> (i32[2,2] loc(\"c_tensor\"), f32[] loc(\"c_float\")"), r.stdout)
        XCTAssertTrue(r.stdout.contains("%3 = const dense<[-7]> : i64[] loc(\"c_int\") node(\"n_int\")"), r.stdout)
        XCTAssertTrue(r.stdout.contains("return %0, %1, %2, %3, %4, %5, %6"), r.stdout)
    }

    func testDumpTextOfExternalDataAndCaptures() throws {
        let ext = try GLMC.run(["dump", Fixtures.good("external/model.onnx")])
        assertSucceeds(ext, "dump external")
        XCTAssertTrue(ext.stdout.contains("Tests/Fixtures/good/external/weights.bin\", 64, 16> : i64[2] loc(\"b\")"), ext.stdout)

        let r = try GLMC.run(["dump", Fixtures.good("if_capture.onnx")])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("captures(%1 as %4: f32[2] loc(\"x\"), %2 as %5: f32[2] loc(\"outer_c\"))"), r.stdout)
        // Ops glmc lacks are warnings in dump, never errors.
        XCTAssertFalse(r.stderr.contains("error:"), r.stderr)
    }

    func testDumpDot() throws {
        let r = try GLMC.run(["dump", "--format", "dot", Fixtures.good("custom_op.onnx")])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.hasPrefix("digraph \"custom_op\" {"), r.stdout)
        XCTAssertTrue(r.stdout.contains("in0 -> n0 [label=\"f32[2]\"];"), r.stdout)
        XCTAssertTrue(r.stdout.contains("n0 -> out0;"), r.stdout)
        XCTAssertEqual(r.stdout.trimmingCharacters(in: .newlines).last, "}")
        // The unsupported op is a warning on stderr.
        XCTAssertEqual(r.stderr, "warning: unsupported op com.example.Frobnicate (1 node): domain 'com.example' is not supported\n")
    }

    func testDumpJSONParses() throws {
        let r = try GLMC.run(["dump", "--format", "json", Fixtures.good("if_capture.onnx")])
        XCTAssertEqual(r.status, 0, r.stderr)
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let root = try XCTUnwrap(object)
        XCTAssertEqual(root["opsets"] as? [String: Int], ["": 17])
        let main = try XCTUnwrap(root["main"] as? [String: Any])
        XCTAssertEqual(main["name"] as? String, "if_capture")
        let args = try XCTUnwrap(main["arguments"] as? [[String: Any]])
        XCTAssertEqual(args.compactMap { $0["name"] as? String }, ["cond", "x"])
        XCTAssertEqual(args.compactMap { $0["type"] as? String }, ["bool[]", "f32[2]"])
        let instructions = try XCTUnwrap(main["instructions"] as? [[String: Any]])
        XCTAssertEqual(instructions.compactMap { $0["op"] as? String }, ["Constant", "If"])
        let attributes = try XCTUnwrap(instructions[1]["attributes"] as? [String: Any])
        let elseBranch = try XCTUnwrap(attributes["else_branch"] as? [String: Any])
        let captures = try XCTUnwrap(elseBranch["captures"] as? [[String: Any]])
        XCTAssertEqual(captures.compactMap { ($0["inner"] as? [String: Any])?["name"] as? String }, ["x", "outer_c"])

        // Every good model dumps as JSON that parses.
        for name in ["typed_fields.onnx", "raw_data.onnx", "constants.onnx", "function.onnx", "symbolic.onnx", "external/model.onnx"] {
            let r = try GLMC.run(["dump", "--format", "json", Fixtures.good(name)])
            XCTAssertEqual(r.status, 0, "\(name): \(r.stderr)")
            XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)), name)
        }
    }

    // MARK: check

    func testCheckListsUnsupportedOps() throws {
        let path = Fixtures.good("custom_op.onnx")
        let r = try GLMC.run(["check", path])
        assertFails(r, containing: [path + ": 1 unsupported op type (1 node)"], stdoutEmpty: false)
        XCTAssertEqual(r.stdout, "op\tdomain\topset\tcount\tfirst nodes\treason\n"
                       + "Frobnicate\tcom.example\t1\t1\tfrob\tdomain 'com.example' is not supported\n")
    }

    func testCheckAcceptsOpFreeModels() throws {
        let path = Fixtures.good("constants.onnx")
        let r = try GLMC.run(["check", path])
        assertSucceeds(r, "check")
        XCTAssertEqual(r.stdout, "ok: \(path): 7 instructions, 1 distinct ops, 0 inputs, 7 outputs\n")
        let timed = try GLMC.run(["check", "--timing", Fixtures.good("passthrough.onnx")])
        assertSucceeds(timed, "check --timing")
        XCTAssertTrue(timed.stdout.hasPrefix("timing: import_ms="), timed.stdout)
        XCTAssertTrue(timed.stdout.contains(" verify_ms="), timed.stdout)
    }

    // MARK: run

    func testRunPassthrough() throws {
        let out = scratch + "/a/b"
        let r = try GLMC.run(["run", Fixtures.good("passthrough.onnx"),
                              "--input", Fixtures.npy("x_f32_2x3.npy"),
                              "--input", "ids=" + Fixtures.npy("ids_i64_2.npy"),
                              "--output-dir", out])
        assertSucceeds(r, "run")
        XCTAssertEqual(r.stdout, "")
        XCTAssertEqual(outputFiles(in: out), ["output_0.npy", "output_1.npy"])
        assertSameTensor(try NPY.read(path: out + "/output_0.npy"), try NPY.read(path: Fixtures.npy("x_f32_2x3.npy")))
        assertSameTensor(try NPY.read(path: out + "/output_1.npy"), Tensor([5, -6] as [Int64], shape: [2]))
        // Byte for byte what NumPy wrote for the same array.
        XCTAssertEqual(FileManager.default.contents(atPath: out + "/output_0.npy"),
                       FileManager.default.contents(atPath: Fixtures.npy("x_f32_2x3.npy")))
    }

    func testRunByNameInAnyOrderAndJSONTiming() throws {
        let r = try GLMC.run(["run", Fixtures.good("passthrough.onnx"),
                              "--input", "ids=" + Fixtures.npy("ids_i64_2.npy"),
                              "--input", "x=" + Fixtures.npy("x_f32_2x3.npy"),
                              "--output-dir", scratch, "--repeat", "3", "--warmup", "1", "--json"])
        assertSucceeds(r, "run --json")
        let lines = r.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, r.stdout)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(json["runs"] as? Int, 3)
        XCTAssertEqual(json["warmup"] as? Int, 1)
        XCTAssertEqual(json["engine"] as? String, "interpreter")
        XCTAssertNotNil(json["median_ms"] as? Double)
        assertSameTensor(try NPY.read(path: scratch + "/output_1.npy"), Tensor([5, -6] as [Int64], shape: [2]))
    }

    func testRunConstants() throws {
        assertSucceeds(try GLMC.run(["run", Fixtures.good("constants.onnx"), "--output-dir", scratch]), "run")
        let expected: [Tensor] = [
            Tensor(shape: [2, 2], storage: .i32([1, 2, 3, 4])),
            Tensor([0.25] as [Float], shape: []),
            Tensor([1.0, -1.5] as [Float], shape: [2]),
            Tensor([-7] as [Int64], shape: []),
            Tensor([3, 1 << 33] as [Int64], shape: [2]),
            Tensor(shape: [], storage: .string(["abc"])),
            Tensor(shape: [2], storage: .string(["x", "yz"])),
        ]
        XCTAssertEqual(outputFiles(in: scratch).count, expected.count)
        for (i, t) in expected.enumerated() {
            assertSameTensor(try NPY.read(path: scratch + "/output_\(i).npy"), t, "output_\(i)")
        }
    }

    func testRunInputsThatAreInitializers() throws {
        let r = try GLMC.run(["run", Fixtures.good("input_initializer.onnx"), "--input", Fixtures.npy("dtype_f4.npy"),
                              "--output-dir", scratch])
        // x is f32[2]; dtype_f4.npy is f32[2,3].
        assertFails(r, containing: ["input 'x' expects f32[2] but was given f32[2,3]"])
        let x = scratch + "/x.npy"
        try NPY.write(Tensor([7, 8] as [Float], shape: [2]), to: x)
        assertSucceeds(try GLMC.run(["run", Fixtures.good("input_initializer.onnx"), "--input", x, "--output-dir", scratch]), "run")
        assertSameTensor(try NPY.read(path: scratch + "/output_1.npy"), Tensor([0.5, 4.0] as [Float], shape: [2]))
        assertSameTensor(try NPY.read(path: scratch + "/output_2.npy"), Tensor([9] as [Int64], shape: []))
    }

    func testRunRefusesUnwritableOutputsAndLeavesNone() throws {
        // raw_data.onnx has a bfloat16 output, which .npy cannot hold: nothing may be written.
        let r = try GLMC.run(["run", Fixtures.good("raw_data.onnx"), "--output-dir", scratch])
        assertFails(r, containing: ["output 12 ('t_bf16')", "bfloat16"])
        XCTAssertEqual(outputFiles(in: scratch), [])
    }

    func testRunInputErrors() throws {
        let model = Fixtures.good("passthrough.onnx")
        let x = Fixtures.npy("x_f32_2x3.npy"), ids = Fixtures.npy("ids_i64_2.npy")
        let cases: [([String], [String])] = [
            // wrong dtype: both types in the message
            (["--input", Fixtures.npy("x_f64_2x3.npy"), "--input", ids], ["input 'x' expects f32[?batch,3] but was given f64[2,3]"]),
            // wrong shape
            (["--input", Fixtures.npy("x_f32_2x4.npy"), "--input", ids], ["input 'x' expects f32[?batch,3] but was given f32[2,4]"]),
            // missing input
            (["--input", x], ["missing --input for 'ids' (i64[2])"]),
            // unknown name
            (["--input", "nope=" + x], ["--input nope=", "no input named 'nope'", "'x', 'ids'"]),
            // too many
            (["--input", x, "--input", ids, "--input", ids], ["the model has only 2 inputs"]),
            // given twice
            (["--input", x, "--input", "x=" + x], ["input 'x' is given twice"]),
            // not an .npy file
            (["--input", Fixtures.npy("not_npy.npy"), "--input", ids], [Fixtures.npy("not_npy.npy"), "not a NumPy .npy file"]),
            // object arrays
            (["--input", Fixtures.npy("object.npy"), "--input", ids], [Fixtures.npy("object.npy"), "object arrays"]),
            // truncated data
            (["--input", Fixtures.npy("truncated_body.npy"), "--input", ids], ["truncated_body.npy", "truncated .npy data"]),
            // nonexistent input file
            (["--input", scratch + "/missing.npy", "--input", ids], ["cannot read '\(scratch)/missing.npy'"]),
        ]
        for (args, parts) in cases {
            let r = try GLMC.run(["run", model] + args + ["--output-dir", scratch])
            assertFails(r, containing: parts, args.joined(separator: " "))
        }
        XCTAssertEqual(outputFiles(in: scratch), [])
    }

    func testRunEngineCUDAWithoutADriverIsOneError() throws {
        // --engine cpu and opencl: CPUPlanTests, OpenCLPlanTests. Without a driver, cuda refuses before building a plan.
        let r = try GLMC.run(["run", Fixtures.good("constants.onnx"), "--engine", "cuda", "--output-dir", scratch],
                             environment: ["GLMC_LIBCUDA": "/nonexistent/libcuda.so.1"])
        assertFails(r, containing: ["CUDA is not available"])
        XCTAssertEqual(outputFiles(in: scratch), [])
    }

    // MARK: Commands that arrive with the back ends

    func testInspectSummarizesAPlanAndRefusesDamagedOnes() throws {
        var weights = PlanWeightsBuilder()
        weights.append(name: "w", dtype: "f32", shape: [4], bytes: Data(count: 16))
        let manifest = PlanManifest(
            target: "cpu", cpuFeatures: [], gpuArch: nil, sourceModelSha256: String(repeating: "0", count: 64),
            glmcVersion: "0.1.0", pipeline: [],
            inputs: [PlanTensor(name: "x", dtype: "f32", shape: [4], buffer: 0)],
            outputs: [PlanTensor(name: "y", dtype: "f32", shape: [4], buffer: 1)],
            arenaBytes: 128, buffers: [PlanBuffer(id: 0, offset: 0, bytes: 16), PlanBuffer(id: 1, offset: 64, bytes: 16)],
            steps: [PlanStep(kernel: "add", kind: "elementwise", arguments: [.buffer(0), .weight("w"), .buffer(1)], launch: [:])],
            weights: weights.table, kernelSources: [PlanKernelSource(name: "add", language: "c")], metadata: [:])
        let path = scratch + "/tiny.plan"
        try PlanWriter.write(PlanFile(manifest: manifest, sources: ["add": "void add(void) {}\n"], code: [:],
                                      weights: weights.blob, calibration: nil), to: path)
        let r = try GLMC.run(["inspect", path, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        for key in ["target", "kernels", "arena_bytes", "weights_bytes", "inputs", "outputs"] {
            XCTAssertNotNil(object?[key], "inspect --json lacks '\(key)'")
        }
        XCTAssertEqual(object?["arena_bytes"] as? Int, 128)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count / 2] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: path))
        assertFails(try GLMC.run(["inspect", path]), containing: ["checksum mismatch"])
        assertFails(try GLMC.run(["inspect", scratch + "/missing.plan"]), containing: ["missing.plan"])
    }

    // MARK: Passes and optimized ONNX

    func testDumpRunsPipelinesWithInstrumentation() throws {
        let model = RoundTripPaths.model("cnn.onnx")
        let r = try GLMC.run(["dump", model, "-O3", "--time-passes", "--pass-statistics", "--print-ir-after=fuse-elementwise"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("// *** IR Dump After fuse-elementwise ***"), r.stderr)
        XCTAssertTrue(r.stderr.contains("===== pass timing ====="), r.stderr)
        XCTAssertTrue(r.stderr.contains("memory: arena"), r.stderr)
        XCTAssertTrue(r.stdout.contains("glmc.Fused"), r.stdout)
        let bad = try GLMC.run(["dump", model, "--passes", "constant-fold,no-such-pass"])
        assertFails(bad, containing: ["unknown pass 'no-such-pass'"])
    }

    func testConvertToONNXWritesAModelThatRunsTheSame() throws {
        let model = RoundTripPaths.model("cnn.onnx")
        let out = scratch + "/opt.onnx"
        let r = try GLMC.run(["convert", model, "--target", "onnx", "-O3", "-o", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        let run = try GLMC.run(["run", out, "--input", RoundTripPaths.model("cnn.input_0.npy"), "--output-dir", scratch + "/o"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let got = try NPY.read(path: scratch + "/o/output_0.npy").doubles
        let want = try NPY.read(path: RoundTripPaths.model("cnn.output_0.npy")).doubles
        XCTAssertEqual(got.count, want.count)
        for (g, w) in zip(got, want) { XCTAssertEqual(g, w, accuracy: 1e-4 * max(1, abs(w))) }
    }
}

/// Paths of the sample models in Models/.
enum RoundTripPaths {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static func model(_ name: String) -> String { root.appendingPathComponent("Models/\(name)").path }
}

