"""The hierarchical DRF allocator, as Mesos's: a sans-IO core, tuned for 20,000 agents.

It takes events (agents, frameworks, roles, recovered resources) and, on ``allocate(now)``,
returns the allocations to offer. The policy is Mesos's (see ``reference.py`` for the same
policy written plainly; a differential test holds the two together):

* stage 1 gives roles with unmet quota guarantees what they are owed, agent by agent;
* stage 2 shares out the rest by DRF over the role tree, within quota limits, holding back
  the headroom that unmet guarantees still need.

What makes it fast: incremental DRF sorters whose order is walked lazily (an agent usually
goes to the first framework in order); sorter updates for an agent's allocations applied
once the agent is done (so each agent sees a snapshot of the order, as Mesos's per-agent
``sort()`` gives); offering an agent's whole free pool without resource arithmetic when no
quota, reservation or headroom is involved; agents with nothing free skipped outright; in
stage 1 only roles still owed something are visited; in stage 2 roles whose quota limits
are used up are taken out of the order for agents that have nothing else to give them.
Agents with equal totals share one ``_Shape`` (the total, its quantities, its allocated form
per role), so offering a fresh agent whole copies nothing; allocations are built as they
are made, in order (``_Offers``); with a single active role and no quota, the role sorter
learns of stage 2's whole-agent allocations at the end of the stage, in one step per shape.
"""

from __future__ import annotations

import gc
import heapq
import random
from collections.abc import Iterable

from corral import quantities as q
from corral.resources import Resources
from master.allocator.filters import OfferFilter
from master.allocator.offer import Allocation, AllocatorError, checked_role, checked_used
from master.allocator.options import AllocatorOptions
from master.allocator.quota import (
    DEFAULT_QUOTA,
    Quota,
    check_quota_role,
    limits_minus,
)
from master.allocator.reference import _refuse_seconds
from master.allocator.sorter import DRFSorter

EMPTY = Resources()


class _Shape:
    """What agents with equal totals share: one ``Resources`` for the total, its quantities,
    and its allocated forms by role. Most cycles offer agents whole, so an agent alike to
    others is offered a form made once for them all rather than a fresh copy (and a
    homogeneous cluster holds one total, not 20,000 equal ones)."""

    __slots__ = ("agents", "allocated", "total", "total_q")

    def __init__(self, total: Resources) -> None:
        self.total = total
        self.total_q = total.quantities()  # read-only: shared by every agent of the shape
        self.allocated: dict[str, Resources] = {}  # role -> total.allocated_to(role)
        self.agents = 0  # agents of this shape; the allocator forgets it at zero

    def allocated_to(self, role: str) -> Resources:
        allocated = self.allocated.get(role)
        if allocated is None:
            allocated = self.allocated[role] = self.total.allocated_to(role)
        return allocated


class _Agent:
    __slots__ = (
        "active",
        "allocated",
        "available",
        "available_q",
        "fits",
        "generation",
        "gpus",
        "id",
        "reserved",
        "shape",
        "total",
        "total_q",
        "undo",
        "used",
        "whole_offer",
    )

    def __init__(self, agent_id: str, shape: _Shape, generation: int = 0) -> None:
        self.id = agent_id
        self.generation = generation  # given by add_agent, echoed in its allocations
        self.shape = shape
        total = self.total = shape.total
        self.gpus = total.scalar_millis("gpus") > 0
        self.reserved = total.has_reserved()  # False: nothing here is ever reserved
        # Invariant: used == sum of allocated[*].unallocated(); available == total - used,
        # and it is EMPTY (that object) exactly when nothing is free, so that the cycle
        # tells an agent with nothing to give by identity.
        self.allocated: dict[str, Resources] = {}  # framework id -> resources (allocated form)
        self.used = EMPTY
        self.available = total
        self.available_q = self.total_q = shape.total_q  # read-only, as available_q always
        self.fits = True  # used is within total (not so after the total shrank under it)
        self.active = True
        # After the whole free pool went to one offer: (that allocation, and the agent's
        # used/available/available_q/fits before it), so that taking exactly that back (a
        # decline) restores them without resource arithmetic. None once anything else changed.
        self.undo: tuple | None = None
        # (free pool, role, that pool allocated to the role): Resources are immutable, so the
        # allocated form of a pool that is offered again and again is made only once. (A
        # pool that is the whole total takes its form from the shape instead.)
        self.whole_offer: tuple | None = None

    def set_used(self, used: Resources) -> None:
        self.undo = None
        self.used = used
        available = self.total - used if used else self.total
        self.available = available if available else EMPTY
        self.available_q = available.quantities() if used else self.total_q
        self.fits = self.total.contains(used)

    def allocated_form(self, resources: Resources, role: str) -> Resources:
        """``resources`` (a part of the free pool, or all of it) allocated to ``role``."""
        if resources is self.total:
            return self.shape.allocated_to(role)
        cached = self.whole_offer
        if cached is not None and cached[0] is resources and cached[1] == role:
            return cached[2]
        allocated = resources.allocated_to(role)
        if resources is self.available:
            self.whole_offer = (resources, role, allocated)
        return allocated


