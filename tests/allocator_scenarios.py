"""Random allocator scenarios for the property tests: events, a model of what the allocator
was told, and the invariants every allocation cycle must keep.

A scenario is a list of operations (plain tuples drawn by ``operations()``). ``Driver`` feeds
each one to one or more allocators (the fast one and the reference), checks that they accept
or refuse it alike, keeps a ``Model`` of the cluster as the caller sees it (agents, frameworks,
what each framework holds, filters, quotas), and after every cycle compares the allocators'
decisions and checks them against the model with ``check_cycle``.

Ids in operations are picks (small integers) resolved against the model's current lists, so
hypothesis can shrink a failing scenario to a short one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from hypothesis import strategies as st

from corral import quantities as q
from corral.resources import Resource, Resources
from corral.roles import is_self_or_ancestor
from master.allocator.offer import Allocation, AllocatorError
from master.allocator.options import MAX_REFUSE_SECONDS, AllocatorOptions
from master.allocator.quota import Quota

# -- the catalogue --------------------------------------------------------------------------------

ROLES = ("*", "a", "a/x", "a/y", "b", "b/q/r", "c")
QUOTA_ROLES = ("a", "b", "c")


def _dynamic(name: str, value: float, *roles: str) -> dict:
    """A JSON resource reserved dynamically along ``roles`` (a refined stack if several)."""
    return {
        "name": name,
        "type": "SCALAR",
        "scalar": {"value": value},
        "reservations": [{"type": "DYNAMIC", "role": role, "principal": "ops"} for role in roles],
    }


AGENT_KINDS: tuple[Resources, ...] = (
    Resources.parse("cpus:4;mem:4096;disk:1000;ports:[31000-31009]"),
    Resources.parse("cpus:2;mem:1024"),
    Resources.parse("cpus:8;mem:2048;gpus:1"),
    Resources.parse("cpus:4;mem:2048;cpus(a):2;mem(a):512"),
    Resources.parse("cpus:2;mem:1024;cpus(a/x):1;disk(b):100"),
    Resources.parse("cpus:1;mem:512")
    + Resources.from_json([_dynamic("cpus", 2, "b"), _dynamic("mem", 256, "a", "a/x")]),
    Resources.parse("cpus:0.5;mem:64;foo:3"),
    Resources.parse("cpus:1;mem:512;zones:{z1,z2}"),
)

# Minimum allocatable resources a framework may ask for (None: the allocator's default).
MINIMUMS: tuple[tuple[q.Quantities, ...] | None, ...] = (
    None,
    (),
    ({"cpus": 2000},),
    ({"mem": 1_000_000}, {"foo": 1000}),
    ({},),
)

QUOTAS: tuple[Quota, ...] = (
    Quota(),
    Quota({"cpus": 2000}, {}),
    Quota({"cpus": 2000}, {"cpus": 3000}),
    Quota({}, {"cpus": 1000}),
    Quota({"cpus": 1000, "mem": 512_000}, {"cpus": 4000, "mem": 4_000_000}),
    Quota({}, {"mem": 0, "cpus": 0}),
    Quota({"cpus": 6000}, {}),
    # Limits on every resource the catalogue has: a role can use them up entirely.
    Quota({}, {"cpus": 0, "mem": 0, "disk": 0, "gpus": 0, "foo": 0}),
    Quota({"cpus": 1000}, {"cpus": 2000, "mem": 1_000_000, "disk": 0, "gpus": 0, "foo": 0}),
)

OPTIONS: tuple[AllocatorOptions, ...] = (
    AllocatorOptions(),
    AllocatorOptions(min_allocatable_resources=()),
    AllocatorOptions(
        allocation_interval=3.0, fair_sharing_excluded_resource_names=frozenset({"mem"})
    ),
    AllocatorOptions(filter_gpu_resources=False, min_allocatable_resources=({"cpus": 1000},)),
)

REFUSALS = (None, 0, 0.5, 5, 100, -1.0, float("inf"))
STEPS = (0.0, 0.5, 1.0, 2.0, 10.0)
WEIGHTS = (0.5, 1.0, 2.0, 3.0)


# -- operations -----------------------------------------------------------------------------------

_pick = st.integers(0, 7)
_roles = st.lists(st.sampled_from(ROLES), min_size=1, max_size=3, unique=True)


def operations(*, weights: bool = True, quotas: bool = True, bad: bool = True):
    """One operation; ``allocate`` comes up often so that scenarios run many cycles."""
    choices = [
        st.tuples(st.just("add_agent"), st.integers(0, len(AGENT_KINDS) - 1), _pick, _pick),
        st.tuples(st.just("remove_agent"), _pick),
        st.tuples(st.just("update_agent"), _pick, st.integers(0, len(AGENT_KINDS) - 1)),
        st.tuples(st.sampled_from(["activate_agent", "deactivate_agent"]), _pick),
        st.tuples(st.just("clear_agent_filters"), _pick),
        st.tuples(
            st.just("add_framework"),
            _roles,
            st.booleans(),
            st.booleans(),
            st.lists(st.sampled_from(ROLES), max_size=2, unique=True),
            st.integers(0, len(MINIMUMS) - 1),
        ),
        st.tuples(st.just("remove_framework"), _pick),
        st.tuples(st.sampled_from(["activate_framework", "deactivate_framework"]), _pick),
        # A framework failing over (deactivate, activate) or dropping a role and taking it
        # back: both clear its filters, which only shows if the framework is offered again.
        st.tuples(st.just("bounce_framework"), _pick),
        st.tuples(st.just("flip_role"), _pick, _pick),
        st.tuples(
            st.just("update_framework"),
            _pick,
            _roles,
            st.none() | st.booleans(),
            st.none() | st.lists(st.sampled_from(ROLES), max_size=2, unique=True),
        ),
        st.tuples(
            st.sampled_from(["suppress", "revive"]),
            _pick,
            st.none() | st.lists(st.sampled_from(ROLES), max_size=2, unique=True),
        ),
        st.tuples(
            st.just("recover"),
            _pick,
            st.sampled_from(["all", "scalars", "half", "non_scalars"]),
            st.sampled_from(REFUSALS),
        ),
        st.tuples(st.just("allocate"), st.sampled_from(STEPS), st.none() | st.lists(_pick)),
        st.tuples(st.just("allocate"), st.sampled_from(STEPS), st.none()),
    ]
    if weights:
        choices.append(
            st.tuples(st.just("set_weight"), st.sampled_from(ROLES[1:]), st.sampled_from(WEIGHTS))
        )
    if quotas:
        choices.append(
            st.tuples(
                st.just("set_quota"),
                st.sampled_from(QUOTA_ROLES),
                st.integers(0, len(QUOTAS) - 1),
            )
        )
    if bad:
        choices.append(st.tuples(st.just("bad"), st.integers(0, 9), _pick))
    return st.one_of(choices)


def _add_agent():
    return st.tuples(st.just("add_agent"), st.integers(0, len(AGENT_KINDS) - 1), _pick, _pick)


def _add_framework():
    return st.tuples(
        st.just("add_framework"),
        _roles,
        st.booleans(),
        st.just(True),
        st.just([]),
        st.integers(0, len(MINIMUMS) - 1),
    )


def scenarios(min_size: int = 5, max_size: int = 40, **kinds):
    """A few agents and frameworks to start with, then random operations, mostly cycles
    and recoveries (so that there is something to allocate and something held)."""
    setup = st.tuples(
        st.lists(_add_agent(), min_size=1, max_size=4),
        st.lists(_add_framework(), min_size=1, max_size=4),
        st.lists(
            st.tuples(
                st.just("set_quota"),
                st.sampled_from(QUOTA_ROLES),
                st.integers(1, len(QUOTAS) - 1),
            ),
            max_size=2 if kinds.get("quotas", True) else 0,
        ),
    )
    busy = st.one_of(
        st.tuples(st.just("allocate"), st.sampled_from(STEPS), st.none()),
        st.tuples(
            st.just("recover"),
            _pick,
            st.sampled_from(["all", "scalars", "half", "non_scalars"]),
            st.sampled_from(REFUSALS),
        ),
        st.tuples(st.just("recover"), _pick, st.just("all"), st.just(100)),  # a decline
        st.tuples(st.just("bounce_framework"), _pick),
    )
    rest = st.lists(busy | operations(**kinds), min_size=min_size, max_size=max_size)
    return st.tuples(setup, rest).map(
        lambda parts: [*parts[0][0], *parts[0][1], *parts[0][2], *parts[1]]
    )


# -- the model ------------------------------------------------------------------------------------


@dataclass
class ModelFramework:
    roles: set[str]
    gpu: bool
    active: bool
    suppressed: set[str]
    minimums: dict[str, tuple[q.Quantities, ...]]

    def offerable_in(self, role: str) -> bool:
        return self.active and role in self.roles and role not in self.suppressed


@dataclass
class ModelFilter:
    framework_id: str
    role: str
    agent_id: str
    refused: Resources
    expires: float


@dataclass
class Model:
    """What the allocator has been told, kept the obvious way."""

    options: AllocatorOptions
    agents: dict[str, Resources] = field(default_factory=dict)  # id -> total
    inactive_agents: set[str] = field(default_factory=set)
    frameworks: dict[str, ModelFramework] = field(default_factory=dict)
    # (framework, agent) -> resources held (allocated form), frameworks known or not
    held: dict[tuple[str, str], Resources] = field(default_factory=dict)
    filters: list[ModelFilter] = field(default_factory=list)
    quotas: dict[str, Quota] = field(default_factory=dict)
    now: float = 0.0
    agent_serial: int = 0
    framework_serial: int = 0

    # -- reading ----------------------------------------------------------------------------------

    def agent_ids(self) -> list[str]:
        return sorted(self.agents)

    def framework_ids(self) -> list[str]:
        return sorted(self.frameworks)

    def holdings(self) -> list[tuple[str, str]]:
        return sorted(key for key, held in self.held.items() if held)

    def used(self, agent_id: str) -> Resources:
        used = Resources()
        for (_, agent), held in self.held.items():
            if agent == agent_id:
                used = used + held.unallocated()
        return used

    def fits(self) -> set[str]:
        """Agents whose holdings lie within their total."""
        return {agent for agent, total in self.agents.items() if total.contains(self.used(agent))}

    def available(self, agent_id: str) -> Resources:
        used = Resources()
        for (_, agent), held in self.held.items():
            if agent == agent_id:
                used = used + held.unallocated()
        return self.agents[agent_id] - used

    def totals(self) -> q.Quantities:
        totals: q.Quantities = {}
        for total in self.agents.values():
            q.add_into(totals, total.quantities())
        return totals

    def _known_held(self) -> Iterable[Resources]:
        return (held for (fw, _), held in self.held.items() if fw in self.frameworks)

    def consumed(self, role: str) -> q.Quantities:
        """Reservations to ``role``'s subtree plus unreserved resources its subtree holds."""
        consumed: q.Quantities = {}
        for total in self.agents.values():
            reserved = total.filter(lambda r: r.is_reserved() and is_self_or_ancestor(role, r.role))
            q.add_into(consumed, reserved.quantities())
        for held in self._known_held():
            mine = held.filter(
                lambda r: (
                    not r.is_reserved()
                    and r.allocation_role is not None
                    and is_self_or_ancestor(role, r.allocation_role)
                )
            )
            q.add_into(consumed, mine.quantities())
        return consumed

    def required(self) -> q.Quantities:
        """The headroom unmet guarantees require, per name."""
        required: q.Quantities = {}
        for role, quota in self.quotas.items():
            q.add_into(required, q.subtract(quota.guarantees, self.consumed(role)))
        return required

    def quota_slack(self) -> dict[str, int]:
        """Available headroom minus the headroom unmet guarantees require, per name (may be
        negative), computed as the allocator's docs define both."""
        slack = dict(self.totals())
        for held in self._known_held():
            for name, amount in held.quantities().items():
                slack[name] = slack.get(name, 0) - amount
        reserved: q.Quantities = {}
        for total in self.agents.values():
            q.add_into(reserved, total.reserved().quantities())
        for held in self._known_held():
            q.subtract_into(reserved, held.reserved().quantities())
        for name, amount in reserved.items():
            slack[name] = slack.get(name, 0) - amount
        for role, quota in self.quotas.items():
            for name, amount in q.subtract(quota.guarantees, self.consumed(role)).items():
                slack[name] = slack.get(name, 0) - amount
        return slack

    def minimums(self, framework_id: str, role: str) -> tuple[q.Quantities, ...]:
        framework = self.frameworks[framework_id]
        return framework.minimums.get(role, self.options.min_allocatable_resources)

    def live_filters(self, framework_id: str, role: str, agent_id: str) -> list[ModelFilter]:
        return [
            f
            for f in self.filters
            if (f.framework_id, f.role, f.agent_id) == (framework_id, role, agent_id)
            and self.now < f.expires
        ]

    # -- changing ---------------------------------------------------------------------------------

    def drop_filters(self, predicate) -> None:
        self.filters = [f for f in self.filters if not predicate(f)]


