"""Failures with real processes: nothing acknowledged is lost when executors, schedulers,
the master or agents die or hang.

A master and an agent run in OS processes of their own (``LocalCluster``), schedulers in this
process or in a child process started to be SIGKILLed. Faults are real: SIGKILL of an
executor, of a scheduler program and of the master; SIGSTOP/SIGCONT of an agent. Timeouts are
short (pings every 0.3 s, unreachable after 3 missed, allocation every 0.1 s); the waits below
are wall-clock safety nets, since the cluster runs on its own clocks in other processes.

OS processes of containers are found honestly: the agent launches each container as a
session of its own whose processes carry ``CORRAL_EXECUTOR_ID`` / ``CORRAL_TASK_ID`` in their
environment, so they are looked up among the agent's descendants (psutil).
"""

from __future__ import annotations

import json
import os
import queue
import select
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest

from corral.cli.cluster import LocalCluster, start_local_cluster, wait_for_agents
from corral.cli.listings import StateUnavailable, fetch_state
from corral.ids import ExecutorID, TaskID
from corral.protocol import CommandInfo, ExecutorInfo, Filters, TaskInfo
from corral.resources import Resources
from corral.scheduler import SchedulerDriver, Status
from corral.task_states import Reason, Source, TaskState
from libprocess import Launched
from master import MasterOptions
from tests.failure_scheduler import READY, TASK, Recorder, command_task, framework_info

WAIT = 15.0  # wall-clock safety net for anything the cluster does
AGENT = "cpus:4;mem:1024;disk:1024;ports:[31000-31010]"
MASTER = MasterOptions(allocation_interval=0.1, agent_ping_timeout=0.3, max_agent_ping_timeouts=3)
AGENT_OPTIONS = {
    "registration_backoff": 0.1,
    "registration_backoff_max": 0.5,
    "executor_shutdown_grace": 0.5,
    "executor_registration_timeout": 10.0,
    "status_update_retry_min": 0.5,
    "status_update_retry_max": 2.0,
}
ROOT = Path(__file__).resolve().parent.parent
EXECUTOR_PROGRAM = ROOT / "examples" / "custom_executor.py"
EXECUTOR = Resources.parse("cpus:0.1;mem:32")
# Drivers look for a lost master again after 0.2 s (doubling to 1 s), not 1 s doubling to
# 60 s, so a master restart is noticed within a second or two.
QUICK_RETRIES = {"registration_backoff": 0.2, "registration_backoff_max": 1.0}

T = TypeVar("T")


# -- fixtures ---------------------------------------------------------------------------------


def local_cluster(tmp_path: Path, master: MasterOptions) -> Iterator[LocalCluster]:
    cluster = start_local_cluster(
        1,
        work_dir=str(tmp_path / "cluster"),
        resources=AGENT,
        master_options=master,
        agent_options=AGENT_OPTIONS,
    )
    try:
        wait_for_agents(cluster.http_address, 1, timeout=WAIT)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster(tmp_path) -> Iterator[LocalCluster]:
    """A fresh master and one agent per test: every test breaks something."""
    yield from local_cluster(tmp_path, MASTER)


@pytest.fixture
def patient_cluster(tmp_path) -> Iterator[LocalCluster]:
    """The same, with a master that takes 10 s of silence (not 0.9 s) for an agent lost: a
    restarted agent must be back before it is taken for unreachable, however slowly a busy
    machine starts it."""
    yield from local_cluster(
        tmp_path, replace(MASTER, agent_ping_timeout=1.0, max_agent_ping_timeouts=10)
    )


@pytest.fixture
def drivers() -> Iterator[list[SchedulerDriver]]:
    """Drivers the test started in this process; stopped (torn down) after it."""
    started: list[SchedulerDriver] = []
    yield started
    for driver in started:
        driver.stop()


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen]]:
    """Scheduler programs the test started; killed by pid after it if still alive."""
    started: list[subprocess.Popen] = []
    yield started
    for child in started:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=WAIT)
        if child.stdout is not None:
            child.stdout.close()


def start_framework(
    cluster: LocalCluster, drivers: list[SchedulerDriver], name: str, **info: Any
) -> tuple[SchedulerDriver, Recorder]:
    recorder = Recorder(WAIT)
    driver = SchedulerDriver(
        recorder, framework_info(name, **info), cluster.http_address, **QUICK_RETRIES
    )
    driver.start()
    drivers.append(driver)
    return driver, recorder


