import XCTest
import GLMCIR

/// Exact text of small modules built in code: these pin down the IR text format (Docs/IR.md).
final class PrinterGoldenTests: XCTestCase {
    func testBasicModule() {
        var b = FunctionBuilder("main")
        let x = b.arg(f32(1, 3), "x")
        let w = b.const(TensorData(type: f32(3, 2), elements: [Float](arrayLiteral: 1, 2, 3, 4, 5, 0.5)), name: "w")
        let y = b.op1("MatMul", [x, w], f32(1, 2), name: "y", node: "mm")
        let r = b.op1("Relu", [y], f32(1, 2))
        b.ret([r], names: ["out"])
        let m = module(b.function, opsets: ["": 17, "com.microsoft": 1], metadata: ["producer": "pytorch", "doc string": "a\"b"])
        XCTAssertEqual(Printer().print(m), """
            module attributes {"doc string" = "a\\"b", producer = "pytorch"}
            opsets {"" = 17, "com.microsoft" = 1}

            func @main(%0: f32[1,3] loc("x")) -> (f32[1,2] loc("out")) {
              %1 = const dense<[1.0, 2.0, 3.0, 4.0, 5.0, 0.5]> : f32[3,2] loc("w")
              %2 = MatMul(%0, %1) : f32[1,2] loc("y") node("mm")
              %3 = Relu(%2) : f32[1,2]
              return %3
            }

            """)
    }

    func testOpsetsDomainsOmittedOperandsAndMultipleResults() {
        var b = FunctionBuilder("g")
        let x = b.arg(TensorType(.f32, Shape([.symbol("batch"), .unknown, .known(4)])))
        let s = b.arg(TensorType(.i64, .unranked))
        let rs = b.op(OpName("LayerNormalization"), [x, nil, s], [TensorType(.f32, Shape([.symbol("batch"), .unknown, .known(4)])), f32(), f32()],
                      names: ["y", "", "inv"], attributes: ["axis": .int(-1), "epsilon": .float(1e-05)])
        let g = b.op(OpName("Gelu", domain: "com.microsoft"), opset: 1, [rs[0]], [TensorType(.f32, .unranked)])[0]
        let o = b.op1("Resize", opset: 11, [g, nil, nil, s], TensorType(.f32, .unranked))
        b.op(OpName("Custom Op", domain: "my.dom"), opset: 3, [o], [])
        b.ret([o, rs[2]])
        let m = module(b.function, opsets: ["": 17, "com.microsoft": 1])
        XCTAssertEqual(Printer().print(m), """
            opsets {"" = 17, "com.microsoft" = 1}

            func @g(%0: f32[?batch,?,4], %1: i64[*]) -> (f32[*], f32[]) {
              %2, %3, %4 = LayerNormalization(%0, _, %1) {axis = -1, epsilon = 1e-05} : f32[?batch,?,4], f32[], f32[] loc("y", "", "inv")
              %5 = com.microsoft.Gelu(%2) : f32[*]
              %6 = Resize@11(%5, _, _, %1) : f32[*]
              "my.dom.Custom Op"@3(%6)
              return %6, %4
            }

            """)
    }

    func testEveryAttributeKind() {
        var b = FunctionBuilder("main")
        let x = b.arg(f32(2))
        let t = TensorData(type: i64(2), elements: [Int64](arrayLiteral: 3, -4))
        let attrs: [String: Attribute] = [
            "i": .int(7), "f": .float(0.25), "s": .string("tab\there"), "t": .tensor(t),
            "is": .ints([1, 2, 3]), "fs": .floats([1, -0.5, .infinity]), "ss": .strings(["a", "b"]),
            "ts": .tensors([t, t]), "empty": .ints([]), "nan": .float(.nan), "big": .float(1e20),
        ]
        let y = b.op1("Foo", [x], f32(2), attributes: attrs)
        b.ret([y])
        XCTAssertEqual(Printer().print(module(b.function)), """
            opsets {"" = 17}

            func @main(%0: f32[2]) -> (f32[2]) {
              %1 = Foo(%0) {big = 1e+20, empty = [], f = 0.25, fs = [1.0, -0.5, inf], i = 7, is = [1, 2, 3], nan = nan, s = "tab\\there", ss = ["a", "b"], t = dense<[3, -4]> : i64[2], ts = [dense<[3, -4]> : i64[2], dense<[3, -4]> : i64[2]]} : f32[2]
              return %1
            }

            """)
    }

