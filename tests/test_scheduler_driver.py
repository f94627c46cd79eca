"""The scheduler driver against a stand-in master: real runtimes, real messages.

The stand-in master is a ``ProtocolProcess`` with id ``master`` in a runtime of its own that
serves ``/master/info``, so the driver discovers it as it would a real one. It records what
it receives and answers only what a test tells it to.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiohttp import web

from corral.ids import AgentID, ExecutorID, FrameworkID, OfferID, TaskID
from corral.protocol import (
    CommandInfo,
    Filters,
    FrameworkInfo,
    MasterInfo,
    Offer,
    OperationType,
    TaskInfo,
    TaskStatus,
)
from corral.protocol.endpoint import ProtocolProcess
from corral.protocol.messages import (
    MESSAGES,
    AcceptOffers,
    AgentLost,
    DeactivateFramework,
    DeclineOffers,
    ExecutorLost,
    ExecutorToFramework,
    FrameworkError,
    FrameworkRegistered,
    FrameworkReregistered,
    FrameworkToExecutor,
    KillTask,
    Message,
    ReconcileTasks,
    RegisterFramework,
    ReregisterFramework,
    RescindOffer,
    ResourceOffers,
    ReviveOffers,
    StatusUpdate,
    StatusUpdateAcknowledgement,
    SuppressOffers,
    UnregisterFramework,
    decode_message,
)
from corral.resources import Resources
from corral.scheduler import Scheduler, SchedulerDriver, Status
from corral.task_states import Reason, Source, TaskState
from libprocess import UPID, Runtime

WAIT = 5.0  # wall-clock safety net; never part of what is tested
FRAMEWORK_ID = FrameworkID("fw-0001")
AGENT_ID = AgentID("agent-S0")


class FakeMaster(ProtocolProcess):
    """Records every message (decoded) and, unless told not to, answers registrations."""

    def __init__(self, ignore_registrations: int = 0, id: str = "master") -> None:
        super().__init__(id)
        self.ignore_registrations = ignore_registrations
        self.received: list[tuple[UPID | None, Message]] = []
        self.changed = threading.Condition()
        for name in MESSAGES:
            self.install(name, self._recorder(name))
        self.route("/info", self.state)

    def _recorder(self, name: str) -> Callable[[UPID | None, Any], None]:
        def record(sender: UPID | None, body: Any) -> None:
            message = decode_message(name, body)
            with self.changed:
                self.received.append((sender, message))
                self.changed.notify_all()
            if isinstance(message, (RegisterFramework, ReregisterFramework)):
                self._answer_registration(sender, message)

        return record

    def _answer_registration(
        self, sender: UPID | None, message: RegisterFramework | ReregisterFramework
    ) -> None:
        if self.ignore_registrations > 0:
            self.ignore_registrations -= 1
            return
        info = MasterInfo(id="master-1", pid=str(self.pid), hostname="127.0.0.1")
        if isinstance(message, RegisterFramework):
            self.send_message(sender, FrameworkRegistered(FRAMEWORK_ID, info))
        else:
            self.send_message(sender, FrameworkReregistered(message.framework.id, info))

    def state(self, request: web.Request) -> web.Response:
        return web.json_response({"pid": str(self.pid), "hostname": "127.0.0.1"})

    def messages(self, kind: type[Message]) -> list[Message]:
        with self.changed:
            return [message for _, message in self.received if isinstance(message, kind)]

    def wait_for(self, kind: type[Message], count: int = 1) -> list[Message]:
        with self.changed:
            ok = self.changed.wait_for(lambda: len(self.messages(kind)) >= count, WAIT)
        assert ok, f"expected {count} {kind.NAME}, got {self.messages(kind)}"
        return self.messages(kind)

    def driver_pid(self) -> UPID:
        with self.changed:
            for sender, message in self.received:
                if isinstance(message, (RegisterFramework, ReregisterFramework)):
                    return sender
        raise AssertionError("the driver has not registered")


class Recorder(Scheduler):
    """Records callbacks as (name, args); ``block`` makes status_update wait for an event."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple]] = []
        self.changed = threading.Condition()
        self.block: threading.Event | None = None
        self.threads: set[int] = set()

    def _record(self, name: str, *args: Any) -> None:
        with self.changed:
            self.calls.append((name, args))
            self.threads.add(threading.get_ident())
            self.changed.notify_all()

    def registered(self, driver, framework_id, master_info) -> None:
        self._record("registered", framework_id, master_info)

    def reregistered(self, driver, master_info) -> None:
        self._record("reregistered", master_info)

    def disconnected(self, driver) -> None:
        self._record("disconnected")

    def resource_offers(self, driver, offers) -> None:
        self._record("resource_offers", offers)

    def offer_rescinded(self, driver, offer_id) -> None:
        self._record("offer_rescinded", offer_id)

    def status_update(self, driver, status) -> None:
        self._record("status_update", status)
        if self.block is not None:
            assert self.block.wait(WAIT)

    def framework_message(self, driver, executor_id, agent_id, data) -> None:
        self._record("framework_message", executor_id, agent_id, data)

    def agent_lost(self, driver, agent_id) -> None:
        self._record("agent_lost", agent_id)

    def executor_lost(self, driver, executor_id, agent_id, status) -> None:
        self._record("executor_lost", executor_id, agent_id, status)

    def error(self, driver, message) -> None:
        self._record("error", message)

    def of(self, name: str) -> list[tuple]:
        with self.changed:
            return [args for call, args in self.calls if call == name]

    def wait_for(self, name: str, count: int = 1) -> list[tuple]:
        with self.changed:
            ok = self.changed.wait_for(lambda: len(self.of(name)) >= count, WAIT)
        assert ok, f"expected {count} {name} callbacks, got {self.calls}"
        return self.of(name)


