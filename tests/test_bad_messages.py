"""Bad input to the master's and the agent's handlers: random and malformed bodies, and
well-formed messages that make no sense (unknown ids, someone else's offer, the wrong sender).

Each is refused with a reason (counted in ``corral/messages_invalid`` or ``libprocess/*``, or
logged with a reason), no handler raises (``libprocess/handler_errors`` stays 0), the process
keeps serving, and its state is what it was before. Bodies go in raw with ``runtime.send``,
from a stranger's pid, as a broken or hostile peer would send them.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from agent import AgentOptions, AgentProcess
from containerizer import PosixContainerizer
from corral.ids import AgentID, ExecutorID, FrameworkID, OfferID, TaskID, new_status_uuid
from corral.protocol import (
    AgentInfo,
    CommandInfo,
    ExecutorInfo,
    Filters,
    FrameworkInfo,
    Operation,
    ProtocolError,
    ReconcileTask,
    TaskGroupInfo,
    TaskInfo,
    TaskStatus,
    decode_message,
)
from corral.protocol.endpoint import ProtocolProcess
from corral.protocol.messages import (
    MESSAGES,
    AcceptOffers,
    AgentRegistered,
    AgentReregistered,
    DeactivateFramework,
    DeclineOffers,
    ExecutorToFramework,
    ExitedExecutor,
    FrameworkError,
    FrameworkRegistered,
    FrameworkToExecutor,
    KillTask,
    Message,
    PingAgent,
    PongAgent,
    ReconcileTasks,
    RegisterAgent,
    RegisterExecutor,
    RegisterFramework,
    ReregisterAgent,
    ReregisterExecutor,
    ReregisterFramework,
    ResourceOffers,
    ReviveOffers,
    RunTask,
    RunTaskGroup,
    ShutdownAgent,
    ShutdownExecutor,
    ShutdownFramework,
    StatusUpdate,
    StatusUpdateAcknowledgement,
    SuppressOffers,
    UnregisterAgent,
    UnregisterFramework,
)
from corral.resources import Resources
from corral.task_states import Reason, TaskState
from libprocess import UPID
from master import MasterOptions, MasterProcess
from master.allocator import ALLOCATIONS
from tests.agent_actors import FakeMaster
from tests.master_actors import FakeAgent, FakeScheduler

AGENT_RESOURCES = Resources.parse("cpus:4;mem:1024")
TASK_RESOURCES = Resources.parse("cpus:1;mem:128")
OPTIONS = MasterOptions(hostname="bad-input-master", allocation_interval=1.0)
EXAMPLES = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Registrations from an unknown pid are how a new agent or driver arrives: a valid one is
# admitted, so the random tests send only the ones that do not decode.
REGISTRATIONS = {
    RegisterAgent.NAME,
    ReregisterAgent.NAME,
    RegisterFramework.NAME,
    ReregisterFramework.NAME,
}
_ids = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


def handled_names(cls: type[ProtocolProcess]) -> list[str]:
    """The Corral message names ``cls`` has a ``@receives`` handler for."""
    names = set()
    for klass in cls.__mro__:
        for value in vars(klass).values():
            message_type = getattr(value, "__corral_receives__", None)
            if message_type is not None:
                names.add(message_type.NAME)
    return sorted(names)


MASTER_NAMES = handled_names(MasterProcess)
AGENT_NAMES = handled_names(AgentProcess)
UNKNOWN_NAMES = st.one_of(
    st.sampled_from(["", "corral.", "corral.Bogus", "RegisterAgent", "master/state"]),
    st.text(max_size=20).filter(lambda name: name not in MESSAGES),
)


def counter(runtime: Any, name: str) -> int:
    metric = runtime.metrics.get(name)
    return 0 if metric is None else metric.value


def counters(runtime: Any) -> dict[str, int]:
    return {
        name: counter(runtime, name)
        for name in (
            "corral/messages_invalid",
            "libprocess/messages_unknown_name",
            "libprocess/handler_errors",
        )
    }


def decodes(name: str, body: Any) -> bool:
    try:
        decode_message(name, body)
    except ProtocolError:
        return False
    return True


# -- random and mutated bodies ------------------------------------------------------------

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.binary(max_size=12),
)
# Values a peer gets wrong in recognisable ways: bad ids, enums, resources, uuids.
BAD_VALUES = st.sampled_from(
    [
        {"value": ""},
        {"value": "../escape"},
        {"value": "a/b"},
        {"value": 7},
        {"value": None},
        {},
        "TASK_BOGUS",
        "task_running",
        "LAUNCH_EVERYTHING",
        [{"name": "cpus", "type": "SCALAR", "scalar": {"value": -1}}],
        [{"name": "cpus", "type": "SCALAR", "scalar": {"value": float("nan")}}],
        [{"name": "mem", "type": "RANGES", "scalar": {"value": 1}}],
        [{"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 9, "end": 1}]}}],
        [{"name": "", "type": "SCALAR", "scalar": {"value": 1}}],
        [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}, "role": "-bad role"}],
        [{"name": "cpus"}],
        [None],
        {"nanoseconds": -5},
        {"nanoseconds": "soon"},
        b"short uuid",
        "not base64!",
        [],
        {},
        "",
        -1,
        2**70,
        True,
    ]
).map(copy.deepcopy)  # mutate() edits what it draws in place: never a shared constant
JUNK = st.recursive(
    SCALARS | BAD_VALUES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place inside a wire body, as a tuple of keys and indexes."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(paths(item, (*prefix, index)))
    return found


def mutate(data: st.DataObject, body: dict[str, Any]) -> Any:
    """``body`` with one to three mutations: a field dropped, a value replaced by junk or a
    known-bad value (bad id, enum name, resources, duration, uuid), a junk field added, a
    value wrapped in a list; or the whole body replaced by junk."""
    body = copy.deepcopy(body)
    for _ in range(data.draw(st.integers(1, 3))):
        place = data.draw(st.sampled_from(paths(body)))
        if not place:
            if data.draw(st.booleans()):
                return data.draw(JUNK)
            body[data.draw(st.text(max_size=8))] = data.draw(JUNK)
            continue
        *parent_path, last = place
        parent = body
        for key in parent_path:
            parent = parent[key]
        action = data.draw(st.sampled_from(["drop", "replace", "junk_field", "wrap"]))
        if action == "drop" and isinstance(parent, dict):
            del parent[last]
        elif action == "junk_field" and isinstance(parent[last], dict):
            parent[last][data.draw(st.text(max_size=8))] = data.draw(JUNK)
        elif action == "wrap":
            parent[last] = [parent[last]]
        else:
            parent[last] = data.draw(JUNK)
    return body


def field_names(name: str) -> list[str]:
    """The wire field names of message ``name`` (a stand-in for messages with none)."""
    return list(MESSAGES[name].__dataclass_fields__) or ["x"]


# -- the master ---------------------------------------------------------------------------


class MasterBench:
    """A real master, a stand-in agent and two stand-in drivers in one runtime (paused clock).

    Framework ``a`` holds the agent's offer; framework ``b`` is registered with nothing.
    """

    def __init__(self, runtime: Any, clock: Any, work_dir: str) -> None:
        self.runtime = runtime
        self.clock = clock
        self.master = MasterProcess(work_dir, OPTIONS, id=unique("master"))
        runtime.spawn(self.master)
        self.agent = FakeAgent(unique("agent"))
        runtime.spawn(self.agent)
        self.driver_a = FakeScheduler(unique("scheduler"))
        runtime.spawn(self.driver_a)
        self.driver_b = FakeScheduler(unique("scheduler"))
        runtime.spawn(self.driver_b)
        self.stranger = UPID(f"{unique('stranger')}@{runtime.address}")
        info = AgentInfo(hostname="host-a", resources=AGENT_RESOURCES)
        self.say(self.agent, RegisterAgent(info, version="test"))
        self.agent_id = self.agent.next(AgentRegistered).agent_id
        self.framework_a = self.register(self.driver_a)
        (self.offer,) = self.driver_a.next(ResourceOffers).offers
        self.framework_b = self.register(self.driver_b)
        self.settle()

    def say(self, actor: Any, message: Message) -> None:
        self.runtime.dispatch(actor, actor.say, self.master.pid, message).result(5)

    def register(self, driver: FakeScheduler) -> FrameworkID:
        self.say(driver, RegisterFramework(FrameworkInfo(user="tester", name=driver.pid.id)))
        return driver.next(FrameworkRegistered).framework_id

    def settle(self) -> None:
        self.runtime.settle()

    def describe(self) -> dict[str, Any]:
        return self.runtime.dispatch(self.master, self.master.describe).result(5)

    def task(self, name: str = "t1") -> TaskInfo:
        return TaskInfo(
            name, TaskID(name), self.agent_id, TASK_RESOURCES, command=CommandInfo(value="true")
        )

    def valid_messages(self) -> dict[str, Message]:
        """One valid message per name the master handles, about the bench's real ids."""
        a, agent_id = self.framework_a, self.agent_id
        executor = ExecutorID("e1")
        status = TaskStatus(TaskID("t1"), TaskState.TASK_RUNNING, agent_id=agent_id,
                            uuid=new_status_uuid())  # fmt: skip
        launch = Operation.of_launch(self.task())
        messages: list[Message] = [
            RegisterAgent(AgentInfo("host-x", resources=AGENT_RESOURCES), "test"),
            ReregisterAgent(AgentInfo("host-a", resources=AGENT_RESOURCES, id=agent_id), "t"),
            PongAgent(),
            UnregisterAgent(agent_id),
            ExitedExecutor(agent_id, a, executor, 0),
            RegisterFramework(FrameworkInfo(user="u", name="n")),
            ReregisterFramework(FrameworkInfo(user="u", name="n", id=a), failover=True),
            UnregisterFramework(a),
            DeactivateFramework(a),
            DeclineOffers(a, (self.offer.id,), Filters(5.0)),
            AcceptOffers(a, (self.offer.id,), (launch,), Filters(1.0)),
            ReviveOffers(a, ("*",)),
            SuppressOffers(a, ("*",)),
            KillTask(a, TaskID("t1"), agent_id),
            StatusUpdate(a, status, pid=str(self.agent.pid)),
            StatusUpdateAcknowledgement(agent_id, a, TaskID("t1"), new_status_uuid()),
            ReconcileTasks(a, (ReconcileTask(TaskID("t1"), agent_id),)),
            FrameworkToExecutor(agent_id, a, executor, b"data"),
            ShutdownExecutor(a, executor, agent_id),
            ExecutorToFramework(agent_id, a, executor, b"data"),
        ]
        valid = {message.NAME: message for message in messages}
        assert set(valid) == set(MASTER_NAMES), "a master handler has no valid example here"
        return valid

    def assert_still_serving(self) -> None:
        """A new driver subscribes, a new agent registers, and the driver is offered it
        (framework ``b``, as poor in shares as the new one, suppresses its offers first)."""
        self.say(self.driver_b, SuppressOffers(self.framework_b))
        driver = FakeScheduler(unique("scheduler"))
        self.runtime.spawn(driver)
        self.register(driver)
        agent = FakeAgent(unique("agent"))
        self.runtime.spawn(agent)
        info = AgentInfo(hostname="host-new", resources=AGENT_RESOURCES)
        self.say(agent, RegisterAgent(info, version="test"))
        agent_id = agent.next(AgentRegistered).agent_id
        self.clock.advance(OPTIONS.allocation_interval)
        self.settle()
        (offer,) = driver.next(ResourceOffers).offers
        assert offer.agent_id == agent_id


