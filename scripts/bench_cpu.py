#!/usr/bin/env python3
"""CPU benchmark for glmc plans (`make bench`): glmc against ONNX Runtime and NumPy/OpenBLAS.

Per model, on the same random inputs and in one run: `glmc convert --target cpu` time, the plan's
arena bytes (`glmc inspect --json`), the median latency of `glmc run PLAN --repeat N --warmup W
--json --threads T`, and ONNX Runtime's median latency (T intra-op threads, ORT_ENABLE_ALL, W
warm-up runs then N timed runs), alternating in `--rounds` rounds (the median of the round medians);
their ratio (glmc / ORT: below 1 is faster). Geometric
means of the ratio over the CNN set (SqueezeNet from onnx's light model zoo, a MobileNet-like and
a ResNet-like model) and the transformer set (Models/transformer.onnx and a BERT-like encoder);
the generated models come from scripts/make_bench_models.py into bench-data/.

Then a GEMM line per size: a plan of one MatMul of two N x N inputs, run with T threads, against
NumPy's matmul with OPENBLAS_NUM_THREADS=T (measured in a child process so the variable takes
effect), in GFLOP/s and glmc's percentage of OpenBLAS.

These machines are shared and noisy: read the ratios, not the absolute times. Nothing here is a
pass/fail check.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_bench_models  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NUMPY_GEMM = r"""
import sys, time, statistics
import numpy as np
n, repeat, warmup = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
a = np.load(sys.argv[4]); b = np.load(sys.argv[5])
for _ in range(warmup): a @ b
times = []
for _ in range(repeat):
    t = time.perf_counter(); a @ b; times.append(time.perf_counter() - t)
