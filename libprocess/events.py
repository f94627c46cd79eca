"""What a process's mailbox holds besides messages (plain ``(sender, name, body)`` tuples):
initialize, terminate, exited notices and dispatches.

Each event serves itself to its process and says whether the process must end now; the
runtime, which serves them, does the ending.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from libprocess.host import ProcessState, ProcessTerminated

if TYPE_CHECKING:
    from libprocess.future import Promise
    from libprocess.process import Process
    from libprocess.upid import UPID

log = structlog.get_logger("libprocess.runtime")


class _Initialize:
    __slots__ = ()

    def serve(self, process: Process) -> bool:
        process.mailbox.state = ProcessState.RUNNING
        try:
            process.initialize()
        except Exception:
            log.exception("initialize_failed", process=process.pid)
            return True
        return False


class _Terminate:
    __slots__ = ()

    def serve(self, process: Process) -> bool:
        return True


class Exited:
    __slots__ = ("pid",)

    def __init__(self, pid: UPID) -> None:
        self.pid = pid

    def serve(self, process: Process) -> bool:
        try:
            process.exited(self.pid)
        except Exception:
            log.exception("exited_hook_failed", process=process.pid, exited=self.pid)
        return False


class Dispatch:
    __slots__ = ("ahead", "args", "kwargs", "method", "promise")

    def __init__(self, method: Callable | str, args: tuple, kwargs: dict, promise: Promise):
        self.method = method
        self.args = args
        self.kwargs = kwargs
        self.promise = promise
        self.ahead = False  # queued before the events already waiting (Runtime.dispatch_ahead)

    def serve(self, process: Process) -> bool:
        promise = self.promise
        try:
            result = _bind(process, self.method)(*self.args, **self.kwargs)
        except BaseException as error:
            promise.fail(error)
            return False
        if inspect.iscoroutine(result):  # it would never run: nobody awaits it
            result.close()
            name = getattr(self.method, "__qualname__", self.method)
            promise.fail(
                TypeError(
                    f"dispatch of {name} returned a coroutine, which would block the process "
                    "if awaited; make it a plain function that returns a Future, or "
                    "continue with defer() or run_async()"
                )
            )
            return False
        promise.resolve(result)
        return False

    def abandon(self, process: Process) -> None:
        name = getattr(self.method, "__name__", self.method)
        self.promise.fail(
            ProcessTerminated(f"{process.pid} terminated before it handled a dispatch of {name}")
        )


INITIALIZE = _Initialize()
TERMINATE = _Terminate()


def _bind(process: Process, method: Callable | str) -> Callable:
    """Method names and the process class's own functions are bound to the process."""
    if isinstance(method, str):
        bound = getattr(process, method, None)
        if not callable(bound):
            raise AttributeError(f"{type(process).__name__} has no method {method!r} to dispatch")
        return bound
    if inspect.isfunction(method):
        name = method.__name__
        for cls in type(process).__mro__:
            if vars(cls).get(name) is method:  # Base.method on a Derived process
                return method.__get__(process)
    return method
