"""An instance's Mesos ``TaskInfo``, built from its app as Marathon builds it.

Marathon's health checks become the task's Mesos ``HealthCheck`` (run by the agent):
HTTP/MESOS_HTTP → HTTP, HTTPS/MESOS_HTTPS → HTTP with scheme https, TCP/MESOS_TCP → TCP,
COMMAND → COMMAND; ``portIndex`` picks the instance's host port of that port definition.
The port variables are set by definition index (``PORT0`` is the first definition's port,
``PORT_<NAME>`` each named one's), which the agent's own variables give way to.
"""

from __future__ import annotations

import re

from corral.ids import AgentID, TaskID
from corral.protocol import (
    CheckType,
    CommandInfo,
    ContainerInfo,
    ContainerType,
    DiscoveryInfo,
    DiscoveryVisibility,
    DockerImage,
    EnvironmentVariable,
    HealthCheck,
    HttpCheck,
    Image,
    ImageType,
    KillPolicy,
    Label,
    MesosContainerInfo,
    Port,
    TaskInfo,
    TcpCheck,
)
from corral.resources import Resources
from services.app_definition import AppDefinition, HealthCheckDefinition
from services.instances import Instance


def task_name(app_id: str) -> str:
    """Marathon's Mesos task name: the path's segments, last first, joined by '.'
    (``/shop/web`` → ``web.shop``), which Mesos-DNS names ``web-shop``."""
    return ".".join(reversed([p for p in app_id.split("/") if p]))


def _variable(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name).upper()


def environment(app: AppDefinition, instance: Instance) -> dict[str, str]:
    env = dict(app.env)
    for index, port in enumerate(instance.ports):
        env[f"PORT{index}"] = str(port)
        name = app.port_definitions[index].name if index < app.port_count() else None
        if name:
            env[f"PORT_{_variable(name)}"] = str(port)
    if instance.ports:
        env["PORT"] = str(instance.ports[0])
        env["PORTS"] = ",".join(str(p) for p in instance.ports)
    env.update(
        {
            "MARATHON_APP_ID": app.id,
            "MARATHON_APP_VERSION": app.version or "",
            "MARATHON_APP_RESOURCE_CPUS": str(app.cpus),
            "MARATHON_APP_RESOURCE_MEM": str(app.mem),
            "MARATHON_APP_RESOURCE_DISK": str(app.disk),
            "MARATHON_APP_RESOURCE_GPUS": str(app.gpus),
            "MARATHON_APP_LABELS": " ".join(sorted(app.labels)),
            "MESOS_TASK_ID": instance.task_id,
        }
    )
    for key, value in app.labels.items():
        env[f"MARATHON_APP_LABEL_{_variable(key)}"] = value
    if app.image():
        env["MARATHON_APP_DOCKER_IMAGE"] = app.image() or ""
    return env


def health_check(check: HealthCheckDefinition, ports: list[int]) -> HealthCheck:
    """Marathon's check as the Mesos check the agent runs."""
    port = check.port
    if port is None:
        index = check.port_index or 0
        port = ports[index] if index < len(ports) else 0
    common = {
        "delay_seconds": check.delay_seconds,
        "interval_seconds": check.interval_seconds,
        "timeout_seconds": check.timeout_seconds,
        # Mesos checks kill on the first failure when Marathon says 0; Mesos's own field
        # counts failures before the kill and must be at least 1.
        "consecutive_failures": max(1, check.max_consecutive_failures),
        "grace_period_seconds": check.grace_period_seconds,
    }
    protocol = check.protocol.removeprefix("MESOS_")
    if protocol == "COMMAND":
        return HealthCheck(
            type=CheckType.COMMAND, command=CommandInfo(value=check.command), **common
        )
    if protocol == "TCP":
        return HealthCheck(type=CheckType.TCP, tcp=TcpCheck(port=port), **common)
    scheme = "https" if protocol == "HTTPS" else "http"
    http = HttpCheck(port=port, path=check.path or "/", scheme=scheme)
    return HealthCheck(type=CheckType.HTTP, http=http, **common)


def task_info(app: AppDefinition, instance: Instance) -> TaskInfo:
    resources = f"cpus:{app.cpus:g};mem:{app.mem:g}"
    if app.disk:
        resources += f";disk:{app.disk:g}"
    if app.gpus:
        resources += f";gpus:{app.gpus}"
    if instance.ports:
        resources += ";ports:[" + ",".join(f"{p}-{p}" for p in sorted(instance.ports)) + "]"
    variables = tuple(
        EnvironmentVariable(k, v) for k, v in sorted(environment(app, instance).items())
    )
    if app.args:
        command = CommandInfo(
            value=app.args[0], shell=False, arguments=app.args, environment=variables,
            user=app.user,
        )  # fmt: skip
    else:
        command = CommandInfo(value=app.cmd, environment=variables, user=app.user)
    container = None
    if app.image():
        image = Image(ImageType.DOCKER, docker=DockerImage(app.image() or ""))
        container = ContainerInfo(ContainerType.MESOS, mesos=MesosContainerInfo(image=image))
    name = task_name(app.id)
    ports = tuple(
        Port(
            number=number,
            name=definition.name,
            protocol=definition.protocol.split(",")[0],
            labels=tuple(Label(k, v) for k, v in definition.labels.items()),
        )
        for number, definition in zip(instance.ports, app.port_definitions, strict=False)
    )
    grace = app.task_kill_grace_period_seconds
    return TaskInfo(
        name=name,
        task_id=TaskID(instance.task_id),
        agent_id=AgentID(instance.agent_id),
        resources=Resources.parse(resources),
        command=command,
        labels=tuple(Label(k, v) for k, v in app.labels.items()),
        kill_policy=KillPolicy(grace_period=grace) if grace is not None else None,
        container=container,
        health_check=health_check(app.health_checks[0], instance.ports)
        if app.health_checks
        else None,
        discovery=DiscoveryInfo(visibility=DiscoveryVisibility.FRAMEWORK, name=name, ports=ports),
    )
