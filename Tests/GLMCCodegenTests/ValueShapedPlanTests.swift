import Foundation
import GLMCCodegen
import GLMCIR
import GLMCOps
import GLMCPlan
import GLMCRuntime
import XCTest

/// NonZero, Unique and NonMaxSuppression in plans: upper-bound result shapes, the extent slot in
/// the manifest (`dynamic_dims`), outputs trimmed by the executor to the interpreter's shapes, and
/// the refusal of any reader of such a result other than Identity.
final class ValueShapedPlanTests: XCTestCase, PlanComparing {
    let options = CPUPlanOptions(sourceModelSha256: String(repeating: "0", count: 64), glmcVersion: "test")

    override func setUpWithError() throws {
        guard CPUPlanBuilder.findCompiler() != nil else { throw XCTSkip("no C compiler ($CC, cc, gcc or clang) on PATH") }
    }

    func testNonZeroMatchesTheInterpreter() throws {
        let module = try Parser.parse("""
        opsets {"" = 13}
        func @n(%x: f32[2,3] loc("x"), %b: i32[2,2,2] loc("b"), %s: u8[] loc("s")) -> (i64[2,?] loc("nx"), i64[3,?] loc("nb"), i64[1,?] loc("ns"), i64[2,?] loc("copy")) {
          %nx = NonZero(%x) : i64[2,?] loc("nx")
          %nb = NonZero(%b) : i64[3,?] loc("nb")
          %ns = NonZero(%s) : i64[1,?] loc("ns")
          %c = Identity(%nx) : i64[2,?] loc("copy")
          return %nx, %nb, %ns, %c
        }
        """)
        for (x, b, s) in [([0, 1.5, 0, -2, 0, .nan] as [Double], [0, 0, 3, 0, 0, 0, 0, 7] as [Int64], 4 as Int64),
                          ([0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0], 0)] {
            try checkWithGivenInputs(module, [Tensor(doubles: x, dtype: .f32, shape: [2, 3]), Tensor(int64s: b, dtype: .i32, shape: [2, 2, 2]),
                                              Tensor(int64s: [s], dtype: .u8, shape: [])])
        }
    }

    func testUniqueMatchesTheInterpreter() throws {
        let module = try Parser.parse("""
        opsets {"" = 11}
        func @u(%x: f32[3,4] loc("x"), %v: i64[7] loc("v")) -> (f32[?] loc("y"), i64[?] loc("i"), i64[12] loc("inv"), i64[?] loc("c"), i64[?] loc("yv"), i64[?] loc("cv"), f32[?,4] loc("rows"), i64[4] loc("colinv"), f32[3,?] loc("cols")) {
          %y, %i, %inv, %c = Unique(%x) : f32[?], i64[?], i64[12], i64[?] loc("y", "i", "inv", "c")
          %yv, %iv, %invv, %cv = Unique(%v) {sorted = 0} : i64[?], i64[?], i64[7], i64[?] loc("yv", "iv", "invv", "cv")
          %rows = Unique(%x) {axis = 0} : f32[?,4] loc("rows")
          %cols, %ci, %colinv = Unique(%x) {axis = -1} : f32[3,?], i64[?], i64[4] loc("cols", "ci", "colinv")
          return %y, %i, %inv, %c, %yv, %cv, %rows, %colinv, %cols
        }
        """)
        // Repeated rows (0 and 2) and columns (1 and 3), negative zero equal to zero.
        let x: [Double] = [1, 2, 0, 2, -1, 3, -0.0, 3, 1, 2, 0, 2]
        try checkWithGivenInputs(module, [Tensor(doubles: x, dtype: .f32, shape: [3, 4]),
                                          Tensor(int64s: [5, -2, 5, 9, -2, 5, 0], dtype: .i64, shape: [7])])
        try check("""
        opsets {"" = 11}
        func @u(%x: i32[5,3] loc("x")) -> (i32[?,3] loc("y"), i64[?] loc("c")) {
          %y, %i, %inv, %c = Unique(%x) {axis = 0, sorted = 0} : i32[?,3], i64[?], i64[5], i64[?] loc("y", "i", "inv", "c")
          return %y, %c
        }
        """, seed: 3, bound: 1)
    }

