"""Futures and promises in libprocess's model.

A ``Future`` is pending, then exactly once ready (with a value), failed (with an
exception) or discarded. ``discard()`` on a future is only a *request*: whoever
holds the ``Promise`` decides whether to honour it. Callbacks run synchronously
on the thread that completes the future (or at once, on the caller's thread, if
it is already complete); actors that need a continuation to run inside them wrap
it with ``Process.defer``.

Futures are thread-safe: they may be completed on a runtime's loop and waited on
from another thread (``result()``) or from any asyncio loop (``await``).

A future may have an *owner* (``Promise(owner=...)``), told what its callers would otherwise
never hear: a callback that raised, and a failure that nobody was listening for. Futures
made from it by ``then``, ``recover`` and ``after`` have the same owner. A process's async
work (``Process.run_async``) owns its future this way.

Long chains (a ``then`` built in a loop, a thousand links deep) must not overflow
Python's stack: when callbacks complete other futures more than ``_MAX_DEPTH`` levels
deep, the deeper callbacks run right after the current callback returns instead of
inside it, still on the same thread and in the same order.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Generic, Protocol, TypeVar

import structlog

from libprocess import current

T = TypeVar("T")
U = TypeVar("U")

log = structlog.get_logger("libprocess.future")

# One lock for every future: it is held only to flip a state or append a callback,
# never while a callback runs, so contention is negligible and memory per future small.
_lock = threading.Lock()

# Callbacks nested deeper than this (a callback completing a future whose callback
# completes another ...) are run by the trampoline instead of recursively.
_MAX_DEPTH = 32


class _Trampoline(threading.local):
    def __init__(self) -> None:
        self.depth = 0  # nesting of _run_callbacks on this thread
        # Batches of (callback, future) deferred at _MAX_DEPTH; the top batch runs first,
        # which keeps the order recursion would have had.
        self.deferred: list[deque[tuple[Callable[[Any], Any], Any]]] = []


_trampoline = _Trampoline()


class State(enum.Enum):
    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"
    DISCARDED = "discarded"


class FutureError(Exception):
    """Base of the errors futures raise about themselves."""


class DiscardedError(FutureError):
    """The future was discarded: there will be no value."""


class FutureTimeout(FutureError, TimeoutError):
    """A wait or an ``after`` deadline ran out while the future was pending."""


class NotReady(FutureError):
    """``value`` was read from a future that is not ready."""


class Owner(Protocol):
    """Who hears what a future's callers would otherwise never hear.

    Both hooks run on the thread that completes the future (or runs the callback), and
    must not raise.
    """

    def callback_failed(self, callback: Callable[..., Any], error: Exception) -> None:
        """A callback registered on the future raised ``error`` (called inside the except)."""

    def failed_unobserved(self, future: Future[Any], error: BaseException) -> None:
        """``future`` failed with ``error`` while no callback (and no waiter) was registered."""


class Future(Generic[T]):
    """The read side of a one-shot result. Create one through a ``Promise``."""

    __slots__ = (
        "_callbacks",
        "_discard_callbacks",
        "_discard_requested",
        "_owner",
        "_state",
        "_value",
    )

    def __init__(self, owner: Owner | None = None) -> None:
        self._state = State.PENDING
        self._value: Any = None
        self._callbacks: list[Callable[[Future[T]], Any]] | None = None
        self._discard_callbacks: list[Callable[[], Any]] | None = None
        self._discard_requested = False
        self._owner = owner

    # -- construction -------------------------------------------------------------

    @staticmethod
    def ready(value: U = None) -> Future[U]:
        future: Future[U] = Future()
        future._state = State.READY
        future._value = value
        return future

    @staticmethod
    def failed(error: BaseException | str) -> Future[Any]:
        future: Future[Any] = Future()
        future._state = State.FAILED
        future._value = error if isinstance(error, BaseException) else FutureError(error)
        return future

    @staticmethod
    def discarded() -> Future[Any]:
        future: Future[Any] = Future()
        future._state = State.DISCARDED
        return future

    # -- inspection ---------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    def is_pending(self) -> bool:
        return self._state is State.PENDING

    def is_ready(self) -> bool:
        return self._state is State.READY

    def is_failed(self) -> bool:
        return self._state is State.FAILED

    def is_discarded(self) -> bool:
        return self._state is State.DISCARDED

    def has_discard(self) -> bool:
        """Whether someone asked for this future to be discarded."""
        return self._discard_requested

    @property
    def value(self) -> T:
        """The value if ready; raises the failure if failed; never waits."""
        if self._state is State.READY:
            return self._value
        if self._state is State.FAILED:
            raise self._value
        if self._state is State.DISCARDED:
            raise DiscardedError("the future was discarded, so it will never have a value")
        raise NotReady(
            "the future is pending, so it has no value yet; wait with result(), await, "
            "or continue with then()"
        )

    @property
    def failure(self) -> BaseException | None:
        return self._value if self._state is State.FAILED else None

    def __repr__(self) -> str:
        detail = f" {self._value!r}" if self._state in (State.READY, State.FAILED) else ""
        return f"<Future {self._state.value}{detail}>"

    # -- completion (used by Promise) ---------------------------------------------

    def _complete(self, state: State, value: Any) -> bool:
        with _lock:
            if self._state is not State.PENDING:
                return False
            self._state = state
            self._value = value
            callbacks, self._callbacks = self._callbacks, None
            self._discard_callbacks = None
        if callbacks:
            _run_callbacks([(callback, self) for callback in callbacks])
        elif state is State.FAILED and self._owner is not None:
            self._owner.failed_unobserved(self, value)
        return True

    # -- callbacks ----------------------------------------------------------------

    def on_any(self, callback: Callable[[Future[T]], Any]) -> Future[T]:
        """Call ``callback(self)`` once the future is complete, whatever the outcome."""
        with _lock:
            if self._state is State.PENDING:
                if self._callbacks is None:
                    self._callbacks = [callback]
                else:
                    self._callbacks.append(callback)
                return self
        _run_callbacks([(callback, self)])
        return self

    def on_ready(self, callback: Callable[[T], Any]) -> Future[T]:
        return self.on_any(
            _named(lambda f: callback(f._value) if f._state is State.READY else None, callback)
        )

    def on_failed(self, callback: Callable[[BaseException], Any]) -> Future[T]:
        return self.on_any(
            _named(lambda f: callback(f._value) if f._state is State.FAILED else None, callback)
        )

    def on_discarded(self, callback: Callable[[], Any]) -> Future[T]:
        return self.on_any(
            _named(lambda f: callback() if f._state is State.DISCARDED else None, callback)
        )

    def on_discard(self, callback: Callable[[], Any]) -> Future[T]:
        """Call ``callback()`` when a discard is *requested* (the promise holder's hook)."""
        with _lock:
            if self._state is State.PENDING and not self._discard_requested:
                if self._discard_callbacks is None:
                    self._discard_callbacks = [callback]
                else:
                    self._discard_callbacks.append(callback)
                return self
            run_now = self._discard_requested and self._state is State.PENDING
        if run_now:
            _run_callbacks([(lambda _: callback(), self)])
        return self

    def discard(self) -> bool:
        """Ask for the computation behind this future to stop. Returns False if already done."""
        with _lock:
            if self._state is not State.PENDING or self._discard_requested:
                return False
            self._discard_requested = True
            callbacks, self._discard_callbacks = self._discard_callbacks, None
        if callbacks:
            _run_callbacks([(lambda _, cb=callback: cb(), self) for callback in callbacks])
        return True

    # -- composition --------------------------------------------------------------

    def then(self, fn: Callable[[T], U | Future[U]]) -> Future[U]:
        """A future of ``fn(value)``; failure and discard pass through untouched.

        ``fn`` may return a plain value or a Future (which is then followed). A discard
        requested on the returned future is passed on to this one.
        """
        promise: Promise[U] = Promise(self._owner)

        def on_complete(source: Future[T]) -> None:
            if source._state is State.READY:
                try:
                    result = fn(source._value)
                except BaseException as error:
                    promise.fail(error)
                    return
                promise.resolve(result)
            else:
                promise._transfer(source)

        promise.future.on_discard(self.discard)
        self.on_any(on_complete)
        return promise.future

    def recover(self, fn: Callable[[Future[T]], T | Future[T]]) -> Future[T]:
        """A future that is this one if ready, else ``fn(self)`` (failed or discarded)."""
        promise: Promise[T] = Promise(self._owner)

        def on_complete(source: Future[T]) -> None:
            if source._state is State.READY:
                promise.set(source._value)
                return
            try:
                result = fn(source)
            except BaseException as error:
                promise.fail(error)
                return
            promise.resolve(result)

        promise.future.on_discard(self.discard)
        self.on_any(on_complete)
        return promise.future

    def after(
        self,
        seconds: float,
        fn: Callable[[Future[T]], T | Future[T]] | None = None,
    ) -> Future[T]:
        """This future, unless it is still pending after ``seconds`` of runtime clock time.

        Then the result is ``fn(self)``; without ``fn`` this future is discarded and the
        result fails with ``FutureTimeout``. The timer reads the runtime clock, so a paused
        clock holds it until ``advance``.
        """
        promise: Promise[T] = Promise(self._owner)
        if not self.is_pending():
            promise._transfer(self)
            return promise.future

        def on_timeout() -> None:
            if not self.is_pending() or not promise.future.is_pending():
                return
            if fn is None:
                # Fail first: a source that honours the discard at once completes as
                # discarded, and the result must still say it timed out.
                promise.fail(FutureTimeout(f"still pending after {seconds:g} s"))
                self.discard()
                return
            try:
                result = fn(self)
            except BaseException as error:
                promise.fail(error)
                return
            promise.resolve(result)

        timer = current.timers().schedule(seconds, on_timeout)

        def on_complete(source: Future[T]) -> None:
            timer.cancel()
            promise._transfer(source)

        promise.future.on_discard(self.discard)
        self.on_any(on_complete)
        return promise.future

    # -- waiting --------------------------------------------------------------------

    def result(self, timeout: float | None = None) -> T:
        """Block this thread until the future completes; return its value or raise.

        For threads outside the runtime (embedding). The timeout is wall-clock time,
        a guard against hanging forever, not part of any protocol.
        """
        if self._state is State.PENDING:
            if current.on_runtime_loop():
                raise RuntimeError(
                    "result() was called on a runtime's own loop thread, where it would "
                    "block the loop that must complete the future; use then() or await"
                )
            event = threading.Event()
            self.on_any(lambda _: event.set())
            if not event.wait(timeout):
                raise FutureTimeout(f"the future is still pending after waiting {timeout:g} s")
        return self._outcome()

    def _outcome(self) -> T:
        if self._state is State.READY:
            return self._value
        if self._state is State.FAILED:
            raise self._value
        raise DiscardedError("the future was discarded")

    def __await__(self):
        if self._state is State.PENDING:
            loop = asyncio.get_running_loop()
            waiter = loop.create_future()
            thread = threading.get_ident()

            def wake(_: Future[T]) -> None:
                if threading.get_ident() == thread:
                    if not waiter.done():
                        waiter.set_result(None)
                elif not waiter.done():  # done: the awaiting task was cancelled
                    # RuntimeError: that loop has closed, and nobody is left to wake.
                    with contextlib.suppress(RuntimeError):
                        loop.call_soon_threadsafe(_wake_threadsafe, waiter)

            self.on_any(wake)
            try:
                yield from waiter.__await__()
            except asyncio.CancelledError:
                self.discard()
                raise
        return self._outcome()


def _named(wrapper: Callable[..., Any], callback: Callable[..., Any]) -> Callable[..., Any]:
    """``wrapper`` under the name of the ``callback`` it calls, so that a report of a
    callback that raised names the caller's function, not the wrapper."""
    name = getattr(callback, "__qualname__", None)
    if isinstance(name, str):
        wrapper.__qualname__ = name
    return wrapper


def _wake_threadsafe(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _run_callbacks(calls: list[tuple[Callable[[Future[Any]], Any], Future[Any]]]) -> None:
    """Run ``callback(future)`` for each pair, now, or deferred when nested too deep."""
    trampoline = _trampoline
    if trampoline.depth >= _MAX_DEPTH:
        trampoline.deferred.append(deque(calls))
        return
    trampoline.depth += 1
    try:
        for callback, future in calls:
            _run_callback(callback, future)
            if trampoline.deferred and trampoline.depth == _MAX_DEPTH:
                _drain(trampoline)
    finally:
        trampoline.depth -= 1


def _drain(trampoline: _Trampoline) -> None:
    """Run deferred callbacks, newest batch first; they may defer more, which run next."""
    stack = trampoline.deferred
    while stack:
        batch = stack[-1]
        if not batch:
            stack.pop()
            continue
        callback, future = batch.popleft()
        _run_callback(callback, future)


def _run_callback(callback: Callable[[Future[Any]], Any], future: Future[Any]) -> None:
    try:
        callback(future)
    except Exception as error:
        # A callback's error has no caller to go to: its owner hears of it, else the log.
        if future._owner is not None:
            future._owner.callback_failed(callback, error)
        else:
            log.exception(
                "future_callback_failed", callback=getattr(callback, "__qualname__", None)
            )


class Promise(Generic[T]):
    """The write side: completes its ``future`` exactly once.

    With an ``owner``, the future's raising callbacks and unobserved failure go to it
    (see ``Owner``) instead of the log.
    """

    __slots__ = ("future",)

    def __init__(self, owner: Owner | None = None) -> None:
        self.future: Future[T] = Future(owner)

    def set(self, value: T = None) -> bool:
        return self.future._complete(State.READY, value)

    def fail(self, error: BaseException | str) -> bool:
        if not isinstance(error, BaseException):
            error = FutureError(error)
        return self.future._complete(State.FAILED, error)

    def discard(self) -> bool:
        return self.future._complete(State.DISCARDED, None)

    def resolve(self, result: T | Future[T]) -> None:
        """Complete with ``result``: a plain value, or a future to follow."""
        if isinstance(result, Future):
            self.associate(result)
        else:
            self.set(result)

    def associate(self, other: Future[T]) -> None:
        """Complete with whatever ``other`` completes with; pass discard requests on to it."""
        self.future.on_discard(other.discard)
        other.on_any(self._transfer)

    def _transfer(self, source: Future[T]) -> None:
        self.future._complete(source._state, source._value)


def collect(futures: Iterable[Future[Any]]) -> Future[list[Any]]:
    """A future of every value, in order; the first failure or discard ends it.

    Once it ends early, or when its result is discarded, the inputs still pending are
    asked to stop (``discard``): nobody will read their values.
    """
    futures = list(futures)
    promise: Promise[list[Any]] = Promise()
    if not futures:
        promise.set([])
        return promise.future
    remaining = [len(futures)]
    count_lock = threading.Lock()

    def on_complete(source: Future[Any]) -> None:
        if source._state is not State.READY:
            promise._transfer(source)
            for future in futures:
                future.discard()
            return
        with count_lock:
            remaining[0] -= 1
            done = remaining[0] == 0
        if done:
            promise.set([future._value for future in futures])

    def on_discard() -> None:
        for future in futures:
            future.discard()

    promise.future.on_discard(on_discard)
    for future in futures:
        future.on_any(on_complete)
    return promise.future
