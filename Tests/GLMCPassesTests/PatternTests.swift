import Foundation
import GLMCFrontends
import GLMCInterpreter
import GLMCIR
import GLMCOps
import GLMCPasses
import GLMCTestSupport
import XCTest

/// The folding and pattern-fusion passes keep what real models compute: each model is imported,
/// cleaned up with -O1, run in the interpreter, put through the pattern passes (verifying the IR
/// after each) and run again; outputs must agree to rtol 1e-4, atol 1e-5.
final class PatternTests: XCTestCase {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static let patternPasses: [any Pass.Type] = [
        FoldBatchNorm.self, FoldAffineIntoProducer.self, FuseNormalization.self, FuseGelu.self,
        FuseAttention.self, FuseProducerActivation.self, DeadCodeElimination.self,
    ]

    /// The module after -O1 (`before`) and after the pattern passes too (`after`).
    static func optimize(_ path: String) throws -> (before: Module, after: Module) {
        var module = try ModelLoader.load(path: path).module
        var manager = PassManager(passes: PassRegistry.pipeline(level: 1))
        manager.instrumentation.verifyEach = true
        try manager.run(&module)
        let before = module
        manager.passes = patternPasses
        try manager.run(&module)
        return (before, module)
    }

    /// Top-level instructions per op (constants left out), with fusion groups counted by kind.
    static func census(_ m: Module) -> [String: Int] {
        var counts: [String: Int] = [:]
        for inst in m.main.body where inst.op != .constant {
            if inst.op == FusedOps.fused, case .string(let kind)? = inst.attributes["kind"] {
                counts["fused:" + kind, default: 0] += 1
            } else {
                counts[inst.op.description, default: 0] += 1
            }
        }
        return counts
    }

    func assertSameOutputs(_ a: Module, _ b: Module, inputs: [Tensor], _ label: String) throws {
        let expected = try Interpreter.run(a, inputs: inputs)
        let actual = try Interpreter.run(b, inputs: inputs)
        XCTAssertEqual(expected.count, actual.count, label)
        for (k, (e, x)) in zip(expected, actual).enumerated() {
            XCTAssertEqual(e.shape, x.shape, "\(label) output \(k)")
            let ev = e.doubles, xv = x.doubles
            guard ev.count == xv.count else { continue }
            var worst = 0.0
            for (p, q) in zip(ev, xv) where !(p.isNaN && q.isNaN) {
                worst = max(worst, abs(p - q) - 1e-4 * abs(p))
            }
            XCTAssertLessThanOrEqual(worst, 1e-5, "\(label) output \(k) differs beyond rtol 1e-4, atol 1e-5")
        }
    }

    /// Every case of the pattern passes' golden files computes the same before and after its RUN
    /// passes, on seeded random inputs (symbolic dimensions are 2).
    func testGoldenCasesKeepOutputs() throws {
        let files = ["fold-batch-norm", "fold-affine", "fuse-conv-activation", "fuse-normalization", "fuse-gelu", "fuse-attention"]
        var rng = SplitMix64(seed: 7)
        for file in files {
            let text = try String(contentsOf: GoldenPassTests.inputs.appendingPathComponent(file + ".glir"), encoding: .utf8)
            let golden = GoldenFile(text: text)
            let passes = try GoldenPassTests.pipeline(golden.run)
            for c in golden.cases {
                let before = try Parser.parse(c.text)
                var after = before
                try PassManager(passes: passes).run(&after)
                let inputs = before.main.arguments.map { arg -> Tensor in
                    let type = before.main.type(of: arg)
                    let sizes = (type.shape.dims ?? []).map { $0.value ?? 2 }
                    let values = (0 ..< sizes.reduce(1, *)).map { _ in rng.unit() * 2 - 1 }
                    return Tensor(doubles: type.dtype == .bool ? values.map { $0 > 0 ? 1 : 0 } : values, dtype: type.dtype, shape: sizes)
                }
                try assertSameOutputs(before, after, inputs: inputs, "\(file).glir:\(c.firstLine)")
            }
        }
    }

    func testSampleModels() throws {
        let expectations: [String: [String: Int]] = [
            "cnn": ["BatchNormalization": 0, "Relu": 0, "fused:conv_relu": 2],
            "mlp": ["Relu": 0, "fused:gemm_relu": 2],
            "transformer": ["Softmax": 0, "Erf": 0, "fused:attention": 1, "fused:matmul_bias_gelu": 1],
        ]
        for (name, expected) in expectations.sorted(by: { $0.key < $1.key }) {
            let models = Self.packageRoot.appendingPathComponent("Models")
            let (before, after) = try Self.optimize(models.appendingPathComponent("\(name).onnx").path)
            let census = Self.census(after)
            for (op, count) in expected { XCTAssertEqual(census[op] ?? 0, count, "\(name): \(op) in \(census)") }
            let input = try NPY.read(path: models.appendingPathComponent("\(name).input_0.npy").path)
            try assertSameOutputs(before, after, inputs: [input], name)
        }
    }

    /// The light model-zoo models (opset 9, Conv + BatchNormalization + Relu, Conv + Relu, Gemm).
    /// Their weights come from ConstantOfShape nodes, so folding needs -O1's constant folding. Running
    /// them takes minutes in a debug build: there the passes only run (with the verifier); release
    /// builds, or GLMC_SLOW_TESTS=1, also compare outputs on a seeded random input.
    func testLightModels() throws {
        let lib = Self.packageRoot.appendingPathComponent(".venv/lib")
        let pythons = (try? FileManager.default.contentsOfDirectory(atPath: lib.path)) ?? []
        guard let dir = pythons.lazy.map({ lib.appendingPathComponent("\($0)/site-packages/onnx/backend/test/data/light") })
            .first(where: { FileManager.default.fileExists(atPath: $0.path) }) else {
            throw XCTSkip("the onnx package's light models are not installed; run `make setup`")
        }
        #if DEBUG
        let compare = ProcessInfo.processInfo.environment["GLMC_SLOW_TESTS"] == "1"
        #else
        let compare = true
        #endif
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".onnx") }.sorted()
        XCTAssertEqual(files.count, 9)
        for file in files {
            let (before, after) = try Self.optimize(dir.appendingPathComponent(file).path)
            let b = Self.census(before), a = Self.census(after)
            // Nothing the passes do adds instructions.
            XCTAssertLessThanOrEqual(a.values.reduce(0, +), b.values.reduce(0, +), file)
            guard compare else { continue }
            var rng = SplitMix64(seed: 42)
            let inputs = before.main.arguments.map { arg -> Tensor in
                let sizes = before.main.type(of: arg).shape.staticSizes ?? []
                return Tensor((0 ..< sizes.reduce(1, *)).map { _ in Float(rng.unit() * 2 - 1) }, shape: sizes)
            }
            try assertSameOutputs(before, after, inputs: inputs, file)
        }
    }
}

