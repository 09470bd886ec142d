import Foundation
import GLMCInterpreter
import GLMCIR
import GLMCOps
import GLMCPlan
import GLMCRuntime
import GLMCTestSupport
import XCTest

/// String tensors in CPU plans: string inputs, outputs, intermediates and constants, compared with
/// the interpreter element for element; the refusals (GPU targets) and bad inputs (a string .npy
/// for a numeric input and the reverse).
extension CPUPlanTests {
    /// Converts `ir` for the cpu target, runs the plan and the interpreter on the same string
    /// inputs (by name) and checks that every output is identical. Returns the plan's path.
    @discardableResult
    func checkStringsAgainstInterpreter(_ ir: String, inputs: [(name: String, tensor: Tensor)], threads: [String] = ["1", "3"]) throws -> String {
        let model = scratch + "/strings.glmc", plan = scratch + "/strings.plan"
        try ir.write(toFile: model, atomically: true, encoding: .utf8)
        assertSucceeds(try GLMC.run(["convert", model, "--target", "cpu", "-o", plan], timeout: 120), "convert")
        var args: [String] = []
        for (name, t) in inputs {
            let path = scratch + "/\(name).npy"
            try NPY.write(encoded: try NPY.encode(t), to: path)
            args += ["--input", "\(name)=\(path)"]
        }
        assertSucceeds(try GLMC.run(["run", model, "--output-dir", scratch + "/i"] + args), "run interpreter")
        let files = outputs(in: scratch + "/i").sorted()
        XCTAssertFalse(files.isEmpty)
        for n in threads {
            let dir = scratch + "/p\(n)"
            assertSucceeds(try GLMC.run(["run", plan, "--threads", n, "--repeat", "2", "--output-dir", dir] + args), "run plan")
            XCTAssertEqual(outputs(in: dir).sorted(), files)
            for file in files {
                let got = try NPY.read(path: dir + "/" + file), want = try NPY.read(path: scratch + "/i/" + file)
                XCTAssertEqual(got.shape, want.shape, file)
                XCTAssertEqual(got.dtype, want.dtype, file)
                if case .string(let w) = want.storage {
                    guard case .string(let g) = got.storage else { XCTFail("\(file) is not strings"); continue }
                    XCTAssertEqual(g.map { Array($0.unicodeScalars) }, w.map { Array($0.unicodeScalars) }, file)
                } else {
                    XCTAssertEqual(got.doubles, want.doubles, file)
                }
            }
        }
        return plan
    }

    static func strings(_ s: [String], _ shape: [Int]) -> Tensor { Tensor(shape: shape, storage: .string(s)) }

    /// Equal and StringConcat with broadcasting, a string constant, an intermediate string
    /// (concat then compare, concat of a concat), non-ASCII text and an empty string, a Reshape of
    /// strings, and an input and a constant returned as outputs.
    func testStringConcatAndEqualMatchTheInterpreter() throws {
        let ir = """
        opsets {"" = 20}

        func @s(%0: string[2,3] loc("a"), %1: string[3] loc("b")) -> (string[2,3] loc("cat"), bool[2,3] loc("eq"), string[3,2] loc("re"), string[3] loc("same"), bool[2,3] loc("eqc"), string[3] loc("konst")) {
          %2 = StringConcat(%0, %1) : string[2,3] loc("cat")
          %3 = const dense<["ab", "", "é中"]> : string[3] loc("k")
          %4 = StringConcat(%2, %3) : string[2,3] loc("cat2")
          %5 = Equal(%4, %0) : bool[2,3] loc("eq")
          %6 = const dense<[3, 2]> : i64[2] loc("shape")
          %7 = Reshape(%4, %6) : string[3,2] loc("re")
          %8 = Equal(%0, %3) : bool[2,3] loc("eqc")
          return %2, %5, %7, %1, %8, %3
        }
        """
        let a = Self.strings(["x", "ab", "é中", "", "😀 y", "ab"], [2, 3])
        let b = Self.strings(["", "", ""], [3])
        try checkStringsAgainstInterpreter(ir, inputs: [("a", a), ("b", b)])
        // "é" precomposed in the constant, decomposed (e + U+0301) here: Equal finds them equal.
        let b2 = Self.strings(["1", "ü", "long text with spaces"], [3])
        let decomposed = Self.strings(["ab", "x", "e\u{301}中", "ab", "", "é中"], [2, 3])
        try checkStringsAgainstInterpreter(ir, inputs: [("a", decomposed), ("b", b)], threads: ["1"])
        let plan = try checkStringsAgainstInterpreter(ir, inputs: [("a", a), ("b", b2)])
        let file = try PlanReader.read(path: plan)
        XCTAssertEqual(file.manifest.inputs.map(\.dtype), ["string", "string"])
        XCTAssertTrue(file.manifest.steps.contains { $0.kind == "string_concat" && $0.arguments.last == .stringHeap })
        XCTAssertTrue(file.manifest.steps.contains { $0.kind == "string_constant" })
        XCTAssertEqual(file.manifest.buffers.first { $0.id == file.manifest.inputs[0].buffer }?.bytes, 6 * 8)
    }

