# DatatoRAG: `make run` runs the product, `make test` passes the tests. `make help` lists the rest.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# This machine keeps a CPU build of torch on disk; plain pip finds it there (uv and poetry do not).
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.DEFAULT_GOAL := help
.PHONY: help install system-packages run test lint typecheck unit bench eval clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(BIN)/datatorag: pyproject.toml
	command -v c++ >/dev/null || scripts/system-packages.sh  # hnswlib compiles from its sdist
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(FIND_LINKS) -e '.[dev]'
	touch $@

install: $(BIN)/datatorag ## Create .venv with everything, including the `datatorag` command (idempotent)

# checkov pins boto3 1.35 (ours is newer): the security audit has its own venv, from
# pyproject.toml's `audit` dependency group.
AUDIT := .venv-audit/bin
$(AUDIT)/checkov: pyproject.toml
	test -x $(AUDIT)/python || $(PYTHON) -m venv .venv-audit
	$(AUDIT)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(AUDIT)/python -m pip install --quiet --disable-pip-version-check --group audit
	touch $@

system-packages: ## Install the Debian packages tests, benchmarks and OCR use (sshd, wrk, chromium, tesseract), if missing
	bash scripts/system-packages.sh

run: install system-packages ## Start the whole stack on the embedded default and ingest examples/ (Ctrl-C stops)
	$(BIN)/datatorag up --ingest examples/hr-policies --tenant demo

.PHONY: run-aws-local test-aws-local
run-aws-local: install ## Like `run`, on the AWS adapters: S3 and SQS on moto, SageMaker API locally
	$(BIN)/python scripts/aws_local.py

lint: install $(AUDIT)/checkov ## ruff, mypy, the import contracts, actionlint, and the security audit (checkov)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/actionlint
	$(AUDIT)/checkov --config-file .checkov.yaml --quiet $(addprefix -f ,Dockerfile $(wildcard infra/cloudformation/*.yaml))

test: install system-packages lint ## Lint, type-check and run the whole test suite
	$(BIN)/pytest -q

unit: install ## Only the fast tests
	$(BIN)/pytest -q -m unit

test-aws-local: install ## Start moto and the stack in AWS mode, ingest, query; exit 0 if answered
	$(BIN)/python scripts/aws_local.py --check

bench: install system-packages ## All benchmarks (raw results in out/bench/; recorded in docs/benchmarks.md)
	$(BIN)/python bench/run_all.py

eval: install ## Retrieval and answer evaluation on ../shared/corpus -> docs/retrieval-eval.* (EVAL_ARGS="--generator openai ...")
	$(BIN)/python bench/retrieval_eval.py $(EVAL_ARGS)

clean: ## Remove the local data directory and caches (not .venv)
	rm -rf .datatorag .pytest_cache .mypy_cache .ruff_cache
