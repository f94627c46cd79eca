"""The resource leak of the chaos run (issue 12), replayed in-process, step by step.

The chaos run (``benchmarks/chaos.py``) now and then ended with an agent never offered whole
again: the allocator kept part of it counted for the framework though no task, executor or
offer held it. The sequence, found in a failing run's logs:

1. an agent is SIGKILLed; the master takes it for unreachable and its tasks go
   TASK_UNREACHABLE (the master keeps them, so they can come back with the agent);
2. while it is down, its short tasks finish; the agent restarts, finds them ended, and
   re-registers reporting them TASK_FINISHED (their updates wait for an acknowledgement);
3. the master tells the allocator what the agent uses without those tasks (they ended), and
   the allocator offers the framework the whole agent;
4. the agent resends the tasks' TASK_FINISHED updates; the master still had the tasks live,
   so it told the allocator to free their resources a second time: the allocator took them
   off what the framework held there, which was the offer;
5. the framework declines the offer: "does not hold" it any more, the allocator refuses the
   return, and keeps the offer's resources less those tasks' counted for good. From then on
   the agent is offered just the tasks' worth.

Two more ways to the same end are replayed below: an allocation on its way to the master
while the agent re-registers (the master rebuilt the allocator's view of the agent, which
forgot it), and the offers of a scheduler that failed over (kept for it for good).

In-process, as tests/test_master_failures.py: a real MasterProcess with its real allocator, a
fake agent and a fake scheduler driver speaking real messages, and the runtime clock paused.
"""

from __future__ import annotations

import pytest

from corral.ids import TaskID
from corral.protocol import (
    Filters,
    FrameworkCapability,
    FrameworkCapabilityType,
    FrameworkInfo,
    Offer,
    ReconcileTask,
    Task,
    TaskStatus,
)
from corral.protocol.messages import (
    AgentReregistered,
    DeclineOffers,
    FrameworkReregistered,
    ReconcileTasks,
    ReregisterAgent,
    ReregisterFramework,
    ResourceOffers,
    RunTask,
    StatusUpdate,
)
from corral.resources import Resources
from corral.task_states import Source, TaskState
from libprocess import UPID
from master.allocator import AllocatorProcess
from tests.master_actors import FakeScheduler
from tests.test_master import AGENT_RESOURCES, OPTIONS, TASK_RESOURCES, Cluster
from tests.test_master_failures import info_of

AWARE = (FrameworkCapability(FrameworkCapabilityType.PARTITION_AWARE),)
UNREACHABLE_AFTER = OPTIONS.agent_ping_timeout * (OPTIONS.max_agent_ping_timeouts + 1)


@pytest.fixture
def cluster(runtime, paused_clock, tmp_path) -> Cluster:
    return Cluster(runtime, paused_clock, str(tmp_path), OPTIONS)


def launch_running(cluster: Cluster, offer: Offer, *names: str) -> None:
    cluster.accept(offer, *(cluster.task(name) for name in names))
    for name in names:
        cluster.agent.next(RunTask)
        cluster.update(name, TaskState.TASK_RUNNING)
    assert [s.state for s in heard(cluster)[0]] == [TaskState.TASK_RUNNING] * len(names)


def heard(cluster: Cluster) -> tuple[list[TaskStatus], list[Offer]]:
    """The updates and the offers the framework received since last asked."""
    cluster.settle()
    received = cluster.scheduler.drain()
    updates = [m.status for m in received if isinstance(m, StatusUpdate)]
    offers = [offer for m in received if isinstance(m, ResourceOffers) for offer in m.offers]
    return updates, offers


def reported(cluster: Cluster, name: str, state: TaskState) -> Task:
    """A task as the restarted agent reports it: one whose executor ended while the agent
    was down is known by its pending update alone (no resources), as agent.py reports it."""
    ended = state is not TaskState.TASK_RUNNING
    return Task(
        name=name,
        task_id=TaskID(name),
        framework_id=cluster.framework_id,
        agent_id=cluster.agent_id,
        state=state,
        resources=Resources() if ended else TASK_RESOURCES,
    )


