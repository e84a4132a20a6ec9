#!/usr/bin/env bash
# The control plane's cost, end to end, on a standalone machine (`vmctl standalone`, one host):
#  - rounds alternate: time from `kubectl apply` of one VirtualMachine to its VMK-GUEST-UP console line, and time
#    for `vmctl vm run` of the same guest (same kernel, initrd, command line, memory; no disk and no NIC on
#    either side, so the difference is the control plane: API server, watch, operator placement and reconcile,
#    mTLS gRPC to vmkerneld), median of each and the difference;
#  - reconciles_idle_per_min: 100 VirtualMachines defined with runPolicy Halted (they are placed and reconciled
#    but need no QEMU: 100 TCG guests would not fit the machine, and idle is about the control plane), once
#    every one has settled (status.observedGeneration = metadata.generation), the operator's
#    controller_runtime_reconcile_total over one minute in which nothing changes.
#   bench/e2e.sh [rounds]     (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}

scripts/setup.sh >&2
vmctl=("$(scripts/build-vmctl.sh)")

work=$(mktemp -d /tmp/vmk-e2e-bench-XXXXXX)
source bench/standalone-lib.sh
trap standalone_cleanup EXIT

now() { date +%s%N; }

# Waits until a file matching the glob holds VMK-GUEST-UP. 10 ms polling: the resolution of the figures.
wait_up_glob() {
  local glob=$1 deadline=$(( $(date +%s) + 600 ))
  until grep -qs VMK-GUEST-UP $glob; do
    (( $(date +%s) < deadline )) || { echo "e2e.sh: no VMK-GUEST-UP in $glob within 600 s" >&2; return 1; }
    kill -0 "$server" 2>/dev/null || { echo "e2e.sh: vmctl standalone died; log: $data/out.log" >&2; tail -n 30 "$data/out.log" >&2; return 1; }
    sleep 0.01
  done
}

start_standalone "$work"
host_dir=$(jq -r '.hosts[0].stateDir' "$data/standalone.json")

# The guest `vmctl vm run` boots by default, as a VirtualMachine.
read -r kernel initrd cmdline < <("${vmctl[@]}" vm run --dry-run --name probe --state-dir "$work/probe" |
  awk '{for (i = 1; i < NF; i++) { if ($i == "-kernel") k = $(i+1); if ($i == "-initrd") r = $(i+1); if ($i == "-append") { c = $(i+1); j = i + 2; while (j <= NF && substr($j, 1, 1) != "-") c = c " " $(j++) } } print k, r, c}')
cmdline=${cmdline//\'/}
# The argv builder adds the measured TSC frequency itself (on both sides); the manifest carries what a user writes.
cmdline=$(sed -E "s/ ?tsc_early_khz=[0-9]+//" <<<"$cmdline")
echo "guest: kernel $kernel initrd $initrd cmdline '$cmdline'" >&2
manifest() {
  cat <<YAML
apiVersion: vmkernel.io/v1alpha1
kind: VirtualMachine
metadata:
  name: $1
  namespace: default
spec:
  runPolicy: ${2:-Always}
  machineType: microvm
  accelerator: auto
  cpu:
    cores: 1
  memory:
    size: 256Mi
  boot:
    kernel: $kernel
    initrd: $initrd
    cmdline: "$cmdline"
YAML
}

raw_times=() apply_times=()
for ((i = 1; i <= rounds; i++)); do
  out="$work/raw-$i.out"
  t0=$(now)
  "${vmctl[@]}" vm run --name "raw$i" --state-dir "$work/raw" </dev/null >"$out" 2>"$work/raw-$i.err" &
  run=$!
  wait_up_glob "$out"
  t1=$(now)
  kill -TERM "$run" && wait "$run" || { echo "e2e.sh: vmctl vm run failed:" >&2; cat "$work/raw-$i.err" >&2; exit 1; }
  raw_times+=("$(( (t1 - t0) / 1000000 ))")

  t0=$(now)
  manifest "bench-$i" | kubectl apply -f - >/dev/null
  wait_up_glob "$host_dir/vms/*bench-$i*/console.log"
  t1=$(now)
  apply_times+=("$(( (t1 - t0) / 1000000 ))")
  kubectl delete vm "bench-$i" --timeout=300s >/dev/null
  echo "round $i: vmctl vm run $(( raw_times[-1] )) ms, kubectl apply $(( apply_times[-1] )) ms" >&2
done

median_ms() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
raw=$(median_ms "${raw_times[@]}")
apply=$(median_ms "${apply_times[@]}")

# Idle: 100 Halted VMs, settled, then one quiet minute.
echo "defining 100 Halted VirtualMachines" >&2
for ((i = 1; i <= 100; i++)); do manifest "idle-$i" Halted; echo "---"; done | kubectl apply -f - >/dev/null
settled() {
  kubectl get vm -o json | jq -e '[.items[] | select(.metadata.name | startswith("idle-"))
    | select((.status.observedGeneration // -1) == .metadata.generation)] | length == 100' >/dev/null
}
deadline=$(( $(date +%s) + 600 ))
until settled; do
  (( $(date +%s) < deadline )) || { echo "e2e.sh: the 100 VMs did not settle within 600 s" >&2; exit 1; }
  sleep 1
done
metrics=$(jq -r '.operator.metrics' "$data/standalone.json")
[[ $metrics == */metrics ]] || metrics=${metrics%/}/metrics
reconciles() { curl -fsS "$metrics" | awk '/^controller_runtime_reconcile_total[{ ]/ {s += $NF} END {printf "%d\n", s}'; }
r0=$(reconciles)
sleep 60   # the measurement window itself
r1=$(reconciles)

awk -v r="$raw" -v a="$apply" -v idle="$((r1 - r0))" 'BEGIN {
  printf "raw_boot_median_s: %.3f\n", r / 1000
  printf "apply_to_up_median_s: %.3f\n", a / 1000
  printf "control_plane_overhead_s: %.3f\n", (a - r) / 1000
  printf "reconciles_idle_per_min: %d\n", idle
}'
