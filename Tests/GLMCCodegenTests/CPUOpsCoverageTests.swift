import Foundation
import GLMCCodegen
import GLMCIR
import GLMCOps
import GLMCRuntime
import XCTest

/// Quantization, interpolating Resize, RNN/GRU/LSTM, GridSample, DFT/STFT and Einsum on the CPU
/// target, compared with the interpreter (see `PlanComparing`).
final class CPUOpsCoverageTests: XCTestCase, PlanComparing {
    override func setUpWithError() throws {
        guard CPUPlanBuilder.findCompiler() != nil else { throw XCTSkip("no C compiler ($CC, cc, gcc or clang) on PATH") }
    }

    /// SwiGLU on f32 (float math, as the interpreter) and f16 (double math), with a negative alpha.
    func testSwiGLU() throws {
        try check("""
        opsets {"" = 28}
        func @s(%a: f32[2,5] loc("a"), %b: f32[2,5] loc("b"), %h: f16[7] loc("h"), %g: f16[7] loc("g")) -> (f32[2,5] loc("y"), f16[7] loc("z")) {
          %y = SwiGLU(%a, %b) {alpha = -1.5} : f32[2,5] loc("y")
          %z = SwiGLU(%h, %g) : f16[7] loc("z")
          return %y, %z
        }
        """, kinds: ["swiglu", "swiglu"])
    }

    /// Det of a batch of 3×3 matrices (pivoting needed) and of a singular one, and of f64 2×2s.
    func testDet() throws {
        let module = try Parser.parse("""
        opsets {"" = 22}
        func @d(%x: f32[2,2,3,3] loc("x"), %y: f64[4,2,2] loc("y")) -> (f32[2,2] loc("dx"), f64[4] loc("dy")) {
          %dx = Det(%x) : f32[2,2] loc("dx")
          %dy = Det(%y) : f64[4] loc("dy")
          return %dx, %dy
        }
        """)
        var inputs = randomInputs(module.main, seed: 5)
        var x = inputs[0].doubles
        for i in 0 ..< 3 { x[i] = 0; x[3 + i] = Double(i + 1); x[6 + i] = Double(2 * i + 2) }  // the first matrix: a zero row, pivoting
        inputs[0] = Tensor(doubles: x, dtype: .f32, shape: [2, 2, 3, 3])
        try checkWithGivenInputs(module, inputs, kinds: ["det", "det"])
    }

    /// TensorScatter: linear writes at per-batch indices along axis 2, circular writes wrapping
    /// past the end, and the default (no write_indices, axis -2).
    func testTensorScatter() throws {
        let module = try Parser.parse("""
        opsets {"" = 24}
        func @t(%p: f32[2,3,5,2] loc("p"), %u: f32[2,3,2,2] loc("u"), %w: i64[2] loc("w"), %c: i64[2] loc("c")) -> (f32[2,3,5,2] loc("l"), f32[2,3,5,2] loc("r"), f32[2,3,5,2] loc("d")) {
          %l = TensorScatter(%p, %u, %w) {axis = 2} : f32[2,3,5,2] loc("l")
          %r = TensorScatter(%p, %u, %c) {axis = 2, mode = "circular"} : f32[2,3,5,2] loc("r")
          %d = TensorScatter(%p, %u) : f32[2,3,5,2] loc("d")
          return %l, %r, %d
        }
        """)
        let random = randomInputs(module.main, seed: 9)
        try checkWithGivenInputs(module, [random[0], random[1], Tensor(int64s: [3, 1], dtype: .i64, shape: [2]), Tensor(int64s: [4, -1], dtype: .i64, shape: [2])],
                                 kinds: ["tensor_scatter", "tensor_scatter", "tensor_scatter"])
    }