def start_scheduler_program(
    cluster: LocalCluster, children: list[subprocess.Popen], *args: str
) -> dict[str, str]:
    """``tests/failure_scheduler.py`` in a child process; its line once its task runs."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.failure_scheduler", "--master", cluster.http_address, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    children.append(child)
    deadline = time.monotonic() + WAIT
    while True:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([child.stdout], [], [], max(left, 0))
        assert ready, f"the scheduler program (pid {child.pid}) did not report its task in time"
        line = child.stdout.readline()
        assert line, f"the scheduler program exited with {child.wait()} before its task ran"
        if line.startswith(READY):
            return json.loads(line.removeprefix(READY))


def kill_child(child: subprocess.Popen) -> None:
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=WAIT) == -signal.SIGKILL


# -- observing the cluster --------------------------------------------------------------------


def wait_until(
    probe: Callable[[], T],
    what: str,
    show: Callable[[], Any] | None = None,
    timeout: float = WAIT,
) -> T:
    """Poll ``probe`` until it returns something true; that value. On timeout the error
    shows ``show()`` (what the cluster looked like) or the probe's last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            seen = show() if show is not None else value
            raise AssertionError(f"not within {timeout:g} s: {what} (last seen: {seen!r})")
        time.sleep(0.05)


def master_state(cluster: LocalCluster) -> dict[str, Any]:
    try:
        return fetch_state(cluster.http_address, timeout=2.0)
    except StateUnavailable:
        return {}


def agent_state(agent: Launched) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://{agent.http_address}/agent/state", timeout=2.0) as reply:
        return json.loads(reply.read())


def active_agent(cluster: LocalCluster, agent_id: str) -> dict[str, Any] | None:
    return next((a for a in master_state(cluster).get("agents", []) if a["id"] == agent_id), None)


def task_states(cluster: LocalCluster) -> dict[str, str]:
    """Task id -> state of the tasks ``/master/state`` lists as its frameworks' current ones
    (not their completed tasks)."""
    frameworks = master_state(cluster).get("frameworks", [])
    return {task["id"]: task["state"] for f in frameworks for task in f["tasks"]}


def container_processes(agent: Launched, variable: str, value: str) -> list[psutil.Process]:
    """The agent's descendants with ``variable=value`` in their environment."""
    found = []
    for process in psutil.Process(agent.os_pid).children(recursive=True):
        try:
            if process.environ().get(variable) == value:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def session_leader(processes: list[psutil.Process]) -> psutil.Process | None:
    """The container's main process: it leads the session the container runs in."""
    for process in processes:
        try:
            if os.getsid(process.pid) == process.pid:
                return process
        except ProcessLookupError:
            continue
    return None


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def task_process(cluster: LocalCluster, task_id: str) -> psutil.Process:
    """The main process of a command task's container."""
    return wait_until(
        lambda: session_leader(container_processes(cluster.agents[0], "CORRAL_TASK_ID", task_id)),
        f"the process of task {task_id} under the agent",
    )


def take_offer(recorder: Recorder, driver: SchedulerDriver, need: Resources):
    """The next offer that fits ``need``; smaller ones are declined."""
    while True:
        offer = recorder.next_offer()
        if offer.resources.unallocated().contains(need):
            return offer
        driver.decline_offer(offer.id, Filters(refuse_seconds=0))


def give_back_offers(recorder: Recorder, driver: SchedulerDriver, quiet: float = 0.5) -> None:
    """Decline every offer until none has come for ``quiet`` seconds (offers made before a
    suppress reached the master still arrive after it, and hold their resources)."""
    while True:
        try:
            offer = recorder.offers.get(timeout=quiet)
        except queue.Empty:
            return
        driver.decline_offer(offer.id)


def reconcile(driver: SchedulerDriver, recorder: Recorder, task_id: str) -> None:
    """Ask for the task's state: the answer must be TASK_RUNNING. Updates the agent sends
    again (not acknowledged before a crash) may come first; they must say RUNNING too."""
    driver.reconcile_tasks([task_id])
    while True:
        answer = recorder.next_update(task_id)
        assert answer.state is TaskState.TASK_RUNNING, answer
        if answer.reason is Reason.REASON_RECONCILIATION:
            return


# -- the cluster's own failure controls -------------------------------------------------------


def test_a_restarted_master_keeps_its_pid_and_address_and_the_agent_comes_back(cluster):
    before = master_state(cluster)
    (agent,) = before["agents"]
    pid, http_address = cluster.master.pid, cluster.master.http_address
    cluster.kill_master()
    assert not cluster.master.is_alive()
    restarted = cluster.restart_master()
    assert (restarted.pid, restarted.http_address) == (pid, http_address)
    assert restarted is cluster.master
    wait_until(lambda: active_agent(cluster, agent["id"]), "the agent re-registers, same id")
    # The killed master was replaced: stop() reports the new one's clean exit.
    assert cluster.stop() == [0, 0]


