"""The allocator's rules, one by one, each checked on both the fast HierarchicalAllocator and
the plain ReferenceAllocator (they must agree with each other and with docs/allocator.md)."""

from __future__ import annotations

import pytest

from corral.resources import Resources
from master.allocator.hierarchical import HierarchicalAllocator
from master.allocator.offer import AllocatorError
from master.allocator.options import MAX_REFUSE_SECONDS, AllocatorOptions
from master.allocator.quota import InvalidQuota, Quota
from master.allocator.reference import ReferenceAllocator

CPU = 1000  # quantities are in thousandths
MB = 1000
DAY = 24 * 3600.0


def R(text: str) -> Resources:
    return Resources.parse(text)


@pytest.fixture(params=[HierarchicalAllocator, ReferenceAllocator], ids=["fast", "reference"])
def make(request):
    """A factory of allocators of the class under test: ``make(options=None, seed=0)``."""

    def build(options: AllocatorOptions | None = None, seed: int = 0):
        return request.param(options, seed=seed)

    return build


def cycle(allocator, now: float = 0.0, candidates=None) -> dict[tuple[str, str, str], Resources]:
    """One cycle's allocations, keyed by (framework, role, agent), in unallocated form."""
    result = {}
    for allocation in allocator.allocate(now, candidates):
        key = (allocation.framework_id, allocation.role, allocation.agent_id)
        assert key not in result, f"{key} allocated twice in one cycle"
        assert allocation.resources.allocation_roles() == {allocation.role}
        result[key] = allocation.resources.unallocated()
    return result


def given_to(offers, framework_id: str) -> Resources:
    """Everything a cycle gave ``framework_id``, in all roles and on all agents."""
    total = Resources()
    for (framework, _, _), resources in offers.items():
        if framework == framework_id:
            total = total + resources
    return total


def by_agent(offers) -> dict[str, Resources]:
    result: dict[str, Resources] = {}
    for (_, _, agent), resources in offers.items():
        result[agent] = result.get(agent, Resources()) + resources
    return result


def by_role(offers) -> dict[str, Resources]:
    result: dict[str, Resources] = {}
    for (_, role, _), resources in offers.items():
        result[role] = result.get(role, Resources()) + resources
    return result


def decline(allocator, offers, framework_id: str, refuse_seconds=None, now: float = 0.0):
    """The framework gives back everything a cycle offered it."""
    for (framework, role, agent), resources in offers.items():
        if framework == framework_id:
            allocator.recover_resources(
                framework, agent, resources.allocated_to(role), refuse_seconds, now=now
            )


# -- agents ---------------------------------------------------------------------------------------


def test_a_lone_framework_is_offered_the_whole_agent(make):
    a = make()
    a.add_agent("a1", R("cpus:4;mem:4096;disk:100;ports:[31000-31009];zones:{z1,z2}"))
    a.add_framework("f1", ["*"])
    assert cycle(a) == {
        ("f1", "*", "a1"): R("cpus:4;mem:4096;disk:100;ports:[31000-31009];zones:{z1,z2}")
    }


def test_offered_resources_are_held_and_not_offered_again(make):
    a = make()
    a.add_agent("a1", R("cpus:4;mem:4096"))
    a.add_framework("f1", ["r"])
    a.add_framework("f2", ["r"])
    first = cycle(a)
    assert list(first) == [("f1", "r", "a1")]
    assert cycle(a, 1.0) == {}
    assert cycle(a, 2.0) == {}


def test_agents_added_later_are_offered_in_the_next_cycle(make):
    a = make()
    a.add_framework("f1", ["r"])
    assert cycle(a) == {}
    a.add_agent("a1", R("cpus:1;mem:128"))
    a.add_agent("a2", R("cpus:2;mem:256"))
    assert cycle(a, 1.0) == {
        ("f1", "r", "a1"): R("cpus:1;mem:128"),
        ("f1", "r", "a2"): R("cpus:2;mem:256"),
    }


def test_removing_an_agent_drops_what_was_allocated_on_it(make):
    a = make()
    a.add_agent("a1", R("cpus:8;mem:1024"))
    a.add_framework("f1", ["r"])
    assert list(cycle(a)) == [("f1", "r", "a1")]
    a.add_framework("f2", ["s"])
    a.add_agent("a2", R("cpus:1;mem:128"))
    a.remove_agent("a1")
    # f1 no longer holds a1's 8 cpus: both roles are at zero and r (one allocation) is
    # behind s (none) only by count; s gets a2. Then a3 goes to r, not to s (1 cpu held).
    assert list(cycle(a, 1.0)) == [("f2", "s", "a2")]
    a.add_agent("a3", R("cpus:1;mem:128"))
    assert list(cycle(a, 2.0)) == [("f1", "r", "a3")]
    with pytest.raises(AllocatorError):
        a.remove_agent("a1")


def test_update_agent_grows_and_shrinks_the_free_pool(make):
    a = make()
    a.add_agent("a1", R("cpus:2;mem:512"))
    a.add_framework("f1", ["r"])
    assert cycle(a) == {("f1", "r", "a1"): R("cpus:2;mem:512")}
    a.update_agent("a1", R("cpus:6;mem:512;disk:50"))
    assert cycle(a, 1.0) == {("f1", "r", "a1"): R("cpus:4;disk:50")}
    a.recover_resources("f1", "a1", R("cpus:6;mem:512;disk:50").allocated_to("r"))
    a.update_agent("a1", R("cpus:1;mem:64"))
    assert cycle(a, 2.0) == {("f1", "r", "a1"): R("cpus:1;mem:64")}


def test_agents_alike_are_each_offered_their_own_total_through_updates(make):
    """Agents with equal totals (parsed apart, as a master holds them) are offered alike, and
    one's update or removal changes nothing for the others."""
    a = make()
    for agent_id in ("a1", "a2", "a3"):
        a.add_agent(agent_id, R("cpus:2;mem:512;ports:[31000-31009]"))
    a.add_framework("f1", ["r"])
    whole = R("cpus:2;mem:512;ports:[31000-31009]")
    assert cycle(a) == {("f1", "r", agent_id): whole for agent_id in ("a1", "a2", "a3")}
    for agent_id in ("a1", "a2", "a3"):
        a.recover_resources("f1", agent_id, whole.allocated_to("r"))
    a.update_agent("a1", R("cpus:4;mem:512"))
    a.remove_agent("a2")
    a.add_agent("a4", R("cpus:2;mem:512;ports:[31000-31009]"))
    a.add_framework("f2", ["s"])
    offers = cycle(a, 1.0)
    assert by_agent(offers) == {"a1": R("cpus:4;mem:512"), "a3": whole, "a4": whole}
    a.update_agent("a3", R("cpus:4;mem:512"))  # now alike to a1, and a3 still holds its old total
    assert by_agent(cycle(a, 2.0)) == {"a3": R("cpus:2")}


