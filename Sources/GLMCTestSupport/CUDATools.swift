import Foundation

/// NVIDIA's NVRTC and ptxas as the project venv holds them (the `nvidia-cuda-nvrtc-cu12` and
/// `nvidia-cuda-nvcc-cu12` wheels in scripts/requirements.txt). Tests that need them skip when
/// they are absent.
public enum CUDATools {
    /// The venv's site-packages/nvidia folder, if installed.
    static func nvidiaDirectory() -> String? {
        let lib = Fixtures.packageRoot + "/.venv/lib"
        for python in ((try? FileManager.default.contentsOfDirectory(atPath: lib)) ?? []).sorted() where python.hasPrefix("python") {
            let dir = "\(lib)/\(python)/site-packages/nvidia"
            if FileManager.default.fileExists(atPath: dir) { return dir }
        }
        return nil
    }

    /// The NVRTC library: `$GLMC_NVRTC`, else the venv's `libnvrtc.so.12`; nil when neither exists.
    public static var nvrtcPath: String? {
        if let path = ProcessInfo.processInfo.environment["GLMC_NVRTC"], !path.isEmpty {
            return FileManager.default.fileExists(atPath: path) ? path : nil
        }
        guard let dir = nvidiaDirectory() else { return nil }
        let path = dir + "/cuda_nvrtc/lib/libnvrtc.so.12"
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }

    /// Points `GLMC_NVRTC` at `nvrtcPath` for this process (and the glmc processes it starts), so
    /// glmc finds the venv's NVRTC. Call it before anything loads NVRTC. Returns the path, or nil.
    @discardableResult
    public static func useVenvNVRTC() -> String? {
        guard let path = nvrtcPath else { return nil }
        setenv("GLMC_NVRTC", path, 1)
        return path
    }

    /// The venv's ptxas (`$PTXAS` overrides it); nil when absent.
    public static var ptxasPath: String? {
        if let path = ProcessInfo.processInfo.environment["PTXAS"], !path.isEmpty {
            return FileManager.default.isExecutableFile(atPath: path) ? path : nil
        }
        guard let dir = nvidiaDirectory() else { return nil }
        let path = dir + "/cuda_nvcc/bin/ptxas"
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }

    /// Runs `ptxas -arch=ARCH -o /dev/null` on `ptx`; returns its status and what it printed.
    public static func assemble(_ ptx: Data, arch: String, ptxas: String) throws -> (status: Int32, output: String) {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("glmc-\(UUID().uuidString).ptx")
        try ptx.write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ptxas)
        process.arguments = ["-arch=\(arch)", "-o", "/dev/null", file.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }
}
