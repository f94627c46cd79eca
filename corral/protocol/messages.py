"""The messages between scheduler driver, master, agent and executor.

Each message is a frozen dataclass with a class-level ``NAME``, the libprocess message name
it travels under; its body is ``to_wire()`` (Mesos's v1 JSON shapes, bytes kept as bytes for
msgpack). ``encode`` and ``decode_message`` are the two ends: a handler receives a decoded,
validated message or the sender's fault is reported as a ``ProtocolError``.

Direction is noted on each class: S scheduler driver, M master, A agent, E executor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from corral.ids import AgentID, ExecutorID, FrameworkID, OfferID, TaskID
from corral.protocol.infos import (
    AgentInfo,
    ExecutorInfo,
    Filters,
    FrameworkInfo,
    KillPolicy,
    MasterInfo,
    Offer,
    Operation,
    ReconcileTask,
    Task,
    TaskGroupInfo,
    TaskInfo,
    TaskStatus,
)
from corral.protocol.wire import ROLE, ProtocolError, Wire, found
from corral.resources import Resources


class Message(Wire):
    """Base of the messages; a subclass sets ``NAME`` and is listed in ``MESSAGES``."""

    __slots__ = ()
    NAME: ClassVar[str]


# -- scheduler driver <-> master ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegisterFramework(Message):
    """S -> M: subscribe for the first time (``framework.id`` unset)."""

    NAME: ClassVar[str] = "corral.RegisterFramework"
    framework: FrameworkInfo


@dataclass(frozen=True, slots=True)
class ReregisterFramework(Message):
    """S -> M: subscribe again with ``framework.id`` set; ``failover`` when this is a new
    scheduler process taking over (the old one is told to go)."""

    NAME: ClassVar[str] = "corral.ReregisterFramework"
    framework: FrameworkInfo
    failover: bool = False


@dataclass(frozen=True, slots=True)
class FrameworkRegistered(Message):
    """M -> S."""

    NAME: ClassVar[str] = "corral.FrameworkRegistered"
    framework_id: FrameworkID
    master_info: MasterInfo


@dataclass(frozen=True, slots=True)
class FrameworkReregistered(Message):
    """M -> S."""

    NAME: ClassVar[str] = "corral.FrameworkReregistered"
    framework_id: FrameworkID
    master_info: MasterInfo


@dataclass(frozen=True, slots=True)
class UnregisterFramework(Message):
    """S -> M: teardown; the framework's tasks are killed."""

    NAME: ClassVar[str] = "corral.UnregisterFramework"
    framework_id: FrameworkID


@dataclass(frozen=True, slots=True)
class DeactivateFramework(Message):
    """S -> M: stop with failover; tasks keep running for ``failover_timeout``."""

    NAME: ClassVar[str] = "corral.DeactivateFramework"
    framework_id: FrameworkID


@dataclass(frozen=True, slots=True)
class ResourceOffers(Message):
    """M -> S: ``pids[i]`` is the UPID of the agent of ``offers[i]`` (for direct framework
    messages), as in Mesos."""

    NAME: ClassVar[str] = "corral.ResourceOffers"
    offers: tuple[Offer, ...]
    pids: tuple[str, ...] = ()

    def _check(self) -> None:
        if self.pids and len(self.pids) != len(self.offers):
            raise ProtocolError(
                "pids",
                f"expected one pid per offer ({len(self.offers)}), got {len(self.pids)}",
            )


@dataclass(frozen=True, slots=True)
class RescindOffer(Message):
    """M -> S."""

    NAME: ClassVar[str] = "corral.RescindOffer"
    offer_id: OfferID


@dataclass(frozen=True, slots=True)
class AcceptOffers(Message):
    """S -> M: apply ``operations`` to the offers' resources; the rest is declined with
    ``filters``."""

    NAME: ClassVar[str] = "corral.AcceptOffers"
    framework_id: FrameworkID
    offer_ids: tuple[OfferID, ...]
    operations: tuple[Operation, ...] = ()
    filters: Filters | None = None


