import XCTest
import GLMCIR
@testable import GLMCOps

final class ReductionOpsTests: XCTestCase {
    // MARK: Helpers

    private func run(_ op: String, opset: Int = 18, _ inputs: [Tensor?], _ attrs: [String: Attribute] = [:],
                     outputs: Int = 1, file: StaticString = #filePath, line: UInt = #line) throws -> [Tensor] {
        let def = try XCTUnwrap(OpRegistry.definition(of: OpName(op)), "no definition of \(op)", file: file, line: line)
        let ctx = EvalContext(op: OpName(op), opset: opset, attributes: attrs, outputCount: outputs, inputs: inputs)
        let result = try def.evaluate(ctx)
        XCTAssertEqual(result.count, outputs, file: file, line: line)
        return result
    }

    private func infer(_ op: String, opset: Int = 18, _ types: [TensorType?], _ attrs: [String: Attribute] = [:],
                       constants: [TensorData?] = [], outputs: Int = 1) throws -> [TensorType] {
        let def = try XCTUnwrap(OpRegistry.definition(of: OpName(op)))
        return try def.infer(InferenceContext(op: OpName(op), opset: opset, attributes: attrs, outputCount: outputs,
                                              inputTypes: types, constantInputs: constants))
    }

    private func f32(_ v: [Float], _ shape: [Int]) -> Tensor { Tensor(v, shape: shape) }
    private func i64(_ v: [Int64], _ shape: [Int]? = nil) -> Tensor { Tensor(v, shape: shape ?? [v.count]) }

    private func assertClose(_ t: Tensor, _ expected: [Double], shape: [Int]? = nil, tolerance: Double = 1e-5,
                             file: StaticString = #filePath, line: UInt = #line) {
        if let shape { XCTAssertEqual(t.shape, shape, file: file, line: line) }
        let got = t.doubles
        XCTAssertEqual(got.count, expected.count, "element count", file: file, line: line)
        for (g, e) in zip(got, expected) where !(g == e || abs(g - e) <= tolerance * max(1, abs(e))) {
            XCTFail("got \(got), expected \(expected)", file: file, line: line)
            return
        }
    }

    private func sym(_ dtype: DType, _ dims: [Dim]) -> TensorType { TensorType(dtype, Shape(dims)) }

    // MARK: Reduce*

    func testReduceAxesAttributeVersusInput() throws {
        let x = f32([1, 2, 3, 4, 5, 6], [2, 3])
        // Opset 11: axes attribute.
        assertClose(try run("ReduceSum", opset: 11, [x], ["axes": .ints([1]), "keepdims": .int(0)])[0], [6, 15], shape: [2])
        // Opset 13: axes input; absent axes reduce everything.
        assertClose(try run("ReduceSum", opset: 13, [x, i64([-2])])[0], [5, 7, 9], shape: [1, 3])
        assertClose(try run("ReduceSum", opset: 13, [x])[0], [21], shape: [1, 1])
        // noop_with_empty_axes returns the input unchanged.
        let noop = try run("ReduceSum", opset: 13, [x, i64([], [0])], ["noop_with_empty_axes": .int(1)])[0]
        XCTAssertEqual(noop.shape, [2, 3])
        // ReduceMean switched to an input only at 18.
        assertClose(try run("ReduceMean", opset: 17, [x], ["axes": .ints([0])])[0], [2.5, 3.5, 4.5], shape: [1, 3])
        assertClose(try run("ReduceMean", opset: 18, [x, i64([0])], ["keepdims": .int(0)])[0], [2.5, 3.5, 4.5], shape: [3])
        XCTAssertThrowsError(try run("ReduceSum", opset: 13, [x, i64([1, -1])]))
        XCTAssertThrowsError(try run("ReduceSum", opset: 13, [x, i64([2])]))
    }

