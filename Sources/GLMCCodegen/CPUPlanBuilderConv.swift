import GLMCIR
import GLMCPlan

/// Lowering of what the fast f32 paths of `lowerProducer` and `lowerPool` do not cover to the
/// general kernels of `CPUKernelLibraryConv.swift`: Conv of any spatial rank and float type,
/// ConvTranspose, ConvInteger, MaxPool/AveragePool of any rank and type (MaxPool's Indices too),
/// MatMul with 1-D operands, broadcast batch dims or other element types, and MatMulInteger.
/// Semantics follow the interpreter (`GLMCOps/NeuralConv.swift`, `NeuralPool.swift`,
/// `ReductionLinearAlgebra.swift`).
extension CPUPlanBuilder.Generator {
    /// Pads, strides and dilations of a window op (Conv, MaxPool, AveragePool) over
    /// `input.count` spatial dims, auto_pad resolved as the interpreter's `WindowAttributes` does.
    /// `dilated`: whether the op reads the `dilations` attribute (pools before some opsets do not).
    func window(_ inst: Instruction, input: [Int], output: [Int], kernel: [Int], dilated: Bool = true, _ outer: Instruction) throws
        -> (padBegin: [Int], padEnd: [Int], strides: [Int], dilations: [Int]) {
        let rank = input.count
        func ints(_ name: String, _ d: [Int]) -> [Int] {
            if case .ints(let v)? = inst.attributes[name], !v.isEmpty { return v }
            return d
        }
        let strides = ints("strides", [Int](repeating: 1, count: rank))
        let dilations = dilated ? ints("dilations", [Int](repeating: 1, count: rank)) : [Int](repeating: 1, count: rank)
        var pads = ints("pads", [Int](repeating: 0, count: 2 * rank))
        guard kernel.count == rank, output.count == rank, strides.count == rank, dilations.count == rank, pads.count == 2 * rank,
              strides.allSatisfy({ $0 > 0 }), dilations.allSatisfy({ $0 > 0 }), kernel.allSatisfy({ $0 > 0 }) else {
            throw unsupported(outer, "with a window that does not fit \(rank) spatial dimensions")
        }
        let autoPad = stringAttr(inst, "auto_pad", "NOTSET")
        switch autoPad {
        case "NOTSET": break
        case "VALID": pads = [Int](repeating: 0, count: 2 * rank)
        case "SAME_UPPER", "SAME_LOWER":
            for d in 0 ..< rank {
                let total = max(0, (output[d] - 1) * strides[d] + (kernel[d] - 1) * dilations[d] + 1 - input[d])
                pads[d] = autoPad == "SAME_UPPER" ? total / 2 : total - total / 2
                pads[rank + d] = total - pads[d]
            }
        default: throw unsupported(outer, "with auto_pad \(autoPad)")
        }
        return (Array(pads[..<rank]), Array(pads[rank...]), strides, dilations)
    }

    /// The geometry of Conv / ConvInteger (`x` [N, C, in...], `w` [M, C/group, k...]) or
    /// ConvTranspose (`w` [C, M/group, k...]) producing `y`, checked against the operands.
    func convolutionShape(_ inst: Instruction, x: [Int], w: [Int], y: [Int], _ outer: Instruction) throws -> CPUKernelLibrary.ConvolutionShape {
        let transposed = inst.op.type == "ConvTranspose"
        guard x.count >= 3, w.count == x.count, y.count == x.count else {
            throw unsupported(outer, "with input, weight and output of ranks \(x.count), \(w.count), \(y.count)")
        }
        let group = intAttr(inst, "group", 1)
        let kernel = Array(w[2...])
        let consistent = transposed ? group >= 1 && w[0] == x[1] && x[1] % group == 0 && y[1] == w[1] * group
                                    : group >= 1 && x[1] == w[1] * group && w[0] == y[1] && y[1] % group == 0
        guard consistent, y[0] == x[0] else {
            throw unsupported(outer, "with input \(x), weight \(w), output \(y) and group \(group) inconsistent")
        }
        let resolved: (padBegin: [Int], strides: [Int], dilations: [Int])
        if transposed {
            resolved = try transposedWindow(inst, input: Array(x[2...]), output: Array(y[2...]), kernel: kernel, outer)
        } else {
            let w = try window(inst, input: Array(x[2...]), output: Array(y[2...]), kernel: kernel, outer)
            resolved = (w.padBegin, w.strides, w.dilations)
        }
        return .init(batch: x[0], inChannels: x[1], outChannels: y[1], group: group, inSpatial: Array(x[2...]), outSpatial: Array(y[2...]),
                     kernel: kernel, strides: resolved.strides, dilations: resolved.dilations, padBegin: resolved.padBegin, transposed: transposed)
    }

