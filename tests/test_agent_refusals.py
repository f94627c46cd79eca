"""Refusals answer their sender: a master that refuses an agent for good stops it
(``ShutdownAgent``), and an executor the agent refuses learns why (``ShutdownExecutor.reason``,
or the body of the HTTP error that answers its SUBSCRIBE).

A real agent (posix containerizer, real processes) with a ``FakeMaster`` standing in for the
master (tests/agent_actors.py); test actors (tests/master_actors.py's ``Recorder``) play the
executors and strangers. Wall-clock waits are safety nets only.
"""

from __future__ import annotations

import http.client
import itertools
import json
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest
from structlog.testing import capture_logs

from agent import AgentProcess
from containerizer import PosixContainerizer
from corral.executor import DriverStatus, Executor, ExecutorDriver
from corral.ids import AgentID, ExecutorID, FrameworkID, TaskID
from corral.protocol import CommandInfo, ExecutorInfo, TaskInfo
from corral.protocol.messages import (
    ExecutorRegistered,
    RegisterAgent,
    RegisterExecutor,
    ReregisterExecutor,
    ShutdownAgent,
    ShutdownExecutor,
    StatusUpdate,
)
from corral.resources import Resources
from corral.task_states import TaskState
from corral.v1 import recordio
from libprocess import Runtime
from tests.agent_actors import RefusingMaster
from tests.master_actors import Recorder
from tests.test_agent import Cluster, command_task, wait_until

WAIT = 10.0
FW = FrameworkID("fw-1")
_executors = itertools.count(1)
REASON = "agent test-S0 was marked gone by the operator; it may not come back"


@pytest.fixture
def cluster(runtime, tmp_path):
    running = Cluster(runtime, tmp_path)
    running.master.next(RegisterAgent)
    yield running
    running.close()


def actor(runtime: Runtime, name: str) -> Recorder:
    recorder = Recorder(name)
    runtime.spawn(recorder)
    return recorder


def say(runtime: Runtime, recorder: Recorder, to, message) -> None:
    runtime.dispatch(recorder, recorder.say, to, message)


def silent_executor(executor_id: str = "silent") -> ExecutorInfo:
    """A custom executor that never registers by itself: the test registers for it."""
    return ExecutorInfo(executor_id=ExecutorID(executor_id), command=CommandInfo(value="sleep 30"))


def on(executor: ExecutorInfo, task_id: str) -> TaskInfo:
    return TaskInfo(
        name=task_id,
        task_id=TaskID(task_id),
        agent_id=AgentID("test-S0"),
        resources=Resources.parse("cpus:0.1;mem:16"),
        executor=executor,
    )


def executor_state(cluster: Cluster, executor_id: str) -> str | None:
    def read():
        framework = cluster.agent.frameworks.get(FW)
        executor = None if framework is None else framework.executors.get(ExecutorID(executor_id))
        return None if executor is None else executor.state.value

    return cluster.runtime.dispatch(cluster.agent, read).result(5)


def launched_silent(cluster: Cluster, executor_id: str = "silent") -> None:
    cluster.run(on(silent_executor(executor_id), f"{executor_id}-task"))
    wait_until(lambda: executor_state(cluster, executor_id) == "REGISTERING", WAIT)


# -- a refused agent stops ------------------------------------------------------------------


def test_shutdown_agent_from_its_master_destroys_containers_forgets_the_id_and_stops(cluster):
    cluster.run(command_task("doomed", "sleep 30"))
    assert cluster.update().status.state is TaskState.TASK_STARTING
    assert cluster.update().status.state is TaskState.TASK_RUNNING
    (container,) = cluster.containerizer.containers()
    pid = cluster.containerizer.status(container).pid
    meta = cluster.options.meta_dir
    assert (meta / "agent.msgpack").exists()
    with capture_logs() as logs:
        cluster.from_master(ShutdownAgent(REASON))
        cluster.runtime.wait(cluster.agent_pid).result(WAIT)
    (refused,) = [entry for entry in logs if entry["event"] == "agent_refused"]
    assert refused["log_level"] == "error" and refused["reason"] == REASON
    assert cluster.agent.refusal == REASON
    assert cluster.containerizer.containers() == set()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not (meta / "agent.msgpack").exists()

    # Started again on the same work directory, it registers as a new agent.
    again = AgentProcess(cluster.options, PosixContainerizer(), id="agent-again")
    cluster.runtime.spawn(again)
    try:
        _, registration = cluster.master.next(RegisterAgent)
        assert registration.agent.id is None
    finally:
        cluster.runtime.dispatch(again, again.shutdown, 0.5).result(WAIT)


def test_an_agent_still_registering_stops_when_its_master_refuses_it(runtime, tmp_path):
    cluster = Cluster(runtime, tmp_path, answer=False)
    try:
        cluster.master.next(RegisterAgent)  # asked, not answered: it keeps trying
        cluster.from_master(ShutdownAgent(REASON))
        runtime.wait(cluster.agent_pid).result(WAIT)
        assert cluster.agent.refusal == REASON
    finally:
        cluster.close()


