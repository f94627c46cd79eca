"""The services scheduler at scale: one real master, 20,000 simulated agents, a real
``corral services``, and Marathon's REST API driven as a client would (issue 15).

The master runs in its own OS process and the simulated agents in ``--hosts`` more
(``benchmarks/cluster.py``'s ``Master`` and ``benchmarks/sim/agents.py``, whose agents report a
health-checked task healthy right after TASK_RUNNING: the "simulated health result");
``corral services`` runs in another (``launch_services``), given the master's pid so that its
driver does not read ``/master/state`` of 20,000 agents to find it. Tasks are ``sleep inf``
with a MESOS_HTTP health check: they run until killed. Every process is stopped by its pid.

Phases, in order (progress on stderr; the last stdout line is one JSON object):

1. Deploy ``/bench/big`` with ``--instances`` (10,000): ``deploy_running_s`` and
   ``deploy_healthy_s``, from the POST until the app's ``tasksRunning`` / ``tasksHealthy``
   reach the count (polled through the API, which answers only when the scheduler's loop is
   free); ``deploy_running_master_s`` until the master counts them all running (its
   metrics, polled from a thread); ``deploy_post_ms``: how long the POST took to answer;
   ``deploy_longest_poll_s``: the longest an API poll waited for its answer meanwhile.
2. With those tasks running: ``GET /v2/apps?embed=apps.tasks`` and ``GET /v2/tasks``,
   ``--repeats`` times each: median (``apps_embed_tasks_ms``, ``tasks_ms``) and p99.
3. Deploy ``/bench/rolling`` with ``--restart-instances`` (1,000, ``minimumHealthCapacity``
   0.9), then ``POST /v2/apps/bench/rolling/restart``: ``restart_1000_s`` until its deployment
   is gone, ``restart_min_healthy_fraction`` the lowest ``tasksHealthy / instances`` polled
   meanwhile (the scheduler's view, a sample every poll as fast as the API answers;
   ``restart_polls`` says how many).
4. Deploy ``/bench/events`` (``--events-instances``) without subscribers, delete it, deploy
   it again with ``--subscribers`` (100) ``/v2/events`` streams open: the seconds until all
   healthy each time (``deploy_without_subscribers_s``, ``deploy_with_subscribers_s``) and
   the events each subscriber received (median: ``events_per_subscriber``; how many the
   scheduler cut off: ``events_subscribers_cut_off``).
5. Scale ``/bench/big`` to 0 (the other apps deleted first): ``scale_to_zero_s`` until the
   master's ``master/tasks_running`` is 0.

A phase that does not finish within ``--phase-timeout`` is reported in ``errors`` with how far
it got (the figure is null); ``--profile-seconds`` samples ``corral services`` with py-spy
during the big deployment (``profile``: its top functions), ``--profile-gets`` during the
listings (``profile_gets``). ``--quick``: 2,000 agents, 1,000
instances, a 100-instance restart, 10 subscribers; for CI (asserts no speed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from benchmarks.cluster import (
    Master,
    percentile,
    profile_top,
    progress,
    start_profile,
    wait_agents,
)
from benchmarks.sim.agents import AgentHost, AgentSpec
from corral.cli.services import ServicesProcess, launch_services
from libprocess import Launched, LaunchOptions, launch
from master import MasterOptions

KEYS = (
    "agents",
    "instances",
    "deploy_running_s",
    "deploy_healthy_s",
    "apps_embed_tasks_ms",
    "apps_embed_tasks_p99_ms",
    "tasks_ms",
    "tasks_p99_ms",
    "restart_1000_s",
    "restart_min_healthy_fraction",
    "events_subscribers",
    "events_per_subscriber",
    "deploy_with_subscribers_s",
    "deploy_without_subscribers_s",
    "scale_to_zero_s",
    "cpus",
)

HEALTH = {
    "protocol": "MESOS_HTTP",
    "path": "/health",
    "portIndex": 0,
    "gracePeriodSeconds": 300,
    "intervalSeconds": 10,
    "timeoutSeconds": 5,
    "delaySeconds": 0,
    "maxConsecutiveFailures": 3,
}


class PhaseTimeout(Exception):
    """A phase did not finish in time; ``reached`` says how far it got."""

    def __init__(self, what: str, reached: str) -> None:
        super().__init__(f"{what}: {reached}")
        self.reached = reached


class Marathon:
    """The REST API of one ``corral services``."""

    def __init__(self, services: ServicesProcess, poll_timeout: float) -> None:
        self.base = services.url
        # A poll waits while the scheduler's one loop is busy: as long as a phase may take.
        self.poll_timeout = poll_timeout
        self.longest_poll_s = 0.0  # the longest a ``counts`` poll waited for its answer

    def call(self, method: str, path: str, body: Any = None, timeout: float = 60.0) -> Any:
        raw = self.raw(method, path, body, timeout)
        return json.loads(raw) if raw else None

    def raw(self, method: str, path: str, body: Any = None, timeout: float = 60.0) -> bytes:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            raise RuntimeError(f"{method} {path}: {error.code} {error.read()[:500]!r}") from None

    def timed_get(self, path: str) -> tuple[float, Any]:
        """Milliseconds until the answer's last byte is read (as curl's total time: the
        client's own JSON parse is not the server's latency), and the parsed answer."""
        started = time.perf_counter()
        raw = self.raw("GET", path, timeout=120.0)
        took = 1000 * (time.perf_counter() - started)
        return took, json.loads(raw)

    def counts(self, app_id: str) -> dict[str, Any]:
        """The app's counts and deployments (no tasks: cheap to poll)."""
        started = time.monotonic()
        apps = self.call("GET", f"/v2/apps?id={app_id}", timeout=self.poll_timeout)["apps"]
        self.longest_poll_s = max(self.longest_poll_s, time.monotonic() - started)
        for app in apps:
            if app["id"] == app_id:
                return app
        return {"tasksRunning": 0, "tasksHealthy": 0, "tasksStaged": 0, "deployments": []}

    def deployments(self) -> list[dict[str, Any]]:
        return self.call("GET", "/v2/deployments")


