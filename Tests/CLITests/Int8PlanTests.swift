import Foundation
import GLMCInterpreter
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
    }

    /// The MLP's Gemm/MatMul path: quantized, and still close to fp32.
    func testInt8MLPPlanQuantizesItsMatrixProducts() throws {
        let model = RoundTripPaths.model("mlp.onnx"), stored = RoundTripPaths.model("mlp.input_0.npy")
        let fp32 = scratch + "/mlp.plan", int8 = scratch + "/mlp.int8.plan"
        assertSucceeds(try GLMC.run(["convert", model, "--target", "cpu", "-o", fp32], timeout: 120), "fp32 plan")
        let r = try GLMC.run(["convert", model, "--target", "cpu", "--precision", "int8", "--calibration-data", "random:4",
                              "--calibration-method", "minmax", "-o", int8], timeout: 180)
        assertSucceeds(r, "int8 plan")
        let kinds = try PlanReader.read(path: int8).manifest.steps.map(\.kind)
        XCTAssertTrue(kinds.contains { $0.hasPrefix("gemm_int8") || $0.hasPrefix("matmul_int8") }, kinds.description)
        let c = cosine(try runPlan(fp32, stored, "mlp.fp32"), try runPlan(int8, stored, "mlp.int8"))
        XCTAssertGreaterThanOrEqual(c, 0.99, "cosine \(c)")
    }

    func testInt8NeedsCalibrationDataAndFP16IsRefused() throws {
        let model = RoundTripPaths.model("cnn.onnx"), out = scratch + "/x.plan"
        assertFails(try GLMC.run(["convert", model, "--target", "cpu", "--precision", "int8", "-o", out]),
                    containing: ["--precision int8 needs --calibration-data"])
        assertFails(try GLMC.run(["convert", model, "--target", "cpu", "--precision", "fp16", "-o", out]),
                    containing: ["--precision fp16"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }
}
