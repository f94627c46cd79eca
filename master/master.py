"""The master actor: agents, frameworks, offers, tasks and status updates (docs/flows.md).

A thin actor over ``MasterState`` (bookkeeping), ``validation`` (accept checks) and the
``Registry`` (admitted agents on disk). It owns an ``AllocatorProcess`` in the same runtime
and speaks to it only through ``AllocatorClient``; allocations come back as
``allocator/allocations`` messages and leave as offers. Bad requests from outside are logged
with a reason and change nothing; nothing a peer sends can crash the master.

Failures, as Mesos handles them (what was decided where Mesos leaves room):

- ``AgentRegistered``/``AgentReregistered`` carry ``ping_timeout`` = ``agent_ping_timeout *
  max_agent_ping_timeouts``: after that long without a ping the agent takes the master for lost.
- Disconnection: the master links to every agent's pid. A broken link disconnects the agent
  (it stays registered; unreachability is still the pings' call): its offers are rescinded, it
  is deactivated in the allocator, and the tasks and executors of frameworks without
  ``checkpoint`` end TASK_LOST, reason REASON_AGENT_DISCONNECTED (they cannot survive an agent
  restart), their resources going back. Pings tell it ``connected: false``; status updates
  from it are dropped (the agent resends them after re-registering).
- Unreachable agents are removed at most ``agent_removal_rate_limit`` per second (None: no
  limit); the first at once, later ones spaced. Waiting ones stay registered, marked
  ``pending_removal``; a pong or a re-registration meanwhile cancels their removal.
- ``POST /master/agents/gone`` ``{"agent_id": …}`` marks an agent (registered, unreachable or
  recovered from the registry) GONE in the registry before answering 200; its tasks end
  TASK_GONE_BY_OPERATOR (PARTITION_AWARE) or TASK_LOST, reason REASON_AGENT_REMOVED_BY_OPERATOR;
  its resources leave the allocator; its later re-registrations are refused. 400 for a bad
  body, 404 for an id the master never admitted, 405 for a method other than POST, 503 when
  the registry cannot be written (nothing changed).
- A known agent re-registering (e.g. restarted after SIGKILL) is reconciled by the master
  itself: a task the master has and the agent did not report ends with reason
  REASON_RECONCILIATION, TASK_LOST for frameworks that are not PARTITION_AWARE, else TASK_DROPPED
  if it was still STAGING (its launch was lost) and TASK_GONE if it had started. Exception: a
  STAGING task whose RunTask went out less than ``agent_ping_timeout`` ago is kept, since that
  RunTask may have crossed the re-registration on the wire (Mesos asks the agent instead; our
  AgentReregistered has no field for that); such a task is settled by the agent's updates,
  a kill, or the next re-registration. Executors the agent did not report are dropped.
  Tasks and executors the agent reports that the master lacks are taken in; those of removed
  frameworks get ``ShutdownFramework`` instead. The allocator's view of the agent is rebuilt
  (remove, then add with exactly the resources of the tasks and executors kept), and its
  offers are rescinded first.
- Master restart: registry agents marked UNREACHABLE are listed unreachable again; ADMITTED ones
  must re-register within ``agent_reregister_timeout`` or are marked UNREACHABLE then; GONE stay
  refused. Frameworks that agents report but that have not re-registered are kept (their tasks
  count in the allocator, for the role in the agent's FrameworkInfo); if one has not come back
  ``max(failover_timeout, agent_reregister_timeout)`` after the master started, it is removed:
  ``ShutdownFramework`` to its agents, its resources back, its id refused.
- A framework removed (teardown or failover timeout) gets ``ShutdownFramework`` sent to every
  agent with its tasks or executors, and to any agent that later re-registers with them.
"""

from __future__ import annotations

import enum
import json
import logging
import re
import socket
import time
from collections import deque
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
    Task,
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
from corral.v1.model import resources_json, unallocated_json
from libprocess import UPID, Launched, LaunchOptions, Timer, handler, launch, route
from libprocess.http import Stream, request_body
from master import mesos_state
from master.allocator import (
    ALLOCATIONS,
    ERROR,
    AllocatorClient,
    AllocatorOptions,
    AllocatorProcess,
    events,
)
from master.allocator.codec import decode_allocations
from master.operator_api import OperatorApi
from master.registry import AgentStatus, Registry, RegistryError
from master.scheduler_api import SchedulerApi
from master.state import (
    AgentRecord,
    FrameworkRecord,
    MasterState,
    OfferRecord,
    TaskRecord,
    roles_of,
)
from master.state_snapshot import BUILD_SHARE
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
_MESOS_RESOURCES = ("cpus", "mem", "disk", "gpus")
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
    # Run the allocator in an OS process of its own (its metrics are then served by that
    # process's HTTP server, named in /master/state's "allocator").
    allocator_process: bool = False
    # Unreachable agents removed per second at most (None: no limit); see parse_rate_limit.
    agent_removal_rate_limit: float | None = None
    # After a restart, seconds the registry's admitted agents have to re-register.
    agent_reregister_timeout: float = 600.0
    # Seconds a built /master/state (and its views) is served before it is built anew.
    state_cache_seconds: float = 0.0  # a floor on /master/state's age; see state_snapshot
    # Seconds between HEARTBEAT events on v1 SUBSCRIBE streams (Mesos: a fixed 15 s).
    http_heartbeat_interval: float = 15.0

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
        rate = self.agent_removal_rate_limit
        if rate is not None and not 0 < rate < float("inf"):
            raise ValueError(
                f"agent_removal_rate_limit must be a positive number of removals per second "
                f"(or None for no limit), got {rate}"
            )
        if self.agent_reregister_timeout <= 0:
            raise ValueError(
                f"agent_reregister_timeout must be positive, got {self.agent_reregister_timeout}"
            )
        if not 0 < self.http_heartbeat_interval < float("inf"):
            raise ValueError(
                f"http_heartbeat_interval must be positive, got {self.http_heartbeat_interval}"
            )
        if not 0 <= self.state_cache_seconds < float("inf"):
            raise ValueError(
                f"state_cache_seconds must be 0 or more, got {self.state_cache_seconds}"
            )

    @property
    def total_ping_timeout(self) -> float:
        """Seconds without a pong after which the master takes an agent for unreachable."""
        return self.agent_ping_timeout * self.max_agent_ping_timeouts


