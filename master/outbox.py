"""What the master's cores decided, in order, for the master actor to carry out.

The cores (accept, admission, liveness, framework lifecycle, tasks) take events and write
their decisions here instead of doing I/O: protocol messages to send, allocator events,
links to watch, timers to arm or cancel, work to run after the messages already queued. The
actor drains the outbox after every event (``MasterProcess`` applies each action); a test of
a core reads the same list. Actions are tuples headed by one of the constants below: cheap to
make on the launch path, and plain to assert on.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Any

from corral.protocol.messages import Message
from master.allocator.events import AllocatorEvent

SEND = "send"  # (SEND, pid, message)
ALLOCATE = "allocate"  # (ALLOCATE, event)
LINK = "link"  # (LINK, pid)
UNLINK = "unlink"  # (UNLINK, pid)
SCHEDULE = "schedule"  # (SCHEDULE, key, seconds, callback, args): callback(now, *args) later
CANCEL = "cancel"  # (CANCEL, key)
LATER = "later"  # (LATER, callback): callback(now) after the events already queued


class Outbox:
    """An ordered list of actions; ``take`` hands them over and empties it."""

    __slots__ = ("actions",)

    def __init__(self) -> None:
        self.actions: list[tuple[Any, ...]] = []

    def send(self, to: str, message: Message) -> None:
        self.actions.append((SEND, to, message))

    def allocate(self, event: AllocatorEvent) -> None:
        self.actions.append((ALLOCATE, event))

    def link(self, pid: str) -> None:
        self.actions.append((LINK, pid))

    def unlink(self, pid: str) -> None:
        self.actions.append((UNLINK, pid))

    def schedule(
        self, key: Hashable | None, seconds: float, callback: Callable[..., None], *args: Any
    ) -> None:
        """Run ``callback(now, *args)`` after ``seconds`` of runtime-clock time. A timer with a
        ``key`` replaces the one armed under that key and can be cancelled; ``None``: one
        that cannot (its callback must check that it is still wanted)."""
        self.actions.append((SCHEDULE, key, seconds, callback, args))

    def cancel(self, key: Hashable) -> None:
        self.actions.append((CANCEL, key))

    def later(self, callback: Callable[[float], None]) -> None:
        """Run ``callback(now)`` once the events already waiting have been handled (a batch
        of agent admissions is written in one registry write so)."""
        self.actions.append((LATER, callback))

    def take(self) -> list[tuple[Any, ...]]:
        actions, self.actions = self.actions, []
        return actions

    # -- for tests ----------------------------------------------------------------------------

    def messages(self) -> Iterator[tuple[str, Message]]:
        """``(pid, message)`` of every SEND, in order."""
        return ((action[1], action[2]) for action in self.actions if action[0] == SEND)

    def events(self) -> Iterator[AllocatorEvent]:
        """Every allocator event, in order."""
        return (action[1] for action in self.actions if action[0] == ALLOCATE)
