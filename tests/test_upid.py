"""UPID: parsing ``id@host:port``, rejecting everything else, and surviving the wire."""

from __future__ import annotations

import copy
import pickle

import msgpack
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from libprocess import UPID, InvalidUPID
from libprocess.upid import UPIDCache

# -- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ident", "host", "port"),
    [
        ("master@127.0.0.1:5050", "master", "127.0.0.1", 5050),
        ("slave(1)@10.0.0.7:5051", "slave(1)", "10.0.0.7", 5051),
        ("scheduler-3f2a@node.example.com:1", "scheduler-3f2a", "node.example.com", 1),
        ("a@h:65535", "a", "h", 65535),
        ("x@[::1]:8080", "x", "[::1]", 8080),
    ],
)
def test_parses_id_host_and_port(text, ident, host, port):
    pid = UPID(text)

    assert (pid.id, pid.host, pid.port) == (ident, host, port)
    assert pid.address == f"{host}:{port}"
    assert pid.endpoint == f"tcp://{host}:{port}"
    assert str(pid) == text
    assert type(str(pid)) is str


def test_of_builds_the_same_upid_as_parsing():
    pid = UPID.of("agent(2)", "192.168.1.9", 5051)

    assert pid == UPID("agent(2)@192.168.1.9:5051")
    assert (pid.id, pid.host, pid.port) == ("agent(2)", "192.168.1.9", 5051)


def test_parsing_a_upid_returns_it_unchanged():
    pid = UPID("a@h:1")

    assert UPID(pid) is pid


@pytest.mark.parametrize(
    "text",
    [
        "",
        "master",
        "master@",
        "@127.0.0.1:5050",  # no id
        "master@:5050",  # no host
        "master@127.0.0.1",  # no port
        "master@127.0.0.1:",  # empty port
        "master@127.0.0.1:port",
        "master@127.0.0.1:0",  # port 0 is "any", not an address
        "master@127.0.0.1:65536",
        "master@127.0.0.1:-1",
        "master@127.0.0.1:+80",
        "master@127.0.0.1: 80",
        "master@127.0.0.1:80 ",
        "master@127.0.0.1:0080",  # not canonical: would not compare equal to ...:80
        "master@127.0.0.1:²",  # a digit to str.isdigit, not to int()
        "master@127.0.0.1:\u0661\u0662",  # Arabic-Indic digits: not a ZeroMQ port
        "master@127.0.0.1:" + "9" * 5000,  # longer than int() may parse
        "a@b@127.0.0.1:80",  # '@' in a process id makes the address ambiguous
        "mas ter@127.0.0.1:80",
        "master@127.0.0.1 :80",
        "master\n@127.0.0.1:80",
        "master@127.0.0.1:80\x00",
    ],
)
def test_rejects_what_is_not_an_address(text):
    with pytest.raises(InvalidUPID, match="id@host:port"):
        UPID(text)


@pytest.mark.parametrize("value", [None, 5050, b"a@h:1", ["a@h:1"]])
def test_rejects_what_is_not_a_string(value):
    with pytest.raises(InvalidUPID, match=type(value).__name__):
        UPID(value)


def test_invalid_upid_is_a_value_error_naming_the_input():
    with pytest.raises(ValueError, match="'nonsense'"):
        UPID("nonsense")


def test_out_of_range_port_says_the_range():
    with pytest.raises(InvalidUPID, match="1-65535"):
        UPID("a@h:70000")


# -- identity ---------------------------------------------------------------------------------


def test_equality_and_hash_are_those_of_the_string():
    pid = UPID("a@h:1")

    assert pid == "a@h:1"
    assert hash(pid) == hash("a@h:1")
    assert {pid: 1}["a@h:1"] == 1
    assert {"a@h:1": 1}[pid] == 1
    assert pid != UPID("a@h:2")
    assert pid != UPID("b@h:1")
    assert len({UPID("a@h:1"), UPID("a@h:1"), "a@h:1"}) == 1


