import GLMCIR
import GLMCOps
import GLMCPlan

/// Lowering of BatchNormalization, LRN and data movement to the kernels of
/// `CPUKernelLibraryOps.swift`.
extension CPUPlanBuilder.Generator {
    static let moreOps: Set<String> = [
        "BatchNormalization", "LRN", "Concat", "Transpose", "Gather", "Dropout",
    ]

    func sizes(_ v: ValueID, _ inst: Instruction) throws -> [Int] {
        guard let s = f.type(of: v).shape.staticSizes else { throw unsupported(inst, "on a dynamic shape") }
        return s
    }

    func intAttr(_ inst: Instruction, _ name: String, _ d: Int) -> Int {
        if case .int(let v)? = inst.attributes[name] { return v }
        return d
    }

    func floatAttr(_ inst: Instruction, _ name: String, _ d: Float) -> Float {
        if case .float(let v)? = inst.attributes[name] { return v }
        return d
    }

    /// Whether a runtime instruction reads `v` or the function returns it.
    func isUsed(_ v: ValueID) -> Bool {
        f.outputs.contains(v) || f.body.contains { $0.operands.contains(v) || $0.nestedFunctions.contains { $0.captures.contains { $0.outer == v } } }
    }

    func normalizedAxis(_ axis: Int, rank: Int, _ inst: Instruction) throws -> Int {
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0, a < max(rank, 1) else { throw unsupported(inst, "with axis \(axis) on rank \(rank)") }
        return a
    }

    func requireOnlyFirstResultUsed(_ inst: Instruction) throws {
        for r in inst.results.dropFirst() where isUsed(r) {
            throw unsupported(inst, "with its optional output '\(f.name(of: r))' in use")
        }
    }

    mutating func output(_ inst: Instruction) throws -> PlanArgument {
        guard let b = bufferOf[inst.results[0]] else { throw unsupported(inst, "whose result has no buffer") }
        return .buffer(b)
    }

