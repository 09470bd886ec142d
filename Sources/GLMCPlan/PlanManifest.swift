/// The plan manifest: everything a runtime needs to know about a compiled model, stored as UTF-8 JSON
/// in the plan's `manifest` section. JSON keys are snake_case (see Docs/PlanFormat.md).
public struct PlanManifest: Codable, Equatable, Sendable {
    /// Plan format version this manifest was written for (major.minor).
    public var formatVersion: PlanFormatVersion
    /// "cpu", "opencl" or "cuda".
    public var target: String
    /// CPU features the compiled code requires (e.g. "avx2", "fma"); empty if none.
    public var cpuFeatures: [String]
    /// GPU architecture the code was compiled for (e.g. "sm_90"), or nil.
    public var gpuArch: String?
    /// Lowercase hex SHA-256 of the source model file.
    public var sourceModelSha256: String
    /// Version of glmc that wrote the plan.
    public var glmcVersion: String
    /// The pass pipeline, in order.
    public var pipeline: [String]
    public var inputs: [PlanTensor]
    public var outputs: [PlanTensor]
    /// Size of the one activation arena every buffer lives in.
    public var arenaBytes: Int
    public var buffers: [PlanBuffer]
    public var steps: [PlanStep]
    public var weights: [PlanWeight]
    public var kernelSources: [PlanKernelSource]
    /// Free-form metadata.
    public var metadata: [String: String]

    public init(formatVersion: PlanFormatVersion = .current, target: String, cpuFeatures: [String] = [],
                gpuArch: String? = nil, sourceModelSha256: String, glmcVersion: String, pipeline: [String] = [],
                inputs: [PlanTensor] = [], outputs: [PlanTensor] = [], arenaBytes: Int = 0,
                buffers: [PlanBuffer] = [], steps: [PlanStep] = [], weights: [PlanWeight] = [],
                kernelSources: [PlanKernelSource] = [], metadata: [String: String] = [:]) {
        self.formatVersion = formatVersion; self.target = target; self.cpuFeatures = cpuFeatures
        self.gpuArch = gpuArch; self.sourceModelSha256 = sourceModelSha256; self.glmcVersion = glmcVersion
        self.pipeline = pipeline; self.inputs = inputs; self.outputs = outputs; self.arenaBytes = arenaBytes
        self.buffers = buffers; self.steps = steps; self.weights = weights; self.kernelSources = kernelSources
        self.metadata = metadata
    }

    enum CodingKeys: String, CodingKey {
        case formatVersion = "format_version", target, cpuFeatures = "cpu_features", gpuArch = "gpu_arch"
        case sourceModelSha256 = "source_model_sha256", glmcVersion = "glmc_version", pipeline, inputs, outputs
        case arenaBytes = "arena_bytes", buffers, steps, weights, kernelSources = "kernel_sources", metadata
    }

    /// The targets a plan may name.
    public static let targets: Set<String> = ["cpu", "opencl", "cuda"]
}

/// Plan format version. Readers refuse a different `major`; a newer `minor` only adds optional
/// manifest keys or sections that older readers ignore.
public struct PlanFormatVersion: Codable, Equatable, Sendable, CustomStringConvertible {
    public var major: UInt32
    public var minor: UInt32
    public init(major: UInt32, minor: UInt32) { self.major = major; self.minor = minor }
    /// The version this library writes and reads.
    /// 1.1 added an output's optional `dynamic_dims` (value-shaped results); 1.2 heap-resident string
    /// outputs (a shape entry of -1, see `PlanTensor.unbounded`). Older plans read as before.
    public static let current = PlanFormatVersion(major: 1, minor: 2)
    public var description: String { "\(major).\(minor)" }
}

/// A model input or output: its name, element type ("f32", "f16", "i64", ...), shape, and the arena
/// buffer that holds it.
public struct PlanTensor: Codable, Equatable, Sendable {
    public var name: String
    public var dtype: String
    public var shape: [Int]
    public var buffer: Int
    /// For an input whose value was bound at convert time (a shape-determining input), its elements
    /// in row-major order; a runtime refuses any other value. Nil otherwise.
    public var value: PlanBoundValue?
    /// For an output whose extent along some dims is only known at run time (NonZero, Unique,
    /// NonMaxSuppression): dim index -> arena byte offset of the little-endian i64 that the kernel
    /// writes that dim's actual extent into. `shape` then holds upper bounds, and the kernel writes
    /// the result densely in its actual shape at the start of the buffer. Nil otherwise.
    /// A dim with no static bound (`unbounded` in `shape`, string outputs of cpu plans only) makes
    /// the output *heap-resident*: its buffer holds one pointer to the elements, which the kernel
    /// allocated on the run's string heap.
    public var dynamicDims: [Int: Int]?
    public init(name: String, dtype: String, shape: [Int], buffer: Int, value: PlanBoundValue? = nil, dynamicDims: [Int: Int]? = nil) {
        self.name = name; self.dtype = dtype; self.shape = shape; self.buffer = buffer; self.value = value
        self.dynamicDims = dynamicDims
    }

    enum CodingKeys: String, CodingKey { case name, dtype, shape, buffer, value, dynamicDims = "dynamic_dims" }

