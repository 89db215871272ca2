# cxalign — two commands for newcomers: `make run` and `make test`.
# Both create .venv on first use and install the pinned dependencies.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || echo python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

DATA      ?= data
LANDING   ?= $(DATA)/landing
WAREHOUSE ?= $(DATA)/warehouse.duckdb
OUT       ?= $(DATA)/scorecards
DEMO_ACCOUNTS ?= 12000
DEMO_MONTHS   ?= 24
DEMO_SEED     ?= 7
# The demo data ends on 2026-10-31, its last complete day: the run is as of that day.
DEMO_AS_OF    ?= 2026-10-31

export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: help setup run demo-data test lint dev check-defs clean bench

help:
	@echo "make run    set up, generate the demo landing zone, run the nightly job on it"
	@echo "make test   set up, run the test suite"
	@echo "make dev    the Dagster UI on the same definitions"

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c "import sys; assert sys.version_info[:2] == (3, 11), sys.version" || { echo "cxalign needs Python 3.11 (set PYTHON=...)"; exit 1; }
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	@cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

demo-data: $(STAMP)
	$(BIN)/cxalign demo-data --out $(LANDING) --accounts $(DEMO_ACCOUNTS) --months $(DEMO_MONTHS) --seed $(DEMO_SEED)

run: $(STAMP) $(DAGSTER_HOME)/dagster.yaml demo-data
	$(BIN)/cxalign run --landing $(LANDING) --warehouse $(WAREHOUSE) --out $(OUT) --as-of $(DEMO_AS_OF)

test: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/dg check defs
	$(BIN)/ruff check pipelines models tests bench notebooks
	$(BIN)/python -m pytest

check-defs: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/dg check defs

lint: $(STAMP)
	$(BIN)/ruff check pipelines models tests bench notebooks

dev: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev

bench: $(STAMP)
	$(BIN)/python bench/run_bench.py

clean:
	rm -rf $(DATA) $(DAGSTER_HOME) .pytest_cache
