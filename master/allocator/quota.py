"""Quota: a role's guarantees (resources it is promised) and limits (it may not exceed)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from corral.quantities import Quantities
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


def limits_minus(limits: Mapping[str, int], consumed: Mapping[str, int]) -> Quantities:
    """What is left under ``limits`` (names stay present, at zero when exhausted)."""
    return {name: max(0, limit - consumed.get(name, 0)) for name, limit in limits.items()}