    func testReduceKinds() throws {
        let x = f32([1, -2, 3, -4], [2, 2])
        let axes = i64([1])
        func r(_ op: String) throws -> Tensor { try run(op, [x, axes], ["keepdims": .int(0)])[0] }
        assertClose(try r("ReduceMax"), [1, 3])
        assertClose(try r("ReduceMin"), [-2, -4])
        assertClose(try r("ReduceProd"), [-2, -12])
        assertClose(try r("ReduceL1"), [3, 7])
        assertClose(try r("ReduceL2"), [Double(5).squareRoot(), 5])
        assertClose(try r("ReduceSumSquare"), [5, 25])
        assertClose(try run("ReduceLogSum", [f32([1, 2, 3, 4], [2, 2]), axes])[0], [log(3), log(7)])
        // Log-sum-exp stays finite for large inputs.
        let big = try run("ReduceLogSumExp", [f32([1000, 1000], [2]), i64([0])])[0]
        assertClose(big, [1000 + log(2)], shape: [1])
    }

    func testReduceEmptySetIdentities() throws {
        let empty = f32([], [2, 0, 4])
        let axes = i64([1])
        assertClose(try run("ReduceSum", [empty, axes])[0], Array(repeating: 0, count: 8), shape: [2, 1, 4])
        assertClose(try run("ReduceProd", [empty, axes])[0], Array(repeating: 1, count: 8))
        XCTAssertEqual(try run("ReduceMax", [empty, axes])[0].doubles, Array(repeating: -.infinity, count: 8))
        XCTAssertEqual(try run("ReduceLogSumExp", [empty, axes])[0].doubles, Array(repeating: -.infinity, count: 8))
        let emptyInt = Tensor(shape: [0, 2], storage: .i32([]))
        let maxInt = try run("ReduceMax", opset: 20, [emptyInt, i64([0])])[0]
        guard case .i32(let v) = maxInt.storage else { return XCTFail("dtype changed") }
        XCTAssertEqual(v, [Int32.min, Int32.min])
        let minBool = try run("ReduceMin", opset: 20, [Tensor([Bool](), shape: [0]), i64([0])])[0]
        guard case .bool(let b) = minBool.storage else { return XCTFail("dtype changed") }
        XCTAssertEqual(b, [true])
        // A non-reduced zero-size axis gives an empty result.
        XCTAssertEqual(try run("ReduceSum", [empty, i64([2])])[0].shape, [2, 0, 1])
    }

    func testReduceIntegersAreExact() throws {
        let big: Int64 = 1 << 60
        let s = try run("ReduceSum", [i64([big, 1, 2]), i64([0])], ["keepdims": .int(0)])[0]
        XCTAssertEqual(s.int64s, [big + 3])
        XCTAssertEqual(s.dtype, .i64)
        let u = Tensor(shape: [3], storage: .u64([UInt64.max, 5, 1 << 63]))
        guard case .u64(let m) = try run("ReduceMax", [u, i64([0])])[0].storage else { return XCTFail() }
        XCTAssertEqual(m, [UInt64.max])
        let bools = Tensor([true, false, false, false], shape: [2, 2])
        guard case .bool(let any) = try run("ReduceMax", opset: 20, [bools, i64([1])], ["keepdims": .int(0)])[0].storage else {
            return XCTFail()
        }
        XCTAssertEqual(any, [true, false])
        XCTAssertThrowsError(try run("ReduceSum", [bools, i64([1])]))
    }

    func testReduceInference() throws {
        let x = sym(.f32, [.symbol("b"), .known(3), .known(4)])
        let out = try infer("ReduceMean", [x, TensorType(.i64, static: [1])], ["keepdims": .int(0)],
                            constants: [nil, i64([-1]).tensorData])
        XCTAssertEqual(out, [sym(.f32, [.symbol("b"), .known(3)])])
        let kept = try infer("ReduceSum", opset: 11, [x], ["axes": .ints([0])])
        XCTAssertEqual(kept, [sym(.f32, [.known(1), .known(3), .known(4)])])
        // Axes only known at run time: rank survives with keepdims, sizes do not.
        let unknown = try infer("ReduceMax", [x, TensorType(.i64, static: [1])])
        XCTAssertEqual(unknown, [sym(.f32, [.unknown, .unknown, .unknown])])
        let noop = try infer("ReduceSum", opset: 13, [x], ["noop_with_empty_axes": .int(1)])
        XCTAssertEqual(noop, [x])
    }

    // MARK: ArgMax / ArgMin

