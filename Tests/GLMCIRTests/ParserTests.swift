import Foundation
import XCTest
import GLMCIR

/// Parses hand-written text and checks the structure it produces.
final class ParserTests: XCTestCase {
    func testBasicStructure() throws {
        let m = try Parser.parse("""
            module attributes {producer = "onnx", "key with space" = "v\\n"}
            opsets {"" = 17, "com.microsoft" = 1}

            func @main(%0: f32[1,3] loc("x"), %1: i64[?n]) -> (f32[1,3] loc("out"), i64[?n]) {
              %2 = const dense<[1.0, 2.0, 3.0]> : f32[3] loc("w")
              %3 = Add(%0, %2) {alpha = 1, beta = 2.5} : f32[1,3] loc("sum") node("add0")
              return %3, %1
            }
            """)
        XCTAssertEqual(m.metadata, ["producer": "onnx", "key with space": "v\n"])
        XCTAssertEqual(m.opsets, ["": 17, "com.microsoft": 1])
        let f = m.main
        XCTAssertEqual(f.name, "main")
        XCTAssertEqual(f.arguments, [ValueID(0), ValueID(1)])
        XCTAssertEqual(f.type(of: ValueID(0)), f32(1, 3))
        XCTAssertEqual(f.name(of: ValueID(0)), "x")
        XCTAssertEqual(f.type(of: ValueID(1)), TensorType(.i64, Shape([.symbol("n")])))
        XCTAssertEqual(f.body.count, 2)
        let c = f.body[0]
        XCTAssertEqual(c.op, .constant)
        XCTAssertEqual(c.opset, 17)
        XCTAssertEqual(c.operands.count, 0)
        XCTAssertEqual(c.constantValue?.elements(as: Float.self), [1, 2, 3])
        XCTAssertEqual(c.constantValue?.type, f32(3))
        XCTAssertEqual(f.name(of: c.results[0]), "w")
        let add = f.body[1]
        XCTAssertEqual(add.op, OpName("Add"))
        XCTAssertEqual(add.operands, [ValueID(0), c.results[0]])
        XCTAssertEqual(add.nodeName, "add0")
        guard case .int(1)? = add.attributes["alpha"], case .float(2.5)? = add.attributes["beta"] else {
            return XCTFail("attributes: \(add.attributes)")
        }
        XCTAssertEqual(f.outputs, [add.results[0], ValueID(1)])
        XCTAssertEqual(f.outputNames, ["out", ""])
    }

    func testOpNamesDomainsAndOpsets() throws {
        let m = try Parser.parse("""
            opsets {"" = 13, "com.microsoft" = 1}
            func @f(%a: f32[2]) -> () {
              %b = com.microsoft.Gelu(%a) : f32[2]
              %c = ai.onnx.ml.Scaler@2(%b) : f32[2]
              %d = "my domain.Fancy Op"@5(%c) : f32[2]
              %e = Relu@14(%d) : f32[2]
              %f = "Plain"(%e) : f32[2]
              Print(%f)
              return
            }
            """)
        let ops = m.main.body.map { ($0.op.domain, $0.op.type, $0.opset) }
        XCTAssertEqual(ops.map(\.0), ["com.microsoft", "ai.onnx.ml", "my domain", "", "", ""])
        XCTAssertEqual(ops.map(\.1), ["Gelu", "Scaler", "Fancy Op", "Relu", "Plain", "Print"])
        XCTAssertEqual(ops.map(\.2), [1, 2, 5, 14, 13, 13])
        XCTAssertEqual(m.main.body[5].results.count, 0)
        XCTAssertEqual(m.main.outputs.count, 0)
    }

