#!/usr/bin/env bash
# Publishes vmctl as it ships, with the two programs `vmctl standalone` starts beside it (vmkerneld, the node
# daemon, and vm-operator): Release, ReadyToRun (precompiled, so a command does not spend its first few hundred
# milliseconds in the JIT), framework-dependent, all into out/vmctl/ (vmctl looks for them next to itself).
# Prints vmctl's path.
set -euo pipefail
cd "$(dirname "$0")/.."
for project in src/Vmctl src/NodeDaemon src/Operator; do
  echo "==> publishing $(basename "$project") (ReadyToRun) into out/vmctl" >&2
  dotnet publish "$project" -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true \
    -o out/vmctl -nologo -clp:ErrorsOnly >&2
done
echo "$PWD/out/vmctl/vmctl"