    /// Col2Im in 2-D with strides, pads and dilations (overlapping blocks) and in 1-D.
    func testCol2Im() throws {
        try check("""
        opsets {"" = 18}
        func @c(%x: f32[2,6,8] loc("x"), %v: f64[1,6,4] loc("v")) -> (f32[2,1,5,4] loc("y"), f64[1,2,5] loc("z")) {
          %i = const dense<[5, 4]> : i64[2]
          %b = const dense<[2, 3]> : i64[2]
          %y = Col2Im(%x, %i, %b) {dilations = [2, 1], pads = [1, 0, 0, 1], strides = [1, 2]} : f32[2,1,5,4] loc("y")
          %i1 = const dense<[5]> : i64[1]
          %b1 = const dense<[3]> : i64[1]
          %z = Col2Im(%v, %i1, %b1) {pads = [1, 0]} : f64[1,2,5] loc("z")
          return %y, %z
        }
        """, kinds: ["col2im", "col2im"])
    }

    /// Training-mode BatchNormalization: batch statistics, with both running statistics in use
    /// (f32) and with none (f16 data).
    func testTrainingBatchNormalization() throws {
        try check("""
        opsets {"" = 15}
        func @b(%x: f32[2,3,4] loc("x"), %s: f32[3] loc("s"), %c: f32[3] loc("c"), %m: f32[3] loc("m"), %v: f32[3] loc("v"), %h: f16[2,3,2] loc("h")) -> (f32[2,3,4] loc("y"), f32[3] loc("rm"), f32[3] loc("rv"), f16[2,3,2] loc("z")) {
          %y, %rm, %rv = BatchNormalization(%x, %s, %c, %m, %v) {epsilon = 0.01, momentum = 0.8, training_mode = 1} : f32[2,3,4], f32[3], f32[3] loc("y", "rm", "rv")
          %z = BatchNormalization(%h, %s, %c, %m, %v) {training_mode = 1} : f16[2,3,2] loc("z")
          return %y, %rm, %rv, %z
        }
        """, nonNegative: [], kinds: ["batch_norm_training", "batch_norm_training"])
    }

    /// Dropout with a runtime training_mode and ratio: training draws NumPy's MT19937 mask as the
    /// interpreter does (enough elements to twist the state twice); false, or a zero ratio, copies.
    func testDropoutWithARuntimeTrainingMode() throws {
        let module = try Parser.parse("""
        opsets {"" = 22}
        func @d(%x: f32[3,300] loc("x"), %r: f32[] loc("r"), %t: bool[] loc("t")) -> (f32[3,300] loc("y"), bool[3,300] loc("m")) {
          %y, %m = Dropout(%x, %r, %t) {seed = 7} : f32[3,300], bool[3,300] loc("y", "m")
          return %y, %m
        }
        """)
        let x = randomInputs(module.main, seed: 11)[0]
        for (ratio, training) in [(0.3, true), (0.3, false), (0.0, true)] {
            try checkWithGivenInputs(module, [x, Tensor(doubles: [ratio], dtype: .f32, shape: []), Tensor([training], shape: [])], kinds: ["dropout"])
        }
    }

    /// Inference Dropout with its mask in use: a copy and an all-true mask (bool from opset 10,
    /// the data's type before), with training_mode a constant false.
    func testDropoutMaskInInference() throws {
        try check("""
        opsets {"" = 22}
        func @d(%x: f32[2,3] loc("x"), %r: f32[] loc("r")) -> (f32[2,3] loc("y"), bool[2,3] loc("m")) {
          %t = const dense<[false]> : bool[]
          %y, %m = Dropout(%x, %r, %t) : f32[2,3], bool[2,3] loc("y", "m")
          return %y, %m
        }
        """, kinds: ["copy", "one_fill"])
        try check("""
        opsets {"" = 7}
        func @d(%x: f16[4] loc("x")) -> (f16[4] loc("y"), f16[4] loc("m")) {
          %y, %m = Dropout(%x) {ratio = 0.25} : f16[4], f16[4] loc("y", "m")
          return %y, %m
        }
        """, kinds: ["copy", "one_fill"])
    }

