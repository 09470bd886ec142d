import Foundation

/// What `glmc inspect` shows about a plan: a readable text and a JSON object
/// (keys: format_version, target, gpu_arch, cpu_features, source_model_sha256, glmc_version, pipeline,
/// kernels, steps, arena_bytes, buffers, weights, weights_bytes, inputs, outputs, code, calibration,
/// metadata).
public struct PlanSummary: Encodable, Equatable, Sendable {
    public struct Kernel: Encodable, Equatable, Sendable {
        public var name: String
        /// Source language, when the plan has a source unit of this name.
        public var language: String?
        /// How many steps launch it.
        public var launches: Int
        /// For cuda plans: whether the PTX module `code/kernels.ptx` has an entry of this name; nil
        /// for other targets.
        public var ptx: Bool?
    }

    public var formatVersion: String
    public var target: String
    public var gpuArch: String?
    public var cpuFeatures: [String]
    public var sourceModelSha256: String
    public var glmcVersion: String
    public var pipeline: [String]
    public var kernels: [Kernel]
    public var steps: Int
    public var arenaBytes: Int
    public var buffers: Int
    public var weights: Int
    public var weightsBytes: Int
    public var inputs: [PlanTensor]
    public var outputs: [PlanTensor]
    /// Code blob names and sizes.
    public var code: [String: Int]
    public var calibration: Bool
    public var metadata: [String: String]

    public init(_ plan: PlanFile) {
        let m = plan.manifest
        formatVersion = m.formatVersion.description
        target = m.target; gpuArch = m.gpuArch; cpuFeatures = m.cpuFeatures
        sourceModelSha256 = m.sourceModelSha256; glmcVersion = m.glmcVersion; pipeline = m.pipeline
        var order: [String] = []
        var launches: [String: Int] = [:]
        for s in m.steps {
            if launches[s.kernel] == nil { order.append(s.kernel) }
            launches[s.kernel, default: 0] += 1
        }
        // A source that no step names is a translation unit holding many kernels (the CPU target's
        // `kernels.c`), not a kernel itself; plans without steps still list their sources.
        if m.steps.isEmpty { for k in m.kernelSources { order.append(k.name); launches[k.name] = 0 } }
        let languages = Dictionary(m.kernelSources.map { ($0.name, $0.language) }, uniquingKeysWith: { a, _ in a })
        let sharedLanguage = Set(m.kernelSources.map(\.language)).count == 1 ? m.kernelSources.first?.language : nil
        let entries = m.target == "cuda" ? Self.ptxEntries(plan.code["kernels.ptx"] ?? Data()) : []
        kernels = order.map { name in
            Kernel(name: name, language: languages[name] ?? sharedLanguage, launches: launches[name] ?? 0,
                   ptx: m.target == "cuda" ? entries.contains(name) : nil)
        }
        steps = m.steps.count; arenaBytes = m.arenaBytes; buffers = m.buffers.count
        weights = m.weights.count; weightsBytes = plan.weights.count
        inputs = m.inputs; outputs = m.outputs
        code = plan.code.mapValues { $0.count }
        calibration = plan.calibration != nil
        metadata = m.metadata
    }

    /// The names of a PTX module's kernels: each `.entry NAME(` (after `.visible` or `.weak`).
    public static func ptxEntries(_ ptx: Data) -> Set<String> {
        var names: Set<String> = []
        for line in String(decoding: ptx, as: UTF8.self).split(separator: "\n") {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let at = words.firstIndex(of: ".entry"), at + 1 < words.count else { continue }
            let name = words[at + 1].prefix { $0 != "(" }
            if !name.isEmpty { names.insert(String(name)) }
        }
        return names
    }

    enum CodingKeys: String, CodingKey {
        case formatVersion = "format_version", target, gpuArch = "gpu_arch", cpuFeatures = "cpu_features"
        case sourceModelSha256 = "source_model_sha256", glmcVersion = "glmc_version", pipeline, kernels, steps
        case arenaBytes = "arena_bytes", buffers, weights, weightsBytes = "weights_bytes", inputs, outputs, code
        case calibration, metadata
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(formatVersion, forKey: .formatVersion); try c.encode(target, forKey: .target)
        try c.encode(gpuArch, forKey: .gpuArch)  // null when absent: the key is always there
        try c.encode(cpuFeatures, forKey: .cpuFeatures); try c.encode(sourceModelSha256, forKey: .sourceModelSha256)
        try c.encode(glmcVersion, forKey: .glmcVersion); try c.encode(pipeline, forKey: .pipeline)
        try c.encode(kernels, forKey: .kernels); try c.encode(steps, forKey: .steps)
        try c.encode(arenaBytes, forKey: .arenaBytes); try c.encode(buffers, forKey: .buffers)
        try c.encode(weights, forKey: .weights); try c.encode(weightsBytes, forKey: .weightsBytes)
        try c.encode(inputs, forKey: .inputs); try c.encode(outputs, forKey: .outputs)
        try c.encode(code, forKey: .code); try c.encode(calibration, forKey: .calibration)
        try c.encode(metadata, forKey: .metadata)
    }

    /// The summary as pretty-printed JSON with sorted keys.
    public func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(self) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    /// The human-readable summary.
    public var text: String {
        func tensor(_ t: PlanTensor) -> String {
            let bound = t.value.map { " bound to \($0)" } ?? ""
            return "  \(t.name): \(t.dtype)[\(t.shapeText)] (buffer \(t.buffer))\(bound)"
        }
        var lines: [String] = []
        lines.append("plan format \(formatVersion), target \(target)" + (gpuArch.map { " (\($0))" } ?? ""))
        lines.append("written by glmc \(glmcVersion) from model sha256 \(sourceModelSha256)")
        if !cpuFeatures.isEmpty { lines.append("requires CPU features: \(cpuFeatures.joined(separator: ", "))") }
        if !pipeline.isEmpty { lines.append("pipeline: \(pipeline.joined(separator: ", "))") }
        lines.append("inputs:"); lines.append(contentsOf: inputs.map(tensor))
        lines.append("outputs:"); lines.append(contentsOf: outputs.map(tensor))
        lines.append("arena: \(arenaBytes) bytes in \(buffers) buffers")
        lines.append("weights: \(weights) tensors, \(weightsBytes) bytes")
        lines.append("kernels: \(kernels.count), \(steps) steps")
        for k in kernels {
            var line = "  \(k.name): \(k.launches) launch\(k.launches == 1 ? "" : "es")"
            if let language = k.language { line += ", source \(language)" }
            if let ptx = k.ptx { line += ptx ? ", ptx" : ", no ptx" }
            lines.append(line)
        }
        if !code.isEmpty {
            lines.append("code: " + code.sorted(by: { $0.key < $1.key }).map { "\($0.key) (\($0.value) bytes)" }.joined(separator: ", "))
        }
        if calibration { lines.append("calibration table: present") }
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) { lines.append("\(key): \(value)") }
        return lines.joined(separator: "\n") + "\n"
    }
}
