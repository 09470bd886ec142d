import GLMCIR
import GLMCOps
import XCTest

final class VerifierTests: XCTestCase {
    func parse(_ text: String) throws -> Module { try Parser.parse(text) }

    func assertRejected(_ module: Module, containing fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try ModuleVerifier.verify(module), file: file, line: line) { error in
            let message = (error as? GLMCError)?.message ?? "\(error)"
            XCTAssertTrue(message.contains(fragment), "'\(message)' lacks '\(fragment)'", file: file, line: line)
        }
    }

    func testAcceptsAWellFormedModule() throws {
        let m = try parse("""
        opsets {"" = 17}
        func @f(%0: f32[2]) -> (f32[2]) {
          %1 = const dense<[1.0, 2.0]> : f32[2]
          return %1
        }
        """)
        XCTAssertNoThrow(try ModuleVerifier.verify(m))
    }

    func testRejectsUseBeforeDefinition() throws {
        var f = Function(name: "f")
        let a = f.addValue(TensorType(.f32, static: [2]), name: "a")
        let b = f.addValue(TensorType(.f32, static: [2]), name: "b")
        f.body = [Instruction(op: OpName("Relu"), opset: 17, operands: [b], results: [a], nodeName: "relu")]
        f.outputs = [a]
        f.outputNames = ["a"]
        assertRejected(Module(opsets: ["": 17], main: f), containing: "before it is defined")
    }

    func testRejectsDoubleDefinition() throws {
        var f = Function(name: "f")
        let x = f.addValue(TensorType(.f32, static: [1]), name: "x")
        f.arguments = [x]
        let data = TensorData(type: TensorType(.f32, static: [1]), elements: [Float(1)])
        f.body = [Instruction(op: .constant, opset: 17, operands: [], results: [x], attributes: ["value": .tensor(data)])]
        f.outputs = [x]
        f.outputNames = ["x"]
        assertRejected(Module(opsets: ["": 17], main: f), containing: "defined more than once")
    }

    func testRejectsUndefinedOutput() throws {
        var f = Function(name: "f")
        let x = f.addValue(TensorType(.f32, static: [1]), name: "x")
        f.outputs = [x]
        f.outputNames = ["x"]
        assertRejected(Module(opsets: ["": 17], main: f), containing: "never defined")
    }

    func testRejectsConstantWhoseDataDisagreesWithItsType() throws {
        var f = Function(name: "f")
        let x = f.addValue(TensorType(.f32, static: [3]), name: "x")
        let data = TensorData(type: TensorType(.f32, static: [2]), elements: [Float(1), 2])
        f.body = [Instruction(op: .constant, opset: 17, operands: [], results: [x], attributes: ["value": .tensor(data)])]
        f.outputs = [x]
        f.outputNames = ["x"]
        assertRejected(Module(opsets: ["": 17], main: f), containing: "is declared f32[3]")
    }

    func testRejectsCapturesOfLaterValues() throws {
        var body = Function(name: "then")
        let inner = body.addValue(TensorType(.f32, static: [1]), name: "c")
        var f = Function(name: "f")
        let cond = f.addValue(TensorType(.bool, static: []), name: "cond")
        let out = f.addValue(TensorType(.f32, static: [1]), name: "out")
        let later = f.addValue(TensorType(.f32, static: [1]), name: "later")
        body.captures = [Function.Capture(outer: later, inner: inner)]
        body.outputs = [inner]
        body.outputNames = ["c"]
        f.arguments = [cond]
        let data = TensorData(type: TensorType(.f32, static: [1]), elements: [Float(1)])
        f.body = [
            Instruction(op: OpName("If"), opset: 17, operands: [cond], results: [out],
                        attributes: ["then_branch": .graph(body), "else_branch": .graph(body)], nodeName: "if"),
            Instruction(op: .constant, opset: 17, operands: [], results: [later], attributes: ["value": .tensor(data)]),
        ]
        f.outputs = [out]
        f.outputNames = ["out"]
        assertRejected(Module(opsets: ["": 17], main: f), containing: "not defined before its use")
    }
}
