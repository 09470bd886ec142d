import Foundation
import GLMCFrontends
import GLMCInterpreter
import GLMCIR
import GLMCOps
import GLMCPasses
import GLMCTestSupport
import XCTest

/// The optimization pipeline preserves what models compute: the interpreter's outputs at -O3 match
/// those at -O0 (rtol 1e-4, atol 1e-5). Fusion groups also survive being written as ONNX (expanded or
/// as model-local functions) and read back.
///
/// The sample models always run. The nine 224×224 light model-zoo CNNs take minutes in the
/// interpreter of a debug build, so they run only in release test builds (`swift test -c release`)
/// or with GLMC_FULL_EQUIVALENCE=1; `make bench-passes` checks all of them against ONNX Runtime.
final class PipelineEquivalenceTests: XCTestCase {

    static var runsLightModels: Bool {
        #if DEBUG
        return ProcessInfo.processInfo.environment["GLMC_FULL_EQUIVALENCE"] == "1"
        #else
        return true
        #endif
    }

    /// Models/<name>.input_0.npy when it exists, else a seeded random tensor per input.
    static func inputs(for path: String, _ f: Function) throws -> [Tensor] {
        let npy = path.replacingOccurrences(of: ".onnx", with: ".input_0.npy")
        if f.arguments.count == 1, FileManager.default.fileExists(atPath: npy) { return [try NPY.read(path: npy)] }
        var rng = SplitMix64(seed: 42)
        return try f.arguments.map { a in
            let type = f.type(of: a)
            guard let sizes = type.shape.dims?.map({ $0.value ?? 1 }) else { throw GLMCError("\(path): input of unknown rank") }
            let n = sizes.reduce(1, *)
            let values = (0 ..< n).map { _ in type.dtype.isFloatingPoint ? rng.unit() * 2 - 1 : Double(rng.next() % 10) }
            return Tensor(doubles: values, dtype: type.dtype, shape: sizes)
        }
    }

    func assertClose(_ actual: [Tensor], _ expected: [Tensor], _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, label, file: file, line: line)
        for (k, (a, e)) in zip(actual, expected).enumerated() {
            XCTAssertEqual(a.shape, e.shape, "\(label): output \(k)", file: file, line: line)
            let x = a.doubles, y = e.doubles
            if let i = x.indices.first(where: { !(abs(x[$0] - y[$0]) <= 1e-5 + 1e-4 * abs(y[$0])) && !(x[$0].isNaN && y[$0].isNaN) }) {
                XCTFail("\(label): output \(k) differs at element \(i): \(x[i]) vs \(y[i])", file: file, line: line)
            }
        }
    }

    func testO3MatchesO0() throws {
        var models = Fixtures.sampleModels()
        XCTAssertEqual(models.count, 3)
        if Self.runsLightModels { models += Fixtures.lightModels() }
        for path in models {
            let name = (path as NSString).lastPathComponent
            let module = try ModelLoader.load(path: path).module
            try ModuleVerifier.verify(module)
            let inputs = try Self.inputs(for: path, module.main)
            let expected = try Interpreter.run(module, inputs: inputs)
            var optimized = module
            var manager = PassManager(passes: PassRegistry.pipeline(level: 3))
            manager.instrumentation.verifyEach = true
            try manager.run(&optimized)
            assertClose(try Interpreter.run(optimized, inputs: inputs), expected, "\(name) at -O3")
        }
    }

    // MARK: Fusion groups through ONNX

    /// Fuses every single-use producer into the Relu or Add reading it, then every Conv or MatMul
    /// into the group reading it (nested groups). Repeated patterns give repeated bodies.
    static func fuseByHand(_ module: inout Module) {
        func fuseOnce(consumers: Set<String>, producers: Set<String>?, kind: String) -> Bool {
            var f = module.main
            let uses = f.useCounts()
            let defining = f.definingInstructions()
            for (i, inst) in f.body.enumerated() where consumers.contains(inst.op.description) {
                guard let v = inst.operands.first ?? nil, uses[v.index] == 1, let j = defining[v],
                      f.body[j].constantValue == nil, f.body[j].results.count == 1,
                      producers.map({ $0.contains(f.body[j].op.description) }) ?? (f.body[j].op != FusedOps.fused),
                      Fusion.isConvex([j, i], in: f) else { continue }
                Fusion.fuse([j, i], in: &module, function: &f, kind: kind)
                module.main = f
                return true
            }
            return false
        }
        while fuseOnce(consumers: ["Relu", "Add"], producers: nil, kind: "pair") {}
        while fuseOnce(consumers: ["glmc.Fused"], producers: ["Conv", "MatMul"], kind: "nested") {}
    }

    func testFusionGroupsSurviveONNX() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("glmc-fused-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        for path in Fixtures.sampleModels() {
            let name = (path as NSString).lastPathComponent
            let module = try ModelLoader.load(path: path).module
            let inputs = try Self.inputs(for: path, module.main)
            let expected = try Interpreter.run(module, inputs: inputs)
            var fused = module
            Self.fuseByHand(&fused)
            try ModuleVerifier.verify(fused)
            let groups = fused.main.body.filter { $0.op == FusedOps.fused }.count
            XCTAssertGreaterThan(groups, 0, name)
            assertClose(try Interpreter.run(fused, inputs: inputs), expected, "\(name) fused")
            for policy in [ONNXWriter.FusedGroups.functionsWhenRepeated, .inline] {
                let out = scratch.appendingPathComponent(name).path
                try ONNXWriter.write(fused, to: out, fusedGroups: policy)
                if name == "cnn.onnx" {
                    // Its two conv-batchnorm-relu groups share a body: one function, called twice.
                    let bytes = try Data(contentsOf: URL(fileURLWithPath: out))
                    XCTAssertEqual(bytes.range(of: Data(ONNXWriter.functionDomain.utf8)) != nil, policy == .functionsWhenRepeated)
                }
                let back = try ONNXImporter.importModel(path: out).module
                try ModuleVerifier.verify(back)
                XCTAssertFalse(back.main.body.contains { $0.op.domain == FusedOps.domain }, name)
                XCTAssertEqual(back.main.outputNames, module.main.outputNames, name)
                XCTAssertEqual(back.main.arguments.map { back.main.name(of: $0) }, module.main.arguments.map { module.main.name(of: $0) })
                assertClose(try Interpreter.run(back, inputs: inputs), expected, "\(name) fused, written \(policy)")
            }
        }
    }
}

