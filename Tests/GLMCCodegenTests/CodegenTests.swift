import Foundation
import XCTest
import GLMCIR
import GLMCOps
import GLMCInterpreter
@testable import GLMCCodegen

final class CodegenTests: XCTestCase {
    /// Add bias ([C,1,1] broadcast over [1,C,H,W]) → Relu → Mul by a constant → Sigmoid, fused.
    static let biasReluScaleSigmoid = """
    opsets {"" = 17, glmc = 1}
    func @main(%x: f32[1,4,3,5] loc("x"), %b: f32[4,1,1] loc("b")) -> (f32[1,4,3,5] loc("y")) {
      %y = glmc.Fused(%x, %b) {body = graph @elementwise_0(%p: f32[1,4,3,5], %q: f32[4,1,1]) -> (f32[1,4,3,5]) {
        %a = Add(%p, %q) : f32[1,4,3,5]
        %r = Relu(%a) : f32[1,4,3,5]
        %c = const dense<[0.75]> : f32[]
        %m = Mul(%r, %c) : f32[1,4,3,5]
        %s = Sigmoid(%m) : f32[1,4,3,5]
        return %s
      }, kind = "elementwise"} : f32[1,4,3,5]
      return %y
    }
    """

    func fusedKernel(_ text: String) throws -> (Module, Kernel) {
        let module = try Parser.parse(text)
        guard let inst = module.main.body.last(where: { $0.op == FusedOps.fused }) else {
            throw GLMCError("no glmc.Fused in the test module")
        }
        return (module, try ElementwiseLowering.lower(inst, in: module.main))
    }

    /// Every op the lowering handles, with three broadcast operand shapes and two outputs.
    static let everyOp = """
            opsets {"" = 20, glmc = 1}
            func @main(%x: f32[2,3,4], %y: f32[3,1], %z: f32[4]) -> (f32[2,3,4], f32[2,3,4]) {
              %r1, %r2 = glmc.Fused(%x, %y, %z) {body = graph @g(%p: f32[2,3,4], %q: f32[3,1], %w: f32[4]) -> (f32[2,3,4], f32[2,3,4]) {
                %a = Sub(%p, %q) : f32[2,3,4]
                %b = Div(%a, %w) : f32[2,3,4]
                %c = Tanh(%b) : f32[2,3,4]
                %d = Exp(%c) : f32[2,3,4]
                %e = Log(%d) : f32[2,3,4]
                %e2 = Neg(%e) : f32[2,3,4]
                %f = Max(%e2, %q) : f32[2,3,4]
                %g = Min(%f, %w) : f32[2,3,4]
                %h = LeakyRelu(%g) {alpha = 0.2} : f32[2,3,4]
                %i = Erf(%h) : f32[2,3,4]
                %j = Gelu(%p) : f32[2,3,4]
                %k = Gelu(%p) {approximate = "tanh"} : f32[2,3,4]
                %lo = const dense<[-0.5]> : f32[]
                %hi = const dense<[0.5]> : f32[]
                %l = Clip(%k, %lo, %hi) : f32[2,3,4]
                %m = Greater(%p, %w) : bool[2,3,4]
                %n = Where(%m, %j, %l) : f32[2,3,4]
                %o = Mul(%p, %p) : f32[2,3,4]
                %s = Sqrt(%o) : f32[2,3,4]
                %t = Add(%s, %i) : f32[2,3,4]
                %u = Sigmoid(%t) : f32[2,3,4]
                %v = Relu(%n) : f32[2,3,4]
                return %u, %v
              }, kind = "elementwise"} : f32[2,3,4], f32[2,3,4]
              return %r1, %r2
            }
    """

    /// f16 in and out: widening on load, rounding by Cast to f16 in the middle, narrowing on store.
    static let halfCasts = """
    opsets {"" = 17, glmc = 1}
    func @main(%x: f16[2,5], %b: f32[5]) -> (f16[2,5], f32[2,5]) {
      %r1, %r2 = glmc.Fused(%x, %b) {body = graph @half_0(%p: f16[2,5], %q: f32[5]) -> (f16[2,5], f32[2,5]) {
        %a = Cast(%p) {to = 1} : f32[2,5]
        %m = Mul(%a, %q) : f32[2,5]
        %h = Cast(%m) {to = 10} : f16[2,5]
        %back = Cast(%h) {to = 1} : f32[2,5]
        %e = Exp(%back) : f32[2,5]
        return %h, %e
      }, kind = "elementwise"} : f16[2,5], f32[2,5]
      return %r1, %r2
    }
    """

    // MARK: Snapshots

