import GLMCIR
import GLMCOps

/// Replaces Shape/Size of statically known dimensions, and the Gather/Unsqueeze/Concat/Slice/Cast
/// arithmetic on them, with constants.
///
/// The pass tracks, for every small integer value of rank 0 or 1, what is known of each element
/// (`ShapeElement`): a number, a symbolic dimension (`?batch`), "dimension k of value v", or nothing.
/// `Shape(x)` starts from x's declared dims; Gather, Unsqueeze, Squeeze, Concat, Slice, integer
/// Cast, Identity and Add/Sub/Mul/Div carry elements along (so `Shape(x:[?b,16,32])[1]` is 16 even
/// though dim 0 is symbolic). A value whose elements are all numbers becomes a `const`; other
/// instructions whose operands are all small constants are evaluated like constant-fold does.
///
/// Reshape targets that stay partly symbolic are rewritten into constants when possible (the
/// "copy/infer trick"): an element that is the reshaped input's own dim at the same position becomes
/// 0 (ONNX's "copy this dim", unless allowzero), and if exactly one element is still unknown it
/// becomes -1 ("infer from the element count") — provided every other element is a known positive
/// size, so the -1 is unambiguous. `Reshape(x:[?b,16,32], Concat(Shape(x)[0], 16, 2, 16))` thus
/// becomes `Reshape(x, [0, 16, 2, 16])` with result type `[?b,16,2,16]`.
///
/// After each sweep, shape inference is re-run over the function with the new constants, tightening
/// declared types (which can make more dims known); the sweeps repeat until nothing changes.
public struct FoldShapeComputations: Pass {
    public static let name = "fold-shape-computations"
    public static let summary = "Replaces Shape/Size of statically known dimensions, and the Gather/Unsqueeze/Concat/Slice/Cast arithmetic on them, with constants."
    public init() {}

    /// Operands and results of the generic evaluation are "shape-sized": at most this many elements.
    static let smallElementLimit = 64
    /// A safety net for the fixed-point iteration (each round must change something to continue).
    static let maxRounds = 64

    public func run(on module: inout Module, context: PassContext) throws -> Bool {
        let opset = Folding.constantOpset(module)
        return Folding.forEachFunction(&module.main) { f in
            var changed = false
            for _ in 0 ..< Self.maxRounds {
                var sweep = Sweep(opset: opset, limit: context.foldSizeLimitBytes)
                sweep.run(on: &f)
                let refined = Folding.refineTypes(in: &f)
                if sweep.folded > 0 { context.count("instructions folded", sweep.folded) }
                if sweep.reshapes > 0 { context.count("reshape targets made constant", sweep.reshapes) }
                if refined > 0 { context.count("types refined", refined) }
                guard sweep.folded + sweep.reshapes + refined > 0 else { break }
                changed = true
            }
            return changed
        }
    }
}

/// What is known of one element of a shape-like integer tensor.
enum ShapeElement: Hashable {
    case known(Int)
    case symbol(String)
    /// Dimension `axis` of value `of` (an unknown `?` dim, identified by where it comes from).
    case dim(of: ValueID, axis: Int)
    case unknown

    var value: Int? { if case .known(let v) = self { return v } else { return nil } }

    init(_ d: Dim, of v: ValueID, axis: Int) {
        switch d {
        case .known(let n): self = .known(n)
        case .symbol(let s): self = .symbol(s)
        case .unknown: self = .dim(of: v, axis: axis)
        }
    }

    /// Whether this element is, at run time, the size of dim `axis` of `v` (declared `d`).
    func isDim(_ d: Dim, of v: ValueID, axis: Int) -> Bool {
        switch (self, d) {
        case (.symbol(let a), .symbol(let b)): return a == b
        case (.dim(let w, let k), _): return w == v && k == axis
        default: return false
        }
    }

    /// Symbolic sizes are dims: never negative.
    var isSize: Bool {
        switch self {
        case .known(let v): return v >= 0
        case .symbol, .dim: return true
        case .unknown: return false
        }
    }
}

/// A small integer tensor of rank 0 (`isScalar`) or 1, element by element.
struct PartialShape {
    var elements: [ShapeElement]
    var isScalar: Bool
    var knownValues: [Int]? {
        var out: [Int] = []
        for e in elements { guard let v = e.value else { return nil }; out.append(v) }
        return out
    }
}

/// One forward sweep over a function: propagates partial shapes, folds what becomes fully known,
/// evaluates small all-constant instructions and rewrites Reshape targets.
private struct Sweep {
    let opset: Int
    let limit: Int
    var folded = 0
    var reshapes = 0
    var partial: [ValueID: PartialShape] = [:]
    var constants: [ValueID: TensorData] = [:]

