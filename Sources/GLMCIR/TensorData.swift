#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Immutable bytes that tensor data points into: an owned heap buffer or a read-only memory map of a
/// file. Weights are never copied out of a mapped file; many `TensorData` may share one storage.
public final class ByteStorage: @unchecked Sendable {
    public let base: UnsafeRawPointer?
    public let count: Int
    private let release: @Sendable (UnsafeRawPointer?, Int) -> Void

    private init(base: UnsafeRawPointer?, count: Int, release: @escaping @Sendable (UnsafeRawPointer?, Int) -> Void) {
        self.base = base; self.count = count; self.release = release
    }
    deinit { release(base, count) }

    /// Wraps memory owned by someone else; `release` runs when the last reference goes away.
    public static func wrapping(base: UnsafeRawPointer?, count: Int,
                                release: @escaping @Sendable (UnsafeRawPointer?, Int) -> Void) -> ByteStorage {
        ByteStorage(base: base, count: count, release: release)
    }

    /// Copies `bytes` into a new 64-byte aligned heap buffer.
    public static func copying(_ bytes: UnsafeRawBufferPointer) -> ByteStorage {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
        if let src = bytes.baseAddress, bytes.count > 0 { buffer.copyMemory(from: src, byteCount: bytes.count) }
        return ByteStorage(base: UnsafeRawPointer(buffer), count: bytes.count) { p, _ in
            UnsafeMutableRawPointer(mutating: p)?.deallocate()
        }
    }

    public static func copying(_ bytes: [UInt8]) -> ByteStorage {
        bytes.withUnsafeBytes { copying($0) }
    }

    /// Allocates `count` zeroed bytes and lets `fill` write them.
    public static func filling(count: Int, _ fill: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows -> ByteStorage {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 64)
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: max(count, 1))
        let storage = ByteStorage(base: UnsafeRawPointer(buffer), count: count) { p, _ in
            UnsafeMutableRawPointer(mutating: p)?.deallocate()
        }
        try fill(UnsafeMutableRawBufferPointer(start: buffer, count: count))
        return storage
    }

    /// Maps a whole file read-only. Throws a `GLMCError` naming the path when it cannot.
    public static func mapping(path: String) throws -> ByteStorage {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw GLMCError("cannot open '\(path)': \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw GLMCError("cannot stat '\(path)'") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw GLMCError("'\(path)' is not a regular file") }
        let size = Int(st.st_size)
        if size == 0 { return copying([UInt8]()) }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw GLMCError("cannot map '\(path)': \(String(cString: strerror(errno)))")
        }
        return ByteStorage(base: UnsafeRawPointer(p), count: size) { p, n in
            munmap(UnsafeMutableRawPointer(mutating: p), n)
        }
    }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
}

/// The contents of a constant tensor. Numeric data is little-endian bytes inside a shared
/// `ByteStorage` (owned or memory-mapped); strings are held as Swift strings.
public struct TensorData: Sendable {
    public enum Contents: Sendable {
        /// `byteCount` bytes at `offset` inside `storage`.
        case bytes(ByteStorage, offset: Int, byteCount: Int)
        case strings([String])
        /// The bytes were left out of IR text (`dense_resource<__elided__>`): only the type is known.
        case elided
    }

    /// Where the bytes live on disk when they come from an external-data file; the printer writes
    /// `external<"path", offset, length>` for such tensors instead of their bytes.
    public struct ExternalOrigin: Sendable, Hashable {
        public var path: String
        public var offset: Int
        public var length: Int
        public init(path: String, offset: Int, length: Int) { self.path = path; self.offset = offset; self.length = length }
    }

    public var type: TensorType
    public var contents: Contents
    public var origin: ExternalOrigin?

    public init(type: TensorType, contents: Contents, origin: ExternalOrigin? = nil) {
        self.type = type; self.contents = contents; self.origin = origin
    }

    /// A tensor over a copy of `bytes`.
    public init(type: TensorType, copying bytes: UnsafeRawBufferPointer) {
        self.init(type: type, contents: .bytes(.copying(bytes), offset: 0, byteCount: bytes.count))
    }

    public init<T>(type: TensorType, elements: [T]) {
        self = elements.withUnsafeBytes { TensorData(type: type, copying: $0) }
    }

    public var dtype: DType { type.dtype }
    public var sizes: [Int] { type.shape.staticSizes ?? [] }
    public var elementCount: Int { checkedElementCount(sizes) ?? 0 }
    public var isElided: Bool { if case .elided = contents { return true } else { return false } }

    /// Calls `body` with the raw little-endian bytes (empty for strings and elided data). The pointer
    /// is valid only inside `body`.
    public func withRawBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        guard case .bytes(let storage, let offset, let count) = contents else {
            return try body(UnsafeRawBufferPointer(start: nil, count: 0))
        }
        return try withExtendedLifetime(storage) {
            try body(UnsafeRawBufferPointer(rebasing: storage.bytes[offset ..< offset + count]))
        }
    }

    /// A copy of the raw bytes.
    public var bytes: [UInt8] { withRawBytes { [UInt8]($0) } }

    /// Elements as `T` (which must match the dtype's width). Copies; use `withRawBytes` in hot paths.
    public func elements<T>(as: T.Type = T.self) -> [T] {
        withRawBytes { raw in
            let n = raw.count / MemoryLayout<T>.stride
            return [T](unsafeUninitializedCapacity: n) { buf, initialized in
                if n > 0 { UnsafeMutableRawBufferPointer(buf).copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[0 ..< n * MemoryLayout<T>.stride])) }
                initialized = n
            }
        }
    }

    public var strings: [String] { if case .strings(let s) = contents { return s } else { return [] } }

    /// Integer elements widened to Int, for shape-like tensors of any integer dtype.
    public func integers() -> [Int]? {
        switch dtype {
        case .i64: return elements(as: Int64.self).map { Int($0) }
        case .i32: return elements(as: Int32.self).map { Int($0) }
        case .i16: return elements(as: Int16.self).map { Int($0) }
        case .i8: return elements(as: Int8.self).map { Int($0) }
        case .u64: return elements(as: UInt64.self).map { Int(truncatingIfNeeded: $0) }
        case .u32: return elements(as: UInt32.self).map { Int($0) }
        case .u16: return elements(as: UInt16.self).map { Int($0) }
        case .u8: return elements(as: UInt8.self).map { Int($0) }
        case .bool: return elements(as: UInt8.self).map { Int($0) }
        default: return nil
        }
    }
}
