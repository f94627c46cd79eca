"""Task launch throughput on a local cluster: ACCEPT → TASK_RUNNING → TASK_FINISHED.

A master and ``--agents`` agents run in OS processes of their own (as ``corral local``
starts them); a framework in this process launches ``--tasks`` trivial commands (``true``)
as fast as offers allow, packing each offer (0.01 cpus, 1 MB per task) and declining what is
left for no time. Per task it records when the ACCEPT carrying it was sent, and when its
TASK_RUNNING and TASK_FINISHED updates reached the scheduler.

Figures: ``running_per_s`` and ``finished_per_s`` (tasks over the span from the first ACCEPT
to the last RUNNING / FINISHED), ``p50_ms`` / ``p99_ms`` (ACCEPT → RUNNING latency), and the
same for FINISHED. Each task is a real process started by the agent's posix containerizer.
The last stdout line is one JSON object; progress goes to stderr. ``--quick`` runs in well
under 30 s.

``--api`` picks the framework: ``native`` (the libprocess ``SchedulerDriver``, the default),
``http`` (a small Mesos v1 scheduler HTTP client of our own: aiohttp reads the RecordIO stream
of ``/api/v1/scheduler``, ACCEPT / DECLINE / ACKNOWLEDGE are JSON POSTs), or ``both`` at once
on the same cluster, each launching ``--tasks`` tasks. The native figures keep their keys; the
HTTP ones are the same names prefixed ``http_``; ``api`` says which ran.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import statistics
import sys
import threading
import time

import aiohttp

from corral.cli.cluster import start_local_cluster, wait_for_agents
from corral.ids import TaskID
from corral.protocol import CommandInfo, Filters, FrameworkInfo, Offer, TaskInfo, json_compatible
from corral.resources import Resources
from corral.scheduler import Scheduler, SchedulerDriver
from corral.task_states import TaskState, is_terminal
from corral.v1.recordio import Decoder
from master import MasterOptions

TASK = Resources.parse("cpus:0.01;mem:1")
AGENT = "cpus:64;mem:65536;disk:65536;ports:[31000-32000]"


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Timings:
    """When each task was accepted, RUNNING and FINISHED (perf_counter seconds); thread-safe."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.launched = 0
        self.accepted_at: dict[str, float] = {}
        self.running_at: dict[str, float] = {}
        self.finished_at: dict[str, float] = {}
        self.failed: dict[str, str] = {}
        self.done = threading.Event()
        self.lock = threading.Lock()

    def pack(self, offer: Offer) -> list[TaskInfo]:
        """As many new tasks as fit in ``offer`` and are still to launch, accepted now."""
        left = offer.resources.unallocated()
        tasks = []
        while self.launched < self.total and left.contains(TASK):
            task_id = TaskID(f"t{self.launched}")
            self.launched += 1
            left = left - TASK
            tasks.append(
                TaskInfo(
                    name=str(task_id),
                    task_id=task_id,
                    agent_id=offer.agent_id,
                    resources=TASK,
                    command=CommandInfo(value="true"),
                )
            )
        now = time.perf_counter()
        with self.lock:
            for task in tasks:
                self.accepted_at[str(task.task_id)] = now
        return tasks

    def record(self, task_id: str, state: TaskState, message: str | None) -> None:
        now = time.perf_counter()
        with self.lock:
            if state is TaskState.TASK_RUNNING:
                self.running_at.setdefault(task_id, now)
            elif state is TaskState.TASK_FINISHED:
                self.finished_at.setdefault(task_id, now)
            elif is_terminal(state):
                self.failed[task_id] = f"{state.name}: {message}"
            if len(self.finished_at) + len(self.failed) >= self.total:
                self.done.set()

    def line(self, api: str) -> str:
        return (
            f"  {api}: {len(self.accepted_at)} accepted, {len(self.running_at)} running, "
            f"{len(self.finished_at)} finished, {len(self.failed)} failed"
        )


class Launcher(Scheduler):
    """The native framework: packs every offer with tasks until ``total`` are launched."""

    def __init__(self, total: int) -> None:
        self.timings = Timings(total)

    def resource_offers(self, driver, offers) -> None:
        for offer in offers:
            tasks = self.timings.pack(offer)
            if tasks:
                driver.launch_tasks([offer.id], tasks, Filters(refuse_seconds=0))
            else:
                driver.decline_offer(offer.id, Filters(refuse_seconds=0))
            if self.timings.launched >= self.timings.total:
                driver.suppress_offers()

    def status_update(self, driver, status) -> None:
        self.timings.record(str(status.task_id), status.state, status.message)


