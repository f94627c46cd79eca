"""Mesos's "model" JSON of resources, attributes and durations (its state endpoints' forms).

Shared by the master's and the agent's Mesos-shaped state, which must not import each other.
"""

from __future__ import annotations

import functools
from typing import Any

from corral.protocol import Attribute, TaskStatus
from corral.resources import Resources

_ALWAYS = ("cpus", "gpus", "mem", "disk")  # Mesos lists these even when zero
_DURATION_UNITS = (
    ("weeks", 604800.0),
    ("days", 86400.0),
    ("hrs", 3600.0),
    ("mins", 60.0),
    ("secs", 1.0),
    ("ms", 1e-3),
    ("us", 1e-6),
)


def resources_map(resources: Resources) -> dict[str, Any]:
    """Mesos's ``model(Resources)``: scalars as numbers (cpus, gpus, mem, disk always),
    ranges as ``"[a-b, c-d]"``, sets as ``"{a,b}"``, reservations folded in.

    Memoized by value: the state of 20,000 agents holds few distinct resource sets (agents
    are alike), and building each map was most of the cost of ``/master/state``.
    """
    return dict(_resources_map(resources))


def shared_resources_map(resources: Resources) -> dict[str, Any]:
    """``resources_map(resources)`` without the copy: one dict per distinct value, shared by
    every caller, to be serialized only, never changed (the state's fragments hold four per
    agent: copies were ~1.4 KB an agent, 28 MB at 20,000 agents)."""
    return _resources_map(resources)


@functools.lru_cache(maxsize=8192)
def _resources_map(resources: Resources) -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(_ALWAYS, 0.0)
    for name in sorted(resources.names()):
        ranges = resources.ranges(name)
        if ranges:
            out[name] = str(ranges)
            continue
        items = [r.value for r in resources if r.name == name]
        if items and isinstance(items[0], int):
            out[name] = resources.scalar(name)
        else:
            members = sorted({member for value in items for member in value})
            out[name] = "{" + ",".join(members) + "}"
    return out


@functools.lru_cache(maxsize=8192)
def resources_json(resources: Resources) -> list[dict[str, Any]]:
    """``resources.to_json()`` memoized by value (tasks and agents are alike: few distinct
    sets among thousands); the list is shared, for serializing only."""
    return resources.to_json()


@functools.lru_cache(maxsize=8192)
def unallocated_json(resources: Resources) -> list[dict[str, Any]]:
    """``resources.unallocated().to_json()``, memoized likewise (a task's allocated form)."""
    return resources.unallocated().to_json()


def attributes_map(attributes: tuple[Attribute, ...]) -> dict[str, Any]:
    """Mesos's ``model(Attributes)``: ``{"rack": "r1", "cores": 4}``."""
    out: dict[str, Any] = {}
    for attribute in attributes:
        wire = attribute.to_wire()
        if "scalar" in wire:
            out[attribute.name] = wire["scalar"]["value"]
        elif "text" in wire:
            out[attribute.name] = wire["text"]["value"]
        elif "ranges" in wire:
            spans = wire["ranges"].get("range", [])
            out[attribute.name] = "[" + ", ".join(f"{r['begin']}-{r['end']}" for r in spans) + "]"
        elif "set" in wire:
            out[attribute.name] = "{" + ",".join(wire["set"].get("item", [])) + "}"
    return out


def duration(seconds: float) -> str:
    """Mesos's (stout's) duration text: the largest unit that keeps the value >= 1, e.g.
    ``5secs``, ``15mins``, ``500ms``."""
    for name, size in _DURATION_UNITS:
        if seconds >= size:
            return f"{seconds / size:g}{name}"
    return f"{seconds * 1e9:g}ns"


def status_json(status: TaskStatus) -> dict[str, Any]:
    """A task's status as Mesos's state endpoints list it (``model(TaskStatus)``): its state
    and time, and its message, ``healthy`` and ``check_status`` where it has them."""
    entry: dict[str, Any] = {"state": status.state.value, "timestamp": status.timestamp or 0.0}
    if status.message:
        entry["message"] = status.message
    if status.healthy is not None:
        entry["healthy"] = status.healthy
    if status.check_status is not None:
        entry["check_status"] = status.check_status.to_wire()
    return entry