    static let snapshotDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Snapshots")

    /// Compares `text` with `Snapshots/<name>`; `GLMC_UPDATE_SNAPSHOTS=1` rewrites the file instead.
    func assertSnapshot(_ text: String, named name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let url = Self.snapshotDirectory.appendingPathComponent(name)
        if ProcessInfo.processInfo.environment["GLMC_UPDATE_SNAPSHOTS"] == "1" {
            try text.write(to: url, atomically: true, encoding: .utf8)
            return
        }
        let expected = try String(contentsOf: url, encoding: .utf8)
        XCTAssertEqual(text, expected, "snapshot \(name) differs (GLMC_UPDATE_SNAPSHOTS=1 rewrites it)", file: file, line: line)
    }

    func testSnapshotsInThreeDialects() throws {
        let (_, kernel) = try fusedKernel(Self.biasReluScaleSigmoid)
        for (dialect, file) in [(Dialect.c, "elementwise_0.c"), (.openCL, "elementwise_0.cl"), (.cuda, "elementwise_0.cu")] {
            try assertSnapshot(Renderer(dialect: dialect).render(kernel), named: file)
        }
    }

    // MARK: Kernel IR and lowering

    func testLoweredKernelShape() throws {
        let (_, kernel) = try fusedKernel(Self.biasReluScaleSigmoid)
        XCTAssertEqual(kernel.name, "elementwise_0")
        XCTAssertEqual(kernel.count, 60)
        XCTAssertEqual(kernel.buffers, [
            KernelBuffer(name: "in0", elementType: .f32, count: 60, access: .read),
            KernelBuffer(name: "in1", elementType: .f32, count: 4, access: .read),
            KernelBuffer(name: "out0", elementType: .f32, count: 60, access: .write),
        ])
        // Two loads, one temporary per body instruction (the constant is a literal), one store.
        XCTAssertEqual(kernel.body.count, 2 + 4 + 1)
        guard case .let(1, .f32, .load(1, let index)) = kernel.body[1] else { return XCTFail("\(kernel.body[1])") }
        // The channel axis is the outermost one larger than 1: no modulo needed.
        XCTAssertEqual(index, .div(.i, 15))
    }

    func testBroadcastIndex() throws {
        XCTAssertEqual(try ElementwiseLowering.broadcastIndex(from: [2, 3], to: [2, 3]), .i)
        XCTAssertEqual(try ElementwiseLowering.broadcastIndex(from: [3], to: [2, 3]), .mod(.i, 3))
        XCTAssertEqual(try ElementwiseLowering.broadcastIndex(from: [2, 1], to: [2, 3]), .div(.i, 3))
        XCTAssertEqual(try ElementwiseLowering.broadcastIndex(from: [], to: [2, 3]), .constant(0))
        XCTAssertEqual(try ElementwiseLowering.broadcastIndex(from: [1, 1], to: [2, 3]), .constant(0))
        // [2,1,4] over [2,3,4]: axes 0 and 2 are read, 1 is broadcast.
        let e = try ElementwiseLowering.broadcastIndex(from: [2, 1, 4], to: [2, 3, 4])
        for i in 0 ..< 24 {
            XCTAssertEqual(e.evaluate(i), (i / 12) * 4 + i % 4, "i = \(i)")
        }
        XCTAssertThrowsError(try ElementwiseLowering.broadcastIndex(from: [2], to: [2, 3]))
    }

    func testCommonSubexpressionsAreComputedOnce() throws {
        let (_, kernel) = try fusedKernel("""
        opsets {"" = 17, glmc = 1}
        func @main(%x: f32[8]) -> (f32[8]) {
          %y = glmc.Fused(%x) {body = graph @g(%p: f32[8]) -> (f32[8]) {
            %a = Exp(%p) : f32[8]
            %b = Exp(%p) : f32[8]
            %c = Add(%a, %b) : f32[8]
            %d = Mul(%c, %p) : f32[8]
            return %d
          }, kind = "elementwise"} : f32[8]
          return %y
        }
        """)
        let rendered = Renderer(dialect: .c).render(kernel)
        XCTAssertTrue(rendered.contains("float t0 = in0[i];"), rendered)
        XCTAssertTrue(rendered.contains("float t1 = expf(t0);"), rendered)
        XCTAssertTrue(rendered.contains("float t2 = t1 + t1;"), rendered)
        XCTAssertTrue(rendered.contains("float t3 = t2 * t0;"), rendered)
        XCTAssertEqual(rendered.components(separatedBy: "expf").count, 2, rendered)
    }

