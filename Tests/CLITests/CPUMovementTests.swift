import Foundation
import GLMCInterpreter
import GLMCIR
import GLMCOps
import GLMCPlan
import GLMCRuntime
import GLMCTestSupport
import XCTest

/// Data movement on the CPU target: index-table gathers, kernels with runtime indices, bound
/// shape-determining inputs, and outputs that are inputs or constants.
extension CPUPlanTests {
    /// Slice (negative step), Pad (constant with a value, reflect, edge), Tile, Expand, Split,
    /// Trilu, DepthToSpace, Resize (nearest) and GatherElements with constant indices, all through
    /// index tables; Pad with a runtime constant_value (a second source of the table).
    func testIndexTableMovementMatchesTheInterpreter() throws {
        let ir = """
        opsets {"" = 18}

        func @m(%0: f32[2,3,4] loc("x"), %1: f32[1,8,2,3] loc("d"), %90: f32[] loc("pv")) -> (f32[2,5,7] loc("pv_out"), f32[2,2,2] loc("sl"), f32[2,5,7] loc("pc"), f32[2,3,8] loc("pr"), f32[2,5,4] loc("pe"), f32[4,3,8] loc("ti"), f32[3,2,3,4] loc("ex"), f32[2,1,4] loc("s0"), f32[2,2,4] loc("s1"), f32[2,3,4] loc("tr"), f32[1,2,4,6] loc("ds"), f32[1,8,4,6] loc("rs"), f32[2,2,4] loc("ge")) {
          %2 = const dense<[0, 3, 1]> : i64[3] loc("starts")
          %3 = const dense<[2, -10, 4]> : i64[3] loc("ends")
          %4 = const dense<[0, 1, 2]> : i64[3] loc("axes")
          %5 = const dense<[1, -2, 2]> : i64[3] loc("steps")
          %6 = Slice(%0, %2, %3, %4, %5) : f32[2,2,2] loc("sl")
          %7 = const dense<[0, 1, 2, 0, 1, 1]> : i64[6] loc("pads")
          %8 = const dense<[1.5]> : f32[] loc("value")
          %9 = Pad(%0, %7, %8) : f32[2,5,7] loc("pc")
          %10 = const dense<[0, 0, 2, 0, 0, 2]> : i64[6] loc("pads_r")
          %11 = Pad(%0, %10) {mode = "reflect"} : f32[2,3,8] loc("pr")
          %12 = const dense<[0, 2, 0, 0, 0, 0]> : i64[6] loc("pads_e")
          %13 = Pad(%0, %12) {mode = "edge"} : f32[2,5,4] loc("pe")
          %14 = const dense<[2, 1, 2]> : i64[3] loc("reps")
          %15 = Tile(%0, %14) : f32[4,3,8] loc("ti")
          %16 = const dense<[3, 1, 1, 1]> : i64[4] loc("shape")
          %17 = Expand(%0, %16) : f32[3,2,3,4] loc("ex")
          %18 = const dense<[1, 2]> : i64[2] loc("split")
          %19, %20 = Split(%0, %18) {axis = 1} : f32[2,1,4], f32[2,2,4] loc("s0", "s1")
          %21 = Trilu(%0) {upper = 0} : f32[2,3,4] loc("tr")
          %22 = DepthToSpace(%1) {blocksize = 2, mode = "CRD"} : f32[1,2,4,6] loc("ds")
          %23 = const dense<[1.0, 1.0, 2.0, 2.0]> : f32[4] loc("scales")
          %24 = Resize(%1, _, %23) {mode = "nearest"} : f32[1,8,4,6] loc("rs")
          %25 = const dense<[0, 2, 1, -1, 2, 0, 0, 1, 1, 0, 2, 2, 1, 1, 0, 0]> : i64[2,2,4] loc("gi")
          %26 = GatherElements(%0, %25) {axis = 1} : f32[2,2,4] loc("ge")
          %27 = Pad(%0, %7, %90) : f32[2,5,7] loc("pv_out")
          return %27, %6, %9, %11, %13, %15, %17, %19, %20, %21, %22, %24, %26
        }
        """
        try checkAgainstInterpreter(ir, inputs: [[2, 3, 4], [1, 8, 2, 3], []], seed: 31, convert: ["-O0"])
        let source = try String(contentsOfFile: scratch + "/model.plan", encoding: .isoLatin1)
        XCTAssertTrue(source.contains("index_table_gather"))
        XCTAssertTrue(source.contains("4-byte elements, 2 sources"), "Pad's runtime constant_value is a second source")
    }

