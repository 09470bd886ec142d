import Foundation
import GLMCCodegen
import GLMCInterpreter
import GLMCIR
import GLMCOps
import GLMCPlan
import GLMCRuntime
import XCTest

/// StringSplit and StringNormalizer with stop words in CPU plans: results bounded like NonZero's
/// (maxsplit, the input's length) or, for StringSplit without maxsplit, heap-resident (the
/// elements on the string heap, a -1 dim in the manifest); compared with the interpreter element
/// for element, on inputs far wider than the conformance cases, with the executor reused across
/// runs of different widths.
final class StringValueShapedPlanTests: XCTestCase {
    let options = CPUPlanOptions(sourceModelSha256: String(repeating: "0", count: 64), glmcVersion: "test")

    override func setUpWithError() throws {
        guard CPUPlanBuilder.findCompiler() != nil else { throw XCTSkip("no C compiler ($CC, cc, gcc or clang) on PATH") }
    }

    /// Builds the plan once, then for each input set runs it (on one and three threads, the same
    /// executors for every set) and the interpreter, and compares every output exactly.
    @discardableResult
    func check(_ ir: String, _ inputSets: [[Tensor]], file: StaticString = #filePath, line: UInt = #line) throws -> PlanFile {
        let module = try Parser.parse(ir)
        let plan = try CPUPlanBuilder.build(module, options: options)
        let executors = [try CPUExecutor(plan: plan, threads: 1), try CPUExecutor(plan: plan, threads: 3)]
        for inputs in inputSets {
            let want = try Interpreter.run(module, inputs: inputs)
            var given: [String: HostTensor] = [:]
            for (input, t) in zip(plan.manifest.inputs, inputs) {
                guard case .string(let s) = t.storage else { XCTFail("string inputs only", file: file, line: line); return plan }
                given[input.name] = HostTensor(name: input.name, shape: t.shape, strings: s)
            }
            for executor in executors {
                let got = try executor.run(inputs: given)
                XCTAssertEqual(got.count, want.count, file: file, line: line)
                for (o, (g, w)) in zip(got, want).enumerated() {
                    XCTAssertEqual(g.shape, w.shape, "output \(o)", file: file, line: line)
                    XCTAssertEqual(g.dtype, w.dtype.rawValue, "output \(o)", file: file, line: line)
                    if case .string(let ws) = w.storage {
                        XCTAssertEqual(g.strings?.map { Array($0.unicodeScalars) }, ws.map { Array($0.unicodeScalars) }, "output \(o)", file: file, line: line)
                    } else {
                        let t = try g.bytes.withUnsafeBytes { try Tensor(TensorData(type: TensorType(w.dtype, static: g.shape), copying: $0)) }
                        XCTAssertEqual(t.int64s, w.int64s, "output \(o)", file: file, line: line)
                    }
                }
            }
        }
        return plan
    }

    static func strings(_ s: [String], _ shape: [Int]) -> Tensor { Tensor(shape: shape, storage: .string(s)) }

    static func splitIR(_ attributes: String, shape: [Int]) -> String {
        let dims = shape.map(String.init).joined(separator: ",")
        return """
        opsets {"" = 20}
        func @s(%x: string[\(dims)] loc("x")) -> (string[\(dims),?] loc("parts"), i64[\(dims)] loc("n")) {
          %p, %n = StringSplit(%x) \(attributes) : string[\(dims),?], i64[\(dims)] loc("parts", "n")
          return %p, %n
        }
        """
    }

    /// Inputs for the split tests: consecutive, leading and trailing delimiters, multi-byte text,
    /// empty strings, Unicode whitespace (U+3000, U+00A0, U+001C, tabs and newlines), and one
    /// string of 700 parts.
    static let splitTexts = ["a.b..c.", ".", "", "  lead and  trail  ", "x\u{3000}y\u{A0}z\u{1C}w\t\nv", "é.中.😀",
                             "oneword", "a-b--c---d", "abab.ab", "\u{85}\u{2028}"]
    static let wide = (0 ..< 700).map { "w\($0)" }

