import CGLMCRuntimeSupport
import Foundation
import GLMCPlan
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failure of loading or running a plan; `message` is one line.
public struct RuntimeError: Error, CustomStringConvertible, Equatable, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A tensor handed to or returned by an executor: element type ("f32", ...), shape and the raw
/// little-endian row-major bytes; a string tensor (dtype "string", CPU plans only) holds its
/// elements in `strings` instead, row-major, and no bytes.
public struct HostTensor: Equatable, Sendable {
    public var name: String
    public var dtype: String
    public var shape: [Int]
    public var bytes: Data
    public var strings: [String]?
    public init(name: String = "", dtype: String, shape: [Int], bytes: Data) {
        self.name = name; self.dtype = dtype; self.shape = shape; self.bytes = bytes
    }
    public init(name: String = "", shape: [Int], strings: [String]) {
        self.name = name; self.dtype = "string"; self.shape = shape; self.bytes = Data(); self.strings = strings
    }
}

/// The plan's CPU kernel ABI: `void k(void **args, long begin, long end)`.
typealias CPUKernel = glmc_kernel_fn

/// What the host CPU can run.
public enum HostCPU {
    /// The feature names a plan's `cpu_features` may list (those the runtime can check).
    public static let knownFeatures = ["sse2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512vnni"]

    /// Whether the host (CPU and OS) supports `feature`; false for names it does not know.
    public static func supports(_ feature: String) -> Bool {
        glmc_cpu_supports(feature) != 0
    }

    /// The host's features among `knownFeatures`.
    public static var features: Set<String> { Set(knownFeatures.filter(supports)) }

    /// The cores this process may use (at least 1).
    public static var cores: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }
}

/// Runs a `--target cpu` plan: checks that the host has the plan's `cpu_features`, loads its
/// `kernels.so`, resolves each step's kernel, allocates the one 64-byte aligned arena, binds the
/// weights in place (the plan's mapped weights section) and runs the steps in order, splitting
/// each step's range `[0, launch["range"])` across up to `threads` threads (a persistent pool
/// made at load time, the calling thread included), each slice at least `launch["grain"]` long.
///
/// An executor owns mutable state (the arena): one `run` at a time.
public final class CPUExecutor {
    public let plan: PlanFile
    public var manifest: PlanManifest { plan.manifest }
    /// Threads a step's range is split across (1: the calling thread only).
    public let threads: Int
    /// Whether the weights are used in place (true) or had to be copied to aligned memory.
    public private(set) var weightsInPlace = false

    private let library: UnsafeMutableRawPointer
    private let kernels: [CPUKernel]
    private let ranges: [Int]
    private let grains: [Int]
    private let arena: UnsafeMutableRawPointer
    private var weightsCopy: UnsafeMutableRawPointer?
    /// Per step, the argument pointers (arena slices and weights), fixed at load time.
    private var argumentTables: [UnsafeMutablePointer<UnsafeMutableRawPointer?>] = []
    /// The worker threads (`threads` - 1 of them), made once.
    private var pool: OpaquePointer?
    /// The strings of a run (plans with string tensors only; see `StringSlots`), and the steps
    /// that allocate on it (a failed allocation fails the run after such a step).
    private var stringHeap: UnsafeMutablePointer<glmc_string_heap>?
    private var allocatingSteps = Set<Int>()

