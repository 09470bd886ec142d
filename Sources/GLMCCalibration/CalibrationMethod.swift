import Foundation
import GLMCIR

/// How a tensor's amax (the |x| that maps to int8 127) is chosen from what was observed.
/// See Docs/Calibration.md for the exact algorithms.
public enum CalibrationMethod: Sendable, Equatable, CustomStringConvertible {
    /// amax = max |x| over all samples.
    case minMax
    /// amax = the `percentile`-th percentile of |x| (from the 2048-bin histogram).
    case percentile(Double)
    /// TensorRT's EntropyCalibration2: the threshold minimising the KL divergence between the
    /// |x| histogram and its 128-level quantization.
    case entropy

    public static let defaultPercentile = 99.99

    /// "minmax", "entropy", "percentile" or "percentile:P" (0 < P <= 100).
    public static func parse(_ text: String) throws -> CalibrationMethod {
        switch text.lowercased() {
        case "minmax": return .minMax
        case "entropy": return .entropy
        case "percentile": return .percentile(defaultPercentile)
        default:
            let lower = text.lowercased()
            if lower.hasPrefix("percentile:") {
                let p = Double(lower.dropFirst("percentile:".count))
                guard let p, p > 0, p <= 100 else {
                    throw GLMCError("--method \(text): the percentile must be a number in (0, 100], for example percentile:99.99")
                }
                return .percentile(p)
            }
            throw GLMCError("--method \(text): expected minmax, entropy or percentile[:P]")
        }
    }

    public var description: String {
        switch self {
        case .minMax: return "minmax"
        case .entropy: return "entropy"
        case .percentile(let p): return "percentile:\(formatPercent(p))"
        }
    }

    /// Whether the method needs a histogram (a second pass over the samples).
    public var needsHistogram: Bool { self != .minMax }

    /// The algorithm name in a TensorRT calibration cache's first line. TensorRT has no percentile
    /// calibrator; a percentile table is labelled EntropyCalibration2, the calibrator `trtexec
    /// --calib` reads caches with (TensorRT only reads the scales from a cache).
    public var tensorRTAlgorithm: String {
        switch self {
        case .minMax: return "MinMaxCalibration"
        case .entropy, .percentile: return "EntropyCalibration2"
        }
    }

    /// The amax of one tensor; `histogram` is required unless the method is MinMax.
    public func amax(_ stats: TensorStatistics, histogram: AbsHistogram?) -> Float {
        let observed = stats.amax
        guard self != .minMax, let histogram, observed > 0 else { return observed }
        switch self {
        case .minMax: return observed
        case .percentile(let p): return Swift.min(observed, Self.percentileAmax(histogram, percentile: p))
        case .entropy: return Swift.min(observed, Self.entropyAmax(histogram))
        }
    }

    /// The upper edge of the first bin at which the cumulative count reaches `percentile`% of all.
    static func percentileAmax(_ h: AbsHistogram, percentile: Double) -> Float {
        let total = h.counts.reduce(0, +)
        guard total > 0 else { return 0 }
        let target = total * percentile / 100
        var cumulative = 0.0
        for (i, c) in h.counts.enumerated() {
            cumulative += c
            if cumulative >= target { return Float(Double(i + 1) * h.binWidth) }
        }
        return h.range
    }

    /// Levels of the quantized distribution (int8's non-negative half).
    static let quantizedLevels = 128

    /// TensorRT's entropy calibration (Migacz, "8-bit Inference with TensorRT", GTC 2017): for each
    /// candidate threshold bin i in [128, bins]: P = the first i bins with every count beyond them
    /// added to bin i-1; Q = the first i bins merged into 128 levels and expanded back (each level's
    /// count spread evenly over its bins where P is non-zero); both normalized and smoothed;
    /// divergence = KL(P || Q). amax = (m + 0.5) * bin width for the i = m with the least divergence.
    static func entropyAmax(_ h: AbsHistogram) -> Float {
        let bins = h.counts
        let n = bins.count, levels = quantizedLevels
        guard n > levels else { return h.range }
        var suffix = [Double](repeating: 0, count: n + 1) // suffix[i] = sum of bins[i...]
        for i in stride(from: n - 1, through: 0, by: -1) { suffix[i] = suffix[i + 1] + bins[i] }
        var best = Double.infinity, bestIndex = n
        var p = [Double](repeating: 0, count: n), q = [Double](repeating: 0, count: n)
        for i in levels ... n {
            for j in 0 ..< i { p[j] = bins[j] }
            p[i - 1] += suffix[i]
            // Q: merge bins[0..<i] (without the outliers) into 128 levels; the last takes the remainder.
            let perLevel = i / levels
            for level in 0 ..< levels {
                let start = level * perLevel, stop = level == levels - 1 ? i : start + perLevel
                var sum = 0.0, nonZero = 0
                for j in start ..< stop {
                    sum += bins[j]
                    if p[j] != 0 { nonZero += 1 }
                }
                let share = nonZero > 0 ? sum / Double(nonZero) : 0
                for j in start ..< stop { q[j] = p[j] != 0 ? share : 0 }
            }
            guard let d = klDivergence(p, q, count: i) else { continue }
            if d < best { best = d; bestIndex = i }
        }
        return Float((Double(bestIndex) + 0.5) * h.binWidth)
    }

    /// Smoothing count given to empty bins.
    static let smoothingEpsilon = 0.0001

    /// KL(P || Q) over the first `count` entries: each is smoothed on its counts (every zero entry
    /// gets eps, taken evenly from the non-zero ones, as MXNet's and TVM's ports of TensorRT's
    /// algorithm do) and normalized to sum 1. Nil when either is all zero or smoothing would make
    /// an entry non-positive.
    static func klDivergence(_ p: [Double], _ q: [Double], count: Int) -> Double? {
        guard let ps = smoothedDistribution(p, count: count), let qs = smoothedDistribution(q, count: count) else { return nil }
        var d = 0.0
        for j in 0 ..< count { d += ps[j] * log(ps[j] / qs[j]) }
        return d
    }

    static func smoothedDistribution(_ x: [Double], count: Int) -> [Double]? {
        var zeros = 0
        for j in 0 ..< count where x[j] == 0 { zeros += 1 }
        let nonZeros = count - zeros
        guard nonZeros > 0 else { return nil }
        let take = smoothingEpsilon * Double(zeros) / Double(nonZeros)
        var out = [Double](repeating: 0, count: count), total = 0.0
        for j in 0 ..< count {
            out[j] = x[j] == 0 ? smoothingEpsilon : x[j] - take
            if out[j] <= 0 { return nil }
            total += out[j]
        }
        for j in 0 ..< count { out[j] /= total }
        return out
    }
}

func formatPercent(_ p: Double) -> String {
    p == p.rounded() ? String(Int(p)) : String(p)
}
