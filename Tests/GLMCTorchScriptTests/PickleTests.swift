import GLMCIR
@testable import GLMCTorchScript
import XCTest

/// The safe pickle reader: what torch archives use is read, anything else refused without running it.
final class PickleTests: XCTestCase {
    /// GLOBAL 'module\nname\n'.
    func global(_ module: String, _ name: String) -> [UInt8] { [0x63] + Array("\(module)\n\(name)\n".utf8) }
    func unicode(_ s: String) -> [UInt8] { [0x58] + withUnsafeBytes(of: UInt32(s.utf8.count).littleEndian, Array.init) + Array(s.utf8) }

    func testReadsATensorRebuiltFromAStorage() throws {
        // _rebuild_tensor_v2(('storage', FloatStorage, '0', 'cpu', 6), 0, (2, 3), (3, 1), False, OrderedDict())
        var p: [UInt8] = [0x80, 0x02]
        p += global("torch._utils", "_rebuild_tensor_v2")
        p += [0x28, 0x28] + unicode("storage") + global("torch", "FloatStorage") + unicode("0") + unicode("cpu") + [0x4b, 6, 0x74, 0x51]
        p += [0x4b, 0, 0x4b, 2, 0x4b, 3, 0x86, 0x4b, 3, 0x4b, 1, 0x86, 0x89]
        p += global("collections", "OrderedDict") + [0x29, 0x52, 0x74, 0x52, 0x2e]
        guard case .tensor(let t) = try PickleReader.read(p, member: "m") else { return XCTFail("not a tensor") }
        XCTAssertEqual(t.storageKey, "0")
        XCTAssertEqual(t.dtype, .f32)
        XCTAssertEqual(t.sizes, [2, 3])
        XCTAssertEqual(t.strides, [3, 1])
    }

    func testReadsNumbersStringsListsAndDicts() throws {
        // {'a': [1, -2, 300000, 1.5, True, None]} with LONG1 for a negative 64-bit value
        var p: [UInt8] = [0x80, 0x02, 0x7d, 0x28] + unicode("a") + [0x5d, 0x28, 0x4b, 1, 0x4a] + [0xfe, 0xff, 0xff, 0xff]
        p += [0x4a] + withUnsafeBytes(of: Int32(300000).littleEndian, Array.init)
        p += [0x47] + withUnsafeBytes(of: (1.5).bitPattern.bigEndian, Array.init)
        p += [0x88, 0x4e, 0x8a, 2, 0x00, 0x80, 0x65, 0x75, 0x2e]
        guard case .dict(let entries) = try PickleReader.read(p, member: "m"), let list = entries.first?.value.items else { return XCTFail("not a dict of a list") }
        XCTAssertEqual(entries.first?.key.asString, "a")
        XCTAssertEqual(list.compactMap(\.asInt), [1, -2, 300000, 1, -32768])
        guard case .float(let f) = list[3] else { return XCTFail("not a float") }
        XCTAssertEqual(f, 1.5)
    }

    func testRefusesGlobalsOutsideTheAllowList() {
        for (module, name) in [("os", "system"), ("builtins", "eval"), ("subprocess", "Popen"), ("torch", "load")] {
            let p: [UInt8] = [0x80, 0x02] + global(module, name) + unicode("echo hi") + [0x85, 0x52, 0x2e]
            XCTAssertThrowsError(try PickleReader.read(p, member: "arch/data.pkl")) { e in
                let message = (e as? GLMCError)?.message ?? ""
                XCTAssertTrue(message.contains("global '\(module).\(name)' is not allowed"), message)
                XCTAssertTrue(message.hasPrefix("arch/data.pkl:"), message)
            }
        }
    }

    func testRefusesOpcodesTorchArchivesDoNotUse() {
        // INST (0x69) and STACK_GLOBAL (0x93) could name callables without GLOBAL; protocol 4 framing.
        for (bytes, expected) in [([0x80, 0x02, 0x69] as [UInt8], "opcode 0x69"), ([0x80, 0x02, 0x93], "opcode 0x93"),
                                  ([0x80, 0x04], "protocol 4")] {
            XCTAssertThrowsError(try PickleReader.read(bytes + [0x2e], member: "m")) { e in
                XCTAssertTrue(((e as? GLMCError)?.message ?? "").contains(expected), "\(e)")
            }
        }
    }

