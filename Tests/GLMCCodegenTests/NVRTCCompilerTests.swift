import Foundation
import GLMCCodegen
import GLMCIR
import GLMCTestSupport
import XCTest

/// NVRTC (the venv's, via GLMC_NVRTC) and ptxas on CUDA sources written to the GPU plan ABI
/// (`extern "C" __global__ void NAME(unsigned char *arena, unsigned char *weights)`). Skipped where
/// the wheels are not installed.
final class NVRTCCompilerTests: XCTestCase {
    /// Two entries as a plan's kernels.cu holds them: offsets baked in, work items past `range`
    /// return at once, plain helper functions (device functions through -default-device), and
    /// half precision through PTX's cvt, as glmc's kernels convert halves (no CUDA headers).
    static let source = """
    static inline float relu(float x) { return x > 0.0f ? x : 0.0f; }
    static inline unsigned short to_half(float f) { unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }

    extern "C" __global__ void add_relu_0(unsigned char *arena, unsigned char *weights) {
        long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i >= 1000) return;
        const float *x = (const float *)(arena + 0);
        const float *w = (const float *)(weights + 64);
        float *y = (float *)(arena + 4032);
        y[i] = relu(x[i] + w[i]);
    }

    extern "C" __global__ void to_half_1(unsigned char *arena, unsigned char *weights) {
        long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i >= 1000) return;
        const float *y = (const float *)(arena + 4032);
        unsigned short *h = (unsigned short *)(arena + 8064);
        h[i] = to_half(y[i] / 3.0f);
    }
    """

    override func setUpWithError() throws {
        guard CUDATools.useVenvNVRTC() != nil else { throw XCTSkip("NVRTC not installed (nvidia-cuda-nvrtc-cu12 in .venv, or GLMC_NVRTC)") }
        guard NVRTCCompiler.unavailableReason == nil else { throw XCTSkip("NVRTC does not load: \(NVRTCCompiler.unavailableReason!)") }
    }

    func testArchForms() {
        for good in ["sm_80", "sm_90", "sm_100", "sm_75", "sm_90a", "sm_100f"] { XCTAssertTrue(NVRTCCompiler.isValidArch(good), good) }
        for bad in ["80", "sm80", "sm_", "sm_8", "sm_1000", "compute_90", "sm_9a", "SM_90", "sm_٩٠", "sm_90A", "sm_90ab"] {
            XCTAssertFalse(NVRTCCompiler.isValidArch(bad), bad)
        }
        XCTAssertThrowsError(try NVRTCCompiler.ptx(source: Self.source, arch: "sm90")) { error in
            XCTAssertEqual((error as? GLMCError)?.message, "--gpu-arch sm90: expected sm_NN (for example sm_80, sm_90)")
        }
    }

    func testPTXHoldsEveryEntryForTheArchitecture() throws {
        let ptx = try XCTUnwrap(try NVRTCCompiler.ptx(source: Self.source, arch: "sm_90"))
        let text = String(decoding: ptx, as: UTF8.self)
        XCTAssertTrue(text.contains(".target sm_90"), text.prefix(400).description)
        XCTAssertTrue(text.contains(".entry add_relu_0("))
        XCTAssertTrue(text.contains(".entry to_half_1("))
        // The helper is inlined or a .func, never an entry.
        XCTAssertFalse(text.contains(".entry relu"))
        XCTAssertFalse(ptx.contains(0), "the PTX is text without its NUL")
        // Another architecture gives another target line.
        let ptx80 = String(decoding: try XCTUnwrap(try NVRTCCompiler.ptx(source: Self.source, arch: "sm_80")), as: UTF8.self)
        XCTAssertTrue(ptx80.contains(".target sm_80"))
        // The architecture-specific feature set of Hopper.
        let ptx90a = String(decoding: try XCTUnwrap(try NVRTCCompiler.ptx(source: Self.source, arch: "sm_90a")), as: UTF8.self)
        XCTAssertTrue(ptx90a.contains(".target sm_90a"))
    }

    func testPtxasAssemblesThePTX() throws {
        guard let ptxas = CUDATools.ptxasPath else { throw XCTSkip("ptxas not installed (nvidia-cuda-nvcc-cu12 in .venv)") }
        let ptx = try XCTUnwrap(try NVRTCCompiler.ptx(source: Self.source, arch: "sm_90"))
        let result = try CUDATools.assemble(ptx, arch: "sm_90", ptxas: ptxas)
        XCTAssertEqual(result.status, 0, result.output)
        // And ptxas is a real check: PTX with an undeclared register is refused.
        let broken = Data(String(decoding: ptx, as: UTF8.self).replacingOccurrences(of: "ret;", with: "mov.u32 %glmc_undeclared, 1;\n\tret;").utf8)
        XCTAssertNotEqual(try CUDATools.assemble(broken, arch: "sm_90", ptxas: ptxas).status, 0)
    }

    func testCompileErrorCarriesTheLog() {
        let bad = Self.source.replacingOccurrences(of: "y[i] = relu(x[i] + w[i]);", with: "y[i] = relu(x[i] + undeclared_weight[i]);")
        XCTAssertThrowsError(try NVRTCCompiler.ptx(source: bad, arch: "sm_90")) { error in
            let message = (error as? GLMCError)?.message ?? "\(error)"
            XCTAssertTrue(message.hasPrefix("NVRTC cannot compile the CUDA kernels for sm_90 (NVRTC_ERROR_COMPILATION)"), message)
            XCTAssertTrue(message.contains("undeclared_weight"), message)
            XCTAssertTrue(message.contains("kernels.cu("), "the log names the line: \(message)")
        }
    }

    func testLongLogsAreCut() {
        // 40 distinct errors: the message keeps 30 lines of the log and counts the rest.
        let body = (0 ..< 40).map { "    int v\($0) = missing_\($0);" }.joined(separator: "\n")
        let source = "extern \"C\" __global__ void k(unsigned char *arena, unsigned char *weights) {\n\(body)\n}\n"
        XCTAssertThrowsError(try NVRTCCompiler.ptx(source: source, arch: "sm_90")) { error in
            let message = (error as? GLMCError)?.message ?? "\(error)"
            let lines = message.split(separator: "\n")
            XCTAssertEqual(lines.count, 1 + 30 + 1, message)
            XCTAssertTrue(lines.last?.hasPrefix("... (") == true && lines.last?.hasSuffix(" more lines)") == true, message)
        }
    }

    func testUnsupportedArchitectureIsAnError() {
        // Well-formed but not an architecture NVRTC 12 compiles for.
        XCTAssertThrowsError(try NVRTCCompiler.ptx(source: Self.source, arch: "sm_20")) { error in
            XCTAssertTrue(((error as? GLMCError)?.message ?? "").hasPrefix("NVRTC cannot compile the CUDA kernels for sm_20"), "\(error)")
        }
    }
}
