"""``BoundedMemo``: values computed once and looked up after, forgotten all at once when full.

The master meets the same ids, resources and allocated forms again and again; each is checked
or built once and shared (the values are immutable). Clearing when full keeps the memory
bounded without the bookkeeping of an LRU: what recurs comes back after one miss.
"""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedMemo(dict[K, V]):
    """A dict read with ``get`` (at C speed) and filled with ``put``."""

    __slots__ = ("limit",)

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: K, value: V) -> V:
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value
