"""An example framework with a custom executor: its tasks run under ``custom_executor.py``.

    python examples/executor_framework.py --master 127.0.0.1:5050 --command "echo hi" --count 4

All tasks share one executor per agent (one ``ExecutorInfo`` id): the agent starts
``examples/custom_executor.py`` once, in a container, and hands it every task; each task's
``data`` is the shell command the executor runs. The program exits 0 when every task
FINISHED.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import threading
from pathlib import Path

from corral.ids import ExecutorID, TaskID
from corral.protocol import CommandInfo, ExecutorInfo, Filters, FrameworkInfo, TaskInfo
from corral.resources import Resources
from corral.scheduler import Scheduler, SchedulerDriver
from corral.task_states import TaskState, is_terminal

EXECUTOR_PROGRAM = Path(__file__).resolve().parent / "custom_executor.py"
TASK = Resources.parse("cpus:0.1;mem:32")
EXECUTOR = Resources.parse("cpus:0.1;mem:64")


def executor_info() -> ExecutorInfo:
    return ExecutorInfo(
        executor_id=ExecutorID("shell-executor"),
        name="example shell executor",
        command=CommandInfo(value=f"{sys.executable} {EXECUTOR_PROGRAM}"),
        resources=EXECUTOR,
    )


class ExecutorFramework(Scheduler):
    """Launches one task per command under the custom executor; stops when all ended."""

    def __init__(self, commands: list[str], report=print) -> None:
        self.commands = commands
        self.next = 0
        self.states: dict[str, TaskState] = {}
        self.report = report
        self.done = threading.Event()
        self.executor_on: set[str] = set()  # agents where the executor's resources are held

    def resource_offers(self, driver, offers) -> None:
        for offer in offers:
            left = offer.resources.unallocated()
            need = TASK if offer.agent_id in self.executor_on else TASK + EXECUTOR
            tasks = []
            while self.next < len(self.commands) and left.contains(need):
                index = self.next
                self.next += 1
                left = left - need
                need = TASK
                tasks.append(
                    TaskInfo(
                        name=f"exec-{index}",
                        task_id=TaskID(f"exec-{index}"),
                        agent_id=offer.agent_id,
                        resources=TASK,
                        executor=executor_info(),
                        data=self.commands[index].encode(),
                    )
                )
            if tasks:
                self.executor_on.add(offer.agent_id)
                driver.launch_tasks([offer.id], tasks, Filters(refuse_seconds=1))
            else:
                driver.decline_offer(offer.id, Filters(refuse_seconds=5))

    def status_update(self, driver, status) -> None:
        self.states[status.task_id] = status.state
        self.report(f"{status.task_id} {status.state.name.removeprefix('TASK_')}")
        ended = [s for s in self.states.values() if is_terminal(s)]
        if len(ended) == len(self.commands):
            self.done.set()
            driver.stop()


def run(master: str, commands: list[str], timeout: float = 60.0, report=print) -> dict:
    """Run the commands under the custom executor; returns task id -> final state."""
    framework = ExecutorFramework(commands, report)
    info = FrameworkInfo(user=getpass.getuser(), name="executor-example")
    driver = SchedulerDriver(framework, info, master)
    driver.start()
    try:
        framework.done.wait(timeout)
    finally:
        driver.stop()
    return dict(framework.states)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--master", default="127.0.0.1:5050", help="the master's HTTP host:port")
    parser.add_argument("--command", action="append", required=True, help="a shell command")
    parser.add_argument("--count", type=int, default=1, help="run each command this many times")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    commands = [command for command in args.command for _ in range(args.count)]
    states = run(args.master, commands, args.timeout)
    finished = sum(state is TaskState.TASK_FINISHED for state in states.values())
    print(f"{finished}/{len(commands)} tasks finished under the custom executor")
    return 0 if finished == len(commands) else 1


if __name__ == "__main__":
    sys.exit(main())
