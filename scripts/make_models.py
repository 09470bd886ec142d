#!/usr/bin/env python3
"""Regenerate the sample models in Models/ (run with the venv: `make models`).

Builds three small ONNX models with onnx.helper (no downloads), checks them with
the full ONNX checker, and writes for each:

    Models/<name>.onnx           the model (opset 17, IR version 8, weights as raw_data initializers)
    Models/<name>.input_0.npy    a seeded input
    Models/<name>.output_0.npy   ONNX Runtime's (CPUExecutionProvider) output for that input

Everything is seeded, so re-running produces byte-identical files (for the same
onnx / onnxruntime / numpy versions, pinned in scripts/requirements.txt).
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8  # the IR version that goes with opset 17 (onnx 1.12/1.13)
PRODUCER = "glmc-make_models"

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(ROOT, "Models")


class GraphBuilder:
    """A small helper around onnx.helper that names things and collects initializers."""

    def __init__(self, name: str, seed: int):
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.counts: dict[str, int] = {}

    def fresh(self, prefix: str) -> str:
        n = self.counts.get(prefix, 0)
        self.counts[prefix] = n + 1
        return f"{prefix}_{n}"

    # -- tensors -----------------------------------------------------------

    def init(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def weight(self, name: str, shape, scale: float) -> str:
        a = (self.rng.standard_normal(shape) * scale).astype(np.float32)
        return self.init(name, a)

    def constant(self, array: np.ndarray, prefix: str = "const") -> str:
        """A Constant node (as PyTorch's exporter emits for scalars and shape pieces)."""
        out = self.fresh(prefix)
        self.nodes.append(helper.make_node(
            "Constant", [], [out], name=self.fresh("Constant"),
            value=numpy_helper.from_array(np.asarray(array), out)))
        return out

    # -- nodes -------------------------------------------------------------

    def op(self, op_type: str, inputs, n_out: int = 1, out=None, **attrs):
        outs = [out] if out is not None else [self.fresh(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=self.fresh(op_type), **attrs))
        return outs[0] if n_out == 1 else outs

    def model(self, inputs, outputs, doc: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, self.name, inputs, outputs, initializer=self.initializers)
        m = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            ir_version=IR_VERSION,
            producer_name=PRODUCER,
            producer_version="1",
            doc_string=doc,
        )
        return m


# ---------------------------------------------------------------------------
# MLP: input f32[1,64] -> Gemm 64->128 -> Relu -> Gemm 128->64 -> Relu -> Gemm 64->10 -> logits

def make_mlp():
    b = GraphBuilder("mlp", seed=1001)
    x = "input"
    dims = [64, 128, 64, 10]
    for i, (fan_in, fan_out) in enumerate(zip(dims[:-1], dims[1:])):
        w = b.weight(f"fc{i}.weight", (fan_out, fan_in), 1.0 / math.sqrt(fan_in))  # PyTorch layout [out, in]
        bias = b.weight(f"fc{i}.bias", (fan_out,), 0.05)
        last = i == len(dims) - 2
        x = b.op("Gemm", [x, w, bias], out="logits" if last else None, alpha=1.0, beta=1.0, transB=1)
        if not last:
            x = b.op("Relu", [x])
    model = b.model(
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        "3-layer MLP: Gemm(64->128)/Relu/Gemm(128->64)/Relu/Gemm(64->10).",
    )
    rng = np.random.default_rng(2001)
    feeds = {"input": rng.standard_normal((1, 64)).astype(np.float32)}
    return model, feeds


# ---------------------------------------------------------------------------
# CNN: image f32[1,3,32,32] -> Conv/BN/Relu/MaxPool -> Conv/BN/Relu -> GAP -> Flatten -> Gemm -> logits

