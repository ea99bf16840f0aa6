# jitpol - `make demo` and `make test` work on a fresh Debian machine (Python 3.11+).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup setup-test demo test lint bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed
	@scripts/install-system-deps.sh demo

setup-test: $(VENV)/.installed
	@scripts/install-system-deps.sh test

## demo: start a throwaway PostgreSQL and reconcile policies/ at a few points in time
demo: setup
	$(PY) tools/demo.py

## test: install everything, start the services, run all tests
test: setup-test lint
	$(VENV)/bin/pytest -n 2 $(PYTEST_ARGS)

## lint: ruff and mypy --strict
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check jitpol tests tools benchmarks
	$(VENV)/bin/mypy

## bench: benchmarks with a peer side by side (see benchmarks/README.md)
bench: setup
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