    /// RegexFullMatch runs the interpreter's NFA: classes, alternation, counted repetition, word
    /// boundaries, anchors inside groups, and `.` over non-ASCII scalars.
    func testRegexFullMatchMatchesTheInterpreter() throws {
        let texts = ["account@gmail.com", "account@hotmail.com", "not email", "x account2@yahoo.com ",
                     "www.google.com", "www.bbc.co.uk", "", "é", "aé中b", "ab", "a\nb", "AAA9"]
        for pattern in [#"(\W|^)[\w.\-]{0,25}@(yahoo|gmail)\.com(\W|$)"#, #"www\.[\w.-]+\.\bcom\b"#,
                        "a..b|", "(?i)a+[0-9]?", "[^a-z]*", "(?s)a.b"] {
            let ir = """
            opsets {"" = 20}

            func @r(%0: string[12] loc("x")) -> (bool[12] loc("y")) {
              %1 = RegexFullMatch(%0) {pattern = \(quoted(pattern))} : bool[12] loc("y")
              return %1
            }
            """
            try checkStringsAgainstInterpreter(ir, inputs: [("x", Self.strings(texts, [12]))], threads: ["1"])
        }
    }

    /// LabelEncoder from strings to integers (with and without default, repeated keys) and to
    /// strings, from integers to strings; StringNormalizer changing case (Unicode: ß → SS).
    func testLabelEncoderAndStringNormalizerMatchTheInterpreter() throws {
        let labels = """
        opsets {"" = 20, "ai.onnx.ml" = 4}

        func @l(%0: string[2,3] loc("x"), %1: i64[4] loc("n")) -> (i64[2,3] loc("ids"), f32[2,3] loc("f"), string[2,3] loc("names"), string[4] loc("back")) {
          %2 = ai.onnx.ml.LabelEncoder@2(%0) {keys_strings = ["b", "a", "c", "a"], values_int64s = [1, 2, 3, 4], default_int64 = 42} : i64[2,3] loc("ids")
          %3 = ai.onnx.ml.LabelEncoder@2(%0) {keys_strings = ["a", "é"], values_floats = [0.5, 1.5]} : f32[2,3] loc("f")
          %4 = ai.onnx.ml.LabelEncoder@2(%0) {keys_strings = ["a", "b"], values_strings = ["alpha", "beta"], default_string = "?"} : string[2,3] loc("names")
          %5 = ai.onnx.ml.LabelEncoder@2(%1) {keys_int64s = [7, -1, 0], values_strings = ["seven", "minus", "zero"]} : string[4] loc("back")
          return %2, %3, %4, %5
        }
        """
        let x = Self.strings(["a", "b", "straße", "e\u{301}", "", "Ab"], [2, 3])
        try checkStringsAgainstInterpreter(labels, inputs: [("x", x), ("n", Tensor([7, 3, 0, -1] as [Int64], shape: [4]))])
        let normalizer = """
        opsets {"" = 20}

        func @n(%0: string[1,6] loc("x")) -> (string[1,6] loc("up"), string[1,6] loc("low"), string[1,6] loc("none")) {
          %1 = StringNormalizer(%0) {case_change_action = "UPPER"} : string[1,6] loc("up")
          %2 = StringNormalizer(%0) {case_change_action = "LOWER", is_case_sensitive = 1} : string[1,6] loc("low")
          %3 = StringNormalizer(%0) : string[1,6] loc("none")
          return %1, %2, %3
        }
        """
        try checkStringsAgainstInterpreter(normalizer, inputs: [("x", Self.strings(["a", "b", "straße", "Éclair", "", "ǅ"], [1, 6]))])
    }