    func testStringSplitWithoutMaxsplitIsHeapResidentAndMatchesTheInterpreter() throws {
        let texts = Self.splitTexts
        for (attributes, joiner) in [("{delimiter = \".\"}", "."), ("{delimiter = \"-\"}", "-"), ("{delimiter = \"ab\"}", "ab"), ("{delimiter = \"é\"}", "é"),
                                     ("", " \u{3000}"), ("{delimiter = \"\"}", "\n"), ("{maxsplit = -1}", " ")] {
            let plan = try check(Self.splitIR(attributes, shape: [2, 5]), [
                [Self.strings(texts, [2, 5])],
                [Self.strings(Array(repeating: "", count: 10), [2, 5])],
                [Self.strings([Self.wide.joined(separator: joiner)] + texts.dropLast(), [2, 5])],
                [Self.strings(texts.reversed(), [2, 5])],
            ])
            let y = plan.manifest.outputs[0]
            XCTAssertEqual(y.shape, [2, 5, PlanTensor.unbounded], attributes)
            XCTAssertTrue(y.isHeapResident)
            XCTAssertEqual(y.dynamicDims?.keys.sorted(), [2])
            XCTAssertEqual(plan.manifest.buffers.first { $0.id == y.buffer }?.bytes, 8)
            XCTAssertEqual(plan.manifest.outputs[1].shape, [2, 5])
            XCTAssertNil(plan.manifest.outputs[1].dynamicDims)
        }
        // Through Identity (the copy is the pointer), the counts unused.
        let copied = try check("""
        opsets {"" = 20}
        func @s(%x: string[3] loc("x")) -> (string[3,?] loc("parts"), string[3,?] loc("copy")) {
          %p, %n = StringSplit(%x) {delimiter = ","} : string[3,?], i64[3] loc("p", "n")
          %c = Identity(%p) : string[3,?] loc("copy")
          return %p, %c
        }
        """, [[Self.strings(["a,b", "", ",,,"], [3])], [Self.strings([Self.wide.joined(separator: ","), "x", "y,"], [3])]])
        XCTAssertEqual(copied.manifest.outputs.map(\.shape), [[3, -1], [3, -1]])
        // An empty input: no parts at all (Y [0, 0]).
        try check(Self.splitIR("", shape: [0]), [[Self.strings([], [0])]])
        try check(Self.splitIR("{delimiter = \",\"}", shape: [3, 0]), [[Self.strings([], [3, 0])]])
    }

    func testStringSplitWithMaxsplitIsBoundedAndMatchesTheInterpreter() throws {
        let texts = Self.splitTexts
        for (maxSplit, delimiter) in [(0, ""), (1, ""), (2, ""), (0, "."), (2, "."), (3, "-"), (5, " ")] {
            let attributes = "{maxsplit = \(maxSplit)" + (delimiter.isEmpty ? "}" : ", delimiter = \"\(delimiter)\"}")
            let plan = try check(Self.splitIR(attributes, shape: [10]), [
                [Self.strings(texts, [10])],
                [Self.strings([Self.wide.joined(separator: delimiter.isEmpty ? " " : delimiter)] + texts.dropFirst(), [10])],
            ])
            let y = plan.manifest.outputs[0]
            XCTAssertEqual(y.shape, [10, maxSplit + 1], attributes)
            XCTAssertFalse(y.isHeapResident)
            XCTAssertEqual(y.dynamicDims?.keys.sorted(), [1])
        }
        // A bound too large for the arena: heap-resident as without maxsplit.
        let plan = try check(Self.splitIR("{maxsplit = 1099511627776}", shape: [10]), [[Self.strings(texts, [10])]])
        XCTAssertEqual(plan.manifest.outputs[0].shape, [10, PlanTensor.unbounded])
    }

