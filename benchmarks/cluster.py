"""Whole-cluster scale: 20,000 simulated agents and 1-100 frameworks against one real master.

The master runs in its own OS process (``libprocess.launch(MasterProcess, ...)``, as
``corral local`` starts it); ``--hosts`` OS processes (one per core by default) each run
``--agents / hosts`` simulated agents (``benchmarks/sim/agents.py``: real agent actors on the
real protocol, with a fake executor), and the frameworks run in a process of their own per
phase (``benchmarks/sim/frameworks.py``: native ``SchedulerDriver``s packing every offer).
Every process is stopped by its pid at the end (SIGTERM to the benchmark stops them too).

What it measures, in order (progress on stderr; the last stdout line is one JSON object, also
written to ``<out>/cluster.json`` beside the plot ``<out>/cluster.png``):

1. ``register_s``: from launching the agent hosts until the master counts every agent.
2. Launch phases with 1, 10 and 100 frameworks (``frameworks`` in the JSON, keyed by count),
   which launch ``--rate`` tasks per second together (an open-loop load at the goal's 2,000/s;
   0: as fast as offers allow): ``launches_per_s`` (TASK_RUNNING received over the span from
   the first ACCEPT to the last RUNNING), ``updates_per_s`` (every update the frameworks
   received, over the same kind of span), ``p50_launch_ms`` / ``p99_launch_ms`` (ACCEPT sent
   -> TASK_RUNNING received), ``cycle_median_s`` (the master's
   ``allocator/mesos/allocation_run_ms/p50``), the master's CPU over the phase and peak RSS.
   The top-level launch figures are the 10-framework phase's (the largest phase run, when 10
   is not). ``master_cpu_us_per_launch``: the master's CPU time over the phase (its process and
   its allocator child's) divided by the launches that reached RUNNING, a figure the
   simulators sharing the cores do not change; ``master_gc_s``: how much of that CPU time
   went to Python's garbage collector (the master's ``libprocess/gc_seconds``);
   ``frameworks_cpu_percent`` / ``agents_cpu_percent``: the CPU the frameworks process and the
   agent hosts took over the phase (100 = one core), what the master shares the cores with.
   ``fixed_rate``: the same figures for 10 frameworks at an offered load the master should
   serve (``--fixed-rate``, 1,000 tasks/s), for the latency goal.
3. Hold: launch ``--hold-tasks`` tasks that run until torn down, then measure the master's
   RSS and ``GET /master/state`` with them all running (``hold``; ``state_ms`` is this one,
   the mid-run figure: the master's first, so with ``--state-fork-threshold`` a forked child
   builds it while it waits), then a second GET right after it (``hold_state_poll_ms``: a
   poll; with forks answered from the last build while a child builds the next;
   master/state_snapshot.py). ``--state-in-phases`` also times one GET halfway through each
   launch phase.
4. ``state_ms_agents``: ``GET /master/state`` once the hold's tasks are torn down.
   ``reregister_s``: SIGKILL the master, start it again on the same ports and work directory,
   time until every agent has re-registered.
5. ``allocator_process``: the 10-framework phase again after restarting the master with
   ``MasterOptions(allocator_process=True)``, beside the same phase with the allocator in the
   master's process (when ``MasterOptions`` has no such field the comparison is skipped, said).

``--profile-seconds N`` samples the master with py-spy (if installed) for N seconds of the
10-framework phase: ``profile`` has the top functions by own and by inclusive samples.
``master_rss_mb`` is the peak over the run (master plus its allocator child, if any).
``--quick``: 2,000 agents, short phases at 500 tasks/s, no hold; for CI (checks that it works,
asserts no speed).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil

from benchmarks.sim.agents import AgentHost, AgentSpec
from benchmarks.sim.frameworks import FrameworkFleet, FrameworkPlan
from corral.cli.cluster import free_port
from libprocess import Launched, LaunchOptions, launch
from master import MasterOptions, MasterProcess

RUN_KEY = "allocator/mesos/allocation_run_ms/p50"


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def get_json(url: str, timeout: float = 30.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


class Master:
    """The master's OS process: launched, killed, restarted on the same ports and work dir."""

    def __init__(self, work_dir: Path, options: MasterOptions, log_level: str) -> None:
        self.work_dir = work_dir
        self.options = options
        self.launch_options = LaunchOptions(
            host="127.0.0.1",
            port=free_port("127.0.0.1"),
            http_port=free_port("127.0.0.1"),
            log_level=log_level,
        )
        self.process: Launched = self._launch()

    def _launch(self) -> Launched:
        return launch(MasterProcess, str(self.work_dir), self.options, options=self.launch_options)

    @property
    def http(self) -> str:
        assert self.process.http_address is not None
        return self.process.http_address

    @property
    def psutil(self) -> psutil.Process:
        return psutil.Process(self.process.os_pid)

    def restart(self, options: MasterOptions | None = None, kill: bool = True) -> None:
        """SIGKILL (a crash) or SIGTERM, then start again with ``options`` (default: same)."""
        if kill:
            self.process.kill()
        else:
            self.process.stop()
        self.options = options or self.options
        self.process = self._launch()

    def metrics(self) -> dict[str, float]:
        return get_json(f"http://{self.http}/metrics/snapshot")

    def allocator_metrics(self, allocator_http: str | None) -> dict[str, float]:
        """Where the allocator's metrics are: the master's, or its own process's server."""
        if allocator_http:
            return get_json(f"http://{allocator_http}/metrics/snapshot")
        return self.metrics()

    def gc_seconds(self, allocator_http: str | None) -> float:
        """Seconds the master (and its allocator child) spent in Python's garbage collector."""
        total = self.metrics().get("libprocess/gc_seconds", 0.0)
        if allocator_http:
            total += self.allocator_metrics(allocator_http).get("libprocess/gc_seconds", 0.0)
        return total

    def state_ms(self) -> tuple[float, dict[str, Any]]:
        started = time.perf_counter()
        state = get_json(f"http://{self.http}/master/state", timeout=120.0)
        return round(1000 * (time.perf_counter() - started), 1), state

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the master has used, with its children's: its allocator
        child and the children that build its state (master/state_fork.py), those running
        and those that ended."""
        process = self.psutil
        times = process.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in process.children(recursive=True):
            with contextlib.suppress(psutil.Error):  # a state build may end meanwhile
                times = child.cpu_times()
                total += times.user + times.system
        return total

    def rss_mb(self) -> float:
        """The master's resident memory, with its allocator child when it has one (not a
        forked state build's: its pages are the master's, shared until either writes)."""
        process = self.psutil
        total = process.memory_info().rss
        command = process.cmdline()
        for child in process.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if child.cmdline() != command:
                    total += child.memory_info().rss
        return round(total / 2**20, 1)


def wait_agents(master: Master, count: int, timeout: float, what: str) -> float:
    """Seconds until the master counts ``count`` registered agents (progress on stderr)."""
    started = time.monotonic()
    last_report = 0.0
    seen = 0
    while True:
        now = time.monotonic()
        try:
            seen = int(master.metrics().get("master/agents_active", 0))
        except OSError:
            seen = 0  # the master is still starting
        if seen >= count:
            elapsed = time.monotonic() - started
            progress(f"  {what}: {seen}/{count} agents after {elapsed:.1f} s")
            return elapsed
        if now - last_report >= 1.0:
            progress(f"  {what}: {seen}/{count} agents after {now - started:.1f} s")
            last_report = now
        if now - started > timeout:
            raise TimeoutError(f"{what}: only {seen} of {count} agents within {timeout:g} s")
        time.sleep(0.25)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def start_profile(pid: int, seconds: float, out: Path) -> subprocess.Popen | None:
    """py-spy on the master (and its allocator child) for ``seconds``, collapsed stacks."""
    binary = py_spy()
    if binary is None:
        return None
    command = [binary, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "100",
               "-f", "raw", "-o", str(out), "--nonblocking", "--subprocesses"]  # fmt: skip
    errors = out.with_suffix(".stderr").open("w")
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)


def profile_top(path: Path, count: int = 15) -> dict[str, list[dict[str, Any]]]:
    """The functions (lines merged) with the most samples of their own (innermost frame) and
    the most samples inclusive (on the stack): where the master's time goes, and for what."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not number.isdigit():
            continue
        samples = int(number)
        total += samples
        frames = [_function(frame) for frame in stack.split(";") if frame]
        if not frames:
            continue
        own[frames[-1]] = own.get(frames[-1], 0) + samples
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + samples

    def top(table: dict[str, int]) -> list[dict[str, Any]]:
        # Frames on (nearly) every stack are the process's main and event loop: no news.
        ranked = [item for item in table.items() if item[1] < 0.9 * total]
        ranked = sorted(ranked, key=lambda item: -item[1])[:count]
        return [{"function": name, "percent": round(100 * n / total, 1)} for name, n in ranked]

    return {"samples": total, "own": top(own), "inclusive": top(inclusive)}


