"""Agent restart: an agent SIGKILLed while tasks run recovers them from its checkpoints.

Real processes throughout: a master and an agent (``corral.cli.cluster``), tasks in
containers, and the agent killed with SIGKILL and started again on the same work directory.
Tasks that must end while the agent is down wait for a "go" file the test creates, so nothing
depends on how long anything takes.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import psutil
import pytest

from agent.leftovers import kill_leftover_containers
from corral.cli.cluster import LocalCluster, start_local_cluster, wait_for_agents
from corral.cli.listings import fetch_state
from corral.ids import ExecutorID, TaskID
from corral.protocol import CommandInfo, ExecutorInfo, Offer, TaskInfo, TaskStatus
from corral.resources import Resources
from corral.scheduler import SchedulerDriver
from corral.task_states import Reason, TaskState
from master import MasterOptions
from tests.failure_scheduler import TASK, Recorder, command_task, framework_info

WAIT = 20.0  # wall-clock safety net
AGENT = "cpus:4;mem:1024;disk:1024"
EXECUTOR_PROGRAM = Path(__file__).resolve().parent.parent / "examples" / "custom_executor.py"


@pytest.fixture
def cluster(tmp_path):
    cluster = start_local_cluster(
        1,
        work_dir=str(tmp_path / "cluster"),
        resources=AGENT,
        master_options=MasterOptions(allocation_interval=0.1),
        agent_options={
            "registration_backoff": 0.1,
            "registration_backoff_max": 0.5,
            "status_update_retry_min": 0.5,
            "status_update_retry_max": 2.0,
            "executor_reregistration_timeout": 10.0,
        },
    )
    try:
        wait_for_agents(cluster.http_address, 1)
        yield cluster
    finally:
        cluster.stop()
        kill_leftover_containers(cluster.work_dir / "agent-0")


@pytest.fixture
def driver_for(cluster):
    drivers: list[SchedulerDriver] = []

    def make(checkpoint: bool, **options) -> tuple[SchedulerDriver, Recorder]:
        recorder = Recorder(WAIT)
        info = framework_info("recovery", checkpoint=checkpoint)
        driver = SchedulerDriver(recorder, info, cluster.http_address, **options)
        driver.start()
        drivers.append(driver)
        recorder.registrations.get(timeout=WAIT)
        return driver, recorder

    yield make
    for driver in drivers:
        driver.stop()


def _until(predicate, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.02)


def _pid_in_sandbox(cluster: LocalCluster, task_id: str) -> int:
    """The pid a task wrote to ``pid`` in its sandbox (command tasks: executor id = task id)."""
    pattern = f"agent-0/frameworks/*/executors/{task_id}/runs/*/pid"
    found: list[Path] = []
    _until(lambda: found.extend(cluster.work_dir.glob(pattern)) or found, f"{task_id}'s pid")
    _until(lambda: found[0].read_text().strip(), f"{task_id}'s pid file written")
    return int(found[0].read_text())


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _reconciled(recorder: Recorder, task_id: str) -> TaskStatus:
    """The master's answer to a reconciliation; resent RUNNING updates before it are skipped
    (the agent resends what it had no acknowledgement for when it died)."""
    while (status := recorder.next_update(task_id)).reason is not Reason.REASON_RECONCILIATION:
        assert status.state is TaskState.TASK_RUNNING, status
    return status


def _offer(recorder: Recorder, enough: Resources) -> Offer:
    while True:
        offer = recorder.next_offer()
        if offer.resources.unallocated().contains(enough):
            return offer


SMALL = Resources.parse("cpus:0.5;mem:32")


def _launch(driver: SchedulerDriver, recorder: Recorder, commands: dict[str, str]) -> None:
    """Command tasks (task id -> shell command) on one offer that holds them all."""
    total = Resources()
    for _ in commands:
        total += SMALL
    offer = _offer(recorder, total)
    tasks = [
        TaskInfo(
            name=task_id,
            task_id=TaskID(task_id),
            agent_id=offer.agent_id,
            resources=SMALL,
            command=CommandInfo(value=command),
        )
        for task_id, command in commands.items()
    ]
    driver.launch_tasks([offer.id], tasks)


def _waits_for(go: Path, code: int) -> str:
    """A command that writes its pid, runs until ``go`` exists, then exits ``code``."""
    return f"echo $$ > pid; while [ ! -e {go} ]; do sleep 0.02; done; exit {code}"


def test_running_tasks_survive_and_what_ended_meanwhile_is_reported(cluster, driver_for, tmp_path):
    driver, recorder = driver_for(checkpoint=True)
    go = tmp_path / "go"
    commands = {
        "long": _waits_for(tmp_path / "never", 0),
        "finishes": _waits_for(go, 0),
        "fails": _waits_for(go, 3),
    }
    _launch(driver, recorder, commands)
    for task_id in commands:
        recorder.until_state(task_id, TaskState.TASK_RUNNING)
    pids = {task_id: _pid_in_sandbox(cluster, task_id) for task_id in commands}
    agent_id = fetch_state(cluster.http_address)["agents"][0]["id"]

    cluster.kill_agent(0)
    go.touch()  # two tasks end while no agent watches them
    _until(lambda: not _running(pids["finishes"]) and not _running(pids["fails"]), "tasks end")
    assert _running(pids["long"])  # the agent's death did not take its tasks along
    cluster.restart_agent(0)

    # A RUNNING whose acknowledgement the agent did not live to see may come again first.
    finished = recorder.until_state("finishes", TaskState.TASK_FINISHED)[-1]
    failed = recorder.until_state("fails", TaskState.TASK_FAILED)[-1]
    assert failed.message == "Command exited with status 3"  # as if the agent had watched
    assert {finished.agent_id, failed.agent_id} == {agent_id}  # the same agent id

    driver.reconcile_tasks([])
    reconciled = _reconciled(recorder, "long")
    assert reconciled.state is TaskState.TASK_RUNNING, reconciled
    assert _running(pids["long"])
    state = fetch_state(cluster.http_address)
    assert [agent["id"] for agent in state["agents"]] == [agent_id]

    driver.kill_task(TaskID("long"))
    recorder.until_state("long", TaskState.TASK_KILLED)
    _until(lambda: not _running(pids["long"]), "the killed task's process ends")


def test_an_unacknowledged_update_is_resent_after_the_restart(cluster, driver_for, tmp_path):
    driver, recorder = driver_for(checkpoint=True, implicit_acknowledgements=False)
    offer = _offer(recorder, TASK)
    driver.launch_tasks([offer.id], [command_task(offer, "quick", "true")])
    while (status := recorder.next_update("quick")).state is not TaskState.TASK_FINISHED:
        driver.acknowledge_status_update(status)
    # FINISHED stays unacknowledged: the agent must keep it across its death.

    cluster.kill_agent(0)
    cluster.restart_agent(0)
    again = recorder.next_update("quick")
    assert again.state is TaskState.TASK_FINISHED
    assert again.uuid == status.uuid  # the same update, resent
    driver.acknowledge_status_update(again)
    stream = list(cluster.work_dir.glob("agent-0/meta/frameworks/*/tasks/quick.msgpack"))
    _until(lambda: not any(path.exists() for path in stream), "the closed stream's file goes")


def test_tasks_of_a_framework_without_checkpointing_do_not_survive(cluster, driver_for, tmp_path):
    driver, recorder = driver_for(checkpoint=False)
    _launch(driver, recorder, {"fragile": _waits_for(tmp_path / "never", 0)})
    recorder.until_state("fragile", TaskState.TASK_RUNNING)
    pid = _pid_in_sandbox(cluster, "fragile")

    cluster.kill_agent(0)
    assert _running(pid)
    cluster.restart_agent(0)
    _until(lambda: not _running(pid), "the orphaned container is destroyed")
    lost = recorder.next_update("fragile")
    assert lost.state is TaskState.TASK_LOST, lost
    wait_for_agents(cluster.http_address, 1)
    (framework,) = fetch_state(cluster.http_address)["frameworks"]
    assert framework["tasks"] == []  # no longer active; its resources are free again
    assert [task["state"] for task in framework["completed_tasks"]] == ["TASK_LOST"]


def test_a_custom_executor_reconnects_and_delivers_what_it_sent_meanwhile(
    cluster, driver_for, tmp_path
):
    driver, recorder = driver_for(checkpoint=True)
    go = tmp_path / "go"
    executor = ExecutorInfo(
        executor_id=ExecutorID("survivor"),
        command=CommandInfo(value=f"{sys.executable} {EXECUTOR_PROGRAM}"),
        resources=Resources.parse("cpus:0.1;mem:64"),
    )
    resources = Resources.parse("cpus:0.2;mem:32")
    offer = _offer(recorder, resources + resources + executor.resources)

    def task(task_id: str, command: str) -> TaskInfo:
        return TaskInfo(
            name=task_id,
            task_id=TaskID(task_id),
            agent_id=offer.agent_id,
            resources=resources,
            executor=executor,
            data=command.encode(),
        )

    driver.launch_tasks(
        [offer.id],
        [task("steady", "sleep 60"), task("ends", f"while [ ! -e {go} ]; do sleep 0.02; done")],
    )
    recorder.until_state("steady", TaskState.TASK_RUNNING)
    recorder.until_state("ends", TaskState.TASK_RUNNING)
    stdout = next(cluster.work_dir.glob("agent-0/frameworks/*/executors/survivor/runs/*/stdout"))

    cluster.kill_agent(0)
    go.touch()  # the executor reports "ends" FINISHED to an agent that is not there
    _until(lambda: "task ends: TASK_FINISHED" in stdout.read_text(), "the executor sees the end")
    cluster.restart_agent(0)

    recorder.until_state("ends", TaskState.TASK_FINISHED)  # (maybe after a resent RUNNING)
    driver.reconcile_tasks([])
    assert _reconciled(recorder, "steady").state is TaskState.TASK_RUNNING
    assert recorder.executors_lost.empty()
    driver.kill_task(TaskID("steady"))
    recorder.until_state("steady", TaskState.TASK_KILLED)
    assert os.path.getsize(stdout) > 0
