"""The agent actor: registers with the master, runs tasks in containers, reports their states.

A thin actor in the sense of DESIGN.md: every status update goes through the sans-IO
``StatusUpdateManager`` (ordering, one in flight per task, resend until acknowledged), and the
containerizer's blocking work (launch, wait, destroy) runs as asyncio tasks on the runtime's
loop whose results re-enter the actor as dispatches, so no handler ever blocks.

Executors, as in Mesos (docs/flows.md "Executors"):

- a command task (``TaskInfo.command``) gets an executor of its own, id = task id, run by the
  agent itself: its command runs in a container and the agent reports TASK_STARTING,
  TASK_RUNNING, then TASK_FINISHED / TASK_FAILED / TASK_KILLED (source SOURCE_EXECUTOR);
- a custom executor (``TaskInfo.executor``) is a program the agent starts in a container; it
  registers through ``corral.executor.ExecutorDriver`` and then receives its tasks.

Recovery, as Mesos's agent with ``--recover=reconnect``: the agent checkpoints (agent/
checkpoint.py) its id, and for frameworks with ``checkpoint: true`` their executors, tasks and
status-update streams; the containerizer records each container's pid and exit status. A
restarted agent (after SIGKILL, a crash or a clean stop) reads them before it registers:
containers that still run are watched again, custom executors are asked to reconnect
(``ReconnectExecutor`` -> ``ReregisterExecutor``, within ``executor_reregistration_timeout``,
else destroyed), what ended meanwhile is reported with its real exit status, containers nobody
owns any more (frameworks without checkpointing) are destroyed, and the agent re-registers
with its id and resends every unacknowledged update.

Stopping: a clean stop (``finalize``) leaves the containers of checkpointing frameworks
running for the next agent to recover, and kills the others (SIGKILL: nothing can be awaited
there); ``shutdown()`` (dispatch it first) destroys every container gracefully.

HTTP (Mesos's agent surface): ``/state`` (also ``/slave(1)/state``, ``/agent/state``; agent/
mesos_state.py), ``/files/browse|read|download`` confined to the sandboxes (agent/files.py, run
off the actor), ``/containers``, ``slave/*`` metrics in ``/metrics/snapshot``, the v1
operator API ``/api/v1`` with ``/version``, ``/health``, ``/flags`` (agent/operator_api.py),
and the v1 executor API ``/api/v1/executor`` (agent/executor_api.py): each HTTP
subscription is a bridge process that registers like a native driver; the agent keeps one
bridge per executor, a new subscription replaces the old, and a bridge's end ends no task
(the container's end does).

Decisions where Mesos leaves room: ``ExitedExecutor`` is sent for custom executors only (the
master does not track command executors). Tasks of a group under a custom executor reach an
HTTP executor as one LAUNCH each (the agent queues and tracks tasks one by one).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import functools
import json
import os
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

import corral
from agent import files, mesos_state
from agent.checkpoint import AgentCheckpoints, Recovered
from agent.containerization import containerizer_for
from agent.executor_api import (
    Call,
    ExecutorBridge,
    parse_call,
    refused_subscription,
    subscription_stream,
)
from agent.monitor import MonitorProcess
from agent.operator_api import OperatorApi
from agent.options import AgentOptions
from agent.sandbox import sandbox_path
from agent.status_updates import (
    Forward,
    Ignored,
    Refused,
    Schedule,
    StatusUpdateManager,
    StreamClosed,
)
from agent.status_updates import StatusUpdate as StreamUpdate
from containerizer import (
    ContainerConfig,
    ContainerError,
    Containerizer,
    ContainerState,
    ContainerStatus,
    ContainerTermination,
    RecoveryResult,
)
from containerizer.oci import OciContainerConfig
from corral.discovery import master_pid
from corral.ids import (
    AgentID,
    ContainerID,
    ExecutorID,
    FrameworkID,
    TaskID,
    new_container_id,
    new_status_uuid,
)
from corral.protocol import (
    AgentInfo,
    CommandInfo,
    ExecutorInfo,
    FrameworkInfo,
    ProtocolError,
    Task,
    TaskInfo,
    TaskStatus,
)
from corral.protocol.endpoint import ProtocolProcess, receives
from corral.protocol.messages import (
    AgentRegistered,
    AgentReregistered,
    ExecutorRegistered,
    ExecutorReregistered,
    ExecutorToFramework,
    ExitedExecutor,
    FrameworkToExecutor,
    KillTask,
    Message,
    PingAgent,
    PongAgent,
    ReconnectExecutor,
    RegisterAgent,
    RegisterExecutor,
    ReregisterAgent,
    ReregisterExecutor,
    RunTask,
    RunTaskGroup,
    ShutdownExecutor,
    ShutdownFramework,
    StatusUpdate,
    StatusUpdateAcknowledgement,
)
from corral.task_states import Reason, Source, TaskState
from corral.v1.http import CallError
from corral.v1.model import duration
from libprocess import UPID, Future, Promise, Stream, Timer, collect, request_body

log = structlog.get_logger("agent")

DEFAULT_KILL_GRACE = 3.0  # seconds between SIGTERM and SIGKILL when the task names none
# Seconds an HTTP executor waits at most between subscription attempts (Mesos's 2 s), given
# to executors as MESOS_SUBSCRIPTION_BACKOFF_MAX; below executor_reregistration_timeout.
SUBSCRIPTION_BACKOFF_MAX = 2.0
_INHERITED_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH")
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Paths a master also serves: aliased to the agent only when no other process has them.
_SHARED_PATHS = frozenset({"/api/v1", "/version", "/health", "/flags"})


class ExecutorState(enum.Enum):
    """An executor's life on this agent: LAUNCHING -> REGISTERING (custom only) -> RUNNING
    -> TERMINATING -> TERMINATED; any state may jump to TERMINATED when its container ends."""

    LAUNCHING = "LAUNCHING"  # the container is being started
    REGISTERING = "REGISTERING"  # started; waiting for RegisterExecutor
    RECOVERING = "RECOVERING"  # found running after a restart; waiting for ReregisterExecutor
    RUNNING = "RUNNING"
    TERMINATING = "TERMINATING"  # shutdown or kill under way
    TERMINATED = "TERMINATED"


@dataclass(eq=False)
class _Executor:
    framework_id: FrameworkID
    executor_id: ExecutorID
    info: ExecutorInfo
    command_task: bool  # the agent's built-in command executor (one task, id = executor id)
    container_id: ContainerID
    sandbox: Path
    state: ExecutorState = ExecutorState.LAUNCHING
    pid: UPID | None = None  # the executor driver, once registered (custom only)
    # Tasks waiting for the executor to register; disjoint from ``tasks``.
    queued: dict[TaskID, TaskInfo] = field(default_factory=dict)
    tasks: dict[TaskID, TaskInfo] = field(default_factory=dict)  # launched
    # Latest state of every queued or launched task (the agent's view of its updates).
    states: dict[TaskID, TaskState] = field(default_factory=dict)
    launched: bool = False  # the container runs (launch returned)
    destroying: bool = False  # destroy was asked of the containerizer
    kill_requested: bool = False  # command task: the end is reported as TASK_KILLED
    kill_grace: float = DEFAULT_KILL_GRACE
    shutdown_requested: bool = False  # shut it down as soon as it is launched
    timer: Timer | None = None  # registration or shutdown timeout
    launch: asyncio.Task | None = None  # the containerizer's launch
    container: ContainerState | None = None  # what finds the container again (once launched)
    http: bool = False  # subscribed over the v1 executor API (reconnects by subscribing)
    # The bridge of its latest HTTP subscription (agent/executor_api.py), if one is open;
    # ``pid`` is this bridge's once it has registered.
    bridge: ExecutorBridge | None = None

    def all_tasks(self) -> dict[TaskID, TaskInfo]:
        return {**self.queued, **self.tasks}

    def record(self) -> dict[str, Any]:
        """The checkpoint of this executor run (msgpack-able)."""
        return {
            "info": self.info.to_wire(),
            "command_task": self.command_task,
            "container_id": self.container_id,
            "sandbox": str(self.sandbox),
            "container": None if self.container is None else self.container.to_json(),
            "pid": self.pid,
            "tasks": [task.to_wire() for task in self.tasks.values()],
            "queued": [task.to_wire() for task in self.queued.values()],
            "states": {task_id: state.value for task_id, state in self.states.items()},
            "kill_requested": self.kill_requested,
            "kill_grace": self.kill_grace,
            "http": self.http,
        }

    @classmethod
    def from_record(cls, framework_id: FrameworkID, record: dict[str, Any]) -> _Executor:
        """Rebuild a checkpointed run (raises on a malformed record)."""
        info = ExecutorInfo.from_wire(record["info"])
        container = record.get("container")
        tasks = [TaskInfo.from_wire(task) for task in record.get("tasks", ())]
        queued = [TaskInfo.from_wire(task) for task in record.get("queued", ())]
        return cls(
            framework_id=framework_id,
            executor_id=info.executor_id,
            info=info,
            command_task=bool(record["command_task"]),
            container_id=ContainerID(record["container_id"]),
            sandbox=Path(record["sandbox"]),
            state=ExecutorState.RECOVERING,
            pid=UPID(record["pid"]) if record.get("pid") else None,
            queued={task.task_id: task for task in queued},
            tasks={task.task_id: task for task in tasks},
            states={
                task.task_id: TaskState(record.get("states", {}).get(task.task_id, "TASK_STAGING"))
                for task in [*tasks, *queued]
            },
            kill_requested=bool(record.get("kill_requested")),
            kill_grace=float(record.get("kill_grace", DEFAULT_KILL_GRACE)),
            container=None if container is None else ContainerState.from_json(container),
            http=bool(record.get("http")),
        )


@dataclass(eq=False)
class _Framework:
    id: FrameworkID
    info: FrameworkInfo
    pid: str  # the scheduler driver's pid, passed on in RunTask
    executors: dict[ExecutorID, _Executor] = field(default_factory=dict)
    shutting_down: bool = False
    # Mesos's JSON of executors that ended here (newest last), for /state.
    completed_executors: deque[dict[str, Any]] = field(
        default_factory=lambda: deque(maxlen=mesos_state.MAX_COMPLETED_EXECUTORS)
    )


class AgentProcess(ProtocolProcess):
    """The agent: id ``agent``. Give it options and, for tests, a containerizer."""

    def __init__(
        self,
        options: AgentOptions,
        containerizer: Containerizer | None = None,
        id: str = "agent",
    ) -> None:
        super().__init__(id)
        self.options = options
        self.containerizer = containerizer or containerizer_for(options)
        self.master: UPID | None = options.master_upid() if options.master_is_pid else None
        self.agent_id: AgentID | None = None
        self.registered = False
        self.info = AgentInfo(
            hostname=options.agent_hostname(),
            port=options.port,
            resources=options.total_resources(),
            attributes=options.parsed_attributes(),
        )
        # Paused until registered: updates are accepted and kept, forwarded once resumed.
        self.updates = StatusUpdateManager(
            options.status_update_retry_min, options.status_update_retry_max, paused=True
        )
        self.frameworks: dict[FrameworkID, _Framework] = {}
        self.checkpoints = AgentCheckpoints(options.meta_dir)
        self.recovered = False  # checkpoints read and containers recovered; then it registers
        # The latest state in each checkpointed stream (the manager keeps no acked states).
        self._stream_states: dict[tuple[FrameworkID, TaskID], str] = {}
        self._backoff = options.registration_backoff
        self._registration_timer: Timer | None = None
        self._retry_timer: Timer | None = None
        self._ping_timeout = options.master_ping_timeout
        self._ping_timer: Timer | None = None
        # Every asyncio task the agent started; each has a done callback that re-enters.
        self._tasks: set[asyncio.Task] = set()
        self.start_time = time.time()  # wall clock, for /state and slave/uptime_secs
        # Mesos's JSON of frameworks removed from this agent (newest last), for /state.
        self.completed_frameworks: deque[dict[str, Any]] = deque(
            maxlen=mesos_state.MAX_COMPLETED_FRAMEWORKS
        )
        self._metrics: list[Any] = []  # registered in the runtime's metrics; removed at exit
        self._terminal_counts: dict[TaskState, Any] = {}  # slave/tasks_finished, ...

    # -- lifecycle --------------------------------------------------------------------------

    def initialize(self) -> None:
        self.options.work_dir.mkdir(parents=True, exist_ok=True)
        self._monitor = MonitorProcess(self)
        self.runtime.spawn(self._monitor)
        self._install_routes()
        self._register_metrics()
        log.info(
            "agent_started",
            pid=self.pid,
            master=self.options.master,
            resources=str(self.info.resources),
            work_dir=str(self.options.work_dir),
        )
        self._recover()

    def finalize(self) -> None:
        self.runtime.terminate(self._monitor)
        for metric in self._metrics:
            self.runtime.metrics.remove(metric.name)
        for executor in self._executors():
            self._close_bridge(executor)
        for timer in (self._registration_timer, self._retry_timer, self._ping_timer):
            if timer is not None:
                timer.cancel()
        kept = set()
        for executor in self._executors():
            if executor.timer is not None:
                executor.timer.cancel()
            if self._checkpointing(executor.framework_id):
                kept.add(executor.container_id)
        # Containers of checkpointing frameworks stay for the next agent to recover. The
        # others could only become orphans; nothing can be awaited here, so each session gets
        # SIGKILL (shutdown() is the graceful way).
        for container_id in self.containerizer.containers() - kept:
            with contextlib.suppress(ContainerError, ProcessLookupError, PermissionError):
                pid = self.containerizer.status(container_id).pid
                os.killpg(pid, signal.SIGKILL)
                log.warning("container_killed_at_exit", container_id=container_id, pid=pid)
        if kept:
            log.info("containers_left_for_recovery", containers=sorted(kept))

    def shutdown(self, grace_seconds: float | None = None) -> Future[None]:
        """Destroy every container (dispatch it before stopping the runtime); ready when done.

        For an agent leaving for good: nothing is left to recover. Command tasks end
        TASK_KILLED, custom executors' open tasks TASK_FAILED, as with any destroy.
        """
        grace = self.options.executor_shutdown_grace if grace_seconds is None else grace_seconds
        launches = []
        for executor in self._executors():
            if executor.command_task:
                executor.kill_requested = True
            else:
                executor.shutdown_requested = True
            if executor.launch is not None and not executor.launch.done():
                launches.append(executor.launch)
        containerizer = self.containerizer
        promise: Promise[None] = Promise()

        async def destroy_all() -> None:
            # A launch in flight is waited for: its process would outlive the agent otherwise.
            await asyncio.gather(*launches, return_exceptions=True)
            ids = list(containerizer.containers())
            results = await asyncio.gather(
                *(containerizer.destroy(cid, grace) for cid in ids), return_exceptions=True
            )
            for cid, result in zip(ids, results, strict=True):
                if isinstance(result, BaseException):
                    log.error("container_destroy_failed", container_id=cid, error=str(result))

        self._run_async(destroy_all(), lambda _result, _error: promise.set(None))
        return promise.future

    # -- recovery ---------------------------------------------------------------------------

    def _recover(self) -> None:
        """Read the checkpoints, then let the containerizer find the containers again;
        ``_recovered`` goes on (and registers) when it has."""
        state = self.checkpoints.recover()
        if state.agent is not None and state.agent.id is not None:
            self.agent_id = state.agent.id
            self.info = dataclasses.replace(self.info, id=self.agent_id)
        known = self._recover_frameworks(state)
        log.info(
            "agent_recovering",
            agent_id=self.agent_id,
            frameworks=len(self.frameworks),
            executors=len(self._executors()),
            containers=len(known),
        )
        self._run_async(self.containerizer.recover(known), self._recovered)

    def _recover_frameworks(self, state: Recovered) -> list[ContainerState]:
        known: list[ContainerState] = []
        streams: list[dict[str, Any]] = []
        for framework_id, checkpoint in state.frameworks.items():
            framework = _Framework(framework_id, checkpoint.info, checkpoint.pid)
            self.frameworks[framework_id] = framework
            for executor_id, record in checkpoint.executors.items():
                try:
                    executor = _Executor.from_record(framework_id, record)
                except (KeyError, TypeError, ValueError, ProtocolError) as error:
                    log.warning(
                        "checkpoint_executor_unreadable", executor_id=executor_id, error=repr(error)
                    )
                    continue
                framework.executors[executor.executor_id] = executor
                if executor.container is not None:
                    known.append(executor.container)
            for task_id, record in checkpoint.streams.items():
                streams.append(record["stream"])
                state_name = str(record.get("state", ""))
                self._stream_states[(framework_id, task_id)] = state_name
                executor = self._find_task(framework, task_id)
                if executor is not None and state_name in TaskState.__members__:
                    executor.states[task_id] = TaskState[state_name]
        try:
            self.updates.recover(streams, decode=_decode_update)
        except (ValueError, KeyError, TypeError, ProtocolError) as error:
            log.error("checkpoint_streams_unreadable", error=str(error))
        return known

    def _recovered(self, result: RecoveryResult | None, error: BaseException | None) -> None:
        if error is not None:
            log.error("container_recovery_failed", error=str(error))
            result = RecoveryResult(frozenset(), {}, frozenset())
        assert result is not None
        for executor in self._executors():
            container_id = executor.container_id
            if container_id in result.running:
                self._reattach(executor)
            elif container_id in result.ended:
                termination = result.ended[container_id]
                self._forget(executor)
                self._executor_ended(
                    executor,
                    termination,
                    f"the executor {termination.describe()} (while the agent was down)",
                    Reason.REASON_EXECUTOR_TERMINATED,
                )
            else:
                self._executor_ended(
                    executor,
                    None,
                    "the executor's container was not found when the agent recovered",
                    Reason.REASON_EXECUTOR_TERMINATED,
                )
        for container_id in sorted(result.orphans):
            log.info("orphan_container_destroying", container_id=container_id)
            self._run_async(
                self.containerizer.destroy(container_id, 0.0),
                functools.partial(self._orphan_destroyed, container_id),
            )
        self.recovered = True
        log.info(
            "agent_recovered",
            agent_id=self.agent_id,
            running=sorted(result.running),
            ended=sorted(result.ended),
            orphans=sorted(result.orphans),
        )
        if self.master is None:
            self._discover_master()
        else:
            self._register()

    def _reattach(self, executor: _Executor) -> None:
        """A recovered executor whose container still runs: watch it again."""
        executor.launched = True
        coroutine = self.containerizer.wait(executor.container_id)
        self._run_async(coroutine, functools.partial(self._container_ended, executor))
        if executor.command_task:
            (task_id,) = executor.tasks
            executor.state = ExecutorState.RUNNING
            if executor.kill_requested or executor.states[task_id].is_terminal:
                self._destroy(executor, executor.kill_grace)
            return
        timeout = self.options.executor_reregistration_timeout
        executor.timer = self.delay(timeout, self._executor_timeout, executor, "reregistration")
        if executor.pid is None:
            return  # it never registered: the timeout destroys it
        if executor.http:
            return  # an HTTP executor subscribes again by itself (with backoff)
        assert self.agent_id is not None
        self.send_message(executor.pid, ReconnectExecutor(self.agent_id))

    def _orphan_destroyed(
        self, container_id: str, _result: Any, error: BaseException | None
    ) -> None:
        if error is not None:
            log.error("orphan_destroy_failed", container_id=container_id, error=str(error))
            return
        with contextlib.suppress(ContainerError):
            self.containerizer.forget(container_id)

    # -- checkpoints --------------------------------------------------------------------------

    def _checkpointing(self, framework_id: FrameworkID) -> bool:
        framework = self.frameworks.get(framework_id)
        return framework is not None and bool(framework.info.checkpoint)

    def _checkpoint_executor(self, executor: _Executor) -> None:
        if self._checkpointing(executor.framework_id):
            self.checkpoints.save_executor(
                executor.framework_id, executor.executor_id, executor.record()
            )

    def _checkpoint_stream(self, framework_id: FrameworkID, task_id: TaskID) -> None:
        if not self._checkpointing(framework_id):
            return
        record = self.updates.stream_record(framework_id, task_id, _encode_update)
        if record is None or record["closed"]:
            self._stream_states.pop((framework_id, task_id), None)
            self.checkpoints.save_stream(framework_id, task_id, None)
            return
        state = self._stream_states.get((framework_id, task_id), "")
        self.checkpoints.save_stream(framework_id, task_id, {"stream": record, "state": state})

    # -- registration -----------------------------------------------------------------------

    def _discover_master(self) -> None:
        address = self.options.master
        loop = asyncio.get_running_loop()
        self._run_async(loop.run_in_executor(None, master_pid, address), self._master_found)

    def _master_found(self, pid: UPID | None, error: BaseException | None) -> None:
        if error is not None:
            log.warning(
                "master_not_found",
                address=self.options.master,
                error=str(error),
                retry_in=self._backoff,
            )
            self._registration_timer = self.delay(self._backoff, self._discover_master)
            self._backoff = min(self._backoff * 2, self.options.registration_backoff_max)
            return
        self.master = pid
        self._backoff = self.options.registration_backoff
        self._register()

    def _register(self) -> None:
        """Send (Re)RegisterAgent and retry with backoff until the master answers."""
        self._registration_timer = None
        if self.registered or self.master is None or not self.recovered:
            return
        version = corral.__version__
        if self.agent_id is None:
            self.send_message(self.master, RegisterAgent(agent=self.info, version=version))
        else:
            executors = [e for e in self._executors() if not e.command_task]
            message = ReregisterAgent(
                agent=self.info,
                version=version,
                tasks=tuple(self._reported_tasks()),
                executor_infos=tuple(e.info for e in executors),
                frameworks=tuple(f.info for f in self.frameworks.values()),
            )
            self.send_message(self.master, message)
        log.info(
            "agent_registering", master=self.master, agent_id=self.agent_id, retry_in=self._backoff
        )
        self._registration_timer = self.delay(self._backoff, self._register)
        self._backoff = min(self._backoff * 2, self.options.registration_backoff_max)

    @receives(AgentRegistered)
    def agent_registered(self, sender: UPID | None, message: AgentRegistered) -> None:
        self._registered_as(sender, message.agent_id, message.ping_timeout, "agent_registered")

    @receives(AgentReregistered)
    def agent_reregistered(self, sender: UPID | None, message: AgentReregistered) -> None:
        self._registered_as(sender, message.agent_id, message.ping_timeout, "agent_reregistered")

    def _registered_as(
        self, sender: UPID | None, agent_id: AgentID, ping_timeout: float | None, event: str
    ) -> None:
        if sender != self.master:
            log.warning("registration_from_stranger", sender=sender, master=self.master)
            return
        if self.registered:
            log.debug("registration_repeated", agent_id=agent_id)
            return
        if self.agent_id is not None and agent_id != self.agent_id:
            log.warning("agent_id_changed", old=self.agent_id, new=agent_id)
        if agent_id != self.agent_id:
            self.agent_id = agent_id
            self.info = dataclasses.replace(self.info, id=agent_id)
            self.checkpoints.save_agent(self.info)
        if ping_timeout is not None and ping_timeout > 0:
            self._ping_timeout = ping_timeout
        self._expect_ping()
        self.registered = True
        self._backoff = self.options.registration_backoff
        if self._registration_timer is not None:
            self._registration_timer.cancel()
            self._registration_timer = None
        self.link(self.master)
        log.info(event, agent_id=agent_id, master=self.master)
        self._apply(self.updates.resume(self._now()))

    def _disconnected(self, why: str) -> None:
        """The master is gone or no longer counts us: hold updates, register again (finding
        the master anew when we were given its HTTP address: it may have moved)."""
        if not self.registered:
            return
        log.warning("master_disconnected", master=self.master, reason=why)
        self.registered = False
        self.updates.pause()
        for timer in (self._retry_timer, self._ping_timer):
            if timer is not None:
                timer.cancel()
        self._retry_timer = self._ping_timer = None
        if self.master is not None:
            self.unlink(self.master)
        if self.options.master_is_pid:
            self._register()
        else:
            self._discover_master()

    def _expect_ping(self) -> None:
        """(Re)start the wait for the master's next ping."""
        if self._ping_timer is not None:
            self._ping_timer.cancel()
        self._ping_timer = self.delay(self._ping_timeout, self._ping_timed_out)

    def _ping_timed_out(self) -> None:
        self._ping_timer = None
        self._disconnected(f"no ping from the master for {self._ping_timeout:g} s")

    def exited(self, pid: UPID) -> None:
        if pid == self.master:
            self._disconnected("the link to the master broke")

    @receives(PingAgent)
    def ping(self, sender: UPID | None, message: PingAgent) -> None:
        if sender is None:
            return
        self.send_message(sender, PongAgent())
        if sender != self.master:
            return
        if not message.connected:
            self._disconnected("the master's ping says it does not count this agent")
        elif self.registered:
            self._expect_ping()

    # -- tasks ------------------------------------------------------------------------------

    @receives(RunTask)
    def run_task(self, sender: UPID | None, message: RunTask) -> None:
        framework = self._framework_for_launch(
            sender, message.framework, message.pid, [message.task.task_id]
        )
        if framework is not None:
            self._start_task(framework, message.task, message.task.executor)

    @receives(RunTaskGroup)
    def run_task_group(self, sender: UPID | None, message: RunTaskGroup) -> None:
        """A task group: under a custom executor, every task goes to it; under the default
        executor (no command), each task runs as a command task of the agent's own."""
        tasks = message.task_group.tasks
        framework = self._framework_for_launch(
            sender, message.framework, "", [task.task_id for task in tasks]
        )
        if framework is None:
            return
        executor = message.executor if message.executor.command is not None else None
        for task in tasks:
            self._start_task(framework, task, executor)

    def _framework_for_launch(
        self, sender: UPID | None, info: FrameworkInfo, pid: str, task_ids: list[TaskID]
    ) -> _Framework | None:
        """The framework a launch is for, or None (logged) when the launch is not valid here."""
        framework_id = info.id
        if sender != self.master or not self.registered:
            log.warning(
                "run_task_ignored",
                task_ids=task_ids,
                sender=sender,
                reason="not from the master this agent is registered with",
            )
            return None
        if framework_id is None:
            log.warning("run_task_ignored", task_ids=task_ids, reason="the framework has no id")
            return None
        framework = self.frameworks.get(framework_id)
        if framework is None:
            framework = self.frameworks[framework_id] = _Framework(framework_id, info, pid)
        elif framework.info == info and (not pid or pid == framework.pid):
            return framework
        else:
            framework.info = info
            framework.pid = pid or framework.pid
        if info.checkpoint:
            self.checkpoints.save_framework(info, framework.pid)
        return framework

    def _start_task(
        self, framework: _Framework, task: TaskInfo, executor: ExecutorInfo | None
    ) -> None:
        framework_id = framework.id
        if self._find_task(framework, task.task_id) is not None:
            log.warning(
                "run_task_ignored",
                task_id=task.task_id,
                framework_id=framework_id,
                reason="a task with this id already runs here",
            )
            return
        if framework.shutting_down:
            self._agent_update(
                framework_id,
                task,
                TaskState.TASK_DROPPED,
                "the framework is shutting down on this agent",
                Reason.REASON_FRAMEWORK_REMOVED,
            )
            return
        if executor is not None:
            self._run_on_custom_executor(framework, task, executor)
        elif task.command is not None:
            self._run_command_task(framework, task, task.command)
        else:
            self._agent_update(
                framework_id,
                task,
                TaskState.TASK_ERROR,
                "the task has neither 'command' nor 'executor'",
                Reason.REASON_TASK_INVALID,
            )

    def _run_command_task(
        self, framework: _Framework, task: TaskInfo, command: CommandInfo
    ) -> None:
        image = task.container.image if task.container is not None else None
        if image is not None and not image.name:
            self._agent_update(
                framework.id,
                task,
                TaskState.TASK_ERROR,
                f"the task's {image.type.name} image has no name; give "
                f"container.mesos.image.{image.type.name.lower()}.name",
                Reason.REASON_TASK_INVALID,
            )
            return
        try:
            argv = _command_of(command)
        except ValueError as error:
            self._agent_update(
                framework.id, task, TaskState.TASK_ERROR, str(error), Reason.REASON_TASK_INVALID
            )
            return
        executor_id = ExecutorID(task.task_id)
        if executor_id in framework.executors:  # an executor (not task) with this id exists
            self._agent_update(
                framework.id,
                task,
                TaskState.TASK_ERROR,
                f"executor id {executor_id!r} is taken on this agent",
                Reason.REASON_TASK_INVALID,
            )
            return
        info = ExecutorInfo(
            executor_id=executor_id,
            framework_id=framework.id,
            command=command,
            name=f"Command Executor (Task: {task.task_id})",
        )
        executor = self._new_executor(framework, info, command_task=True)
        executor.tasks[task.task_id] = task
        if task.kill_policy is not None and task.kill_policy.grace_period is not None:
            executor.kill_grace = task.kill_policy.grace_period
        self._checkpoint_executor(executor)
        self._executor_update(executor, task.task_id, TaskState.TASK_STARTING)
        settings = {
            "command": argv,
            "sandbox": executor.sandbox,
            "environment": self._environment(framework, executor, command, task.task_id),
            "resources": _scalars(task.resources),
            "user": command.user,
        }
        image = task.container.image if task.container is not None else None
        if image is None:
            config = ContainerConfig(**settings)
        else:
            config = OciContainerConfig(**settings, image=image.name)
        self._launch(executor, config)

    def _run_on_custom_executor(
        self, framework: _Framework, task: TaskInfo, info: ExecutorInfo
    ) -> None:
        executor = framework.executors.get(info.executor_id)
        if executor is None:
            if info.command is None:
                self._agent_update(
                    framework.id,
                    task,
                    TaskState.TASK_ERROR,
                    "the task's executor has no 'command' to start it",
                    Reason.REASON_TASK_INVALID,
                )
                return
            try:
                argv = _command_of(info.command)
            except ValueError as error:
                self._agent_update(
                    framework.id, task, TaskState.TASK_ERROR, str(error), Reason.REASON_TASK_INVALID
                )
                return
            if info.framework_id is None:
                info = dataclasses.replace(info, framework_id=framework.id)
            executor = self._new_executor(framework, info, command_task=False)
            executor.queued[task.task_id] = task
            executor.states[task.task_id] = TaskState.TASK_STAGING
            self._checkpoint_executor(executor)
            config = ContainerConfig(
                command=argv,
                sandbox=executor.sandbox,
                environment=self._environment(framework, executor, info.command, None),
                resources=_scalars(info.resources + task.resources),
                user=info.command.user,
            )
            self._launch(executor, config)
            return
        if executor.command_task:
            self._agent_update(
                framework.id,
                task,
                TaskState.TASK_ERROR,
                f"executor id {info.executor_id!r} is a command task's here",
                Reason.REASON_TASK_INVALID,
            )
            return
        if executor.state in (ExecutorState.TERMINATING, ExecutorState.TERMINATED):
            self._agent_update(
                framework.id,
                task,
                TaskState.TASK_DROPPED,
                f"executor {info.executor_id} is shutting down",
                Reason.REASON_EXECUTOR_TERMINATED,
            )
            return
        executor.states[task.task_id] = TaskState.TASK_STAGING
        if executor.state is ExecutorState.RUNNING and executor.pid is not None:
            executor.tasks[task.task_id] = task
            self._checkpoint_executor(executor)
            self.send_message(executor.pid, RunTask(framework.info, task, framework.pid))
        else:
            executor.queued[task.task_id] = task
            self._checkpoint_executor(executor)

    @receives(KillTask)
    def kill_task(self, sender: UPID | None, message: KillTask) -> None:
        if sender != self.master:
            log.warning(
                "kill_task_ignored",
                task_id=message.task_id,
                sender=sender,
                reason="kills come from the master this agent is registered with",
            )
            return
        framework = self.frameworks.get(message.framework_id)
        executor = None if framework is None else self._find_task(framework, message.task_id)
        if executor is None:
            log.warning(
                "kill_task_ignored",
                task_id=message.task_id,
                framework_id=message.framework_id,
                reason="no such task on this agent",
            )
            return
        state = executor.states.get(message.task_id)
        if state is not None and state.is_terminal:
            log.info("kill_task_ignored", task_id=message.task_id, reason=f"it is {state.value}")
            return
        if executor.command_task:
            if executor.kill_requested:
                return
            executor.kill_requested = True
            policy = message.kill_policy
            if policy is not None and policy.grace_period is not None:
                executor.kill_grace = policy.grace_period
            self._checkpoint_executor(executor)
            log.info("task_killing", task_id=message.task_id, grace=executor.kill_grace)
            if executor.launched:
                self._destroy(executor, executor.kill_grace)
            return  # still launching: _launched destroys it
        task = executor.queued.pop(message.task_id, None)
        if task is not None:
            self._agent_update(
                message.framework_id,
                task,
                TaskState.TASK_KILLED,
                "killed before its executor registered",
            )
            if not executor.all_tasks() or all(s.is_terminal for s in executor.states.values()):
                self._shutdown_executor(executor)
        elif executor.pid is not None:
            self.send_message(executor.pid, message)

    @receives(ShutdownFramework)
    def shutdown_framework(self, sender: UPID | None, message: ShutdownFramework) -> None:
        if sender != self.master:
            log.warning("shutdown_framework_ignored", sender=sender, reason="not the master")
            return
        framework = self.frameworks.get(message.framework_id)
        if framework is None:
            log.info(
                "shutdown_framework_ignored",
                framework_id=message.framework_id,
                reason="no such framework here",
            )
            return
        log.info(
            "framework_shutting_down", framework_id=framework.id, executors=len(framework.executors)
        )
        framework.shutting_down = True
        for executor in list(framework.executors.values()):
            if executor.command_task:
                executor.kill_requested = True
                if executor.launched:
                    self._destroy(executor, executor.kill_grace)
            else:
                self._shutdown_executor(executor)
        self._maybe_remove_framework(framework)

    @receives(ShutdownExecutor)
    def shutdown_executor(self, sender: UPID | None, message: ShutdownExecutor) -> None:
        if sender != self.master:
            log.warning(
                "shutdown_executor_ignored",
                executor_id=message.executor_id,
                sender=sender,
                reason="only the master shuts executors down",
            )
            return
        framework = self.frameworks.get(message.framework_id)
        executor = None if framework is None else framework.executors.get(message.executor_id)
        if executor is None:
            log.info(
                "shutdown_executor_ignored",
                executor_id=message.executor_id,
                reason="no such executor here",
            )
            return
        self._shutdown_executor(executor)

    # -- custom executors ---------------------------------------------------------------------

    @receives(RegisterExecutor)
    def register_executor(self, sender: UPID | None, message: RegisterExecutor) -> None:
        found = self._executor_joining(
            sender, message, (ExecutorState.LAUNCHING, ExecutorState.REGISTERING)
        )
        if found is None:
            return
        framework, executor = found
        assert sender is not None and self.agent_id is not None  # RunTask came: registered
        log.info("executor_registered", executor_id=executor.executor_id, pid=sender)
        self.send_message(
            sender,
            ExecutorRegistered(
                executor_info=executor.info,
                framework_id=framework.id,
                framework_info=framework.info,
                agent_id=self.agent_id,
                agent_info=self.info,
            ),
        )
        queued, executor.queued = executor.queued, {}
        executor.tasks.update(queued)
        self._checkpoint_executor(executor)
        for task in queued.values():
            self.send_message(sender, RunTask(framework.info, task, framework.pid))

    @receives(ReregisterExecutor)
    def reregister_executor(self, sender: UPID | None, message: ReregisterExecutor) -> None:
        """A recovered executor answers ReconnectExecutor: it runs again under this agent.

        Also how an HTTP executor's bridge registers when the executor subscribes after an
        agent restart, or again (a new connection) while it runs: then the tasks it does not
        list are not lost, since a v1 executor lists only the tasks not yet acknowledged.
        """
        framework = self.frameworks.get(message.framework_id)
        known = None if framework is None else framework.executors.get(message.executor_id)
        via_http = known is not None and _is_bridge(known, sender)
        expected = (ExecutorState.RECOVERING,)
        if via_http:
            expected = (ExecutorState.RECOVERING, ExecutorState.RUNNING)
        found = self._executor_joining(sender, message, expected)
        if found is None:
            return
        framework, executor = found
        assert sender is not None and self.agent_id is not None  # recovered: has an id
        log.info(
            "executor_reregistered",
            executor_id=executor.executor_id,
            pid=sender,
            tasks=len(message.tasks),
            updates=len(message.updates),
        )
        self.send_message(sender, ExecutorReregistered(self.agent_id, self.info))
        for status in message.updates:  # sent while the agent was down: into their streams
            self.status_update(sender, StatusUpdate(message.framework_id, status))
        reported = {task.task_id for task in message.tasks}
        reported |= {status.task_id for status in message.updates}
        for task_id, task in list(executor.tasks.items()):
            if via_http:
                break
            if task_id not in reported and not executor.states[task_id].is_terminal:
                self._agent_update(
                    executor.framework_id,
                    task,
                    TaskState.TASK_LOST,
                    "the executor did not know this task when it reconnected after the agent "
                    "restarted",
                    Reason.REASON_AGENT_RESTARTED,
                    executor,
                )
        queued, executor.queued = executor.queued, {}
        executor.tasks.update(queued)
        self._checkpoint_executor(executor)
        for task in queued.values():  # it never saw these
            self.send_message(sender, RunTask(framework.info, task, framework.pid))

    def _executor_joining(
        self,
        sender: UPID | None,
        message: RegisterExecutor | ReregisterExecutor,
        expected: tuple[ExecutorState, ...],
    ) -> tuple[_Framework, _Executor] | None:
        """The custom executor a (re)registration is from, now RUNNING with ``sender`` as its
        pid; None (and told to shut down) unless it was waiting for exactly this. An HTTP
        executor registers through the bridge of its latest subscription, and only so."""
        framework = self.frameworks.get(message.framework_id)
        executor = None if framework is None else framework.executors.get(message.executor_id)
        if sender is None:
            return None
        if (
            framework is None
            or executor is None
            or executor.command_task
            or executor.state not in expected
            or (executor.bridge is not None and not _is_bridge(executor, sender))
        ):
            log.warning(
                "executor_registration_refused",
                message=message.NAME,
                executor_id=message.executor_id,
                framework_id=message.framework_id,
                sender=sender,
                state="unknown" if executor is None else executor.state.value,
            )
            self.send_message(sender, ShutdownExecutor(message.framework_id, message.executor_id))
            return None
        if executor.timer is not None:
            executor.timer.cancel()
            executor.timer = None
        executor.pid = sender
        executor.state = ExecutorState.RUNNING
        if executor.bridge is not None and not executor.http:
            executor.http = True
            self._checkpoint_executor(executor)
        return framework, executor

    @receives(StatusUpdate)
    def status_update(self, sender: UPID | None, message: StatusUpdate) -> None:
        """From an executor: take it into the stream, acknowledge it to the executor."""
        status = message.status
        framework = self.frameworks.get(message.framework_id)
        executor = None if framework is None else self._find_task(framework, status.task_id)
        if executor is None or executor.pid is None or sender != executor.pid:
            log.warning(
                "status_update_ignored",
                task_id=status.task_id,
                sender=sender,
                reason="not from the executor of a task on this agent",
            )
            return
        if status.uuid is None:
            log.warning(
                "status_update_ignored",
                task_id=status.task_id,
                reason="an executor's update needs a uuid",
            )
            return
        status = dataclasses.replace(
            status,
            agent_id=self.agent_id,
            executor_id=executor.executor_id,
            source=status.source or Source.SOURCE_EXECUTOR,
            timestamp=status.timestamp or time.time(),
        )
        previous = executor.states.get(status.task_id)
        if previous is None or not previous.is_terminal:
            executor.states[status.task_id] = status.state
        if self._status_update(message.framework_id, status):
            self.send_message(
                sender,
                StatusUpdateAcknowledgement(
                    agent_id=self.agent_id,
                    framework_id=message.framework_id,
                    task_id=status.task_id,
                    uuid=status.uuid,
                ),
            )

    @receives(ExecutorToFramework)
    def executor_to_framework(self, sender: UPID | None, message: ExecutorToFramework) -> None:
        if self.master is None or not self.registered:
            log.info("framework_message_dropped", reason="not registered with a master")
            return
        framework = self.frameworks.get(message.framework_id)
        executor = None if framework is None else framework.executors.get(message.executor_id)
        if executor is None or executor.pid is None or sender != executor.pid:
            log.warning(
                "framework_message_dropped",
                sender=sender,
                framework_id=message.framework_id,
                executor_id=message.executor_id,
                reason="not from a registered executor of a framework known here",
            )
            return
        if self.agent_id is not None:
            message = dataclasses.replace(message, agent_id=self.agent_id)
        self.send_message(self.master, message)

    @receives(FrameworkToExecutor)
    def framework_to_executor(self, sender: UPID | None, message: FrameworkToExecutor) -> None:
        framework = self.frameworks.get(message.framework_id)
        executor = None if framework is None else framework.executors.get(message.executor_id)
        if executor is None or executor.pid is None or executor.state is not ExecutorState.RUNNING:
            log.info(
                "framework_message_dropped",
                executor_id=message.executor_id,
                reason="the executor is not running here",
            )
            return
        self.send_message(executor.pid, message)

    def _shutdown_executor(self, executor: _Executor) -> None:
        """Ask a custom executor to exit; destroy its container after the grace period."""
        if executor.state is ExecutorState.TERMINATED or executor.destroying:
            return
        if not executor.launched:
            executor.shutdown_requested = True  # _launched destroys it
            return
        if executor.pid is None:
            self._destroy(executor, 0.0)
            return
        if executor.state is ExecutorState.TERMINATING:
            return
        executor.state = ExecutorState.TERMINATING
        self.send_message(
            executor.pid, ShutdownExecutor(executor.framework_id, executor.executor_id)
        )
        grace = self.options.executor_shutdown_grace
        executor.timer = self.delay(grace, self._executor_timeout, executor, "shutdown")

    def _executor_timeout(self, executor: _Executor, what: str) -> None:
        executor.timer = None
        if executor.state is ExecutorState.TERMINATED:
            return
        if what == "registration" and executor.state is not ExecutorState.REGISTERING:
            return
        if what == "reregistration" and executor.state is not ExecutorState.RECOVERING:
            return
        log.warning("executor_timeout", executor_id=executor.executor_id, waiting_for=what)
        self._destroy(executor, 0.0)

    # -- containers -------------------------------------------------------------------------

    def _new_executor(
        self, framework: _Framework, info: ExecutorInfo, command_task: bool
    ) -> _Executor:
        container_id = new_container_id()
        executor = _Executor(
            framework_id=framework.id,
            executor_id=info.executor_id,
            info=info,
            command_task=command_task,
            container_id=container_id,
            sandbox=sandbox_path(
                self.options.work_dir, framework.id, info.executor_id, container_id
            ),
        )
        framework.executors[info.executor_id] = executor
        return executor

    def _launch(self, executor: _Executor, config: ContainerConfig) -> None:
        log.info(
            "executor_launching",
            executor_id=executor.executor_id,
            container_id=executor.container_id,
            command=config.command,
        )
        coroutine = self.containerizer.launch(executor.container_id, config)
        executor.launch = self._run_async(coroutine, functools.partial(self._launched, executor))

    def _launched(
        self, executor: _Executor, status: ContainerStatus | None, error: BaseException | None
    ) -> None:
        if error is not None:
            log.warning(
                "executor_launch_failed", executor_id=executor.executor_id, error=str(error)
            )
            message = f"the container could not start: {error}"
            reason = Reason.REASON_CONTAINER_LAUNCH_FAILED
            self._executor_ended(executor, None, message, reason)
            return
        executor.launched = True
        if status is not None:
            executor.container = status.checkpoint
            self._checkpoint_executor(executor)
        coroutine = self.containerizer.wait(executor.container_id)
        self._run_async(coroutine, functools.partial(self._container_ended, executor))
        if executor.command_task:
            if executor.kill_requested:
                self._destroy(executor, executor.kill_grace)
                return
            executor.state = ExecutorState.RUNNING
            (task_id,) = executor.tasks
            self._executor_update(executor, task_id, TaskState.TASK_RUNNING)
            return
        if executor.shutdown_requested:
            self._destroy(executor, 0.0)
            return
        if executor.state is not ExecutorState.LAUNCHING:
            return  # it registered before the launch returned
        executor.state = ExecutorState.REGISTERING
        timeout = self.options.executor_registration_timeout
        executor.timer = self.delay(timeout, self._executor_timeout, executor, "registration")

    def _destroy(self, executor: _Executor, grace: float) -> None:
        if executor.destroying or not executor.launched:
            return  # under way, or _launched destroys it once launched
        if executor.state is ExecutorState.TERMINATED:
            return  # ended and forgotten
        executor.destroying = True
        executor.state = ExecutorState.TERMINATING
        coroutine = self.containerizer.destroy(executor.container_id, grace)
        self._run_async(coroutine, functools.partial(self._destroyed, executor))

    def _destroyed(self, executor: _Executor, _result: Any, error: BaseException | None) -> None:
        if error is not None:  # the wait still reports the end, if there is one
            log.error(
                "container_destroy_failed",
                container_id=executor.container_id,
                executor_id=executor.executor_id,
                error=str(error),
            )
            return
        self._forget(executor)

    def _container_ended(
        self,
        executor: _Executor,
        termination: ContainerTermination | None,
        error: BaseException | None,
    ) -> None:
        if error is not None:
            log.error("container_wait_failed", container_id=executor.container_id, error=str(error))
        if termination is None:
            message = f"the executor's container was lost: {error}"
        else:
            message = f"the executor {termination.describe()}"
        if not executor.destroying:
            # Kill what the main process left behind in its session; _destroyed forgets it.
            executor.destroying = True
            coroutine = self.containerizer.destroy(executor.container_id, 0.0)
            self._run_async(coroutine, functools.partial(self._destroyed, executor))
        self._executor_ended(executor, termination, message, Reason.REASON_EXECUTOR_TERMINATED)

    def _forget(self, executor: _Executor) -> None:
        try:
            self.containerizer.forget(executor.container_id)
        except ContainerError as problem:
            log.warning(
                "container_forget_failed", container_id=executor.container_id, error=str(problem)
            )

    def _executor_ended(
        self,
        executor: _Executor,
        termination: ContainerTermination | None,
        message: str,
        reason: Reason,
    ) -> None:
        """Report the end of every task still open, then forget the executor."""
        if executor.timer is not None:
            executor.timer.cancel()
            executor.timer = None
        executor.state = ExecutorState.TERMINATED
        log.info(
            "executor_ended",
            executor_id=executor.executor_id,
            container_id=executor.container_id,
            how=message,
        )
        if executor.command_task:
            (task_id,) = executor.tasks
            if not executor.states[task_id].is_terminal:
                state, text = _command_outcome(executor, termination, message)
                failed = state is TaskState.TASK_FAILED and termination is None
                limitation = _limitation(termination) if state is TaskState.TASK_FAILED else None
                if limitation is not None:
                    text = f"{termination.message or limitation.name} ({text})"
                self._executor_update(
                    executor, task_id, state, text, limitation or (reason if failed else None)
                )
        else:
            limitation = _limitation(termination)
            if limitation is not None:
                message, reason = termination.message or message, limitation
            for task_id, task in executor.all_tasks().items():
                if not executor.states[task_id].is_terminal:
                    self._agent_update(
                        executor.framework_id,
                        task,
                        TaskState.TASK_FAILED,
                        message,
                        reason,
                        executor,
                    )
            if self.master is not None and self.registered and self.agent_id is not None:
                status = (
                    -1
                    if termination is None or termination.status is None
                    else (termination.status)
                )
                self.send_message(
                    self.master,
                    ExitedExecutor(
                        self.agent_id, executor.framework_id, executor.executor_id, status
                    ),
                )
        self._close_bridge(executor)
        framework = self.frameworks.get(executor.framework_id)
        if framework is not None:
            if framework.info.checkpoint:
                self.checkpoints.remove_executor(executor.framework_id, executor.executor_id)
            if framework.executors.get(executor.executor_id) is executor:
                framework.completed_executors.append(
                    mesos_state.executor_json(self, executor, set())
                )
            framework.executors.pop(executor.executor_id, None)
            self._maybe_remove_framework(framework)

    def _maybe_remove_framework(self, framework: _Framework) -> None:
        if framework.shutting_down and not framework.executors:
            if self.frameworks.pop(framework.id, None) is not None:
                self.completed_frameworks.append(mesos_state.framework_json(self, framework, set()))
            self.updates.cleanup(framework.id)
            self.checkpoints.remove_framework(framework.id)
            log.info("framework_removed", framework_id=framework.id)

    # -- status updates ---------------------------------------------------------------------

    def _executor_update(
        self,
        executor: _Executor,
        task_id: TaskID,
        state: TaskState,
        message: str | None = None,
        reason: Reason | None = None,
    ) -> None:
        """An update made by the built-in command executor (source SOURCE_EXECUTOR)."""
        executor.states[task_id] = state
        status = TaskStatus(
            task_id=task_id,
            state=state,
            message=message,
            source=Source.SOURCE_EXECUTOR,
            reason=reason,
            agent_id=self.agent_id,
            executor_id=executor.executor_id,
            timestamp=time.time(),
            uuid=new_status_uuid(),
        )
        self._status_update(executor.framework_id, status)

    def _agent_update(
        self,
        framework_id: FrameworkID,
        task: TaskInfo,
        state: TaskState,
        message: str | None = None,
        reason: Reason | None = None,
        executor: _Executor | None = None,
    ) -> None:
        """An update the agent makes about a task (source SOURCE_AGENT)."""
        if executor is not None:
            executor.states[task.task_id] = state
        status = TaskStatus(
            task_id=task.task_id,
            state=state,
            message=message,
            source=Source.SOURCE_AGENT,
            reason=reason,
            agent_id=self.agent_id,
            executor_id=None if executor is None else executor.executor_id,
            timestamp=time.time(),
            uuid=new_status_uuid(),
        )
        self._status_update(framework_id, status)

    def _status_update(self, framework_id: FrameworkID, status: TaskStatus) -> bool:
        """Into the task's stream; False if the manager refused it."""
        assert status.uuid is not None
        log.info(
            "status_update",
            task_id=status.task_id,
            state=status.state.value,
            framework_id=framework_id,
            message=status.message,
        )
        payload = StatusUpdate(framework_id=framework_id, status=status, pid=str(self.pid))
        update = StreamUpdate(
            framework_id=framework_id,
            task_id=status.task_id,
            uuid=status.uuid,
            state=status.state.value,
            terminal=status.state.is_terminal,
            payload=payload,
        )
        actions = self.updates.update(framework_id, status.task_id, update, self._now())
        accepted = not any(isinstance(action, (Refused, Ignored)) for action in actions)
        if accepted:
            counter = self._terminal_counts.get(status.state)
            if counter is not None:
                counter.inc()
            self._stream_states[(framework_id, status.task_id)] = status.state.value
            self._checkpoint_stream(framework_id, status.task_id)
        self._apply(actions)
        return not any(isinstance(action, Refused) for action in actions)

    @receives(StatusUpdateAcknowledgement)
    def acknowledgement(self, sender: UPID | None, message: StatusUpdateAcknowledgement) -> None:
        actions = self.updates.acknowledge(
            message.framework_id, message.task_id, message.uuid, self._now()
        )
        if not any(isinstance(action, (Refused, Ignored)) for action in actions):
            self._checkpoint_stream(message.framework_id, message.task_id)
            if any(isinstance(action, StreamClosed) for action in actions):
                # The stream's file goes: the executor's record keeps the final state.
                framework = self.frameworks.get(message.framework_id)
                executor = framework and self._find_task(framework, message.task_id)
                if executor:
                    self._checkpoint_executor(executor)
        self._apply(actions)

    def _tick(self) -> None:
        self._retry_timer = None
        self._apply(self.updates.tick(self._now()))

    def _apply(self, actions: list) -> None:
        """Carry out the status-update manager's decisions."""
        for action in actions:
            if isinstance(action, Forward):
                if self.master is not None:
                    payload: Message = action.update.payload
                    self.send_message(self.master, payload)
            elif isinstance(action, Schedule):
                if self._retry_timer is not None:
                    self._retry_timer.cancel()
                self._retry_timer = self.delay(max(action.at - self._now(), 0.0), self._tick)
            elif isinstance(action, StreamClosed):
                log.debug("status_stream_closed", task_id=action.task_id)
            elif isinstance(action, Ignored):
                log.debug("status_update_repeated", task_id=action.task_id, reason=action.reason)
            elif isinstance(action, Refused):
                log.warning("status_update_refused", task_id=action.task_id, reason=action.reason)

    # -- helpers ----------------------------------------------------------------------------

    def _now(self) -> float:
        return self.runtime.clock.now()

    # -- HTTP: Mesos's agent endpoints and the v1 executor API ---------------------------------

    def _install_routes(self) -> None:
        """Routes at ``/agent/...``, and at Mesos's paths through aliases."""
        operator = OperatorApi(self)
        routes = {
            "/state": self._state_route,
            "/api/v1/executor": self._executor_api_route,
            "/api/v1": operator.handle,
            "/version": operator.version_route,
            "/health": operator.health_route,
            "/flags": operator.flags_route,
            "/files/browse": functools.partial(self._files_route, files.browse),
            "/files/read": functools.partial(self._files_route, files.read),
            "/files/download": functools.partial(self._files_route, files.download),
            "/containers": self._containers_route,
        }
        for path, handler in routes.items():
            self.route(path, handler)
        aliases = {
            "/state": "/state",
            "/state.json": "/state",
            "/slave(1)/state": "/state",
            "/slave(1)/state.json": "/state",
            "/api/v1/executor": "/api/v1/executor",
            "/slave(1)/api/v1/executor": "/api/v1/executor",
            "/files/browse": "/files/browse",
            "/files/browse.json": "/files/browse",
            "/files/read": "/files/read",
            "/files/read.json": "/files/read",
            "/files/download": "/files/download",
            "/files/download.json": "/files/download",
            "/containers": "/containers",
            "/slave(1)/containers": "/containers",
            "/api/v1": "/api/v1",
            "/slave(1)/api/v1": "/api/v1",
            "/version": "/version",
            "/health": "/health",
            "/slave(1)/health": "/health",
            "/flags": "/flags",
            "/slave(1)/flags": "/flags",
        }
        for public, path in aliases.items():
            taken = self.runtime.http_aliases.get(public)
            if public in _SHARED_PATHS and taken is not None and taken[0] != self.pid.id:
                # A master in the same runtime serves these; its own stay at /agent/...
                log.info("agent_alias_taken", path=public, by=taken[0])
                continue
            self.alias(public, path)

    def _register_metrics(self) -> None:
        """Mesos's ``slave/*`` metrics, served with the runtime's ``/metrics/snapshot``."""
        metrics = self.runtime.metrics
        taken = [name for name in mesos_state.metrics(self) if metrics.get(name) is not None]
        if taken:  # another agent serves this runtime's metrics: one agent per runtime
            log.warning("agent_metrics_not_registered", taken=taken[:3])
            return
        self._metrics = [
            metrics.gauge(name, functools.partial(self._metric, name))
            for name in mesos_state.metrics(self)
        ]
        self._terminal_counts = {
            state: metrics.counter(f"slave/tasks_{state.name.removeprefix('TASK_').lower()}")
            for state in TaskState
            if state.is_terminal
        }
        self._metrics.extend(self._terminal_counts.values())

    def _metric(self, name: str) -> float:
        return mesos_state.metrics(self)[name]

    def _state_route(self, request: Any) -> Any:
        """``/state`` (``/slave(1)/state``, ``/agent/state``): Mesos's agent state JSON, with
        Corral's keys; ``?jsonp=callback`` wraps it as Mesos's web UI asks."""
        from aiohttp import web

        isolators = list(getattr(self.containerizer, "active_isolators", lambda: ())())
        pending = {
            (framework_id, task_id)
            for framework_id, task_id in self.updates.streams()
            if self.updates.pending(framework_id, task_id)
        }
        state = mesos_state.agent_state(self, isolators, pending)
        callback = request.query.get("jsonp")
        if callback:
            if not callback.replace("_", "").replace(".", "").isalnum():
                return web.Response(
                    status=400,
                    text=f"jsonp callback {callback!r} is not a JavaScript name\n",
                    content_type="text/plain",
                )
            text = f"{callback}({json.dumps(state)});"
            return web.Response(text=text, content_type="text/javascript")
        return web.json_response(state)

    def _files_route(self, serve: Callable[[Path, Any], Any], request: Any) -> Future[Any]:
        """Sandbox files (agent/files.py), read off the actor: they may be large or slow."""
        loop = asyncio.get_running_loop()
        query = dict(request.query)
        work = self.options.work_dir
        return self._answer(loop.run_in_executor(None, serve, work, query))

    def _containers_route(self, request: Any) -> Future[Any]:
        """``/containers``: every launched container, with its resource statistics."""
        from aiohttp import web

        entries: list[Future[dict[str, Any]]] = []
        for executor in self._executors():
            if not executor.launched or executor.state is ExecutorState.TERMINATED:
                continue
            promise: Promise[dict[str, Any]] = Promise()

            def then(stats, error, executor=executor, promise=promise) -> None:
                statistics = None if error is not None else stats.to_json()
                promise.set(mesos_state.container_json(executor, statistics))

            self._run_async(self.containerizer.usage(executor.container_id), then)
            entries.append(promise.future)
        return collect(entries).then(lambda listed: web.json_response(listed))

    def _answer(self, awaitable: Awaitable[Any]) -> Future[Any]:
        """A route's answer computed on the loop (off the actor), as a Future of a response."""
        from aiohttp import web

        promise: Promise[Any] = Promise()

        def then(response: Any, error: BaseException | None) -> None:
            if error is not None:
                log.error("http_answer_failed", error=repr(error))
                response = web.Response(
                    status=500,
                    text=f"the agent failed to answer: {error!r} (details in its log)\n",
                    content_type="text/plain",
                )
            promise.set(response)

        self._run_async(awaitable, then)
        return promise.future

    def _executor_api_route(self, request: Any) -> Any:
        """``POST /api/v1/executor``: an HTTP executor's SUBSCRIBE, UPDATE and MESSAGE calls."""
        from aiohttp import web

        try:
            call = parse_call(request.method, request.headers, request_body(request))
            if not self.recovered:
                raise CallError(503, "the agent has not finished recovery; retry shortly")
            if call.type == "SUBSCRIBE":
                return self._subscribe_executor(call)
            executor = self._subscribed_executor(call)
        except CallError as error:
            log.info("executor_call_refused", status=error.status, reason=error.reason)
            return error.response()
        bridge = executor.bridge
        assert bridge is not None
        if call.type == "UPDATE":
            assert call.status is not None
            self.runtime.dispatch(bridge, ExecutorBridge.update, call.status)
        else:
            self.runtime.dispatch(bridge, ExecutorBridge.message, call.data)
        return web.Response(status=202, headers={"Content-Length": "0"})

    def _subscribed_executor(self, call: Call) -> _Executor:
        """The executor an UPDATE or MESSAGE call is from; it must have subscribed."""
        framework = self.frameworks.get(call.framework_id)
        executor = None if framework is None else framework.executors.get(call.executor_id)
        if executor is None or executor.command_task:
            raise CallError(
                400,
                f"no executor {call.executor_id} of framework {call.framework_id} runs on this "
                "agent",
            )
        if executor.bridge is None or executor.pid != executor.bridge.pid:
            raise CallError(
                400,
                f"executor {call.executor_id} has not subscribed (or its subscription ended); "
                "SUBSCRIBE first, listing unacknowledged updates in the subscription",
            )
        return executor

    def _subscribe_executor(self, call: Call) -> Stream:
        """A v1 executor subscribes: a new bridge registers for it (replacing any earlier
        subscription's); what Mesos would not serve gets a SHUTDOWN event."""
        framework = self.frameworks.get(call.framework_id)
        executor = None if framework is None else framework.executors.get(call.executor_id)
        if framework is None or executor is None or executor.command_task:
            return refused_subscription(
                f"no executor {call.executor_id} of framework {call.framework_id} runs here"
            )
        if executor.state in (ExecutorState.TERMINATING, ExecutorState.TERMINATED):
            return refused_subscription(f"executor {call.executor_id} is {executor.state.value}")
        if executor.bridge is not None:
            log.info("executor_resubscribing", executor_id=executor.executor_id)
            self._close_bridge(executor)
        if executor.state is ExecutorState.RUNNING:
            executor.pid = None  # tasks wait in the queue until the new bridge registers
        reregister = executor.state in (ExecutorState.RECOVERING, ExecutorState.RUNNING)
        bridge: ExecutorBridge | None = None

        def closed() -> None:
            if bridge is not None:
                self._bridge_ended(executor, bridge)

        stream = subscription_stream(closed)
        bridge = ExecutorBridge(
            self.pid,
            stream,
            framework.info,
            executor.info,
            executor.container_id,
            call,
            reregister,
        )
        executor.bridge = bridge
        self.runtime.spawn(bridge)
        return stream

    def _bridge_ended(self, executor: _Executor, bridge: ExecutorBridge) -> None:
        """A subscription's stream ended (the executor went away or was replaced). Its tasks
        go on: the executor may subscribe again; its container's end is what ends them."""
        if executor.bridge is bridge:
            executor.bridge = None
            log.info("executor_disconnected", executor_id=executor.executor_id, bridge=bridge.pid)
        if executor.pid == bridge.pid:
            executor.pid = None
        with contextlib.suppress(Exception):
            self.runtime.terminate(bridge)

    def _close_bridge(self, executor: _Executor) -> None:
        bridge = executor.bridge
        if bridge is None:
            return
        executor.bridge = None
        if executor.pid == bridge.pid:
            executor.pid = None
        with contextlib.suppress(Exception):
            self.runtime.terminate(bridge)

    def usage_report(self) -> Future[list[dict[str, Any]]]:
        """``/monitor/statistics`` entries: one per running container, with its usage."""
        reports: list[Future[dict[str, Any] | None]] = []
        for framework in self.frameworks.values():
            for executor in framework.executors.values():
                if not executor.launched or executor.destroying:
                    continue
                promise: Promise[dict[str, Any] | None] = Promise()

                def then(stats, error, executor=executor, promise=promise) -> None:
                    if error is not None:  # ended meanwhile: left out
                        promise.set(None)
                        return
                    promise.set(
                        {
                            "framework_id": str(executor.framework_id),
                            "executor_id": str(executor.executor_id),
                            "executor_name": executor.info.name or "",
                            "source": "",
                            "statistics": stats.to_json(),
                        }
                    )

                self._run_async(self.containerizer.usage(executor.container_id), then)
                reports.append(promise.future)
        return collect(reports).then(lambda entries: [e for e in entries if e is not None])

    def _executors(self) -> list[_Executor]:
        return [e for f in self.frameworks.values() for e in f.executors.values()]

    def _find_task(self, framework: _Framework, task_id: TaskID) -> _Executor | None:
        for executor in framework.executors.values():
            if task_id in executor.tasks or task_id in executor.queued:
                return executor
        return None

    def _reported_tasks(self) -> list[Task]:
        """For ReregisterAgent: the tasks of live executors, and the tasks whose executor is
        gone but whose last updates still wait for an acknowledgement (the master must not
        take those for lost: their updates are on the way)."""
        assert self.agent_id is not None
        tasks = []
        covered = set()
        for executor in self._executors():
            for task_id, task in executor.all_tasks().items():
                covered.add((executor.framework_id, task_id))
                tasks.append(
                    Task(
                        name=task.name,
                        task_id=task_id,
                        framework_id=executor.framework_id,
                        agent_id=self.agent_id,
                        state=executor.states.get(task_id, TaskState.TASK_STAGING),
                        executor_id=None if executor.command_task else executor.executor_id,
                        resources=task.resources,
                    )
                )
        for framework_id, task_id in self.updates.streams():
            pending = self.updates.pending(framework_id, task_id)
            if (framework_id, task_id) in covered or not pending:
                continue
            status: TaskStatus = pending[-1].payload.status
            tasks.append(
                Task(
                    name=task_id,
                    task_id=TaskID(task_id),
                    framework_id=FrameworkID(framework_id),
                    agent_id=self.agent_id,
                    state=status.state,
                    statuses=(status,),
                )
            )
        return tasks

    def _environment(
        self,
        framework: _Framework,
        executor: _Executor,
        command: CommandInfo,
        task_id: TaskID | None,
    ) -> dict[str, str]:
        """A few of the agent's variables, the command's own, then Corral's (which win)."""
        environment = {k: os.environ[k] for k in _INHERITED_ENVIRONMENT if k in os.environ}
        environment.setdefault("PATH", _DEFAULT_PATH)
        environment.update(self.options.extra_environment)
        environment.update({variable.name: variable.value for variable in command.environment})
        environment.update(
            {
                "CORRAL_AGENT_PID": str(self.pid),
                "CORRAL_FRAMEWORK_ID": str(framework.id),
                "CORRAL_EXECUTOR_ID": str(executor.executor_id),
                "CORRAL_DIRECTORY": str(executor.sandbox),
                "CORRAL_SANDBOX": str(executor.sandbox),
                "CORRAL_CHECKPOINT": "1" if framework.info.checkpoint else "0",
                "CORRAL_RECOVERY_TIMEOUT": str(self.options.recovery_timeout),
            }
        )
        if self.agent_id is not None:
            environment["CORRAL_AGENT_ID"] = str(self.agent_id)
        if task_id is not None:
            environment["CORRAL_TASK_ID"] = str(task_id)
        environment.update(self._mesos_environment(framework, executor))
        return environment

    def _mesos_environment(self, framework: _Framework, executor: _Executor) -> dict[str, str]:
        """What Mesos's agent exports to executors, so that executors written for Mesos (the
        v1 executor API's clients) find their agent, ids and sandbox."""
        environment = {
            "MESOS_FRAMEWORK_ID": str(framework.id),
            "MESOS_EXECUTOR_ID": str(executor.executor_id),
            "MESOS_DIRECTORY": str(executor.sandbox),
            "MESOS_SANDBOX": str(executor.sandbox),
            "MESOS_CHECKPOINT": "1" if framework.info.checkpoint else "0",
            "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": duration(self.options.executor_shutdown_grace),
            "MESOS_SUBSCRIPTION_BACKOFF_MAX": duration(SUBSCRIPTION_BACKOFF_MAX),
            "MESOS_RECOVERY_TIMEOUT": duration(self.options.recovery_timeout),
            "MESOS_SLAVE_PID": str(self.pid),
            "MESOS_HTTP_COMMAND_EXECUTOR": "0",
        }
        if self.runtime.http_address is not None:
            environment["MESOS_AGENT_ENDPOINT"] = self.runtime.http_address
        if self.agent_id is not None:
            environment["MESOS_SLAVE_ID"] = environment["MESOS_AGENT_ID"] = str(self.agent_id)
        return environment

    def _run_async(
        self,
        awaitable: Awaitable[Any],
        then: Callable[[Any, BaseException | None], None],
    ) -> asyncio.Task:
        """Run ``awaitable`` on the runtime's loop; ``then(result, error)`` runs inside the actor.

        The task is kept until it is done, so none is lost; a ``then`` that raises is logged.
        """

        async def run() -> Any:
            return await awaitable

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)

        def come_back(result: Any, error: BaseException | None) -> None:
            try:
                then(result, error)
            except Exception:
                log.exception("continuation_failed", continuation=repr(then))

        def done(finished: asyncio.Task) -> None:
            self._tasks.discard(finished)
            if finished.cancelled():
                return  # the runtime is stopping
            error = finished.exception()
            result = None if error is not None else finished.result()
            self.runtime.dispatch(self, come_back, result, error)

        task.add_done_callback(done)
        return task


