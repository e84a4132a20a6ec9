#!/usr/bin/env bash
# VMFS benchmark (issue 3): lease acquisition latency, takeover after SIGKILL, and 4 KiB overwrite IOPS
# through the virtual-disk interface vs raw pwrite on the same file and offsets, alternating rounds in one run.
# Usage: bench/vmfs.sh [DIR] [SECONDS_PER_ROUND] [ROUNDS]
# DIR must be on a disk file system (tmpfs refuses O_DIRECT); default /var/tmp.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-/var/tmp}"
work="$(mktemp -d "$dir/vmfs-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT
dotnet build "$root/bench/VmfsBench/VmfsBench.csproj" -c Release -o "$work/bin" -v quiet -nologo >&2
dotnet "$work/bin/VmfsBench.dll" "$work" "${2:-3}" "${3:-5}"