print(statistics.median(times) * 1000)
"""


def light_model(name: str) -> str | None:
    path = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light", name)
    return path if os.path.exists(path) else None


def random_inputs(model_path: str, folder: str, seed: int) -> tuple[list[str], dict[str, np.ndarray], list[str]]:
    """One .npy per graph input (symbolic dims become 1), the same arrays by name, and the
    `--input-shape` options that bind the symbolic ones."""
    model = onnx.load(model_path, load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}
    rng = np.random.default_rng(seed)
    files, feeds, shapes = [], {}, []
    for i, value in enumerate(v for v in model.graph.input if v.name not in initializers):
        t = value.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else 1 for d in t.shape.dim]
        if any(not d.HasField("dim_value") for d in t.shape.dim):
            shapes.append(f"{value.name}={'x'.join(map(str, shape))}")
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)
        if np.issubdtype(dtype, np.integer):
            a = rng.integers(0, 64, size=shape).astype(dtype)
        else:
            a = rng.standard_normal(shape).astype(dtype)
        path = os.path.join(folder, f"input_{i}.npy")
        np.save(path, a)
        files.append(f"{value.name}={path}")
        feeds[value.name] = a
    return files, feeds, shapes


def glmc_convert(glmc: str, model: str, plan: str, shapes: list[str]) -> float:
    start = time.perf_counter()
    args = [glmc, "convert", model, "--target", "cpu", "-o", plan]
    for spec in shapes:
        args += ["--input-shape", spec]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"glmc convert {model}: {r.stderr.strip()}")
    return (time.perf_counter() - start) * 1000


def glmc_run(glmc: str, plan: str, inputs: list[str], threads: int, repeat: int, warmup: int, out: str) -> float:
    args = [glmc, "run", plan, "--repeat", str(repeat), "--warmup", str(warmup), "--json", "--threads", str(threads),
            "--output-dir", out]
    for spec in inputs:
        args += ["--input", spec]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"glmc run {plan}: {r.stderr.strip()}")
    return json.loads(r.stdout.strip().splitlines()[-1])["median_ms"]


def arena_bytes(glmc: str, plan: str) -> int:
    r = subprocess.run([glmc, "inspect", plan, "--json"], capture_output=True, text=True, check=True)
    return json.loads(r.stdout)["arena_bytes"]


def ort_median(model: str, feeds: dict, threads: int, repeat: int, warmup: int) -> float:
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    for _ in range(warmup):
        session.run(None, feeds)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def geomean(xs):
    xs = [x for x in xs if x > 0]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else float("nan")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--glmc", default=os.path.join(ROOT, ".build", "release", "glmc"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=60)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=5, help="alternating glmc/ORT rounds per model (median of the round medians)")
    p.add_argument("--gemm-sizes", default="512,1024,2048")
    p.add_argument("--json", help="also write the raw numbers here")
    args = p.parse_args(argv)

    generated = make_bench_models.ensure()
    sets = {
        "cnn": [("squeezenet", light_model("light_squeezenet.onnx")), ("mobilenet-like", generated["bench_mobilenet"]),
                ("resnet-like", generated["bench_resnet"])],
        "transformer": [("transformer", os.path.join(ROOT, "Models", "transformer.onnx")), ("bert-like", generated["bench_bert"])],
    }
    rows, results = [], {"models": [], "gemm": []}
    print(f"glmc CPU benchmark: {args.threads} threads, {args.rounds} alternating rounds of {max(1, args.repeat // args.rounds)} runs after {args.warmup} warm-up runs, median of the round medians\n")
    header = f"{'set':<12} {'model':<16} {'glmc ms':>9} {'ORT ms':>9} {'ratio':>7} {'convert ms':>11} {'arena bytes':>12}"
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory(prefix="glmc-bench-") as tmp:
        ratios: dict[str, list[float]] = {}
        for set_name, models in sets.items():
            for seed, (name, path) in enumerate(models):
                if path is None or not os.path.exists(path):
                    print(f"{set_name:<12} {name:<16} (model not found; skipped)")
                    continue
                folder = os.path.join(tmp, name)
                os.makedirs(folder)
                plan = os.path.join(folder, "model.plan")
                inputs, feeds, shapes = random_inputs(path, folder, seed)
                convert_ms = glmc_convert(args.glmc, path, plan, shapes)
                # Alternating rounds, so a burst of load from elsewhere hits both sides alike.
                gs, os_ = [], []
                per_round = max(1, args.repeat // args.rounds)
                for _ in range(args.rounds):
                    gs.append(glmc_run(args.glmc, plan, inputs, args.threads, per_round, args.warmup, os.path.join(folder, "out")))
                    os_.append(ort_median(path, feeds, args.threads, per_round, args.warmup))
                g, o = statistics.median(gs), statistics.median(os_)
                ratio = g / o
                ratios.setdefault(set_name, []).append(ratio)
                arena = arena_bytes(args.glmc, plan)
                print(f"{set_name:<12} {name:<16} {g:9.2f} {o:9.2f} {ratio:7.2f} {convert_ms:11.0f} {arena:12d}", flush=True)
                results["models"].append({"set": set_name, "model": name, "glmc_ms": g, "ort_ms": o, "ratio": ratio,
                                          "convert_ms": convert_ms, "arena_bytes": arena})
        print()
        for set_name, rs in ratios.items():
            print(f"geometric mean ratio (glmc / ORT), {set_name} set: {geomean(rs):.2f} over {len(rs)} models")
            results[f"geomean_{set_name}"] = geomean(rs)

        print(f"\n{'GEMM':<10} {'glmc GFLOP/s':>13} {'OpenBLAS GFLOP/s':>17} {'glmc % of OpenBLAS':>19}")
        for n in [int(s) for s in args.gemm_sizes.split(",") if s]:
            folder = os.path.join(tmp, f"gemm{n}")
            os.makedirs(folder)
            model = os.path.join(folder, "matmul.onnx")
            graph = onnx.helper.make_graph(
                [onnx.helper.make_node("MatMul", ["a", "b"], ["y"])], f"matmul{n}",
                [onnx.helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, [n, n]) for x in "ab"],
                [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [n, n])])
            onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=8), model)
            inputs, _, _ = random_inputs(model, folder, n)
            plan = os.path.join(folder, "matmul.plan")
            glmc_convert(args.glmc, model, plan, [])
            repeat = max(3, args.repeat // (4 if n >= 2048 else 1))
            g = glmc_run(args.glmc, plan, inputs, args.threads, repeat, 2, os.path.join(folder, "out"))
            env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
            r = subprocess.run([sys.executable, "-c", NUMPY_GEMM, str(n), str(repeat), "2"] + [s.split("=", 1)[1] for s in inputs],
                               capture_output=True, text=True, env=env, check=True)
            b = float(r.stdout.strip())
            flops = 2.0 * n ** 3
            gg, bb = flops / g / 1e6, flops / b / 1e6
            print(f"{f'{n}x{n}':<10} {gg:13.1f} {bb:17.1f} {100 * gg / bb:18.0f}%", flush=True)
            results["gemm"].append({"n": n, "glmc_ms": g, "openblas_ms": b, "glmc_gflops": gg, "openblas_gflops": bb})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
