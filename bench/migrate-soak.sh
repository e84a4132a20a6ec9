#!/usr/bin/env bash
# Migration soak: ROUNDS live migrations of the idle 256 MiB test guest back and forth between two local QEMU
# processes (the VMkernel's argv, TCG), the guest's memory compared page by page on both sides after each one, the
# guest then required to tick on at the target. Prints rounds, memory_differences and guests_stopped (both should be
# 0); per-round lines on stderr. With --whole-mib the guest gets a whole number of MiB, the size that makes QEMU
# before 9.0 lose writes under TCG (docs/migration.md): run both to see the difference the VMkernel's size makes.
#   bench/migrate-soak.sh [rounds] [--whole-mib]      (default 100 rounds, about 2 s each here)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-100}
shift || true

scripts/setup.sh >&2
dotnet build bench/MigrateSoak -c Release -nologo -clp:ErrorsOnly >&2
guest=$(readlink -f "${VMK_GUEST_DIR:-${VMK_CACHE_DIR:-/var/cache/vmkernel}/guest/current}")
dotnet bench/MigrateSoak/bin/Release/net10.0/migrate-soak.dll --guest-dir "$guest" --rounds "$rounds" "$@"
