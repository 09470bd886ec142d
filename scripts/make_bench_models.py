#!/usr/bin/env python3
"""Models for the CPU benchmark (`make bench`), written into bench-data/ (git-ignored) on first use.

  bench_mobilenet.onnx   MobileNet-v1-like: 3x3/2 stem, 13 depthwise-separable blocks (depthwise
                         3x3 + BatchNorm + Clip(0,6), pointwise 1x1 + BatchNorm + Clip(0,6)),
                         global average pool, 1000-way Gemm. Input f32[1,3,224,224].
  bench_resnet.onnx      ResNet-18-like: 7x7/2 stem + BatchNorm + Relu, 3x3/2 max pool, four stages
                         of two basic blocks (64..512 channels, 1x1/2 projection shortcuts),
                         global average pool, 1000-way Gemm. Input f32[1,3,224,224].
  bench_bert.onnx        BERT-like encoder: 4 post-LN layers, hidden 256, 4 heads, sequence 128,
                         GELU (erf) feed-forward 1024. Input f32[1,128,256] (embeddings given).

Random weights (fixed seeds); the benchmark compares speed, not accuracy.
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np
from onnx import TensorProto, helper
import onnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_models import GraphBuilder  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(ROOT, "bench-data")


def conv_bn(b: GraphBuilder, x, cin, cout, k, stride, group=1, act="relu"):
    name = b.fresh("conv")
    w = b.weight(f"{name}.weight", (cout, cin // group, k, k), math.sqrt(2.0 / (cin // group * k * k)))
    y = b.op("Conv", [x, w], kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4, group=group)
    scale = b.init(f"{name}.bn.scale", (1.0 + 0.1 * b.rng.standard_normal(cout)).astype(np.float32))
    bias = b.init(f"{name}.bn.bias", (0.1 * b.rng.standard_normal(cout)).astype(np.float32))
    mean = b.init(f"{name}.bn.mean", (0.1 * b.rng.standard_normal(cout)).astype(np.float32))
    var = b.init(f"{name}.bn.var", (1.0 + 0.1 * np.abs(b.rng.standard_normal(cout))).astype(np.float32))
    y = b.op("BatchNormalization", [y, scale, bias, mean, var], epsilon=1e-5)
    if act == "relu":
        return b.op("Relu", [y])
    if act == "relu6":
        return b.op("Clip", [y, b.constant(np.array(0.0, dtype=np.float32), "zero"), b.constant(np.array(6.0, dtype=np.float32), "six")])
    return y


def classifier(b: GraphBuilder, x, channels):
    x = b.op("Flatten", [b.op("GlobalAveragePool", [x])], axis=1)
    w = b.weight("fc.weight", (1000, channels), 1.0 / math.sqrt(channels))
    bias = b.weight("fc.bias", (1000,), 0.01)
    return b.op("Gemm", [x, w, bias], transB=1, out="logits")


def image_model(b: GraphBuilder, doc: str):
    return b.model([helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 224, 224])],
                   [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1000])], doc)


def make_mobilenet():
    b = GraphBuilder("bench_mobilenet", seed=501)
    x = conv_bn(b, "image", 3, 32, 3, 2, act="relu6")
    cin = 32
    for cout, stride in [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]:
        x = conv_bn(b, x, cin, cin, 3, stride, group=cin, act="relu6")
        x = conv_bn(b, x, cin, cout, 1, 1, act="relu6")
        cin = cout
    classifier(b, x, cin)
    return image_model(b, "MobileNet-v1-like benchmark model (random weights).")


def make_resnet():
    b = GraphBuilder("bench_resnet", seed=502)
    x = conv_bn(b, "image", 3, 64, 7, 2)
    x = b.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for stage, cout in enumerate([64, 128, 256, 512]):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            y = conv_bn(b, x, cin, cout, 3, stride)
            y = conv_bn(b, y, cout, cout, 3, 1, act=None)
            shortcut = x if stride == 1 and cin == cout else conv_bn(b, x, cin, cout, 1, stride, act=None)
            x = b.op("Relu", [b.op("Add", [y, shortcut])])
            cin = cout
    classifier(b, x, cin)
    return image_model(b, "ResNet-18-like benchmark model (random weights).")


SEQ, HIDDEN, HEADS, LAYERS, FF = 128, 256, 4, 4, 1024


def make_bert():
    b = GraphBuilder("bench_bert", seed=503)
    head = HIDDEN // HEADS
    i64 = lambda *v: b.constant(np.array(v, dtype=np.int64), "shape")  # noqa: E731

    def linear(x, fan_in, fan_out):
        name = b.fresh("linear")
        w = b.weight(f"{name}.weight_t", (fan_in, fan_out), 1.0 / math.sqrt(fan_in))
        bias = b.weight(f"{name}.bias", (fan_out,), 0.02)
        return b.op("Add", [b.op("MatMul", [x, w]), bias])

    def layer_norm(x):
        name = b.fresh("ln")
        g = b.init(f"{name}.weight", (1.0 + 0.1 * b.rng.standard_normal(HIDDEN)).astype(np.float32))
        beta = b.init(f"{name}.bias", (0.1 * b.rng.standard_normal(HIDDEN)).astype(np.float32))
        return b.op("LayerNormalization", [x, g, beta], axis=-1, epsilon=1e-12)

    x = "embeddings"
    for _ in range(LAYERS):
        q = b.op("Transpose", [b.op("Reshape", [linear(x, HIDDEN, HIDDEN), i64(1, SEQ, HEADS, head)])], perm=[0, 2, 1, 3])
        k = b.op("Transpose", [b.op("Reshape", [linear(x, HIDDEN, HIDDEN), i64(1, SEQ, HEADS, head)])], perm=[0, 2, 3, 1])
        v = b.op("Transpose", [b.op("Reshape", [linear(x, HIDDEN, HIDDEN), i64(1, SEQ, HEADS, head)])], perm=[0, 2, 1, 3])
        scores = b.op("Div", [b.op("MatMul", [q, k]), b.constant(np.array(math.sqrt(head), dtype=np.float32), "scale")])
        ctx = b.op("MatMul", [b.op("Softmax", [scores], axis=-1), v])
        ctx = b.op("Reshape", [b.op("Transpose", [ctx], perm=[0, 2, 1, 3]), i64(1, SEQ, HIDDEN)])
        x = layer_norm(b.op("Add", [x, linear(ctx, HIDDEN, HIDDEN)]))
        h = linear(x, HIDDEN, FF)
        e = b.op("Erf", [b.op("Div", [h, b.constant(np.array(math.sqrt(2.0), dtype=np.float32), "sqrt2")])])
        e = b.op("Add", [e, b.constant(np.array(1.0, dtype=np.float32), "one")])
        g = b.op("Mul", [b.op("Mul", [h, e]), b.constant(np.array(0.5, dtype=np.float32), "half")])
        x = layer_norm(b.op("Add", [x, linear(g, FF, HIDDEN)]))
    b.op("Identity", [x], out="hidden")
    return b.model([helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, [1, SEQ, HIDDEN])],
                   [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, [1, SEQ, HIDDEN])],
                   "BERT-like encoder benchmark model: 4 layers, hidden 256, 4 heads, sequence 128 (random weights).")


MODELS = {"bench_mobilenet": make_mobilenet, "bench_resnet": make_resnet, "bench_bert": make_bert}


def ensure(out_dir: str = DEFAULT_OUT) -> dict[str, str]:
    """Writes the models that are missing; returns name -> path."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {}
    for name, make in MODELS.items():
        path = os.path.join(out_dir, name + ".onnx")
        if not os.path.exists(path):
            model = make()
            onnx.checker.check_model(model)
            onnx.save(model, path + ".tmp")
            os.replace(path + ".tmp", path)
        paths[name] = path
    return paths


if __name__ == "__main__":
    for name, path in ensure(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT).items():
        print(f"{name}: {path}")
