"""End to end: a master and an agent in OS processes of their own, frameworks in this one.

Everything is real: processes, ZeroMQ, HTTP discovery, the posix containerizer running shell
commands. Waits are wall-clock safety nets (the cluster runs in other processes, on their own
clocks); the master allocates every 0.2 s to keep the tests short.
"""

from __future__ import annotations

import getpass
import itertools
import json
import queue
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from corral.cli.cluster import LocalCluster, start_local_cluster, wait_for_agents
from corral.cli.listings import fetch_state
from corral.ids import ExecutorID, TaskID
from corral.protocol import (
    CommandInfo,
    ExecutorInfo,
    ExecutorType,
    Filters,
    FrameworkInfo,
    Offer,
    Operation,
    TaskInfo,
    TaskStatus,
)
from corral.resources import Resources
from corral.scheduler import Scheduler, SchedulerDriver
from corral.task_states import Reason, TaskState, is_terminal
from master import MasterOptions

WAIT = 20.0  # wall-clock safety net for anything the cluster does
AGENT = "cpus:4;mem:1024;disk:1024;ports:[31000-31010]"
TASK = Resources.parse("cpus:1;mem:64")
_task_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> LocalCluster:
    cluster = start_local_cluster(
        1,
        work_dir=str(tmp_path_factory.mktemp("cluster")),
        resources=AGENT,
        master_options=MasterOptions(allocation_interval=0.2),
    )
    try:
        wait_for_agents(cluster.http_address, 1)
        yield cluster
    finally:
        assert cluster.stop() == [0, 0]


class Recorder(Scheduler):
    """Hands every callback to the test thread through queues."""

    def __init__(self) -> None:
        self.ids: queue.Queue = queue.Queue()
        self.offers: queue.Queue[Offer] = queue.Queue()
        self.updates: queue.Queue[TaskStatus] = queue.Queue()
        self.held: list[TaskStatus] = []  # taken off the queue while looking for another task

    def registered(self, driver, framework_id, master_info) -> None:
        self.ids.put(framework_id)

    def resource_offers(self, driver, offers) -> None:
        for offer in offers:
            self.offers.put(offer)

    def status_update(self, driver, status) -> None:
        self.updates.put(status)

    def next_offer(self) -> Offer:
        return self.offers.get(timeout=WAIT)

    def next_update(self, task_id: str) -> TaskStatus:
        """The next update of ``task_id``; updates of other tasks wait for their turn."""
        for index, status in enumerate(self.held):
            if status.task_id == task_id:
                return self.held.pop(index)
        while True:
            status = self.updates.get(timeout=WAIT)
            if status.task_id == task_id:
                return status
            self.held.append(status)

    def until_terminal(self, task_id: str) -> list[TaskStatus]:
        seen = [self.next_update(task_id)]
        while not is_terminal(seen[-1].state):
            seen.append(self.next_update(task_id))
        return seen


@pytest.fixture
def framework(cluster):
    """A registered framework (torn down after the test) and its recorder."""
    drivers: list[SchedulerDriver] = []

    def make(name: str = "test", **driver_options) -> tuple[SchedulerDriver, Recorder]:
        recorder = Recorder()
        info = FrameworkInfo(user=getpass.getuser(), name=name)
        driver = SchedulerDriver(recorder, info, cluster.http_address, **driver_options)
        driver.start()
        drivers.append(driver)
        recorder.ids.get(timeout=WAIT)
        return driver, recorder

    yield make
    for driver in drivers:
        driver.stop()


def task(offer: Offer, command: str, resources: Resources = TASK, **fields) -> TaskInfo:
    task_id = TaskID(f"task-{next(_task_numbers)}")
    return TaskInfo(
        name=str(task_id),
        task_id=task_id,
        agent_id=offer.agent_id,
        resources=resources,
        command=CommandInfo(value=command),
        **fields,
    )


def test_a_task_runs_to_finished(framework):
    driver, recorder = framework()
    offer = recorder.next_offer()
    assert offer.resources.unallocated().contains(Resources.parse(AGENT))
    launched = task(offer, "echo hello")
    driver.launch_tasks([offer.id], [launched])
    states = [status.state for status in recorder.until_terminal(launched.task_id)]
    assert states == [TaskState.TASK_STARTING, TaskState.TASK_RUNNING, TaskState.TASK_FINISHED]


def test_a_failing_command_fails_with_its_exit_code(framework):
    driver, recorder = framework()
    offer = recorder.next_offer()
    launched = task(offer, "exit 3")
    driver.launch_tasks([offer.id], [launched])
    final = recorder.until_terminal(launched.task_id)[-1]
    assert final.state is TaskState.TASK_FAILED
    assert "3" in (final.message or "")


def test_kill_gives_killed(framework):
    driver, recorder = framework()
    offer = recorder.next_offer()
    launched = task(offer, "sleep 60")
    driver.launch_tasks([offer.id], [launched])
    while recorder.next_update(launched.task_id).state is not TaskState.TASK_RUNNING:
        pass
    driver.kill_task(launched.task_id)
    assert recorder.until_terminal(launched.task_id)[-1].state is TaskState.TASK_KILLED