    /// GatherElements, GatherND (with batch_dims), ScatterElements (max), ScatterND (add),
    /// OneHot, Trilu and ReverseSequence with indices, k or lengths known only at run time.
    func testRuntimeIndexKernelsMatchTheInterpreter() throws {
        let ir = """
        opsets {"" = 18}

        func @r(%0: f32[3,4] loc("x"), %1: i64[3,2] loc("i"), %2: i64[2,1] loc("j"), %3: f32[2,3] loc("u"), %4: i64[3,2] loc("k"), %30: i64[] loc("diag")) -> (f32[3,2] loc("ge"), f32[2,4] loc("gn"), f32[3,4] loc("se"), f32[3,4] loc("sn"), f32[3,2,3] loc("oh"), f32[3,2] loc("gb"), f32[3,4] loc("tr")) {
          %5 = GatherElements(%0, %1) {axis = 1} : f32[3,2] loc("ge")
          %6 = GatherND(%0, %2) : f32[2,4] loc("gn")
          %7 = const dense<[0, 1, 2, 2, 1, 0]> : i64[2,3] loc("rows")
          %8 = ScatterElements(%0, %7, %3) {axis = 0, reduction = "max"} : f32[3,4] loc("se")
          %9 = const dense<[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]> : f32[2,4] loc("upd")
          %10 = ScatterND(%0, %2, %9) {reduction = "add"} : f32[3,4] loc("sn")
          %11 = const dense<[3]> : i64[] loc("depth")
          %12 = const dense<[0.0, 1.0]> : f32[2] loc("vals")
          %13 = OneHot(%4, %11, %12) {axis = -1} : f32[3,2,3] loc("oh")
          %18 = const dense<[2]> : i64[1] loc("last")
          %14 = Unsqueeze(%0, %18) : f32[3,4,1]
          %15 = Unsqueeze(%4, %18) : i64[3,2,1]
          %16 = GatherND(%14, %15) {batch_dims = 1} : f32[3,2,1]
          %17 = Squeeze(%16, %18) : f32[3,2] loc("gb")
          %32 = Trilu(%0, %30) {upper = 1} : f32[3,4] loc("tr")
          return %5, %6, %8, %10, %13, %17, %32
        }
        """
        // Indices in [-3, 3): valid for every indexed dim (sizes 3 and 4).
        try checkAgainstInterpreter(ir, inputs: [[3, 4], [3, 2], [2, 1], [2, 3], [3, 2], []], seed: 5, convert: ["-O0"],
                                    indexInputs: [1: 3, 2: 3, 4: 3, 5: 2])
    }

    /// ReverseSequence with runtime lengths (batch on axis 1, then on axis 0).
    func testReverseSequenceWithRuntimeLengths() throws {
        let model = scratch + "/rev.glmc", plan = scratch + "/rev.plan"
        try """
        opsets {"" = 10}
        func @r(%0: f32[3,4] loc("x"), %1: i64[4] loc("lens"), %2: i64[3] loc("lens_b")) -> (f32[3,4] loc("a"), f32[3,4] loc("b")) {
          %3 = ReverseSequence(%0, %1) {batch_axis = 1, time_axis = 0} : f32[3,4] loc("a")
          %4 = ReverseSequence(%0, %2) {batch_axis = 0, time_axis = 1} : f32[3,4] loc("b")
          return %3, %4
        }
        """.write(toFile: model, atomically: true, encoding: .utf8)
        assertSucceeds(try GLMC.run(["convert", model, "--target", "cpu", "-o", plan], timeout: 120))
        let x = scratch + "/x.npy", lens = scratch + "/lens.npy", lensB = scratch + "/lens_b.npy"
        try NPY.write(encoded: try NPY.encode(Tensor((0 ..< 12).map(Float.init), shape: [3, 4])), to: x)
        try NPY.write(encoded: try NPY.encode(Tensor([3, 0, 2, 1] as [Int64], shape: [4])), to: lens)
        try NPY.write(encoded: try NPY.encode(Tensor([4, 2, 1] as [Int64], shape: [3])), to: lensB)
        assertSucceeds(try GLMC.run(["run", plan, "--input", x, "--input", lens, "--input", lensB, "--output-dir", scratch + "/o"]))
        XCTAssertEqual(try NPY.read(path: scratch + "/o/output_0.npy").doubles, [8, 1, 6, 3, 4, 5, 2, 7, 0, 9, 10, 11])
        XCTAssertEqual(try NPY.read(path: scratch + "/o/output_1.npy").doubles, [3, 2, 1, 0, 5, 4, 6, 7, 8, 9, 10, 11])
    }

