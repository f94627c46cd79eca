"""The master when agents, frameworks or the master itself fail (issue 6).

In-process: a real MasterProcess (with its real allocator), fake agents and scheduler drivers
speaking real messages in the same runtime, and the runtime clock paused so that every
timeout (pings, removal rate limit, re-registration and failover timeouts) is advanced by
hand. What is asserted: the messages the fakes receive, ``describe()`` (``/master/state``),
the registry file, and the offers that follow (the allocator's view).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import replace
from typing import Any

import pytest

from corral.cli.main import main
from corral.ids import AgentID, FrameworkID, TaskID
from corral.protocol import (
    AgentInfo,
    FrameworkCapability,
    FrameworkCapabilityType,
    FrameworkInfo,
    ReconcileTask,
    Task,
    TaskStatus,
)
from corral.protocol.messages import (
    AgentLost,
    AgentRegistered,
    AgentReregistered,
    FrameworkError,
    FrameworkRegistered,
    FrameworkReregistered,
    KillTask,
    ReconcileTasks,
    RegisterAgent,
    RegisterFramework,
    ReregisterAgent,
    ReregisterFramework,
    RescindOffer,
    ResourceOffers,
    RunTask,
    ShutdownAgent,
    ShutdownFramework,
    StatusUpdate,
    StatusUpdateAcknowledgement,
    UnregisterFramework,
)
from corral.resources import Resources
from corral.task_states import Reason, Source, TaskState
from libprocess import Runtime
from master import MasterOptions, MasterProcess
from master.options import parse_rate_limit
from tests.master_actors import FakeAgent, FakeScheduler
from tests.test_master import AGENT_RESOURCES, OPTIONS, TASK_RESOURCES, Cluster, on_disk

AWARE = (FrameworkCapability(FrameworkCapabilityType.PARTITION_AWARE),)
PING = OPTIONS.agent_ping_timeout
TOTAL_PING = OPTIONS.agent_ping_timeout * OPTIONS.max_agent_ping_timeouts


def master_update(scheduler: FakeScheduler) -> Any:
    status = scheduler.next(StatusUpdate).status
    assert status.source is Source.SOURCE_MASTER
    assert status.uuid is None
    return status


def registry_status(cluster: Cluster, agent_id: str) -> str:
    return on_disk(cluster.work_dir)[agent_id].status.value


def info_of(cluster: Cluster, agent_id: AgentID | None = None, host: str = "host-a") -> AgentInfo:
    return AgentInfo(host, resources=AGENT_RESOURCES, id=agent_id or cluster.agent_id)


def running(cluster: Cluster, name: str, resources: Resources = TASK_RESOURCES, **fields) -> Task:
    """A task as an agent reports it on re-registration."""
    return Task(
        name=name,
        task_id=TaskID(name),
        framework_id=fields.pop("framework_id", cluster.framework_id),
        agent_id=cluster.agent_id,
        state=TaskState.TASK_RUNNING,
        resources=resources,
        **fields,
    )


def extra_agent(cluster: Cluster, host: str) -> tuple[FakeAgent, AgentID]:
    agent = FakeAgent()
    cluster.runtime.spawn(agent)
    cluster.say(agent, RegisterAgent(AgentInfo(host, resources=AGENT_RESOURCES), "test"))
    return agent, agent.next(AgentRegistered).agent_id


def register_framework_only(cluster: Cluster, **info: Any) -> None:
    """Register the cluster's framework without waiting for one single offer."""
    framework = FrameworkInfo(user="tester", name="test-framework", **info)
    cluster.say(cluster.scheduler, RegisterFramework(framework))
    cluster.framework_id = cluster.scheduler.next(FrameworkRegistered).framework_id


def lost_agents(cluster: Cluster) -> list[str]:
    cluster.settle()
    return [m.agent_id for m in cluster.scheduler.drain() if isinstance(m, AgentLost)]


def silence(cluster: Cluster, *agents: FakeAgent, answer: bool = False) -> None:
    for agent in agents:
        cluster.runtime.dispatch(agent, setattr, agent, "answer_pings", answer).result(5)


