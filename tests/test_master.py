"""The master actor with real messages: a fake agent and a fake scheduler driver in the same
runtime speak docs/flows.md to a real MasterProcess (with its real allocator)."""

from __future__ import annotations

import gc
import json
import os
import time
import urllib.request
from dataclasses import replace
from typing import Any

import pytest

from corral.discovery import master_pid
from corral.ids import AgentID, ExecutorID, FrameworkID, OfferID, TaskID, new_status_uuid
from corral.protocol import (
    AgentInfo,
    CommandInfo,
    ExecutorInfo,
    Filters,
    FrameworkCapability,
    FrameworkCapabilityType,
    FrameworkInfo,
    Offer,
    Operation,
    ReconcileTask,
    Task,
    TaskInfo,
    TaskStatus,
    json_compatible,
)
from corral.protocol.messages import (
    AcceptOffers,
    AgentLost,
    AgentRegistered,
    AgentReregistered,
    DeclineOffers,
    ExecutorToFramework,
    FrameworkError,
    FrameworkRegistered,
    FrameworkReregistered,
    FrameworkToExecutor,
    KillTask,
    ReconcileTasks,
    RegisterAgent,
    RegisterFramework,
    ReregisterAgent,
    ReregisterFramework,
    RescindOffer,
    ResourceOffers,
    ReviveOffers,
    RunTask,
    RunTaskGroup,
    ShutdownAgent,
    ShutdownFramework,
    StatusUpdate,
    StatusUpdateAcknowledgement,
    SuppressOffers,
    UnregisterAgent,
    UnregisterFramework,
)
from corral.resources import Resources
from corral.task_states import Reason, Source, TaskState
from libprocess import Runtime
from master import MasterOptions, MasterProcess
from master import registry as registry_module
from master.accept import fit, validate_offers
from master.allocator.quota import Quota
from master.registry import FILE_NAME, AgentStatus, Registry, RegistryError
from master.state import OfferRecord
from tests.master_actors import FakeAgent, FakeScheduler

AGENT_RESOURCES = Resources.parse("cpus:4;mem:1024")
TASK_RESOURCES = Resources.parse("cpus:1;mem:128")
OPTIONS = MasterOptions(hostname="test-master", allocation_interval=1.0)


def on_disk(work_dir: str) -> dict:
    """The registry's entries as a restarted master reads them from ``work_dir``."""
    registry = Registry(work_dir)
    registry.recover()
    return registry.entries()


class Cluster:
    """A master, one agent and one scheduler driver in one runtime, with a paused clock."""

    def __init__(
        self,
        runtime: Runtime,
        clock: Any,
        work_dir: str,
        options: MasterOptions,
        peers: Runtime | None = None,
    ):
        """``peers``: the runtime of the agent and the scheduler (default: the master's)."""
        self.runtime = runtime
        self.peers = peers or runtime
        self.clock = clock
        self.work_dir = work_dir
        self.master = MasterProcess(work_dir, options)
        runtime.spawn(self.master)
        self.agent = FakeAgent()
        self.peers.spawn(self.agent)
        self.scheduler = FakeScheduler()
        self.peers.spawn(self.scheduler)
        self.framework_id = None
        self.agent_id = None

    def say(self, actor, message) -> None:
        self.peers.dispatch(actor, actor.say, self.master.pid, message).result(5)

    def settle(self) -> None:
        self.runtime.settle()
        self.peers.settle()

    def tick(self, seconds: float = 1.0) -> None:
        """Advance the paused clock in allocation-interval steps, settling after each."""
        steps = round(seconds / OPTIONS.allocation_interval)
        for _ in range(steps):
            self.clock.advance(OPTIONS.allocation_interval)
            self.settle()

    def describe(self) -> dict[str, Any]:
        return self.runtime.dispatch(self.master, self.master.describe).result(5)

    def register_agent(self) -> None:
        info = AgentInfo(hostname="host-a", resources=AGENT_RESOURCES)
        self.say(self.agent, RegisterAgent(info, version="test"))
        self.agent_id = self.agent.next(AgentRegistered).agent_id

    def register_framework(self, **info: Any) -> Offer:
        framework = FrameworkInfo(user="tester", name="test-framework", **info)
        self.say(self.scheduler, RegisterFramework(framework))
        self.framework_id = self.scheduler.next(FrameworkRegistered).framework_id
        return self.next_offer()

    def next_offer(self) -> Offer:
        (offer,) = self.scheduler.next(ResourceOffers).offers
        return offer

    def offers_pending(self) -> list[Offer]:
        self.settle()
        return [
            offer
            for message in self.scheduler.drain()
            if isinstance(message, ResourceOffers)
            for offer in message.offers
        ]

    def task(self, name: str, resources: Resources = TASK_RESOURCES, **fields: Any) -> TaskInfo:
        fields.setdefault("command", CommandInfo(value="true"))
        return TaskInfo(name, TaskID(name), self.agent_id, resources, **fields)

    def accept(self, offer: Offer, *tasks: TaskInfo, refuse_seconds: float = 0.0) -> None:
        self.say(
            self.scheduler,
            AcceptOffers(
                self.framework_id,
                (offer.id,),
                (Operation.of_launch(*tasks),),
                Filters(refuse_seconds),
            ),
        )

    def launch(self, name: str) -> RunTask:
        offer = self.next_offer_or_wait()
        self.accept(offer, self.task(name))
        return self.agent.next(RunTask)

    def next_offer_or_wait(self) -> Offer:
        pending = self.offers_pending()
        if pending:
            return pending[-1]
        self.tick()
        return self.next_offer()

    def update(self, name: str, state: TaskState, uuid: bytes | None = None) -> StatusUpdate:
        status = TaskStatus(
            TaskID(name),
            state,
            source=Source.SOURCE_EXECUTOR,
            agent_id=self.agent_id,
            uuid=uuid or new_status_uuid(),
        )
        update = StatusUpdate(self.framework_id, status, pid=str(self.agent.pid))
        self.say(self.agent, update)
        return update


