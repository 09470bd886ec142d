import GLMCIR
import GLMCOps

/// Lowering of SwiGLU, Det and TensorScatter to the kernels of `CPUKernelLibraryMore.swift`.
extension CPUPlanBuilder.Generator {
    static let lastSmallOps: Set<String> = ["SwiGLU", "Det", "TensorScatter"]

    mutating func lowerLastSmall(_ inst: Instruction) throws {
        includeReductionHelpers()
        if inst.op.type == "Det" { return try lowerDet(inst) }
        if inst.op.type == "TensorScatter" { return try lowerTensorScatter(inst) }
        guard inst.operands.count == 2, let av = inst.operands[0], let bv = inst.operands[1] else { throw unsupported(inst) }
        let a = try sizes(av, inst)
        guard let scalar = CScalar(f.type(of: av).dtype), scalar.isFloat, f.type(of: bv).dtype == scalar.dtype, try sizes(bv, inst) == a else {
            throw unsupported(inst, "on \(f.type(of: av)) and \(f.type(of: bv))")
        }
        addStep(kind: "swiglu", code: CPUKernelLibrary.swiGLU(name: nextSymbol, scalar: scalar, alpha: floatAttr(inst, "alpha", 1)),
                arguments: [try argument(av, inst), try argument(bv, inst), try output(inst)], range: a.reduce(1, *), work: 4)
    }

    mutating func lowerDet(_ inst: Instruction) throws {
        guard let xv = inst.operands.first ?? nil else { throw unsupported(inst) }
        let x = try sizes(xv, inst)
        guard let scalar = CScalar(f.type(of: xv).dtype), scalar.isFloat else { throw unsupported(inst, "on \(f.type(of: xv).dtype) tensors") }
        guard x.count >= 2, x[x.count - 1] == x[x.count - 2] else { throw unsupported(inst, "on a non-square input \(x)") }
        let n = x[x.count - 1]
        addStep(kind: "det", code: CPUKernelLibrary.determinant(name: nextSymbol, scalar: scalar, n: n),
                arguments: [try argument(xv, inst), try output(inst)], range: x.dropLast(2).reduce(1, *), work: n * n * n,
                scratchPerUnit: 8 * n * n)
    }

    mutating func lowerTensorScatter(_ inst: Instruction) throws {
        guard inst.operands.count >= 2, let pv = inst.operands[0], let uv = inst.operands[1] else { throw unsupported(inst) }
        let past = try sizes(pv, inst), update = try sizes(uv, inst)
        guard let scalar = CScalar(f.type(of: pv).dtype), f.type(of: uv).dtype == scalar.dtype, past.count == update.count, past.count >= 2 else {
            throw unsupported(inst, "on \(f.type(of: pv)) and \(f.type(of: uv))")
        }
        let axis = try normalizedAxis(intAttr(inst, "axis", -2), rank: past.count, inst)
        guard axis != 0, past.indices.allSatisfy({ $0 == axis || past[$0] == update[$0] }), update[axis] <= past[axis] else {
            throw unsupported(inst, "with an update \(update) that does not fit the cache \(past) along axis \(axis)")
        }
        var mode = "linear"
        if case .string(let m)? = inst.attributes["mode"] { mode = m }
        guard mode == "linear" || mode == "circular" else { throw unsupported(inst, "with mode '\(mode)'") }
        var arguments = [try argument(pv, inst), try argument(uv, inst)]
        let writeIndices = inst.operands.count > 2 ? inst.operands[2] : nil
        if let w = writeIndices {
            guard f.type(of: w).dtype == .i64, try sizes(w, inst) == [past[0]] else { throw unsupported(inst, "with write_indices \(f.type(of: w))") }
            arguments.append(try argument(w, inst))
        }
        arguments.append(try output(inst))
        let outer = past[..<axis].reduce(1, *)
        addStep(kind: "tensor_scatter",
                code: CPUKernelLibrary.tensorScatter(name: nextSymbol, scalar: scalar, maxLength: past[axis], length: update[axis],
                                                     inner: past[(axis + 1)...].reduce(1, *), perBatch: outer / max(past[0], 1),
                                                     hasWriteIndices: writeIndices != nil, circular: mode == "circular"),
                arguments: arguments, range: past.reduce(1, *), work: 1)
    }
}
