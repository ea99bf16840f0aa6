# jitpol - `make demo` and `make test` work on a fresh Debian machine (Python 3.11+).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# test-timeshift: libfaketime's offset for every clock (tests, servers, the sshd namespace); empty: skip
TIMESHIFT ?= +365d
TIMESHIFT_TESTS ?= tests/integration tests/e2e tests/contract

.PHONY: setup setup-test setup-demo-targets demo demo-targets test test-timeshift lint bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed
	@scripts/install-system-deps.sh demo

setup-test: $(VENV)/.installed
	@scripts/install-system-deps.sh test

setup-demo-targets: $(VENV)/.installed
	@scripts/install-system-deps.sh demo-targets

## demo: start a throwaway PostgreSQL and reconcile policies/ at a few points in time
demo: setup
	$(PY) tools/demo.py

## demo-targets: a throwaway MariaDB and Samba AD DC (root), examples/targets/ at a few points in time
demo-targets: setup-demo-targets
	$(PY) tools/demo_targets.py

## test: install everything, start the services, run all tests; then the tests that meet real
## clocks again with every clock a year ahead (no test may depend on today's date)
test: setup-test lint
	$(VENV)/bin/pytest -n 2 $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory test-timeshift

## test-timeshift: the tests that meet real servers under libfaketime, every clock shifted by
## TIMESHIFT (+365d by default; e.g. make test-timeshift TIMESHIFT=-1d). See docs/testing.md.
test-timeshift: setup-test
ifneq ($(strip $(TIMESHIFT)),)
	scripts/test-timeshift.sh '$(TIMESHIFT)' $(VENV)/bin/pytest -n 2 -q -p no:cacheprovider $(TIMESHIFT_TESTS)
endif

## lint: ruff, mypy --strict and the import-linter contracts (.importlinter)
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check jitpol tests tools benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

## bench: benchmarks with a peer side by side (see benchmarks/README.md)
bench: setup
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) .demo .demo-targets .pytest_cache .mypy_cache .ruff_cache
