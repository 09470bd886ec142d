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

        var out = Data()
        out.reserveCapacity(fileLength)
        // Header.
        out.append(contentsOf: PlanLayout.magic)
        out.appendLE(PlanFormatVersion.current.major)
        out.appendLE(PlanFormatVersion.current.minor)
        out.appendLE(UInt32(PlanLayout.headerBytes))
        out.appendLE(UInt32(sections.count))
        out.appendLE(UInt64(PlanLayout.headerBytes))
        out.appendLE(UInt64(fileLength))
        out.append(Data(count: PlanLayout.headerBytes - out.count))
        // Section table.
        for e in entries {
            let name = Array(e.name.utf8)
            out.append(contentsOf: name)
            out.append(Data(count: PlanLayout.sectionNameBytes - name.count))
            out.appendLE(UInt64(e.offset))
            out.appendLE(UInt64(e.length))
        }
        // Sections.
        for (e, s) in zip(entries, sections) {
            out.append(Data(count: e.offset - out.count))
            out.append(s.bytes)
        }
        out.append(Data(count: checksumOffset - out.count))
        let digest = out.withUnsafeBytes { SHA256Digest.hash($0) }
        out.append(contentsOf: digest)
        return out
    }

    /// Writes `plan` to `path` atomically: a temporary file in the same directory, then rename(2).
    public static func write(_ plan: PlanFile, to path: String) throws {
        let bytes = try encode(plan)
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        let tmp = dir + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        do {
            try bytes.write(to: URL(fileURLWithPath: tmp))
        } catch {
            unlink(tmp)
            throw PlanError("cannot write \(path): \(error.localizedDescription)")
        }
        if rename(tmp, path) != 0 {
            let reason = String(cString: strerror(errno))
            unlink(tmp)
            throw PlanError("cannot write \(path): \(reason)")
        }
    }
}
