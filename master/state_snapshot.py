"""A cached, serialized view of the master's state, rebuilt only as often as it is cheap.

Polling ``/master/state`` at 20,000 agents must not stall the master: building the JSON
walks every agent, framework and task. The snapshot serves the same build to every request
until it is older than the last build's duration / BUILD_SHARE (wall clock) and than
``interval`` (runtime clock): however hard clients poll, building state takes at most
``BUILD_SHARE`` of the master's time. On a small cluster (a build of a millisecond) reads are
fresh within ~10 ms; at 20,000 agents and 100,000 tasks (a build of about half a second, as
builds are incremental: master/state_fragments.py) at most ~5 s old.
``interval`` (the master's ``state_cache_seconds``, 0 by default) is a floor on top. Views
derived from it (``/master/slaves``, ``/master/tasks``…) are cached with it and dropped at
each rebuild.

A big cluster's state is built in a forked child instead (``fork_when()`` says when;
master/state_fork.py), off the master's actor: the read is then answered by a future. Each
view is built by a child of its own, one child at a time, and kept until older than its
build's duration / FORK_SHARE (and than ``interval``). A read that finds its view stale
starts the child and is answered with the stale body meanwhile, so that polling answers
at once; a read with no body yet (the first, or the first after ``invalidate``) waits.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from libprocess.future import Future, Promise
from master.state_fork import StateBuildFailed, fork_build

log = structlog.get_logger("master.state_snapshot")


BUILD_SHARE = 0.1  # the most of the master's time that state builds may take
FORK_SHARE = 0.25  # the most of a core's time that forked builds may take


@dataclass(frozen=True)
class _Built:
    """A view built in a child: its body, and when and in how long it was built."""

    body: bytes
    at: float  # runtime clock, when the child was forked
    at_wall: float  # time.monotonic(), likewise
    seconds: float  # from fork to the last byte read


def _dumps(value: Any) -> list[bytes]:
    return [json.dumps(value, separators=(",", ":")).encode()]


class StateSnapshot:
    """Holds the last build of ``build()`` (a JSON-compatible dict) and its serializations."""

    def __init__(
        self,
        build: Callable[[], dict[str, Any]],
        now: Callable[[], float],
        interval: float,
        serialize: Callable[[Any], list[bytes]] | None = None,
        fork_when: Callable[[], bool] | None = None,
        loop: Callable[[], asyncio.AbstractEventLoop] | None = None,
    ) -> None:
        """``serialize``: a value's compact JSON bytes, as pieces to join (``json.dumps``'s,
        unless given one that knows pieces of the state already serialized:
        master/state_fragments.py). The pieces are kept, and joined at each read: a joined
        body would be one more copy of the whole state (~100 MB at 100,000 tasks) for as long
        as it is cached, where a join costs each read tens of milliseconds at that size.
        ``fork_when``: whether a build now is big enough to be made in a forked child, whose
        bytes are read on ``loop()``."""
        if interval < 0:
            raise ValueError(f"the state cache interval is 0 or more seconds, got {interval}")
        self._build = build
        self._serialize = serialize or _dumps
        self._now = now
        self.interval = interval
        self.builds = 0  # how many times the state was built (for tests and metrics)
        self.last_build_seconds = 0.0  # how long the last build took (wall clock)
        self._built_at = self._built_at_wall = float("-inf")
        self._state: dict[str, Any] = {}
        self._views: dict[str, list[bytes]] = {}
        if fork_when is not None and loop is None:
            raise ValueError("forked builds are read on a loop: give loop with fork_when")
        self._fork_when = fork_when
        self._loop = loop
        self._forked: dict[str, _Built] = {}
        self._pending: dict[str, Future[bytes]] = {}  # views a child builds or will build
        self._waiting: deque[tuple[str, Callable[[], bytes], Promise[bytes]]] = deque()
        self._child: Future[bytes] | None = None  # the child building now, if any
        self._generation = 0  # invalidate()s so far: a build begun before one is not kept

    def state(self) -> dict[str, Any]:
        """The state as last built, rebuilt first if it is older than the interval.

        Treat it as read-only: it is shared by every request until the next build.
        """
        now, wall = self._now(), time.monotonic()
        if (
            now - self._built_at >= self.interval
            and wall - self._built_at_wall >= self.last_build_seconds / BUILD_SHARE
        ):
            started = time.perf_counter()
            self._state = self._build()
            self._views = {}
            self._built_at, self._built_at_wall = now, wall
            self.builds += 1
            self.last_build_seconds = time.perf_counter() - started
            log.debug("state_built", build=self.builds, seconds=round(self.last_build_seconds, 4))
        return self._state

    def view(
        self, name: str, derive: Callable[[dict[str, Any]], Any] | None = None
    ) -> bytes | Future[bytes]:
        """The JSON bytes of ``derive(state)`` (the whole state when None), cached under
        ``name`` until the next build; a future of them while a forked build makes the
        first."""
        if self._fork_when is not None and self._fork_when():
            return self._forked_view(name, derive)
        state = self.state()
        cached = self._views.get(name)
        if cached is None:
            value = state if derive is None else derive(state)
            cached = self._views[name] = self._serialize(value)
        return b"".join(cached)  # one piece is returned as it is, not copied

    def invalidate(self) -> None:
        """Build anew at the next read (after a change an operator just made, say)."""
        self._built_at = self._built_at_wall = float("-inf")
        self._forked.clear()  # a stale body must not answer the next read either
        self._pending.clear()  # nor a build begun before now
        self._generation += 1

    # -- builds in a forked child ------------------------------------------------------------

    def _forked_view(
        self, name: str, derive: Callable[[dict[str, Any]], Any] | None
    ) -> bytes | Future[bytes]:
        built = self._forked.get(name)
        if built is not None and (
            self._now() - built.at < self.interval
            or time.monotonic() - built.at_wall < built.seconds / FORK_SHARE
        ):
            return built.body
        pending = self._pending.get(name)
        if pending is None:

            def work() -> bytes:  # in the child
                state = self._build()
                return b"".join(self._serialize(state if derive is None else derive(state)))

            promise: Promise[bytes] = Promise()
            pending = self._pending[name] = promise.future
            self._waiting.append((name, work, promise))
            self._fork_next()
        return pending if built is None else built.body

    def _fork_next(self) -> None:
        """Start the next waiting build, unless a child is building."""
        if self._child is not None or not self._waiting:
            return
        name, work, promise = self._waiting.popleft()
        assert self._loop is not None, "checked in __init__"
        at, at_wall = self._now(), time.monotonic()
        generation = self._generation
        try:
            child = fork_build(work, self._loop())
        except OSError as error:
            child = Future.failed(
                StateBuildFailed(f"the master could not fork a child to build its state: {error}")
            )
        self._child = child

        def done(result: Future[bytes]) -> None:
            self._child = None
            if self._pending.get(name) is promise.future:
                del self._pending[name]  # (after an invalidate it is no longer there)
            if result.is_ready() and generation == self._generation:
                seconds = time.monotonic() - at_wall
                self._forked[name] = _Built(result.value, at, at_wall, seconds)
                self.builds += 1
                self.last_build_seconds = seconds
            promise.associate(result)
            self._fork_next()

        child.on_any(done)
