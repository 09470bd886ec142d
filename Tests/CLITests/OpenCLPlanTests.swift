import Foundation
import GLMCCodegen
import GLMCInterpreter
import GLMCIR
import GLMCOps
import GLMCPlan
import GLMCRuntime
import GLMCTestSupport
import XCTest

/// The OpenCL runtime on hand-made plans that follow the GPU plan contract (Docs/Backends.md):
/// `OpenCLExecutor` directly and `glmc run PLAN` on an opencl plan. Skipped where no OpenCL device
/// is found (no ICD loader, or no ICD such as PoCL).
final class OpenCLPlanTests: XCTestCase {
    var scratch = ""

    override func setUpWithError() throws {
        guard Self.hasDevice else { throw XCTSkip("no OpenCL device (install ocl-icd-libopencl1 and pocl-opencl-icd)") }
        scratch = try Fixtures.temporaryDirectory("glmc-opencl-plan")
    }

    override func tearDownWithError() throws {
        if !scratch.isEmpty { try? FileManager.default.removeItem(atPath: scratch) }
    }

    static let hasDevice: Bool = !((try? OpenCLExecutor.devices()) ?? []).isEmpty

    static let weights: [Float] = [0.5, -1, 2, 10, 100, -0.25]

    /// y = x + w (w a weight) in one step, z = 2·y in a second; x, y, z are f32[6] at arena offsets
    /// 0, 64, 128. Each step runs more work items than elements (8 for 6), so the range guard matters.
    static let source = """
        __kernel void add_weights(__global uchar *arena, __global uchar *weights) {
            int i = get_global_id(0);
            if (i >= 6) return;
            __global const float *x = (__global const float *)(arena + 0);
            __global const float *w = (__global const float *)(weights + 0);
            __global float *y = (__global float *)(arena + 64);
            y[i] = x[i] + w[i];
        }
        __kernel void twice(__global uchar *arena, __global uchar *weights) {
            int i = get_global_id(0);
            if (i >= 6) return;
            __global const float *y = (__global const float *)(arena + 64);
            __global float *z = (__global float *)(arena + 128);
            z[i] = 2.0f * y[i];
        }
        """

    static func samplePlan(source: String = source, kernels: [String] = ["add_weights", "twice"],
                           launch: [String: Int] = ["range": 6, "global": 8, "local": 4]) -> PlanFile {
        var w = PlanWeightsBuilder()
        w.append(name: "w", dtype: "f32", shape: [6], bytes: floats(weights))
        let manifest = PlanManifest(
            target: "opencl", sourceModelSha256: String(repeating: "0", count: 64), glmcVersion: "test",
            inputs: [PlanTensor(name: "x", dtype: "f32", shape: [6], buffer: 0)],
            outputs: [PlanTensor(name: "y", dtype: "f32", shape: [6], buffer: 1),
                      PlanTensor(name: "z", dtype: "f32", shape: [6], buffer: 2)],
            arenaBytes: 192,
            buffers: [PlanBuffer(id: 0, offset: 0, bytes: 24), PlanBuffer(id: 1, offset: 64, bytes: 24),
                      PlanBuffer(id: 2, offset: 128, bytes: 24)],
            steps: [PlanStep(kernel: kernels[0], kind: "elementwise", arguments: [.buffer(0), .weight("w"), .buffer(1)], launch: launch),
                    PlanStep(kernel: kernels[1], kind: "elementwise", arguments: [.buffer(1), .buffer(2)], launch: launch)],
            weights: w.table,
            kernelSources: [PlanKernelSource(name: "kernels.cl", language: "opencl-c")],
            metadata: ["kernel_abi": "NAME(arena, weights)"])
        return PlanFile(manifest: manifest, sources: ["kernels.cl": source], weights: w.blob)
    }

    static func floats(_ v: [Float]) -> Data { v.withUnsafeBytes { Data($0) } }

