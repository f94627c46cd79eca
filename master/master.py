"""The master actor: agents, frameworks, offers, tasks and status updates (docs/flows.md).

A thin actor over ``MasterState`` (bookkeeping), ``validation`` (accept checks) and the
``Registry`` (admitted agents on disk). It owns an ``AllocatorProcess`` in the same runtime
and speaks to it only through ``AllocatorClient``; allocations come back as
``allocator/allocations`` messages and leave as offers. Bad requests from outside are logged
with a reason and change nothing; nothing a peer sends can crash the master.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import structlog
from aiohttp import web

from corral.ids import AgentID, FrameworkID, IdGenerator, OfferID, TaskID
from corral.protocol import (
    Address,
    AgentInfo,
    AllocationInfo,
    Filters,
    FrameworkCapabilityType,
    FrameworkInfo,
    MasterInfo,
    Offer,
    Operation,
    OperationType,
    TaskGroupInfo,
    TaskInfo,
    TaskStatus,
    json_compatible,
)
from corral.protocol.endpoint import ProtocolProcess, receives
from corral.protocol.messages import (
    AcceptOffers,
    AgentLost,
    AgentRegistered,
    AgentReregistered,
    DeactivateFramework,
    DeclineOffers,
    ExecutorLost,
    ExecutorToFramework,
    ExitedExecutor,
    FrameworkError,
    FrameworkRegistered,
    FrameworkReregistered,
    FrameworkToExecutor,
    KillTask,
    PingAgent,
    PongAgent,
    ReconcileTasks,
    RegisterAgent,
    RegisterFramework,
    ReregisterAgent,
    ReregisterFramework,
    RescindOffer,
    ResourceOffers,
    ReviveOffers,
    RunTask,
    RunTaskGroup,
    ShutdownExecutor,
    ShutdownFramework,
    StatusUpdate,
    StatusUpdateAcknowledgement,
    SuppressOffers,
    UnregisterAgent,
    UnregisterFramework,
)
from corral.resources import Resources
from corral.task_states import Reason, Source, TaskState, is_terminal
from libprocess import UPID, Timer, handler, route
from master.allocator import ALLOCATIONS, AllocatorClient, AllocatorOptions, AllocatorProcess
from master.allocator.codec import decode_allocations
from master.registry import AgentStatus, Registry, RegistryError
from master.state import (
    AgentRecord,
    FrameworkRecord,
    MasterState,
    OfferRecord,
    TaskRecord,
    roles_of,
)
from master.validation import (
    Refusal,
    does_not_fit,
    fit,
    invalid_task,
    validate_offers,
    validate_task,
)

log = structlog.get_logger("master")

VERSION = "0.1.0"
PARTITION_AWARE = FrameworkCapabilityType.PARTITION_AWARE


@dataclass(frozen=True)
class MasterOptions:
    """The master's knobs, named as Mesos's master flags."""

    hostname: str = field(default_factory=socket.gethostname)
    allocation_interval: float = 1.0
    agent_ping_timeout: float = 15.0  # seconds between pings to each agent
    max_agent_ping_timeouts: int = 5  # unanswered pings in a row before unreachable
    offer_timeout: float | None = None  # None: offers stay until used, declined or gone
    allocator_seed: int = 0

    def __post_init__(self) -> None:
        if self.agent_ping_timeout <= 0:
            raise ValueError(f"agent_ping_timeout must be positive, got {self.agent_ping_timeout}")
        if self.max_agent_ping_timeouts < 1:
            raise ValueError(
                f"max_agent_ping_timeouts must be 1 or more, got {self.max_agent_ping_timeouts}"
            )
        if self.offer_timeout is not None and self.offer_timeout <= 0:
            raise ValueError(
                f"offer_timeout must be positive (or None for no timeout), got {self.offer_timeout}"
            )


def _allocate(resources: Resources, role: str | None) -> Resources:
    plain = resources.unallocated()
    return plain.allocated_to(role) if role is not None else plain


class MasterProcess(ProtocolProcess):
    """The master: process id ``master``; HTTP ``/master/state`` when the runtime serves HTTP."""

    def __init__(
        self, work_dir: str, options: MasterOptions | None = None, id: str = "master"
    ) -> None:
        super().__init__(id)
        self.options = options or MasterOptions()
        self.work_dir = work_dir
        self.ids = IdGenerator()
        self.records = MasterState()
        self.registry = Registry(work_dir)
        self.allocator: AllocatorClient | None = None
        self.master_info: MasterInfo | None = None
        self._allocator_pid: UPID | None = None
        self._ping_timer: Timer | None = None
        # Agents (by pid) whose admission waits for the registry write; see _admit.
        self._admitting: dict[UPID, tuple[AgentInfo, Callable[[], None]]] = {}

    # -- lifecycle ------------------------------------------------------------------------

    def initialize(self) -> None:
        self.registry.recover()
        allocator = AllocatorProcess(
            self.pid,
            AllocatorOptions(allocation_interval=self.options.allocation_interval),
            seed=self.options.allocator_seed,
            id=f"{self.pid.id}-allocator",
        )
        self._allocator_pid = self.runtime.spawn(allocator)
        self.allocator = AllocatorClient(self, self._allocator_pid)
        host, _, port = self.pid.address.rpartition(":")
        self.master_info = MasterInfo(
            id=self.ids.prefix,
            port=int(port),
            pid=str(self.pid),
            hostname=self.options.hostname,
            version=VERSION,
            address=Address(hostname=self.options.hostname, ip=host, port=int(port)),
        )
        self._ping_timer = self.delay(self.options.agent_ping_timeout, self._ping_agents)
        self._register_metrics()
        log.info(
            "master_started",
            pid=self.pid,
            work_dir=self.work_dir,
            agents_in_registry=len(self.registry),
        )

    def _register_metrics(self) -> None:
        metrics = self.runtime.metrics
        records = self.records
        self._launched = metrics.counter("master/tasks_launched")
        self._refused = metrics.counter("master/tasks_refused")  # TASK_ERROR / TASK_DROPPED
        self._metrics = [
            self._launched,
            self._refused,
            metrics.gauge("master/agents_active", lambda: len(records.agents)),
            metrics.gauge("master/agents_unreachable", lambda: len(records.unreachable)),
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
        ]

    def finalize(self) -> None:
        for metric in getattr(self, "_metrics", ()):
            self.runtime.metrics.remove(metric.name)
        if self._ping_timer is not None:
            self._ping_timer.cancel()
        for framework in self.records.frameworks.values():
            if framework.failover_timer is not None:
                framework.failover_timer.cancel()
        for record in self.records.offers.values():
            if record.timer is not None:
                record.timer.cancel()
        if self._allocator_pid is not None:
            self.runtime.terminate(self._allocator_pid)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> None:
        assert self.allocator is not None, "the allocator is spawned in initialize"
        self.allocator.call(method, *args, **kwargs)

    # -- agents ---------------------------------------------------------------------------

    @receives(RegisterAgent)
    def register_agent(self, sender: UPID | None, message: RegisterAgent) -> None:
        info = message.agent
        if sender is None:
            log.warning("agent_registration_refused", reason="anonymous sender: cannot answer")
            return
        if info.id is not None:
            log.warning(
                "agent_registration_refused",
                agent=sender,
                reason=f"RegisterAgent carries id {info.id}; an agent with an id re-registers",
            )
            return
        existing = self.records.agent_by_pid(sender)
        if existing is not None:
            if replace(existing.info, id=None) != info:
                log.warning(
                    "agent_registration_refused",
                    agent=sender,
                    agent_id=existing.id,
                    reason="this pid is registered with different hostname, resources or "
                    "attributes; restart the agent with a fresh work directory",
                )
                return
            self.send_message(sender, AgentRegistered(existing.id))  # a retry: answer again
            return
        if sender in self._admitting:
            return  # a retry while its admission is being written: the answer follows
        agent_id = self.ids.agent_id()
        info = replace(info, id=agent_id)
        version = message.version

        def admitted() -> None:
            self.records.add_agent(AgentRecord(info, str(sender), version))
            self._call("add_agent", agent_id, info.resources)
            self.send_message(sender, AgentRegistered(agent_id))
            log.info(
                "agent_registered",
                agent_id=agent_id,
                pid=sender,
                hostname=info.hostname,
                resources=str(info.resources),
            )

        self._admit(info, sender, admitted)

    @receives(ReregisterAgent)
    def reregister_agent(self, sender: UPID | None, message: ReregisterAgent) -> None:
        info = message.agent
        if sender is None or info.id is None:
            log.warning(
                "agent_reregistration_refused",
                agent=sender,
                reason="anonymous sender" if sender is None else "ReregisterAgent without id",
            )
            return
        agent_id = info.id
        if self.registry.status(agent_id) is AgentStatus.GONE:
            log.warning(
                "agent_reregistration_refused",
                agent=sender,
                agent_id=agent_id,
                reason="the agent was removed for good; start it with a fresh work directory",
            )
            return
        known = self.records.agents.get(agent_id)
        if known is not None:
            if known.info.hostname != info.hostname:
                log.warning(
                    "agent_reregistration_refused",
                    agent=sender,
                    agent_id=agent_id,
                    reason=f"agent {agent_id} is registered on host {known.info.hostname}, "
                    f"not {info.hostname}",
                )
                return
            self.records.set_agent_pid(known, str(sender))
            known.awaiting_pong = False
            known.missed_pings = 0
            self.send_message(sender, AgentReregistered(agent_id))
            log.info("agent_reregistered", agent_id=agent_id, pid=sender, known=True)
            return
        if sender in self._admitting:
            return  # a retry while its admission is being written: the answer follows

        def admitted() -> None:
            if agent_id in self.records.agents:  # admitted meanwhile under another pid
                log.warning(
                    "agent_reregistration_refused",
                    agent=sender,
                    agent_id=agent_id,
                    reason="the agent id was admitted twice at once",
                )
                return
            self._admit_with_tasks(info, str(sender), message)
            self.send_message(sender, AgentReregistered(agent_id))
            log.info(
                "agent_reregistered",
                agent_id=agent_id,
                pid=sender,
                known=False,
                tasks=len(message.tasks),
            )

        self._admit(info, sender, admitted)

    def _admit(self, info: AgentInfo, pid: UPID, then: Callable[[], None]) -> None:
        """Record the agent in the registry, then run ``then`` (which answers it).

        Admissions that arrive together are written in one batch, as Mesos's registrar
        does: the write is a dispatch queued behind the messages already waiting, so a
        burst of registrations costs one file write, not one per agent.
        """
        self._admitting[pid] = (info, then)
        if len(self._admitting) == 1:
            self.runtime.dispatch(self, MasterProcess._write_admissions)

    def _write_admissions(self) -> None:
        batch, self._admitting = self._admitting, {}
        try:
            self.registry.admit(*(info for info, _ in batch.values()))
        except RegistryError as error:
            log.error("agent_admission_failed", agents=len(batch), error=str(error))
            return  # nothing changed; the agents retry
        for _, then in batch.values():
            then()

    def _admit_with_tasks(self, info: AgentInfo, pid: str, message: ReregisterAgent) -> None:
        """An agent unknown to this master (or back from unreachable), with what it runs."""
        assert info.id is not None
        agent_id = info.id
        reported = {(task.framework_id, task.task_id) for task in message.tasks}
        stale = [
            task
            for task in self.records.unreachable_tasks(agent_id)
            if (task.framework_id, task.task_id) not in reported
        ]
        record = AgentRecord(info, pid, message.version)
        self.records.add_agent(record)
        for task in stale:
            self._task_gone(task)  # the agent no longer runs it
        reported_infos = {framework.id: framework for framework in message.frameworks}

        def role_for(framework_id: FrameworkID) -> str:
            framework = self.records.frameworks.get(framework_id)
            framework_info = framework.info if framework else reported_infos.get(framework_id)
            return roles_of(framework_info)[0] if framework_info else "*"

        def allocated(resources: Resources, framework_id: FrameworkID) -> Resources:
            if all(resource.allocation_role is not None for resource in resources):
                return resources
            return _allocate(resources, role_for(framework_id))

        used: dict[str, Resources] = {}
        for task in message.tasks:
            if is_terminal(task.state):
                continue
            resources = allocated(task.resources, task.framework_id)
            self.records.add_task(
                TaskRecord(
                    task.task_id,
                    task.framework_id,
                    agent_id,
                    task.name,
                    task.state,
                    resources,
                    task.executor_id,
                    task.statuses[-1] if task.statuses else None,
                )
            )
            used[task.framework_id] = used.get(task.framework_id, Resources()) + resources
        for executor in message.executor_infos:
            if executor.framework_id is None:
                continue
            resources = allocated(executor.resources, executor.framework_id)
            record.executors[(executor.framework_id, executor.executor_id)] = resources
            used[executor.framework_id] = used.get(executor.framework_id, Resources()) + resources
        self._call("add_agent", agent_id, info.resources, used=used)

    def _task_gone(self, task: TaskRecord) -> None:
        """A task the master kept (unreachable) that its re-registered agent no longer runs."""
        status = self._master_status(
            task.task_id,
            TaskState.TASK_GONE,
            Reason.REASON_AGENT_REREGISTERED,
            f"agent {task.agent_id} re-registered without this task",
            task.agent_id,
        )
        if not self.records.update_task(task, status):
            self.records.remove_task(task)
        framework = self.records.frameworks.get(task.framework_id)
        if framework is not None and framework.connected:
            self.send_message(framework.pid, StatusUpdate(task.framework_id, status))

    @receives(PongAgent)
    def pong_agent(self, sender: UPID | None, message: PongAgent) -> None:
        agent = self.records.agent_by_pid(sender)
        if agent is None:
            log.debug("pong_from_unknown_agent", agent=sender)
            return
        agent.awaiting_pong = False
        agent.missed_pings = 0

    def _ping_agents(self) -> None:
        """Every ``agent_ping_timeout``: count unanswered pings, then ping again."""
        for agent in list(self.records.agents.values()):
            if agent.awaiting_pong:
                agent.missed_pings += 1
                if agent.missed_pings >= self.options.max_agent_ping_timeouts:
                    log.warning(
                        "agent_unreachable",
                        agent_id=agent.id,
                        pid=agent.pid,
                        missed_pings=agent.missed_pings,
                    )
                    self._remove_agent(agent, unreachable=True)
                    continue
            agent.awaiting_pong = True
            self.send_message(agent.pid, PingAgent(connected=True))
        self._ping_timer = self.delay(self.options.agent_ping_timeout, self._ping_agents)

    @receives(UnregisterAgent)
    def unregister_agent(self, sender: UPID | None, message: UnregisterAgent) -> None:
        agent = self.records.agents.get(message.agent_id)
        if agent is None or agent.pid != sender:
            log.warning(
                "agent_unregistration_refused",
                agent=sender,
                agent_id=message.agent_id,
                reason="unknown agent id" if agent is None else "not sent by that agent",
            )
            return
        log.info("agent_unregistered", agent_id=agent.id)
        self._remove_agent(agent, unreachable=False)

    def _remove_agent(self, agent: AgentRecord, unreachable: bool) -> None:
        """Unreachable (may come back) or gone: offers rescinded, tasks reported, AgentLost."""
        for offer_id in list(agent.offers):
            record = self.records.offers.get(offer_id)
            framework = self.records.frameworks.get(record.offer.framework_id) if record else None
            if framework is not None and framework.connected:
                self.send_message(framework.pid, RescindOffer(offer_id))
        tasks = [self.records.tasks[key] for key in sorted(agent.tasks)]
        self.records.remove_agent(agent.id, unreachable)  # its offers go with it
        self._call("remove_agent", agent.id)  # frees what it held
        try:
            self.registry.mark(
                agent.id, AgentStatus.UNREACHABLE if unreachable else AgentStatus.GONE
            )
        except RegistryError as error:
            log.error("registry_update_failed", agent_id=agent.id, error=str(error))
        for task in tasks:
            framework = self.records.frameworks.get(task.framework_id)
            aware = framework is not None and framework.info.has_capability(PARTITION_AWARE)
            if aware:
                new_state = TaskState.TASK_UNREACHABLE if unreachable else TaskState.TASK_GONE
            else:
                new_state = TaskState.TASK_LOST
            status = self._master_status(
                task.task_id,
                new_state,
                Reason.REASON_AGENT_REMOVED,
                f"agent {agent.id} is {'unreachable' if unreachable else 'gone'}",
                agent.id,
            )
            if is_terminal(new_state):
                self.records.update_task(task, status)
            else:
                task.state = new_state
                task.status = status
            if framework is not None and framework.connected:
                self.send_message(framework.pid, StatusUpdate(task.framework_id, status))
        for framework in self.records.frameworks.values():
            if framework.connected:
                self.send_message(framework.pid, AgentLost(agent.id))

    @receives(ExitedExecutor)
    def exited_executor(self, sender: UPID | None, message: ExitedExecutor) -> None:
        agent = self.records.agents.get(message.agent_id)
        if agent is None or agent.pid != sender:
            log.warning(
                "exited_executor_refused",
                agent=sender,
                agent_id=message.agent_id,
                reason="unknown agent or not sent by it",
            )
            return
        resources = agent.executors.pop((message.framework_id, message.executor_id), None)
        if resources:
            self._call("recover_resources", message.framework_id, agent.id, resources)
        framework = self.records.frameworks.get(message.framework_id)
        if framework is not None and framework.connected:
            self.send_message(
                framework.pid,
                ExecutorLost(message.framework_id, message.executor_id, agent.id, message.status),
            )
        log.info(
            "executor_exited",
            agent_id=agent.id,
            framework_id=message.framework_id,
            executor_id=message.executor_id,
            status=message.status,
        )

    # -- frameworks ---------------------------------------------------------------------------

    @receives(RegisterFramework)
    def register_framework(self, sender: UPID | None, message: RegisterFramework) -> None:
        info = message.framework
        if sender is None:
            log.warning("framework_registration_refused", reason="anonymous sender")
            return
        if info.id is not None:
            log.warning(
                "framework_registration_refused",
                driver=sender,
                reason=f"RegisterFramework carries id {info.id}; send ReregisterFramework",
            )
            return
        for existing in self.records.frameworks_by_pid(sender):
            if existing.connected and replace(existing.info, id=None) == info:
                assert self.master_info is not None
                self.send_message(sender, FrameworkRegistered(existing.id, self.master_info))
                return  # a retry: answer again
        framework_id = self.ids.framework_id()
        self._add_framework(replace(info, id=framework_id), sender)
        assert self.master_info is not None
        self.send_message(sender, FrameworkRegistered(framework_id, self.master_info))

    @receives(ReregisterFramework)
    def reregister_framework(self, sender: UPID | None, message: ReregisterFramework) -> None:
        info = message.framework
        if sender is None or info.id is None:
            log.warning(
                "framework_reregistration_refused",
                driver=sender,
                reason="anonymous sender" if sender is None else "no framework id",
            )
            return
        framework_id = info.id
        assert self.master_info is not None
        if framework_id in self.records.removed_frameworks:
            log.warning(
                "framework_reregistration_refused",
                driver=sender,
                framework_id=framework_id,
                reason="the framework was removed",
            )
            self.send_message(
                sender,
                FrameworkError(
                    f"framework {framework_id} was removed (torn down or failed over for "
                    "too long); register as a new framework"
                ),
            )
            return
        framework = self.records.frameworks.get(framework_id)
        if framework is None:
            self._add_framework(info, sender)
        else:
            self._update_framework(framework, info, sender, message.failover)
        self.send_message(sender, FrameworkReregistered(framework_id, self.master_info))

    def _add_framework(self, info: FrameworkInfo, pid: UPID) -> None:
        assert info.id is not None
        roles = roles_of(info)
        self.records.add_framework(FrameworkRecord(info.id, info, str(pid), roles))
        self.link(pid)
        self._call(
            "add_framework",
            info.id,
            list(roles),
            gpu=info.has_capability(FrameworkCapabilityType.GPU_RESOURCES),
        )
        log.info(
            "framework_registered", framework_id=info.id, name=info.name, roles=roles, driver=pid
        )

    def _update_framework(
        self, framework: FrameworkRecord, info: FrameworkInfo, pid: UPID, failover: bool
    ) -> None:
        if framework.pid != pid:
            old = framework.pid
            if framework.connected:
                self.send_message(old, FrameworkError("framework failed over to another scheduler"))
            framework.pid = str(pid)
            if not self.records.frameworks_by_pid(old):  # no other framework uses it
                self.unlink(old)
        self.link(pid)
        if framework.failover_timer is not None:
            framework.failover_timer.cancel()
            framework.failover_timer = None
        roles = roles_of(info)
        gpu = info.has_capability(FrameworkCapabilityType.GPU_RESOURCES)
        if roles != framework.roles or info.capabilities != framework.info.capabilities:
            self._call("update_framework", framework.id, list(roles), gpu=gpu)
        framework.info = info
        framework.roles = roles
        framework.connected = True
        if not framework.active:
            framework.active = True
            self._call("activate_framework", framework.id)
        log.info("framework_reregistered", framework_id=framework.id, driver=pid, failover=failover)

    def _framework_call(
        self, sender: UPID | None, framework_id: FrameworkID, call: str
    ) -> FrameworkRecord | None:
        """The framework a call is about, if known and the call comes from its driver."""
        framework = self.records.frameworks.get(framework_id)
        if framework is None:
            log.warning(
                f"{call}_refused",
                driver=sender,
                framework_id=framework_id,
                reason="unknown framework id; register first",
            )
            return None
        if sender != framework.pid:
            log.warning(
                f"{call}_refused",
                driver=sender,
                framework_id=framework_id,
                reason=f"not sent by the framework's driver {framework.pid}",
            )
            return None
        return framework

    @receives(UnregisterFramework)
    def unregister_framework(self, sender: UPID | None, message: UnregisterFramework) -> None:
        framework = self._framework_call(sender, message.framework_id, "teardown")
        if framework is not None:
            self._remove_framework(framework, "torn down by its scheduler")

    @receives(DeactivateFramework)
    def deactivate_framework(self, sender: UPID | None, message: DeactivateFramework) -> None:
        framework = self._framework_call(sender, message.framework_id, "deactivate")
        if framework is not None:
            self._disconnect(framework, "the scheduler stopped with failover")

    def exited(self, pid: UPID) -> None:
        for framework in self.records.frameworks_by_pid(pid):
            if framework.connected:
                self._disconnect(framework, "the scheduler driver exited")

    def _disconnect(self, framework: FrameworkRecord, why: str) -> None:
        """Deactivate; remove the framework unless it comes back within its failover timeout."""
        framework.connected = False
        if framework.active:
            framework.active = False
            self._call("deactivate_framework", framework.id)
        for offer_id in list(framework.offers):
            self._return_offer(offer_id)
        timeout = framework.info.failover_timeout
        if framework.failover_timer is None:
            framework.failover_timer = self.delay(
                timeout, self._failover_expired, framework.id, framework.pid
            )
        log.info(
            "framework_disconnected",
            framework_id=framework.id,
            reason=why,
            failover_timeout=timeout,
        )

    def _failover_expired(self, framework_id: FrameworkID, pid: str) -> None:
        framework = self.records.frameworks.get(framework_id)
        if framework is None or framework.connected or framework.pid != pid:
            return
        framework.failover_timer = None
        self._remove_framework(framework, "its failover timeout expired")

    def _remove_framework(self, framework: FrameworkRecord, why: str) -> None:
        if framework.failover_timer is not None:
            framework.failover_timer.cancel()
            framework.failover_timer = None
        tasks = self.records.remove_framework(framework.id)
        for agent_id in sorted({task.agent_id for task in tasks}):
            agent = self.records.agents.get(agent_id)
            if agent is not None:
                self.send_message(agent.pid, ShutdownFramework(framework.id))
        for agent in self.records.agents.values():
            for key in [key for key in agent.executors if key[0] == framework.id]:
                del agent.executors[key]
        self._call("remove_framework", framework.id)  # frees its offers and tasks
        if not self.records.frameworks_by_pid(framework.pid):
            self.unlink(framework.pid)
        log.info("framework_removed", framework_id=framework.id, reason=why, tasks=len(tasks))

    # -- offers ---------------------------------------------------------------------------

    @handler(ALLOCATIONS)
    def _allocations(self, sender: UPID | None, body: Any) -> None:
        if sender != self._allocator_pid:
            log.warning("allocations_refused", sender=sender, reason="not from our allocator")
            return
        batches: dict[FrameworkID, tuple[list[Offer], list[str]]] = {}
        for allocation in decode_allocations(body):
            framework_id = FrameworkID(allocation.framework_id)
            agent_id = AgentID(allocation.agent_id)
            framework = self.records.frameworks.get(framework_id)
            agent = self.records.agents.get(agent_id)
            if framework is None or not framework.active or agent is None:
                # Raced with a removal or deactivation: give it back.
                self._call("recover_resources", framework_id, agent_id, allocation.resources)
                continue
            offer = Offer(
                id=self.ids.offer_id(),
                framework_id=framework_id,
                agent_id=agent_id,
                hostname=agent.info.hostname,
                resources=allocation.resources,
                attributes=agent.info.attributes,
                executor_ids=tuple(e for (f, e) in sorted(agent.executors) if f == framework_id),
                allocation_info=AllocationInfo(allocation.role),
            )
            record = OfferRecord(offer)
            if self.options.offer_timeout is not None:
                record.timer = self.delay(self.options.offer_timeout, self._offer_expired, offer.id)
            self.records.add_offer(record)
            offers, pids = batches.setdefault(framework_id, ([], []))
            offers.append(offer)
            pids.append(agent.pid)
        for framework_id, (offers, pids) in batches.items():
            framework = self.records.frameworks[framework_id]
            self.send_message(framework.pid, ResourceOffers(tuple(offers), tuple(pids)))
            log.debug("offers_sent", framework_id=framework_id, offers=len(offers))

    def _offer_expired(self, offer_id: OfferID) -> None:
        record = self.records.offers.get(offer_id)
        if record is None:
            return
        framework = self.records.frameworks.get(record.offer.framework_id)
        self._return_offer(offer_id)
        if framework is not None and framework.connected:
            self.send_message(framework.pid, RescindOffer(offer_id))
        log.info("offer_rescinded", offer_id=offer_id, reason="offer timeout")

    def _return_offer(self, offer_id: OfferID, refuse_seconds: float | None = None) -> None:
        record = self.records.remove_offer(offer_id)
        if record is not None:
            offer = record.offer
            self._call(
                "recover_resources",
                offer.framework_id,
                offer.agent_id,
                offer.resources,
                refuse_seconds,
            )

    @receives(DeclineOffers)
    def decline_offers(self, sender: UPID | None, message: DeclineOffers) -> None:
        framework = self._framework_call(sender, message.framework_id, "decline")
        if framework is None:
            return
        refuse = (message.filters or Filters()).refuse_seconds
        for offer_id in message.offer_ids:
            record = self.records.offers.get(offer_id)
            if record is None or record.offer.framework_id != framework.id:
                log.info(
                    "decline_ignored",
                    framework_id=framework.id,
                    offer_id=offer_id,
                    reason="offer no longer valid or not this framework's",
                )
                continue
            self._return_offer(offer_id, refuse)

    @receives(AcceptOffers)
    def accept_offers(self, sender: UPID | None, message: AcceptOffers) -> None:
        framework = self._framework_call(sender, message.framework_id, "accept")
        if framework is None:
            return
        refusal = validate_offers(framework.id, message.offer_ids, self.records.offers)
        records = []
        for offer_id in dict.fromkeys(message.offer_ids):
            record = self.records.offers.get(offer_id)
            if record is not None and record.offer.framework_id == framework.id:
                records.append(self.records.remove_offer(offer_id))
        if refusal is not None:
            log.info("accept_refused", framework_id=framework.id, reason=refusal.message)
            for record in records:
                offer = record.offer
                self._call("recover_resources", framework.id, offer.agent_id, offer.resources)
            for task in _tasks_of(message):
                self._refuse(framework, task.task_id, task.agent_id, refusal)
            return
        agent = self.records.agents[records[0].offer.agent_id]
        available = Resources()
        for record in records:
            available = available + record.offer.resources
        seen: set[TaskID] = set()
        for operation in message.operations:
            if operation.type is OperationType.LAUNCH:
                assert operation.launch is not None
                for task in operation.launch.task_infos:
                    available = self._launch(framework, agent, task, available, seen)
            elif operation.type is OperationType.LAUNCH_GROUP:
                available = self._launch_group(framework, agent, operation, available, seen)
            else:
                log.warning(
                    "operation_unsupported",
                    framework_id=framework.id,
                    operation=operation.type.value,
                    reason="reservations are not supported yet; resources go back",
                )
        if available:
            refuse = (message.filters or Filters()).refuse_seconds
            self._call("recover_resources", framework.id, agent.id, available, refuse)

    def _launch(
        self,
        framework: FrameworkRecord,
        agent: AgentRecord,
        task: TaskInfo,
        available: Resources,
        seen: set[TaskID],
    ) -> Resources:
        """Validate and launch one task; returns what is left of ``available``."""
        refusal = validate_task(task, framework.id, agent.id, seen, self._task_id_used(framework))
        seen.add(task.task_id)
        needed = task.resources
        new_executor = task.executor is not None and (
            (framework.id, task.executor.executor_id) not in agent.executors
        )
        if refusal is None:
            if new_executor:
                assert task.executor is not None
                needed = needed + task.executor.resources
            allocated = fit(needed, available)
            if allocated is None:
                refusal = does_not_fit(f"task {task.task_id}", needed, available)
        if refusal is not None:
            self._refuse(framework, task.task_id, agent.id, refusal)
            return available
        role = next(iter(sorted(allocated.allocation_roles())), None)
        resources = _allocate(task.resources, role)
        executor = task.executor
        if executor is not None:
            key = (framework.id, executor.executor_id)
            if new_executor:
                agent.executors[key] = _allocate(executor.resources, role)
            executor = replace(executor, framework_id=framework.id, resources=agent.executors[key])
        sent = replace(task, resources=resources, executor=executor)
        self.records.add_task(
            TaskRecord(
                task.task_id,
                framework.id,
                agent.id,
                task.name,
                TaskState.TASK_STAGING,
                resources,
                executor.executor_id if executor else None,
            )
        )
        self.send_message(agent.pid, RunTask(framework.info, sent, pid=framework.pid))
        self._launched.inc()
        log.info(
            "task_launched",
            framework_id=framework.id,
            task_id=task.task_id,
            agent_id=agent.id,
            resources=str(resources),
        )
        return available - allocated

    def _launch_group(
        self,
        framework: FrameworkRecord,
        agent: AgentRecord,
        operation: Operation,
        available: Resources,
        seen: set[TaskID],
    ) -> Resources:
        """All tasks of the group or none, under the group's executor."""
        group = operation.launch_group
        assert group is not None
        executor = replace(group.executor, framework_id=framework.id)
        tasks = group.task_group.tasks
        refusal: Refusal | None = None
        if not tasks:
            refusal = invalid_task("the task group is empty", Reason.REASON_TASK_GROUP_INVALID)
        is_used = self._task_id_used(framework)
        for task in tasks:
            if refusal is not None:
                break
            if task.executor is not None and task.executor.executor_id != executor.executor_id:
                refusal = invalid_task(
                    f"task {task.task_id} names executor {task.executor.executor_id}, not the "
                    f"group's {executor.executor_id}",
                    Reason.REASON_TASK_GROUP_INVALID,
                )
                break
            problem = validate_task(
                replace(task, executor=None) if task.command else task,
                framework.id,
                agent.id,
                seen,
                is_used,
            )
            seen.add(task.task_id)
            if problem is not None:
                refusal = Refusal(problem.state, Reason.REASON_TASK_GROUP_INVALID, problem.message)
        key = (framework.id, executor.executor_id)
        needed = Resources()
        for task in tasks:
            needed = needed + task.resources
        if key not in agent.executors:
            needed = needed + executor.resources
        allocated = fit(needed, available) if refusal is None else None
        if refusal is None and allocated is None:
            refusal = does_not_fit("the task group", needed, available)
            refusal = Refusal(refusal.state, Reason.REASON_TASK_GROUP_INVALID, refusal.message)
        if refusal is not None:
            for task in tasks:
                self._refuse(framework, task.task_id, agent.id, refusal)
            return available
        assert allocated is not None
        role = next(iter(sorted(allocated.allocation_roles())), None)
        if key not in agent.executors:
            agent.executors[key] = _allocate(executor.resources, role)
        executor = replace(executor, resources=agent.executors[key])
        sent = []
        for task in tasks:
            resources = _allocate(task.resources, role)
            sent.append(replace(task, resources=resources))
            self.records.add_task(
                TaskRecord(
                    task.task_id,
                    framework.id,
                    agent.id,
                    task.name,
                    TaskState.TASK_STAGING,
                    resources,
                    executor.executor_id,
                )
            )
        self.send_message(
            agent.pid, RunTaskGroup(framework.info, executor, TaskGroupInfo(tuple(sent)))
        )
        self._launched.inc(len(sent))
        log.info(
            "task_group_launched",
            framework_id=framework.id,
            agent_id=agent.id,
            tasks=[task.task_id for task in tasks],
        )
        return available - allocated

    def _task_id_used(self, framework: FrameworkRecord) -> Callable[[TaskID], bool]:
        def used(task_id: TaskID) -> bool:
            return self.records.task(framework.id, task_id) is not None

        return used

    def _refuse(
        self, framework: FrameworkRecord, task_id: TaskID, agent_id: AgentID, refusal: Refusal
    ) -> None:
        status = self._master_status(
            task_id, refusal.state, refusal.reason, refusal.message, agent_id
        )
        log.info(
            "task_refused",
            framework_id=framework.id,
            task_id=task_id,
            state=refusal.state.value,
            reason=refusal.message,
        )
        self._refused.inc()
        if framework.connected:
            self.send_message(framework.pid, StatusUpdate(framework.id, status))

    def _master_status(
        self,
        task_id: TaskID,
        state: TaskState,
        reason: Reason,
        message: str,
        agent_id: AgentID | None,
    ) -> TaskStatus:
        """A status update the master makes itself: no uuid, so it needs no ack."""
        return TaskStatus(
            task_id=task_id,
            state=state,
            message=message,
            source=Source.SOURCE_MASTER,
            reason=reason,
            agent_id=agent_id,
            timestamp=time.time(),
        )

    @receives(ReviveOffers)
    def revive_offers(self, sender: UPID | None, message: ReviveOffers) -> None:
        framework = self._framework_call(sender, message.framework_id, "revive")
        if framework is not None:
            self._call("revive", framework.id, list(message.roles) or None)

    @receives(SuppressOffers)
    def suppress_offers(self, sender: UPID | None, message: SuppressOffers) -> None:
        framework = self._framework_call(sender, message.framework_id, "suppress")
        if framework is not None:
            self._call("suppress", framework.id, list(message.roles) or None)

    # -- tasks ------------------------------------------------------------------------------

    @receives(KillTask)
    def kill_task(self, sender: UPID | None, message: KillTask) -> None:
        framework = self._framework_call(sender, message.framework_id, "kill")
        if framework is None:
            return
        task = self.records.task(framework.id, message.task_id)
        agent = self.records.agents.get(task.agent_id) if task else None
        if task is None:
            status = self._master_status(
                message.task_id,
                TaskState.TASK_LOST,
                Reason.REASON_TASK_UNKNOWN,
                f"task {message.task_id} is unknown to the master; nothing to kill",
                message.agent_id,
            )
            self.send_message(framework.pid, StatusUpdate(framework.id, status))
            return
        if agent is None:
            log.info(
                "kill_deferred",
                framework_id=framework.id,
                task_id=task.task_id,
                reason=f"agent {task.agent_id} is unreachable",
            )
            return
        self.send_message(agent.pid, replace(message, agent_id=agent.id))
        log.info(
            "task_kill_sent", framework_id=framework.id, task_id=task.task_id, agent_id=agent.id
        )

    @receives(StatusUpdate)
    def status_update(self, sender: UPID | None, message: StatusUpdate) -> None:
        status = message.status
        agent = self.records.agent_by_pid(sender)
        if agent is None:
            log.warning(
                "status_update_dropped",
                sender=sender,
                task_id=status.task_id,
                reason="not from a registered agent",
            )
            return
        framework = self.records.frameworks.get(message.framework_id)
        if framework is None:
            log.warning(
                "status_update_dropped",
                agent_id=agent.id,
                task_id=status.task_id,
                framework_id=message.framework_id,
                reason="unknown framework",
            )
            return
        task = self.records.task(framework.id, status.task_id)
        if task is None:
            log.info(
                "status_update_for_unknown_task",
                agent_id=agent.id,
                framework_id=framework.id,
                task_id=status.task_id,
            )
        elif task.agent_id != agent.id:
            log.warning(
                "status_update_dropped",
                agent_id=agent.id,
                task_id=status.task_id,
                reason=f"the task runs on agent {task.agent_id}",
            )
            return
        elif self.records.update_task(task, status):
            self._call("recover_resources", framework.id, agent.id, task.resources)
        log.debug(
            "status_update",
            framework_id=framework.id,
            task_id=status.task_id,
            state=status.state.value,
            agent_id=agent.id,
        )
        if framework.connected:
            forwarded = message if message.pid else replace(message, pid=agent.pid)
            self.send_message(framework.pid, forwarded)

    @receives(StatusUpdateAcknowledgement)
    def acknowledge(self, sender: UPID | None, message: StatusUpdateAcknowledgement) -> None:
        framework = self._framework_call(sender, message.framework_id, "acknowledge")
        if framework is None:
            return
        agent = self.records.agents.get(message.agent_id)
        known = self.records.task(framework.id, message.task_id) or self.records.completed_task(
            framework.id, message.task_id
        )
        if agent is None or known is None:
            log.warning(
                "acknowledgement_dropped",
                framework_id=framework.id,
                task_id=message.task_id,
                agent_id=message.agent_id,
                reason="unknown agent" if agent is None else "unknown task",
            )
            return
        self.send_message(agent.pid, message)

    @receives(ReconcileTasks)
    def reconcile_tasks(self, sender: UPID | None, message: ReconcileTasks) -> None:
        framework = self._framework_call(sender, message.framework_id, "reconcile")
        if framework is None:
            return
        if message.tasks:
            asked = [task.task_id for task in message.tasks]
        else:
            asked = self.records.tasks_of(framework.id)
        aware = framework.info.has_capability(PARTITION_AWARE)
        for task_id in asked:
            task = self.records.task(framework.id, task_id) or self.records.completed_task(
                framework.id, task_id
            )
            if task is None:
                state = TaskState.TASK_UNKNOWN if aware else TaskState.TASK_LOST
                status = self._master_status(
                    task_id,
                    state,
                    Reason.REASON_RECONCILIATION,
                    "Reconciliation: task unknown to the master",
                    None,
                )
            else:
                status = self._master_status(
                    task_id,
                    task.state,
                    Reason.REASON_RECONCILIATION,
                    "Reconciliation: latest task state",
                    task.agent_id,
                )
                if task.executor_id is not None:
                    status = replace(status, executor_id=task.executor_id)
            self.send_message(framework.pid, StatusUpdate(framework.id, status))

    # -- framework messages -------------------------------------------------------------------

    @receives(FrameworkToExecutor)
    def framework_to_executor(self, sender: UPID | None, message: FrameworkToExecutor) -> None:
        framework = self._framework_call(sender, message.framework_id, "framework_message")
        if framework is None:
            return
        agent = self.records.agents.get(message.agent_id)
        if agent is None:
            log.info(
                "framework_message_dropped",
                framework_id=framework.id,
                agent_id=message.agent_id,
                reason="unknown or unreachable agent",
            )
            return
        self.send_message(agent.pid, message)

    @receives(ShutdownExecutor)
    def shutdown_executor(self, sender: UPID | None, message: ShutdownExecutor) -> None:
        framework = self._framework_call(sender, message.framework_id, "shutdown_executor")
        agent = self.records.agents.get(message.agent_id) if message.agent_id else None
        if framework is None or agent is None:
            if framework is not None:
                log.info(
                    "shutdown_executor_dropped",
                    framework_id=framework.id,
                    agent_id=message.agent_id,
                    reason="unknown agent",
                )
            return
        self.send_message(agent.pid, message)

    @receives(ExecutorToFramework)
    def executor_to_framework(self, sender: UPID | None, message: ExecutorToFramework) -> None:
        agent = self.records.agent_by_pid(sender)
        framework = self.records.frameworks.get(message.framework_id)
        if agent is None or framework is None or not framework.connected:
            log.info(
                "executor_message_dropped",
                sender=sender,
                framework_id=message.framework_id,
                reason="unknown agent, or framework unknown or disconnected",
            )
            return
        self.send_message(framework.pid, message)

    # -- HTTP -------------------------------------------------------------------------------

    @route("/state", "the master's agents, frameworks and tasks (JSON, as Mesos's)")
    def state_json(self, request: web.Request) -> web.Response:
        return web.json_response(self.describe())

    def describe(self) -> dict[str, Any]:
        """The JSON of ``/master/state``."""
        state = self.records
        frameworks = []
        for framework in state.frameworks.values():
            tasks = [state.tasks[(framework.id, t)] for t in state.tasks_of(framework.id)]
            frameworks.append(
                {
                    "id": framework.id,
                    "name": framework.info.name,
                    "user": framework.info.user,
                    "pid": framework.pid,
                    "roles": list(framework.roles),
                    "active": framework.active,
                    "connected": framework.connected,
                    "failover_timeout": framework.info.failover_timeout,
                    "capabilities": [c.type.value for c in framework.info.capabilities],
                    "tasks": [_task_json(task) for task in tasks],
                    "completed_tasks": [_task_json(task) for task in framework.completed],
                    "offers": [
                        _offer_json(state.offers[offer_id].offer)
                        for offer_id in sorted(framework.offers)
                    ],
                }
            )
        all_tasks = [_task_json(task) for task in state.tasks.values()]
        for framework in state.frameworks.values():
            all_tasks.extend(_task_json(task) for task in framework.completed)
        return {
            "id": self.ids.prefix,
            "pid": str(self.pid),
            "hostname": self.options.hostname,
            "version": VERSION,
            "agents": [_agent_json(agent, state.used_on(agent)) for agent in state.agents.values()],
            "unreachable_agents": [
                {"id": agent_id, "hostname": info.hostname}
                for agent_id, info in state.unreachable.items()
            ],
            "frameworks": frameworks,
            "tasks": all_tasks,
        }


def _tasks_of(message: AcceptOffers) -> Iterable[TaskInfo]:
    for operation in message.operations:
        if operation.launch is not None:
            yield from operation.launch.task_infos
        if operation.launch_group is not None:
            yield from operation.launch_group.task_group.tasks


def _task_json(task: TaskRecord) -> dict[str, Any]:
    return {
        "id": task.task_id,
        "name": task.name,
        "framework_id": task.framework_id,
        "agent_id": task.agent_id,
        "executor_id": task.executor_id or "",
        "state": task.state.value,
        "resources": task.resources.unallocated().to_json(),
    }


def _offer_json(offer: Offer) -> dict[str, Any]:
    return {
        "id": offer.id,
        "agent_id": offer.agent_id,
        "resources": offer.resources.unallocated().to_json(),
    }


def _agent_json(agent: AgentRecord, used: Resources) -> dict[str, Any]:
    info = agent.info
    return {
        "id": agent.id,
        "hostname": info.hostname,
        "port": info.port,
        "pid": agent.pid,
        "version": agent.version,
        "active": True,
        "resources": info.resources.to_json(),
        "used_resources": used.unallocated().to_json(),
        "attributes": [json_compatible(attribute.to_wire()) for attribute in info.attributes],
    }
