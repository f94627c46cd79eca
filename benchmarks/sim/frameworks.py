"""Simulated frameworks: native ``SchedulerDriver``s that launch as fast as offers allow.

Each framework packs every offer with as many tasks as fit (``FrameworkPlan.task``), accepts
with a short filter for the rest, declines whole offers with a long filter once it has stopped
launching (and suppresses), and acknowledges updates (the driver's implicit
acknowledgements). They run in an OS process of their own (``serve_frameworks``, started with
multiprocessing ``spawn`` by ``FrameworkFleet``) so that their Python does not share a GIL with
the benchmark's clocks. Times are ``time.monotonic()``, one clock for every process of the
machine, so the parent can line them up with what it measured.

With ``FrameworkPlan.rate`` the frameworks together launch at most that many tasks per second
(an open-loop load: latency is then measured below saturation, as the goal "2,000 launches/s
with p99 < 1 s" asks); without it, as fast as offers allow (the saturated throughput).

A phase: start ``count`` drivers; launch for ``seconds`` (or until ``max_tasks`` tasks are
RUNNING); stop launching; with ``hold`` report "holding" and wait for the parent's word (it
measures the master meanwhile); wait ``drain`` seconds for late updates; report the figures;
stop the drivers (a teardown: the master shuts their tasks down on the agents).
"""

from __future__ import annotations

import getpass
import multiprocessing
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from corral.ids import TaskID
from corral.protocol import CommandInfo, Filters, FrameworkInfo, Offer, TaskInfo
from corral.resources import Resources
from corral.scheduler import Scheduler, SchedulerDriver
from corral.task_states import TaskState


@dataclass(frozen=True)
class FrameworkPlan:
    """What one phase's frameworks do."""

    count: int = 1
    seconds: float = 10.0  # of launching, from the first offer
    task: str = "cpus:1;mem:128"
    # How long each task runs (its command is "sleep <seconds>", which the simulated agents
    # honour); None: the agents' own default. inf: until killed or torn down.
    task_seconds: float | None = None
    max_tasks: int | None = None  # RUNNING tasks (all frameworks) after which launching stops
    rate: float | None = None  # tasks launched per second, all frameworks (None: no limit)
    refuse_seconds: float = 1.0  # filter on what an accepted offer leaves unused
    busy_seconds: float = 5.0  # filter on offers declined while the rate allows no more
    decline_seconds: float = 60.0  # filter on offers declined once launching has stopped
    hold: bool = False  # after launching, wait for the parent's "release" before stopping
    drain: float = 2.0  # seconds for late updates after launching stops
    register_timeout: float = 30.0


class _Budget:
    """How many tasks the process's frameworks may launch now: at most ``limit`` in all
    (None: no limit), at ``rate`` per second (a token bucket holding up to one second's
    worth; None: as fast as offers come). Shared by the frameworks' callback threads."""

    def __init__(self, limit: int | None, rate: float | None) -> None:
        self.left = limit
        self.rate = rate
        self.tokens = rate or 0.0
        self.refilled = time.monotonic()
        self.lock = threading.Lock()

    def take(self, wanted: int) -> int:
        with self.lock:
            granted = wanted if self.left is None else min(wanted, self.left)
            if self.rate is not None:
                now = time.monotonic()
                self.tokens = min(self.rate, self.tokens + (now - self.refilled) * self.rate)
                self.refilled = now
                granted = min(granted, int(self.tokens))
                self.tokens -= granted
            if self.left is not None:
                self.left -= granted
            return granted


class PackingScheduler(Scheduler):
    """Launches as many tasks as each offer holds; records ACCEPT and update times."""

    def __init__(self, index: int, plan: FrameworkPlan, budget: _Budget) -> None:
        self.index = index
        self.plan = plan
        self.budget = budget
        self.task = Resources.parse(plan.task)
        self.cpus = self.task.scalar_millis("cpus")
        self.mem = self.task.scalar_millis("mem")
        seconds = plan.task_seconds
        self.command = CommandInfo(value="true" if seconds is None else f"sleep {seconds}")
        self.launching = True
        self.subscribed = threading.Event()  # set once the master registered the framework
        self.next_task = 0
        self.accepted_at: dict[str, float] = {}  # until RUNNING
        self.accepted = 0
        self.running_at: list[float] = []  # when each RUNNING arrived
        self.latency: list[float] = []  # seconds ACCEPT -> RUNNING, same order
        self.updates_at: list[float] = []  # every update received
        self.finished = 0
        self.failed: dict[str, int] = {}
        self.failed_examples: list[str] = []
        self.first_accept: float | None = None

    def registered(self, driver, framework_id, master_info) -> None:  # type: ignore[override]
        self.subscribed.set()

    def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        for offer in offers:
            tasks = self._pack(offer) if self.launching else []
            if tasks:
                filters = Filters(refuse_seconds=self.plan.refuse_seconds)
                driver.launch_tasks([offer.id], tasks, filters)
            else:
                seconds = self.plan.busy_seconds if self.launching else self.plan.decline_seconds
                driver.decline_offer(offer.id, Filters(refuse_seconds=seconds))

    def _pack(self, offer: Offer) -> list[TaskInfo]:
        resources = offer.resources
        fits = min(
            resources.scalar_millis("cpus") // self.cpus if self.cpus else 1 << 30,
            resources.scalar_millis("mem") // self.mem if self.mem else 1 << 30,
        )
        fits = self.budget.take(fits)
        if fits <= 0:
            return []
        now = time.monotonic()
        if self.first_accept is None:
            self.first_accept = now
        tasks = []
        for _ in range(fits):
            name = f"f{self.index}-t{self.next_task}"
            self.next_task += 1
            tasks.append(
                TaskInfo(
                    name=name,
                    task_id=TaskID(name),
                    agent_id=offer.agent_id,
                    resources=self.task,
                    command=self.command,
                )
            )
            self.accepted_at[name] = now
        self.accepted += fits
        return tasks

    def status_update(self, driver: SchedulerDriver, status) -> None:  # type: ignore[override]
        now = time.monotonic()
        self.updates_at.append(now)
        state = status.state
        if state is TaskState.TASK_RUNNING:
            accepted = self.accepted_at.pop(str(status.task_id), None)
            if accepted is not None:
                self.running_at.append(now)
                self.latency.append(now - accepted)
        elif state is TaskState.TASK_FINISHED:
            self.finished += 1
        elif state.is_terminal:
            self.failed[state.value] = self.failed.get(state.value, 0) + 1
            if len(self.failed_examples) < 5:
                self.failed_examples.append(f"{status.task_id}: {state.value} {status.message}")

    def stop_launching(self, driver: SchedulerDriver) -> None:
        self.launching = False
        driver.suppress_offers()


