#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine.
#
# If none answers and we are root on Debian/Ubuntu, install Debian's docker.io and start dockerd
# in the background; otherwise stop and say what to install. Safe to run again: an engine that
# already answers is left alone, and a stale pid/socket left by a killed dockerd is cleaned up.
set -euo pipefail

log() { printf 'ensure-docker: %s\n' "$*" >&2; }

engine_answers() { docker info >/dev/null 2>&1; }

if engine_answers; then
  log "Docker engine answers; nothing to do."
  exit 0
fi

if [ "$(id -u)" -ne 0 ] || [ ! -r /etc/debian_version ]; then
  log "no Docker engine answers. Install and start one (Debian/Ubuntu: apt-get install docker.io;"
  log "elsewhere see your distribution's Docker packages), or run this as root on Debian/Ubuntu."
  exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
  log "no Docker engine: installing Debian's docker.io (needs the machine's apt mirror)."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io >/dev/null
fi

# A dockerd killed with its session leaves its pid file and socket behind; both block a restart.
pidfile=/var/run/docker.pid
if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  log "removing stale $pidfile left by an earlier dockerd"
  rm -f "$pidfile" /var/run/docker.sock
fi
rm -f /var/run/docker/containerd/containerd.pid 2>/dev/null || true

if ! pgrep -x dockerd >/dev/null 2>&1; then
  log "starting dockerd in the background (log: /var/log/celery-fleet-dockerd.log)"
  nohup dockerd >/var/log/celery-fleet-dockerd.log 2>&1 &
fi

for _ in $(seq 1 60); do
  if engine_answers; then
    log "Docker engine is up: $(docker version --format '{{.Server.Version}}' 2>/dev/null)"
    exit 0
  fi
  sleep 1
done
log "dockerd did not answer within 60 s; see /var/log/celery-fleet-dockerd.log"
exit 1
