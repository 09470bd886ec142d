import CGLMCCUDA
import Foundation
import GLMCIR

/// Compiles a CUDA plan's source to PTX with NVRTC at convert time.
///
/// NVRTC is loaded with `dlopen` at first use (see `glmc_cuda.h`): `$GLMC_NVRTC` if set, else
/// `libnvrtc.so.12` / `libnvrtc.so` on the library path or in /usr/local/cuda/lib64. Without it the
/// compiler still writes CUDA plans, holding the source only (a runtime with NVRTC compiles them at
/// load). The options are fixed in `glmc_nvrtc_compile`: PTX for the virtual architecture
/// `compute_XX` of `--gpu-arch sm_XX`, `-default-device`, C++17, no fast math.
public enum NVRTCCompiler {
    /// The warning the CLI prints when a CUDA plan is written without PTX.
    public static let missingWarning = "NVRTC not found (set GLMC_NVRTC=/path/libnvrtc.so.12); the plan carries CUDA source only"

    /// Whether `arch` has the form `sm_NN` or `sm_NNN`, optionally with a feature-set letter
    /// (`sm_90a`): what `--gpu-arch` accepts. NVRTC gets `compute_` and the same suffix.
    public static func isValidArch(_ arch: String) -> Bool {
        arch.wholeMatch(of: /sm_[0-9]{2,3}[a-z]?/) != nil
    }

    /// Why NVRTC cannot be used (nil when it loads).
    public static var unavailableReason: String? {
        var why = [CChar](repeating: 0, count: 1024)
        if glmc_nvrtc_load(&why, why.count) != 0 { return nil }
        return why.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// NVRTC's version ("12.9"), nil when it is not found.
    public static var version: String? {
        guard unavailableReason == nil else { return nil }
        var major: Int32 = 0, minor: Int32 = 0
        guard glmc_nvrtc_version(&major, &minor) != 0 else { return nil }
        return "\(major).\(minor)"
    }

    /// PTX for `source` (one module holding every `extern "C" __global__` entry), for `arch`
    /// (`sm_NN`). Nil when NVRTC is not found; a compile error throws with the first lines of
    /// NVRTC's log.
    public static func ptx(source: String, arch: String) throws -> Data? {
        guard isValidArch(arch) else {
            throw GLMCError("--gpu-arch \(arch): expected sm_NN (for example sm_80, sm_90)")
        }
        guard unavailableReason == nil else { return nil }
        var ptx: UnsafeMutablePointer<CChar>?
        var size = 0
        var log: UnsafeMutablePointer<CChar>?
        var errorName: UnsafePointer<CChar>?
        let status = glmc_nvrtc_compile(source, "kernels.cu", arch, &ptx, &size, &log, &errorName)
        defer { free(ptx); free(log) }
        guard status == 0, let ptx else {
            let name = errorName.map { String(cString: $0) } ?? "status \(status)"
            // The log comes cut to its first lines (GLMC_NVRTC_LOG_LINES).
            let text = log.map { ":\n" + String(cString: $0) } ?? ""
            throw GLMCError("NVRTC cannot compile the CUDA kernels for \(arch) (\(name))" + text)
        }
        return Data(bytes: ptx, count: size)
    }
}
