import GLMCIR
@testable import GLMCOps
import XCTest

/// Semantics and shape inference of the data-movement ops (MovementOps): dtype families, opset-version
/// differences (attributes that became inputs), negative indices, errors on bad indices, symbolic dims.
final class MovementOpsTests: XCTestCase {
    // MARK: Helpers

    private func definition(_ op: String) throws -> OpDefinition {
        try XCTUnwrap(OpRegistry.definition(of: OpName(op)), "\(op) is not registered")
    }

    private func run(_ op: String, opset: Int = 18, _ inputs: [Tensor?], _ attributes: [String: Attribute] = [:],
                     outputs: Int = 1) throws -> [Tensor] {
        let ctx = EvalContext(op: OpName(op), opset: opset, attributes: attributes, outputCount: outputs, inputs: inputs)
        let results = try definition(op).evaluate(ctx)
        XCTAssertEqual(results.count, outputs)
        return results
    }

    private func run1(_ op: String, opset: Int = 18, _ inputs: [Tensor?], _ attributes: [String: Attribute] = [:]) throws -> Tensor {
        try run(op, opset: opset, inputs, attributes)[0]
    }

    /// Inference with `types`; operands given in `constants` are known constants.
    private func infer(_ op: String, opset: Int = 18, _ types: [TensorType?], constants: [Int: Tensor] = [:],
                       _ attributes: [String: Attribute] = [:], outputs: Int = 1) throws -> [TensorType] {
        let data = types.indices.map { constants[$0]?.tensorData }
        let ctx = InferenceContext(op: OpName(op), opset: opset, attributes: attributes, outputCount: outputs,
                                   inputTypes: types, constantInputs: data)
        return try definition(op).infer(ctx)
    }

    private func f32(_ values: [Float], _ shape: [Int]) -> Tensor { Tensor(values, shape: shape) }
    private func i64(_ values: [Int64], _ shape: [Int]? = nil) -> Tensor { Tensor(values, shape: shape ?? [values.count]) }
    private func iota(_ shape: [Int]) -> Tensor { f32((0 ..< shape.reduce(1, *)).map(Float.init), shape) }
    private func floats(_ t: Tensor) -> [Float] { t.doubles.map { Float($0) } }
    private func sym(_ dims: Dim...) -> Shape { Shape(dims) }

