"""Single messages lost on the way, on purpose (``runtime.faults``): nothing acknowledged is lost.

A real cluster (master and agent in their own processes); the framework's driver runs in this
process, and its runtime drops the one message each test names.
"""

from __future__ import annotations

import pytest

from corral.cli.cluster import start_local_cluster, wait_for_agents
from corral.ids import TaskID
from corral.protocol.messages import AcceptOffers, StatusUpdate, StatusUpdateAcknowledgement
from corral.scheduler import SchedulerDriver
from corral.task_states import Reason, TaskState
from master import MasterOptions
from tests.failure_scheduler import TASK, Recorder, command_task, framework_info

WAIT = 20.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = start_local_cluster(
        1,
        work_dir=str(tmp_path_factory.mktemp("lost")),
        resources="cpus:4;mem:1024;disk:1024",
        master_options=MasterOptions(allocation_interval=0.1),
        agent_options={"status_update_retry_min": 0.3, "status_update_retry_max": 1.0},
    )
    try:
        wait_for_agents(cluster.http_address, 1)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def framework(cluster):
    recorder = Recorder(WAIT)
    driver = SchedulerDriver(recorder, framework_info("lossy"), cluster.http_address)
    driver.start()
    recorder.registrations.get(timeout=WAIT)
    try:
        yield driver, recorder
    finally:
        driver.stop()


def _launch(driver: SchedulerDriver, recorder: Recorder, task_id: str, command: str) -> None:
    offer = recorder.next_offer()
    while not offer.resources.unallocated().contains(TASK):
        offer = recorder.next_offer()
    driver.launch_tasks([offer.id], [command_task(offer, task_id, command)])


def test_a_lost_acknowledgement_is_made_good_by_the_agents_resend(framework):
    driver, recorder = framework
    assert driver.runtime is not None
    rule = driver.runtime.faults.drop(StatusUpdateAcknowledgement.NAME, count=1)
    _launch(driver, recorder, "ack-lost", "true")
    seen = recorder.until_terminal("ack-lost")
    assert rule.dropped == 1
    assert [s.state for s in seen] == [
        TaskState.TASK_STARTING,
        TaskState.TASK_STARTING,  # resent: its acknowledgement never arrived
        TaskState.TASK_RUNNING,
        TaskState.TASK_FINISHED,
    ]
    assert seen[0].uuid == seen[1].uuid


def test_a_lost_status_update_is_resent_until_acknowledged(framework):
    driver, recorder = framework
    assert driver.runtime is not None
    rule = driver.runtime.faults.drop(StatusUpdate.NAME, count=1)  # inbound, from the master
    _launch(driver, recorder, "update-lost", "true")
    seen = recorder.until_terminal("update-lost")
    assert rule.dropped == 1
    assert [s.state for s in seen] == [
        TaskState.TASK_STARTING,
        TaskState.TASK_RUNNING,
        TaskState.TASK_FINISHED,
    ]


def test_a_lost_launch_is_found_out_by_reconciliation(framework):
    driver, recorder = framework
    assert driver.runtime is not None
    rule = driver.runtime.faults.drop(AcceptOffers.NAME, count=1)
    _launch(driver, recorder, "launch-lost", "sleep 60")
    driver.reconcile_tasks([TaskID("launch-lost")])
    answer = recorder.next_update("launch-lost")
    assert rule.dropped == 1
    assert answer.state is TaskState.TASK_LOST  # not partition-aware: LOST, not UNKNOWN
    assert answer.reason is Reason.REASON_RECONCILIATION
