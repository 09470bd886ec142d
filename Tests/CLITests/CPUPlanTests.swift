import Foundation
import GLMCInterpreter
import GLMCIR
import GLMCOps
import GLMCPlan
import GLMCRuntime
import GLMCTestSupport
import XCTest

/// The CPU back end end to end: `glmc convert --target cpu` builds a plan (C kernels compiled by
/// the system C compiler), `glmc run PLAN` executes it on GLMCRuntime's CPUExecutor, and the
/// outputs match the reference outputs stored next to the models.
final class CPUPlanTests: XCTestCase {
    var scratch = ""

    override func setUpWithError() throws {
        guard Self.hasCCompiler else { throw XCTSkip("no C compiler ($CC, cc, gcc or clang) on PATH") }
        scratch = try Fixtures.temporaryDirectory("glmc-cpu-plan")
    }

    override func tearDownWithError() throws {
        if !scratch.isEmpty { try? FileManager.default.removeItem(atPath: scratch) }
    }

    static let hasCCompiler: Bool = {
        let env = ProcessInfo.processInfo.environment
        let names = env["CC"].map { [$0] } ?? ["cc", "gcc", "clang"]
        let path = (env["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map(String.init)
        return names.contains { n in
            n.contains("/") ? FileManager.default.isExecutableFile(atPath: n)
                : path.contains { FileManager.default.isExecutableFile(atPath: $0 + "/" + n) }
        }
    }()

    /// Converts `Models/<name>.onnx`, runs the plan on the stored input and compares with the
    /// stored output (|a - b| <= 1e-5 * max|b| + 1e-4 * |b|).
    func checkModel(_ name: String, extra: [String] = []) throws -> String {
        let plan = scratch + "/\(name).plan"
        let convert = try GLMC.run(["convert", RoundTripPaths.model("\(name).onnx"), "--target", "cpu", "-o", plan] + extra, timeout: 120)
        assertSucceeds(convert, "convert \(name)")
        for threads in ["1", "3"] {
            let out = scratch + "/\(name)-out-\(threads)"
            let run = try GLMC.run(["run", plan, "--input", RoundTripPaths.model("\(name).input_0.npy"),
                                    "--output-dir", out, "--threads", threads, "--repeat", "3", "--json"], timeout: 60)
            assertSucceeds(run, "run \(name) plan")
            XCTAssertTrue(run.stdout.contains("\"engine\":\"cpu\""), run.stdout)
            let got = try NPY.read(path: out + "/output_0.npy")
            let want = try NPY.read(path: RoundTripPaths.model("\(name).output_0.npy"))
            XCTAssertEqual(got.shape, want.shape)
            XCTAssertEqual(got.dtype, want.dtype)
            let a = got.doubles, b = want.doubles
            let scale = b.map(abs).max() ?? 0
            for (x, y) in zip(a, b) where abs(x - y) > 1e-5 * scale + 1e-4 * abs(y) {
                XCTFail("\(name) (\(threads) threads): \(x) vs reference \(y)")
                break
            }
        }
        return plan
    }

    func testMLPPlanMatchesTheReference() throws {
        let plan = try checkModel("mlp")
        let r = try GLMC.run(["inspect", plan, "--json"])
        assertSucceeds(r, "inspect")
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        XCTAssertEqual(object?["target"] as? String, "cpu")
        let file = try PlanReader.read(path: plan)
        XCTAssertEqual(file.manifest.steps.map(\.kind), ["gemm_epilogue", "gemm_epilogue", "gemm"])
        XCTAssertTrue(file.manifest.cpuFeatures.allSatisfy(HostCPU.supports), "\(file.manifest.cpuFeatures)")
        XCTAssertNotNil(file.code["kernels.so"])
        XCTAssertTrue(file.sources["kernels.c"]?.contains("void glmc_step0(GLMC_GLOBAL void **args, long begin, long end)") ?? false)
    }

    /// `--profile` prints one row per step (slowest first) and their sum to stderr; it is refused
    /// where nothing runs steps (the interpreter).
    func testProfilePrintsEveryStep() throws {
        let plan = try checkModel("mlp")
        let r = try GLMC.run(["run", plan, "--input", RoundTripPaths.model("mlp.input_0.npy"), "--output-dir", scratch + "/profile",
                              "--repeat", "3", "--profile"])
        XCTAssertEqual(r.status, 0, r.stderr)  // the table goes to stderr
        let lines = r.stderr.split(separator: "\n")
        XCTAssertTrue(lines.first?.contains("median ms") ?? false, r.stderr)
        XCTAssertEqual(lines.filter { $0.contains("glmc_step") }.count, 3, r.stderr)
        XCTAssertTrue(lines.last?.hasPrefix("steps: 3, sum of the step medians:") ?? false, r.stderr)
        assertFails(try GLMC.run(["run", RoundTripPaths.model("mlp.onnx"), "--input", RoundTripPaths.model("mlp.input_0.npy"),
                                  "--output-dir", scratch + "/profile", "--profile"]),
                    containing: ["--profile applies to cpu plans (a plan file, or --engine cpu)"])
    }

    func testCNNPlanMatchesTheReference() throws {
        let plan = try checkModel("cnn")
        let file = try PlanReader.read(path: plan)
        // On AVX-512 both convolutions read their patches from a padded copy.
        let padding = file.manifest.cpuFeatures.contains("avx512f") ? ["pad_image"] : []
        XCTAssertEqual(file.manifest.steps.map(\.kind),
                       padding + ["conv2d_epilogue", "max_pool2d"] + padding + ["conv2d_epilogue", "global_average_pool", "copy", "gemm"])
    }

    /// `glmc run MODEL --engine cpu` keeps the plan it builds in the plan cache and reuses it; a
    /// corrupt cached plan is rebuilt with a warning; `--no-cache` neither reads nor writes it.
    func testRunModelOnTheCPUEngineCachesThePlan() throws {
        let cache = scratch + "/cache", plans = cache + "/plans"
        func run(_ out: String, _ extra: [String] = []) throws -> CLIResult {
            try GLMC.run(["run", RoundTripPaths.model("mlp.onnx"), "--engine", "cpu", "--input",
                          RoundTripPaths.model("mlp.input_0.npy"), "--output-dir", scratch + "/" + out] + extra,
                         timeout: 120, environment: ["GLMC_CACHE_DIR": cache])
        }
        func cached() throws -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: plans)) ?? []).sorted() }
        func output(_ out: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: scratch + "/\(out)/output_0.npy")) }

        assertSucceeds(try run("first"), "first run")
        let files = try cached()
        XCTAssertEqual(files.count, 1, "one plan cached: \(files)")
        XCTAssertTrue(files.allSatisfy { $0.hasSuffix(".plan") })
        let plan = plans + "/" + files[0]
        let written = try FileManager.default.attributesOfItem(atPath: plan)[.modificationDate] as? Date

        let second = try run("second")
        assertSucceeds(second, "cached run")
        XCTAssertEqual(second.stderr, "")
        XCTAssertEqual(try cached(), files)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: plan)[.modificationDate] as? Date, written,
                       "a cache hit does not rewrite the plan")
        XCTAssertEqual(try output("second"), try output("first"))

        // Corrupt the cached plan: the checksum catches it and the plan is rebuilt.
        let handle = try XCTUnwrap(FileHandle(forUpdatingAtPath: plan))
        try handle.seek(toOffset: 200)
        try handle.write(contentsOf: Data([0xde, 0xad, 0xbe, 0xef]))
        try handle.close()
        let third = try run("third")
        XCTAssertEqual(third.status, 0, third.stderr)
        XCTAssertTrue(third.stderr.contains("warning: ignoring unreadable cached plan"), third.stderr)
        XCTAssertEqual(try output("third"), try output("first"))
        XCTAssertNoThrow(try PlanReader.read(path: plan), "the rebuilt plan is valid again")

        try FileManager.default.removeItem(atPath: plans)
        assertSucceeds(try run("fourth", ["--no-cache"]), "--no-cache")
        XCTAssertEqual(try cached(), [], "--no-cache stores nothing")
        XCTAssertEqual(try output("fourth"), try output("first"))
    }

    /// `glmc run MODEL --engine cpu` builds the plan in memory (symbolic dimensions bound from the
    /// inputs) and runs it.
    func testRunModelOnTheCPUEngine() throws {
        let out = scratch + "/engine"
        let r = try GLMC.run(["run", RoundTripPaths.model("cnn.onnx"), "--engine", "cpu", "--input",
                              RoundTripPaths.model("cnn.input_0.npy"), "--output-dir", out, "--json"], timeout: 120)
        assertSucceeds(r, "run --engine cpu")
        XCTAssertTrue(r.stdout.contains("\"engine\":\"cpu\""), r.stdout)
        let got = try NPY.read(path: out + "/output_0.npy"), want = try NPY.read(path: RoundTripPaths.model("cnn.output_0.npy"))
        XCTAssertEqual(got.shape, want.shape)
        let scale = want.doubles.map(abs).max() ?? 0
        for (x, y) in zip(got.doubles, want.doubles) where abs(x - y) > 1e-5 * scale + 1e-4 * abs(y) {
            XCTFail("cnn --engine cpu: \(x) vs reference \(y)")
            break
        }
        // The transformer (Gather embeddings, attention and layer-norm groups split into their
        // members, batched MatMul, Softmax, Transpose) matches its reference too.
        assertSucceeds(try GLMC.run(["run", RoundTripPaths.model("transformer.onnx"), "--engine", "cpu", "--input",
                                     RoundTripPaths.model("transformer.input_0.npy"), "--output-dir", scratch + "/t"], timeout: 120),
                       "run transformer --engine cpu")
        let tGot = try NPY.read(path: scratch + "/t/output_0.npy"), tWant = try NPY.read(path: RoundTripPaths.model("transformer.output_0.npy"))
        XCTAssertEqual(tGot.shape, tWant.shape)
        let tScale = tWant.doubles.map(abs).max() ?? 0
        for (x, y) in zip(tGot.doubles, tWant.doubles) where abs(x - y) > 1e-5 * tScale + 1e-4 * abs(y) {
            XCTFail("transformer --engine cpu: \(x) vs reference \(y)")
            break
        }
    }

    func testWrongInputShapeAndDamagedPlanAreRefused() throws {
        let plan = scratch + "/mlp.plan"
        assertSucceeds(try GLMC.run(["convert", RoundTripPaths.model("mlp.onnx"), "--target", "cpu", "-o", plan], timeout: 120))
        let wrong = scratch + "/wrong.npy"
        try NPY.write(encoded: try NPY.encode(Tensor([Float](repeating: 0, count: 128), shape: [2, 64])), to: wrong)
        assertFails(try GLMC.run(["run", plan, "--input", wrong, "--output-dir", scratch + "/o"]),
                    containing: ["input 'input' is f32[2, 64]", "compiled for f32[1, 64]"])
        XCTAssertEqual(outputs(in: scratch + "/o"), [])

        var bytes = try Data(contentsOf: URL(fileURLWithPath: plan))
        bytes[bytes.count / 2] ^= 0xFF
        let damaged = scratch + "/damaged.plan"
        try bytes.write(to: URL(fileURLWithPath: damaged))
        assertFails(try GLMC.run(["run", damaged, "--input", RoundTripPaths.model("mlp.input_0.npy"), "--output-dir", scratch + "/o"]),
                    containing: ["checksum mismatch"])
        assertFails(try GLMC.run(["inspect", damaged]), containing: ["checksum mismatch"])
        let good = ["run", plan, "--input", RoundTripPaths.model("mlp.input_0.npy"), "--output-dir", scratch + "/o"]
        assertFails(try GLMC.run(good + ["-O3"]), containing: ["a plan is already optimized"])
        assertFails(try GLMC.run(good + ["--engine", "opencl"]), containing: ["--engine opencl cannot run this plan: it is for target 'cpu'"])
        assertFails(try GLMC.run(good + ["--device", "0"]), containing: ["--device applies to opencl and cuda plans"])
        assertFails(try GLMC.run(["run", plan, "--output-dir", scratch + "/o"]), containing: ["missing --input for 'input' (f32[1,64])"])
        XCTAssertEqual(outputs(in: scratch + "/o"), [])
    }

    func testSymbolicShapesAndUnsupportedOpsGiveClearErrors() throws {
        let model = RoundTripPaths.model("transformer.onnx")
        assertFails(try GLMC.run(["convert", model, "--target", "cpu", "-o", scratch + "/t.plan"], timeout: 120),
                    containing: ["static shapes", "?batch", "--input-shape"])
        let det = scratch + "/det.glmc"
        try """
        opsets {"" = 17}
        func @h(%x: i64[2,4] loc("x")) -> (i64[2] loc("y")) {
          %y = Einsum(%x) {equation = "ij->i"} : i64[2] node("einsum")
          return %y
        }
        """.write(toFile: det, atomically: true, encoding: .utf8)
        assertFails(try GLMC.run(["convert", det, "--target", "cpu", "-o", scratch + "/t.plan"], timeout: 120),
                    containing: ["unsupported: --target cpu cannot compile Einsum on i64 tensors", "(node 'einsum')"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch + "/t.plan"))
    }

    func testExecutorRefusesMissingKernelsAndBadInputs() throws {
        let path = scratch + "/mlp.plan"
        assertSucceeds(try GLMC.run(["convert", RoundTripPaths.model("mlp.onnx"), "--target", "cpu", "-o", path], timeout: 120))
        let plan = try PlanReader.read(path: path)
        let executor = try CPUExecutor(plan: plan)
        XCTAssertTrue(executor.weightsInPlace, "a mapped plan's weights are used in place")
        let input = plan.manifest.inputs[0]
        let zeros = HostTensor(dtype: "f32", shape: input.shape, bytes: Data(count: input.shape.reduce(4, *)))
        let out = try executor.run(inputs: [input.name: zeros])
        XCTAssertEqual(out.map(\.name), ["logits"])
        XCTAssertEqual(out[0].shape, [1, 10])
        XCTAssertThrowsError(try executor.run(inputs: [input.name: HostTensor(dtype: "f16", shape: input.shape, bytes: Data(count: 128))])) {
            XCTAssertTrue("\($0)".contains("compiled for f32"), "\($0)")
        }
        XCTAssertThrowsError(try executor.run(inputs: [:])) { XCTAssertTrue("\($0)".contains("missing input 'input'"), "\($0)") }

        var broken = plan
        broken.manifest.steps[1].kernel = "glmc_no_such_kernel"
        XCTAssertThrowsError(try CPUExecutor(plan: broken)) {
            XCTAssertTrue("\($0)".contains("kernel 'glmc_no_such_kernel' is missing"), "\($0)")
        }
        var gpu = plan
        gpu.manifest.target = "cuda"
        XCTAssertThrowsError(try CPUExecutor(plan: gpu)) { XCTAssertTrue("\($0)".contains("not cpu"), "\($0)") }
    }

    /// Converts IR text to a plan, runs the plan and the interpreter on the same random inputs and
    /// compares every output.
    func checkAgainstInterpreter(_ ir: String, inputs shapes: [[Int]], seed: UInt64, convert extra: [String] = [],
                                 indexInputs: [Int: Int] = [:]) throws {
        var rng = SplitMix64(seed: seed)
        let model = scratch + "/model.glmc", plan = scratch + "/model.plan"
        try ir.write(toFile: model, atomically: true, encoding: .utf8)
        assertSucceeds(try GLMC.run(["convert", model, "--target", "cpu", "-o", plan] + extra, timeout: 120), "convert")
        var args: [String] = []
        for (i, shape) in shapes.enumerated() {
            let path = scratch + "/in\(i).npy"
            if let bound = indexInputs[i] {
                // An i64 input of indices in [-bound, bound).
                let values = (0 ..< shape.reduce(1, *)).map { _ in Int64(rng.unit() * Double(2 * bound)) - Int64(bound) }
                try NPY.write(encoded: try NPY.encode(Tensor(values, shape: shape)), to: path)
            } else {
                let values = (0 ..< shape.reduce(1, *)).map { _ in Float(rng.unit() * 2 - 1) }
                try NPY.write(encoded: try NPY.encode(Tensor(values, shape: shape)), to: path)
            }
            args += ["--input", path]
        }
        assertSucceeds(try GLMC.run(["run", plan, "--output-dir", scratch + "/p"] + args), "run plan")
        assertSucceeds(try GLMC.run(["run", model, "--output-dir", scratch + "/i"] + args), "run interpreter")
        let files = outputs(in: scratch + "/i").sorted()
        XCTAssertFalse(files.isEmpty)
        XCTAssertEqual(outputs(in: scratch + "/p").sorted(), files)
        for file in files {
            let got = try NPY.read(path: scratch + "/p/" + file), want = try NPY.read(path: scratch + "/i/" + file)
            XCTAssertEqual(got.shape, want.shape, file)
            let scale = want.doubles.map(abs).max() ?? 0
            for (x, y) in zip(got.doubles, want.doubles) where abs(x - y) > 1e-5 * scale + 1e-4 * abs(y) {
                XCTFail("\(file): \(x) vs interpreter \(y)")
                break
            }
        }
    }

    static func constant(_ name: String, _ shape: [Int], _ rng: inout SplitMix64) -> String {
        let values = (0 ..< shape.reduce(1, *)).map { _ in String(format: "%.4f", rng.unit() - 0.5) }
        return "const dense<[\(values.joined(separator: ", "))]> : f32[\(shape.map(String.init).joined(separator: ","))] loc(\"\(name)\")"
    }

    /// Grouped, strided, padded Conv with a LeakyRelu epilogue; padded AveragePool (pads not
    /// counted) and dilated MaxPool reading the same buffer; MatMul + bias + Relu (a gemm_relu group
    /// after -O3); a value that is both an output and read by later steps.
    func testWindowOpsAndMatMulGroupsMatchTheInterpreter() throws {
        var rng = SplitMix64(seed: 7)
        let ir = """
        opsets {"" = 17}

        func @mix(%0: f32[1,4,9,9] loc("x"), %20: f32[3,5] loc("m")) -> (f32[1,6,5,5] loc("y"), f32[1,6,3,3] loc("p"), f32[1,6,2,2] loc("q"), f32[3,4] loc("r")) {
          %1 = \(Self.constant("w", [6, 2, 3, 3], &rng))
          %2 = \(Self.constant("b", [6], &rng))
          %3 = Conv(%0, %1, %2) {dilations = [1, 1], group = 2, kernel_shape = [3, 3], pads = [1, 1, 1, 1], strides = [2, 2]} : f32[1,6,5,5] loc("c")
          %4 = LeakyRelu(%3) {alpha = 0.1} : f32[1,6,5,5] loc("y")
          %5 = AveragePool(%4) {kernel_shape = [3, 3], pads = [1, 1, 1, 1], strides = [2, 2], count_include_pad = 0} : f32[1,6,3,3] loc("p")
          %6 = MaxPool(%4) {kernel_shape = [2, 2], dilations = [2, 2], strides = [2, 2]} : f32[1,6,2,2] loc("q")
          %21 = \(Self.constant("mw", [5, 4], &rng))
          %22 = \(Self.constant("mbias", [4], &rng))
          %23 = MatMul(%20, %21) : f32[3,4] loc("mm")
          %24 = Add(%23, %22) : f32[3,4] loc("mb")
          %25 = Relu(%24) : f32[3,4] loc("r")
          return %4, %5, %6, %25
        }
        """
        try checkAgainstInterpreter(ir, inputs: [[1, 4, 9, 9], [3, 5]], seed: 11)
    }

    /// A broadcast elementwise instruction and an elementwise fusion group with a scalar weight,
    /// two outputs.
    func testElementwiseKernelsMatchTheInterpreter() throws {
        let ir = """
        opsets {"" = 17}

        func @ew(%0: f32[2,3,4] loc("x"), %1: f32[4] loc("y")) -> (f32[2,3,4] loc("z"), f32[2,3,4] loc("w")) {
          %2 = const dense<[2.0]> : f32[] loc("two")
          %3 = Add(%0, %1) : f32[2,3,4] loc("a")
          %4 = Mul(%3, %2) : f32[2,3,4] loc("b")
          %5 = Sigmoid(%4) : f32[2,3,4] loc("z")
          %6 = Relu(%3) : f32[2,3,4] loc("w")
          return %5, %6
        }
        """
        try checkAgainstInterpreter(ir, inputs: [[2, 3, 4], [4]], seed: 3)
    }

    /// Integer arithmetic (division and remainder by zero and negative values), casts between
    /// integers, floats, halves and bools, and a bool select, through the whole plan path.
    func testIntegerAndCastKernelsMatchTheInterpreter() throws {
        let ir = """
        opsets {"" = 17}

        func @ints(%0: i64[2,3,4] loc("x"), %1: i64[4] loc("y")) -> (i32[2,3,4] loc("q"), f32[2,3,4] loc("f"), i64[2,3,4] loc("w")) {
          %2 = Div(%0, %1) : i64[2,3,4] loc("d")
          %3 = Mod(%0, %1) : i64[2,3,4] loc("m")
          %4 = Add(%2, %3) : i64[2,3,4] loc("s")
          %5 = Cast(%4) {to = 6} : i32[2,3,4] loc("q")
          %6 = Cast(%0) {to = 10} : f16[2,3,4] loc("h")
          %7 = Cast(%6) {to = 1} : f32[2,3,4] loc("hf")
          %8 = Cast(%1) {to = 1} : f32[4] loc("yf")
          %12 = const dense<[0.5]> : f32[] loc("half")
          %13 = Add(%8, %12) : f32[4] loc("nonzero")
          %9 = Div(%7, %13) : f32[2,3,4] loc("f")
          %10 = Less(%0, %1) : bool[2,3,4] loc("l")
          %11 = Where(%10, %2, %3) : i64[2,3,4] loc("w")
          return %5, %9, %11
        }
        """
        try checkAgainstInterpreter(ir, inputs: [[2, 3, 4], [4]], seed: 5, indexInputs: [0: 50, 1: 3])
    }

    /// A fusion group the builder cannot compile as one kernel (MatMul, Relu, then an Add of a
    /// residual) falls back to one step per member, its intermediates in the arena.
    func testFusionGroupFallsBackToItsMembers() throws {
        var rng = SplitMix64(seed: 5)
        let ir = """
        opsets {"" = 17, glmc = 1}

        func @g(%0: f32[3,4] loc("x")) -> (f32[3,4] loc("y")) {
          %1 = \(Self.constant("w", [4, 4], &rng))
          %2 = glmc.Fused(%0, %1) {body = graph @mm_relu_add(%p: f32[3,4], %q: f32[4,4]) -> (f32[3,4]) {
            %m = MatMul(%p, %q) : f32[3,4]
            %r = Relu(%m) : f32[3,4]
            %s = Add(%r, %p) : f32[3,4]
            return %s
          }, kind = "custom"} : f32[3,4] loc("y")
          return %2
        }
        """
        try checkAgainstInterpreter(ir, inputs: [[3, 4]], seed: 9)
    }

    /// At -O0 (no constant folder), a weight built by ConstantOfShape and an Add of two constants
    /// are evaluated at convert time and stored as plan weights.
    func testValuesComputedFromConstantsBecomeWeights() throws {
        let ir = """
        opsets {"" = 17}

        func @c(%0: f32[3,4] loc("x")) -> (f32[3,4] loc("y")) {
          %1 = const dense<[4, 4]> : i64[2] loc("shape")
          %2 = ConstantOfShape(%1) {value = dense<[0.25]> : f32[1]} : f32[4,4] loc("w")
          %3 = const dense<[1.0, 2.0, 3.0, 4.0]> : f32[4] loc("b0")
          %4 = Add(%3, %3) : f32[4] loc("b")
          %5 = MatMul(%0, %2) : f32[3,4] loc("m")
          %6 = Add(%5, %4) : f32[3,4] loc("y")
          return %6
        }
        """
        try checkAgainstInterpreter(ir, inputs: [[3, 4]], seed: 4, convert: ["-O0"])
    }

    /// BatchNormalization, LRN, Softmax over a middle axis, Concat on axis 1 with a constant,
    /// Dropout and a 4-D Transpose.
    func testNormalizationAndMovementKernelsMatchTheInterpreter() throws {
        var rng = SplitMix64(seed: 21)
        let ir = """
        opsets {"" = 17}

        func @n(%0: f32[2,5,3,4] loc("x")) -> (f32[2,5,3,4] loc("l"), f32[2,5,3,4] loc("s"), f32[2,7,3,4] loc("c"), f32[4,2,3,5] loc("t")) {
          %1 = \(Self.constant("scale", [5], &rng))
          %2 = \(Self.constant("bias", [5], &rng))
          %3 = \(Self.constant("mean", [5], &rng))
          %4 = const dense<[0.5, 1.0, 1.5, 2.0, 0.25]> : f32[5] loc("var")
          %5 = BatchNormalization(%0, %1, %2, %3, %4) {epsilon = 0.001} : f32[2,5,3,4] loc("bn")
          %6 = LRN(%5) {size = 3, alpha = 0.5, beta = 0.75, bias = 2.0} : f32[2,5,3,4] loc("l")
          %7 = Softmax(%6) {axis = 1} : f32[2,5,3,4] loc("s")
          %8 = \(Self.constant("extra", [2, 2, 3, 4], &rng))
          %9 = Concat(%5, %8) {axis = 1} : f32[2,7,3,4] loc("cc")
          %10 = Dropout(%9) {ratio = 0.5} : f32[2,7,3,4] loc("c")
          %11 = Transpose(%6) {perm = [3, 0, 2, 1]} : f32[4,2,3,5] loc("t")
          return %6, %7, %10, %11
        }
        """
        try checkAgainstInterpreter(ir, inputs: [[2, 5, 3, 4]], seed: 13)
    }

    /// Softmax before opset 13 (the input coerced to 2-D at the axis), Concat on the last axis,
    /// Gather of embedding rows with i64 indices (negative ones too), Gather on axis 1.
    func testSoftmaxOpset11ConcatAndGatherMatchTheInterpreter() throws {
        var rng = SplitMix64(seed: 22)
        let ir = """
        opsets {"" = 11}

        func @g(%0: f32[2,3,4] loc("x"), %1: i64[2,3] loc("ids")) -> (f32[2,3,4] loc("s"), f32[2,3,7] loc("c"), f32[2,3,5] loc("e"), f32[2,2,3,4] loc("h")) {
          %2 = Softmax(%0) {axis = 1} : f32[2,3,4] loc("s")
          %3 = \(Self.constant("pad", [2, 3, 3], &rng))
          %4 = Concat(%0, %3) {axis = -1} : f32[2,3,7] loc("c")
          %5 = \(Self.constant("table", [6, 5], &rng))
          %6 = Gather(%5, %1) {axis = 0} : f32[2,3,5] loc("e")
          %7 = const dense<[2, 0]> : i64[2] loc("pick")
          %8 = Gather(%2, %7) {axis = 1} : f32[2,2,4] loc("g1")
          %9 = Unsqueeze(%8) {axes = [2]} : f32[2,2,1,4] loc("u")
          %10 = Mul(%9, %0) : f32[2,2,3,4] loc("h")
          return %2, %4, %6, %10
        }
        """
        try checkAgainstInterpreter(ir, inputs: [[2, 3, 4], [2, 3]], seed: 17, indexInputs: [1: 6])
    }

    /// Batched MatMul (shared and batched right operands, with a Relu epilogue group), LayerNorm
    /// over the last axis, ReduceMean/ReduceSum over the last axes, Sum with broadcasting.
    func testBatchedMatMulLayerNormAndReductionsMatchTheInterpreter() throws {
        var rng = SplitMix64(seed: 23)
        let ir = """
        opsets {"" = 17}

        func @b(%0: f32[2,3,4,5] loc("x"), %1: f32[2,3,5,6] loc("y")) -> (f32[2,3,4,6] loc("p"), f32[2,3,4,3] loc("q"), f32[2,3,4,5] loc("ln"), f32[2,3,4,1] loc("rm"), f32[2,3] loc("rs"), f32[2,3,4,5] loc("sum")) {
          %2 = MatMul(%0, %1) : f32[2,3,4,6] loc("p")
          %3 = \(Self.constant("w", [5, 3], &rng))
          %4 = MatMul(%0, %3) : f32[2,3,4,3] loc("q0")
          %5 = Relu(%4) : f32[2,3,4,3] loc("q")
          %6 = \(Self.constant("gamma", [5], &rng))
          %7 = \(Self.constant("beta", [5], &rng))
          %8 = LayerNormalization(%0, %6, %7) {axis = -1, epsilon = 0.00001} : f32[2,3,4,5] loc("ln")
          %9 = ReduceMean(%0) {axes = [-1], keepdims = 1} : f32[2,3,4,1] loc("rm")
          %10 = const dense<[2, 3]> : i64[2] loc("axes")
          %11 = ReduceSum(%0, %10) {keepdims = 0} : f32[2,3] loc("rs")
          %12 = Sum(%0, %6, %8) : f32[2,3,4,5] loc("sum")
          return %2, %5, %8, %9, %11, %12
        }
        """
        try checkAgainstInterpreter(ir, inputs: [[2, 3, 4, 5], [2, 3, 5, 6]], seed: 19)
    }

    /// Every light model-zoo model (opset 9, f32[1,3,224,224]) converts to a CPU plan whose output
    /// matches the interpreter's on a seeded input (|plan - interpreter| <= 1e-3 |interpreter| +
    /// 1e-4 max |interpreter|). Release builds only, or with GLMC_FULL_EQUIVALENCE=1: the
    /// interpreter is slow in debug builds.
    func testLightModelZooPlansMatchTheInterpreter() throws {
        #if DEBUG
        guard ProcessInfo.processInfo.environment["GLMC_FULL_EQUIVALENCE"] == "1" else {
            throw XCTSkip("runs in release builds or with GLMC_FULL_EQUIVALENCE=1")
        }
        #endif
        let models = Fixtures.lightModels()
        if models.isEmpty { throw XCTSkip("the onnx package's light models are not installed; run `make setup`") }
        var rng = SplitMix64(seed: 2024)
        let values = (0 ..< 3 * 224 * 224).map { _ in Float(rng.unit() * 2 - 1) }
        let input = scratch + "/input.npy"
        try NPY.write(encoded: try NPY.encode(Tensor(values, shape: [1, 3, 224, 224])), to: input)
        for model in models {
            let name = URL(fileURLWithPath: model).deletingPathExtension().lastPathComponent
            let plan = scratch + "/\(name).plan", p = scratch + "/\(name)-p", i = scratch + "/\(name)-i"
            assertSucceeds(try GLMC.run(["convert", model, "--target", "cpu", "-o", plan], timeout: 600), "\(name): convert")
            assertSucceeds(try GLMC.run(["run", plan, "--input", input, "--output-dir", p], timeout: 600), "\(name): run plan")
            assertSucceeds(try GLMC.run(["run", model, "--input", input, "--output-dir", i], timeout: 1200), "\(name): run interpreter")
            let files = outputs(in: i).sorted()
            XCTAssertFalse(files.isEmpty, name)
            XCTAssertEqual(outputs(in: p).sorted(), files, name)
            for file in files {
                let got = try NPY.read(path: p + "/" + file), want = try NPY.read(path: i + "/" + file)
                XCTAssertEqual(got.shape, want.shape, "\(name) \(file)")
                let scale = want.doubles.map(abs).max() ?? 0
                var worst = 0.0
                for (x, y) in zip(got.doubles, want.doubles) { worst = max(worst, abs(x - y) / (1e-3 * abs(y) + 1e-4 * scale)) }
                XCTAssertLessThanOrEqual(worst, 1, "\(name) \(file): worst error \(worst) of the tolerance")
                print("light model \(name) \(file): max|out| \(scale), worst error \(String(format: "%.3g", worst)) of the tolerance")
            }
        }
    }

    func outputs(in dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasPrefix("output_") }
    }
}
