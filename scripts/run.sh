#!/usr/bin/env bash
# The main job: installs what is needed, builds, and boots the example guest in the foreground with its
# serial console attached (`vmctl vm run`). Ctrl-C stops the VM. Extra arguments go to `vmctl vm run`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "==> building" >&2
dotnet build src/Vmctl -c Release -nologo -clp:ErrorsOnly
exec dotnet src/Vmctl/bin/Release/net10.0/vmctl.dll vm run "$@"
