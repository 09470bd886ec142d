import Foundation
import GLMCIR
import GLMCOps
import GLMCPlan

/// Lowering of DFT and STFT to the kernel of `CPUKernelLibrarySignal.swift`. The transform
/// length, axis and frame step decide the shapes, so they must be constants; the signal and
/// STFT's window may be runtime values.
extension CPUPlanBuilder.Generator {
    static let signalOps: Set<String> = ["DFT", "STFT", "MelWeightMatrix"]

    /// The value of an optional scalar integer operand known now; nil if absent; refused if computed.
    func constantInteger(_ inst: Instruction, _ i: Int, _ what: String) throws -> Int? {
        guard i < inst.operands.count, let v = inst.operands[i] else { return nil }
        guard let c = constants[v], c.elementCount == 1, !c.dtype.isFloatingPoint, let value = try? Tensor(c).int64s.first else {
            throw unsupported(inst, "whose \(what) is not a constant integer")
        }
        return Int(value)
    }

    mutating func lowerSignal(_ inst: Instruction) throws {
        if inst.op.type == "MelWeightMatrix" { return try lowerMelWeightMatrix(inst) }
        guard let xv = inst.operands.first ?? nil else { throw unsupported(inst) }
        let dtype = f.type(of: xv).dtype
        guard dtype.isFloatingPoint, let element = CScalar(dtype) else { throw unsupported(inst, "on \(dtype) tensors") }
        let x = try sizes(xv, inst), y = try sizes(inst.results[0], inst)
        var spec: CPUKernelLibrary.FourierSpec
        var window: ValueID?, runtimeAxis: ValueID?
        if inst.op.type == "DFT" {
            guard x.count >= 2, let c = x.last, c == 1 || c == 2 else { throw unsupported(inst, "on a signal of shape \(x)") }
            let inverse = intAttr(inst, "inverse", 0) != 0, onesided = intAttr(inst, "onesided", 0) != 0
            let irfft = inverse && onesided
            let explicitLength = try constantInteger(inst, 1, "dft_length")
            var axes: [Int]
            if inst.opset >= 20, inst.operands.count > 2, let a = inst.operands[2], constants[a] == nil {
                // A runtime axis: possible only when no axis changes size, so that every choice
                // gives the planned shape; the kernel picks the geometry by the axis it reads.
                guard !onesided, explicitLength == nil else { throw unsupported(inst, "with a runtime axis that changes the result's shape") }
                guard [DType.i64, .i32].contains(f.type(of: a).dtype), try sizes(a, inst).reduce(1, *) == 1 else { throw unsupported(inst, "with axis \(f.type(of: a))") }
                runtimeAxis = a
                axes = Array(0 ... x.count - 2)
            } else {
                let axisValue = try inst.opset >= 20 ? constantInteger(inst, 2, "axis") ?? -2 : intAttr(inst, "axis", 1)
                let axis = axisValue < 0 ? axisValue + x.count : axisValue
                guard axis >= 0, axis <= x.count - 2 else { throw unsupported(inst, "with axis \(axisValue)") }
                axes = [axis]
            }
            var geometries: [CPUKernelLibrary.FourierGeometry] = [], twiddleBases: [Int: Int] = [:], twiddleCount = 0
            var outC = 2
            for axis in axes {
                let n = x[axis]
                let length = explicitLength ?? (irfft ? 2 * (n - 1) : n)
                guard length > 0 else { throw unsupported(inst, "with a transform length of \(length)") }
                let bins = onesided && !inverse ? length / 2 + 1 : length
                outC = irfft ? 1 : 2
                var expected = x
                expected[axis] = bins
                expected[x.count - 1] = outC
                guard y == expected else { throw unsupported(inst, "(its result is \(expected), the plan expects \(y))") }
                if twiddleBases[length] == nil { twiddleBases[length] = twiddleCount; twiddleCount += 2 * length }
                let inner = x[(axis + 1) ..< (x.count - 1)].reduce(1, *)
                geometries.append(.init(inner: inner, bins: bins, length: length, used: min(n, irfft ? length / 2 + 1 : length),
                                        outerStride: n * inner * c, jStride: inner * c, twiddleBase: twiddleBases[length]!))
            }
            spec = .init(element: element, inComponents: c, outComponents: outC, inverse: inverse, irfft: irfft, hasWindow: false,
                         framesPerOuter: 1, frameStride: 0, geometries: geometries,
                         runtimeAxis: runtimeAxis.flatMap { CScalar(f.type(of: $0).dtype) })
        } else {
            guard x.count == 3, x[2] == 1 || x[2] == 2 else { throw unsupported(inst, "on a signal of shape \(x)") }
            let (batch, length, c) = (x[0], x[1], x[2])
            guard let step = try constantInteger(inst, 1, "frame_step") else { throw unsupported(inst, "without a frame_step") }
            window = inst.operands.count > 2 ? inst.operands[2] : nil
            var windowLength: Int?
            if let window {
                let w = try sizes(window, inst)
                guard w.count == 1, f.type(of: window).dtype == dtype else { throw unsupported(inst, "with a window \(f.type(of: window))") }
                windowLength = w[0]
            }
            let frameLength = try constantInteger(inst, 3, "frame_length") ?? windowLength ?? length
            guard step > 0, frameLength > 0, frameLength <= length, windowLength.map({ $0 == frameLength }) ?? true else {
                throw unsupported(inst, "with frame_step \(step) and frame_length \(frameLength) on a signal of length \(length)")
            }
            let onesided = intAttr(inst, "onesided", 1) != 0
            let frames = (length - frameLength) / step + 1, bins = onesided ? frameLength / 2 + 1 : frameLength
            guard y == [batch, frames, bins, 2] else { throw unsupported(inst, "(its result is \([batch, frames, bins, 2]), the plan expects \(y))") }
            spec = .init(element: element, inComponents: c, outComponents: 2, inverse: false, irfft: false, hasWindow: window != nil,
                         framesPerOuter: frames, frameStride: step * c,
                         geometries: [.init(inner: 1, bins: bins, length: frameLength, used: frameLength, outerStride: length * c,
                                            jStride: c, twiddleBase: 0)], runtimeAxis: nil)
        }
        includeReductionHelpers()
        // The twiddles of each length, as the interpreter's Fourier plan computes them.
        var twiddles: [Double] = []
        for g in spec.geometries.sorted(by: { $0.twiddleBase < $1.twiddleBase }) where g.twiddleBase == twiddles.count {
            let n = g.length
            twiddles += (0 ..< n).map { cos(2 * Double.pi * Double($0) / Double(n)) } + (0 ..< n).map { sin(2 * Double.pi * Double($0) / Double(n)) }
        }
        let key = spec.geometries.map { "\($0.length)" }.joined(separator: "_")
        var args = [try argument(xv, inst),
                    try weight(key: "twiddles#\(key)", name: "twiddles_\(key)", TensorData(type: TensorType(.f64, static: [twiddles.count]), elements: twiddles), inst)]
        if let window { args.append(try argument(window, inst)) }
        if let runtimeAxis { args.append(try argument(runtimeAxis, inst)) }
        args.append(try output(inst))
        let g = spec.geometries[0], units = y.reduce(1, *) / spec.outComponents
        addStep(kind: inst.op.type.lowercased(), code: CPUKernelLibrary.fourier(name: nextSymbol, spec), arguments: args,
                range: units, work: 4 * g.length)
    }

