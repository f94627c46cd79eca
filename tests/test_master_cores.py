"""The master's cores on their own: events in, decisions (the outbox) out. No sockets, no
runtime, no clock but the ``now`` each event carries; each test runs in microseconds.

The actor (MasterProcess) that carries these decisions out is tested with real processes in
test_master.py, test_master_failures.py and the others.
"""

from __future__ import annotations

import pytest

from corral.ids import AgentID, ExecutorID, IdGenerator, OfferID, TaskID
from corral.protocol import (
    AgentInfo,
    CommandInfo,
    ExecutorInfo,
    FrameworkCapability,
    FrameworkCapabilityType,
    FrameworkInfo,
    MasterInfo,
    Offer,
    Operation,
    Task,
    TaskInfo,
)
from corral.protocol.messages import (
    AcceptOffers,
    AgentLost,
    AgentRegistered,
    AgentReregistered,
    ExitedExecutor,
    FrameworkError,
    FrameworkRegistered,
    PingAgent,
    RegisterAgent,
    RegisterFramework,
    ReregisterAgent,
    ReregisterFramework,
    ResourceOffers,
    RunTask,
    RunTaskGroup,
    ShutdownAgent,
    ShutdownFramework,
    StatusUpdate,
)
from corral.resources import Resources
from corral.task_states import Reason, TaskState
from master import outbox
from master.accept import decide_accept
from master.allocator.events import (
    AddAgent,
    AddFramework,
    DeactivateAgent,
    RecoverResources,
    RemoveAgent,
    SetQuota,
    SetWeight,
)
from master.allocator.offer import Allocation
from master.allocator.quota import Quota
from master.core import MasterCore
from master.liveness import PING_SLICES
from master.options import MasterOptions
from master.registry import AgentStatus, Registry
from master.state import FrameworkRecord

AGENT = Resources.parse("cpus:4;mem:1024")
TASK = Resources.parse("cpus:1;mem:128")
OPTIONS = MasterOptions(hostname="m", agent_ping_timeout=15.0, max_agent_ping_timeouts=3)
AGENT_PID = "agent@10.0.0.1:5051"
DRIVER = "scheduler@10.0.0.2:9000"
MASTER_INFO = MasterInfo(id="m1", port=5050, pid="master@10.0.0.9:5050", hostname="m")


def sends(core: MasterCore, kind: type) -> list:
    """The messages of ``kind`` in the outbox, with their pids, taken out of it."""
    return [(pid, message) for pid, message in core.out.messages() if isinstance(message, kind)]


def events(core: MasterCore, kind: type) -> list:
    return [event for event in core.out.events() if isinstance(event, kind)]


class Bench:
    """A core with one registered agent and one framework, the outbox emptied."""

    def __init__(self, work_dir: str, options: MasterOptions = OPTIONS) -> None:
        self.now = 0.0
        self.registry = Registry(work_dir)
        self.core = MasterCore(options, self.registry, IdGenerator("m1"), wall=lambda: 1e9)
        self.core.frameworks.master_info = MASTER_INFO
        self.core.start(self.now)
        self.core.out.take()

    def run_later(self) -> None:
        """Carry out the outbox's LATER work (the actor dispatches it to itself)."""
        for action in self.core.out.take():
            if action[0] == outbox.LATER:
                action[1](self.now)

    def register_agent(self, pid: str = AGENT_PID, hostname: str = "h1") -> AgentID:
        self.core.agents.register(pid, RegisterAgent(AgentInfo(hostname, resources=AGENT), "t"))
        self.run_later()
        agent = self.core.state.agent_by_pid(pid)
        assert agent is not None
        self.core.out.take()
        return agent.id

    def add_framework(self, pid: str = DRIVER, **info) -> FrameworkRecord:
        framework_id = self.core.ids.framework_id()
        self.core.frameworks.add(FrameworkInfo(user="u", name="f", id=framework_id, **info), pid)
        self.core.out.take()
        return self.core.state.frameworks[framework_id]

    def offer(self, framework: FrameworkRecord, agent_id: AgentID, resources=AGENT) -> Offer:
        generation = self.core.state.agents[agent_id].generation
        allocation = Allocation(
            framework.id, "*", agent_id, resources.allocated_to("*"), generation
        )
        self.core.offers.allocated([allocation])
        ((_, message),) = sends(self.core, ResourceOffers)
        self.core.out.take()
        return message.offers[0]

    def task(self, name: str, agent_id: AgentID, **fields) -> TaskInfo:
        fields.setdefault("command", CommandInfo("true"))
        return TaskInfo(name, TaskID(name), agent_id, fields.pop("resources", TASK), **fields)


