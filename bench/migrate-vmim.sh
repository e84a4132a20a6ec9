#!/usr/bin/env bash
# Live migration through the operator (issue 9, side (b) of bench/migrate.sh): `vmctl standalone --hosts 2`
# (two vmkerneld in network namespaces, vm-operator, the API server), the idle 256 MiB test guest (no disk, as
# migrate.sh's), migrated back and forth through VirtualMachineMigration objects, ROUNDS times. Prints the
# medians of
#   vmk_total_ms     status.completionTime - status.startTime (admission to guest resumed on the target:
#                    PrepareIncoming, the transfer, the handover and FinishIncoming, as the operator drives them)
#   vmk_downtime_ms  status.downtime (QEMU's measured pause at switch-over)
#   vmk_wall_ms      kubectl create to phase Succeeded seen by a client polling every 50 ms
#   bench/migrate-vmim.sh [rounds]     (default 5; VMK_MIGRATE_TLS=off sends the stream unencrypted)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
encrypted=true
[[ ${VMK_MIGRATE_TLS:-on} == off ]] && encrypted=false

scripts/setup.sh >&2
vmctl=("$(scripts/build-vmctl.sh)")

work=$(mktemp -d /tmp/vmk-vmim-bench-XXXXXX)
chmod 0755 "$work" # QEMU runs as vmkernel-qemu and reads the migration TLS files under the state directories
data=$work/standalone
server=
cleanup() {
  if [[ -n $server ]]; then
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  for pid in $(pgrep -f "qemu-system.*$work" || true); do kill -9 "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s%N; }

mkdir -p "$data"
"${vmctl[@]}" standalone --hosts 2 --data-dir "$data" --port 0 --datastore-dir "$work/datastores" >"$work/standalone.log" 2>&1 &
server=$!
until grep -q "Press Ctrl-C" "$work/standalone.log" 2>/dev/null; do
  kill -0 "$server" 2>/dev/null || { cat "$work/standalone.log" >&2; exit 1; }
  sleep 0.2
done
export KUBECONFIG=$data/kubeconfig
mapfile -t hosts < <(jq -r '.hosts[].name' "$data/standalone.json")
host_dir=$(jq -r '.hosts[0].stateDir' "$data/standalone.json")
echo "hosts: ${hosts[*]}" >&2

# The guest `vmctl vm run` boots by default (what migrate.sh's raw side migrates too).
read -r kernel initrd cmdline < <("${vmctl[@]}" vm run --dry-run --name probe --state-dir "$work/probe" |
  awk '{for (i = 1; i < NF; i++) { if ($i == "-kernel") k = $(i+1); if ($i == "-initrd") r = $(i+1); if ($i == "-append") { c = $(i+1); j = i + 2; while (j <= NF && substr($j, 1, 1) != "-") c = c " " $(j++) } } print k, r, c}')
cmdline=${cmdline//\'/}
cmdline=$(sed -E "s/ ?tsc_early_khz=[0-9]+//" <<<"$cmdline")
kubectl apply -f - >/dev/null <<YAML
apiVersion: vmkernel.io/v1alpha1
kind: VirtualMachine
metadata:
  name: traveller
  namespace: default
spec:
  runPolicy: Always
  cpu:
    cores: 1
  memory:
    size: 256Mi
  boot:
    kernel: $kernel
    initrd: $initrd
    cmdline: "$cmdline"
  placement:
    host: ${hosts[0]}
YAML
deadline=$(( $(date +%s) + 600 ))
until grep -qs VMK-GUEST-UP "$host_dir"/vms/*traveller*/console.log; do
  (( $(date +%s) < deadline )) || { echo "migrate-vmim.sh: the guest did not boot within 600 s" >&2; tail -n 30 "$work/standalone.log" >&2; exit 1; }
  sleep 0.1
done

ms_between() { python3 -c 'import sys; from datetime import datetime as d; f=lambda s: d.fromisoformat(s.replace("Z", "+00:00")); print(round((f(sys.argv[2]) - f(sys.argv[1])).total_seconds() * 1000))' "$1" "$2"; }

totals=() downtimes=() walls=()
for ((i = 1; i <= rounds; i++)); do
  target=${hosts[$(( i % 2 ))]}
  t0=$(now)
  kubectl create -f - >/dev/null <<YAML
apiVersion: vmkernel.io/v1alpha1
kind: VirtualMachineMigration
metadata:
  name: round-$i
  namespace: default
spec:
  vmName: traveller
  targetHost: $target
  policy:
    encrypted: $encrypted
YAML
  deadline=$(( $(date +%s) + 600 ))
  while :; do
    status=$(kubectl get vmim "round-$i" -o json | jq -c .status)
    phase=$(jq -r '.phase // ""' <<<"$status")
    [[ $phase == Succeeded || $phase == Failed || $phase == Cancelled ]] && break
    (( $(date +%s) < deadline )) || { echo "migrate-vmim.sh: round $i did not finish within 600 s: $status" >&2; exit 1; }
    sleep 0.05
  done
  t1=$(now)
  [[ $phase == Succeeded ]] || { echo "migrate-vmim.sh: round $i $phase: $(jq -r .message <<<"$status")" >&2; exit 1; }
  totals+=("$(ms_between "$(jq -r .startTime <<<"$status")" "$(jq -r .completionTime <<<"$status")")")
  downtimes+=("$(jq -r .downtime <<<"$status" | sed 's/ms$//')")
  walls+=("$(( (t1 - t0) / 1000000 ))")
  echo "round $i -> $target: total ${totals[-1]} ms, downtime ${downtimes[-1]} ms, wall ${walls[-1]} ms" >&2
  # The next round starts from a guest that runs on its new host (its VM object Running there again).
  until [[ $(kubectl get vm traveller -o jsonpath='{.status.host}/{.status.phase}') == "$target/Running" ]]; do sleep 0.05; done
done

median_ms() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
echo "vmk_total_ms: $(median_ms "${totals[@]}")"
echo "vmk_downtime_ms: $(median_ms "${downtimes[@]}")"
echo "vmk_wall_ms: $(median_ms "${walls[@]}")"
echo "tls: $encrypted"