def reregister(cluster: Cluster, *tasks: Task) -> None:
    cluster.say(cluster.agent, ReregisterAgent(info_of(cluster), "test", tasks=tasks))
    assert cluster.agent.next(AgentReregistered).agent_id == cluster.agent_id


def decline(cluster: Cluster, offers: list[Offer]) -> None:
    for offer in offers:
        cluster.say(
            cluster.scheduler, DeclineOffers(cluster.framework_id, (offer.id,), Filters(0.0))
        )


def offered(offers: list[Offer]) -> list[Resources]:
    return [offer.resources.unallocated() for offer in offers]


def used_at_master(cluster: Cluster) -> Resources:
    (agent,) = cluster.describe()["agents"]
    return Resources.from_json(agent["used_resources"])


def unreachable_then_back(cluster: Cluster, *tasks: Task) -> None:
    """Steps 1 and 2: the agent goes silent until unreachable (its task with it, its offers
    rescinded), then comes back reporting ``tasks``."""
    cluster.runtime.dispatch(cluster.agent, setattr, cluster.agent, "answer_pings", False)
    cluster.tick(UNREACHABLE_AFTER)
    updates, _ = heard(cluster)
    assert [(s.task_id, s.state) for s in updates] == [("t1", TaskState.TASK_UNREACHABLE)]
    cluster.runtime.dispatch(cluster.agent, setattr, cluster.agent, "answer_pings", True)
    reregister(cluster, *tasks)


def test_tasks_that_ended_while_their_agent_was_unreachable_are_not_freed_twice(cluster):
    cluster.register_agent()
    launch_running(cluster, cluster.register_framework(capabilities=AWARE), "t1")
    unreachable_then_back(cluster, reported(cluster, "t1", TaskState.TASK_FINISHED))
    # 3. The whole agent is offered.
    cluster.tick()
    _, outstanding = heard(cluster)
    assert offered(outstanding) == [AGENT_RESOURCES]
    # 4. t1's update arrives while the offer is outstanding; the framework hears it.
    cluster.update("t1", TaskState.TASK_FINISHED)
    updates, _ = heard(cluster)
    assert [(s.task_id, s.state) for s in updates] == [("t1", TaskState.TASK_FINISHED)]
    # 5. The offer comes back whole, and the agent is offered whole again.
    decline(cluster, outstanding)
    cluster.tick()
    assert offered(heard(cluster)[1]) == [AGENT_RESOURCES]


def test_a_task_its_returning_agent_reports_ended_is_ended_at_once(cluster):
    cluster.register_agent()
    launch_running(cluster, cluster.register_framework(capabilities=AWARE), "t1")
    unreachable_then_back(cluster, reported(cluster, "t1", TaskState.TASK_FINISHED))
    assert {t["id"]: t["state"] for t in cluster.describe()["tasks"]} == {"t1": "TASK_FINISHED"}
    assert used_at_master(cluster) == Resources()
    cluster.say(
        cluster.scheduler, ReconcileTasks(cluster.framework_id, (ReconcileTask(TaskID("t1")),))
    )
    cluster.update("t1", TaskState.TASK_FINISHED)  # the agent's own update still comes through
    updates, _ = heard(cluster)
    assert [(s.task_id, s.state, s.source) for s in updates] == [
        ("t1", TaskState.TASK_FINISHED, Source.SOURCE_MASTER),
        ("t1", TaskState.TASK_FINISHED, Source.SOURCE_EXECUTOR),
    ]
    assert cluster.runtime.metrics.snapshot()["master/tasks_finished"] == 1  # counted once