def test_a_forged_shutdown_agent_is_ignored_naming_its_sender(cluster):
    cluster.run(command_task("survivor", "sleep 30"))
    assert cluster.update().status.state is TaskState.TASK_STARTING
    assert cluster.update().status.state is TaskState.TASK_RUNNING
    forger = actor(cluster.runtime, "forger")
    with capture_logs() as logs:
        say(cluster.runtime, forger, cluster.agent_pid, ShutdownAgent("stop at once"))
        cluster.runtime.settle()
    (ignored,) = [entry for entry in logs if entry["event"] == "shutdown_agent_ignored"]
    assert ignored["sender"] == forger.pid and ignored["log_level"] == "warning"
    assert cluster.agent.refusal is None and cluster.agent.registered
    assert cluster.runtime.wait(cluster.agent_pid).is_pending()  # it serves on
    assert len(cluster.containerizer.containers()) == 1
    assert (cluster.options.meta_dir / "agent.msgpack").exists()


def test_corral_agent_exits_non_zero_saying_why_the_master_refused_it(tmp_path):
    with Runtime("127.0.0.1", 0) as runtime:
        master = RefusingMaster(REASON)
        runtime.spawn(master)
        corral = Path(sys.executable).with_name("corral")
        work_dir = str(tmp_path / "agent")
        command = [str(corral), "agent", "--master", str(master.pid), "--port", "0",
                   "--work-dir", work_dir, "--resources", "cpus:1;mem:128"]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"the master refused this agent for good: {REASON}." in done.stderr
    assert "start it again and it registers as a new agent" in done.stderr
    assert not (tmp_path / "agent" / "meta" / "agent.msgpack").exists()


# -- a refused executor learns why ------------------------------------------------------------


def refusal(cluster: Cluster, message, sender: Recorder | None = None) -> str:
    """Send a (re-)registration from a test actor; the reason of the ShutdownExecutor that
    answers it (also logged, with the same reason)."""
    sender = sender or actor(cluster.runtime, f"executor-{next(_executors)}")
    with capture_logs() as logs:
        say(cluster.runtime, sender, cluster.agent_pid, message)
        answer = sender.next(ShutdownExecutor, WAIT)
    assert (answer.framework_id, answer.executor_id) == (message.framework_id, message.executor_id)
    (logged,) = [entry for entry in logs if entry["event"] == "executor_registration_refused"]
    assert logged["reason"] == answer.reason and logged["log_level"] == "warning"
    return answer.reason


def test_each_refused_registration_says_why(cluster):
    # An unknown framework, then (with fw-1 known through a command task) an unknown executor.
    reason = refusal(cluster, RegisterExecutor(FrameworkID("nope"), ExecutorID("e1")))
    assert reason.startswith("framework nope is not known on this agent")
    cluster.run(command_task("sleeper", "sleep 30"))
    assert cluster.update().status.state is TaskState.TASK_STARTING
    reason = refusal(cluster, RegisterExecutor(FW, ExecutorID("ghost")))
    assert reason.startswith("framework fw-1 has no executor ghost on this agent")
    # A command task's executor: the agent runs it itself.
    reason = refusal(cluster, RegisterExecutor(FW, ExecutorID("sleeper")))
    assert "is the command executor of task sleeper" in reason
    # The wrong state, named: a registering executor does not re-register...
    launched_silent(cluster)
    reason = refusal(cluster, ReregisterExecutor(FW, ExecutorID("silent")))
    assert "silent of framework fw-1 is REGISTERING on this agent" in reason
    # ... and registers once.
    driver = actor(cluster.runtime, "driver")
    say(cluster.runtime, driver, cluster.agent_pid, RegisterExecutor(FW, ExecutorID("silent")))
    assert driver.next(ExecutorRegistered, WAIT).agent_id == "test-S0"
    reason = refusal(cluster, RegisterExecutor(FW, ExecutorID("silent")))
    assert "is RUNNING on this agent: it has registered already" in reason
    assert executor_state(cluster, "silent") == "RUNNING"  # the registered one runs on


def test_the_executor_driver_hears_why_it_was_refused(cluster):
    class Refused(Executor):
        def __init__(self) -> None:
            self.errors: list[str] = []
            self.shut_down = threading.Event()

        def error(self, driver, message):
            self.errors.append(message)

        def shutdown(self, driver):
            self.shut_down.set()

    executor = Refused()
    environment = {
        "CORRAL_AGENT_PID": str(cluster.agent_pid),
        "CORRAL_FRAMEWORK_ID": "fw-1",
        "CORRAL_EXECUTOR_ID": "stray",
    }
    driver = ExecutorDriver(executor, environment)
    driver.start()
    assert executor.shut_down.wait(WAIT)
    assert driver.join() is DriverStatus.ABORTED
    (message,) = executor.errors
    assert message.startswith("framework fw-1 is not known on this agent")