def app(app_id: str, instances: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": app_id,
        "cmd": "sleep inf",
        "cpus": 0.01,
        "mem": 8,
        "instances": instances,
        "portDefinitions": [{"port": 0, "name": "http"}],
        "healthChecks": [HEALTH],
        **fields,
    }


def wait_counts(
    api: Marathon, app_id: str, instances: int, timeout: float, what: str, started: float
) -> tuple[float | None, float | None]:
    """Seconds from ``started`` until ``tasksRunning`` and until ``tasksHealthy`` reach
    ``instances`` (progress each second); ``PhaseTimeout`` after ``timeout``."""
    running_at = healthy_at = None
    last_report = 0.0
    while True:
        counts = api.counts(app_id)
        now = time.monotonic()
        if running_at is None and counts["tasksRunning"] >= instances:
            running_at = now - started
        if counts["tasksHealthy"] >= instances:
            healthy_at = now - started
            progress(f"  {what}: all {instances} healthy after {healthy_at:.1f} s")
            return running_at, healthy_at
        reached = (
            f"{counts['tasksStaged']} staged, {counts['tasksRunning']} running, "
            f"{counts['tasksHealthy']} healthy of {instances} after {now - started:.1f} s"
        )
        if now - last_report >= 1.0:
            progress(f"  {what}: {reached}")
            last_report = now
        if now - started > timeout:
            raise PhaseTimeout(what, reached)
        time.sleep(0.1)


