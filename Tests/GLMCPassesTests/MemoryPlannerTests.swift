import Foundation
import GLMCFrontends
import GLMCInterpreter
import GLMCIR
import GLMCOps
import GLMCPasses
import GLMCTestSupport
import XCTest

/// The static memory plan's invariants on real models, and fuse-elementwise's numerical equivalence.
final class MemoryPlannerTests: XCTestCase {

    static func run(_ passes: [any Pass.Type], on module: inout Module) throws {
        var manager = PassManager(passes: passes)
        manager.instrumentation.verifyEach = true
        try manager.run(&module)
    }

    /// No two tensors that are live at the same time share a byte (but a Concat placed in place
    /// holds its operands, transitively); offsets are aligned; everything lies inside the arena,
    /// which is never larger than separate buffers would be.
    func assertValid(_ plan: MemoryPlan, _ label: String, in f: Function? = nil, file: StaticString = #filePath, line: UInt = #line) {
        var holds: [ValueID: Set<ValueID>] = [:]
        for inst in f?.body ?? [] where plan.concatenatedInPlace.contains(inst.results[0]) {
            let y = inst.results[0], operands = inst.operands.compactMap { $0 }
            holds[y] = Set(operands).union(operands.flatMap { holds[$0] ?? [] })
            for v in operands {
                let inner = plan.offsets[v]! ..< plan.offsets[v]! + plan.sizes[v]!
                XCTAssertTrue(inner.lowerBound >= plan.offsets[y]! && inner.upperBound <= plan.offsets[y]! + plan.sizes[y]!,
                              "\(label): %\(v.index) is not inside its Concat %\(y.index)", file: file, line: line)
            }
        }
        XCTAssertLessThanOrEqual(plan.arenaBytes, plan.intermediateBytes, "\(label): arena exceeds the sum", file: file, line: line)
        let values = plan.offsets.keys.sorted()
        XCTAssertEqual(Set(values), Set(plan.sizes.keys), label, file: file, line: line)
        for v in values {
            let offset = plan.offsets[v]!
            XCTAssertEqual(offset % MemoryPlan.alignment, 0, "\(label): %\(v.index) misaligned", file: file, line: line)
            XCTAssertLessThanOrEqual(offset + plan.sizes[v]!, plan.arenaBytes, "\(label): %\(v.index) outside the arena", file: file, line: line)
        }
        for (i, a) in values.enumerated() {
            for b in values[(i + 1)...] where plan.lifetimes[a]!.overlaps(plan.lifetimes[b]!)
                && holds[a]?.contains(b) != true && holds[b]?.contains(a) != true {
                let ra = plan.offsets[a]! ..< plan.offsets[a]! + plan.sizes[a]!
                let rb = plan.offsets[b]! ..< plan.offsets[b]! + plan.sizes[b]!
                if ra.overlaps(rb) {
                    XCTFail("\(label): %\(a.index) \(ra) and %\(b.index) \(rb) are live together but overlap", file: file, line: line)
                    return
                }
            }
        }
    }

    func testPlanOfModelsBeforeAndAfterFusion() throws {
        let models = Fixtures.sampleModels() + Fixtures.lightModels()
        XCTAssertGreaterThanOrEqual(models.count, 3)
        for path in models {
            let name = URL(fileURLWithPath: path).lastPathComponent
            var module = try ModelLoader.load(path: path).module
            try Self.run(PassRegistry.pipeline(level: 1), on: &module)
            let before = MemoryPlanner.plan(module.main)
            assertValid(before, "\(name) -O1")
            try Self.run([FuseElementwise.self, DeadCodeElimination.self], on: &module)
            let after = MemoryPlanner.plan(module.main)
            assertValid(after, "\(name) fused")
            XCTAssertLessThanOrEqual(after.offsets.count + after.unplanned.count, before.offsets.count + before.unplanned.count, name)
            print("\(name): \(before.summary) -> \(after.summary)")
            let inPlace = MemoryPlanner.plan(module.main, concatInPlace: true)
            assertValid(inPlace, "\(name) concat in place", in: module.main)
            if ["light_squeezenet.onnx", "light_inception_v1.onnx", "light_densenet121.onnx"].contains(name) {
                XCTAssertFalse(inPlace.concatenatedInPlace.isEmpty, "\(name): no Concat in place")
            }
        }
    }

    /// A chain of four equal tensors needs two slots: each result is live with its operand only.
    func testChainReusesMemory() throws {
        let module = try Parser.parse("""
        opsets {"" = 17}
        func @f(%x: f32[100]) -> (f32[100], f32[2,?n]) {
          %a = Relu(%x) : f32[100]
          %b = Neg(%a) : f32[100]
          %c = Exp(%b) : f32[100]
          %d = Sqrt(%c) : f32[100]
          %e = Abs(%d) : f32[100]
          %s = const dense<[2, -1]> : i64[2]
          %w = const dense<[1.0, 2.0]> : f32[2]
          %k = Neg(%w) : f32[2]
          %r = Reshape(%x, %s) : f32[2,?n]
          return %e, %r
        }
        """)
        let plan = MemoryPlanner.plan(module.main)
        assertValid(plan, "chain")
        // %a..%d are intermediates (400 bytes → 448 reserved); %e and %r are returned, %k is a weight.
        XCTAssertEqual(plan.offsets.count, 4)
        XCTAssertEqual(plan.intermediateBytes, 4 * 448)
        XCTAssertEqual(plan.arenaBytes, 2 * 448)
        XCTAssertEqual(plan.lifetimes[ValueID(2)], 1 ... 2)
        XCTAssertTrue(plan.unplanned.isEmpty)
        XCTAssertEqual(plan.summary, "memory: arena 896 B for 4 intermediates (sum 1.75 KiB, 50% of it), 64-byte aligned")
    }

    func testSymbolicShapesAreReported() throws {
        let module = try Parser.parse("""
        opsets {"" = 17}
        func @f(%x: f32[?b,4]) -> (f32[?b,4]) {
          %a = Relu(%x) : f32[?b,4]
          %b = Neg(%a) : f32[?b,4]
          return %b
        }
        """)
        let plan = MemoryPlanner.plan(module.main)
        XCTAssertEqual(plan.unplanned, [ValueID(1)])
        XCTAssertEqual(plan.summary, "memory: not planned: symbolic shapes (1 intermediates)")
    }

    /// fuse-elementwise changes no result: the interpreter's outputs before and after agree to 1e-4.
    func testFusionPreservesModelOutputs() throws {
        for path in Fixtures.sampleModels() {
            let input = String(path.dropLast(".onnx".count)) + ".input_0.npy"
            guard FileManager.default.fileExists(atPath: input) else { continue }
            let name = URL(fileURLWithPath: path).lastPathComponent
            var module = try ModelLoader.load(path: path).module
            try Self.run(PassRegistry.pipeline(level: 1), on: &module)
            let inputs = [try NPY.read(path: input)]
            let expected = try Interpreter.run(module, inputs: inputs)
            let count = module.main.body.count
            try Self.run([FuseElementwise.self], on: &module)
            XCTAssertLessThan(module.main.body.count, count, "\(name): nothing fused")
            let actual = try Interpreter.run(module, inputs: inputs)
            XCTAssertEqual(actual.count, expected.count, name)
            for (a, e) in zip(actual, expected) {
                XCTAssertEqual(a.shape, e.shape, name)
                for (x, y) in zip(a.doubles, e.doubles) where abs(x - y) > 1e-6 + 1e-4 * abs(y) {
                    XCTFail("\(name): \(x) vs \(y)")
                    break
                }
            }
        }
    }
}