    func testOmittedOperandsAndMultipleResults() throws {
        let m = try Parser.parse("""
            opsets {"" = 17}
            func @f(%0: f32[2], %1: f32[2]) -> (f32[2], f32[2]) {
              %2, %3, %4 = Split(%0, _) {axis = 0} : f32[1], f32[1], f32[0]
              %5 = Clip(%1, _, _) : f32[2]
              %6 = Concat(_, %2, %3) : f32[2]
              return %5, %6
            }
            """)
        let body = m.main.body
        XCTAssertEqual(body[0].results, [ValueID(2), ValueID(3), ValueID(4)])
        XCTAssertEqual(body[0].operands, [ValueID(0), nil])
        XCTAssertEqual(body[1].operands, [ValueID(1), nil, nil])
        XCTAssertEqual(body[2].operands, [nil, ValueID(2), ValueID(3)])
        XCTAssertEqual(m.main.type(of: ValueID(4)), f32(0))
    }

    func testTypes() throws {
        let m = try Parser.parse("""
            opsets {}
            func @f(%0: f32[1,3,?batch,?], %1: bool[], %2: string[*], %3: bf16[?"seq len",0], %4: u8[?2n]) -> () {
              return
            }
            """)
        let types = m.main.arguments.map { m.main.type(of: $0) }
        XCTAssertEqual(types, [
            TensorType(.f32, Shape([.known(1), .known(3), .symbol("batch"), .unknown])),
            TensorType(.bool, .scalar),
            TensorType(.string, .unranked),
            TensorType(.bf16, Shape([.symbol("seq len"), .known(0)])),
            TensorType(.u8, Shape([.symbol("2n")])),
        ])
        XCTAssertTrue(m.opsets.isEmpty)
    }

    /// Value names are scoped per function; the parser maps them to fresh ids and does not rely on
    /// the printer's numbering.
    func testNestedGraphScopesAndCaptures() throws {
        let m = try Parser.parse("""
            opsets {"" = 17}
            func @main(%x: f32[2], %c: bool[]) -> (f32[2]) {
              %y = If(%c) {else_branch = graph @e() captures(%x as %x: f32[2]) -> (f32[2]) {
                return %x
              }, then_branch = graph @t(%a: f32[2]) captures(%x as %in: f32[2] loc("cap"), %c as %cc: bool[]) -> (f32[2]) {
                %y = Add(%a, %in) : f32[2]
                %z = Loop(_, %cc) {body = graph @b() captures(%y as %yy: f32[2]) -> (f32[2]) {
                  return %yy
                }} : f32[2]
                return %z
              }} : f32[2]
              return %y
            }
            """)
        let f = m.main
        XCTAssertEqual(f.values.count, 3)
        let ifInst = f.body[0]
        guard case .graph(let t)? = ifInst.attributes["then_branch"], case .graph(let e)? = ifInst.attributes["else_branch"] else {
            return XCTFail("missing branches")
        }
        XCTAssertEqual(e.name, "e")
        XCTAssertEqual(e.captures.map(\.outer), [ValueID(0)])
        XCTAssertEqual(e.captures.map(\.inner), [ValueID(0)])
        XCTAssertEqual(e.outputs, [ValueID(0)])
        XCTAssertEqual(t.arguments, [ValueID(0)])
        XCTAssertEqual(t.captures.map(\.outer), [ValueID(0), ValueID(1)])
        XCTAssertEqual(t.captures.map(\.inner), [ValueID(1), ValueID(2)])
        XCTAssertEqual(t.name(of: ValueID(1)), "cap")
        XCTAssertEqual(t.type(of: ValueID(2)), TensorType(.bool, .scalar))
        let loop = t.body[1]
        XCTAssertEqual(loop.operands, [nil, ValueID(2)])
        guard case .graph(let body)? = loop.attributes["body"] else { return XCTFail("missing loop body") }
        // %y inside `then` is the Add result (id 3 there), not the outer %y.
        XCTAssertEqual(body.captures.map(\.outer), [ValueID(3)])
        XCTAssertEqual(t.outputs, [loop.results[0]])
    }

