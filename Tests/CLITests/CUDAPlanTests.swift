import Foundation
import GLMCCodegen
import GLMCInterpreter
import GLMCOps
import GLMCPlan
import GLMCRuntime
import GLMCTestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The CUDA runtime on a hand-made plan written to the GPU ABI (GPU_ABI: `NAME(arena, weights)`,
/// offsets baked into the source, 1-D launches):
/// - on a machine with an NVIDIA driver and device, the plan runs for real and its outputs are
///   checked;
/// - elsewhere (CI, these machines) CUDAExecutor runs against a stand-in driver
///   (Tests/Fixtures/cuda/fake_libcuda.c through $GLMC_LIBCUDA) that records what it is asked:
///   allocations, copies, launches; kernels do not run there;
/// - plan checks that come before the driver run everywhere.
final class CUDAPlanTests: XCTestCase {
    /// x: f32[4] in buffer 0 (arena offset 0), y: f32[4] in buffer 1 (offset 64), w: f32[4] weight.
    /// Step 0 writes y = x + w; step 1 doubles y. Output "x_again" reads buffer 0 back.
    static let source = """
    extern "C" __global__ void add_0(unsigned char *arena, unsigned char *weights) {
        long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i >= 4) return;
        const float *x = (const float *)(arena + 0);
        const float *w = (const float *)(weights + 0);
        float *y = (float *)(arena + 64);
        y[i] = x[i] + w[i];
    }

    extern "C" __global__ void twice_1(unsigned char *arena, unsigned char *weights) {
        long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i >= 4) return;
        float *y = (float *)(arena + 64);
        y[i] = 2.0f * y[i];
    }
    """

    static let x: [Float] = [1, -2, 3.5, 0.25]
    static let w: [Float] = [10, 20, 30, 40]

    static func bytes(_ values: [Float]) -> Data { values.withUnsafeBytes { Data($0) } }

    /// PTX for `source`: NVRTC's when it is installed, else a module that only declares the two
    /// entries (enough for the stand-in driver, which runs nothing).
    static func ptx() throws -> Data {
        CUDATools.useVenvNVRTC()
        if let ptx = try NVRTCCompiler.ptx(source: source, arch: "sm_90") { return ptx }
        return Data(".version 8.0\n.target sm_90\n.address_size 64\n.visible .entry add_0(\n)\n{\n\tret;\n}\n.visible .entry twice_1(\n)\n{\n\tret;\n}\n".utf8)
    }

    static func plan(steps: [PlanStep]? = nil, gpuArch: String? = "sm_90", withPTX: Bool = true) throws -> PlanFile {
        var weights = PlanWeightsBuilder()
        weights.append(name: "w", dtype: "f32", shape: [4], bytes: bytes(w))
        let manifest = PlanManifest(
            target: "cuda", gpuArch: gpuArch, sourceModelSha256: String(repeating: "0", count: 64), glmcVersion: "test",
            inputs: [PlanTensor(name: "x", dtype: "f32", shape: [4], buffer: 0)],
            outputs: [PlanTensor(name: "y", dtype: "f32", shape: [4], buffer: 1),
                      PlanTensor(name: "x_again", dtype: "f32", shape: [4], buffer: 0)],
            arenaBytes: 128,
            buffers: [PlanBuffer(id: 0, offset: 0, bytes: 16), PlanBuffer(id: 1, offset: 64, bytes: 16)],
            steps: steps ?? [
                PlanStep(kernel: "add_0", kind: "elementwise", arguments: [.buffer(0), .weight("w"), .buffer(1)],
                         launch: ["range": 4, "grid_x": 1, "block_x": 128, "shared_bytes": 0]),
                PlanStep(kernel: "twice_1", kind: "elementwise", arguments: [.buffer(1), .buffer(1)],
                         launch: ["range": 4, "grid_x": 2, "block_x": 2, "shared_bytes": 16]),
            ],
            weights: weights.table,
            kernelSources: [PlanKernelSource(name: "kernels.cu", language: "cuda-c")],
            metadata: ["kernel_abi": "NAME(arena, weights)"])
        return PlanFile(manifest: manifest, sources: ["kernels.cu": source],
                        code: withPTX ? ["kernels.ptx": try ptx()] : [:], weights: weights.blob)
    }

    static func inputs(_ x: [Float] = x) -> [String: HostTensor] {
        ["x": HostTensor(name: "x", dtype: "f32", shape: [4], bytes: bytes(x))]
    }

    static func floats(_ t: HostTensor) -> [Float] {
        t.bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    /// Whether this machine has NVIDIA's driver library (then the stand-in is not used).
    static let realDriverPresent: Bool = {
        guard let handle = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL) else { return false }
        dlclose(handle)
        return true
    }()

    var scratch = ""

    override func setUpWithError() throws {
        scratch = try Fixtures.temporaryDirectory("glmc-cuda-plan")
    }

    override func tearDownWithError() throws {
        if !scratch.isEmpty { try? FileManager.default.removeItem(atPath: scratch) }
        // The driver this process loaded stays loaded; glmc processes started by later tests must
        // not inherit the stand-in.
        for name in ["GLMC_LIBCUDA", "GLMC_FAKE_CUDA_LOG", "GLMC_FAKE_CUDA_DEVICES", "GLMC_FAKE_CUDA_CC", "GLMC_FAKE_CUDA_FAIL"] { unsetenv(name) }
    }

    // MARK: - Everywhere

    func testPlanChecksComeBeforeTheDriver() throws {
        var cpu = try Self.plan()
        cpu.manifest.target = "cpu"
        XCTAssertThrowsError(try CUDAExecutor(plan: cpu)) { error in
            XCTAssertEqual((error as? RuntimeError)?.message, "the plan is for target 'cpu', not cuda")
        }
        var otherABI = try Self.plan()
        otherABI.manifest.metadata["kernel_abi"] = "void k(void **args, long begin, long end)"
        XCTAssertThrowsError(try CUDAExecutor(plan: otherABI)) { error in
            XCTAssertEqual((error as? RuntimeError)?.message,
                           "the plan's kernels take 'void k(void **args, long begin, long end)', but this runtime launches 'NAME(arena, weights)'")
        }
        let noBlock = try Self.plan(steps: [PlanStep(kernel: "add_0", kind: "elementwise", arguments: [], launch: ["range": 4, "grid_x": 1])])
        XCTAssertThrowsError(try CUDAExecutor(plan: noBlock)) { error in
            XCTAssertEqual((error as? RuntimeError)?.message, "step 0 (add_0): launch has no 'block_x' (a cuda plan's steps give grid_x and block_x)")
        }
        let hugeBlock = try Self.plan(steps: [PlanStep(kernel: "add_0", kind: "elementwise", arguments: [], launch: ["grid_x": 1, "block_x": 2048])])
        XCTAssertThrowsError(try CUDAExecutor(plan: hugeBlock)) { error in
            XCTAssertEqual((error as? RuntimeError)?.message, "step 0 (add_0): launch block_x = 2048 is outside 1...1024")
        }
        let negativeGrid = try Self.plan(steps: [PlanStep(kernel: "add_0", kind: "elementwise", arguments: [], launch: ["grid_x": -1, "block_x": 32])])
        XCTAssertThrowsError(try CUDAExecutor(plan: negativeGrid)) { error in
            XCTAssertEqual((error as? RuntimeError)?.message, "step 0 (add_0): launch grid_x = -1 is outside 0...2147483647")
        }
    }

    func testInspectReportsArchAndPTXPerKernel() throws {
        let path = scratch + "/hand.plan"
        var plan = try Self.plan()
        // A third step whose kernel the PTX lacks.
        plan.manifest.steps.append(PlanStep(kernel: "absent_2", kind: "elementwise", arguments: [], launch: ["grid_x": 1, "block_x": 1]))
        try PlanWriter.write(plan, to: path)
        let r = try GLMC.run(["inspect", path, "--json"])
        assertSucceeds(r, "inspect --json")
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(object["target"] as? String, "cuda")
        XCTAssertEqual(object["gpu_arch"] as? String, "sm_90")
        let kernels = try XCTUnwrap(object["kernels"] as? [[String: Any]])
        XCTAssertEqual(kernels.map { $0["name"] as? String }, ["add_0", "twice_1", "absent_2"])
        XCTAssertEqual(kernels.map { $0["ptx"] as? Bool }, [true, true, false])
        let text = try GLMC.run(["inspect", path])
        assertSucceeds(text, "inspect")
        XCTAssertTrue(text.stdout.contains("target cuda (sm_90)"), text.stdout)
        XCTAssertTrue(text.stdout.contains("add_0: 1 launch, source cuda-c, ptx"), text.stdout)
        XCTAssertTrue(text.stdout.contains("absent_2: 1 launch, source cuda-c, no ptx"), text.stdout)
    }

    func testGPUArchIsCheckedBeforeAnythingIsBuilt() throws {
        let model = Fixtures.model("cnn.onnx")
        let out = scratch + "/never.plan"
        for bad in ["sm90", "90", "compute_90", "sm_9", "sm_9x", "sm_90A"] {
            assertFails(try GLMC.run(["convert", model, "--target", "cuda", "--gpu-arch", bad, "-o", out]),
                        containing: ["--gpu-arch \(bad): expected sm_NN (for example sm_80, sm_90)"], bad)
        }
        assertFails(try GLMC.run(["convert", model, "--target", "cpu", "--gpu-arch", "sm_90", "-o", out]),
                    containing: ["--gpu-arch applies to --target cuda, not --target cpu"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    // MARK: - Models through the plan builder

    func convertToCUDA(_ model: String, _ out: String, arch: String = "sm_90", environment: [String: String] = [:]) throws -> CLIResult {
        try GLMC.run(["convert", model, "--target", "cuda", "--gpu-arch", arch, "-o", out], timeout: 300, environment: environment)
    }

    func testCNNPlanCarriesPTXThatPtxasAssembles() throws {
        guard let nvrtc = CUDATools.useVenvNVRTC() else { throw XCTSkip("NVRTC not installed") }
        guard let ptxas = CUDATools.ptxasPath else { throw XCTSkip("ptxas not installed") }
        let out = scratch + "/cnn.plan"
        assertSucceeds(try convertToCUDA(Fixtures.model("cnn.onnx"), out, environment: ["GLMC_NVRTC": nvrtc]), "convert cnn --target cuda")
        let plan = try PlanReader.read(path: out)
        XCTAssertEqual(plan.manifest.target, "cuda")
        XCTAssertEqual(plan.manifest.gpuArch, "sm_90")
        XCTAssertEqual(plan.manifest.kernelSources.map(\.language), ["cuda-c"])
        let ptx = try XCTUnwrap(plan.code["kernels.ptx"], "no code/kernels.ptx")
        let entries = PlanSummary.ptxEntries(ptx)
        XCTAssertFalse(plan.manifest.steps.isEmpty)
        for step in plan.manifest.steps { XCTAssertTrue(entries.contains(step.kernel), "no .entry \(step.kernel)") }
        let assembled = try CUDATools.assemble(ptx, arch: "sm_90", ptxas: ptxas)
        XCTAssertEqual(assembled.status, 0, assembled.output)
    }

    func testWithoutNVRTCThePlanCarriesSourceOnly() throws {
        let out = scratch + "/cnn-source.plan"
        let r = try convertToCUDA(Fixtures.model("cnn.onnx"), out, environment: ["GLMC_NVRTC": scratch + "/no-such/libnvrtc.so.12"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stderr, "warning: \(NVRTCCompiler.missingWarning)\n")
        let plan = try PlanReader.read(path: out)
        XCTAssertNil(plan.code["kernels.ptx"])
        XCTAssertNotNil(plan.sources["kernels.cu"])
        XCTAssertTrue(PlanSummary(plan).kernels.allSatisfy { $0.ptx == false })
    }

    // MARK: - A real GPU

    func testRunsOnARealGPU() throws {
        guard Self.realDriverPresent else { throw XCTSkip("no NVIDIA driver (libcuda.so.1)") }
        if let why = CUDAExecutor.unavailableReason { throw XCTSkip(why) }
        let plan = try Self.plan(gpuArch: "sm_50")  // PTX for the oldest target runs on any device
        let executor = try CUDAExecutor(plan: plan)
        let outputs = try executor.run(inputs: Self.inputs())
        XCTAssertEqual(outputs.map(\.name), ["y", "x_again"])
        XCTAssertEqual(Self.floats(outputs[0]), zip(Self.x, Self.w).map { 2 * ($0 + $1) })
        XCTAssertEqual(Self.floats(outputs[1]), Self.x)
        XCTAssertNotNil(executor.lastStepsMilliseconds)
        // Again with other values: nothing is left over from the first run.
        let again = try executor.run(inputs: Self.inputs([0, 0, 0, 1]))
        XCTAssertEqual(Self.floats(again[0]), [20, 40, 60, 82])
    }

    // MARK: - The stand-in driver

    /// Compiles the stand-in driver and points $GLMC_LIBCUDA at it (before anything loads the
    /// driver in this process); skips where the real driver is present or no C compiler is.
    func useFakeDriver() throws -> String {
        guard !Self.realDriverPresent else { throw XCTSkip("the real NVIDIA driver is present: the stand-in is not used") }
        let library = try XCTUnwrap(Self.fakeDriver.get(), "cannot build the stand-in driver")
        setenv("GLMC_LIBCUDA", library, 1)
        let log = scratch + "/driver.log"
        setenv("GLMC_FAKE_CUDA_LOG", log, 1)
        return log
    }

    static let fakeDriver: Result<String, Error> = Result {
        guard CPUPlanTests.hasCCompiler else { throw XCTSkip("no C compiler for the stand-in driver") }
        let dir = try Fixtures.temporaryDirectory("glmc-fake-cuda")
        let library = dir + "/libcuda-fake.so"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [ProcessInfo.processInfo.environment["CC"] ?? "cc", "-shared", "-fPIC", "-O1", "-o", library,
                             Fixtures.directory + "/cuda/fake_libcuda.c"]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw RuntimeError("cc failed on fake_libcuda.c") }
        return library
    }

    func logLines(_ path: String) -> [String] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    /// FNV-1a, as the stand-in logs copies.
    func fnv1a(_ data: Data) -> String {
        var h: UInt64 = 1469598103934665603
        for b in data { h = (h ^ UInt64(b)) &* 1099511628211 }
        return String(format: "%016llx", h)
    }

    func testExecutorDrivesTheDriverAsTheABISays() throws {
        let log = try useFakeDriver()
        let plan = try Self.plan()
        do {
            let executor = try CUDAExecutor(plan: plan)
            XCTAssertEqual(executor.deviceName, "Fake GPU 0")
            XCTAssertEqual(executor.deviceArch, "sm_90")
            let load = logLines(log)
            // The arena (128 bytes) and the weights (the 16-byte section, at least 64) are device
            // allocations, both cleared; the weights are copied once, at load.
            XCTAssertEqual(load.filter { !$0.hasPrefix("ctx_") && !$0.hasPrefix("module_load") },
                           ["alloc 128", "memset 128 0", "alloc 64", "memset 64 0", "htod 16 \(fnv1a(plan.weights))"])
            XCTAssertTrue(load.contains { $0.hasPrefix("module_load ") })

            let outputs = try executor.run(inputs: Self.inputs())
            XCTAssertEqual(outputs.map(\.name), ["y", "x_again"])
            // No kernel ran: y is the cleared arena, x came back from where it was copied.
            XCTAssertEqual(Self.floats(outputs[0]), [0, 0, 0, 0])
            XCTAssertEqual(Self.floats(outputs[1]), Self.x)
            XCTAssertEqual(executor.lastStepsMilliseconds, 0.25)
            let weights16 = fnv1a(plan.weights.prefix(16))
            XCTAssertEqual(Array(logLines(log).dropFirst(load.count)), [
                "htod 16 \(fnv1a(Self.bytes(Self.x)))",
                "launch add_0 grid=1,1,1 block=128,1,1 shared=0 weights16=\(weights16) arena_is_weights=0",
                "launch twice_1 grid=2,1,1 block=2,1,1 shared=16 weights16=\(weights16) arena_is_weights=0",
                "dtoh 16 \(fnv1a(Data(count: 16)))",
                "dtoh 16 \(fnv1a(Self.bytes(Self.x)))",
            ])
            // Inputs are checked as the CPU runtime checks them, before any copy.
            let before = logLines(log).count
            XCTAssertThrowsError(try executor.run(inputs: ["x": HostTensor(name: "x", dtype: "f32", shape: [5], bytes: Data(count: 20))])) { error in
                XCTAssertEqual((error as? RuntimeError)?.message, "input 'x' is f32[5], but the plan was compiled for f32[4]")
            }
            XCTAssertEqual(logLines(log).count, before)
        }
        // Everything is released with the executor.
        let end = logLines(log).suffix(4)
        XCTAssertEqual(Array(end), ["free", "free", "module_unload", "ctx_release 0"])
    }

    func testGlmcRunOnACUDAPlan() throws {
        guard !Self.realDriverPresent else { throw XCTSkip("the real NVIDIA driver is present: the stand-in is not used") }
        let library = try XCTUnwrap(Self.fakeDriver.get(), "cannot build the stand-in driver")
        let plan = scratch + "/hand.plan", input = scratch + "/x.npy", out = scratch + "/out"
        try PlanWriter.write(try Self.plan(), to: plan)
        try NPY.write(Tensor(Self.x, shape: [4]), to: input)
        // No driver: one error line.
        assertFails(try GLMC.run(["run", plan, "--input", input, "--output-dir", out], environment: ["GLMC_LIBCUDA": scratch + "/no-libcuda.so.1"]),
                    containing: ["error: CUDA is not available: cannot load ", "no-libcuda.so.1", "is the NVIDIA driver installed?"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/output_0.npy"))
        // The stand-in: the outputs come back (y cleared, x where it was copied), timed by events.
        let r = try GLMC.run(["run", plan, "--input", input, "--output-dir", out, "--repeat", "3", "--json"],
                             environment: ["GLMC_LIBCUDA": library])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("\"engine\":\"cuda\",\"median_ms\":0.2500"), r.stdout)
        assertSameTensor(try NPY.read(path: out + "/output_0.npy"), Tensor([0, 0, 0, 0] as [Float], shape: [4]))
        assertSameTensor(try NPY.read(path: out + "/output_1.npy"), Tensor(Self.x, shape: [4]))
        // --device picks the CUDA device ordinal.
        assertSucceeds(try GLMC.run(["run", plan, "--input", input, "--output-dir", out, "--device", "0"], environment: ["GLMC_LIBCUDA": library]))
        assertFails(try GLMC.run(["run", plan, "--input", input, "--output-dir", out, "--device", "7"], environment: ["GLMC_LIBCUDA": library]),
                    containing: ["--device 7: there"])
        // A wrong input is refused as on the CPU, before any device work.
        try NPY.write(Tensor([1, 2] as [Float], shape: [2]), to: input)
        assertFails(try GLMC.run(["run", plan, "--input", input, "--output-dir", out], environment: ["GLMC_LIBCUDA": library]),
                    containing: ["input 'x' is f32[2], but the plan was compiled for f32[4]"])
        assertFails(try GLMC.run(["run", plan, "--engine", "cpu", "--input", input]),
                    containing: ["--engine cpu cannot run this plan: it is for target 'cuda'"])
    }

    func testAnEmptyGridIsNotLaunched() throws {
        let log = try useFakeDriver()
        let plan = try Self.plan(steps: [PlanStep(kernel: "add_0", kind: "elementwise", arguments: [], launch: ["range": 0, "grid_x": 0, "block_x": 32])])
        _ = try CUDAExecutor(plan: plan).run(inputs: Self.inputs())
        XCTAssertFalse(logLines(log).contains { $0.hasPrefix("launch") })
    }

    func testDriverFailuresAreOneLineErrors() throws {
        _ = try useFakeDriver()
        let plan = try Self.plan()
        func message(_ body: () throws -> Void) -> String {
            do { try body(); return "(no error)" } catch { return (error as? RuntimeError)?.message ?? "\(error)" }
        }
        XCTAssertEqual(message { _ = try CUDAExecutor(plan: plan, device: 3) }, "--device 3: there is 1 CUDA device (0...0)")
        setenv("GLMC_FAKE_CUDA_DEVICES", "0", 1)
        XCTAssertEqual(message { _ = try CUDAExecutor(plan: plan) }, "no CUDA device found")
        XCTAssertEqual(CUDAExecutor.unavailableReason, "no CUDA device found")
        setenv("GLMC_FAKE_CUDA_DEVICES", "2", 1)
        XCTAssertEqual(message { _ = try CUDAExecutor(plan: plan, device: 2) }, "--device 2: there are 2 CUDA devices (0...1)")
        setenv("GLMC_FAKE_CUDA_CC", "80", 1)
        XCTAssertEqual(message { _ = try CUDAExecutor(plan: plan, device: 1) },
                       "the plan is for sm_90, but device 1 (Fake GPU 1) is sm_80; convert it again with --gpu-arch sm_80")
        unsetenv("GLMC_FAKE_CUDA_CC")
        let missing = try Self.plan(steps: [PlanStep(kernel: "gone_7", kind: "elementwise", arguments: [], launch: ["grid_x": 1, "block_x": 1])])
        XCTAssertEqual(message { _ = try CUDAExecutor(plan: missing) },
                       "step 0: kernel 'gone_7' is missing from the plan's PTX (CUDA_ERROR_NOT_FOUND (named symbol not found))")
        setenv("GLMC_FAKE_CUDA_FAIL", "cuLaunchKernel", 1)
        let executor = try CUDAExecutor(plan: plan)
        XCTAssertEqual(message { _ = try executor.run(inputs: Self.inputs()) },
                       "step 0 (add_0): cuLaunchKernel: CUDA_ERROR_LAUNCH_FAILED (unspecified launch failure)")
        setenv("GLMC_FAKE_CUDA_FAIL", "cuEventSynchronize", 1)
        XCTAssertEqual(message { _ = try executor.run(inputs: Self.inputs()) },
                       "running the plan's steps: CUDA_ERROR_LAUNCH_FAILED (unspecified launch failure)")
        setenv("GLMC_FAKE_CUDA_FAIL", "cuModuleLoadDataEx", 1)
        XCTAssertEqual(message { _ = try CUDAExecutor(plan: plan) },
                       "cannot load the plan's PTX on device 0 (Fake GPU 0, sm_90): CUDA_ERROR_LAUNCH_FAILED (unspecified launch failure)")
    }

    func testASourceOnlyPlanIsCompiledAtLoad() throws {
        let log = try useFakeDriver()
        guard CUDATools.useVenvNVRTC() != nil, NVRTCCompiler.unavailableReason == nil else { throw XCTSkip("NVRTC not installed") }
        let plan = try Self.plan(withPTX: false)
        _ = try CUDAExecutor(plan: plan)
        // NVRTC's module (both entries found by cuModuleGetFunction) was loaded.
        XCTAssertTrue(logLines(log).contains { $0.hasPrefix("module_load ") })
        var broken = plan
        broken.sources["kernels.cu"] = Self.source.replacingOccurrences(of: "2.0f * y[i]", with: "2.0f * z[i]")
        XCTAssertThrowsError(try CUDAExecutor(plan: broken)) { error in
            let message = (error as? RuntimeError)?.message ?? "\(error)"
            XCTAssertTrue(message.hasPrefix("NVRTC cannot compile the plan's CUDA source for sm_90 (NVRTC_ERROR_COMPILATION):\n"), message)
            XCTAssertTrue(message.contains("identifier \"z\" is undefined"), message)
        }
    }
}
