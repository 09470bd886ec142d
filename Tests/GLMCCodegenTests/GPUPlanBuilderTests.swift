import GLMCCodegen
import GLMCIR
import GLMCPlan
import XCTest

/// Plan generation for `--target opencl` and `--target cuda`: entry points, launches, the tiled
/// GEMM, scratch memory and f16 weights, and the generated sources pass clang's OpenCL C 1.2 and
/// CUDA (device) front ends (skipped without clang). Running them is the runtimes' tests' job.
final class GPUPlanBuilderTests: XCTestCase {
    func options(_ target: PlanTarget) -> CPUPlanOptions {
        CPUPlanOptions(sourceModelSha256: String(repeating: "0", count: 64), glmcVersion: "test", target: target, gpuArch: "sm_90")
    }

    /// Gemm + Relu (small: the one-output-per-work-item kernel), then a Sigmoid.
    static let gemmRelu = """
    opsets {"" = 17, glmc = 1}
    func @main(%x: f32[2,4] loc("x")) -> (f32[2,3] loc("y")) {
      %w = const dense<[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0]> : f32[3,4] loc("w")
      %b = const dense<[0.5, -0.5, 1.0]> : f32[3] loc("b")
      %h = glmc.Fused(%x, %w, %b) {body = graph @gemm_relu_0(%p: f32[2,4], %q: f32[3,4], %r: f32[3]) -> (f32[2,3]) {
        %g = Gemm(%p, %q, %r) {transB = 1} : f32[2,3]
        %a = Relu(%g) : f32[2,3]
        return %a
      }, kind = "gemm_relu"} : f32[2,3] loc("h")
      %y = Sigmoid(%h) : f32[2,3] loc("y")
      return %y
    }
    """

    static let weights: String = {
        let values: [String] = (0 ..< 16 * 8 * 9).map { i in String(Double(i % 7) / 8 - 0.375) }
        return values.joined(separator: ", ")
    }()

    /// A convolution large enough for the tiled (implicit GEMM) kernel, a MatMul with a runtime
    /// right operand, TopK (scratch memory) and a Cast to f16.
    static let mixed = """
    opsets {"" = 17}
    func @main(%x: f32[1,8,10,10] loc("x"), %a: f32[40,40] loc("a"), %b: f32[40,40] loc("b")) -> (f32[1,16,10,10] loc("y"), f32[40,40] loc("z"), f32[40,3] loc("t"), f16[40,40] loc("h")) {
      %w = const dense<[\(weights)]> : f32[16,8,3,3] loc("w")
      %y = Conv(%x, %w) {pads = [1, 1, 1, 1]} : f32[1,16,10,10] loc("y")
      %z = MatMul(%a, %b) : f32[40,40] loc("z")
      %k = const dense<[3]> : i64[1] loc("k")
      %t, %i = TopK(%z, %k) {axis = 1} : f32[40,3], i64[40,3] loc("t", "i")
      %h = Cast(%z) {to = 10} : f16[40,40] loc("h")
      return %y, %z, %t, %h
    }
    """

    func testEntryPointsAndLaunches() throws {
        for target in [PlanTarget.opencl, .cuda] {
            let g = try CPUPlanBuilder.generate(try Parser.parse(Self.gemmRelu), options: options(target))
            let m = g.manifest
            XCTAssertEqual(m.target, target.rawValue)
            XCTAssertEqual(m.cpuFeatures, [])
            XCTAssertEqual(m.gpuArch, target == .cuda ? "sm_90" : nil)
            XCTAssertEqual(m.kernelSources, [PlanKernelSource(name: target.sourceName, language: target.language)])
            XCTAssertEqual(m.steps.map(\.kernel), ["glmc_step0", "glmc_step1"])
            if target == .opencl {
                XCTAssertEqual(m.steps[0].launch, ["range": 6, "global": 64, "local": 64])
                XCTAssertTrue(g.source.contains("__kernel void glmc_step0(__global uchar *arena, __global uchar *weights) {"), g.source)
                XCTAssertTrue(g.source.contains("#define GLMC_GLOBAL __global"), g.source)
            } else {
                XCTAssertEqual(m.steps[0].launch, ["range": 6, "grid_x": 1, "block_x": 64, "shared_bytes": 0])
                XCTAssertTrue(g.source.contains("extern \"C\" __global__ void glmc_step0(unsigned char *arena, unsigned char *weights) {"), g.source)
            }
            // The entry point passes the arguments' addresses to the body: x, w, b, then the output.
            let w = m.weights.first { $0.name == "w" }!.offset, b = m.weights.first { $0.name == "b" }!.offset
            let x = m.buffers[m.inputs[0].buffer].offset
            XCTAssertTrue(g.source.contains("= {arena + \(x), weights + \(w), weights + \(b), arena + "), g.source)
            XCTAssertTrue(g.source.contains("glmc_step0_body(args, i, i + 1);"), g.source)
            XCTAssertNoThrow(try PlanFile(manifest: m, sources: [target.sourceName: g.source], code: [:], weights: g.weights).validate())
            try syntaxCheck(g.source, target)
        }
    }

