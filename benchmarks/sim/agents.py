"""Simulated agents: real agent actors on the real protocol, thousands per OS process.

A ``SimAgent`` is a ``ProtocolProcess`` with its own pid (``agent-<n>@host:port``) that does
what ``agent/agent.py`` does towards the master, and nothing towards the machine: it registers
(``RegisterAgent``, retried with backoff; ``ReregisterAgent`` with its id and running tasks
after the master is lost), answers ``PingAgent``, and runs a fake executor per task: a
``RunTask`` is answered with TASK_STARTING and TASK_RUNNING at once and, after
``AgentSpec.task_seconds`` of runtime clock, with ``AgentSpec.terminal_state``; ``KillTask``
ends a task with TASK_KILLED. A task with a ``health_check`` gets a simulated health result
(``AgentSpec.health_results``): right after TASK_RUNNING, TASK_RUNNING again with
``healthy: true`` and reason ``REASON_TASK_HEALTH_CHECK_STATUS_UPDATED``, as a real agent
sends once the check first passes (docs/health-checks.md). Every update goes through the real
``StatusUpdateManager`` (one in flight per task, resent until the master forwards the
framework's acknowledgement).

An ``AgentHost`` is the one actor ``libprocess.launch`` starts per OS process: it spawns the
process's agents into the same runtime and keeps the per-agent cost small by sharing what a
real agent would own alone: one ticker wakes the agents whose status-update manager wants a
resend, and one watchdog checks when each registered agent last heard a ping (a real agent
keeps one timer per master ping). Both call into the agents directly: every actor of a
runtime runs on its one loop thread, one event at a time, so this never races.
"""

from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

import corral
from agent.options import AgentOptions
from agent.status_updates import Forward, Refused, Schedule, StatusUpdateManager
from agent.status_updates import StatusUpdate as StreamUpdate
from corral.ids import AgentID, ExecutorID, FrameworkID, TaskID, new_status_uuid
from corral.protocol import AgentInfo, FrameworkInfo, Task, TaskInfo, TaskStatus
from corral.protocol.endpoint import ProtocolProcess, receives
from corral.protocol.messages import (
    AgentRegistered,
    AgentReregistered,
    KillTask,
    PingAgent,
    PongAgent,
    RegisterAgent,
    ReregisterAgent,
    RunTask,
    ShutdownFramework,
    StatusUpdate,
    StatusUpdateAcknowledgement,
)
from corral.task_states import Reason, Source, TaskState
from libprocess import UPID, Process, Timer

log = structlog.get_logger("benchmarks.sim.agents")


@dataclass(frozen=True)
class AgentSpec:
    """What every simulated agent of a host offers and how its fake executor behaves."""

    resources: str = "cpus:8;mem:16384;disk:65536;ports:[31000-32000]"
    attributes: str | None = None
    task_seconds: float = 10.0  # RUNNING -> terminal, runtime clock; inf: runs until killed
    terminal_state: str = "TASK_FINISHED"
    registration_backoff: float = 1.0  # first retry (jittered 0.5-1.5x); doubles up to the max
    registration_backoff_max: float = 60.0
    status_update_retry_min: float = 10.0
    status_update_retry_max: float = 600.0
    tick_seconds: float = 1.0  # how often the host resends due updates and checks pings
    # A task with a health_check is reported healthy right after TASK_RUNNING (False: never).
    health_results: bool = True

    def __post_init__(self) -> None:
        if TaskState(self.terminal_state).is_terminal is False:
            raise ValueError(f"terminal_state must be a terminal state, got {self.terminal_state}")
        if self.task_seconds <= 0:
            raise ValueError(f"task_seconds must be positive, got {self.task_seconds}")


class _RunningTask:
    """A task the fake executor runs: what re-registration reports, and its end timer."""

    __slots__ = ("framework_id", "info", "state", "timer")

    def __init__(self, framework_id: FrameworkID, info: TaskInfo) -> None:
        self.framework_id = framework_id
        self.info = info
        self.state = TaskState.TASK_STAGING
        self.timer: Timer | None = None


