"""The harness's ansible-playbook client and server (molecule/resources/kept_playbook.py), with real
ansible-playbook runs on this machine: a run is forked from the server only once its key repeats,
and then it is the run the client would have started (output, exit status, environment, working
directory, umask, its own local temporary directory); a killed client takes its run with it; a
changed configuration or a terminal runs anew; the server ends by itself and leaves nothing behind.
"""

from __future__ import annotations

import os
import pty
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[2]
CLIENT = TOP / "molecule" / "resources" / "bin" / "ansible-playbook"
REAL = Path(sys.executable).parent / "ansible-playbook"
IDLE = 4.0
SERVE = "kept_playbook.py serve"

# Prints, from a `pipe` lookup in the run's task process, its ancestors' command lines (the task
# process, ansible-playbook's main process, and above it the server or the test, where it stops: the
# processes above the test, such as a CI harness, may have anything in their arguments, and the
# lookup decodes what it reads as UTF-8, so only printable ASCII is printed), then the facts a run
# takes from its client.
PROBE = r"""p=$PPID
while [ "$p" -gt 1 ] && [ "$p" != "$PROBE_STOP" ]; do
  echo "ancestor: $(LC_ALL=C tr -c '[:print:]' ' ' < /proc/$p/cmdline)"
  p=$(awk '{print $4}' /proc/$p/stat)
done
echo "mark: $MOLECULE_MARK"
echo "cwd: $(pwd)"
echo "umask: $(umask)"
echo "local tmp: $(ls "$LOCAL_TMP" | tr '\n' ' ')"
"""
PLAY = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Probe
      ansible.builtin.debug:
        msg: "{{ lookup('ansible.builtin.pipe', 'sh ' ~ playbook_dir ~ '/probe.sh') }}"
"""
FAIL = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Fail
      ansible.builtin.fail:
        msg: failed on purpose
"""
SLEEP = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Sleep
      ansible.builtin.command: sleep 37.25
"""


@pytest.fixture
def kept(tmp_path: Path) -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    """`kept(playbook_text, **options)`: the client on a playbook written to tmp_path, with its own
    runtime directory (TMPDIR), configuration and local temporary directory; servers it started are
    stopped at the end."""
    # A short TMPDIR: the server's socket path must fit a UNIX socket's 108 bytes.
    runtime = tempfile.mkdtemp(prefix="kp-", dir="/tmp")
    (tmp_path / "tmp").symlink_to(runtime)
    (tmp_path / "local").mkdir()
    (tmp_path / "probe.sh").write_text(PROBE)
    config = tmp_path / "ansible.cfg"
    config.write_text("[defaults]\nretry_files_enabled = False\n")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ["HOME"],
        "TMPDIR": runtime,
        "ANSIBLE_CONFIG": str(config),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "local"),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "CELERY_FLEET_ANSIBLE_PLAYBOOK_REAL": str(REAL),
        "CELERY_FLEET_KEPT_PLAYBOOK_IDLE": str(IDLE),
        "LOCAL_TMP": str(tmp_path / "local"),
        "PROBE_STOP": str(os.getpid()),
    }

    def run(text: str = PLAY, *, extra_env: dict[str, str] | None = None, **options):
        (tmp_path / "play.yml").write_text(text)
        options.setdefault("cwd", tmp_path)
        return subprocess.run(
            [str(CLIENT), "-i", "localhost,", "-c", "local", "play.yml"],
            env={**env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            **options,
        )

    run.env = env  # type: ignore[attr-defined]
    yield run
    subprocess.run(["pkill", "-f", f"{SERVE} .* {runtime}/"], check=False)
    shutil.rmtree(runtime, ignore_errors=True)


def lines(result: subprocess.CompletedProcess[str], prefix: str) -> list[str]:
    found = []
    for line in result.stdout.replace("\\n", "\n").splitlines():
        line = line.strip().strip('"')
        if line.startswith(prefix):
            found.append(line[len(prefix) :].strip())
    return found


def forked(result: subprocess.CompletedProcess[str]) -> bool:
    assert result.returncode == 0, result.stdout + result.stderr
    ancestors = lines(result, "ancestor:")
    assert len(ancestors) >= 2, result.stdout
    return any(SERVE in a for a in ancestors)


def servers(tmp_path: Path) -> list[int]:
    runtime = (tmp_path / "tmp").resolve()
    found = subprocess.run(["pgrep", "-f", f"{SERVE} .* {runtime}/"], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def sleeping() -> bool:
    """Whether the SLEEP play's module is running."""
    return subprocess.run(["pgrep", "-f", "sleep 37.25"], stdout=subprocess.DEVNULL).returncode == 0


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_a_run_is_forked_once_its_key_repeats_and_prints_what_a_new_one_prints(kept, tmp_path):
    first, second, third = kept(), kept(), kept()
    # The first remembers the key, the second starts a server and waits for it, the third is forked.
    assert [forked(first), forked(second), forked(third)] == [False, True, True]
    assert len(servers(tmp_path)) == 1
    misses = (tmp_path / "tmp" / f"celery-fleet-kept-playbook-{os.getuid()}" / "misses.log").read_text()
    assert [line.split()[1] for line in misses.splitlines()] == ["first", "served"]
    assert lines(third, "mark:") == lines(first, "mark:")
    task = [line for line in first.stdout.splitlines() if "TASK [" in line or "ok=" in line]
    assert task == [line for line in third.stdout.splitlines() if "TASK [" in line or "ok=" in line]


