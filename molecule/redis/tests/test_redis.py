"""Authentication, ACL rule sets, configuration and exposure of the broker (issue 3)."""

from __future__ import annotations

import re
import subprocess

import pytest

CELERY_USERS = ["worker", "producer", "flower"]
ALL_USERS = ["default", *CELERY_USERS, "admin"]

# What kombu's transport and the Redis result backend send, on keys and channels under cf:.
CELERY_TRAFFIC = """\
LPUSH cf:test:queue a
RPUSH cf:test:queue b
LLEN cf:test:queue
LRANGE cf:test:queue 0 -1
BRPOP cf:test:queue 1
DEL cf:test:queue
SET cf:test:key v
SETEX cf:test:meta 60 v
GET cf:test:key
MGET cf:test:key cf:test:meta
EXISTS cf:test:key
EXPIRE cf:test:key 60
PEXPIRE cf:test:key 60000
INCRBY cf:test:counter 2
HSET cf:test:unacked tag payload
HGET cf:test:unacked tag
HDEL cf:test:unacked tag
SADD cf:test:set member
SISMEMBER cf:test:set member
SMEMBERS cf:test:set
SREM cf:test:set member
ZADD cf:test:unacked_index 1 tag
ZRANGE cf:test:unacked_index 0 -1
ZRANGEBYSCORE cf:test:unacked_index 0 2
ZREVRANGEBYSCORE cf:test:unacked_index 2 0
ZCOUNT cf:test:unacked_index 0 2
ZREM cf:test:unacked_index tag
SCRIPT EXISTS 0000000000000000000000000000000000000000
PUBLISH cf:/0.celery.pidbox hello
TIME
PING
DEL cf:test:key cf:test:meta cf:test:counter
"""
ERROR_REPLY = re.compile(r"^(NOPERM|ERR|WRONGTYPE|NOAUTH|WRONGPASS|\(error\))", re.MULTILINE)


def test_unauthenticated_ping_gets_noauth(broker):
    reply = broker.cli_run("PING")
    print(f"{broker.container}: unauthenticated PING -> {reply!r}")
    assert reply.startswith("NOAUTH"), reply


@pytest.mark.parametrize("user", ["default", "worker", "admin"])
def test_wrong_password_is_refused(broker, user):
    reply = broker.cli_run("PING", user=user, password="not-the-password-0123456789")
    assert "WRONGPASS" in reply, reply
    assert "PONG" not in reply, reply


@pytest.mark.parametrize("user", ALL_USERS)
def test_each_user_authenticates_with_its_password(broker, user):
    reply = broker.cli_run("PING", user=user)
    if user == "default" and not broker.default_user_enabled:
        assert "WRONGPASS" in reply, reply  # `user default off` refuses even its old password
    else:
        assert reply == "PONG", reply


@pytest.mark.parametrize("user", CELERY_USERS)
def test_celery_users_run_what_celery_sends(broker, user):
    replies = broker.cli_run(user=user, stdin=CELERY_TRAFFIC)
    print(f"{broker.container}: {user} ran {len(CELERY_TRAFFIC.splitlines())} Celery commands")
    assert ERROR_REPLY.search(replies) is None, replies


@pytest.mark.parametrize(
    ("user", "command"),
    [
        ("worker", "PSUBSCRIBE cf:/0.celery.pidbox"),
        ("worker", "PSUBSCRIBE cf:/0.celeryev/worker.*"),
        ("worker", "SUBSCRIBE cf:celery-task-meta-1234"),
        ("worker", "EVALSHA 0000000000000000000000000000000000000000 1 cf:test:chord"),
        ("worker", "MULTI"),
        ("producer", "SUBSCRIBE cf:celery-task-meta-1234"),
        ("flower", "PSUBSCRIBE cf:/0.celeryev/*"),
    ],
)
def test_celery_users_may_subscribe_and_script_as_celery_does(broker, user, command):
    # Commands that block or need state in redis-cli are checked with ACL DRYRUN (admin).
    reply = broker.admin("ACL", "DRYRUN", user, *command.split())
    assert reply == "OK", f"{user}: {command}: {reply}"


