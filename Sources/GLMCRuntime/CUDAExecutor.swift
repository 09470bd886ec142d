import CGLMCCUDA
import Foundation
import GLMCPlan

/// Runs a `--target cuda` plan through the CUDA driver API (`libcuda.so.1`, loaded with dlopen at
/// first use, so glmc builds and runs CPU plans on machines without it).
///
/// At load: `cuInit`, the device's primary context, the plan's PTX module `code/kernels.ptx`
/// (JIT-compiled by the driver for the device; a plan without PTX has its `source/kernels.cu`
/// compiled with NVRTC here when NVRTC is found), one function per step, one zeroed arena of
/// `max(arena_bytes, 64)` bytes and one weights buffer (`cuMemAlloc`, never managed memory) holding
/// the weights section, copied once, and one stream. `run` copies the inputs to the arena, launches
/// every step on the stream as `kernel(arena, weights)` with grid `grid_x`, block `block_x` and
/// `shared_bytes` of dynamic shared memory (GPU_ABI: 1-D launches), and copies the outputs back.
/// `lastStepsMilliseconds` is the device time of the steps only (CUDA events around the launches),
/// without the copies.
///
/// An executor owns mutable device state (the arena): one `run` at a time.
public final class CUDAExecutor {
    public let plan: PlanFile
    public var manifest: PlanManifest { plan.manifest }
    /// The device ordinal and what the driver calls it.
    public let device: Int
    public private(set) var deviceName = ""
    /// The device's compute capability as an architecture name ("sm_90").
    public private(set) var deviceArch = ""
    /// Device time of the last run's steps, in milliseconds (CUDA events).
    public private(set) var lastStepsMilliseconds: Double?

    /// The entry-point signature this runtime launches (manifest `metadata.kernel_abi`).
    public static let kernelABI = "NAME(arena, weights)"

    /// The launch of one step: its 1-D grid and block, and dynamic shared memory.
    struct Launch: Equatable {
        var gridX: UInt32
        var blockX: UInt32
        var sharedBytes: UInt32
    }

    private let api: UnsafePointer<glmc_cuda_api>
    // Everything below is created in order at load and released in reverse in deinit (also when
    // the initializer throws part way: only what exists is released).
    private var cuDevice: glmc_CUdevice = 0
    private var context: glmc_CUcontext?
    private var module: glmc_CUmodule?
    private let launches: [Launch]
    private var functions: [glmc_CUfunction] = []
    private var arena: glmc_CUdeviceptr = 0
    private var weights: glmc_CUdeviceptr = 0
    private var stream: glmc_CUstream?
    private var start: glmc_CUevent?
    private var end: glmc_CUevent?
    /// `cuLaunchKernel`'s parameter array: pointers to the two device addresses (arena, weights).
    private let parameterValues: UnsafeMutablePointer<glmc_CUdeviceptr>
    private let parameters: UnsafeMutablePointer<UnsafeMutableRawPointer?>