    /// Begin pads, strides and dilations of a ConvTranspose, as the interpreter resolves them:
    /// SAME_* centres the full output (stride·(in-1) + output_padding + dilated kernel) on the
    /// requested size; otherwise the begin pads are the attribute's (0 for VALID).
    func transposedWindow(_ inst: Instruction, input: [Int], output: [Int], kernel: [Int], _ outer: Instruction) throws
        -> (padBegin: [Int], strides: [Int], dilations: [Int]) {
        let rank = input.count
        func ints(_ name: String, _ d: Int, count: Int) -> [Int] {
            if case .ints(let v)? = inst.attributes[name], !v.isEmpty { return v }
            return [Int](repeating: d, count: count)
        }
        let strides = ints("strides", 1, count: rank), dilations = ints("dilations", 1, count: rank)
        let pads = ints("pads", 0, count: 2 * rank), outputPadding = ints("output_padding", 0, count: rank)
        guard strides.count == rank, dilations.count == rank, pads.count == 2 * rank, outputPadding.count == rank,
              strides.allSatisfy({ $0 > 0 }), dilations.allSatisfy({ $0 > 0 }) else {
            throw unsupported(outer, "with a window that does not fit \(rank) spatial dimensions")
        }
        let autoPad = stringAttr(inst, "auto_pad", "NOTSET")
        var padBegin: [Int] = []
        for d in 0 ..< rank {
            switch autoPad {
            case "NOTSET": padBegin.append(pads[d])
            case "VALID": padBegin.append(0)
            case "SAME_UPPER", "SAME_LOWER":
                let total = strides[d] * (input[d] - 1) + outputPadding[d] + (kernel[d] - 1) * dilations[d] + 1 - output[d]
                let half = total >= 0 ? total / 2 : -((-total + 1) / 2)  // floor division, as the interpreter's
                padBegin.append(autoPad == "SAME_UPPER" ? half : total - half)
            default: throw unsupported(outer, "with auto_pad \(autoPad)")
            }
        }
        return (padBegin, strides, dilations)
    }

    /// Whether a MatMul needs the general kernel: `lowerProducer` handles f32 operands of rank 2,
    /// [..., M, K] x [K, N], and equal batch dims.
    func needsGeneralMatMul(_ inst: Instruction) -> Bool {
        guard inst.operands.count == 2, let a = inst.operands[0], let b = inst.operands[1],
              let aS = f.type(of: a).shape.staticSizes, let bS = f.type(of: b).shape.staticSizes else { return false }
        if f.type(of: a).dtype != .f32 || f.type(of: b).dtype != .f32 || aS.count < 2 || bS.count < 2 { return true }
        if bS.count == 2 { return false }
        return aS.count < 3 || Array(aS.dropLast(2)) != Array(bS.dropLast(2))
    }

