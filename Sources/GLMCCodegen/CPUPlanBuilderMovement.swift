import Foundation
import GLMCIR
import GLMCOps
import GLMCPlan

/// Lowering of data-movement ops for `--target cpu`.
///
/// **Index tables.** Most movement ops map each output element to one input element, or to a fill
/// value, by a map that depends only on shapes and constant operands (Slice, Pad in every mode,
/// Tile, Expand, Split, Trilu, DepthToSpace, ...). Rather than a kernel per op, the builder runs
/// the op's own definition (`GLMCOps`, the interpreter's semantics) at convert time on element
/// numbers in place of the data: evaluated on `0, 1, ..., n-1` and again on `n, ..., 2n-1`, an
/// output element that moved input element `j` reads `j` and `j + n`; one that reads the same in
/// both runs does not depend on the data, and is a fill value (taken, in the data's own type, from
/// a third run on zeros). The result is a table of input element numbers (negative entries
/// `-1 - k` select fill value `k`), stored as a weight (int32 when the input has fewer than 2^31
/// elements), and one generic gather kernel reads it for any element size.
///
/// Trade-off: the table costs 4 (or 8) bytes per output element of weights and one extra load per
/// element; a dedicated kernel computing the index arithmetic (as `Transpose`, `Concat` and
/// `Gather` have) is better where an op is hot or its output large.
///
/// **Runtime indices.** GatherElements, GatherND, ScatterElements, ScatterND and OneHot read
/// indices only known at run time: each has a kernel of its own (`CPUKernelLibraryMovement`).
///
/// **Shapes only.** EyeLike, Shape and Size depend on their operand's shape alone, which a plan
/// fixes: their result is computed at convert time and copied out.
///
/// **Value-shaped ops.** NonZero, Unique and NonMaxSuppression, whose output shape depends on
/// input values, get upper-bound result shapes and write their actual extents at run time (see
/// `CPUPlanBuilderValueShaped.swift`); Compress with a runtime condition is still refused.
extension CPUPlanBuilder {
    /// Ops whose output shape depends on the values of their data (not on configuration such as
    /// Slice bounds): a plan gives their results upper-bound shapes, and allows them only as graph
    /// outputs. Binding their data would only fold the model into a constant for one input, so
    /// `glmc run --engine cpu` does not count them when it looks for shape-determining inputs.
    public static let valueShapedOps: Set<String> = ["NonZero", "Unique", "NonMaxSuppression"]
}

extension CPUPlanBuilder.Generator {
    /// Ops lowered through an index table when only their first operand is a runtime value.
    static let indexTableOps: Set<String> = [
        "Slice", "Pad", "Tile", "Expand", "Split", "Trilu", "DepthToSpace", "SpaceToDepth", "CenterCropPad",
        "Upsample", "Resize", "GatherElements", "GatherND", "Compress", "ReverseSequence",
    ]
    /// Operands besides the data that an index-table op copies into its result, so they may be
    /// runtime values too (Pad's constant_value).
    static let movedOperands: [String: Set<Int>] = ["Pad": [2]]
    /// Ops with kernels for indices known only at run time.
    static let runtimeIndexOps: Set<String> = ["GatherElements", "GatherND", "ScatterElements", "Scatter", "ScatterND", "OneHot"]
    /// Ops whose result depends on operand shapes only.
    static let shapeOnlyOps: Set<String> = ["EyeLike", "Shape", "Size"]
    static var movementOps: Set<String> {
        indexTableOps.union(runtimeIndexOps).union(shapeOnlyOps).union(CPUPlanBuilder.valueShapedOps)
    }

    mutating func lowerMovement(_ inst: Instruction) throws {
        let type = inst.op.type
        let runtimeOperands = inst.operands.indices.filter { i in inst.operands[i].map { constants[$0] == nil } ?? false }
        if CPUPlanBuilder.valueShapedOps.contains(type) { return try lowerValueShaped(inst) }
        if valueShaped(inst, runtimeOperands: runtimeOperands) {
            let node = inst.nodeName.isEmpty ? "" : " (node '\(inst.nodeName)')"
            throw GLMCError("unsupported: --target \(target.rawValue) cannot compile \(inst.op)\(node): its output shape depends on input values, which a static plan cannot follow")
        }
        if Self.shapeOnlyOps.contains(type) { return try lowerFromShapes(inst) }
        if Self.indexTableOps.contains(type), runtimeOperands.first == 0,
           runtimeOperands.dropFirst().allSatisfy({ Self.movedOperands[type]?.contains($0) ?? false }) {
            return try lowerIndexTable(inst, sources: runtimeOperands)
        }
        if Self.runtimeIndexOps.contains(type) { return try lowerRuntimeIndices(inst) }
        if type == "Trilu", runtimeOperands == [0, 1] { return try lowerTriluWithRuntimeK(inst) }
        if type == "ReverseSequence", runtimeOperands.contains(1) { return try lowerReverseSequence(inst) }
        throw unsupported(inst, "with runtime operands other than its data")
    }

