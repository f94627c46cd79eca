"""The agent's state in Mesos's JSON shapes: ``/state`` (``/slave(1)/state``), ``/containers``
and the ``slave/*`` metrics, so that Mesos's web UI, CLI and tools read a Corral agent.

Plain functions of the agent's public records (agent/agent_view.py; no I/O): resources as
maps ``{"cpus": 2, "mem": 1024, "ports": "[31000-31010]"}``, ids as plain strings, as Mesos's
state endpoints show them. The keys Corral's own ``/agent/state`` always had (``id, pid,
hostname, master, registered, resources, isolators, frameworks[].executors[].{id, container,
pid, state, tasks[].{id, state}}``) are kept, so the three paths serve one document; an
executor's ``state`` is its lifecycle's phase (agent/executor_lifecycle.py). "slave" appears
only where Mesos's JSON names it so.
"""

from __future__ import annotations

import time
from typing import Any

from agent.agent_view import AgentView
from agent.executor_run import ExecutorRun, TaskRecord
from agent.framework_run import FrameworkRun
from agent.options import AgentOptions
from corral.ids import AgentID
from corral.resources import Resources
from corral.task_states import TaskState
from corral.v1.model import attributes_map, duration, resources_map, status_json

MESOS_VERSION = "1.11.0"  # the Mesos release whose JSON this follows


def task_json(agent_id: AgentID | None, executor: ExecutorRun, task: TaskRecord) -> dict[str, Any]:
    """A task as Mesos's agent lists it (``model(Task)``)."""
    info = task.info
    return {
        "id": str(info.task_id),
        "name": info.name,
        "framework_id": str(executor.framework_id),
        "executor_id": "" if executor.command_task else str(executor.executor_id),
        "slave_id": agent_id or "",
        "state": task.state.name,
        "resources": resources_map(info.resources),
        "statuses": [] if task.latest is None else [status_json(task.latest)],
        "labels": [label.to_wire() for label in info.labels],
    }


def executor_json(
    agent_id: AgentID | None, executor: ExecutorRun, pending: set[str]
) -> dict[str, Any]:
    """An executor run (Mesos's keys, and Corral's ``container``, ``pid``, ``state``).

    ``pending``: task ids whose terminal update still waits for an acknowledgement; as in
    Mesos, such tasks are still listed in ``tasks``, the others in ``completed_tasks``.
    """
    tasks, completed, queued = [], [], []
    for task in executor.tasks.values():
        entry = task_json(agent_id, executor, task)
        if task.queued:
            queued.append(entry)
        elif task.state.is_terminal and str(task.task_id) not in pending:
            completed.append(entry)
        else:
            tasks.append(entry)
    resources = executor.info.resources
    for task in executor.tasks.values():
        resources = resources + task.info.resources
    return {
        "id": str(executor.executor_id),
        "name": executor.info.name or "",
        "source": "",
        "container": str(executor.container_id),
        "directory": str(executor.sandbox),
        "resources": resources_map(resources),
        "type": "CUSTOM" if not executor.command_task else "COMMAND",
        "labels": [label.to_wire() for label in executor.info.labels],
        "tasks": tasks,
        "queued_tasks": queued,
        "completed_tasks": completed,
        "pid": None if executor.container is None else executor.container.pid,
        "state": executor.state.phase,
        "http": executor.http,
    }


def framework_json(
    agent_id: AgentID | None, framework: FrameworkRun, pending: set[tuple[str, str]]
) -> dict[str, Any]:
    info = framework.info
    ours = {task for fid, task in pending if fid == str(framework.id)}
    executors = [executor_json(agent_id, e, ours) for e in framework.executors.values()]
    return {
        "id": str(framework.id),
        "name": info.name,
        "user": info.user,
        "failover_timeout": info.failover_timeout,
        "checkpoint": info.checkpoint,
        "hostname": info.hostname or "",
        "role": info.role or (info.roles[0] if info.roles else "*"),
        "roles": list(info.roles) or [info.role or "*"],
        "principal": info.principal or "",
        "executors": executors,
        "completed_executors": list(framework.completed_executors),
    }


