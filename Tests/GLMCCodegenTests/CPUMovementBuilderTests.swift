import Foundation
import GLMCCodegen
import GLMCIR
import GLMCPlan
import XCTest

/// Plan generation for data movement on `--target cpu` (no C compiler needed).
final class CPUMovementBuilderTests: XCTestCase {
    let options = CPUPlanOptions(sourceModelSha256: String(repeating: "0", count: 64), glmcVersion: "test")

    func weight(_ name: String, in g: CPUPlanBuilder.Generated) -> Data {
        let w = g.manifest.weights.first { $0.name == name }!
        return g.weights.subdata(in: w.offset ..< w.offset + w.bytes)
    }

    /// Pad's table: element numbers of the input, -1 for the fill value, which is a weight of its own.
    func testPadBecomesAnIndexTableWithAFillValue() throws {
        let module = try Parser.parse("""
        opsets {"" = 18}
        func @main(%x: f32[3] loc("x")) -> (f32[5] loc("y")) {
          %p = const dense<[1, 1]> : i64[2] loc("pads")
          %v = const dense<[7.0]> : f32[] loc("value")
          %y = Pad(%x, %p, %v) : f32[5] loc("y")
          return %y
        }
        """)
        let g = try CPUPlanBuilder.generate(module, options: options)
        XCTAssertEqual(g.manifest.steps.map(\.kind), ["index_table_gather"])
        XCTAssertEqual(g.manifest.weights.map(\.name), ["y.index_table", "y.fill_values"])
        XCTAssertEqual(g.manifest.weights.map(\.dtype), ["i32", "f32"])
        let table = weight("y.index_table", in: g).withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) }
        XCTAssertEqual(table, [-1, 0, 1, 2, -1])
        let fills = weight("y.fill_values", in: g).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        XCTAssertEqual(fills, [7])
        XCTAssertTrue(g.source.contains("Y[i] = j >= 0 ? (X0[j]) : F[-1 - j];"), g.source)
    }

    /// A Slice that keeps everything is a copy; a reversing one a table without fills.
    func testSliceTablesAndIdentityCopies() throws {
        let module = try Parser.parse("""
        opsets {"" = 13}
        func @main(%x: i64[2,2] loc("x")) -> (i64[2,2] loc("a"), i64[2,2] loc("b")) {
          %s = const dense<[0]> : i64[1] loc("s")
          %e = const dense<[9]> : i64[1] loc("e")
          %a = Slice(%x, %s, %e) : i64[2,2] loc("a")
          %s2 = const dense<[-1]> : i64[1] loc("s2")
          %e2 = const dense<[-9]> : i64[1] loc("e2")
          %ax = const dense<[1]> : i64[1] loc("ax")
          %st = const dense<[-1]> : i64[1] loc("st")
          %b = Slice(%x, %s2, %e2, %ax, %st) : i64[2,2] loc("b")
          return %a, %b
        }
        """)
        let g = try CPUPlanBuilder.generate(module, options: options)
        XCTAssertEqual(g.manifest.steps.map(\.kind), ["copy", "index_table_gather"])
        let table = weight("b.index_table", in: g).withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) }
        XCTAssertEqual(table, [1, 0, 3, 2])
        XCTAssertTrue(g.source.contains("uint64_t *Y"), g.source)
    }

    /// Bound inputs are recorded in the manifest; outputs that are inputs or constants get copies.
    func testBoundInputsAndCopiedOutputs() throws {
        let module = try Parser.parse("""
        opsets {"" = 13}
        func @main(%x: f32[2] loc("x"), %k: i64[1] loc("k")) -> (f32[2] loc("x_out"), f32[2] loc("c")) {
          %c = const dense<[1.0, 2.0]> : f32[2] loc("c")
          return %x, %c
        }
        """)
        var o = options
        o.boundInputs = ["k": TensorData(type: TensorType(.i64, static: [1]), elements: [Int64(3)])]
        let g = try CPUPlanBuilder.generate(module, options: o)
        XCTAssertEqual(g.manifest.inputs.map(\.value), [nil, .integers([3])])
        XCTAssertEqual(g.manifest.steps.map(\.kind), ["copy", "copy"])
        XCTAssertEqual(g.manifest.steps[0].arguments, [.buffer(g.manifest.inputs[0].buffer), .buffer(g.manifest.outputs[0].buffer)])
        XCTAssertNotEqual(g.manifest.inputs[0].buffer, g.manifest.outputs[0].buffer)
        XCTAssertEqual(g.manifest.steps[1].arguments, [.weight("c"), .buffer(g.manifest.outputs[1].buffer)])
        // The value round-trips through the manifest JSON, and the plan checks its element count.
        let plan = PlanFile(manifest: g.manifest, sources: ["kernels.c": g.source], code: ["kernels.so": Data([1])], weights: g.weights)
        XCTAssertNoThrow(try plan.validate())
        let json = try JSONEncoder().encode(g.manifest)
        XCTAssertEqual(try JSONDecoder().decode(PlanManifest.self, from: json).inputs[1].value, .integers([3]))
        var bad = plan
        bad.manifest.inputs[1].value = .integers([3, 4])
        XCTAssertThrowsError(try bad.validate()) { XCTAssertTrue("\($0)".contains("bound value of 2 elements"), "\($0)") }
    }
}
