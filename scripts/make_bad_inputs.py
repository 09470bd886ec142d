#!/usr/bin/env python3
"""Writes the small fixture files the front-end and CLI tests read.

    .venv/bin/python scripts/make_bad_inputs.py

Deterministic: running it again rewrites byte-identical files. Outputs (all committed):

  Tests/Fixtures/bad/    inputs glmc must refuse with one clear error line (one per case below)
  Tests/Fixtures/good/   small valid models the positive tests import, dump and run
  Tests/Fixtures/npy/    reference .npy files written by NumPy, for the NPY reader tests

Deliberately invalid models are built with onnx.helper and saved without onnx.checker
(or written as raw bytes). The valid ones pass onnx.checker.check_model. Symlinks are not
committed (git symlinks are fragile): the symlink test copies bad/external_symlink/model.onnx
into a temporary folder and creates `link.bin` there, pointing out of that folder.
"""

from __future__ import annotations

import os
import random
import shutil
import struct
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "Tests", "Fixtures")
BAD = os.path.join(FIXTURES, "bad")
GOOD = os.path.join(FIXTURES, "good")
NPY = os.path.join(FIXTURES, "npy")

OPSET = 17
IR_VERSION = 8
F = TensorProto


def model(graph, *, opset=OPSET, functions=(), extra_opsets=(), check=True):
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in extra_opsets]
    m = helper.make_model(graph, opset_imports=opsets, functions=list(functions),
                          producer_name="glmc-make_bad_inputs", producer_version="1")
    m.ir_version = IR_VERSION
    if check:
        onnx.checker.check_model(m, full_check=True)
    return m


def save(m, *parts):
    path = os.path.join(*parts)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # SerializeToString is deterministic for a given message; write it ourselves so no external
    # data conversion or checker runs.
    with open(path, "wb") as f:
        f.write(m.SerializeToString(deterministic=True))
    return path


def write_bytes(data: bytes, *parts):
    path = os.path.join(*parts)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


def vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


# ---------------------------------------------------------------------------
# Values shared by the typed-field and raw-data models (the Swift tests hold the same numbers).

# name, ONNX dtype, dims, values (for f16/bf16: the 16-bit patterns)
DTYPE_VALUES = [
    ("t_f32", F.FLOAT, [1, 3], [1.5, -2.25, 3.0]),
    ("t_f64", F.DOUBLE, [2], [1e100, -0.5]),
    ("t_i64", F.INT64, [2], [-(1 << 40), 7]),
    ("t_i32", F.INT32, [2], [-123456, 2147483647]),
    ("t_i16", F.INT16, [2], [-32768, 32767]),
    ("t_i8", F.INT8, [2], [-128, 127]),
    ("t_u8", F.UINT8, [2], [0, 255]),
    ("t_u16", F.UINT16, [2], [65535, 1]),
    ("t_u32", F.UINT32, [2], [4294967295, 0]),
    ("t_u64", F.UINT64, [2], [18446744073709551615, 1]),
    ("t_bool", F.BOOL, [3], [1, 0, 1]),
    ("t_f16", F.FLOAT16, [2], [0x3C00, 0xC000]),      # 1.0, -2.0
    ("t_bf16", F.BFLOAT16, [2], [0x3F80, 0x4040]),    # 1.0, 3.0
]
STRINGS = ["hello", "w\u00f6rld", ""]

PACK = {F.FLOAT: "<f", F.DOUBLE: "<d", F.INT64: "<q", F.INT32: "<i", F.INT16: "<h", F.INT8: "<b",
        F.UINT8: "<B", F.UINT16: "<H", F.UINT32: "<I", F.UINT64: "<Q", F.BOOL: "<B",
        F.FLOAT16: "<H", F.BFLOAT16: "<H"}


def typed_tensor(name, dtype, dims, values):
    """A TensorProto holding `values` in the repeated field ONNX prescribes for `dtype`."""
    t = TensorProto(name=name, data_type=dtype, dims=dims)
    if dtype == F.FLOAT:
        t.float_data.extend(values)
    elif dtype == F.DOUBLE:
        t.double_data.extend(values)
    elif dtype == F.INT64:
        t.int64_data.extend(values)
    elif dtype in (F.UINT32, F.UINT64):
        t.uint64_data.extend(values)
    elif dtype == F.STRING:
        t.string_data.extend(v.encode() for v in values)
    else:  # int32, int16, int8, uint8, uint16, bool, float16, bfloat16
        t.int32_data.extend(values)
    return t


