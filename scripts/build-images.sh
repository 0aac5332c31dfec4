#!/usr/bin/env bash
# Build the local Debian base images the Molecule scenarios and the sandbox run on.
#
#   scripts/build-images.sh [image ...]      (default: bookworm trixie bookworm-cloud)
#
# Images are never pulled: debootstrap builds a minimal root file system, `docker import` turns it
# into celery-fleet/debian:<image>, with systemd as PID 1 and what Ansible and testinfra need.
# `<suite>-cloud` is a host as minimal as a cloud image, reached over SSH (molecule/ssh): sshd, sudo,
# a login user `deploy` with passwordless sudo and no key yet (the scenario installs its own at
# create time), python3 but no python3-apt and no apt package lists.
# Each image carries the hash of its recipe (this file + the mirror) as a label; a second run
# reuses an image whose label matches and rebuilds one whose recipe changed. A build interrupted
# half-way leaves only a temporary tag and directory, which the next run removes.
#
# The Debian mirror comes from this machine's apt configuration; set CELERY_FLEET_DEBIAN_MIRROR to
# override it.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
log() { printf 'build-images: %s\n' "$*" >&2; }

# Two runs at once (two `make molecule` in parallel) would debootstrap into the same directories
# and break each other: the second waits for the first, then finds its images up to date.
lock_dir=${CELERY_FLEET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/celery-fleet}
mkdir -p "$lock_dir"
exec 9>"$lock_dir/build-images.lock"
if ! flock -n 9; then
  log "another build-images run holds $lock_dir/build-images.lock: waiting for it"
  flock 9
fi

# What Ansible (python3; python3-apt, which the apt module needs in check mode), testinfra (iproute2
# for `ss`, procps for `ps`) and systemd-in-Docker need.
packages=systemd,systemd-sysv,dbus,python3,python3-apt,iproute2,procps,ca-certificates,gnupg,curl
# What a Debian cloud image has that the roles and tests rely on: no python3-apt, no gnupg.
cloud_packages=systemd,systemd-sysv,dbus,python3,iproute2,procps,ca-certificates,curl,openssh-server,sudo

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

ensure_debootstrap() {
  command -v debootstrap >/dev/null 2>&1 && return
  if [ "$(id -u)" -eq 0 ] && [ -r /etc/debian_version ]; then
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
  else
    log "debootstrap is missing: install it (Debian/Ubuntu: apt-get install debootstrap)"
    exit 1
  fi
}

# The SSH scenario (molecule/ssh) reaches the cloud-like image with the OpenSSH client: ssh and
# ssh-keygen on this machine.
ensure_ssh_client() {
  command -v ssh >/dev/null 2>&1 && command -v ssh-keygen >/dev/null 2>&1 && return
  if [ "$(id -u)" -eq 0 ] && [ -r /etc/debian_version ]; then
    log "installing openssh-client"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-client >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-client >/dev/null; }
  else
    log "the OpenSSH client (ssh, ssh-keygen) is missing: install it (Debian/Ubuntu: apt-get install openssh-client)"
    exit 1
  fi
}

# The login user of the cloud-like image, as cloud-init sets up a default user: passwordless sudo,
# no password, a key (none yet); sshd takes keys only.
make_cloud_host() {
  local root=$1
  chroot "$root" useradd --create-home --shell /bin/bash deploy
  printf 'deploy ALL=(ALL) NOPASSWD:ALL\n' >"$root/etc/sudoers.d/90-deploy"
  chmod 0440 "$root/etc/sudoers.d/90-deploy"
  chroot "$root" install -d -m 0700 -o deploy -g deploy /home/deploy/.ssh
  printf 'PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\n' \
    >"$root/etc/ssh/sshd_config.d/50-cloud.conf"
  chroot "$root" systemctl enable ssh.service >/dev/null 2>&1
}

build_one() {
  local name=$1 mirror=$2 image="celery-fleet/debian:$1"
  local suite=${name%-cloud} flavour=base include=$packages
  if [ "$suite" != "$name" ]; then flavour=cloud include=$cloud_packages; fi
  local recipe current
  recipe=$( { cat "$0"; echo "$mirror $name $include"; } | sha256sum | cut -c1-16)
  current=$(docker image inspect -f '{{ index .Config.Labels "celery-fleet.recipe" }}' "$image" 2>/dev/null || true)
  if [ "$current" = "$recipe" ]; then
    log "$image is up to date (recipe $recipe): reusing it"
    return
  fi
  log "building $image (recipe $recipe${current:+, replacing $current})"

  local root="${CELERY_FLEET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/celery-fleet}/rootfs-$name"
  rm -rf "$root"
  mkdir -p "$root"
  local start=$SECONDS
  if ! debootstrap --variant=minbase --include="$include" "$suite" "$root" "$mirror" \
      >"$root.log" 2>&1; then
    tail -20 "$root.log" >&2
    log "debootstrap failed for $name (full log: $root.log)"
    exit 1
  fi
  # Containers have no console to log in on and no hardware to wait for.
  chroot "$root" systemctl mask getty@tty1.service console-getty.service \
    systemd-udevd.service systemd-udev-trigger.service systemd-modules-load.service \
    sys-kernel-config.mount sys-kernel-debug.mount >/dev/null 2>&1
  # Each container gets its own machine id at first boot.
  : >"$root/etc/machine-id"
  rm -f "$root/var/lib/dbus/machine-id"
  if [ "$flavour" = cloud ]; then
    make_cloud_host "$root"
    # A cloud image ships without package lists: the first apt task has to fetch them.
    chroot "$root" apt-get clean
    rm -rf "$root"/var/lib/apt/lists/*
  else
    # Keep the package lists, as on a real host: the apt module's check mode looks packages up
    # in them (it cannot refresh them without changing the host).
    chroot "$root" apt-get update -qq
    chroot "$root" apt-get clean
  fi

  tar -C "$root" -c . | docker import \
    -c 'CMD ["/lib/systemd/systemd"]' \
    -c 'ENV container=docker' \
    -c "LABEL celery-fleet.recipe=$recipe" \
    - "$image.partial" >/dev/null
  docker tag "$image.partial" "$image"
  docker rmi "$image.partial" >/dev/null
  rm -rf "$root" "$root.log"
  log "$image built in $((SECONDS - start)) s"
}

main() {
  local suites=("$@")
  [ ${#suites[@]} -gt 0 ] || suites=(bookworm trixie bookworm-cloud)
  "$here/ensure-docker.sh"
  # Leftovers of an interrupted build: temporary tags.
  docker images --format '{{.Repository}}:{{.Tag}}' | grep -E '^celery-fleet/debian:.*\.partial$' \
    | xargs -r docker rmi -f >/dev/null 2>&1 || true
  ensure_debootstrap
  ensure_ssh_client
  local mirror
  mirror=$(debian_mirror)
  local pids=() suite
  # The images build in parallel: debootstrap mostly waits on downloads.
  for suite in "${suites[@]}"; do
    build_one "$suite" "$mirror" &
    pids+=($!)
  done
  local rc=0 pid
  for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
  return $rc
}

main "$@"
