"""End to end: ``corral services`` on a real local cluster, through real HTTP.

A master and an agent run in OS processes of their own, and ``corral services`` in another
(``launch_services``). Apps are ``python3 -m http.server $PORT0`` with the agent's HTTP health
checks. Everything goes through Marathon's REST API as a client would; waits are wall-clock
safety nets with generous deadlines.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from corral.cli.cluster import LocalCluster, start_local_cluster, wait_for_agents
from corral.cli.listings import fetch_state
from corral.cli.services import ServicesProcess, launch_services
from master import MasterOptions
from tests.test_health_checks_e2e import agent_resources, free_ports

PYTHON = sys.executable
WAIT = 60.0  # seconds: the safety net for anything that should happen


def server(extra: str = "") -> str:
    """A task serving ``www/`` (with ``www/health``) on its PORT0."""
    return (
        f"mkdir -p www && echo ok > www/health && {extra} exec {PYTHON} -m http.server "
        "$PORT0 --bind 127.0.0.1 --directory www"
    )


HEALTH = {
    "protocol": "MESOS_HTTP",
    "path": "/health",
    "portIndex": 0,
    "gracePeriodSeconds": 15,
    "intervalSeconds": 0.5,
    "timeoutSeconds": 2,
    "delaySeconds": 0,
    "maxConsecutiveFailures": 2,
}


def definition(app_id: str, instances: int = 1, **fields: Any) -> dict[str, Any]:
    return {
        "id": app_id,
        "cmd": server(),
        "cpus": 0.1,
        "mem": 32,
        "instances": instances,
        "healthChecks": [HEALTH],
        "backoffSeconds": 0.5,
        **fields,
    }


class Api:
    """Marathon's REST API of one ``corral services``."""

    def __init__(self, services: ServicesProcess) -> None:
        self.base = services.url

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=WAIT) as answer:
                raw = answer.read()
                return answer.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            raw = error.read()
            return error.code, json.loads(raw) if raw else None

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = self.call(method, path, body)
        assert 200 <= status < 300, (status, answer)
        return answer

    def app(self, app_id: str) -> dict[str, Any]:
        return self.ok("GET", f"/v2/apps{app_id}")["app"]

    def wait_deployed(self, app_id: str, healthy: int | None = None) -> dict[str, Any]:
        """Until the app has no deployment and ``healthy`` (default: all) healthy tasks."""

        def settled() -> dict[str, Any] | None:
            app = self.app(app_id)
            wanted = app["instances"] if healthy is None else healthy
            settled = not app["deployments"] and app["tasksHealthy"] == wanted
            return app if settled and len(app["tasks"]) == app["instances"] else None

        return until(settled, f"{app_id} deployed")

    def remove(self, app_id: str) -> None:
        self.call("DELETE", f"/v2/apps{app_id}?force=true")
        until(lambda: self.call("GET", f"/v2/apps{app_id}")[0] == 404, f"{app_id} removed")


def until(check: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"still waiting for {what} after {timeout:g} s")


class EventStream:
    """A ``/v2/events`` subscriber on a thread of its own; ``close()`` shuts its socket, which
    ends the thread's read at once."""

    def __init__(self, services: ServicesProcess, query: str = "") -> None:
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.connection = http.client.HTTPConnection(services.ip, services.http_port, timeout=WAIT)
        self.connection.request(
            "GET", f"/v2/events{query}", headers={"Accept": "text/event-stream"}
        )
        self.response = self.connection.getresponse()
        assert self.response.status == 200
        self.socket = self.connection.sock
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        kind = None
        with contextlib.suppress(OSError, ValueError, http.client.HTTPException):
            for raw in self.response:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    event = json.loads(line[6:])
                    event["_sse_event"] = kind  # the event: line it came under
                    self.events.put(event)

    def get(self, timeout: float = WAIT) -> dict[str, Any]:
        return self.events.get(timeout=timeout)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)
        self.thread.join(WAIT)
        self.connection.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[LocalCluster]:
    cluster = start_local_cluster(
        1,
        work_dir=str(tmp_path_factory.mktemp("services")),
        resources=agent_resources(free_ports(24)).replace("cpus:4;mem:1024", "cpus:4;mem:2048"),
        master_options=MasterOptions(allocation_interval=0.2),
    )
    try:
        wait_for_agents(cluster.http_address, 1)
        yield cluster
    finally:
        assert cluster.stop() == [0, 0]


