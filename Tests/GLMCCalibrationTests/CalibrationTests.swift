import Foundation
import GLMCCalibration
import GLMCCodegen
import GLMCIR
import GLMCOps
import GLMCTestSupport
import XCTest

final class CalibrationMethodTests: XCTestCase {
    func testMethodsParseAndRefuseNonsense() throws {
        XCTAssertEqual(try CalibrationMethod.parse("minmax"), .minMax)
        XCTAssertEqual(try CalibrationMethod.parse("entropy"), .entropy)
        XCTAssertEqual(try CalibrationMethod.parse("percentile"), .percentile(99.99))
        XCTAssertEqual(try CalibrationMethod.parse("percentile:99.9"), .percentile(99.9))
        for bad in ["percentile:0", "percentile:101", "percentile:x", "kl", ""] {
            XCTAssertThrowsError(try CalibrationMethod.parse(bad), bad)
        }
    }

    func testStatisticsTrackRangeAndStopAtNonFiniteValues() {
        var s = TensorStatistics()
        XCTAssertEqual(s.amax, 0)
        XCTAssertNil([Float(1), -3, 2].withUnsafeBufferPointer { s.observe($0) })
        XCTAssertNil([Float(0.5)].withUnsafeBufferPointer { s.observe($0) })
        XCTAssertEqual(s.min, -3); XCTAssertEqual(s.max, 2); XCTAssertEqual(s.amax, 3)
        XCTAssertEqual(s.sampleCount, 2); XCTAssertEqual(s.elementCount, 4)
        XCTAssertEqual([Float(1), .nan].withUnsafeBufferPointer { s.observe($0) }, 1)
        XCTAssertEqual([Float.infinity].withUnsafeBufferPointer { s.observe($0) }, 0)
        XCTAssertEqual(s.sampleCount, 2, "a refused sample adds nothing")
    }

    func testPercentileTakesTheUpperEdgeOfTheBinThatReachesIt() {
        // 1000 values: 990 small (bin 0), 10 at the top.
        var h = AbsHistogram(range: 2048)
        let values = [Float](repeating: 0.5, count: 990) + [Float](repeating: 2000, count: 10)
        values.withUnsafeBufferPointer { h.add($0) }
        XCTAssertEqual(h.counts[0], 990); XCTAssertEqual(h.counts[2000], 10)
        var s = TensorStatistics()
        _ = values.withUnsafeBufferPointer { s.observe($0) }
        XCTAssertEqual(CalibrationMethod.percentile(99).amax(s, histogram: h), 1)
        XCTAssertEqual(CalibrationMethod.percentile(99.5).amax(s, histogram: h), 2000, "bin 2000's upper edge, capped at the observed amax")
        XCTAssertEqual(CalibrationMethod.minMax.amax(s, histogram: h), 2000)
    }

    func testEntropyClipsARareOutlierButKeepsAUniformRange() {
        // Uniform |x| over [0, 1): the best threshold is (close to) the whole range.
        var uniform = AbsHistogram(range: 1)
        let u = (0 ..< 20480).map { Float($0) / 20480 }
        u.withUnsafeBufferPointer { uniform.add($0) }
        var su = TensorStatistics()
        _ = u.withUnsafeBufferPointer { su.observe($0) }
        XCTAssertGreaterThan(CalibrationMethod.entropy.amax(su, histogram: uniform), 0.9)
        // A bell of small values (|x| < 2) and one outlier at 100: entropy clips far below the outlier,
        // though not below 128 of the 2048 bins (6.25), the smallest threshold the algorithm tries.
        var rng = SplitMix64(seed: 7)
        var bell = (0 ..< 50000).map { _ in Float((0 ..< 4).map { _ in rng.unit() - 0.5 }.reduce(0, +)) }
        bell.append(100)
        var sb = TensorStatistics()
        _ = bell.withUnsafeBufferPointer { sb.observe($0) }
        var hb = AbsHistogram(range: sb.amax)
        bell.withUnsafeBufferPointer { hb.add($0) }
        let amax = CalibrationMethod.entropy.amax(sb, histogram: hb)
        XCTAssertGreaterThanOrEqual(amax, 6.25)
        XCTAssertLessThan(amax, 25)
    }
}