    func testSingleInstruction() throws {
        let module = try Parser.parse("""
        opsets {"" = 17}
        func @main(%x: f32[2,3]) -> (f32[2,3]) {
          %lo = const dense<[-1.0]> : f32[]
          %hi = const dense<[2.0]> : f32[]
          %y = Clip(%x, %lo, %hi) : f32[2,3]
          return %y
        }
        """)
        let kernel = try ElementwiseLowering.lower(module.main.body[2], in: module.main)
        XCTAssertEqual(kernel.buffers.map(\.name), ["in0", "out0"])
        let rendered = Renderer(dialect: .openCL).render(kernel)
        // Below the low bound gives it, then above the high one gives that (NaN stays NaN).
        XCTAssertTrue(rendered.contains("float t1 = (t0 < (-1.0f)) ? (-1.0f) : t0;"), rendered)
        XCTAssertTrue(rendered.contains("float t2 = (t1 > 2.0f) ? 2.0f : t1;"), rendered)
    }

    func testUnsupportedOpsThrow() throws {
        let module = try Parser.parse("""
        opsets {"" = 17, glmc = 1}
        func @main(%x: f32[2,3]) -> (f32[3,2]) {
          %y = glmc.Fused(%x) {body = graph @g(%p: f32[2,3]) -> (f32[3,2]) {
            %a = Relu(%p) : f32[2,3]
            %b = Transpose(%a) {perm = [1, 0]} : f32[3,2]
            return %b
          }, kind = "injective"} : f32[3,2]
          return %y
        }
        """)
        XCTAssertThrowsError(try ElementwiseLowering.lower(module.main.body[0], in: module.main)) { error in
            XCTAssertEqual("\(error)", "unsupported: cannot lower Transpose to an elementwise kernel yet")
        }
        let dynamic = try Parser.parse("""
        opsets {"" = 17}
        func @main(%x: f32[?n]) -> (f32[?n]) {
          %y = Relu(%x) : f32[?n]
          return %y
        }
        """)
        XCTAssertThrowsError(try ElementwiseLowering.lower(dynamic.main.body[0], in: dynamic.main)) { error in
            XCTAssertTrue("\(error)".hasPrefix("unsupported: "), "\(error)")
        }
    }

    // MARK: Compile and run the C dialect

    /// Deterministic inputs in [-2, 2).
    static func inputs(for f: Function) -> [Tensor] {
        var state: UInt64 = 0x9E3779B97F4A7C15
        return f.arguments.map { a in
            let shape = f.type(of: a).shape.staticSizes ?? []
            let count = shape.reduce(1, *)
            if f.type(of: a).dtype == .f16 {
                let values: [Double] = (0 ..< count).map { _ in
                    state = state &* 6364136223846793005 &+ 1442695040888963407
                    return Double(state >> 40) / Double(1 << 24) * 4 - 2
                }
                return Tensor(doubles: values, dtype: .f16, shape: shape)
            }
            if f.type(of: a).dtype == .bool {
                return Tensor((0 ..< count).map { _ in state = state &* 6364136223846793005 &+ 1442695040888963407; return state >> 40 & 1 == 1 }, shape: shape)
            }
            let values: [Float] = (0 ..< count).map { _ in
                state = state &* 6364136223846793005 &+ 1442695040888963407
                return Float(state >> 40) / Float(1 << 24) * 4 - 2
            }
            return Tensor(values, shape: shape)
        }
    }

    static func findCompiler() -> String? {
        let env = ProcessInfo.processInfo.environment
        if let cc = env["CC"], !cc.isEmpty { return cc }
        for dir in (env["PATH"] ?? "/usr/bin").split(separator: ":") {
            for name in ["cc", "gcc", "clang"] where FileManager.default.isExecutableFile(atPath: "\(dir)/\(name)") {
                return "\(dir)/\(name)"
            }
        }
        return nil
    }

    @discardableResult
    static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// A `main` that reads each input buffer from the file named by its argument, runs the kernel
    /// over [0, n) in two halves (as two runtime threads would) and writes the outputs.
    static func cType(_ t: ScalarType) -> String { Dialect.c.storageName(of: t) }

