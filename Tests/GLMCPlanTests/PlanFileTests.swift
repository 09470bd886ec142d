import Foundation
import XCTest
@testable import GLMCPlan

/// Builds small plans and checks round trips, determinism and refusal of damaged files.
final class PlanFileTests: XCTestCase {
    static func samplePlan(target: String = "cpu") -> PlanFile {
        var weights = PlanWeightsBuilder()
        weights.append(name: "conv1.weight", dtype: "f32", shape: [2, 1, 3, 3], bytes: Data((0..<72).map { UInt8($0) }))
        weights.append(name: "conv1.bias", dtype: "f32", shape: [2], bytes: Data([1, 2, 3, 4, 5, 6, 7, 8]))
        weights.append(name: "fc.weight", dtype: "f16", shape: [3, 5], bytes: Data(repeating: 0xAB, count: 30))
        let manifest = PlanManifest(
            target: target, cpuFeatures: target == "cpu" ? ["avx2", "fma"] : [],
            gpuArch: target == "cuda" ? "sm_90" : nil,
            sourceModelSha256: SHA256Digest.hex(SHA256Digest.hash(Array("model".utf8))),
            glmcVersion: "0.1.0", pipeline: ["constant-fold", "cse", "fuse-conv-activation"],
            inputs: [PlanTensor(name: "x", dtype: "f32", shape: [1, 1, 5, 5], buffer: 0)],
            outputs: [PlanTensor(name: "y", dtype: "f32", shape: [1, 2, 3, 3], buffer: 1)],
            arenaBytes: 256,
            buffers: [PlanBuffer(id: 0, offset: 0, bytes: 100), PlanBuffer(id: 1, offset: 128, bytes: 72)],
            steps: [PlanStep(kernel: "conv_relu_0", kind: "conv2d",
                             arguments: [.buffer(0), .weight("conv1.weight"), .weight("conv1.bias"), .buffer(1)],
                             launch: ["threads": 4, "tile": 16])],
            weights: weights.table,
            kernelSources: [PlanKernelSource(name: "conv_relu_0", language: target == "cuda" ? "cuda-c" : "c")],
            metadata: ["model": "tiny.onnx", "opt_level": "2"])
        var code: [String: Data] = [:]
        if target == "cuda" { code["kernels.ptx"] = Data(Self.ptx(entries: ["conv_relu_0"]).utf8) }
        else { code["kernels.so"] = Data((0..<300).map { UInt8($0 % 251) }) }
        return PlanFile(manifest: manifest,
                        sources: ["conv_relu_0": "void conv_relu_0(float *x) { /* ... */ }\n"],
                        code: code, weights: weights.blob, calibration: "x 0.0123\ny 0.5\n")
    }

    /// A PTX module as NVRTC writes it, with one entry per name.
    static func ptx(entries: [String]) -> String {
        ".version 8.8\n.target sm_90\n.address_size 64\n\n" + entries.map { name in
            "\t// .globl\t\(name)\n.visible .entry \(name)(\n\t.param .u64 \(name)_param_0,\n\t.param .u64 \(name)_param_1\n)\n{\n\tret;\n}\n"
        }.joined()
    }