    /// Stop words compared as the interpreter compares them: case-sensitive or after lowercasing
    /// (`ß`, `İ`), by canonical equivalence (`é` precomposed or not); everything removed gives one
    /// empty string; [1, C] inputs; an empty input without stop words; a bounded result through
    /// Identity.
    func testStringNormalizerWithStopWordsMatchesTheInterpreter() throws {
        let texts = ["monday", "Monday", "MONDAY", "tuesday", "straße", "STRASSE", "e\u{301}t\u{E9}", "été", "", "İx", "i\u{307}x", "wed"]
        for attributes in ["stopwords = [\"monday\", \"été\", \"straße\", \"monday\"]",
                           "stopwords = [\"Monday\", \"ÉTÉ\", \"STRASSE\", \"i̇x\"], case_change_action = \"UPPER\"",
                           "stopwords = [\"monday\", \"\"], is_case_sensitive = 1, case_change_action = \"LOWER\"",
                           "stopwords = [\"MONDAY\", \"İX\"], is_case_sensitive = 0, case_change_action = \"LOWER\""] {
            let ir = """
            opsets {"" = 20}
            func @n(%x: string[12] loc("x"), %r: string[1,4] loc("r")) -> (string[?] loc("y"), string[1,?] loc("row"), string[?] loc("copy")) {
              %y = StringNormalizer(%x) {\(attributes)} : string[?] loc("y")
              %row = StringNormalizer(%r) {\(attributes)} : string[1,?] loc("row")
              %c = Identity(%y) : string[?] loc("copy")
              return %y, %row, %c
            }
            """
            let plan = try check(ir, [
                [Self.strings(texts, [12]), Self.strings(["monday", "MONDAY", "x", "été"], [1, 4])],
                [Self.strings(Array(repeating: "monday", count: 12), [12]), Self.strings(["monday", "monday", "monday", "monday"], [1, 4])],
                [Self.strings(texts.reversed(), [12]), Self.strings(["", "", "a", "b"], [1, 4])],
            ])
            XCTAssertEqual(plan.manifest.outputs.map(\.shape), [[12], [1, 4], [12]], attributes)
            XCTAssertEqual(plan.manifest.outputs.map { $0.dynamicDims?.keys.sorted() ?? [] }, [[0], [1], [0]])
        }
        // An empty input, with and without stop words: one empty string.
        try check("""
        opsets {"" = 20}
        func @n(%x: string[0] loc("x")) -> (string[?] loc("a"), string[?] loc("b")) {
          %a = StringNormalizer(%x) {stopwords = ["x"]} : string[?] loc("a")
          %b = StringNormalizer(%x) {case_change_action = "UPPER"} : string[?] loc("b")
          return %a, %b
        }
        """, [[Self.strings([], [0])]])
    }

    /// The manifest of a heap-resident output: a -1 dim (format 1.2), `glmc inspect` shows `?`,
    /// the JSON round-trips; the consistency rules refuse it on an input, a numeric output, a GPU
    /// plan, without its extent or with a buffer other than one pointer.
    func testHeapResidentOutputsInTheManifest() throws {
        let plan = try CPUPlanBuilder.build(try Parser.parse(Self.splitIR("", shape: [3])), options: options)
        XCTAssertEqual(plan.manifest.formatVersion, PlanFormatVersion(major: 1, minor: 2))
        let y = plan.manifest.outputs[0]
        XCTAssertEqual(y.shape, [3, -1])
        XCTAssertTrue(PlanSummary(plan).text.contains("  parts: string[3, ?] (buffer"), PlanSummary(plan).text)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let json = String(decoding: try encoder.encode(plan.manifest), as: UTF8.self)
        XCTAssertTrue(json.contains("\"shape\":[3,-1]"), json)
        XCTAssertEqual(try JSONDecoder().decode(PlanManifest.self, from: Data(json.utf8)), plan.manifest)
        XCTAssertNoThrow(try plan.validate())

        func refused(_ edit: (inout PlanFile) -> Void, _ message: String, line: UInt = #line) {
            var bad = plan
            edit(&bad)
            XCTAssertThrowsError(try bad.validate(), line: line) { XCTAssertTrue("\($0)".contains(message), "\($0)", line: line) }
        }
        refused({ $0.manifest.outputs[0].dynamicDims = nil }, "unbounded dim 1 has no extent in dynamic_dims")
        refused({ $0.manifest.outputs[0].dtype = "i64" }, "only string outputs of cpu plans may have")
        refused({ $0.manifest.target = "opencl"; $0.manifest.inputs[0].dtype = "f32" }, "only string outputs of cpu plans may have")
        refused({ $0.manifest.inputs[0].shape = [-1] }, "input 'x' has a negative dimension in [-1]")
        refused({ $0.manifest.outputs[0].shape = [3, -2] }, "negative dimension in [3, -2]")
        refused({ p in
            let id = p.manifest.outputs[0].buffer
            p.manifest.buffers[p.manifest.buffers.firstIndex { $0.id == id }!].bytes = 24
        }, "needs a buffer of 8 bytes (a pointer to its elements)")
    }

