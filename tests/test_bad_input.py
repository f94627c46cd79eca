"""Bad bytes from the network: each kind is counted, and the runtime keeps serving.

A raw pyzmq PUSH socket stands in for a broken or hostile peer. Frames from one
connection are handled in order, so once a valid "sync" message sent after some bad
frames has arrived, every one of them has been handled and counted.
"""

from __future__ import annotations

import itertools

import msgpack
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libprocess import Process, Runtime, TransportConfig
from libprocess.wire import MalformedFrame, decode_frame, encode_frame
from tests.actors import Collector

CONFIG = TransportConfig(max_message_bytes=1024, batch_bytes=1024)
COMPLAINTS = (
    "frames_malformed",
    "frames_oversized",
    "messages_malformed",
    "messages_unknown_process",
    "messages_unknown_name",
)
SINK = "sink"  # a Collector: gets every valid message
SYNC = "sync"  # a Collector: gets only the sync messages
PLAIN = "plain"  # a Process with no handlers: counts unknown message names
_nonces = itertools.count()


class Peer:
    """A raw PUSH socket connected to a runtime, and the runtime's complaint counters."""

    def __init__(self, runtime: Runtime, syncer: Collector) -> None:
        self.runtime = runtime
        self.syncer = syncer
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.PUSH)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(f"tcp://{runtime.address}")
        self.sender = f"raw@127.0.0.1:{_unused_port()}"

    def send(self, frame: bytes) -> None:
        self.socket.send(frame)

    def send_messages(self, *messages) -> None:
        self.send(msgpack.packb(list(messages)))

    def sync(self) -> None:
        """Return once the runtime has handled everything sent before."""
        # The sync message is delivered after every earlier frame from this connection,
        # and served after every process those frames reached (the run queue is FIFO).
        nonce = next(_nonces)
        self.send_messages([SYNC, "", "sync", nonce])
        while self.syncer.next(timeout=10)[2] != nonce:
            pass

    def counts(self) -> dict[str, int]:
        snapshot = self.runtime.metrics.snapshot()
        return {kind: snapshot[f"libprocess/{kind}"] for kind in COMPLAINTS}

    def complaints_after(self, *frames: bytes) -> dict[str, int]:
        """Send ``frames``; the complaints they caused, by kind (zeros left out)."""
        before = self.counts()
        for frame in frames:
            self.send(frame)
        self.sync()
        after = self.counts()
        return {
            kind: after[kind] - before[kind] for kind in COMPLAINTS if after[kind] != before[kind]
        }

    def close(self) -> None:
        self.socket.close(0)
        self.context.term()


def _unused_port() -> int:
    from tests.actors import free_port

    return free_port()


@pytest.fixture(scope="module")
def runtime():
    with Runtime("127.0.0.1", 0, transport=CONFIG) as running:
        yield running


@pytest.fixture(scope="module")
def processes(runtime):
    sink, syncer = Collector(SINK), Collector(SYNC)
    for process in (sink, syncer, Process(PLAIN)):
        runtime.spawn(process)
    return sink, syncer


@pytest.fixture(scope="module")
def peer(runtime, processes):
    raw = Peer(runtime, processes[1])
    raw.sync()
    yield raw
    raw.close()


@pytest.fixture
def sink(processes):
    """The sink, emptied of what earlier tests left in it."""
    sink = processes[0]
    while not sink.inbox.empty():
        sink.inbox.get_nowait()
    return sink


def assert_still_serving(peer: Peer, sink: Collector) -> None:
    peer.send_messages([SINK, peer.sender, "hello", {"still": "serving"}])
    assert sink.next() == (peer.sender, "hello", {"still": "serving"})


# -- whole frames -------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=200))
def test_random_bytes_are_counted_as_malformed_frames_or_handled(peer, data):
    try:
        batch = decode_frame(data)
    except MalformedFrame:
        # Refused whole, or (a body bad only inside, such as a string that is not UTF-8)
        # refused when its handler would have read it.
        complaints = peer.complaints_after(data)
        assert complaints.get("frames_malformed") == 1 or complaints.get("messages_malformed")
    else:
        # Bytes that happen to be a list: no frame complaint, and at most one per message.
        complaints = peer.complaints_after(data)
        assert "frames_malformed" not in complaints
        assert sum(complaints.values()) <= len(batch)


