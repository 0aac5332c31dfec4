"""Unit tests of celery_fleet.workers: worker spec, argument builder, quoting, stop timeout, packages."""

import re
import shlex

import pytest
from celery_fleet.errors import FleetError
from celery_fleet.workers import (
    DEFAULT_STOP_TIMEOUT,
    embeds_beat,
    green_max_connections,
    node_name,
    normalize_worker,
    pool_packages,
    stop_timeout,
    supervisor_cmdline,
    supervisor_environment,
    systemd_cmdline,
    systemd_environment,
    worker_argv,
    worker_environment,
)

CELERY = "/opt/celery-demo/venv/bin/celery"
APP = "celery_demo.app"


def minimal(**fields):
    return {"name": "io", "queues": ["designer"], **fields}


# --- normalize_worker -----------------------------------------------------------------------------


def test_normalize_fills_every_default():
    # Arrange
    worker = minimal()

    # Act
    spec = normalize_worker(worker)

    # Assert
    assert spec == {
        "name": "io",
        "state": "present",
        "queues": ["designer"],
        "pool": "prefork",
        "allow_solo": False,
        "concurrency": 2,
        "autoscale": None,
        "max_tasks_per_child": None,
        "max_memory_per_child": None,
        "prefetch_multiplier": None,
        "loglevel": "INFO",
        "hostname": "io@%h",
        "events": True,
        "gossip": False,
        "time_limit": None,
        "soft_time_limit": None,
        "optimization": None,
        "stop_timeout": None,
        "soft_shutdown_timeout": None,
        "remap_sigterm": None,
        "memory_deny_write_execute": False,
        "devices": [],
        "proc_subset": "pid",
        "environment": {},
        "extra_args": [],
    }


def test_normalize_is_idempotent():
    # Arrange
    spec = normalize_worker(minimal(pool="gevent", autoscale="20,2", environment={"A": 1}))

    # Act
    again = normalize_worker(spec)

    # Assert
    assert again == spec


@pytest.mark.parametrize(
    ("pool", "expected"),
    [("prefork", 2), ("threads", 4), ("gevent", 10), ("eventlet", 10)],
)
def test_default_concurrency_per_pool(pool, expected):
    assert normalize_worker(minimal(pool=pool))["concurrency"] == expected


def test_solo_with_allow_solo_runs_one_task():
    assert normalize_worker(minimal(pool="solo", allow_solo=True))["concurrency"] == 1


@pytest.mark.parametrize(("value", "expected"), [("10,2", [10, 2]), ([4, 0], [4, 0]), ("3, 3", [3, 3])])
def test_autoscale_forms_normalize_to_max_min(value, expected):
    spec = normalize_worker(minimal(autoscale=value))

    assert spec["autoscale"] == expected
    assert spec["concurrency"] is None


def test_loglevel_is_case_insensitive():
    assert normalize_worker(minimal(loglevel="info"))["loglevel"] == "INFO"


def test_environment_numbers_become_strings():
    assert normalize_worker(minimal(environment={"N": 3}))["environment"] == {"N": "3"}


