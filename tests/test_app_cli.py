"""``corral app`` and ``corral deployments``: Marathon's answers rendered, its errors said as
sentences, and the command line against a real front door whose services scheduler is down
(the end-to-end runs against the real scheduler are in tests/compat/test_dcos_cli.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from corral.cli.app import MarathonError, app_path, apps_table, deployments_table, error_sentence
from corral.cli.cluster import free_port
from corral.cli.frontdoor import launch_frontdoor


def test_a_422_shows_each_field_path_on_a_line_of_its_own():
    body = json.dumps(
        {
            "message": "Object is not valid",
            "details": [
                {"path": "/cpus", "errors": ["error.min", "must be at least 0.001"]},
                {"path": "/id", "errors": ["must fully match regular expression"]},
            ],
        }
    ).encode()
    assert error_sentence(422, body, "adding /web") == (
        "adding /web: Object is not valid\n"
        "  /cpus: error.min\n"
        "  /cpus: must be at least 0.001\n"
        "  /id: must fully match regular expression"
    )


def test_a_409_names_the_deployments_and_the_way_out():
    body = json.dumps(
        {"message": "App is locked by one or more deployments.", "deployments": [{"id": "d-1"}]}
    ).encode()
    sentence = error_sentence(409, body, "scaling /web")
    assert sentence.startswith("scaling /web: App is locked by one or more deployments.")
    assert "held by deployment(s) d-1; pass --force" in sentence


def test_a_front_door_sentence_is_passed_on_as_it_is():
    body = b"the services scheduler (Marathon's API) at 127.0.0.1:9 does not answer.\n"
    assert error_sentence(502, body, "listing the apps") == (
        "listing the apps: 502: the services scheduler (Marathon's API) at 127.0.0.1:9 does "
        "not answer."
    )
    assert error_sentence(
        404, json.dumps({"message": "App '/x' does not exist"}).encode(), "x"
    ) == ("x: App '/x' does not exist")


def test_app_ids_are_absolute_paths():
    assert app_path("web") == "/v2/apps/web"
    assert app_path("/shop/web") == "/v2/apps/shop/web"
    with pytest.raises(MarathonError, match="an app id names an app"):
        app_path("/")


def test_tables_of_apps_and_deployments():
    apps = [
        {
            "id": "/web",
            "instances": 3,
            "tasksRunning": 2,
            "tasksHealthy": 1,
            "healthChecks": [{"protocol": "MESOS_HTTP"}],
            "cpus": 0.1,
            "mem": 32,
            "cmd": "python3 -m http.server $PORT0",
            "deployments": [{"id": "d-1"}],
        },
        {"id": "/batch", "instances": 0, "cpus": 1, "mem": 128, "args": ["sleep", "9"]},
    ]
    lines = apps_table(apps).splitlines()
    assert lines[0].split() == ["ID", "RUNNING", "HEALTHY", "CPUS", "MEM", "DEPLOYMENTS", "CMD"]
    assert lines[1].split()[:6] == ["/web", "2/3", "1/3", "0.1", "32", "d-1"]
    assert lines[2].split() == ["/batch", "0/0", "-", "1", "128", "-", "sleep", "9"]
    deployments = [
        {
            "id": "d-1",
            "version": "2026-12-04T19:00:00.000Z",
            "affectedApps": ["/web"],
            "currentActions": [{"action": "ScaleApplication", "app": "/web"}],
            "currentStep": 1,
            "totalSteps": 1,
        }
    ]
    lines = deployments_table(deployments).splitlines()
    assert lines[1].split() == [
        "d-1",
        "/web",
        "ScaleApplication",
        "/web",
        "1/1",
        deployments[0]["version"],
    ]


def corral(*arguments: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corral", *arguments],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=30,
        check=False,
    )


def test_the_command_line_says_which_part_is_down_and_changes_nothing(tmp_path):
    nothing = f"127.0.0.1:{free_port('127.0.0.1')}"
    door = launch_frontdoor(nothing, services=nothing)  # both down
    try:
        url = f"{door.url}/service/marathon"
        listed = corral("app", "list", "--url", url)
        assert listed.returncode == 1 and listed.stdout == ""
        assert listed.stderr.startswith("corral app list: listing the apps: 502: the services")
        assert "corral services --master" in listed.stderr
        scaled = corral("deployments", "--url", url)
        assert scaled.returncode == 1 and "listing the deployments: 502" in scaled.stderr
    finally:
        assert door.stop() == 0
    (tmp_path / "app.json").write_text("[1, 2]")
    added = corral("app", "add", str(tmp_path / "app.json"), "--url", url)
    assert added.returncode == 1
    assert "holds a JSON list; an app definition is an object" in added.stderr
    missing = corral("app", "add", str(tmp_path / "none.json"), "--url", url)
    assert missing.returncode == 1 and "cannot read" in missing.stderr
    gone = corral("app", "list", "--url", url)  # the front door is stopped now
    assert gone.returncode == 1 and "could not reach" in gone.stderr
    assert "CORRAL_MARATHON_URL" in gone.stderr
