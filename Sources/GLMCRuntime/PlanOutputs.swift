import Foundation
import GLMCPlan

/// Outputs whose extent along some dims is only known at run time (`dynamic_dims`: the results of
/// NonZero, Unique, NonMaxSuppression, StringSplit, StringNormalizer with stop words). Their buffer
/// is sized for the manifest's upper-bound shape; the kernel writes each actual extent as an i64
/// into a slot of the arena, and the result densely in its actual shape at the start of the buffer.
/// A heap-resident output (a dim without a bound, strings only) is the same but for where the
/// result lies: its buffer holds a pointer to it. Shared so that every executor trims alike.
public enum PlanOutputs {
    /// The actual shape of output `o`: its manifest shape with each dynamic dim replaced by the
    /// extent the kernel wrote. `extent(offset)` reads the i64 at that arena byte offset (a GPU
    /// executor copies it back). An extent outside its bound, or one that makes the element count
    /// overflow, is an error.
    public static func shape(of o: PlanTensor, extent: (Int) throws -> Int64) throws -> [Int] {
        var shape = o.shape
        for (dim, offset) in (o.dynamicDims ?? [:]).sorted(by: { $0.key < $1.key }) {
            let n = try extent(offset), bound = o.shape[dim]
            guard n >= 0, bound == PlanTensor.unbounded || n <= Int64(bound) else {
                let range = bound == PlanTensor.unbounded ? "0 or more" : "0...\(bound)"
                throw RuntimeError("output '\(o.name)': the kernel reported extent \(n) for dim \(dim), outside its bound \(range)")
            }
            shape[dim] = Int(n)
        }
        var count = 1
        for d in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else { throw RuntimeError("output '\(o.name)': its actual shape \(shape) has too many elements") }
            count = product
        }
        return shape
    }

    /// The output `o` read back as `bytes` (its whole buffer), trimmed to its actual shape.
    public static func tensor(_ o: PlanTensor, bytes: Data, extent: (Int) throws -> Int64) throws -> HostTensor {
        guard let dynamic = o.dynamicDims, !dynamic.isEmpty else {
            return HostTensor(name: o.name, dtype: o.dtype, shape: o.shape, bytes: bytes)
        }
        let shape = try Self.shape(of: o, extent: extent)
        let count = shape.reduce(1, *), bound = o.shape.reduce(1, *)
        let used = bound == 0 ? 0 : bytes.count / bound * count
        return HostTensor(name: o.name, dtype: o.dtype, shape: shape, bytes: Data(bytes.prefix(used)))
    }

    /// The i64 at `offset` of a host arena.
    static func extent(in arena: UnsafeMutableRawPointer, at offset: Int) -> Int64 {
        Int64(littleEndian: arena.loadUnaligned(fromByteOffset: offset, as: Int64.self))
    }
}