def offers_by_key(allocations: list[Allocation]) -> dict[tuple[str, str, str], Resources]:
    """Allocations as a dict keyed by (framework, role, agent); a repeated key is an error."""
    result: dict[tuple[str, str, str], Resources] = {}
    for allocation in allocations:
        key = (allocation.framework_id, allocation.role, allocation.agent_id)
        assert key not in result, f"two allocations for {key} in one cycle"
        result[key] = allocation.resources
    return result


def effective_refusal(refuse_seconds) -> float:
    """What the docs say a decline's refuse_seconds becomes (0: no filter)."""
    if refuse_seconds is None:
        return 0.0
    seconds = float(refuse_seconds)
    if seconds != seconds or seconds < 0 or seconds == float("inf"):
        seconds = 5.0
    return min(seconds, MAX_REFUSE_SECONDS)


# -- the invariants of one cycle ------------------------------------------------------------------


def check_cycle(
    model: Model,
    offers: dict[tuple[str, str, str], Resources],
    candidates: list[str] | None,
    before_consumed: dict[str, q.Quantities],
) -> None:
    """Everything a single cycle's allocations must respect, against the model as it was
    before the cycle (``model.held`` is not yet updated with ``offers``)."""
    options = model.options
    by_agent: dict[str, Resources] = {}
    new_unreserved: dict[str, q.Quantities] = {}
    for (framework_id, role, agent_id), resources in offers.items():
        where = f"offer to {framework_id} in {role} on {agent_id}: {resources}"
        assert resources, f"empty {where}"
        assert resources.allocation_roles() == {role}, f"not allocated to its role: {where}"
        assert agent_id in model.agents, f"unknown agent in {where}"
        assert agent_id not in model.inactive_agents, f"inactive agent in {where}"
        assert candidates is None or agent_id in candidates, f"agent not a candidate: {where}"
        framework = model.frameworks.get(framework_id)
        assert framework is not None, f"unknown framework in {where}"
        assert framework.offerable_in(role), (
            f"framework inactive, unsubscribed or suppressed in the role: {where}"
        )
        if options.filter_gpu_resources and not framework.gpu:
            assert model.agents[agent_id].scalar_millis("gpus") == 0, f"GPU agent: {where}"
        for resource in resources:
            if resource.is_reserved():
                assert is_self_or_ancestor(resource.role, role), (
                    f"reservation to {resource.role} offered in {role}: {where}"
                )
        plain = resources.unallocated()
        minimums = model.minimums(framework_id, role)
        if minimums:
            have = plain.quantities()
            assert any(q.contains(have, minimum) for minimum in minimums), (
                f"below the minimum allocatable {minimums}: {where}"
            )
        for refusal in model.live_filters(framework_id, role, agent_id):
            assert not refusal.refused.contains(plain), (
                f"filtered until {refusal.expires} (now {model.now}) by {refusal.refused}: {where}"
            )
        by_agent[agent_id] = by_agent.get(agent_id, Resources()) + plain
        q.add_into(
            new_unreserved.setdefault(role, {}),
            resources.filter(lambda r: not r.is_reserved()).quantities(),
        )
    for agent_id, offered in by_agent.items():
        available = model.available(agent_id)
        assert available.contains(offered), (
            f"agent {agent_id}: offered {offered} (offers overlap or exceed it), "
            f"but only {available} was free"
        )
    for role, quota in model.quotas.items():
        mine = new_unreserved.get(role, {})
        for name, limit in quota.limits.items():
            if mine.get(name, 0) > 0:
                assert before_consumed[role].get(name, 0) + mine[name] <= limit, (
                    f"role {role} given {mine[name]} of {name} with {before_consumed[role]} "
                    f"consumed, beyond its limit {limit}"
                )