@pytest.fixture
def master_runtime() -> Iterator[Runtime]:
    with Runtime("127.0.0.1", 0, http_port=0) as runtime:
        yield runtime


@pytest.fixture
def master(master_runtime: Runtime) -> FakeMaster:
    process = FakeMaster()
    master_runtime.spawn(process)
    return process


def framework(**fields: Any) -> FrameworkInfo:
    return FrameworkInfo(user="tester", name="test-framework", **fields)


@pytest.fixture
def make_driver(master_runtime: Runtime) -> Iterator[Callable[..., SchedulerDriver]]:
    """Drivers pointed at the master runtime's HTTP address; all stopped after the test."""
    drivers: list[SchedulerDriver] = []

    def make(scheduler: Scheduler, **options: Any) -> SchedulerDriver:
        info = options.pop("framework", framework())
        master = options.pop("master", master_runtime.http_address)
        driver = SchedulerDriver(scheduler, info, master, **options)
        drivers.append(driver)
        return driver

    yield make
    for driver in drivers:
        driver.stop(failover=True)


def registered(make_driver, scheduler: Recorder | None = None, **options: Any):
    scheduler = scheduler or Recorder()
    driver = make_driver(scheduler, **options)
    assert driver.start() is Status.RUNNING
    scheduler.wait_for("registered")
    return driver, scheduler


def offer(number: int = 0, cpus: float = 1.0, mem: float = 128.0) -> Offer:
    return Offer(
        id=OfferID(f"offer-{number}"),
        framework_id=FRAMEWORK_ID,
        agent_id=AGENT_ID,
        hostname="127.0.0.1",
        resources=Resources.scalars(cpus=cpus, mem=mem),
    )


def update(task: str, state: TaskState, with_uuid: bool = True) -> StatusUpdate:
    status = TaskStatus(
        TaskID(task),
        state,
        source=Source.SOURCE_EXECUTOR,
        agent_id=AGENT_ID,
        uuid=uuid.uuid4().bytes if with_uuid else None,
    )
    return StatusUpdate(FRAMEWORK_ID, status, pid="agent@127.0.0.1:5051" if with_uuid else "")


