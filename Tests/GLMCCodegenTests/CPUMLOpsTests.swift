import Foundation
import GLMCCodegen
import GLMCIR
import GLMCOps
import XCTest

/// The training optimizers, the ai.onnx.ml ops, TfIdfVectorizer, runtime Range and FlexAttention
/// with modifier graphs on the CPU target, compared with the interpreter (see `PlanComparing`).
final class CPUMLOpsTests: XCTestCase, PlanComparing {
    override func setUpWithError() throws {
        guard CPUPlanBuilder.findCompiler() != nil else { throw XCTSkip("no C compiler ($CC, cc, gcc or clang) on PATH") }
    }

    /// Adagrad over two tensors, Nesterov momentum with only X_new in use, and Adam on f64 with a
    /// weight decay after the update, at a T past the first iteration (bias correction).
    func testOptimizers() throws {
        let module = try Parser.parse("""
        opsets {"ai.onnx.preview.training" = 1}
        func @o(%r: f32[] loc("r"), %t: i64[] loc("t"), %x1: f32[3] loc("x1"), %x2: f32[2,2] loc("x2"), %g1: f32[3] loc("g1"), %g2: f32[2,2] loc("g2"), %h1: f32[3] loc("h1"), %h2: f32[2,2] loc("h2"), %a: f64[5] loc("a"), %b: f64[5] loc("b"), %c: f64[5] loc("c"), %d: f64[5] loc("d")) -> (f32[3] loc("x1n"), f32[2,2] loc("x2n"), f32[3] loc("h1n"), f32[2,2] loc("h2n"), f32[3] loc("m"), f64[5] loc("an"), f64[5] loc("cn"), f64[5] loc("dn")) {
          %x1n, %x2n, %h1n, %h2n = ai.onnx.preview.training.Adagrad(%r, %t, %x1, %x2, %g1, %g2, %h1, %h2) {decay_factor = 0.1, epsilon = 1e-05, norm_coefficient = 0.01} : f32[3], f32[2,2], f32[3], f32[2,2] loc("x1n", "x2n", "h1n", "h2n")
          %m, %mv = ai.onnx.preview.training.Momentum(%r, %t, %x1, %g1, %h1) {alpha = 0.9, beta = 0.5, mode = "nesterov", norm_coefficient = 0.02} : f32[3], f32[3] loc("m", "mv")
          %an, %cn, %dn = ai.onnx.preview.training.Adam(%r, %t, %a, %b, %c, %d) {alpha = 0.8, beta = 0.7, norm_coefficient = 0.001, norm_coefficient_post = 0.05} : f64[5], f64[5], f64[5] loc("an", "cn", "dn")
          return %x1n, %x2n, %h1n, %h2n, %m, %an, %cn, %dn
        }
        """)
        var inputs = randomInputs(module.main, seed: 3)
        inputs[1] = Tensor(int64s: [3], dtype: .i64, shape: [])
        // Accumulated squared gradients are not negative.
        for i in [6, 7, 11] { inputs[i] = Tensor(doubles: inputs[i].doubles.map(abs), dtype: inputs[i].dtype, shape: inputs[i].shape) }
        try checkWithGivenInputs(module, inputs, kinds: ["optimizer", "optimizer", "optimizer", "optimizer"])
        // At the first iteration (T = 0) Momentum's gradient coefficient is 1 and Adam does not correct.
        inputs[1] = Tensor(int64s: [0], dtype: .i64, shape: [])
        try checkWithGivenInputs(module, inputs)
    }

