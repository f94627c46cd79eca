"""What the front door costs: the same requests to a real master directly and through a real
``corral frontdoor`` (each its own OS process), and how long a streamed event takes to cross.

- ``direct_*`` / ``door_*``: ``--requests`` GETs of ``/master/health`` (small) and of
  ``/master/state-summary``, ``--concurrency`` at a time from an aiohttp client in this
  process: requests per second and p50/p99 latency, for each path.
- ``stream_extra_ms``: a v1 operator SUBSCRIBE stream opened directly and one through the
  front door; a framework registers; the FRAMEWORK_ADDED event's arrival on the proxied stream
  minus its arrival on the direct one (the median of ``--events`` registrations).

The last stdout line is one JSON object with these figures; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from corral.cli.cluster import start_local_cluster, wait_for_agents
from corral.cli.frontdoor import launch_frontdoor
from corral.protocol import FrameworkInfo
from corral.scheduler import Scheduler, SchedulerDriver
from corral.v1.recordio import Decoder
from libprocess import log as logsetup


async def load(url: str, requests: int, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    left = iter(range(requests))
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            nonlocal errors
            for _ in left:
                started = time.perf_counter()
                async with session.get(url) as response:
                    await response.read()
                    errors += response.status != 200
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "per_s": round(requests / elapsed),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 3),
        "errors": errors,
    }


async def stream_arrivals(url: str, arrivals: list[float], ready: asyncio.Event) -> None:
    body = json.dumps({"type": "SUBSCRIBE"})
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    timeout = aiohttp.ClientTimeout(total=None)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(url, data=body, headers=headers) as response,
    ):
        decoder = Decoder()
        async for chunk in response.content.iter_any():
            for record in decoder.feed(chunk):
                kind = json.loads(record)["type"]
                if kind == "SUBSCRIBED":
                    ready.set()
                elif kind == "FRAMEWORK_ADDED":
                    arrivals.append(time.perf_counter())


async def stream_extra(master: str, door: str, events: int) -> float:
    direct: list[float] = []
    proxied: list[float] = []
    ready = [asyncio.Event(), asyncio.Event()]
    readers = [
        asyncio.create_task(stream_arrivals(f"http://{master}/api/v1", direct, ready[0])),
        asyncio.create_task(stream_arrivals(f"{door}/mesos/api/v1", proxied, ready[1])),
    ]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), 30)
    for index in range(events):
        driver = SchedulerDriver(
            Scheduler(), FrameworkInfo(user=getpass.getuser(), name=f"bench-{index}"), master
        )
        driver.start()
        deadline = time.monotonic() + 30
        while len(proxied) <= index or len(direct) <= index:
            if time.monotonic() > deadline:
                raise TimeoutError("a FRAMEWORK_ADDED event did not arrive within 30 s")
            await asyncio.sleep(0.001)
        driver.stop()
    for reader in readers:
        reader.cancel()
    extra = [(p - d) * 1000 for p, d in zip(proxied, direct, strict=False)]
    return round(statistics.median(extra), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--events", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="500 requests, 3 events")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.events = 500, 3
    logsetup.configure("warning")
    cluster = start_local_cluster(1, resources="cpus:1;mem:256")
    door = None
    try:
        wait_for_agents(cluster.http_address, 1)
        door = launch_frontdoor(cluster.http_address)
        figures: dict[str, float] = {"requests": args.requests, "concurrency": args.concurrency}
        for name, path in (("health", "/master/health"), ("summary", "/master/state-summary")):
            for where, base in (
                ("direct", f"http://{cluster.http_address}"),
                ("door", f"{door.url}/mesos"),
            ):
                result = asyncio.run(load(base + path, args.requests, args.concurrency))
                print(f"{where} {path}: {result}", file=sys.stderr)
                for key, value in result.items():
                    figures[f"{where}_{name}_{key}"] = value
        figures["stream_extra_ms"] = asyncio.run(
            stream_extra(cluster.http_address, door.url, args.events)
        )
        print(json.dumps(figures))
    finally:
        if door is not None:
            door.stop()
        cluster.stop()


if __name__ == "__main__":
    main()
