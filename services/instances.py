"""Instance records: one per task the scheduler launched, and its state from status updates.

A record is written (and fsynced) *before* its task is launched, so a scheduler killed right
after a launch still knows the task on restart: reconciliation then tells it the task's
state (TASK_LOST or TASK_UNKNOWN for a launch that never reached the master). That is what
keeps a restart from losing or doubling instances.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from corral.task_states import TaskState

# Mesos states that end a task for good.
TERMINAL = frozenset(
    {
        TaskState.TASK_FINISHED,
        TaskState.TASK_FAILED,
        TaskState.TASK_KILLED,
        TaskState.TASK_LOST,
        TaskState.TASK_ERROR,
        TaskState.TASK_DROPPED,
        TaskState.TASK_GONE,
        TaskState.TASK_GONE_BY_OPERATOR,
        TaskState.TASK_UNKNOWN,
    }
)
# Marathon's instance conditions, by the Mesos state behind them.
CONDITION = {
    TaskState.TASK_STAGING: "Staging",
    TaskState.TASK_STARTING: "Starting",
    TaskState.TASK_RUNNING: "Running",
    TaskState.TASK_KILLING: "Killing",
    TaskState.TASK_FINISHED: "Finished",
    TaskState.TASK_FAILED: "Failed",
    TaskState.TASK_KILLED: "Killed",
    TaskState.TASK_LOST: "Lost",
    TaskState.TASK_ERROR: "Error",
    TaskState.TASK_DROPPED: "Dropped",
    TaskState.TASK_GONE: "Gone",
    TaskState.TASK_GONE_BY_OPERATOR: "Gone",
    TaskState.TASK_UNKNOWN: "Unknown",
    TaskState.TASK_UNREACHABLE: "Unreachable",
}


@dataclass
class HealthResult:
    """Marathon's ``healthCheckResults[]`` entry, kept from the agent's ``healthy`` flags."""

    alive: bool = False
    consecutive_failures: int = 0
    first_success: str | None = None
    last_success: str | None = None
    last_failure: str | None = None
    last_failure_cause: str | None = None


@dataclass
class Instance:
    """One task of an app. ``goal`` is "Running" until the scheduler decides to kill it
    ("Stopped"), or gives it up as unreachable for too long ("Replaced"): then its end is
    expected and never replaced, and it no longer counts toward the app's instances."""

    task_id: str
    app_id: str
    version: str  # the app version it was launched with
    config_version: str  # the app config it runs: a deployment replaces older ones
    agent_id: str
    host: str
    ports: list[int]
    service_ports: list[int]
    staged_at: str  # ISO 8601, when the launch was decided
    state: TaskState = TaskState.TASK_STAGING
    goal: str = "Running"
    started_at: str | None = None  # first TASK_RUNNING
    healthy: bool | None = None  # the agent's latest verdict (None: no result yet)
    health: HealthResult = field(default_factory=HealthResult)
    message: str | None = None
    reason: str | None = None
    unreachable_since: float | None = None  # scheduler clock, when TASK_UNREACHABLE came
    attributes: dict[str, str] = field(default_factory=dict)  # its agent's, for constraints
    killing: bool = False  # a kill was sent
    ready: bool | None = None  # the app's readiness checks passed (None: not yet asked)
    readiness_due: float = 0.0  # scheduler clock: when to ask again

    # -- what the scheduler reads -----------------------------------------------------------

    @property
    def condition(self) -> str:
        return CONDITION.get(self.state, self.state.value)

    def is_terminal(self) -> bool:
        return self.state in TERMINAL

    def is_active(self) -> bool:
        """Counts toward the app's instances: launched or running, not ended, not killed."""
        return not self.is_terminal() and self.goal == "Running"

    def is_running(self) -> bool:
        return self.state is TaskState.TASK_RUNNING

    def is_ready(self, health_checked: bool, readiness_checked: bool = False) -> bool:
        """Running, healthy when the app has health checks, and ready when it has readiness
        checks: what a deployment waits for."""
        return (
            self.is_active()
            and self.is_running()
            and (not health_checked or self.healthy is True)
            and (not readiness_checked or self.ready is True)
        )

    # -- status updates ---------------------------------------------------------------------

    def apply(
        self,
        state: TaskState,
        healthy: bool | None,
        message: str | None,
        reason: str | None,
        at: str,
    ) -> tuple[bool, bool]:
        """Take one status update; returns (state changed, health changed)."""
        if self.is_terminal():
            return False, False  # a late or duplicate update of an ended task
        changed = state is not self.state
        self.state = state
        self.message = message or self.message
        self.reason = reason
        if state is TaskState.TASK_RUNNING and self.started_at is None:
            self.started_at = at
        health_changed = False
        if healthy is not None and state is TaskState.TASK_RUNNING:
            health_changed = healthy is not self.healthy
            self.healthy = healthy
            result = self.health
            result.alive = healthy
            if healthy:
                result.consecutive_failures = 0
                result.last_success = at
                result.first_success = result.first_success or at
            else:
                result.consecutive_failures += 1
                result.last_failure = at
                result.last_failure_cause = message or "health check failed"
        if self.is_terminal() and self.healthy:
            self.healthy = False
            health_changed = True
        return changed, health_changed

    # -- the store's form -------------------------------------------------------------------

    def to_record(self) -> dict[str, Any]:
        # By hand: dataclasses.asdict deep-copies every value, the cost of a big deployment.
        record = {name: getattr(self, name) for name in _FIELDS}
        record["state"] = self.state.value
        record["health"] = dict(vars(self.health))
        record["ports"] = list(self.ports)
        record["service_ports"] = list(self.service_ports)
        record["attributes"] = dict(self.attributes)
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Instance:
        values = dict(record)
        values["state"] = TaskState(values["state"])
        values["health"] = HealthResult(**values.get("health") or {})
        return cls(**values)


_FIELDS = tuple(f.name for f in dataclasses.fields(Instance))
