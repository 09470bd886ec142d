import Foundation

/// Constants and helpers of the binary layout (Docs/PlanFormat.md, "Byte layout").
public enum PlanLayout {
    /// "GLMCPLAN" in ASCII.
    public static let magic: [UInt8] = Array("GLMCPLAN".utf8)
    /// Size of the fixed header.
    public static let headerBytes = 64
    /// Size of one section table entry.
    public static let sectionEntryBytes = 128
    /// Bytes of a section name field (UTF-8, zero padded; at most this many bytes, no NUL inside).
    public static let sectionNameBytes = 112
    /// Section offsets, the checksum offset and weight offsets are multiples of this.
    public static let alignment = 64
    /// Size of the trailing SHA-256.
    public static let checksumBytes = 32
    /// The smallest possible plan file: a header, no table, a checksum.
    public static let minimumFileBytes = headerBytes + checksumBytes
    /// Readers refuse plans with more sections than this.
    public static let maximumSections = 1 << 16

    /// Well-known section names.
    public static let manifestSection = "manifest"
    public static let weightsSection = "weights"
    public static let calibrationSection = "calibration"
    public static let sourcePrefix = "source/"
    public static let codePrefix = "code/"

    /// `n` rounded up to a multiple of `alignment`.
    public static func align(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }
}

/// One row of the section table as stored in a file.
public struct PlanSectionEntry: Equatable, Sendable {
    public var name: String
    public var offset: Int
    public var length: Int
    public init(name: String, offset: Int, length: Int) { self.name = name; self.offset = offset; self.length = length }
}

extension Data {
    mutating func appendLE<T: FixedWidthInteger>(_ v: T) {
        Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) }
    }
}
