import Foundation
import GLMCInterpreter
import GLMCIR
import GLMCOps
import GLMCTestSupport
import XCTest

/// Control flow through CPU plans: `run --engine cpu` binds the inputs that decide an If and a
/// Loop's trip count, -O3 inlines the branch and unrolls the loop, and the plan computes what the
/// interpreter does; control flow decided only at run time is refused with one error line.
extension CPUPlanTests {
    static let controlFlowModel = """
    opsets {"" = 17}
    func @c(%0: f32[2] loc("x"), %1: bool[] loc("flag"), %2: i64[] loc("n")) -> (f32[?] loc("picked"), f32[2] loc("sum"), f32[?,2] loc("steps")) {
      %3 = If(%1) {else_branch = graph @e() captures(%0 as %4: f32[2]) -> (f32[2]) {
        %5 = Neg(%4) : f32[2]
        return %5
      }, then_branch = graph @t() captures(%0 as %6: f32[2]) -> (f32[4]) {
        %7 = Concat(%6, %6) {axis = 0} : f32[4]
        return %7
      }} : f32[?] loc("picked")
      %8 = const dense<[true]> : bool[]
      %9, %10 = Loop(%2, %8, %0) {body = graph @b(%11: i64[], %12: bool[], %13: f32[2]) -> (bool[], f32[2], f32[2]) {
        %14 = Cast(%11) {to = 1} : f32[]
        %15 = Add(%13, %14) : f32[2]
        %16 = Identity(%12) : bool[]
        return %16, %15, %15
      }} : f32[2], f32[?,2] loc("sum", "steps")
      return %3, %9, %10
    }
    """

    func testIfAndLoopDecidedByInputsRunAsPlans() throws {
        let model = scratch + "/control.glmc"
        try Self.controlFlowModel.write(toFile: model, atomically: true, encoding: .utf8)
        let x = scratch + "/x.npy"
        try NPY.write(encoded: try NPY.encode(Tensor([0.5, -2] as [Float], shape: [2])), to: x)
        for (flag, n) in [(true, 3), (false, 1)] {
            let label = "flag=\(flag) n=\(n)"
            let flagFile = scratch + "/flag.npy", nFile = scratch + "/n.npy"
            try NPY.write(encoded: try NPY.encode(Tensor([flag], shape: [])), to: flagFile)
            try NPY.write(encoded: try NPY.encode(Tensor([Int64(n)], shape: [])), to: nFile)
            let inputs = ["--input", x, "--input", flagFile, "--input", nFile]
            let engine = try GLMC.run(["run", model, "--engine", "cpu", "--no-cache"] + inputs + ["--output-dir", scratch + "/e"], timeout: 120)
            XCTAssertEqual(engine.status, 0, "\(label): \(engine.stderr)")
            XCTAssertEqual(engine.stderr, "note: the plan was built for the given values of 'flag', 'n' (they decide shapes)\n", label)
            assertSucceeds(try GLMC.run(["run", model] + inputs + ["--output-dir", scratch + "/i"]), label)
            for file in ["output_0.npy", "output_1.npy", "output_2.npy"] {
                let got = try NPY.read(path: scratch + "/e/" + file), want = try NPY.read(path: scratch + "/i/" + file)
                XCTAssertEqual(got.shape, want.shape, "\(label) \(file)")
                XCTAssertEqual(got.doubles, want.doubles, "\(label) \(file)")
            }
            XCTAssertEqual(try NPY.read(path: scratch + "/e/output_2.npy").shape, [n, 2], label)
        }
    }

    /// Control flow decided at run time cannot become straight-line code: the plan is refused with
    /// one error line naming the op and what would help, and nothing is written.
    func testRuntimeControlFlowIsRefused() throws {
        let control = scratch + "/control.glmc"
        try Self.controlFlowModel.write(toFile: control, atomically: true, encoding: .utf8)
        assertFails(try GLMC.run(["convert", control, "--target", "cpu", "-o", scratch + "/c.plan"], timeout: 120),
                    containing: ["unsupported: --target cpu cannot compile If: its condition is only known at run time; bind the inputs that decide it with --input-value"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch + "/c.plan"))

        let model = scratch + "/while.glmc"
        try """
        opsets {"" = 17}
        func @w(%0: f32[2] loc("x")) -> (f32[2] loc("y")) {
          %1 = const dense<[4]> : i64[]
          %2 = const dense<[true]> : bool[]
          %3 = Loop(%1, %2, %0) {body = graph @b(%4: i64[], %5: bool[], %6: f32[2]) -> (bool[], f32[2]) {
            %7 = Neg(%6) : f32[2]
            %8 = ReduceSum(%7) {keepdims = 0} : f32[]
            %9 = const dense<[0.0]> : f32[]
            %10 = Less(%8, %9) : bool[]
            return %10, %7
          }} : f32[2] loc("y") node("loop")
          return %3
        }
        """.write(toFile: model, atomically: true, encoding: .utf8)
        assertFails(try GLMC.run(["convert", model, "--target", "cpu", "-o", scratch + "/w.plan"], timeout: 120),
                    containing: ["unsupported: --target cpu cannot compile Loop (node 'loop'): -O3 unrolls a Loop only when its trip count is a constant"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch + "/w.plan"))
    }
}
