"""The agent's v1 operator API (``POST /api/v1``) over real HTTP: a real agent (a fake master
stands in for the master) runs a command task, and every call is asked as Mesos's tools ask
it: JSON in, ``agent.proto`` Response shapes out, Mesos's statuses for bad requests."""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import stat

import pytest
from aiohttp import web

from corral.ids import AgentID, ExecutorID, FrameworkID, TaskID
from corral.protocol import CommandInfo, ExecutorInfo, TaskInfo
from corral.protocol.messages import RegisterAgent, ShutdownFramework, StatusUpdate
from corral.resources import Resources
from corral.task_states import TaskState
from libprocess import Process, Runtime
from tests.test_agent import Cluster, command_task, wait_until

WAIT = 10.0


@pytest.fixture
def http_runtime():
    with Runtime("127.0.0.1", 0, http_port=0) as running:
        yield running


@pytest.fixture
def running(http_runtime, tmp_path):
    """An agent with one command task running, which wrote ``out.txt`` in its sandbox."""
    cluster = Cluster(http_runtime, tmp_path)
    cluster.master.next(RegisterAgent)
    cluster.run(command_task("web", "printf 'hello sandbox' > out.txt; sleep 30"))
    states = [cluster.update(WAIT).status.state for _ in range(2)]
    assert states == [TaskState.TASK_STARTING, TaskState.TASK_RUNNING]
    runs = tmp_path / "frameworks" / "fw-1" / "executors" / "web" / "runs"
    (cluster.sandbox,) = runs.iterdir()
    wait_until(lambda: (cluster.sandbox / "out.txt").exists(), WAIT)
    yield cluster
    cluster.close()


def request(
    runtime: Runtime,
    body: bytes | dict | None,
    headers: dict[str, str] | None = None,
    method: str = "POST",
    path: str = "/api/v1",
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body); http.client adds no header of its own, so a missing
    Content-Type stays missing."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    given = {"Content-Type": "application/json"} if headers is None else headers
    host, port = runtime.http_address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=WAIT)
    try:
        connection.request(method, path, body=data, headers=given)
        response = connection.getresponse()
        return response.status, dict(response.headers), response.read()
    finally:
        connection.close()


def call(runtime: Runtime, call_type: str, path: str = "/api/v1", **fields) -> dict:
    """A call answered 200 with JSON of type ``call_type``: its ``get_x`` object."""
    status, headers, body = request(runtime, {"type": call_type, **fields}, path=path)
    assert status == 200, body
    assert headers["Content-Type"].startswith("application/json")
    answer = json.loads(body)
    assert answer["type"] == call_type
    return answer[call_type.lower()]


def refused(runtime: Runtime, body, expected: int, needle: str, **options) -> dict[str, str]:
    status, headers, text = request(runtime, body, **options)
    assert status == expected, text
    assert headers["Content-Type"].startswith("text/plain")
    assert needle in text.decode(), (needle, text)
    return headers


def test_health_flags_version_metrics_logging_and_agent(running, http_runtime):
    for path in ("/api/v1", "/slave(1)/api/v1", "/agent/api/v1"):
        assert call(http_runtime, "GET_HEALTH", path=path) == {"healthy": True}
    flags = {f["name"]: f["value"] for f in call(http_runtime, "GET_FLAGS")["flags"]}
    assert flags["work_dir"] == str(running.work_dir) and flags["hostname"] == "test-agent"
    assert all(isinstance(value, str) for value in flags.values())
    version = call(http_runtime, "GET_VERSION")["version_info"]
    assert version["version"] == "1.11.0" and version["build_user"] == "corral"
    metrics = {m["name"]: m["value"] for m in call(http_runtime, "GET_METRICS")["metrics"]}
    assert metrics["slave/tasks_running"] == 1 and metrics["slave/registered"] == 1
    assert call(http_runtime, "GET_METRICS", get_metrics={"timeout": {"nanoseconds": 1}})
    level = call(http_runtime, "GET_LOGGING_LEVEL")["level"]
    assert isinstance(level, int) and level >= 0
    agent_info = call(http_runtime, "GET_AGENT")["agent_info"]
    assert agent_info["id"] == {"value": "test-S0"} and agent_info["hostname"] == "test-agent"
    assert {r["name"] for r in agent_info["resources"]} >= {"cpus", "mem", "ports"}
    assert call(http_runtime, "GET_OPERATIONS") == {"operations": []}
    # The plain endpoints Mesos's agent serves alongside.
    status, _, body = request(http_runtime, None, {}, "GET", "/version")
    assert status == 200 and json.loads(body)["version"] == "1.11.0"
    assert request(http_runtime, None, {}, "GET", "/health")[0] == 200
    status, _, body = request(http_runtime, None, {}, "GET", "/flags")
    assert status == 200 and json.loads(body)["flags"]["hostname"] == "test-agent"