    /// Loads `plan` on device `device` (an ordinal, default 0).
    public init(plan: PlanFile, device: Int = 0) throws {
        let m = plan.manifest
        guard m.target == "cuda" else { throw RuntimeError("the plan is for target '\(m.target)', not cuda") }
        try plan.validate()
        // A malformed plan is refused before any device work.
        if let abi = m.metadata["kernel_abi"], abi != Self.kernelABI {
            throw RuntimeError("the plan's kernels take '\(abi)', but this runtime launches '\(Self.kernelABI)'")
        }
        let launches = try m.steps.enumerated().map { i, step in try Self.launch(of: step, i) }
        let api = try Self.driver()
        self.plan = plan
        self.device = device
        self.api = api
        self.launches = launches
        parameterValues = .allocate(capacity: 2)
        parameters = .allocate(capacity: 2)
        parameterValues.initialize(repeating: 0, count: 2)
        parameters[0] = UnsafeMutableRawPointer(parameterValues)
        parameters[1] = UnsafeMutableRawPointer(parameterValues + 1)

        try check(api.pointee.cuInit(0), "cuInit")
        var count: Int32 = 0
        try check(api.pointee.cuDeviceGetCount(&count), "cuDeviceGetCount")
        guard count > 0 else { throw RuntimeError("no CUDA device found") }
        guard device >= 0, device < Int(count) else {
            throw RuntimeError("--device \(device): there \(count == 1 ? "is 1 CUDA device" : "are \(count) CUDA devices") (0...\(count - 1))")
        }
        try check(api.pointee.cuDeviceGet(&cuDevice, Int32(device)), "cuDeviceGet")
        var name = [CChar](repeating: 0, count: 256)
        try check(api.pointee.cuDeviceGetName(&name, Int32(name.count), cuDevice), "cuDeviceGetName")
        deviceName = name.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        var major: Int32 = 0, minor: Int32 = 0
        try check(api.pointee.cuDeviceGetAttribute(&major, Int32(GLMC_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR), cuDevice), "cuDeviceGetAttribute")
        try check(api.pointee.cuDeviceGetAttribute(&minor, Int32(GLMC_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR), cuDevice), "cuDeviceGetAttribute")
        deviceArch = "sm_\(major)\(minor)"
        // PTX for compute_XX runs on devices of capability XX and later only; say so plainly
        // rather than with the driver's CUDA_ERROR_NO_BINARY_FOR_GPU.
        if let arch = m.gpuArch, let planLevel = Self.archLevel(arch), planLevel > Int(major) * 10 + Int(minor) {
            throw RuntimeError("the plan is for \(arch), but device \(device) (\(deviceName)) is \(deviceArch); convert it again with --gpu-arch \(deviceArch)")
        }

        var context: glmc_CUcontext?
        try check(api.pointee.cuDevicePrimaryCtxRetain(&context, cuDevice), "cuDevicePrimaryCtxRetain")
        self.context = context
        try check(api.pointee.cuCtxSetCurrent(context), "cuCtxSetCurrent")

        let ptx = try Self.ptx(of: plan, deviceArch: deviceArch)
        try loadModule(ptx)
        for (i, step) in m.steps.enumerated() {
            var function: glmc_CUfunction?
            let found = api.pointee.cuModuleGetFunction(&function, module, step.kernel)
            guard found == 0, let function else {
                throw RuntimeError("step \(i): kernel '\(step.kernel)' is missing from the plan's PTX (\(errorName(found)))")
            }
            functions.append(function)
        }

        let arenaBytes = max(m.arenaBytes, PlanLayout.alignment)
        try check(api.pointee.cuMemAlloc(&arena, arenaBytes), "cuMemAlloc of the \(arenaBytes)-byte arena")
        try check(api.pointee.cuMemsetD8(arena, 0, arenaBytes), "cuMemsetD8 of the arena")
        let weightsBytes = max(plan.weights.count, PlanLayout.alignment)
        try check(api.pointee.cuMemAlloc(&weights, weightsBytes), "cuMemAlloc of \(weightsBytes) bytes for the weights")
        try check(api.pointee.cuMemsetD8(weights, 0, weightsBytes), "cuMemsetD8 of the weights")
        if !plan.weights.isEmpty {
            let weights = self.weights
            try plan.weights.withUnsafeBytes { raw in
                try check(api.pointee.cuMemcpyHtoD(weights, raw.baseAddress!, raw.count), "copying the weights to the device")
            }
        }
        parameterValues[0] = arena
        parameterValues[1] = weights
        try check(api.pointee.cuStreamCreate(&stream, 0), "cuStreamCreate")
        try check(api.pointee.cuEventCreate(&start, 0), "cuEventCreate")
        try check(api.pointee.cuEventCreate(&end, 0), "cuEventCreate")
    }

    deinit {
        if let context { _ = api.pointee.cuCtxSetCurrent(context) }
        if let end { _ = api.pointee.cuEventDestroy(end) }
        if let start { _ = api.pointee.cuEventDestroy(start) }
        if let stream { _ = api.pointee.cuStreamDestroy(stream) }
        if weights != 0 { _ = api.pointee.cuMemFree(weights) }
        if arena != 0 { _ = api.pointee.cuMemFree(arena) }
        if let module { _ = api.pointee.cuModuleUnload(module) }
        if context != nil { _ = api.pointee.cuDevicePrimaryCtxRelease(cuDevice) }
        parameters.deallocate()
        parameterValues.deallocate()
    }

