"""Messages between runtimes in different OS processes (and between two in one process).

Real sockets on 127.0.0.1 and real child processes; waits on the wall clock are only
safety nets around events that the runtime produces on its own.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import msgpack
import pytest
import zmq

from libprocess import UPID, LaunchOptions, Runtime, TransportConfig, handler, launch
from libprocess.wire import MessageTooLarge, Plain, UnencodableBody, encode_message
from tests.actors import Collector, Echo, free_port

# Short heartbeats, so that a peer that stops answering is lost within a second.
FAST = TransportConfig(heartbeat_interval=0.1, peer_timeout=0.5)


def metric(runtime: Runtime, name: str) -> float:
    return runtime.metrics.snapshot()[f"libprocess/{name}"]


def wait_for(condition, timeout: float = 5.0, what: str = "the condition") -> None:
    """Poll ``condition`` until true; ``timeout`` is a wall-clock safety net."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.005)


@pytest.fixture
def home():
    """The test's own runtime, in a background thread."""
    with Runtime("127.0.0.1", 0, transport=FAST) as runtime:
        yield runtime


@pytest.fixture
def other():
    """A second runtime in this OS process: remote to ``home``, but cheap to start."""
    with Runtime("127.0.0.1", 0, transport=FAST) as runtime:
        yield runtime


@pytest.fixture
def own_echo():
    """An Echo actor in a child process of its own (for tests that kill it)."""
    children = []

    def start(**options):
        child = launch(Echo, options=LaunchOptions(**options))
        children.append(child)
        return child

    yield start
    for child in children:
        child.kill()


def body_of_size(to: UPID, sender: UPID, name: str, size: int) -> bytes:
    """A bytes body that makes the encoded message exactly ``size`` bytes long."""
    for n in range(size):
        if len(encode_message(to.id, sender, name, b"x" * n, 2 * size)) == size:
            return b"x" * n
    raise AssertionError(f"no body makes a {size}-byte message {name!r}")


def round_trip(home: Runtime, collector: Collector, to: UPID, body):
    home.send(to, "ping", body, sender=collector.pid)
    sender, _, answer = collector.next_named("pong")
    assert sender == to
    return answer


# -- bodies and senders -------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        None,
        True,
        0,
        -(2**63),
        2**64 - 1,
        3.25,
        "",
        "ünïcødé ✓ 漢字 🐄",
        b"",
        b"\x00\xff" * 100,
        [],
        [1, "two", 3.0, None, b"four"],
        {},
        {"a": 1, "b": [1, 2, {"c": None}]},
        {"nested": [{"deeper": [[], {}, [b"bytes", "text"]]}]},
        {1: "int keys survive", 2: None},
    ],
    ids=repr,
)
def test_bodies_round_trip_through_msgpack(home, collector, echo, body):
    assert round_trip(home, collector, echo.pid, body) == body


def test_tuples_arrive_as_lists(home, collector, echo):
    assert round_trip(home, collector, echo.pid, (1, (2, 3))) == [1, [2, 3]]


def test_large_body_round_trips(home, collector, echo):
    body = os.urandom(3 * 1024 * 1024)
    assert round_trip(home, collector, echo.pid, body) == body


def test_sender_arrives_as_a_upid_on_both_sides(home, collector, echo):
    home.send(echo.pid, "whoami", None, sender=collector.pid)
    sender, _, body = collector.next_named("you_are")
    assert type(sender) is UPID
    assert sender == echo.pid and sender.id == echo.pid.id
    type_name, seen_as, seen_id, child_os_pid = body
    assert type_name == "UPID"  # what the child's handler was given
    assert seen_as == collector.pid and seen_id == collector.pid.id
    assert child_os_pid == echo.os_pid != os.getpid()


def test_anonymous_sender_arrives_as_none(home, collector, other):
    remote = Collector()
    other.spawn(remote)
    home.send(remote.pid, "hello", [1])
    assert remote.next() == (None, "hello", [1])


def test_many_messages_keep_their_order_and_none_is_lost(home, collector, echo):
    count = 20_000
    home.dispatch(collector, "send_many", echo.pid, "ping", list(range(count))).result(5)
    received = [collector.next(timeout=10)[2] for _ in range(count)]
    assert received == list(range(count))
    assert metric(home, "messages_dropped") == 0