def test_agents_with_nothing_free_are_passed_over(make):
    a = make()
    a.add_framework("f1", ["r"])
    a.add_agent("empty", Resources())
    a.add_agent("full", R("cpus:2;mem:512"), used={"f1": R("cpus:2;mem:512").allocated_to("r")})
    a.add_agent("a1", R("cpus:1;mem:128"))
    assert cycle(a) == {("f1", "r", "a1"): R("cpus:1;mem:128")}
    a.recover_resources("f1", "full", R("cpus:2;mem:512").allocated_to("r"))
    assert cycle(a, 1.0) == {("f1", "r", "full"): R("cpus:2;mem:512")}


def test_update_agent_with_new_reservations_keeps_them_for_their_role(make):
    a = make()
    a.add_agent("a1", R("cpus:4;mem:512"))
    a.add_framework("s", ["sales"])
    a.update_agent("a1", R("cpus:2;mem:512;cpus(eng):2"))
    assert cycle(a) == {("s", "sales", "a1"): R("cpus:2;mem:512")}
    a.add_framework("e", ["eng/web"])
    assert cycle(a, 1.0) == {("e", "eng/web", "a1"): R("cpus(eng):2")}


def test_update_agent_with_gpus_keeps_it_from_frameworks_without_gpu(make):
    a = make()
    a.add_agent("a1", R("cpus:4;mem:512"))
    a.add_framework("plain", ["r"])
    a.update_agent("a1", R("cpus:4;mem:512;gpus:2"))
    assert cycle(a) == {}
    a.update_framework("plain", ["r"], gpu=True)
    assert cycle(a, 1.0) == {("plain", "r", "a1"): R("cpus:4;mem:512;gpus:2")}


def test_inactive_agents_are_not_offered_until_activated(make):
    a = make()
    a.add_agent("a1", R("cpus:2;mem:512"))
    a.add_agent("a2", R("cpus:3;mem:512"))
    a.add_framework("f1", ["r"])
    a.deactivate_agent("a1")
    assert cycle(a) == {("f1", "r", "a2"): R("cpus:3;mem:512")}
    assert cycle(a, 1.0) == {}
    a.activate_agent("a1")
    assert cycle(a, 2.0) == {("f1", "r", "a1"): R("cpus:2;mem:512")}


def test_inactive_agents_count_in_the_cluster_totals_for_shares(make):
    # Shares are computed against all agents, active or not (docs: "cluster totals of all
    # agents, active or not"). With the inactive a2 counted, role a holds 5 % of cpus and
    # role b 15 % of mem, so a goes first; counting active agents only, b would go first.
    a = make()
    a.add_framework("fa", ["a"])
    a.add_framework("fb", ["b"])
    a.add_agent(
        "a1",
        R("cpus:10;mem:100"),
        used={"fa": R("cpus:5").allocated_to("a"), "fb": R("mem:30").allocated_to("b")},
    )
    a.add_agent("a2", R("cpus:90;mem:100"))
    a.deactivate_agent("a2")
    assert cycle(a) == {("fa", "a", "a1"): R("cpus:5;mem:70")}


# -- frameworks -----------------------------------------------------------------------------------


def test_an_inactive_framework_gets_nothing_until_activated(make):
    a = make()
    a.add_agent("a1", R("cpus:2;mem:512"))
    a.add_framework("f1", ["r"], active=False)
    assert cycle(a) == {}
    a.activate_framework("f1")
    assert cycle(a, 1.0) == {("f1", "r", "a1"): R("cpus:2;mem:512")}


def test_a_deactivated_framework_gets_nothing_but_keeps_what_it_holds(make):
    a = make()
    a.add_agent("a1", R("cpus:2;mem:512"))
    a.add_framework("f1", ["r"])
    a.add_framework("f2", ["r"])
    assert cycle(a) == {("f1", "r", "a1"): R("cpus:2;mem:512")}
    a.deactivate_framework("f1")
    a.add_agent("a2", R("cpus:1;mem:128"))
    assert cycle(a, 1.0) == {("f2", "r", "a2"): R("cpus:1;mem:128")}
    a.recover_resources("f1", "a1", R("cpus:1").allocated_to("r"))
    assert cycle(a, 2.0) == {("f2", "r", "a1"): R("cpus:1")}


def test_removing_a_framework_frees_everything_it_held(make):
    a = make()
    a.add_agent("a1", R("cpus:2;mem:512"))
    a.add_agent("a2", R("cpus:1;mem:256"))
    a.add_framework("f1", ["r"])
    assert set(cycle(a)) == {("f1", "r", "a1"), ("f1", "r", "a2")}
    a.remove_framework("f1")
    a.add_framework("f2", ["s"])
    assert cycle(a, 1.0) == {
        ("f2", "s", "a1"): R("cpus:2;mem:512"),
        ("f2", "s", "a2"): R("cpus:1;mem:256"),
    }
    with pytest.raises(AllocatorError):
        a.remove_framework("f1")


def test_a_framework_in_several_roles_is_offered_in_each(make):
    a = make()
    a.add_agent("a1", R("cpus:2;mem:512"))
    a.add_agent("a2", R("cpus:2;mem:512"))
    a.add_framework("f1", ["a", "b"])
    offers = cycle(a)
    # Roles a and b both start at share zero: each gets one of the two agents.
    assert sorted(role for (_, role, _) in offers) == ["a", "b"]
    assert given_to(offers, "f1") == R("cpus:4;mem:1024")


