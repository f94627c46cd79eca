"""The allocator actor: event-triggered and periodic cycles, merging, both placements."""

from __future__ import annotations

import json
import queue
import urllib.request

import msgpack
import psutil
import pytest

from corral.resources import Resources
from libprocess import LaunchOptions, Runtime, launch
from master import MasterOptions
from master.allocator import AllocatorError, AllocatorOptions, AllocatorProcess
from master.allocator.backlog_gate import BacklogLimits
from master.allocator.events import (
    AddAgent,
    AddFramework,
    RecoverDeclined,
    RecoverResources,
    Revive,
    event_from_wire,
)
from tests.allocator_actors import Subscriber
from tests.test_master import AGENT_RESOURCES, Cluster

AGENT = Resources.parse("cpus:4;mem:4096")


def _no_more(q: queue.Queue) -> bool:
    try:
        q.get_nowait()
    except queue.Empty:
        return True
    return False


@pytest.fixture
def wired(runtime, paused_clock):
    """A subscriber (the master's stand-in) and an allocator in the same runtime."""
    subscriber = Subscriber()
    runtime.spawn(subscriber)
    allocator = AllocatorProcess(subscriber.pid, AllocatorOptions(allocation_interval=1.0))
    runtime.spawn(allocator)
    runtime.dispatch(subscriber, Subscriber.connect, allocator.pid).result(5)
    return runtime, subscriber, allocator


def _post(runtime, subscriber, event):
    runtime.dispatch(subscriber, Subscriber.post, event).result(5)


def test_adding_a_framework_triggers_a_cycle_over_all_agents(wired):
    runtime, subscriber, _ = wired
    _post(runtime, subscriber, AddAgent("a1", AGENT))
    _post(runtime, subscriber, AddAgent("a2", AGENT))
    runtime.settle()
    assert subscriber.allocations.empty()  # no framework yet: nothing to offer
    _post(runtime, subscriber, AddFramework("f1", ("*",)))
    runtime.settle()
    allocations = subscriber.allocations.get(timeout=5)
    assert {(a.framework_id, a.agent_id) for a in allocations} == {("f1", "a1"), ("f1", "a2")}
    assert all(a.resources.allocation_roles() == {"*"} for a in allocations)


def test_triggers_merge_into_one_queued_cycle(wired):
    runtime, subscriber, _ = wired
    _post(runtime, subscriber, AddFramework("f1", ("*",)))
    runtime.settle()
    runs_before = runtime.metrics.snapshot()["allocator/mesos/allocation_runs"]

    def burst():
        for i in range(5):
            subscriber.post(AddAgent(f"a{i}", AGENT))

    runtime.dispatch(subscriber, burst).result(5)
    runtime.settle()
    runs = runtime.metrics.snapshot()["allocator/mesos/allocation_runs"] - runs_before
    assert runs == 1  # five triggers, one cycle
    allocations = subscriber.allocations.get(timeout=5)
    assert sorted(a.agent_id for a in allocations) == [f"a{i}" for i in range(5)]


def test_recovered_resources_wait_for_the_periodic_cycle(wired):
    runtime, subscriber, _ = wired
    _post(runtime, subscriber, AddAgent("a1", AGENT))
    _post(runtime, subscriber, AddFramework("f1", ("*",)))
    runtime.settle()
    (offer,) = subscriber.allocations.get(timeout=5)
    _post(runtime, subscriber, RecoverResources("f1", "a1", offer.resources, 0))
    runtime.settle()
    assert _no_more(subscriber.allocations)  # declines do not trigger a cycle
    runtime.clock.advance(0.999)
    runtime.settle()
    assert _no_more(subscriber.allocations)
    runtime.clock.advance(0.001)
    runtime.settle()
    (again,) = subscriber.allocations.get(timeout=5)
    assert again.resources == offer.resources


