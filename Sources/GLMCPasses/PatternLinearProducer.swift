import GLMCIR
import GLMCOps

/// A Conv, ConvTranspose, Gemm or MatMul with a constant weight (and a constant or no bias), seen as
/// computing, for every output channel c, y_c = W_c · x + b_c. A per-channel affine map y·a + s after
/// it therefore folds into new constants: W'_c = W_c·a_c and b'_c = b_c·a_c + s_c. Shared by
/// `fold-batch-norm` and `fold-affine`.
///
/// Output channels are axis 1 of a Conv / ConvTranspose result and the last axis of a Gemm / MatMul
/// result. Which weight elements feed channel c depends on the layout:
/// - Conv: W is [M, C/group, k...], channel = first index (groups do not matter).
/// - ConvTranspose: W is [C, M/group, k...]; input channel i belongs to group g = i / (C/group) and
///   weight column j to output channel g·(M/group) + j.
/// - Gemm: B is [K, N], or [N, K] with transB; MatMul: B is [K, N].
struct LinearProducer {
    enum Layout { case conv, convTranspose(groups: Int), gemm(transB: Bool), matMul }

    let index: Int
    let layout: Layout
    /// The weight and bias constants (read only when folding: weights can be large).
    let weight: TensorData
    let bias: TensorData?
    /// The number of output channels and where they lie in the result.
    let channels: Int
    let channelAxis: Int
    let result: ValueID

    private static let convAttributes: Set<String> = ["auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"]

    /// The producer of `v` when it is such an instruction and `v` has no other reader.
    init?(_ view: PatternView, producing v: ValueID) {
        guard let i = view.definer(v), view.uses(v) == 1 else { return nil }
        let inst = view.f.body[i]
        let dtype = view.f.type(of: v).dtype
        guard inst.results == [v], let rank = view.f.type(of: v).shape.rank, dtype == .f32 || dtype == .f64,
              let w = view.constantData(inst.operands.count > 1 ? inst.operands[1] : nil), w.dtype == dtype else { return nil }
        let biasOperand = inst.operands.count > 2 ? inst.operands[2] : nil
        let b = view.constantData(biasOperand)
        guard biasOperand == nil || b?.dtype == dtype else { return nil }
        index = i; weight = w; bias = b; result = v
        let shape = w.sizes
        switch inst.op.type {
        case "Conv" where inst.isOp("Conv") && inst.hasOnlyAttributes(Self.convAttributes):
            guard shape.count >= 3, rank == shape.count, inst.int("group", 1) != nil else { return nil }
            layout = .conv; channels = shape[0]; channelAxis = 1
        case "ConvTranspose" where inst.isOp("ConvTranspose")
            && inst.hasOnlyAttributes(Self.convAttributes.union(["output_padding", "output_shape"])):
            guard shape.count >= 3, rank == shape.count, let g = inst.int("group", 1), g > 0, shape[0] % g == 0 else { return nil }
            layout = .convTranspose(groups: g); channels = shape[1] * g; channelAxis = 1
        case "Gemm" where inst.isOp("Gemm") && inst.opset >= 7 && inst.hasOnlyAttributes(["alpha", "beta", "transA", "transB"]):
            guard shape.count == 2, rank == 2, let tb = inst.int("transB", 0), inst.int("transA", 0) != nil,
                  inst.float("alpha", 1) != nil, inst.float("beta", 1) != nil else { return nil }
            layout = .gemm(transB: tb != 0); channels = tb != 0 ? shape[0] : shape[1]; channelAxis = 1
        case "MatMul" where inst.isOp("MatMul") && inst.attributes.isEmpty && inst.operands.count == 2:
            guard shape.count == 2, rank >= 1 else { return nil }
            layout = .matMul; channels = shape[1]; channelAxis = rank - 1
        default:
            return nil
        }
        if let b {
            switch layout {
            case .conv, .convTranspose: guard b.sizes == [channels] else { return nil }
            case .gemm: guard Self.gemmBiasRows(b.sizes, channels: channels) != nil else { return nil }
            case .matMul: return nil
            }
        }
        guard channels > 0 else { return nil }
    }

    /// One value per channel from a constant broadcast against the result, when it varies at most
    /// along the channel axis and does not enlarge the result (a scalar repeats).
    func perChannel(_ data: TensorData, in f: Function) -> [Double]? {
        guard data.dtype == weight.dtype, let rank = f.type(of: result).shape.rank,
              broadcastsOnlyAlong(data.sizes, axis: channelAxis, size: channels, rank: rank),
              let v = try? Tensor(data).doubles, !v.isEmpty else { return nil }
        return v.count == channels ? v : [Double](repeating: v[0], count: channels)
    }

    /// Whether `fold` can add a shift (a MatMul becomes a Gemm, which needs a 2-D A).
    func canShift(in f: Function) -> Bool {
        guard case .matMul = layout else { return true }
        guard let a = f.body[index].operands[0] else { return false }
        return f.type(of: a).shape.rank == 2 && f.body[index].opset >= 7
    }