def _function(frame: str) -> str:
    """``name (path:line)`` -> ``name (path)``."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rpartition(':')[0] or where.rstrip(')')})"


class CpuShare:
    """The CPU a set of processes uses from now on, as a percentage of one core."""

    def __init__(self, pids: tuple[int, ...]) -> None:
        self.processes = [psutil.Process(pid) for pid in pids]
        self.started = time.monotonic()
        self.before = self._seconds()

    def _seconds(self) -> float:
        total = 0.0
        for process in self.processes:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def percent(self) -> float | None:
        if not self.processes:
            return None
        elapsed = time.monotonic() - self.started
        return round(100 * (self._seconds() - self.before) / elapsed, 1) if elapsed else None


def run_phase(
    master: Master,
    plan: FrameworkPlan,
    timeline: list[tuple[float, float]],
    allocator_http: str | None = None,
    profile: tuple[float, Path] | None = None,
    measure_state: bool = False,
    agent_hosts: tuple[int, ...] = (),
) -> dict[str, Any]:
    """One launch phase; its figures. ``timeline`` gets (RUNNING time, latency) samples;
    ``agent_hosts`` are the simulated agents' OS pids, whose CPU share is reported."""
    label = f"{plan.count} framework{'s' if plan.count > 1 else ''}"
    progress(f"phase: {label}, {plan.seconds:g} s of launching" + (", hold" if plan.hold else ""))
    # The drivers get the master's pid: finding it from its HTTP address reads all of
    # /master/state, which at 20,000 agents takes longer than discovery waits (5 s).
    fleet = FrameworkFleet(str(master.process.pid), plan)
    result: dict[str, Any] = {"frameworks": plan.count}
    spy = None
    try:
        kind, report = fleet.receive(plan.register_timeout + 30)
        if kind != "started" or report["registered"] < plan.count:
            raise RuntimeError(f"{label}: only {report.get('registered')} registered")
        master_ps = master.psutil
        master_ps.cpu_percent(None)
        cpu_before = master.cpu_seconds()
        # What the others sharing the cores take: the frameworks process and the agent hosts.
        peers = {"frameworks": CpuShare((fleet.os_pid,)), "agents": CpuShare(agent_hosts)}
        gc_before = master.gc_seconds(allocator_http)
        rss_peak = master.rss_mb()
        if profile is not None:
            spy = start_profile(master.process.os_pid, *profile)
        halfway = report["at"] + plan.seconds / 2
        while True:
            kind, report = fleet.receive(plan.seconds + 120)
            rss_peak = max(rss_peak, master.rss_mb())
            if kind == "progress":
                progress(f"  {label}: {report['running']} tasks RUNNING")
                if measure_state and "state_ms" not in result and report["at"] >= halfway:
                    result["state_ms"], _ = master.state_ms()
            elif kind == "holding":
                progress(f"  {label}: holding {report['running']} RUNNING tasks")
                result["hold_running"] = report["running"]
                result["hold_rss_mb"] = master.rss_mb()
                result["hold_state_ms"], state = master.state_ms()
                result["hold_state_tasks"] = len(state.get("tasks", []))
                state = {}  # ~100 MB parsed: not held while the poll is read
                # A poll right after: what a dashboard polling the master sees.
                result["hold_state_poll_ms"], _ = master.state_ms()
                fleet.release()
            elif kind == "done":
                break
        result["master_cpu_percent"] = round(master_ps.cpu_percent(None), 1)
        result["master_cpu_s"] = round(master.cpu_seconds() - cpu_before, 2)
        for name, share in peers.items():
            result[f"{name}_cpu_percent"] = share.percent()
        result["master_gc_s"] = round(master.gc_seconds(allocator_http) - gc_before, 2)
        result["master_rss_mb"] = rss_peak
        try:
            metrics = master.allocator_metrics(allocator_http)
            run_ms = metrics.get(RUN_KEY)
            result["cycle_median_s"] = round(run_ms / 1000, 4) if run_ms is not None else None
            result["allocation_runs"] = metrics.get("allocator/mesos/allocation_runs")
        except OSError as error:
            result["cycle_median_s"] = None
            result["metrics_error"] = repr(error)
    finally:
        fleet.stop()
        if spy is not None:
            spy.wait(timeout=profile[0] + 30 if profile else 30)
    result.update(launch_figures(report))
    # The master's own cost of a launch, whatever the simulators sharing the cores take.
    running = result["running"]
    result["master_cpu_us_per_launch"] = (
        round(1e6 * result["master_cpu_s"] / running)
        if running and "master_cpu_s" in result
        else None
    )
    timeline.extend(zip(report["running_at"], report["latency"], strict=True))
    progress(
        f"  {label}: {result['running']} RUNNING, {result['launches_per_s']} launches/s, "
        f"p50 {result['p50_launch_ms']} ms, p99 {result['p99_launch_ms']} ms, "
        f"cycle p50 {result.get('cycle_median_s')} s, master CPU {result['master_cpu_percent']}%, "
        f"{result['master_cpu_us_per_launch']} us of master CPU per launch; frameworks "
        f"{result.get('frameworks_cpu_percent')}%, agents {result.get('agents_cpu_percent')}%"
    )
    if profile is not None and profile[1].exists():
        result["profile"] = profile_top(profile[1])
    return result


