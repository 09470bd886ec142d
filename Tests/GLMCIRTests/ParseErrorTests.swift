import Foundation
import XCTest
import GLMCIR

/// One test per kind of parse error: each message starts with the line:column of the problem.
final class ParseErrorTests: XCTestCase {
    /// Wraps body lines in a module with one f32[2] argument %0 and no results.
    private func body(_ lines: String, results: String = "", ret: String = "return") -> String {
        "opsets {\"\" = 17}\nfunc @f(%0: f32[2]) -> (\(results)) {\n\(lines)\n  \(ret)\n}\n"
    }

    func testUnexpectedCharacter() {
        assertParseError(body("  %1 = Relu(%0) : f32[2] $"), "3:26: unexpected character '$'")
        assertParseError(body("  %1 = Relu(%0) : f32[2] é"), "3:26: unexpected character 'é'")
        assertParseError("opsets {\"\" = 17}\n\u{1}", "2:1: unexpected character U+1")
        assertParseError(body("  %1 = Relu(%0) : f32[2] -x"), "3:26: unexpected character '-'")
        assertParseError(body("  % = Relu(%0) : f32[2]"), "3:3: expected a value name after '%'")
    }

    func testUnterminatedString() {
        assertParseError(body("  %1 = Relu(%0) : f32[2] loc(\"abc"), "3:30: unterminated string")
        assertParseError("module attributes {a = \"x\\\"}", "1:24: unterminated string")
    }

    func testBadEscape() {
        assertParseError("module attributes {a = \"x\\q\"}\nfunc @f() -> () {\nreturn\n}", "1:26: unknown escape sequence in string")
        assertParseError("module attributes {a = \"\\u{110000}\"}\nfunc @f() -> () {\nreturn\n}", "1:25: '\\u{110000}' is not a Unicode scalar value")
        assertParseError("module attributes {a = \"\\u{12\"}\nfunc @f() -> () {\nreturn\n}", "1:25: malformed '\\u{...}' escape in string")
    }

    func testMalformedNumber() {
        assertParseError(body("  %1 = Foo(%0) {a = 1.5x} : f32[2]"), "3:21: malformed number '1.5x'")
        assertParseError(body("  %1 = Foo(%0) {a = 99999999999999999999} : f32[2]"), "3:21: integer 99999999999999999999 is out of range")
    }

    func testUnknownDType() {
        assertParseError(body("  %1 = Relu(%0) : f33[2]"), "3:19: unknown dtype 'f33'")
        assertParseError("func @f(%0: float[1]) -> () {\n  return\n}", "1:13: unknown dtype 'float'")
    }

    func testBadType() {
        assertParseError(body("  %1 = Relu(%0) : f32(2)"), "3:22: expected '[' after element type 'f32', found '('")
        assertParseError(body("  %1 = Relu(%0) : f32[2,x]"), "3:25: expected a dimension (a size, '?' or '?name') in type, found 'x'")
        assertParseError(body("  %1 = Relu(%0) : f32[-1]"), "3:23: bad dimension -1 in type")
        assertParseError(body("  %1 = Relu(%0) : f32[2"), "4:3: expected ']' after dimensions, found 'return'")
        assertParseError(body("  %1 = Relu(%0) : f32[*,1]"), "3:24: expected ']' after '*' in type, found ','")
        assertParseError(body("  %1 = Relu(%0) : [2]"), "3:19: expected a type, found '['")
    }

    func testUndefinedValue() {
        assertParseError(body("  %1 = Add(%0, %7) : f32[2]"), "3:16: use of undefined value %7")
        assertParseError(body("  %1 = Add(%1, %0) : f32[2]"), "3:12: use of undefined value %1")
        assertParseError(body("", ret: "return %3"), "4:10: use of undefined value %3")
    }

    func testOuterValueNeedsCapture() {
        assertParseError(body("""
              %1 = If(%0) {g = graph @g() -> (f32[2]) {
                return %0
              }} : f32[2]
            """), "4:12: use of undefined value %0 (a nested graph sees only its own arguments, captures and values)")
        assertParseError(body("""
              %1 = If(%0) {g = graph @g() captures(%9 as %1: f32[2]) -> () {
                return
              }} : f32[2]
            """), "3:40: use of undefined value %9")
    }

