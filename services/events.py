"""``/v2/events``: Marathon's event stream as Server-Sent Events.

``EventBus.publish`` runs on the scheduler's loop and never waits: each subscriber has a
bounded queue. A subscriber is cut off (its stream ends; it reconnects and catches up from
the REST API) when it is ``QUEUE_LIMIT`` events behind and its stream has written nothing for
``STALL_SECONDS``, or at once when it is ``HARD_LIMIT`` behind: a burst of events in one loop
turn (a deployment of thousands of instances) fills every queue before any stream may write,
and must not cut off readers that keep up. So a slow subscriber never slows the scheduler, and
its memory stays bounded. Each event goes out as ``event: <eventType>`` and ``data: <json>``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from typing import Any

import structlog
from aiohttp import web

log = structlog.get_logger("services.events")

QUEUE_LIMIT = 1000  # events behind that, with a stalled stream, cut a subscriber off
STALL_SECONDS = 5.0  # a stream that wrote nothing this long, while behind, is stalled
HARD_LIMIT = 50_000  # events behind that cut a subscriber off whatever its stream does
_CLOSED = None


class Subscriber:
    def __init__(self, types: frozenset[str], remote: str) -> None:
        self.types = types  # empty: every type
        self.remote = remote
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(HARD_LIMIT + 1)
        self.progress_at = time.monotonic()  # when its stream last wrote (or it subscribed)

    def wants(self, event: dict[str, Any]) -> bool:
        return not self.types or event.get("eventType") in self.types


class EventBus:
    def __init__(self) -> None:
        self.subscribers: set[Subscriber] = set()
        self.dropped = 0  # subscribers cut off for being too slow
        self.published = 0

    def publish(self, event: dict[str, Any], now: float | None = None) -> None:
        """Queue ``event`` for each subscriber that wants it; ``now`` (monotonic seconds)
        judges stalls, the current time by default."""
        self.published += 1
        now = time.monotonic() if now is None else now
        for subscriber in list(self.subscribers):
            if not subscriber.wants(event):
                continue
            behind = subscriber.queue.qsize()
            stalled = now - subscriber.progress_at > STALL_SECONDS
            if behind >= HARD_LIMIT or (behind >= QUEUE_LIMIT and stalled):
                self._cut_off(subscriber)
                continue
            subscriber.queue.put_nowait(event)

    def _cut_off(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)
        self.dropped += 1
        log.warning(
            "event_subscriber_too_slow",
            remote=subscriber.remote,
            behind=subscriber.queue.qsize(),
            idle_seconds=round(time.monotonic() - subscriber.progress_at, 1),
        )
        subscriber.queue.put_nowait(_CLOSED)

    def subscribe(self, types: Iterable[str], remote: str) -> Subscriber:
        subscriber = Subscriber(frozenset(types), remote)
        self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    def close(self) -> None:
        for subscriber in list(self.subscribers):
            self.subscribers.discard(subscriber)
            subscriber.queue.put_nowait(_CLOSED)


def sse(event: dict[str, Any]) -> bytes:
    data = json.dumps(event, separators=(",", ":"))
    return f"event: {event.get('eventType', 'message')}\ndata: {data}\n\n".encode()


async def stream(
    request: web.Request, bus: EventBus, attached: dict[str, Any]
) -> web.StreamResponse:
    """Serve one subscriber until it goes away (or is cut off)."""
    if "text/event-stream" not in request.headers.get("Accept", ""):
        # Marathon answers 405 here (not 406).
        return web.json_response(
            {"message": "the event stream needs the header Accept: text/event-stream"},
            status=405,
        )
    types = request.query.getall("event_type", [])
    remote = request.remote or ""
    subscriber = bus.subscribe(types, remote)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    try:
        await response.prepare(request)
        if subscriber.wants(attached):
            await response.write(sse({**attached, "remoteAddress": remote}))
        while True:
            event = await subscriber.queue.get()
            if event is _CLOSED:
                break
            await response.write(sse(event))
            subscriber.progress_at = time.monotonic()
    except ConnectionResetError:
        pass  # the subscriber went away
    finally:
        bus.unsubscribe(subscriber)
    return response