def test_repr_names_the_type():
    assert repr(UPID("a@h:1")) == "UPID('a@h:1')"
    assert f"{UPID('a@h:1')}" == "a@h:1"


# -- the wire ---------------------------------------------------------------------------------


def test_msgpack_carries_a_upid_as_a_plain_string():
    pid = UPID("scheduler(1)@10.1.2.3:40000")

    packed = msgpack.packb({"from": pid, "to": [pid]})
    unpacked = msgpack.unpackb(packed)

    assert packed == msgpack.packb({"from": str(pid), "to": [str(pid)]})
    assert unpacked["from"] == pid
    assert UPID(unpacked["from"]).port == 40000


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_round_trip_keeps_type_and_parts(protocol):
    pid = UPID("executor(7)@10.1.2.3:40001")

    again = pickle.loads(pickle.dumps(pid, protocol=protocol))

    assert type(again) is UPID
    assert again == pid
    assert (again.id, again.host, again.port, again.address) == (
        "executor(7)",
        "10.1.2.3",
        40001,
        "10.1.2.3:40001",
    )


def test_copy_keeps_type_and_parts():
    pid = UPID("a@h:9")

    for again in (copy.copy(pid), copy.deepcopy(pid)):
        assert type(again) is UPID
        assert (again.id, again.host, again.port) == ("a", "h", 9)


# -- cache ------------------------------------------------------------------------------------


def test_cache_returns_the_same_parsed_upid_for_the_same_string():
    cache = UPIDCache()
    text = "".join(["a", "@h:1"])  # a fresh string object each time it is built

    first = cache.get(text)
    second = cache.get("".join(["a", "@h:1"]))

    assert type(first) is UPID
    assert first is second
    assert first.port == 1


def test_cache_rejects_invalid_strings_and_remembers_nothing():
    cache = UPIDCache()

    for _ in range(2):
        with pytest.raises(InvalidUPID):
            cache.get("not a pid")
    assert cache.get("a@h:1") == "a@h:1"


def test_cache_stays_within_capacity_and_still_answers():
    cache = UPIDCache(capacity=3)

    pids = [cache.get(f"p{n}@h:1") for n in range(10)]

    assert len(cache._cache) <= 3
    assert [pid.id for pid in pids] == [f"p{n}" for n in range(10)]
    assert cache.get("p0@h:1") == pids[0]


# -- properties -------------------------------------------------------------------------------

_ident = st.text(
    st.characters(
        exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"), exclude_characters="@"
    ),
    min_size=1,
    max_size=20,
)
_host = st.one_of(
    st.from_regex(r"\A[a-z0-9][a-z0-9.-]{0,30}\Z"),
    st.ip_addresses(v=4).map(str),
)
_port = st.integers(min_value=1, max_value=65535)


@given(_ident, _host, _port)
def test_well_formed_addresses_parse_to_their_parts(ident, host, port):
    pid = UPID.of(ident, host, port)

    assert (pid.id, pid.host, pid.port) == (ident, host, port)
    assert UPID(str(pid)) == pid
    assert pickle.loads(pickle.dumps(pid)).port == port


_upid_alphabet = st.sampled_from("ab@:.0129 \n\u00b2\u0661-()[]")  # ² and Arabic-Indic 1


@given(st.one_of(st.text(), st.text(_upid_alphabet, max_size=16)))
@example("a@h:²")
@example("a@h:0")
@example("@h:1")
@example("a@h:1")
def test_any_string_parses_and_round_trips_or_raises_invalid_upid(text):
    try:
        pid = UPID(text)
    except InvalidUPID:
        return
    assert str(pid) == text
    assert UPID(str(pid)) == pid
    assert UPID.of(pid.id, pid.host, pid.port) == pid
    assert 1 <= pid.port <= 65535
    assert pid.address == f"{pid.host}:{pid.port}"