def test_update_framework_changes_roles(make):
    a = make()
    a.add_agent("a1", R("cpus:2;mem:512"))
    a.add_framework("f1", ["a"])
    assert cycle(a) == {("f1", "a", "a1"): R("cpus:2;mem:512")}
    a.update_framework("f1", ["b"])
    a.add_agent("a2", R("cpus:1;mem:128"))
    assert cycle(a, 1.0) == {("f1", "b", "a2"): R("cpus:1;mem:128")}
    # What it still holds in a can be recovered, and is not offered in a again.
    a.recover_resources("f1", "a1", R("cpus:2;mem:512").allocated_to("a"))
    assert cycle(a, 2.0) == {("f1", "b", "a1"): R("cpus:2;mem:512")}


def test_update_framework_sets_gpu_and_suppressed_roles(make):
    a = make()
    a.add_agent("g1", R("cpus:2;mem:512;gpus:1"))
    a.add_framework("f1", ["a", "b"])
    assert cycle(a) == {}
    a.update_framework("f1", ["a", "b"], gpu=True, suppressed_roles=["a"])
    assert cycle(a, 1.0) == {("f1", "b", "g1"): R("cpus:2;mem:512;gpus:1")}


def test_adding_a_framework_twice_is_refused(make):
    a = make()
    a.add_framework("f1", ["a"])
    with pytest.raises(AllocatorError):
        a.add_framework("f1", ["b"])
    a.add_agent("a1", R("cpus:1;mem:128"))
    assert cycle(a) == {("f1", "a", "a1"): R("cpus:1;mem:128")}


# -- DRF ------------------------------------------------------------------------------------------


def test_the_role_with_the_lowest_dominant_share_goes_first(make):
    a = make()
    a.add_framework("fa", ["a"])
    a.add_framework("fb", ["b"])
    a.add_agent(
        "a1",
        R("cpus:10;mem:1000"),
        used={"fa": R("cpus:3").allocated_to("a"), "fb": R("mem:200").allocated_to("b")},
    )
    a.add_agent("a2", R("cpus:10;mem:1000"))
    # a: 3/20 cpus = 15 %; b: 200/2000 mem = 10 %: b first, and takes a whole agent.
    offers = cycle(a, candidates=["a2"])
    assert offers == {("fb", "b", "a2"): R("cpus:10;mem:1000")}


def test_ties_go_to_fewer_allocations_then_to_the_name(make):
    a = make()
    a.add_agent("a1", R("cpus:1;mem:128"))
    a.add_framework("fb", ["r"])
    a.add_framework("fa", ["r"])
    first = cycle(a)
    assert first == {("fa", "r", "a1"): R("cpus:1;mem:128")}  # both at zero: by name
    decline(a, first, "fa")  # fa is back at share zero, but with one allocation counted
    assert cycle(a, 1.0) == {("fb", "r", "a1"): R("cpus:1;mem:128")}


def test_allocation_counts_restart_when_a_framework_leaves_a_role(make):
    a = make()
    a.add_agent("a1", R("cpus:1;mem:128"))
    a.add_framework("fb", ["r"])
    a.add_framework("fa", ["r"])
    first = cycle(a)
    assert first == {("fa", "r", "a1"): R("cpus:1;mem:128")}
    decline(a, first, "fa")
    # fa leaves r (it holds nothing there) and comes back: a new node, its count at zero.
    a.update_framework("fa", ["s"])
    a.update_framework("fa", ["r"])
    assert cycle(a, 1.0) == {("fa", "r", "a1"): R("cpus:1;mem:128")}


def test_allocation_counts_restart_when_a_role_leaves_the_sorter(make):
    a = make()
    a.add_agent("a1", R("cpus:1;mem:128"))
    a.add_framework("f1", ["b"])
    a.add_framework("f2", ["a"])
    first = cycle(a)
    assert first == {("f2", "a", "a1"): R("cpus:1;mem:128")}
    decline(a, first, "f2")
    a.remove_framework("f2")  # role a has no framework left: it leaves the role sorter
    a.add_framework("f3", ["a"])
    assert cycle(a, 1.0) == {("f3", "a", "a1"): R("cpus:1;mem:128")}


def test_role_ties_go_to_fewer_allocations_then_to_the_name(make):
    a = make()
    a.add_agent("a1", R("cpus:1;mem:128"))
    a.add_framework("f1", ["b"])
    a.add_framework("f2", ["a"])
    first = cycle(a)
    assert first == {("f2", "a", "a1"): R("cpus:1;mem:128")}
    decline(a, first, "f2")
    assert cycle(a, 1.0) == {("f1", "b", "a1"): R("cpus:1;mem:128")}


def test_fair_sharing_excluded_resources_do_not_count_in_shares(make):
    def setup(options):
        a = make(options)
        a.add_framework("fa", ["a"])
        a.add_framework("fb", ["b"])
        a.add_agent(
            "a1",
            R("cpus:10;mem:1000"),
            used={"fa": R("mem:900;cpus:1").allocated_to("a"), "fb": R("cpus:2").allocated_to("b")},
        )
        a.add_agent("a2", R("cpus:1;mem:100"))
        return cycle(a, candidates=["a2"])

    # Counting mem, a holds 82 % of it and b goes first; without mem, a holds 9 % of cpus.
    assert list(setup(AllocatorOptions())) == [("fb", "b", "a2")]
    excluded = AllocatorOptions(fair_sharing_excluded_resource_names=frozenset({"mem"}))
    assert list(setup(excluded)) == [("fa", "a", "a2")]


def test_frameworks_within_a_role_are_ordered_by_their_own_share(make):
    a = make()
    a.add_framework("f1", ["r"])
    a.add_framework("f2", ["r"])
    a.add_agent("a1", R("cpus:4;mem:400"), used={"f1": R("cpus:1").allocated_to("r")})
    a.add_agent("a2", R("cpus:4;mem:400"))
    assert list(cycle(a, candidates=["a2"])) == [("f2", "r", "a2")]


# -- hierarchical roles and weights ---------------------------------------------------------------


def test_sibling_roles_share_their_parents_allocation(make):
    a = make()
    for framework, role in (("f1", "eng/web"), ("f2", "eng/db"), ("f3", "sales")):
        a.add_framework(framework, [role])
    for i in range(4):
        a.add_agent(f"a{i}", R("cpus:1;mem:100"))
    offers = cycle(a)
    # eng's subtree competes with sales as one node: sales gets half of the agents.
    assert {role: int(r.scalar("cpus")) for role, r in by_role(offers).items()} == {
        "eng/db": 1,
        "eng/web": 1,
        "sales": 2,
    }


