"""The master's v1 operator ``SUBSCRIBE`` stream, followed for as long as the server runs.

Mesos-DNS polls ``/master/state`` every 60 s; this follows the event stream instead, so a
task's records change as soon as the master hears of it. Each connection starts with
``GET_MASTER`` (the leader's address) and then ``SUBSCRIBE``: its first event, SUBSCRIBED,
carries the whole state and replaces everything known (a resync); every later event is
applied as it comes. A stream that ends, breaks, or stays silent for three heartbeat
intervals is lost: the follower subscribes again, backing off up to ``reconnect_max``
seconds between attempts; meanwhile the last known records keep being served.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random

import aiohttp
import structlog

from corral.v1 import recordio
from corral.v1.http import JSON, RECORDIO
from nameserver.cluster_state import ClusterState, EventError, Leader
from nameserver.metrics import Counters

log = structlog.get_logger("nameserver.follower")

FIRST_BACKOFF = 0.05  # seconds before the first retry; doubles up to reconnect_max


class StreamLost(Exception):
    """The stream ended or broke; the message says how."""


class Follower:
    """Feeds ``state`` from the master at ``master`` (host:port) until stopped."""

    def __init__(
        self, master: str, state: ClusterState, counters: Counters, reconnect_max: float = 5.0
    ) -> None:
        self.url = f"http://{master}/api/v1"
        self.http_port = int(master.rsplit(":", 1)[1]) if ":" in master else 5050
        self.state = state
        self.counters = counters
        self.reconnect_max = reconnect_max
        self.connected = asyncio.Event()  # set while a stream is open and SUBSCRIBED came
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("the follower is already started; start() it once")
        self._task = asyncio.get_running_loop().create_task(self._follow())

    async def stop(self) -> None:
        """Close the stream and wait for the follower's task to end."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def wait_connected(self, timeout: float) -> None:
        await asyncio.wait_for(self.connected.wait(), timeout)

    async def wait_failed(self) -> None:
        """Return when the follower stops for good; raise what stopped it. It retries every
        loss of the stream, so this only returns for a bug (or after stop())."""
        if self._task is None:
            raise RuntimeError("the follower is not started; start() it first")
        await asyncio.shield(self._task)

    async def _follow(self) -> None:
        backoff = FIRST_BACKOFF
        timeout = aiohttp.ClientTimeout(total=None, connect=5.0, sock_connect=5.0)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                try:
                    await self._leader(session)
                    await self._subscribe(session)
                    raise StreamLost("the master ended the stream")
                except (StreamLost, aiohttp.ClientError, OSError, TimeoutError) as error:
                    if self.connected.is_set():
                        self.counters.stream_losses += 1
                        backoff = FIRST_BACKOFF  # it worked a while: retry soon
                    self.connected.clear()
                    log.info("subscription_lost", master=self.url, error=str(error) or repr(error))
                wait = backoff * (0.5 + random.random() / 2)
                await asyncio.sleep(wait)
                backoff = min(backoff * 2, self.reconnect_max)

    async def _leader(self, session: aiohttp.ClientSession) -> None:
        async with session.post(
            self.url,
            data=json.dumps({"type": "GET_MASTER"}),
            headers={"Content-Type": JSON, "Accept": JSON},
            timeout=aiohttp.ClientTimeout(total=10.0),
        ) as response:
            if response.status != 200:
                raise StreamLost(f"GET_MASTER answered {response.status}")
            try:
                info = (await response.json())["get_master"]["master_info"]
                address = info.get("address") or {}
                ip = address.get("ip") or info.get("hostname") or ""
            except (ValueError, KeyError, TypeError, AttributeError) as error:
                raise StreamLost(f"GET_MASTER answered without master_info: {error!r}") from None
        # The port is the HTTP one followed here (what clients of the leader use); Corral's
        # master_info names its native endpoint's.
        self.state.set_leader(Leader(ip, self.http_port))

    async def _subscribe(self, session: aiohttp.ClientSession) -> None:
        async with session.post(
            self.url,
            data=json.dumps({"type": "SUBSCRIBE"}),
            headers={"Content-Type": JSON, "Accept": RECORDIO},
        ) as response:
            if response.status != 200:
                raise StreamLost(f"SUBSCRIBE answered {response.status}: {await response.text()}")
            decoder = recordio.Decoder()
            silence = 60.0  # until SUBSCRIBED says the heartbeat interval
            while True:
                try:
                    chunk = await asyncio.wait_for(response.content.readany(), silence)
                except TimeoutError:
                    raise StreamLost(f"no event nor heartbeat for {silence:g} s") from None
                if not chunk:
                    return
                try:
                    records = decoder.feed(chunk)
                except recordio.RecordIOError as error:
                    raise StreamLost(f"the stream is not RecordIO: {error}") from None
                for record in records:
                    try:
                        event = json.loads(record)
                    except ValueError as error:
                        raise StreamLost(f"an event that is not JSON: {error}") from None
                    self.counters.events += 1
                    try:
                        self.state.apply(event)
                    except EventError as error:
                        self.counters.event_errors += 1
                        log.warning("event_refused", error=str(error))
                        if event.get("type") == "SUBSCRIBED":
                            raise StreamLost(str(error)) from None
                        continue
                    if event.get("type") == "SUBSCRIBED":
                        interval = event["subscribed"].get("heartbeat_interval_seconds") or 15.0
                        silence = 3 * float(interval)
                        self.counters.subscriptions += 1
                        self.connected.set()
                        log.info(
                            "subscribed",
                            master=self.url,
                            tasks=len(self.state.tasks),
                            records=len(self.state.table),
                        )