@pytest.fixture(scope="module")
def services(cluster, tmp_path_factory) -> Iterator[ServicesProcess]:
    process = launch_services(cluster.http_address, work_dir=tmp_path_factory.mktemp("state"))
    try:
        yield process
    finally:
        assert process.stop() == 0


@pytest.fixture
def api(services) -> Api:
    return Api(services)


def framework_tasks(cluster: LocalCluster, name: str = "marathon") -> list[dict[str, Any]]:
    """The master's running tasks of the framework called ``name``."""
    state = fetch_state(cluster.http_address)
    return [
        task
        for framework in state["frameworks"]
        if framework["name"] == name
        for task in framework["tasks"]
        if task["state"] == "TASK_RUNNING"
    ]


def test_an_app_of_three_becomes_healthy_and_shows_in_marathons_shapes(api, cluster):
    status, created = api.call("POST", "/v2/apps", definition("/shop/web", 3))
    assert status == 201, created
    assert created["id"] == "/shop/web" and created["deployments"]
    assert created["mem"] == 32 and created["backoffFactor"] == 1.15  # a default, filled in
    app = api.wait_deployed("/shop/web")
    assert (app["tasksRunning"], app["tasksHealthy"], app["tasksUnhealthy"]) == (3, 3, 0)
    for task in app["tasks"]:
        assert task["state"] == "TASK_RUNNING" and task["appId"] == "/shop/web"
        assert task["id"].startswith("shop_web.")
        (result,) = task["healthCheckResults"]
        assert result["alive"] is True and result["lastSuccess"]
        # The task really serves on the port it was given.
        with urllib.request.urlopen(f"http://127.0.0.1:{task['ports'][0]}/health", timeout=5):
            pass
    listed = api.ok("GET", "/v2/tasks")["tasks"]
    assert {t["id"] for t in listed} >= {t["id"] for t in app["tasks"]}
    # The master runs them as the framework "marathon", named as Mesos-DNS expects.
    running = [t for t in framework_tasks(cluster) if t["id"].startswith("shop_web.")]
    assert len(running) == 3 and {t["name"] for t in running} == {"web.shop"}
    assert api.ok("GET", "/v2/apps")["apps"][0]["tasksHealthy"] == 3
    group = api.ok("GET", "/v2/groups/shop")
    assert group["id"] == "/shop" and [a["id"] for a in group["apps"]] == ["/shop/web"]
    assert api.ok("GET", "/v2/deployments") == []

    # Scale to 5, then to 2: the youngest go first.
    api.ok("PUT", "/v2/apps/shop/web", {"instances": 5})
    app = api.wait_deployed("/shop/web")
    assert app["tasksHealthy"] == 5
    oldest = sorted(app["tasks"], key=lambda t: t["stagedAt"])[:2]
    answer = api.ok("PUT", "/v2/apps/shop/web", {"instances": 2})
    assert answer["deploymentId"] and answer["version"]
    app = api.wait_deployed("/shop/web")
    assert {t["id"] for t in app["tasks"]} == {t["id"] for t in oldest}
    until(lambda: len([t for t in framework_tasks(cluster) if t["name"] == "web.shop"]) == 2,
          "the master to run 2")  # fmt: skip
    api.remove("/shop/web")
    until(lambda: not [t for t in framework_tasks(cluster) if t["name"] == "web.shop"],
          "the tasks to end")  # fmt: skip


