import Foundation
import GLMCInterpreter
import GLMCIR
import GLMCOps
import GLMCPasses
import GLMCTestSupport
import XCTest

/// inline-constant-if and unroll-loops keep what a module computes: every case of their golden
/// files gives the same interpreter outputs before and after the passes (and the -O3 pipeline),
/// bit for bit — the copies compute the same operations in the same order.
final class ControlFlowPassTests: XCTestCase {
    /// Seeded inputs: floats in [-1, 1), integers 0-9 (a trip count of up to 9), bools true or false.
    static func inputs(_ f: Function, seed: UInt64) throws -> [Tensor] {
        var rng = SplitMix64(seed: seed)
        return try f.arguments.map { a in
            let type = f.type(of: a)
            guard let sizes = type.shape.staticSizes else { throw GLMCError("input \(type) is not static") }
            let values = (0 ..< sizes.reduce(1, *)).map { _ in type.dtype.isFloatingPoint ? rng.unit() * 2 - 1 : Double(rng.next() % 10) }
            return Tensor(doubles: values, dtype: type.dtype, shape: sizes)
        }
    }

    func testGoldenCasesComputeTheSame() throws {
        let pipelines: [(String, [any Pass.Type])] = [
            ("inline-constant-if,unroll-loops,dce", [InlineConstantIf.self, UnrollLoops.self, DeadCodeElimination.self]),
            ("-O3", PassRegistry.pipeline(level: 3)),
        ]
        var compared = 0
        for file in ["inline-constant-if.glir", "unroll-loops.glir"] {
            let text = try String(contentsOf: GoldenPassTests.inputs.appendingPathComponent(file), encoding: .utf8)
            for c in GoldenFile(text: text).cases {
                let module = try Parser.parse(c.text)
                // The loop over the unrolling cap would take the debug interpreter a while; it stays a loop anyway.
                guard module.main.name != "too_long" else { continue }
                for seed: UInt64 in [1, 2] {
                    let inputs = try Self.inputs(module.main, seed: seed)
                    let expected = try? Interpreter.run(module, inputs: inputs)
                    for (label, passes) in pipelines {
                        var optimized = module
                        var manager = PassManager(passes: passes)
                        manager.instrumentation.verifyEach = true
                        try manager.run(&optimized)
                        let where_ = "\(file):\(c.firstLine) @\(module.main.name) \(label) seed \(seed)"
                        // A module that fails to run (a bad attribute) must still fail after the passes.
                        guard let expected else {
                            XCTAssertThrowsError(try Interpreter.run(optimized, inputs: inputs), where_)
                            continue
                        }
                        let actual = try Interpreter.run(optimized, inputs: inputs)
                        XCTAssertEqual(actual.map(\.shape), expected.map(\.shape), where_)
                        XCTAssertEqual(actual.map(\.doubles), expected.map(\.doubles), where_)
                        compared += 1
                    }
                }
            }
        }
        XCTAssertGreaterThanOrEqual(compared, 40)
    }

    /// The budget is shared by everything one run unrolls: two loops that each fit alone but not
    /// together leave the second one a loop.
    func testBudgetIsSharedAcrossLoops() throws {
        let half = UnrollLoops.instructionLimit / 2
        let text = """
        opsets {"" = 17}
        func @two(%x: f32[2]) -> (f32[2], f32[2]) {
          %m = const dense<[\(half)]> : i64[]
          %t = const dense<[true]> : bool[]
          %y = Loop(%m, %t, %x) {body = graph @a(%i: i64[], %c: bool[], %v: f32[2]) -> (bool[], f32[2]) {
            return %c, %v
          }} : f32[2]
          %z = Loop(%m, %t, %x) {body = graph @b(%i: i64[], %c: bool[], %v: f32[2]) -> (bool[], f32[2]) {
            return %c, %v
          }} : f32[2]
          return %y, %z
        }
        """
        var module = try Parser.parse(text)
        let context = PassContext()
        XCTAssertTrue(try UnrollLoops().run(on: &module, context: context))
        XCTAssertEqual(context.statistics.first { $0.key == "loops unrolled" }?.value, 1)
        XCTAssertEqual(module.main.body.filter { $0.op.type == "Loop" }.count, 1)
        try ModuleVerifier.verify(module)
    }
}