@pytest.fixture
def bench(tmp_path) -> Bench:
    return Bench(str(tmp_path))


# -- ACCEPT ---------------------------------------------------------------------------------


def test_an_accept_launches_what_fits_refuses_the_rest_and_gives_back_the_leftover(bench):
    agent_id = bench.register_agent()
    framework = bench.add_framework()
    offer = bench.offer(framework, agent_id)
    big = bench.task("big", agent_id, resources=Resources.parse("cpus:8;mem:128"))
    broken = bench.task("broken", agent_id, command=CommandInfo(""))
    tasks = (bench.task("t1", agent_id), big, broken, bench.task("t1", agent_id))
    message = AcceptOffers(framework.id, (offer.id,), (Operation.of_launch(*tasks),))
    state = bench.core.state
    decision = decide_accept(
        framework, message, state.offers, state.agents, lambda task_id: False, now=5.0
    )
    assert [launch.tasks[0].task_id for launch in decision.launches] == ["t1"]
    assert decision.launches[0].tasks[0].launched_at == 5.0
    reasons = {task_id: refusal.message for task_id, _, refusal in decision.refused}
    assert "needs cpus:8;mem:128 but the offers have cpus:3;mem:896 left" in reasons["big"]
    assert "shell command (shell: true) with no 'value'" in reasons["broken"]
    assert "appears more than once in this call" in reasons["t1"]
    assert decision.leftover.unallocated() == AGENT - TASK
    assert decision.offers == [offer.id] and decision.invalid_offers is None


def test_an_accept_of_a_stale_offer_drops_every_task_and_changes_nothing(bench):
    agent_id = bench.register_agent()
    framework = bench.add_framework()
    message = AcceptOffers(
        framework.id, (OfferID("gone"),), (Operation.of_launch(bench.task("t1", agent_id)),)
    )
    bench.core.offers.accept(framework, message, now=1.0)
    ((pid, update),) = sends(bench.core, StatusUpdate)
    assert pid == DRIVER and update.status.state is TaskState.TASK_DROPPED
    assert update.status.reason is Reason.REASON_INVALID_OFFERS
    assert "offer gone is no longer valid" in update.status.message
    assert bench.core.state.tasks == {} and list(bench.core.out.events()) == []


def test_a_new_executor_is_counted_once_for_the_tasks_that_share_it(bench):
    agent_id = bench.register_agent()
    framework = bench.add_framework()
    offer = bench.offer(framework, agent_id)
    executor = ExecutorInfo(ExecutorID("e1"), command=CommandInfo("run"), resources=TASK)
    tasks = [bench.task(n, agent_id, command=None, executor=executor) for n in ("a", "b")]
    message = AcceptOffers(framework.id, (offer.id,), (Operation.of_launch(*tasks),))
    bench.core.offers.accept(framework, message, now=1.0)
    runs = sends(bench.core, RunTask)
    assert [run.task.task_id for _, run in runs] == ["a", "b"]
    (leftover,) = events(bench.core, RecoverResources)
    assert leftover.resources.unallocated() == AGENT - TASK - TASK - TASK  # two tasks, one executor
    agent = bench.core.state.agents[agent_id]
    assert agent.executors == {(framework.id, ExecutorID("e1")): TASK.allocated_to("*")}