def test_a_new_version_rolls_out_respecting_minimum_health_capacity(api):
    strategy = {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0}
    api.ok("POST", "/v2/apps", definition("/roll", 4, upgradeStrategy=strategy))
    first = api.wait_deployed("/roll")
    old_ids = {t["id"] for t in first["tasks"]}
    version = api.ok("PUT", "/v2/apps/roll", {"env": {"RELEASE": "2"}})["version"]
    floor = math.ceil(4 * 0.5)
    lowest, most = 4, 0
    while True:
        app = api.app("/roll")
        live = [t for t in app["tasks"] if t["state"] == "TASK_RUNNING"]
        healthy = sum(1 for t in live if t.get("healthCheckResults", [{}])[0].get("alive"))
        serving = [t for t in app["tasks"] if t["state"] != "TASK_KILLING"]
        lowest, most = min(lowest, healthy), max(most, len(serving))
        if not app["deployments"] and app["tasksHealthy"] == 4:
            break
        time.sleep(0.05)
    assert lowest >= floor, f"healthy instances fell to {lowest}, below {floor}"
    assert most <= 4  # maximumOverCapacity 0: never more than 4 not being killed
    assert not old_ids & {t["id"] for t in app["tasks"]}
    assert {t["version"] for t in app["tasks"]} == {version}
    assert app["env"] == {"RELEASE": "2"}
    versions = api.ok("GET", "/v2/apps/roll/versions")["versions"]
    assert len(versions) == 2 and versions[0] == version
    api.remove("/roll")


def test_a_killed_instance_and_an_unhealthy_one_are_replaced(api, tmp_path):
    api.ok("POST", "/v2/apps", definition("/heal", 2))
    app = api.wait_deployed("/heal")
    victim = app["tasks"][0]
    port = victim["ports"][0]
    (process,) = [
        p for p in psutil.process_iter(["cmdline"])
        if p.info["cmdline"] and "http.server" in p.info["cmdline"]
        and str(port) in p.info["cmdline"]
    ]  # fmt: skip
    os.kill(process.pid, signal.SIGKILL)
    app = until(
        lambda: (
            (a := api.app("/heal"))["tasksHealthy"] == 2
            and victim["id"] not in {t["id"] for t in a["tasks"]}
            and a
        ),
        "the killed instance replaced",
    )
    assert len(app["tasks"]) == 2
    failure = app["lastTaskFailure"]
    assert failure["taskId"] == victim["id"] and failure["state"] == "TASK_FAILED"

    # One instance (the first to take the marker) stops answering its health check.
    marker = tmp_path / "sick"
    sick = server(f"if mkdir {marker} 2>/dev/null; then (sleep 3; rm www/health) & fi;")
    api.ok("PUT", "/v2/apps/heal", {"cmd": sick})
    app = api.wait_deployed("/heal")
    before = {t["id"] for t in app["tasks"]}
    until(lambda: not before <= {t["id"] for t in api.app("/heal")["tasks"]}, "a replacement")
    app = api.wait_deployed("/heal")
    assert len(before & {t["id"] for t in app["tasks"]}) == 1  # only the sick one went
    api.remove("/heal")


def test_an_invalid_definition_gets_422_with_every_path_and_changes_nothing(api):
    before = api.ok("GET", "/v2/apps")
    bad = {**definition("/bad"), "cpus": -1, "instances": "three", "killSelection": "RANDOM"}
    bad["healthChecks"] = [{**HEALTH, "protocol": "SMOKE_SIGNALS"}]
    status, answer = api.call("POST", "/v2/apps", bad)
    assert status == 422
    assert answer["message"] == "Object is not valid"
    paths = {d["path"] for d in answer["details"]}
    assert {"/cpus", "/instances", "/killSelection", "/healthChecks(0)/protocol"} <= paths
    assert all(d["errors"] for d in answer["details"])
    status, answer = api.call("POST", "/v2/apps", {"id": "/Bad_Id", "cmd": "true"})
    assert status == 422 and answer["details"][0]["path"] == "/id"
    status, answer = api.call("POST", "/v2/apps", {"id": "/nothing"})
    assert status == 422  # neither cmd nor args nor a container
    assert api.ok("GET", "/v2/apps") == before
    status, answer = api.call("GET", "/v2/apps/no/such/app")
    assert status == 404 and "does not exist" in answer["message"]
    assert api.call("DELETE", "/v2/apps/no/such/app")[0] == 404
    assert api.call("POST", "/v2/apps/no/such/app/restart")[0] == 404
    assert api.call("DELETE", "/v2/deployments/not-a-deployment")[0] == 404
    status, _ = api.call("POST", "/v2/apps", {"id": "/again", "cmd": "sleep 100", "mem": 16})
    assert status == 201
    assert api.call("POST", "/v2/apps", {"id": "/again", "cmd": "sleep 100"})[0] == 409
    api.remove("/again")