def agent_state(agent: AgentView) -> dict[str, Any]:
    """``/state``: the whole agent (Mesos's ``/slave(1)/state`` keys, plus Corral's)."""
    options = agent.options
    master = agent.master
    pending = agent.unacknowledged()
    return {
        "version": MESOS_VERSION,
        "start_time": agent.start_time,
        "id": agent.agent_id or "",
        "pid": str(agent.pid),
        "hostname": agent.info.hostname,
        "capabilities": ["MULTI_ROLE", "HIERARCHICAL_ROLE", "TASK_LABELS_ALL"],
        "resources": resources_map(agent.info.resources),
        "unreserved_resources": resources_map(agent.info.resources.unreserved()),
        "reserved_resources": {},
        "resources_full": agent.info.resources.to_json(),
        "attributes": attributes_map(agent.info.attributes),
        "master_hostname": master.host if master is not None else "",
        "master": str(master) if master else None,
        "registered": agent.registered,
        "isolators": agent.isolators(),
        "log_dir": "",
        "flags": flags(options, agent.info.hostname),
        "frameworks": [
            framework_json(agent.agent_id, f, pending) for f in agent.frameworks.values()
        ],
        "completed_frameworks": list(agent.completed_frameworks),
        "work_dir": str(options.work_dir),
    }


def flags(options: AgentOptions, hostname: str) -> dict[str, str]:
    """The agent's settings under Mesos's flag names (all values text, as Mesos shows them)."""
    return {
        "master": options.master,
        "work_dir": str(options.work_dir),
        "hostname": hostname,
        "port": str(options.port),
        "resources": options.resources or "",
        "attributes": options.attributes or "",
        "isolation": options.isolation,
        "launcher": options.launcher,
        "executor_shutdown_grace_period": duration(options.executor_shutdown_grace),
        "executor_registration_timeout": duration(options.executor_registration_timeout),
        "executor_reregistration_timeout": duration(options.executor_reregistration_timeout),
        "recovery_timeout": duration(options.recovery_timeout),
        "container_ports_watch_interval": duration(options.container_ports_watch_interval),
        "check_agent_port_range_only": str(options.check_agent_port_range_only).lower(),
        "container_ports_isolated_range": options.container_ports_isolated_range or "",
        "enforce_container_ports": str(options.enforce_container_ports).lower(),
        "registration_backoff_factor": duration(options.registration_backoff),
        "recover": "reconnect",
        "checkpoint": "true",
    }


def container_json(executor: ExecutorRun, statistics: dict[str, Any] | None) -> dict[str, Any]:
    """One ``/containers`` entry (Mesos's keys)."""
    entry: dict[str, Any] = {
        "container_id": str(executor.container_id),
        "executor_id": str(executor.executor_id),
        "executor_name": executor.info.name or "",
        "framework_id": str(executor.framework_id),
        "source": "",
        "status": {},
    }
    if executor.container is not None:
        entry["status"] = {"executor_pid": executor.container.pid}
    if statistics is not None:
        entry["statistics"] = statistics
    return entry


def metrics(agent: AgentView) -> dict[str, float]:
    """``slave/*`` gauges, by Mesos's names."""
    running = staging = starting = 0
    executors_running = executors_registering = executors_terminating = 0
    used = Resources()
    for executor in agent.executors():
        phase = executor.state.phase
        executors_running += phase == "RUNNING"
        executors_registering += phase in ("LAUNCHING", "REGISTERING", "RECOVERING")
        executors_terminating += phase == "TERMINATING"
        used = used + executor.info.resources
        for task in executor.open_tasks():
            used = used + task.info.resources
            running += task.state is TaskState.TASK_RUNNING
            staging += task.state is TaskState.TASK_STAGING
            starting += task.state is TaskState.TASK_STARTING
    total = agent.info.resources
    out: dict[str, float] = {
        "slave/registered": 1.0 if agent.registered else 0.0,
        "slave/uptime_secs": max(time.time() - agent.start_time, 0.0),
        "slave/frameworks_active": float(len(agent.frameworks)),
        "slave/tasks_running": float(running),
        "slave/tasks_staging": float(staging),
        "slave/tasks_starting": float(starting),
        "slave/executors_running": float(executors_running),
        "slave/executors_registering": float(executors_registering),
        "slave/executors_terminating": float(executors_terminating),
    }
    for name in ("cpus", "mem", "disk", "gpus"):
        have, using = total.scalar(name), used.scalar(name)
        out[f"slave/{name}_total"] = have
        out[f"slave/{name}_used"] = using
        out[f"slave/{name}_percent"] = using / have if have else 0.0
    return out