def test_a_role_with_weight_two_gets_twice_the_share(make):
    a = make()
    a.set_weight("eng", 2.0)
    a.add_framework("web", ["eng/web"])
    a.add_framework("crm", ["sales"])
    held = {"web": 0.0, "crm": 0.0}
    for round_ in range(3):  # several cycles, four new agents each; nothing is given back
        for i in range(4):
            a.add_agent(f"a{round_}-{i}", R("cpus:1;mem:100"))
        offers = cycle(a, float(round_))
        for framework in held:
            held[framework] += given_to(offers, framework).scalar("cpus")
    assert held == {"web": 8.0, "crm": 4.0}


def test_changing_a_weight_changes_the_order(make):
    a = make()
    a.add_framework("fa", ["a"])
    a.add_framework("fb", ["b"])
    a.add_agent(
        "a1",
        R("cpus:10;mem:1000"),
        used={"fa": R("cpus:3").allocated_to("a"), "fb": R("cpus:2").allocated_to("b")},
    )
    a.add_agent("a2", R("cpus:1;mem:100"))
    assert list(cycle(a, candidates=["a2"])) == [("fb", "b", "a2")]
    a.recover_resources("fb", "a2", R("cpus:1;mem:100").allocated_to("b"))
    a.set_weight("a", 2.0)  # a: 15 % / 2 now beats b: 10 %
    assert list(cycle(a, 1.0, candidates=["a2"])) == [("fa", "a", "a2")]


def test_set_weight_refuses_non_positive_weights(make):
    a = make()
    for weight in (0.0, -1.0, float("nan")):
        with pytest.raises(AllocatorError):
            a.set_weight("eng", weight)


def test_a_role_with_frameworks_and_children_competes_with_its_children(make):
    a = make()
    a.add_framework("parent", ["eng"])
    a.add_framework("child", ["eng/web"])
    a.add_framework("other", ["sales"])
    a.add_agent("a1", R("cpus:1;mem:100"), used={"parent": R("cpus:1").allocated_to("eng")})
    for i in range(2, 5):
        a.add_agent(f"a{i}", R("cpus:1;mem:100"))
    # eng's subtree already holds 1: sales goes first, then eng/web (eng/. has 1 already).
    offers = cycle(a, candidates=["a2", "a3"])
    assert sorted(role for (_, role, _) in offers) == ["eng/web", "sales"]


# -- reservations ---------------------------------------------------------------------------------


def test_static_reservations_go_only_to_the_role_and_its_descendants(make):
    a = make()
    a.add_agent("a1", R("cpus:1;mem:128;cpus(eng):2;mem(eng):256"))
    a.add_framework("s", ["sales"])
    assert cycle(a) == {("s", "sales", "a1"): R("cpus:1;mem:128")}
    a.add_framework("w", ["eng/web"])
    assert cycle(a, 1.0) == {("w", "eng/web", "a1"): R("cpus(eng):2;mem(eng):256")}


def test_a_reservation_to_a_child_is_not_offered_to_its_parent(make):
    a = make()
    a.add_agent("a1", R("cpus(eng/web):2;mem(eng/web):256"))
    a.add_framework("e", ["eng"])
    a.add_framework("o", ["engineering"])
    assert cycle(a) == {}
    a.add_framework("w", ["eng/web/api"])
    assert cycle(a, 1.0) == {("w", "eng/web/api", "a1"): R("cpus(eng/web):2;mem(eng/web):256")}


def test_dynamic_reservations_from_json_go_only_to_their_role(make):
    reserved = Resources.from_json(
        [
            {
                "name": "cpus",
                "type": "SCALAR",
                "scalar": {"value": 2},
                "reservations": [{"type": "DYNAMIC", "role": "b", "principal": "ops"}],
            },
            {
                "name": "mem",
                "type": "SCALAR",
                "scalar": {"value": 256},
                "reservations": [
                    {"type": "STATIC", "role": "a"},
                    {"type": "DYNAMIC", "role": "a/x"},
                ],
            },
        ]
    )
    a = make()
    a.add_agent("a1", reserved + R("cpus:1;mem:64"))
    a.add_framework("fa", ["a"])  # a/x's refined reservation is not a's
    a.add_framework("fb", ["b"])
    a.add_framework("fx", ["a/x"])
    offers = cycle(a)
    assert given_to(offers, "fb").reserved() == reserved.reserved("b")
    assert given_to(offers, "fx").reserved() == reserved.reserved("a/x")
    assert not given_to(offers, "fa").reserved()
    assert sum((r for r in offers.values()), Resources()) == reserved + R("cpus:1;mem:64")


def test_unused_reservations_are_held_back_from_other_roles(make):
    a = make()
    a.add_agent("a1", R("cpus:4;mem:512;cpus(eng):4"))
    a.add_framework("s", ["sales"])
    offers = cycle(a)
    assert offers == {("s", "sales", "a1"): R("cpus:4;mem:512")}
    assert cycle(a, 1.0) == {}


# -- quota ----------------------------------------------------------------------------------------


def test_quota_guarantee_is_met_first_even_for_a_role_with_a_higher_share(make):
    a = make()
    a.set_quota("q", Quota({"cpus": 4 * CPU}, {"cpus": 4 * CPU, "mem": 4096 * MB}))
    a.add_framework("fq", ["q"])
    a.add_framework("fr", ["r"])
    # q already holds half of the memory: its share (50 %) is above r's (0 %).
    a.add_agent("a1", R("cpus:8;mem:8192"), used={"fq": R("mem:4096").allocated_to("q")})
    offers = cycle(a)
    assert offers == {("fq", "q", "a1"): R("cpus:4"), ("fr", "r", "a1"): R("cpus:4;mem:4096")}


def test_a_guarantee_and_the_fair_share_on_one_agent_are_one_allocation(make):
    """Stage 1 gives the guaranteed part, stage 2 the rest of the agent to the same
    framework: the cycle returns them as one allocation."""
    a = make()
    a.set_quota("q", Quota({"cpus": 1 * CPU}))
    a.add_framework("fq", ["q"])
    a.add_agent("a1", R("cpus:4;mem:1024"))
    allocations = a.allocate(0.0)
    assert [(x.framework_id, x.role, x.agent_id) for x in allocations] == [("fq", "q", "a1")]
    assert allocations[0].resources == R("cpus:4;mem:1024").allocated_to("q")