def wait_deployment_gone(
    api: Marathon, deployment_id: str, app_id: str, instances: int, timeout: float, what: str
) -> tuple[float, float, int]:
    """Seconds until the deployment is gone, the lowest healthy fraction polled, and how
    many polls (each answers once the scheduler's loop is free)."""
    started = time.monotonic()
    lowest = 1.0
    last_report = 0.0
    polls = 0
    while True:
        counts = api.counts(app_id)
        polls += 1
        lowest = min(lowest, counts["tasksHealthy"] / instances)
        held = {d["id"] for d in counts["deployments"]}
        now = time.monotonic()
        if deployment_id not in held:
            progress(f"  {what}: done after {now - started:.1f} s, lowest healthy {lowest:.3f}")
            return now - started, lowest, polls
        reached = (
            f"{counts['tasksRunning']} running, {counts['tasksHealthy']} healthy after "
            f"{now - started:.1f} s, lowest healthy {lowest:.3f}"
        )
        if now - last_report >= 1.0:
            progress(f"  {what}: {reached}")
            last_report = now
        if now - started > timeout:
            raise PhaseTimeout(what, reached)
        time.sleep(0.02)


def wait_master_tasks(master: Master, count: int, timeout: float, what: str) -> float:
    """Seconds until the master's ``master/tasks_running`` is ``count``."""
    started = time.monotonic()
    last_report = 0.0
    while True:
        running = int(master.metrics().get("master/tasks_running", 0))
        now = time.monotonic()
        if running == count:
            progress(f"  {what}: master has {running} running tasks after {now - started:.1f} s")
            return now - started
        if now - last_report >= 1.0:
            progress(f"  {what}: master has {running} running tasks after {now - started:.1f} s")
            last_report = now
        if now - started > timeout:
            raise PhaseTimeout(what, f"the master still has {running} running tasks")
        time.sleep(0.2)


def delete_app(api: Marathon, app_id: str, timeout: float) -> None:
    """DELETE the app and wait until it is gone from ``/v2/apps``."""
    api.call("DELETE", f"/v2/apps{app_id}?force=true")
    deadline = time.monotonic() + timeout
    while any(a["id"] == app_id for a in api.call("GET", f"/v2/apps?id={app_id}")["apps"]):
        if time.monotonic() > deadline:
            raise PhaseTimeout(f"delete {app_id}", "still listed")
        time.sleep(0.2)


class Subscribers:
    """``count`` ``/v2/events`` streams on one asyncio loop in a thread, counting events."""

    def __init__(self, url: str, count: int) -> None:
        self.url = url + "/v2/events"
        self.events = [0] * count
        self.ended = [False] * count  # the stream ended before we closed it: cut off
        self.attached = 0
        self.errors: list[str] = []  # what a stream failed with (not a cut-off: that ends it)
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._run(),))
        self.stopping: asyncio.Event | None = None

    def start(self, timeout: float = 60.0) -> None:
        self.thread.start()
        if not self.ready.wait(timeout):
            raise PhaseTimeout("subscribing", f"{self.attached} of {len(self.events)} attached")

    async def _run(self) -> None:
        self.stopping = asyncio.Event()
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            tasks = [asyncio.create_task(self._one(session, i)) for i in range(len(self.events))]
            await self.stopping.wait()
            for task in tasks:
                task.cancel()
            for outcome in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(outcome, Exception) and not isinstance(
                    outcome, asyncio.CancelledError
                ):
                    self.errors.append(repr(outcome))

    async def _one(self, session: aiohttp.ClientSession, index: int) -> None:
        headers = {"Accept": "text/event-stream"}
        async with session.get(self.url, headers=headers) as response:
            if response.status != 200:
                raise RuntimeError(f"/v2/events answered {response.status}")
            attached = False
            async for line in response.content:
                if not line.startswith(b"event:"):
                    continue
                if not attached and b"event_stream_attached" in line:
                    attached = True
                    self.attached += 1
                    if self.attached == len(self.events):
                        self.ready.set()
                    continue
                self.events[index] += 1
        self.ended[index] = True

    def stop(self) -> None:
        if self.stopping is not None:
            self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(30)


