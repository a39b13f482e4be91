#!/bin/bash
# e2e/run.sh: run Legate's end-to-end tests against a real Kubernetes API server (`make e2e`).
#
#   KUBECONFIG set   use that cluster as it is (the tests create and delete their own namespaces
#                    and server-side apply the CRDs from config/crd/bases);
#   KUBECONFIG unset start a fresh local control plane with e2e/kube-local (etcd + kube-apiserver +
#                    kube-controller-manager v1.20.2 on 127.0.0.1), run the tests, and always stop it.
#
# How the e2e tests stay out of `make test` (`cargo test --workspace`): every test in e2e/tests/ is
# `#[ignore]`d with the reason "needs a Kubernetes API server: run e2e/run.sh". This script runs
# them with `--include-ignored`, one at a time (they share one cluster). It selects the whole
# workspace and picks its targets with --test, as `make test` does, so Cargo resolves the same
# dependency features and reuses that build instead of compiling the graph again.
#
# Extra arguments go to the test harness, e.g. `e2e/run.sh rejected` runs only tests matching it.
set -euo pipefail
cd "$(dirname "$0")/.."

started=0
stop_cluster() {
  local rc=$?
  if [ "$started" = 1 ]; then
    [ "$rc" = 0 ] || echo "e2e: failed (exit $rc); server logs: ${KUBE_LOCAL_HOME:-$HOME/.cache/kube-local}/run/*.log" >&2
    e2e/kube-local down || true
  fi
  exit "$rc"
}
trap stop_cluster EXIT
trap 'exit 130' INT TERM

# Compile first: a build error should not cost a cluster start. No kubelet runs pods here, so
# the tests run what pods would as local processes: the operator (tests/operator.rs,
# tests/gateway.rs, ...) and a gateway pod's agent and Envoy (tests/gateway.rs, outage.rs,
# endpoints.rs). The binaries target/debug/legate-operator and legate-agent come from the build
# of their crates' integration tests; Envoy is $LEGATE_ENVOY or .tools/bin/envoy (`make envoy`).
# tests/endpoints.rs runs its upstreams in a network namespace (root and iproute2's `ip`).
cargo test --workspace --no-run
if [ -z "${LEGATE_ENVOY:-}" ] && [ ! -x .tools/bin/envoy ]; then
  echo "e2e: .tools/bin/envoy is missing: run \`make envoy\` (or set LEGATE_ENVOY)" >&2
  exit 1
fi
targets=()
for t in e2e/tests/*.rs; do
  # node.rs needs a node and Legate's images: e2e/node.sh runs it.
  [ "$(basename "$t")" = node.rs ] && continue
  targets+=(--test "$(basename "$t" .rs)")
done

# The CRDs the tests install; generate them if this checkout has none yet.
if ! ls config/crd/bases/*.yaml >/dev/null 2>&1; then
  echo "e2e: config/crd/bases is empty; generating the CRDs with crdgen"
  mkdir -p config/crd/bases
  cargo run -q -p legate-crds --bin crdgen -- config/crd
fi

if [ -z "${KUBECONFIG:-}" ]; then
  started=1
  out=$(e2e/kube-local up --fresh)
  echo "$out"
  kc=$(printf '%s\n' "$out" | sed -n 's/.*export KUBECONFIG=\(.*\)$/\1/p' | tail -n 1)
  [ -n "$kc" ] || { echo "e2e: kube-local printed no KUBECONFIG" >&2; exit 1; }
  export KUBECONFIG=$kc
  # Tests that stop and restart the API server (an outage) may do so only on a cluster of their own.
  export LEGATE_E2E_KUBE_LOCAL=1
  # kube-local's kubectl (Debian's, or the one on PATH) for the tests that shell out to kubectl
  export PATH=${KUBE_LOCAL_HOME:-$HOME/.cache/kube-local}/bin:$PATH
else
  echo "e2e: using the cluster in KUBECONFIG=$KUBECONFIG"
fi

command -v kubectl >/dev/null || { echo "e2e: kubectl not found on PATH" >&2; exit 1; }

cargo test --workspace "${targets[@]}" --no-fail-fast -- --include-ignored --test-threads=1 "$@"
