"""The agent running its command tasks' health checks and general checks, as Mesos's command
and default executors run them next to their tasks.

A thin driver around agent/check_schedule.py: per task that runs (TASK_RUNNING) and asks for
checks, it arms a timer of the agent process for each check's next run (the runtime clock, so
tests can pause and advance it), runs the probe (agent/check_probes.py) as async work of the
agent process (``run_async``: no handler waits for a socket or a command), and hands each
result to the schedule. What the schedule decides comes back to the agent through two
callbacks: ``report(executor, task, update)`` sends the TASK_RUNNING update, ``kill(executor,
task)`` kills the task. One probe of a kind is in flight per task at a time.

A task's checks stop when it is killed (Mesos pauses its checkers then: no update follows a
kill), when its run ends, or when the agent stops; a result that comes back after that is
dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from agent import check_probes
from agent.check_schedule import CheckSchedule, HealthSchedule
from agent.executor_lifecycle import ExecutorState
from agent.executor_run import ExecutorRun, TaskRecord
from containerizer import Containerizer
from corral.ids import TaskID
from corral.protocol import CheckInfo, CheckStatusInfo, CheckType, HealthCheck
from libprocess import Future, Process, ProcessTerminated, Timer

log = structlog.get_logger("agent.checks")

HEALTH, CHECK = "health", "check"


@dataclass(frozen=True)
class CheckUpdate:
    """A TASK_RUNNING update a check asks for: a new ``healthy`` or a new ``check_status``."""

    healthy: bool | None = None
    check_status: CheckStatusInfo | None = None


Report = Callable[[ExecutorRun, TaskRecord, CheckUpdate], None]
Kill = Callable[[ExecutorRun, TaskRecord], None]
Environment = Callable[[ExecutorRun, TaskRecord], Mapping[str, str]]


@dataclass(eq=False)
class _Watch:
    """One running task's checks on this agent."""

    executor: ExecutorRun
    task: TaskRecord
    health: HealthSchedule | None
    check: CheckSchedule | None
    timers: dict[str, Timer] = field(default_factory=dict)  # kind -> the next run's timer
    running: dict[str, Future[Any]] = field(default_factory=dict)  # kind -> the probe in flight
    stopped: bool = False


