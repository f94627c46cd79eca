"""The v1 executor HTTP API: a real agent runs ``examples/v1_executor.py`` (a Mesos-style
executor using only the standard library) as a task's executor; a ``FakeMaster`` stands in
for the master. Wall-clock waits are safety nets only."""

from __future__ import annotations

import base64
import http.client
import json
import os
import sys
import uuid
from pathlib import Path

import pytest

from agent.executor_bridge import ExecutorBridge
from corral.ids import AgentID, ExecutorID, FrameworkID, TaskID
from corral.protocol import CommandInfo, ExecutorInfo, TaskInfo
from corral.protocol.messages import (
    ExecutorToFramework,
    ExitedExecutor,
    FrameworkToExecutor,
    KillTask,
    RegisterAgent,
    ShutdownExecutor,
    StatusUpdate,
)
from corral.task_states import Source, TaskState
from libprocess import Runtime
from tests.test_agent import Cluster, wait_until

REPO = Path(__file__).resolve().parent.parent
WAIT = 20.0
FRAMEWORK_ID = FrameworkID("fw-1")


@pytest.fixture
def http_runtime():
    with Runtime("127.0.0.1", 0, http_port=0) as running:
        yield running


@pytest.fixture
def cluster(http_runtime, tmp_path):
    running = Cluster(http_runtime, tmp_path)
    running.master.next(RegisterAgent)
    yield running
    running.close()


def v1_executor(executor_id: str = "v1-ex") -> ExecutorInfo:
    command = CommandInfo(value=f"{sys.executable} {REPO / 'examples' / 'v1_executor.py'}")
    return ExecutorInfo(executor_id=ExecutorID(executor_id), command=command, name="v1")


def task(task_id: str, data: bytes | None, executor: ExecutorInfo) -> TaskInfo:
    return TaskInfo(
        name=task_id, task_id=TaskID(task_id), agent_id=AgentID("test-S0"), executor=executor,
        data=data,
    )  # fmt: skip


def sandbox(cluster: Cluster, executor_id: str = "v1-ex") -> Path:
    runs = cluster.work_dir / "frameworks" / "fw-1" / "executors" / executor_id / "runs"
    wait_until(lambda: runs.exists() and any(runs.iterdir()), WAIT)
    (path,) = runs.iterdir()
    return path


def stdout(cluster: Cluster, executor_id: str = "v1-ex") -> str:
    return (sandbox(cluster, executor_id) / "stdout").read_text()


