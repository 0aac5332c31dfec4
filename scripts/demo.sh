#!/usr/bin/env bash
# The demo: `make demo` (up) and `make demo-destroy` (down).
#
# up:   four systemd containers on the Docker network cf-sandbox (playbooks/sandbox.yml): a Redis
#       host, two worker hosts with different worker lists, an ops host with Flower and beat; then
#       site.yml with inventories/sandbox; then the example app's workload (a ping to every queue and
#       seed 000's chord) sent from the ops host through the app's virtualenv, as the `producer`
#       ACL user; then a summary. Re-runnable: a second run converges (changed=0) and reprints.
#       SENTINEL=1: the broker as a Sentinel topology (inventories/sandbox/sentinel.cfg as a second
#       inventory source: cf-redis-2 and cf-redis-3 join cf-redis, a Sentinel on each, every client
#       through sentinel://); after the workload, a planned switchover (playbooks/switchover.yml)
#       moves the master, and a task to every queue shows the fleet working on the new one. The
#       summary adds the master before and after and the ACL LOG of every data node.
#       TLS=1: the broker over TLS only (group_vars/all/redis_tls.yml, sandbox_tls): a throwaway CA
#       (playbooks/throwaway-ca.yml, in .cache/sandbox-ca) first, then Redis on 6380 with TLS only and
#       every client through rediss:// with the CA verified. With SENTINEL=1 too: every data node
#       and Sentinel TLS-only, replication and the Sentinels' links over TLS (this script asks the
#       Sentinels over TLS, with the node's own certificate).
# down: removes the containers (cf-redis-2 and cf-redis-3 too, if SENTINEL=1 made them) and the
#       network.
#
# The sandbox's vault password (inventories/sandbox/vault-password.txt) and its vaults are made on
# this checkout by `make sandbox-vault` (playbooks/sandbox-vault.yml: random, 0600, ignored by git);
# `make demo` runs it first.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-.venv/bin}
INVENTORY=inventories/sandbox
SENTINEL_INVENTORY=$INVENTORY/sentinel.cfg
SENTINEL=${SENTINEL:-0}
TLS=${TLS:-0}
INVENTORIES=(-i "$INVENTORY")
DATA_NODES=(cf-redis)
REDIS_CLI_CONNECT=()
# A Sentinel, from its own container: loopback, over TLS with the node's own certificate when TLS=1.
SENTINEL_CLI_CONNECT=(-p 26379)
if [ "$TLS" = 1 ]; then
  # The CA's directory as an extra variable too: the CA play runs on the controller (localhost), which
  # reads no group_vars of the inventory.
  INVENTORIES+=(-e sandbox_tls=true -e "celery_fleet_throwaway_ca_dir=$PWD/.cache/sandbox-ca")
  # No plaintext port, and the TLS port wants a client certificate: the server's own Unix socket.
  REDIS_CLI_CONNECT=(-s /run/redis/redis-server.sock)
  SENTINEL_CLI_CONNECT+=(--tls --cacert /etc/redis/tls/ca.crt --cert /etc/redis/tls/server.crt --key /etc/redis/tls/server.key)
fi
if [ "$SENTINEL" = 1 ]; then
  INVENTORIES+=(-i "$SENTINEL_INVENTORY")
  DATA_NODES+=(cf-redis-2 cf-redis-3)
fi
VAULT_FILE=$INVENTORY/vault-password.txt
VAULT=$INVENTORY/group_vars/all/vault.yml
export CELERY_FLEET_WHEELHOUSE=${CELERY_FLEET_WHEELHOUSE:-$HOME/.cache/celery-fleet/wheelhouse}
export ANSIBLE_FORCE_COLOR=${ANSIBLE_FORCE_COLOR:-0}
APP=celerydemo
OPS=cf-ops
FLOWER_URL=http://127.0.0.1:5555
PROMETHEUS_URL=http://127.0.0.1:9090

playbook() {
  "$BIN/ansible-playbook" "${INVENTORIES[@]}" --vault-password-file "$VAULT_FILE" "$@"
}

# Runs the app's Python on the ops host as the service user, through the wrapper that loads the
# environment file (the broker password never reaches argv).
on_ops() {
  docker exec "$OPS" runuser -u "$APP" -- "/opt/$APP/bin/celery-env" "$@"
}

