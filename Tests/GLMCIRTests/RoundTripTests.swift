import Foundation
import XCTest
import GLMCIR

/// print → parse → print gives identical text, for every construct of the format.
final class RoundTripTests: XCTestCase {
    func testEveryDTypeLiteralAndHex() {
        var b = FunctionBuilder("main")
        var outs: [ValueID] = []
        func add<T>(_ dtype: DType, _ values: [T]) {
            outs.append(b.const(TensorData(type: TensorType(dtype, static: [values.count]), elements: values)))
        }
        for n in [3, 20] { // literal, then hex (more elements than Printer.literalLimit)
            let k = (0 ..< n)
            add(.f64, k.map { Double($0) * -0.1 + 1e-300 })
            add(.f32, k.map { Float($0) / 3 })
            add(.f16, k.map { floatToHalf(Float($0) * 0.7 - 4) })
            add(.bf16, k.map { floatToBFloat16(Float($0) * 1.3e10) })
            add(.i64, k.map { Int64.min + Int64($0) })
            add(.i32, k.map { Int32.max - Int32($0) })
            add(.i16, k.map { Int16($0) - 300 })
            add(.i8, k.map { Int8(truncatingIfNeeded: $0 - 128) })
            add(.u64, k.map { UInt64.max - UInt64($0) })
            add(.u32, k.map { UInt32($0) * 100_000 })
            add(.u16, k.map { UInt16($0) * 3000 })
            add(.u8, k.map { UInt8($0 * 12) })
            add(.bool, k.map { UInt8($0 % 2) })
            outs.append(b.const(TensorData(type: TensorType(.string, static: [n]), contents: .strings(k.map { "s\($0)" }))))
        }
        b.ret(outs)
        let m = module(b.function)
        guard let parsed = assertModuleRoundTrip(m, weights: .full) else { return }
        for (a, c) in zip(m.main.body, parsed.main.body) {
            XCTAssertEqual(a.constantValue!.type, c.constantValue!.type)
            XCTAssertEqual(bytesOf(a.constantValue!), bytesOf(c.constantValue!), "\(a.constantValue!.type)")
            XCTAssertEqual(a.constantValue!.strings, c.constantValue!.strings)
        }
        // Elided mode prints the large ones as dense_resource<__elided__>, which reads back elided.
        guard let elided = assertModuleRoundTrip(m, weights: .elideLarge) else { return }
        XCTAssertEqual(elided.main.body.filter { $0.constantValue!.isElided }.count, 13)
    }

    func testNonFiniteFloatsSurviveAsHex() {
        var b = FunctionBuilder("main")
        let nanPayload = Float(bitPattern: 0x7FC0_1234)
        let f = b.const(TensorData(type: f32(4), elements: [nanPayload, -.infinity, .infinity, -Float.nan]))
        let d = b.const(TensorData(type: TensorType(.f64, static: [1]), elements: [Double(bitPattern: 0xFFF8_0000_0000_0001)]))
        let h = b.const(TensorData(type: TensorType(.f16, static: [2]), elements: [UInt16(0x7E01), 0xFC00]))
        let bf = b.const(TensorData(type: TensorType(.bf16, static: [1]), elements: [UInt16(0xFFC1)]))
        b.ret([f, d, h, bf])
        let m = module(b.function)
        for mode in [Printer.WeightMode.elideLarge, .full] {
            let text = Printer(weights: mode).print(m)
            XCTAssertTrue(text.contains("dense<\"0x3412C07F"), text)
            guard let parsed = assertModuleRoundTrip(m, weights: mode) else { return }
            for (a, c) in zip(m.main.body, parsed.main.body) {
                XCTAssertEqual(bytesOf(a.constantValue!), bytesOf(c.constantValue!))
            }
        }
    }