@dataclass(frozen=True, slots=True)
class DeclineOffers(Message):
    """S -> M."""

    NAME: ClassVar[str] = "corral.DeclineOffers"
    framework_id: FrameworkID
    offer_ids: tuple[OfferID, ...]
    filters: Filters | None = None


@dataclass(frozen=True, slots=True)
class ReviveOffers(Message):
    """S -> M: drop filters and take offers again (for ``roles``, or all roles if empty)."""

    NAME: ClassVar[str] = "corral.ReviveOffers"
    framework_id: FrameworkID
    roles: tuple[str, ...] = field(default=(), metadata=ROLE)


@dataclass(frozen=True, slots=True)
class SuppressOffers(Message):
    """S -> M: send no offers (for ``roles``, or all roles if empty) until revived."""

    NAME: ClassVar[str] = "corral.SuppressOffers"
    framework_id: FrameworkID
    roles: tuple[str, ...] = field(default=(), metadata=ROLE)


@dataclass(frozen=True, slots=True)
class KillTask(Message):
    """S -> M -> A -> E; ``kill_policy`` overrides the task's own."""

    NAME: ClassVar[str] = "corral.KillTask"
    framework_id: FrameworkID
    task_id: TaskID
    agent_id: AgentID | None = None
    kill_policy: KillPolicy | None = None


@dataclass(frozen=True, slots=True)
class StatusUpdate(Message):
    """E -> A -> M -> S: ``pid`` is the agent that wants the acknowledgement ("" when the
    master made the update, which needs none)."""

    NAME: ClassVar[str] = "corral.StatusUpdate"
    framework_id: FrameworkID
    status: TaskStatus
    pid: str = ""


@dataclass(frozen=True, slots=True)
class StatusUpdateAcknowledgement(Message):
    """S -> M -> A -> E: the update with ``uuid`` was received; stop resending it."""

    NAME: ClassVar[str] = "corral.StatusUpdateAcknowledgement"
    agent_id: AgentID
    framework_id: FrameworkID
    task_id: TaskID
    uuid: bytes


@dataclass(frozen=True, slots=True)
class ReconcileTasks(Message):
    """S -> M: the latest state of ``tasks``, or of all the framework's tasks when empty
    (implicit reconciliation)."""

    NAME: ClassVar[str] = "corral.ReconcileTasks"
    framework_id: FrameworkID
    tasks: tuple[ReconcileTask, ...] = ()


@dataclass(frozen=True, slots=True)
class FrameworkToExecutor(Message):
    """S -> M -> A -> E: opaque framework data, best effort."""

    NAME: ClassVar[str] = "corral.FrameworkToExecutor"
    agent_id: AgentID
    framework_id: FrameworkID
    executor_id: ExecutorID
    data: bytes


@dataclass(frozen=True, slots=True)
class ExecutorToFramework(Message):
    """E -> A -> M -> S: opaque executor data, best effort."""

    NAME: ClassVar[str] = "corral.ExecutorToFramework"
    agent_id: AgentID
    framework_id: FrameworkID
    executor_id: ExecutorID
    data: bytes


@dataclass(frozen=True, slots=True)
class FrameworkError(Message):
    """M -> S: the framework did something the master refuses (it is then removed)."""

    NAME: ClassVar[str] = "corral.FrameworkError"
    message: str


@dataclass(frozen=True, slots=True)
class AgentLost(Message):
    """M -> S."""

    NAME: ClassVar[str] = "corral.AgentLost"
    agent_id: AgentID


@dataclass(frozen=True, slots=True)
class ExecutorLost(Message):
    """M -> S: ``status`` is the executor's exit status when known."""

    NAME: ClassVar[str] = "corral.ExecutorLost"
    framework_id: FrameworkID
    executor_id: ExecutorID
    agent_id: AgentID
    status: int | None = None