@pytest.fixture
def bench(runtime, paused_clock, tmp_path) -> MasterBench:
    return MasterBench(runtime, paused_clock, str(tmp_path))


@st.composite
def bodies_for(draw: Any, valid: dict[str, Message], names: list[str]) -> tuple[str, Any]:
    """``(name, body)``: junk for a handled name, a mutated valid body, or an unknown name."""
    kind = draw(st.sampled_from(["random", "fields", "mutated", "mutated", "unknown"]))
    if kind == "unknown":
        return draw(UNKNOWN_NAMES), draw(JUNK)
    name = draw(st.sampled_from(names))
    if kind == "random" or name not in valid:
        return name, draw(JUNK)
    if kind == "fields":  # the right field names with junk values
        return name, draw(st.dictionaries(st.sampled_from(field_names(name)), JUNK, max_size=5))
    return name, mutate(draw(st.data()), valid[name].to_wire())


def send_burst(runtime: Any, to: UPID, burst: list[tuple[str, Any]], senders: list[Any]) -> None:
    for (name, body), sender in zip(burst, itertools.cycle(senders)):
        runtime.send(to, name, body, sender)


def expected_complaints(burst: list[tuple[str, Any]], handled: list[str]) -> tuple[int, int]:
    """(messages_invalid, messages_unknown_name) the burst must add."""
    invalid = sum(1 for name, body in burst if name in handled and not decodes(name, body))
    unknown = sum(1 for name, _ in burst if name not in handled)
    return invalid, unknown


