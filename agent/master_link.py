"""The agent's link to its master: finding it, registering with it, noticing it is gone.

``MasterLink`` lives inside the agent actor and acts through it (its sends, timers, links).
After recovery the agent ``start``s it: it finds the master from its HTTP address (``/master/
info``, off the actor) unless it was given the master's pid, then sends ``RegisterAgent`` (or
``ReregisterAgent`` once the agent has an id) and resends it with backoff (1 s doubling to the
agent's maximum, on the runtime clock) until the master answers. Registered, it expects the
master's ping within the ping timeout the master gave; a broken link, a silent master or a
ping that says the master does not count this agent ends the registration: the agent is told
(it holds its status updates) and the link registers again, finding the master anew when it
was given an HTTP address (the master may have moved).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

import structlog

import corral
from agent.executor_run import ExecutorRun
from agent.framework_run import FrameworkRun
from agent.options import AgentOptions
from corral.discovery import master_pid
from corral.ids import AgentID, FrameworkID, TaskID
from corral.protocol import AgentInfo, Task
from corral.protocol.endpoint import ProtocolProcess
from corral.protocol.messages import Message, PingAgent, PongAgent, ReregisterAgent, StatusUpdate
from libprocess import UPID, Future, Timer

log = structlog.get_logger("agent.master_link")


class MasterLink:
    """Registration with the master, on behalf of ``process`` (the agent actor).

    ``registration()`` builds the (Re)RegisterAgent to send; ``registered(agent_id)`` runs
    when the master answers; ``lost(why)`` when the registration ends.
    """

    def __init__(
        self,
        process: ProtocolProcess,
        options: AgentOptions,
        registration: Callable[[], Message],
        registered: Callable[[AgentID], None],
        lost: Callable[[str], None],
    ) -> None:
        self.process = process
        self.options = options
        self.registration = registration
        self.on_registered = registered
        self.on_lost = lost
        self.master: UPID | None = options.master_upid() if options.master_is_pid else None
        self.registered = False
        self.started = False  # recovery is done: registration may begin
        self.ping_timeout = options.master_ping_timeout
        self._backoff = options.registration_backoff
        self._registration_timer: Timer | None = None
        self._ping_timer: Timer | None = None

    def is_master(self, sender: UPID | None) -> bool:
        """Whether ``sender`` is the master this agent is registered, or registering, with."""
        return sender is not None and sender == self.master

    # -- registering ------------------------------------------------------------------------

    def start(self) -> None:
        """Begin: find the master, or register with the one given."""
        self.started = True
        if self.master is None:
            self._discover()
        else:
            self._register()

    def stop(self) -> None:
        """Register no more (the agent stops, or the master refused it for good)."""
        self.started = False
        self.registered = False
        for timer in (self._registration_timer, self._ping_timer):
            if timer is not None:
                timer.cancel()
        self._registration_timer = self._ping_timer = None

    def _discover(self) -> None:
        self._registration_timer = None
        if not self.started:
            return
        loop = asyncio.get_running_loop()
        found: Future[UPID] = self.process.run_async(
            loop.run_in_executor(None, master_pid, self.options.master)
        )
        found.on_any(self._master_found)

    def _master_found(self, found: Future[UPID]) -> None:
        if not self.started:
            return
        if found.is_failed():
            log.warning(
                "master_not_found",
                address=self.options.master,
                error=str(found.failure),
                retry_in=self._backoff,
            )
            self._registration_timer = self.process.delay(self._backoff, self._discover)
            self._grow_backoff()
            return
        self.master = found.value
        self._backoff = self.options.registration_backoff
        self._register()

    def _register(self) -> None:
        """Send (Re)RegisterAgent and retry with backoff until the master answers."""
        self._registration_timer = None
        if self.registered or self.master is None or not self.started:
            return
        message = self.registration()
        self.process.send_message(self.master, message)
        log.info(
            "agent_registering",
            master=self.master,
            message=message.NAME,
            retry_in=self._backoff,
        )
        self._registration_timer = self.process.delay(self._backoff, self._register)
        self._grow_backoff()

    def _grow_backoff(self) -> None:
        self._backoff = min(self._backoff * 2, self.options.registration_backoff_max)

    # -- the master's answers ---------------------------------------------------------------

    def answered(
        self, sender: UPID | None, agent_id: AgentID, ping_timeout: float | None, event: str
    ) -> None:
        """AgentRegistered / AgentReregistered (``event`` names it in the log)."""
        if not self.is_master(sender):
            log.warning("registration_from_stranger", sender=sender, master=self.master)
            return
        if self.registered:
            log.debug("registration_repeated", agent_id=agent_id)
            return
        if ping_timeout is not None and ping_timeout > 0:
            self.ping_timeout = ping_timeout
        self._expect_ping()
        self.registered = True
        self._backoff = self.options.registration_backoff
        if self._registration_timer is not None:
            self._registration_timer.cancel()
            self._registration_timer = None
        assert self.master is not None
        self.process.link(self.master)
        log.info(event, agent_id=agent_id, master=self.master)
        self.on_registered(agent_id)

    def ping(self, sender: UPID | None, message: PingAgent) -> None:
        if sender is None:
            return
        self.process.send_message(sender, PongAgent())
        if sender != self.master:
            return
        if not message.connected:
            self._disconnected("the master's ping says it does not count this agent")
        elif self.registered:
            self._expect_ping()

    def exited(self, pid: UPID) -> None:
        if pid == self.master:
            self._disconnected("the link to the master broke")

    # -- losing it --------------------------------------------------------------------------

    def _expect_ping(self) -> None:
        """(Re)start the wait for the master's next ping."""
        if self._ping_timer is not None:
            self._ping_timer.cancel()
        self._ping_timer = self.process.delay(self.ping_timeout, self._ping_timed_out)

    def _ping_timed_out(self) -> None:
        self._ping_timer = None
        self._disconnected(f"no ping from the master for {self.ping_timeout:g} s")

    def _disconnected(self, why: str) -> None:
        """The master is gone or no longer counts us: register again (finding the master
        anew when we were given its HTTP address: it may have moved)."""
        if not self.registered:
            return
        log.warning("master_disconnected", master=self.master, reason=why)
        self.registered = False
        if self._ping_timer is not None:
            self._ping_timer.cancel()
            self._ping_timer = None
        if self.master is not None:
            self.process.unlink(self.master)
        self.on_lost(why)
        if self.options.master_is_pid:
            self._register()
        else:
            self._discover()