def test_a_forked_run_has_its_clients_environment_directory_umask_and_local_tmp(kept, tmp_path):
    # The working directory is part of the key (Ansible looks for ansible.cfg there as it imports).
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "probe.sh").write_text(PROBE)
    (elsewhere / "play.yml").write_text(PLAY)
    assert not forked(kept(cwd=elsewhere)) and forked(kept(cwd=elsewhere))
    result = kept(extra_env={"MOLECULE_MARK": "set for this run only"}, cwd=elsewhere, umask=0o027)
    assert forked(result)
    assert lines(result, "mark:") == ["set for this run only"]
    assert lines(result, "cwd:") == [str(elsewhere)]
    assert lines(result, "umask:") == ["0027"]
    # Its own ansible-local-<pid> beside the server's, removed as it ended; the server's stays.
    during = lines(result, "local tmp:")[0].split()
    server = servers(tmp_path)[0]
    assert len(during) == 2 and sum(d.startswith(f"ansible-local-{server}") for d in during) == 1, during
    assert [d.name for d in (tmp_path / "local").iterdir()] == [
        d for d in during if d.startswith(f"ansible-local-{server}")
    ]


def test_a_failed_run_exits_as_it_would_anew(kept):
    kept(FAIL), kept(FAIL)
    result = kept(FAIL)
    assert result.returncode == 2
    assert "failed on purpose" in result.stdout + result.stderr
    assert "failed=1" in result.stdout


