"""The runtime clock: real time, or paused time that tests advance by hand.

Every timer in the runtime (``delay``, ``Future.after``) reads this clock, so a test
can ``pause()`` it, ``advance()`` it by an hour, and ``settle()`` — and a timeout
test finishes in milliseconds, deterministically. One clock per OS process, as in
libprocess; each runtime keeps its own ``Timers`` queue that listens to it.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    import asyncio

log = structlog.get_logger("libprocess.clock")


class Clock:
    """Monotonic seconds that can be paused and advanced; time never runs backwards."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paused_at: float | None = None
        self._offset = 0.0
        self._listeners: weakref.WeakSet[Timers] = weakref.WeakSet()

    def now(self) -> float:
        paused_at = self._paused_at
        return paused_at if paused_at is not None else time.monotonic() + self._offset

    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    def pause(self) -> None:
        """Freeze time. Timers due only later stay pending until ``advance`` reaches them."""
        with self._lock:
            if self._paused_at is None:
                self._paused_at = time.monotonic() + self._offset
        self._notify()

    def resume(self) -> None:
        """Let time run again, continuing from the paused (and advanced) value."""
        with self._lock:
            if self._paused_at is not None:
                self._offset = self._paused_at - time.monotonic()
                self._paused_at = None
        self._notify()

    def advance(self, seconds: float) -> None:
        """Move paused time forward; timers that fall due fire on their runtimes' loops."""
        if seconds < 0:
            raise ValueError(f"the clock only moves forward; got advance({seconds})")
        with self._lock:
            if self._paused_at is None:
                raise RuntimeError("advance() needs a paused clock: call clock.pause() first")
            self._paused_at += seconds
        self._notify()

    def settle(self, timeout: float = 10.0) -> None:
        """Block until every started runtime has no runnable process and no due timer."""
        from libprocess import current

        with current._started_lock:
            runtimes = list(current._started)
        for runtime in runtimes:
            runtime.settle(timeout)

    def _listen(self, timers: Timers) -> None:
        self._listeners.add(timers)

    def _notify(self) -> None:
        for timers in list(self._listeners):
            timers.clock_changed()


clock = Clock()
"""The process-wide clock."""


class Timer:
    """A scheduled callback; ``cancel()`` stops it if it has not fired."""

    __slots__ = ("callback", "cancelled", "deadline", "fired")

    def __init__(self, deadline: float, callback: Callable[[], Any]) -> None:
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False
        self.fired = False

    def cancel(self) -> bool:
        """Returns True if this stopped the timer, False if it had already fired."""
        if self.fired or self.cancelled:
            return False
        self.cancelled = True
        return True

    def __repr__(self) -> str:
        state = "fired" if self.fired else "cancelled" if self.cancelled else "pending"
        return f"<Timer at {self.deadline:.3f} {state}>"


class Timers:
    """One runtime's timer queue, fired on its loop at the clock's time."""

    def __init__(self, loop: asyncio.AbstractEventLoop, clock: Clock = clock) -> None:
        self._loop = loop
        self._clock = clock
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._handle: asyncio.TimerHandle | None = None
        self._armed_for: float | None = None
        self._loop_thread: int | None = None
        clock._listen(self)

    def bind_thread(self) -> None:
        """Record the loop's thread, so calls from it skip the thread-safe hand-off."""
        self._loop_thread = threading.get_ident()

    def schedule(self, seconds: float, callback: Callable[[], Any]) -> Timer:
        """Run ``callback`` on the loop once ``seconds`` of clock time have passed."""
        timer = Timer(self._clock.now() + max(0.0, seconds), callback)
        with self._lock:
            heapq.heappush(self._heap, (timer.deadline, next(self._seq), timer))
            earliest = self._heap[0][2] is timer
        if earliest:
            self._rearm_soon()
        return timer

    def has_due(self) -> bool:
        now = self._clock.now()
        with self._lock:
            while self._heap and self._heap[0][2].cancelled:
                heapq.heappop(self._heap)
            return bool(self._heap) and self._heap[0][0] <= now

    def clock_changed(self) -> None:
        self._rearm_soon()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        with self._lock:
            self._heap.clear()

    def _rearm_soon(self) -> None:
        if threading.get_ident() == self._loop_thread:
            self._fire()
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._fire)

    def _fire(self) -> None:
        """Run every due timer, then arm one loop timer for the next deadline."""
        while True:
            now = self._clock.now()
            with self._lock:
                due: list[Timer] = []
                while self._heap and self._heap[0][0] <= now:
                    timer = heapq.heappop(self._heap)[2]
                    if not timer.cancelled:
                        timer.fired = True
                        due.append(timer)
                while self._heap and self._heap[0][2].cancelled:
                    heapq.heappop(self._heap)
                next_deadline = self._heap[0][0] if self._heap else None
            for timer in due:
                try:
                    timer.callback()
                except Exception:
                    log.exception("timer_callback_failed", callback=repr(timer.callback))
            if not due:
                break
        self._arm(next_deadline)

    def _arm(self, deadline: float | None) -> None:
        if self._handle is not None and self._armed_for == deadline and not self._clock.paused:
            return
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
            self._armed_for = None
        if deadline is None or self._clock.paused:
            return  # paused time moves only by advance(), which calls clock_changed()
        delay = max(0.0, deadline - self._clock.now())
        self._handle = self._loop.call_later(delay, self._on_handle)
        self._armed_for = deadline

    def _on_handle(self) -> None:
        self._handle = None
        self._armed_for = None
        self._fire()