def test_quota_guarantees_are_met_across_agents(make):
    a = make(seed=7)
    a.set_quota("q", Quota({"cpus": 5 * CPU}, {"cpus": 5 * CPU}))
    a.add_framework("fr", ["r"])
    a.add_framework("fq", ["q"])
    a.add_agent("big", R("cpus:10;mem:1000"), used={"fr": R("cpus:1").allocated_to("r")})
    for i in range(4):
        a.add_agent(f"a{i}", R("cpus:2;mem:100"))
    offers = cycle(a)
    assert given_to(offers, "fq").scalar("cpus") == 5


def test_quota_limits_chop_an_agent(make):
    a = make()
    a.set_quota("q", Quota({}, {"cpus": 3 * CPU}))
    a.add_framework("fq", ["q"])
    a.add_agent("a1", R("cpus:8;mem:1024;ports:[1-5]"))
    assert cycle(a) == {("fq", "q", "a1"): R("cpus:3;mem:1024;ports:[1-5]")}
    a.add_agent("a2", R("cpus:8;mem:1024"))
    # No cpus left under the limit: only memory (which still passes mem:32) is offered.
    assert cycle(a, 1.0) == {("fq", "q", "a2"): R("mem:1024")}
    a.recover_resources("fq", "a1", R("cpus:1").allocated_to("q"))
    assert given_to(cycle(a, 2.0), "fq") == R("cpus:1")


def test_quota_limits_hold_over_several_frameworks_and_cycles(make):
    a = make(seed=3)
    a.set_quota("q", Quota({"cpus": 1 * CPU}, {"cpus": 5 * CPU}))
    for i in range(3):
        a.add_framework(f"fq{i}", ["q"])
    given = Resources()
    for round_ in range(3):
        for i in range(3):
            a.add_agent(f"a{round_}-{i}", R("cpus:2;mem:100"))
        for (_, role, _), resources in cycle(a, float(round_)).items():
            assert role == "q"
            given = given + resources
    assert given.scalar("cpus") == 5
    assert given.scalar("mem") == 900


def test_headroom_is_held_back_for_unmet_guarantees(make):
    a = make()
    a.set_quota("q", Quota({"cpus": 4 * CPU}, {}))  # q has no framework yet
    a.add_framework("fr", ["r"])
    a.add_agent("a1", R("cpus:4;mem:1024"))
    a.add_agent("a2", R("cpus:4;mem:1024"))
    offers = cycle(a)
    assert given_to(offers, "fr") == R("cpus:4;mem:2048")
    a.add_framework("fq", ["q"])
    assert given_to(cycle(a, 1.0), "fq") == R("cpus:4")


def test_reservations_count_towards_a_guarantee(make):
    a = make()
    a.set_quota("q", Quota({"cpus": 4 * CPU}, {}))
    a.add_framework("fr", ["r"])
    a.add_agent("a1", R("cpus:4;mem:1024;cpus(q):4"))
    # q's guarantee is covered by its reservation: no headroom is held back for it.
    assert cycle(a) == {("fr", "r", "a1"): R("cpus:4;mem:1024")}


def test_quota_on_a_nested_role_or_on_star_is_refused(make):
    a = make()
    with pytest.raises(InvalidQuota):
        a.set_quota("eng/web", Quota({"cpus": CPU}, {}))
    with pytest.raises(InvalidQuota):
        a.set_quota("*", Quota({"cpus": CPU}, {}))
    # Nothing changed: with no quota anywhere, the framework in * gets everything.
    a.add_agent("a1", R("cpus:2;mem:64"))
    a.add_framework("f", ["*"])
    assert cycle(a) == {("f", "*", "a1"): R("cpus:2;mem:64")}


def test_a_guarantee_above_its_limit_is_refused():
    with pytest.raises(InvalidQuota):
        Quota({"cpus": 2 * CPU}, {"cpus": CPU})


def test_setting_the_default_quota_removes_it(make):
    a = make()
    a.set_quota("q", Quota({}, {"cpus": CPU}))
    a.set_quota("q", Quota())
    a.add_agent("a1", R("cpus:4;mem:64"))
    a.add_framework("f", ["q"])
    assert cycle(a) == {("f", "q", "a1"): R("cpus:4;mem:64")}


def test_quota_limits_of_a_role_bind_its_subroles(make):
    # docs/allocator.md: quota is set on top-level roles and "consumed = reservations +
    # unreserved resources held, over the role's subtree"; Mesos's quota docs: the quota of a
    # nested role is included in its parent's. A limit on eng must cap eng/web too.
    a = make()
    a.set_quota("eng", Quota({}, {"cpus": 2 * CPU}))
    a.add_framework("web", ["eng/web"])
    a.add_agent("a1", R("cpus:8;mem:1024"))
    assert given_to(cycle(a), "web").scalar("cpus") <= 2


# -- recovering resources -------------------------------------------------------------------------


def test_recovered_resources_return_to_the_pool(make):
    a = make()
    a.add_agent("a1", R("cpus:4;mem:1024"))
    a.add_framework("f1", ["r"])
    a.add_framework("f2", ["r"])
    assert list(cycle(a)) == [("f1", "r", "a1")]
    a.recover_resources("f1", "a1", R("cpus:3;mem:512").allocated_to("r"))
    assert cycle(a, 1.0) == {("f2", "r", "a1"): R("cpus:3;mem:512")}


def test_recovering_more_than_is_held_is_refused_and_changes_nothing(make):
    a = make()
    a.add_agent("a1", R("cpus:4;mem:1024"))
    a.add_framework("f1", ["r"])
    cycle(a)
    with pytest.raises(AllocatorError):
        a.recover_resources("f1", "a1", R("cpus:5").allocated_to("r"))
    with pytest.raises(AllocatorError):
        a.recover_resources("f1", "a1", R("cpus:1").allocated_to("other"))
    assert cycle(a, 1.0) == {}


def test_recovering_from_a_removed_agent_or_framework_is_a_no_op(make):
    a = make()
    a.add_agent("a1", R("cpus:4;mem:1024"))
    a.add_framework("f1", ["r"])
    cycle(a)
    a.remove_framework("f1")
    a.recover_resources("f1", "a1", R("cpus:1").allocated_to("r"), 100)
    a.remove_agent("a1")
    a.recover_resources("f1", "a1", R("cpus:1").allocated_to("r"), 100)
    a.add_agent("a1", R("cpus:1;mem:32"))
    a.add_framework("f1", ["r"])
    assert cycle(a, 1.0) == {("f1", "r", "a1"): R("cpus:1;mem:32")}


