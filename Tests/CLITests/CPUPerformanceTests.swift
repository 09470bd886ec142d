import Foundation
import GLMCInterpreter
import GLMCPlan
import GLMCRuntime
import GLMCTestSupport
import XCTest

/// The blocked GEMM/convolution kernels, `--cpu` and `cpu_features`, and the thread pool, end to
/// end (correctness only: timings belong to `make bench`).
extension CPUPlanTests {
    /// The `--cpu` choices this host can run (generic always).
    var runnableChoices: [String] {
        var choices = ["generic"]
        if ["avx2", "fma"].allSatisfy(HostCPU.supports) { choices.append("avx2") }
        if ["avx2", "avx512f", "fma"].allSatisfy(HostCPU.supports) { choices.append("avx512") }
        return choices
    }

    /// Sizes that leave partial micro-tiles and panels on every instruction set: Gemm (transB,
    /// alpha, beta, bias, Relu) on packed constant weights; MatMul of two inputs (B packed at run
    /// time); batched MatMul; a MatMul on [2,7,40] with a shared constant B and a bias; convolution
    /// through im2col (stride, asymmetric pads, dilation, groups) and pointwise 1x1; depthwise
    /// (stride 1 and, with a bias and Relu, stride 2); a depth of 300 (two depth blocks: partial sums
    /// added in C before the epilogue); a pointwise convolution of many channels over a 3x3 image,
    /// computed transposed (whole and partial micro-tiles, bias and Relu; over 144 pixels, read in
    /// place rather than packed); on AVX-512, convolutions of
    /// depth >= 16 read as patches of the image, padded by a step of its own (stride 2, bias, Relu)
    /// or read in place (unpadded, dilated).
    func testBlockedKernelsMatchTheInterpreterOnEveryInstructionSet() throws {
        var rng = SplitMix64(seed: 21)
        let ir = """
        opsets {"" = 17}

        func @blocked(%0: f32[37,41] loc("a"), %1: f32[41,29] loc("b"), %2: f32[3,19,23] loc("c"), %3: f32[3,23,17] loc("d"),
                      %4: f32[2,7,40] loc("e"), %5: f32[2,6,13,11] loc("x"), %6: f32[9,300] loc("deep"), %7: f32[2,40,3,3] loc("p"), %8: f32[2,16,9,11] loc("q"), %9: f32[1,40,12,12] loc("r"))
            -> (f32[37,33] loc("g"), f32[37,29] loc("m"), f32[3,19,17] loc("bm"), f32[2,7,21] loc("s"), f32[2,12,6,10] loc("y"), f32[2,12,3,6] loc("z"), f32[9,40] loc("dr"),
                f32[2,70,3,3] loc("pt"), f32[2,20,5,6] loc("qs"), f32[2,20,5,7] loc("qd"), f32[1,96,12,12] loc("rt")) {
          %10 = \(Self.constant("gw", [33, 41], &rng))
          %11 = \(Self.constant("gb", [33], &rng))
          %12 = Gemm(%0, %10, %11) {alpha = 0.5, beta = 2.0, transB = 1} : f32[37,33] loc("gemm")
          %13 = Relu(%12) : f32[37,33] loc("g")
          %14 = MatMul(%0, %1) : f32[37,29] loc("m")
          %15 = MatMul(%2, %3) : f32[3,19,17] loc("bm")
          %16 = \(Self.constant("sw", [40, 21], &rng))
          %17 = \(Self.constant("sb", [21], &rng))
          %18 = MatMul(%4, %16) : f32[2,7,21] loc("sm")
          %19 = Add(%18, %17) : f32[2,7,21] loc("s")
          %20 = \(Self.constant("w1", [18, 3, 3, 3], &rng))
          %21 = \(Self.constant("b1", [18], &rng))
          %22 = Conv(%5, %20, %21) {dilations = [2, 1], group = 2, kernel_shape = [3, 3], pads = [2, 1, 1, 2], strides = [2, 1]} : f32[2,18,6,12] loc("c1")
          %28 = const dense<[0.0]> : f32[] loc("zero")
          %29 = const dense<[0.5]> : f32[] loc("half")
          %23 = Clip(%22, %28, %29) : f32[2,18,6,12] loc("c1r")
          %24 = \(Self.constant("w2", [12, 18, 1, 1], &rng))
          %25 = Conv(%23, %24) {kernel_shape = [1, 1]} : f32[2,12,6,12] loc("c2")
          %26 = \(Self.constant("w3", [12, 1, 3, 3], &rng))
          %27 = Conv(%25, %26) {group = 12, kernel_shape = [3, 3], pads = [1, 0, 1, 0]} : f32[2,12,6,10] loc("y")
          %30 = \(Self.constant("w4", [12, 1, 3, 3], &rng))
          %31 = \(Self.constant("b4", [12], &rng))
          %32 = Conv(%25, %30, %31) {group = 12, kernel_shape = [3, 3], pads = [1, 1, 1, 1], strides = [2, 2]} : f32[2,12,3,6] loc("dw")
          %33 = Relu(%32) : f32[2,12,3,6] loc("z")
          %34 = \(Self.constant("dw_", [300, 40], &rng))
          %35 = MatMul(%6, %34) : f32[9,40] loc("dm")
          %36 = Relu(%35) : f32[9,40] loc("dr")
          %37 = \(Self.constant("wp", [70, 40, 1, 1], &rng))
          %38 = \(Self.constant("bp", [70], &rng))
          %39 = Conv(%7, %37, %38) {kernel_shape = [1, 1]} : f32[2,70,3,3] loc("pc")
          %40 = Relu(%39) : f32[2,70,3,3] loc("pt")
          %41 = \(Self.constant("wq", [20, 16, 3, 3], &rng))
          %42 = \(Self.constant("bq", [20], &rng))
          %43 = Conv(%8, %41, %42) {kernel_shape = [3, 3], pads = [1, 1, 1, 1], strides = [2, 2]} : f32[2,20,5,6] loc("qc")
          %44 = Relu(%43) : f32[2,20,5,6] loc("qs")
          %45 = Conv(%8, %41) {dilations = [2, 2], kernel_shape = [3, 3]} : f32[2,20,5,7] loc("qd")
          %46 = \(Self.constant("wr", [96, 40, 1, 1], &rng))
          %47 = Conv(%9, %46) {kernel_shape = [1, 1]} : f32[1,96,12,12] loc("rt")
          return %13, %14, %15, %19, %27, %33, %36, %40, %44, %45, %47
        }
        """
        for choice in runnableChoices {
            try checkAgainstInterpreter(ir, inputs: [[37, 41], [41, 29], [3, 19, 23], [3, 23, 17], [2, 7, 40], [2, 6, 13, 11], [9, 300], [2, 40, 3, 3], [2, 16, 9, 11], [1, 40, 12, 12]],
                                        seed: 5, convert: ["--cpu", choice])
            let plan = try PlanReader.read(path: scratch + "/model.plan")
            XCTAssertEqual(plan.manifest.cpuFeatures, ["generic": [], "avx2": ["avx2", "fma"], "avx512": ["avx2", "avx512f", "fma"]][choice])
            let source = plan.sources["kernels.c"] ?? ""
            XCTAssertTrue(source.contains("micro-tiles (\(choice))"), "\(choice): no blocked GEMM kernel in the source")
            // AVX-512 reads these patches in place instead (below).
            if choice != "avx512" { XCTAssertTrue(source.contains("B im2col"), "\(choice): no im2col convolution") }
            XCTAssertTrue(source.contains("A packed, B packed at run time"), "\(choice): no pointwise convolution")
            XCTAssertTrue(source.contains("A in place, B packed, C transposed"), "\(choice): no transposed pointwise convolution")
            if choice == "avx512" {
                XCTAssertTrue(source.contains("A patches of 16x11x13, kernel 3x3, B packed, C transposed"), "no padded patches")
                XCTAssertTrue(source.contains("A patches of 16x9x11, kernel 3x3, B packed, C transposed"), "no patches in place")
                // The grouped im2col convolution above (depth 27) and the stride-2 one are padded.
                XCTAssertEqual(plan.manifest.steps.filter { $0.kind == "pad_image" }.count, 2)
            }
            XCTAssertEqual(Set(plan.manifest.steps.map(\.kind).filter { $0.hasPrefix("depthwise") }), ["depthwise_conv2d", "depthwise_conv2d_epilogue"])
            XCTAssertTrue(plan.manifest.weights.contains { $0.name == "gw.panels" && $0.offset % 64 == 0 })
            // Several threads split the jobs of every step and give the same outputs.
            let out = scratch + "/threads-\(choice)"
            let inputs = (0 ..< 10).flatMap { ["--input", scratch + "/in\($0).npy"] }
            assertSucceeds(try GLMC.run(["run", scratch + "/model.plan", "--output-dir", out, "--threads", "3"] + inputs), "run with 3 threads")
            for i in 0 ..< 11 {
                let a = try NPY.read(path: out + "/output_\(i).npy"), b = try NPY.read(path: scratch + "/p/output_\(i).npy")
                XCTAssertEqual(a.doubles, b.doubles, "\(choice) output \(i): 3 threads differ from 1")
            }
        }
    }