# One case per per-worker rule: (worker fields, field named, words of the allowed values/reason).
INVALID = {
    "unknown field (typo)": (
        {"concurency": 4},
        "concurency",
        "did you mean 'concurrency'? allowed fields are name,",
    ),
    "missing name": ({"name": None}, "name", "is required"),
    "invalid name": ({"name": "IO worker"}, "name", "not a valid worker name"),
    "name with @": ({"name": "io@x"}, "name", "^[a-z0-9][a-z0-9_-]{0,39}$"),
    "empty queues": ({"queues": []}, "queues", "must be a non-empty list"),
    "missing queues": ({"queues": None}, "queues", "non-empty list of queue names"),
    "queues not a list": ({"queues": "a,b"}, "queues", "is not a list of queue names"),
    "invalid queue name": ({"queues": ["a b"]}, "queues", "'a b' is not a valid queue name"),
    "duplicate queue": ({"queues": ["a", "a"]}, "queues", "'a' is listed twice"),
    "unknown pool": (
        {"pool": "fork"},
        "pool",
        "'fork' is not one of prefork, gevent, eventlet, threads, solo",
    ),
    "solo without allow_solo": ({"pool": "solo"}, "pool", "set allow_solo: true"),
    "solo with concurrency": (
        {"pool": "solo", "allow_solo": True, "concurrency": 4},
        "concurrency",
        "exactly 1",
    ),
    "concurrency zero": ({"concurrency": 0}, "concurrency", "int 0 is not an integer >= 1"),
    "concurrency string": ({"concurrency": "4"}, "concurrency", "'4' is not an integer >= 1"),
    "concurrency bool": ({"concurrency": True}, "concurrency", "bool True is not an integer >= 1"),
    "autoscale with concurrency": ({"autoscale": [4, 1], "concurrency": 2}, "concurrency", "autoscale"),
    "autoscale min above max": ({"autoscale": [1, 4]}, "autoscale", "max >= min >= 0"),
    "autoscale garbage": ({"autoscale": "a,b"}, "autoscale", "is not [max, min]"),
    "autoscale on threads": (
        {"pool": "threads", "autoscale": [4, 1]},
        "autoscale",
        "pools prefork, gevent only",
    ),
    "max_memory_per_child on gevent": (
        {"pool": "gevent", "max_memory_per_child": 1000},
        "max_memory_per_child",
        "pool prefork only, not 'gevent'",
    ),
    "max_tasks_per_child on threads": (
        {"pool": "threads", "max_tasks_per_child": 50},
        "max_tasks_per_child",
        "pool prefork only, not 'threads'",
    ),
    "max_memory_per_child zero": ({"max_memory_per_child": 0}, "max_memory_per_child", ">= 1 (KiB)"),
    "prefetch zero": ({"prefetch_multiplier": 0}, "prefetch_multiplier", "integer >= 1"),
    "unknown loglevel": (
        {"loglevel": "verbose"},
        "loglevel",
        "not one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
    ),
    "hostname without @": ({"hostname": "io"}, "hostname", "is not a Celery node name 'name@host'"),
    "hostname unknown expansion": ({"hostname": "io@%i"}, "hostname", "expansions %h, %n, %d"),
    "negative time_limit": ({"time_limit": -1}, "time_limit", "is not a number of seconds > 0"),
    "soft limit not below hard": (
        {"time_limit": 60, "soft_time_limit": 60},
        "soft_time_limit",
        "below time_limit 60",
    ),
    "unknown optimization": ({"optimization": "fast"}, "optimization", "not one of fair, default"),
    "stop_timeout zero": ({"stop_timeout": 0}, "stop_timeout", ">= 1 (seconds)"),
    "negative soft shutdown": ({"soft_shutdown_timeout": -1}, "soft_shutdown_timeout", "seconds >= 0"),
    "unknown remap signal": ({"remap_sigterm": "SIGKILL"}, "remap_sigterm", "not one of SIGQUIT, SIGINT"),
    "state typo": ({"state": "absnet"}, "state", "not one of present, absent"),
    "events not bool": ({"events": "yes"}, "events", "not a boolean"),
    "gossip not bool": ({"gossip": "on"}, "gossip", "not a boolean"),
    "allow_solo not bool": ({"allow_solo": 1}, "allow_solo", "not a boolean"),
    "mdwe not bool": ({"memory_deny_write_execute": "no"}, "memory_deny_write_execute", "not a boolean"),
    "environment not a mapping": ({"environment": ["A=1"]}, "environment", "is not a mapping"),
    "environment bad name": ({"environment": {"1A": "x"}}, "environment", "is not a variable name"),
    "environment broker url": (
        {"environment": {"CELERY_BROKER_URL": "x"}},
        "environment",
        "'CELERY_BROKER_URL' is the fleet's (celery_broker_url, celery_result_backend)",
    ),
    "environment backend url": (
        {"environment": {"celery_result_backend": "x"}},
        "environment",
        "the fleet's",
    ),
    "environment line break": (
        {"environment": {"MOTD": "a\nb"}},
        "environment",
        "MOTD: the value holds a NUL or a line break",
    ),
    "devices not a list": ({"devices": "/dev/nvidia0"}, "devices", "is not a list of device paths"),
    "device relative": ({"devices": ["nvidia0"]}, "devices", "is not an absolute path under /dev"),
    "device outside /dev": ({"devices": ["/etc/shadow"]}, "devices", "is not an absolute path under /dev"),
    "device with ..": ({"devices": ["/dev/../etc/shadow"]}, "devices", "'.' or '..' component"),
    "device with space": ({"devices": ["/dev/nvidia0 rwm"]}, "devices", "not an absolute path under /dev"),
    "device twice": ({"devices": ["/dev/nvidia0", "/dev/nvidia0"]}, "devices", "listed twice"),
    "proc_subset unknown": ({"proc_subset": "none"}, "proc_subset", "not one of pid, all"),
    "environment remap": (
        {"environment": {"REMAP_SIGTERM": "SIGQUIT"}},
        "environment",
        "field remap_sigterm",
    ),
    "environment value list": ({"environment": {"A": [1]}}, "environment", "A: list [1] is not a string"),
    "extra_args not a list": ({"extra_args": "-Ofair"}, "extra_args", "is not a list of strings"),
    "extra_args queues": (
        {"extra_args": ["-Q", "x"]},
        "extra_args",
        "'-Q' duplicates the managed field 'queues'",
    ),
    "extra_args long pool": ({"extra_args": ["--pool=solo"]}, "extra_args", "managed field 'pool'"),
    "extra_args attached -c": ({"extra_args": ["-c4"]}, "extra_args", "managed field 'concurrency'"),
    "extra_args app": ({"extra_args": ["--app", "x"]}, "extra_args", "managed field 'celery_app_module'"),
    "extra_args hostname": ({"extra_args": ["-n", "x@y"]}, "extra_args", "managed field 'hostname'"),
    "extra_args events": ({"extra_args": ["-E"]}, "extra_args", "managed field 'events'"),
    "extra_args gossip": ({"extra_args": ["--without-gossip"]}, "extra_args", "managed field 'gossip'"),
    "extra_args detach": ({"extra_args": ["--detach"]}, "extra_args", "escapes its process manager"),
    "extra_args purge": (
        {"extra_args": ["--purge"]},
        "extra_args",
        "'--purge' is not allowed: it deletes every",
    ),
    "extra_args discard": ({"extra_args": ["--discard"]}, "extra_args", "celery purge -Q <queue>"),
    "extra_args broker": ({"extra_args": ["-b", "x"]}, "extra_args", "never argv"),
    "extra_args url": ({"extra_args": ["--foo=redis://:pw@h"]}, "extra_args", "looks like a URL"),
    "extra_args config secret": ({"extra_args": ["--", "broker_url=x"]}, "extra_args", "environment file"),
    "extra_args newline": ({"extra_args": ["a\nb"]}, "extra_args", "line break"),
    "extra_args transport options": (
        {"extra_args": ["--", 'broker_transport_options=(json){"max_connections":50}']},
        "extra_args",
        "the fleet merges them into the app's",
    ),
    "gevent prefetch 1": (
        {"pool": "gevent", "prefetch_multiplier": 1},
        "prefetch_multiplier",
        "1 with pool 'gevent' stalls the worker up to 2 s",
    ),
    "eventlet prefetch 1": (
        {"pool": "eventlet", "prefetch_multiplier": 1},
        "prefetch_multiplier",
        "use 2 or more, or leave it unset",
    ),
}