def test_order_kept_between_sends_from_outside_the_loop(home, collector, other):
    remote = Collector()
    other.spawn(remote)
    for n in range(2000):
        home.send(remote.pid, "n", n, sender=collector.pid)
    assert [remote.next()[2] for _ in range(2000)] == list(range(2000))


# -- what cannot be sent ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "found"),
    [({1, 2}, "set"), (object(), "object"), ({"deep": [frozenset()]}, "frozenset"), (2**64, "")],
    ids=["set", "object", "nested-frozenset", "int-too-big"],
)
def test_unencodable_body_raises_at_send_from_outside_the_loop(home, collector, other, body, found):
    remote = Collector()
    other.spawn(remote)
    with pytest.raises(UnencodableBody, match=f"cannot encode the body of message 'ping'.*{found}"):
        home.send(remote.pid, "ping", body, sender=collector.pid)
    home.send(remote.pid, "ping", "after", sender=collector.pid)
    assert remote.next() == (collector.pid, "ping", "after")
    assert metric(home, "messages_dropped") == 0


def test_unencodable_body_raises_in_the_sending_handler_and_spoils_nothing(home, other):
    remote = Collector()
    other.spawn(remote)
    sender = Collector()
    home.spawn(sender)

    def send_three() -> str:
        sender.send(remote.pid, "n", 1)
        try:
            sender.send(remote.pid, "n", {"bad": {1, 2}})
        except UnencodableBody as error:
            message = str(error)
        sender.send(remote.pid, "n", 2)
        return message

    message = home.dispatch(sender, send_three).result(5)
    assert "set" in message and "convert sets to lists" in message
    # The good messages around the bad one share a batch, intact and in order.
    assert [remote.next()[2], remote.next()[2]] == [1, 2]
    assert remote.inbox.empty()


def test_a_plain_body_arrives_as_its_contents_remotely_and_is_itself_locally(home, other):
    remote, local, sender = Collector(), Collector(), Collector()
    other.spawn(remote)
    home.spawn(local)
    home.spawn(sender)
    body = {"pid": UPID(f"x@{home.address}"), "items": [1, 2.5, b"\x00", None, True], "n": -3}

    def send_both() -> None:
        sender.send(remote.pid, "plain", Plain(body))
        sender.send(local.pid, "plain", Plain(body))

    home.dispatch(sender, send_both).result(5)
    assert remote.next() == (sender.pid, "plain", {**body, "pid": f"x@{home.address}"})
    assert local.next()[2] is body  # unwrapped, by reference, as local bodies are
    with pytest.raises(UnencodableBody, match=r"'plain'.*object"):
        home.send(remote.pid, "plain", Plain({"bad": object()}), sender=sender.pid)
    assert encode_message("a", "", "n", Plain([1, "x"]), 100) == msgpack.packb(
        ["a", "", "n", [1, "x"]]
    )


def test_message_over_the_limit_raises_at_send(collector, other):
    limit = 1024
    with Runtime("127.0.0.1", 0, transport=TransportConfig(max_message_bytes=limit)) as small:
        source = Collector()
        small.spawn(source)
        remote = Collector()
        other.spawn(remote)
        fits = body_of_size(remote.pid, source.pid, "blob", limit)
        small.send(remote.pid, "blob", fits, sender=source.pid)
        with pytest.raises(
            MessageTooLarge, match=f"1025 bytes, over the runtime's limit of {limit}"
        ):
            small.send(remote.pid, "blob", fits + b"x", sender=source.pid)
        failed = small.dispatch(source, "send", remote.pid, "blob", b"y" * 4096)
        with pytest.raises(MessageTooLarge):
            failed.result(5)
        small.send(remote.pid, "blob", b"small", sender=source.pid)
        assert remote.next()[2] == fits
        assert remote.next()[2] == b"small"


def test_largest_frame_a_runtime_sends_is_accepted_by_its_peer():
    # A batch is flushed once it reaches batch_bytes; the largest frame is a batch just
    # under batch_bytes plus one message at the limit, plus a 3-byte array header.
    config = TransportConfig(max_message_bytes=1000, batch_bytes=1000, **_fast())
    with (
        Runtime("127.0.0.1", 0, transport=config) as sending,
        Runtime("127.0.0.1", 0, transport=config) as receiving,
    ):
        source, sink = Collector(), Collector()
        sending.spawn(source)
        receiving.spawn(sink)

        def body_of(size: int) -> bytes:
            return body_of_size(sink.pid, source.pid, "m", size)

        bodies = [body_of(66)] * 14 + [body_of(75), body_of(1000)]  # 999 bytes, then 1000
        sending.dispatch(source, "send_many", sink.pid, "m", bodies).result(5)
        assert [sink.next()[2] for _ in bodies] == bodies
        assert metric(receiving, "frames_oversized") == 0
        assert metric(receiving, "frames_received") == 1


