"""Health checks and checks of the agent's command tasks, on a paused runtime clock.

A real agent (posix containerizer, real processes) with a ``FakeMaster``; the probes hit real
servers in this test process (a TCP listener that counts connections, an HTTP server whose
answer the test sets) or run real commands next to the task. The clock is advanced by hand,
so the delay, the interval, the grace period and the consecutive failures are exact; waits
for what real processes and sockets do are wall-clock safety nets only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.executor_run import ExecutorRun
from corral.ids import AgentID, ExecutorID, FrameworkID, TaskID
from corral.protocol import (
    CheckInfo,
    CheckType,
    CommandCheck,
    CommandInfo,
    ExecutorInfo,
    ExecutorType,
    HealthCheck,
    HttpCheck,
    TaskGroupInfo,
    TaskInfo,
    TcpCheck,
)
from corral.protocol.messages import KillTask, RegisterAgent, RunTaskGroup, StatusUpdate
from corral.task_states import Reason, Source, TaskState
from tests.test_agent import FRAMEWORK, REPO, Cluster, command_task, wait_until


class Listener:
    """A TCP port on 127.0.0.1 that accepts and counts connections until closed."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        """Stop listening (shutdown wakes the blocked accept; close alone would not)."""
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)
        self.socket.close()
        self._thread.join(5)


class HttpServer:
    """An HTTP server on 127.0.0.1 answering GETs with ``code``."""

    def __init__(self) -> None:
        outer = self
        self.code = 200
        self.paths: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.paths.append(self.path)
                self.send_response(outer.code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def agent(runtime, tmp_path, paused_clock):
    cluster = Cluster(runtime, tmp_path)
    cluster.master.next(RegisterAgent)
    yield cluster
    cluster.close()


def advance(clock, seconds: float) -> None:
    clock.advance(seconds)
    clock.settle()


def running(cluster: Cluster) -> StatusUpdate:
    assert cluster.update().status.state is TaskState.TASK_STARTING
    update = cluster.update()
    assert update.status.state is TaskState.TASK_RUNNING
    return update


def no_update(cluster: Cluster, wait: float = 0.3) -> None:
    time.sleep(wait)  # room for a probe and its update, had one been due
    assert cluster.master.drain(StatusUpdate) == []


def test_tcp_health_check_timing_and_kill(agent, paused_clock):
    listener = Listener()
    try:
        check = HealthCheck(
            type=CheckType.TCP,
            tcp=TcpCheck(port=listener.port),
            delay_seconds=5.0,
            interval_seconds=2.0,
            timeout_seconds=1.0,
            consecutive_failures=2,
            grace_period_seconds=0.0,
        )
        task = command_task("tcp-checked", "sleep 60")
        agent.run(_with(task, health_check=check))
        first_running = running(agent)
        assert first_running.status.healthy is None

        advance(paused_clock, 4.9)
        no_update(agent)
        assert listener.accepted == 0, "no check before delay_seconds"

        advance(paused_clock, 0.1)
        healthy = agent.update().status
        wait_until(lambda: listener.accepted == 1)  # the accepting thread counts it soon
        assert healthy.state is TaskState.TASK_RUNNING
        assert healthy.healthy is True
        assert healthy.reason is Reason.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED
        assert healthy.source is Source.SOURCE_EXECUTOR

        advance(paused_clock, 2.0)
        wait_until(lambda: listener.accepted == 2)
        no_update(agent)  # still healthy: nothing to report

        listener.close()
        advance(paused_clock, 2.0)
        unhealthy = agent.update().status
        assert (unhealthy.state, unhealthy.healthy) == (TaskState.TASK_RUNNING, False)
        assert unhealthy.reason is Reason.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED

        advance(paused_clock, 2.0)
        second = agent.update().status
        assert (second.state, second.healthy) == (TaskState.TASK_RUNNING, False)
        killed = agent.update().status
        assert killed.state is TaskState.TASK_KILLED
        assert killed.healthy is False
        assert killed.reason is None  # as Mesos: no reason, the command's end as message
        assert "SIGTERM" in killed.message
        wait_until(lambda: agent.containerizer.containers() == set())
    finally:
        listener.close()


def _with(task, **fields):
    return dataclasses.replace(task, **fields)


def test_http_health_check_grace_period_then_path_and_status(agent, paused_clock):
    server = HttpServer()
    server.code = 503
    try:
        check = HealthCheck(
            type=CheckType.HTTP,
            http=HttpCheck(port=server.port, path="/ready"),
            delay_seconds=0.0,
            interval_seconds=1.0,
            consecutive_failures=1,
            grace_period_seconds=3.0,
        )
        agent.run(_with(command_task("http-checked", "sleep 60"), health_check=check))
        running(agent)
        for probes in (1, 2, 3):  # t = 0, 1, 2: failures within the grace period are ignored
            wait_until(lambda probes=probes: len(server.paths) == probes)
            no_update(agent)
            if probes < 3:
                advance(paused_clock, 1.0)
        assert set(server.paths) == {"/ready"}
        server.code = 302  # 2xx and 3xx pass
        advance(paused_clock, 1.0)
        healthy = agent.update().status
        assert healthy.healthy is True
        server.code = 500
        advance(paused_clock, 1.0)
        assert agent.update().status.healthy is False
        killed = agent.update().status
        assert (killed.state, killed.healthy) == (TaskState.TASK_KILLED, False)
    finally:
        server.close()


def test_general_check_reports_changes_and_never_kills(agent, paused_clock, tmp_path):
    flag = tmp_path / "flag"
    check = CheckInfo(
        type=CheckType.COMMAND,
        command=CommandCheck(CommandInfo(value=f"test -f {flag}")),
        delay_seconds=1.0,
        interval_seconds=1.0,
    )
    agent.run(_with(command_task("checked", "sleep 60"), check=check))
    starting = agent.update().status
    assert starting.check_status is not None and starting.check_status.to_wire() == {
        "type": "COMMAND",
        "command": {},
    }
    first = agent.update().status
    assert first.state is TaskState.TASK_RUNNING
    assert first.check_status.to_wire() == {"type": "COMMAND", "command": {}}

    advance(paused_clock, 1.0)
    failing = agent.update().status
    assert failing.reason is Reason.REASON_TASK_CHECK_STATUS_UPDATED
    assert failing.check_status.command.exit_code == 1
    for _ in range(3):  # the same result again and again: no update, and no kill
        advance(paused_clock, 1.0)
        no_update(agent)
    flag.write_text("up")
    advance(paused_clock, 1.0)
    passing = agent.update().status
    assert (passing.state, passing.check_status.command.exit_code) == (TaskState.TASK_RUNNING, 0)
    assert passing.healthy is None
    assert agent.containerizer.containers() != set(), "a general check never kills"


def test_command_health_check_has_the_task_environment(agent, paused_clock):
    check = HealthCheck(
        type=CheckType.COMMAND,
        command=CommandInfo(
            value='test "$CORRAL_TASK_ID" = env-checked && test -n "$MESOS_SANDBOX"'
        ),
        delay_seconds=0.5,
        interval_seconds=1.0,
        grace_period_seconds=0.0,
        consecutive_failures=1,
    )
    agent.run(_with(command_task("env-checked", "sleep 60"), health_check=check))
    running(agent)
    advance(paused_clock, 0.5)
    assert agent.update().status.healthy is True


def test_killing_a_task_stops_its_checks(agent, paused_clock):
    listener = Listener()
    try:
        check = HealthCheck(
            type=CheckType.TCP,
            tcp=TcpCheck(port=listener.port),
            delay_seconds=1.0,
            interval_seconds=1.0,
            grace_period_seconds=0.0,
        )
        agent.run(_with(command_task("stopped", "sleep 60"), health_check=check))
        running(agent)
        agent.from_master(KillTask(FrameworkID("fw-1"), TaskID("stopped")))
        killed = agent.update().status
        assert killed.state is TaskState.TASK_KILLED
        assert killed.healthy is None
        advance(paused_clock, 5.0)
        no_update(agent)
        assert listener.accepted == 0
    finally:
        listener.close()


def test_a_custom_executors_health_and_check_status_pass_through(agent):
    """Mesos leaves checks to custom executors: what they send arrives unchanged."""
    executor = ExecutorInfo(
        executor_id=ExecutorID("reporter"),
        command=CommandInfo(
            value=f"{sys.executable} {REPO / 'tests' / 'health_reporting_executor.py'}"
        ),
    )
    agent.run(
        TaskInfo(name="own", task_id=TaskID("own"), agent_id=AgentID("test-S0"), executor=executor)
    )
    statuses = [agent.update(timeout=20).status for _ in range(3)]
    assert [s.state for s in statuses] == [
        TaskState.TASK_RUNNING,
        TaskState.TASK_RUNNING,
        TaskState.TASK_FINISHED,
    ]
    reported = statuses[1]
    assert reported.healthy is False
    assert reported.reason is Reason.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED
    assert reported.check_status.to_wire() == {"type": "HTTP", "http": {"status_code": 418}}
    assert statuses[0].healthy is None and statuses[0].check_status is None


def test_tasks_of_a_default_executor_group_are_checked_each(agent, paused_clock):
    """Each task of a task group under the default executor gets its own checks, as the
    default executor runs them: one becomes healthy, the other is killed unhealthy."""
    closed = Listener()
    closed.close()  # nothing listens on its port any more
    passing = HealthCheck(
        type=CheckType.COMMAND,
        command=CommandInfo(value="true"),
        delay_seconds=1.0,
        grace_period_seconds=0.0,
    )
    failing = HealthCheck(
        type=CheckType.TCP,
        tcp=TcpCheck(port=closed.port),
        delay_seconds=1.0,
        grace_period_seconds=0.0,
        consecutive_failures=1,
    )
    group = TaskGroupInfo(
        (
            _with(command_task("good", "sleep 60"), health_check=passing),
            _with(command_task("bad", "sleep 60"), health_check=failing),
        )
    )
    default = ExecutorInfo(executor_id=ExecutorID("group"), type=ExecutorType.DEFAULT)
    agent.from_master(RunTaskGroup(FRAMEWORK, default, group))
    seen: dict[str, list] = {"good": [], "bad": []}
    while len(seen["good"]) < 2 or len(seen["bad"]) < 2:  # STARTING, RUNNING each
        status = agent.update().status
        seen[status.task_id].append(status)
    advance(paused_clock, 1.0)
    for _ in range(3):  # good: healthy; bad: unhealthy, then killed
        status = agent.update().status
        seen[status.task_id].append(status)
    assert [(s.state, s.healthy) for s in seen["good"][2:]] == [(TaskState.TASK_RUNNING, True)]
    assert [(s.state, s.healthy) for s in seen["bad"][2:]] == [
        (TaskState.TASK_RUNNING, False),
        (TaskState.TASK_KILLED, False),
    ]


def test_a_kill_by_health_check_is_checkpointed(tmp_path):
    """An agent restarted during the kill still reports the end ``healthy: false``."""
    task = command_task("doomed", "sleep 60")
    info = ExecutorInfo(executor_id=ExecutorID("doomed"), command=task.command)
    run = ExecutorRun.starting(FrameworkID("fw-1"), info, True, task, tmp_path)
    run.tasks[task.task_id].killed_unhealthy = True
    again = ExecutorRun.from_record(FrameworkID("fw-1"), run.record())
    assert again.tasks[task.task_id].killed_unhealthy
    run.tasks[task.task_id].killed_unhealthy = False
    assert (
        not ExecutorRun.from_record(FrameworkID("fw-1"), run.record())
        .tasks[task.task_id]
        .killed_unhealthy
    )