def test_an_invalid_launch_gives_task_error_and_the_resources_come_back(framework):
    driver, recorder = framework()
    offer = recorder.next_offer()
    too_big = task(offer, "true", Resources.parse("cpus:400;mem:64"))
    driver.launch_tasks([offer.id], [too_big], Filters(refuse_seconds=0))
    final = recorder.until_terminal(too_big.task_id)[-1]
    assert final.state is TaskState.TASK_ERROR
    assert final.reason is Reason.REASON_TASK_INVALID
    again = recorder.next_offer()
    assert again.resources.unallocated() == offer.resources.unallocated()


def test_a_finished_tasks_resources_return_to_the_pool(framework):
    driver, recorder = framework()
    offer = recorder.next_offer()
    launched = task(offer, "sleep 1")
    driver.launch_tasks([offer.id], [launched], Filters(refuse_seconds=0))
    rest = recorder.next_offer()  # what the running task leaves
    assert not rest.resources.unallocated().contains(Resources.parse(AGENT))
    driver.decline_offer(rest.id, Filters(refuse_seconds=0))
    assert recorder.until_terminal(launched.task_id)[-1].state is TaskState.TASK_FINISHED
    deadline = time.monotonic() + WAIT
    while True:
        offer = recorder.next_offer()
        if offer.resources.unallocated().contains(Resources.parse(AGENT)):
            break
        driver.decline_offer(offer.id, Filters(refuse_seconds=0))
        assert time.monotonic() < deadline


def test_decline_filters_hold_and_revive_brings_offers_back(framework):
    driver, recorder = framework()
    offer = recorder.next_offer()
    driver.decline_offer(offer.id, Filters(refuse_seconds=3600))
    with pytest.raises(queue.Empty):
        recorder.offers.get(timeout=1.0)  # five allocation intervals: nothing comes
    driver.revive_offers()
    assert recorder.next_offer().agent_id == offer.agent_id


def test_two_frameworks_share_the_cluster(framework):
    first, first_recorder = framework("first")
    second, second_recorder = framework("second")
    # One agent: whoever is offered it first holds it; once it declines, the other gets it.
    deadline = time.monotonic() + WAIT
    while first_recorder.offers.empty() and second_recorder.offers.empty():
        assert time.monotonic() < deadline, "no framework was offered the agent"
        time.sleep(0.01)
    if not first_recorder.offers.empty():
        holder, offer, other = first, first_recorder.next_offer(), second_recorder
    else:
        holder, offer, other = second, second_recorder.next_offer(), first_recorder
    holder.decline_offer(offer.id, Filters(refuse_seconds=3600))
    assert other.next_offer().agent_id == offer.agent_id


def test_updates_arrive_in_order_and_wait_for_acknowledgements(framework):
    driver, recorder = framework(implicit_acknowledgements=False)
    offer = recorder.next_offer()
    launched = task(offer, "true")
    driver.launch_tasks([offer.id], [launched])
    first = recorder.next_update(launched.task_id)
    assert first.state is TaskState.TASK_STARTING
    with pytest.raises(queue.Empty):
        recorder.updates.get(timeout=1.0)  # RUNNING waits for STARTING's acknowledgement
    driver.acknowledge_status_update(first)
    second = recorder.next_update(launched.task_id)
    assert second.state is TaskState.TASK_RUNNING
    driver.acknowledge_status_update(second)
    third = recorder.next_update(launched.task_id)
    assert third.state is TaskState.TASK_FINISHED
    driver.acknowledge_status_update(third)


def test_reconciliation_returns_the_truth(framework):
    driver, recorder = framework()
    offer = recorder.next_offer()
    launched = task(offer, "sleep 60")
    driver.launch_tasks([offer.id], [launched])
    while recorder.next_update(launched.task_id).state is not TaskState.TASK_RUNNING:
        pass
    driver.reconcile_tasks([launched.task_id, "no-such-task"])
    answer = recorder.next_update(launched.task_id)
    assert answer.state is TaskState.TASK_RUNNING
    assert answer.reason is Reason.REASON_RECONCILIATION
    unknown = recorder.next_update("no-such-task")
    assert unknown.state in (TaskState.TASK_LOST, TaskState.TASK_UNKNOWN)
    driver.kill_task(launched.task_id)
    assert recorder.until_terminal(launched.task_id)[-1].state is TaskState.TASK_KILLED


def test_the_master_state_lists_agents_frameworks_and_tasks(cluster, framework):
    driver, recorder = framework("listed")
    offer = recorder.next_offer()
    launched = task(offer, "sleep 60")
    driver.launch_tasks([offer.id], [launched])
    while recorder.next_update(launched.task_id).state is not TaskState.TASK_RUNNING:
        pass
    state = fetch_state(cluster.http_address)
    assert len(state["agents"]) == 1
    names = {f["name"]: f for f in state["frameworks"]}
    tasks = names["listed"]["tasks"]
    assert [(t["id"], t["state"]) for t in tasks] == [(launched.task_id, "TASK_RUNNING")]