@pytest.fixture
def cluster(runtime, paused_clock, tmp_path) -> Cluster:
    return Cluster(runtime, paused_clock, str(tmp_path), OPTIONS)


@pytest.fixture
def ready(cluster) -> tuple[Cluster, Offer]:
    """A registered agent and framework, and the framework's first offer."""
    cluster.register_agent()
    return cluster, cluster.register_framework()


def test_agent_registration_is_recorded_in_the_registry_before_the_answer(cluster):
    cluster.register_agent()
    entry = on_disk(cluster.work_dir)[cluster.agent_id]  # read back as a restarted master would
    assert entry.status is AgentStatus.ADMITTED
    assert entry.info.hostname == "host-a"
    # A retry from the same agent is answered with the same id, not a second admission.
    cluster.say(cluster.agent, RegisterAgent(AgentInfo("host-a", resources=AGENT_RESOURCES), "t"))
    assert cluster.agent.next(AgentRegistered).agent_id == cluster.agent_id
    assert len(cluster.describe()["agents"]) == 1


def test_a_registered_framework_is_offered_the_agent(ready):
    cluster, offer = ready
    assert offer.agent_id == cluster.agent_id
    assert offer.framework_id == cluster.framework_id
    assert offer.hostname == "host-a"
    assert offer.resources == AGENT_RESOURCES.allocated_to("*")
    assert offer.allocation_info.role == "*"


def test_a_task_runs_through_its_updates_and_its_resources_come_back(ready):
    cluster, offer = ready
    cluster.accept(offer, cluster.task("t1"))
    run = cluster.agent.next(RunTask)
    assert run.task.task_id == "t1"
    assert run.task.resources == TASK_RESOURCES.allocated_to("*")
    assert run.pid == cluster.scheduler.pid
    assert cluster.describe()["tasks"][0]["state"] == "TASK_STAGING"

    for state in (TaskState.TASK_RUNNING, TaskState.TASK_FINISHED):
        sent = cluster.update("t1", state)
        received = cluster.scheduler.next(StatusUpdate)
        assert received.status.state is state
        assert received.status.uuid == sent.status.uuid
        assert received.pid == cluster.agent.pid
        ack = StatusUpdateAcknowledgement(
            cluster.agent_id, cluster.framework_id, TaskID("t1"), sent.status.uuid
        )
        cluster.say(cluster.scheduler, ack)
        assert cluster.agent.next(StatusUpdateAcknowledgement) == ack

    # What the task did not use came back at accept, the task's own at FINISHED: the next
    # cycle offers the whole agent again.
    cluster.tick()
    assert cluster.next_offer().resources == AGENT_RESOURCES.allocated_to("*")
    state = cluster.describe()
    assert state["tasks"][0]["state"] == "TASK_FINISHED"
    assert state["agents"][0]["used_resources"] == []
    metrics = cluster.runtime.metrics.snapshot()
    assert metrics["master/tasks_launched"] == 1
    assert metrics["master/tasks_active"] == 0
    assert metrics["master/agents_active"] == 1


def test_a_running_task_holds_its_resources(ready):
    cluster, offer = ready
    cluster.accept(offer, cluster.task("t1"))
    cluster.agent.next(RunTask)
    cluster.tick()
    left = AGENT_RESOURCES - TASK_RESOURCES
    assert cluster.next_offer().resources == left.allocated_to("*")
    agent = cluster.describe()["agents"][0]
    assert Resources.from_json(agent["used_resources"]) == TASK_RESOURCES


def test_decline_filters_the_agent_until_refuse_seconds_pass(ready):
    cluster, offer = ready
    cluster.say(cluster.scheduler, DeclineOffers(cluster.framework_id, (offer.id,), Filters(10.0)))
    cluster.tick(9)
    assert cluster.offers_pending() == []
    cluster.tick(2)
    assert [o.resources for o in cluster.offers_pending()] == [AGENT_RESOURCES.allocated_to("*")]