    mutating func lowerMore(_ inst: Instruction) throws {
        let y = inst.results[0]
        let ySizes = try sizes(y, inst)
        let yCount = ySizes.reduce(1, *)
        switch inst.op.type {
        case "BatchNormalization":
            if inst.opset >= 14, intAttr(inst, "training_mode", 0) != 0 { return try lowerTrainingBatchNorm(inst) }
            try requireF32(inst)
            try requireOnlyFirstResultUsed(inst)
            if inst.opset < 9, intAttr(inst, "spatial", 1) == 0 { throw unsupported(inst, "with spatial = 0") }
            if intAttr(inst, "training_mode", 0) != 0 { throw unsupported(inst, "in training mode") }
            guard inst.operands.count == 5, inst.operands.allSatisfy({ $0 != nil }) else { throw unsupported(inst) }
            let x = try sizes(inst.operands[0]!, inst)
            guard x.count >= 2 else { throw unsupported(inst, "of rank \(x.count)") }
            for v in inst.operands.dropFirst() where try sizes(v!, inst).reduce(1, *) != x[1] {
                throw unsupported(inst, "with per-channel parameters of shape \(try sizes(v!, inst))")
            }
            let size = x.dropFirst(2).reduce(1, *)
            var args: [PlanArgument] = []
            for v in inst.operands { args.append(try argument(v!, inst)) }
            args.append(try output(inst))
            addStep(kind: "batch_norm", code: CPUKernelLibrary.batchNorm(name: nextSymbol, channels: x[1], planes: x[0] * x[1], size: size,
                                                                         epsilon: floatAttr(inst, "epsilon", 1e-5)),
                    arguments: args, range: x[0] * x[1], work: size)
        case "LRN":
            try requireF32(inst)
            let x = try sizes(inst.operands[0]!, inst)
            guard x.count >= 3 else { throw unsupported(inst, "of rank \(x.count)") }
            let size = intAttr(inst, "size", 0)
            guard size >= 1 else { throw unsupported(inst, "without a size") }
            let plane = x.dropFirst(2).reduce(1, *)
            addStep(kind: "lrn", code: CPUKernelLibrary.lrn(name: nextSymbol, channels: x[1], size: size, plane: plane,
                                                            alpha: floatAttr(inst, "alpha", 1e-4), beta: floatAttr(inst, "beta", 0.75),
                                                            bias: floatAttr(inst, "bias", 1)),
                    arguments: [try argument(inst.operands[0]!, inst), try output(inst)], range: x[0] * x[1], work: plane * size * 2)
        case "Concat":
            // Its operands' producers wrote straight into the result.
            if concatenatedInPlace.contains(y) { return }
            let t = f.type(of: y)
            guard t.dtype.byteSize > 0 else { throw unsupported(inst, "on \(t.dtype) tensors") }
            let axis = try normalizedAxis(intAttr(inst, "axis", 0), rank: ySizes.count, inst)
            let outer = ySizes[..<axis].reduce(1, *)
            var args: [PlanArgument] = [], chunks: [Int] = []
            for case let v? in inst.operands {
                guard f.type(of: v).dtype == t.dtype else { throw unsupported(inst, "on mixed types") }
                chunks.append(try sizes(v, inst)[axis...].reduce(1, *) * t.dtype.byteSize)
                args.append(try argument(v, inst))
            }
            guard chunks.reduce(0, +) * outer == yCount * t.dtype.byteSize else { throw unsupported(inst, "with inconsistent shapes") }
            args.append(try output(inst))
            addStep(kind: "concat", code: CPUKernelLibrary.concat(name: nextSymbol, outer: outer, chunks: chunks),
                    arguments: args, range: outer, work: max(1, chunks.reduce(0, +) / 16))
        case "Transpose":
            let x = try sizes(inst.operands[0]!, inst)
            let bytes = f.type(of: y).dtype.byteSize
            guard [1, 2, 4, 8].contains(bytes) else { throw unsupported(inst, "on \(f.type(of: y).dtype) tensors") }
            var perm = Array((0 ..< x.count).reversed())
            if case .ints(let p)? = inst.attributes["perm"] { perm = p }
            guard perm.count == x.count, Set(perm) == Set(0 ..< x.count) else { throw unsupported(inst, "with perm \(perm)") }
            var strides = [Int](repeating: 1, count: x.count)
            for d in stride(from: x.count - 2, through: 0, by: -1) { strides[d] = strides[d + 1] * x[d + 1] }
            addStep(kind: "transpose", code: CPUKernelLibrary.transpose(name: nextSymbol, outShape: perm.map { x[$0] },
                                                                        inStrides: perm.map { strides[$0] }, elementBytes: bytes),
                    arguments: [try argument(inst.operands[0]!, inst), try output(inst)], range: yCount, work: 4)
        case "Gather":
            guard let dv = inst.operands[0], let iv = inst.operands[1] else { throw unsupported(inst) }
            let data = try sizes(dv, inst), count = try sizes(iv, inst).reduce(1, *)
            let bytes = f.type(of: dv).dtype.byteSize, indexType = f.type(of: iv).dtype
            guard bytes > 0 else { throw unsupported(inst, "on \(f.type(of: dv).dtype) tensors") }
            guard indexType == .i64 || indexType == .i32 else { throw unsupported(inst, "with \(indexType) indices") }
            let axis = try normalizedAxis(intAttr(inst, "axis", 0), rank: data.count, inst)
            let outer = data[..<axis].reduce(1, *), inner = data.dropFirst(axis + 1).reduce(1, *) * bytes
            addStep(kind: "gather", code: CPUKernelLibrary.gather(name: nextSymbol, outer: outer, axisLen: data[axis], innerBytes: inner,
                                                                  indices: count, indexBytes: indexType.byteSize),
                    arguments: [try argument(dv, inst), try argument(iv, inst), try output(inst)], range: outer * count, work: max(1, inner / 16))
        default:  // Dropout (inference): a copy of its input, and an all-true mask if that is used.
            if inst.operands.count > 2, let tv = inst.operands[2] {
                guard let c = constants[tv], c.elementCount == 1, c.dtype == .bool, !c.elements(as: Bool.self)[0] else {
                    return try lowerRuntimeDropout(inst)
                }
            }
            guard let x = inst.operands[0] else { throw unsupported(inst) }
            let bytes = byteCount(y)
            guard byteCount(x) == bytes else { throw unsupported(inst, "with inconsistent shapes") }
            addStep(kind: "copy", code: CPUKernelLibrary.copy(name: nextSymbol, bytes: bytes),
                    arguments: [try argument(x, inst), try output(inst)], range: bytes, work: 1)
            if inst.results.count > 1, isUsed(inst.results[1]) {
                let mask = inst.results[1]
                guard let b = bufferOf[mask], let scalar = CScalar(f.type(of: mask).dtype) else { throw unsupported(inst, "whose mask has no buffer") }
                includeReductionHelpers()
                addStep(kind: "one_fill", code: CPUKernelLibrary.oneFill(name: nextSymbol, scalar: scalar),
                        arguments: [.buffer(b)], range: try sizes(mask, inst).reduce(1, *), work: 1)
            }
        }
    }
}
