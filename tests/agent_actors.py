"""Counterparts for the agent's tests: a master that records what it receives."""

from __future__ import annotations

import queue
import time
from typing import Any

from aiohttp import web

from corral.ids import AgentID
from corral.protocol.endpoint import ProtocolProcess, receives
from corral.protocol.messages import (
    MESSAGES,
    AgentRegistered,
    AgentReregistered,
    Message,
    RegisterAgent,
    ReregisterAgent,
    ShutdownAgent,
    StatusUpdate,
    StatusUpdateAcknowledgement,
    decode_message,
)
from libprocess import UPID, route


class FakeMaster(ProtocolProcess):
    """Id ``master``. Records every message; answers RegisterAgent when ``answer``; acks every
    StatusUpdate when ``auto_ack``. Flip the flags with ``dispatch`` (or between events)."""

    def __init__(self, answer: bool = True, auto_ack: bool = True) -> None:
        super().__init__("master")
        self.answer = answer
        self.auto_ack = auto_ack
        self.agent_id = AgentID("test-S0")
        self.inbox: queue.Queue[tuple[UPID | None, Message]] = queue.Queue()

    def unhandled(self, sender: UPID | None, name: str, body: Any) -> None:
        if name in MESSAGES:
            self.inbox.put((sender, decode_message(name, body)))
        else:
            super().unhandled(sender, name, body)

    @receives(RegisterAgent)
    def register_agent(self, sender: UPID | None, message: RegisterAgent) -> None:
        self.inbox.put((sender, message))
        if self.answer and sender is not None:
            self.send_message(sender, AgentRegistered(self.agent_id))

    @receives(ReregisterAgent)
    def reregister_agent(self, sender: UPID | None, message: ReregisterAgent) -> None:
        self.inbox.put((sender, message))
        if self.answer and sender is not None:
            self.send_message(sender, AgentReregistered(self.agent_id))

    @receives(StatusUpdate)
    def status_update(self, sender: UPID | None, message: StatusUpdate) -> None:
        self.inbox.put((sender, message))
        if self.auto_ack:
            self.acknowledge(message)

    def acknowledge(self, update: StatusUpdate) -> None:
        """Ack ``update`` to the agent that sent it (dispatch this from a test)."""
        status = update.status
        assert status.uuid is not None
        ack = StatusUpdateAcknowledgement(
            self.agent_id, update.framework_id, status.task_id, status.uuid
        )
        self.send_message(update.pid, ack)

    def next(self, kind: type[Message], timeout: float = 10.0) -> tuple[UPID | None, Any]:
        """The next message of type ``kind``, skipping others; ``timeout`` is a wall-clock
        safety net only."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                sender, message = self.inbox.get(timeout=max(left, 0.001))
            except queue.Empty:
                raise AssertionError(
                    f"the master received no {kind.__name__} in {timeout} s"
                ) from None
            if isinstance(message, kind):
                return sender, message

    def drain(self, kind: type[Message] | None = None) -> list[Message]:
        """What has arrived and not been taken yet (of ``kind``, if given)."""
        messages = []
        while True:
            try:
                _, message = self.inbox.get_nowait()
            except queue.Empty:
                return messages
            if kind is None or isinstance(message, kind):
                messages.append(message)


class StateServingMaster(FakeMaster):
    """A FakeMaster that also serves ``/master/info`` with its pid, for discovery."""

    @route("/info")
    def state(self, request: web.Request) -> web.Response:
        return web.json_response({"pid": str(self.pid), "hostname": "localhost"})


class RefusingMaster(FakeMaster):
    """A FakeMaster that refuses every agent that registers for good (ShutdownAgent)."""

    def __init__(self, reason: str) -> None:
        super().__init__(answer=False)
        self.reason = reason

    @receives(RegisterAgent)
    def register_agent(self, sender: UPID | None, message: RegisterAgent) -> None:
        self.inbox.put((sender, message))
        if sender is not None:
            self.send_message(sender, ShutdownAgent(self.reason))
