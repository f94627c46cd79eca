"""The seam between a process and the runtime that hosts it.

``Host`` is all that ``process.py`` and ``async_work.py`` ask of the runtime (and what a
``Mailbox`` records as a process's runtime); ``Hosted`` is what the runtime and a process's
async work see of a process. They live in a module of their own, which imports none of those
modules, so that the runtime can depend on them and they on this, and libprocess has no
import cycle. ``Runtime`` implements ``Host``; ``Process`` implements ``Hosted``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import asyncio

    from libprocess.clock import Timers
    from libprocess.future import Future
    from libprocess.upid import UPID


class ProcessState:
    CREATED = "created"
    RUNNING = "running"
    TERMINATED = "terminated"


class ProcessTerminated(Exception):
    """The target process ended before it could serve the request."""


class Hosted(Protocol):
    """A process, as its runtime and its async work see it."""

    @property
    def pid(self) -> UPID: ...

    @property
    def state(self) -> str: ...

    @property
    def runtime(self) -> Host: ...


class Host(Protocol):
    """The runtime, as the processes it hosts see it. Every method may be called from any
    thread unless it says otherwise; calls from outside the loop are handed to it."""

    # Absolute HTTP paths served by a process route: path -> (process id, route path).
    http_aliases: dict[str, tuple[str, str]]

    @property
    def timers(self) -> Timers:
        """The runtime's timer queue, on the runtime clock."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The asyncio loop that serves every process of the runtime."""

    def call_on_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop thread: now if already there, else soon."""

    def send(self, to: UPID | str, name: str, body: Any = None, sender: UPID | None = None) -> None:
        """Fire and forget ``name`` with ``body`` to ``to``."""

    def dispatch(
        self, target: Hosted | UPID | str, method: Callable | str, *args: Any, **kwargs: Any
    ) -> Future[Any]:
        """Run ``method(*args, **kwargs)`` inside a local process; a future of its result."""

    def terminate(self, target: Hosted | UPID | str, inject: bool = True) -> bool:
        """End a process: at once (``inject``) or after the events already queued."""

    def link(self, linker: Hosted, pid: UPID) -> None:
        """Deliver ``exited(pid)`` to ``linker`` once, when ``pid`` ends or is lost."""

    def unlink(self, linker: Hosted, pid: UPID) -> None:
        """Stop watching ``pid`` for ``linker``."""

    def unhandled_message(self, process: Hosted, sender: UPID | None, name: str) -> None:
        """Count and log a message that ``process`` has no handler for."""

    def handler_failed(self, process: Hosted, error: Exception, **context: Any) -> None:
        """Count and log a bug inside ``process`` (a handler or a callback that raised).

        Call it on the loop thread."""
