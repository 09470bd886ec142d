#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import GLMCIR

/// Signal processing: DFT, STFT, the window generators and MelWeightMatrix. Complex numbers are
/// carried, as ONNX does, in a trailing axis of size 2 (real, imaginary); real signals may use a
/// trailing axis of size 1. Transforms compute in Double.
extension MiscOps {
    static let signalOps: [OpDefinition] = [
        dft, stft,
        cosineWindow("HannWindow", [0.5, 0.5, 0]),
        cosineWindow("HammingWindow", [25.0 / 46.0, 21.0 / 46.0, 0]),
        cosineWindow("BlackmanWindow", [0.42, 0.5, 0.08]),
        melWeightMatrix,
    ]
}

// MARK: - Fourier transform of one sequence

/// A discrete Fourier transform of a fixed length n: a radix-2 FFT when n is a power of two, the
/// direct sum for other short lengths, and Bluestein's algorithm (a convolution computed with
/// power-of-two FFTs) for other long ones, such as the 400-point frames of speech models.
struct FourierPlan {
    let n: Int
    private let strategy: Strategy

    private enum Strategy {
        case radix2(Twiddles), direct(Twiddles), bluestein(Bluestein)
    }

    /// cos and sin of 2πj/n for j < n.
    private struct Twiddles {
        let cosines: [Double], sines: [Double]
        init(_ n: Int) {
            cosines = (0 ..< n).map { cos(2 * Double.pi * Double($0) / Double(n)) }
            sines = (0 ..< n).map { sin(2 * Double.pi * Double($0) / Double(n)) }
        }
    }

    /// Bluestein: with the chirp w_k = e^(−iπk²/n), X_k = w_k · Σ_j (x_j·w_j)·conj(w_(k−j)), a
    /// convolution of length m ≥ 2n − 1 done by FFTs.
    private struct Bluestein {
        let m: Int
        let twiddles: Twiddles
        let chirpRe: [Double], chirpIm: [Double]
        /// The FFT of the conjugate chirp, wrapped around for negative offsets.
        let filterRe: [Double], filterIm: [Double]

        init(_ n: Int) {
            var m = 1
            while m < 2 * n - 1 { m <<= 1 }
            self.m = m
            twiddles = Twiddles(m)
            // k² mod 2n keeps the angle exact for large k.
            let angles = (0 ..< n).map { k in Double.pi * Double((k * k) % (2 * n)) / Double(n) }
            chirpRe = angles.map { cos($0) }
            chirpIm = angles.map { -sin($0) }
            var re = [Double](repeating: 0, count: m), im = re
            for k in 0 ..< n {
                re[k] = chirpRe[k]; im[k] = -chirpIm[k]
                if k > 0 { re[m - k] = chirpRe[k]; im[m - k] = -chirpIm[k] }
            }
            FourierPlan.radix2(&re, &im, twiddles, sign: -1)
            filterRe = re; filterIm = im
        }

        /// The forward transform of (re, im), in place.
        func forward(_ re: inout [Double], _ im: inout [Double]) {
            let n = re.count
            var aRe = [Double](repeating: 0, count: m), aIm = aRe
            for k in 0 ..< n {
                aRe[k] = re[k] * chirpRe[k] - im[k] * chirpIm[k]
                aIm[k] = re[k] * chirpIm[k] + im[k] * chirpRe[k]
            }
            FourierPlan.radix2(&aRe, &aIm, twiddles, sign: -1)
            for k in 0 ..< m {
                let r = aRe[k] * filterRe[k] - aIm[k] * filterIm[k]
                aIm[k] = aRe[k] * filterIm[k] + aIm[k] * filterRe[k]
                aRe[k] = r
            }
            FourierPlan.radix2(&aRe, &aIm, twiddles, sign: 1)
            let scale = 1 / Double(m)
            for k in 0 ..< n {
                let yr = aRe[k] * scale, yi = aIm[k] * scale
                re[k] = yr * chirpRe[k] - yi * chirpIm[k]
                im[k] = yr * chirpIm[k] + yi * chirpRe[k]
            }
        }
    }

    init(length n: Int) {
        self.n = n
        if n & (n - 1) == 0 {
            strategy = .radix2(Twiddles(n))
        } else if n <= 64 {
            strategy = .direct(Twiddles(n))
        } else {
            strategy = .bluestein(Bluestein(n))
        }
    }