    func testQuantizeAndDequantizePerTensorPerAxisBlockedAndWithARuntimeScale() throws {
        try check("""
        opsets {"" = 21}
        func @q(%x: f32[2,3,4] loc("x"), %s: f32[] loc("s"), %d: u8[2,3,4] loc("d"), %di: i16[2,3,4] loc("di"))
            -> (u8[2,3,4] loc("pt"), i8[2,3,4] loc("pa"), i16[2,3,4] loc("pb"), u8[2,3,4] loc("rt"),
                f32[2,3,4] loc("dq"), f32[2,3,4] loc("da"), f32[2,3,4] loc("db"), f32[2,3,4] loc("dr")) {
          %s1 = const dense<[0.02]> : f32[]
          %z1 = const dense<[128]> : u8[]
          %sa = const dense<[0.01, 0.02, 0.05]> : f32[3]
          %za = const dense<[-3, 0, 7]> : i8[3]
          %sb = const dense<[0.01, 0.002, 0.05, 0.1, 0.003, 0.2, 0.01, 0.02, 0.04, 0.5, 0.25, 0.001]> : f32[2,3,2]
          %zb = const dense<[0, -100, 5, 30, 0, -7, 1, 2, 3, 4, 5, 6]> : i16[2,3,2]
          %pt = QuantizeLinear(%x, %s1, %z1) : u8[2,3,4] loc("pt")
          %pa = QuantizeLinear(%x, %sa, %za) {axis = 1} : i8[2,3,4] loc("pa")
          %pb = QuantizeLinear(%x, %sb, %zb) {axis = 2, block_size = 2} : i16[2,3,4] loc("pb")
          %rt = QuantizeLinear(%x, %s) : u8[2,3,4] loc("rt")
          %dq = DequantizeLinear(%d, %s1, %z1) : f32[2,3,4] loc("dq")
          %da = DequantizeLinear(%d, %sa) {axis = 1} : f32[2,3,4] loc("da")
          %db = DequantizeLinear(%di, %sb, %zb) {axis = 2, block_size = 2} : f32[2,3,4] loc("db")
          %dr = DequantizeLinear(%d, %s) : f32[2,3,4] loc("dr")
          return %pt, %pa, %pb, %rt, %dq, %da, %db, %dr
        }
        """, bound: 200)
    }

    func testQLinearConvAndQLinearMatMul() throws {
        try check("""
        opsets {"" = 10}
        func @q(%x: u8[1,4,5,6] loc("x"), %w: i8[6,2,3,3] loc("w"), %a: u8[2,3,4] loc("a"), %b: u8[4,5] loc("b"))
            -> (u8[1,6,3,6] loc("c"), i8[1,6,5,6] loc("c2"), u8[2,3,5] loc("m")) {
          %sx = const dense<[0.05]> : f32[]
          %zx = const dense<[10]> : u8[]
          %sw = const dense<[0.01, 0.02, 0.03, 0.015, 0.05, 0.002]> : f32[6]
          %zw = const dense<[0, 1, -2, 3, 0, -1]> : i8[6]
          %sy = const dense<[0.2]> : f32[]
          %zy = const dense<[100]> : u8[]
          %zy8 = const dense<[-5]> : i8[]
          %bias = const dense<[100, -200, 0, 5, 7000, -3]> : i32[6]
          %sa = const dense<[0.1]> : f32[]
          %za = const dense<[7]> : u8[]
          %sb = const dense<[0.03]> : f32[]
          %sm = const dense<[0.5]> : f32[]
          %c = QLinearConv(%x, %sx, %zx, %w, %sw, %zw, %sy, %zy, %bias) {group = 2, pads = [1, 1, 1, 1], strides = [2, 1]} : u8[1,6,3,6] loc("c")
          %c2 = QLinearConv(%x, %sx, %zx, %w, %sx, _, %sy, %zy8) {group = 2, auto_pad = "SAME_UPPER"} : i8[1,6,5,6] loc("c2")
          %m = QLinearMatMul(%a, %sa, %za, %b, %sb, _, %sm, %zy) : u8[2,3,5] loc("m")
          return %c, %c2, %m
        }
        """, bound: 100)
    }

    func testDynamicQuantizeLinear() throws {
        for seed: UInt64 in [1, 2] {
            try check("""
            opsets {"" = 11}
            func @q(%x: f32[3,5] loc("x")) -> (u8[3,5] loc("y"), f32[] loc("ys"), u8[] loc("yz")) {
              %y, %ys, %yz = DynamicQuantizeLinear(%x) : u8[3,5], f32[], u8[] loc("y", "ys", "yz")
              return %y, %ys, %yz
            }
            """, seed: seed, kinds: ["dynamic_quantize_parameters", "dynamic_quantize"])
        }
    }

