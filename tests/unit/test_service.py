"""Unit tests of celery_fleet.service: devices, secret detection, where each variable goes, env files."""

import subprocess

import pytest
from celery_fleet.errors import FleetError
from celery_fleet.service import check_devices, env_file, is_secret, split_environment

# --- check_devices --------------------------------------------------------------------------------


def test_devices_keep_their_order():
    devices = [
        "/dev/nvidia1",
        "/dev/nvidiactl",
        "/dev/nvidia-uvm",
        "/dev/nvidia-caps/nvidia-cap2",
        "char-nvidia-uvm",
    ]

    assert check_devices(devices) == (devices, [])


def test_no_devices():
    assert check_devices(None) == ([], [])
    assert check_devices([]) == ([], [])


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("/dev/nvidia0", "is not a list"),
        ([1], "is not an absolute path under /dev"),
        (["/dev/"], "is not an absolute path under /dev"),
        (["/dev"], "is not an absolute path under /dev"),
        (["/device/x"], "is not an absolute path under /dev"),
        (["/dev//nvidia0"], "is not an absolute path under /dev"),
        (["/dev/./nvidia0"], "'.' or '..' component"),
        (["/dev/nvidia0\n"], "is not an absolute path under /dev"),
        (["char-"], "is not an absolute path under /dev"),
        (["/dev/a", "/dev/b", "/dev/a"], "'/dev/a' is listed twice"),
    ],
)
def test_bad_devices_are_refused(value, words):
    _, problems = check_devices(value)

    assert len(problems) == 1
    assert words in problems[0]


# --- is_secret ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "postgres://app:pw@db/x"),
        ("CACHE", "redis://:pw@cache:6379/0"),
        ("ERRORS", "https://0123abcd@o1.ingest.sentry.example/42"),
        ("UPSTREAMS", "http://a.example/ amqp://user:pass@mq.example//"),
        ("DB_PASSWORD", "x"),
        ("PGPASSWORD", "x"),
        ("AWS_SECRET_ACCESS_KEY", "x"),
        ("AWS_ACCESS_KEY_ID", "x"),
        ("STRIPE_KEY", "x"),
        ("GITHUB_TOKEN", "x"),
        ("SENTRY_DSN", "x"),
        ("api_key", "x"),
    ],
)
def test_credentials_are_secret_by_name_or_value(name, value):
    assert is_secret(name, value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FEATURE_URL", "https://example.com/a@b"),
        ("ENDPOINT", "https://api.example/v1?user=me@example.com"),
        ("CONTACT", "ops@example.com"),
        ("MONKEY", "banana"),
        ("HF_HOME", "/var/lib/app/hf"),
        ("CUDA_VISIBLE_DEVICES", "0,1"),
    ],
)
def test_plain_values_are_not_secret(name, value):
    assert not is_secret(name, value)


# --- split_environment ----------------------------------------------------------------------------


def test_systemd_keeps_plain_variables_in_the_unit_and_secrets_in_the_file():
    env = {"A": "1", "DATABASE_URL": "postgres://app:pw@db/x", "API_TOKEN": "t"}

    assert split_environment(env, "systemd") == {
        "inline": {"A": "1"},
        "file": {"DATABASE_URL": "postgres://app:pw@db/x", "API_TOKEN": "t"},
    }


def test_supervisord_puts_every_variable_in_the_file():
    env = {"A": "1", "Q": 'it\'s "quoted"'}

    assert split_environment(env, "supervisord") == {"inline": {}, "file": env}


def test_split_refuses_unknown_manager():
    with pytest.raises(FleetError, match="field 'celery_process_manager': 'upstart' is not one of"):
        split_environment({}, "upstart")


# --- env_file -------------------------------------------------------------------------------------

TRICKY = {
    "PLAIN": "x",
    "EMPTY": "",
    "ALL": "a$b ${HOME} 'c' \"d\" 50% %h `id` \\n back\\slash #hash ;semi  two  spaces ",
    "URL": "postgres://app:p@ss'w\"o$rd@db/x",
}


def test_env_file_known_lines():
    assert env_file({"A": 'x"$`\\y', "B": "it's 100%"}) == 'A="x\\"\\$\\`\\\\y"\nB="it\'s 100%"\n'


def test_env_file_reads_back_byte_for_byte_through_sh(tmp_path):
    # Arrange: the wrapper of roles/celery_app loads such a file with `set -a; . file`.
    path = tmp_path / "worker.env"
    path.write_text(env_file(TRICKY))
    script = f"set -a; . {path}; set +a; " + "; ".join(f'printf "%s\\0" "${name}"' for name in TRICKY)

    # Act
    out = subprocess.run(["sh", "-c", script], capture_output=True, check=True, env={"HOME": "/root"})

    # Assert
    assert out.stdout.split(b"\0")[:-1] == [value.encode() for value in TRICKY.values()]


def parse_systemd_env_file(text: str) -> dict[str, str]:
    """systemd's env-file parser (src/basic/env-file.c) for NAME="..." lines: inside double quotes a
    backslash keeps the next character if it is one of \\ " ` $, else both; nothing is expanded."""
    result = {}
    for line in text.splitlines():
        name, _, rest = line.partition("=")
        assert rest.startswith('"') and rest.endswith('"'), line
        body, value, i = rest[1:-1], [], 0
        while i < len(body):
            if body[i] == "\\" and i + 1 < len(body):
                nxt = body[i + 1]
                value.append(nxt if nxt in '"\\`$' else "\\" + nxt)
                i += 2
            else:
                assert body[i] != '"', line
                value.append(body[i])
                i += 1
        result[name] = "".join(value)
    return result


def test_env_file_reads_back_through_systemds_rules():
    assert parse_systemd_env_file(env_file(TRICKY)) == TRICKY


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\x00b"])
def test_env_file_refuses_what_it_cannot_carry_without_showing_the_value(value):
    with pytest.raises(FleetError) as caught:
        env_file({"SECRET_X": value})

    assert "SECRET_X: the value is not a string without NUL or line break" in str(caught.value)
    assert value not in str(caught.value)


@pytest.mark.parametrize("environment", [{"1X": "a"}, {"X": 1}, ["X=1"]])
def test_env_file_refuses_bad_input(environment):
    with pytest.raises(FleetError, match="field 'environment'"):
        env_file(environment)
