"""molecule/resources/callback/celery_fleet_ansiballz_cache.py: module payloads kept across runs,
never reused for other sources."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import os
import subprocess
import sys
import zipfile
import zipimport
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[2]
PLUGIN_DIR = TOP / "molecule" / "resources" / "callback"
_spec = importlib.util.spec_from_file_location(
    "ansiballz_cache", PLUGIN_DIR / "celery_fleet_ansiballz_cache.py"
)
assert _spec and _spec.loader
cache = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cache)

VERSIONS = {"ansible-core": "2.19.0"}

MODULE = """#!/usr/bin/python
from ansible.module_utils.basic import AnsibleModule

def main():
    module = AnsibleModule(argument_spec={})
    module.exit_json(changed=False, answer=ANSWER)

if __name__ == "__main__":
    main()
"""

PLAY = """- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Ask the module
      answer_module:
      register: answered
    - name: Show the answer
      ansible.builtin.debug:
        msg: "ANSWER={{ answered.answer }}"
"""


def _module_dirs(tmp_path: Path) -> Path:
    library = tmp_path / "roles" / "one" / "library"
    library.mkdir(parents=True)
    (library / "mod.py").write_text("print(1)\n")
    return library


def test_the_key_follows_every_file_of_the_directories_and_the_versions(tmp_path):
    library = _module_dirs(tmp_path)
    dirs = cache.source_dirs([], [str(tmp_path / "roles")], str(tmp_path / "play"))
    assert dirs == [library.resolve()]
    first = cache.key(dirs, VERSIONS)
    assert cache.key(dirs, VERSIONS) == first
    # Bytecode is not a source.
    (library / "__pycache__").mkdir()
    (library / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0")
    assert cache.key(dirs, VERSIONS) == first
    (library / "mod.py").write_text("print(2)\n")
    changed = cache.key(dirs, VERSIONS)
    assert changed != first
    (library / "other.py").write_text("")
    assert cache.key(dirs, VERSIONS) not in (first, changed)
    assert cache.key(dirs, {"ansible-core": "2.19.1"}) != cache.key(dirs, VERSIONS)


def test_source_dirs_are_the_module_paths_each_roles_and_the_playbooks(tmp_path):
    (tmp_path / "library").mkdir()
    (tmp_path / "roles" / "a" / "module_utils").mkdir(parents=True)
    (tmp_path / "roles" / "b" / "tasks").mkdir(parents=True)
    (tmp_path / "play" / "library").mkdir(parents=True)
    found = cache.source_dirs(
        [str(tmp_path / "library"), str(tmp_path / "missing")],
        [str(tmp_path / "roles")],
        str(tmp_path / "play"),
    )
    assert found == sorted(
        p.resolve()
        for p in (
            tmp_path / "library",
            tmp_path / "roles" / "a" / "module_utils",
            tmp_path / "play" / "library",
        )
    )


def test_attach_links_the_run_to_its_keyed_directory_and_keeps_the_newest(tmp_path):
    kept_root = tmp_path / "kept"
    for n, old in enumerate(("old1", "old2", "old3")):
        (kept_root / old).mkdir(parents=True)
        os.utime(kept_root / old, (1000 + n, 1000 + n))
    run_cache = tmp_path / "ansible-local-1" / "ansiballz_cache"
    kept = cache.attach(run_cache, kept_root, "abc", keep=2)
    assert kept == kept_root / "abc"
    assert run_cache.is_symlink() and run_cache.resolve() == kept.resolve()
    assert oct(kept.stat().st_mode & 0o777) == oct(0o700)
    assert sorted(p.name for p in kept_root.iterdir()) == ["abc", "old3"]
    # A run that already has its own directory keeps it.
    assert cache.attach(run_cache, kept_root, "other", keep=2) is None
    assert not (kept_root / "other").exists()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "library").mkdir()
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "ansible.cfg").write_text(
        "[defaults]\n"
        f"callback_plugins = {PLUGIN_DIR}\n"
        "callbacks_enabled = celery_fleet_ansiballz_cache\n"
        "stdout_callback = ansible.builtin.default\n"
        f"local_tmp = {tmp_path / 'tmp'}\n"
        "interpreter_python = auto_silent\n"
    )
    return tmp_path


def _run(project: Path, answer: str) -> tuple[str, list[str]]:
    (project / "library" / "answer_module.py").write_text(MODULE.replace("ANSWER", json.dumps(answer)))
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            "localhost,",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            "play.yml",
        ],
        cwd=project,
        env={
            **os.environ,
            "ANSIBLE_CONFIG": str(project / "ansible.cfg"),
            "CELERY_FLEET_ANSIBALLZ_CACHE": str(project / "kept"),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    keys = sorted(p.name for p in (project / "kept").iterdir())
    return result.stdout, keys


def _kept_zip(path: Path) -> bytes:
    """The base64 zip of a payload Ansible kept (its own pickle of ansible-core's _CachedModule)."""
    import pickle  # Ansible's own cache format, read back only here

    with path.open("rb") as kept:
        return pickle.load(kept).zip_data  # a file this test's run just wrote


def test_a_run_reuses_the_payloads_of_the_same_sources_and_never_others(project):
    out, keys = _run(project, "first")
    assert "ANSWER=first" in out
    [first] = keys
    kept_payload = project / "kept" / first / "ansible.legacy.answer_module-ZIP_DEFLATED-none"
    assert kept_payload.exists()
    # The kept payload carries the bytecode of the module and of what it imports.
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(_kept_zip(kept_payload)))) as z:
        names = set(z.namelist())
    assert {"ansible/legacy/answer_module.pyc", "ansible/module_utils/basic.pyc"} <= names
    # The same sources: the same keyed directory, nothing new built.
    before = {p.name: p.stat().st_mtime_ns for p in (project / "kept" / first).iterdir()}
    out, keys = _run(project, "first")
    assert "ANSWER=first" in out and keys == [first]
    assert {p.name: p.stat().st_mtime_ns for p in (project / "kept" / first).iterdir()} == before
    # The module changed: another key, and the run runs the new code.
    out, keys = _run(project, "second")
    assert "ANSWER=second" in out
    assert len(keys) == 2 and first in keys
    # The run's own temporary directory is gone, the kept payloads are not.
    assert not list((project / "tmp").glob("ansible-local-*"))
    assert all((project / "kept" / k).is_dir() for k in keys)