class HttpLauncher:
    """The same framework on the Mesos v1 scheduler HTTP API, with aiohttp.

    One SUBSCRIBE connection carries the RecordIO event stream; every call (ACCEPT, DECLINE,
    ACKNOWLEDGE, SUPPRESS, TEARDOWN) is its own POST with the ``Mesos-Stream-Id``, sent in the
    background so that reading the stream never waits for an answer. A call not answered 202
    is counted in ``refused`` (with the first few answers kept), as a real client would log it.
    """

    def __init__(self, total: int, master: str) -> None:
        self.timings = Timings(total)
        self.url = f"http://{master}/api/v1/scheduler"
        self.framework_id: dict | None = None
        self.stream_id = ""
        self.calls: set[asyncio.Task] = set()
        self.refused: list[str] = []
        self.session: aiohttp.ClientSession | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stream: asyncio.Task | None = None  # reads the SUBSCRIBE response

    def run(self, timeout: float) -> None:
        """Subscribe, launch, tear down; in the calling thread, on an event loop of its own."""
        asyncio.run(self._run(timeout))

    def stop(self) -> None:
        """From any thread: stop reading the stream now (then TEARDOWN)."""
        if self.loop is not None and self.stream is not None:
            # RuntimeError: the loop has closed, the framework has already stopped.
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.stream.cancel)

    async def _run(self, timeout: float) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
            self.session = session
            self.loop = asyncio.get_running_loop()
            self.stream = self.loop.create_task(self._subscribed())
            try:
                await asyncio.wait_for(self.stream, timeout)
            except TimeoutError:
                progress(f"  http: giving up after {timeout:g} s")
            except asyncio.CancelledError:
                pass  # stop(): the benchmark is over
            except (aiohttp.ClientError, RuntimeError, KeyError, ValueError) as error:
                self.refused.append(f"SUBSCRIBE: {error!r}")
            finally:
                if self.framework_id is not None:
                    await self._call({"type": "TEARDOWN"})
                if self.calls:
                    await asyncio.wait(self.calls, timeout=10)

    async def _subscribed(self) -> None:
        info = {"user": getpass.getuser(), "name": "launch-bench-http"}
        body = {"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        async with self.session.post(self.url, json=body, headers=headers) as response:
            if response.status != 200:
                raise RuntimeError(f"SUBSCRIBE answered {response.status}: {await response.text()}")
            self.stream_id = response.headers["Mesos-Stream-Id"]
            decoder = Decoder()
            async for chunk in response.content.iter_any():
                for record in decoder.feed(chunk):
                    self._event(json.loads(record))
                if self.timings.done.is_set():
                    return

    def _event(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "SUBSCRIBED":
            self.framework_id = event["subscribed"]["framework_id"]
        elif kind == "OFFERS":
            for data in event["offers"].get("offers", []):
                self._offer(data)
        elif kind == "UPDATE":
            status = event["update"]["status"]
            state = TaskState(status["state"])
            self.timings.record(status["task_id"]["value"], state, status.get("message"))
            if "uuid" in status:
                acknowledge = {k: status[k] for k in ("agent_id", "task_id", "uuid")}
                self._send({"type": "ACKNOWLEDGE", "acknowledge": acknowledge})
        elif kind == "ERROR":
            self.refused.append(f"ERROR event: {event.get('error', {}).get('message')}")

    def _offer(self, data: dict) -> None:
        tasks = self.timings.pack(Offer.from_wire(data))
        refuse = {"refuse_seconds": 0}
        if tasks:
            launch = {"task_infos": [json_compatible(task.to_wire()) for task in tasks]}
            accept = {
                "offer_ids": [data["id"]],
                "operations": [{"type": "LAUNCH", "launch": launch}],
                "filters": refuse,
            }
            self._send({"type": "ACCEPT", "accept": accept})
        else:
            self._send(
                {"type": "DECLINE", "decline": {"offer_ids": [data["id"]], "filters": refuse}}
            )
        if self.timings.launched >= self.timings.total:
            self._send({"type": "SUPPRESS"})

    def _send(self, call: dict) -> None:
        task = asyncio.get_running_loop().create_task(self._call(call))
        self.calls.add(task)
        task.add_done_callback(self.calls.discard)

    async def _call(self, call: dict) -> None:
        call = {"framework_id": self.framework_id, **call}
        headers = {"Content-Type": "application/json", "Mesos-Stream-Id": self.stream_id}
        try:
            async with self.session.post(self.url, json=call, headers=headers) as response:
                if response.status != 202:
                    text = await response.text()
                    self.refused.append(f"{call['type']}: {response.status} {text[:200]}")
        except aiohttp.ClientError as error:
            self.refused.append(f"{call['type']}: {error!r}")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def figures(timings: Timings, prefix: str) -> dict:
    """The launch figures of one framework, keys prefixed with ``prefix``."""
    first = min(timings.accepted_at.values(), default=0.0)
    running = [timings.running_at[t] - timings.accepted_at[t] for t in timings.running_at]
    finished = [timings.finished_at[t] - timings.accepted_at[t] for t in timings.finished_at]
    span_running = max(timings.running_at.values(), default=first) - first
    span_finished = max(timings.finished_at.values(), default=first) - first
    values = {
        "running": len(running),
        "finished": len(finished),
        "failed": len(timings.failed),
        "running_per_s": round(len(running) / span_running, 1) if span_running else None,
        "finished_per_s": round(len(finished) / span_finished, 1) if span_finished else None,
        "p50_ms": round(1000 * statistics.median(running), 1) if running else None,
        "p99_ms": round(1000 * percentile(running, 0.99), 1) if running else None,
        "finished_p50_ms": round(1000 * statistics.median(finished), 1) if finished else None,
        "finished_p99_ms": round(1000 * percentile(finished, 0.99), 1) if finished else None,
        "errors": dict(list(timings.failed.items())[:5]),
    }
    return {prefix + key: value for key, value in values.items()}


def run(tasks: int, agents: int, timeout: float, api: str = "native") -> dict:
    progress(f"starting a local cluster: a master and {agents} agents ({AGENT} each)")
    cluster = start_local_cluster(
        agents, resources=AGENT, master_options=MasterOptions(allocation_interval=0.1)
    )
    native = Launcher(tasks) if api in ("native", "both") else None
    http = HttpLauncher(tasks, cluster.http_address) if api in ("http", "both") else None
    try:
        wait_for_agents(cluster.http_address, agents)
        started = time.perf_counter()
        driver = None
        if native is not None:
            driver = SchedulerDriver(
                native,
                FrameworkInfo(user=getpass.getuser(), name="launch-bench"),
                cluster.http_address,
            )
            driver.start()
        http_thread = None
        if http is not None:
            http_thread = threading.Thread(target=http.run, args=(timeout,), name="http-bench")
            http_thread.start()
        running = {"native": native, "http": http}
        launchers = {name: each.timings for name, each in running.items() if each is not None}
        deadline = started + timeout
        waiting = list(launchers.values())
        while waiting:
            waiting[0].done.wait(1.0)
            waiting = [timings for timings in waiting if not timings.done.is_set()]
            for name, timings in launchers.items():
                progress(timings.line(name))
            if http is not None and http.refused:
                progress(f"  http: {len(http.refused)} calls refused, first: {http.refused[0]}")
            if http_thread is not None and not http_thread.is_alive():
                waiting = [timings for timings in waiting if timings is not http.timings]
            if time.perf_counter() > deadline:
                progress(f"  giving up after {timeout:g} s")
                break
        if driver is not None:
            driver.stop()
        if http_thread is not None:
            http.stop()
            http_thread.join(15)
    finally:
        cluster.stop()
    result: dict = {"api": api, "tasks": tasks, "agents": agents}
    if native is not None:
        result.update(figures(native.timings, ""))
    if http is not None:
        result.update(figures(http.timings, "http_"))
        result["http_refused_calls"] = len(http.refused)
        result["http_refused"] = http.refused[:5]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument(
        "--api",
        choices=("native", "http", "both"),
        default="native",
        help="the framework: native driver, Mesos v1 HTTP API, or both at once",
    )
    parser.add_argument("--quick", action="store_true", help="300 tasks, under 30 s")
    args = parser.parse_args()
    if args.quick:
        args.tasks = min(args.tasks, 300)
        args.timeout = min(args.timeout, 25.0)
    from libprocess import log as logsetup

    logsetup.configure("error")
    result = run(args.tasks, args.agents, args.timeout, args.api)
    result["quick"] = args.quick
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result))
    finished = [result[key] for key in ("finished", "http_finished") if key in result]
    return 0 if all(count == args.tasks for count in finished) else 1


if __name__ == "__main__":
    sys.exit(main())
