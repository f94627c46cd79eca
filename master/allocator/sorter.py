"""The DRF sorter: pure ordering policy over a tree of clients, kept incrementally.

Mesos re-sorts a fresh vector on every ``sort()`` — per agent, per role — so a cycle
costs O(agents x clients). Here each internal node keeps a heap of its children keyed
by (share, allocation count, path); a changed share pushes a fresh entry and leaves the
old one stale (dropped when it surfaces). ``iterate`` walks the tree in DRF order by
popping lazily — an allocation usually takes the first client, so visiting the order
costs O(log clients) — and ``restore`` puts back what was popped. Callers must not change
allocations between ``iterate`` and ``restore``: that is what makes the order a snapshot,
exactly as Mesos's per-agent ``sort()``.

A client that also has children (role ``eng`` beside ``eng/web``) is an internal node with
a virtual leaf ``eng/.`` holding the role's own allocation, as in Mesos.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator, Mapping

from master.allocator.drf import drf_share_terms, share_terms

_versions = itertools.count(1)  # unique across nodes, so heap entries never tie up to the node


class _Node:
    __slots__ = (
        "active",
        "allocation",
        "children",
        "client",
        "count",
        "heap",
        "key_path",
        "lazy",
        "live",
        "own_count",
        "parent",
        "path",
        "share",
        "version",
        "virtual",
    )

    def __init__(self, path: str, key_path: str, parent: _Node | None, client: str | None):
        self.path = path  # the role path this node stands for ("" for the root)
        self.key_path = key_path  # the path used to break ties ("eng/." for a virtual leaf)
        self.virtual = key_path.endswith("/.")
        self.parent = parent
        self.client = client  # set for leaves: what iterate() yields
        # Invariant: an internal node's allocation is the sum of its children's.
        self.allocation: dict[str, int] = {}
        self.count = 0  # allocations recorded in this subtree since the node was created
        self.own_count = 0  # leaves: allocations to the client itself (a virtual leaf's key)
        self.share = 0.0
        self.version = next(_versions)  # renewed whenever the entry in the parent's heap goes stale
        self.active = True  # leaves only: inactive leaves are not in the parent's heap
        self.children: dict[str, _Node] = {}  # by key path; internal nodes only
        self.heap: list[tuple] = []  # entries (share, count, key_path, version, node)
        self.live = 0  # entries of the heap that are current
        # The only live child, whose entry's key is out of date: with nothing to order it
        # against, its updates skip the heap until a sibling arrives (see _refresh_lazy).
        self.lazy: _Node | None = None

    def is_leaf(self) -> bool:
        return self.client is not None

    def key_count(self) -> int:
        return self.own_count if self.virtual else self.count


class DRFSorter:
    """Orders clients (roles, or frameworks within a role) by weighted dominant share."""

    def __init__(
        self,
        totals: Mapping[str, int],
        excluded: frozenset[str] = frozenset(),
        weights: Mapping[str, float] | None = None,
        hierarchical: bool = True,
    ) -> None:
        self._totals = totals  # shared with the allocator, which keeps it current
        self._excluded = excluded
        self._weights = weights if weights is not None else {}
        self._hierarchical = hierarchical
        self._root = _Node("", "", None, None)
        self._leaves: dict[str, _Node] = {}  # client -> its leaf (possibly virtual)
        self._internal: dict[str, _Node] = {"": self._root}  # path -> internal node
        # The totals that count towards shares; refreshed by reshare_all, which the owner
        # calls whenever the totals change, before it reads any order.
        self._terms = share_terms(totals, excluded)

    # -- membership -----------------------------------------------------------------------

    def __contains__(self, client: str) -> bool:
        return client in self._leaves

    def __len__(self) -> int:
        return len(self._leaves)

    def clients(self) -> list[str]:
        return list(self._leaves)

    def add(self, client: str, active: bool = True) -> None:
        if client in self._leaves:
            raise ValueError(f"client {client!r} is already in the sorter")
        parts = client.split("/") if self._hierarchical else [client]
        parent = self._root
        for depth in range(1, len(parts)):
            path = "/".join(parts[:depth])
            node = self._internal.get(path)
            if node is None:
                node = _Node(path, path, parent, None)
                self._internal[path] = node
                leaf = self._leaves.get(path)
                if leaf is not None:
                    self._demote_leaf(leaf, node)
                else:
                    parent.children[path] = node
                    self._push(node)
            parent = node
        if client in self._internal:
            # The client already has children: it lives as a virtual leaf under its node.
            parent = self._internal[client]
            leaf = _Node(client, client + "/.", parent, client)
        else:
            leaf = _Node(client, client, parent, client)
        leaf.active = active
        self._leaves[client] = leaf
        parent.children[leaf.key_path] = leaf
        self._reshare(leaf)
        if active:
            self._push(leaf)

    def remove(self, client: str) -> None:
        leaf = self._leaves.pop(client)
        parent = leaf.parent
        if leaf.allocation:
            self._propagate(parent, leaf.allocation, -1, count=0)
        self._detach(leaf)
        # Collapse internal nodes left with nothing, or with only a virtual leaf.
        while parent is not self._root:
            grand = parent.parent
            if not parent.children:
                self._detach(parent)
                del self._internal[parent.path]
            elif len(parent.children) == 1:
                (only,) = parent.children.values()
                if only.virtual:
                    self._promote_virtual(parent, only)
                break
            else:
                break
            parent = grand

    def activate(self, client: str) -> None:
        leaf = self._leaves[client]
        if not leaf.active:
            leaf.active = True
            self._push(leaf)

    def deactivate(self, client: str) -> None:
        leaf = self._leaves[client]
        if leaf.active:
            if leaf.parent.lazy is leaf:
                leaf.parent.lazy = None
            leaf.active = False
            leaf.version = next(_versions)
            leaf.parent.live -= 1

    def is_active(self, client: str) -> bool:
        return self._leaves[client].active

    def alone(self, client: str) -> bool:
        """Whether ``client`` is active and nothing else in its path can be ordered against
        it (every node from its leaf up has no other active sibling): then allocations to it
        cannot change the order, and may be recorded late. (False when unsure.)"""
        node = self._leaves[client]
        if not node.active:
            return False
        while node is not self._root:
            node = node.parent
            if node.live != 1:
                return False
        return True

    # -- allocations ----------------------------------------------------------------------

    def allocated(self, client: str, quantities: Mapping[str, int], times: int = 1) -> None:
        """Record an allocation (``times`` alike ones): it adds to the client's and every
        ancestor's allocation and allocation count, and reorders them. (The allocator's hot
        path: written out flat.)"""
        leaf = self._leaves[client]
        if times != 1:
            quantities = {name: amount * times for name, amount in quantities.items()}
        allocation = leaf.allocation
        get = allocation.get
        for name, amount in quantities.items():
            allocation[name] = get(name, 0) + amount
        leaf.count += times
        leaf.own_count += times
        parent = leaf.parent
        if leaf.active and parent.live == 1 and (parent.lazy is None or parent.lazy is leaf):
            parent.lazy = leaf  # alone among its siblings: nothing to reorder
            if parent is not self._root:
                self._propagate(parent, quantities, 1, count=times)
            return
        weights = self._weights
        weight = weights.get(leaf.path, 1.0) if weights else 1.0
        leaf.share = drf_share_terms(allocation, self._terms, weight)
        version = leaf.version = next(_versions)
        if leaf.active:
            key_count = leaf.own_count if leaf.virtual else leaf.count
            entry = (leaf.share, key_count, leaf.key_path, version, leaf)
            heap = parent.heap
            if heap and heap[0][4] is leaf:
                heapq.heapreplace(heap, entry)  # the leaf's old entry is on top: swap it out
            else:
                heapq.heappush(heap, entry)
                if len(heap) > 2 * parent.live + 32:
                    self._compact(parent)
        if parent is not self._root:
            self._propagate(parent, quantities, 1, count=times)

    def unallocated(self, client: str, quantities: Mapping[str, int]) -> None:
        leaf = self._leaves[client]
        _add_into(leaf.allocation, quantities, -1)
        self._reposition(leaf)
        self._propagate(leaf.parent, quantities, -1, count=0)

    def allocation(self, client: str) -> dict[str, int]:
        return dict(self._leaves[client].allocation)

    def subtree_allocation(self, path: str) -> dict[str, int]:
        """What ``path`` and everything under it hold (empty if not in the tree)."""
        node = self._internal.get(path) or self._leaves.get(path)
        return node.allocation if node is not None else {}

    def top_level_node(self, client: str) -> _Node:
        """The node right under the root that holds ``client`` (its DRF key orders the
        top-level roles; quota roles are top-level, so stage 1 orders them by it)."""
        node = self._leaves[client]
        while node.parent is not self._root:
            node = node.parent
        if self._root.lazy is node:
            self._refresh_lazy(self._root)  # its key is wanted now
        return node

    def top_level(self) -> list[str]:
        return [node.path for node in self._root.children.values()]

    def share(self, client: str) -> float:
        return self._share_of(self._leaves[client])  # (a lazy leaf's .share is out of date)

    def reshare_all(self) -> None:
        """Recompute every share (after the cluster totals or the weights changed)."""
        self._terms = share_terms(self._totals, self._excluded)
        stack = [self._root]
        while stack:
            node = stack.pop()
            node.heap = []
            node.live = 0
            node.lazy = None
            for child in node.children.values():
                child.share = self._share_of(child)
                child.version = next(_versions)
                if not child.is_leaf():
                    stack.append(child)
                if child.active:
                    entry = (child.share, child.key_count(), child.key_path, child.version, child)
                    node.heap.append(entry)
                    node.live += 1
            heapq.heapify(node.heap)

    # -- ordering ---------------------------------------------------------------------------

    def iterate(self, popped: list) -> Iterator[str]:
        """Active clients in DRF order; every entry taken off a heap is appended to ``popped``
        so that ``restore(popped)`` can put it back. Do not change allocations in between."""
        return self._walk(self._root, popped)

    def _walk(self, node: _Node, popped: list) -> Iterator[str]:
        # Peek, and pop only when the consumer asks for the next one: the usual consumer
        # takes the first client and stops, leaving the heap untouched.
        heap = node.heap
        pop = heapq.heappop
        while heap:
            entry = heap[0]
            child = entry[4]
            if entry[3] != child.version or child.parent is not node:
                pop(heap)  # stale: dropped for good
                continue
            if child.client is not None:
                yield child.client
            else:
                yield from self._walk(child, popped)
            pop(heap)  # nothing changes the heaps while iterating, so this is ``entry``
            popped.append((node, entry))

    def first(self) -> str | None:
        """The first active client in DRF order, or None: ``iterate`` without a generator
        and without taking anything off a heap (the allocator's usual question)."""
        node = self._root
        pop = heapq.heappop
        while True:
            heap = node.heap
            while heap:
                entry = heap[0]
                child = entry[4]
                if entry[3] == child.version and child.parent is node:
                    break
                pop(heap)  # stale: dropped for good
            else:
                return None if node is self._root else self._first_after(node)
            if child.client is not None:
                return child.client
            node = child

    def _first_after(self, node: _Node) -> str | None:
        """An internal node with no active client under it: fall back to the full walk."""
        popped: list = []
        for client in self.iterate(popped):
            self.restore(popped)
            return client
        self.restore(popped)
        return None

    @staticmethod
    def restore(popped: list) -> None:
        """Put back what ``iterate`` took, except entries that went stale meanwhile."""
        if not popped:
            return
        push = heapq.heappush
        for node, entry in popped:
            child = entry[4]
            if entry[3] == child.version and child.parent is node:
                push(node.heap, entry)
        popped.clear()

    def sort(self) -> list[str]:
        """The whole order (tests, state endpoints). O(clients log clients)."""
        popped: list = []
        order = list(self.iterate(popped))
        self.restore(popped)
        return order

    # -- internals --------------------------------------------------------------------------

    def _share_of(self, node: _Node) -> float:
        return drf_share_terms(node.allocation, self._terms, self._weights.get(node.path, 1.0))

    def _reshare(self, node: _Node) -> None:
        node.share = self._share_of(node)

    def _push(self, node: _Node) -> None:
        parent = node.parent
        if parent.lazy is not None:
            if parent.lazy is node:
                parent.lazy = None  # pushed fresh below
            else:
                self._refresh_lazy(parent)
        node.share = self._share_of(node)  # (it may have gone out of date while lazy)
        node.version = next(_versions)
        entry = (node.share, node.key_count(), node.key_path, node.version, node)
        heapq.heappush(parent.heap, entry)
        parent.live += 1
        if len(parent.heap) > 2 * parent.live + 32:
            self._compact(parent)

    @staticmethod
    def _compact(node: _Node) -> None:
        node.heap = [e for e in node.heap if e[3] == e[4].version and e[4].parent is node]
        heapq.heapify(node.heap)

    def _refresh_lazy(self, parent: _Node) -> None:
        """A sibling arrives: give the lone child's entry its real key first."""
        lazy = parent.lazy
        parent.lazy = None
        if lazy is not None and lazy.parent is parent and lazy.active:
            parent.live -= 1
            self._push(lazy)

    def _reposition(self, node: _Node) -> None:
        parent = node.parent
        if node.active and parent.live == 1 and (parent.lazy is None or parent.lazy is node):
            parent.lazy = node  # alone among its siblings: nothing to reorder
            return
        if node.active:
            parent.live -= 1
            self._push(node)
        else:
            node.share = self._share_of(node)
            node.version = next(_versions)

    def _propagate(self, node: _Node, quantities: Mapping[str, int], sign: int, count: int):
        """Add ``quantities`` (times ``sign``) and ``count`` allocations up to the root."""
        while node is not self._root:
            _add_into(node.allocation, quantities, sign)
            if count:
                node.count += count
            self._reposition(node)
            node = node.parent

    def _detach(self, node: _Node) -> None:
        parent = node.parent
        if parent.lazy is node:
            parent.lazy = None
        del parent.children[node.key_path]
        if node.active:
            parent.live -= 1
        node.version = next(_versions)
        node.parent = None

    def _demote_leaf(self, leaf: _Node, internal: _Node) -> None:
        """A leaf gets children: it becomes an internal node over a virtual leaf of its own.

        The internal node takes the leaf's place (its allocation and count); the virtual leaf
        keeps the role's own allocation and count."""
        old_parent = leaf.parent
        if old_parent.lazy is leaf:
            old_parent.lazy = None
        del old_parent.children[leaf.key_path]  # replaced by ``internal`` under the same key
        if leaf.active:
            old_parent.live -= 1
        old_parent.children[internal.key_path] = internal
        internal.allocation = dict(leaf.allocation)
        internal.count = leaf.count
        self._push(internal)
        leaf.parent = internal
        leaf.key_path = leaf.path + "/."
        leaf.virtual = True
        internal.children[leaf.key_path] = leaf
        leaf.version = next(_versions)
        if leaf.active:
            self._push(leaf)

    def _promote_virtual(self, internal: _Node, leaf: _Node) -> None:
        """The last child beside a virtual leaf is gone: the leaf takes the node's place."""
        parent = internal.parent
        self._detach(internal)
        del self._internal[internal.path]
        leaf.parent = parent
        leaf.key_path = leaf.path
        leaf.virtual = False
        leaf.count = internal.count
        parent.children[leaf.key_path] = leaf
        leaf.version = next(_versions)
        self._reshare(leaf)
        if leaf.active:
            self._push(leaf)


def _add_into(target: dict[str, int], quantities: Mapping[str, int], sign: int) -> None:
    for name, amount in quantities.items():
        value = target.get(name, 0) + sign * amount
        if value > 0:
            target[name] = value
        else:
            target.pop(name, None)