    /// Half floats compare by value; NaN (whose order the interpreter leaves unspecified) sorts
    /// after every number, all NaNs one group.
    func testUniqueOfHalvesAndNaN() throws {
        try check("""
        opsets {"" = 11}
        func @u(%h: f16[9] loc("h")) -> (f16[?] loc("y"), i64[9] loc("inv"), i64[?] loc("c")) {
          %y, %i, %inv, %c = Unique(%h) : f16[?], i64[?], i64[9], i64[?] loc("y", "i", "inv", "c")
          return %y, %inv, %c
        }
        """, seed: 5)
        let module = try Parser.parse("""
        opsets {"" = 11}
        func @u(%x: f32[5] loc("x")) -> (f32[?] loc("y"), i64[?] loc("c")) {
          %y, %i, %inv, %c = Unique(%x) : f32[?], i64[?], i64[5], i64[?] loc("y", "i", "inv", "c")
          return %y, %c
        }
        """)
        let plan = try CPUPlanBuilder.build(module, options: options)
        let x: [Float] = [.nan, 2, .nan, -1, 2]
        let got = try CPUExecutor(plan: plan).run(inputs: ["x": HostTensor(name: "x", dtype: "f32", shape: [5], bytes: x.withUnsafeBytes { Data($0) })])
        XCTAssertEqual(got.map(\.shape), [[3], [3]])
        let y = got[0].bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        XCTAssertEqual(Array(y.prefix(2)), [-1, 2])
        XCTAssertTrue(y[2].isNaN)
        XCTAssertEqual(got[1].bytes.withUnsafeBytes { Array($0.bindMemory(to: Int64.self)) }, [1, 2, 2])
    }

    func testNonMaxSuppressionMatchesTheInterpreter() throws {
        // Runtime limit and thresholds; corner boxes.
        let runtime = try Parser.parse("""
        opsets {"" = 11}
        func @n(%b: f32[2,6,4] loc("boxes"), %s: f32[2,3,6] loc("scores"), %m: i64[1] loc("max"), %t: f32[1] loc("iou"), %u: f32[1] loc("score")) -> (i64[?,3] loc("selected")) {
          %y = NonMaxSuppression(%b, %s, %m, %t, %u) : i64[?,3] loc("selected")
          return %y
        }
        """)
        var inputs = randomInputs(runtime.main, seed: 7)
        for (limit, iou, score) in [(Int64(3), 0.1, -0.5), (100, 0.5, 0.0), (0, 0.5, 0.0), (2, 0.0, 2.0)] {
            inputs[2] = Tensor([limit], shape: [1])
            inputs[3] = Tensor(doubles: [iou], dtype: .f32, shape: [1])
            inputs[4] = Tensor(doubles: [score], dtype: .f32, shape: [1])
            try checkWithGivenInputs(runtime, inputs)
        }
        // A constant limit bounds the result further; center-point boxes; no score threshold.
        let constant = try Parser.parse("""
        opsets {"" = 11}
        func @n(%b: f32[1,5,4] loc("boxes"), %s: f32[1,2,5] loc("scores")) -> (i64[?,3] loc("selected")) {
          %m = const dense<[2]> : i64[1] loc("max")
          %t = const dense<[0.2]> : f32[] loc("iou")
          %y = NonMaxSuppression(%b, %s, %m, %t) {center_point_box = 1} : i64[?,3] loc("selected")
          return %y
        }
        """)
        let boxes: [Double] = [0.5, 0.5, 1, 1, 0.6, 0.5, 1, 1, 3, 3, 1, 1, 0.5, 0.5, 1, 1, 3.2, 3, 1, 1]
        let scores: [Double] = [0.9, 0.8, 0.7, 0.9, 0.1, 0.3, 0.4, 0.5, 0.6, 0.7]
        try checkWithGivenInputs(constant, [Tensor(doubles: boxes, dtype: .f32, shape: [1, 5, 4]), Tensor(doubles: scores, dtype: .f32, shape: [1, 2, 5])])
        let g = try CPUPlanBuilder.generate(constant, options: options)
        XCTAssertEqual(g.manifest.outputs[0].shape, [4, 3])
    }

