#!/usr/bin/env python3
"""Run the ONNX node conformance suite against glmc (or onnxruntime as a reference).

    run_conformance.py --glmc PATH [--engine interpreter|cpu|cuda-ptx] [--jobs N] [--timeout S]
                       [--filter REGEX] [--check | --update] [--report FILE]
    run_conformance.py --reference onnxruntime [--jobs N] [--filter REGEX] [--report FILE]

Each tensor-only case / data set runs as

    <glmc> run <case>/model.onnx --engine <engine> --input NAME=<file>.npy ... --output-dir <tmp>

and glmc must write output_0.npy, output_1.npy, ... in graph-output order.
Exit status 0 = ran, 1 = error (one "error: ..." line on stderr), anything else = crash.

--engine cuda-ptx needs no GPU: each case / data set is converted with
`glmc convert --target cuda --gpu-arch sm_90` (input shapes from the data set; when that is
refused, again with the integer inputs bound with --input-value, then the small inputs), `code/kernels.ptx` is read out of the
plan, and the case passes when the PTX has an `.entry` for every step and
`ptxas -arch=sm_90 -o /dev/null` assembles it (NVRTC and ptxas from the venv's NVIDIA wheels).

Case classes: pass, mismatch, unsupported, error, crash, timeout.
See Docs/Conformance.md for the tolerances and the expectations workflow.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import struct
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import generate  # noqa: E402

DEFAULT_EXPECTATIONS = HERE / "expected_pass.txt"
DEFAULT_REPORT = HERE / "results" / "report.txt"

RTOL = 1e-3
ATOL = 1e-5

CLASSES = ["pass", "unsupported", "mismatch", "error", "crash", "timeout"]
_UNSUPPORTED_RE = re.compile(r"unsupported|not supported|not implemented", re.IGNORECASE)

EXPECTATIONS_HEADER = """\
# ONNX node conformance cases that must pass, one column per engine.
# One line per case, sorted by name:  <case name> <engines>
# where <engines> is a comma-separated, sorted list of the glmc engines the case must pass on
# (e.g. `test_abs cpu,interpreter`). A case pinned for no engine is not listed.
# A line with only a name (the old format) means `interpreter`.
# `run_conformance.py --engine E --check` checks only the E column; `--update` rewrites only
# the E column and keeps the other engines' entries. Regenerate one column with
#   .venv/bin/python Tests/Conformance/run_conformance.py --glmc .build/release/glmc --engine E --update
"""

LEGACY_ENGINE = "interpreter"  # a name-only line (old format) is pinned for this engine


@dataclass
class Result:
    name: str
    cls: str
    seconds: float
    detail: str = ""


# --------------------------------------------------------------------------- comparison

def _is_string(dtype: np.dtype) -> bool:
    return dtype.kind in "USO"


def compare(expected: np.ndarray, actual: np.ndarray) -> str | None:
    """Return None when actual matches expected, else a one-line description."""
    if _is_string(expected.dtype):
        # String width ('<U5' vs '<U7') is not part of the ONNX type; object arrays of str are ok too.
        if not _is_string(actual.dtype):
            return f"dtype {actual.dtype} != expected string"
    elif actual.dtype != expected.dtype:
        return f"dtype {actual.dtype} != expected {expected.dtype}"
    if actual.shape != expected.shape:
        return f"shape {actual.shape} != expected {expected.shape}"
    if expected.size == 0:
        return None

    if expected.dtype.kind in "fc":
        exp = expected.astype(np.float64)
        act = actual.astype(np.float64)
        close = np.isclose(act, exp, rtol=RTOL, atol=ATOL, equal_nan=True)
        if close.all():
            return None
        bad = np.argwhere(~close)
        idx = tuple(int(i) for i in bad[0])
        with np.errstate(invalid="ignore"):
            diff = np.abs(act - exp)
        finite = diff[np.isfinite(diff)]
        max_diff = f", max abs diff {finite.max():.4g}" if finite.size else ""
        return (
            f"{len(bad)}/{expected.size} values differ{max_diff}; "
            f"first at {list(idx)}: got {actual[idx].item()!r}, expected {expected[idx].item()!r}"
        )

    if _is_string(expected.dtype):
        equal = expected.astype(str) == actual.astype(str)
    else:
        equal = expected == actual
    if equal.all():
        return None
    bad = np.argwhere(~equal)
    idx = tuple(int(i) for i in bad[0])
    return (
        f"{len(bad)}/{expected.size} values differ; "
        f"first at {list(idx)}: got {actual[idx].item()!r}, expected {expected[idx].item()!r}"
    )


def _data_dirs(case_dir: Path) -> list[Path]:
    return sorted(case_dir.glob("data_*"), key=lambda p: int(p.name.split("_")[1]))


def _expected_files(data_dir: Path) -> list[Path]:
    return sorted(data_dir.glob("expected_*.npy"), key=lambda p: int(p.stem.split("_")[1]))


def _compare_outputs(data_dir: Path, actual: list[np.ndarray | None], label: str) -> str | None:
    expected_files = _expected_files(data_dir)
    for i, exp_path in enumerate(expected_files):
        act = actual[i] if i < len(actual) else None
        if act is None:
            return f"{label} output {i}: missing"
        problem = compare(np.load(exp_path, allow_pickle=False), act)
        if problem:
            return f"{label} output {i}: {problem}"
    return None


# --------------------------------------------------------------------------- glmc runner

def _first_error_line(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith("error:"):
            return ln
    return lines[-1] if lines else "(no message on stderr)"


def _classify_exit_1(stderr: str) -> tuple[str, str]:
    message = _first_error_line(stderr)
    return ("unsupported" if _UNSUPPORTED_RE.search(message) else "error"), message


def run_glmc_case(meta: dict, glmc: str, engine: str, timeout: float, opt_level: int = 0) -> Result:
    case_dir: Path = meta["dir"]
    start = time.monotonic()

    def done(cls: str, detail: str = "") -> Result:
        return Result(meta["name"], cls, time.monotonic() - start, detail)

    for data_dir in _data_dirs(case_dir):
        label = data_dir.name
        out_dir = Path(tempfile.mkdtemp(prefix="glmc-conf-"))
        try:
            cmd = [glmc, "run", str(case_dir / "model.onnx"), "--engine", engine]
            if opt_level:
                # The optimized module must compute the same; the verifier runs after every pass.
                cmd += [f"-O{opt_level}", "--verify-each"]
            for i, name in enumerate(meta["inputs"]):
                cmd += ["--input", f"{name}={data_dir / f'input_{i}.npy'}"]
            cmd += ["--output-dir", str(out_dir)]

            proc = subprocess.Popen(
                cmd,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                start_new_session=True,  # so a timeout can kill the whole process group
            )
            try:
                _, stderr = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.communicate()
                return done("timeout", f"{label}: no result after {timeout:g}s")

            code = proc.returncode
            if code == 1:
                cls, message = _classify_exit_1(stderr)
                return done(cls, f"{label}: {message}")
            if code != 0:
                if code < 0:
                    try:
                        how = f"killed by {signal.Signals(-code).name}"
                    except ValueError:
                        how = f"killed by signal {-code}"
                else:
                    how = f"exit status {code}"
                tail = _first_error_line(stderr) if stderr.strip() else ""
                return done("crash", f"{label}: {how}" + (f": {tail}" if tail else ""))

            actual = []
            for i in range(len(_expected_files(data_dir))):
                path = out_dir / f"output_{i}.npy"
                if not path.is_file():
                    actual.append(None)
                    continue
                try:
                    actual.append(np.load(path, allow_pickle=False))
                except Exception as exc:  # noqa: BLE001 - unreadable output is a mismatch
                    return done("mismatch", f"{label} output {i}: unreadable .npy ({exc})")
            problem = _compare_outputs(data_dir, actual, label)
            if problem:
                return done("mismatch", problem)
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)
    return done("pass")


# --------------------------------------------------------------------------- cuda-ptx (no GPU needed)

CUDA_PTX_ENGINE = "cuda-ptx"
CUDA_PTX_ARCH = "sm_90"
SMALL_INPUT_ELEMENTS = 16  # inputs up to this size may be bound on retry (shape parameters)
REPO_ROOT = HERE.parent.parent


def _venv_nvidia_file(relative: str) -> str | None:
    """A file of the venv's NVIDIA wheels (site-packages/nvidia/<relative>), if installed."""
    for site in sorted((REPO_ROOT / ".venv" / "lib").glob("python3*/site-packages/nvidia")):
        path = site / relative
        if path.is_file():
            return str(path)
    return None