def post(runtime: Runtime, body: bytes | dict, headers: dict | None = None, method="POST"):
    """(status, headers, body) of a request to the agent's executor endpoint (http.client:
    it adds no header of its own, so a missing Content-Type stays missing)."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    given = {"Content-Type": "application/json"} if headers is None else headers
    host, port = runtime.http_address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=WAIT)
    try:
        connection.request(method, "/api/v1/executor", data if method == "POST" else None, given)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def ids(executor_id: str = "v1-ex") -> dict:
    return {"framework_id": {"value": "fw-1"}, "executor_id": {"value": executor_id}}


def status_json(task_id: str, state: str, **extra) -> dict:
    return {
        "task_id": {"value": task_id},
        "state": state,
        "uuid": base64.b64encode(uuid.uuid4().bytes).decode(),
        **extra,
    }


def test_a_v1_executor_subscribes_runs_a_task_and_shuts_down(cluster):
    cluster.run(task("quick", None, v1_executor()))
    running = cluster.update(WAIT).status
    finished = cluster.update(WAIT).status
    assert [running.state, finished.state] == [TaskState.TASK_RUNNING, TaskState.TASK_FINISHED]
    for status in (running, finished):
        assert status.source is Source.SOURCE_EXECUTOR
        assert status.executor_id == "v1-ex" and status.agent_id == "test-S0"
        assert status.uuid is not None and len(status.uuid) == 16 and status.timestamp
    # The agent acknowledged both updates to the executor (ACKNOWLEDGED events).
    wait_until(lambda: stdout(cluster).count("event ACKNOWLEDGED") == 2, WAIT)
    seen = stdout(cluster)
    assert seen.index("event SUBSCRIBED") < seen.index("event LAUNCH")
    assert "subscribed on test-agent" in seen
    cluster.from_master(ShutdownExecutor(FRAMEWORK_ID, ExecutorID("v1-ex")))
    _, exited = cluster.master.next(ExitedExecutor, WAIT)
    assert exited.executor_id == "v1-ex" and exited.status == 0
    assert "event SHUTDOWN" in stdout(cluster)


def test_the_executor_gets_mesos_environment_in_a_session_of_its_own(cluster, http_runtime):
    cluster.run(task("env", None, v1_executor()))
    assert cluster.update(WAIT).status.state is TaskState.TASK_RUNNING
    path = sandbox(cluster) / "environment.json"
    wait_until(path.exists, WAIT)
    environment = json.loads(path.read_text())
    directory = str(sandbox(cluster))
    assert environment["MESOS_AGENT_ENDPOINT"] == http_runtime.http_address
    assert environment["MESOS_FRAMEWORK_ID"] == "fw-1"
    assert environment["MESOS_EXECUTOR_ID"] == "v1-ex"
    assert environment["MESOS_DIRECTORY"] == environment["MESOS_SANDBOX"] == directory
    assert environment["MESOS_CHECKPOINT"] == "0"
    assert environment["MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"] == "2secs"
    assert environment["MESOS_SUBSCRIPTION_BACKOFF_MAX"] == "2secs"
    assert environment["MESOS_RECOVERY_TIMEOUT"] == "15mins"
    assert environment["MESOS_SLAVE_ID"] == environment["MESOS_AGENT_ID"] == "test-S0"
    assert environment["MESOS_SLAVE_PID"] == str(cluster.agent_pid)
    # Its container's session (it may kill its process group), never the agent's.
    (container,) = cluster.containerizer.containers()
    leader = cluster.containerizer.status(container).pid
    assert environment["session"] == leader != os.getsid(0)


def test_kill_messages_and_direct_calls_reach_the_v1_executor(cluster, http_runtime):
    cluster.run(task("long", b"sleep 30", v1_executor()))
    assert cluster.update(WAIT).status.state is TaskState.TASK_RUNNING
    cluster.from_master(
        FrameworkToExecutor(AgentID("test-S0"), FRAMEWORK_ID, ExecutorID("v1-ex"), b"hi")
    )
    _, reply = cluster.master.next(ExecutorToFramework, WAIT)
    assert reply.data == b"echo: hi" and reply.agent_id == "test-S0"
    assert reply.executor_id == "v1-ex" and reply.framework_id == "fw-1"
    # A call made for the subscribed executor is answered 202 with an empty body, and the
    # update reaches the master with the agent's fields filled in.
    call = {**ids(), "type": "UPDATE", "update": {"status": status_json("long", "TASK_RUNNING",
            message="still going")}}  # fmt: skip
    status, headers, body = post(http_runtime, call)
    assert (status, headers["Content-Length"], body) == (202, "0", b"")
    again = cluster.update(WAIT).status
    assert again.message == "still going" and again.agent_id == "test-S0"
    assert again.source is Source.SOURCE_EXECUTOR and again.executor_id == "v1-ex"
    cluster.from_master(KillTask(FRAMEWORK_ID, TaskID("long")))
    killed = cluster.update(WAIT).status
    assert killed.state is TaskState.TASK_KILLED and killed.source is Source.SOURCE_EXECUTOR
    assert "event KILL" in stdout(cluster)


def test_a_new_subscription_replaces_the_old_one_and_tasks_carry_on(cluster, http_runtime):
    cluster.run(task("steady", b"sleep 30", v1_executor()))
    assert cluster.update(WAIT).status.state is TaskState.TASK_RUNNING
    cluster.from_master(
        FrameworkToExecutor(AgentID("test-S0"), FRAMEWORK_ID, ExecutorID("v1-ex"), b"resubscribe")
    )
    wait_until(lambda: stdout(cluster).count("event SUBSCRIBED") == 2, WAIT)

    def bridges() -> list:
        return [p for p in list(http_runtime._processes.values()) if isinstance(p, ExecutorBridge)]

    wait_until(lambda: len(bridges()) == 1, WAIT)
    # The old connection's end failed nothing; the new bridge carries messages both ways.
    cluster.from_master(
        FrameworkToExecutor(AgentID("test-S0"), FRAMEWORK_ID, ExecutorID("v1-ex"), b"again")
    )
    _, reply = cluster.master.next(ExecutorToFramework, WAIT)
    assert reply.data == b"echo: again"
    assert cluster.master.drain(StatusUpdate) == []
    cluster.from_master(KillTask(FRAMEWORK_ID, TaskID("steady")))
    assert cluster.update(WAIT).status.state is TaskState.TASK_KILLED


def test_bad_calls_get_mesos_statuses_and_a_reason(cluster, http_runtime):
    subscribe = {**ids(), "type": "SUBSCRIBE", "subscribe": {}}
    cases = [
        (post(http_runtime, b"", method="GET"), 405, "POST"),
        (post(http_runtime, subscribe, headers={}), 400, "Content-Type"),
        (post(http_runtime, subscribe, {"Content-Type": "text/plain"}), 415, "application/json"),
        (post(http_runtime, b"{not json"), 400, "JSON"),
        (post(http_runtime, {**ids(), "subscribe": {}}), 400, "'type'"),
        (post(http_runtime, {"type": "SUBSCRIBE", "subscribe": {}}), 400, "framework_id"),
        (post(http_runtime, {**ids(), "type": "SUBSCRIBE"}), 400, "'subscribe'"),
        (post(http_runtime, {**ids(), "type": "FLY"}), 400, "FLY"),
        (
            post(
                http_runtime,
                subscribe,
                {"Content-Type": "application/json", "Accept": "application/x-protobuf"},
            ),
            406,
            "Accept",
        ),
        (post(http_runtime, {**ids(), "type": "MESSAGE", "message": {}}), 400, "data"),
    ]
    no_uuid = status_json("t", "TASK_RUNNING")
    del no_uuid["uuid"]
    for status, needle in (
        (no_uuid, "uuid"),
        (status_json("t", "TASK_STAGING"), "TASK_STAGING"),
        (status_json("t", "TASK_RUNNING", source="SOURCE_MASTER"), "SOURCE_EXECUTOR"),
        (status_json("t", "TASK_RUNNING", executor_id={"value": "other"}), "does not match"),
        (status_json("t", "TASK_RUNNING"), "no executor v1-ex"),  # nothing subscribed
    ):
        call = {**ids(), "type": "UPDATE", "update": {"status": status}}
        cases.append((post(http_runtime, call), 400, needle))
    for (status, headers, body), expected, needle in cases:
        text = body.decode()
        assert status == expected, (expected, text)
        assert needle in text, (needle, text)
        assert headers["Content-Type"].startswith("text/plain")
    # A subscription for an executor this agent does not run: refused, saying why.
    status, headers, body = post(http_runtime, subscribe)
    assert status == 400 and headers["Content-Type"].startswith("text/plain")
    assert "framework fw-1 is not known on this agent" in body.decode()
