"""The agent's status-update manager: per task, an ordered stream resent until acknowledged.

A sans-IO core in the line of Mesos's ``StatusUpdateManager``. Each (framework, task) has a
stream. An update the agent receives (from an executor, or made by the agent itself) joins the
back of its stream; only the stream's head is in flight: it is forwarded towards the
framework and resent with exponential backoff (10 s doubling up to 10 min, as Mesos) until the
framework acknowledges its uuid; then the next one goes. The acknowledgement of a terminal
update closes the stream. Nothing here sends, sleeps or reads a clock: every event carries
``now`` and every call returns the actions the agent actor must carry out.

Events and what they return (a list of actions; an empty list means "accepted, nothing to
send"):

- ``update(framework_id, task_id, update, now)``: ``Forward`` + ``Schedule`` when the update
  becomes the head and the manager is not paused; ``Ignored`` for a duplicate uuid (already
  pending or already acknowledged — Mesos ignores both); ``Refused`` for a new update after
  the stream's terminal update (whether or not that was acknowledged yet).
- ``acknowledge(framework_id, task_id, uuid, now)``: a correct ack of the head pops it and
  returns ``Forward`` + ``Schedule`` for the next one, or ``StreamClosed`` if the head was
  terminal; a repeated ack is ``Ignored``; an ack for an unknown stream or uuid, or one out of
  order, is ``Refused`` and changes nothing.
- ``tick(now)``: ``Forward`` for every head whose retry time has come, then ``Schedule``.
- ``pause()`` / ``resume(now)``: the master is gone / back; resume resends every head.
- ``cleanup(framework_id)``: the framework was removed; its streams are dropped.
- ``checkpoint_records()`` / ``stream_record(...)`` / ``recover(records)``: see below.

Bad input from outside (a stray ack, an update after a terminal one) is answered with
``Refused`` and changes nothing; misuse by the caller (mismatched ids, recovering into a
manager that is in use, a corrupt checkpoint) raises ``ValueError`` / ``RuntimeError``.

Checkpoint record format: one msgpack-able dict per stream::

    {"framework_id": str, "task_id": str,
     "pending": [{"uuid": bytes, "state": str, "terminal": bool, "payload": <encoded>}, ...],
     "acknowledged": [bytes, ...],   # acked uuids, in the order they were acked
     "closed": bool}                 # True once the terminal update was acknowledged

``payload`` goes through the ``encode`` / ``decode`` callables the caller passes (identity by
default), so the core stays generic over what an update carries. Retry timers are not
recorded: a recovered manager is paused, and ``resume(now)`` resends every head.

Decision where this differs from Mesos: Mesos accepts updates that arrive after a terminal
update and then drops them unsent when the terminal update is acknowledged. Here they are
refused at once, so a stream never holds anything behind its terminal update and nothing
accepted is ever dropped unacknowledged.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

RETRY_INTERVAL_MIN = 10.0  # seconds; Mesos's STATUS_UPDATE_RETRY_INTERVAL_MIN
RETRY_INTERVAL_MAX = 600.0  # seconds; Mesos's STATUS_UPDATE_RETRY_INTERVAL_MAX


@dataclass(frozen=True)
class StatusUpdate:
    """One status update of one task: the manager needs its ids, uuid and whether it ends the task.

    ``payload`` is whatever the agent forwards (the protocol message); the manager never
    looks inside it.
    """

    framework_id: str
    task_id: str
    uuid: bytes
    state: str
    terminal: bool
    payload: Any = None

    def __post_init__(self) -> None:
        for name in ("framework_id", "task_id", "state"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"StatusUpdate.{name} must be a non-empty str, got {value!r}")
        if not isinstance(self.uuid, bytes) or not self.uuid:
            raise ValueError(f"StatusUpdate.uuid must be non-empty bytes, got {self.uuid!r}")
        if not isinstance(self.terminal, bool):
            raise ValueError(f"StatusUpdate.terminal must be a bool, got {self.terminal!r}")


@dataclass(frozen=True)
class Forward:
    """Send ``update`` towards the framework now (a first send or a resend)."""

    update: StatusUpdate


@dataclass(frozen=True)
class Schedule:
    """Call ``tick`` at ``at``: the earliest retry time of all in-flight heads.

    Keep one timer and re-arm it with every ``Schedule``; ticking early or late is harmless.
    """

    at: float


@dataclass(frozen=True)
class StreamClosed:
    """The task's terminal update was acknowledged: the agent may clean up the task."""

    framework_id: str
    task_id: str


@dataclass(frozen=True)
class Ignored:
    """A repeated update or ack: nothing changed, nothing is wrong (the sender retried)."""

    framework_id: str
    task_id: str
    uuid: bytes
    reason: str


