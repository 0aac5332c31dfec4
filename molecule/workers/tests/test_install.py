"""The app's virtualenv is made by the declared installer (celery_app_installer), with bytecode."""

from __future__ import annotations

from conftest import HOME


def test_virtualenv_made_by_declared_installer(node, fleet):
    pyvenv = node.read(f"{HOME}/venv/pyvenv.cfg")
    uv_binary = f"{HOME}/tools/bin/uv"
    if fleet.installer == "uv":
        # uv records itself in pyvenv.cfg and seeds no pip into the virtualenv.
        assert node.is_file(uv_binary), "celery_app_installer uv, but no uv in <home>/tools"
        assert "\nuv = " in f"\n{pyvenv}", pyvenv
        assert not node.exists(f"{HOME}/venv/bin/pip")
    else:
        assert not node.exists(uv_binary)
        assert "\nuv = " not in f"\n{pyvenv}", pyvenv
        assert node.is_file(f"{HOME}/venv/bin/pip")


def test_packages_installed_with_bytecode(node, fleet):
    # The service user cannot write the root-owned virtualenv: without .pyc from the install,
    # every worker start would compile Celery again.
    package = f"$(find {HOME}/venv/lib -maxdepth 3 -type d -name celery -path '*/site-packages/*')"
    sources = int(node.check(f"find {package} -name '*.py' | wc -l"))
    compiled = int(node.check(f"find {package} -path '*/__pycache__/*.pyc' | wc -l"))
    print(f"{fleet.installer}: {compiled} .pyc for {sources} .py files of celery")
    assert sources > 100
    assert compiled >= sources
