"""Ranges of integers (ports): parsing, validation, set algebra, checked against a set model."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.ranges import InvalidRanges, Ranges

MAX_UINT64 = 2**64 - 1


def as_set(ranges: Ranges) -> set[int]:
    return {n for begin, end in ranges for n in range(begin, end + 1)}


def from_set(numbers: set[int]) -> Ranges:
    return Ranges((n, n) for n in numbers)


def assert_canonical(ranges: Ranges) -> None:
    """Sorted, disjoint, not adjacent, each pair non-empty: the form every Ranges keeps."""
    bounds = ranges.bounds
    for begin, end in bounds:
        assert 0 <= begin <= end
    for (_, end), (begin, _) in itertools.pairwise(bounds):
        assert begin > end + 1, f"{bounds} is not coalesced"


# -- parsing and printing ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, bounds",
    [
        ("[]", ()),
        ("[31000-32000]", ((31000, 32000),)),
        ("[1-2, 4-5]", ((1, 2), (4, 5))),
        ("[ 4-5 ,1-2 ]", ((1, 2), (4, 5))),  # spaces and order do not matter
        ("[1-2,3-4]", ((1, 4),)),  # adjacent ranges are merged
        ("[7-7]", ((7, 7),)),
        (" [0-0] ", ((0, 0),)),
        (f"[0-{MAX_UINT64}]", ((0, MAX_UINT64),)),
    ],
)
def test_parse(text: str, bounds: tuple[tuple[int, int], ...]) -> None:
    assert Ranges.parse(text).bounds == bounds


@pytest.mark.parametrize("text", ["[]", "[1-2]", "[1-2, 4-5]", "[0-0, 2-2, 4-100]"])
def test_str_round_trips(text: str) -> None:
    assert str(Ranges.parse(text)) == text
    assert Ranges.parse(str(Ranges.parse(text))) == Ranges.parse(text)
    assert repr(Ranges.parse(text)) == f"Ranges({text})"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1-2", "written '[begin-end, ...]'"),
        ("[1-2", "written '[begin-end, ...]'"),
        ("1-2]", "written '[begin-end, ...]'"),
        ("[1]", "'begin-end'"),
        ("[1-]", "'begin-end'"),
        ("[-2]", "'begin-end'"),
        ("[a-b]", "'begin-end'"),
        ("[1.5-2]", "'begin-end'"),
        ("[-1-2]", "'begin-end'"),  # negative
        ("[1-2-3]", "'begin-end'"),
        ("[\u00b2-3]", "'begin-end'"),  # a superscript digit is not an integer
        ("[\u0663-5]", "'begin-end'"),  # nor is an Arabic-Indic one
        ("[5-3]", "begin <= end"),
        ("[1-5, 3-7]", "overlap"),
        ("[1-5, 5-7]", "overlap"),
        ("[1-10, 2-3]", "overlap"),
        (f"[0-{MAX_UINT64 + 1}]", "2^64"),
    ],
)
def test_parse_refuses(text: str, expected: str) -> None:
    with pytest.raises(InvalidRanges) as error:
        Ranges.parse(text)
    assert expected in str(error.value)


def test_parse_error_names_the_input() -> None:
    with pytest.raises(InvalidRanges) as error:
        Ranges.parse("[1-5, 3-7]")
    message = str(error.value)
    assert "[1-5]" in message and "[3-7]" in message


# -- building ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pairs, bounds",
    [
        ([], ()),
        ([(1, 2), (3, 4)], ((1, 4),)),  # adjacent
        ([(1, 5), (3, 7)], ((1, 7),)),  # overlapping
        ([(1, 10), (2, 3)], ((1, 10),)),  # contained
        ([(8, 9), (1, 2)], ((1, 2), (8, 9))),  # unsorted
        ([(5, 6), (5, 6)], ((5, 6),)),  # repeated
        ([(4, 3), (1, 1)], ((1, 1),)),  # reversed pairs are empty and dropped
        ([(1, 2), (4, 5), (3, 3)], ((1, 5),)),  # a gap filled
    ],
)
def test_internal_pairs_are_coalesced(
    pairs: list[tuple[int, int]], bounds: tuple[tuple[int, int], ...]
) -> None:
    assert Ranges(pairs).bounds == bounds


def test_validated_accepts_disjoint_and_adjacent_pairs() -> None:
    assert Ranges.validated([(3, 4), (1, 2), (10, 10)]).bounds == ((1, 4), (10, 10))


@pytest.mark.parametrize(
    "pairs, expected",
    [
        ([(5, 3)], "[5-3]"),
        ([(-1, 3)], "[-1-3]"),
        ([(-5, -1)], "[-5--1]"),
        ([(1, 5), (3, 7)], "overlap"),
        ([(1, 5), (5, 7)], "overlap"),
        ([(3, 7), (1, 10)], "overlap"),
        ([(1.5, 3)], "integers"),
        ([("1", 3)], "integers"),
        ([(True, 3)], "integers"),
        ([(None, 3)], "integers"),
        ([(0, MAX_UINT64 + 1)], "2^64"),
    ],
)
def test_validated_refuses(pairs: list[tuple[object, object]], expected: str) -> None:
    with pytest.raises(InvalidRanges) as error:
        Ranges.validated(pairs)  # type: ignore[arg-type]
    assert expected in str(error.value)


def test_validated_error_says_what_was_expected() -> None:
    with pytest.raises(InvalidRanges, match="begin <= end"):
        Ranges.validated([(5, 3)])
    with pytest.raises(InvalidRanges, match=">= 0"):
        Ranges.validated([(-1, 3)])


def test_validated_refuses_pairs_that_are_not_pairs() -> None:
    with pytest.raises(InvalidRanges, match="pair"):
        Ranges.validated([(1, 2, 3)])  # type: ignore[list-item]
    with pytest.raises(InvalidRanges, match="pair"):
        Ranges.validated([5])  # type: ignore[list-item]


# -- reading -------------------------------------------------------------------------------


def test_len_counts_integers() -> None:
    assert len(Ranges()) == 0
    assert len(Ranges.parse("[31000-32000]")) == 1001
    assert len(Ranges.parse("[1-1, 3-5]")) == 4


def test_bool_iter_eq_hash() -> None:
    assert not Ranges()
    assert Ranges([(1, 1)])
    assert list(Ranges.parse("[1-2, 4-5]")) == [(1, 2), (4, 5)]
    assert Ranges([(1, 2), (3, 4)]) == Ranges([(1, 4)])
    assert hash(Ranges([(1, 2), (3, 4)])) == hash(Ranges([(1, 4)]))
    assert Ranges([(1, 2)]) != Ranges([(1, 3)])
    assert Ranges([(1, 2)]) != ((1, 2),)


def test_contains_element() -> None:
    ranges = Ranges.parse("[1-2, 5-9]")
    assert [n for n in range(12) if n in ranges] == [1, 2, 5, 6, 7, 8, 9]
    assert 0 not in Ranges()


def test_contains_ranges() -> None:
    ranges = Ranges.parse("[1-2, 5-9]")
    assert ranges.contains(Ranges())
    assert ranges.contains(ranges)
    assert ranges.contains(Ranges.parse("[1-1, 6-9]"))
    assert not ranges.contains(Ranges.parse("[1-3]"))
    assert not ranges.contains(Ranges.parse("[2-5]"))  # spans the gap
    assert not ranges.contains(Ranges.parse("[10-10]"))
    assert not Ranges().contains(ranges)


# -- arithmetic ----------------------------------------------------------------------------


def test_union() -> None:
    assert Ranges.parse("[1-2]") | Ranges.parse("[3-4]") == Ranges.parse("[1-4]")
    assert Ranges.parse("[1-5]") | Ranges.parse("[3-9]") == Ranges.parse("[1-9]")
    assert Ranges.parse("[1-2]") | Ranges.parse("[8-9]") == Ranges.parse("[1-2, 8-9]")
    assert Ranges() | Ranges.parse("[1-2]") == Ranges.parse("[1-2]")
    assert Ranges.parse("[1-2]") | Ranges() == Ranges.parse("[1-2]")


def test_difference() -> None:
    assert Ranges.parse("[1-10]") - Ranges.parse("[3-4]") == Ranges.parse("[1-2, 5-10]")
    assert Ranges.parse("[1-10]") - Ranges.parse("[0-20]") == Ranges()
    assert Ranges.parse("[1-10]") - Ranges.parse("[1-1, 10-10]") == Ranges.parse("[2-9]")
    assert Ranges.parse("[1-3, 7-9]") - Ranges.parse("[3-7]") == Ranges.parse("[1-2, 8-9]")
    assert Ranges.parse("[1-3]") - Ranges() == Ranges.parse("[1-3]")
    assert Ranges() - Ranges.parse("[1-3]") == Ranges()


def test_intersection() -> None:
    assert Ranges.parse("[1-10]") & Ranges.parse("[5-20]") == Ranges.parse("[5-10]")
    assert Ranges.parse("[1-3, 7-9]") & Ranges.parse("[2-8]") == Ranges.parse("[2-3, 7-8]")
    assert Ranges.parse("[1-3]") & Ranges.parse("[4-6]") == Ranges()


# -- properties against a set-of-integers model --------------------------------------------

BOUND = 40
pairs = st.lists(
    st.tuples(st.integers(0, BOUND), st.integers(0, BOUND)).map(lambda p: (min(p), max(p))),
    max_size=6,
)
ranges_st = pairs.map(Ranges)


@settings(max_examples=200)
@given(pairs)
def test_coalescing_agrees_with_set_model(given_pairs: list[tuple[int, int]]) -> None:
    ranges = Ranges(given_pairs)
    assert_canonical(ranges)
    assert as_set(ranges) == {n for b, e in given_pairs for n in range(b, e + 1)}
    assert len(ranges) == len(as_set(ranges))
    assert bool(ranges) == bool(as_set(ranges))


@settings(max_examples=200)
@given(ranges_st, ranges_st)
def test_algebra_agrees_with_set_model(a: Ranges, b: Ranges) -> None:
    for result, model in [
        (a | b, as_set(a) | as_set(b)),
        (a - b, as_set(a) - as_set(b)),
        (a & b, as_set(a) & as_set(b)),
    ]:
        assert_canonical(result)
        assert as_set(result) == model
        assert result == from_set(model)
    assert a.contains(b) == (as_set(b) <= as_set(a))
    for n in range(-1, BOUND + 2):
        assert (n in a) == (n in as_set(a))


@settings(max_examples=200)
@given(ranges_st, ranges_st)
def test_algebraic_identities(a: Ranges, b: Ranges) -> None:
    assert (a - b) | (a & b) == a
    assert a | b == b | a
    assert a & b == b & a
    assert (a | b) - b == a - b
    assert a.contains(a & b)
    assert (a | b).contains(a)
    assert a.contains(a - b)
    assert not ((a - b) & b)
    assert len(a | b) == len(a) + len(b) - len(a & b)
    if a.contains(b):
        assert (a - b) | b == a


@settings(max_examples=200)
@given(ranges_st)
def test_text_round_trip(a: Ranges) -> None:
    assert Ranges.parse(str(a)) == a
    assert Ranges.validated(a.bounds) == a
