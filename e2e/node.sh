#!/bin/bash
# e2e/node.sh: Legate on a real node (`make e2e-node`, and the second half of `make e2e`; root).
#
# Builds the images (`make images`; IMAGE_PROFILE=debug, the default here, packs the binaries the
# test build made, release builds them), starts kube-local with a node (`e2e/kube-local up --node
# --fresh`), imports the images (the Envoy image also under a second tag, for a rolling update),
# and runs e2e/tests/node.rs: the operator installed with `kubectl apply -k config/default` runs
# as a Pod, two teams' backends run as Pods, and a GatewayInstallation's Pods serve them under
# load through scaling, a rolling update and a deleted Pod (see the test). Always tears the
# cluster down. Prints the time of each phase.
#
# Uses kube-local's settings (KUBE_LOCAL_HOME, KUBE_LOCAL_API_PORT, KUBE_LOCAL_BRIDGE, ...), so a
# copy can run beside another cluster on other ports and names. KEEP=1 leaves the cluster up.
set -euo pipefail
cd "$(dirname "$0")/.."
KL=e2e/kube-local
NS=legate-system
ENVOY_IMAGE=${ENVOY_IMAGE:-localhost/legate-envoy:v1.40.0}
ENVOY_IMAGE_NEXT=${ENVOY_IMAGE%:*}:rollout
UPSTREAM_IMAGE=${UPSTREAM_IMAGE:-localhost/legate-example-upstream:$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)}
H=${KUBE_LOCAL_HOME:-$HOME/.cache/kube-local}
export KUBECONFIG=$H/kubeconfig PATH=$H/bin:$PATH
t_start=$(date +%s)
timings=()
phase() { local now; now=$(date +%s); timings+=("$1: $((now - t_last)) s"); t_last=$now; echo "e2e-node: $1 done ($((now - t_start)) s)"; }
t_last=$t_start

started=0
finish() {
  local rc=$?
  if [ "$rc" != 0 ] && [ "$started" = 1 ]; then
    echo "e2e-node: FAILED (exit $rc); state:" >&2
    kubectl get nodes,pods -A -o wide >&2 || true
    kubectl get events -A --sort-by=.lastTimestamp 2>/dev/null | tail -25 >&2 || true
    for p in $(kubectl get pods -n "$NS" -o name 2>/dev/null); do
      kubectl logs -n "$NS" "$p" --all-containers --tail=20 >&2 2>&1 || true
    done
  fi
  if [ "$started" = 1 ] && [ "${KEEP:-0}" != 1 ]; then
    t_last=$(date +%s)
    "$KL" down || true
    phase down
  fi
  echo "e2e-node: timings: $(printf '%s; ' "${timings[@]}")"
  [ "$rc" = 0 ] && echo "e2e-node: PASS"
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

make --no-print-directory images ENVOY_IMAGE="$ENVOY_IMAGE" UPSTREAM_IMAGE="$UPSTREAM_IMAGE" \
  IMAGE_PROFILE="${IMAGE_PROFILE:-debug}"
phase images
"$KL" build >/dev/null
phase kube-local-build
started=1
"$KL" up --node --fresh
phase up
"$KL" load target/images/*.tar
phase load

# A second tag of the Envoy image: the test rolls the gateway to it.
sock=$H/run/node/containerd/containerd.sock
ctr -a "$sock" -n k8s.io images tag --force "$ENVOY_IMAGE" "$ENVOY_IMAGE_NEXT" >/dev/null

LEGATE_E2E_ENVOY_IMAGE=$ENVOY_IMAGE LEGATE_E2E_ENVOY_IMAGE_NEXT=$ENVOY_IMAGE_NEXT \
  LEGATE_E2E_UPSTREAM_IMAGE=$UPSTREAM_IMAGE LEGATE_E2E_CONTAINERD=$sock \
  cargo test --workspace --test node -- --include-ignored --test-threads=1 --nocapture
phase test
