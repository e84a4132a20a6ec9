#!/usr/bin/env bash
# The main job: installs what is needed, builds, starts the standalone control plane (a Kubernetes-API-
# compatible server with the project's CRDs), applies examples/, shows them with the real kubectl, and boots
# the example guest in the foreground with its serial console attached. Ctrl-C stops the VM and the server.
# Until the operator exists (its own issue), applying a VirtualMachine records it but does not boot it, so
# the guest is booted directly by the VMkernel (`vmctl vm run`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
vmctl=("$(scripts/build-vmctl.sh)")

data=${VMK_STANDALONE_DIR:-/var/lib/vmkernel/standalone}
mkdir -p "$data"
"${vmctl[@]}" standalone --data-dir "$data" --port 0 >"$data/standalone.log" 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
export KUBECONFIG=$data/kubeconfig
echo "==> waiting for the standalone API server (log: $data/standalone.log)" >&2
until grep -q "Press Ctrl-C" "$data/standalone.log" 2>/dev/null; do
  kill -0 $server 2>/dev/null || { cat "$data/standalone.log" >&2; exit 1; }
  sleep 0.2
done
kubectl apply -f examples/
kubectl get vmkernel
echo "==> kubectl works against it: export KUBECONFIG=$KUBECONFIG" >&2
echo "==> booting the example guest; Ctrl-C stops it" >&2
"${vmctl[@]}" vm run "$@"
