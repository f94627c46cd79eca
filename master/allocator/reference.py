"""The reference allocator: the same policy as ``HierarchicalAllocator``, written for clarity.

It re-sorts roles and frameworks from scratch for every agent, as Mesos does, and keeps
its bookkeeping in plain dictionaries. The differential tests hold the fast allocator to
it: same inputs, same seed, same offers. It is not meant to be fast.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable

from corral import quantities as q
from corral.resources import Resources
from corral.roles import ancestors
from master.allocator.drf import drf_key, drf_share
from master.allocator.filters import OfferFilter
from master.allocator.offer import Allocation, AllocatorError, checked_role, checked_used
from master.allocator.options import MAX_REFUSE_SECONDS, AllocatorOptions
from master.allocator.quota import (
    DEFAULT_QUOTA,
    Quota,
    check_quota_role,
    limits_minus,
)


class _Agent:
    def __init__(self, agent_id: str, total: Resources) -> None:
        self.id = agent_id
        self.total = total
        self.allocated: dict[str, Resources] = {}  # framework id -> resources (allocated form)
        self.active = True

    def available(self) -> Resources:
        used = Resources()
        for resources in self.allocated.values():
            used = used + resources.unallocated()
        return self.total - used

    def has_gpus(self) -> bool:
        return self.total.scalar_millis("gpus") > 0


class _Framework:
    def __init__(self, framework_id: str, roles: set[str], gpu: bool, active: bool) -> None:
        self.id = framework_id
        self.roles = roles
        self.suppressed: set[str] = set()
        self.gpu = gpu
        self.active = active
        self.filters: dict[tuple[str, str], list[OfferFilter]] = defaultdict(list)
        self.min_allocatable: dict[str, tuple[q.Quantities, ...]] = {}


class ReferenceAllocator:
    """Sans-IO: feed it events, call ``allocate(now)``, get allocations back."""

    def __init__(self, options: AllocatorOptions | None = None, seed: int = 0) -> None:
        self.options = options or AllocatorOptions()
        self._rng = random.Random(seed)
        self._agents: dict[str, _Agent] = {}
        self._frameworks: dict[str, _Framework] = {}
        self._weights: dict[str, float] = {}
        self._quotas: dict[str, Quota] = {}
        # DRF tie-break counters: allocations recorded since the node was (re)created.
        self._count: dict[str, int] = defaultdict(int)  # role path (and ancestors)
        self._own_count: dict[str, int] = defaultdict(int)  # role itself (virtual leaf)
        self._fw_count: dict[tuple[str, str], int] = defaultdict(int)  # (role, framework)

    # -- agents -------------------------------------------------------------------------

    def add_agent(
        self, agent_id: str, total: Resources, used: dict[str, Resources] | None = None
    ) -> None:
        if agent_id in self._agents:
            raise AllocatorError(f"agent {agent_id} is already known")
        used = checked_used(agent_id, used)
        agent = self._agents[agent_id] = _Agent(agent_id, total)
        for framework_id, resources in (used or {}).items():
            self._track(agent, framework_id, resources)

    def remove_agent(self, agent_id: str) -> None:
        agent = self._agent(agent_id)
        for framework_id, resources in list(agent.allocated.items()):
            self._untrack(agent, framework_id, resources)
        del self._agents[agent_id]
        for framework in self._frameworks.values():
            for key in [key for key in framework.filters if key[1] == agent_id]:
                del framework.filters[key]

    def update_agent(self, agent_id: str, total: Resources) -> None:
        self._agent(agent_id).total = total

    def activate_agent(self, agent_id: str) -> None:
        self._agent(agent_id).active = True

    def deactivate_agent(self, agent_id: str) -> None:
        self._agent(agent_id).active = False

    def clear_agent_filters(self, agent_id: str) -> None:
        self._agent(agent_id)
        for framework in self._frameworks.values():
            for key in [key for key in framework.filters if key[1] == agent_id]:
                del framework.filters[key]

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
        # Allocations agents reported before the framework was known now count for it.
        for agent in self._agents.values():
            resources = agent.allocated.get(framework_id)
            if resources:
                self._count_allocation(framework_id, resources)

    def remove_framework(self, framework_id: str) -> None:
        self._framework(framework_id)
        for agent in self._agents.values():
            resources = agent.allocated.get(framework_id)
            if resources:
                self._untrack(agent, framework_id, resources)
        framework = self._frameworks.pop(framework_id)
        for role in framework.roles:
            self._forget_if_untracked(framework_id, role)

    def activate_framework(self, framework_id: str) -> None:
        self._framework(framework_id).active = True

    def deactivate_framework(self, framework_id: str) -> None:
        framework = self._framework(framework_id)
        framework.active = False
        framework.filters.clear()

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
        for role in old_roles - new_roles:
            for key in [key for key in framework.filters if key[0] == role]:
                del framework.filters[key]
            self._forget_if_untracked(framework_id, role)

    def suppress(self, framework_id: str, roles: Iterable[str] | None = None) -> None:
        framework = self._framework(framework_id)
        framework.suppressed |= framework.roles if roles is None else set(roles) & framework.roles

    def revive(self, framework_id: str, roles: Iterable[str] | None = None) -> None:
        framework = self._framework(framework_id)
        chosen = set(framework.roles) if roles is None else set(roles) & framework.roles
        framework.suppressed -= chosen
        for key in [key for key in framework.filters if key[0] in chosen]:
            del framework.filters[key]

    # -- roles ----------------------------------------------------------------------------

    def set_weight(self, role: str, weight: float) -> None:
        checked_role(role)
        if not weight > 0:
            raise AllocatorError(f"a role weight is positive, got {weight} for {role}")
        self._weights[role] = float(weight)

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
        if agent is None or framework_id not in agent.allocated:
            return  # the agent or the allocation is gone already: nothing to recover
        held = agent.allocated[framework_id]
        if not held.contains(resources):
            raise AllocatorError(
                f"framework {framework_id} does not hold {resources} on agent {agent_id}"
            )
        self._untrack(agent, framework_id, resources)
        framework = self._frameworks.get(framework_id)
        if framework is None or refuse_seconds is None:
            return
        seconds = _refuse_seconds(refuse_seconds)
        if seconds <= 0:
            return
        expires = now + max(self.options.allocation_interval, seconds)
        for role in resources.allocation_roles():
            refused = resources.filter(lambda r, role=role: r.allocation_role == role)
            framework.filters[(role, agent_id)].append(OfferFilter(refused.unallocated(), expires))

    def recover_declined(
        self,
        framework_id: str,
        pieces: Iterable[tuple[str, Resources]],
        refuse_seconds: float | None = None,
        now: float = 0.0,
    ) -> None:
        """Many offers' ``recover_resources`` at once; all refused if any piece is not held."""
        pieces = list(pieces)
        for agent_id, resources in pieces:
            agent = self._agents.get(agent_id)
            held = agent.allocated.get(framework_id) if agent is not None else None
            if held is not None and not held.contains(resources):
                raise AllocatorError(
                    f"framework {framework_id} does not hold {resources} on agent {agent_id}"
                )
        for agent_id, resources in pieces:
            self.recover_resources(framework_id, agent_id, resources, refuse_seconds, now)

    # -- the cycle --------------------------------------------------------------------------

    def allocate(self, now: float, candidates: Iterable[str] | None = None) -> list[Allocation]:
        chosen = None if candidates is None else set(candidates)
        agent_ids = [
            agent_id
            for agent_id, agent in self._agents.items()
            if agent.active and (chosen is None or agent_id in chosen)
        ]
        offers: dict[tuple[str, str, str], Resources] = {}

        consumed: dict[str, q.Quantities] = {}
        for role in self._quotas:
            consumed[role] = q.add(self._reserved_quantities(role), self._unreserved_held(role))
        required: q.Quantities = {}
        for role, quota in self._quotas.items():
            q.add_into(required, q.subtract(quota.guarantees, consumed[role]))
        available_headroom = q.subtract(self._totals(), self._all_held())
        unallocated_reserved = q.subtract(self._all_reserved(), self._reserved_held())
        available_headroom = q.subtract(available_headroom, unallocated_reserved)

        # Stage 1: roles with quota guarantees they have not yet been given (when any has).
        stage_one = any(quota.guarantees for quota in self._quotas.values())
        if stage_one:
            self._rng.shuffle(agent_ids)
        for agent_id in agent_ids if stage_one else ():
            agent = self._agents[agent_id]
            for role in self._role_order():
                quota = self._quotas.get(role, DEFAULT_QUOTA)
                if not quota.guarantees or not self._has_frameworks(role):
                    continue
                if not agent.available():
                    break
                unsatisfied = q.subtract(quota.guarantees, consumed.get(role, {}))
                if not unsatisfied:
                    continue
                for framework_id in self._framework_order(role):
                    if not unsatisfied:
                        break
                    available = agent.available().allocatable_to(role)
                    if not available:
                        break
                    framework = self._frameworks[framework_id]
                    if not self._allocatable(available, role, framework):
                        continue
                    if not self._capable(framework, agent):
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
                                quota.limits, q.add(consumed[role], guaranteed.quantities())
                            ),
                        )
                    if required and additional:
                        additional = additional.shrink_to_quantities(
                            q.subtract(available_headroom, required)
                        )
                    to_offer = to_offer + additional
                    if not self._allocatable(to_offer, role, framework) or self._filtered(
                        framework, role, agent_id, to_offer, now
                    ):
                        continue
                    self._offer(offers, agent, framework_id, role, to_offer)
                    increase = (guaranteed + additional).quantities()
                    unsatisfied = q.subtract(unsatisfied, increase)
                    consumed[role] = q.add(consumed.get(role, {}), increase)
                    required = q.subtract(required, guaranteed.quantities())
                    available_headroom = q.subtract(available_headroom, increase)

        # Stage 2: fair share over every role, within quota limits and headroom.
        self._rng.shuffle(agent_ids)
        for agent_id in agent_ids:
            agent = self._agents[agent_id]
            for role in self._role_order():
                if not agent.available():
                    break
                # A role's quota binds its whole subtree: sub-roles count against it.
                top = role.partition("/")[0]
                quota = self._quotas.get(top, DEFAULT_QUOTA)
                for framework_id in self._framework_order(role):
                    available = agent.available().allocatable_to(role)
                    if not available:
                        break
                    framework = self._frameworks[framework_id]
                    if not self._allocatable(available, role, framework):
                        continue
                    if not self._capable(framework, agent):
                        continue
                    to_offer = available.filter(lambda r: r.is_reserved() or r.type != "SCALAR")
                    additional = available.unreserved().scalars_only()
                    if quota.limits:
                        additional = additional.shrink_to_limits(
                            limits_minus(quota.limits, consumed[top])
                        )
                    if required and additional:
                        additional = additional.shrink_to_quantities(
                            q.subtract(available_headroom, required)
                        )
                    to_offer = to_offer + additional
                    if not self._allocatable(to_offer, role, framework) or self._filtered(
                        framework, role, agent_id, to_offer, now
                    ):
                        continue
                    self._offer(offers, agent, framework_id, role, to_offer)
                    increase = additional.quantities()
                    if not quota.is_default():
                        consumed[top] = q.add(consumed.get(top, {}), increase)
                    available_headroom = q.subtract(available_headroom, increase)

        return [
            Allocation(framework_id, role, agent_id, resources)
            for (framework_id, role, agent_id), resources in offers.items()
        ]

    # -- decisions' ingredients -------------------------------------------------------------

    def _offer(self, offers, agent: _Agent, framework_id: str, role: str, resources: Resources):
        allocated = resources.allocated_to(role)
        key = (framework_id, role, agent.id)
        offers[key] = offers.get(key, Resources()) + allocated
        self._track(agent, framework_id, allocated)

    def _allocatable(self, resources: Resources, role: str, framework: _Framework) -> bool:
        if not resources:
            return False
        minimums = framework.min_allocatable.get(role, self.options.min_allocatable_resources)
        if not minimums:
            return True
        have = resources.quantities()
        return any(q.contains(have, minimum) for minimum in minimums)

    def _capable(self, framework: _Framework, agent: _Agent) -> bool:
        return not (self.options.filter_gpu_resources and not framework.gpu and agent.has_gpus())

    def _filtered(
        self, framework: _Framework, role: str, agent_id: str, resources: Resources, now: float
    ) -> bool:
        return any(f.filters(resources, now) for f in framework.filters.get((role, agent_id), ()))

    def _totals(self) -> q.Quantities:
        totals: q.Quantities = {}
        for agent in self._agents.values():
            q.add_into(totals, agent.total.quantities())
        return totals

    def _held(self, predicate) -> q.Quantities:
        """Quantities allocated to known frameworks, of resources matching ``predicate``."""
        held: q.Quantities = {}
        for agent in self._agents.values():
            for framework_id, resources in agent.allocated.items():
                if framework_id in self._frameworks:
                    q.add_into(held, resources.filter(predicate).quantities())
        return held

    def _all_held(self) -> q.Quantities:
        return self._held(lambda r: True)

    def _reserved_held(self) -> q.Quantities:
        return self._held(lambda r: r.is_reserved())

    def _unreserved_held(self, role: str) -> q.Quantities:
        return self._held(
            lambda r: (
                not r.is_reserved()
                and r.allocation_role is not None
                and (r.allocation_role == role or r.allocation_role.startswith(role + "/"))
            )
        )

    def _all_reserved(self) -> q.Quantities:
        reserved: q.Quantities = {}
        for agent in self._agents.values():
            q.add_into(reserved, agent.total.reserved().quantities())
        return reserved

    def _reserved_quantities(self, role: str) -> q.Quantities:
        reserved: q.Quantities = {}
        for agent in self._agents.values():
            q.add_into(
                reserved,
                agent.total.filter(
                    lambda r: r.is_reserved() and (r.role == role or r.role.startswith(role + "/"))
                ).quantities(),
            )
        return reserved

    # -- the DRF order, recomputed from scratch ----------------------------------------------

    def _role_allocation(self, role: str) -> q.Quantities:
        return self._held(lambda r: r.allocation_role == role)

    def _tracked_roles(self) -> set[str]:
        roles: set[str] = set()
        for framework in self._frameworks.values():
            roles |= framework.roles
        for agent in self._agents.values():
            for framework_id, resources in agent.allocated.items():
                if framework_id in self._frameworks:
                    roles |= resources.allocation_roles()
        return roles

    def _frameworks_in(self, role: str) -> list[str]:
        """Frameworks tracked under ``role``: subscribed to it, or holding resources in it."""
        tracked = [fid for fid, fw in self._frameworks.items() if role in fw.roles]
        for agent in self._agents.values():
            for framework_id, resources in agent.allocated.items():
                if (
                    framework_id in self._frameworks
                    and framework_id not in tracked
                    and role in resources.allocation_roles()
                ):
                    tracked.append(framework_id)
        return tracked

    def _has_frameworks(self, role: str) -> bool:
        return bool(self._frameworks_in(role))

    def _role_order(self) -> list[str]:
        tracked = self._tracked_roles()
        nodes: set[str] = set()
        for role in tracked:
            nodes.add(role)
            nodes.update(ancestors(role))
        children: dict[str, list[str]] = defaultdict(list)
        for node in nodes:
            children[node.rpartition("/")[0]].append(node)
        own = {role: self._role_allocation(role) for role in tracked}
        totals = self._totals()
        excluded = self.options.fair_sharing_excluded_resource_names

        def subtree(node: str) -> q.Quantities:
            result: q.Quantities = {}
            for role, allocation in own.items():
                if role == node or role.startswith(node + "/"):
                    q.add_into(result, allocation)
            return result

        def visit(parent: str) -> list[str]:
            entries = []
            if parent and parent in tracked:
                share = drf_share(own[parent], totals, self._weights.get(parent, 1.0), excluded)
                entries.append((drf_key(share, self._own_count[parent], parent + "/."), parent))
            for child in children[parent]:
                share = drf_share(subtree(child), totals, self._weights.get(child, 1.0), excluded)
                entries.append((drf_key(share, self._count[child], child), child))
            entries.sort()
            order: list[str] = []
            for (_, _, path), name in entries:
                if path.endswith("/.") or not children[name]:
                    order.append(name)
                else:
                    order.extend(visit(name))
            return order

        return visit("")

    def _framework_order(self, role: str) -> list[str]:
        totals = self._totals()
        excluded = self.options.fair_sharing_excluded_resource_names
        entries = []
        for framework_id in self._frameworks_in(role):
            framework = self._frameworks[framework_id]
            if not framework.active or role not in framework.roles or role in framework.suppressed:
                continue
            allocation = self._held_by(framework_id, role)
            share = drf_share(allocation, totals, 1.0, excluded)
            entries.append(drf_key(share, self._fw_count[(role, framework_id)], framework_id))
        entries.sort()
        return [framework_id for _, _, framework_id in entries]

    def _held_by(self, framework_id: str, role: str) -> q.Quantities:
        held: q.Quantities = {}
        for agent in self._agents.values():
            resources = agent.allocated.get(framework_id)
            if resources:
                q.add_into(held, resources.filter(lambda r: r.allocation_role == role).quantities())
        return held

    # -- bookkeeping ----------------------------------------------------------------------

    def _track(self, agent: _Agent, framework_id: str, resources: Resources) -> None:
        agent.allocated[framework_id] = agent.allocated.get(framework_id, Resources()) + resources
        if framework_id in self._frameworks:
            self._count_allocation(framework_id, resources)

    def _count_allocation(self, framework_id: str, resources: Resources) -> None:
        for role in resources.allocation_roles():
            self._own_count[role] += 1
            for path in [role, *ancestors(role)]:
                self._count[path] += 1
            self._fw_count[(role, framework_id)] += 1

    def _untrack(self, agent: _Agent, framework_id: str, resources: Resources) -> None:
        left = agent.allocated[framework_id] - resources
        if left:
            agent.allocated[framework_id] = left
        else:
            del agent.allocated[framework_id]
        if framework_id in self._frameworks:
            for role in resources.allocation_roles():
                self._forget_if_untracked(framework_id, role)

    def _forget_if_untracked(self, framework_id: str, role: str) -> None:
        """Drop tie-break counters of nodes that left the sorters (as Mesos drops the nodes)."""
        if framework_id not in self._frameworks_in(role):
            self._fw_count.pop((role, framework_id), None)
        tracked = self._tracked_roles()
        if role not in tracked:
            self._own_count.pop(role, None)
        for path in [role, *ancestors(role)]:
            if not any(r == path or r.startswith(path + "/") for r in tracked):
                self._count.pop(path, None)

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


def _refuse_seconds(value: float) -> float:
    """Mesos: invalid refusals fall back to the 5 s default; all are capped at 365 days."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return 5.0
    if seconds != seconds or seconds < 0 or seconds == float("inf"):
        return 5.0
    return min(seconds, MAX_REFUSE_SECONDS)
