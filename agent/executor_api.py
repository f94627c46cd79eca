"""Mesos's v1 executor HTTP API (``POST /api/v1/executor``), bridged onto the native protocol.

An executor written against the HTTP API (JSON calls, a RecordIO stream of events) talks to
the agent exactly as a native ``corral.executor.ExecutorDriver`` does: its SUBSCRIBE spawns an
``ExecutorBridge`` in the agent's runtime, a process with a pid of its own that registers
with the agent (``RegisterExecutor``; ``ReregisterExecutor`` when the agent recovers the
executor after a restart or the executor subscribes again on a new connection) and turns what
the agent sends an executor into v1 events on the subscription's stream. The executor's UPDATE
and MESSAGE calls go out from the bridge's pid as ``StatusUpdate`` / ``ExecutorToFramework``.

This module holds the sans-IO half (``parse_call``: request -> ``Call`` or ``CallError`` with
Mesos's status and a plain-text reason; ``event``: the JSON of an event) and the bridge. The
agent decides who may subscribe and keeps one bridge per executor (agent/agent.py).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from corral.ids import ContainerID, ExecutorID, FrameworkID
from corral.protocol import (
    ExecutorInfo,
    FrameworkInfo,
    ProtocolError,
    TaskInfo,
    TaskStatus,
    json_compatible,
)
from corral.protocol.endpoint import ProtocolProcess, receives
from corral.protocol.messages import (
    ExecutorRegistered,
    ExecutorReregistered,
    ExecutorToFramework,
    FrameworkToExecutor,
    KillTask,
    ReconnectExecutor,
    RegisterExecutor,
    ReregisterExecutor,
    RunTask,
    RunTaskGroup,
    ShutdownExecutor,
    StatusUpdate,
    StatusUpdateAcknowledgement,
)
from corral.task_states import Source, TaskState
from corral.v1 import recordio
from corral.v1.http import JSON, CallError, check_accept, check_request, json_body
from libprocess import UPID, Stream, Timer

log = structlog.get_logger("agent.executor_api")

HEARTBEAT_INTERVAL = 30.0  # runtime-clock seconds between HEARTBEAT events on a stream
CALL_TYPES = ("SUBSCRIBE", "UPDATE", "MESSAGE")
API = "/api/v1/executor"  # how refusals name the endpoint
CALL = 'call such as {"type": "SUBSCRIBE", ...}'  # what to POST there, in refusals


# agent/agent.py's name for the refusals of this API (they are corral/v1/http.py's).


@dataclass(frozen=True)
class Call:
    """A validated executor call. ``tasks``/``updates`` come with SUBSCRIBE, ``status`` with
    UPDATE, ``data`` with MESSAGE."""

    type: str
    framework_id: FrameworkID
    executor_id: ExecutorID
    tasks: tuple[TaskInfo, ...] = ()
    updates: tuple[TaskStatus, ...] = ()
    status: TaskStatus | None = None
    data: bytes = b""


def parse_call(method: str, headers: Mapping[str, str], body: bytes) -> Call:
    """Validate an HTTP request to ``/api/v1/executor`` as Mesos does; ``CallError`` if bad."""
    check_request(method, headers, API, CALL)
    data = json_body(body, CALL)
    if not isinstance(data, dict):
        raise CallError(400, f"a call is a JSON object, got {type(data).__name__}")
    kind = data.get("type")
    if kind is None:
        raise CallError(400, "Expecting 'type' to be present (SUBSCRIBE, UPDATE or MESSAGE)")
    if kind == "UNKNOWN":
        raise CallError(501, "Received 'UNKNOWN' call; send SUBSCRIBE, UPDATE or MESSAGE")
    if kind not in CALL_TYPES:
        raise CallError(
            400, f"unknown call type {kind!r}; the executor API takes {', '.join(CALL_TYPES)}"
        )
    framework_id = _id(data, "framework_id", FrameworkID)
    executor_id = _id(data, "executor_id", ExecutorID)
    if kind == "SUBSCRIBE":
        return _subscribe(data, framework_id, executor_id, headers)
    if kind == "UPDATE":
        return _update(data, framework_id, executor_id)
    message = data.get("message")
    if not isinstance(message, dict) or "data" not in message:
        raise CallError(400, "Expecting 'message' with 'data' (base64) to be present for MESSAGE")
    try:
        blob = base64.b64decode(message["data"], validate=True)
    except (TypeError, ValueError) as error:
        raise CallError(400, f"'message.data' is base64 text: {error}") from None
    return Call(kind, framework_id, executor_id, data=blob)


def _id(data: dict[str, Any], key: str, kind: type) -> Any:
    value = data.get(key)
    if not isinstance(value, dict) or not isinstance(value.get("value"), str):
        raise CallError(400, f'Expecting \'{key}\' to be present, as {{"value": "..."}}')
    try:
        return kind(value["value"])
    except ValueError as error:
        raise CallError(400, f"'{key}' is not a valid id: {error}") from None


def _subscribe(
    data: dict[str, Any],
    framework_id: FrameworkID,
    executor_id: ExecutorID,
    headers: Mapping[str, str],
) -> Call:
    subscribe = data.get("subscribe")
    if not isinstance(subscribe, dict):
        raise CallError(400, "Expecting 'subscribe' to be present for SUBSCRIBE")
    check_accept(headers, (JSON,), API, "SUBSCRIBE")
    try:
        tasks = tuple(
            TaskInfo.from_wire(task) for task in subscribe.get("unacknowledged_tasks") or ()
        )
        updates = tuple(
            _status(update.get("status") if isinstance(update, dict) else None, executor_id)
            for update in subscribe.get("unacknowledged_updates") or ()
        )
    except ProtocolError as error:
        raise CallError(400, f"Failed to read 'subscribe': {error}") from None
    return Call("SUBSCRIBE", framework_id, executor_id, tasks=tasks, updates=updates)


def _update(data: dict[str, Any], framework_id: FrameworkID, executor_id: ExecutorID) -> Call:
    update = data.get("update")
    if not isinstance(update, dict) or "status" not in update:
        raise CallError(400, "Expecting 'update' with a 'status' to be present for UPDATE")
    status = _status(update["status"], executor_id)
    return Call("UPDATE", framework_id, executor_id, status=status)


def _status(data: Any, executor_id: ExecutorID) -> TaskStatus:
    """A status from an executor, checked as Mesos checks it, with its source filled in."""
    try:
        status = TaskStatus.from_wire(data)
    except ProtocolError as error:
        raise CallError(400, f"Failed to read 'update.status': {error}") from None
    if status.uuid is None:
        raise CallError(400, "Expecting 'uuid' to be present in 'update.status'")
    if len(status.uuid) != 16:
        raise CallError(
            400, f"'update.status.uuid' is 16 bytes (base64), got {len(status.uuid)} bytes"
        )
    if status.state is TaskState.TASK_STAGING:
        raise CallError(400, "Received TASK_STAGING from the executor, which is not allowed")
    if status.executor_id is not None and status.executor_id != executor_id:
        raise CallError(
            400,
            f"ExecutorID in the call ({executor_id}) does not match the one in TaskStatus "
            f"({status.executor_id})",
        )
    if status.source not in (None, Source.SOURCE_EXECUTOR):
        raise CallError(
            400, f"an executor's update has source SOURCE_EXECUTOR, got {status.source.value}"
        )
    return dataclasses.replace(
        status,
        source=Source.SOURCE_EXECUTOR,
        executor_id=executor_id,
        timestamp=status.timestamp or time.time(),
    )


def event(kind: str, **payload: Any) -> bytes:
    """One v1 event, RecordIO-framed: ``{"type": KIND, "<kind>": payload}``."""
    body: dict[str, Any] = {"type": kind}
    if payload:
        body[kind.lower()] = json_compatible(payload)
    return recordio.encode(json.dumps(body).encode())


def subscription_stream(on_close: Callable[[], None]) -> Stream:
    """The SUBSCRIBE response: 200, chunked, RecordIO records of JSON events."""
    return Stream(200, content_type=JSON, on_close=on_close)


def refused_subscription(reason: str) -> Stream:
    """What Mesos answers a subscription it will not serve (an unknown or ending executor):
    a stream with one SHUTDOWN event, then closed."""
    log.warning("executor_subscription_refused", reason=reason)
    stream = Stream(200, content_type=JSON)
    stream.write(event("SHUTDOWN"))
    stream.close()
    return stream


class ExecutorBridge(ProtocolProcess):
    """One HTTP executor's subscription, seen by the agent as that executor's driver.

    It registers when it starts (``reregister``: with ReregisterExecutor and what the executor
    says it has not had acknowledged), writes an event for each message from the agent, and
    sends the executor's calls from its own pid. The agent owns it: it terminates it when the
    stream ends or a new subscription replaces it; ending it alone ends no task.
    """

    def __init__(
        self,
        agent: UPID,
        stream: Stream,
        framework_info: FrameworkInfo,
        executor_info: ExecutorInfo,
        container_id: ContainerID,
        call: Call,
        reregister: bool,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
    ) -> None:
        super().__init__()
        self.agent = agent
        self.stream = stream
        self.framework_info = framework_info
        self.executor_info = executor_info
        self.container_id = container_id
        self.framework_id = call.framework_id
        self.executor_id = call.executor_id
        self._call = call
        self._reregister = reregister
        self._heartbeat_interval = heartbeat_interval
        self._heartbeat_timer: Timer | None = None
        self.agent_id: Any = None  # set by ExecutorRegistered / ExecutorReregistered

    def initialize(self) -> None:
        call = self._call
        if self._reregister:
            message: RegisterExecutor | ReregisterExecutor = ReregisterExecutor(
                self.framework_id, self.executor_id, call.tasks, call.updates
            )
        else:
            message = RegisterExecutor(self.framework_id, self.executor_id)
        log.info(
            "executor_subscribing",
            bridge=self.pid,
            executor_id=self.executor_id,
            framework_id=self.framework_id,
            reregister=self._reregister,
        )
        self.send_message(self.agent, message)
        self._heartbeat_timer = self.delay(self._heartbeat_interval, self._heartbeat)

    def finalize(self) -> None:
        if self._heartbeat_timer is not None:
            self._heartbeat_timer.cancel()
        self.stream.close()

    def _heartbeat(self) -> None:
        self._write(event("HEARTBEAT"))
        self._heartbeat_timer = self.delay(self._heartbeat_interval, self._heartbeat)

    def _write(self, data: bytes) -> None:
        if not self.stream.write(data):
            log.debug("executor_stream_gone", bridge=self.pid, executor_id=self.executor_id)

    def _from_agent(self, sender: UPID | None, what: str) -> bool:
        if sender != self.agent:
            log.warning("bridge_message_from_stranger", sender=sender, message=what)
            return False
        return True

    def _subscribed(self, agent_info: Any) -> None:
        framework_info = self.framework_info
        if framework_info.id is None:
            framework_info = dataclasses.replace(framework_info, id=self.framework_id)
        self._write(
            event(
                "SUBSCRIBED",
                executor_info=self.executor_info.to_wire(),
                framework_info=framework_info.to_wire(),
                agent_info=agent_info.to_wire(),
                container_id={"value": str(self.container_id)},
            )
        )

    # -- from the agent -----------------------------------------------------------------------

    @receives(ExecutorRegistered)
    def registered(self, sender: UPID | None, message: ExecutorRegistered) -> None:
        if self._from_agent(sender, message.NAME):
            self.agent_id = message.agent_id
            self.executor_info = message.executor_info
            self.framework_info = message.framework_info
            self._subscribed(message.agent_info)

    @receives(ExecutorReregistered)
    def reregistered(self, sender: UPID | None, message: ExecutorReregistered) -> None:
        if self._from_agent(sender, message.NAME):
            self.agent_id = message.agent_id
            self._subscribed(message.agent_info)

    @receives(RunTask)
    def run_task(self, sender: UPID | None, message: RunTask) -> None:
        if self._from_agent(sender, message.NAME):
            self._write(event("LAUNCH", task=message.task.to_wire()))

    @receives(RunTaskGroup)
    def run_task_group(self, sender: UPID | None, message: RunTaskGroup) -> None:
        if self._from_agent(sender, message.NAME):
            self._write(event("LAUNCH_GROUP", task_group=message.task_group.to_wire()))

    @receives(KillTask)
    def kill_task(self, sender: UPID | None, message: KillTask) -> None:
        if not self._from_agent(sender, message.NAME):
            return
        kill: dict[str, Any] = {"task_id": {"value": str(message.task_id)}}
        if message.kill_policy is not None:
            kill["kill_policy"] = message.kill_policy.to_wire()
        self._write(event("KILL", **kill))

    @receives(FrameworkToExecutor)
    def framework_to_executor(self, sender: UPID | None, message: FrameworkToExecutor) -> None:
        if self._from_agent(sender, message.NAME):
            self._write(event("MESSAGE", data=message.data))

    @receives(ShutdownExecutor)
    def shutdown(self, sender: UPID | None, message: ShutdownExecutor) -> None:
        if self._from_agent(sender, message.NAME):
            log.info("executor_shutdown_sent", bridge=self.pid, executor_id=self.executor_id)
            self._write(event("SHUTDOWN"))

    @receives(StatusUpdateAcknowledgement)
    def acknowledged(self, sender: UPID | None, message: StatusUpdateAcknowledgement) -> None:
        if self._from_agent(sender, message.NAME):
            self._write(
                event(
                    "ACKNOWLEDGED",
                    task_id={"value": str(message.task_id)},
                    uuid=message.uuid,
                )
            )

    @receives(ReconnectExecutor)
    def reconnect(self, sender: UPID | None, message: ReconnectExecutor) -> None:
        """HTTP executors reconnect by subscribing again, not through their old bridge."""
        log.info("bridge_reconnect_ignored", bridge=self.pid, sender=sender)

    # -- from the executor (dispatched by the agent's route) ---------------------------------

    def update(self, status: TaskStatus) -> None:
        if self.agent_id is not None:
            status = dataclasses.replace(status, agent_id=self.agent_id)
        self.send_message(self.agent, StatusUpdate(self.framework_id, status, str(self.pid)))

    def message(self, data: bytes) -> None:
        if self.agent_id is None:
            log.warning("framework_message_dropped", reason="the executor is not subscribed yet")
            return
        self.send_message(
            self.agent,
            ExecutorToFramework(self.agent_id, self.framework_id, self.executor_id, data),
        )

    def error(self, message: str) -> None:
        """An ERROR event: something the executor did that the agent cannot honour."""
        self._write(event("ERROR", message=message))
