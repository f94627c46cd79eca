"""Async work owned by a process: an awaitable run on its runtime's loop, whose outcome comes
back into the process as one of its events (``Process.run_async``).

Handlers must not block, so what has to be awaited (a subprocess, a file, a socket, an
executor's thread) runs as an asyncio task on the loop. The task belongs to the process: its
outcome is delivered inside the process, its failure is never lost, and it is cancelled when
the process terminates first.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import structlog

from libprocess.future import Future, FutureError, Promise
from libprocess.host import ProcessState, ProcessTerminated

if TYPE_CHECKING:
    from libprocess.host import Hosted

T = TypeVar("T")

log = structlog.get_logger("libprocess.runtime")


class AsyncWork(Generic[T]):
    """One awaitable run for one process, and the promise of its outcome.

    The promise is completed inside the process (as a dispatch to it), so callbacks on its
    future run as the process's own events. The work is the future's owner (see
    ``libprocess.future.Owner``): a callback that raises is reported as a failed handler
    of the process, and a failure that nobody listens for is logged.
    """

    __slots__ = ("_awaitable", "_ended_by", "_owned", "_process", "_promise", "_task", "what")

    def __init__(self, process: Hosted, owned: set[AsyncWork[Any]], awaitable: Awaitable[T]):
        if not inspect.isawaitable(awaitable):
            called = inspect.iscoroutinefunction(awaitable)
            hint = "; call the coroutine function to get one" if called else ""
            raise TypeError(
                f"run_async() takes an awaitable (a coroutine, or an asyncio or libprocess "
                f"future), got {type(awaitable).__name__} {awaitable!r}{hint}"
            )
        self._process = process
        self._owned = owned  # the process's set of unfinished work, which this joins
        self._awaitable: Awaitable[T] | None = awaitable  # until it starts
        self.what = getattr(awaitable, "__qualname__", None) or type(awaitable).__name__
        self._promise: Promise[T] = Promise(owner=self)
        self._task: asyncio.Task[T] | None = None
        # The ProcessTerminated the future failed with when the process ended first.
        self._ended_by: ProcessTerminated | None = None

    @property
    def future(self) -> Future[T]:
        return self._promise.future

    def __repr__(self) -> str:
        return f"<AsyncWork {self.what} of {self._process.pid}>"

    # -- on the loop thread -------------------------------------------------------------

    def start(self) -> None:
        """Create the task (on the loop thread), unless the process has already ended."""
        process = self._process
        awaitable, self._awaitable = self._awaitable, None
        if process.state == ProcessState.TERMINATED:
            if inspect.iscoroutine(awaitable):
                awaitable.close()  # it will never run: no "never awaited" warning for it
            self._end(
                ProcessTerminated(
                    f"{process.pid} terminated before its async work {self.what} could start"
                )
            )
            return
        self._task = process.runtime.loop.create_task(
            _await(awaitable), name=f"{process.pid}: {self.what}"
        )
        self._owned.add(self)
        self._task.add_done_callback(self._task_done)
        self.future.on_discard(self._discard_requested)

    def _task_done(self, task: asyncio.Task[T]) -> None:
        if self._ended_by is None:
            self._process.runtime.dispatch(self._process, self._complete, task)

    def _discard_requested(self) -> None:
        # A discard may be asked for from any thread; the task is cancelled on the loop.
        self._process.runtime.call_on_loop(self._cancel)

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    # -- inside the process -------------------------------------------------------------

    def _complete(self, task: asyncio.Task[T]) -> None:
        """The task's outcome, delivered as an event of the process."""
        self._owned.discard(self)
        promise = self._promise
        if task.cancelled():
            if self.future.has_discard():
                promise.discard()
            else:
                promise.fail(
                    FutureError(
                        f"async work {self.what} of {self._process.pid} was cancelled by "
                        "someone other than its process (it neither terminated nor "
                        "discarded the work's future)"
                    )
                )
            return
        error = task.exception()
        if error is not None:
            promise.fail(error)
        else:
            promise.set(task.result())

    def abandon(self) -> None:
        """The process terminates first: cancel the task and fail the future (its last event)."""
        self._owned.discard(self)
        self._cancel()
        self._end(
            ProcessTerminated(
                f"{self._process.pid} terminated before its async work {self.what} finished; "
                "the work was cancelled"
            )
        )

    def _end(self, error: ProcessTerminated) -> None:
        self._ended_by = error
        self._promise.fail(error)

    # -- the future's owner -------------------------------------------------------------

    def callback_failed(self, callback: Callable[..., Any], error: Exception) -> None:
        self._process.runtime.handler_failed(
            self._process,
            error,
            callback=getattr(callback, "__qualname__", repr(callback)),
            work=self.what,
        )

    def failed_unobserved(self, future: Future[Any], error: BaseException) -> None:
        if error is self._ended_by:  # not a failure of the work: its process ended first
            log.info("async_work_cancelled", process=self._process.pid, work=self.what)
            return
        log.error(
            "async_work_failed",
            process=self._process.pid,
            work=self.what,
            error=f"{type(error).__name__}: {error}",
            exc_info=error,
        )


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable
