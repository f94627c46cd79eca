"""The runtime clock: real time, or paused time that tests advance by hand.

Every timer in the runtime (``delay``, ``Future.after``) reads this clock, so a test
can ``pause()`` it, ``advance()`` it by an hour, and ``settle()`` — and a timeout
test finishes in milliseconds, deterministically. One clock per OS process, as in
libprocess; each runtime keeps its own ``Timers`` queue that listens to it.

Time is kept in integer nanoseconds, as libprocess's ``Duration`` is: ten advances of
0.1 s reach a 1 s deadline exactly, which float seconds would miss by a rounding error.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import structlog

if TYPE_CHECKING:
    import asyncio

log = structlog.get_logger("libprocess.clock")


def _nanoseconds(seconds: float, what: str) -> int:
    if not math.isfinite(seconds):
        raise ValueError(f"{what} takes a finite number of seconds, got {seconds!r}")
    return round(seconds * 1_000_000_000)


class Settles(Protocol):
    """A runtime, as its clock sees it: something ``Clock.settle`` waits for."""

    def settle(self, timeout: float = 10.0) -> None: ...


class Clock:
    """Monotonic seconds that can be paused and advanced; time never runs backwards."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paused_at: int | None = None  # ns; None while time runs
        self._offset = 0  # ns added to time.monotonic_ns() while time runs
        self._listeners: weakref.WeakSet[Timers] = weakref.WeakSet()
        self._runtimes: list[Settles] = []  # started on this clock, in start order

    def now(self) -> float:
        """Seconds on this clock (monotonic, arbitrary origin)."""
        return self.now_ns() / 1_000_000_000

    def now_ns(self) -> int:
        """Nanoseconds on this clock: the exact value timers compare against."""
        paused_at = self._paused_at
        return paused_at if paused_at is not None else time.monotonic_ns() + self._offset

    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    def pause(self) -> None:
        """Freeze time. Timers due only later stay pending until ``advance`` reaches them."""
        with self._lock:
            if self._paused_at is None:
                self._paused_at = time.monotonic_ns() + self._offset
        self._notify()

    def resume(self) -> None:
        """Let time run again, continuing from the paused (and advanced) value."""
        with self._lock:
            if self._paused_at is not None:
                self._offset = self._paused_at - time.monotonic_ns()
                self._paused_at = None
        self._notify()

    def advance(self, seconds: float) -> None:
        """Move paused time forward; timers that fall due fire on their runtimes' loops."""
        if not 0 <= seconds < math.inf:
            raise ValueError(
                f"the clock only moves forward by a finite step; got advance({seconds})"
            )
        step = _nanoseconds(seconds, "advance()")
        with self._lock:
            if self._paused_at is None:
                raise RuntimeError("advance() needs a paused clock: call clock.pause() first")
            self._paused_at += step
        self._notify()

    def settle(self, timeout: float = 10.0) -> None:
        """Block until every runtime started on this clock has no runnable process and no
        due timer (``Runtime.settle``, one after the other)."""
        with self._lock:
            runtimes = list(self._runtimes)
        for runtime in runtimes:
            runtime.settle(timeout)

    def attach(self, runtime: Settles) -> None:
        """A runtime has started on this clock: ``settle`` waits for it from now on."""
        with self._lock:
            self._runtimes.append(runtime)

    def detach(self, runtime: Settles) -> None:
        """A runtime has stopped: ``settle`` no longer waits for it."""
        with self._lock:
            if runtime in self._runtimes:
                self._runtimes.remove(runtime)

    def _listen(self, timers: Timers) -> None:
        self._listeners.add(timers)

    def _forget(self, timers: Timers) -> None:
        self._listeners.discard(timers)

    def _notify(self) -> None:
        for timers in list(self._listeners):
            timers.clock_changed()


clock = Clock()
"""The process-wide clock."""

# Guards every timer's fired/cancelled flip, so that cancel() and firing cannot both win.
_flip_lock = threading.Lock()