def offers_by_agent(cluster: Cluster) -> dict[str, Resources]:
    offers: dict[str, Resources] = {}
    for offer in cluster.offers_pending():
        offers[offer.agent_id] = offer.resources
    return offers


def restart_master(cluster: Cluster, options: MasterOptions) -> MasterProcess:
    old = cluster.master
    cluster.runtime.terminate(old)
    cluster.runtime.wait(old).result(5)
    cluster.runtime.wait(old.allocator.pid).result(5)
    new = cluster.master = MasterProcess(cluster.work_dir, options)
    cluster.runtime.spawn(new)
    cluster.settle()
    return new


@pytest.fixture
def cluster(runtime, paused_clock, tmp_path) -> Cluster:
    return Cluster(runtime, paused_clock, str(tmp_path), OPTIONS)


# -- 1. the ping timeout travels to the agent ------------------------------------------------


def test_registrations_tell_the_agent_the_masters_total_ping_timeout(cluster):
    info = AgentInfo("host-a", resources=AGENT_RESOURCES)
    cluster.say(cluster.agent, RegisterAgent(info, "test"))
    registered = cluster.agent.next(AgentRegistered)
    assert registered.ping_timeout == TOTAL_PING == 75.0
    cluster.agent_id = registered.agent_id
    cluster.say(cluster.agent, ReregisterAgent(info_of(cluster), "test"))
    assert cluster.agent.next(AgentReregistered).ping_timeout == TOTAL_PING


# -- 2. the agent removal rate limit ---------------------------------------------------------


def test_the_rate_limit_is_parsed_as_mesos_writes_it():
    assert parse_rate_limit("1/10secs") == pytest.approx(0.1)
    assert parse_rate_limit("5/1mins") == pytest.approx(5 / 60)
    assert parse_rate_limit(" 2 / 1hrs ") == pytest.approx(2 / 3600)
    for bad in ("10secs", "1/10", "1/10parsecs", "0/1secs", "x/1secs"):
        with pytest.raises(ValueError, match="not a rate"):
            parse_rate_limit(bad)
    with pytest.raises(ValueError, match="agent_removal_rate_limit"):
        MasterOptions(agent_removal_rate_limit=0.0)
    with pytest.raises(SystemExit):  # refused by the command line before anything starts
        main(["master", "--agent-removal-rate-limit", "fast"])


def test_unreachable_agents_are_removed_at_the_rate_limit_and_a_pong_cancels(
    runtime, paused_clock, tmp_path
):
    options = MasterOptions(hostname="test-master", agent_removal_rate_limit=1 / 30)
    cluster = Cluster(runtime, paused_clock, str(tmp_path), options)
    cluster.register_agent()
    b, b_id = extra_agent(cluster, "host-b")
    c, c_id = extra_agent(cluster, "host-c")
    register_framework_only(cluster)
    silence(cluster, cluster.agent, b, c)
    # Pings go out in slices over each round (master/liveness.py), so the three miss their
    # fifth ping a few seconds apart: the first is removed at once, the others wait for the
    # rate limit.
    waited = 0
    while not (lost := lost_agents(cluster)):
        cluster.tick(1)
        waited += 1
        assert waited <= TOTAL_PING + PING, "no agent was taken for unreachable"
    assert lost == [cluster.agent_id]
    cluster.tick(PING)  # a round later, the other two have missed theirs as well
    assert lost_agents(cluster) == []
    agents = {agent["id"]: agent for agent in cluster.describe()["agents"]}
    assert {agent_id: agent["pending_removal"] for agent_id, agent in agents.items()} == {
        b_id: True,
        c_id: True,
    }
    # c answers again before its turn: its removal is cancelled; b goes 30 s after the first.
    silence(cluster, c, answer=True)
    cluster.tick(29 - PING)
    assert lost_agents(cluster) == []
    cluster.tick(1)
    assert lost_agents(cluster) == [b_id]
    cluster.tick(120)
    assert lost_agents(cluster) == []
    state = cluster.describe()
    assert [(agent["id"], agent["pending_removal"]) for agent in state["agents"]] == [(c_id, False)]
    assert {agent["id"] for agent in state["unreachable_agents"]} == {cluster.agent_id, b_id}
    assert registry_status(cluster, b_id) == "UNREACHABLE"
    assert registry_status(cluster, c_id) == "ADMITTED"


