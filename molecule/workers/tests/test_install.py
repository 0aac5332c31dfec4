"""The app's virtualenv is made by the declared installer (celery_app_installer), with bytecode."""

from __future__ import annotations

from conftest import HOME


def test_virtualenv_made_by_declared_installer(host, fleet):
    pyvenv = host.file(f"{HOME}/venv/pyvenv.cfg").content_string
    uv_binary = host.file(f"{HOME}/tools/bin/uv")
    if fleet.installer == "uv":
        # uv records itself in pyvenv.cfg and seeds no pip into the virtualenv.
        assert uv_binary.is_file, "celery_app_installer uv, but no uv in <home>/tools"
        assert "\nuv = " in f"\n{pyvenv}", pyvenv
        assert not host.file(f"{HOME}/venv/bin/pip").exists
    else:
        assert not uv_binary.exists
        assert "\nuv = " not in f"\n{pyvenv}", pyvenv
        assert host.file(f"{HOME}/venv/bin/pip").is_file


def test_packages_installed_with_bytecode(host, fleet):
    # The service user cannot write the root-owned virtualenv: without .pyc from the install,
    # every worker start would compile Celery again.
    package = f"$(find {HOME}/venv/lib -maxdepth 3 -type d -name celery -path '*/site-packages/*')"
    sources = int(host.check_output(f"find {package} -name '*.py' | wc -l"))
    compiled = int(host.check_output(f"find {package} -path '*/__pycache__/*.pyc' | wc -l"))
    print(f"{fleet.installer}: {compiled} .pyc for {sources} .py files of celery")
    assert sources > 100
    assert compiled >= sources
