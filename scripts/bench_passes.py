#!/usr/bin/env python3
"""What glmc's optimization pipeline does to real models, next to onnx-simplifier and ONNX Runtime.

For Models/*.onnx and the nine light model-zoo models shipped inside the onnx package, prints one
row per model:

  orig       nodes in the original ONNX graph
  glmc -O3   nodes of `glmc convert --target onnx -O3` (the main graph: a call of a model-local
             function, which glmc makes of repeated fusion groups, counts as one node)
  inlined    the same with every function call replaced by the function's nodes
  fn         how many model-local functions glmc wrote
  onnxsim    nodes after onnxsim.simplify
  ort-all    nodes of the model ONNX Runtime saves after ORT_ENABLE_ALL (may hold com.microsoft
             fused ops such as FusedConv, and layout-specific ones)
  glmc ms    glmc's optimization time: median over 5 runs of the `--time-passes` total
  sim ms     onnxsim.simplify wall time, median of 5
  check      the glmc -O3 ONNX, run in ONNX Runtime with graph optimizations DISABLED, and the
             interpreter at -O3 (`glmc run -O3`), both against ONNX Runtime on the original model
             (rtol 1e-4, atol 1e-5) on a seeded input: ok or MISMATCH

Exits 1 when any model mismatches or fails to convert.

  .venv/bin/python scripts/bench_passes.py --glmc .build/release/glmc [--runs 5] [--keep DIR]
"""
import argparse
import glob
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RTOL, ATOL = 1e-4, 1e-5


def models():
    light = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
    return sorted(glob.glob(os.path.join(ROOT, "Models", "*.onnx"))) + sorted(glob.glob(os.path.join(light, "*.onnx")))


def node_count(model):
    return len(model.graph.node)


def inlined_node_count(model):
    functions = {(f.domain, f.name): f for f in model.functions}

    def count(nodes):
        return sum(count(functions[(n.domain, n.op_type)].node) if (n.domain, n.op_type) in functions else 1
                   for n in nodes)
    return count(model.graph.node)


def seeded_inputs(path, session):
    """Models/<name>.input_0.npy when present (token ids need their vocabulary), else seeded random data."""
    npy = path[: -len(".onnx")] + ".input_0.npy"
    inputs = session.get_inputs()
    if len(inputs) == 1 and os.path.exists(npy):
        return {inputs[0].name: np.load(npy)}
    rng = np.random.default_rng(0)
    feeds = {}
    for i in inputs:
        shape = [d if isinstance(d, int) else 1 for d in i.shape]
        if i.type == "tensor(float)":
            feeds[i.name] = rng.standard_normal(shape).astype(np.float32)
        elif i.type in ("tensor(int64)", "tensor(int32)"):
            feeds[i.name] = rng.integers(0, 10, shape).astype(np.int64 if "64" in i.type else np.int32)
        elif i.type == "tensor(bool)":
            feeds[i.name] = rng.integers(0, 2, shape).astype(np.bool_)
        else:
            raise SystemExit(f"{path}: no seeded input for {i.name} of type {i.type}")
    return feeds


def session(path, level):
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    options.log_severity_level = 3
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def ort_optimized_nodes(path, tmp):
    out = os.path.join(tmp, "ort_optimized.onnx")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = out
    options.log_severity_level = 3
    ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return node_count(onnx.load(out))


def simplify(path, runs):
    try:
        import onnxsim
    except ImportError:
        return None, None, "onnxsim missing"
    times, nodes = [], None
    for _ in range(runs):
        model = onnx.load(path)
        start = time.perf_counter()
        try:
            simplified, ok = onnxsim.simplify(model)
        except Exception as e:  # onnxsim refuses some models; report it, keep benchmarking
            return None, None, f"onnxsim: {str(e).splitlines()[0][:60]}"
        times.append((time.perf_counter() - start) * 1e3)
        nodes = node_count(simplified) if ok else None
    return nodes, statistics.median(times), None


