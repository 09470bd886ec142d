import XCTest
import GLMCIR
@testable import GLMCOps

final class ElementwiseOpsTests: XCTestCase {
    // MARK: Helpers

    private func definition(_ op: String) throws -> OpDefinition {
        guard let d = ElementwiseOps.all.first(where: { $0.name == OpName(op) }) else {
            throw GLMCError("no definition of \(op)")
        }
        return d
    }

    private func run(_ op: String, opset: Int = 21, _ inputs: [Tensor?], _ attributes: [String: Attribute] = [:],
                     outputs: Int = 1) throws -> [Tensor] {
        let ctx = EvalContext(op: OpName(op), opset: opset, attributes: attributes, outputCount: outputs, inputs: inputs)
        let results = try definition(op).evaluate(ctx)
        XCTAssertEqual(results.count, outputs)
        // Inference on the same operands must agree with evaluation.
        let inferred = try infer(op, opset: opset, inputs.map { $0?.type }, attributes, outputs: outputs)
        XCTAssertEqual(inferred, results.map(\.type), "\(op) inference")
        return results
    }

    private func run1(_ op: String, opset: Int = 21, _ inputs: [Tensor?], _ attributes: [String: Attribute] = [:]) throws -> Tensor {
        try run(op, opset: opset, inputs, attributes)[0]
    }

    private func infer(_ op: String, opset: Int = 21, _ types: [TensorType?], _ attributes: [String: Attribute] = [:],
                       outputs: Int = 1) throws -> [TensorType] {
        let ctx = InferenceContext(op: OpName(op), opset: opset, attributes: attributes, outputCount: outputs, inputTypes: types)
        return try definition(op).infer(ctx)
    }

    private func f32(_ v: [Float], _ shape: [Int]? = nil) -> Tensor { Tensor(v, shape: shape ?? [v.count]) }
    private func t(_ v: [Double], _ dtype: DType, _ shape: [Int]? = nil) -> Tensor {
        Tensor(doubles: v, dtype: dtype, shape: shape ?? [v.count])
    }
    private func floats(_ t: Tensor) -> [Float] { t.doubles.map { Float($0) } }
    private func ty(_ dtype: DType, _ dims: [Dim]) -> TensorType { TensorType(dtype, Shape(dims)) }

    /// Naive NumPy broadcasting reference: the value of each result element from multi-indices.
    private func naiveBroadcast(_ a: [Double], _ sa: [Int], _ b: [Double], _ sb: [Int], _ f: (Double, Double) -> Double) -> [Double] {
        let out = ShapeHelpers.broadcast([sa, sb])!
        let n = out.reduce(1, *)
        let os = ShapeHelpers.strides(out)
        func index(_ shape: [Int], _ flat: Int) -> Int {
            let st = ShapeHelpers.strides(shape)
            var idx = 0
            for (k, d) in shape.enumerated() {
                let j = out.count - shape.count + k
                let c = (flat / os[j]) % out[j]
                idx += (d == 1 ? 0 : c) * st[k]
            }
            return idx
        }
        return (0 ..< n).map { f(a[index(sa, $0)], b[index(sb, $0)]) }
    }

    // MARK: Unary

    func testUnaryFloatFamilies() throws {
        XCTAssertEqual(floats(try run1("Relu", [f32([-1, 0, 2, .nan])])).map { $0.isNaN ? 99 : $0 }, [0, 0, 2, 99])
        let sig = try run1("Sigmoid", [f32([0, -1000, 1000])])
        XCTAssertEqual(floats(sig), [0.5, 0, 1])
        // Half precision computes in Float and re-encodes.
        let h = try run1("Sqrt", [t([4, 2], .f16)])
        XCTAssertEqual(h.dtype, .f16)
        XCTAssertEqual(h.doubles, [2, Double(halfToFloat(floatToHalf(Float(2).squareRoot())))])
        let b = try run1("Neg", [t([1.5], .bf16)])
        XCTAssertEqual(b.dtype, .bf16)
        XCTAssertEqual(b.doubles, [-1.5])
        XCTAssertEqual(try run1("Round", [f32([0.5, 1.5, 2.5, -0.5, -1.7])]).doubles, [0, 2, 2, -0, -2])
        let gelu = try run1("Gelu", [f32([1])], ["approximate": .string("tanh")])
        XCTAssertEqual(floats(gelu)[0], 0.841192, accuracy: 1e-5)
        XCTAssertEqual(floats(try run1("LeakyRelu", [f32([-2, 3])], ["alpha": .float(0.5)])), [-1, 3])
        XCTAssertEqual(floats(try run1("Softplus", [f32([1000, -1000])])), [1000, 0])
        XCTAssertThrowsError(try run1("Gelu", [f32([1])], ["approximate": .string("fast")]))
    }

