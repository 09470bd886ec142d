#!/usr/bin/env python3
"""INT8 calibration: glmc next to ONNX Runtime's calibrators, on the same samples.

For Models/*.onnx and the nine light model-zoo models shipped inside the onnx package, writes
--samples seeded samples per model (standard normal for float inputs, small integers for integer
ones; symbolic dimensions 1) as .npy / .npz files, then:

  glmc      `glmc calibrate MODEL --data DIR --method M --json FILE` for minmax, entropy and
            percentile:99.99 (wall time of the command, which includes building the tapped plan,
            and the samples/s glmc reports for running the samples)
  ORT       onnxruntime.quantization.calibrate's MinMaxCalibrater, EntropyCalibrater(num_bins=2048) and
            PercentileCalibrater(percentile=99.99) on the same samples (the entropy calibrator only on
            models with at most --ort-entropy-max-tensors tensors: its search takes seconds per tensor) (wall time of augment +
            session + collect + compute, samples/s over collect_data)

MinMax check, per model: every tensor ORT reports must be in glmc's table unless it is computed
from weights alone (a constant, not an activation: glmc leaves those out by design; they are
counted in the `weights` column), and amax = max(|min|, |max|) must agree within a relative
error of 1e-5 (|glmc - ort| <= 1e-5 * |ort|, exact when ORT says 0).

Prints one summary row per model, then per tensor the entropy and percentile amax of both tools
(--details: every model; default: Models/ only). Exits 1 when a MinMax check fails.

  .venv/bin/python scripts/bench_calibrate.py --glmc .build/release/glmc [--samples 4] [--only REGEX] [--details]
"""
import argparse
import contextlib
import io
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
from onnxruntime.quantization.calibrate import (CalibrationDataReader, EntropyCalibrater, MinMaxCalibrater,
                                                PercentileCalibrater)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL_TOL = 1e-5
PERCENTILE = 99.99


def models():
    light = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
    return sorted(glob.glob(os.path.join(ROOT, "Models", "*.onnx"))) + sorted(glob.glob(os.path.join(light, "*.onnx")))


def runtime_inputs(model):
    inits = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def make_samples(model, count, folder):
    """Seeded samples in `folder`: .npy for one input, .npz keyed by name for several."""
    rng = np.random.default_rng(20261121)
    inputs = runtime_inputs(model)
    samples = []
    for s in range(count):
        feed = {}
        for i in inputs:
            t = i.type.tensor_type
            shape = [d.dim_value if d.HasField("dim_value") else 1 for d in t.shape.dim]
            dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)
            if np.issubdtype(dtype, np.floating):
                feed[i.name] = rng.standard_normal(shape).astype(dtype)
            else:
                feed[i.name] = rng.integers(0, 10, size=shape).astype(dtype)
        if len(inputs) == 1:
            np.save(os.path.join(folder, f"s{s:04d}.npy"), next(iter(feed.values())))
        else:
            np.savez(os.path.join(folder, f"s{s:04d}.npz"), **feed)
        samples.append(feed)
    return samples


def weight_only_tensors(model):
    """Node outputs computable from initializers alone (no runtime input reaches them)."""
    known = {i.name for i in model.graph.initializer}
    for node in model.graph.node:
        if all(n == "" or n in known for n in node.input) and node.op_type not in ("RandomNormal", "RandomUniform"):
            known.update(node.output)
    return known - {i.name for i in model.graph.initializer}


class Reader(CalibrationDataReader):
    def __init__(self, samples):
        self.samples = samples
        self.it = iter(samples)

    def get_next(self):
        return next(self.it, None)

    def rewind(self):
        self.it = iter(self.samples)


def ort_calibrate(kind, path, samples, workdir):
    """(amax by tensor, seconds, samples/s over data collection)."""
    aug = os.path.join(workdir, f"aug_{kind}.onnx")
    start = time.perf_counter()
    if kind == "minmax":
        c = MinMaxCalibrater(path, augmented_model_path=aug)
    elif kind == "entropy":
        # 2048 bins like TensorRT: with ORT's default of 128 bins (= its 128 quantized bins) the
        # threshold search has one candidate, the full range.
        c = EntropyCalibrater(path, augmented_model_path=aug, num_bins=2048)
    else:
        c = PercentileCalibrater(path, augmented_model_path=aug, percentile=PERCENTILE)
    with contextlib.redirect_stdout(io.StringIO()):  # ORT's histogram calibrators print progress
        c.augment_graph()
        c.create_inference_session()
        collect = time.perf_counter()
        c.collect_data(Reader(samples))
        collected = time.perf_counter()
        data = c.compute_data()
    seconds = time.perf_counter() - start
    amax = {}
    for name, t in data.data.items():
        lo, hi = (float(np.asarray(v).reshape(-1)[0]) for v in t.range_value)
        amax[name] = max(abs(lo), abs(hi))
    return amax, seconds, len(samples) / max(collected - collect, 1e-9)


def glmc_calibrate(glmc, path, method, data, workdir):
    """(table entries by name, seconds, samples/s reported by glmc)."""
    out = os.path.join(workdir, f"{method.replace(':', '_')}.cache")
    js = out + ".json"
    start = time.perf_counter()
    r = subprocess.run([glmc, "calibrate", path, "--data", data, "--method", method, "-o", out, "--json", js],
                       capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - start
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}")
    m = re.search(r"([0-9.]+) samples/s", r.stdout)
    with open(js) as f:
        table = {t["name"]: t for t in json.load(f)["tensors"]}
    return table, seconds, float(m.group(1)) if m else float("nan")


