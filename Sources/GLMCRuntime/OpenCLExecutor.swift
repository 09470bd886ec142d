import CGLMCOpenCL
import Foundation
import GLMCPlan

/// An OpenCL device as `OpenCLExecutor` numbers them: every device of every platform, platforms in
/// the ICD loader's order, devices in their platform's order.
public struct OpenCLDevice: Equatable, Sendable, CustomStringConvertible {
    /// Position in the flattened list (what `--device N` names).
    public var index: Int
    public var name: String
    public var platform: String
    /// "gpu", "cpu", "accelerator" or "other".
    public var type: String
    /// The device's OpenCL C version ("OpenCL C 1.2 pocl").
    public var openCLCVersion: String

    public var description: String { "#\(index) '\(name)' (\(type), platform '\(platform)')" }
}

/// Runs a `--target opencl` plan (see the GPU plan contract in Docs/Backends.md): builds the plan's
/// `source/kernels.cl` for the chosen device at load time (OpenCL's convention: the driver
/// compiles for the device it has), allocates one device arena and one weights buffer (the weights
/// copied once), and on `run` uploads the inputs, enqueues every step as a 1-D NDRange on one
/// in-order queue and reads the outputs back. Every kernel takes `(arena, weights)`; the offsets of
/// its operands are baked into its source.
///
/// An executor owns mutable state (the arena): one `run` at a time.
public final class OpenCLExecutor {
    public let plan: PlanFile
    public var manifest: PlanManifest { plan.manifest }
    /// The device the plan runs on.
    public let device: OpenCLDevice
    /// Milliseconds the last `run` spent from the first step's enqueue to `clFinish` after the
    /// last (inputs already uploaded, outputs not yet read back); nil before the first run.
    public private(set) var lastStepsMilliseconds: Double?

    /// The build options of the plan's program: plans are written in OpenCL C 1.2.
    public static let buildOptions = "-cl-std=CL1.2"
    /// Lines of a failed build's log the error carries.
    static let buildLogLines = 30

    private let api: UnsafePointer<glmc_opencl_api>
    private let context: cl_context
    private let queue: cl_command_queue
    private let arena: cl_mem
    private let weights: cl_mem
    private let program: cl_program
    private let kernels: [cl_kernel]
    /// Per step, the global and local work sizes (global 0: nothing to enqueue).
    private let workSizes: [(global: Int, local: Int)]

