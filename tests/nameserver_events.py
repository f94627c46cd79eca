"""v1 operator events in the shapes the master's SUBSCRIBE stream gives (master/operator_api.py),
for the nameserver's unit tests and its benchmark's synthetic cluster."""

from __future__ import annotations

from typing import Any

FRAMEWORK = "c0ffee-0000"


def agent(agent_id: str, ip: str, hostname: str = "host-a", port: int = 5051) -> dict[str, Any]:
    return {
        "agent_info": {"hostname": hostname, "port": port, "id": {"value": agent_id}},
        "active": True,
        "pid": f"agent@{ip}:40000",
    }


def framework(name: str, framework_id: str = FRAMEWORK, hostname: str = "") -> dict[str, Any]:
    return {
        "framework_info": {
            "user": "root",
            "name": name,
            "id": {"value": framework_id},
            "hostname": hostname,
        }
    }


def task(
    task_id: str,
    name: str,
    agent_id: str,
    *,
    state: str = "TASK_RUNNING",
    framework_id: str = FRAMEWORK,
    ports: tuple[tuple[int, int], ...] = (),
    discovery: dict[str, Any] | None = None,
    addresses: tuple[str, ...] = (),
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "task_id": {"value": task_id},
        "framework_id": {"value": framework_id},
        "agent_id": {"value": agent_id},
        "state": state,
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}}],
        "statuses": [status(task_id, state, agent_id, addresses)],
    }
    if ports:
        body["resources"].append(
            {
                "name": "ports",
                "type": "RANGES",
                "ranges": {"range": [{"begin": b, "end": e} for b, e in ports]},
            }
        )
    if discovery is not None:
        body["discovery"] = discovery
    return body


def status(
    task_id: str, state: str, agent_id: str, addresses: tuple[str, ...] = ()
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "task_id": {"value": task_id},
        "state": state,
        "agent_id": {"value": agent_id},
        "timestamp": 1.0,
    }
    if addresses:
        body["container_status"] = {
            "network_infos": [{"ip_addresses": [{"ip_address": a} for a in addresses]}]
        }
    return body


def subscribed(agents=(), frameworks=(), tasks=()) -> dict[str, Any]:
    return {
        "type": "SUBSCRIBED",
        "subscribed": {
            "get_state": {
                "get_tasks": {"tasks": list(tasks), "unreachable_tasks": [], "completed_tasks": []},
                "get_executors": {"executors": []},
                "get_frameworks": {"frameworks": list(frameworks), "completed_frameworks": []},
                "get_agents": {"agents": list(agents), "recovered_agents": []},
            },
            "heartbeat_interval_seconds": 15.0,
        },
    }


def task_added(body: dict[str, Any]) -> dict[str, Any]:
    return {"type": "TASK_ADDED", "task_added": {"task": body}}


def task_updated(
    task_id: str, state: str, agent_id: str, framework_id: str = FRAMEWORK, addresses=()
) -> dict[str, Any]:
    return {
        "type": "TASK_UPDATED",
        "task_updated": {
            "framework_id": {"value": framework_id},
            "status": status(task_id, state, agent_id, tuple(addresses)),
            "state": state,
        },
    }
