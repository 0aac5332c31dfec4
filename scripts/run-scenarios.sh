#!/usr/bin/env bash
# Run Molecule scenarios one after another and end with a summary line.
#
#   scripts/run-scenarios.sh [scenario ...]     (default: every directory in molecule/ with a molecule.yml)
#
# Each scenario runs the full `molecule test` sequence; a failure does not stop the others, so one
# run reports every broken scenario. Per-scenario logs go to .cache/molecule-logs/<scenario>.log and
# the last lines of a failed one are printed. Exit status is non-zero if any scenario failed.
#
# Phase timings (read by bench/b_suite.py, benchmark 7): Molecule prints "[<scenario> > <action>]
# Executing" and "... Executed: <result>" lines without a time, so each line of its output is
# timed as it arrives. Every run appends one row per action to .cache/molecule-logs/phases.tsv and
# one row per run to .cache/molecule-logs/runs.tsv (run id, commit, the enclosing `make` command
# and its elapsed time, which harness caches this run rebuilt); <scenario>.phases.tsv holds the
# latest run of that scenario.
set -uo pipefail
shopt -s extglob

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

run_id=$(date -u +%Y-%m-%dT%H:%M:%SZ)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ "$commit" != unknown ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  commit+="+dirty"
fi
phases_header=$'run\tcommit\tscenario\taction\tstarted\tseconds\tresult'
runs_header=$'run\tcommit\tended\tscenarios_seconds\tmake_command\tmake_seconds_before\tmake_seconds_at_end\trebuilt\tpassed\tfailed'
[ -s "$logs/phases.tsv" ] || printf '%s\n' "$phases_header" >"$logs/phases.tsv"
[ -s "$logs/runs.tsv" ] || printf '%s\n' "$runs_header" >"$logs/runs.tsv"

# The `make` this script runs under (`make test`, `make molecule`), if any: its pid.
make_pid() {
  local pid=$PPID comm
  for _ in 1 2 3 4 5 6; do
    [ "$pid" -gt 1 ] 2>/dev/null || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    case $comm in make | gmake) printf '%s\n' "$pid"; return 0 ;; esac
    pid=$(awk '{print $4}' "/proc/$pid/stat" 2>/dev/null) || return 1
  done
  return 1
}
mpid=$(make_pid || true)
make_elapsed() { if [ -n "$mpid" ]; then ps -o etimes= -p "$mpid" 2>/dev/null | tr -d ' '; fi; }
make_cmd=-
[ -n "$mpid" ] && make_cmd=$(ps -o args= -p "$mpid" 2>/dev/null | tr '\t' ' ')
make_before=$(make_elapsed)

# Microseconds since the epoch, and a duration in seconds with three decimals.
now_us() { local t=${EPOCHREALTIME/[.,]/}; printf '%s\n' "$((10#$t))"; }
seconds() { printf '%d.%03d' $(($1 / 1000000)) $(($1 % 1000000 / 1000)); }
row() {  # scenario action started_us ended_us result
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run_id" "$commit" "$1" "$2" \
    "$(date -u -d "@$(($3 / 1000000))" +%Y-%m-%dT%H:%M:%SZ)" "$(seconds $(($4 - $3)))" "$5"
}

