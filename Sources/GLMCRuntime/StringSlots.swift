import CGLMCRuntimeSupport
import Foundation

/// String tensors of a CPU plan in the arena: one pointer per element, to a `glmc_string` (an
/// `int64_t` byte count, the UTF-8 bytes, a NUL) that lives on the run's string heap. The runtime
/// builds the input strings there before the steps run, reads the output strings back after
/// them, and then frees everything the run allocated.
public enum StringSlots {
    /// Bytes of one string element in the arena (a pointer).
    public static let pointerBytes = 8
    /// Offset of a `glmc_string`'s bytes (after its `int64_t` length).
    static let bytesOffset = 8

    /// A new heap with the runtime's case mapping; nil when out of memory.
    static func makeHeap() -> UnsafeMutablePointer<glmc_string_heap>? {
        glmc_string_heap_create(changeCase, canonical)
    }

    /// Copies `text` onto `heap`; nil when out of memory.
    static func make(_ text: String, on heap: UnsafeMutablePointer<glmc_string_heap>) -> UnsafeMutablePointer<glmc_string>? {
        let utf8 = Array(text.utf8)
        guard let s = heap.pointee.alloc(heap, Int64(utf8.count)) else { return nil }
        utf8.withUnsafeBytes { src in
            if let base = src.baseAddress { (UnsafeMutableRawPointer(s) + bytesOffset).copyMemory(from: base, byteCount: src.count) }
        }
        return s
    }

    /// The text of a `glmc_string` (a null pointer reads as the empty string).
    static func text(of s: UnsafeRawPointer?) -> String {
        guard let s else { return "" }
        let length = Int(s.load(as: Int64.self))
        return String(decoding: UnsafeRawBufferPointer(start: s + bytesOffset, count: max(0, length)), as: UTF8.self)
    }

    /// Stores `strings` as new heap strings into the pointer slots at `slots`.
    static func store(_ strings: [String], into slots: UnsafeMutableRawPointer, heap: UnsafeMutablePointer<glmc_string_heap>, input: String) throws {
        for (i, text) in strings.enumerated() {
            guard let s = make(text, on: heap) else { throw RuntimeError("out of memory for the strings of input '\(input)'") }
            slots.storeBytes(of: UnsafeMutableRawPointer(s), toByteOffset: i * pointerBytes, as: UnsafeMutableRawPointer.self)
        }
    }

    /// The `count` strings the pointer slots at `slots` point to.
    static func load(count: Int, from slots: UnsafeRawPointer) -> [String] {
        (0 ..< count).map { i in text(of: slots.load(fromByteOffset: i * pointerBytes, as: UnsafeRawPointer?.self)) }
    }

    /// The heap's `canonical`: the NFC form (Swift compares strings by canonical equivalence,
    /// which is equality of NFC forms).
    static let canonical: @convention(c) (UnsafeMutablePointer<glmc_string_heap>?, UnsafePointer<glmc_string>?) -> UnsafeMutablePointer<glmc_string>? = { heap, s in
        guard let heap else { return nil }
        return make(text(of: s.map { UnsafeRawPointer($0) }).precomposedStringWithCanonicalMapping, on: heap)
    }

    /// The heap's `change_case`: Swift's `uppercased()` / `lowercased()` (Unicode's default case
    /// mapping), exactly as the interpreter's StringNormalizer changes case.
    static let changeCase: @convention(c) (UnsafeMutablePointer<glmc_string_heap>?, UnsafePointer<glmc_string>?, Int32) -> UnsafeMutablePointer<glmc_string>? = { heap, s, upper in
        guard let heap else { return nil }
        let original = text(of: s.map { UnsafeRawPointer($0) })
        return make(upper != 0 ? original.uppercased() : original.lowercased(), on: heap)
    }
}
