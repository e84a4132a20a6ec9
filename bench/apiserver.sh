#!/usr/bin/env bash
# Benchmark of the standalone API server (issue 5): 5,000 small VirtualMachine objects created by 4 concurrent
# writers while a watcher follows them, then listed whole. Prints create_per_s, watch_delay_p50_ms,
# watch_delay_p99_ms, list_5000_ms and rss_mib (peak resident set of the server process) for each storage mode.
# watch delay = from the writer starting its create call to the watcher receiving the ADDED event.
set -euo pipefail
cd "$(dirname "$0")/.."
objects="${1:-5000}"
writers="${2:-4}"
dotnet build bench/ApiServerBench -c Release -v quiet -nologo >/dev/null
exec bench/ApiServerBench/bin/Release/net10.0/apiserver-bench run "$objects" "$writers"