class MasterRunning(threading.Thread):
    """When the master first counts ``count`` running tasks: seen from the master, whatever
    the scheduler's API (which answers from the scheduler's one loop) keeps waiting for."""

    def __init__(self, master: Master, count: int, started: float) -> None:
        super().__init__(daemon=True)
        self.master, self.count, self.started = master, count, started
        self.seconds: float | None = None
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            with contextlib.suppress(OSError):
                if self.master.metrics().get("master/tasks_running", 0) >= self.count:
                    self.seconds = time.monotonic() - self.started
                    return
            self.done.wait(0.1)


def big_deploy(args: argparse.Namespace, api: Marathon, master: Master, result: dict,
               profile_pid: int, out: Path) -> None:  # fmt: skip
    progress(f"deploy /bench/big: {args.instances} instances")
    spy = None
    if args.profile_seconds > 0:
        spy = start_profile(profile_pid, args.profile_seconds, out / "services.pyspy")
    started = time.monotonic()
    watch = MasterRunning(master, args.instances, started)
    api.longest_poll_s = 0.0
    watch.start()
    api.call("POST", "/v2/apps", app("/bench/big", args.instances))
    result["deploy_post_ms"] = round(1000 * (time.monotonic() - started), 1)
    try:
        running, healthy = wait_counts(
            api, "/bench/big", args.instances, args.phase_timeout, "deploy", started
        )
        result["deploy_running_s"] = round(running, 2) if running is not None else None
        result["deploy_healthy_s"] = round(healthy, 2) if healthy is not None else None
    finally:
        result["deploy_longest_poll_s"] = round(api.longest_poll_s, 2)
        watch.done.set()
        watch.join(5)
        if watch.seconds is not None:
            result["deploy_running_master_s"] = round(watch.seconds, 2)
        if spy is not None:
            spy.wait(timeout=args.profile_seconds + 60)
            if (out / "services.pyspy").exists():
                result["profile"] = profile_top(out / "services.pyspy")


def big_gets(args: argparse.Namespace, api: Marathon, result: dict, profile_pid: int,
             out: Path) -> None:  # fmt: skip
    progress(f"GET with {args.instances} tasks, {args.repeats} times each")
    spy = None
    if args.profile_gets > 0:
        spy = start_profile(profile_pid, args.profile_gets, out / "services-gets.pyspy")
    for key, path, count in (
        ("apps_embed_tasks", "/v2/apps?embed=apps.tasks", lambda b: len(b["apps"][0]["tasks"])),
        ("tasks", "/v2/tasks", lambda b: len(b["tasks"])),
    ):
        times = []
        for _ in range(args.repeats):
            elapsed, body = api.timed_get(path)
            if count(body) < args.instances:
                raise RuntimeError(f"GET {path} listed {count(body)} tasks, not {args.instances}")
            times.append(elapsed)
        result[f"{key}_ms"] = round(statistics.median(times), 1)
        result[f"{key}_p99_ms"] = round(percentile(times, 0.99), 1)
        progress(f"  GET {path}: median {result[f'{key}_ms']} ms, p99 {result[f'{key}_p99_ms']}")
    if spy is not None:  # the GETs go on (uncounted) until the profile is taken
        paths = ("/v2/apps?embed=apps.tasks", "/v2/tasks")
        while spy.poll() is None:
            for path in paths:
                api.timed_get(path)
        if (out / "services-gets.pyspy").exists():
            result["profile_gets"] = profile_top(out / "services-gets.pyspy")


def rolling_restart(args: argparse.Namespace, api: Marathon, result: dict) -> None:
    n = args.restart_instances
    progress(f"rolling restart: /bench/rolling with {n} instances, minimumHealthCapacity 0.9")
    strategy = {"minimumHealthCapacity": 0.9, "maximumOverCapacity": 0.1}
    started = time.monotonic()
    api.call("POST", "/v2/apps", app("/bench/rolling", n, upgradeStrategy=strategy))
    wait_counts(api, "/bench/rolling", n, args.phase_timeout, "restart app deploy", started)
    while api.counts("/bench/rolling")["deployments"]:
        time.sleep(0.1)  # its deployment ends once all are ready
    answer = api.call("POST", "/v2/apps/bench/rolling/restart")
    seconds, lowest, polls = wait_deployment_gone(
        api, answer["deploymentId"], "/bench/rolling", n, args.phase_timeout, "restart"
    )
    result["restart_1000_s"] = round(seconds, 2)
    result["restart_min_healthy_fraction"] = round(lowest, 4)
    result["restart_polls"] = polls
    delete_app(api, "/bench/rolling", args.phase_timeout)


