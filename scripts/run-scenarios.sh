#!/usr/bin/env bash
# Run Molecule scenarios one after another and end with a summary line.
#
#   scripts/run-scenarios.sh [scenario ...]     (default: every directory in molecule/ with a molecule.yml)
#
# Each scenario runs the full `molecule test` sequence; a failure does not stop the others, so one
# run reports every broken scenario. Per-scenario logs go to .cache/molecule-logs/<scenario>.log and
# the last lines of a failed one are printed. Exit status is non-zero if any scenario failed.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
molecule=${MOLECULE:-$top/.venv/bin/molecule}
logs=$top/.cache/molecule-logs
mkdir -p "$logs"

scenarios=("$@")
if [ ${#scenarios[@]} -eq 0 ]; then
  for f in molecule/*/molecule.yml; do
    scenarios+=("$(basename "$(dirname "$f")")")
  done
fi

passed=() failed=()
for s in "${scenarios[@]}"; do
  start=$SECONDS
  printf '=== molecule test -s %s\n' "$s"
  # -c: the shared base config, named explicitly so a checkout without .git still finds it.
  if "$molecule" -c .config/molecule/config.yml test -s "$s" >"$logs/$s.log" 2>&1; then
    passed+=("$s")
    printf '=== %s: PASSED in %d s\n' "$s" $((SECONDS - start))
  else
    failed+=("$s")
    printf '=== %s: FAILED in %d s (log: %s); last lines:\n' "$s" $((SECONDS - start)) "$logs/$s.log"
    tail -n 60 "$logs/$s.log"
  fi
  # Phase timings Molecule prints ("INFO  ... ➜ converge" lines) are in the log; keep the
  # per-scenario total visible here.
done

printf '\nMolecule scenarios: %d passed (%s), %d failed (%s)\n' \
  ${#passed[@]} "${passed[*]:-none}" ${#failed[@]} "${failed[*]:-none}"
[ ${#failed[@]} -eq 0 ]