    func testRefusesTruncatedAndUnbalancedPickles() {
        for bytes: [UInt8] in [[0x80, 0x02, 0x58, 0xff, 0xff, 0, 0], [0x80, 0x02, 0x4b], [0x80, 0x02, 0x52, 0x2e],
                               [0x80, 0x02, 0x4b, 1, 0x4b, 2, 0x2e], [0x80, 0x02, 0x68, 7, 0x2e], []] {
            XCTAssertThrowsError(try PickleReader.read(bytes, member: "m"), "\(bytes)")
        }
    }

    func testRefusesValuesNestedTooDeeply() {
        // 100,000 TUPLE1s around one int: refused before the nesting could exhaust the stack.
        let p: [UInt8] = [0x80, 0x02, 0x4b, 1] + [UInt8](repeating: 0x85, count: 100_000) + [0x2e]
        XCTAssertThrowsError(try PickleReader.read(p, member: "m")) { e in
            XCTAssertTrue(((e as? GLMCError)?.message ?? "").contains("values nest more than 1000 deep"), "\(e)")
        }
        let lists: [UInt8] = [0x80, 0x02] + [UInt8](repeating: 0x28, count: 5000) + [UInt8](repeating: 0x6c, count: 5000) + [0x2e]
        XCTAssertThrowsError(try PickleReader.read(lists, member: "m"))
        // Memoized values keep their depth.
        var memoized: [UInt8] = [0x80, 0x02, 0x4b, 1] + [UInt8](repeating: 0x85, count: 999) + [0x71, 0]
        memoized += [0x30, 0x68, 0, 0x85, 0x2e]
        XCTAssertThrowsError(try PickleReader.read(memoized, member: "m"))
    }

    func testRefusesPersistentIDsThatAreNotStorages() {
        let p: [UInt8] = [0x80, 0x02] + unicode("../../etc/passwd") + [0x51, 0x2e]
        XCTAssertThrowsError(try PickleReader.read(p, member: "m")) { e in
            XCTAssertTrue(((e as? GLMCError)?.message ?? "").contains("not a storage record"), "\(e)")
        }
        var q: [UInt8] = [0x80, 0x02, 0x28] + unicode("storage") + global("torch", "FloatStorage") + unicode("../x") + unicode("cpu")
        q += [0x4b, 1, 0x74, 0x51, 0x2e]
        XCTAssertThrowsError(try PickleReader.read(q, member: "m")) { e in
            XCTAssertTrue(((e as? GLMCError)?.message ?? "").contains("is not a record name"), "\(e)")
        }
    }

    func testStridedViewsAreCopiedAndViewsOutsideTheirStorageRefused() throws {
        // A 2x3 storage 0...5 seen transposed (sizes [3, 2], strides [1, 3]).
        let storage = (0 ..< 6).flatMap { withUnsafeBytes(of: Float($0), Array.init) }
        let archive = TorchArchive(path: "m.pt", root: "m", members: ["data/0": storage])
        let transposed = PickledTensor(storageKey: "0", dtype: .f32, storageElementCount: 6, offset: 0, sizes: [3, 2], strides: [1, 3])
        XCTAssertEqual(try archive.tensorData(transposed, folder: "data").elements(as: Float.self), [0, 3, 1, 4, 2, 5])
        let slice = PickledTensor(storageKey: "0", dtype: .f32, storageElementCount: 6, offset: 4, sizes: [2], strides: [1])
        XCTAssertEqual(try archive.tensorData(slice, folder: "data").elements(as: Float.self), [4, 5])
        let outside = PickledTensor(storageKey: "0", dtype: .f32, storageElementCount: 6, offset: 2, sizes: [2, 3], strides: [3, 1])
        XCTAssertThrowsError(try archive.tensorData(outside, folder: "data")) { e in
            XCTAssertTrue(((e as? GLMCError)?.message ?? "").contains("m.pt:m/data/0: a tensor view (offset 2, sizes [2, 3], strides [3, 1]) reaches outside its storage"), "\(e)")
        }
        let short = PickledTensor(storageKey: "0", dtype: .f32, storageElementCount: 60, offset: 0, sizes: [60], strides: [1])
        XCTAssertThrowsError(try archive.tensorData(short, folder: "data"))
        let missing = PickledTensor(storageKey: "7", dtype: .f32, storageElementCount: 1, offset: 0, sizes: [1], strides: [1])
        XCTAssertThrowsError(try archive.tensorData(missing, folder: "data")) { e in
            XCTAssertEqual((e as? GLMCError)?.message, "m.pt: no member m/data/7")
        }
    }
}
