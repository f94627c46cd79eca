"""What the master tells its allocator: one frozen dataclass per event.

Each event applies itself to a ``HierarchicalAllocator`` and says which cycle it asks for
(``CYCLE_NONE``, ``CYCLE_ALL`` agents, or ``CYCLE_AGENT``: the one it names). Within one OS
process events travel as these objects; across processes as ``[NAME, field, ...]`` lists
(``to_wire`` / ``event_from_wire``), their Resources and Quota tagged by ``codec``. A typo in an
event is an AttributeError where it is written, not a refusal at the other end of a socket.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from corral.resources import Resources
from master.allocator import codec
from master.allocator.hierarchical import HierarchicalAllocator
from master.allocator.offer import AllocatorError
from master.allocator.quota import Quota

CYCLE_NONE = 0
CYCLE_ALL = 1  # the event may make any agent's resources offerable (a framework came)
CYCLE_AGENT = 2  # the event concerns the resources of the agent it names


class AllocatorEvent:
    """Base of the events; a subclass sets ``NAME`` and ``CYCLE`` and implements ``apply``."""

    __slots__ = ()
    NAME: ClassVar[str]
    CYCLE: ClassVar[int] = CYCLE_NONE

    def apply(self, core: HierarchicalAllocator, now: float) -> None:
        raise NotImplementedError

    def to_wire(self) -> list[Any]:
        values = (getattr(self, field.name) for field in fields(self))  # type: ignore[arg-type]
        return [self.NAME, *(codec.encode(value) for value in values)]


# -- agents -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddAgent(AllocatorEvent):
    """``used``: what each framework already holds there (allocated form), e.g. the tasks a
    re-registering agent reports; ``generation``: echoed in the agent's allocations, so that
    the master knows those made before the agent was removed and added again."""

    NAME: ClassVar[str] = "add_agent"
    CYCLE: ClassVar[int] = CYCLE_AGENT
    agent_id: str
    total: Resources
    used: Mapping[str, Resources] | None = None
    generation: int = 0

    def apply(self, core: HierarchicalAllocator, now: float) -> None:
        used = dict(self.used) if self.used else None
        core.add_agent(self.agent_id, self.total, used, self.generation)


@dataclass(frozen=True, slots=True)
class RemoveAgent(AllocatorEvent):
    NAME: ClassVar[str] = "remove_agent"
    agent_id: str

    def apply(self, core: HierarchicalAllocator, now: float) -> None:
        core.remove_agent(self.agent_id)


@dataclass(frozen=True, slots=True)
class UpdateAgent(AllocatorEvent):
    NAME: ClassVar[str] = "update_agent"
    CYCLE: ClassVar[int] = CYCLE_AGENT
    agent_id: str
    total: Resources

    def apply(self, core: HierarchicalAllocator, now: float) -> None:
        core.update_agent(self.agent_id, self.total)


@dataclass(frozen=True, slots=True)
class ActivateAgent(AllocatorEvent):
    NAME: ClassVar[str] = "activate_agent"
    CYCLE: ClassVar[int] = CYCLE_AGENT
    agent_id: str

    def apply(self, core: HierarchicalAllocator, now: float) -> None:
        core.activate_agent(self.agent_id)


@dataclass(frozen=True, slots=True)
class DeactivateAgent(AllocatorEvent):
    NAME: ClassVar[str] = "deactivate_agent"
    agent_id: str

    def apply(self, core: HierarchicalAllocator, now: float) -> None:
        core.deactivate_agent(self.agent_id)


@dataclass(frozen=True, slots=True)
class ClearAgentFilters(AllocatorEvent):
    """Every framework's decline filters on the agent go (as for an agent added anew)."""

    NAME: ClassVar[str] = "clear_agent_filters"
    agent_id: str

    def apply(self, core: HierarchicalAllocator, now: float) -> None:
        core.clear_agent_filters(self.agent_id)


# -- frameworks ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddFramework(AllocatorEvent):
    NAME: ClassVar[str] = "add_framework"
    CYCLE: ClassVar[int] = CYCLE_ALL
    framework_id: str
    roles: tuple[str, ...]
    gpu: bool = False

    def apply(self, core: HierarchicalAllocator, now: float) -> None:
        core.add_framework(self.framework_id, self.roles, gpu=self.gpu)


@dataclass(frozen=True, slots=True)
class UpdateFramework(AllocatorEvent):
    NAME: ClassVar[str] = "update_framework"
    CYCLE: ClassVar[int] = CYCLE_ALL
    framework_id: str
    roles: tuple[str, ...]
    gpu: bool | None = None

    def apply(self, core: HierarchicalAllocator, now: float) -> None:
        core.update_framework(self.framework_id, self.roles, gpu=self.gpu)


