import Foundation
import GLMCPlan
import GLMCRuntime
import XCTest

/// `PlanInputs.validate`, the input checks every executor shares, on a manifest alone.
final class PlanInputsTests: XCTestCase {
    let manifest = PlanManifest(
        target: "opencl", sourceModelSha256: "", glmcVersion: "test",
        inputs: [PlanTensor(name: "x", dtype: "f32", shape: [2], buffer: 0),
                 PlanTensor(name: "shape", dtype: "i64", shape: [2], buffer: 1, value: .integers([3, -1])),
                 PlanTensor(name: "scale", dtype: "f32", shape: [], buffer: 2, value: .reals([0.5]))],
        arenaBytes: 256,
        buffers: [PlanBuffer(id: 0, offset: 0, bytes: 8), PlanBuffer(id: 1, offset: 64, bytes: 16),
                  PlanBuffer(id: 2, offset: 128, bytes: 4)])

    func tensor<T>(_ dtype: String, _ shape: [Int], _ values: [T]) -> HostTensor {
        HostTensor(dtype: dtype, shape: shape, bytes: values.withUnsafeBytes { Data($0) })
    }

    func testBindsInManifestOrderWithBuffers() throws {
        let given = ["scale": tensor("f32", [], [Float(0.5)]), "x": tensor("f32", [2], [Float(1), 2]),
                     "shape": tensor("i64", [2], [Int64(3), -1])]
        let bindings = try PlanInputs.validate(given, for: manifest)
        XCTAssertEqual(bindings.map(\.buffer.id), [0, 1, 2])
        XCTAssertEqual(bindings.map(\.tensor.dtype), ["f32", "i64", "f32"])
    }

    func testRefusesOtherBoundValues() {
        let x = tensor("f32", [2], [Float(1), 2])
        let cases: [([String: HostTensor], String)] = [
            (["x": x, "shape": tensor("i64", [2], [Int64(3), 1]), "scale": tensor("f32", [], [Float(0.5)])],
             "input 'shape' is [3, 1], but the plan was built for the value [3, -1]"),
            (["x": x, "shape": tensor("i64", [2], [Int64(3), -1]), "scale": tensor("f32", [], [Float(0.25)])],
             "input 'scale' is [0.25], but the plan was built for the value [0.5]"),
            (["x": x, "scale": tensor("f32", [], [Float(0.5)])], "missing input 'shape' (i64[2])"),
        ]
        for (given, message) in cases {
            XCTAssertThrowsError(try PlanInputs.validate(given, for: manifest)) { XCTAssertTrue("\($0)".contains(message), "\($0)") }
        }
    }

    /// f16/bf16 bound values are recorded and compared as their bit patterns.
    func testBoundHalfValuesCompareAsBitPatterns() throws {
        var m = manifest
        m.inputs[2].dtype = "f16"
        m.inputs[2].value = .integers([0x3800])
        m.buffers[2].bytes = 2
        func given(_ bits: UInt16) -> [String: HostTensor] {
            ["x": tensor("f32", [2], [Float(1), 2]), "shape": tensor("i64", [2], [Int64(3), -1]), "scale": tensor("f16", [], [bits])]
        }
        XCTAssertNoThrow(try PlanInputs.validate(given(0x3800), for: m))
        XCTAssertThrowsError(try PlanInputs.validate(given(0x3C00), for: m)) {
            XCTAssertTrue("\($0)".contains("input 'scale' is [15360], but the plan was built for the value [14336]"), "\($0)")
        }
    }
}
