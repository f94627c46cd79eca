"""A framework as this agent knows it: its info, its driver's pid, its executor runs.

Records of the agent actor (agent/executor_run.py has the executors'); the HTTP surfaces only
read them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from agent.executor_run import ExecutorRun
from corral.ids import ExecutorID, FrameworkID, TaskID
from corral.protocol import FrameworkInfo

MAX_COMPLETED_EXECUTORS = 150  # per framework, as Mesos's --max_completed_executors_per_framework
MAX_COMPLETED_FRAMEWORKS = 50  # as Mesos's --max_completed_frameworks


@dataclass(eq=False)
class FrameworkRun:
    id: FrameworkID
    info: FrameworkInfo
    pid: str  # the scheduler driver's pid, passed on in RunTask
    executors: dict[ExecutorID, ExecutorRun] = field(default_factory=dict)
    shutting_down: bool = False  # ShutdownFramework came: it goes once its executors have
    # Mesos's JSON of executors that ended here (newest last), for /state.
    completed_executors: deque[dict[str, Any]] = field(
        default_factory=lambda: deque(maxlen=MAX_COMPLETED_EXECUTORS)
    )

    def executor_of(self, task_id: TaskID) -> ExecutorRun | None:
        """The run that holds ``task_id``, if any."""
        for executor in self.executors.values():
            if task_id in executor.tasks:
                return executor
        return None