def test_one_decline_of_many_offers_filters_each_and_ignores_unknown_ids(cluster):
    cluster.register_agent()
    second = FakeAgent("agent-b")
    cluster.peers.spawn(second)
    info = AgentInfo(hostname="host-b", resources=AGENT_RESOURCES)
    cluster.say(second, RegisterAgent(info, version="test"))
    second.next(AgentRegistered)
    framework = FrameworkInfo(user="tester", name="test-framework")
    cluster.say(cluster.scheduler, RegisterFramework(framework))
    cluster.framework_id = cluster.scheduler.next(FrameworkRegistered).framework_id
    offers = cluster.scheduler.next(ResourceOffers).offers
    if len(offers) < 2:  # the second agent's offer may come in the next cycle
        cluster.tick()
        offers += tuple(cluster.offers_pending())
    assert len({offer.agent_id for offer in offers}) == 2
    ids = (*(offer.id for offer in offers), OfferID("no-such-offer"), offers[0].id)
    cluster.say(cluster.scheduler, DeclineOffers(cluster.framework_id, ids, Filters(10.0)))
    cluster.tick(9)
    assert cluster.offers_pending() == []
    cluster.tick(2)
    back = cluster.offers_pending()
    assert sorted(offer.agent_id for offer in back) == sorted(offer.agent_id for offer in offers)


def test_suppress_stops_offers_and_revive_brings_them_back(ready):
    cluster, offer = ready
    cluster.say(cluster.scheduler, SuppressOffers(cluster.framework_id))
    cluster.say(cluster.scheduler, DeclineOffers(cluster.framework_id, (offer.id,), Filters(0)))
    cluster.tick(3)
    assert cluster.offers_pending() == []
    cluster.say(cluster.scheduler, ReviveOffers(cluster.framework_id))
    assert len(cluster.offers_pending()) == 1  # revive triggers a cycle at once


def _master_update(cluster: Cluster) -> TaskStatus:
    status = cluster.scheduler.next(StatusUpdate).status
    assert status.source is Source.SOURCE_MASTER
    assert status.uuid is None  # the master's own updates need no acknowledgement
    return status


def test_invalid_offers_drop_the_tasks_and_return_the_resources(ready):
    cluster, offer = ready
    stale = Offer(
        id=OfferID("no-such-offer"),
        framework_id=cluster.framework_id,
        agent_id=cluster.agent_id,
        hostname="host-a",
    )
    cluster.say(
        cluster.scheduler,
        AcceptOffers(
            cluster.framework_id,
            (offer.id, stale.id),
            (Operation.of_launch(cluster.task("t1")),),
        ),
    )
    status = _master_update(cluster)
    assert status.state is TaskState.TASK_DROPPED
    assert status.reason is Reason.REASON_INVALID_OFFERS
    assert "no-such-offer" in status.message
    cluster.tick()
    assert cluster.next_offer().resources == AGENT_RESOURCES.allocated_to("*")
    assert not any(isinstance(m, RunTask) for m in cluster.agent.drain())


@pytest.mark.parametrize(
    ("task_fields", "words"),
    [
        ({"command": None}, "neither 'command' nor 'executor'"),
        ({"resources": Resources.parse("cpus:8;mem:128")}, "needs cpus:8"),
        ({"resources": Resources()}, "uses no resources"),
    ],
)
def test_invalid_tasks_get_task_error_and_their_resources_come_back(ready, task_fields, words):
    cluster, offer = ready
    resources = task_fields.pop("resources", TASK_RESOURCES)
    if task_fields.get("command", "x") is None:
        task = TaskInfo("bad", TaskID("bad"), cluster.agent_id, resources)
    else:
        task = cluster.task("bad", resources)
    cluster.accept(offer, task)
    status = _master_update(cluster)
    assert status.state is TaskState.TASK_ERROR
    assert status.reason is Reason.REASON_TASK_INVALID
    assert words in status.message
    assert cluster.runtime.metrics.snapshot()["master/tasks_refused"] == 1
    cluster.tick()
    assert cluster.next_offer().resources == AGENT_RESOURCES.allocated_to("*")


def test_duplicate_task_ids_are_refused_but_the_first_task_launches(ready):
    cluster, offer = ready
    cluster.accept(offer, cluster.task("t1"), cluster.task("t1"))
    assert cluster.agent.next(RunTask).task.task_id == "t1"
    status = _master_update(cluster)
    assert status.state is TaskState.TASK_ERROR
    assert "more than once" in status.message
    # A later accept reusing a live task's id is refused too.
    cluster.tick()
    cluster.accept(cluster.next_offer(), cluster.task("t1"))
    assert "already used" in _master_update(cluster).message


def test_kill_goes_to_the_agent_and_an_unknown_task_is_lost(ready):
    cluster, offer = ready
    cluster.accept(offer, cluster.task("t1"))
    cluster.agent.next(RunTask)
    cluster.say(cluster.scheduler, KillTask(cluster.framework_id, TaskID("t1")))
    kill = cluster.agent.next(KillTask)
    assert (kill.task_id, kill.agent_id) == ("t1", cluster.agent_id)
    cluster.say(cluster.scheduler, KillTask(cluster.framework_id, TaskID("ghost")))
    status = _master_update(cluster)
    assert (status.task_id, status.state) == ("ghost", TaskState.TASK_LOST)
    assert status.reason is Reason.REASON_TASK_UNKNOWN


