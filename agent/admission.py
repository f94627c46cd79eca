"""What this agent takes: tasks to launch, and executors that register or subscribe.

Plain functions of the agent's records that return decisions; the agent actor carries them
out. What a task says is judged once, by the kernel (``corral.task_validation``, as the
master and the scheduler driver judge it); what depends on this agent's state is judged here:
a task id already held, a framework shutting down, an executor id taken by a command task, an
executor that is ending. A task refused gets a status update from the agent (TASK_ERROR or
TASK_DROPPED, with a sentence that says what is wrong); an executor refused is told why, in
``ShutdownExecutor.reason`` or (over HTTP) in the error's body.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from agent.executor_lifecycle import Event, Registered, Resubscribed
from agent.executor_run import ExecutorRun
from agent.framework_run import FrameworkRun
from corral.ids import ExecutorID, FrameworkID
from corral.protocol import ExecutorInfo, TaskInfo
from corral.task_states import Reason, TaskState
from corral.task_validation import command_argv, group_problem, task_problem
from libprocess import UPID


@dataclass(frozen=True)
class Refuse:
    """Answer the task with an update from the agent; nothing else changes."""

    state: TaskState
    reason: Reason
    message: str


@dataclass(frozen=True)
class Ignore:
    """Take no notice (logged): the task is already here."""

    why: str


@dataclass(frozen=True)
class NewExecutor:
    """Start an executor run for the task: the agent's command executor, or a custom one."""

    info: ExecutorInfo
    argv: str | list[str]
    command_task: bool


@dataclass(frozen=True)
class ToExecutor:
    """Give the task to a custom executor that runs here (or queue it until it registers)."""

    executor: ExecutorRun


Decision = Refuse | Ignore | NewExecutor | ToExecutor


def admit_task(
    framework: FrameworkRun,
    task: TaskInfo,
    executor: ExecutorInfo | None,
    judged: bool = False,
) -> Decision:
    """Where ``task`` goes: onto ``executor`` (a custom one), or the agent's command executor
    when there is none. ``judged``: the kernel has judged the task already (a task group)."""
    if framework.executor_of(task.task_id) is not None:
        return Ignore("a task with this id already runs here")
    if framework.shutting_down:
        return Refuse(
            TaskState.TASK_DROPPED,
            Reason.REASON_FRAMEWORK_REMOVED,
            "the framework is shutting down on this agent",
        )
    if not judged:
        problem = task_problem(task, framework.id, resources=False)
        if problem is not None:
            return Refuse(TaskState.TASK_ERROR, Reason.REASON_TASK_INVALID, problem)
    if executor is None:
        return _command_executor(framework, task)
    return _custom_executor(framework, executor)


def admit_group(
    framework: FrameworkRun, executor: ExecutorInfo, tasks: Sequence[TaskInfo]
) -> Refuse | None:
    """A task group is judged whole (all of it launches or none, as at the master)."""
    problem = group_problem(executor, tasks, framework.id, resources=False)
    if problem is None:
        return None
    return Refuse(TaskState.TASK_ERROR, Reason.REASON_TASK_GROUP_INVALID, problem)


def _command_executor(framework: FrameworkRun, task: TaskInfo) -> Decision:
    assert task.command is not None  # judged: a task without an executor has a command
    executor_id = ExecutorID(task.task_id)
    if executor_id in framework.executors:  # an executor (not a task) with this id exists
        return Refuse(
            TaskState.TASK_ERROR,
            Reason.REASON_TASK_INVALID,
            f"executor id '{executor_id}' is taken on this agent; give the task another id",
        )
    info = ExecutorInfo(
        executor_id=executor_id,
        framework_id=framework.id,
        command=task.command,
        name=f"Command Executor (Task: {task.task_id})",
    )
    return NewExecutor(info, command_argv(task.command), command_task=True)


