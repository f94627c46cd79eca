"""DRFSorter on its own: order by weighted dominant share, then allocation count, then name;
hierarchical roles with virtual leaves; activation; iterate/restore; and a brute-force model
of the documented order that random sequences of events hold it to."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral import quantities as q
from master.allocator.drf import drf_share
from master.allocator.sorter import DRFSorter

CPU = 1000  # quantities are in thousandths


def sorter(totals=None, weights=None, excluded=frozenset(), hierarchical=True):
    return DRFSorter(
        totals if totals is not None else {"cpus": 100 * CPU, "mem": 100_000 * CPU},
        excluded,
        weights,
        hierarchical=hierarchical,
    )


def cpus(n: float) -> dict[str, int]:
    return {"cpus": round(n * CPU)}


# -- flat order -----------------------------------------------------------------------------------


def test_lower_dominant_share_first():
    s = sorter()
    for client in ("a", "b", "c"):
        s.add(client)
    s.allocated("a", cpus(30))
    s.allocated("b", {"mem": 10_000 * CPU})  # 10 % of mem
    s.allocated("c", cpus(20))
    assert s.sort() == ["b", "c", "a"]
    assert s.share("a") == pytest.approx(0.3)


def test_dominant_share_is_the_largest_fraction_over_resources():
    s = sorter()
    s.add("a")
    s.add("b")
    s.allocated("a", {"cpus": 10 * CPU, "mem": 50_000 * CPU})  # dominant: mem, 50 %
    s.allocated("b", {"cpus": 40 * CPU, "mem": 1_000 * CPU})  # dominant: cpus, 40 %
    assert s.sort() == ["b", "a"]
    assert s.share("a") == pytest.approx(0.5)


def test_equal_shares_are_ordered_by_allocation_count_then_name():
    s = sorter()
    for client in ("c", "b", "a"):
        s.add(client)
    assert s.sort() == ["a", "b", "c"]  # no allocations at all: by name
    s.allocated("a", cpus(1))
    s.unallocated("a", cpus(1))  # back to zero share, but one allocation counted
    assert s.sort() == ["b", "c", "a"]
    s.allocated("b", cpus(1))
    s.allocated("b", cpus(1))
    s.unallocated("b", cpus(2))
    assert s.sort() == ["c", "a", "b"]


def test_unallocated_lowers_the_share_and_reorders():
    s = sorter()
    s.add("a")
    s.add("b")
    s.allocated("a", cpus(10))
    s.allocated("b", cpus(20))
    assert s.sort() == ["a", "b"]
    s.unallocated("b", cpus(15))
    assert s.sort() == ["b", "a"]
    assert s.allocation("b") == cpus(5)


def test_excluded_resources_and_zero_totals_do_not_count():
    s = sorter(totals={"cpus": 10 * CPU, "gpus": 0, "mem": 100 * CPU}, excluded=frozenset({"mem"}))
    s.add("a")
    s.add("b")
    s.allocated("a", {"mem": 90 * CPU, "gpus": 1 * CPU, "cpus": 1 * CPU})
    s.allocated("b", cpus(2))
    assert s.share("a") == pytest.approx(0.1)
    assert s.sort() == ["a", "b"]


def test_weights_divide_the_share():
    weights = {"a": 2.0}
    s = sorter(weights=weights)
    s.add("a")
    s.add("b")
    s.allocated("a", cpus(30))  # 30 % / 2 = 15 %
    s.allocated("b", cpus(20))
    assert s.sort() == ["a", "b"]
    weights["a"] = 1.0
    s.reshare_all()
    assert s.sort() == ["b", "a"]


def test_totals_changes_take_effect_on_reshare():
    totals = {"cpus": 10 * CPU, "mem": 1000 * CPU}
    s = sorter(totals=totals)
    s.add("a")
    s.add("b")
    s.allocated("a", cpus(5))  # 50 % of cpus
    s.allocated("b", {"mem": 400 * CPU})  # 40 % of mem
    assert s.sort() == ["b", "a"]
    totals["cpus"] = 100 * CPU  # a's share falls to 5 %
    s.reshare_all()
    assert s.sort() == ["a", "b"]


def test_flat_sorter_does_not_split_names_on_slashes():
    s = sorter(hierarchical=False)
    s.add("x/1")
    s.add("x")
    s.allocated("x/1", cpus(1))
    assert s.sort() == ["x", "x/1"]
    s.remove("x")
    assert s.sort() == ["x/1"]


def test_adding_twice_is_refused():
    s = sorter()
    s.add("a")
    with pytest.raises(ValueError):
        s.add("a")


# -- activation -----------------------------------------------------------------------------------


def test_inactive_clients_are_skipped_but_keep_their_allocation():
    s = sorter()
    s.add("a")
    s.add("b", active=False)
    s.allocated("b", cpus(5))
    assert s.sort() == ["a"]
    assert "b" in s and not s.is_active("b")
    s.activate("b")
    assert s.sort() == ["a", "b"]
    s.deactivate("a")
    s.deactivate("a")  # idempotent
    assert s.sort() == ["b"]
    s.allocated("a", cpus(50))  # allocations to an inactive client still count
    s.activate("a")
    assert s.sort() == ["b", "a"]
    assert s.allocation("a") == cpus(50)


def test_inactive_leaf_still_counts_in_its_parent_share():
    s = sorter()
    s.add("a/x")
    s.add("b")
    s.allocated("a/x", cpus(30))
    s.allocated("b", cpus(10))
    s.add("a/y")
    s.deactivate("a/x")
    assert s.sort() == ["b", "a/y"]  # a's subtree holds 30 %: after b


# -- hierarchy ------------------------------------------------------------------------------------


def test_hierarchical_order_compares_subtrees_first():
    s = sorter()
    for client in ("eng/web", "eng/db", "sales"):
        s.add(client)
    s.allocated("eng/web", cpus(10))
    s.allocated("sales", cpus(15))
    # eng's subtree (10 %) sorts before sales (15 %); db before web inside eng.
    assert s.sort() == ["eng/db", "eng/web", "sales"]
    s.allocated("eng/db", cpus(12))  # eng now holds 22 %
    assert s.sort() == ["sales", "eng/web", "eng/db"]
    assert s.subtree_allocation("eng") == cpus(22)
    assert sorted(s.top_level()) == ["eng", "sales"]


def test_weights_apply_to_internal_nodes_by_path():
    weights = {"eng": 4.0}
    s = sorter(weights=weights)
    s.add("eng/web")
    s.add("sales")
    s.allocated("eng/web", cpus(30))  # eng: 30 % / 4
    s.allocated("sales", cpus(10))
    assert s.sort() == ["eng/web", "sales"]


def test_a_role_with_frameworks_and_children_is_a_virtual_leaf():
    s = sorter()
    s.add("a")
    s.add("a/b")
    s.add("c")
    s.allocated("a", cpus(20))
    s.allocated("a/b", cpus(5))
    s.allocated("c", cpus(30))
    # a's subtree (25 %) before c (30 %); inside a, a/b (5 %) before a itself (20 %).
    assert s.sort() == ["a/b", "a", "c"]
    assert s.allocation("a") == cpus(20)
    assert s.subtree_allocation("a") == cpus(25)
    assert s.share("a") == pytest.approx(0.2)


def test_adding_a_child_to_a_leaf_keeps_its_allocation_and_count():
    s = sorter()
    s.add("a")
    s.add("b")
    s.allocated("a", cpus(1))
    s.unallocated("a", cpus(1))  # a: share 0, count 1; b: share 0, count 0
    assert s.sort() == ["b", "a"]
    s.add("a/x")
    # Node a keeps its count of 1 (it existed since a was added), so b still goes first;
    # inside a, the virtual leaf a/. has count 1 and a/x count 0.
    assert s.sort() == ["b", "a/x", "a"]
    s.allocated("a", cpus(2))
    assert s.allocation("a") == cpus(2)
    assert s.subtree_allocation("a") == cpus(2)


def test_counts_of_a_virtual_leaf_and_its_node_are_kept_apart():
    s = sorter()
    s.add("a")
    s.add("a/x")
    s.add("b")
    # Two allocations under a/x: node a counts 2, virtual leaf a/. counts 0.
    s.allocated("a/x", cpus(1))
    s.allocated("a/x", cpus(1))
    s.unallocated("a/x", cpus(2))
    s.allocated("b", cpus(1))
    s.unallocated("b", cpus(1))
    assert s.sort() == ["b", "a", "a/x"]  # b (count 1) before a (count 2); a/. (0) first in a


def test_removing_the_child_turns_the_node_back_into_a_leaf():
    s = sorter()
    s.add("a")
    s.add("b")
    s.add("a/x")
    s.allocated("a/x", cpus(1))
    s.allocated("a/x", cpus(1))
    s.unallocated("a/x", cpus(2))
    s.allocated("b", cpus(1))
    s.unallocated("b", cpus(1))
    s.remove("a/x")
    # a is a plain leaf again and keeps its node's count of 2 (docs: the count of a node
    # counts every allocation in its subtree since the node was created).
    assert sorted(s.clients()) == ["a", "b"]
    assert s.sort() == ["b", "a"]
    s.allocated("b", cpus(1))
    s.unallocated("b", cpus(1))
    s.allocated("b", cpus(1))
    s.unallocated("b", cpus(1))
    assert s.sort() == ["a", "b"]  # a: 2, b: 3


def test_removing_a_client_takes_its_allocation_out_of_the_parents():
    s = sorter()
    s.add("a/x")
    s.add("a/y")
    s.add("b")
    s.allocated("a/x", cpus(50))
    s.allocated("b", cpus(10))
    assert s.sort() == ["b", "a/y", "a/x"]
    s.remove("a/x")
    assert s.subtree_allocation("a") == {}
    assert s.sort() == ["a/y", "b"]


def test_removing_the_last_client_of_a_subtree_removes_the_subtree():
    s = sorter()
    s.add("a/b/c")
    s.add("d")
    s.allocated("a/b/c", cpus(1))
    s.remove("a/b/c")
    assert s.subtree_allocation("a") == {}
    assert s.subtree_allocation("a/b") == {}
    assert s.top_level() == ["d"]
    s.add("a")  # a fresh node: its count starts from zero
    assert s.sort() == ["a", "d"]


def test_removing_the_virtual_leaf_keeps_the_children():
    s = sorter()
    s.add("a")
    s.add("a/x")
    s.allocated("a", cpus(10))
    s.allocated("a/x", cpus(5))
    s.remove("a")
    assert s.sort() == ["a/x"]
    assert s.subtree_allocation("a") == cpus(5)
    s.add("a")  # back as a virtual leaf, with no allocation of its own
    assert s.allocation("a") == {}
    assert s.sort() == ["a", "a/x"]


# -- iterate and restore --------------------------------------------------------------------------


def test_iterate_then_restore_leaves_the_order_unchanged():
    s = sorter()
    for i, client in enumerate(["a/x", "a/y", "b", "c/d/e", "c/f", "a"]):
        s.add(client)
        s.allocated(client, cpus(i + 1))
    order = s.sort()
    popped: list = []
    walk = s.iterate(popped)
    first_two = [next(walk), next(walk)]
    walk.close()
    DRFSorter.restore(popped)
    assert first_two == order[:2]
    assert s.sort() == order
    popped = []
    assert list(s.iterate(popped)) == order
    DRFSorter.restore(popped)
    assert s.sort() == order


def test_first_is_the_head_of_the_order():
    s = sorter()
    assert s.first() is None
    s.add("a/x", active=False)
    s.add("b")
    s.allocated("b", cpus(1))
    # Subtree a (share 0) is ahead of b but has no active client: first() looks past it.
    assert s.first() == "b"
    s.deactivate("b")
    assert s.first() is None
    s.activate("a/x")
    assert s.first() == "a/x"
    assert s.sort() == ["a/x"]


def test_changes_after_restore_are_seen():
    s = sorter()
    for client in ("a", "b", "c"):
        s.add(client)
    popped: list = []
    assert next(iter(s.iterate(popped))) == "a"
    DRFSorter.restore(popped)
    s.allocated("a", cpus(1))
    assert s.sort() == ["b", "c", "a"]


def test_allocated_times_n_is_n_allocations():
    once, many = sorter(), sorter()
    for s in (once, many):
        for client in ("a/x", "a/y", "b"):
            s.add(client)
        s.allocated("b", cpus(6))
    for _ in range(3):
        once.allocated("a/x", cpus(2))
    many.allocated("a/x", cpus(2), times=3)
    for s in (once, many):
        assert s.allocation("a/x") == cpus(6)
        assert s.subtree_allocation("a") == cpus(6)
        # a and b hold 6 cpus each: b goes first for its one allocation to a's three (with
        # a counted once, a would go first by name).
        assert s.sort() == ["b", "a/y", "a/x"]
        s.allocated("a/y", cpus(6))  # within a too: a/y's one allocation goes first
        assert s.sort() == ["b", "a/y", "a/x"]


def test_alone_says_whether_a_client_has_nothing_to_be_ordered_against():
    s = sorter()
    s.add("a/x")
    assert s.alone("a/x")
    s.add("a/y", active=False)
    assert s.alone("a/x")  # an inactive sibling is not ordered
    s.activate("a/y")
    assert not s.alone("a/x")
    s.deactivate("a/y")
    s.add("b")
    assert not s.alone("a/x")  # subtree a is ordered against b
    s.deactivate("b")
    assert s.alone("a/x")
    s.deactivate("a/x")
    assert not s.alone("a/x")


# -- a brute-force model of the documented order --------------------------------------------------


class SorterModel:
    """The order written out from the docs: a tree of role paths, each node's share from the
    allocations of its subtree, counts restarting when a node leaves the tree."""

    def __init__(self, totals, weights, excluded, hierarchical):
        self.totals = totals
        self.weights = weights
        self.excluded = excluded
        self.hierarchical = hierarchical
        self.clients: dict[str, bool] = {}  # client -> active
        self.allocation: dict[str, dict[str, int]] = {}
        self.own_count: dict[str, int] = {}  # client -> allocations since it was added
        self.count: dict[str, int] = {}  # node path -> allocations in its subtree

    def _paths(self, client: str) -> list[str]:
        if not self.hierarchical:
            return [client]
        parts = client.split("/")
        return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]

    def _in_subtree(self, client: str, path: str) -> bool:
        if not self.hierarchical:
            return client == path
        return client == path or client.startswith(path + "/")

    def add(self, client: str, active: bool) -> None:
        self.clients[client] = active
        self.allocation[client] = {}
        self.own_count[client] = 0
        for path in self._paths(client):
            self.count.setdefault(path, 0)

    def remove(self, client: str) -> None:
        del self.clients[client]
        del self.allocation[client]
        del self.own_count[client]
        for path in self._paths(client):
            if not any(self._in_subtree(c, path) for c in self.clients):
                del self.count[path]

    def allocated(self, client: str, amounts) -> None:
        q.add_into(self.allocation[client], amounts)
        self.own_count[client] += 1
        for path in self._paths(client):
            self.count[path] += 1

    def unallocated(self, client: str, amounts) -> None:
        q.subtract_into(self.allocation[client], amounts)

    def _share(self, allocation, path: str) -> float:
        return drf_share(allocation, self.totals, self.weights.get(path, 1.0), self.excluded)

    def sort(self) -> list[str]:
        if not self.hierarchical:
            keys = sorted(
                (self._share(self.allocation[c], c), self.own_count[c], c)
                for c, active in self.clients.items()
                if active
            )
            return [c for _, _, c in keys]
        return self._visit("")

    def _visit(self, parent: str) -> list[str]:
        prefix = parent + "/" if parent else ""
        depth = parent.count("/") + 1 if parent else 0
        children = {
            "/".join(c.split("/")[: depth + 1]) for c in self.clients if c.startswith(prefix)
        }
        entries = []
        if self.clients.get(parent):
            share = self._share(self.allocation[parent], parent)
            entries.append(((share, self.own_count[parent], parent + "/."), parent))
        for child in children:
            subtree: dict[str, int] = {}
            for c in self.clients:
                if self._in_subtree(c, child):
                    q.add_into(subtree, self.allocation[c])
            entries.append(((self._share(subtree, child), self.count[child], child), child))
        entries.sort()
        order: list[str] = []
        for (_, _, key_path), name in entries:
            if key_path.endswith("/."):
                order.append(name)
            elif any(c.startswith(name + "/") for c in self.clients):
                order.extend(self._visit(name))
            elif self.clients[name]:
                order.append(name)
        return order


CLIENTS = ("a", "a/x", "a/y", "a/x/z", "b", "b/c", "c")

_client = st.sampled_from(CLIENTS)
_event = st.one_of(
    st.tuples(st.just("add"), _client, st.booleans()),
    st.tuples(st.just("remove"), _client),
    st.tuples(st.just("allocated"), _client, st.integers(0, 3), st.integers(0, 2)),
    st.tuples(st.just("allocated"), _client, st.integers(0, 3), st.integers(0, 2)),
    st.tuples(st.just("unallocated"), _client, st.integers(0, 3)),
    st.tuples(st.just("unallocated"), _client, st.just(0)),
    st.tuples(st.sampled_from(["activate", "deactivate"]), _client),
    st.tuples(st.just("weight"), _client, st.sampled_from([0.5, 1.0, 3.0])),
    st.tuples(st.just("totals"), st.integers(1, 20)),
    st.tuples(st.just("walk"), st.integers(0, 4)),
)
# Start from a few clients (and some weights), so that most events find something to do.
events = st.tuples(
    st.lists(st.tuples(st.just("weight"), _client, st.sampled_from([0.5, 2.0])), max_size=3),
    st.lists(st.tuples(st.just("add"), _client, st.just(True)), min_size=2, max_size=7),
    st.lists(_event, min_size=5, max_size=60),
).map(lambda parts: parts[0] + parts[1] + parts[2])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events, st.booleans(), st.booleans())
def test_sort_matches_a_brute_force_order(events, hierarchical, exclude_mem):
    totals = {"cpus": 10 * CPU, "mem": 20 * CPU, "disk": 0}
    weights: dict[str, float] = {}
    excluded = frozenset({"mem"}) if exclude_mem else frozenset()
    real = DRFSorter(totals, excluded, weights, hierarchical=hierarchical)
    model = SorterModel(totals, weights, excluded, hierarchical)
    for event in events:
        kind, client = event[0], event[1]
        if kind == "add":
            if client in model.clients:
                with pytest.raises(ValueError):
                    real.add(client)
                continue
            real.add(client, active=event[2])
            model.add(client, event[2])
        elif kind == "remove":
            if client in model.clients:
                real.remove(client)
                model.remove(client)
        elif kind == "allocated":
            if client in model.clients:
                amounts = {"cpus": event[2] * CPU, "mem": event[3] * 10 * CPU}
                amounts = {k: v for k, v in amounts.items() if v}
                real.allocated(client, amounts)
                model.allocated(client, amounts)
        elif kind == "unallocated":
            if client in model.clients:
                held = model.allocation[client]
                if event[2] == 0:  # everything: shares of zero make ties, and counts decide
                    amounts = dict(held)
                else:
                    amounts = {"cpus": min(held.get("cpus", 0), event[2] * CPU)}
                amounts = {k: v for k, v in amounts.items() if v}
                if amounts:
                    real.unallocated(client, amounts)
                    model.unallocated(client, amounts)
        elif kind in ("activate", "deactivate"):
            if client in model.clients:
                getattr(real, kind)(client)
                model.clients[client] = kind == "activate"
        elif kind == "weight":
            weights[client] = event[2]
            real.reshare_all()
        elif kind == "totals":
            totals["cpus"] = event[1] * CPU
            real.reshare_all()
        elif kind == "walk":
            popped: list = []
            taken = []
            for name in real.iterate(popped):
                if len(taken) == event[1]:
                    break
                taken.append(name)
            DRFSorter.restore(popped)
            assert taken == model.sort()[: len(taken)]
        expected = model.sort()
        assert real.sort() == expected, f"after {event}"
        assert real.first() == (expected[0] if expected else None), f"after {event}"
        for c in model.clients:
            assert real.allocation(c) == model.allocation[c]
            assert real.is_active(c) == model.clients[c]
        assert sorted(real.clients()) == sorted(model.clients)
