"""``corral app`` and ``corral deployments``: Marathon's answers rendered, its errors said as
sentences, and the command line against a real front door whose services scheduler is down
(the end-to-end runs against the real scheduler are in tests/compat/test_dcos_cli.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

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


# -- against the real services scheduler, through the real front door ----------------------

WAIT = 60.0
AGENT = "cpus:2;mem:1024;disk:1024;ports:[34700-34740]"  # a range other tests leave alone


@pytest.fixture(scope="module")
def marathon_url(tmp_path_factory) -> str:
    try:
        from corral.cli.services import launch_services
    except ImportError:
        pytest.skip("needs the services scheduler (corral/cli/services.py), not built yet")
    from corral.cli.cluster import start_local_cluster, wait_for_agents
    from master import MasterOptions

    cluster = start_local_cluster(
        1,
        work_dir=str(tmp_path_factory.mktemp("app-cli")),
        resources=AGENT,
        master_options=MasterOptions(allocation_interval=0.2),
    )
    scheduler = door = None
    try:
        wait_for_agents(cluster.http_address, 1)
        scheduler = launch_services(
            cluster.http_address, work_dir=tmp_path_factory.mktemp("app-cli-services")
        )
        door = launch_frontdoor(cluster.http_address, services=scheduler.address)
        yield f"{door.url}/service/marathon"
    finally:
        if door is not None:
            door.stop()
        if scheduler is not None:
            scheduler.stop()
        cluster.stop()


def until(check, what: str):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {WAIT:g} s")


def apps(url: str) -> dict[str, dict]:
    listed = corral("app", "list", "--json", "--url", url)
    assert listed.returncode == 0, listed.stderr
    return {app["id"]: app for app in json.loads(listed.stdout)["apps"]}


def task_ids(url: str) -> set[str]:
    shown = corral("app", "show", "/hello", "--json", "--url", url)
    assert shown.returncode == 0, shown.stderr
    tasks = json.loads(shown.stdout).get("tasks") or []
    return {t["id"] for t in tasks if t.get("state") == "TASK_RUNNING"}


def test_an_app_through_corral_app(marathon_url, tmp_path, monkeypatch):
    url = marathon_url
    definition = tmp_path / "hello.json"
    definition.write_text(
        json.dumps({"id": "/hello", "cmd": "exec sleep 600", "cpus": 0.1, "mem": 16})
    )
    added = corral("app", "add", str(definition), "--url", url)
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("app /hello added (version ")
    until(lambda: apps(url)["/hello"]["tasksRunning"] == 1, "one instance running")

    listed = corral("app", "list", "--url", url)
    assert listed.stdout.splitlines()[0].split()[:3] == ["ID", "RUNNING", "HEALTHY"]
    assert listed.stdout.splitlines()[1].split()[:2] == ["/hello", "1/1"]
    shown = corral("app", "show", "hello", "--url", url)
    assert '"id": "/hello"' in shown.stdout and "TASK_RUNNING" in shown.stdout

    # Adding it again is Marathon's 409, said as a sentence; nothing changes.
    again = corral("app", "add", str(definition), "--url", url)
    assert again.returncode == 1 and again.stderr.startswith("corral app add: adding /hello: ")

    scaled = corral("app", "scale", "/hello", "3", "--url", url)
    assert scaled.returncode == 0, scaled.stderr
    assert scaled.stdout.startswith("/hello scaling to 3: deployment ")
    until(lambda: apps(url)["/hello"]["tasksRunning"] == 3, "three instances running")

    # A deployment that cannot finish (more than fits) is listed by corral deployments.
    corral("app", "scale", "/hello", "40", "--url", url)
    listing = until(
        lambda: "/hello" in (out := corral("deployments", "--url", url).stdout) and out,
        "the deployment listed",
    )
    assert listing.splitlines()[0].split() == ["ID", "APPS", "ACTIONS", "STEP", "VERSION"]
    held = corral("app", "scale", "/hello", "2", "--url", url)
    assert held.returncode == 1 and "pass --force" in held.stderr, held.stderr
    forced = corral("app", "scale", "/hello", "2", "--force", "--url", url)
    assert forced.returncode == 0, forced.stderr
    until(lambda: apps(url)["/hello"]["tasksRunning"] == 2, "back to two")
    until(lambda: json.loads(corral("deployments", "--json", "--url", url).stdout) == [], "done")

    before = until(lambda: len(ids := task_ids(url)) == 2 and ids, "two tasks shown")
    restarted = corral("app", "restart", "/hello", "--url", url)
    assert restarted.returncode == 0 and "restarting: deployment" in restarted.stdout
    until(lambda: len(now := task_ids(url)) == 2 and not now & before, "both replaced")

    # The URL from the environment, as scripts set it.
    monkeypatch.setenv("CORRAL_MARATHON_URL", url)
    removed = corral("app", "remove", "/hello")
    assert removed.returncode == 0 and "being removed" in removed.stdout
    until(lambda: "/hello" not in apps(url), "the app gone")
    missing = corral("app", "show", "/hello")
    assert missing.returncode == 1 and "showing /hello:" in missing.stderr


def test_an_invalid_app_shows_each_field_path_and_adds_nothing(marathon_url, tmp_path):
    definition = tmp_path / "bad.json"
    definition.write_text(json.dumps({"id": "/bad", "cmd": "true", "cpus": -1, "mem": "lots"}))
    added = corral("app", "add", str(definition), "--url", marathon_url)
    assert added.returncode == 1
    lines = added.stderr.splitlines()
    assert lines[0].startswith("corral app add: adding /bad: ")
    paths = [line.split(":")[0].strip() for line in lines[1:]]
    assert "/cpus" in paths and "/mem" in paths, added.stderr
    assert "/bad" not in apps(marathon_url)