def test_state_frameworks_executors_and_tasks(running, http_runtime):
    state = call(http_runtime, "GET_STATE")
    assert set(state) == {"get_tasks", "get_executors", "get_frameworks"}
    (framework,) = call(http_runtime, "GET_FRAMEWORKS")["frameworks"]
    assert framework["framework_info"]["id"] == {"value": "fw-1"}
    assert framework["framework_info"]["name"] == "agent-tests"
    executors = call(http_runtime, "GET_EXECUTORS")
    (executor,) = executors["executors"]
    assert executor["executor_info"]["executor_id"] == {"value": "web"}
    assert executor["executor_info"]["framework_id"] == {"value": "fw-1"}
    assert executors["completed_executors"] == []
    tasks = call(http_runtime, "GET_TASKS")
    (task,) = tasks["launched_tasks"]
    assert task["task_id"] == {"value": "web"} and task["state"] == "TASK_RUNNING"
    assert task["agent_id"] == {"value": "test-S0"} and "slave_id" not in task
    assert task["framework_id"] == {"value": "fw-1"} and "executor_id" not in task
    assert {r["name"] for r in task["resources"]} == {"cpus", "mem"}
    for kind in ("pending_tasks", "queued_tasks", "terminated_tasks", "completed_tasks"):
        assert tasks[kind] == [], kind
    assert state["get_tasks"] == tasks

    # A task that ends: listed as completed, with its ended executor.
    running.run(command_task("brief", "true"))
    wait_until(lambda: call(http_runtime, "GET_EXECUTORS")["completed_executors"], WAIT)
    (ended,) = call(http_runtime, "GET_EXECUTORS")["completed_executors"]
    assert ended["executor_info"]["executor_id"] == {"value": "brief"}
    assert ended["executor_info"]["framework_id"] == {"value": "fw-1"}
    assert {r["name"] for r in ended["executor_info"]["resources"]} == {"cpus", "mem"}
    (done,) = call(http_runtime, "GET_TASKS")["completed_tasks"]
    assert done["task_id"] == {"value": "brief"} and done["state"] == "TASK_FINISHED"
    assert done["agent_id"] == {"value": "test-S0"}


def test_containers(running, http_runtime):
    (container,) = call(http_runtime, "GET_CONTAINERS")["containers"]
    assert container["container_id"] == {"value": running.sandbox.name}
    assert container["framework_id"] == {"value": "fw-1"}
    assert container["executor_id"] == {"value": "web"}
    assert container["executor_name"].startswith("Command Executor")
    assert container["container_status"]["executor_pid"] > 0
    assert "resource_statistics" in container


def test_wait_and_kill_a_container(running, http_runtime):
    container_id = {"value": running.sandbox.name}
    wait = {"type": "WAIT_CONTAINER", "wait_container": {"container_id": container_id}}
    host, port = http_runtime.http_address.rsplit(":", 1)
    waiting = http.client.HTTPConnection(host, int(port), timeout=WAIT)
    try:
        waiting.request(
            "POST", "/api/v1", json.dumps(wait).encode(), {"Content-Type": "application/json"}
        )
        # A round trip through the agent: the WAIT, sent first, has reached it by then.
        assert call(http_runtime, "GET_HEALTH") == {"healthy": True}
        # A signal other than SIGKILL reaches the main process (sh, which SIGTERM ends).
        assert call_status(http_runtime, "KILL_CONTAINER", container_id, signal.SIGTERM) == 200
        response = waiting.getresponse()
        status, body = response.status, response.read()
    finally:
        waiting.close()
    assert status == 200, body
    answer = json.loads(body)
    assert answer["type"] == "WAIT_CONTAINER"
    exit_status = answer["wait_container"]["exit_status"]
    assert os.WIFSIGNALED(exit_status) and os.WTERMSIG(exit_status) == signal.SIGTERM
    assert running.update(WAIT).status.state is TaskState.TASK_FAILED
    wait_until(lambda: not call(http_runtime, "GET_CONTAINERS")["containers"], WAIT)
    for call_type in ("KILL_CONTAINER", "WAIT_CONTAINER"):
        refused(
            http_runtime,
            {"type": call_type, call_type.lower(): {"container_id": container_id}},
            404,
            "not running on this agent",
        )