    /// StringSplit (heap-resident parts) and StringNormalizer with stop words (bounded) through
    /// `glmc convert` and `glmc run`: the .npy outputs have the interpreter's shapes and strings.
    func testValueShapedStringOpsMatchTheInterpreter() throws {
        let ir = """
        opsets {"" = 20}

        func @s(%0: string[2] loc("x")) -> (string[2,?] loc("parts"), i64[2] loc("n"), string[?] loc("kept")) {
          %1, %2 = StringSplit(%0) {delimiter = "."} : string[2,?], i64[2] loc("parts", "n")
          %3 = StringNormalizer(%0) {stopwords = ["A.B"], case_change_action = "UPPER"} : string[?] loc("kept")
          return %1, %2, %3
        }
        """
        let plan = try checkStringsAgainstInterpreter(ir, inputs: [("x", Self.strings(["a.b", "x..y.é.中"], [2]))])
        try checkStringsAgainstInterpreter(ir, inputs: [("x", Self.strings(["", "no dots"], [2]))], threads: ["1"])
        let inspect = try GLMC.run(["inspect", plan])
        assertSucceeds(inspect)
        XCTAssertTrue(inspect.stdout.contains("parts: string[2, ?]") && inspect.stdout.contains("kept: string[≤2]"), inspect.stdout)

        // Strings made from an integer input and split: `run --engine cpu` binds nothing (the
        // split's shape is the data's, not a shape-determining value's).
        let model = scratch + "/ids.glmc", ids = scratch + "/ids.npy"
        try """
        opsets {"" = 20, "ai.onnx.ml" = 4}

        func @l(%0: i64[3] loc("ids")) -> (string[3,?] loc("words"), i64[3] loc("n")) {
          %1 = ai.onnx.ml.LabelEncoder@2(%0) {keys_int64s = [1, 2], values_strings = ["a b c", "d"], default_string = ""} : string[3] loc("text")
          %2, %3 = StringSplit(%1) : string[3,?], i64[3] loc("words", "n")
          return %2, %3
        }
        """.write(toFile: model, atomically: true, encoding: .utf8)
        try NPY.write(encoded: try NPY.encode(Tensor([2, 1, 7] as [Int64], shape: [3])), to: ids)
        let r = try GLMC.run(["run", model, "--engine", "cpu", "--input", ids, "--output-dir", scratch + "/w"], timeout: 120)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stderr, "")
        let words = try NPY.read(path: scratch + "/w/output_0.npy")
        XCTAssertEqual(words.shape, [3, 3])
        guard case .string(let w) = words.storage else { return XCTFail("not strings") }
        XCTAssertEqual(w, ["d", "", "", "a", "b", "c", "", "", ""])
    }

    /// GPU targets refuse strings with one clear line, value-shaped ones included; a string .npy
    /// for a numeric input, and a numeric one for a string input, fail with one error line.
    func testStringRefusalsAndBadInputs() throws {
        let split = """
        opsets {"" = 20}

        func @s(%0: string[2] loc("x")) -> (string[2,?] loc("parts"), i64[2] loc("n")) {
          %1, %2 = StringSplit(%0) {delimiter = "."} : string[2,?], i64[2] loc("parts", "n")
          return %1, %2
        }
        """
        let model = scratch + "/split.glmc"
        try split.write(toFile: model, atomically: true, encoding: .utf8)
        assertFails(try GLMC.run(["convert", model, "--target", "opencl", "-o", scratch + "/split.plan"]),
                    containing: ["unsupported:", "type string", "--target cpu only"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch + "/split.plan"))

        let concat = """
        opsets {"" = 20}

        func @c(%0: string[2] loc("x"), %1: f32[2] loc("v")) -> (string[2] loc("y"), f32[2] loc("w")) {
          %2 = StringConcat(%0, %0) : string[2] loc("y")
          %3 = Neg(%1) : f32[2] loc("w")
          return %2, %3
        }
        """
        let cmodel = scratch + "/concat.glmc", plan = scratch + "/concat.plan"
        try concat.write(toFile: cmodel, atomically: true, encoding: .utf8)
        assertFails(try GLMC.run(["convert", cmodel, "--target", "opencl", "-o", scratch + "/concat.clplan"]),
                    containing: ["unsupported:", "type string", "--target cpu only"])
        assertSucceeds(try GLMC.run(["convert", cmodel, "--target", "cpu", "-o", plan], timeout: 120), "convert")
        let strings = scratch + "/s.npy", numbers = scratch + "/n.npy"
        try NPY.write(encoded: try NPY.encode(Self.strings(["a", "b"], [2])), to: strings)
        try NPY.write(encoded: try NPY.encode(Tensor([1, 2] as [Float], shape: [2])), to: numbers)
        assertSucceeds(try GLMC.run(["run", plan, "--input", "x=\(strings)", "--input", "v=\(numbers)", "--output-dir", scratch + "/ok"]), "run")
        for (x, v) in [(numbers, numbers), (strings, strings)] {
            let out = scratch + "/bad"
            assertFails(try GLMC.run(["run", plan, "--input", "x=\(x)", "--input", "v=\(v)", "--output-dir", out]),
                        containing: ["input '", "but the plan was compiled for"])
            XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/output_0.npy"))
        }
        assertFails(try GLMC.run(["run", cmodel, "--engine", "cpu", "--input", "x=\(numbers)", "--input", "v=\(numbers)", "--output-dir", scratch + "/bad2"]),
                    containing: ["'x'"])
    }
}