    /// Rewrites the producer to compute y·scale + shift per channel (nil means 1 / 0). Callers check
    /// `canShift` before passing a shift. False (and nothing changed) when a constant cannot be read.
    func fold(scale: [Double]?, shift: [Double]?, in f: inout Function, opset: Int) -> Bool {
        guard let weight = try? Tensor(self.weight) else { return false }
        var bias: Tensor?
        if let data = self.bias {
            guard let t = try? Tensor(data) else { return false }
            bias = t
        }
        var inst = f.body[index]
        let dtype = weight.dtype
        if let scale {
            let w = weight.doubles
            let channel = channelOfWeightElement()
            let newW = w.indices.map { w[$0] * scale[channel($0)] }
            inst.operands[1] = f.appendConstant(Tensor(doubles: newW, dtype: dtype, shape: weight.shape),
                                                name: f.freshName(Self.foldedName(inst.operands[1].map { f.name(of: $0) } ?? "")), opset: opset)
        }
        let a = scale ?? [Double](repeating: 1, count: channels)
        let s = shift ?? [Double](repeating: 0, count: channels)
        var newBias: Tensor?
        switch layout {
        case .conv, .convTranspose:
            if bias != nil || shift != nil {
                let b = bias?.doubles ?? [Double](repeating: 0, count: channels)
                newBias = Tensor(doubles: (0 ..< channels).map { b[$0] * a[$0] + s[$0] }, dtype: dtype, shape: [channels])
            }
        case .gemm, .matMul:
            // C' = beta·C·a + s, broadcast to [rows, N]; beta becomes 1.
            if let bias, let rows = Self.gemmBiasRows(bias.shape, channels: channels) {
                let beta = Double(inst.float("beta", 1) ?? 1)
                let c = bias.doubles, columns = bias.shape.last ?? 1
                var out: [Double] = []
                for r in 0 ..< rows {
                    for n in 0 ..< channels { out.append(beta * c[r * columns + (columns == 1 ? 0 : n)] * a[n] + s[n]) }
                }
                newBias = Tensor(doubles: out, dtype: dtype, shape: bias.rank == 2 ? [rows, channels] : [channels])
            } else if shift != nil {
                newBias = Tensor(doubles: s, dtype: dtype, shape: [channels])
            }
            if newBias != nil {
                if inst.attributes["beta"] != nil { inst.attributes["beta"] = .float(1) }
                if case .matMul = layout { inst.op = OpName("Gemm") }
            }
        }
        if let newBias {
            let name = bias == nil ? (f.name(of: result).isEmpty ? "" : f.name(of: result) + "_bias")
                                   : Self.foldedName(inst.operands[2].map { f.name(of: $0) } ?? "")
            let v = f.appendConstant(newBias, name: f.freshName(name), opset: opset)
            while inst.operands.count < 3 { inst.operands.append(nil) }
            inst.operands[2] = v
        }
        f.body[index] = inst
        return true
    }

    /// "w" → "w_folded"; a name that was folded before keeps one suffix ("w_folded_2" → "w_folded").
    private static func foldedName(_ name: String) -> String {
        guard !name.isEmpty else { return "" }
        let stem = name.range(of: "_folded").map { String(name[..<$0.lowerBound]) } ?? name
        return stem + "_folded"
    }

    /// Maps a weight element's index to the output channel it contributes to.
    private func channelOfWeightElement() -> (Int) -> Int {
        let shape = weight.sizes, count = weight.elementCount, channels = channels
        switch layout {
        case .conv:
            let perChannel = count / channels
            return { $0 / perChannel }
        case .convTranspose(let groups):
            let perGroup = channels / groups, inputsPerGroup = shape[0] / groups
            let kernel = count / (shape[0] * perGroup)
            return { i in
                let input = i / (kernel * perGroup), column = (i / kernel) % perGroup
                return input / inputsPerGroup * perGroup + column
            }
        case .gemm(transB: true):
            return { $0 / shape[1] }
        case .gemm(transB: false), .matMul:
            return { $0 % channels }
        }
    }

    /// The rows of a Gemm bias C of `shape` that broadcasts to [M, N] without growing it: [], [1],
    /// [N], [r, 1] or [r, N]. Nil for other shapes.
    private static func gemmBiasRows(_ shape: [Int], channels: Int) -> Int? {
        let last = shape.last ?? 1
        guard shape.count <= 2, last == 1 || last == channels else { return nil }
        return shape.count == 2 ? shape[0] : 1
    }
}

extension LinearProducer {
    /// The loop both weight-folding passes run: find the first foldable instruction (`match` gives
    /// its index, the producer and a per-channel scale or shift), fold it into the producer's
    /// weights, drop it, and look again from there; finally restore definition order (new weight
    /// constants were appended).
    static func foldRepeatedly(in module: inout Module, context: PassContext, statistic: String,
                               match: (PatternView, Int) -> (Int, LinearProducer, [Double]?, [Double]?)?) -> Bool {
        let opset = PatternRewrite.defaultOpset(module)
        return PatternRewrite.eachFunction(in: &module, intoFused: true) { f, _ in
            var changed = false
            var start = 0
            while let (i, producer, scale, shift) = match(PatternView(f), start) {
                guard producer.fold(scale: scale, shift: shift, in: &f, opset: opset) else { start = i + 1; continue }
                // The producer's result now holds the folded instruction's tensor, so it takes that
                // tensor's source name, if it has one (int8 activation scales are looked up by it).
                let folded = f.body[i].results[0]
                if !f.name(of: folded).isEmpty { f.values[producer.result.index].name = f.name(of: folded) }
                f.replaceAllUses(of: folded, with: producer.result)
                f.body.remove(at: i)
                start = i
                changed = true
                context.count(statistic)
            }
            if changed { f.sortTopologically() }
            return changed
        }
    }
}
