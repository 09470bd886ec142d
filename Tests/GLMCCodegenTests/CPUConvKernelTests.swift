import Foundation
import GLMCCodegen
import GLMCIR
import XCTest

/// The general convolution, pooling and matrix-product kernels (CPUKernelLibraryConv.swift) on
/// the CPU target, compared with the interpreter (`PlanComparing`): spatial ranks other than 2,
/// element types other than f32, ConvTranspose, ConvInteger, MaxPool's Indices, MatMul with 1-D
/// operands and broadcast batch dims, MatMulInteger.
final class CPUConvKernelTests: XCTestCase, PlanComparing {
    override func setUpWithError() throws {
        guard CPUPlanBuilder.findCompiler() != nil else { throw XCTSkip("no C compiler ($CC, cc, gcc or clang) on PATH") }
    }

    /// 1-D (groups, pads, strides, dilations, bias; fused with a Relu) and 3-D (SAME_UPPER)
    /// convolutions in f32, a 2-D one in f64 and a 1-D one in f16.
    func testConvolutionsOfAnyRankAndFloatTypeMatchTheInterpreter() throws {
        try check("""
        opsets {"" = 18, glmc = 1}
        func @c(%x1: f32[2,4,9] loc("x1"), %w1: f32[6,2,3] loc("w1"), %b1: f32[6] loc("b1"), %x3: f32[1,2,4,5,3] loc("x3"),
                %w3: f32[3,2,2,3,2] loc("w3"), %xd: f64[1,2,5,5] loc("xd"), %wd: f64[2,2,3,3] loc("wd"), %xh: f16[1,2,6] loc("xh"),
                %wh: f16[2,2,3] loc("wh")) -> (f32[2,6,4] loc("y1"), f32[2,6,4] loc("r1"), f32[1,3,4,3,3] loc("y3"), f64[1,2,5,5] loc("yd"),
                                               f16[1,2,4] loc("yh")) {
          %y1 = Conv(%x1, %w1, %b1) {dilations = [2], group = 2, pads = [1, 2], strides = [2]} : f32[2,6,4] loc("y1")
          %r1 = glmc.Fused(%x1, %w1) {body = graph @conv_relu_0(%p: f32[2,4,9], %q: f32[6,2,3]) -> (f32[2,6,4]) {
            %c = Conv(%p, %q) {dilations = [2], group = 2, pads = [1, 2], strides = [2]} : f32[2,6,4]
            %a = Relu(%c) : f32[2,6,4]
            return %a
          }, kind = "conv_relu"} : f32[2,6,4] loc("r1")
          %y3 = Conv(%x3, %w3) {auto_pad = "SAME_UPPER", strides = [1, 2, 1]} : f32[1,3,4,3,3] loc("y3")
          %yd = Conv(%xd, %wd) {pads = [1, 1, 1, 1]} : f64[1,2,5,5] loc("yd")
          %yh = Conv(%xh, %wh) : f16[1,2,4] loc("yh")
          return %y1, %r1, %y3, %yd, %yh
        }
        """, kinds: ["conv", "conv_epilogue", "conv", "conv", "conv"])
    }

    /// ConvTranspose: 1-D with pads, strides, output_padding and bias; 2-D with groups, strides
    /// and dilations; 3-D; SAME_UPPER; an explicit output_shape.
    func testConvTransposeMatchesTheInterpreter() throws {
        try check("""
        opsets {"" = 18}
        func @t(%x1: f32[1,2,4] loc("x1"), %w1: f32[2,3,3] loc("w1"), %b1: f32[3] loc("b1"), %x2: f32[1,4,3,3] loc("x2"),
                %w2: f32[4,1,2,2] loc("w2"), %x3: f32[1,1,2,3,2] loc("x3"), %w3: f32[1,2,2,2,2] loc("w3"), %xs: f32[1,1,3,3] loc("xs"),
                %ws: f32[1,1,3,3] loc("ws"), %wo: f32[1,2,3,3] loc("wo")) ->
               (f32[1,3,8] loc("y1"), f32[1,2,6,5] loc("y2"), f32[1,2,3,4,3] loc("y3"), f32[1,1,6,6] loc("ys"), f32[1,2,10,8] loc("yo")) {
          %y1 = ConvTranspose(%x1, %w1, %b1) {output_padding = [1], pads = [1, 1], strides = [2]} : f32[1,3,8] loc("y1")
          %y2 = ConvTranspose(%x2, %w2) {dilations = [1, 2], group = 2, strides = [2, 1]} : f32[1,2,6,5] loc("y2")
          %y3 = ConvTranspose(%x3, %w3) : f32[1,2,3,4,3] loc("y3")
          %ys = ConvTranspose(%xs, %ws) {auto_pad = "SAME_UPPER", strides = [2, 2]} : f32[1,1,6,6] loc("ys")
          %yo = ConvTranspose(%xs, %wo) {output_shape = [10, 8], strides = [3, 2]} : f32[1,2,10,8] loc("yo")
          return %y1, %y2, %y3, %ys, %yo
        }
        """, kinds: ["conv_transpose", "conv_transpose", "conv_transpose", "conv_transpose", "conv_transpose"])
    }

