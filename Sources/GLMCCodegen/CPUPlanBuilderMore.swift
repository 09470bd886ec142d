import GLMCIR
import GLMCOps

/// Lowering of SwiGLU, Det, TensorScatter, Col2Im, training-mode BatchNormalization and Dropout with
/// a training_mode that is not a constant false to the kernels of `CPUKernelLibraryMore.swift`.
extension CPUPlanBuilder.Generator {
    static let lastSmallOps: Set<String> = ["SwiGLU", "Det", "TensorScatter", "Col2Im"]

    mutating func lowerLastSmall(_ inst: Instruction) throws {
        includeReductionHelpers()
        if inst.op.type == "Det" { return try lowerDet(inst) }
        if inst.op.type == "TensorScatter" { return try lowerTensorScatter(inst) }
        if inst.op.type == "Col2Im" { return try lowerCol2Im(inst) }
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

    mutating func lowerCol2Im(_ inst: Instruction) throws {
        guard inst.operands.count == 3, let xv = inst.operands[0], let iv = inst.operands[1], let bv = inst.operands[2] else { throw unsupported(inst) }
        let x = try sizes(xv, inst), y = try sizes(inst.results[0], inst)
        let image = try constantIntegers(iv, inst, what: "image_shape"), block = try constantIntegers(bv, inst, what: "block_shape")
        guard let scalar = CScalar(f.type(of: xv).dtype), scalar.isFloat else { throw unsupported(inst, "on \(f.type(of: xv).dtype) tensors") }
        let nd = image.count
        func ints(_ name: String, _ d: Int, _ count: Int) -> [Int] {
            if case .ints(let v)? = inst.attributes[name] { return v }
            return [Int](repeating: d, count: count)
        }
        let dilations = ints("dilations", 1, nd), pads = ints("pads", 0, 2 * nd), strides = ints("strides", 1, nd)
        guard x.count == 3, block.count == nd, dilations.count == nd, strides.count == nd, pads.count == 2 * nd,
              (image + block + dilations + strides).allSatisfy({ $0 > 0 }), pads.allSatisfy({ $0 >= 0 }) else {
            throw unsupported(inst, "with image \(image), block \(block) on \(x)")
        }
        let grid = (0 ..< nd).map { d -> Int in
            let extent = image[d] + pads[d] + pads[nd + d], span = dilations[d] * (block[d] - 1) + 1
            return extent < span ? 0 : (extent - span) / strides[d] + 1
        }
        let blockSize = block.reduce(1, *)
        guard x[1] % blockSize == 0, grid.reduce(1, *) == x[2], y == [x[0], x[1] / blockSize] + image else {
            throw unsupported(inst, "on \(x) that does not match image \(image) and block \(block)")
        }
        addStep(kind: "col2im", code: CPUKernelLibrary.col2Im(name: nextSymbol, scalar: scalar, image: image, block: block, grid: grid,
                                                               strides: strides, pads: pads, dilations: dilations),
                arguments: [try argument(xv, inst), try output(inst)], range: y.reduce(1, *), work: blockSize * nd)
    }

    mutating func lowerTrainingBatchNorm(_ inst: Instruction) throws {
        includeReductionHelpers()
        guard inst.operands.count == 5, inst.operands.allSatisfy({ $0 != nil }) else { throw unsupported(inst) }
        let operands = inst.operands.map { $0! }, x = try sizes(operands[0], inst)
        guard x.count >= 2 else { throw unsupported(inst, "of rank \(x.count)") }
        func floatScalar(_ v: ValueID) throws -> CScalar {
            guard let s = CScalar(f.type(of: v).dtype), s.isFloat else { throw unsupported(inst, "on \(f.type(of: v).dtype) tensors") }
            return s
        }
        let xs = try floatScalar(operands[0])
        let parameters = try operands.dropFirst().map { v -> CScalar in
            guard try sizes(v, inst).reduce(1, *) == x[1] else { throw unsupported(inst, "with per-channel parameters of shape \(try sizes(v, inst))") }
            return try floatScalar(v)
        }
        var args = try operands.map { try argument($0, inst) }
        args.append(try output(inst))
        var running: [CScalar?] = [nil, nil]
        for k in 1 ..< min(inst.results.count, 3) where isUsed(inst.results[k]) {
            guard let b = bufferOf[inst.results[k]] else { throw unsupported(inst, "whose output \(k) has no buffer") }
            running[k - 1] = try floatScalar(inst.results[k])
            args.append(.buffer(b))
        }
        let spatial = x.dropFirst(2).reduce(1, *)
        addStep(kind: "batch_norm_training",
                code: CPUKernelLibrary.trainingBatchNorm(name: nextSymbol, x: xs, parameters: parameters, runningMean: running[0], runningVar: running[1],
                                                         batch: x[0], channels: x[1], spatial: spatial,
                                                         epsilon: floatAttr(inst, "epsilon", 1e-5), momentum: floatAttr(inst, "momentum", 0.9)),
                arguments: args, range: x[1], work: 3 * x[0] * spatial)
    }

    mutating func lowerRuntimeDropout(_ inst: Instruction) throws {
        includeReductionHelpers()
        guard let xv = inst.operands.first ?? nil, let x = CScalar(f.type(of: xv).dtype), x.isFloat else { throw unsupported(inst, "in training mode on non-float data") }
        let rv = inst.operands.count > 1 ? inst.operands[1] : nil, tv = inst.operands.count > 2 ? inst.operands[2] : nil
        var args = [try argument(xv, inst)]
        var ratio: CScalar?, training: CScalar?
        if let rv {
            guard let r = CScalar(f.type(of: rv).dtype), r.isFloat, try sizes(rv, inst).reduce(1, *) == 1 else { throw unsupported(inst, "with ratio \(f.type(of: rv))") }
            ratio = r; args.append(try argument(rv, inst))
        }
        if let tv {
            guard f.type(of: tv).dtype == .bool, let t = CScalar(.bool), try sizes(tv, inst).reduce(1, *) == 1 else { throw unsupported(inst, "with training_mode \(f.type(of: tv))") }
            training = t; args.append(try argument(tv, inst))
        }
        args.append(try output(inst))
        var mask: CScalar?
        if inst.results.count > 1, isUsed(inst.results[1]) {
            guard let b = bufferOf[inst.results[1]], let m = CScalar(f.type(of: inst.results[1]).dtype) else { throw unsupported(inst, "whose mask has no buffer") }
            mask = m; args.append(.buffer(b))
        }
        let count = try sizes(xv, inst).reduce(1, *)
        addStep(kind: "dropout", code: CPUKernelLibrary.runtimeDropout(name: nextSymbol, x: x, ratio: ratio, training: training, mask: mask, count: count,
                                                                       seed: UInt32(truncatingIfNeeded: intAttr(inst, "seed", 0))),
                arguments: args, range: 1, work: count * 8)
    }
}