@pytest.fixture
def http_runtime():
    with Runtime("127.0.0.1", 0, http_port=0) as running:
        yield running


@pytest.fixture
def http_cluster(http_runtime, tmp_path):
    running = Cluster(http_runtime, tmp_path)
    running.master.next(RegisterAgent)
    yield running
    running.close()


def subscribe(runtime: Runtime, executor_id: str) -> http.client.HTTPResponse:
    """An HTTP executor's SUBSCRIBE, its stream left open (close the response to end it)."""
    call = {"type": "SUBSCRIBE", "subscribe": {}, "framework_id": {"value": "fw-1"},
            "executor_id": {"value": executor_id}}  # fmt: skip
    host, port = runtime.http_address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=WAIT)
    connection.request(
        "POST", "/api/v1/executor", json.dumps(call).encode(), {"Content-Type": "application/json"}
    )
    return connection.getresponse()


def test_only_the_latest_subscription_registers_for_an_http_executor(http_cluster):
    cluster = http_cluster
    launched_silent(cluster)
    stream = subscribe(cluster.runtime, "silent")
    try:
        assert stream.status == 200
        wait_until(lambda: executor_state(cluster, "silent") == "RUNNING", WAIT)  # its bridge
        reason = refusal(cluster, RegisterExecutor(FW, ExecutorID("silent")))
        assert "subscribed over HTTP; only the bridge of its latest subscription" in reason
    finally:
        stream.close()


def test_refused_subscriptions_are_http_errors_that_say_why(http_cluster, paused_clock):
    cluster = http_cluster
    cluster.run(command_task("sleeper", "sleep 30"))
    assert cluster.update().status.state is TaskState.TASK_STARTING
    answer = subscribe(cluster.runtime, "sleeper")
    assert answer.status == 400 and answer.headers["Content-Type"].startswith("text/plain")
    assert "is the command executor of task sleeper" in answer.read().decode()
    answer = subscribe(cluster.runtime, "ghost")
    assert answer.status == 400
    assert "framework fw-1 has no executor ghost on this agent" in answer.read().decode()
    # An executor being shut down (it was asked to exit; the paused clock holds the grace).
    launched_silent(cluster)
    driver = actor(cluster.runtime, "driver")
    say(cluster.runtime, driver, cluster.agent_pid, RegisterExecutor(FW, ExecutorID("silent")))
    driver.next(ExecutorRegistered, WAIT)
    cluster.from_master(ShutdownExecutor(FW, ExecutorID("silent")))
    driver.next(ShutdownExecutor, WAIT)
    assert executor_state(cluster, "silent") == "SHUTTING_DOWN"
    answer = subscribe(cluster.runtime, "silent")
    assert answer.status == 409
    text = answer.read().decode()
    assert "silent of framework fw-1 is SHUTTING_DOWN on this agent" in text
    assert "may not register again" in text


def events(stream: http.client.HTTPResponse, until: str) -> list[dict]:
    """The v1 events read from an open subscription, up to the first of type ``until``."""
    decoder, seen = recordio.Decoder(), []
    while not seen or seen[-1]["type"] != until:
        chunk = stream.read1(65536)
        assert chunk, f"the stream ended before a {until} event: {seen}"
        seen.extend(json.loads(record) for record in decoder.feed(chunk))
    return seen


def test_a_refused_bridge_tells_its_http_executor_why_before_the_shutdown(http_cluster):
    """A bridge is refused when things change between SUBSCRIBE and its registration; the
    reason reaches the executor as an ERROR event, then SHUTDOWN (the agent's
    ShutdownExecutor with a reason, as it sends it)."""
    cluster = http_cluster
    launched_silent(cluster)
    stream = subscribe(cluster.runtime, "silent")
    try:
        assert [event["type"] for event in events(stream, "SUBSCRIBED")] == ["SUBSCRIBED"]

        def bridge_pid():
            return cluster.agent.frameworks[FW].executors[ExecutorID("silent")].bridge.pid

        pid = cluster.runtime.dispatch(cluster.agent, bridge_pid).result(5)
        refused = ShutdownExecutor(FW, ExecutorID("silent"), reason="why it must stop")
        cluster.runtime.dispatch(cluster.agent, cluster.agent.send_message, pid, refused)
        error, shutdown = events(stream, "SHUTDOWN")[-2:]
        assert error == {"type": "ERROR", "error": {"message": "why it must stop"}}
        assert shutdown == {"type": "SHUTDOWN"}
    finally:
        stream.close()


def test_no_update_reaches_the_master_from_refused_executors(cluster):
    refusal(cluster, RegisterExecutor(FrameworkID("nope"), ExecutorID("e1")))
    cluster.runtime.settle()
    assert cluster.master.drain(StatusUpdate) == []
