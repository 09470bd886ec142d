import CONNXProto
import GLMCIR

/// A serialized ONNX `TensorProto` in a file of its own (the `.pb` files of ONNX's test data and of
/// calibration sample folders).
public enum ONNXTensorFile {
    /// Reads and decodes the tensor in `path` and returns its `name` field ("" when unset) and its
    /// data, copied out of the decoded message. External data is resolved against the file's folder.
    public static func read(path: String) throws -> (name: String, data: TensorData) {
        let file = try ByteStorage.mapping(path: path)
        guard file.count > 0 else { throw GLMCError("\(path): the file is empty") }
        guard let base = file.bytes.baseAddress,
              let message = onnx__tensor_proto__unpack(nil, file.count, base.assumingMemoryBound(to: UInt8.self)) else {
            throw GLMCError("\(path): not a serialized ONNX TensorProto (protobuf decoding failed)")
        }
        defer { onnx__tensor_proto__free_unpacked(message, nil) }
        let directory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        let decoder = ONNXTensorDecoder(baseDirectory: directory.isEmpty ? "/" : directory, messageOwner: nil)
        let data: TensorData
        do { data = try decoder.decode(UnsafePointer(message), what: "tensor") } catch let e as GLMCError {
            throw GLMCError("\(path): \(e.message)")
        }
        let name = string(message.pointee.name)
        if case .strings = data.contents { return (name, data) }
        // Copy, so nothing points into the message freed above or into a mapped external file.
        return (name, data.withRawBytes { TensorData(type: data.type, copying: $0) })
    }
}