# The arguments, joined with ", ".
joined() {
  local IFS=,
  sed 's/,/, /g' <<<"$*"
}

# A secret of the sandbox vault (this checkout's), by name.
vault_value() {
  "$BIN/ansible-vault" view --vault-password-file "$VAULT_FILE" "$1" | sed -n "s/^$2: *//p" | tr -d '"'
}

# redis-cli in a data node's container, the password on stdin (--askpass), not in argv.
redis_cli() {
  local host=$1 password=$2
  shift 2
  docker exec -i "$host" redis-cli "${REDIS_CLI_CONNECT[@]}" --askpass "$@" <<<"$password"
}

# How many entries a data node's ACL LOG holds, or "UNREADABLE (<error>)": never a 0 it did not read.
acl_denials() {
  local out
  if out=$(redis_cli "$1" "$2" --user admin ACL LOG 2>&1) && ! grep -qE '^(ERR|NOAUTH|WRONGPASS|Could not connect|I/O error)' <<<"$out"; then
    grep -c '^reason$' <<<"$out" || true
  else
    echo "UNREADABLE ($(head -1 <<<"$out"))"
  fi
}

# The data node the Sentinels name as the master: "<container> (<ip>), named by N of 3 Sentinels".
sentinel_master() {
  local password ip answers=() host node
  password=$(vault_value "$INVENTORY/group_vars/all/vault_sentinel.yml" vault_redis_sentinel_password)
  for host in "${DATA_NODES[@]}"; do
    answers+=("$(docker exec -i "$host" redis-cli "${SENTINEL_CLI_CONNECT[@]}" --askpass \
      SENTINEL GET-MASTER-ADDR-BY-NAME celery-fleet <<<"$password" 2>/dev/null | head -1)")
  done
  ip=$(printf '%s\n' "${answers[@]}" | sort | uniq -c | sort -rn | awk 'NR == 1 {print $2}')
  for host in "${DATA_NODES[@]}"; do
    node=$(docker inspect -f '{{(index .NetworkSettings.Networks "cf-sandbox").IPAddress}}' "$host")
    if [ "$node" = "$ip" ]; then
      echo "$host ($ip), named by $(printf '%s\n' "${answers[@]}" | grep -cx "$ip") of ${#answers[@]} Sentinels"
      return
    fi
  done
  echo "${ip:-none} (no data node of the sandbox), answers: ${answers[*]}"
}

# Each running service of the app on the worker and ops hosts with its systemd invocation id (a
# restart gives a new one).
service_invocations() {
  local host
  for host in cf-worker-gpu cf-worker-cpu "$OPS"; do
    docker exec "$host" sh -c "for unit in \$(systemctl list-units --plain --no-legend --state=running '$APP-*.service' \
      | cut -d' ' -f1); do echo $host \$unit \$(systemctl show -p InvocationID --value \$unit); done"
  done
}

summary_workers() {
  # One inspect for queues and one for stats, from the ops host; joined on the controller.
  local queues stats
  queues=$(on_ops "/opt/$APP/venv/bin/celery" -A celery_fleet_app inspect --json --timeout 5 active_queues)
  stats=$(on_ops "/opt/$APP/venv/bin/celery" -A celery_fleet_app inspect --json --timeout 5 stats)
  QUEUES_JSON=$queues STATS_JSON=$stats "$BIN/python" - <<'PY'
import json, os
queues = json.loads(os.environ["QUEUES_JSON"])
stats = json.loads(os.environ["STATS_JSON"])
print(f"  {'worker (node)':<40} {'pool':<8} {'conc.':>5}  queues")
for node in sorted(stats):
    pool = stats[node]["pool"]["implementation"].split(":")[0].rsplit(".", 1)[-1]
    conc = stats[node]["pool"]["max-concurrency"]
    names = ",".join(sorted(q["name"] for q in queues.get(node, [])))
    print(f"  {node:<40} {pool:<8} {conc:>5}  {names}")
print(f"  {len(stats)} workers answered")
PY
}

