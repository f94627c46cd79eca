"""What an allocation cycle decides: resources on an agent, for a framework in a role."""

from __future__ import annotations

from typing import NamedTuple

from corral.resources import Resources
from corral.roles import InvalidRole, validate_role


class Allocation(NamedTuple):
    """Resources (marked as allocated to ``role``) the master should offer.

    A named tuple rather than a frozen dataclass: a cycle at 20,000 agents makes 20,000 of
    them, and a tuple is built in a third of the time (just as immutable and hashable)."""

    framework_id: str
    role: str
    agent_id: str
    resources: Resources
    # The agent's generation (``add_agent``'s) when this was allocated: an allocation made
    # before its agent was removed and added again is stale, held by nobody any more.
    generation: int = 0


class AllocatorError(ValueError):
    """A request the allocator refuses (unknown or duplicate ids, invalid values);
    nothing was changed."""


def checked_role(role: str) -> str:
    """``role`` if valid, else ``AllocatorError`` saying why."""
    try:
        return validate_role(role)
    except InvalidRole as error:
        raise AllocatorError(str(error)) from None


def checked_used(agent_id: str, used: dict[str, Resources] | None) -> dict[str, Resources]:
    """Resources an agent reports in use must say which role they are allocated to."""
    for framework_id, resources in (used or {}).items():
        if any(resource.allocation_role is None for resource in resources):
            raise AllocatorError(
                f"resources in use by framework {framework_id} on agent {agent_id} lack an "
                f"allocation role ({resources!r}); pass them allocated, e.g. "
                "resources.allocated_to(role)"
            )
    return dict(used or {})