    func testUnaryIntegerRules() throws {
        // Wraps like NumPy: abs/neg of the most negative value is itself.
        XCTAssertEqual(try run1("Abs", [t([-128, -3, 5], .i8)]).int64s, [-128, 3, 5])
        XCTAssertEqual(try run1("Neg", [t([-128, 7], .i8)]).int64s, [-128, -7])
        XCTAssertEqual(try run1("Sign", [t([0, 200], .u8)]).int64s, [0, 1])
        XCTAssertEqual(try run1("Sign", [t([-5, 0, 9], .i64)]).int64s, [-1, 0, 1])
        XCTAssertEqual(try run1("Relu", [t([-5, 9], .i32)]).int64s, [0, 9])
        XCTAssertEqual(try run1("BitwiseNot", [t([0, 255], .u8)]).int64s, [255, 0])
        XCTAssertEqual(try run1("Not", [Tensor([true, false], shape: [2])]).storage.bools, [false, true])
        // Float-only ops reject integers, both in inference and evaluation.
        XCTAssertThrowsError(try run1("Sqrt", [t([4], .i32)]))
        XCTAssertThrowsError(try infer("Exp", [TensorType(.i64, static: [2])]))
    }

    func testPredicates() throws {
        let x = f32([.infinity, -.infinity, .nan, 1])
        XCTAssertEqual(try run1("IsNaN", [x]).storage.bools, [false, false, true, false])
        XCTAssertEqual(try run1("IsInf", [x]).storage.bools, [true, true, false, false])
        XCTAssertEqual(try run1("IsInf", [x], ["detect_negative": .int(0)]).storage.bools, [true, false, false, false])
    }

    func testSymbolicInference() throws {
        let batch = ty(.f32, [.symbol("batch"), .known(3)])
        XCTAssertEqual(try infer("Relu", [batch]), [batch])
        XCTAssertEqual(try infer("Add", [ty(.f32, [.symbol("b"), .known(1), .known(4)]), TensorType(.f32, static: [3, 1])]),
                       [ty(.f32, [.symbol("b"), .known(3), .known(4)])])
        XCTAssertEqual(try infer("Less", [batch, TensorType(.f32, static: [])]), [ty(.bool, [.symbol("batch"), .known(3)])])
        XCTAssertEqual(try infer("Where", [TensorType(.bool, static: [2, 1, 1]), batch, TensorType(.f32, static: [1])]),
                       [ty(.f32, [.known(2), .symbol("batch"), .known(3)])])
        XCTAssertEqual(try infer("Sum", [batch, batch, TensorType(.f32, static: [3])]), [batch])
        XCTAssertEqual(try infer("Cast", [batch], ["to": .int(7)]), [ty(.i64, [.symbol("batch"), .known(3)])])
        XCTAssertEqual(try infer("DynamicQuantizeLinear", [batch], outputs: 3),
                       [ty(.u8, [.symbol("batch"), .known(3)]), TensorType(.f32, .scalar), TensorType(.u8, .scalar)])
        XCTAssertEqual(try infer("Mul", [TensorType(.f32, .unranked), batch]), [TensorType(.f32, .unranked)])
        XCTAssertThrowsError(try infer("Add", [TensorType(.f32, static: [2]), TensorType(.f32, static: [3])]))
        XCTAssertThrowsError(try infer("Add", [TensorType(.f32, static: [2]), TensorType(.f64, static: [2])]))
    }

    // MARK: Broadcasting