    /// Binarizer on f32 (NaN gives 0) and int64; ArrayFeatureExtractor on f64 rows and on a 1-D X.
    func testBinarizerAndArrayFeatureExtractor() throws {
        let module = try Parser.parse("""
        opsets {"ai.onnx.ml" = 1}
        func @m(%x: f32[2,5] loc("x"), %i: i64[7] loc("i"), %f: f64[3,4] loc("f"), %k: i64[3] loc("k"), %v: i32[6] loc("v")) -> (f32[2,5] loc("bx"), i64[7] loc("bi"), f64[3,3] loc("e"), i32[1,3] loc("e1")) {
          %bx = ai.onnx.ml.Binarizer(%x) {threshold = 0.25} : f32[2,5] loc("bx")
          %bi = ai.onnx.ml.Binarizer(%i) {threshold = -1.0} : i64[7] loc("bi")
          %e = ai.onnx.ml.ArrayFeatureExtractor(%f, %k) : f64[3,3] loc("e")
          %e1 = ai.onnx.ml.ArrayFeatureExtractor(%v, %k) : i32[1,3] loc("e1")
          return %bx, %bi, %e, %e1
        }
        """)
        var inputs = randomInputs(module.main, seed: 4, bound: 4, nonNegative: [3])
        var x = inputs[0].doubles
        x[3] = .nan
        inputs[0] = Tensor(doubles: x, dtype: .f32, shape: [2, 5])
        try checkWithGivenInputs(module, inputs, kinds: ["binarizer", "binarizer", "array_feature_extractor", "array_feature_extractor"])
    }

    /// A constant index past X's last axis is an error at convert time (the interpreter's error).
    func testArrayFeatureExtractorWithAConstantIndexOutOfRangeIsAnError() throws {
        let module = try Parser.parse("""
        opsets {"" = 17, "ai.onnx.ml" = 1}
        func @m(%f: f32[3,4] loc("f")) -> (f32[3,2] loc("e")) {
          %k = const dense<[1, 4]> : i64[2]
          %e = ai.onnx.ml.ArrayFeatureExtractor(%f, %k) : f32[3,2] loc("e")
          return %e
        }
        """)
        XCTAssertThrowsError(try CPUPlanBuilder.generate(module, options: CPUPlanOptions(sourceModelSha256: "", glmcVersion: "test"))) { error in
            XCTAssertTrue("\(error)".contains("index 4 is out of range for a last axis of 4"), "\(error)")
        }
    }

    /// Two trees (a membership set with NaN tracking true, a less-than split), averaged and
    /// post-transformed with a softmax; and a single tree on f64 with MAX and a logistic.
    func testTreeEnsemble() throws {
        let module = try Parser.parse("""
        opsets {"ai.onnx.ml" = 5}
        func @t(%x: f32[6,2] loc("x"), %d: f64[5,2] loc("d")) -> (f32[6,3] loc("y"), f64[5,2] loc("z")) {
          %y = ai.onnx.ml.TreeEnsemble(%x) {aggregate_function = 0, leaf_targetids = [0, 1, 2, 0, 2], leaf_weights = dense<[1.0, 2.0, 3.0, -1.0, 0.5]> : f32[5], membership_values = dense<"0x0000003F0000C07F"> : f32[2], n_targets = 3, nodes_falseleafs = [0, 1, 1, 1], nodes_falsenodeids = [2, 1, 2, 4], nodes_featureids = [0, 1, 1, 0], nodes_missing_value_tracks_true = [1, 0, 0, 0], nodes_modes = dense<[6, 1, 3, 0]> : u8[4], nodes_splits = dense<[0.0, 0.0, 0.5, 0.0]> : f32[4], nodes_trueleafs = [0, 1, 1, 1], nodes_truenodeids = [1, 0, 3, 3], post_transform = 1, tree_roots = [0, 3]} : f32[6,3] loc("y")
          %z = ai.onnx.ml.TreeEnsemble(%d) {aggregate_function = 3, leaf_targetids = [0, 1, 1], leaf_weights = dense<[0.25, -2.0, 4.0]> : f64[3], n_targets = 2, nodes_falseleafs = [0, 1], nodes_falsenodeids = [1, 2], nodes_featureids = [1, 0], nodes_modes = dense<[2, 4]> : u8[2], nodes_splits = dense<[0.0, 0.5]> : f64[2], nodes_trueleafs = [1, 1], nodes_truenodeids = [0, 1], post_transform = 2, tree_roots = [0]} : f64[5,2] loc("z")
          return %y, %z
        }
        """)
        var inputs = randomInputs(module.main, seed: 8)
        var x = inputs[0].doubles
        x[0] = .nan; x[2] = 0.5; x[4] = 0.5
        inputs[0] = Tensor(doubles: x, dtype: .f32, shape: [6, 2])
        var d = inputs[1].doubles
        d[4] = 0.5
        inputs[1] = Tensor(doubles: d, dtype: .f64, shape: [5, 2])
        try checkWithGivenInputs(module, inputs, kinds: ["tree_ensemble", "tree_ensemble"])
    }

