"""The v1 scheduler API's calls (Mesos's ``scheduler.proto`` ``Call``), read and checked.

``parse_call`` turns a request body into a ``SchedulerCall``: the call's type, its framework
id and what the bridge sends the master for it (a native message of docs/flows.md), or
raises ``CallError`` (corral/v1/http.py) with the HTTP status and a sentence for the client.
It is sans-IO: no master, no sockets; ``SchedulerApi`` decides what to do with the result.

Field names are those of Mesos's v1 ``Call`` in its proto3 JSON form. Where Corral does less
than Mesos (no inverse offers, no operation feedback, no persistent volumes) the call is
accepted and ignored as Mesos's allocator ignores REQUEST, or refused with 501 for calls a
client relies on (``UPDATE_FRAMEWORK``...), so that nothing is silently wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from corral.ids import AgentID, ExecutorID, FrameworkID, OfferID, TaskID
from corral.protocol import (
    Filters,
    FrameworkInfo,
    KillPolicy,
    Operation,
    ProtocolError,
    ReconcileTask,
    Wire,
)
from corral.protocol.messages import (
    AcceptOffers,
    DeclineOffers,
    FrameworkToExecutor,
    KillTask,
    Message,
    ReconcileTasks,
    ReviveOffers,
    ShutdownExecutor,
    StatusUpdateAcknowledgement,
    SuppressOffers,
    UnregisterFramework,
)
from corral.protocol.wire import ROLE, found
from corral.v1.http import CallError, json_body

API = "/api/v1/scheduler"  # how refusals name the endpoint
CALL = (  # what a client should POST there, in refusals
    'scheduler Call, e.g. {"type": "SUBSCRIBE", "subscribe": {"framework_info": '
    '{"user": "...", "name": "..."}}}'
)
UUID_BYTES = 16  # a status update's uuid (Mesos's UUID::fromBytes wants exactly 16)

# Mesos's operation types that Corral's master cannot apply; they are dropped from an ACCEPT
# (logged by the caller) and their resources go back, as for a failed operation in Mesos.
UNSUPPORTED_OPERATIONS = frozenset(
    {"CREATE", "DESTROY", "GROW_VOLUME", "SHRINK_VOLUME", "CREATE_DISK", "DESTROY_DISK"}
)

# Calls of Mesos's v1 API that Corral accepts and ignores: it never sends inverse offers,
# and its allocator ignores REQUEST as Mesos's hierarchical allocator does.
IGNORED_CALLS = frozenset({"REQUEST", "ACCEPT_INVERSE_OFFERS", "DECLINE_INVERSE_OFFERS"})

# Calls of newer Mesos versions that Corral does not implement: 501, with a reason.
UNIMPLEMENTED_CALLS = frozenset(
    {"UPDATE_FRAMEWORK", "ACKNOWLEDGE_OPERATION_STATUS", "RECONCILE_OPERATIONS"}
)

HANDLED_CALLS = (
    "SUBSCRIBE",
    "TEARDOWN",
    "ACCEPT",
    "DECLINE",
    "REVIVE",
    "SUPPRESS",
    "KILL",
    "SHUTDOWN",
    "ACKNOWLEDGE",
    "RECONCILE",
    "MESSAGE",
)
KNOWN_CALLS = frozenset(HANDLED_CALLS) | IGNORED_CALLS | UNIMPLEMENTED_CALLS


def _bad(reason: str) -> CallError:
    return CallError(400, reason)


# -- the bodies of the calls (v1 ``Call.<Type>``), in Corral's wire codec ------------------


@dataclass(frozen=True)
class Subscribe(Wire):
    framework_info: FrameworkInfo
    suppressed_roles: tuple[str, ...] = field(default=(), metadata=ROLE)


@dataclass(frozen=True)
class Accept(Wire):
    offer_ids: tuple[OfferID, ...] = ()
    operations: tuple[Operation, ...] = ()
    filters: Filters | None = None


@dataclass(frozen=True)
class Decline(Wire):
    offer_ids: tuple[OfferID, ...] = ()
    filters: Filters | None = None


@dataclass(frozen=True)
class Roles(Wire):
    """``Call.Revive`` and ``Call.Suppress``: no roles means all the framework's roles."""

    roles: tuple[str, ...] = field(default=(), metadata=ROLE)


