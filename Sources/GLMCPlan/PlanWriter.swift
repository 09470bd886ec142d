import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes plan files (Docs/PlanFormat.md). Output is deterministic: the same plan gives the same bytes.
public enum PlanWriter {
    /// Encodes the manifest as deterministic JSON (sorted keys, no insignificant whitespace).
    public static func manifestJSON(_ manifest: PlanManifest) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do { return try encoder.encode(manifest) } catch {
            throw PlanError("cannot encode the plan manifest: \(error)")
        }
    }

    /// The named sections of a plan in file order: manifest, sources, code, calibration, weights.
    public static func sections(of plan: PlanFile) throws -> [(name: String, bytes: Data)] {
        var out: [(name: String, bytes: Data)] = [(PlanLayout.manifestSection, try manifestJSON(plan.manifest))]
        for (name, text) in plan.sources.sorted(by: { $0.key < $1.key }) { out.append((PlanLayout.sourcePrefix + name, Data(text.utf8))) }
        for (name, blob) in plan.code.sorted(by: { $0.key < $1.key }) { out.append((PlanLayout.codePrefix + name, blob)) }
        if let calibration = plan.calibration { out.append((PlanLayout.calibrationSection, Data(calibration.utf8))) }
        out.append((PlanLayout.weightsSection, plan.weights))
        return out
    }

    /// The complete file contents for `plan`.
    public static func encode(_ plan: PlanFile) throws -> Data {
        var out = Data()
        try emit(plan) { out.append($0) }
        return out
    }

    /// Produces the file in order, piece by piece (sections are passed through, not copied), hashing
    /// as it goes; the last piece is the checksum.
    static func emit(_ plan: PlanFile, to sink: (Data) throws -> Void) throws {
        try plan.validate()
        let sections = try sections(of: plan)
        for s in sections {
            let n = s.name.utf8.count
            guard n > 0, n <= PlanLayout.sectionNameBytes, !s.name.utf8.contains(0) else {
                throw PlanError("section name '\(s.name)' must be 1...\(PlanLayout.sectionNameBytes) UTF-8 bytes without NUL")
            }
        }
        // Offsets.
        var cursor = PlanLayout.headerBytes + sections.count * PlanLayout.sectionEntryBytes
        var entries: [PlanSectionEntry] = []
        for s in sections {
            cursor = PlanLayout.align(cursor)
            entries.append(PlanSectionEntry(name: s.name, offset: cursor, length: s.bytes.count))
            cursor += s.bytes.count
        }
        let checksumOffset = PlanLayout.align(cursor)
        let fileLength = checksumOffset + PlanLayout.checksumBytes

        var digest = SHA256Digest()
        var written = 0
        func put(_ piece: Data) throws {
            piece.withUnsafeBytes { digest.update($0) }
            written += piece.count
            try sink(piece)
        }
        var head = Data()
        // Header.
        head.append(contentsOf: PlanLayout.magic)
        head.appendLE(PlanFormatVersion.current.major)
        head.appendLE(PlanFormatVersion.current.minor)
        head.appendLE(UInt32(PlanLayout.headerBytes))
        head.appendLE(UInt32(sections.count))
        head.appendLE(UInt64(PlanLayout.headerBytes))
        head.appendLE(UInt64(fileLength))
        head.append(Data(count: PlanLayout.headerBytes - head.count))
        // Section table.
        for e in entries {
            let name = Array(e.name.utf8)
            head.append(contentsOf: name)
            head.append(Data(count: PlanLayout.sectionNameBytes - name.count))
            head.appendLE(UInt64(e.offset))
            head.appendLE(UInt64(e.length))
        }
        try put(head)
        // Sections, each after zero padding up to its offset.
        for (e, s) in zip(entries, sections) {
            if e.offset > written { try put(Data(count: e.offset - written)) }
            if !s.bytes.isEmpty { try put(s.bytes) }
        }
        if checksumOffset > written { try put(Data(count: checksumOffset - written)) }
        try sink(Data(digest.finalize()))
    }

    /// Writes `plan` to `path` atomically: a temporary file in the same directory (streamed, the
    /// weights are not copied), then rename(2).
    public static func write(_ plan: PlanFile, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        let tmp = dir + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        guard fd >= 0 else { throw PlanError("cannot write \(path): \(String(cString: strerror(errno)))") }
        do {
            try emit(plan) { piece in
                try piece.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
                    var done = 0
                    while done < raw.count {
                        let n = posixWrite(fd, raw.baseAddress! + done, raw.count - done)
                        if n < 0 && errno == EINTR { continue }
                        guard n > 0 else { throw PlanError("cannot write \(path): \(String(cString: strerror(errno)))") }
                        done += n
                    }
                }
            }
            guard fsync(fd) == 0 else { throw PlanError("cannot write \(path): \(String(cString: strerror(errno)))") }
        } catch {
            close(fd)
            unlink(tmp)
            throw error
        }
        close(fd)
        if rename(tmp, path) != 0 {
            let reason = String(cString: strerror(errno))
            unlink(tmp)
            throw PlanError("cannot write \(path): \(reason)")
        }
    }
}

/// write(2), named apart from the many `write` functions in scope.
private func posixWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(fd, buffer, count)
    #else
    return Darwin.write(fd, buffer, count)
    #endif
}
