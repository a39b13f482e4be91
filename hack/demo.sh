#!/usr/bin/env bash
# `make demo`: a local gateway on this machine. Two example upstreams (stable on :9000, next on
# :9001), legate-agent serving config/samples/local over ADS, and a real Envoy on :8080.
# Ctrl-C stops all of it.
set -euo pipefail
cd "$(dirname "$0")/.."

make -s envoy >/dev/null
cargo build -q -p legate-agent --bin legate-agent --example upstream

work=$(mktemp -d)
pids=()
cleanup() {
  trap - EXIT INT TERM
  [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

target/debug/examples/upstream stable=127.0.0.1:9000 next=127.0.0.1:9001 &
pids+=($!)
target/debug/legate-agent bootstrap --ads-address 127.0.0.1:18000 --admin-address 127.0.0.1:19000 \
  --node-id legate-demo >"$work/bootstrap.yaml"
target/debug/legate-agent run --config-dir config/samples/local --ads-address 127.0.0.1:18000 \
  --metrics-address 127.0.0.1:9090 &
pids+=($!)
.tools/bin/envoy -c "$work/bootstrap.yaml" --disable-hot-restart --log-level warn &
pids+=($!)

# Ready once Envoy has acknowledged the agent's configuration.
for _ in $(seq 1 100); do
  curl -sf localhost:9090/readyz >/dev/null 2>&1 && break
  sleep 0.2
done
curl -sf localhost:9090/readyz >/dev/null || { echo "demo: the gateway did not become ready" >&2; exit 1; }

cat <<'MSG'

Legate is serving config/samples/local on http://localhost:8080. Try:

  curl -s localhost:8080/backend/hello          # routed to "stable"; the prefix is rewritten to /
  curl -s localhost:8080/api/users              # rewrite: /v1/ → the upstream sees /v1/users
  for i in $(seq 1 100); do curl -s localhost:8080/canary/ | grep -o '"upstream":"[a-z]*"'; done | sort | uniq -c
                                                # canary: about 20 go to "next", 80 to "stable"
  curl -s localhost:9090/readyz                 # the configuration version Envoy acknowledged
  curl -s localhost:9090/metrics | grep -E '^(legate_agent_resources|envoy_cluster_upstream_rq_total)'
                                                # the agent's metrics and Envoy's, one scrape
  open http://localhost:9090/diag/              # the diagnostics page: routes, verdicts, health

Edit or add YAML under config/samples/local/ and the gateway follows within a moment.
Ctrl-C stops everything.
MSG
wait