def test_a_killed_agent_reports_no_exit_code_and_a_restarted_one_keeps_its_pid(cluster):
    pid = cluster.agents[0].pid
    cluster.kill_agent(0)
    assert cluster.stop() == [None, 0]
    cluster.restart_master()
    restarted = cluster.restart_agent(0)
    assert restarted.pid == pid
    assert cluster.stop() == [0, 0]


# -- a. an executor crashes -------------------------------------------------------------------


def test_an_executor_killed_fails_its_task_and_its_resources_come_back(cluster, drivers):
    driver, recorder = start_framework(cluster, drivers, "executor-crash")
    offer = take_offer(recorder, driver, TASK + EXECUTOR)
    executor_id = "crash-executor"
    task = TaskInfo(
        name="under-executor",
        task_id=TaskID("under-executor"),
        agent_id=offer.agent_id,
        resources=TASK,
        executor=ExecutorInfo(
            executor_id=ExecutorID(executor_id),
            command=CommandInfo(value=f"{sys.executable} {EXECUTOR_PROGRAM}"),
            resources=EXECUTOR,
        ),
        data=b"sleep 60",
    )
    driver.launch_tasks([offer.id], [task], Filters(refuse_seconds=0))
    recorder.until_state(task.task_id, TaskState.TASK_RUNNING)
    agent = cluster.agents[0]
    listed = agent_state(agent)["frameworks"][0]["executors"]
    assert [executor["id"] for executor in listed] == [executor_id]
    members = wait_until(
        lambda: (
            container_processes(agent, "CORRAL_EXECUTOR_ID", executor_id)
            if len(container_processes(agent, "CORRAL_EXECUTOR_ID", executor_id)) >= 2
            else None
        ),
        "the executor and its task's command in the executor's container",
    )
    leader = session_leader(members)
    assert leader is not None, f"no session leader among {[p.cmdline() for p in members]}"

    os.kill(leader.pid, signal.SIGKILL)

    final = recorder.until_terminal(task.task_id)[-1]
    assert final.state is TaskState.TASK_FAILED
    assert final.reason is Reason.REASON_EXECUTOR_TERMINATED
    lost = recorder.executors_lost.get(timeout=WAIT)
    assert (lost.executor_id, lost.agent_id) == (executor_id, offer.agent_id)
    wait_until(
        lambda: not any(alive(process) for process in members),
        "every process of the executor's container is gone",
    )
    wait_until(
        lambda: (
            not agent_state(agent)["frameworks"]
            or not agent_state(agent)["frameworks"][0]["executors"]
        ),
        "the agent forgets the executor",
    )
    wait_until(
        lambda: (
            (entry := active_agent(cluster, offer.agent_id))
            and not Resources.from_json(entry["used_resources"])
        ),
        "the master counts nothing used on the agent",
    )
    deadline = time.monotonic() + WAIT
    while True:  # offers left over are declined until the whole agent is offered again
        again = recorder.next_offer()
        if again.resources.unallocated().contains(Resources.parse(AGENT)):
            break
        driver.decline_offer(again.id, Filters(refuse_seconds=0))
        assert time.monotonic() < deadline, "the agent's full resources were never offered"


# -- b. a scheduler fails over, or never comes back -------------------------------------------


def test_a_scheduler_killed_and_replaced_within_its_failover_timeout_keeps_its_task(
    cluster, drivers, children
):
    started = start_scheduler_program(
        cluster, children, "--failover-timeout", "30", "--checkpoint", "--command", "sleep 60"
    )
    framework_id, task_id = started["framework_id"], started["task_id"]
    process = task_process(cluster, task_id)

    kill_child(children[0])
    wait_until(
        lambda: [
            f
            for f in master_state(cluster).get("frameworks", [])
            if f["id"] == framework_id and not f["connected"] and not f["active"]
        ],
        "the master sees the framework disconnected (and keeps it)",
    )

    info = {"failover_timeout": 30.0, "checkpoint": True, "framework_id": framework_id}
    driver, recorder = start_framework(cluster, drivers, "failover-victim", **info)
    recorder.reregistrations.get(timeout=WAIT)
    assert recorder.registrations.empty(), "a failover re-registers; it is not a new framework"
    reconcile(driver, recorder, task_id)
    assert alive(process), "the task's process was killed during the failover"
    assert task_states(cluster)[task_id] == TaskState.TASK_RUNNING.value
    (framework,) = master_state(cluster)["frameworks"]
    assert (framework["id"], framework["connected"], framework["active"]) == (
        framework_id,
        True,
        True,
    )
    assert framework["pid"] == str(driver.pid)


