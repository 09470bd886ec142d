#!/usr/bin/env python3
"""Traces and freezes torchvision models (random weights, nothing downloaded), converts each archive
to a CPU plan with glmc, runs the plan and compares with PyTorch (rtol 1e-3). Not part of `make test`:
it needs a separate venv with torch and torchvision (never the project venv):

    /work/torchvenv/bin/pip install torch torchvision numpy
    /work/torchvenv/bin/python scripts/check_torchvision_torchscript.py --glmc .build/release/glmc

Prints one line per model: convert time, largest difference, and whether it matches.
"""
import argparse
import os
import subprocess
import tempfile
import time
import warnings

import numpy as np
import torch
import torchvision

warnings.filterwarnings("ignore")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--glmc", default=".build/release/glmc")
    parser.add_argument("--models", default="resnet18,squeezenet1_1,densenet121,efficientnet_b0,mobilenet_v3_small,vit_b_16")
    args = parser.parse_args()
    torch.manual_seed(0)
    failures = 0
    with tempfile.TemporaryDirectory() as work:
        for name in args.models.split(","):
            model = getattr(torchvision.models, name)(weights=None).eval()
            with torch.no_grad():
                for p in model.parameters():  # non-trivial weights everywhere (some heads start at zero)
                    if p.dim() >= 2 and float(p.abs().max()) == 0:
                        p.normal_(0, 0.05)
                x = torch.randn(1, 3, 224, 224)
                traced = torch.jit.freeze(torch.jit.trace(model, x))
                expected = traced(x).numpy()
            archive, plan, inp, out = (os.path.join(work, name + s) for s in (".pt", ".plan", ".npy", "-out"))
            torch.jit.save(traced, archive)
            np.save(inp, x.numpy())
            start = time.time()
            r = subprocess.run([args.glmc, "convert", archive, "--target", "cpu", "--input-shape", "x=1x3x224x224", "-o", plan],
                               capture_output=True, text=True)
            seconds = time.time() - start
            if r.returncode != 0:
                print(f"{name:22s} convert failed: {r.stderr.strip()}")
                failures += 1
                continue
            r = subprocess.run([args.glmc, "run", plan, "--input", inp, "--output-dir", out], capture_output=True, text=True)
            if r.returncode != 0:
                print(f"{name:22s} run failed: {r.stderr.strip()}")
                failures += 1
                continue
            actual = np.load(os.path.join(out, "output_0.npy"))
            ok = np.allclose(actual, expected, rtol=1e-3, atol=1e-5)
            failures += not ok
            print(f"{name:22s} convert {seconds:6.1f} s   max |diff| {np.abs(actual - expected).max():.2e}   "
                  f"max |out| {np.abs(expected).max():.2e}   {'match' if ok else 'MISMATCH'}")
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