def test_a_change_during_a_deployment_gets_409_unless_forced(api):
    stuck = definition("/stuck", 1)
    stuck["healthChecks"] = [{**HEALTH, "path": "/never-there"}]  # never healthy: never done
    api.ok("POST", "/v2/apps", stuck)
    (deployment,) = api.ok("GET", "/v2/deployments")
    assert deployment["affectedApps"] == ["/stuck"] and deployment["totalSteps"] == 2
    status, answer = api.call("PUT", "/v2/apps/stuck", {"instances": 2})
    assert status == 409
    assert answer["deployments"] == [{"id": deployment["id"]}]
    assert "force=true" in answer["message"]
    assert api.app("/stuck")["instances"] == 1  # unchanged
    forced = api.ok("PUT", "/v2/apps/stuck?force=true", {"instances": 2})
    (now,) = api.ok("GET", "/v2/deployments")
    assert now["id"] == forced["deploymentId"] != deployment["id"]
    assert api.app("/stuck")["instances"] == 2
    # Cancelling with force stops it where it is; the app stays.
    status, _ = api.call("DELETE", f"/v2/deployments/{now['id']}?force=true")
    assert status == 202
    assert api.ok("GET", "/v2/deployments") == []
    assert api.app("/stuck")["instances"] == 2
    api.remove("/stuck")


def test_the_queue_says_why_an_app_waits(api):
    api.ok("POST", "/v2/apps", definition("/huge", 1, mem=100_000, healthChecks=[]))
    api.ok(
        "POST",
        "/v2/apps",
        definition("/alone", 2, healthChecks=[], constraints=[["hostname", "UNIQUE"]]),
    )

    def reasons() -> dict[str, set[str]] | None:
        entries = api.ok("GET", "/v2/queue")["queue"]
        found = {
            e["app"]["id"]: {r for offer in e["lastUnusedOffers"] for r in offer["reason"]}
            for e in entries
        }
        return found if found.get("/huge") and found.get("/alone") else None

    found = until(reasons, "the queue's reasons")
    assert "InsufficientMemory" in found["/huge"]
    assert found["/alone"] == {"UnfulfilledConstraint"}
    entry = next(e for e in api.ok("GET", "/v2/queue")["queue"] if e["app"]["id"] == "/huge")
    summary = entry["processedOffersSummary"]
    assert summary["unusedOffersCount"] >= 1 and entry["count"] == 1
    memory = next(
        r for r in summary["rejectSummaryLastOffers"] if r["reason"] == "InsufficientMemory"
    )
    assert memory["declined"] >= 1
    assert until(lambda: api.app("/alone")["tasksRunning"] == 1, "one of /alone running")
    api.remove("/huge")
    api.remove("/alone")


