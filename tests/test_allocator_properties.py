"""Property tests over random clusters and event sequences.

The workhorse is ``allocator_scenarios.Driver``: it runs the fast HierarchicalAllocator and
the plain ReferenceAllocator in lockstep (same options, same seed), requires identical
allocations after every cycle, and checks every cycle against a model of what the allocator
was told: nothing offered twice or beyond an agent's free resources; reservations only to
their role or its descendants; GPU agents only to GPU frameworks; inactive, unsubscribed or
suppressed frameworks, inactive and non-candidate agents get nothing; decline filters hold
until they expire; minimum allocatable resources; quota limits; headroom for guarantees.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral import quantities as q
from corral.resources import Resources
from master.allocator.hierarchical import HierarchicalAllocator
from master.allocator.options import MAX_REFUSE_SECONDS, AllocatorOptions
from master.allocator.quota import Quota
from master.allocator.reference import ReferenceAllocator
from tests.allocator_scenarios import (
    AGENT_KINDS,
    OPTIONS,
    QUOTA_ROLES,
    REFUSALS,
    ROLES,
    Driver,
    effective_refusal,
    scenarios,
)

CPU = 1000
FAST = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

options_index = st.integers(0, len(OPTIONS) - 1)
seeds = st.integers(0, 2**32 - 1)


def both(options: AllocatorOptions, seed: int) -> Driver:
    return Driver(
        [HierarchicalAllocator(options, seed=seed), ReferenceAllocator(options, seed=seed)],
        options,
    )


# -- the differential property, with every invariant checked on the way ---------------------------


@FAST
@given(options_index, seeds, scenarios(min_size=10, max_size=50))
def test_fast_and_reference_allocate_alike(option, seed, operations):
    driver = both(OPTIONS[option], seed)
    driver.run(operations)


@pytest.mark.slow
@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(options_index, seeds, scenarios(min_size=40, max_size=120))
def test_fast_and_reference_allocate_alike_over_long_runs(option, seed, operations):
    driver = both(OPTIONS[option], seed)
    driver.run(operations)
    driver.apply(("allocate", 1000.0, None))  # every filter has expired by now


def test_the_differential_check_can_fail():
    """Two allocators with different seeds shuffle agents differently: the driver notices."""
    options = AllocatorOptions()
    driver = Driver(
        [HierarchicalAllocator(options, seed=1), ReferenceAllocator(options, seed=2)], options
    )
    driver.run([("add_agent", 1, 1, 0) for _ in range(6)])
    driver.run([("add_framework", [role], False, True, [], 0) for role in ("a", "b", "c")])
    with pytest.raises(AssertionError, match="allocate differently"):
        for step in range(5):
            driver.apply(("allocate", float(step), None))
            driver.apply(("recover", step, "all", None))


# -- focused properties (the driver checks each of them on every cycle) ---------------------------


@FAST
@given(seeds, scenarios(min_size=10, max_size=40, weights=False, bad=False))
def test_suppressed_and_inactive_frameworks_get_nothing(seed, operations):
    driver = both(AllocatorOptions(), seed)
    suppress_all = [("suppress", pick, None) for pick in range(3)]
    driver.run(operations[:8] + suppress_all + operations[8:])
    # And every framework suppressed or deactivated at the end gets nothing from then on.
    for pick in range(len(driver.model.frameworks)):
        driver.apply(("suppress", pick, None))
    assert driver.allocate(driver.model.now + 1000.0) == {}


@FAST
@given(seeds, scenarios(min_size=10, max_size=40, bad=False))
def test_reservations_go_only_to_their_role_and_its_descendants(seed, operations):
    driver = both(AllocatorOptions(min_allocatable_resources=()), seed)
    reserved_kinds = [i for i, kind in enumerate(AGENT_KINDS) if kind.has_reserved()]
    driver.run([("add_agent", kind, 1, 0) for kind in reserved_kinds])
    driver.run(operations)  # the driver checks every reserved resource offered
    # Then a fresh GPU-capable framework in every role, and a cycle after all filters expire:
    # every free reservation on an active agent now has a taker in its own role.
    for index, role in enumerate(ROLES):
        driver.add_framework(f"taker{index}", [role], gpu=True)
    driver.allocate(driver.model.now + 10 * MAX_REFUSE_SECONDS)
    for agent_id in driver.model.agent_ids():
        if agent_id not in driver.model.inactive_agents:
            left = driver.model.available(agent_id).reserved()
            assert not left, f"reservations {left} on {agent_id} were offered to nobody"


@FAST
@given(seeds, st.data())
def test_quota_limits_are_never_exceeded(seed, data):
    """Every quota role has limits (and maybe a guarantee below them); the driver checks on
    every cycle that a role given unreserved resources stays within its limits."""
    driver = both(AllocatorOptions(min_allocatable_resources=()), seed)
    for role in QUOTA_ROLES:
        limits = data.draw(
            st.fixed_dictionaries(
                {"cpus": st.integers(0, 6).map(lambda n: n * CPU)},
                optional={"mem": st.integers(0, 4).map(lambda n: n * 512_000)},
            ),
            label=f"limits of {role}",
        )
        guarantee = data.draw(st.integers(0, limits["cpus"] // CPU), label="guarantee") * CPU
        driver.set_quota(role, Quota({"cpus": guarantee} if guarantee else {}, limits))
    driver.run(data.draw(scenarios(min_size=10, max_size=40, quotas=False, bad=False)))
    # A flood of new agents: the limits must still hold.
    for kind in range(len(AGENT_KINDS)):
        driver.apply(("add_agent", kind, 1, 0))
    driver.allocate(driver.model.now + 10 * MAX_REFUSE_SECONDS)


@FAST
@given(seeds, st.data())
def test_quota_guarantees_are_met_when_the_cluster_can_meet_them(seed, data):
    """All agents active, no GPUs, no declines, frameworks that take what they get, and
    guarantees (whole cpus, mem in 64 MB steps) that fit in the free unreserved resources:
    after one cycle every guarantee is met (reservations to the role count towards it)."""
    options = AllocatorOptions()
    driver = both(options, seed)
    kinds = [i for i, kind in enumerate(AGENT_KINDS) if not kind.scalar("gpus")]
    kinds = [i for i in kinds if AGENT_KINDS[i].scalar_millis("cpus") % CPU == 0]
    for kind in data.draw(st.lists(st.sampled_from(kinds), min_size=1, max_size=6)):
        driver.apply(("add_agent", kind, 1, 0))  # no resources in use
    roles = data.draw(st.lists(st.sampled_from(("a", "b", "c", "d", "e")), min_size=1, max_size=4))
    for index, role in enumerate(roles):
        driver.add_framework(f"f{index}", [role])
        if data.draw(st.booleans(), label="a framework in a non-quota role too"):
            driver.add_framework(f"other{index}", [f"other{index}"])
    free: dict[str, int] = {}
    for agent_id in driver.model.agents:
        q.add_into(free, driver.model.available(agent_id).unreserved().quantities())
    guarantees = {}
    for role in sorted(set(roles) & set(QUOTA_ROLES)):
        cpus = data.draw(st.integers(0, free.get("cpus", 0) // CPU), label="cpus") * CPU
        mem = data.draw(st.integers(0, free.get("mem", 0) // 64_000), label="mem") * 64_000
        guarantee = {name: v for name, v in {"cpus": cpus, "mem": mem}.items() if v}
        if guarantee:
            guarantees[role] = guarantee
            q.subtract_into(free, guarantee)
            driver.set_quota(role, Quota(guarantee, {}))
    driver.allocate(1.0)
    for role, guarantee in guarantees.items():
        consumed = driver.model.consumed(role)
        assert q.contains(consumed, guarantee), (role, guarantee, consumed, driver.cycles)


@FAST
@given(seeds, scenarios(min_size=10, max_size=50, weights=False))
def test_filters_are_honoured_until_they_expire(seed, operations):
    driver = both(AllocatorOptions(allocation_interval=2.0), seed)
    # Many declines with long filters, so filters are in force at most cycles.
    declines = [("recover", pick, "all", 100) for pick in range(4)]
    driver.run(operations[:10] + declines + operations[10:] + declines)
    driver.apply(("allocate", 1.0, None))


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(REFUSALS),
    st.sampled_from([0.5, 1.0, 3.0]),
    st.floats(0, 10_000, allow_nan=False),
    st.lists(st.floats(0, 20, allow_nan=False), min_size=1, max_size=6),
)
def test_a_declined_agent_comes_back_exactly_when_its_filter_expires(
    refuse, interval, declined_at, waits
):
    options = AllocatorOptions(allocation_interval=interval)
    for cls in (HierarchicalAllocator, ReferenceAllocator):
        allocator = cls(options)
        allocator.add_agent("a1", Resources.parse("cpus:2;mem:256"))
        allocator.add_framework("f1", ["r"])
        (offer,) = allocator.allocate(declined_at)
        allocator.recover_resources("f1", "a1", offer.resources, refuse, now=declined_at)
        seconds = effective_refusal(refuse)
        expires = declined_at + max(interval, seconds) if seconds > 0 else declined_at
        now = declined_at
        for wait in waits:
            now += wait
            offered = allocator.allocate(now)
            assert bool(offered) == (now >= expires), (cls.__name__, now, expires)
            if offered:
                break


@FAST
@given(seeds, scenarios(min_size=10, max_size=40))
def test_cycles_over_candidates_touch_only_candidates(seed, operations):
    driver = both(AllocatorOptions(), seed)
    for operation in operations:
        if operation[0] == "allocate":
            operation = ("allocate", operation[1], [0, 2])
        driver.apply(operation)