def raw_tensor(name, dtype, dims, values):
    return TensorProto(name=name, data_type=dtype, dims=dims,
                       raw_data=b"".join(struct.pack(PACK[dtype], v) for v in values))


def dtype_model(graph_name, make):
    inits = [make(n, d, dims, v) for n, d, dims, v in DTYPE_VALUES]
    outputs = [vi(n, d, dims) for n, d, dims, _ in DTYPE_VALUES]
    if make is typed_tensor:
        inits.append(typed_tensor("t_string", F.STRING, [3], STRINGS))
        outputs.append(vi("t_string", F.STRING, [3]))
    g = helper.make_graph([], graph_name, [], outputs, initializer=inits)
    return model(g)


# ---------------------------------------------------------------------------
# Good models

def make_good():
    shutil.rmtree(GOOD, ignore_errors=True)

    # Every dtype in its typed field, and every fixed-width dtype as raw_data. Outputs are the
    # initializers themselves, so the graphs have no nodes at all.
    typed = dtype_model("typed_fields", typed_tensor)
    save(typed, GOOD, "typed_fields.onnx")
    raw = dtype_model("raw_data", raw_tensor)
    save(raw, GOOD, "raw_data.onnx")

    # A symbolic input passed straight through, plus a second input bound by name.
    g = helper.make_graph(
        [], "passthrough",
        [vi("x", F.FLOAT, ["batch", 3]), vi("ids", F.INT64, [2])],
        [vi("x", F.FLOAT, ["batch", 3]), vi("ids", F.INT64, [2])])
    save(model(g), GOOD, "passthrough.onnx")

    # One dimension symbolic, one unknown (no value, no param), one known.
    x = vi("x", F.FLOAT, ["batch", None, 4])
    g = helper.make_graph([], "symbolic", [x], [vi("x", F.FLOAT, ["batch", None, 4])])
    save(model(g), GOOD, "symbolic.onnx")

    # A Constant node of each value_* kind; every one is a graph output.
    t = helper.make_tensor("vt", F.INT32, [2, 2], [1, 2, 3, 4])
    nodes = [
        helper.make_node("Constant", [], ["c_tensor"], name="n_tensor", value=t),
        helper.make_node("Constant", [], ["c_float"], name="n_float", value_float=0.25),
        helper.make_node("Constant", [], ["c_floats"], name="n_floats", value_floats=[1.0, -1.5]),
        helper.make_node("Constant", [], ["c_int"], name="n_int", value_int=-7),
        helper.make_node("Constant", [], ["c_ints"], name="n_ints", value_ints=[3, 1 << 33]),
        helper.make_node("Constant", [], ["c_string"], name="n_string", value_string="abc"),
        helper.make_node("Constant", [], ["c_strings"], name="n_strings", value_strings=["x", "yz"]),
    ]
    outputs = [vi("c_tensor", F.INT32, [2, 2]), vi("c_float", F.FLOAT, []), vi("c_floats", F.FLOAT, [2]),
               vi("c_int", F.INT64, []), vi("c_ints", F.INT64, [2]), vi("c_string", F.STRING, []),
               vi("c_strings", F.STRING, [2])]
    save(model(helper.make_graph(nodes, "constants", [], outputs)), GOOD, "constants.onnx")

    # Graph inputs that are also initializers (ONNX IR >= 4: defaults, overridable): they are
    # constants, and only `x` is a runtime input.
    g = helper.make_graph(
        [], "input_initializer",
        [vi("x", F.FLOAT, [2]), vi("w", F.FLOAT, [2]), vi("k", F.INT64, [])],
        [vi("x", F.FLOAT, [2]), vi("w", F.FLOAT, [2]), vi("k", F.INT64, [])],
        initializer=[helper.make_tensor("w", F.FLOAT, [2], [0.5, 4.0]), helper.make_tensor("k", F.INT64, [], [9])])
    save(model(g), GOOD, "input_initializer.onnx")

    # Model-local functions, inlined by the importer. local.AddMul(a, b) = (a + two) * b where
    # `two` is a Constant inside the body; called twice. local.Const42() = Constant 42 (no ops).
    addmul = helper.make_function(
        "local", "AddMul", ["a", "b"], ["out"],
        [helper.make_node("Constant", [], ["two"], value_float=2.0),
         helper.make_node("Add", ["a", "two"], ["t"]),
         helper.make_node("Mul", ["t", "b"], ["out"])],
        opset_imports=[helper.make_opsetid("", OPSET)])
    const42 = helper.make_function(
        "local", "Const42", [], ["k"],
        [helper.make_node("Constant", [], ["k"], value_int=42)],
        opset_imports=[helper.make_opsetid("", OPSET)])
    g = helper.make_graph(
        [helper.make_node("AddMul", ["x", "y"], ["first"], name="call1", domain="local"),
         helper.make_node("AddMul", ["first", "x"], ["second"], name="call2", domain="local"),
         helper.make_node("Const42", [], ["answer"], name="call3", domain="local")],
        "functions",
        [vi("x", F.FLOAT, []), vi("y", F.FLOAT, [])],
        [vi("second", F.FLOAT, []), vi("answer", F.INT64, [])])
    save(model(g, functions=[addmul, const42], extra_opsets=[("local", 1)]), GOOD, "function.onnx")

    # An If whose branches read outer tensors: `then` passes the outer input `x` through an
    # Identity, `else` adds the outer input `x` and the outer Constant `outer_c`.
    then_g = helper.make_graph([helper.make_node("Identity", ["x"], ["then_out"], name="inner_identity")],
                               "then_branch", [], [vi("then_out", F.FLOAT, [2])])
    else_g = helper.make_graph([helper.make_node("Add", ["x", "outer_c"], ["sum"], name="inner_add")],
                               "else_branch", [], [vi("sum", F.FLOAT, [2])])
    g = helper.make_graph(
        [helper.make_node("Constant", [], ["outer_c"], name="outer_const",
                          value=helper.make_tensor("oc", F.FLOAT, [2], [10.0, 20.0])),
         helper.make_node("If", ["cond"], ["y"], name="the_if", then_branch=then_g, else_branch=else_g)],
        "if_capture",
        [vi("cond", F.BOOL, []), vi("x", F.FLOAT, [2])],
        [vi("y", F.FLOAT, [2])])
    save(model(g), GOOD, "if_capture.onnx")

    # An op no build of glmc will support: `glmc check` prints its table row and exits 1.
    g = helper.make_graph(
        [helper.make_node("Frobnicate", ["x"], ["y"], name="frob", domain="com.example")],
        "custom_op", [vi("x", F.FLOAT, [2])], [vi("y", F.FLOAT, [2])])
    save(model(g, extra_opsets=[("com.example", 1)], check=False), GOOD, "custom_op.onnx")

    # External data: two initializers in weights.bin next to the model, the second at offset 64.
    ext_dir = os.path.join(GOOD, "external")
    os.makedirs(ext_dir, exist_ok=True)
    w = np.array([[1, 2, 3], [4, 5, 6]], dtype="<f4").tobytes()
    b = np.array([-1, 1 << 50], dtype="<i8").tobytes()
    blob = w + b"\0" * (64 - len(w)) + b
    write_bytes(blob, ext_dir, "weights.bin")

    def ext(name, dtype, dims, offset, length):
        t = TensorProto(name=name, data_type=dtype, dims=dims, data_location=TensorProto.EXTERNAL)
        for k, v in (("location", "weights.bin"), ("offset", str(offset)), ("length", str(length))):
            e = t.external_data.add()
            e.key, e.value = k, v
        return t

    g = helper.make_graph(
        [], "external", [], [vi("w", F.FLOAT, [2, 3]), vi("b", F.INT64, [2])],
        initializer=[ext("w", F.FLOAT, [2, 3], 0, len(w)), ext("b", F.INT64, [2], 64, len(b))])
    m = model(g, check=False)
    save(m, ext_dir, "model.onnx")
    onnx.checker.check_model(os.path.join(ext_dir, "model.onnx"), full_check=True)

    return {"raw": raw}


