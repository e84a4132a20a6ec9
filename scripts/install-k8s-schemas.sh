#!/usr/bin/env bash
# Installs the object schemas used to validate the chart's rendered Kubernetes objects (npm packages
# kubernetes-models, @kubernetes-models/prometheus-operator, @kubernetes-models/cert-manager, versions locked in
# scripts/k8s-schemas/package-lock.json) into a cache directory and prints the path of validate.mjs there:
#   node "$(scripts/install-k8s-schemas.sh)" < objects.json
# Idempotent: a cache made from the same lock file is reused.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src="$repo_root/scripts/k8s-schemas"
cache=${VMK_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmkernel-tools}
key=$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -c1-16)
dir="$cache/k8s-schemas-$key"

if [ ! -f "$dir/.installed" ]; then
  command -v npm >/dev/null 2>&1 || { echo "install-k8s-schemas: error: npm not found; run scripts/setup.sh" >&2; exit 1; }
  mkdir -p "$cache"
  work=$(mktemp -d "$cache/.k8s-schemas-XXXXXX")
  trap 'rm -rf "$work"' EXIT
  cp "$src/package.json" "$src/package-lock.json" "$work/"
  echo "install-k8s-schemas: npm ci in $dir" >&2
  (cd "$work" && npm ci --silent --no-audit --no-fund >&2)
  touch "$work/.installed"
  rm -rf "$dir"
  mv "$work" "$dir"
  trap - EXIT
fi
# validate.mjs is copied every time: it is the project's code, the cache only holds the packages.
cp "$src/validate.mjs" "$dir/validate.mjs"
echo "$dir/validate.mjs"
