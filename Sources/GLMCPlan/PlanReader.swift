import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only private memory mapping, unmapped when the last `Data` that uses it goes away.
final class MappedRegion: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let count: Int
    init(base: UnsafeMutableRawPointer, count: Int) { self.base = base; self.count = count }
    deinit { munmap(base, count) }
}

/// Reads plan files (Docs/PlanFormat.md), verifying the magic, the format version, the section table
/// and the checksum before anything in the file is trusted.
public enum PlanReader {
    /// Memory-maps `path` and decodes it. Sections (weights included) are not copied: the returned
    /// `Data` values refer to the mapping, which lives as long as any of them. The file must not be
    /// truncated by another process while the plan is in use.
    public static func read(path: String) throws -> PlanFile {
        // O_NONBLOCK: a FIFO or device must not block the open; regular files are unaffected.
        let fd = open(path, O_RDONLY | O_NONBLOCK)
        guard fd >= 0 else { throw PlanError("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw PlanError("cannot stat \(path): \(String(cString: strerror(errno)))") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw PlanError("\(path) is not a regular file") }
        guard let size = Int(exactly: st.st_size), size >= PlanLayout.minimumFileBytes else {
            throw PlanError("\(path): file is \(st.st_size) bytes, too small to be a plan (at least \(PlanLayout.minimumFileBytes))")
        }
        let raw: UnsafeMutableRawPointer? = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0)
        guard let base = raw, base != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw PlanError("cannot map \(path): \(String(cString: strerror(errno)))")
        }
        let region = MappedRegion(base: base, count: size)
        do {
            return try decode(UnsafeRawBufferPointer(start: base, count: size)) { range in
                if range.isEmpty { return Data() }
                return Data(bytesNoCopy: region.base + range.lowerBound, count: range.count,
                            deallocator: .custom({ _, _ in withExtendedLifetime(region) {} }))
            }
        } catch let error as PlanError {
            throw PlanError("\(path): \(error.message)")
        }
    }

    /// Decodes a plan held in memory (sections are copied out of `data`).
    public static func decode(_ data: Data) throws -> PlanFile {
        try data.withUnsafeBytes { buffer in
            try decode(buffer) { range in Data(buffer[range]) }
        }
    }

