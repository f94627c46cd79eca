"""corral dns under load: queries per second and latency with 10,000 tasks known, and how
fresh the records are after TASK_RUNNING on a real cluster.

Throughput: the real ``corral dns`` runs in an OS process of its own (one asyncio loop: one
core) and follows a stand-in master (``SnapshotMaster``, in this process: the edge of the
world) whose SUBSCRIBE stream gives a synthetic SUBSCRIBED state with ``--tasks`` running
tasks in the shape the real master gives, then only heartbeats. A load generator in another
OS process keeps ``--window`` UDP queries in flight for ``--seconds``: 80% A queries for an
app's name (five tasks share each name, so answers have five shuffled records), 20% SRV
queries, and times every answer. Flood control is off for the run (``--client-rate 0``): one
client sends everything.

Freshness: a real master and agent (``corral local``'s processes) and a real ``corral dns``
following them; a framework launches ``--fresh-tasks`` tasks one after another, and for each
the time from the framework hearing TASK_RUNNING to the name answering (polled every 2 ms) is
``freshness_ms`` (the worst seen); ``gone_ms`` is the same for the name going after the kill.

The last stdout line is one JSON object: ``queries_per_s``, ``p50_ms``, ``p99_ms``, ``tasks``,
``freshness_ms`` and more (docs/dns.md lists them); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import multiprocessing
import os
import queue
import random
import select
import socket
import statistics
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from aiohttp import web
from dnslib import DNSRecord

from corral.cli.cluster import start_local_cluster, wait_for_agents
from corral.cli.dns import DnsProcess, launch_dns
from corral.v1 import recordio

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: the events' shapes live in tests/
    sys.path.insert(0, str(ROOT))
from tests import nameserver_events as ev  # noqa: E402

ORDERS = 8  # the warm-up asks each question this often: every shuffled order gets packed
APPS_PER_FRAMEWORK = 200
TASKS_PER_APP = 5
AGENTS = 100


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- the synthetic cluster ---------------------------------------------------------------------


def synthetic_state(tasks: int) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """A SUBSCRIBED event with ``tasks`` running tasks, and the (name, type) queries to ask."""
    agents = [ev.agent(f"bench-S{i}", f"10.0.{i // 250}.{i % 250 + 1}") for i in range(AGENTS)]
    apps = max(1, tasks // TASKS_PER_APP)
    frameworks = {}
    bodies = []
    questions = []
    for app in range(apps):
        framework = app // APPS_PER_FRAMEWORK
        framework_id = f"bench-{framework:04d}"
        frameworks.setdefault(framework_id, ev.framework(f"group-{framework}", framework_id))
        name = f"app-{app}"
        questions.append((f"{name}.group-{framework}.corral.", "A"))
        questions.append((f"_{name}._tcp.group-{framework}.corral.", "SRV"))
    for index in range(tasks):
        bodies.append(synthetic_task(index, apps))
    return ev.subscribed(agents, list(frameworks.values()), bodies), questions


def synthetic_task(index: int, apps: int) -> dict[str, Any]:
    """Task ``index`` of app ``index % apps``: its own port and container address."""
    app = index % apps
    port = 31000 + index % 1000
    return ev.task(
        f"app-{app}.{index}",
        f"app-{app}",
        f"bench-S{index % AGENTS}",
        framework_id=f"bench-{app // APPS_PER_FRAMEWORK:04d}",
        ports=((port, port),),
        addresses=(f"172.16.{index // 250 % 250}.{index % 250 + 1}",),
    )


class SnapshotMaster:
    """A stand-in for the master's ``POST /api/v1``: GET_MASTER, and SUBSCRIBE with one
    prepared SUBSCRIBED event then heartbeats, and, while ``churn`` is set, tasks replaced at
    that rate: each a TASK_UPDATED to TASK_KILLED of the oldest task and a TASK_ADDED of a new
    running one of the same app. Only for this benchmark's throughput run."""

    def __init__(self, subscribed: dict[str, Any], tasks: int) -> None:
        self.record = recordio.encode(json.dumps(subscribed).encode())
        self.tasks = tasks
        self.apps = max(1, tasks // TASKS_PER_APP)
        self.churn = 0.0  # tasks replaced per second; set from the benchmark's thread
        self.replaced = 0
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> str:
        self._thread.start()
        self._ready.wait(10)
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        app = web.Application()
        app.router.add_post("/api/v1", self._call)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        self._ready.set()
        await self._stopping.wait()
        await runner.cleanup()

    async def _call(self, request: web.Request) -> web.StreamResponse:
        call = await request.json()
        if call["type"] == "GET_MASTER":
            info = {"id": "bench", "address": {"ip": "127.0.0.1", "port": self.port}}
            return web.json_response({"type": "GET_MASTER", "get_master": {"master_info": info}})
        stream = web.StreamResponse(headers={"Content-Type": "application/recordio"})
        await stream.prepare(request)
        await stream.write(self.record)
        heartbeat = recordio.encode(b'{"type":"HEARTBEAT"}')
        loop = asyncio.get_running_loop()
        beat = loop.time() + 15.0
        owed = 0.0
        oldest, newest = 0, self.tasks  # the running tasks are oldest..newest-1
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), 0.01)
            if loop.time() > beat:
                await stream.write(heartbeat)
                beat = loop.time() + 15.0
            owed += self.churn * 0.01
            events = []
            while owed >= 1.0:
                owed -= 1.0
                gone = synthetic_task(oldest, self.apps)
                events.append(
                    ev.task_updated(
                        gone["task_id"]["value"],
                        "TASK_KILLED",
                        gone["agent_id"]["value"],
                        gone["framework_id"]["value"],
                    )
                )
                events.append(ev.task_added(synthetic_task(newest, self.apps)))
                oldest, newest = oldest + 1, newest + 1
                self.replaced += 1
            if events:
                await stream.write(
                    b"".join(recordio.encode(json.dumps(e).encode()) for e in events)
                )
        return stream


