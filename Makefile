# Two commands for a fresh clone: `make figures` and `make test`. Each (re)creates .venv from
# requirements.txt when it is missing or stale (stamp keyed on the hash of requirements.txt and pyproject.toml) and
# installs the suite itself into it in editable mode, so notebooks, scripts in any folder and `python -m figures`
# from any folder import sims/theory/figures without PYTHONPATH.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
REQ_HASH := $(shell $(PY) -c "import hashlib;print(hashlib.sha256(open('requirements.txt','rb').read()+open('pyproject.toml','rb').read()).hexdigest()[:16])")
STAMP := $(VENV)/.stamp-$(REQ_HASH)
export MPLBACKEND := Agg
export XLA_PYTHON_CLIENT_PREALLOCATE := false

.PHONY: all venv test test-all figures figures-full bench lab lint clean

all: test

$(STAMP): requirements.txt pyproject.toml
	rm -rf $(VENV)
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

# The tests are compile-bound, so they build for compile speed: XLA's LLVM backend at -O0 (measured: -23% wall on
# compile-heavy tests) and XLA's older CPU fusion emitters (--xla_cpu_use_fusion_emitters=false: XLA compiles a sim in
# 55-73% of the time; the whole suite 4m54s -> 3m47s on 2 cores, 2026-12-02). The code is the same; float32
# results can differ from `make figures`' builds by rounding (~1 ulp, seen 1e-6 relative), far inside every
# statistical tolerance; tests that compare bits compare runs built with the same flags (subprocesses inherit
# XLA_FLAGS). `make figures` compiles at -O2 with the default emitters (sims.sweep.jit): XLA's default -O3 gives the
# same run time and takes ~1.5 s more per transformer program; the older emitters' programs run up to 1.75x longer
# (benchmarks/RESULTS.md: 1.1-1.2x the transformer, 1.7x the quadratic and bigram LM).
TEST_XLA_FLAGS := --xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false

test: $(STAMP) lint
	XLA_FLAGS="$(TEST_XLA_FLAGS) $$XLA_FLAGS" $(BIN)/python -m pytest -n auto --dist worksteal -m "not slow" tests

test-all: $(STAMP) lint
	$(BIN)/python -m pytest -n auto --dist worksteal tests

figures: $(STAMP)
	$(BIN)/python -m figures all --quick

figures-full: $(STAMP)
	$(BIN)/python -m figures all --full

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -r requirements-bench.txt
	$(BIN)/python -m benchmarks

lab: $(STAMP)
	$(BIN)/python -m pip install --quiet -r requirements-lab.txt
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf figures/out .pytest_cache .ruff_cache .sweep_cache build *.egg-info
