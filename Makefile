# The two commands a new user needs: `make run` and `make test` (see README).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev

.PHONY: setup setup-dev run test lint typecheck unit bench clean

$(VENV)/bin/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP_RUN): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e .
	touch $@

# torch first, pinned: it takes the CPU wheel on disk instead of resolving a newer CUDA build.
$(STAMP_DEV): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[hf,dev]'
	touch $@ $(STAMP_RUN)

setup: $(STAMP_RUN)
setup-dev: $(STAMP_DEV)

run: setup
	$(BIN)/sentiflow run --demo

lint: setup-dev
	$(BIN)/ruff check sentiflow tests bench

typecheck: setup-dev
	$(BIN)/mypy

unit: setup-dev
	$(BIN)/pytest

test: lint typecheck unit

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