    func testResizeLinearCubicAntialiasCropAndIntegerData() throws {
        try check("""
        opsets {"" = 19}
        func @r(%x: f32[1,2,4,5] loc("x"), %xi: u8[1,1,3,3] loc("xi"))
            -> (f32[1,2,8,7] loc("lin"), f32[1,2,2,3] loc("cub"), f32[1,2,3,9] loc("aa"), f32[1,2,3,4] loc("tf"),
                f32[1,2,6,10] loc("al"), u8[1,1,6,6] loc("u")) {
          %sc = const dense<[1.0, 1.0, 2.0, 1.5]> : f32[4]
          %sd = const dense<[1.0, 1.0, 0.6, 0.6]> : f32[4]
          %sz = const dense<[1, 2, 3, 9]> : i64[4]
          %sz2 = const dense<[1, 2, 3, 4]> : i64[4]
          %roi = const dense<[0.0, 0.0, 0.2, -0.3, 1.0, 1.0, 0.9, 1.4]> : f32[8]
          %s15 = const dense<[1.0, 1.0, 1.5, 2.0]> : f32[4]
          %s2 = const dense<[1.0, 1.0, 2.0, 2.0]> : f32[4]
          %lin = Resize(%x, _, %sc) {mode = "linear"} : f32[1,2,8,7] loc("lin")
          %cub = Resize(%x, _, %sd) {mode = "cubic", cubic_coeff_a = -0.5, exclude_outside = 1} : f32[1,2,2,3] loc("cub")
          %aa = Resize(%x, _, _, %sz) {mode = "linear", antialias = 1} : f32[1,2,3,9] loc("aa")
          %tf = Resize(%x, %roi, _, %sz2) {mode = "linear", coordinate_transformation_mode = "tf_crop_and_resize", extrapolation_value = 7.5} : f32[1,2,3,4] loc("tf")
          %al = Resize(%x, _, %s15) {mode = "cubic", coordinate_transformation_mode = "align_corners"} : f32[1,2,6,10] loc("al")
          %u = Resize(%xi, _, %s2) {mode = "linear"} : u8[1,1,6,6] loc("u")
          return %lin, %cub, %aa, %tf, %al, %u
        }
        """, bound: 250)
    }

    func testLSTMBidirectionalWithLengthsInitialStatesPeepholesAndClip() throws {
        try check("""
        opsets {"" = 14}
        func @l(%x: f32[4,3,5] loc("x"), %w: f32[2,8,5] loc("w"), %r: f32[2,8,2] loc("r"), %b: f32[2,16] loc("b"),
                %l: i32[3] loc("l"), %h0: f32[2,3,2] loc("h0"), %c0: f32[2,3,2] loc("c0"), %p: f32[2,6] loc("p"))
            -> (f32[4,2,3,2] loc("y"), f32[2,3,2] loc("yh"), f32[2,3,2] loc("yc")) {
          %y, %yh, %yc = LSTM(%x, %w, %r, %b, %l, %h0, %c0, %p) {direction = "bidirectional", hidden_size = 2, clip = 0.8} : f32[4,2,3,2], f32[2,3,2], f32[2,3,2] loc("y", "yh", "yc")
          return %y, %yh, %yc
        }
        """, bound: 5, nonNegative: [4])
    }

