"""Frameworks' lives at the master: registration, failover, disconnection, removal.

A sans-IO core over ``MasterState``, as Mesos's master treats frameworks (docs/flows.md):

- A driver registers (a retry of the same registration is answered again, not registered
  twice) or re-registers with its id; a removed framework's id is refused with FrameworkError.
  A re-registration from another pid is a failover: the old driver is told to go.
- A driver that disconnects (its link breaks, or it stops with failover) deactivates the
  framework: its offers go back, and it is removed unless it comes back within its
  ``failover_timeout``.
- Frameworks that agents report after a master restart but that have not re-registered are
  kept (their tasks count), and removed if they are not back within
  ``max(failover_timeout, agent_reregister_timeout)`` of the master's start.
- Removal (teardown, failover timeout): ``ShutdownFramework`` to every agent with its tasks or
  executors, its resources back, its id refused from then on.
- A call that names a framework the caller does not drive is refused, and the caller is told
  why with FrameworkError (it is not the framework's driver, or the framework is unknown).
"""

from __future__ import annotations

from dataclasses import replace

import structlog

from corral.ids import FrameworkID, IdGenerator
from corral.protocol import FrameworkCapabilityType, FrameworkInfo, MasterInfo
from corral.protocol.messages import (
    FrameworkError,
    FrameworkRegistered,
    FrameworkReregistered,
    RegisterFramework,
    ReregisterFramework,
    ShutdownFramework,
)
from master.allocator.events import (
    ActivateFramework,
    AddFramework,
    DeactivateFramework,
    RecoverResources,
    RemoveFramework,
    UpdateFramework,
)
from master.observer import Observer
from master.offers import OfferBook
from master.outbox import Outbox
from master.state import FrameworkRecord, MasterState, roles_of

log = structlog.get_logger("master")

GPU = FrameworkCapabilityType.GPU_RESOURCES