def launch_figures(report: dict[str, Any]) -> dict[str, Any]:
    running, latency, updates = report["running_at"], report["latency"], report["updates_at"]
    first = report["first_accept"]
    figures: dict[str, Any] = {
        "accepted": report["accepted"],
        "running": len(running),
        "finished": report["finished"],
        "failed": report["failed"],
        "failed_examples": report["failed_examples"],
    }
    span = (max(running) - first) if running and first is not None else 0.0
    update_span = (max(updates) - first) if updates and first is not None else 0.0
    figures["launches_per_s"] = round(len(running) / span, 1) if span > 0 else None
    # The same over the whole phase, from the frameworks' start: a late first offer counts.
    phase_span = (max(running) - report["started"]) if running else 0.0
    figures["phase_launches_per_s"] = round(len(running) / phase_span, 1) if phase_span else None
    if first is not None:
        figures["first_accept_after_s"] = round(first - report["started"], 2)
    figures["updates_per_s"] = round(len(updates) / update_span, 1) if update_span > 0 else None
    figures["p50_launch_ms"] = round(1000 * statistics.median(latency), 1) if latency else None
    figures["p99_launch_ms"] = round(1000 * percentile(latency, 0.99), 1) if latency else None
    return figures


def plot(timeline: list[tuple[float, float]], marks: list[tuple[float, str]], start: float,
         path: Path) -> str | None:  # fmt: skip
    """Launches per second and p50/p99 ACCEPT -> RUNNING latency per second of the run."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        progress("  no plot: matplotlib is not installed (pip install -e '.[bench]')")
        return None
    buckets: dict[int, list[float]] = {}
    for at, latency in timeline:
        buckets.setdefault(int(at - start), []).append(latency)
    if not buckets:
        return None
    # Every second of the run, NaN where nothing reached RUNNING: no line across the gaps.
    seconds = list(range(min(buckets), max(buckets) + 1))
    nan = float("nan")
    rate = [len(buckets.get(s, ())) for s in seconds]
    p50 = [1000 * statistics.median(buckets[s]) if s in buckets else nan for s in seconds]
    p99 = [1000 * percentile(buckets[s], 0.99) if s in buckets else nan for s in seconds]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    top.bar(seconds, rate, width=1.0, color="tab:blue")
    top.set_ylabel("TASK_RUNNING / s")
    top.set_title("Corral: launches (ACCEPT -> RUNNING) over the run")
    bottom.plot(seconds, p50, label="p50", color="tab:green", marker=".", markersize=3)
    bottom.plot(seconds, p99, label="p99", color="tab:red", marker=".", markersize=3)
    bottom.set_yscale("log")
    bottom.set_ylabel("launch latency, ms")
    bottom.set_xlabel("seconds since the benchmark started")
    bottom.legend()
    for at, text in marks:
        for axis in (top, bottom):
            axis.axvline(at - start, color="grey", linestyle=":", linewidth=1)
        top.text(at - start, max(rate), text, rotation=90, va="top", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return str(path)


def run(args: argparse.Namespace) -> dict[str, Any]:
    bench_start = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="corral-cluster-bench-"))
    out = Path(args.out) if args.out else work
    out.mkdir(parents=True, exist_ok=True)
    log_level = args.master_log_level
    base_options = MasterOptions(
        allocation_interval=args.allocation_interval,
        state_fork_threshold=args.state_fork_threshold,
        allocation_hold_backlog=args.allocation_hold_backlog,
    )
    if args.python_gc:
        base_options = dataclasses.replace(base_options, gc_thresholds=None)
    has_allocator_process = "allocator_process" in {
        f.name for f in dataclasses.fields(MasterOptions)
    }
    result: dict[str, Any] = {"agents": args.agents, "hosts": args.hosts, "quick": args.quick}
    timeline: list[tuple[float, float]] = []
    marks: list[tuple[float, str]] = []
    spec = AgentSpec(
        resources=args.agent_resources,
        task_seconds=args.task_seconds,
        registration_backoff=args.registration_backoff,
    )
    progress(f"master: starting (work directory {work / 'master'})")
    master = Master(work / "master", base_options, log_level)
    hosts: list[Launched] = []
    try:
        progress(f"agents: {args.agents} in {args.hosts} host processes ({spec.resources} each)")
        started = time.monotonic()
        per_host = -(-args.agents // args.hosts)
        for first in range(0, args.agents, per_host):
            count = min(per_host, args.agents - first)
            hosts.append(
                launch(
                    AgentHost,
                    str(master.process.pid),
                    first,
                    count,
                    spec,
                    options=LaunchOptions(host="127.0.0.1", log_level="warning"),
                )
            )
        launched = time.monotonic() - started
        progress(f"  hosts serving after {launched:.1f} s")
        registered = wait_agents(master, args.agents, args.register_timeout, "registering")
        result["register_s"] = round(launched + registered, 2)
        result["master_rss_mb_registered"] = master.rss_mb()
        host_pids = tuple(host.os_pid for host in hosts)
        phases: dict[str, Any] = {}
        for count in args.frameworks:
            plan = FrameworkPlan(
                count=count, seconds=args.phase_seconds, task=args.task, rate=args.rate or None
            )
            profile = None
            if count == 10 and args.profile_seconds > 0:
                profile = (min(args.profile_seconds, args.phase_seconds), out / "master.pyspy")
            marks.append((time.monotonic(), f"{count} fw"))
            try:
                phases[str(count)] = run_phase(
                    master,
                    plan,
                    timeline,
                    profile=profile,
                    measure_state=args.state_in_phases,
                    agent_hosts=host_pids,
                )
            except (RuntimeError, TimeoutError) as error:  # reported; the next phase may run
                progress(f"  phase with {count} frameworks failed: {error}")
                phases[str(count)] = {"frameworks": count, "error": str(error), "running": 0}
        result["frameworks"] = phases
        headline = phases.get("10") or phases[str(max(args.frameworks))]
        for key in ("launches_per_s", "updates_per_s", "p50_launch_ms", "p99_launch_ms",
                    "cycle_median_s", "master_cpu_percent",
                    "master_cpu_us_per_launch", "master_gc_s"):  # fmt: skip
            result[key] = headline.get(key)
        if args.fixed_rate:
            # The latency goal's phase: an offered load the master should serve, not its limit.
            plan = FrameworkPlan(
                count=10, seconds=args.phase_seconds, task=args.task, rate=args.fixed_rate
            )
            marks.append((time.monotonic(), f"{args.fixed_rate:g}/s"))
            fixed = run_phase(master, plan, timeline, agent_hosts=host_pids)
            result["fixed_rate"] = {"rate": args.fixed_rate, **_summary(fixed)}
        if "profile" in headline:
            result["profile"] = headline.pop("profile")
        if args.hold_tasks:
            plan = FrameworkPlan(
                count=10,
                seconds=args.hold_timeout,
                task=args.task,
                max_tasks=args.hold_tasks,
                hold=True,
                task_seconds=float("inf"),
            )
            marks.append((time.monotonic(), "hold"))
            hold = run_phase(master, plan, timeline, agent_hosts=host_pids)
            result["hold"] = {
                key: hold.get(key)
                for key in ("hold_running", "hold_rss_mb", "hold_state_ms", "hold_state_tasks",
                            "hold_state_poll_ms", "launches_per_s", "p99_launch_ms",
                            "master_cpu_percent")
            }  # fmt: skip
        # After the phases (a master with state_fork_threshold=None builds /master/state on
        # its actor, at 20,000 agents for longer than the transport's peer timeout).
        result["state_ms_agents"], _ = master.state_ms()
        progress(f"  GET /master/state, {args.agents} agents: {result['state_ms_agents']} ms")
        # Mid-run: with the hold phase's tasks all running, else the one just taken.
        result["state_ms"] = (
            result.get("hold", {}).get("hold_state_ms") or result["state_ms_agents"]
        )
        if not args.no_restart:
            progress("master: SIGKILL and restart on the same ports and work directory")
            marks.append((time.monotonic(), "master restart"))
            started = time.monotonic()
            master.restart()
            result["reregister_s"] = round(
                time.monotonic()
                - started
                + wait_agents(master, args.agents, args.register_timeout, "re-registering"),
                2,
            )
        compare: dict[str, Any] = {"available": has_allocator_process}
        if args.compare_allocator_process and has_allocator_process:
            plan = FrameworkPlan(
                count=10, seconds=args.phase_seconds, task=args.task, rate=args.rate or None
            )
            compare["in_master"] = _summary(phases.get("10") or headline)
            progress("master: restart with allocator_process=True")
            marks.append((time.monotonic(), "allocator process"))
            master.restart(dataclasses.replace(base_options, allocator_process=True), kill=False)
            wait_agents(master, args.agents, args.register_timeout, "re-registering")
            _, state = master.state_ms()
            allocator_http = (state.get("allocator") or {}).get("http")
            own = run_phase(
                master, plan, timeline, allocator_http=allocator_http, agent_hosts=host_pids
            )
            compare["own_process"] = _summary(own)
        elif not has_allocator_process:
            compare["note"] = "MasterOptions has no allocator_process field yet"
        result["allocator_process"] = compare
        result["master_rss_mb"] = max(
            [result["master_rss_mb_registered"]]
            + [phase.get("master_rss_mb", 0) for phase in phases.values()]
            + [result.get("hold", {}).get("hold_rss_mb") or 0]
        )
        result["tasks_running_total"] = len(timeline)
    finally:
        for host in hosts:
            host.stop()
        master.process.stop()
        if not args.keep:
            shutil.rmtree(work / "master", ignore_errors=True)
    result["plot"] = plot(timeline, marks, bench_start, out / "cluster.png")
    result["duration_s"] = round(time.monotonic() - bench_start, 1)
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    (out / "cluster.json").write_text(json.dumps(result, indent=1))
    result["json"] = str(out / "cluster.json")
    return result


def _summary(phase: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "launches_per_s",
        "phase_launches_per_s",
        "first_accept_after_s",
        "updates_per_s",
        "p50_launch_ms",
        "p99_launch_ms",
        "cycle_median_s",
        "master_cpu_percent",
        "master_cpu_us_per_launch",
        "master_rss_mb",
    )
    return {key: phase.get(key) for key in keys}


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=20_000)
    parser.add_argument(
        "--hosts", type=int, default=os.cpu_count() or 2, help="OS processes of simulated agents"
    )
    parser.add_argument("--agent-resources", default=AgentSpec.resources)
    parser.add_argument("--task", default="cpus:1;mem:128", help="each task's resources")
    parser.add_argument(
        "--task-seconds",
        type=float,
        default=10.0,
        help="RUNNING -> TASK_FINISHED in the launch phases",
    )
    parser.add_argument(
        "--frameworks", default="1,10,100", help="framework counts, one launch phase each"
    )
    parser.add_argument("--phase-seconds", type=float, default=20.0)
    parser.add_argument(
        "--rate",
        type=float,
        default=2000.0,
        help="tasks/s all frameworks launch (0: as fast as offers come)",
    )
    parser.add_argument(
        "--fixed-rate",
        type=float,
        default=1000.0,
        help="tasks/s of the extra 10-framework phase for the latency goal (0: no such phase)",
    )
    parser.add_argument("--hold-tasks", type=int, default=100_000)
    parser.add_argument("--hold-timeout", type=float, default=240.0)
    parser.add_argument("--allocation-interval", type=float, default=1.0)
    parser.add_argument(
        "--allocation-hold-backlog",
        type=lambda text: None if text == "none" else int(text),
        default=MasterOptions.allocation_hold_backlog,
        help="the master's allocation_hold_backlog: events in its mailbox from which an "
        "allocation cycle waits (none: never)",
    )
    parser.add_argument(
        "--state-fork-threshold",
        type=int,
        default=MasterOptions.state_fork_threshold,
        help="the master's state_fork_threshold: from this many agents plus tasks "
        "/master/state is built in a forked child (default: never)",
    )
    parser.add_argument(
        "--registration-backoff",
        type=float,
        default=AgentSpec.registration_backoff,
        help="the simulated agents' first registration retry, seconds (doubles, jittered)",
    )
    parser.add_argument("--register-timeout", type=float, default=300.0)
    parser.add_argument("--no-restart", action="store_true")
    parser.add_argument(
        "--compare-allocator-process", action=argparse.BooleanOptionalAction, default=True
    )
    parser.add_argument(
        "--profile-seconds",
        type=float,
        default=15.0,
        help="py-spy the master in the 10-framework phase (0: no)",
    )
    parser.add_argument(
        "--state-in-phases",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also time one GET /master/state half-way through each launch phase (it holds "
        "the master's actor while it is built, so it stalls that phase's launches)",
    )
    parser.add_argument(
        "--master-log-level",
        default="error",
        choices=("debug", "info", "warning", "error"),
        help="the master's log level (its lines go to stderr)",
    )
    parser.add_argument(
        "--python-gc",
        action="store_true",
        help="leave the master's garbage collector at Python's thresholds (to compare)",
    )
    parser.add_argument("--out", help="directory for cluster.json and cluster.png")
    parser.add_argument("--keep", action="store_true", help="keep the master's work directory")
    parser.add_argument("--quick", action="store_true", help="2,000 agents, about 20 s, for CI")
    args = parser.parse_args()
    if args.quick:
        args.agents = min(args.agents, 2000)
        args.phase_seconds = min(args.phase_seconds, 4.0)
        args.rate = min(args.rate, 500.0) if args.rate else 500.0
        args.fixed_rate = min(args.fixed_rate, 250.0) if args.fixed_rate else 0.0
        args.frameworks = "1,10"
        args.hold_tasks = 0
        args.task_seconds = min(args.task_seconds, 2.0)
        args.register_timeout = min(args.register_timeout, 30.0)
        args.profile_seconds = 0
        args.registration_backoff = min(args.registration_backoff, 0.5)
    signal.signal(signal.SIGTERM, _terminated)  # run the finally blocks: stop the children
    args.frameworks = [int(part) for part in str(args.frameworks).split(",") if part.strip()]
    from libprocess import log as logsetup

    logsetup.configure("error")
    result = run(args)
    print(json.dumps(result))
    phases = result.get("frameworks", {}).values()
    return 0 if phases and all(phase.get("running", 0) > 0 for phase in phases) else 1


if __name__ == "__main__":
    sys.exit(main())
