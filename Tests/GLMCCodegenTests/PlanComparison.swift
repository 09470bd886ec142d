import Foundation
import GLMCCodegen
import GLMCInterpreter
import GLMCIR
import GLMCOps
import GLMCPlan
import GLMCRuntime
import GLMCTestSupport
import XCTest

/// Comparison of a CPU plan with the interpreter, shared by the kernel test suites: the module is
/// built into a plan (C kernels compiled by the system compiler), run on CPUExecutor with 3
/// threads on seeded random inputs, and every output compared with the interpreter's.
protocol PlanComparing: XCTestCase {}

extension PlanComparing {
    /// Random inputs for the module's arguments: floats in [-1, 1), integers in [-bound, bound)
    /// (`[0, bound)` for unsigned and index inputs listed in `nonNegative`), bools.
    func randomInputs(_ f: Function, seed: UInt64, bound: Int = 4, nonNegative: Set<Int> = []) -> [Tensor] {
        var rng = SplitMix64(seed: seed)
        return f.arguments.enumerated().map { i, a in
            let t = f.type(of: a), shape = t.shape.staticSizes!, n = shape.reduce(1, *)
            if t.dtype.isFloatingPoint {
                return Tensor(doubles: (0 ..< n).map { _ in rng.unit() * 2 - 1 }, dtype: t.dtype, shape: shape)
            }
            if t.dtype == .bool { return Tensor((0 ..< n).map { _ in rng.unit() < 0.7 }, shape: shape) }
            let low = nonNegative.contains(i) || t.dtype.isUnsignedInteger ? 0 : -bound
            return Tensor(int64s: (0 ..< n).map { _ in Int64(low) + Int64(rng.unit() * Double(bound - low)) }, dtype: t.dtype, shape: shape)
        }
    }

    /// Builds and runs the plan, and compares every output with the interpreter's
    /// (|plan - interpreter| <= 1e-5 + 1e-4 |interpreter|; NaN matches NaN; integers exactly).
    func check(_ ir: String, seed: UInt64 = 1, bound: Int = 4, nonNegative: Set<Int> = [], kinds: [String]? = nil,
               file: StaticString = #filePath, line: UInt = #line) throws {
        let module = try Parser.parse(ir)
        try checkWithGivenInputs(module, randomInputs(module.main, seed: seed, bound: bound, nonNegative: nonNegative),
                                 kinds: kinds, file: file, line: line)
    }

    /// `check` on given inputs.
    func checkWithGivenInputs(_ module: Module, _ inputs: [Tensor], kinds: [String]? = nil,
                              file: StaticString = #filePath, line: UInt = #line) throws {
        let want = try Interpreter.run(module, inputs: inputs)
        let plan = try CPUPlanBuilder.build(module, options: CPUPlanOptions(sourceModelSha256: String(repeating: "0", count: 64), glmcVersion: "test"))
        if let kinds { XCTAssertEqual(plan.manifest.steps.map(\.kind), kinds, file: file, line: line) }
        let executor = try CPUExecutor(plan: plan, threads: 3)
        var given: [String: HostTensor] = [:]
        for (input, t) in zip(plan.manifest.inputs, inputs) {
            given[input.name] = HostTensor(name: input.name, dtype: t.dtype.rawValue, shape: t.shape, bytes: t.tensorData.withRawBytes { Data($0) })
        }
        let got = try executor.run(inputs: given)
        XCTAssertEqual(got.count, want.count, file: file, line: line)
        for (o, (g, w)) in zip(got, want).enumerated() {
            XCTAssertEqual(g.dtype, w.dtype.rawValue, "output \(o)", file: file, line: line)
            XCTAssertEqual(g.shape, w.shape, "output \(o)", file: file, line: line)
            guard g.dtype == w.dtype.rawValue, g.shape == w.shape else { continue }
            let t = try g.bytes.withUnsafeBytes { try Tensor(TensorData(type: w.type, copying: $0)) }
            if w.dtype.isFloatingPoint {
                for (i, (a, b)) in zip(t.doubles, w.doubles).enumerated() where !(a.isNaN && b.isNaN) && !(a == b) && !(abs(a - b) <= 1e-5 + 1e-4 * abs(b)) {
                    XCTFail("output \(o) (\(module.main.outputNames[safe: o] ?? "")) element \(i): plan \(a), interpreter \(b)", file: file, line: line)
                    break
                }
            } else {
                XCTAssertEqual(t.int64s, w.int64s, "output \(o) (\(module.main.outputNames[safe: o] ?? ""))", file: file, line: line)
            }
        }
    }
}

private extension Array {
    subscript(safe i: Int) -> Element? { indices.contains(i) ? self[i] : nil }
}
