"""The master's offers: made from the allocator's allocations, taken back, declined, accepted.

A sans-IO core over ``MasterState``. An allocation becomes an offer only while its framework
is active and its agent registered (else the resources go straight back). An offer lives until
it is accepted, declined, rescinded (its agent or framework left, or ``offer_timeout``
passed) or its framework disconnects; each of those returns its resources to the allocator
exactly once. ACCEPT is decided by ``master.accept`` and applied here: the used offers go, the
tasks are recorded and sent to the agent, refused ones are answered, and what is left goes back
with the call's filter.
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog

from corral.ids import AgentID, FrameworkID, IdGenerator, OfferID
from corral.protocol import AllocationInfo, Filters, Offer
from corral.protocol.messages import AcceptOffers, DeclineOffers, RescindOffer, ResourceOffers
from master.accept import decide_accept
from master.allocator.events import RecoverDeclined, RecoverResources
from master.allocator.offer import Allocation
from master.observer import Observer
from master.outbox import Outbox
from master.state import AgentRecord, FrameworkRecord, MasterState, OfferRecord
from master.tasks import TaskBook

log = structlog.get_logger("master")


class OfferBook:
    """Offers and ACCEPT; see the module docstring."""

    def __init__(
        self,
        state: MasterState,
        out: Outbox,
        tasks: TaskBook,
        observer: Observer,
        ids: IdGenerator,
        offer_timeout: float | None,
    ) -> None:
        self.state = state
        self.out = out
        self.tasks = tasks
        self.observer = observer
        self.ids = ids
        self.offer_timeout = offer_timeout
        self._allocation_infos: dict[str, AllocationInfo] = {}

    def allocated(self, allocations: Iterable[Allocation]) -> None:
        """One allocation cycle's allocations: offers, one ResourceOffers per framework."""
        state = self.state
        batches: dict[FrameworkID, tuple[list[Offer], list[str]]] = {}
        for allocation in allocations:
            # The allocator's ids are the master's own (str keys find the typed records).
            framework = state.frameworks.get(allocation.framework_id)
            agent = state.agents.get(allocation.agent_id)
            framework_id = framework.id if framework else FrameworkID(allocation.framework_id)
            agent_id = agent.id if agent else AgentID(allocation.agent_id)
            if agent is not None and allocation.generation != agent.generation:
                # Made before the agent was removed and added again (it re-registered): the
                # allocator's new view of the agent holds none of it, so neither does anyone.
                log.info("stale_allocation_dropped", agent_id=agent_id, framework_id=framework_id)
                continue
            if framework is None or not framework.active or agent is None or not agent.connected:
                # Raced with a removal, a deactivation or a broken link: give it back.
                self.out.allocate(RecoverResources(framework_id, agent_id, allocation.resources))
                continue
            resources = allocation.resources
            if resources == agent.offered:
                resources = agent.offered
            else:
                agent.offered = resources
            offer = Offer(
                id=self.ids.offer_id(),
                framework_id=framework_id,
                agent_id=agent_id,
                hostname=agent.info.hostname,
                resources=resources,
                attributes=agent.info.attributes,
                executor_ids=agent.executors.of_framework(framework_id),
                allocation_info=self._allocation_info(allocation.role),
            )
            state.add_offer(OfferRecord(offer))
            if self.offer_timeout is not None:
                self.out.schedule(None, self.offer_timeout, self.expired, offer.id)
            offers, pids = batches.setdefault(framework_id, ([], []))
            offers.append(offer)
            pids.append(agent.pid)
        for framework_id, (offers, pids) in batches.items():
            framework = state.frameworks[framework_id]
            self.out.send(framework.pid, ResourceOffers(tuple(offers), tuple(pids)))
            log.debug("offers_sent", framework_id=framework_id, offers=len(offers))

    def _allocation_info(self, role: str) -> AllocationInfo:
        """One AllocationInfo per role, shared by its offers (they are immutable)."""
        info = self._allocation_infos.get(role)
        if info is None:
            info = self._allocation_infos[role] = AllocationInfo(role)
        return info

    def expired(self, now: float, offer_id: OfferID) -> None:
        """``offer_timeout`` passed: rescind the offer if it is still out."""
        record = self.state.offers.get(offer_id)
        if record is None:
            return
        self.rescind(offer_id, recover=True)
        log.info("offer_rescinded", offer_id=offer_id, reason="offer timeout")

    def give_back(self, offer_id: OfferID, refuse_seconds: float | None = None) -> None:
        """Forget the offer; its resources go back to the allocator (with a filter)."""
        record = self.state.remove_offer(offer_id)
        if record is not None:
            offer = record.offer
            self.out.allocate(
                RecoverResources(
                    offer.framework_id, offer.agent_id, offer.resources, refuse_seconds
                )
            )

    def rescind(self, offer_id: OfferID, recover: bool) -> None:
        """Take an offer back, telling its framework; ``recover``: its resources go back to the
        allocator (not when the allocator frees them itself, e.g. with the agent's removal)."""
        record = self.state.offers.get(offer_id)
        if record is None:
            return
        framework = self.state.frameworks.get(record.offer.framework_id)
        if framework is not None and framework.connected:
            self.out.send(framework.pid, RescindOffer(offer_id))
        if recover:
            self.give_back(offer_id)
        else:
            self.state.remove_offer(offer_id)

    def rescind_on(self, agent: AgentRecord, recover: bool = True) -> None:
        """Take back every outstanding offer of the agent."""
        for offer_id in sorted(agent.offers):
            self.rescind(offer_id, recover)

    def give_back_all(self, framework: FrameworkRecord) -> None:
        """A framework that disconnects holds no offers (no rescind: it cannot hear one)."""
        for offer_id in list(framework.offers):
            self.give_back(offer_id)

    # -- from frameworks ----------------------------------------------------------------

    def decline(self, framework: FrameworkRecord, message: DeclineOffers) -> None:
        """The offers go back to the allocator as one event, with the DECLINE's filter."""
        refuse = (message.filters or Filters()).refuse_seconds
        state = self.state
        pieces = []
        for offer_id in message.offer_ids:
            record = state.offers.get(offer_id)
            if record is None or record.offer.framework_id != framework.id:
                log.info(
                    "decline_ignored",
                    framework_id=framework.id,
                    offer_id=offer_id,
                    reason="offer no longer valid or not this framework's",
                )
                continue
            state.remove_offer(offer_id)
            offer = record.offer
            pieces.append((offer.agent_id, offer.resources))
        if len(pieces) == 1:
            ((agent_id, resources),) = pieces
            self.out.allocate(RecoverResources(framework.id, agent_id, resources, refuse))
        elif pieces:
            self.out.allocate(RecoverDeclined(framework.id, tuple(pieces), refuse))

    def accept(self, framework: FrameworkRecord, message: AcceptOffers, now: float) -> None:
        """Decide the ACCEPT (master.accept), then apply the decision."""
        state = self.state
        decision = decide_accept(
            framework,
            message,
            state.offers,
            state.agents,
            lambda task_id: state.task(framework.id, task_id) is not None,
            now,
        )
        for offer_id in decision.offers:
            record = state.remove_offer(offer_id)
            assert record is not None, "decide_accept names only outstanding offers"
            if decision.invalid_offers is not None:  # back as they were, with no filter
                offer = record.offer
                self.out.allocate(RecoverResources(framework.id, offer.agent_id, offer.resources))
        if decision.invalid_offers is not None:
            log.info(
                "accept_refused", framework_id=framework.id, reason=decision.invalid_offers.message
            )
        for task_id, agent_id, refusal in decision.refused:
            self.tasks.refuse(framework, task_id, agent_id, refusal)
        if decision.agent_id is None:
            return
        agent = state.agents[decision.agent_id]
        launched = 0
        for launch in decision.launches:
            if launch.new_executor is not None:
                key, resources = launch.new_executor
                agent.executors[key] = resources
            for record in launch.tasks:
                self.tasks.add(record)
            self.out.send(agent.pid, launch.message)
            launched += len(launch.tasks)
            log.info(
                "task_launched",
                framework_id=framework.id,
                agent_id=agent.id,
                tasks=[record.task_id for record in launch.tasks],
            )
        if launched:
            self.observer.tasks_launched(launched)
        if decision.leftover:
            refuse = (message.filters or Filters()).refuse_seconds
            self.out.allocate(RecoverResources(framework.id, agent.id, decision.leftover, refuse))
