"""What an executor's container is started with: command, sandbox, environment, resources.

Plain functions (no I/O besides reading the agent's own environment). The environment is a
few of the agent's variables, the command's own, then Corral's and Mesos's (which win), so
that executors written for either find their agent, ids and sandbox.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from agent.executor_run import ExecutorRun
from agent.framework_run import FrameworkRun
from agent.options import AgentOptions
from agent.port_environment import port_environment
from containerizer import ContainerConfig
from containerizer.oci import OciContainerConfig
from corral.ids import AgentID, TaskID
from corral.protocol import CommandInfo, TaskInfo
from corral.resources import Resources
from corral.task_validation import command_argv
from corral.v1.model import duration
from libprocess import UPID

# Seconds an HTTP executor waits at most between subscription attempts (Mesos's 2 s), given
# to executors as MESOS_SUBSCRIPTION_BACKOFF_MAX; below executor_reregistration_timeout.
SUBSCRIPTION_BACKOFF_MAX = 2.0
_INHERITED_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH")
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class AgentAddress:
    """Where executors find the agent that launched them."""

    pid: UPID
    agent_id: AgentID | None
    http_address: str | None  # host:port of the agent's HTTP server, if it serves one


def container_config(
    options: AgentOptions, agent: AgentAddress, framework: FrameworkRun, executor: ExecutorRun
) -> ContainerConfig:
    """The container of a new run, which holds the one task that starts it."""
    (task,) = executor.tasks.values()
    command = task.info.command if executor.command_task else executor.info.command
    assert command is not None  # admitted: it has one
    argv = command_argv(command)
    if executor.command_task:
        return command_task_config(options, agent, framework, executor, task.info, argv)
    return executor_config(options, agent, framework, executor, task.info, argv)


def command_task_config(
    options: AgentOptions,
    agent: AgentAddress,
    framework: FrameworkRun,
    executor: ExecutorRun,
    task: TaskInfo,
    argv: str | list[str],
) -> ContainerConfig:
    """A command task's container: its command, in an image when the task names one."""
    assert task.command is not None
    # PORT0..., PORTS, PORT_<NAME>, HOST first: every other variable (the command's own
    # included, e.g. a framework's PORT0) wins over them.
    ports = port_environment(task.resources, task.discovery, options.agent_hostname())
    settings = {
        "command": argv,
        "sandbox": executor.sandbox,
        "environment": {
            **ports,
            **environment(options, agent, framework, executor, task.command, task.task_id),
        },
        "resources": scalars(task.resources),
        "user": task.command.user,
        "ports": task.resources.ranges("ports").bounds,
    }
    image = task.container.image if task.container is not None else None
    if image is None:
        return ContainerConfig(**settings)
    return OciContainerConfig(**settings, image=image.name)


def executor_config(
    options: AgentOptions,
    agent: AgentAddress,
    framework: FrameworkRun,
    executor: ExecutorRun,
    task: TaskInfo,
    argv: str | list[str],
) -> ContainerConfig:
    """A custom executor's container, sized for the executor and its first task."""
    command = executor.info.command
    assert command is not None
    return ContainerConfig(
        command=argv,
        sandbox=executor.sandbox,
        environment=environment(options, agent, framework, executor, command, None),
        resources=scalars(executor.info.resources + task.resources),
        user=command.user,
        ports=(executor.info.resources + task.resources).ranges("ports").bounds,
    )


def environment(
    options: AgentOptions,
    agent: AgentAddress,
    framework: FrameworkRun,
    executor: ExecutorRun,
    command: CommandInfo,
    task_id: TaskID | None,
) -> dict[str, str]:
    """A few of the agent's variables, the command's own, then Corral's (which win)."""
    variables = {k: os.environ[k] for k in _INHERITED_ENVIRONMENT if k in os.environ}
    variables.setdefault("PATH", _DEFAULT_PATH)
    variables.update(options.extra_environment)
    variables.update({variable.name: variable.value for variable in command.environment})
    variables.update(
        {
            "CORRAL_AGENT_PID": str(agent.pid),
            "CORRAL_FRAMEWORK_ID": str(framework.id),
            "CORRAL_EXECUTOR_ID": str(executor.executor_id),
            "CORRAL_DIRECTORY": str(executor.sandbox),
            "CORRAL_SANDBOX": str(executor.sandbox),
            "CORRAL_CHECKPOINT": "1" if framework.info.checkpoint else "0",
            "CORRAL_RECOVERY_TIMEOUT": str(options.recovery_timeout),
        }
    )
    if agent.agent_id is not None:
        variables["CORRAL_AGENT_ID"] = str(agent.agent_id)
    if task_id is not None:
        variables["CORRAL_TASK_ID"] = str(task_id)
    variables.update(mesos_environment(options, agent, framework, executor))
    return variables


def mesos_environment(
    options: AgentOptions, agent: AgentAddress, framework: FrameworkRun, executor: ExecutorRun
) -> dict[str, str]:
    """What Mesos's agent exports to executors, so that executors written for Mesos (the
    v1 executor API's clients) find their agent, ids and sandbox."""
    variables = {
        "MESOS_FRAMEWORK_ID": str(framework.id),
        "MESOS_EXECUTOR_ID": str(executor.executor_id),
        "MESOS_DIRECTORY": str(executor.sandbox),
        "MESOS_SANDBOX": str(executor.sandbox),
        "MESOS_CHECKPOINT": "1" if framework.info.checkpoint else "0",
        "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": duration(options.executor_shutdown_grace),
        "MESOS_SUBSCRIPTION_BACKOFF_MAX": duration(SUBSCRIPTION_BACKOFF_MAX),
        "MESOS_RECOVERY_TIMEOUT": duration(options.recovery_timeout),
        "MESOS_SLAVE_PID": str(agent.pid),
        "MESOS_HTTP_COMMAND_EXECUTOR": "0",
    }
    if agent.http_address is not None:
        variables["MESOS_AGENT_ENDPOINT"] = agent.http_address
    if agent.agent_id is not None:
        variables["MESOS_SLAVE_ID"] = variables["MESOS_AGENT_ID"] = str(agent.agent_id)
    return variables


def scalars(resources: Resources) -> dict[str, float]:
    """The scalar resources a container is limited to."""
    return {
        name: resources.scalar(name) for name in ("cpus", "mem", "disk") if resources.scalar(name)
    }