    /// Whether the output shape of `inst` depends on runtime values.
    func valueShaped(_ inst: Instruction, runtimeOperands: [Int]) -> Bool {
        if CPUPlanBuilder.valueShapedOps.contains(inst.op.type) { return true }
        return inst.op.type == "Compress" && runtimeOperands.contains(1)
    }

    /// Runs the op's definition at convert time, `replacing` in place of the operands it names
    /// and the constants elsewhere (other runtime operands: zeros of their type).
    func evaluate(_ inst: Instruction, replacing: [Int: Tensor]) throws -> [Tensor] {
        guard let definition = OpRegistry.definition(of: inst.op) else { throw unsupported(inst) }
        var inputs: [Tensor?] = []
        for (i, v) in inst.operands.enumerated() {
            guard let v else { inputs.append(nil); continue }
            if let t = replacing[i] { inputs.append(t); continue }
            if let c = constants[v] { inputs.append(try Tensor(c)); continue }
            inputs.append(Tensor.zeros(f.type(of: v).dtype, shape: try sizes(v, inst)))
        }
        let context = EvalContext(op: inst.op, nodeName: inst.nodeName, opset: inst.opset, attributes: inst.attributes,
                                  outputCount: inst.results.count, inputs: inputs)
        do { return try definition.evaluate(context) } catch let e as GLMCError {
            throw unsupported(inst, "(evaluating it at convert time failed: \(e.message))")
        }
    }

    /// EyeLike, Shape, Size: computed at convert time from the (static) operand shapes.
    mutating func lowerFromShapes(_ inst: Instruction) throws {
        let results = try evaluate(inst, replacing: [:])
        for (r, t) in zip(inst.results, results) where isUsed(r) {
            guard let b = bufferOf[r] else { throw unsupported(inst, "whose result has no buffer") }
            let source = try weight(key: "shape#\(r.index)", name: f.name(of: r), t.tensorData, inst)
            addStep(kind: "copy", code: CPUKernelLibrary.copy(name: nextSymbol, bytes: byteCount(r)),
                    arguments: [source, .buffer(b)], range: byteCount(r), work: 1)
        }
    }

