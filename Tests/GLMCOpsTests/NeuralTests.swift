import XCTest
import GLMCIR
import GLMCOps

/// Unit tests for NeuralOps: kernels against naive references, opset differences, dtype families
/// and shape inference with symbolic dims. (The conformance suite covers the ONNX test cases.)
final class NeuralOpsTests: XCTestCase {
    // MARK: Helpers

    private func definition(_ op: String) throws -> OpDefinition {
        try XCTUnwrap(OpRegistry.definition(of: OpName(op)), "no definition of \(op)")
    }

    private func run(_ op: String, opset: Int = 22, _ inputs: [Tensor?], _ attrs: [String: Attribute] = [:],
                     outputs: Int = 1) throws -> [Tensor] {
        let ctx = EvalContext(op: OpName(op), opset: opset, attributes: attrs, outputCount: outputs, inputs: inputs)
        return try definition(op).evaluate(ctx)
    }

    private func infer(_ op: String, opset: Int = 22, _ types: [TensorType?], _ attrs: [String: Attribute] = [:],
                       outputs: Int = 1, constants: [TensorData?] = []) throws -> [TensorType] {
        let ctx = InferenceContext(op: OpName(op), opset: opset, attributes: attrs, outputCount: outputs,
                                   inputTypes: types, constantInputs: constants)
        return try definition(op).infer(ctx)
    }

