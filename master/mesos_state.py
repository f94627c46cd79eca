"""The master's state in Mesos's JSON shapes: ``/master/state`` and the v1 operator API.

Two families, both plain functions of the master's records (no I/O, no clock reads):

- the *state endpoint* shapes (``/master/state``, ``/master/slaves``, ``/master/tasks``…), where
  resources are maps ``{"cpus": 2, "mem": 1024, "ports": "[31000-32000]"}`` and ids plain
  strings, as Mesos's web UI and tools read them;
- the *v1* shapes (``master.proto``'s ``Response.GetAgents.Agent``, ``GetFrameworks.Framework``,
  ``Task``…), the proto3 JSON of Corral's protocol types (ids ``{"value": …}``, resources lists).

"slave" appears only where Mesos's JSON names it so (``slave_id``, ``slaves``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from corral.ids import AgentID, ExecutorID, FrameworkID
from corral.protocol import ExecutorInfo, Offer, json_compatible
from corral.resources import Resources
from corral.v1.model import (
    resources_map,
    shared_resources_map,
    status_json,
    unallocated_json,
)
from master.allocator import Quota
from master.state import AgentRecord, FrameworkRecord, MasterState, TaskRecord, roles_of

MESOS_VERSION = "1.11.0"  # the Mesos release whose APIs Corral speaks; clients parse it


@dataclass
class Registered:
    """Wall-clock times (seconds since the epoch) the state endpoints show, which the master's
    records do not keep: when each agent and framework was (re)registered."""

    agents: dict[AgentID, float] = field(default_factory=dict)
    frameworks: dict[FrameworkID, float] = field(default_factory=dict)


# -- state endpoint shapes ----------------------------------------------------------------


def task_json(task: TaskRecord) -> dict[str, Any]:
    """A task as ``/master/state`` lists it: Mesos's keys, plus Corral's ``agent_id``.

    ``resources`` stays Corral's list of Resource objects here (what ``corral`` and its tests
    read from ``/master/state``); ``with_resource_maps`` turns it into Mesos's map for the
    views that only Mesos clients read (``/master/tasks``, ``/master/frameworks``).
    """
    roles = task.resources.allocation_roles()
    statuses = [] if task.status is None else [status_json(task.status)]
    return {
        "id": task.task_id,
        "name": task.name,
        "framework_id": task.framework_id,
        "executor_id": task.executor_id or "",
        "slave_id": task.agent_id,
        "agent_id": task.agent_id,
        "state": task.state.value,
        "resources": unallocated_json(task.resources),
        "role": min(roles) if roles else "*",
        "statuses": statuses,
    }


def offer_json(offer: Offer) -> dict[str, Any]:
    return {
        "id": offer.id,
        "framework_id": offer.framework_id,
        "slave_id": offer.agent_id,
        "agent_id": offer.agent_id,
        "resources": offer.resources.unallocated().to_json(),
        **(
            {"allocation_info": {"role": offer.allocation_info.role}}
            if offer.allocation_info is not None and offer.allocation_info.role
            else {}
        ),
    }


def with_resource_maps(entry: dict[str, Any]) -> dict[str, Any]:
    """A task or offer of ``/master/state`` with its ``resources`` list as Mesos's map."""
    resources = entry.get("resources")
    if not isinstance(resources, list):
        return entry
    return {**entry, "resources": resources_map(Resources.from_json(resources))}


def framework_with_resource_maps(
    framework: dict[str, Any],
    with_maps: Callable[[dict[str, Any]], dict[str, Any]] = with_resource_maps,
) -> dict[str, Any]:
    """A framework of ``/master/state`` with its tasks' and offers' resources as maps
    (``with_maps`` of each: ``with_resource_maps``, or a cache of it)."""
    lists = ("tasks", "completed_tasks", "unreachable_tasks", "offers")
    return {**framework, **{key: [with_maps(e) for e in framework.get(key, [])] for key in lists}}


def offered_on(state: MasterState, offers: Iterable[Any]) -> Resources:
    total = Resources()
    for offer_id in offers:
        record = state.offers.get(offer_id)
        if record is not None:
            total = total + record.offer.resources
    return total


