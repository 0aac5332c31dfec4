#!/usr/bin/env bash
# Put Debian's promtool (from the `prometheus` package of bookworm, the `promtool` package of trixie:
# each suite the targets run) into the cache,
# for the unit tests of the alert rules (tests/unit/test_alert_rules.py):
#
#   scripts/ensure-promtool.sh [suite ...]      (default: bookworm trixie)
#   -> $CELERY_FLEET_CACHE/promtool/<suite>/promtool  (+ VERSION: the package's version)
#
# Nothing is installed or started on this machine: apt-get runs as the calling user with a private
# state directory (the suite's package list, fetched once) and only *downloads* the .deb, whose
# promtool (a static Go binary) `dpkg-deb -x` unpacks. Both suites' versions (bookworm 2.42,
# trixie 2.53) check the same rule file, so a rule one of them rejects fails the tests.
#
# The Debian mirror is CELERY_FLEET_DEBIAN_MIRROR, else this machine's apt configuration (as
# scripts/build-images.sh); the archive key is Debian's keyring (package debian-archive-keyring, also
# in Ubuntu's archive). A promtool already in the cache is reused.
set -euo pipefail

log() { printf 'ensure-promtool: %s\n' "$*" >&2; }

cache=${CELERY_FLEET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/celery-fleet}/promtool
keyring=${CELERY_FLEET_DEBIAN_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(bookworm trixie)

# The same lookup as scripts/build-images.sh: that script's text is part of the images' recipe hash
# (and of CI's harness cache key), so moving it into a shared file would rebuild every image.
debian_mirror() {
  if [ -n "${CELERY_FLEET_DEBIAN_MIRROR:-}" ]; then
    printf '%s\n' "$CELERY_FLEET_DEBIAN_MIRROR"
    return
  fi
  local uri=""
  # deb822 sources (new machines have only this) and one-line sources; either file may be missing.
  if [ -r /etc/apt/sources.list.d/debian.sources ]; then
    uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" && $0 !~ /security/ {print ($2 ~ /^\[/ ? $3 : $2); exit}' /etc/apt/sources.list)
  fi
  if [ -z "$uri" ]; then
    log "cannot find a Debian mirror in /etc/apt; set CELERY_FLEET_DEBIAN_MIRROR"
    exit 1
  fi
  printf '%s\n' "$uri"
}

fetch_promtool() {
  local suite=$1 mirror=$2 dest="$cache/$1" work
  work=$(mktemp -d "${TMPDIR:-/tmp}/ensure-promtool.XXXXXX")
  # shellcheck disable=SC2064  # expand now: the directory of this call
  trap "rm -rf '$work'" RETURN
  mkdir -p "$work"/{etc/apt.conf.d,etc/preferences.d,etc/trusted.gpg.d,state/lists/partial,cache/archives/partial,deb}
  printf 'deb [signed-by=%s] %s %s main\n' "$keyring" "$mirror" "$suite" >"$work/etc/sources.list"
  local apt=(-o "Dir::Etc=$work/etc" -o "Dir::Etc::SourceList=$work/etc/sources.list"
    -o "Dir::Etc::SourceParts=$work/etc/sources.list.d" -o "Dir::State=$work/state"
    -o "Dir::State::status=/dev/null" -o "Dir::Cache=$work/cache" -o "APT::Architecture=amd64"
    -o "APT::Architectures=amd64" -o "Acquire::Languages=none" -o "Debug::NoLocking=1")
  log "$suite: fetching the package list from the Debian mirror"
  if ! apt-get -qq "${apt[@]}" update >"$work/apt.log" 2>&1; then
    cat "$work/apt.log" >&2
    log "$suite: apt-get update failed"
    return 1
  fi
  # bookworm ships promtool inside `prometheus`; trixie splits it into its own package `promtool`
  # (a dependency of `prometheus` there).
  local package=prometheus
  if apt-cache "${apt[@]}" show promtool >/dev/null 2>&1; then
    package=promtool
  fi
  (cd "$work/deb" && apt-get -qq "${apt[@]}" download "$package" >"$work/apt.log" 2>&1) || {
    cat "$work/apt.log" >&2
    log "$suite: apt-get download $package failed"
    return 1
  }
  local deb
  deb=$(ls "$work/deb/${package}_"*.deb)
  dpkg-deb -x "$deb" "$work/root"
  mkdir -p "$dest"
  install -m 0755 "$work/root/usr/bin/promtool" "$dest/promtool.new"
  mv "$dest/promtool.new" "$dest/promtool"
  printf '%s %s\n' "$package" "$(dpkg-deb -f "$deb" Version)" >"$dest/VERSION"
  log "$suite: promtool $(cat "$dest/VERSION") in $dest"
}

missing=()
for suite in "${suites[@]}"; do
  [ -x "$cache/$suite/promtool" ] || missing+=("$suite")
done
[ ${#missing[@]} -gt 0 ] || exit 0

for tool in apt-get dpkg-deb; do
  command -v "$tool" >/dev/null 2>&1 || {
    log "$tool is missing: promtool comes from Debian's prometheus package (a Debian or Ubuntu machine)"
    exit 1
  }
done
if [ ! -r "$keyring" ]; then
  log "no Debian archive keyring at $keyring: install debian-archive-keyring (or set CELERY_FLEET_DEBIAN_KEYRING)"
  exit 1
fi
mirror=$(debian_mirror)
for suite in "${missing[@]}"; do
  fetch_promtool "$suite" "$mirror"
done
