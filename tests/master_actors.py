"""Test counterparts of the master: an agent and a scheduler driver that record what they get.

Both are real ``ProtocolProcess`` actors speaking real messages; the test thread reads what
they received from a queue and makes them send with ``say``.
"""

from __future__ import annotations

import queue
import time
from typing import Any, TypeVar

from corral.protocol import ProtocolError, decode_message
from corral.protocol.endpoint import ProtocolProcess, receives
from corral.protocol.messages import Message, PingAgent, PongAgent
from libprocess import UPID

M = TypeVar("M", bound=Message)


class Recorder(ProtocolProcess):
    """Records every message it receives, decoded, as ``(sender, message)``."""

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id)
        self.inbox: queue.Queue[tuple[UPID | None, Any]] = queue.Queue()

    def unhandled(self, sender: UPID | None, name: str, body: Any) -> None:
        try:
            message: Any = decode_message(name, body)
        except ProtocolError:
            message = (name, body)
        self.inbox.put((sender, message))

    def say(self, to: UPID | str, message: Message) -> None:
        """Send ``message`` from this actor (dispatch this from the test thread)."""
        self.send_message(to, message)

    def next(self, kind: type[M], timeout: float = 5.0) -> M:
        """The next message of type ``kind``, skipping others; the timeout is a safety net."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.pid} received no {kind.__name__} within {timeout} s")
            try:
                _, message = self.inbox.get(timeout=left)
            except queue.Empty:
                continue
            if isinstance(message, kind):
                return message

    def drain(self) -> list[Any]:
        """Everything received so far (call after ``runtime.settle()``)."""
        messages = []
        while True:
            try:
                messages.append(self.inbox.get_nowait()[1])
            except queue.Empty:
                return messages


class FakeAgent(Recorder):
    """An agent: answers pings (unless told to fall silent) and records the rest."""

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id)
        self.answer_pings = True
        self.pings = 0

    @receives(PingAgent)
    def ping(self, sender: UPID | None, message: PingAgent) -> None:
        self.pings += 1
        if self.answer_pings and sender is not None:
            self.send_message(sender, PongAgent())


class FakeScheduler(Recorder):
    """A scheduler driver: records registrations, offers, updates, errors."""