    /// The `shape` entry of a runtime-determined dim that has no static bound (since 1.2). Older
    /// readers refuse it as a negative dimension rather than misread the output.
    public static let unbounded = -1

    /// Whether the output's elements live on the run's string heap, its buffer holding one pointer
    /// to them (a dim without a static bound).
    public var isHeapResident: Bool { shape.contains(Self.unbounded) }

    /// The shape with each runtime-determined dim written as `≤bound`, or `?` without a bound
    /// (for `glmc inspect`).
    public var shapeText: String {
        shape.enumerated().map { d, n in
            dynamicDims?[d] == nil ? String(n) : n == Self.unbounded ? "?" : "≤\(n)"
        }.joined(separator: ", ")
    }
}

/// The bound value of an input, a JSON array of numbers: exact integers for integer and bool
/// inputs (bool as 0/1), finite reals for floating-point ones.
public enum PlanBoundValue: Codable, Equatable, Sendable, CustomStringConvertible {
    case integers([Int64])
    case reals([Double])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let v = try? c.decode([Int64].self) { self = .integers(v) } else { self = .reals(try c.decode([Double].self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .integers(let v): try c.encode(v)
        case .reals(let v): try c.encode(v)
        }
    }

    public var count: Int {
        switch self {
        case .integers(let v): return v.count
        case .reals(let v): return v.count
        }
    }

    /// The elements as reals (integers converted).
    public var reals: [Double] {
        switch self {
        case .integers(let v): return v.map { Double($0) }
        case .reals(let v): return v
        }
    }

    /// At most 8 elements, for messages.
    public var description: String {
        let text: [String]
        switch self {
        case .integers(let v): text = v.prefix(8).map(String.init)
        case .reals(let v): text = v.prefix(8).map { "\($0)" }
        }
        return "[" + text.joined(separator: ", ") + (count > 8 ? ", ...]" : "]")
    }
}

/// One buffer in the activation arena: bytes `[offset, offset + bytes)`.
public struct PlanBuffer: Codable, Equatable, Sendable {
    public var id: Int
    public var offset: Int
    public var bytes: Int
    public init(id: Int, offset: Int, bytes: Int) { self.id = id; self.offset = offset; self.bytes = bytes }
}

/// A kernel argument: an arena buffer (by id), a weight (by name), or the run's string heap.
/// JSON: `{"buffer": 3}`, `{"weight": "conv1.weight"}` or `{"string_heap": true}`.
///
/// The string heap (CPU plans only) is the runtime's allocator for the strings a kernel creates:
/// a `glmc_string_heap *` (see `CGLMCRuntimeSupport`); the runtime frees what a run allocated
/// once it has read the outputs.
public enum PlanArgument: Codable, Equatable, Sendable {
    case buffer(Int)
    case weight(String)
    case stringHeap

    enum CodingKeys: String, CodingKey { case buffer, weight, stringHeap = "string_heap" }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let keys = [c.contains(.buffer), c.contains(.weight), c.contains(.stringHeap)]
        guard keys.filter({ $0 }).count == 1 else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                debugDescription: "an argument has exactly one of \"buffer\", \"weight\" or \"string_heap\""))
        }
        if keys[0] {
            self = .buffer(try c.decode(Int.self, forKey: .buffer))
        } else if keys[1] {
            self = .weight(try c.decode(String.self, forKey: .weight))
        } else {
            guard try c.decode(Bool.self, forKey: .stringHeap) else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "\"string_heap\" must be true"))
            }
            self = .stringHeap
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .buffer(let id): try c.encode(id, forKey: .buffer)
        case .weight(let name): try c.encode(name, forKey: .weight)
        case .stringHeap: try c.encode(true, forKey: .stringHeap)
        }
    }
}

/// One kernel launch, in execution order.
public struct PlanStep: Codable, Equatable, Sendable {
    /// The kernel's symbol / entry point name.
    public var kernel: String
    /// What the kernel computes (e.g. "conv2d", "matmul", "elementwise").
    public var kind: String
    public var arguments: [PlanArgument]
    /// Launch parameters (e.g. "grid_x", "block_x", "threads", "tile").
    public var launch: [String: Int]
    public init(kernel: String, kind: String, arguments: [PlanArgument], launch: [String: Int] = [:]) {
        self.kernel = kernel; self.kind = kind; self.arguments = arguments; self.launch = launch
    }
}

/// One weight tensor: its bytes are `[offset, offset + bytes)` of the `weights` section; `offset`
/// is a multiple of 64.
public struct PlanWeight: Codable, Equatable, Sendable {
    public var name: String
    public var dtype: String
    public var shape: [Int]
    public var offset: Int
    public var bytes: Int
    public init(name: String, dtype: String, shape: [Int], offset: Int, bytes: Int) {
        self.name = name; self.dtype = dtype; self.shape = shape; self.offset = offset; self.bytes = bytes
    }
}

/// A kernel source unit: its name and language ("c", "opencl-c", "cuda-c"). The text lives in the
/// section `source/<name>`.
public struct PlanKernelSource: Codable, Equatable, Sendable {
    public var name: String
    public var language: String
    public init(name: String, language: String) { self.name = name; self.language = language }
}