    func testCapturesOnlyInNestedGraphs() {
        assertParseError("func @f() captures(%0 as %1: f32[1]) -> () {\n  return\n}", "1:11: only nested graphs can have captures")
    }

    func testRedefinition() {
        assertParseError(body("  %0 = Relu(%0) : f32[2]"), "3:3: redefinition of value %0")
        assertParseError(body("  %1, %1 = Split(%0) : f32[1], f32[1]"), "3:7: redefinition of value %1")
        assertParseError("func @f(%0: f32[1], %0: f32[1]) -> () {\n  return\n}", "1:21: redefinition of value %0")
        assertParseError(body("""
              %1 = If(%0) {g = graph @g(%2: f32[2]) captures(%0 as %2: f32[2]) -> () {
                return
              }} : f32[2]
            """), "3:56: redefinition of value %2")
    }

    func testWrongNumberOfResultTypes() {
        assertParseError(body("  %1, %2 = Split(%0) : f32[1]"), "3:24: 2 results but 1 type")
        assertParseError(body("  %1 = Relu(%0) : f32[2], f32[2]"), "3:19: 1 result but 2 types")
        assertParseError(body("  %1 = Relu(%0) loc(\"x\")"), "3:17: expected ':' before result types, found 'loc'")
    }

    func testLocCountMismatch() {
        assertParseError(body("  %1, %2 = Split(%0) : f32[1], f32[1] loc(\"a\")"), "3:39: loc(...) has 1 name but there are 2 values")
        assertParseError("func @f(%0: f32[1] loc(\"a\", \"b\")) -> () {\n  return\n}", "1:20: loc(...) has 2 names but there is 1 value")
    }

    func testReturnArity() {
        assertParseError(body("", results: "f32[2], f32[2]", ret: "return %0"), "4:3: return has 1 value but the signature declares 2 results")
        assertParseError(body("", results: "", ret: "return %0"), "4:3: return has 1 value but the signature declares 0 results")
    }

    func testReturnTypeMismatch() {
        assertParseError(body("", results: "f32[3]", ret: "return %0"), "4:10: return value %0 has type f32[2] but the signature declares f32[3]")
    }

    func testMissingReturn() {
        assertParseError("func @f() -> () {\n}", "2:1: expected 'return' before '}'")
        assertParseError("func @f() -> () {\n", "2:1: unexpected end of input in function body (missing 'return')")
    }

    func testDataCountMismatch() {
        assertParseError(body("  %1 = const dense<[1.0, 2.0]> : f32[3]"), "3:14: dense data has 2 elements but type f32[3] needs 3")
        assertParseError(body("  %1 = const dense<\"0x0000\"> : f32[1]"), "3:20: hex data has 2 bytes but type f32[1] needs 4")
        assertParseError(body("  %1 = Foo() {t = dense<[1]> : i8[2,2]} : f32[2]"), "3:19: dense data has 1 element but type i8[2,2] needs 4")
        assertParseError(body("  %1 = const dense<[1.0]> : f32[?n]"), "3:14: tensor data needs a static shape, not f32[?n]")
    }

    func testBadDataElements() {
        assertParseError(body("  %1 = const dense<[300]> : u8[1]"), "3:21: 300 does not fit in u8")
        assertParseError(body("  %1 = const dense<[1.5]> : i32[1]"), "3:21: expected an integer for i32[1], found '1.5'")
        assertParseError(body("  %1 = const dense<[2]> : bool[1]"), "3:21: expected true or false for bool[1], found '2'")
        assertParseError(body("  %1 = const dense<[true]> : f32[1]"), "3:21: expected a number for f32[1], found 'true'")
        assertParseError(body("  %1 = const dense<[1]> : string[1]"), "3:21: expected a string element for string[1]")
        assertParseError(body("  %1 = const dense<[%0]> : f32[1]"), "3:21: expected a literal element, found '%0'")
        assertParseError(body("  %1 = const dense<\"0xZZ\"> : u8[1]"), "3:23: invalid hex digit in dense data")
        assertParseError(body("  %1 = const dense<\"ABCD\"> : u8[2]"), "3:20: expected a hex string \"0x...\" with an even number of digits")
        assertParseError(body("  %1 = const dense<\"0x0\"> : u8[1]"), "3:20: expected a hex string \"0x...\" with an even number of digits")
        assertParseError(body("  %1 = const dense<> : u8[1]"), "3:20: expected '[' or a hex string after 'dense<', found '>'")
        assertParseError(body("  %1 = const dense_resource<blob> : u8[1]"), "3:29: expected '__elided__' in dense_resource<...>, found 'blob'")
        assertParseError(body("  %1 = const 5 : u8[1]"), "3:14: expected tensor data (dense<...>, external<...> or dense_resource<__elided__>), found '5'")
    }

