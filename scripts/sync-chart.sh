#!/usr/bin/env bash
# Copies the files the chart ships but does not own into charts/vmkernel-operator/files/: the CRDs (crds/ is
# the source of truth), the alert rules and the Grafana dashboards (monitoring/). Helm can only read files
# inside the chart, hence copies; tests/Packaging.Tests checks they are identical. Run after editing any of them.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
files="$repo_root/charts/vmkernel-operator/files"

sync_dir() { # source-dir pattern target-dir
  local src=$1 pattern=$2 dst=$3
  mkdir -p "$dst"
  find "$dst" -maxdepth 1 -type f -name "$pattern" -delete
  cp "$src"/$pattern "$dst"/
}

sync_dir "$repo_root/crds" '*.yaml' "$files/crds"
sync_dir "$repo_root/monitoring/rules" '*.yaml' "$files/rules"
sync_dir "$repo_root/monitoring/dashboards" '*.json' "$files/dashboards"
echo "sync-chart: copied $(ls "$files/crds" | wc -l) CRDs, $(ls "$files/rules" | wc -l) rule file(s), $(ls "$files/dashboards" | wc -l) dashboards into charts/vmkernel-operator/files" >&2