# -- agent <-> master -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegisterAgent(Message):
    """A -> M: first registration. ``agent.resources`` is the total; ``checkpointed_resources``
    the reservations the agent keeps from earlier runs."""

    NAME: ClassVar[str] = "corral.RegisterAgent"
    agent: AgentInfo
    version: str
    checkpointed_resources: Resources = field(default_factory=Resources)


@dataclass(frozen=True, slots=True)
class ReregisterAgent(Message):
    """A -> M: after an agent restart or a master failover, with what the agent still runs."""

    NAME: ClassVar[str] = "corral.ReregisterAgent"
    agent: AgentInfo
    version: str
    tasks: tuple[Task, ...] = ()
    executor_infos: tuple[ExecutorInfo, ...] = ()
    frameworks: tuple[FrameworkInfo, ...] = ()
    checkpointed_resources: Resources = field(default_factory=Resources)


@dataclass(frozen=True, slots=True)
class AgentRegistered(Message):
    """M -> A. ``ping_timeout``: seconds without a ``PingAgent`` after which the agent takes
    the master for lost and registers again (the master's ping interval times its limit)."""

    NAME: ClassVar[str] = "corral.AgentRegistered"
    agent_id: AgentID
    ping_timeout: float | None = None


@dataclass(frozen=True, slots=True)
class AgentReregistered(Message):
    """M -> A. ``ping_timeout``: seconds without a ``PingAgent`` after which the agent takes
    the master for lost and registers again (the master's ping interval times its limit)."""

    NAME: ClassVar[str] = "corral.AgentReregistered"
    agent_id: AgentID
    ping_timeout: float | None = None


@dataclass(frozen=True, slots=True)
class UnregisterAgent(Message):
    """A -> M: the agent leaves for good (its tasks are gone)."""

    NAME: ClassVar[str] = "corral.UnregisterAgent"
    agent_id: AgentID


@dataclass(frozen=True, slots=True)
class ShutdownAgent(Message):
    """M -> A: the master refuses this agent for good (Mesos's ``ShutdownMessage``): it was
    marked gone, or its id, pid or host do not match what the master admitted. ``message``
    says why; the agent stops (and, like Mesos's, forgets its id, so that a restart on the
    same work directory registers as a new agent)."""

    NAME: ClassVar[str] = "corral.ShutdownAgent"
    message: str


@dataclass(frozen=True, slots=True)
class PingAgent(Message):
    """M -> A: health check; ``connected`` tells the agent whether the master counts it as
    registered (an agent that is not re-registers)."""

    NAME: ClassVar[str] = "corral.PingAgent"
    connected: bool


@dataclass(frozen=True, slots=True)
class PongAgent(Message):
    """A -> M."""

    NAME: ClassVar[str] = "corral.PongAgent"


@dataclass(frozen=True, slots=True)
class RunTask(Message):
    """M -> A (and A -> E): launch ``task``; ``pid`` is the scheduler's UPID."""

    NAME: ClassVar[str] = "corral.RunTask"
    framework: FrameworkInfo
    task: TaskInfo
    pid: str = ""


@dataclass(frozen=True, slots=True)
class RunTaskGroup(Message):
    """M -> A (and A -> E): launch ``task_group`` under ``executor`` (all or none)."""

    NAME: ClassVar[str] = "corral.RunTaskGroup"
    framework: FrameworkInfo
    executor: ExecutorInfo
    task_group: TaskGroupInfo


@dataclass(frozen=True, slots=True)
class ShutdownFramework(Message):
    """M -> A: kill the framework's executors and tasks on this agent."""

    NAME: ClassVar[str] = "corral.ShutdownFramework"
    framework_id: FrameworkID


@dataclass(frozen=True, slots=True)
class ShutdownExecutor(Message):
    """S -> M -> A -> E. ``reason``, set by an agent that refuses an executor's
    (re-)registration, tells the executor why it must stop."""

    NAME: ClassVar[str] = "corral.ShutdownExecutor"
    framework_id: FrameworkID
    executor_id: ExecutorID
    agent_id: AgentID | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ExitedExecutor(Message):
    """A -> M: an executor ended with exit ``status``."""

    NAME: ClassVar[str] = "corral.ExitedExecutor"
    agent_id: AgentID
    framework_id: FrameworkID
    executor_id: ExecutorID
    status: int