@pytest.mark.parametrize(("fields", "field", "words"), INVALID.values(), ids=INVALID.keys())
def test_invalid_worker_is_refused_naming_worker_field_and_allowed(fields, field, words):
    # Arrange
    worker = minimal(**fields)
    name = worker["name"]
    label = f"worker '{name}'" if isinstance(name, str) else "worker #?"

    # Act
    with pytest.raises(FleetError) as caught:
        normalize_worker(worker)

    # Assert
    message = str(caught.value)
    assert f"field '{field}': " in message
    assert words in message
    assert label in message
    assert isinstance(caught.value, ValueError)


def test_every_problem_of_a_worker_is_reported_at_once():
    # Arrange
    worker = {"name": "io", "queues": [], "pool": "fork", "concurrency": 0}

    # Act
    with pytest.raises(FleetError) as caught:
        normalize_worker(worker)

    # Assert
    assert [p.field for p in caught.value.problems] == ["queues", "pool", "concurrency"]


def test_non_mapping_worker_is_refused():
    with pytest.raises(FleetError, match="is not a mapping"):
        normalize_worker("io")  # type: ignore[arg-type]


def test_secret_looking_environment_is_accepted_for_the_private_file():
    env = {"DB_PASSWORD": "x", "DATABASE_URL": "postgres://app:pw@db/x"}

    assert normalize_worker(minimal(environment=env))["environment"] == env