class _Framework:
    __slots__ = (
        "active",
        "filters",
        "gpu",
        "held",
        "id",
        "min_allocatable",
        "roles",
        "suppressed",
    )

    def __init__(self, framework_id: str, roles: set[str], gpu: bool, active: bool) -> None:
        self.id = framework_id
        self.roles = roles
        self.suppressed: set[str] = set()
        self.gpu = gpu
        self.active = active
        # role -> agent -> filters refusing resources there
        self.filters: dict[str, dict[str, list[OfferFilter]]] = {}
        self.min_allocatable: dict[str, tuple[q.Quantities, ...]] = {}
        # Invariant: held[role][agent] is what agent.allocated[id] holds in that role (its
        # quantities are the framework's allocation in that role's sorter).
        self.held: dict[str, dict[str, Resources]] = {}

    def active_in(self, role: str) -> bool:
        return self.active and role in self.roles and role not in self.suppressed


class HierarchicalAllocator:
    """Sans-IO: feed it events, call ``allocate(now)``, get allocations back."""

    def __init__(self, options: AllocatorOptions | None = None, seed: int = 0) -> None:
        self.options = options or AllocatorOptions()
        self._rng = random.Random(seed)
        self._agents: dict[str, _Agent] = {}
        # Invariant: _shapes[total].agents is the number of agents whose total equals it.
        self._shapes: dict[Resources, _Shape] = {}
        self._frameworks: dict[str, _Framework] = {}
        self._weights: dict[str, float] = {}
        self._quotas: dict[str, Quota] = {}
        self._totals: dict[str, int] = {}  # cluster totals, shared with the sorters
        self._shares_stale = False  # totals or weights changed: reshare before sorting
        self.stats_filtered = 0  # candidate offers withheld by decline filters, ever
        self._budget: _Budget | None = None  # quota state of the cycle under way
        self._minimums = self.options.min_allocatable_resources
        excluded = self.options.fair_sharing_excluded_resource_names
        self._excluded = excluded
        self._roles = DRFSorter(self._totals, excluded, self._weights, hierarchical=True)
        self._role_frameworks: dict[str, DRFSorter] = {}  # role -> sorter of its frameworks
        # Invariant: _tracked[role] is the frameworks subscribed to role or holding resources
        # in it; a role is in the role sorter exactly when this set is non-empty.
        self._tracked: dict[str, set[str]] = {}
        self._roles_under: dict[str, set[str]] = {}  # top-level role -> tracked roles under it
        self._orphans: dict[str, set[str]] = {}  # unknown framework -> agents it holds on
        # Quota bookkeeping, by top-level role, and cluster-wide (known frameworks only).
        # (What known frameworks hold is read off the role sorter's top-level nodes.)
        self._reserved_top: dict[str, dict[str, int]] = {}  # reservations in agent totals
        self._reserved_held_top: dict[str, dict[str, int]] = {}  # ... of them held
        self._reserved_held: dict[str, int] = {}
        self._reserved_all: dict[str, int] = {}

    # -- agents -------------------------------------------------------------------------

    def add_agent(
        self,
        agent_id: str,
        total: Resources,
        used: dict[str, Resources] | None = None,
        generation: int = 0,
    ) -> None:
        """``generation`` tells this view of the agent from earlier ones (it is removed and
        added again when it re-registers): its allocations carry it."""
        if agent_id in self._agents:
            raise AllocatorError(f"agent {agent_id} is already known")
        used = checked_used(agent_id, used)
        agent = self._agents[agent_id] = _Agent(agent_id, self._shape(total), generation)
        self._add_total(total, 1)
        for framework_id, resources in (used or {}).items():
            self._track(agent, framework_id, resources)

    def remove_agent(self, agent_id: str) -> None:
        agent = self._agent(agent_id)
        for framework_id, resources in list(agent.allocated.items()):
            self._untrack(agent, framework_id, resources)
        self._add_total(agent.total, -1)
        self._release(agent.shape)
        del self._agents[agent_id]
        self._drop_agent_filters(agent_id)

    def update_agent(self, agent_id: str, total: Resources) -> None:
        agent = self._agent(agent_id)
        self._add_total(agent.total, -1)
        self._release(agent.shape)
        shape = agent.shape = self._shape(total)
        agent.total = shape.total
        agent.total_q = shape.total_q
        agent.whole_offer = None
        agent.gpus = total.scalar_millis("gpus") > 0
        agent.reserved = total.has_reserved()
        agent.set_used(agent.used)
        self._add_total(total, 1)

    def _shape(self, total: Resources) -> _Shape:
        """The shape of agents whose total equals ``total`` (made on first sight)."""
        shape = self._shapes.get(total)
        if shape is None:
            shape = self._shapes[total] = _Shape(total if total else EMPTY)
        shape.agents += 1
        return shape

    def _release(self, shape: _Shape) -> None:
        shape.agents -= 1
        if not shape.agents:
            del self._shapes[shape.total]

    def activate_agent(self, agent_id: str) -> None:
        self._agent(agent_id).active = True

    def deactivate_agent(self, agent_id: str) -> None:
        self._agent(agent_id).active = False

    def clear_agent_filters(self, agent_id: str) -> None:
        self._agent(agent_id)
        self._drop_agent_filters(agent_id)

    def _drop_agent_filters(self, agent_id: str) -> None:
        for framework in self._frameworks.values():
            for role in list(framework.filters):
                by_agent = framework.filters[role]
                by_agent.pop(agent_id, None)
                if not by_agent:
                    del framework.filters[role]

    def _add_total(self, total: Resources, sign: int) -> None:
        for name, amount in total.quantities().items():
            value = self._totals.get(name, 0) + sign * amount
            if value > 0:
                self._totals[name] = value
            else:
                self._totals.pop(name, None)
        for resource in total:
            if resource.reservations and isinstance(resource.value, int):
                top = resource.role.split("/", 1)[0]
                delta = {resource.name: resource.value}
                target = self._reserved_top.setdefault(top, {})
                (q.add_into if sign > 0 else q.subtract_into)(target, delta)
                (q.add_into if sign > 0 else q.subtract_into)(self._reserved_all, delta)
        self._shares_stale = True

    # -- frameworks -----------------------------------------------------------------------

    def add_framework(
        self,
        framework_id: str,
        roles: Iterable[str],
        *,
        gpu: bool = False,
        active: bool = True,
        suppressed_roles: Iterable[str] = (),
        min_allocatable: dict[str, tuple[q.Quantities, ...]] | None = None,
    ) -> None:
        if framework_id in self._frameworks:
            raise AllocatorError(f"framework {framework_id} is already known")
        roles = {checked_role(role) for role in roles}
        framework = _Framework(framework_id, roles, gpu, active)
        framework.suppressed = set(suppressed_roles) & roles
        framework.min_allocatable = dict(min_allocatable or {})
        self._frameworks[framework_id] = framework
        for role in sorted(roles):
            self._ensure_tracked(framework, role)
        for agent_id in self._orphans.pop(framework_id, ()):
            agent = self._agents[agent_id]
            self._count_allocation(framework, agent_id, agent.allocated[framework_id])

    def remove_framework(self, framework_id: str) -> None:
        framework = self._framework(framework_id)
        for role in list(framework.held):
            for agent_id in list(framework.held.get(role, {})):
                agent = self._agents[agent_id]
                resources = agent.allocated.get(framework_id)
                if resources:
                    self._untrack(agent, framework_id, resources)
        del self._frameworks[framework_id]
        for role in list(framework.roles):
            self._forget_if_untracked(framework_id, role)

    def activate_framework(self, framework_id: str) -> None:
        framework = self._framework(framework_id)
        framework.active = True
        self._refresh_activation(framework)

    def deactivate_framework(self, framework_id: str) -> None:
        framework = self._framework(framework_id)
        framework.active = False
        framework.filters.clear()
        self._refresh_activation(framework)

    def update_framework(
        self,
        framework_id: str,
        roles: Iterable[str],
        *,
        gpu: bool | None = None,
        suppressed_roles: Iterable[str] | None = None,
    ) -> None:
        framework = self._framework(framework_id)
        new_roles = {checked_role(role) for role in roles}
        old_roles = framework.roles
        framework.roles = new_roles
        if gpu is not None:
            framework.gpu = gpu
        if suppressed_roles is not None:
            framework.suppressed = set(suppressed_roles) & new_roles
        else:
            framework.suppressed &= new_roles
        for role in sorted(new_roles - old_roles):
            self._ensure_tracked(framework, role)
        for role in old_roles - new_roles:
            framework.filters.pop(role, None)
            self._forget_if_untracked(framework_id, role)
        self._refresh_activation(framework)

    def suppress(self, framework_id: str, roles: Iterable[str] | None = None) -> None:
        framework = self._framework(framework_id)
        framework.suppressed |= framework.roles if roles is None else set(roles) & framework.roles
        self._refresh_activation(framework)

    def revive(self, framework_id: str, roles: Iterable[str] | None = None) -> None:
        framework = self._framework(framework_id)
        chosen = set(framework.roles) if roles is None else set(roles) & framework.roles
        framework.suppressed -= chosen
        for role in chosen:
            framework.filters.pop(role, None)
        self._refresh_activation(framework)

    def _refresh_activation(self, framework: _Framework) -> None:
        for role, sorter in self._role_frameworks.items():
            if framework.id in sorter:
                if framework.active_in(role):
                    sorter.activate(framework.id)
                else:
                    sorter.deactivate(framework.id)

    # -- roles ----------------------------------------------------------------------------

    def set_weight(self, role: str, weight: float) -> None:
        checked_role(role)
        if not weight > 0:
            raise AllocatorError(f"a role weight is positive, got {weight} for {role}")
        self._weights[role] = float(weight)
        self._shares_stale = True

    def set_quota(self, role: str, quota: Quota) -> None:
        check_quota_role(checked_role(role))
        if quota.is_default():
            self._quotas.pop(role, None)
        else:
            self._quotas[role] = quota

    # -- resources ------------------------------------------------------------------------

    def recover_resources(
        self,
        framework_id: str,
        agent_id: str,
        resources: Resources,
        refuse_seconds: float | None = None,
        now: float = 0.0,
    ) -> None:
        """Resources come back (declined, or freed by a task); a decline may leave a filter."""
        agent = self._agents.get(agent_id)
        if agent is None:
            return
        held = agent.allocated.get(framework_id)
        if held is None:
            return
        if held is not resources and not held.contains(resources):
            raise AllocatorError(
                f"framework {framework_id} does not hold {resources} on agent {agent_id}"
            )
        parts = resources.by_allocation_role()
        self._untrack(agent, framework_id, resources, parts)
        framework = self._frameworks.get(framework_id)
        if framework is None or refuse_seconds is None:
            return
        seconds = _refuse_seconds(refuse_seconds)
        if seconds <= 0:
            return
        expires = now + max(self.options.allocation_interval, seconds)
        for role, part in parts.items():
            if role is None:
                continue
            self._add_filter(
                framework, role, agent_id, OfferFilter(part.unallocated(), expires), now
            )

    def recover_declined(
        self,
        framework_id: str,
        pieces: Iterable[tuple[str, Resources]],
        refuse_seconds: float | None = None,
        now: float = 0.0,
    ) -> None:
        """``recover_resources`` of many offers one framework declined together (one DECLINE
        names thousands of offers under load): the same result, with the DRF sorters updated
        once per role instead of once per offer. All or nothing: a piece the framework does
        not hold is refused before anything changes."""
        held_pieces = []
        for agent_id, resources in pieces:
            agent = self._agents.get(agent_id)
            held = agent.allocated.get(framework_id) if agent is not None else None
            if held is None:
                continue
            if held is not resources and not held.contains(resources):
                raise AllocatorError(
                    f"framework {framework_id} does not hold {resources} on agent {agent_id}"
                )
            held_pieces.append((agent, resources))
        framework = self._frameworks.get(framework_id)
        seconds = _refuse_seconds(refuse_seconds) if refuse_seconds is not None else 0.0
        expires = now + max(self.options.allocation_interval, seconds)
        filtering = framework is not None and seconds > 0
        sums: dict[str, dict[str, int]] = {}
        for agent, resources in held_pieces:
            parts = resources.by_allocation_role()
            self._untrack(agent, framework_id, resources, parts, sums)
            if not filtering:
                continue
            for role, part in parts.items():
                if role is not None:
                    refused = OfferFilter(part.unallocated(), expires)
                    self._add_filter(framework, role, agent.id, refused, now)  # type: ignore[arg-type]
        for role, amounts in sums.items():
            self._role_frameworks[role].unallocated(framework_id, amounts)
            self._roles.unallocated(role, amounts)
            self._forget_if_untracked(framework_id, role)

    # -- reading ---------------------------------------------------------------------------

    def role_order(self) -> list[str]:
        self._refresh_shares()
        return self._roles.sort()

    def framework_order(self, role: str) -> list[str]:
        self._refresh_shares()
        sorter = self._role_frameworks.get(role)
        return sorter.sort() if sorter is not None else []

    def role_share(self, role: str) -> float:
        self._refresh_shares()
        return self._roles.share(role) if role in self._roles else 0.0

    def roles(self) -> list[str]:
        return list(self._tracked)

    def available(self, agent_id: str) -> Resources:
        return self._agent(agent_id).available

    def held(self, framework_id: str, agent_id: str) -> Resources:
        return self._agent(agent_id).allocated.get(framework_id, EMPTY)

    def agent_ids(self) -> list[str]:
        return list(self._agents)

    def framework_ids(self) -> list[str]:
        return list(self._frameworks)

    def filter_count(self) -> int:
        return sum(
            len(filters)
            for framework in self._frameworks.values()
            for by_agent in framework.filters.values()
            for filters in by_agent.values()
        )

    # -- the cycle --------------------------------------------------------------------------

    def allocate(self, now: float, candidates: Iterable[str] | None = None) -> list[Allocation]:
        """One allocation cycle over all agents, or over ``candidates``.

        Python's cyclic garbage collector is held off for the cycle: a cycle makes many
        short-lived objects but no reference cycles, and with 20,000 agents' worth of
        long-lived objects a full collection mid-cycle costs more than the cycle itself."""
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._allocate(now, candidates)
        finally:
            if collecting:
                gc.enable()

    def _allocate(self, now: float, candidates: Iterable[str] | None) -> list[Allocation]:
        self._refresh_shares()
        agents = self._agents
        if candidates is None:
            walk = [agent for agent in agents.values() if agent.active]
        else:
            chosen = set(candidates)
            walk = [
                agent for agent_id, agent in agents.items() if agent.active and agent_id in chosen
            ]
        offers = _Offers()

        consumed: dict[str, dict[str, int]] = {}
        for role in self._quotas:
            unreserved_held = q.subtract(
                self._roles.subtree_allocation(role), self._reserved_held_top.get(role, {})
            )
            consumed[role] = q.add(self._reserved_top.get(role, {}), unreserved_held)
        required: dict[str, int] = {}
        for role, quota in self._quotas.items():
            q.add_into(required, q.subtract(quota.guarantees, consumed[role]))
        held_all: dict[str, int] = {}
        for role in self._roles.top_level():
            q.add_into(held_all, self._roles.subtree_allocation(role))
        headroom = q.subtract(self._totals, held_all)
        headroom = q.subtract(headroom, q.subtract(self._reserved_all, self._reserved_held))
        budget = self._budget = _Budget(consumed, required, headroom)

        # (Shuffling the agents themselves, not their ids, gives the same order: a shuffle
        # depends only on the list's length and the RNG.)
        if any(quota.guarantees for quota in self._quotas.values()):
            self._rng.shuffle(walk)  # stage 1 only runs (and shuffles) for guarantees
            self._stage_one(walk, offers, budget, now)
        self._rng.shuffle(walk)
        self._stage_two(walk, offers, budget, now)
        return offers.made

    def _stage_one(self, walk: list[_Agent], offers: _Offers, budget: _Budget, now: float):
        """Roles with quota guarantees they have not been given yet, in DRF order."""
        roles = self._roles
        candidates: list[tuple] = []
        for role, quota in self._quotas.items():
            owed = quota.guarantees and q.subtract(quota.guarantees, budget.consumed.get(role, {}))
            if owed and role in self._tracked:
                candidates.append(_entry(roles.top_level_node(role), role))
        heapq.heapify(candidates)
        popped_frameworks: list = []
        for agent in walk:
            if agent.available is EMPTY or not candidates:
                continue
            agent_id = agent.id
            taken: list[tuple] = []
            made: list[tuple] = []
            while candidates and agent.available:
                entry = heapq.heappop(candidates)
                node, role = entry[4], entry[5]
                if entry[3] != node.version:
                    continue  # stale: a fresher entry for this role is in the heap
                quota = self._quotas.get(role)
                if quota is None:
                    continue
                unsatisfied = q.subtract(quota.guarantees, budget.consumed.get(role, {}))
                if not unsatisfied:
                    continue  # satisfied for the rest of this cycle: dropped
                taken.append(entry)
                sorter = self._role_frameworks[role]
                for framework_id in sorter.iterate(popped_frameworks):
                    if not unsatisfied:
                        break
                    available = agent.available.allocatable_to(role)
                    if not available:
                        break
                    framework = self._frameworks[framework_id]
                    if not self._allocatable(available.quantities(), role, framework):
                        continue
                    if agent.gpus and not framework.gpu and self.options.filter_gpu_resources:
                        continue
                    quota_resources = available.unreserved().scalars_only()
                    guaranteed = quota_resources.shrink_to_quantities(unsatisfied)
                    if not guaranteed:
                        continue
                    to_offer = guaranteed + available.filter(
                        lambda r, role=role: (
                            (r.is_reserved() and r.role == role) or r.type != "SCALAR"
                        )
                    )
                    additional = quota_resources - guaranteed
                    if quota.limits:
                        additional = additional.shrink_to_limits(
                            limits_minus(
                                quota.limits,
                                q.add(budget.consumed[role], guaranteed.quantities()),
                            ),
                        )
                    if budget.required and additional:
                        additional = additional.shrink_to_quantities(
                            q.subtract(budget.headroom, budget.required)
                        )
                    to_offer = to_offer + additional
                    if not self._allocatable(to_offer.quantities(), role, framework):
                        continue
                    if self._filtered(framework, role, agent_id, to_offer, now):
                        continue
                    self._give(offers, made, agent, framework_id, role, to_offer)
                    increase = (guaranteed + additional).quantities()
                    unsatisfied = q.subtract(unsatisfied, increase)
                    budget.consumed[role] = q.add(budget.consumed.get(role, {}), increase)
                    budget.required = q.subtract(budget.required, guaranteed.quantities())
                    budget.headroom = q.subtract(budget.headroom, increase)
            self._settle(agent, made)
            DRFSorter.restore(popped_frameworks)
            for entry in taken:
                heapq.heappush(candidates, entry)
            for role in {entry[1] for entry in made}:
                heapq.heappush(candidates, _entry(roles.top_level_node(role), role))

    def _stage_two(self, walk: list[_Agent], offers: _Offers, budget: _Budget, now: float):
        """Everyone by DRF, within quota limits, keeping the headroom guarantees still need."""
        roles = self._roles
        frameworks = self._frameworks
        role_frameworks = self._role_frameworks
        quotas = self._quotas
        gpu_filter = self.options.filter_gpu_resources
        saturated = self._saturate(budget)
        popped_roles: list = []
        popped_frameworks: list = []
        take_whole = self._take_whole if not budget.required else None
        # Stage 1 made offers: one may be for the agent that is offered whole now. (Stage 2
        # visits each agent once, so otherwise a whole-pool offer is the agent's only one.)
        merge = bool(offers.made)
        # With one active role and no quota, allocations to the role cannot change the role
        # order: the role sorter learns of the whole-agent ones at the end of the stage, alike
        # ones (the same quantities object: agents of one shape) recorded at once.
        sole = None if quotas else roles.first()
        late: dict[int, list] | None = {} if sole is not None and roles.alone(sole) else None
        for agent in walk:
            if agent.available is EMPTY:
                continue
            reserved_here = agent.reserved and agent.available.has_reserved()
            if not reserved_here and take_whole is not None:
                taker = take_whole(agent, offers, quotas, merge, late, now)
                if taker is not None:
                    if quotas:
                        self._note_saturation((taker,), saturated, budget)
                    continue
            agent_id = agent.id
            if reserved_here and saturated:
                for role in saturated:
                    roles.activate(role)
            made: list[tuple] = []
            for role in roles.iterate(popped_roles):
                if not agent.available:
                    break
                top = role.partition("/")[0]  # a quota binds its role's whole subtree
                quota = quotas.get(top, DEFAULT_QUOTA)
                plain = not quota.limits and not budget.required
                for framework_id in role_frameworks[role].iterate(popped_frameworks):
                    whole = agent.available
                    available = whole.allocatable_to(role) if reserved_here else whole
                    if not available:
                        break
                    framework = frameworks[framework_id]
                    have = agent.available_q if available is whole else available.quantities()
                    if not self._allocatable(have, role, framework):
                        continue
                    if agent.gpus and not framework.gpu and gpu_filter:
                        continue
                    if plain:
                        to_offer = available
                        if not quotas:
                            additional_q = None  # no quota anywhere: no budget to keep
                        elif reserved_here:
                            additional_q = available.unreserved().scalars_only().quantities()
                        else:
                            additional_q = dict(have)
                    else:
                        to_offer = available.filter(lambda r: r.is_reserved() or r.type != "SCALAR")
                        additional = available.unreserved().scalars_only()
                        if quota.limits:
                            additional = additional.shrink_to_limits(
                                limits_minus(quota.limits, budget.consumed[top])
                            )
                        if budget.required and additional:
                            additional = additional.shrink_to_quantities(
                                q.subtract(budget.headroom, budget.required)
                            )
                        to_offer = to_offer + additional
                        additional_q = additional.quantities()
                        have = to_offer.quantities()
                        if not to_offer or not self._allocatable(have, role, framework):
                            continue
                    if framework.filters and self._filtered(
                        framework, role, agent_id, to_offer, now
                    ):
                        continue
                    self._give(offers, made, agent, framework_id, role, to_offer)
                    if additional_q:
                        if not quota.is_default():
                            budget.consumed[top] = q.add(budget.consumed[top], additional_q)
                        budget.headroom = q.subtract(budget.headroom, additional_q)
            self._settle(agent, made)
            DRFSorter.restore(popped_frameworks)
            DRFSorter.restore(popped_roles)
            if reserved_here and saturated:
                for role in saturated:
                    roles.deactivate(role)
            if quotas:
                self._note_saturation([entry[1] for entry in made], saturated, budget)
        for role in saturated:
            if role in roles:
                roles.activate(role)
        if late:
            for amounts, times in late.values():
                roles.allocated(sole, amounts, times)

    def _take_whole(
        self,
        agent: _Agent,
        offers: _Offers,
        quotas: dict,
        merge: bool,
        late: dict | None,
        now: float,
    ) -> str | None:
        """The usual case, without generators: the first framework of the first role takes
        the agent's whole free pool. None when that is not what the full walk would decide
        (then the caller walks; nothing was changed here). Returns the role it went to.
        ``late``: where to keep the role sorter's update for later (see ``_stage_two``).

        What ``_give`` and ``_count_one`` do, written out for this case: no walk is under
        way, so the sorters learn of it at once; nothing here is reserved (the caller
        checked), so there are no reservations to account."""
        role = self._roles.first()
        if role is None:
            return None
        if quotas:
            top = role.partition("/")[0]
            quota = quotas.get(top)
            if quota is not None and quota.limits:
                return None
        else:
            quota = None
        sorter = self._role_frameworks[role]
        framework_id = sorter.first()
        if framework_id is None:
            return None
        framework = self._frameworks[framework_id]
        amounts = agent.available_q
        if not self._allocatable(amounts, role, framework):
            return None
        if agent.gpus and not framework.gpu and self.options.filter_gpu_resources:
            return None
        if framework.filters and self._live_filters(framework, role, agent.id, now):
            return None
        resources = agent.available
        allocated = agent.allocated_form(resources, role)
        if merge:
            offers.add(framework_id, role, agent, allocated)
        else:
            offers.made.append(
                _new(Allocation, (framework_id, role, agent.id, allocated, agent.generation))
            )
        held = agent.allocated.get(framework_id)
        agent.allocated[framework_id] = allocated if held is None else held + allocated
        agent.undo = (allocated, agent.used, resources, amounts, agent.fits)
        agent.used = agent.total if agent.fits else agent.used + resources
        agent.available = EMPTY
        agent.available_q = {}
        if quotas and amounts:
            budget = self._budget
            if quota is not None:
                budget.consumed[top] = q.add(budget.consumed[top], amounts)
            budget.headroom = q.subtract(budget.headroom, amounts)
        by_agent = framework.held.get(role)
        if by_agent is None:
            by_agent = framework.held[role] = {}
        previous = by_agent.get(agent.id)
        by_agent[agent.id] = allocated if previous is None else previous + allocated
        sorter.allocated(framework_id, amounts)
        if late is None:
            self._roles.allocated(role, amounts)
        else:
            alike = late.get(id(amounts))  # (the entry holds amounts: its id stays its own)
            if alike is None:
                late[id(amounts)] = [amounts, 1]
            else:
                alike[1] += 1
        return role

    def _note_saturation(self, roles: Iterable[str], saturated: list[str], budget: _Budget):
        for role in roles:
            top = role.partition("/")[0]
            if top in self._quotas and top not in budget.saturated:
                self._saturate_top(top, saturated, budget)

    def _saturate(self, budget: _Budget) -> list[str]:
        """Roles under a quota whose limits leave no room for any scalar in the cluster, and
        that could take nothing else from an agent without reservations: out of stage 2's
        order (the list of roles deactivated; ``budget.saturated`` holds their quota roles)."""
        saturated: list[str] = []
        for top in self._quotas:
            self._saturate_top(top, saturated, budget)
        return saturated

    def _saturate_top(self, top: str, saturated: list[str], budget: _Budget) -> None:
        roles = self._roles_under.get(top)
        if not roles or not self._is_saturated(top, roles, budget):
            return
        budget.saturated.add(top)
        for role in roles:
            if self._roles.is_active(role):
                self._roles.deactivate(role)
                saturated.append(role)

    def _is_saturated(self, top: str, roles: set[str], budget: _Budget) -> bool:
        quota = self._quotas[top]
        if not quota.limits:
            return False
        room = limits_minus(quota.limits, budget.consumed.get(top, {}))
        if any(room.get(name, 1) > 0 for name in self._totals):
            return False
        # Without reservations, such roles can only be offered non-scalars; that passes
        # only for a framework whose minimum allocatable resources allow it.
        for role in roles:
            for framework_id in self._tracked.get(role, ()):
                minimums = self._frameworks[framework_id].min_allocatable.get(
                    role, self.options.min_allocatable_resources
                )
                if not minimums or any(not minimum for minimum in minimums):
                    return False
        return True

    # -- decisions' ingredients -------------------------------------------------------------

    def _give(
        self,
        offers: _Offers,
        made: list,
        agent: _Agent,
        framework_id: str,
        role: str,
        resources: Resources,
    ) -> None:
        """Take ``resources`` off the agent now; the sorters learn of it in ``_settle``."""
        allocated = agent.allocated_form(resources, role)
        offers.add(framework_id, role, agent, allocated)
        held = agent.allocated.get(framework_id)
        agent.allocated[framework_id] = allocated if held is None else held + allocated
        if resources is agent.available:
            amounts = agent.available_q
            undo = (allocated, agent.used, resources, amounts, agent.fits)
            agent.used = agent.total if agent.fits else agent.used + resources
            agent.available = EMPTY
            agent.available_q = {}
            agent.undo = undo
        else:
            amounts = resources.quantities()
            agent.set_used(agent.used + resources)
        made.append((framework_id, role, allocated, amounts))

    def _settle(self, agent: _Agent, made: list) -> None:
        frameworks = self._frameworks
        agent_id = agent.id
        for framework_id, role, allocated, amounts in made:
            self._count_one(frameworks[framework_id], agent_id, role, allocated, amounts, True)

    def _allocatable(self, have: dict[str, int], role: str, framework: _Framework) -> bool:
        minimums = self._minimums
        if framework.min_allocatable:
            minimums = framework.min_allocatable.get(role, minimums)
        if not minimums:
            return True
        get = have.get
        for minimum in minimums:
            for name, amount in minimum.items():
                if get(name, 0) < amount:
                    break
            else:
                return True
        return False

    def _filtered(
        self, framework: _Framework, role: str, agent_id: str, resources: Resources, now: float
    ) -> bool:
        filters = self._live_filters(framework, role, agent_id, now)
        if not filters:
            return False
        if any(f.filters(resources, now) for f in filters):
            self.stats_filtered += 1
            return True
        return False

    @staticmethod
    def _live_filters(
        framework: _Framework, role: str, agent_id: str, now: float
    ) -> list[OfferFilter] | None:
        """The framework's filters in ``role`` on the agent that have not expired; expired
        ones are dropped here (as Mesos's expiry timers drop them), so that a framework that
        declines every few seconds keeps one filter per agent, not one per decline ever."""
        by_agent = framework.filters.get(role)
        if not by_agent:
            return None
        filters = by_agent.get(agent_id)
        if filters is None:
            return None
        for refused in filters:
            if refused.expires_at <= now:
                break
        else:
            return filters
        filters = [refused for refused in filters if refused.expires_at > now]
        if filters:
            by_agent[agent_id] = filters
            return filters
        del by_agent[agent_id]
        if not by_agent:
            del framework.filters[role]
        return None

    def _add_filter(
        self, framework: _Framework, role: str, agent_id: str, refused: OfferFilter, now: float
    ) -> None:
        filters = self._live_filters(framework, role, agent_id, now)
        if filters is None:
            framework.filters.setdefault(role, {})[agent_id] = [refused]
        else:
            filters.append(refused)

    def _refresh_shares(self) -> None:
        if self._shares_stale:
            self._roles.reshare_all()
            for sorter in self._role_frameworks.values():
                sorter.reshare_all()
            self._shares_stale = False

    # -- bookkeeping ----------------------------------------------------------------------

    def _track(self, agent: _Agent, framework_id: str, resources: Resources) -> None:
        held = agent.allocated.get(framework_id)
        agent.allocated[framework_id] = resources if held is None else held + resources
        agent.set_used(agent.used + resources.unallocated())
        framework = self._frameworks.get(framework_id)
        if framework is None:
            self._orphans.setdefault(framework_id, set()).add(agent.id)
        else:
            self._count_allocation(framework, agent.id, resources)

    def _count_allocation(self, framework: _Framework, agent_id: str, resources: Resources):
        for role, part in resources.by_allocation_role().items():
            if role is not None:
                self._count_one(framework, agent_id, role, part, part.quantities())

    def _count_one(
        self,
        framework: _Framework,
        agent_id: str,
        role: str,
        part: Resources,
        amounts: dict[str, int],
        tracked: bool | None = None,
    ) -> None:
        by_agent = framework.held.get(role)
        if by_agent is None:
            by_agent = framework.held[role] = {}
        previous = by_agent.get(agent_id)
        by_agent[agent_id] = part if previous is None else previous + part
        if tracked is None:  # (a cycle only allocates where the framework is tracked)
            self._ensure_tracked(framework, role)
        self._role_frameworks[role].allocated(framework.id, amounts)
        self._roles.allocated(role, amounts)
        if self._agents[agent_id].reserved and part.has_reserved():
            self._account_reserved(role, part, 1)

    def _account_reserved(self, role: str, part: Resources, sign: int) -> None:
        change = q.add_into if sign > 0 else q.subtract_into
        reserved = part.reserved().quantities()
        change(self._reserved_held, reserved)
        change(self._reserved_held_top.setdefault(role.split("/", 1)[0], {}), reserved)

    def _untrack(
        self,
        agent: _Agent,
        framework_id: str,
        resources: Resources,
        parts: dict[str | None, Resources] | None = None,
        sums: dict[str, dict[str, int]] | None = None,
    ) -> None:
        """Take ``resources`` off what the framework holds on ``agent``. With ``sums``, what
        comes off each role is added there for the caller to tell the sorters once."""
        held = agent.allocated[framework_id]
        left = EMPTY if held is resources else held - resources
        if left:
            agent.allocated[framework_id] = left
        else:
            del agent.allocated[framework_id]
        undo = agent.undo
        if undo is not None and undo[0] is resources:  # exactly the last whole-pool offer
            _, agent.used, agent.available, agent.available_q, agent.fits = undo
            agent.undo = None
        elif agent.allocated:
            agent.set_used(agent.used - resources.unallocated())
        else:  # nothing held at all: the whole agent is free again, no arithmetic needed
            agent.used = EMPTY
            agent.available = agent.total
            agent.available_q = agent.total_q
            agent.fits = True
            agent.undo = None
        framework = self._frameworks.get(framework_id)
        if framework is None:
            if not left:
                orphans = self._orphans.get(framework_id)
                if orphans is not None:
                    orphans.discard(agent.id)
                    if not orphans:
                        del self._orphans[framework_id]
            return
        for role, part in (parts or resources.by_allocation_role()).items():
            if role is None:
                continue
            amounts = part.quantities()
            by_agent = framework.held[role]
            mine = by_agent[agent.id]
            remaining = EMPTY if mine is part or mine == part else mine - part
            if remaining:
                by_agent[agent.id] = remaining
            else:
                del by_agent[agent.id]
                if not by_agent:
                    del framework.held[role]
            if part.has_reserved():
                self._account_reserved(role, part, -1)
            if sums is not None:
                q.add_into(sums.setdefault(role, {}), amounts)
                continue
            self._role_frameworks[role].unallocated(framework_id, amounts)
            self._roles.unallocated(role, amounts)
            self._forget_if_untracked(framework_id, role)

    def _ensure_tracked(self, framework: _Framework, role: str) -> None:
        tracked = self._tracked.get(role)
        if tracked is None:
            tracked = self._tracked[role] = set()
            self._roles_under.setdefault(role.partition("/")[0], set()).add(role)
            self._roles.add(role)
            self._role_frameworks[role] = DRFSorter(
                self._totals, self._excluded, None, hierarchical=False
            )
        if framework.id not in tracked:
            tracked.add(framework.id)
            self._role_frameworks[role].add(framework.id, active=framework.active_in(role))

    def _forget_if_untracked(self, framework_id: str, role: str) -> None:
        framework = self._frameworks.get(framework_id)
        if framework is not None and (role in framework.roles or role in framework.held):
            return
        tracked = self._tracked.get(role)
        if tracked is None or framework_id not in tracked:
            return
        tracked.discard(framework_id)
        self._role_frameworks[role].remove(framework_id)
        if not tracked:
            del self._tracked[role]
            del self._role_frameworks[role]
            self._roles.remove(role)
            top = role.partition("/")[0]
            under = self._roles_under[top]
            under.discard(role)
            if not under:
                del self._roles_under[top]

    def _agent(self, agent_id: str) -> _Agent:
        agent = self._agents.get(agent_id)
        if agent is None:
            raise AllocatorError(f"agent {agent_id} is not known to the allocator")
        return agent

    def _framework(self, framework_id: str) -> _Framework:
        framework = self._frameworks.get(framework_id)
        if framework is None:
            raise AllocatorError(f"framework {framework_id} is not known to the allocator")
        return framework


