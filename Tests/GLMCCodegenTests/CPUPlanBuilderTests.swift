import GLMCCodegen
import GLMCIR
import GLMCPlan
import XCTest

/// Plan generation for `--target cpu` (no C compiler needed: `generate` stops before compiling).
final class CPUPlanBuilderTests: XCTestCase {
    let options = CPUPlanOptions(sourceModelSha256: String(repeating: "0", count: 64), glmcVersion: "test")

    func testGemmReluGroupAndElementwiseStep() throws {
        let module = try Parser.parse("""
        opsets {"" = 17, glmc = 1}
        func @main(%x: f32[2,4] loc("x")) -> (f32[2,3] loc("y")) {
          %w = const dense<[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0]> : f32[3,4] loc("w")
          %b = const dense<[0.5, -0.5, 1.0]> : f32[3] loc("b")
          %h = glmc.Fused(%x, %w, %b) {body = graph @gemm_relu_0(%p: f32[2,4], %q: f32[3,4], %r: f32[3]) -> (f32[2,3]) {
            %g = Gemm(%p, %q, %r) {transB = 1} : f32[2,3]
            %a = Relu(%g) : f32[2,3]
            return %a
          }, kind = "gemm_relu"} : f32[2,3] loc("h")
          %y = Sigmoid(%h) : f32[2,3] loc("y")
          return %y
        }
        """)
        let g = try CPUPlanBuilder.generate(module, options: options)
        let m = g.manifest
        XCTAssertEqual(m.target, "cpu")
        XCTAssertEqual(m.cpuFeatures, [])
        XCTAssertEqual(m.steps.map(\.kind), ["gemm_epilogue", "elementwise"])
        XCTAssertEqual(m.steps.map(\.kernel), ["glmc_step0", "glmc_step1"])
        XCTAssertEqual(m.steps.map { $0.launch["range"] }, [6, 6])
        XCTAssertEqual(m.weights.map(\.name), ["w", "b"])
        XCTAssertTrue(m.weights.allSatisfy { $0.offset % 64 == 0 })
        XCTAssertEqual(m.weights.map(\.bytes), [48, 12])
        // Inputs and outputs have slots of their own, distinct from the intermediate's.
        let buffers = Set(m.steps.flatMap(\.arguments).compactMap { a -> Int? in if case .buffer(let id) = a { return id }; return nil })
        XCTAssertEqual(buffers.count, 3)
        XCTAssertEqual(m.steps[0].arguments, [.buffer(m.inputs[0].buffer), .weight("w"), .weight("b"), m.steps[1].arguments[0]])
        XCTAssertEqual(m.steps[1].arguments.last, .buffer(m.outputs[0].buffer))
        XCTAssertTrue(m.buffers.allSatisfy { $0.offset % 64 == 0 && $0.offset + $0.bytes <= m.arenaBytes })
        XCTAssertTrue(g.source.contains("void glmc_step0(GLMC_GLOBAL void **args, long begin, long end)"), g.source)
        XCTAssertTrue(g.source.contains("void glmc_step1(GLMC_GLOBAL void **args, long begin, long end) { glmc_step1_elementwise((const float *)args[0], (float *)args[1], begin, end); }"), g.source)
        XCTAssertTrue(g.source.contains("v = v > 0.0f ? v : 0.0f;"), g.source)
        let plan = PlanFile(manifest: m, sources: ["kernels.c": g.source], code: ["kernels.so": Data([1])], weights: g.weights)
        XCTAssertNoThrow(try plan.validate())
    }

    func testFusionGroupFallsBackToItsMembers() throws {
        let module = try Parser.parse("""
        opsets {"" = 17, glmc = 1}
        func @main(%x: f32[2,4] loc("x")) -> (f32[2,4] loc("y")) {
          %w = const dense<[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0]> : f32[4,4] loc("w")
          %h = glmc.Fused(%x, %w) {body = graph @g(%p: f32[2,4], %q: f32[4,4]) -> (f32[2,4]) {
            %m = MatMul(%p, %q) : f32[2,4]
            %r = Relu(%m) : f32[2,4]
            %s = Add(%r, %p) : f32[2,4]
            return %s
          }, kind = "custom"} : f32[2,4] loc("y")
          return %h
        }
        """)
        let m = try CPUPlanBuilder.generate(module, options: options).manifest
        XCTAssertEqual(m.steps.map(\.kind), ["matmul", "elementwise", "elementwise"])
        // The members' intermediates have arena buffers distinct from the input and output slots.
        let buffers = Set(m.steps.flatMap(\.arguments).compactMap { a -> Int? in if case .buffer(let id) = a { return id }; return nil })
        XCTAssertTrue(buffers.count >= 3, "\(m.steps)")
        XCTAssertEqual(m.steps.last?.arguments.last, .buffer(m.outputs[0].buffer))
        XCTAssertTrue(m.buffers.allSatisfy { $0.offset + $0.bytes <= m.arenaBytes })
    }

    func testValuesComputedFromConstantsBecomeWeights() throws {
        let module = try Parser.parse("""
        opsets {"" = 17}
        func @main(%x: f32[2,4] loc("x")) -> (f32[2,4] loc("y")) {
          %s = const dense<[4, 4]> : i64[2] loc("shape")
          %w = ConstantOfShape(%s) {value = dense<[0.5]> : f32[1]} : f32[4,4] loc("w")
          %y = MatMul(%x, %w) : f32[2,4] loc("y")
          return %y
        }
        """)
        let g = try CPUPlanBuilder.generate(module, options: options)
        XCTAssertEqual(g.manifest.steps.map(\.kind), ["matmul"])
        XCTAssertEqual(g.manifest.weights.map(\.name), ["w.T"])
        XCTAssertEqual(g.manifest.weights.map(\.bytes), [64])
    }

    func testUnsupportedOpsAndSymbolicShapesAreRefused() throws {
        let unknown = try Parser.parse("""
        opsets {"" = 17, "com.example" = 1}
        func @main(%x: i64[2,4]) -> (f32[2,3]) {
          %y = com.example.Mystery(%x) : f32[2,3] node("mystery")
          return %y
        }
        """)
        XCTAssertThrowsError(try CPUPlanBuilder.generate(unknown, options: options)) {
            XCTAssertEqual("\($0)", "unsupported: --target cpu cannot compile com.example.Mystery yet (node 'mystery')")
        }
        let symbolic = try Parser.parse("""
        opsets {"" = 17}
        func @main(%x: f32[?n,4] loc("x")) -> (f32[?n,4]) {
          %y = Relu(%x) : f32[?n,4]
          return %y
        }
        """)
        XCTAssertThrowsError(try CPUPlanBuilder.generate(symbolic, options: options)) {
            XCTAssertTrue("\($0)".contains("input 'x'") && "\($0)".contains("?n") && "\($0)".contains("--input-shape"), "\($0)")
        }
    }
}