    static func harness(for kernel: Kernel) -> String {
        var s = "#include <stdio.h>\n#include <stdlib.h>\n\nint main(int argc, char **argv) {\n"
        for (k, b) in kernel.buffers.enumerated() {
            let type = cType(b.elementType)
            s += "  \(type) *\(b.name) = calloc(\(b.count), sizeof(\(type)));\n"
            if b.access == .read {
                s += "  { FILE *f = fopen(argv[\(k + 1)], \"rb\"); if (!f || fread(\(b.name), sizeof(\(type)), \(b.count), f) != \(b.count)) return 2; fclose(f); }\n"
            }
        }
        let args = kernel.buffers.map(\.name).joined(separator: ", ")
        s += "  \(kernel.name)(\(args), 0, \(kernel.count / 2));\n"
        s += "  \(kernel.name)(\(args), \(kernel.count / 2), \(kernel.count));\n"
        for (k, b) in kernel.buffers.enumerated() where b.access == .write {
            let type = cType(b.elementType)
            s += "  { FILE *f = fopen(argv[\(k + 1)], \"wb\"); if (!f || fwrite(\(b.name), sizeof(\(type)), \(b.count), f) != \(b.count)) return 3; fclose(f); }\n"
        }
        return s + "  return 0;\n}\n"
    }