def reregistration(
    info: AgentInfo,
    executors: list[ExecutorRun],
    frameworks: Iterable[FrameworkRun],
    pending: list[StatusUpdate],
) -> ReregisterAgent:
    """What a known agent re-registers with: the tasks of its live executors, and the tasks
    whose executor is gone but whose last updates (``pending``, the newest unacknowledged
    update of each task) are still on their way: the master must not take those for lost."""
    assert info.id is not None
    tasks = []
    covered = set()
    for executor in executors:
        for task in executor.tasks.values():
            covered.add((executor.framework_id, task.task_id))
            tasks.append(
                Task(
                    name=task.info.name,
                    task_id=task.task_id,
                    framework_id=executor.framework_id,
                    agent_id=info.id,
                    state=task.state,
                    executor_id=None if executor.command_task else executor.executor_id,
                    resources=task.info.resources,
                    discovery=task.info.discovery,
                )
            )
    for update in pending:
        status = update.status
        if (update.framework_id, status.task_id) in covered:
            continue
        tasks.append(
            Task(
                name=status.task_id,
                task_id=TaskID(status.task_id),
                framework_id=FrameworkID(update.framework_id),
                agent_id=info.id,
                state=status.state,
                statuses=(status,),
            )
        )
    return ReregisterAgent(
        agent=info,
        version=corral.__version__,
        tasks=tuple(tasks),
        executor_infos=tuple(e.info for e in executors if not e.command_task),
        frameworks=tuple(framework.info for framework in frameworks),
    )