    /// A runtime extent outside its bound (negative for an unbounded dim) is one clear error.
    func testAnExtentOutsideItsBoundIsAnError() throws {
        let unbounded = PlanTensor(name: "parts", dtype: "string", shape: [2, PlanTensor.unbounded], buffer: 0, dynamicDims: [1: 64])
        XCTAssertEqual(try PlanOutputs.shape(of: unbounded) { _ in 7 }, [2, 7])
        XCTAssertThrowsError(try PlanOutputs.shape(of: unbounded) { _ in -1 }) {
            XCTAssertEqual("\($0)", "output 'parts': the kernel reported extent -1 for dim 1, outside its bound 0 or more")
        }
        XCTAssertThrowsError(try PlanOutputs.shape(of: unbounded) { _ in Int64.max }) { XCTAssertTrue("\($0)".contains("too many elements"), "\($0)") }
        let bounded = PlanTensor(name: "y", dtype: "string", shape: [4], buffer: 0, dynamicDims: [0: 64])
        XCTAssertThrowsError(try PlanOutputs.shape(of: bounded) { _ in 5 }) { XCTAssertTrue("\($0)".contains("outside its bound 0...4"), "\($0)") }
    }

    /// A split of a constant is folded at convert time: its parts are a constant string output
    /// (copied into its slot), of exactly the interpreter's shape.
    func testASplitOfAConstantIsFolded() throws {
        let plan = try check("""
        opsets {"" = 20}
        func @s(%x: string[1] loc("x")) -> (string[2,?] loc("parts"), i64[2] loc("n"), string[?] loc("kept")) {
          %c = const dense<["a b", "c"]> : string[2] loc("k")
          %p, %n = StringSplit(%c) : string[2,?], i64[2] loc("parts", "n")
          %y = StringNormalizer(%x) {stopwords = ["q"]} : string[?] loc("kept")
          return %p, %n, %y
        }
        """, [[Self.strings(["q"], [1])], [Self.strings(["Q!"], [1])]])
        XCTAssertEqual(plan.manifest.outputs.map(\.shape), [[2, 2], [2], [1]])
        XCTAssertNil(plan.manifest.outputs[0].dynamicDims)
    }

    /// StringSplit's parts read by anything but Identity (or a graph output) are refused; its
    /// counts (a static shape) may be read by anything.
    func testReadingSplitPartsIsRefused() throws {
        let module = try Parser.parse("""
        opsets {"" = 20}
        func @s(%x: string[2] loc("x")) -> (string[2,?] loc("y"), i64[] loc("total")) {
          %p, %n = StringSplit(%x) : string[2,?], i64[2] loc("parts", "n") node("split")
          %y = StringConcat(%p, %p) : string[2,?] loc("y") node("cat")
          %a = const dense<[0]> : i64[1] loc("axes")
          %t = ReduceSum(%n, %a) {keepdims = 0} : i64[] loc("total")
          return %y, %t
        }
        """)
        XCTAssertThrowsError(try CPUPlanBuilder.generate(module, options: options)) {
            XCTAssertEqual("\($0)", "unsupported: --target cpu cannot compile StringConcat (node 'cat'): it reads 'parts', whose shape StringSplit (node 'split') decides from input values; a plan supports such a result only as a graph output (directly or through Identity)")
        }
        let counts = try Parser.parse("""
        opsets {"" = 20}
        func @s(%x: string[2] loc("x")) -> (string[2,?] loc("parts"), i64[] loc("total")) {
          %p, %n = StringSplit(%x) {delimiter = ","} : string[2,?], i64[2] loc("parts", "n")
          %a = const dense<[0]> : i64[1] loc("axes")
          %t = ReduceSum(%n, %a) {keepdims = 0} : i64[] loc("total")
          return %p, %t
        }
        """)
        let plan = try CPUPlanBuilder.build(counts, options: options)
        let out = try CPUExecutor(plan: plan).run(inputs: ["x": HostTensor(name: "x", shape: [2], strings: ["a,b,,c", "d"])])
        XCTAssertEqual(out[0].strings, ["a", "b", "", "c", "d", "", "", ""])
        XCTAssertEqual(out[1].bytes.withUnsafeBytes { $0.load(as: Int64.self) }, 5)
    }
}
