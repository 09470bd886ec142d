import GLMCIR
import GLMCOps

/// Where every intermediate tensor of a function lives in one preallocated arena.
///
/// Intermediates are the results of the instructions that compute at run time and are not
/// returned. Not planned: arguments (the caller's buffers), returned values (they get their own
/// buffers, handed to the caller), constants and values computed from constants alone (weights,
/// materialized once at load time), and the temporaries inside a `glmc.Fused` body (one kernel:
/// the group is one instruction here).
public struct MemoryPlan: Sendable {
    /// Every offset and every reserved size is a multiple of this.
    public static let alignment = 64

    /// Size of the arena: the end of the highest placed tensor.
    public var arenaBytes: Int
    /// What separate buffers would need: the sum of the planned intermediates' sizes, each rounded
    /// up to the alignment (so `arenaBytes <= intermediateBytes` always).
    public var intermediateBytes: Int
    /// Arena offset of each planned intermediate.
    public var offsets: [ValueID: Int]
    /// Bytes of each planned intermediate (element count × element size, not rounded).
    public var sizes: [ValueID: Int]
    /// Body indices from the defining instruction to the last reader (inclusive) of each planned
    /// intermediate. Tensors whose lifetimes overlap never share bytes, except the operands of a
    /// Concat placed inside its result (`concatenatedInPlace`).
    public var lifetimes: [ValueID: ClosedRange<Int>]
    /// The results of Concats whose operands were placed inside them, each at the bytes it fills
    /// (only with `concatInPlace`): those Concats copy nothing.
    public var concatenatedInPlace: Set<ValueID> = []
    /// Intermediates whose size is not known statically (symbolic or unknown dimensions, unknown
    /// rank, strings), in definition order.
    public var unplanned: [ValueID]

    /// One line for `glmc dump`:
    /// `memory: arena 1.23 MiB for 45 intermediates (sum 6.78 MiB, 18% of it), 64-byte aligned`.
    public var summary: String {
        if offsets.isEmpty {
            return unplanned.isEmpty ? "memory: no intermediates"
                : "memory: not planned: symbolic shapes (\(unplanned.count) intermediates)"
        }
        let share = intermediateBytes > 0 ? (arenaBytes * 100 + intermediateBytes / 2) / intermediateBytes : 0
        var line = "memory: arena \(Self.bytesText(arenaBytes)) for \(offsets.count) intermediates"
            + " (sum \(Self.bytesText(intermediateBytes)), \(share)% of it), \(Self.alignment)-byte aligned"
        if !unplanned.isEmpty { line += "; \(unplanned.count) more not planned: symbolic shapes" }
        return line
    }

    /// `512 B`, `1.50 KiB`, `6.78 MiB`, `1.02 GiB`.
    static func bytesText(_ bytes: Int) -> String {
        guard bytes >= 1024 else { return "\(bytes) B" }
        var value = Double(bytes) / 1024
        var unit = "KiB"
        for next in ["MiB", "GiB"] where value >= 1024 { value /= 1024; unit = next }
        let hundredths = Int((value * 100).rounded())
        let fraction = hundredths % 100
        return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction) \(unit)"
    }
}