_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "ms": 1e-3,
    "secs": 1.0,
    "mins": 60.0,
    "hrs": 3600.0,
    "days": 86400.0,
    "weeks": 604800.0,
}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$")


def parse_rate_limit(text: str) -> float:
    """Mesos's ``--agent_removal_rate_limit`` form, ``N/<duration>`` (``"1/10secs"``,
    ``"5/1mins"``), as removals per second."""
    match = _RATE.match(text.lower())
    unit = _UNITS.get(match.group(3)) if match else None
    if match is None or unit is None:
        raise ValueError(
            f"{text!r} is not a rate: write removals/duration, e.g. '1/10secs' or '5/1mins' "
            f"(units: {', '.join(_UNITS)})"
        )
    count, seconds = float(match.group(1)), float(match.group(2)) * unit
    if count <= 0 or seconds <= 0:
        raise ValueError(f"{text!r} is not a rate: both numbers must be positive")
    return count / seconds


class Removal(enum.Enum):
    """Why an agent leaves the master's registered agents; decides its tasks' fate."""

    UNREACHABLE = "unreachable"  # stopped answering pings; may come back
    UNREGISTERED = "unregistered"  # the agent said it leaves for good
    BY_OPERATOR = "gone by operator"  # an operator marked it gone


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
        self._allocator_child: Launched | None = None  # with allocator_process
        self._figures_cache: tuple[float, float, dict[str, float]] | None = None
        self._ping_timer: Timer | None = None
        # Agents (by pid) whose admission waits for the registry write; see _admit.
        self._admitting: dict[UPID, tuple[AgentInfo, Callable[[], None]]] = {}
        # Unreachable agents waiting for the removal rate limit, oldest first (an id whose
        # agent is no longer pending_removal is skipped when reached).
        self._removals: deque[AgentID] = deque()
        self._next_removal_at = float("-inf")  # runtime-clock time the next removal may run
        self._removal_timer: Timer | None = None
        # Agents the registry lists as admitted that have not re-registered since the start.
        self._recovering: dict[AgentID, AgentInfo] = {}
        self._reregister_timer: Timer | None = None
        self._started_at = 0.0
        # Frameworks known only from agents: the timer that removes them if they never return.
        self._recovered_timers: dict[FrameworkID, Timer] = {}

    # -- lifecycle ------------------------------------------------------------------------

    def initialize(self) -> None:
        self.registry.recover()
        self._started_at = self.runtime.clock.now()
        for agent_id, entry in self.registry.entries().items():
            if entry.status is AgentStatus.UNREACHABLE:
                self.records.add_unreachable(entry.info)
            elif entry.status is AgentStatus.ADMITTED:
                self._recovering[agent_id] = entry.info
        if self._recovering:
            self._reregister_timer = self.delay(
                self.options.agent_reregister_timeout, self._reregister_timeout
            )
        self._allocator_pid = self._start_allocator()
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
        self.operator = OperatorApi(self)
        self.scheduler_api = SchedulerApi(self, self.options.http_heartbeat_interval)
        self.alias("/api/v1/scheduler", "/api/v1/scheduler")
        for path in _ALIASED:
            self.alias(path, path)  # Mesos's absolute paths: /state, /api/v1, /version...
        self._register_metrics()
        log.info(
            "master_started",
            pid=self.pid,
            work_dir=self.work_dir,
            agents_in_registry=len(self.registry),
            agents_to_reregister=len(self._recovering),
        )

    def _register_metrics(self) -> None:
        metrics = self.runtime.metrics
        records = self.records
        self._launched = metrics.counter("master/tasks_launched")
        self._refused = metrics.counter("master/tasks_refused")  # TASK_ERROR / TASK_DROPPED
        # Events the allocator refused: each one a disagreement between it and the master.
        self._allocator_errors = metrics.counter("master/allocator_errors")
        self._metrics = [
            self._allocator_errors,
            self._launched,
            self._refused,
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
            *self._register_mesos_metrics(),
        ]

    def _register_mesos_metrics(self) -> list[Any]:
        """Mesos's metric names (master/tasks_running, master/cpus_total...), which Mesos
        tools and dashboards read from /metrics/snapshot."""
        metrics = self.runtime.metrics
        records = self.records
        now = self.runtime.clock.now
        started = self._started_at
        # Terminal task states are counted as they happen (Mesos's counters); the others are
        # read from the tasks the master holds.
        self._ended = {
            state: metrics.counter(_task_metric(state)) for state in TaskState if is_terminal(state)
        }
        live = [s for s in TaskState if not is_terminal(s) and s is not TaskState.TASK_UNKNOWN]

        def figure(name: str) -> Callable[[], float]:
            return lambda: self._figures()[name]

        gauges = [
            metrics.gauge("master/elected", lambda: 1),
            metrics.gauge("master/uptime_secs", lambda: now() - started),
            metrics.gauge("master/slaves_unreachable", lambda: len(records.unreachable)),
        ]
        names = [
            "master/slaves_connected",
            "master/slaves_disconnected",
            "master/slaves_active",
            "master/slaves_inactive",
            "master/frameworks_connected",
            "master/frameworks_disconnected",
            *(_task_metric(state) for state in live),
            *(
                f"master/{resource}_{kind}"
                for resource in _MESOS_RESOURCES
                for kind in ("total", "used", "percent")
            ),
        ]
        gauges.extend(metrics.gauge(name, figure(name)) for name in names)
        return [*self._ended.values(), *gauges]

    def _figures(self) -> dict[str, float]:
        """Every derived Mesos gauge from one pass over agents and tasks, reused while fresh:
        at 20,000 agents and 100,000 tasks a pass takes a good part of a second, so (as the
        state snapshot) passes may take at most a tenth of the master's time, however often
        /metrics/snapshot is read."""
        wall = time.monotonic()
        cached = self._figures_cache
        if cached is not None and wall - cached[0] < cached[1] / BUILD_SHARE:
            return cached[2]
        records = self.records
        figures: dict[str, float] = dict.fromkeys(
            (_task_metric(state) for state in TaskState if not is_terminal(state)), 0
        )
        for task in records.tasks.values():
            figures[_task_metric(task.state)] = figures.get(_task_metric(task.state), 0) + 1
        totals = dict.fromkeys(_MESOS_RESOURCES, 0)
        used = dict.fromkeys(_MESOS_RESOURCES, 0)
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
        deactivated = sum(a in records.agents for a in self.operator.deactivated)
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
        for name in _MESOS_RESOURCES:
            figures[f"master/{name}_total"] = totals[name] / 1000
            figures[f"master/{name}_used"] = used[name] / 1000
            figures[f"master/{name}_percent"] = used[name] / totals[name] if totals[name] else 0.0
        self._figures_cache = (wall, time.monotonic() - wall, figures)
        return figures

    def finalize(self) -> None:
        for metric in getattr(self, "_metrics", ()):
            self.runtime.metrics.remove(metric.name)
        if hasattr(self, "operator"):
            self.operator.stop()
        timers = [self._ping_timer, self._removal_timer, self._reregister_timer]
        for timer in [*timers, *self._recovered_timers.values()]:
            if timer is not None:
                timer.cancel()
        for framework in self.records.frameworks.values():
            if framework.failover_timer is not None:
                framework.failover_timer.cancel()
        for record in self.records.offers.values():
            if record.timer is not None:
                record.timer.cancel()
        if self._allocator_child is not None:
            self._allocator_child.stop()
        elif self._allocator_pid is not None:
            self.runtime.terminate(self._allocator_pid)

    def _start_allocator(self) -> UPID:
        """The allocator, in this runtime, or (``allocator_process``) in an OS process of its
        own: its cycles then run on another core, its events and allocations cross a socket.
        Starting the child blocks this process for the moment it takes (once, at start)."""
        args = (
            self.pid,
            AllocatorOptions(allocation_interval=self.options.allocation_interval),
            self.options.allocator_seed,
            f"{self.pid.id}-allocator",
        )
        if not self.options.allocator_process:
            return self.runtime.spawn(AllocatorProcess(*args))
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
        self._allocator_child = launch(
            AllocatorProcess,
            *args,
            options=LaunchOptions(host=self.pid.host, http_port=0, log_level=level),
        )
        log.info(
            "allocator_launched",
            pid=self._allocator_child.pid,
            os_pid=self._allocator_child.os_pid,
            http=self._allocator_child.http_address,
        )
        return self._allocator_child.pid

    def _call(self, method: str, *args: Any, **kwargs: Any) -> None:
        assert self.allocator is not None, "the allocator is spawned in initialize"
        args = tuple(tuple(a) if isinstance(a, list) else a for a in args)
        self.allocator.post(events.EVENTS[method](*args, **kwargs))

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
            self.send_message(sender, self._registered(existing.id))  # a retry: answer again
            return
        if sender in self._admitting:
            return  # a retry while its admission is being written: the answer follows
        agent_id = self.ids.agent_id()
        info = replace(info, id=agent_id)
        version = message.version

        def admitted() -> None:
            record = AgentRecord(info, str(sender), version)
            self.records.add_agent(record)
            self._call("add_agent", agent_id, info.resources)
            self.operator.agent_added(record)
            self.link(sender)
            self.send_message(sender, self._registered(agent_id))
            log.info(
                "agent_registered",
                agent_id=agent_id,
                pid=sender,
                hostname=info.hostname,
                resources=str(info.resources),
            )

        self._admit(info, sender, admitted)

    def _registered(self, agent_id: AgentID) -> AgentRegistered:
        return AgentRegistered(agent_id, ping_timeout=self.options.total_ping_timeout)

    def _reregistered(self, agent_id: AgentID) -> AgentReregistered:
        return AgentReregistered(agent_id, ping_timeout=self.options.total_ping_timeout)

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
            self._refuse_reregistration(
                sender,
                agent_id,
                "the agent was removed for good; start it with a fresh work directory",
            )
            return
        known = self.records.agents.get(agent_id)
        if known is not None:
            if known.info.hostname != info.hostname:
                self._refuse_reregistration(
                    sender,
                    agent_id,
                    f"agent {agent_id} is registered on host {known.info.hostname}, "
                    f"not {info.hostname}",
                )
                return
            shutdown = self._reconcile_known(known, sender, message)
            self._answer_reregistration(sender, agent_id, shutdown, message, known=True)
            return
        if sender in self._admitting:
            return  # a retry while its admission is being written: the answer follows

        def admitted() -> None:
            if agent_id in self.records.agents:  # admitted meanwhile under another pid
                self._refuse_reregistration(sender, agent_id, "the agent id was admitted twice")
                return
            if self.registry.status(agent_id) is AgentStatus.GONE:  # marked gone meanwhile
                self._refuse_reregistration(
                    sender,
                    agent_id,
                    "the agent was marked gone while its re-registration was written",
                )
                return
            shutdown = self._admit_with_tasks(info, str(sender), message)
            self.link(sender)
            self._answer_reregistration(sender, agent_id, shutdown, message, known=False)

        self._admit(info, sender, admitted)

    def _answer_reregistration(
        self,
        sender: UPID,
        agent_id: AgentID,
        shutdown: set[FrameworkID],
        message: ReregisterAgent,
        known: bool,
    ) -> None:
        self.send_message(sender, self._reregistered(agent_id))
        self._shutdown_frameworks(sender, shutdown)
        log.info(
            "agent_reregistered",
            agent_id=agent_id,
            pid=sender,
            known=known,
            tasks=len(message.tasks),
        )

    def _refuse_reregistration(self, sender: UPID | None, agent_id: AgentID, reason: str) -> None:
        log.warning("agent_reregistration_refused", agent=sender, agent_id=agent_id, reason=reason)

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
        admitted = [
            info
            for info, _ in batch.values()
            if self.registry.status(info.id) is not AgentStatus.GONE
        ]
        try:
            self.registry.admit(*admitted)
        except RegistryError as error:
            log.error("agent_admission_failed", agents=len(batch), error=str(error))
            return  # nothing changed; the agents retry
        for _, then in batch.values():
            then()

    def _shutdown_frameworks(self, pid: UPID, framework_ids: set[FrameworkID]) -> None:
        """Tell a re-registered agent to shut down frameworks that were removed."""
        for framework_id in sorted(framework_ids):
            log.info("removed_framework_shut_down", agent=pid, framework_id=framework_id)
            self.send_message(pid, ShutdownFramework(framework_id))

    def _admit_with_tasks(
        self, info: AgentInfo, pid: str, message: ReregisterAgent
    ) -> set[FrameworkID]:
        """An agent unknown to this master (or back from unreachable), with what it runs;
        returns the removed frameworks it runs, for the caller to shut down."""
        assert info.id is not None
        agent_id = info.id
        self._recovering.pop(agent_id, None)
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
        shutdown = self._take_reported(record, message)
        self._call(
            "add_agent", agent_id, info.resources, used=self.records.used_by_framework(record)
        )
        self.operator.agent_added(record)
        return shutdown

    def _take_reported(self, agent: AgentRecord, message: ReregisterAgent) -> set[FrameworkID]:
        """Take in the tasks and executors a re-registering agent reports and the master lacks.

        Returns the removed frameworks among them: the agent must shut those down. Frameworks
        not registered with this master are remembered from the agent's report (their role
        places the resources in the allocator) and removed if they never come back.
        """
        removed = self.records.removed_frameworks
        shutdown: set[FrameworkID] = set()
        for framework_info in message.frameworks:
            framework_id = framework_info.id
            if framework_id is None or framework_id in self.records.frameworks:
                continue
            if framework_id in removed:
                shutdown.add(framework_id)
            elif framework_id not in self.records.recovered_frameworks:
                self.records.recovered_frameworks[framework_id] = framework_info
                self._expect_framework(framework_info)

        def allocated(resources: Resources, framework_id: FrameworkID) -> Resources:
            if all(resource.allocation_role is not None for resource in resources):
                return resources
            framework_info = self.records.framework_info(framework_id)
            return _allocate(resources, roles_of(framework_info)[0] if framework_info else "*")

        for task in message.tasks:
            if is_terminal(task.state):
                # Ended, its last update not yet acknowledged (it follows): remember how it
                # ended, so that reconciliation answers the truth meanwhile.
                known = self.records.task(task.framework_id, task.task_id)
                if known is None and not self.records.completed_task(
                    task.framework_id, task.task_id
                ):
                    self.records.add_completed(_task_record(task, agent.id, task.resources))
                continue
            if task.framework_id in removed:
                shutdown.add(task.framework_id)
                continue
            existing = self.records.task(task.framework_id, task.task_id)
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
            self.records.forget_completed(task.framework_id, task.task_id)
            record = _task_record(task, agent.id, allocated(task.resources, task.framework_id))
            self.records.add_task(record)
            self.operator.task_added(record)
        for executor in message.executor_infos:
            framework_id = executor.framework_id
            if framework_id is None:
                continue
            if framework_id in removed:
                shutdown.add(framework_id)
                continue
            key = (framework_id, executor.executor_id)
            if key not in agent.executors:
                agent.executors[key] = allocated(executor.resources, framework_id)
        return shutdown

    def _reconcile_known(
        self, agent: AgentRecord, pid: UPID, message: ReregisterAgent
    ) -> set[FrameworkID]:
        """A registered agent re-registers (restarted, or back after a broken link): make the
        master's tasks, executors and allocator agree with what the agent reports. Returns
        the removed frameworks it runs, for the caller to shut down."""
        self._rescind_offers_on(agent, recover=False)  # the allocator's view is rebuilt below
        if agent.pid != str(pid):
            self.unlink(agent.pid)
            self.records.set_agent_pid(agent, str(pid))
        agent.info = message.agent
        agent.version = message.version
        agent.connected = True
        agent.awaiting_pong = False
        agent.missed_pings = 0
        agent.pending_removal = False
        reported = {(task.framework_id, task.task_id) for task in message.tasks}
        now = self.runtime.clock.now()
        kept_executors = set()
        for task in self.records.tasks_on(agent):
            if (task.framework_id, task.task_id) in reported:
                continue
            in_flight = (
                task.state is TaskState.TASK_STAGING
                and task.launched_at is not None
                and now - task.launched_at < self.options.agent_ping_timeout
            )
            if in_flight:  # its RunTask may have crossed the re-registration on the wire
                log.info("task_kept_in_flight", agent_id=agent.id, task_id=task.task_id)
                if task.executor_id is not None:
                    kept_executors.add((task.framework_id, task.executor_id))
                continue
            launched = task.state is TaskState.TASK_STAGING
            self._settle(
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
        shutdown = self._take_reported(agent, message)
        self._call("remove_agent", agent.id)
        self._call(
            "add_agent",
            agent.id,
            agent.info.resources,
            used=self.records.used_by_framework(agent),
        )
        if agent.id in self.operator.deactivated:  # an operator's deactivation outlasts this
            self._call("deactivate_agent", agent.id)
        self.link(pid)
        return shutdown

    def _settle(self, task: TaskRecord, aware_state: TaskState, reason: Reason, why: str) -> None:
        """End (or, for TASK_UNREACHABLE, suspend) a task by the master's own update:
        ``aware_state`` for PARTITION_AWARE frameworks, TASK_LOST for the others. The caller
        frees the task's resources in the allocator where they are still counted."""
        info = self.records.framework_info(task.framework_id)
        aware = info is not None and info.has_capability(PARTITION_AWARE)
        state = aware_state if aware else TaskState.TASK_LOST
        status = self._master_status(task.task_id, state, reason, why, task.agent_id)
        if task.executor_id is not None:
            status = replace(status, executor_id=task.executor_id)
        ended = False
        if is_terminal(state):
            ended = self.records.update_task(task, status)
            if not ended:
                self.records.remove_task(task)
        else:
            task.state = state
            task.status = status
        self._task_updated(task, status, ended)
        log.info(
            "task_settled",
            framework_id=task.framework_id,
            task_id=task.task_id,
            agent_id=task.agent_id,
            state=state.value,
            reason=reason.value,
        )
        framework = self.records.frameworks.get(task.framework_id)
        if framework is not None and framework.connected:
            self.send_message(framework.pid, StatusUpdate(task.framework_id, status))

    def _task_gone(self, task: TaskRecord) -> None:
        """A task the master kept (unreachable) that its re-registered agent no longer runs."""
        status = self._master_status(
            task.task_id,
            TaskState.TASK_GONE,
            Reason.REASON_AGENT_REREGISTERED,
            f"agent {task.agent_id} re-registered without this task",
            task.agent_id,
        )
        ended = self.records.update_task(task, status)
        if not ended:
            self.records.remove_task(task)
        self._task_updated(task, status, ended)
        framework = self.records.frameworks.get(task.framework_id)
        if framework is not None and framework.connected:
            self.send_message(framework.pid, StatusUpdate(task.framework_id, status))

    def _task_updated(self, task: TaskRecord, status: TaskStatus, ended: bool) -> None:
        """Every change of a task's state: counted (Mesos's metrics) and told to operators."""
        if ended:
            self._ended[status.state].inc()
        self.operator.task_updated(task, status)

    @receives(PongAgent)
    def pong_agent(self, sender: UPID | None, message: PongAgent) -> None:
        agent = self.records.agent_by_pid(sender)
        if agent is None:
            log.debug("pong_from_unknown_agent", agent=sender)
            return
        agent.awaiting_pong = False
        agent.missed_pings = 0
        if agent.pending_removal:
            agent.pending_removal = False  # skipped when the removal queue reaches it
            log.info("agent_removal_cancelled", agent_id=agent.id, reason="it answered a ping")

    def _ping_agents(self) -> None:
        """Every ``agent_ping_timeout``: count unanswered pings, then ping again."""
        for agent in list(self.records.agents.values()):
            if agent.awaiting_pong and not agent.pending_removal:
                agent.missed_pings += 1
                if agent.missed_pings >= self.options.max_agent_ping_timeouts:
                    log.warning(
                        "agent_unreachable",
                        agent_id=agent.id,
                        pid=agent.pid,
                        missed_pings=agent.missed_pings,
                    )
                    self._queue_removal(agent)
                    if agent.id not in self.records.agents:
                        continue
            agent.awaiting_pong = True
            self.send_message(agent.pid, PingAgent(connected=agent.connected))
        self._ping_timer = self.delay(self.options.agent_ping_timeout, self._ping_agents)

    def _queue_removal(self, agent: AgentRecord) -> None:
        """Remove an unreachable agent now, or when the removal rate limit allows it."""
        if self.options.agent_removal_rate_limit is None:
            self._remove_agent(agent, Removal.UNREACHABLE)
            return
        agent.pending_removal = True
        self._removals.append(agent.id)
        self._run_removals()

    def _run_removals(self) -> None:
        rate = self.options.agent_removal_rate_limit
        assert rate is not None, "removals only queue under a rate limit"
        now = self.runtime.clock.now()
        while self._removals:
            agent = self.records.agents.get(self._removals[0])
            if agent is None or not agent.pending_removal:
                self._removals.popleft()  # came back, re-registered or removed meanwhile
                continue
            if now < self._next_removal_at - 1e-9:
                if self._removal_timer is None:
                    self._removal_timer = self.delay(
                        self._next_removal_at - now, self._removal_allowed
                    )
                log.info(
                    "agent_removal_pending",
                    agent_id=agent.id,
                    queued=len(self._removals),
                    in_seconds=round(self._next_removal_at - now, 3),
                )
                return
            self._removals.popleft()
            agent.pending_removal = False
            self._next_removal_at = now + 1.0 / rate
            self._remove_agent(agent, Removal.UNREACHABLE)

    def _removal_allowed(self) -> None:
        self._removal_timer = None
        self._run_removals()

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
        self._remove_agent(agent, Removal.UNREGISTERED)

    def _rescind_offers_on(self, agent: AgentRecord, recover: bool = True) -> None:
        """Take back the agent's outstanding offers (their frameworks are told)."""
        for offer_id in sorted(agent.offers):
            record = self.records.offers.get(offer_id)
            framework = self.records.frameworks.get(record.offer.framework_id) if record else None
            if framework is not None and framework.connected:
                self.send_message(framework.pid, RescindOffer(offer_id))
            if recover:
                self._return_offer(offer_id)
            else:
                self.records.remove_offer(offer_id)

    def _remove_agent(self, agent: AgentRecord, why: Removal) -> None:
        """Unreachable (may come back) or gone: offers rescinded, tasks reported, AgentLost."""
        unreachable = why is Removal.UNREACHABLE
        self._rescind_offers_on(agent, recover=False)  # remove_agent frees them below
        tasks = self.records.tasks_on(agent)
        self.records.remove_agent(agent.id, unreachable)
        self.unlink(agent.pid)
        self._call("remove_agent", agent.id)  # frees what it held
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
            self._settle(task, state, reason, f"agent {agent.id} is {why.value}")
        for framework in self.records.frameworks.values():
            if framework.connected:
                self.send_message(framework.pid, AgentLost(agent.id))
        self.operator.agent_removed(agent.id)
        log.info("agent_removed", agent_id=agent.id, reason=why.value, tasks=len(tasks))

    def _agent_disconnected(self, agent: AgentRecord) -> None:
        """The link to the agent broke: no offers until it re-registers, and the tasks of
        frameworks that do not checkpoint are lost (they do not survive an agent restart)."""
        agent.connected = False
        self._rescind_offers_on(agent)
        self._call("deactivate_agent", agent.id)
        lost = 0
        for task in self.records.tasks_on(agent):
            info = self.records.framework_info(task.framework_id)
            if info is None or info.checkpoint:
                continue
            self._settle(
                task,
                TaskState.TASK_LOST,
                Reason.REASON_AGENT_DISCONNECTED,
                f"agent {agent.id} disconnected and framework {task.framework_id} does not "
                "checkpoint",
            )
            self._call("recover_resources", task.framework_id, agent.id, task.resources)
            lost += 1
        for key in sorted(agent.executors):
            info = self.records.framework_info(key[0])
            if info is not None and not info.checkpoint:
                self._call("recover_resources", key[0], agent.id, agent.executors.pop(key))
        # An agent that stops cleanly disconnects too: only lost tasks make it a warning.
        report = log.warning if lost else log.info
        report("agent_disconnected", agent_id=agent.id, pid=agent.pid, tasks_lost=lost)

    def _reregister_timeout(self) -> None:
        """Agents of the registry that did not re-register after the master's restart."""
        self._reregister_timer = None
        missing, self._recovering = self._recovering, {}
        missing = {
            agent_id: info
            for agent_id, info in missing.items()
            if agent_id not in self.records.agents
            and self.registry.status(agent_id) is AgentStatus.ADMITTED
        }
        if not missing:
            return
        try:
            self.registry.mark_all(missing, AgentStatus.UNREACHABLE)
        except RegistryError as error:
            log.error("registry_update_failed", agents=sorted(missing), error=str(error))
        for info in missing.values():
            self.records.add_unreachable(info)
        log.warning(
            "agents_not_reregistered",
            agents=sorted(missing),
            timeout=self.options.agent_reregister_timeout,
            reason="marked unreachable",
        )

    # -- an operator's word ---------------------------------------------------------------

    @route(
        "/agents/gone",
        'POST {"agent_id": ...}: the agent is gone for good (as Mesos\'s '
        "MARK_AGENT_GONE); its tasks end and it may not re-register",
    )
    def mark_agent_gone_http(self, request: web.Request) -> web.Response:
        if request.method != "POST":
            return web.Response(
                status=405,
                text=f"{request.method} is not served here: POST a JSON body "
                '{"agent_id": "<id>"}\n',
            )
        try:
            body = json.loads(request_body(request) or b"null")
        except ValueError as error:
            return web.Response(status=400, text=f"the body is not JSON ({error})\n")
        agent_id = body.get("agent_id") if isinstance(body, dict) else None
        if not isinstance(agent_id, str) or not agent_id:
            return web.Response(
                status=400,
                text='the body must be a JSON object with a string "agent_id", got '
                f"{json.dumps(body)[:200]}\n",
            )
        status, text = self.mark_agent_gone(AgentID(agent_id))
        return web.Response(status=status, text=text + "\n")

    def mark_agent_gone(self, agent_id: AgentID) -> tuple[int, str]:
        """An operator says the agent is gone for good; returns an HTTP status and sentence.

        The registry is written first: if that fails nothing else changes (503).
        """
        status = self.registry.status(agent_id)
        if status is AgentStatus.GONE:
            return 200, f"agent {agent_id} was already marked gone"
        agent = self.records.agents.get(agent_id)
        if status is None and agent is None:
            return 404, f"agent {agent_id} is unknown to this master (never admitted)"
        try:
            self.registry.mark(agent_id, AgentStatus.GONE)
        except RegistryError as error:
            log.error("registry_update_failed", agent_id=agent_id, error=str(error))
            return 503, f"agent {agent_id} not marked gone: {error}; retry later"
        self._recovering.pop(agent_id, None)
        if agent is not None:
            self._remove_agent(agent, Removal.BY_OPERATOR)
        else:
            for task in self.records.remove_unreachable(agent_id):
                self._settle(
                    task,
                    TaskState.TASK_GONE_BY_OPERATOR,
                    Reason.REASON_AGENT_REMOVED_BY_OPERATOR,
                    f"agent {agent_id} is gone by operator",
                )
        log.warning("agent_marked_gone", agent_id=agent_id, was=status.value if status else None)
        return 200, f"agent {agent_id} is marked gone"

    def teardown_framework(self, framework_id: FrameworkID) -> bool:
        """An operator tears a framework down (v1 TEARDOWN); False if it is not registered.
        Its driver, if connected, is told with ``FrameworkError``."""
        framework = self.records.frameworks.get(framework_id)
        if framework is None:
            return False
        if framework.connected:
            self.send_message(
                framework.pid,
                FrameworkError(f"framework {framework_id} was torn down by an operator"),
            )
        self._remove_framework(framework, "torn down by an operator")
        return True

    def deactivate_agent(self, agent: AgentRecord) -> None:
        """An operator deactivates an agent (v1 DEACTIVATE_AGENT): no offers from it until
        REACTIVATE_AGENT; its outstanding offers are rescinded; its tasks keep running."""
        self._call("deactivate_agent", agent.id)
        self._rescind_offers_on(agent)
        log.info("agent_deactivated", agent_id=agent.id, by="operator")

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
        timer = self._recovered_timers.pop(info.id, None)
        if timer is not None:
            timer.cancel()  # known from agents, and back now
        roles = roles_of(info)
        record = FrameworkRecord(info.id, info, str(pid), roles)
        self.records.add_framework(record)
        self.operator.framework_added(record)
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
        self.operator.framework_updated(framework)
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
        agent = self.records.agent_by_pid(str(pid))
        if agent is not None and agent.connected:
            self._agent_disconnected(agent)
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
        self.operator.framework_updated(framework)
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

    def _expect_framework(self, info: FrameworkInfo) -> None:
        """A framework known only from an agent's report: remove it unless it re-registers
        within ``max(failover_timeout, agent_reregister_timeout)`` of the master's start."""
        assert info.id is not None
        grace = max(info.failover_timeout, self.options.agent_reregister_timeout)
        left = max(0.0, self._started_at + grace - self.runtime.clock.now())
        self._recovered_timers[info.id] = self.delay(
            left, self._recovered_framework_expired, info.id
        )

    def _recovered_framework_expired(self, framework_id: FrameworkID) -> None:
        self._recovered_timers.pop(framework_id, None)
        if framework_id not in self.records.recovered_frameworks:
            return  # re-registered (or removed) meanwhile
        held = {
            agent.id: used[framework_id]
            for agent in self.records.agents.values()
            if framework_id in (used := self.records.used_by_framework(agent))
        }
        tasks = self.records.remove_recovered_framework(framework_id)
        for agent_id, resources in sorted(held.items()):
            agent = self.records.agents[agent_id]
            for key in [key for key in agent.executors if key[0] == framework_id]:
                del agent.executors[key]
            self._call("recover_resources", framework_id, agent_id, resources)
            self.send_message(agent.pid, ShutdownFramework(framework_id))
        log.warning(
            "framework_removed",
            framework_id=framework_id,
            reason="known only from its agents, it did not re-register after the master restarted",
            tasks=len(tasks),
        )

    def _remove_framework(self, framework: FrameworkRecord, why: str) -> None:
        self.operator.framework_removing(framework)
        if framework.failover_timer is not None:
            framework.failover_timer.cancel()
            framework.failover_timer = None
        tasks = self.records.remove_framework(framework.id)
        on = {task.agent_id for task in tasks}
        for agent in self.records.agents.values():
            for key in [key for key in agent.executors if key[0] == framework.id]:
                del agent.executors[key]
                on.add(agent.id)
        for agent_id in sorted(on):
            agent = self.records.agents.get(agent_id)
            if agent is not None:
                self.send_message(agent.pid, ShutdownFramework(framework.id))
        self._call("remove_framework", framework.id)  # frees its offers, tasks and executors
        if not self.records.frameworks_by_pid(framework.pid):
            self.unlink(framework.pid)
        log.info("framework_removed", framework_id=framework.id, reason=why, tasks=len(tasks))

    @handler(ERROR)
    def allocator_refused(self, sender: UPID | None, body: Any) -> None:
        """The allocator refused an event: its view and the master's differ (a bug here)."""
        if sender != self._allocator_pid:
            log.warning("allocator_error_ignored", sender=sender, reason="not from our allocator")
            return
        self._allocator_errors.inc()
        details = body if isinstance(body, dict) else {}
        log.error(
            "allocator_event_refused", refused=details.get("event"), error=details.get("error")
        )

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
                executor_ids=tuple(sorted(e for (f, e) in agent.executors if f == framework_id)),
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
        record = TaskRecord(
            task.task_id,
            framework.id,
            agent.id,
            task.name,
            TaskState.TASK_STAGING,
            resources,
            executor.executor_id if executor else None,
            launched_at=self.runtime.clock.now(),
        )
        self.records.add_task(record)
        self.operator.task_added(record)
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
            record = TaskRecord(
                task.task_id,
                framework.id,
                agent.id,
                task.name,
                TaskState.TASK_STAGING,
                resources,
                executor.executor_id,
                launched_at=self.runtime.clock.now(),
            )
            self.records.add_task(record)
            self.operator.task_added(record)
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
        if task is None and self._transitioning(message.agent_id):
            # Its agent may yet report it (after a master restart): saying LOST now could be
            # wrong, so nothing is said, as Mesos does; the framework kills or reconciles again.
            log.info(
                "kill_deferred",
                framework_id=framework.id,
                task_id=message.task_id,
                reason="unknown task while agents have yet to re-register",
            )
            return
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
        if not agent.connected:
            log.warning(
                "status_update_dropped",
                agent_id=agent.id,
                task_id=status.task_id,
                reason="the agent is disconnected; it resends after re-registering",
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
        else:
            ended = self.records.update_task(task, status)
            if ended:
                self._call("recover_resources", framework.id, agent.id, task.resources)
            self._task_updated(task, status, ended)
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
        # Also for a task this master does not know (one that ended before a master restart):
        # the agent's stream is the judge, and only the acknowledgement stops its resends.
        self._to_agent(sender, message, message.agent_id, "acknowledgement")

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
        named = {task.task_id: task.agent_id for task in message.tasks}
        for task_id in asked:
            task = self.records.task(framework.id, task_id) or self.records.completed_task(
                framework.id, task_id
            )
            if task is None:
                agent_id = named.get(task_id)
                if self._transitioning(agent_id):
                    continue  # its agent (or some agent) has yet to re-register: no answer yet
                if agent_id is not None and agent_id in self.records.unreachable:
                    state = TaskState.TASK_UNREACHABLE if aware else TaskState.TASK_LOST
                    text = f"Reconciliation: agent {agent_id} is unreachable"
                else:
                    state = TaskState.TASK_UNKNOWN if aware else TaskState.TASK_LOST
                    text = "Reconciliation: task unknown to the master"
                status = self._master_status(
                    task_id, state, Reason.REASON_RECONCILIATION, text, agent_id
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

    def _transitioning(self, agent_id: AgentID | None) -> bool:
        """Whether a task unknown to the master may yet be reported by an agent: its agent (or,
        when none is named, any agent) is in the registry and has not re-registered since the
        master started. Mesos answers nothing then, rather than a wrong TASK_LOST."""
        if agent_id is None:
            return any(a not in self.records.agents for a in self._recovering)
        return agent_id in self._recovering and agent_id not in self.records.agents

    # -- framework messages -------------------------------------------------------------------

    @receives(FrameworkToExecutor)
    def framework_to_executor(self, sender: UPID | None, message: FrameworkToExecutor) -> None:
        self._to_agent(sender, message, message.agent_id, "framework_message")

    @receives(ShutdownExecutor)
    def shutdown_executor(self, sender: UPID | None, message: ShutdownExecutor) -> None:
        self._to_agent(sender, message, message.agent_id, "shutdown_executor")

    def _to_agent(
        self, sender: UPID | None, message: Any, agent_id: AgentID | None, call: str
    ) -> None:
        """Pass a framework's call on to the agent it names, if the caller drives the
        framework and the agent is registered here; else log why it was dropped."""
        framework = self._framework_call(sender, message.framework_id, call)
        if framework is None:
            return
        agent = self.records.agents.get(agent_id) if agent_id else None
        if agent is None:
            log.info(
                f"{call}_dropped",
                framework_id=framework.id,
                agent_id=agent_id,
                reason="unknown or unreachable agent",
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

    @route("/state", "agents, frameworks and tasks, Mesos's JSON (cached; ?jsonp=callback)")
    def state_json(self, request: web.Request) -> web.Response:
        return self.operator.state_response(request, "state")

    @route("/info", "who the master is (pid, id, hostname, version): cheap at any size")
    def info_json(self, request: web.Request) -> web.Response:
        """What drivers and agents need to find the master's native endpoint; unlike
        ``/master/state`` it costs nothing at 20,000 agents (corral/discovery.py)."""
        return web.json_response(
            {
                "pid": str(self.pid),
                "id": self.ids.prefix,
                "hostname": self.options.hostname,
                "version": VERSION,
            }
        )

    @route("/state-summary", "agents and frameworks without their tasks (Mesos's JSON)")
    def state_summary_json(self, request: web.Request) -> web.Response:
        return self.operator.state_response(
            request,
            "state-summary",
            lambda state: {
                "hostname": state["hostname"],
                "cluster": state.get("cluster", ""),
                "slaves": state["slaves"],
                "frameworks": [
                    {k: v for k, v in f.items() if k not in _TASK_LISTS}
                    for f in state["frameworks"]
                ],
            },
        )

    @route("/slaves", "the registered agents (Mesos's JSON; ?jsonp=callback)")
    def slaves_json(self, request: web.Request) -> web.Response:
        return self.operator.state_response(
            request,
            "slaves",
            lambda state: {
                "slaves": state["slaves"],
                "recovered_slaves": state["recovered_agents"],
            },
        )

    @route("/frameworks", "the frameworks (Mesos's JSON; ?jsonp=callback)")
    def frameworks_json(self, request: web.Request) -> web.Response:
        return self.operator.state_response(
            request,
            "frameworks",
            lambda state: {
                "frameworks": [
                    mesos_state.framework_with_resource_maps(f) for f in state["frameworks"]
                ],
                "completed_frameworks": [
                    mesos_state.framework_with_resource_maps(f)
                    for f in state["completed_frameworks"]
                ],
                "unregistered_frameworks": state["unregistered_frameworks"],
            },
        )

    @route("/tasks", "tasks, newest first (?limit=100&offset=0&order=des|asc)")
    def tasks_json(self, request: web.Request) -> web.Response:
        return self.operator.tasks_response(request)

    @route("/roles", "roles with their weights, quota, frameworks and resources")
    def roles_json(self, request: web.Request) -> web.Response:
        operator = self.operator
        return operator.state_response(
            request,
            "roles",
            lambda _: {
                "roles": mesos_state.role_entries(self.records, operator.weights, operator.quotas)
            },
        )

    @route("/flags", "the master's options, as Mesos's flags")
    def flags_json(self, request: web.Request) -> web.Response:
        return web.json_response({"flags": self.operator.flags()})

    @route("/version", "the Mesos version whose APIs this master speaks, and Corral's")
    def version_json(self, request: web.Request) -> web.Response:
        return web.json_response(self.operator.version_info())

    @route("/health", "200 while the master runs")
    def health(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    @route("/api/v1/scheduler", "Mesos's v1 scheduler API: POST calls, SUBSCRIBE streams (JSON)")
    def _scheduler_api(self, request: web.Request) -> web.StreamResponse | Stream:
        return self.scheduler_api.handle(request)

    @route("/api/v1", 'Mesos\'s v1 operator API: POST {"type": ...} (JSON)')
    def operator_api(self, request: web.Request) -> web.StreamResponse | Stream:
        return self.operator.handle(request)

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
            "allocator": {
                "pid": str(self._allocator_pid),
                "own_process": self._allocator_child is not None,
                "http": self._allocator_child.http_address if self._allocator_child else None,
            },
            "pid": str(self.pid),
            "hostname": self.options.hostname,
            "version": VERSION,
            "agents": [_agent_json(agent, state.used_on(agent)) for agent in state.agents.values()],
            "unreachable_agents": [
                {"id": agent_id, "hostname": info.hostname}
                for agent_id, info in state.unreachable.items()
            ],
            "recovered_agents": [  # in the registry, not re-registered since the master started
                {"id": agent_id, "hostname": info.hostname}
                for agent_id, info in sorted(self._recovering.items())
                if agent_id not in state.agents
            ],
            "frameworks": frameworks,
            "tasks": all_tasks,
        }


# Routes also served at Mesos's absolute paths (``/state`` as well as ``/master/state``).
_ALIASED = (
    "/state",
    "/state-summary",
    "/slaves",
    "/frameworks",
    "/tasks",
    "/roles",
    "/flags",
    "/version",
    "/health",
    "/api/v1",
)
_TASK_LISTS = frozenset({"tasks", "completed_tasks", "unreachable_tasks", "offers", "executors"})


def _task_metric(state: TaskState) -> str:
    """Mesos's metric name for a task state: ``master/tasks_running``."""
    return "master/tasks_" + state.value.lower().removeprefix("task_")


def _tasks_of(message: AcceptOffers) -> Iterable[TaskInfo]:
    for operation in message.operations:
        if operation.launch is not None:
            yield from operation.launch.task_infos
        if operation.launch_group is not None:
            yield from operation.launch_group.task_group.tasks


def _task_record(task: Task, agent_id: AgentID, resources: Resources) -> TaskRecord:
    """The master's record of a task an agent reports."""
    return TaskRecord(
        task.task_id,
        task.framework_id,
        agent_id,
        task.name,
        task.state,
        resources,
        task.executor_id,
        task.statuses[-1] if task.statuses else None,
    )


def _task_json(task: TaskRecord) -> dict[str, Any]:
    return {
        "id": task.task_id,
        "name": task.name,
        "framework_id": task.framework_id,
        "agent_id": task.agent_id,
        "executor_id": task.executor_id or "",
        "state": task.state.value,
        "resources": unallocated_json(task.resources),
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
        "active": agent.connected,
        "connected": agent.connected,
        "pending_removal": agent.pending_removal,
        "resources": resources_json(info.resources),
        "used_resources": unallocated_json(used),
        "attributes": [json_compatible(attribute.to_wire()) for attribute in info.attributes],
    }
