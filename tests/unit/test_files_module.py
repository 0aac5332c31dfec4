"""Unit tests of library/celery_fleet_files.py: directories and files in one module run, written
only when they differ, atomically, check and diff mode, secrets masked in what it returns and logs."""

from __future__ import annotations

import base64
import grp
import importlib.util
import io
import json
import os
import pwd
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

basic = pytest.importorskip("ansible.module_utils.basic")

PATH = Path(__file__).resolve().parents[2] / "library" / "celery_fleet_files.py"
spec = importlib.util.spec_from_file_location("celery_fleet_files", PATH)
files_module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(files_module)

OWNER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name
SECRET = "test-only-key-material-0123456789"  # TEST ONLY


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def a_file(path: Path, content: str, mode: str = "0644", **extra: Any) -> dict[str, Any]:
    return {
        "path": str(path),
        "content_base64": b64(content),
        "owner": OWNER,
        "group": GROUP,
        "mode": mode,
        **extra,
    }


def a_dir(path: Path, mode: str = "0750") -> dict[str, Any]:
    return {"path": str(path), "owner": OWNER, "group": GROUP, "mode": mode}


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_directory_and_its_files_are_made_then_left_alone(tmp_path: Path) -> None:
    directory = tmp_path / "etc" / "app"
    dirs, files = (
        [a_dir(directory)],
        [a_file(directory / "a.conf", "a = 1\n"), a_file(directory / "b.key", "k\n", "0600")],
    )
    first = files_module.ensure(dirs, files, check=False)
    assert first["changed"] is True
    assert first["changed_paths"] == [str(directory), str(directory / "a.conf"), str(directory / "b.key")]
    assert first["content_changed"] == [str(directory / "a.conf"), str(directory / "b.key")]
    assert (directory / "a.conf").read_text() == "a = 1\n"
    assert mode_of(directory) == 0o750 and mode_of(directory / "b.key") == 0o600
    # No temporary file is left beside them.
    assert sorted(p.name for p in directory.iterdir()) == ["a.conf", "b.key"]
    second = files_module.ensure(dirs, files, check=False)
    assert second == {
        "changed": False,
        "changed_paths": [],
        "content_changed": [],
        "backup_files": {},
        "diff": [],
    }


def test_a_changed_mode_alone_is_fixed_in_place_without_rewriting_the_content(tmp_path: Path) -> None:
    target = tmp_path / "a.conf"
    files_module.ensure([], [a_file(target, "x\n")], check=False)
    inode = target.stat().st_ino
    target.chmod(0o666)
    result = files_module.ensure([], [a_file(target, "x\n")], check=False)
    assert result["changed_paths"] == [str(target)] and result["content_changed"] == []
    assert mode_of(target) == 0o644 and target.stat().st_ino == inode
    assert "mode: 0666" in result["diff"][0]["before"] and "mode: 0644" in result["diff"][0]["after"]


def test_a_changed_content_replaces_the_file_by_a_rename(tmp_path: Path) -> None:
    target = tmp_path / "a.conf"
    files_module.ensure([], [a_file(target, "old\n")], check=False)
    inode = target.stat().st_ino
    result = files_module.ensure([], [a_file(target, "new\n")], check=False)
    assert result["content_changed"] == [str(target)]
    assert target.read_text() == "new\n" and target.stat().st_ino != inode
    diff = result["diff"][0]
    assert diff["before"].endswith("\nold\n") and diff["after"].endswith("\nnew\n")


def test_check_mode_reports_every_change_and_writes_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    result = files_module.ensure([a_dir(directory)], [a_file(directory / "f", "x\n")], check=True)
    assert result["changed_paths"] == [str(directory), str(directory / "f")]
    assert result["content_changed"] == [str(directory / "f")]
    assert not directory.exists()


def test_check_mode_accepts_a_user_or_src_an_earlier_skipped_task_would_have_made(tmp_path: Path) -> None:
    missing_user = {**a_file(tmp_path / "f", "x\n"), "owner": "celery-fleet-no-such-user"}
    assert files_module.ensure([], [missing_user], check=True)["changed_paths"] == [str(tmp_path / "f")]
    with pytest.raises(ValueError, match="f: owner 'celery-fleet-no-such-user' is not a user on this host"):
        files_module.ensure([], [missing_user], check=False)
    from_src = {
        "path": str(tmp_path / "g"),
        "src": str(tmp_path / "nowhere"),
        "owner": OWNER,
        "group": GROUP,
        "mode": "0644",
    }
    assert files_module.ensure([], [from_src], check=True)["content_changed"] == [str(tmp_path / "g")]
    with pytest.raises(ValueError, match="nowhere does not exist"):
        files_module.ensure([], [from_src], check=False)


