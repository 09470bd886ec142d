import Foundation
import GLMCInterpreter
import GLMCIR
import GLMCOps
import GLMCTestSupport
import XCTest

/// `.npy` reading and writing against files NumPy wrote (Tests/Fixtures/npy, from
/// scripts/make_bad_inputs.py), and round trips of every dtype.
final class NPYTests: XCTestCase {
    func read(_ name: String) throws -> Tensor { try NPY.read(path: Fixtures.npy(name)) }

    func bytes(_ name: String) throws -> [UInt8] {
        [UInt8](try XCTUnwrap(FileManager.default.contents(atPath: Fixtures.npy(name)), name))
    }

    func errorMessage(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            try body()
            XCTFail("expected an error", file: file, line: line)
        } catch let e as GLMCError {
            return e.message
        } catch {
            XCTFail("expected a GLMCError, got \(error)", file: file, line: line)
        }
        return ""
    }

    /// An .npy file with `header` (padded as NumPy does) and `body`.
    func npyFile(_ header: String, body: [UInt8] = [], version: UInt8 = 1) -> [UInt8] {
        var h = header
        let prefix = version == 1 ? 10 : 12
        h += String(repeating: " ", count: (64 - (prefix + h.utf8.count + 1) % 64) % 64) + "\n"
        let n = h.utf8.count
        var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [version, 0]
        out += version == 1 ? [UInt8(n & 0xFF), UInt8(n >> 8)] : [UInt8(n & 0xFF), UInt8(n >> 8 & 0xFF), 0, 0]
        return out + Array(h.utf8) + body
    }

    // MARK: Files NumPy wrote

    func testEveryNumericDtype() throws {
        let expected: [(String, DType, [Double])] = [
            ("f8", .f64, [-1, -0.5, 0, 0.5, 1, 1.5]), ("f4", .f32, [-1, -0.5, 0, 0.5, 1, 1.5]),
            ("f2", .f16, [-1, -0.5, 0, 0.5, 1, 1.5]),
            ("i8", .i64, [-2, -1, 0, 1, 2, 3]), ("i4", .i32, [-2, -1, 0, 1, 2, 3]),
            ("i2", .i16, [-2, -1, 0, 1, 2, 3]), ("i1", .i8, [-2, -1, 0, 1, 2, 3]),
            ("u8", .u64, [0, 1, 2, 3, 4, 5]), ("u4", .u32, [0, 1, 2, 3, 4, 5]),
            ("u2", .u16, [0, 1, 2, 3, 4, 5]), ("u1", .u8, [0, 1, 2, 3, 4, 5]),
        ]
        for (code, dtype, values) in expected {
            let t = try read("dtype_\(code).npy")
            XCTAssertEqual(t.dtype, dtype, code)
            XCTAssertEqual(t.shape, [2, 3], code)
            XCTAssertEqual(t.doubles, values, code)
        }
        // Half floats keep their bit patterns.
        guard case .f16(let bits) = try read("dtype_f2.npy").storage else { return XCTFail("f2 is not f16") }
        XCTAssertEqual(bits, [0xBC00, 0xB800, 0x0000, 0x3800, 0x3C00, 0x3E00])
    }

    func testBool() throws {
        let t = try read("dtype_b1.npy")
        guard case .bool(let v) = t.storage else { return XCTFail("not bool: \(t.dtype)") }
        XCTAssertEqual(v, [true, false, true])
        XCTAssertEqual(t.shape, [3])
    }

    func testUnicodeStrings() throws {
        let t = try read("strings.npy")
        guard case .string(let v) = t.storage else { return XCTFail("not strings: \(t.dtype)") }
        XCTAssertEqual(v, ["a", "h\u{e9}llo", ""])
        XCTAssertEqual(t.shape, [3])
    }

    func testScalarShape() throws {
        let t = try read("scalar.npy")
        XCTAssertEqual(t.shape, [])
        XCTAssertEqual(t.dtype, .f32)
        XCTAssertEqual(t.doubles, [3.5])
    }

    func testEmptyArray() throws {
        let t = try read("empty.npy")
        XCTAssertEqual(t.shape, [0, 3])
        XCTAssertEqual(t.dtype, .f32)
        XCTAssertEqual(t.count, 0)
    }

    func testFortranOrderBecomesRowMajor() throws {
        let t = try read("fortran.npy")
        XCTAssertTrue(String(decoding: try bytes("fortran.npy").prefix(80), as: UTF8.self).contains("'fortran_order': True"))
        XCTAssertEqual(t.shape, [2, 3])
        XCTAssertEqual(t.dtype, .i32)
        XCTAssertEqual(t.int64s, [0, 1, 2, 3, 4, 5])
        // Written back in C order, it is what NumPy writes for the C-ordered array.
        let c = try NPY.decode(try NPY.encode(t))
        XCTAssertEqual(c.int64s, [0, 1, 2, 3, 4, 5])
        XCTAssertTrue(String(decoding: try NPY.encode(t).prefix(80), as: UTF8.self).contains("'fortran_order': False"))
    }

    func testBigEndian() throws {
        let f = try read("big_endian.npy")
        XCTAssertEqual(f.dtype, .f64)
        XCTAssertEqual(f.doubles, [1.0, -2.5, 1e30])
        let i = try read("big_endian_i4.npy")
        XCTAssertEqual(i.dtype, .i32)
        XCTAssertEqual(i.shape, [2, 2])
        XCTAssertEqual(i.int64s, [1, -2, 65536, 7])
    }

    func testVersion2Header() throws {
        XCTAssertEqual(try bytes("v2_header.npy")[6], 2)
        let t = try read("v2_header.npy")
        XCTAssertEqual(t.dtype, .i16)
        XCTAssertEqual(t.int64s, [0, 1, 2, 3])
    }

    func testWritesWhatNumPyWrites() throws {
        // Reading then writing reproduces NumPy's file byte for byte (version 1.0 header, padding).
        for name in ["dtype_f8", "dtype_f4", "dtype_f2", "dtype_i8", "dtype_i4", "dtype_i2", "dtype_i1", "dtype_u8",
                     "dtype_u4", "dtype_u2", "dtype_u1", "dtype_b1", "strings", "scalar", "empty", "x_f32_2x3", "ids_i64_2"] {
            XCTAssertEqual(try NPY.encode(try read(name + ".npy")), try bytes(name + ".npy"), name)
        }
    }

    // MARK: Refusals

    func testObjectArraysAreRefused() {
        let message = errorMessage { _ = try read("object.npy") }
        XCTAssertTrue(message.contains("object arrays"), message)
        XCTAssertTrue(message.contains("object.npy"), "names the file: \(message)")
    }

    func testNotAnNPYFile() {
        let message = errorMessage { _ = try read("not_npy.npy") }
        XCTAssertTrue(message.contains("not a NumPy .npy file"), message)
        XCTAssertTrue(errorMessage { _ = try NPY.decode([]) }.contains("bad magic"))
        XCTAssertTrue(errorMessage { _ = try NPY.read(path: "/nonexistent/x.npy") }.contains("cannot read '/nonexistent/x.npy'"))
    }

    func testTruncatedData() {
        let message = errorMessage { _ = try read("truncated_body.npy") }
        XCTAssertTrue(message.contains("truncated .npy data"), message)
    }

    func testMalformedHeaders() {
        let cases: [([UInt8], String)] = [
            (npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", body: [0, 0, 0, 0], version: 1),
             "truncated .npy data"),
            (npyFile("{'descr': '<f4', 'shape': (2,), }"), "malformed .npy header"),
            (npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }"), "malformed .npy shape"),
            (npyFile("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", body: [UInt8](repeating: 0, count: 8)),
             "unsupported .npy dtype '<c8'"),
            (npyFile("{'descr': '<U0', 'fortran_order': False, 'shape': (1000000000000,), }"), "unsupported .npy dtype '<U0'"),
            // Sizes whose byte counts overflow must be refused, not trap.
            (npyFile("{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904,), }"), "absurd .npy shape"),
            (npyFile("{'descr': '<U4611686018427387904', 'fortran_order': False, 'shape': (4,), }"), "truncated .npy data"),
            (npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }"), "absurd .npy shape"),
            (Array(npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }").prefix(20)), "truncated .npy header"),
            ([0x93] + Array("NUMPY".utf8) + [4, 0, 0, 0], "unsupported .npy format version 4"),
        ]
        for (bytes, expected) in cases {
            let message = errorMessage { _ = try NPY.decode(bytes) }
            XCTAssertTrue(message.contains(expected), "'\(message)' does not contain '\(expected)'")
        }
    }

    // MARK: Round trips

    func testRoundTripEveryDtype() throws {
        let tensors: [Tensor] = [
            Tensor(shape: [2], storage: .f64([1e-300, -.infinity])),
            Tensor(shape: [3], storage: .f32([.nan, -0.0, 3.25])),
            Tensor(shape: [2], storage: .f16([0x7C00, 0x0001])),
            Tensor(shape: [2], storage: .i64([.min, .max])),
            Tensor(shape: [2], storage: .i32([.min, .max])),
            Tensor(shape: [2], storage: .i16([.min, .max])),
            Tensor(shape: [2], storage: .i8([.min, .max])),
            Tensor(shape: [2], storage: .u64([0, .max])),
            Tensor(shape: [2], storage: .u32([0, .max])),
            Tensor(shape: [2], storage: .u16([0, .max])),
            Tensor(shape: [2], storage: .u8([0, .max])),
            Tensor(shape: [1, 2], storage: .bool([false, true])),
            Tensor(shape: [2, 2], storage: .string(["", "\u{1F600}", "tab\there", "long string value"])),
            Tensor(shape: [], storage: .i64([42])),
            Tensor(shape: [0], storage: .f32([])),
            Tensor(shape: [3, 0, 2], storage: .i8([])),
            Tensor(shape: [0], storage: .string([])),
        ]
        for t in tensors {
            let encoded = try NPY.encode(t)
            // Data starts on a 64-byte boundary and the header ends with a newline, as NumPy requires.
            let headerLength = Int(encoded[8]) | Int(encoded[9]) << 8
            XCTAssertEqual((10 + headerLength) % 64, 0, "\(t.type)")
            XCTAssertEqual(encoded[10 + headerLength - 1], UInt8(ascii: "\n"))
            assertSameTensor(try NPY.decode(encoded), t, "\(t.type)")
        }
    }

    func testBFloat16IsRefusedOnWrite() {
        let message = errorMessage { _ = try NPY.encode(Tensor(shape: [1], storage: .bf16([0x3F80]))) }
        XCTAssertTrue(message.contains("bfloat16"), message)
    }

    func testWriteIsAtomicAndLeavesNoTemporaryFiles() throws {
        let dir = try Fixtures.temporaryDirectory("glmc-npy")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let t = Tensor([1, 2, 3] as [Float], shape: [3])
        try NPY.write(t, to: dir + "/a.npy")
        try NPY.write(t, to: dir + "/a.npy") // overwrite in place
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["a.npy"])
        assertSameTensor(try NPY.read(path: dir + "/a.npy"), t)
        XCTAssertTrue(errorMessage { try NPY.write(t, to: dir + "/missing/b.npy") }.contains("cannot write"))
    }
}