def _is_bridge(executor: _Executor, sender: UPID | None) -> bool:
    return executor.bridge is not None and sender == executor.bridge.pid


def _encode_update(payload: StatusUpdate) -> dict[str, Any]:
    return payload.to_wire()


def _decode_update(data: Any) -> StatusUpdate:
    return StatusUpdate.from_wire(data)


def _command_of(command: CommandInfo) -> str | list[str]:
    """What the containerizer runs: a shell string, or argv with ``value`` as the program."""
    if command.shell:
        if not command.value or not command.value.strip():
            raise ValueError("the command is a shell command (shell: true) with no 'value'")
        return command.value
    if not command.value:
        raise ValueError("the command (shell: false) has no 'value' naming the program")
    return [command.value, *command.arguments[1:]]


def _scalars(resources: Any) -> dict[str, float]:
    return {
        name: resources.scalar(name) for name in ("cpus", "mem", "disk") if resources.scalar(name)
    }


def _limitation(termination: ContainerTermination | None) -> Reason | None:
    """The task-state reason of a container an isolator ended (memory, disk), if so."""
    if termination is None or termination.reason is None:
        return None
    return Reason[termination.reason.value]


def _command_outcome(
    executor: _Executor, termination: ContainerTermination | None, lost: str
) -> tuple[TaskState, str]:
    """The command task's final state and message, from how its container ended."""
    if termination is None:
        return TaskState.TASK_FAILED, lost
    if termination.signal is not None:
        name = signal.Signals(termination.signal).name
        text = f"Command terminated with signal {name}"
    elif termination.exit_code is not None:
        text = f"Command exited with status {termination.exit_code}"
    else:
        text = "Command ended with an unknown status"
    if executor.kill_requested:
        return TaskState.TASK_KILLED, f"Task killed ({text})"
    if termination.exit_code == 0:
        return TaskState.TASK_FINISHED, text
    return TaskState.TASK_FAILED, text
