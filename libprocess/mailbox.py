"""A process's mailbox: the events waiting for it, and the runtime's record of where the
process is in its life (its pid, its state, what it links to, the async work it owns).

The process makes its mailbox when it is constructed (``Process.mailbox``) and reads its
identity from it; the runtime fills it in at ``spawn`` and is the only one to change it
afterwards, on its loop thread.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from libprocess.host import ProcessState, ProcessTerminated

if TYPE_CHECKING:
    from libprocess.async_work import AsyncWork
    from libprocess.future import Promise
    from libprocess.host import Host
    from libprocess.upid import UPID

__all__ = ["Mailbox", "ProcessTerminated"]


class Mailbox:
    """One process's queue of events and its place in its runtime."""

    __slots__ = (
        "done",
        "events",
        "handlers",
        "host",
        "links_out",
        "pid",
        "requested_id",
        "scheduled",
        "state",
        "work",
    )

    def __init__(
        self, requested_id: str | None, handlers: dict[str, Callable[[Any, Any], Any]]
    ) -> None:
        self.requested_id = requested_id  # the id asked for at construction, if any
        self.handlers = handlers  # message name -> handler(sender, body), the process's own
        self.host: Host | None = None  # the runtime, from spawn on
        self.pid: UPID | None = None  # from spawn on
        self.state = ProcessState.CREATED
        # Events waiting to be served: (sender, name, body) tuples for messages, event objects
        # (libprocess.events) for everything else. Only the runtime's loop thread touches it.
        self.events: deque[Any] = deque()
        # True exactly while the process is in the runtime's run queue or being served.
        self.scheduled = False
        self.done: Promise[None] | None = None  # from spawn on; ready once terminated
        self.links_out: set[UPID] = set()  # pids this process linked to
        self.work: set[AsyncWork[Any]] = set()  # its run_async work not finished yet

    def __len__(self) -> int:
        """How many events wait to be served."""
        return len(self.events)
