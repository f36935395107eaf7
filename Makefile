# modq: the only two commands a new user types are `make run` and `make test`.
# Both create the virtual environment and install the project when needed.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
MODQ   := $(VENV)/bin/modq
STAMP  := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help run test browser-deps lint fmt kafka-up kafka-up-3 kafka-down kafka-wipe chaos bench schemas clean install

help: ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "modq needs Python 3.11 or newer (found " + sys.version.split()[0] + ")")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,lint]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install modq with its test and lint tools

run: $(STAMP) ## run the whole pipeline in the foreground (Ctrl-C drains and stops it)
	$(MODQ) run

test: $(STAMP) browser-deps ## the whole test suite against a real Apache Kafka broker
	$(PY) -m pytest -m "not slow"

browser-deps: ## install Debian's chromium for the browser tests when /usr/bin/chromium is missing
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)

BENCH_STAMP := $(VENV)/.bench-stamp

$(BENCH_STAMP): $(STAMP)
	@$(PY) -m pip install --quiet --disable-pip-version-check -e '.[bench]'
	@touch $(BENCH_STAMP)

lint: $(BENCH_STAMP) ## ruff, ruff format --check, mypy --strict (bench/ included, so matplotlib too)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

fmt: $(STAMP) ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

kafka-up: $(STAMP) ## start (or reuse) the local broker on 127.0.0.1:9092
	$(MODQ) kafka up

kafka-up-3: $(STAMP) ## start a local three-broker cluster (replication factor 3)
	$(MODQ) kafka up --three

kafka-down: $(STAMP) ## stop every local broker modq started
	$(MODQ) kafka down --all

kafka-wipe: $(STAMP) ## stop the local brokers and delete their data and logs
	$(MODQ) kafka down --all --wipe

schemas: $(STAMP) ## regenerate docs/schemas and docs/asyncapi.json from the models
	$(MODQ) schemas export

chaos: $(STAMP) ## the long fault-injection scenarios (three brokers, minutes)
	$(PY) -m pytest -m slow tests/chaos -p no:randomly

bench: $(BENCH_STAMP) ## run the benchmarks and rewrite docs/benchmarks.md
	$(PY) -m bench

clean: ## remove the virtual environment and local broker state
	-$(MODQ) kafka down --all --wipe
	rm -rf $(VENV) .modq .pytest_cache .mypy_cache .ruff_cache
