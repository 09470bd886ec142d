import Foundation
import GLMCIR
import ZIPFoundation

/// A `torch.jit.save` archive: a zip whose members sit under one root folder —
/// `data.pkl` (the module object tree), `constants.pkl` (tensors of frozen modules), `data/<n>` and
/// `constants/<n>` (storage bytes), `code/__torch__/….py` (the serialized TorchScript code).
public struct TorchArchive {
    /// The zip file's path, for error messages.
    public let path: String
    /// The members' common root folder (`cnn` for `cnn/data.pkl`).
    public let root: String
    /// Member bytes by path relative to the root.
    let members: [String: [UInt8]]

    /// Most bytes read from one archive: torch archives of the models glmc targets are far smaller;
    /// a zip bomb is refused before it fills memory.
    static let maxTotalBytes: UInt64 = 8 << 30

    public init(path: String) throws {
        self.path = path
        let archive: Archive
        do { archive = try Archive(url: URL(fileURLWithPath: path), accessMode: .read) } catch {
            throw GLMCError("\(path): not a readable zip archive (\(error))")
        }
        var members: [String: [UInt8]] = [:]
        var roots = Set<String>()
        var total: UInt64 = 0
        for entry in archive where entry.type == .file {
            let parts = entry.path.split(separator: "/", maxSplits: 1)
            guard parts.count == 2 else { throw GLMCError("\(path): member '\(entry.path)' is not under a root folder (not a TorchScript archive)") }
            total += entry.uncompressedSize
            guard total <= Self.maxTotalBytes else { throw GLMCError("\(path): the archive unpacks to more than \(Self.maxTotalBytes >> 30) GiB") }
            roots.insert(String(parts[0]))
            var bytes: [UInt8] = []
            bytes.reserveCapacity(Int(entry.uncompressedSize))
            do {
                _ = try archive.extract(entry, skipCRC32: false) { bytes += $0 }
            } catch {
                throw GLMCError("\(path): member '\(entry.path)' cannot be read (\(error))")
            }
            members[String(parts[1])] = bytes
        }
        guard roots.count == 1, let root = roots.first else {
            throw GLMCError("\(path): not a TorchScript archive (members under \(roots.count) root folders, expected one)")
        }
        self.root = root
        self.members = members
        if let order = members["byteorder"], String(decoding: order, as: UTF8.self) != "little" {
            throw GLMCError("\(path): unsupported: storages in \(String(decoding: order.prefix(16), as: UTF8.self)) byte order (\(root)/byteorder); glmc reads little-endian archives")
        }
        guard members["data.pkl"] != nil else { throw GLMCError("\(path): not a TorchScript archive (no \(root)/data.pkl)") }
        guard members.keys.contains(where: { $0.hasPrefix("code/") && $0.hasSuffix(".py") }) else {
            throw GLMCError("\(path): not a TorchScript archive: it has no TorchScript code (\(root)/code/__torch__/*.py); torch.save checkpoints hold weights only — save the model with torch.jit.save")
        }
    }

    /// An archive from members already in memory (tests).
    init(path: String, root: String, members: [String: [UInt8]]) {
        self.path = path
        self.root = root
        self.members = members
    }

    /// The member's bytes; `name` is relative to the root.
    func member(_ name: String) throws -> [UInt8] {
        guard let bytes = members[name] else { throw GLMCError("\(path): no member \(root)/\(name)") }
        return bytes
    }

    /// Where a member is, for error messages (`model.pt:cnn/code/__torch__.py`).
    func label(_ name: String) -> String { "\(path):\(root)/\(name)" }

    func pickle(_ name: String) throws -> PickleValue? {
        guard let bytes = members[name] else { return nil }
        return try PickleReader.read(bytes, member: label(name))
    }

    /// The serialized code files, by path relative to the root.
    var codeFiles: [(name: String, text: String)] {
        members.keys.filter { $0.hasPrefix("code/") && $0.hasSuffix(".py") }.sorted().map { ($0, String(decoding: members[$0]!, as: UTF8.self)) }
    }

    /// The bytes of a pickled tensor, made contiguous. `folder` is `data` or `constants`.
    func tensorData(_ t: PickledTensor, folder: String) throws -> TensorData {
        let record = "\(folder)/\(t.storageKey)"
        let storage = try member(record)
        let width = t.dtype.byteSize
        guard storage.count >= t.storageElementCount * width else {
            throw GLMCError("\(label(record)): \(storage.count) bytes for \(t.storageElementCount) elements of \(t.dtype)")
        }
        guard t.sizes.allSatisfy({ $0 >= 0 }), let count = checkedElementCount(t.sizes) else {
            throw GLMCError("\(label(record)): invalid tensor sizes \(t.sizes)")
        }
        // Check every index the view reaches lies inside the storage before copying.
        if count > 0 {
            var lowest = t.offset, highest = t.offset
            for (size, stride) in zip(t.sizes, t.strides) {
                let span = (size - 1) * stride
                if span < 0 { lowest += span } else { highest += span }
            }
            guard lowest >= 0, highest < t.storageElementCount else {
                throw GLMCError("\(label(record)): a tensor view (offset \(t.offset), sizes \(t.sizes), strides \(t.strides)) reaches outside its storage of \(t.storageElementCount) elements")
            }
        }
        // Contiguous views (all parameters and constants torch saves) are one slice of the storage.
        var contiguousStrides = [Int](repeating: 1, count: t.sizes.count)
        for d in t.sizes.indices.reversed().dropFirst() { contiguousStrides[d] = contiguousStrides[d + 1] * t.sizes[d + 1] }
        if count == 0 || zip(zip(t.sizes, t.strides), contiguousStrides).allSatisfy({ $0.0 == 1 || $0.1 == $1 }) {
            let start = t.offset * width
            return TensorData(type: TensorType(t.dtype, static: t.sizes), elements: Array(storage[start ..< start + count * width]))
        }
        var out = [UInt8](repeating: 0, count: count * width)
        var index = [Int](repeating: 0, count: t.sizes.count)
        for k in 0 ..< count {
            var source = t.offset
            for (i, s) in zip(index, t.strides) { source += i * s }
            for j in 0 ..< width { out[k * width + j] = storage[source * width + j] }
            var d = t.sizes.count - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < t.sizes[d] { break }
                index[d] = 0
                d -= 1
            }
        }
        return TensorData(type: TensorType(t.dtype, static: t.sizes), elements: out)
    }
}
