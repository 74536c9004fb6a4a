# rbm-analytics: every target does its own set-up on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
# local-bigquery needs Python >= 3.13: pyenv's, or one on PATH.
PY313 ?= $(firstword $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.13*/bin/python3) $(shell command -v python3.13 2>/dev/null))
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: help install test lint typecheck unit integration e2e run bench soak deploy destroy lock \
        deploy-secrets .terraform-ready clean clean-data generate browser

help:  ## List the targets
	@grep -E '^[a-z.-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

# Exactly the versions in requirements.lock (the deploy's pins come from the
# same file), then this project itself without re-resolving anything.
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

# The BigQuery emulator lives in its own Python 3.13 virtualenv. DuckDB 2.x
# downloads extensions at run time, which fails offline: pin 1.5.5 and
# install its extensions (icu, ducklake, spatial: local-bigquery loads all three)
# from PyPI wheels.
.venv-bq/.installed:
	@test -n "$(PY313)" || { echo "Python 3.13 is needed for the BigQuery emulator: pyenv install 3.13" >&2; exit 1; }
	$(PY313) -m venv .venv-bq
	.venv-bq/bin/pip install -q local-bigquery==0.4.0
	.venv-bq/bin/pip install -q duckdb==1.5.5 duckdb-extensions duckdb-extension-icu==1.5.5 duckdb-extension-ducklake==1.5.5 duckdb-extension-spatial==1.5.5
	.venv-bq/bin/python -c "from duckdb_extensions import import_extension as i; i('icu'); i('ducklake'); i('spatial')"
	touch $@

# checkov pins packaging<24, which google-cloud-bigquery cannot use: own venv.
.venv-checkov/.installed:
	$(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/pip install -q 'checkov>=3.3.30'
	touch $@

# Debian's Chromium for the browser test (test tools cannot download browsers here).
/usr/bin/chromium:
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi

install: $(VENV)/.installed .venv-bq/.installed .venv-checkov/.installed  ## Create the virtualenvs

browser: /usr/bin/chromium

generate: $(VENV)/.installed  ## Regenerate functions/requirements.txt and the schema copies
	$(BIN)/python scripts/generate.py

# pip-tools resolves pyproject.toml's ranges into exact versions; without
# UPGRADE=1 it keeps every pin that still fits.
lock: $(VENV)/.installed  ## Re-resolve dependencies into requirements.lock (UPGRADE=1 for newest), then regenerate
	$(BIN)/pip install -q pip-tools
	$(BIN)/pip-compile --quiet --strip-extras --extra dev --extra test --no-emit-index-url \
		--no-emit-find-links $(if $(filter 1,$(UPGRADE)),--upgrade,) -o requirements.lock pyproject.toml
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/python scripts/generate.py

lint: $(VENV)/.installed  ## ruff, mypy (strict on functions/), requirements in sync
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python scripts/generate.py --check

test: install browser lint  ## Lint, type-check, then the whole suite on the real emulators
	$(BIN)/pytest $(PYTEST_ARGS)

unit: $(VENV)/.installed  ## Pure-logic tests only (no emulators)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

e2e: install  ## The local stack end to end ('rbm-analytics serve' as a subprocess)
	$(BIN)/pytest tests/e2e $(PYTEST_ARGS)

run: install  ## The whole system locally: emulators, three functions, scheduler (DEMO=0 skips demo data)
	$(BIN)/rbm-analytics serve $(if $(filter 0,$(DEMO)),--no-demo,)

bench: install  ## Benchmarks against same-run baselines (JSON lines)
	$(BIN)/python -m bench

soak: install  ## The long variants and measured bounds (reliability suite, export memory)
	$(BIN)/pytest --soak $(PYTEST_ARGS) tests/reliability tests/integration/export/test_export_memory.py

TERRAFORM ?= terraform
TF := $(TERRAFORM) -chdir=infra

.terraform-ready:
	@command -v $(TERRAFORM) >/dev/null || { echo "terraform >= 1.5 is not installed (README \"Deploy\")" >&2; exit 1; }
	@test -f infra/terraform.tfvars || { echo "infra/terraform.tfvars is missing: cp infra/terraform.tfvars.example infra/terraform.tfvars, then set project_id" >&2; exit 1; }
	@$(PYTHON) scripts/generate.py --check >/dev/null || { echo "generated files are stale: run 'make generate'" >&2; exit 1; }
	$(TF) init -input=false

deploy-secrets: .terraform-ready  ## First deploy, step 1: the APIs and the empty secrets (then add their values)
	$(TF) apply -target=google_secret_manager_secret.secret

deploy: .terraform-ready  ## terraform apply in infra/: functions, storage, schedule, alerts (README "Deploy")
	$(TF) apply

destroy: .terraform-ready  ## terraform destroy in infra/ (set deletion_protection = false and deploy first)
	$(TF) destroy

clean-data:  ## Wipe the local stack's persisted data
	rm -rf .data

clean:  ## Remove virtualenvs and caches
	rm -rf $(VENV) .venv-bq .venv-checkov .pytest_cache .mypy_cache .ruff_cache