class _Offers:
    """A cycle's allocations, in the order first made, one per (framework, role, agent):
    what is allocated again to the same key in the cycle is added to it."""

    __slots__ = ("index", "made")

    def __init__(self) -> None:
        self.made: list[Allocation] = []
        self.index: dict[tuple[str, str, str], int] = {}  # key -> its position in made

    def add(self, framework_id: str, role: str, agent: _Agent, allocated: Resources) -> None:
        key = (framework_id, role, agent.id)
        at = self.index.get(key)
        if at is None:
            self.index[key] = len(self.made)
            self.made.append(
                _new(Allocation, (framework_id, role, agent.id, allocated, agent.generation))
            )
        else:
            earlier = self.made[at]
            self.made[at] = earlier._replace(resources=earlier.resources + allocated)


_new = tuple.__new__  # builds an Allocation without NamedTuple's argument-handling __new__


class _Budget:
    """Quota state during one cycle: consumed per quota role, required and available headroom,
    and the quota roles whose limits are used up (stage 2)."""

    __slots__ = ("consumed", "headroom", "required", "saturated")

    def __init__(self, consumed: dict, required: dict, headroom: dict) -> None:
        self.consumed = consumed
        self.required = required
        self.headroom = headroom
        self.saturated: set[str] = set()


def _entry(node, role: str) -> tuple:
    """A stage-1 heap entry: the role's top-level node's DRF key, then the role."""
    return (node.share, node.key_count(), node.key_path, node.version, node, role)