    /// The manifest records the bound and the extent slot; `glmc inspect` shows `≤bound`; the JSON
    /// round-trips; a slot outside the arena is refused.
    func testBoundedOutputsInTheManifest() throws {
        let module = try Parser.parse("""
        opsets {"" = 13}
        func @n(%x: f32[2,3] loc("x")) -> (i64[2,?] loc("y"), f32[2,3] loc("z")) {
          %y = NonZero(%x) : i64[2,?] loc("y")
          %z = Relu(%x) : f32[2,3] loc("z")
          return %y, %z
        }
        """)
        let plan = try CPUPlanBuilder.build(module, options: options)
        let y = plan.manifest.outputs[0]
        XCTAssertEqual(y.shape, [2, 6])
        XCTAssertEqual(y.dynamicDims?.keys.sorted(), [1])
        XCTAssertNil(plan.manifest.outputs[1].dynamicDims)
        XCTAssertEqual(plan.manifest.formatVersion, PlanFormatVersion(major: 1, minor: 2))
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let json = String(decoding: try encoder.encode(plan.manifest), as: UTF8.self)
        XCTAssertTrue(json.contains("\"dynamic_dims\":{\"1\":\(y.dynamicDims![1]!)}"), json)
        XCTAssertEqual(try JSONDecoder().decode(PlanManifest.self, from: Data(json.utf8)), plan.manifest)
        XCTAssertTrue(PlanSummary(plan).text.contains("  y: i64[2, ≤6] (buffer"), PlanSummary(plan).text)
        // A 1.0 manifest (no dynamic_dims) still reads.
        let old = json.replacingOccurrences(of: "\"minor\":2", with: "\"minor\":0")
            .replacingOccurrences(of: "\"dynamic_dims\":{\"1\":\(y.dynamicDims![1]!)},", with: "")
        XCTAssertFalse(old.contains("dynamic_dims") || old.contains("\"minor\":2"), old)
        XCTAssertNil(try JSONDecoder().decode(PlanManifest.self, from: Data(old.utf8)).outputs[0].dynamicDims, old)
        var bad = plan
        bad.manifest.outputs[0].dynamicDims = [1: plan.manifest.arenaBytes]
        XCTAssertThrowsError(try bad.validate()) { XCTAssertTrue("\($0)".contains("not an aligned i64 inside"), "\($0)") }
        bad.manifest.outputs[0].dynamicDims = [2: 0]
        XCTAssertThrowsError(try bad.validate()) { XCTAssertTrue("\($0)".contains("dynamic dim 2 outside its shape"), "\($0)") }
    }

    /// A value-shaped result read by anything but Identity (or a graph output) is refused.
    func testReadingABoundedResultIsRefused() throws {
        let module = try Parser.parse("""
        opsets {"" = 13}
        func @n(%x: f32[2,3] loc("x")) -> (i64[?] loc("s")) {
          %y = NonZero(%x) : i64[2,?] loc("y") node("nz")
          %c = Identity(%y) : i64[2,?] loc("c")
          %a = const dense<[0]> : i64[1] loc("axes")
          %s = ReduceSum(%c, %a) {keepdims = 0} : i64[?] loc("s") node("sum")
          return %s
        }
        """)
        XCTAssertThrowsError(try CPUPlanBuilder.generate(module, options: options)) {
            XCTAssertEqual("\($0)", "unsupported: --target cpu cannot compile ReduceSum (node 'sum'): it reads 'c', whose shape NonZero (node 'nz') decides from input values; a plan supports such a result only as a graph output (directly or through Identity)")
        }
    }
}