    /// Conv (other than f32 through `lowerProducer`), ConvTranspose and ConvInteger, unfused.
    mutating func lowerConvolution(_ inst: Instruction) throws {
        includeReductionHelpers()
        guard inst.results.count == 1, inst.operands.count >= 2, let xv = inst.operands[0], let wv = inst.operands[1] else {
            throw unsupported(inst, "without an input and a weight")
        }
        let shape = try convolutionShape(inst, x: try sizes(xv, inst), w: try sizes(wv, inst), y: try sizes(inst.results[0], inst), inst)
        let xs = try scalar(xv, inst), ws = try scalar(wv, inst), ys = try scalar(inst.results[0], inst)
        var args = [try argument(xv, inst), try argument(wv, inst)]
        var bias: CScalar?, xZero: CScalar?, wZero: CPUKernelLibrary.ZeroPoint?
        if inst.op.type == "ConvInteger" {
            guard [.u8, .i8].contains(xs.dtype), [.u8, .i8].contains(ws.dtype), ys.dtype == .i32 else {
                throw unsupported(inst, "of \(xs.dtype) and \(ws.dtype)")
            }
            if inst.operands.count > 2, let z = inst.operands[2] {
                guard try sizes(z, inst).reduce(1, *) == 1 else { throw unsupported(inst, "with a non-scalar x_zero_point") }
                xZero = try scalar(z, inst)
                args.append(try argument(z, inst))
            }
            if inst.operands.count > 3, let z = inst.operands[3] {
                let count = try sizes(z, inst).reduce(1, *)
                guard count == 1 || count == shape.outChannels else { throw unsupported(inst, "with a w_zero_point of \(count) elements") }
                wZero = count == 1 ? .scalar(try scalar(z, inst)) : .perChannel(try scalar(z, inst))
                args.append(try argument(z, inst))
            }
        } else {
            guard xs.isFloat, ws.dtype == xs.dtype, ys.dtype == xs.dtype else { throw unsupported(inst, "on \(xs.dtype) and \(ws.dtype) tensors") }
            if inst.operands.count > 2, let b = inst.operands[2] {
                guard try sizes(b, inst).reduce(1, *) == shape.outChannels, try scalar(b, inst) == xs else {
                    throw unsupported(inst, "with a bias that is not \(shape.outChannels) \(xs.dtype) values")
                }
                bias = xs
                args.append(try argument(b, inst))
            }
        }
        args.append(try output(inst))
        addStep(kind: shape.transposed ? "conv_transpose" : inst.op.type == "ConvInteger" ? "conv_integer" : "conv",
                code: CPUKernelLibrary.convolution(name: nextSymbol, shape, x: xs, w: ws, bias: bias, y: ys, xZeroPoint: xZero, wZeroPoint: wZero),
                arguments: args, range: shape.outputCount, work: max(1, shape.work))
    }

    /// MaxPool and AveragePool of any spatial rank and element type; MaxPool's Indices output.
    mutating func lowerWindowPool(_ inst: Instruction) throws {
        includeReductionHelpers()
        guard let xv = inst.operands.first ?? nil else { throw unsupported(inst, "without an input") }
        let x = try sizes(xv, inst), y = try sizes(inst.results[0], inst), xs = try scalar(xv, inst)
        let isMax = inst.op.type == "MaxPool"
        guard x.count >= 3, y.count == x.count, try scalar(inst.results[0], inst) == xs,
              xs.isFloat || (isMax && [.u8, .i8].contains(xs.dtype)) else {
            throw unsupported(inst, "on \(xs.dtype) of rank \(x.count)")
        }
        guard case .ints(let kernel)? = inst.attributes["kernel_shape"], kernel.count == x.count - 2 else {
            throw unsupported(inst, "without a kernel_shape of \(x.count - 2) sizes")
        }
        // Dilations exist from MaxPool-10 and AveragePool-19.
        let dilated = isMax ? inst.opset >= 10 : inst.opset >= 19
        let w = try window(inst, input: Array(x[2...]), output: Array(y[2...]), kernel: kernel, dilated: dilated, inst)
        let indices = isMax ? usedResultBuffer(inst, 1) : nil
        let kind: CPUKernelLibrary.WindowPoolKind = isMax ? .max(indices: indices != nil, columnMajor: intAttr(inst, "storage_order", 0) == 1)
                                                          : .average(countPadding: intAttr(inst, "count_include_pad", 0) != 0)
        var args = [try argument(xv, inst), try output(inst)]
        if let indices { args.append(.buffer(indices)) }
        addStep(kind: isMax ? "max_pool" : "average_pool",
                code: CPUKernelLibrary.windowPool(name: nextSymbol, kind: kind, scalar: xs, inSizes: Array(x[2...]), outSizes: Array(y[2...]),
                                                  kernel: kernel, strides: w.strides, dilations: w.dilations, padBegin: w.padBegin, padEnd: w.padEnd),
                arguments: args, range: y.reduce(1, *), work: kernel.reduce(1, *))
    }

