#!/bin/bash
# e2e/node.sh: Legate on a real node (`make e2e-node`; root). Opt-in, not part of `make e2e` yet.
#
# Builds the images (`make images`), starts kube-local with a node (`e2e/kube-local up --node
# --fresh`), imports the images, installs the operator as a Pod with `kubectl apply -k
# config/default`, applies a GatewayInstallation with two replicas, and checks that its gateway
# Pods run and become Ready (the agent, in the Pod, reached the API server with in-cluster
# configuration and its Envoy acknowledged a configuration), and that Envoy and the agent run as
# the runtime reports them: non-root, read-only root filesystem, no capabilities. Always tears
# the cluster down. Prints the time of each phase.
#
# Uses kube-local's settings (KUBE_LOCAL_HOME, KUBE_LOCAL_API_PORT, KUBE_LOCAL_BRIDGE, ...), so a
# copy can run beside another cluster on other ports and names. KEEP=1 leaves the cluster up.
set -euo pipefail
cd "$(dirname "$0")/.."
KL=e2e/kube-local
NS=legate-system
ENVOY_IMAGE=${ENVOY_IMAGE:-localhost/legate-envoy:v1.40.0}
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

make --no-print-directory images ENVOY_IMAGE="$ENVOY_IMAGE"
phase images
"$KL" build >/dev/null
phase kube-local-build
started=1
"$KL" up --node --fresh
phase up
"$KL" load target/images/*.tar
phase load

kubectl apply --validate=false -k config/default
kubectl -n "$NS" rollout status deploy/legate-operator --timeout=180s
phase operator-ready

kubectl apply -f - <<EOF
apiVersion: legate.dev/v1alpha1
kind: GatewayInstallation
metadata:
  name: edge
  namespace: $NS
spec:
  replicas: 2
  envoy:
    image: $ENVOY_IMAGE
    imagePullPolicy: Never
  agent:
    imagePullPolicy: Never
  service:
    type: ClusterIP
    ports:
      - {name: http, port: 80, targetPort: 8080}
EOF
for _ in $(seq 1 60); do kubectl -n "$NS" get deploy/edge >/dev/null 2>&1 && break; sleep 1; done
kubectl -n "$NS" rollout status deploy/edge --timeout=300s
kubectl get pods -A -o wide
phase gateway-ready

# Both gateway Pods: every container Running and Ready, and the agent's /readyz answers on the
# Pod's IP from the host (the bridge is this test's own network).
pods=$(kubectl -n "$NS" get pods -l app.kubernetes.io/instance=edge -o jsonpath='{.items[*].metadata.name}')
n=0
for p in $pods; do
  ready=$(kubectl -n "$NS" get pod "$p" -o jsonpath='{range .status.containerStatuses[*]}{.name}={.ready}{" "}{end}')
  ip=$(kubectl -n "$NS" get pod "$p" -o jsonpath='{.status.podIP}')
  readyz=$(curl -s -m 5 "http://$ip:9090/readyz" || true)
  echo "e2e-node: $p ($ip): $ready; /readyz: $readyz"
  case "$ready" in *false*|"") echo "e2e-node: $p has a container not Ready" >&2; exit 1 ;; esac
  case "$readyz" in ok*) ;; *) echo "e2e-node: $p: /readyz on the Pod IP did not answer ok" >&2; exit 1 ;; esac
  n=$((n + 1))
done
[ "$n" = 2 ] || { echo "e2e-node: expected 2 gateway Pods, found $n" >&2; exit 1; }

# What the runtime runs: each container's OCI spec (user, root, capabilities) from containerd, and
# the process's real user from /proc.
sock=$H/run/node/containerd/containerd.sock
checked=0
for id in $(ctr -a "$sock" -n k8s.io containers ls -q); do
  info=$(ctr -a "$sock" -n k8s.io containers info "$id")
  verdict=$(python3 - "$info" <<'EOF'
import json, sys
c = json.loads(sys.argv[1])
labels, spec = c.get("Labels", {}), c.get("Spec", {})
name = labels.get("io.kubernetes.container.name", "")
if labels.get("io.kubernetes.pod.namespace") != "legate-system" or name not in ("envoy", "legate-agent", "operator"):
    sys.exit(0)
proc, problems = spec["process"], []
uid = proc["user"]["uid"]
if uid == 0: problems.append("runs as root")
if not spec["root"].get("readonly"): problems.append("root filesystem writable")
caps = proc.get("capabilities", {})
held = sorted({c for k in ("bounding", "effective", "permitted") for c in caps.get(k) or []})
if held: problems.append("capabilities " + ",".join(held))
if not proc.get("noNewPrivileges"): problems.append("privilege escalation allowed")
mounts = sorted(m["destination"] for m in spec.get("mounts", []) if "ro" not in (m.get("options") or [])
                and m["destination"] not in ("/proc", "/dev", "/dev/pts", "/dev/mqueue", "/sys/fs/cgroup", "/dev/shm"))
print(f"{labels['io.kubernetes.pod.name']}/{name} uid={uid} readonly-root={spec['root'].get('readonly')} "
      f"caps={held or 'none'} writable={mounts}" + (" PROBLEM: " + "; ".join(problems) if problems else ""))
EOF
)
  [ -n "$verdict" ] || continue
  pid=$(ctr -a "$sock" -n k8s.io tasks ls | awk -v id="$id" '$1 == id {print $2}')
  [ -n "$pid" ] && verdict="$verdict process-uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")"
  echo "e2e-node: $verdict"
  case "$verdict" in *PROBLEM*|*process-uid=0) echo "e2e-node: a container needs more than it should" >&2; exit 1 ;; esac
  checked=$((checked + 1))
done
[ "$checked" -ge 5 ] || { echo "e2e-node: checked $checked containers, expected 5 (operator, 2 x envoy + agent)" >&2; exit 1; }
phase checks
