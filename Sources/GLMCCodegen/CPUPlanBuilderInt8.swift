import GLMCIR
import GLMCPlan

/// Lowering of Conv, Gemm and MatMul in int8 plans (`CPUPlanOptions.int8ActivationScales`): the
/// weights are quantized here, symmetric per output channel (`s_w[c] = max|w[c,:]| / 127`), and
/// stored as int8 plan weights; the input is quantized per tensor with the calibration scale of its
/// source tensor; the kernels (`CPUKernelInt8`) accumulate in int32 and dequantize into the fp32
/// bias and the fused epilogue, so the output stays fp32.
extension CPUPlanBuilder.Generator {
    /// Emits the int8 steps of a Conv, Gemm or MatMul (`producer`, the head of a fusion group or
    /// alone, read in `g`) and returns true; returns false, emitting nothing, where the op stays
    /// fp32: its input has no calibration scale, its weights are not constant, its bias is not a
    /// constant per-channel (or single) value, or its shape is one the int8 kernels do not take.
    /// `input`: the outer value of the producer's first operand; `weights`: the constant second
    /// operand; `bias`: nil without a bias, `.some(nil)` for a bias that is not constant.
    mutating func lowerInt8(_ producer: Instruction, in g: Function, input: ValueID?, weights: TensorData?, bias: TensorData??,
                            alpha: Float, beta: Float, epilogue: [CPUKernelLibrary.Epilogue], output: Int) throws -> Bool {
        guard let scales = int8ActivationScales, let input, bufferOf[input] != nil,
              let inScale = scales[f.name(of: input)], inScale > 0, inScale.isFinite,
              let weights, weights.dtype == .f32, !weights.isElided,
              let xSizes = f.type(of: input).shape.staticSizes, f.type(of: input).dtype == .f32 else { return false }
        if case .some(let b) = bias, b == nil || b!.dtype != .f32 || b!.isElided { return false }
        let ySizes = g.type(of: producer.results[0]).shape.staticSizes
        let w = weights.elements(as: Float.self), wS = weights.sizes
        func int(_ name: String, _ d: Int) -> Int { if case .int(let v)? = producer.attributes[name] { return v }; return d }

        // The weights as [channels, K] rows (per output channel) and the steps' geometry.
        var rows: [Float], channels: Int, k: Int
        var quantizeCode: (String) -> String, quantizeRange: Int, quantizeWork: Int
        // A Conv's input is quantized whole (`imageBytes`, after the rows in the scratch buffer),
        // then im2col'd into rows.
        var im2colCode: ((String) -> String)?, imageBytes = 0, im2colRange = 0
        var dotRows: Int, rowsPerBlock: Int, groups = 1, blockStride = 0, channelStride = 1, rowStride: Int
        var kind: String
        switch producer.op.type {
        case "Conv":
            guard xSizes.count == 4, wS.count == 4, let yS = ySizes, yS.count == 4 else { return false }
            let group = int("group", 1)
            guard group >= 1, xSizes[1] % group == 0, yS[1] % group == 0, wS[1] == xSizes[1] / group else { return false }
            let (pads, strides, dilations) = try window(producer, input: Array(xSizes[2...]), output: Array(yS[2...]),
                                                       kernel: Array(wS[2...]), producer)
            let pixels = yS[2] * yS[3]
            channels = yS[1] / group
            k = wS[1] * wS[2] * wS[3]
            let paddedK = Self.padded(k)
            // Weight rows in the im2col order: taps, each the group's input channels.
            let (cg, taps) = (wS[1], wS[2] * wS[3])
            rows = [Float](repeating: 0, count: w.count)
            for oc in 0 ..< wS[0] { for ic in 0 ..< cg { for t in 0 ..< taps { rows[(oc * taps + t) * cg + ic] = w[(oc * cg + ic) * taps + t] } } }
            im2colCode = { name in
                CPUKernelInt8.im2col(name: name, n: xSizes[0], c: xSizes[1], h: xSizes[2], w: xSizes[3], oh: yS[2], ow: yS[3],
                                     kh: wS[2], kw: wS[3], group: group, padTop: pads[0], padLeft: pads[1],
                                     strideH: strides[0], strideW: strides[1], dilationH: dilations[0], dilationW: dilations[1],
                                     paddedK: paddedK)
            }
            let count = xSizes.reduce(1, *)
            quantizeCode = { name in
                CPUKernelInt8.quantizeChannelsLast(name: name, n: xSizes[0], c: xSizes[1], h: xSizes[2], w: xSizes[3], group: group,
                                                   inverseScale: 1 / inScale)
            }
            quantizeRange = xSizes[0] * group * xSizes[2]
            quantizeWork = xSizes[3] * cg
            imageBytes = count
            im2colRange = xSizes[0] * group * yS[2]
            dotRows = xSizes[0] * group * pixels
            rowsPerBlock = pixels; groups = group
            blockStride = channels * pixels; channelStride = pixels; rowStride = 1
            kind = "conv2d_int8"
        default:  // Gemm, MatMul
            let isGemm = producer.op.type == "Gemm"
            let transA = isGemm && int("transA", 0) != 0, transB = isGemm && int("transB", 0) != 0
            guard wS.count == 2, xSizes.count >= 2, !(transA && xSizes.count != 2) else { return false }
            k = transB ? wS[1] : wS[0]
            channels = transB ? wS[0] : wS[1]
            let paddedK = Self.padded(k)
            let m = transA ? xSizes[1] : xSizes.dropLast().reduce(1, *)
            guard (transA ? xSizes[0] : xSizes[xSizes.count - 1]) == k, ySizes.map({ $0.reduce(1, *) }) == m * channels else { return false }
            if transB {
                rows = w
            } else {
                rows = [Float](repeating: 0, count: w.count)
                for p in 0 ..< k { for q in 0 ..< channels { rows[q * k + p] = w[p * channels + q] } }
            }
            quantizeCode = { name in CPUKernelInt8.quantizeRows(name: name, rows: m, k: k, paddedK: paddedK, transposed: transA, inverseScale: 1 / inScale) }
            quantizeRange = m; quantizeWork = k
            dotRows = m; rowsPerBlock = m; rowStride = channels
            kind = producer.op.type.lowercased() + "_int8"
        }
        // Bias, expanded to one value per output channel (over all groups).
        let allChannels = channels * groups
        var biasValues = [Float](repeating: 0, count: allChannels)
        if case .some(.some(let b)) = bias {
            let e = b.elements(as: Float.self)
            if e.count == 1 { biasValues = [Float](repeating: e[0] * beta, count: allChannels) }
            else if e.count == allChannels, b.sizes.last == allChannels { biasValues = e.map { $0 * beta } }
            else { return false }
        }
        // Per-channel symmetric quantization of the weights (rows zero-padded to `kp`, like the
        // quantized input's); the dequantization scale folds alpha.
        let kp = Self.padded(k)
        var q = [Int8](repeating: 0, count: allChannels * kp), dequant = [Float](repeating: 0, count: allChannels)
        // Activations are stored as q + 128 (unsigned, for vpdpbusd): the dot of a row with
        // channel c is then the true one plus 128 * sum(w[c,:]), which the kernel subtracts.
        var offsets = [Int32](repeating: 0, count: allChannels)
        for c in 0 ..< allChannels {
            let row = rows[c * k ..< (c + 1) * k]
            let amax = row.reduce(Float(0)) { max($0, abs($1)) }
            guard amax.isFinite else { return false }
            guard amax > 0 else { continue }
            let sw = amax / 127
            for (j, v) in row.enumerated() { q[c * kp + j] = Int8(max(-127, min(127, (v / sw).rounded()))) }
            dequant[c] = inScale * sw * alpha
            offsets[c] = 128 * q[c * kp ..< (c + 1) * kp].reduce(Int32(0)) { $0 + Int32($1) }
        }

        if !int8HelpersEmitted { source += "\n" + CPUKernelInt8.helpers; int8HelpersEmitted = true }
        // Weights named after the node (else its result, read in `g`), keyed by the step, which
        // is unique: two ops sharing an fp32 weight may quantize it with different layouts.
        let prefix = (producer.nodeName.isEmpty ? g.name(of: producer.results[0]) : producer.nodeName) + ".int8"
        let key = nextSymbol + "#int8"
        let qArg = try weight(key: key + "w", name: prefix + ".weights", TensorData(type: TensorType(.i8, static: [allChannels, kp]), elements: q), producer)
        let sArg = try weight(key: key + "s", name: prefix + ".scales", TensorData(type: TensorType(.f32, static: [allChannels]), elements: dequant), producer)
        let bArg = try weight(key: key + "b", name: prefix + ".bias", TensorData(type: TensorType(.f32, static: [allChannels]), elements: biasValues), producer)
        let cArg = try weight(key: key + "c", name: prefix + ".offsets", TensorData(type: TensorType(.i32, static: [allChannels]), elements: offsets), producer)
        let scratch = scratch(bytes: imageBytes > 0 ? PlanLayout.align(dotRows * kp) + imageBytes : dotRows * kp)
        if let im2colCode {
            // The image goes after the rows, in a buffer of its own over the same bytes.
            let offset = buffers[scratch].offset + PlanLayout.align(dotRows * kp)
            let image = addBuffer(offset: offset, bytes: imageBytes)
            arenaBytes = max(arenaBytes, PlanLayout.align(offset + imageBytes))
            addStep(kind: "quantize_int8", code: quantizeCode(nextSymbol), arguments: [try argument(input, producer), .buffer(image)],
                    range: quantizeRange, work: quantizeWork)
            addStep(kind: "im2col_int8", code: im2colCode(nextSymbol), arguments: [.buffer(image), .buffer(scratch)],
                    range: im2colRange, work: dotRows / max(1, im2colRange) * kp)
        } else {
            addStep(kind: "quantize_int8", code: quantizeCode(nextSymbol), arguments: [try argument(input, producer), .buffer(scratch)],
                    range: quantizeRange, work: quantizeWork)
        }
        addStep(kind: epilogue.isEmpty ? kind : kind + "_epilogue",
                code: CPUKernelInt8.dot(name: nextSymbol, rows: dotRows, rowsPerBlock: rowsPerBlock, channels: channels, k: kp, groups: groups,
                                        blockStride: blockStride, channelStride: channelStride, rowStride: rowStride, epilogue: epilogue),
                arguments: [.buffer(scratch), qArg, sArg, bArg, cArg, .buffer(output)], range: dotRows, work: channels * k)
        int8Count += 1
        return true
    }

    /// K rounded up to a whole number of the dot loops' vector steps.
    static func padded(_ k: Int) -> Int { (k + CPUKernelInt8.rowAlignment - 1) / CPUKernelInt8.rowAlignment * CPUKernelInt8.rowAlignment }
}