def test_offers_list_the_frameworks_executors_on_the_agent_until_they_exit(bench):
    agent_id = bench.register_agent()
    framework, other = bench.add_framework(), bench.add_framework()
    offer = bench.offer(framework, agent_id)
    tasks = [
        bench.task(name, agent_id, command=None, executor=ExecutorInfo(
            ExecutorID(executor), command=CommandInfo("run"), resources=TASK))
        for name, executor in (("a", "e2"), ("b", "e1"))
    ]  # fmt: skip
    bench.core.offers.accept(
        framework, AcceptOffers(framework.id, (offer.id,), (Operation.of_launch(*tasks),)), 1.0
    )
    bench.core.out.take()
    assert bench.offer(framework, agent_id, TASK).executor_ids == ("e1", "e2")
    assert bench.offer(other, agent_id, TASK).executor_ids == ()
    agent = bench.core.state.agents[agent_id]
    bench.core.tasks.executor_exited(
        agent, ExitedExecutor(agent_id, framework.id, ExecutorID("e2"), 0)
    )
    bench.core.out.take()
    assert bench.offer(framework, agent_id, TASK).executor_ids == ("e1",)


def test_an_agent_offered_the_same_resources_again_reuses_them_and_their_wire_form(bench):
    agent_id = bench.register_agent()
    framework = bench.add_framework()
    first = bench.offer(framework, agent_id)
    wire = first.resources.to_wire()
    bench.core.offers.give_back(first.id)
    again = bench.offer(framework, agent_id)
    assert again.id != first.id and again.resources is first.resources
    assert again.resources.to_wire() is wire
    bench.core.offers.give_back(again.id)
    smaller = bench.offer(framework, agent_id, TASK)
    assert smaller.resources == TASK.allocated_to("*") and smaller.resources is not first.resources


def test_a_task_group_launches_whole_or_not_at_all(bench):
    agent_id = bench.register_agent()
    framework = bench.add_framework()
    offer = bench.offer(framework, agent_id)
    executor = ExecutorInfo(ExecutorID("g"), command=CommandInfo("run"))
    group = (bench.task("g1", agent_id), bench.task("g2", agent_id, resources=Resources()))
    message = AcceptOffers(framework.id, (offer.id,), (Operation.of_launch_group(executor, group),))
    bench.core.offers.accept(framework, message, now=1.0)
    assert sends(bench.core, RunTaskGroup) == []
    refused = [update.status for _, update in sends(bench.core, StatusUpdate)]
    assert [(s.task_id, s.reason) for s in refused] == [
        ("g1", Reason.REASON_TASK_GROUP_INVALID),
        ("g2", Reason.REASON_TASK_GROUP_INVALID),
    ]
    assert all("task g2 uses no resources" in s.message for s in refused)


# -- agents ---------------------------------------------------------------------------------


def test_admissions_are_written_in_one_batch_before_any_agent_is_answered(bench):
    core = bench.core
    for index in range(3):
        info = AgentInfo(f"h{index}", resources=AGENT)
        core.agents.register(f"agent{index}@10.0.0.{index}:5051", RegisterAgent(info, "t"))
    core.agents.register(
        "agent0@10.0.0.0:5051", RegisterAgent(AgentInfo("h0", resources=AGENT), "t")
    )
    actions = core.out.take()
    assert [action[0] for action in actions] == [outbox.LATER]  # nobody answered yet
    writes = bench.registry.writes
    actions[0][1](bench.now)
    assert bench.registry.writes == writes + 1
    answered = [pid for pid, _ in sends(core, AgentRegistered)]
    assert answered == [f"agent{i}@10.0.0.{i}:5051" for i in range(3)]
    assert len(events(core, AddAgent)) == 3


def test_an_agent_refused_for_good_is_told_to_stop_and_why(bench):
    core = bench.core
    agent_id = bench.register_agent()
    core.agents.register(AGENT_PID, RegisterAgent(AgentInfo("other", resources=AGENT), "t"))
    ((pid, shutdown),) = sends(core, ShutdownAgent)
    assert pid == AGENT_PID and "different hostname, resources or attributes" in shutdown.message
    core.out.take()
    info = AgentInfo("elsewhere", resources=AGENT, id=agent_id)
    core.agents.reregister("agent@10.0.0.9:5051", ReregisterAgent(info, "t"), bench.now)
    ((_, shutdown),) = sends(core, ShutdownAgent)
    assert f"agent {agent_id} is registered on host h1, not elsewhere" in shutdown.message
    core.out.take()
    assert core.agents.mark_gone(agent_id)[0] == 200
    ((pid, shutdown),) = sends(core, ShutdownAgent)
    assert pid == AGENT_PID and "marked agent" in shutdown.message
    core.out.take()
    info = AgentInfo("h1", resources=AGENT, id=agent_id)
    core.agents.reregister(AGENT_PID, ReregisterAgent(info, "t"), bench.now)
    ((_, shutdown),) = sends(core, ShutdownAgent)
    assert "was marked gone for good" in shutdown.message
    assert bench.registry.status(agent_id) is AgentStatus.GONE