def assert_refused(
    runtime: Any, burst: list[tuple[str, Any]], handled: list[str], counted: dict[str, int]
) -> None:
    """Every body of ``burst`` was counted as invalid or as an unknown name, and none made a
    handler fail (``counted``: the counters before the burst)."""
    invalid, unknown = expected_complaints(burst, handled)
    now = counters(runtime)
    assert now["corral/messages_invalid"] - counted["corral/messages_invalid"] == invalid
    assert (
        now["libprocess/messages_unknown_name"] - counted["libprocess/messages_unknown_name"]
        == unknown
    )
    assert now["libprocess/handler_errors"] == 0


def test_the_master_refuses_random_and_mutated_bodies_and_keeps_its_state(bench):
    valid = bench.valid_messages()
    # Names the master does not handle (other Corral messages) count as unknown names too.
    names = [*MASTER_NAMES, RunTask.NAME, PingAgent.NAME, AgentRegistered.NAME]

    @EXAMPLES
    @given(st.lists(bodies_for(valid, names), min_size=1, max_size=6))
    def check(burst: list[tuple[str, Any]]) -> None:
        burst = [(n, b) for n, b in burst if n not in REGISTRATIONS or not decodes(n, b)]
        before, counted = bench.describe(), counters(bench.runtime)
        send_burst(bench.runtime, bench.master.pid, burst, [bench.stranger, None])
        bench.settle()
        assert_refused(bench.runtime, burst, MASTER_NAMES, counted)
        assert bench.describe() == before

    check()
    bench.assert_still_serving()


