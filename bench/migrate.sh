#!/usr/bin/env bash
# Live migration of the idle 256 MiB test guest, 5 rounds each, alternating:
#   (a) raw baseline: two local QEMU processes, QMP migrate, target started with -incoming and resumed with cont;
#   (b) through the system: two vmkerneld daemons sharing one VMFS datastore, driven through their gRPC
#       MigrationService (PrepareIncoming / MigrateOut / FinishIncoming: what the operator's
#       VirtualMachineMigration controller calls), with the disk-lease handover and TLS (the default policy).
# Prints the medians:
#   raw_total_ms, raw_downtime_ms, vmk_total_ms, vmk_downtime_ms, migrate_total_ratio (= vmk_total / raw_total)
# and, to explain them, QEMU's own total-time on both sides and the VMkernel's handover time.
# total = from starting the target until the guest runs there; downtime = QEMU's switch-over pause + everything
# from the source's completion to the target's cont. Issue 9's target: ratio <= 1.3, downtime <= 50 ms.
#   bench/migrate.sh [rounds]          (VMK_MIGRATE_TLS=off measures (b) without TLS, to see what encryption costs)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}

scripts/setup.sh >&2
dotnet build src/NodeDaemon -c Release -nologo -clp:ErrorsOnly >&2
dotnet build bench/MigrateBench -c Release -nologo -clp:ErrorsOnly >&2
guest=$(readlink -f "${VMK_GUEST_DIR:-${VMK_CACHE_DIR:-/var/cache/vmkernel}/guest/current}")

dotnet bench/MigrateBench/bin/Release/net10.0/migrate-bench.dll \
  --daemon src/NodeDaemon/bin/Release/net10.0/vmkerneld.dll --guest-dir "$guest" --rounds "$rounds" --tls "${VMK_MIGRATE_TLS:-on}"