    func testAttributeLists() throws {
        let m = try Parser.parse("""
            opsets {"" = 17}
            func @f() -> () {
              Foo() {a = [], b = [1, 2.5], c = [nan, -inf, 1], d = ["x", "y"], e = [dense<[1]> : i8[1], dense_resource<__elided__> : f32[9]], f = [graph @g() -> () {
                return
              }], g = inf, h = -2, i = 1e-05}
              return
            }
            """)
        let a = m.main.body[0].attributes
        guard case .ints(let ints)? = a["a"] else { return XCTFail("a") }
        XCTAssertEqual(ints, [])
        guard case .floats(let b)? = a["b"] else { return XCTFail("b") }
        XCTAssertEqual(b, [1, 2.5])
        guard case .floats(let c)? = a["c"] else { return XCTFail("c") }
        XCTAssertTrue(c[0].isNaN)
        XCTAssertEqual(Array(c[1...]), [-.infinity, 1])
        guard case .strings(let d)? = a["d"] else { return XCTFail("d") }
        XCTAssertEqual(d, ["x", "y"])
        guard case .tensors(let e)? = a["e"] else { return XCTFail("e") }
        XCTAssertEqual(e.map(\.type), [TensorType(.i8, static: [1]), f32(9)])
        XCTAssertTrue(e[1].isElided)
        guard case .graphs(let g)? = a["f"] else { return XCTFail("f") }
        XCTAssertEqual(g.map(\.name), ["g"])
        guard case .float(let inf)? = a["g"], case .int(-2)? = a["h"], case .float(let eps)? = a["i"] else { return XCTFail("g h i") }
        XCTAssertEqual(inf, .infinity)
        XCTAssertEqual(eps, 1e-05)
    }

    func testDataForms() throws {
        let m = try Parser.parse("""
            opsets {"" = 17}
            func @f() -> (f32[2], i8[3], bool[3], string[2], f16[1], u64[1], f32[2], f32[2,2], f64[]) {
              %0 = const dense<[1, -2.5e1]> : f32[2]
              %1 = const dense<[-128, 0, 127]> : i8[3]
              %2 = const dense<[true, false, 1]> : bool[3]
              %3 = const dense<["a\\"b", "\\u{e9}\\t"]> : string[2]
              %4 = const dense<[0.333]> : f16[1]
              %5 = const dense<[18446744073709551615]> : u64[1]
              %6 = const dense<"0x0000803F000000c0"> : f32[2]
              %7 = const dense_resource<__elided__> : f32[2,2]
              %8 = const dense<[-inf]> : f64[]
              return %0, %1, %2, %3, %4, %5, %6, %7, %8
            }
            """)
        let c = m.main.body.map { $0.constantValue! }
        XCTAssertEqual(c[0].elements(as: Float.self), [1, -25])
        XCTAssertEqual(c[1].elements(as: Int8.self), [-128, 0, 127])
        XCTAssertEqual(c[2].elements(as: UInt8.self), [1, 0, 1])
        XCTAssertEqual(c[3].strings, ["a\"b", "é\t"])
        XCTAssertEqual(c[4].elements(as: UInt16.self), [floatToHalf(0.333)])
        XCTAssertEqual(c[5].elements(as: UInt64.self), [UInt64.max])
        XCTAssertEqual(c[6].elements(as: Float.self), [1, -2])
        XCTAssertTrue(c[7].isElided)
        XCTAssertEqual(c[8].elements(as: Double.self), [-.infinity])
    }

    func testExternalData() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("glmc-parser-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let floats: [Float] = [9, 1, 2, 3, 4]
        try floats.withUnsafeBytes { Data($0) }.write(to: dir.appendingPathComponent("w.bin"))
        let text = """
            opsets {"" = 17}
            func @f() -> (f32[2,2], f32[1]) {
              %0 = const external<"w.bin", 4, 16> : f32[2,2] loc("w")
              %1 = const external<"w.bin", 0, 4> : f32[1]
              return %0, %1
            }
            """
        let m = try Parser.parse(text, baseDirectory: dir.path)
        let t = m.main.body[0].constantValue!
        XCTAssertEqual(t.elements(as: Float.self), [1, 2, 3, 4])
        XCTAssertEqual(t.origin, TensorData.ExternalOrigin(path: "w.bin", offset: 4, length: 16))
        XCTAssertEqual(m.main.body[1].constantValue!.elements(as: Float.self), [9])
        // An absolute path needs no base directory.
        let absolute = text.replacingOccurrences(of: "\"w.bin\"", with: quoted(dir.appendingPathComponent("w.bin").path))
        XCTAssertEqual(try Parser.parse(absolute).main.body[0].constantValue!.elements(as: Float.self), [1, 2, 3, 4])
    }