    /// Deterministic pseudo-random values in [-1, 1).
    private func values(_ count: Int, seed: Int) -> [Float] {
        var state = UInt64(seed) &* 6364136223846793005 &+ 1442695040888963407
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int(state >> 40) % 2000 - 1000) / 1000
        }
    }

    private func assertClose(_ a: [Double], _ b: [Double], tolerance: Double = 1e-4,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, file: file, line: line)
        for (i, (x, y)) in zip(a, b).enumerated() where abs(x - y) > tolerance * max(1, abs(y)) {
            XCTFail("element \(i): \(x) vs \(y)", file: file, line: line)
            return
        }
    }

    private func sym(_ dims: [Dim]) -> Shape { Shape(dims) }

    private func f32(_ v: [Float], shape: [Int]) -> Tensor { Tensor(v, shape: shape) }

    // MARK: Conv

    /// Direct-loop convolution of any spatial rank: the reference for the im2col + GEMM kernel.
    private func naiveConv(x: [Float], xShape: [Int], w: [Float], wShape: [Int], bias: [Float]?, group: Int,
                           strides: [Int], dilations: [Int], pads: [Int], outSpatial: [Int]) -> [Double] {
        let rank = xShape.count - 2
        let (n, c, m) = (xShape[0], xShape[1], wShape[0])
        let cg = c / group, mg = m / group
        let inSpatial = Array(xShape.dropFirst(2)), kernel = Array(wShape.dropFirst(2))
        let outPlane = outSpatial.reduce(1, *), ks = kernel.reduce(1, *), inPlane = inSpatial.reduce(1, *)
        func unravel(_ i: Int, _ sizes: [Int]) -> [Int] {
            var r = i, out = [Int](repeating: 0, count: sizes.count)
            for d in stride(from: sizes.count - 1, through: 0, by: -1) { out[d] = r % sizes[d]; r /= sizes[d] }
            return out
        }
        var y = [Double](repeating: 0, count: n * m * outPlane)
        for b in 0..<n { for oc in 0..<m { for p in 0..<outPlane {
            let o = unravel(p, outSpatial)
            var acc = Double(bias?[oc] ?? 0)
            let g = oc / mg
            for ci in 0..<cg { for kf in 0..<ks {
                let k = unravel(kf, kernel)
                var offset = 0, inside = true
                for d in 0..<rank {
                    let i = o[d] * strides[d] - pads[d] + k[d] * dilations[d]
                    if i < 0 || i >= inSpatial[d] { inside = false; break }
                    offset = offset * inSpatial[d] + i
                }
                guard inside else { continue }
                let xv = x[(b * c + g * cg + ci) * inPlane + offset]
                acc += Double(xv) * Double(w[(oc * cg + ci) * ks + kf])
            } }
            y[(b * m + oc) * outPlane + p] = acc
        } } }
        return y
    }

    func testConvMatchesDirectLoopsAcrossGroupsDilationsStridesAndRanks() throws {
        struct Case { var x: [Int]; var w: [Int]; var group: Int; var strides: [Int]; var dilations: [Int]; var pads: [Int] }
        let cases = [
            Case(x: [2, 4, 9, 11], w: [6, 2, 3, 3], group: 2, strides: [2, 1], dilations: [1, 2], pads: [1, 0, 2, 1]),
            Case(x: [1, 5, 7, 7], w: [5, 1, 3, 3], group: 5, strides: [1, 1], dilations: [1, 1], pads: [1, 1, 1, 1]),  // depthwise
            Case(x: [1, 3, 20], w: [17, 3, 4], group: 1, strides: [3], dilations: [2], pads: [2, 0]),
            Case(x: [1, 2, 5, 6, 4], w: [3, 2, 2, 3, 2], group: 1, strides: [1, 2, 1], dilations: [2, 1, 1], pads: [0, 1, 1, 1, 0, 0]),
            Case(x: [1, 19, 6, 6], w: [9, 19, 1, 1], group: 1, strides: [1, 1], dilations: [1, 1], pads: [0, 0, 0, 0]),
        ]
        for (i, tc) in cases.enumerated() {
            let x = values(tc.x.reduce(1, *), seed: i), w = values(tc.w.reduce(1, *), seed: 100 + i)
            let bias = values(tc.w[0], seed: 200 + i)
            let attrs: [String: Attribute] = ["group": .int(tc.group), "strides": .ints(tc.strides),
                                              "dilations": .ints(tc.dilations), "pads": .ints(tc.pads)]
            let y = try run("Conv", [Tensor(x, shape: tc.x), Tensor(w, shape: tc.w), Tensor(bias, shape: [tc.w[0]])], attrs)[0]
            let outSpatial = Array(y.shape.dropFirst(2))
            let rank = tc.x.count - 2
            for d in 0..<rank {
                let span = (tc.w[d + 2] - 1) * tc.dilations[d] + 1
                XCTAssertEqual(outSpatial[d], (tc.x[d + 2] + tc.pads[d] + tc.pads[rank + d] - span) / tc.strides[d] + 1)
            }
            let expected = naiveConv(x: x, xShape: tc.x, w: w, wShape: tc.w, bias: bias, group: tc.group,
                                     strides: tc.strides, dilations: tc.dilations, pads: tc.pads, outSpatial: outSpatial)
            assertClose(y.doubles, expected)
        }
    }

    func testConvComputesF64InDoubleAndF16ThroughFloat() throws {
        let x = values(2 * 3 * 5 * 5, seed: 1), w = values(4 * 3 * 3 * 3, seed: 2)
        let f32 = try run("Conv", [Tensor(x, shape: [2, 3, 5, 5]), Tensor(w, shape: [4, 3, 3, 3])])[0]
        let f64 = try run("Conv", [Tensor(doubles: x.map(Double.init), dtype: .f64, shape: [2, 3, 5, 5]),
                                   Tensor(doubles: w.map(Double.init), dtype: .f64, shape: [4, 3, 3, 3])])[0]
        XCTAssertEqual(f64.dtype, .f64)
        assertClose(f64.doubles, f32.doubles)
        let f16 = try run("Conv", [Tensor(doubles: x.map(Double.init), dtype: .f16, shape: [2, 3, 5, 5]),
                                   Tensor(doubles: w.map(Double.init), dtype: .f16, shape: [4, 3, 3, 3])])[0]
        XCTAssertEqual(f16.dtype, .f16)
        assertClose(f16.doubles, f32.doubles, tolerance: 1e-2)
    }

    func testConvAutoPadAndSymbolicInference() throws {
        let x = TensorType(.f32, sym([.symbol("batch"), .known(3), .known(224), .known(224)]))
        let w = TensorType(.f32, static: [64, 3, 7, 7])
        let out = try infer("Conv", [x, w], ["strides": .ints([2, 2]), "pads": .ints([3, 3, 3, 3])])
        XCTAssertEqual(out, [TensorType(.f32, sym([.symbol("batch"), .known(64), .known(112), .known(112)]))])
        let same = try infer("Conv", [x, w], ["strides": .ints([2, 2]), "auto_pad": .string("SAME_UPPER")])
        XCTAssertEqual(same[0].shape, sym([.symbol("batch"), .known(64), .known(112), .known(112)]))
        let unknown = TensorType(.f32, sym([.symbol("n"), .known(3), .unknown, .known(10)]))
        XCTAssertEqual(try infer("Conv", [unknown, w])[0].shape, sym([.symbol("n"), .known(64), .unknown, .known(4)]))
        // SAME_LOWER puts the odd padding at the start: a 2-wide kernel sees [pad, x0] first.
        let y = try run("Conv", [f32([1, 2, 3], shape: [1, 1, 3]), f32([1, 10], shape: [1, 1, 2])],
                        ["auto_pad": .string("SAME_LOWER")])[0]
        XCTAssertEqual(y.doubles, [10, 21, 32])
    }

    func testConvRejectsInconsistentOperands() throws {
        let x = Tensor([Float](repeating: 1, count: 12), shape: [1, 3, 2, 2])
        let w = Tensor([Float](repeating: 1, count: 8), shape: [2, 4, 1, 1])
        XCTAssertThrowsError(try run("Conv", [x, w]))
        XCTAssertThrowsError(try run("Conv", [x, Tensor([Float](repeating: 1, count: 6), shape: [2, 3, 1, 1])],
                                     ["dilations": .ints([Int.max, 1])]))
        XCTAssertThrowsError(try run("Conv", [x, Tensor([Float](repeating: 1, count: 6), shape: [2, 3, 1, 1])],
                                     ["group": .int(Int.max)]))
    }

    func testConvTransposeMatchesScatterDefinition() throws {
        // y[oc, i*s - p + k*d] += x[ic, i] * w[ic, oc, k], per group.
        let (c, m, group, n, k, s, d, p) = (4, 6, 2, 5, 3, 2, 2, 1)
        let x = values(c * n, seed: 7), w = values(c * (m / group) * k, seed: 8)
        let outSize = s * (n - 1) + 1 + (k - 1) * d + 1 - 2 * p  // output_padding 1
        var expected = [Double](repeating: 0, count: m * outSize)
        for ic in 0..<c {
            let g = ic / (c / group)
            for ocg in 0..<(m / group) {
                for i in 0..<n { for kk in 0..<k {
                    let o = i * s - p + kk * d
                    guard o >= 0 && o < outSize else { continue }
                    expected[(g * (m / group) + ocg) * outSize + o] += Double(x[ic * n + i]) * Double(w[(ic * (m / group) + ocg) * k + kk])
                } }
            }
        }
        let y = try run("ConvTranspose", [Tensor(x, shape: [1, c, n]), Tensor(w, shape: [c, m / group, k])],
                        ["group": .int(group), "strides": .ints([s]), "dilations": .ints([d]), "pads": .ints([p, p]),
                         "output_padding": .ints([1])])[0]
        XCTAssertEqual(y.shape, [1, m, outSize])
        assertClose(y.doubles, expected)
        let t = try infer("ConvTranspose", [TensorType(.f32, sym([.symbol("b"), .known(c), .known(n)])),
                                            TensorType(.f32, static: [c, m / group, k])],
                          ["group": .int(group), "output_shape": .ints([20])])
        XCTAssertEqual(t[0].shape, sym([.symbol("b"), .known(m), .known(20)]))
    }

    func testConvIntegerSubtractsZeroPoints() throws {
        let x = Tensor(shape: [1, 1, 2, 2], storage: .u8([10, 11, 12, 13]))
        let w = Tensor(shape: [1, 1, 1, 1], storage: .u8([3]))
        let y = try run("ConvInteger", opset: 10, [x, w, Tensor(shape: [], storage: .u8([10])),
                                                   Tensor(shape: [], storage: .u8([1]))])[0]
        XCTAssertEqual(y.dtype, .i32)
        XCTAssertEqual(y.int64s, [0, 2, 4, 6])
    }

    // MARK: Pooling

    func testMaxPoolIndicesStorageOrderAndInt8() throws {
        let x = Tensor(shape: [1, 1, 2, 3], storage: .i8([1, 9, 3, 4, 5, 8]))
        let rowMajor = try run("MaxPool", opset: 12, [x], ["kernel_shape": .ints([2, 2])], outputs: 2)
        XCTAssertEqual(rowMajor[0].dtype, .i8)
        XCTAssertEqual(rowMajor[0].int64s, [9, 9])
        XCTAssertEqual(rowMajor[1].int64s, [1, 1])
        let colMajor = try run("MaxPool", opset: 12, [x], ["kernel_shape": .ints([2, 2]), "storage_order": .int(1)],
                               outputs: 2)
        XCTAssertEqual(colMajor[1].int64s, [2, 2])
        let types = try infer("MaxPool", [TensorType(.f32, sym([.symbol("n"), .known(8), .known(7), .unknown]))],
                              ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "ceil_mode": .int(1)], outputs: 2)
        XCTAssertEqual(types, [TensorType(.f32, sym([.symbol("n"), .known(8), .known(3), .unknown])),
                               TensorType(.i64, sym([.symbol("n"), .known(8), .known(3), .unknown]))])
    }

    func testAveragePoolPaddingCountAndDilationsByOpset() throws {
        let x = f32([1, 2, 3, 4], shape: [1, 1, 4])
        let attrs: [String: Attribute] = ["kernel_shape": .ints([2]), "pads": .ints([1, 1]), "strides": .ints([2])]
        XCTAssertEqual(try run("AveragePool", [x], attrs)[0].doubles, [1, 2.5, 4])
        var withPad = attrs
        withPad["count_include_pad"] = .int(1)
        XCTAssertEqual(try run("AveragePool", [x], withPad)[0].doubles, [0.5, 2.5, 2])
        // Dilations exist from AveragePool-19 only.
        let dilated: [String: Attribute] = ["kernel_shape": .ints([2]), "dilations": .ints([2])]
        XCTAssertEqual(try run("AveragePool", opset: 19, [x], dilated)[0].doubles, [2, 3])
        XCTAssertEqual(try run("AveragePool", opset: 11, [x], dilated)[0].doubles, [1.5, 2.5, 3.5])
    }

    func testGlobalPoolsAndLpPool() throws {
        let x = f32([3, -4, 1, 2, 0, 0], shape: [1, 2, 3])
        XCTAssertEqual(try run("GlobalMaxPool", [x])[0].doubles, [3, 2])
        XCTAssertEqual(try run("GlobalAveragePool", [x])[0].shape, [1, 2, 1])
        XCTAssertEqual(try run("GlobalLpPool", [x], ["p": .int(2)])[0].doubles[0], 26.0.squareRoot(), accuracy: 1e-6)
        XCTAssertEqual(try run("LpPool", [x], ["kernel_shape": .ints([2]), "p": .int(1)])[0].doubles, [7, 5, 2, 0])
        XCTAssertEqual(try infer("GlobalAveragePool", [TensorType(.f16, sym([.symbol("b"), .known(4), .unknown]))])[0],
                       TensorType(.f16, sym([.symbol("b"), .known(4), .known(1)])))
    }

    // MARK: Resize

    func testResizeCoordinateRulesDifferByOpset() throws {
        let x = f32([0, 10], shape: [1, 2])
        let scales = f32([1, 2], shape: [2])
        // Resize-10: asymmetric coordinates.
        let r10 = try run("Resize", opset: 10, [x, scales], ["mode": .string("linear")])[0]
        XCTAssertEqual(r10.doubles, [0, 5, 10, 10])
        // Resize-11 onwards: half_pixel by default.
        let r13 = try run("Resize", opset: 13, [x, nil, scales], ["mode": .string("linear")])[0]
        XCTAssertEqual(r13.doubles, [0, 2.5, 7.5, 10])
        let nearest = try run("Upsample", opset: 9, [f32([1, 2], shape: [1, 2]), scales])[0]
        XCTAssertEqual(nearest.doubles, [1, 1, 2, 2])
    }

    func testResizeSizesAxesAndInference() throws {
        let sizes = Tensor([Int64(6)], shape: [1])
        let x = f32([1, 2, 3], shape: [1, 3])
        let y = try run("Resize", opset: 18, [x, nil, nil, sizes], ["axes": .ints([-1])])[0]
        XCTAssertEqual(y.doubles, [1, 1, 2, 2, 3, 3])
        let t = try infer("Resize", opset: 18, [TensorType(.f32, sym([.symbol("n"), .known(3)])), nil, nil,
                                               TensorType(.i64, static: [1])],
                          ["axes": .ints([1])], constants: [nil, nil, nil, sizes.tensorData])
        XCTAssertEqual(t[0].shape, sym([.symbol("n"), .known(6)]))
        // Without constant sizes the rank is still known.
        let u = try infer("Resize", opset: 18, [TensorType(.f32, sym([.symbol("n"), .known(3)])), nil, nil,
                                               TensorType(.i64, static: [1])], ["axes": .ints([1])])
        XCTAssertEqual(u[0].shape.rank, 2)
        let ints = try run("Resize", opset: 13, [Tensor(shape: [2], storage: .u8([0, 255])), nil,
                                                 f32([2], shape: [1])], ["mode": .string("linear")])[0]
        XCTAssertEqual(ints.dtype, .u8)
        XCTAssertEqual(ints.int64s, [0, 64, 191, 255])
        XCTAssertThrowsError(try run("Resize", opset: 13, [x, nil, f32([1, Float.infinity], shape: [2])]))
    }

    // MARK: Sampling

    func testGridSampleModeNamesByOpset() throws {
        let x = f32([0, 1, 2, 3], shape: [1, 1, 2, 2])
        let grid = f32([0, 0, -1, -1], shape: [1, 1, 2, 2])
        let a = try run("GridSample", opset: 16, [x, grid], ["mode": .string("bilinear"), "align_corners": .int(1)])[0]
        let b = try run("GridSample", opset: 20, [x, grid], ["mode": .string("linear"), "align_corners": .int(1)])[0]
        XCTAssertEqual(a.doubles, [1.5, 0])
        XCTAssertEqual(b.doubles, a.doubles)
        XCTAssertEqual(try infer("GridSample", [TensorType(.f32, sym([.symbol("n"), .known(3), .unknown, .unknown])),
                                               TensorType(.f32, sym([.symbol("n"), .known(5), .known(6), .known(2)]))])[0].shape,
                       sym([.symbol("n"), .known(3), .known(5), .known(6)]))
    }

    func testNonMaxSuppressionKeepsHighestScoringBoxes() throws {
        let boxes = f32([0, 0, 1, 1, 0, 0.1, 1, 1.1, 0, 5, 1, 6], shape: [1, 3, 4])
        let scores = f32([0.9, 0.95, 0.3], shape: [1, 1, 3])
        let y = try run("NonMaxSuppression", opset: 11, [boxes, scores, Tensor([Int64(3)], shape: [1]),
                                                         f32([0.5], shape: [1])])[0]
        XCTAssertEqual(y.shape, [2, 3])
        XCTAssertEqual(y.int64s, [0, 0, 1, 0, 0, 2])
    }

    // MARK: Recurrent

    func testRecurrentLayoutInferenceAndIdentityCell() throws {
        let x = TensorType(.f32, sym([.symbol("b"), .known(7), .known(5)]))
        let w = TensorType(.f32, static: [2, 16, 5]), r = TensorType(.f32, static: [2, 16, 4])
        let types = try infer("LSTM", opset: 14, [x, w, r], ["direction": .string("bidirectional"), "layout": .int(1)],
                              outputs: 3)
        XCTAssertEqual(types[0].shape, sym([.symbol("b"), .known(7), .known(2), .known(4)]))
        XCTAssertEqual(types[2].shape, sym([.symbol("b"), .known(2), .known(4)]))
        // A Relu RNN with identity weights accumulates its inputs; sequence_lens stops it early.
        let xs = f32([1, 1, 2, 2, 3, 3], shape: [3, 1, 2])
        let eye = f32([1, 0, 0, 1], shape: [1, 2, 2])
        let out = try run("RNN", [xs, eye, eye, nil, Tensor(shape: [1], storage: .i32([2]))],
                          ["activations": .strings(["Relu"]), "hidden_size": .int(2)], outputs: 2)
        XCTAssertEqual(out[0].doubles, [1, 1, 3, 3, 0, 0])
        XCTAssertEqual(out[1].doubles, [3, 3])
    }

    // MARK: Attention

    func testAttentionCausalGroupedQueryAveragesVisibleValues() throws {
        // Q = 0 makes every score equal, so each query averages the values it may see.
        let q = Tensor([Float](repeating: 0, count: 4 * 3 * 2), shape: [1, 4, 3, 2])
        let k = Tensor(values(2 * 3 * 2, seed: 3), shape: [1, 2, 3, 2])
        let v = f32([1, 10, 2, 20, 3, 30, 4, 40, 5, 50, 6, 60], shape: [1, 2, 3, 2])
        let y = try run("Attention", opset: 23, [q, k, v], ["is_causal": .int(1)])[0]
        XCTAssertEqual(y.shape, [1, 4, 3, 2])
        assertClose(Array(y.doubles[0..<6]), [1, 10, 1.5, 15, 2, 20])
        assertClose(Array(y.doubles[18..<24]), [4, 40, 4.5, 45, 5, 50])  // head 3 reads kv head 1
        let t = try infer("Attention", opset: 23, [TensorType(.f32, static: [2, 5, 12]), TensorType(.f32, static: [2, 7, 8]),
                                                   TensorType(.f32, static: [2, 7, 4])],
                          ["q_num_heads": .int(6), "kv_num_heads": .int(4)], outputs: 4)
        XCTAssertEqual(t.map(\.shape), [Shape(static: [2, 5, 6]), Shape(static: [2, 4, 7, 2]), Shape(static: [2, 4, 7, 1]),
                                        Shape(static: [2, 6, 5, 7])])
        let (bd, sd) = (Dim.symbol("b"), Dim.symbol("s"))
        let symbolic = try infer("Attention", opset: 23, [TensorType(.f32, sym([bd, .known(4), sd, .known(8)])),
                                                          TensorType(.f32, sym([bd, .known(2), sd, .known(8)])),
                                                          TensorType(.f32, sym([bd, .known(2), sd, .known(16)]))], outputs: 4)
        XCTAssertEqual(symbolic.map(\.shape), [sym([bd, .known(4), sd, .known(16)]), sym([bd, .known(2), sd, .known(8)]),
                                               sym([bd, .known(2), sd, .known(16)]), sym([bd, .known(4), sd, sd])])
    }

    func testFlexAttentionWithoutModifiersIsPlainAttention() throws {
        let q = Tensor(values(2 * 4 * 3 * 4, seed: 11), shape: [2, 4, 3, 4])
        let k = Tensor(values(2 * 2 * 5 * 4, seed: 12), shape: [2, 2, 5, 4])
        let v = Tensor(values(2 * 2 * 5 * 3, seed: 13), shape: [2, 2, 5, 3])
        let ctx = EvalContext(op: OpName("FlexAttention", domain: "ai.onnx.preview"), opset: 1, attributes: [:],
                              outputCount: 1, inputs: [q, k, v])
        let flex = try XCTUnwrap(OpRegistry.definition(of: ctx.op)).evaluate(ctx)[0]
        let plain = try run("Attention", opset: 23, [q, k, v])[0]
        XCTAssertEqual(flex.shape, [2, 4, 3, 3])
        assertClose(flex.doubles, plain.doubles)
    }

    func testRotaryEmbeddingRotatesHalves() throws {
        let x = f32([1, 2, 3, 4], shape: [1, 1, 1, 4])
        let cos = f32([0, 0], shape: [1, 1, 2]), sin = f32([1, 1], shape: [1, 1, 2])
        XCTAssertEqual(try run("RotaryEmbedding", opset: 23, [x, cos, sin])[0].doubles, [-3, -4, 1, 2])
        XCTAssertEqual(try run("RotaryEmbedding", opset: 23, [x, cos, sin], ["interleaved": .int(1)])[0].doubles,
                       [-2, 1, -4, 3])
    }
}
