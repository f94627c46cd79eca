"""Does an offer fit one more instance of an app, and if not, why not.

The reasons are Marathon's (``NoOfferMatchReason``): they feed ``/v2/queue``'s
``processedOffersSummary`` and ``lastUnusedOffers``, the answer to "why is my deployment
stuck". ``OfferSpace`` is what is left of one offer while several instances are placed on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from corral.protocol import Offer
from services.app_definition import AppDefinition
from services.constraints import AgentFacts

REASONS = (
    "UnfulfilledRole",
    "UnfulfilledConstraint",
    "NoCorrespondingReservationFound",
    "AgentMaintenance",
    "InsufficientCpus",
    "InsufficientMemory",
    "InsufficientDisk",
    "InsufficientGpus",
    "InsufficientPorts",
    "DeclinedScarceResources",
)


@dataclass
class OfferSpace:
    """An offer's resources not yet promised to an instance (scalars in thousandths)."""

    offer: Offer
    facts: AgentFacts
    cpus: int
    mem: int
    disk: int
    gpus: int
    ports: list[int]
    roles: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, offer: Offer) -> OfferSpace:
        resources = offer.resources
        ports = [p for begin, end in resources.ranges("ports") for p in range(begin, end + 1)]
        roles = {r.role for r in resources} or {"*"}
        return cls(
            offer,
            agent_facts(offer),
            resources.scalar_millis("cpus"),
            resources.scalar_millis("mem"),
            resources.scalar_millis("disk"),
            resources.scalar_millis("gpus"),
            ports,
            roles,
        )


@dataclass(frozen=True)
class Match:
    ports: tuple[int, ...]


@dataclass(frozen=True)
class Mismatch:
    reasons: tuple[str, ...]


def agent_facts(offer: Offer) -> AgentFacts:
    """An offer's hostname and attributes as constraints read them (text)."""
    values: dict[str, str] = {}
    for attribute in offer.attributes:
        if attribute.text is not None:
            values[attribute.name] = attribute.text.value
        elif attribute.scalar is not None:
            scalar = attribute.scalar.value
            values[attribute.name] = str(int(scalar)) if float(scalar).is_integer() else str(scalar)
        elif attribute.set is not None:
            values[attribute.name] = "{" + ",".join(attribute.set.item) + "}"
        elif attribute.ranges is not None:
            values[attribute.name] = ",".join(
                f"[{r.begin}-{r.end}]" for r in attribute.ranges.range
            )
    return AgentFacts(offer.hostname, values)


def _millis(value: float) -> int:
    return round(value * 1000)


def match(app: AppDefinition, space: OfferSpace, placed: list[AgentFacts]) -> Match | Mismatch:
    """Whether one more instance of ``app`` fits ``space``; every reason when it does not."""
    reasons = []
    accepted = set(app.accepted_resource_roles or ("*", app.role))
    if not space.roles & accepted:
        reasons.append("UnfulfilledRole")
    if space.cpus < _millis(app.cpus):
        reasons.append("InsufficientCpus")
    if space.mem < _millis(app.mem):
        reasons.append("InsufficientMemory")
    if space.disk < _millis(app.disk):
        reasons.append("InsufficientDisk")
    if space.gpus < app.gpus * 1000:
        reasons.append("InsufficientGpus")
    elif app.gpus == 0 and space.gpus > 0:
        reasons.append("DeclinedScarceResources")  # keep GPU agents for GPU apps, as Marathon
    ports = _ports(app, space.ports)
    if ports is None:
        reasons.append("InsufficientPorts")
    if not all(c.allows(space.facts, placed) for c in app.constraints):
        reasons.append("UnfulfilledConstraint")
    if reasons:
        return Mismatch(tuple(reasons))
    return Match(tuple(ports or ()))


def take(app: AppDefinition, space: OfferSpace, found: Match) -> None:
    """Promise ``found``'s share of ``space`` to one instance."""
    space.cpus -= _millis(app.cpus)
    space.mem -= _millis(app.mem)
    space.disk -= _millis(app.disk)
    space.gpus -= app.gpus * 1000
    taken = set(found.ports)
    space.ports = [p for p in space.ports if p not in taken]


def _ports(app: AppDefinition, free: list[int]) -> list[int] | None:
    """The host ports for the app's port definitions, in their order; None if they are not
    there. With ``requirePorts`` the definitions' own numbers, else any free ones."""
    count = app.port_count()
    if app.require_ports:
        wanted = [p.port for p in app.port_definitions]
        return wanted if set(wanted) <= set(free) else None
    if len(free) < count:
        return None
    return free[:count]
