import Foundation
import XCTest
import GLMCIR
import GLMCOps
import GLMCInterpreter
@testable import GLMCCodegen

/// Elementwise kernels on every element type: each test renders one fused group in C, compiles and
/// runs it on inputs full of edge values (NaN, infinities, -0, integer extremes, zero divisors) and
/// compares every output with the interpreter, exactly for integers and bools.
final class ElementwiseTypesTests: XCTestCase {
    static let shape = [2, 3, 4]
    static let integerTypes: [DType] = [.i8, .i16, .i32, .i64, .u8, .u16, .u32, .u64]
    static let floatTypes: [DType] = [.f32, .f64, .f16, .bf16]

    /// A module whose one `glmc.Fused` group takes `arguments` (name, type) and returns the result of
    /// every member (a line like `%a = Add(%p, %q)`, with its result type).
    static func group(_ arguments: [(String, String)], _ members: [(String, String)], opset: Int = 22) -> String {
        let params = arguments.map { "%\($0.0): \($0.1)" }.joined(separator: ", ")
        let outer = arguments.map { "%\($0.0)" }.joined(separator: ", ")
        let types = members.map(\.1).joined(separator: ", ")
        let results = members.map { String($0.0.split(separator: " ")[0]) }
        let outs = results.indices.map { "%r\($0)" }.joined(separator: ", ")
        return """
        opsets {"" = \(opset), glmc = 1}
        func @main(\(params)) -> (\(types)) {
          \(outs) = glmc.Fused(\(outer)) {body = graph @g(\(params)) -> (\(types)) {
        \(members.map { "    \($0.0) : \($0.1)" }.joined(separator: "\n"))
            return \(results.joined(separator: ", "))
          }, kind = "elementwise"} : \(types)
          return \(outs)
        }
        """
    }

    /// `members` with every value name suffixed by `_<suffix>`, so that several copies fit in a group.
    static func renamed(_ members: [(String, String)], _ suffix: String) -> [(String, String)] {
        let names = try! NSRegularExpression(pattern: "%([A-Za-z0-9]+)")
        return members.map { line, type in
            let range = NSRange(line.startIndex..., in: line)
            return (names.stringByReplacingMatches(in: line, range: range, withTemplate: "%$1_\(suffix)"), type)
        }
    }

    /// Inputs: full-size ones ([2,3,4]) start with the type's edge values; then pseudo-random ones.
    static func inputs(for f: Function) -> [Tensor] {
        var state: UInt64 = 0x2545F4914F6CDD1D
        func next() -> UInt64 { state = state &* 6364136223846793005 &+ 1442695040888963407; return state >> 11 }
        return f.arguments.map { a in
            let t = f.type(of: a)
            let shape = t.shape.staticSizes ?? []
            let n = shape.reduce(1, *)
            if t.dtype.isFloatingPoint {
                let specials: [Double] = [.nan, .infinity, -.infinity, -0.0, 0, 1e10, -1e10, 3e19, -3e19, 2.5, -2.5, 0.5, -1]
                let values = (0 ..< n).map { i in
                    i < specials.count && n == 24 ? specials[i] : Double(next() % 4096) / 1024 - 2
                }
                return Tensor(doubles: values, dtype: t.dtype, shape: shape)
            }
            if t.dtype == .bool { return Tensor((0 ..< n).map { _ in next() & 1 == 1 }, shape: shape) }
            let specials: [Int64] = [Int64.min, Int64.max, 0, -1, 1, 2, -2, Int64(Int32.min), 7, -128, 255, 3]
            let values: [Int64] = (0 ..< n).map { i in
                if i < specials.count && n == 24 { return specials[i] }
                // Small values, so that divisors and shift amounts are interesting, and some wide ones.
                return i % 5 == 0 ? Int64(bitPattern: next() << 11) : Int64(next() % 19) - 9
            }
            return Tensor(int64s: values, dtype: t.dtype, shape: shape)
        }
    }