    func testTiledGEMMScratchAndHalves() throws {
        for target in [PlanTarget.opencl, .cuda] {
            let g = try CPUPlanBuilder.generate(try Parser.parse(Self.mixed), options: options(target))
            let m = g.manifest
            XCTAssertEqual(m.steps.map(\.kind), ["conv2d_tiled", "matmul_tiled", "top_k", "elementwise"])
            // Conv: 16 x 100 outputs in 16x16 tiles (16 < 64), one group of 256 per tile.
            let conv = m.steps[0].launch
            XCTAssertEqual(target == .opencl ? conv["global"] : conv["grid_x"].map { $0 * 256 }, 7 * 256)
            XCTAssertTrue(g.source.contains(target == .opencl ? "__local float As[16][17];" : "__shared__ float As[16][17];"), g.source)
            // TopK's merge buffers: the scratch buffer (2 x 40 longs per row, 40 rows) as the last argument.
            guard case .buffer(let scratch)? = m.steps[2].arguments.last else { return XCTFail("TopK has no scratch buffer") }
            XCTAssertGreaterThanOrEqual(m.buffers[scratch].bytes, 40 * 2 * 40 * 8)
            XCTAssertTrue(m.buffers[scratch].offset + m.buffers[scratch].bytes <= m.arenaBytes)
            XCTAssertFalse(g.source.contains("malloc"), g.source)
            XCTAssertTrue(g.source.contains("glmc_f2h("), g.source)
            try syntaxCheck(g.source, target)
        }
    }

    func testFP16Weights() throws {
        var o = options(.opencl)
        o.fp16Weights = true
        let g = try CPUPlanBuilder.generate(try Parser.parse(Self.mixed), options: o)
        XCTAssertEqual(g.manifest.metadata["precision"], "fp16")
        XCTAssertEqual(g.manifest.metadata["fp16_weights"], "1")
        let w: PlanWeight = try XCTUnwrap(g.manifest.weights.first { (e: PlanWeight) in e.name == "w.f16" })
        XCTAssertEqual(w.dtype, "f16")
        XCTAssertEqual(w.bytes, 16 * 8 * 3 * 3 * 2)
        XCTAssertTrue(g.source.contains("glmc_h2f(W["), g.source)
        try syntaxCheck(g.source, .opencl)
    }

    func testInt8IsCPUOnly() throws {
        var o = options(.cuda)
        o.int8ActivationScales = ["x": 0.1]
        XCTAssertThrowsError(try CPUPlanBuilder.generate(try Parser.parse(Self.gemmRelu), options: o)) { error in
            XCTAssertTrue("\(error)".contains("--precision int8 builds CPU plans only"), "\(error)")
        }
    }

