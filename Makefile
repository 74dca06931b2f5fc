# LLM gateway stack: LiteLLM -> OpenTelemetry Collector -> ClickHouse (optional Langfuse).
# `make help` lists every target. The compose project reads .env (COMPOSE_FILE included).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
COMPOSE ?= docker compose
# Targets that take arguments read them from ARGS (make report ARGS='--since 7d').
# Kept as aliases: `make logs s=SERVICE` (the hints `make verify` prints) and PYTEST_ARGS.
PYTEST_ARGS ?=
# Seconds `make up` waits for every service to turn healthy (the first build takes longer).
UP_TIMEOUT ?= 300
# The host scripts use Python 3.11's standard library (datetime.UTC, tomllib): say so up front
# instead of failing in an import.
NEED_PYTHON = @$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	echo "make $@: the scripts need Python 3.11 or newer as '$(PYTHON)' (found: $$($(PYTHON) --version 2>&1 || echo none))." >&2; \
	echo "  Install it, or name one: make $@ PYTHON=python3.11" >&2; exit 1; }

.PHONY: help init preflight up down logs ps verify schema report forget agentops-token bench lint check collector engine venv test clean

help: ## List every target with one line each
	@echo "Arguments go in ARGS, quoted when more than one: make report ARGS='--since 7d --by app'"
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

init: ## Write .env from .env.example with generated secrets (never overwrites an existing .env)
	$(NEED_PYTHON)
	@$(PYTHON) -m scripts.envfile.init

$(VENV)/.scripts-stamp: scripts/requirements.txt
	$(NEED_PYTHON)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r scripts/requirements.txt
	@touch $@

$(VENV)/.dev-stamp: requirements-dev.txt scripts/requirements.txt scripts/native_stack/chdb-requirements.txt litellm/requirements.txt litellm/constraints.txt
	$(NEED_PYTHON)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	@touch $@ $(VENV)/.scripts-stamp

venv: $(VENV)/.dev-stamp ## Create .venv with the pinned gateway, script and test packages

preflight: $(VENV)/.scripts-stamp ## Check .env and that the host ports are free (run by `make up`)
	@$(PY) -m scripts.verify --preflight

up: ## Start the stack on a Docker host: init .env if missing, preflight, build, wait healthy
	@test -f .env || $(MAKE) --no-print-directory init
	@$(MAKE) --no-print-directory preflight
	@# A collector probe left unhealthy by an earlier failed start would fail `--wait` at once,
	@# before it sees the collector the user just fixed: start it afresh.
	@if [ "$$($(COMPOSE) ps otel-collector-health --format '{{.Health}}' 2>/dev/null)" = unhealthy ]; then \
		$(COMPOSE) restart otel-collector-health >/dev/null; fi
	$(COMPOSE) up -d --build --wait --wait-timeout $(UP_TIMEOUT)
	@$(PY) -m scripts.endpoints

down: ## Stop the stack (data volumes are kept; `docker compose down -v` drops them)
	$(COMPOSE) down

logs: ## Follow logs: ARGS=otel-collector (or s=otel-collector) for one service, none for all
	$(COMPOSE) logs -f --tail=200 $(ARGS) $(s)

ps: ## Show the stack's containers and their health
	$(COMPOSE) ps

verify: $(VENV)/.scripts-stamp ## Follow one trace through every hop, doctor-style (--json: ARGS=--json)
	@$(PY) -m scripts.verify $(ARGS)

schema: $(VENV)/.scripts-stamp ## Re-apply clickhouse/initdb (bundled, external or cluster form; idempotent)
	@$(PY) -m scripts.clickhouse_schema.apply

report: $(VENV)/.scripts-stamp ## Tokens, cost, latency by model from ClickHouse (ARGS='--since 7d --by app')
	@$(PY) -m scripts.report $(ARGS)

# The ids reach the script through the environment, never through a shell command line.
forget: export FORGET_USER = $(user)
forget: export FORGET_CONVERSATION = $(conversation)
forget: export FORGET_APP = $(app)
forget: $(VENV)/.scripts-stamp ## Delete one end user's, conversation's or app's data: make forget user=ID (conversation=, app=)
	@$(PY) -m scripts.forget $(ARGS)

agentops-token: $(VENV)/.scripts-stamp ## Mint the AgentOps overlay's token from .env (ARGS='--days 90'; show: ARGS=show)
	@$(PY) -m scripts.agentops_token $(if $(ARGS),$(if $(filter show,$(ARGS)),$(ARGS),mint $(ARGS)),mint)

bench: venv collector ## Benchmark telemetry overhead on the native harness (prints a table + JSON)
	@$(PY) -m scripts.bench $(ARGS)

collector: ## Build the collector natively from otel-collector/builder-config.yaml (cached)
	@scripts/build-collector.sh

lint: venv ## ruff (lint + format), mypy (pyproject.toml), import layers, hadolint on Dockerfiles
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -p no:cacheprovider -m lint tests/verify/test_layers.py tests/compose/test_compose.py

engine: collector ## Docker engine + Compose v2 + stand-in images for the Docker tests (root installs them)
	@tests/docker/engine.sh

check: venv collector lint ## The inner loop: lint, then every test that starts no stack (ARGS=--lf: pytest's)
	$(PY) -m pytest -q -m "not stack and not lint" $(ARGS)

test: venv collector lint engine ## Install what is needed, then run every test (ARGS: pytest's)
	$(PY) -m pytest -m "not lint" $(ARGS) $(PYTEST_ARGS)

clean: ## Remove the venv, the collector build and caches in the work tree
	rm -rf $(VENV) otel-collector/_build .pytest_cache .ruff_cache .mypy_cache