def test_reconciliation_explicit_and_implicit(ready):
    cluster, offer = ready
    cluster.accept(offer, cluster.task("t1"))
    cluster.agent.next(RunTask)
    cluster.update("t1", TaskState.TASK_RUNNING)
    cluster.scheduler.next(StatusUpdate)
    asked = (ReconcileTask(TaskID("t1")), ReconcileTask(TaskID("ghost")))
    cluster.say(cluster.scheduler, ReconcileTasks(cluster.framework_id, asked))
    known, unknown = _master_update(cluster), _master_update(cluster)
    assert (known.task_id, known.state, known.agent_id) == (
        "t1",
        TaskState.TASK_RUNNING,
        cluster.agent_id,
    )
    assert (unknown.task_id, unknown.state) == ("ghost", TaskState.TASK_LOST)
    assert {known.reason, unknown.reason} == {Reason.REASON_RECONCILIATION}
    cluster.say(cluster.scheduler, ReconcileTasks(cluster.framework_id))
    implicit = _master_update(cluster)
    assert (implicit.task_id, implicit.state) == ("t1", TaskState.TASK_RUNNING)
    assert implicit.reason is Reason.REASON_RECONCILIATION


def test_partition_aware_frameworks_reconcile_unknown_tasks_as_unknown(cluster):
    cluster.register_agent()
    aware = (FrameworkCapability(FrameworkCapabilityType.PARTITION_AWARE),)
    cluster.register_framework(capabilities=aware)
    asked = (ReconcileTask(TaskID("ghost")),)
    cluster.say(cluster.scheduler, ReconcileTasks(cluster.framework_id, asked))
    assert _master_update(cluster).state is TaskState.TASK_UNKNOWN


def test_a_silent_agent_becomes_unreachable_and_its_tasks_are_lost(ready):
    cluster, offer = ready
    cluster.accept(offer, cluster.task("t1"))
    cluster.agent.next(RunTask)
    cluster.runtime.dispatch(cluster.agent, setattr, cluster.agent, "answer_pings", False)
    cluster.tick(15 * 4)
    assert not any(isinstance(m, AgentLost) for m in cluster.scheduler.drain())
    cluster.tick(15 * 2)
    lost = _master_update(cluster)
    assert (lost.task_id, lost.state) == ("t1", TaskState.TASK_LOST)
    assert lost.reason is Reason.REASON_AGENT_REMOVED
    assert cluster.scheduler.next(AgentLost).agent_id == cluster.agent_id
    assert cluster.agent.pings >= 5
    state = cluster.describe()
    assert state["agents"] == []
    assert state["unreachable_agents"][0]["id"] == cluster.agent_id
    assert on_disk(cluster.work_dir)[cluster.agent_id].status is AgentStatus.UNREACHABLE
    # It comes back with a re-registration and is offered again.
    info = AgentInfo("host-a", resources=AGENT_RESOURCES, id=cluster.agent_id)
    cluster.say(cluster.agent, ReregisterAgent(info, "test"))
    assert cluster.agent.next(AgentReregistered).agent_id == cluster.agent_id
    assert cluster.offers_pending()


def test_an_answering_agent_stays(ready):
    cluster, _ = ready
    cluster.tick(15 * 8)
    assert cluster.agent.pings >= 7
    assert [agent["id"] for agent in cluster.describe()["agents"]] == [cluster.agent_id]


def test_teardown_shuts_the_framework_down_on_its_agents(ready):
    cluster, offer = ready
    cluster.accept(offer, cluster.task("t1"))
    cluster.agent.next(RunTask)
    cluster.say(cluster.scheduler, UnregisterFramework(cluster.framework_id))
    assert cluster.agent.next(ShutdownFramework).framework_id == cluster.framework_id
    state = cluster.describe()
    assert state["frameworks"] == []
    assert state["agents"][0]["used_resources"] == []


def test_a_driver_that_exits_is_removed_after_its_failover_timeout(cluster):
    cluster.register_agent()
    cluster.register_framework(failover_timeout=30.0)
    cluster.runtime.terminate(cluster.scheduler)
    cluster.settle()
    (framework,) = cluster.describe()["frameworks"]
    assert (framework["active"], framework["connected"]) == (False, False)
    cluster.tick(31)
    assert cluster.describe()["frameworks"] == []