    func testHalfFloatsEdgeValues() {
        var b = FunctionBuilder("main")
        let halves: [UInt16] = [0x0001, 0x8001, 0x03FF, 0x0400, 0x7BFF, 0xFBFF, 0x8000, 0x3C00, 0x3555]
        let bfs: [UInt16] = [0x0001, 0x007F, 0x0080, 0x7F7F, 0xFF7F, 0x8000, 0x3F80, 0x3EAB]
        b.ret([b.const(TensorData(type: TensorType(.f16, static: [halves.count]), elements: halves)),
               b.const(TensorData(type: TensorType(.bf16, static: [bfs.count]), elements: bfs))])
        let m = module(b.function)
        XCTAssertFalse(Printer().print(m).contains("0x"), "finite halves print as literals")
        guard let parsed = assertModuleRoundTrip(m) else { return }
        XCTAssertEqual(parsed.main.body[0].constantValue!.elements(as: UInt16.self), halves)
        XCTAssertEqual(parsed.main.body[1].constantValue!.elements(as: UInt16.self), bfs)
    }

    func testStringsWithEscapesEverywhere() {
        let nasty = "q\"b\\s\nn\tt\rr\u{0}\u{1F}\u{7F}é💥 end"
        var b = FunctionBuilder(nasty)
        let x = b.arg(TensorType(.string, static: [2]), nasty)
        let y = b.op(OpName(nasty, domain: "dom ain"), opset: 2, [x], [TensorType(.string, static: [2])], names: [nasty],
                     attributes: [nasty: .string(nasty), "list": .strings([nasty, ""])], node: nasty)[0]
        let c = b.const(TensorData(type: TensorType(.string, static: [3]), contents: .strings([nasty, "", "\\u{41}"])))
        b.ret([y, c], names: [nasty, ""])
        let m = module(b.function, opsets: ["": 17, nasty: 4], metadata: [nasty: nasty, "k": ""])
        guard let parsed = assertModuleRoundTrip(m) else { return }
        XCTAssertEqual(parsed.metadata[nasty], nasty)
        XCTAssertEqual(parsed.opsets[nasty], 4)
        XCTAssertEqual(parsed.main.name, nasty)
        XCTAssertEqual(parsed.main.body[0].op, OpName(nasty, domain: "dom ain"))
        XCTAssertEqual(parsed.main.body[0].nodeName, nasty)
        XCTAssertEqual(parsed.main.name(of: ValueID(0)), nasty)
        XCTAssertEqual(parsed.main.outputNames, [nasty, ""])
        XCTAssertEqual(parsed.main.body[1].constantValue?.strings, [nasty, "", "\\u{41}"])
    }

    func testNestedGraphsWithCapturesAndGraphLists() {
        var outer = FunctionBuilder("main")
        let c = outer.arg(TensorType(.bool, .scalar), "c")
        let x = outer.arg(TensorType(.f32, Shape([.symbol("n")])), "x")
        let pre = outer.op1("Neg", [x], TensorType(.f32, Shape([.symbol("n")])), name: "neg")

        var inner = FunctionBuilder("inner")
        let i0 = inner.arg(i64())
        let ix = inner.capture(ValueID(0), TensorType(.f32, Shape([.symbol("n")])), "capx") // captures `body`'s capture
        inner.ret([inner.op1("Identity", [ix], TensorType(.f32, Shape([.symbol("n")])))])
        _ = i0

        var body = FunctionBuilder("body")
        let bx = body.capture(pre, TensorType(.f32, Shape([.symbol("n")])), "x")
        let bc = body.capture(c, TensorType(.bool, .scalar))
        let looped = body.op1("Loop", [nil, bc], TensorType(.f32, Shape([.symbol("n")])), attributes: ["body": .graph(inner.function)])
        let sum = body.op1("Add", [looped, bx], TensorType(.f32, Shape([.symbol("n")])))
        body.ret([sum], names: ["sum"])

        var other = FunctionBuilder("other")
        other.ret([other.arg(f32())])

        let y = outer.op(OpName("Scan"), opset: 16, [x, nil], [TensorType(.f32, Shape([.symbol("n")])), TensorType(.f32, .unranked)],
                         names: ["y", "z"], attributes: ["body": .graph(body.function), "alts": .graphs([other.function, body.function])])
        outer.ret([y[1], pre])
        let m = module(outer.function)
        guard let parsed = assertModuleRoundTrip(m) else { return }
        guard case .graph(let g)? = parsed.main.body[1].attributes["body"] else { return XCTFail("no body") }
        XCTAssertEqual(g.captures.map(\.outer), [pre, c])
        guard case .graph(let ig)? = g.body[0].attributes["body"] else { return XCTFail("no inner body") }
        XCTAssertEqual(ig.captures.map(\.outer), [g.captures[0].inner])
        XCTAssertEqual(parsed.main.body[1].opset, 16)
    }