@dataclass(frozen=True)
class Refused:
    """An update or ack the manager will not take, and why; nothing changed."""

    framework_id: str
    task_id: str
    uuid: bytes
    reason: str


Action = Forward | Schedule | StreamClosed | Ignored | Refused


def _identity(value: Any) -> Any:
    return value


class _Stream:
    """The updates of one task, in the order they were received."""

    __slots__ = (
        "acknowledged",
        "closed",
        "framework_id",
        "interval",
        "pending",
        "received",
        "retry_at",
        "task_id",
        "timer",
    )

    def __init__(self, framework_id: str, task_id: str) -> None:
        self.framework_id = framework_id
        self.task_id = task_id
        # Invariant: in the order received; an update leaves only when its ack arrives, and
        # only the head (pending[0]) is ever forwarded. A terminal update can only be last.
        self.pending: deque[StatusUpdate] = deque()
        # Invariant: the acked uuids in ack order; disjoint from the pending uuids.
        self.acknowledged: dict[bytes, None] = {}
        # Invariant: exactly the acked uuids plus the pending uuids (for duplicate checks).
        self.received: set[bytes] = set()
        # Invariant: once True, pending is empty and stays empty (the terminal update is acked).
        self.closed = False
        # Invariant: not None iff the head is in flight (pending non-empty and not paused).
        self.retry_at: float | None = None
        self.interval = 0.0  # the wait before the next resend of the head
        self.timer = 0  # token of the live heap entry; older entries are stale

    @property
    def key(self) -> tuple[str, str]:
        return (self.framework_id, self.task_id)

    def terminal_received(self) -> StatusUpdate | None:
        if self.pending and self.pending[-1].terminal:
            return self.pending[-1]
        return None