    /// Transforms (re, im) in place: y[k] = Σ x[j]·e^(∓2πi·jk/n), the sign + when `inverse`
    /// (unnormalized; callers scale by 1/n).
    func transform(_ re: inout [Double], _ im: inout [Double], inverse: Bool) {
        guard n > 1 else { return }
        let sign: Double = inverse ? 1 : -1
        switch strategy {
        case .radix2(let t):
            FourierPlan.radix2(&re, &im, t, sign: sign)
        case .direct(let t):
            var outRe = [Double](repeating: 0, count: n), outIm = outRe
            for k in 0 ..< n {
                var sr = 0.0, si = 0.0, j = 0
                for x in 0 ..< n {
                    let c = t.cosines[j], s = sign * t.sines[j]
                    sr += re[x] * c - im[x] * s
                    si += re[x] * s + im[x] * c
                    j += k
                    if j >= n { j -= n }
                }
                outRe[k] = sr; outIm[k] = si
            }
            re = outRe; im = outIm
        case .bluestein(let b):
            // The inverse transform is the conjugate of the forward one of the conjugate.
            if inverse { for k in 0 ..< n { im[k] = -im[k] } }
            b.forward(&re, &im)
            if inverse { for k in 0 ..< n { im[k] = -im[k] } }
        }
    }

    /// In-place iterative radix-2 FFT of a power-of-two length with the twiddles of that length.
    private static func radix2(_ re: inout [Double], _ im: inout [Double], _ t: Twiddles, sign: Double) {
        let n = re.count
        guard n > 1 else { return }
        // Bit-reversal permutation, then butterflies.
        var j = 0
        for i in 1 ..< n {
            var bit = n >> 1
            while j & bit != 0 { j ^= bit; bit >>= 1 }
            j |= bit
            if i < j { re.swapAt(i, j); im.swapAt(i, j) }
        }
        var len = 2
        while len <= n {
            let step = n / len, half = len / 2
            var start = 0
            while start < n {
                for m in 0 ..< half {
                    let c = t.cosines[m * step], s = sign * t.sines[m * step]
                    let a = start + m, b = a + half
                    let tr = re[b] * c - im[b] * s, ti = re[b] * s + im[b] * c
                    re[b] = re[a] - tr; im[b] = im[a] - ti
                    re[a] += tr; im[a] += ti
                }
                start += len
            }
            len <<= 1
        }
    }
}

// MARK: - DFT

extension MiscOps {
    /// What a DFT node does: which axis, how long a transform, which direction.
    struct DFTSettings {
        var inverse: Bool
        var onesided: Bool
        /// Inverse of a one-sided spectrum: a real signal of `length` from `length/2 + 1` bins.
        var irfft: Bool { inverse && onesided }

        init(_ ctx: some NodeContext) throws {
            inverse = try ctx.int("inverse", default: 0) != 0
            onesided = try ctx.int("onesided", default: 0) != 0
        }

        /// The transform length: explicit, else the axis size (2·(n−1) for an IRFFT).
        func length(explicit: Int?, axisSize n: Int) -> Int { explicit ?? (irfft ? 2 * (n - 1) : n) }
        /// The result's size along the axis.
        func outputSize(length: Int) -> Int { onesided && !inverse ? length / 2 + 1 : length }
        /// The result's trailing (complex) axis.
        var outputComponents: Int { irfft ? 1 : 2 }
    }

    /// Resolves DFT's axis; the last axis holds the complex components and cannot be transformed.
    static func dftAxis(_ axis: Int, rank: Int, _ ctx: some NodeContext) throws -> Int {
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0, a <= rank - 2 else { throw ctx.error("axis \(axis) is out of range for a rank-\(rank) signal") }
        return a
    }

