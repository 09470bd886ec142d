import Foundation
import GLMCIR
import GLMCOps
import GLMCTorchScript

/// Opens any model glmc reads, choosing the front end by content, not by file extension:
/// a zip (`PK\u{3}\u{4}`) is a TorchScript archive, text starting with `graph(` is TorchScript IR
/// text, glmc IR text starts with `opsets`, `module`, `func` or a `//` comment; anything else is
/// decoded as an ONNX protobuf.
public enum ModelLoader {
    public enum Format: String, Sendable {
        case onnx, irText = "glmc IR text", torchScriptArchive = "TorchScript archive", torchScriptText = "TorchScript IR text"
    }

    public static func detectFormat(path: String) throws -> Format {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw GLMCError("\(path): no such file")
        }
        if isDirectory.boolValue { throw GLMCError("\(path): is a directory, not a model file") }
        // Opening a FIFO or a device would block or read forever: only regular files are models.
        if let why = notRegularFileReason(path) { throw GLMCError("\(path): \(why)") }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw GLMCError("\(path): cannot be read (permission denied?)")
        }
        defer { try? handle.close() }
        let head = (try? handle.read(upToCount: 256)) ?? Data()
        guard !head.isEmpty else { throw GLMCError("\(path): the file is empty") }
        if head.starts(with: [0x50, 0x4b, 0x03, 0x04]) { return .torchScriptArchive }
        let text = String(decoding: head, as: UTF8.self).drop(while: { $0.isWhitespace })
        if text.hasPrefix("graph(") { return .torchScriptText }
        for keyword in ["opsets", "module", "func", "//"] where text.hasPrefix(keyword) { return .irText }
        return .onnx
    }

    /// `torchScriptInputs` gives sizes and element types of TorchScript inputs the model leaves
    /// open (frozen archives record none); other formats take `--input-shape` after loading.
    public static func load(path: String, allowUnsupported: Bool = false,
                            torchScriptInputs: [String: TorchScriptInput] = [:]) throws -> ImportResult {
        switch try detectFormat(path: path) {
        case .torchScriptArchive:
            return try ImportResult(checking: TorchScriptImporter.importArchive(path: path, inputs: torchScriptInputs),
                                    allowUnsupported: allowUnsupported)
        case .torchScriptText:
            guard let data = FileManager.default.contents(atPath: path) else { throw GLMCError("\(path): cannot read") }
            let module = try TorchScriptImporter.importGraphText(String(decoding: data, as: UTF8.self), path: path,
                                                                 inputs: torchScriptInputs)
            return try ImportResult(checking: module, allowUnsupported: allowUnsupported)
        case .onnx:
            do {
                return try ONNXImporter.importModel(path: path, allowUnsupported: allowUnsupported)
            } catch let e as GLMCError {
                throw e.message.hasPrefix(path) ? e : GLMCError("\(path): \(e.message)")
            }
        case .irText:
            guard let data = FileManager.default.contents(atPath: path) else { throw GLMCError("\(path): cannot read") }
            let directory = (path as NSString).deletingLastPathComponent
            let module: Module
            do {
                module = try Parser.parse(String(decoding: data, as: UTF8.self),
                                          baseDirectory: directory.isEmpty ? "." : directory)
            } catch let e as GLMCError {
                throw GLMCError("\(path):\(e.message)")
            }
            return try ImportResult(checking: module, allowUnsupported: allowUnsupported)
        }
    }
}
