#!/usr/bin/env bash
# Run Molecule scenarios and end with a summary line.
#
#   [JOBS=N] scripts/run-scenarios.sh [scenario ...]   (default: every directory in molecule/ with a molecule.yml)
#
# Each scenario runs the full `molecule test` sequence; a failure does not stop the others, so one
# run reports every broken scenario. Per-scenario logs go to .cache/molecule-logs/<scenario>.log; a
# failed one is also kept as <scenario>.failed-<run id>.log, and its failed tests' assertion messages
# and last lines are printed. Exit status is non-zero if any scenario failed.
#
# JOBS=N (default 1: one after another) runs up to N scenarios at once. Scenarios share nothing
# (each has its own container, network and Molecule ephemeral directory names), so any two can
# overlap. By the last recorded time of each (the `total` rows of phases.tsv, else
# molecule/expected-seconds.tsv; a scenario neither knows counts as the longest), the N longest
# start first and each free slot takes the next in the order scripts/plan-lanes.py finds for the
# others: the one that ends the last lane soonest, so no short scenario is left running alone on
# 2 cores at the end. The summary line lists the scenarios in the order given.
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
# Every ansible-playbook of the scenarios (Molecule's, by the PATH; the tests', by this variable)
# goes through the harness's client: runs forked from a server that imported Ansible once
# (molecule/resources/kept_playbook.py). CELERY_FLEET_KEPT_PLAYBOOK=0 runs each anew.
if [ -x "$(dirname "$molecule")/ansible-playbook" ]; then
  export CELERY_FLEET_ANSIBLE_PLAYBOOK_REAL=$(dirname "$molecule")/ansible-playbook
  export CELERY_FLEET_ANSIBLE_PLAYBOOK=$top/molecule/resources/bin/ansible-playbook
  export PATH=$top/molecule/resources/bin:$PATH
fi
logs=$top/.cache/molecule-logs
mkdir -p "$logs"