    /// Reads and checks the header and section table only (the checksum included).
    public static func sectionTable(_ bytes: UnsafeRawBufferPointer) throws -> (version: PlanFormatVersion, sections: [PlanSectionEntry]) {
        let size = bytes.count
        guard size >= PlanLayout.minimumFileBytes else {
            throw PlanError("file is \(size) bytes, too small to be a plan (at least \(PlanLayout.minimumFileBytes))")
        }
        func u32(_ at: Int) -> UInt32 { UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self)) }
        func u64(_ at: Int) -> UInt64 { UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }

        guard Array(bytes[0..<8]) == PlanLayout.magic else {
            throw PlanError("not a glmc plan: the file does not start with the magic \"GLMCPLAN\"")
        }
        let version = PlanFormatVersion(major: u32(8), minor: u32(12))
        guard version.major == PlanFormatVersion.current.major else {
            throw PlanError("plan format version \(version) is not supported: this reader reads version \(PlanFormatVersion.current.major).x (\(PlanFormatVersion.current))")
        }
        let headerBytes = u32(16), count = u32(20), tableOffset = u64(24), fileLength = u64(32)
        guard fileLength == UInt64(size) else {
            if fileLength > UInt64(size) {
                throw PlanError("plan is truncated: the header records \(fileLength) bytes but the file has \(size)")
            }
            throw PlanError("plan has trailing bytes: the header records \(fileLength) bytes but the file has \(size)")
        }
        // Checksum before anything else is trusted.
        let checksumOffset = size - PlanLayout.checksumBytes
        let actual = SHA256Digest.hash(UnsafeRawBufferPointer(rebasing: bytes[0..<checksumOffset]))
        guard actual.elementsEqual(bytes[checksumOffset..<size]) else {
            throw PlanError("checksum mismatch: the plan is corrupt or was modified")
        }
        guard headerBytes == UInt32(PlanLayout.headerBytes) else {
            throw PlanError("header size is \(headerBytes), expected \(PlanLayout.headerBytes)")
        }
        guard checksumOffset % PlanLayout.alignment == 0 else {
            throw PlanError("checksum offset \(checksumOffset) is not a multiple of \(PlanLayout.alignment)")
        }
        guard count <= UInt32(PlanLayout.maximumSections) else {
            throw PlanError("section count \(count) exceeds the limit of \(PlanLayout.maximumSections)")
        }
        guard tableOffset >= UInt64(PlanLayout.headerBytes), tableOffset <= UInt64(checksumOffset) else {
            throw PlanError("section table offset \(tableOffset) lies outside the file")
        }
        let tableStart = Int(tableOffset)
        let tableBytes = Int(count) * PlanLayout.sectionEntryBytes
        guard tableBytes <= checksumOffset - tableStart else {
            throw PlanError("section table (\(count) entries at offset \(tableOffset)) extends past the end of the file")
        }
        let tableEnd = tableStart + tableBytes
        var entries: [PlanSectionEntry] = []
        var names = Set<String>()
        for i in 0..<Int(count) {
            let at = tableStart + i * PlanLayout.sectionEntryBytes
            let nameField = bytes[at..<at + PlanLayout.sectionNameBytes]
            let nameLength = nameField.firstIndex(of: 0).map { $0 - at } ?? PlanLayout.sectionNameBytes
            guard nameLength > 0, nameField[(at + nameLength)...].allSatisfy({ $0 == 0 }),
                  let name = String(validating: nameField[at..<at + nameLength], as: UTF8.self) else {
                throw PlanError("section table entry \(i) has an invalid name")
            }
            let offset = u64(at + PlanLayout.sectionNameBytes), length = u64(at + PlanLayout.sectionNameBytes + 8)
            guard names.insert(name).inserted else { throw PlanError("duplicate section '\(name)'") }
            guard offset % UInt64(PlanLayout.alignment) == 0 else {
                throw PlanError("section '\(name)' offset \(offset) is not a multiple of \(PlanLayout.alignment)")
            }
            guard offset >= UInt64(tableEnd), offset <= UInt64(checksumOffset),
                  length <= UInt64(checksumOffset) - offset else {
                throw PlanError("section '\(name)' [offset \(offset), length \(length)] lies outside the section area [\(tableEnd), \(checksumOffset))")
            }
            entries.append(PlanSectionEntry(name: name, offset: Int(offset), length: Int(length)))
        }
        let byOffset = entries.sorted { ($0.offset, $0.length) < ($1.offset, $1.length) }
        for (a, b) in zip(byOffset, byOffset.dropFirst()) where a.offset + a.length > b.offset {
            throw PlanError("sections '\(a.name)' and '\(b.name)' overlap")
        }
        return (version, entries)
    }

    /// Decodes a whole plan from `bytes`; `section` turns a checked byte range into the section's `Data`.
    static func decode(_ bytes: UnsafeRawBufferPointer, section: (Range<Int>) -> Data) throws -> PlanFile {
        let (version, entries) = try sectionTable(bytes)
        func range(_ e: PlanSectionEntry) -> Range<Int> { e.offset..<e.offset + e.length }
        func text(_ e: PlanSectionEntry) throws -> String {
            guard let s = String(validating: bytes[range(e)], as: UTF8.self) else {
                throw PlanError("section '\(e.name)' is not valid UTF-8")
            }
            return s
        }
        guard let manifestEntry = entries.first(where: { $0.name == PlanLayout.manifestSection }) else {
            throw PlanError("plan has no 'manifest' section")
        }
        guard let weightsEntry = entries.first(where: { $0.name == PlanLayout.weightsSection }) else {
            throw PlanError("plan has no 'weights' section")
        }
        let manifest: PlanManifest
        do {
            manifest = try JSONDecoder().decode(PlanManifest.self, from: Data(bytes[range(manifestEntry)]))
        } catch let error as DecodingError {
            throw PlanError("manifest is invalid: \(describe(error))")
        } catch {
            throw PlanError("manifest is invalid: \(error)")
        }
        guard manifest.formatVersion.major == version.major else {
            throw PlanError("manifest format version \(manifest.formatVersion) disagrees with the header's \(version)")
        }
        var plan = PlanFile(manifest: manifest, weights: section(range(weightsEntry)))
        for e in entries {
            if e.name.hasPrefix(PlanLayout.sourcePrefix) {
                plan.sources[String(e.name.dropFirst(PlanLayout.sourcePrefix.count))] = try text(e)
            } else if e.name.hasPrefix(PlanLayout.codePrefix) {
                plan.code[String(e.name.dropFirst(PlanLayout.codePrefix.count))] = section(range(e))
            } else if e.name == PlanLayout.calibrationSection {
                plan.calibration = try text(e)
            }
            // Other names: sections of a newer minor version; ignored.
        }
        try plan.validate()
        return plan
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ c: DecodingError.Context) -> String {
            let p = c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return p.isEmpty ? "" : " at \(p)"
        }
        switch error {
        case .dataCorrupted(let c): return "\(c.debugDescription)\(path(c))"
        case .keyNotFound(let key, let c): return "missing key '\(key.stringValue)'\(path(c))"
        case .typeMismatch(let type, let c): return "expected \(type)\(path(c))"
        case .valueNotFound(let type, let c): return "missing \(type) value\(path(c))"
        @unknown default: return "\(error)"
        }
    }
}
