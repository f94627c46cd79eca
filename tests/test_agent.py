"""The agent actor with a real runtime, real processes and the posix containerizer.

A ``FakeMaster`` (tests/agent_actors.py) stands in for the master. Protocol timeouts run on a
paused runtime clock where a test checks them; wall-clock waits are safety nets only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest

from agent import AgentOptions, AgentProcess, agent_resources, detect_resources
from containerizer import PosixContainerizer
from corral.executor import Executor, ExecutorDriver, ExecutorEnvironmentError
from corral.ids import AgentID, ExecutorID, FrameworkID, TaskID
from corral.protocol import (
    CommandInfo,
    EnvironmentVariable,
    ExecutorInfo,
    FrameworkInfo,
    KillPolicy,
    TaskInfo,
)
from corral.protocol.messages import (
    AgentRegistered,
    ExecutorToFramework,
    ExitedExecutor,
    FrameworkToExecutor,
    KillTask,
    PingAgent,
    PongAgent,
    RegisterAgent,
    ReregisterAgent,
    RunTask,
    ShutdownExecutor,
    ShutdownFramework,
    StatusUpdate,
)
from corral.resources import Resources
from corral.task_states import Reason, Source, TaskState
from libprocess import Runtime
from tests.agent_actors import FakeMaster, StateServingMaster

REPO = Path(__file__).resolve().parent.parent
FRAMEWORK = FrameworkInfo(user="tester", name="agent-tests", id=FrameworkID("fw-1"))


class Cluster:
    """A fake master and an agent in one runtime; the test drives the master."""

    def __init__(self, runtime, work_dir: Path, answer: bool = True, auto_ack: bool = True):
        self.runtime = runtime
        self.work_dir = work_dir
        self.master = FakeMaster(answer=answer, auto_ack=auto_ack)
        master_pid = runtime.spawn(self.master)
        self.options = AgentOptions(
            master=str(master_pid),
            work_dir=work_dir,
            resources="cpus:2;mem:1024;disk:1024;ports:[31000-31010]",
            hostname="test-agent",
            attributes="rack:r1",
            executor_shutdown_grace=2.0,
        )
        self.containerizer = PosixContainerizer()
        self.agent = AgentProcess(self.options, self.containerizer)
        self.agent_pid = runtime.spawn(self.agent)

    def from_master(self, message) -> None:
        """Send ``message`` to the agent from the master's pid."""
        self.runtime.dispatch(self.master, self.master.send_message, self.agent_pid, message)

    def run(self, task: TaskInfo) -> None:
        self.from_master(RunTask(FRAMEWORK, task, "scheduler(1)@127.0.0.1:9"))

    def ack(self, update: StatusUpdate) -> None:
        self.runtime.dispatch(self.master, self.master.acknowledge, update)

    def update(self, timeout: float = 10.0) -> StatusUpdate:
        return self.master.next(StatusUpdate, timeout)[1]

    def close(self) -> None:
        """Destroy every container, then kill by pid whatever might be left."""
        pids = [self.containerizer.status(c).pid for c in self.containerizer.containers()]
        with contextlib.suppress(Exception):
            self.runtime.dispatch(self.agent, self.agent.shutdown, 0.5).result(15)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def cluster(runtime, tmp_path):
    running = Cluster(runtime, tmp_path)
    running.master.next(RegisterAgent)
    yield running
    running.close()