@dataclass(frozen=True, slots=True)
class RemoveFramework(AllocatorEvent):
    NAME: ClassVar[str] = "remove_framework"
    framework_id: str

    def apply(self, core: HierarchicalAllocator, now: float) -> None:
        core.remove_framework(self.framework_id)


@dataclass(frozen=True, slots=True)
class ActivateFramework(AllocatorEvent):
    NAME: ClassVar[str] = "activate_framework"
    CYCLE: ClassVar[int] = CYCLE_ALL
    framework_id: str

    def apply(self, core: HierarchicalAllocator, now: float) -> None:
        core.activate_framework(self.framework_id)


@dataclass(frozen=True, slots=True)
class DeactivateFramework(AllocatorEvent):
    NAME: ClassVar[str] = "deactivate_framework"
    framework_id: str

    def apply(self, core: HierarchicalAllocator, now: float) -> None:
        core.deactivate_framework(self.framework_id)


@dataclass(frozen=True, slots=True)
class Suppress(AllocatorEvent):
    """No offers for ``roles`` (None: all the framework's roles) until a revive."""

    NAME: ClassVar[str] = "suppress"
    framework_id: str
    roles: tuple[str, ...] | None = None

    def apply(self, core: HierarchicalAllocator, now: float) -> None:
        core.suppress(self.framework_id, self.roles)


@dataclass(frozen=True, slots=True)
class Revive(AllocatorEvent):
    """Offers again for ``roles`` (None: all), their decline filters dropped."""

    NAME: ClassVar[str] = "revive"
    CYCLE: ClassVar[int] = CYCLE_ALL
    framework_id: str
    roles: tuple[str, ...] | None = None

    def apply(self, core: HierarchicalAllocator, now: float) -> None:
        core.revive(self.framework_id, self.roles)


# -- roles ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetWeight(AllocatorEvent):
    NAME: ClassVar[str] = "set_weight"
    role: str
    weight: float

    def apply(self, core: HierarchicalAllocator, now: float) -> None:
        core.set_weight(self.role, self.weight)


@dataclass(frozen=True, slots=True)
class SetQuota(AllocatorEvent):
    NAME: ClassVar[str] = "set_quota"
    role: str
    quota: Quota

    def apply(self, core: HierarchicalAllocator, now: float) -> None:
        core.set_quota(self.role, self.quota)


# -- resources ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecoverResources(AllocatorEvent):
    """Resources a framework held come back (declined, unused, or freed by a task's end);
    ``refuse_seconds`` leaves a decline filter. Filters expire by the allocator's clock."""

    NAME: ClassVar[str] = "recover_resources"
    framework_id: str
    agent_id: str
    resources: Resources
    refuse_seconds: float | None = None

    def apply(self, core: HierarchicalAllocator, now: float) -> None:
        core.recover_resources(
            self.framework_id, self.agent_id, self.resources, self.refuse_seconds, now=now
        )


@dataclass(frozen=True, slots=True)
class RecoverDeclined(AllocatorEvent):
    """The offers one DECLINE names come back together: ``pieces`` are (agent id, resources)
    pairs, one per offer, all with the DECLINE's filter."""

    NAME: ClassVar[str] = "recover_declined"
    framework_id: str
    pieces: tuple[tuple[str, Resources], ...]
    refuse_seconds: float | None = None

    def apply(self, core: HierarchicalAllocator, now: float) -> None:
        core.recover_declined(self.framework_id, self.pieces, self.refuse_seconds, now=now)


EVENTS: dict[str, type[AllocatorEvent]] = {
    event.NAME: event
    for event in (
        AddAgent,
        RemoveAgent,
        UpdateAgent,
        ActivateAgent,
        DeactivateAgent,
        ClearAgentFilters,
        AddFramework,
        UpdateFramework,
        RemoveFramework,
        ActivateFramework,
        DeactivateFramework,
        Suppress,
        Revive,
        SetWeight,
        SetQuota,
        RecoverResources,
        RecoverDeclined,
    )
}


def event_from_wire(body: Any) -> AllocatorEvent:
    """The event a ``to_wire`` list names; ``AllocatorError`` saying what is wrong otherwise."""
    if not isinstance(body, list | tuple) or not body or not isinstance(body[0], str):
        raise AllocatorError(f"an allocator event is [name, field, ...], got {str(body)[:100]!r}")
    cls = EVENTS.get(body[0])
    if cls is None:
        raise AllocatorError(
            f"the allocator has no event {body[0]!r}; events: {', '.join(sorted(EVENTS))}"
        )
    values = [codec.decode(value) for value in body[1:]]
    try:
        return cls(*(tuple(value) if isinstance(value, list) else value for value in values))
    except TypeError as error:
        raise AllocatorError(f"{body[0]}: {error}") from None