def _payload(files: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return base64.b64encode(out.getvalue())


def _unpack(payload: bytes, path: Path) -> Path:
    path.write_bytes(base64.b64decode(payload))
    return path


def _import(archive: Path, name: str) -> tuple[object, str]:
    """What a module of the zip computes, and the file name its code was compiled with (the
    archive's own path when zipimport compiled the source, the name inside it from a .pyc)."""
    package = "".join(f"{part}/" for part in name.split(".")[:-1])
    code = zipimport.zipimporter(f"{archive}/{package}").get_code(name)
    scope: dict[str, object] = {}
    exec(code, scope)  # the test's own one-line module
    return scope["VALUE"], code.co_filename


def test_payloads_carry_checked_bytecode_that_zipimport_uses(tmp_path):
    payload = cache.with_bytecode(
        _payload({"pkg/__init__.py": "", "pkg/mod.py": "VALUE = 6 * 7\n", "pkg/broken.py": "def (:\n"})
    )
    archive = _unpack(payload, tmp_path / "payload.zip")
    with zipfile.ZipFile(archive) as z:
        names = set(z.namelist())
        assert {"pkg/__init__.pyc", "pkg/mod.pyc"} <= names
        # What does not compile here is left to the target, as before.
        assert "pkg/broken.py" in names and "pkg/broken.pyc" not in names
        assert z.getinfo("pkg/mod.pyc").compress_type == zipfile.ZIP_DEFLATED
        pyc = z.read("pkg/mod.pyc")
    assert pyc[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(pyc[4:8], "little") == 0b11  # hash-based, checked
    value, filename = _import(archive, "pkg.mod")
    assert value == 42
    assert filename == "pkg/mod.py"  # the bytecode ran, not a compilation of the source


def test_bytecode_of_other_source_or_python_is_not_used(tmp_path):
    payload = cache.with_bytecode(_payload({"mod.py": "VALUE = 1\n"}))
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(payload))) as z:
        pyc = z.read("mod.pyc")
    # The source changed after its bytecode was made: the check against the source rejects it.
    stale = tmp_path / "stale.zip"
    with zipfile.ZipFile(stale, "w") as z:
        z.writestr("mod.py", "VALUE = 2\n")
        z.writestr("mod.pyc", pyc)
    assert _import(stale, "mod") == (2, str(stale / "mod.py"))
    # Another Python's magic number (trixie's 3.13 reading bookworm's): the source is compiled.
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("mod.py", "VALUE = 3\n")
        z.writestr("mod.pyc", b"\0\0\r\n" + pyc[4:])
    assert _import(other, "mod") == (3, str(other / "mod.py"))


def test_the_key_follows_the_payload_format():
    assert cache.versions([])["payload"] == cache.PAYLOAD_FORMAT
    assert cache.versions([])["python"] == sys.version
