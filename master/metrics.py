"""The master's metrics in ``/metrics/snapshot``: Corral's own, and Mesos's names (which Mesos
tools and dashboards read), from the master's records.

Terminal task states and launches are counted as they happen (an ``Observer`` of the cores);
the gauges are read from ``MasterState`` when the snapshot is read. The derived ones (tasks
per state, resources used and total, connected agents...) come from one pass over agents and
tasks, reused while fresh: at 20,000 agents and 100,000 tasks a pass takes a good part of a
second, so (as the state snapshot) passes may take at most a tenth of the master's time
however often ``/metrics/snapshot`` is read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from corral.protocol import TaskStatus
from corral.task_states import TaskState, is_terminal
from master.observer import Observer
from master.state import MasterState, TaskRecord
from master.state_snapshot import BUILD_SHARE

MESOS_RESOURCES = ("cpus", "mem", "disk", "gpus")


def task_metric(state: TaskState) -> str:
    """Mesos's metric name for a task state: ``master/tasks_running``."""
    return "master/tasks_" + state.value.lower().removeprefix("task_")


class MasterMetrics(Observer):
    """Registers the master's metrics on ``metrics`` (the runtime's); ``remove`` drops them."""

    def __init__(
        self,
        metrics: Any,
        state: MasterState,
        now: Callable[[], float],
        queue: Callable[[], Iterable[Any]] = tuple,
    ) -> None:
        self._registry = metrics
        self._state = state
        started = now()
        self._launched = metrics.counter("master/tasks_launched")
        self._refused = metrics.counter("master/tasks_refused")  # TASK_ERROR / TASK_DROPPED
        # Events the allocator refused: each one a disagreement between it and the master.
        self.allocator_errors = metrics.counter("master/allocator_errors")
        self._ended = {
            state: metrics.counter(task_metric(state)) for state in TaskState if is_terminal(state)
        }
        self._figures_cache: tuple[float, float, dict[str, float]] | None = None
        records = state
        gauges = [
            metrics.gauge("master/agents_active", lambda: len(records.agents)),
            metrics.gauge("master/agents_unreachable", lambda: len(records.unreachable)),
            metrics.gauge(
                "master/agents_disconnected",
                lambda: sum(not a.connected for a in records.agents.values()),
            ),
            metrics.gauge(
                "master/frameworks_active",
                lambda: sum(f.active for f in records.frameworks.values()),
            ),
            metrics.gauge(
                "master/frameworks_inactive",
                lambda: sum(not f.active for f in records.frameworks.values()),
            ),
            metrics.gauge("master/outstanding_offers", lambda: len(records.offers)),
            metrics.gauge("master/tasks_active", lambda: len(records.tasks)),
            metrics.gauge("master/elected", lambda: 1),
            metrics.gauge("master/uptime_secs", lambda: now() - started),
            metrics.gauge("master/slaves_unreachable", lambda: len(records.unreachable)),
            # Mesos's: what waits in the master's mailbox, messages (tuples) and the rest
            # (dispatches: timers, HTTP requests, work handed over from other threads). A
            # master behind its load shows it here before its latency does.
            metrics.gauge(
                "master/event_queue_messages",
                lambda: sum(type(event) is tuple for event in queue()),
            ),
            metrics.gauge(
                "master/event_queue_dispatches",
                lambda: sum(type(event) is not tuple for event in queue()),
            ),
        ]
        live = [s for s in TaskState if not is_terminal(s) and s is not TaskState.TASK_UNKNOWN]
        derived = [
            "master/slaves_connected",
            "master/slaves_disconnected",
            "master/slaves_active",
            "master/slaves_inactive",
            "master/frameworks_connected",
            "master/frameworks_disconnected",
            *(task_metric(state) for state in live),
            *(
                f"master/{resource}_{kind}"
                for resource in MESOS_RESOURCES
                for kind in ("total", "used", "percent")
            ),
        ]
        gauges.extend(metrics.gauge(name, self._figure(name)) for name in derived)
        self._metrics = [
            self._launched,
            self._refused,
            self.allocator_errors,
            *self._ended.values(),
            *gauges,
        ]

    def remove(self) -> None:
        for metric in self._metrics:
            self._registry.remove(metric.name)

    # -- as an observer -------------------------------------------------------------------

    def task_updated(self, task: TaskRecord, status: TaskStatus, ended: bool) -> None:
        if ended:
            self._ended[status.state].inc()

    def tasks_launched(self, count: int) -> None:
        self._launched.inc(count)

    def tasks_refused(self, count: int) -> None:
        self._refused.inc(count)

    # -- derived gauges -------------------------------------------------------------------

    def _figure(self, name: str) -> Callable[[], float]:
        return lambda: self._figures()[name]

    def _figures(self) -> dict[str, float]:
        """Every derived gauge from one pass, reused while fresh (module docstring)."""
        wall = time.monotonic()
        cached = self._figures_cache
        if cached is not None and wall - cached[0] < cached[1] / BUILD_SHARE:
            return cached[2]
        records = self._state
        figures: dict[str, float] = dict.fromkeys(
            (task_metric(state) for state in TaskState if not is_terminal(state)), 0
        )
        for task in records.tasks.values():
            figures[task_metric(task.state)] = figures.get(task_metric(task.state), 0) + 1
        totals = dict.fromkeys(MESOS_RESOURCES, 0)
        used = dict.fromkeys(MESOS_RESOURCES, 0)
        connected = 0
        for agent in records.agents.values():
            connected += agent.connected
            for name, millis in agent.info.resources.quantities().items():
                if name in totals:
                    totals[name] += millis
            held = [records.tasks[key].resources for key in agent.tasks]
            for resources in [*held, *agent.executors.values()]:
                for name, millis in resources.quantities().items():
                    if name in used:
                        used[name] += millis
        deactivated = sum(a in records.agents for a in records.deactivated)
        frameworks = sum(f.connected for f in records.frameworks.values())
        figures.update(
            {
                "master/slaves_connected": connected,
                "master/slaves_disconnected": len(records.agents) - connected,
                "master/slaves_active": connected - deactivated,
                "master/slaves_inactive": deactivated,
                "master/frameworks_connected": frameworks,
                "master/frameworks_disconnected": len(records.frameworks) - frameworks,
            }
        )
        for name in MESOS_RESOURCES:
            figures[f"master/{name}_total"] = totals[name] / 1000
            figures[f"master/{name}_used"] = used[name] / 1000
            figures[f"master/{name}_percent"] = used[name] / totals[name] if totals[name] else 0.0
        self._figures_cache = (wall, time.monotonic() - wall, figures)
        return figures
