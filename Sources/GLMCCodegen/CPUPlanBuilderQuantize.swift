import GLMCIR
import GLMCOps
import GLMCPlan

/// Lowering of QuantizeLinear, DequantizeLinear and DynamicQuantizeLinear to the kernels of
/// `CPUKernelLibraryQuantize.swift`. Scales and zero points may be runtime values (the expanded
/// DynamicQuantizeLinear computes them); per-tensor, per-axis and blocked parameters are told apart
/// at convert time from their shapes, as in the interpreter.
extension CPUPlanBuilder.Generator {
    static let quantizeOps: Set<String> = ["QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearMatMul", "QLinearConv"]
    /// The integer types data is quantized to (as in GLMCOps).
    static let quantizedTypes: Set<DType> = [.u8, .i8, .u16, .i16, .u32, .i32]

    mutating func lowerQuantize(_ inst: Instruction) throws {
        includeReductionHelpers()
        if inst.op.type == "DynamicQuantizeLinear" { return try lowerDynamicQuantize(inst) }
        if inst.op.type == "QLinearMatMul" { return try lowerQLinearMatMul(inst) }
        if inst.op.type == "QLinearConv" { return try lowerQLinearConv(inst) }
        guard inst.operands.count >= 2, let xv = inst.operands[0], let sv = inst.operands[1] else { throw unsupported(inst) }
        let zv = inst.operands.count > 2 ? inst.operands[2] : nil
        let y = inst.results[0]
        let xSizes = try sizes(xv, inst)
        func scalar(_ v: ValueID) throws -> CScalar {
            let t = f.type(of: v).dtype
            guard t != .bool, let s = CScalar(t) else { throw unsupported(inst, "on \(t) tensors") }
            return s
        }
        let x = try scalar(xv), scale = try scalar(sv), out = try scalar(y), zero = try zv.map(scalar)
        let axis = intAttr(inst, "axis", 1), blockSize = intAttr(inst, "block_size", 0)
        let scaleIndex = try parameterIndex(try sizes(sv, inst), data: xSizes, axis: axis, blockSize: blockSize, inst)
        let zeroIndex = try zv.map { try parameterIndex(try sizes($0, inst), data: xSizes, axis: axis, blockSize: blockSize, inst) }
        var args = [try argument(xv, inst), try argument(sv, inst)]
        if let zv { args.append(try argument(zv, inst)) }
        args.append(try output(inst))
        let count = xSizes.reduce(1, *)
        if inst.op.type == "QuantizeLinear" {
            guard Self.quantizedTypes.contains(out.dtype), x.isFloat || x.dtype == .i32, scale.isFloat || scale.dtype == .i32 else {
                throw unsupported(inst, "from \(x.dtype) with a \(scale.dtype) scale to \(out.dtype)")
            }
            // The quotient's precision: the `precision` attribute, else NumPy's promotion of the two types.
            var division: DType
            let code = Int32(truncatingIfNeeded: intAttr(inst, "precision", 0))
            if code != 0 {
                guard let t = DType(onnxCode: code), t.isFloatingPoint else { throw unsupported(inst, "with precision \(DType.onnxName(ofCode: code))") }
                division = t
            } else if !x.isFloat || !scale.isFloat || x.dtype == .f64 || scale.dtype == .f64 {
                division = .f64
            } else {
                division = x.dtype == scale.dtype ? x.dtype : .f32
            }
            addStep(kind: "quantize_linear",
                    code: CPUKernelLibrary.quantizeLinear(name: nextSymbol, x: x, scale: scale, zero: zero, y: out, division: CScalar(division)!,
                                                          scaleIndex: scaleIndex, zeroIndex: zeroIndex),
                    arguments: args, range: count, work: 4)
        } else {
            guard Self.quantizedTypes.contains(x.dtype), scale.isFloat, out.isFloat, zero.map({ $0.dtype == x.dtype }) ?? true else {
                throw unsupported(inst, "from \(x.dtype) with a \(scale.dtype) scale to \(out.dtype)")
            }
            let wide = x.dtype.byteSize >= 4 && zero != nil || scale.dtype == .f64
            addStep(kind: "dequantize_linear",
                    code: CPUKernelLibrary.dequantizeLinear(name: nextSymbol, x: x, scale: scale, zero: zero, y: out, step: CScalar(wide ? .f64 : .f32)!,
                                                            scaleIndex: scaleIndex, zeroIndex: zeroIndex),
                    arguments: args, range: count, work: 4)
        }
    }

