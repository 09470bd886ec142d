import Foundation
import GLMCPlan

/// The checks every executor makes on the tensors handed to `run` before it copies them into its
/// arena: the same names as the plan's inputs, the dtypes and shapes it was compiled for, the byte
/// counts of their buffers, and the values bound at convert time. Shared so that the CPU, OpenCL
/// and CUDA runtimes refuse exactly the same inputs with exactly the same messages.
public enum PlanInputs {
    /// One validated input: the tensor the caller gave and the arena buffer it goes to.
    public struct Binding {
        public var tensor: HostTensor
        public var buffer: PlanBuffer
    }

    /// Checks `given` (by input name) against `manifest`'s inputs and returns them in the
    /// manifest's order with their buffers. Throws a one-line `RuntimeError` naming the input.
    public static func validate(_ given: [String: HostTensor], for manifest: PlanManifest) throws -> [Binding] {
        let buffers = manifest.buffersByID
        for name in given.keys.sorted() where !manifest.inputs.contains(where: { $0.name == name }) {
            throw RuntimeError("the plan has no input named '\(name)' (inputs: \(manifest.inputs.map { "'\($0.name)'" }.joined(separator: ", ")))")
        }
        return try manifest.inputs.map { input in
            guard let t = given[input.name] else {
                throw RuntimeError("missing input '\(input.name)' (\(input.dtype)\(input.shape))")
            }
            guard t.dtype == input.dtype, t.shape == input.shape else {
                throw RuntimeError("input '\(input.name)' is \(t.dtype)\(t.shape), but the plan was compiled for \(input.dtype)\(input.shape)")
            }
            guard let b = buffers[input.buffer] else {
                throw RuntimeError("input '\(input.name)' names unknown buffer \(input.buffer)")
            }
            if t.dtype == "string" {
                // One pointer per element in the arena (see `StringSlots`).
                let count = t.shape.reduce(1, *)
                guard let strings = t.strings, strings.count == count else {
                    throw RuntimeError("input '\(input.name)' has \(t.strings?.count ?? 0) strings, expected \(count)")
                }
                guard b.bytes == count * StringSlots.pointerBytes else {
                    throw RuntimeError("input '\(input.name)' is a string tensor of \(count) elements, but its buffer has \(b.bytes) bytes")
                }
            } else {
                guard t.bytes.count == b.bytes else {
                    throw RuntimeError("input '\(input.name)' has \(t.bytes.count) bytes, expected \(b.bytes)")
                }
            }
            if let bound = input.value {
                guard let got = boundValue(t.bytes, dtype: t.dtype) else {
                    throw RuntimeError("input '\(input.name)' has a bound value, but its dtype \(t.dtype) cannot be compared with it")
                }
                guard equal(got, bound) else { throw RuntimeError("input '\(input.name)' is \(got), but the plan was built for the value \(bound) (it decides shapes and was fixed at convert time; convert again with --input-value \(input.name)=FILE.npy)") }
            }
            return Binding(tensor: t, buffer: b)
        }
    }

    /// The elements of a little-endian integer, bool or floating-point tensor, as a manifest
    /// records bound values (nil for other dtypes).
    static func boundValue(_ bytes: Data, dtype: String) -> PlanBoundValue? {
        func load<T>(_: T.Type, _ convert: (T) -> Double) -> [Double] {
            let size = MemoryLayout<T>.size
            return bytes.withUnsafeBytes { raw in (0 ..< raw.count / size).map { convert(raw.loadUnaligned(fromByteOffset: $0 * size, as: T.self)) } }
        }
        func integers<T: FixedWidthInteger>(_: T.Type) -> PlanBoundValue {
            let size = MemoryLayout<T>.size
            return .integers(bytes.withUnsafeBytes { raw in
                (0 ..< raw.count / size).map { Int64(truncatingIfNeeded: T(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * size, as: T.self))) }
            })
        }
        switch dtype {
        case "i64": return integers(Int64.self)
        case "i32": return integers(Int32.self)
        case "i16": return integers(Int16.self)
        case "i8": return integers(Int8.self)
        case "u64": return integers(UInt64.self)
        case "u32": return integers(UInt32.self)
        case "u16": return integers(UInt16.self)
        case "u8", "bool": return integers(UInt8.self)
        case "f16", "bf16": return integers(UInt16.self)  // recorded as bit patterns
        case "f32": return .reals(load(UInt32.self) { Double(Float(bitPattern: UInt32(littleEndian: $0))) })
        case "f64": return .reals(load(UInt64.self) { Double(bitPattern: UInt64(littleEndian: $0)) })
        default: return nil
        }
    }

    /// Whether two bound values hold the same numbers (integers compare exactly).
    static func equal(_ a: PlanBoundValue, _ b: PlanBoundValue) -> Bool {
        if case .integers(let x) = a, case .integers(let y) = b { return x == y }
        return a.reals == b.reals
    }
}

extension PlanManifest {
    /// The buffers by id (the first of duplicates; `PlanFile.validate` refuses those anyway).
    var buffersByID: [Int: PlanBuffer] {
        Dictionary(buffers.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
    }
}