def _sleep_seconds(task: TaskInfo) -> float | None:
    """A task whose command is ``sleep <seconds>`` runs that long (``sleep inf``: forever)."""
    command = task.command
    if command is None or not command.value or not command.value.startswith("sleep "):
        return None
    try:
        seconds = float(command.value.removeprefix("sleep ").strip())
    except ValueError:
        return None
    return seconds if seconds > 0 else None


class SimAgent(ProtocolProcess):
    """One simulated agent; spawned by an ``AgentHost``, which it shares timers with."""

    def __init__(self, index: int, host: AgentHost) -> None:
        super().__init__(f"agent-{index}")
        self.host = host
        self.info = AgentInfo(
            hostname=f"sim-agent-{index}",
            port=5051,
            resources=host.resources,
            attributes=host.attributes,
        )
        self.agent_id: AgentID | None = None
        self.registered = False
        self.last_ping = 0.0  # runtime clock; the host's watchdog reads it
        self._backoff = host.spec.registration_backoff
        self._registration_timer: Timer | None = None
        self.updates = StatusUpdateManager(
            host.spec.status_update_retry_min, host.spec.status_update_retry_max, paused=True
        )
        self.next_retry: float | None = None  # when the host's ticker must call tick()
        self.tasks: dict[tuple[FrameworkID, TaskID], _RunningTask] = {}

    # -- registration -----------------------------------------------------------------------

    def initialize(self) -> None:
        self._register()

    def _register(self) -> None:
        """(Re)RegisterAgent now, and again after the backoff until the master answers."""
        self._registration_timer = None
        if self.registered:
            return
        master = self.host.master
        version = corral.__version__
        if self.agent_id is None:
            self.send_message(master, RegisterAgent(agent=self.info, version=version))
        else:
            known = self.host.frameworks
            frameworks = {task.framework_id for task in self.tasks.values()}
            self.send_message(
                master,
                ReregisterAgent(
                    agent=self.info,
                    version=version,
                    tasks=tuple(self._reported_tasks()),
                    frameworks=tuple(known[f] for f in frameworks if f in known),
                ),
            )
        wait = self._backoff * random.uniform(0.5, 1.5)
        self._registration_timer = self.delay(wait, self._register)
        self._backoff = min(self._backoff * 2, self.host.spec.registration_backoff_max)

    def _reported_tasks(self) -> list[Task]:
        assert self.agent_id is not None
        return [
            Task(
                name=task.info.name,
                task_id=task.info.task_id,
                framework_id=task.framework_id,
                agent_id=self.agent_id,
                state=task.state,
                executor_id=ExecutorID(str(task.info.task_id)),
                resources=task.info.resources,
            )
            for task in self.tasks.values()
        ]

    @receives(AgentRegistered)
    def agent_registered(self, sender: UPID | None, message: AgentRegistered) -> None:
        self._registered_as(sender, message.agent_id, message.ping_timeout)

    @receives(AgentReregistered)
    def agent_reregistered(self, sender: UPID | None, message: AgentReregistered) -> None:
        self._registered_as(sender, message.agent_id, message.ping_timeout)

    def _registered_as(
        self, sender: UPID | None, agent_id: AgentID, ping_timeout: float | None
    ) -> None:
        if sender != self.host.master or self.registered:
            return
        if ping_timeout:
            self.host.ping_timeout = ping_timeout
        if agent_id != self.agent_id:
            self.agent_id = agent_id
            self.info = dataclasses.replace(self.info, id=agent_id)
        self.registered = True
        self.last_ping = self.host.now()
        self._backoff = self.host.spec.registration_backoff
        if self._registration_timer is not None:
            self._registration_timer.cancel()
            self._registration_timer = None
        self.link(self.host.master)
        self.host.agent_registered(self)
        self._apply(self.updates.resume(self.host.now()))

    def disconnected(self, why: str) -> None:
        """The master is gone or does not count us: hold the updates, register again."""
        if not self.registered:
            return
        self.registered = False
        self.updates.pause()
        self.next_retry = None
        self.host.agent_disconnected(self, why)
        self.unlink(self.host.master)
        self._register()

    def exited(self, pid: UPID) -> None:
        if pid == self.host.master:
            self.disconnected("the link to the master broke")

    @receives(PingAgent)
    def ping(self, sender: UPID | None, message: PingAgent) -> None:
        if sender is None:
            return
        self.send_message(sender, PongAgent())
        if sender != self.host.master:
            return
        if not message.connected:
            self.disconnected("the master's ping says it does not count this agent")
        else:
            self.last_ping = self.host.now()

    # -- the fake executor ------------------------------------------------------------------

    @receives(RunTask)
    def run_task(self, sender: UPID | None, message: RunTask) -> None:
        framework_id = message.framework.id
        task_id = message.task.task_id
        if sender != self.host.master or not self.registered or framework_id is None:
            log.warning("run_task_ignored", agent=self.pid, task_id=task_id, sender=sender)
            return
        key = (framework_id, task_id)
        if key in self.tasks:
            log.warning("run_task_ignored", agent=self.pid, task_id=task_id, reason="duplicate")
            return
        self.host.frameworks.setdefault(framework_id, message.framework)
        task = self.tasks[key] = _RunningTask(framework_id, message.task)
        self._update(task, TaskState.TASK_STARTING)
        self._update(task, TaskState.TASK_RUNNING)
        if message.task.health_check is not None and self.host.spec.health_results:
            self._update(task, TaskState.TASK_RUNNING, healthy=True)
        seconds = _sleep_seconds(message.task) or self.host.spec.task_seconds
        if seconds != float("inf"):
            task.timer = self.delay(seconds, self._task_ended, key)

    def _task_ended(self, key: tuple[FrameworkID, TaskID]) -> None:
        task = self.tasks.pop(key, None)
        if task is not None:
            task.timer = None
            self._update(task, TaskState(self.host.spec.terminal_state))

    @receives(KillTask)
    def kill_task(self, sender: UPID | None, message: KillTask) -> None:
        task = self.tasks.pop((message.framework_id, message.task_id), None)
        if task is None:
            return  # ended meanwhile: its terminal update is on its way
        if task.timer is not None:
            task.timer.cancel()
        self._update(task, TaskState.TASK_KILLED)

    @receives(ShutdownFramework)
    def shutdown_framework(self, sender: UPID | None, message: ShutdownFramework) -> None:
        """The framework was removed: its tasks go, unreported (there is no one to tell)."""
        for key in [key for key in self.tasks if key[0] == message.framework_id]:
            task = self.tasks.pop(key)
            if task.timer is not None:
                task.timer.cancel()
        self.updates.cleanup(str(message.framework_id))

    def _update(self, task: _RunningTask, state: TaskState, healthy: bool | None = None) -> None:
        """Send ``state``; with ``healthy``, as a health result (a TASK_RUNNING that says it)."""
        task.state = state
        info = task.info
        status = TaskStatus(
            task_id=info.task_id,
            state=state,
            source=Source.SOURCE_EXECUTOR,
            reason=None if healthy is None else Reason.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED,
            healthy=healthy,
            agent_id=self.agent_id,
            executor_id=ExecutorID(str(info.task_id)),
            timestamp=time.time(),
            uuid=new_status_uuid(),
        )
        framework_id = str(task.framework_id)
        payload = StatusUpdate(framework_id=task.framework_id, status=status, pid=str(self.pid))
        update = StreamUpdate(
            framework_id, str(info.task_id), status.uuid, state.value, state.is_terminal, payload
        )
        self._apply(self.updates.update(framework_id, str(info.task_id), update, self.host.now()))

    @receives(StatusUpdateAcknowledgement)
    def acknowledgement(self, sender: UPID | None, message: StatusUpdateAcknowledgement) -> None:
        actions = self.updates.acknowledge(
            str(message.framework_id), str(message.task_id), message.uuid, self.host.now()
        )
        self._apply(actions)

    def tick(self, now: float) -> None:
        """Called by the host's ticker once ``next_retry`` has come: resend what is due."""
        self.next_retry = None
        self._apply(self.updates.tick(now))

    def _apply(self, actions: list[Any]) -> None:
        for action in actions:
            if type(action) is Forward:
                self.send_message(self.host.master, action.update.payload)
                self.host.forwarded += 1
            elif type(action) is Schedule:
                self.next_retry = action.at
                self.host.retrying.add(self)
            elif type(action) is Refused:
                log.warning("status_update_refused", agent=self.pid, reason=action.reason)