    /// A movement op whose runtime operands are values it moves (its data, and e.g. Pad's
    /// constant_value): one index-table gather per result. The sources are numbered one after
    /// the other, so a table entry names a source and an element in it.
    mutating func lowerIndexTable(_ inst: Instruction, sources: [Int]) throws {
        guard let x = inst.operands[0] else { throw unsupported(inst) }
        let xType = f.type(of: x)
        let elementBytes = xType.dtype.byteSize
        guard CPUKernelLibrary.elementType(bytes: elementBytes) != nil else { throw unsupported(inst, "on \(xType.dtype) tensors") }
        if inst.op.type == "Resize" || inst.op.type == "Upsample" {
            if case .string(let mode)? = inst.attributes["mode"], mode != "nearest" {
                throw unsupported(inst, "in mode '\(mode)' (only nearest moves elements)")
            }
        }
        var sourceSizes: [[Int]] = [], offsets: [Int] = [], n = 0
        for i in sources {
            let v = inst.operands[i]!
            guard f.type(of: v).dtype == xType.dtype else { throw unsupported(inst, "with a runtime operand of another type than its data") }
            sourceSizes.append(try sizes(v, inst))
            offsets.append(n)
            n += sourceSizes.last!.reduce(1, *)
        }
        func numbered(shift: Int) -> [Int: Tensor] {
            var t: [Int: Tensor] = [:]
            for (k, i) in sources.enumerated() {
                let count = sourceSizes[k].reduce(1, *)
                t[i] = Tensor((0 ..< count).map { Int64(shift + offsets[k] + $0) }, shape: sourceSizes[k])
            }
            return t
        }
        let first = try evaluate(inst, replacing: numbered(shift: 0)), second = try evaluate(inst, replacing: numbered(shift: n))
        var zeroSources: [Int: Tensor] = [:]
        for (k, i) in sources.enumerated() { zeroSources[i] = Tensor.zeros(xType.dtype, shape: sourceSizes[k]) }
        let zeros = try evaluate(inst, replacing: zeroSources)
        for (k, r) in inst.results.enumerated() where isUsed(r) {
            let rSizes = try sizes(r, inst), count = rSizes.reduce(1, *)
            guard k < first.count, first[k].shape == rSizes, second[k].shape == rSizes, zeros[k].shape == rSizes,
                  zeros[k].dtype == f.type(of: r).dtype else {
                throw unsupported(inst, "(its result '\(f.name(of: r))' does not have the planned type \(f.type(of: r)))")
            }
            let a = first[k].int64s, b = second[k].int64s
            let fillBytes = zeros[k].tensorData.withRawBytes { Data($0) }
            var table = [Int64](repeating: 0, count: count)
            var fills: [Data] = [], fillIndex: [Data: Int] = [:]
            for i in 0 ..< count {
                if a[i] == b[i] {
                    let value = fillBytes.subdata(in: i * elementBytes ..< (i + 1) * elementBytes)
                    let j = fillIndex[value] ?? fills.count
                    if j == fills.count { fills.append(value); fillIndex[value] = j }
                    table[i] = Int64(-1 - j)
                } else {
                    guard b[i] - a[i] == Int64(n), a[i] >= 0, a[i] < Int64(n) else {
                        throw unsupported(inst, "(it does not only move elements)")
                    }
                    table[i] = a[i]
                }
            }
            guard let y = bufferOf[r] else { throw unsupported(inst, "whose result has no buffer") }
            let symbol = nextSymbol
            if sources.count == 1, fills.isEmpty, count == n, table.enumerated().allSatisfy({ Int64($0.offset) == $0.element }) {
                addStep(kind: "copy", code: CPUKernelLibrary.copy(name: symbol, bytes: count * elementBytes),
                        arguments: [try argument(x, inst), .buffer(y)], range: count * elementBytes, work: 1)
                continue
            }
            let narrow = n < Int(Int32.max) && fills.count < Int(Int32.max)
            let tableData = narrow ? TensorData(type: TensorType(.i32, static: [count]), elements: table.map { Int32($0) })
                                   : TensorData(type: TensorType(.i64, static: [count]), elements: table)
            var args = try sources.map { try argument(inst.operands[$0]!, inst) }
            args += [try weight(key: "table#\(r.index)", name: f.name(of: r) + ".index_table", tableData, inst)]
            if !fills.isEmpty {
                let fillData = fills.reduce(Data(), +).withUnsafeBytes {
                    TensorData(type: TensorType(xType.dtype, static: [fills.count]), copying: $0)
                }
                args.append(try weight(key: "fills#\(r.index)", name: f.name(of: r) + ".fill_values", fillData, inst))
            }
            args.append(.buffer(y))
            addStep(kind: "index_table_gather",
                    code: CPUKernelLibrary.indexTableGather(name: symbol, elementBytes: elementBytes, indexBytes: narrow ? 4 : 8,
                                                            sourceStarts: offsets, hasFills: !fills.isEmpty),
                    arguments: args, range: count, work: 2)
        }
    }

    /// Trilu whose diagonal offset k is a runtime value: a kernel that reads it.
    mutating func lowerTriluWithRuntimeK(_ inst: Instruction) throws {
        guard let x = inst.operands[0], let k = inst.operands[1] else { throw unsupported(inst) }
        let xSizes = try sizes(x, inst), bytes = f.type(of: x).dtype.byteSize
        guard xSizes.count >= 2, CPUKernelLibrary.elementType(bytes: bytes) != nil, f.type(of: k).dtype == .i64,
              try sizes(k, inst).reduce(1, *) == 1 else { throw unsupported(inst, "on \(f.type(of: x))") }
        let count = xSizes.reduce(1, *)
        addStep(kind: "trilu", code: CPUKernelLibrary.trilu(name: nextSymbol, elementBytes: bytes, rows: max(1, xSizes[xSizes.count - 2]),
                                                            cols: max(1, xSizes[xSizes.count - 1]), upper: intAttr(inst, "upper", 1) != 0),
                arguments: [try argument(x, inst), try argument(k, inst), try output(inst)], range: count, work: 2)
    }

