"""Dominant Resource Fairness: one share formula and one ordering, used by every sorter.

Both the fast allocator and the reference call these, so their floating-point shares
are bit-for-bit the same and their orders agree.
"""

from __future__ import annotations

from collections.abc import Mapping


def drf_share(
    allocation: Mapping[str, int],
    totals: Mapping[str, int],
    weight: float,
    excluded: frozenset[str],
) -> float:
    """max over resources of allocation/total, divided by the weight.

    Resources with a zero total and names in ``excluded`` do not count.
    """
    share = 0.0
    for name, total in totals.items():
        if total > 0 and name not in excluded:
            allocated = allocation.get(name, 0)
            if allocated:
                ratio = allocated / total
                if ratio > share:
                    share = ratio
    return share / weight


def share_terms(totals: Mapping[str, int], excluded: frozenset[str]) -> list[tuple[str, int]]:
    """The (name, total) pairs that count towards shares, for ``drf_share_terms``."""
    return [(name, total) for name, total in totals.items() if total > 0 and name not in excluded]


def drf_share_terms(
    allocation: Mapping[str, int], terms: list[tuple[str, int]], weight: float
) -> float:
    """``drf_share`` with its terms prepared once: the same arithmetic, the same floats."""
    share = 0.0
    get = allocation.get
    for name, total in terms:
        allocated = get(name)
        if allocated:
            ratio = allocated / total
            if ratio > share:
                share = ratio
    return share / weight


def drf_key(share: float, count: int, path: str) -> tuple[float, int, str]:
    """Lower share first, then fewer allocations so far, then name (as Mesos's sorter)."""
    return (share, count, path)
