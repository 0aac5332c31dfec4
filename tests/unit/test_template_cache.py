"""molecule/resources/callback/celery_fleet_template_cache.py: compiled templates kept across task
processes and runs, used only for the same source, settings and plugins.

In this process through Ansible's own Templar (the plugin's wrapper installed for the test and
removed after it), and in real ansible-playbook runs (tests/conftest.py's ``ansible``) with and
without the plugin, the second with a warm directory.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
from ansible._internal._templating import _jinja_bits
from ansible.template import Templar, trust_as_template
from jinja2 import pass_context

TOP = Path(__file__).resolve().parents[2]
PLUGIN_DIR = TOP / "molecule" / "resources" / "callback"
_spec = importlib.util.spec_from_file_location(
    "template_cache", PLUGIN_DIR / "celery_fleet_template_cache.py"
)
assert _spec and _spec.loader
cache = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cache)


@pytest.fixture
def kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[str]]:
    """The wrapper installed over a counting stand-in of Jinja's compile (restored after the test):
    the directory and the sources Jinja was asked to compile."""
    original = _jinja_bits.AnsibleEnvironment.compile
    compiled: list[str] = []

    def counting(self, source, name=None, filename=None, raw=False, defer_init=False):
        compiled.append(str(source))
        return original(self, source, name, filename, raw, defer_init)

    monkeypatch.setattr(_jinja_bits.AnsibleEnvironment, "compile", counting)
    directory = tmp_path / "templates"
    cache.keep_compiled_templates(directory)
    return directory, compiled


def _template(source: str, **variables) -> object:
    return Templar(variables=variables).template(trust_as_template(source))


def test_a_template_compiled_once_is_reused_by_another_templar(kept) -> None:
    directory, compiled = kept
    source = "{{ (items | map('int') | sum) if items is iterable else 0 }}"
    assert _template(source, items=["1", "2", "3"]) == 6
    assert compiled.count(source) == 1
    assert len(list(directory.iterdir())) >= 1
    # Another Templar (as in another task process): the kept code, not a new compilation.
    assert _template(source, items=["4", "5"]) == 9
    assert compiled.count(source) == 1


def test_an_unreadable_entry_is_compiled_again_and_replaced(kept) -> None:
    directory, compiled = kept
    source = "{{ greeting | upper }}"
    assert _template(source, greeting="hi") == "HI"
    for entry in directory.iterdir():
        entry.write_bytes(b"not marshal data")
    assert _template(source, greeting="again") == "AGAIN"
    assert compiled.count(source) == 2
    assert _template(source, greeting="third") == "THIRD"
    assert compiled.count(source) == 2


def test_a_template_that_does_not_compile_fails_as_before_and_is_not_kept(kept) -> None:
    directory, _ = kept
    with pytest.raises(Exception, match=r"(?i)syntax|unexpected"):
        _template("{{ 1 + }}")
    assert not directory.exists() or not any(directory.iterdir())


def test_settings_compilation_reads_are_in_the_key() -> None:
    env = _jinja_bits.AnsibleEnvironment()
    plain = cache.compile_key(env, "{{ x }}", None, None, False)
    assert plain == cache.compile_key(env, "{{ x }}", None, None, False)
    assert plain != cache.compile_key(env, "{{ y }}", None, None, False)
    assert plain != cache.compile_key(env, "{{ x }}", "name", None, False)
    assert plain != cache.compile_key(env, "{{ x }}", None, "file.j2", False)
    assert plain != cache.compile_key(env, "{{ x }}", None, None, True)
    # Another delimiter (a template's #jinja2: header makes such an overlay).
    assert plain != cache.compile_key(env.overlay(variable_start_string="[["), "{{ x }}", None, None, False)
    # Ansible escapes backslashes in expressions only inside its explicit compile context.
    with _jinja_bits._TemplateCompileContext(escape_backslashes=True):
        escaped = cache.compile_key(env, "{{ x }}", None, None, False)
    with _jinja_bits._TemplateCompileContext(escape_backslashes=False):
        unescaped = cache.compile_key(env, "{{ x }}", None, None, False)
    assert len({plain, escaped, unescaped}) == 2 and plain == unescaped


def test_backslashes_render_as_without_the_cache(kept) -> None:
    # As a YAML double-quoted "\\1" reaches Ansible: one backslash, escaped before Jinja reads it.
    source = "{{ 'a_name' | regex_replace('^(.*)_name$', '\\1') }}"
    assert _template(source) == "a"
    assert _template(source) == "a"  # from the kept entry


class _Env:
    def __init__(self, filters: dict) -> None:
        self.filters = filters
        self.tests: dict = {}


def test_an_entry_is_used_only_while_its_plugins_are_called_the_same_way() -> None:
    def plain(value):
        return value

    @pass_context
    def with_context(context, value):
        return value

    recorded = (("filters", "shape", cache.calling_convention(plain)),)
    assert cache.plugins_as_now(_Env({"shape": plain}), recorded)
    assert not cache.plugins_as_now(_Env({"shape": with_context}), recorded)
    assert not cache.plugins_as_now(_Env({}), recorded)
    assert cache.plugins_named(
        "t_1 = environment.filters['shape']\nt_2 = environment.tests[\"odd's\"]\n"
    ) == (("filters", "shape"), ("tests", "odd's"))


def test_a_directory_others_can_write_is_not_used(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    assert cache.private(mine)
    os.chmod(mine, 0o777)
    assert not cache.private(mine)


def test_prune_keeps_the_newest_version_directories_and_bounds_the_entries(tmp_path: Path) -> None:
    for n, old in enumerate(("old1", "old2")):
        (tmp_path / old).mkdir()
        os.utime(tmp_path / old, (1000 + n, 1000 + n))
    current = tmp_path / "current"
    cache.prune(tmp_path, current, keep=2, most=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current", "old2"]
    for n in range(4):
        (current / f"entry{n}").write_bytes(b"x")
    cache.prune(tmp_path, current, keep=2, most=3)
    assert current.is_dir() and not any(current.iterdir())


# A play whose templates read filters and tests, a filter of the project, a backslash in an
# expression, and a template file with its own delimiters.
PLAY = """- hosts: all
  gather_facts: false
  vars:
    words: [b, a, c]
  tasks:
    - name: Templates
      ansible.builtin.debug:
        msg: >-
          OUT1 {{ words | sort | join('-') }} {{ 3 is odd }} {{ 'v' | tag_it }}
          {{ "x_name" | regex_replace("^(.*)_name$", "\\1") }}
    - name: A template file with other delimiters
      ansible.builtin.debug:
        msg: "OUT2 {{ lookup('ansible.builtin.template', 'other.j2') | trim }}"
