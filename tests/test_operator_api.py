"""The master's operator surface over real HTTP: Mesos's state endpoints, metrics, the v1
operator API (``POST /api/v1``) and its SUBSCRIBE stream, with a fake agent and scheduler
driver speaking real messages to a real master on a paused clock."""

from __future__ import annotations

import http.client
import json
import queue
import socket
import threading
import time
from dataclasses import replace
from typing import Any

import pytest

from corral.ids import AgentID
from corral.protocol import AgentInfo, DiscoveryInfo, FrameworkInfo, Port
from corral.protocol.messages import (
    AgentRegistered,
    AgentReregistered,
    FrameworkError,
    FrameworkRegistered,
    RegisterAgent,
    RegisterFramework,
    ReregisterAgent,
    RescindOffer,
    RunTask,
    ShutdownFramework,
)
from corral.resources import Resources
from corral.task_states import TaskState
from corral.v1.recordio import Decoder
from libprocess import Runtime
from master import MasterProcess
from master.state import AgentRecord
from master.state_views import StateViews
from tests.master_actors import FakeAgent
from tests.test_master import OPTIONS, Cluster

AGENT = Resources.parse("cpus:4;mem:1024;ports:[31000-32000]")
FRESH = replace(OPTIONS, state_cache_seconds=0.0)  # builds as often as the cost allows
CACHED = replace(OPTIONS, state_cache_seconds=1.0)  # and at most once a second
JSON = {"Content-Type": "application/json", "Accept": "application/json"}


