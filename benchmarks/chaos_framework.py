"""The framework of the chaos run (``benchmarks/chaos.py``): a program meant to be SIGKILLed.

It registers with ``checkpoint=True``, PARTITION_AWARE and a long failover timeout, and keeps
launching a mix of short tasks (``sleep 0.1..2``) and long ones (``sleep 600``, some of which
it kills later on purpose). Every task writes its pid to ``pid`` in its sandbox first, so the
chaos run can find (and kill) its process honestly.

Everything it does and hears goes to a JSON-lines journal, one ``os.write`` of a whole line
on an ``O_APPEND`` descriptor per event: every launch and kill it sends, and every status
update it receives, written BEFORE the ``status_update`` callback returns. The driver
acknowledges an update only after that callback returns, so the journal holds every update
the framework acknowledged. A process started again on the same journal takes the framework
id from it, re-registers (failover) and reconciles every task the journal shows unfinished.

Commands come on stdin, one word a line: ``quiet`` (stop launching and killing), ``reconcile``
(ask the master for the state of every unfinished task, and of all tasks), ``drain`` (kill
every unfinished task, then journal the offers that come, so the run can see every agent's
resources offered whole again).

The driver's retry backoff is shortened (0.2 s doubling to 1 s rather than 1 s to 60 s) with
``--quick-retries``, so a restarted master is found within a second or two.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

from corral.ids import AgentID, FrameworkID, TaskID
from corral.protocol import (
    CommandInfo,
    Filters,
    FrameworkCapability,
    FrameworkCapabilityType,
    FrameworkInfo,
    KillPolicy,
    Offer,
    ReconcileTask,
    TaskInfo,
    TaskStatus,
)
from corral.resources import Resources
from corral.scheduler import Scheduler, SchedulerDriver
from corral.task_states import TaskState, is_terminal
from libprocess import log as logsetup

TASK = Resources.parse("cpus:0.1;mem:16")
LONG = "sleep 600"
NAME = "chaos"


class Journal:
    """Append-only JSON lines; each line goes out in one write, so a SIGKILL leaves at most
    the lines written before it (the page cache outlives the process)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.lock = threading.Lock()

    def write(self, event: str, **fields: Any) -> None:
        line = json.dumps({"t": time.time(), "pid": os.getpid(), "event": event, **fields})
        with self.lock:
            os.write(self.fd, (line + "\n").encode())


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Every whole line of the journal (a torn last line is skipped)."""
    entries = []
    if not path.exists():
        return entries
    for line in path.read_text().splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    return entries


def update_fields(status: TaskStatus) -> dict[str, Any]:
    return {
        "task_id": str(status.task_id),
        "state": status.state.value,
        "reason": status.reason.value if status.reason else None,
        "source": status.source.value if status.source else None,
        "agent_id": str(status.agent_id) if status.agent_id else None,
        "uuid": status.uuid.hex() if status.uuid else None,
        "message": status.message,
    }


class ChaosScheduler(Scheduler):
    """Launches, kills and journals; every decision is the seeded ``rng``'s."""

    def __init__(self, journal: Journal, rng: random.Random, generation: int) -> None:
        self.journal = journal
        self.rng = rng
        self.generation = generation  # how many processes ran on this journal before
        self.lock = threading.Lock()
        self.mode = "run"  # run | quiet | drain
        self.framework_id: str | None = None
        self.connected = threading.Event()
        self.latest: dict[str, str] = {}  # task id -> latest state heard
        self.kind: dict[str, str] = {}  # task id -> "short" | "long"
        self.agent_of: dict[str, str] = {}  # task id -> the agent it was launched on
        self.launched = 0
        self.last_launch = 0.0
        self.launch_interval = 0.3
        self.max_active = 12
        self.max_long = 5

    def replay(self, entries: list[dict[str, Any]]) -> None:
        """What earlier processes on this journal launched and heard."""
        for entry in entries:
            if entry["event"] in ("registered", "reregistered") and entry.get("framework_id"):
                self.framework_id = entry["framework_id"]
            elif entry["event"] == "launch":
                self.kind[entry["task_id"]] = entry["kind"]
                self.agent_of[entry["task_id"]] = entry["agent_id"]
                self.latest.setdefault(entry["task_id"], TaskState.TASK_STAGING.value)
            elif entry["event"] == "update":
                self.latest[entry["task_id"]] = entry["state"]

    def unfinished(self) -> list[str]:
        return [
            task_id
            for task_id, state in self.latest.items()
            if not is_terminal(TaskState(state)) and state != TaskState.TASK_UNKNOWN.value
        ]

    # -- callbacks ------------------------------------------------------------------------

    def registered(self, driver, framework_id, master_info) -> None:
        self.framework_id = str(framework_id)
        self.journal.write("registered", framework_id=self.framework_id)
        self.connected.set()

    def reregistered(self, driver, master_info) -> None:
        self.journal.write("reregistered", framework_id=self.framework_id)
        self.connected.set()
        self.reconcile(driver)

    def disconnected(self, driver) -> None:
        self.connected.clear()
        self.journal.write("disconnected")

    def error(self, driver, message) -> None:
        self.journal.write("error", message=message)

    def agent_lost(self, driver, agent_id) -> None:
        self.journal.write("agent_lost", agent_id=str(agent_id))

    def status_update(self, driver, status) -> None:
        # Journaled before returning: the driver acknowledges only after this returns.
        self.journal.write("update", **update_fields(status))
        with self.lock:
            self.latest[str(status.task_id)] = status.state.value

    def resource_offers(self, driver, offers: list[Offer]) -> None:
        for offer in offers:
            with self.lock:
                mode = self.mode
                tasks = self._tasks_for(offer) if mode == "run" else []
            if mode == "drain":
                self.journal.write(
                    "offer",
                    agent_id=str(offer.agent_id),
                    resources=offer.resources.unallocated().to_json(),
                )
            if tasks:
                for task, kind in tasks:
                    self.journal.write(
                        "launch",
                        task_id=str(task.task_id),
                        agent_id=str(offer.agent_id),
                        kind=kind,
                        command=task.command.value,
                        resources=task.resources.to_json(),
                    )
                driver.launch_tasks(
                    [offer.id], [task for task, _ in tasks], Filters(refuse_seconds=0.2)
                )
            else:
                refuse = 0.1 if mode == "drain" else 0.3
                driver.decline_offer(offer.id, Filters(refuse_seconds=refuse))

    def _tasks_for(self, offer: Offer) -> list[tuple[TaskInfo, str]]:
        now = time.monotonic()
        if now - self.last_launch < self.launch_interval:
            return []
        active = self.unfinished()
        if len(active) >= self.max_active:
            return []
        left = offer.resources.unallocated()
        tasks = []
        longs = sum(self.kind.get(t) == "long" for t in active)
        for _ in range(self.rng.randint(1, 2)):
            if not left.contains(TASK):
                break
            kind = "long" if longs < self.max_long and self.rng.random() < 0.35 else "short"
            longs += kind == "long"
            sleep = LONG if kind == "long" else f"sleep {self.rng.uniform(0.1, 2.0):.2f}"
            task_id = f"g{self.generation}-{self.launched}"
            self.launched += 1
            self.kind[task_id] = kind
            self.agent_of[task_id] = str(offer.agent_id)
            self.latest[task_id] = TaskState.TASK_STAGING.value
            left = left - TASK
            tasks.append(
                (
                    TaskInfo(
                        name=task_id,
                        task_id=TaskID(task_id),
                        agent_id=offer.agent_id,
                        resources=TASK,
                        command=CommandInfo(value=f"echo $$ > pid; exec {sleep}"),
                        kill_policy=KillPolicy(grace_period=0.5),
                    ),
                    kind,
                )
            )
        self.last_launch = now
        return tasks

    # -- the main thread's work -----------------------------------------------------------

    def reconcile(self, driver: SchedulerDriver) -> None:
        """Explicitly (each unfinished task with its agent, so that the master can tell a
        task on an agent still re-registering from one it never heard of), then implicitly."""
        with self.lock:
            unfinished = self.unfinished()
            asked = [ReconcileTask(TaskID(t), AgentID(self.agent_of[t])) for t in unfinished]
        self.journal.write("reconcile", tasks=unfinished)
        if asked:
            driver.reconcile_tasks(asked)
        driver.reconcile_tasks([])

    def kill_some(self, driver: SchedulerDriver) -> None:
        """Now and then kill a running long task on purpose."""
        with self.lock:
            if self.mode != "run" or self.rng.random() > 0.25:
                return
            running = sorted(
                t
                for t, state in self.latest.items()
                if self.kind.get(t) == "long" and state == TaskState.TASK_RUNNING.value
            )
            if not running:
                return
            task_id = self.rng.choice(running)
        self.journal.write("kill", task_id=task_id, why="on purpose")
        driver.kill_task(TaskID(task_id))

    def drain(self, driver: SchedulerDriver) -> None:
        """Kill every unfinished task (again, until each is terminal)."""
        with self.lock:
            self.mode = "drain"
            unfinished = self.unfinished()
        for task_id in unfinished:
            self.journal.write("kill", task_id=task_id, why="drain")
            driver.kill_task(TaskID(task_id))
        driver.revive_offers()