    /// MatMul (see `needsGeneralMatMul`) and MatMulInteger: 1-D operands promoted as NumPy does,
    /// batch dims broadcast.
    mutating func lowerGeneralMatMul(_ inst: Instruction) throws {
        includeReductionHelpers()
        guard inst.results.count == 1, inst.operands.count >= 2, let av = inst.operands[0], let bv = inst.operands[1] else {
            throw unsupported(inst, "without two operands")
        }
        let aS = try sizes(av, inst), bS = try sizes(bv, inst), yS = try sizes(inst.results[0], inst)
        let a2 = aS.count == 1 ? [1] + aS : aS, b2 = bS.count == 1 ? bS + [1] : bS
        guard a2.count >= 2, b2.count >= 2, a2[a2.count - 1] == b2[b2.count - 2] else {
            throw unsupported(inst, "on operands of shapes \(aS) and \(bS)")
        }
        let m = a2[a2.count - 2], k = a2[a2.count - 1], n = b2[b2.count - 1]
        let aBatch = Array(a2.dropLast(2)), bBatch = Array(b2.dropLast(2))
        let batch = Array(yS.prefix(max(aBatch.count, bBatch.count)))
        guard let aStrides = Self.broadcastStrides(from: aBatch, to: batch), let bStrides = Self.broadcastStrides(from: bBatch, to: batch),
              yS.reduce(1, *) == batch.reduce(1, *) * m * n else {
            throw unsupported(inst, "on operands of shapes \(aS) and \(bS) giving \(yS)")
        }
        let shape = CPUKernelLibrary.MatMulShape(batch: batch, aBatchStrides: aStrides.map { $0 * m * k },
                                                 bBatchStrides: bStrides.map { $0 * k * n }, m: m, k: k, n: n)
        let xa = try scalar(av, inst), xb = try scalar(bv, inst), ys = try scalar(inst.results[0], inst)
        var args = [try argument(av, inst), try argument(bv, inst)]
        var aZero: CPUKernelLibrary.ZeroPoint?, bZero: CPUKernelLibrary.ZeroPoint?
        if inst.op.type == "MatMulInteger" {
            guard [.u8, .i8].contains(xa.dtype), [.u8, .i8].contains(xb.dtype), ys.dtype == .i32 else {
                throw unsupported(inst, "of \(xa.dtype) and \(xb.dtype)")
            }
            // A's zero point: a scalar or one per row (1-D [M]); B's: a scalar or one per column.
            func zeroPoint(_ index: Int, perChannel: Int, operand: CScalar) throws -> CPUKernelLibrary.ZeroPoint? {
                guard inst.operands.count > index, let z = inst.operands[index] else { return nil }
                let zS = try sizes(z, inst), zs = try scalar(z, inst)
                guard zs == operand, zS.reduce(1, *) == 1 || zS == [perChannel] else {
                    throw unsupported(inst, "with a zero point of type \(zs.dtype) and shape \(zS)")
                }
                args.append(try argument(z, inst))
                return zS.reduce(1, *) == 1 ? .scalar(zs) : .perChannel(zs)
            }
            aZero = try zeroPoint(2, perChannel: m, operand: xa)
            bZero = try zeroPoint(3, perChannel: n, operand: xb)
        } else {
            guard xa == xb, xa == ys, xa.dtype != .bool else { throw unsupported(inst, "on \(xa.dtype) and \(xb.dtype) tensors") }
        }
        args.append(try output(inst))
        addStep(kind: inst.op.type == "MatMulInteger" ? "matmul_integer" : "matmul_general",
                code: CPUKernelLibrary.matMul(name: nextSymbol, shape, a: xa, b: xb, y: ys, aZeroPoint: aZero, bZeroPoint: bZero),
                arguments: args, range: yS.reduce(1, *), work: max(1, k))
    }
}