    func testBroadcastingMatchesNaiveReference() throws {
        let cases: [([Int], [Int])] = [
            ([2, 3, 4], [2, 3, 4]), ([2, 3, 4], []), ([], [5]), ([2, 3, 4], [3, 1]), ([1, 3, 1, 5], [2, 1, 4, 1]),
            ([2, 1, 3, 1, 2], [3, 4, 1]), ([3, 1], [1, 4]), ([2, 0, 3], [1, 3]), ([1, 1], [2, 2]),
        ]
        for (sa, sb) in cases {
            let a = (0 ..< sa.reduce(1, *)).map { Double($0) * 0.5 - 3 }
            let b = (0 ..< sb.reduce(1, *)).map { Double($0) + 1 }
            let expected = naiveBroadcast(a, sa, b, sb) { $0 - $1 }
            let got = try run1("Sub", [t(a, .f64, sa), t(b, .f64, sb)])
            XCTAssertEqual(got.shape, ShapeHelpers.broadcast([sa, sb]), "\(sa) vs \(sb)")
            XCTAssertEqual(got.doubles, expected, "\(sa) vs \(sb)")
            let ints = try run1("Mul", [t(a.map { $0.rounded() }, .i32, sa), t(b, .i32, sb)])
            XCTAssertEqual(ints.doubles, naiveBroadcast(a.map { $0.rounded() }, sa, b, sb, *), "\(sa) vs \(sb)")
        }
        XCTAssertThrowsError(try run1("Add", [f32([1, 2]), f32([1, 2, 3])]))
        XCTAssertThrowsError(try run1("Add", [f32([1]), t([1], .f64)]))
    }

    func testWhereBroadcastsThreeWays() throws {
        let c = Tensor([true, false], shape: [2, 1])
        let r = try run1("Where", [c, f32([1, 2, 3], [3]), f32([-1], [1, 1])])
        XCTAssertEqual(r.shape, [2, 3])
        XCTAssertEqual(floats(r), [1, 2, 3, -1, -1, -1])
        let s = try run1("Where", [c, Tensor(shape: [1], storage: .string(["a"])), Tensor(shape: [1], storage: .string(["b"]))])
        if case .string(let v) = s.storage { XCTAssertEqual(v, ["a", "b"]) } else { XCTFail("expected strings") }
    }

    func testLegacyBroadcastAttribute() throws {
        // Opset 6: B of shape [3] lines up with axis 1 of A [2,3,2].
        let a = f32([Float](repeating: 0, count: 12), [2, 3, 2])
        let attrs: [String: Attribute] = ["broadcast": .int(1), "axis": .int(1)]
        let r = try run1("Add", opset: 6, [a, f32([1, 2, 3])], attrs)
        XCTAssertEqual(floats(r), [1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3])
        // From opset 7 the attributes do not exist and NumPy rules apply ([3] vs trailing 2 fails).
        XCTAssertThrowsError(try run1("Add", opset: 7, [a, f32([1, 2, 3])], attrs))
    }

    // MARK: Binary semantics

    func testIntegerDivisionAndModulo() throws {
        XCTAssertEqual(try run1("Div", [t([7, -7, 5, -128], .i8), t([2, 2, 0, -1], .i8)]).int64s, [3, -3, 0, -128])
        let x = t([-4, 7, 5, 4, -7, 8], .i32), y = t([2, -3, 8, -2, 3, 5], .i32)
        XCTAssertEqual(try run1("Mod", [x, y]).int64s, [0, -2, 5, 0, 2, 3])
        XCTAssertEqual(try run1("Mod", [x, y], ["fmod": .int(1)]).int64s, [0, 1, 5, 0, -1, 3])
        let fm = try run1("Mod", [f32([-4.5, 4.5]), f32([2, -2])])
        XCTAssertEqual(floats(fm), [1.5, -1.5])
        XCTAssertEqual(floats(try run1("Mod", [f32([-4.5]), f32([2])], ["fmod": .int(1)])), [-0.5])
    }