def glmc_convert(glmc, path, out, runs):
    """Converts at -O3; returns the median --time-passes total in ms."""
    totals = []
    for _ in range(runs):
        proc = subprocess.run([glmc, "convert", path, "--target", "onnx", "-O3", "--time-passes", "-o", out],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.strip() or f"glmc exited with {proc.returncode}")
        match = re.search(r"^total\s+([0-9.]+)", proc.stderr, re.MULTILINE)
        totals.append(float(match.group(1)) if match else float("nan"))
    return statistics.median(totals)


def close(actual, expected):
    return len(actual) == len(expected) and all(
        a.shape == e.shape and np.allclose(a, e, rtol=RTOL, atol=ATOL, equal_nan=True) for a, e in zip(actual, expected))


def glmc_run(glmc, path, feeds, names, tmp):
    """The interpreter at -O3 on the same inputs."""
    args = [glmc, "run", path, "-O3", "--output-dir", tmp]
    for k, (name, value) in enumerate(feeds.items()):
        f = os.path.join(tmp, f"input_{k}.npy")
        np.save(f, value)
        args += ["--input", f"{name}={f}"]
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip())
    return [np.load(os.path.join(tmp, f"output_{i}.npy")) for i in range(len(names))]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--glmc", required=True, help="the glmc executable (a release build)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per tool (median)")
    parser.add_argument("--keep", help="folder to keep the glmc -O3 models in")
    args = parser.parse_args()
    glmc = os.path.abspath(args.glmc)

    header = (f"{'model':<22} {'orig':>6} {'glmc -O3':>9} {'inlined':>8} {'fn':>3} {'onnxsim':>8} {'ort-all':>8}"
              f" {'glmc ms':>9} {'sim ms':>9}  check")
    print(header)
    print("-" * len(header))
    failures, notes = 0, []
    for path in models():
        name = os.path.basename(path)[: -len(".onnx")]
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(args.keep or tmp, f"{name}.O3.onnx")
            if args.keep:
                os.makedirs(args.keep, exist_ok=True)
            original = onnx.load(path)
            try:
                glmc_ms = glmc_convert(glmc, path, out, args.runs)
                converted = onnx.load(out)
                glmc_nodes = f"{node_count(converted):>9} {inlined_node_count(converted):>8} {len(converted.functions):>3}"
            except RuntimeError as e:
                failures += 1
                print(f"{name:<22} {node_count(original):>6} {'error':>9}   {e}")
                continue
            sim_nodes, sim_ms, sim_note = simplify(path, args.runs)
            if sim_note:
                notes.append(f"{name}: {sim_note}")
            ort_nodes = ort_optimized_nodes(path, tmp)

            reference = session(path, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
            feeds = seeded_inputs(path, reference)
            output_names = [o.name for o in reference.get_outputs()]
            expected = reference.run(None, feeds)
            status = []
            try:
                ours = session(out, ort.GraphOptimizationLevel.ORT_DISABLE_ALL).run(output_names, feeds)
                status.append("ok" if close(ours, expected) else "MISMATCH(onnx)")
            except Exception as e:
                status.append(f"MISMATCH(onnx: {str(e).splitlines()[0][:80]})")
            try:
                interpreted = glmc_run(glmc, path, feeds, output_names, tmp)
                status.append("ok" if close(interpreted, expected) else "MISMATCH(interpreter)")
            except RuntimeError as e:
                status.append(f"MISMATCH(interpreter: {str(e).splitlines()[0][:80]})")
            bad = [s for s in status if s != "ok"]
            failures += bool(bad)
            check = "ok" if not bad else " ".join(bad)
            sim_text = str(sim_nodes) if sim_nodes is not None else "-"
            sim_time = f"{sim_ms:.1f}" if sim_ms is not None else "-"
            print(f"{name:<22} {node_count(original):>6} {glmc_nodes} {sim_text:>8} {ort_nodes:>8} "
                  f"{glmc_ms:>9.1f} {sim_time:>9}  {check}", flush=True)
    for n in notes:
        print("note:", n)
    if failures:
        print(f"bench-passes: {failures} model(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
