# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint format bench bench-quick clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,bench]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/corral demo

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

test: lint
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/messaging.py
	$(PY) benchmarks/allocator.py
	$(PY) benchmarks/launch.py
	$(PY) benchmarks/cluster.py
	$(PY) benchmarks/dns.py
	$(PY) benchmarks/services.py

bench-quick: $(STAMP)
	$(PY) benchmarks/messaging.py --quick
	$(PY) benchmarks/allocator.py --quick
	$(PY) benchmarks/launch.py --quick
	$(PY) benchmarks/cluster.py --quick
	$(PY) benchmarks/dns.py --quick
	$(PY) benchmarks/services.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
