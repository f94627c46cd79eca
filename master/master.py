"""The master actor: handlers that feed ``MasterCore`` and carry out what it decides.

Every message is decoded and validated (``ProtocolProcess``), handed to the core that owns
the decision (master/core.py lists them: offers, tasks, frameworks, agents, liveness), and
the core's outbox is then applied here: protocol messages sent, allocator events posted,
links and timers set. Nothing else happens in this file: no decision, no bookkeeping. What
the master decides, and where Mesos leaves room, is written in the cores' docstrings and in
docs/flows.md; the map of the parts is docs/architecture.md.

The actor also owns the allocator (in this runtime, or with ``allocator_process`` in an OS
process of its own: ``AllocatorClient`` hides which), the HTTP surfaces (master/
operator_api.py: Mesos's state endpoints and the v1 operator API; master/scheduler_api.py:
the v1 scheduler API; master/state_views.py: Mesos's state endpoints), and the metrics
(master/metrics.py).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Hashable
from typing import Any

import structlog

import corral
from corral.ids import AgentID, FrameworkID
from corral.protocol import Address, MasterInfo
from corral.protocol.endpoint import ProtocolProcess, receives
from corral.protocol.messages import (
    AcceptOffers,
    DeactivateFramework,
    DeclineOffers,
    ExecutorToFramework,
    ExitedExecutor,
    FrameworkToExecutor,
    KillTask,
    PongAgent,
    ReconcileTasks,
    RegisterAgent,
    RegisterFramework,
    ReregisterAgent,
    ReregisterFramework,
    ReviveOffers,
    ShutdownExecutor,
    StatusUpdate,
    StatusUpdateAcknowledgement,
    SuppressOffers,
    UnregisterAgent,
    UnregisterFramework,
)
from libprocess import UPID, Launched, LaunchOptions, Timer, handler, launch
from master import outbox
from master.allocator import (
    ALLOCATIONS,
    ERROR,
    AllocatorClient,
    AllocatorOptions,
    AllocatorProcess,
)
from master.allocator.backlog_gate import BacklogLimits
from master.allocator.codec import decode_allocations
from master.allocator.events import Revive, Suppress
from master.allocator.quota import Quota
from master.core import MasterCore
from master.metrics import MasterMetrics
from master.operator_api import OperatorApi
from master.options import MasterOptions
from master.registry import Registry
from master.scheduler_api import SchedulerApi
from master.state import MasterState
from master.state_views import StateViews

log = structlog.get_logger("master")

VERSION = corral.__version__


class MasterProcess(ProtocolProcess):
    """The master: process id ``master``; HTTP ``/master/state`` when the runtime serves HTTP."""

    def __init__(
        self, work_dir: str, options: MasterOptions | None = None, id: str = "master"
    ) -> None:
        super().__init__(id)
        self.options = options or MasterOptions()
        self.work_dir = work_dir
        self.core = MasterCore(self.options, Registry(work_dir))
        self.allocator: AllocatorClient | None = None
        self.master_info: MasterInfo | None = None
        self._allocator_child: Launched | None = None  # with allocator_process
        self._timers: dict[Hashable, Timer] = {}  # the outbox's keyed timers, armed

    # -- read model and commands (for the HTTP surfaces) --------------------------------------

    @property
    def state(self) -> MasterState:
        """The master's records: read them; change them only through the commands below."""
        return self.core.state

    @property
    def registry(self) -> Registry:
        return self.core.registry

    @property
    def ids_prefix(self) -> str:
        """This master's run: the prefix of every id it makes (Mesos's master id)."""
        return self.core.ids.prefix

    @property
    def allocator_child(self) -> Launched | None:
        """The allocator's OS process, with ``allocator_process`` (else None)."""
        return self._allocator_child

    def allocator_info(self) -> dict[str, Any]:
        """Where the allocator runs (``/master/state``'s ``allocator``)."""
        child = self._allocator_child
        return {
            "pid": str(self.allocator.pid) if self.allocator else None,
            "own_process": child is not None,
            "http": child.http_address if child else None,
        }

    def mark_agent_gone(self, agent_id: AgentID) -> tuple[int, str]:
        """An operator says the agent is gone for good: an HTTP status and a sentence."""
        answer = self.core.mark_agent_gone(agent_id)
        self.apply()
        return answer

    def teardown_framework(self, framework_id: FrameworkID) -> bool:
        """An operator tears a framework down (v1 TEARDOWN); False if it is not registered."""
        done = self.core.frameworks.teardown(framework_id)
        self.apply()
        return done

    def update_weights(self, weights: dict[str, float]) -> None:
        """Raises ``RegistryError`` (nothing changed) when the registry cannot be written."""
        self.core.update_weights(weights)
        self.apply()

    def update_quotas(self, quotas: dict[str, Quota]) -> None:
        self.core.update_quotas(quotas)
        self.apply()

    def deactivate_agent(self, agent_id: AgentID) -> bool:
        """No offers from the agent until reactivated; False if it is not registered."""
        agent = self.core.state.agents.get(agent_id)
        if agent is not None:
            self.core.deactivate_agent(agent)
            self.apply()
        return agent is not None

    def reactivate_agent(self, agent_id: AgentID) -> bool:
        agent = self.core.state.agents.get(agent_id)
        if agent is not None:
            self.core.reactivate_agent(agent)
            self.apply()
        return agent is not None

    def describe(self) -> dict[str, Any]:
        """The JSON of ``/master/state`` as built now (tests compare it before and after)."""
        return self.views.build_state()

    # -- lifecycle ------------------------------------------------------------------------

    def initialize(self) -> None:
        if self.options.gc_thresholds is not None:  # see MasterOptions: process-wide
            gc.set_threshold(*self.options.gc_thresholds)
        now = self.runtime.clock.now()
        self.allocator = AllocatorClient(self, self._start_allocator())
        host, _, port = self.pid.address.rpartition(":")
        self.master_info = MasterInfo(
            id=self.core.ids.prefix,
            port=int(port),
            pid=str(self.pid),
            hostname=self.options.hostname,
            version=VERSION,
            address=Address(hostname=self.options.hostname, ip=host, port=int(port)),
        )
        self.core.frameworks.master_info = self.master_info
        self.metrics = MasterMetrics(
            self.runtime.metrics,
            self.core.state,
            self.runtime.clock.now,
            lambda: self.mailbox.events,
        )
        self.core.observers.add(self.metrics)
        self.views = StateViews(self)
        self.core.observers.add(self.views)  # first: the operator's events read its times
        self.operator = OperatorApi(self, self.views)
        self.core.observers.add(self.operator)
        self.scheduler_api = SchedulerApi(self, self.options.http_heartbeat_interval)
        self.route(
            "/api/v1/scheduler",
            self.scheduler_api.handle,
            "Mesos's v1 scheduler API: POST calls, SUBSCRIBE streams (JSON)",
        )
        self.alias("/api/v1/scheduler", "/api/v1/scheduler")
        self.views.install(self)
        self.operator.install(self)
        self.core.start(now)
        self.apply()
        log.info(
            "master_started",
            pid=self.pid,
            work_dir=self.work_dir,
            agents_in_registry=len(self.core.registry),
            agents_to_reregister=len(self.core.state.recovering),
        )

    def finalize(self) -> None:
        if hasattr(self, "metrics"):
            self.metrics.remove()
        if hasattr(self, "operator"):
            self.operator.stop()
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._allocator_child is not None:
            self._allocator_child.stop()
        elif self.allocator is not None:
            self.runtime.terminate(self.allocator.pid)

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
            hold = self.options.allocation_hold_backlog
            if hold is None:
                return self.runtime.spawn(AllocatorProcess(*args))
            interval = self.options.allocation_interval
            limits = BacklogLimits(hold, hold // 4, interval, min(0.01, interval))
            events = self.mailbox.events
            return self.runtime.spawn(AllocatorProcess(*args, lambda: len(events), limits))
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

    # -- carrying out the core's decisions ----------------------------------------------------

    def apply(self) -> None:
        """Carry out what the core decided, in order (see master/outbox.py)."""
        actions = self.core.out.take()
        if not actions:
            return
        allocator = self.allocator
        assert allocator is not None, "the allocator is spawned in initialize"
        for action in actions:
            kind = action[0]
            if kind == outbox.SEND:
                self.send_message(action[1], action[2])
            elif kind == outbox.ALLOCATE:
                allocator.post(action[1])
            elif kind == outbox.LINK:
                self.link(action[1])
            elif kind == outbox.UNLINK:
                self.unlink(action[1])
            elif kind == outbox.SCHEDULE:
                self._schedule(*action[1:])
            elif kind == outbox.CANCEL:
                timer = self._timers.pop(action[1], None)
                if timer is not None:
                    timer.cancel()
            elif kind == outbox.LATER:
                self.runtime.dispatch(self, MasterProcess._run, action[1], ())
            else:
                raise AssertionError(f"the master's outbox holds an unknown action {action!r}")

    def _schedule(
        self, key: Hashable | None, seconds: float, callback: Callable[..., None], args: tuple
    ) -> None:
        if key is None:
            self.delay(seconds, MasterProcess._run, callback, args)
            return
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        self._timers[key] = self.delay(seconds, MasterProcess._fire, key, callback, args)

    def _fire(self, key: Hashable, callback: Callable[..., None], args: tuple) -> None:
        self._timers.pop(key, None)
        self._run(callback, args)

    def _run(self, callback: Callable[..., None], args: tuple) -> None:
        callback(self.runtime.clock.now(), *args)
        self.apply()

    # -- agents ---------------------------------------------------------------------------

    @receives(RegisterAgent)
    def register_agent(self, sender: UPID | None, message: RegisterAgent) -> None:
        self.core.agents.register(sender, message)
        self.apply()

    @receives(ReregisterAgent)
    def reregister_agent(self, sender: UPID | None, message: ReregisterAgent) -> None:
        self.core.agents.reregister(sender, message, self.runtime.clock.now())
        self.apply()

    @receives(PongAgent)
    def pong_agent(self, sender: UPID | None, message: PongAgent) -> None:
        agent = self.core.state.agent_by_pid(sender)
        if agent is None:
            log.debug("pong_from_unknown_agent", agent=sender)
            return
        self.core.liveness.pong(agent)

    @receives(UnregisterAgent)
    def unregister_agent(self, sender: UPID | None, message: UnregisterAgent) -> None:
        self.core.agents.unregister(sender, message)
        self.apply()

    @receives(ExitedExecutor)
    def exited_executor(self, sender: UPID | None, message: ExitedExecutor) -> None:
        agent = self.core.agents.sent_by(sender, message.agent_id, "exited_executor")
        if agent is not None:
            self.core.tasks.executor_exited(agent, message)
            self.apply()

    def exited(self, pid: UPID) -> None:
        agent = self.core.state.agent_by_pid(pid)
        if agent is not None and agent.connected:
            self.core.agents.disconnected(agent)
        self.core.frameworks.driver_exited(pid)
        self.apply()

    # -- frameworks -----------------------------------------------------------------------

    @receives(RegisterFramework)
    def register_framework(self, sender: UPID | None, message: RegisterFramework) -> None:
        self.core.frameworks.register(sender, message)
        self.apply()

    @receives(ReregisterFramework)
    def reregister_framework(self, sender: UPID | None, message: ReregisterFramework) -> None:
        self.core.frameworks.reregister(sender, message)
        self.apply()

    @receives(UnregisterFramework)
    def unregister_framework(self, sender: UPID | None, message: UnregisterFramework) -> None:
        frameworks = self.core.frameworks
        framework = frameworks.caller(sender, message.framework_id, "teardown")
        if framework is not None:
            frameworks.remove(framework, "torn down by its scheduler")
        self.apply()

    @receives(DeactivateFramework)
    def deactivate_framework(self, sender: UPID | None, message: DeactivateFramework) -> None:
        frameworks = self.core.frameworks
        framework = frameworks.caller(sender, message.framework_id, "deactivate")
        if framework is not None:
            frameworks.disconnect(framework, "the scheduler stopped with failover")
        self.apply()

    # -- offers ---------------------------------------------------------------------------

    @handler(ALLOCATIONS)
    def allocations(self, sender: UPID | None, body: Any) -> None:
        if self.allocator is None or sender != self.allocator.pid:
            log.warning("allocations_refused", sender=sender, reason="not from our allocator")
            return
        self.core.offers.allocated(decode_allocations(body))
        self.apply()

    @handler(ERROR)
    def allocator_refused(self, sender: UPID | None, body: Any) -> None:
        """The allocator refused an event: its view and the master's differ (a bug here)."""
        if self.allocator is None or sender != self.allocator.pid:
            log.warning("allocator_error_ignored", sender=sender, reason="not from our allocator")
            return
        self.metrics.allocator_errors.inc()
        details = body if isinstance(body, dict) else {}
        log.error(
            "allocator_event_refused", refused=details.get("event"), error=details.get("error")
        )

    @receives(DeclineOffers)
    def decline_offers(self, sender: UPID | None, message: DeclineOffers) -> None:
        framework = self.core.frameworks.caller(sender, message.framework_id, "decline")
        if framework is not None:
            self.core.offers.decline(framework, message)
        self.apply()

    @receives(AcceptOffers)
    def accept_offers(self, sender: UPID | None, message: AcceptOffers) -> None:
        framework = self.core.frameworks.caller(sender, message.framework_id, "accept")
        if framework is not None:
            self.core.offers.accept(framework, message, self.runtime.clock.now())
        self.apply()

    @receives(ReviveOffers)
    def revive_offers(self, sender: UPID | None, message: ReviveOffers) -> None:
        framework = self.core.frameworks.caller(sender, message.framework_id, "revive")
        if framework is not None:
            self.core.out.allocate(Revive(framework.id, tuple(message.roles) or None))
        self.apply()

    @receives(SuppressOffers)
    def suppress_offers(self, sender: UPID | None, message: SuppressOffers) -> None:
        framework = self.core.frameworks.caller(sender, message.framework_id, "suppress")
        if framework is not None:
            self.core.out.allocate(Suppress(framework.id, tuple(message.roles) or None))
        self.apply()

    # -- tasks ------------------------------------------------------------------------------

    @receives(KillTask)
    def kill_task(self, sender: UPID | None, message: KillTask) -> None:
        framework = self.core.frameworks.caller(sender, message.framework_id, "kill")
        if framework is not None:
            self.core.tasks.kill(framework, message)
        self.apply()

    @receives(StatusUpdate)
    def status_update(self, sender: UPID | None, message: StatusUpdate) -> None:
        self.core.tasks.update(self.core.state.agent_by_pid(sender), sender, message)
        self.apply()

    @receives(StatusUpdateAcknowledgement)
    def acknowledge(self, sender: UPID | None, message: StatusUpdateAcknowledgement) -> None:
        # Also for a task this master does not know (one that ended before a master restart):
        # the agent's stream is the judge, and only the acknowledgement stops its resends.
        self._to_agent(sender, message, message.agent_id, "acknowledgement")

    @receives(ReconcileTasks)
    def reconcile_tasks(self, sender: UPID | None, message: ReconcileTasks) -> None:
        framework = self.core.frameworks.caller(sender, message.framework_id, "reconcile")
        if framework is not None:
            self.core.tasks.reconcile(framework, message)
        self.apply()

    # -- framework and executor messages ------------------------------------------------------

    @receives(FrameworkToExecutor)
    def framework_to_executor(self, sender: UPID | None, message: FrameworkToExecutor) -> None:
        self._to_agent(sender, message, message.agent_id, "framework_message")

    @receives(ShutdownExecutor)
    def shutdown_executor(self, sender: UPID | None, message: ShutdownExecutor) -> None:
        self._to_agent(sender, message, message.agent_id, "shutdown_executor")

    def _to_agent(
        self, sender: UPID | None, message: Any, agent_id: AgentID | None, call: str
    ) -> None:
        framework = self.core.frameworks.caller(sender, message.framework_id, call)
        if framework is not None:
            self.core.tasks.to_agent(framework, message, agent_id, call)
        self.apply()

    @receives(ExecutorToFramework)
    def executor_to_framework(self, sender: UPID | None, message: ExecutorToFramework) -> None:
        self.core.tasks.to_framework(self.core.state.agent_by_pid(sender), sender, message)
        self.apply()