def _custom_executor(framework: FrameworkRun, info: ExecutorInfo) -> Decision:
    running = framework.executors.get(info.executor_id)
    if running is None:
        assert info.command is not None  # judged: a custom executor has a command
        if info.framework_id is None:
            info = dataclasses.replace(info, framework_id=framework.id)
        return NewExecutor(info, command_argv(info.command), command_task=False)
    if running.command_task:
        return Refuse(
            TaskState.TASK_ERROR,
            Reason.REASON_TASK_INVALID,
            f"executor id '{info.executor_id}' is a command task's here; give the executor "
            "an id of its own",
        )
    if running.state.phase in ("TERMINATING", "TERMINATED"):
        return Refuse(
            TaskState.TASK_DROPPED,
            Reason.REASON_EXECUTOR_TERMINATED,
            f"executor {info.executor_id} is shutting down; launch the task again once it "
            "has ended (or under another executor id)",
        )
    return ToExecutor(running)


# -- executors ------------------------------------------------------------------------------


def _unknown(
    framework: FrameworkRun | None,
    framework_id: FrameworkID,
    executor_id: ExecutorID,
    executor: ExecutorRun | None,
) -> str | None:
    """Why no executor that may register is known by these ids (None: it is known)."""
    if framework is None:
        return (
            f"framework {framework_id} is not known on this agent (none of its tasks runs "
            "here); an executor registers with the agent that launched it"
        )
    if executor is None:
        return (
            f"framework {framework_id} has no executor {executor_id} on this agent; an "
            "executor registers with the agent that launched it, under the id it was "
            "launched with"
        )
    if executor.command_task:
        return (
            f"executor {executor_id} of framework {framework_id} is the command executor of "
            f"task {executor_id}, which the agent runs itself; a custom executor needs an id "
            "of its own"
        )
    return None


def registration_refusal(
    framework: FrameworkRun | None,
    framework_id: FrameworkID,
    executor_id: ExecutorID,
    sender: UPID,
    event: Event,
) -> str | None:
    """Why a (re-)registration from ``sender`` is refused, as a sentence (None: it is
    taken). ``event`` is what it would be to the executor's lifecycle."""
    executor = None if framework is None else framework.executors.get(executor_id)
    unknown = _unknown(framework, framework_id, executor_id, executor)
    if unknown is not None or executor is None:
        return unknown
    bridge = executor.bridge
    if bridge is not None and sender != bridge.pid:
        return (
            f"executor {executor_id} of framework {framework_id} subscribed over HTTP; only "
            f"the bridge of its latest subscription ({bridge.pid}) registers for it, not "
            f"{sender}"
        )
    if not executor.lifecycle.allows(event):
        return f"executor {executor_id} of framework {framework_id} {_state_problem(executor)}"
    return None


def subscription_refusal(
    framework: FrameworkRun | None,
    framework_id: FrameworkID,
    executor_id: ExecutorID,
) -> tuple[int, str] | None:
    """Why an HTTP executor's SUBSCRIBE is refused: (HTTP status, sentence); None: served."""
    executor = None if framework is None else framework.executors.get(executor_id)
    unknown = _unknown(framework, framework_id, executor_id, executor)
    if unknown is not None or executor is None:
        return 400, unknown or ""
    lifecycle = executor.lifecycle
    if lifecycle.allows(Registered()) or lifecycle.allows(Resubscribed()):
        return None
    return 409, f"executor {executor_id} of framework {framework_id} {_state_problem(executor)}"


def _state_problem(executor: ExecutorRun) -> str:
    """The rest of a sentence: why an executor in this state may not register now."""
    state = executor.state
    if state.phase in ("TERMINATING", "TERMINATED"):
        return f"is {state.value} on this agent: it is being shut down and may not register again"
    if state.phase == "RUNNING":
        return (
            f"is {state.value} on this agent: it has registered already (a driver registers "
            "once; a restarted agent asks it to re-register)"
        )
    if state.phase == "RECOVERING":
        return (
            f"is {state.value} on this agent: a recovered executor answers ReconnectExecutor "
            "with ReregisterExecutor"
        )
    return f"is {state.value} on this agent: it registers with RegisterExecutor"