@pytest.mark.parametrize(
    ("devices", "proc_subset", "expected"),
    [
        (None, None, ([], "pid")),
        (
            ["/dev/nvidia0", "/dev/nvidia-uvm", "char-nvidia-uvm"],
            None,
            (["/dev/nvidia0", "/dev/nvidia-uvm", "char-nvidia-uvm"], "all"),
        ),
        (["/dev/nvidia-caps/nvidia-cap1"], "pid", (["/dev/nvidia-caps/nvidia-cap1"], "pid")),
        ([], "all", ([], "all")),
    ],
)
def test_devices_and_proc_subset_normalize(devices, proc_subset, expected):
    # Arrange
    fields = {k: v for k, v in {"devices": devices, "proc_subset": proc_subset}.items() if v is not None}

    # Act
    spec = normalize_worker(minimal(**fields))

    # Assert
    assert (spec["devices"], spec["proc_subset"]) == expected


def test_valid_extra_args_pass_through_unchanged():
    args = ["--without-mingle", "-X", "celery", "--", "worker_lost_wait=20"]

    assert normalize_worker(minimal(extra_args=args))["extra_args"] == args


# --- worker_argv ----------------------------------------------------------------------------------


def test_argv_minimal_worker():
    # Arrange
    worker = minimal()

    # Act
    argv = worker_argv(worker, APP, CELERY)

    # Assert
    assert argv == [
        CELERY,
        "-A",
        APP,
        "worker",
        "--hostname=io@%h",
        "--queues=designer",
        "--pool=prefork",
        "--concurrency=2",
        "--loglevel=INFO",
        "--task-events",
        "--without-gossip",
    ]


def test_argv_every_optional_flag_in_order():
    # Arrange
    worker = {
        "name": "training",
        "queues": ["training", "extraction"],
        "concurrency": 1,
        "max_memory_per_child": 4000000,
        "max_tasks_per_child": 50,
        "prefetch_multiplier": 1,
        "time_limit": 3600,
        "soft_time_limit": 3300.5,
        "optimization": "fair",
        "loglevel": "warning",
        "hostname": "worker-training@%h",
        "events": False,
        "gossip": True,
        "extra_args": ["--without-mingle"],
        "soft_shutdown_timeout": 10,
    }

    # Act
    argv = worker_argv(worker, APP, CELERY)

    # Assert
    assert argv[4:] == [
        "--hostname=worker-training@%h",
        "--queues=training,extraction",
        "--pool=prefork",
        "--concurrency=1",
        "--loglevel=WARNING",
        "--prefetch-multiplier=1",
        "--max-tasks-per-child=50",
        "--max-memory-per-child=4000000",
        "--time-limit=3600",
        "--soft-time-limit=3300.5",
        "--optimization=fair",
        "--without-mingle",
        "--",
        "worker_soft_shutdown_timeout=10",
    ]


def test_argv_autoscale_replaces_concurrency():
    argv = worker_argv(minimal(pool="gevent", autoscale=[20, 2]), APP, CELERY)

    assert "--autoscale=20,2" in argv
    assert not any(a.startswith("--concurrency") for a in argv)


def test_argv_soft_shutdown_joins_an_existing_config_section():
    argv = worker_argv(
        minimal(extra_args=["--", "worker_lost_wait=20"], soft_shutdown_timeout=5.5), APP, CELERY
    )

    assert argv[-3:] == ["--", "worker_lost_wait=20", "worker_soft_shutdown_timeout=5.5"]


@pytest.mark.parametrize("pool", ["gevent", "eventlet"])
def test_green_pool_gets_prefetch_2_and_a_connection_pool_above_its_greenlets(pool):
    # Arrange
    worker = minimal(pool=pool, concurrency=100)

    # Act
    argv = worker_argv(worker, APP, CELERY)
    env = worker_environment(worker)

    # Assert: the pool size goes to the fleet's entry module, which merges it into the app's
    # transport options; nothing on the command line replaces them.
    assert "--prefetch-multiplier=2" in argv
    assert not any("broker_transport_options" in a for a in argv)
    assert env == {"CELERY_FLEET_MAX_CONNECTIONS": "110"}