@pytest.mark.parametrize(
    "value",
    [None, 7, -1, 2.5, "a string", b"bytes", {"to": "sink"}, True],
    ids=repr,
)
def test_msgpack_that_is_not_a_list_is_a_malformed_frame(peer, sink, value):
    assert peer.complaints_after(msgpack.packb(value)) == {"frames_malformed": 1}
    assert_still_serving(peer, sink)


@pytest.mark.parametrize(
    "frame",
    [b"", b"\xc1", b"\x93\x01", b"\x94\xa4sink\xa0\xa4ping", msgpack.packb([[SINK]]) + b"\x00"],
    ids=["empty", "never-used-byte", "truncated", "truncated-message", "trailing-bytes"],
)
def test_bytes_that_are_not_msgpack_are_a_malformed_frame(peer, frame):
    assert peer.complaints_after(frame) == {"frames_malformed": 1}


def test_a_body_that_cannot_be_read_is_refused_when_its_turn_comes(peer, sink):
    # Bodies wait in mailboxes as msgpack bytes and are read when their handler runs: a
    # string that is not UTF-8 is found then. Only that message is lost.
    good = msgpack.packb([SINK, peer.sender, "hello", {"n": 1}])
    bad = msgpack.packb([SINK, peer.sender, "hello", "x"])[:-2] + b"\xa1\xff"
    frame = b"\x92" + bad + good
    with pytest.raises(MalformedFrame):
        decode_frame(frame)  # read whole, the frame is refused...
    assert peer.complaints_after(frame) == {"messages_malformed": 1}  # ...read lazily, one
    assert sink.next() == (peer.sender, "hello", {"n": 1})
    assert_still_serving(peer, sink)


def test_an_empty_batch_is_not_a_complaint(peer):
    assert peer.complaints_after(msgpack.packb([])) == {}


def test_a_frame_over_the_size_limit_is_counted_and_dropped(peer, sink):
    limit = CONFIG.max_frame_bytes
    frame = msgpack.packb([[SINK, "", "big", b"x" * limit]])
    assert limit < len(frame) < 2 * limit
    assert peer.complaints_after(frame) == {"frames_oversized": 1}
    assert sink.inbox.empty()
    assert_still_serving(peer, sink)


def test_a_frame_far_over_the_limit_costs_its_sender_the_connection(runtime, peer, sink):
    # ZeroMQ refuses frames over 4 x max_frame_bytes before they are read (MAXMSGSIZE)
    # and drops the connection that sent one; other connections are not affected.
    hostile = Peer(runtime, peer.syncer)
    try:
        before = peer.counts()
        hostile.send_messages([SINK, "", "huge", b"x" * (5 * CONFIG.max_frame_bytes)])
        peer.sync()
        assert_still_serving(peer, sink)
        assert peer.counts() == before
    finally:
        hostile.close()
    assert all(name != "huge" for _, name, _ in list(sink.inbox.queue))


# -- messages inside a frame --------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        [],
        [SINK, "", "ping"],
        [SINK, "", "ping", None, "extra"],
        5,
        None,
        "abcd",  # four characters unpack into four fields
        b"abcd",
        {SINK: 0, "": 0, "ping": 0, "body": 0},  # four keys would unpack into four fields
    ],
    ids=repr,
)
def test_wrong_shaped_messages_are_malformed(peer, sink, message):
    assert peer.complaints_after(msgpack.packb([message])) == {"messages_malformed": 1}
    assert sink.inbox.empty()


@pytest.mark.parametrize(
    "message",
    [
        [1, "", "ping", None],
        [b"sink", "", "ping", None],
        [SINK, 2, "ping", None],
        [SINK, None, "ping", None],
        [SINK, b"raw@127.0.0.1:1", "ping", None],
        [SINK, "", 3, None],
        [SINK, "", None, None],
        [SINK, "", ["ping"], None],
    ],
    ids=repr,
)
def test_fields_of_the_wrong_type_are_malformed(peer, sink, message):
    assert peer.complaints_after(msgpack.packb([message])) == {"messages_malformed": 1}
    assert sink.inbox.empty()


