# Observability for data-ingestion jobs. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# Tools (Kafka, Loki, kube-apiserver, etcd, helm, CRDs) live outside the repo so fresh clones reuse them.
export INGESTION_TOOLS_DIR ?= $(HOME)/.cache/ingestion-observability
# make demo ports (the seed's); override on the command line, e.g. `make demo KAFKA_PORT=19092`.
KAFKA_PORT ?= 9092
PROMETHEUS_PORT ?= 9090
LOKI_PORT ?= 3100
METRICS_PORT ?= 8000
DEMO_DIR ?= .demo

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==25.3

.PHONY: install
install: $(BIN)/python ## Install the packages and dev tools into .venv
	$(BIN)/pip install --quiet -e '.[dev]'

.PHONY: tools
tools: ## Install Kafka, Prometheus, Loki (and the Kubernetes tools) into $(INGESTION_TOOLS_DIR)
	bash scripts/tools.sh

.PHONY: lint
lint: ## ruff and mypy
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy src tests

.PHONY: generate
generate: ## Rewrite the chart's generated rules and dashboard (a test fails when they are stale)
	$(BIN)/ingestion-render generate --out charts/ingestion-observability/files

.PHONY: test
test: tools lint ## Whole test suite: unit + integration on real services (what CI runs)
	$(BIN)/pytest

.PHONY: unit
unit: ## Unit tests only (no services)
	$(BIN)/pytest tests/unit

.PHONY: demo
demo: ## Start Kafka, Prometheus, Loki and the consumer locally, ingest the sample, print a summary
	$(BIN)/ingestion-demo up --dir $(DEMO_DIR) --kafka-port $(KAFKA_PORT) --prometheus-port $(PROMETHEUS_PORT) \
		--loki-port $(LOKI_PORT) --metrics-port $(METRICS_PORT)

.PHONY: demo-down
demo-down: ## Stop everything make demo started
	$(BIN)/ingestion-demo down --dir $(DEMO_DIR)

.PHONY: health
health: ## Check each endpoint of the running demo (Prometheus, Loki, consumer, Kafka)
	$(BIN)/ingestion-demo health --kafka-port $(KAFKA_PORT) --prometheus-port $(PROMETHEUS_PORT) \
		--loki-port $(LOKI_PORT) --metrics-port $(METRICS_PORT)

.PHONY: ingest
ingest: ## Publish the sample logs.json again (rebased to now) to the running demo
	$(BIN)/ingestion-producer --bootstrap-servers 127.0.0.1:$(KAFKA_PORT) --rebase-time

.PHONY: metrics
metrics: ## Show the consumer's ingestion_* metrics
	@curl -fsS http://127.0.0.1:$(METRICS_PORT)/metrics | grep '^ingestion_' | head -40

.PHONY: clean
clean: demo-down ## Stop the demo and remove local state (.demo, caches); the tools cache stays
	rm -rf $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
