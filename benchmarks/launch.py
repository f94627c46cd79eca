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
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import statistics
import sys
import threading
import time

from corral.cli.cluster import start_local_cluster, wait_for_agents
from corral.ids import TaskID
from corral.protocol import CommandInfo, Filters, FrameworkInfo, TaskInfo
from corral.resources import Resources
from corral.scheduler import Scheduler, SchedulerDriver
from corral.task_states import TaskState, is_terminal
from master.master import MasterOptions

TASK = Resources.parse("cpus:0.01;mem:1")
AGENT = "cpus:64;mem:65536;disk:65536;ports:[31000-32000]"


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Launcher(Scheduler):
    """Packs every offer with tasks until ``total`` are launched; records the times."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.launched = 0
        self.accepted_at: dict[str, float] = {}
        self.running_at: dict[str, float] = {}
        self.finished_at: dict[str, float] = {}
        self.failed: dict[str, str] = {}
        self.done = threading.Event()
        self.lock = threading.Lock()

    def resource_offers(self, driver, offers) -> None:
        for offer in offers:
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
            if tasks:
                now = time.perf_counter()
                for task in tasks:
                    self.accepted_at[task.task_id] = now
                driver.launch_tasks([offer.id], tasks, Filters(refuse_seconds=0))
            else:
                driver.decline_offer(offer.id, Filters(refuse_seconds=0))
            if self.launched >= self.total:
                driver.suppress_offers()

    def status_update(self, driver, status) -> None:
        now = time.perf_counter()
        task_id = str(status.task_id)
        with self.lock:
            if status.state is TaskState.TASK_RUNNING:
                self.running_at.setdefault(task_id, now)
            elif status.state is TaskState.TASK_FINISHED:
                self.finished_at.setdefault(task_id, now)
            elif is_terminal(status.state):
                self.failed[task_id] = f"{status.state.name}: {status.message}"
            if len(self.finished_at) + len(self.failed) >= self.total:
                self.done.set()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run(tasks: int, agents: int, timeout: float) -> dict:
    progress(f"starting a local cluster: a master and {agents} agents ({AGENT} each)")
    cluster = start_local_cluster(
        agents, resources=AGENT, master_options=MasterOptions(allocation_interval=0.1)
    )
    try:
        wait_for_agents(cluster.http_address, agents)
        launcher = Launcher(tasks)
        driver = SchedulerDriver(
            launcher,
            FrameworkInfo(user=getpass.getuser(), name="launch-bench"),
            cluster.http_address,
        )
        started = time.perf_counter()
        driver.start()
        deadline = started + timeout
        while not launcher.done.wait(1.0):
            progress(
                f"  {len(launcher.accepted_at)} accepted, {len(launcher.running_at)} running, "
                f"{len(launcher.finished_at)} finished, {len(launcher.failed)} failed"
            )
            if time.perf_counter() > deadline:
                progress(f"  giving up after {timeout:g} s")
                break
        driver.stop()
    finally:
        cluster.stop()
    first = min(launcher.accepted_at.values(), default=started)
    running = [launcher.running_at[t] - launcher.accepted_at[t] for t in launcher.running_at]
    finished = [launcher.finished_at[t] - launcher.accepted_at[t] for t in launcher.finished_at]
    span_running = max(launcher.running_at.values(), default=first) - first
    span_finished = max(launcher.finished_at.values(), default=first) - first
    return {
        "tasks": tasks,
        "agents": agents,
        "running": len(running),
        "finished": len(finished),
        "failed": len(launcher.failed),
        "running_per_s": round(len(running) / span_running, 1) if span_running else None,
        "finished_per_s": round(len(finished) / span_finished, 1) if span_finished else None,
        "p50_ms": round(1000 * statistics.median(running), 1) if running else None,
        "p99_ms": round(1000 * percentile(running, 0.99), 1) if running else None,
        "finished_p50_ms": round(1000 * statistics.median(finished), 1) if finished else None,
        "finished_p99_ms": round(1000 * percentile(finished, 0.99), 1) if finished else None,
        "errors": dict(list(launcher.failed.items())[:5]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--quick", action="store_true", help="300 tasks, under 30 s")
    args = parser.parse_args()
    if args.quick:
        args.tasks = min(args.tasks, 300)
        args.timeout = min(args.timeout, 25.0)
    from libprocess import log as logsetup

    logsetup.configure("error")
    result = run(args.tasks, args.agents, args.timeout)
    result["quick"] = args.quick
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result))
    return 0 if result["finished"] == args.tasks else 1


if __name__ == "__main__":
    sys.exit(main())