    func testArgMaxArgMin() throws {
        let x = f32([2, 1, 2, 3, 5, 5], [2, 3])
        XCTAssertEqual(try run("ArgMax", opset: 13, [x], ["axis": .int(1)])[0].int64s, [0, 1])
        XCTAssertEqual(try run("ArgMax", opset: 13, [x], ["axis": .int(1), "select_last_index": .int(1)])[0].int64s, [2, 2])
        let amin = try run("ArgMin", opset: 13, [x], ["axis": .int(0), "keepdims": .int(0)])[0]
        XCTAssertEqual(amin.int64s, [0, 0, 0])
        XCTAssertEqual(amin.shape, [3])
        let t = try infer("ArgMin", [sym(.i32, [.symbol("n"), .known(7)])], ["axis": .int(-1)])
        XCTAssertEqual(t, [sym(.i64, [.symbol("n"), .known(1)])])
    }

    // MARK: Softmax family

    func testSoftmaxAxisSemanticsChangeAt13() throws {
        let x = f32([0, 1, 2, 3], [2, 2])
        let x3 = f32([0, 1, 2, 3, 4, 5, 6, 7], [2, 2, 2])
        // Opset 13: only the last axis.
        let s13 = try run("Softmax", opset: 13, [x3])[0]
        let e = 1 / (1 + exp(-1.0))
        assertClose(s13, [1 - e, e, 1 - e, e, 1 - e, e, 1 - e, e])
        // Opset 11, axis 1: rows are the flattened [2, 2] trailing block.
        let s11 = try run("Softmax", opset: 11, [x3])[0].doubles
        XCTAssertEqual(s11[0..<4].reduce(0, +), 1, accuracy: 1e-6)
        XCTAssertEqual(s11[3] / s11[0], exp(3.0), accuracy: 1e-3)
        let ls = try run("LogSoftmax", opset: 13, [x], ["axis": .int(0)])[0]
        assertClose(ls, [-2 - log(1 + exp(-2.0)), -2 - log(1 + exp(-2.0)), -log(1 + exp(-2.0)), -log(1 + exp(-2.0))])
        // Hardmax takes the first of equal maxima.
        let h = try run("Hardmax", opset: 13, [f32([3, 3, 1, 0, 2, 2], [2, 3])])[0]
        assertClose(h, [1, 0, 0, 0, 1, 0])
        XCTAssertThrowsError(try run("Softmax", [i64([1, 2])]))
    }

    // MARK: CumSum / CumProd / TopK

    func testCumulative() throws {
        let x = Tensor(shape: [2, 3], storage: .i32([1, 2, 3, 4, 5, 6]))
        let axis = i64([1], [])
        XCTAssertEqual(try run("CumSum", opset: 14, [x, axis])[0].int64s, [1, 3, 6, 4, 9, 15])
        XCTAssertEqual(try run("CumSum", opset: 14, [x, axis], ["exclusive": .int(1), "reverse": .int(1)])[0].int64s,
                       [5, 3, 0, 11, 6, 0])
        XCTAssertEqual(try run("CumProd", opset: 26, [x, i64([0])], ["exclusive": .int(1)])[0].int64s, [1, 1, 1, 1, 2, 3])
        assertClose(try run("CumSum", opset: 11, [f32([1, 2, 3], [3]), i64([-1])], ["reverse": .int(1)])[0], [6, 5, 3])
    }

    func testTopK() throws {
        let x = f32([1, 3, 3, 2, 5, 4, 4, 0], [2, 4])
        let r = try run("TopK", opset: 11, [x, i64([3])], outputs: 2)
        assertClose(r[0], [3, 3, 2, 5, 4, 4], shape: [2, 3])
        XCTAssertEqual(r[1].int64s, [1, 2, 3, 0, 1, 2])
        let small = try run("TopK", opset: 11, [x, i64([2])], ["largest": .int(0)], outputs: 2)
        XCTAssertEqual(small[1].int64s, [0, 3, 3, 1])
        // Opset 1 reads k from an attribute.
        let old = try run("TopK", opset: 1, [x], ["k": .int(1), "axis": .int(0)], outputs: 2)
        assertClose(old[0], [5, 4, 4, 2], shape: [1, 4])
        let u = Tensor(shape: [3], storage: .u64([1, UInt64.max, 7]))
        guard case .u64(let uv) = try run("TopK", opset: 24, [u, i64([2])], outputs: 2)[0].storage else { return XCTFail() }
        XCTAssertEqual(uv, [UInt64.max, 7])
        XCTAssertThrowsError(try run("TopK", opset: 11, [x, i64([5])], outputs: 2))
        let t = try infer("TopK", opset: 11, [sym(.f32, [.symbol("b"), .known(10)]), TensorType(.i64, static: [1])],
                          constants: [nil, i64([3]).tensorData], outputs: 2)
        XCTAssertEqual(t, [sym(.f32, [.symbol("b"), .known(3)]), sym(.i64, [.symbol("b"), .known(3)])])
    }

