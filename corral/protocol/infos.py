"""The infos the messages carry: frameworks, agents, executors, tasks, offers, statuses.

Field names, shapes and enum names are Mesos's v1 protobufs' (include/mesos/v1/mesos.proto)
in their JSON form, so one definition serves the native msgpack protocol and the v1 HTTP APIs.
Only the shape is checked here; the master judges meaning (a task with neither command nor
executor is well formed, and gets TASK_ERROR from the master's validation).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from corral.ids import AgentID, ExecutorID, FrameworkID, OfferID, TaskID
from corral.protocol.checks import CheckInfo, CheckStatusInfo, HealthCheck
from corral.protocol.commands import CommandInfo
from corral.protocol.wire import DURATION, ROLE, ProtocolError, Wire, wrapped
from corral.resources import Resources
from corral.task_states import Reason, Source, TaskState

LABELS = wrapped("labels")


def _check_one_of(value: Wire, wanted: str, fields: Iterable[str], what: str) -> None:
    """Mesos's tagged unions (``type`` plus one field of that name): ``wanted`` must be set
    and the other ``fields`` unset."""
    if getattr(value, wanted) is None:
        raise ProtocolError(wanted, f"{what} needs '{wanted}', and it is missing")
    for name in fields:
        if name != wanted and getattr(value, name) is not None:
            raise ProtocolError(name, f"{what} carries only '{wanted}'; remove '{name}'")


@dataclass(frozen=True, slots=True)
class Label(Wire):
    key: str
    value: str | None = None


# -- attributes -----------------------------------------------------------------------------


class ValueType(enum.Enum):
    SCALAR = "SCALAR"
    RANGES = "RANGES"
    SET = "SET"
    TEXT = "TEXT"


@dataclass(frozen=True, slots=True)
class Scalar(Wire):
    value: float


@dataclass(frozen=True, slots=True)
class Range(Wire):
    begin: int
    end: int

    def _check(self) -> None:
        if self.begin > self.end:
            raise ProtocolError("", f"a range needs begin <= end, got {self.begin}-{self.end}")


@dataclass(frozen=True, slots=True)
class RangesValue(Wire):
    range: tuple[Range, ...] = ()


@dataclass(frozen=True, slots=True)
class SetValue(Wire):
    item: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Text(Wire):
    value: str


_ATTRIBUTE_VALUE_FIELD = {
    ValueType.SCALAR: "scalar",
    ValueType.RANGES: "ranges",
    ValueType.SET: "set",
    ValueType.TEXT: "text",
}


@dataclass(frozen=True, slots=True)
class Attribute(Wire):
    """An agent's attribute (``rack:r1``, ``zone:{a,b}``): one value, of the field ``type``
    names. Build them with ``Attribute.of_text("rack", "r1")`` and friends."""

    name: str
    type: ValueType
    scalar: Scalar | None = None
    ranges: RangesValue | None = None
    set: SetValue | None = None
    text: Text | None = None

    def _check(self) -> None:
        _check_one_of(
            self,
            _ATTRIBUTE_VALUE_FIELD[self.type],
            _ATTRIBUTE_VALUE_FIELD.values(),
            f"a {self.type.value} attribute",
        )

    @classmethod
    def of_text(cls, name: str, value: str) -> Attribute:
        return cls(name, ValueType.TEXT, text=Text(value))

    @classmethod
    def of_scalar(cls, name: str, value: float) -> Attribute:
        return cls(name, ValueType.SCALAR, scalar=Scalar(value))

    @classmethod
    def of_set(cls, name: str, items: tuple[str, ...]) -> Attribute:
        return cls(name, ValueType.SET, set=SetValue(items))

    @classmethod
    def of_ranges(cls, name: str, ranges: tuple[tuple[int, int], ...]) -> Attribute:
        return cls(name, ValueType.RANGES, ranges=RangesValue(tuple(Range(*r) for r in ranges)))


# -- frameworks -----------------------------------------------------------------------------


class FrameworkCapabilityType(enum.Enum):
    REVOCABLE_RESOURCES = "REVOCABLE_RESOURCES"
    TASK_KILLING_STATE = "TASK_KILLING_STATE"
    GPU_RESOURCES = "GPU_RESOURCES"
    SHARED_RESOURCES = "SHARED_RESOURCES"
    PARTITION_AWARE = "PARTITION_AWARE"
    MULTI_ROLE = "MULTI_ROLE"
    RESERVATION_REFINEMENT = "RESERVATION_REFINEMENT"
    REGION_AWARE = "REGION_AWARE"


@dataclass(frozen=True, slots=True)
class FrameworkCapability(Wire):
    type: FrameworkCapabilityType


@dataclass(frozen=True, slots=True)
class FrameworkInfo(Wire):
    """Who a framework is. ``roles`` is used with the MULTI_ROLE capability, the legacy
    ``role`` without it (as in Mesos; the master decides which applies)."""

    user: str
    name: str
    id: FrameworkID | None = None
    failover_timeout: float = 0.0  # seconds the master waits for a disconnected framework
    checkpoint: bool = False
    role: str | None = field(default=None, metadata=ROLE)
    roles: tuple[str, ...] = field(default=(), metadata=ROLE)
    hostname: str | None = None
    principal: str | None = None
    webui_url: str | None = None
    capabilities: tuple[FrameworkCapability, ...] = ()
    labels: tuple[Label, ...] = field(default=(), metadata=LABELS)

    def has_capability(self, capability: FrameworkCapabilityType) -> bool:
        return any(c.type is capability for c in self.capabilities)


# -- master and agents ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Address(Wire):
    hostname: str | None = None
    ip: str | None = None
    port: int = 0


@dataclass(frozen=True, slots=True)
class MasterInfo(Wire):
    """``ip`` is Mesos's packed IPv4 integer (kept for compatibility); ``address`` is the
    readable form that v1 clients use."""

    id: str
    ip: int = 0
    port: int = 5050
    pid: str | None = None
    hostname: str | None = None
    version: str | None = None
    address: Address | None = None


@dataclass(frozen=True, slots=True)
class AgentInfo(Wire):
    hostname: str
    port: int = 5051
    resources: Resources = field(default_factory=Resources)
    attributes: tuple[Attribute, ...] = ()
    id: AgentID | None = None


# -- commands, executors, tasks -------------------------------------------------------------


class ImageType(enum.Enum):
    DOCKER = "DOCKER"
    APPC = "APPC"


@dataclass(frozen=True, slots=True)
class DockerImage(Wire):
    name: str


@dataclass(frozen=True, slots=True)
class AppcImage(Wire):
    name: str


@dataclass(frozen=True, slots=True)
class Image(Wire):
    """Mesos's image reference; Corral looks ``docker.name`` (or ``appc.name``) up in the
    agent's image store (rootfs tarballs and OCI layouts; no registry pulls)."""

    type: ImageType
    docker: DockerImage | None = None
    appc: AppcImage | None = None

    @property
    def name(self) -> str:
        """The name to look up ('' when the field its type names is missing: the agent
        refuses such a task with a reason)."""
        chosen = self.docker if self.type is ImageType.DOCKER else self.appc
        return chosen.name if chosen is not None else ""