    /// Renders the fused group of `text` in C, compiles and runs it, and compares it with the
    /// interpreter on the same inputs.
    func compileAndRun(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws {
        guard let cc = Self.findCompiler() else { throw XCTSkip("no C compiler (set $CC)") }
        let (module, kernel) = try fusedKernel(text)
        let inputs = Self.inputs(for: module.main)
        let expected = try Interpreter.run(module, inputs: inputs)

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("glmc-codegen-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let source = Renderer(dialect: .c).render(kernel) + "\n" + Self.harness(for: kernel)
        try source.write(to: dir.appendingPathComponent("kernel.c"), atomically: true, encoding: .utf8)
        let exe = dir.appendingPathComponent("kernel").path
        let compiled = try Self.run(cc, ["-std=c99", "-O2", "-Wall", "-Werror", "-Wno-unknown-pragmas", "-o", exe, dir.appendingPathComponent("kernel.c").path, "-lm"])
        XCTAssertEqual(compiled.status, 0, "compiling failed:\n\(compiled.output)\n\(source)", file: file, line: line)
        guard compiled.status == 0 else { return }

        var paths: [String] = []
        for (k, b) in kernel.buffers.enumerated() {
            let path = dir.appendingPathComponent("b\(k).bin").path
            paths.append(path)
            guard b.access == .read else { continue }
            let t = inputs[k]
            let data: Data
            switch t.storage {
            case .f32(let v): data = v.withUnsafeBytes { Data($0) }
            case .bool(let v): data = Data(v.map { $0 ? 1 : 0 })
            case .f16(let v): data = v.withUnsafeBytes { Data($0) }
            default: throw GLMCError("unexpected input type")
            }
            try data.write(to: URL(fileURLWithPath: path))
        }
        let ran = try Self.run(exe, paths)
        XCTAssertEqual(ran.status, 0, "running failed: \(ran.output)", file: file, line: line)
        let outputs = kernel.buffers.indices.filter { kernel.buffers[$0].access == .write }
        for (o, k) in outputs.enumerated() {
            let data = try Data(contentsOf: URL(fileURLWithPath: paths[k]))
            let isHalf = kernel.buffers[k].elementType == .f16
            let actual: [Float] = isHalf
                ? data.withUnsafeBytes { Array($0.bindMemory(to: UInt16.self)) }.map(halfToFloat)
                : data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            let want = expected[o].doubles
            // f16 results may differ by one half ulp where f32 intermediates round differently.
            let tolerance = isHalf ? 1e-3 : 1e-5
            XCTAssertEqual(actual.count, want.count, file: file, line: line)
            for (a, w) in zip(actual, want) where abs(Double(a) - w) > tolerance * max(1, abs(w)) {
                XCTFail("got \(a), expected \(w)", file: file, line: line)
                return
            }
        }
    }

    func testCompiledCMatchesInterpreter() throws {
        try compileAndRun(Self.biasReluScaleSigmoid)
    }

    func testCompiledCMatchesInterpreterWithHalves() throws {
        try compileAndRun(Self.halfCasts)
    }

    func testHalfRendering() throws {
        let (_, kernel) = try fusedKernel(Self.halfCasts)
        XCTAssertEqual(kernel.buffers.map(\.elementType), [.f16, .f32, .f16, .f32])
        let c = Renderer(dialect: .c).render(kernel)
        XCTAssertTrue(c.contains("float t0 = (float)in0[i];"), c)
        XCTAssertTrue(c.contains("float t3 = (float)(_Float16)(t2);"), c)
        XCTAssertTrue(c.contains("out0[i] = (_Float16)(t3);"), c)
        // OpenCL and CUDA store halves as their bits and convert with vload_half / vstore_half_rte
        // and PTX cvt (no cl_khr_fp16, no cuda_fp16.h).
        let cl = Renderer(dialect: .openCL).render(kernel)
        XCTAssertTrue(cl.contains("vstore_half_rte(f, 0, (__private half *)&h)"), cl)
        XCTAssertTrue(cl.contains("__global const ushort *restrict in0"), cl)
        XCTAssertFalse(cl.contains("cl_khr_fp16"), cl)
        let cu = Renderer(dialect: .cuda).render(kernel)
        XCTAssertTrue(cu.contains("float t0 = glmc_h2f(in0[i]);"), cu)
        XCTAssertTrue(cu.contains("float t3 = glmc_h2f(glmc_f2h(t2));"), cu)
        XCTAssertTrue(cu.contains("cvt.rn.f16.f32"), cu)
        // Without halves the prelude has no half support.
        let (_, plain) = try fusedKernel(Self.biasReluScaleSigmoid)
        XCTAssertFalse(Renderer(dialect: .cuda).render(plain).contains("glmc_h2f"))
    }

    func testCompiledCMatchesInterpreterOnEveryOp() throws {
        try compileAndRun(Self.everyOp)
    }

    static func syntaxCheck(_ source: String, file name: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("glmc-syntax-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent(name).path
        try source.write(toFile: path, atomically: true, encoding: .utf8)
        guard let clang = ["/usr/bin/clang", "/opt/swift/usr/bin/clang"].first(where: FileManager.default.isExecutableFile) else {
            throw XCTSkip("no clang")
        }
        return try Self.run(clang, arguments + [path])
    }

    /// Syntax-checks the OpenCL rendering with clang's OpenCL front end, when it has one.
    func testOpenCLSyntaxChecks() throws {
        for text in [Self.biasReluScaleSigmoid, Self.everyOp, Self.halfCasts] {
            let (_, kernel) = try fusedKernel(text)
            let source = Renderer(dialect: .openCL).render(kernel)
            let result = try Self.syntaxCheck(source, file: "kernel.cl",
                                         ["-x", "cl", "-cl-std=CL1.2", "-Xclang", "-finclude-default-header", "-fsyntax-only", "-Werror"])
            if result.status != 0, result.output.contains("opencl-c.h") || result.output.contains("unknown argument") {
                throw XCTSkip("clang cannot check OpenCL C here: \(result.output)")
            }
            XCTAssertEqual(result.status, 0, "\(result.output)\n\(source)")
        }
    }

    /// Declarations standing in for the CUDA built-ins the renderings use (the C library's math
    /// declared for the device too).
    static let cudaBuiltins = """
        #pragma clang force_cuda_host_device begin
        #include <math.h>
        #pragma clang force_cuda_host_device end
        #define __global__ __attribute__((global))
        #define __device__ __attribute__((device))
        #define __shared__ __attribute__((shared))
        void __syncthreads(void) __attribute__((device));
        struct dim3 { unsigned x, y, z; };
        extern __device__ dim3 blockIdx, blockDim, threadIdx;
        __device__ float __int_as_float(int);
        __device__ float __uint_as_float(unsigned int);
        __device__ unsigned int __float_as_uint(float);

        """

    /// clang's CUDA front end in device mode (so PTX inline assembly is checked), without a CUDA
    /// installation.
    static let cudaSyntaxArguments = ["-x", "cuda", "--cuda-device-only", "-nocudainc", "-nocudalib", "-nostdinc++", "--cuda-gpu-arch=sm_80",
                                      "-std=c++17", "-fsyntax-only", "-Werror"]

    /// Syntax-checks the CUDA rendering as C++ with a header standing in for the CUDA built-ins
    /// (no CUDA toolkit needed).
    func testCUDASyntaxChecks() throws {
        let builtins = Self.cudaBuiltins
        for text in [Self.biasReluScaleSigmoid, Self.everyOp, Self.halfCasts] {
            let (_, kernel) = try fusedKernel(text)
            let source = builtins + Renderer(dialect: .cuda).render(kernel)
            let result = try Self.syntaxCheck(source, file: "kernel.cu", Self.cudaSyntaxArguments)
            XCTAssertEqual(result.status, 0, "\(result.output)\n\(source)")
        }
    }

    /// The syntax checks above do report errors (they are not silently skipped or passing).
    func testSyntaxCheckRejectsBrokenOpenCL() throws {
        let result = try Self.syntaxCheck("__kernel void k(__global float *x) { x[0] = undefined_name; }\n", file: "bad.cl",
                                     ["-x", "cl", "-cl-std=CL1.2", "-Xclang", "-finclude-default-header", "-fsyntax-only"])
        XCTAssertNotEqual(result.status, 0)
    }
}