def events_phase(args: argparse.Namespace, api: Marathon, services: ServicesProcess,
                 result: dict) -> None:  # fmt: skip
    n = args.events_instances
    result["events_subscribers"] = args.subscribers
    for with_subscribers in (False, True):
        label = f"{args.subscribers} subscribers" if with_subscribers else "no subscribers"
        progress(f"deploy /bench/events: {n} instances, {label}")
        subscribers = None
        if with_subscribers:
            subscribers = Subscribers(services.url, args.subscribers)
            subscribers.start()
        try:
            started = time.monotonic()
            api.call("POST", "/v2/apps", app("/bench/events", n))
            _, healthy = wait_counts(api, "/bench/events", n, args.phase_timeout, label, started)
            key = "with" if with_subscribers else "without"
            result[f"deploy_{key}_subscribers_s"] = round(healthy, 2) if healthy else None
            while api.counts("/bench/events")["deployments"]:
                time.sleep(0.1)
            time.sleep(0.5)  # the last events reach the streams
        finally:
            if subscribers is not None:
                subscribers.stop()
        if subscribers is not None:
            result["events_per_subscriber"] = statistics.median(subscribers.events)
            result["events_per_subscriber_min"] = min(subscribers.events)
            result["events_subscribers_cut_off"] = sum(subscribers.ended)
            if subscribers.errors:
                raise RuntimeError(f"/v2/events streams failed: {subscribers.errors[:3]}")
            progress(
                f"  events per subscriber: median {result['events_per_subscriber']}, "
                f"min {min(subscribers.events)}, cut off {sum(subscribers.ended)}"
            )
        delete_app(api, "/bench/events", args.phase_timeout)


def scale_to_zero(args: argparse.Namespace, api: Marathon, master: Master, result: dict) -> None:
    for other in ("/bench/rolling", "/bench/events"):  # left by a phase that failed
        if any(a["id"] == other for a in api.call("GET", f"/v2/apps?id={other}")["apps"]):
            delete_app(api, other, args.phase_timeout)
    wait_master_tasks(master, args.instances, args.phase_timeout, "others gone")
    progress(f"scale /bench/big {args.instances} -> 0")
    started = time.monotonic()
    api.call("PUT", "/v2/apps/bench/big", {"instances": 0})
    wait_master_tasks(master, 0, args.phase_timeout, "scale to 0")
    result["scale_to_zero_s"] = round(time.monotonic() - started, 2)


