import Foundation
import GLMCInterpreter
import GLMCIR
import GLMCOps
import GLMCPlan
import GLMCTestSupport
import XCTest

/// `glmc convert --target cpu --precision int8` end to end: int8 plans stay close to fp32 plans.
final class Int8PlanTests: XCTestCase {
    var scratch = ""

    override func setUpWithError() throws {
        guard CPUPlanTests.hasCCompiler else { throw XCTSkip("no C compiler ($CC, cc, gcc or clang) on PATH") }
        scratch = try Fixtures.temporaryDirectory("glmc-int8")
    }

    override func tearDownWithError() throws {
        if !scratch.isEmpty { try? FileManager.default.removeItem(atPath: scratch) }
    }

    /// Cosine similarity of two tensors' elements.
    func cosine(_ a: Tensor, _ b: Tensor) -> Double {
        var dot = 0.0, aa = 0.0, bb = 0.0
        for (x, y) in zip(a.doubles, b.doubles) { dot += x * y; aa += x * x; bb += y * y }
        return dot / max((aa * bb).squareRoot(), .leastNormalMagnitude)
    }

    /// Seeded approximately standard-normal values (sum of 4 uniforms, rescaled).
    func randomTensor(shape: [Int], seed: UInt64) -> Tensor {
        var rng = SplitMix64(seed: seed)
        let values = (0 ..< shape.reduce(1, *)).map { _ in Float(((0 ..< 4).map { _ in rng.unit() }.reduce(0, +) - 2) * 3.0.squareRoot()) }
        return Tensor(values, shape: shape)
    }

    func runPlan(_ plan: String, _ input: String, _ out: String) throws -> Tensor {
        assertSucceeds(try GLMC.run(["run", plan, "--input", input, "--output-dir", scratch + "/" + out], timeout: 60), "run \(plan)")
        return try NPY.read(path: scratch + "/\(out)/output_0.npy")
    }

    func testInt8CNNPlanKeepsCosineSimilarityToTheFP32Plan() throws {
        let model = RoundTripPaths.model("cnn.onnx"), stored = RoundTripPaths.model("cnn.input_0.npy")
        let shape = try NPY.read(path: stored).shape
        // Calibration samples: the stored input and seeded random ones (evaluation uses other seeds).
        let data = scratch + "/data"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: stored, toPath: data + "/stored.npy")
        for s in 0 ..< 4 { try NPY.write(randomTensor(shape: shape, seed: UInt64(100 + s)), to: data + "/r\(s).npy") }
        let fp32 = scratch + "/cnn.plan", int8 = scratch + "/cnn.int8.plan"
        assertSucceeds(try GLMC.run(["convert", model, "--target", "cpu", "-o", fp32], timeout: 120), "fp32 plan")
        assertSucceeds(try GLMC.run(["convert", model, "--target", "cpu", "--precision", "int8", "--calibration-data", data,
                                     "--calibration-method", "minmax", "-o", int8], timeout: 180), "int8 plan")
        let manifest = try PlanReader.read(path: int8).manifest
        XCTAssertEqual(manifest.metadata["precision"], "int8")
        XCTAssertGreaterThan(Int(manifest.metadata["int8_ops"] ?? "") ?? 0, 0, "some Conv/Gemm/MatMul are quantized")
        XCTAssertTrue(manifest.steps.contains { $0.kind.hasPrefix("conv2d_int8") }, manifest.steps.map(\.kind).description)
        XCTAssertNil(try PlanReader.read(path: fp32).manifest.metadata["precision"])