    // MARK: Normalizations

    func testBatchAndInstanceNormalization() throws {
        let x = f32([1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 2, 2])
        let one = f32([1, 1], [2]), zero = f32([0, 0], [2])
        let bn = try run("BatchNormalization", opset: 15,
                         [x, f32([1, 2], [2]), f32([0, 1], [2]), f32([2, 6], [2]), f32([1, 4], [2])], ["epsilon": .float(0)])[0]
        assertClose(bn, [-1, 0, 1, 2, 0, 1, 2, 3])
        let train = try run("BatchNormalization", opset: 15, [x, one, zero, zero, one],
                            ["training_mode": .int(1), "momentum": .float(0.5), "epsilon": .float(0)], outputs: 3)
        assertClose(train[1], [1.25, 3.25])   // 0.5 * 0 + 0.5 * mean
        assertClose(train[2], [1.125, 1.125]) // 0.5 * 1 + 0.5 * 1.25
        let inorm = try run("InstanceNormalization", [x, one, zero], ["epsilon": .float(0)])[0]
        let s = Double(1.25).squareRoot()
        assertClose(inorm, [-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s, -1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s])
    }

    func testLayerAndRMSNormalization() throws {
        let x = f32([1, 2, 3, 4, 2, 2, 2, 2], [2, 4])
        let r = try run("LayerNormalization", opset: 17, [x, f32([1, 1, 1, 2], [4]), f32([0, 0, 0, 1], [4])],
                        ["epsilon": .float(1e-9)], outputs: 3)
        let s = Double(1.25).squareRoot()
        assertClose(r[0], [-1.5 / s, -0.5 / s, 0.5 / s, 3 / s + 1, 0, 0, 0, 1])
        assertClose(r[1], [2.5, 2], shape: [2, 1])
        XCTAssertEqual(r[2].dtype, .f32)
        let t = try infer("LayerNormalization", opset: 17, [sym(.f16, [.symbol("b"), .known(4), .known(8)]),
                                                             TensorType(.f16, static: [8])], ["axis": .int(-2)], outputs: 3)
        XCTAssertEqual(t[1], sym(.f32, [.symbol("b"), .known(1), .known(1)]))
        let rms = try run("RMSNormalization", opset: 23, [f32([3, 4], [1, 2]), f32([1, 2], [2])], ["epsilon": .float(0)])[0]
        let d = Double(12.5).squareRoot()
        assertClose(rms, [3 / d, 8 / d])
    }

    func testGroupNormalizationVersions() throws {
        let x = f32([1, 3, 5, 7, 0, 0, 1, 1], [1, 4, 2])
        // Opset 18: one scale/bias per group; 21: one per channel.
        let g18 = try run("GroupNormalization", opset: 18, [x, f32([1, 2], [2]), f32([0, 1], [2])],
                          ["num_groups": .int(2), "epsilon": .float(0)])[0]
        let s = Double(5).squareRoot()
        assertClose(g18, [-3 / s, -1 / s, 1 / s, 3 / s, -1, -1, 3, 3])
        let g21 = try run("GroupNormalization", opset: 21, [x, f32([1, 1, 2, 2], [4]), f32([0, 0, 1, 1], [4])],
                          ["num_groups": .int(2), "epsilon": .float(0)])[0]
        assertClose(g21, g18.doubles)
        XCTAssertThrowsError(try run("GroupNormalization", opset: 21, [x, f32([1], [1]), f32([1], [1])],
                                     ["num_groups": .int(3)]))
    }

