# ParkGate: every target bootstraps .venv by itself.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SHARED ?= $(abspath ../shared)
export PARKGATE_MODELS_DIR ?= $(SHARED)/models
export PARKGATE_DATASETS_DIR ?= $(SHARED)/datasets/openalpr-endtoend

.PHONY: venv sysdeps test bench check demo clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

# Mosquitto, PostgreSQL, Chromium, systemd-analyze: installed with apt where missing and possible.
sysdeps:
	@scripts/ensure-system-deps.sh

test: $(STAMP) sysdeps
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP) sysdeps
	$(PY) -m bench $(BENCH_ARGS)

check: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

demo: $(STAMP) sysdeps
	$(PY) -m demo

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