    init(opset: Int, limit: Int) { self.opset = opset; self.limit = limit }

    mutating func run(on f: inout Function) {
        var body: [Instruction] = []
        body.reserveCapacity(f.body.count)
        for var inst in f.body {
            if let c = inst.constantValue {
                record(constant: c, for: inst.results[0])
                body.append(inst)
                continue
            }
            let known = propagate(inst, in: f)
            if let known, let values = known.knownValues,
               let const = makeConstant(values, scalar: known.isScalar, replacing: inst, in: &f) {
                record(constant: const.constantValue!, for: const.results[0])
                body.append(const)
                folded += 1
                continue
            }
            if let tensors = smallEvaluation(inst, in: f) {
                let consts = Folding.constantInstructions(for: inst.results, tensors: tensors, in: &f, opset: opset, nodeName: inst.nodeName)
                for c in consts { record(constant: c.constantValue!, for: c.results[0]) }
                body += consts
                folded += 1
                continue
            }
            if let target = constantReshapeTarget(inst, in: f) {
                let v = f.addValue(target.type)
                body.append(Instruction(op: .constant, opset: opset, operands: [], results: [v],
                                        attributes: ["value": .tensor(target)]))
                constants[v] = target
                inst.operands[1] = v
                reshapes += 1
            }
            if let known { partial[inst.results[0]] = known }
            body.append(inst)
        }
        f.body = body
    }

    mutating func record(constant c: TensorData, for v: ValueID) {
        constants[v] = c
        guard c.dtype.isInteger, !c.isElided, let rank = c.type.shape.rank, rank <= 1,
              c.elementCount <= FoldShapeComputations.smallElementLimit,
              let values = c.integers(), values.count == c.elementCount else { return }
        partial[v] = PartialShape(elements: values.map(ShapeElement.known), isScalar: rank == 0)
    }

    /// The const replacing `inst` (one integer result, fully known as `values`), if its type allows.
    func makeConstant(_ values: [Int], scalar: Bool, replacing inst: Instruction, in f: inout Function) -> Instruction? {
        let r = inst.results[0]
        let declared = f.type(of: r)
        let shape = scalar ? [] : [values.count]
        guard declared.dtype.isInteger, declared.shape.isCompatible(with: Shape(static: shape)) else { return nil }
        let t = Tensor(int64s: values.map(Int64.init), dtype: declared.dtype, shape: shape)
        guard t.int64s.map(Int.init) == values else { return nil } // does not fit the dtype
        return Folding.constantInstructions(for: [r], tensors: [t], in: &f, opset: opset, nodeName: inst.nodeName)[0]
    }

    /// Any other instruction whose operands are all small constants (or a `Constant` in another form
    /// than `value`), evaluated, when its results are small.
    func smallEvaluation(_ inst: Instruction, in f: Function) -> [Tensor]? {
        guard !inst.operands.isEmpty || inst.op == .constant, inst.nestedFunctions.isEmpty else { return nil }
        for case let v? in inst.operands {
            guard let c = constants[v], c.elementCount <= FoldShapeComputations.smallElementLimit else { return nil }
        }
        guard let tensors = Folding.evaluate(inst, in: f, constants: constants,
                                             limit: min(limit, FoldShapeComputations.smallElementLimit * 8)),
              tensors.allSatisfy({ $0.count <= FoldShapeComputations.smallElementLimit }) else { return nil }
        return tensors
    }

    // MARK: Propagation

    func partialOperand(_ inst: Instruction, _ i: Int) -> PartialShape? {
        guard i < inst.operands.count, let v = inst.operands[i] else { return nil }
        return partial[v]
    }