    func testGRUBatchFirstAndLinearBeforeResetAndRNNReverse() throws {
        try check("""
        opsets {"" = 14}
        func @g(%x: f32[2,3,4] loc("x"), %w: f32[1,9,4] loc("w"), %r: f32[1,9,3] loc("r"), %b: f32[1,18] loc("b"),
                %x2: f32[3,2,4] loc("x2"), %h0: f32[1,2,3] loc("h0"), %rw: f32[1,3,4] loc("rw"), %rr: f32[1,3,3] loc("rr"))
            -> (f32[2,3,1,3] loc("gy"), f32[2,1,3] loc("gh"), f32[3,1,2,3] loc("g2"), f32[3,1,2,3] loc("ry")) {
          %gy, %gh = GRU(%x, %w, %r, %b) {hidden_size = 3, layout = 1} : f32[2,3,1,3], f32[2,1,3] loc("gy", "gh")
          %g2 = GRU(%x2, %w, %r, _, _, %h0) {hidden_size = 3, linear_before_reset = 1, activations = ["HardSigmoid", "Softsign"], activation_alpha = [0.3], activation_beta = [0.4]} : f32[3,1,2,3] loc("g2")
          %ry = RNN(%x2, %rw, %rr) {hidden_size = 3, direction = "reverse", activations = ["LeakyRelu"], activation_alpha = [0.2]} : f32[3,1,2,3] loc("ry")
          return %gy, %gh, %g2, %ry
        }
        """)
    }

    func testGridSampleModesAndPaddings() throws {
        try check("""
        opsets {"" = 20}
        func @s(%x: f32[2,3,4,5] loc("x"), %g: f32[2,6,7,2] loc("g"), %x3: f32[1,2,3,4,5] loc("x3"), %g3: f32[1,2,3,4,3] loc("g3"))
            -> (f32[2,3,6,7] loc("lz"), f32[2,3,6,7] loc("cb"), f32[2,3,6,7] loc("nr"), f32[2,3,6,7] loc("lr"), f32[1,2,2,3,4] loc("v")) {
          %k = const dense<[1.4]> : f32[]
          %gs = Mul(%g, %k) : f32[2,6,7,2]
          %lz = GridSample(%x, %gs) {mode = "linear"} : f32[2,3,6,7] loc("lz")
          %cb = GridSample(%x, %gs) {mode = "cubic", padding_mode = "border"} : f32[2,3,6,7] loc("cb")
          %nr = GridSample(%x, %gs) {mode = "nearest", padding_mode = "reflection", align_corners = 1} : f32[2,3,6,7] loc("nr")
          %lr = GridSample(%x, %gs) {mode = "linear", padding_mode = "reflection"} : f32[2,3,6,7] loc("lr")
          %v = GridSample(%x3, %g3) {mode = "linear"} : f32[1,2,2,3,4] loc("v")
          return %lz, %cb, %nr, %lr, %v
        }
        """)
    }

    func testAffineGrid2DAnd3D() throws {
        try check("""
        opsets {"" = 20}
        func @a(%t: f32[2,2,3] loc("t"), %t3: f64[1,3,4] loc("t3")) -> (f32[2,3,4,2] loc("g"), f32[2,1,5,2] loc("ga"), f64[1,2,3,2,3] loc("g3")) {
          %s = const dense<[2, 7, 3, 4]> : i64[4]
          %s1 = const dense<[2, 7, 1, 5]> : i64[4]
          %s3 = const dense<[1, 1, 2, 3, 2]> : i64[5]
          %g = AffineGrid(%t, %s) : f32[2,3,4,2] loc("g")
          %ga = AffineGrid(%t, %s1) {align_corners = 1} : f32[2,1,5,2] loc("ga")
          %g3 = AffineGrid(%t3, %s3) {align_corners = 1} : f64[1,2,3,2,3] loc("g3")
          return %g, %ga, %g3
        }
        """)
    }

    func testRoiAlignModesAndSamplingRatios() throws {
        try check("""
        opsets {"" = 16}
        func @r(%x: f32[2,3,6,7] loc("x"), %r: f32[4,4] loc("r"), %bi: i64[4] loc("bi"))
            -> (f32[4,3,3,2] loc("avg"), f32[4,3,2,3] loc("mx"), f32[4,3,2,2] loc("op")) {
          %k = const dense<[3.0]> : f32[]
          %o = const dense<[2.0]> : f32[]
          %rk = Mul(%r, %k) : f32[4,4]
          %ro = Add(%rk, %o) : f32[4,4]
          %avg = RoiAlign(%x, %ro, %bi) {output_height = 3, output_width = 2, sampling_ratio = 2} : f32[4,3,3,2] loc("avg")
          %mx = RoiAlign(%x, %ro, %bi) {mode = "max", output_height = 2, output_width = 3, spatial_scale = 1.5} : f32[4,3,2,3] loc("mx")
          %op = RoiAlign(%x, %ro, %bi) {coordinate_transformation_mode = "output_half_pixel", output_height = 2, output_width = 2} : f32[4,3,2,2] loc("op")
          return %avg, %mx, %op
        }
        """, bound: 2, nonNegative: [2])
    }

