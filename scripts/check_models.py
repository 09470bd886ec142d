#!/usr/bin/env python3
"""Converts every model in Models/ and the onnx package's nine light model-zoo models (their constant
weights replaced by seeded random ones) to a plan for one target, runs the plan on a seeded input
and compares it with ONNX Runtime on the same model and input (|glmc - ort| <= 1e-3 |ort| +
1e-4 max |ort|, the issue's tolerance).

    check_models.py --glmc .build/release/glmc --target cpu|opencl|cuda [--filter REGEX]

For --target cuda the plan is not run (no GPU here): its PTX must be present and `ptxas -arch=<arch>`
must assemble it (ptxas from the nvidia-cuda-nvcc-cu12 wheel in the venv).
Exit status 1 if any model fails. Prints one line per model and a summary table.
"""
import argparse
import glob
import os
import re
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def plan_sections(path):
    """name -> bytes of a glmc plan file (Docs/PlanFormat.md)."""
    data = open(path, "rb").read()
    count = struct.unpack_from("<I", data, 20)[0]
    table = struct.unpack_from("<Q", data, 24)[0]
    sections = {}
    for i in range(count):
        entry = table + 128 * i
        name = data[entry:entry + 112].rstrip(b"\0").decode()
        offset, length = struct.unpack_from("<QQ", data, entry + 112)
        sections[name] = data[offset:offset + length]
    return sections


def models(pattern):
    found = sorted(glob.glob(os.path.join(ROOT, "Models", "*.onnx")))
    light = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
    found += sorted(glob.glob(os.path.join(light, "*.onnx")))
    return [m for m in found if re.search(pattern, os.path.basename(m))]


def seeded_inputs(model_path, seed=2024):
    model = onnx.load(model_path, load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}
    rng = np.random.default_rng(seed)
    inputs = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        t = value.type.tensor_type
        shape = [d.dim_value if d.dim_value > 0 else 1 for d in t.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)
        if np.issubdtype(dtype, np.floating):
            inputs[value.name] = rng.uniform(-1, 1, shape).astype(dtype)
        else:
            inputs[value.name] = rng.integers(0, 2, shape).astype(dtype)
    return inputs


def with_random_weights(model_path, out_path, seed=7):
    """The model with every float initializer replaced by seeded random values (fan-in scaled for
    weights, in [0.5, 1.5] for 1-D parameters such as batch-norm variances): the light model-zoo
    models ship constant weights (all 0.02), whose outputs do not tell classes apart. A final Softmax is
    dropped, so the logits are compared."""
    model = onnx.load(model_path)
    rng = np.random.default_rng(seed)

    def random_like(shape, dtype):
        if len(shape) >= 2:
            return rng.normal(0, 1 / np.sqrt(max(int(np.prod(shape[1:])), 1)), shape).astype(dtype)
        return rng.uniform(0.5, 1.5, shape).astype(dtype)

    initializers = {i.name: i for i in model.graph.initializer}
    shapes = set()
    for init in model.graph.initializer:
        a = onnx.numpy_helper.to_array(init)
        if np.issubdtype(a.dtype, np.floating) and a.size > 1:
            init.CopyFrom(onnx.numpy_helper.from_array(random_like(a.shape, a.dtype), init.name))
    # The light models make their weights with ConstantOfShape over a stored shape: store random
    # weights of that shape instead.
    for node in list(model.graph.node):
        if node.op_type == "ConstantOfShape" and node.input and node.input[0] in initializers:
            shape = [int(d) for d in onnx.numpy_helper.to_array(initializers[node.input[0]])]
            model.graph.node.remove(node)
            shapes.add(node.input[0])
            model.graph.initializer.append(onnx.numpy_helper.from_array(random_like(shape, np.float32), node.output[0]))
    # Shapes no node reads any more go (initializers and their graph-input entries).
    read = {name for n in model.graph.node for name in n.input}
    for name in shapes - read:
        model.graph.initializer.remove(initializers[name])
        for value in [v for v in model.graph.input if v.name == name]:
            model.graph.input.remove(value)
    # Compare logits: a final Softmax of large random logits rounds to exact 0s and 1s.
    for output in model.graph.output:
        producers = [n for n in model.graph.node if output.name in n.output]
        if producers and producers[0].op_type == "Softmax":
            output.name = producers[0].input[0]
            model.graph.node.remove(producers[0])
    onnx.save(model, out_path)
    return out_path


