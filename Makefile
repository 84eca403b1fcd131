# Two front doors (see README): `make validate` runs the default validation suite and writes a
# report; `make test` runs the test suite. Both create .venv and install what they need first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SUITE  ?= default
PYTEST_ARGS ?=

.PHONY: install validate quick test test-slow bench paper clean gpu-check

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

validate: $(STAMP)
	$(BIN)/dmft validate --suite $(SUITE)

quick: $(STAMP)
	$(BIN)/dmft validate --suite quick

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow $(PYTEST_ARGS)

bench: $(STAMP)
	@echo "benchmarks (run one at a time; each prints its numbers):"
	@for f in benchmarks/bench_*.py; do echo "  $(BIN)/python -m benchmarks.$$(basename $$f .py)"; done

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

# The paper's experiments as a committed report (validate.paper); SIZE=full with DEVICE=cuda for the paper's sizes.
paper: $(STAMP)
	$(BIN)/python -m validate.paper --out reports/paper $(if $(DEVICE),--device $(DEVICE)) $(if $(SIZE),--size $(SIZE))

# The prepared GPU check (benchmarks/gpu_check.py): the gpu tests, the Monte Carlo solver at 10,000
# samples and training at width 16384 x 8 seeds on the Fig. 1 problem, numbers in one JSON file
# ($OUT/gpu-check.json when OUT is set, else reports/gpu-check.json). Fails without CUDA unless
# DEVICE=cpu; SIZE=small for a seconds-long run. No install step: it uses .venv when there, else
# $(PYTHON), which must hold torch, pytest and hypothesis (a GPU machine's image does).
GPU_PYTHON = $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON))
gpu-check:
	PYTHONUNBUFFERED=1 $(GPU_PYTHON) -m benchmarks.gpu_check $(if $(DEVICE),--device $(DEVICE)) $(if $(SIZE),--size $(SIZE))
