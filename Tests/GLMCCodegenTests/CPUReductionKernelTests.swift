import Foundation
import GLMCCodegen
import GLMCInterpreter
import GLMCIR
import GLMCOps
import GLMCPlan
import GLMCRuntime
import GLMCTestSupport
import XCTest

/// Reductions, scans, the softmax family, normalizations, losses and attention on the CPU target:
/// each module is built into a plan (C kernels compiled by the system compiler), run on
/// CPUExecutor with 3 threads on seeded random inputs, and compared with the interpreter.
final class CPUReductionKernelTests: XCTestCase, PlanComparing {
    let options = CPUPlanOptions(sourceModelSha256: String(repeating: "0", count: 64), glmcVersion: "test")

    override func setUpWithError() throws {
        guard CPUPlanBuilder.findCompiler() != nil else { throw XCTSkip("no C compiler ($CC, cc, gcc or clang) on PATH") }
    }

    func testReductionsOverAnyAxesMatchTheInterpreter() throws {
        try check("""
        opsets {"" = 18}
        func @r(%x: f32[3,4,5] loc("x")) -> (f32[4] loc("max"), f32[3,4,1] loc("min"), f32[] loc("prod"), f32[3,5] loc("l1"),
                                              f32[1,4,1] loc("l2"), f32[3,5] loc("lse"), f32[4,5] loc("ss"), f32[1,1,5] loc("mean"),
                                              f32[3,4,5] loc("noop"), f32[3] loc("logsum")) {
          %a02 = const dense<[0, 2]> : i64[2]
          %a1 = const dense<[-1]> : i64[1]
          %a0 = const dense<[0]> : i64[1]
          %am = const dense<[1]> : i64[1]
          %a01 = const dense<[1, 0]> : i64[2]
          %a12 = const dense<[1, 2]> : i64[2]
          %max = ReduceMax(%x, %a02) {keepdims = 0} : f32[4] loc("max")
          %min = ReduceMin(%x, %a1) : f32[3,4,1] loc("min")
          %prod = ReduceProd(%x) {keepdims = 0} : f32[] loc("prod")
          %l1 = ReduceL1(%x, %am) {keepdims = 0} : f32[3,5] loc("l1")
          %l2 = ReduceL2(%x, %a02) : f32[1,4,1] loc("l2")
          %lse = ReduceLogSumExp(%x, %am) {keepdims = 0} : f32[3,5] loc("lse")
          %ss = ReduceSumSquare(%x, %a0) {keepdims = 0} : f32[4,5] loc("ss")
          %mean = ReduceMean(%x, %a01) : f32[1,1,5] loc("mean")
          %noop = ReduceSum(%x) {noop_with_empty_axes = 1} : f32[3,4,5] loc("noop")
          %e = Exp(%x) : f32[3,4,5]
          %logsum = ReduceLogSum(%e, %a12) {keepdims = 0} : f32[3] loc("logsum")
          return %max, %min, %prod, %l1, %l2, %lse, %ss, %mean, %noop, %logsum
        }
        """)
    }

    /// Integer reductions are exact (wrapping sums and products, extrema); a mean goes through
    /// double and truncates; f64 and f16 compute in double and round once; opset-11 attribute axes.
    func testReductionsOnOtherTypesMatchTheInterpreter() throws {
        try check("""
        opsets {"" = 18}
        func @r(%i: i64[4,6] loc("i"), %j: i32[2,3,4] loc("j"), %d: f64[3,4] loc("d"), %h: f16[3,8] loc("h"), %u: u8[5,3] loc("u")) ->
            (i64[6] loc("sum"), i64[4,1] loc("prod"), i32[4] loc("max"), i32[2,1,1] loc("mean"), f64[3] loc("l2"), f16[3] loc("hmean"),
             u8[3] loc("umin"), i64[1,6] loc("l1")) {
          %a0 = const dense<[0]> : i64[1]
          %a1 = const dense<[1]> : i64[1]
          %a01 = const dense<[0, 1]> : i64[2]
          %a12 = const dense<[1, 2]> : i64[2]
          %sum = ReduceSum(%i, %a0) {keepdims = 0} : i64[6] loc("sum")
          %prod = ReduceProd(%i, %a1) : i64[4,1] loc("prod")
          %max = ReduceMax(%j, %a01) {keepdims = 0} : i32[4] loc("max")
          %mean = ReduceMean(%j, %a12) : i32[2,1,1] loc("mean")
          %l2 = ReduceL2(%d, %a1) {keepdims = 0} : f64[3] loc("l2")
          %hmean = ReduceMean(%h, %a1) {keepdims = 0} : f16[3] loc("hmean")
          %umin = ReduceMin(%u, %a0) {keepdims = 0} : u8[3] loc("umin")
          %l1 = ReduceL1(%i, %a0) : i64[1,6] loc("l1")
          return %sum, %prod, %max, %mean, %l2, %hmean, %umin, %l1
        }
        """, bound: 9)
        try check("""
        opsets {"" = 11}
        func @r(%x: f32[2,3,4] loc("x")) -> (f32[2,4] loc("max"), f32[3] loc("sum")) {
          %max = ReduceMax(%x) {axes = [-2], keepdims = 0} : f32[2,4] loc("max")
          %sum = ReduceSum(%x) {axes = [0, 2], keepdims = 0} : f32[3] loc("sum")
          return %max, %sum
        }
        """)
    }

