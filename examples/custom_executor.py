"""A small custom executor: runs each task's ``data`` as a shell command, or a trivial action.

Name it as a task's executor (``ExecutorInfo.command``: ``<python> examples/custom_executor.py``);
the agent starts it in a container and it registers through ``ExecutorDriver``. Each task is
reported TASK_RUNNING, then TASK_FINISHED (exit 0, or no ``data``: the trivial action), or
TASK_FAILED / TASK_KILLED. Framework messages are answered with ``echo: <message>``.
"""

from __future__ import annotations

import subprocess
import sys
import threading

from corral.executor import DriverStatus, Executor, ExecutorDriver
from corral.ids import TaskID
from corral.protocol import TaskInfo, TaskStatus
from corral.task_states import TaskState


class ShellExecutor(Executor):
    """One thread per task; ``kill_task`` terminates the task's command."""

    def __init__(self) -> None:
        self.processes: dict[TaskID, subprocess.Popen] = {}
        self.killed: set[TaskID] = set()
        self.lock = threading.Lock()

    def registered(self, driver, executor_info, framework_info, agent_info) -> None:
        print(f"registered on agent {agent_info.hostname} for {framework_info.name}", flush=True)

    def launch_task(self, driver: ExecutorDriver, task: TaskInfo) -> None:
        driver.send_status_update(TaskStatus(task.task_id, TaskState.TASK_RUNNING))
        threading.Thread(target=self.run, args=(driver, task), daemon=True).start()

    def run(self, driver: ExecutorDriver, task: TaskInfo) -> None:
        if not task.data:
            total = sum(range(1000))  # the trivial action
            message = f"computed {total}"
            state = TaskState.TASK_FINISHED
        else:
            command = task.data.decode()
            with self.lock:
                if task.task_id in self.killed:
                    return
                process = subprocess.Popen(command, shell=True)
                self.processes[task.task_id] = process
            code = process.wait()
            with self.lock:
                self.processes.pop(task.task_id, None)
                if task.task_id in self.killed:
                    return  # kill_task reported it
            state = TaskState.TASK_FINISHED if code == 0 else TaskState.TASK_FAILED
            message = f"'{command}' exited with status {code}"
        print(f"task {task.task_id}: {state.value} ({message})", flush=True)
        driver.send_status_update(TaskStatus(task.task_id, state, message=message))

    def kill_task(self, driver: ExecutorDriver, task_id: TaskID) -> None:
        with self.lock:
            self.killed.add(task_id)
            process = self.processes.pop(task_id, None)
        if process is not None:
            process.terminate()
        driver.send_status_update(TaskStatus(task_id, TaskState.TASK_KILLED, message="killed"))

    def framework_message(self, driver: ExecutorDriver, data: bytes) -> None:
        driver.send_framework_message(b"echo: " + data)

    def shutdown(self, driver: ExecutorDriver) -> None:
        with self.lock:
            task_ids = list(self.processes)
        for task_id in task_ids:
            self.kill_task(driver, task_id)

    def error(self, driver: ExecutorDriver, message: str) -> None:
        print(f"executor error: {message}", file=sys.stderr, flush=True)


def main() -> int:
    status = ExecutorDriver(ShellExecutor()).run()
    return 0 if status is DriverStatus.STOPPED else 1


if __name__ == "__main__":
    sys.exit(main())
