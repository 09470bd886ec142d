#if canImport(Glibc)
import Glibc
#endif
import CONNXProto
import GLMCIR

/// Turns ONNX `TensorProto`s into `TensorData`, for every encoding: `raw_data` (little-endian), the
/// typed repeated fields, and external data files. External files are memory-mapped once and shared,
/// and their paths may not leave the model's folder.
final class ONNXTensorDecoder {
    /// Folder the model was read from; external data is resolved against it.
    let baseDirectory: String
    /// Keeps the decoded protobuf message alive while tensors point into its `raw_data`.
    let messageOwner: ByteStorage?
    private var mappedFiles: [String: ByteStorage] = [:]

    /// Refuse tensors above this size before allocating or mapping anything (1 TiB).
    static let maxTensorBytes = 1 << 40

    init(baseDirectory: String, messageOwner: ByteStorage?) {
        self.baseDirectory = baseDirectory
        self.messageOwner = messageOwner
    }

    func decode(_ t: UnsafePointer<Onnx__TensorProto>, what: String) throws -> TensorData {
        let p = t.pointee
        let name = string(p.name)
        let label = name.isEmpty ? what : "\(what) '\(name)'"
        guard (p.has_data_type != 0), let dtype = DType(onnxCode: p.data_type) else {
            throw GLMCError("unsupported: \(label) has data type \(DType.onnxName(ofCode: (p.has_data_type != 0) ? p.data_type : 0))")
        }
        if p.segment != nil { throw GLMCError("unsupported: \(label) is segmented") }
        let dims = (0 ..< p.n_dims).map { Int(p.dims[$0]) }
        guard dims.allSatisfy({ $0 >= 0 }) else { throw GLMCError("\(label) has a negative dimension in \(dims)") }
        guard let count = checkedElementCount(dims),
              count.multipliedReportingOverflow(by: max(dtype.byteSize, 1)).overflow == false,
              count * max(dtype.byteSize, 1) <= Self.maxTensorBytes else {
            throw GLMCError("\(label) declares an absurd size: dims \(dims) of \(dtype)")
        }
        let type = TensorType(dtype, static: dims)
        let byteCount = count * dtype.byteSize

        if (p.has_data_location != 0) && p.data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL {
            guard dtype != .string else { throw GLMCError("\(label): string tensors cannot be stored as external data") }
            return try external(p, type: type, byteCount: byteCount, label: label)
        }
        if dtype == .string {
            guard p.n_string_data == count else {
                throw GLMCError("\(label) has \(p.n_string_data) strings, its dims \(dims) need \(count)")
            }
            let strings = (0 ..< p.n_string_data).map { i -> String in
                let b = p.string_data[i]
                return String(decoding: UnsafeRawBufferPointer(start: b.data, count: b.len), as: UTF8.self)
            }
            return TensorData(type: type, contents: .strings(strings))
        }
        if (p.has_raw_data != 0) {
            guard p.raw_data.len == byteCount else {
                throw GLMCError("\(label) has \(p.raw_data.len) bytes of data, its dims \(dims) of \(dtype) need \(byteCount)")
            }
            if let owner = messageOwner, let data = p.raw_data.data {
                // Point into the decoded message instead of copying; the closure keeps it alive.
                let bytes = ByteStorage.wrapping(base: UnsafeRawPointer(data), count: byteCount) { _, _ in withExtendedLifetime(owner) {} }
                return TensorData(type: type, contents: .bytes(bytes, offset: 0, byteCount: byteCount))
            }
            return TensorData(type: type, copying: UnsafeRawBufferPointer(start: p.raw_data.data, count: byteCount))
        }
        return try typedFields(p, type: type, count: count, label: label)
    }

    /// Data stored in the repeated fields that match the dtype (ONNX packs narrow types into int32_data).
    private func typedFields(_ p: Onnx__TensorProto, type: TensorType, count: Int, label: String) throws -> TensorData {
        func check(_ n: Int, _ field: String) throws {
            guard n == count else {
                throw GLMCError("\(label) has \(n) values in \(field), its dims \(type.shape) need \(count)")
            }
        }
        func narrow<T: FixedWidthInteger>(_: T.Type) throws -> TensorData {
            try check(p.n_int32_data, "int32_data")
            let values = (0 ..< count).map { T(truncatingIfNeeded: p.int32_data[$0]) }
            return TensorData(type: type, elements: values)
        }
        switch type.dtype {
        case .f32:
            try check(p.n_float_data, "float_data")
            return TensorData(type: type, copying: UnsafeRawBufferPointer(start: p.float_data, count: count * 4))
        case .f64:
            try check(p.n_double_data, "double_data")
            return TensorData(type: type, copying: UnsafeRawBufferPointer(start: p.double_data, count: count * 8))
        case .i64:
            try check(p.n_int64_data, "int64_data")
            return TensorData(type: type, copying: UnsafeRawBufferPointer(start: p.int64_data, count: count * 8))
        case .i32:
            try check(p.n_int32_data, "int32_data")
            return TensorData(type: type, copying: UnsafeRawBufferPointer(start: p.int32_data, count: count * 4))
        case .u64:
            try check(p.n_uint64_data, "uint64_data")
            return TensorData(type: type, copying: UnsafeRawBufferPointer(start: p.uint64_data, count: count * 8))
        case .u32:
            try check(p.n_uint64_data, "uint64_data")
            return TensorData(type: type, elements: (0 ..< count).map { UInt32(truncatingIfNeeded: p.uint64_data[$0]) })
        case .i16: return try narrow(Int16.self)
        case .i8: return try narrow(Int8.self)
        case .u16, .f16, .bf16: return try narrow(UInt16.self)
        case .u8, .bool: return try narrow(UInt8.self)
        case .string: throw GLMCError("\(label): internal error, strings handled above")
        }
    }