def agent_json(
    state: MasterState, agent: AgentRecord, registered: float, deactivated: bool
) -> dict[str, Any]:
    """An agent as ``/master/slaves`` lists it: Mesos's keys and Corral's (``port``,
    ``connected``…). ``pid`` is the agent's real pid (``agent@ip:port``)."""
    info = agent.info
    used = state.used_on(agent)
    return {
        "id": agent.id,
        "pid": agent.pid,
        "hostname": info.hostname,
        "port": info.port,
        "registered_time": registered,
        "resources": shared_resources_map(info.resources),
        "used_resources": shared_resources_map(used),
        "offered_resources": shared_resources_map(offered_on(state, agent.offers)),
        "reserved_resources": {},
        "unreserved_resources": shared_resources_map(info.resources),
        "attributes": {
            attribute.name: json_compatible(attribute.to_wire()) for attribute in info.attributes
        },
        "active": agent.connected and not deactivated,
        "deactivated": deactivated,
        "connected": agent.connected,
        "pending_removal": agent.pending_removal,
        "version": agent.version,
        "capabilities": [],
    }


def executors_by_framework(
    state: MasterState,
) -> dict[FrameworkID, list[tuple[AgentRecord, ExecutorID, Resources]]]:
    """Each framework's executors, in the order ``framework_json`` lists them: by agent,
    then by executor id (one pass over the agents for all frameworks)."""
    found: dict[FrameworkID, list[tuple[AgentRecord, ExecutorID, Resources]]] = {}
    for agent in state.agents.values():
        if agent.executors:
            for (framework_id, executor_id), resources in sorted(agent.executors.items()):
                found.setdefault(framework_id, []).append((agent, executor_id, resources))
    return found


def framework_json(
    state: MasterState,
    framework: FrameworkRecord,
    registered: float,
    executors: list[tuple[AgentRecord, ExecutorID, Resources]] | None = None,
    render_tasks: Callable[[Iterable[TaskRecord]], list[dict[str, Any]]] | None = None,
    tasks_total: Callable[[FrameworkRecord, list[TaskRecord]], Resources] | None = None,
) -> dict[str, Any]:
    """A framework as ``/master/frameworks`` lists it: Mesos's keys plus Corral's own (``pid``,
    ``connected``, ``failover_timeout``, ``capabilities`` as names).

    ``executors``: the framework's, from ``executors_by_framework`` (found here when None);
    ``render_tasks``: the tasks' JSON (the state's fragments give theirs, built once);
    ``tasks_total``: the sum of its live tasks' resources (kept between builds by the state).
    """
    info = framework.info
    tasks = [state.tasks[(framework.id, t)] for t in state.tasks_of(framework.id)]
    if tasks_total is not None:
        used = tasks_total(framework, tasks)
    else:
        used = Resources()
        for task in tasks:
            used = used + task.resources
    if executors is None:
        executors = executors_by_framework(state).get(framework.id, [])
    executor_entries = []
    for agent, executor_id, resources in executors:
        used = used + resources
        executor_entries.append(
            {
                "executor_id": executor_id,
                "framework_id": framework.id,
                "slave_id": agent.id,
                "agent_id": agent.id,
                "resources": resources_map(resources),
            }
        )
    offers = [state.offers[offer_id].offer for offer_id in sorted(framework.offers)]
    return {
        "id": framework.id,
        "name": info.name,
        "user": info.user,
        "hostname": info.hostname or "",
        "principal": info.principal or "",
        "webui_url": info.webui_url or "",
        "pid": framework.pid,
        "role": info.role or roles_of(info)[0],
        "roles": list(framework.roles),
        "active": framework.active,
        "connected": framework.connected,
        "recovered": False,
        "checkpoint": info.checkpoint,
        "failover_timeout": info.failover_timeout,
        "capabilities": [c.type.value for c in info.capabilities],
        "registered_time": registered,
        "reregistered_time": registered,
        "unregistered_time": 0,
        "resources": resources_map(used),
        "used_resources": resources_map(used),
        "offered_resources": resources_map(offered_on(state, framework.offers)),
        "tasks": render_tasks(tasks) if render_tasks else [task_json(task) for task in tasks],
        "unreachable_tasks": [],
        "completed_tasks": (
            render_tasks(framework.completed)
            if render_tasks
            else [task_json(task) for task in framework.completed]
        ),
        "offers": [offer_json(offer) for offer in offers],
        "executors": executor_entries,
        "completed_executors": [],
    }


