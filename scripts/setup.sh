#!/usr/bin/env bash
# Project set-up for glmc: Debian packages + the Python venv at .venv.
# Idempotent and quick when everything is already in place. Called by `make setup`.
# Works non-interactively (CI, fresh clone, root, no stdin).
set -euo pipefail

# Debian packages the build, `make proto` and the tests need. Add new ones here.
# OpenCL: the headers CGLMCOpenCL compiles against, the ICD loader the runtime dlopens, and PoCL's
# CPU device so OpenCL plans run (and their tests and conformance run) on machines without a GPU.
APT_PACKAGES="libprotobuf-c-dev protobuf-c-compiler libonnx-dev python3-venv ocl-icd-opencl-dev opencl-headers pocl-opencl-icd clinfo"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
REQS="$ROOT/scripts/requirements.txt"
PYTHON="${PYTHON:-python3}"

log() { echo "setup: $*"; }

# --- apt -------------------------------------------------------------------
missing=()
for pkg in $APT_PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
            log "missing packages (${missing[*]}) and not root; install them by hand" >&2
            exit 1
        fi
    fi
    log "installing apt packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q </dev/null
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" </dev/null
fi

# --- venv ------------------------------------------------------------------
if [ -d "$VENV" ] && ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    log "existing .venv is broken; recreating"
    rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
    log "creating .venv with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
fi

hash="$(sha256sum "$REQS" | cut -c1-16)"
stamp="$VENV/.stamp-$hash"
if [ ! -e "$stamp" ]; then
    log "installing Python requirements into .venv"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$REQS" </dev/null
    rm -f "$VENV"/.stamp-*
    touch "$stamp"
fi

# --- swift (not installed here; just say so early) --------------------------
if ! command -v swift >/dev/null 2>&1 && [ ! -x /opt/swift/usr/bin/swift ]; then
    log "warning: swift not found on PATH or in /opt/swift/usr/bin" >&2
fi

log "ok"