def test_a_known_agent_reregistering_settles_the_tasks_it_no_longer_runs(bench):
    core = bench.core
    agent_id = bench.register_agent()
    framework = bench.add_framework()
    offer = bench.offer(framework, agent_id)
    tasks = [bench.task(name, agent_id) for name in ("kept", "started", "lost", "flying")]
    message = AcceptOffers(framework.id, (offer.id,), (Operation.of_launch(*tasks),))
    core.offers.accept(framework, message, now=0.0)
    state = core.state
    state.tasks[(framework.id, TaskID("kept"))].state = TaskState.TASK_RUNNING
    state.tasks[(framework.id, TaskID("started"))].state = TaskState.TASK_RUNNING
    state.tasks[(framework.id, TaskID("flying"))].launched_at = 20.0  # sent just now
    core.out.take()
    kept = Task("kept", TaskID("kept"), framework.id, agent_id, TaskState.TASK_RUNNING, TASK)
    info = AgentInfo("h1", resources=AGENT, id=agent_id)
    core.agents.reregister(AGENT_PID, ReregisterAgent(info, "t", tasks=(kept,)), now=25.0)
    settled = {u.status.task_id: u.status for _, u in sends(core, StatusUpdate)}
    # Not PARTITION_AWARE: TASK_LOST, with the reason the finer state would have had.
    assert settled.keys() == {"started", "lost"}
    assert all(s.state is TaskState.TASK_LOST for s in settled.values())
    assert all(s.reason is Reason.REASON_RECONCILIATION for s in settled.values())
    assert "(its launch was lost)" in settled["lost"].message
    assert sorted(t for (_, t) in state.tasks) == ["flying", "kept"]
    rebuilt = list(core.out.events())
    assert isinstance(rebuilt[0], RemoveAgent) and isinstance(rebuilt[1], AddAgent)
    assert rebuilt[1].used == {framework.id: (TASK + TASK).allocated_to("*")}
    assert sends(core, AgentReregistered)


def test_partition_aware_frameworks_hear_the_finer_state(bench):
    core = bench.core
    agent_id = bench.register_agent()
    aware = FrameworkCapability(FrameworkCapabilityType.PARTITION_AWARE)
    framework = bench.add_framework(capabilities=(aware,))
    offer = bench.offer(framework, agent_id)
    message = AcceptOffers(
        framework.id, (offer.id,), (Operation.of_launch(bench.task("t", agent_id)),)
    )
    core.offers.accept(framework, message, now=0.0)
    core.out.take()
    core.agents.reregister(
        AGENT_PID, ReregisterAgent(AgentInfo("h1", resources=AGENT, id=agent_id), "t"), now=60.0
    )
    ((_, update),) = sends(core, StatusUpdate)
    assert update.status.state is TaskState.TASK_DROPPED


def test_an_allocation_made_before_its_agent_was_added_again_is_dropped(bench):
    core = bench.core
    agent_id = bench.register_agent()
    framework = bench.add_framework()
    old = core.state.agents[agent_id].generation
    info = AgentInfo("h1", resources=AGENT, id=agent_id)
    core.agents.reregister(AGENT_PID, ReregisterAgent(info, "t"), now=1.0)
    (added,) = events(core, AddAgent)
    assert added.generation != old == added.generation - 1
    core.out.take()
    stale = Allocation(framework.id, "*", agent_id, AGENT.allocated_to("*"), old)
    core.offers.allocated([stale])
    assert core.out.take() == [] and core.state.offers == {}  # nobody holds it any more
    bench.offer(framework, agent_id)  # one of the new view is offered
    assert len(core.state.offers) == 1