    /// `--input-value` binds a shape-determining input at convert time; the plan records it, runs
    /// with it, and refuses another value. An input and a constant returned as outputs are copied.
    func testBoundInputValuesAndCopiedOutputs() throws {
        let model = scratch + "/bound.glmc", plan = scratch + "/bound.plan"
        try """
        opsets {"" = 18}
        func @b(%0: f32[4,6] loc("x"), %1: i64[2] loc("starts")) -> (f32[?,?] loc("y"), i64[2] loc("same"), f32[2] loc("c")) {
          %2 = const dense<[4, 6]> : i64[2] loc("ends")
          %3 = Slice(%0, %1, %2) : f32[?,?] loc("y")
          %4 = const dense<[0.25, 0.5]> : f32[2] loc("c")
          return %3, %1, %4
        }
        """.write(toFile: model, atomically: true, encoding: .utf8)
        var rng = SplitMix64(seed: 9)
        let x = scratch + "/x.npy", starts = scratch + "/starts.npy", other = scratch + "/other.npy"
        try NPY.write(encoded: try NPY.encode(Tensor((0 ..< 24).map { _ in Float(rng.unit()) }, shape: [4, 6])), to: x)
        try NPY.write(encoded: try NPY.encode(Tensor([1, 2] as [Int64], shape: [2])), to: starts)
        try NPY.write(encoded: try NPY.encode(Tensor([0, 2] as [Int64], shape: [2])), to: other)

        // Without the value the plan cannot have static shapes.
        assertFails(try GLMC.run(["convert", model, "--target", "cpu", "-o", plan], timeout: 120), containing: ["static shapes"])
        assertSucceeds(try GLMC.run(["convert", model, "--target", "cpu", "-o", plan, "--input-value", "starts=\(starts)"], timeout: 120))
        let manifest = try PlanReader.read(path: plan).manifest
        XCTAssertEqual(manifest.inputs.map(\.value), [nil, .integers([1, 2])])
        XCTAssertEqual(manifest.outputs.map(\.shape), [[3, 4], [2], [2]])
        let inspect = try GLMC.run(["inspect", plan])
        XCTAssertTrue(inspect.stdout.contains("starts: i64[2] (buffer") && inspect.stdout.contains("bound to [1, 2]"), inspect.stdout)

        assertSucceeds(try GLMC.run(["run", plan, "--input", x, "--input", starts, "--output-dir", scratch + "/p"]))
        assertSucceeds(try GLMC.run(["run", model, "--input", x, "--input", starts, "--output-dir", scratch + "/i"]))
        for file in ["output_0.npy", "output_1.npy", "output_2.npy"] {
            let got = try NPY.read(path: scratch + "/p/" + file), want = try NPY.read(path: scratch + "/i/" + file)
            XCTAssertEqual(got.shape, want.shape, file)
            XCTAssertEqual(got.doubles, want.doubles, file)
        }
        assertFails(try GLMC.run(["run", plan, "--input", x, "--input", other, "--output-dir", scratch + "/o"]),
                    containing: ["input 'starts' is [0, 2]", "built for the value [1, 2]", "--input-value starts="])
        XCTAssertEqual(outputs(in: scratch + "/o"), [])

        // `run --engine cpu` binds it from the given input by itself.
        let engine = try GLMC.run(["run", model, "--engine", "cpu", "--input", x, "--input", other, "--output-dir", scratch + "/e"], timeout: 120)
        XCTAssertEqual(engine.status, 0, engine.stderr)
        XCTAssertEqual(engine.stderr, "note: the plan was built for the given values of 'starts' (they decide shapes)\n")
        XCTAssertEqual(try NPY.read(path: scratch + "/e/output_0.npy").shape, [4, 4])

        // A bound input of symbolic shape takes its value's shape.
        let symbolic = scratch + "/symbolic.glmc"
        try """
        opsets {"" = 18}
        func @s(%0: f32[4,6] loc("x"), %1: i64[?n] loc("starts")) -> (f32[?,?] loc("y")) {
          %2 = const dense<[4, 6]> : i64[2] loc("ends")
          %3 = Slice(%0, %1, %2) : f32[?,?] loc("y")
          return %3
        }
        """.write(toFile: symbolic, atomically: true, encoding: .utf8)
        assertSucceeds(try GLMC.run(["convert", symbolic, "--target", "cpu", "-o", plan, "--input-value", "starts=\(starts)"], timeout: 120))
        let bound = try PlanReader.read(path: plan).manifest
        XCTAssertEqual(bound.inputs[1].shape, [2])
        XCTAssertEqual(bound.outputs[0].shape, [3, 4])

        // Bad --input-value arguments.
        assertFails(try GLMC.run(["convert", model, "--target", "cpu", "-o", plan, "--input-value", "starts=\(x)"], timeout: 120),
                    containing: ["--input-value starts: the value is f32[4,6], but input 'starts' is i64[2]"])
        assertFails(try GLMC.run(["convert", model, "--target", "cpu", "-o", plan, "--input-value", "nope=\(starts)"], timeout: 120),
                    containing: ["the model has no input named 'nope'"])
        assertFails(try GLMC.run(["convert", model, "--target", "cpu", "-o", plan, "--input-value", "starts"], timeout: 120),
                    containing: ["expected NAME=FILE.npy"])
    }