def test_a_decline_filter_holds_until_it_expires(wired):
    runtime, subscriber, _ = wired
    _post(runtime, subscriber, AddAgent("a1", AGENT))
    _post(runtime, subscriber, AddFramework("f1", ("*",)))
    runtime.settle()
    (offer,) = subscriber.allocations.get(timeout=5)
    _post(runtime, subscriber, RecoverResources("f1", "a1", offer.resources, 5.0))
    for _ in range(4):
        runtime.clock.advance(1.0)
        runtime.settle()
        assert _no_more(subscriber.allocations)
    runtime.clock.advance(1.0)
    runtime.settle()
    assert subscriber.allocations.get(timeout=5)[0].agent_id == "a1"
    snapshot = runtime.metrics.snapshot()
    assert snapshot["allocator/mesos/offers_filtered"] >= 4
    assert snapshot["allocator/mesos/allocation_run_ms/count"] >= 5
    assert "allocator/mesos/allocation_run_ms/p99" in snapshot
    assert snapshot["allocator/mesos/roles/*/shares/dominant"] == pytest.approx(1.0)


def test_offers_declined_together_come_back_through_the_wire_form(wired):
    runtime, subscriber, _ = wired
    for agent_id in ("a1", "a2"):
        _post(runtime, subscriber, AddAgent(agent_id, AGENT))
    _post(runtime, subscriber, AddFramework("f1", ("*",)))
    runtime.settle()
    offers = subscriber.allocations.get(timeout=5)
    event = RecoverDeclined("f1", tuple((o.agent_id, o.resources) for o in offers), 2.0)
    # as another process gets it: encoded, sent as msgpack, decoded
    _post(runtime, subscriber, event_from_wire(msgpack.unpackb(msgpack.packb(event.to_wire()))))
    runtime.clock.advance(1.0)
    runtime.settle()
    assert _no_more(subscriber.allocations)  # filtered for 2 s
    runtime.clock.advance(1.0)
    runtime.settle()
    again = subscriber.allocations.get(timeout=5)
    assert sorted((a.agent_id, a.resources) for a in again) == sorted(
        (o.agent_id, o.resources) for o in offers
    )


def test_revive_triggers_a_cycle_and_clears_filters(wired):
    runtime, subscriber, _ = wired
    _post(runtime, subscriber, AddAgent("a1", AGENT))
    _post(runtime, subscriber, AddFramework("f1", ("*",)))
    runtime.settle()
    (offer,) = subscriber.allocations.get(timeout=5)
    _post(runtime, subscriber, RecoverResources("f1", "a1", offer.resources, 3600.0))
    _post(runtime, subscriber, Revive("f1"))
    runtime.settle()
    assert subscriber.allocations.get(timeout=5)[0].agent_id == "a1"


def test_pause_holds_cycles_until_resume(wired):
    runtime, subscriber, allocator = wired
    runtime.dispatch(allocator, AllocatorProcess.pause).result(5)
    _post(runtime, subscriber, AddAgent("a1", AGENT))
    _post(runtime, subscriber, AddFramework("f1", ("*",)))
    runtime.clock.advance(1.0)
    runtime.settle()
    assert _no_more(subscriber.allocations)
    runtime.dispatch(allocator, AllocatorProcess.resume).result(5)
    runtime.clock.advance(1.0)
    runtime.settle()
    assert subscriber.allocations.get(timeout=5)[0].agent_id == "a1"


def test_cycles_wait_while_the_subscriber_is_behind(runtime, paused_clock):
    """The gate (master/allocator/backlog_gate.py) reads the subscriber's backlog: here a
    number the test sets, where the master gives its mailbox's length."""
    subscriber = Subscriber()
    runtime.spawn(subscriber)
    backlog = [0]
    limits = BacklogLimits(high=100, low=25, max_hold=1.0, recheck=0.01)
    allocator = AllocatorProcess(
        subscriber.pid,
        AllocatorOptions(allocation_interval=1.0),
        backlog=lambda: backlog[0],
        limits=limits,
    )
    runtime.spawn(allocator)
    runtime.dispatch(subscriber, Subscriber.connect, allocator.pid).result(5)
    backlog[0] = 150
    _post(runtime, subscriber, AddAgent("a1", AGENT))
    _post(runtime, subscriber, AddFramework("f1", ("*",)))
    runtime.settle()
    assert _no_more(subscriber.allocations)  # behind: the cycle waits
    _post(runtime, subscriber, AddAgent("a2", AGENT))  # a trigger meanwhile joins it
    backlog[0] = 30
    runtime.clock.advance(0.01)
    runtime.settle()
    assert _no_more(subscriber.allocations)  # still over the low mark
    backlog[0] = 25
    runtime.clock.advance(0.01)
    runtime.settle()
    allocations = subscriber.allocations.get(timeout=5)
    assert {a.agent_id for a in allocations} == {"a1", "a2"}  # one cycle, both agents
    snapshot = runtime.metrics.snapshot()
    assert snapshot["allocator/mesos/allocation_runs_held"] == 1
    assert snapshot["allocator/mesos/allocation_hold_ms/p50"] == pytest.approx(20.0)

    backlog[0] = 10_000  # far behind for good: a cycle still runs once per max_hold
    _post(runtime, subscriber, AddAgent("a3", AGENT))
    runtime.settle()
    for _ in range(99):
        runtime.clock.advance(0.01)
        runtime.settle()
    assert _no_more(subscriber.allocations)
    runtime.clock.advance(0.01)
    runtime.settle()
    assert [a.agent_id for a in subscriber.allocations.get(timeout=5)] == ["a3"]
    assert runtime.metrics.snapshot()["allocator/mesos/allocation_runs_held"] == 2