    func testEveryAttributeKind() {
        var b = FunctionBuilder("main")
        let x = b.arg(f32(2))
        let t = TensorData(type: TensorType(.u16, static: [2, 1]), elements: [UInt16(1), 2])
        let big = TensorData(type: f32(5, 5), elements: [Float](repeating: 0.1, count: 25))
        var g = FunctionBuilder("g")
        g.ret([g.arg(f32(2))])
        let attrs: [String: Attribute] = [
            "int": .int(Int.min), "float": .float(-Float.leastNormalMagnitude), "string": .string(""), "tensor": .tensor(t),
            "graph": .graph(g.function), "ints": .ints([0, -1, Int.max]), "floats": .floats([.nan, .greatestFiniteMagnitude, .leastNonzeroMagnitude]),
            "strings": .strings(["", "x"]), "tensors": .tensors([t, big]), "graphs": .graphs([g.function, g.function]),
            "empty": .ints([]), "quoted key": .int(1),
        ]
        b.ret([b.op1("Everything", [x, nil], f32(2), attributes: attrs, node: "all")])
        assertModuleRoundTrip(module(b.function), weights: .full)
        assertModuleRoundTrip(module(b.function), weights: .elideLarge)
    }

    func testShapesOpsetsAndZeroResultInstructions() {
        var b = FunctionBuilder("f")
        let s = Shape([.symbol("batch"), .unknown, .known(0), .symbol("seq len"), .symbol("")])
        let x = b.arg(TensorType(.f32, s))
        let u = b.arg(TensorType(.i8, .unranked))
        let sc = b.arg(TensorType(.bool, .scalar))
        b.op(OpName("Print", domain: "debug"), opset: 1, [x, nil, u], [])
        let r = b.op(OpName("TopK"), opset: 10, [x, nil], [TensorType(.f32, s), TensorType(.i64, s)], names: ["", "idx"])
        b.op(OpName("Sink"), [sc], [], node: "sink")
        b.op(OpName("const"), [], [f32()])
        b.op(OpName("return"), [], [])
        b.ret([r[1], r[0], x])
        assertModuleRoundTrip(module(b.function, opsets: ["": 17, "debug": 2]))
        // A domain absent from `opsets` always prints its @N.
        assertModuleRoundTrip(module(b.function, opsets: ["": 17]))
    }

    func testConstantForms() {
        var b = FunctionBuilder("f")
        let data = TensorData(type: f32(1), elements: [Float(2)])
        let a = b.const(data, opset: 13)
        let s = b.op1("Constant", [], TensorType(.f32, Shape([.symbol("n")])), attributes: ["value": .tensor(data)])
        let v = b.op1("Constant", [], f32(), attributes: ["value_float": .float(1.5)])
        let w = b.op1("Constant", [], f32(1), attributes: ["value": .tensor(data), "extra": .int(1)])
        b.ret([a, s, v, w, b.const(data)])
        guard let parsed = assertModuleRoundTrip(module(b.function)) else { return }
        XCTAssertEqual(parsed.main.body.map(\.opset), [13, 17, 17, 17, 17])
        XCTAssertEqual(parsed.main.body[4].constantValue?.type, f32(1))
    }

