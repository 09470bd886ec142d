import Foundation
import GLMCFrontends
import GLMCIR
import GLMCInterpreter
import GLMCOps

/// A runtime input of the model being calibrated.
public struct CalibrationInput: Sendable {
    public var name: String
    public var type: TensorType
    public init(name: String, type: TensorType) { self.name = name; self.type = type }
}

/// Where calibration samples come from: a folder with one sample per entry (`.npy`: the one input
/// of a single-input model; `.npz`: arrays keyed by input name; a sub-folder: one ONNX `TensorProto`
/// `.pb` file per input), or `random:N` seeded standard-normal samples. Samples are read one at a
/// time, when asked for, so a folder of any size streams.
public enum CalibrationSamples: Sendable {
    case folder(path: String, entries: [String])
    case random(count: Int)

    /// The seed of `random:N` (sample i uses a stream derived from it and i).
    public static let randomSeed: UInt64 = 0x6C6D_6331_6361_6C69

    /// "DIR" or "random:N".
    public static func open(_ spec: String) throws -> CalibrationSamples {
        if spec.hasPrefix("random:") {
            guard let n = Int(spec.dropFirst("random:".count)), n >= 1 else {
                throw GLMCError("--data \(spec): random:N needs a positive sample count N")
            }
            return .random(count: n)
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: spec, isDirectory: &isDirectory) else {
            throw GLMCError("--data \(spec): no such folder")
        }
        guard isDirectory.boolValue else { throw GLMCError("--data \(spec): not a folder (expected a folder of samples, or random:N)") }
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: spec) } catch {
            throw GLMCError("--data \(spec): cannot list the folder: \(error.localizedDescription)")
        }
        let entries = names.filter { name in
            guard !name.hasPrefix(".") else { return false }
            if name.hasSuffix(".npy") || name.hasSuffix(".npz") { return true }
            var dir: ObjCBool = false
            return FileManager.default.fileExists(atPath: spec + "/" + name, isDirectory: &dir) && dir.boolValue
        }.sorted()
        guard !entries.isEmpty else {
            throw GLMCError("--data \(spec): the folder holds no samples (expected .npy files, .npz files, or one folder of .pb tensors per sample)")
        }
        return .folder(path: spec, entries: entries)
    }

    public var count: Int {
        switch self {
        case .folder(_, let entries): return entries.count
        case .random(let n): return n
        }
    }

    public var isRandom: Bool { if case .random = self { return true } else { return false } }

    /// How errors name sample `i`.
    public func label(_ i: Int) -> String {
        switch self {
        case .folder(let path, let entries): return "sample '\(path)/\(entries[i])'"
        case .random: return "random sample \(i)"
        }
    }

    /// Sample `i`, one tensor per input in `inputs`' order, checked against the inputs' element
    /// types and ranks and their static dimensions.
    public func sample(_ i: Int, inputs: [CalibrationInput]) throws -> [Tensor] {
        let tensors: [Tensor]
        switch self {
        case .random: tensors = try randomSample(i, inputs: inputs)
        case .folder(let path, let entries): tensors = try readSample(path + "/" + entries[i], label: label(i), inputs: inputs)
        }
        for (input, t) in zip(inputs, tensors) {
            var fits = t.dtype == input.type.dtype
            if let dims = input.type.shape.dims {
                fits = fits && dims.count == t.shape.count
                for (d, size) in zip(dims, t.shape) { if case .known(let k) = d, k != size { fits = false } }
            }
            guard fits else {
                throw GLMCError("\(label(i)): input '\(input.name)' is \(input.type), the sample holds \(t.type)")
            }
        }
        return tensors
    }

    func readSample(_ path: String, label: String, inputs: [CalibrationInput]) throws -> [Tensor] {
        let names = inputs.map { "'\($0.name)'" }.joined(separator: ", ")
        if path.hasSuffix(".npy") {
            guard inputs.count == 1 else {
                throw GLMCError("\(label): a .npy sample holds one tensor, the model has \(inputs.count) inputs (\(names)); use .npz files keyed by input name")
            }
            return [try NPY.read(path: path)]
        }
        var byName: [String: Tensor] = [:]
        if path.hasSuffix(".npz") {
            for (name, t) in try NPZ.read(path: path) {
                guard inputs.contains(where: { $0.name == name }) else {
                    throw GLMCError("\(label): the model has no input named '\(name)' (inputs: \(names))")
                }
                byName[name] = t
            }
        } else {
            // A folder of TensorProto files: bound by the tensor's name, else by sorted file order.
            let files = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { $0.hasSuffix(".pb") }.sorted()
            guard !files.isEmpty else { throw GLMCError("\(label): the folder holds no .pb tensors") }
            for (k, file) in files.enumerated() {
                let (name, data) = try ONNXTensorFile.read(path: path + "/" + file)
                let bound = inputs.contains(where: { $0.name == name }) ? name : (k < inputs.count ? inputs[k].name : "")
                guard !bound.isEmpty else {
                    throw GLMCError("\(label): '\(file)' matches no input of the model (inputs: \(names))")
                }
                guard byName[bound] == nil else { throw GLMCError("\(label): input '\(bound)' is given twice") }
                byName[bound] = try Tensor(data)
            }
        }
        return try inputs.map { input in
            guard let t = byName[input.name] else { throw GLMCError("\(label): no tensor for input '\(input.name)'") }
            return t
        }
    }

    func randomSample(_ i: Int, inputs: [CalibrationInput]) throws -> [Tensor] {
        var rng = SampleRandom(seed: Self.randomSeed &+ UInt64(i) &* 0x9E37_79B9_7F4A_7C15)
        return try inputs.map { input in
            guard let sizes = input.type.shape.staticSizes else {
                throw GLMCError("--data random:N needs static input shapes; input '\(input.name)' is \(input.type) (give samples in a folder instead)")
            }
            let count = sizes.reduce(1, *)
            switch input.type.dtype {
            case .f32: return Tensor((0 ..< count).map { _ in Float(rng.standardNormal()) }, shape: sizes)
            case .f16: return Tensor(doubles: (0 ..< count).map { _ in rng.standardNormal() }, dtype: .f16, shape: sizes)
            default:
                throw GLMCError("--data random:N draws float inputs only; input '\(input.name)' is \(input.type) (give samples in a folder instead)")
            }
        }
    }
}

/// SplitMix64 with Box-Muller: reproducible standard-normal draws.
struct SampleRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    mutating func unit() -> Double { (Double(next() >> 11) + 1) / 9_007_199_254_740_992.0 }

    mutating func standardNormal() -> Double {
        let u1 = unit(), u2 = unit()
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }
}
