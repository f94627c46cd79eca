"""Resources: Mesos's text and JSON forms, validation, arithmetic and filters.

Arithmetic is checked against a plain model: a dict from (name, reservations, allocation role)
to an int (thousandths), a frozenset of integers (ranges) or a frozenset of strings (sets).
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral import quantities as q
from corral.ranges import Ranges
from corral.resources import (
    DYNAMIC,
    RANGES,
    SCALAR,
    SET,
    STATIC,
    InvalidResources,
    Reservation,
    Resource,
    Resources,
    to_millis,
)
from corral.roles import ancestors

# -- helpers -------------------------------------------------------------------------------


def items(resources: Resources) -> list[tuple[str, str, str | None, Any]]:
    """(name, top reservation role, allocation role, value) for each item, sorted."""
    return sorted(
        ((r.name, r.role, r.allocation_role, r.value) for r in resources),
        key=repr,
    )


def assert_invariant(resources: Resources) -> None:
    """No item holds an empty value; every value has one of the three types."""
    for (name, reservations, allocation_role), value in resources._items.items():
        assert isinstance(name, str) and name
        assert isinstance(reservations, tuple)
        assert allocation_role is None or isinstance(allocation_role, str)
        if type(value) is int:
            assert value > 0, f"{name} holds {value}"
        else:
            assert isinstance(value, Ranges | frozenset), f"{name} holds {value!r}"
            assert value, f"{name} holds an empty {type(value).__name__}"


def scalar_json(name: str, value: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": "SCALAR", "scalar": {"value": value}, **extra}


def invalid(text_or_json: str | list[Any]) -> str:
    """The message of the InvalidResources raised for ``text_or_json``."""
    with pytest.raises(InvalidResources) as error:
        if isinstance(text_or_json, str):
            Resources.parse(text_or_json)
        else:
            Resources.from_json(text_or_json)
    return str(error.value)


# -- the text form -------------------------------------------------------------------------


def test_parse_text_form() -> None:
    r = Resources.parse("cpus:4;mem:2048;ports:[31000-32000];cpus(eng):2;disks:{a,b}")
    assert items(r) == sorted(
        [
            ("cpus", "*", None, 4000),
            ("mem", "*", None, 2_048_000),
            ("ports", "*", None, Ranges([(31000, 32000)])),
            ("cpus", "eng", None, 2000),
            ("disks", "*", None, frozenset({"a", "b"})),
        ],
        key=repr,
    )
    (reserved,) = r.reserved()
    assert reserved.reservations == (Reservation("eng", STATIC),)
    assert reserved.type == SCALAR and reserved.scalar == 2.0 and reserved.is_reserved()
    assert r.scalar("cpus") == 6.0 and r.scalar_millis("cpus") == 6000
    assert r.ranges("ports") == Ranges([(31000, 32000)])
    assert r.names() == {"cpus", "mem", "ports", "disks"}
    assert len(r) == 5
    assert_invariant(r)


def test_parse_text_details() -> None:
    assert Resources.parse("") == Resources()
    assert Resources.parse(" ; cpus : 1 ;; ") == Resources.scalars(cpus=1)
    assert Resources.parse("cpus:1;cpus:2") == Resources.scalars(cpus=3)  # like ones merge
    assert Resources.parse("cpus(*):1") == Resources.scalars(cpus=1)  # '*' is unreserved
    assert Resources.parse("cpus( eng/web ):1").reservation_roles() == {"eng/web"}
    assert Resources.parse("cpus:0;ports:[];disks:{}") == Resources()  # empty values vanish
    assert Resources.parse("cpus:1e3") == Resources.scalars(cpus=1000)
    assert Resources.parse("disks:{ a , b }").to_text() == "disks:{a,b}"


def test_parse_text_with_default_role() -> None:
    r = Resources.parse("cpus:1;mem(ops):2", default_role="eng")
    assert {(x.name, x.reservations) for x in r} == {
        ("cpus", (Reservation("eng", STATIC),)),
        ("mem", (Reservation("ops", STATIC),)),
    }
    with pytest.raises(InvalidResources, match="role"):
        Resources.parse("cpus:1", default_role="-bad")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("cpus", "'name:value'"),
        ("cpus:", "'name:value'"),
        ("cpus: ", "'name:value'"),
        (":4", "name"),
        ("cp us:4", "name"),
        ("cpus:-1", "negative"),
        ("cpus:-0.5", "negative"),
        ("cpus:nan", "finite"),
        ("cpus:inf", "finite"),
        ("cpus:-inf", "finite"),
        ("cpus:abc", "number"),
        ("cpus:1:2", "number"),
        ("cpus:1_000", "number"),
        ("cpus:1e400", "finite"),
        ("cpus:1e306", "too large"),
        ("cpus:0.0004", "0.001"),
        ("ports:[1-", "begin-end"),
        ("ports:[a-b]", "begin-end"),
        ("ports:[5-3]", "begin <= end"),
        ("ports:[1-5,3-7]", "overlap"),
        ("disks:{a,a}", "repeats"),
        ("disks:{a", "'{a,b}'"),
        ("cpus:1;cpus:[1-2]", "both as SCALAR and as RANGES"),
        ("disks:{a};disks(eng):1", "both as SET and as SCALAR"),
        ("cpus(-eng):1", "'-'"),
        ("cpus(eng/):1", "'/'"),
        ("cpus():1", "non-empty"),
        ("cpus(eng:1", "name(role)"),
        ("cpus(eng)x:1", "name(role)"),
        ("cpus(a b):1", "whitespace"),
    ],
)
def test_parse_text_refuses(text: str, expected: str) -> None:
    message = invalid(text)
    assert expected in message, message


def test_text_errors_name_the_resource() -> None:
    assert "'cpus'" in invalid("cpus:-1")
    assert "'ports'" in invalid("ports:[5-3]")
    assert "'disks'" in invalid("disks:{a,a}")


def test_parse_accepts_a_json_string() -> None:
    text = json.dumps(
        [
            scalar_json("cpus", 2),
            {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 1, "end": 3}]}},
        ]
    )
    assert Resources.parse(text) == Resources.parse("cpus:2;ports:[1-3]")
    assert Resources.parse("  []  ") == Resources()


def test_parse_json_string_errors() -> None:
    assert "does not parse" in invalid('[{"name": "cpus",')
    message = invalid('{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}')
    assert "list" in message and "[" in message  # says to wrap the object in a list


def test_parse_json_string_with_default_role() -> None:
    """As in Mesos, the default role applies to JSON resources that name no role."""
    text = json.dumps([scalar_json("cpus", 1), scalar_json("mem", 2, role="ops")])
    r = Resources.parse(text, default_role="eng")
    assert r == Resources.parse("cpus(eng):1;mem(ops):2")


# -- the JSON form -------------------------------------------------------------------------

FULL_JSON = [
    scalar_json("cpus", 1.5),
    {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 31000, "end": 31009}]}},
    {"name": "disks", "type": "SET", "set": {"item": ["sda", "sdb"]}},
    scalar_json("mem", 64, role="eng"),
    scalar_json(
        "cpus",
        2,
        reservations=[
            {"type": "STATIC", "role": "eng"},
            {
                "type": "DYNAMIC",
                "role": "eng/web",
                "principal": "alice",
                "labels": {"labels": [{"key": "team", "value": "web"}, {"key": "tier"}]},
            },
        ],
        allocation_info={"role": "eng/web"},
    ),
]


def test_from_json() -> None:
    r = Resources.from_json(FULL_JSON)
    assert r.scalar_millis("cpus") == 3500
    assert r.ranges("ports") == Ranges([(31000, 31009)])
    assert r.reserved("eng").scalar("mem") == 64.0
    (refined,) = r.reserved("eng/web")
    assert refined.reservations == (
        Reservation("eng", STATIC),
        Reservation("eng/web", DYNAMIC, "alice", (("team", "web"), ("tier", ""))),
    )
    assert refined.allocation_role == "eng/web"
    assert r.allocation_roles() == {"eng/web"}
    assert_invariant(r)


def test_json_round_trips() -> None:
    r = Resources.from_json(FULL_JSON)
    assert Resources.from_json(r.to_json()) == r
    assert Resources.from_json(json.loads(json.dumps(r.to_json()))) == r
    assert Resources.parse(json.dumps(r.to_json())) == r


def test_to_json_shape() -> None:
    r = Resources.parse("cpus(eng):1.5").allocated_to("eng")
    assert r.to_json() == [
        {
            "name": "cpus",
            "type": "SCALAR",
            "scalar": {"value": 1.5},
            "reservations": [{"type": "STATIC", "role": "eng"}],
            "allocation_info": {"role": "eng"},
        }
    ]
    assert Resources.parse("ports:[1-2,5-5];disks:{b,a}").to_json() == [
        {
            "name": "ports",
            "type": "RANGES",
            "ranges": {"range": [{"begin": 1, "end": 2}, {"begin": 5, "end": 5}]},
        },
        {"name": "disks", "type": "SET", "set": {"item": ["a", "b"]}},
    ]


def test_json_pre_refinement_format() -> None:
    """``role`` alone is a static reservation; ``role`` with ``reservation`` a dynamic one."""
    (static,) = Resources.from_json([scalar_json("cpus", 1, role="eng")])
    assert static.reservations == (Reservation("eng", STATIC),)
    (dynamic,) = Resources.from_json(
        [
            scalar_json(
                "cpus",
                1,
                role="eng",
                reservation={"principal": "p", "labels": {"labels": [{"key": "k", "value": "v"}]}},
            )
        ]
    )
    assert dynamic.reservations == (Reservation("eng", DYNAMIC, "p", (("k", "v"),)),)
    (unreserved,) = Resources.from_json([scalar_json("cpus", 1, role="*")])
    assert not unreserved.reservations


def test_json_both_formats_when_consistent() -> None:
    (r,) = Resources.from_json(
        [
            scalar_json(
                "cpus",
                1,
                role="eng",
                reservation={"principal": "p"},
                reservations=[{"type": "DYNAMIC", "role": "eng", "principal": "p"}],
            )
        ]
    )
    assert r.reservations == (Reservation("eng", DYNAMIC, "p"),)


def test_json_type_may_be_left_out_when_the_value_says_it() -> None:
    r = Resources.from_json(
        [
            {"name": "cpus", "scalar": {"value": 1}},
            {"name": "ports", "ranges": {"range": [{"begin": 1, "end": 2}]}},
            {"name": "disks", "set": {"item": ["a"]}},
        ]
    )
    assert r == Resources.parse("cpus:1;ports:[1-2];disks:{a}")


def test_json_empty_values_vanish() -> None:
    r = Resources.from_json(
        [
            scalar_json("cpus", 0),
            {"name": "ports", "type": "RANGES", "ranges": {}},
            {"name": "disks", "type": "SET", "set": {"item": []}},
        ]
    )
    assert r == Resources()


def reserved_json(*reservations: dict[str, Any], **extra: Any) -> list[Any]:
    return [scalar_json("cpus", 1, reservations=list(reservations), **extra)]


@pytest.mark.parametrize(
    "data, expected",
    [
        ({"name": "cpus"}, "list"),
        ([5], "object"),
        ([{"type": "SCALAR", "scalar": {"value": 1}}], "'name'"),
        ([scalar_json(3, 1)], "'name'"),
        ([scalar_json("", 1)], "name"),
        ([scalar_json("cpus", -1)], "negative"),
        ([scalar_json("cpus", math.nan)], "finite"),
        ([scalar_json("cpus", math.inf)], "finite"),
        ([scalar_json("cpus", "many")], "number"),
        ([scalar_json("cpus", True)], "number"),
        ([scalar_json("cpus", None)], "number"),
        ([scalar_json("cpus", 1e-4)], "0.001"),
        ([{"name": "cpus", "type": "SCALAR"}], "'scalar'"),
        ([{"name": "cpus", "type": "SCALAR", "scalar": 1}], "'scalar'"),
        ([{"name": "cpus", "type": "SCALAR", "scalar": {}}], "'scalar'"),
        ([{"name": "cpus"}], "'type'"),
        ([{"name": "t", "type": "TEXT", "text": {"value": "x"}}], "SCALAR, RANGES or SET"),
        ([{**scalar_json("cpus", 1), "set": {"item": ["a"]}}], "'set'"),
        (
            [{"name": "p", "type": "RANGES", "ranges": {"range": [{"begin": 5, "end": 3}]}}],
            "begin <= end",
        ),
        (
            [
                {
                    "name": "p",
                    "type": "RANGES",
                    "ranges": {"range": [{"begin": 1, "end": 5}, {"begin": 3, "end": 7}]},
                }
            ],
            "overlap",
        ),
        (
            [{"name": "p", "type": "RANGES", "ranges": {"range": [{"begin": 1.5, "end": 3}]}}],
            "integers",
        ),
        ([{"name": "p", "type": "RANGES", "ranges": {"range": [{"begin": -1, "end": 3}]}}], ">= 0"),
        ([{"name": "p", "type": "RANGES", "ranges": {"range": [{"begin": 1}]}}], "'begin'"),
        ([{"name": "p", "type": "RANGES", "ranges": {"range": [7]}}], "'begin'"),
        ([{"name": "p", "type": "RANGES", "ranges": [1, 2]}], "'ranges'"),
        ([{"name": "d", "type": "SET", "set": {"item": ["a", "a"]}}], "repeats"),
        ([{"name": "d", "type": "SET", "set": {"item": ["a", 1]}}], "strings"),
        ([{"name": "d", "type": "SET", "set": {"item": "ab"}}], "list"),
        (
            [scalar_json("x", 1), {"name": "x", "type": "SET", "set": {"item": ["a"]}}],
            "both as SCALAR and as SET",
        ),
        ([scalar_json("cpus", 1, role="-eng")], "'-'"),
        ([scalar_json("cpus", 1, role=5)], "string"),
        ([scalar_json("cpus", 1, role="*", reservation={})], "'*'"),
        ([scalar_json("cpus", 1, role="eng", reservation={"role": "eng"})], "'reservation'"),
        ([scalar_json("cpus", 1, role="eng", reservation={"type": "DYNAMIC"})], "'reservation'"),
        (reserved_json({"role": "eng"}), "'type'"),
        (reserved_json({"type": "DYNAMIC"}), "'role'"),
        (reserved_json({"type": "SOMETIMES", "role": "eng"}), "STATIC or DYNAMIC"),
        (reserved_json({"type": "DYNAMIC", "role": "*"}), "'*'"),
        (reserved_json({"type": "DYNAMIC", "role": "a//b"}), "'//'"),
        (reserved_json("eng"), "object"),
        (reserved_json({"type": "DYNAMIC", "role": "eng", "principal": 7}), "principal"),
        (reserved_json({"type": "DYNAMIC", "role": "eng", "labels": [{"key": "k"}]}), "labels"),
        (
            reserved_json(
                {"type": "DYNAMIC", "role": "eng", "labels": {"labels": [{"value": "v"}]}}
            ),
            "key",
        ),
        (reserved_json({"type": "DYNAMIC", "role": "eng", "labels": {"labels": ["k"]}}), "labels"),
        (
            reserved_json({"type": "DYNAMIC", "role": "eng"}, {"type": "DYNAMIC", "role": "ops"}),
            "refinement",
        ),
        (
            reserved_json({"type": "DYNAMIC", "role": "eng"}, {"type": "DYNAMIC", "role": "eng"}),
            "refinement",
        ),
        (
            reserved_json(
                {"type": "DYNAMIC", "role": "eng"}, {"type": "STATIC", "role": "eng/web"}
            ),
            "STATIC",
        ),
        (reserved_json({"type": "DYNAMIC", "role": "eng"}, role="ops"), "'role'"),
        (
            reserved_json(
                {"type": "STATIC", "role": "eng"},
                {"type": "DYNAMIC", "role": "eng/a"},
                role="eng/a",
            ),
            "'role'",
        ),
        (
            reserved_json({"type": "STATIC", "role": "eng"}, role="eng", reservation={}),
            "'reservation'",
        ),
        (
            reserved_json(
                {"type": "DYNAMIC", "role": "eng", "principal": "a"},
                role="eng",
                reservation={"principal": "b"},
            ),
            "principal",
        ),
        ([scalar_json("cpus", 1, reservations="eng")], "list"),
        ([scalar_json("cpus", 1, allocation_info="eng")], "allocation_info"),
        ([scalar_json("cpus", 1, allocation_info={"role": 5})], "string"),
        ([scalar_json("cpus", 1, allocation_info={"role": "a b"})], "whitespace"),
        ([scalar_json("cpus", 1, revocable={})], "revocable"),
        ([scalar_json("disk", 1, disk={"persistence": {"id": "v"}})], "disk"),
        ([scalar_json("disk", 1, shared={})], "shared"),
    ],
)
def test_from_json_refuses(data: Any, expected: str) -> None:
    message = invalid(data) if isinstance(data, list) else _invalid_object(data)
    assert expected in message, message


def _invalid_object(data: Any) -> str:
    with pytest.raises(InvalidResources) as error:
        Resources.from_json(data)
    return str(error.value)


def test_json_errors_name_the_resource() -> None:
    assert "'cpus'" in invalid([scalar_json("cpus", -1)])
    assert "'cpus'" in invalid(reserved_json({"type": "DYNAMIC", "role": "*"}))


# -- scalars in thousandths ----------------------------------------------------------------


@pytest.mark.parametrize(
    "value, millis",
    [
        (0, 0),
        (1, 1000),
        (1.5, 1500),
        ("2.25", 2250),
        (" 3 ", 3000),
        (0.001, 1),
        (0.0005, 1),  # halves round up, as Mesos's llround does
        (0.0015, 2),
        (0.0025, 3),
        (1.0025, 1003),
        (0.0125, 13),
        (0.1 + 0.2, 300),
        (1.23449, 1234),
        (-0.0, 0),
        (10**15, 10**18),
    ],
)
def test_to_millis(value: Any, millis: int) -> None:
    assert to_millis(value) == millis
    assert type(to_millis(value)) is int


@pytest.mark.parametrize(
    "value, expected",
    [
        (-1, "negative"),
        (math.nan, "finite"),
        (math.inf, "finite"),
        ("inf", "finite"),
        ("nan", "finite"),
        ("", "number"),
        ("1_000", "number"),
        ("0x10", "number"),
        (None, "number"),
        (True, "number"),
        ([1], "number"),
        (10**400, "too large"),
        (-(10**400), "negative"),
        (2**63 / 1000, "too large"),
        (1e306, "too large"),
        (0.0004, "0.001"),
        ("0.0001", "0.001"),
    ],
)
def test_to_millis_refuses(value: Any, expected: str) -> None:
    with pytest.raises(InvalidResources) as error:
        to_millis(value, "resource 'cpus'")
    message = str(error.value)
    assert expected in message and "resource 'cpus'" in message, message


def test_scalar_precision() -> None:
    assert Resources.parse("cpus:0.1") + Resources.parse("cpus:0.2") == Resources.parse("cpus:0.3")
    assert Resources.parse("cpus:0.0005").scalar("cpus") == 0.001
    assert (Resources.parse("cpus:1") - Resources.parse("cpus:0.999")).scalar_millis("cpus") == 1
    r = Resources.parse("mem:123456.789;cpus:0.001;disk:1000000000000.5")
    assert r.to_text() == "mem:123456.789;cpus:0.001;disk:1000000000000.5"
    assert Resources.parse(r.to_text()) == r
    assert Resources.scalars(cpus=1.5, mem=0) == Resources.parse("cpus:1.5")


def test_large_scalars_stay_exact_through_json() -> None:
    r = Resources.parse("disk:9000000000000000;mem:123456789.125")
    assert r.to_json()[0]["scalar"]["value"] == 9_000_000_000_000_000
    assert Resources.from_json(json.loads(json.dumps(r.to_json()))) == r
    assert Resources.parse(r.to_text()) == r


def test_scalars_builder() -> None:
    stack = (Reservation("eng", DYNAMIC, "p"),)
    r = Resources.scalars(stack, cpus=2, mem=1024)
    assert {x.reservations for x in r} == {stack}
    with pytest.raises(InvalidResources, match="negative"):
        Resources.scalars(cpus=-1)


def test_reservation_is_validated() -> None:
    with pytest.raises(InvalidResources, match="'\\*'"):
        Reservation("*")
    with pytest.raises(InvalidResources, match="STATIC or DYNAMIC"):
        Reservation("eng", "LATER")
    with pytest.raises(InvalidResources, match="'/'"):
        Reservation("/eng")
    with pytest.raises(InvalidResources, match="principal"):
        Reservation("eng", DYNAMIC, 5)  # type: ignore[arg-type]
    with pytest.raises(InvalidResources, match="labels"):
        Reservation("eng", DYNAMIC, None, (("k",),))  # type: ignore[arg-type]


def test_resource_accessors() -> None:
    (ports,) = Resources.parse("ports:[1-2]")
    assert ports.type == RANGES and ports.role == "*" and not ports.is_reserved()
    with pytest.raises(TypeError, match="not a scalar"):
        _ = ports.scalar
    (disks,) = Resources.parse("disks:{a}")
    assert disks.type == SET


# -- arithmetic, by example ----------------------------------------------------------------


def test_add_merges_like_resources() -> None:
    a = Resources.parse("cpus:1;ports:[1-3];disks:{a};cpus(eng):1")
    b = Resources.parse("cpus:2;ports:[4-5];disks:{b};mem:1")
    assert a + b == Resources.parse("cpus:3;ports:[1-5];disks:{a,b};cpus(eng):1;mem:1")
    assert a + Resources() is a and Resources() + a is a
    # different reservation stacks or allocation roles do not merge
    assert len(Resources.parse("cpus:1") + Resources.parse("cpus(eng):1")) == 2
    assert len(Resources.parse("cpus:1") + Resources.parse("cpus:1").allocated_to("eng")) == 2


def test_add_refuses_a_type_clash_on_one_key() -> None:
    with pytest.raises(InvalidResources, match="cannot add"):
        Resources.parse("x:1") + Resources.parse("x:{a}")


def test_subtract_removes_and_drops_empties() -> None:
    a = Resources.parse("cpus:2;mem:10;ports:[1-10];disks:{a,b}")
    assert a - Resources.parse("cpus:1;ports:[1-5];disks:{a}") == Resources.parse(
        "cpus:1;mem:10;ports:[6-10];disks:{b}"
    )
    assert a - Resources.parse("cpus:2") == Resources.parse("mem:10;ports:[1-10];disks:{a,b}")
    assert a - Resources.parse("cpus:3") == Resources.parse("mem:10;ports:[1-10];disks:{a,b}")
    assert a - Resources.parse("ports:[0-20];disks:{a,b,c}") == Resources.parse("cpus:2;mem:10")
    assert a - Resources.parse("gpus:1;cpus(eng):1") == a  # absent resources change nothing
    assert a - Resources() is a
    assert_invariant(a - a)
    assert a - a == Resources()


def test_contains_by_example() -> None:
    a = Resources.parse("cpus:2;ports:[1-10];disks:{a,b};cpus(eng):1")
    assert a.contains(Resources())
    assert a.contains(Resources.parse("cpus:2;ports:[3-4];disks:{b}"))
    assert not a.contains(Resources.parse("cpus:2.001"))
    assert not a.contains(Resources.parse("ports:[10-11]"))
    assert not a.contains(Resources.parse("disks:{c}"))
    assert not a.contains(Resources.parse("cpus(eng):2"))
    assert not a.contains(Resources.parse("cpus(ops):1"))  # reserved to another role
    assert not a.contains(Resources.parse("cpus:1").allocated_to("eng"))
    assert not Resources.parse("x:1").contains(Resources.parse("x:{a}"))


def test_allocation() -> None:
    a = Resources.parse("cpus:1;cpus(eng):2")
    allocated = a.allocated_to("eng/web")
    assert allocated.allocation_roles() == {"eng/web"}
    assert allocated.unallocated() == a
    assert a.unallocated() is not None and a.unallocated() == a
    # resources allocated to different roles merge when re-allocated to one
    mixed = Resources.parse("cpus:1").allocated_to("a") + Resources.parse("cpus:2").allocated_to(
        "b"
    )
    assert len(mixed) == 2
    assert mixed.unallocated() == Resources.parse("cpus:3")
    assert mixed.allocated_to("c") == Resources.parse("cpus:3").allocated_to("c")
    assert mixed.by_allocation_role() == {
        "a": Resources.parse("cpus:1").allocated_to("a"),
        "b": Resources.parse("cpus:2").allocated_to("b"),
    }
    assert Resources().by_allocation_role() == {}


def test_filters_by_example() -> None:
    r = Resources.parse("cpus:1;ports:[1-2];cpus(eng):2;mem(eng/web):3;disk(ops):4")
    assert r.unreserved() == Resources.parse("cpus:1;ports:[1-2]")
    assert r.reserved() == Resources.parse("cpus(eng):2;mem(eng/web):3;disk(ops):4")
    assert r.reserved("eng") == Resources.parse("cpus(eng):2")
    assert r.reserved("nobody") == Resources()
    assert r.reservation_roles() == {"eng", "eng/web", "ops"}
    assert r.allocatable_to("eng/web/api") == Resources.parse(
        "cpus:1;ports:[1-2];cpus(eng):2;mem(eng/web):3"
    )
    assert r.allocatable_to("eng") == Resources.parse("cpus:1;ports:[1-2];cpus(eng):2")
    assert r.allocatable_to("en") == r.unreserved()
    assert r.allocatable_to("*") == r.unreserved()
    assert r.scalars_only() == Resources.parse("cpus:1;cpus(eng):2;mem(eng/web):3;disk(ops):4")
    assert r.non_scalars() == Resources.parse("ports:[1-2]")
    assert r.filter(lambda x: x.name == "cpus") == Resources.parse("cpus:1;cpus(eng):2")
    assert r.has_reserved() and r.has_non_scalars()
    assert not r.unreserved().scalars_only().has_reserved()
    assert not r.scalars_only().has_non_scalars()
    assert r.quantities() == {"cpus": 3000, "mem": 3000, "disk": 4000}


def test_equality_hash_and_repr() -> None:
    a = Resources.parse("cpus:1;ports:[1-2]")
    b = Resources.parse("ports:[1-1,2-2];cpus:1")
    assert a == b and hash(a) == hash(b)
    assert a != Resources.parse("cpus:1")
    assert a != "cpus:1;ports:[1-2]"
    assert repr(Resources.parse("cpus:1")) == "Resources('cpus:1')"
    assert str(a) == a.to_text()


def test_repr_tells_apart_what_the_text_form_cannot() -> None:
    """Two unequal values must not print alike (hypothesis and pytest show reprs on failure)."""
    plain = Resources.parse("cpus(eng):1")
    dynamic = Resources.scalars((Reservation("eng", DYNAMIC, "p"),), cpus=1)
    allocated = plain.allocated_to("eng")
    assert len({repr(plain), repr(dynamic), repr(allocated)}) == 3


def test_operations_do_not_mutate_their_operands() -> None:
    a = Resources.parse("cpus:1;ports:[1-5];disks:{a};mem(eng):1")
    b = Resources.parse("cpus:2;ports:[3-9];disks:{b}")
    before = (dict(a._items), dict(b._items))
    _ = (a + b, a - b, b - a, a.allocated_to("x"), a.allocated_to("x").unallocated())
    _ = (a.filter(lambda r: True), a.unreserved(), a.reserved(), a.allocatable_to("eng"))
    _ = (a.scalars_only(), a.non_scalars(), a.by_allocation_role(), a.quantities())
    assert (a._items, b._items) == before


def test_text_form_is_lossy_only_where_documented() -> None:
    """The text form keeps names, values and the top reservation role, nothing more."""
    dynamic = Resources.scalars((Reservation("eng", DYNAMIC, "p"),), cpus=1)
    assert Resources.parse(dynamic.to_text()) == Resources.parse("cpus(eng):1")
    allocated = Resources.parse("cpus:1").allocated_to("eng")
    assert Resources.parse(allocated.to_text()) == Resources.parse("cpus:1")


# -- properties ----------------------------------------------------------------------------

STACKS = [
    (),
    (Reservation("eng", STATIC),),
    (Reservation("eng", DYNAMIC),),
    (Reservation("eng", DYNAMIC, "alice", (("team", "web"),)),),
    (Reservation("eng", STATIC), Reservation("eng/web", DYNAMIC)),
    (Reservation("ops", DYNAMIC),),
]
ALLOCATION_ROLES = [None, "eng", "eng/web", "ops"]
ROLES = ["eng", "eng/web", "eng/web/api", "ops", "other", "*"]

stacks = st.sampled_from(STACKS)
allocation_roles = st.sampled_from(ALLOCATION_ROLES)
small_pairs = st.tuples(st.integers(0, 30), st.integers(0, 30)).map(lambda p: (min(p), max(p)))

scalar_resources = st.builds(
    Resource, st.sampled_from(["cpus", "mem"]), st.integers(1, 5000), stacks, allocation_roles
)
ranges_resources = st.builds(
    Resource,
    st.just("ports"),
    st.lists(small_pairs, min_size=1, max_size=3).map(Ranges),
    stacks,
    allocation_roles,
)
set_resources = st.builds(
    Resource,
    st.just("disks"),
    st.frozensets(st.sampled_from("abcd"), min_size=1),
    stacks,
    allocation_roles,
)
resources_st = st.lists(
    st.one_of(scalar_resources, ranges_resources, set_resources), max_size=8
).map(Resources)
scalar_only_st = st.lists(scalar_resources, max_size=6).map(Resources)

Model = dict[tuple[str, tuple[Reservation, ...], str | None], Any]


def model(resources: Resources) -> Model:
    """Ranges become sets of integers; scalars and sets stay as they are."""
    out: Model = {}
    for r in resources:
        key = (r.name, r.reservations, r.allocation_role)
        if isinstance(r.value, Ranges):
            out[key] = frozenset(n for b, e in r.value for n in range(b, e + 1))
        else:
            out[key] = r.value
    return out


def model_add(a: Model, b: Model) -> Model:
    out = dict(a)
    for key, value in b.items():
        if key not in out:
            out[key] = value
        elif isinstance(value, int):
            out[key] = out[key] + value
        else:
            out[key] = out[key] | value
    return out


def model_sub(a: Model, b: Model) -> Model:
    out = dict(a)
    for key, value in b.items():
        if key in out:
            left = out[key] - value
            if (left > 0) if isinstance(left, int) else left:
                out[key] = left
            else:
                del out[key]
    return out


def model_contains(a: Model, b: Model) -> bool:
    return all(key in a and (a[key] >= value) for key, value in b.items())


@settings(max_examples=200)
@given(resources_st, resources_st)
def test_arithmetic_agrees_with_the_model(a: Resources, b: Resources) -> None:
    assert_invariant(a)
    assert model(a + b) == model_add(model(a), model(b))
    assert model(a - b) == model_sub(model(a), model(b))
    assert a.contains(b) == model_contains(model(a), model(b))
    assert_invariant(a + b)
    assert_invariant(a - b)


@settings(max_examples=200)
@given(resources_st, resources_st)
def test_arithmetic_identities(a: Resources, b: Resources) -> None:
    assert a + b == b + a
    assert a.contains(a)
    assert (a + b).contains(a) and (a + b).contains(b)
    assert a.contains(a - b)
    # Scalars come back exactly; ranges and sets lose what ``b`` shared with ``a``.
    assert (a + b) - b == a - b.non_scalars()
    if not (model(a.non_scalars()).keys() & model(b.non_scalars()).keys()):
        assert (a + b) - b == a
    if a.contains(b):
        assert (a - b) + b == a
    assert q.add(a.quantities(), b.quantities()) == (a + b).quantities()


@settings(max_examples=200)
@given(scalar_only_st, scalar_only_st)
def test_scalar_arithmetic_round_trips(a: Resources, b: Resources) -> None:
    assert (a + b) - b == a
    assert (a + b) - a == b


@settings(max_examples=200)
@given(resources_st, resources_st)
def test_subtracting_a_contained_part(a: Resources, c: Resources) -> None:
    b = a - c  # always contained in ``a``
    assert a.contains(b)
    assert (a - b) + b == a
    assert q.subtract(a.quantities(), b.quantities()) == (a - b).quantities()


@settings(max_examples=200)
@given(resources_st, st.sampled_from(ALLOCATION_ROLES[1:]))
def test_allocation_properties(a: Resources, role: str) -> None:
    allocated = a.allocated_to(role)
    assert allocated.allocation_roles() == ({role} if a else set())
    assert allocated.unallocated() == a.unallocated()
    assert allocated.quantities() == a.quantities()
    assert not a.unallocated().allocation_roles()
    assert_invariant(allocated)
    assert_invariant(a.unallocated())
    parts = a.by_allocation_role()
    total = Resources()
    for part_role, part in parts.items():
        assert part
        assert part.allocation_roles() == (set() if part_role is None else {part_role})
        total = total + part
    assert total == a
    assert set(parts) == {r.allocation_role for r in a}


@settings(max_examples=200)
@given(resources_st)
def test_filters_partition(a: Resources) -> None:
    for left, right in [
        (a.unreserved(), a.reserved()),
        (a.scalars_only(), a.non_scalars()),
    ]:
        assert left + right == a
        assert not (model(left).keys() & model(right).keys())
        assert_invariant(left)
        assert_invariant(right)
    assert not a.unreserved().has_reserved()
    assert a.has_reserved() == bool(a.reserved())
    assert a.has_non_scalars() == bool(a.non_scalars())
    assert a.quantities() == a.scalars_only().quantities()
    for name in ("cpus", "mem"):
        assert a.scalar_millis(name) == a.quantities().get(name, 0)
    by_role = Resources()
    for role in a.reservation_roles():
        by_role = by_role + a.reserved(role)
    assert by_role == a.reserved()


@settings(max_examples=100)
@given(resources_st, st.sampled_from(ROLES))
def test_allocatable_to(a: Resources, role: str) -> None:
    lineage = {role, *ancestors(role)}
    expected = [r for r in a if not r.reservations or r.role in lineage]
    assert a.allocatable_to(role) == Resources(expected)
    assert a.contains(a.allocatable_to(role))
    assert a.allocatable_to(role).contains(a.unreserved())


@settings(max_examples=100)
@given(resources_st)
def test_json_and_text_round_trips(a: Resources) -> None:
    assert Resources.from_json(a.to_json()) == a
    assert Resources.parse(json.dumps(a.to_json())) == a
    static = a.unallocated().filter(
        lambda r: all(x.type == STATIC for x in r.reservations) and len(r.reservations) <= 1
    )
    assert Resources.parse(static.to_text()) == static
    assert hash(Resources.from_json(a.to_json())) == hash(a)


def test_from_wire_validates_each_distinct_form_once_and_shares_the_value():
    data = Resources.parse("cpus:0.5;mem:64;ports:[31000-31010]").to_json()
    first = Resources.from_wire(data)
    again = Resources.from_wire([dict(item) for item in data])  # equal, not the same list
    assert again is first and first == Resources.from_json(data)
    bad = [{"name": "cpus", "type": "SCALAR", "scalar": {"value": -1}}]
    for _ in range(2):  # refused every time: a refusal is not remembered
        with pytest.raises(InvalidResources, match="must not be negative"):
            Resources.from_wire(bad)
    with pytest.raises(InvalidResources, match="is a list"):
        Resources.from_wire({"not": {1, 2}})  # not plain data: judged without the memo


def test_derived_forms_of_one_value_are_made_once_and_split_by_role_as_before():
    offered = Resources.parse("cpus:2;mem:64").allocated_to("web")
    assert offered.unallocated() is offered.unallocated() == Resources.parse("cpus:2;mem:64")
    assert offered.by_allocation_role() == {"web": offered}
    mixed = offered + Resources.parse("disk:10").allocated_to("db")
    assert mixed.by_allocation_role() == {
        "web": offered,
        "db": Resources.parse("disk:10").allocated_to("db"),
    }
    assert Resources().by_allocation_role() == {}
