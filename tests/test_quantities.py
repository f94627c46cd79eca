"""Quantities: scalar amounts by name, in thousandths (quota, DRF shares, minimums)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral import quantities as q
from corral.resources import InvalidResources


def test_parse() -> None:
    assert q.parse_quantities("cpus:10;mem:4096") == {"cpus": 10_000, "mem": 4_096_000}
    assert q.parse_quantities(" cpus : 1.5 ; ; gpus:0.001 ") == {"cpus": 1500, "gpus": 1}
    assert q.parse_quantities("") == {}


def test_parse_drops_zeros() -> None:
    assert q.parse_quantities("cpus:0;mem:1") == {"mem": 1000}


def test_parse_rounds_to_thousandths_half_up() -> None:
    assert q.parse_quantities("cpus:0.0005;mem:1.0015") == {"cpus": 1, "mem": 1002}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("cpus", "'name:value'"),
        (":4", "'name:value'"),
        ("cpus:", "number"),
        ("cpus:1;cpus:2", "twice"),
        ("cpus:-1", "negative"),
        ("cpus:nan", "finite"),
        ("cpus:inf", "finite"),
        ("cpus:abc", "number"),
        ("ports:[1-2]", "number"),
        ("disks:{a}", "number"),
        ("cpus(eng):1", "name"),
        ("my cpus:1", "name"),
        ("cpus:0.0001", "0.001"),
    ],
)
def test_parse_refuses(text: str, expected: str) -> None:
    with pytest.raises(InvalidResources) as error:
        q.parse_quantities(text)
    assert expected in str(error.value)


def test_from_mapping() -> None:
    assert q.quantities_from_mapping({"cpus": 1.5, "mem": 0, "gpus": 2}) == {
        "cpus": 1500,
        "gpus": 2000,
    }
    with pytest.raises(InvalidResources, match="negative"):
        q.quantities_from_mapping({"cpus": -1})
    with pytest.raises(InvalidResources, match="name"):
        q.quantities_from_mapping({"": 1})
    with pytest.raises(InvalidResources, match="name"):
        q.quantities_from_mapping({3: 1})  # type: ignore[dict-item]
    with pytest.raises(InvalidResources, match="number"):
        q.quantities_from_mapping({"cpus": True})


def test_add_and_subtract() -> None:
    a = {"cpus": 2000, "mem": 1000}
    b = {"cpus": 500, "gpus": 1000}
    assert q.add(a, b) == {"cpus": 2500, "mem": 1000, "gpus": 1000}
    assert q.subtract(a, b) == {"cpus": 1500, "mem": 1000}
    assert q.subtract(b, a) == {"gpus": 1000}  # clamped at zero; zeros disappear
    assert q.subtract(a, a) == {}
    assert a == {"cpus": 2000, "mem": 1000} and b == {"cpus": 500, "gpus": 1000}


def test_into_variants_mutate_the_target_only() -> None:
    target = {"cpus": 2000}
    other = {"cpus": 3000, "mem": 1}
    q.add_into(target, other)
    assert target == {"cpus": 5000, "mem": 1}
    q.subtract_into(target, {"cpus": 6000})
    assert target == {"mem": 1}
    assert other == {"cpus": 3000, "mem": 1}


def test_contains() -> None:
    assert q.contains({"cpus": 2000, "mem": 10}, {"cpus": 2000})
    assert q.contains({"cpus": 2000}, {})
    assert not q.contains({"cpus": 2000}, {"cpus": 2001})
    assert not q.contains({"cpus": 2000}, {"mem": 1})


def test_format() -> None:
    assert q.format_quantities({"mem": 4_096_000, "cpus": 1500}) == "cpus:1.5;mem:4096"
    assert q.format_quantities({"cpus": 1}) == "cpus:0.001"
    assert q.format_quantities({"mem": 123_456_789}) == "mem:123456.789"
    assert q.format_quantities({"disk": 10**15}) == "disk:1000000000000"
    assert q.format_quantities({}) == ""


NAMES = ["cpus", "mem", "disk", "gpus"]
names = st.sampled_from(NAMES)
amounts = st.integers(1, 10**12)
quantities_st = st.dictionaries(names, amounts, max_size=4)


@settings(max_examples=200)
@given(quantities_st)
def test_format_round_trips(a: dict[str, int]) -> None:
    assert q.parse_quantities(q.format_quantities(a)) == a


@settings(max_examples=200)
@given(quantities_st, quantities_st)
def test_arithmetic_properties(a: dict[str, int], b: dict[str, int]) -> None:
    total = q.add(a, b)
    assert q.subtract(total, b) == a
    assert q.contains(total, a) and q.contains(total, b)
    left = q.subtract(a, b)
    assert all(amount > 0 for amount in left.values())
    assert q.contains(a, left)
    for name in NAMES:
        assert left.get(name, 0) == max(0, a.get(name, 0) - b.get(name, 0))
    assert q.contains(a, b) == all(a.get(n, 0) >= v for n, v in b.items())
    if q.contains(a, b):
        assert q.add(q.subtract(a, b), b) == a
