"""Quota: a role's guarantees (resources it is promised) and limits (it may not exceed)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from corral.quantities import Quantities
from corral.resources import Resources
from master.allocator.offer import AllocatorError


class InvalidQuota(AllocatorError):
    """A quota whose guarantees exceed its limits, or that is set on a nested role."""


@dataclass(frozen=True)
class Quota:
    """Guarantees and limits as quantities (thousandths). A missing limit means no limit."""

    guarantees: Quantities = field(default_factory=dict)
    limits: Quantities = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, limit in self.limits.items():
            if self.guarantees.get(name, 0) > limit:
                raise InvalidQuota(
                    f"quota guarantee of {name} ({self.guarantees[name] / 1000:g}) exceeds "
                    f"its limit ({limit / 1000:g}); lower the guarantee or raise the limit"
                )

    def is_default(self) -> bool:
        return not self.guarantees and not self.limits


DEFAULT_QUOTA = Quota()


def check_quota_role(role: str) -> None:
    """Quota goes on top-level roles, not on ``*`` (as Mesos allows it)."""
    if "/" in role or role == "*":
        raise InvalidQuota(
            f"quota can be set on top-level roles only, not on {role!r}; set it on "
            f"{role.partition('/')[0]!r}, whose quota binds its sub-roles"
            if role != "*"
            else "quota cannot be set on the default role '*'; give the frameworks a role"
        )


def shrink_to_quantities(resources: Resources, targets: Mapping[str, int]) -> Resources:
    """Cut unreserved scalars down to ``targets``; names absent from ``targets`` are dropped.

    ``resources`` holds at most one scalar per name (unreserved, unallocated), so the cut is
    deterministic.
    """
    kept = {}
    for key, value in resources._items.items():
        target = targets.get(key[0], 0)
        if target > 0:
            kept[key] = min(value, target)
    return Resources._of(kept)


def shrink_to_limits(resources: Resources, limits: Mapping[str, int]) -> Resources:
    """Cut unreserved scalars down to ``limits``; names absent from ``limits`` are unlimited."""
    kept = {}
    for key, value in resources._items.items():
        limit = limits.get(key[0])
        if limit is None:
            kept[key] = value
        elif limit > 0:
            kept[key] = min(value, limit)
    return Resources._of(kept)


def limits_minus(limits: Mapping[str, int], consumed: Mapping[str, int]) -> Quantities:
    """What is left under ``limits`` (names stay present, at zero when exhausted)."""
    return {name: max(0, limit - consumed.get(name, 0)) for name, limit in limits.items()}
