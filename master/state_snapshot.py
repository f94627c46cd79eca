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
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import structlog

log = structlog.get_logger("master.state_snapshot")


BUILD_SHARE = 0.1  # the most of the master's time that state builds may take


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
    ) -> None:
        """``serialize``: a value's compact JSON bytes, as pieces to join (``json.dumps``'s,
        unless given one that knows pieces of the state already serialized:
        master/state_fragments.py). The pieces are kept, and joined at each read: a joined
        body would be one more copy of the whole state (~100 MB at 100,000 tasks) for as long
        as it is cached, where a join costs each read tens of milliseconds at that size."""
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

    def view(self, name: str, derive: Callable[[dict[str, Any]], Any] | None = None) -> bytes:
        """The JSON bytes of ``derive(state)`` (the whole state when None), cached under
        ``name`` until the next build."""
        state = self.state()
        cached = self._views.get(name)
        if cached is None:
            value = state if derive is None else derive(state)
            cached = self._views[name] = self._serialize(value)
        return b"".join(cached)  # one piece is returned as it is, not copied

    def invalidate(self) -> None:
        """Build anew at the next read (after a change an operator just made, say)."""
        self._built_at = self._built_at_wall = float("-inf")
