# Everything runs from a local virtualenv that these targets create on first use,
# so a machine with only Python 3.11+ and make is enough.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= config.toml

# Demo secret for the shipped example provider; real deployments set their own.
export ERP_MODELO_SECRET ?= demo-only-erp-modelo-secret

.PHONY: run test bench soak install clean check lint

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

# Full run ~12 min on 2 cores (7 interleaved repeats); BENCH_QUICK=1 for a ~1-minute smoke run.
# Uses wrk when installed (apt-get install wrk), else a built-in Python load generator.
# Both provider clients against a fault-injecting provider; SOAK_SECONDS split between them.
soak: $(BENCH_STAMP)
	SOAK_SECONDS=$${SOAK_SECONDS:-120} $(BIN)/python benchmarks/soak.py

bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/run.py

run: $(STAMP)
	$(BIN)/apihub demo --config $(CONFIG)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m mypy proxy
	$(BIN)/python -m ruff check proxy --select E,F,W,I,B,UP
	$(BIN)/lint-imports

check: $(STAMP)
	$(BIN)/apihub catalogue check catalogue

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
