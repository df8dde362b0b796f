# Observability for data-ingestion jobs. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# Tools (Kafka, VictoriaLogs, kube-apiserver, etcd, helm, CRDs, Grafana's grammar and schemas) live outside the
# repo so fresh clones reuse them.
export INGESTION_TOOLS_DIR ?= $(HOME)/.cache/ingestion-observability
# make demo ports (the seed's; LOGS_PORT is the log store's: VictoriaLogs, which takes Loki's pushes);
# override on the command line, e.g. `make demo KAFKA_PORT=19092`.
KAFKA_PORT ?= 9092
PROMETHEUS_PORT ?= 9090
# LOKI_PORT, LOGS_PORT's former name, still works for one release.
ifdef LOKI_PORT
$(warning LOKI_PORT is deprecated and will be removed: use LOGS_PORT)
LOGS_PORT ?= $(LOKI_PORT)
endif
LOGS_PORT ?= 9428
METRICS_PORT ?= 8000
ALERTMANAGER_PORT ?= 9093
INBOX_PORT ?= 9097
DEMO_DIR ?= .demo
DEMO_PORTS = --kafka-port $(KAFKA_PORT) --prometheus-port $(PROMETHEUS_PORT) --logs-port $(LOGS_PORT) \
	--metrics-port $(METRICS_PORT) --alertmanager-port $(ALERTMANAGER_PORT) --inbox-port $(INBOX_PORT)

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==25.3

.PHONY: install
install: $(BIN)/python ## Install the packages (pipeline, operator) and dev tools into .venv, dbt-ol into .venv/dbt
	$(BIN)/pip install --quiet -e '.[dev,intake-test]' -e k8s-operator
	test -x $(VENV)/dbt/bin/pip || $(PYTHON) -m venv $(VENV)/dbt
	$(VENV)/dbt/bin/pip install --quiet pip==25.3 && $(VENV)/dbt/bin/pip install --quiet '.[intake-dbt]'

.PHONY: tools
tools: ## Install Kafka, Prometheus, VictoriaLogs, Grafana's npm checkers (and the Kubernetes tools) into $(INGESTION_TOOLS_DIR)
	bash scripts/tools.sh

.PHONY: lint
LINTED := src tests k8s-operator bench devstack

lint: ## ruff and mypy
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy src k8s-operator/src tests bench devstack

