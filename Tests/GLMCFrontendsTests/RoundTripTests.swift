import Foundation
import GLMCFrontends
import GLMCIR
import GLMCOps
import GLMCTestSupport
import XCTest

/// print → parse → print is byte-identical for every sample model and the nine light model-zoo
/// models that ship inside the pinned `onnx` package (installed into .venv by `make setup`).
final class RoundTripTests: XCTestCase {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func assertRoundTrip(_ path: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let module = try ModelLoader.load(path: path, allowUnsupported: true).module
        try ModuleVerifier.verify(module)
        for mode in [Printer.WeightMode.full, .elideLarge] {
            let printer = Printer(weights: mode)
            let first = printer.print(module)
            let reparsed = try Parser.parse(first)
            try Verifier.verifyStructure(reparsed)
            let second = printer.print(reparsed)
            XCTAssertEqual(first, second, "\(path) does not round-trip in \(mode) mode", file: file, line: line)
            XCTAssertEqual(reparsed.main.body.count, module.main.body.count, file: file, line: line)
        }
    }

    func testSampleModelsRoundTrip() throws {
        let models = Fixtures.sampleModels()
        XCTAssertEqual(models.count, 3, "expected the three sample models in Models/")
        for path in models { try assertRoundTrip(path) }
    }

    func testLightModelZooRoundTrips() throws {
        let models = Fixtures.lightModels()
        if models.isEmpty { throw XCTSkip("the onnx package's light models are not installed; run `make setup`") }
        XCTAssertEqual(models.count, 9)
        for path in models { try assertRoundTrip(path) }
    }
}
