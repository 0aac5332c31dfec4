#!/usr/bin/env bash
# The demo: `make demo` (up) and `make demo-destroy` (down).
#
# up:   four systemd containers on the Docker network cf-sandbox (playbooks/sandbox.yml): a Redis
#       host, two worker hosts with different worker lists, an ops host with Flower and beat; then
#       site.yml with inventories/sandbox; then the example app's workload (a ping to every queue and
#       seed 000's chord) sent from the ops host through the app's virtualenv, as the `producer`
#       ACL user; then a summary. Re-runnable: a second run converges (changed=0) and reprints.
# down: removes the containers and the network.
#
# The sandbox's vault password (inventories/sandbox/vault-password.txt) is a DEMO-ONLY password,
# committed on purpose; real environments keep theirs outside the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-.venv/bin}
INVENTORY=inventories/sandbox
VAULT_FILE=$INVENTORY/vault-password.txt
VAULT=$INVENTORY/group_vars/all/vault.yml
export CELERY_FLEET_WHEELHOUSE=${CELERY_FLEET_WHEELHOUSE:-$HOME/.cache/celery-fleet/wheelhouse}
export ANSIBLE_FORCE_COLOR=${ANSIBLE_FORCE_COLOR:-0}
APP=celerydemo
OPS=cf-ops
FLOWER_URL=http://127.0.0.1:5555

playbook() {
  "$BIN/ansible-playbook" -i "$INVENTORY" --vault-password-file "$VAULT_FILE" "$@"
}

# Runs the app's Python on the ops host as the service user, through the wrapper that loads the
# environment file (the broker password never reaches argv).
on_ops() {
  docker exec "$OPS" runuser -u "$APP" -- "/opt/$APP/bin/celery-env" "$@"
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
  echo "==> demo: the fleet (ansible-playbook site.yml -i $INVENTORY --vault-password-file $VAULT_FILE)"
  local started=$SECONDS
  # --flush-cache: ansible.cfg keeps facts for an hour, and containers made again get new addresses
  # (Redis' bind comes from the Redis host's facts: a stale address stops it from starting).
  playbook site.yml --flush-cache | tee .cache/demo-site.log | sed -n '/PLAY RECAP/,/^$/p'
  local deploy_seconds=$((SECONDS - started))

  echo "==> demo: the workload, sent from $OPS as the producer ACL user"
  local ping chord
  ping=$(on_ops "/opt/$APP/venv/bin/python" -m celery_fleet_app celery_demo.workload --timeout 60 queues)
  chord=$(on_ops "/opt/$APP/venv/bin/python" -m celery_fleet_app celery_demo.workload --timeout 60 chord --seconds 2)

  local flower_anon flower_auth flower_password
  flower_anon=$(curl -s -o /dev/null -w '%{http_code}' "$FLOWER_URL/api/workers" || true)
  flower_password=$("$BIN/ansible-vault" view --vault-password-file "$VAULT_FILE" "$VAULT" \
    | sed -n 's/^vault_flower_admin_password: *//p' | tr -d '"')
  flower_auth=$(curl -s -o /dev/null -w '%{http_code}' -u "admin:$flower_password" "$FLOWER_URL/api/workers" || true)
  unset flower_password

  # Denials of the least-privilege ACL users during the whole run (0: the rule sets suffice).
  local acl_log admin_password
  admin_password=$("$BIN/ansible-vault" view --vault-password-file "$VAULT_FILE" "$VAULT" \
    | sed -n 's/^vault_redis_admin_password: *//p' | tr -d '"')
  acl_log=$(docker exec -e REDISCLI_AUTH="$admin_password" cf-redis redis-cli --user admin ACL LOG | grep -c '^reason$' || true)
  unset admin_password

  cat <<SUMMARY

==================== celery-fleet sandbox ====================
Deploy: site.yml in ${deploy_seconds} s ($(grep -c '^cf-.*changed=0 ' .cache/demo-site.log || true) of 4 hosts unchanged)

Workers, as Celery reports them (celery inspect stats / active_queues):
$(summary_workers)

A task to every queue (queue, worker that ran it):
$(sed 's/^/  /' <<<"$ping")

Seed 000's chord (three 2 s parts in parallel on the gevent worker, then the callback):
  $chord

Redis ACL LOG: $acl_log denied command(s) (users worker, producer, flower; admin for this check)

Flower: $FLOWER_URL  (published on this machine's loopback only)
  without credentials: HTTP $flower_anon; as admin: HTTP $flower_auth
  user: admin
  password: vault_flower_admin_password in the sandbox vault (DEMO-ONLY):
    $BIN/ansible-vault view $VAULT --vault-password-file $VAULT_FILE
Shell on a host: docker exec -it cf-worker-cpu bash   (cf-redis, cf-worker-gpu, cf-ops)
Tear down: make demo-destroy
===============================================================
SUMMARY
}

down() {
  playbook playbooks/sandbox.yml -e sandbox_state=absent | sed -n '/PLAY RECAP/,/^$/p'
  echo "demo: sandbox removed (containers cf-redis, cf-worker-gpu, cf-worker-cpu, cf-ops; network cf-sandbox)"
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