def read_plan_sections(path: Path) -> dict[str, bytes]:
    """The sections of a glmc plan file by name (Docs/PlanFormat.md): header, checksum, table."""
    data = path.read_bytes()
    if len(data) < 96 or data[:8] != b"GLMCPLAN":
        raise ValueError("not a glmc plan (bad magic or too short)")
    major, _minor, header_size, count, table = struct.unpack_from("<IIIIQ", data, 8)
    (length,) = struct.unpack_from("<Q", data, 32)
    if major != 1 or header_size != 64 or length != len(data):
        raise ValueError(f"unsupported plan header (version {major}, header {header_size}, length {length})")
    if hashlib.sha256(data[:-32]).digest() != data[-32:]:
        raise ValueError("plan checksum mismatch")
    sections = {}
    for i in range(count):
        entry = table + 128 * i
        name = data[entry:entry + 112].rstrip(b"\0").decode()
        offset, size = struct.unpack_from("<QQ", data, entry + 112)
        if offset + size > len(data) - 32:
            raise ValueError(f"section {name} lies outside the plan")
        sections[name] = data[offset:offset + size]
    return sections


_PTX_ENTRY_RE = re.compile(r"\.entry\s+([A-Za-z_$][\w$]*)\s*\(")


def _convert_cuda(glmc: str, cmd: list[str], timeout: float) -> tuple[int | None, str]:
    """Runs a glmc convert; (exit status, stderr), status None on timeout."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            errors="replace", start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        return None, ""
    return proc.returncode, stderr


def run_cuda_ptx_case(meta: dict, glmc: str, timeout: float, ptxas: str, opt_level: int = 0) -> Result:
    case_dir: Path = meta["dir"]
    start = time.monotonic()

    def done(cls: str, detail: str = "") -> Result:
        return Result(meta["name"], cls, time.monotonic() - start, detail)

    for data_dir in _data_dirs(case_dir):
        label = data_dir.name
        work = Path(tempfile.mkdtemp(prefix="glmc-ptx-"))
        try:
            plan = work / "model.plan"
            base = [glmc, "convert", str(case_dir / "model.onnx"), "--target", "cuda",
                    "--gpu-arch", CUDA_PTX_ARCH, "-o", str(plan)]
            if opt_level:
                base += [f"-O{opt_level}"]
            shapes, integers, small = [], [], []
            for i, name in enumerate(meta["inputs"]):
                path = data_dir / f"input_{i}.npy"
                array = np.load(path, allow_pickle=False)
                shapes += ["--input-shape", f"{name}=" + "x".join(str(d) for d in array.shape)]
                if array.dtype.kind in "iub":
                    integers += ["--input-value", f"{name}={path}"]
                if array.size <= SMALL_INPUT_ELEMENTS:
                    small += ["--input-value", f"{name}={path}"]
            code, stderr = _convert_cuda(glmc, base + shapes, timeout)
            # Inputs whose values decide shapes (Reshape's shape, Slice's starts, Resize's scales,
            # OneHot's depth, Range's bounds) must be bound, as `glmc run --engine cpu` binds them.
            # The harness cannot tell which they are, so when the plan is refused it binds the
            # integer inputs, then the small inputs of any type, and tries again.
            # When every attempt is refused, the first refusal (unbound) is the one reported.
            first_stderr = stderr
            for bound in (integers, small):
                if code == 1 and bound:
                    code, stderr = _convert_cuda(glmc, base + shapes + bound, timeout)
            if code == 1:
                stderr = first_stderr
            if code is None:
                return done("timeout", f"{label}: convert: no result after {timeout:g}s")
            if code == 1:
                cls, message = _classify_exit_1(stderr)
                return done(cls, f"{label}: convert: {message}")
            if code != 0:
                return done("crash", f"{label}: convert: exit status {code}: {_first_error_line(stderr)}")
            try:
                sections = read_plan_sections(plan)
            except (OSError, ValueError) as exc:
                return done("error", f"{label}: unreadable plan: {exc}")
            ptx = sections.get("code/kernels.ptx")
            if ptx is None:
                return done("error", f"{label}: the plan has no code/kernels.ptx ({_first_error_line(stderr)})")
            steps = json.loads(sections["manifest"]).get("steps", [])
            entries = set(_PTX_ENTRY_RE.findall(ptx.decode(errors="replace")))
            missing = sorted({s["kernel"] for s in steps} - entries)
            if missing:
                return done("error", f"{label}: the PTX has no entry for {', '.join(missing[:3])}")
            (work / "kernels.ptx").write_bytes(ptx)
            left = max(1.0, timeout - (time.monotonic() - start))
            try:
                assembled = subprocess.run([ptxas, f"-arch={CUDA_PTX_ARCH}", "-o", os.devnull, str(work / "kernels.ptx")],
                                           capture_output=True, text=True, errors="replace", timeout=left)
            except subprocess.TimeoutExpired:
                return done("timeout", f"{label}: ptxas: no result after {left:g}s")
            if assembled.returncode != 0:
                lines = [ln.strip() for ln in (assembled.stderr + assembled.stdout).splitlines() if ln.strip()]
                return done("error", f"{label}: ptxas: " + (lines[0] if lines else f"exit status {assembled.returncode}"))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return done("pass")


# --------------------------------------------------------------------------- onnxruntime reference

def run_ort_case(meta: dict) -> Result:
    import onnxruntime as ort

    case_dir: Path = meta["dir"]
    start = time.monotonic()

    def done(cls: str, detail: str = "") -> Result:
        return Result(meta["name"], cls, time.monotonic() - start, detail)

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(
            str(case_dir / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # noqa: BLE001
        message = " ".join(str(exc).split())
        # ORT reports missing kernels / too-new opsets as NOT_IMPLEMENTED or in "not supported" text.
        if "NOT_IMPLEMENTED" in message or _UNSUPPORTED_RE.search(message):
            return done("unsupported", f"load: unsupported: {message}")
        return done("error", f"load: {message}")

    output_names = [o.name for o in session.get_outputs()]
    for data_dir in _data_dirs(case_dir):
        feeds = {
            name: np.load(data_dir / f"input_{i}.npy", allow_pickle=False)
            for i, name in enumerate(meta["inputs"])
        }
        try:
            actual = session.run(output_names, feeds)
        except Exception as exc:  # noqa: BLE001
            message = " ".join(str(exc).split())
            cls = "unsupported" if "NOT_IMPLEMENTED" in message else "error"
            return done(cls, f"{data_dir.name}: {message}")
        actual = [np.asarray(a) if a is not None else None for a in actual]
        problem = _compare_outputs(data_dir, actual, data_dir.name)
        if problem:
            return done("mismatch", problem)
    return done("pass")


# --------------------------------------------------------------------------- expectations

def read_expectations_table(path: Path) -> dict[str, set[str]]:
    """case name -> engines it is pinned for. Name-only lines (old format) mean LEGACY_ENGINE."""
    table: dict[str, set[str]] = {}
    if not path.is_file():
        return table
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) == 1:
            engines = {LEGACY_ENGINE}
        elif len(fields) == 2:
            engines = {e.strip() for e in fields[1].split(",") if e.strip()}
        else:
            raise ValueError(f"{path}:{lineno}: expected `<case> <engine,...>`, got {line!r}")
        table.setdefault(fields[0], set()).update(engines)
    return table


def read_expectations(path: Path, engine: str = LEGACY_ENGINE) -> list[str]:
    """The cases pinned for one engine (its column), sorted."""
    return sorted(n for n, engines in read_expectations_table(path).items() if engine in engines)


def write_expectations_table(path: Path, table: dict[str, set[str]]) -> None:
    lines = [f"{n} {','.join(sorted(engines))}\n" for n, engines in sorted(table.items()) if engines]
    path.write_text(EXPECTATIONS_HEADER + "".join(lines))


def write_expectations(path: Path, names: list[str], engine: str = LEGACY_ENGINE) -> None:
    """Rewrite only `engine`'s column with exactly `names`; other engines' entries are kept."""
    table = read_expectations_table(path)
    wanted = set(names)
    for n in set(table) | wanted:
        engines = table.setdefault(n, set())
        if n in wanted:
            engines.add(engine)
        else:
            engines.discard(engine)
    write_expectations_table(path, table)


# --------------------------------------------------------------------------- main

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Run the ONNX node conformance suite against glmc.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--glmc", metavar="PATH", help="glmc binary to test")
    target.add_argument("--reference", choices=["onnxruntime"],
                        help="run the cases in-process with onnxruntime (CPU) instead of glmc")
    parser.add_argument("--engine", default="interpreter",
                        help="glmc --engine value, or cuda-ptx (convert to a CUDA plan, ptxas its PTX) "
                             "(default: %(default)s)")
    parser.add_argument("--ptxas", metavar="PATH",
                        help="ptxas for --engine cuda-ptx (default: $PTXAS, else the venv's nvidia-cuda-nvcc-cu12)")
    parser.add_argument("--opt-level", "-O", type=int, default=0, choices=[0, 1, 2, 3],
                        help="run each model through glmc's -O pipeline first (default: %(default)s)")
    parser.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1,
                        help="parallel runs (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="per-run timeout in seconds (default: %(default)s)")
    parser.add_argument("--filter", metavar="REGEX", help="only cases whose name matches (re.search)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="exit 1 if a case pinned for --engine in the expectations file does not pass")
    mode.add_argument("--update", action="store_true",
                      help="rewrite the --engine column of the expectations file with exactly the "
                           "passing cases (other engines' columns are kept)")
    parser.add_argument("--expectations", default=str(DEFAULT_EXPECTATIONS),
                        help="expectations file (default: %(default)s)")
    parser.add_argument("--report", default=str(DEFAULT_REPORT), help="per-case report (default: %(default)s)")
    parser.add_argument("--suite", default=str(generate.DEFAULT_OUT),
                        help="generated suite directory (default: %(default)s)")
    args = parser.parse_args(argv)

    if args.reference and (args.check or args.update):
        parser.error("--check/--update only apply to glmc runs")

    glmc = None
    if args.glmc:
        glmc_path = Path(args.glmc)
        if not glmc_path.is_file() or not os.access(glmc_path, os.X_OK):
            print(f"run_conformance: glmc binary not found or not executable: {args.glmc} "
                  f"(build it first, e.g. `make build`)", file=sys.stderr)
            return 1
        glmc = str(glmc_path.resolve())

    suite_dir = generate.generate(args.suite)
    all_cases = generate.load_suite(suite_dir)
    pattern = re.compile(args.filter) if args.filter else None
    selected = [m for m in all_cases if pattern is None or pattern.search(m["name"])]
    cases = [m for m in selected if m["tensor_only"]]
    if not cases:
        print("run_conformance: no tensor-only cases selected", file=sys.stderr)
        return 1

    if args.reference:
        import onnxruntime as ort

        ort.set_default_logger_severity(3)  # keep kernel-init errors out of the progress output
        label = "onnxruntime reference"
        run_one = run_ort_case
    elif args.engine == CUDA_PTX_ENGINE:
        label = args.engine
        ptxas = args.ptxas or os.environ.get("PTXAS") or _venv_nvidia_file("cuda_nvcc/bin/ptxas")
        if not ptxas or not os.access(ptxas, os.X_OK):
            print("run_conformance: --engine cuda-ptx needs ptxas (pip install nvidia-cuda-nvcc-cu12 into .venv, "
                  "or --ptxas PATH)", file=sys.stderr)
            return 1
        if not os.environ.get("GLMC_NVRTC"):
            nvrtc = _venv_nvidia_file("cuda_nvrtc/lib/libnvrtc.so.12")
            if nvrtc:
                os.environ["GLMC_NVRTC"] = nvrtc  # inherited by every glmc convert
        def run_one(meta: dict) -> Result:
            return run_cuda_ptx_case(meta, glmc, args.timeout, ptxas, args.opt_level)
    else:
        label = args.engine + (f" -O{args.opt_level}" if args.opt_level else "")
        def run_one(meta: dict) -> Result:
            return run_glmc_case(meta, glmc, args.engine, args.timeout, args.opt_level)

    lock = threading.Lock()
    finished = 0
    wall_start = time.monotonic()

    def task(meta: dict) -> Result:
        nonlocal finished
        try:
            result = run_one(meta)
        except Exception as exc:  # noqa: BLE001 - a harness bug must not lose the whole run
            result = Result(meta["name"], "error", 0.0, f"harness: {type(exc).__name__}: {exc}")
        with lock:
            finished += 1
            if finished % 100 == 0 or finished == len(cases):
                print(f"[{finished}/{len(cases)}] {time.monotonic() - wall_start:.0f}s",
                      file=sys.stderr, flush=True)
        return result

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(task, cases))  # map keeps suite (sorted-name) order

    # ---- report file
    report_path = Path(args.report)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    with report_path.open("w") as f:
        for r in results:
            detail = r.detail.splitlines()[0] if r.detail else ""
            f.write(f"{r.name} {r.cls} {r.seconds:.3f} {detail}".rstrip() + "\n")

    # ---- summary table
    counts = {c: 0 for c in CLASSES}
    for r in results:
        counts[r.cls] += 1
    total = len(results)
    print()
    print(f"{'class':<12} {'cases':>6}")
    for c in CLASSES:
        print(f"{c:<12} {counts[c]:>6}")
    print(f"{'total':<12} {total:>6}   ({len(selected) - total} non-tensor cases skipped)")
    print()
    print("slowest cases:")
    for r in sorted(results, key=lambda r: r.seconds, reverse=True)[:10]:
        print(f"  {r.seconds:8.2f}s  {r.name} ({r.cls})")
    print()
    print(f"report: {report_path}  (wall {time.monotonic() - wall_start:.1f}s)")

    # ---- expectations
    exp_path = Path(args.expectations)
    passing = {r.name for r in results if r.cls == "pass"}
    by_name = {r.name: r for r in results}
    pinned = read_expectations(exp_path, args.engine) if args.glmc else []
    if pattern is not None:
        pinned_in_scope = [n for n in pinned if pattern.search(n)]
    else:
        pinned_in_scope = pinned

    regressions = []
    for name in pinned_in_scope:
        r = by_name.get(name)
        if r is None:
            regressions.append((name, "missing", "not a tensor-only case of the generated suite"))
        elif r.cls != "pass":
            regressions.append((name, r.cls, r.detail.splitlines()[0] if r.detail else ""))
    newly_passing = sorted(passing - set(pinned))

    status = 0
    if args.check:
        for name, cls, detail in regressions:
            print(f"REGRESSION {name}: {cls}: {detail}")
        for name in newly_passing:
            print(f"newly passing (run with --update to pin): {name}")
        if regressions:
            status = 1
    elif args.update:
        # With --filter only the filtered part of the file is rewritten.
        kept = [n for n in pinned if pattern is not None and not pattern.search(n)]
        new = sorted(set(kept) | passing)
        write_expectations(exp_path, new, args.engine)
        print(f"updated {exp_path} ({args.engine} column): {len(new)} cases pinned "
              f"(+{len(set(new) - set(pinned))}, -{len(set(pinned) - set(new))})")
        pinned, regressions = new, []

    summary = (f"conformance ({label}): {counts['pass']}/{total} pass, "
               f"{counts['unsupported']} unsupported, {counts['mismatch']} mismatch, "
               f"{counts['error']} error, {counts['crash']} crash, {counts['timeout']} timeout")
    if args.glmc:
        summary += f"; expectations: {len(pinned)} pinned, {len(regressions)} regressions"
    print(summary)
    return status


if __name__ == "__main__":
    sys.exit(main())