# -- 3. an operator marks an agent gone ------------------------------------------------------


@pytest.fixture
def http_cluster(paused_clock, tmp_path):
    with Runtime("127.0.0.1", 0, http_port=0) as runtime:
        yield Cluster(runtime, paused_clock, str(tmp_path), OPTIONS)


def post_gone(cluster: Cluster, body: bytes, method: str = "POST") -> tuple[int, str]:
    request = urllib.request.Request(
        f"http://{cluster.runtime.http_address}/{cluster.master.pid.id}/agents/gone",
        data=body if method == "POST" else None,
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_an_operator_marks_a_registered_agent_gone_over_http(http_cluster):
    cluster = http_cluster
    cluster.register_agent()
    offer = cluster.register_framework(capabilities=AWARE)
    cluster.accept(offer, cluster.task("t1"))
    cluster.agent.next(RunTask)
    assert post_gone(cluster, b"not json")[0] == 400
    assert post_gone(cluster, b'{"agent": "x"}')[0] == 400
    assert post_gone(cluster, b"", method="GET")[0] == 405
    code, text = post_gone(cluster, b'{"agent_id": "no-such-agent"}')
    assert code == 404 and "unknown" in text
    assert cluster.describe()["agents"]  # nothing changed

    body = json.dumps({"agent_id": cluster.agent_id}).encode()
    assert post_gone(cluster, body) == (200, f"agent {cluster.agent_id} is marked gone\n")
    gone = master_update(cluster.scheduler)
    assert (gone.task_id, gone.state) == ("t1", TaskState.TASK_GONE_BY_OPERATOR)
    assert gone.reason is Reason.REASON_AGENT_REMOVED_BY_OPERATOR
    assert cluster.scheduler.next(AgentLost).agent_id == cluster.agent_id
    assert registry_status(cluster, cluster.agent_id) == "GONE"
    state = cluster.describe()
    assert state["agents"] == [] and state["unreachable_agents"] == []
    assert [(t["id"], t["state"]) for t in state["tasks"]] == [("t1", "TASK_GONE_BY_OPERATOR")]
    assert post_gone(cluster, body)[0] == 200  # again: already gone
    # It was told to stop; it is refused afterwards, told why, and nothing of it is offered.
    cluster.say(cluster.agent, ReregisterAgent(info_of(cluster), "test"))
    cluster.tick(2)
    answers = cluster.agent.drain()
    assert not any(isinstance(m, AgentReregistered) for m in answers)
    told = [m.message for m in answers if isinstance(m, ShutdownAgent)]
    assert told[0] == f"an operator marked agent {cluster.agent_id} gone"
    assert "was marked gone for good; start it with a fresh work directory" in told[-1]
    assert cluster.offers_pending() == []


def mark_gone(cluster: Cluster, agent_id: str) -> tuple[int, str]:
    master = cluster.master
    return cluster.runtime.dispatch(master, master.mark_agent_gone, AgentID(agent_id)).result(5)


def test_an_unreachable_agent_marked_gone_ends_its_tasks(cluster):
    cluster.register_agent()
    offer = cluster.register_framework(capabilities=AWARE)
    cluster.accept(offer, cluster.task("t1"))
    cluster.agent.next(RunTask)
    silence(cluster, cluster.agent)
    cluster.tick(TOTAL_PING + PING)
    assert master_update(cluster.scheduler).state is TaskState.TASK_UNREACHABLE
    assert mark_gone(cluster, cluster.agent_id)[0] == 200
    gone = master_update(cluster.scheduler)
    assert (gone.task_id, gone.state) == ("t1", TaskState.TASK_GONE_BY_OPERATOR)
    assert gone.reason is Reason.REASON_AGENT_REMOVED_BY_OPERATOR
    state = cluster.describe()
    assert (state["agents"], state["unreachable_agents"]) == ([], [])
    assert registry_status(cluster, cluster.agent_id) == "GONE"


def test_an_agent_marked_gone_loses_the_tasks_of_other_frameworks(cluster):
    cluster.register_agent()
    offer = cluster.register_framework()
    cluster.accept(offer, cluster.task("t1"))
    cluster.agent.next(RunTask)
    assert mark_gone(cluster, cluster.agent_id)[0] == 200
    lost = master_update(cluster.scheduler)
    assert (lost.state, lost.reason) == (
        TaskState.TASK_LOST,
        Reason.REASON_AGENT_REMOVED_BY_OPERATOR,
    )


# -- 4. an agent's link breaks ---------------------------------------------------------------


def disconnect(cluster: Cluster) -> None:
    cluster.runtime.terminate(cluster.agent)
    cluster.runtime.wait(cluster.agent).result(5)
    cluster.settle()


def reconnect(cluster: Cluster, *tasks: Task) -> FakeAgent:
    agent = cluster.agent = FakeAgent()
    cluster.runtime.spawn(agent)
    cluster.say(agent, ReregisterAgent(info_of(cluster), "test", tasks=tasks))
    assert agent.next(AgentReregistered).agent_id == cluster.agent_id
    return agent


def test_a_disconnected_agent_loses_the_tasks_of_frameworks_that_do_not_checkpoint(cluster):
    cluster.register_agent()
    offer = cluster.register_framework(checkpoint=False)
    cluster.accept(offer, cluster.task("t1"))
    cluster.agent.next(RunTask)
    cluster.tick()
    left = cluster.next_offer()  # outstanding on the agent when it disconnects
    disconnect(cluster)
    received = cluster.scheduler.drain()
    assert [m.offer_id for m in received if isinstance(m, RescindOffer)] == [left.id]
    (lost,) = [m.status for m in received if isinstance(m, StatusUpdate)]
    assert (lost.task_id, lost.state) == ("t1", TaskState.TASK_LOST)
    assert (lost.reason, lost.source) == (Reason.REASON_AGENT_DISCONNECTED, Source.SOURCE_MASTER)
    (agent,) = cluster.describe()["agents"]
    assert (agent["active"], agent["used_resources"]) == (False, [])
    cluster.tick(3)
    assert cluster.offers_pending() == []  # deactivated: no offers until it re-registers
    assert cluster.runtime.metrics.snapshot()["master/agents_disconnected"] == 1
    reconnect(cluster)
    assert cluster.describe()["agents"][0]["active"] is True
    assert [o.resources for o in cluster.offers_pending()] == [AGENT_RESOURCES.allocated_to("*")]


def test_a_disconnected_agent_keeps_the_tasks_of_checkpointing_frameworks(cluster):
    cluster.register_agent()
    offer = cluster.register_framework(checkpoint=True)
    cluster.accept(offer, cluster.task("t1"))
    run = cluster.agent.next(RunTask)
    disconnect(cluster)
    cluster.tick(3)
    assert not any(isinstance(m, StatusUpdate) for m in cluster.scheduler.drain())
    (agent,) = cluster.describe()["agents"]
    assert agent["active"] is False
    assert Resources.from_json(agent["used_resources"]) == TASK_RESOURCES
    reconnect(cluster, running(cluster, "t1", run.task.resources))
    left = AGENT_RESOURCES - TASK_RESOURCES
    assert [o.resources for o in cluster.offers_pending()] == [left.allocated_to("*")]
    assert [t["state"] for t in cluster.describe()["tasks"]] == ["TASK_STAGING"]


# -- 5. a known agent re-registers (it restarted) --------------------------------------------


def test_a_restarted_agent_is_reconciled_task_by_task(cluster):
    cluster.register_agent()
    offer = cluster.register_framework(capabilities=AWARE)
    # A framework torn down since: tasks of it that the agent reports are shut down.
    other = FakeScheduler()
    cluster.runtime.spawn(other)
    cluster.say(other, RegisterFramework(FrameworkInfo("tester", "other")))
    removed = other.next(FrameworkRegistered).framework_id
    cluster.say(other, UnregisterFramework(removed))

    cluster.accept(offer, cluster.task("t1"))
    cluster.agent.next(RunTask)
    cluster.update("t1", TaskState.TASK_RUNNING)
    cluster.scheduler.next(StatusUpdate)
    cluster.accept(cluster.next_offer_or_wait(), cluster.task("t2"))
    cluster.agent.next(RunTask)
    cluster.tick(PING + 1)  # t2's RunTask is old now: it cannot be crossing anything
    cluster.accept(cluster.next_offer_or_wait(), cluster.task("t3"))
    cluster.agent.next(RunTask)  # t3's may still be on the wire: kept
    cluster.scheduler.drain()

    reported = (
        running(cluster, "t4"),  # launched under an earlier master, say: taken in
        running(cluster, "t9", framework_id=removed),
    )
    cluster.say(cluster.agent, ReregisterAgent(info_of(cluster), "test", tasks=reported))
    assert cluster.agent.next(AgentReregistered).agent_id == cluster.agent_id
    assert cluster.agent.next(ShutdownFramework).framework_id == removed
    updates = {}
    for _ in range(2):
        status = master_update(cluster.scheduler)
        updates[status.task_id] = (status.state, status.reason)
    assert updates == {
        "t1": (TaskState.TASK_GONE, Reason.REASON_RECONCILIATION),
        "t2": (TaskState.TASK_DROPPED, Reason.REASON_RECONCILIATION),
    }
    state = cluster.describe()
    live = {t["id"]: t["state"] for t in state["frameworks"][0]["tasks"]}
    assert live == {"t3": "TASK_STAGING", "t4": "TASK_RUNNING"}
    used = Resources.from_json(state["agents"][0]["used_resources"])
    assert used == TASK_RESOURCES + TASK_RESOURCES
    # The allocator agrees: the rest of the agent, exactly, is offered.
    left = AGENT_RESOURCES - TASK_RESOURCES - TASK_RESOURCES
    cluster.tick()
    offers = cluster.offers_pending()
    assert [o.resources for o in offers][-1:] == [left.allocated_to("*")]


def test_a_restarted_agent_loses_unreported_tasks_of_frameworks_not_partition_aware(cluster):
    cluster.register_agent()
    offer = cluster.register_framework()
    cluster.accept(offer, cluster.task("t1"))
    cluster.agent.next(RunTask)
    cluster.tick(PING + 1)
    cluster.say(cluster.agent, ReregisterAgent(info_of(cluster), "test"))
    cluster.agent.next(AgentReregistered)
    lost = master_update(cluster.scheduler)
    assert (lost.task_id, lost.state, lost.reason) == (
        "t1",
        TaskState.TASK_LOST,
        Reason.REASON_RECONCILIATION,
    )
    cluster.tick()
    assert cluster.offers_pending()[-1].resources == AGENT_RESOURCES.allocated_to("*")


# -- 6. the master restarts --------------------------------------------------------------------


def test_a_restarted_master_recovers_its_registry_and_waits_for_agents(cluster):
    options = MasterOptions(hostname="test-master", agent_reregister_timeout=60.0)
    cluster.register_agent()  # will re-register
    _, b_id = extra_agent(cluster, "host-b")  # will not
    c, c_id = extra_agent(cluster, "host-c")  # unreachable before the restart
    d, d_id = extra_agent(cluster, "host-d")  # gone before the restart
    silence(cluster, c)
    cluster.tick(TOTAL_PING + PING)
    assert registry_status(cluster, c_id) == "UNREACHABLE"
    assert mark_gone(cluster, d_id)[0] == 200

    restart_master(cluster, options)
    state = cluster.describe()
    assert state["agents"] == []
    assert [a["id"] for a in state["unreachable_agents"]] == [c_id]
    assert sorted(a["id"] for a in state["recovered_agents"]) == sorted([cluster.agent_id, b_id])

    # A framework that has not re-registered yet: its task is kept, under its role.
    framework = FrameworkInfo(
        "tester", "eng-framework", id=FrameworkID("f-old"), role="eng", failover_timeout=120.0
    )
    task = running(cluster, "t1", framework_id=framework.id)
    message = ReregisterAgent(info_of(cluster), "test", tasks=(task,), frameworks=(framework,))
    cluster.say(cluster.agent, message)
    cluster.agent.next(AgentReregistered)
    # c comes back as from any partition; d stays refused.
    cluster.say(c, ReregisterAgent(info_of(cluster, c_id, "host-c"), "test"))
    assert c.next(AgentReregistered).agent_id == c_id
    cluster.say(d, ReregisterAgent(info_of(cluster, d_id, "host-d"), "test"))

    cluster.tick(61)
    state = cluster.describe()
    assert sorted(a["id"] for a in state["agents"]) == sorted([cluster.agent_id, c_id])
    assert [a["id"] for a in state["unreachable_agents"]] == [b_id]
    assert state["recovered_agents"] == []
    assert registry_status(cluster, b_id) == "UNREACHABLE"
    assert registry_status(cluster, d_id) == "GONE"
    assert not any(isinstance(m, AgentReregistered) for m in d.drain())

    # The framework comes back: offered the rest of the agent in its role, and its task runs.
    cluster.say(cluster.scheduler, ReregisterFramework(framework, failover=True))
    assert cluster.scheduler.next(FrameworkReregistered).framework_id == framework.id
    cluster.framework_id = framework.id
    offers = offers_by_agent(cluster)
    left = AGENT_RESOURCES - TASK_RESOURCES
    assert offers[cluster.agent_id] == left.allocated_to("eng")
    assert offers[c_id] == AGENT_RESOURCES.allocated_to("eng")
    cluster.say(cluster.scheduler, ReconcileTasks(framework.id))
    status = master_update(cluster.scheduler)
    assert (status.task_id, status.state) == ("t1", TaskState.TASK_RUNNING)


def test_a_framework_known_only_from_agents_is_removed_if_it_never_returns(cluster):
    options = MasterOptions(hostname="test-master", agent_reregister_timeout=30.0)
    cluster.register_agent()
    restart_master(cluster, options)
    framework = FrameworkInfo("tester", "gone", id=FrameworkID("f-old"), failover_timeout=50.0)
    task = running(cluster, "t1", framework_id=framework.id)
    message = ReregisterAgent(info_of(cluster), "test", tasks=(task,), frameworks=(framework,))
    cluster.say(cluster.agent, message)
    cluster.agent.next(AgentReregistered)
    other = cluster.register_framework()  # a new framework: offered what t1 leaves
    assert other.resources == (AGENT_RESOURCES - TASK_RESOURCES).allocated_to("*")
    cluster.tick(45)
    assert not any(isinstance(m, ShutdownFramework) for m in cluster.agent.drain())
    cluster.tick(6)  # 50 s (its failover timeout, > the re-registration timeout) are up
    assert cluster.agent.next(ShutdownFramework).framework_id == framework.id
    assert cluster.describe()["tasks"] == []
    assert cluster.describe()["agents"][0]["used_resources"] == []
    cluster.tick()
    assert [o.resources for o in cluster.offers_pending()] == [TASK_RESOURCES.allocated_to("*")]
    late = FakeScheduler()
    cluster.runtime.spawn(late)
    cluster.say(late, ReregisterFramework(framework, failover=True))
    assert "was removed" in late.next(FrameworkError).message


# -- 7. a framework fails over for too long ----------------------------------------------------


def test_a_framework_past_its_failover_timeout_is_shut_down_everywhere(cluster):
    cluster.register_agent()
    offer = cluster.register_framework(failover_timeout=30.0)
    cluster.accept(offer, cluster.task("t1"))
    cluster.agent.next(RunTask)
    cluster.runtime.terminate(cluster.scheduler)
    cluster.tick(29)
    assert not any(isinstance(m, ShutdownFramework) for m in cluster.agent.drain())
    framework = cluster.describe()["frameworks"][0]
    assert (framework["active"], framework["connected"]) == (False, False)
    cluster.tick(2)
    assert cluster.agent.next(ShutdownFramework).framework_id == cluster.framework_id
    assert cluster.describe()["agents"][0]["used_resources"] == []
    # The resources are back: a new framework is offered the whole agent.
    newcomer = FakeScheduler()
    cluster.runtime.spawn(newcomer)
    cluster.say(newcomer, RegisterFramework(FrameworkInfo("tester", "newcomer")))
    newcomer.next(FrameworkRegistered)
    (offer,) = newcomer.next(ResourceOffers).offers
    assert offer.resources == AGENT_RESOURCES.allocated_to("*")
    # The old id is refused, with a reason.
    again = FrameworkInfo("tester", "test-framework", id=cluster.framework_id)
    cluster.say(newcomer, ReregisterFramework(again, failover=True))
    assert "was removed" in newcomer.next(FrameworkError).message
    # An agent that re-registers still running its task is told to shut it down.
    cluster.say(
        cluster.agent, ReregisterAgent(info_of(cluster), "test", tasks=(running(cluster, "t1"),))
    )
    cluster.agent.next(AgentReregistered)
    assert cluster.agent.next(ShutdownFramework).framework_id == cluster.framework_id
    assert cluster.describe()["agents"][0]["used_resources"] == []


def test_after_a_restart_reconciliation_waits_for_the_agents_and_ended_tasks_are_known(cluster):
    """Found by the chaos run: a framework back before its agents must not hear TASK_LOST or
    TASK_UNKNOWN for tasks that still run; a task that ended while the master was down is
    answered with its end, and the acknowledgement of its last update reaches the agent."""
    options = MasterOptions(hostname="test-master", agent_reregister_timeout=60.0)
    framework = FrameworkInfo("tester", "back-first", id=FrameworkID("f-old"))
    cluster.register_agent()
    restart_master(cluster, options)
    cluster.say(cluster.scheduler, ReregisterFramework(framework, failover=True))
    cluster.scheduler.next(FrameworkReregistered)

    asked = (ReconcileTask(TaskID("t1"), cluster.agent_id), ReconcileTask(TaskID("t2")))
    cluster.say(cluster.scheduler, ReconcileTasks(framework.id, asked))
    cluster.say(cluster.scheduler, KillTask(framework.id, TaskID("t1"), cluster.agent_id))
    cluster.settle()
    assert not [m for m in cluster.scheduler.drain() if isinstance(m, StatusUpdate)]

    ended = TaskStatus(TaskID("t2"), TaskState.TASK_FINISHED, uuid=b"u" * 16)
    tasks = (
        running(cluster, "t1", framework_id=framework.id),
        running(cluster, "t2", framework_id=framework.id, statuses=(ended,)),
    )
    tasks = (tasks[0], replace(tasks[1], state=TaskState.TASK_FINISHED))
    message = ReregisterAgent(info_of(cluster), "test", tasks=tasks, frameworks=(framework,))
    cluster.say(cluster.agent, message)
    cluster.agent.next(AgentReregistered)
    cluster.say(cluster.scheduler, ReconcileTasks(framework.id, asked))
    answers = {s.task_id: s.state for s in (master_update(cluster.scheduler) for _ in asked)}
    assert answers == {"t1": TaskState.TASK_RUNNING, "t2": TaskState.TASK_FINISHED}

    ack = StatusUpdateAcknowledgement(cluster.agent_id, framework.id, TaskID("t2"), ended.uuid)
    cluster.say(cluster.scheduler, ack)
    assert cluster.agent.next(StatusUpdateAcknowledgement) == ack
    cluster.say(cluster.scheduler, KillTask(framework.id, TaskID("t1")))
    assert cluster.agent.next(KillTask).task_id == "t1"  # now it is known: the kill goes on


def test_a_task_reported_ended_before_its_framework_returns_is_answered_when_it_does(cluster):
    options = MasterOptions(hostname="test-master", agent_reregister_timeout=60.0)
    framework = FrameworkInfo("tester", "back-last", id=FrameworkID("f-late"))
    cluster.register_agent()
    restart_master(cluster, options)
    ended = TaskStatus(TaskID("t9"), TaskState.TASK_FAILED, uuid=b"v" * 16)
    task = running(cluster, "t9", framework_id=framework.id, statuses=(ended,))
    task = replace(task, state=TaskState.TASK_FAILED)
    message = ReregisterAgent(info_of(cluster), "test", tasks=(task,), frameworks=(framework,))
    cluster.say(cluster.agent, message)
    cluster.agent.next(AgentReregistered)

    cluster.say(cluster.scheduler, ReregisterFramework(framework, failover=True))
    cluster.scheduler.next(FrameworkReregistered)
    cluster.say(cluster.scheduler, ReconcileTasks(framework.id, (ReconcileTask(TaskID("t9")),)))
    status = master_update(cluster.scheduler)
    assert (status.task_id, status.state) == ("t9", TaskState.TASK_FAILED)