up() {
  echo "==> demo: sandbox containers (playbooks/sandbox.yml)"
  playbook playbooks/sandbox.yml
  if [ "$TLS" = 1 ]; then
    echo "==> demo: a throwaway CA and the broker's certificate (playbooks/throwaway-ca.yml)"
    playbook playbooks/throwaway-ca.yml --flush-cache >.cache/demo-ca.log 2>&1 || {
      tail -40 .cache/demo-ca.log
      exit 1
    }
    sed -n '/PLAY RECAP/,/^$/p' .cache/demo-ca.log
  fi
  echo "==> demo: the fleet (ansible-playbook site.yml ${INVENTORIES[*]} --vault-password-file $VAULT_FILE)"
  local started=$SECONDS
  # --flush-cache: ansible.cfg keeps facts for an hour, and containers made again get new addresses
  # (Redis' bind comes from the Redis host's facts: a stale address stops it from starting).
  playbook site.yml --flush-cache | tee .cache/demo-site.log | sed -n '/PLAY RECAP/,/^$/p'
  local deploy_seconds=$((SECONDS - started))

  echo "==> demo: the workload, sent from $OPS as the producer ACL user"
  local ping chord
  ping=$(on_ops "/opt/$APP/venv/bin/python" -m celery_fleet_app celery_demo.workload --timeout 60 queues)
  chord=$(on_ops "/opt/$APP/venv/bin/python" -m celery_fleet_app celery_demo.workload --timeout 60 chord --seconds 2)

  local sentinel_report=""
  if [ "$SENTINEL" = 1 ]; then
    local master_before master_after switchover_seconds switchover_recap ping_after services_before restarted
    master_before=$(sentinel_master)
    services_before=$(service_invocations)
    echo "==> demo: a planned switchover of the master (ansible-playbook playbooks/switchover.yml ${INVENTORIES[*]} ...)"
    started=$SECONDS
    playbook playbooks/switchover.yml | tee .cache/demo-switchover.log | sed -n '/PLAY RECAP/,/^$/p'
    switchover_seconds=$((SECONDS - started))
    switchover_recap=$(grep -q '^cf-redis.* failed=[1-9]' .cache/demo-switchover.log && echo FAILED || echo done)
    master_after=$(sentinel_master)
    echo "==> demo: a task to every queue again, on the new master"
    ping_after=$(on_ops "/opt/$APP/venv/bin/python" -m celery_fleet_app celery_demo.workload --timeout 60 queues)
    restarted=$(comm -3 <(sort <<<"$services_before") <(service_invocations | sort) | awk '{print $2}' | sort -u | wc -l)
    # A newline first: the report goes right after the chord's line, and without Sentinel the
    # summary stays as it was.
    sentinel_report=$'\n\n'$(
      cat <<SENTINEL_REPORT
Broker: Sentinel topology (inventories/sandbox/sentinel.cfg): data nodes $(joined "${DATA_NODES[@]}"),
a Sentinel on each; every client asks them for the master (sentinel://)
  master before:  $master_before
  switchover:     playbooks/switchover.yml, $switchover_recap in $switchover_seconds s
  master after:   $master_after
  A task to every queue after the switchover ($(wc -l <<<"$services_before") services of workers, beat and Flower; restarted since: $restarted):
$(sed 's/^/    /' <<<"$ping_after")
SENTINEL_REPORT
    )
  fi

  local flower_anon flower_auth flower_password
  flower_anon=$(curl -s -o /dev/null -w '%{http_code}' "$FLOWER_URL/api/workers" || true)
  flower_password=$(vault_value "$VAULT" vault_flower_admin_password)
  flower_auth=$(curl -s -o /dev/null -w '%{http_code}' -u "admin:$flower_password" "$FLOWER_URL/api/workers" || true)
  unset flower_password
  # Prometheus (group monitoring): its targets' health and the alerts it holds right now.
  local prom_targets prom_alerts
  # A target not scraped yet is "unknown": wait (at most 60 s) until each has been scraped once.
  prom_targets=$(python3 - "$PROMETHEUS_URL" <<'PROM' 2>/dev/null || echo "not answering"
import json, sys, time, urllib.request
deadline = time.monotonic() + 60
while True:
    with urllib.request.urlopen(sys.argv[1] + "/api/v1/targets", timeout=10) as reply:
        t = json.load(reply)["data"]["activeTargets"]
    if all(x["health"] != "unknown" for x in t) or time.monotonic() > deadline:
        break
    time.sleep(2)
print("%d of %d targets up" % (sum(x["health"] == "up" for x in t), len(t))
      + "".join(", %s %s" % (x["labels"]["job"], x["health"]) for x in t if x["health"] != "up"))
PROM
)
  prom_alerts=$(curl -s "$PROMETHEUS_URL/api/v1/alerts" | python3 -c 'import json, sys
a = json.load(sys.stdin)["data"]["alerts"]
print(", ".join(x["labels"]["alertname"] + " " + x["state"] for x in a) or "none")' 2>/dev/null || echo "not answering")

  # Denials of the least-privilege ACL users during the whole run (0: the rule sets suffice).
  local acl_log admin_password host
  admin_password=$(vault_value "$VAULT" vault_redis_admin_password)
  acl_log=$(acl_denials cf-redis "$admin_password")
  if [ "$SENTINEL" = 1 ]; then
    acl_log="on cf-redis $acl_log"
    for host in "${DATA_NODES[@]:1}"; do
      acl_log="$acl_log, on $host $(acl_denials "$host" "$admin_password")"
    done
  fi
  unset admin_password

  # TLS=1: what listens on the broker host, and what a plaintext client gets there.
  local broker_report="plaintext (redis://cf-redis:6379); TLS=1 make demo: TLS only" tls_listen plain_listen plain_ping
  if [ "$TLS" = 1 ]; then
    tls_listen=$(docker exec cf-redis ss -Hltn 'sport = :6380' | awk '{print $4}' | paste -sd ' ' - || true)
    plain_listen=$(docker exec cf-redis ss -Hltn 'sport = :6379' | awk '{print $4}' | paste -sd ' ' - || true)
    plain_ping=$(docker exec cf-redis redis-cli -p 6379 PING 2>&1 | head -1 || true)
    broker_report="TLS only: redis-server listens on ${tls_listen:-nothing} (the broker's certificate from .cache/sandbox-ca, verified by every client);
  6379: ${plain_listen:-closed}; a plaintext PING there: $plain_ping"
  fi

  cat <<SUMMARY

==================== celery-fleet sandbox ====================
Deploy: site.yml in ${deploy_seconds} s ($(grep -c '^cf-.*changed=0 ' .cache/demo-site.log || true) of $((${#DATA_NODES[@]} + 3)) hosts unchanged)
Broker: $broker_report

Workers, as Celery reports them (celery inspect stats / active_queues):
$(summary_workers)

A task to every queue (queue, worker that ran it):
$(sed 's/^/  /' <<<"$ping")

Seed 000's chord (three 2 s parts in parallel on the gevent worker, then the callback):
  $chord$sentinel_report

Redis ACL LOG: $acl_log denied command(s) (users worker, producer, flower; admin for this check)

Flower: $FLOWER_URL  (published on this machine's loopback only)
  without credentials: HTTP $flower_anon; as admin: HTTP $flower_auth
  user: admin
  password: vault_flower_admin_password in the sandbox vault (made on this checkout):
    $BIN/ansible-vault view $VAULT --vault-password-file $VAULT_FILE
Prometheus: $PROMETHEUS_URL  (published on this machine's loopback only): $prom_targets
  alerts now: $prom_alerts
  provoke one: docker exec cf-worker-cpu systemctl stop celerydemo-worker-low-priority
  (CeleryWorkerOffline pending, then firing after 2 min; systemctl start resolves it)
Shell on a host: docker exec -it cf-worker-cpu bash   ($(joined "${DATA_NODES[@]}"), cf-worker-gpu, cf-ops)
Tear down: make demo-destroy
===============================================================
SUMMARY
}

down() {
  # With sentinel.cfg whatever SENTINEL says, so that cf-redis-2 and cf-redis-3 go too if a
  # SENTINEL=1 run made them (removing a container that does not exist changes nothing).
  INVENTORIES=(-i "$INVENTORY" -i "$SENTINEL_INVENTORY")
  playbook playbooks/sandbox.yml -e sandbox_state=absent | sed -n '/PLAY RECAP/,/^$/p'
  echo "demo: sandbox removed (containers cf-redis, cf-worker-gpu, cf-worker-cpu, cf-ops$(
    [ "$SENTINEL" = 1 ] && echo ", cf-redis-2, cf-redis-3"); network cf-sandbox)"
}

mkdir -p .cache
case "${1:-up}" in
  up) up ;;
  down) down ;;
  *)
    echo "usage: $0 up|down" >&2
    exit 2
    ;;
esac