extension CPUPlanBuilder.Generator {
    /// CausalConvWithState: x [B, C, L], w [C, 1, k], optional bias [C] and past state [B, C, k-1];
    /// the output and the new state in one step.
    mutating func lowerCausalConvolution(_ inst: Instruction) throws {
        includeReductionHelpers()
        func operand(_ i: Int) -> ValueID? { i < inst.operands.count ? inst.operands[i] : nil }
        guard let xv = operand(0), let wv = operand(1) else { throw unsupported(inst, "without an input and a weight") }
        let x = try sizes(xv, inst), w = try sizes(wv, inst), xs = try scalar(xv, inst)
        guard xs.isFloat, x.count == 3, w.count == 3, w[0] == x[1], w[1] == 1, w[2] >= 1, try scalar(wv, inst) == xs,
              try scalar(inst.results[0], inst) == xs else {
            throw unsupported(inst, "on input \(x) and weight \(w) of \(xs.dtype)")
        }
        let (planes, length, kernel) = (x[0] * x[1], x[2], w[2])
        let activation = stringAttr(inst, "activation", "none")
        guard ["none", "silu", "swish"].contains(activation) else { throw unsupported(inst, "with activation '\(activation)'") }
        var args = [try argument(xv, inst), try argument(wv, inst)]
        var bias: CScalar?, past: CScalar?
        if let b = operand(2) {
            guard try sizes(b, inst).reduce(1, *) == x[1] else { throw unsupported(inst, "with a bias that is not \(x[1]) values") }
            bias = try floatScalar(b, inst)
            args.append(try argument(b, inst))
        }
        if let p = operand(3) {
            guard try sizes(p, inst) == [x[0], x[1], kernel - 1] else { throw unsupported(inst, "with a past state of shape \(try sizes(p, inst))") }
            past = try floatScalar(p, inst)
            args.append(try argument(p, inst))
        }
        args.append(try output(inst))
        // The state output: its buffer, or a scratch one when nothing reads it.
        let stateBuffer = usedResultBuffer(inst, 1) ?? scratch(bytes: max(1, planes * (kernel - 1) * xs.dtype.byteSize))
        if inst.results.count > 1, usedResultBuffer(inst, 1) != nil, try scalar(inst.results[1], inst) != xs {
            throw unsupported(inst, "with a state of another type")
        }
        args.append(.buffer(stateBuffer))
        addStep(kind: "causal_conv", code: CPUKernelLibrary.causalConvolution(name: nextSymbol, scalar: xs, planes: planes, channels: x[1], length: length,
                                                                             kernel: kernel, bias: bias, past: past, silu: activation != "none"),
                arguments: args, range: planes * (length + kernel - 1), work: kernel)
    }
}