    static let dft = OpDefinition("DFT", since: [17, 20], infer: { ctx in
        let x = try ctx.requiredInput(0)
        try require(x.dtype, in: floatTypes, ctx)
        guard var d = x.shape.dims else { return [TensorType(x.dtype, .unranked)] }
        guard d.count >= 2 else { throw ctx.error("input must have rank ≥ 2, got \(x.shape)") }
        let settings = try DFTSettings(ctx)
        // The transform length: absent, a known constant, or unknown (a computed operand).
        let explicitLength = constantInt(ctx, 1)
        let lengthUnknown = ctx.inputType(1) != nil && explicitLength == nil
        let axis: Int?
        if ctx.opset >= 20 { axis = ctx.inputType(2) == nil ? -2 : constantInt(ctx, 2) } else { axis = try ctx.int("axis", default: 1) }
        let rank = d.count
        d[rank - 1] = .known(settings.outputComponents)
        let sizeChanges = explicitLength != nil || lengthUnknown || settings.onesided
        if let axis {
            let a = try dftAxis(axis, rank: rank, ctx)
            if let explicitLength {
                d[a] = size(explicitLength > 0 ? settings.outputSize(length: explicitLength) : nil)
            } else if sizeChanges {
                d[a] = lengthUnknown ? .unknown
                    : size(d[a].value.map { settings.length(explicit: nil, axisSize: $0) }.flatMap { $0 > 0 ? settings.outputSize(length: $0) : nil })
            }
        } else if sizeChanges {
            // The axis is computed: any signal axis may change size.
            for k in 0 ..< rank - 1 { d[k] = .unknown }
        }
        return [TensorType(x.dtype, Shape(d))]
    }, evaluate: { ctx in
        let x = try ctx.operand(0)
        try require(x.dtype, in: floatTypes, ctx)
        let rank = x.rank
        guard rank >= 2, let c = x.shape.last, c == 1 || c == 2 else {
            throw ctx.error("input must have rank ≥ 2 and a last axis of 1 (real) or 2 (complex), got \(x.shape)")
        }
        let settings = try DFTSettings(ctx)
        let axisValue = try ctx.opset >= 20
            ? ctx.optionalOperand(2).map { try scalarInt($0, "axis", ctx) } ?? -2
            : ctx.int("axis", default: 1)
        let axis = try dftAxis(axisValue, rank: rank, ctx)
        let n = x.shape[axis]
        let explicitLength = try ctx.optionalOperand(1).map { try scalarInt($0, "dft_length", ctx) }
        let length = settings.length(explicit: explicitLength, axisSize: n)
        guard length > 0, length <= maxElements else { throw ctx.error("the transform length must be positive, got \(length)") }
        let outSize = settings.outputSize(length: length), outC = settings.outputComponents
        var outShape = x.shape
        outShape[axis] = outSize
        outShape[rank - 1] = outC
        let outer = product(x.shape[..<axis]), inner = product(x.shape[(axis + 1) ..< (rank - 1)])
        // Bins read from the input: an IRFFT uses only the non-redundant half of the spectrum.
        let used = min(n, settings.irfft ? length / 2 + 1 : length)
        let xs = x.doubles
        var out = [Double](repeating: 0, count: try resultCount(outShape, ctx))
        let plan = FourierPlan(length: length)
        let scale = settings.inverse ? 1 / Double(length) : 1
        var re = [Double](repeating: 0, count: length), im = re
        for o in 0 ..< outer {
            for i in 0 ..< inner {
                for k in 0 ..< length { re[k] = 0; im[k] = 0 }
                for k in 0 ..< used {
                    let src = ((o * n + k) * inner + i) * c
                    re[k] = xs[src]
                    if c == 2 { im[k] = xs[src + 1] }
                }
                if settings.irfft {
                    // Rebuild the full Hermitian spectrum; the DC and Nyquist bins are real.
                    im[0] = 0
                    if length % 2 == 0 { im[length / 2] = 0 }
                    for k in (length / 2 + 1) ..< length { re[k] = re[length - k]; im[k] = -im[length - k] }
                }
                plan.transform(&re, &im, inverse: settings.inverse)
                for k in 0 ..< outSize {
                    let dst = ((o * outSize + k) * inner + i) * outC
                    out[dst] = re[k] * scale
                    if outC == 2 { out[dst + 1] = im[k] * scale }
                }
            }
        }
        return [Tensor(doubles: out, dtype: x.dtype, shape: outShape)]
    })
}

// MARK: - STFT