def test_events_stream_marathons_events(api, services):
    stream = EventStream(services)
    try:
        assert stream.get()["eventType"] == "event_stream_attached"
        api.ok("POST", "/v2/apps", definition("/told", 1))
        seen: list[dict[str, Any]] = []
        while not any(e["eventType"] == "deployment_success" for e in seen):
            seen.append(stream.get())
        assert all(e["_sse_event"] == e["eventType"] for e in seen)
        kinds = [e["eventType"] for e in seen]
        assert kinds.index("api_post_event") < kinds.index("status_update_event")
        assert {"deployment_info", "status_update_event", "health_status_changed_event"} <= set(
            kinds
        )
        running = next(e for e in seen if e.get("taskStatus") == "TASK_RUNNING")
        assert running["appId"] == "/told" and running["taskId"].startswith("told.")
        assert running["ports"] and running["slaveId"] and running["version"]
        api.remove("/told")
        while "app_terminated_event" not in kinds:
            kinds.append(stream.get()["eventType"])
    finally:
        stream.close()
    assert api.call("GET", "/v2/events")[0] == 405  # without Accept: text/event-stream


def test_kill_9_mid_deployment_then_restart_resumes_without_losing_or_doubling(cluster, tmp_path):
    work_dir = tmp_path / "state"
    first = launch_services(cluster.http_address, "--framework-name", "crashy", work_dir=work_dir)
    try:
        api = Api(first)
        # Slow to become healthy: the deployment is still under way when the scheduler dies.
        slow = definition("/crash", 3, cmd=server("sleep 8;"))
        api.ok("POST", "/v2/apps", slow)
        until(lambda: api.app("/crash")["tasksRunning"] >= 1, "a first instance running")
        before = {t["id"] for t in api.app("/crash")["tasks"]}
        (deployment,) = api.ok("GET", "/v2/deployments")  # mid-deployment
    finally:
        first.kill()
    second = launch_services(cluster.http_address, "--framework-name", "crashy", work_dir=work_dir)
    try:
        api = Api(second)
        (resumed,) = api.ok("GET", "/v2/deployments")
        assert resumed["id"] == deployment["id"] and resumed["affectedApps"] == ["/crash"]
        app = api.wait_deployed("/crash")
        after = {t["id"] for t in app["tasks"]}
        assert before <= after and len(after) == 3  # none lost, none doubled
        running = framework_tasks(cluster, "crashy")
        assert sorted(t["id"] for t in running) == sorted(after)
        api.remove("/crash")
        until(lambda: not framework_tasks(cluster, "crashy"), "crashy's tasks to end")
    finally:
        assert second.stop() == 0


def test_restart_rollback_and_kills_through_the_api(api):
    api.ok("POST", "/v2/apps", definition("/life", 2))
    first = api.wait_deployed("/life")
    original_cmd, original_version = first["cmd"], first["version"]
    restarted = api.ok("POST", "/v2/apps/life/restart")
    assert restarted["deploymentId"]
    app = api.wait_deployed("/life")
    assert not {t["id"] for t in first["tasks"]} & {t["id"] for t in app["tasks"]}
    # A new config, then back to the first version by posting it.
    api.ok("PUT", "/v2/apps/life", {"cmd": server("echo two;")})
    assert api.wait_deployed("/life")["cmd"] != original_cmd
    api.ok("PUT", "/v2/apps/life", {"version": original_version})
    app = api.wait_deployed("/life")
    assert app["cmd"] == original_cmd
    assert api.call("PUT", "/v2/apps/life", {"version": "1999-01-01T00:00:00.000Z"})[0] == 404
    # Kill one and shrink: a deployment to one instance.
    victim = app["tasks"][0]["id"]
    answer = api.ok("DELETE", f"/v2/apps/life/tasks/{victim}?scale=true")
    assert answer["deploymentId"]
    app = api.wait_deployed("/life")
    assert app["instances"] == 1 and victim not in {t["id"] for t in app["tasks"]}
    # Kill without scale: the task is replaced.
    (survivor,) = app["tasks"]
    killed = api.ok("POST", "/v2/tasks/delete", {"ids": [survivor["id"]]})["tasks"]
    assert [t["id"] for t in killed] == [survivor["id"]]
    app = until(
        lambda: (
            (a := api.app("/life"))["tasksHealthy"] == 1
            and a["tasks"][0]["id"] != survivor["id"]
            and a
        ),
        "the killed task replaced",
    )
    assert app["instances"] == 1
    # A deployment that cannot finish, rolled back by deleting it.
    good_checks = app["healthChecks"]
    api.ok("PUT", "/v2/apps/life", {"healthChecks": [{**HEALTH, "path": "/missing"}]})
    (stuck,) = api.ok("GET", "/v2/deployments")
    rollback = api.ok("DELETE", f"/v2/deployments/{stuck['id']}")
    assert rollback["deploymentId"] != stuck["id"]
    app = api.wait_deployed("/life")
    assert app["healthChecks"] == good_checks
    api.remove("/life")