    func testNestedGraphsAndCaptures() {
        var outer = FunctionBuilder("main")
        let c = outer.arg(TensorType(.bool, .scalar), "cond")
        let x = outer.arg(f32(2), "x")
        var thenB = FunctionBuilder("then")
        let cx = thenB.capture(x, f32(2), "x")
        let t = thenB.op1("Neg", [cx], f32(2))
        thenB.ret([t])
        var elseB = FunctionBuilder("else")
        let ex = elseB.capture(x, f32(2))
        elseB.ret([ex])
        let y = outer.op1("If", [c], f32(2), name: "y", attributes: [
            "then_branch": .graph(thenB.function), "else_branch": .graph(elseB.function)])
        let z = outer.op1("Abs", [y], f32(2))
        outer.ret([z])
        XCTAssertEqual(Printer().print(module(outer.function)), """
            opsets {"" = 17}

            func @main(%0: bool[] loc("cond"), %1: f32[2] loc("x")) -> (f32[2]) {
              %2 = If(%0) {else_branch = graph @else() captures(%1 as %3: f32[2]) -> (f32[2]) {
                return %3
              }, then_branch = graph @then() captures(%1 as %4: f32[2] loc("x")) -> (f32[2]) {
                %5 = Neg(%4) : f32[2]
                return %5
              }} : f32[2] loc("y")
              %6 = Abs(%2) : f32[2]
              return %6
            }

            """)
    }

    func testWeightModes() {
        var b = FunctionBuilder("main")
        let small = b.const(TensorData(type: f32(16), elements: [Float](repeating: 1, count: 16)))
        let large = b.const(TensorData(type: TensorType(.u8, static: [17]), elements: [UInt8](0 ..< 17)))
        let nan = b.const(TensorData(type: f32(1), elements: [Float.nan]))
        b.ret([small, large, nan])
        let m = module(b.function)
        XCTAssertEqual(Printer().print(m), """
            opsets {"" = 17}

            func @main() -> (f32[16], u8[17], f32[1]) {
              %0 = const dense<[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]> : f32[16]
              %1 = const dense_resource<__elided__> : u8[17]
              %2 = const dense<"0x0000C07F"> : f32[1]
              return %0, %1, %2
            }

            """)
        XCTAssertTrue(Printer(weights: .full).print(m).contains(
            "%1 = const dense<\"0x000102030405060708090A0B0C0D0E0F10\"> : u8[17]"))
    }

    func testExternalDataPrintsByReference() {
        var b = FunctionBuilder("main")
        let storage = ByteStorage.copying([UInt8](repeating: 0, count: 64))
        let t = TensorData(type: f32(4, 4), contents: .bytes(storage, offset: 0, byteCount: 64),
                           origin: TensorData.ExternalOrigin(path: "weights.bin", offset: 128, length: 64))
        b.ret([b.const(t, name: "w")])
        let expected = """
            opsets {"" = 17}

            func @main() -> (f32[4,4]) {
              %0 = const external<"weights.bin", 128, 64> : f32[4,4] loc("w")
              return %0
            }

            """
        XCTAssertEqual(Printer().print(module(b.function)), expected)
        XCTAssertEqual(Printer(weights: .full).print(module(b.function)), expected)
    }

    /// Constants the short `const` form cannot describe print as ordinary `Constant` instructions.
    func testConstantLongForms() {
        var b = FunctionBuilder("main")
        let data = TensorData(type: f32(1), elements: [Float(2)])
        let a = b.const(data, opset: 13)
        let s = b.op1("Constant", [], TensorType(.f32, Shape([.symbol("n")])), attributes: ["value": .tensor(data)])
        let v = b.op1("Constant", [], f32(), attributes: ["value_float": .float(1.5)])
        b.ret([a, s, v])
        XCTAssertEqual(Printer().print(module(b.function)), """
            opsets {"" = 17}

            func @main() -> (f32[1], f32[?n], f32[]) {
              %0 = Constant@13() {value = dense<[2.0]> : f32[1]} : f32[1]
              %1 = Constant() {value = dense<[2.0]> : f32[1]} : f32[?n]
              %2 = Constant() {value_float = 1.5} : f32[]
              return %0, %1, %2
            }

            """)
    }

