"""Deliberate drops (``runtime.faults``): the chosen messages vanish, nothing else does.

"Not delivered" is shown without sleeping: a marker sent after the dropped message by the same
sender to the same receiver must arrive first (sends are ordered per sender and receiver), so
once the marker is in, anything not dropped before it would already be there.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from libprocess import UPID, LaunchOptions, Runtime, handler, launch
from libprocess.faults import DROPPED_METRIC
from tests.actors import Collector, Echo

WAIT = 5.0  # wall-clock safety net


@pytest.fixture
def home():
    with Runtime("127.0.0.1", 0) as runtime:
        yield runtime


@pytest.fixture
def other():
    """A second runtime in this OS process: remote to ``home`` (messages cross ZeroMQ)."""
    with Runtime("127.0.0.1", 0) as runtime:
        yield runtime


def spawn_collector(runtime: Runtime, ident: str | None = None) -> Collector:
    process = Collector(ident)
    runtime.spawn(process)
    return process


def received_until_marker(collector: Collector) -> list[tuple[str, Any]]:
    """``(name, body)`` of everything that arrived before the next ``marker``."""
    seen = []
    while True:
        _, name, body = collector.next(WAIT)
        if name == "marker":
            return seen
        seen.append((name, body))


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {WAIT} s"
        time.sleep(0.005)


def dropped_metric(runtime: Runtime) -> float:
    return runtime.metrics.snapshot()[DROPPED_METRIC]


def test_a_local_send_matching_a_rule_is_dropped_and_others_are_not(home):
    target = spawn_collector(home)
    sender = spawn_collector(home)
    assert dropped_metric(home) == 0
    rule = home.faults.drop("ping")
    # From the test thread (handed to the loop) and from inside a process (on the loop).
    home.send(target.pid, "ping", 1)
    home.send(target.pid, "other", 2)
    home.dispatch(sender, "send_many", target.pid, "ping", [3, 4]).result(WAIT)
    home.dispatch(sender, "send_many", target.pid, "other", [5]).result(WAIT)
    home.dispatch(sender, "send_many", target.pid, "marker", [None]).result(WAIT)
    assert received_until_marker(target) == [("other", 2), ("other", 5)]
    assert rule.dropped == 3
    assert dropped_metric(home) == 3
    assert rule.active


def test_removing_the_rule_restores_delivery(home):
    target = spawn_collector(home)
    with home.faults.drop("ping", to=target.pid) as rule:
        home.send(target.pid, "ping", 1)
    assert not rule.active and home.faults.rules() == []
    home.send(target.pid, "ping", 2)
    home.send(target.pid, "marker")
    assert received_until_marker(target) == [("ping", 2)]
    assert rule.dropped == 1
    rule.remove()  # idempotent


def test_count_limits_the_drops_then_the_rule_retires(home):
    target = spawn_collector(home)
    rule = home.faults.drop("ping", count=2)
    for number in range(5):
        home.send(target.pid, "ping", number)
    home.send(target.pid, "marker")
    assert received_until_marker(target) == [("ping", 2), ("ping", 3), ("ping", 4)]
    assert rule.dropped == 2
    assert not rule.active
    assert home._dropping is None  # no rule left: the hot paths are back to one check


def test_rules_match_by_destination_and_sender(home, other):
    first = spawn_collector(home, "first")
    second = spawn_collector(home, "second")
    alice = spawn_collector(home, "alice")
    bob = spawn_collector(home, "bob")
    by_id = home.faults.drop(to="first")  # a bare id: that process id in any runtime
    elsewhere = home.faults.drop(to=f"second@{other.address}")  # a full pid: that one only
    from_alice = home.faults.drop("hello", sender=alice.pid)
    for to in (first, second):
        for source in (alice, bob):
            home.dispatch(source, "send_many", to.pid, "hello", [source.pid.id]).result(WAIT)
            home.dispatch(source, "send_many", to.pid, "marker", [None]).result(WAIT)
    # "first" gets nothing at all (its markers too); "second" misses alice's hello only.
    assert first.inbox.empty()
    assert received_until_marker(second) == []  # alice's marker, her hello dropped
    assert received_until_marker(second) == [("hello", "bob")]
    assert (by_id.dropped, elsewhere.dropped, from_alice.dropped) == (4, 0, 1)
    # A sender named as a plain string matches too.
    home.send(second.pid, "hello", "string sender", sender=str(alice.pid))
    home.send(second.pid, "marker")
    assert received_until_marker(second) == []
    assert from_alice.dropped == 2


def test_outgoing_remote_sends_are_dropped_at_the_sender(home, other):
    target = spawn_collector(other)
    sender = spawn_collector(home)
    rule = home.faults.drop("ping", to=target.pid)
    home.send(target.pid, "ping", "from a thread")  # encoded in this thread, then dropped
    home.dispatch(sender, "send_many", target.pid, "ping", ["from the loop"]).result(WAIT)
    home.send(target.pid, "other", 1)
    home.send(target.pid, "marker")
    assert received_until_marker(target) == [("other", 1)]
    assert rule.dropped == 2
    assert dropped_metric(home) == 2 and dropped_metric(other) == 0
    rule.remove()
    home.send(target.pid, "ping", "again")
    home.send(target.pid, "marker")
    assert received_until_marker(target) == [("ping", "again")]


def test_inbound_remote_messages_are_dropped_at_the_receiver(home, other):
    target = spawn_collector(other)
    sender = spawn_collector(home)
    rule = other.faults.drop("ping", sender=sender.pid, count=1)
    home.dispatch(sender, "send_many", target.pid, "ping", [1, 2]).result(WAIT)
    home.dispatch(sender, "send_many", target.pid, "marker", [None]).result(WAIT)
    assert received_until_marker(target) == [("ping", 2)]
    assert rule.dropped == 1
    assert dropped_metric(other) == 1 and dropped_metric(home) == 0


def test_a_rule_does_not_drop_links_or_dispatches(home, other):
    """Control messages and dispatch are not process messages: a catch-all rule spares them."""
    watcher = spawn_collector(home)
    target = spawn_collector(other)
    everything = home.faults.drop()  # every process message, both ways
    home.dispatch(watcher, "link", target.pid).result(WAIT)  # a dispatch still runs
    other.terminate(target.pid)
    pid, what, _ = watcher.next(WAIT)  # the remote exit notice still arrives
    assert (pid, what) == (target.pid, "exited")
    home.send(watcher.pid, "local")  # dropped at home's send
    other.send(watcher.pid, "remote")  # sent by other (no rule there), dropped on arrival
    wait_for(lambda: everything.dropped == 2, "both messages dropped")
    home.settle(WAIT)
    assert watcher.inbox.empty()


def test_rules_set_from_another_thread_drop_exactly_count_under_concurrent_sends(home):
    target = spawn_collector(home)
    rule = home.faults.drop("ping", count=50)
    senders = [
        threading.Thread(target=lambda: [home.send(target.pid, "ping") for _ in range(100)])
        for _ in range(4)
    ]
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join(WAIT)
    home.settle(WAIT)
    home.send(target.pid, "marker")
    assert len(received_until_marker(target)) == 400 - 50
    assert rule.dropped == 50


def test_bad_rules_are_refused_with_a_reason():
    with Runtime("127.0.0.1", 0) as runtime:
        with pytest.raises(ValueError, match="positive"):
            runtime.faults.drop("ping", count=0)
        with pytest.raises(ValueError, match="None to match any"):
            runtime.faults.drop(to="")
        with pytest.raises(TypeError, match="UPID, a process id or None"):
            runtime.faults.drop(sender=42)
        assert runtime.faults.rules() == []


class DroppingEcho(Echo):
    """An Echo whose own runtime (in its child process) can be told to drop inbound pings."""

    @handler("drop_pings")
    def drop_pings(self, sender: UPID | None, count: int) -> None:
        self.rule = self.runtime.faults.drop("ping", to=self.pid, count=count)
        self.send(sender, "dropping", count)

    @handler("how_many_dropped")
    def how_many_dropped(self, sender: UPID | None, body: Any) -> None:
        self.send(sender, "dropped", self.rule.dropped)


def test_drops_in_and_out_of_a_launched_child(home):
    collector = spawn_collector(home)
    child = launch(DroppingEcho, options=LaunchOptions(parent_check_interval=0.2))
    try:
        # Outgoing, at the parent: no ping leaves, so no pong comes back.
        rule = home.faults.drop("ping", to=child.pid)
        home.dispatch(collector, "send_many", child.pid, "ping", [1, 2]).result(WAIT)
        rule.remove()
        home.dispatch(collector, "send_many", child.pid, "ping", [3]).result(WAIT)
        assert collector.next(WAIT)[1:] == ("pong", 3)
        # Inbound, in the child's runtime: its own rule drops the next two pings.
        home.dispatch(collector, "send_many", child.pid, "drop_pings", [2]).result(WAIT)
        assert collector.next(WAIT)[1:] == ("dropping", 2)
        home.dispatch(collector, "send_many", child.pid, "ping", [4, 5, 6]).result(WAIT)
        home.dispatch(collector, "send_many", child.pid, "how_many_dropped", [None]).result(WAIT)
        assert collector.next(WAIT)[1:] == ("pong", 6)
        assert collector.next(WAIT)[1:] == ("dropped", 2)
    finally:
        child.stop(timeout=5)