def test_a_restarted_agent_reporting_a_task_ended_frees_it_once(cluster):
    cluster.register_agent()
    launch_running(cluster, cluster.register_framework(capabilities=AWARE), "t1", "t2")
    # The agent restarts at once (never unreachable): t1 ended while it was down, t2 runs.
    reregister(
        cluster,
        reported(cluster, "t1", TaskState.TASK_FINISHED),
        reported(cluster, "t2", TaskState.TASK_RUNNING),
    )
    assert used_at_master(cluster) == TASK_RESOURCES  # t2's
    cluster.tick()
    _, outstanding = heard(cluster)
    assert offered(outstanding) == [AGENT_RESOURCES - TASK_RESOURCES]
    cluster.update("t1", TaskState.TASK_FINISHED)
    assert [s.state for s in heard(cluster)[0]] == [TaskState.TASK_FINISHED]
    decline(cluster, outstanding)
    cluster.tick()
    _, outstanding = heard(cluster)
    assert offered(outstanding) == [AGENT_RESOURCES - TASK_RESOURCES]  # t1 freed once
    cluster.update("t2", TaskState.TASK_FINISHED)
    assert [s.state for s in heard(cluster)[0]] == [TaskState.TASK_FINISHED]
    decline(cluster, outstanding)
    cluster.tick()
    assert offered(heard(cluster)[1]) == [AGENT_RESOURCES]


def test_an_allocation_on_its_way_while_its_agent_re_registers_is_still_counted(cluster):
    """A cycle's allocation of the agent is on its way to the master when the master takes
    the agent's re-registration in. The master rebuilds the allocator's view of the agent
    (remove, then add with what its tasks use), which forgets that allocation: the master
    used to offer it all the same, and the allocator offered the same resources again. Now
    the allocation carries the generation of the view it was made from, and the master drops
    a stale one."""
    cluster.register_agent()
    launch_running(cluster, cluster.register_framework(capabilities=AWARE), "t1")
    cluster.tick()
    _, outstanding = heard(cluster)
    decline(cluster, outstanding)  # the rest of the agent is free, not offered, not filtered
    allocator = UPID(cluster.describe()["allocator"]["pid"])
    restarted = ReregisterAgent(
        info_of(cluster), "test", tasks=(reported(cluster, "t1", TaskState.TASK_FINISHED),)
    )
    agent = cluster.agent

    def cycle_then_reregister() -> None:
        # In one event of the agent: a cycle is asked of the allocator, then the agent
        # re-registers. The allocator runs first (its cycle's allocation queues behind the
        # ReregisterAgent at the master), so the master takes the re-registration in while
        # that allocation is on its way, and the allocator hears of the re-registration
        # only after its cycle.
        agent.runtime.dispatch(allocator, AllocatorProcess.trigger)
        agent.say(cluster.master.pid, restarted)

    cluster.runtime.dispatch(agent, cycle_then_reregister).result(5)
    assert agent.next(AgentReregistered).agent_id == cluster.agent_id
    cluster.tick()
    _, outstanding = heard(cluster)
    total = Resources()
    for resources in offered(outstanding):
        total = total + resources
    assert total == AGENT_RESOURCES  # each resource offered once
    decline(cluster, outstanding)
    cluster.tick()
    assert offered(heard(cluster)[1]) == [AGENT_RESOURCES]


def test_offers_of_a_scheduler_that_failed_over_come_back(cluster):
    """A framework's new scheduler takes over before the master saw the old one go: the old
    one's offers were kept for it, and nobody would ever use or decline them."""
    cluster.register_agent()
    kept = cluster.register_framework(capabilities=AWARE)  # the old scheduler keeps it
    newcomer = FakeScheduler()
    cluster.runtime.spawn(newcomer)
    info = FrameworkInfo("tester", "test-framework", id=cluster.framework_id, capabilities=AWARE)
    cluster.say(newcomer, ReregisterFramework(info, failover=True))
    assert newcomer.next(FrameworkReregistered).framework_id == cluster.framework_id
    cluster.scheduler = newcomer
    cluster.tick()
    _, offers = heard(cluster)
    assert offered(offers) == [AGENT_RESOURCES]
    (framework,) = cluster.describe()["frameworks"]
    held = [offer["id"] for offer in framework["offers"]]
    assert held == [offers[0].id] and kept.id not in held