def run(args: argparse.Namespace) -> dict[str, Any]:
    bench_start = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="corral-services-bench-"))
    out = Path(args.out) if args.out else work
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = dict.fromkeys(KEYS)
    result.update(agents=args.agents, instances=args.instances, cpus=os.cpu_count())
    result.update(restart_instances=args.restart_instances, quick=args.quick)
    result["events_subscribers"] = args.subscribers
    errors: list[str] = []
    spec = AgentSpec(resources=args.agent_resources, task_seconds=float("inf"),
                     registration_backoff=args.registration_backoff)  # fmt: skip
    progress(f"master: starting (work directory {work / 'master'})")
    master = Master(work / "master", MasterOptions(), "error")
    hosts: list[Launched] = []
    services: ServicesProcess | None = None
    try:
        progress(f"agents: {args.agents} in {args.hosts} host processes")
        per_host = -(-args.agents // args.hosts)
        for first in range(0, args.agents, per_host):
            count = min(per_host, args.agents - first)
            options = LaunchOptions(host="127.0.0.1", log_level="warning")
            hosts.append(launch(AgentHost, str(master.process.pid), first, count, spec,
                                options=options))  # fmt: skip
        result["register_s"] = round(
            wait_agents(master, args.agents, args.register_timeout, "registering"), 2
        )
        progress("corral services: starting")
        services = launch_services(
            str(master.process.pid), work_dir=work / "services", log_level="warning",
            timeout=60.0,
        )  # fmt: skip
        result["services_pid"] = services.process.pid
        api = Marathon(services, args.phase_timeout)
        phases = (
            ("deploy", lambda: big_deploy(args, api, master, result, services.process.pid, out)),
            ("gets", lambda: big_gets(args, api, result, services.process.pid, out)),
            ("restart", lambda: rolling_restart(args, api, result)),
            ("events", lambda: events_phase(args, api, services, result)),
            ("scale_to_zero", lambda: scale_to_zero(args, api, master, result)),
        )
        for name, phase in phases:
            try:
                phase()
            except (PhaseTimeout, RuntimeError, OSError) as error:
                progress(f"  phase {name} failed: {error}")
                errors.append(f"{name}: {error}")
                if name == "deploy":
                    break  # the rest need the big app running
        result["services_rss_mb"] = _rss_mb(services.process.pid)
    finally:
        if services is not None:
            services.stop()
        for host in hosts:
            host.stop()
        master.process.stop()
        if not args.keep:
            shutil.rmtree(work / "master", ignore_errors=True)
            shutil.rmtree(work / "services", ignore_errors=True)
    result["errors"] = errors
    result["duration_s"] = round(time.monotonic() - bench_start, 1)
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    (out / "services.json").write_text(json.dumps(result, indent=1))
    return result


def _rss_mb(pid: int) -> float | None:
    import psutil

    try:
        return round(psutil.Process(pid).memory_info().rss / 2**20, 1)
    except psutil.Error:
        return None


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=20_000)
    parser.add_argument(
        "--hosts", type=int, default=os.cpu_count() or 2, help="OS processes of simulated agents"
    )
    parser.add_argument("--agent-resources", default=AgentSpec.resources)
    parser.add_argument("--instances", type=int, default=10_000, help="the big app's instances")
    parser.add_argument("--restart-instances", type=int, default=1000)
    parser.add_argument("--events-instances", type=int, default=1000)
    parser.add_argument("--subscribers", type=int, default=100, help="/v2/events streams")
    parser.add_argument("--repeats", type=int, default=20, help="GETs of each listing")
    parser.add_argument("--phase-timeout", type=float, default=600.0, metavar="SECONDS")
    parser.add_argument("--register-timeout", type=float, default=300.0)
    parser.add_argument(
        "--registration-backoff", type=float, default=AgentSpec.registration_backoff
    )
    parser.add_argument(
        "--profile-seconds",
        type=float,
        default=0.0,
        help="py-spy corral services for this long from the big deployment's POST (0: no)",
    )
    parser.add_argument(
        "--profile-gets",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="py-spy corral services for this long from the listings' first GET (0: no)",
    )
    parser.add_argument("--out", help="directory for services.json (and services.pyspy)")
    parser.add_argument("--keep", action="store_true", help="keep the work directories")
    parser.add_argument("--quick", action="store_true", help="2,000 agents, under a minute")
    args = parser.parse_args()
    for name in ("agents", "instances", "restart_instances", "events_instances", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be 1 or more")
    if args.quick:
        args.agents = min(args.agents, 2000)
        args.instances = min(args.instances, 1000)
        args.restart_instances = min(args.restart_instances, 100)
        args.events_instances = min(args.events_instances, 100)
        args.subscribers = min(args.subscribers, 10)
        args.repeats = min(args.repeats, 5)
        args.phase_timeout = min(args.phase_timeout, 60.0)
        args.register_timeout = min(args.register_timeout, 30.0)
        args.registration_backoff = min(args.registration_backoff, 0.5)
    signal.signal(signal.SIGTERM, _terminated)  # run the finally blocks: stop the children
    from libprocess import log as logsetup

    logsetup.configure("error")
    result = run(args)
    print(json.dumps(result))
    return 0 if not result["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