    func testBitwiseAndShifts() throws {
        XCTAssertEqual(try run1("BitwiseAnd", [t([12, 10], .u8), t([10], .u8)]).int64s, [8, 10])
        XCTAssertEqual(try run1("BitwiseXor", [t([-1], .i16), t([5], .i16)]).int64s, [-6])
        let left: [String: Attribute] = ["direction": .string("LEFT")]
        let right: [String: Attribute] = ["direction": .string("RIGHT")]
        XCTAssertEqual(try run1("BitShift", [t([64, 1, -8, 3], .i8), t([1, 7, 8, -1], .i8)], left).int64s, [-128, -128, 0, 0])
        XCTAssertEqual(try run1("BitShift", [t([-8, -8, 16, 4], .i8), t([1, 8, 2, -2], .i8)], right).int64s, [-4, -1, 4, 0])
        XCTAssertEqual(try run1("BitShift", [t([16], .u64), t([64], .u64)], right).int64s, [0])
        XCTAssertThrowsError(try run1("BitShift", [t([1], .u8), t([1], .u8)], ["direction": .string("UP")]))
    }

    func testComparisonsAndLogic() throws {
        XCTAssertEqual(try run1("Less", [t([1, 5], .u64), t([3], .u64)]).storage.bools, [true, false])
        XCTAssertEqual(try run1("GreaterOrEqual", [f32([1, .nan]), f32([1, 1])]).storage.bools, [true, false])
        let s = try run1("Equal", [Tensor(shape: [2], storage: .string(["a", "b"])), Tensor(shape: [], storage: .string(["b"]))])
        XCTAssertEqual(s.storage.bools, [false, true])
        XCTAssertThrowsError(try run1("Less", [Tensor(shape: [1], storage: .string(["a"])), Tensor(shape: [1], storage: .string(["b"]))]))
        XCTAssertEqual(try run1("Xor", [Tensor([true, false], shape: [2]), Tensor([true], shape: [1])]).storage.bools, [false, true])
    }

    func testPowMixedTypes() throws {
        XCTAssertEqual(try run1("Pow", [t([2, 3], .i32), f32([3, 0.5])]).int64s, [8, 1])
        XCTAssertEqual(try run1("Pow", [t([3, 2, -1], .i64), t([40, -1, -3], .i64)]).int64s,
                       [Int64(truncatingIfNeeded: 12157665459056928801 as UInt64), 0, -1])
        XCTAssertEqual(floats(try run1("Pow", [f32([2, 4]), t([3, 2], .u64)])), [8, 16])
        XCTAssertEqual(try infer("Pow", [TensorType(.f16, static: [2]), TensorType(.i64, static: [])]), [TensorType(.f16, static: [2])])
    }

    func testPReluBroadcastsSlope() throws {
        let r = try run1("PRelu", [f32([-1, 2, -3, 4], [2, 2]), f32([10, 100], [2])])
        XCTAssertEqual(floats(r), [-10, 2, -30, 4])
    }

    func testVariadicOps() throws {
        let a = f32([1, .nan, 3], [3]), b = f32([2, 0, 1], [1, 3]), c = f32([10], [1])
        let mx = try run1("Max", [a, b, c])
        XCTAssertEqual(mx.shape, [1, 3])
        XCTAssertEqual(floats(mx).map { $0.isNaN ? -1 : $0 }, [10, -1, 10])
        XCTAssertEqual(floats(try run1("Min", [f32([1, 5]), f32([3, 2])])), [1, 2])
        XCTAssertEqual(floats(try run1("Sum", [f32([1, 2]), f32([3, 4]), f32([5])])), [9, 11])
        XCTAssertEqual(floats(try run1("Mean", [f32([1, 2]), f32([3, 4])])), [2, 3])
        XCTAssertEqual(floats(try run1("Mean", [f32([1, 2])])), [1, 2])
        XCTAssertEqual(try run1("Max", [t([1, 200], .u8), t([100, 2], .u8)]).int64s, [100, 200])
    }