def test_an_allocation_for_a_disconnected_agent_goes_back(bench):
    core = bench.core
    agent_id = bench.register_agent()
    framework = bench.add_framework()
    agent = core.state.agents[agent_id]
    core.agents.disconnected(agent)
    core.out.take()
    allocation = Allocation(framework.id, "*", agent_id, AGENT.allocated_to("*"), agent.generation)
    core.offers.allocated([allocation])
    assert list(core.out.events()) == [
        RecoverResources(framework.id, agent_id, AGENT.allocated_to("*"))
    ]
    assert core.state.offers == {} and sends(core, ResourceOffers) == []


# -- liveness -------------------------------------------------------------------------------


def ping_round(core: MasterCore, now: float) -> None:
    """One whole round of pings: all its slices (at ``now``, as time does not matter here)."""
    for _ in range(PING_SLICES):
        core.liveness.ping_slice(now)


def test_a_round_of_pings_is_spread_over_its_slices(bench):
    core = bench.core
    agents = [bench.register_agent(f"a{i}@10.0.0.{i}:5051", f"h{i}") for i in range(25)]
    core.out.take()
    late = None
    pinged: list[str] = []
    for slice_ in range(PING_SLICES):
        core.liveness.ping_slice(now=1.5 * (slice_ + 1))  # when each is due
        actions = core.out.take()
        sent = [str(a[1]) for a in actions if a[0] == outbox.SEND and type(a[2]) is PingAgent]
        assert len(sent) in (2, 3)  # 25 agents over 10 slices
        pinged += sent
        timers = [a for a in actions if a[0] == outbox.SCHEDULE and a[1] == "ping round"]
        assert [seconds for _, _, seconds, _, _ in timers] == [
            pytest.approx(OPTIONS.agent_ping_timeout / PING_SLICES)
        ]
        if slice_ == 4:  # one that registers mid-round waits for the next round
            late = bench.register_agent("late@10.0.1.1:5051", "late")
            core.out.take()
    assert sorted(pinged) == sorted(str(core.state.agents[a].pid) for a in agents)
    core.liveness.ping_slice(now=16.5)  # the next round's first slice
    assert late in core.state.agents and "late@10.0.1.1:5051" not in [
        str(pid) for pid, _ in sends(core, PingAgent)
    ]
    ping_round(core, now=30.0)
    assert "late@10.0.1.1:5051" in [str(pid) for pid, _ in sends(core, PingAgent)]


def test_an_agent_that_stops_answering_is_removed_after_its_missed_pings(bench):
    core = bench.core
    agent_id = bench.register_agent()
    bench.add_framework()
    for round_ in range(OPTIONS.max_agent_ping_timeouts):
        ping_round(core, now=15.0 * (round_ + 1))
        assert [pid for pid, _ in sends(core, PingAgent)] == [AGENT_PID]
        assert sends(core, AgentLost) == []
        core.out.take()
    ping_round(core, now=60.0)
    assert [message.agent_id for _, message in sends(core, AgentLost)] == [agent_id]
    assert agent_id in core.state.unreachable
    assert bench.registry.status(agent_id) is AgentStatus.UNREACHABLE


def test_a_pong_resets_the_count(bench):
    core = bench.core
    agent_id = bench.register_agent()
    for round_ in range(10):
        ping_round(core, now=15.0 * round_)
        core.liveness.pong(core.state.agents[agent_id])
    assert agent_id in core.state.agents and sends(core, AgentLost) == []


def test_removals_wait_for_the_rate_limit(tmp_path):
    options = MasterOptions(
        hostname="m",
        agent_ping_timeout=1.0,
        max_agent_ping_timeouts=1,
        agent_removal_rate_limit=0.1,
    )
    bench = Bench(str(tmp_path), options)
    core = bench.core
    agents = [bench.register_agent(f"a{i}@10.0.0.{i}:5051", f"h{i}") for i in range(3)]
    ping_round(core, now=1.0)  # pings out
    core.out.take()
    ping_round(core, now=2.0)  # unanswered: unreachable, one removed at once
    assert [agent_id in core.state.unreachable for agent_id in agents] == [True, False, False]
    schedules = [a for a in core.out.take() if a[0] == outbox.SCHEDULE and a[1] == "removal"]
    assert [seconds for _, _, seconds, _, _ in schedules] == [pytest.approx(10.0)]
    core.liveness.pong(core.state.agents[agents[2]])  # the last answers meanwhile
    schedules[0][3](12.0)
    assert [agent_id in core.state.unreachable for agent_id in agents] == [True, True, False]
    assert agents[2] in core.state.agents