final class CalibrationTableTests: XCTestCase {
    func testTensorRTCacheHasTheHeaderAndBigEndianHexScales() throws {
        let table = CalibrationTable(method: .minMax, sampleCount: 3, entries: [
            .init(name: "input", min: -127, max: 100, amax: 127, samples: 3),
            .init(name: "conv1:0", min: 0, max: 1, amax: 1, samples: 3),
            .init(name: "dead", min: 0, max: 0, amax: 0, samples: 3),
        ])
        let cache = table.tensorRTCache()
        XCTAssertEqual(cache, "TRT-8601-MinMaxCalibration\ninput: 3f800000\nconv1:0: 3c010204\ndead: 00000000\n")
        let parsed = try CalibrationTable.parseTensorRTCache(cache)
        XCTAssertEqual(parsed.algorithm, "MinMaxCalibration")
        XCTAssertEqual(parsed.scales.map(\.name), ["input", "conv1:0", "dead"])
        XCTAssertEqual(parsed.scales[1].scale, Float(1) / 127)
        XCTAssertEqual(CalibrationTable(method: .entropy, sampleCount: 1, entries: []).tensorRTCache(), "TRT-8601-EntropyCalibration2\n")
        XCTAssertThrowsError(try CalibrationTable.parseTensorRTCache("hello\nx: 1\n"))
        XCTAssertThrowsError(try CalibrationTable.parseTensorRTCache("TRT-8601-MinMaxCalibration\nx: 3f80\n"))

        let json = try JSONSerialization.jsonObject(with: Data(try table.json().utf8)) as? [String: Any]
        XCTAssertEqual(json?["method"] as? String, "minmax")
        XCTAssertEqual(json?["samples"] as? Int, 3)
        let tensors = json?["tensors"] as? [[String: Any]]
        XCTAssertEqual(tensors?.map { $0["name"] as? String }, ["input", "conv1:0", "dead"])
        XCTAssertEqual(tensors?[0]["scale"] as? Double, 1)
        XCTAssertEqual(tensors?[0]["min"] as? Double, -127)
    }
}

final class CalibrationSamplesTests: XCTestCase {
    let inputs = [CalibrationInput(name: "x", type: TensorType(.f32, static: [2, 3])),
                  CalibrationInput(name: "y", type: TensorType(.f32, static: [3]))]
    var fixtures: String { Fixtures.directory + "/calibration" }

    func testNPZAndTensorProtoFoldersBindByName() throws {
        let npz = try CalibrationSamples.open(fixtures + "/npz")
        XCTAssertEqual(npz.count, 2)
        let s1 = try npz.sample(1, inputs: inputs)
        XCTAssertEqual(s1[0].doubles, [-1.5, 2, -0.25, -3, 0.5, -4])
        XCTAssertEqual(s1[1].doubles, [-2, 1, 4])
        let pb = try CalibrationSamples.open(fixtures + "/pb")
        XCTAssertEqual(pb.count, 1)
        let s0 = try pb.sample(0, inputs: inputs)
        XCTAssertEqual(s0[0].doubles, [1.5, -2, 0.25, 3, -0.5, 4])
        XCTAssertEqual(s0[1].doubles, [-1, 0.5, 2])
        XCTAssertEqual(try npz.sample(0, inputs: inputs)[0].doubles, s0[0].doubles)
    }

    func testRandomSamplesAreSeededStandardNormal() throws {
        let r = try CalibrationSamples.open("random:3")
        XCTAssertEqual(r.count, 3)
        let big = [CalibrationInput(name: "x", type: TensorType(.f32, static: [4096]))]
        let a = try r.sample(1, inputs: big)[0].doubles, b = try r.sample(1, inputs: big)[0].doubles
        XCTAssertEqual(a, b, "the same sample twice (calibration's second pass relies on it)")
        XCTAssertNotEqual(a, try r.sample(2, inputs: big)[0].doubles)
        let mean = a.reduce(0, +) / Double(a.count)
        let variance = a.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(a.count)
        XCTAssertEqual(mean, 0, accuracy: 0.1); XCTAssertEqual(variance, 1, accuracy: 0.1)
    }

    func testBadSamplesNameTheSampleAndTheInput() throws {
        let scratch = try Fixtures.temporaryDirectory("glmc-calib-samples")
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        XCTAssertThrowsError(try CalibrationSamples.open(scratch)) { XCTAssertTrue("\($0)".contains("holds no samples"), "\($0)") }
        XCTAssertThrowsError(try CalibrationSamples.open(scratch + "/missing")) { XCTAssertTrue("\($0)".contains("no such folder"), "\($0)") }
        XCTAssertThrowsError(try CalibrationSamples.open("random:0"))
        // A .npy sample for a two-input model, a wrong shape, a wrong dtype, a compressed .npz.
        try FileManager.default.copyItem(atPath: fixtures + "/compressed.npz", toPath: scratch + "/a.npz")
        let one = try CalibrationSamples.open(scratch)
        XCTAssertThrowsError(try one.sample(0, inputs: inputs)) { XCTAssertTrue("\($0)".contains("a.npz") && "\($0)".contains("np.savez"), "\($0)") }
        let wrongShape = [CalibrationInput(name: "x", type: TensorType(.f32, static: [3, 2])), inputs[1]]
        let npz = try CalibrationSamples.open(fixtures + "/npz")
        XCTAssertThrowsError(try npz.sample(0, inputs: wrongShape)) {
            XCTAssertTrue("\($0)".contains("s0.npz") && "\($0)".contains("input 'x' is f32[3,2]"), "\($0)")
        }
        let wrongType = [CalibrationInput(name: "x", type: TensorType(.f16, static: [2, 3])), inputs[1]]
        XCTAssertThrowsError(try npz.sample(0, inputs: wrongType)) { XCTAssertTrue("\($0)".contains("input 'x' is f16[2,3]"), "\($0)") }
        XCTAssertThrowsError(try npz.sample(0, inputs: [inputs[0]])) { XCTAssertTrue("\($0)".contains("no input named 'y'"), "\($0)") }
        // A sample folder whose .pb file is not a TensorProto.
        let pbRoot = scratch + "/pb"
        try FileManager.default.createDirectory(atPath: pbRoot + "/s0", withIntermediateDirectories: true)
        try Data("not a tensor".utf8).write(to: URL(fileURLWithPath: pbRoot + "/s0/input_0.pb"))
        XCTAssertThrowsError(try CalibrationSamples.open(pbRoot).sample(0, inputs: [inputs[0]])) {
            XCTAssertTrue("\($0)".contains("input_0.pb"), "\($0)")
        }
        XCTAssertThrowsError(try CalibrationSamples.open("random:2").sample(0, inputs: [CalibrationInput(name: "ids", type: TensorType(.i64, static: [2]))])) {
            XCTAssertTrue("\($0)".contains("ids"), "\($0)")
        }
    }
}