# -- the load generator (its own OS process) ------------------------------------------------------


def generate_load(
    port: int,
    questions: list[tuple[str, str]],
    seconds: float,
    window: int,
    results,
    control,
) -> None:
    """Keep ``window`` queries in flight: first each question ORDERS times (the warm-up: the
    server packs every answer for the first time), then random ones for ``seconds``, measured,
    then, once ``control`` says
    "churn", ``seconds`` more while tasks come and go; put (answers, errors, lost, seconds,
    latencies in ms) of each phase on ``results``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    packets = [DNSRecord.question(name, kind).pack()[2:] for name, kind in questions]
    rng = random.Random(1)
    plan = [index for index in range(len(packets)) for _ in range(ORDERS)]
    rng.shuffle(plan)
    results.put(_load(sock, packets, rng, 3600.0, window, plan))
    results.put(_load(sock, packets, rng, seconds, window))
    if control.get(timeout=60) == "churn":
        results.put(_load(sock, packets, rng, seconds, window))


def _load(
    sock: socket.socket,
    packets: list[bytes],
    rng,
    seconds: float,
    window: int,
    plan: list[int] | None = None,
):
    """One phase: random questions for ``seconds``, or the questions of ``plan`` in turn."""
    sent_at: dict[int, float] = {}
    planned = iter(plan) if plan is not None else None
    latencies: list[float] = []
    errors = lost = 0
    next_id = 0
    clock = time.perf_counter
    start = clock()
    end = start + seconds
    last_sweep = start
    while True:
        now = clock()
        if now >= end:
            break
        while len(sent_at) < window:
            next_id = (next_id + 1) & 0xFFFF
            if next_id in sent_at:
                continue
            if planned is None:
                index = rng.randrange(len(packets))
            else:
                index = next(planned, None)
                if index is None:
                    break
            sock.send(struct.pack(">H", next_id) + packets[index])
            sent_at[next_id] = clock()
        if planned is not None and not sent_at:
            break  # the plan is done and answered
        readable, _, _ = select.select([sock], [], [], 0.05)
        while readable:
            try:
                answer = sock.recv(4096)
            except BlockingIOError:
                break
            received = clock()
            (answer_id,) = struct.unpack_from(">H", answer)
            sent = sent_at.pop(answer_id, None)
            if sent is None:
                continue  # an answer after its query was given up
            if answer[3] & 0x0F or not struct.unpack_from(">H", answer, 6)[0]:
                errors += 1  # not NOERROR with answers
            latencies.append((received - sent) * 1000.0)
        swept = clock()
        if swept - last_sweep > 0.2:
            last_sweep = swept
            stale = [i for i, sent in sent_at.items() if swept - sent > 1.0]
            for query_id in stale:
                del sent_at[query_id]
            lost += len(stale)
    elapsed = clock() - start
    while True:  # what is still in flight belongs to this phase: drain it, untimed
        try:
            sock.recv(4096)
        except BlockingIOError:
            if not select.select([sock], [], [], 0.05)[0]:
                break
    return (len(latencies), errors, lost, elapsed, latencies)


def throughput(tasks: int, seconds: float, window: int, churn: float) -> dict[str, Any]:
    progress(f"building a synthetic cluster: {tasks} running tasks on {AGENTS} agents")
    subscribed, questions = synthetic_state(tasks)
    master = SnapshotMaster(subscribed, tasks)
    address = master.start()
    server: DnsProcess | None = None
    try:
        server = launch_dns(address, "--client-rate", "0")
        progress(f"corral dns {server.banner}")
        wait_for_records(server, tasks)
        context = multiprocessing.get_context("spawn")
        results, control = context.Queue(), context.Queue()
        load = context.Process(
            target=generate_load,
            args=(server.port, questions, seconds, window, results, control),
        )
        cpu = psutil.Process(server.process.pid)
        progress(
            f"load: {window} UDP queries in flight, one client; warm-up: each of the "
            f"{len(questions)} questions {ORDERS} times"
        )
        started = cpu.cpu_times()
        load.start()
        cold = results.get(timeout=600)
        warmed = cpu.cpu_times()
        cold_busy = (warmed.user - started.user) + (warmed.system - started.system)
        progress(f"  warm-up: {cold[0] / cold[3]:.0f} queries/s; now {seconds:g} s measured")
        before = cpu.cpu_times()
        answers, errors, lost, elapsed, latencies = results.get(timeout=seconds + 60)
        after = cpu.cpu_times()
        busy = (after.user - before.user) + (after.system - before.system)
        latencies.sort()
        p50 = round(latencies[len(latencies) // 2], 3) if latencies else None
        p99 = round(latencies[int(len(latencies) * 0.99)], 3) if latencies else None
        progress(
            f"  {answers / elapsed:.0f} queries/s, p50 {p50} ms, p99 {p99} ms, "
            f"server CPU {100.0 * busy / elapsed:.1f}%"
        )
        churned = {}
        if churn:
            progress(f"  now {seconds:g} s more while {churn:g} tasks/s are replaced")
            events_before = fetch(server, "/metrics")["dns/events"]
            master.churn = churn
            control.put("churn")
            c_answers, c_errors, c_lost, c_elapsed, c_latencies = results.get(timeout=seconds + 60)
            master.churn = 0.0
            c_latencies.sort()
            churned = {
                "churn_tasks_per_s": churn,
                "churn_events": fetch(server, "/metrics")["dns/events"] - events_before,
                "churn_queries_per_s": round(c_answers / c_elapsed, 1),
                "churn_p99_ms": round(c_latencies[int(len(c_latencies) * 0.99)], 3)
                if c_latencies
                else None,
                "churn_errors": c_errors,
                "churn_lost": c_lost,
            }
            progress(
                f"  {churned['churn_queries_per_s']:.0f} queries/s, p99 "
                f"{churned['churn_p99_ms']} ms, {churned['churn_events']} events applied"
            )
        else:
            control.put("done")
        load.join(30)
        figures = {
            "tasks": tasks,
            "queries": answers,
            "queries_per_s": round(answers / elapsed, 1),
            "p50_ms": p50,
            "p99_ms": p99,
            "errors": errors,
            "lost": lost,
            "window": window,
            "warmup_queries_per_s": round(cold[0] / cold[3], 1),
            "warmup_server_cpu_percent": round(100.0 * cold_busy / cold[3], 1),
            "server_cpu_s": round(busy, 2),
            "server_cpu_percent": round(100.0 * busy / elapsed, 1),
            "records": fetch(server, "/metrics")["dns/records"],
            **churned,
        }
        return figures
    finally:
        if server is not None:
            server.stop()
        master.stop()


def fetch(server: DnsProcess, path: str) -> Any:
    import urllib.request

    with urllib.request.urlopen(f"http://{server.ip}:{server.http_port}{path}", timeout=10) as r:
        return json.load(r)


def wait_for_records(server: DnsProcess, tasks: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fetch(server, "/metrics")["dns/tasks"] >= tasks:
            return
        time.sleep(0.1)
    raise TimeoutError(f"corral dns did not learn the {tasks} tasks within {timeout:g} s")


# -- freshness on a real cluster ------------------------------------------------------------------


def resolves(port: int, name: str) -> bool:
    """One A query over UDP: True when it has answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1.0)
        query = DNSRecord.question(name, "A").pack()
        sock.sendto(query, ("127.0.0.1", port))
        try:
            answer = sock.recv(4096)
        except TimeoutError:
            return False
        return not answer[3] & 0x0F and struct.unpack_from(">H", answer, 6)[0] > 0