    /// The C expression (of the element number `i`) of the quantization parameter element that
    /// data element `i` uses: one element for all, one per index along `axis` (`blockSize` 0), or
    /// one per block of `blockSize` along `axis` (the parameter has the data's shape otherwise).
    func parameterIndex(_ param: [Int], data: [Int], axis: Int, blockSize: Int, _ inst: Instruction) throws -> String {
        if param.reduce(1, *) == 1 { return "0" }
        let a = try normalizedAxis(axis, rank: data.count, inst)
        guard a < data.count else { throw unsupported(inst, "with axis \(axis) on a scalar") }
        let dim = data[a], inner = data[(a + 1)...].reduce(1, *)
        if blockSize <= 0 {
            guard param == [dim] else { throw unsupported(inst, "with per-axis parameters of shape \(param) for data \(data)") }
            return "(i / \(inner)) % \(dim)"
        }
        var expected = data
        expected[a] = (dim + blockSize - 1) / blockSize
        guard param == expected else { throw unsupported(inst, "with blocked parameters of shape \(param) for data \(data)") }
        return "((i / \(inner)) / \(dim) * \(expected[a]) + (i / \(inner)) % \(dim) / \(blockSize)) * \(inner) + i % \(inner)"
    }

    /// DynamicQuantizeLinear: one step finds the scale and zero point (into their result
    /// buffers), a second quantizes every element with them.
    mutating func lowerDynamicQuantize(_ inst: Instruction) throws {
        guard let xv = inst.operands.first ?? nil, inst.results.count == 3 else { throw unsupported(inst) }
        guard f.type(of: xv).dtype == .f32 else { throw unsupported(inst, "on \(f.type(of: xv).dtype) tensors") }
        var buffers: [PlanArgument] = []
        for r in inst.results {
            guard let b = bufferOf[r] else { throw unsupported(inst, "whose result '\(f.name(of: r))' has no buffer") }
            buffers.append(.buffer(b))
        }
        let x = try argument(xv, inst), count = try sizes(xv, inst).reduce(1, *)
        addStep(kind: "dynamic_quantize_parameters", code: CPUKernelLibrary.dynamicQuantizeParameters(name: nextSymbol, count: count),
                arguments: [x, buffers[1], buffers[2]], range: 1, work: Self.grainWork)
        addStep(kind: "dynamic_quantize", code: CPUKernelLibrary.dynamicQuantize(name: nextSymbol),
                arguments: [x, buffers[1], buffers[2], buffers[0]], range: count, work: 4)
    }

    /// QLinearMatMul with one scale and zero point per operand (per-row or per-column parameters
    /// are refused): [..., M, K] x [..., K, N] with equal batch dimensions, or one side 2-D and shared.
    mutating func lowerQLinearMatMul(_ inst: Instruction) throws {
        guard inst.operands.count == 8, let av = inst.operands[0], let sa = inst.operands[1], let bv = inst.operands[3],
              let sb = inst.operands[4], let sy = inst.operands[6], let zy = inst.operands[7] else { throw unsupported(inst) }
        let za = inst.operands[2], zb = inst.operands[5]
        for case let v? in [sa, za, sb, zb, sy, zy] where try sizes(v, inst).reduce(1, *) != 1 {
            throw unsupported(inst, "with per-row or per-column parameter '\(f.name(of: v))'")
        }
        let aType = f.type(of: av).dtype, bType = f.type(of: bv).dtype, yType = f.type(of: inst.results[0]).dtype
        guard [.u8, .i8].contains(aType), [.u8, .i8].contains(bType), [.u8, .i8].contains(yType), f.type(of: zy).dtype == yType,
              za.map({ f.type(of: $0).dtype == aType }) ?? true, zb.map({ f.type(of: $0).dtype == bType }) ?? true,
              [sa, sb, sy].allSatisfy({ f.type(of: $0).dtype.isFloatingPoint }) else {
            throw unsupported(inst, "on \(aType) x \(bType) to \(yType)")
        }
        let aS = try sizes(av, inst), bS = try sizes(bv, inst), yS = try sizes(inst.results[0], inst)
        guard aS.count >= 2, bS.count >= 2 else { throw unsupported(inst, "on operands of rank \(aS.count) and \(bS.count)") }
        let m = aS[aS.count - 2], k = aS[aS.count - 1], n = bS[bS.count - 1]
        let aBatch = Array(aS.dropLast(2)), bBatch = Array(bS.dropLast(2))
        guard bS[bS.count - 2] == k, aBatch == bBatch || aBatch.isEmpty || bBatch.isEmpty else {
            throw unsupported(inst, "on operands of shapes \(aS) and \(bS)")
        }
        let batch = aBatch.isEmpty ? bBatch : aBatch
        guard yS == batch + [m, n] else { throw unsupported(inst, "(its result is \(yS))") }
        var args = [try argument(av, inst), try argument(sa, inst)]
        if let za { args.append(try argument(za, inst)) }
        args += [try argument(bv, inst), try argument(sb, inst)]
        if let zb { args.append(try argument(zb, inst)) }
        args += [try argument(sy, inst), try argument(zy, inst), try output(inst)]
        func scalar(_ v: ValueID) -> CScalar { CScalar(f.type(of: v).dtype)! }
        addStep(kind: "qlinear_matmul",
                code: CPUKernelLibrary.qLinearMatMul(name: nextSymbol, a: scalar(av), b: scalar(bv), y: scalar(inst.results[0]),
                                                     aScale: scalar(sa), bScale: scalar(sb), yScale: scalar(sy), hasAZero: za != nil,
                                                     hasBZero: zb != nil, m: m, k: k, n: n, aBatched: !aBatch.isEmpty, bBatched: !bBatch.isEmpty),
                arguments: args, range: batch.reduce(1, *) * m * n, work: k)
    }