    /// Loads `plan` onto device `deviceIndex` (an index into `devices()`), or by default the first
    /// GPU, else the first device.
    public init(plan: PlanFile, device deviceIndex: Int? = nil) throws {
        let m = plan.manifest
        guard m.target == "opencl" else { throw RuntimeError("the plan is for target '\(m.target)', not opencl") }
        try plan.validate()
        guard let source = plan.sources["kernels.cl"] else {
            throw RuntimeError("the plan has no kernel source 'source/kernels.cl'")
        }
        let api = try Self.loadAPI()
        let found = try Self.enumerate(api)
        guard !found.isEmpty else {
            throw RuntimeError("no OpenCL device found (is an ICD such as pocl-opencl-icd installed?)")
        }
        let chosen: (info: OpenCLDevice, id: cl_device_id)
        if let deviceIndex {
            guard found.indices.contains(deviceIndex) else {
                throw RuntimeError("there is no OpenCL device \(deviceIndex); devices: \(found.map(\.info.description).joined(separator: ", "))")
            }
            chosen = found[deviceIndex]
        } else {
            chosen = found.first { $0.info.type == "gpu" } ?? found[0]
        }
        var launches: [(global: Int, local: Int)] = []
        for (i, step) in m.steps.enumerated() {
            guard let global = step.launch["global"], let local = step.launch["local"] else {
                throw RuntimeError("step \(i) (\(step.kernel)): the launch needs 'global' and 'local' work sizes")
            }
            guard global >= 0, local >= 1, global % local == 0 else {
                throw RuntimeError("step \(i) (\(step.kernel)): global work size \(global) is not a non-negative multiple of the work-group size \(local)")
            }
            launches.append((global, local))
        }
        let maxGroup = try Self.deviceInfo(api, chosen.id, cl_device_info(CL_DEVICE_MAX_WORK_GROUP_SIZE), as: Int.self)
        if let (i, l) = launches.enumerated().first(where: { $0.element.local > maxGroup }) {
            throw RuntimeError("step \(i) (\(m.steps[i].kernel)): work-group size \(l.local) exceeds the \(maxGroup) that device \(chosen.info.description) allows")
        }

        var status: cl_int = 0
        var deviceID: cl_device_id? = chosen.id
        guard let context = api.pointee.clCreateContext(nil, 1, &deviceID, nil, nil, &status), status == CL_SUCCESS else {
            throw Self.failure(status, "creating a context on device \(chosen.info.description)")
        }
        // From here on every early exit releases what was created so far.
        var release: [() -> Void] = [{ _ = api.pointee.clReleaseContext(context) }]
        func fail(_ error: RuntimeError) -> RuntimeError {
            for r in release.reversed() { r() }
            return error
        }
        guard let queue = api.pointee.clCreateCommandQueue(context, chosen.id, 0, &status), status == CL_SUCCESS else {
            throw fail(Self.failure(status, "creating a command queue"))
        }
        release.append { _ = api.pointee.clReleaseCommandQueue(queue) }

        let arenaBytes = max(m.arenaBytes, PlanLayout.alignment)
        guard let arena = api.pointee.clCreateBuffer(context, cl_mem_flags(CL_MEM_READ_WRITE), arenaBytes, nil, &status), status == CL_SUCCESS else {
            throw fail(Self.failure(status, "allocating the \(arenaBytes)-byte arena"))
        }
        release.append { _ = api.pointee.clReleaseMemObject(arena) }
        let weightsBytes = max(plan.weights.count, PlanLayout.alignment)
        guard let weights = api.pointee.clCreateBuffer(context, cl_mem_flags(CL_MEM_READ_ONLY), weightsBytes, nil, &status), status == CL_SUCCESS else {
            throw fail(Self.failure(status, "allocating the \(weightsBytes)-byte weights buffer"))
        }
        release.append { _ = api.pointee.clReleaseMemObject(weights) }
        var zero: UInt8 = 0
        status = api.pointee.clEnqueueFillBuffer(queue, arena, &zero, 1, 0, arenaBytes, 0, nil, nil)
        guard status == CL_SUCCESS else { throw fail(Self.failure(status, "zeroing the arena")) }
        if !plan.weights.isEmpty {
            // A blocking write: the pointer does not outlive the closure.
            status = plan.weights.withUnsafeBytes {
                api.pointee.clEnqueueWriteBuffer(queue, weights, cl_bool(CL_TRUE), 0, $0.count, $0.baseAddress, 0, nil, nil)
            }
            guard status == CL_SUCCESS else { throw fail(Self.failure(status, "copying the \(plan.weights.count) bytes of weights to the device")) }
        }
        status = api.pointee.clFinish(queue)
        guard status == CL_SUCCESS else { throw fail(Self.failure(status, "initializing the device buffers")) }

        let program: cl_program
        do {
            program = try Self.build(api, context: context, device: chosen, source: source)
        } catch let e as RuntimeError {
            throw fail(e)
        }
        release.append { _ = api.pointee.clReleaseProgram(program) }
        var kernels: [cl_kernel] = []
        for (i, step) in m.steps.enumerated() {
            guard let kernel = api.pointee.clCreateKernel(program, step.kernel, &status), status == CL_SUCCESS else {
                let why = status == CL_INVALID_KERNEL_NAME ? "is missing from" : "cannot be created from (\(Self.errorName(status)))"
                throw fail(RuntimeError("step \(i): kernel '\(step.kernel)' \(why) the plan's OpenCL program source/kernels.cl"))
            }
            release.append { _ = api.pointee.clReleaseKernel(kernel) }
            status = glmc_opencl_set_buffer_args(api, kernel, arena, weights)
            guard status == CL_SUCCESS else {
                throw fail(Self.failure(status, "setting the arguments of step \(i) (\(step.kernel)); a plan kernel takes exactly (__global uchar *arena, __global uchar *weights)"))
            }
            kernels.append(kernel)
        }

        self.plan = plan
        self.device = chosen.info
        self.api = api
        self.context = context
        self.queue = queue
        self.arena = arena
        self.weights = weights
        self.program = program
        self.kernels = kernels
        self.workSizes = launches
    }

    deinit {
        _ = api.pointee.clFinish(queue)
        for k in kernels { _ = api.pointee.clReleaseKernel(k) }
        _ = api.pointee.clReleaseProgram(program)
        _ = api.pointee.clReleaseMemObject(weights)
        _ = api.pointee.clReleaseMemObject(arena)
        _ = api.pointee.clReleaseCommandQueue(queue)
        _ = api.pointee.clReleaseContext(context)
    }

