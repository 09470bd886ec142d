import Foundation
import GLMCIR
import GLMCOps
import GLMCPlan

/// Ops whose output shape depends on input values (NonZero, Unique, NonMaxSuppression, and on
/// strings StringSplit and StringNormalizer with stop words) get a static upper-bound shape at plan
/// time (their "bounded" results): the buffer is sized for the bound, the kernel (one sequential
/// work-item) writes the result densely in its actual shape at the buffer's start and the actual
/// extent into an i64 slot of the arena, and the manifest's output entry names the slot per
/// runtime-determined dim (`dynamic_dims`); executors trim the output.
///
/// A string result whose extent has no static bound (StringSplit without maxsplit: a string may
/// split into any number of parts) is *heap-resident* instead: the kernel allocates its elements on
/// the run's string heap once it knows the extent, and its arena buffer holds only the pointer to
/// them (8 bytes; the manifest writes the dim as -1, Docs/PlanFormat.md).
///
/// Restriction: a bounded result may only be a graph output, directly or through Identity. Any
/// other reader is refused, since the static kernels after it would read the bound, not the data.
extension CPUPlanBuilder {
    /// A result whose extent along `dims` is known only at run time; `owner` is the first result of
    /// the value-shaped instruction that computes it (the key of its extent slot).
    struct BoundedValue: Equatable {
        var dims: [Int]
        var owner: ValueID
        /// No static bound: the elements live on the string heap, the buffer holds a pointer to
        /// them, and the value's IR type has 0 along `dims` (a placeholder; nothing reads it).
        var heapResident = false
    }

    /// Whether the data of `inst` decides its results' shapes: the ops of `valueShapedOps`,
    /// StringSplit, and StringNormalizer with stop words.
    public static func isValueShaped(_ inst: Instruction) -> Bool {
        guard inst.op.domain.isEmpty else { return false }
        if valueShapedOps.contains(inst.op.type) || inst.op.type == "StringSplit" { return true }
        guard inst.op.type == "StringNormalizer", case .strings(let stopWords)? = inst.attributes["stopwords"] else { return false }
        return !stopWords.isEmpty
    }

    /// The most bytes of pointers a bounded StringSplit result may reserve in the arena; a larger
    /// bound (a huge maxsplit) makes it heap-resident like an unbounded one.
    static let boundedStringSplitBytes = 1 << 24

    /// Gives each value-shaped result its upper-bound type (in place, so shape checks and the
    /// memory planner see static shapes), follows them through Identity, and refuses every other
    /// reader. Returns the bounded values (results whose shape is static anyway are not listed).
    static func boundValueShapedResults(in f: inout Function, target: PlanTarget) throws -> [ValueID: BoundedValue] {
        var bounded: [ValueID: BoundedValue] = [:]
        var producer: [ValueID: Instruction] = [:]
        var constants: [ValueID: TensorData] = [:]
        for inst in f.body {
            if let c = inst.constantValue { constants[inst.results[0]] = c; continue }
            for case let v? in inst.operands {
                guard let b = bounded[v] else { continue }
                if inst.op.domain.isEmpty, inst.op.type == "Identity", inst.results.count == 1 {
                    f.values[inst.results[0].index].type = f.type(of: v)
                    bounded[inst.results[0]] = b
                    producer[inst.results[0]] = producer[v]
                    continue
                }
                throw refusal(reading: v, by: inst, source: producer[v]!, in: f, target: target)
            }
            for nested in inst.nestedFunctions {
                for capture in nested.captures where bounded[capture.outer] != nil {
                    throw refusal(reading: capture.outer, by: inst, source: producer[capture.outer]!, in: f, target: target)
                }
            }
            // Even a static declared type (a model's outputs often record one run's shapes) is
            // replaced: the data decides the extent.
            // Every StringNormalizer: shape inference leaves an empty input's result (one empty
            // string) unknown.
            guard isValueShaped(inst) || (inst.op.domain.isEmpty && inst.op.type == "StringNormalizer") else { continue }
            let bounds = try upperBounds(of: inst, in: f, constants: constants, target: target)
            for (r, bound) in zip(inst.results, bounds) {
                f.values[r.index].type = TensorType(f.type(of: r).dtype, Shape(static: bound.shape))
                guard !bound.dims.isEmpty else { continue }
                bounded[r] = BoundedValue(dims: bound.dims, owner: inst.results[0], heapResident: bound.heapResident)
                producer[r] = inst
            }
        }
        return bounded
    }