def _fast() -> dict:
    return {"heartbeat_interval": FAST.heartbeat_interval, "peer_timeout": FAST.peer_timeout}


# -- links --------------------------------------------------------------------------------


def link_and_confirm(home: Runtime, collector: Collector, pid: UPID) -> None:
    """Link, then round-trip a ping: ordering per pair means the link request arrived."""
    home.dispatch(collector, "link", pid).result(5)
    home.send(pid, "ping", "linked?", sender=collector.pid)
    assert collector.next_named("pong")[2] == "linked?"


def test_remote_link_gets_exited_when_the_process_terminates(home, collector, other):
    target = Echo()
    other.spawn(target)
    link_and_confirm(home, collector, target.pid)
    other.terminate(target)
    pid, name, _ = collector.next()
    assert (pid, name) == (target.pid, "exited")
    # The connection is fine: the notice came as a control message, not as a lost peer.
    assert other.address in _peers(home)
    assert collector.inbox.empty()


def _peers(runtime: Runtime) -> list[str]:
    return runtime._transport.peers()


def test_remote_link_from_a_child_to_a_process_here(home, collector, echo):
    watched = Collector()
    home.spawn(watched)
    home.send(echo.pid, "link_to", watched.pid, sender=collector.pid)
    home.send(echo.pid, "ping", "after link", sender=collector.pid)
    assert collector.next_named("pong")[2] == "after link"
    home.terminate(watched)
    sender, _, body = collector.next_named("saw_exited")
    assert sender == echo.pid and body == watched.pid


def test_two_linkers_both_get_exited_once(home, other):
    target = Echo()
    other.spawn(target)
    first, second = Collector(), Collector()
    home.spawn(first)
    home.spawn(second)
    link_and_confirm(home, first, target.pid)
    link_and_confirm(home, second, target.pid)
    other.terminate(target)
    assert first.next()[:2] == (target.pid, "exited")
    assert second.next()[:2] == (target.pid, "exited")
    home.settle()
    assert first.inbox.empty() and second.inbox.empty()


def test_linking_to_a_nonexistent_remote_pid_delivers_exited_promptly(home, collector, echo):
    ghost = UPID(f"nobody@{echo.pid.address}")
    started = time.monotonic()
    home.dispatch(collector, "link", ghost).result(5)
    pid, name, when = collector.next(timeout=2)
    assert (pid, name) == (ghost, "exited")
    assert when - started < 1.0


def test_linking_to_a_runtime_that_is_not_listening_delivers_exited(home, collector):
    ghost = UPID(f"nobody@127.0.0.1:{free_port()}")
    started = time.monotonic()
    home.dispatch(collector, "link", ghost).result(5)
    pid, name, when = collector.next(timeout=3)
    assert (pid, name) == (ghost, "exited")
    assert when - started < 2.0
    wait_for(lambda: ghost.address not in _peers(home), what="the dead peer being closed")


def test_sigkilled_peer_is_lost_and_linkers_get_exited(home, collector, own_echo, record_property):
    child = own_echo()
    link_and_confirm(home, collector, child.pid)
    killed_at = time.monotonic()
    os.kill(child.os_pid, signal.SIGKILL)
    pid, name, when = collector.next(timeout=5)
    assert (pid, name) == (child.pid, "exited")
    detected = when - killed_at
    record_property("sigkill_detection_seconds", round(detected, 4))
    assert detected < 3.0
    assert child.pid.address not in _peers(home)


def test_stopped_peer_is_lost_after_the_heartbeat_timeout(
    home, collector, own_echo, record_property
):
    # SIGSTOP keeps the TCP connection up (the kernel still answers) but nothing in the
    # child runs: only missing heartbeat replies reveal that the peer is gone.
    child = own_echo()
    link_and_confirm(home, collector, child.pid)
    stopped_at = time.monotonic()
    os.kill(child.os_pid, signal.SIGSTOP)
    try:
        pid, name, when = collector.next(timeout=5)
    finally:
        os.kill(child.os_pid, signal.SIGCONT)
    assert (pid, name) == (child.pid, "exited")
    detected = when - stopped_at
    record_property("sigstop_detection_seconds", round(detected, 4))
    assert FAST.heartbeat_interval <= detected < FAST.peer_timeout + 2.0