    func testExternalDataErrors() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("glmc-err-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data(repeating: 0, count: 8).write(to: dir.appendingPathComponent("w.bin"))
        assertParseError(body("  %1 = const external<\"w.bin\", 4, 8> : f32[2]"),
                         "3:14: external data range 4..<12 is outside 'w.bin' (8 bytes)", baseDirectory: dir.path)
        assertParseError(body("  %1 = const external<\"w.bin\", 0, 4> : f32[2]"),
                         "3:14: external data has 4 bytes but type f32[2] needs 8", baseDirectory: dir.path)
        assertParseError(body("  %1 = const external<\"w.bin\", -4, 8> : f32[2]"),
                         "3:14: external data range -4..<4 is outside 'w.bin' (8 bytes)", baseDirectory: dir.path)
        assertParseError(body("  %1 = const external<\"nope.bin\", 0, 8> : f32[2]"),
                         "3:14: cannot open '\(dir.path)/nope.bin': No such file or directory", baseDirectory: dir.path)
        assertParseError(body("  %1 = const external<\"w.bin\", 0, 8> : string[2]"),
                         "3:14: string tensors cannot be external data", baseDirectory: dir.path)
    }

    func testUnknownDomainWithoutOpset() {
        assertParseError(body("  %1 = com.microsoft.Gelu(%0) : f32[2]"),
                         "3:8: no opset for domain \"com.microsoft\" of com.microsoft.Gelu; declare it in 'opsets {...}' or write com.microsoft.Gelu@N")
        assertParseError("func @f() -> (f32[1]) {\n  %0 = const dense<[1.0]> : f32[1]\n  return %0\n}",
                         "2:8: 'const' needs an opset for the default domain \"\" in 'opsets {...}'")
    }

    func testAttributeErrors() {
        assertParseError(body("  %1 = Foo(%0) {a = 1, a = 2} : f32[2]"), "3:24: duplicate attribute 'a'")
        assertParseError(body("  %1 = Foo(%0) {a = [1, \"x\"]} : f32[2]"), "3:25: attribute list mixes element kinds")
        assertParseError(body("  %1 = Foo(%0) {a = [[1]]} : f32[2]"), "3:22: attribute lists cannot nest")
        assertParseError(body("  %1 = Foo(%0) {a = %0} : f32[2]"), "3:21: expected an attribute value, found '%0'")
        assertParseError(body("  %1 = Foo(%0) {a = bogus} : f32[2]"), "3:21: expected an attribute value, found 'bogus'")
        assertParseError(body("  %1 = Foo(%0) {a 1} : f32[2]"), "3:19: expected '=' after attribute name, found '1'")
        assertParseError(body("  %1 = Foo(%0) {a = 1 : f32[2]"), "3:23: expected '}' after attributes, found ':'")
        assertParseError(body("  %1 = Foo(%0) {t = dense<[1]>} : f32[2]"), "3:31: expected ':' before tensor attribute type, found '}'")
    }

    func testOperandErrors() {
        assertParseError(body("  %1 = Add(%0 %0) : f32[2]"), "3:15: expected ')' after operands, found '%0'")
        assertParseError(body("  %1 = Add(%0, 3) : f32[2]"), "3:16: expected an operand (a value name or '_'), found '3'")
        assertParseError(body("  %1 = (%0) : f32[2]"), "3:8: expected an op name after '=', found '('")
        assertParseError(body("  %1 Relu(%0) : f32[2]"), "3:6: expected '=' after result names, found 'Relu'")
        assertParseError(body("  [1]"), "3:3: expected an instruction or 'return', found '['")
        assertParseError(body("  %1 = Relu@x(%0) : f32[2]"), "3:13: expected an integer after '@' (the op's opset version), found 'x'")
    }