@dataclass(frozen=True, slots=True)
class MesosContainerInfo(Wire):
    image: Image | None = None


class ContainerType(enum.Enum):
    MESOS = "MESOS"
    DOCKER = "DOCKER"


@dataclass(frozen=True, slots=True)
class IPAddress(Wire):
    protocol: str | None = None  # "IPv4" (default) or "IPv6"
    ip_address: str | None = None


@dataclass(frozen=True, slots=True)
class NetworkInfo(Wire):
    """A network a container joins (``name``: a CNI network), and, in a status, the addresses
    it got there: what Mesos-DNS's names resolve to before the agent's address."""

    ip_addresses: tuple[IPAddress, ...] = ()
    name: str | None = None
    labels: tuple[Label, ...] = field(default=(), metadata=LABELS)


@dataclass(frozen=True, slots=True)
class ContainerStatus(Wire):
    """What a status says of the task's container: its networks' addresses, its executor's
    pid."""

    network_infos: tuple[NetworkInfo, ...] = ()
    executor_pid: int | None = None


class DiscoveryVisibility(enum.Enum):
    FRAMEWORK = "FRAMEWORK"
    CLUSTER = "CLUSTER"
    EXTERNAL = "EXTERNAL"


@dataclass(frozen=True, slots=True)
class Port(Wire):
    """A named port of a task (``PORT_<NAME>`` in its environment; an SRV record's port)."""

    number: int
    name: str | None = None
    protocol: str | None = None  # "tcp" or "udp"
    visibility: DiscoveryVisibility | None = None
    labels: tuple[Label, ...] = field(default=(), metadata=LABELS)