def test_info_ping_metrics_and_groups(api):
    request = urllib.request.urlopen(f"{api.base}/ping", timeout=WAIT)
    assert request.read() == b"pong"
    info = api.ok("GET", "/v2/info")
    assert info["name"] == "marathon" and info["frameworkId"] and info["elected"] is True
    assert api.ok("GET", "/v2/leader")["leader"] == info["leader"]
    gauges = api.ok("GET", "/metrics")["gauges"]
    assert gauges["marathon.mesos.connected.gauge"]["value"] == 1
    group = {
        "id": "/grp",
        "apps": [
            {**definition("a"), "healthChecks": []},
            {**definition("b"), "healthChecks": []},
        ],
        "groups": [{"id": "inner", "apps": [{**definition("c"), "healthChecks": []}]}],
    }
    status, answer = api.call("POST", "/v2/groups", group)
    assert status == 201 and answer["deploymentId"]
    until(lambda: api.app("/grp/inner/c")["tasksRunning"] == 1, "the group's apps running")
    tree = api.ok("GET", "/v2/groups/grp")
    assert [a["id"] for a in tree["apps"]] == ["/grp/a", "/grp/b"]
    assert [g["id"] for g in tree["groups"]] == ["/grp/inner"]
    assert [a["id"] for a in tree["groups"][0]["apps"]] == ["/grp/inner/c"]
    bad = {"id": "/grp2", "apps": [{"id": "x", "cmd": "y", "mem": -5}]}
    status, answer = api.call("POST", "/v2/groups", bad)
    assert status == 422 and answer["details"][0]["path"] == "/apps(0)/mem"
    assert api.call("GET", "/v2/groups/grp2")[0] == 404
    assert api.ok("DELETE", "/v2/groups/grp?force=true")["deploymentId"]
    until(lambda: api.call("GET", "/v2/groups/grp")[0] == 404, "the group gone")


def test_a_failing_app_backs_off_and_the_queue_shows_the_delay(api):
    failing = {**definition("/flaky"), "cmd": "exit 3", "healthChecks": []}
    failing.update(backoffSeconds=20, backoffFactor=2, maxLaunchDelaySeconds=60)
    api.ok("POST", "/v2/apps", failing)

    def delayed() -> dict[str, Any] | None:
        for entry in api.ok("GET", "/v2/queue")["queue"]:
            if entry["app"]["id"] == "/flaky" and entry["delay"]["timeLeftSeconds"] > 0:
                return entry
        return None

    entry = until(delayed, "a backoff delay in the queue")
    assert entry["delay"]["timeLeftSeconds"] <= 20 and entry["delay"]["overdue"] is False
    failure = api.app("/flaky")["lastTaskFailure"]
    assert failure["state"] == "TASK_FAILED" and failure["appId"] == "/flaky"
    status, _ = api.call("DELETE", "/v2/queue/flaky/delay")
    assert status == 204
    # Relaunched at once (not 20 s later): it fails again, a new task.
    until(
        lambda: api.app("/flaky")["lastTaskFailure"]["taskId"] != failure["taskId"],
        "a launch right after the delay was reset",
        timeout=15,
    )
    api.remove("/flaky")


