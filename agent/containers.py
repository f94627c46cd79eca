"""The containers of the agent's executor runs: launched, watched, destroyed, forgotten.

The containerizer's work blocks (fork/exec, waiting for a process, killing a session), so it
runs on the runtime's loop as work owned by the agent process (``Process.run_async``). Each
result comes back inside the agent as an event of the run's lifecycle (``feed``): Launched or
LaunchFailed, ContainerEnded, Destroyed, with how the run ended where it did. Work cut short
because the agent stopped comes back as nothing: there is no one left to act on it.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import structlog

from agent.endings import Ending
from agent.executor_lifecycle import ContainerEnded, Destroyed, Event, Launched, LaunchFailed
from agent.executor_run import ExecutorRun
from containerizer import (
    ContainerConfig,
    ContainerError,
    Containerizer,
    ContainerState,
    ContainerTermination,
    RecoveryResult,
    ResourceStatistics,
)
from corral.task_states import Reason
from libprocess import Future, Process, ProcessTerminated

log = structlog.get_logger("agent.containers")

Feed = Callable[[ExecutorRun, Event, Ending | None], None]


class ExecutorContainers:
    """The containerizer, driven for ``process``; results go to ``feed(run, event, ending)``,
    and ``settled()`` runs whenever a destroy is no longer in flight."""

    def __init__(
        self,
        process: Process,
        containerizer: Containerizer,
        feed: Feed,
        settled: Callable[[], None],
    ) -> None:
        self.process = process
        self.containerizer = containerizer
        self.feed = feed
        self.settled = settled
        self._destroying: set[Future[Any]] = set()  # destroys in flight

    @property
    def destroying(self) -> bool:
        return bool(self._destroying)

    def launch(self, executor: ExecutorRun, config: ContainerConfig) -> None:
        log.info(
            "executor_launching",
            executor_id=executor.executor_id,
            container_id=executor.container_id,
            command=config.command,
        )
        launched = self._run(self.containerizer.launch(executor.container_id, config))
        launched.on_any(unless_stopped(lambda done: self._launched(executor, done)))

    def watch(self, executor: ExecutorRun) -> None:
        ended = self._run(self.containerizer.wait(executor.container_id))
        ended.on_any(unless_stopped(lambda done: self._ended(executor, done)))

    def destroy(self, executor: ExecutorRun) -> None:
        """Destroy the run's container with the grace its lifecycle decided."""
        self._destroy(
            executor.container_id,
            executor.lifecycle.grace,
            lambda done: self._destroyed(executor, done),
        )

    def destroy_orphan(self, container_id: str) -> None:
        """A container recovery found that no executor run owns: destroyed, then forgotten."""
        log.info("orphan_container_destroying", container_id=container_id)

        def destroyed(done: Future[Any]) -> None:
            if done.is_failed():
                log.error(
                    "orphan_destroy_failed", container_id=container_id, error=str(done.failure)
                )
            else:
                self.forget(container_id)

        self._destroy(container_id, 0.0, destroyed)

    def forget(self, container_id: str) -> None:
        try:
            self.containerizer.forget(container_id)
        except ContainerError as problem:
            log.warning("container_forget_failed", container_id=container_id, error=str(problem))

    def recover(self, known: Sequence[ContainerState]) -> Future[RecoveryResult]:
        return self._run(self.containerizer.recover(known))

    def usage(self, executor: ExecutorRun) -> Future[ResourceStatistics]:
        return self._run(self.containerizer.usage(executor.container_id))

    def wait(self, executor: ExecutorRun) -> Future[ContainerTermination]:
        return self._run(self.containerizer.wait(executor.container_id))

    def kill_at_exit(self, kept: Iterable[str]) -> None:
        """The agent stops and nothing can be awaited: SIGKILL every container's session but
        those ``kept`` for the next agent to recover."""
        for container_id in self.containerizer.containers() - set(kept):
            with contextlib.suppress(ContainerError, ProcessLookupError, PermissionError):
                pid = self.containerizer.status(container_id).pid
                os.killpg(pid, signal.SIGKILL)
                log.warning("container_killed_at_exit", container_id=container_id, pid=pid)

    # -- inside ------------------------------------------------------------------------------

    def _run(self, work: Any) -> Future[Any]:
        return self.process.run_async(work)

    def _destroy(
        self, container_id: str, grace: float, then: Callable[[Future[Any]], None]
    ) -> None:
        """Destroy, ``then`` carry on; ``settled()`` runs after, once it is out of flight."""
        destroyed = self._run(self.containerizer.destroy(container_id, grace))
        self._destroying.add(destroyed)

        def done(_: Future[Any]) -> None:
            try:
                then(destroyed)
            finally:  # a continuation that raises is reported; the destroy is over anyway
                self._destroying.discard(destroyed)
                self.settled()

        destroyed.on_any(unless_stopped(done))

    def _launched(self, executor: ExecutorRun, launched: Future[Any]) -> None:
        if launched.is_failed():
            error = launched.failure
            log.warning(
                "executor_launch_failed", executor_id=executor.executor_id, error=str(error)
            )
            ending = Ending(
                None,
                f"the container could not start: {error}",
                Reason.REASON_CONTAINER_LAUNCH_FAILED,
            )
            self.feed(executor, LaunchFailed(), ending)
            return
        status = launched.value
        if status is not None:
            executor.container = status.checkpoint
        self.feed(executor, Launched(), None)

    def _ended(self, executor: ExecutorRun, ended: Future[ContainerTermination]) -> None:
        if ended.is_failed():
            error = ended.failure
            log.error("container_wait_failed", container_id=executor.container_id, error=str(error))
            ending = Ending(None, f"the executor's container was lost: {error}")
        else:
            termination = ended.value
            ending = Ending(termination, f"the executor {termination.describe()}")
        self.feed(executor, ContainerEnded(), ending)

    def _destroyed(self, executor: ExecutorRun, destroyed: Future[Any]) -> None:
        if destroyed.is_failed():  # the wait still reports the end, if there is one
            log.error(
                "container_destroy_failed",
                container_id=executor.container_id,
                executor_id=executor.executor_id,
                error=str(destroyed.failure),
            )
            return
        self.feed(executor, Destroyed(), None)


def unless_stopped(callback: Callable[[Future[Any]], None]) -> Callable[[Future[Any]], None]:
    """A continuation skipped when the work was cut short because the agent stopped (its
    future fails with ProcessTerminated): nothing is left to act on."""

    def run(future: Future[Any]) -> None:
        if future.is_failed() and isinstance(future.failure, ProcessTerminated):
            return
        callback(future)

    return run
