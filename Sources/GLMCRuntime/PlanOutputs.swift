import Foundation
import GLMCPlan

/// Outputs whose extent along some dims is only known at run time (`dynamic_dims`: the results of
/// NonZero, Unique, NonMaxSuppression). Their buffer is sized for the manifest's upper-bound shape;
/// the kernel writes each actual extent as an i64 into a slot of the arena, and the result densely
/// in its actual shape at the start of the buffer. Shared so that every executor trims alike.
public enum PlanOutputs {
    /// The output `o` read back as `bytes` (its whole buffer), trimmed to its actual shape.
    /// `extent(offset)` reads the i64 at that arena byte offset (a GPU executor copies it back).
    public static func tensor(_ o: PlanTensor, bytes: Data, extent: (Int) throws -> Int64) throws -> HostTensor {
        guard let dynamic = o.dynamicDims, !dynamic.isEmpty else {
            return HostTensor(name: o.name, dtype: o.dtype, shape: o.shape, bytes: bytes)
        }
        var shape = o.shape
        for (dim, offset) in dynamic.sorted(by: { $0.key < $1.key }) {
            let n = try extent(offset)
            guard n >= 0, n <= Int64(o.shape[dim]) else {
                throw RuntimeError("output '\(o.name)': the kernel reported extent \(n) for dim \(dim), outside its bound 0...\(o.shape[dim])")
            }
            shape[dim] = Int(n)
        }
        let count = shape.reduce(1, *), bound = o.shape.reduce(1, *)
        let used = bound == 0 ? 0 : bytes.count / bound * count
        return HostTensor(name: o.name, dtype: o.dtype, shape: shape, bytes: Data(bytes.prefix(used)))
    }

    /// The i64 at `offset` of a host arena.
    static func extent(in arena: UnsafeMutableRawPointer, at offset: Int) -> Int64 {
        Int64(littleEndian: arena.loadUnaligned(fromByteOffset: offset, as: Int64.self))
    }
}
