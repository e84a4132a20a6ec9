#!/usr/bin/env bash
# Network I/O stack benchmark (issue 7): port group apply (100 on one host), vNIC attach, and ping RTT to a guest
# across two hosts over VXLAN, each next to a peer: the same kernel objects made by a hand-written ip/nft/dnsmasq
# script, and the fabric's own RTT. Hosts are network namespaces; nothing outside them is touched.
#   bench/net.sh [PORT_GROUPS] [TAPS] [PINGS]     (defaults 100 20 20)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d /tmp/vmk-netbench-bin.XXXXXX)"
trap 'rm -rf "$work"' EXIT
dotnet build "$root/bench/NetBench/NetBench.csproj" -c Release -o "$work/bin" -v quiet -nologo >&2
dotnet "$work/bin/NetBench.dll" "${1:-100}" "${2:-20}" "${3:-20}"