def test_green_pool_sizes_connections_from_autoscale_max_and_keeps_explicit_prefetch():
    # Arrange
    worker = minimal(pool="gevent", autoscale=[50, 5], prefetch_multiplier=4, soft_shutdown_timeout=5)

    # Act
    argv = worker_argv(worker, APP, CELERY)

    # Assert
    assert "--prefetch-multiplier=4" in argv
    assert argv[-2:] == ["--", "worker_soft_shutdown_timeout=5"]
    assert green_max_connections(worker) == 60


@pytest.mark.parametrize("pool", ["prefork", "threads", "solo"])
def test_other_pools_keep_the_apps_prefetch_and_pool_size(pool):
    # Arrange
    worker = minimal(pool=pool, allow_solo=True)

    # Act
    argv = worker_argv(worker, APP, CELERY)

    # Assert
    assert not any(a.startswith("--prefetch-multiplier") for a in argv)
    assert "--" not in argv
    assert green_max_connections(worker) is None
    assert "CELERY_FLEET_MAX_CONNECTIONS" not in worker_environment(worker)


def test_argv_never_carries_environment_values():
    argv = worker_argv(minimal(environment={"FEATURE": "s3cr3t-ish"}), APP, CELERY)

    assert not any("s3cr3t-ish" in a for a in argv)


@pytest.mark.parametrize(
    ("app_module", "celery_bin", "field"),
    [
        ("celery demo", CELERY, "celery_app_module"),
        (APP, "celery", "celery_bin"),
        (APP, "/a b/celery", "celery_bin"),
    ],
)
def test_argv_refuses_bad_app_module_or_binary(app_module, celery_bin, field):
    with pytest.raises(FleetError, match=f"worker 'io': field '{field}'"):
        worker_argv(minimal(), app_module, celery_bin)


def test_argv_accepts_app_attribute_form():
    assert worker_argv(minimal(), "proj.celery:app", CELERY)[2] == "proj.celery:app"


# --- node_name, embeds_beat ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hostname", "host", "expected"),
    [
        ("io@%h", "w1.dc1.example", "io@w1.dc1.example"),
        ("io@%n", "w1.dc1.example", "io@w1"),
        ("io-%n@%d", "w1.dc1.example", "io-w1@dc1.example"),
        ("io@%h", "w1", "io@w1"),
        ("io@fixed", "w1", "io@fixed"),
    ],
)
def test_node_name_expands_like_celery(hostname, host, expected):
    assert node_name(hostname, host) == expected


@pytest.mark.parametrize(
    ("extra_args", "expected"),
    [
        (["-B"], True),
        (["--beat"], True),
        (["-Bs", "/tmp/schedule"], True),
        (["-EB"], True),
        (["-DEB"], True),
        (["-lB"], False),  # -l takes a value: "B" is the log level here, not the beat flag
        (["-Ofair"], False),
        (["--without-mingle"], False),
        (["--", "-B"], False),
        ([], False),
    ],
)
def test_embeds_beat(extra_args, expected):
    assert embeds_beat({"extra_args": extra_args}) is expected


# --- worker_environment ---------------------------------------------------------------------------


def test_environment_adds_remap_sigterm():
    env = worker_environment(minimal(environment={"A": "1"}, remap_sigterm="SIGQUIT"))

    assert env == {"A": "1", "REMAP_SIGTERM": "SIGQUIT"}


# --- systemd_cmdline ------------------------------------------------------------------------------

_C_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", ";": ";", " ": " "}