    /// ReverseSequence whose sequence lengths are runtime values: a kernel that reads them.
    mutating func lowerReverseSequence(_ inst: Instruction) throws {
        guard inst.operands.count == 2, let x = inst.operands[0], let lens = inst.operands[1] else { throw unsupported(inst) }
        let xSizes = try sizes(x, inst), bytes = f.type(of: x).dtype.byteSize
        let timeAxis = intAttr(inst, "time_axis", 0), batchAxis = intAttr(inst, "batch_axis", 1)
        guard xSizes.count >= 2, Set([timeAxis, batchAxis]) == [0, 1], CPUKernelLibrary.elementType(bytes: bytes) != nil,
              f.type(of: lens).dtype == .i64, try sizes(lens, inst) == [xSizes[batchAxis]] else {
            throw unsupported(inst, "on \(f.type(of: x)) with lengths \(f.type(of: lens))")
        }
        let strides = Self.strides(xSizes), count = xSizes.reduce(1, *)
        addStep(kind: "reverse_sequence",
                code: CPUKernelLibrary.reverseSequence(name: nextSymbol, elementBytes: bytes, timeLen: max(1, xSizes[timeAxis]),
                                                       timeStride: max(1, strides[timeAxis]), batchLen: max(1, xSizes[batchAxis]),
                                                       batchStride: max(1, strides[batchAxis])),
                arguments: [try argument(x, inst), try argument(lens, inst), try output(inst)], range: count, work: 2)
    }

    /// C element type for scatter arithmetic: the storage type, except for the half types (which
    /// would need widening).
    static func arithmeticCType(_ dtype: DType) -> String? {
        guard dtype != .f16, dtype != .bf16, let scalar = CScalar(dtype) else { return nil }
        return scalar.storage
    }

    /// Row-major element strides of `shape`.
    static func strides(_ shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        for d in stride(from: shape.count - 2, through: 0, by: -1) { s[d] = s[d + 1] * shape[d + 1] }
        return s
    }

