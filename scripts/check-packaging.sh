#!/usr/bin/env bash
# Every packaging check, with the real tools: helm (lint, template), promtool (rules, unit tests), the chart's
# copies and deploy/ up to date, then tests/Packaging.Tests (kubectl against the standalone API server,
# dashboards on a real Prometheus, Dockerfile lint). Runs them all, prints a summary, exits 1 if any failed.
set -uo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

failed=()
step() { # name command...
  local name=$1; shift
  echo "== $name" >&2
  if "$@"; then echo "   ok: $name" >&2; else echo "   FAILED: $name" >&2; failed+=("$name"); fi
}

helm=$(scripts/install-helm.sh) || { echo "check-packaging: cannot install helm" >&2; exit 1; }
export HELM=$helm
chart=charts/vmkernel-operator

step "helm lint (default values)" "$helm" lint --strict "$chart"
step "helm lint (every option on)" "$helm" lint --strict "$chart" -f "$chart/ci/all-options-values.yaml"
step "helm template (default values)" sh -c "'$helm' template vmkernel '$chart' >/dev/null"
step "helm template (every option on)" sh -c "'$helm' template vmkernel '$chart' -f '$chart/ci/all-options-values.yaml' >/dev/null"
step "chart copies of crds/ and monitoring/" sh -c "diff -r crds $chart/files/crds && diff -r monitoring/rules $chart/files/rules && diff -r monitoring/dashboards $chart/files/dashboards"
step "deploy/ rendered from the chart" scripts/render-deploy.sh --check
step "promtool check rules" promtool check rules monitoring/rules/*.yaml
step "promtool test rules" promtool test rules monitoring/tests/*.test.yaml
step "tests/Packaging.Tests" dotnet test tests/Packaging.Tests --logger "console;verbosity=minimal"

if [ "${#failed[@]}" -gt 0 ]; then
  echo "check-packaging: ${#failed[@]} check(s) failed: ${failed[*]}" >&2
  exit 1
fi
echo "check-packaging: all checks passed" >&2
