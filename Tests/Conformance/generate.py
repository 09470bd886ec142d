#!/usr/bin/env python3
"""Generate the ONNX node conformance suite from the pinned onnx package.

For every node test case returned by
``onnx.backend.test.case.node.collect_testcases()`` this writes::

    DIR/<case>/model.onnx
    DIR/<case>/meta.json                 input/output names, tensor_only, reason
    DIR/<case>/data_<k>/input_<i>.npy    (tensor-only cases only)
    DIR/<case>/data_<k>/expected_<i>.npy
    DIR/skipped.txt                      "<case> <reason>" for non-tensor cases
    DIR/.stamp                           generator + onnx version

A case is *tensor-only* when every runtime graph input and every graph output
is declared as a tensor (not sequence / optional / map) AND every value of
every data set is a plain tensor (numpy array, numpy scalar or TensorProto; not
a list, None or dict) whose element type can be stored faithfully in a
standard .npy file: bool, int8..int64, uint8..uint64, float16/32/64, and
string (written as '<U' unicode arrays). bfloat16, float8*, float4, int4/uint4,
int2/uint2 and complex are skipped with reason "dtype <name>", because numpy
can only store them as opaque void ('<V2') or raw-bits arrays.

Usage: generate.py [--out DIR] [--force]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "generated"

# Bump when the on-disk layout changes so stale suites get regenerated.
GENERATOR_VERSION = 1

# ONNX element types that round-trip through .npy unchanged.
_SUPPORTED_ELEM_TYPES = {
    "FLOAT", "DOUBLE", "FLOAT16",
    "INT8", "INT16", "INT32", "INT64",
    "UINT8", "UINT16", "UINT32", "UINT64",
    "BOOL", "STRING",
}


def _stamp_text() -> str:
    import onnx

    return f"generator={GENERATOR_VERSION} onnx={onnx.__version__}\n"


def suite_is_current(out_dir: Path) -> bool:
    stamp = Path(out_dir) / ".stamp"
    return stamp.is_file() and stamp.read_text() == _stamp_text()


def _value_kind(type_proto) -> str:
    return type_proto.WhichOneof("value") or "undefined"


def _to_numpy(value):
    """Convert one data-set value to a numpy array, or return None if it is not a tensor."""
    from onnx import TensorProto, numpy_helper

    if isinstance(value, TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, np.generic):
        return np.asarray(value)
    return None


def _elem_type_name(arr: np.ndarray) -> str:
    """ONNX element-type name of a numpy array ('FLOAT', 'STRING', 'BFLOAT16', ...)."""
    from onnx import TensorProto, helper

    if arr.dtype.kind in "OUS":
        return "STRING"
    try:
        return TensorProto.DataType.Name(helper.np_dtype_to_tensor_dtype(arr.dtype))
    except Exception:  # noqa: BLE001 - unknown custom dtype
        return str(arr.dtype).upper()


def classify_case(case) -> tuple[bool, str, list]:
    """Return (tensor_only, reason, data_sets as numpy arrays)."""
    from onnx import TensorProto

    graph = case.model.graph
    initializers = {init.name for init in graph.initializer}
    runtime_inputs = [vi for vi in graph.input if vi.name not in initializers]

    for role, infos in (("input", runtime_inputs), ("output", graph.output)):
        for vi in infos:
            kind = _value_kind(vi.type)
            if kind != "tensor_type":
                return False, f"{role} {vi.name!r} is {kind.replace('_type', '')}", []
            elem = vi.type.tensor_type.elem_type
            name = TensorProto.DataType.Name(elem)
            if name not in _SUPPORTED_ELEM_TYPES:
                return False, f"dtype {name.lower()}", []

    data_sets = []
    for inputs, outputs in case.data_sets:
        if len(inputs) != len(runtime_inputs) or len(outputs) != len(graph.output):
            return False, "data set does not match graph inputs/outputs", []
        converted = []
        for role, values in (("input", inputs), ("output", outputs)):
            arrays = []
            for i, value in enumerate(values):
                arr = _to_numpy(value)
                if arr is None:
                    kind = "none" if value is None else type(value).__name__
                    return False, f"{role} {i} is {kind}", []
                name = _elem_type_name(arr)
                if name not in _SUPPORTED_ELEM_TYPES:
                    return False, f"dtype {name.lower()}", []
                if name == "STRING":
                    arr = np.asarray(arr, dtype=object).astype(str)
                arrays.append(arr)
            converted.append(arrays)
        data_sets.append(tuple(converted))
    return True, "", data_sets


def _write_case(case_dir: Path, case) -> tuple[bool, str]:
    case_dir.mkdir(parents=True, exist_ok=True)
    (case_dir / "model.onnx").write_bytes(case.model.SerializeToString())

    tensor_only, reason, data_sets = classify_case(case)
    for k, (inputs, outputs) in enumerate(data_sets):
        data_dir = case_dir / f"data_{k}"
        data_dir.mkdir(exist_ok=True)
        for i, arr in enumerate(inputs):
            np.save(data_dir / f"input_{i}.npy", arr, allow_pickle=False)
        for i, arr in enumerate(outputs):
            np.save(data_dir / f"expected_{i}.npy", arr, allow_pickle=False)

    graph = case.model.graph
    initializers = {init.name for init in graph.initializer}
    meta = {
        "name": case.name,
        "inputs": [vi.name for vi in graph.input if vi.name not in initializers],
        "outputs": [vi.name for vi in graph.output],
        "tensor_only": tensor_only,
        "reason": reason,
        "data_sets": len(data_sets),
        "opsets": {op.domain or "ai.onnx": op.version for op in case.model.opset_import},
    }
    (case_dir / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return tensor_only, reason


def generate(out_dir: Path | str = DEFAULT_OUT, force: bool = False, quiet: bool = False) -> Path:
    """Generate the suite into out_dir unless it is already current. Returns out_dir."""
    out_dir = Path(out_dir)
    log = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr))
    if not force and suite_is_current(out_dir):
        log(f"conformance suite in {out_dir} is current ({_stamp_text().strip()})")
        return out_dir

    from onnx.backend.test.case.node import collect_testcases

    start = time.monotonic()
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)

    with warnings.catch_warnings():
        # Some case generators deliberately overflow / divide by zero.
        warnings.simplefilter("ignore")
        np_err = np.seterr(all="ignore")
        try:
            cases = collect_testcases()
        finally:
            np.seterr(**np_err)

    seen = set()
    skipped = []
    tensor_only_count = 0
    for case in cases:
        if case.name in seen:
            raise SystemExit(f"duplicate test case name {case.name}")
        seen.add(case.name)
        ok, reason = _write_case(out_dir / case.name, case)
        if ok:
            tensor_only_count += 1
        else:
            skipped.append(f"{case.name} {reason}")

    (out_dir / "skipped.txt").write_text("".join(line + "\n" for line in sorted(skipped)))
    (out_dir / ".stamp").write_text(_stamp_text())  # last: marks a complete suite
    log(
        f"generated {len(cases)} cases into {out_dir}: {tensor_only_count} tensor-only, "
        f"{len(skipped)} skipped (see skipped.txt) in {time.monotonic() - start:.1f}s"
    )
    return out_dir


def load_suite(out_dir: Path | str = DEFAULT_OUT) -> list[dict]:
    """Read every case's meta.json, sorted by case name; adds 'dir' (a Path)."""
    out_dir = Path(out_dir)
    metas = []
    for meta_path in sorted(out_dir.glob("*/meta.json")):
        meta = json.loads(meta_path.read_text())
        meta["dir"] = meta_path.parent
        metas.append(meta)
    return metas


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="output directory (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="regenerate even if the stamp is current")
    args = parser.parse_args(argv)

    out_dir = generate(args.out, force=args.force)
    metas = load_suite(out_dir)
    tensor_only = sum(1 for m in metas if m["tensor_only"])
    print(f"{len(metas)} cases, {tensor_only} tensor-only, {len(metas) - tensor_only} skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
