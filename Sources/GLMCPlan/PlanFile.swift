import Foundation

/// A whole plan: the manifest and its sections. This is what `PlanWriter` writes and `PlanReader`
/// returns. A plan read from disk keeps its sections in the memory-mapped file (no copies).
public struct PlanFile: Equatable, Sendable {
    public var manifest: PlanManifest
    /// Kernel source text by source name (section `source/<name>`); one entry per
    /// `manifest.kernelSources` element.
    public var sources: [String: String]
    /// Compiled code blobs by name (section `code/<name>`), e.g. "kernels.so" or "<kernel>.ptx".
    public var code: [String: Data]
    /// All weights (section `weights`); each `manifest.weights` entry names a 64-byte aligned slice.
    public var weights: Data
    /// Calibration table text (section `calibration`), if any.
    public var calibration: String?

    public init(manifest: PlanManifest, sources: [String: String] = [:], code: [String: Data] = [:],
                weights: Data = Data(), calibration: String? = nil) {
        self.manifest = manifest; self.sources = sources; self.code = code
        self.weights = weights; self.calibration = calibration
    }

    /// The bytes of the named weight (a slice of `weights`, zero-based), or nil if there is none.
    public func weightBytes(_ name: String) -> Data? {
        guard let w = manifest.weights.first(where: { $0.name == name }),
              w.offset >= 0, w.bytes >= 0, w.offset <= weights.count, w.bytes <= weights.count - w.offset
        else { return nil }
        let start = weights.startIndex + w.offset
        return weights[start..<start + w.bytes]
    }