scenarios=("$@")
if [ ${#scenarios[@]} -eq 0 ]; then
  for f in molecule/*/molecule.yml; do
    scenarios+=("$(basename "$(dirname "$f")")")
  done
fi

# The start time, and this script's pid: two runs started in the same second (two sessions, two
# terminals) keep their records apart.
run_id=$(date -u +%Y-%m-%dT%H:%M:%SZ)-$$
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ "$commit" != unknown ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  commit+="+dirty"
fi
phases_header=$'run\tcommit\tscenario\taction\tstarted\tseconds\tresult'
runs_header=$'run\tcommit\tended\tscenarios_seconds\tmake_command\tmake_seconds_before\tmake_seconds_at_end\trebuilt\tpassed\tfailed'
[ -s "$logs/phases.tsv" ] || printf '%s\n' "$phases_header" >"$logs/phases.tsv"
[ -s "$logs/runs.tsv" ] || printf '%s\n' "$runs_header" >"$logs/runs.tsv"

# The `make` this script runs under (`make test`, `make molecule`), if any: its pid. The outermost
# one: `make test` runs `make molecule` as a sub-make, and its own start is the suite's.
make_pid() {
  local pid=$PPID comm found=""
  for _ in 1 2 3 4 5 6 7 8; do
    [ "$pid" -gt 1 ] 2>/dev/null || break
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || break
    case $comm in make | gmake) found=$pid ;; esac
    pid=$(awk '{print $4}' "/proc/$pid/stat" 2>/dev/null) || break
  done
  [ -n "$found" ] && printf '%s\n' "$found"
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

# The last recorded seconds of a scenario's whole run: the newest passing `total` row (a failed run
# may have stopped early); on a machine that never ran it (a fresh clone, CI), the estimate in
# molecule/expected-seconds.tsv (the last clean-clone `make test`); -1 if neither knows it.
last_seconds() {
  local t
  t=$(awk -F'\t' -v s="$1" '$3 == s && $4 == "total" && $7 == "Successful" { t = $6 } END { printf "%d\n", (t == "" ? -1 : t) }' \
    "$logs/phases.tsv")
  if [ "$t" -lt 0 ] && [ -f molecule/expected-seconds.tsv ]; then
    t=$(awk -F'\t' -v s="$1" '$1 == s { t = $2 } END { printf "%d\n", (t == "" ? -1 : t) }' molecule/expected-seconds.tsv)
  fi
  printf '%s\n' "$t"
}

# One scenario: its log, its phase rows, a line when it starts and ends, its exit status in $state.
run_one() {
  local s=$1 start=$SECONDS t_start rc result report
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
  # Scenarios running at once append whole blocks, one at a time.
  { flock 8; cat "$logs/$s.phases.tsv.new" >>"$logs/phases.tsv"; } 8>>"$logs/.phases.lock"
  rm -f "$logs/$s.phases.tsv.new"
  printf '%s\n' "$rc" >"$state/$s"
  if [ "$rc" -eq 0 ]; then
    printf '=== %s: PASSED in %d s\n' "$s" $((SECONDS - start))
  else
    # The log of a failed run is kept under its run's name too: the next run of the scenario in
    # this tree (a retry alone) writes $s.log again, and the failure's evidence went with it.
    kept="$logs/$s.failed-${run_id//:/}.log"
    cp "$logs/$s.log" "$kept"
    # One write, so the lines of a scenario still running elsewhere do not split it. The failed tests'
    # names and assertion messages (pytest's "E" lines: a loss's task ids and trail) come first: the
    # log's last lines are pytest's durations and Molecule's destroy, and CI keeps only this output.
    report=$(printf '=== %s: FAILED in %d s (log: %s); the failures:\n' "$s" $((SECONDS - start)) "$kept"
      sed -n '/^=\+ FAILURES =\+$/,/^=\+ [a-z].* =\+$/{/^_\{3,\} .* _\{3,\}$/p;/^E /p;/^[^ ].*:[0-9]\+: [A-Za-z.]*Error$/p}' \
        "$kept" | head -n 150
      printf '=== %s: last lines:\n' "$s"
      tail -n 60 "$kept")
    printf '%s\n' "$report"
  fi
}

jobs=${JOBS:-1}
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "run-scenarios: JOBS must be a positive number, not '$jobs'" >&2; exit 2; }
order=("${scenarios[@]}")
if [ "$jobs" -gt 1 ] && [ ${#scenarios[@]} -gt 1 ]; then
  # The JOBS longest first, the rest packed (plan-lanes.py); a scenario never recorded (-1) counts
  # as the longest; ties keep the order given.
  mapfile -t order < <(
    for s in "${scenarios[@]}"; do
      t=$(last_seconds "$s")
      [ "$t" -lt 0 ] && t=999999
      printf '%s\t%s\n' "$t" "$s"
    done | "${PYTHON:-python3}" scripts/plan-lanes.py "$jobs"
  )
  [ ${#order[@]} -eq ${#scenarios[@]} ] || { echo "run-scenarios: scripts/plan-lanes.py failed" >&2; exit 2; }
  printf '=== %d at a time, longest first, then packed: %s\n' "$jobs" "${order[*]}"
fi

state=$(mktemp -d)
trap 'rm -rf "$state"' EXIT
suite_start=$SECONDS
running=0
for s in "${order[@]}"; do
  if [ "$jobs" -eq 1 ]; then
    run_one "$s"
    continue
  fi
  while [ "$running" -ge "$jobs" ]; do
    wait -n
    running=$((running - 1))
  done
  run_one "$s" &
  running=$((running + 1))
done
wait

passed=() failed=()
for s in "${scenarios[@]}"; do
  if [ "$(cat "$state/$s" 2>/dev/null)" = 0 ]; then passed+=("$s"); else failed+=("$s"); fi
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
