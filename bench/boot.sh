#!/usr/bin/env bash
# Boot time of the test guest to its VMK-GUEST-UP line: through `vmctl vm run` (the VMkernel: validation,
# cgroup, detached launch, QMP, console pump) against the very QEMU command line the argv builder produces,
# run by hand with socat reading the console. Rounds alternate so machine noise hits both alike.
#   bench/boot.sh [rounds]     (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}

scripts/setup.sh >&2
vmctl=("$(scripts/build-vmctl.sh)")

work=$(mktemp -d /tmp/vmk-boot-XXXXXX)
cleanup() {
  for pid in $(pgrep -f "qemu-system.*$work" || true); do kill -9 "$pid" 2>/dev/null || true; done
  jobs -p | xargs -r kill 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s%N; }

# Waits until FILE holds the marker; fails if PID dies first. 10 ms polling: the resolution of the figures.
wait_up() {
  local file=$1 pid=$2
  until grep -q VMK-GUEST-UP "$file" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { echo "boot.sh: process $pid exited before VMK-GUEST-UP" >&2; return 1; }
    sleep 0.01
  done
}

line=$("${vmctl[@]}" vm run --dry-run --name raw --state-dir "$work/raw")
echo "qemu command line (from the argv builder): $line" >&2

raw_times=() vmk_times=()
for ((i = 1; i <= rounds; i++)); do
  # Raw QEMU, the printed command line as is.
  dir="$work/raw/vms/raw"
  rm -rf "$dir" && mkdir -p "$dir"
  out="$work/raw-$i.out"
  : >"$out"
  t0=$(now)
  # setsid as the VMkernel does: a session leader gets a scheduler autogroup of its own, and on a busy
  # machine that alone changes boot times; the comparison is of control planes, not of scheduling.
  eval "exec setsid $line" </dev/null >/dev/null 2>"$work/raw-$i.err" &
  qemu=$!
  ( until socat -u "UNIX-CONNECT:$dir/console.sock" "OPEN:$out,append" 2>/dev/null; do
      kill -0 "$qemu" 2>/dev/null || exit 0
      sleep 0.01
    done ) &
  reader=$!
  wait_up "$out" "$qemu"
  t1=$(now)
  kill "$qemu" && wait "$qemu" 2>/dev/null || true
  pkill -f "UNIX-CONNECT:$dir/console.sock" || true
  wait "$reader" 2>/dev/null || true
  raw_times+=("$(( (t1 - t0) / 1000000 ))")

  # The same guest through the VMkernel.
  out="$work/vmk-$i.out"
  t0=$(now)
  "${vmctl[@]}" vm run --name "vmk$i" --state-dir "$work/vmk" </dev/null >"$out" 2>"$work/vmk-$i.err" &
  run=$!
  wait_up "$out" "$run"
  t1=$(now)
  # SIGTERM, not SIGINT: a background job of a script starts with SIGINT ignored.
  kill -TERM "$run" && wait "$run" || { echo "boot.sh: vmctl failed:" >&2; cat "$work/vmk-$i.err" >&2; exit 1; }
  vmk_times+=("$(( (t1 - t0) / 1000000 ))")
  echo "round $i: raw $(( raw_times[-1] )) ms, vmkernel $(( vmk_times[-1] )) ms" >&2
done

median_ms() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
raw=$(median_ms "${raw_times[@]}")
vmk=$(median_ms "${vmk_times[@]}")
awk -v r="$raw" -v v="$vmk" 'BEGIN {
  printf "boot_raw_median_s: %.3f\n", r / 1000
  printf "boot_vmkernel_median_s: %.3f\n", v / 1000
  printf "boot_overhead_ratio: %.3f\n", v / r
}'