def test_a_scheduler_that_never_comes_back_has_its_task_killed_and_its_id_refused(
    cluster, drivers, children
):
    failover_timeout = 1.5
    started = start_scheduler_program(
        cluster,
        children,
        "--failover-timeout",
        str(failover_timeout),
        "--checkpoint",
        "--command",
        "sleep 60",
    )
    framework_id, task_id = started["framework_id"], started["task_id"]
    process = task_process(cluster, task_id)

    kill_child(children[0])
    killed_at = time.monotonic()
    wait_until(
        lambda: not any(f["id"] == framework_id for f in master_state(cluster)["frameworks"]),
        "the master removes the framework after its failover timeout",
    )
    assert time.monotonic() - killed_at >= failover_timeout * 0.9, "removed before the timeout"
    wait_until(lambda: not alive(process), "the framework's task is killed")
    state = master_state(cluster)
    assert not [t for t in state["tasks"] if t["framework_id"] == framework_id]
    wait_until(
        lambda: (
            not Resources.from_json(active_agent(cluster, started["agent_id"])["used_resources"])
        ),
        "the task's resources are free again",
    )

    info = {"failover_timeout": 30.0, "checkpoint": True, "framework_id": framework_id}
    driver, recorder = start_framework(cluster, drivers, "failover-victim", **info)
    error = recorder.errors.get(timeout=WAIT)
    assert framework_id in error and "removed" in error
    assert driver.status is Status.ABORTED
    assert recorder.reregistrations.empty() and recorder.registrations.empty()


# -- c. the master dies and comes back --------------------------------------------------------


def test_a_master_restart_loses_nothing_the_task_runs_on_and_can_be_killed(cluster, drivers):
    info = {"failover_timeout": 60.0, "checkpoint": True}
    driver, recorder = start_framework(cluster, drivers, "survivor", **info)
    framework_id = recorder.registrations.get(timeout=WAIT)
    offer = take_offer(recorder, driver, TASK)
    task = command_task(offer, "survivor-task", "sleep 60")
    driver.launch_tasks([offer.id], [task], Filters(refuse_seconds=0))
    recorder.until_state(task.task_id, TaskState.TASK_RUNNING)
    process = task_process(cluster, task.task_id)
    pid = cluster.master.pid

    cluster.kill_master()
    recorder.disconnections.get(timeout=WAIT)
    cluster.restart_master()
    assert cluster.master.pid == pid

    wait_until(lambda: active_agent(cluster, offer.agent_id), "the agent re-registers")
    recorder.reregistrations.get(timeout=WAIT)
    assert recorder.registrations.empty()
    wait_until(
        lambda: task_states(cluster).get(task.task_id) == TaskState.TASK_RUNNING.value,
        "the restarted master knows the task as running (from the agent)",
    )
    (framework,) = master_state(cluster)["frameworks"]
    assert (framework["id"], framework["connected"]) == (framework_id, True)

    reconcile(driver, recorder, task.task_id)
    assert [s.state for s in recorder.all_updates if s.task_id == task.task_id][-1] is (
        TaskState.TASK_RUNNING
    )
    bad = [
        s for s in recorder.all_updates if s.state in (TaskState.TASK_LOST, TaskState.TASK_FAILED)
    ]
    assert not bad, f"updates the scheduler should never have seen: {bad}"
    assert alive(process), "the task's process died with the master"

    driver.kill_task(task.task_id)
    final = recorder.until_terminal(task.task_id)[-1]
    assert final.state is TaskState.TASK_KILLED
    wait_until(lambda: not alive(process), "the killed task's process ends")


# -- d. an agent stops answering --------------------------------------------------------------