class Sleeper(Echo):
    """Holds its runtime's loop (``hold``: seconds), and counts the ``flood`` it receives."""

    def __init__(self) -> None:
        super().__init__()
        self.flooded = 0

    @handler("hold")
    def hold(self, sender: UPID | None, body: Any) -> None:
        time.sleep(body)

    @handler("flood")
    def flood(self, sender: UPID | None, body: Any) -> None:
        self.flooded += 1


def test_a_busy_peer_keeps_its_links_while_it_falls_behind():
    """A runtime whose loop is held for four peer timeouts while a peer floods it with
    frames is busy, not lost: its ZeroMQ keeps reading, so the heartbeats are answered and
    nobody's link to it breaks. (With a bounded receive queue it stopped reading once the
    queue was full, missed the heartbeats, and every peer dropped its connection: at 20,000
    simulated agents a master that fell seconds behind lost all its agents at once.)"""
    one_frame_each = TransportConfig(batch_bytes=1, **_fast())
    with (
        Runtime("127.0.0.1", 0, transport=one_frame_each) as home,
        Runtime("127.0.0.1", 0, transport=one_frame_each) as busy,
    ):
        collector = Collector()
        home.spawn(collector)
        sleeper = Sleeper()
        busy.spawn(sleeper)
        link_and_confirm(home, collector, sleeper.pid)
        home.send(sleeper.pid, "hold", 4 * FAST.peer_timeout)
        frames = 3 * TransportConfig().send_hwm  # more than any queue on the way holds
        for _ in range(frames):
            home.send(sleeper.pid, "flood", b"x" * 100)
        wait_for(lambda: sleeper.flooded == frames, timeout=30, what="the flood arrives")
        assert collector.inbox.empty(), "the busy peer was taken for lost"
        assert busy.address in _peers(home) and metric(home, "messages_dropped") == 0


def test_send_after_a_lost_peer_reconnects_to_its_restarted_runtime(home, collector, own_echo):
    port = free_port()
    first = own_echo(port=port)
    link_and_confirm(home, collector, first.pid)
    first.kill()
    assert collector.next()[:2] == (first.pid, "exited")
    home.send(first.pid, "ping", "into the void", sender=collector.pid)  # lost, not queued

    second = own_echo(port=port)
    assert second.pid == first.pid  # same address, same generated id
    assert round_trip(home, collector, second.pid, "again") == "again"
    assert collector.inbox.empty()


# -- high-water marks ---------------------------------------------------------------------


def test_a_peer_that_does_not_read_fills_the_queues_then_drops_are_counted():
    """What transport.py's docstring promises at the high-water marks."""
    context = zmq.Context.instance()
    reader = context.socket(zmq.PULL)
    reader.setsockopt(zmq.RCVHWM, 1)
    reader.setsockopt(zmq.RCVBUF, 4096)
    reader.setsockopt(zmq.LINGER, 0)
    port = reader.bind_to_random_port("tcp://127.0.0.1")
    config = TransportConfig(send_hwm=1, backlog_frames=3, batch_bytes=1, **_fast())
    try:
        with Runtime("127.0.0.1", 0, transport=config) as runtime:
            source = Collector()
            runtime.spawn(source)
            count, body = 200, b"x" * (100 * 1024)  # 20 MB, far more than socket buffers
            bodies = [[n, body] for n in range(count)]
            runtime.dispatch(source, "send_many", f"sink@127.0.0.1:{port}", "m", bodies).result(10)
            dropped = metric(runtime, "messages_dropped")
            assert 0 < dropped < count
            # The reader wakes: what was queued (ZeroMQ, then the runtime's backlog) flows,
            # in order; nothing else was sent.
            received = []
            reader.setsockopt(zmq.RCVTIMEO, 2000)
            while len(received) < count - dropped:
                batch = msgpack.unpackb(reader.recv())
                received.extend(message[3][0] for message in batch)
            assert received == sorted(received)
            assert len(received) == count - dropped
            assert metric(runtime, "messages_dropped") == dropped
    finally:
        reader.close(0)
