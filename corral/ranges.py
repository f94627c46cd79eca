"""Ranges of integers (ports), as Mesos's ``Value::Ranges``: sorted, disjoint, inclusive."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Iterator


class InvalidRanges(ValueError):
    """Text or bounds that are not a valid set of ranges."""


class Ranges:
    """An immutable set of integers stored as sorted, disjoint, non-adjacent [begin, end] pairs."""

    __slots__ = ("_bounds", "_hash")

    def __init__(self, pairs: Iterable[tuple[int, int]] = ()) -> None:
        self._bounds: tuple[tuple[int, int], ...] = _coalesce(pairs)
        self._hash: int | None = None

    @classmethod
    def _trusted(cls, bounds: tuple[tuple[int, int], ...]) -> Ranges:
        ranges = cls.__new__(cls)
        ranges._bounds = bounds
        ranges._hash = None
        return ranges

    @classmethod
    def parse(cls, text: str) -> Ranges:
        """``[31000-32000, 33000-33001]``; overlapping or reversed ranges are refused."""
        body = text.strip()
        if not (body.startswith("[") and body.endswith("]")):
            raise InvalidRanges(f"ranges are written '[begin-end, ...]', got {text!r}")
        pairs: list[tuple[int, int]] = []
        for part in body[1:-1].split(","):
            part = part.strip()
            if not part:
                continue
            begin, dash, end = part.partition("-")
            if not dash or not begin.strip().isdigit() or not end.strip().isdigit():
                raise InvalidRanges(f"a range is 'begin-end' with integers >= 0, got {part!r}")
            pairs.append((int(begin), int(end)))
        return cls.validated(pairs)

    @classmethod
    def validated(cls, pairs: Iterable[tuple[int, int]]) -> Ranges:
        """Ranges from pairs given by a user: reversed, negative or overlapping ones are refused."""
        pairs = sorted((int(begin), int(end)) for begin, end in pairs)
        for begin, end in pairs:
            if begin < 0 or end < begin:
                raise InvalidRanges(f"range [{begin}-{end}] is empty or negative")
        for (_, end), (begin, next_end) in itertools.pairwise(pairs):
            if begin <= end:
                raise InvalidRanges(f"ranges overlap: ...-{end} and [{begin}-{next_end}]")
        return cls(pairs)

    # -- reading ----------------------------------------------------------------------

    @property
    def bounds(self) -> tuple[tuple[int, int], ...]:
        return self._bounds

    def __len__(self) -> int:
        """How many integers (e.g. ports) the ranges hold."""
        return sum(end - begin + 1 for begin, end in self._bounds)

    def __bool__(self) -> bool:
        return bool(self._bounds)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self._bounds)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ranges) and self._bounds == other._bounds

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(self._bounds)
        return self._hash

    def __repr__(self) -> str:
        return f"Ranges({self})"

    def __str__(self) -> str:
        return "[" + ", ".join(f"{begin}-{end}" for begin, end in self._bounds) + "]"

    def __contains__(self, value: int) -> bool:
        index = bisect.bisect_right(self._bounds, (value, float("inf"))) - 1
        return index >= 0 and self._bounds[index][0] <= value <= self._bounds[index][1]

    def contains(self, other: Ranges) -> bool:
        """Whether every integer of ``other`` is in these ranges."""
        mine = self._bounds
        index = 0
        for begin, end in other._bounds:
            while index < len(mine) and mine[index][1] < begin:
                index += 1
            if index == len(mine) or mine[index][0] > begin or mine[index][1] < end:
                return False
        return True

    # -- arithmetic -------------------------------------------------------------------

    def __or__(self, other: Ranges) -> Ranges:
        if not other._bounds:
            return self
        if not self._bounds:
            return other
        return Ranges(self._bounds + other._bounds)

    def __sub__(self, other: Ranges) -> Ranges:
        if not other._bounds or not self._bounds:
            return self
        result: list[tuple[int, int]] = []
        cuts = other._bounds
        index = 0
        for begin, end in self._bounds:
            while index < len(cuts) and cuts[index][1] < begin:
                index += 1
            probe = index
            while begin <= end and probe < len(cuts) and cuts[probe][0] <= end:
                cut_begin, cut_end = cuts[probe]
                if cut_begin > begin:
                    result.append((begin, cut_begin - 1))
                begin = max(begin, cut_end + 1)
                probe += 1
            if begin <= end:
                result.append((begin, end))
        return Ranges._trusted(tuple(result))

    def __and__(self, other: Ranges) -> Ranges:
        return self - (self - other)


def _coalesce(pairs: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Sort and merge overlapping or adjacent pairs; drop empty ones."""
    ordered = sorted(pair for pair in pairs if pair[0] <= pair[1])
    merged: list[tuple[int, int]] = []
    for begin, end in ordered:
        if merged and begin <= merged[-1][1] + 1:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((begin, end))
    return tuple(merged)