    /// Renders, compiles and runs the group of `text`, and compares it with the interpreter.
    func compileAndRun(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws {
        guard let cc = CodegenTests.findCompiler() else { throw XCTSkip("no C compiler (set $CC)") }
        let module = try Parser.parse(text)
        guard let inst = module.main.body.last(where: { $0.op == FusedOps.fused }) else { return XCTFail("no group", file: file, line: line) }
        let kernel = try ElementwiseLowering.lower(inst, in: module.main)
        let inputs = Self.inputs(for: module.main)
        let expected = try Interpreter.run(module, inputs: inputs)

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("glmc-types-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let source = Renderer(dialect: .c).render(kernel) + "\n" + CodegenTests.harness(for: kernel)
        try source.write(to: dir.appendingPathComponent("kernel.c"), atomically: true, encoding: .utf8)
        let exe = dir.appendingPathComponent("kernel").path
        // -O3 as the CPU plan builder compiles.
        let compiled = try CodegenTests.run(cc, ["-std=c99", "-O3", "-Wall", "-Werror", "-Wno-unknown-pragmas", "-o", exe,
                                                 dir.appendingPathComponent("kernel.c").path, "-lm"])
        XCTAssertEqual(compiled.status, 0, "compiling failed:\n\(compiled.output)\n\(source)", file: file, line: line)
        guard compiled.status == 0 else { return }

        var paths: [String] = []
        for (k, b) in kernel.buffers.enumerated() {
            let path = dir.appendingPathComponent("b\(k).bin").path
            paths.append(path)
            if b.access == .read { try inputs[k].tensorData.withRawBytes { Data($0) }.write(to: URL(fileURLWithPath: path)) }
        }
        try syntaxCheckOtherDialects(kernel, file: file, line: line)
        let ran = try CodegenTests.run(exe, paths)
        XCTAssertEqual(ran.status, 0, "running failed: \(ran.output)", file: file, line: line)
        let outputs = kernel.buffers.indices.filter { kernel.buffers[$0].access == .write }
        for (o, k) in outputs.enumerated() {
            let want = expected[o]
            let bytes = try Data(contentsOf: URL(fileURLWithPath: paths[k]))
            let got = try bytes.withUnsafeBytes { try Tensor(TensorData(type: want.type, copying: $0)) }
            let member = text.split(separator: "\n").filter { $0.hasPrefix("    %") }[o]
            if !want.dtype.isFloatingPoint {
                XCTAssertEqual(got.tensorData.bytes, want.tensorData.bytes,
                               "\(member): got \(got.int64s), expected \(want.int64s) on \(inputs.map(\.doubles))", file: file, line: line)
                continue
            }
            let tolerance = want.dtype == .bf16 ? 8e-3 : want.dtype == .f16 ? 1e-3 : 1e-5
            for (i, (a, w)) in zip(got.doubles, want.doubles).enumerated() {
                // Zeros must have the interpreter's sign, except in f16: there GCC 12 (-O2) and clang
                // (-O2/-O3) turn `x < 0 ? 0 : x` of a -0 half into +0 in large kernels (not yet
                // understood; see Docs/Codegen.md).
                let same = a == 0 && w == 0 && want.dtype != .f16 ? a.sign == w.sign : a == w || (a.isNaN && w.isNaN) || abs(a - w) <= tolerance * max(1, abs(w))
                if !same {
                    XCTFail("\(member): element \(i) is \(a), expected \(w) (inputs \(inputs.map { $0.doubles[min(i, $0.doubles.count - 1)] }))",
                            file: file, line: line)
                    break
                }
            }
        }
    }

    /// The same kernel in OpenCL C and CUDA passes clang's syntax checks (skipped without clang).
    func syntaxCheckOtherDialects(_ kernel: Kernel, file: StaticString, line: UInt) throws {
        let cl = Renderer(dialect: .openCL).render(kernel)
        if let result = try? CodegenTests.syntaxCheck(cl, file: "kernel.cl", ["-x", "cl", "-cl-std=CL1.2", "-Xclang", "-finclude-default-header", "-fsyntax-only", "-Werror"]),
           !(result.status != 0 && (result.output.contains("opencl-c.h") || result.output.contains("unknown argument"))) {
            XCTAssertEqual(result.status, 0, "\(result.output)\n\(cl)", file: file, line: line)
        }
        let cu = CodegenTests.cudaBuiltins + Renderer(dialect: .cuda).render(kernel)
        if let result = try? CodegenTests.syntaxCheck(cu, file: "kernel.cu", CodegenTests.cudaSyntaxArguments) {
            XCTAssertEqual(result.status, 0, "\(result.output)\n\(cu)", file: file, line: line)
        }
    }

    func testIntegerArithmeticOnEveryIntegerType() throws {
        var arguments: [(String, String)] = [], all: [(String, String)] = []
        for t in Self.integerTypes {
            let v = "\(t)[2,3,4]", signed = !t.rawValue.hasPrefix("u")
            var members: [(String, String)] = [
                ("%a = Add(%p, %q)", v), ("%b = Sub(%p, %q)", v), ("%c = Mul(%p, %q)", v), ("%d = Div(%p, %q)", v),
                ("%e = Mod(%p, %q)", v), ("%f = Mod(%p, %q) {fmod = 1}", v), ("%g = Max(%p, %q)", v),
                ("%h = Min(%a, %b, %q)", v), ("%i = BitwiseAnd(%p, %q)", v), ("%j = BitwiseOr(%p, %q)", v),
                ("%k = BitwiseXor(%p, %q)", v), ("%l = BitwiseNot(%p)", v), ("%m = Sign(%p)", v), ("%n = Abs(%p)", v),
                ("%o = Less(%p, %q)", "bool[2,3,4]"), ("%w = Where(%o, %p, %q)", v), ("%x = Pow(%p, %q)", v),
                ("%y = BitShift(%p, %q) {direction = \"LEFT\"}", v), ("%z = BitShift(%p, %q) {direction = \"RIGHT\"}", v),
                ("%eq = Equal(%p, %q)", "bool[2,3,4]"), ("%ge = GreaterOrEqual(%p, %q)", "bool[2,3,4]"),
                ("%er = Erf(%p)", v), ("%sh = Shrink(%p) {lambd = 1.5, bias = 0.5}", v),
            ]
            if signed { members += [("%ng = Neg(%p)", v), ("%rl = Relu(%p)", v)] }
            if [.i32, .i64, .u32, .u64].contains(t) { members.append(("%pr = PRelu(%p, %q)", v)) }
            arguments += [("p_\(t)", v), ("q_\(t)", "\(t)[4]")]
            all += Self.renamed(members, "\(t)")
        }
        try compileAndRun(Self.group(arguments, all, opset: 18))
    }

    func testClipWithRuntimeBounds() throws {
        var arguments: [(String, String)] = [], all: [(String, String)] = []
        for t in [DType.i32, .u8, .f32, .f16, .f64] {
            let v = "\(t)[2,3,4]"
            arguments += [("p_\(t)", v), ("lo_\(t)", "\(t)[]"), ("hi_\(t)", "\(t)[1]")]
            all += Self.renamed([("%a = Clip(%p, %lo, %hi)", v), ("%b = Clip(%p, %lo)", v)], "\(t)")
        }
        try compileAndRun(Self.group(arguments, all))
    }

    func testCastsBetweenEveryPairOfTypes() throws {
        let types = Self.floatTypes + Self.integerTypes + [DType.bool]
        var arguments: [(String, String)] = [], all: [(String, String)] = []
        for from in types {
            let members = types.enumerated().map { k, to in ("%c\(k) = Cast(%p) {to = \(to.onnxCode)}", "\(to)[2,3,4]") }
            arguments.append(("p_\(from)", "\(from)[2,3,4]"))
            all += Self.renamed(members, "\(from)")
        }
        try compileAndRun(Self.group(arguments, all))
    }

    func testFloatMathAndActivations() throws {
        let unary = ["Neg", "Abs", "Sign", "Reciprocal", "Exp", "Log", "Sqrt", "Erf", "Sin", "Cos", "Tan", "Asin", "Acos",
                     "Atan", "Sinh", "Cosh", "Tanh", "Asinh", "Acosh", "Atanh", "Ceil", "Floor", "Round", "Relu",
                     "Sigmoid", "Softplus", "Softsign", "Mish", "HardSwish", "Gelu"]
        var arguments: [(String, String)] = [], all: [(String, String)] = []
        for t in Self.floatTypes {
            let v = "\(t)[2,3,4]", b = "bool[2,3,4]"
            var members = unary.enumerated().map { k, op in ("%u\(k) = \(op)(%p)", v) }
            members += [
                ("%a1 = LeakyRelu(%p) {alpha = 0.2}", v), ("%a2 = Elu(%p) {alpha = 0.7}", v), ("%a3 = Selu(%p)", v),
                ("%a4 = Celu(%p) {alpha = 1.5}", v), ("%a5 = HardSigmoid(%p)", v), ("%a6 = Swish(%p) {alpha = 1.25}", v),
                ("%a7 = ThresholdedRelu(%p) {alpha = 0.5}", v), ("%a8 = Shrink(%p) {lambd = 1.0, bias = 0.25}", v),
                ("%a9 = Gelu(%p) {approximate = \"tanh\"}", v), ("%b1 = Mod(%p, %q)", v), ("%b2 = Mod(%p, %q) {fmod = 1}", v),
                ("%b3 = Max(%p, %q)", v), ("%b4 = Min(%p, %q)", v), ("%b5 = Mean(%p, %q, %p)", v), ("%b6 = Sum(%p, %q, %q)", v),
                ("%b7 = Pow(%p, %q)", v), ("%b8 = PRelu(%p, %q)", v), ("%b9 = Div(%p, %q)", v),
                ("%c1 = IsNaN(%p)", b), ("%c2 = IsInf(%p)", b), ("%c3 = IsInf(%p) {detect_negative = 0}", b),
                ("%c4 = IsInf(%p) {detect_positive = 0}", b), ("%c5 = Equal(%p, %q)", b), ("%c6 = LessOrEqual(%p, %q)", b),
            ]
            arguments += [("p_\(t)", v), ("q_\(t)", "\(t)[4]")]
            all += Self.renamed(members, "\(t)")
        }
        // Swish is new in opset 24.
        try compileAndRun(Self.group(arguments, all, opset: 24))
    }

    func testBoolLogic() throws {
        let b = "bool[2,3,4]"
        try compileAndRun(Self.group([("p", b), ("q", "bool[4]"), ("x", "i64[2,3,4]"), ("y", "f32[4]")], [
            ("%a = And(%p, %q)", b), ("%o = Or(%p, %q)", b), ("%x2 = Xor(%p, %q)", b), ("%n = Not(%a)", b),
            ("%e = Equal(%p, %q)", b), ("%w = Where(%o, %x, %x)", "i64[2,3,4]"), ("%c = CastLike(%p, %y)", "f32[2,3,4]"),
        ]))
    }

    func testPowWithMixedTypes() throws {
        let pairs: [(DType, DType)] = [(.f32, .i64), (.f32, .f64), (.i32, .i32), (.i64, .f32), (.u8, .i64), (.f16, .f32), (.f64, .i32)]
        var arguments: [(String, String)] = [], all: [(String, String)] = []
        for (k, (base, exponent)) in pairs.enumerated() {
            arguments += [("p_\(k)", "\(base)[2,3,4]"), ("q_\(k)", "\(exponent)[4]")]
            all += Self.renamed([("%a = Pow(%p, %q)", "\(base)[2,3,4]")], "\(k)")
        }
        try compileAndRun(Self.group(arguments, all))
    }

    /// Operands and results of a group in half types are rounded after every member, as the
    /// interpreter's.
    func testHalfIntermediatesAreRounded() throws {
        var arguments: [(String, String)] = [], all: [(String, String)] = []
        for t in [DType.f16, .bf16] {
            let v = "\(t)[2,3,4]"
            arguments += [("p_\(t)", v), ("q_\(t)", "\(t)[4]")]
            all += Self.renamed([
                ("%a = Add(%p, %q)", v), ("%b = Mul(%a, %a)", v), ("%c = Sum(%a, %b, %q)", v), ("%d = Cast(%c) {to = 1}", "f32[2,3,4]"),
            ], "\(t)")
        }
        try compileAndRun(Self.group(arguments, all))
    }

    /// `x + -0` and `x + 0` differ for x = -0; the kernel must not take one for the other.
    func testSignedZeroConstantsAreDistinct() throws {
        let v = "f32[2,3,4]"
        try compileAndRun("""
        opsets {"" = 17, glmc = 1}
        func @main(%x: f32[2,3,4]) -> (f32[2,3,4], f32[2,3,4]) {
          %r0, %r1 = glmc.Fused(%x) {body = graph @g(%p: \(v)) -> (\(v), \(v)) {
            %n = const dense<[-0.0]> : f32[]
            %z = const dense<[0.0]> : f32[]
            %a = Add(%p, %n) : \(v)
            %b = Add(%p, %z) : \(v)
            return %a, %b
          }, kind = "elementwise"} : \(v), \(v)
          return %r0, %r1
        }
        """)
    }

    func testLiteralsOfEveryType() throws {
        let kernel = Kernel(name: "k", buffers: [KernelBuffer(name: "out0", elementType: .i64, count: 1, access: .write)], count: 1,
                            body: [.store(buffer: 0, index: .i, value: .binary(.add, .constant(.int(.min, .i64)), .constant(.int(-5, .i64))))])
        let c = Renderer(dialect: .c).render(kernel)
        XCTAssertTrue(c.contains("((int64_t)0x8000000000000000)"), c)
        XCTAssertTrue(c.contains("#include <stdint.h>"), c)
        XCTAssertTrue(Renderer(dialect: .openCL).render(kernel).contains("((long)0x8000000000000000)"))
        XCTAssertEqual(Literal.of(300, .u8), .uint(300, .u8))
        XCTAssertEqual(Literal.of(-.infinity, .u32), .uint(0, .u32))
        XCTAssertEqual(Literal.of(.nan, .i16), .int(0, .i16))
    }

    /// Ops on types they are not defined for are refused with an "unsupported" error naming the op
    /// (the renderer never sees them).
    func testIllTypedOperationsAreRefused() throws {
        let cases: [(String, String, String)] = [
            ("%a = Exp(%p)", "i32[2,3,4]", "Exp on i32"),
            ("%a = And(%p, %p)", "i32[2,3,4]", "And on i32"),
            ("%a = Sum(%p, %p)", "i32[2,3,4]", "Sum on i32"),
            ("%a = BitShift(%p, %p)", "i32[2,3,4]", "BitShift without direction LEFT or RIGHT"),
            ("%a = Not(%p)", "i32[2,3,4]", "Not on i32"),
            ("%a = Gelu(%p) {approximate = \"cubic\"}", "f32[2,3,4]", "Gelu with approximate = \"cubic\""),
        ]
        for (member, type, message) in cases {
            let module = try Parser.parse(Self.group([("p", type)], [(member, type)]))
            XCTAssertThrowsError(try ElementwiseLowering.lower(module.main.body[0], in: module.main), member) { error in
                XCTAssertEqual("\(error)", "unsupported: cannot lower \(message) to an elementwise kernel yet")
            }
        }
    }

    func testStringsAreRefused() throws {
        let module = try Parser.parse(Self.group([("p", "f32[2,3,4]")], [("%a = Cast(%p) {to = 8}", "string[2,3,4]")]))
        XCTAssertThrowsError(try ElementwiseLowering.lower(module.main.body[0], in: module.main)) { error in
            XCTAssertEqual("\(error)", "unsupported: cannot lower a value of type string to an elementwise kernel yet")
        }
    }
}