@dataclass(frozen=True, slots=True)
class DiscoveryInfo(Wire):
    """How a task wants to be found (Mesos's ``DiscoveryInfo``): its service name and ports."""

    visibility: DiscoveryVisibility = DiscoveryVisibility.FRAMEWORK
    name: str | None = None
    environment: str | None = None
    location: str | None = None
    version: str | None = None
    ports: tuple[Port, ...] = field(default=(), metadata=wrapped("ports"))
    labels: tuple[Label, ...] = field(default=(), metadata=LABELS)


@dataclass(frozen=True, slots=True)
class ContainerInfo(Wire):
    """How a task's container is made: with ``mesos.image`` it runs from that image (the
    OCI containerizer, under runc); without, on the agent's own filesystem."""

    type: ContainerType = ContainerType.MESOS
    mesos: MesosContainerInfo | None = None
    network_infos: tuple[NetworkInfo, ...] = ()

    @property
    def image(self) -> Image | None:
        return self.mesos.image if self.mesos is not None else None


class ExecutorType(enum.Enum):
    DEFAULT = "DEFAULT"  # the agent's built-in executor (task groups)
    CUSTOM = "CUSTOM"  # a program the framework supplies in ``command``


@dataclass(frozen=True, slots=True)
class ExecutorInfo(Wire):
    executor_id: ExecutorID
    framework_id: FrameworkID | None = None
    command: CommandInfo | None = None
    resources: Resources = field(default_factory=Resources)
    name: str | None = None
    type: ExecutorType | None = None  # absent: CUSTOM if ``command`` is given
    labels: tuple[Label, ...] = field(default=(), metadata=LABELS)
    container: ContainerInfo | None = None


@dataclass(frozen=True, slots=True)
class KillPolicy(Wire):
    grace_period: float | None = field(default=None, metadata=DURATION)  # seconds


@dataclass(frozen=True, slots=True)
class TaskInfo(Wire):
    """A task to launch: with ``command`` it runs under the command executor, with
    ``executor`` under that executor (the master refuses neither or both)."""

    name: str
    task_id: TaskID
    agent_id: AgentID
    resources: Resources = field(default_factory=Resources)
    executor: ExecutorInfo | None = None
    command: CommandInfo | None = None
    data: bytes | None = None
    labels: tuple[Label, ...] = field(default=(), metadata=LABELS)
    kill_policy: KillPolicy | None = None
    container: ContainerInfo | None = None
    health_check: HealthCheck | None = None
    check: CheckInfo | None = None
    discovery: DiscoveryInfo | None = None