# -- registration ---------------------------------------------------------------------------


def test_registers_through_discovery_and_gets_its_id(master, make_driver) -> None:
    driver, scheduler = registered(make_driver)

    framework_id, master_info = scheduler.wait_for("registered")[0]
    assert framework_id == FRAMEWORK_ID
    assert isinstance(master_info, MasterInfo) and master_info.pid == master.pid
    (register,) = master.messages(RegisterFramework)
    assert register.framework.name == "test-framework" and register.framework.id is None
    assert master.driver_pid() == driver.pid
    assert driver.pid.id.startswith("scheduler(")
    assert threading.get_ident() not in scheduler.threads  # callbacks on their own thread


def test_an_explicit_master_pid_needs_no_discovery(master, make_driver) -> None:
    registered(make_driver, master=str(master.pid))
    assert len(master.messages(RegisterFramework)) == 1


def test_registration_is_retried_on_the_runtime_clock(
    master_runtime, make_driver, paused_clock
) -> None:
    master = FakeMaster(ignore_registrations=2)
    master_runtime.spawn(master)
    scheduler = Recorder()
    make_driver(scheduler).start()

    master.wait_for(RegisterFramework, 1)
    paused_clock.advance(1.0)  # first retry after 1 s
    master.wait_for(RegisterFramework, 2)
    paused_clock.advance(1.0)  # the backoff doubled: not yet
    master_runtime.settle()
    assert len(master.messages(RegisterFramework)) == 2
    paused_clock.advance(1.0)
    master.wait_for(RegisterFramework, 3)
    scheduler.wait_for("registered")
    paused_clock.advance(60.0)  # registered: no more retries
    master_runtime.settle()
    assert len(master.messages(RegisterFramework)) == 3


def test_a_framework_with_an_id_reregisters_as_a_failover(master, make_driver) -> None:
    scheduler = Recorder()
    driver = make_driver(scheduler, framework=framework(id=FRAMEWORK_ID))
    driver.start()
    (master_info,) = scheduler.wait_for("reregistered")[0]
    assert master_info.id == "master-1"
    (message,) = master.messages(ReregisterFramework)
    assert message.framework.id == FRAMEWORK_ID and message.failover is True
    assert master.messages(RegisterFramework) == []


def test_losing_the_master_calls_disconnected_then_reregisters(
    master_runtime, master, make_driver, paused_clock
) -> None:
    driver, scheduler = registered(make_driver)

    master_runtime.terminate(master)
    master_runtime.wait(master).result(WAIT)
    scheduler.wait_for("disconnected")

    replacement = FakeMaster()  # the same pid, as a restarted master on the same port
    master_runtime.spawn(replacement)
    paused_clock.advance(1.0)  # rediscovery after the backoff
    (again,) = replacement.wait_for(ReregisterFramework)
    assert again.framework.id == FRAMEWORK_ID and again.failover is False
    scheduler.wait_for("reregistered")
    assert driver.status is Status.RUNNING


def test_a_bad_master_address_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="host:port"):
        SchedulerDriver(Recorder(), framework(), "no-port-here")


# -- offers and calls -----------------------------------------------------------------------