    func testDFTForwardOnesidedInverseIrfftPaddedAndAlongAnOuterAxis() throws {
        try check("""
        opsets {"" = 20}
        func @d(%x: f32[2,6,1] loc("x"), %xc: f32[2,6,2] loc("xc"), %xh: f32[2,4,2] loc("xh"), %x4: f32[3,5,4,2] loc("x4"))
            -> (f32[2,6,2] loc("f"), f32[2,4,2] loc("os"), f32[2,6,2] loc("inv"), f32[2,6,1] loc("ir"), f32[2,8,2] loc("pad"), f32[3,5,4,2] loc("ax")) {
          %n8 = const dense<[8]> : i64[]
          %a0 = const dense<[0]> : i64[]
          %f = DFT(%x) : f32[2,6,2] loc("f")
          %os = DFT(%x) {onesided = 1} : f32[2,4,2] loc("os")
          %inv = DFT(%xc) {inverse = 1} : f32[2,6,2] loc("inv")
          %ir = DFT(%xh) {inverse = 1, onesided = 1} : f32[2,6,1] loc("ir")
          %pad = DFT(%x, %n8) : f32[2,8,2] loc("pad")
          %ax = DFT(%x4, _, %a0) : f32[3,5,4,2] loc("ax")
          return %f, %os, %inv, %ir, %pad, %ax
        }
        """)
    }

    func testDFTAlongARuntimeAxis() throws {
        for axis: Int64 in [0, 1, -2] {
            let module = try Parser.parse("""
            opsets {"" = 20}
            func @d(%x: f32[3,4,5,2] loc("x"), %a: i64[] loc("a")) -> (f32[3,4,5,2] loc("y")) {
              %y = DFT(%x, _, %a) {inverse = 1} : f32[3,4,5,2] loc("y")
              return %y
            }
            """)
            try checkWithGivenInputs(module, [randomInputs(module.main, seed: 3)[0], Tensor([axis], shape: [])])
        }
    }

    func testSTFTWithAWindowAndTwoSided() throws {
        try check("""
        opsets {"" = 17}
        func @s(%sig: f32[2,16,1] loc("sig"), %win: f32[8] loc("win")) -> (f32[2,3,5,2] loc("st"), f32[2,3,6,2] loc("two")) {
          %step = const dense<[4]> : i64[]
          %fl = const dense<[6]> : i64[]
          %st = STFT(%sig, %step, %win) : f32[2,3,5,2] loc("st")
          %two = STFT(%sig, %step, _, %fl) {onesided = 0} : f32[2,3,6,2] loc("two")
          return %st, %two
        }
        """)
    }

    func testMelWeightMatrixWithRuntimeEdges() throws {
        let module = try Parser.parse("""
        opsets {"" = 17}
        func @m(%rate: i32[] loc("rate"), %lo: f32[] loc("lo"), %hi: f32[] loc("hi")) -> (f32[9,6] loc("w"), f64[9,6] loc("w64")) {
          %n = const dense<[6]> : i64[]
          %len = const dense<[16]> : i64[]
          %w = MelWeightMatrix(%n, %len, %rate, %lo, %hi) : f32[9,6] loc("w")
          %w64 = MelWeightMatrix(%n, %len, %rate, %lo, %hi) {output_datatype = 11} : f64[9,6] loc("w64")
          return %w, %w64
        }
        """)
        let settings: [(rate: Int64, low: Float, high: Float)] = [(8000, 0, 4000), (16000, 100, 7500)]
        for (rate, low, high) in settings {
            try checkWithGivenInputs(module, [Tensor(int64s: [rate], dtype: .i32, shape: []), Tensor([low], shape: []), Tensor([high], shape: [])])
        }
    }

