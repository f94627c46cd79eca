"""One run of an executor on this agent, and the tasks it holds: the agent's records.

An ``ExecutorRun`` is one container of one executor (a command task's or a custom executor):
its ids, sandbox, container, the driver that registered for it, its lifecycle
(agent/executor_lifecycle.py) and its tasks. A ``TaskRecord`` is the one place a task's
latest state is kept on this agent: status updates set it, and everything else (the state
JSON, the operator API, metrics, re-registration) reads it from here. What is still
unacknowledged is the status-update manager's to say (agent/status_updates.py).

Records are the agent actor's to change; the HTTP surfaces only read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.executor_bridge import ExecutorBridge
from agent.executor_lifecycle import ExecutorKind, ExecutorLifecycle, ExecutorState
from agent.sandbox import sandbox_path
from containerizer import ContainerState
from corral.ids import ContainerID, ExecutorID, FrameworkID, TaskID, new_container_id
from corral.protocol import ExecutorInfo, TaskInfo, TaskStatus
from corral.task_states import TaskState
from libprocess import UPID, Timer

DEFAULT_KILL_GRACE = 3.0  # seconds between SIGTERM and SIGKILL when the task names none

# States in which the executor's container is known to run (launched or found again).
CONTAINER_UP = frozenset(
    {
        ExecutorState.REGISTERING,
        ExecutorState.REREGISTERING,
        ExecutorState.RUNNING,
        ExecutorState.SHUTTING_DOWN,
        ExecutorState.DESTROYING,
    }
)


@dataclass(eq=False)
class TaskRecord:
    """A task this agent holds."""

    info: TaskInfo
    # The task's latest state here: the one copy (see the module docstring).
    state: TaskState = TaskState.TASK_STAGING
    # Waiting for its (custom) executor to register; given to it with RunTask once it has.
    queued: bool = False
    # The latest status update accepted for it here (its executor's or the agent's own), for
    # the state endpoints and for the check updates built on it (agent/task_checks.py).
    latest: TaskStatus | None = None
    # Killed because its health check failed: its final update says ``healthy: false``.
    killed_unhealthy: bool = False

    @property
    def task_id(self) -> TaskID:
        return self.info.task_id


@dataclass(eq=False)
class ExecutorRun:
    framework_id: FrameworkID
    info: ExecutorInfo
    container_id: ContainerID
    sandbox: Path
    lifecycle: ExecutorLifecycle
    # Every task of this run, queued or given to the executor; a task is in one run only.
    tasks: dict[TaskID, TaskRecord] = field(default_factory=dict)
    pid: UPID | None = None  # the executor driver, once registered (custom only)
    container: ContainerState | None = None  # what finds the container again (once launched)
    http: bool = False  # subscribed over the v1 executor API (reconnects by subscribing)
    # The bridge of its latest HTTP subscription (agent/executor_bridge.py), if one is open;
    # ``pid`` is this bridge's once it has registered.
    bridge: ExecutorBridge | None = None
    timer: Timer | None = None  # the timer of its state, when the state is timed

    @property
    def executor_id(self) -> ExecutorID:
        return self.info.executor_id

    @property
    def state(self) -> ExecutorState:
        return self.lifecycle.state

    @property
    def command_task(self) -> bool:
        """The agent's built-in command executor (one task, id = executor id)."""
        return self.lifecycle.is_command

    @property
    def container_up(self) -> bool:
        return self.lifecycle.state in CONTAINER_UP

    def queued(self) -> list[TaskRecord]:
        return [task for task in self.tasks.values() if task.queued]

    def launched(self) -> list[TaskRecord]:
        """Tasks given to the executor (all of a command executor's)."""
        return [task for task in self.tasks.values() if not task.queued]

    def open_tasks(self) -> list[TaskRecord]:
        return [task for task in self.tasks.values() if not task.state.is_terminal]

    def record(self) -> dict[str, Any]:
        """The checkpoint of this executor run (msgpack-able)."""
        return {
            "info": self.info.to_wire(),
            "command_task": self.command_task,
            "container_id": self.container_id,
            "sandbox": str(self.sandbox),
            "container": None if self.container is None else self.container.to_json(),
            "pid": self.pid,
            "tasks": [task.info.to_wire() for task in self.launched()],
            "queued": [task.info.to_wire() for task in self.queued()],
            "states": {task_id: task.state.value for task_id, task in self.tasks.items()},
            "kill_requested": self.lifecycle.killed,
            "kill_grace": self.lifecycle.kill_grace,
            "http": self.http,
            "killed_unhealthy": [t.task_id for t in self.tasks.values() if t.killed_unhealthy],
        }

    @classmethod
    def starting(
        cls,
        framework_id: FrameworkID,
        info: ExecutorInfo,
        command_task: bool,
        task: TaskInfo,
        work_dir: Path,
    ) -> ExecutorRun:
        """A new run for its first task, in a fresh container (and sandbox) of its own;
        a command task's kill policy sets the run's kill grace."""
        container_id = new_container_id()
        policy = task.kill_policy if command_task else None
        grace = None if policy is None else policy.grace_period
        lifecycle = ExecutorLifecycle(
            _kind(command_task),
            _name(framework_id, info.executor_id),
            kill_grace=DEFAULT_KILL_GRACE if grace is None else grace,
        )
        run = cls(
            framework_id=framework_id,
            info=info,
            container_id=container_id,
            sandbox=sandbox_path(work_dir, framework_id, info.executor_id, container_id),
            lifecycle=lifecycle,
        )
        run.tasks[task.task_id] = TaskRecord(task, queued=not command_task)
        return run

    @classmethod
    def from_record(cls, framework_id: FrameworkID, record: dict[str, Any]) -> ExecutorRun:
        """Rebuild a checkpointed run, RECOVERING (raises on a malformed record)."""
        info = ExecutorInfo.from_wire(record["info"])
        states = record.get("states", {})
        tasks: dict[TaskID, TaskRecord] = {}
        for key, queued in (("tasks", False), ("queued", True)):
            for wire in record.get(key, ()):
                task = TaskInfo.from_wire(wire)
                state = TaskState(states.get(task.task_id, "TASK_STAGING"))
                tasks[task.task_id] = TaskRecord(task, state, queued)
        for task_id in record.get("killed_unhealthy", ()):
            if task_id in tasks:
                tasks[task_id].killed_unhealthy = True
        command_task = bool(record["command_task"])
        ended = command_task and any(task.state.is_terminal for task in tasks.values())
        lifecycle = ExecutorLifecycle.restored(
            _kind(command_task),
            _name(framework_id, info.executor_id),
            killed=bool(record.get("kill_requested")),
            kill_grace=float(record.get("kill_grace", DEFAULT_KILL_GRACE)),
            doomed=ended,  # its task ended: what still runs of it goes
        )
        container = record.get("container")
        return cls(
            framework_id=framework_id,
            info=info,
            container_id=ContainerID(record["container_id"]),
            sandbox=Path(record["sandbox"]),
            lifecycle=lifecycle,
            tasks=tasks,
            pid=UPID(record["pid"]) if record.get("pid") else None,
            container=None if container is None else ContainerState.from_json(container),
            http=bool(record.get("http")),
        )


def _kind(command_task: bool) -> ExecutorKind:
    return ExecutorKind.COMMAND if command_task else ExecutorKind.CUSTOM


def _name(framework_id: FrameworkID, executor_id: ExecutorID) -> str:
    """How errors of the run's lifecycle name it."""
    return f"{executor_id} of framework {framework_id}"