def make_cnn():
    b = GraphBuilder("cnn", seed=1002)

    def conv_bn_relu(x, idx, cin, cout):
        w = b.weight(f"conv{idx}.weight", (cout, cin, 3, 3), 1.0 / math.sqrt(cin * 9))
        bias = b.weight(f"conv{idx}.bias", (cout,), 0.05)
        y = b.op("Conv", [x, w, bias], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1], dilations=[1, 1], group=1)
        scale = b.init(f"bn{idx}.weight", (1.0 + 0.1 * b.rng.standard_normal(cout)).astype(np.float32))
        shift = b.init(f"bn{idx}.bias", (0.1 * b.rng.standard_normal(cout)).astype(np.float32))
        mean = b.init(f"bn{idx}.running_mean", (0.1 * b.rng.standard_normal(cout)).astype(np.float32))
        var = b.init(f"bn{idx}.running_var", b.rng.uniform(0.5, 1.5, cout).astype(np.float32))
        y = b.op("BatchNormalization", [y, scale, shift, mean, var], epsilon=1e-5, momentum=0.9)
        return b.op("Relu", [y])

    x = conv_bn_relu("image", 0, 3, 16)                                    # [1,16,32,32]
    x = b.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])          # [1,16,16,16]
    x = conv_bn_relu(x, 1, 16, 32)                                         # [1,32,16,16]
    x = b.op("GlobalAveragePool", [x])                                     # [1,32,1,1]
    x = b.op("Flatten", [x], axis=1)                                       # [1,32]
    w = b.weight("fc.weight", (10, 32), 1.0 / math.sqrt(32))
    bias = b.weight("fc.bias", (10,), 0.05)
    b.op("Gemm", [x, w, bias], out="logits", alpha=1.0, beta=1.0, transB=1)  # [1,10]
    model = b.model(
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        "Small CNN: 2x (Conv3x3/BatchNorm/Relu), MaxPool, GlobalAveragePool, Flatten, Gemm.",
    )
    rng = np.random.default_rng(2002)
    feeds = {"image": rng.standard_normal((1, 3, 32, 32)).astype(np.float32)}
    return model, feeds


# ---------------------------------------------------------------------------
# Transformer encoder block (pre-LN, causal self-attention, GELU MLP), symbolic batch.

SEQ = 16
VOCAB = 100
D_MODEL = 32
HEADS = 2
HEAD_DIM = D_MODEL // HEADS
D_FF = 64