extension MiscOps {
    static let stft = OpDefinition("STFT", since: [17], infer: { ctx in
        let signal = try ctx.requiredInput(0)
        try require(signal.dtype, in: floatTypes, ctx)
        let onesided = try ctx.int("onesided", default: 1) != 0
        let d = signal.shape.dims ?? [.unknown, .unknown, .unknown]
        guard d.count == 3 else { throw ctx.error("signal must have shape [batch, length, 1 or 2], got \(signal.shape)") }
        // frame_length: the operand, else the window's length, else the signal's.
        var frameLength: Int? = constantInt(ctx, 3)
        if ctx.inputType(3) == nil {
            frameLength = ctx.inputType(2).map { $0.shape.dims?.first?.value } ?? d[1].value
        }
        if let f = frameLength, f <= 0 { frameLength = nil }
        var frames = Dim.unknown
        if let length = d[1].value, let frameLength, let step = constantInt(ctx, 1), step > 0, frameLength <= length {
            frames = .known((length - frameLength) / step + 1)
        }
        let bins = size(frameLength.map { onesided ? $0 / 2 + 1 : $0 })
        return [TensorType(signal.dtype, Shape([d[0], frames, bins, .known(2)]))]
    }, evaluate: { ctx in
        let signal = try ctx.operand(0)
        try require(signal.dtype, in: floatTypes, ctx)
        guard signal.rank == 3, signal.shape[2] == 1 || signal.shape[2] == 2 else {
            throw ctx.error("signal must have shape [batch, length, 1 or 2], got \(signal.shape)")
        }
        let batch = signal.shape[0], length = signal.shape[1], c = signal.shape[2]
        let step = try scalarInt(ctx.operand(1), "frame_step", ctx)
        let window = try ctx.optionalOperand(2)
        if let window {
            guard window.rank == 1, window.dtype == signal.dtype else {
                throw ctx.error("window must be a 1-D \(signal.dtype) tensor, got \(window.type)")
            }
        }
        let explicitLength = try ctx.optionalOperand(3).map { try scalarInt($0, "frame_length", ctx) }
        let frameLength = explicitLength ?? window?.count ?? length
        if let window, window.count != frameLength {
            throw ctx.error("window has \(window.count) elements but frame_length is \(frameLength)")
        }
        guard step > 0, frameLength > 0, frameLength <= length else {
            throw ctx.error("needs frame_step > 0 and 0 < frame_length ≤ signal length (\(length)), got \(step) and \(frameLength)")
        }
        let onesided = try ctx.int("onesided", default: 1) != 0
        let frames = (length - frameLength) / step + 1
        let bins = onesided ? frameLength / 2 + 1 : frameLength
        let xs = signal.doubles
        let w = window?.doubles ?? [Double](repeating: 1, count: frameLength)
        let plan = FourierPlan(length: frameLength)
        var out = [Double](repeating: 0, count: try resultCount([batch, frames, bins, 2], ctx))
        var re = [Double](repeating: 0, count: frameLength), im = re
        for b in 0 ..< batch {
            for f in 0 ..< frames {
                for j in 0 ..< frameLength {
                    let src = (b * length + f * step + j) * c
                    re[j] = xs[src] * w[j]
                    im[j] = c == 2 ? xs[src + 1] * w[j] : 0
                }
                plan.transform(&re, &im, inverse: false)
                for k in 0 ..< bins {
                    let dst = ((b * frames + f) * bins + k) * 2
                    out[dst] = re[k]; out[dst + 1] = im[k]
                }
            }
        }
        return [Tensor(doubles: out, dtype: signal.dtype, shape: [batch, frames, bins, 2])]
    })
}

// MARK: - Windows and MelWeightMatrix

extension MiscOps {
    static let windowTypes: Set<DType> = numericTypes