    /// What is known of `inst`'s (single) result, for the ops shape computations use.
    func propagate(_ inst: Instruction, in f: Function) -> PartialShape? {
        guard inst.op.domain.isEmpty || inst.op.domain == "ai.onnx", inst.results.count == 1 else { return nil }
        let resultType = f.type(of: inst.results[0])
        guard resultType.dtype.isInteger else { return nil }
        switch inst.op.type {
        case "Shape":
            guard let x = inst.operands.first ?? nil, let dims = f.type(of: x).shape.dims else { return nil }
            guard let range = shapeRange(inst, rank: dims.count) else { return nil }
            return PartialShape(elements: range.map { ShapeElement(dims[$0], of: x, axis: $0) }, isScalar: false)
        case "Size":
            guard let x = inst.operands.first ?? nil, let sizes = f.type(of: x).shape.staticSizes,
                  let n = checkedElementCount(sizes) else { return nil }
            return PartialShape(elements: [.known(n)], isScalar: true)
        case "Identity":
            return partialOperand(inst, 0)
        case "Cast":
            guard let p = partialOperand(inst, 0), case .int(let code)? = inst.attributes["to"],
                  let to = DType(onnxCode: Int32(truncatingIfNeeded: code)), to == resultType.dtype else { return nil }
            return PartialShape(elements: p.elements.map { cast($0, to: to) }, isScalar: p.isScalar)
        case "Gather":
            guard let data = partialOperand(inst, 0), !data.isScalar, let indices = partialOperand(inst, 1),
                  let positions = indices.knownValues else { return nil }
            guard let axis = intAttribute(inst, "axis", default: 0), axis == 0 || axis == -1 else { return nil }
            let n = data.elements.count
            var out: [ShapeElement] = []
            for i in positions {
                let j = i < 0 ? i + n : i
                guard j >= 0 && j < n else { return nil }
                out.append(data.elements[j])
            }
            return PartialShape(elements: out, isScalar: indices.isScalar)
        case "Unsqueeze":
            guard let x = partialOperand(inst, 0), x.isScalar, let axes = axes(inst), axes == [0] || axes == [-1] else { return nil }
            return PartialShape(elements: x.elements, isScalar: false)
        case "Squeeze":
            // Absent axes squeeze every 1-sized dim: here the only one.
            guard let x = partialOperand(inst, 0), !x.isScalar, x.elements.count == 1, let axes = axes(inst),
                  axes == nil || axes == [0] || axes == [-1] else { return nil }
            return PartialShape(elements: x.elements, isScalar: true)
        case "Concat":
            guard let axis = intAttribute(inst, "axis", default: nil), axis == 0 || axis == -1 else { return nil }
            var out: [ShapeElement] = []
            for i in inst.operands.indices {
                guard let p = partialOperand(inst, i), !p.isScalar else { return nil }
                out += p.elements
            }
            return PartialShape(elements: out, isScalar: false)
        case "Slice":
            guard let x = partialOperand(inst, 0), !x.isScalar, let picks = slicePositions(inst, count: x.elements.count) else { return nil }
            return PartialShape(elements: picks.map { x.elements[$0] }, isScalar: false)
        case "Add", "Sub", "Mul", "Div":
            guard inst.opset >= 7, let a = partialOperand(inst, 0), let b = partialOperand(inst, 1) else { return nil }
            return arithmetic(inst.op.type, a, b, dtype: resultType.dtype)
        default:
            return nil
        }
    }

    /// Shape's [start, end) (attributes since opset 15, clamped to the rank).
    func shapeRange(_ inst: Instruction, rank: Int) -> Range<Int>? {
        guard inst.opset >= 15 else { return 0 ..< rank }
        func read(_ name: String) -> Int?? {
            switch inst.attributes[name] { case nil: return .some(nil); case .int(let v)?: return .some(v); default: return nil }
        }
        guard let start = read("start"), let end = read("end") else { return nil }
        func clamp(_ v: Int) -> Int { min(max(v < 0 ? v + rank : v, 0), rank) }
        let s = clamp(start ?? 0), e = clamp(end ?? rank)
        return s ..< max(s, e)
    }

    /// Unsqueeze/Squeeze axes: the attribute before opset 13, a constant operand since; `.some(nil)`
    /// when absent, nil when not known.
    func axes(_ inst: Instruction) -> [Int]?? {
        inst.opset < 13 ? Folding.intsAttribute(inst, "axes") : Folding.ints(inst, operand: 1, constants: constants)
    }

    /// An INT attribute, `fallback` when absent; nil when of another kind (or absent without fallback).
    func intAttribute(_ inst: Instruction, _ name: String, default fallback: Int?) -> Int? {
        switch inst.attributes[name] {
        case nil: return fallback
        case .int(let v)?: return v
        default: return nil
        }
    }

