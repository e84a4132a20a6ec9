#!/usr/bin/env bash
# Publishes vmctl as it ships: Release, ReadyToRun (precompiled, so a command does not spend its first
# few hundred milliseconds in the JIT), framework-dependent, into out/vmctl/. Prints the binary's path.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "==> publishing vmctl (ReadyToRun) into out/vmctl" >&2
dotnet publish src/Vmctl -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true \
  -o out/vmctl -nologo -clp:ErrorsOnly >&2
echo "$PWD/out/vmctl/vmctl"