def freshness(samples: int) -> dict[str, Any]:
    from corral.ids import TaskID
    from corral.protocol import CommandInfo, Filters, FrameworkInfo, TaskInfo
    from corral.resources import Resources
    from corral.scheduler import Scheduler, SchedulerDriver
    from corral.task_states import TaskState
    from master import MasterOptions

    class Heard(Scheduler):
        def __init__(self) -> None:
            self.offers: queue.Queue = queue.Queue()
            self.states: queue.Queue = queue.Queue()

        def resource_offers(self, driver, offers) -> None:
            for offer in offers:
                self.offers.put(offer)

        def status_update(self, driver, status) -> None:
            self.states.put((time.perf_counter(), status.task_id, status.state))

    def heard(task_id: str, state: TaskState) -> float:
        while True:
            at, seen, reached = scheduler.states.get(timeout=30)
            if seen == task_id and reached is state:
                return at

    def wait(port: int, name: str, present: bool, since: float) -> float:
        deadline = time.perf_counter() + 10.0
        while resolves(port, name) != present:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{name} still {'missing' if present else 'there'} after 10 s")
            time.sleep(0.002)
        return (time.perf_counter() - since) * 1000.0

    progress("starting a real cluster (a master, an agent) and corral dns following it")
    cluster = start_local_cluster(
        1,
        resources="cpus:8;mem:4096;disk:1024;ports:[31000-31100]",
        master_options=MasterOptions(allocation_interval=0.1),
    )
    server = None
    driver = None
    fresh, gone = [], []
    try:
        wait_for_agents(cluster.http_address, 1)
        server = launch_dns(cluster.http_address)
        scheduler = Heard()
        driver = SchedulerDriver(
            scheduler, FrameworkInfo(user=getpass.getuser(), name="bench"), cluster.http_address
        )
        driver.start()
        for index in range(samples):
            offer = scheduler.offers.get(timeout=30)
            task_id = f"fresh-{index}"
            driver.launch_tasks(
                [offer.id],
                [
                    TaskInfo(
                        name=f"fresh-{index}",
                        task_id=TaskID(task_id),
                        agent_id=offer.agent_id,
                        resources=Resources.parse("cpus:0.1;mem:16"),
                        command=CommandInfo(value="sleep 60"),
                    )
                ],
                Filters(refuse_seconds=0),
            )
            name = f"fresh-{index}.bench.corral."
            fresh.append(wait(server.port, name, True, heard(task_id, TaskState.TASK_RUNNING)))
            driver.kill_task(TaskID(task_id))
            gone.append(wait(server.port, name, False, heard(task_id, TaskState.TASK_KILLED)))
            progress(
                f"  task {index}: named {fresh[-1]:.1f} ms after RUNNING, "
                f"gone {gone[-1]:.1f} ms after KILLED"
            )
    finally:
        if driver is not None:
            driver.stop()
        if server is not None:
            server.stop()
        cluster.stop()
    return {
        "freshness_ms": round(max(fresh), 2),
        "freshness_p50_ms": round(statistics.median(fresh), 2),
        "gone_ms": round(max(gone), 2),
        "freshness_samples": samples,
        "freshness_source": "a real master and agent, a real corral dns",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10000, help="tasks known (default 10000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="of load (default 10)")
    parser.add_argument("--window", type=int, default=16, help="queries in flight (default 16)")
    parser.add_argument("--fresh-tasks", type=int, default=20, help="freshness samples")
    parser.add_argument(
        "--churn",
        type=float,
        default=100.0,
        help="tasks replaced per second in a third phase (default 100; 0: no such phase)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="2 s measured (and 2 s of churn), 3 freshness samples"
    )
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.fresh_tasks = 2.0, 3
    result = throughput(args.tasks, args.seconds, args.window, args.churn)
    result.update(freshness(args.fresh_tasks))
    result["cpus"] = os.cpu_count()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
