# Every gate has its own target; `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# jsii (the CDK's Python-to-Node bridge) prints an 11-line banner on every run under a Node release it
# no longer supports (Node 20 since 2026-10-30). Its runtime's checkNode() reads this variable: a comma
# list of the major versions to stay quiet about. (The ..._DEPRECATED_... one covers only releases still
# in jsii's extended support.) Supported: Node 22 and 24; see README "Deploy to AWS".
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION ?= 20
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
# The CDK CLI's bundled AWS SDK warns on Node < 22 when it creates a client (not on every run).
export AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED := true
export PYTHONDONTWRITEBYTECODE := 1
# pip prints every package it collects and installs (no -q): a first setup takes minutes, not silence.
PIP_INSTALL := $(PIP) install --disable-pip-version-check --progress-bar on

.DEFAULT_GOAL := help
.PHONY: help setup setup-demo demo test lint unit synth train bench render clean

## help: this list (targets and what they do)
help:
	@sed -n 's/^## \([a-z-]*\): /  make \1\t/p' $(MAKEFILE_LIST) | expand -t 20

## setup: everything `make test` needs: .venv with every pinned dependency, the CDK CLI, Redis Stack's libs
setup: $(VENV)/.installed node_modules/.installed .cache/libssl/.installed

## setup-demo: only what demo, train, render and bench need (requirements-demo.txt; no CDK, no Node)
setup-demo: $(VENV)/.installed-demo .cache/libssl/.installed

$(PY):
	@echo "setup: creating the virtualenv $(VENV)"
	python3 -m venv $(VENV)
	$(PIP_INSTALL) pip==26.3

$(VENV)/.installed-demo: requirements-demo.txt lambda_src/requirements.txt constraints.txt pyproject.toml | $(PY)
	@echo "setup: installing the demo's pinned packages (requirements-demo.txt: ~1 GB, 1.5 min of CPU; longer on a busy machine)"
	$(PIP_INSTALL) -c constraints.txt -r requirements-demo.txt
	@echo "setup: installing this project (editable)"
	$(PIP_INSTALL) --no-deps -e .
	touch $@

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-demo.txt lambda_src/requirements.txt constraints.txt pyproject.toml | $(PY)
	@echo "setup: installing every pinned package (requirements-dev.txt: the demo's + CDK, cfn-lint, pytest, Jupyter)"
	$(PIP_INSTALL) -c constraints.txt -r requirements-dev.txt
	@echo "setup: installing this project (editable)"
	$(PIP_INSTALL) --no-deps -e .
	touch $@ $(VENV)/.installed-demo

node_modules/.installed: package.json package-lock.json
	@echo "setup: installing the pinned CDK CLI (npm ci, package-lock.json)"
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

.cache/libssl/.installed: scripts/install-redis-stack-libs.sh
	@echo "setup: Redis Stack's runtime library (libssl 1.1, fetched only where the system lacks it)"
	bash scripts/install-redis-stack-libs.sh .cache/libssl
	mkdir -p .cache/libssl && touch $@

## demo: the whole pipeline on this machine (ARGS="--count 5000 --rate 500 --keep")
demo: setup-demo
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

## train: the model report on the Handbook's protocol, seeds 42, 7, 11 (~15–20 min on 2 cores; the twin of the deploy-time training: python -m training --source simulated)
train: setup-demo
	$(PY) -m training --report docs/model-report --also-seeds 7 11 $(ARGS)

## bench: benchmarks; figures go to docs/performance.md
bench: setup-demo
	$(PY) -m benchmarks $(ARGS)

## render: PNG charts of the dashboard's queries from a Redis with data (REDIS_URL)
render: setup-demo
	$(PY) -m grafana.render $(ARGS)

## clean: remove generated files (cdk.out, .demo, caches); keeps .venv, node_modules and artifacts/models
clean:
	rm -rf cdk.out .pytest_cache .ruff_cache .demo
