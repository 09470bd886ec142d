#!/usr/bin/env python3
"""Writes Tests/Fixtures/calibration: samples of the two-input test model (x: f32[2,3], y: f32[3])
in each sample format `glmc calibrate --data` reads (.npz, a folder of TensorProto .pb files) and a
compressed .npz that glmc refuses. Run from the repository root with the project venv."""
import os

import numpy as np
from onnx import numpy_helper

d = "Tests/Fixtures/calibration"
os.makedirs(d + "/npz", exist_ok=True)
os.makedirs(d + "/pb/s0", exist_ok=True)
x = np.array([[1.5, -2.0, 0.25], [3.0, -0.5, 4.0]], dtype=np.float32)
y = np.array([-1.0, 0.5, 2.0], dtype=np.float32)
np.savez(d + "/npz/s0.npz", x=x, y=y)
np.savez(d + "/npz/s1.npz", y=y * 2, x=x * -1)
np.savez_compressed(d + "/compressed.npz", x=x, y=y)
for name, a, i in (("x", x, 0), ("y", y, 1)):
    with open(f"{d}/pb/s0/input_{i}.pb", "wb") as f:
        f.write(numpy_helper.from_array(a, name=name).SerializeToString())