# -- executor <-> agent ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegisterExecutor(Message):
    """E -> A: the executor process is up."""

    NAME: ClassVar[str] = "corral.RegisterExecutor"
    framework_id: FrameworkID
    executor_id: ExecutorID


@dataclass(frozen=True, slots=True)
class ExecutorRegistered(Message):
    """A -> E: who the executor works for and where."""

    NAME: ClassVar[str] = "corral.ExecutorRegistered"
    executor_info: ExecutorInfo
    framework_id: FrameworkID
    framework_info: FrameworkInfo
    agent_id: AgentID
    agent_info: AgentInfo


@dataclass(frozen=True, slots=True)
class ReregisterExecutor(Message):
    """E -> A after an agent restart: the tasks it runs and its unacknowledged updates."""

    NAME: ClassVar[str] = "corral.ReregisterExecutor"
    framework_id: FrameworkID
    executor_id: ExecutorID
    tasks: tuple[TaskInfo, ...] = ()
    updates: tuple[TaskStatus, ...] = ()


@dataclass(frozen=True, slots=True)
class ReconnectExecutor(Message):
    """A -> E: a restarted agent found the executor still running; it answers with
    ``ReregisterExecutor`` to the sender (the agent's new pid)."""

    NAME: ClassVar[str] = "corral.ReconnectExecutor"
    agent_id: AgentID


@dataclass(frozen=True, slots=True)
class ExecutorReregistered(Message):
    """A -> E."""

    NAME: ClassVar[str] = "corral.ExecutorReregistered"
    agent_id: AgentID
    agent_info: AgentInfo


_ALL: tuple[type[Message], ...] = (
    RegisterFramework,
    ReregisterFramework,
    FrameworkRegistered,
    FrameworkReregistered,
    UnregisterFramework,
    DeactivateFramework,
    ResourceOffers,
    RescindOffer,
    AcceptOffers,
    DeclineOffers,
    ReviveOffers,
    SuppressOffers,
    KillTask,
    StatusUpdate,
    StatusUpdateAcknowledgement,
    ReconcileTasks,
    FrameworkToExecutor,
    ExecutorToFramework,
    FrameworkError,
    AgentLost,
    ExecutorLost,
    RegisterAgent,
    ReregisterAgent,
    AgentRegistered,
    AgentReregistered,
    UnregisterAgent,
    ShutdownAgent,
    PingAgent,
    PongAgent,
    RunTask,
    RunTaskGroup,
    ShutdownFramework,
    ShutdownExecutor,
    ExitedExecutor,
    RegisterExecutor,
    ExecutorRegistered,
    ReregisterExecutor,
    ReconnectExecutor,
    ExecutorReregistered,
)

MESSAGES: dict[str, type[Message]] = {message.NAME: message for message in _ALL}
assert len(MESSAGES) == len(_ALL), "two messages share a NAME"


def encode(message: Message) -> tuple[str, dict[str, Any]]:
    """``(name, body)`` for ``send``: the body is msgpack-ready (bytes stay bytes)."""
    return message.NAME, message.to_wire()


def decode_message(name: str, body: Any) -> Message:
    """The validated message named ``name``; ``ProtocolError`` (prefixed with the name) for an
    unknown name or a body of the wrong shape."""
    cls = MESSAGES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ProtocolError(
            "",
            f"unknown message name {name!r}; expected one of Corral's 'corral.*' messages "
            "(is the sender a different version of Corral?)",
        )
    if not isinstance(body, dict):
        raise ProtocolError(name, f"expected a message body (a map), got {found(body)}")
    try:
        return cls.from_wire(body)
    except ProtocolError as error:
        raise ProtocolError(name, str(error)) from None
