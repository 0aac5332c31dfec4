"""Callback plugin of the test harness: compiled Jinja templates kept across task processes and runs.

Ansible forks a process for every task and host, and each compiles every template string it
templates (the task's arguments, its ``when``, the variables they reach) from its source: Jinja
lexes and parses it, generates Python source from the tree and Python compiles that. Nothing of it
survives the process, so a template used on eight hosts is compiled eight times in one run and again
in every later run. Sampled over a no-op converge of the workers scenario, that compilation was about
a fifth of the controller's CPU.

This plugin keeps each compiled template (the code object Jinja's ``Environment.compile`` returns)
in a directory kept between runs, one file per template, named after a digest of everything the
compilation reads: the source, the template's name and file name, ``defer_init``, the environment's
class, delimiters and other template override fields, its extensions and flags (``optimized``,
``is_async``), Ansible's ``escape_backslashes`` compile context and ``ALLOW_EMBEDDED_TEMPLATES``,
and the versions of Python, Jinja and ansible-core. The one input that is not in the source is the
filter and test plugins the template names: the generated code passes some of them the context or
the environment (``pass_context``...), as each plugin is decorated. So each kept entry lists the
filters and tests its code looks up with that calling convention, and an entry is used only when
every one of them resolves now, the same way; otherwise the template is compiled as without this
plugin (and the entry replaced). A template that does not compile is never kept: the error is
Jinja's, raised as before.

What runs is the code Jinja generated for that source; only where it comes from changes. The entries
are code the controller runs: the plugin uses its directory only when it and the directory above are
the user's and writable by nobody else. Enabled in ``.config/molecule/config.yml`` and for the plays
of the unit stage (``tests/conftest.py``) only: the project's ``ansible.cfg`` stays stock for users.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import marshal
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from types import CodeType
from typing import Any

import jinja2
from ansible._internal._templating import _jinja_bits
from ansible._internal._templating._jinja_common import _TemplateConfig
from ansible.plugins.callback import CallbackBase
from ansible.release import __version__ as ANSIBLE_CORE_VERSION
from jinja2.utils import _PassArg

DOCUMENTATION = r"""
name: celery_fleet_template_cache
type: aggregate
short_description: Keep compiled Jinja templates across Ansible's task processes and runs
description:
  - Wraps the template environment's C(compile) so that the code object compiled from a template
    source is kept in a directory, keyed by a digest of the source and every setting compilation
    reads, and reused by later task processes and runs.
  - An entry is used only when the filter and test plugins its code names resolve with the calling
    convention they had when it was compiled.
requirements:
  - enabled in callbacks_enabled
options:
  cache_dir:
    description: Where the kept templates live (created 0700), under a directory per Python, Jinja
      and ansible-core version.
    type: path
    default: ~
    env:
      - name: CELERY_FLEET_TEMPLATE_CACHE
"""

PROJECT = Path(__file__).resolve().parents[3]

# Part of every key: a change to what an entry holds is another key.
ENTRY_FORMAT = "template-1"

# How the generated module looks a plugin up (jinja2/compiler.py, pull_dependencies):
#   t_1 = environment.filters['int']
PLUGIN_LOOKUP = re.compile(r"environment\.(filters|tests)\[('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")\]")


def versions_dir(cache_dir: Path) -> Path:
    """The directory of this Python's, Jinja's and ansible-core's entries."""
    tag = (
        f"{sys.implementation.cache_tag}-jinja{jinja2.__version__}-core{ANSIBLE_CORE_VERSION}-{ENTRY_FORMAT}"
    )
    return cache_dir / tag


