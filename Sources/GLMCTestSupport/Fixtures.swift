import Foundation

/// The fixture files under `Tests/Fixtures` (written by `scripts/make_bad_inputs.py`) and what glmc
/// must say about each bad one. Shared by the front-end tests (which call the importer) and the CLI
/// tests (which run the `glmc` binary), so both hold the same expectations.
public enum Fixtures {
    /// The package root, found from this source file's location.
    public static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0 ..< 3 { url.deleteLastPathComponent() } // Fixtures.swift, GLMCTestSupport, Sources
        return url.path
    }()

    public static let directory = packageRoot + "/Tests/Fixtures"

    public static func bad(_ name: String) -> String { directory + "/bad/" + name }
    public static func good(_ name: String) -> String { directory + "/good/" + name }
    public static func npy(_ name: String) -> String { directory + "/npy/" + name }
    public static func model(_ name: String) -> String { packageRoot + "/Models/" + name }

    /// The sample models in Models/, sorted.
    public static func sampleModels() -> [String] {
        let dir = packageRoot + "/Models"
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return files.filter { $0.hasSuffix(".onnx") }.sorted().map { dir + "/" + $0 }
    }

    /// The folder of the nine light model-zoo models that ship inside the `onnx` package in .venv
    /// (`$GLMC_LIGHT_MODELS_DIR` overrides it); nil when they are not installed.
    public static func lightModelsDirectory() -> String? {
        if let dir = ProcessInfo.processInfo.environment["GLMC_LIGHT_MODELS_DIR"] { return dir }
        let lib = packageRoot + "/.venv/lib"
        for python in (try? FileManager.default.contentsOfDirectory(atPath: lib)) ?? [] where python.hasPrefix("python") {
            let dir = "\(lib)/\(python)/site-packages/onnx/backend/test/data/light"
            if FileManager.default.fileExists(atPath: dir) { return dir }
        }
        return nil
    }

    /// The light model-zoo models, sorted (empty when they are not installed).
    public static func lightModels() -> [String] {
        guard let dir = lightModelsDirectory() else { return [] }
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return files.filter { $0.hasSuffix(".onnx") }.sorted().map { dir + "/" + $0 }
    }

    /// A model glmc must refuse, and the pieces its one error message must contain: what went wrong
    /// and where (tensor or node names, offsets).
    public struct BadInput: Sendable {
        public var file: String
        public var reasons: [String]
        public var path: String { Fixtures.bad(file) }
    }

    /// Every bad fixture whose refusal does not depend on the op set or on files made at test time.
    /// (`wrong_attr_cast.onnx` is refused by the Cast op's own checks, and `external_symlink/` needs
    /// its symlink made in a temporary folder; the tests handle those two separately.)
    public static let badInputs: [BadInput] = [
        BadInput(file: "empty.onnx", reasons: ["the file is empty"]),
        BadInput(file: "random_bytes.onnx", reasons: ["not a valid ONNX model", "protobuf decoding failed at byte 10 of 512"]),
        BadInput(file: "truncated.onnx", reasons: ["not a valid ONNX model", "protobuf decoding failed at byte", "truncated"]),
        BadInput(file: "undefined_tensor.onnx", reasons: ["node 'reader' (Neg)", "reads undefined tensor 'ghost'"]),
        BadInput(file: "cycle.onnx", reasons: ["cycle", "node 'node_a' (Add)"]),
        BadInput(file: "defined_twice.onnx", reasons: ["tensor 'y' is defined twice", "'first_def'", "'second_def'"]),
        BadInput(file: "short_raw_data.onnx", reasons: ["initializer 'short_w'", "has 8 bytes of data", "[2, 3] of f32 need 24"]),
        BadInput(file: "absurd_dims.onnx", reasons: ["initializer 'huge_w'", "absurd", "[1099511627776, 1099511627776]"]),
        BadInput(file: "external_escape.onnx", reasons: ["initializer 'ext_w'", "'../escape.bin'", "escapes the model's folder"]),
        BadInput(file: "external_absolute.onnx", reasons: ["initializer 'ext_w'", "'/etc/passwd'", "escapes the model's folder"]),
        BadInput(file: "external_range/model.onnx", reasons: ["initializer 'ext_w'", "range 12..<20", "'range.bin' (16 bytes)"]),
        BadInput(file: "opset999.onnx", reasons: ["opset version 999", "default ONNX domain"]),
        BadInput(file: "wrong_attr_constant.onnx", reasons: ["node 'bad_const' (Constant)", "attribute 'value_float' must be FLOAT, got INTS"]),
        BadInput(file: "no_graph.onnx", reasons: ["not a valid ONNX model", "no graph"]),
        BadInput(file: "recursive_function.onnx", reasons: ["model-local function 'local.Recurse' calls itself"]),
        BadInput(file: "deep_nesting.onnx", reasons: ["nest more than 100 levels deep", "at byte"]),
    ]

    /// A fresh temporary folder (removed by the caller).
    public static func temporaryDirectory(_ label: String = "glmc-test") throws -> String {
        let path = NSTemporaryDirectory() + "/\(label)-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// A temporary tree for the symlink cases:
    ///
    ///     <root>/outside.bin          8 bytes, outside the model's folder
    ///     <root>/model/model.onnx     a copy of bad/external_symlink/model.onnx (ext_w: f32[2] in link.bin)
    ///     <root>/model/data/inside.bin  8 bytes (1.0, 2.0 as f32), inside the model's folder
    ///     <root>/model/link.bin       a symlink to `linkTarget` (e.g. "../outside.bin", "data/inside.bin")
    ///
    /// Returns the root (remove it when done) and the model's path.
    public static func symlinkModel(linkTarget: String) throws -> (root: String, model: String) {
        let root = try temporaryDirectory("glmc-symlink")
        let fm = FileManager.default
        let two: [Float] = [1, 2]
        let bytes = two.withUnsafeBytes { Data($0) }
        try fm.createDirectory(atPath: root + "/model/data", withIntermediateDirectories: true)
        guard fm.createFile(atPath: root + "/outside.bin", contents: bytes),
              fm.createFile(atPath: root + "/model/data/inside.bin", contents: bytes) else {
            throw CocoaError(.fileWriteUnknown)
        }
        try fm.copyItem(atPath: bad("external_symlink/model.onnx"), toPath: root + "/model/model.onnx")
        try fm.createSymbolicLink(atPath: root + "/model/link.bin", withDestinationPath: linkTarget)
        return (root, root + "/model/model.onnx")
    }
}