def wait_until(condition, timeout: float = 5.0) -> None:
    """Poll a condition that real processes make true (a wall-clock safety net)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.01)


def command_task(task_id: str, command: str, grace: float | None = None) -> TaskInfo:
    return TaskInfo(
        name=task_id,
        task_id=TaskID(task_id),
        agent_id=AgentID("test-S0"),
        resources=Resources.parse("cpus:0.1;mem:32"),
        command=CommandInfo(value=command),
        kill_policy=None if grace is None else KillPolicy(grace),
    )


def test_registration_is_retried_with_backoff_on_the_runtime_clock(runtime, tmp_path, paused_clock):
    cluster = Cluster(runtime, tmp_path, answer=False)
    try:
        cluster.master.next(RegisterAgent)
        # Backoff 1 s, doubling: attempts at t = 0, 1, 3, 7, 15.
        for step, expected in ((0.9, 0), (0.1, 1), (1.9, 0), (0.1, 1), (4.0, 1)):
            paused_clock.advance(step)
            paused_clock.settle()
            assert len(cluster.master.drain(RegisterAgent)) == expected, step
        cluster.master.answer = True
        paused_clock.advance(8.0)
        paused_clock.settle()
        _, message = cluster.master.next(RegisterAgent)
        assert message.agent.id is None
        assert message.agent.hostname == "test-agent"
        assert message.agent.resources.scalar("cpus") == 2
        assert message.agent.attributes[0].name == "rack"
        # Answered: no more attempts, however long we wait.
        paused_clock.advance(120.0)
        paused_clock.settle()
        assert cluster.master.drain(RegisterAgent) == []
        assert cluster.agent.registered and cluster.agent.agent_id == "test-S0"
    finally:
        cluster.close()


def test_a_command_task_reports_starting_running_finished_one_ack_at_a_time(runtime, tmp_path):
    cluster = Cluster(runtime, tmp_path, auto_ack=False)
    try:
        cluster.master.next(RegisterAgent)
        cluster.run(command_task("hello", "echo hello"))
        starting = cluster.update()
        assert starting.status.state is TaskState.TASK_STARTING
        assert starting.framework_id == "fw-1"
        assert starting.pid == str(cluster.agent_pid)
        assert starting.status.source is Source.SOURCE_EXECUTOR
        assert starting.status.agent_id == "test-S0"
        assert starting.status.executor_id == "hello"
        assert starting.status.uuid and starting.status.timestamp
        # echo is long done, but nothing else is forwarded until STARTING is acknowledged.
        time.sleep(0.5)
        assert cluster.master.drain(StatusUpdate) == []
        cluster.ack(starting)
        running = cluster.update()
        assert running.status.state is TaskState.TASK_RUNNING
        time.sleep(0.3)
        assert cluster.master.drain(StatusUpdate) == []
        cluster.ack(running)
        finished = cluster.update()
        assert finished.status.state is TaskState.TASK_FINISHED
        assert "status 0" in finished.status.message
        cluster.ack(finished)
        runs = tmp_path / "frameworks" / "fw-1" / "executors" / "hello" / "runs"
        (sandbox,) = runs.iterdir()
        assert (sandbox / "stdout").read_text() == "hello\n"
        assert len({starting.status.uuid, running.status.uuid, finished.status.uuid}) == 3
    finally:
        cluster.close()


def test_a_failing_command_is_failed_with_its_exit_status(cluster):
    cluster.run(command_task("three", "exit 3"))
    states = [cluster.update().status for _ in range(3)]
    assert [s.state for s in states] == [
        TaskState.TASK_STARTING,
        TaskState.TASK_RUNNING,
        TaskState.TASK_FAILED,
    ]
    assert states[-1].message == "Command exited with status 3"


def test_the_command_environment_has_the_task_variables_and_corral_ones(cluster):
    check = (
        'test "$GREETING" = hi && test "$CORRAL_TASK_ID" = env '
        '&& test "$CORRAL_FRAMEWORK_ID" = fw-1 && test "$CORRAL_DIRECTORY" = "$PWD"'
    )
    command = CommandInfo(value=check, environment=(EnvironmentVariable("GREETING", "hi"),))
    task = TaskInfo(name="env", task_id=TaskID("env"), agent_id=AgentID("test-S0"), command=command)
    cluster.run(task)
    final = [cluster.update().status for _ in range(3)][-1]
    assert final.state is TaskState.TASK_FINISHED, final.message


def test_an_argv_command_runs_without_a_shell(cluster):
    command = CommandInfo(value="printf", shell=False, arguments=("printf", "%s-%s", "a b", "c"))
    task = TaskInfo(
        name="argv", task_id=TaskID("argv"), agent_id=AgentID("test-S0"), command=command
    )
    cluster.run(task)
    final = [cluster.update().status for _ in range(3)][-1]
    assert final.state is TaskState.TASK_FINISHED, final.message
    (sandbox,) = (cluster.work_dir / "frameworks/fw-1/executors/argv/runs").iterdir()
    assert (sandbox / "stdout").read_text() == "a b-c"


def test_kill_ends_a_running_command_with_killed_quickly(cluster):
    cluster.run(command_task("sleeper", "sleep 30", grace=2.0))
    assert cluster.update().status.state is TaskState.TASK_STARTING
    assert cluster.update().status.state is TaskState.TASK_RUNNING
    started = time.monotonic()
    cluster.from_master(KillTask(FrameworkID("fw-1"), TaskID("sleeper")))
    killed = cluster.update().status
    assert killed.state is TaskState.TASK_KILLED
    assert "SIGTERM" in killed.message
    assert time.monotonic() - started < 2.0
    wait_until(lambda: cluster.containerizer.containers() == set())


def test_an_unacknowledged_update_is_resent_after_the_retry_interval(
    runtime, tmp_path, paused_clock
):
    cluster = Cluster(runtime, tmp_path, auto_ack=False)
    try:
        cluster.master.next(RegisterAgent)
        cluster.run(command_task("resent", "true"))
        first = cluster.update()
        assert first.status.state is TaskState.TASK_STARTING
        paused_clock.advance(9.9)
        paused_clock.settle()
        assert cluster.master.drain(StatusUpdate) == []
        paused_clock.advance(0.1)
        paused_clock.settle()
        again = cluster.update()
        assert again.status.uuid == first.status.uuid
        assert again.status.state is TaskState.TASK_STARTING
        # The backoff doubles: the next resend comes 20 s later.
        paused_clock.advance(19.9)
        paused_clock.settle()
        assert cluster.master.drain(StatusUpdate) == []
        paused_clock.advance(0.1)
        paused_clock.settle()
        assert cluster.update().status.uuid == first.status.uuid
        cluster.ack(first)
        assert cluster.update().status.state is TaskState.TASK_RUNNING
    finally:
        cluster.close()


def test_ping_is_answered_with_pong(cluster):
    cluster.from_master(PingAgent(connected=True))
    sender, _ = cluster.master.next(PongAgent)
    assert sender == cluster.agent_pid


def test_a_task_with_neither_command_nor_executor_is_an_error(cluster):
    task = TaskInfo(name="bad", task_id=TaskID("bad"), agent_id=AgentID("test-S0"))
    cluster.run(task)
    status = cluster.update().status
    assert status.state is TaskState.TASK_ERROR
    assert status.source is Source.SOURCE_AGENT
    assert "neither" in status.message


def test_a_custom_executor_registers_runs_tasks_and_shuts_down(cluster):
    command = CommandInfo(value=f"{sys.executable} {REPO / 'examples' / 'custom_executor.py'}")
    executor = ExecutorInfo(executor_id=ExecutorID("shell-ex"), command=command)
    trivial = TaskInfo(
        name="trivial", task_id=TaskID("trivial"), agent_id=AgentID("test-S0"), executor=executor
    )
    shell = TaskInfo(
        name="shell",
        task_id=TaskID("shell"),
        agent_id=AgentID("test-S0"),
        executor=executor,
        data=b"echo from-the-executor",
    )
    cluster.run(trivial)
    cluster.run(shell)
    seen: dict[str, list[TaskState]] = {"trivial": [], "shell": []}
    for _ in range(4):
        status = cluster.update(timeout=20).status
        assert status.source is Source.SOURCE_EXECUTOR
        assert status.executor_id == "shell-ex"
        assert status.agent_id == "test-S0"
        seen[status.task_id].append(status.state)
    assert seen == {
        "trivial": [TaskState.TASK_RUNNING, TaskState.TASK_FINISHED],
        "shell": [TaskState.TASK_RUNNING, TaskState.TASK_FINISHED],
    }
    runs = cluster.work_dir / "frameworks" / "fw-1" / "executors" / "shell-ex" / "runs"
    (sandbox,) = runs.iterdir()
    assert "from-the-executor" in (sandbox / "stdout").read_text()
    cluster.from_master(ShutdownExecutor(FrameworkID("fw-1"), ExecutorID("shell-ex")))
    _, exited = cluster.master.next(ExitedExecutor, timeout=10)
    assert exited.executor_id == "shell-ex" and exited.status == 0


def test_agent_registered_from_a_stranger_is_ignored(runtime, tmp_path):
    cluster = Cluster(runtime, tmp_path, answer=False)
    try:
        cluster.master.next(RegisterAgent)

        class Stranger(FakeMaster):
            pass

        stranger = Stranger.__new__(Stranger)
        FakeMaster.__init__(stranger)
        stranger.mailbox.requested_id = "stranger"
        runtime.spawn(stranger)
        runtime.dispatch(
            stranger, stranger.send_message, cluster.agent_pid, AgentRegistered(AgentID("x"))
        )
        runtime.settle()
        assert not cluster.agent.registered
    finally:
        cluster.close()


def custom_executor(executor_id: str = "shell-ex") -> ExecutorInfo:
    command = CommandInfo(value=f"{sys.executable} {REPO / 'examples' / 'custom_executor.py'}")
    return ExecutorInfo(executor_id=ExecutorID(executor_id), command=command)


def executor_task(task_id: str, data: bytes | None, executor: ExecutorInfo) -> TaskInfo:
    return TaskInfo(
        name=task_id,
        task_id=TaskID(task_id),
        agent_id=AgentID("test-S0"),
        executor=executor,
        data=data,
    )


def test_kill_and_framework_messages_reach_a_custom_executor(cluster):
    executor = custom_executor()
    cluster.run(executor_task("long", b"sleep 30", executor))
    running = cluster.update(timeout=20).status
    assert running.state is TaskState.TASK_RUNNING
    cluster.from_master(
        FrameworkToExecutor(AgentID("test-S0"), FrameworkID("fw-1"), ExecutorID("shell-ex"), b"hi")
    )
    _, reply = cluster.master.next(ExecutorToFramework)
    assert reply.data == b"echo: hi" and reply.agent_id == "test-S0"
    cluster.from_master(KillTask(FrameworkID("fw-1"), TaskID("long")))
    killed = cluster.update().status
    assert killed.state is TaskState.TASK_KILLED and killed.source is Source.SOURCE_EXECUTOR


def test_an_executor_that_dies_fails_its_tasks_and_is_reported_exited(cluster):
    executor = custom_executor("doomed")
    # The task's command kills the executor (its parent) with SIGKILL, once RUNNING is out.
    cluster.run(executor_task("suicide", b"sleep 0.5; kill -KILL $PPID; sleep 5", executor))
    assert cluster.update(timeout=20).status.state is TaskState.TASK_RUNNING
    failed = cluster.update().status
    assert failed.state is TaskState.TASK_FAILED
    assert failed.reason is Reason.REASON_EXECUTOR_TERMINATED
    assert failed.source is Source.SOURCE_AGENT
    _, exited = cluster.master.next(ExitedExecutor)
    assert exited.executor_id == "doomed" and exited.framework_id == "fw-1"


def test_shutdown_framework_kills_its_command_tasks(cluster):
    cluster.run(command_task("a", "sleep 30"))
    cluster.run(command_task("b", "sleep 30"))
    states = {"a": [], "b": []}
    for _ in range(4):
        status = cluster.update().status
        states[status.task_id].append(status.state)
    cluster.from_master(ShutdownFramework(FrameworkID("fw-1")))
    for _ in range(2):
        status = cluster.update().status
        states[status.task_id].append(status.state)
    for task_states in states.values():
        assert task_states[-1] is TaskState.TASK_KILLED
    wait_until(lambda: cluster.agent.frameworks == {})
    wait_until(lambda: cluster.containerizer.containers() == set())


def test_a_command_that_cannot_start_fails_with_a_launch_reason(cluster):
    command = CommandInfo(value="/nonexistent/program", shell=False)
    task = TaskInfo(
        name="nope", task_id=TaskID("nope"), agent_id=AgentID("test-S0"), command=command
    )
    cluster.run(task)
    assert cluster.update().status.state is TaskState.TASK_STARTING
    failed = cluster.update().status
    assert failed.state is TaskState.TASK_FAILED
    assert failed.reason is Reason.REASON_CONTAINER_LAUNCH_FAILED
    assert "/nonexistent/program" in failed.message


def test_a_disconnected_agent_holds_updates_and_reregisters_with_its_tasks(
    runtime, tmp_path, paused_clock
):
    cluster = Cluster(runtime, tmp_path, auto_ack=False)
    try:
        cluster.master.next(RegisterAgent)
        cluster.run(command_task("held", "sleep 30"))
        starting = cluster.update()
        assert starting.status.state is TaskState.TASK_STARTING
        # The master says it does not count this agent: updates stop, the agent re-registers.
        cluster.master.answer = False
        cluster.from_master(PingAgent(connected=False))
        _, reregister = cluster.master.next(ReregisterAgent)
        assert reregister.agent.id == "test-S0"
        assert [task.task_id for task in reregister.tasks] == ["held"]
        paused_clock.advance(30.0)  # past the update retry: nothing is resent while paused
        paused_clock.settle()
        assert cluster.master.drain(StatusUpdate) == []
        cluster.master.answer = True
        paused_clock.advance(60.0)  # the next registration attempt is answered
        paused_clock.settle()
        resent = cluster.update()
        assert resent.status.uuid == starting.status.uuid
    finally:
        cluster.close()


def test_run_task_from_anyone_but_the_master_is_ignored(cluster):
    stranger = FakeMaster()
    stranger.mailbox.requested_id = "stranger"
    cluster.runtime.spawn(stranger)
    message = RunTask(FRAMEWORK, command_task("sneaky", "true"), "")
    cluster.runtime.dispatch(stranger, stranger.send_message, cluster.agent_pid, message)
    cluster.runtime.settle()
    assert cluster.agent.frameworks == {}


def test_the_master_is_found_from_its_http_address(tmp_path):
    with Runtime("127.0.0.1", 0, http_port=0) as runtime:
        master = StateServingMaster()
        runtime.spawn(master)
        options = AgentOptions(
            master=runtime.http_address, work_dir=tmp_path, resources="cpus:1;mem:256"
        )
        agent = AgentProcess(options)
        runtime.spawn(agent)
        _, message = master.next(RegisterAgent)
        assert message.agent.resources.scalar("mem") == 256
        assert message.agent.resources.scalar("disk") > 0  # detected, not given


def test_resources_not_given_are_detected_with_psutil(tmp_path):
    detected = detect_resources(tmp_path)
    assert detected.scalar("cpus") == psutil.cpu_count()
    assert detected.scalar("mem") >= 512
    assert str(detected.ranges("ports")) in ("[31000-32000]", "31000-32000")
    total = agent_resources("cpus:3;gpus:1", tmp_path)
    assert total.scalar("cpus") == 3 and total.scalar("gpus") == 1
    assert total.scalar("mem") == detected.scalar("mem")


def test_attributes_and_bad_options_are_read_or_refused(tmp_path):
    options = AgentOptions(
        master="master@127.0.0.1:5050", work_dir=tmp_path, attributes="rack:r1;cores:4;zone:{a,b}"
    )
    rack, cores, zone = options.parsed_attributes()
    assert rack.text.value == "r1" and cores.scalar.value == 4 and zone.set.item == ("a", "b")
    with pytest.raises(ValueError, match="name:value"):
        AgentOptions(master="master@127.0.0.1:5050", work_dir=tmp_path, attributes="rack")
    with pytest.raises(ValueError, match="backoff"):
        AgentOptions(master="m@127.0.0.1:1", work_dir=tmp_path, registration_backoff=0)


def test_the_executor_driver_refuses_to_run_outside_an_agent():
    with pytest.raises(ExecutorEnvironmentError, match="CORRAL_AGENT_PID"):
        ExecutorDriver(Executor(), environment={})


def test_an_agent_that_stops_leaves_no_task_running(cluster):
    cluster.run(command_task("orphan", "sleep 30"))
    assert cluster.update().status.state is TaskState.TASK_STARTING
    assert cluster.update().status.state is TaskState.TASK_RUNNING
    (container_id,) = cluster.containerizer.containers()
    pid = cluster.containerizer.status(container_id).pid
    cluster.runtime.terminate(cluster.agent_pid)
    cluster.runtime.wait(cluster.agent_pid).result(5)

    def gone() -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_until(gone)
