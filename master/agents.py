"""Agents' lives at the master: admission, re-registration, disconnection, removal.

A sans-IO core over ``MasterState`` and the ``Registry`` (the store of admitted agents), as
Mesos's master treats agents (docs/flows.md, "Failures"):

- Admission is written to the registry before the agent is answered; admissions that arrive
  together are written in one batch (``Outbox.later``), as Mesos's registrar does. A retry while
  the write is pending is answered by the write.
- Refusals are told: an agent the master refuses for good (marked gone, an id it did not
  admit under this pid, another host) gets ``ShutdownAgent`` with the reason and stops.
- A known agent re-registering (restarted, or back after a broken link) is reconciled here: a
  task the master has and the agent did not report ends (REASON_RECONCILIATION: TASK_DROPPED if
  it was still STAGING, TASK_GONE if it had started; TASK_LOST for frameworks that are not
  PARTITION_AWARE), except a STAGING task whose RunTask went out less than
  ``agent_ping_timeout`` ago (it may have crossed the re-registration on the wire). Tasks and
  executors the agent reports that the master lacks are taken in; those of removed frameworks
  get ``ShutdownFramework``. The allocator's view of the agent is rebuilt (remove, then add with
  what its tasks and executors hold).
- A broken link disconnects the agent (it stays registered): its offers are rescinded, it gets
  no more, and the tasks of frameworks that do not checkpoint are lost.
- Removal (unreachable, unregistered, or gone by an operator): offers rescinded, tasks settled,
  frameworks told ``AgentLost``, the registry marked.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Callable
from dataclasses import replace

import structlog

from corral.ids import AgentID, FrameworkID, IdGenerator
from corral.protocol import AgentInfo
from corral.protocol.messages import (
    AgentLost,
    AgentRegistered,
    AgentReregistered,
    RegisterAgent,
    ReregisterAgent,
    ShutdownAgent,
    ShutdownFramework,
    UnregisterAgent,
)
from corral.resources import Resources
from corral.task_states import Reason, TaskState, is_terminal
from master.accept import allocated
from master.allocator.events import (
    ActivateAgent,
    AddAgent,
    DeactivateAgent,
    RecoverResources,
    RemoveAgent,
)
from master.frameworks import FrameworkLifecycle
from master.observer import Observer
from master.offers import OfferBook
from master.outbox import Outbox
from master.registry import AgentStatus, Registry, RegistryError
from master.state import AgentRecord, MasterState, roles_of
from master.tasks import TaskBook, reported_task

log = structlog.get_logger("master")


class Removal(enum.Enum):
    """Why an agent leaves the master's registered agents; decides its tasks' fate."""

    UNREACHABLE = "unreachable"  # stopped answering pings; may come back
    UNREGISTERED = "unregistered"  # the agent said it leaves for good
    BY_OPERATOR = "gone by operator"  # an operator marked it gone


class AgentLifecycle:
    """Agents coming, going and coming back; see the module docstring."""

    def __init__(
        self,
        state: MasterState,
        out: Outbox,
        registry: Registry,
        tasks: TaskBook,
        offers: OfferBook,
        frameworks: FrameworkLifecycle,
        observer: Observer,
        ids: IdGenerator,
        agent_ping_timeout: float,
        ping_timeout: float,
    ) -> None:
        self.state = state
        self.out = out
        self.registry = registry
        self.tasks = tasks
        self.offers = offers
        self.frameworks = frameworks
        self.observer = observer
        self.ids = ids
        self.agent_ping_timeout = agent_ping_timeout
        self.ping_timeout = ping_timeout  # told to agents: their limit without a ping
        # Generations of the allocator's views of agents, never reused (an agent back from
        # unreachable has a new record, and its old view's allocations must still be stale).
        self._generations = itertools.count(1)
        # Agents (by pid) whose admission waits for the registry write; see write_admissions.
        self._admitting: dict[str, tuple[AgentInfo, Callable[[float], None]]] = {}

    # -- registration -------------------------------------------------------------------

    def register(self, sender: str | None, message: RegisterAgent) -> None:
        info = message.agent
        if sender is None:
            log.warning("agent_registration_refused", reason="anonymous sender: cannot answer")
            return
        if info.id is not None:
            self.refuse(
                sender,
                f"RegisterAgent carries id {info.id}; an agent with an id re-registers",
                info.id,
            )
            return
        existing = self.state.agent_by_pid(sender)
        if existing is not None:
            if replace(existing.info, id=None) != info:
                self.refuse(
                    sender,
                    f"this pid is registered as agent {existing.id} with different hostname, "
                    "resources or attributes; restart the agent with a fresh work directory",
                    existing.id,
                )
                return
            self.out.send(sender, AgentRegistered(existing.id, self.ping_timeout))  # a retry
            return
        if sender in self._admitting:
            return  # a retry while its admission is being written: the answer follows
        agent_id = self.ids.agent_id()
        info = replace(info, id=agent_id)
        version = message.version

        def admitted(now: float) -> None:
            record = AgentRecord(info, sender, version)
            self.state.add_agent(record)
            self._add_to_allocator(record)
            self.observer.agent_added(record)
            self.out.link(sender)
            self.out.send(sender, AgentRegistered(agent_id, self.ping_timeout))
            log.info(
                "agent_registered",
                agent_id=agent_id,
                pid=sender,
                hostname=info.hostname,
                resources=str(info.resources),
            )

        self._admit(info, sender, admitted)

    def reregister(self, sender: str | None, message: ReregisterAgent, now: float) -> None:
        info = message.agent
        if sender is None:
            log.warning("agent_reregistration_refused", reason="anonymous sender: cannot answer")
            return
        if info.id is None:
            self.refuse(sender, "ReregisterAgent carries no agent id; a new agent registers")
            return
        agent_id = info.id
        if self.registry.status(agent_id) is AgentStatus.GONE:
            self.refuse(
                sender,
                f"agent {agent_id} was marked gone for good; start it with a fresh work directory",
                agent_id,
            )
            return
        known = self.state.agents.get(agent_id)
        if known is not None:
            if known.info.hostname != info.hostname:
                self.refuse(
                    sender,
                    f"agent {agent_id} is registered on host {known.info.hostname}, not "
                    f"{info.hostname}; start this agent with a fresh work directory",
                    agent_id,
                )
                return
            shutdown = self._reconcile_known(known, sender, message, now)
            self._reregistered(sender, agent_id, shutdown, message, known=True)
            return
        if sender in self._admitting:
            return  # a retry while its admission is being written: the answer follows

        def admitted(now: float) -> None:
            if agent_id in self.state.agents:  # admitted meanwhile under another pid
                self.refuse(sender, f"agent id {agent_id} was admitted twice", agent_id)
                return
            if self.registry.status(agent_id) is AgentStatus.GONE:  # marked gone meanwhile
                self.refuse(
                    sender,
                    f"agent {agent_id} was marked gone while its re-registration was written",
                    agent_id,
                )
                return
            shutdown = self._admit_with_tasks(info, sender, message, now)
            self.out.link(sender)
            self._reregistered(sender, agent_id, shutdown, message, known=False)

        self._admit(info, sender, admitted)

    def refuse(self, sender: str, reason: str, agent_id: AgentID | None = None) -> None:
        """Refuse an agent for good: logged, and the agent told to stop."""
        log.warning("agent_refused", agent=sender, agent_id=agent_id, reason=reason)
        self.out.send(sender, ShutdownAgent(reason))

    def _reregistered(
        self,
        sender: str,
        agent_id: AgentID,
        shutdown: set[FrameworkID],
        message: ReregisterAgent,
        known: bool,
    ) -> None:
        self.out.send(sender, AgentReregistered(agent_id, self.ping_timeout))
        for framework_id in sorted(shutdown):
            log.info("removed_framework_shut_down", agent=sender, framework_id=framework_id)
            self.out.send(sender, ShutdownFramework(framework_id))
        log.info(
            "agent_reregistered",
            agent_id=agent_id,
            pid=sender,
            known=known,
            tasks=len(message.tasks),
        )

    def _admit(self, info: AgentInfo, pid: str, then: Callable[[float], None]) -> None:
        """Record the agent in the registry, then run ``then`` (which answers it)."""
        self._admitting[pid] = (info, then)
        if len(self._admitting) == 1:
            self.out.later(self.write_admissions)

    def write_admissions(self, now: float) -> None:
        """Write every pending admission in one registry write, then answer each agent; a
        failed write changes nothing (the agents retry)."""
        batch, self._admitting = self._admitting, {}
        admitted = [
            info
            for info, _ in batch.values()
            if self.registry.status(info.id) is not AgentStatus.GONE
        ]
        try:
            self.registry.admit(*admitted)
        except RegistryError as error:
            log.error("agent_admission_failed", agents=len(batch), error=str(error))
            return
        for _, then in batch.values():
            then(now)

    def _add_to_allocator(self, agent: AgentRecord) -> None:
        """A new view of the agent in the allocator: its total, what its tasks and executors
        hold, and a new generation (allocations of earlier views are stale)."""
        agent.generation = next(self._generations)
        used = self.state.used_by_framework(agent)
        self.out.allocate(AddAgent(agent.id, agent.info.resources, used, agent.generation))

    # -- what a re-registering agent reports ----------------------------------------------

    def _admit_with_tasks(
        self, info: AgentInfo, pid: str, message: ReregisterAgent, now: float
    ) -> set[FrameworkID]:
        """An agent unknown to this master (or back from unreachable), with what it runs;
        returns the removed frameworks it runs, for the caller to shut down."""
        assert info.id is not None
        agent_id = info.id
        self.state.recovering.pop(agent_id, None)
        reported = {(task.framework_id, task.task_id) for task in message.tasks}
        stale = [
            task
            for task in self.state.unreachable_tasks(agent_id)
            if (task.framework_id, task.task_id) not in reported
        ]
        record = AgentRecord(info, pid, message.version)
        self.state.add_agent(record)
        for task in stale:
            self.tasks.gone(task)  # the agent no longer runs it
        shutdown = self._take_reported(record, message, now)
        self._add_to_allocator(record)
        if agent_id in self.state.deactivated:  # an operator's deactivation outlasts this
            self.out.allocate(DeactivateAgent(agent_id))
        self.observer.agent_added(record)
        return shutdown

    def _take_reported(
        self, agent: AgentRecord, message: ReregisterAgent, now: float
    ) -> set[FrameworkID]:
        """Take in the tasks and executors a re-registering agent reports and the master lacks.

        Returns the removed frameworks among them: the agent must shut those down. Frameworks
        not registered with this master are remembered from the agent's report (their role
        places the resources in the allocator) and removed if they never come back.
        """
        state = self.state
        removed = state.removed_frameworks
        shutdown: set[FrameworkID] = set()
        for framework_info in message.frameworks:
            framework_id = framework_info.id
            if framework_id is None or framework_id in state.frameworks:
                continue
            if framework_id in removed:
                shutdown.add(framework_id)
            elif framework_id not in state.recovered_frameworks:
                state.recovered_frameworks[framework_id] = framework_info
                self.frameworks.expect(framework_info, now)

        def held(resources: Resources, framework_id: FrameworkID) -> Resources:
            if all(resource.allocation_role is not None for resource in resources):
                return resources
            framework_info = state.framework_info(framework_id)
            return allocated(resources, roles_of(framework_info)[0] if framework_info else "*")

        for task in message.tasks:
            if is_terminal(task.state):
                # Ended, its last update not yet acknowledged (it follows). A task the master
                # still holds live ends now, as the agent says: the allocator is told what the
                # agent uses without it, so that update must find it ended and free nothing.
                # One the master does not know is remembered as ended, so that
                # reconciliation answers the truth meanwhile.
                known = state.task(task.framework_id, task.task_id)
                if known is not None and known.agent_id == agent.id:
                    self.tasks.end_reported(known, task)
                elif known is None and not state.completed_task(task.framework_id, task.task_id):
                    state.add_completed(reported_task(task, agent.id, task.resources))
                continue
            if task.framework_id in removed:
                shutdown.add(task.framework_id)
                continue
            existing = state.task(task.framework_id, task.task_id)
            if existing is not None:
                if existing.agent_id != agent.id:
                    log.warning(
                        "reported_task_ignored",
                        agent_id=agent.id,
                        task_id=task.task_id,
                        reason=f"the master has this task on agent {existing.agent_id}",
                    )
                    continue
                if existing.state is not TaskState.TASK_UNREACHABLE:
                    agent.tasks.add((task.framework_id, task.task_id))
                    continue  # the master's view stands; the agent's updates will follow
            state.forget_completed(task.framework_id, task.task_id)
            record = reported_task(task, agent.id, held(task.resources, task.framework_id))
            self.tasks.add(record)
        for executor in message.executor_infos:
            framework_id = executor.framework_id
            if framework_id is None:
                continue
            if framework_id in removed:
                shutdown.add(framework_id)
                continue
            key = (framework_id, executor.executor_id)
            if key not in agent.executors:
                agent.executors[key] = held(executor.resources, framework_id)
        return shutdown

    def _reconcile_known(
        self, agent: AgentRecord, pid: str, message: ReregisterAgent, now: float
    ) -> set[FrameworkID]:
        """A registered agent re-registers (restarted, or back after a broken link): make the
        master's tasks, executors and allocator agree with what the agent reports. Returns
        the removed frameworks it runs, for the caller to shut down."""
        self.offers.rescind_on(agent, recover=False)  # the allocator's view is rebuilt below
        if agent.pid != pid:
            self.out.unlink(agent.pid)
            self.state.set_agent_pid(agent, pid)
        agent.info = message.agent
        agent.version = message.version
        agent.connected = True
        agent.awaiting_pong = False
        agent.missed_pings = 0
        agent.pending_removal = False
        reported = {(task.framework_id, task.task_id) for task in message.tasks}
        kept_executors = set()
        for task in self.state.tasks_on(agent):
            if (task.framework_id, task.task_id) in reported:
                continue
            in_flight = (
                task.state is TaskState.TASK_STAGING
                and task.launched_at is not None
                and now - task.launched_at < self.agent_ping_timeout
            )
            if in_flight:  # its RunTask may have crossed the re-registration on the wire
                log.info("task_kept_in_flight", agent_id=agent.id, task_id=task.task_id)
                if task.executor_id is not None:
                    kept_executors.add((task.framework_id, task.executor_id))
                continue
            launched = task.state is TaskState.TASK_STAGING
            self.tasks.settle(
                task,
                TaskState.TASK_DROPPED if launched else TaskState.TASK_GONE,
                Reason.REASON_RECONCILIATION,
                f"agent {agent.id} re-registered without this task"
                + (" (its launch was lost)" if launched else ""),
            )
        reported_executors = {
            (executor.framework_id, executor.executor_id) for executor in message.executor_infos
        }
        for key in list(agent.executors):
            if key not in reported_executors and key not in kept_executors:
                del agent.executors[key]
        shutdown = self._take_reported(agent, message, now)
        self.out.allocate(RemoveAgent(agent.id))
        self._add_to_allocator(agent)
        if agent.id in self.state.deactivated:  # an operator's deactivation outlasts this
            self.out.allocate(DeactivateAgent(agent.id))
        self.out.link(pid)
        return shutdown

    def sent_by(self, sender: str | None, agent_id: AgentID, what: str) -> AgentRecord | None:
        """The registered agent ``agent_id`` if ``sender`` is its pid; else None, logged."""
        agent = self.state.agents.get(agent_id)
        if agent is None or agent.pid != sender:
            log.warning(
                f"{what}_refused",
                agent=sender,
                agent_id=agent_id,
                reason="unknown agent" if agent is None else "not sent by that agent",
            )
            return None
        return agent

    # -- leaving ------------------------------------------------------------------------

    def unregister(self, sender: str | None, message: UnregisterAgent) -> None:
        agent = self.state.agents.get(message.agent_id)
        if agent is None or agent.pid != sender:
            log.warning(
                "agent_unregistration_refused",
                agent=sender,
                agent_id=message.agent_id,
                reason="unknown agent id" if agent is None else "not sent by that agent",
            )
            return
        log.info("agent_unregistered", agent_id=agent.id)
        self.remove(agent, Removal.UNREGISTERED)

    def remove(self, agent: AgentRecord, why: Removal) -> None:
        """Unreachable (may come back) or gone: offers rescinded, tasks reported, AgentLost."""
        unreachable = why is Removal.UNREACHABLE
        self.offers.rescind_on(agent, recover=False)  # RemoveAgent frees them below
        tasks = self.state.tasks_on(agent)
        self.state.remove_agent(agent.id, unreachable)
        self.out.unlink(agent.pid)
        self.out.allocate(RemoveAgent(agent.id))  # frees what it held
        try:
            self.registry.mark(
                agent.id, AgentStatus.UNREACHABLE if unreachable else AgentStatus.GONE
            )
        except RegistryError as error:
            log.error("registry_update_failed", agent_id=agent.id, error=str(error))
        if why is Removal.BY_OPERATOR:
            state, reason = TaskState.TASK_GONE_BY_OPERATOR, Reason.REASON_AGENT_REMOVED_BY_OPERATOR
        else:
            state = TaskState.TASK_UNREACHABLE if unreachable else TaskState.TASK_GONE
            reason = Reason.REASON_AGENT_REMOVED
        for task in tasks:
            self.tasks.settle(task, state, reason, f"agent {agent.id} is {why.value}")
        for framework in self.state.frameworks.values():
            if framework.connected:
                self.out.send(framework.pid, AgentLost(agent.id))
        if not unreachable:  # an unreachable agent stays deactivated when it comes back
            self.state.deactivated.discard(agent.id)
        self.observer.agent_removed(agent.id)
        log.info("agent_removed", agent_id=agent.id, reason=why.value, tasks=len(tasks))

    def disconnected(self, agent: AgentRecord) -> None:
        """The link to the agent broke: no offers until it re-registers, and the tasks of
        frameworks that do not checkpoint are lost (they do not survive an agent restart)."""
        agent.connected = False
        self.offers.rescind_on(agent)
        self.out.allocate(DeactivateAgent(agent.id))
        lost = 0
        for task in self.state.tasks_on(agent):
            info = self.state.framework_info(task.framework_id)
            if info is None or info.checkpoint:
                continue
            self.tasks.settle(
                task,
                TaskState.TASK_LOST,
                Reason.REASON_AGENT_DISCONNECTED,
                f"agent {agent.id} disconnected and framework {task.framework_id} does not "
                "checkpoint",
            )
            self.out.allocate(RecoverResources(task.framework_id, agent.id, task.resources))
            lost += 1
        for key in sorted(agent.executors):
            info = self.state.framework_info(key[0])
            if info is not None and not info.checkpoint:
                self.out.allocate(RecoverResources(key[0], agent.id, agent.executors.pop(key)))
        # An agent that stops cleanly disconnects too: only lost tasks make it a warning.
        report = log.warning if lost else log.info
        report("agent_disconnected", agent_id=agent.id, pid=agent.pid, tasks_lost=lost)

    # -- an operator's word -------------------------------------------------------------

    def mark_gone(self, agent_id: AgentID) -> tuple[int, str]:
        """An operator says the agent is gone for good; returns an HTTP status and sentence.

        The registry is written first: if that fails nothing else changes (503). A registered
        agent is told to stop (``ShutdownAgent``)."""
        status = self.registry.status(agent_id)
        if status is AgentStatus.GONE:
            return 200, f"agent {agent_id} was already marked gone"
        agent = self.state.agents.get(agent_id)
        if status is None and agent is None:
            return 404, f"agent {agent_id} is unknown to this master (never admitted)"
        try:
            self.registry.mark(agent_id, AgentStatus.GONE)
        except RegistryError as error:
            log.error("registry_update_failed", agent_id=agent_id, error=str(error))
            return 503, f"agent {agent_id} not marked gone: {error}; retry later"
        self.state.recovering.pop(agent_id, None)
        if agent is not None:
            pid = agent.pid
            self.remove(agent, Removal.BY_OPERATOR)
            self.out.send(pid, ShutdownAgent(f"an operator marked agent {agent_id} gone"))
        else:
            for task in self.state.remove_unreachable(agent_id):
                self.tasks.settle(
                    task,
                    TaskState.TASK_GONE_BY_OPERATOR,
                    Reason.REASON_AGENT_REMOVED_BY_OPERATOR,
                    f"agent {agent_id} is gone by operator",
                )
        log.warning("agent_marked_gone", agent_id=agent_id, was=status.value if status else None)
        return 200, f"agent {agent_id} is marked gone"

    def deactivate(self, agent: AgentRecord) -> None:
        """No offers from the agent until it is reactivated; its outstanding offers are
        rescinded; its tasks keep running."""
        self.state.deactivated.add(agent.id)
        self.out.allocate(DeactivateAgent(agent.id))
        self.offers.rescind_on(agent)
        log.info("agent_deactivated", agent_id=agent.id, by="operator")

    def reactivate(self, agent: AgentRecord) -> None:
        self.state.deactivated.discard(agent.id)
        if agent.connected:
            self.out.allocate(ActivateAgent(agent.id))
        log.info("agent_reactivated", agent_id=agent.id, by="operator")