def prune(cache_dir: Path, current: Path, keep: int, most: int) -> None:
    """Keep the ``keep`` version directories used last (``current`` among them), and empty
    ``current`` when it holds more than ``most`` entries (edited templates leave old keys behind)."""
    cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    current.mkdir(mode=0o700, exist_ok=True)
    os.utime(current)
    dirs = sorted(
        (d for d in cache_dir.iterdir() if d.is_dir() and not d.is_symlink()),
        key=lambda d: (d == current, d.stat().st_mtime),
        reverse=True,
    )
    for old in dirs[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    with os.scandir(current) as entries:
        if sum(1 for _ in entries) > most:
            shutil.rmtree(current, ignore_errors=True)
            current.mkdir(mode=0o700, exist_ok=True)


def private(directory: Path) -> bool:
    """Whether only this user can write the directory: its entries are code this process runs."""
    status = directory.lstat()
    return status.st_uid == os.geteuid() and not status.st_mode & 0o022 and directory.is_dir()


def compile_key(env: Any, source: str, name: str | None, filename: str | None, defer_init: bool) -> str:
    """A digest of the source and of everything else ``env.compile`` reads from outside it."""
    context = _jinja_bits._TemplateCompileContext.current(optional=True)
    settings = (
        type(env).__module__,
        type(env).__qualname__,
        tuple(getattr(env, field) for field in _jinja_bits._TEMPLATE_OVERRIDE_FIELD_NAMES),
        tuple(sorted(env.extensions)),
        env.optimized,
        env.is_async,
        bool(context and context.escape_backslashes),
        _TemplateConfig.allow_embedded_templates,
        name,
        filename,
        defer_init,
    )
    digest = hashlib.sha256(repr(settings).encode())
    digest.update(b"\0")
    digest.update(str(source).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def calling_convention(func: Any) -> str | None:
    """How the generated code calls a filter or test: with the context, the eval context, the
    environment, or its arguments only; None when no such plugin is found."""
    if func is None:
        return None
    passed = _PassArg.from_obj(func)
    return passed.name if passed else "plain"


def plugins_named(python_source: str) -> tuple[tuple[str, str], ...]:
    """The (kind, name) of every filter and test the generated module looks up."""
    found = {(kind, ast.literal_eval(quoted)) for kind, quoted in PLUGIN_LOOKUP.findall(python_source)}
    return tuple(sorted(found))


def plugins_as_now(env: Any, plugins: tuple[tuple[str, str, str | None], ...]) -> bool:
    """Whether every plugin resolves now with the calling convention it had at compile time."""
    for kind, name, convention in plugins:
        if calling_convention(getattr(env, kind).get(name)) != convention:
            return False
    return True


def load(path: Path) -> tuple[tuple[tuple[str, str, str | None], ...], CodeType] | None:
    """A kept entry, or None when there is none or it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        plugins, code = marshal.loads(data)
    except (EOFError, ValueError, TypeError):
        return None
    if not isinstance(code, CodeType):
        return None
    return plugins, code


def store(path: Path, plugins: tuple[tuple[str, str, str | None], ...], code: CodeType) -> None:
    """Keep an entry, atomically (concurrent task processes and runs write the same keys)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(marshal.dumps((plugins, code)))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def keep_compiled_templates(directory: Path) -> None:
    """Wrap ``AnsibleEnvironment.compile`` (once per process: forked task processes inherit it) so
    that it keeps and reuses what it compiles from a string in ``directory``."""
    environment_class = _jinja_bits.AnsibleEnvironment
    compile_template = environment_class.compile
    if getattr(compile_template, "celery_fleet_template_cache", None) is not None:
        compile_template.celery_fleet_template_cache = directory  # type: ignore[attr-defined]
        return

    def compile_kept(
        self: Any,
        source: Any,
        name: str | None = None,
        filename: str | None = None,
        raw: bool = False,
        defer_init: bool = False,
    ) -> Any:
        if raw or not isinstance(source, str) or self._debuggable_template_source:
            return compile_template(self, source, name, filename, raw, defer_init)
        path = compile_kept.celery_fleet_template_cache / compile_key(
            self, source, name, filename, defer_init
        )
        kept = load(path)
        if kept is not None and plugins_as_now(self, kept[0]):
            return kept[1]
        python_source = compile_template(self, source, name, filename, True, defer_init)
        code = self._compile(python_source, "<template>" if filename is None else filename)
        plugins = tuple(
            (kind, plugin, calling_convention(getattr(self, kind).get(plugin)))
            for kind, plugin in plugins_named(python_source)
        )
        with contextlib.suppress(OSError):  # a full or read-only disk: as without the plugin
            store(path, plugins, code)
        return code

    compile_kept.celery_fleet_template_cache = directory  # type: ignore[attr-defined]
    environment_class.compile = compile_kept


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "celery_fleet_template_cache"
    CALLBACK_NEEDS_ENABLED = True

    def set_options(self, *args: Any, **kwargs: Any) -> None:
        super().set_options(*args, **kwargs)
        cache_dir = Path(self.get_option("cache_dir") or PROJECT / ".cache" / "templates")
        current = versions_dir(cache_dir)
        prune(cache_dir, current, keep=2, most=20000)
        if private(cache_dir) and private(current):
            keep_compiled_templates(current)