    /// Checks that the manifest is self-consistent and agrees with the sections. `PlanWriter` calls
    /// this before writing and `PlanReader` after reading.
    public func validate() throws {
        let m = manifest
        guard m.formatVersion.major == PlanFormatVersion.current.major else {
            throw PlanError("manifest format version \(m.formatVersion) is not supported (this reader supports \(PlanFormatVersion.current.major).x)")
        }
        guard PlanManifest.targets.contains(m.target) else {
            throw PlanError("unknown target '\(m.target)' (expected cpu, opencl or cuda)")
        }
        guard m.arenaBytes >= 0 else { throw PlanError("arena_bytes is negative (\(m.arenaBytes))") }
        var bufferIDs = Set<Int>()
        for b in m.buffers {
            guard bufferIDs.insert(b.id).inserted else { throw PlanError("duplicate buffer id \(b.id)") }
            guard b.offset >= 0, b.bytes >= 0, b.offset <= m.arenaBytes, b.bytes <= m.arenaBytes - b.offset else {
                throw PlanError("buffer \(b.id) [offset \(b.offset), \(b.bytes) bytes] lies outside the \(m.arenaBytes)-byte arena")
            }
        }
        for (kind, tensors) in [("input", m.inputs), ("output", m.outputs)] {
            var names = Set<String>()
            for t in tensors {
                guard names.insert(t.name).inserted else { throw PlanError("duplicate \(kind) '\(t.name)'") }
                // -1: a dim without a static bound, which only a heap-resident output has (below).
                guard t.shape.allSatisfy({ $0 >= 0 || ($0 == PlanTensor.unbounded && kind == "output") }) else {
                    throw PlanError("\(kind) '\(t.name)' has a negative dimension in \(t.shape)")
                }
                guard bufferIDs.contains(t.buffer) else { throw PlanError("\(kind) '\(t.name)' names unknown buffer \(t.buffer)") }
                if t.isHeapResident {
                    // One pointer to the elements on the string heap (see "Heap-resident outputs").
                    guard t.dtype == "string", m.target == "cpu" else {
                        throw PlanError("output '\(t.name)' has an unbounded dim in \(t.shape), which only string outputs of cpu plans may have")
                    }
                    for (d, n) in t.shape.enumerated() where n == PlanTensor.unbounded && t.dynamicDims?[d] == nil {
                        throw PlanError("output '\(t.name)': unbounded dim \(d) has no extent in dynamic_dims")
                    }
                    guard m.buffers.first(where: { $0.id == t.buffer })?.bytes == 8 else {
                        throw PlanError("heap-resident output '\(t.name)' needs a buffer of 8 bytes (a pointer to its elements)")
                    }
                } else if t.dtype == "string" {
                    // A pointer per element (see "Strings" in Docs/PlanFormat.md).
                    guard m.target == "cpu" else { throw PlanError("\(kind) '\(t.name)' is a string tensor, which only cpu plans have") }
                    let bytes = (t.shape + [8]).reduce(Int?(1)) { p, d in p.flatMap { let r = $0.multipliedReportingOverflow(by: d); return r.overflow ? nil : r.partialValue } }
                    guard let bytes, m.buffers.first(where: { $0.id == t.buffer })?.bytes == bytes else {
                        throw PlanError("string \(kind) '\(t.name)' \(t.shape) needs a buffer of 8 bytes (a pointer) per element")
                    }
                }
                if let value = t.value {
                    guard kind == "input" else { throw PlanError("output '\(t.name)' has a bound value (only inputs may)") }
                    guard value.count == t.shape.reduce(1, *) else {
                        throw PlanError("input '\(t.name)' has a bound value of \(value.count) elements for shape \(t.shape)")
                    }
                }
                for (dim, offset) in t.dynamicDims ?? [:] {
                    guard kind == "output" else { throw PlanError("input '\(t.name)' has dynamic_dims (only outputs may)") }
                    guard dim >= 0, dim < t.shape.count else {
                        throw PlanError("output '\(t.name)' has a dynamic dim \(dim) outside its shape \(t.shape)")
                    }
                    guard offset >= 0, offset % 8 == 0, offset <= m.arenaBytes - 8 else {
                        throw PlanError("output '\(t.name)': the extent of dim \(dim) at arena offset \(offset) is not an aligned i64 inside the \(m.arenaBytes)-byte arena")
                    }
                }
            }
        }
        var weightNames = Set<String>()
        for w in m.weights {
            guard weightNames.insert(w.name).inserted else { throw PlanError("duplicate weight '\(w.name)'") }
            guard w.shape.allSatisfy({ $0 >= 0 }) else { throw PlanError("weight '\(w.name)' has a negative dimension in \(w.shape)") }
            guard w.offset >= 0, w.offset % PlanLayout.alignment == 0 else {
                throw PlanError("weight '\(w.name)' offset \(w.offset) is not a multiple of \(PlanLayout.alignment)")
            }
            guard w.bytes >= 0, w.offset <= weights.count, w.bytes <= weights.count - w.offset else {
                throw PlanError("weight '\(w.name)' [offset \(w.offset), \(w.bytes) bytes] lies outside the \(weights.count)-byte weights section")
            }
        }
        for (i, s) in m.steps.enumerated() {
            for a in s.arguments {
                switch a {
                case .buffer(let id):
                    guard bufferIDs.contains(id) else { throw PlanError("step \(i) (\(s.kernel)) names unknown buffer \(id)") }
                case .weight(let name):
                    guard weightNames.contains(name) else { throw PlanError("step \(i) (\(s.kernel)) names unknown weight '\(name)'") }
                case .stringHeap:
                    guard m.target == "cpu" else { throw PlanError("step \(i) (\(s.kernel)) takes the string heap, which only cpu plans have") }
                }
            }
        }
        var sourceNames = Set<String>()
        for k in m.kernelSources {
            guard sourceNames.insert(k.name).inserted else { throw PlanError("duplicate kernel source '\(k.name)'") }
            guard sources[k.name] != nil else { throw PlanError("kernel source '\(k.name)' has no section 'source/\(k.name)'") }
        }
        for name in sources.keys where !sourceNames.contains(name) {
            throw PlanError("section 'source/\(name)' is not listed in the manifest's kernel_sources")
        }
    }
}

/// Lays weights out at 64-byte aligned offsets and produces the manifest table and the blob.
public struct PlanWeightsBuilder: Sendable {
    public private(set) var table: [PlanWeight] = []
    public private(set) var blob = Data()
    public init() {}

    /// Appends a weight and returns its table entry.
    @discardableResult
    public mutating func append(name: String, dtype: String, shape: [Int], bytes: Data) -> PlanWeight {
        let offset = PlanLayout.align(blob.count)
        blob.append(Data(count: offset - blob.count))
        blob.append(bytes)
        let entry = PlanWeight(name: name, dtype: dtype, shape: shape, offset: offset, bytes: bytes.count)
        table.append(entry)
        return entry
    }
}