    /// The OpenCL devices of this machine, numbered as `--device` counts them. Throws when OpenCL
    /// itself cannot be loaded; an ICD loader without platforms gives an empty list.
    public static func devices() throws -> [OpenCLDevice] {
        try enumerate(try loadAPI()).map(\.info)
    }

    /// Runs the plan on `inputs` (by input name; see `PlanInputs.validate`) and returns the outputs
    /// in the manifest's order.
    public func run(inputs given: [String: HostTensor]) throws -> [HostTensor] {
        let m = manifest
        let bindings = try PlanInputs.validate(given, for: m)
        for input in bindings where input.buffer.bytes > 0 {
            let status = input.tensor.bytes.withUnsafeBytes {
                api.pointee.clEnqueueWriteBuffer(queue, arena, cl_bool(CL_TRUE), input.buffer.offset, input.buffer.bytes, $0.baseAddress, 0, nil, nil)
            }
            guard status == CL_SUCCESS else { throw Self.failure(status, "copying input '\(input.tensor.name.isEmpty ? "?" : input.tensor.name)' to the device") }
        }
        let start = DispatchTime.now().uptimeNanoseconds
        for (i, kernel) in kernels.enumerated() where workSizes[i].global > 0 {
            let status = glmc_opencl_enqueue_1d(api, queue, kernel, workSizes[i].global, workSizes[i].local)
            guard status == CL_SUCCESS else {
                throw Self.failure(status, "launching step \(i) (\(m.steps[i].kernel), global \(workSizes[i].global), local \(workSizes[i].local))")
            }
        }
        let finished = api.pointee.clFinish(queue)
        guard finished == CL_SUCCESS else { throw Self.failure(finished, "running the plan's steps") }
        lastStepsMilliseconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6

        let buffers = m.buffersByID
        return try m.outputs.map { o in
            guard let b = buffers[o.buffer] else { throw RuntimeError("output '\(o.name)' names unknown buffer \(o.buffer)") }
            var bytes = Data(count: b.bytes)
            if b.bytes > 0 {
                let status = bytes.withUnsafeMutableBytes {
                    api.pointee.clEnqueueReadBuffer(queue, arena, cl_bool(CL_TRUE), b.offset, b.bytes, $0.baseAddress, 0, nil, nil)
                }
                guard status == CL_SUCCESS else { throw Self.failure(status, "reading output '\(o.name)' back from the device") }
            }
            return try PlanOutputs.tensor(o, bytes: bytes) { offset in
                var n: Int64 = 0
                let status = api.pointee.clEnqueueReadBuffer(queue, arena, cl_bool(CL_TRUE), offset, 8, &n, 0, nil, nil)
                guard status == CL_SUCCESS else { throw Self.failure(status, "reading the extent of output '\(o.name)' back from the device") }
                return Int64(littleEndian: n)
            }
        }
    }

    // MARK: - OpenCL helpers

    static func loadAPI() throws -> UnsafePointer<glmc_opencl_api> {
        guard let api = glmc_opencl() else { throw RuntimeError(String(cString: glmc_opencl_load_error())) }
        return api
    }

    static func errorName(_ status: cl_int) -> String {
        glmc_opencl_error_name(status).map { String(cString: $0) } ?? "OpenCL error \(status)"
    }

    static func failure(_ status: cl_int, _ what: String) -> RuntimeError {
        RuntimeError("OpenCL: \(errorName(status)) while \(what)")
    }

