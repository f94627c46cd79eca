"""A custom executor that runs its own health check, as Mesos leaves to custom executors:
each task is reported TASK_RUNNING, then TASK_RUNNING with ``healthy`` and a ``check_status``
of its own making, then TASK_FINISHED. For tests/test_task_checks.py."""

from __future__ import annotations

from corral.executor import DriverStatus, Executor, ExecutorDriver
from corral.protocol import CheckStatusInfo, CheckType, HttpCheckStatus, TaskInfo, TaskStatus
from corral.task_states import Reason, TaskState


class HealthReporter(Executor):
    def launch_task(self, driver: ExecutorDriver, task: TaskInfo) -> None:
        driver.send_status_update(TaskStatus(task.task_id, TaskState.TASK_RUNNING))
        checked = CheckStatusInfo(type=CheckType.HTTP, http=HttpCheckStatus(status_code=418))
        driver.send_status_update(
            TaskStatus(
                task.task_id,
                TaskState.TASK_RUNNING,
                reason=Reason.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED,
                healthy=False,
                check_status=checked,
            )
        )
        driver.send_status_update(TaskStatus(task.task_id, TaskState.TASK_FINISHED))


if __name__ == "__main__":
    status = ExecutorDriver(HealthReporter()).run()
    raise SystemExit(0 if status is DriverStatus.STOPPED else 1)
