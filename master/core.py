"""The master's decisions, without its I/O: the cores wired together over one ``MasterState``.

``MasterCore`` owns the records, the registry (the store of admitted agents and an operator's
settings), the outbox and the cores that change them:

==================  =========================================================================
``offers``          master/offers.py — allocations into offers; decline, rescind, ACCEPT
                    (decided by master/accept.py)
``tasks``           master/tasks.py — task records, status updates, kills, reconciliation
``frameworks``      master/frameworks.py — registration, failover, disconnection, removal
``agents``          master/agents.py — admission, re-registration, disconnection, removal
``liveness``        master/liveness.py — pings, the removal rate limit, re-registration deadline
==================  =========================================================================

and an operator's commands (weights, quota, deactivation, marking gone, teardown), each
written to the registry before it takes effect. Nothing here sends, sleeps or reads a clock:
events carry ``now`` (runtime clock), status timestamps come from the ``wall`` clock given,
and every decision lands in ``out`` for ``MasterProcess`` to carry out. Tests drive a core
directly and read ``out``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import structlog

from corral.ids import AgentID, IdGenerator
from master.agents import AgentLifecycle
from master.allocator.events import SetQuota, SetWeight
from master.allocator.quota import Quota
from master.frameworks import FrameworkLifecycle
from master.liveness import AgentLiveness
from master.observer import Observers
from master.offers import OfferBook
from master.options import MasterOptions
from master.outbox import Outbox
from master.registry import AgentStatus, Registry
from master.state import AgentRecord, MasterState
from master.tasks import TaskBook

log = structlog.get_logger("master")


class MasterCore:
    """Records, registry, outbox and cores of one master; see the module docstring."""

    def __init__(
        self,
        options: MasterOptions,
        registry: Registry,
        ids: IdGenerator | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.options = options
        self.registry = registry
        self.ids = ids or IdGenerator()
        self.state = MasterState()
        self.out = Outbox()
        self.observers = Observers()
        self.tasks = TaskBook(self.state, self.out, self.observers, wall)
        self.offers = OfferBook(
            self.state, self.out, self.tasks, self.observers, self.ids, options.offer_timeout
        )
        self.frameworks = FrameworkLifecycle(
            self.state,
            self.out,
            self.offers,
            self.observers,
            self.ids,
            options.agent_reregister_timeout,
        )
        self.agents = AgentLifecycle(
            self.state,
            self.out,
            registry,
            self.tasks,
            self.offers,
            self.frameworks,
            self.observers,
            self.ids,
            options.agent_ping_timeout,
            options.total_ping_timeout,
        )
        self.liveness = AgentLiveness(
            self.state,
            self.out,
            self.agents,
            registry,
            options.agent_ping_timeout,
            options.max_agent_ping_timeouts,
            options.agent_removal_rate_limit,
            options.agent_reregister_timeout,
        )

    def start(self, now: float) -> None:
        """Take up what the registry holds (agents to wait for, settings), arm the timers."""
        self.registry.recover()
        self.frameworks.started_at = now
        state = self.state
        for agent_id, entry in self.registry.entries().items():
            if entry.status is AgentStatus.UNREACHABLE:
                state.add_unreachable(entry.info)
            elif entry.status is AgentStatus.ADMITTED:
                state.recovering[agent_id] = entry.info
        settings = self.registry.settings
        state.weights.update(settings.weights)
        state.quotas.update(settings.quotas)
        state.deactivated.update(settings.deactivated)
        for role, weight in sorted(settings.weights.items()):
            self.out.allocate(SetWeight(role, weight))
        for role, quota in sorted(settings.quotas.items()):
            self.out.allocate(SetQuota(role, quota))
        self.liveness.start(now)

    # -- an operator's commands (each written to the registry first) ------------------------

    def update_weights(self, weights: Mapping[str, float]) -> None:
        """Set role weights; ``RegistryError`` (nothing changed) if they cannot be written."""
        self.registry.set_weights(weights)
        for role, weight in weights.items():
            self.state.weights[role] = weight
            self.out.allocate(SetWeight(role, weight))
        log.info("weights_updated", weights=dict(weights))

    def update_quotas(self, quotas: Mapping[str, Quota]) -> None:
        """Set role quotas (a default quota removes one); ``RegistryError`` as above."""
        self.registry.set_quotas(quotas)
        for role, quota in quotas.items():
            if quota.is_default():
                self.state.quotas.pop(role, None)
            else:
                self.state.quotas[role] = quota
            self.out.allocate(SetQuota(role, quota))
        log.info("quota_updated", roles=sorted(quotas))

    def deactivate_agent(self, agent: AgentRecord) -> None:
        """No offers from the agent until reactivated; ``RegistryError`` as above."""
        if agent.id not in self.state.deactivated:
            self.registry.set_deactivated(agent.id, True)
            self.agents.deactivate(agent)

    def reactivate_agent(self, agent: AgentRecord) -> None:
        if agent.id in self.state.deactivated:
            self.registry.set_deactivated(agent.id, False)
            self.agents.reactivate(agent)

    def mark_agent_gone(self, agent_id: AgentID) -> tuple[int, str]:
        """See ``AgentLifecycle.mark_gone``: an HTTP status and a sentence."""
        return self.agents.mark_gone(agent_id)
