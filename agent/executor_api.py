"""Mesos's v1 executor HTTP API (``POST /api/v1/executor``): the calls and the events.

An executor written against the HTTP API (JSON calls, a RecordIO stream of events) talks to
the agent exactly as a native ``corral.executor.ExecutorDriver`` does: its SUBSCRIBE spawns an
``ExecutorBridge`` (agent/executor_bridge.py) that registers for it, and turns what the agent
sends an executor into v1 events on the subscription's stream. The executor's UPDATE and
MESSAGE calls go out from the bridge's pid as ``StatusUpdate`` / ``ExecutorToFramework``.

This module is the sans-IO half: ``parse_call`` (request -> ``Call``, or ``CallError`` with
Mesos's status and a plain-text reason) and ``event`` (the RecordIO frame of an event). The
route is agent/endpoints.py's; who may subscribe is agent/admission.py's.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from corral.ids import ExecutorID, FrameworkID
from corral.protocol import (
    ProtocolError,
    TaskInfo,
    TaskStatus,
    json_compatible,
)
from corral.task_states import Source, TaskState
from corral.v1 import recordio
from corral.v1.http import JSON, CallError, check_accept, check_request, json_body

CALL_TYPES = ("SUBSCRIBE", "UPDATE", "MESSAGE")
API = "/api/v1/executor"  # how refusals name the endpoint
CALL = 'call such as {"type": "SUBSCRIBE", ...}'  # what to POST there, in refusals


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
