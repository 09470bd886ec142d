import XCTest
import GLMCIR

/// Builds functions in tests: `b.arg`, `b.op`, `b.const`, then `b.function`.
struct FunctionBuilder {
    var function: Function

    init(_ name: String = "main") { function = Function(name: name) }

    mutating func arg(_ type: TensorType, _ name: String = "") -> ValueID {
        let v = function.addValue(type, name: name)
        function.arguments.append(v)
        return v
    }

    mutating func capture(_ outer: ValueID, _ type: TensorType, _ name: String = "") -> ValueID {
        let v = function.addValue(type, name: name)
        function.captures.append(Function.Capture(outer: outer, inner: v))
        return v
    }

    @discardableResult
    mutating func op(_ op: OpName, opset: Int = 17, _ operands: [ValueID?], _ types: [TensorType],
                     names: [String] = [], attributes: [String: Attribute] = [:], node: String = "") -> [ValueID] {
        let results = types.enumerated().map { i, t in function.addValue(t, name: i < names.count ? names[i] : "") }
        function.body.append(Instruction(op: op, opset: opset, operands: operands, results: results,
                                         attributes: attributes, nodeName: node))
        return results
    }

    mutating func op1(_ name: String, opset: Int = 17, _ operands: [ValueID?], _ type: TensorType,
                      name resultName: String = "", attributes: [String: Attribute] = [:], node: String = "") -> ValueID {
        op(OpName(name), opset: opset, operands, [type], names: [resultName], attributes: attributes, node: node)[0]
    }

    mutating func const(_ data: TensorData, opset: Int = 17, name: String = "") -> ValueID {
        op(.constant, opset: opset, [], [data.type], names: [name], attributes: ["value": .tensor(data)])[0]
    }

    mutating func ret(_ values: [ValueID], names: [String] = []) {
        function.outputs = values
        function.outputNames = names.isEmpty ? values.map { _ in "" } : names
    }
}

func f32(_ sizes: Int...) -> TensorType { TensorType(.f32, static: sizes) }
func i64(_ sizes: Int...) -> TensorType { TensorType(.i64, static: sizes) }

func module(_ main: Function, opsets: [String: Int] = ["": 17], metadata: [String: String] = [:]) -> Module {
    Module(opsets: opsets, main: main, metadata: metadata)
}

/// Parses `text` and prints it back, expecting the same bytes (`text` is in printer form).
func assertTextRoundTrip(_ text: String, weights: Printer.WeightMode = .full, baseDirectory: String? = nil,
                         file: StaticString = #filePath, line: UInt = #line) {
    do {
        let m = try Parser.parse(text, baseDirectory: baseDirectory)
        let again = Printer(weights: weights).print(m)
        XCTAssertEqual(again, text, "text did not round-trip", file: file, line: line)
    } catch {
        XCTFail("parse failed: \(error)\n\(text)", file: file, line: line)
    }
}

/// Prints `m`, parses the text, prints again and expects identical text. Returns the parsed module.
@discardableResult
func assertModuleRoundTrip(_ m: Module, weights: Printer.WeightMode = .full, baseDirectory: String? = nil,
                           file: StaticString = #filePath, line: UInt = #line) -> Module? {
    let text = Printer(weights: weights).print(m)
    do {
        let parsed = try Parser.parse(text, baseDirectory: baseDirectory)
        XCTAssertEqual(Printer(weights: weights).print(parsed), text, "module did not round-trip", file: file, line: line)
        return parsed
    } catch {
        XCTFail("parse failed: \(error)\n\(text)", file: file, line: line)
        return nil
    }
}

/// Expects `Parser.parse(text)` to throw a `GLMCError` whose message is exactly `message`.
func assertParseError(_ text: String, _ message: String, baseDirectory: String? = nil,
                      file: StaticString = #filePath, line: UInt = #line) {
    do {
        _ = try Parser.parse(text, baseDirectory: baseDirectory)
        XCTFail("expected error '\(message)'", file: file, line: line)
    } catch let error as GLMCError {
        XCTAssertEqual(error.message, message, file: file, line: line)
    } catch {
        XCTFail("expected GLMCError, got \(error)", file: file, line: line)
    }
}

/// Raw little-endian bytes of a tensor, for comparisons.
func bytesOf(_ t: TensorData) -> [UInt8] { t.elements(as: UInt8.self) }

func tensorAttribute(_ inst: Instruction, _ key: String) -> TensorData? {
    if case .tensor(let t)? = inst.attributes[key] { return t }
    return nil
}
