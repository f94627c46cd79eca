"""Which runtime's timers a thread's timers go to.

A runtime's loop thread has its runtime's timer queue; other threads (an application
embedding a runtime, a test) fall back to the only runtime started in this OS process.
``Future.after`` asks here, as does ``Future.result`` (which must not block a loop thread).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from libprocess.clock import Timers

_local = threading.local()
_started: list[Timers] = []  # one timer queue per started runtime
_started_lock = threading.Lock()


def enter_loop(timers: Timers) -> None:
    """Mark the calling thread as the loop thread of the runtime that owns ``timers``."""
    _local.timers = timers


def leave_loop() -> None:
    _local.timers = None


def on_runtime_loop() -> bool:
    return getattr(_local, "timers", None) is not None


def register(timers: Timers) -> None:
    """A runtime has started, with these timers."""
    with _started_lock:
        _started.append(timers)


def unregister(timers: Timers) -> None:
    with _started_lock:
        if timers in _started:
            _started.remove(timers)


def timers() -> Timers:
    """The timer queue that should run a timer asked for on this thread."""
    here = getattr(_local, "timers", None)
    if here is not None:
        return here
    with _started_lock:
        if len(_started) == 1:
            return _started[0]
        count = len(_started)
    raise RuntimeError(
        f"no runtime runs on this thread and {count} are started in this process; "
        "ask for timers from inside an actor, or start exactly one runtime"
    )
