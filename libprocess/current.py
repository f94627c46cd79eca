"""Which runtime this thread belongs to.

A runtime's loop thread knows its runtime; other threads (an application embedding
a runtime, a test) fall back to the only runtime started in this OS process.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from libprocess.runtime import Runtime

_local = threading.local()
_started: list[Runtime] = []
_started_lock = threading.Lock()


def enter_loop(runtime: Runtime) -> None:
    """Mark the calling thread as ``runtime``'s loop thread."""
    _local.runtime = runtime


def leave_loop() -> None:
    _local.runtime = None


def on_runtime_loop() -> bool:
    return getattr(_local, "runtime", None) is not None


def runtime() -> Runtime | None:
    """The runtime whose loop runs on this thread, if any."""
    return getattr(_local, "runtime", None)


def register(runtime: Runtime) -> None:
    with _started_lock:
        _started.append(runtime)


def unregister(runtime: Runtime) -> None:
    with _started_lock:
        if runtime in _started:
            _started.remove(runtime)


def runtime_for_timers() -> Runtime:
    """The runtime that should run a timer asked for on this thread."""
    here = runtime()
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