    func testClipAcrossOpsets() throws {
        let x = f32([-5, 0, 5, .nan])
        let old = try run1("Clip", opset: 6, [x], ["min": .float(-1), "max": .float(1)])
        XCTAssertEqual(floats(old).map { $0.isNaN ? 9 : $0 }, [-1, 0, 1, 9])
        let onlyMax = try run1("Clip", opset: 13, [x, nil, f32([2], [])])
        XCTAssertEqual(floats(onlyMax).map { $0.isNaN ? 9 : $0 }, [-5, 0, 2, 9])
        // min > max gives max everywhere, like NumPy's clip.
        XCTAssertEqual(floats(try run1("Clip", [f32([0, 3]), f32([2], []), f32([1], [])])), [1, 1])
        XCTAssertEqual(try run1("Clip", [t([-100, 100], .i8), t([-3], .i8, []), nil]).int64s, [-3, 100])
        XCTAssertThrowsError(try run1("Clip", [f32([0]), f32([1, 2])]))
    }

    // MARK: Cast

    func testCastNumeric() throws {
        XCTAssertEqual(try run1("Cast", [f32([2.9, -2.9, 300, .nan])], ["to": .int(3)]).int64s, [2, -2, 44, 0])
        XCTAssertEqual(try run1("Cast", [f32([0, -0.5, .nan])], ["to": .int(9)]).storage.bools, [false, true, true])
        XCTAssertEqual(try run1("Cast", [t([-1], .i64)], ["to": .int(4)]).int64s, [65535])
        XCTAssertEqual(try run1("Cast", [t([18446744073709551615], .u64)], ["to": .int(11)]).doubles, [18446744073709551615])
        // f64 → f16 rounds once: 1 + 2^-11 + 2^-40 lies just above the halfway point between two halves.
        let justAbove = 1 + 0x1p-11 + 0x1p-40
        let h = try run1("Cast", [t([justAbove], .f64)], ["to": .int(10)])
        XCTAssertEqual(h.storage.halfBits, [floatToHalf(1 + 0x1p-10)])
        XCTAssertEqual(try run1("Cast", [t([1, 2], .f64)], ["to": .int(16)]).dtype, .bf16)
        // Opset 1 names the type.
        XCTAssertEqual(try run1("Cast", opset: 1, [f32([1.5])], ["to": .string("DOUBLE")]).doubles, [1.5])
        XCTAssertThrowsError(try run1("Cast", [f32([1])], ["to": .int(17)])) { error in
            XCTAssertTrue("\(error)".contains("unsupported"))
        }
        let like = try run1("CastLike", [f32([1.7]), t([0], .i32)])
        XCTAssertEqual(like.dtype, .i32)
        XCTAssertEqual(like.int64s, [1])
    }

    func testCastStrings() throws {
        let s = try run1("Cast", [f32([0.1, 3, 1e-5, 123456789, -0.0, .infinity, .nan, 1e-4, 999999])], ["to": .int(8)])
        XCTAssertEqual(s.storage.strings, ["0.1", "3.0", "1e-05", "1.2345679e+08", "-0.0", "inf", "nan", "1e-04", "999999.0"])
        let d = try run1("Cast", [t([0.1, 1e15, 1e16, 5e-324], .f64)], ["to": .int(8)])
        XCTAssertEqual(d.storage.strings, ["0.1", "1000000000000000.0", "1e+16", "5e-324"])
        let h = try run1("Cast", [t([0.1, 999, 1000], .f16)], ["to": .int(8)])
        XCTAssertEqual(h.storage.strings, ["0.1", "999.0", "1e+03"])
        XCTAssertEqual(try run1("Cast", [t([-5, 7], .i8)], ["to": .int(8)]).storage.strings, ["-5", "7"])
        XCTAssertEqual(try run1("Cast", [Tensor([true], shape: [1])], ["to": .int(8)]).storage.strings, ["True"])

        let text = Tensor(shape: [6], storage: .string(["1.5", "INF", "-inf", "NaN", " 2 ", "+3"]))
        let f = floats(try run1("Cast", [text], ["to": .int(1)]))
        XCTAssertEqual(f[0], 1.5); XCTAssertEqual(f[1], .infinity); XCTAssertEqual(f[2], -.infinity)
        XCTAssertTrue(f[3].isNaN); XCTAssertEqual(Array(f[4...]), [2, 3])
        let ints = Tensor(shape: [3], storage: .string(["12", "-3", "9223372036854775807"]))
        XCTAssertEqual(try run1("Cast", [ints], ["to": .int(7)]).int64s, [12, -3, Int64.max])
        XCTAssertEqual(try run1("Cast", [Tensor(shape: [1], storage: .string(["2.7"]))], ["to": .int(6)]).int64s, [2])
        XCTAssertThrowsError(try run1("Cast", [Tensor(shape: [1], storage: .string(["abc"]))], ["to": .int(1)]))
    }