def test_offers_reach_the_scheduler_typed_and_launch_sends_accept(master, make_driver) -> None:
    driver, scheduler = registered(make_driver)
    master.send_message(driver.pid, ResourceOffers((offer(0), offer(1)), pids=("a@h:1", "a@h:1")))

    (offers,) = scheduler.wait_for("resource_offers")[0]
    assert [o.id for o in offers] == ["offer-0", "offer-1"]
    assert all(isinstance(o, Offer) for o in offers)
    assert offers[0].resources == Resources.scalars(cpus=1, mem=128)

    task = TaskInfo(
        name="t",
        task_id=TaskID("t-1"),
        agent_id=AGENT_ID,
        resources=Resources.scalars(cpus=0.1, mem=32),
        command=CommandInfo(value="true"),
    )
    assert driver.launch_tasks([offers[0].id], [task], Filters(refuse_seconds=5)) is Status.RUNNING
    (accept,) = master.wait_for(AcceptOffers)
    assert accept.framework_id == FRAMEWORK_ID and accept.offer_ids == ("offer-0",)
    (operation,) = accept.operations
    assert operation.type is OperationType.LAUNCH
    assert operation.launch.task_infos == (task,)
    assert accept.filters == Filters(refuse_seconds=5)


def test_decline_kill_reconcile_revive_suppress_and_messages(master, make_driver) -> None:
    driver, scheduler = registered(make_driver)

    driver.decline_offer("offer-7", Filters(refuse_seconds=30))
    driver.kill_task("t-1")
    status = TaskStatus(TaskID("t-2"), TaskState.TASK_RUNNING, agent_id=AGENT_ID)
    driver.reconcile_tasks([status, "t-3"])
    driver.reconcile_tasks([])
    driver.revive_offers(["web"])
    driver.suppress_offers()
    driver.send_framework_message("exec-1", AGENT_ID, b"hello")

    (decline,) = master.wait_for(DeclineOffers)
    assert decline.offer_ids == ("offer-7",) and decline.filters.refuse_seconds == 30
    (kill,) = master.wait_for(KillTask)
    assert kill.task_id == "t-1" and kill.framework_id == FRAMEWORK_ID
    explicit, implicit = master.wait_for(ReconcileTasks, 2)
    assert [(t.task_id, t.agent_id) for t in explicit.tasks] == [("t-2", AGENT_ID), ("t-3", None)]
    assert implicit.tasks == ()
    (revive,) = master.wait_for(ReviveOffers)
    assert revive.roles == ("web",)
    (suppress,) = master.wait_for(SuppressOffers)
    assert suppress.roles == ()
    (message,) = master.wait_for(FrameworkToExecutor)
    assert (message.executor_id, message.agent_id, message.data) == ("exec-1", AGENT_ID, b"hello")

    master.send_message(driver.pid, RescindOffer(OfferID("offer-9")))
    master.send_message(
        driver.pid, ExecutorToFramework(AGENT_ID, FRAMEWORK_ID, ExecutorID("exec-1"), b"hi")
    )
    assert scheduler.wait_for("offer_rescinded") == [(OfferID("offer-9"),)]
    assert scheduler.wait_for("framework_message") == [(ExecutorID("exec-1"), AGENT_ID, b"hi")]
    master.send_message(driver.pid, AgentLost(AGENT_ID))
    master.send_message(driver.pid, ExecutorLost(FRAMEWORK_ID, ExecutorID("exec-1"), AGENT_ID, 9))
    assert scheduler.wait_for("agent_lost") == [(AGENT_ID,)]
    assert scheduler.wait_for("executor_lost") == [(ExecutorID("exec-1"), AGENT_ID, 9)]


class Decliner(Recorder):
    """Answers one offer message as a packing framework would: declines, one launch, more
    declines with two filters, a revive."""

    def resource_offers(self, driver, offers) -> None:
        five, nine = Filters(refuse_seconds=5), Filters(refuse_seconds=9)
        for item in offers[:3]:
            driver.decline_offer(item.id, five)
        task = TaskInfo(
            name="t", task_id=TaskID("t-1"), agent_id=AGENT_ID, resources=Resources.scalars(cpus=1)
        )
        driver.launch_tasks([offers[3].id], [task])
        driver.decline_offer(offers[4].id, five)
        driver.decline_offer(offers[5].id, five)
        driver.decline_offer(offers[6].id, nine)
        driver.revive_offers()
        driver.decline_offer(offers[7].id, nine)
        super().resource_offers(driver, offers)