    private func assertThrows(_ expression: @autoclosure () throws -> Any, containing text: String,
                              file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try expression(), file: file, line: line) { error in
            XCTAssertTrue("\(error)".contains(text), "\(error) does not mention '\(text)'", file: file, line: line)
        }
    }

    // MARK: Sources

    func testConstantForms() throws {
        let t = try run1("Constant", [], ["value_ints": .ints([1, -2])])
        XCTAssertEqual(t.dtype, .i64); XCTAssertEqual(t.int64s, [1, -2])
        XCTAssertEqual(try run1("Constant", [], ["value_float": .float(2.5)]).doubles, [2.5])
        let s = try run1("Constant", [], ["value_strings": .strings(["a", "b"])])
        guard case .string(let strings) = s.storage else { return XCTFail("expected strings") }
        XCTAssertEqual(strings, ["a", "b"])
        let value = f32([1, 2, 3, 4], [2, 2]).tensorData
        XCTAssertEqual(try infer("Constant", [], ["value": .tensor(value)]), [TensorType(.f32, static: [2, 2])])
        XCTAssertEqual(floats(try run1("Constant", [], ["value": .tensor(value)])), [1, 2, 3, 4])
    }

    func testShapeAndSize() throws {
        let x = iota([2, 3, 4])
        XCTAssertEqual(try run1("Shape", [x]).int64s, [2, 3, 4])
        XCTAssertEqual(try run1("Shape", opset: 15, [x], ["start": .int(-2)]).int64s, [3, 4])
        XCTAssertEqual(try run1("Shape", opset: 15, [x], ["start": .int(2), "end": .int(1)]).int64s, [])
        // Before opset 15 start/end do not exist.
        XCTAssertEqual(try run1("Shape", opset: 13, [x], ["start": .int(1)]).int64s, [2, 3, 4])
        XCTAssertEqual(try infer("Shape", [TensorType(.f32, sym(.symbol("b"), .known(3)))]), [TensorType(.i64, static: [2])])
        XCTAssertEqual(try run1("Size", [x]).int64s, [24])
    }

    func testConstantOfShapeEyeLikeRange() throws {
        let c = try run1("ConstantOfShape", [i64([2, 2])], ["value": .tensor(Tensor([Int64(7)], shape: [1]).tensorData)])
        XCTAssertEqual(c.dtype, .i64); XCTAssertEqual(c.int64s, [7, 7, 7, 7])
        XCTAssertEqual(try run1("ConstantOfShape", [i64([0])]).shape, [0])
        XCTAssertEqual(try infer("ConstantOfShape", [TensorType(.i64, static: [3])]),
                       [TensorType(.f32, sym(.unknown, .unknown, .unknown))])

        let eye = try run1("EyeLike", [iota([2, 3])], ["k": .int(1), "dtype": .int(7)])
        XCTAssertEqual(eye.dtype, .i64); XCTAssertEqual(eye.int64s, [0, 1, 0, 0, 0, 1])

        XCTAssertEqual(try run1("Range", [i64([10], []), i64([4], []), i64([-3], [])]).int64s, [10, 7])
        let r = try run1("Range", [f32([1], []), f32([2], []), f32([0.25], [])])
        XCTAssertEqual(floats(r), [1, 1.25, 1.5, 1.75])
        XCTAssertEqual(try infer("Range", [TensorType(.f32, .scalar), TensorType(.f32, .scalar), TensorType(.f32, .scalar)],
                                 constants: [0: f32([0], []), 1: f32([3], []), 2: f32([1], [])]),
                       [TensorType(.f32, static: [3])])
        assertThrows(try self.run1("Range", [i64([0], []), i64([4], []), i64([0], [])]), containing: "zero")
    }

    func testOneHotAndTrilu() throws {
        let values = f32([0, 1], [2])
        let h = try run1("OneHot", [i64([0, -1, 5]), f32([3], []), values], ["axis": .int(0)])
        XCTAssertEqual(h.shape, [3, 3])
        // Columns: index 0, index -1 (→ 2), index 5 (out of range: all off).
        XCTAssertEqual(floats(h), [1, 0, 0, 0, 0, 0, 0, 1, 0])

        let x = iota([3, 3])
        XCTAssertEqual(floats(try run1("Trilu", [x])), [0, 1, 2, 0, 4, 5, 0, 0, 8])
        XCTAssertEqual(floats(try run1("Trilu", [x, i64([-1], [])], ["upper": .int(0)])), [0, 0, 0, 3, 0, 0, 6, 7, 0])
    }

    func testDropout() throws {
        let x = iota([2, 3])
        let (y, mask) = try { let r = try run("Dropout", opset: 13, [x], outputs: 2); return (r[0], r[1]) }()
        XCTAssertEqual(floats(y), floats(x)); XCTAssertEqual(mask.dtype, .bool)
        // Before opset 10 the mask has the data's type.
        XCTAssertEqual(try run("Dropout", opset: 7, [x], outputs: 2)[1].dtype, .f32)
        // NumPy's RandomState(0).uniform(0, 1) stream.
        var rng = NumPyMT19937(seed: 0)
        XCTAssertEqual(rng.nextDouble(), 0.5488135039273248, accuracy: 1e-16)
        XCTAssertEqual(rng.nextDouble(), 0.7151893663724195, accuracy: 1e-16)
        let trained = try run("Dropout", opset: 13, [x, f32([0.6], []), Tensor([true], shape: [])], ["seed": .int(0)], outputs: 2)
        // Uniforms 0.549, 0.715, 0.603, 0.545, 0.424, 0.646 against ratio 0.6 keep elements 1 and 2.
        guard case .bool(let keep) = trained[1].storage else { return XCTFail("mask should be bool") }
        XCTAssertEqual(keep, [false, true, true, false, false, true])
        XCTAssertEqual(floats(trained[0])[1], 2.5, accuracy: 1e-6)
    }

    // MARK: Layout

    func testReshapeAndFlatten() throws {
        let x = iota([2, 3, 4])
        XCTAssertEqual(try run1("Reshape", [x, i64([0, -1])]).shape, [2, 12])
        XCTAssertEqual(try run1("Reshape", opset: 14, [iota([0, 3]), i64([3, 0])], ["allowzero": .int(1)]).shape, [3, 0])
        XCTAssertEqual(try run1("Reshape", opset: 1, [x], ["shape": .ints([4, -1])]).shape, [4, 6])
        assertThrows(try self.run1("Reshape", [x, i64([5, -1])]), containing: "cannot reshape")
        let b = TensorType(.f32, sym(.symbol("b"), .known(3), .known(4)))
        XCTAssertEqual(try infer("Reshape", [b, TensorType(.i64, static: [2])], constants: [1: i64([0, -1])]),
                       [TensorType(.f32, sym(.symbol("b"), .known(12)))])
        XCTAssertEqual(try infer("Reshape", [b, TensorType(.i64, static: [2])], constants: [1: i64([-1, 12])]),
                       [TensorType(.f32, sym(.symbol("b"), .known(12)))])
        XCTAssertEqual(try infer("Reshape", [b, TensorType(.i64, static: [3])]),
                       [TensorType(.f32, sym(.unknown, .unknown, .unknown))])

        XCTAssertEqual(try run1("Flatten", [x], ["axis": .int(-1)]).shape, [6, 4])
        XCTAssertEqual(try run1("Flatten", [x], ["axis": .int(0)]).shape, [1, 24])
        XCTAssertEqual(try infer("Flatten", [b]), [TensorType(.f32, sym(.symbol("b"), .known(12)))])
    }

    func testSqueezeUnsqueezeAcrossOpsets() throws {
        let x = iota([1, 3, 1])
        XCTAssertEqual(try run1("Squeeze", opset: 11, [x], ["axes": .ints([0])]).shape, [3, 1])
        XCTAssertEqual(try run1("Squeeze", opset: 13, [x, i64([-1])]).shape, [1, 3])
        XCTAssertEqual(try run1("Squeeze", opset: 13, [x]).shape, [3])
        assertThrows(try self.run1("Squeeze", opset: 13, [x, i64([1])]), containing: "size 3")
        XCTAssertEqual(try run1("Unsqueeze", opset: 11, [iota([3])], ["axes": .ints([0, 2])]).shape, [1, 3, 1])
        XCTAssertEqual(try run1("Unsqueeze", opset: 13, [iota([3]), i64([-1, 0])]).shape, [1, 3, 1])
        let b = TensorType(.f32, sym(.symbol("b"), .known(3)))
        XCTAssertEqual(try infer("Unsqueeze", opset: 13, [b, TensorType(.i64, static: [1])], constants: [1: i64([1])]),
                       [TensorType(.f32, sym(.symbol("b"), .known(1), .known(3)))])
    }

    func testTransposeAllDtypes() throws {
        let x = iota([2, 3])
        XCTAssertEqual(floats(try run1("Transpose", [x])), [0, 3, 1, 4, 2, 5])
        let s = Tensor(shape: [2, 2], storage: .string(["a", "b", "c", "d"]))
        guard case .string(let t) = try run1("Transpose", [s]).storage else { return XCTFail() }
        XCTAssertEqual(t, ["a", "c", "b", "d"])
        let h = Tensor(doubles: [1, 2, 3, 4, 5, 6], dtype: .f16, shape: [1, 2, 3])
        let ht = try run1("Transpose", [h], ["perm": .ints([2, 0, 1])])
        XCTAssertEqual(ht.dtype, .f16); XCTAssertEqual(ht.shape, [3, 1, 2]); XCTAssertEqual(ht.doubles, [1, 4, 2, 5, 3, 6])
        XCTAssertEqual(try infer("Transpose", [TensorType(.f32, sym(.symbol("b"), .known(3), .unknown))], ["perm": .ints([1, 2, 0])]),
                       [TensorType(.f32, sym(.known(3), .unknown, .symbol("b")))])
        assertThrows(try self.run1("Transpose", [x], ["perm": .ints([0, 0])]), containing: "permutation")
    }

    func testExpandAndTile() throws {
        let x = f32([1, 2, 3], [3, 1])
        let e = try run1("Expand", [x, i64([2, 1, 2])])
        XCTAssertEqual(e.shape, [2, 3, 2]); XCTAssertEqual(floats(e), [1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3])
        XCTAssertEqual(try infer("Expand", [TensorType(.f32, sym(.symbol("b"), .known(1))), TensorType(.i64, static: [2])],
                                 constants: [1: i64([1, 4])]),
                       [TensorType(.f32, sym(.symbol("b"), .known(4)))])
        assertThrows(try self.run1("Expand", [x, i64([2, 2])]), containing: "cannot expand")
        let t = try run1("Tile", [f32([1, 2], [1, 2]), i64([2, 2])])
        XCTAssertEqual(t.shape, [2, 4]); XCTAssertEqual(floats(t), [1, 2, 1, 2, 1, 2, 1, 2])
    }

    func testConcatAndSplit() throws {
        let c = try run1("Concat", [iota([2, 1]), f32([9, 8, 7, 6], [2, 2])], ["axis": .int(-1)])
        XCTAssertEqual(c.shape, [2, 3]); XCTAssertEqual(floats(c), [0, 9, 8, 1, 7, 6])
        XCTAssertEqual(try infer("Concat", [TensorType(.f32, sym(.symbol("b"), .known(2))), TensorType(.f32, sym(.unknown, .known(3)))],
                                 ["axis": .int(1)]),
                       [TensorType(.f32, sym(.symbol("b"), .known(5)))])
        assertThrows(try self.run1("Concat", [iota([2, 1]), iota([3, 1])], ["axis": .int(1)]), containing: "cannot concatenate")

        let x = iota([5])
        XCTAssertEqual(try run("Split", opset: 18, [x], ["num_outputs": .int(2)], outputs: 2).map(\.shape), [[3], [2]])
        XCTAssertEqual(try run("Split", opset: 13, [x, i64([1, 4])], outputs: 2).map(floats), [[0], [1, 2, 3, 4]])
        XCTAssertEqual(try run("Split", opset: 11, [x], ["split": .ints([2, 3])], outputs: 2).map(\.shape), [[2], [3]])
        assertThrows(try self.run("Split", opset: 13, [x], outputs: 2), containing: "equal parts")
        XCTAssertEqual(try infer("Split", opset: 18, [TensorType(.f32, sym(.symbol("b"), .known(6)))], ["axis": .int(1)], outputs: 3),
                       [TensorType](repeating: TensorType(.f32, sym(.symbol("b"), .known(2))), count: 3))
    }

    func testSliceClampingStepsAndOpsets() throws {
        let x = iota([10])
        XCTAssertEqual(floats(try run1("Slice", [x, i64([-1]), i64([Int64.min]), i64([0]), i64([-3])])), [9, 6, 3, 0])
        XCTAssertEqual(floats(try run1("Slice", [x, i64([8]), i64([1000])])), [8, 9])
        XCTAssertEqual(floats(try run1("Slice", [x, i64([20]), i64([-100]), nil, i64([-4])])), [9, 5, 1])
        XCTAssertEqual(floats(try run1("Slice", opset: 9, [x], ["starts": .ints([2]), "ends": .ints([4])])), [2, 3])
        let m = iota([3, 4])
        XCTAssertEqual(floats(try run1("Slice", [m, i64([1]), i64([3]), i64([-1])])), [1, 2, 5, 6, 9, 10])
        assertThrows(try self.run1("Slice", [x, i64([0]), i64([3]), nil, i64([0])]), containing: "step")
        let b = TensorType(.f32, sym(.symbol("b"), .known(10)))
        let i = TensorType(.i64, static: [1])
        XCTAssertEqual(try infer("Slice", [b, i, i, i], constants: [1: i64([2]), 2: i64([-1]), 3: i64([1])]),
                       [TensorType(.f32, sym(.symbol("b"), .known(7)))])
        XCTAssertEqual(try infer("Slice", [b, i, i, i], constants: [3: i64([1])]),
                       [TensorType(.f32, sym(.symbol("b"), .unknown))])
    }

    func testPadModes() throws {
        let x = f32([1, 2, 3], [3])
        func pad(_ mode: String, _ pads: [Int64]) throws -> [Float] {
            floats(try run1("Pad", [x, i64(pads)], ["mode": .string(mode)]))
        }
        XCTAssertEqual(try pad("constant", [2, 1]), [0, 0, 1, 2, 3, 0])
        XCTAssertEqual(try pad("edge", [2, 1]), [1, 1, 1, 2, 3, 3])
        XCTAssertEqual(try pad("reflect", [2, 2]), [3, 2, 1, 2, 3, 2, 1])
        XCTAssertEqual(try pad("wrap", [2, 1]), [2, 3, 1, 2, 3, 1])
        XCTAssertEqual(try pad("constant", [-1, 1]), [2, 3, 0])
        XCTAssertEqual(floats(try run1("Pad", [x, i64([1, 0]), f32([9], [])])), [9, 1, 2, 3])
        // Opset 2-10: pads and value are attributes.
        XCTAssertEqual(floats(try run1("Pad", opset: 2, [x], ["pads": .ints([0, 1]), "value": .float(5)])), [1, 2, 3, 5])
        // Opset 18: axes select which dims the pads cover.
        let m = iota([2, 2])
        XCTAssertEqual(try run1("Pad", [m, i64([1, 1]), nil, i64([-1])]).shape, [2, 4])
        XCTAssertEqual(try infer("Pad", [TensorType(.f32, sym(.symbol("b"), .known(2))), TensorType(.i64, static: [4])],
                                 constants: [1: i64([0, 1, 0, 1])]),
                       [TensorType(.f32, sym(.symbol("b"), .known(4)))])
    }

    func testBlockRearrangements() throws {
        // Spec example: DCR and CRD orderings of a [1, 8, 2, 3] input with blocksize 2.
        let x = iota([1, 8, 2, 3])
        let dcr = try run1("DepthToSpace", [x], ["blocksize": .int(2)])
        XCTAssertEqual(dcr.shape, [1, 2, 4, 6])
        XCTAssertEqual(Array(floats(dcr)[0 ..< 6]), [0, 12, 1, 13, 2, 14])
        let crd = try run1("DepthToSpace", [x], ["blocksize": .int(2), "mode": .string("CRD")])
        XCTAssertEqual(Array(floats(crd)[0 ..< 6]), [0, 6, 1, 7, 2, 8])
        // SpaceToDepth inverts DepthToSpace in DCR mode.
        XCTAssertEqual(floats(try run1("SpaceToDepth", [dcr], ["blocksize": .int(2)])), floats(x))
        XCTAssertEqual(try infer("SpaceToDepth", [TensorType(.f32, sym(.symbol("n"), .known(3), .known(4), .known(6)))], ["blocksize": .int(2)]),
                       [TensorType(.f32, sym(.symbol("n"), .known(12), .known(2), .known(3)))])
    }

    func testReverseSequenceCenterCropPadCol2Im() throws {
        let x = iota([4, 4])
        let r = try run1("ReverseSequence", [x, i64([1, 2, 3, 4])], ["batch_axis": .int(0), "time_axis": .int(1)])
        XCTAssertEqual(floats(r), [0, 1, 2, 3, 5, 4, 6, 7, 10, 9, 8, 11, 15, 14, 13, 12])
        assertThrows(try self.run1("ReverseSequence", [x, i64([5, 1, 1, 1])]), containing: "sequence_lens")

        let c = try run1("CenterCropPad", [iota([3, 4]), i64([2, 5])])
        XCTAssertEqual(c.shape, [2, 5]); XCTAssertEqual(floats(c), [0, 1, 2, 3, 0, 4, 5, 6, 7, 0])

        // Two 2x2 blocks over a 2x3 image with stride 1: the middle column receives both.
        let cols = f32([1, 1, 1, 1, 1, 1, 1, 1], [1, 4, 2])
        let im = try run1("Col2Im", [cols, i64([2, 3]), i64([2, 2])])
        XCTAssertEqual(im.shape, [1, 1, 2, 3]); XCTAssertEqual(floats(im), [1, 2, 1, 1, 2, 1])
    }

    // MARK: Indexing

    func testGatherFamily() throws {
        let x = iota([3, 2])
        let g = try run1("Gather", [x, i64([-1, 0], [1, 2])])
        XCTAssertEqual(g.shape, [1, 2, 2]); XCTAssertEqual(floats(g), [4, 5, 0, 1])
        XCTAssertEqual(floats(try run1("Gather", [x, i64([1, 1])], ["axis": .int(1)])), [1, 1, 3, 3, 5, 5])
        assertThrows(try self.run1("Gather", [x, i64([3])]), containing: "out of range")
        XCTAssertEqual(try infer("Gather", [TensorType(.f32, sym(.symbol("b"), .known(2))), TensorType(.i64, sym(.symbol("k")))], ["axis": .int(1)]),
                       [TensorType(.f32, sym(.symbol("b"), .symbol("k")))])

        let ge = try run1("GatherElements", [x, i64([1, 0, -1, 0], [2, 2])], ["axis": .int(1)])
        XCTAssertEqual(floats(ge), [1, 0, 3, 2])

        let data = Tensor(int64s: [0, 1, 2, 3, 4, 5, 6, 7], dtype: .i32, shape: [2, 2, 2])
        let nd = try run1("GatherND", [data, i64([1, 0, 0, 1], [2, 2])])
        XCTAssertEqual(nd.dtype, .i32); XCTAssertEqual(nd.shape, [2, 2]); XCTAssertEqual(nd.int64s, [4, 5, 2, 3])
        let batched = try run1("GatherND", [data, i64([1, 0], [2, 1])], ["batch_dims": .int(1)])
        XCTAssertEqual(batched.shape, [2, 2]); XCTAssertEqual(batched.int64s, [2, 3, 4, 5])
        assertThrows(try self.run1("GatherND", [data, i64([2, 0], [1, 2])]), containing: "out of range")
    }

    func testScatterFamily() throws {
        let data = f32([1, 2, 3, 4, 5], [1, 5])
        let add = try run1("ScatterElements", [data, i64([1, 1], [1, 2]), f32([1.1, 2.1], [1, 2])],
                           ["axis": .int(1), "reduction": .string("add")])
        XCTAssertEqual(floats(add), [1, 5.2, 3, 4, 5])
        let none = try run1("ScatterElements", [data, i64([-1], [1, 1]), f32([9], [1, 1])], ["axis": .int(1)])
        XCTAssertEqual(floats(none), [1, 2, 3, 4, 9])
        XCTAssertEqual(floats(try run1("Scatter", opset: 10, [data, i64([0], [1, 1]), f32([7], [1, 1])], ["axis": .int(1)])),
                       [7, 2, 3, 4, 5])
        assertThrows(try self.run1("ScatterElements", [data, i64([5], [1, 1]), f32([1], [1, 1])], ["axis": .int(1)]),
                     containing: "out of range")

        let d = Tensor([Int64](1 ... 8), shape: [8])
        let mul = try run1("ScatterND", [d, i64([4, 3, 4], [3, 1]), i64([2, 10, 3])], ["reduction": .string("mul")])
        XCTAssertEqual(mul.int64s, [1, 2, 3, 40, 30, 6, 7, 8])
        let rows = try run1("ScatterND", [iota([2, 2]), i64([1], [1, 1]), f32([8, 9], [1, 2])])
        XCTAssertEqual(floats(rows), [0, 1, 8, 9])
        let mx = try run1("ScatterND", [iota([3]), i64([0, 2], [2, 1]), f32([-1, 5], [2])], ["reduction": .string("max")])
        XCTAssertEqual(floats(mx), [0, 1, 5])
    }

    func testCompressNonZeroUnique() throws {
        let x = iota([3, 2])
        let c = try run1("Compress", [x, Tensor([false, true, true], shape: [3])], ["axis": .int(0)])
        XCTAssertEqual(c.shape, [2, 2]); XCTAssertEqual(floats(c), [2, 3, 4, 5])
        XCTAssertEqual(floats(try run1("Compress", [x, Tensor([false, true], shape: [2])])), [1])
        assertThrows(try self.run1("Compress", [x, Tensor([false, false, false, true], shape: [4])], ["axis": .int(0)]),
                     containing: "condition")

        let nz = try run1("NonZero", [f32([1, 0, 0, 3], [2, 2])])
        XCTAssertEqual(nz.shape, [2, 2]); XCTAssertEqual(nz.int64s, [0, 1, 0, 1])

        let u = f32([2, 1, 1, 3, 4, 3], [6])
        let sorted = try run("Unique", [u], outputs: 4)
        XCTAssertEqual(floats(sorted[0]), [1, 2, 3, 4])
        XCTAssertEqual(sorted[1].int64s, [1, 0, 3, 4])
        XCTAssertEqual(sorted[2].int64s, [1, 0, 0, 2, 3, 2])
        XCTAssertEqual(sorted[3].int64s, [2, 1, 2, 1])
        let unsorted = try run("Unique", [u], ["sorted": .int(0)], outputs: 4)
        XCTAssertEqual(floats(unsorted[0]), [2, 1, 3, 4])
        XCTAssertEqual(unsorted[2].int64s, [0, 1, 1, 2, 3, 2])
        let rowsX = f32([1, 0, 0, 1, 0, 0, 2, 3, 4], [3, 3])
        let rows = try run("Unique", [rowsX], ["axis": .int(0)], outputs: 2)
        XCTAssertEqual(rows[0].shape, [2, 3]); XCTAssertEqual(floats(rows[0]), [1, 0, 0, 2, 3, 4])
        XCTAssertEqual(rows[1].int64s, [0, 2])
        // f16 sorts by value, not by bit pattern.
        let h = Tensor(doubles: [1, -2, 1], dtype: .f16, shape: [3])
        XCTAssertEqual(try run1("Unique", [h]).doubles, [-2, 1])
    }

    // MARK: Hostile inputs

    /// Absurd sizes, overflowing pads and bad indices are errors, never traps or huge allocations.
    func testHostileOperandsThrow() throws {
        let x = iota([2, 2])
        let big = Int64.max
        XCTAssertThrowsError(try run1("ConstantOfShape", [i64([1 << 40, 1 << 40])]))
        XCTAssertThrowsError(try run1("ConstantOfShape", [i64([-1])]))
        XCTAssertThrowsError(try run1("Tile", [x, i64([big, 2])]))
        XCTAssertThrowsError(try run1("Expand", [x, i64([1 << 40, 2, 2])]))
        XCTAssertThrowsError(try run1("Pad", [x, i64([big, 0, big, 0])]))
        XCTAssertThrowsError(try run1("Pad", [x, i64([Int64.min, 0, 0, 0])]))
        XCTAssertThrowsError(try run1("Pad", [x, i64([-3, 0, 0, 0])]))
        XCTAssertThrowsError(try run1("Range", [i64([0], []), i64([big], []), i64([1], [])]))
        XCTAssertThrowsError(try run1("Range", [f32([0], []), f32([.infinity], []), f32([1], [])]))
        XCTAssertThrowsError(try run1("Reshape", [x, i64([big, 2])]))
        XCTAssertThrowsError(try run("Split", opset: 13, [iota([4]), i64([big, big])], outputs: 2))
        XCTAssertThrowsError(try run1("DepthToSpace", [iota([1, 4, 1, 1])], ["blocksize": .int(1 << 40)]))
        // Empty, but with a huge dim: must not build a huge intermediate index list.
        XCTAssertEqual(try run1("SpaceToDepth", [iota([1, 1, 0, 0])], ["blocksize": .int(1 << 15)]).shape, [1, 1 << 30, 0, 0])
        XCTAssertThrowsError(try run1("OneHot", [i64([0]), f32([1e30], []), f32([0, 1], [2])]))
        XCTAssertThrowsError(try run1("CenterCropPad", [x, i64([big, 2])]))
        XCTAssertThrowsError(try run1("Col2Im", [f32([1], [1, 1, 1]), i64([big, 1]), i64([1, 1])], ["pads": .ints([Int.max, 0, 0, 0])]))
        XCTAssertThrowsError(try run1("Slice", [x, i64([0]), i64([1]), i64([2])]))
        XCTAssertThrowsError(try run1("Gather", [iota([]), i64([0])]))
        XCTAssertThrowsError(try run1("GatherElements", [x, i64([0, 0, 0, 0, 0, 0], [3, 2])], ["axis": .int(1)]))
        XCTAssertThrowsError(try run1("ScatterND", [x, i64([0, 0, 0], [1, 3]), f32([1], [1])]))
        XCTAssertThrowsError(try run1("Unique", [iota([])], ["axis": .int(0)]))
        XCTAssertThrowsError(try run1("Transpose", [x], ["perm": .ints([0, 5])]))
        XCTAssertThrowsError(try run1("Concat", [x, Tensor([Int64(1), 2, 3, 4], shape: [2, 2])], ["axis": .int(0)]))
    }
}
