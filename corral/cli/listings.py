"""``corral agents|frameworks|tasks|state``: read-outs of the master's ``/master/state``."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from typing import Any

from corral.resources import Resources


class StateUnavailable(ConnectionError):
    """The master's state could not be read."""


def fetch_state(master: str, timeout: float = 5.0) -> dict[str, Any]:
    address = master.removeprefix("http://").rstrip("/")
    url = f"http://{address}/master/state"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise StateUnavailable(
            f"could not read {url} ({error}); is the master running there? "
            "Give its HTTP address with --master HOST:PORT"
        ) from None


def _resources(value: Any) -> str:
    try:
        return Resources.from_json(value).to_text() if value else "-"
    except ValueError:
        return str(value)


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def agents_table(state: dict[str, Any]) -> str:
    rows = [
        [
            str(agent.get("id", "?")),
            str(agent.get("hostname", "?")),
            _resources(agent.get("resources")),
            _resources(agent.get("used_resources")),
        ]
        for agent in state.get("agents", [])
    ]
    return _table(rows, ["ID", "HOSTNAME", "RESOURCES", "USED"])


def frameworks_table(state: dict[str, Any]) -> str:
    rows = [
        [
            str(framework.get("id", "?")),
            str(framework.get("name", "")),
            ",".join(framework.get("roles", []) or []),
            "yes" if framework.get("active") else "no",
            str(len(framework.get("tasks", []) or [])),
        ]
        for framework in state.get("frameworks", [])
    ]
    return _table(rows, ["ID", "NAME", "ROLES", "ACTIVE", "TASKS"])


def agent_usage(state: dict[str, Any], timeout: float = 5.0) -> dict[str, dict[str, Any]]:
    """Per-executor statistics from every agent's ``/monitor/statistics``, by executor id (a
    command task's executor id is its task id). Agents that do not answer are left out."""
    usage: dict[str, dict[str, Any]] = {}
    for agent in state.get("agents", []):
        host, port = agent.get("hostname"), agent.get("port")
        pid = str(agent.get("pid", ""))
        if "@" in pid:  # the address the agent listens on, rather than its host name
            host = pid.rpartition("@")[2].rpartition(":")[0]
        url = f"http://{host}:{port}/monitor/statistics"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                entries = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError):
            continue
        for entry in entries:
            usage[str(entry.get("executor_id"))] = entry.get("statistics", {})
    return usage


def _usage_cells(stats: dict[str, Any] | None) -> list[str]:
    if not stats:
        return ["-", "-"]
    cpu = stats.get("cpus_user_time_secs", 0) + stats.get("cpus_system_time_secs", 0)
    rss = stats.get("mem_rss_bytes") or stats.get("mem_total_bytes") or 0
    return [f"{cpu:.2f}s", f"{rss / 2**20:.1f}MB"]


def _health(task: dict[str, Any]) -> str:
    """``healthy`` of the task's latest status ("-": no health check has reported): the
    master's own task list carries it as ``healthy``, Mesos's shapes in ``statuses``."""
    statuses = task.get("statuses") or []
    healthy = task.get("healthy", statuses[-1].get("healthy") if statuses else None)
    return "-" if healthy is None else ("healthy" if healthy else "unhealthy")


def tasks_table(state: dict[str, Any], usage: dict[str, dict[str, Any]] | None = None) -> str:
    tasks = list(state.get("tasks", []) or [])
    if not tasks:
        for framework in state.get("frameworks", []):
            tasks.extend(framework.get("tasks", []) or [])
    rows = [
        [
            str(task.get("id", "?")),
            str(task.get("framework_id", "")),
            str(task.get("state", "?")),
            _health(task),
            str(task.get("agent_id", "")),
            _resources(task.get("resources")),
        ]
        + (_usage_cells(usage.get(str(task.get("id")))) if usage is not None else [])
        for task in tasks
    ]
    header = ["ID", "FRAMEWORK", "STATE", "HEALTH", "AGENT", "RESOURCES"]
    return _table(rows, header + (["CPU TIME", "MEMORY"] if usage is not None else []))


def show(what: str, master: str, usage: bool = False) -> int:
    try:
        state = fetch_state(master)
    except StateUnavailable as error:
        print(f"corral: {error}", file=sys.stderr)
        return 1
    if what == "state":
        print(json.dumps(state, indent=2, sort_keys=True))
    elif what == "tasks" and usage:
        print(tasks_table(state, agent_usage(state)))
    else:
        print(
            {"agents": agents_table, "frameworks": frameworks_table, "tasks": tasks_table}[what](
                state
            )
        )
    return 0