    /// A tree whose walk loops (node 1 leads back to node 0) is refused with the reason.
    func testTreeEnsembleWithACycleIsRefused() throws {
        let module = try Parser.parse("""
        opsets {"ai.onnx.ml" = 5}
        func @t(%x: f32[2,1] loc("x")) -> (f32[2,1] loc("y")) {
          %y = ai.onnx.ml.TreeEnsemble(%x) {leaf_targetids = [0], leaf_weights = dense<[1.0]> : f32[1], n_targets = 1, nodes_falseleafs = [1, 0], nodes_falsenodeids = [0, 0], nodes_featureids = [0, 0], nodes_modes = dense<[0, 0]> : u8[2], nodes_splits = dense<[0.0, 1.0]> : f32[2], nodes_trueleafs = [0, 1], nodes_truenodeids = [1, 0], tree_roots = [0]} : f32[2,1] loc("y")
          return %y
        }
        """)
        XCTAssertThrowsError(try CPUPlanBuilder.generate(module, options: CPUPlanOptions(sourceModelSha256: "", glmcVersion: "test"))) { error in
            XCTAssertTrue("\(error)".contains("unsupported: --target cpu cannot compile ai.onnx.ml.TreeEnsemble whose tree from root 0 has a cycle"), "\(error)")
        }
    }

    /// TfIdfVectorizer on int64 rows: 1- and 2-grams with skips, a repeated pool n-gram, TFIDF
    /// weights; and IDF on a 1-D int32 input counting 2-grams only.
    func testTfIdfVectorizer() throws {
        try check("""
        opsets {"" = 9}
        func @v(%x: i64[3,7] loc("x"), %y: i32[8] loc("y")) -> (f32[3,6] loc("a"), f32[4] loc("b")) {
          %a = TfIdfVectorizer(%x) {max_gram_length = 2, max_skip_count = 2, min_gram_length = 1, mode = "TFIDF", ngram_counts = [0, 3], ngram_indexes = [0, 1, 2, 3, 4, 5], pool_int64s = [0, 1, 2, 0, 1, 2, 2, 0, 1], weights = [0.5, 1.0, 2.0, 0.25, 3.0, 1.5]} : f32[3,6] loc("a")
          %b = TfIdfVectorizer(%y) {max_gram_length = 2, max_skip_count = 1, min_gram_length = 2, mode = "IDF", ngram_counts = [0, 2], ngram_indexes = [0, 1, 2, 3], pool_int64s = [0, 1, 0, 1, 1, 0], weights = [1.0, 2.0, 3.0, 4.0]} : f32[4] loc("b")
          return %a, %b
        }
        """, seed: 6, bound: 3, nonNegative: [0, 1], kinds: ["tfidf_vectorizer", "tfidf_vectorizer"])
    }

    /// Range on f16 bounds known only at run time: the result's static size is the count.
    func testRangeWithRuntimeHalfBounds() throws {
        let module = try Parser.parse("""
        opsets {"" = 11}
        func @r(%s: f16[] loc("s"), %l: f16[] loc("l"), %d: f16[] loc("d")) -> (f16[4] loc("y")) {
          %y = Range(%s, %l, %d) : f16[4] loc("y")
          return %y
        }
        """)
        let half = { (x: Double) in Tensor(doubles: [x], dtype: .f16, shape: []) }
        try checkWithGivenInputs(module, [half(1.5), half(3.5), half(0.625)], kinds: ["range"])
    }