def test_declines_in_one_callback_go_as_one_call_per_run_in_order(master, make_driver) -> None:
    driver, scheduler = registered(make_driver, Decliner())
    master.send_message(driver.pid, ResourceOffers(tuple(offer(n) for n in range(8))))
    scheduler.wait_for("resource_offers")
    master.wait_for(DeclineOffers, 4)
    with master.changed:
        sent = [m for _, m in master.received if not isinstance(m, RegisterFramework)]
    shapes = [
        (type(m).__name__, m.offer_ids, m.filters.refuse_seconds)
        if isinstance(m, DeclineOffers)
        else (type(m).__name__,)
        for m in sent
    ]
    assert shapes == [
        ("DeclineOffers", ("offer-0", "offer-1", "offer-2"), 5),
        ("AcceptOffers",),
        ("DeclineOffers", ("offer-4", "offer-5"), 5),
        ("DeclineOffers", ("offer-6",), 9),
        ("ReviveOffers",),
        ("DeclineOffers", ("offer-7",), 9),  # sent when the callback returned
    ]


def test_calls_from_many_threads_all_arrive(master, make_driver) -> None:
    driver, _ = registered(make_driver)
    threads, per_thread = 8, 50

    def kill_many(number: int) -> None:
        for index in range(per_thread):
            driver.kill_task(f"t-{number}-{index}")

    workers = [threading.Thread(target=kill_many, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(WAIT)
    kills = master.wait_for(KillTask, threads * per_thread)
    assert len({kill.task_id for kill in kills}) == threads * per_thread
    for number in range(threads):  # each thread's calls in its own order
        mine = [k.task_id for k in kills if k.task_id.startswith(f"t-{number}-")]
        assert mine == [f"t-{number}-{index}" for index in range(per_thread)]


# -- status updates -------------------------------------------------------------------------


def test_status_updates_are_acknowledged_after_the_callback(master, make_driver) -> None:
    driver, scheduler = registered(make_driver)
    sent = update("t-1", TaskState.TASK_RUNNING)
    master.send_message(driver.pid, sent)

    (status,) = scheduler.wait_for("status_update")[0]
    assert isinstance(status, TaskStatus) and status.state is TaskState.TASK_RUNNING
    (ack,) = master.wait_for(StatusUpdateAcknowledgement)
    assert (ack.agent_id, ack.framework_id, ack.task_id, ack.uuid) == (
        AGENT_ID,
        FRAMEWORK_ID,
        "t-1",
        sent.status.uuid,
    )


def test_updates_without_uuid_are_not_acknowledged(master, make_driver) -> None:
    driver, scheduler = registered(make_driver)
    master.send_message(driver.pid, update("t-1", TaskState.TASK_LOST, with_uuid=False))
    master.send_message(driver.pid, update("t-2", TaskState.TASK_RUNNING))
    scheduler.wait_for("status_update", 2)
    (ack,) = master.wait_for(StatusUpdateAcknowledgement)
    assert ack.task_id == "t-2"  # the first update needed none


def test_explicit_acknowledgements_wait_for_the_scheduler(
    master_runtime, master, make_driver
) -> None:
    driver, scheduler = registered(make_driver, implicit_acknowledgements=False)
    sent = update("t-1", TaskState.TASK_FINISHED)
    master.send_message(driver.pid, sent)
    master.send_message(driver.pid, update("t-0", TaskState.TASK_LOST, with_uuid=False))
    # The second callback has begun, so the first has returned: an implicit acknowledgement
    # of it would already be handed to the actor, ahead of this call.
    (status,), _ = scheduler.wait_for("status_update", 2)
    driver.kill_task("marker")
    master.wait_for(KillTask)
    assert master.messages(StatusUpdateAcknowledgement) == []

    driver.acknowledge_status_update(status)
    (ack,) = master.wait_for(StatusUpdateAcknowledgement)
    assert ack.uuid == sent.status.uuid and ack.task_id == "t-1"


def test_explicit_acknowledge_is_refused_with_implicit_acknowledgements(
    master, make_driver
) -> None:
    driver, _ = registered(make_driver)
    status = update("t-1", TaskState.TASK_RUNNING).status
    with pytest.raises(RuntimeError, match="implicit_acknowledgements=False"):
        driver.acknowledge_status_update(status)


def test_a_blocked_callback_does_not_stop_the_driver(master, make_driver) -> None:
    scheduler = Recorder()
    scheduler.block = threading.Event()
    driver, _ = registered(make_driver, scheduler)
    first, second = update("t-1", TaskState.TASK_RUNNING), update("t-2", TaskState.TASK_RUNNING)
    master.send_message(driver.pid, first)
    master.send_message(driver.pid, second)
    scheduler.wait_for("status_update", 1)

    driver.kill_task("t-9")  # the actor serves calls while the callback blocks
    master.wait_for(KillTask)
    assert len(scheduler.of("status_update")) == 1
    assert master.messages(StatusUpdateAcknowledgement) == []

    scheduler.block.set()
    acks = master.wait_for(StatusUpdateAcknowledgement, 2)
    assert [ack.uuid for ack in acks] == [first.status.uuid, second.status.uuid]


# -- stopping -------------------------------------------------------------------------------


def test_stop_tears_the_framework_down(master, make_driver) -> None:
    driver, _ = registered(make_driver)
    assert driver.stop() is Status.STOPPED
    (message,) = master.wait_for(UnregisterFramework)
    assert message.framework_id == FRAMEWORK_ID
    assert driver.join() is Status.STOPPED
    assert driver.stop() is Status.STOPPED  # idempotent


def test_stop_with_failover_only_disconnects(master_runtime, master, make_driver) -> None:
    driver, _ = registered(make_driver)
    assert driver.stop(failover=True) is Status.STOPPED
    master_runtime.settle()
    assert master.messages(UnregisterFramework) == []
    assert driver.status is Status.STOPPED


def test_join_returns_when_a_callback_stops_the_driver(master, make_driver) -> None:
    class StopOnFinish(Recorder):
        def status_update(self, driver, status) -> None:
            super().status_update(driver, status)
            if status.state is TaskState.TASK_FINISHED:
                driver.stop()

    scheduler = StopOnFinish()
    driver, _ = registered(make_driver, scheduler)
    result: list[Status] = []
    joiner = threading.Thread(target=lambda: result.append(driver.join()))
    joiner.start()
    master.send_message(driver.pid, update("t-1", TaskState.TASK_FINISHED))
    joiner.join(WAIT)
    assert result == [Status.STOPPED]
    master.wait_for(UnregisterFramework)


def test_abort_stops_callbacks_and_join_returns(master_runtime, master, make_driver) -> None:
    driver, scheduler = registered(make_driver)
    assert driver.abort() is Status.ABORTED
    assert driver.join() is Status.ABORTED
    master.send_message(driver.pid, ResourceOffers((offer(0),)))
    master_runtime.settle()
    assert scheduler.of("resource_offers") == []
    assert driver.kill_task("t-1") is Status.ABORTED  # calls do nothing once aborted


def test_a_framework_error_aborts_then_tells_the_scheduler(master, make_driver) -> None:
    driver, scheduler = registered(make_driver)
    master.send_message(driver.pid, FrameworkError("framework role 'x' is not allowed"))
    assert scheduler.wait_for("error") == [("framework role 'x' is not allowed",)]
    assert driver.join() is Status.ABORTED
    master.wait_for(DeactivateFramework)


def test_launching_while_disconnected_reports_the_tasks_lost(
    master_runtime, master, make_driver
) -> None:
    driver, scheduler = registered(make_driver)
    master_runtime.terminate(master)
    scheduler.wait_for("disconnected")
    task = TaskInfo(name="t", task_id=TaskID("t-1"), agent_id=AGENT_ID)
    driver.launch_tasks("offer-0", [task])
    (status,) = scheduler.wait_for("status_update")[0]
    assert status.task_id == "t-1" and status.state is TaskState.TASK_LOST
    assert status.reason is Reason.REASON_MASTER_DISCONNECTED and status.uuid is None


def test_messages_from_another_process_than_the_master_are_dropped(
    master_runtime, master, make_driver
) -> None:
    driver, scheduler = registered(make_driver)
    impostor = FakeMaster(id="impostor")
    master_runtime.spawn(impostor)
    impostor.send_message(driver.pid, ResourceOffers((offer(0),)))
    master.send_message(driver.pid, ResourceOffers((offer(1),)))
    master.send_message(driver.pid, ResourceOffers((offer(2),)))
    delivered = scheduler.wait_for("resource_offers", 2)
    assert [offers[0].id for (offers,) in delivered] == ["offer-1", "offer-2"]


def test_calls_before_start_do_nothing(make_driver) -> None:
    driver = make_driver(Recorder())
    assert driver.kill_task("t-1") is Status.NOT_STARTED
    assert driver.join() is Status.NOT_STARTED


# -- the example framework ------------------------------------------------------------------


def test_run_commands_packs_offers_and_reports_failures(master_runtime, master) -> None:
    from corral.frameworks.commands import run_commands

    lines: list[str] = []
    summaries = []
    commands = ["echo a", "echo b", "echo c", "exit 3"]
    runner = threading.Thread(
        target=lambda: summaries.append(
            run_commands(master_runtime.http_address, commands, timeout=WAIT, report=lines.append)
        )
    )
    runner.start()
    master.wait_for(RegisterFramework)
    driver = master.driver_pid()

    master.send_message(driver, ResourceOffers((offer(0, cpus=1, mem=100),)))  # 3 fit
    (first,) = master.wait_for(AcceptOffers)
    tasks = first.operations[0].launch.task_infos
    assert [t.command.value for t in tasks] == commands[:3]
    assert all(t.resources == Resources.scalars(cpus=0.1, mem=32) for t in tasks)
    assert first.filters == Filters(refuse_seconds=5)

    master.send_message(driver, ResourceOffers((offer(1, cpus=1, mem=64), offer(2))))
    second = master.wait_for(AcceptOffers, 2)[1]
    assert [t.command.value for t in second.operations[0].launch.task_infos] == ["exit 3"]
    (decline,) = master.wait_for(DeclineOffers)  # nothing left for offer 2
    assert decline.offer_ids == ("offer-2",) and decline.filters.refuse_seconds == 5
    master.wait_for(SuppressOffers)  # everything launched

    launched = [*tasks, *second.operations[0].launch.task_infos]
    for task in launched:
        master.send_message(driver, update(task.task_id, TaskState.TASK_RUNNING))
    for task in launched:
        failed = task.command.value == "exit 3"
        sent = update(task.task_id, TaskState.TASK_FAILED if failed else TaskState.TASK_FINISHED)
        if failed:
            status = dataclasses.replace(sent.status, message="exited with status 3")
            sent = dataclasses.replace(sent, status=status)
        master.send_message(driver, sent)
    runner.join(WAIT)

    (summary,) = summaries
    assert summary.framework_id == FRAMEWORK_ID
    assert [r.command for r in summary.finished] == commands[:3]
    (bad,) = summary.failed
    assert bad.state is TaskState.TASK_FAILED and bad.message == "exited with status 3"
    assert not summary.ok and "exited with status 3" in summary.describe()
    assert sum("RUNNING" in line for line in lines) == 4
    assert any("FAILED" in line and "exited with status 3" in line for line in lines)
    master.wait_for(UnregisterFramework)
