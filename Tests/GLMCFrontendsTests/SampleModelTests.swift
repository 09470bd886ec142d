import Foundation
import GLMCFrontends
import GLMCInterpreter
import GLMCIR
import GLMCOps
import XCTest

/// The sample models in Models/ run in the interpreter and match ONNX Runtime's stored outputs.
final class SampleModelTests: XCTestCase {
    func testInterpreterMatchesONNXRuntimeOnSampleModels() throws {
        let dir = RoundTripTests.packageRoot.appendingPathComponent("Models")
        for name in ["mlp", "cnn", "transformer"] {
            let module = try ModelLoader.load(path: dir.appendingPathComponent("\(name).onnx").path).module
            let input = try NPY.read(path: dir.appendingPathComponent("\(name).input_0.npy").path)
            let expected = try NPY.read(path: dir.appendingPathComponent("\(name).output_0.npy").path)
            let outputs = try Interpreter.run(module, inputs: [input])
            XCTAssertEqual(outputs.count, 1, name)
            XCTAssertEqual(outputs[0].shape, expected.shape, name)
            let got = outputs[0].doubles, want = expected.doubles
            let worst = zip(got, want).map { abs($0 - $1) / (1e-5 + 1e-4 * abs($1)) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, 1, "\(name): outputs differ from ONNX Runtime's beyond rtol 1e-4")
        }
    }

    func testSymbolicBatchBindsAtRunTime() throws {
        // The transformer's input is i64[?batch,16]: batch 1 works too, a wrong sequence length does not.
        let path = RoundTripTests.packageRoot.appendingPathComponent("Models/transformer.onnx").path
        let module = try ModelLoader.load(path: path).module
        let one = Tensor(int64s: [Int64](repeating: 3, count: 16), dtype: .i64, shape: [1, 16])
        XCTAssertEqual(try Interpreter.run(module, inputs: [one])[0].shape, [1, 16, 32])
        let wrong = Tensor(int64s: [Int64](repeating: 3, count: 15), dtype: .i64, shape: [1, 15])
        XCTAssertThrowsError(try Interpreter.run(module, inputs: [wrong])) { error in
            XCTAssertTrue("\(error)".contains("i64[?batch,16]") && "\(error)".contains("i64[1,15]"), "\(error)")
        }
    }
}