def test_kill_container_destroys_it(running, http_runtime):
    container_id = {"value": running.sandbox.name}
    refused(
        http_runtime,
        {"type": "KILL_CONTAINER", "kill_container": {"container_id": container_id, "signal": 0}},
        400,
        "signal",
    )
    assert call_status(http_runtime, "KILL_CONTAINER", container_id, None) == 200
    assert running.update(WAIT).status.state.is_terminal
    wait_until(lambda: not call(http_runtime, "GET_CONTAINERS")["containers"], WAIT)


def call_status(runtime: Runtime, call_type: str, container_id: dict, number) -> int:
    body: dict = {"container_id": container_id}
    if number is not None:
        body["signal"] = int(number)
    status, _, text = request(runtime, {"type": call_type, call_type.lower(): body})
    assert status == 200, text
    return status


def test_list_and_read_files(running, http_runtime):
    directory = str(running.sandbox)
    infos = call(http_runtime, "LIST_FILES", list_files={"path": directory})["file_infos"]
    by_name = {os.path.basename(info["path"]): info for info in infos}
    assert {"out.txt", "stdout", "stderr"} <= set(by_name)
    out = by_name["out.txt"]
    assert out["size"] == len("hello sandbox") and stat.S_ISREG(out["mode"])
    assert out["nlink"] == 1 and out["uid"] and out["gid"]
    assert out["mtime"]["nanoseconds"] > 0
    # Mesos's virtual form of the same directory (relative to the work dir).
    virtual = "/" + str(running.sandbox.relative_to(running.work_dir))
    assert len(call(http_runtime, "LIST_FILES", list_files={"path": virtual})["file_infos"]) == len(
        infos
    )
    file = f"{directory}/out.txt"
    read = call(http_runtime, "READ_FILE", read_file={"path": file, "offset": 6, "length": 4})
    assert read == {"size": 13, "data": base64.b64encode(b"sand").decode()}
    whole = call(http_runtime, "READ_FILE", read_file={"path": file, "offset": "0"})
    assert base64.b64decode(whole["data"]) == b"hello sandbox"
    past = call(http_runtime, "READ_FILE", read_file={"path": file, "offset": 99})
    assert past == {"size": 13, "data": ""}