    /// ConvInteger: u8 with a scalar and a per-channel zero point (2-D, padded); i8 without (1-D).
    func testConvIntegerMatchesTheInterpreter() throws {
        try check("""
        opsets {"" = 10}
        func @q(%x: u8[1,2,4,4] loc("x"), %w: u8[3,2,2,2] loc("w"), %xz: u8[] loc("xz"), %wz: u8[3] loc("wz"),
                %xi: i8[1,1,5] loc("xi"), %wi: i8[2,1,2] loc("wi")) -> (i32[1,3,5,5] loc("y"), i32[1,2,4] loc("yi")) {
          %y = ConvInteger(%x, %w, %xz, %wz) {pads = [1, 1, 1, 1]} : i32[1,3,5,5] loc("y")
          %yi = ConvInteger(%xi, %wi) : i32[1,2,4] loc("yi")
          return %y, %yi
        }
        """, bound: 200, kinds: ["conv_integer", "conv_integer"])
    }

    /// MaxPool and AveragePool of rank 1 and 3 (dilations, ceil_mode, asymmetric pads with
    /// count_include_pad, SAME_LOWER), a 2-D average with asymmetric counted pads, MaxPool's
    /// Indices (row- and column-major) and MaxPool on u8.
    func testWindowPoolsMatchTheInterpreter() throws {
        try check("""
        opsets {"" = 19}
        func @p(%a: f32[2,3,9] loc("a"), %b: f32[1,2,5,6,4] loc("b"), %c: f32[1,2,4,4,4] loc("c"), %d: f32[1,2,7] loc("d"),
                %e: f32[1,1,5,5] loc("e"), %g: f32[1,2,5,5] loc("g"), %h: f32[1,1,3,4,5] loc("h"), %u: u8[1,2,4,4] loc("u")) ->
               (f32[2,3,5] loc("ya"), f32[1,2,2,3,2] loc("yb"), f32[1,2,2,2,2] loc("yc"), f32[1,2,3] loc("yd"), f32[1,1,5,5] loc("ye"),
                f32[1,2,3,3] loc("yg"), i64[1,2,3,3] loc("ig"), f32[1,1,2,3,4] loc("yh"), i64[1,1,2,3,4] loc("ih"), u8[1,2,3,3] loc("yu")) {
          %ya = MaxPool(%a) {kernel_shape = [3], pads = [1, 1], strides = [2]} : f32[2,3,5] loc("ya")
          %yb = MaxPool(%b) {ceil_mode = 1, dilations = [2, 1, 2], kernel_shape = [2, 2, 2], strides = [2, 2, 1]} : f32[1,2,2,3,2] loc("yb")
          %yc = AveragePool(%c) {count_include_pad = 1, kernel_shape = [3, 3, 3], pads = [1, 0, 1, 0, 1, 1], strides = [2, 2, 2]} : f32[1,2,2,2,2] loc("yc")
          %yd = AveragePool(%d) {auto_pad = "SAME_LOWER", kernel_shape = [4], strides = [3]} : f32[1,2,3] loc("yd")
          %ye = AveragePool(%e) {count_include_pad = 1, kernel_shape = [3, 3], pads = [0, 0, 2, 2]} : f32[1,1,5,5] loc("ye")
          %yg, %ig = MaxPool(%g) {kernel_shape = [2, 2], pads = [1, 1, 1, 1], strides = [2, 2]} : f32[1,2,3,3], i64[1,2,3,3] loc("yg", "ig")
          %yh, %ih = MaxPool(%h) {kernel_shape = [2, 2, 2], storage_order = 1} : f32[1,1,2,3,4], i64[1,1,2,3,4] loc("yh", "ih")
          %yu = MaxPool(%u) {kernel_shape = [2, 2]} : u8[1,2,3,3] loc("yu")
          return %ya, %yb, %yc, %yd, %ye, %yg, %ig, %yh, %ih, %yu
        }
        """, bound: 250, kinds: ["max_pool", "max_pool", "average_pool", "average_pool", "average_pool", "max_pool", "max_pool", "max_pool"])
    }

