# Two commands for a newcomer: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
DEMO_DB ?= gis_data/demo.gpkg

.PHONY: setup demo test lint system-deps bench lock clean

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "estates needs Python 3.11 or newer"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.8
	$(UV) pip sync --quiet --compile-bytecode --python $(BIN)/python requirements.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	@# Bytecode for our own sources too: where PYTHONDONTWRITEBYTECODE is set (as in CI),
	@# every process would otherwise recompile every import (about 6 s each here).
	$(BIN)/python -m compileall -q -j 0 estates migrations tests benchmarks
	touch $@

setup: $(VENV)/.installed

## The main job: demo data into the GeoPackage, analysis, maps under maps/.
demo: setup
	$(BIN)/estates --db $(DEMO_DB) demo

## Operating-system packages the tests need (PostGIS, Chromium); installs them when root.
system-deps:
	@bash tests/system_deps.sh

lint: setup
	$(BIN)/ruff check estates tests migrations benchmarks
	$(BIN)/ruff format --check estates tests migrations benchmarks
	$(BIN)/mypy

## The whole test suite: lint, types, tests on the GeoPackage and on a throwaway PostGIS.
test: setup system-deps lint
	$(BIN)/python -m pytest

bench: setup
	$(UV) pip install --quiet --compile-bytecode --python $(BIN)/python -r benchmarks/requirements.lock
	$(BIN)/python -m benchmarks

lock:
	$(UV) pip compile --quiet pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
