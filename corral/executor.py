"""The executor API: ``Executor`` callbacks and the ``ExecutorDriver`` that serves them.

A custom executor is a program the agent starts in a container (docs/flows.md "Executors").
It builds an ``ExecutorDriver`` around its ``Executor`` and calls ``run()``; the driver reads
where it is from the environment the agent set (``CORRAL_AGENT_PID``, ``CORRAL_FRAMEWORK_ID``,
``CORRAL_EXECUTOR_ID``, ``CORRAL_DIRECTORY``, ``CORRAL_CHECKPOINT``), starts a libprocess
runtime of its own in a background thread, registers with the agent and calls the executor
back. As in Mesos, the callbacks run one at a time on the driver's thread (here, the runtime's
loop thread): they must return quickly, so long work goes to a thread of the executor's own,
which may call ``send_status_update`` and ``send_framework_message`` at any time.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog

from corral.ids import AgentID, ExecutorID, FrameworkID, TaskID, new_status_uuid
from corral.protocol import AgentInfo, ExecutorInfo, FrameworkInfo, TaskInfo, TaskStatus
from corral.protocol.endpoint import ProtocolProcess, receives
from corral.protocol.messages import (
    ExecutorRegistered,
    ExecutorReregistered,
    ExecutorToFramework,
    FrameworkToExecutor,
    KillTask,
    ReconnectExecutor,
    RegisterExecutor,
    ReregisterExecutor,
    RunTask,
    ShutdownExecutor,
    StatusUpdate,
    StatusUpdateAcknowledgement,
)
from corral.task_states import Source
from libprocess import UPID, Runtime, Timer

log = structlog.get_logger("corral.executor")

FLUSH_TIMEOUT = 5.0  # seconds stop() waits for the agent to acknowledge the last updates
RECOVERY_TIMEOUT = 900.0  # seconds a checkpointing executor waits for its agent to come back


class Executor:
    """Override what you need. Every callback runs on the driver's thread, one at a time;
    an exception is logged and the driver carries on."""

    def registered(
        self,
        driver: ExecutorDriver,
        executor_info: ExecutorInfo,
        framework_info: FrameworkInfo,
        agent_info: AgentInfo,
    ) -> None:
        """The agent accepted the executor; tasks follow with ``launch_task``."""

    def reregistered(self, driver: ExecutorDriver, agent_info: AgentInfo) -> None:
        """A restarted agent accepted the executor again."""

    def disconnected(self, driver: ExecutorDriver) -> None:
        """The agent went away (without checkpointing, ``shutdown`` follows)."""

    def launch_task(self, driver: ExecutorDriver, task: TaskInfo) -> None:
        """Run ``task``; report its states with ``driver.send_status_update``."""

    def kill_task(self, driver: ExecutorDriver, task_id: TaskID) -> None:
        """Stop the task and report TASK_KILLED."""

    def framework_message(self, driver: ExecutorDriver, data: bytes) -> None:
        """Opaque data from the scheduler (best effort)."""

    def shutdown(self, driver: ExecutorDriver) -> None:
        """Stop every task (reporting them); the driver stops after this returns."""

    def error(self, driver: ExecutorDriver, message: str) -> None:
        """Something is wrong with the driver, ``message`` says what (e.g. the agent refused
        this executor's registration); it is aborted."""


class DriverStatus(enum.Enum):
    NOT_STARTED = "DRIVER_NOT_STARTED"
    RUNNING = "DRIVER_RUNNING"
    ABORTED = "DRIVER_ABORTED"
    STOPPED = "DRIVER_STOPPED"


class ExecutorEnvironmentError(RuntimeError):
    """The driver runs outside an agent's container: a variable it needs is missing."""


_driver_ids = itertools.count(1)


class ExecutorDriver:
    """Connects an ``Executor`` to its agent. ``start``/``join`` or ``run``; ``stop`` from anywhere.

    ``environment`` defaults to ``os.environ`` (what the agent set for the container).
    """

    def __init__(self, executor: Executor, environment: Mapping[str, str] | None = None) -> None:
        env = os.environ if environment is None else environment
        missing = [
            name
            for name in ("CORRAL_AGENT_PID", "CORRAL_FRAMEWORK_ID", "CORRAL_EXECUTOR_ID")
            if not env.get(name)
        ]
        if missing:
            raise ExecutorEnvironmentError(
                f"the executor driver needs {', '.join(missing)} in its environment; an agent "
                "sets them when it launches the executor (run this program as a task's "
                "executor, or set them by hand for a test)"
            )
        self.executor = executor
        self.agent_pid = UPID(env["CORRAL_AGENT_PID"])
        self.framework_id = FrameworkID(env["CORRAL_FRAMEWORK_ID"])
        self.executor_id = ExecutorID(env["CORRAL_EXECUTOR_ID"])
        self.directory = Path(env.get("CORRAL_DIRECTORY") or os.getcwd())
        self.checkpoint = env.get("CORRAL_CHECKPOINT", "0") == "1"
        # Mesos's MESOS_RECOVERY_TIMEOUT: how long to wait for a restarted agent.
        self.recovery_timeout = float(env.get("CORRAL_RECOVERY_TIMEOUT") or RECOVERY_TIMEOUT)
        self.agent_id: AgentID | None = None
        self._status = DriverStatus.NOT_STARTED
        self._runtime: Runtime | None = None
        self._process: _ExecutorProcess | None = None
        self._done = threading.Event()  # set once the driver has stopped or aborted
        self._lock = threading.Lock()

    @property
    def status(self) -> DriverStatus:
        return self._status

    def start(self) -> DriverStatus:
        """Start the runtime (bound next to the agent) and register with the agent."""
        with self._lock:
            if self._status is not DriverStatus.NOT_STARTED:
                return self._status
            runtime = Runtime(self.agent_pid.host, 0)
            runtime.start()
            self._runtime = runtime
            self._process = _ExecutorProcess(self, f"executor({next(_driver_ids)})")
            runtime.spawn(self._process)
            self._status = DriverStatus.RUNNING
        return self._status

    def stop(self) -> DriverStatus:
        """Stop once the agent has acknowledged every update sent (at most ``FLUSH_TIMEOUT``).

        From a callback it returns at once and the driver stops soon after.
        """
        with self._lock:
            if self._status is not DriverStatus.RUNNING:
                return self._status
            runtime, process = self._runtime, self._process
        assert runtime is not None and process is not None
        runtime.dispatch(process, process.stop_when_flushed, DriverStatus.STOPPED)
        if not runtime.on_loop():
            self._done.wait(FLUSH_TIMEOUT + 5.0)
            runtime.stop()
        return DriverStatus.STOPPED

    def abort(self) -> DriverStatus:
        """Stop at once, without waiting for acknowledgements."""
        self._finish(DriverStatus.ABORTED)
        runtime = self._runtime
        if runtime is not None and not runtime.on_loop():
            runtime.stop()
        return DriverStatus.ABORTED

    def join(self) -> DriverStatus:
        """Block until the driver is stopped or aborted, then stop its runtime.

        Not from a callback: it would wait on its own thread."""
        self._done.wait()
        runtime = self._runtime
        if runtime is not None and not runtime.on_loop():
            runtime.stop()
        return self._status

    def run(self) -> DriverStatus:
        self.start()
        return self.join()

    def send_status_update(self, status: TaskStatus) -> DriverStatus:
        """Report a task's state; the driver fills uuid, source, executor id and timestamp."""
        process = self._running_process("send_status_update")
        status = dataclasses.replace(
            status,
            uuid=status.uuid or new_status_uuid(),
            source=Source.SOURCE_EXECUTOR,
            executor_id=self.executor_id,
            agent_id=status.agent_id or self.agent_id,
            timestamp=status.timestamp or time.time(),
        )
        self._runtime.dispatch(process, process.send_status, status)
        return self._status

    def send_framework_message(self, data: bytes) -> DriverStatus:
        process = self._running_process("send_framework_message")
        self._runtime.dispatch(process, process.send_framework_message, bytes(data))
        return self._status

    def _running_process(self, call: str) -> _ExecutorProcess:
        if self._status is not DriverStatus.RUNNING or self._process is None:
            raise RuntimeError(f"{call}() needs a running driver, but it is {self._status.value}")
        return self._process

    def _finish(self, status: DriverStatus) -> None:
        """Mark the driver done and wake ``join``/``stop``, which stop the runtime from their
        own thread (a ``request_stop`` racing with their ``stop`` could leave one waiting)."""
        with self._lock:
            if self._status is not DriverStatus.RUNNING:
                return
            self._status = status
        self._done.set()


class _ExecutorProcess(ProtocolProcess):
    """The driver's actor: talks to the agent and calls the executor back."""

    def __init__(self, driver: ExecutorDriver, id: str) -> None:
        super().__init__(id)
        self.driver = driver
        self.agent = driver.agent_pid
        self.unacknowledged: dict[bytes, TaskStatus] = {}  # sent, not yet acked by the agent
        self.tasks: dict[TaskID, TaskInfo] = {}  # launched here, no terminal update sent yet
        self.stopping: DriverStatus | None = None
        self.connected = True  # False from the agent's exit until it reconnects
        self.recovery_timer: Timer | None = None

    def initialize(self) -> None:
        self.link(self.agent)
        self.send_message(
            self.agent, RegisterExecutor(self.driver.framework_id, self.driver.executor_id)
        )

    def exited(self, pid: UPID) -> None:
        if pid != self.agent or self.stopping is not None:
            return
        log.warning("agent_lost", agent=self.agent, checkpoint=self.driver.checkpoint)
        self.connected = False
        self._callback("disconnected")
        if not self.driver.checkpoint:  # no agent will come back for this executor
            self._give_up()
            return
        # A restarted agent sends ReconnectExecutor; until then updates wait here.
        self.recovery_timer = self.delay(self.driver.recovery_timeout, self._recovery_timed_out)

    def _recovery_timed_out(self) -> None:
        self.recovery_timer = None
        if not self.connected:
            log.warning("agent_not_back", waited=self.driver.recovery_timeout)
            self._give_up()

    def _give_up(self) -> None:
        self._callback("shutdown")
        self.driver._finish(DriverStatus.STOPPED)

    @receives(ReconnectExecutor)
    def reconnect(self, sender: UPID | None, message: ReconnectExecutor) -> None:
        """A restarted agent found us: re-register with it (it has a new pid)."""
        known = self.driver.agent_id
        if sender is None or not self.driver.checkpoint or (known and message.agent_id != known):
            log.warning("reconnect_refused", sender=sender, agent_id=message.agent_id, agent=known)
            return
        if self.recovery_timer is not None:
            self.recovery_timer.cancel()
            self.recovery_timer = None
        if sender != self.agent:
            self.unlink(self.agent)
            self.agent = sender
        self.link(sender)
        self.connected = True
        log.info("executor_reconnecting", agent=sender, updates=len(self.unacknowledged))
        self.send_message(
            sender,
            ReregisterExecutor(
                self.driver.framework_id,
                self.driver.executor_id,
                tasks=tuple(self.tasks.values()),
                updates=tuple(self.unacknowledged.values()),
            ),
        )

    def _callback(self, name: str, *args: Any) -> None:
        try:
            getattr(self.driver.executor, name)(self.driver, *args)
        except Exception:
            log.exception("executor_callback_failed", callback=name)

    def _from_agent(self, sender: UPID | None, what: str) -> bool:
        if sender != self.agent:
            log.warning("message_from_stranger", sender=sender, message=what, agent=self.agent)
            return False
        return True

    @receives(ExecutorRegistered)
    def registered(self, sender: UPID | None, message: ExecutorRegistered) -> None:
        if not self._from_agent(sender, "ExecutorRegistered"):
            return
        self.driver.agent_id = message.agent_id
        log.info("executor_registered", agent_id=message.agent_id)
        self._callback(
            "registered", message.executor_info, message.framework_info, message.agent_info
        )

    @receives(ExecutorReregistered)
    def reregistered(self, sender: UPID | None, message: ExecutorReregistered) -> None:
        if self._from_agent(sender, "ExecutorReregistered"):
            self.driver.agent_id = message.agent_id
            self._callback("reregistered", message.agent_info)

    @receives(RunTask)
    def run_task(self, sender: UPID | None, message: RunTask) -> None:
        if self._from_agent(sender, "RunTask"):
            self.tasks[message.task.task_id] = message.task
            self._callback("launch_task", message.task)

    @receives(KillTask)
    def kill_task(self, sender: UPID | None, message: KillTask) -> None:
        if self._from_agent(sender, "KillTask"):
            self._callback("kill_task", message.task_id)

    @receives(FrameworkToExecutor)
    def framework_to_executor(self, sender: UPID | None, message: FrameworkToExecutor) -> None:
        if self._from_agent(sender, "FrameworkToExecutor"):
            self._callback("framework_message", message.data)

    @receives(ShutdownExecutor)
    def shutdown(self, sender: UPID | None, message: ShutdownExecutor) -> None:
        """Stop; with a ``reason`` the agent refused this executor, which learns why through
        ``error`` first, and the driver ends ABORTED."""
        if not self._from_agent(sender, "ShutdownExecutor"):
            return
        if message.reason:
            log.error(
                "executor_refused", executor_id=self.driver.executor_id, reason=message.reason
            )
            self._callback("error", message.reason)
        log.info("executor_shutting_down", executor_id=self.driver.executor_id)
        self._callback("shutdown")
        self.stop_when_flushed(DriverStatus.ABORTED if message.reason else DriverStatus.STOPPED)

    @receives(StatusUpdateAcknowledgement)
    def acknowledged(self, sender: UPID | None, message: StatusUpdateAcknowledgement) -> None:
        if not self._from_agent(sender, "StatusUpdateAcknowledgement"):
            return
        self.unacknowledged.pop(message.uuid, None)
        if self.stopping is not None and not self.unacknowledged:
            self.driver._finish(self.stopping)

    def send_status(self, status: TaskStatus) -> None:
        assert status.uuid is not None
        self.unacknowledged[status.uuid] = status
        if status.state.is_terminal:
            self.tasks.pop(status.task_id, None)
        if not self.connected:
            return  # sent with ReregisterExecutor when the agent is back
        update = StatusUpdate(self.driver.framework_id, status, str(self.pid))
        self.send_message(self.agent, update)

    def send_framework_message(self, data: bytes) -> None:
        agent_id = self.driver.agent_id
        if agent_id is None:
            log.warning("framework_message_dropped", reason="not registered with the agent yet")
            return
        message = ExecutorToFramework(
            agent_id, self.driver.framework_id, self.driver.executor_id, data
        )
        self.send_message(self.agent, message)

    def stop_when_flushed(self, status: DriverStatus) -> None:
        """Stop now if every update was acknowledged, else on the last ack or the timeout."""
        if self.stopping is not None:
            return
        self.stopping = status
        if not self.unacknowledged:
            self.driver._finish(status)
            return
        self.delay(FLUSH_TIMEOUT, self.driver._finish, status)