# ---------------------------------------------------------------------------
# Bad inputs

def make_bad(good):
    shutil.rmtree(BAD, ignore_errors=True)
    os.makedirs(BAD)

    write_bytes(b"", BAD, "empty.onnx")
    write_bytes(random.Random(1234).randbytes(512), BAD, "random_bytes.onnx")
    raw = good["raw"].SerializeToString(deterministic=True)
    write_bytes(raw[: len(raw) // 2], BAD, "truncated.onnx")

    x = vi("x", F.FLOAT, [2])
    y = vi("y", F.FLOAT, [2])

    g = helper.make_graph([helper.make_node("Neg", ["ghost"], ["y"], name="reader")], "undefined", [x], [y])
    save(model(g, check=False), BAD, "undefined_tensor.onnx")

    g = helper.make_graph(
        [helper.make_node("Add", ["x", "b"], ["a"], name="node_a"),
         helper.make_node("Neg", ["a"], ["b"], name="node_b"),
         helper.make_node("Identity", ["a"], ["y"], name="out")],
        "cycle", [x], [y])
    save(model(g, check=False), BAD, "cycle.onnx")

    g = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["y"], name="first_def"),
         helper.make_node("Abs", ["x"], ["y"], name="second_def")],
        "twice", [x], [y])
    save(model(g, check=False), BAD, "defined_twice.onnx")

    short = TensorProto(name="short_w", data_type=F.FLOAT, dims=[2, 3], raw_data=b"\0" * 8)
    g = helper.make_graph([], "short", [], [vi("short_w", F.FLOAT, [2, 3])], initializer=[short])
    save(model(g, check=False), BAD, "short_raw_data.onnx")

    huge = TensorProto(name="huge_w", data_type=F.FLOAT, dims=[1 << 40, 1 << 40], raw_data=b"\0" * 4)
    g = helper.make_graph([], "absurd", [], [vi("huge_w", F.FLOAT, [1 << 40, 1 << 40])], initializer=[huge])
    save(model(g, check=False), BAD, "absurd_dims.onnx")

    def external_model(location, offset=None, length=None, dims=(2,), name="ext_w"):
        t = TensorProto(name=name, data_type=F.FLOAT, dims=list(dims), data_location=TensorProto.EXTERNAL)
        for k, v in (("location", location), ("offset", offset), ("length", length)):
            if v is not None:
                e = t.external_data.add()
                e.key, e.value = k, str(v)
        g = helper.make_graph([], "external", [], [vi(name, F.FLOAT, list(dims))], initializer=[t])
        return model(g, check=False)

    save(external_model("../escape.bin"), BAD, "external_escape.onnx")
    save(external_model("/etc/passwd"), BAD, "external_absolute.onnx")
    # The test copies this model into a temp folder and makes link.bin a symlink out of it.
    save(external_model("link.bin"), BAD, "external_symlink", "model.onnx")
    # range.bin holds 16 bytes; the tensor wants 8 bytes at offset 12.
    write_bytes(bytes(range(16)), BAD, "external_range", "range.bin")
    save(external_model("range.bin", offset=12, length=8), BAD, "external_range", "model.onnx")

    g = helper.make_graph([], "opset999", [x], [x])
    save(model(g, opset=999, check=False), BAD, "opset999.onnx")

    # Constant whose value_float is given as INTS.
    g = helper.make_graph([helper.make_node("Constant", [], ["y"], name="bad_const", value_float=[1, 2])],
                          "wrong_attr", [], [y])
    save(model(g, check=False), BAD, "wrong_attr_constant.onnx")

    # Cast whose `to` is a STRING (reported by the Cast op's own checks, when glmc has Cast).
    g = helper.make_graph([helper.make_node("Cast", ["x"], ["y"], name="bad_cast", to="FLOAT16")],
                          "wrong_attr_cast", [x], [y])
    save(model(g, check=False), BAD, "wrong_attr_cast.onnx")

    m = onnx.ModelProto(ir_version=IR_VERSION, producer_name="glmc-make_bad_inputs")
    m.opset_import.add(domain="", version=OPSET)
    save(m, BAD, "no_graph.onnx")

    # A function that calls itself (ONNX forbids recursion; inlining it would never end).
    rec = helper.make_function(
        "local", "Recurse", ["a"], ["out"],
        [helper.make_node("Recurse", ["a"], ["out"], domain="local")],
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("local", 1)])
    g = helper.make_graph([helper.make_node("Recurse", ["x"], ["y"], name="rec_call", domain="local")],
                          "recursive", [x], [y])
    save(model(g, functions=[rec], extra_opsets=[("local", 1)], check=False), BAD, "recursive_function.onnx")

    # If nodes nested 60 deep (180 message levels): protobuf-c's unpacker recurses without limit,
    # so deeper files would overflow its stack. Written as raw wire format, since the Python
    # protobuf runtime itself refuses messages nested beyond 100 levels.
    write_bytes(deep_if_model(60), BAD, "deep_nesting.onnx")