@pytest.mark.parametrize(
    "command",
    [
        "FLUSHALL",
        "FLUSHDB",
        "CONFIG GET maxmemory",
        "CONFIG SET appendonly no",
        "KEYS *",
        "DEBUG SLEEP 0",
        "SHUTDOWN NOSAVE",
        "ACL LIST",
        "ACL SETUSER worker +@all",
        "MONITOR",
        "SET outside:key 1",
        "GET outside:key",
        "PUBLISH outside hello",
    ],
)
@pytest.mark.parametrize("user", CELERY_USERS)
def test_celery_users_are_refused_admin_commands_and_foreign_keys(broker, user, command):
    if "outside" in command and not broker.key_prefix:
        pytest.skip("key scoping is off on this host: test_unscoped_users_reach_every_key covers it")
    dryrun = broker.admin("ACL", "DRYRUN", user, *command.split())
    reply = broker.cli_run(*command.split(), user=user) if command != "MONITOR" else ""
    assert "no permissions" in dryrun, f"{user}: {command}: ACL DRYRUN says {dryrun!r}"
    # The real call is refused too (DEBUG by enable-debug-command before the ACL check).
    assert command == "MONITOR" or ERROR_REPLY.search(reply), f"{user}: {command}: {reply!r}"


@pytest.mark.parametrize("user", CELERY_USERS)
def test_unscoped_users_reach_every_key_and_channel_but_no_admin_command(broker, user):
    # The default, redis_acl_key_prefix "": an app that sets no kombu global_keyprefix works.
    if broker.key_prefix:
        pytest.skip("key scoping is on on this host")
    for command in ("SET outside:key 1", "GET outside:key", "PSUBSCRIBE /0.celeryev/*", "PUBLISH outside hi"):
        reply = broker.admin("ACL", "DRYRUN", user, *command.split())
        assert reply == "OK", f"{user}: {command}: {reply}"
    assert "no permissions" in broker.admin("ACL", "DRYRUN", user, "FLUSHALL")


def test_producer_cannot_listen_to_worker_events(broker):
    if not broker.key_prefix:
        pytest.skip("key scoping is off on this host: every channel is allowed")
    reply = broker.admin("ACL", "DRYRUN", "producer", "PSUBSCRIBE", "cf:/0.celeryev/*")
    assert "no permissions" in reply, reply


def test_broker_settings_are_the_queue_safe_ones(broker):
    settings = {}
    for name in [
        "maxmemory-policy",
        "appendonly",
        "appendfsync",
        "protected-mode",
        "aof-use-rdb-preamble",
        "requirepass",
        "aclfile",
        "maxmemory",
        "dir",
    ]:
        lines = broker.admin("CONFIG", "GET", name).splitlines()
        settings[name] = lines[1] if len(lines) > 1 else ""
    print(f"{broker.container}: {settings}")
    assert settings["maxmemory-policy"] == "noeviction"
    assert settings["appendonly"] == "yes"
    assert settings["appendfsync"] == "everysec"
    assert settings["protected-mode"] == "yes"
    assert settings["aof-use-rdb-preamble"] == "yes"
    assert settings["requirepass"] == ""
    assert settings["aclfile"] == f"{broker.config_dir}/users.acl"
    assert settings["maxmemory"] == str(256 * 1024 * 1024)
    assert settings["dir"] == broker.data_dir


def test_default_user_is_not_nopass_despite_aclfile(broker):
    # The trap: with an aclfile, requirepass is ignored and `default` stays `on nopass`.
    flags = broker.admin("ACL", "GETUSER", "default").splitlines()
    flags = flags[flags.index("flags") + 1 : flags.index("passwords")]
    print(f"{broker.container}: default user flags {flags}")
    assert "nopass" not in flags, flags
    assert ("on" if broker.default_user_enabled else "off") in flags, flags
    config = broker.sh(f"cat {broker.config_dir}/{broker.server}.conf").stdout
    assert not re.search(r"^\s*requirepass", config, re.MULTILINE)


def test_acl_file_holds_only_password_hashes(broker, host):
    acl_file = f"{broker.config_dir}/users.acl"
    content = broker.sh(f"cat {acl_file}").stdout
    lines = content.splitlines()
    assert len(lines) == 5, content
    for line in lines:
        assert re.match(r"^user \S+ (on #[0-9a-f]{64} |off )", line), line
        assert not re.search(r"(^| )(>|<|nopass)", line), line
    for password in broker.passwords():
        assert password not in content
    stat = host.file(acl_file)
    assert (stat.user, stat.group, stat.mode) == (broker.server, broker.server, 0o640)


def test_config_and_tls_key_are_private(broker, host):
    config = host.file(f"{broker.config_dir}/{broker.server}.conf")
    key = host.file(f"{broker.config_dir}/tls/server.key")
    assert (config.user, config.group, config.mode) == (broker.server, broker.server, 0o640)
    assert (key.user, key.mode) == (broker.server, 0o600)


