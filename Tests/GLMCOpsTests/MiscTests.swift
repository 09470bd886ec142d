import XCTest
import GLMCIR
@testable import GLMCOps

final class MiscOpsTests: XCTestCase {
    // MARK: Helpers

    private func definition(_ op: String, domain: String) throws -> OpDefinition {
        guard let d = MiscOps.all.first(where: { $0.name == OpName(op, domain: domain) }) else {
            throw GLMCError("no definition of \(op)")
        }
        return d
    }

    /// Evaluates `op` and checks that inference on the operands' types agrees with the results.
    private func run(_ op: String, domain: String = "", opset: Int = 26, _ inputs: [Tensor?],
                     _ attributes: [String: Attribute] = [:], outputs: Int = 1) throws -> [Tensor] {
        let ctx = EvalContext(op: OpName(op, domain: domain), opset: opset, attributes: attributes, outputCount: outputs, inputs: inputs)
        let results = try definition(op, domain: domain).evaluate(ctx)
        XCTAssertEqual(results.count, outputs)
        let inferred = try infer(op, domain: domain, opset: opset, inputs.map { $0?.type }, attributes, outputs: outputs,
                                 constants: inputs.map { $0?.tensorData })
        for (t, r) in zip(inferred, results) {
            XCTAssertTrue(t.isCompatible(with: r.type), "\(op): inferred \(t), computed \(r.type)")
        }
        return results
    }

    private func run1(_ op: String, domain: String = "", opset: Int = 26, _ inputs: [Tensor?],
                      _ attributes: [String: Attribute] = [:]) throws -> Tensor {
        try run(op, domain: domain, opset: opset, inputs, attributes)[0]
    }

    private func infer(_ op: String, domain: String = "", opset: Int = 26, _ types: [TensorType?],
                       _ attributes: [String: Attribute] = [:], outputs: Int = 1, constants: [TensorData?] = []) throws -> [TensorType] {
        let ctx = InferenceContext(op: OpName(op, domain: domain), opset: opset, attributes: attributes, outputCount: outputs,
                                   inputTypes: types, constantInputs: constants)
        return try definition(op, domain: domain).infer(ctx)
    }