    /// FlexAttention whose score_mod masks causally (positions from Shape and Range, folded into
    /// a constant mask) and adds a relative bias, and whose prob_mod scales: on f32, and on f16
    /// inputs (scores in f32) with grouped heads.
    func testFlexAttentionWithModifiers() throws {
        for (dtype, kvHeads) in [("f32", 2), ("f16", 1)] {
            try check("""
            opsets {"" = 26, "ai.onnx.preview" = 1}
            func @f(%q: \(dtype)[1,2,3,4] loc("q"), %k: \(dtype)[1,\(kvHeads),5,4] loc("k"), %v: \(dtype)[1,\(kvHeads),5,3] loc("v")) -> (\(dtype)[1,2,3,3] loc("y")) {
              %y = ai.onnx.preview.FlexAttention(%q, %k, %v) {prob_mod = graph @p(%p: f32[?B,?H,?L,?S] loc("p")) -> (f32[?B,?H,?L,?S] loc("po")) {
                %h = const dense<[0.5]> : f32[] loc("h")
                %po = Mul(%p, %h) : f32[?B,?H,?L,?S] loc("po")
                return %po
              }, score_mod = graph @s(%s: f32[?B,?H,?L,?S] loc("s")) -> (f32[?B,?H,?L,?S] loc("so")) {
                %zero = const dense<[0]> : i64[] loc("zero")
                %one = const dense<[1]> : i64[] loc("one")
                %two = const dense<[2]> : i64[] loc("two")
                %three = const dense<[3]> : i64[] loc("three")
                %qs = const dense<[-1, 1]> : i64[2] loc("qs")
                %ks = const dense<[1, -1]> : i64[2] loc("ks")
                %inf = const dense<"0x000080FF"> : f32[] loc("inf")
                %shape = Shape(%s) : i64[4] loc("shape")
                %l = Gather(%shape, %two) {axis = 0} : i64[] loc("l")
                %n = Gather(%shape, %three) {axis = 0} : i64[] loc("n")
                %qr = Range(%zero, %l, %one) : i64[?] loc("qr")
                %qi = Reshape(%qr, %qs) : i64[?,1] loc("qi")
                %kr = Range(%zero, %n, %one) : i64[?] loc("kr")
                %ki = Reshape(%kr, %ks) : i64[1,?] loc("ki")
                %mask = GreaterOrEqual(%qi, %ki) : bool[?,?] loc("mask")
                %rel = Sub(%qi, %ki) : i64[?,?] loc("rel")
                %relf = Cast(%rel) {to = 1} : f32[?,?] loc("relf")
                %biased = Add(%s, %relf) : f32[?B,?H,?L,?S] loc("biased")
                %so = Where(%mask, %biased, %inf) : f32[?B,?H,?L,?S] loc("so")
                return %so
              }} : \(dtype)[1,2,3,3] loc("y")
              return %y
            }
            """, seed: 2, kinds: ["flex_attention_scores", "elementwise", "flex_attention_softmax", "elementwise", "flex_attention_values"])
        }
    }

    /// A modifier that is not elementwise on the scores (a reduction over them) is refused with
    /// the reason.
    func testFlexAttentionWithANonElementwiseModifierIsRefused() throws {
        let module = try Parser.parse("""
        opsets {"" = 26, "ai.onnx.preview" = 1}
        func @f(%q: f32[1,1,2,4] loc("q"), %k: f32[1,1,3,4] loc("k"), %v: f32[1,1,3,4] loc("v")) -> (f32[1,1,2,4] loc("y")) {
          %y = ai.onnx.preview.FlexAttention(%q, %k, %v) {score_mod = graph @s(%s: f32[?B,?H,?L,?S] loc("s")) -> (f32[?B,?H,?L,?S] loc("so")) {
            %m = ReduceMax(%s) {keepdims = 1} : f32[1,1,1,1] loc("m")
            %so = Sub(%s, %m) : f32[?B,?H,?L,?S] loc("so")
            return %so
          }} : f32[1,1,2,4] loc("y")
          return %y
        }
        """)
        XCTAssertThrowsError(try CPUPlanBuilder.generate(module, options: CPUPlanOptions(sourceModelSha256: "", glmcVersion: "test"))) { error in
            XCTAssertTrue("\(error)".contains("FlexAttention with a score_mod graph that is not elementwise on the scores"), "\(error)")
        }
    }
}