    /// `run --engine cpu` binds the input that decides a shape (Reshape's) and not the one that is
    /// only data (Gather's indices), which then may change between runs of the same model.
    func testRunBindsOnlyShapeDeterminingInputs() throws {
        let model = scratch + "/pick.glmc"
        try """
        opsets {"" = 13}
        func @p(%0: f32[4,3] loc("table"), %1: i64[2] loc("ids"), %2: i64[2] loc("shape")) -> (f32[?,?] loc("y")) {
          %3 = Gather(%0, %1) {axis = 0} : f32[2,3] loc("rows")
          %4 = Reshape(%3, %2) : f32[?,?] loc("y")
          return %4
        }
        """.write(toFile: model, atomically: true, encoding: .utf8)
        let table = scratch + "/table.npy", ids = scratch + "/ids.npy", shape = scratch + "/shape.npy"
        try NPY.write(encoded: try NPY.encode(Tensor((0 ..< 12).map(Float.init), shape: [4, 3])), to: table)
        try NPY.write(encoded: try NPY.encode(Tensor([3, 1] as [Int64], shape: [2])), to: ids)
        try NPY.write(encoded: try NPY.encode(Tensor([3, 2] as [Int64], shape: [2])), to: shape)
        let r = try GLMC.run(["run", model, "--engine", "cpu", "--input", table, "--input", ids, "--input", shape,
                              "--output-dir", scratch + "/o"], timeout: 120)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stderr, "note: the plan was built for the given values of 'shape' (they decide shapes)\n")
        let y = try NPY.read(path: scratch + "/o/output_0.npy")
        XCTAssertEqual(y.shape, [3, 2])
        XCTAssertEqual(y.doubles, [9, 10, 11, 3, 4, 5])
    }

    /// A value-shaped result (NonZero) is a plan output of upper-bound shape: `glmc inspect`
    /// shows the bound, `glmc run` writes the actual shape. Read by another op, it is refused.
    func testValueShapedOutputsEndToEnd() throws {
        let model = scratch + "/nz.glmc", plan = scratch + "/nz.plan", x = scratch + "/x.npy"
        try """
        opsets {"" = 13}
        func @n(%0: f32[2,3] loc("x")) -> (i64[2,?] loc("y")) {
          %1 = NonZero(%0) : i64[2,?] node("nz")
          %2 = Identity(%1) : i64[2,?] loc("y")
          return %2
        }
        """.write(toFile: model, atomically: true, encoding: .utf8)
        assertSucceeds(try GLMC.run(["convert", model, "--target", "cpu", "-o", plan], timeout: 120))
        let inspect = try GLMC.run(["inspect", plan])
        assertSucceeds(inspect)
        XCTAssertTrue(inspect.stdout.contains("y: i64[2, ≤6]"), inspect.stdout)
        try NPY.write(encoded: try NPY.encode(Tensor(doubles: [0, 3, 0, 0, -1, 2], dtype: .f32, shape: [2, 3])), to: x)
        assertSucceeds(try GLMC.run(["run", plan, "--input", x, "--output-dir", scratch + "/o"]))
        let y = try NPY.read(path: scratch + "/o/output_0.npy")
        XCTAssertEqual(y.shape, [2, 3])
        XCTAssertEqual(y.int64s, [0, 1, 1, 1, 1, 2])

        let bad = scratch + "/bad.glmc"
        try """
        opsets {"" = 13}
        func @n(%0: f32[2,3] loc("x")) -> (i64[2,?] loc("y")) {
          %1 = NonZero(%0) : i64[2,?] node("nz")
          %2 = Neg(%1) : i64[2,?] node("neg")
          return %2
        }
        """.write(toFile: bad, atomically: true, encoding: .utf8)
        assertFails(try GLMC.run(["convert", bad, "--target", "cpu", "-o", scratch + "/bad.plan"], timeout: 120),
                    containing: ["unsupported: --target cpu cannot compile Neg (node 'neg')", "NonZero (node 'nz') decides from input values",
                                 "only as a graph output"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch + "/bad.plan"))
    }
}
