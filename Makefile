# Two commands for a fresh clone: `make figures` and `make test`. Each (re)creates .venv from
# requirements.txt when it is missing or stale (stamp keyed on the requirements' hash).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
REQ_HASH := $(shell $(PY) -c "import hashlib;print(hashlib.sha256(open('requirements.txt','rb').read()).hexdigest()[:16])")
STAMP := $(VENV)/.stamp-$(REQ_HASH)
export PYTHONPATH := $(CURDIR)
export MPLBACKEND := Agg
export XLA_PYTHON_CLIENT_PREALLOCATE := false

.PHONY: all venv test test-all figures figures-full bench lab lint clean

all: test

$(STAMP): requirements.txt
	rm -rf $(VENV)
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP) lint
	$(BIN)/python -m pytest -n auto --dist worksteal -m "not slow" tests

test-all: $(STAMP) lint
	$(BIN)/python -m pytest -n auto --dist worksteal tests

figures: $(STAMP)
	$(BIN)/python -m figures all --quick

figures-full: $(STAMP)
	$(BIN)/python -m figures all --full

bench: $(STAMP)
	$(BIN)/python -m benchmarks

lab: $(STAMP)
	$(BIN)/python -m pip install --quiet -r requirements-lab.txt
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf figures/out .pytest_cache .ruff_cache .sweep_cache build *.egg-info
