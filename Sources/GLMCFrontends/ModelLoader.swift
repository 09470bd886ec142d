import Foundation
import GLMCIR
import GLMCOps

/// Opens any model glmc reads, choosing the front end by content, not by file extension:
/// glmc IR text starts with `opsets`, `module`, `func` or a `//` comment; anything else is
/// decoded as an ONNX protobuf.
public enum ModelLoader {
    public enum Format: String, Sendable { case onnx, irText = "glmc IR text" }

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
        let text = String(decoding: head, as: UTF8.self).drop(while: { $0.isWhitespace })
        for keyword in ["opsets", "module", "func", "//"] where text.hasPrefix(keyword) { return .irText }
        return .onnx
    }

    public static func load(path: String, allowUnsupported: Bool = false) throws -> ImportResult {
        switch try detectFormat(path: path) {
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