    /// Clip fused after a Conv takes its bounds from attributes before opset 11 and from operands
    /// from then on (attributes are ignored there, as by the interpreter).
    func testClipEpilogueBoundsFollowTheOpset() throws {
        for opset in [6, 17] {
            var rng = SplitMix64(seed: 9)
            let ir = """
            opsets {"" = \(opset)}

            func @clip(%0: f32[1,4,8,8] loc("x")) -> (f32[1,8,8,8] loc("y")) {
              %1 = \(Self.constant("w", [8, 4, 3, 3], &rng))
              %2 = Conv(%0, %1) {kernel_shape = [3, 3], pads = [1, 1, 1, 1]} : f32[1,8,8,8] loc("c")
              %3 = Clip(%2) {max = 0.25, min = -0.25} : f32[1,8,8,8] loc("y")
              return %3
            }
            """
            try checkAgainstInterpreter(ir, inputs: [[1, 4, 8, 8]], seed: 4)
        }
    }

    /// `--cpu native` (the default) asks only for what this host has; a plan whose manifest asks
    /// for a feature no host has is refused with one error line naming it.
    func testPlansRecordAndCheckTheirCPUFeatures() throws {
        let path = scratch + "/mlp.plan"
        assertSucceeds(try GLMC.run(["convert", RoundTripPaths.model("mlp.onnx"), "--target", "cpu", "-o", path], timeout: 120))
        var plan = try PlanReader.read(path: path)
        XCTAssertTrue(plan.manifest.cpuFeatures.allSatisfy(HostCPU.supports), "\(plan.manifest.cpuFeatures)")
        plan.manifest.cpuFeatures += ["glmc_imaginary_feature"]
        let bad = scratch + "/needs-more.plan"
        try PlanWriter.write(plan, to: bad)
        assertFails(try GLMC.run(["run", bad, "--input", RoundTripPaths.model("mlp.input_0.npy"), "--output-dir", scratch + "/o"]),
                    containing: ["the plan needs CPU features this host lacks: glmc_imaginary_feature"])
        XCTAssertEqual(outputs(in: scratch + "/o"), [])
        // Usage errors are ArgumentParser's (status 64), and write nothing.
        let unknown = try GLMC.run(["convert", RoundTripPaths.model("mlp.onnx"), "--target", "cpu", "--cpu", "sse9", "-o", scratch + "/x.plan"])
        XCTAssertNotEqual(unknown.status, 0)
        XCTAssertTrue(unknown.stderr.contains("'sse9' is invalid for '--cpu"), unknown.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch + "/x.plan"))
        let zero = try GLMC.run(["run", path, "--threads", "0", "--input", RoundTripPaths.model("mlp.input_0.npy"), "--output-dir", scratch + "/o"])
        XCTAssertNotEqual(zero.status, 0)
        XCTAssertTrue(zero.stderr.contains("--threads must be at least 1"), zero.stderr)
    }
}