def test_files_stay_inside_the_sandboxes(running, http_runtime, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret").write_text("not yours")
    (running.sandbox / "escape").symlink_to(outside / "secret")
    (running.sandbox / "escape-dir").symlink_to(outside)
    directory = str(running.sandbox)

    def listing(path):
        return {"type": "LIST_FILES", "list_files": {"path": path}}

    def reading(path, offset=0):
        return {"type": "READ_FILE", "read_file": {"path": path, "offset": offset}}

    cases = [
        (listing(f"{directory}/../../.."), 400, ".."),
        (reading(f"{directory}/../web/out.txt"), 400, ".."),
        (listing("/etc"), 404, "not in a sandbox"),
        (reading("/etc/passwd"), 404, "not in a sandbox"),
        (listing(str(running.work_dir / "meta")), 404, "not in a sandbox"),
        (reading(f"{directory}/missing"), 404, "does not exist"),
        (reading(f"{directory}/escape"), 403, "leads out"),
        (listing(f"{directory}/escape-dir"), 403, "leads out"),
        (reading(directory), 400, "directory"),
        (reading(f"{directory}/out.txt", -1), 400, "offset"),
        (reading(f"{directory}/out.txt", "x"), 400, "offset"),
        ({"type": "READ_FILE", "read_file": {"path": f"{directory}/out.txt"}}, 400, "offset"),
        ({"type": "LIST_FILES", "list_files": {}}, 400, "path"),
        ({"type": "LIST_FILES"}, 400, "list_files"),
    ]
    for body, expected, needle in cases:
        refused(http_runtime, body, expected, needle)
    infos = call(http_runtime, "LIST_FILES", list_files={"path": directory})["file_infos"]
    assert "escape" in {os.path.basename(info["path"]) for info in infos}  # listed, not read


def test_bad_requests_get_mesos_statuses(running, http_runtime):
    headers = refused(http_runtime, None, 405, "POST", method="GET", headers={})
    assert headers["Allow"] == "POST"
    refused(http_runtime, {"type": "GET_HEALTH"}, 400, "Content-Type", headers={})
    refused(
        http_runtime,
        {"type": "GET_HEALTH"},
        415,
        "application/json",
        headers={"Content-Type": "application/x-protobuf"},
    )
    refused(http_runtime, b"{not json", 400, "JSON")
    refused(http_runtime, b"[]", 400, '"type"')
    refused(http_runtime, {"type": "GET_NOTHING"}, 400, "GET_NOTHING")
    refused(http_runtime, {"type": "UNKNOWN"}, 501, "UNKNOWN")
    refused(
        http_runtime,
        {"type": "GET_HEALTH"},
        406,
        "application/json",
        headers={"Content-Type": "application/json", "Accept": "application/x-protobuf"},
    )
    for call_type in ("LAUNCH_NESTED_CONTAINER", "ATTACH_CONTAINER_OUTPUT", "PRUNE_IMAGES"):
        refused(http_runtime, {"type": call_type}, 501, "does not implement")
    refused(http_runtime, {"type": "KILL_CONTAINER", "kill_container": {}}, 400, "container_id")
    # Unknown keys are ignored, a JSON Accept (with parameters) is met.
    status, _, body = request(
        http_runtime,
        {"type": "GET_HEALTH", "extra": 1},
        {"Content-Type": "application/json; charset=utf-8", "Accept": "application/json;q=0.9"},
    )
    assert status == 200 and json.loads(body)["get_health"] == {"healthy": True}
    # Nothing broke: the agent still answers and its task still runs.
    assert call(http_runtime, "GET_TASKS")["launched_tasks"]
    assert not running.master.drain(StatusUpdate)


def test_tasks_of_an_executor_that_has_not_registered_are_queued(running, http_runtime):
    executor = ExecutorInfo(
        executor_id=ExecutorID("silent"), command=CommandInfo(value="sleep 30"), name="silent"
    )
    running.run(
        TaskInfo(
            name="waiting",
            task_id=TaskID("waiting"),
            agent_id=AgentID("test-S0"),
            executor=executor,
            resources=Resources.parse("cpus:0.1;mem:16"),
        )
    )
    wait_until(lambda: call(http_runtime, "GET_TASKS")["queued_tasks"], WAIT)
    (task,) = call(http_runtime, "GET_TASKS")["queued_tasks"]
    assert task["task_id"] == {"value": "waiting"} and task["state"] == "TASK_STAGING"
    assert task["executor_id"] == {"value": "silent"}
    infos = {
        e["executor_info"]["executor_id"]["value"]: e["executor_info"]
        for e in call(http_runtime, "GET_EXECUTORS")["executors"]
    }
    assert infos["silent"]["command"]["value"] == "sleep 30"
    assert infos["silent"]["framework_id"] == {"value": "fw-1"}


class _Squatter(Process):
    """Another process of the runtime (as a master would be) that serves /api/v1 first."""

    def __init__(self) -> None:
        super().__init__("squatter")
        self.route("/api/v1", lambda request: web.Response(text="not the agent"))

    def initialize(self) -> None:
        self.alias("/api/v1", "/api/v1")


def test_an_api_path_another_process_serves_is_left_to_it(http_runtime, tmp_path):
    http_runtime.spawn(_Squatter())
    cluster = Cluster(http_runtime, tmp_path)
    try:
        cluster.master.next(RegisterAgent)
        status, _, body = request(http_runtime, {"type": "GET_HEALTH"})
        assert (status, body) == (200, b"not the agent")
        assert call(http_runtime, "GET_HEALTH", path="/agent/api/v1") == {"healthy": True}
        assert call(http_runtime, "GET_HEALTH", path="/slave(1)/api/v1") == {"healthy": True}
    finally:
        cluster.close()


def test_a_framework_shut_down_is_listed_as_completed(running, http_runtime):
    running.from_master(ShutdownFramework(FrameworkID("fw-1")))
    wait_until(lambda: call(http_runtime, "GET_FRAMEWORKS")["completed_frameworks"], WAIT)
    frameworks = call(http_runtime, "GET_FRAMEWORKS")
    assert frameworks["frameworks"] == []
    (framework,) = frameworks["completed_frameworks"]
    info = framework["framework_info"]
    assert info["id"] == {"value": "fw-1"} and info["name"] == "agent-tests"
    assert info["user"] == "tester"
    (ended,) = call(http_runtime, "GET_EXECUTORS")["completed_executors"]
    assert ended["executor_info"]["executor_id"] == {"value": "web"}
    (task,) = call(http_runtime, "GET_TASKS")["completed_tasks"]
    assert task["task_id"] == {"value": "web"} and task["state"] == "TASK_KILLED"