def test_an_agent_that_hangs_is_lost_then_comes_back_with_its_tasks(cluster, drivers):
    plain, plain_recorder = start_framework(cluster, drivers, "plain")
    offer = take_offer(plain_recorder, plain, TASK)
    agent_id = offer.agent_id
    plain_task = command_task(offer, "plain-task", "sleep 60")
    plain.launch_tasks([offer.id], [plain_task], Filters(refuse_seconds=0))
    plain_recorder.until_state(plain_task.task_id, TaskState.TASK_RUNNING)
    plain.suppress_offers()  # what is left goes to the other framework...
    give_back_offers(plain_recorder, plain)  # ...once what it was offered meanwhile is back

    aware, aware_recorder = start_framework(cluster, drivers, "aware", partition_aware=True)
    offer = take_offer(aware_recorder, aware, TASK)
    aware_task = command_task(offer, "aware-task", "sleep 60")
    aware.launch_tasks([offer.id], [aware_task], Filters(refuse_seconds=0))
    aware_recorder.until_state(aware_task.task_id, TaskState.TASK_RUNNING)
    aware.suppress_offers()
    processes = [
        task_process(cluster, plain_task.task_id),
        task_process(cluster, aware_task.task_id),
    ]

    cluster.pause_agent(0)
    lost = plain_recorder.until_terminal(plain_task.task_id)[-1]
    assert (lost.state, lost.reason, lost.source) == (
        TaskState.TASK_LOST,
        Reason.REASON_AGENT_REMOVED,
        Source.SOURCE_MASTER,
    )
    unreachable = aware_recorder.next_update(aware_task.task_id)
    assert (unreachable.state, unreachable.reason) == (
        TaskState.TASK_UNREACHABLE,
        Reason.REASON_AGENT_REMOVED,
    )
    assert plain_recorder.agents_lost.get(timeout=WAIT) == agent_id
    assert aware_recorder.agents_lost.get(timeout=WAIT) == agent_id
    state = master_state(cluster)
    assert agent_id not in [agent["id"] for agent in state["agents"]]
    assert agent_id in [agent["id"] for agent in state["unreachable_agents"]]

    cluster.resume_agent(0)
    wait_until(lambda: active_agent(cluster, agent_id), "the agent re-registers with its id")
    assert agent_state(cluster.agents[0])["id"] == agent_id
    # Its tasks are known again, for both frameworks: as in Mesos 1.x, a task reported
    # TASK_LOST to a framework that is not partition-aware is not killed when its agent
    # returns; it is simply running again.
    ours = (plain_task.task_id, aware_task.task_id)
    running = {task_id: TaskState.TASK_RUNNING.value for task_id in ours}
    wait_until(
        lambda: {k: v for k, v in task_states(cluster).items() if k in ours} == running,
        "both tasks are running again in /master/state",
        lambda: master_state(cluster).get("frameworks"),
    )
    listed = [task["id"] for task in master_state(cluster)["tasks"] if task["id"] in ours]
    assert sorted(listed) == sorted(ours)  # once each: back from lost, no longer completed
    reconcile(aware, aware_recorder, aware_task.task_id)
    reconcile(plain, plain_recorder, plain_task.task_id)
    assert all(alive(process) for process in processes)


# -- an agent dies and comes back -------------------------------------------------------------


def test_an_agent_killed_and_restarted_recovers_its_running_task(patient_cluster, drivers):
    cluster = patient_cluster
    info = {"failover_timeout": 60.0, "checkpoint": True}
    driver, recorder = start_framework(cluster, drivers, "checkpointing", **info)
    offer = take_offer(recorder, driver, TASK)
    task = command_task(offer, "outlives-its-agent", "sleep 60")
    driver.launch_tasks([offer.id], [task], Filters(refuse_seconds=0))
    recorder.until_state(task.task_id, TaskState.TASK_RUNNING)
    process = task_process(cluster, task.task_id)
    pid = cluster.agents[0].pid

    cluster.kill_agent(0)
    assert alive(process), "the task's container must outlive its agent"
    restarted = cluster.restart_agent(0)
    assert restarted.pid == pid

    wait_until(
        lambda: agent_state(restarted).get("registered") and agent_state(restarted),
        "the restarted agent registers again",
    )
    assert agent_state(restarted)["id"] == offer.agent_id, "a recovered agent keeps its id"
    wait_until(lambda: active_agent(cluster, offer.agent_id), "the master lists the agent")
    assert task_states(cluster).get(task.task_id) == TaskState.TASK_RUNNING.value
    reconcile(driver, recorder, task.task_id)
    bad = [s for s in recorder.all_updates if s.state is not TaskState.TASK_RUNNING]
    assert not [s for s in bad if s.state is not TaskState.TASK_STARTING], bad
    assert alive(process)

    driver.kill_task(task.task_id)
    assert recorder.until_terminal(task.task_id)[-1].state is TaskState.TASK_KILLED
    wait_until(lambda: not alive(process), "the recovered agent kills the task's process")