def serve_frameworks(conn: Any, master: str, plan: FrameworkPlan, parent: int) -> None:
    """A frameworks process's main: one phase, reported over ``conn`` (see the module doc).

    It ends by itself (drivers stopped) when its parent ``parent`` is gone."""
    from libprocess import log as logsetup

    logsetup.configure("error")
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    budget = _Budget(plan.max_tasks, plan.rate)
    schedulers = [PackingScheduler(index, plan, budget) for index in range(plan.count)]
    user = getpass.getuser()
    drivers = [
        SchedulerDriver(scheduler, FrameworkInfo(user=user, name=f"sim-{scheduler.index}"), master)
        for scheduler in schedulers
    ]
    try:
        for driver in drivers:
            driver.start()
        deadline = time.monotonic() + plan.register_timeout
        for scheduler in schedulers:
            scheduler.subscribed.wait(max(0.0, deadline - time.monotonic()))
        registered = sum(scheduler.subscribed.is_set() for scheduler in schedulers)
        started = time.monotonic()
        conn.send(("started", {"registered": registered, "at": started}))
        stop_at = started + plan.seconds
        while time.monotonic() < stop_at:
            time.sleep(min(1.0, max(0.0, stop_at - time.monotonic())))
            running = sum(len(scheduler.running_at) for scheduler in schedulers)
            conn.send(("progress", {"running": running, "at": time.monotonic()}))
            if plan.max_tasks is not None and running >= plan.max_tasks:
                break
        for scheduler, driver in zip(schedulers, drivers, strict=True):
            scheduler.stop_launching(driver)
        if plan.hold:
            running = sum(len(scheduler.running_at) for scheduler in schedulers)
            conn.send(("holding", {"running": running, "at": time.monotonic()}))
            conn.recv()  # "release" (EOFError if the parent is gone)
        time.sleep(plan.drain)
        conn.send(("done", _figures(schedulers, started)))
    finally:
        for driver in drivers:
            driver.stop()


def _exit_with_parent(parent: int) -> None:
    """The parent is gone (killed before it could stop us): go too, at once."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(3)


def _figures(schedulers: list[PackingScheduler], started: float) -> dict[str, Any]:
    failed: dict[str, int] = {}
    for scheduler in schedulers:
        for state, count in scheduler.failed.items():
            failed[state] = failed.get(state, 0) + count
    firsts = [s.first_accept for s in schedulers if s.first_accept is not None]
    return {
        "started": started,
        "first_accept": min(firsts) if firsts else None,
        "accepted": sum(s.accepted for s in schedulers),
        "running_at": [t for s in schedulers for t in s.running_at],
        "latency": [t for s in schedulers for t in s.latency],
        "updates_at": [t for s in schedulers for t in s.updates_at],
        "finished": sum(s.finished for s in schedulers),
        "failed": failed,
        "failed_examples": [e for s in schedulers for e in s.failed_examples][:5],
    }


class FrameworkFleet:
    """The parent's handle on one phase's frameworks process (stopped by its pid)."""

    def __init__(self, master: str, plan: FrameworkPlan) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=serve_frameworks,
            args=(child, master, plan, os.getpid()),
            name="sim-frameworks",
        )
        self.process.start()
        child.close()

    @property
    def os_pid(self) -> int:
        return self.process.pid

    def receive(self, timeout: float) -> tuple[str, dict[str, Any]]:
        """The next report; ``TimeoutError`` if none comes within ``timeout`` seconds."""
        if not self.conn.poll(timeout):
            raise TimeoutError(f"the frameworks process sent nothing within {timeout:g} s")
        try:
            return self.conn.recv()
        except EOFError:
            raise RuntimeError(
                f"the frameworks process exited (code {self.process.exitcode}); see its stderr"
            ) from None

    def release(self) -> None:
        self.conn.send("release")

    def stop(self, timeout: float = 15.0) -> None:
        """Wait for the process to stop its drivers and exit; SIGTERM, then SIGKILL, by pid."""
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()