def parse_systemd_exec(line: str, variables: bool = True) -> list[str]:
    """Split an Exec/Environment value as systemd does: quotes, C escapes, %% and (Exec only) $$."""
    words: list[str] = []
    i, n = 0, len(line)
    while i < n:
        while i < n and line[i] in " \t":
            i += 1
        if i >= n:
            break
        word, quote = [], None
        while i < n and (quote or line[i] not in " \t"):
            ch = line[i]
            if ch == "\\":
                nxt = line[i + 1]
                if nxt == "x":
                    word.append(chr(int(line[i + 2 : i + 4], 16)))
                    i += 4
                    continue
                word.append(_C_ESCAPES[nxt])
                i += 2
                continue
            if quote is None and ch in "\"'":
                quote = ch
            elif ch == quote:
                quote = None
            else:
                word.append(ch)
            i += 1
        assert quote is None, f"unterminated quote in {line!r}"
        raw = "".join(word)
        if variables:
            assert re.fullmatch(r"(?:[^%$]|%%|\$\$)*", raw), f"unescaped specifier or variable in {raw!r}"
            words.append(raw.replace("%%", "%").replace("$$", "$"))
        else:
            assert re.fullmatch(r"(?:[^%]|%%)*", raw), f"unescaped specifier in {raw!r}"
            words.append(raw.replace("%%", "%"))
    return words


ARGV_SAMPLES = {
    "plain": ["/v/bin/celery", "-A", "celery_demo.app", "worker", "--queues=a,b"],
    "specifier": ["--hostname=io@%h", "%n.%d", "100%"],
    "variable": ["$HOME", "${X}", "a$b"],
    "space": ["--foo=a b", " lead", "trail "],
    "quotes": ["it's", 'say "hi"', "\"'"],
    "backslash": ["C:\\path\\", "\\n"],
    "control": ["tab\there", "line\nbreak", "bell\x07"],
    "empty and semicolon": ["", ";", "a;b"],
    "comment chars": ["#x", "a #b", "a ;b"],
    "unicode": ["café", "日本"],
}


@pytest.mark.parametrize("argv", ARGV_SAMPLES.values(), ids=ARGV_SAMPLES.keys())
def test_systemd_cmdline_round_trips_through_systemd_rules(argv):
    # Act
    line = systemd_cmdline(argv)

    # Assert
    assert "\n" not in line
    assert parse_systemd_exec(line) == argv


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["/v/celery", "--hostname=io@%h"], "/v/celery --hostname=io@%%h"),
        (["a b", "$X"], '"a b" $$X'),
        (['q"', "b\\"], '"q\\"" "b\\\\"'),
        ([";"], "\\;"),
        ([""], '""'),
    ],
)
def test_systemd_cmdline_known_strings(argv, expected):
    assert systemd_cmdline(argv) == expected


def test_systemd_cmdline_refuses_nul():
    with pytest.raises(FleetError, match="NUL"):
        systemd_cmdline(["a\x00b"])


# --- supervisor_cmdline ---------------------------------------------------------------------------


def parse_supervisor_command(value: str) -> list[str]:
    """What supervisord does with command=: inline comments, %(...)s expansion, then shlex.split."""
    assert "\n" not in value
    comment = re.search(r"\s[;#]", value)
    assert comment is None, f"supervisord would cut {value!r} at an inline comment"
    return shlex.split(value % {})


SUPERVISOR_SAMPLES = {k: v for k, v in ARGV_SAMPLES.items() if k != "control"} | {"tab": ["tab\there"]}


@pytest.mark.parametrize("argv", SUPERVISOR_SAMPLES.values(), ids=SUPERVISOR_SAMPLES.keys())
def test_supervisor_cmdline_round_trips_through_shlex(argv):
    # Act
    line = supervisor_cmdline(argv)

    # Assert
    assert parse_supervisor_command(line) == argv


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["/v/celery", "--hostname=io@%h"], "/v/celery --hostname=io@%%h"),
        (["a b"], "'a b'"),
        (["a ;b"], "'a '';b'"),
        (["it's"], "'it'\"'\"'s'"),
    ],
)
def test_supervisor_cmdline_known_strings(argv, expected):
    assert supervisor_cmdline(argv) == expected


@pytest.mark.parametrize("arg", ["a\nb", "a\rb", "a\x00b"])
def test_supervisor_cmdline_refuses_line_breaks(arg):
    with pytest.raises(FleetError, match="supervisord cannot carry"):
        supervisor_cmdline([arg])


def test_both_cmdlines_render_the_same_argv():
    # Arrange
    argv = worker_argv(minimal(queues=["a", "b"], hostname="io-%n@%h"), APP, CELERY)

    # Act
    systemd_words = parse_systemd_exec(systemd_cmdline(argv))
    supervisor_words = parse_supervisor_command(supervisor_cmdline(argv))

    # Assert
    assert systemd_words == supervisor_words == argv