@pytest.mark.parametrize(
    "sender",
    ["nobody", "a@b", "a@host:0", "a@host:65536", "a@host:-1", "@host:1", "a@:1", "a@host:port"],
)
def test_invalid_sender_upids_are_malformed(peer, sink, sender):
    assert peer.complaints_after(msgpack.packb([[SINK, sender, "ping", None]])) == {
        "messages_malformed": 1
    }
    assert sink.inbox.empty()


def test_a_message_for_an_unknown_process_is_counted(peer):
    frame = msgpack.packb([["ghost(1)", peer.sender, "ping", None]])
    assert peer.complaints_after(frame) == {"messages_unknown_process": 1}


def test_a_message_with_an_unknown_name_is_counted(peer):
    frame = msgpack.packb([[PLAIN, peer.sender, "no such message", {"a": 1}]])
    assert peer.complaints_after(frame) == {"messages_unknown_name": 1}


@pytest.mark.parametrize(
    ("sender", "name", "body"),
    [
        ("", "libprocess/link", f"{SINK}@127.0.0.1:1"),  # a link needs the linker
        ("linker", "libprocess/link", 42),
        ("linker", "libprocess/link", "not a pid"),
        ("linker", "libprocess/link", ["a@127.0.0.1:1"]),
        ("", "libprocess/exited", None),  # an exit notice needs the process that ended
        ("linker", "libprocess/no-such-control", None),
        ("", "ping", None),  # not a control message at all
    ],
    ids=repr,
)
def test_control_messages_with_bad_bodies_are_malformed(peer, sender, name, body):
    sender = peer.sender if sender == "linker" else sender
    frame = msgpack.packb([["", sender, name, body]])
    assert peer.complaints_after(frame) == {"messages_malformed": 1}


def test_a_batch_mixing_good_and_bad_messages_delivers_the_good_ones(peer, sink):
    frame = encode_frame(
        [
            [SINK, peer.sender, "good", 1],
            [SINK, "", "bad shape"],
            ["ghost(1)", "", "ping", None],
            [SINK, peer.sender, "good", 2],
            [SINK, "not a pid", "ping", None],
            [PLAIN, "", "unknown name", None],
            ["", "", "libprocess/exited", None],
            [SINK, peer.sender, "good", 3],
        ]
    )
    complaints = peer.complaints_after(frame)
    assert complaints == {
        "messages_malformed": 3,
        "messages_unknown_process": 1,
        "messages_unknown_name": 1,
    }
    assert [sink.next() for _ in range(3)] == [(peer.sender, "good", n) for n in (1, 2, 3)]


def test_the_runtime_still_serves_after_all_of_it(peer, sink):
    for frame in (b"\xc1", msgpack.packb({}), msgpack.packb([[1, 2, 3, 4]]), b"\x00" * 5000):
        peer.send(frame)
    assert_still_serving(peer, sink)


# -- decode_frame on its own --------------------------------------------------------------

msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=2000, deadline=None)
@given(data=st.binary(max_size=300))
def test_decode_frame_returns_a_list_or_raises_malformed_frame(data):
    try:
        batch = decode_frame(data)
    except MalformedFrame as error:
        assert str(error)
    else:
        assert type(batch) is list


@settings(max_examples=300, deadline=None)
@given(value=msgpack_values, cut=st.integers(min_value=0))
def test_decode_frame_on_msgpack_values_and_their_truncations(value, cut):
    data = msgpack.packb(value)
    if type(value) is list:
        assert decode_frame(data) == value
    else:
        with pytest.raises(MalformedFrame, match="expected a list of messages"):
            decode_frame(data)
    truncated = data[: cut % max(len(data), 1)]
    with pytest.raises(MalformedFrame):
        decode_frame(truncated)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(msgpack_values, max_size=4))
def test_random_msgpack_batches_never_break_the_runtime(peer, batch):
    frame = msgpack.packb(batch)
    if len(frame) > CONFIG.max_frame_bytes:
        return
    complaints = peer.complaints_after(frame)
    assert "frames_malformed" not in complaints
    assert sum(complaints.values()) <= len(batch)
