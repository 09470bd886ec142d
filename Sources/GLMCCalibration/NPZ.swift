import Foundation
import GLMCIR
import GLMCInterpreter
import GLMCOps

/// NumPy `.npz` archives as `np.savez` writes them: a zip of `.npy` members, stored uncompressed
/// (zip64 size fields included). Compressed archives (`np.savez_compressed`) are refused.
enum NPZ {
    /// The members, by name without the `.npy` suffix, in archive order.
    static func read(path: String) throws -> [(name: String, tensor: Tensor)] {
        guard let data = FileManager.default.contents(atPath: path) else { throw GLMCError("cannot read '\(path)'") }
        do { return try decode([UInt8](data)) } catch let e as GLMCError { throw GLMCError("\(path): \(e.message)") }
    }

    static func decode(_ b: [UInt8]) throws -> [(name: String, tensor: Tensor)] {
        func u16(_ o: Int) throws -> Int {
            guard o >= 0, o + 2 <= b.count else { throw GLMCError("truncated .npz (zip) file") }
            return Int(b[o]) | Int(b[o + 1]) << 8
        }
        func u32(_ o: Int) throws -> Int { let lo = try u16(o), hi = try u16(o + 2); return lo | hi << 16 }
        func u64(_ o: Int) throws -> Int {
            let lo = try u32(o), hi = try u32(o + 4)
            guard hi < 1 << 30 else { throw GLMCError("absurd zip64 size in .npz") }
            return lo | hi << 32
        }
        // The end-of-central-directory record: the last "PK\u{5}\u{6}" within 64 KiB + 22 of the end.
        var eocd = -1
        var o = b.count - 22
        while o >= Swift.max(0, b.count - 22 - 65535) {
            if b[o] == 0x50, b[o + 1] == 0x4b, b[o + 2] == 0x05, b[o + 3] == 0x06 { eocd = o; break }
            o -= 1
        }
        guard eocd >= 0 else { throw GLMCError("not a .npz file (no zip directory found)") }
        let entryCount = try u16(eocd + 10)
        var p = try u32(eocd + 16)
        if p == 0xFFFF_FFFF { throw GLMCError("unsupported: .npz archives over 4 GiB") }
        var members: [(String, Tensor)] = []
        for _ in 0 ..< entryCount {
            guard try u32(p) == 0x0201_4b50 else { throw GLMCError("corrupt .npz: bad central directory entry at byte \(p)") }
            let method = try u16(p + 10)
            var compressed = try u32(p + 20), size = try u32(p + 24)
            let nameLength = try u16(p + 28), extraLength = try u16(p + 30), commentLength = try u16(p + 32)
            var local = try u32(p + 42)
            guard p + 46 + nameLength <= b.count else { throw GLMCError("truncated .npz (zip) file") }
            let name = String(decoding: b[(p + 46) ..< (p + 46 + nameLength)], as: UTF8.self)
            // zip64 extra field (id 1): the 8-byte sizes and offset that are 0xFFFFFFFF above, in order.
            var e = p + 46 + nameLength
            let extraEnd = e + extraLength
            while e + 4 <= extraEnd {
                let id = try u16(e), length = try u16(e + 2)
                if id == 1 {
                    var f = e + 4
                    if size == 0xFFFF_FFFF { size = try u64(f); f += 8 }
                    if compressed == 0xFFFF_FFFF { compressed = try u64(f); f += 8 }
                    if local == 0xFFFF_FFFF { local = try u64(f) }
                }
                e += 4 + length
            }
            p = extraEnd + commentLength
            guard method == 0 else {
                throw GLMCError("member '\(name)' is compressed (np.savez_compressed); write samples with np.savez")
            }
            guard try u32(local) == 0x0403_4b50 else { throw GLMCError("corrupt .npz: bad local header of '\(name)'") }
            let localName = try u16(local + 26), localExtra = try u16(local + 28)
            let start = local + 30 + localName + localExtra
            guard start + size <= b.count, size == compressed else { throw GLMCError("truncated .npz member '\(name)'") }
            let tensor: Tensor
            do { tensor = try NPY.decode(Array(b[start ..< start + size])) } catch let err as GLMCError {
                throw GLMCError("member '\(name)': \(err.message)")
            }
            members.append((name.hasSuffix(".npy") ? String(name.dropLast(4)) : name, tensor))
        }
        return members
    }
}