    func testEinsumContractionsDiagonalsAndSums() throws {
        try check("""
        opsets {"" = 12}
        func @e(%a: f32[2,3,4] loc("a"), %b: f32[2,4,5] loc("b"), %c: f64[3,4,4] loc("c"), %v: f32[5] loc("v"), %w: f32[5] loc("w"))
            -> (f32[2,3,5] loc("bm"), f64[3,4] loc("dg"), f32[] loc("ip"), f32[4,2] loc("tr")) {
          %bm = Einsum(%a, %b) {equation = "bij, bjk -> bik"} : f32[2,3,5] loc("bm")
          %dg = Einsum(%c) {equation = "...ii ->...i"} : f64[3,4] loc("dg")
          %ip = Einsum(%v, %w) {equation = "i,i"} : f32[] loc("ip")
          %tr = Einsum(%a) {equation = "bij->jb"} : f32[4,2] loc("tr")
          return %bm, %dg, %ip, %tr
        }
        """)
    }

    func testDFTWithAnInvalidRuntimeAxisGivesNaN() throws {
        let module = try Parser.parse("""
        opsets {"" = 20}
        func @d(%x: f32[3,4,5,2] loc("x"), %a: i64[] loc("a")) -> (f32[3,4,5,2] loc("y")) {
          %y = DFT(%x, _, %a) : f32[3,4,5,2] loc("y")
          return %y
        }
        """)
        let plan = try CPUPlanBuilder.build(module, options: CPUPlanOptions(sourceModelSha256: String(repeating: "0", count: 64), glmcVersion: "test"))
        let x = Tensor([Float](repeating: 1, count: 120), shape: [3, 4, 5, 2]), axis = Tensor([Int64(3)], shape: [])
        var given: [String: HostTensor] = [:]
        for (input, t) in zip(plan.manifest.inputs, [x, axis]) {
            given[input.name] = HostTensor(name: input.name, dtype: t.dtype.rawValue, shape: t.shape, bytes: t.tensorData.withRawBytes { Data($0) })
        }
        let y = try CPUExecutor(plan: plan, threads: 2).run(inputs: given)[0]
        let values = try y.bytes.withUnsafeBytes { try Tensor(TensorData(type: TensorType(.f32, static: [3, 4, 5, 2]), copying: $0)) }.doubles
        XCTAssertTrue(values.allSatisfy(\.isNaN), "\(values.prefix(4))")
    }

    func testUnknownRecurrentActivationIsRefused() throws {
        let module = try Parser.parse("""
        opsets {"" = 14}
        func @r(%x: f32[2,1,3] loc("x"), %w: f32[1,2,3] loc("w"), %r: f32[1,2,2] loc("r")) -> (f32[2,1,1,2] loc("y")) {
          %y = RNN(%x, %w, %r) {hidden_size = 2, activations = ["Gelu"]} : f32[2,1,1,2] loc("y")
          return %y
        }
        """)
        let options = CPUPlanOptions(sourceModelSha256: String(repeating: "0", count: 64), glmcVersion: "test")
        XCTAssertThrowsError(try CPUPlanBuilder.generate(module, options: options)) {
            XCTAssertEqual("\($0)", "unsupported: --target cpu cannot compile RNN with activation 'Gelu' yet")
        }
    }

    func testResizeWithRuntimeScalesIsRefusedWithTheReason() throws {
        let module = try Parser.parse("""
        opsets {"" = 19}
        func @r(%x: f32[1,1,2,2] loc("x"), %s: f32[4] loc("s")) -> (f32[1,1,4,4] loc("y")) {
          %y = Resize(%x, _, %s) {mode = "linear"} : f32[1,1,4,4] loc("y")
          return %y
        }
        """)
        let options = CPUPlanOptions(sourceModelSha256: String(repeating: "0", count: 64), glmcVersion: "test")
        XCTAssertThrowsError(try CPUPlanBuilder.generate(module, options: options)) {
            XCTAssertTrue("\($0)".contains("roi, scales and sizes must be constants"), "\($0)")
        }
    }
}
