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

# The same demo company written as its vendors' exports (Salesforce, Intercom, Qualtrics,
# Stripe) with the config that reads them, in a warehouse of its own (a warehouse remembers
# the files of its landing zone).
VENDOR_DATA ?= $(DATA)/vendor
VENDOR_LANDING ?= $(VENDOR_DATA)/landing

export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: help setup run demo-data run-vendor demo-data-vendor test lint dev check-defs clean bench sql notebook notebook-setup

help:
	@echo "make run    set up, generate the demo landing zone, run the nightly job on it"
	@echo "make run-vendor  the same, on the demo written as vendors' exports (data/vendor/)"
	@echo "make test   set up, run the test suite"
	@echo "make dev    the Dagster UI on the same definitions"
	@echo "make sql    the DuckDB shell on the published warehouse, read-only"
	@echo "make notebook  JupyterLab on notebooks/ (installed on first use)"

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

demo-data-vendor: $(STAMP)
	$(BIN)/cxalign demo-data --out $(VENDOR_LANDING) --accounts $(DEMO_ACCOUNTS) --months $(DEMO_MONTHS) --seed $(DEMO_SEED) --vendor-exports

run-vendor: $(STAMP) $(DAGSTER_HOME)/dagster.yaml demo-data-vendor
	$(BIN)/cxalign run --landing $(VENDOR_LANDING) --config $(VENDOR_LANDING)/cxalign.vendor.yml --warehouse $(VENDOR_DATA)/warehouse.duckdb --out $(VENDOR_DATA)/scorecards --as-of $(DEMO_AS_OF)

test: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/dg check defs
	$(BIN)/ruff check pipelines models tests bench notebooks
	$(BIN)/python -m pytest

check-defs: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/dg check defs

lint: $(STAMP)
	$(BIN)/ruff check pipelines models tests bench notebooks

# Started in $(DAGSTER_HOME) on the workspace file pipelines/dev_instance.py writes there:
# from the project folder, dg warns that its dagster.yaml is not the instance's.
dev: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	@$(BIN)/python -m pipelines.dev_instance $(DAGSTER_HOME)
	cd $(DAGSTER_HOME) && DAGSTER_HOME="$$(pwd -P)" "$(abspath $(BIN))/dg" dev -w workspace.yaml

# The analysts' DuckDB shell (the pipeline's DuckDB version) on the published warehouse,
# read-only: it never blocks the nightly run, which publishes a new version beside it.
sql: $(STAMP)
	@test -e $(WAREHOUSE) || { echo "no warehouse at $(WAREHOUSE) yet: run 'make run' first"; exit 1; }
	$(BIN)/duckdb -readonly $(WAREHOUSE)

# JupyterLab and jupytext, installed into .venv on first use (the `notebook` extra); the
# notebooks/*.py files open as notebooks (jupytext's viewer is the default for Python files
# in this Lab), and read the warehouse at CXALIGN_WAREHOUSE.
NOTEBOOK_STAMP := $(VENV)/.notebook-installed
LAB_OVERRIDES  := $(VENV)/share/jupyter/lab/settings/overrides.json

$(NOTEBOOK_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[dev,notebook]"
	@mkdir -p $(dir $(LAB_OVERRIDES))
	@echo '{"@jupyterlab/docmanager-extension:plugin": {"defaultViewers": {"python": "Jupytext Notebook"}}, "@jupyterlab/apputils-extension:notification": {"fetchNews": "false"}}' > $(LAB_OVERRIDES)
	@touch $@

notebook-setup: $(NOTEBOOK_STAMP)

notebook: $(NOTEBOOK_STAMP)
	@test -e $(WAREHOUSE) || { echo "no warehouse at $(WAREHOUSE) yet: run 'make run' first"; exit 1; }
	CXALIGN_WAREHOUSE="$(abspath $(WAREHOUSE))" $(BIN)/jupyter lab --ServerApp.root_dir=notebooks --LabApp.default_url=/lab/tree/analyst_tour.py $(LAB_ARGS)

# As root (a container), JupyterLab starts only when told to.
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)

bench: $(STAMP)
	$(BIN)/python bench/run_bench.py

clean:
	rm -rf $(DATA) $(DAGSTER_HOME) .pytest_cache