def deep_if_model(depth):
    def varint(n):
        out = bytearray()
        while True:
            b, n = n & 0x7F, n >> 7
            out.append(b | (0x80 if n else 0))
            if not n:
                return bytes(out)

    def field(number, payload):  # length-delimited field
        return varint(number << 3 | 2) + varint(len(payload)) + payload

    def text(number, s):
        return field(number, s.encode())

    graph = text(2, "g")
    for d in range(depth):
        # AttributeProto{name=1, g=6, type=20 (GRAPH=5)} inside NodeProto{input=1, output=2, op_type=4, attribute=5}
        attr = text(1, "then_branch") + varint(20 << 3) + varint(5) + field(6, graph)
        node = text(1, "c") + text(2, f"o{d}") + text(4, "If") + field(5, attr)
        graph = field(1, node) + text(2, "g")
    opset = text(1, "") + varint(2 << 3) + varint(OPSET)
    return varint(1 << 3) + varint(IR_VERSION) + field(8, opset) + field(7, graph)


# ---------------------------------------------------------------------------
# .npy references

def make_npy():
    shutil.rmtree(NPY, ignore_errors=True)
    os.makedirs(NPY)

    def put(name, a, version=None):
        path = os.path.join(NPY, name + ".npy")
        if version is None:
            np.save(path, a, allow_pickle=False)
        else:
            with open(path, "wb") as f:
                np.lib.format.write_array(f, a, version=version, allow_pickle=False)

    # One file per dtype: values 0..5 offset so negatives appear for signed types, shape (2, 3).
    for code in ["f8", "f4", "f2", "i8", "i4", "i2", "i1", "u8", "u4", "u2", "u1"]:
        base = np.arange(6).reshape(2, 3)
        if code[0] in "if":
            base = base - 2
        a = base.astype("<" + code) if code[1] != "1" else base.astype("|" + code)
        if code[0] == "f":
            a = a / np.array(2, dtype=a.dtype)  # halves: exact in every float width
        put("dtype_" + code, a)
    put("dtype_b1", np.array([True, False, True]))
    put("strings", np.array(["a", "h\u00e9llo", ""]))           # <U5
    put("scalar", np.array(3.5, dtype="<f4"))                    # shape ()
    put("empty", np.zeros((0, 3), dtype="<f4"))                  # no elements
    put("fortran", np.asfortranarray(np.arange(6, dtype="<i4").reshape(2, 3)))
    put("big_endian", np.array([1.0, -2.5, 1e30], dtype=">f8"))
    put("big_endian_i4", np.array([[1, -2], [65536, 7]], dtype=">i4"))
    put("v2_header", np.arange(4, dtype="<i2"), version=(2, 0))
    # Object arrays need pickles: write one with pickling allowed, glmc must refuse it.
    np.save(os.path.join(NPY, "object.npy"), np.array([1, "a"], dtype=object), allow_pickle=True)
    write_bytes(b"not an npy file at all\n", NPY, "not_npy.npy")
    # Valid header, body cut short.
    full = open(os.path.join(NPY, "dtype_f4.npy"), "rb").read()
    write_bytes(full[:-5], NPY, "truncated_body.npy")
    # Inputs for `glmc run` of good/passthrough.onnx and its misuse.
    put("x_f32_2x3", (np.arange(6, dtype="<f4").reshape(2, 3) - 1.5))
    put("x_f64_2x3", np.arange(6, dtype="<f8").reshape(2, 3))
    put("x_f32_2x4", np.zeros((2, 4), dtype="<f4"))
    put("ids_i64_2", np.array([5, -6], dtype="<i8"))


def main():
    good = make_good()
    make_bad(good)
    make_npy()
    for folder in (GOOD, BAD, NPY):
        for dirpath, _, files in sorted(os.walk(folder)):
            for f in sorted(files):
                p = os.path.join(dirpath, f)
                print(f"{os.path.relpath(p, ROOT)}\t{os.path.getsize(p)} bytes")


if __name__ == "__main__":
    sys.exit(main())
