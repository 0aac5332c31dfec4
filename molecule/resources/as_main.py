"""How the harness's forked children run a program as a new interpreter would run it as __main__.

Shared by the kept exec agent in the containers (execshell.py puts these functions' source into its
AGENT: keep them to what every target's Python 3 runs, no imports at module level, no annotation
that is evaluated) and the kept ansible-playbook server on this machine (kept_playbook.py). The
caller forks, sets up the child's stdio, directory and environment, and calls them:

    rc = 1
    try:
        ...  # the child's set-up
        rc = run_as_main(code, argv, file)
    finally:
        exit_now(rc)
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import CodeType


def run_as_main(code: "CodeType", argv: "list[str]", file: "str | None" = None) -> int:
    """Runs ``code`` as a script in a fresh __main__ (its ``__file__`` when given) with ``argv`` as
    sys.argv, and ends as the interpreter ends: the exit status of SystemExit (None 0, an int itself,
    anything else printed to stderr and 1), an uncaught exception's traceback through sys.excepthook
    and 1; then non-daemon threads joined and the atexit handlers run. Returns the exit status."""
    import atexit
    import builtins
    import sys
    import types

    main = types.ModuleType("__main__")
    main.__builtins__ = builtins
    if file is not None:
        main.__file__ = file
    sys.modules["__main__"] = main
    sys.argv = list(argv)
    try:
        exec(code, main.__dict__)
        rc = 0
    except SystemExit as end:
        if end.code is None:
            rc = 0
        elif isinstance(end.code, int):
            rc = end.code
        else:
            print(end.code, file=sys.stderr)
            rc = 1
    except BaseException:
        sys.excepthook(*sys.exc_info())
        rc = 1
    if "threading" in sys.modules:
        sys.modules["threading"]._shutdown()
    atexit._run_exitfuncs()
    return rc


def exit_now(rc: int) -> None:
    """Flushes sys.stdout and sys.stderr and ends the process with ``rc`` at once (os._exit: the
    parent's exit handlers are not the child's)."""
    import os
    import sys

    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(rc & 0xFF)