    /// GatherElements, GatherND, ScatterElements, ScatterND and OneHot with runtime indices.
    mutating func lowerRuntimeIndices(_ inst: Instruction) throws {
        let type = inst.op.type
        guard inst.operands.count >= 2, let dv = inst.operands[0], let iv = inst.operands[1] else { throw unsupported(inst) }
        let y = inst.results[0], ySizes = try sizes(y, inst)
        let indexType = f.type(of: iv).dtype, indexSizes = try sizes(iv, inst)
        let symbol = nextSymbol
        if type == "OneHot" {
            // Operand 0 holds the indices, 1 the depth, 2 the values [off, on].
            guard inst.operands.count == 3, let vv = inst.operands[2] else { throw unsupported(inst) }
            guard constants[iv] != nil else { throw unsupported(inst, "with a depth that is not known at convert time") }
            let indexCType: String
            switch f.type(of: dv).dtype {
            case .f32: indexCType = "float"
            case .f64: indexCType = "double"
            case let t: guard let c = Self.arithmeticCType(t), t != .bool else { throw unsupported(inst, "with \(t) indices") }; indexCType = c
            }
            let bytes = f.type(of: y).dtype.byteSize
            guard CPUKernelLibrary.elementType(bytes: bytes) != nil else { throw unsupported(inst, "on \(f.type(of: y).dtype) values") }
            let dSizes = try sizes(dv, inst)
            var axis = intAttr(inst, "axis", -1)
            if axis < 0 { axis += dSizes.count + 1 }
            guard axis >= 0, axis <= dSizes.count, ySizes.count == dSizes.count + 1 else { throw unsupported(inst, "with axis \(axis)") }
            let inner = dSizes[axis...].reduce(1, *)
            addStep(kind: "one_hot", code: CPUKernelLibrary.oneHot(name: symbol, elementBytes: bytes, indexCType: indexCType,
                                                                   depth: ySizes[axis], inner: max(inner, 1)),
                    arguments: [try argument(dv, inst), try argument(vv, inst), try output(inst)], range: ySizes.reduce(1, *), work: 2)
            return
        }
        guard indexType == .i64 || indexType == .i32 else { throw unsupported(inst, "with \(indexType) indices") }
        let dType = f.type(of: dv).dtype, dSizes = try sizes(dv, inst)
        let bytes = dType.byteSize
        guard CPUKernelLibrary.elementType(bytes: bytes) != nil else { throw unsupported(inst, "on \(dType) tensors") }
        let dStrides = Self.strides(dSizes)
        switch type {
        case "GatherElements":
            let axis = try normalizedAxis(intAttr(inst, "axis", 0), rank: dSizes.count, inst)
            guard indexSizes.count == dSizes.count, ySizes == indexSizes else { throw unsupported(inst, "with inconsistent shapes") }
            addStep(kind: "gather_elements",
                    code: CPUKernelLibrary.gatherElements(name: symbol, elementBytes: bytes, indexBytes: indexType.byteSize, outShape: ySizes,
                                                          axis: axis, inStrides: dStrides, axisLen: dSizes[axis]),
                    arguments: [try argument(dv, inst), try argument(iv, inst), try output(inst)], range: ySizes.reduce(1, *), work: 4)
        case "GatherND":
            let b = inst.opset >= 12 ? intAttr(inst, "batch_dims", 0) : 0
            guard let depth = indexSizes.last, b >= 0, b < indexSizes.count, b + depth <= dSizes.count,
                  Array(indexSizes[..<b]) == Array(dSizes[..<b]) else { throw unsupported(inst, "with inconsistent shapes") }
            let tuples = indexSizes.dropLast().reduce(1, *), batches = dSizes[..<b].reduce(1, *)
            let slice = dSizes[(b + depth)...].reduce(1, *)
            guard tuples * slice == ySizes.reduce(1, *), batches > 0 else { throw unsupported(inst, "with inconsistent shapes") }
            addStep(kind: "gather_nd",
                    code: CPUKernelLibrary.gatherND(name: symbol, elementBytes: bytes, indexBytes: indexType.byteSize, tuples: tuples,
                                                    depth: depth, dimSizes: Array(dSizes[b ..< b + depth]),
                                                    dimStrides: Array(dStrides[b ..< b + depth]), sliceElements: slice,
                                                    tuplesPerBatch: max(1, tuples / batches), batchStride: dSizes[b...].reduce(1, *)),
                    arguments: [try argument(dv, inst), try argument(iv, inst), try output(inst)], range: tuples, work: max(1, slice / 4))
        default:  // ScatterElements, Scatter, ScatterND
            guard inst.operands.count == 3, let uv = inst.operands[2] else { throw unsupported(inst) }
            guard let cType = Self.arithmeticCType(dType) else { throw unsupported(inst, "on \(dType) tensors") }
            var reduction = CPUKernelLibrary.ScatterReduction.none
            if inst.opset >= 16, case .string(let r)? = inst.attributes["reduction"] {
                guard let known = CPUKernelLibrary.ScatterReduction(rawValue: r) else { throw unsupported(inst, "with reduction '\(r)'") }
                reduction = known
            }
            if reduction != .none, dType == .bool { throw unsupported(inst, "with a reduction on bool tensors") }
            let uSizes = try sizes(uv, inst)
            var code: String
            if type == "ScatterND" {
                guard let depth = indexSizes.last, depth <= dSizes.count else { throw unsupported(inst, "with inconsistent shapes") }
                let updates = indexSizes.dropLast().reduce(1, *), slice = dSizes[depth...].reduce(1, *)
                guard uSizes.reduce(1, *) == updates * slice else { throw unsupported(inst, "with inconsistent shapes") }
                code = CPUKernelLibrary.scatter(name: symbol, cType: cType, totalElements: dSizes.reduce(1, *), indexBytes: indexType.byteSize,
                                                reduction: reduction,
                                                nd: (updates, depth, Array(dSizes[..<depth]), Array(dStrides[..<depth]), slice), elements: nil)
            } else {
                let axis = try normalizedAxis(intAttr(inst, "axis", 0), rank: dSizes.count, inst)
                guard indexSizes.count == dSizes.count, uSizes == indexSizes else { throw unsupported(inst, "with inconsistent shapes") }
                code = CPUKernelLibrary.scatter(name: symbol, cType: cType, totalElements: dSizes.reduce(1, *), indexBytes: indexType.byteSize,
                                                reduction: reduction, nd: nil,
                                                elements: (indexSizes, axis, dStrides, dSizes[axis]))
            }
            addStep(kind: type == "ScatterND" ? "scatter_nd" : "scatter_elements", code: code,
                    arguments: [try argument(dv, inst), try argument(iv, inst), try argument(uv, inst), try output(inst)],
                    range: 1, work: CPUPlanBuilder.Generator.grainWork)
        }
    }

    /// Copies an input or a constant that the function returns into its own output slot.
    mutating func lowerOutputCopy(_ v: ValueID, into buffer: Int) throws {
        let site = Instruction(op: OpName("Identity"), opset: 1, operands: [v], results: [v], attributes: [:],
                               nodeName: "output '\(f.name(of: v))'")
        let bytes = byteCount(v)
        // First: a string constant's argument is a step of its own, which takes the next name.
        let source = try f.type(of: v).dtype == .string ? stringArgument(v, site) : argument(v, site)
        addStep(kind: "copy", code: CPUKernelLibrary.copy(name: nextSymbol, bytes: bytes),
                arguments: [source, .buffer(buffer)], range: bytes, work: 1)
    }
}
