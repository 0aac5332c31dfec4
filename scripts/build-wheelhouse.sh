#!/usr/bin/env bash
# Download the Python packages the roles install on targets, as wheels, for each target Python.
#
#   scripts/build-wheelhouse.sh [extra-requirements.txt ...]
#
# Writes $CELERY_FLEET_WHEELHOUSE/py311 (Debian 12) and .../py313 (Debian 13), each a flat
# directory of wheels plus a requirements.txt, and the same as py311.tar / py313.tar, so the celery_app role can install with
# `pip install --no-index --find-links`. The pins are requirements/targets.txt plus any extra
# requirement files given (the app's own requirements). The installer tools of
# requirements/tools.txt (uv: one wheel for every Python) go to $CELERY_FLEET_WHEELHOUSE/tools, sent
# to a host only when it installs with them. A directory whose stamp matches the
# requirements is reused; a changed pin rebuilds it; an interrupted download never replaces a
# good wheelhouse (it is built aside and moved into place).
#
# The package index is the one this machine's pip is configured with (pip.conf, PIP_INDEX_URL);
# set PIP_INDEX_URL to use another.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
log() { printf 'build-wheelhouse: %s\n' "$*" >&2; }

cache=${CELERY_FLEET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/celery-fleet}
wheelhouse=${CELERY_FLEET_WHEELHOUSE:-$cache/wheelhouse}
pip=${PIP:-$top/.venv/bin/pip}
[ -x "$pip" ] || pip=pip3

reqs=("$top/requirements/targets.txt" "$@")
tools=$top/requirements/tools.txt
# Target Pythons: Debian 12 ships 3.11 (3.11.2), Debian 13 ships 3.13. pip download evaluates
# environment markers against the controller's own Python, not the target's: requirements that
# only a target needs because of a marker are listed unconditionally in requirements/targets.txt.
pythons=(3.11 3.13)
platforms=(manylinux_2_28_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64
           manylinux_2_5_x86_64 manylinux1_x86_64)

platform_args=()
for p in "${platforms[@]}"; do platform_args+=(--platform "$p"); done

# fill DEST STAMP PIP-DOWNLOAD-ARGS...: download into DEST.partial and move it into place, unless
# DEST already carries STAMP (then return 1). With FILL_TARGET set, DEST/requirements.txt lists
# the pins and DEST.tar holds the same as one archive: copying one file to a host is far cheaper
# than copying a directory file by file (measured: 50-85 s for 28 wheels through the docker
# connection). The archive is made before anything moves, so the pair is never half replaced.
fill() {
  local dest=$1 stamp=$2
  shift 2
  if [ -f "$dest/.stamp" ] && [ "$(cat "$dest/.stamp")" = "$stamp" ]; then
    log "$dest is up to date (stamp $stamp): reusing it"
    return 1
  fi
  log "downloading wheels into $dest"
  rm -rf "$dest.partial"
  mkdir -p "$dest.partial"
  "$pip" download --quiet --dest "$dest.partial" --only-binary=:all: "${platform_args[@]}" "$@" \
    2> >(grep -v 'is ignored: it is neither' >&2)
  if [ -n "${FILL_TARGET:-}" ]; then
    cat "${reqs[@]}" | grep -vE '^\s*(#|$)' >"$dest.partial/requirements.txt"
  fi
  echo "$stamp" >"$dest.partial/.stamp"
  if [ -n "${FILL_TARGET:-}" ]; then
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$dest.partial" -cf "$dest.partial.tar" .
    rm -rf "$dest" "$dest.tar"
    mv "$dest.partial.tar" "$dest.tar"
  fi
  rm -rf "$dest"
  mv "$dest.partial" "$dest"
}

req_args=()
for r in "${reqs[@]}"; do req_args+=(-r "$r"); done
stamp=$(cat "${reqs[@]}" "$0" | sha256sum | cut -c1-16)
for pyver in "${pythons[@]}"; do
  dest="$wheelhouse/py${pyver/./}"
  start=$SECONDS
  FILL_TARGET=1 fill "$dest" "$stamp" \
    --python-version "$pyver" --implementation cp --abi "cp${pyver/./}" "${req_args[@]}" || continue
  log "$dest: $(find "$dest" -name '*.whl' | wc -l) wheels, $(du -sh "$dest" | cut -f1), $((SECONDS - start)) s"
done

# The installer tools: platform wheels that do not depend on the Python version.
if fill "$wheelhouse/tools" "$(cat "$tools" "$0" | sha256sum | cut -c1-16)" --no-deps -r "$tools"; then
  log "$wheelhouse/tools: $(find "$wheelhouse/tools" -name '*.whl' -printf '%f ')"
fi
