"""A recording scheduler for failure tests, and a scheduler program to kill.

``Recorder`` hands every callback to the test thread through queues, so a test can wait for
"the next update of task X" or "the driver re-registered" with a wall-clock safety net (the
cluster runs in other OS processes, on their own clocks).

Run as a program (``python -m tests.failure_scheduler --master HOST:PORT ...``) it registers a
framework, launches one command task on the first offer that fits, and once the task is
TASK_RUNNING prints one line ``task-running: {"framework_id", "task_id", "agent_id"}``
(JSON after the marker) and waits to
be killed: a scheduler that really dies (SIGKILL) in the middle of its work.
"""

from __future__ import annotations

import argparse
import getpass
import json
import queue
import sys
import threading
from dataclasses import dataclass

from corral.ids import AgentID, ExecutorID, FrameworkID, TaskID
from corral.protocol import (
    CommandInfo,
    FrameworkCapability,
    FrameworkCapabilityType,
    FrameworkInfo,
    Offer,
    TaskInfo,
    TaskStatus,
)
from corral.resources import Resources
from corral.scheduler import Scheduler, SchedulerDriver
from corral.task_states import TaskState, is_terminal
from libprocess import log as logsetup

WAIT = 20.0  # default wall-clock safety net for anything the cluster does
TASK = Resources.parse("cpus:1;mem:64")
READY = "task-running:"  # starts the line the program prints once its task runs


@dataclass(frozen=True)
class ExecutorLost:
    executor_id: ExecutorID
    agent_id: AgentID
    status: int | None


class Recorder(Scheduler):
    """Every callback, in order, on queues the test thread reads."""

    def __init__(self, wait: float = WAIT) -> None:
        self.wait = wait
        self.registrations: queue.Queue[FrameworkID] = queue.Queue()
        self.reregistrations: queue.Queue[object] = queue.Queue()  # the MasterInfo
        self.disconnections: queue.Queue[None] = queue.Queue()
        self.offers: queue.Queue[Offer] = queue.Queue()
        self.updates: queue.Queue[TaskStatus] = queue.Queue()
        self.executors_lost: queue.Queue[ExecutorLost] = queue.Queue()
        self.agents_lost: queue.Queue[AgentID] = queue.Queue()
        self.errors: queue.Queue[str] = queue.Queue()
        self.all_updates: list[TaskStatus] = []  # every update ever delivered, in order
        self.held: list[TaskStatus] = []  # taken off the queue while looking for another task

    # -- callbacks (the driver's callback thread) -----------------------------------------

    def registered(self, driver, framework_id, master_info) -> None:
        self.registrations.put(framework_id)

    def reregistered(self, driver, master_info) -> None:
        self.reregistrations.put(master_info)

    def disconnected(self, driver) -> None:
        self.disconnections.put(None)

    def resource_offers(self, driver, offers) -> None:
        for offer in offers:
            self.offers.put(offer)

    def status_update(self, driver, status) -> None:
        self.all_updates.append(status)
        self.updates.put(status)

    def executor_lost(self, driver, executor_id, agent_id, status) -> None:
        self.executors_lost.put(ExecutorLost(executor_id, agent_id, status))

    def agent_lost(self, driver, agent_id) -> None:
        self.agents_lost.put(agent_id)

    def error(self, driver, message) -> None:
        self.errors.put(message)

    # -- for the test thread --------------------------------------------------------------

    def next_offer(self) -> Offer:
        return self.offers.get(timeout=self.wait)

    def next_update(self, task_id: str) -> TaskStatus:
        """The next update of ``task_id``; updates of other tasks wait for their turn."""
        for index, status in enumerate(self.held):
            if status.task_id == task_id:
                return self.held.pop(index)
        while True:
            status = self.updates.get(timeout=self.wait)
            if status.task_id == task_id:
                return status
            self.held.append(status)

    def until_state(self, task_id: str, state: TaskState) -> list[TaskStatus]:
        """Updates of ``task_id`` up to and including the first in ``state``."""
        seen = [self.next_update(task_id)]
        while seen[-1].state is not state:
            if is_terminal(seen[-1].state):
                raise AssertionError(
                    f"task {task_id} ended {seen[-1].state.name} ({seen[-1].message}) while "
                    f"waiting for {state.name}; updates: {[s.state.name for s in seen]}"
                )
            seen.append(self.next_update(task_id))
        return seen

    def until_terminal(self, task_id: str) -> list[TaskStatus]:
        seen = [self.next_update(task_id)]
        while not is_terminal(seen[-1].state):
            seen.append(self.next_update(task_id))
        return seen


def framework_info(
    name: str,
    *,
    failover_timeout: float = 0.0,
    checkpoint: bool = False,
    partition_aware: bool = False,
    framework_id: str | None = None,
) -> FrameworkInfo:
    capabilities = (
        (FrameworkCapability(FrameworkCapabilityType.PARTITION_AWARE),) if partition_aware else ()
    )
    return FrameworkInfo(
        user=getpass.getuser(),
        name=name,
        failover_timeout=failover_timeout,
        checkpoint=checkpoint,
        capabilities=capabilities,
        id=FrameworkID(framework_id) if framework_id else None,
    )


def command_task(offer: Offer, task_id: str, command: str, **fields) -> TaskInfo:
    return TaskInfo(
        name=task_id,
        task_id=TaskID(task_id),
        agent_id=offer.agent_id,
        resources=TASK,
        command=CommandInfo(value=command),
        **fields,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--master", required=True, help="the master's HTTP host:port")
    parser.add_argument("--name", default="failover-victim")
    parser.add_argument("--failover-timeout", type=float, default=0.0)
    parser.add_argument("--checkpoint", action="store_true")
    parser.add_argument("--task-id", default="victim-task")
    parser.add_argument("--command", default="sleep 60")
    parser.add_argument("--wait", type=float, default=WAIT)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    logsetup.configure(args.log_level)  # on stderr: stdout carries the one line
    recorder = Recorder(args.wait)
    info = framework_info(
        args.name, failover_timeout=args.failover_timeout, checkpoint=args.checkpoint
    )
    driver = SchedulerDriver(recorder, info, args.master)
    driver.start()
    framework_id = recorder.registrations.get(timeout=args.wait)
    while True:
        offer = recorder.next_offer()
        if offer.resources.unallocated().contains(TASK):
            break
        driver.decline_offer(offer.id)
    driver.launch_tasks([offer.id], [command_task(offer, args.task_id, args.command)])
    recorder.until_state(args.task_id, TaskState.TASK_RUNNING)
    line = {"framework_id": framework_id, "task_id": args.task_id, "agent_id": offer.agent_id}
    sys.stdout.write(f"{READY} {json.dumps(line)}\n")
    sys.stdout.flush()
    threading.Event().wait()  # until killed
    return 0


if __name__ == "__main__":
    sys.exit(main())