class AgentHost(Process):
    """Spawns ``count`` simulated agents (``agent-<first>`` ...) into its runtime.

    ``master`` is the master's pid (``master@host:port``): simulated agents skip the HTTP
    discovery a real agent may do, so 20,000 of them do not ask ``/master/state`` at once.
    """

    def __init__(self, master: str, first: int, count: int, spec: AgentSpec) -> None:
        super().__init__(f"agent-host-{first}")
        self.master = UPID(master)
        self.first = first
        self.count = count
        self.spec = spec
        options = AgentOptions(
            master=master,
            work_dir=Path("/nonexistent"),  # parsing only: nothing is written
            resources=spec.resources,
            attributes=spec.attributes,
        )
        self.resources = options.total_resources()
        self.attributes = options.parsed_attributes()
        self.agents: list[SimAgent] = []
        self.registered = 0  # agents registered now
        self.registrations = 0  # (re)registrations answered so far
        self.disconnections = 0
        self.forwarded = 0  # status updates sent (first sends and resends)
        # Agents with an update in flight; the ticker calls tick() on those that are due.
        self.retrying: set[SimAgent] = set()
        # What AgentRegistered said (one master, one number for all): seconds without a
        # ping after which an agent takes the master for lost.
        self.ping_timeout = 75.0
        # The FrameworkInfo of every framework that launched here, for ReregisterAgent.
        self.frameworks: dict[FrameworkID, FrameworkInfo] = {}

    def initialize(self) -> None:
        for index in range(self.first, self.first + self.count):
            agent = SimAgent(index, self)
            self.agents.append(agent)
            self.runtime.spawn(agent)
        self.delay(self.spec.tick_seconds, self._tick)
        log.info("agent_host_started", first=self.first, count=self.count, master=self.master)

    def now(self) -> float:
        return self.runtime.clock.now()

    def agent_registered(self, agent: SimAgent) -> None:
        self.registered += 1
        self.registrations += 1

    def agent_disconnected(self, agent: SimAgent, why: str) -> None:
        self.registered -= 1
        self.disconnections += 1
        if self.disconnections <= 3 or self.disconnections % 5000 == 0:
            log.warning("sim_agent_disconnected", agent=agent.pid, reason=why,
                        total=self.disconnections)  # fmt: skip

    def _tick(self) -> None:
        """Resend due status updates; take the master for lost where pings stopped."""
        now = self.now()
        due = [agent for agent in self.retrying if agent.next_retry is None or
               agent.next_retry <= now]  # fmt: skip
        for agent in due:
            self.retrying.discard(agent)
            if agent.next_retry is not None and agent.registered:
                agent.tick(now)
        for agent in self.agents:
            timeout = self.ping_timeout
            if agent.registered and now - agent.last_ping > timeout:
                agent.disconnected(f"no ping from the master for {timeout:g} s")
        self.delay(self.spec.tick_seconds, self._tick)