# --- systemd_environment, supervisor_environment -----------------------------------------------


ENV_SAMPLES = {
    "plain": {"A": "1", "PATH_X": "/usr/bin:/bin"},
    "dollar stays": {"PRICE": "$5", "REF": "${HOME}"},
    "specifier": {"HOST": "%h", "P": "100%"},
    "spaces and commas": {"MSG": "a b, c=d"},
    "quotes inside": {"Q": "it's", "D": 'say "hi" now'},
    "empty": {"E": ""},
}


@pytest.mark.parametrize("environment", ENV_SAMPLES.values(), ids=ENV_SAMPLES.keys())
def test_systemd_environment_round_trips(environment):
    # Act
    lines = systemd_environment(environment)

    # Assert
    parsed = dict(word.split("=", 1) for line in lines for word in parse_systemd_exec(line, variables=False))
    assert parsed == environment


def test_systemd_environment_keeps_dollar_single():
    assert systemd_environment({"PRICE": "$5", "HOST": "%h"}) == ["PRICE=$5", "HOST=%%h"]


def parse_supervisor_environment(value: str) -> dict[str, str]:
    """supervisor 4's dict_of_key_value_pairs after its %(...)s expansion and ini comment rule."""
    assert "\n" not in value
    assert re.search(r"\s[;#]", value) is None, "supervisord would cut at an inline comment"
    lexer = shlex.shlex(value % {})
    lexer.wordchars += "/.+-():"
    tokens = list(lexer)
    result = {}
    for i in range(0, len(tokens), 4):
        key, equals, val = tokens[i : i + 3]
        assert equals == "="
        result[key] = val.strip("'\"")
    return result


@pytest.mark.parametrize("environment", ENV_SAMPLES.values(), ids=ENV_SAMPLES.keys())
def test_supervisor_environment_round_trips(environment):
    # Act
    value = supervisor_environment(environment)

    # Assert
    assert parse_supervisor_environment(value) == environment


def test_supervisor_environment_known_string():
    assert supervisor_environment({"A": "x y", "P": "50%"}) == 'A="x y",P="50%%"'


@pytest.mark.parametrize(
    "value",
    ["both ' and \"", '"leading', "trailing'", "a ;comment", "a #comment", "line\nbreak"],
)
def test_supervisor_environment_refuses_what_supervisord_would_mangle(value):
    with pytest.raises(FleetError, match="field 'environment': V="):
        supervisor_environment({"V": value})


@pytest.mark.parametrize("environment", [{"1X": "a"}, {"X": 1}, ["X=1"]])
def test_environment_quoting_refuses_bad_input(environment):
    with pytest.raises(FleetError, match="field 'environment'"):
        systemd_environment(environment)


# --- stop_timeout ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "margin", "expected"),
    [
        ({"stop_timeout": 90, "time_limit": 3600}, 30, 90),
        ({"time_limit": 300}, 30, 330),
        ({"time_limit": 299.2}, 0, 300),
        ({"time_limit": 300, "soft_shutdown_timeout": 15}, 30, 345),
        ({}, 30, DEFAULT_STOP_TIMEOUT),
    ],
)
def test_stop_timeout(fields, margin, expected):
    assert stop_timeout(minimal(**fields), margin) == expected


def test_stop_timeout_default_margin_is_30():
    assert stop_timeout(minimal(time_limit=10)) == 40


def test_stop_timeout_refuses_negative_margin():
    with pytest.raises(FleetError, match="field 'margin'"):
        stop_timeout(minimal(), -1)


# --- pool_packages --------------------------------------------------------------------------------


def test_pool_packages_lists_each_needed_package_once_sorted():
    # Arrange
    workers = [
        minimal(name="a", pool="gevent"),
        minimal(name="b", pool="gevent"),
        minimal(name="c", pool="eventlet"),
        minimal(name="d", pool="threads"),
    ]

    # Act / Assert
    assert pool_packages(workers) == ["eventlet", "gevent"]


def test_pool_packages_ignores_absent_workers():
    assert pool_packages([minimal(pool="gevent", state="absent"), minimal(name="p")]) == []


def test_pool_packages_refuses_an_invalid_worker():
    with pytest.raises(FleetError, match="field 'pool'"):
        pool_packages([minimal(pool="fork")])