class StatusUpdateManager:
    """Keeps each task's status updates in order and resends each until it is acknowledged.

    Invariants: each stream forwards its updates in the order received; at most one update
    per stream is in flight; an accepted update is dropped only when acknowledged (or when
    its framework is cleaned up).
    """

    def __init__(
        self,
        retry_interval_min: float = RETRY_INTERVAL_MIN,
        retry_interval_max: float = RETRY_INTERVAL_MAX,
        paused: bool = False,
    ) -> None:
        if not 0 < retry_interval_min <= retry_interval_max:
            raise ValueError(
                "retry intervals must satisfy 0 < min <= max, got "
                f"min={retry_interval_min!r} max={retry_interval_max!r}"
            )
        self.retry_interval_min = retry_interval_min
        self.retry_interval_max = retry_interval_max
        self._paused = paused
        self._streams: dict[tuple[str, str], _Stream] = {}
        # Entries (retry_at, timer token, key); an entry whose token is not the stream's
        # current one is stale and skipped when it surfaces.
        self._timers: list[tuple[float, int, tuple[str, str]]] = []
        self._tokens = itertools.count(1)

    # --- events -------------------------------------------------------------------------

    def update(
        self, framework_id: str, task_id: str, update: StatusUpdate, now: float
    ) -> list[Action]:
        """Accept ``update`` at the back of its task's stream; forward it if it is the head."""
        if (update.framework_id, update.task_id) != (framework_id, task_id):
            raise ValueError(
                f"update {update.uuid.hex()} belongs to task {update.task_id!r} of framework "
                f"{update.framework_id!r}, not to task {task_id!r} of framework {framework_id!r}"
            )
        uuid = update.uuid
        stream = self._streams.get((framework_id, task_id))
        if stream is not None:
            if uuid in stream.acknowledged:
                return [
                    Ignored(
                        framework_id,
                        task_id,
                        uuid,
                        f"update {uuid.hex()} ({update.state}) of task {task_id!r} was already "
                        "acknowledged",
                    )
                ]
            if uuid in stream.received:
                return [
                    Ignored(
                        framework_id,
                        task_id,
                        uuid,
                        f"update {uuid.hex()} ({update.state}) of task {task_id!r} is already "
                        "pending",
                    )
                ]
            if stream.closed:
                return [
                    Refused(
                        framework_id,
                        task_id,
                        uuid,
                        f"update {uuid.hex()} ({update.state}) of task {task_id!r} arrived after "
                        "its terminal update was acknowledged; the stream is closed",
                    )
                ]
            terminal = stream.terminal_received()
            if terminal is not None:
                return [
                    Refused(
                        framework_id,
                        task_id,
                        uuid,
                        f"update {uuid.hex()} ({update.state}) of task {task_id!r} arrived after "
                        f"its terminal update {terminal.uuid.hex()} ({terminal.state}); "
                        "nothing may follow a terminal update",
                    )
                ]
        else:
            stream = self._streams[(framework_id, task_id)] = _Stream(framework_id, task_id)
        stream.pending.append(update)
        stream.received.add(uuid)
        if len(stream.pending) == 1 and not self._paused:
            return self._forward_head(stream, now)
        return []

    def acknowledge(self, framework_id: str, task_id: str, uuid: bytes, now: float) -> list[Action]:
        """Take the framework's ack of the head: pop it, then forward the next or close."""
        stream = self._streams.get((framework_id, task_id))
        if stream is None:
            return [
                Refused(
                    framework_id,
                    task_id,
                    uuid,
                    f"acknowledgement {uuid.hex()} is for task {task_id!r} of framework "
                    f"{framework_id!r}, which has no status update stream",
                )
            ]
        if uuid in stream.acknowledged:
            return [
                Ignored(
                    framework_id,
                    task_id,
                    uuid,
                    f"update {uuid.hex()} of task {task_id!r} was already acknowledged",
                )
            ]
        if not stream.pending:
            state = "closed" if stream.closed else "empty"
            return [
                Refused(
                    framework_id,
                    task_id,
                    uuid,
                    f"acknowledgement {uuid.hex()} of task {task_id!r} matches no update: "
                    f"the stream is {state}",
                )
            ]
        head = stream.pending[0]
        if uuid != head.uuid:
            where = "a later update" if uuid in stream.received else "no update"
            return [
                Refused(
                    framework_id,
                    task_id,
                    uuid,
                    f"acknowledgement {uuid.hex()} of task {task_id!r} is out of order: it "
                    f"names {where}, expected the head {head.uuid.hex()} ({head.state})",
                )
            ]
        stream.pending.popleft()
        stream.acknowledged[uuid] = None
        self._stop(stream)
        if head.terminal:
            stream.closed = True
            return [StreamClosed(framework_id, task_id)]
        if stream.pending and not self._paused:
            return self._forward_head(stream, now)
        return []

    def tick(self, now: float) -> list[Action]:
        """Resend every in-flight head whose retry time has come, with a doubled wait."""
        if self._paused:
            return []
        actions: list[Action] = []
        while self._timers and self._timers[0][0] <= now:
            _, token, key = heapq.heappop(self._timers)
            stream = self._streams.get(key)
            if stream is None or stream.timer != token:
                continue
            stream.interval = min(stream.interval * 2, self.retry_interval_max)
            self._arm(stream, now + stream.interval)
            actions.append(Forward(stream.pending[0]))
        at = self.next_retry()
        if at is not None:
            actions.append(Schedule(at))
        return actions

    def pause(self) -> None:
        """Stop forwarding (the master is unreachable); heads stay pending, not in flight."""
        self._paused = True
        for stream in self._streams.values():
            stream.retry_at = None
            stream.timer = 0
        self._timers.clear()

    def resume(self, now: float) -> list[Action]:
        """Forward again: resend every head at once, its backoff starting over (as Mesos)."""
        self._paused = False
        actions: list[Action] = []
        for stream in self._streams.values():
            if stream.pending:
                self._start(stream, now)
                actions.append(Forward(stream.pending[0]))
        at = self.next_retry()
        if at is not None:
            actions.append(Schedule(at))
        return actions

    def cleanup(self, framework_id: str) -> None:
        """Drop every stream of a removed framework, acknowledged or not (no one to send to)."""
        for key in [key for key in self._streams if key[0] == framework_id]:
            del self._streams[key]
        # Their heap entries go stale and are skipped when they surface.

    # --- checkpointing ------------------------------------------------------------------

    def stream_record(
        self,
        framework_id: str,
        task_id: str,
        encode: Callable[[Any], Any] = _identity,
    ) -> dict[str, Any] | None:
        """The checkpoint record of one stream (write it after an accepted update or ack)."""
        stream = self._streams.get((framework_id, task_id))
        if stream is None:
            return None
        return {
            "framework_id": stream.framework_id,
            "task_id": stream.task_id,
            "pending": [
                {
                    "uuid": update.uuid,
                    "state": update.state,
                    "terminal": update.terminal,
                    "payload": encode(update.payload),
                }
                for update in stream.pending
            ],
            "acknowledged": list(stream.acknowledged),
            "closed": stream.closed,
        }

    def checkpoint_records(self, encode: Callable[[Any], Any] = _identity) -> list[dict[str, Any]]:
        """Every stream's record: what ``recover`` needs so a restarted agent loses nothing."""
        return [
            record
            for key in self._streams
            if (record := self.stream_record(key[0], key[1], encode)) is not None
        ]

    def recover(
        self,
        records: Iterable[Mapping[str, Any]],
        decode: Callable[[Any], Any] = _identity,
    ) -> None:
        """Rebuild the streams from checkpoint records; the manager is left paused.

        Call it on a fresh manager, before any event; then ``resume(now)`` once the agent is
        registered again, which resends every pending head. A corrupt record raises
        ``ValueError`` naming it, and nothing is recovered.
        """
        if self._streams:
            raise RuntimeError(
                "recover() needs an empty manager: call it on a fresh StatusUpdateManager "
                "before any update"
            )
        streams: dict[tuple[str, str], _Stream] = {}
        for index, record in enumerate(records):
            stream = _stream_from_record(index, record, decode)
            if stream.key in streams:
                raise ValueError(f"checkpoint record {index} repeats stream {stream.key!r}")
            streams[stream.key] = stream
        self._streams = streams
        self.pause()

    # --- inspection ---------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self._paused

    def pending(self, framework_id: str, task_id: str) -> tuple[StatusUpdate, ...]:
        """The task's unacknowledged updates, head first."""
        stream = self._streams.get((framework_id, task_id))
        return tuple(stream.pending) if stream is not None else ()

    def acknowledged(self, framework_id: str, task_id: str) -> tuple[bytes, ...]:
        """The task's acknowledged uuids, in the order they were acknowledged."""
        stream = self._streams.get((framework_id, task_id))
        return tuple(stream.acknowledged) if stream is not None else ()

    def closed(self, framework_id: str, task_id: str) -> bool:
        """Whether the task's terminal update was acknowledged."""
        stream = self._streams.get((framework_id, task_id))
        return stream is not None and stream.closed

    def retry_at(self, framework_id: str, task_id: str) -> float | None:
        """When the task's in-flight head is resent next (None: nothing in flight)."""
        stream = self._streams.get((framework_id, task_id))
        return stream.retry_at if stream is not None else None

    def next_retry(self) -> float | None:
        """The earliest retry time of all in-flight heads, or None."""
        while self._timers:
            _, token, key = self._timers[0]
            stream = self._streams.get(key)
            if stream is not None and stream.timer == token:
                return self._timers[0][0]
            heapq.heappop(self._timers)
        return None

    def streams(self) -> list[tuple[str, str]]:
        """The (framework_id, task_id) of every stream, open or closed."""
        return list(self._streams)

    # --- internals ----------------------------------------------------------------------

    def _forward_head(self, stream: _Stream, now: float) -> list[Action]:
        self._start(stream, now)
        at = self.next_retry()
        assert at is not None  # the head just armed a timer
        return [Forward(stream.pending[0]), Schedule(at)]

    def _start(self, stream: _Stream, now: float) -> None:
        stream.interval = self.retry_interval_min
        self._arm(stream, now + stream.interval)

    def _arm(self, stream: _Stream, at: float) -> None:
        stream.retry_at = at
        stream.timer = next(self._tokens)
        heapq.heappush(self._timers, (at, stream.timer, stream.key))

    def _stop(self, stream: _Stream) -> None:
        stream.retry_at = None
        stream.timer = 0