def test_recovering_declined_offers_together_is_recovering_each(make):
    def setup():
        a = make()
        for number in range(9):
            a.add_agent(f"a{number}", R("cpus:4;mem:1024"))
        a.add_framework("f1", ["r"])
        a.add_framework("f2", ["r"])
        a.add_framework("f3", ["s"])
        return a, cycle(a)

    each, offers = setup()
    together, same = setup()
    assert offers == same
    mine = [
        (agent, res.allocated_to(role)) for (f, role, agent), res in offers.items() if f == "f1"
    ]
    assert len(mine) >= 2
    for agent, resources in mine:
        each.recover_resources("f1", agent, resources, 30.0, now=1.0)
    together.recover_declined("f1", mine, 30.0, now=1.0)
    for now in (2.0, 40.0):  # within the filter (offered to others only), then after it
        assert cycle(each, now) == cycle(together, now)
    for a in (each, together):  # who gets a new agent shows the DRF order
        a.add_agent("late", R("cpus:4;mem:1024"))
    assert cycle(each, 41.0) == cycle(together, 41.0)


def test_recovering_declined_offers_is_refused_whole_if_one_is_not_held(make):
    a = make()
    a.add_agent("a1", R("cpus:4;mem:1024"))
    a.add_agent("a2", R("cpus:4;mem:1024"))
    a.add_framework("f1", ["r"])
    offers = cycle(a)
    pieces = [(agent, res.allocated_to(role)) for (_, role, agent), res in offers.items()]
    with pytest.raises(AllocatorError):
        a.recover_declined("f1", [*pieces, ("a1", R("cpus:9").allocated_to("r"))])
    assert cycle(a, 1.0) == {}  # nothing came back
    a.recover_declined("f1", pieces)
    assert by_agent(cycle(a, 2.0)) == {"a1": R("cpus:4;mem:1024"), "a2": R("cpus:4;mem:1024")}


# -- decline filters ------------------------------------------------------------------------------


def declined_setup(make, options=None):
    a = make(options)
    a.add_agent("a1", R("cpus:2;mem:512"))
    a.add_framework("f1", ["r"])
    first = cycle(a)
    assert first == {("f1", "r", "a1"): R("cpus:2;mem:512")}
    return a, first


@pytest.mark.parametrize(
    ("refuse", "interval", "lasts"),
    [
        (10.0, 1.0, 10.0),
        (1.0, 3.0, 3.0),  # a filter lasts at least one allocation interval
        (-1.0, 1.0, 5.0),  # invalid: the 5 s default
        (float("inf"), 1.0, 5.0),
        (float("nan"), 1.0, 5.0),
    ],
)
def test_a_decline_filter_lasts_max_of_interval_and_refuse_seconds(make, refuse, interval, lasts):
    a, first = declined_setup(make, AllocatorOptions(allocation_interval=interval))
    decline(a, first, "f1", refuse, now=100.0)
    assert cycle(a, 100.0) == {}
    assert cycle(a, 100.0 + lasts - 0.01) == {}
    assert cycle(a, 100.0 + lasts) == first


def test_expired_filters_are_dropped_not_kept_one_per_decline():
    # A framework declining every offer with a 2 s filter, for a thousand cycles, keeps at
    # most one live filter per agent; the agents stay offered every other second.
    a = HierarchicalAllocator(AllocatorOptions(allocation_interval=1.0))
    for number in range(5):
        a.add_agent(f"a{number}", R("cpus:4;mem:1024"))
    a.add_framework("f1", ["r"])
    offered_at = []
    for now in range(1000):
        offers = cycle(a, float(now))
        if offers:
            offered_at.append(now)
        decline(a, offers, "f1", 2.0, now=float(now))
        assert a.filter_count() <= 5
    assert offered_at == list(range(0, 1000, 2))


def test_refuse_seconds_are_capped_at_365_days(make):
    a, first = declined_setup(make)
    decline(a, first, "f1", 10 * 365 * DAY, now=0.0)
    assert cycle(a, MAX_REFUSE_SECONDS - 1) == {}
    assert cycle(a, MAX_REFUSE_SECONDS) == first


@pytest.mark.parametrize("refuse", [0, 0.0, None])
def test_no_filter_without_refuse_seconds(make, refuse):
    a, first = declined_setup(make)
    decline(a, first, "f1", refuse, now=0.0)
    assert cycle(a, 0.0) == first


def test_a_filter_is_per_framework(make):
    a = make()
    a.add_agent("a1", R("cpus:2;mem:512"))
    a.add_framework("f1", ["r"])
    a.add_framework("f2", ["r"])
    first = cycle(a)
    assert first == {("f1", "r", "a1"): R("cpus:2;mem:512")}
    decline(a, first, "f1", 100)
    assert cycle(a, 1.0) == {("f2", "r", "a1"): R("cpus:2;mem:512")}


def test_more_free_resources_than_were_refused_are_offered_again(make):
    a = make()
    a.add_framework("f1", ["r"])
    a.add_framework("f2", ["s"])
    a.add_agent("a1", R("cpus:4;mem:1024"), used={"f2": R("cpus:2").allocated_to("s")})
    offers = cycle(a)
    assert offers == {("f1", "r", "a1"): R("cpus:2;mem:1024")}
    decline(a, offers, "f1", 100)
    a.suppress("f2")
    assert cycle(a, 1.0) == {}  # the same cpus:2;mem:1024: filtered
    a.recover_resources("f2", "a1", R("cpus:1").allocated_to("s"))
    # Now cpus:3;mem:1024 is free: more than f1 refused, so the filter does not apply.
    assert cycle(a, 2.0) == {("f1", "r", "a1"): R("cpus:3;mem:1024")}