    /// Every device of every platform, with its id.
    static func enumerate(_ api: UnsafePointer<glmc_opencl_api>) throws -> [(info: OpenCLDevice, id: cl_device_id)] {
        var count: cl_uint = 0
        var status = api.pointee.clGetPlatformIDs(0, nil, &count)
        // The ICD loader reports "no platform" as CL_PLATFORM_NOT_FOUND_KHR (-1001).
        if status == -1001 || (status == CL_SUCCESS && count == 0) { return [] }
        guard status == CL_SUCCESS else { throw failure(status, "listing the OpenCL platforms") }
        var platforms = [cl_platform_id?](repeating: nil, count: Int(count))
        status = api.pointee.clGetPlatformIDs(count, &platforms, nil)
        guard status == CL_SUCCESS else { throw failure(status, "listing the OpenCL platforms") }
        var found: [(info: OpenCLDevice, id: cl_device_id)] = []
        for case let platform? in platforms {
            let platformName = (try? platformString(api, platform, cl_platform_info(CL_PLATFORM_NAME))) ?? "?"
            var n: cl_uint = 0
            status = api.pointee.clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), 0, nil, &n)
            if status == CL_DEVICE_NOT_FOUND || n == 0 { continue }
            guard status == CL_SUCCESS else { throw failure(status, "listing the devices of platform '\(platformName)'") }
            var ids = [cl_device_id?](repeating: nil, count: Int(n))
            status = api.pointee.clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), n, &ids, nil)
            guard status == CL_SUCCESS else { throw failure(status, "listing the devices of platform '\(platformName)'") }
            for case let id? in ids {
                let type = try deviceInfo(api, id, cl_device_info(CL_DEVICE_TYPE), as: cl_device_type.self)
                let info = OpenCLDevice(
                    index: found.count,
                    name: try deviceString(api, id, cl_device_info(CL_DEVICE_NAME)),
                    platform: platformName,
                    type: type & cl_device_type(CL_DEVICE_TYPE_GPU) != 0 ? "gpu"
                        : type & cl_device_type(CL_DEVICE_TYPE_CPU) != 0 ? "cpu"
                        : type & cl_device_type(CL_DEVICE_TYPE_ACCELERATOR) != 0 ? "accelerator" : "other",
                    openCLCVersion: try deviceString(api, id, cl_device_info(CL_DEVICE_OPENCL_C_VERSION)))
                found.append((info, id))
            }
        }
        return found
    }

    static func deviceInfo<T>(_ api: UnsafePointer<glmc_opencl_api>, _ id: cl_device_id, _ what: cl_device_info, as _: T.Type) throws -> T {
        let value = UnsafeMutableRawPointer.allocate(byteCount: MemoryLayout<T>.size, alignment: MemoryLayout<T>.alignment)
        defer { value.deallocate() }
        let status = api.pointee.clGetDeviceInfo(id, what, MemoryLayout<T>.size, value, nil)
        guard status == CL_SUCCESS else { throw failure(status, "querying a device (info 0x\(String(what, radix: 16)))") }
        return value.load(as: T.self)
    }

    static func deviceString(_ api: UnsafePointer<glmc_opencl_api>, _ id: cl_device_id, _ what: cl_device_info) throws -> String {
        try infoString("querying a device") { api.pointee.clGetDeviceInfo(id, what, $0, $1, $2) }
    }

    static func platformString(_ api: UnsafePointer<glmc_opencl_api>, _ id: cl_platform_id, _ what: cl_platform_info) throws -> String {
        try infoString("querying a platform") { api.pointee.clGetPlatformInfo(id, what, $0, $1, $2) }
    }

    /// A string-valued `clGet*Info` query: its size first, then its bytes (NUL-terminated).
    static func infoString(_ what: String, _ query: (Int, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int>?) -> cl_int) throws -> String {
        var size = 0
        var status = query(0, nil, &size)
        guard status == CL_SUCCESS else { throw failure(status, what) }
        var bytes = [UInt8](repeating: 0, count: size + 1)
        status = bytes.withUnsafeMutableBytes { query(size, $0.baseAddress, nil) }
        guard status == CL_SUCCESS else { throw failure(status, what) }
        return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self).trimmingCharacters(in: .whitespaces)
    }

    /// Compiles `source` for `device`; a failed build's error carries the first lines of its log.
    static func build(_ api: UnsafePointer<glmc_opencl_api>, context: cl_context, device: (info: OpenCLDevice, id: cl_device_id),
                      source: String) throws -> cl_program {
        var status: cl_int = 0
        let created: cl_program? = source.withCString { text in
            var pointer: UnsafePointer<CChar>? = text
            var length = strlen(text)
            return api.pointee.clCreateProgramWithSource(context, 1, &pointer, &length, &status)
        }
        guard let program = created, status == CL_SUCCESS else { throw failure(status, "creating the program from source/kernels.cl") }
        var deviceID: cl_device_id? = device.id
        status = api.pointee.clBuildProgram(program, 1, &deviceID, buildOptions, nil, nil)
        guard status == CL_SUCCESS else {
            let log = (try? infoString("reading the build log") {
                api.pointee.clGetProgramBuildInfo(program, device.id, cl_program_build_info(CL_PROGRAM_BUILD_LOG), $0, $1, $2)
            }) ?? ""
            _ = api.pointee.clReleaseProgram(program)
            let lines = log.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            let shown = lines.prefix(buildLogLines).joined(separator: "\n")
                + (lines.count > buildLogLines ? "\n... (\(lines.count - buildLogLines) more lines)" : "")
            throw RuntimeError("cannot build the plan's OpenCL kernels (source/kernels.cl) for device \(device.info.description): \(errorName(status))"
                + (shown.isEmpty ? "" : "; build log:\n" + shown))
        }
        return program
    }
}