def _stream_from_record(
    index: int, record: Mapping[str, Any], decode: Callable[[Any], Any]
) -> _Stream:
    """Build one stream from its record, checking the stream's invariants."""
    try:
        framework_id = record["framework_id"]
        task_id = record["task_id"]
        pending = record["pending"]
        acknowledged = record["acknowledged"]
        closed = record["closed"]
    except (KeyError, TypeError) as error:
        raise ValueError(f"checkpoint record {index} is not a stream record: {error!r}") from None
    if not all(isinstance(value, str) and value for value in (framework_id, task_id)):
        raise ValueError(
            f"checkpoint record {index}: ids must be non-empty str, got "
            f"framework_id={framework_id!r} task_id={task_id!r}"
        )
    stream = _Stream(framework_id, task_id)
    for uuid in acknowledged:
        if not isinstance(uuid, bytes) or uuid in stream.acknowledged:
            raise ValueError(f"checkpoint record {index}: bad or repeated acked uuid {uuid!r}")
        stream.acknowledged[uuid] = None
    try:
        updates = [
            StatusUpdate(
                framework_id,
                task_id,
                item["uuid"],
                item["state"],
                item["terminal"],
                decode(item["payload"]),
            )
            for item in pending
        ]
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"checkpoint record {index} has a bad pending update: {error}") from None
    for position, update in enumerate(updates):
        if update.uuid in stream.acknowledged or update.uuid in stream.received:
            raise ValueError(
                f"checkpoint record {index}: pending uuid {update.uuid.hex()} is repeated"
            )
        if update.terminal and position != len(updates) - 1:
            raise ValueError(
                f"checkpoint record {index}: terminal update {update.uuid.hex()} is not last"
            )
        stream.received.add(update.uuid)
        stream.pending.append(update)
    stream.received.update(stream.acknowledged)
    if not isinstance(closed, bool) or (closed and updates):
        raise ValueError(
            f"checkpoint record {index}: closed={closed!r} with {len(updates)} pending updates"
        )
    stream.closed = closed
    return stream