def _corral(*args: str) -> subprocess.CompletedProcess:
    corral = Path(sys.executable).with_name("corral")
    return subprocess.run(
        [str(corral), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_corral_run_streams_states_and_exits_with_the_tasks_status(cluster):
    done = _corral("run", "--master", cluster.http_address, "--command", "echo hi")
    assert done.returncode == 0, done.stderr
    assert "FINISHED" in done.stdout
    failed = _corral("run", "--master", cluster.http_address, "--command", "exit 7")
    assert failed.returncode == 7, failed.stdout + failed.stderr


def test_corral_lists_agents(cluster):
    listed = _corral("agents", "--master", cluster.http_address)
    assert listed.returncode == 0, listed.stderr
    assert "cpus:4" in listed.stdout
    missing = _corral("agents", "--master", "127.0.0.1:1")
    assert missing.returncode == 1
    assert "is the master running there" in missing.stderr


def test_the_custom_executor_example_runs_its_tasks_through_the_master(cluster):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
    try:
        import executor_framework
    finally:
        sys.path.pop(0)
    commands = ["echo one", "echo two", "exit 0"]
    states = executor_framework.run(
        cluster.http_address, commands, timeout=WAIT, report=lambda line: None
    )
    assert states == {f"exec-{i}": TaskState.TASK_FINISHED for i in range(3)}, states


@pytest.fixture(scope="module")
def two_agents(tmp_path_factory) -> LocalCluster:
    cluster = start_local_cluster(
        2,
        work_dir=str(tmp_path_factory.mktemp("two-agents")),
        resources=AGENT,
        master_options=MasterOptions(allocation_interval=0.2),
    )
    try:
        wait_for_agents(cluster.http_address, 2)
        yield cluster
    finally:
        assert cluster.stop() == [0, 0, 0]


def test_two_frameworks_share_two_agents_by_drf(two_agents):
    """DRF: the framework with the lower dominant share is offered first. Alone, the first
    framework is offered both agents; once it gives them back with a second framework
    registered, each framework is offered one."""
    drivers = []
    left, right = Recorder(), Recorder()
    try:
        for name, recorder in (("left", left), ("right", right)):
            info = FrameworkInfo(user=getpass.getuser(), name=name)
            driver = SchedulerDriver(recorder, info, two_agents.http_address)
            driver.start()
            drivers.append(driver)
            recorder.ids.get(timeout=WAIT)
            if recorder is left:
                both = [left.next_offer(), left.next_offer()]
                assert len({offer.agent_id for offer in both}) == 2
        for offer in both:
            drivers[0].decline_offer(offer.id, Filters(refuse_seconds=0))
        mine, theirs = left.next_offer(), right.next_offer()
        assert mine.agent_id != theirs.agent_id
        for recorder in (left, right):  # holding their offers, neither gets more
            with pytest.raises(queue.Empty):
                recorder.offers.get(timeout=1.0)
    finally:
        for driver in drivers:
            driver.stop()


def test_a_task_group_under_the_default_executor_runs_each_task(framework):
    driver, recorder = framework()
    offer = recorder.next_offer()
    executor = ExecutorInfo(
        executor_id=ExecutorID("default"), type=ExecutorType.DEFAULT, resources=TASK
    )
    group = (task(offer, "echo a"), task(offer, "echo b"))
    driver.accept_offers([offer.id], [Operation.of_launch_group(executor, group)])
    final: dict[str, TaskState] = {}
    while len(final) < len(group):  # the members' updates interleave: take them as they come
        status = recorder.updates.get(timeout=WAIT)
        if is_terminal(status.state):
            final[status.task_id] = status.state
    assert final == {member.task_id: TaskState.TASK_FINISHED for member in group}


def test_the_agent_serves_per_container_statistics(cluster, framework):
    driver, recorder = framework("monitored")
    offer = recorder.next_offer()
    launched = task(offer, "sleep 60")
    driver.launch_tasks([offer.id], [launched])
    while recorder.next_update(launched.task_id).state is not TaskState.TASK_RUNNING:
        pass
    (agent,) = fetch_state(cluster.http_address)["agents"]
    url = f"http://127.0.0.1:{agent['port']}/monitor/statistics"
    with urllib.request.urlopen(url, timeout=WAIT) as response:
        entries = json.loads(response.read())
    (entry,) = [e for e in entries if e["executor_id"] == launched.task_id]
    assert entry["statistics"]["processes"] >= 1
    assert entry["statistics"]["mem_rss_bytes"] > 0
    listed = _corral("tasks", "--usage", "--master", cluster.http_address)
    assert listed.returncode == 0, listed.stderr
    (row,) = [line for line in listed.stdout.splitlines() if line.startswith(launched.task_id)]
    assert "TASK_RUNNING" in row and row.rstrip().endswith("MB")
    driver.kill_task(launched.task_id)
    assert recorder.until_terminal(launched.task_id)[-1].state is TaskState.TASK_KILLED