    func testExternalDataRoundTrip() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("glmc-rt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let values = (0 ..< 40).map { Float($0) }
        try values.withUnsafeBytes { Data($0) }.write(to: dir.appendingPathComponent("data.bin"))
        let storage = try ByteStorage.mapping(path: dir.appendingPathComponent("data.bin").path)
        var b = FunctionBuilder("f")
        let t = TensorData(type: f32(30), contents: .bytes(storage, offset: 40, byteCount: 120),
                           origin: TensorData.ExternalOrigin(path: "data.bin", offset: 40, length: 120))
        b.ret([b.const(t, name: "w")])
        for mode in [Printer.WeightMode.elideLarge, .full] {
            guard let parsed = assertModuleRoundTrip(module(b.function), weights: mode, baseDirectory: dir.path) else { return }
            XCTAssertEqual(parsed.main.body[0].constantValue?.elements(as: Float.self), Array(values[10 ..< 40]))
            XCTAssertEqual(parsed.main.body[0].constantValue?.origin, t.origin)
        }
    }

    func testHandWrittenCanonicalText() {
        assertTextRoundTrip("""
            module attributes {ir_version = "8", producer = "glmc"}
            opsets {"" = 17, "com.microsoft" = 1}

            func @main(%0: f32[1,3,?h,?] loc("x"), %1: bool[] loc("c")) -> (f32[1,3,?h,?] loc("y"), f32[*]) {
              %2 = const dense<[0.5, -1.0, 3.0e-07]> : f32[3] loc("w")
              %3, %4 = com.microsoft.Attention@2(%0, _, %2) {num_heads = 8} : f32[1,3,?h,?], f32[*] loc("att", "")
              %5 = If(%1) {else_branch = graph @else() -> (f32[1,3,?h,?]) {
                %6 = const dense_resource<__elided__> : f32[1,3,4,4]
                %7 = Expand(%6) : f32[1,3,?h,?]
                return %7
              }, then_branch = graph @then() captures(%3 as %8: f32[1,3,?h,?] loc("att")) -> (f32[1,3,?h,?]) {
                return %8
              }} : f32[1,3,?h,?] node("if")
              return %5, %4
            }

            """.replacingOccurrences(of: "3.0e-07", with: "3e-07"), weights: .elideLarge)
    }

    func testLargeGeneratedModule() {
        var b = FunctionBuilder("main")
        var v = b.arg(TensorType(.f32, Shape([.symbol("batch"), .known(8)])), "in")
        let w = b.const(TensorData(type: f32(8), elements: [Float](repeating: 0.25, count: 8)), name: "w")
        for i in 0 ..< 2000 {
            v = i % 2 == 0 ? b.op1("Mul", [v, w], TensorType(.f32, Shape([.symbol("batch"), .known(8)])), name: "m\(i)", node: "n\(i)")
                           : b.op1("Tanh", [v], TensorType(.f32, Shape([.symbol("batch"), .known(8)])))
        }
        b.ret([v], names: ["out"])
        assertModuleRoundTrip(module(b.function))
    }
}

final class DocumentationTests: XCTestCase {
    /// The opening example of Docs/IR.md is printer output: it parses and prints back unchanged.
    func testSpecExampleRoundTrips() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let doc = try String(contentsOf: root.appendingPathComponent("Docs/IR.md"), encoding: .utf8)
        guard let open = doc.range(of: "```\nmodule attributes"),
              let close = doc.range(of: "\n```\n", range: open.upperBound ..< doc.endIndex) else {
            return XCTFail("example not found in Docs/IR.md")
        }
        let example = String(doc[doc.index(open.lowerBound, offsetBy: 4) ..< close.lowerBound]) + "\n"
        assertTextRoundTrip(example, weights: .elideLarge)
    }
}
