"""What an allocation cycle decides: resources on an agent, for a framework in a role."""

from __future__ import annotations

from dataclasses import dataclass

from corral.resources import Resources


@dataclass(frozen=True, slots=True)
class Allocation:
    """Resources (marked as allocated to ``role``) the master should offer."""

    framework_id: str
    role: str
    agent_id: str
    resources: Resources


class AllocatorError(ValueError):
    """A request the allocator refuses (unknown or duplicate ids, invalid values);
    nothing was changed."""