def test_bad_requests_change_nothing_and_the_master_keeps_serving(cluster):
    cluster.runtime.send(cluster.master.pid, RegisterAgent.NAME, {"agent": 5}, cluster.agent.pid)
    cluster.settle()
    assert cluster.runtime.metrics.snapshot()["corral/messages_invalid"] == 1
    # A call about a framework that does not exist is refused, and its sender told why.
    cluster.say(cluster.scheduler, ReviveOffers(FrameworkID("nope")))
    ack = StatusUpdateAcknowledgement(AgentID("x"), FrameworkID("y"), TaskID("z"), b"0" * 16)
    cluster.say(cluster.scheduler, ack)
    # An agent with an id must re-register, not register: it is told to stop, and why.
    cluster.say(cluster.agent, RegisterAgent(AgentInfo("h", id=AgentID("a1")), "test"))
    cluster.settle()
    (refused,) = cluster.agent.drain()
    assert refused == ShutdownAgent("RegisterAgent carries id a1; an agent with an id re-registers")
    errors = [m.message for m in cluster.scheduler.drain() if isinstance(m, FrameworkError)]
    assert errors == [
        "revive refused: framework nope is not registered with this master; register first",
        "acknowledgement refused: framework y is not registered with this master; register first",
    ]
    assert cluster.describe()["agents"] == []
    cluster.register_agent()
    cluster.register_framework()
    assert len(cluster.describe()["agents"]) == 1


def test_master_state_over_http_with_peers_in_another_runtime(tmp_path):
    """Agent and driver in a second runtime: every message crosses msgpack and ZeroMQ."""
    with (
        Runtime("127.0.0.1", 0, http_port=0) as runtime,
        Runtime("127.0.0.1", 0) as peers,
    ):
        cluster = Cluster(runtime, None, str(tmp_path), OPTIONS, peers)
        cluster.register_agent()
        offer = cluster.register_framework()
        assert offer.resources == AGENT_RESOURCES.allocated_to("*")
        cluster.accept(offer, cluster.task("t1"))
        assert cluster.agent.next(RunTask).task.task_id == "t1"
        sent = cluster.update("t1", TaskState.TASK_RUNNING)
        assert cluster.scheduler.next(StatusUpdate).status.uuid == sent.status.uuid
        ack = StatusUpdateAcknowledgement(
            cluster.agent_id, cluster.framework_id, TaskID("t1"), sent.status.uuid
        )
        cluster.say(cluster.scheduler, ack)
        assert cluster.agent.next(StatusUpdateAcknowledgement) == ack

        address = runtime.http_address
        assert master_pid(address) == cluster.master.pid
        with urllib.request.urlopen(f"http://{address}/master/state", timeout=5) as response:
            state = json.loads(response.read())

        # The driver ends: the master, linked to it across runtimes, sees it and, with no
        # failover timeout, removes the framework.
        peers.terminate(cluster.scheduler)
        deadline = time.monotonic() + 10
        while cluster.describe()["frameworks"] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert cluster.describe()["frameworks"] == []
        assert cluster.agent.next(ShutdownFramework).framework_id == cluster.framework_id

    assert state["pid"] == str(cluster.master.pid)
    assert state["hostname"] == "test-master"
    (agent,) = state["agents"]
    assert (agent["id"], agent["hostname"], agent["pid"]) == (
        cluster.agent_id,
        "host-a",
        str(cluster.agent.pid),
    )
    assert Resources.from_json(agent["resources"]) == AGENT_RESOURCES
    assert Resources.from_json(agent["used_resources"]) == TASK_RESOURCES
    (framework,) = state["frameworks"]
    assert (framework["id"], framework["name"], framework["roles"]) == (
        cluster.framework_id,
        "test-framework",
        ["*"],
    )
    assert framework["active"] is True
    (task,) = framework["tasks"]
    assert (task["id"], task["state"], task["agent_id"]) == ("t1", "TASK_RUNNING", agent["id"])
    assert Resources.from_json(task["resources"]) == TASK_RESOURCES
    assert [t["id"] for t in state["tasks"]] == ["t1"]


def test_a_restarted_master_takes_back_agents_and_tasks_that_reregister(ready):
    cluster, offer = ready
    cluster.accept(offer, cluster.task("t1"))
    run = cluster.agent.next(RunTask)
    cluster.update("t1", TaskState.TASK_RUNNING)
    cluster.scheduler.next(StatusUpdate)
    old = cluster.master
    cluster.runtime.terminate(old)
    cluster.runtime.wait(old).result(5)
    cluster.runtime.wait(old.allocator.pid).result(5)

    new = cluster.master = MasterProcess(cluster.work_dir, OPTIONS)
    cluster.runtime.spawn(new)
    cluster.settle()
    assert cluster.agent_id in new.registry  # recovered from the work directory
    running = Task(
        name="t1",
        task_id=TaskID("t1"),
        framework_id=cluster.framework_id,
        agent_id=cluster.agent_id,
        state=TaskState.TASK_RUNNING,
        resources=run.task.resources,
    )
    info = AgentInfo("host-a", resources=AGENT_RESOURCES, id=cluster.agent_id)
    cluster.say(cluster.agent, ReregisterAgent(info, "test", tasks=(running,)))
    assert cluster.agent.next(AgentReregistered).agent_id == cluster.agent_id
    framework = FrameworkInfo(user="tester", name="test-framework", id=cluster.framework_id)
    cluster.say(cluster.scheduler, ReregisterFramework(framework, failover=True))
    assert cluster.scheduler.next(FrameworkReregistered).framework_id == cluster.framework_id
    left = AGENT_RESOURCES - TASK_RESOURCES
    assert cluster.next_offer().resources == left.allocated_to("*")
    cluster.say(cluster.scheduler, ReconcileTasks(cluster.framework_id))
    status = _master_update(cluster)
    assert (status.task_id, status.state) == ("t1", TaskState.TASK_RUNNING)


