"""What makes a task launchable, whoever asks: the master at ACCEPT, the agent at RunTask and
the scheduler driver before it sends.

Only what the task itself says is judged here (its command, image, executor and resources);
what depends on a cluster's state (ids in use, which agent, what is left of the offers) is the
master's to judge. A problem is a sentence for the framework that says what was expected,
what was found and what to do; the master turns it into TASK_ERROR (docs/flows.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from corral.ids import FrameworkID
from corral.protocol import CommandInfo, ExecutorInfo, ExecutorType, TaskInfo
from corral.task_states import Reason, TaskState


@dataclass(frozen=True)
class Refusal:
    """Why the tasks of an operation are not launched, as their status update says it."""

    state: TaskState
    reason: Reason
    message: str


def invalid_task(message: str, reason: Reason = Reason.REASON_TASK_INVALID) -> Refusal:
    return Refusal(TaskState.TASK_ERROR, reason, message)


class InvalidCommand(ValueError):
    """A ``CommandInfo`` that names nothing to run."""


def command_argv(command: CommandInfo) -> str | list[str]:
    """What the containerizer runs: a shell string, or argv with ``value`` as the program."""
    if command.shell:
        if not command.value or not command.value.strip():
            raise InvalidCommand("the command is a shell command (shell: true) with no 'value'")
        return command.value
    if not command.value:
        raise InvalidCommand("the command (shell: false) has no 'value' naming the program")
    return [command.value, *command.arguments[1:]]


def task_problem(
    task: TaskInfo, framework_id: FrameworkID | None = None, *, resources: bool = True
) -> str | None:
    """What is wrong with one task of a LAUNCH (None: nothing). ``framework_id``, when given,
    is the framework the task is launched for: an executor naming another is refused.
    ``resources=False`` leaves the resources to whoever judged them against offers (an agent
    runs what its master admitted)."""
    if task.command is None and task.executor is None:
        return f"task {task.task_id} has neither 'command' nor 'executor'; give exactly one"
    if task.command is not None and task.executor is not None:
        return f"task {task.task_id} has both 'command' and 'executor'; give exactly one"
    if task.command is not None:
        problem = _command_problem(task.command)
        if problem:
            return f"task {task.task_id}: {problem}"
    image = task.container.image if task.container is not None else None
    if image is not None and not image.name:
        kind = image.type.name.lower()
        return (
            f"task {task.task_id}: its {image.type.name} image has no name; give "
            f"container.mesos.image.{kind}.name"
        )
    if task.executor is not None:
        problem = executor_problem(task.executor, framework_id)
        if problem:
            return f"task {task.task_id}: {problem}"
    if resources and not task.resources:
        return f"task {task.task_id} uses no resources; give it some (cpus, mem)"
    return None


def group_problem(
    executor: ExecutorInfo,
    tasks: Sequence[TaskInfo],
    framework_id: FrameworkID | None = None,
    *,
    resources: bool = True,
) -> str | None:
    """What is wrong with a LAUNCH_GROUP (None: nothing): all its tasks launch or none.

    The group's executor may be the default one (no command); each task carries a command,
    or names the group's executor and no other."""
    if not tasks:
        return "the task group is empty; give it at least one task"
    if executor.command is not None:
        problem = executor_problem(executor, framework_id)
        if problem:
            return f"the group's {problem}"
    elif executor.type is ExecutorType.CUSTOM:
        return (
            f"the group's executor {executor.executor_id} is CUSTOM but has no 'command'; "
            "give it one, or make it DEFAULT"
        )
    for task in tasks:
        if task.executor is not None and task.executor.executor_id != executor.executor_id:
            return (
                f"task {task.task_id} names executor {task.executor.executor_id}, not the "
                f"group's {executor.executor_id}"
            )
        problem = task_problem(
            task if task.command is None else replace(task, executor=None),
            framework_id,
            resources=resources,
        )
        if problem:
            return problem
    return None


def executor_problem(executor: ExecutorInfo, framework_id: FrameworkID | None = None) -> str | None:
    """What is wrong with a custom executor as a task names it (None: nothing)."""
    if framework_id is not None and executor.framework_id not in (None, framework_id):
        return (
            f"executor {executor.executor_id} names framework {executor.framework_id}, "
            f"not {framework_id}"
        )
    if executor.command is None:
        return f"executor {executor.executor_id} has no 'command' to start it; give one"
    problem = _command_problem(executor.command)
    return f"executor {executor.executor_id}: {problem}" if problem else None


def _command_problem(command: CommandInfo) -> str | None:
    try:
        command_argv(command)
    except InvalidCommand as error:
        return str(error)
    return None