    /// ArgMax/ArgMin with ties (small integers) and select_last_index, CumSum/CumProd exclusive
    /// and reversed on floats and integers.
    func testArgReductionsAndScansMatchTheInterpreter() throws {
        try check("""
        opsets {"" = 14}
        func @a(%i: i32[3,5,2] loc("i"), %x: f32[3,5,2] loc("x")) -> (i64[3,1,2] loc("amax"), i64[3,5] loc("amin"), i64[5,2] loc("last"),
                                                                     f32[3,5,2] loc("cs"), i32[3,5,2] loc("ci"), f32[3,5,2] loc("cp")) {
          %amax = ArgMax(%i) {axis = 1} : i64[3,1,2] loc("amax")
          %amin = ArgMin(%x) {axis = -1, keepdims = 0} : i64[3,5] loc("amin")
          %last = ArgMax(%i) {axis = 0, keepdims = 0, select_last_index = 1} : i64[5,2] loc("last")
          %ax = const dense<[1]> : i64[1]
          %cs = CumSum(%x, %ax) {exclusive = 1, reverse = 1} : f32[3,5,2] loc("cs")
          %ax0 = const dense<[0]> : i32[]
          %ci = CumSum(%i, %ax0) : i32[3,5,2] loc("ci")
          %cp = CumSum(%x, %ax0) {reverse = 1} : f32[3,5,2] loc("cp")
          return %amax, %amin, %last, %cs, %ci, %cp
        }
        """, bound: 2)
    }

    /// CumSum/CumProd whose axis is a runtime input: every axis of a 3-D input, negative ones too,
    /// picked by the value the kernel reads, on floats and integers.
    func testScansAlongARuntimeAxisMatchTheInterpreter() throws {
        let module = try Parser.parse("""
        opsets {"" = 26}
        func @r(%x: f32[3,4,2] loc("x"), %i: i32[3,4,2] loc("i"), %a: i64[] loc("a")) -> (f32[3,4,2] loc("cs"), i32[3,4,2] loc("cp")) {
          %cs = CumSum(%x, %a) {exclusive = 1} : f32[3,4,2] loc("cs")
          %cp = CumProd(%i, %a) {reverse = 1} : i32[3,4,2] loc("cp")
          return %cs, %cp
        }
        """)
        let random = randomInputs(module.main, seed: 7, bound: 3)
        for axis in -3 ... 2 {
            try checkWithGivenInputs(module, [random[0], random[1], Tensor(int64s: [Int64(axis)], dtype: .i64, shape: [])], kinds: ["cumulative", "cumulative"])
        }
    }

    /// Softmax, LogSoftmax and Hardmax on a middle axis (opset 13) and coerced to 2-D (opset 11).
    func testSoftmaxFamilyMatchesTheInterpreter() throws {
        for (opset, axis) in [(13, 1), (11, 1), (13, -1)] {
            try check("""
            opsets {"" = \(opset)}
            func @s(%x: f32[2,3,4] loc("x"), %d: f64[2,3,4] loc("d")) -> (f32[2,3,4] loc("s"), f32[2,3,4] loc("l"), f32[2,3,4] loc("h"), f64[2,3,4] loc("sd")) {
              %s = Softmax(%x) {axis = \(axis)} : f32[2,3,4] loc("s")
              %l = LogSoftmax(%x) {axis = \(axis)} : f32[2,3,4] loc("l")
              %h = Hardmax(%x) {axis = \(axis)} : f32[2,3,4] loc("h")
              %sd = Softmax(%d) {axis = \(axis)} : f64[2,3,4] loc("sd")
              return %s, %l, %h, %sd
            }
            """, kinds: ["softmax", "log_softmax", "hardmax", "softmax"])
        }
    }

