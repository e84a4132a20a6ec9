#!/usr/bin/env bash
# The whole test suite, after installing everything it needs (scripts/setup.sh).
#   scripts/test.sh            every test
#   scripts/test.sh --quick    leave out the slow end-to-end tests (Category=Slow)
# Test projects run one after another: VM tests are CPU-bound under TCG on small machines.
set -euo pipefail
cd "$(dirname "$0")/.."

filter=()
if [[ "${1:-}" == "--quick" ]]; then
  filter=(--filter "Category!=Slow")
fi

scripts/setup.sh
echo "==> building" >&2
dotnet build Operator.sln -c Release -nologo -clp:ErrorsOnly

passed=0 failed=0 skipped=0 status=0
log=$(mktemp)
failures=$(mktemp)
trap 'rm -f "$log" "$failures"' EXIT
for project in tests/*/*.Tests.csproj; do
  echo "==> $(basename "$project" .csproj)" >&2
  if ! dotnet test "$project" -c Release --no-build -nologo "${filter[@]}" \
      --blame-hang-timeout 10m --logger "console;verbosity=normal" 2>&1 | tee "$log"; then
    status=1
  fi
  grep -E "^ +Failed [A-Za-z]" "$log" >>"$failures" || true
  # vstest's summary block: "Total tests: 45", "     Passed: 44", "     Failed: 1", "    Skipped: 0"
  for kind in Passed Failed Skipped; do
    n=$(grep -E "^ +$kind: +[0-9]+$" "$log" | tail -n 1 | grep -oE '[0-9]+' || true)
    case $kind in
      Passed) passed=$((passed + ${n:-0})) ;;
      Failed) failed=$((failed + ${n:-0})) ;;
      Skipped) skipped=$((skipped + ${n:-0})) ;;
    esac
  done
done
if [[ -s "$failures" ]]; then
  echo "failed tests:"
  sed -E 's/^ +/  /' "$failures"
fi
echo "tests: $passed passed, $failed failed, $skipped skipped"
if (( failed > 0 )); then status=1; fi
exit $status
