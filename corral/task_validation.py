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
from corral.protocol import (
    CheckInfo,
    CheckType,
    CommandInfo,
    ExecutorInfo,
    ExecutorType,
    HealthCheck,
    HttpCheck,
    TaskInfo,
)
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
    if task.health_check is not None:
        problem = health_check_problem(task.health_check)
        if problem:
            return f"task {task.task_id}: {problem}"
    if task.check is not None:
        problem = check_problem(task.check)
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


# -- health checks and checks (Mesos's validateHealthCheck / validateCheckInfo) ------------

_HTTP_SCHEMES = ("http", "https")


def health_check_problem(check: HealthCheck) -> str | None:
    """What is wrong with a task's health check (None: nothing)."""
    problem = _probe_problem("health check", check.type, check.command, check.http, check.tcp)
    if problem:
        return problem
    if check.http is not None and check.http.scheme not in (None, *_HTTP_SCHEMES):
        return (
            f"its HTTP health check's scheme {check.http.scheme!r} is not supported; give "
            "'http' or 'https'"
        )
    durations = {
        "delay_seconds": check.delay_seconds,
        "interval_seconds": check.interval_seconds,
        "timeout_seconds": check.timeout_seconds,
        "grace_period_seconds": check.grace_period_seconds,
    }
    problem = _durations_problem("health check", durations)
    if problem:
        return problem
    if check.consecutive_failures < 1:
        return (
            f"its health check's consecutive_failures is {check.consecutive_failures}; give "
            "at least 1 (failures in a row that kill the task)"
        )
    return None


def check_problem(check: CheckInfo) -> str | None:
    """What is wrong with a task's general check (None: nothing)."""
    command = None if check.command is None else check.command.command
    if check.type is CheckType.COMMAND and check.command is not None and command is None:
        return "its COMMAND check has no 'command.command'; give the command to run"
    problem = _probe_problem("check", check.type, command, check.http, check.tcp)
    if problem:
        return problem
    if check.http is not None and check.http.scheme is not None:
        return "its HTTP check carries a 'scheme'; general checks use plain http, remove it"
    durations = {
        "delay_seconds": check.delay_seconds,
        "interval_seconds": check.interval_seconds,
        "timeout_seconds": check.timeout_seconds,
    }
    return _durations_problem("check", durations)


def _probe_problem(
    what: str,
    type_: CheckType | None,
    command: CommandInfo | None,
    http: HttpCheck | None,
    tcp: object | None,
) -> str | None:
    """The probe's own part: a type, and the one field it names, with sane values."""
    if type_ is None:
        return f"its {what} has no 'type'; give COMMAND, HTTP or TCP"
    if type_ is CheckType.COMMAND:
        if command is None:
            return f"its COMMAND {what} has no 'command'; give the command to run"
        problem = _command_problem(command)
        return f"its COMMAND {what}: {problem}" if problem else None
    if type_ is CheckType.HTTP:
        if http is None:
            return f"its HTTP {what} has no 'http'; give at least its 'port'"
        if http.path is not None and not http.path.startswith("/"):
            return f"its HTTP {what}'s path {http.path!r} must start with '/' (e.g. '/health')"
        for code in http.statuses:
            if not 100 <= code <= 599:
                return f"its HTTP {what}'s statuses hold {code}; HTTP status codes are 100-599"
        return _port_problem(what, "HTTP", http.port)
    port = getattr(tcp, "port", None)
    if tcp is None or port is None:
        return f"its TCP {what} has no 'tcp'; give its 'port'"
    return _port_problem(what, "TCP", port)


def _port_problem(what: str, kind: str, port: int) -> str | None:
    if not 1 <= port <= 65535:
        return f"its {kind} {what}'s port {port} is out of range; give a port from 1 to 65535"
    return None


def _durations_problem(what: str, durations: dict[str, float]) -> str | None:
    for name, seconds in durations.items():
        if not seconds >= 0:  # also refuses NaN
            return f"its {what}'s {name} is {seconds}; give 0 or more seconds"
    return None
