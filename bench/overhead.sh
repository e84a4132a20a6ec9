#!/usr/bin/env bash
# Memory overhead of the node daemon and of each VM's QEMU: vmkerneld (Release) with N test guests (default 10)
# booted through its gRPC API over mutual TLS. Prints
#   daemon_rss_idle_mib     RSS of vmkerneld after start, one API call and one scrape
#   daemon_rss_per_vm_mib   (RSS with N running VMs - idle) / N, same calls made, both the median of 5 samples 1 s apart
#   qemu_rss_per_vm_mib     median over the VMs of QEMU's RSS minus the resident part of the guest-RAM mapping
#                           (the anonymous mapping of the configured size in /proc/<pid>/smaps: what the guest touched)
# and, for comparison, the per-VM overhead KubeVirt documents and users measure for its virt-launcher pod
# (not runnable here: no Kubernetes node). 10 TCG guests on 2 cores boot slowly; the figures are about memory.
#   bench/overhead.sh [vms]
set -euo pipefail
cd "$(dirname "$0")/.."
vms=${1:-10}

scripts/setup.sh >&2
dotnet build src/NodeDaemon -c Release -nologo -clp:ErrorsOnly >&2
dotnet build bench/OverheadBench -c Release -nologo -clp:ErrorsOnly >&2
guest=$(readlink -f "${VMK_GUEST_DIR:-${VMK_CACHE_DIR:-/var/cache/vmkernel}/guest/current}")

dotnet bench/OverheadBench/bin/Release/net10.0/overhead-bench.dll \
  --daemon src/NodeDaemon/bin/Release/net10.0/vmkerneld.dll --guest-dir "$guest" --vms "$vms"
echo "kubevirt_launcher_overhead_mib_documented: 220"
echo "kubevirt_launcher_overhead_mib_measured_by_users: 300-370"
