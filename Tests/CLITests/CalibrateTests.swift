import Foundation
import GLMCInterpreter
import GLMCIR
import GLMCOps
import GLMCPlan
import GLMCTestSupport
import XCTest

/// `glmc calibrate` and `glmc convert --calibration-data` end to end.
final class CalibrateTests: XCTestCase {
    var scratch = ""

    override func setUpWithError() throws {
        guard CPUPlanTests.hasCCompiler else { throw XCTSkip("no C compiler ($CC, cc, gcc or clang) on PATH") }
        scratch = try Fixtures.temporaryDirectory("glmc-calibrate")
    }

    override func tearDownWithError() throws {
        if !scratch.isEmpty { try? FileManager.default.removeItem(atPath: scratch) }
    }

    /// Lines of a TensorRT cache after the header, as (name, scale); checks every line's form.
    func cacheScales(_ text: String, header: String, file: StaticString = #filePath, line: UInt = #line) -> [(String, Float)] {
        let lines = text.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.first, header, file: file, line: line)
        return lines.dropFirst().compactMap { l in
            guard let r = l.range(of: ": ", options: .backwards), l[r.upperBound...].count == 8,
                  l[r.upperBound...].allSatisfy({ "0123456789abcdef".contains($0) }),
                  let bits = UInt32(l[r.upperBound...], radix: 16) else {
                XCTFail("bad cache line '\(l)'", file: file, line: line)
                return nil
            }
            return (String(l[..<r.lowerBound]), Float(bitPattern: bits))
        }
    }

    func testCalibrateWritesATensorRTCacheAndJSON() throws {
        let model = RoundTripPaths.model("cnn.onnx")
        let data = scratch + "/data"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let input = try NPY.read(path: RoundTripPaths.model("cnn.input_0.npy"))
        try NPY.write(input, to: data + "/a.npy")
        try NPY.write(Tensor(input.doubles.map { Float(-2 * $0) }, shape: input.shape), to: data + "/b.npy")
        let r = try GLMC.run(["calibrate", model, "--data", data, "--method", "minmax", "-o", scratch + "/t.cache",
                              "--json", scratch + "/t.json"], timeout: 120)
        assertSucceeds(r, "calibrate")
        XCTAssertTrue(r.stdout.contains("over 2 samples") && r.stdout.contains("samples/s"), r.stdout)
        let scales = cacheScales(try String(contentsOfFile: scratch + "/t.cache", encoding: .utf8), header: "TRT-8601-MinMaxCalibration")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: scratch + "/t.json"))) as? [String: Any]
        let tensors = json?["tensors"] as? [[String: Any]] ?? []
        XCTAssertEqual(json?["samples"] as? Int, 2)
        XCTAssertEqual(tensors.count, scales.count)
        XCTAssertGreaterThan(scales.count, 3, "the input and the activations")
        // The input's range is the samples' own range: b = -2a.
        let values = input.doubles
        let amax = Float(max(values.map(abs).max()! * 2, 0))
        XCTAssertEqual(scales.first?.1, amax / 127)
        for (t, s) in zip(tensors, scales) {
            XCTAssertEqual(t["name"] as? String, s.0)
            XCTAssertEqual(Float(t["scale"] as? Double ?? -1), s.1, s.0)
            let mn = t["min"] as? Double ?? 0, mx = t["max"] as? Double ?? 0
            XCTAssertEqual(Float(t["amax"] as? Double ?? -1), Float(max(abs(mn), abs(mx))), s.0)
        }
    }

    /// y = Relu(x) - x (over a symbolic batch unless `static`): compiles in well under a second.
    func smallModel(static isStatic: Bool = false) throws -> String {
        let model = scratch + (isStatic ? "/s.glmc" : "/b.glmc")
        let n = isStatic ? "4" : "?n"
        try """
        opsets {"" = 17}
        func @b(%x: f32[\(n),3] loc("x")) -> (f32[\(n),3] loc("y")) {
          %r = Relu(%x) : f32[\(n),3] loc("r")
          %y = Sub(%r, %x) : f32[\(n),3] loc("y")
          return %y
        }
        """.write(toFile: model, atomically: true, encoding: .utf8)
        return model
    }

    func testEntropyAndPercentileNeverWidenTheObservedRange() throws {
        let model = try smallModel(static: true)
        for method in ["entropy", "percentile:99"] {
            let out = scratch + "/\(method).cache", json = out + ".json"
            let r = try GLMC.run(["calibrate", model, "--data", "random:3", "--method", method, "-o", out, "--json", json], timeout: 120)
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.contains("(\(method))") && r.stdout.contains("(2 passes)"), r.stdout)
            let scales = cacheScales(try String(contentsOfFile: out, encoding: .utf8), header: "TRT-8601-EntropyCalibration2")
            XCTAssertEqual(scales.map(\.0), ["x", "r", "y"])
            let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any]
            XCTAssertEqual(object?["method"] as? String, method)
            for (t, s) in zip(object?["tensors"] as? [[String: Any]] ?? [], scales) {
                let range = max(abs(t["min"] as? Double ?? 0), abs(t["max"] as? Double ?? 0))
                XCTAssertLessThanOrEqual(Double(s.1) * 127, range * (1 + 1e-6), "\(method) \(s.0)")
                XCTAssertGreaterThan(s.1, 0, "\(method) \(s.0)")
            }
        }
    }

    func testRandomDataWarnsAndConvertEmbedsTheTable() throws {
        let model = try smallModel(static: true)
        let r = try GLMC.run(["calibrate", model, "--data", "random:2", "-o", scratch + "/r.cache"], timeout: 120)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stderr, "warning: calibrating on random samples (--data random:2): real data calibrates better\n")
        let plan = scratch + "/s.plan"
        let c = try GLMC.run(["convert", model, "--target", "cpu", "-o", plan, "--calibration-data", "random:2",
                              "--calibration-method", "minmax"], timeout: 180)
        XCTAssertEqual(c.status, 0, c.stderr)
        XCTAssertTrue(c.stderr.hasPrefix("warning: calibrating on random samples"), c.stderr)
        let cache = try String(contentsOfFile: plan + ".calib.cache", encoding: .utf8)
        XCTAssertTrue(cache.hasPrefix("TRT-8601-MinMaxCalibration\n"), cache)
        let read = try PlanReader.read(path: plan)
        XCTAssertEqual(read.calibration, cache)
        XCTAssertEqual(read.manifest.metadata["calibration_method"], "minmax")
        let inspect = try GLMC.run(["inspect", plan])
        XCTAssertTrue(inspect.stdout.contains("calibration table: present"), inspect.stdout)
    }

    func testBadSamplesAreRefusedWithOneErrorLineAndNothingWritten() throws {
        let model = RoundTripPaths.model("cnn.onnx")
        let input = try NPY.read(path: RoundTripPaths.model("cnn.input_0.npy"))
        let out = scratch + "/t.cache"
        func folder(_ name: String, _ tensor: Tensor?) throws -> String {
            let dir = scratch + "/" + name
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            if let tensor { try NPY.write(tensor, to: dir + "/s.npy") }
            return dir
        }
        let cases: [(String, Tensor?, [String])] = [
            ("empty", nil, ["holds no samples"]),
            ("shape", Tensor(input.doubles.map(Float.init) + [0], shape: [input.count + 1]), ["s.npy", "input '", "the sample holds f32[\(input.count + 1)]"]),
            ("dtype", Tensor(doubles: input.doubles, dtype: .f64, shape: input.shape), ["s.npy", "the sample holds f64"]),
            ("nan", Tensor([Float.nan] + input.doubles.dropFirst().map(Float.init), shape: input.shape), ["s.npy", "has a non-finite value (nan)"]),
        ]
        for (name, tensor, parts) in cases {
            let dir = try folder(name, tensor)
            assertFails(try GLMC.run(["calibrate", model, "--data", dir, "-o", out], timeout: 120), containing: parts, name)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "\(name): nothing written")
        }
        assertFails(try GLMC.run(["calibrate", model, "--data", "random:2", "--method", "kl", "-o", out]), containing: ["--method kl"])
        // An op the CPU target cannot compile (the one CPUPlanTests uses).
        let det = scratch + "/det.glmc"
        try """
        opsets {"" = 17}
        func @h(%x: i64[2,4] loc("x")) -> (f32[2] loc("y")) {
          %e = Einsum(%x) {equation = "ij->i"} : i64[2] node("einsum")
          %y = Cast(%e) {to = 1} : f32[2] loc("y")
          return %y
        }
        """.write(toFile: det, atomically: true, encoding: .utf8)
        let detData = try folder("det", Tensor(int64s: [1, 2, 3, 4, 1, 1, 2, 2], dtype: .i64, shape: [2, 4]))
        assertFails(try GLMC.run(["calibrate", det, "--data", detData, "-o", out], timeout: 120),
                    containing: ["calibration runs the model as a CPU plan", "Einsum on i64", "(node 'einsum')"])
        assertFails(try GLMC.run(["calibrate", model, "--data", scratch + "/none", "-o", out]), containing: ["no such folder"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    func testBatchesGiveTheSameTableAsSingleSamples() throws {
        let model = try smallModel()
        let data = scratch + "/data"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        for (i, row) in [[1, -2, 3], [-4, 5, 0.5], [7, -0.25, -9]].enumerated() {
            try NPY.write(Tensor(row.map { Float($0) }, shape: [1, 3]), to: data + "/s\(i).npy")
        }
        var tables: [String] = []
        for batch in ["1", "2"] {
            let json = scratch + "/b\(batch).json"
            let r = try GLMC.run(["calibrate", model, "--data", data, "--method", "minmax", "--batch", batch,
                                  "-o", scratch + "/b\(batch).cache", "--json", json], timeout: 120)
            assertSucceeds(r, "--batch \(batch)")
            tables.append(try String(contentsOfFile: json, encoding: .utf8))
        }
        XCTAssertEqual(tables[0], tables[1], "3 samples in runs of 2 and 1 see what runs of 1 see")
        XCTAssertTrue(tables[0].contains("\"samples\" : 3"), tables[0])
        let cache = try String(contentsOfFile: scratch + "/b2.cache", encoding: .utf8)
        XCTAssertEqual(cache.split(separator: "\n").map { String($0.split(separator: ":")[0]) }, ["TRT-8601-MinMaxCalibration", "x", "r", "y"])
        assertFails(try GLMC.run(["calibrate", RoundTripPaths.model("cnn.onnx"), "--data", data, "--batch", "2", "-o", scratch + "/c.cache"]),
                    containing: ["--batch 2", "input 'image'", "symbolic first dimension"])
    }
}