    func testModuleLevelErrors() {
        assertParseError("", "1:1: expected 'func' to start the main function, found end of input")
        assertParseError("module {}", "1:8: expected 'attributes' after 'module', found '{'")
        assertParseError("module attributes {a = 1}", "1:24: expected a string as module attribute value, found '1'")
        assertParseError("module attributes {a = \"1\", a = \"2\"}", "1:29: duplicate module attribute 'a'")
        assertParseError("opsets {\"\" = 1, \"\" = 2}", "1:17: duplicate opset for domain \"\"")
        assertParseError("opsets {\"\" = x}", "1:14: expected an integer as opset version, found 'x'")
        assertParseError("func f() -> () {\n  return\n}", "1:6: expected '@' after 'func', found 'f'")
        assertParseError("func @f() -> () {\n  return\n}\nfunc @g() -> () {\n  return\n}", "4:1: expected end of input after the function, found 'func'")
        assertParseError("func @f() () {\n  return\n}", "1:11: expected '->' before function result types, found '('")
    }

    func testTooDeepNestingIsAnErrorNotACrash() {
        var text = "opsets {\"\" = 17}\nfunc @f() -> () {\n"
        for i in 0 ..< 10_000 { text += "Loop() {body = graph @g\(i)() -> () {\n" }
        assertParseError(text, "67:16: graphs nest more than 64 deep")
    }

    /// Every prefix of a valid module is an error (never a crash or a hang), with a location.
    func testTruncatedInputAlwaysFailsCleanly() throws {
        var b = FunctionBuilder("main")
        let x = b.arg(TensorType(.f32, Shape([.symbol("n"), .known(2)])), "x")
        var g = FunctionBuilder("g")
        let gx = g.capture(x, TensorType(.f32, Shape([.symbol("n"), .known(2)])), "gx")
        g.ret([g.op1("Neg", [gx], TensorType(.f32, Shape([.symbol("n"), .known(2)])))])
        let c = b.const(TensorData(type: f32(2), elements: [Float(1), .nan]), name: "c\"q")
        let y = b.op(OpName("Foo", domain: "d"), opset: 3, [x, nil, c], [f32(2), f32()], names: ["a", "b"],
                     attributes: ["g": .graph(g.function), "f": .floats([1.5, -2]), "s": .string("x\ny"), "t": .tensor(TensorData(type: i64(1), elements: [Int64(3)]))], node: "foo")
        b.ret([y[0], y[1]], names: ["o1", "o2"])
        let text = Printer().print(module(b.function, metadata: ["k": "v"]))
        XCTAssertNoThrow(try Parser.parse(text))
        let bytes = Array(text.utf8)
        var cut = bytes.count - 1
        while cut >= 0 {
            // Trailing whitespace after the final '}' is still a complete module.
            let prefix = String(decoding: bytes[0 ..< cut], as: UTF8.self)
            if prefix.hasSuffix("}") && cut >= bytes.count - 2 { cut -= 1; continue }
            XCTAssertThrowsError(try Parser.parse(prefix), "prefix of \(cut) bytes parsed") { error in
                let message = (error as? GLMCError)?.message ?? ""
                XCTAssertNotNil(message.range(of: #"^\d+:\d+: "#, options: .regularExpression), message)
            }
            cut -= 1
        }
    }

    /// Single-byte corruptions never crash the parser.
    func testCorruptedInputNeverCrashes() {
        var b = FunctionBuilder("main")
        let x = b.arg(f32(2), "x")
        var g = FunctionBuilder("g")
        g.ret([g.capture(x, f32(2))])
        let y = b.op1("If", [x], f32(2), name: "y", attributes: ["then_branch": .graph(g.function), "v": .ints([1, 2]), "e": .float(1e-05)])
        b.ret([y, b.const(TensorData(type: TensorType(.f16, static: [2]), elements: [UInt16(1), 2]))])
        let bytes = Array(Printer().print(module(b.function)).utf8)
        let replacements = Array("%_@()[]{}<>,:=?*-\"\\ \n0aé".utf8)
        var generator = SystemRandomNumberGenerator()
        for _ in 0 ..< 3000 {
            var copy = bytes
            copy[Int.random(in: 0 ..< copy.count, using: &generator)] = replacements.randomElement(using: &generator)!
            if Bool.random(using: &generator) { copy.remove(at: Int.random(in: 0 ..< copy.count, using: &generator)) }
            do { _ = try Parser.parse(String(decoding: copy, as: UTF8.self)) } catch {
                XCTAssertTrue(error is GLMCError)
            }
        }
    }
}