def fmt_rate(x):
    return f"{x:8.1f}" if x == x else "       -"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--glmc", default=os.path.join(ROOT, ".build", "release", "glmc"))
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--only", default="", help="regex over model file names")
    ap.add_argument("--details", action="store_true", help="per-tensor entropy/percentile rows for every model")
    ap.add_argument("--ort-entropy-max-tensors", type=int, default=100,
                    help="skip ORT's entropy calibrator on models with more tensors (its 2048-bin search takes seconds per tensor)")
    args = ap.parse_args()

    print(f"calibration on {args.samples} seeded samples per model; MinMax amax relative tolerance {REL_TOL}")
    header = (f"{'model':24} {'ort':>5} {'weights':>7} {'glmc':>5} {'missing':>7} {'max rel err':>11} {'minmax':>6} "
              f"{'glmc s':>7} {'ort s':>7} {'glmc smp/s':>10} {'ort smp/s':>9} "
              f"{'ent glmc/ort':>12} {'pct glmc/ort':>12}")
    rows, details, failed = [], [], False
    for path in models():
        name = os.path.basename(path)
        if args.only and not re.search(args.only, name):
            continue
        model = onnx.load(path)
        with tempfile.TemporaryDirectory(prefix="glmc-bench-calib-") as work:
            data = os.path.join(work, "data")
            os.makedirs(data)
            samples = make_samples(model, args.samples, data)
            try:
                g_mm, g_s, g_rate = glmc_calibrate(args.glmc, path, "minmax", data, work)
                g_en, _, _ = glmc_calibrate(args.glmc, path, "entropy", data, work)
                g_pc, _, _ = glmc_calibrate(args.glmc, path, f"percentile:{PERCENTILE}", data, work)
            except Exception as e:  # noqa: BLE001 - one row per model, whatever failed
                rows.append(f"{name:24} glmc failed: {e}")
                print(rows[-1], file=sys.stderr, flush=True)
                failed = True
                continue
            o_mm, o_s, o_rate = ort_calibrate("minmax", path, samples, work)
            o_en = {}
            if len(o_mm) <= args.ort_entropy_max_tensors:
                o_en, _, _ = ort_calibrate("entropy", path, samples, work)
            o_pc, _, _ = ort_calibrate("percentile", path, samples, work)

        first_row = len(rows)
        weights = weight_only_tensors(model)
        activations = [t for t in o_mm if t not in weights]
        missing = [t for t in activations if t not in g_mm]
        worst, worst_tensor = 0.0, ""
        for t in activations:
            if t in g_mm:
                o, g = o_mm[t], g_mm[t]["amax"]
                err = abs(g - o) / abs(o) if o != 0 else (0.0 if g == 0 else float("inf"))
                if err > worst:
                    worst, worst_tensor = err, t
        ok = not missing and worst <= REL_TOL
        failed |= not ok

        def ratio(g, o):
            rs = [g[t]["amax"] / o[t] for t in o if t in g and o[t] > 0]
            return f"{np.median(rs):12.3f}" if rs else f"{'-':>12}"
        rows.append(f"{name:24} {len(o_mm):5d} {len(o_mm) - len(activations):7d} {len(g_mm):5d} {len(missing):7d} "
                    f"{worst:11.2e} {'ok' if ok else 'FAIL':>6} {g_s:7.2f} {o_s:7.2f} {fmt_rate(g_rate):>10} "
                    f"{fmt_rate(o_rate):>9} {ratio(g_en, o_en)} {ratio(g_pc, o_pc)}")
        if worst > REL_TOL:
            rows.append(f"{'':24} largest error: '{worst_tensor}' glmc {g_mm[worst_tensor]['amax']:.9g} ort {o_mm[worst_tensor]:.9g}")
        if missing:
            rows.append(f"{'':24} missing from glmc: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
        if args.details or os.path.dirname(path) == os.path.join(ROOT, "Models"):
            details.append(f"\n{name}: amax per tensor (minmax / entropy / percentile:{PERCENTILE})")
            details.append(f"  {'tensor':40} {'glmc mm':>10} {'ort mm':>10} {'glmc ent':>10} {'ort ent':>10} {'glmc pct':>10} {'ort pct':>10}")
            for t in g_mm:
                def v(d, key=None):
                    x = d.get(t)
                    if x is None:
                        return f"{'-':>10}"
                    return f"{(x['amax'] if key else x):10.4g}"
                details.append(f"  {t[:40]:40} {v(g_mm, 1)} {v(o_mm)} {v(g_en, 1)} {v(o_en)} {v(g_pc, 1)} {v(o_pc)}")
        print("\n".join(rows[first_row:]), file=sys.stderr, flush=True)

    print(header)
    print("\n".join(rows))
    print("\nort: tensors ORT's MinMaxCalibrater reports; weights: of those, computed from weights alone (not "
          "activations); glmc: tensors in glmc's table;\nglmc s / ort s: MinMax calibration wall time; smp/s: samples "
          "per second while running samples; ent/pct glmc/ort: median of glmc amax / ORT amax over tensors.")
    print("\n".join(details))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