    /// Runs the plan on `inputs` (by input name; checked by `PlanInputs.validate` exactly as the
    /// CPU executor checks them) and returns the outputs in the manifest's order.
    public func run(inputs given: [String: HostTensor]) throws -> [HostTensor] {
        let m = manifest
        let inputs = try PlanInputs.validate(given, for: m)
        try check(api.pointee.cuCtxSetCurrent(context), "cuCtxSetCurrent")
        for (input, spec) in zip(inputs, m.inputs) where input.buffer.bytes > 0 {
            let destination = arena + glmc_CUdeviceptr(input.buffer.offset)
            try input.tensor.bytes.withUnsafeBytes { raw in
                try check(api.pointee.cuMemcpyHtoD(destination, raw.baseAddress!, input.buffer.bytes), "copying input '\(spec.name)' to the device")
            }
        }
        try check(api.pointee.cuEventRecord(start, stream), "cuEventRecord")
        // A step with an empty grid has nothing to do (and cuLaunchKernel refuses an empty grid).
        for (i, launch) in launches.enumerated() where launch.gridX > 0 {
            let status = api.pointee.cuLaunchKernel(functions[i], launch.gridX, 1, 1, launch.blockX, 1, 1,
                                                   launch.sharedBytes, stream, parameters, nil)
            try check(status, "step \(i) (\(m.steps[i].kernel)): cuLaunchKernel")
        }
        try check(api.pointee.cuEventRecord(end, stream), "cuEventRecord")
        // A kernel's fault (an illegal address, say) surfaces here.
        try check(api.pointee.cuEventSynchronize(end), "running the plan's steps")
        var milliseconds: Float = 0
        try check(api.pointee.cuEventElapsedTime(&milliseconds, start, end), "cuEventElapsedTime")
        lastStepsMilliseconds = Double(milliseconds)
        let buffers = m.buffersByID
        return try m.outputs.map { o in
            guard let b = buffers[o.buffer] else { throw RuntimeError("output '\(o.name)' names unknown buffer \(o.buffer)") }
            var bytes = Data(count: b.bytes)
            if b.bytes > 0 {
                let source = arena + glmc_CUdeviceptr(b.offset)
                try bytes.withUnsafeMutableBytes { raw in
                    try check(api.pointee.cuMemcpyDtoH(raw.baseAddress!, source, b.bytes), "copying output '\(o.name)' from the device")
                }
            }
            return try PlanOutputs.tensor(o, bytes: bytes) { offset in
                var n: Int64 = 0
                try check(api.pointee.cuMemcpyDtoH(&n, arena + glmc_CUdeviceptr(offset), 8), "copying the extent of output '\(o.name)' from the device")
                return Int64(littleEndian: n)
            }
        }
    }

    /// Why CUDA plans cannot run here (no driver, no device), or nil when they can.
    public static var unavailableReason: String? {
        do {
            let api = try driver()
            let status = api.pointee.cuInit(0)
            guard status == 0 else { return "cuInit: \(errorName(api, status))" }
            var count: Int32 = 0
            guard api.pointee.cuDeviceGetCount(&count) == 0, count > 0 else { return "no CUDA device found" }
            return nil
        } catch {
            return "\(error)"
        }
    }

    // MARK: - Loading

    /// The driver's entry points, or the reason it cannot be loaded.
    static func driver() throws -> UnsafePointer<glmc_cuda_api> {
        var why = [CChar](repeating: 0, count: 1024)
        guard let api = glmc_cuda_load(&why, why.count) else {
            throw RuntimeError("CUDA is not available: \(why.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })")
        }
        return api
    }

    /// `sm_NN` (or `sm_NNa`) → NN (nil for another form).
    static func archLevel(_ arch: String) -> Int? {
        guard let match = arch.wholeMatch(of: /sm_([0-9]{2,3})[a-z]?/) else { return nil }
        return Int(match.1)
    }