@dataclass(frozen=True, slots=True)
class TaskGroupInfo(Wire):
    tasks: tuple[TaskInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class TaskStatus(Wire):
    """One status update's content. ``uuid`` (16 bytes) identifies an update that needs
    acknowledging; updates without one (reconciliation answers) need none."""

    task_id: TaskID
    state: TaskState
    message: str | None = None
    source: Source | None = None
    reason: Reason | None = None
    data: bytes | None = None
    agent_id: AgentID | None = None
    executor_id: ExecutorID | None = None
    timestamp: float | None = None  # seconds since the epoch
    uuid: bytes | None = None
    healthy: bool | None = None
    labels: tuple[Label, ...] = field(default=(), metadata=LABELS)
    check_status: CheckStatusInfo | None = None
    container_status: ContainerStatus | None = None


@dataclass(frozen=True, slots=True)
class Task(Wire):
    """A task as the master and agents track it (Mesos's ``Task``): what an agent reports on
    re-registration and what state endpoints show."""

    name: str
    task_id: TaskID
    framework_id: FrameworkID
    agent_id: AgentID
    state: TaskState
    executor_id: ExecutorID | None = None
    resources: Resources = field(default_factory=Resources)
    statuses: tuple[TaskStatus, ...] = ()
    status_update_state: TaskState | None = None  # latest state not yet acknowledged
    status_update_uuid: bytes | None = None
    labels: tuple[Label, ...] = field(default=(), metadata=LABELS)
    discovery: DiscoveryInfo | None = None  # the TaskInfo's: what Mesos-DNS's names read


# -- offers and operations ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AllocationInfo(Wire):
    role: str | None = field(default=None, metadata=ROLE)


@dataclass(frozen=True, slots=True)
class Offer(Wire):
    id: OfferID
    framework_id: FrameworkID
    agent_id: AgentID
    hostname: str
    resources: Resources = field(default_factory=Resources)
    attributes: tuple[Attribute, ...] = ()
    executor_ids: tuple[ExecutorID, ...] = ()
    allocation_info: AllocationInfo | None = None


@dataclass(frozen=True, slots=True)
class Filters(Wire):
    """How long declined or unused resources stay away from the framework."""

    refuse_seconds: float = 5.0

    def _check(self) -> None:
        if self.refuse_seconds < 0:
            raise ProtocolError(
                "refuse_seconds", f"expected 0 or more seconds, got {self.refuse_seconds}"
            )


class OperationType(enum.Enum):
    LAUNCH = "LAUNCH"
    LAUNCH_GROUP = "LAUNCH_GROUP"
    RESERVE = "RESERVE"
    UNRESERVE = "UNRESERVE"


@dataclass(frozen=True, slots=True)
class Launch(Wire):
    task_infos: tuple[TaskInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class LaunchGroup(Wire):
    executor: ExecutorInfo
    task_group: TaskGroupInfo


@dataclass(frozen=True, slots=True)
class Reserve(Wire):
    resources: Resources = field(default_factory=Resources)


@dataclass(frozen=True, slots=True)
class Unreserve(Wire):
    resources: Resources = field(default_factory=Resources)


_OPERATION_FIELD = {
    OperationType.LAUNCH: "launch",
    OperationType.LAUNCH_GROUP: "launch_group",
    OperationType.RESERVE: "reserve",
    OperationType.UNRESERVE: "unreserve",
}


@dataclass(frozen=True, slots=True)
class Operation(Wire):
    """One operation of an ACCEPT: ``type`` names it and the field of that name (lower case)
    carries it; exactly that field must be present."""

    type: OperationType
    launch: Launch | None = None
    launch_group: LaunchGroup | None = None
    reserve: Reserve | None = None
    unreserve: Unreserve | None = None

    def _check(self) -> None:
        _check_one_of(
            self,
            _OPERATION_FIELD[self.type],
            _OPERATION_FIELD.values(),
            f"a {self.type.value} operation",
        )

    def launched_tasks(self) -> tuple[TaskInfo, ...]:
        """The tasks this operation launches (none for a reservation)."""
        if self.launch is not None:
            return self.launch.task_infos
        if self.launch_group is not None:
            return self.launch_group.task_group.tasks
        return ()

    @classmethod
    def of_launch(cls, *task_infos: TaskInfo) -> Operation:
        return cls(OperationType.LAUNCH, launch=Launch(task_infos))

    @classmethod
    def of_launch_group(cls, executor: ExecutorInfo, tasks: tuple[TaskInfo, ...]) -> Operation:
        group = LaunchGroup(executor, TaskGroupInfo(tasks))
        return cls(OperationType.LAUNCH_GROUP, launch_group=group)


@dataclass(frozen=True, slots=True)
class ReconcileTask(Wire):
    """A task a framework asks the truth about (v1's ``Call.Reconcile.Task``)."""

    task_id: TaskID
    agent_id: AgentID | None = None