def read_commands(commands: list[str], lock: threading.Lock) -> None:
    for line in sys.stdin:
        with lock:
            commands.append(line.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--master", required=True, help="the master's HTTP host:port")
    parser.add_argument("--journal", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--failover-timeout", type=float, default=60.0)
    parser.add_argument("--quick-retries", action="store_true")
    parser.add_argument("--log-level", default="error")
    args = parser.parse_args()
    logsetup.configure(args.log_level)

    entries = read_journal(args.journal)
    generation = sum(entry["event"] == "start" for entry in entries)
    journal = Journal(args.journal)
    scheduler = ChaosScheduler(journal, random.Random(args.seed * 1000 + generation), generation)
    scheduler.replay(entries)
    journal.write("start", generation=generation, framework_id=scheduler.framework_id)
    info = FrameworkInfo(
        user=getpass.getuser(),
        name=NAME,
        failover_timeout=args.failover_timeout,
        checkpoint=True,
        capabilities=(FrameworkCapability(FrameworkCapabilityType.PARTITION_AWARE),),
        id=FrameworkID(scheduler.framework_id) if scheduler.framework_id else None,
    )
    retries = (
        {"registration_backoff": 0.2, "registration_backoff_max": 1.0} if args.quick_retries else {}
    )
    driver = SchedulerDriver(scheduler, info, args.master, **retries)
    driver.start()

    commands: list[str] = []
    lock = threading.Lock()
    threading.Thread(target=read_commands, args=(commands, lock), daemon=True).start()
    while True:
        time.sleep(0.5)
        with lock:
            todo, commands[:] = list(commands), []
        for command in todo:
            journal.write("command", command=command)
            if command == "quiet":
                with scheduler.lock:
                    scheduler.mode = "quiet"
            elif command == "reconcile":
                scheduler.reconcile(driver)
            elif command == "drain":
                scheduler.drain(driver)
            elif command == "stop":
                driver.stop(failover=True)
                return 0
        if scheduler.connected.is_set():
            scheduler.kill_some(driver)


if __name__ == "__main__":
    sys.exit(main())