/// Static memory planning of a function's intermediates (an analysis; it changes nothing).
///
/// Liveness: a value is live from the instruction defining it to its last reader (an operand or a
/// capture of a nested region; a `glmc.Fused` group is one instruction); a value nothing reads is
/// live at its definition only. Lifetimes are inclusive, so an instruction's result never shares
/// bytes with its operands (no in-place reuse).
///
/// Assignment is TFLite's "greedy by size": tensors in descending size (ties in definition order);
/// each goes into the smallest gap between the already placed tensors whose lifetimes overlap its
/// own that is large enough (best fit), or after the last of them. Sizes are rounded up to 64 bytes,
/// so every offset is 64-byte aligned.
///
/// With `concatInPlace`, a Concat whose operands are contiguous blocks of its result (every dim
/// before the axis is 1) and are all planned intermediates of their own, each block 64-byte
/// aligned, has its operands placed inside it: their producers write straight into the result
/// (as ONNX Runtime does for Concat), and the Concat is left with nothing to copy. The result is
/// placed as one tensor live from its first operand's definition to the last use of any of them.
public enum MemoryPlanner {
    public static func plan(_ f: Function, concatInPlace: Bool = false) -> MemoryPlan {
        let constant = f.valuesComputedFromConstants()
        let returned = Set(f.outputs)
        var lastUse: [ValueID: Int] = [:]
        for (i, inst) in f.body.enumerated() {
            for case let v? in inst.operands { lastUse[v] = i }
            for nested in inst.nestedFunctions { for c in nested.captures { lastUse[c.outer] = i } }
        }

        var plan = MemoryPlan(arenaBytes: 0, intermediateBytes: 0, offsets: [:], sizes: [:], lifetimes: [:], unplanned: [])
        var order: [(value: ValueID, reserved: Int, defined: Int)] = []
        for (i, inst) in f.body.enumerated() {
            for r in inst.results where !constant.contains(r) && !returned.contains(r) {
                let type = f.type(of: r)
                guard type.dtype.byteSize > 0, let sizes = type.shape.staticSizes, let count = checkedElementCount(sizes),
                      case (let bytes, false) = count.multipliedReportingOverflow(by: type.dtype.byteSize) else {
                    plan.unplanned.append(r)
                    continue
                }
                let reserved = (bytes + MemoryPlan.alignment - 1) / MemoryPlan.alignment * MemoryPlan.alignment
                plan.sizes[r] = bytes
                plan.lifetimes[r] = i ... max(i, lastUse[r] ?? i)
                plan.intermediateBytes += reserved
                order.append((r, reserved, i))
            }
        }
        // Operands placed inside a Concat's result: the result and the byte offset within it.
        var inside: [ValueID: (concat: ValueID, offset: Int)] = [:]
        if concatInPlace {
            inside = concatenationsInPlace(f, planned: plan.sizes)
            plan.concatenatedInPlace = Set(inside.values.map(\.concat))
        }
        func outermost(_ v: ValueID) -> (value: ValueID, offset: Int) {
            guard let (c, o) = inside[v] else { return (v, 0) }
            let (root, offset) = outermost(c)
            return (root, offset + o)
        }
        var span: [ValueID: ClosedRange<Int>] = [:]
        for (v, life) in plan.lifetimes {
            let root = outermost(v).value
            span[root] = span[root].map { min($0.lowerBound, life.lowerBound) ... max($0.upperBound, life.upperBound) } ?? life
        }
        order.removeAll { inside[$0.value] != nil }
        order.sort { $0.reserved != $1.reserved ? $0.reserved > $1.reserved : $0.defined < $1.defined }

        var placed: [(offset: Int, end: Int, life: ClosedRange<Int>)] = []
        for (value, reserved, _) in order {
            let life = span[value]!
            let conflicts = placed.filter { $0.life.overlaps(life) }.sorted { $0.offset < $1.offset }
            var cursor = 0
            var best: (offset: Int, gap: Int)?
            for c in conflicts {
                let gap = c.offset - cursor
                if gap >= reserved, best == nil || gap < best!.gap { best = (cursor, gap) }
                cursor = max(cursor, c.end)
            }
            let offset = best?.offset ?? cursor
            placed.append((offset, offset + reserved, life))
            plan.offsets[value] = offset
            plan.arenaBytes = max(plan.arenaBytes, offset + reserved)
        }
        for v in inside.keys {
            let (root, offset) = outermost(v)
            plan.offsets[v] = plan.offsets[root]! + offset
        }
        return plan
    }

    /// The operands of Concats that can live inside the result (see `plan`), each with the Concat
    /// result and its byte offset there. An operand goes into one Concat at most.
    static func concatenationsInPlace(_ f: Function, planned sizes: [ValueID: Int]) -> [ValueID: (concat: ValueID, offset: Int)] {
        var inside: [ValueID: (concat: ValueID, offset: Int)] = [:]
        for inst in f.body where inst.op.domain.isEmpty && inst.op.type == "Concat" && inst.results.count == 1 {
            let y = inst.results[0]
            guard sizes[y] != nil, let shape = f.type(of: y).shape.staticSizes, case .int(var axis)? = inst.attributes["axis"] else { continue }
            if axis < 0 { axis += shape.count }
            guard axis >= 0, axis < shape.count, shape[..<axis].allSatisfy({ $0 == 1 }) else { continue }
            let operands = inst.operands.compactMap { $0 }
            guard operands.count == inst.operands.count, Set(operands).count == operands.count,
                  operands.allSatisfy({ sizes[$0] != nil && inside[$0] == nil && $0 != y }) else { continue }
            var offset = 0, blocks: [(ValueID, Int)] = []
            for v in operands {
                guard offset % MemoryPlan.alignment == 0 else { break }
                blocks.append((v, offset))
                offset += sizes[v]!
            }
            guard blocks.count == operands.count, offset == sizes[y]! else { continue }
            for (v, o) in blocks { inside[v] = (y, o) }
        }
        return inside
    }
}

extension Function {
    /// The results of constants and of instructions computed from constants alone (no arguments,
    /// captures or nested regions involved): weights that a runtime materializes once, such as the
    /// ConstantOfShape initializers of opset-9 models.
    func valuesComputedFromConstants() -> Set<ValueID> {
        var constant = Set<ValueID>()
        for inst in body
        where inst.constantValue != nil
            || (inst.nestedFunctions.isEmpty && inst.operands.allSatisfy { $0.map(constant.contains) ?? true }) {
            constant.formUnion(inst.results)
        }
        return constant
    }
}
