"""Ranges of integers (ports), as Mesos's ``Value::Ranges``: sorted, disjoint, inclusive."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Iterator


class InvalidRanges(ValueError):
    """Text or bounds that are not a valid set of ranges."""


_MAX_BOUND = 2**64 - 1  # Mesos's range bounds are uint64


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
            raise InvalidRanges(
                f"ranges are written '[begin-end, ...]', e.g. '[31000-32000]'; got {text!r}"
            )
        pairs: list[tuple[int, int]] = []
        for part in body[1:-1].split(","):
            part = part.strip()
            if not part:
                continue
            begin, dash, end = (piece.strip() for piece in part.partition("-"))
            if not (dash and _is_decimal(begin) and _is_decimal(end)):
                raise InvalidRanges(
                    f"a range is written 'begin-end' with integers >= 0, e.g. '31000-32000'; "
                    f"got {part!r} in {text!r}"
                )
            pairs.append((int(begin), int(end)))
        return cls.validated(pairs)

    @classmethod
    def validated(cls, pairs: Iterable[tuple[int, int]]) -> Ranges:
        """Ranges from pairs given by a user: reversed, negative or overlapping ones are refused.

        Adjacent pairs (``[1-2, 3-4]``) are fine and merged, as in Mesos; bounds are unsigned
        64-bit integers there, so they must lie in ``[0, 2^64 - 1]`` here too.
        """
        checked: list[tuple[int, int]] = []
        for pair in pairs:
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                raise InvalidRanges(f"a range is a (begin, end) pair, got {pair!r}")
            begin, end = pair
            if not all(type(bound) is int for bound in pair):
                raise InvalidRanges(
                    f"range bounds must be integers, got [{begin!r}-{end!r}]; "
                    "write them without quotes or decimals"
                )
            if begin < 0:
                problem = "bounds must be >= 0"
            elif end < begin:
                problem = "expected begin <= end; write the smaller bound first"
            elif end > _MAX_BOUND:
                problem = "bounds must be below 2^64"
            else:
                checked.append((begin, end))
                continue
            raise InvalidRanges(f"range [{begin}-{end}] is invalid: {problem}")
        checked.sort()
        for (begin, end), (next_begin, next_end) in itertools.pairwise(checked):
            if next_begin <= end:
                raise InvalidRanges(
                    f"ranges [{begin}-{end}] and [{next_begin}-{next_end}] overlap; "
                    "give each integer once (merge them into one range)"
                )
        return cls(checked)

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


def _is_decimal(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts '²', which ``int`` refuses."""
    return text.isascii() and text.isdigit()