    /// QLinearConv, 2-D NCHW (pads, strides, dilations, auto_pad, group): scalar x and y
    /// parameters; w's scale and zero point per tensor or per output channel; an int32 bias.
    mutating func lowerQLinearConv(_ inst: Instruction) throws {
        func operand(_ i: Int) -> ValueID? { i < inst.operands.count ? inst.operands[i] : nil }
        guard let xv = operand(0), let sx = operand(1), let wv = operand(3), let sw = operand(4), let sy = operand(6) else { throw unsupported(inst) }
        let zx = operand(2), zw = operand(5), zy = operand(7), bv = operand(8)
        let xS = try sizes(xv, inst), wS = try sizes(wv, inst), yS = try sizes(inst.results[0], inst)
        guard xS.count == 4, wS.count == 4, yS.count == 4 else { throw unsupported(inst, "of rank \(xS.count) (only 2-D, NCHW)") }
        let xType = f.type(of: xv).dtype, wType = f.type(of: wv).dtype, yType = f.type(of: inst.results[0]).dtype
        guard [.u8, .i8].contains(xType), [.u8, .i8].contains(wType), [.u8, .i8].contains(yType),
              zx.map({ f.type(of: $0).dtype == xType }) ?? true, zw.map({ f.type(of: $0).dtype == wType }) ?? true,
              zy.map({ f.type(of: $0).dtype == yType }) ?? (yType == xType), bv.map({ f.type(of: $0).dtype == .i32 }) ?? true,
              [sx, sw, sy].allSatisfy({ f.type(of: $0).dtype.isFloatingPoint }) else {
            throw unsupported(inst, "on \(xType) x \(wType) to \(yType)")
        }
        let m = wS[0], group = intAttr(inst, "group", 1)
        guard group >= 1, xS[1] % group == 0, m % group == 0, wS[1] == xS[1] / group, yS[0] == xS[0], yS[1] == m else {
            throw unsupported(inst, "with inconsistent shapes")
        }
        func count(_ v: ValueID?) throws -> Int { try v.map { try sizes($0, inst).reduce(1, *) } ?? 1 }
        guard try count(sx) == 1, try count(sy) == 1, try count(zx) == 1, try count(zy) == 1, [1, m].contains(try count(sw)),
              [1, m].contains(try count(zw)), try bv.map({ try count($0) == m }) ?? true else {
            throw unsupported(inst, "with parameters of these shapes")
        }
        let win = try window(inst, input: Array(xS[2...]), output: Array(yS[2...]), kernel: Array(wS[2...]), inst)
        let (pads, strides, dilations) = (win.padBegin, win.strides, win.dilations)
        var args = [try argument(xv, inst), try argument(sx, inst)]
        if let zx { args.append(try argument(zx, inst)) }
        args += [try argument(wv, inst), try argument(sw, inst)]
        if let zw { args.append(try argument(zw, inst)) }
        args.append(try argument(sy, inst))
        if let zy { args.append(try argument(zy, inst)) }
        if let bv { args.append(try argument(bv, inst)) }
        args.append(try output(inst))
        func scalar(_ v: ValueID) -> CScalar { CScalar(f.type(of: v).dtype)! }
        addStep(kind: "qlinear_conv",
                code: CPUKernelLibrary.qLinearConv(name: nextSymbol, x: scalar(xv), w: scalar(wv), y: scalar(inst.results[0]),
                                                   scales: (scalar(sx), scalar(sw), scalar(sy)),
                                                   has: (zx != nil, zw != nil, zy != nil, bv != nil),
                                                   perChannelScale: try count(sw) > 1, perChannelZero: try count(zw) > 1,
                                                   shape: (xS[1], xS[2], xS[3], m, yS[2], yS[3], wS[2], wS[3], group),
                                                   pads: pads, strides: strides, dilations: dilations),
                arguments: args, range: yS.reduce(1, *), work: wS[1] * wS[2] * wS[3])
    }
}