@dataclass(frozen=True)
class Kill(Wire):
    task_id: TaskID
    agent_id: AgentID | None = None
    kill_policy: KillPolicy | None = None


@dataclass(frozen=True)
class Shutdown(Wire):
    executor_id: ExecutorID
    agent_id: AgentID


@dataclass(frozen=True)
class Acknowledge(Wire):
    agent_id: AgentID
    task_id: TaskID
    uuid: bytes

    def _check(self) -> None:
        if len(self.uuid) != UUID_BYTES:
            raise ProtocolError(
                "uuid",
                f"expected the {UUID_BYTES}-byte uuid of the update (base64 in JSON), got "
                f"{len(self.uuid)} bytes; acknowledge with the uuid the UPDATE event carried",
            )


@dataclass(frozen=True)
class Reconcile(Wire):
    tasks: tuple[ReconcileTask, ...] = ()


@dataclass(frozen=True)
class FrameworkMessage(Wire):
    agent_id: AgentID
    executor_id: ExecutorID
    data: bytes


# -- the parsed call ------------------------------------------------------------------------


@dataclass(frozen=True)
class SchedulerCall:
    """A valid call. For SUBSCRIBE, ``subscribe`` (its ``framework_info.id`` is the
    framework id when resubscribing); for the others ``message``, the native message the
    framework's bridge sends the master (None for the calls Corral ignores)."""

    type: str
    framework_id: FrameworkID | None
    subscribe: Subscribe | None = None
    message: Message | None = None
    dropped_operations: tuple[str, ...] = ()  # ACCEPT operations Corral cannot apply


def parse_call(body: bytes) -> SchedulerCall:
    """The call in a JSON request body; ``CallError`` says why it is not one."""
    data = json_body(body, CALL)
    if not isinstance(data, dict):
        raise _bad(f"a scheduler Call is a JSON object, got {found(data)}")
    kind = data.get("type")
    if kind is None:
        raise _bad(
            'Expecting \'type\' to be present: name the call, e.g. "SUBSCRIBE", "ACCEPT" '
            'or "TEARDOWN"'
        )
    if not isinstance(kind, str) or kind not in KNOWN_CALLS:
        raise _bad(
            f"'type' is not a scheduler call type: got {found(kind)}; expected one of "
            f"{', '.join(sorted(KNOWN_CALLS))}"
        )
    if kind in UNIMPLEMENTED_CALLS:
        raise CallError(
            501, f"{kind} calls are not implemented by Corral (it speaks Mesos's v1 API as of "
            f"1.x without them); use {', '.join(HANDLED_CALLS)}"
        )  # fmt: skip
    framework_id = _framework_id(data.get("framework_id"))
    if kind == "SUBSCRIBE":
        return _subscribe(data, framework_id)
    if framework_id is None:
        raise _bad(
            f"Expecting 'framework_id' to be present: a {kind} call names the framework "
            "that SUBSCRIBED gave"
        )
    if kind in IGNORED_CALLS:
        return SchedulerCall(kind, framework_id)
    return _translate(kind, framework_id, data)


def _framework_id(value: Any) -> FrameworkID | None:
    if value is None:
        return None
    try:
        return _Framework.from_wire({"framework_id": value}).framework_id
    except ProtocolError as error:
        raise _bad(f"'framework_id' is malformed: {error}") from None


@dataclass(frozen=True)
class _Framework(Wire):
    framework_id: FrameworkID