    /// The plan's PTX, NUL-terminated; compiled from its source with NVRTC when it has none.
    static func ptx(of plan: PlanFile, deviceArch: String) throws -> [UInt8] {
        if let ptx = plan.code["kernels.ptx"] { return Array(ptx) + [0] }
        guard let source = plan.sources["kernels.cu"] else {
            throw RuntimeError("the plan has neither PTX (code/kernels.ptx) nor CUDA source (source/kernels.cu)")
        }
        var why = [CChar](repeating: 0, count: 1024)
        guard glmc_nvrtc_load(&why, why.count) != 0 else {
            throw RuntimeError("the plan carries CUDA source only and NVRTC cannot be loaded to compile it (\(why.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })); set GLMC_NVRTC=/path/libnvrtc.so.12, or convert on a machine with NVRTC")
        }
        let arch = plan.manifest.gpuArch ?? deviceArch
        var ptx: UnsafeMutablePointer<CChar>?
        var size = 0
        var log: UnsafeMutablePointer<CChar>?
        var errorName: UnsafePointer<CChar>?
        let status = glmc_nvrtc_compile(source, "kernels.cu", arch, &ptx, &size, &log, &errorName)
        defer { free(ptx); free(log) }
        guard status == 0, let ptx else {
            let name = errorName.map { String(cString: $0) } ?? "status \(status)"
            throw RuntimeError("NVRTC cannot compile the plan's CUDA source for \(arch) (\(name))" + (log.map { ":\n" + String(cString: $0) } ?? ""))
        }
        return ptx.withMemoryRebound(to: UInt8.self, capacity: size + 1) { Array(UnsafeBufferPointer(start: $0, count: size + 1)) }
    }

    /// Loads the PTX module, with the JIT's error log in the error when the driver refuses it.
    private func loadModule(_ ptx: [UInt8]) throws {
        var log = [CChar](repeating: 0, count: 4096)
        // CU_JIT_ERROR_LOG_BUFFER (5) and CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES (6): the size is
        // passed as the pointer-sized value itself, as cuda.h specifies.
        var options: [Int32] = [5, 6]
        var module: glmc_CUmodule?
        let status = log.withUnsafeMutableBufferPointer { logBuffer in
            var values: [UnsafeMutableRawPointer?] = [UnsafeMutableRawPointer(logBuffer.baseAddress),
                                                      UnsafeMutableRawPointer(bitPattern: logBuffer.count)]
            return ptx.withUnsafeBytes { image in
                api.pointee.cuModuleLoadDataEx(&module, image.baseAddress, 2, &options, &values)
            }
        }
        guard status == 0, let module else {
            let text = log.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }.trimmingCharacters(in: .whitespacesAndNewlines)
            throw RuntimeError("cannot load the plan's PTX on device \(device) (\(deviceName), \(deviceArch)): \(errorName(status))"
                + (text.isEmpty ? "" : ": " + text.split(separator: "\n").prefix(30).joined(separator: "\n")))
        }
        self.module = module
    }

    /// A step's launch: `grid_x` (0 ... 2^31 - 1), `block_x` (1 ... 1024), `shared_bytes` (default 0).
    static func launch(of step: PlanStep, _ index: Int) throws -> Launch {
        Launch(gridX: try launchValue(step, index, "grid_x", 0 ... Int(Int32.max)),
               blockX: try launchValue(step, index, "block_x", 1 ... 1024),
               sharedBytes: try launchValue(step, index, "shared_bytes", 0 ... Int(Int32.max), default: 0))
    }

    /// A step's launch value `key`, checked against `range`.
    static func launchValue(_ step: PlanStep, _ index: Int, _ key: String, _ range: ClosedRange<Int>, default: Int? = nil) throws -> UInt32 {
        guard let value = step.launch[key] ?? `default` else {
            throw RuntimeError("step \(index) (\(step.kernel)): launch has no '\(key)' (a cuda plan's steps give grid_x and block_x)")
        }
        guard range.contains(value) else {
            throw RuntimeError("step \(index) (\(step.kernel)): launch \(key) = \(value) is outside \(range.lowerBound)...\(range.upperBound)")
        }
        return UInt32(value)
    }

    // MARK: - Errors

    private func check(_ status: glmc_CUresult, _ what: @autoclosure () -> String) throws {
        guard status != 0 else { return }
        throw RuntimeError("\(what()): \(errorName(status))")
    }

    private func errorName(_ status: glmc_CUresult) -> String { Self.errorName(api, status) }

    /// "CUDA_ERROR_OUT_OF_MEMORY (out of memory)", from the driver's own tables.
    static func errorName(_ api: UnsafePointer<glmc_cuda_api>, _ status: glmc_CUresult) -> String {
        var name: UnsafePointer<CChar>?
        var text: UnsafePointer<CChar>?
        let known = api.pointee.cuGetErrorName(status, &name) == 0 && name != nil
        _ = api.pointee.cuGetErrorString(status, &text)
        let label = known ? String(cString: name!) : "CUDA error \(status)"
        return text.map { "\(label) (\(String(cString: $0)))" } ?? label
    }
}

extension CUDAExecutor: PlanExecutor {}