    /// Which elements of a 1-D value of `count` elements a Slice with constant bounds keeps.
    func slicePositions(_ inst: Instruction, count: Int) -> [Int]? {
        guard let bounds = Folding.sliceBounds(inst, constants: constants) else { return nil }
        let (starts, ends, axes, steps) = bounds
        guard starts.count == 1, (axes ?? [0]) == [0] || axes == [-1], (steps ?? [1]).count == 1 else { return nil }
        let step = steps?[0] ?? 1
        guard step != 0 else { return nil }
        var s = starts[0] < 0 ? starts[0] + count : starts[0]
        var e = ends[0] < 0 ? ends[0] + count : ends[0]
        var out: [Int] = []
        if step > 0 {
            s = min(max(s, 0), count); e = min(max(e, 0), count)
        } else {
            s = min(max(s, 0), count - 1); e = min(max(e, -1), count - 1)
        }
        var i = s
        while step > 0 ? i < e : i > e {
            out.append(i)
            let (next, overflow) = i.addingReportingOverflow(step) // a hostile step must not trap
            if overflow { break }
            i = next
        }
        return out
    }

    /// An element cast to another integer type: numbers that fit stay, sizes stay for 32/64-bit types.
    func cast(_ e: ShapeElement, to dtype: DType) -> ShapeElement {
        switch e {
        case .known(let v):
            let t = Tensor(int64s: [Int64(v)], dtype: dtype, shape: [1])
            return t.int64s[0] == Int64(v) ? e : .unknown
        case .symbol, .dim:
            return [.i64, .i32, .u64, .u32].contains(dtype) ? e : .unknown
        case .unknown:
            return .unknown
        }
    }

    /// Elementwise integer arithmetic with NumPy broadcasting of rank ≤ 1 operands. Numbers combine
    /// exactly (overflow or inexact division gives unknown); a size survives +0, -0, *1 and /1.
    func arithmetic(_ op: String, _ a: PartialShape, _ b: PartialShape, dtype: DType) -> PartialShape? {
        let n = max(a.elements.count, b.elements.count)
        guard a.elements.count == n || a.elements.count == 1, b.elements.count == n || b.elements.count == 1 else { return nil }
        func combine(_ x: ShapeElement, _ y: ShapeElement) -> ShapeElement {
            if let u = x.value, let v = y.value {
                let r: (Int, Bool)
                switch op {
                case "Add": r = u.addingReportingOverflow(v)
                case "Sub": r = u.subtractingReportingOverflow(v)
                case "Mul": r = u.multipliedReportingOverflow(by: v)
                default:
                    guard v != 0, u % v == 0 else { return .unknown }
                    r = u.dividedReportingOverflow(by: v)
                }
                guard !r.1 else { return .unknown }
                return cast(.known(r.0), to: dtype)
            }
            switch (op, y.value) {
            case ("Add", 0?), ("Sub", 0?), ("Mul", 1?), ("Div", 1?): return x.isSize ? x : .unknown
            default: break
            }
            switch (op, x.value) {
            case ("Add", 0?), ("Mul", 1?): return y.isSize ? y : .unknown
            default: return .unknown
            }
        }
        let elements = (0 ..< n).map { i in
            combine(a.elements[a.elements.count == 1 ? 0 : i], b.elements[b.elements.count == 1 ? 0 : i])
        }
        return PartialShape(elements: elements, isScalar: a.isScalar && b.isScalar)
    }

    // MARK: Reshape targets

    /// A constant for a Reshape's partly known target (see the type's comment), or nil.
    func constantReshapeTarget(_ inst: Instruction, in f: Function) -> TensorData? {
        guard inst.op.type == "Reshape", inst.op.domain.isEmpty || inst.op.domain == "ai.onnx", inst.opset >= 5,
              inst.operands.count == 2, let x = inst.operands[0], let s = inst.operands[1], constants[s] == nil,
              let target = partial[s], !target.isScalar, f.type(of: s).dtype == .i64 else { return nil }
        guard let allowZero = Folding.reshapeAllowsZero(inst) else { return nil }
        let inputDims = f.type(of: x).shape.dims
        var values: [Int?] = target.elements.map(\.value)
        // Copy the input's own dims (0), where the element is that dim at the same position.
        if !allowZero, let inputDims {
            for (j, e) in target.elements.enumerated() where values[j] == nil && j < inputDims.count {
                if e.isDim(inputDims[j], of: x, axis: j) { values[j] = 0 }
            }
        }
        let unknown = values.indices.filter { values[$0] == nil }
        if unknown.count == 1 {
            // -1 only when everything else is a literal positive size, so the inferred dim is unique.
            let others = values.indices.filter { $0 != unknown[0] }
            guard others.allSatisfy({ values[$0]! > 0 }) else { return nil }
            values[unknown[0]] = -1
        } else if !unknown.isEmpty {
            return nil
        }
        let resolved = values.map { Int64($0!) }
        return TensorData(type: TensorType(.i64, static: [resolved.count]), elements: resolved)
    }
}