def role_entries(
    state: MasterState, weights: Mapping[str, float], quotas: Mapping[str, Quota]
) -> list[dict[str, Any]]:
    """The roles with frameworks, weights or quota, as ``/master/roles`` lists them."""
    frameworks: dict[str, list[str]] = {}
    for framework in state.frameworks.values():
        for role in framework.roles:
            frameworks.setdefault(role, []).append(framework.id)
    allocated: dict[str, Resources] = {}
    for task in state.tasks.values():
        for role in task.resources.allocation_roles() or {"*"}:
            allocated[role] = allocated.get(role, Resources()) + task.resources
    offered: dict[str, Resources] = {}
    for record in state.offers.values():
        for role in record.offer.resources.allocation_roles() or {"*"}:
            offered[role] = offered.get(role, Resources()) + record.offer.resources
    names = sorted({*frameworks, *weights, *quotas, *allocated})
    entries = []
    for name in names:
        used = allocated.get(name, Resources())
        quota = quotas.get(name)
        entries.append(
            {
                "name": name,
                "weight": weights.get(name, 1.0),
                "frameworks": sorted(frameworks.get(name, [])),
                "resources": resources_map(used),
                "allocated": resources_map(used),
                "offered": resources_map(offered.get(name, Resources())),
                "reserved": {},
                "quota": {
                    "role": name,
                    "guarantee": _quantities(quota.guarantees if quota else {}),
                    "limit": _quantities(quota.limits if quota else {}),
                    "consumed": resources_map(used),
                },
            }
        )
    return entries


def _quantities(quantities: Mapping[str, int]) -> dict[str, float]:
    return {name: value / 1000 for name, value in sorted(quantities.items())}


# -- v1 operator API shapes (master.proto) --------------------------------------------------


def _wire(value: Any) -> Any:
    return json_compatible(value.to_wire())


def _resources_wire(resources: Resources) -> list[dict[str, Any]]:
    return json_compatible(resources.to_json())


def nanoseconds(seconds: float) -> dict[str, int]:
    """A ``TimeInfo``: ``{"nanoseconds": …}``."""
    return {"nanoseconds": int(seconds * 1e9)}


def v1_agent(
    state: MasterState, agent: AgentRecord, registered: float, deactivated: bool
) -> dict[str, Any]:
    """``Response.GetAgents.Agent``."""
    return {
        "agent_info": _wire(agent.info),
        "active": agent.connected and not deactivated,
        "deactivated": deactivated,
        "version": agent.version,
        "pid": agent.pid,
        "registered_time": nanoseconds(registered),
        "total_resources": _resources_wire(agent.info.resources),
        "allocated_resources": _resources_wire(state.used_on(agent)),
        "offered_resources": _resources_wire(offered_on(state, agent.offers)),
        "capabilities": [],
    }


def v1_framework(
    state: MasterState, framework: FrameworkRecord, registered: float
) -> dict[str, Any]:
    """``Response.GetFrameworks.Framework``."""
    used = Resources()
    for task_id in state.tasks_of(framework.id):
        used = used + state.tasks[(framework.id, task_id)].resources
    offers = [state.offers[offer_id].offer for offer_id in sorted(framework.offers)]
    return {
        "framework_info": _wire(framework.info),
        "active": framework.active,
        "connected": framework.connected,
        "recovered": False,
        "registered_time": nanoseconds(registered),
        "reregistered_time": nanoseconds(registered),
        "offers": [_wire(offer) for offer in offers],
        "allocated_resources": _resources_wire(used),
        "offered_resources": _resources_wire(offered_on(state, framework.offers)),
    }


def v1_task(task: TaskRecord) -> dict[str, Any]:
    """Mesos's ``Task`` (v1: ``agent_id``)."""
    return _wire(task.to_task())


def v1_executors(state: MasterState) -> list[dict[str, Any]]:
    """``Response.GetExecutors.Executor``: the master knows each executor's id, framework and
    resources (its command lives on the agent)."""
    return [
        {
            "executor_info": _wire(
                ExecutorInfo(executor_id, framework_id=framework_id, resources=resources)
            ),
            "agent_id": {"value": agent.id},
        }
        for agent in state.agents.values()
        for (framework_id, executor_id), resources in sorted(agent.executors.items())
    ]
