"""The v1 scheduler API's events (Mesos's ``scheduler.proto`` ``Event``), made from what the
master sends a scheduler driver.

Each event is ``{"type": T, "<t>": {...}}`` (the lower-case key of its type), in the proto3
JSON form Mesos uses; ``record`` frames one as a RecordIO record of the SUBSCRIBE stream.
Sans-IO: the bridge actor calls these and writes the bytes.
"""

from __future__ import annotations

import json
from typing import Any

from corral.ids import FrameworkID
from corral.protocol import MasterInfo, json_compatible
from corral.protocol.messages import (
    AgentLost,
    ExecutorLost,
    ExecutorToFramework,
    FrameworkError,
    Message,
    RescindOffer,
    ResourceOffers,
    StatusUpdate,
)
from corral.v1 import recordio

Event = dict[str, Any]


def record(event: Event) -> bytes:
    """One event as a RecordIO record of its JSON."""
    return recordio.encode(json.dumps(event, separators=(",", ":")).encode())


def subscribed(
    framework_id: FrameworkID, heartbeat_interval: float, master_info: MasterInfo
) -> Event:
    return {
        "type": "SUBSCRIBED",
        "subscribed": {
            "framework_id": {"value": str(framework_id)},
            "heartbeat_interval_seconds": heartbeat_interval,
            "master_info": json_compatible(master_info.to_wire()),
        },
    }


def heartbeat() -> Event:
    return {"type": "HEARTBEAT"}


def error(message: str) -> Event:
    return {"type": "ERROR", "error": {"message": message}}


def from_master(message: Message) -> Event | None:
    """The event for a message the master sends a driver (None if there is none: the
    registration answers are the bridge's own business)."""
    if isinstance(message, ResourceOffers):
        offers = [json_compatible(offer.to_wire()) for offer in message.offers]
        return {"type": "OFFERS", "offers": {"offers": offers}}
    if isinstance(message, RescindOffer):
        return {"type": "RESCIND", "rescind": {"offer_id": {"value": str(message.offer_id)}}}
    if isinstance(message, StatusUpdate):
        # The status keeps its uuid when it has one: the client then ACKNOWLEDGEs it (the
        # master's own updates have none and need no acknowledgement).
        return {"type": "UPDATE", "update": {"status": json_compatible(message.status.to_wire())}}
    if isinstance(message, ExecutorToFramework):
        body = json_compatible(message.to_wire())
        del body["framework_id"]  # v1's Event.Message has agent_id, executor_id, data
        return {"type": "MESSAGE", "message": body}
    if isinstance(message, AgentLost):
        return {"type": "FAILURE", "failure": {"agent_id": {"value": str(message.agent_id)}}}
    if isinstance(message, ExecutorLost):
        failure: dict[str, Any] = {
            "agent_id": {"value": str(message.agent_id)},
            "executor_id": {"value": str(message.executor_id)},
        }
        if message.status is not None:
            failure["status"] = message.status
        return {"type": "FAILURE", "failure": failure}
    if isinstance(message, FrameworkError):
        return error(message.message)
    return None