def test_src_copies_another_file_on_the_host(tmp_path: Path) -> None:
    source = tmp_path / "user.crt"
    source.write_text("CERT\n")
    source.chmod(0o600)
    copy = {
        "path": str(tmp_path / "server.crt"),
        "src": str(source),
        "owner": OWNER,
        "group": GROUP,
        "mode": "0640",
    }
    assert files_module.ensure([], [copy], check=False)["content_changed"] == [str(tmp_path / "server.crt")]
    assert (tmp_path / "server.crt").read_text() == "CERT\n" and mode_of(tmp_path / "server.crt") == 0o640
    assert mode_of(source) == 0o600
    assert files_module.ensure([], [copy], check=False)["changed"] is False


def test_a_secret_files_content_is_in_no_diff(tmp_path: Path) -> None:
    target = tmp_path / "server.key"
    files_module.ensure([], [a_file(target, "old-" + SECRET, "0600", secret=True)], check=False)
    result = files_module.ensure([], [a_file(target, SECRET, "0600", secret=True)], check=False)
    assert result["content_changed"] == [str(target)]
    assert SECRET not in json.dumps(result)
    assert (
        files_module.HIDDEN in result["diff"][0]["before"]
        and files_module.HIDDEN in result["diff"][0]["after"]
    )


def test_a_failed_validate_leaves_the_file_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "rules.yml"
    files_module.ensure([], [a_file(target, "good\n")], check=False)
    refused = a_file(target, "bad\n", validate="grep -q good %s")
    with pytest.raises(ValueError, match=r"rules.yml: validate \(grep -q good %s\) failed with rc=1"):
        files_module.ensure([], [refused], check=False)
    assert target.read_text() == "good\n" and [p.name for p in tmp_path.iterdir()] == ["rules.yml"]
    accepted = a_file(target, "good too\n", validate="grep -q good %s")
    assert files_module.ensure([], [accepted], check=False)["content_changed"] == [str(target)]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mode": "rw-r--r--"}, "mode 'rw-r--r--' is not an octal number such as '0640'"),
        ({"mode": "17777"}, "mode '17777' is out of range"),
        (
            {"group": "celery-fleet-no-such-group"},
            "group 'celery-fleet-no-such-group' is not a group on this host",
        ),
        ({"path": "relative/f"}, "relative/f: path must be absolute"),
        ({"src": "/etc/hostname"}, "give exactly one of content_base64 and src"),
        ({"content_base64": "not base64!"}, "content_base64 is not base64"),
    ],
)
def test_bad_input_names_the_path_and_the_field(tmp_path: Path, change: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        files_module.ensure([], [{**a_file(tmp_path / "f", "x\n"), **change}], check=False)
    assert not (tmp_path / "f").exists()


def test_a_path_of_another_kind_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(ValueError, match="d: exists and is not a regular file"):
        files_module.ensure([], [a_file(tmp_path / "d", "x\n")], check=False)
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="f: exists and is not a directory"):
        files_module.ensure([a_dir(tmp_path / "f")], [], check=False)


def run_main(monkeypatch: pytest.MonkeyPatch, args: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The module's main() as Ansible runs it: its JSON result and the lines it logged (the journal)."""
    payload = {"ANSIBLE_MODULE_ARGS": {"_ansible_diff": True, **args}}
    monkeypatch.setattr(basic, "_ANSIBLE_ARGS", json.dumps(payload).encode())
    monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy", raising=False)
    logged: list[str] = []
    monkeypatch.setattr(basic.AnsibleModule, "log", lambda self, msg, log_args=None: logged.append(msg))
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    with pytest.raises(SystemExit):
        files_module.main()
    return json.loads(out.getvalue()), logged


def test_the_module_masks_every_content_in_its_output_and_its_log_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = [
        a_file(tmp_path / "app.conf", "broker = redis\n"),
        a_file(tmp_path / "app.key", SECRET, "0600", secret=True),
    ]
    result, logged = run_main(monkeypatch, {"files": files})
    assert result["changed"] is True, result
    assert result["content_changed"] == [str(tmp_path / "app.conf"), str(tmp_path / "app.key")]
    printed = json.dumps(result) + "\n".join(logged)
    for spec_ in files:
        assert spec_["content_base64"] not in printed
    assert SECRET not in printed
    # The plain file's diff shows its text; the secret's does not.
    assert result["diff"][0]["after"].endswith("broker = redis\n")
    assert files_module.HIDDEN in result["diff"][1]["after"]
    assert any(line.startswith("Invoked with") and str(tmp_path / "app.key") in line for line in logged)
    assert (tmp_path / "app.key").read_text() == SECRET


def test_file_specs_encode_the_content_and_leave_out_absent_entries() -> None:
    from celery_fleet import files

    specs = files.file_specs(
        [
            {"path": "/etc/a", "content": "é\n", "mode": "0644"},
            {"path": "/etc/b", "content": "", "mode": "0600", "secret": True, "present": False},
            {"path": "/etc/c", "src": "/etc/hostname", "mode": "0640", "present": True, "backup": True},
            {"path": "/etc/d", "content": "x", "mode": "0640", "present": "False"},
        ]
    )
    assert specs == [
        {"path": "/etc/a", "mode": "0644", "content_base64": base64.b64encode("é\n".encode()).decode()},
        {"path": "/etc/c", "src": "/etc/hostname", "mode": "0640", "backup": True},
    ]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"path": "/etc/a", "content": "x", "dest": "/etc/b"}, "/etc/a: unknown field.s. dest; allowed:"),
        ({"path": "/etc/a", "content": "x", "src": "/etc/b"}, "/etc/a: give exactly one of content and src"),
        ({"path": "/etc/a"}, "/etc/a: give exactly one of content and src"),
        ({"path": "/etc/a", "content": 3}, "/etc/a: content must be text, got int"),
        (
            {"path": "/etc/a", "content": "x", "present": "maybe"},
            "/etc/a: present must be true or false, got 'maybe'",
        ),
    ],
)
def test_file_specs_name_the_file_and_the_field(entry: dict[str, Any], message: str) -> None:
    from celery_fleet import files
    from celery_fleet.errors import FleetError

    with pytest.raises(FleetError, match=message):
        files.file_specs([entry])


