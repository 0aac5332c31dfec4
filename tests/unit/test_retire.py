"""retire: which of an app's marked services a host must stop and remove."""

from __future__ import annotations

import re

import pytest
from celery_fleet.errors import FleetError
from celery_fleet.retire import marker_regex, retire_kinds, service_of, stale_services

APP = "shop"
UNIT = "/etc/systemd/system/{}.service"
PROGRAM = "/etc/supervisor/conf.d/{}.conf"
# Everything celery-fleet can leave on one host: both managers, every kind.
FOUND = [
    UNIT.format("shop-worker-io"),
    UNIT.format("shop-beat"),
    UNIT.format("shop-flower"),
    PROGRAM.format("shop-worker-io"),
    PROGRAM.format("shop-beat"),
    PROGRAM.format("shop-flower"),
]


def names(services: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(s["name"], s["manager"]) for s in services]


def matches(app: str, line: str) -> bool:
    """As ansible.builtin.find's `contains` reads a file: re.match on each line."""
    return re.match(marker_regex(app), line + "\n") is not None


@pytest.mark.parametrize(
    "line",
    [
        "X-CeleryFleet=celery-fleet worker of app shop",
        "X-CeleryFleet=celery-fleet beat of app shop",
        "X-CeleryFleet=celery-fleet flower of app shop",
        "# celery-fleet worker of app shop",
        "# celery-fleet beat of app shop",
        "# celery-fleet flower of app shop",
        # Beat and Flower files written before they carried a marker.
        "Description=Celery beat, the periodic task scheduler of shop",
        "Description=Flower, the monitor of the Celery app shop",
        "[program:shop-beat]",
        "[program:shop-flower]",
    ],
)
def test_marker_matches_every_file_of_the_app(line):
    assert matches(APP, line)


@pytest.mark.parametrize(
    "line",
    [
        # Another app whose name starts with this one's (its files match the glob shop-*).
        "X-CeleryFleet=celery-fleet worker of app shop-api",
        "# celery-fleet beat of app shop-api",
        "Description=Celery beat, the periodic task scheduler of shop-api",
        "[program:shop-api-beat]",
        # An app name that is a regex (the dot is literal).
        "X-CeleryFleet=celery-fleet beat of app shopXapi",
        # Not at the start of a line, or an unmarked unit of the operator's.
        "  X-CeleryFleet=celery-fleet beat of app shop",
        "Description=shop sidecar",
        "[program:shop-sidecar]",
    ],
)
def test_marker_refuses_other_apps_and_unmarked_files(line):
    app = "shop.api" if "shopXapi" in line else APP
    assert not matches(app, line)


def test_marker_needs_an_app_name():
    with pytest.raises(FleetError, match="celery_app_name"):
        marker_regex("")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (UNIT.format("shop-worker-io"), ("shop-worker-io", "worker", "systemd")),
        (PROGRAM.format("shop-beat"), ("shop-beat", "beat", "supervisord")),
        (UNIT.format("shop-flower"), ("shop-flower", "flower", "systemd")),
        (UNIT.format("shop-worker-beat"), ("shop-worker-beat", "worker", "systemd")),
        (UNIT.format("shop-api-beat"), None),
        (UNIT.format("shop-worker-"), None),
        (PROGRAM.format("shop-beat").replace(".conf", ".service"), None),
        ("/etc/systemd/system/multi-user.target.wants/shop-beat.service", None),
        ("/lib/systemd/system/shop-beat.service", None),
    ],
)
def test_service_of_names_kind_and_manager(path, expected):
    service = service_of(path, APP)
    got = None if service is None else (service["name"], service["kind"], service["manager"])
    assert got == expected


def test_nothing_is_stale_on_a_host_that_keeps_everything_under_its_manager():
    found = [p for p in FOUND if p.startswith("/etc/systemd/")]
    assert stale_services(found, APP, "systemd", ["worker", "beat", "flower"]) == []


def test_manager_switch_retires_every_service_of_the_other_manager():
    stale = stale_services(FOUND, APP, "supervisord", ["worker", "beat", "flower"])
    assert names(stale) == [
        ("shop-beat", "systemd"),
        ("shop-flower", "systemd"),
        ("shop-worker-io", "systemd"),
    ]
    assert stale[0]["path"] == UNIT.format("shop-beat")


def test_host_out_of_a_group_retires_that_kind_under_both_managers():
    stale = stale_services(FOUND, APP, "systemd", ["worker", "flower"])
    assert names(stale) == [
        ("shop-beat", "supervisord"),
        ("shop-beat", "systemd"),
        ("shop-flower", "supervisord"),
        ("shop-worker-io", "supervisord"),
    ]


def test_empty_keep_retires_everything_of_the_app():
    assert len(stale_services([*FOUND, "/etc/systemd/system/other-beat.service"], APP, "systemd", [])) == 6


def test_kinds_limit_what_a_run_retires():
    stale = stale_services(FOUND, APP, "supervisord", ["worker"], ["worker"])
    assert names(stale) == [("shop-worker-io", "systemd")]


@pytest.mark.parametrize(
    ("manager", "keep", "kinds", "field"),
    [
        ("upstart", [], ["beat"], "celery_process_manager"),
        ("systemd", ["workers"], ["beat"], "celery_retire_keep"),
        ("systemd", [], ["celery_beat"], "celery_retire_kinds"),
    ],
)
def test_bad_input_is_refused_naming_the_field(manager, keep, kinds, field):
    with pytest.raises(FleetError, match=field):
        stale_services(FOUND, APP, manager, keep, kinds)


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (["all"], ["worker", "beat", "flower"]),
        (["deploy"], ["worker", "beat", "flower"]),
        (["retire"], ["worker", "beat", "flower"]),
        (["beat"], ["beat"]),
        (["celery_beat"], []),  # one tag for beat: `beat`
        (["workers", "flower"], ["worker", "flower"]),
        (["redis"], []),
    ],
)
def test_retire_kinds_follow_the_selected_plays(tags, expected):
    assert retire_kinds(tags) == expected