    public init(plan: PlanFile, threads: Int = 1) throws {
        let m = plan.manifest
        guard m.target == "cpu" else { throw RuntimeError("the plan is for target '\(m.target)', not cpu") }
        try plan.validate()
        let missing = m.cpuFeatures.filter { !HostCPU.supports($0) }
        guard missing.isEmpty else {
            throw RuntimeError("the plan needs CPU features this host lacks: \(missing.joined(separator: ", ")) (convert it again with --cpu native or --cpu generic)")
        }
        guard let so = plan.code["kernels.so"], !so.isEmpty else { throw RuntimeError("the plan has no code section 'code/kernels.so'") }
        self.plan = plan
        self.threads = max(1, threads)

        // The shared object: a private temporary file, opened and then removed.
        var template = Array((NSTemporaryDirectory() + "/glmc-kernels-XXXXXX.so").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemps($0.baseAddress!, 3) }
        guard fd >= 0 else { throw RuntimeError("cannot create a temporary file for the kernels: \(String(cString: strerror(errno)))") }
        let path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        defer { unlink(path) }
        let written = so.withUnsafeBytes { buf -> Bool in
            var offset = 0
            while offset < buf.count {
                let n = write(fd, buf.baseAddress! + offset, buf.count - offset)
                if n <= 0 { return false }
                offset += n
            }
            return true
        }
        close(fd)
        guard written else { throw RuntimeError("cannot write the kernels to \(path)") }
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            let why = dlerror().map { String(cString: $0) } ?? "unknown error"
            throw RuntimeError("cannot load the plan's kernels.so: \(why)")
        }
        var kernels: [CPUKernel] = []
        var ranges: [Int] = []
        var grains: [Int] = []
        for (i, step) in m.steps.enumerated() {
            guard let sym = dlsym(handle, step.kernel) else {
                dlclose(handle)
                throw RuntimeError("step \(i): kernel '\(step.kernel)' is missing from the plan's kernels.so")
            }
            kernels.append(unsafeBitCast(sym, to: CPUKernel.self))
            let range = step.launch["range"] ?? 1
            guard range >= 0 else { dlclose(handle); throw RuntimeError("step \(i) (\(step.kernel)): negative range \(range)") }
            ranges.append(range)
            grains.append(max(1, step.launch["grain"] ?? Self.defaultGrain))
        }
        library = handle
        self.kernels = kernels
        self.ranges = ranges
        self.grains = grains

        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, PlanLayout.alignment, max(m.arenaBytes, PlanLayout.alignment)) == 0, let arena = raw else {
            dlclose(handle)
            throw RuntimeError("cannot allocate the \(m.arenaBytes)-byte arena")
        }
        memset(arena, 0, max(m.arenaBytes, PlanLayout.alignment))
        self.arena = arena

        // Weights: in place when the section is mapped and aligned; else one aligned copy.
        var weightsBase: UnsafeMutableRawPointer?
        let count = plan.weights.count
        if count > 0 {
            let mapped = plan.weights.withUnsafeBytes { UnsafeMutableRawPointer(mutating: $0.baseAddress) }
            if count >= 64, let mapped, Int(bitPattern: mapped) % PlanLayout.alignment == 0 {
                weightsBase = mapped
                weightsInPlace = true
            } else {
                var copy: UnsafeMutableRawPointer?
                guard posix_memalign(&copy, PlanLayout.alignment, count) == 0, let copy else {
                    throw RuntimeError("cannot allocate \(count) bytes for the weights")
                }
                plan.weights.withUnsafeBytes { copy.copyMemory(from: $0.baseAddress!, byteCount: count) }
                weightsCopy = copy
                weightsBase = copy
            }
        }
        let buffers = Dictionary(m.buffers.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let weights = Dictionary(m.weights.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        allocatingSteps = Set(m.steps.indices.filter { m.steps[$0].arguments.contains(.stringHeap) })
        if !allocatingSteps.isEmpty || (m.inputs + m.outputs).contains(where: { $0.dtype == "string" }) {
            guard let heap = StringSlots.makeHeap() else { throw RuntimeError("cannot allocate the string heap") }
            stringHeap = heap
        }
        for step in m.steps {
            let table = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: max(1, step.arguments.count))
            for (j, a) in step.arguments.enumerated() {
                switch a {
                case .buffer(let id): table[j] = arena + buffers[id]!.offset
                case .weight(let name): table[j] = weightsBase.map { $0 + weights[name]!.offset }
                case .stringHeap: table[j] = stringHeap.map { UnsafeMutableRawPointer($0) }
                }
            }
            argumentTables.append(table)
        }
        if self.threads > 1 {
            guard let pool = glmc_pool_create(Int32(clamping: self.threads)) else {
                throw RuntimeError("cannot start \(self.threads - 1) worker threads")
            }
            self.pool = pool
        }
    }

    deinit {
        if let pool { glmc_pool_destroy(pool) }
        for t in argumentTables { t.deallocate() }
        free(arena)
        if let weightsCopy { free(weightsCopy) }
        glmc_string_heap_destroy(stringHeap)
        dlclose(library)
    }

    /// With `profiling` on, `run` times each step (wall clock, the thread pool's slices included) and
    /// appends its milliseconds to `stepMilliseconds[step]`, one entry per run.
    public var profiling = false { didSet { stepMilliseconds = Array(repeating: [], count: kernels.count) } }
    public private(set) var stepMilliseconds: [[Double]] = []

    /// Runs the plan on `inputs` (by input name; each must match the manifest's dtype and shape,
    /// see `PlanInputs.validate`) and returns the outputs in the manifest's order.
    public func run(inputs given: [String: HostTensor]) throws -> [HostTensor] {
        let m = manifest
        // Everything a run puts on the string heap is freed when it returns (outputs are copies).
        defer { if let stringHeap { glmc_string_heap_reset(stringHeap) } }
        for input in try PlanInputs.validate(given, for: m) where input.buffer.bytes > 0 {
            if let strings = input.tensor.strings, input.tensor.dtype == "string", let stringHeap {
                try StringSlots.store(strings, into: arena + input.buffer.offset, heap: stringHeap, input: input.tensor.name)
                continue
            }
            input.tensor.bytes.withUnsafeBytes { (arena + input.buffer.offset).copyMemory(from: $0.baseAddress!, byteCount: input.buffer.bytes) }
        }
        // A heap-resident output's pointer is the kernel's to set each run (last run's is freed).
        let buffers = m.buffersByID
        for o in m.outputs where o.isHeapResident { (arena + buffers[o.buffer]!.offset).storeBytes(of: nil, as: UnsafeRawPointer?.self) }
        for i in kernels.indices {
            if profiling {
                let start = DispatchTime.now().uptimeNanoseconds
                execute(step: i)
                stepMilliseconds[i].append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            } else {
                execute(step: i)
            }
            if allocatingSteps.contains(i), let stringHeap, glmc_string_heap_failed(stringHeap) != 0 {
                throw RuntimeError("step \(i) (\(manifest.steps[i].kernel)): out of memory for the strings it creates")
            }
        }
        var outputs: [HostTensor] = []
        for o in m.outputs {
            let b = buffers[o.buffer]!
            // The extents a value-shaped output's kernel wrote, by arena offset.
            let extent = { (offset: Int) in PlanOutputs.extent(in: self.arena, at: offset) }
            if o.dtype == "string" {
                let shape = try PlanOutputs.shape(of: o, extent: extent), count = shape.reduce(1, *)
                var slots = UnsafeRawPointer(arena + b.offset)
                if o.isHeapResident {
                    // The buffer holds a pointer to the elements, which the kernel put on the heap.
                    guard let elements = slots.load(as: UnsafeRawPointer?.self) ?? (count == 0 ? slots : nil) else {
                        throw RuntimeError("output '\(o.name)': the kernel left no elements for its \(count) strings")
                    }
                    slots = elements
                }
                outputs.append(HostTensor(name: o.name, shape: shape, strings: StringSlots.load(count: count, from: slots)))
                continue
            }
            outputs.append(try PlanOutputs.tensor(o, bytes: Data(bytes: arena + b.offset, count: b.bytes), extent: extent))
        }
        return outputs
    }

    /// Smallest slice worth a thread of its own when a step names no `grain`.
    static let defaultGrain = 64
    /// Slices per pool thread a step's range is cut into (each at least `grain` long).
    static let slicesPerThread = 4

    private func execute(step i: Int) {
        let kernel = kernels[i], args = argumentTables[i], range = ranges[i]
        // Several slices per thread, claimed dynamically: a thread that the OS preempts (these
        // machines are shared) holds up only a small slice, the others take the rest.
        let parts = threads > 1 ? min(threads * Self.slicesPerThread, range / grains[i]) : 1
        if parts <= 1 {
            if range > 0 { kernel(args, 0, range) }
            return
        }
        let chunk = (range + parts - 1) / parts
        glmc_pool_run(pool, kernel, args, range, (range + chunk - 1) / chunk, chunk)
    }
}