    /// LayerNormalization with its Mean/InvStdDev outputs on axis 1 and with a scale broadcast
    /// within the row, RMSNormalization, Instance/Group normalization, LpNormalization, MeanVarianceNormalization,
    /// GlobalMaxPool, GlobalLpPool and a padded LpPool.
    func testNormalizationsMatchTheInterpreter() throws {
        try check("""
        opsets {"" = 23}
        func @n(%x: f32[2,4,3,2] loc("x"), %s: f32[3,2] loc("s"), %b: f32[3,2] loc("b"), %c: f32[4] loc("c"), %cb: f32[4] loc("cb"), %s1: f32[1,2] loc("s1")) ->
            (f32[2,4,3,2] loc("y"), f32[2,1,1,1] loc("mean"), f32[2,1,1,1] loc("inv"), f32[2,4,3,2] loc("rms"), f32[2,4,3,2] loc("in"),
             f32[2,4,3,2] loc("gn"), f32[2,4,3,2] loc("lp"), f32[2,4,3,2] loc("mvn"), f32[2,4,1,1] loc("gmp"), f32[2,4,1,1] loc("glp"), f32[2,4,3,2] loc("lpp"), f32[2,4,3,2] loc("lnb")) {
          %ls = const dense<[0.5, 1.5, -1.0, 2.0, 1.0, 0.25, 0.5, 1.5, -1.0, 2.0, 1.0, 0.25, 0.5, 1.5, -1.0, 2.0, 1.0, 0.25, 0.5, 1.5, -1.0, 2.0, 1.0, 0.25]> : f32[4,3,2]
          %y, %mean, %inv = LayerNormalization(%x, %ls) {axis = 1, epsilon = 0.01} : f32[2,4,3,2], f32[2,1,1,1], f32[2,1,1,1] loc("y", "mean", "inv")
          %rms = RMSNormalization(%x, %s) {axis = 2} : f32[2,4,3,2] loc("rms")
          %in = InstanceNormalization(%x, %c, %cb) {epsilon = 0.001} : f32[2,4,3,2] loc("in")
          %gn = GroupNormalization(%x, %c, %cb) {num_groups = 2} : f32[2,4,3,2] loc("gn")
          %lp = LpNormalization(%x) {axis = 1, p = 1} : f32[2,4,3,2] loc("lp")
          %mvn = MeanVarianceNormalization(%x) : f32[2,4,3,2] loc("mvn")
          %gmp = GlobalMaxPool(%x) : f32[2,4,1,1] loc("gmp")
          %glp = GlobalLpPool(%x) {p = 3.0} : f32[2,4,1,1] loc("glp")
          %lpp = LpPool(%x) {kernel_shape = [2, 2], p = 3, pads = [1, 0, 0, 1]} : f32[2,4,3,2] loc("lpp")
          %lnb = LayerNormalization(%x, %s1, %b) {axis = 2} : f32[2,4,3,2] loc("lnb")
          return %y, %mean, %inv, %rms, %in, %gn, %lp, %mvn, %gmp, %glp, %lpp, %lnb
        }
        """, kinds: ["layer_norm", "rms_norm", "instance_norm", "group_norm", "lp_norm", "mean_variance_norm", "reduce", "reduce", "lp_pool", "layer_norm"])
    }

    /// SoftmaxCrossEntropyLoss with weights, ignore_index and its log_prob output; NLL with no
    /// reduction and with a sum over 3-D scores.
    func testLossesMatchTheInterpreter() throws {
        try check("""
        opsets {"" = 13}
        func @l(%x: f32[3,4,2] loc("x"), %t: i64[3,2] loc("t"), %w: f32[4] loc("w")) -> (f32[] loc("sce"), f32[3,4,2] loc("lp"), f32[3,2] loc("nll"), f32[] loc("sum")) {
          %sce, %lp = SoftmaxCrossEntropyLoss(%x, %t, %w) {ignore_index = 1} : f32[], f32[3,4,2] loc("sce", "lp")
          %nll = NegativeLogLikelihoodLoss(%x, %t) {reduction = "none"} : f32[3,2] loc("nll")
          %sum = NegativeLogLikelihoodLoss(%x, %t, %w) {reduction = "sum", ignore_index = 3} : f32[] loc("sum")
          return %sce, %lp, %nll, %sum
        }
        """, nonNegative: [1], kinds: ["softmax_cross_entropy_loss", "nll_loss", "nll_loss"])
    }