    /// The refusal of a reader of a bounded result.
    static func refusal(reading v: ValueID, by reader: Instruction, source: Instruction, in f: Function, target: PlanTarget) -> GLMCError {
        let node = { (i: Instruction) in i.nodeName.isEmpty ? "" : " (node '\(i.nodeName)')" }
        return GLMCError("unsupported: --target \(target.rawValue) cannot compile \(reader.op)\(node(reader)): it reads '\(f.name(of: v))', whose shape \(source.op)\(node(source)) decides from input values; a plan supports such a result only as a graph output (directly or through Identity)")
    }

    /// Each result's upper-bound shape and the dims of it that are runtime-determined (with
    /// `heapResident`, dims without a bound, 0 in `shape`).
    static func upperBounds(of inst: Instruction, in f: Function, constants: [ValueID: TensorData],
                            target: PlanTarget) throws -> [(shape: [Int], dims: [Int], heapResident: Bool)] {
        let node = inst.nodeName.isEmpty ? "" : " (node '\(inst.nodeName)')"
        func operandSizes(_ i: Int) throws -> [Int] {
            guard i < inst.operands.count, let v = inst.operands[i] else {
                throw GLMCError("unsupported: --target \(target.rawValue) cannot compile \(inst.op)\(node) without operand \(i)")
            }
            guard let s = f.type(of: v).shape.staticSizes else {
                throw GLMCError("--target \(target.rawValue) needs static shapes: '\(f.name(of: v))' (operand \(i) of \(inst.op)\(node)) is \(f.type(of: v)); bind symbolic inputs with --input-shape")
            }
            return s
        }
        switch inst.op.type {
        case "NonZero":
            let x = try operandSizes(0)
            return [([max(x.count, 1), x.reduce(1, *)], [1], false)]
        case "Unique":
            let x = try operandSizes(0)
            var y = [x.reduce(1, *)], axis = 0
            if case .int(let a)? = inst.attributes["axis"] {
                axis = a < 0 ? a + x.count : a
                guard axis >= 0, axis < x.count else {
                    throw GLMCError("unsupported: --target \(target.rawValue) cannot compile \(inst.op)\(node) with axis \(a) on rank \(x.count)")
                }
                y = x
            }
            let slices = y[axis]
            return Array([(y, [axis], false), ([slices], [0], false), ([slices], [], false), ([slices], [0], false)].prefix(inst.results.count))
        case "NonMaxSuppression":
            let boxes = try operandSizes(0), scores = try operandSizes(1)
            guard boxes.count == 3, boxes[2] == 4, scores.count == 3, scores[0] == boxes[0], scores[2] == boxes[1] else {
                throw GLMCError("\(inst.op)\(node): boxes \(boxes) and scores \(scores) must be [B, N, 4] and [B, C, N]")
            }
            // A constant max_output_boxes_per_class bounds each class's selection further.
            var perClass = boxes[1]
            if inst.operands.count > 2, let m = inst.operands[2] {
                if let c = constants[m] { perClass = min(perClass, max(0, Int(clamping: (try Tensor(c)).int64s.first ?? 0))) }
            } else {
                perClass = 0
            }
            return [([scores[0] * scores[1] * perClass, 3], [0], false)]
        case "StringSplit":
            // Y: [...x, parts], Z (the part counts): x's shape. maxsplit bounds the parts.
            let x = try operandSizes(0), count = x.reduce(1, *)
            var maxSplit: Int?
            if case .int(let m)? = inst.attributes["maxsplit"], m >= 0 { maxSplit = m }
            if let m = maxSplit, m < Int.max, m + 1 <= boundedStringSplitBytes / 8 / max(count, 1) {
                return [(x + [m + 1], [x.count], false), (x, [], false)]
            }
            return [(x + [0], [x.count], true), (x, [], false)]
        case "StringNormalizer":
            // [C] or [1, C]: at most C kept, and an empty result is one empty string.
            let x = try operandSizes(0)
            guard x.count == 1 || (x.count == 2 && x[0] == 1) else {
                throw GLMCError("\(inst.op)\(node): input must be [C] or [1, C], got \(x)")
            }
            let c = x[x.count - 1]
            var stopWords = false
            if case .strings(let s)? = inst.attributes["stopwords"] { stopWords = !s.isEmpty }
            return [(Array(x.dropLast()) + [max(c, 1)], stopWords ? [x.count - 1] : [], false)]
        default:
            throw GLMCError("unsupported: --target \(target.rawValue) cannot compile \(inst.op)\(node)")
        }
    }
}

