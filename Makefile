# vidconv — run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} \
	  /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2 } \
	  /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

.PHONY: install
install: $(STAMP) ## Create .venv (if missing) and install vidconv with its dev tools.

.PHONY: run
run: $(STAMP) ## Start vidconv on http://127.0.0.1:5000 (SQLite and files under ./var).
	$(BIN)/vidconv serve

.PHONY: test
test: $(STAMP) ## Run the test suite (starts its own PostgreSQL and S3 servers).
	$(BIN)/python -m pytest $(PYTEST_ARGS)

.PHONY: lint
lint: $(STAMP) ## ruff and mypy.
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

.PHONY: bench
bench: $(STAMP) ## Run the benchmarks in bench/ (slow; prints ratios against baselines).
	$(BIN)/python bench/transcode.py

.PHONY: clean
clean: ## Remove .venv and ./var.
	rm -rf $(VENV) var