    func testLpMvnLrn() throws {
        assertClose(try run("LpNormalization", [f32([3, 4, 0, 0], [2, 2])])[0], [0.6, 0.8, 0, 0])
        assertClose(try run("LpNormalization", [f32([1, -3], [2])], ["p": .int(1)])[0], [0.25, -0.75])
        let mvn = try run("MeanVarianceNormalization", opset: 13, [f32([1, 3], [2])], ["axes": .ints([0])])[0]
        assertClose(mvn, [-1, 1])
        let lrn = try run("LRN", opset: 13, [f32([1, 2], [1, 2, 1, 1])], ["size": .int(3), "alpha": .float(3), "beta": .float(1)])[0]
        assertClose(lrn, [1.0 / 6, 2.0 / 6])
    }

    // MARK: Losses

    func testLosses() throws {
        // The NegativeLogLikelihoodLoss examples of the ONNX spec: N, C, d1 = 2, 3, 2.
        let x = f32([1, 2, 2, 2, 3, 2, 0, 1, 2, 2, 1, 2], [2, 3, 2])
        let target = i64([2, 1, 0, 2], [2, 2])
        let none = try run("NegativeLogLikelihoodLoss", opset: 13, [x, target], ["reduction": .string("none")])[0]
        assertClose(none, [-3, -2, 0, -2], shape: [2, 2])
        let weight = f32([0.2, 0.3, 0.1], [3])
        assertClose(try run("NegativeLogLikelihoodLoss", opset: 13, [x, target, weight], ["reduction": .string("sum")])[0],
                    [-1.1], shape: [])
        // Mean divides by the weights used; ignored targets count for nothing.
        let mean = try run("NegativeLogLikelihoodLoss", opset: 22, [x, target, weight], ["ignore_index": .int(1)])[0]
        assertClose(mean, [(-0.3 - 0 - 0.2) / 0.4])
        XCTAssertThrowsError(try run("NegativeLogLikelihoodLoss", opset: 13, [x, i64([3, 1, 0, 2], [2, 2])]))
        // SoftmaxCrossEntropyLoss: equal scores give log(C) per sample; log_prob is the log-softmax.
        let sce = try run("SoftmaxCrossEntropyLoss", opset: 13, [f32([0, 0, 5, 5], [2, 2]), i64([0, 1])], outputs: 2)
        assertClose(sce[0], [log(2)], shape: [])
        assertClose(sce[1], Array(repeating: -log(2), count: 4), shape: [2, 2])
        let t = try infer("SoftmaxCrossEntropyLoss", opset: 13, [sym(.f32, [.symbol("n"), .known(3)]), sym(.i64, [.symbol("n")])],
                          ["reduction": .string("none")], outputs: 2)
        XCTAssertEqual(t, [sym(.f32, [.symbol("n")]), sym(.f32, [.symbol("n"), .known(3)])])
    }

    // MARK: MatMul / Gemm

    /// Straightforward reference product of row-major matrices.
    private func naive(_ a: [Float], _ b: [Float], m: Int, k: Int, n: Int) -> [Double] {
        (0..<m * n).map { idx in (0..<k).reduce(0.0) { $0 + Double(a[idx / n * k + $1]) * Double(b[$1 * n + idx % n]) } }
    }

    func testMatMulShapesAndBroadcasting() throws {
        let a = f32([1, 2, 3, 4, 5, 6], [2, 3]), b = f32([1, 0, 0, 1, 1, 1], [3, 2])
        assertClose(try run("MatMul", opset: 13, [a, b])[0], [4, 5, 10, 11], shape: [2, 2])
        // 1-D operands are promoted and the promoted axis is removed again.
        assertClose(try run("MatMul", opset: 13, [f32([1, 1], [2]), a])[0], [5, 7, 9], shape: [3])
        assertClose(try run("MatMul", opset: 13, [a, f32([1, 1, 1], [3])])[0], [6, 15], shape: [2])
        assertClose(try run("MatMul", opset: 13, [f32([1, 2], [2]), f32([3, 4], [2])])[0], [11], shape: [])
        // Batch broadcasting: [2,1,2,3] x [3,3,2] -> [2,3,2,2].
        let batchA = f32((0..<12).map(Float.init), [2, 1, 2, 3])
        let batchB = f32((0..<18).map(Float.init), [3, 3, 2])
        let r = try run("MatMul", opset: 13, [batchA, batchB])[0]
        XCTAssertEqual(r.shape, [2, 3, 2, 2])
        let av = (0..<12).map(Float.init), bv = (0..<18).map(Float.init)
        var expected: [Double] = []
        for i in 0..<2 {
            for j in 0..<3 {
                expected += naive(Array(av[(i * 6)..<(i * 6 + 6)]), Array(bv[(j * 6)..<(j * 6 + 6)]), m: 2, k: 3, n: 2)
            }
        }
        assertClose(r, expected)
        XCTAssertThrowsError(try run("MatMul", opset: 13, [a, a]))
        let t = try infer("MatMul", opset: 13, [sym(.f32, [.symbol("b"), .known(4), .known(8)]), TensorType(.f32, static: [8, 16])])
        XCTAssertEqual(t, [sym(.f32, [.symbol("b"), .known(4), .known(16)])])
    }