    var tmp: URL!

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("glmc-plan-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    func path(_ name: String) -> String { tmp.appendingPathComponent(name).path }

    /// Decodes `bytes` via the memory-mapping reader and returns the error message.
    func refusal(_ bytes: Data, file: StaticString = #filePath, line: UInt = #line) -> String {
        let p = path("bad-\(UUID().uuidString).glmcplan")
        XCTAssertNoThrow(try bytes.write(to: URL(fileURLWithPath: p)), file: file, line: line)
        do {
            _ = try PlanReader.read(path: p)
            XCTFail("damaged plan was accepted", file: file, line: line)
            return ""
        } catch let e as PlanError {
            // The in-memory decoder must agree.
            XCTAssertThrowsError(try PlanReader.decode(bytes), file: file, line: line)
            return e.message
        } catch {
            XCTFail("unexpected error type \(error)", file: file, line: line)
            return ""
        }
    }

    /// Replaces the trailing checksum so that structural checks behind it are reached.
    func resealed(_ bytes: Data) -> Data {
        var b = bytes
        let n = b.count - 32
        let digest = b.prefix(n).withUnsafeBytes { SHA256Digest.hash($0) }
        b.replaceSubrange(n..<b.count, with: digest)
        return b
    }

    func putLE<T: FixedWidthInteger>(_ v: T, at offset: Int, in data: inout Data) {
        withUnsafeBytes(of: v.littleEndian) { data.replaceSubrange(offset..<offset + MemoryLayout<T>.size, with: $0) }
    }

    func entry(_ name: String, in bytes: Data) throws -> (index: Int, at: Int) {
        let table = try bytes.withUnsafeBytes { try PlanReader.sectionTable($0) }.sections
        let i = try XCTUnwrap(table.firstIndex { $0.name == name })
        return (i, 64 + i * 128)
    }

    // MARK: SHA-256

    func testSHA256KnownVectors() {
        XCTAssertEqual(SHA256Digest.hex(SHA256Digest.hash([UInt8]())),
                       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256Digest.hex(SHA256Digest.hash(Array("abc".utf8))),
                       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256Digest.hex(SHA256Digest.hash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(SHA256Digest.hex(SHA256Digest.hash(Array(repeating: UInt8(ascii: "a"), count: 1_000_000))),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        // Incremental updates in odd pieces agree with one-shot hashing.
        let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        var s = SHA256Digest()
        var i = 0
        for piece in [1, 63, 64, 65, 3, 200, 604] {
            bytes[i..<i + piece].withUnsafeBytes { s.update($0) }
            i += piece
        }
        XCTAssertEqual(s.finalize(), SHA256Digest.hash(bytes))
    }

    // MARK: Round trip and determinism

    func testRoundTripThroughFile() throws {
        for target in ["cpu", "cuda", "opencl"] {
            let plan = Self.samplePlan(target: target)
            let p = path("model-\(target).glmcplan")
            try PlanWriter.write(plan, to: p)
            let back = try PlanReader.read(path: p)
            XCTAssertEqual(back.manifest, plan.manifest)
            XCTAssertEqual(back.sources, plan.sources)
            XCTAssertEqual(back.code, plan.code)
            XCTAssertEqual(back.weights, plan.weights)
            XCTAssertEqual(back.calibration, plan.calibration)
            XCTAssertEqual(back, plan)
            for w in back.manifest.weights {
                XCTAssertEqual(w.offset % 64, 0, "\(w.name)")
                XCTAssertEqual(back.weightBytes(w.name), plan.weightBytes(w.name))
            }
            XCTAssertEqual(back.weightBytes("conv1.bias"), Data([1, 2, 3, 4, 5, 6, 7, 8]))
            // Sections, hence weights, are 64-byte aligned in the file too.
            let bytes = try Data(contentsOf: URL(fileURLWithPath: p))
            let table = try bytes.withUnsafeBytes { try PlanReader.sectionTable($0) }
            XCTAssertEqual(table.version, .current)
            XCTAssertEqual(table.sections.first?.name, "manifest")
            for s in table.sections { XCTAssertEqual(s.offset % 64, 0, s.name) }
            XCTAssertEqual((bytes.count - 32) % 64, 0)
            // No temporary files are left behind.
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.path).filter { $0.hasPrefix(".") }, [])
        }
    }

    func testMinimalPlanRoundTrips() throws {
        let plan = PlanFile(manifest: PlanManifest(target: "cpu", sourceModelSha256: "", glmcVersion: "0"))
        let bytes = try PlanWriter.encode(plan)
        XCTAssertEqual(try PlanReader.decode(bytes), plan)
        try PlanWriter.write(plan, to: path("min.glmcplan"))
        XCTAssertEqual(try PlanReader.read(path: path("min.glmcplan")), plan)
    }

    func testMappedWeightsOutliveTheReaderAndCopyOnWrite() throws {
        let plan = Self.samplePlan()
        try PlanWriter.write(plan, to: path("a.glmcplan"))
        var weights = try PlanReader.read(path: path("a.glmcplan")).weights
        XCTAssertEqual(weights, plan.weights)
        weights[0] = 0xFF  // private mapping: must not write through to the file
        XCTAssertEqual(try PlanReader.read(path: path("a.glmcplan")), plan)
    }

    func testLargeWeightsStreamAndMap() throws {
        var builder = PlanWeightsBuilder()
        let big = Data((0..<(2 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        builder.append(name: "small", dtype: "i8", shape: [3], bytes: Data([1, 2, 3]))
        builder.append(name: "big", dtype: "u8", shape: [big.count], bytes: big)
        let plan = PlanFile(manifest: PlanManifest(target: "cpu", sourceModelSha256: "", glmcVersion: "0", weights: builder.table),
                            weights: builder.blob)
        try PlanWriter.write(plan, to: path("big.glmcplan"))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path("big.glmcplan"))), try PlanWriter.encode(plan))
        let back = try PlanReader.read(path: path("big.glmcplan"))
        XCTAssertEqual(back.manifest.weights.map(\.offset), [0, 64])
        XCTAssertEqual(back.weightBytes("big"), big)
    }

    func testDeterministicBytes() throws {
        let a = try PlanWriter.encode(Self.samplePlan())
        let b = try PlanWriter.encode(Self.samplePlan())
        XCTAssertEqual(a, b)
        try PlanWriter.write(Self.samplePlan(), to: path("1.glmcplan"))
        try PlanWriter.write(Self.samplePlan(), to: path("2.glmcplan"))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path("1.glmcplan"))),
                       try Data(contentsOf: URL(fileURLWithPath: path("2.glmcplan"))))
        // Manifest JSON has sorted keys.
        let json = String(decoding: try PlanWriter.manifestJSON(Self.samplePlan().manifest), as: UTF8.self)
        XCTAssertTrue(json.hasPrefix("{\"arena_bytes\":256,\"buffers\":"), json)
    }

    func testOverwriteIsAtomicReplacement() throws {
        let p = path("plan.glmcplan")
        try PlanWriter.write(Self.samplePlan(target: "cpu"), to: p)
        try PlanWriter.write(Self.samplePlan(target: "cuda"), to: p)
        XCTAssertEqual(try PlanReader.read(path: p).manifest.target, "cuda")
        XCTAssertThrowsError(try PlanWriter.write(Self.samplePlan(), to: path("no/such/dir/p.glmcplan"))) { e in
            XCTAssertTrue("\(e)".contains("cannot write"), "\(e)")
        }
    }

    // MARK: Corruption

    func testEveryFlippedByteIsRefused() throws {
        let good = try PlanWriter.encode(Self.samplePlan())
        var flagged = 0
        for offset in stride(from: 0, to: good.count, by: 1) {
            var bad = good
            bad[offset] ^= 0x5A
            do {
                _ = try PlanReader.decode(bad)
                XCTFail("flipped byte at \(offset) was accepted")
            } catch let e as PlanError {
                // Magic, version and length bytes are reported as such; everything else fails the checksum.
                if offset >= 40 || (offset >= 12 && offset < 32) {
                    XCTAssertEqual(e.message, "checksum mismatch: the plan is corrupt or was modified", "byte \(offset)")
                }
                flagged += 1
            }
        }
        XCTAssertEqual(flagged, good.count)
        // Through the file reader too, for a few offsets.
        for offset in [100, good.count / 2, good.count - 40, good.count - 1] {
            var bad = good
            bad[offset] ^= 1
            XCTAssertTrue(refusal(bad).hasSuffix(": checksum mismatch: the plan is corrupt or was modified"))
        }
    }

    func testTruncationIsRefused() throws {
        let good = try PlanWriter.encode(Self.samplePlan())
        for length in [0, 1, 7, 8, 12, 40, 95] {
            XCTAssertTrue(refusal(good.prefix(length)).contains("too small to be a plan"), "length \(length)")
        }
        for length in stride(from: 96, to: good.count, by: 37) {
            let message = refusal(good.prefix(length))
            XCTAssertTrue(message.contains("plan is truncated: the header records \(good.count) bytes but the file has \(length)"),
                          "length \(length): \(message)")
        }
        XCTAssertTrue(refusal(good.prefix(good.count - 1)).contains("truncated"))
        XCTAssertTrue(refusal(good + Data([0])).contains("trailing bytes"))
    }

    func testWrongMagicAndFutureVersion() throws {
        let good = try PlanWriter.encode(Self.samplePlan())
        var bad = good
        bad.replaceSubrange(0..<8, with: Array("GLMCPLAX".utf8))
        XCTAssertTrue(refusal(bad).contains("does not start with the magic \"GLMCPLAN\""))
        XCTAssertTrue(refusal(Data(repeating: 0, count: 200)).contains("magic"))

        var future = good
        putLE(UInt32(2), at: 8, in: &future)
        let message = refusal(resealed(future))
        XCTAssertTrue(message.contains("plan format version 2.\(PlanFormatVersion.current.minor) is not supported"), message)
        XCTAssertTrue(message.contains("reads version 1.x"), message)

        // A newer minor version is accepted (with the checksum recomputed).
        var minor = good
        putLE(UInt32(7), at: 12, in: &minor)
        XCTAssertEqual(try PlanReader.decode(resealed(minor)), Self.samplePlan())
    }

    func testBadSectionTablesAreRefused() throws {
        let good = try PlanWriter.encode(Self.samplePlan())
        let weights = try entry("weights", in: good)
        let manifest = try entry("manifest", in: good)
        let code = try entry("code/kernels.so", in: good)

        // Offset past the end.
        var bad = good
        putLE(UInt64(good.count - 32 + 64 * 10), at: weights.at + 112, in: &bad)
        XCTAssertTrue(refusal(resealed(bad)).contains("section 'weights'"), refusal(resealed(bad)))
        XCTAssertTrue(refusal(resealed(bad)).contains("lies outside the section area"))

        // Length past the end.
        bad = good
        putLE(UInt64(good.count), at: weights.at + 120, in: &bad)
        XCTAssertTrue(refusal(resealed(bad)).contains("lies outside"))

        // Overflowing offset + length.
        bad = good
        putLE(UInt64.max - 63, at: weights.at + 112, in: &bad)
        putLE(UInt64.max, at: weights.at + 120, in: &bad)
        XCTAssertTrue(refusal(resealed(bad)).contains("lies outside"))
        bad = good
        putLE(UInt64(1 << 62), at: weights.at + 120, in: &bad)
        XCTAssertTrue(refusal(resealed(bad)).contains("lies outside"))

        // Misaligned.
        bad = good
        var off = bad.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: code.at + 112, as: UInt64.self)) }
        putLE(off + 8, at: code.at + 112, in: &bad)
        XCTAssertTrue(refusal(resealed(bad)).contains("not a multiple of 64"))

        // Overlapping: move the code section onto the manifest.
        bad = good
        off = bad.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: manifest.at + 112, as: UInt64.self)) }
        putLE(off, at: code.at + 112, in: &bad)
        XCTAssertTrue(refusal(resealed(bad)).contains("overlap"), refusal(resealed(bad)))

        // Pointing into the header or the table.
        bad = good
        putLE(UInt64(64), at: code.at + 112, in: &bad)
        XCTAssertTrue(refusal(resealed(bad)).contains("lies outside the section area"))

        // Duplicate names.
        bad = good
        let name = Array("weights".utf8) + [UInt8](repeating: 0, count: 112 - 7)
        bad.replaceSubrange(code.at..<code.at + 112, with: name)
        XCTAssertTrue(refusal(resealed(bad)).contains("duplicate section 'weights'"))

        // Invalid names: empty, garbage after the terminator, invalid UTF-8.
        for patch in [[UInt8](repeating: 0, count: 112), [0x61, 0, 0x62] + [UInt8](repeating: 0, count: 109),
                      [0xFF, 0xFE] + [UInt8](repeating: 0, count: 110)] {
            bad = good
            bad.replaceSubrange(code.at..<code.at + 112, with: patch)
            XCTAssertTrue(refusal(resealed(bad)).contains("invalid name"))
        }

        // Absurd section counts, table offsets and header sizes.
        for count in [UInt32(70_000), UInt32.max] {
            bad = good
            putLE(count, at: 20, in: &bad)
            XCTAssertTrue(refusal(resealed(bad)).contains("section count"))
        }
        bad = good
        putLE(UInt32(1000), at: 20, in: &bad)
        XCTAssertTrue(refusal(resealed(bad)).contains("extends past the end"))
        for tableOffset in [UInt64(0), UInt64(good.count), UInt64.max] {
            bad = good
            putLE(tableOffset, at: 24, in: &bad)
            XCTAssertFalse(refusal(resealed(bad)).isEmpty)
        }
        bad = good
        putLE(UInt32(48), at: 16, in: &bad)
        XCTAssertTrue(refusal(resealed(bad)).contains("header size"))

        // A missing manifest.
        bad = good
        bad[manifest.at] = UInt8(ascii: "M")
        XCTAssertTrue(refusal(resealed(bad)).contains("no 'manifest' section"))
    }

    /// Random damage behind a valid checksum: the reader answers with a plan or a `PlanError`, never a crash.
    func testRandomDamageWithValidChecksumNeverCrashes() throws {
        let good = try PlanWriter.encode(Self.samplePlan())
        let structural = 64 + 5 * 128 + 700  // header, table and most of the manifest
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        var refused = 0
        for _ in 0..<1500 {
            var bad = good
            for _ in 0..<(1 + Int(next() % 4)) {
                let at = 16 + Int(next() % UInt64(structural - 16))
                bad[at] = UInt8(truncatingIfNeeded: next())
            }
            do { _ = try PlanReader.decode(resealed(bad)) } catch is PlanError { refused += 1 }
        }
        XCTAssertGreaterThan(refused, 0)
    }

    /// Rebuilds a file around a replaced manifest JSON (bypassing the writer's validation).
    func withManifest(_ json: String, extraSections: [(name: String, bytes: Data)] = []) throws -> Data {
        let plan = Self.samplePlan()
        var sections = try PlanWriter.sections(of: plan)
        sections[0].bytes = Data(json.utf8)
        sections.insert(contentsOf: extraSections, at: 1)
        var out = Data()
        var cursor = 64 + sections.count * 128
        var offsets: [Int] = []
        for s in sections { cursor = PlanLayout.align(cursor); offsets.append(cursor); cursor += s.bytes.count }
        let end = PlanLayout.align(cursor)
        out.append(contentsOf: PlanLayout.magic)
        out.appendLE(UInt32(1)); out.appendLE(UInt32(0)); out.appendLE(UInt32(64)); out.appendLE(UInt32(sections.count))
        out.appendLE(UInt64(64)); out.appendLE(UInt64(end + 32)); out.append(Data(count: 24))
        for (s, o) in zip(sections, offsets) {
            let n = Array(s.name.utf8)
            out.append(contentsOf: n); out.append(Data(count: 112 - n.count)); out.appendLE(UInt64(o)); out.appendLE(UInt64(s.bytes.count))
        }
        for (s, o) in zip(sections, offsets) { out.append(Data(count: o - out.count)); out.append(s.bytes) }
        out.append(Data(count: end - out.count))
        out.append(contentsOf: out.withUnsafeBytes { SHA256Digest.hash($0) })
        return out
    }

    func testBadManifestsAreRefused() throws {
        let json = String(decoding: try PlanWriter.manifestJSON(Self.samplePlan().manifest), as: UTF8.self)
        // Sanity: the hand-built file with the real manifest is accepted.
        XCTAssertEqual(try PlanReader.decode(try withManifest(json)), Self.samplePlan())
        // A newer minor version's extra keys and sections are ignored.
        let newer = "{\"future_key\":[1,{\"x\":2}]," + json.dropFirst()
        XCTAssertEqual(try PlanReader.decode(try withManifest(newer, extraSections: [("future/thing", Data([1, 2, 3]))])),
                       Self.samplePlan())
        XCTAssertEqual(try PlanReader.read(path: { () throws -> String in
            let p = path("newer.glmcplan")
            try withManifest(newer, extraSections: [("future/thing", Data([1, 2, 3]))]).write(to: URL(fileURLWithPath: p))
            return p
        }()), Self.samplePlan())
        // Invalid UTF-8 in a source section.
        var table = try withManifest(json)
        let source = try entry("source/conv_relu_0", in: table)
        let sourceOffset = table.withUnsafeBytes { Int($0.loadUnaligned(fromByteOffset: source.at + 112, as: UInt64.self)) }
        table[sourceOffset] = 0xFF
        XCTAssertTrue(refusal(resealed(table)).contains("section 'source/conv_relu_0' is not valid UTF-8"))

        func check(_ manifest: String, _ expected: String, line: UInt = #line) throws {
            let message = refusal(try withManifest(manifest), line: line)
            XCTAssertTrue(message.contains(expected), "\(message) does not contain \(expected)", line: line)
        }
        try check("{not json", "manifest is invalid")
        try check("", "manifest is invalid")
        try check("[1,2,3]", "manifest is invalid")
        try check(String(repeating: "[", count: 100_000), "manifest is invalid")
        try check(json.replacingOccurrences(of: "\"target\":\"cpu\"", with: "\"target\":\"tpu\""), "unknown target 'tpu'")
        try check(json.replacingOccurrences(of: "\"arena_bytes\":256", with: "\"arena_bytes\":100"), "lies outside the 100-byte arena")
        try check(json.replacingOccurrences(of: "\"arena_bytes\":256", with: "\"arena_bytes\":\"x\""), "arena_bytes")
        try check(json.replacingOccurrences(of: "\"arena_bytes\":256,", with: ""), "missing key 'arena_bytes'")
        try check(json.replacingOccurrences(of: "\"arena_bytes\":256", with: "\"arena_bytes\":99999999999999999999999"), "manifest is invalid")
        try check(json.replacingOccurrences(of: "{\"weight\":\"conv1.bias\"}", with: "{\"weight\":\"nope\"}"), "unknown weight 'nope'")
        try check(json.replacingOccurrences(of: "{\"weight\":\"conv1.bias\"}", with: "{\"buffer\":9}"), "unknown buffer 9")
        try check(json.replacingOccurrences(of: "{\"weight\":\"conv1.bias\"}", with: "{\"buffer\":1,\"weight\":\"x\"}"), "exactly one")
        try check(json.replacingOccurrences(of: "\"offset\":128,\"shape\":[2]", with: "\"offset\":129,\"shape\":[2]"), "not a multiple of 64")
        try check(json.replacingOccurrences(of: "\"offset\":192,\"shape\":[3,5]", with: "\"offset\":9223372036854775744,\"shape\":[3,5]"),
                  "lies outside the")
        try check(json.replacingOccurrences(of: "\"major\":1", with: "\"major\":3"), "manifest format version 3.\(PlanFormatVersion.current.minor)")
        try check(json.replacingOccurrences(of: "\"name\":\"conv_relu_0\"", with: "\"name\":\"other\""), "kernel source 'other' has no section")
    }

    /// String tensors and the string heap argument (cpu plans only): they round-trip, and the
    /// reader refuses them elsewhere or with a buffer that is not a pointer per element.
    func testStringTensorsAndTheStringHeap() throws {
        var plan = Self.samplePlan()
        plan.manifest.inputs.append(PlanTensor(name: "s", dtype: "string", shape: [2, 3], buffer: 2))
        plan.manifest.buffers.append(PlanBuffer(id: 2, offset: 192, bytes: 48))
        plan.manifest.arenaBytes = 256
        plan.manifest.steps[0].arguments.append(.stringHeap)
        XCTAssertEqual(try PlanReader.decode(try PlanWriter.encode(plan)), plan)
        let json = String(decoding: try PlanWriter.manifestJSON(plan.manifest), as: UTF8.self)
        XCTAssertTrue(json.contains("{\"string_heap\":true}"), json)
        func check(_ manifest: String, _ expected: String, line: UInt = #line) throws {
            let message = refusal(try withManifest(manifest), line: line)
            XCTAssertTrue(message.contains(expected), "\(message) does not contain \(expected)", line: line)
        }
        try check(json.replacingOccurrences(of: "{\"string_heap\":true}", with: "{\"string_heap\":false}"), "must be true")
        try check(json.replacingOccurrences(of: "{\"string_heap\":true}", with: "{\"string_heap\":true,\"buffer\":1}"), "exactly one")
        try check(json.replacingOccurrences(of: "\"bytes\":48", with: "\"bytes\":40"), "needs a buffer of 8 bytes (a pointer) per element")
        var gpu = plan
        gpu.manifest.target = "opencl"
        XCTAssertThrowsError(try PlanWriter.encode(gpu)) { XCTAssertTrue("\($0)".contains("only cpu plans have"), "\($0)") }
        gpu.manifest.steps[0].arguments.removeLast()
        XCTAssertThrowsError(try PlanWriter.encode(gpu)) { XCTAssertTrue("\($0)".contains("string tensor, which only cpu plans have"), "\($0)") }
    }

    func testWriterRefusesInconsistentPlans() {
        var plan = Self.samplePlan()
        plan.manifest.weights[0].offset = 1
        XCTAssertThrowsError(try PlanWriter.encode(plan)) { XCTAssertTrue("\($0)".contains("not a multiple of 64")) }
        plan = Self.samplePlan()
        plan.sources["extra"] = "x"
        XCTAssertThrowsError(try PlanWriter.encode(plan)) { XCTAssertTrue("\($0)".contains("not listed")) }
        plan = Self.samplePlan()
        plan.code[String(repeating: "k", count: 200)] = Data()
        XCTAssertThrowsError(try PlanWriter.encode(plan)) { XCTAssertTrue("\($0)".contains("section name")) }
        XCTAssertThrowsError(try PlanReader.read(path: path("missing.glmcplan"))) { XCTAssertTrue("\($0)".contains("cannot open")) }
        XCTAssertThrowsError(try PlanReader.read(path: tmp.path)) { XCTAssertTrue("\($0)".contains("not a regular file")) }
        XCTAssertEqual(mkfifo(path("fifo"), 0o600), 0)
        XCTAssertThrowsError(try PlanReader.read(path: path("fifo"))) { XCTAssertTrue("\($0)".contains("not a regular file")) }
    }

    // MARK: Summary

    func testSummaryJSONAndText() throws {
        let cpu = PlanSummary(Self.samplePlan(target: "cpu"))
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(cpu.json().utf8)) as? [String: Any])
        for key in ["target", "kernels", "arena_bytes", "weights_bytes", "inputs", "outputs", "gpu_arch"] {
            XCTAssertNotNil(object[key], key)
        }
        XCTAssertEqual(object["target"] as? String, "cpu")
        XCTAssertEqual(object["arena_bytes"] as? Int, 256)
        XCTAssertEqual(object["weights_bytes"] as? Int, Self.samplePlan().weights.count)
        XCTAssertTrue(object["gpu_arch"] is NSNull)
        let kernels = try XCTUnwrap(object["kernels"] as? [[String: Any]])
        XCTAssertEqual(kernels.count, 1)
        XCTAssertEqual(kernels[0]["name"] as? String, "conv_relu_0")
        XCTAssertNil(kernels[0]["ptx"])
        XCTAssertTrue(cpu.text.contains("target cpu"))
        XCTAssertTrue(cpu.text.contains("x: f32[1, 1, 5, 5] (buffer 0)"), cpu.text)
        XCTAssertTrue(cpu.text.contains("arena: 256 bytes in 2 buffers"))

        let cuda = PlanSummary(Self.samplePlan(target: "cuda"))
        let cudaObject = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(cuda.json().utf8)) as? [String: Any])
        XCTAssertEqual(cudaObject["gpu_arch"] as? String, "sm_90")
        let cudaKernels = try XCTUnwrap(cudaObject["kernels"] as? [[String: Any]])
        XCTAssertEqual(cudaKernels[0]["ptx"] as? Bool, true)
        XCTAssertTrue(cuda.text.contains("(sm_90)"))
        XCTAssertTrue(cuda.text.contains("conv_relu_0: 1 launch, source cuda-c, ptx"), cuda.text)
        var noPTX = Self.samplePlan(target: "cuda")
        noPTX.code = [:]
        XCTAssertEqual(PlanSummary(noPTX).kernels[0].ptx, false)
        XCTAssertTrue(PlanSummary(noPTX).text.contains("conv_relu_0: 1 launch, source cuda-c, no ptx"))
        // A module that lacks the step's entry (only mentions it) does not count.
        var otherEntry = Self.samplePlan(target: "cuda")
        otherEntry.code = ["kernels.ptx": Data((Self.ptx(entries: ["other_1"]) + "// conv_relu_0\n").utf8)]
        XCTAssertEqual(PlanSummary(otherEntry).kernels[0].ptx, false)
        XCTAssertEqual(PlanSummary.ptxEntries(Data(Self.ptx(entries: ["a_0", "b$1"]).utf8)), ["a_0", "b$1"])
        XCTAssertEqual(PlanSummary.ptxEntries(Data(".weak .entry w(\n".utf8)), ["w"])
    }
}