def test_a_subset_of_what_was_refused_is_still_filtered(make):
    a = make()
    a.add_framework("f1", ["r"])
    a.add_framework("f2", ["s"])
    a.add_agent("a1", R("cpus:4;mem:1024"))
    offers = cycle(a)
    assert offers == {("f1", "r", "a1"): R("cpus:4;mem:1024")}
    decline(a, offers, "f1", 100)
    second = cycle(a, 1.0)
    assert second == {("f2", "s", "a1"): R("cpus:4;mem:1024")}
    a.suppress("f2")
    a.recover_resources("f2", "a1", R("cpus:1;mem:1000").allocated_to("s"))
    assert cycle(a, 2.0) == {}  # cpus:1;mem:1000 lies within the refused cpus:4;mem:1024


def test_revive_clears_filters_of_the_revived_roles_only(make):
    a = make()
    a.add_agent("a1", R("cpus:2;mem:512"))
    a.add_framework("f1", ["r", "s"])
    first = cycle(a)
    assert first == {("f1", "r", "a1"): R("cpus:2;mem:512")}
    decline(a, first, "f1", 100)
    second = cycle(a, 1.0)
    assert second == {("f1", "s", "a1"): R("cpus:2;mem:512")}  # the filter is r's
    decline(a, second, "f1", 100, now=1.0)
    assert cycle(a, 2.0) == {}
    a.revive("f1", ["s"])
    third = cycle(a, 3.0)
    assert third == {("f1", "s", "a1"): R("cpus:2;mem:512")}  # r is still filtered
    decline(a, third, "f1", 100, now=3.0)
    a.revive("f1")  # all roles: r (one allocation so far, s has two) goes first
    assert cycle(a, 4.0) == {("f1", "r", "a1"): R("cpus:2;mem:512")}


def test_deactivating_a_framework_clears_its_filters(make):
    a, first = declined_setup(make)
    decline(a, first, "f1", 100)
    a.deactivate_framework("f1")
    a.activate_framework("f1")
    assert cycle(a, 1.0) == first


def test_removing_an_agent_clears_filters_on_it(make):
    a, first = declined_setup(make)
    decline(a, first, "f1", 100)
    a.remove_agent("a1")
    a.add_agent("a1", R("cpus:2;mem:512"))
    assert cycle(a, 1.0) == first


def test_clear_agent_filters(make):
    a, first = declined_setup(make)
    decline(a, first, "f1", 100)
    a.clear_agent_filters("a1")
    assert cycle(a, 1.0) == first
    with pytest.raises(AllocatorError):
        a.clear_agent_filters("nope")


def test_removing_a_role_from_a_framework_clears_its_filters(make):
    a, first = declined_setup(make)
    decline(a, first, "f1", 100)
    a.update_framework("f1", ["other"])
    a.update_framework("f1", ["r"])
    assert cycle(a, 1.0) == first


def test_a_filter_on_one_agent_does_not_affect_another(make):
    a, first = declined_setup(make)
    decline(a, first, "f1", 100)
    a.add_agent("a2", R("cpus:2;mem:512"))
    assert cycle(a, 1.0) == {("f1", "r", "a2"): R("cpus:2;mem:512")}


# -- suppress and revive --------------------------------------------------------------------------


def test_a_suppressed_framework_gets_nothing_until_revived(make):
    a = make()
    a.add_agent("a1", R("cpus:2;mem:512"))
    a.add_framework("f1", ["r", "s"])
    a.suppress("f1")
    assert cycle(a) == {}
    a.revive("f1", ["s"])
    assert cycle(a, 1.0) == {("f1", "s", "a1"): R("cpus:2;mem:512")}


def test_suppressing_one_role_leaves_the_others(make):
    a = make()
    a.add_agent("a1", R("cpus:2;mem:512"))
    a.add_framework("f1", ["r", "s"])
    a.suppress("f1", ["r"])
    assert cycle(a) == {("f1", "s", "a1"): R("cpus:2;mem:512")}


def test_suppressed_roles_at_subscription(make):
    a = make()
    a.add_agent("a1", R("cpus:2;mem:512"))
    a.add_framework("f1", ["r", "s"], suppressed_roles=["s"])
    a.add_framework("f2", ["s"])
    offers = cycle(a)
    assert offers == {("f1", "r", "a1"): R("cpus:2;mem:512")}


def test_a_suppressed_framework_still_counts_in_its_roles_share(make):
    a = make()
    a.add_framework("f1", ["r"])
    a.add_framework("f2", ["r"])
    a.add_framework("f3", ["s"])
    a.add_agent("a1", R("cpus:4;mem:400"), used={"f1": R("cpus:4").allocated_to("r")})
    a.suppress("f1")
    a.add_agent("a2", R("cpus:1;mem:100"))
    # r's share includes what the suppressed f1 holds: s goes first.
    assert list(cycle(a, candidates=["a2"])) == [("f3", "s", "a2")]


# -- minimum allocatable resources ----------------------------------------------------------------


def test_offers_below_the_default_minimum_are_not_made(make):
    a = make()
    a.add_framework("f1", ["r"])
    a.add_agent("tiny", R("cpus:0.009;mem:31;disk:1000"))
    a.add_agent("cpu", R("cpus:0.01"))
    a.add_agent("mem", R("mem:32"))
    assert cycle(a) == {("f1", "r", "cpu"): R("cpus:0.01"), ("f1", "r", "mem"): R("mem:32")}


def test_a_framework_can_set_its_own_minimum_per_role(make):
    a = make()
    a.add_framework("big", ["r"], min_allocatable={"r": ({"cpus": 2 * CPU},)})
    a.add_framework("small", ["s"])
    a.add_agent("a1", R("cpus:1;mem:1024"))
    assert cycle(a) == {("small", "s", "a1"): R("cpus:1;mem:1024")}
    a.add_agent("a2", R("cpus:2;mem:64"))
    assert cycle(a, 1.0) == {("big", "r", "a2"): R("cpus:2;mem:64")}


def test_an_empty_minimum_allows_anything(make):
    a = make(AllocatorOptions(min_allocatable_resources=()))
    a.add_framework("f1", ["r"])
    a.add_agent("a1", R("ports:[1-2]"))
    a.add_agent("a2", R("cpus:0.001"))
    assert cycle(a) == {("f1", "r", "a1"): R("ports:[1-2]"), ("f1", "r", "a2"): R("cpus:0.001")}


def test_a_framework_minimum_overrides_the_default_for_its_role_only(make):
    a = make()
    a.add_framework("f1", ["r", "s"], min_allocatable={"s": ()})
    a.add_agent("a1", R("disk:5"))
    assert cycle(a) == {("f1", "s", "a1"): R("disk:5")}


