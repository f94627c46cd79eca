"""When a task's checks run and what their results decide, as Mesos's command and default
executors decide it: a sans-IO core (no clock, no sockets, no timers inside).

A ``HealthSchedule`` follows one task's ``HealthCheck``; a ``CheckSchedule`` its general
``CheckInfo``. Both are given the runtime-clock time the task started running and then each
result with the time it came back; they answer with a decision: the update to send (if any),
whether to kill the task, and when the next check is due. The agent's driver
(agent/task_checks.py) runs the probes and the timers.

Mesos's semantics, kept here:

- the first check runs ``delay_seconds`` after the task started running; each next one
  ``interval_seconds`` after the previous result came back (never two at once);
- a health check's ``grace_period_seconds`` counts from the start: failures within it are
  ignored until the first success (after a success every failure counts);
- a counted failure is reported unhealthy each time (with the count of consecutive failures);
  a success is reported on the first one, and on the first after failures; after
  ``consecutive_failures`` consecutive failures the task is killed, and nothing more is
  checked;
- a general check reports its result whenever it differs from the previous one (an error, a
  timeout included, is the empty result of the check's type), and never kills;
- ``timeout_seconds`` of 0 means no timeout.
"""

from __future__ import annotations

from dataclasses import dataclass

from corral.protocol import CheckInfo, CheckStatusInfo, CheckType, HealthCheck
from corral.protocol.checks import CommandCheckStatus, HttpCheckStatus, TcpCheckStatus

DEFAULT_PASSING = range(200, 400)  # Mesos: an HTTP health check passes on 2xx and 3xx


def empty_status(type_: CheckType) -> CheckStatusInfo:
    """A check's result before the first one (and after an error): its type, the inner
    field set and empty, as Mesos sends it on TASK_RUNNING."""
    if type_ is CheckType.COMMAND:
        return CheckStatusInfo(type=type_, command=CommandCheckStatus())
    if type_ is CheckType.HTTP:
        return CheckStatusInfo(type=type_, http=HttpCheckStatus())
    return CheckStatusInfo(type=type_, tcp=TcpCheckStatus())


def passes(check: HealthCheck, result: CheckStatusInfo) -> tuple[bool, str]:
    """Whether a probe's result is a passing health check, and a sentence saying why not."""
    if result.command is not None:
        code = result.command.exit_code
        if code is None:
            return False, "the command did not return an exit code"
        return code == 0, f"the command exited with status {code}"
    if result.http is not None:
        code = result.http.status_code
        if code is None:
            return False, "no HTTP answer"
        passing = check.http.statuses if check.http is not None and check.http.statuses else None
        ok = code in passing if passing else code in DEFAULT_PASSING
        return ok, f"unexpected HTTP response code {code}"
    if result.tcp is not None:
        return bool(result.tcp.succeeded), "the TCP connection failed"
    return False, "the check gave no result"


def _timeout(seconds: float) -> float | None:
    return seconds if seconds > 0 else None


@dataclass(frozen=True)
class HealthDecision:
    """What one health check result decides.

    ``healthy``: the update to send (TASK_RUNNING with ``healthy`` set), None for none;
    ``kill``: kill the task now; ``next_at``: when the next check is due (None: no more).
    """

    healthy: bool | None
    kill: bool
    next_at: float | None
    consecutive_failures: int
    ignored: bool = False  # a failure within the grace period


class HealthSchedule:
    """One task's health check: its counters and the decision each result makes."""

    def __init__(self, check: HealthCheck, started_at: float) -> None:
        if check.type is None:
            raise ValueError("a health check needs a type (COMMAND, HTTP or TCP)")
        self.check = check
        self.started_at = started_at
        # True until the first success: failures within the grace period are ignored.
        self.initializing = True
        self.consecutive_failures = 0  # failures counted since the last success
        self.killed = False  # once set, no more checks are scheduled

    @property
    def first_at(self) -> float:
        return self.started_at + self.check.delay_seconds

    @property
    def timeout(self) -> float | None:
        """Seconds a probe may take (None: no limit)."""
        return _timeout(self.check.timeout_seconds)

    def passed(self, now: float) -> HealthDecision:
        report = self.initializing or self.consecutive_failures > 0
        self.initializing = False
        self.consecutive_failures = 0
        return HealthDecision(True if report else None, False, self._next(now), 0)

    def failed(self, now: float) -> HealthDecision:
        grace = self.check.grace_period_seconds
        if self.initializing and grace > 0 and now - self.started_at <= grace:
            return HealthDecision(None, False, self._next(now), 0, ignored=True)
        self.consecutive_failures += 1
        kill = self.consecutive_failures >= self.check.consecutive_failures
        if kill:
            self.killed = True
        return HealthDecision(False, kill, self._next(now), self.consecutive_failures)

    def result(self, now: float, result: CheckStatusInfo | None) -> tuple[HealthDecision, str]:
        """Take a probe's result (None: it failed to give one); the decision and, for a
        failure, why it failed."""
        if result is None:
            return self.failed(now), "the check could not be run"
        ok, why = passes(self.check, result)
        return (self.passed(now), "") if ok else (self.failed(now), why)

    def _next(self, now: float) -> float | None:
        return None if self.killed else now + self.check.interval_seconds


@dataclass(frozen=True)
class CheckDecision:
    """What one general check result decides: the new ``check_status`` to report (None:
    unchanged, nothing to send) and when the next check is due."""

    changed: CheckStatusInfo | None
    next_at: float


class CheckSchedule:
    """One task's general check: the latest result, and when the next check is due."""

    def __init__(self, check: CheckInfo, started_at: float) -> None:
        if check.type is None:
            raise ValueError("a check needs a type (COMMAND, HTTP or TCP)")
        self.check = check
        self.started_at = started_at
        self.latest = empty_status(check.type)  # what TaskStatus.check_status carries

    @property
    def first_at(self) -> float:
        return self.started_at + self.check.delay_seconds

    @property
    def timeout(self) -> float | None:
        return _timeout(self.check.timeout_seconds)

    def result(self, now: float, result: CheckStatusInfo | None) -> CheckDecision:
        """Take a probe's result (None: an error or a timeout, reported as the empty
        result)."""
        assert self.check.type is not None
        status = empty_status(self.check.type) if result is None else result
        next_at = now + self.check.interval_seconds
        if status == self.latest:
            return CheckDecision(None, next_at)
        self.latest = status
        return CheckDecision(status, next_at)