def ptxas_path():
    hits = glob.glob(os.path.join(ROOT, ".venv", "lib", "python3*", "site-packages", "nvidia", "cuda_nvcc", "bin", "ptxas"))
    return hits[0] if hits else None


def check(glmc, target, arch, model_path, work):
    name = os.path.splitext(os.path.basename(model_path))[0]
    if name.startswith("light_"):
        model_path = with_random_weights(model_path, os.path.join(work, name + ".onnx"))
    plan = os.path.join(work, name + ".plan")
    inputs = seeded_inputs(model_path)
    start = time.time()
    cmd = [glmc, "convert", model_path, "--target", target, "-o", plan]
    cmd += [f"--input-shape={k}={'x'.join(map(str, v.shape))}" for k, v in inputs.items()]
    if target == "cuda":
        cmd += ["--gpu-arch", arch]
    r = subprocess.run(cmd, capture_output=True, text=True)
    convert_s = time.time() - start
    if r.returncode != 0:
        return name, "FAIL", f"convert: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}", convert_s
    if target == "cuda":
        ptx = plan_sections(plan).get("code/kernels.ptx")
        if not ptx:
            return name, "FAIL", "the plan carries no PTX (NVRTC not found? set GLMC_NVRTC)", convert_s
        ptxas = ptxas_path()
        if ptxas is None:
            return name, "FAIL", "no ptxas in the venv (make setup)", convert_s
        path = os.path.join(work, name + ".ptx")
        open(path, "wb").write(ptx)
        a = subprocess.run([ptxas, f"-arch={arch}", "-o", os.devnull, path], capture_output=True, text=True)
        if a.returncode != 0:
            return name, "FAIL", "ptxas: " + a.stderr.strip()[:300], convert_s
        return name, "ok", f"PTX {len(ptx)} bytes, ptxas -arch={arch} ok", convert_s
    args = [glmc, "run", plan, "--output-dir", os.path.join(work, name)]
    for k, v in inputs.items():
        f = os.path.join(work, f"{name}.{len(args)}.npy")
        np.save(f, v)
        args += ["--input", f"{k}={f}"]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        return name, "FAIL", f"run: {r.stderr.strip()[:300]}", convert_s
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    expected = session.run(None, inputs)
    worst = 0.0
    for i, want in enumerate(expected):
        got = np.load(os.path.join(work, name, f"output_{i}.npy"))
        if got.shape != want.shape:
            return name, "FAIL", f"output {i}: shape {got.shape}, ONNX Runtime {want.shape}", convert_s
        scale = float(np.abs(want).max()) if want.size else 0.0
        err = np.abs(got.astype(np.float64) - want) / (1e-3 * np.abs(want) + 1e-4 * scale + 1e-30)
        worst = max(worst, float(err.max()) if err.size else 0.0)
    status = "ok" if worst <= 1 else "FAIL"
    return name, status, f"worst error {worst:.3g} of the tolerance", convert_s


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--glmc", default=os.path.join(ROOT, ".build", "release", "glmc"))
    p.add_argument("--target", choices=["cpu", "opencl", "cuda"], required=True)
    p.add_argument("--gpu-arch", default="sm_90")
    p.add_argument("--filter", default=".")
    args = p.parse_args()
    failed = 0
    with tempfile.TemporaryDirectory() as work:
        print(f"| model | {args.target} | detail | convert s |\n|---|---|---|---|")
        for m in models(args.filter):
            name, status, detail, seconds = check(args.glmc, args.target, args.gpu_arch, m, work)
            failed += status != "ok"
            print(f"| {name} | {status} | {detail} | {seconds:.1f} |", flush=True)
            for f in glob.glob(os.path.join(work, name + "*")):  # plans and models are large
                if os.path.isfile(f):
                    os.unlink(f)
    print(f"check_models ({args.target}): {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
