# glmc — top-level build plumbing. See README.md.
#
#   make demo          set up, build, run glmc on Models/cnn.onnx
#   make test          set up, build, conformance (interpreter, cpu, opencl, cuda-ptx), check-models, swift test
#   make conformance   the ONNX node conformance suite through glmc run, at -O0 and -O3 (ENGINE=interpreter)
#   make conformance-cpu  the same suite through CPU plans (--engine cpu --check)
#   make conformance-opencl  the same suite through OpenCL plans on the first OpenCL device (PoCL in CI)
#   make conformance-cuda-ptx  every case converted to a CUDA plan (sm_90), its PTX assembled by ptxas (no GPU needed)
#   make check-models  Models/ and the light model zoo through cpu and opencl plans vs ONNX Runtime, cuda plans through ptxas
#   make bench-import  import benchmark (generates bench-data/ on first run)
#   make bench-passes  node counts and optimize time: glmc -O3 vs onnx-simplifier vs ONNX Runtime
#   make bench         CPU plans vs ONNX Runtime (latency ratios) and the generated GEMM vs OpenBLAS
#   make bench-calibrate  INT8 calibration: glmc's MinMax/Entropy/Percentile amax vs ONNX Runtime's calibrators
#   make proto         regenerate the protoc-c sources in Sources/CONNXProto
#   make models        regenerate Models/ (onnx + ORT reference outputs)
#   make fixtures      regenerate Tests/Fixtures/ (bad inputs, small good models, .npy references)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build
MAKEFLAGS += --no-print-directory

export PATH := /opt/swift/usr/bin:$(PATH)

SWIFT    ?= swift
PYTHON   := .venv/bin/python
GLMC     := .build/release/glmc
ENGINE   ?= interpreter
# NVRTC from the venv's nvidia-cuda-nvrtc-cu12 wheel, for glmc convert --target cuda (and its tests).
NVRTC_LIB := $(firstword $(wildcard $(CURDIR)/.venv/lib/python3*/site-packages/nvidia/cuda_nvrtc/lib/libnvrtc.so.12))
ifneq ($(NVRTC_LIB),)
export GLMC_NVRTC ?= $(NVRTC_LIB)
endif
PROTOC_C ?= protoc-c
ONNX_PROTO ?= /usr/include/onnx/onnx.proto
PROTO_DIR  := Sources/CONNXProto

.PHONY: all setup build test conformance conformance-cpu conformance-opencl conformance-cuda-ptx check-models demo bench bench-import bench-passes bench-calibrate proto models fixtures clean distclean

all: build

setup:
	@bash scripts/setup.sh

build: setup
	$(SWIFT) build -c release --product glmc

# build -> conformance -> swift test, so swift test's summary is the last thing printed.
test: build
	$(MAKE) conformance
	$(MAKE) conformance-cpu
	$(MAKE) conformance-opencl
	$(MAKE) conformance-cuda-ptx
	$(MAKE) check-models
	$(SWIFT) test --disable-swift-testing

conformance: build
	$(PYTHON) Tests/Conformance/run_conformance.py --glmc $(GLMC) --engine $(ENGINE) --check
	$(PYTHON) Tests/Conformance/run_conformance.py --glmc $(GLMC) --engine $(ENGINE) -O3 --check --report Tests/Conformance/results/report-O3.txt

# Each case compiles a CPU plan with the system C compiler, so this is slower than `conformance`.
conformance-cpu: build
	$(PYTHON) Tests/Conformance/run_conformance.py --glmc $(GLMC) --engine cpu --jobs 2 --timeout 60 --check --report Tests/Conformance/results/report-cpu.txt

# Each case builds an OpenCL plan and the device's driver compiles its kernels at load (PoCL: clang + LLVM).
conformance-opencl: build
	$(PYTHON) Tests/Conformance/run_conformance.py --glmc $(GLMC) --engine opencl --jobs 2 --timeout 60 --check --report Tests/Conformance/results/report-opencl.txt

# Converts every case to a CUDA plan for sm_90 and runs ptxas on its PTX: no GPU needed.
conformance-cuda-ptx: build
	$(PYTHON) Tests/Conformance/run_conformance.py --glmc $(GLMC) --engine cuda-ptx --jobs 2 --timeout 120 --check --report Tests/Conformance/results/report-cuda-ptx.txt

# Models/ and the nine light model-zoo models (seeded random weights) through CPU and OpenCL plans
# against ONNX Runtime, and through CUDA plans to ptxas -arch=sm_90.
check-models: build
	$(PYTHON) scripts/check_models.py --glmc $(GLMC) --target cpu
	$(PYTHON) scripts/check_models.py --glmc $(GLMC) --target opencl
	$(PYTHON) scripts/check_models.py --glmc $(GLMC) --target cuda --gpu-arch sm_90

demo: build
	$(GLMC) check Models/cnn.onnx
	$(GLMC) dump Models/cnn.onnx -O3 --time-passes
	mkdir -p out/demo
	$(GLMC) convert Models/cnn.onnx --target cpu -o out/demo/cnn.plan
	$(GLMC) inspect out/demo/cnn.plan
	$(GLMC) run out/demo/cnn.plan --input Models/cnn.input_0.npy --output-dir out/demo
	$(PYTHON) -c "import numpy as n; a=n.load('out/demo/output_0.npy')[0]; b=n.load('Models/cnn.output_0.npy')[0]; top=n.argsort(-a)[:3]; print('demo: top classes', [(int(i), round(float(a[i]), 4)) for i in top], '| max abs difference to ONNX Runtime', float(abs(a-b).max()))"

bench-import: build
	$(PYTHON) scripts/bench_import.py --glmc $(GLMC)

# Generated into a temp dir first so a failing protoc-c leaves the checked-in files alone.
proto: setup
	@tmp="$$(mktemp -d)"; trap 'rm -rf "$$tmp"' EXIT; \
	$(PROTOC_C) --proto_path="$(dir $(ONNX_PROTO))" --c_out="$$tmp" "$(ONNX_PROTO)"; \
	mv "$$tmp/onnx.pb-c.h" $(PROTO_DIR)/include/onnx.pb-c.h; \
	mv "$$tmp/onnx.pb-c.c" $(PROTO_DIR)/onnx.pb-c.c; \
	echo "proto: regenerated $(PROTO_DIR)/onnx.pb-c.c and $(PROTO_DIR)/include/onnx.pb-c.h from $(ONNX_PROTO)"

models: setup
	$(PYTHON) scripts/make_models.py

fixtures: setup
	$(PYTHON) scripts/make_bad_inputs.py

clean:
	rm -rf .build bench-data Tests/Conformance/generated Tests/Conformance/results

distclean: clean
	rm -rf .venv

# Also checks that every -O3 model still computes what the original does (ONNX Runtime and the interpreter).
bench-passes: build
	$(PYTHON) scripts/bench_passes.py --glmc $(GLMC)

# Generates bench-data/bench_*.onnx on first run; prints one table (ratios are what to read).
bench: build
	$(PYTHON) scripts/bench_cpu.py --glmc $(GLMC) --threads 2

# Fails when glmc's MinMax amax differs from ONNX Runtime's (rel err > 1e-5) or misses a tensor it reports.
bench-calibrate: build
	$(PYTHON) scripts/bench_calibrate.py --glmc $(GLMC)