    static func values(_ t: HostTensor) -> [Float] {
        t.bytes.withUnsafeBytes { raw in (0 ..< raw.count / 4).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) } }
    }

    func input(_ v: [Float]) -> [String: HostTensor] {
        ["x": HostTensor(name: "x", dtype: "f32", shape: [6], bytes: Self.floats(v))]
    }

    func testWeightsPlusInputThenASecondStep() throws {
        let executor = try OpenCLExecutor(plan: Self.samplePlan())
        XCTAssertNil(executor.lastStepsMilliseconds)
        // Two runs with different inputs: the second sees none of the first's values.
        for x: [Float] in [[1, 2, 3, 4, 5, 6], [-1, 0, 0.5, 7, -100, 3]] {
            let out = try executor.run(inputs: input(x))
            XCTAssertEqual(out.map(\.name), ["y", "z"])
            XCTAssertEqual(out.map(\.shape), [[6], [6]])
            let y = zip(x, Self.weights).map { $0 + $1 }
            XCTAssertEqual(Self.values(out[0]), y)
            XCTAssertEqual(Self.values(out[1]), y.map { 2 * $0 })
            XCTAssertNotNil(executor.lastStepsMilliseconds)
        }
    }

    func testPlanWithoutStepsReadsTheZeroedArena() throws {
        var plan = Self.samplePlan(source: "")
        plan.manifest.steps = []
        let out = try OpenCLExecutor(plan: plan).run(inputs: input([1, 2, 3, 4, 5, 6]))
        XCTAssertEqual(out.map(Self.values), [[Float](repeating: 0, count: 6), [Float](repeating: 0, count: 6)])
    }

    func testPlanWrittenAndReadBackRuns() throws {
        let path = scratch + "/add.plan"
        try PlanWriter.write(Self.samplePlan(), to: path)
        let executor = try OpenCLExecutor(plan: try PlanReader.read(path: path), device: 0)
        XCTAssertEqual(executor.device.index, 0)
        let out = try executor.run(inputs: input([0, 0, 0, 0, 0, 0]))
        XCTAssertEqual(Self.values(out[0]), Self.weights)
    }

    func testDefaultDeviceIsTheFirstGPUElseTheFirstDevice() throws {
        let devices = try OpenCLExecutor.devices()
        XCTAssertEqual(devices.map(\.index), Array(devices.indices))
        let executor = try OpenCLExecutor(plan: Self.samplePlan())
        XCTAssertEqual(executor.device, devices.first { $0.type == "gpu" } ?? devices[0])
    }

    func testBadKernelSourceErrorCarriesTheBuildLog() throws {
        let broken = Self.source.replacingOccurrences(of: "2.0f * y[i]", with: "2.0f * glmc_undeclared_name")
        XCTAssertThrowsError(try OpenCLExecutor(plan: Self.samplePlan(source: broken))) {
            let message = "\($0)"
            XCTAssertTrue(message.contains("cannot build the plan's OpenCL kernels"), message)
            XCTAssertTrue(message.contains("CL_BUILD_PROGRAM_FAILURE"), message)
            XCTAssertTrue(message.contains("build log:\n"), message)
            XCTAssertTrue(message.contains("glmc_undeclared_name"), "the log names the culprit: \(message)")
        }
    }

    func testDeviceOutOfRangeListsTheDevices() throws {
        XCTAssertThrowsError(try OpenCLExecutor(plan: Self.samplePlan(), device: 99)) {
            XCTAssertTrue("\($0)".contains("there is no OpenCL device 99; devices: #0 '"), "\($0)")
        }
    }

    func testMissingEntryNamesStepAndKernel() throws {
        XCTAssertThrowsError(try OpenCLExecutor(plan: Self.samplePlan(kernels: ["add_weights", "glmc_no_such_kernel"]))) {
            XCTAssertTrue("\($0)".contains("step 1: kernel 'glmc_no_such_kernel' is missing from the plan's OpenCL program"), "\($0)")
        }
    }

    func testBadLaunchesAndTargets() throws {
        XCTAssertThrowsError(try OpenCLExecutor(plan: Self.samplePlan(launch: ["range": 6, "global": 8]))) {
            XCTAssertTrue("\($0)".contains("step 0 (add_weights): the launch needs 'global' and 'local'"), "\($0)")
        }
        XCTAssertThrowsError(try OpenCLExecutor(plan: Self.samplePlan(launch: ["range": 6, "global": 6, "local": 4]))) {
            XCTAssertTrue("\($0)".contains("global work size 6 is not a non-negative multiple of the work-group size 4"), "\($0)")
        }
        XCTAssertThrowsError(try OpenCLExecutor(plan: Self.samplePlan(launch: ["range": 6, "global": 1 << 30, "local": 1 << 30]))) {
            XCTAssertTrue("\($0)".contains("work-group size 1073741824 exceeds"), "\($0)")
        }
        var cpu = Self.samplePlan()
        cpu.manifest.target = "cpu"
        XCTAssertThrowsError(try OpenCLExecutor(plan: cpu)) { XCTAssertTrue("\($0)".contains("not opencl"), "\($0)") }
        var sourceless = Self.samplePlan()
        sourceless.manifest.kernelSources = []
        sourceless.sources = [:]
        XCTAssertThrowsError(try OpenCLExecutor(plan: sourceless)) {
            XCTAssertTrue("\($0)".contains("no kernel source 'source/kernels.cl'"), "\($0)")
        }
    }

    func testRefusesWrongInputs() throws {
        let executor = try OpenCLExecutor(plan: Self.samplePlan())
        let cases: [([String: HostTensor], String)] = [
            (["x": HostTensor(dtype: "i32", shape: [6], bytes: Data(count: 24))], "input 'x' is i32[6], but the plan was compiled for f32[6]"),
            (["x": HostTensor(dtype: "f32", shape: [2, 3], bytes: Data(count: 24))], "input 'x' is f32[2, 3], but the plan was compiled for f32[6]"),
            (["x": HostTensor(dtype: "f32", shape: [6], bytes: Data(count: 20))], "input 'x' has 20 bytes, expected 24"),
            ([:], "missing input 'x' (f32[6])"),
            (input([1, 2, 3, 4, 5, 6]).merging(["q": HostTensor(dtype: "f32", shape: [], bytes: Data(count: 4))]) { a, _ in a },
             "the plan has no input named 'q' (inputs: 'x')"),
        ]
        for (given, message) in cases {
            XCTAssertThrowsError(try executor.run(inputs: given)) { XCTAssertTrue("\($0)".contains(message), "\($0)") }
        }
        // A refused run leaves the executor usable.
        XCTAssertEqual(Self.values(try executor.run(inputs: input([0, 0, 0, 0, 0, 0]))[0]), Self.weights)
    }

    // MARK: - glmc run PLAN

    func writeSample(_ plan: PlanFile = samplePlan()) throws -> (plan: String, input: String) {
        let path = scratch + "/add.plan", input = scratch + "/x.npy"
        try PlanWriter.write(plan, to: path)
        try NPY.write(encoded: try NPY.encode(Tensor([Float](arrayLiteral: 1, 2, 3, 4, 5, 6), shape: [6])), to: input)
        return (path, input)
    }

    func testRunPlanWritesOutputs() throws {
        let (plan, input) = try writeSample()
        let out = scratch + "/out"
        let r = try GLMC.run(["run", plan, "--input", input, "--output-dir", out, "--device", "0", "--repeat", "3", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stderr, "")
        XCTAssertTrue(r.stdout.contains("\"engine\":\"opencl\""), r.stdout)
        XCTAssertTrue(r.stdout.contains("\"runs\":3"), r.stdout)
        let y = zip([Float](arrayLiteral: 1, 2, 3, 4, 5, 6), Self.weights).map { $0 + $1 }
        XCTAssertEqual(try NPY.read(path: out + "/output_0.npy").doubles, y.map(Double.init))
        XCTAssertEqual(try NPY.read(path: out + "/output_1.npy").doubles, y.map { Double(2 * $0) })
    }

    func testRunPlanBadDeviceAndEngine() throws {
        let (plan, input) = try writeSample()
        assertFails(try GLMC.run(["run", plan, "--input", input, "--output-dir", scratch, "--device", "99"]),
                    containing: ["error: there is no OpenCL device 99; devices: #0"])
        assertFails(try GLMC.run(["run", plan, "--input", input, "--output-dir", scratch, "--engine", "cpu"]),
                    containing: ["--engine cpu cannot run this plan: it is for target 'opencl'"])
        assertFails(try GLMC.run(["run", plan, "--input", input, "--output-dir", scratch],
                                 environment: ["GLMC_OPENCL_LIBRARY": "/nonexistent/libOpenCL.so.1"]),
                    containing: ["error: OpenCL is not available: cannot load /nonexistent/libOpenCL.so.1 (install ocl-icd-libopencl1"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch + "/output_0.npy"), "nothing written on failure")
        let model = ["run", RoundTripPaths.model("mlp.onnx"), "--input", RoundTripPaths.model("mlp.input_0.npy"), "--output-dir", scratch]
        assertFails(try GLMC.run(model + ["--device", "0"]), containing: ["--device applies to opencl and cuda plans and --engine opencl"])
        assertFails(try GLMC.run(model + ["--engine", "cpu", "--device", "0"]), containing: ["--device applies to opencl and cuda plans and --engine opencl"])
        // Usage errors are ArgumentParser's (status 64).
        let negative = try GLMC.run(model + ["--engine", "opencl", "--device=-1"])
        XCTAssertNotEqual(negative.status, 0)
        XCTAssertTrue(negative.stderr.contains("--device must not be negative"), negative.stderr)
    }

    func testRunPlanBadSourcePrintsTheBuildLog() throws {
        let broken = Self.source.replacingOccurrences(of: "2.0f * y[i]", with: "2.0f * glmc_undeclared_name")
        let (plan, input) = try writeSample(Self.samplePlan(source: broken))
        let r = try GLMC.run(["run", plan, "--input", input, "--output-dir", scratch])
        XCTAssertEqual(r.status, 1, r.stderr)
        // PoCL's compiler itself may print a diagnostic count ("1 error generated.") first; glmc's
        // part is one error line that carries the log.
        let errors = r.stderr.split(separator: "\n").filter { $0.hasPrefix("error: ") }
        XCTAssertEqual(errors.count, 1, r.stderr)
        XCTAssertTrue(errors.first?.hasPrefix("error: cannot build the plan's OpenCL kernels (source/kernels.cl) for device #0") ?? false, r.stderr)
        XCTAssertTrue(errors.first?.contains("glmc_undeclared_name") ?? false, r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch + "/output_0.npy"))
    }

    func testRunPlanMissingEntry() throws {
        let (plan, input) = try writeSample(Self.samplePlan(kernels: ["glmc_missing", "twice"]))
        assertFails(try GLMC.run(["run", plan, "--input", input, "--output-dir", scratch]),
                    containing: ["error: step 0: kernel 'glmc_missing' is missing"])
    }

    // MARK: - models through OpenCL plans

    /// `glmc convert --target opencl` then `glmc run PLAN` on each sample model matches the stored
    /// ONNX Runtime output (|a - b| <= 1e-5 * max|b| + 1e-4 * |b|, as the CPU plan tests).
    func testSampleModelsMatchTheReference() throws {
        for (name, extra) in [("mlp", []), ("cnn", []), ("transformer", ["--input-shape", "input_ids=2x16"])] {
            let plan = scratch + "/\(name).plan", out = scratch + "/\(name)-out"
            assertSucceeds(try GLMC.run(["convert", RoundTripPaths.model("\(name).onnx"), "--target", "opencl", "-o", plan] + extra, timeout: 120),
                           "convert \(name)")
            XCTAssertEqual(try PlanReader.read(path: plan).manifest.target, "opencl")
            let run = try GLMC.run(["run", plan, "--input", RoundTripPaths.model("\(name).input_0.npy"), "--output-dir", out,
                                    "--warmup", "1", "--repeat", "2", "--json"], timeout: 120)
            assertSucceeds(run, "run \(name)")
            XCTAssertTrue(run.stdout.contains("\"engine\":\"opencl\""), run.stdout)
            let got = try NPY.read(path: out + "/output_0.npy")
            let want = try NPY.read(path: RoundTripPaths.model("\(name).output_0.npy"))
            XCTAssertEqual(got.shape, want.shape, name)
            XCTAssertEqual(got.dtype, want.dtype, name)
            let scale = want.doubles.map(abs).max() ?? 0
            for (x, y) in zip(got.doubles, want.doubles) where abs(x - y) > 1e-5 * scale + 1e-4 * abs(y) {
                XCTFail("\(name): \(x) vs reference \(y)")
                break
            }
        }
    }

    /// Value-shaped results on OpenCL: the executor reads each extent slot back and trims the
    /// output to the interpreter's shape (NonZero, Unique along an axis, NonMaxSuppression).
    func testValueShapedOutputsAreTrimmed() throws {
        let module = try Parser.parse("""
        opsets {"" = 11}
        func @v(%x: f32[3,4] loc("x"), %b: f32[1,4,4] loc("boxes"), %s: f32[1,1,4] loc("scores"), %m: i64[1] loc("max")) -> (i64[2,?] loc("nz"), f32[?,4] loc("rows"), i64[?] loc("counts"), i64[?,3] loc("selected")) {
          %nz = NonZero(%x) : i64[2,?] loc("nz")
          %rows, %i, %inv, %c = Unique(%x) {axis = 0} : f32[?,4], i64[?], i64[3], i64[?] loc("rows", "i", "inv", "counts")
          %t = const dense<[0.5]> : f32[1] loc("iou")
          %sel = NonMaxSuppression(%b, %s, %m, %t) : i64[?,3] loc("selected")
          return %nz, %rows, %c, %sel
        }
        """)
        let inputs = [Tensor(doubles: [1, 0, 2, 0, 0, 0, 0, 0, 1, 0, 2, 0], dtype: .f32, shape: [3, 4]),
                      Tensor(doubles: [0, 0, 1, 1, 0, 0.1, 1, 1.1, 0, 2, 1, 3, 5, 5, 6, 6], dtype: .f32, shape: [1, 4, 4]),
                      Tensor(doubles: [0.9, 0.95, 0.3, 0.1], dtype: .f32, shape: [1, 1, 4]), Tensor([Int64(3)], shape: [1])]
        let want = try Interpreter.run(module, inputs: inputs)
        let plan = try CPUPlanBuilder.build(module, options: CPUPlanOptions(sourceModelSha256: String(repeating: "0", count: 64),
                                                                          glmcVersion: "test", target: .opencl))
        var given: [String: HostTensor] = [:]
        for (input, t) in zip(plan.manifest.inputs, inputs) {
            given[input.name] = HostTensor(name: input.name, dtype: t.dtype.rawValue, shape: t.shape, bytes: t.tensorData.withRawBytes { Data($0) })
        }
        let got = try OpenCLExecutor(plan: plan).run(inputs: given)
        XCTAssertEqual(got.map(\.shape), want.map(\.shape))
        for (g, w) in zip(got, want) where g.shape == w.shape {
            let t = try g.bytes.withUnsafeBytes { try Tensor(TensorData(type: w.type, copying: $0)) }
            XCTAssertEqual(t.doubles, w.doubles, g.name)
        }
        XCTAssertEqual(want[3].shape, [3, 3])  // the inputs leave something to suppress and to keep
    }

    /// `glmc run MODEL --engine opencl` builds an OpenCL plan, keeps it in the plan cache under a
    /// key of its own (the target is part of it) and reuses it.
    func testEngineOpenCLOnAModelCachesAnOpenCLPlan() throws {
        let cache = scratch + "/cache", plans = cache + "/plans"
        func run(_ engine: String, _ out: String) throws -> CLIResult {
            try GLMC.run(["run", RoundTripPaths.model("mlp.onnx"), "--engine", engine, "--input",
                          RoundTripPaths.model("mlp.input_0.npy"), "--output-dir", scratch + "/" + out],
                         timeout: 120, environment: ["GLMC_CACHE_DIR": cache])
        }
        func cached() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: plans)) ?? []).sorted() }
        func output(_ out: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: scratch + "/\(out)/output_0.npy")) }

        assertSucceeds(try run("opencl", "first"), "first run")
        let files = cached()
        XCTAssertEqual(files.count, 1, "\(files)")
        XCTAssertEqual(try PlanReader.read(path: plans + "/" + files[0]).manifest.target, "opencl")
        assertSucceeds(try run("opencl", "second"), "cached run")
        XCTAssertEqual(cached(), files, "the second run reuses the plan")
        XCTAssertEqual(try output("second"), try output("first"))
        assertSucceeds(try run("cpu", "cpu"), "cpu run")
        XCTAssertEqual(cached().count, 2, "a cpu plan of the same model is cached under another key")
        let got = try NPY.read(path: scratch + "/first/output_0.npy").doubles
        let want = try NPY.read(path: RoundTripPaths.model("mlp.output_0.npy")).doubles
        XCTAssertEqual(got.count, want.count)
        for (x, y) in zip(got, want) { XCTAssertEqual(x, y, accuracy: 1e-5) }
    }
}