def request(
    address: str,
    path: str,
    body: Any = None,
    method: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        data = body if isinstance(body, bytes | None) else json.dumps(body).encode()
        connection.request(method or ("GET" if data is None else "POST"), path, data, headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def get_json(address: str, path: str) -> Any:
    status, _, body = request(address, path)
    assert status == 200, body
    return json.loads(body)


def call(address: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    status, _, answer = request(address, "/api/v1", body, headers=headers or JSON)
    try:
        return status, json.loads(answer) if answer else None
    except ValueError:
        return status, answer.decode()


class Events:
    """A SUBSCRIBE stream read in a thread: its RecordIO records, decoded, on a queue."""

    def __init__(self, address: str, accept: str = "application/json") -> None:
        host, port = address.rsplit(":", 1)
        self.connection = http.client.HTTPConnection(host, int(port), timeout=10)
        headers = {"Content-Type": "application/json", "Accept": accept}
        self.connection.request("POST", "/api/v1", json.dumps({"type": "SUBSCRIBE"}), headers)
        self.response = self.connection.getresponse()
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        decoder = Decoder()
        try:
            while chunk := self.response.read1(65536):
                for record in decoder.feed(chunk):
                    self.events.put(json.loads(record))
        except (OSError, ValueError, http.client.HTTPException):
            pass  # the stream ended (the test hung up, or the master closed it)

    def next(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        """The next event of type ``kind``, skipping others."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                break
            if event["type"] == kind:
                return event
        raise AssertionError(f"no {kind} event within {timeout} s")

    def close(self) -> None:
        """Hang up (shutting the socket down wakes the reading thread at once)."""
        sock = self.connection.sock
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
        self.thread.join(5)
        self.response.close()
        self.connection.close()


@pytest.fixture
def web_runtime():
    with Runtime("127.0.0.1", 0, http_port=0) as running:
        yield running


def make_cluster(web_runtime, paused_clock, tmp_path, options=FRESH) -> Cluster:
    cluster = Cluster(web_runtime, paused_clock, str(tmp_path), options)
    return cluster


def register_agent(cluster: Cluster, agent: FakeAgent | None = None, host: str = "host-a"):
    agent = agent or cluster.agent
    cluster.say(agent, RegisterAgent(AgentInfo(hostname=host, resources=AGENT), version="test"))
    agent_id = agent.next(AgentRegistered).agent_id
    if agent is cluster.agent:
        cluster.agent_id = agent_id
    return agent_id


@pytest.fixture
def running(web_runtime, paused_clock, tmp_path) -> Cluster:
    """An agent, a framework and one task t1, RUNNING."""
    cluster = make_cluster(web_runtime, paused_clock, tmp_path)
    register_agent(cluster)
    offer = cluster.register_framework()
    cluster.accept(offer, cluster.task("t1"))
    cluster.agent.next(RunTask)
    cluster.update("t1", TaskState.TASK_RUNNING)
    cluster.settle()
    return cluster


def address(cluster: Cluster) -> str:
    return cluster.runtime.http_address


# -- plain endpoints ----------------------------------------------------------------------


def test_version_is_numeric_and_health_is_an_empty_200(web_runtime, paused_clock, tmp_path):
    cluster = make_cluster(web_runtime, paused_clock, tmp_path)
    for path in ("/version", "/master/version"):
        version = get_json(address(cluster), path)
        assert [int(part) for part in version["version"].split(".")] == [1, 11, 0]
        assert version["build_date"] and version["corral_version"]
    assert request(address(cluster), "/health")[::2] == (200, b"")
    assert request(address(cluster), "/master/health")[::2] == (200, b"")


def test_info_names_the_master_without_building_state(running):
    cluster = running
    info = get_json(address(cluster), "/master/info")
    assert info["pid"] == str(cluster.master.pid) and info["hostname"] == "test-master"
    assert builds(cluster) == 0  # /master/state was never built for it


def test_state_has_mesos_keys_next_to_corrals(running):
    cluster = running
    for path in ("/master/state", "/state"):
        state = get_json(address(cluster), path)
        mesos = {
            "version",
            "start_time",
            "elected_time",
            "id",
            "pid",
            "hostname",
            "leader",
            "leader_info",
            "activated_slaves",
            "deactivated_slaves",
            "unreachable_slaves",
            "flags",
            "slaves",
            "frameworks",
            "completed_frameworks",
            "orphan_tasks",
            "unregistered_frameworks",
        }
        corral = {"agents", "tasks", "unreachable_agents", "recovered_agents"}
        assert mesos | corral <= set(state)
        assert state["leader"] == state["pid"] == str(cluster.master.pid)
        assert (state["activated_slaves"], state["deactivated_slaves"]) == (1, 0)
        (slave,) = state["slaves"]
        assert slave["id"] == cluster.agent_id
        assert slave["pid"] == str(cluster.agent.pid)  # the real pid, agent@ip:port
        assert slave["resources"] == {
            "cpus": 4,
            "gpus": 0,
            "mem": 1024,
            "disk": 0,
            "ports": "[31000-32000]",
        }
        assert slave["used_resources"]["cpus"] == 1
        assert slave["active"] is True and slave["version"] == "test"
        assert slave["registered_time"] > 0
        (framework,) = state["frameworks"]
        for key in ("name", "user", "hostname", "principal", "roles", "active", "executors"):
            assert key in framework
        assert framework["used_resources"]["mem"] == 128
        assert framework["registered_time"] > 0
        (task,) = framework["tasks"]
        assert task["id"] == "t1"
        assert task["slave_id"] == task["agent_id"] == cluster.agent_id
        assert task["role"] == "*" and task["state"] == "TASK_RUNNING"
        assert [s["state"] for s in task["statuses"]] == ["TASK_RUNNING"]
        assert Resources.from_json(task["resources"]) == cluster.task("t1").resources
        assert [t["id"] for t in state["tasks"]] == ["t1"]  # Corral's flat list too


def test_state_as_jsonp(running):
    status, headers, body = request(address(running), "/master/state?jsonp=angular.cb._0")
    assert status == 200
    assert headers["Content-Type"].startswith("application/javascript")
    assert body.startswith(b"angular.cb._0(") and body.endswith(b");")
    assert json.loads(body[len(b"angular.cb._0(") : -2])["slaves"]
    status, _, body = request(address(running), "/state?jsonp=alert(1)")
    assert status == 400 and b"function name" in body


def test_slaves_frameworks_roles_and_flags(running):
    cluster = running
    for prefix in ("/master", ""):
        (slave,) = get_json(address(cluster), f"{prefix}/slaves")["slaves"]
        assert slave["id"] == cluster.agent_id
        frameworks = get_json(address(cluster), f"{prefix}/frameworks")
        (framework,) = frameworks["frameworks"]
        assert framework["tasks"][0]["resources"]["cpus"] == 1  # Mesos's map here
        assert frameworks["completed_frameworks"] == []
        (role,) = get_json(address(cluster), f"{prefix}/roles")["roles"]
        assert (role["name"], role["weight"], role["frameworks"]) == (
            "*",
            1.0,
            [cluster.framework_id],
        )
        flags = get_json(address(cluster), f"{prefix}/flags")["flags"]
        assert flags["hostname"] == "test-master"
        assert flags["allocation_interval"] == "1secs"


def test_tasks_with_limit_offset_and_order(running):
    cluster = running
    for name in ("t2", "t3"):
        cluster.launch(name)
        cluster.update(name, TaskState.TASK_RUNNING)
        cluster.settle()
    listed = get_json(address(cluster), "/master/tasks?order=asc")["tasks"]
    assert [t["id"] for t in listed] == ["t1", "t2", "t3"]
    assert listed[0]["resources"]["mem"] == 128
    newest = get_json(address(cluster), "/tasks?limit=1")["tasks"]
    assert [t["id"] for t in newest] == ["t3"]
    page = get_json(address(cluster), "/tasks?limit=1&offset=1&order=asc")["tasks"]
    assert [t["id"] for t in page] == ["t2"]
    every = get_json(address(cluster), "/tasks?order=asc&limit=-1")["tasks"]  # the Mesos CLI's
    assert [t["id"] for t in every] == ["t1", "t2", "t3"]
    for bad in ("limit=many", "limit=-2", "offset=-1", "order=up"):
        status, _, body = request(address(cluster), f"/master/tasks?{bad}")
        assert status == 400 and body.endswith(b"\n")


def test_metrics_snapshot_has_mesos_names(running):
    cluster = running
    metrics = get_json(address(cluster), "/metrics/snapshot")
    expected = {
        "master/tasks_running": 1,
        "master/tasks_staging": 0,
        "master/tasks_finished": 0,
        "master/cpus_total": 4,
        "master/cpus_used": 1,
        "master/mem_total": 1024,
        "master/mem_used": 128,
        "master/slaves_active": 1,
        "master/slaves_connected": 1,
        "master/frameworks_active": 1,
        "master/elected": 1,
    }
    assert {name: metrics[name] for name in expected} == expected
    assert "master/uptime_secs" in metrics and "master/outstanding_offers" in metrics
    cluster.update("t1", TaskState.TASK_FINISHED)
    cluster.settle()
    metrics = get_json(address(cluster), "/metrics/snapshot")
    assert (metrics["master/tasks_finished"], metrics["master/tasks_running"]) == (1, 0)
    assert metrics["master/cpus_used"] == 0


# -- the snapshot -------------------------------------------------------------------------


def builds(cluster: Cluster) -> int:
    master = cluster.master
    return cluster.runtime.dispatch(master, lambda: master.views.snapshot.builds).result(5)


def test_state_is_built_once_per_interval(web_runtime, paused_clock, tmp_path):
    cluster = make_cluster(web_runtime, paused_clock, tmp_path, CACHED)
    first = request(address(cluster), "/master/state")[2]
    register_agent(cluster)  # a change within the interval is not seen yet
    assert request(address(cluster), "/state")[2] == first
    assert json.loads(request(address(cluster), "/master/slaves")[2])["slaves"] == []
    assert builds(cluster) == 1
    paused_clock.advance(1.0)
    (slave,) = get_json(address(cluster), "/master/state")["slaves"]
    assert slave["id"] == cluster.agent_id
    assert builds(cluster) == 2


def test_state_of_2000_agents_is_fast_and_polling_costs_one_build(
    web_runtime, paused_clock, tmp_path
):
    cluster = make_cluster(web_runtime, paused_clock, tmp_path, CACHED)
    master = cluster.master

    def add_agents() -> None:
        for index in range(2000):
            info = AgentInfo(hostname=f"h{index}", resources=AGENT, id=AgentID(f"fake-S{index}"))
            master.state.add_agent(AgentRecord(info, f"agent@10.0.{index // 250}.{index}:5051"))

    cluster.runtime.dispatch(master, add_agents).result(5)
    started = time.perf_counter()
    state = get_json(address(cluster), "/master/state")
    first = time.perf_counter() - started
    assert len(state["slaves"]) == len(state["agents"]) == 2000
    started = time.perf_counter()
    for _ in range(20):
        request(address(cluster), "/master/state")
    polled = (time.perf_counter() - started) / 20
    build = cluster.runtime.dispatch(
        master, lambda: master.views.snapshot.last_build_seconds
    ).result(5)
    print(f"2000 agents: first request {first:.3f} s (build {build:.3f} s), cached {polled:.4f} s")
    assert builds(cluster) == 1
    assert first < 3.0 and polled < 0.5


def test_without_a_floor_builds_take_at_most_their_share_of_the_masters_time(
    web_runtime, paused_clock, tmp_path
):
    cluster = make_cluster(web_runtime, paused_clock, tmp_path, FRESH)
    master = cluster.master

    def slow_build() -> dict:  # a state that takes 50 ms to build, as a big cluster's does
        time.sleep(0.05)
        return {"slaves": []}

    def slow_down() -> None:
        master.views.snapshot._build = slow_build

    cluster.runtime.dispatch(master, slow_down).result(5)
    started = time.monotonic()
    while time.monotonic() - started < 0.5:
        request(address(cluster), "/master/state")
    # 0.5 s of polling: one build, then at most one per 0.5 s (50 ms / BUILD_SHARE).
    assert builds(cluster) <= 2


def polled(cluster: Cluster, path: str = "/master/state") -> bytes:
    """``path``'s body as the next poll after the cache expired gets it."""
    views = cluster.master.views
    cluster.runtime.dispatch(cluster.master, views.snapshot.invalidate).result(5)
    status, _, body = request(address(cluster), path)
    assert status == 200, body
    return body


def from_scratch(cluster: Cluster) -> bytes:
    """``/master/state`` as a build with no fragments kept from before makes it."""
    master = cluster.master

    def build() -> bytes:
        kept = master.views
        fresh = StateViews(master)
        fresh.registered, fresh.started = kept.registered, kept.started
        fresh.completed_frameworks = kept.completed_frameworks
        return json.dumps(fresh.build_state(), separators=(",", ":")).encode()

    return cluster.runtime.dispatch(master, build).result(5)


def test_each_poll_shows_the_changes_since_the_last_and_nothing_stale(running):
    cluster, at = running, address(running)
    first = polled(cluster)
    assert first == from_scratch(cluster)
    (framework,) = json.loads(first)["frameworks"]
    assert [(t["id"], t["state"]) for t in framework["tasks"]] == [("t1", "TASK_RUNNING")]

    cluster.launch("t2")
    cluster.update("t2", TaskState.TASK_RUNNING)
    cluster.update("t1", TaskState.TASK_FINISHED)
    cluster.settle()
    body = polled(cluster)
    assert body == from_scratch(cluster)
    state = json.loads(body)
    (framework,) = state["frameworks"]
    assert [(t["id"], t["state"]) for t in framework["tasks"]] == [("t2", "TASK_RUNNING")]
    assert [(t["id"], t["state"]) for t in framework["completed_tasks"]] == [
        ("t1", "TASK_FINISHED")
    ]
    assert framework["used_resources"]["cpus"] == 1  # t2's; t1's went back
    (slave,) = state["slaves"]
    assert slave["used_resources"]["cpus"] == 1
    assert {(t["id"], t["state"]) for t in state["tasks"]} == {
        ("t1", "TASK_FINISHED"),
        ("t2", "TASK_RUNNING"),
    }
    newest = json.loads(polled(cluster, "/master/tasks?limit=1"))["tasks"]
    assert [(t["id"], t["state"]) for t in newest] == [("t2", "TASK_RUNNING")]

    offer = cluster.next_offer_or_wait()  # a task holding ports comes and goes
    cluster.accept(offer, cluster.task("web", Resources.parse("cpus:1;mem:32;ports:[31000-31001]")))
    cluster.agent.next(RunTask)
    cluster.update("web", TaskState.TASK_RUNNING)
    cluster.settle()
    (framework,) = json.loads(polled(cluster))["frameworks"]
    assert framework["used_resources"]["ports"] == "[31000-31001]"
    cluster.update("web", TaskState.TASK_FAILED)
    cluster.settle()
    body = polled(cluster)
    assert body == from_scratch(cluster)
    (framework,) = json.loads(body)["frameworks"]
    assert "ports" not in framework["used_resources"] and framework["used_resources"]["cpus"] == 1

    second = FakeAgent()
    cluster.peers.spawn(second)
    second_id = register_agent(cluster, second, host="host-b")
    assert {s["id"] for s in json.loads(polled(cluster))["slaves"]} == {
        cluster.agent_id,
        second_id,
    }
    gone = {"type": "MARK_AGENT_GONE", "mark_agent_gone": {"agent_id": {"value": second_id}}}
    assert call(at, gone)[0] == 200
    cluster.settle()
    state = json.loads(polled(cluster))
    assert [s["id"] for s in state["slaves"]] == [cluster.agent_id]
    assert [a["id"] for a in state["agents"]] == [cluster.agent_id]
    assert polled(cluster) == from_scratch(cluster)

    teardown = {"type": "TEARDOWN", "teardown": {"framework_id": {"value": cluster.framework_id}}}
    assert call(at, teardown)[0] == 200
    cluster.settle()
    body = polled(cluster)
    assert body == from_scratch(cluster)
    state = json.loads(body)
    assert state["frameworks"] == [] and state["tasks"] == []
    (slave,) = state["slaves"]
    assert slave["used_resources"]["cpus"] == 0
    (done,) = state["completed_frameworks"]
    assert {(t["id"], t["state"]) for t in done["completed_tasks"]} == {
        ("t1", "TASK_FINISHED"),
        ("web", "TASK_FAILED"),
        ("t2", "TASK_KILLED"),
    }
    assert json.loads(polled(cluster, "/master/tasks"))["tasks"] == []
    summary = json.loads(polled(cluster, "/master/state-summary"))
    assert summary["frameworks"] == [] and len(summary["slaves"]) == 1


# -- POST /api/v1 -------------------------------------------------------------------------


def test_get_calls_answer_in_master_proto_shapes(running):
    cluster, at = running, address(running)
    assert call(at, {"type": "GET_HEALTH"}) == (
        200,
        {"type": "GET_HEALTH", "get_health": {"healthy": True}},
    )
    _, answer = call(at, {"type": "GET_VERSION"})
    assert answer["get_version"]["version_info"]["version"] == "1.11.0"
    flags = call(at, {"type": "GET_FLAGS"})[1]["get_flags"]["flags"]
    assert {"name": "hostname", "value": "test-master"} in flags
    metrics = call(at, {"type": "GET_METRICS", "get_metrics": {}})[1]["get_metrics"]["metrics"]
    assert {"name": "master/tasks_running", "value": 1} in metrics
    (agent,) = call(at, {"type": "GET_AGENTS"})[1]["get_agents"]["agents"]
    assert agent["agent_info"]["id"] == {"value": cluster.agent_id}
    assert agent["active"] is True and agent["pid"] == str(cluster.agent.pid)
    assert Resources.from_json(agent["total_resources"]) == AGENT
    assert "nanoseconds" in agent["registered_time"]
    (framework,) = call(at, {"type": "GET_FRAMEWORKS"})[1]["get_frameworks"]["frameworks"]
    assert framework["framework_info"]["id"] == {"value": cluster.framework_id}
    assert framework["active"] is True and framework["connected"] is True
    tasks = call(at, {"type": "GET_TASKS"})[1]["get_tasks"]
    (task,) = tasks["tasks"]
    assert task["task_id"] == {"value": "t1"} and task["agent_id"] == {"value": cluster.agent_id}
    assert task["state"] == "TASK_RUNNING"
    assert call(at, {"type": "GET_EXECUTORS"})[1]["get_executors"]["executors"] == []
    state = call(at, {"type": "GET_STATE"})[1]["get_state"]
    assert set(state) == {"get_tasks", "get_executors", "get_frameworks", "get_agents"}
    (role,) = call(at, {"type": "GET_ROLES"})[1]["get_roles"]["roles"]
    assert role["name"] == "*" and role["frameworks"] == [{"value": cluster.framework_id}]
    master = call(at, {"type": "GET_MASTER"})[1]["get_master"]
    assert master["master_info"]["pid"] == str(cluster.master.pid)
    assert master["start_time"] > 0


def test_weights_and_quota_are_updated_and_read_back(running):
    at = address(running)
    assert call(at, {"type": "GET_WEIGHTS"})[1]["get_weights"] == {"weight_infos": []}
    update = {"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": [{"role": "a"}]}}
    assert call(at, update)[0] == 400  # no weight: nothing changes
    update["update_weights"]["weight_infos"] = [{"role": "a", "weight": 2.5}]
    assert call(at, update) == (200, None)
    assert call(at, {"type": "GET_WEIGHTS"})[1]["get_weights"]["weight_infos"] == [
        {"role": "a", "weight": 2.5}
    ]
    roles = {r["name"]: r for r in get_json(at, "/master/roles")["roles"]}
    assert roles["a"]["weight"] == 2.5
    quota = {
        "type": "UPDATE_QUOTA",
        "update_quota": {
            "quota_configs": [
                {
                    "role": "a",
                    "guarantees": {"cpus": {"value": 1}},
                    "limits": {"cpus": {"value": 2}},
                }
            ]
        },
    }
    assert call(at, quota) == (200, None)
    (config,) = call(at, {"type": "GET_QUOTA"})[1]["get_quota"]["status"]["configs"]
    assert config == {
        "role": "a",
        "guarantees": {"cpus": {"value": 1.0}},
        "limits": {"cpus": {"value": 2.0}},
    }
    quota["update_quota"]["quota_configs"][0]["guarantees"] = {"cpus": {"value": 3}}
    status, text = call(at, quota)  # a guarantee above its limit
    assert status == 400 and "exceeds" in text
    quota["update_quota"]["quota_configs"][0]["role"] = "*"
    assert call(at, quota)[0] == 400


def test_mark_agent_gone_shares_the_masters_code(running):
    cluster, at = running, address(running)
    gone = {"type": "MARK_AGENT_GONE", "mark_agent_gone": {"agent_id": {"value": "nobody"}}}
    assert call(at, gone)[0] == 404
    assert call(at, {"type": "MARK_AGENT_GONE", "mark_agent_gone": {}})[0] == 400
    gone["mark_agent_gone"]["agent_id"]["value"] = cluster.agent_id
    assert call(at, gone) == (200, None)
    assert call(at, {"type": "GET_AGENTS"})[1]["get_agents"]["agents"] == []
    (task,) = call(at, {"type": "GET_TASKS"})[1]["get_tasks"]["completed_tasks"]
    assert task["state"] in ("TASK_GONE_BY_OPERATOR", "TASK_LOST")


def test_teardown_removes_the_framework_and_tells_its_driver(running):
    cluster, at = running, address(running)
    teardown = {"type": "TEARDOWN", "teardown": {"framework_id": {"value": "nope"}}}
    assert call(at, teardown)[0] == 400
    teardown["teardown"]["framework_id"]["value"] = cluster.framework_id
    assert call(at, teardown) == (200, None)
    assert cluster.agent.next(ShutdownFramework).framework_id == cluster.framework_id
    assert "torn down" in cluster.scheduler.next(FrameworkError).message
    assert call(at, {"type": "GET_FRAMEWORKS"})[1]["get_frameworks"]["frameworks"] == []
    (completed,) = get_json(at, "/master/state")["completed_frameworks"]
    assert completed["id"] == cluster.framework_id and completed["active"] is False
    assert [t["id"] for t in completed["completed_tasks"]] == ["t1"]


def test_deactivated_agents_get_no_offers_until_reactivated(web_runtime, paused_clock, tmp_path):
    cluster = make_cluster(web_runtime, paused_clock, tmp_path)
    at = address(cluster)
    register_agent(cluster)
    offer = cluster.register_framework()
    agent = {"agent_id": {"value": cluster.agent_id}}
    assert call(at, {"type": "DEACTIVATE_AGENT", "deactivate_agent": agent}) == (200, None)
    assert cluster.scheduler.next(RescindOffer).offer_id == offer.id
    (listed,) = call(at, {"type": "GET_AGENTS"})[1]["get_agents"]["agents"]
    assert (listed["active"], listed["deactivated"]) == (False, True)
    assert get_json(at, "/master/state")["deactivated_slaves"] == 1
    cluster.tick(3.0)
    assert cluster.offers_pending() == []
    assert call(at, {"type": "REACTIVATE_AGENT", "reactivate_agent": agent}) == (200, None)
    cluster.tick(1.0)
    assert cluster.offers_pending()
    unknown = {"agent_id": {"value": "nobody"}}
    assert call(at, {"type": "DEACTIVATE_AGENT", "deactivate_agent": unknown})[0] == 400


def test_weights_quota_and_deactivation_outlive_a_master_restart(
    web_runtime, paused_clock, tmp_path
):
    cluster = make_cluster(web_runtime, paused_clock, tmp_path)
    at = address(cluster)
    register_agent(cluster)
    weights = {"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": [
        {"role": "eng", "weight": 3.0}]}}  # fmt: skip
    assert call(at, weights) == (200, None)
    quota = {"type": "UPDATE_QUOTA", "update_quota": {"quota_configs": [
        {"role": "eng", "guarantees": {"cpus": {"value": 1}}}]}}  # fmt: skip
    assert call(at, quota) == (200, None)
    agent = {"agent_id": {"value": cluster.agent_id}}
    assert call(at, {"type": "DEACTIVATE_AGENT", "deactivate_agent": agent}) == (200, None)

    old = cluster.master
    web_runtime.terminate(old)
    web_runtime.wait(old).result(5)
    web_runtime.wait(old.allocator.pid).result(5)
    cluster.master = MasterProcess(cluster.work_dir, FRESH)
    web_runtime.spawn(cluster.master)
    cluster.settle()
    assert call(at, {"type": "GET_WEIGHTS"})[1]["get_weights"]["weight_infos"] == [
        {"role": "eng", "weight": 3.0}
    ]
    (config,) = call(at, {"type": "GET_QUOTA"})[1]["get_quota"]["status"]["configs"]
    assert config["role"] == "eng" and config["guarantees"] == {"cpus": {"value": 1.0}}
    info = AgentInfo("host-a", resources=AGENT, id=cluster.agent_id)
    cluster.say(cluster.agent, ReregisterAgent(info, "test"))
    assert cluster.agent.next(AgentReregistered).agent_id == cluster.agent_id
    (listed,) = call(at, {"type": "GET_AGENTS"})[1]["get_agents"]["agents"]
    assert (listed["active"], listed["deactivated"]) == (False, True)
    cluster.say(cluster.scheduler, RegisterFramework(FrameworkInfo(user="u", name="after")))
    cluster.scheduler.next(FrameworkRegistered)
    cluster.tick(3.0)
    assert cluster.offers_pending() == []  # still deactivated: no offers from it
    assert call(at, {"type": "REACTIVATE_AGENT", "reactivate_agent": agent}) == (200, None)
    cluster.tick(1.0)
    assert cluster.offers_pending()


@pytest.mark.parametrize(
    ("method", "body", "headers", "status"),
    [
        ("GET", None, {}, 405),
        ("POST", b'{"type":"GET_HEALTH"}', {}, 400),  # no Content-Type
        ("POST", b'{"type":"GET_HEALTH"}', {"Content-Type": "text/plain"}, 415),
        ("POST", b'{"type":"GET_HEALTH"}', {"Content-Type": "application/x-protobuf"}, 415),
        ("POST", b'{"type":"GET_HEALTH"}', {**JSON, "Accept": "application/x-protobuf"}, 406),
        ("POST", b"{not json", JSON, 400),
        ("POST", b'["GET_HEALTH"]', JSON, 400),
        ("POST", b'{"type":"GET_EVERYTHING"}', JSON, 400),
        ("POST", b'{"type":"RESERVE_RESOURCES"}', JSON, 501),
        ("POST", b'{"type":"UNKNOWN"}', JSON, 501),
        ("POST", b'{"type":"UPDATE_WEIGHTS"}', JSON, 400),
        ("POST", b'{"type":"TEARDOWN","teardown":{"framework_id":7}}', JSON, 400),
    ],
)
def test_bad_calls_get_mesos_statuses_and_a_sentence(
    web_runtime, paused_clock, tmp_path, method, body, headers, status
):
    cluster = make_cluster(web_runtime, paused_clock, tmp_path)
    got, answer_headers, answer = request(address(cluster), "/api/v1", body, method, headers)
    assert got == status, answer
    assert answer.endswith(b"\n") and len(answer) > 20
    assert answer_headers["Content-Type"].startswith("text/plain")
    if status == 405:
        assert answer_headers["Allow"] == "POST"
    assert call(address(cluster), {"type": "GET_HEALTH"})[0] == 200  # still serving


# -- SUBSCRIBE ----------------------------------------------------------------------------


def test_subscribe_streams_the_masters_events(web_runtime, paused_clock, tmp_path):
    cluster = make_cluster(web_runtime, paused_clock, tmp_path)
    at = address(cluster)
    register_agent(cluster)
    events = Events(at, accept="application/recordio")
    try:
        assert events.response.status == 200
        assert events.response.getheader("Content-Type").startswith("application/recordio")
        subscribed = events.next("SUBSCRIBED")["subscribed"]
        (agent,) = subscribed["get_state"]["get_agents"]["agents"]
        assert agent["agent_info"]["id"] == {"value": cluster.agent_id}
        assert subscribed["heartbeat_interval_seconds"] == 15

        offer = cluster.register_framework()
        added = events.next("FRAMEWORK_ADDED")["framework_added"]["framework"]
        assert added["framework_info"]["id"] == {"value": cluster.framework_id}
        cluster.accept(offer, cluster.task("t1"))
        task = events.next("TASK_ADDED")["task_added"]["task"]
        assert (task["task_id"], task["state"]) == ({"value": "t1"}, "TASK_STAGING")
        cluster.update("t1", TaskState.TASK_RUNNING)
        updated = events.next("TASK_UPDATED")["task_updated"]
        assert updated["state"] == "TASK_RUNNING"
        assert updated["status"]["task_id"] == {"value": "t1"}
        assert updated["framework_id"] == {"value": cluster.framework_id}

        second = FakeAgent()
        cluster.peers.spawn(second)
        second_id = register_agent(cluster, second, host="host-b")
        added = events.next("AGENT_ADDED")["agent_added"]["agent"]
        assert added["agent_info"]["id"] == {"value": second_id}
        gone = {"type": "MARK_AGENT_GONE", "mark_agent_gone": {"agent_id": {"value": second_id}}}
        assert call(at, gone)[0] == 200
        removed = events.next("AGENT_REMOVED")["agent_removed"]
        assert removed == {"agent_id": {"value": second_id}}

        teardown = {
            "type": "TEARDOWN",
            "teardown": {"framework_id": {"value": cluster.framework_id}},
        }
        assert call(at, teardown)[0] == 200
        removed = events.next("FRAMEWORK_REMOVED")["framework_removed"]
        assert removed["framework_info"]["id"] == {"value": cluster.framework_id}

        paused_clock.advance(15.0)
        cluster.settle()
        events.next("HEARTBEAT")
    finally:
        events.close()


def subscribers(cluster: Cluster) -> int:
    master = cluster.master
    return cluster.runtime.dispatch(master, lambda: master.operator.subscribers).result(5)


def test_a_subscriber_that_leaves_is_forgotten(web_runtime, paused_clock, tmp_path):
    cluster = make_cluster(web_runtime, paused_clock, tmp_path)
    events = Events(address(cluster))
    assert events.response.getheader("Content-Type").startswith("application/json")
    events.next("SUBSCRIBED")
    assert subscribers(cluster) == 1
    events.close()
    deadline = time.monotonic() + 5
    while subscribers(cluster) and time.monotonic() < deadline:
        paused_clock.advance(15.0)  # the heartbeat's write finds the client gone
        cluster.settle()
        time.sleep(0.05)
    assert subscribers(cluster) == 0


def test_tasks_carry_their_discovery_info_on_the_stream_and_in_get_tasks(
    web_runtime, paused_clock, tmp_path
):
    """Mesos's ``Task.discovery``: what service discovery (corral dns) names tasks by."""
    cluster = make_cluster(web_runtime, paused_clock, tmp_path)
    at = address(cluster)
    register_agent(cluster)
    events = Events(at, accept="application/recordio")
    try:
        events.next("SUBSCRIBED")
        offer = cluster.register_framework()
        discovery = DiscoveryInfo(
            name="web", ports=(Port(number=31000, name="http", protocol="tcp"),)
        )
        cluster.accept(offer, cluster.task("t1", discovery=discovery))
        task = events.next("TASK_ADDED")["task_added"]["task"]
        expected = {
            "visibility": "FRAMEWORK",
            "name": "web",
            "ports": {"ports": [{"number": 31000, "name": "http", "protocol": "tcp"}]},
        }
        assert task["discovery"] == expected
        status, body = call(at, {"type": "GET_TASKS"})
        assert status == 200
        (listed,) = body["get_tasks"]["tasks"]
        assert listed["discovery"] == expected
    finally:
        events.close()