class FrameworkLifecycle:
    """Frameworks coming, going and failing over; see the module docstring."""

    def __init__(
        self,
        state: MasterState,
        out: Outbox,
        offers: OfferBook,
        observer: Observer,
        ids: IdGenerator,
        agent_reregister_timeout: float,
    ) -> None:
        self.state = state
        self.out = out
        self.offers = offers
        self.observer = observer
        self.ids = ids
        self.agent_reregister_timeout = agent_reregister_timeout
        self.master_info: MasterInfo | None = None  # set once the master knows its address
        self.started_at = 0.0  # runtime-clock time the master started

    # -- who may call -------------------------------------------------------------------

    def caller(
        self, sender: str | None, framework_id: FrameworkID, call: str
    ) -> FrameworkRecord | None:
        """The framework a call is about, if known and the call comes from its driver; else
        None, the refusal logged and told to the sender."""
        framework = self.state.frameworks.get(framework_id)
        if framework is None:
            removed = framework_id in self.state.removed_frameworks
            reason = (
                f"framework {framework_id} was removed; register as a new framework"
                if removed
                else f"framework {framework_id} is not registered with this master; register first"
            )
        elif sender != framework.pid:
            reason = (
                f"framework {framework_id} is driven by {framework.pid}, not by {sender}; "
                "only its driver may call for it"
            )
        else:
            return framework
        log.warning(f"{call}_refused", driver=sender, framework_id=framework_id, reason=reason)
        if sender is not None:
            self.out.send(sender, FrameworkError(f"{call} refused: {reason}"))
        return None

    # -- registration ---------------------------------------------------------------------

    def register(self, sender: str | None, message: RegisterFramework) -> None:
        info = message.framework
        if sender is None:
            log.warning("framework_registration_refused", reason="anonymous sender")
            return
        if info.id is not None:
            self._refuse(
                sender,
                f"RegisterFramework carries id {info.id}; a framework with an id sends "
                "ReregisterFramework",
            )
            return
        assert self.master_info is not None, "the master knows its address before it serves"
        for existing in self.state.frameworks_by_pid(sender):
            if existing.connected and replace(existing.info, id=None) == info:
                self.out.send(sender, FrameworkRegistered(existing.id, self.master_info))
                return  # a retry: answer again
        framework_id = self.ids.framework_id()
        self.add(replace(info, id=framework_id), sender)
        self.out.send(sender, FrameworkRegistered(framework_id, self.master_info))

    def reregister(self, sender: str | None, message: ReregisterFramework) -> None:
        info = message.framework
        if sender is None:
            log.warning("framework_reregistration_refused", reason="anonymous sender")
            return
        if info.id is None:
            self._refuse(sender, "ReregisterFramework carries no framework id; register first")
            return
        framework_id = info.id
        assert self.master_info is not None, "the master knows its address before it serves"
        if framework_id in self.state.removed_frameworks:
            self._refuse(
                sender,
                f"framework {framework_id} was removed (torn down or failed over for too "
                "long); register as a new framework",
            )
            return
        framework = self.state.frameworks.get(framework_id)
        if framework is None:
            self.add(info, sender)
        else:
            self._update(framework, info, sender, message.failover)
        self.out.send(sender, FrameworkReregistered(framework_id, self.master_info))

    def _refuse(self, sender: str, reason: str) -> None:
        log.warning("framework_registration_refused", driver=sender, reason=reason)
        self.out.send(sender, FrameworkError(reason))

    def add(self, info: FrameworkInfo, pid: str) -> None:
        assert info.id is not None
        self.out.cancel(("recovered", info.id))  # known from agents, and back now
        roles = roles_of(info)
        record = FrameworkRecord(info.id, info, pid, roles)
        self.state.add_framework(record)
        self.observer.framework_added(record)
        self.out.link(pid)
        self.out.allocate(AddFramework(info.id, roles, gpu=info.has_capability(GPU)))
        log.info(
            "framework_registered", framework_id=info.id, name=info.name, roles=roles, driver=pid
        )

    def _update(
        self, framework: FrameworkRecord, info: FrameworkInfo, pid: str, failover: bool
    ) -> None:
        if framework.pid != pid:
            old = framework.pid
            if framework.connected:
                self.out.send(old, FrameworkError("framework failed over to another scheduler"))
            self.offers.give_back_all(framework)  # the old scheduler's: the new one knows none
            framework.pid = pid
            if not self.state.frameworks_by_pid(old):  # no other framework uses it
                self.out.unlink(old)
        self.out.link(pid)
        self.out.cancel(("failover", framework.id))
        roles = roles_of(info)
        if roles != framework.roles or info.capabilities != framework.info.capabilities:
            self.out.allocate(UpdateFramework(framework.id, roles, gpu=info.has_capability(GPU)))
        framework.info = info
        framework.roles = roles
        framework.connected = True
        if not framework.active:
            framework.active = True
            self.out.allocate(ActivateFramework(framework.id))
        self.observer.framework_updated(framework)
        log.info("framework_reregistered", framework_id=framework.id, driver=pid, failover=failover)

    # -- disconnection and failover -------------------------------------------------------

    def disconnect(self, framework: FrameworkRecord, why: str) -> None:
        """Deactivate; remove the framework unless it comes back within its failover timeout
        (counted from the moment it first disconnected)."""
        was_connected, framework.connected = framework.connected, False
        if framework.active:
            framework.active = False
            self.out.allocate(DeactivateFramework(framework.id))
        self.offers.give_back_all(framework)
        timeout = framework.info.failover_timeout
        if was_connected:
            key = ("failover", framework.id)
            self.out.schedule(key, timeout, self.failover_expired, framework.id, framework.pid)
        self.observer.framework_updated(framework)
        log.info(
            "framework_disconnected",
            framework_id=framework.id,
            reason=why,
            failover_timeout=timeout,
        )

    def failover_expired(self, now: float, framework_id: FrameworkID, pid: str) -> None:
        framework = self.state.frameworks.get(framework_id)
        if framework is None or framework.connected or framework.pid != pid:
            return
        self.remove(framework, "its failover timeout expired")

    def driver_exited(self, pid: str) -> None:
        """The link to a driver broke: its connected frameworks disconnect."""
        for framework in self.state.frameworks_by_pid(pid):
            if framework.connected:
                self.disconnect(framework, "the scheduler driver exited")

    def expect(self, info: FrameworkInfo, now: float) -> None:
        """A framework known only from an agent's report: remove it unless it re-registers
        within ``max(failover_timeout, agent_reregister_timeout)`` of the master's start."""
        assert info.id is not None
        grace = max(info.failover_timeout, self.agent_reregister_timeout)
        left = max(0.0, self.started_at + grace - now)
        self.out.schedule(("recovered", info.id), left, self.recovered_expired, info.id)

    def recovered_expired(self, now: float, framework_id: FrameworkID) -> None:
        state = self.state
        if framework_id not in state.recovered_frameworks:
            return  # re-registered (or removed) meanwhile
        held = {
            agent.id: used[framework_id]
            for agent in state.agents.values()
            if framework_id in (used := state.used_by_framework(agent))
        }
        tasks = state.remove_recovered_framework(framework_id)
        for agent_id, resources in sorted(held.items()):
            agent = state.agents[agent_id]
            for key in [key for key in agent.executors if key[0] == framework_id]:
                del agent.executors[key]
            self.out.allocate(RecoverResources(framework_id, agent_id, resources))
            self.out.send(agent.pid, ShutdownFramework(framework_id))
        log.warning(
            "framework_removed",
            framework_id=framework_id,
            reason="known only from its agents, it did not re-register after the master restarted",
            tasks=len(tasks),
        )

    # -- removal ----------------------------------------------------------------------------

    def remove(self, framework: FrameworkRecord, why: str) -> None:
        self.observer.framework_removing(framework)
        self.out.cancel(("failover", framework.id))
        state = self.state
        tasks = state.remove_framework(framework.id)
        on = {task.agent_id for task in tasks}
        for agent in state.agents.values():
            for key in [key for key in agent.executors if key[0] == framework.id]:
                del agent.executors[key]
                on.add(agent.id)
        for agent_id in sorted(on):
            agent = state.agents.get(agent_id)
            if agent is not None:
                self.out.send(agent.pid, ShutdownFramework(framework.id))
        self.out.allocate(RemoveFramework(framework.id))  # frees its offers, tasks, executors
        if not state.frameworks_by_pid(framework.pid):
            self.out.unlink(framework.pid)
        log.info("framework_removed", framework_id=framework.id, reason=why, tasks=len(tasks))

    def teardown(self, framework_id: FrameworkID) -> bool:
        """An operator removes a registered framework for good (v1 TEARDOWN); False if it is
        not registered. Its driver, if connected, is told with FrameworkError."""
        framework = self.state.frameworks.get(framework_id)
        if framework is None:
            return False
        if framework.connected:
            self.out.send(
                framework.pid,
                FrameworkError(f"framework {framework_id} was torn down by an operator"),
            )
        self.remove(framework, "torn down by an operator")
        return True
