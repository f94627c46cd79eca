"""Allocator calls and allocations as msgpack-friendly values, for an allocator that runs
in an OS process of its own. (Within one process they travel as objects, unencoded.)"""

from __future__ import annotations

from typing import Any

from corral.resources import Resources
from master.allocator.offer import Allocation
from master.allocator.quota import Quota

_RESOURCES = "__resources__"
_QUOTA = "__quota__"


def encode(value: Any) -> Any:
    """Resources and Quota become tagged dicts; containers are walked; the rest is kept."""
    if isinstance(value, Resources):
        return {_RESOURCES: value.to_wire()}
    if isinstance(value, Quota):
        return {_QUOTA: [value.guarantees, value.limits]}
    if isinstance(value, dict):
        return {key: encode(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [encode(item) for item in value]
    return value


def decode(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1:
            if _RESOURCES in value:
                return Resources.from_wire(value[_RESOURCES])
            if _QUOTA in value:
                guarantees, limits = value[_QUOTA]
                return Quota(dict(guarantees), dict(limits))
        return {key: decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode(item) for item in value]
    return value


def encode_allocations(allocations: list[Allocation]) -> list[list[Any]]:
    return [
        [a.framework_id, a.role, a.agent_id, a.resources.to_wire(), a.generation]
        for a in allocations
    ]


def decode_allocations(body: Any) -> list[Allocation]:
    """Allocations from either form: objects (same process) or encoded (another process)."""
    if body and isinstance(body[0], Allocation):
        return list(body)
    return [
        Allocation(framework_id, role, agent_id, Resources.from_wire(resources), generation)
        for framework_id, role, agent_id, resources, generation in body
    ]