    /// A generalized cosine window w[k] = a0 − a1·cos(2πk/N) + a2·cos(4πk/N), with N = size
    /// (periodic) or size − 1 (symmetric).
    static func cosineWindow(_ name: String, _ a: [Double]) -> OpDefinition {
        OpDefinition(name, since: [17], infer: { ctx in
            try require(ctx.requiredInput(0).dtype, in: [.i32, .i64], ctx, "size")
            let dtype = try dtypeAttribute(ctx, "output_datatype", default: .f32)
            try require(dtype, in: windowTypes, ctx, "output_datatype")
            return [TensorType(dtype, Shape([size(constantInt(ctx, 0))]))]
        }, evaluate: { ctx in
            let sizeTensor = try ctx.operand(0)
            try require(sizeTensor.dtype, in: [.i32, .i64], ctx, "size")
            let count = try scalarInt(sizeTensor, "size", ctx)
            let dtype = try dtypeAttribute(ctx, "output_datatype", default: .f32)
            try require(dtype, in: windowTypes, ctx, "output_datatype")
            guard count >= 0, count <= maxElements else { throw ctx.error("size must be in [0, \(maxElements)], got \(count)") }
            let periodic = try ctx.int("periodic", default: 1) != 0
            let period = Double(periodic ? count : count - 1)
            let values = (0 ..< count).map { k -> Double in
                // A symmetric window of one point has no period; like PyTorch it is [1].
                guard period > 0 else { return 1 }
                let t = 2 * Double.pi * Double(k) / period
                // Summed in ONNX's reference order, so that integer outputs truncate alike.
                return (a[2] * cos(2 * t) - a[1] * cos(t)) + a[0]
            }
            return [Tensor(doubles: values, dtype: dtype, shape: [count])]
        })
    }

    static let melWeightMatrix = OpDefinition("MelWeightMatrix", since: [17], infer: { ctx in
        let dtype = try dtypeAttribute(ctx, "output_datatype", default: .f32)
        try require(dtype, in: windowTypes, ctx, "output_datatype")
        let bins = size(constantInt(ctx, 1).flatMap { $0 > 0 ? $0 / 2 + 1 : nil })
        return [TensorType(dtype, Shape([bins, size(constantInt(ctx, 0))]))]
    }, evaluate: { ctx in
        let dtype = try dtypeAttribute(ctx, "output_datatype", default: .f32)
        try require(dtype, in: windowTypes, ctx, "output_datatype")
        let melBins = try scalarInt(ctx.operand(0), "num_mel_bins", ctx)
        let dftLength = try scalarInt(ctx.operand(1), "dft_length", ctx)
        let sampleRate = try scalarInt(ctx.operand(2), "sample_rate", ctx)
        let lowerTensor = try ctx.operand(3), upperTensor = try ctx.operand(4)
        let lower = try scalarDouble(lowerTensor, "lower_edge_hertz", ctx)
        let upper = try scalarDouble(upperTensor, "upper_edge_hertz", ctx)
        guard melBins > 0, dftLength > 0, sampleRate > 0, lower >= 0, lower < upper else {
            throw ctx.error("needs num_mel_bins, dft_length, sample_rate > 0 and 0 ≤ lower_edge_hertz < upper_edge_hertz")
        }
        let spectrogramBins = dftLength / 2 + 1
        var out = [Double](repeating: 0, count: try resultCount([spectrogramBins, melBins], ctx))
        // The mel scale: mel(f) = 2595·log10(1 + f/700). The edges' logarithms are taken in the
        // edges' own precision, as ONNX's reference computes them.
        func mel(_ f: Double, _ t: DType) -> Double { rounded(2595 * rounded(log1p(rounded(f / 700, to: t)), to: t), to: t) / log(10) }
        let lowMel = mel(lower, lowerTensor.dtype), highMel = mel(upper, upperTensor.dtype)
        let step = (highMel - lowMel) / Double(melBins + 2)
        // Triangle corners: melBins + 2 equally spaced mel points, as spectrogram bin indices.
        var corners: [Int] = []
        for i in 0 ..< melBins + 2 {
            let hertz = 700 * expm1((Double(i) * step + lowMel) / 2595 * log(10))
            let bin = (Double(dftLength + 1) * hertz / Double(sampleRate)).rounded(.down)
            guard bin >= 0, bin < Double(spectrogramBins) else {
                throw ctx.error("upper_edge_hertz \(upper) lies beyond the spectrogram's \(spectrogramBins) bins")
            }
            corners.append(Int(bin))
        }
        for i in 0 ..< melBins {
            let low = corners[i], center = corners[i + 1], high = corners[i + 2]
            if center == low {
                out[center * melBins + i] = 1
            } else {
                for j in low ... center { out[j * melBins + i] = Double(j - low) / Double(center - low) }
            }
            if high > center {
                for j in center ..< high { out[j * melBins + i] = Double(high - j) / Double(high - center) }
            }
        }
        return [Tensor(doubles: out, dtype: dtype, shape: [spectrogramBins, melBins])]
    })
}