class TaskChecks:
    """The checks of every command task of ``process`` (the agent)."""

    def __init__(
        self,
        process: Process,
        containerizer: Containerizer,
        report: Report,
        kill: Kill,
        environment: Environment,
    ) -> None:
        self.process = process
        self.containerizer = containerizer
        self.report = report
        self.kill = kill
        self.environment = environment
        self._watches: dict[TaskID, _Watch] = {}

    def watching(self, task_id: TaskID) -> bool:
        return task_id in self._watches

    def start(self, executor: ExecutorRun, task: TaskRecord) -> None:
        """The task runs: schedule its checks (nothing when it has none, or is watched)."""
        info = task.info
        if (info.health_check is None and info.check is None) or task.task_id in self._watches:
            return
        now = self.process.runtime.clock.now()
        watch = _Watch(
            executor,
            task,
            None if info.health_check is None else HealthSchedule(info.health_check, now),
            None if info.check is None else CheckSchedule(info.check, now),
        )
        self._watches[task.task_id] = watch
        log.info(
            "task_checks_started",
            task_id=task.task_id,
            health_check=None if watch.health is None else _kind(info.health_check),
            check=None if watch.check is None else _kind(info.check),
        )
        if watch.health is not None:
            self._arm(watch, HEALTH, watch.health.first_at)
        if watch.check is not None:
            self._arm(watch, CHECK, watch.check.first_at)

    def stop(self, executor: ExecutorRun) -> None:
        """Stop checking the tasks of ``executor`` (killed, ended, removed)."""
        for task_id in list(executor.tasks):
            watch = self._watches.pop(task_id, None)
            if watch is not None and watch.executor is executor:
                self._stop(watch)
            elif watch is not None:
                self._watches[task_id] = watch  # another run's task of that id: keep it

    def stop_all(self) -> None:
        for watch in self._watches.values():
            self._stop(watch)
        self._watches.clear()

    # -- inside ------------------------------------------------------------------------------

    def _stop(self, watch: _Watch) -> None:
        watch.stopped = True
        for timer in watch.timers.values():
            timer.cancel()
        for running in watch.running.values():
            running.discard()
        watch.timers.clear()
        watch.running.clear()
        log.info("task_checks_stopped", task_id=watch.task.task_id)

    def _arm(self, watch: _Watch, kind: str, at: float) -> None:
        wait = max(0.0, at - self.process.runtime.clock.now())
        watch.timers[kind] = self.process.delay(wait, self._due, watch, kind)

    def _active(self, watch: _Watch) -> bool:
        executor = watch.executor
        return (
            not watch.stopped
            and self._watches.get(watch.task.task_id) is watch
            and executor.state is ExecutorState.RUNNING
            and not executor.lifecycle.killed
            and not watch.task.state.is_terminal
        )

    def _due(self, watch: _Watch, kind: str) -> None:
        watch.timers.pop(kind, None)
        if not self._active(watch) or kind in watch.running:
            return
        work = self._probe(watch, kind)
        running = self.process.run_async(work)
        watch.running[kind] = running
        running.on_any(lambda done: self._came_back(watch, kind, done))

    def _probe(self, watch: _Watch, kind: str) -> Any:
        schedule = watch.health if kind == HEALTH else watch.check
        assert schedule is not None
        spec: HealthCheck | CheckInfo = schedule.check
        timeout = schedule.timeout
        container_id = watch.executor.container_id
        if spec.type is CheckType.HTTP:
            assert spec.http is not None
            return self._reach(container_id, check_probes.http, spec.http, timeout)
        if spec.type is CheckType.TCP:
            assert spec.tcp is not None
            return self._reach(container_id, check_probes.tcp, spec.tcp.port, timeout)
        if isinstance(spec, HealthCheck):
            command = spec.command
        else:  # a general check's command is wrapped (Mesos's CheckInfo.Command)
            command = None if spec.command is None else spec.command.command
        assert command is not None  # the protocol refuses a COMMAND check without one
        environment = self.environment(watch.executor, watch.task)
        task_command = watch.task.info.command
        user = None if task_command is None else task_command.user  # as the task runs
        return check_probes.command(
            self.containerizer, container_id, command, environment, timeout, user
        )

    async def _reach(self, container_id: str, probe: Any, target: Any, timeout: Any) -> Any:
        """An HTTP or TCP probe, through the task's own network when it has one."""
        sock = await self.containerizer.network_socket(container_id)
        return await probe(target, timeout, sock)

    def _came_back(self, watch: _Watch, kind: str, done: Future[Any]) -> None:
        if watch.running.get(kind) is done:
            del watch.running[kind]
        if done.is_discarded() or (
            done.is_failed() and isinstance(done.failure, ProcessTerminated)
        ):
            return
        if not self._active(watch):
            return
        now = self.process.runtime.clock.now()
        result: CheckStatusInfo | None = None
        why = ""
        if done.is_failed():
            error = done.failure
            why = "timed out" if isinstance(error, TimeoutError) else str(error)
        else:
            result = done.value
        if kind == HEALTH:
            self._health(watch, now, result, why)
        else:
            self._check(watch, now, result, why)

    def _health(self, watch: _Watch, now: float, result: CheckStatusInfo | None, why: str) -> None:
        assert watch.health is not None
        decision, failure = watch.health.result(now, result)
        task_id = watch.task.task_id
        if decision.ignored:
            log.info(
                "health_check_failure_ignored",
                task_id=task_id,
                why=why or failure,
                reason="still in the grace period",
            )
        elif decision.healthy is False:
            log.warning(
                "health_check_failed",
                task_id=task_id,
                why=why or failure,
                consecutive_failures=decision.consecutive_failures,
                kill=decision.kill,
            )
        if decision.healthy is not None:
            self.report(watch.executor, watch.task, CheckUpdate(healthy=decision.healthy))
        if decision.kill:
            log.warning(
                "task_unhealthy_killing",
                task_id=task_id,
                consecutive_failures=decision.consecutive_failures,
            )
            self.kill(watch.executor, watch.task)
            return
        if decision.next_at is not None and self._active(watch):
            self._arm(watch, HEALTH, decision.next_at)

    def _check(self, watch: _Watch, now: float, result: CheckStatusInfo | None, why: str) -> None:
        assert watch.check is not None
        if result is None:
            log.info("check_gave_no_result", task_id=watch.task.task_id, why=why)
        decision = watch.check.result(now, result)
        if decision.changed is not None:
            self.report(watch.executor, watch.task, CheckUpdate(check_status=decision.changed))
        if self._active(watch):
            self._arm(watch, CHECK, decision.next_at)


def _kind(spec: HealthCheck | CheckInfo | None) -> str | None:
    return None if spec is None or spec.type is None else spec.type.value
