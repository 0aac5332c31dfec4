"""Shared by tests/unit and tests/playbooks.

`make unit` runs these tests in parallel processes (pytest-xdist). The plays of tests/playbooks run
with the project's ansible.cfg, whose fact cache is one JSON file per host name under .cache/facts:
two processes writing the same host's file at once could leave it half written, and a developer's
cache would collect the tests' made-up hosts. Every test session gets its own cache directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _own_fact_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("facts")
    before = os.environ.get("ANSIBLE_CACHE_PLUGIN_CONNECTION")
    os.environ["ANSIBLE_CACHE_PLUGIN_CONNECTION"] = str(directory)
    yield directory
    if before is None:
        os.environ.pop("ANSIBLE_CACHE_PLUGIN_CONNECTION", None)
    else:
        os.environ["ANSIBLE_CACHE_PLUGIN_CONNECTION"] = before