class Timer:
    """A scheduled callback; ``cancel()`` stops it if it has not fired."""

    __slots__ = ("_deadline_ns", "callback", "cancelled", "fired")

    def __init__(self, deadline_ns: int, callback: Callable[[], Any]) -> None:
        self._deadline_ns = deadline_ns
        self.callback = callback
        self.cancelled = False
        self.fired = False

    @property
    def deadline(self) -> float:
        """When it falls due, in seconds of its clock."""
        return self._deadline_ns / 1_000_000_000

    def cancel(self) -> bool:
        """Returns True if this stopped the timer, False if it had fired or was cancelled.

        Until its callback starts, a timer can still be stopped, even by the callback of
        another timer that fell due at the same moment.
        """
        with _flip_lock:
            if self.fired or self.cancelled:
                return False
            self.cancelled = True
            return True

    def _fire(self) -> None:
        with _flip_lock:
            if self.cancelled:
                return
            self.fired = True
        try:
            self.callback()
        except Exception:
            log.exception("timer_callback_failed", callback=repr(self.callback))

    def __repr__(self) -> str:
        state = "fired" if self.fired else "cancelled" if self.cancelled else "pending"
        return f"<Timer at {self.deadline:.3f} {state}>"


class Timers:
    """One runtime's timer queue, fired on its loop at the clock's time.

    Callbacks always run on the loop, in a later turn than the ``schedule`` call, in
    deadline order (ties in the order scheduled). Each turn fires only the timers due
    when it began, so a timer that keeps rescheduling itself at once cannot starve the
    loop's other work.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, clock: Clock = clock) -> None:
        self._loop = loop
        self._clock = clock
        self._heap: list[tuple[int, int, Timer]] = []  # (deadline ns, sequence, timer)
        self._seq = itertools.count()
        self._lock = threading.Lock()  # guards _heap, _wake_pending and _closed
        self._wake_pending = False  # a _fire is already queued on the loop
        self._closed = False
        self._handle: asyncio.TimerHandle | None = None  # loop thread only
        self._loop_thread: int | None = None
        clock._listen(self)

    def bind_thread(self) -> None:
        """Record the loop's thread, so calls from it skip the thread-safe hand-off."""
        self._loop_thread = threading.get_ident()

    def schedule(self, seconds: float, callback: Callable[[], Any]) -> Timer:
        """Run ``callback`` on the loop once ``seconds`` of clock time have passed.

        A negative delay counts as zero. Callable from any thread, while the runtime runs.
        """
        delay = max(0, _nanoseconds(seconds, "schedule()"))
        timer = Timer(self._clock.now_ns() + delay, callback)
        with self._lock:
            if self._closed:
                raise RuntimeError(
                    "cannot schedule a timer: its runtime has stopped, so it would never "
                    "fire; schedule on a running runtime"
                )
            heapq.heappush(self._heap, (timer._deadline_ns, next(self._seq), timer))
            earliest = self._heap[0][2] is timer
        if earliest:
            self._wake()
        return timer

    def pending(self) -> int:
        """How many timers wait to fire (not fired, not cancelled)."""
        with self._lock:
            return sum(1 for _, _, timer in self._heap if not timer.cancelled)

    def has_due(self) -> bool:
        now = self._clock.now_ns()
        with self._lock:
            self._drop_cancelled()
            return bool(self._heap) and self._heap[0][0] <= now

    def clock_changed(self) -> None:
        self._wake()

    def close(self) -> None:
        """Drop every pending timer; none fires after this. Call on the loop thread."""
        with self._lock:
            self._closed = True
            self._heap.clear()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._clock._forget(self)

    def _drop_cancelled(self) -> None:
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)

    def _wake(self) -> None:
        """Have the loop look at the queue in its next turn (from any thread)."""
        with self._lock:
            if self._wake_pending or self._closed:
                return
            self._wake_pending = True
        try:
            if threading.get_ident() == self._loop_thread:
                self._loop.call_soon(self._fire)
            else:
                self._loop.call_soon_threadsafe(self._fire)
        except RuntimeError:  # the loop is closed: its runtime has stopped, nothing fires
            with self._lock:
                self._wake_pending = False

    def _fire(self) -> None:
        """Run the timers due now, then arm the loop for the next deadline."""
        now = self._clock.now_ns()
        due: list[Timer] = []
        with self._lock:
            self._wake_pending = False
            heap = self._heap
            while heap and heap[0][0] <= now:
                due.append(heapq.heappop(heap)[2])
        for timer in due:
            timer._fire()
        self._arm()

    def _arm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        with self._lock:
            self._drop_cancelled()
            if self._closed or not self._heap:
                return
            deadline = self._heap[0][0]
        now = self._clock.now_ns()
        if deadline <= now:
            self._wake()  # due already (a callback scheduled it): next turn
        elif not self._clock.paused:  # paused time moves only by advance(): clock_changed()
            self._handle = self._loop.call_later((deadline - now) / 1e9, self._on_handle)

    def _on_handle(self) -> None:
        self._handle = None
        self._fire()
