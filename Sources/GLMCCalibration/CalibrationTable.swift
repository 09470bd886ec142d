import Foundation
import GLMCIR

/// The result of calibration: per observed tensor (by source tensor name, in observation order)
/// its range and chosen amax; written as a TensorRT calibration cache and as JSON.
public struct CalibrationTable: Sendable, Equatable {
    public struct Entry: Sendable, Equatable, Codable {
        public var name: String
        public var min: Float
        public var max: Float
        public var amax: Float
        /// Samples the tensor was observed in.
        public var samples: Int
        /// amax / 127: the float an int8 step stands for.
        public var scale: Float { amax / 127 }

        public init(name: String, min: Float, max: Float, amax: Float, samples: Int) {
            self.name = name; self.min = min; self.max = max; self.amax = amax; self.samples = samples
        }
    }

    public var method: CalibrationMethod
    public var sampleCount: Int
    public var entries: [Entry]

    public init(method: CalibrationMethod, sampleCount: Int, entries: [Entry]) {
        self.method = method; self.sampleCount = sampleCount; self.entries = entries
    }

    /// The TensorRT version written into a cache's first line: 8.6.1 as TensorRT encodes it
    /// (major * 1000 + minor * 100 + patch), the release whose cache format later releases still read.
    public static let tensorRTVersion = "8601"

    /// TensorRT's native calibration cache: `TRT-<version>-<Algorithm>`, then one line per tensor
    /// `<name>: <hex>` where hex is the IEEE-754 float32 bits of the scale (amax / 127), written
    /// as 8 lowercase hex digits (big-endian, as `%08x` of the bit pattern).
    public func tensorRTCache() -> String {
        var lines = ["TRT-\(Self.tensorRTVersion)-\(method.tensorRTAlgorithm)"]
        for e in entries { lines.append("\(e.name): \(Self.hex(e.scale))") }
        return lines.joined(separator: "\n") + "\n"
    }

    static func hex(_ value: Float) -> String {
        let s = String(value.bitPattern, radix: 16)
        return String(repeating: "0", count: 8 - s.count) + s
    }

    /// Reads the scales of a TensorRT calibration cache: (algorithm, [(name, scale)]).
    public static func parseTensorRTCache(_ text: String) throws -> (algorithm: String, scales: [(name: String, scale: Float)]) {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        guard let header = lines.first, header.hasPrefix("TRT-"), header.split(separator: "-").count >= 3 else {
            throw GLMCError("not a TensorRT calibration cache: the first line should be TRT-<version>-<Algorithm>")
        }
        lines.removeFirst()
        let algorithm = header.split(separator: "-").dropFirst(2).joined(separator: "-")
        var scales: [(String, Float)] = []
        for (i, line) in lines.enumerated() {
            guard let colon = line.range(of: ": ", options: .backwards),
                  let bits = UInt32(line[colon.upperBound...], radix: 16), line[colon.upperBound...].count == 8 else {
                throw GLMCError("calibration cache line \(i + 2): expected '<tensor name>: <8 hex digits>', got '\(line)'")
            }
            scales.append((String(line[..<colon.lowerBound]), Float(bitPattern: bits)))
        }
        return (algorithm, scales)
    }

    struct JSONForm: Codable {
        var format = "glmc-calibration"
        var method: String
        var tensorrtAlgorithm: String
        var samples: Int
        var tensors: [JSONTensor]
        enum CodingKeys: String, CodingKey { case format, method, tensorrtAlgorithm = "tensorrt_algorithm", samples, tensors }
    }

    struct JSONTensor: Codable {
        var name: String
        var min: Float
        var max: Float
        var amax: Float
        var scale: Float
        var scaleHex: String
        var samples: Int
        enum CodingKeys: String, CodingKey { case name, min, max, amax, scale, scaleHex = "scale_hex", samples }
    }

    /// The JSON form: method, sample count, and per tensor (in order) min, max, amax, scale.
    public func json() throws -> String {
        let form = JSONForm(method: method.description, tensorrtAlgorithm: method.tensorRTAlgorithm, samples: sampleCount,
                            tensors: entries.map { JSONTensor(name: $0.name, min: $0.min, max: $0.max, amax: $0.amax,
                                                              scale: $0.scale, scaleHex: Self.hex($0.scale), samples: $0.samples) })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(form), as: UTF8.self) + "\n"
    }
}