def test_a_deployment_waits_for_the_readiness_check(api):
    # Healthy at once, ready (``www/ready`` served) only 5 s later.
    ready_later = definition(
        "/ready",
        1,
        cmd=server("(sleep 5; echo yes > www/ready) &"),
        portDefinitions=[{"port": 0, "name": "http-api"}],
        readinessChecks=[{"path": "/ready", "intervalSeconds": 0.5, "timeoutSeconds": 2}],
    )
    api.ok("POST", "/v2/apps", ready_later)
    until(lambda: api.app("/ready")["tasksHealthy"] == 1, "healthy")
    started = time.monotonic()
    assert api.app("/ready")["deployments"], "done before the readiness check passed"
    (deployment,) = api.ok("GET", "/v2/deployments")
    (waiting,) = deployment["currentActions"][0]["readinessCheckResults"]
    assert waiting["ready"] is False and waiting["name"] == "readinessCheck"
    api.wait_deployed("/ready")
    assert time.monotonic() - started > 1.0
    api.remove("/ready")


def test_bulk_updates_embeds_and_filtered_events(api, services):
    plain = {**definition("/bulk/a"), "healthChecks": []}
    api.ok("POST", "/v2/apps", plain)
    api.wait_deployed("/bulk/a", healthy=0)  # no health checks: none reports healthy
    listed = api.ok("GET", "/v2/apps?embed=apps.tasks&label=")["apps"]
    (mine,) = [a for a in listed if a["id"] == "/bulk/a"]
    assert len(mine["tasks"]) == 1 and "tasks" not in api.ok("GET", "/v2/apps")["apps"][0]
    # All or nothing: one bad definition and neither changes.
    bad = [{"id": "/bulk/a", "instances": 2}, {"id": "/bulk/b", "cmd": "x", "cpus": -1}]
    status, answer = api.call("PUT", "/v2/apps", bad)
    assert status == 422 and answer["details"][0]["path"] == "(1)/cpus"
    assert api.app("/bulk/a")["instances"] == 1 and api.call("GET", "/v2/apps/bulk/b")[0] == 404

    stream = EventStream(services, "?event_type=deployment_success&event_type=app_terminated_event")
    try:
        good = [{"id": "/bulk/a", "instances": 2}, {**plain, "id": "/bulk/b"}]
        assert api.ok("PUT", "/v2/apps", good)["deploymentId"]
        until(lambda: api.app("/bulk/a")["tasksRunning"] == 2, "/bulk/a scaled")
        until(lambda: api.app("/bulk/b")["tasksRunning"] == 1, "/bulk/b created")
        first = stream.get()
        assert first["eventType"] == "deployment_success"  # only the types asked for
        api.ok("DELETE", "/v2/groups/bulk?force=true")
        kinds = set()
        while "app_terminated_event" not in kinds:
            kinds.add(stream.get()["eventType"])
        assert kinds <= {"deployment_success", "app_terminated_event"}
    finally:
        stream.close()
    until(lambda: api.call("GET", "/v2/groups/bulk")[0] == 404, "the group gone")


def test_corral_services_refuses_a_bad_master_address_and_a_taken_port(tmp_path, services):
    command = [PYTHON, "-m", "corral", "services", "--work-dir", str(tmp_path), "--log-level"]
    bad = subprocess.run(
        [*command, "warning", "--master", "nonsense", "--http-port", "0"],
        capture_output=True, text=True, timeout=WAIT,
    )  # fmt: skip
    assert bad.returncode == 2 and "master is the master's HTTP address" in bad.stderr
    taken = subprocess.run(
        [*command, "warning", "--master", "127.0.0.1:1", "--http-port", str(services.http_port)],
        capture_output=True, text=True, timeout=WAIT,
    )  # fmt: skip
    assert taken.returncode == 1 and "cannot listen" in taken.stderr


def test_services_never_imports_the_kernels_insides():
    root = Path(__file__).resolve().parent.parent / "services"
    for path in root.glob("*.py"):
        text = path.read_text()
        for forbidden in ("master", "agent", "containerizer"):
            assert f"\nimport {forbidden}" not in text, path
            assert f"\nfrom {forbidden}" not in text, path