def test_a_minimum_needs_every_quantity_of_one_set(make):
    options = AllocatorOptions(min_allocatable_resources=({"cpus": CPU, "mem": 64 * MB},))
    a = make(options)
    a.add_framework("f1", ["r"])
    a.add_agent("a1", R("cpus:4;mem:32"))
    a.add_agent("a2", R("cpus:1;mem:64"))
    assert cycle(a) == {("f1", "r", "a2"): R("cpus:1;mem:64")}


# -- GPUs -----------------------------------------------------------------------------------------


def test_gpu_agents_go_only_to_gpu_capable_frameworks(make):
    a = make()
    a.add_framework("plain", ["a"])
    a.add_framework("gpu", ["b"], gpu=True)
    a.add_agent("g1", R("cpus:2;mem:512;gpus:1"))
    a.add_agent("c1", R("cpus:2;mem:512"))
    offers = cycle(a)
    assert offers[("gpu", "b", "g1")] == R("cpus:2;mem:512;gpus:1")
    assert ("plain", "a", "g1") not in offers


def test_filter_gpu_resources_off_offers_gpu_agents_to_anyone(make):
    a = make(AllocatorOptions(filter_gpu_resources=False))
    a.add_framework("plain", ["a"])
    a.add_agent("g1", R("cpus:2;mem:512;gpus:1"))
    assert cycle(a) == {("plain", "a", "g1"): R("cpus:2;mem:512;gpus:1")}


# -- candidate agents -----------------------------------------------------------------------------


def test_a_cycle_over_candidates_touches_only_those_agents(make):
    a = make()
    a.add_framework("f1", ["r"])
    for i in range(4):
        a.add_agent(f"a{i}", R("cpus:1;mem:64"))
    a.deactivate_agent("a2")
    offers = cycle(a, candidates=["a1", "a2", "ghost"])
    assert offers == {("f1", "r", "a1"): R("cpus:1;mem:64")}
    assert set(cycle(a, 1.0)) == {("f1", "r", "a0"), ("f1", "r", "a3")}


# -- bad requests ---------------------------------------------------------------------------------


def _history(allocator):
    allocator.add_agent("a1", R("cpus:4;mem:1024"))
    allocator.add_agent("a2", R("cpus:2;mem:512;cpus(eng):1"))
    allocator.add_framework("f1", ["eng"])
    allocator.add_framework("f2", ["sales"])
    allocator.set_quota("eng", Quota({"cpus": CPU}, {"cpus": 4 * CPU}))


BAD_REQUESTS = {
    "add_agent twice": lambda a: a.add_agent("a1", R("cpus:64;mem:64")),
    "remove_agent unknown": lambda a: a.remove_agent("ghost"),
    "update_agent unknown": lambda a: a.update_agent("ghost", R("cpus:1")),
    "activate_agent unknown": lambda a: a.activate_agent("ghost"),
    "deactivate_agent unknown": lambda a: a.deactivate_agent("ghost"),
    "clear_agent_filters unknown": lambda a: a.clear_agent_filters("ghost"),
    "add_framework twice": lambda a: a.add_framework("f1", ["other"], gpu=True),
    "remove_framework unknown": lambda a: a.remove_framework("ghost"),
    "activate_framework unknown": lambda a: a.activate_framework("ghost"),
    "deactivate_framework unknown": lambda a: a.deactivate_framework("ghost"),
    "update_framework unknown": lambda a: a.update_framework("ghost", ["eng"]),
    "suppress unknown": lambda a: a.suppress("ghost"),
    "revive unknown": lambda a: a.revive("ghost"),
    "set_weight zero": lambda a: a.set_weight("sales", 0),
    "recover too much": lambda a: a.recover_resources("f1", "a1", R("cpus:99").allocated_to("eng")),
}


@pytest.mark.parametrize("request_name", sorted(BAD_REQUESTS))
def test_bad_requests_raise_and_change_nothing(make, request_name):
    control = make(seed=5)
    tested = make(seed=5)
    for allocator in (control, tested):
        _history(allocator)
        cycle(allocator, 0.0)
    with pytest.raises(AllocatorError):
        BAD_REQUESTS[request_name](tested)
    for allocator in (control, tested):
        allocator.add_agent("a3", R("cpus:3;mem:256"))
        allocator.add_framework("f3", ["sales"])
    for now in (1.0, 2.0):
        assert cycle(tested, now) == cycle(control, now)


# -- resources in use before their framework is known ---------------------------------------------


def test_used_resources_of_an_unknown_framework_are_off_the_pool(make):
    a = make()
    a.add_framework("f2", ["r"])
    a.add_agent("a1", R("cpus:4;mem:1024"), used={"f1": R("cpus:3;mem:512").allocated_to("r")})
    assert cycle(a) == {("f2", "r", "a1"): R("cpus:1;mem:512")}


def test_used_resources_count_once_their_framework_is_added(make):
    a = make()
    a.add_agent("a1", R("cpus:4;mem:1024"), used={"f1": R("cpus:3").allocated_to("r")})
    a.add_agent("a2", R("cpus:4;mem:1024"))
    a.add_framework("f1", ["r"])
    a.add_framework("f2", ["r"])
    # f1 holds 3 of 8 cpus; f2 holds nothing: f2 goes first.
    assert list(cycle(a, candidates=["a2"])) == [("f2", "r", "a2")]
    # And removing f1 frees what the agent reported.
    a.remove_framework("f1")
    assert cycle(a, 1.0, candidates=["a1"]) == {("f2", "r", "a1"): R("cpus:4;mem:1024")}


def test_used_resources_without_an_allocation_role_are_refused(make):
    # What an agent reports in use must say its role, or it could never be given back.
    a = make()
    a.add_framework("f1", ["r"])
    with pytest.raises(AllocatorError, match="lack an allocation role"):
        a.add_agent("a1", R("cpus:4;mem:1024"), used={"f1": R("cpus:1")})
    a.add_agent("a1", R("cpus:4;mem:1024"), used={"f1": R("cpus:1").allocated_to("r")})
    a.remove_framework("f1")
    a.add_framework("f2", ["r"])
    assert cycle(a) == {("f2", "r", "a1"): R("cpus:4;mem:1024")}