    // MARK: Quantization

    func testQuantizeLinear() throws {
        let x = f32([0, 2, 3, 1000, -254, 5], [2, 3])
        let q = try run1("QuantizeLinear", [x, f32([2], []), t([128], .u8, [])])
        XCTAssertEqual(q.dtype, .u8)
        XCTAssertEqual(q.int64s, [128, 129, 130, 255, 1, 130]) // 1.5 → 2, 2.5 → 2 (half to even)
        // Per axis (axis 1) with int8.
        let perAxis = try run1("QuantizeLinear", [x, f32([1, 2, 4]), t([0, 0, 0], .i8)])
        XCTAssertEqual(perAxis.int64s, [0, 1, 1, 127, -127, 1])
        // Blocked along axis 1 with blocks of 2: scales shape [2, 2].
        let blocked = try run1("QuantizeLinear", [x, f32([1, 10, 2, 100], [2, 2])], ["block_size": .int(2), "axis": .int(1)])
        XCTAssertEqual(blocked.int64s, [0, 2, 0, 255, 0, 0])
        // No zero point: output_dtype chooses the type (opset 21+), uint8 by default.
        XCTAssertEqual(try run1("QuantizeLinear", [f32([-300]), f32([1], [])], ["output_dtype": .int(5)]).dtype, .i16)
        XCTAssertThrowsError(try run1("QuantizeLinear", [x, f32([1, 2])]))
    }

    func testDequantizeLinear() throws {
        let x = t([0, 3, 128, 255], .u8, [2, 2])
        let y = try run1("DequantizeLinear", [x, f32([0.5, 2]), t([128, 0], .u8)], ["axis": .int(1)])
        XCTAssertEqual(floats(y), [-64, 6, 0, 510])
        let h = try run1("DequantizeLinear", [t([-2, 4], .i8), t([0.5], .f16, [])])
        XCTAssertEqual(h.dtype, .f16)
        XCTAssertEqual(h.doubles, [-1, 2])
        XCTAssertThrowsError(try run1("DequantizeLinear", [x, f32([1], []), t([0], .i8, [])]))
    }

    func testDynamicQuantizeLinear() throws {
        let r = try run("DynamicQuantizeLinear", [f32([0, 2, -3, -2.5, 1.34, 0.5])], outputs: 3)
        XCTAssertEqual(floats(r[1])[0], 5 / 255, accuracy: 1e-7)
        XCTAssertEqual(r[2].int64s, [153])
        XCTAssertEqual(r[0].int64s, [153, 255, 0, 26, 221, 179])
    }

    // MARK: Robustness

    func testInconsistentOperandIsAnError() throws {
        let broken = Tensor(shape: [5], storage: .f32([1, 2]))
        XCTAssertThrowsError(try run1("Add", [broken, f32([1])]))
        XCTAssertThrowsError(try run1("Relu", [broken]))
    }

    func testEveryDefinitionHasAscendingVersions() {
        var seen = Set<String>()
        for d in ElementwiseOps.all {
            XCTAssertTrue(seen.insert(d.name.type).inserted, "duplicate \(d.name)")
            XCTAssertEqual(d.sinceVersions, d.sinceVersions.sorted(), "\(d.name)")
            XCTAssertLessThanOrEqual(d.sinceVersions.last ?? 99, 28)
        }
    }
}

private extension TensorStorage {
    var bools: [Bool]? { if case .bool(let v) = self { return v } else { return nil } }
    var strings: [String]? { if case .string(let v) = self { return v } else { return nil } }
    var halfBits: [UInt16]? { if case .f16(let v) = self { return v } else { return nil } }
}
