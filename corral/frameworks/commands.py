"""A framework that runs shell commands as tasks on a Corral cluster, to completion.

Each offer gets as many tasks as fit in it (0.1 cpus and 32 MB each by default); what is
left of an offer is declined for 5 seconds, and once every task is launched the framework
suppresses offers. One line is printed per status update; the program exits 0 when every
task FINISHED and 1 otherwise, naming the failed tasks with their messages.

``run_commands(master, commands) -> Summary`` is what ``make demo``, ``corral run`` and
``examples/run_commands.py`` use.
"""

from __future__ import annotations

import getpass
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from corral.ids import AgentID, FrameworkID, TaskID
from corral.protocol import (
    CommandInfo,
    Filters,
    FrameworkInfo,
    MasterInfo,
    Offer,
    TaskInfo,
    TaskStatus,
)
from corral.resources import Resources
from corral.scheduler import Scheduler, SchedulerDriver, Status
from corral.task_states import TaskState

REFUSE_SECONDS = 5.0  # how long declined resources stay away from this framework


@dataclass
class TaskResult:
    """One command's fate; ``state`` is None while it has not ended."""

    task_id: TaskID
    command: str
    state: TaskState | None = None
    message: str | None = None
    agent_id: AgentID | None = None

    @property
    def ok(self) -> bool:
        return self.state is TaskState.TASK_FINISHED


@dataclass
class Summary:
    """What ``run_commands`` reports: every task's result, in the order of the commands."""

    results: list[TaskResult]
    elapsed: float
    framework_id: FrameworkID | None = None
    error: str | None = None  # why the run stopped early (the master refused it, a timeout)

    @property
    def finished(self) -> list[TaskResult]:
        return [result for result in self.results if result.ok]

    @property
    def failed(self) -> list[TaskResult]:
        return [result for result in self.results if not result.ok]

    @property
    def ok(self) -> bool:
        return self.error is None and not self.failed

    def describe(self) -> str:
        lines = [
            f"{len(self.finished)}/{len(self.results)} tasks finished in {self.elapsed:.2f} s"
            + (f" (framework {self.framework_id})" if self.framework_id else "")
        ]
        if self.error:
            lines.append(f"stopped early: {self.error}")
        for result in self.failed:
            state = result.state.name if result.state else "NOT FINISHED"
            detail = f": {result.message}" if result.message else ""
            lines.append(f"  {result.task_id} {state} ({result.command}){detail}")
        return "\n".join(lines)


class CommandRunner(Scheduler):
    """Launches each command once, packs offers, and stops the driver when all have ended."""

    def __init__(
        self,
        commands: Sequence[str],
        *,
        cpus: float = 0.1,
        mem: float = 32.0,
        report: Callable[[str], None] | None = print,
        prefix: str = "cmd",
    ) -> None:
        if not commands:
            raise ValueError("give at least one command to run")
        self.cpus = cpus
        self.mem = mem
        self.report = report
        self.prefix = prefix
        self.framework_id: FrameworkID | None = None
        self.refusal: str | None = None  # the master's error, if it refused the framework
        width = len(str(len(commands) - 1))
        self.results: dict[TaskID, TaskResult] = {}  # every command, in order
        for index, command in enumerate(commands):
            task_id = TaskID(f"{prefix}-{index:0{width}d}")
            self.results[task_id] = TaskResult(task_id, command)
        self.pending = list(self.results.values())  # not launched yet, in order
        self.suppressed = False
        self.lock = threading.Lock()  # callbacks run on one thread; summary() on another

    def _say(self, line: str) -> None:
        if self.report is not None:
            self.report(line)

    def registered(
        self, driver: SchedulerDriver, framework_id: FrameworkID, master_info: MasterInfo
    ) -> None:
        self.framework_id = framework_id
        self._say(f"registered as framework {framework_id} with master {master_info.pid}")

    def reregistered(self, driver: SchedulerDriver, master_info: MasterInfo) -> None:
        self._say(f"registered again with master {master_info.pid}")

    def disconnected(self, driver: SchedulerDriver) -> None:
        self._say("disconnected from the master; waiting for it to come back")

    def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        for offer in offers:
            tasks = self._tasks_for(offer)
            if tasks:
                driver.launch_tasks([offer.id], tasks, Filters(refuse_seconds=REFUSE_SECONDS))
            else:
                driver.decline_offer(offer.id, Filters(refuse_seconds=REFUSE_SECONDS))
        if not self.pending and not self.suppressed:
            self.suppressed = True
            driver.suppress_offers()

    def _tasks_for(self, offer: Offer) -> list[TaskInfo]:
        """As many pending commands as fit in the offer, each with its own resources."""
        wanted = Resources.scalars(cpus=self.cpus, mem=self.mem)
        role = offer.allocation_info.role if offer.allocation_info else None
        roles = offer.resources.allocation_roles()
        if role is None and len(roles) == 1:
            role = next(iter(roles))
        if role is not None:
            wanted = wanted.allocated_to(role)  # the task's resources as the offer holds them
        remaining = offer.resources
        tasks = []
        while self.pending and remaining.contains(wanted):
            result = self.pending.pop(0)
            result.agent_id = offer.agent_id
            tasks.append(
                TaskInfo(
                    name=f"{self.prefix} {result.task_id}",
                    task_id=result.task_id,
                    agent_id=offer.agent_id,
                    resources=wanted,
                    command=CommandInfo(value=result.command),
                )
            )
            remaining = remaining - wanted
        return tasks

    def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        result = self.results.get(status.task_id)
        if result is None or result.state is not None:
            return  # not ours, or already ended (a resent or reconciled update)
        state = status.state
        if state.is_terminal:
            with self.lock:
                result.state, result.message = state, status.message
        done = sum(1 for r in self.results.values() if r.state is not None)
        line = f"[{done:>{len(str(len(self.results)))}}/{len(self.results)}] {result.task_id}"
        line += f" {state.name.removeprefix('TASK_'):<8} {result.command}"
        if state.is_terminal and state is not TaskState.TASK_FINISHED and status.message:
            line += f"  -- {status.message}"
        self._say(line)
        if done == len(self.results):
            driver.stop()

    def error(self, driver: SchedulerDriver, message: str) -> None:
        self.refusal = message
        self._say(f"the master refused the framework: {message}")

    def summary(self, elapsed: float, error: str | None = None) -> Summary:
        with self.lock:
            results = [
                TaskResult(r.task_id, r.command, r.state, r.message, r.agent_id)
                for r in self.results.values()
            ]
        return Summary(results, elapsed, self.framework_id, self.refusal or error)


def run_commands(
    master: str,
    commands: Sequence[str],
    *,
    cpus: float = 0.1,
    mem: float = 32.0,
    name: str = "run-commands",
    user: str | None = None,
    role: str | None = None,
    timeout: float | None = None,
    report: Callable[[str], None] | None = print,
) -> Summary:
    """Run each command once as a task on the cluster at ``master`` (its HTTP address
    ``host:port``); returns when every task has ended, or after ``timeout`` seconds (the
    framework is then torn down, which kills what still runs)."""
    runner = CommandRunner(list(commands), cpus=cpus, mem=mem, report=report)
    framework = FrameworkInfo(user=user or getpass.getuser(), name=name, role=role)
    driver = SchedulerDriver(runner, framework, master)
    started = time.monotonic()
    driver.start()
    try:
        status = driver.join(timeout)
    finally:
        driver.stop()  # a no-op when the scheduler already stopped it
    error = None
    if status is Status.RUNNING:
        error = f"not every task ended within {timeout:g} s"
    return runner.summary(time.monotonic() - started, error)