    /// The kernels of the training optimizers, the ai.onnx.ml ops, TfIdfVectorizer, runtime Range
    /// and FlexAttention with a modifier graph (its mask a weight) pass both GPU front ends.
    func testMLKernelsPassTheGPUFrontEnds() throws {
        let module = try Parser.parse("""
        opsets {"" = 26, "ai.onnx.ml" = 5, "ai.onnx.preview" = 1, "ai.onnx.preview.training" = 1}
        func @main(%r: f64[] loc("r"), %t: i64[] loc("t"), %x: f32[3] loc("x"), %g: f32[3] loc("g"), %v: f32[3] loc("v"), %h: f32[3] loc("h"), %f: f16[4,2] loc("f"), %w: i32[2,5] loc("w"), %s: f16[] loc("s"), %d: f16[] loc("d"), %q: f32[1,1,2,4] loc("q")) -> (f32[3] loc("xn"), f32[3] loc("hn"), f16[4,1] loc("te"), f32[2,3] loc("tf"), f16[3] loc("ra"), f32[1,1,2,4] loc("fa")) {
          %xn, %vn, %hn = ai.onnx.preview.training.Adam(%r, %t, %x, %g, %v, %h) : f32[3], f32[3], f32[3] loc("xn", "vn", "hn")
          %te = ai.onnx.ml.TreeEnsemble(%f) {leaf_targetids = [0, 0], leaf_weights = dense<[1.0, 2.0]> : f32[2], membership_values = dense<"0x0000003F0000C07F"> : f32[2], n_targets = 1, nodes_falseleafs = [1], nodes_falsenodeids = [1], nodes_featureids = [1], nodes_modes = dense<[6]> : u8[1], nodes_splits = dense<[0.0]> : f32[1], nodes_trueleafs = [1], nodes_truenodeids = [0], post_transform = 2, tree_roots = [0]} : f16[4,1] loc("te")
          %tf = TfIdfVectorizer(%w) {max_gram_length = 2, max_skip_count = 1, min_gram_length = 1, mode = "TFIDF", ngram_counts = [0, 2], ngram_indexes = [0, 1, 2], pool_int64s = [1, 2, 1, 2], weights = [0.5, 1.0, 2.0]} : f32[2,3] loc("tf")
          %ra = Range(%s, %s, %d) : f16[3] loc("ra")
          %fa = ai.onnx.preview.FlexAttention(%q, %q, %q) {score_mod = graph @m(%p: f32[?B,?H,?L,?S] loc("p")) -> (f32[?B,?H,?L,?S] loc("po")) {
            %one = const dense<[1]> : i64[] loc("one")
            %zero = const dense<[0]> : i64[] loc("zero")
            %three = const dense<[3]> : i64[] loc("three")
            %shape = Shape(%p) : i64[4] loc("shape")
            %n = Gather(%shape, %three) {axis = 0} : i64[] loc("n")
            %k = Range(%zero, %n, %one) : i64[?] loc("k")
            %kf = Cast(%k) {to = 1} : f32[?] loc("kf")
            %po = Sub(%p, %kf) : f32[?B,?H,?L,?S] loc("po")
            return %po
          }} : f32[1,1,2,4] loc("fa")
          return %xn, %hn, %te, %tf, %ra, %fa
        }
        """)
        for target in [PlanTarget.opencl, .cuda] {
            let g = try CPUPlanBuilder.generate(module, options: options(target))
            XCTAssertEqual(g.manifest.steps.map(\.kind), ["optimizer", "tree_ensemble", "tfidf_vectorizer", "range", "flex_attention_scores",
                                                           "elementwise", "flex_attention_softmax", "flex_attention_values"])
            try syntaxCheck(g.source, target)
        }
    }

    /// clang's OpenCL C 1.2 front end, or its CUDA front end in device mode with stand-ins for the
    /// CUDA built-ins (no CUDA installation needed).
    func syntaxCheck(_ source: String, _ target: PlanTarget, file: StaticString = #filePath, line: UInt = #line) throws {
        let result: (status: Int32, output: String)
        if target == .opencl {
            result = try CodegenTests.syntaxCheck(source, file: "kernels.cl",
                                                  ["-x", "cl", "-cl-std=CL1.2", "-Xclang", "-finclude-default-header", "-fsyntax-only"])
            if result.status != 0, result.output.contains("opencl-c.h") || result.output.contains("unknown argument") {
                throw XCTSkip("clang cannot check OpenCL C here: \(result.output)")
            }
        } else {
            // NVRTC compiles with -default-device; clang's equivalent is this pragma.
            let builtins = CodegenTests.cudaBuiltins.replacingOccurrences(of: "#include <math.h>", with: "#include <math.h>\n#undef INFINITY\n#undef NAN")
                + "#pragma clang force_cuda_host_device begin\n"
            result = try CodegenTests.syntaxCheck(builtins + source, file: "kernels.cu", CodegenTests.cudaSyntaxArguments.filter { $0 != "-Werror" })
        }
        XCTAssertEqual(result.status, 0, "\(result.output.prefix(3000))", file: file, line: line)
    }
}