    /// MelWeightMatrix whose num_mel_bins and dft_length (which decide its shape) are constants;
    /// the sample rate and edges may be runtime values.
    mutating func lowerMelWeightMatrix(_ inst: Instruction) throws {
        guard inst.operands.count == 5, let rv = inst.operands[2], let lv = inst.operands[3], let uv = inst.operands[4] else { throw unsupported(inst) }
        guard let melBins = try constantInteger(inst, 0, "num_mel_bins"), let dftLength = try constantInteger(inst, 1, "dft_length") else {
            throw unsupported(inst)
        }
        let y = try sizes(inst.results[0], inst)
        guard melBins > 0, dftLength > 0, y == [dftLength / 2 + 1, melBins] else { throw unsupported(inst, "(its result is \(y))") }
        func scalar(_ v: ValueID, float: Bool) throws -> CScalar {
            let t = f.type(of: v).dtype
            guard t.isFloatingPoint == float, t != .bool, let s = CScalar(t), try sizes(v, inst).reduce(1, *) == 1 else {
                throw unsupported(inst, "with '\(f.name(of: v))' of type \(f.type(of: v))")
            }
            return s
        }
        let outType = f.type(of: inst.results[0]).dtype
        guard outType != .bool, let element = CScalar(outType) else { throw unsupported(inst, "producing \(outType)") }
        includeReductionHelpers()
        addStep(kind: "mel_weight_matrix",
                code: CPUKernelLibrary.melWeightMatrix(name: nextSymbol, output: element, rate: try scalar(rv, float: false),
                                                       lower: try scalar(lv, float: true), upper: try scalar(uv, float: true),
                                                       melBins: melBins, dftLength: dftLength),
                arguments: [try argument(rv, inst), try argument(lv, inst), try argument(uv, inst), try output(inst)],
                range: 1, work: CPUPlanBuilder.Generator.grainWork)
    }
}