    func testMatMulLargeAndOtherTypes() throws {
        // Sizes that exercise the blocked kernel's edges (m not a multiple of 4, n and k beyond a block).
        let (m, k, n) = (7, 300, 530)
        let av = (0..<m * k).map { Float(($0 * 7919) % 13) - 6 }, bv = (0..<k * n).map { Float(($0 * 104729) % 11) - 5 }
        assertClose(try run("MatMul", opset: 13, [f32(av, [m, k]), f32(bv, [k, n])])[0], naive(av, bv, m: m, k: k, n: n))
        let ia = i64([1, 2, 3, 4], [2, 2])
        let ir = try run("MatMul", opset: 13, [ia, ia])[0]
        XCTAssertEqual(ir.int64s, [7, 10, 15, 22])
        XCTAssertEqual(ir.dtype, .i64)
        let h = Tensor(shape: [1, 2], storage: .f16([1, 2].map { floatToHalf($0) }))
        let hb = Tensor(shape: [2, 1], storage: .f16([3, 4].map { floatToHalf($0) }))
        let hr = try run("MatMul", opset: 13, [h, hb])[0]
        XCTAssertEqual(hr.dtype, .f16)
        assertClose(hr, [11])
    }

    func testGemm() throws {
        let a = f32([1, 2, 3, 4], [2, 2]), b = f32([1, 0, 1, 1], [2, 2])
        // transA, transB, alpha, beta, C broadcast from [2].
        let y = try run("Gemm", opset: 13, [a, b, f32([10, 20], [2])],
                        ["transA": .int(1), "transB": .int(1), "alpha": .float(2), "beta": .float(0.5)])[0]
        // A' = [[1,3],[2,4]], B' = [[1,1],[0,1]]; A'B' = [[1,4],[2,6]].
        assertClose(y, [2 + 5, 8 + 10, 4 + 5, 12 + 10], shape: [2, 2])
        assertClose(try run("Gemm", opset: 11, [a, b])[0], [3, 2, 7, 4])
        let scalarC = try run("Gemm", opset: 13, [a, b, f32([1], [])])[0]
        assertClose(scalarC, [4, 3, 8, 5])
        let ints = try run("Gemm", opset: 13, [i64([1, 2, 3, 4], [2, 2]), i64([1, 0, 0, 1], [2, 2]), i64([1], [1])])[0]
        XCTAssertEqual(ints.int64s, [2, 3, 4, 5])
        XCTAssertThrowsError(try run("Gemm", opset: 13, [a, b, f32([1, 2, 3], [3])]))
        // transB with few rows (dot-product kernel) and with many (transposition), k not a multiple of 8.
        for m in [3, 20] {
            let (k, n) = (19, 5)
            let av = (0..<m * k).map { Float($0 % 7) - 3 }, btv = (0..<n * k).map { Float($0 % 5) - 2 }
            let bv = (0..<k * n).map { btv[($0 % n) * k + $0 / n] }
            assertClose(try run("Gemm", opset: 13, [f32(av, [m, k]), f32(btv, [n, k])], ["transB": .int(1)])[0],
                        naive(av, bv, m: m, k: k, n: n))
        }
        let t = try infer("Gemm", opset: 13, [sym(.f32, [.symbol("n"), .known(5)]), TensorType(.f32, static: [7, 5])],
                          ["transB": .int(1)])
        XCTAssertEqual(t, [sym(.f32, [.symbol("n"), .known(7)])])
    }