def test_a_killed_client_takes_its_run_with_it(kept, tmp_path):
    """SIGTERM reaches ansible-playbook, which ends its task processes and their modules; SIGKILL of
    the client kills ansible-playbook's main process, whose task processes (each in a session of
    its own) go on alone, as when a new ansible-playbook is killed."""
    kept(), kept()
    [server] = servers(tmp_path)

    def runs() -> list[str]:
        return subprocess.run(["pgrep", "-P", str(server)], capture_output=True, text=True).stdout.split()

    for signum in (signal.SIGTERM, signal.SIGKILL):
        (tmp_path / "play.yml").write_text(SLEEP)
        client = subprocess.Popen(
            [str(CLIENT), "-i", "localhost,", "-c", "local", "play.yml"],
            cwd=tmp_path,
            env=kept.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert wait_for(sleeping, 30)
        assert runs(), "the run was not forked"
        client.send_signal(signum)
        client.wait(timeout=30)
        assert client.returncode == -signum
        assert wait_for(lambda: not runs(), 15), signum
        if signum == signal.SIGTERM:
            assert wait_for(lambda: not sleeping(), 15)
        subprocess.run(["pkill", "-f", "sleep 37.25"], check=False)
    # Still serving (the task process left by SIGKILL, a fork of the run, ends with its module).
    assert wait_for(lambda: servers(tmp_path) == [server], 15)


def test_a_changed_configuration_is_read_by_a_new_server_and_the_old_one_ends(kept, tmp_path):
    kept(), kept()
    assert forked(kept())
    [server] = servers(tmp_path)
    config = tmp_path / "ansible.cfg"
    config.write_text(config.read_text() + "callback_result_format = yaml\n")
    result = kept()
    # The old server declined the run and stopped listening; the client started the next one and
    # waited for it, which read the new configuration: its run prints its result as YAML.
    assert forked(result)
    assert "msg: |-" in result.stdout and '"msg":' not in result.stdout, result.stdout
    assert wait_for(lambda: server not in servers(tmp_path), 10)
    assert len(servers(tmp_path)) == 1


def test_a_terminal_runs_anew(kept, tmp_path):
    kept(), kept()
    assert servers(tmp_path)
    leader, follower = pty.openpty()
    try:
        (tmp_path / "play.yml").write_text(PLAY)
        client = subprocess.Popen(
            [str(CLIENT), "-i", "localhost,", "-c", "local", "play.yml"],
            cwd=tmp_path,
            env=kept.env,
            stdout=follower,
            stderr=subprocess.DEVNULL,
        )
        os.close(follower)
        output = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other side closed
                break
            if not chunk:
                break
            output += chunk
        client.wait(timeout=60)
    finally:
        os.close(leader)
    assert client.returncode == 0
    text = output.decode(errors="replace")
    assert "ancestor:" in text and SERVE not in text


def test_the_server_ends_when_idle_and_leaves_no_socket_or_directory(kept, tmp_path):
    kept(), kept()
    [server] = servers(tmp_path)
    runtime = tmp_path / "tmp" / f"celery-fleet-kept-playbook-{os.getuid()}"
    assert oct(runtime.stat().st_mode & 0o777) == "0o700"
    assert list(runtime.glob("*.sock"))
    assert wait_for(lambda: server not in servers(tmp_path), IDLE + 10)
    assert not list(runtime.glob("*.sock"))
    assert not list((tmp_path / "local").iterdir())


def test_the_builtin_routing_parsed_once_is_each_callers_own_copy(monkeypatch):
    """keep_builtin_routing, in this process: ansible.builtin's routing as the collection loader's
    own function parses it, a new copy for each call; other content parsed by that function."""
    sys.path.insert(0, str(TOP / "molecule" / "resources"))
    import ansible
    import kept_playbook
    from ansible.utils.collection_loader import _collection_finder

    parse = _collection_finder._meta_yml_to_dict
    monkeypatch.setattr(_collection_finder, "_meta_yml_to_dict", parse)
    path = Path(ansible.__file__).parent / "config" / "ansible_builtin_runtime.yml"
    kept_playbook.keep_builtin_routing(str(path))
    kept = _collection_finder._meta_yml_to_dict
    assert kept is not parse
    raw = path.read_bytes()
    first = kept(raw, ("ansible.builtin", "runtime.yml"))
    assert first == parse(raw, ("ansible.builtin", "runtime.yml"))
    first["plugin_routing"].clear()
    assert kept(path.read_bytes(), ("ansible.builtin", "runtime.yml"))["plugin_routing"]
    assert kept(b"requires_ansible: '>=2.15'\n", ("x.y", "runtime.yml")) == {"requires_ansible": ">=2.15"}


OPTIONS = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Plugin options, as the plugins' documentation and its fragments define them
      ansible.builtin.debug:
        msg: >-
          options: {{ [
          lookup('ansible.builtin.config', 'display_ok_hosts', plugin_type='callback', plugin_name='default'),
          lookup('ansible.builtin.config', 'result_format', plugin_type='callback', plugin_name='default'),
          lookup('ansible.builtin.config', 'pipelining', plugin_type='connection', plugin_name='ssh'),
          lookup('ansible.builtin.config', 'remote_tmp', plugin_type='shell', plugin_name='sh'),
          lookup('ansible.builtin.config', 'become_exe', plugin_type='become', plugin_name='sudo'),
          lookup('ansible.builtin.config', 'directory', plugin_type='callback', plugin_name='tree')
          ] | to_json }}
"""


def test_plugin_options_from_learned_documentation_are_those_of_a_new_run(kept, tmp_path):
    """The fourth run (forked, the documentation the second and third parsed learned by the
    server) defines every plugin's options as the first (a new interpreter) did."""
    runs = [kept(OPTIONS) for _ in range(4)]
    for run in runs:
        assert run.returncode == 0, run.stdout + run.stderr
    first, last = (re.findall(r"options: (\[.*\])", run.stdout) for run in (runs[0], runs[3]))
    assert first and first == last, (first, last)
    assert len(servers(tmp_path)) == 1


def test_documentation_kept_is_what_pyyaml_makes_with_its_tags():
    """KeptDocs, in this process, on every builtin callback's and inventory plugin's documentation:
    a text parsed once is returned as an equal copy with the same tags on every value, a new one
    each time; a text not learned, another loader or a stream that is not text go to PyYAML."""
    import ast
    import importlib

    sys.path.insert(0, str(TOP / "molecule" / "resources"))
    import ansible.plugins.loader
    import ansible.utils.plugin_docs
    import kept_playbook
    import yaml
    from ansible._internal._datatag import _tags
    from ansible.module_utils._internal._datatag import AnsibleTagHelper
    from ansible.parsing.yaml.loader import AnsibleLoader

    def same(a: object, b: object, where: str = "") -> None:
        assert type(a) is type(b), where
        assert AnsibleTagHelper.tags(a) == AnsibleTagHelper.tags(b), where
        assert a == b, where
        if isinstance(a, dict):
            for k in a:
                same(a[k], b[k], f"{where}/{k}")
        elif isinstance(a, list):
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                same(x, y, f"{where}[{i}]")

    try:
        docs = kept_playbook.KeptDocs()
        assert ansible.plugins.loader.yaml.load == docs.kept_load
        texts = []
        for kind in ("callback", "inventory"):
            for path in (Path(ansible.__file__).parent / "plugins" / kind).glob("*.py"):
                for node in ast.parse(path.read_text()).body:
                    if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "DOCUMENTATION":
                        texts.append(
                            _tags.Origin(path=str(path)).tag(_tags.TrustedAsTemplate().tag(node.value.value))
                        )
        assert len(texts) > 10
        docs.learn(b"".join(kept_playbook.HEADER.pack(len(r)) + r for r in map(docs.pickle.dumps, texts)))
        assert len(docs.parsed) == len(texts)
        for text in texts:
            fresh = yaml.load(text, Loader=AnsibleLoader)
            kept = docs.kept_load(text, Loader=AnsibleLoader)
            same(kept, fresh, str(AnsibleTagHelper.tags(text)))
            assert kept is not docs.kept_load(text, Loader=AnsibleLoader)
        # Another origin is another text: parsed anew.
        moved = _tags.Origin(path="/elsewhere.py").tag(AnsibleTagHelper.untag(texts[0]))
        assert docs.key(moved) not in docs.parsed
        same(docs.kept_load(moved, Loader=AnsibleLoader), yaml.load(moved, Loader=AnsibleLoader))
        assert docs.kept_load("a: 1", Loader=yaml.SafeLoader) == {"a": 1}
    finally:
        importlib.reload(ansible.utils.plugin_docs)
        ansible.plugins.loader.yaml = yaml
        ansible.utils.plugin_docs.yaml = yaml
