# Every gate has its own target; `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup demo test lint unit synth train bench render clean

## setup: .venv with every pinned dependency, the pinned CDK CLI, and Redis Stack's runtime libs
setup: $(VENV)/.installed node_modules/.installed .cache/libssl/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt lambda_src/requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements-dev.txt
	$(PIP) install -q --no-deps -e .
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

.cache/libssl/.installed: scripts/install-redis-stack-libs.sh
	bash scripts/install-redis-stack-libs.sh .cache/libssl
	mkdir -p .cache/libssl && touch $@

## demo: the whole pipeline on this machine (ARGS="--count 5000 --rate 500 --keep")
demo: setup
	$(PY) -m demo $(ARGS)

## test: lint + the whole pytest suite (Redis Stack, moto, synthesized templates, end-to-end)
test: setup lint unit

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

unit:
	$(VENV)/bin/pytest $(PYTEST_ARGS)

## synth: synthesize the CloudFormation template with the pinned CDK CLI
synth: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" npx cdk synth --quiet $(ARGS)

## train: train the local twins of the SageMaker models and write the model report
train: setup
	$(PY) -m training $(ARGS)

## bench: benchmarks; figures go to docs/performance.md
bench: setup
	$(PY) -m benchmarks $(ARGS)

## render: PNG charts of the dashboard's queries from a Redis with data (REDIS_URL)
render: setup
	$(PY) -m grafana.render $(ARGS)

clean:
	rm -rf cdk.out .pytest_cache .ruff_cache .demo