    /// MatMul with 1-D operands, broadcast batch dims, a shared A, and f64, f16, i32 and i64
    /// operands; MatMulInteger with per-row and per-column zero points and with scalar ones.
    func testGeneralMatrixProductsMatchTheInterpreter() throws {
        try check("""
        opsets {"" = 13}
        func @m(%a1: f32[5] loc("a1"), %b1: f32[5] loc("b1"), %a2: f32[4] loc("a2"), %b2: f32[2,4,3] loc("b2"),
                %a3: f32[2,1,3,4] loc("a3"), %b3: f32[4] loc("b3"), %a4: f32[3,1,3,4] loc("a4"), %b4: f32[1,2,4,2] loc("b4"),
                %a5: f32[3,4] loc("a5"), %b5: f32[2,4,5] loc("b5"), %a6: f64[2,3] loc("a6"), %b6: f64[3,2] loc("b6"),
                %a7: f16[2,3,4] loc("a7"), %b7: f16[4,2] loc("b7"), %a8: i32[3,4] loc("a8"), %b8: i32[4,2] loc("b8"),
                %a9: i64[2,2,3] loc("a9"), %b9: i64[2,3,2] loc("b9")) ->
               (f32[] loc("y1"), f32[2,3] loc("y2"), f32[2,1,3] loc("y3"), f32[3,2,3,2] loc("y4"), f32[2,3,5] loc("y5"),
                f64[2,2] loc("y6"), f16[2,3,2] loc("y7"), i32[3,2] loc("y8"), i64[2,2,2] loc("y9")) {
          %y1 = MatMul(%a1, %b1) : f32[] loc("y1")
          %y2 = MatMul(%a2, %b2) : f32[2,3] loc("y2")
          %y3 = MatMul(%a3, %b3) : f32[2,1,3] loc("y3")
          %y4 = MatMul(%a4, %b4) : f32[3,2,3,2] loc("y4")
          %y5 = MatMul(%a5, %b5) : f32[2,3,5] loc("y5")
          %y6 = MatMul(%a6, %b6) : f64[2,2] loc("y6")
          %y7 = MatMul(%a7, %b7) : f16[2,3,2] loc("y7")
          %y8 = MatMul(%a8, %b8) : i32[3,2] loc("y8")
          %y9 = MatMul(%a9, %b9) : i64[2,2,2] loc("y9")
          return %y1, %y2, %y3, %y4, %y5, %y6, %y7, %y8, %y9
        }
        """, bound: 50, kinds: [String](repeating: "matmul_general", count: 9))
        try check("""
        opsets {"" = 10}
        func @q(%a: u8[2,3,4] loc("a"), %b: u8[4,5] loc("b"), %za: u8[3] loc("za"), %zb: u8[5] loc("zb"),
                %c: i8[3,4] loc("c"), %d: i8[4,2] loc("d"), %zc: i8[] loc("zc"), %zd: i8[1] loc("zd")) -> (i32[2,3,5] loc("y"), i32[3,2] loc("yi")) {
          %y = MatMulInteger(%a, %b, %za, %zb) : i32[2,3,5] loc("y")
          %yi = MatMulInteger(%c, %d, %zc, %zd) : i32[3,2] loc("yi")
          return %y, %yi
        }
        """, bound: 120, kinds: ["matmul_integer", "matmul_integer"])
    }