def test_listens_only_on_configured_addresses(broker):
    ip = subprocess.run(
        [
            "docker",
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            broker.container,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    sockets = broker.sh("ss -Hltnp").stdout.splitlines()
    listening = {line.split()[3] for line in sockets if f'"{broker.server}-server"' in line}
    print(f"{broker.container}: {sorted(listening)}")
    assert listening == {"127.0.0.1:6379", f"{ip}:6379", "127.0.0.1:6380", f"{ip}:6380"}


def test_password_is_in_no_argv_journal_or_world_readable_file(broker):
    # Patterns go through stdin into a 0600 file: grep never sees them on its command line.
    script = (
        "umask 077; cat > /run/pw.pat; "
        "echo patterns:; wc -l < /run/pw.pat; "
        f"echo journal-lines:; journalctl -u {broker.service} --no-pager | wc -l; "
        "echo ps:; ps -eo args | grep -cF -f /run/pw.pat; "
        f"echo journal:; journalctl -u {broker.service} --no-pager | grep -cF -f /run/pw.pat; "
        f"echo log:; grep -cF -f /run/pw.pat /var/log/{broker.server}/{broker.server}-server.log; "
        "echo etc:; find /etc -type f -perm -0004 -exec grep -lF -f /run/pw.pat {} + ; "
        "rm -f /run/pw.pat"
    )
    out = broker.sh(script, stdin="\n".join(broker.passwords()) + "\n").stdout
    print(f"{broker.container}: {' '.join(out.split())}")
    words = out.split()
    # The controls make the test able to fail: five patterns were read and the journal has lines.
    assert words[:2] == ["patterns:", "5"], out
    assert words[2] == "journal-lines:" and int(words[3]) > 0, out
    assert words[4:] == ["ps:", "0", "journal:", "0", "log:", "0", "etc:"], out


def test_tls_port_needs_client_certificate_then_password(broker):
    tls = ("--tls", "--cacert", "/etc/ssl/redis-test/ca.crt", "-h", "127.0.0.1", "-p", "6380")
    client = ("--cert", "/etc/ssl/redis-test/client.crt", "--key", "/etc/ssl/redis-test/client.key")
    without_cert = broker.cli_run("PING", cli_args=tls)
    without_auth = broker.cli_run("PING", cli_args=tls + client)
    with_auth = broker.cli_run("PING", user="worker", cli_args=tls + client)
    print(f"{broker.container}: TLS no cert -> {without_cert!r}; cert, no auth -> {without_auth!r}")
    assert "PONG" not in without_cert
    assert without_auth.startswith("NOAUTH")
    assert with_auth == "PONG"


def test_packaged_unit_hardening_is_kept(broker):
    shown = broker.sh(
        f"systemctl show {broker.service} -p ProtectSystem -p PrivateUsers -p NoNewPrivileges -p DropInPaths"
    ).stdout
    score = broker.sh(f"systemd-analyze security {broker.service} --no-pager | tail -1").stdout.strip()
    print(f"{broker.container}: {score}")
    assert "ProtectSystem=strict" in shown
    assert "PrivateUsers=yes" in shown
    assert "NoNewPrivileges=yes" in shown
    dropin = f"/etc/systemd/system/{broker.service}.service.d/celery-fleet.conf"
    if broker.data_dir == f"/var/lib/{broker.server}":
        assert re.search(r"^DropInPaths=$", shown, re.MULTILINE), shown
    else:
        # The only drop-in adds write access to the data directory, nothing else.
        assert re.search(rf"^DropInPaths={re.escape(dropin)}$", shown, re.MULTILINE), shown
        directives = [
            line for line in broker.sh(f"cat {dropin}").stdout.splitlines() if line and line[0] not in "#["
        ]
        assert directives == [f"ReadWritePaths={broker.data_dir}"]


def test_kernel_settings_are_persisted_for_boot(broker):
    sysctl = broker.sh(f"cat /etc/sysctl.d/60-{broker.server}.conf").stdout
    tmpfiles = broker.sh(f"cat /etc/tmpfiles.d/{broker.server}-thp.conf").stdout
    somaxconn = int(re.search(r"^net\.core\.somaxconn = (\d+)$", sysctl, re.MULTILINE).group(1))
    assert re.search(r"^vm\.overcommit_memory = 1$", sysctl, re.MULTILINE)
    assert somaxconn >= 511
    assert "w /sys/kernel/mm/transparent_hugepage/enabled - - - - never" in tmpfiles
