import GLMCIR
import GLMCPlan

/// Lowering of what the fast f32 paths of `lowerProducer` and `lowerPool` do not cover to the
/// general kernels of `CPUKernelLibraryConv.swift`: Conv of any spatial rank and float type,
/// ConvTranspose, ConvInteger, QLinearConv, MaxPool/AveragePool of any rank and type (MaxPool's
/// Indices too), MatMul with 1-D operands, broadcast batch dims or other element types,
/// MatMulInteger and QLinearMatMul.
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

    /// Conv (other than f32 through `lowerProducer`), ConvTranspose, ConvInteger and QLinearConv,
    /// unfused.
    mutating func lowerConvolution(_ inst: Instruction) throws {
        includeReductionHelpers()
        let op = inst.op.type, quantized = op == "ConvInteger" || op == "QLinearConv"
        func operand(_ i: Int) -> ValueID? { i < inst.operands.count ? inst.operands[i] : nil }
        // QLinearConv: x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, B.
        let (wIndex, wZeroIndex) = op == "QLinearConv" ? (3, 5) : (1, 3)
        guard inst.results.count == 1, let xv = operand(0), let wv = operand(wIndex) else { throw unsupported(inst, "without an input and a weight") }
        let shape = try convolutionShape(inst, x: try sizes(xv, inst), w: try sizes(wv, inst), y: try sizes(inst.results[0], inst), inst)
        let xs = try scalar(xv, inst), ws = try scalar(wv, inst), ys = try scalar(inst.results[0], inst)
        var args = [try argument(xv, inst), try argument(wv, inst)]
        /// A scalar or per-output-channel parameter operand, appended to the arguments.
        func parameter(_ index: Int, _ what: String, perChannel: Bool) throws -> CPUKernelLibrary.QuantParameter? {
            guard let v = operand(index) else { return nil }
            let count = try sizes(v, inst).reduce(1, *)
            guard count == 1 || (perChannel && count == shape.outChannels) else { throw unsupported(inst, "with a \(what) of \(count) elements") }
            args.append(try argument(v, inst))
            return count == 1 ? .scalar(try scalar(v, inst)) : .perChannel(try scalar(v, inst))
        }
        var bias: CScalar?, xZero: CScalar?, wZero: CPUKernelLibrary.QuantParameter?, requantization: CPUKernelLibrary.Requantization?
        if quantized {
            let outputs: [DType] = op == "ConvInteger" ? [.i32] : [.u8, .i8]
            guard [.u8, .i8].contains(xs.dtype), [.u8, .i8].contains(ws.dtype), outputs.contains(ys.dtype) else {
                throw unsupported(inst, "of \(xs.dtype) and \(ws.dtype) giving \(ys.dtype)")
            }
            if op == "QLinearConv", let b = operand(8) {
                guard try sizes(b, inst).reduce(1, *) == shape.outChannels else { throw unsupported(inst, "with a bias that is not \(shape.outChannels) values") }
                bias = try scalar(b, inst)
                args.append(try argument(b, inst))
            }
            xZero = try parameter(2, "x_zero_point", perChannel: false)?.scalar
            wZero = try parameter(wZeroIndex, "w_zero_point", perChannel: true)
            if op == "QLinearConv" {
                guard let xScale = try parameter(1, "x_scale", perChannel: false), let wScale = try parameter(4, "w_scale", perChannel: true),
                      let yScale = try parameter(6, "y_scale", perChannel: false) else {
                    throw unsupported(inst, "without its scales")
                }
                requantization = .init(inputScale: xScale, weightScale: wScale, outputScale: yScale.scalar,
                                       outputZeroPoint: try parameter(7, "y_zero_point", perChannel: false)?.scalar)
            }
        } else {
            guard xs.isFloat, ws.dtype == xs.dtype, ys.dtype == xs.dtype else { throw unsupported(inst, "on \(xs.dtype) and \(ws.dtype) tensors") }
            if let b = operand(2) {
                guard try sizes(b, inst).reduce(1, *) == shape.outChannels, try scalar(b, inst) == xs else {
                    throw unsupported(inst, "with a bias that is not \(shape.outChannels) \(xs.dtype) values")
                }
                bias = xs
                args.append(try argument(b, inst))
            }
        }
        args.append(try output(inst))
        let kinds = ["ConvTranspose": "conv_transpose", "ConvInteger": "conv_integer", "QLinearConv": "qlinear_conv"]
        addStep(kind: kinds[op] ?? "conv",
                code: CPUKernelLibrary.convolution(name: nextSymbol, shape, x: xs, w: ws, bias: bias, y: ys, xZeroPoint: xZero, wZeroPoint: wZero,
                                                   requantization: requantization),
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

    /// MatMul (see `needsGeneralMatMul`), MatMulInteger and QLinearMatMul: 1-D operands promoted
    /// as NumPy does, batch dims broadcast.
    mutating func lowerGeneralMatMul(_ inst: Instruction) throws {
        includeReductionHelpers()
        let op = inst.op.type
        func operand(_ i: Int) -> ValueID? { i < inst.operands.count ? inst.operands[i] : nil }
        // QLinearMatMul: a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point.
        let (bIndex, bZeroIndex) = op == "QLinearMatMul" ? (3, 5) : (1, 3)
        guard inst.results.count == 1, let av = operand(0), let bv = operand(bIndex) else { throw unsupported(inst, "without two operands") }
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
        /// A zero point or scale: a scalar, or one per row of A / column of B (1-D [channels]),
        /// appended to the arguments.
        func parameter(_ index: Int, channels: Int, type: CScalar?) throws -> CPUKernelLibrary.QuantParameter? {
            guard let v = operand(index) else { return nil }
            let vS = try sizes(v, inst), vs = try scalar(v, inst)
            guard type == nil || vs == type, vS.reduce(1, *) == 1 || vS == [channels] else {
                throw unsupported(inst, "with a zero point or scale of type \(vs.dtype) and shape \(vS)")
            }
            args.append(try argument(v, inst))
            return vS.reduce(1, *) == 1 ? .scalar(vs) : .perChannel(vs)
        }
        var aZero: CPUKernelLibrary.QuantParameter?, bZero: CPUKernelLibrary.QuantParameter?, requantization: CPUKernelLibrary.Requantization?
        if op == "MatMulInteger" || op == "QLinearMatMul" {
            let outputs: [DType] = op == "MatMulInteger" ? [.i32] : [.u8, .i8]
            guard [.u8, .i8].contains(xa.dtype), [.u8, .i8].contains(xb.dtype), outputs.contains(ys.dtype) else {
                throw unsupported(inst, "of \(xa.dtype) and \(xb.dtype) giving \(ys.dtype)")
            }
            aZero = try parameter(2, channels: m, type: xa)
            bZero = try parameter(bZeroIndex, channels: n, type: xb)
            if op == "QLinearMatMul" {
                guard let aScale = try parameter(1, channels: m, type: nil), let bScale = try parameter(4, channels: n, type: nil),
                      case .scalar(let yScale)? = try parameter(6, channels: 1, type: nil), aScale.scalar.isFloat, bScale.scalar.isFloat, yScale.isFloat,
                      case .scalar(let yZero)? = try parameter(7, channels: 1, type: ys) else {
                    throw unsupported(inst, "without float scales and a y_zero_point of the output type")
                }
                requantization = .init(inputScale: aScale, weightScale: bScale, outputScale: yScale, outputZeroPoint: yZero)
            }
        } else {
            guard xa == xb, xa == ys, xa.dtype != .bool else { throw unsupported(inst, "on \(xa.dtype) and \(xb.dtype) tensors") }
        }
        args.append(try output(inst))
        let kinds = ["MatMulInteger": "matmul_integer", "QLinearMatMul": "qlinear_matmul"]
        addStep(kind: kinds[op] ?? "matmul_general",
                code: CPUKernelLibrary.matMul(name: nextSymbol, shape, a: xa, b: xb, y: ys, aZeroPoint: aZero, bZeroPoint: bZero, requantization: requantization),
                arguments: args, range: yS.reduce(1, *), work: max(1, k))
    }
}
