#!/usr/bin/env python3
"""Import benchmark for glmc (`make bench-import`).

Generates (once; kept in bench-data/, which is git-ignored):

  chain_10k.onnx, chain_50k.onnx, chain_100k.onnx
      N-node chains of Add/Relu/Mul on an f32[1,16] input, two shared f32[16]
      constant initializers. Opset 17.
  weights_1g.onnx + weights_1g.onnx.data
      x f32[1,8192] -> 4 x (MatMul with an 8192x8192 f32 weight (256 MiB) -> Add bias),
      the four weights (1 GiB) in one external data file next to the model.
      The data file is written in chunks, never held in memory at once.

then runs `<glmc> check <model> --timing` several times per model (5, or 3 for
the 1 GiB one), parses `import_ms=...` / `verify_ms=...` from its stdout, and
measures each run's peak RSS in isolation (os.wait4 on that one child).
Prints a table; `--json FILE` also writes the raw numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.join(ROOT, "bench-data")

OPSET = 17
IR_VERSION = 8
CHAIN_SIZES = [10_000, 50_000, 100_000]
CHAIN_WIDTH = 16
BIG_DIM = 8192                 # 8192*8192*4 bytes = 256 MiB per weight
BIG_LAYERS = 4                 # 4 x 256 MiB = 1 GiB external
CHUNK_ROWS = 256               # rows per write: 256*8192*4 = 8 MiB
ALIGN = 4096                   # offset alignment of each tensor in the data file

IMPORT_RE = re.compile(r"import_ms=([0-9.]+)")
VERIFY_RE = re.compile(r"verify_ms=([0-9.]+)")


# ---------------------------------------------------------------------------
# Generation

def _atomic_save(model, path: str) -> None:
    import onnx

    tmp = path + ".tmp"
    onnx.save_model(model, tmp)
    os.replace(tmp, path)


def make_chain(path: str, n: int) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    ops = ("Add", "Relu", "Mul")
    c_add = numpy_helper.from_array(np.full(CHAIN_WIDTH, 0.01, dtype=np.float32), "c_add")
    c_mul = numpy_helper.from_array(np.full(CHAIN_WIDTH, 0.99, dtype=np.float32), "c_mul")
    nodes = []
    prev = "x"
    for i in range(n):
        op = ops[i % 3]
        out = "y" if i == n - 1 else f"t{i}"
        if op == "Add":
            ins = [prev, "c_add"]
        elif op == "Mul":
            ins = [prev, "c_mul"]
        else:
            ins = [prev]
        nodes.append(helper.make_node(op, ins, [out], name=f"{op.lower()}_{i}"))
        prev = out
    graph = helper.make_graph(
        nodes, f"chain_{n}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, CHAIN_WIDTH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, CHAIN_WIDTH])],
        initializer=[c_add, c_mul],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              ir_version=IR_VERSION, producer_name="glmc-bench_import")
    onnx.checker.check_model(model)
    _atomic_save(model, path)


def make_big(path: str) -> None:
    """1 GiB of external weights, written chunk by chunk."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnx.external_data_helper import set_external_data

    data_name = os.path.basename(path) + ".data"
    data_path = os.path.join(os.path.dirname(path), data_name)
    rng = np.random.default_rng(4242)
    scale = np.float32(1.0 / np.sqrt(BIG_DIM))

    inits = []
    tmp_data = data_path + ".tmp"
    with open(tmp_data, "wb") as f:
        for layer in range(BIG_LAYERS):
            pad = (-f.tell()) % ALIGN
            if pad:
                f.write(b"\0" * pad)
            offset = f.tell()
            for _ in range(0, BIG_DIM, CHUNK_ROWS):
                chunk = rng.standard_normal((CHUNK_ROWS, BIG_DIM), dtype=np.float32)
                chunk *= scale
                f.write(chunk.astype("<f4", copy=False).tobytes())
            length = f.tell() - offset
            assert length == BIG_DIM * BIG_DIM * 4
            t = TensorProto()
            t.name = f"w{layer}"
            t.data_type = TensorProto.FLOAT
            t.dims.extend([BIG_DIM, BIG_DIM])
            # set_external_data insists on a raw_data field; give it an empty one and drop it after.
            t.raw_data = b""
            set_external_data(t, location=data_name, offset=offset, length=length)
            t.ClearField("raw_data")
            inits.append(t)
        f.flush()
        os.fsync(f.fileno())

    nodes = []
    prev = "x"
    for layer in range(BIG_LAYERS):
        bias = numpy_helper.from_array((0.01 * rng.standard_normal(BIG_DIM)).astype(np.float32), f"b{layer}")
        inits.append(bias)  # 32 KiB, stored inline
        mm = f"mm{layer}"
        out = "y" if layer == BIG_LAYERS - 1 else f"h{layer}"
        nodes.append(helper.make_node("MatMul", [prev, f"w{layer}"], [mm], name=f"matmul_{layer}"))
        nodes.append(helper.make_node("Add", [mm, f"b{layer}"], [out], name=f"add_{layer}"))
        prev = out
    graph = helper.make_graph(
        nodes, "weights_1g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, BIG_DIM])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, BIG_DIM])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              ir_version=IR_VERSION, producer_name="glmc-bench_import")
    os.replace(tmp_data, data_path)
    _atomic_save(model, path)
    # With a path, the checker also checks the external data file is there and in range.
    onnx.checker.check_model(path)


def benchmarks(data_dir: str):
    """(name, model path, generator, runs)."""
    out = []
    for n in CHAIN_SIZES:
        name = f"chain_{n // 1000}k"
        out.append((name, os.path.join(data_dir, name + ".onnx"), (lambda p, n=n: make_chain(p, n)), 5))
    out.append(("weights_1g", os.path.join(data_dir, "weights_1g.onnx"), make_big, 3))
    return out


def ensure(name: str, path: str, gen) -> None:
    need = not os.path.exists(path)
    if name == "weights_1g" and not os.path.exists(path + ".data"):
        need = True
    if not need:
        return
    t0 = time.monotonic()
    print(f"generating {os.path.relpath(path, ROOT)} ...", end="", flush=True)
    gen(path)
    print(f" {time.monotonic() - t0:.1f}s", flush=True)


def model_stats(path: str):
    """(node count, weight bytes, .onnx file bytes, external data file bytes)."""
    import onnx
    from onnx import helper

    m = onnx.load(path, load_external_data=False)
    weights = 0
    ext_files = set()
    for t in m.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            info = {e.key: e.value for e in t.external_data}
            if "length" in info:
                weights += int(info["length"])
            else:
                n = 1
                for d in t.dims:
                    n *= d
                weights += n * helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
            ext_files.add(info["location"])
        elif t.raw_data:
            weights += len(t.raw_data)
        else:
            n = 1
            for d in t.dims:
                n *= d
            weights += n * helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
    ext = sum(os.path.getsize(os.path.join(os.path.dirname(path), loc)) for loc in ext_files)
    return len(m.graph.node), weights, os.path.getsize(path), ext


# ---------------------------------------------------------------------------
# Measurement

# Runs one command and reports that command's own peak RSS. ru_maxrss survives execve on
# Linux (exec records the pre-exec address space's high-water mark), so a child forked or
# posix_spawn'ed straight from this process, with numpy/onnx loaded, would start at this
# process's RSS. Instead each run goes through a tiny `python -S` wrapper: it forks and
# execs the command, os.wait4()s for exactly that child, and prints the child's ru_maxrss
# and wall time as the last line of stderr. The floor is then the wrapper's own few MiB
# (printed as the baseline). RUSAGE_CHILDREN is not used: it is a max over all children.
WRAPPER = r"""
import os, sys, time
t0 = time.monotonic_ns()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[1], sys.argv[1:])
    except OSError as e:
        os.write(2, ("%s: %s\n" % (sys.argv[1], e)).encode())
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
wall = time.monotonic_ns() - t0
os.write(2, ("\n__bench_rusage__ maxrss_kb=%d wall_ns=%d\n" % (ru.ru_maxrss, wall)).encode())
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""
RUSAGE_RE = re.compile(r"\n?__bench_rusage__ maxrss_kb=(\d+) wall_ns=(\d+)\n?$")


def run_once(argv: list[str]):
    """Run argv; return (exit status, stdout, stderr, wall s, peak RSS bytes of that run only)."""
    p = subprocess.run([sys.executable, "-S", "-E", "-c", WRAPPER, *argv],
                       stdin=subprocess.DEVNULL, capture_output=True)
    out = p.stdout.decode(errors="replace")
    err = p.stderr.decode(errors="replace")
    m = RUSAGE_RE.search(err)
    if not m:
        return p.returncode or 1, out, err + "\n(bench wrapper: no rusage line)", 0.0, 0
    err = err[:m.start()]
    # Linux reports ru_maxrss in KiB.
    return p.returncode, out, err, int(m.group(2)) / 1e9, int(m.group(1)) * 1024


def mib(b: float) -> float:
    return b / (1024 * 1024)


def fmt_bytes(b: int) -> str:
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if b >= div:
            return f"{b / div:.1f} {unit}"
    return f"{b} B"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--glmc", required=True, help="path to the glmc executable")
    ap.add_argument("--data", default=DEFAULT_DATA, help="data directory (default: bench-data/)")
    ap.add_argument("--only", action="append", default=[], help="run only this benchmark (repeatable)")
    ap.add_argument("--runs", type=int, default=0, help="runs per model (default: 5; 3 for weights_1g)")
    ap.add_argument("--generate-only", action="store_true", help="generate the data and stop")
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args(argv)

    glmc = args.glmc
    if os.sep in glmc:
        glmc = os.path.abspath(glmc)
        if not os.access(glmc, os.X_OK):
            ap.error(f"--glmc {args.glmc}: not an executable file")

    os.makedirs(args.data, exist_ok=True)
    todo = [b for b in benchmarks(args.data) if not args.only or b[0] in args.only]
    if not todo:
        ap.error(f"--only matched nothing; names: {', '.join(b[0] for b in benchmarks(args.data))}")
    for name, path, gen, _ in todo:
        ensure(name, path, gen)
    if args.generate_only:
        return 0

    _, _, _, _, baseline = run_once(["true"])
    rows = []
    failed = False
    for name, path, _, runs in todo:
        runs = args.runs or runs
        nodes, weights, onnx_bytes, ext_bytes = model_stats(path)
        imports, verifies, walls, rss = [], [], [], []
        error = None
        for r in range(runs):
            code, out, err, wall, peak = run_once([glmc, "check", path, "--timing"])
            mi, mv = IMPORT_RE.search(out), VERIFY_RE.search(out)
            if code != 0 or not mi or not mv:
                error = f"run {r + 1}: exit {code}" + ("" if (mi and mv) else ", no timing line in stdout")
                sys.stderr.write(f"{name}: {error}\n--- stdout ---\n{out[-2000:]}\n--- stderr ---\n{err[-2000:]}\n")
                failed = True
                break
            imports.append(float(mi.group(1)))
            verifies.append(float(mv.group(1)))
            walls.append(wall * 1000)
            rss.append(peak)
        row = {"model": name, "path": os.path.relpath(path, ROOT), "nodes": nodes,
               "weights_bytes": weights, "onnx_bytes": onnx_bytes, "external_bytes": ext_bytes, "runs": len(imports),
               "import_ms": imports, "verify_ms": verifies, "wall_ms": walls, "peak_rss_bytes": rss,
               "error": error}
        if imports:
            row["median_import_ms"] = statistics.median(imports)
            row["median_verify_ms"] = statistics.median(verifies)
            row["median_wall_ms"] = statistics.median(walls)
            row["max_peak_rss_bytes"] = max(rss)
        rows.append(row)
        print(f"  {name}: {len(imports)}/{runs} runs" + (f" FAILED ({error})" if error else ""), flush=True)

    print()
    hdr = ("model", "nodes", "weights", ".onnx file", "ext. data", "import ms", "verify ms", "wall ms",
           "import ms/1k", "verify ms/1k", "peak RSS MiB", "RSS/weights")
    table = [hdr]
    for r in rows:
        if "median_import_ms" not in r:
            table.append((r["model"], str(r["nodes"]), fmt_bytes(r["weights_bytes"]),
                          fmt_bytes(r["onnx_bytes"]), fmt_bytes(r["external_bytes"]) if r["external_bytes"] else "-",
                          "FAILED", "", "", "", "", "", ""))
            continue
        k = r["nodes"] / 1000
        ratio = (f"{r['max_peak_rss_bytes'] / r['weights_bytes']:.2f}"
                 if r["weights_bytes"] >= (1 << 20) else "-")  # meaningless for a few bytes of weights
        table.append((
            r["model"], str(r["nodes"]), fmt_bytes(r["weights_bytes"]),
            fmt_bytes(r["onnx_bytes"]), fmt_bytes(r["external_bytes"]) if r["external_bytes"] else "-",
            f"{r['median_import_ms']:.1f}", f"{r['median_verify_ms']:.1f}", f"{r['median_wall_ms']:.0f}",
            f"{r['median_import_ms'] / k:.3f}", f"{r['median_verify_ms'] / k:.3f}",
            f"{mib(r['max_peak_rss_bytes']):.1f}", ratio,
        ))
    widths = [max(len(row[i]) for row in table) for i in range(len(hdr))]
    for j, row in enumerate(table):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip())
        if j == 0:
            print("  ".join("-" * w for w in widths))
    print(f"\nms: medians over the runs (wall = the whole `glmc check` process). Peak RSS: max over the runs,\n"
          f"each run measured on its own via wait4; floor (wrapper running `true`) = {mib(baseline):.1f} MiB.\n"
          f"RSS/weights only for models with >= 1 MiB of weights.")

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"glmc": glmc, "rss_floor_bytes": baseline, "results": rows}, f, indent=2)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
