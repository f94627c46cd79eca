"""network/ports on the runtime's timers: every watch interval, one check of the containers'
listening ports (``check_ports`` of the containerizer, which scans and kills).

A process of its own in the agent's runtime, id ``network-ports``, as Mesos's isolator has
one: its delay reads the runtime clock, so a test with a paused clock drives the checks.
The next check is scheduled once the last one has finished, so slow scans never pile up.
A container it kills ends through its executor's lifecycle as any other limitation does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from agent.containers import unless_stopped
from agent.executor_run import ExecutorRun
from containerizer import ContainerError
from libprocess import Future, Process

log = structlog.get_logger("agent.port_watcher")

Check = Callable[[], Awaitable[list[Any]]]


class PortWatcherProcess(Process):
    """Runs ``check`` every ``interval`` runtime-clock seconds; ``checks`` counts them."""

    def __init__(self, check: Check, interval: float) -> None:
        super().__init__("network-ports")
        if interval <= 0:
            raise ValueError(f"the ports watch interval must be positive seconds, got {interval}")
        self._check = check
        self.interval = interval
        self.checks = 0  # checks finished, for tests and logs

    def initialize(self) -> None:
        log.info("port_watch_started", interval=self.interval)
        self.delay(self.interval, self._tick)

    def _tick(self) -> None:
        self.run_async(self._check()).on_any(unless_stopped(self._checked))

    def _checked(self, done: Future[list[Any]]) -> None:
        self.checks += 1
        if done.is_failed():
            log.error("port_check_failed", error=str(done.failure))
        self.delay(self.interval, self._tick)


def start_port_watcher(agent: Any) -> PortWatcherProcess | None:
    """Spawn the watcher in the agent's runtime when the agent's containerizer runs
    network/ports; None otherwise."""
    check = getattr(agent.containerizer, "check_ports", None)
    if check is None or "network/ports" not in agent.isolators():
        return None
    watcher = PortWatcherProcess(check, agent.options.container_ports_watch_interval)
    agent.runtime.spawn(watcher)
    return watcher


def allocate_ports(containerizer: Any, executor: ExecutorRun) -> None:
    """A custom executor's container may listen on its own ports and every task's it runs:
    tell the containerizer, once tasks joined it."""
    update = getattr(containerizer, "update_ports", None)
    if update is None:
        return
    resources = executor.info.resources
    for task in executor.tasks.values():
        resources = resources + task.info.resources
    try:
        update(executor.container_id, resources.ranges("ports").bounds)
    except ContainerError as error:  # it ended meanwhile: nothing left to watch
        log.info(
            "container_ports_not_updated", container_id=executor.container_id, error=str(error)
        )