    func testSymbolicDimsThatAreNotIdentifiersAreQuoted() {
        var b = FunctionBuilder("main")
        let x = b.arg(TensorType(.f32, Shape([.symbol("seq len"), .symbol("N/2"), .symbol("2n"), .symbol("")])))
        b.ret([x])
        XCTAssertEqual(Printer().print(module(b.function)), """
            opsets {"" = 17}

            func @main(%0: f32[?"seq len",?"N/2",?2n,?""]) -> (f32[?"seq len",?"N/2",?2n,?""]) {
              return %0
            }

            """)
    }

    func testEveryDTypeLiteral() {
        var b = FunctionBuilder("main")
        var outs: [ValueID] = []
        outs.append(b.const(TensorData(type: TensorType(.f64, static: [2]), elements: [0.1, -1e-300])))
        outs.append(b.const(TensorData(type: f32(2), elements: [Float(0.1), -3])))
        outs.append(b.const(TensorData(type: TensorType(.f16, static: [2]), elements: [floatToHalf(0.5), floatToHalf(-65504)])))
        outs.append(b.const(TensorData(type: TensorType(.bf16, static: [2]), elements: [floatToBFloat16(1.5), floatToBFloat16(-2)])))
        outs.append(b.const(TensorData(type: i64(2), elements: [Int64.min, Int64.max])))
        outs.append(b.const(TensorData(type: TensorType(.i32, static: [1]), elements: [Int32.min])))
        outs.append(b.const(TensorData(type: TensorType(.i16, static: [1]), elements: [Int16(-7)])))
        outs.append(b.const(TensorData(type: TensorType(.i8, static: [1]), elements: [Int8(-128)])))
        outs.append(b.const(TensorData(type: TensorType(.u64, static: [1]), elements: [UInt64.max])))
        outs.append(b.const(TensorData(type: TensorType(.u32, static: [1]), elements: [UInt32.max])))
        outs.append(b.const(TensorData(type: TensorType(.u16, static: [1]), elements: [UInt16.max])))
        outs.append(b.const(TensorData(type: TensorType(.u8, static: [1]), elements: [UInt8(255)])))
        outs.append(b.const(TensorData(type: TensorType(.bool, static: [2]), elements: [UInt8(1), 0])))
        outs.append(b.const(TensorData(type: TensorType(.string, static: [2]), contents: .strings(["a", "\u{1}\n"]))))
        b.ret(outs)
        let body = Printer().print(module(b.function)).split(separator: "\n").filter { $0.contains("const") }
        XCTAssertEqual(body, [
            "  %0 = const dense<[0.1, -1e-300]> : f64[2]",
            "  %1 = const dense<[0.1, -3.0]> : f32[2]",
            "  %2 = const dense<[0.5, -65504.0]> : f16[2]",
            "  %3 = const dense<[1.5, -2.0]> : bf16[2]",
            "  %4 = const dense<[-9223372036854775808, 9223372036854775807]> : i64[2]",
            "  %5 = const dense<[-2147483648]> : i32[1]",
            "  %6 = const dense<[-7]> : i16[1]",
            "  %7 = const dense<[-128]> : i8[1]",
            "  %8 = const dense<[18446744073709551615]> : u64[1]",
            "  %9 = const dense<[4294967295]> : u32[1]",
            "  %10 = const dense<[65535]> : u16[1]",
            "  %11 = const dense<[255]> : u8[1]",
            "  %12 = const dense<[true, false]> : bool[2]",
            "  %13 = const dense<[\"a\", \"\\u{1}\\n\"]> : string[2]",
        ].map { Substring($0) })
    }
}
