import GLMCIR

/// A value read from a TorchScript archive's pickle (`data.pkl`, `constants.pkl`).
///
/// Nothing is ever executed: the few callables torch archives name (`_rebuild_tensor_v2`, the
/// storage types, `OrderedDict`, TorchScript module classes) are recognized by name and turned into
/// plain values; any other global is refused.
public indirect enum PickleValue: Sendable {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case list([PickleValue])
    case tuple([PickleValue])
    /// Dictionaries keep their insertion order (module attributes are ordered).
    case dict([(key: PickleValue, value: PickleValue)])
    /// A `torch.*Storage` persistent id: the record `data/<key>` (or `constants/<key>`) holds its bytes.
    case storage(key: String, dtype: DType, elementCount: Int)
    /// `_rebuild_tensor_v2(storage, offset, sizes, strides, ...)`: a view of a storage.
    case tensor(PickledTensor)
    /// An allow-listed global that has not been called yet.
    case global(String)
    /// A TorchScript module object (`__torch__.*` class) and its attributes, in order. `identity`
    /// tells objects apart, so that BUILD reaches every memo entry of the object it fills.
    case object(className: String, attributes: [(name: String, value: PickleValue)], identity: Int)

    public var asString: String? { if case .string(let s) = self { return s } else { return nil } }
    public var asInt: Int? {
        switch self {
        case .int(let v): return v
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }
    public var items: [PickleValue]? {
        switch self {
        case .list(let v), .tuple(let v): return v
        default: return nil
        }
    }
}

/// A tensor in a pickle: which storage, and the view into it.
public struct PickledTensor: Sendable {
    public var storageKey: String
    public var dtype: DType
    public var storageElementCount: Int
    public var offset: Int
    public var sizes: [Int]
    public var strides: [Int]
}

/// Reads the protocol-2 pickles `torch.jit.save` writes, refusing anything else.
public struct PickleReader {
    /// Globals a tensor archive may name. Module classes (`__torch__.…`) are allowed separately:
    /// they only label attribute dictionaries.
    static let storageTypes: [String: DType] = [
        "torch.FloatStorage": .f32, "torch.DoubleStorage": .f64, "torch.HalfStorage": .f16,
        "torch.BFloat16Storage": .bf16, "torch.LongStorage": .i64, "torch.IntStorage": .i32,
        "torch.ShortStorage": .i16, "torch.CharStorage": .i8, "torch.ByteStorage": .u8, "torch.BoolStorage": .bool,
    ]
    static let callables: Set<String> = [
        "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter", "collections.OrderedDict",
        "torch.jit._pickle.restore_type_tag", "torch.jit._pickle.build_intlist", "torch.jit._pickle.build_doublelist",
        "torch.jit._pickle.build_boollist", "torch.jit._pickle.build_tensorlist",
    ]

    let bytes: [UInt8]
    /// The archive member being read, for error messages.
    let member: String
    var position = 0
    var stack: [PickleValue] = []
    /// Nesting depth of each stack value: values nest at most `maxDepth` deep, so neither this reader
    /// nor anything walking its result can run out of stack on a hostile pickle.
    var depths: [Int] = []
    /// The deepest value popped by the opcode being run; a container it pushes is one deeper.
    var poppedDepth = 0
    var marks: [Int] = []
    var memo: [Int: PickleValue] = [:]
    var memoDepths: [Int: Int] = [:]
    static let maxDepth = 1000
    var objectCount = 0

    public init(bytes: [UInt8], member: String) {
        self.bytes = bytes
        self.member = member
    }

    /// Reads one pickle and returns the value `STOP` leaves on the stack.
    public static func read(_ bytes: [UInt8], member: String) throws -> PickleValue {
        var reader = PickleReader(bytes: bytes, member: member)
        return try reader.run()
    }

    func error(_ message: String, at offset: Int? = nil) -> GLMCError {
        GLMCError("\(member): \(message) (byte \(offset ?? position))")
    }

    mutating func byte() throws -> UInt8 {
        guard position < bytes.count else { throw error("the pickle ends before STOP") }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, n <= bytes.count - position else { throw error("the pickle ends inside a \(n)-byte field") }
        defer { position += n }
        return bytes[position ..< position + n]
    }

    mutating func littleEndian(_ n: Int) throws -> UInt64 {
        var v: UInt64 = 0
        for (i, b) in try take(n).enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
        return v
    }

    mutating func push(_ v: PickleValue, depth: Int? = nil) throws {
        let d = depth ?? poppedDepth + 1
        guard d <= Self.maxDepth else { throw error("values nest more than \(Self.maxDepth) deep") }
        stack.append(v)
        depths.append(d)
    }

    mutating func pop() throws -> PickleValue {
        if let m = marks.last, stack.count <= m { throw error("stack underflow past a MARK") }
        guard let v = stack.popLast(), let d = depths.popLast() else { throw error("stack underflow") }
        poppedDepth = max(poppedDepth, d)
        return v
    }

    /// The values pushed since the last MARK, which is removed.
    mutating func popMark() throws -> [PickleValue] {
        guard let m = marks.popLast(), m <= stack.count else { throw error("no MARK to pop to") }
        defer { stack.removeSubrange(m...); depths.removeSubrange(m...) }
        poppedDepth = max(poppedDepth, depths[m...].max() ?? 0)
        return Array(stack[m...])
    }

    mutating func run() throws -> PickleValue {
        while true {
            let start = position
            poppedDepth = 0
            let op = try byte()
            switch op {
            case 0x80: // PROTO
                let version = try byte()
                guard version <= 2 else { throw error("pickle protocol \(version) is not supported (torch archives use protocol 2)", at: start) }
            case 0x2e: // STOP
                guard stack.count == 1 else { throw error("STOP with \(stack.count) values on the stack", at: start) }
                return stack[0]
            case 0x28: marks.append(stack.count) // MARK
            case 0x4e: try push(.none) // NONE
            case 0x88: try push(.bool(true)) // NEWTRUE
            case 0x89: try push(.bool(false)) // NEWFALSE
            case 0x4b: try push(.int(Int(try byte()))) // BININT1
            case 0x4d: try push(.int(Int(try littleEndian(2)))) // BININT2
            case 0x4a: try push(.int(Int(Int32(truncatingIfNeeded: try littleEndian(4))))) // BININT
            case 0x8a: // LONG1
                let n = Int(try byte())
                guard n <= 8 else { throw error("LONG1 of \(n) bytes does not fit 64 bits", at: start) }
                let raw = try littleEndian(n)
                let shift = UInt64(64 - 8 * n)
                try push(.int(n == 0 ? 0 : Int(Int64(bitPattern: raw << shift) >> Int64(shift))))
            case 0x47: // BINFLOAT (big-endian double)
                var v: UInt64 = 0
                for b in try take(8) { v = v << 8 | UInt64(b) }
                try push(.float(Double(bitPattern: v)))
            case 0x58: // BINUNICODE
                let n = Int(try littleEndian(4))
                try push(.string(String(decoding: try take(n), as: UTF8.self)))
            case 0x8c: // SHORT_BINUNICODE
                let n = Int(try byte())
                try push(.string(String(decoding: try take(n), as: UTF8.self)))
            case 0x55: // SHORT_BINSTRING
                let n = Int(try byte())
                try push(.string(String(decoding: try take(n), as: UTF8.self)))
            case 0x54: // BINSTRING
                let n = Int(try littleEndian(4))
                try push(.string(String(decoding: try take(n), as: UTF8.self)))
            case 0x42: // BINBYTES
                let n = Int(try littleEndian(4))
                try push(.bytes(Array(try take(n))))
            case 0x43: // SHORT_BINBYTES
                let n = Int(try byte())
                try push(.bytes(Array(try take(n))))
            case 0x29: try push(.tuple([])) // EMPTY_TUPLE
            case 0x5d: try push(.list([])) // EMPTY_LIST
            case 0x7d: try push(.dict([])) // EMPTY_DICT
            case 0x74: try push(.tuple(try popMark())) // TUPLE
            case 0x85: try push(.tuple([try pop()])) // TUPLE1
            case 0x86: // TUPLE2
                let b = try pop(), a = try pop()
                try push(.tuple([a, b]))
            case 0x87: // TUPLE3
                let c = try pop(), b = try pop(), a = try pop()
                try push(.tuple([a, b, c]))
            case 0x6c: try push(.list(try popMark())) // LIST
            case 0x61: // APPEND
                let v = try pop()
                try appendToTop([v], at: start)
            case 0x65: // APPENDS
                let vs = try popMark()
                try appendToTop(vs, at: start)
            case 0x73: // SETITEM
                let v = try pop(), k = try pop()
                try setItemsOnTop([k, v], at: start)
            case 0x75: // SETITEMS
                let kvs = try popMark()
                try setItemsOnTop(kvs, at: start)
            case 0x64: // DICT
                let kvs = try popMark()
                try push(.dict([]))
                try setItemsOnTop(kvs, at: start)
            case 0x71, 0x72: // BINPUT, LONG_BINPUT
                let key = op == 0x71 ? Int(try byte()) : Int(try littleEndian(4))
                memo[key] = try peek(at: start)
                memoDepths[key] = depths.last
            case 0x68, 0x6a: // BINGET, LONG_BINGET
                let key = op == 0x68 ? Int(try byte()) : Int(try littleEndian(4))
                guard let v = memo[key] else { throw error("memo entry \(key) is read before it is written", at: start) }
                try push(v, depth: memoDepths[key])
            case 0x63: // GLOBAL "module\nname\n"
                let module = try line(), name = try line()
                try push(try allowedGlobal(module + "." + name, at: start))
            case 0x51: // BINPERSID
                let pid = try pop()
                try push(try persistentStorage(pid, at: start))
            case 0x52: // REDUCE
                let args = try pop(), callable = try pop()
                try push(try call(callable, args.items ?? [args], at: start))
            case 0x81: // NEWOBJ
                let args = try pop(), cls = try pop()
                try push(try call(cls, args.items ?? [args], at: start))
            case 0x62: // BUILD
                let state = try pop(), object = try pop()
                let built = try build(object, state: state, at: start)
                if case .object(_, _, let identity) = built {
                    for (k, v) in memo { if case .object(_, _, identity) = v { memo[k] = built } }
                }
                try push(built)
            case 0x30: _ = try pop() // POP
            case 0x32: try push(try peek(at: start), depth: depths.last) // DUP
            default:
                throw error(String(format: "opcode 0x%02x is not allowed in a tensor archive pickle", op), at: start)
            }
        }
    }

    mutating func peek(at offset: Int) throws -> PickleValue {
        guard let v = stack.last else { throw error("stack underflow", at: offset) }
        return v
    }

    mutating func line() throws -> String {
        guard let end = bytes[position...].firstIndex(of: 0x0a) else { throw error("GLOBAL without a newline") }
        defer { position = end + 1 }
        return String(decoding: bytes[position ..< end], as: UTF8.self)
    }

    mutating func appendToTop(_ values: [PickleValue], at offset: Int) throws {
        guard case .list(var list) = try pop() else { throw error("APPEND to something that is not a list", at: offset) }
        list += values
        try push(.list(list))
    }

    mutating func setItemsOnTop(_ kvs: [PickleValue], at offset: Int) throws {
        guard kvs.count % 2 == 0 else { throw error("SETITEMS with an odd number of values", at: offset) }
        guard case .dict(var dict) = stack.popLast() else { throw error("SETITEM on something that is not a dict", at: offset) }
        for i in stride(from: 0, to: kvs.count, by: 2) { dict.append((kvs[i], kvs[i + 1])) }
        try push(.dict(dict))
    }

    func allowedGlobal(_ name: String, at offset: Int) throws -> PickleValue {
        if Self.storageTypes[name] != nil || Self.callables.contains(name) || name == "torch.device" { return .global(name) }
        // TorchScript module classes: BUILD fills them with attributes; they are never called.
        if name.hasPrefix("__torch__.") { return .global(name) }
        throw error("global '\(name)' is not allowed (only tensor-archive globals such as torch._utils._rebuild_tensor_v2 are read)", at: offset)
    }

    /// `('storage', torch.FloatStorage, '<key>', 'cpu', <numel>)`.
    func persistentStorage(_ pid: PickleValue, at offset: Int) throws -> PickleValue {
        guard let items = pid.items, items.count >= 5, items[0].asString == "storage",
              case .global(let typeName) = items[1], let dtype = Self.storageTypes[typeName],
              let key = items[2].asString, let count = items[4].asInt, count >= 0 else {
            throw error("persistent id is not a storage record ('storage', torch.<T>Storage, key, location, size)", at: offset)
        }
        guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
            throw error("storage key '\(key)' is not a record name", at: offset)
        }
        return .storage(key: key, dtype: dtype, elementCount: count)
    }

    mutating func call(_ callable: PickleValue, _ args: [PickleValue], at offset: Int) throws -> PickleValue {
        guard case .global(let name) = callable else { throw error("REDUCE calls something that is not an allowed global", at: offset) }
        switch name {
        case "torch._utils._rebuild_tensor_v2":
            guard args.count >= 4, case .storage(let key, let dtype, let count) = args[0], let tensorOffset = args[1].asInt,
                  let sizes = args[2].items?.compactMap(\.asInt), let strides = args[3].items?.compactMap(\.asInt),
                  sizes.count == args[2].items?.count, strides.count == sizes.count else {
                throw error("malformed _rebuild_tensor_v2 arguments", at: offset)
            }
            return .tensor(PickledTensor(storageKey: key, dtype: dtype, storageElementCount: count,
                                         offset: tensorOffset, sizes: sizes, strides: strides))
        case "torch._utils._rebuild_parameter":
            guard let first = args.first, case .tensor = first else { throw error("malformed _rebuild_parameter arguments", at: offset) }
            return first
        case "collections.OrderedDict":
            return .dict([])
        case "torch.jit._pickle.restore_type_tag":
            guard let first = args.first else { throw error("restore_type_tag without a value", at: offset) }
            return first
        case "torch.jit._pickle.build_intlist", "torch.jit._pickle.build_doublelist",
             "torch.jit._pickle.build_boollist", "torch.jit._pickle.build_tensorlist":
            guard let first = args.first, case .list = first else { throw error("\(name) without a list", at: offset) }
            return first
        case "torch.device":
            return .string(args.first?.asString ?? "cpu")
        default:
            if name.hasPrefix("__torch__.") {
                objectCount += 1
                return .object(className: name, attributes: [], identity: objectCount)
            }
            throw error("global '\(name)' cannot be called here", at: offset)
        }
    }

    func build(_ object: PickleValue, state: PickleValue, at offset: Int) throws -> PickleValue {
        switch object {
        case .object(let className, var attributes, let identity):
            guard case .dict(let entries) = state else { throw error("BUILD of \(className) with a state that is not a dict", at: offset) }
            for (k, v) in entries {
                guard let name = k.asString else { throw error("BUILD of \(className) with a non-string attribute name", at: offset) }
                attributes.append((name, v))
            }
            return .object(className: className, attributes: attributes, identity: identity)
        case .tensor:
            return object // _rebuild_parameter's state (requires_grad and hooks) does not matter for inference
        default:
            throw error("BUILD on a value that is not a module object", at: offset)
        }
    }
}