def test_absent_files_are_removed_after_the_files_are_written(tmp_path: Path) -> None:
    old, new = tmp_path / "old-ca.crt", tmp_path / "ca.crt"
    old.write_text("OLD\n")
    result = files_module.ensure(
        [], [a_file(new, "NEW\n")], check=True, absent=[str(old), str(tmp_path / "never")]
    )
    assert result["changed_paths"] == [str(new), str(old)] and old.exists()
    result = files_module.ensure(
        [], [a_file(new, "NEW\n")], check=False, absent=[str(old), str(tmp_path / "never")]
    )
    assert result["changed_paths"] == [str(new), str(old)] and not old.exists()
    assert result["diff"][1]["after"] == "absent\n"
    assert files_module.ensure([], [], check=False, absent=[str(old)])["changed"] is False
    with pytest.raises(ValueError, match="is a directory, not a file to remove"):
        files_module.ensure([], [], check=False, absent=[str(tmp_path)])


def test_backup_keeps_the_replaced_content_with_its_owner_and_mode(tmp_path: Path) -> None:
    target = tmp_path / "site.conf"
    first = files_module.ensure([], [a_file(target, "old\n", backup=True)], check=False)
    assert first["backup_files"] == {}  # nothing was replaced
    target.chmod(0o640)
    assert (
        files_module.ensure([], [a_file(target, "old\n", "0644", backup=True)], check=False)["backup_files"]
        == {}
    )
    target.chmod(0o640)
    result = files_module.ensure([], [a_file(target, "new\n", "0644", backup=True)], check=False)
    backup = Path(result["backup_files"][str(target)])
    assert backup.parent == tmp_path and backup.name.startswith("site.conf.") and backup.name.endswith("~")
    assert backup.read_text() == "old\n" and mode_of(backup) == 0o640
    assert target.read_text() == "new\n" and mode_of(target) == 0o644
    assert files_module.ensure([], [a_file(target, "newer\n", backup=True)], check=True)["backup_files"] == {}


def test_file_result_reads_one_file_of_the_register_as_a_copy_result() -> None:
    from celery_fleet import files

    register = {
        "changed": True,
        "changed_paths": ["/etc/redis/redis.conf", "/etc/redis/users.acl"],
        "backup_files": {"/etc/redis/users.acl": "/etc/redis/users.acl.12.2026-12-05@01:02:03~"},
    }
    assert files.file_result(register, "/etc/redis/redis.conf") == {
        "changed": True,
        "dest": "/etc/redis/redis.conf",
    }
    assert files.file_result(register, "/etc/redis/users.acl") == {
        "changed": True,
        "dest": "/etc/redis/users.acl",
        "backup_file": "/etc/redis/users.acl.12.2026-12-05@01:02:03~",
    }
    assert files.file_result({"changed": False, "skipped": True}, "/a") == {"changed": False, "dest": "/a"}
    assert files.file_result(None, "/a") == {"changed": False, "dest": "/a"}


def test_absent_directories_go_with_their_content_and_shallow_paths_are_refused(tmp_path: Path) -> None:
    tls = tmp_path / "app" / "tls"
    tls.mkdir(parents=True)
    (tls / "ca.crt").write_text("CA\n")
    result = files_module.ensure([], [], check=True, absent_directories=[str(tls)])
    assert result["changed_paths"] == [str(tls)] and tls.exists()
    result = files_module.ensure([], [], check=False, absent_directories=[str(tls)])
    assert result["changed_paths"] == [str(tls)] and not tls.exists()
    assert files_module.ensure([], [], check=False, absent_directories=[str(tls)])["changed"] is False
    for refused in ("/", "/etc", "relative/dir", "/etc/../etc"):
        with pytest.raises(ValueError, match="refused as a directory to remove"):
            files_module.ensure([], [], check=False, absent_directories=[refused])
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is not a directory"):
        files_module.ensure([], [], check=False, absent_directories=[str(tmp_path / "file")])