final class CalibratorTests: XCTestCase {
    /// x + y, then Relu, then times y: a group the fuser merges into one kernel, so the taps have
    /// to keep its intermediates.
    static let model = """
    opsets {"" = 17}
    func @m(%0: f32[2,3] loc("x"), %1: f32[3] loc("y")) -> (f32[2,3] loc("out")) {
      %2 = Add(%0, %1) : f32[2,3] loc("sum")
      %3 = Relu(%2) : f32[2,3] loc("act")
      %4 = Mul(%3, %1) : f32[2,3] loc("out")
      return %4
    }
    """

    func testMinMaxSeesEveryActivationOfTheSourceModel() throws {
        guard CPUPlanBuilder.findCompiler() != nil else { throw XCTSkip("no C compiler") }
        let module = try Parser.parse(Self.model)
        let options = CPUPlanOptions(sourceModelSha256: String(repeating: "0", count: 64), glmcVersion: "test")
        let calibrator = try Calibrator(module, options: options) { _ in }
        XCTAssertEqual(calibrator.names, ["x", "y", "sum", "act", "out"])
        let samples = try CalibrationSamples.open(Fixtures.directory + "/calibration/npz")
        let (table, timing) = try calibrator.run(samples, method: .minMax)
        XCTAssertEqual(timing.passes, 1); XCTAssertEqual(timing.runs, 2)
        // Reference: the same arithmetic over both samples.
        var expected: [String: (Float, Float)] = [:]
        for i in 0 ..< 2 {
            let s = try samples.sample(i, inputs: calibrator.inputs)
            let x = s[0].doubles.map(Float.init), y = s[1].doubles.map(Float.init)
            let sum = x.indices.map { x[$0] + y[$0 % 3] }
            let act = sum.map { Swift.max($0, 0) }
            let out = act.indices.map { act[$0] * y[$0 % 3] }
            for (name, v) in [("x", x), ("y", y), ("sum", sum), ("act", act), ("out", out)] {
                let old = expected[name] ?? (.infinity, -.infinity)
                expected[name] = (Swift.min(old.0, v.min()!), Swift.max(old.1, v.max()!))
            }
        }
        for e in table.entries {
            XCTAssertEqual(e.min, expected[e.name]!.0, e.name)
            XCTAssertEqual(e.max, expected[e.name]!.1, e.name)
            XCTAssertEqual(e.amax, Swift.max(abs(e.min), abs(e.max)), e.name)
            XCTAssertEqual(e.samples, 2)
        }
        let (entropy, t2) = try calibrator.run(samples, method: .entropy)
        XCTAssertEqual(t2.passes, 2)
        for (a, b) in zip(entropy.entries, table.entries) { XCTAssertLessThanOrEqual(a.amax, b.amax, a.name) }
    }

    func testANonFiniteActivationNamesTheSampleAndTensor() throws {
        guard CPUPlanBuilder.findCompiler() != nil else { throw XCTSkip("no C compiler") }
        let module = try Parser.parse("""
        opsets {"" = 17}
        func @m(%0: f32[2,3] loc("x"), %1: f32[3] loc("y")) -> (f32[2,3] loc("out")) {
          %2 = Log(%0) : f32[2,3] loc("logx")
          %3 = Mul(%2, %1) : f32[2,3] loc("out")
          return %3
        }
        """)
        let calibrator = try Calibrator(module, options: CPUPlanOptions(sourceModelSha256: String(repeating: "0", count: 64), glmcVersion: "test")) { _ in }
        let samples = try CalibrationSamples.open(Fixtures.directory + "/calibration/npz")
        XCTAssertThrowsError(try calibrator.run(samples, method: .minMax)) {
            XCTAssertTrue("\($0)".contains("s0.npz") && "\($0)".contains("tensor 'logx' has a non-finite value"), "\($0)")
        }
    }
}
