# The two commands a new user needs: `make run` and `make test` (see README).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev

.PHONY: setup setup-dev system-deps run test lint typecheck unit bench clean

$(VENV)/bin/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP_RUN): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e .
	touch $@

# torch first, pinned: it takes the CPU wheel on disk instead of resolving a newer CUDA build.
$(STAMP_DEV): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[hf,e5,dev]'
	touch $@ $(STAMP_RUN)

setup: $(STAMP_RUN)
setup-dev: $(STAMP_DEV)

# System packages some tests use: Debian's chromium (the /console page in a real browser) and
# systemd-analyze (unit verification). Installed when missing and apt is usable (CI runs as
# root); otherwise those tests skip with the reason.
system-deps:
	@if ! command -v chromium >/dev/null || ! command -v systemd-analyze >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium systemd >/dev/null \
	      || (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
	          apt-get install -y -q chromium systemd >/dev/null) \
	      || echo "system-deps: apt install failed; browser/systemd tests will skip"; \
	  else echo "system-deps: chromium/systemd-analyze missing; those tests will skip"; fi; \
	fi

run: setup
	$(BIN)/sentiflow run --demo

lint: setup-dev
	$(BIN)/ruff check sentiflow tests bench

typecheck: setup-dev
	$(BIN)/mypy

unit: setup-dev system-deps
	$(BIN)/pytest

test: lint typecheck unit

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