def test_a_bad_event_is_refused_and_changes_nothing(wired):
    runtime, subscriber, allocator = wired
    _post(runtime, subscriber, AddAgent("a1", AGENT))
    future = runtime.dispatch(allocator, AllocatorProcess.event, AddAgent("a1", AGENT))
    with pytest.raises(Exception, match="already known"):
        future.result(5)
    with pytest.raises(AllocatorError, match="no event 'drop_tables'"):
        event_from_wire(["drop_tables"])
    future = runtime.dispatch(allocator, AllocatorProcess.event, "drop_tables")
    with pytest.raises(AllocatorError, match="not an allocator event: 'drop_tables'"):
        future.result(5)
    _post(runtime, subscriber, AddAgent("a1", AGENT))  # through the client: told, not raised
    assert "agent a1 is already known" in subscriber.errors.get(timeout=5)["error"]
    _post(runtime, subscriber, AddFramework("f1", ("*",)))
    runtime.settle()
    (offer,) = subscriber.allocations.get(timeout=5)
    assert offer.resources.unallocated() == AGENT


def test_allocator_in_its_own_os_process(runtime):
    subscriber = Subscriber()
    runtime.spawn(subscriber)
    child = launch(
        AllocatorProcess,
        subscriber.pid,
        AllocatorOptions(allocation_interval=3600.0),
        options=LaunchOptions(),
    )
    try:
        runtime.dispatch(subscriber, Subscriber.connect, child.pid).result(5)
        assert not subscriber.client.local
        reserved = Resources.parse("cpus:4;mem:4096;cpus(eng):2")
        _post(runtime, subscriber, AddAgent("a1", reserved))
        _post(runtime, subscriber, AddFramework("f1", ("eng",)))
        allocations = subscriber.allocations.get(timeout=10)
        assert len(allocations) == 1
        assert allocations[0].role == "eng"
        assert allocations[0].resources.unallocated() == reserved
        # A refused call is answered with a reason; the allocator goes on serving.
        _post(runtime, subscriber, AddFramework("f1", ("eng",)))
        error = subscriber.errors.get(timeout=10)
        assert "already known" in error["error"]
        _post(runtime, subscriber, AddAgent("a2", AGENT))
        allocations = subscriber.allocations.get(timeout=10)
        assert [a.agent_id for a in allocations] == ["a2"]
    finally:
        assert child.stop() == 0


def test_a_master_can_run_its_allocator_in_an_os_process_of_its_own(tmp_path):
    """The same offers with the allocator across a socket; the child goes with the master."""
    options = MasterOptions(hostname="test-master", allocation_interval=0.2, allocator_process=True)
    with Runtime("127.0.0.1", 0) as runtime:
        cluster = Cluster(runtime, None, str(tmp_path), options)
        cluster.register_agent()
        offer = cluster.register_framework()
        assert offer.resources == AGENT_RESOURCES.allocated_to("*")
        allocator = cluster.describe()["allocator"]
        assert allocator["own_process"] and allocator["pid"] != str(cluster.master.pid)
        with urllib.request.urlopen(f"http://{allocator['http']}/metrics/snapshot") as answer:
            assert json.loads(answer.read())["allocator/mesos/allocation_runs"] >= 1
        child = cluster.master.allocator_child
        assert child is not None and psutil.pid_exists(child.os_pid)
        runtime.terminate(cluster.master)
        runtime.wait(cluster.master).result(10)
        assert not child.is_alive()