    /// CausalConvWithState with bias, past state and SiLU (f32, both outputs), and without them
    /// (f16, the state unused).
    func testCausalConvolutionWithStateMatchesTheInterpreter() throws {
        try check("""
        opsets {"" = 27}
        func @c(%x: f32[2,3,5] loc("x"), %w: f32[3,1,3] loc("w"), %b: f32[3] loc("b"), %p: f32[2,3,2] loc("p"),
                %xh: f16[1,2,4] loc("xh"), %wh: f16[2,1,2] loc("wh")) -> (f32[2,3,5] loc("y"), f32[2,3,2] loc("s"), f16[1,2,4] loc("yh")) {
          %y, %s = CausalConvWithState(%x, %w, %b, %p) {activation = "silu"} : f32[2,3,5], f32[2,3,2] loc("y", "s")
          %yh, %sh = CausalConvWithState(%xh, %wh) : f16[1,2,4], f16[1,2,1] loc("yh", "sh")
          return %y, %s, %yh
        }
        """, kinds: ["causal_conv", "causal_conv"])
    }

    /// MaxUnpool of a MaxPool's values and indices: into the unpooled shape, and placed at the
    /// origin of a larger and smaller output_shape.
    func testMaxUnpoolMatchesTheInterpreter() throws {
        try check("""
        opsets {"" = 11}
        func @u(%x: f32[1,2,4,4] loc("x")) -> (f32[1,2,4,4] loc("u"), f32[1,2,5,3] loc("v")) {
          %m, %i = MaxPool(%x) {kernel_shape = [2, 2], strides = [2, 2]} : f32[1,2,2,2], i64[1,2,2,2] loc("m", "i")
          %u = MaxUnpool(%m, %i) {kernel_shape = [2, 2], strides = [2, 2]} : f32[1,2,4,4] loc("u")
          %s = const dense<[1, 2, 5, 3]> : i64[4] loc("s")
          %v = MaxUnpool(%m, %i, %s) {kernel_shape = [2, 2], strides = [2, 2]} : f32[1,2,5,3] loc("v")
          return %u, %v
        }
        """, kinds: ["max_pool", "zero_fill", "max_unpool", "zero_fill", "max_unpool"])
    }

    /// DeformConv with groups, offset groups, pads, a bias and a mask, and without them.
    func testDeformConvolutionMatchesTheInterpreter() throws {
        try check("""
        opsets {"" = 19}
        func @d(%x: f32[1,4,4,5] loc("x"), %w: f32[2,2,2,2] loc("w"), %o: f32[1,16,5,6] loc("o"), %b: f32[2] loc("b"), %k: f32[1,8,5,6] loc("k"),
                %x1: f32[1,1,3,3] loc("x1"), %w1: f32[1,1,2,2] loc("w1"), %o1: f32[1,8,2,2] loc("o1")) -> (f32[1,2,5,6] loc("y"), f32[1,1,2,2] loc("y1")) {
          %y = DeformConv(%x, %w, %o, %b, %k) {group = 2, offset_group = 2, pads = [1, 1, 1, 1]} : f32[1,2,5,6] loc("y")
          %y1 = DeformConv(%x1, %w1, %o1) : f32[1,1,2,2] loc("y1")
          return %y, %y1
        }
        """, kinds: ["deform_conv", "deform_conv"])
    }

