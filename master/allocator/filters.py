"""Decline filters: a framework that refuses resources on an agent is not offered them
again (in that role) until the filter expires, revive clears it, or more is available."""

from __future__ import annotations

from dataclasses import dataclass

from corral.resources import Resources


@dataclass(frozen=True, slots=True)
class OfferFilter:
    """Refused ``resources``, in force until clock time ``expires_at``."""

    resources: Resources
    expires_at: float

    def filters(self, candidate: Resources, now: float) -> bool:
        """Whether ``candidate`` falls under this filter (refused resources are a superset)."""
        return now < self.expires_at and self.resources.contains(candidate)