# -- the driver -----------------------------------------------------------------------------------


class Driver:
    """Applies operations to several allocators in lockstep and checks every cycle."""

    def __init__(self, allocators: list, options: AllocatorOptions) -> None:
        self.allocators = allocators
        self.model = Model(options)
        self.cycles: list[dict[tuple[str, str, str], Resources]] = []

    def _each(self, method: str, *args, **kwargs) -> bool:
        """Call ``method`` on every allocator; all must succeed or all raise the same error."""
        outcomes = []
        for allocator in self.allocators:
            try:
                getattr(allocator, method)(*args, **kwargs)
                outcomes.append(None)
            except (AllocatorError, ValueError) as error:
                outcomes.append(type(error))
        names = [type(a).__name__ for a in self.allocators]
        assert len(set(outcomes)) == 1, (
            f"{method}{args}: outcomes differ {dict(zip(names, outcomes, strict=True))}"
        )
        return outcomes[0] is None

    def _agent(self, pick: int) -> str | None:
        ids = self.model.agent_ids()
        return ids[pick % len(ids)] if ids else None

    def _framework(self, pick: int) -> str | None:
        ids = self.model.framework_ids()
        return ids[pick % len(ids)] if ids else None

    def run(self, operations: Iterable[tuple]) -> None:
        for operation in operations:
            self.apply(operation)

    def apply(self, op: tuple) -> None:
        kind = op[0]
        model = self.model
        if kind == "add_agent":
            _, spec, used_pick, role_pick = op
            agent_id = f"ag{model.agent_serial}"
            model.agent_serial += 1
            total = AGENT_KINDS[spec]
            used: dict[str, Resources] = {}
            if used_pick % 3 == 0:
                # Resources in use by a framework: a known one, or one not yet added.
                framework_id = f"fw{(model.framework_serial + used_pick // 3) % 12}"
                role = ROLES[role_pick % len(ROLES)]
                part = total.unreserved().filter(lambda r: r.name in ("cpus", "mem"))
                part = Resources(
                    Resource(r.name, max(1, r.value // 2), r.reservations) for r in part
                )
                used = {framework_id: part.allocated_to(role)}
            if self._each("add_agent", agent_id, total, used=used):
                model.agents[agent_id] = total
                for framework_id, resources in used.items():
                    model.held[(framework_id, agent_id)] = resources
        elif kind == "remove_agent":
            agent_id = self._agent(op[1])
            if agent_id is not None and self._each("remove_agent", agent_id):
                del model.agents[agent_id]
                model.inactive_agents.discard(agent_id)
                for key in [key for key in model.held if key[1] == agent_id]:
                    del model.held[key]
                model.drop_filters(lambda f: f.agent_id == agent_id)
        elif kind == "update_agent":
            agent_id = self._agent(op[1])
            # The new total may be below what is held there (offers outstanding on
            # resources the agent no longer reports): nothing more may be offered there.
            total = AGENT_KINDS[op[2]]
            if agent_id is not None and self._each("update_agent", agent_id, total):
                model.agents[agent_id] = total
        elif kind in ("activate_agent", "deactivate_agent"):
            agent_id = self._agent(op[1])
            if agent_id is not None and self._each(kind, agent_id):
                if kind == "activate_agent":
                    model.inactive_agents.discard(agent_id)
                else:
                    model.inactive_agents.add(agent_id)
        elif kind == "clear_agent_filters":
            agent_id = self._agent(op[1])
            if agent_id is not None and self._each(kind, agent_id):
                model.drop_filters(lambda f: f.agent_id == agent_id)
        elif kind == "add_framework":
            _, roles, gpu, active, suppressed, minimum = op
            framework_id = f"fw{model.framework_serial % 12}"
            model.framework_serial += 1
            if framework_id in model.frameworks:
                return
            minimums = {}
            if MINIMUMS[minimum] is not None:
                minimums = {roles[0]: MINIMUMS[minimum]}
            if self._each(
                "add_framework",
                framework_id,
                list(roles),
                gpu=gpu,
                active=active,
                suppressed_roles=list(suppressed),
                min_allocatable=minimums,
            ):
                model.frameworks[framework_id] = ModelFramework(
                    set(roles), gpu, active, set(suppressed) & set(roles), minimums
                )
        elif kind == "remove_framework":
            framework_id = self._framework(op[1])
            if framework_id is not None and self._each("remove_framework", framework_id):
                del model.frameworks[framework_id]
                for key in [key for key in model.held if key[0] == framework_id]:
                    del model.held[key]
                model.drop_filters(lambda f: f.framework_id == framework_id)
        elif kind in ("activate_framework", "deactivate_framework"):
            framework_id = self._framework(op[1])
            if framework_id is not None and self._each(kind, framework_id):
                framework = model.frameworks[framework_id]
                framework.active = kind == "activate_framework"
                if not framework.active:
                    model.drop_filters(lambda f: f.framework_id == framework_id)
        elif kind == "bounce_framework":
            framework_id = self._framework(op[1])
            if framework_id is not None:
                self.apply(("deactivate_framework", op[1]))
                self.apply(("activate_framework", op[1]))
        elif kind == "flip_role":
            framework_id = self._framework(op[1])
            if framework_id is not None:
                roles = sorted(model.frameworks[framework_id].roles)
                dropped = roles[op[2] % len(roles)]
                kept = [role for role in roles if role != dropped] or [
                    "*" if dropped != "*" else "a"
                ]
                self.apply(("update_framework", op[1], kept, None, None))
                self.apply(("update_framework", op[1], roles, None, None))
        elif kind == "update_framework":
            _, pick, roles, gpu, suppressed = op
            framework_id = self._framework(pick)
            if framework_id is None:
                return
            kwargs = {}
            if gpu is not None:
                kwargs["gpu"] = gpu
            if suppressed is not None:
                kwargs["suppressed_roles"] = list(suppressed)
            if self._each("update_framework", framework_id, list(roles), **kwargs):
                framework = model.frameworks[framework_id]
                removed = framework.roles - set(roles)
                framework.roles = set(roles)
                if gpu is not None:
                    framework.gpu = gpu
                if suppressed is not None:
                    framework.suppressed = set(suppressed) & framework.roles
                else:
                    framework.suppressed &= framework.roles
                model.drop_filters(lambda f: f.framework_id == framework_id and f.role in removed)
        elif kind in ("suppress", "revive"):
            _, pick, roles = op
            framework_id = self._framework(pick)
            if framework_id is None:
                return
            if self._each(kind, framework_id, None if roles is None else list(roles)):
                framework = model.frameworks[framework_id]
                chosen = framework.roles if roles is None else set(roles) & framework.roles
                if kind == "suppress":
                    framework.suppressed |= chosen
                else:
                    framework.suppressed -= chosen
                    model.drop_filters(
                        lambda f: f.framework_id == framework_id and f.role in chosen
                    )
        elif kind == "recover":
            _, pick, how, refuse = op
            holdings = model.holdings()
            if not holdings:
                return
            framework_id, agent_id = holdings[pick % len(holdings)]
            held = model.held[(framework_id, agent_id)]
            if how == "all":
                part = held
            elif how == "scalars":
                part = held.scalars_only()
            elif how == "non_scalars":
                part = held.non_scalars()
            else:  # half of each scalar, at least a thousandth
                part = Resources(
                    Resource(r.name, max(1, r.value // 2), r.reservations, r.allocation_role)
                    for r in held.scalars_only()
                )
            if not part:
                return
            if self._each("recover_resources", framework_id, agent_id, part, refuse, now=model.now):
                left = held - part
                if left:
                    model.held[(framework_id, agent_id)] = left
                else:
                    del model.held[(framework_id, agent_id)]
                seconds = effective_refusal(refuse)
                if seconds > 0 and framework_id in model.frameworks:
                    expires = model.now + max(model.options.allocation_interval, seconds)
                    for role in part.allocation_roles():
                        refused = part.filter(lambda r, role=role: r.allocation_role == role)
                        model.filters.append(
                            ModelFilter(
                                framework_id, role, agent_id, refused.unallocated(), expires
                            )
                        )
        elif kind == "set_weight":
            self._each("set_weight", op[1], op[2])
        elif kind == "set_quota":
            _, role, index = op
            quota = QUOTAS[index]
            if self._each("set_quota", role, quota):
                if quota.is_default():
                    model.quotas.pop(role, None)
                else:
                    model.quotas[role] = quota
        elif kind == "bad":
            self.apply_bad(op[1], op[2])
        elif kind == "allocate":
            _, step, picks = op
            candidates = None
            if picks is not None:
                ids = model.agent_ids()
                candidates = sorted({ids[p % len(ids)] for p in picks}) if ids else []
                if 7 in picks:
                    candidates.append("ghost-agent")  # unknown candidates are ignored
            self.allocate(model.now + step, candidates)
        else:
            raise AssertionError(f"unknown operation {op!r}")

    def set_quota(self, role: str, quota: Quota) -> None:
        assert self._each("set_quota", role, quota)
        if quota.is_default():
            self.model.quotas.pop(role, None)
        else:
            self.model.quotas[role] = quota

    def add_framework(self, framework_id: str, roles: list[str], *, gpu: bool = False, **kwargs):
        assert self._each("add_framework", framework_id, roles, gpu=gpu, **kwargs)
        self.model.frameworks[framework_id] = ModelFramework(
            set(roles),
            gpu,
            kwargs.get("active", True),
            set(kwargs.get("suppressed_roles", ())) & set(roles),
            dict(kwargs.get("min_allocatable") or {}),
        )

    def apply_bad(self, which: int, pick: int) -> None:
        """A request the allocators must refuse with AllocatorError (changing nothing)."""
        agent_id = self._agent(pick)
        framework_id = self._framework(pick)
        calls = [
            ("remove_agent", ("ghost-agent",), {}),
            ("update_agent", ("ghost-agent", AGENT_KINDS[1]), {}),
            ("deactivate_agent", ("ghost-agent",), {}),
            ("remove_framework", ("ghost-fw",), {}),
            ("suppress", ("ghost-fw",), {}),
            ("revive", ("ghost-fw",), {}),
            ("update_framework", ("ghost-fw", ["a"]), {}),
            ("set_weight", ("a", 0.0), {}),
        ]
        if agent_id is not None:
            calls.append(("add_agent", (agent_id, AGENT_KINDS[0]), {}))
        if framework_id is not None:
            calls.append(("add_framework", (framework_id, ["a"]), {}))
        method, args, kwargs = calls[which % len(calls)]
        outcomes = []
        for allocator in self.allocators:
            try:
                getattr(allocator, method)(*args, **kwargs)
                outcomes.append(None)
            except AllocatorError:
                outcomes.append(AllocatorError)
        assert outcomes == [AllocatorError] * len(self.allocators), (
            f"{method}{args} should raise AllocatorError: {outcomes}"
        )

    def allocate(self, now: float, candidates: list[str] | None = None) -> dict:
        model = self.model
        model.now = now
        before_consumed = {role: model.consumed(role) for role in model.quotas}
        before_slack = model.quota_slack()
        before_required = model.required()
        before_fits = model.fits()
        results = [offers_by_key(a.allocate(now, candidates)) for a in self.allocators]
        first = results[0]
        for allocator, other in zip(self.allocators[1:], results[1:], strict=True):
            assert other == first, _difference(
                type(self.allocators[0]).__name__, first, type(allocator).__name__, other
            )
        check_cycle(model, first, candidates, before_consumed)
        for (framework_id, _, agent_id), resources in first.items():
            key = (framework_id, agent_id)
            model.held[key] = model.held.get(key, Resources()) + resources
        assert before_fits <= model.fits(), (
            f"agents {sorted(before_fits - model.fits())} now hold more than their total"
        )
        after_slack = model.quota_slack()
        if before_fits == set(model.agents):
            # Unmet guarantees keep their headroom: what is free and unreserved minus what
            # they still need does not go (further) below zero. (Not checked while an agent
            # holds more than its total: the headroom figures then count the excess.)
            for name in before_required:
                before, after = before_slack.get(name, 0), after_slack.get(name, 0)
                assert after >= min(0, before), (
                    f"quota headroom of {name} eaten: available minus required went from "
                    f"{before} to {after}"
                )
        self.cycles.append(first)
        return first


def _difference(name_a: str, a: dict, name_b: str, b: dict) -> str:
    lines = [f"{name_a} and {name_b} allocate differently:"]
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            lines.append(f"  {key}: {name_a} {a.get(key)} / {name_b} {b.get(key)}")
    return "\n".join(lines)