def make_transformer():
    b = GraphBuilder("transformer", seed=1003)
    i64 = lambda *v: np.array(v, dtype=np.int64)  # noqa: E731

    # Embeddings.
    table = b.weight("tok_emb.weight", (VOCAB, D_MODEL), 0.5)
    pos = b.weight("pos_emb.weight", (SEQ, D_MODEL), 0.1)
    tok = b.op("Gather", [table, "input_ids"], axis=0)                   # [B,16,32]
    x0 = b.op("Add", [tok, pos])                                          # [B,16,32]

    def layer_norm(x, prefix):
        g = b.init(f"{prefix}.weight", (1.0 + 0.1 * b.rng.standard_normal(D_MODEL)).astype(np.float32))
        beta = b.init(f"{prefix}.bias", (0.1 * b.rng.standard_normal(D_MODEL)).astype(np.float32))
        return b.op("LayerNormalization", [x, g, beta], axis=-1, epsilon=1e-5)

    def linear(x, prefix, fan_in, fan_out):
        # PyTorch exports nn.Linear on 3-D inputs as MatMul with the transposed weight, then Add.
        w = b.weight(f"{prefix}.weight_t", (fan_in, fan_out), 1.0 / math.sqrt(fan_in))
        bias = b.weight(f"{prefix}.bias", (fan_out,), 0.02)
        return b.op("Add", [b.op("MatMul", [x, w]), bias])

    def dim_of(x, index):
        """Shape(x) -> Gather(index) -> Unsqueeze(0): a 1-element i64 tensor, exporter style."""
        s = b.op("Shape", [x])
        d = b.op("Gather", [s, b.constant(np.array(index, dtype=np.int64))], axis=0)
        return b.op("Unsqueeze", [d, b.constant(i64(0))])

    def split_heads(x):
        # x: [B,T,D] -> Reshape [B,T,H,hd] (shape from a Shape/Gather/Unsqueeze/Concat chain).
        shape = b.op("Concat", [dim_of(x, 0), dim_of(x, 1),
                                b.constant(i64(HEADS)), b.constant(i64(HEAD_DIM))], axis=0)
        return b.op("Reshape", [x, shape])

    # Attention sub-block.
    h = layer_norm(x0, "ln1")
    q = linear(h, "attn.q", D_MODEL, D_MODEL)
    k = linear(h, "attn.k", D_MODEL, D_MODEL)
    v = linear(h, "attn.v", D_MODEL, D_MODEL)
    qh = b.op("Transpose", [split_heads(q)], perm=[0, 2, 1, 3])           # [B,H,T,hd]
    kt = b.op("Transpose", [split_heads(k)], perm=[0, 2, 3, 1])           # [B,H,hd,T]
    vh = b.op("Transpose", [split_heads(v)], perm=[0, 2, 1, 3])           # [B,H,T,hd]
    scores = b.op("MatMul", [qh, kt])                                     # [B,H,T,T]
    scale = b.constant(np.array(1.0 / math.sqrt(HEAD_DIM), dtype=np.float32), "scale")
    scores = b.op("Mul", [scores, scale])
    mask = b.init("attn.causal_mask", np.triu(np.full((SEQ, SEQ), -1e9, dtype=np.float32), k=1))
    scores = b.op("Add", [scores, mask])
    probs = b.op("Softmax", [scores], axis=-1)
    ctx = b.op("MatMul", [probs, vh])                                     # [B,H,T,hd]
    ctx = b.op("Transpose", [ctx], perm=[0, 2, 1, 3])                     # [B,T,H,hd]
    merged_shape = b.op("Concat", [dim_of(ctx, 0), dim_of(ctx, 1), b.constant(i64(D_MODEL))], axis=0)
    ctx = b.op("Reshape", [ctx, merged_shape])                            # [B,T,D]
    attn = linear(ctx, "attn.out", D_MODEL, D_MODEL)
    x1 = b.op("Add", [x0, attn])

    # MLP sub-block with GELU in its erf form: x * 0.5 * (1 + erf(x / sqrt(2))).
    h = layer_norm(x1, "ln2")
    h = linear(h, "mlp.fc1", D_MODEL, D_FF)
    e = b.op("Erf", [b.op("Div", [h, b.constant(np.array(math.sqrt(2.0), dtype=np.float32), "sqrt2")])])
    e = b.op("Add", [e, b.constant(np.array(1.0, dtype=np.float32), "one")])
    g = b.op("Mul", [b.op("Mul", [h, e]), b.constant(np.array(0.5, dtype=np.float32), "half")])
    m = linear(g, "mlp.fc2", D_FF, D_MODEL)
    b.op("Add", [x1, m], out="hidden")

    model = b.model(
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", SEQ])],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", SEQ, D_MODEL])],
        "One pre-LN transformer encoder block: token+positional embedding, 2-head causal "
        "self-attention, GELU (erf) MLP, residuals. Symbolic batch dimension.",
    )
    rng = np.random.default_rng(2003)
    feeds = {"input_ids": rng.integers(0, VOCAB, size=(2, SEQ), dtype=np.int64)}
    return model, feeds


MODELS = {
    "mlp": make_mlp,
    "cnn": make_cnn,
    "transformer": make_transformer,
}


def run_ort(model: onnx.ModelProto, feeds):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return names, sess.run(names, feeds)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT, help="output directory (default: Models/)")
    ap.add_argument("names", nargs="*", help=f"models to build: {', '.join(MODELS)} (default: all)")
    args = ap.parse_args(argv)
    for n in args.names:
        if n not in MODELS:
            ap.error(f"unknown model {n!r}; choose from {', '.join(MODELS)}")
    os.makedirs(args.out, exist_ok=True)

    for name in args.names or MODELS:
        model, feeds = MODELS[name]()
        onnx.checker.check_model(model, full_check=True)
        path = os.path.join(args.out, f"{name}.onnx")
        onnx.save_model(model, path)
        # Re-check what was written, from disk.
        onnx.checker.check_model(path, full_check=True)

        for i, (_, arr) in enumerate(feeds.items()):
            np.save(os.path.join(args.out, f"{name}.input_{i}.npy"), arr)
        out_names, outs = run_ort(model, feeds)
        for i, arr in enumerate(outs):
            np.save(os.path.join(args.out, f"{name}.output_{i}.npy"), arr)

        ins = ", ".join(f"{k} {v.dtype}{list(v.shape)}" for k, v in feeds.items())
        outs_s = ", ".join(f"{k} {v.dtype}{list(v.shape)}" for k, v in zip(out_names, outs))
        print(f"{name:12s} {os.path.getsize(path):7d} bytes  {len(model.graph.node):3d} nodes  "
              f"in: {ins}  out: {outs_s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
