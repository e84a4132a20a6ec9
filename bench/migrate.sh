#!/usr/bin/env bash
# Live migration of the idle 256 MiB test guest (issue 9), ROUNDS rounds (after one warm-up round of each side that
# is not counted) alternating in each round:
#   (a) raw baseline: two local QEMU processes, QMP migrate, the target started with -incoming and resumed with
#       cont (with TLS like the default policy, and without);
#   (b) a VirtualMachineMigration through `vmctl standalone --hosts 2` (two vmkerneld in network namespaces sharing
#       the VMFS datastore "local", vm-operator, the API server), the guest's disk on that datastore so its lease
#       moves with it.
# Prints the medians of
#   raw_total_ms, raw_downtime_ms, vmk_total_ms, vmk_downtime_ms, migrate_total_ratio (= vmk_total / raw_total)
# then the parts (raw target start, QEMU's own total-time, the VMIM's status start..completion) and the other raw
# run. Definitions in bench/MigrateBench/Program.cs and docs/migration.md; per-round figures on stderr.
# Issue 9's targets: ratio <= 1.3, downtime <= 50 ms.
#   bench/migrate.sh [rounds]          (default 5; VMK_MIGRATE_TLS=off: both sides without TLS)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
tls=${VMK_MIGRATE_TLS:-on}

scripts/setup.sh >&2
vmctl=("$(scripts/build-vmctl.sh)")
dotnet build bench/MigrateBench -c Release -nologo -clp:ErrorsOnly >&2
guest=$(readlink -f "${VMK_GUEST_DIR:-${VMK_CACHE_DIR:-/var/cache/vmkernel}/guest/current}")

work=$(mktemp -d /tmp/vmk-migrate-bench-XXXXXX)
chmod 0755 "$work" # QEMU runs as vmkernel-qemu and reads the migration TLS files under the state directories
source bench/standalone-lib.sh
trap standalone_cleanup EXIT

start_standalone "$work" --hosts 2
mapfile -t hosts < <(jq -r '.hosts[].name' "$data/standalone.json")
echo "hosts: ${hosts[*]}" >&2

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
    kernel: $guest/vmlinux
    initrd: $guest/initrd.gz
    cmdline: "console=ttyS0 tsc=reliable quiet"
  disks:
    - name: root
      datastore: local
      size: 64Mi
  placement:
    host: ${hosts[0]}
YAML
deadline=$(( $(date +%s) + 600 ))
host_dir=$(jq -r '.hosts[0].stateDir' "$data/standalone.json")
until grep -qs VMK-GUEST-UP "$host_dir"/vms/*traveller*/console.log; do
  (( $(date +%s) < deadline )) || { echo "migrate.sh: the guest did not boot within 600 s" >&2; tail -n 30 "$work/standalone.log" >&2; exit 1; }
  sleep 0.1
done

dotnet bench/MigrateBench/bin/Release/net10.0/migrate-bench.dll --kubeconfig "$KUBECONFIG" --vm traveller \
  --hosts "$(IFS=,; echo "${hosts[*]}")" --guest-dir "$guest" --rounds "$rounds" --tls "$tls"
kubectl delete vm traveller --wait=false >/dev/null
# Where each migration's time went, as the daemons logged it (prepare steps, source set-up and handover, finish).
echo "daemon log lines (prepare, handover, finish):" >&2
grep -hE "Migration .*(prepared in|moved to|runs on this host)" "$data"/logs/*.log 2>/dev/null | sed -E 's/^.{0,40}(Migration )/\1/' | cut -c1-400 >&2 || true
