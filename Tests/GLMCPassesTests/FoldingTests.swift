import Foundation
import GLMCFrontends
import GLMCIR
import GLMCInterpreter
import GLMCOps
import GLMCPasses
import GLMCTestSupport
import XCTest

/// The -O1/-O2 pipelines on real models: the verifier passes after every pass and the interpreter
/// gives the same outputs (rtol 1e-4) before and after. Prints instruction counts per model.
///
/// The light model-zoo models (opset 9, weights from ConstantOfShape) are found in
/// `$GLMC_LIGHT_MODELS_DIR` or the package's `.venv` (onnx's backend test data). They are only
/// optimized and counted by default; running them in the debug interpreter takes minutes, so their
/// outputs are compared only when `GLMC_LIGHT_MODELS_RUN` names them (comma-separated, or `all`).
final class FoldingTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func testSampleModelsKeepTheirOutputs() throws {
        for name in ["mlp", "cnn", "transformer"] {
            let path = Self.root.appendingPathComponent("Models/\(name).onnx").path
            let input = try NPY.read(path: Self.root.appendingPathComponent("Models/\(name).input_0.npy").path)
            for level in [1, 2] {
                try checkPipeline(path: path, label: name, level: level, inputs: [input])
            }
        }
    }

    /// After -O1 every Reshape of the transformer has a constant target (the batch dim is copied
    /// with 0) and a type that knows every dim but the batch.
    func testTransformerReshapeTargetsBecomeConstant() throws {
        var module = try ModelLoader.load(path: Self.root.appendingPathComponent("Models/transformer.onnx").path).module
        try PassManager(passes: PassRegistry.pipeline(level: 1)).run(&module)
        let f = module.main
        let defining = f.definingInstructions()
        let reshapes = f.body.filter { $0.op.type == "Reshape" }
        XCTAssertEqual(reshapes.count, 4)
        for r in reshapes {
            guard let target = r.operands[1], let d = defining[target] else { return XCTFail("Reshape without target") }
            XCTAssertNotNil(f.body[d].constantValue, "Reshape target is not constant")
            let dims = f.type(of: r.results[0]).shape.dims ?? []
            XCTAssertEqual(dims.first, .symbol("batch"))
            XCTAssertTrue(dims.dropFirst().allSatisfy { $0.value != nil }, "\(dims)")
        }
        XCTAssertFalse(f.body.contains { $0.op.type == "Shape" || $0.op.type == "Concat" })
    }

    func testLightModels() throws {
        guard let dir = Fixtures.lightModelsDirectory() else { throw XCTSkip("light model-zoo models not found") }
        let run = ProcessInfo.processInfo.environment["GLMC_LIGHT_MODELS_RUN"] ?? ""
        let names = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".onnx") }.sorted()
        XCTAssertFalse(names.isEmpty)
        for file in names {
            let name = String(file.dropLast(".onnx".count))
            let path = dir + "/" + file
            let execute = run == "all" || run.split(separator: ",").contains { name.hasSuffix($0) }
            if execute {
                let module = try ModelLoader.load(path: path).module
                let inputs = module.main.arguments.map { Self.seededInput(module.main.type(of: $0)) }
                try checkPipeline(path: path, label: name, level: 2, inputs: inputs)
            } else {
                try checkPipeline(path: path, label: name, level: 2, inputs: nil)
            }
        }
    }

    // MARK: Helpers

    /// Runs the -O`level` pipeline with verification after each pass; compares interpreter outputs
    /// when `inputs` are given; prints instruction counts.
    func checkPipeline(path: String, label: String, level: Int, inputs: [Tensor]?) throws {
        let original = try ModelLoader.load(path: path).module
        var optimized = original
        var manager = PassManager(passes: PassRegistry.pipeline(level: level))
        manager.instrumentation.verifyEach = true
        try manager.run(&optimized)
        let before = Self.counts(original.main), after = Self.counts(optimized.main)
        print("\(label) -O\(level): instructions \(before.all) -> \(after.all), without constants \(before.compute) -> \(after.compute)")
        XCTAssertLessThanOrEqual(after.all, before.all, label)
        guard let inputs else { return }
        let expected = try Interpreter.run(original, inputs: inputs)
        let actual = try Interpreter.run(optimized, inputs: inputs)
        XCTAssertEqual(expected.count, actual.count, label)
        for (i, (e, a)) in zip(expected, actual).enumerated() {
            XCTAssertEqual(e.shape, a.shape, "\(label) -O\(level) output \(i)")
            XCTAssertEqual(e.dtype, a.dtype, "\(label) -O\(level) output \(i)")
            let worst = zip(e.doubles, a.doubles).map { x, y in abs(x - y) / (1e-6 + 1e-4 * abs(x)) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, 1, "\(label) -O\(level) output \(i) differs")
        }
    }

    /// Instructions in a function and its nested regions: all of them, and those that are not constants.
    static func counts(_ f: Function) -> (all: Int, compute: Int) {
        var all = 0, compute = 0
        for inst in f.body {
            all += 1
            if inst.op != .constant { compute += 1 }
            for g in inst.nestedFunctions {
                let c = counts(g)
                all += c.all; compute += c.compute
            }
        }
        return (all, compute)
    }

    /// A deterministic input in [-1, 1) for a static f32 type (other types: zeros).
    static func seededInput(_ type: TensorType) -> Tensor {
        let sizes = type.shape.staticSizes ?? []
        let n = sizes.reduce(1, *)
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        let values = (0 ..< n).map { _ -> Double in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Double(state >> 11) / Double(1 << 53) * 2 - 1
        }
        return type.dtype == .f32 ? Tensor(doubles: values, dtype: .f32, shape: sizes) : Tensor.zeros(type.dtype, shape: sizes)
    }
}
