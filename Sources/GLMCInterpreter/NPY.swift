import Foundation
import GLMCIR
import GLMCOps

/// NumPy `.npy` files (format versions 1-3), for run inputs and outputs. Little-endian and
/// big-endian numeric types, bool and fixed-width unicode strings; object arrays (pickles) are refused.
public enum NPY {
    private static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)

    public static func read(path: String) throws -> Tensor {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw GLMCError("cannot read '\(path)'")
        }
        do {
            return try decode([UInt8](data))
        } catch let e as GLMCError {
            throw GLMCError("\(path): \(e.message)")
        }
    }

    public static func decode(_ bytes: [UInt8]) throws -> Tensor {
        guard bytes.count >= 10, Array(bytes[0 ..< 6]) == magic else {
            throw GLMCError("not a NumPy .npy file (bad magic)")
        }
        let major = bytes[6]
        let headerLength: Int, headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw GLMCError("truncated .npy header") }
            headerLength = (0 ..< 4).reduce(0) { $0 | Int(bytes[8 + $1]) << (8 * $1) }
            headerStart = 12
        default: throw GLMCError("unsupported .npy format version \(major)")
        }
        guard headerStart + headerLength <= bytes.count else { throw GLMCError("truncated .npy header") }
        let header = String(decoding: bytes[headerStart ..< headerStart + headerLength], as: UTF8.self)
        guard let descr = field("descr", in: header).flatMap(unquote),
              let fortran = field("fortran_order", in: header),
              let shapeText = field("shape", in: header) else {
            throw GLMCError("malformed .npy header: \(header.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        let shape = try parseShape(shapeText)
        guard let count = checkedElementCount(shape) else { throw GLMCError("absurd .npy shape \(shape)") }
        let body = Array(bytes[(headerStart + headerLength)...])
        var tensor = try decodeBody(body, descr: descr, shape: shape, count: count)
        if fortran.hasPrefix("True") { tensor = fromFortranOrder(tensor) }
        return tensor
    }

    private static func decodeBody(_ body: [UInt8], descr: String, shape: [Int], count: Int) throws -> Tensor {
        guard let order = descr.first, "<>|=".contains(order) else { throw GLMCError("unsupported .npy dtype '\(descr)'") }
        let code = String(descr.dropFirst())
        let bigEndian = order == ">"
        if code.hasPrefix("U") {
            guard let width = Int(code.dropFirst()), width >= 1 else { throw GLMCError("unsupported .npy dtype '\(descr)'") }
            // Sizes come from the file: check for overflow before trusting them.
            let (scalars, o1) = count.multipliedReportingOverflow(by: width)
            let (needed, o2) = scalars.multipliedReportingOverflow(by: 4)
            guard !o1, !o2, body.count >= needed else {
                throw GLMCError("truncated .npy data: \(body.count) bytes for \(count) strings of \(width)")
            }
            var strings: [String] = []
            strings.reserveCapacity(count)
            for i in 0 ..< count {
                var scalars = String.UnicodeScalarView()
                for k in 0 ..< width {
                    let o = (i * width + k) * 4
                    var v = (0 ..< 4).reduce(UInt32(0)) { $0 | UInt32(body[o + $1]) << (8 * $1) }
                    if bigEndian { v = v.byteSwapped }
                    if v == 0 { break }
                    if let s = Unicode.Scalar(v) { scalars.append(s) }
                }
                strings.append(String(scalars))
            }
            return Tensor(shape: shape, storage: .string(strings))
        }
        let dtypes: [String: DType] = ["f8": .f64, "f4": .f32, "f2": .f16, "i8": .i64, "i4": .i32, "i2": .i16, "i1": .i8,
                                       "u8": .u64, "u4": .u32, "u2": .u16, "u1": .u8, "b1": .bool]
        guard let dtype = dtypes[code] else {
            throw GLMCError("unsupported .npy dtype '\(descr)'\(code == "O" ? " (object arrays are pickles; refused)" : "")")
        }
        let size = dtype.byteSize
        let (needed, overflow) = count.multipliedReportingOverflow(by: size)
        guard !overflow else { throw GLMCError("absurd .npy shape \(shape) of \(dtype)") }
        guard body.count >= needed else {
            throw GLMCError("truncated .npy data: \(body.count) bytes, \(shape) of \(dtype) needs \(needed)")
        }
        var raw = Array(body[0 ..< count * size])
        if bigEndian && size > 1 {
            for i in 0 ..< count { raw[(i * size) ..< (i * size + size)].reverse() }
        }
        let data = raw.withUnsafeBytes { TensorData(type: TensorType(dtype, static: shape), copying: $0) }
        return try Tensor(data)
    }

    /// Writes `tensor` to `path` atomically (a temporary file renamed into place).
    public static func write(_ tensor: Tensor, to path: String) throws {
        try write(encoded: try encode(tensor), to: path)
    }

    /// Writes bytes made by `encode` to `path` atomically.
    public static func write(encoded bytes: [UInt8], to path: String) throws {
        let temporary = path + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(bytes)) else {
            throw GLMCError("cannot write '\(path)'")
        }
        if rename(temporary, path) != 0 {
            unlink(temporary)
            throw GLMCError("cannot write '\(path)'")
        }
    }

    public static func encode(_ t: Tensor) throws -> [UInt8] {
        let descr: String
        var body: [UInt8]
        switch t.storage {
        case .string(let strings):
            let width = max(1, strings.map { $0.unicodeScalars.count }.max() ?? 1)
            descr = "<U\(width)"
            body = []
            body.reserveCapacity(strings.count * width * 4)
            for s in strings {
                var n = 0
                for scalar in s.unicodeScalars { withUnsafeBytes(of: scalar.value.littleEndian) { body += $0 }; n += 1 }
                body += [UInt8](repeating: 0, count: (width - n) * 4)
            }
        case .bf16:
            throw GLMCError("bfloat16 tensors have no .npy type; cast the output to float32")
        default:
            let codes: [DType: String] = [.f64: "<f8", .f32: "<f4", .f16: "<f2", .i64: "<i8", .i32: "<i4", .i16: "<i2", .i8: "|i1",
                                          .u64: "<u8", .u32: "<u4", .u16: "<u2", .u8: "|u1", .bool: "|b1"]
            descr = codes[t.dtype] ?? "|u1"
            body = t.tensorData.bytes
        }
        let shapeText = t.shape.isEmpty ? "()" : t.shape.count == 1 ? "(\(t.shape[0]),)" : "(" + t.shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var out = magic + [1, 0]
        let n = header.utf8.count
        out += [UInt8(n & 0xFF), UInt8(n >> 8)]
        out += Array(header.utf8)
        return out + body
    }

    // MARK: Header parsing

    /// The text of `'key': value` up to the next top-level comma or closing brace.
    private static func field(_ key: String, in header: String) -> String? {
        guard let r = header.range(of: "'\(key)'") else { return nil }
        var rest = header[r.upperBound...].drop(while: { $0 == " " })
        guard rest.first == ":" else { return nil }
        rest = rest.dropFirst().drop(while: { $0 == " " })
        var depth = 0, end = rest.startIndex
        while end < rest.endIndex {
            let c = rest[end]
            if c == "(" { depth += 1 } else if c == ")" { depth -= 1 }
            if depth == 0 && (c == "," || c == "}") { break }
            end = rest.index(after: end)
        }
        return String(rest[..<end]).trimmingCharacters(in: .whitespaces)
    }

    private static func unquote(_ s: String) -> String? {
        guard s.count >= 2, let q = s.first, q == "'" || q == "\"", s.last == q else { return nil }
        return String(s.dropFirst().dropLast())
    }

    private static func parseShape(_ text: String) throws -> [Int] {
        guard text.hasPrefix("("), text.hasSuffix(")") else { throw GLMCError("malformed .npy shape '\(text)'") }
        let inner = text.dropFirst().dropLast()
        return try inner.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.map {
            guard let v = Int($0.hasSuffix("L") ? String($0.dropLast()) : $0), v >= 0 else { throw GLMCError("malformed .npy shape '\(text)'") }
            return v
        }
    }

    /// Reorders column-major elements into row-major.
    private static func fromFortranOrder(_ t: Tensor) -> Tensor {
        guard t.shape.count > 1 else { return t }
        let n = t.count
        let reversedShape = Array(t.shape.reversed())
        let srcStrides = ShapeHelpers.strides(reversedShape)
        let order: [Int] = (0 ..< n).map { flat in
            // Row-major index `flat` in t.shape → position in the column-major buffer.
            var rem = flat, offset = 0
            for (axis, stride) in ShapeHelpers.strides(t.shape).enumerated() {
                let i = rem / stride
                rem %= stride
                offset += i * srcStrides[t.shape.count - 1 - axis]
            }
            return offset
        }
        func pick<T>(_ a: [T]) -> [T] { order.map { a[$0] } }
        let storage: TensorStorage
        switch t.storage {
        case .f64(let a): storage = .f64(pick(a))
        case .f32(let a): storage = .f32(pick(a))
        case .f16(let a): storage = .f16(pick(a))
        case .bf16(let a): storage = .bf16(pick(a))
        case .i64(let a): storage = .i64(pick(a))
        case .i32(let a): storage = .i32(pick(a))
        case .i16(let a): storage = .i16(pick(a))
        case .i8(let a): storage = .i8(pick(a))
        case .u64(let a): storage = .u64(pick(a))
        case .u32(let a): storage = .u32(pick(a))
        case .u16(let a): storage = .u16(pick(a))
        case .u8(let a): storage = .u8(pick(a))
        case .bool(let a): storage = .bool(pick(a))
        case .string(let a): storage = .string(pick(a))
        }
        return Tensor(shape: t.shape, storage: storage)
    }
}