extension CPUPlanBuilder.Generator {
    /// The extent slot (an 8-byte arena buffer) of each bounded result's owner.
    func extentSlot(_ v: ValueID) -> Int? { bounded[v].flatMap { extentSlots[$0.owner] } }

    /// NonZero, Unique, NonMaxSuppression: one sequential kernel (range 1) writing its bounded
    /// results densely and the number of rows / unique slices / selected boxes into the slot.
    mutating func lowerValueShaped(_ inst: Instruction) throws {
        guard let slot = extentSlot(inst.results[0]) else {
            throw unsupported(inst, "whose result shape is not bounded")
        }
        let results = inst.results.map { bufferOf[$0].map(PlanArgument.buffer) }
        var args: [PlanArgument] = []
        for case let v? in inst.operands { args.append(try argument(v, inst)) }
        args += results.compactMap { $0 } + [.buffer(slot)]
        guard let x = inst.operands.first ?? nil, let scalar = CScalar(f.type(of: x).dtype) else { throw unsupported(inst, "on this type") }
        if scalar.dtype == .f16 || scalar.dtype == .bf16 || inst.op.type == "NonMaxSuppression" {
            if !source.contains("#define GLMCR_HELPERS") { source += "\n" + CPUKernelLibrary.reductionHelpers }
        }
        let xSizes = try sizes(x, inst)
        switch inst.op.type {
        case "NonZero":
            guard results[0] != nil else { throw unsupported(inst, "whose result has no buffer") }
            addStep(kind: "nonzero", code: CPUKernelLibrary.nonZero(name: nextSymbol, scalar: scalar, shape: xSizes.isEmpty ? [1] : xSizes),
                    arguments: args, range: 1, work: xSizes.reduce(1, *))
        case "Unique":
            var outer = 1, slices = xSizes.reduce(1, *), inner = 1
            if case .int(let a)? = inst.attributes["axis"] {
                let axis = try normalizedAxis(a, rank: xSizes.count, inst)
                outer = xSizes[..<axis].reduce(1, *); slices = xSizes[axis]; inner = xSizes[(axis + 1)...].reduce(1, *)
            }
            let present = (0 ..< 4).map { $0 < results.count && results[$0] != nil }
            addStep(kind: "unique", code: CPUKernelLibrary.unique(name: nextSymbol, scalar: scalar, outer: outer, slices: slices, inner: inner,
                                                                 sorted: intAttr(inst, "sorted", 1) != 0, outputs: present),
                    arguments: args, range: 1, work: max(1, slices) * outer * inner * 16, scratchPerUnit: 8 * 6 * max(1, slices))
        case "NonMaxSuppression":
            let scoreType = f.type(of: inst.operands[1]!).dtype
            guard let scores = CScalar(scoreType), scalar.isFloat, scores.isFloat else { throw unsupported(inst, "on integer boxes or scores") }
            func optional(_ i: Int) -> (CScalar, count: Int)? {
                guard i < inst.operands.count, let v = inst.operands[i], let s = CScalar(f.type(of: v).dtype) else { return nil }
                return (s, f.type(of: v).shape.staticSizes?.reduce(1, *) ?? 0)
            }
            let maxCount = optional(2), iou = optional(3), scoreThreshold = optional(4)
            if let maxCount, maxCount.0.isFloat { throw unsupported(inst, "with a floating-point max_output_boxes_per_class") }
            let scoreSizes = try sizes(inst.operands[1]!, inst)
            let nms = CPUKernelLibrary.NMSShape(batches: scoreSizes[0], classes: scoreSizes[1], boxes: scoreSizes[2],
                                                centerPointBox: intAttr(inst, "center_point_box", 0) != 0,
                                                maxOutput: maxCount.map { ($0.0, $0.count) }, iouThreshold: iou.map { ($0.0, $0.count) },
                                                scoreThreshold: scoreThreshold.map { ($0.0, $0.count) },
                                                writesResult: results[0] != nil)
            addStep(kind: "non_max_suppression", code: CPUKernelLibrary.nonMaxSuppression(name: nextSymbol, boxes: scalar, scores: scores, nms),
                    arguments: args, range: 1, work: max(1, scoreSizes.reduce(1, *)) * 16, scratchPerUnit: 8 * 3 * max(1, scoreSizes[2]))
        default:
            throw unsupported(inst)
        }
    }
}
