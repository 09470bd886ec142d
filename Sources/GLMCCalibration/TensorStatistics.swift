import GLMCIR

/// What calibration has seen of one tensor so far: its range over every element of every sample.
/// Updated one sample at a time (streaming), so no sample is kept.
public struct TensorStatistics: Sendable, Equatable {
    public var min: Float = .infinity
    public var max: Float = -.infinity
    /// Samples this tensor was observed in.
    public var sampleCount = 0
    /// Elements observed, over all samples.
    public var elementCount = 0

    public init() {}

    /// max |x| over everything seen (0 before anything was seen).
    public var amax: Float { elementCount == 0 ? 0 : Swift.max(abs(min), abs(max)) }

    /// Adds the values of one run (`samples` samples batched together). Returns the index of the
    /// first non-finite value (and adds nothing), or nil.
    public mutating func observe(_ values: UnsafeBufferPointer<Float>, samples: Int = 1) -> Int? {
        var lo = min, hi = max
        for (i, x) in values.enumerated() {
            guard x.isFinite else { return i }
            if x < lo { lo = x }
            if x > hi { hi = x }
        }
        min = lo; max = hi
        sampleCount += samples
        elementCount += values.count
        return nil
    }
}

/// A histogram of |x| with `binCount` equal bins over `[0, range]` (TensorRT's calibration
/// histogram: 2048 bins of absolute values). A value at or beyond `range` counts in the last bin.
public struct AbsHistogram: Sendable, Equatable {
    public static let defaultBinCount = 2048
    public let range: Float
    public private(set) var counts: [Double]

    public init(range: Float, binCount: Int = AbsHistogram.defaultBinCount) {
        self.range = range
        counts = [Double](repeating: 0, count: binCount)
    }

    public var binWidth: Double { Double(range) / Double(counts.count) }

    public mutating func add(_ values: UnsafeBufferPointer<Float>) {
        let n = counts.count
        // Everything lands in bin 0 of an all-zero tensor's histogram.
        let perUnit = range > 0 ? Float(n) / range : 0
        counts.withUnsafeMutableBufferPointer { bins in
            for x in values {
                let bin = Int(Swift.min(abs(x) * perUnit, Float(n - 1)))
                bins[bin] += 1
            }
        }
    }
}

/// Floats of a tensor's raw little-endian bytes, for the element types calibration observes.
public enum ObservedElements {
    /// The element types that are calibrated (as ONNX Runtime does: float and float16).
    public static func isObserved(_ dtype: DType) -> Bool { dtype == .f32 || dtype == .f16 }

    /// Calls `body` with the values as floats; nil if `dtype` is not observed.
    public static func withFloats<R>(_ bytes: UnsafeRawBufferPointer, dtype: DType,
                                     _ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R? {
        switch dtype {
        case .f32:
            let count = bytes.count / 4
            if let base = bytes.baseAddress, Int(bitPattern: base) % MemoryLayout<Float>.alignment == 0 {
                return try body(UnsafeBufferPointer(start: base.assumingMemoryBound(to: Float.self), count: count))
            }
            let copy = (0 ..< count).map { bytes.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) }
            return try copy.withUnsafeBufferPointer(body)
        case .f16:
            let copy = (0 ..< bytes.count / 2).map { halfToFloat(bytes.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)) }
            return try copy.withUnsafeBufferPointer(body)
        default:
            return nil
        }
    }
}