    private func f32(_ v: [Float], _ shape: [Int]? = nil) -> Tensor { Tensor(v, shape: shape ?? [v.count]) }
    private func i64(_ v: [Int64], _ shape: [Int]? = nil) -> Tensor { Tensor(v, shape: shape ?? [v.count]) }
    private func scalar(_ v: Int64, _ dtype: DType = .i64) -> Tensor { Tensor(int64s: [v], dtype: dtype, shape: []) }
    private func str(_ v: [String], _ shape: [Int]? = nil) -> Tensor { Tensor(shape: shape ?? [v.count], storage: .string(v)) }
    private func strings(_ t: Tensor) -> [String] { if case .string(let a) = t.storage { return a } else { return [] } }
    private func ty(_ dtype: DType, _ dims: [Dim]) -> TensorType { TensorType(dtype, Shape(dims)) }
    private func assertClose(_ a: [Double], _ b: [Double], tolerance: Double = 1e-5, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, "counts", file: file, line: line)
        for (x, y) in zip(a, b) where abs(x - y) > tolerance * max(1, abs(y)) {
            XCTFail("\(a) != \(b)", file: file, line: line); return
        }
    }

    /// The DFT of a complex sequence by the definition.
    private func naiveDFT(_ re: [Double], _ im: [Double], inverse: Bool = false) -> [(Double, Double)] {
        let n = re.count, sign = inverse ? 1.0 : -1.0
        return (0 ..< n).map { k in
            var sr = 0.0, si = 0.0
            for j in 0 ..< n {
                let a = sign * 2 * Double.pi * Double(j * k) / Double(n)
                sr += re[j] * cos(a) - im[j] * sin(a); si += re[j] * sin(a) + im[j] * cos(a)
            }
            return inverse ? (sr / Double(n), si / Double(n)) : (sr, si)
        }
    }

    // MARK: Registry

    func testDefinitionsAreUniqueInTheRegistryWithAscendingVersions() {
        for d in MiscOps.all {
            XCTAssertEqual(OpRegistry.all.filter { $0.name == d.name }.count, 1, "\(d.name) is defined more than once")
            XCTAssertEqual(d.sinceVersions, d.sinceVersions.sorted(), "\(d.name)")
        }
    }

    // MARK: Signal processing

    func testDFTMatchesDefinitionForEveryPlan() throws {
        for n in [8, 6, 7, 100] {  // radix-2, direct and Bluestein plans
            let values = (0 ..< n).map { Float(sin(Double($0) * 1.3) + Double($0)) }
            let y = try run1("DFT", [Tensor(values, shape: [1, n, 1])])
            XCTAssertEqual(y.shape, [1, n, 2])
            let expected = naiveDFT(values.map(Double.init), [Double](repeating: 0, count: n))
            assertClose(y.doubles, expected.flatMap { [$0.0, $0.1] }, tolerance: 1e-4)
        }
    }

    func testDFTAxisIsAnAttributeBeforeOpset20AndAnOperandFrom20() throws {
        let x = Tensor((0 ..< 12).map(Float.init), shape: [1, 3, 4, 1])
        let old = try run1("DFT", opset: 17, [x], ["axis": .int(2)])
        let new = try run1("DFT", opset: 20, [x, nil, scalar(2)])
        let newDefault = try run1("DFT", opset: 20, [x])  // axis −2: the same axis here
        XCTAssertEqual(old.shape, [1, 3, 4, 2])
        assertClose(old.doubles, new.doubles)
        assertClose(old.doubles, newDefault.doubles)
        XCTAssertThrowsError(try run1("DFT", opset: 20, [x, nil, scalar(-1)]))  // the complex axis
    }

    func testOnesidedForwardAndInverseRoundTrip() throws {
        let signal: [Float] = [1, 2, 0, -1, 3, 5, 2, 7, -2, 1]
        let x = Tensor(signal, shape: [1, 10, 1])
        let spectrum = try run1("DFT", [x], ["onesided": .int(1)])
        XCTAssertEqual(spectrum.shape, [1, 6, 2])
        let back = try run1("DFT", [spectrum], ["onesided": .int(1), "inverse": .int(1)])
        XCTAssertEqual(back.shape, [1, 10, 1])
        assertClose(back.doubles, signal.map(Double.init), tolerance: 1e-5)
        // An explicit odd length: 9 samples from 5 bins.
        let odd = try run1("DFT", [spectrum, scalar(9)], ["onesided": .int(1), "inverse": .int(1)])
        XCTAssertEqual(odd.shape, [1, 9, 1])
    }

    func testInverseComplexDFTAndZeroPadding() throws {
        let x = Tensor([1, 0, 2, 1, 0, -1, 3, 2] as [Float], shape: [4, 2])
        let y = try run1("DFT", opset: 20, [x, nil, scalar(0)], ["inverse": .int(1)])
        let expected = naiveDFT([1, 2, 0, 3], [0, 1, -1, 2], inverse: true)
        assertClose(y.doubles, expected.flatMap { [$0.0, $0.1] })
        let padded = try run1("DFT", opset: 20, [x, scalar(6), scalar(0)])
        XCTAssertEqual(padded.shape, [6, 2])
    }

    func testDFTInference() throws {
        let x = ty(.f32, [.symbol("b"), .known(10), .known(1)])
        XCTAssertEqual(try infer("DFT", [x], ["onesided": .int(1)]), [ty(.f32, [.symbol("b"), .known(6), .known(2)])])
        XCTAssertEqual(try infer("DFT", [x, ty(.i64, [])], ["onesided": .int(1)]), [ty(.f32, [.symbol("b"), .unknown, .known(2)])])
        // A computed axis: every signal axis may change.
        XCTAssertEqual(try infer("DFT", [x, nil, ty(.i64, [])], ["onesided": .int(1)]), [ty(.f32, [.unknown, .unknown, .known(2)])])
        XCTAssertEqual(try infer("DFT", [x, nil, ty(.i64, [])]), [ty(.f32, [.symbol("b"), .known(10), .known(2)])])
        XCTAssertThrowsError(try infer("DFT", [ty(.i32, [.known(2), .known(1)])]))
    }

    func testSTFTFramesAndWindow() throws {
        let signal = Tensor((0 ..< 20).map(Float.init), shape: [1, 20, 1])
        let window = f32([0.5, 1, 1, 0.5])
        let y = try run1("STFT", [signal, scalar(4), window])
        XCTAssertEqual(y.shape, [1, 5, 3, 2])
        // Frame 1 is samples 4...7; its DC bin is the windowed sum.
        XCTAssertEqual(y.doubles[6], 0.5 * 4 + 5 + 6 + 0.5 * 7, accuracy: 1e-5)
        let full = try run1("STFT", [signal, scalar(8), nil, scalar(8)], ["onesided": .int(0)])
        XCTAssertEqual(full.shape, [1, 2, 8, 2])
        XCTAssertThrowsError(try run1("STFT", [signal, scalar(4), window, scalar(5)]))
        XCTAssertEqual(try infer("STFT", [ty(.f32, [.symbol("b"), .known(20), .known(1)]), ty(.i64, []), ty(.f32, [.known(4)])],
                                 constants: [nil, scalar(4).tensorData]),
                       [ty(.f32, [.symbol("b"), .known(5), .known(3), .known(2)])])
    }

    func testWindows() throws {
        let hann = try run1("HannWindow", [scalar(4, .i32)])
        assertClose(hann.doubles, [0, 0.5, 1, 0.5])
        let symmetric = try run1("HannWindow", [scalar(5)], ["periodic": .int(0)])
        assertClose(symmetric.doubles, [0, 0.5, 1, 0.5, 0])
        let hamming = try run1("HammingWindow", [scalar(2)], ["output_datatype": .int(11)])
        XCTAssertEqual(hamming.dtype, .f64)
        assertClose(hamming.doubles, [4.0 / 46.0, 1])
        let blackman = try run1("BlackmanWindow", [scalar(3)], ["periodic": .int(0)])
        assertClose(blackman.doubles, [0, 1, 0], tolerance: 1e-6)
        XCTAssertEqual(try infer("HannWindow", [ty(.i64, [])]), [ty(.f32, [.unknown])])
        XCTAssertThrowsError(try run1("HannWindow", [scalar(4)], ["output_datatype": .int(8)]))
    }

    func testMelWeightMatrix() throws {
        let y = try run1("MelWeightMatrix", [scalar(8, .i32), scalar(16, .i32),
                                             scalar(8192, .i32), f32([0], []), f32([4096], [])])
        XCTAssertEqual(y.shape, [9, 8])
        // ONNX's documented result: ones on a staircase diagonal.
        let ones = y.doubles.enumerated().filter { $0.element == 1 }.map { $0.offset }
        XCTAssertEqual(ones, [0, 1, 10, 11, 20, 29, 38, 47])
    }

    // MARK: Tensor utilities

    func testBitCast() throws {
        let y = try run1("BitCast", [f32([1, -2.5])], ["to": .int(6)])
        XCTAssertEqual(y.int64s, [1_065_353_216, -1_071_644_672])
        let back = try run1("BitCast", [y], ["to": .int(1)])
        XCTAssertEqual(back.doubles, [1, -2.5])
        let bytes = try run1("BitCast", [Tensor([true, false], shape: [2])], ["to": .int(2)])
        XCTAssertEqual(bytes.int64s, [1, 0])
        XCTAssertThrowsError(try infer("BitCast", [ty(.f32, [.known(2)])], ["to": .int(7)]))
        XCTAssertEqual(try infer("BitCast", [ty(.f16, [.symbol("n")])], ["to": .int(5)]), [ty(.i16, [.symbol("n")])])
    }

    func testSwiGLU() throws {
        let y = try run1("SwiGLU", opset: 28, [f32([1, -2]), f32([2, 3])], ["alpha": .float(0.5)])
        assertClose(y.doubles, [1 / (1 + exp(-0.5)) * 2, -2 / (1 + exp(1)) * 3])
        let half = try run1("SwiGLU", opset: 28, [Tensor(doubles: [1], dtype: .f16, shape: [1]), Tensor(doubles: [1], dtype: .f16, shape: [1])])
        XCTAssertEqual(half.doubles[0], 1 / (1 + exp(-1)), accuracy: 1e-3)
        XCTAssertThrowsError(try run1("SwiGLU", opset: 28, [f32([1, 2]), f32([1])]))
        XCTAssertEqual(try infer("SwiGLU", opset: 28, [ty(.f32, [.symbol("b"), .unknown]), ty(.f32, [.unknown, .known(4)])]),
                       [ty(.f32, [.symbol("b"), .known(4)])])
    }

    func testTensorScatterLinearAndCircular() throws {
        let past = f32([Float](repeating: 0, count: 8), [2, 4, 1])
        let update = f32([1, 2, 3, 4], [2, 2, 1])
        let linear = try run1("TensorScatter", opset: 24, [past, update, i64([1, 2])], ["axis": .int(1)])
        XCTAssertEqual(linear.doubles, [0, 1, 2, 0, 0, 0, 3, 4])
        let circular = try run1("TensorScatter", opset: 24, [past, update, i64([3, 0])], ["axis": .int(1), "mode": .string("circular")])
        XCTAssertEqual(circular.doubles, [2, 0, 0, 1, 3, 4, 0, 0])
        XCTAssertThrowsError(try run1("TensorScatter", opset: 24, [past, update, i64([3, 0])], ["axis": .int(1)]))
        let prefill = try run1("TensorScatter", opset: 24, [past, update], ["axis": .int(1)])
        XCTAssertEqual(prefill.doubles, [1, 2, 0, 0, 3, 4, 0, 0])
    }

    func testOptionalQueriesOnTensors() throws {
        XCTAssertEqual(try run1("OptionalHasElement", opset: 18, [f32([1])]).doubles, [1])
        XCTAssertEqual(try run1("OptionalHasElement", opset: 18, [nil]).doubles, [0])
        XCTAssertEqual(try run1("OptionalHasElement", opset: 18, []).shape, [])
        XCTAssertEqual(try run1("OptionalGetElement", opset: 18, [f32([1, 2])]).doubles, [1, 2])
        XCTAssertThrowsError(try run1("OptionalGetElement", opset: 18, [nil]))
    }

    // MARK: Strings

    func testStringConcatBroadcasts() throws {
        let y = try run1("StringConcat", opset: 20, [str(["a", "b"], [2, 1]), str(["x", "yz", "的"])])
        XCTAssertEqual(y.shape, [2, 3])
        XCTAssertEqual(strings(y), ["ax", "ayz", "a的", "bx", "byz", "b的"])
    }

    func testStringSplitLikePython() throws {
        let x = str(["a b  c ", "  lead", ""])
        let whitespace = try run("StringSplit", opset: 20, [x], outputs: 2)
        XCTAssertEqual(whitespace[0].shape, [3, 3])
        XCTAssertEqual(strings(whitespace[0]), ["a", "b", "c", "lead", "", "", "", "", ""])
        XCTAssertEqual(whitespace[1].int64s, [3, 1, 0])
        let limited = try run("StringSplit", opset: 20, [str(["o-n-n--x-"])], ["delimiter": .string("-"), "maxsplit": .int(2)], outputs: 2)
        XCTAssertEqual(strings(limited[0]), ["o", "n", "n--x-"])
        let rest = try run("StringSplit", opset: 20, [str(["a  b c  "])], ["maxsplit": .int(1)], outputs: 2)
        XCTAssertEqual(strings(rest[0]), ["a", "b c  "])
        let empty = try run("StringSplit", opset: 20, [str([], [0])], outputs: 2)
        XCTAssertEqual(empty[0].shape, [0, 0])
    }

    func testStringNormalizer() throws {
        let x = str(["Monday", "tuesday", "MONDAY", "Wednesday"], [1, 4])
        let y = try run1("StringNormalizer", opset: 10, [x], ["stopwords": .strings(["monday"]), "case_change_action": .string("UPPER")])
        XCTAssertEqual(y.shape, [1, 2])
        XCTAssertEqual(strings(y), ["TUESDAY", "WEDNESDAY"])
        let sensitive = try run1("StringNormalizer", opset: 10, [str(["monday", "Monday"])], ["stopwords": .strings(["monday"]), "is_case_sensitive": .int(1)])
        XCTAssertEqual(strings(sensitive), ["Monday"])
        let none = try run1("StringNormalizer", opset: 10, [str(["monday"])], ["stopwords": .strings(["monday"])])
        XCTAssertEqual(strings(none), [""])
        XCTAssertEqual(try infer("StringNormalizer", opset: 10, [ty(.string, [.known(4)])]), [ty(.string, [.known(4)])])
    }

    func testRegexFullMatch() throws {
        func matches(_ pattern: String, _ texts: [String]) throws -> [Bool] {
            let y = try run1("RegexFullMatch", opset: 20, [str(texts)], ["pattern": .string(pattern)])
            guard case .bool(let b) = y.storage else { return [] }
            return b
        }
        XCTAssertEqual(try matches(#"www\.[\w.-]+\.\bcom\b"#, ["www.google.com", "www.bbc.co.uk"]), [true, false])
        XCTAssertEqual(try matches(#"(\W|^)[\w.\-]{0,25}@(yahoo|gmail)\.com(\W|$)"#, ["x@gmail.com", "x@gmail.org"]), [true, false])
        // Alternatives: the whole string must match, whichever alternative is tried first.
        XCTAssertEqual(try matches("(a|ab)(c|bcd)?", ["abcd", "ab", "abc", "abd"]), [true, true, true, false])
        XCTAssertEqual(try matches("(?i)h[[:alpha:]]{3}o", ["HellO", "hell0"]), [true, false])
        XCTAssertEqual(try matches("a{,2}", ["a{,2}", "aa"]), [true, false])  // RE2: a literal brace
        XCTAssertEqual(try matches("(a*)*b", [String(repeating: "a", count: 2000)]), [false])  // linear time
        XCTAssertThrowsError(try matches("(a", ["a"]))
        XCTAssertThrowsError(try matches(#"\1"#, ["a"]))
    }

    func testTfIdfVectorizer() throws {
        let x = i64([1, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8], [2, 6])
        let attributes: [String: Attribute] = [
            "mode": .string("TF"), "min_gram_length": .int(2), "max_gram_length": .int(2), "max_skip_count": .int(0),
            "ngram_counts": .ints([0, 4]), "ngram_indexes": .ints([0, 1, 2, 3, 4, 5, 6]), "pool_int64s": .ints([2, 3, 5, 4, 5, 6, 7, 8, 6, 7]),
        ]
        let y = try run1("TfIdfVectorizer", opset: 9, [x], attributes)
        XCTAssertEqual(y.shape, [2, 7])
        XCTAssertEqual(y.doubles, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1])
        var withSkips = attributes
        withSkips["min_gram_length"] = .int(1)
        withSkips["max_skip_count"] = .int(5)
        let z = try run1("TfIdfVectorizer", opset: 9, [x], withSkips)
        XCTAssertEqual(z.doubles, [0, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 1, 1])
    }

    // MARK: ai.onnx.ml

    func testLabelEncoderVersions() throws {
        let x = str(["a", "b", "d"])
        let v2 = try run1("LabelEncoder", domain: "ai.onnx.ml", opset: 2, [x], ["keys_strings": .strings(["a", "b"]), "values_int64s": .ints([5, 6])])
        XCTAssertEqual(v2.int64s, [5, 6, -1])
        let keys = str(["a", "b"]).tensorData, values = Tensor(doubles: [1, 2], dtype: .i16, shape: [2]).tensorData
        let fallback = Tensor(doubles: [42], dtype: .i16, shape: [1]).tensorData
        let v4 = try run1("LabelEncoder", domain: "ai.onnx.ml", opset: 4, [x],
                          ["keys_tensor": .tensor(keys), "values_tensor": .tensor(values), "default_tensor": .tensor(fallback)])
        XCTAssertEqual(v4.dtype, .i16)
        XCTAssertEqual(v4.int64s, [1, 2, 42])
        let nan = try run1("LabelEncoder", domain: "ai.onnx.ml", opset: 4, [f32([.nan, 1])],
                           ["keys_floats": .floats([.nan]), "values_strings": .strings(["missing"])])
        XCTAssertEqual(strings(nan), ["missing", "_Unused"])
        let v1 = try run1("LabelEncoder", domain: "ai.onnx.ml", opset: 1, [i64([1, 5])], ["classes_strings": .strings(["x", "y"])])
        XCTAssertEqual(strings(v1), ["y", "_Unused"])
        XCTAssertThrowsError(try run1("LabelEncoder", domain: "ai.onnx.ml", opset: 2, [i64([1])], ["keys_strings": .strings(["a"]), "values_int64s": .ints([5])]))
    }

    func testBinarizerAndArrayFeatureExtractor() throws {
        let b = try run1("Binarizer", domain: "ai.onnx.ml", opset: 1, [f32([0.1, 0.5, 0.9])], ["threshold": .float(0.5)])
        XCTAssertEqual(b.doubles, [0, 0, 1])
        let x = f32([1, 2, 3, 4, 5, 6], [2, 3])
        let y = try run1("ArrayFeatureExtractor", domain: "ai.onnx.ml", opset: 1, [x, i64([2, 0])])
        XCTAssertEqual(y.shape, [2, 2])
        XCTAssertEqual(y.doubles, [3, 1, 6, 4])
        let vector = try run1("ArrayFeatureExtractor", domain: "ai.onnx.ml", opset: 1, [f32([7, 8]), i64([1])])
        XCTAssertEqual(vector.shape, [1, 1])
        XCTAssertThrowsError(try run1("ArrayFeatureExtractor", domain: "ai.onnx.ml", opset: 1, [x, i64([3])]))
    }

    func testTreeEnsemble() throws {
        let splits = Tensor(doubles: [3.14, 1.2, 4.2], dtype: .f64, shape: [3]).tensorData
        let weights = Tensor(doubles: [5.23, 12.12, -12.23, 7.21], dtype: .f64, shape: [4]).tensorData
        let modes = Tensor(shape: [3], storage: .u8([0, 0, 0])).tensorData
        let attributes: [String: Attribute] = [
            "n_targets": .int(2), "tree_roots": .ints([0]), "nodes_modes": .tensor(modes), "nodes_featureids": .ints([0, 0, 0]),
            "nodes_splits": .tensor(splits), "nodes_truenodeids": .ints([1, 0, 1]), "nodes_trueleafs": .ints([0, 1, 1]),
            "nodes_falsenodeids": .ints([2, 2, 3]), "nodes_falseleafs": .ints([0, 1, 1]), "leaf_targetids": .ints([0, 1, 0, 1]),
            "leaf_weights": .tensor(weights),
        ]
        let x = Tensor(doubles: [1.2, 3.4, -0.12, 1.66, 4.14, 1.77], dtype: .f64, shape: [3, 2])
        let y = try run1("TreeEnsemble", domain: "ai.onnx.ml", opset: 5, [x], attributes)
        XCTAssertEqual(y.shape, [3, 2])
        assertClose(y.doubles, [5.23, 0, 5.23, 0, 0, 12.12])
        var broken = attributes
        broken["nodes_truenodeids"] = .ints([1, 9, 1])
        XCTAssertThrowsError(try run1("TreeEnsemble", domain: "ai.onnx.ml", opset: 5, [x], broken))
    }

    // MARK: Training optimizers

    func testOptimizers() throws {
        let domain = "ai.onnx.preview.training"
        let r = f32([0.1], []), t = scalar(0)
        let adagrad = try run("Adagrad", domain: domain, opset: 1, [r, t, f32([1]), f32([2]), f32([0])], outputs: 2)
        assertClose(adagrad[0].doubles, [1 - 0.1 * 2 / (2 + 1e-6)])
        assertClose(adagrad[1].doubles, [4])
        let momentum = try run("Momentum", domain: domain, opset: 1, [r, scalar(1), f32([1]), f32([3]), f32([2]), f32([0]), f32([1]), f32([4])],
                               ["alpha": .float(0.5), "beta": .float(1), "norm_coefficient": .float(0), "mode": .string("nesterov")], outputs: 4)
        XCTAssertEqual(momentum.map(\.shape), [[1], [1], [1], [1]])
        // X_1 = 1, G_1 = 2, V_1 = 1: V_new = 0.5·1 + 2 = 2.5, X_new = 1 − 0.1·(2 + 0.5·2.5).
        assertClose(momentum[2].doubles, [2.5])
        assertClose(momentum[0].doubles, [1 - 0.1 * (2 + 0.5 * 2.5)])
        assertClose(momentum[1].doubles, [3 - 0.1 * (0 + 0.5 * 2)])
        let adam = try run("Adam", domain: domain, opset: 1, [r, scalar(1), f32([1]), f32([1]), f32([0]), f32([0])],
                           ["alpha": .float(0.5), "beta": .float(0.5), "epsilon": .float(0)], outputs: 3)
        // V = H = 0.5; R_adjusted = 0.1·√0.5/0.5; X = 1 − R_adjusted·0.5/√0.5 = 0.9.
        assertClose(adam[0].doubles, [0.9], tolerance: 1e-6)
        XCTAssertThrowsError(try run("Adam", domain: domain, opset: 1, [r, t, f32([1]), f32([1]), f32([0])], outputs: 3))
    }
}