    func testQuantizedProducts() throws {
        let a = Tensor(shape: [2, 2], storage: .u8([11, 12, 13, 14]))
        let b = Tensor(shape: [2, 2], storage: .u8([1, 2, 3, 4]))
        let r = try run("MatMulInteger", opset: 10, [a, b, Tensor(shape: [], storage: .u8([10])),
                                                     Tensor(shape: [2], storage: .u8([1, 0]))])[0]
        // (a - 10) · (b - [1, 0] per column) = [[1,2],[3,4]] · [[0,2],[2,4]].
        XCTAssertEqual(r.dtype, .i32)
        XCTAssertEqual(r.int64s, [4, 10, 8, 22])
        // The ONNX QLinearMatMul example (uint8).
        let qa = Tensor(shape: [2, 4], storage: .u8([208, 236, 0, 238, 3, 214, 255, 29]))
        let qb = Tensor(shape: [4, 3], storage: .u8([152, 51, 244, 60, 26, 255, 0, 127, 246, 127, 254, 247]))
        let q = try run("QLinearMatMul", opset: 21, [
            qa, f32([0.0066], [1]), Tensor(shape: [1], storage: .u8([113])),
            qb, f32([0.00705], [1]), Tensor(shape: [1], storage: .u8([114])),
            f32([0.0107], [1]), Tensor(shape: [1], storage: .u8([118])),
        ])[0]
        XCTAssertEqual(q.dtype, .u8)
        XCTAssertEqual(q.int64s, [168, 115, 255, 1, 66, 151])
    }

    // MARK: Einsum / Det

    func testEinsum() throws {
        let m = f32([1, 2, 3, 4], [2, 2]), v = f32([1, 10], [2])
        func e(_ eq: String, _ inputs: [Tensor]) throws -> Tensor { try run("Einsum", opset: 12, inputs, ["equation": .string(eq)])[0] }
        assertClose(try e("ij,jk->ik", [m, m]), [7, 10, 15, 22], shape: [2, 2])
        assertClose(try e("ij,jk", [m, m]), [7, 10, 15, 22], shape: [2, 2])   // implicit output
        assertClose(try e("ii", [m]), [5], shape: [])                        // trace
        assertClose(try e("ii->i", [m]), [1, 4], shape: [2])                 // diagonal
        assertClose(try e("ji", [m]), [1, 3, 2, 4], shape: [2, 2])           // implicit transpose
        assertClose(try e("i,j->ij", [v, v]), [1, 10, 10, 100])              // outer product
        assertClose(try e("i, i", [v, v]), [101], shape: [])                 // spaces, inner product
        let batch = f32((0..<8).map(Float.init), [2, 2, 2])
        assertClose(try e("...ij,...jk->...ik", [batch, m]), [3, 4, 11, 16, 19, 28, 27, 40], shape: [2, 2, 2])
        assertClose(try e("bij->b", [batch]), [6, 22], shape: [2])
        XCTAssertEqual(try e("ij,jk->ik", [i64([1, 2, 3, 4], [2, 2]), i64([1, 0, 0, 1], [2, 2])]).int64s, [1, 2, 3, 4])
        XCTAssertThrowsError(try e("ij,jk->ik", [m, v]))
        XCTAssertThrowsError(try e("ij->k", [m]))
        let t = try infer("Einsum", opset: 12, [TensorType(.f32, static: [3, 4]), TensorType(.f32, static: [4, 5])],
                          ["equation": .string("ij,jk->ki")])
        XCTAssertEqual(t, [TensorType(.f32, static: [5, 3])])
        let attention = try infer("Einsum", opset: 12, [sym(.f32, [.symbol("b"), .known(4), .known(8)]),
                                                       sym(.f32, [.symbol("b"), .unknown, .known(8)])],
                                  ["equation": .string("bid,bjd->bij")])
        XCTAssertEqual(attention, [sym(.f32, [.symbol("b"), .known(4), .unknown])])
    }

    func testDet() throws {
        assertClose(try run("Det", opset: 11, [f32([1, 2, 3, 4], [2, 2])])[0], [-2], shape: [])
        let batch = f32([2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 1, 0, 1, 0, 0, 0, 0, 1], [2, 3, 3])
        assertClose(try run("Det", opset: 22, [batch])[0], [24, -1], shape: [2])
        XCTAssertThrowsError(try run("Det", opset: 22, [f32([1, 2], [1, 2])]))
    }
}