def test_an_agent_that_leaves_is_lost_and_refused_afterwards(ready):
    cluster, _ = ready
    cluster.say(cluster.agent, UnregisterAgent(cluster.agent_id))
    assert cluster.scheduler.next(AgentLost).agent_id == cluster.agent_id
    info = AgentInfo("host-a", resources=AGENT_RESOURCES, id=cluster.agent_id)
    cluster.say(cluster.agent, ReregisterAgent(info, "test"))
    cluster.settle()
    assert not any(isinstance(m, AgentReregistered) for m in cluster.agent.drain())
    assert cluster.describe()["agents"] == []


def test_offers_are_rescinded_after_the_offer_timeout(runtime, paused_clock, tmp_path):
    options = MasterOptions(hostname="test-master", offer_timeout=5.0)
    cluster = Cluster(runtime, paused_clock, str(tmp_path), options)
    cluster.register_agent()
    offer = cluster.register_framework()
    cluster.tick(4)
    assert not any(isinstance(m, RescindOffer) for m in cluster.scheduler.drain())
    cluster.tick(1)
    assert cluster.scheduler.next(RescindOffer).offer_id == offer.id
    cluster.tick(1)
    assert cluster.next_offer().id != offer.id  # the resources come back unfiltered


def test_a_task_group_launches_under_its_executor(ready):
    cluster, offer = ready
    executor = ExecutorInfo(
        ExecutorID("e1"), command=CommandInfo("run-executor"), resources=TASK_RESOURCES
    )
    tasks = (cluster.task("g1"), cluster.task("g2"))
    operation = Operation.of_launch_group(executor, tasks)
    cluster.say(cluster.scheduler, AcceptOffers(cluster.framework_id, (offer.id,), (operation,)))
    group = cluster.agent.next(RunTaskGroup)
    assert [task.task_id for task in group.task_group.tasks] == ["g1", "g2"]
    assert group.executor.framework_id == cluster.framework_id
    assert group.executor.resources == TASK_RESOURCES.allocated_to("*")
    agent = cluster.describe()["agents"][0]
    used = TASK_RESOURCES + TASK_RESOURCES + TASK_RESOURCES
    assert Resources.from_json(agent["used_resources"]) == used


def test_framework_messages_go_both_ways(ready):
    cluster, _ = ready
    to_executor = FrameworkToExecutor(
        cluster.agent_id, cluster.framework_id, ExecutorID("e1"), b"hello"
    )
    cluster.say(cluster.scheduler, to_executor)
    assert cluster.agent.next(FrameworkToExecutor) == to_executor
    to_framework = ExecutorToFramework(
        cluster.agent_id, cluster.framework_id, ExecutorID("e1"), b"hi"
    )
    cluster.say(cluster.agent, to_framework)
    assert cluster.scheduler.next(ExecutorToFramework) == to_framework


def test_a_burst_of_registrations_is_written_to_the_registry_in_one_batch(cluster):
    runtime, master = cluster.runtime, cluster.master
    agents = [FakeAgent() for _ in range(20)]
    for agent in agents:
        runtime.spawn(agent)
    writes = master.registry.writes
    bodies = [
        RegisterAgent(AgentInfo(f"host-{i}", resources=AGENT_RESOURCES), "test").to_wire()
        for i in range(20)
    ]

    def burst() -> None:  # all twenty in the master's mailbox before it serves one
        for agent, body in zip(agents, bodies, strict=True):
            runtime.send(master.pid, RegisterAgent.NAME, body, agent.pid)

    runtime.dispatch(cluster.agent, burst).result(5)
    ids = {agent.next(AgentRegistered).agent_id for agent in agents}
    assert len(ids) == 20
    assert master.registry.writes - writes == 1
    assert set(on_disk(cluster.work_dir)) == ids


# -- the sans-IO parts --------------------------------------------------------------------


def test_fit_allocates_plain_task_resources_to_the_offered_role():
    offered = Resources.parse("cpus:2;mem:256").allocated_to("eng") + Resources.parse(
        "cpus:1"
    ).allocated_to("*")
    assert fit(Resources.parse("cpus:2"), offered) == Resources.parse("cpus:2").allocated_to("eng")
    assert fit(Resources.parse("cpus:3"), offered) is None  # no one role's part holds it
    reserved = Resources.parse("cpus(eng):1").allocated_to("eng")
    assert fit(Resources.parse("cpus:1"), reserved) is None  # unreserved is not reserved