    /// Winograd F(2x2, 3x3) (32 channels; a padded odd-sized image with bias and a fused Relu, an
    /// unpadded even-sized one), depthwise convolution at stride 1 (the flat loop) and 2, and MaxPool
    /// at stride 2 with padding, at stride 1 (the plane-window kernel) and at stride 2 unpadded (read
    /// in place). Winograd needs constant
    /// weights, so the weights are bound to their values as `--input-value` binds them.
    func testWinogradAndPlaneWindowKernelsMatchTheInterpreter() throws {
        var module = try Parser.parse("""
        opsets {"" = 18, glmc = 1}
        func @w(%x: f32[1,32,7,9] loc("x"), %x2: f32[2,32,8,8] loc("x2"), %w: f32[32,32,3,3] loc("w"), %b: f32[32] loc("b"),
                %d: f32[1,8,10,10] loc("d"), %k: f32[8,1,3,3] loc("k")) ->
               (f32[1,32,7,9] loc("y"), f32[2,32,6,6] loc("u"), f32[1,8,10,10] loc("d1"), f32[1,8,5,5] loc("d2"),
                f32[1,8,5,5] loc("m2"), f32[1,8,9,9] loc("m1"), f32[1,8,4,4] loc("m3")) {
          %y = glmc.Fused(%x, %w, %b) {body = graph @conv_relu_0(%p: f32[1,32,7,9], %q: f32[32,32,3,3], %c: f32[32]) -> (f32[1,32,7,9]) {
            %t = Conv(%p, %q, %c) {pads = [1, 1, 1, 1]} : f32[1,32,7,9]
            %a = Relu(%t) : f32[1,32,7,9]
            return %a
          }, kind = "conv_relu"} : f32[1,32,7,9] loc("y")
          %u = Conv(%x2, %w) : f32[2,32,6,6] loc("u")
          %d1 = Conv(%d, %k) {group = 8, pads = [1, 1, 1, 1]} : f32[1,8,10,10] loc("d1")
          %d2 = Conv(%d, %k) {group = 8, pads = [1, 1, 1, 1], strides = [2, 2]} : f32[1,8,5,5] loc("d2")
          %m2 = MaxPool(%d) {kernel_shape = [3, 3], pads = [1, 1, 1, 1], strides = [2, 2]} : f32[1,8,5,5] loc("m2")
          %m1 = MaxPool(%d) {kernel_shape = [2, 2]} : f32[1,8,9,9] loc("m1")
          %m3 = MaxPool(%d) {kernel_shape = [3, 3], strides = [2, 2]} : f32[1,8,4,4] loc("m3")
          return %y, %u, %d1, %d2, %m2, %m1, %m3
        }
        """)
        let inputs = randomInputs(module.main, seed: 7)
        let f = module.main, w = f.arguments[2]
        let bound = module.main.addValue(f.type(of: w), name: "w")
        module.main.replaceAllUses(of: w, with: bound)
        module.main.body.insert(Instruction(op: .constant, opset: 18, operands: [], results: [bound],
                                            attributes: ["value": .tensor(inputs[2].tensorData)]), at: 0)
        try checkWithGivenInputs(module, inputs, kinds: [
            "winograd_input", "winograd_gemm", "winograd_output_epilogue", "winograd_input", "winograd_gemm", "winograd_output",
            "depthwise_conv2d", "depthwise_conv2d", "max_pool2d", "max_pool2d", "max_pool2d",
        ])
    }

    /// What the general kernels cannot index or compute is refused with one line naming the op
    /// and node.
    func testUnsupportedOperandsAndAttributesAreRefused() throws {
        let module = try Parser.parse("""
        opsets {"" = 10}
        func @q(%a: u8[3,4] loc("a"), %b: u8[4,2] loc("b"), %zb: u8[4,2] loc("zb")) -> (i32[3,2] loc("y")) {
          %y = MatMulInteger(%a, %b, %a, %zb) : i32[3,2] node("mmi")
          return %y
        }
        """)
        let options = CPUPlanOptions(sourceModelSha256: String(repeating: "0", count: 64), glmcVersion: "test")
        XCTAssertThrowsError(try CPUPlanBuilder.generate(module, options: options)) {
            XCTAssertEqual("\($0)", "unsupported: --target cpu cannot compile MatMulInteger with a zero point of type u8 and shape [3, 4] yet (node 'mmi')")
        }
        let refusals: [(body: String, message: String)] = [
            ("%y = ConvInteger(%x, %w, %z) : i32[1,1,2] node(\"n\")", "ConvInteger with a non-scalar x_zero_point"),
            ("%y = Conv(%f, %g) {auto_pad = \"MIDDLE\"} : f32[1,1,2] node(\"n\")", "Conv with auto_pad MIDDLE"),
            ("%y = CausalConvWithState(%f, %g) {activation = \"gelu\"} : f32[1,1,3] node(\"n\")", "CausalConvWithState with activation 'gelu'"),
        ]
        for (body, message) in refusals {
            let module = try Parser.parse("""
            opsets {"" = 27}
            func @r(%x: u8[1,1,3] loc("x"), %w: u8[1,1,2] loc("w"), %z: u8[2] loc("z"), %f: f32[1,1,3] loc("f"), %g: f32[1,1,2] loc("g")) -> (\(body.contains("i32") ? "i32[1,1,2]" : body.contains("Causal") ? "f32[1,1,3]" : "f32[1,1,2]") loc("y")) {
              \(body)
              return %y
            }
            """)
            XCTAssertThrowsError(try CPUPlanBuilder.generate(module, options: options)) {
                XCTAssertEqual("\($0)", "unsupported: --target cpu cannot compile \(message) yet (node 'n')")
            }
        }
    }
}