# Copy Molecule's output through unchanged; write one row per action to $2 as each one ends.
# Molecule writes "[<scenario> > <action>] Executing" without colour and "<scenario> ➜ <action>:
# Executing" with colour (a terminal, no PY_COLORS=0): both are read, escape codes removed.
time_phases() {
  local scenario=$1 out=$2 line plain action status result t0=""
  local name=${scenario//./\\.}
  # After the level name (the run's summary at the end repeats the "Executed" lines without one).
  local plain_re="^[A-Z]+ +\[$name > ([a-z_]+)\] (Executing|Executed: (.*))$"
  local colour_re="^[A-Z]+ +$name ➜ ([a-z_]+): (Executing|Executed: (.*))$"
  while IFS= read -r line || [ -n "$line" ]; do
    printf '%s\n' "$line"
    plain=${line//$'\e'\[*([0-9;])m/}
    plain=${plain%%+([[:space:]])}
    [[ $plain =~ $plain_re || $plain =~ $colour_re ]] || continue
    action=${BASH_REMATCH[1]} status=${BASH_REMATCH[2]} result=${BASH_REMATCH[3]}
    if [ "$status" = Executing ]; then
      t0=$(now_us)
    else  # Molecule's actions run one at a time: this ends the last one that started.
      row "$scenario" "$action" "${t0:-$(now_us)}" "$(now_us)" "$result" >>"$out"
      t0=""
    fi
  done
}

passed=() failed=()
suite_start=$SECONDS
for s in "${scenarios[@]}"; do
  start=$SECONDS
  t_start=$(now_us)
  printf '=== molecule test -s %s\n' "$s"
  : >"$logs/$s.phases.tsv.new"
  # -c: the shared base config, named explicitly so a checkout without .git still finds it.
  # PYTHONUNBUFFERED: each line reaches time_phases when Molecule prints it.
  PYTHONUNBUFFERED=1 "$molecule" -c .config/molecule/config.yml test -s "$s" 2>&1 \
    | time_phases "$s" "$logs/$s.phases.tsv.new" >"$logs/$s.log"
  rc=${PIPESTATUS[0]}
  result=$([ "$rc" -eq 0 ] && echo Successful || echo "Failed (exit $rc)")
  row "$s" total "$t_start" "$(now_us)" "$result" >>"$logs/$s.phases.tsv.new"
  { printf '%s\n' "$phases_header"; cat "$logs/$s.phases.tsv.new"; } >"$logs/$s.phases.tsv"
  cat "$logs/$s.phases.tsv.new" >>"$logs/phases.tsv"
  rm -f "$logs/$s.phases.tsv.new"
  if [ "$rc" -eq 0 ]; then
    passed+=("$s")
    printf '=== %s: PASSED in %d s\n' "$s" $((SECONDS - start))
  else
    failed+=("$s")
    printf '=== %s: FAILED in %d s (log: %s); last lines:\n' "$s" $((SECONDS - start)) "$logs/$s.log"
    tail -n 60 "$logs/$s.log"
  fi
done

# Which harness caches this `make` run rebuilt (a cold run), judged by their times against make's start.
rebuilt=()
make_after=$(make_elapsed)
if [ -n "$make_after" ]; then
  make_start=$(($(date +%s) - make_after))
  for image in celery-fleet/debian:bookworm celery-fleet/debian:trixie celery-fleet/debian:bookworm-cloud; do
    created=$(docker image inspect -f '{{.Created}}' "$image" 2>/dev/null) || continue
    [ "$(date -d "$created" +%s 2>/dev/null || echo 0)" -ge "$make_start" ] && rebuilt+=("image:${image##*:}")
  done
  wheelhouse=${CELERY_FLEET_WHEELHOUSE:-${CELERY_FLEET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/celery-fleet}/wheelhouse}
  [ "$(stat -c %Y "$wheelhouse/py311/.stamp" 2>/dev/null || echo 0)" -ge "$make_start" ] && rebuilt+=(wheelhouse)
  [ "$(stat -c %Y .venv/bin/.installed 2>/dev/null || echo 0)" -ge "$make_start" ] && rebuilt+=(venv)
fi
rebuilt_text=${rebuilt[*]:-none}
printf '%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run_id" "$commit" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  $((SECONDS - suite_start)) "$make_cmd" "${make_before:--}" "${make_after:--}" \
  "$([ -n "$make_after" ] && echo "${rebuilt_text// /,}" || echo -)" \
  "${passed[*]:-none}" "${failed[*]:-none}" >>"$logs/runs.tsv"

printf '\nMolecule scenarios: %d passed (%s), %d failed (%s)\n' \
  ${#passed[@]} "${passed[*]:-none}" ${#failed[@]} "${failed[*]:-none}"
[ ${#failed[@]} -eq 0 ]