def test_offer_validation_names_the_problem():
    framework, other = FrameworkID("f1"), FrameworkID("f2")

    def record(offer_id: str, framework_id: FrameworkID, agent: str) -> OfferRecord:
        offer = Offer(OfferID(offer_id), framework_id, AgentID(agent), "h")
        return OfferRecord(offer)

    offers = {
        OfferID("o1"): record("o1", framework, "a1"),
        OfferID("o2"): record("o2", framework, "a2"),
        OfferID("o3"): record("o3", other, "a1"),
    }
    assert validate_offers(framework, (OfferID("o1"),), offers) is None
    cases = {
        (): "names no offers",
        (OfferID("o1"), OfferID("o1")): "more than once",
        (OfferID("o9"),): "no longer valid",
        (OfferID("o3"),): "another framework",
        (OfferID("o1"), OfferID("o2")): "different agents",
    }
    for offer_ids, words in cases.items():
        refusal = validate_offers(framework, offer_ids, offers)
        assert refusal is not None and words in refusal.message, offer_ids
        assert refusal.state is TaskState.TASK_DROPPED
        assert refusal.reason is Reason.REASON_INVALID_OFFERS


def test_a_failed_registry_write_changes_nothing(tmp_path):
    registry = Registry(str(tmp_path))
    registry.admit(AgentInfo("h1", id=AgentID("a1")))
    os.replace(registry.log_path, tmp_path / "saved.log")
    os.mkdir(registry.log_path)  # appending to it fails, even for root
    with pytest.raises(RegistryError, match="cannot write the registry"):
        registry.admit(AgentInfo("h2", id=AgentID("a2")))
    assert AgentID("a1") in registry and AgentID("a2") not in registry
    os.rmdir(registry.log_path)
    os.replace(tmp_path / "saved.log", registry.log_path)
    again = Registry(str(tmp_path))
    again.recover()
    assert AgentID("a1") in again and AgentID("a2") not in again


def test_the_registry_log_is_compacted_and_a_torn_last_line_dropped(tmp_path, monkeypatch):
    monkeypatch.setattr(registry_module, "MIN_COMPACTION", 4)
    registry = Registry(str(tmp_path))
    for index in range(5):  # the fourth entry compacts: snapshot written, log emptied
        registry.admit(AgentInfo(f"h{index}", id=AgentID(f"a{index}")))
    registry.mark(AgentID("a0"), AgentStatus.GONE)
    assert len(json.loads((tmp_path / FILE_NAME).read_text())["agents"]) == 4
    assert len((tmp_path / "registry.log").read_text().splitlines()) == 2  # a4, then a0 gone
    with open(registry.log_path, "a", encoding="utf-8") as file:
        file.write('{"agents": {"a9": {"info"')  # the master died while appending
    again = Registry(str(tmp_path))
    again.recover()
    assert sorted(again.entries()) == [f"a{index}" for index in range(5)]
    assert again.status(AgentID("a0")) is AgentStatus.GONE
    (tmp_path / "registry.log").write_text("not json\n{}\n")  # a whole line that is bad
    with pytest.raises(RegistryError, match="corrupt at line 1"):
        Registry(str(tmp_path)).recover()


def test_the_registry_snapshot_is_json_dumps_of_its_entries_and_settings(tmp_path, monkeypatch):
    """Entries are kept as JSON text and joined at compaction: the snapshot is the same bytes
    as ``json.dumps`` of the whole registry, before and after an operator's settings."""
    monkeypatch.setattr(registry_module, "MIN_COMPACTION", 4)
    registry = Registry(str(tmp_path))
    infos = [
        AgentInfo(f"h{i}", id=AgentID(f"a{i}"), resources=Resources.parse("cpus:2"))
        for i in range(4)
    ]
    registry.admit(*infos)
    snapshot = (tmp_path / FILE_NAME).read_text()
    agents = {
        info.id: {"info": json_compatible(info.to_wire()), "status": "ADMITTED"} for info in infos
    }
    assert snapshot == json.dumps({"version": 1, "agents": agents, **registry.settings.to_json()})
    registry.set_weights({"web": 2.0})
    registry.mark_all([AgentID("a1"), AgentID("a2"), AgentID("a3")], AgentStatus.GONE)
    snapshot = json.loads((tmp_path / FILE_NAME).read_text())
    for agent_id in ("a1", "a2", "a3"):
        agents[AgentID(agent_id)]["status"] = "GONE"
    expected = {"version": 1, "agents": agents, **registry.settings.to_json()}
    assert (tmp_path / FILE_NAME).read_text() == json.dumps(expected)
    assert snapshot["weights"] == {"web": 2.0}