# -- frameworks -----------------------------------------------------------------------------


def test_a_disconnected_framework_is_removed_when_its_failover_timeout_expires(bench):
    core = bench.core
    agent_id = bench.register_agent()
    framework = bench.add_framework(failover_timeout=30.0)
    offer = bench.offer(framework, agent_id)
    message = AcceptOffers(
        framework.id, (offer.id,), (Operation.of_launch(bench.task("t", agent_id)),)
    )
    core.offers.accept(framework, message, now=0.0)
    core.out.take()
    core.frameworks.driver_exited(DRIVER)
    (timer,) = [a for a in core.out.take() if a[0] == outbox.SCHEDULE]
    key, seconds, callback, args = timer[1:]
    assert (key, seconds) == (("failover", framework.id), 30.0)
    callback(30.0, *args)
    assert [(pid, m.framework_id) for pid, m in sends(core, ShutdownFramework)] == [
        (AGENT_PID, framework.id)
    ]
    assert framework.id in core.state.removed_frameworks
    core.out.take()
    info = FrameworkInfo(user="u", name="f", id=framework.id)
    core.frameworks.reregister(DRIVER, ReregisterFramework(info))
    ((_, error),) = sends(core, FrameworkError)
    assert "was removed" in error.message


def test_a_call_from_someone_who_does_not_drive_the_framework_is_answered(bench):
    core = bench.core
    framework = bench.add_framework()
    assert core.frameworks.caller("someone@10.0.0.3:1", framework.id, "accept") is None
    ((pid, error),) = sends(core, FrameworkError)
    assert pid == "someone@10.0.0.3:1"
    assert error.message == (
        f"accept refused: framework {framework.id} is driven by {DRIVER}, not by "
        "someone@10.0.0.3:1; only its driver may call for it"
    )
    assert core.frameworks.caller(DRIVER, framework.id, "accept") is framework


def test_a_retried_registration_is_answered_again_not_registered_twice(bench):
    core = bench.core
    info = FrameworkInfo(user="u", name="f")
    for _ in range(2):
        core.frameworks.register(DRIVER, RegisterFramework(info))
    answers = [m.framework_id for _, m in sends(core, FrameworkRegistered)]
    assert len(answers) == 2 and answers[0] == answers[1]
    assert len(events(core, AddFramework)) == 1


# -- an operator's settings -------------------------------------------------------------------


def test_settings_are_in_the_registry_and_taken_up_by_the_next_master(tmp_path):
    bench = Bench(str(tmp_path))
    core = bench.core
    agent_id = bench.register_agent()
    core.update_weights({"eng": 2.0})
    core.update_quotas({"eng": Quota({"cpus": 1000}, {"cpus": 2000}), "ops": Quota()})
    core.deactivate_agent(core.state.agents[agent_id])
    assert events(core, DeactivateAgent) == [DeactivateAgent(agent_id)]

    again = Bench(str(tmp_path))  # a restarted master on the same work directory
    state = again.core.state
    assert state.weights == {"eng": 2.0}
    assert state.quotas == {"eng": Quota({"cpus": 1000}, {"cpus": 2000})}
    assert state.deactivated == {agent_id}
    registry = Registry(str(tmp_path))  # what start() tells the allocator
    fresh = MasterCore(OPTIONS, registry, IdGenerator("m2"))
    fresh.start(0.0)
    assert events(fresh, SetWeight) == [SetWeight("eng", 2.0)]
    assert events(fresh, SetQuota) == [SetQuota("eng", Quota({"cpus": 1000}, {"cpus": 2000}))]
    info = AgentInfo("h1", resources=AGENT, id=agent_id)
    fresh.out.take()
    fresh.agents.reregister(AGENT_PID, ReregisterAgent(info, "t"), 0.0)
    for action in fresh.out.take():
        if action[0] == outbox.LATER:
            action[1](0.0)
    assert DeactivateAgent(agent_id) in list(fresh.out.events())  # still no offers from it