    /// Attention: 4-D with grouped key/value heads, a causal limit, a boolean mask, past keys and
    /// values and the present and qk outputs; 3-D with a float mask and softcap.
    func testAttentionMatchesTheInterpreter() throws {
        try check("""
        opsets {"" = 23}
        func @a(%q: f32[2,4,3,5] loc("q"), %k: f32[2,2,3,5] loc("k"), %v: f32[2,2,3,6] loc("v"), %m: bool[3,5] loc("m"),
                %pk: f32[2,2,2,5] loc("pk"), %pv: f32[2,2,2,6] loc("pv")) ->
            (f32[2,4,3,6] loc("y"), f32[2,2,5,5] loc("present_k"), f32[2,2,5,6] loc("present_v"), f32[2,4,3,5] loc("qk")) {
          %y, %pk2, %pv2, %qk = Attention(%q, %k, %v, %m, %pk, %pv) {is_causal = 1, qk_matmul_output_mode = 2} : f32[2,4,3,6], f32[2,2,5,5], f32[2,2,5,6], f32[2,4,3,5] loc("y", "pk2", "pv2", "qk")
          return %y, %pk2, %pv2, %qk
        }
        """, kinds: ["attention", "attention_present"])
        try check("""
        opsets {"" = 23}
        func @a(%q: f32[2,3,8] loc("q"), %k: f32[2,4,4] loc("k"), %v: f32[2,4,6] loc("v"), %m: f32[2,1,3,4] loc("m")) -> (f32[2,3,12] loc("y")) {
          %y = Attention(%q, %k, %v, %m) {q_num_heads = 2, kv_num_heads = 1, softcap = 0.5, scale = 0.7} : f32[2,3,12] loc("y")
          return %y
        }
        """)
    }

    /// LinearAttention: gated delta rule with grouped query heads, per-key decay, a past state and
    /// the present state output; the plain linear rule.
    func testLinearAttentionMatchesTheInterpreter() throws {
        try check("""
        opsets {"" = 27}
        func @l(%q: f32[2,3,8] loc("q"), %k: f32[2,3,4] loc("k"), %v: f32[2,3,6] loc("v"), %p: f32[2,2,2,3] loc("p"), %g: f32[2,3,4] loc("g"),
                %b: f32[2,3,1] loc("b")) -> (f32[2,3,12] loc("y"), f32[2,2,2,3] loc("state"), f32[2,3,12] loc("lin")) {
          %y, %state = LinearAttention(%q, %k, %v, %p, %g, %b) {q_num_heads = 4, kv_num_heads = 2} : f32[2,3,12], f32[2,2,2,3] loc("y", "state")
          %lin = LinearAttention(%q, %k, %v) {q_num_heads = 4, kv_num_heads = 2, update_rule = "linear", scale = 0.5} : f32[2,3,12] loc("lin")
          return %y, %state, %lin
        }
        """, kinds: ["linear_attention", "linear_attention"])
    }

    /// FlexAttention without modifiers: grouped heads and a scale in f32 (scores rounded to f32),
    /// f64 in double.
    func testFlexAttentionMatchesTheInterpreter() throws {
        try check("""
        opsets {"" = 23, "ai.onnx.preview" = 1}
        func @f(%q: f32[2,4,3,5] loc("q"), %k: f32[2,2,6,5] loc("k"), %v: f32[2,2,6,3] loc("v"), %qd: f64[1,2,3,4] loc("qd"),
                %kd: f64[1,2,2,4] loc("kd"), %vd: f64[1,2,2,4] loc("vd")) -> (f32[2,4,3,3] loc("y"), f64[1,2,3,4] loc("yd")) {
          %y = "ai.onnx.preview.FlexAttention"(%q, %k, %v) {scale = 0.3} : f32[2,4,3,3] loc("y")
          %yd = "ai.onnx.preview.FlexAttention"(%qd, %kd, %vd) : f64[1,2,3,4] loc("yd")
          return %y, %yd
        }
        """, kinds: ["flex_attention", "flex_attention"])
    }