def test_the_registry_keeps_an_operators_settings_through_compaction(tmp_path, monkeypatch):
    monkeypatch.setattr(registry_module, "MIN_COMPACTION", 4)
    registry = Registry(str(tmp_path))
    registry.set_weights({"eng": 2.0, "ops": 0.5})
    registry.set_quotas({"eng": Quota({"cpus": 1000}, {"cpus": 4000})})
    registry.set_deactivated(AgentID("a1"), True)  # five entries: compacted
    assert json.loads((tmp_path / FILE_NAME).read_text())["weights"] == {"eng": 2.0, "ops": 0.5}
    registry.set_quotas({"eng": Quota()})  # the default quota removes it
    registry.set_deactivated(AgentID("a2"), True)
    registry.set_deactivated(AgentID("a1"), False)
    again = Registry(str(tmp_path))
    again.recover()
    settings = again.settings
    assert settings.weights == {"eng": 2.0, "ops": 0.5}
    assert settings.quotas == {} and settings.deactivated == {AgentID("a2")}
    (tmp_path / "registry.log").write_text('{"quotas": {"eng": {"limits": 5}}}\n')
    with pytest.raises(RegistryError, match="settings not in the expected format"):
        Registry(str(tmp_path)).recover()


def test_a_corrupt_registry_is_refused_with_advice(tmp_path):
    (tmp_path / FILE_NAME).write_text("{not json")
    with pytest.raises(RegistryError, match="cannot read the registry"):
        Registry(str(tmp_path)).recover()


def test_partition_aware_tasks_go_unreachable_and_come_back_with_their_agent(cluster):
    cluster.register_agent()
    aware = (FrameworkCapability(FrameworkCapabilityType.PARTITION_AWARE),)
    offer = cluster.register_framework(capabilities=aware)
    cluster.accept(offer, cluster.task("t1"), cluster.task("t2"))
    runs = [cluster.agent.next(RunTask), cluster.agent.next(RunTask)]
    cluster.runtime.dispatch(cluster.agent, setattr, cluster.agent, "answer_pings", False)
    cluster.tick(15 * 6)
    states = {_master_update(cluster).state for _ in runs}
    assert states == {TaskState.TASK_UNREACHABLE}
    cluster.scheduler.next(AgentLost)
    assert {t["state"] for t in cluster.describe()["tasks"]} == {"TASK_UNREACHABLE"}

    still = Task(
        name="t1",
        task_id=TaskID("t1"),
        framework_id=cluster.framework_id,
        agent_id=cluster.agent_id,
        state=TaskState.TASK_RUNNING,
        resources=runs[0].task.resources,
    )
    info = AgentInfo("host-a", resources=AGENT_RESOURCES, id=cluster.agent_id)
    cluster.say(cluster.agent, ReregisterAgent(info, "test", tasks=(still,)))
    cluster.agent.next(AgentReregistered)
    gone = _master_update(cluster)
    assert (gone.task_id, gone.state) == ("t2", TaskState.TASK_GONE)
    tasks = {t["id"]: t["state"] for t in cluster.describe()["tasks"]}
    assert tasks == {"t1": "TASK_RUNNING", "t2": "TASK_GONE"}
    left = AGENT_RESOURCES - TASK_RESOURCES
    assert [o.resources for o in cluster.offers_pending()] == [left.allocated_to("*")]


def test_the_master_sets_its_processs_garbage_collector_thresholds(runtime, tmp_path):
    saved = gc.get_threshold()
    try:
        options = replace(OPTIONS, gc_thresholds=(12_345, 11, 12))
        master = MasterProcess(str(tmp_path), options)
        runtime.spawn(master)
        runtime.settle()
        assert gc.get_threshold() == (12_345, 11, 12)
        with pytest.raises(ValueError, match="three positive numbers"):
            replace(OPTIONS, gc_thresholds=(0, 10, 10))
    finally:
        gc.set_threshold(*saved)


@pytest.mark.parametrize("hold", [1, None])
def test_an_idle_master_gets_its_offers_whether_its_allocator_waits_on_a_backlog_or_not(
    runtime, paused_clock, tmp_path, hold
):
    """The gate (master/allocator/backlog_gate.py) holds cycles only while the master's
    mailbox is behind; 1 is the most eager limit, None none."""
    cluster = Cluster(
        runtime, paused_clock, str(tmp_path), replace(OPTIONS, allocation_hold_backlog=hold)
    )
    cluster.register_agent()
    offer = cluster.register_framework()
    assert offer.agent_id == cluster.agent_id
    with pytest.raises(ValueError, match="allocation_hold_backlog must be 1 or more"):
        replace(OPTIONS, allocation_hold_backlog=0)


def test_the_masters_event_queue_is_in_its_metrics(runtime, tmp_path):
    master = MasterProcess(str(tmp_path), OPTIONS)
    runtime.spawn(master)
    runtime.settle()

    def queue_and_read() -> tuple[float, float]:
        # Served later, after this dispatch: three messages and two dispatches wait meanwhile.
        for _ in range(3):
            runtime.send(master.pid, "corral.PongAgent", {}, sender=master.pid)
        for _ in range(2):
            runtime.dispatch(master, lambda: None)
        snapshot = runtime.metrics.snapshot()
        return snapshot["master/event_queue_messages"], snapshot["master/event_queue_dispatches"]

    assert runtime.dispatch(master, queue_and_read).result(5) == (3, 2)
    runtime.settle()
    snapshot = runtime.metrics.snapshot()
    assert (snapshot["master/event_queue_messages"], snapshot["master/event_queue_dispatches"]) == (
        0,
        0,
    )