.PHONY: generate
generate: ## Rewrite the generated files: rules, dashboards, operator examples, skaffold.yaml, the docs' settings tables
	$(BIN)/ingestion-render generate --out charts/ingestion-observability/files
	$(BIN)/python -m devstack.skaffold generate
	$(BIN)/python -m devstack.settingsdoc
	for f in k8s-operator/examples/*.yaml; do \
		$(BIN)/ingestion-operator render -f $$f > k8s-operator/examples/generated/$$(basename $$f) || exit 1; \
	done

.PHONY: test
test: tools lint ## Whole test suite: unit + integration on real services (what CI runs)
	$(BIN)/pytest

.PHONY: unit
unit: ## Unit tests only (no services)
	$(BIN)/pytest tests/unit

.PHONY: bench
bench: tools ## Throughput and memory against the physical limits on the real services: table + bench/results.json
	$(BIN)/python -m bench.run --events 200000 --memory-events 1000000 --operator-sources 200 \
		--out bench/results.json $(BENCH_ARGS)

.PHONY: demo up
demo: ## Kafka, VictoriaLogs, Prometheus, Alertmanager, consumer on this machine (installed if missing), sample ingested, summary
	$(BIN)/python -m devstack.demo up --dir $(DEMO_DIR) $(DEMO_PORTS)

up: demo ## The seed's name for make demo

.PHONY: demo-down
demo-down: ## Stop everything make demo started
	$(BIN)/python -m devstack.demo down --dir $(DEMO_DIR)

.PHONY: health
health: ## Check each endpoint of the running demo (Prometheus, VictoriaLogs, consumer, Kafka)
	$(BIN)/python -m devstack.demo health $(DEMO_PORTS)

.PHONY: test-stack
test-stack: ## The seed's step-by-step checks on the running demo: 72 series, 71/1, the alert rules, the notified alert, logs
	$(BIN)/python -m devstack.demo check --dir $(DEMO_DIR) $(DEMO_PORTS)

.PHONY: open-grafana open-kafka-ui
open-grafana: ## Grafana is not local: port-forward it from the kind cluster (or print how)
	@$(BIN)/python -m devstack.demo $@ $(DEMO_PORTS) --kube-context $(KUBE_CONTEXT) --namespace $(K8S_NAMESPACE) \
		--release $(RELEASE)

open-kafka-ui: ## Kafka UI is not local: port-forward it from the kind cluster (or print how)
	@$(BIN)/python -m devstack.demo $@ $(DEMO_PORTS) --kube-context $(KUBE_CONTEXT) --namespace $(K8S_NAMESPACE) \
		--release $(RELEASE)

.PHONY: ingest
ingest: ## Publish the sample logs.json again (rebased to now) to the running demo
	$(BIN)/ingestion-producer --bootstrap-servers 127.0.0.1:$(KAFKA_PORT) --rebase-time

.PHONY: metrics
metrics: ## Show the consumer's ingestion_* metrics
	@curl -fsS http://127.0.0.1:$(METRICS_PORT)/metrics | grep '^ingestion_' | head -40

# --- Kubernetes on kind (needs Docker, kind, kubectl; skaffold and helm come from `make tools`) ---
KIND_CLUSTER ?= ingestion-observability
K8S_NAMESPACE ?= ingestion
RELEASE ?= ingestion-observability
CHART := charts/ingestion-observability
KUBE_CONTEXT := kind-$(KIND_CLUSTER)
K8S_PATH := $(INGESTION_TOOLS_DIR)/bin:$(PATH)
IMAGE_TAG ?= dev

.PHONY: kind-up
kind-up: ## Create the local kind cluster (kind/cluster.yaml)
	@kind get clusters | grep -qx '$(KIND_CLUSTER)' || kind create cluster --name $(KIND_CLUSTER) --config kind/cluster.yaml

.PHONY: chart-deps
chart-deps: ## Fetch the chart's dependencies pinned in Chart.lock
	PATH="$(K8S_PATH)" helm repo add kafbat-ui https://kafbat.github.io/helm-charts --force-update >/dev/null
	PATH="$(K8S_PATH)" helm dependency build $(CHART)

.PHONY: dev-kind
dev-kind: chart-deps ## skaffold dev on kind: build with Docker, load, deploy, port-forward, rebuild on change
	PATH="$(K8S_PATH)" skaffold dev --kube-context $(KUBE_CONTEXT) --port-forward=user

# The components, one image each: the targets of images/Dockerfile (python -m devstack.components).
COMPONENTS = $(shell $(PYTHON) -m devstack.components)

.PHONY: images
images: ## Build the image of each component (a target of images/Dockerfile) with Docker (tag $(IMAGE_TAG))
	for c in $(COMPONENTS); do \
		docker build -f images/Dockerfile --target $$c -t ingestion-observability/$$c:$(IMAGE_TAG) . || exit 1; \
	done

.PHONY: deploy
deploy: chart-deps images ## Load the images into kind, helm upgrade --install with values-kind.yaml
	kind load docker-image --name $(KIND_CLUSTER) $(foreach c,$(COMPONENTS),ingestion-observability/$(c):$(IMAGE_TAG))
	PATH="$(K8S_PATH)" helm upgrade --install $(RELEASE) $(CHART) --kube-context $(KUBE_CONTEXT) \
		--namespace $(K8S_NAMESPACE) --create-namespace -f $(CHART)/values-kind.yaml \
		$(foreach c,$(COMPONENTS),--set $(c).image.tag=$(IMAGE_TAG)) \
		--wait --timeout 15m

.PHONY: undeploy
undeploy: ## Uninstall the release
	PATH="$(K8S_PATH)" helm uninstall $(RELEASE) --kube-context $(KUBE_CONTEXT) --namespace $(K8S_NAMESPACE) --wait

.PHONY: sources
sources: ## Create the example IngestionSources
	kubectl --context $(KUBE_CONTEXT) --namespace $(K8S_NAMESPACE) apply -f k8s-operator/examples/

.PHONY: port-forward
port-forward: ## Grafana :3000, Prometheus :9090, consumer :8000 (Ctrl-C stops)
	trap 'kill 0' EXIT; \
	kubectl --context $(KUBE_CONTEXT) -n $(K8S_NAMESPACE) port-forward svc/$(RELEASE)-grafana 3000:80 & \
	kubectl --context $(KUBE_CONTEXT) -n $(K8S_NAMESPACE) port-forward svc/prometheus-operated 9090:9090 & \
	kubectl --context $(KUBE_CONTEXT) -n $(K8S_NAMESPACE) port-forward svc/$(RELEASE)-consumer 8000:8000 & \
	wait

.PHONY: kind-down
kind-down: ## Delete the kind cluster
	kind delete cluster --name $(KIND_CLUSTER)

# --- A real Kubernetes node on this machine (no Docker: containerd, kubelet ...; root; `make tools` builds it) ---
CLUSTER_DIR ?= $(INGESTION_TOOLS_DIR)/cluster

.PHONY: cluster-up cluster-down
cluster-up: ## Local node + prometheus-operator, VictoriaLogs, host Kafka, the images built in; prints helm install
	PATH="$(K8S_PATH)" $(BIN)/python -m devstack.cluster up --dir $(CLUSTER_DIR)

cluster-down: ## Stop everything cluster-up started and restore the machine (iptables, cni0, mounts, sysctls)
	$(BIN)/python -m devstack.cluster down --dir $(CLUSTER_DIR)

.PHONY: dev
dev: ## skaffold dev on the node of cluster-up: buildah builds, helm deploys, each changed image rebuilt
	$(BIN)/python -m devstack.skaffold node --dir $(CLUSTER_DIR) dev --port-forward=user

.PHONY: clean
clean: demo-down ## Stop the demo and remove local state (.demo, caches); the tools cache stays
	rm -rf $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