    /// RotaryEmbedding (3-D with position ids, 4-D interleaved) and TopK (largest and smallest,
    /// ties keeping index order).
    func testRotaryEmbeddingAndTopKMatchTheInterpreter() throws {
        try check("""
        opsets {"" = 23}
        func @r(%x: f32[2,3,8] loc("x"), %c: f32[5,2] loc("c"), %s: f32[5,2] loc("s"), %p: i64[2,3] loc("p"), %y4: f32[1,2,3,4] loc("y4"),
                %c3: f32[1,3,2] loc("c3"), %s3: f32[1,3,2] loc("s3"), %t: i32[3,6] loc("t")) ->
            (f32[2,3,8] loc("r"), f32[1,2,3,4] loc("r4"), i32[3,2] loc("tv"), i64[3,2] loc("ti"), f32[2,2,8] loc("fv")) {
          %r = RotaryEmbedding(%x, %c, %s, %p) {num_heads = 2} : f32[2,3,8] loc("r")
          %r4 = RotaryEmbedding(%y4, %c3, %s3) {interleaved = 1} : f32[1,2,3,4] loc("r4")
          %k = const dense<[2]> : i64[1]
          %tv, %ti = TopK(%t, %k) {axis = 1} : i32[3,2], i64[3,2] loc("tv", "ti")
          %fv, %fi = TopK(%x, %k) {axis = 1, largest = 0} : f32[2,2,8], i64[2,2,8] loc("fv", "fi")
          return %r, %r4, %tv, %ti, %fv
        }
        """, bound: 3, nonNegative: [3])
    }

    /// A loss target outside [0, C) and a rotary position id outside the cache are errors in the
    /// interpreter; a plan cannot stop, so it makes them visible as NaN.
    func testDataErrorsGiveNaN() throws {
        let module = try Parser.parse("""
        opsets {"" = 23}
        func @d(%x: f32[2,4] loc("x"), %t: i64[2] loc("t"), %r: f32[1,2,4] loc("r"), %c: f32[3,2] loc("c"), %p: i64[1,2] loc("p")) ->
            (f32[2] loc("none"), f32[] loc("mean"), f32[1,2,4] loc("rot")) {
          %none = NegativeLogLikelihoodLoss(%x, %t) {reduction = "none"} : f32[2] loc("none")
          %mean = NegativeLogLikelihoodLoss(%x, %t) : f32[] loc("mean")
          %rot = RotaryEmbedding(%r, %c, %c, %p) {num_heads = 1} : f32[1,2,4] loc("rot")
          return %none, %mean, %rot
        }
        """)
        let executor = try CPUExecutor(plan: try CPUPlanBuilder.build(module, options: options))
        func host(_ name: String, _ t: Tensor) -> HostTensor {
            HostTensor(name: name, dtype: t.dtype.rawValue, shape: t.shape, bytes: t.tensorData.withRawBytes { Data($0) })
        }
        let out = try executor.run(inputs: [
            "x": host("x", Tensor([Float](repeating: 0.5, count: 8), shape: [2, 4])), "t": host("t", Tensor([Int64(1), 7], shape: [2])),
            "r": host("r", Tensor([Float](repeating: 1, count: 8), shape: [1, 2, 4])), "c": host("c", Tensor([Float](repeating: 1, count: 6), shape: [3, 2])),
            "p": host("p", Tensor([Int64(2), 3], shape: [1, 2])),
        ])
        let floats = out.map { o in o.bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) } }
        XCTAssertEqual(floats[0][0], -0.5)
        XCTAssertTrue(floats[0][1].isNaN && floats[1][0].isNaN, "\(floats)")
        XCTAssertEqual(Array(floats[2][0 ..< 4]), [0, 0, 2, 2])  // position 2: cos = sin = 1, pairs (x[i], x[i + 2])
        XCTAssertTrue(floats[2][4 ..< 8].allSatisfy(\.isNaN), "\(floats[2])")
    }

    /// Shape-determining operands must be constants; the refusal names the op and the node.
    func testRuntimeAxesAreRefused() throws {
        let module = try Parser.parse("""
        opsets {"" = 18}
        func @r(%x: f32[3,4] loc("x"), %a: i64[1] loc("a")) -> (f32[4] loc("y")) {
          %y = ReduceMax(%x, %a) {keepdims = 0} : f32[4] node("rm")
          return %y
        }
        """)
        XCTAssertThrowsError(try CPUPlanBuilder.generate(module, options: options)) {
            XCTAssertEqual("\($0)", "unsupported: --target cpu cannot compile ReduceMax whose 'axes' operand is not a constant yet (node 'rm')")
        }
    }
}