extension CPUPlanBuilder.Generator {
    /// MaxUnpool: a zero fill of the output, then a scatter of X to the positions in I (the
    /// unpooled shape from kernel_shape, strides and pads; an output_shape places it at the origin).
    mutating func lowerMaxUnpool(_ inst: Instruction) throws {
        guard inst.operands.count >= 2, let xv = inst.operands[0], let iv = inst.operands[1] else { throw unsupported(inst, "without X and I") }
        let x = try sizes(xv, inst), y = try sizes(inst.results[0], inst), xs = try scalar(xv, inst)
        guard x.count >= 3, try sizes(iv, inst) == x, try scalar(iv, inst).dtype == .i64, y.count == x.count, try scalar(inst.results[0], inst) == xs else {
            throw unsupported(inst, "on X \(x) and I \(try sizes(iv, inst))")
        }
        let rank = x.count - 2
        func ints(_ name: String, _ d: Int, count: Int) -> [Int] {
            if case .ints(let v)? = inst.attributes[name], !v.isEmpty { return v }
            return [Int](repeating: d, count: count)
        }
        let kernel = ints("kernel_shape", 0, count: rank), strides = ints("strides", 1, count: rank), pads = ints("pads", 0, count: 2 * rank)
        guard kernel.count == rank, strides.count == rank, pads.count == 2 * rank else { throw unsupported(inst, "with a window that does not fit rank \(rank)") }
        let unpooled = Array(x[..<2]) + (0 ..< rank).map { (x[$0 + 2] - 1) * strides[$0] - pads[$0] - pads[rank + $0] + kernel[$0] }
        guard unpooled.allSatisfy({ $0 >= 0 }) else { throw unsupported(inst, "with a negative unpooled size \(unpooled)") }
        let output = try output(inst)
        addStep(kind: "zero_fill", code: CPUKernelLibrary.zeroFill(name: nextSymbol, scalar: xs), arguments: [output], range: y.reduce(1, *))
        addStep(kind: "max_unpool", code: CPUKernelLibrary.unpoolScatter(name: nextSymbol, scalar: xs, unpooled: unpooled, output: y),
                arguments: [try argument(xv, inst), try argument(iv, inst), output], range: x.reduce(1, *))
    }
}

extension CPUPlanBuilder.Generator {
    /// DeformConv (2-D): X, W, offset, [B], [mask], with offset_group.
    mutating func lowerDeformConvolution(_ inst: Instruction) throws {
        includeReductionHelpers()
        func operand(_ i: Int) -> ValueID? { i < inst.operands.count ? inst.operands[i] : nil }
        guard let xv = operand(0), let wv = operand(1), let ov = operand(2) else { throw unsupported(inst, "without X, W and offset") }
        let x = try sizes(xv, inst), w = try sizes(wv, inst), y = try sizes(inst.results[0], inst), xs = try floatScalar(xv, inst)
        guard x.count == 4 else { throw unsupported(inst, "of rank \(x.count) (only 2-D)") }
        let shape = try convolutionShape(inst, x: x, w: w, y: y, inst)
        let offsetGroups = intAttr(inst, "offset_group", 1), taps = w[2] * w[3]
        guard offsetGroups > 0, x[1] % offsetGroups == 0, try sizes(ov, inst) == [x[0], offsetGroups * taps * 2] + y[2...] else {
            throw unsupported(inst, "with an offset of shape \(try sizes(ov, inst))")
        }
        var args = [try argument(xv, inst), try argument(wv, inst), try argument(ov, inst)]
        for v in [xv, wv, ov] where try scalar(v, inst) != xs { throw unsupported(inst, "on mixed element types") }
        let bias = operand(3), mask = operand(4)
        if let bias {
            guard try sizes(bias, inst).reduce(1, *) == y[1], try scalar(bias, inst) == xs else { throw unsupported(inst, "with a bias that is not \(y[1]) values") }
            args.append(try argument(bias, inst))
        }
        if let mask {
            guard try sizes(mask, inst) == [x[0], offsetGroups * taps] + y[2...], try scalar(mask, inst) == xs else {
                throw unsupported(inst, "with a mask of shape \(try sizes(mask, inst))")
            }
            args.append(try argument(mask, inst))
        }
        args.append(try output(inst))
        addStep(kind: "deform_conv", code: CPUKernelLibrary.deformConvolution(name: nextSymbol, shape, offsetGroups: offsetGroups, scalar: xs,
                                                                             bias: bias != nil, mask: mask != nil),
                arguments: args, range: y.reduce(1, *), work: max(1, shape.work * 8))
    }
}