def test_the_master_refuses_mutated_bodies_from_its_own_agent_and_drivers(bench):
    """The same junk from the pids the master trusts: refused all the same, nothing changes."""
    valid = bench.valid_messages()
    trusted = [bench.agent.pid, bench.driver_a.pid, bench.driver_b.pid]

    @EXAMPLES
    @given(st.lists(bodies_for(valid, MASTER_NAMES), min_size=1, max_size=6))
    def check(burst: list[tuple[str, Any]]) -> None:
        # Only bodies that do not decode: a valid one from a trusted pid is a real request.
        burst = [(name, body) for name, body in burst if not decodes(name, body)]
        before, counted = bench.describe(), counters(bench.runtime)
        send_burst(bench.runtime, bench.master.pid, burst, trusted)
        bench.settle()
        assert_refused(bench.runtime, burst, MASTER_NAMES, counted)
        assert bench.describe() == before

    check()
    assert [m for m in bench.agent.drain() if not isinstance(m, PingAgent)] == []
    bench.assert_still_serving()


# -- well-formed but wrong: the master ------------------------------------------------------

IDS = st.from_regex(r"x-[a-z0-9]{1,10}", fullmatch=True)
UUIDS = st.binary(min_size=16, max_size=16)


def refusals(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The log entries that refuse, drop or ignore something, with the reason given."""
    return [entry for entry in logs if "reason" in entry and entry["log_level"] != "debug"]


@st.composite
def wrong_master_calls(draw: Any, bench: MasterBench) -> tuple[Any, str, Any]:
    """``(sender, name, body)``: a well-formed message the master must refuse with a reason."""
    a, b, agent_id = bench.framework_a, bench.framework_b, bench.agent_id
    unknown_framework = FrameworkID(draw(IDS))
    unknown_agent = AgentID(draw(IDS))
    task_id = TaskID(draw(IDS))
    executor_id = ExecutorID(draw(IDS))
    driver_b, agent, stranger = bench.driver_b.pid, bench.agent.pid, bench.stranger
    launch = Operation.of_launch(bench.task(task_id))
    status = TaskStatus(task_id, draw(st.sampled_from(TaskState)), uuid=draw(UUIDS))
    someone_elses = draw(st.sampled_from([a, unknown_framework]))  # for calls from b's driver
    calls: list[tuple[Any, Message]] = [
        # Framework calls for a framework the sender does not drive, or nobody registered.
        (driver_b, UnregisterFramework(someone_elses)),
        (driver_b, DeactivateFramework(someone_elses)),
        (driver_b, ReviveOffers(someone_elses)),
        (driver_b, SuppressOffers(someone_elses)),
        (driver_b, DeclineOffers(someone_elses, (bench.offer.id,))),
        (driver_b, AcceptOffers(someone_elses, (bench.offer.id,), (launch,))),
        (driver_b, KillTask(someone_elses, task_id)),
        (driver_b, ReconcileTasks(someone_elses)),
        (stranger, UnregisterFramework(a)),
        (None, KillTask(a, task_id)),
        # b's own calls about what is not b's: a's offer, unknown offers, tasks, agents.
        (driver_b, DeclineOffers(b, (bench.offer.id, OfferID(draw(IDS))))),
        # (An acknowledgement for an unknown task to a known agent is forwarded, as Mesos
        # does: only the agent knows whether it still resends that update.)
        (driver_b, StatusUpdateAcknowledgement(unknown_agent, b, task_id, draw(UUIDS))),
        (driver_b, FrameworkToExecutor(unknown_agent, b, executor_id, b"hi")),
        (driver_b, ShutdownExecutor(b, executor_id, unknown_agent)),
        # Agent messages from someone who is not that agent, or about an unknown agent.
        (driver_b, StatusUpdate(a, status, pid=str(driver_b))),
        (stranger, StatusUpdate(a, status)),
        (agent, StatusUpdate(unknown_framework, status, pid=str(agent))),
        (stranger, UnregisterAgent(agent_id)),
        (agent, UnregisterAgent(unknown_agent)),
        (stranger, ExitedExecutor(agent_id, a, executor_id, 1)),
        (agent, ExitedExecutor(unknown_agent, a, executor_id, 1)),
        (stranger, ExecutorToFramework(agent_id, a, executor_id, b"hi")),
        # Registrations the master cannot take.
        (stranger, RegisterAgent(AgentInfo("h", resources=AGENT_RESOURCES, id=agent_id), "t")),
        (None, RegisterAgent(AgentInfo("h", resources=AGENT_RESOURCES), "t")),
        (
            stranger,
            ReregisterAgent(AgentInfo("elsewhere", resources=AGENT_RESOURCES, id=agent_id), "t"),
        ),
        (stranger, ReregisterAgent(AgentInfo("h", resources=AGENT_RESOURCES), "t")),
        (None, ReregisterAgent(AgentInfo("h", resources=AGENT_RESOURCES, id=unknown_agent), "t")),
        (stranger, RegisterFramework(FrameworkInfo("u", "n", id=unknown_framework))),
        (None, RegisterFramework(FrameworkInfo("u", "n"))),
        (stranger, ReregisterFramework(FrameworkInfo("u", "n"))),
        (None, ReregisterFramework(FrameworkInfo("u", "n", id=a))),
    ]
    sender, message = draw(st.sampled_from(calls))
    return sender, message.NAME, message.to_wire()


def test_the_master_refuses_wrong_calls_with_a_reason_and_keeps_its_state(bench):
    @EXAMPLES
    @given(st.data())
    def check(data: st.DataObject) -> None:
        burst = [data.draw(wrong_master_calls(bench)) for _ in range(data.draw(st.integers(1, 4)))]
        before, counted = bench.describe(), counters(bench.runtime)
        for sender, name, body in burst:
            with capture_logs() as logs:
                bench.runtime.send(bench.master.pid, name, body, sender)
                bench.settle()
            assert refusals(logs), f"{name} from {sender} was not refused with a reason: {logs}"
        assert counters(bench.runtime) == counted
        assert bench.describe() == before

    check()
    # Nothing wrong reached the agent or framework a; b was told about its own tasks, and
    # why each call about a framework it does not drive was refused.
    assert [m for m in bench.agent.drain() if not isinstance(m, PingAgent)] == []
    assert bench.driver_a.drain() == []
    for answer in bench.driver_b.drain():
        if isinstance(answer, FrameworkError):
            assert " refused: framework " in answer.message
        else:
            assert isinstance(answer, StatusUpdate) and answer.status.uuid is None
    bench.assert_still_serving()


def test_offers_and_tasks_that_are_not_the_callers_are_answered_with_a_status(bench):
    before = bench.describe()
    refused = counter(bench.runtime, "master/tasks_refused")
    launch = Operation.of_launch(bench.task("grab"))
    # b accepts a's offer, then an offer that never existed: each task TASK_DROPPED.
    bench.say(bench.driver_b, AcceptOffers(bench.framework_b, (bench.offer.id,), (launch,)))
    bench.say(bench.driver_b, AcceptOffers(bench.framework_b, (OfferID("x-none"),), (launch,)))
    for _ in range(2):
        status = bench.driver_b.next(StatusUpdate).status
        assert (status.task_id, status.state) == ("grab", TaskState.TASK_DROPPED)
        assert status.reason is Reason.REASON_INVALID_OFFERS and status.message
    # b kills a task it never launched: TASK_LOST, REASON_TASK_UNKNOWN.
    bench.say(bench.driver_b, KillTask(bench.framework_b, TaskID("x-ghost")))
    status = bench.driver_b.next(StatusUpdate).status
    assert (status.task_id, status.state) == ("x-ghost", TaskState.TASK_LOST)
    assert status.reason is Reason.REASON_TASK_UNKNOWN
    bench.settle()
    assert counter(bench.runtime, "master/tasks_refused") == refused + 2
    assert [m for m in bench.agent.drain() if not isinstance(m, PingAgent)] == []
    assert bench.describe() == before
    # a's offer is still a's to use.
    bench.say(bench.driver_a, AcceptOffers(bench.framework_a, (bench.offer.id,), (launch,)))
    assert bench.agent.next(RunTask).task.task_id == "grab"


def test_allocations_from_anyone_but_the_allocator_are_refused(bench):
    before = bench.describe()
    body = [{"framework_id": bench.framework_b, "agent_id": bench.agent_id, "role": "*",
             "resources": AGENT_RESOURCES.to_json()}]  # fmt: skip
    with capture_logs() as logs:
        bench.runtime.send(bench.master.pid, ALLOCATIONS, body, bench.stranger)
        bench.settle()
    assert [entry["event"] for entry in refusals(logs)] == ["allocations_refused"]
    assert bench.driver_b.drain() == []
    assert bench.describe() == before


# -- the agent ----------------------------------------------------------------------------

FRAMEWORK = FrameworkInfo(user="tester", name="bad-input", id=FrameworkID("fw-bad"))
NO_COMMAND = TaskInfo("empty", TaskID("empty"), AgentID("test-S0"), TASK_RESOURCES)


class AgentBench:
    """A real agent (posix containerizer, nothing launched) registered with a stand-in
    master. Every message here is refused before any container starts."""

    def __init__(self, runtime: Any, work_dir: Any) -> None:
        self.runtime = runtime
        self.master = FakeMaster()
        self.master.mailbox.requested_id = unique("master")
        master_pid = runtime.spawn(self.master)
        options = AgentOptions(
            master=str(master_pid),
            work_dir=work_dir,
            resources="cpus:2;mem:1024;disk:1024;ports:[31000-31010]",
            hostname="bad-input-agent",
        )
        self.agent = AgentProcess(options, PosixContainerizer(), id=unique("agent"))
        runtime.spawn(self.agent)
        self.master.next(RegisterAgent)
        runtime.settle()
        assert self.agent.registered
        self.stranger = UPID(f"{unique('stranger')}@{runtime.address}")

    def state(self) -> Any:
        """What the agent runs and who it is registered with."""

        def read() -> Any:
            agent = self.agent
            frameworks = {
                framework_id: (
                    framework.info,
                    framework.pid,
                    framework.shutting_down,
                    {
                        executor_id: (
                            executor.state,
                            {task_id: task.state for task_id, task in executor.tasks.items()},
                            executor.pid,
                        )
                        for executor_id, executor in framework.executors.items()
                    },
                )
                for framework_id, framework in agent.frameworks.items()
            }
            return agent.registered, agent.agent_id, agent.master, frameworks

        return self.runtime.dispatch(self.agent, read).result(5)

    def valid_messages(self) -> dict[str, Message]:
        """One valid message per name the agent handles."""
        framework_id, agent_id = FRAMEWORK.id, AgentID("test-S0")
        assert framework_id is not None
        executor = ExecutorInfo(ExecutorID("e1"), command=CommandInfo(value="true"))
        task = TaskInfo("t1", TaskID("t1"), agent_id, TASK_RESOURCES,
                        command=CommandInfo(value="true"))  # fmt: skip
        status = TaskStatus(TaskID("t1"), TaskState.TASK_RUNNING, uuid=new_status_uuid())
        messages: list[Message] = [
            AgentRegistered(AgentID("other")),
            AgentReregistered(AgentID("other")),
            PingAgent(connected=False),
            ShutdownAgent("the agent is marked gone"),
            RunTask(FRAMEWORK, task, "scheduler(1)@127.0.0.1:9"),
            RunTaskGroup(FRAMEWORK, executor, TaskGroupInfo((task,))),
            KillTask(framework_id, TaskID("t1"), agent_id),
            ShutdownFramework(framework_id),
            ShutdownExecutor(framework_id, ExecutorID("e1"), agent_id),
            RegisterExecutor(framework_id, ExecutorID("e1")),
            ReregisterExecutor(framework_id, ExecutorID("e1"), (task,), (status,)),
            StatusUpdate(framework_id, status, pid="executor(1)@127.0.0.1:9"),
            ExecutorToFramework(agent_id, framework_id, ExecutorID("e1"), b"data"),
            FrameworkToExecutor(agent_id, framework_id, ExecutorID("e1"), b"data"),
            StatusUpdateAcknowledgement(agent_id, framework_id, TaskID("t1"), new_status_uuid()),
        ]
        valid = {message.NAME: message for message in messages}
        assert set(valid) == set(AGENT_NAMES), "an agent handler has no valid example here"
        return valid

    def assert_still_serving(self) -> None:
        """The agent answers its master's ping and takes a launch (one it must refuse as
        TASK_ERROR, so nothing runs)."""
        self.master.drain()
        self.runtime.dispatch(self.master, self.master.send_message, self.agent.pid,
                              PingAgent(connected=True))  # fmt: skip
        self.master.next(PongAgent)
        run = RunTask(FRAMEWORK, NO_COMMAND, "scheduler(1)@127.0.0.1:9")
        self.runtime.dispatch(self.master, self.master.send_message, self.agent.pid, run)
        _, update = self.master.next(StatusUpdate)
        assert (update.status.task_id, update.status.state) == ("empty", TaskState.TASK_ERROR)

    def close(self) -> None:
        self.runtime.dispatch(self.agent, self.agent.shutdown, 0.5).result(15)


@pytest.fixture
def agent_bench(runtime, paused_clock, tmp_path):
    bench = AgentBench(runtime, tmp_path)
    yield bench
    bench.close()


def test_the_agent_refuses_random_and_mutated_bodies_and_keeps_its_state(agent_bench):
    bench = agent_bench
    valid = bench.valid_messages()
    names = [*AGENT_NAMES, RegisterAgent.NAME, AcceptOffers.NAME, PongAgent.NAME]

    @EXAMPLES
    @given(st.lists(bodies_for(valid, names), min_size=1, max_size=6))
    def check(burst: list[tuple[str, Any]]) -> None:
        before, counted = bench.state(), counters(bench.runtime)
        send_burst(bench.runtime, bench.agent.pid, burst, [bench.stranger, None])
        bench.runtime.settle()
        assert_refused(bench.runtime, burst, AGENT_NAMES, counted)
        assert bench.state() == before

    check()
    assert not bench.agent.containerizer.containers()
    bench.assert_still_serving()


def test_the_agent_refuses_mutated_bodies_from_its_master(agent_bench):
    bench = agent_bench
    valid = bench.valid_messages()

    @EXAMPLES
    @given(st.lists(bodies_for(valid, AGENT_NAMES), min_size=1, max_size=6))
    def check(burst: list[tuple[str, Any]]) -> None:
        burst = [(name, body) for name, body in burst if not decodes(name, body)]
        before, counted = bench.state(), counters(bench.runtime)
        send_burst(bench.runtime, bench.agent.pid, burst, [bench.master.pid])
        bench.runtime.settle()
        assert_refused(bench.runtime, burst, AGENT_NAMES, counted)
        assert bench.state() == before

    check()
    bench.assert_still_serving()


@st.composite
def wrong_agent_calls(draw: Any, bench: AgentBench) -> tuple[Any, str, Any]:
    """``(sender, name, body)``: well-formed, and not to be acted on by this agent."""
    framework_id = FrameworkID(draw(st.sampled_from(["fw-bad", draw(IDS)])))
    task_id, executor_id = TaskID(draw(IDS)), ExecutorID(draw(IDS))
    agent_id = AgentID("test-S0")
    master, stranger = bench.master.pid, bench.stranger
    anyone = draw(st.sampled_from([master, stranger, None]))
    not_master = draw(st.sampled_from([stranger, None]))
    task = TaskInfo("t", task_id, agent_id, TASK_RESOURCES, command=CommandInfo(value="true"))
    executor = ExecutorInfo(executor_id, command=CommandInfo(value="true"))
    status = TaskStatus(task_id, draw(st.sampled_from(TaskState)), uuid=draw(UUIDS))
    calls: list[tuple[Any, Message]] = [
        # Launches and registrations from anyone but the master it registered with.
        (not_master, RunTask(FRAMEWORK, task, "scheduler(1)@127.0.0.1:9")),
        (not_master, RunTaskGroup(FRAMEWORK, executor, TaskGroupInfo((task,)))),
        (not_master, AgentRegistered(AgentID(draw(IDS)))),
        (not_master, AgentReregistered(AgentID(draw(IDS)))),
        (not_master, ShutdownFramework(framework_id)),
        (not_master, ShutdownAgent("forged: stop at once")),
        # About tasks, executors, frameworks and updates this agent does not have.
        (anyone, KillTask(framework_id, task_id)),
        (master, ShutdownFramework(framework_id)),
        (anyone, ShutdownExecutor(framework_id, executor_id)),
        (anyone, FrameworkToExecutor(agent_id, framework_id, executor_id, b"hi")),
        (stranger, RegisterExecutor(framework_id, executor_id)),  # None: dropped unlogged
        (anyone, StatusUpdate(framework_id, status)),
        (anyone, StatusUpdateAcknowledgement(agent_id, framework_id, task_id, draw(UUIDS))),
    ]
    sender, message = draw(st.sampled_from(calls))
    return sender, message.NAME, message.to_wire()


def agent_refusals(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Log entries that refuse or ignore something (the agent logs the why as a reason, or
    in the event's name)."""
    words = ("refused", "ignored", "dropped", "stranger")
    return [
        entry
        for entry in logs
        if entry["log_level"] != "debug"
        and ("reason" in entry or any(word in entry["event"] for word in words))
    ]


def test_the_agent_refuses_wrong_calls_with_a_reason_and_keeps_its_state(agent_bench):
    bench = agent_bench

    @EXAMPLES
    @given(st.data())
    def check(data: st.DataObject) -> None:
        burst = [data.draw(wrong_agent_calls(bench)) for _ in range(data.draw(st.integers(1, 4)))]
        before, counted = bench.state(), counters(bench.runtime)
        bench.master.drain()
        for sender, name, body in burst:
            with capture_logs() as logs:
                bench.runtime.send(bench.agent.pid, name, body, sender)
                bench.runtime.settle()
            assert agent_refusals(logs), f"{name} from {sender} was not refused: {logs}"
        assert counters(bench.runtime) == counted
        assert bench.state() == before
        assert bench.master.drain() == []  # nothing was launched, forwarded or reported

    check()
    assert not bench.agent.containerizer.containers()
    bench.assert_still_serving()