def _body(data: dict[str, Any], key: str, shape: type[Wire], required: bool = True) -> Any:
    """The call's field ``key`` read as ``shape``; 400 naming the field path if it is not."""
    value = data.get(key)
    if value is None:
        if required:
            raise _bad(f"Expecting '{key}' to be present for a {data['type']} call")
        value = {}
    try:
        return shape.from_wire(value)
    except ProtocolError as error:
        raise _bad(f"Failed to validate scheduler::Call: {error.within(key)}") from None


def _subscribe(data: dict[str, Any], framework_id: FrameworkID | None) -> SchedulerCall:
    subscribe: Subscribe = _body(data, "subscribe", Subscribe)
    info = subscribe.framework_info
    if framework_id is not None:
        if info.id is not None and info.id != framework_id:
            raise _bad(
                f"'framework_id' ({framework_id}) differs from 'subscribe.framework_info.id' "
                f"({info.id}); resubscribe with the same id in both"
            )
        if info.id is None:
            info = replace(info, id=framework_id)
    subscribe = Subscribe(info, subscribe.suppressed_roles)
    return SchedulerCall("SUBSCRIBE", info.id, subscribe=subscribe)


def _accept(framework_id: FrameworkID, data: dict[str, Any]) -> SchedulerCall:
    raw = data.get("accept")
    dropped: list[str] = []
    if isinstance(raw, dict) and isinstance(raw.get("operations"), list):
        kept = []
        for operation in raw["operations"]:
            kind = operation.get("type") if isinstance(operation, dict) else None
            if isinstance(kind, str) and kind in UNSUPPORTED_OPERATIONS:
                dropped.append(kind)
            else:
                kept.append(operation)
        data = {**data, "accept": {**raw, "operations": kept}}
    accept: Accept = _body(data, "accept", Accept)
    if not accept.offer_ids:
        raise _bad("Expecting 'accept.offer_ids' to name at least one offer")
    message = AcceptOffers(framework_id, accept.offer_ids, accept.operations, accept.filters)
    return SchedulerCall("ACCEPT", framework_id, message=message, dropped_operations=tuple(dropped))


def _translate(kind: str, framework_id: FrameworkID, data: dict[str, Any]) -> SchedulerCall:
    message: Message
    if kind == "ACCEPT":
        return _accept(framework_id, data)
    if kind == "DECLINE":
        decline: Decline = _body(data, "decline", Decline)
        if not decline.offer_ids:
            raise _bad("Expecting 'decline.offer_ids' to name at least one offer")
        message = DeclineOffers(framework_id, decline.offer_ids, decline.filters)
    elif kind == "REVIVE":
        message = ReviveOffers(framework_id, _body(data, "revive", Roles, required=False).roles)
    elif kind == "SUPPRESS":
        roles = _body(data, "suppress", Roles, required=False).roles
        message = SuppressOffers(framework_id, roles)
    elif kind == "KILL":
        kill: Kill = _body(data, "kill", Kill)
        message = KillTask(framework_id, kill.task_id, kill.agent_id, kill.kill_policy)
    elif kind == "SHUTDOWN":
        shutdown: Shutdown = _body(data, "shutdown", Shutdown)
        message = ShutdownExecutor(framework_id, shutdown.executor_id, shutdown.agent_id)
    elif kind == "ACKNOWLEDGE":
        ack: Acknowledge = _body(data, "acknowledge", Acknowledge)
        message = StatusUpdateAcknowledgement(ack.agent_id, framework_id, ack.task_id, ack.uuid)
    elif kind == "RECONCILE":
        message = ReconcileTasks(framework_id, _body(data, "reconcile", Reconcile).tasks)
    elif kind == "MESSAGE":
        sent: FrameworkMessage = _body(data, "message", FrameworkMessage)
        message = FrameworkToExecutor(sent.agent_id, framework_id, sent.executor_id, sent.data)
    elif kind == "TEARDOWN":
        message = UnregisterFramework(framework_id)
    else:  # pragma: no cover - KNOWN_CALLS and the branches above list the same types
        raise AssertionError(f"call type {kind} is known but not translated")
    return SchedulerCall(kind, framework_id, message=message)