    /// Maps an external data file (once per file) and checks the tensor's range lies inside it.
    private func external(_ p: Onnx__TensorProto, type: TensorType, byteCount: Int, label: String) throws -> TensorData {
        var location = "", offset = 0, length: Int?
        for i in 0 ..< p.n_external_data {
            guard let entry = p.external_data[i]?.pointee else { continue }
            let value = string(entry.value)
            switch string(entry.key) {
            case "location": location = value
            case "offset":
                guard let v = Int(value), v >= 0 else { throw GLMCError("\(label) has an invalid external data offset '\(value)'") }
                offset = v
            case "length":
                guard let v = Int(value), v >= 0 else { throw GLMCError("\(label) has an invalid external data length '\(value)'") }
                length = v
            default: break
            }
        }
        let path = try resolveExternalPath(location, label: label)
        let file: ByteStorage
        if let cached = mappedFiles[path] {
            file = cached
        } else {
            if let why = notRegularFileReason(path) {
                throw GLMCError("\(label): external data file '\(location)' \(why)")
            }
            file = try ByteStorage.mapping(path: path)
            mappedFiles[path] = file
        }
        let size = length ?? byteCount
        guard size == byteCount else {
            throw GLMCError("\(label) has external data length \(size), its type \(type) needs \(byteCount) bytes")
        }
        guard offset <= file.count, byteCount <= file.count - offset else {
            throw GLMCError("\(label): external data range \(offset)..<\(offset + byteCount) lies outside '\(location)' (\(file.count) bytes)")
        }
        return TensorData(type: type, contents: .bytes(file, offset: offset, byteCount: byteCount),
                          origin: .init(path: path, offset: offset, length: byteCount))
    }

    /// External data must stay inside the model's folder: no absolute paths, no `..`, and no symlink
    /// that leads out of it.
    private func resolveExternalPath(_ location: String, label: String) throws -> String {
        guard !location.isEmpty else { throw GLMCError("\(label) has external data without a location") }
        let components = location.split(separator: "/", omittingEmptySubsequences: false)
        guard !location.hasPrefix("/"), !location.contains("\\"), !components.contains("..") else {
            throw GLMCError("\(label): external data location '\(location)' escapes the model's folder")
        }
        guard let base = realPath(baseDirectory) else {
            throw GLMCError("cannot resolve the model's folder '\(baseDirectory)'")
        }
        let joined = base + "/" + location
        guard let resolved = realPath(joined) else {
            throw GLMCError("\(label): external data file '\(location)' not found next to the model")
        }
        guard resolved.hasPrefix(base + "/") else {
            throw GLMCError("\(label): external data location '\(location)' escapes the model's folder (resolves to '\(resolved)')")
        }
        return resolved
    }
}

/// Why `path` is not a regular file (or a symlink to one), or nil when it is. Opening a FIFO would
/// block forever, and a device or a directory is never model data.
func notRegularFileReason(_ path: String) -> String? {
    var st = stat()
    guard stat(path, &st) == 0 else { return "cannot be read (\(String(cString: strerror(errno))))" }
    switch st.st_mode & S_IFMT {
    case S_IFREG: return nil
    case S_IFDIR: return "is a directory, not a regular file"
    case S_IFIFO: return "is a FIFO, not a regular file"
    case S_IFCHR, S_IFBLK: return "is a device, not a regular file"
    case S_IFSOCK: return "is a socket, not a regular file"
    default: return "is not a regular file"
    }
}

func realPath(_ path: String) -> String? {
    guard let resolved = realpath(path, nil) else { return nil }
    defer { free(resolved) }
    return String(cString: resolved)
}

/// A C string from the decoded message ("" for NULL).
func string(_ p: UnsafeMutablePointer<CChar>?) -> String {
    guard let p else { return "" }
    return String(cString: p)
}
