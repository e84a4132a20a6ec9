#!/usr/bin/env bash
# The main job: installs what is needed, builds, starts the standalone control plane (API server with the
# project's CRDs, a node daemon and the operator; `vmctl standalone`, docs/standalone.md) in the background,
# applies examples/ with the real kubectl, waits until the example VirtualMachine is Running, shows what
# Kubernetes sees, then follows the guest's serial console. Ctrl-C stops everything: the operator, the VM,
# the daemon and the API server (the objects stay in the data directory for the next run).
#   sudo scripts/run.sh              (VMK_HOSTS=2 for two hosts in network namespaces)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
vmctl=("$(scripts/build-vmctl.sh)")

data=${VMK_STANDALONE_DIR:-/var/lib/vmkernel/standalone}
mkdir -p "$data"
log=$data/standalone.log
"${vmctl[@]}" standalone --data-dir "$data" --port 0 --hosts "${VMK_HOSTS:-1}" >"$log" 2>&1 &
server=$!
stop() {
  trap - EXIT INT TERM
  echo >&2
  echo "==> stopping the standalone control plane (log: $log)" >&2
  kill -TERM "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  tail -n 3 "$log" >&2
}
trap stop EXIT INT TERM
export KUBECONFIG=$data/kubeconfig
echo "==> starting the standalone control plane (log: $log)" >&2
until grep -q "Press Ctrl-C" "$log" 2>/dev/null; do
  kill -0 "$server" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.2
done
grep -E '^(Hosts|VMkernel standalone)' "$log" >&2 || true

kubectl apply -f examples/
echo "==> waiting for VirtualMachine test-guest to be Running (TCG boots take a while on a busy machine)" >&2
if ! kubectl wait vm/test-guest --for=jsonpath='{.status.phase}'=Running --timeout=300s; then
  kubectl get vm test-guest -o yaml >&2 || true
  echo "==> test-guest did not reach Running; the operator's and daemons' logs are in $data/logs/" >&2
  exit 1
fi
kubectl get vmkernel
kubectl get vm test-guest -o wide

host=$(kubectl get vm test-guest -o jsonpath='{.status.host}')
console=$(ls -t "$data/hosts/$host"/vms/*test-guest*/console.log 2>/dev/null | head -n 1 || true)
echo "==> kubectl works against it: export KUBECONFIG=$KUBECONFIG" >&2
if [[ -n $console ]]; then
  echo "==> test-guest's serial console on $host ($console); Ctrl-C stops everything" >&2
  tail -n +1 -f "$console" &
  tailer=$!
  wait "$server" || true
  kill "$tailer" 2>/dev/null || true
else
  echo "==> test-guest runs on $host; its console log was not found under $data/hosts/$host/vms/; Ctrl-C stops everything" >&2
  wait "$server" || true
fi