    func testNonNumericAndLeadingZeroNamesAreDistinct() throws {
        let m = try Parser.parse("""
            opsets {"" = 17}
            func @f(%1: f32[1], %01: f32[2], %in.put-x: f32[3]) -> (f32[2], f32[1], f32[3]) {
              return %01, %1, %in.put-x
            }
            """)
        XCTAssertEqual(m.main.outputs, [ValueID(1), ValueID(0), ValueID(2)])
    }

    func testCommentsAndWhitespace() throws {
        let m = try Parser.parse("""
            // leading comment
            opsets{""=17}func@f(%0:f32[1])->(f32[1]){%1=Relu(%0):f32[1]// trailing
            return %1}
            """)
        XCTAssertEqual(m.main.body.count, 1)
    }

    func testByteOrderMarkIsIgnored() throws {
        XCTAssertEqual(try Parser.parse("\u{FEFF}func @f() -> () {\n  return\n}").main.name, "f")
    }

    func testOptionalHeaders() throws {
        let m = try Parser.parse("func @f(%0: f32[1]) -> (f32[1]) {\n  return %0\n}\n")
        XCTAssertTrue(m.opsets.isEmpty)
        XCTAssertTrue(m.metadata.isEmpty)
    }

    /// Ops named like the text's keywords still parse: what follows the name decides.
    func testKeywordLikeOpNames() throws {
        let m = try Parser.parse("""
            opsets {"" = 17}
            func @f(%0: f32[1]) -> (f32[1]) {
              %1 = const(%0) : f32[1]
              %2 = const@3() : f32[1] loc("n")
              return(%2) node("x")
              loc(%1)
              node(%1) node("y")
              return %2
            }
            """)
        XCTAssertEqual(m.main.body.map(\.op.type), ["const", "const", "return", "loc", "node"])
        XCTAssertEqual(m.main.body.map(\.nodeName), ["", "", "x", "", "y"])
        XCTAssertEqual(m.main.name(of: ValueID(2)), "n")
    }

    func testDeepButSaneNestingParses() throws {
        var text = "opsets {\"\" = 17}\nfunc @f(%0: bool[]) -> () {\n"
        let depth = Parser.maxGraphDepth
        for i in 0 ..< depth { text += "  Loop() {body = graph @g\(i)() -> () {\n" }
        for _ in 0 ..< depth { text += "  return\n  }}\n" }
        text += "  return\n}\n"
        let m = try Parser.parse(text)
        var f = m.main
        var levels = 0
        while case .graph(let g)? = f.body.first?.attributes["body"] { f = g; levels += 1 }
        XCTAssertEqual(levels, depth)
    }

    func testLargeModuleParsesQuickly() throws {
        var text = "opsets {\"\" = 17}\nfunc @main(%0: f32[?batch,64] loc(\"input\")) -> (f32[?batch,64]) {\n"
        let n = 20_000
        for i in 1 ... n {
            text += "  %\(i) = Relu(%\(i - 1)) {alpha = 0.5} : f32[?batch,64] loc(\"v\(i)\") node(\"n\(i)\")\n"
        }
        text += "  return %\(n)\n}\n"
        let start = Date()
        let m = try Parser.parse(text)
        let seconds = Date().timeIntervalSince(start)
        XCTAssertEqual(m.main.body.count, n)
        XCTAssertEqual(m.main.body[n - 1].operands, [ValueID(n - 1)])
        XCTAssertLessThan(seconds, 10, "20k instructions took \(seconds)s")
    }
}