        var inputs = [("stored", stored)]
        for s in 0 ..< 3 {
            let path = scratch + "/in\(s).npy"
            try NPY.write(randomTensor(shape: shape, seed: UInt64(7 + s)), to: path)
            inputs.append(("random\(s)", path))
        }
        for (name, path) in inputs {
            let a = try runPlan(fp32, path, name + ".fp32"), b = try runPlan(int8, path, name + ".int8")
            XCTAssertEqual(a.shape, b.shape)
            let c = cosine(a, b)
            XCTAssertGreaterThanOrEqual(c, 0.99, "\(name): cosine \(c)")
            XCTAssertLessThan(c, 1 + 1e-9)
        }
        // Threads split the int8 steps' rows; the shared scratch buffer must not mix them up.
        assertSucceeds(try GLMC.run(["run", int8, "--input", stored, "--threads", "2", "--output-dir", scratch + "/t2"], timeout: 60), "run --threads 2")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: scratch + "/t2/output_0.npy")),
                       try Data(contentsOf: URL(fileURLWithPath: scratch + "/stored.int8/output_0.npy")))
    }

    /// The MLP's Gemm/MatMul path: quantized, and still close to fp32.
    func testInt8MLPPlanQuantizesItsMatrixProducts() throws {
        let model = RoundTripPaths.model("mlp.onnx"), stored = RoundTripPaths.model("mlp.input_0.npy")
        let fp32 = scratch + "/mlp.plan", int8 = scratch + "/mlp.int8.plan"
        assertSucceeds(try GLMC.run(["convert", model, "--target", "cpu", "-o", fp32], timeout: 120), "fp32 plan")
        let r = try GLMC.run(["convert", model, "--target", "cpu", "--precision", "int8", "--calibration-data", "random:4",
                              "--calibration-method", "minmax", "-o", int8], timeout: 180)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.hasPrefix("warning: calibrating on random samples"), r.stderr)
        let kinds = try PlanReader.read(path: int8).manifest.steps.map(\.kind)
        XCTAssertTrue(kinds.contains { $0.hasPrefix("gemm_int8") || $0.hasPrefix("matmul_int8") }, kinds.description)
        let c = cosine(try runPlan(fp32, stored, "mlp.fp32"), try runPlan(int8, stored, "mlp.int8"))
        XCTAssertGreaterThanOrEqual(c, 0.99, "cosine \(c)")
    }

    /// The int8 lowering's geometry against fp32: a grouped, strided, padded Conv with a LeakyRelu
    /// epilogue; a Gemm with transA, transB, alpha, beta and a [1,N] bias; MatMul + bias + Relu;
    /// a batched MatMul with a shared constant right operand.
    func testInt8GeometryMatchesFP32() throws {
        var rng = SplitMix64(seed: 5)
        let ir = """
        opsets {"" = 17}

        func @mix(%0: f32[2,4,9,9] loc("x"), %10: f32[5,3] loc("a"), %20: f32[3,5] loc("m"), %30: f32[2,3,5] loc("bm")) -> (f32[2,6,5,5] loc("y"), f32[3,4] loc("g"), f32[3,4] loc("r"), f32[2,3,4] loc("bo")) {
          %1 = \(CPUPlanTests.constant("w", [6, 2, 3, 3], &rng))
          %2 = \(CPUPlanTests.constant("b", [6], &rng))
          %3 = Conv(%0, %1, %2) {dilations = [1, 1], group = 2, kernel_shape = [3, 3], pads = [1, 1, 1, 1], strides = [2, 2]} : f32[2,6,5,5] loc("c")
          %4 = LeakyRelu(%3) {alpha = 0.1} : f32[2,6,5,5] loc("y")
          %11 = \(CPUPlanTests.constant("gw", [4, 5], &rng))
          %12 = \(CPUPlanTests.constant("gb", [1, 4], &rng))
          %13 = Gemm(%10, %11, %12) {transA = 1, transB = 1, alpha = 0.5, beta = 2.0} : f32[3,4] loc("g")
          %21 = \(CPUPlanTests.constant("mw", [5, 4], &rng))
          %22 = \(CPUPlanTests.constant("mbias", [4], &rng))
          %23 = MatMul(%20, %21) : f32[3,4] loc("mm")
          %24 = Add(%23, %22) : f32[3,4] loc("mb")
          %25 = Relu(%24) : f32[3,4] loc("r")
          %31 = MatMul(%30, %21) : f32[2,3,4] loc("bo")
          return %4, %13, %25, %31
        }
        """
        let model = scratch + "/mix.glmc", fp32 = scratch + "/mix.plan", int8 = scratch + "/mix.int8.plan"
        try ir.write(toFile: model, atomically: true, encoding: .utf8)
        assertSucceeds(try GLMC.run(["convert", model, "--target", "cpu", "-o", fp32], timeout: 120), "fp32 plan")
        let r = try GLMC.run(["convert", model, "--target", "cpu", "--precision", "int8", "--calibration-data", "random:8",
                              "--calibration-method", "minmax", "-o", int8], timeout: 180)
        XCTAssertEqual(r.status, 0, r.stderr)
        let kinds = try PlanReader.read(path: int8).manifest.steps.map(\.kind)
        for kind in ["conv2d_int8_epilogue", "gemm_int8", "gemm_int8_epilogue", "matmul_int8"] {
            XCTAssertTrue(kinds.contains(kind), "\(kind) in \(kinds)")
        }
        var args: [String] = []
        for (i, (name, shape)) in [("x", [2, 4, 9, 9]), ("a", [5, 3]), ("m", [3, 5]), ("bm", [2, 3, 5])].enumerated() {
            let path = scratch + "/in\(i).npy"
            try NPY.write(randomTensor(shape: shape, seed: UInt64(20 + i)), to: path)
            args += ["--input", "\(name)=\(path)"]
        }
        assertSucceeds(try GLMC.run(["run", fp32, "--output-dir", scratch + "/f"] + args), "run fp32")
        assertSucceeds(try GLMC.run(["run", int8, "--output-dir", scratch + "/q"] + args), "run int8")
        for i in 0 ..< 4 {
            let a = try NPY.read(path: scratch + "/f/output_\(i).npy"), b = try NPY.read(path: scratch + "/q/output_\(i).npy")
            XCTAssertEqual(a.shape, b.shape)
            XCTAssertGreaterThanOrEqual(cosine(a, b), 0.99, "output \(i): \(a.doubles.prefix(8)) vs \(b.doubles.prefix(8))")
        }
    }

    func testInt8NeedsCalibrationDataAndFP16IsRefused() throws {
        let model = RoundTripPaths.model("cnn.onnx"), out = scratch + "/x.plan"
        assertFails(try GLMC.run(["convert", model, "--target", "cpu", "--precision", "int8", "-o", out]),
                    containing: ["--precision int8 needs --calibration-data"])
        assertFails(try GLMC.run(["convert", model, "--target", "cpu", "--precision", "fp16", "-o", out]),
                    containing: ["--precision fp16"])
        assertFails(try GLMC.run(["convert", model, "--target", "onnx", "--precision", "int8", "--calibration-data", "random:2", "-o", out]),
                    containing: ["apply to plans, not to --target onnx"])
        // Calibration data is checked before the build: a bad folder fails fast, nothing written.
        assertFails(try GLMC.run(["convert", model, "--target", "cpu", "--precision", "int8", "--calibration-data", scratch + "/none", "-o", out]),
                    containing: [scratch + "/none"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + ".calib.cache"))
    }
}