"""

TEMPLATE = "#jinja2:variable_start_string:'[[', variable_end_string:']]'\n[[ words | length ]] {{ raw }}\n"

PLAIN_FILTER = """
class FilterModule:
    def filters(self):
        return {"tag_it": lambda value: "plain:" + value}
"""

CONTEXT_FILTER = """
from jinja2 import pass_context

@pass_context
def tag_it(context, value):
    return "context:" + value + ":" + str(len(context.get("words")))

class FilterModule:
    def filters(self):
        return {"tag_it": tag_it}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "filter_plugins").mkdir()
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "other.j2").write_text(TEMPLATE)
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "ansible.cfg").write_text("[defaults]\nfilter_plugins = filter_plugins\nnocows = True\n")
    (tmp_path / "inventory.ini").write_text(
        "".join(
            f"h{n} ansible_connection=local ansible_python_interpreter={sys.executable}\n" for n in range(3)
        )
    )
    return tmp_path


def _outputs(ansible, project: Path, callbacks: str, filter_source: str) -> list[str]:
    (project / "filter_plugins" / "tag.py").write_text(filter_source)
    played = ansible(
        "ansible-playbook",
        "-i",
        "inventory.ini",
        "play.yml",
        cwd=project,
        extra_env={
            "ANSIBLE_CONFIG": str(project / "ansible.cfg"),
            "ANSIBLE_CALLBACKS_ENABLED": callbacks,
            "CELERY_FLEET_TEMPLATE_CACHE": str(project / "kept"),
        },
        timeout=240,
    )
    assert played.returncode == 0, played.stdout[-3000:] + played.stderr[-2000:]
    return sorted(line.strip() for line in played.stdout.splitlines() if '"msg": "OUT' in line)


def test_runs_print_what_they_print_without_the_plugin_also_after_a_plugin_changes(ansible, project) -> None:
    without = _outputs(ansible, project, "ansible.posix.profile_tasks", PLAIN_FILTER)
    assert without and all("plain:v x" in line for line in without if "OUT1" in line), without
    assert any('OUT2 3 {{ raw }}"' in line for line in without), without
    assert _outputs(ansible, project, "celery_fleet_template_cache", PLAIN_FILTER) == without
    entries = sorted((project / "kept").rglob("*"))
    assert any(entry.is_file() for entry in entries)
    # Warm: the same output from the kept entries.
    assert _outputs(ansible, project, "celery_fleet_template_cache", PLAIN_FILTER) == without
    # The filter now takes the context: code kept for the plain one must not be used.
    changed = _outputs(ansible, project, "celery_fleet_template_cache", CONTEXT_FILTER)
    assert changed == _outputs(ansible, project, "ansible.posix.profile_tasks", CONTEXT_FILTER)
    assert all("context:v:3" in line for line in changed if "OUT1" in line), changed
