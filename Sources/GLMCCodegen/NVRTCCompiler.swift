import Foundation

/// Placeholder until the NVRTC loader lands: reports NVRTC as not found, so CUDA plans carry source only.
public enum NVRTCCompiler {
    public static func ptx(source: String, arch: String) throws -> Data? { nil }
}
