"""Mesos software we did not write, unmodified, against a real Corral cluster.

- ``avmesos.client.MesosClient`` (PyPI ``avmesos`` 0.4.2), a framework library for the Mesos v1
  scheduler HTTP API: subscribes, takes offers, launches command tasks and a custom executor's
  task, kills, reconciles and tears down, exactly as its users write it.
- The Apache Mesos CLI (PyPI ``avmesos-cli`` 1.0.0, module ``avmesos.cli``), run as a
  subprocess: ``mesos agent list``, ``mesos framework list``, ``mesos task list``.

The master and the agent run in OS processes of their own; the JSON the clients send is the
one Mesos documents (v1 field names: ``agent_id``, resources as ``{name, type, scalar}``).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from corral.cli.cluster import LocalCluster, start_local_cluster, wait_for_agents
from master import MasterOptions
from tests.compat.avmesos_framework import AvmesosFramework, Calls

WAIT = 20.0  # wall-clock safety net for anything the cluster does
AGENT = "cpus:4;mem:1024;disk:1024;ports:[31000-31010]"
ROOT = Path(__file__).resolve().parents[2]
# The Mesos v1 HTTP executor (examples/v1_executor.py); until it exists, the native one stands in
# so that the framework side (an ExecutorInfo in v1 JSON, through avmesos) is exercised already.
V1_EXECUTOR = ROOT / "examples" / "v1_executor.py"
EXECUTOR = V1_EXECUTOR if V1_EXECUTOR.exists() else ROOT / "examples" / "custom_executor.py"

Make = Callable[..., AvmesosFramework]

# avmesos reads the stream with ``requests``' ``iter_lines``: a record has no newline after it,
# so the client sees an event only when the next one's bytes arrive (as against Mesos itself).
# Frequent heartbeats keep the tests quick; until the master has the knob they take ~15 s more.
FAST_HEARTBEATS = (
    {"http_heartbeat_interval": 0.5}
    if "http_heartbeat_interval" in {f.name for f in dataclasses.fields(MasterOptions)}
    else {}
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[LocalCluster]:
    cluster = start_local_cluster(
        1,
        work_dir=str(tmp_path_factory.mktemp("compat")),
        resources=AGENT,
        master_options=MasterOptions(allocation_interval=0.2, **FAST_HEARTBEATS),
    )
    try:
        wait_for_agents(cluster.http_address, 1)
        yield cluster
    finally:
        assert cluster.stop() == [0, 0]


@pytest.fixture
def calls(monkeypatch) -> Calls:
    """Every answer the master gives avmesos (the client itself does not look at them)."""
    recorded = Calls()
    monkeypatch.setattr(requests, "post", recorded.wrap(requests.post))
    return recorded


@pytest.fixture
def framework(cluster, calls) -> Iterator[Make]:
    """Subscribed avmesos frameworks; any still subscribed at the end is torn down."""
    started: list[AvmesosFramework] = []

    def make(name: str = "avmesos-test", capabilities: tuple[str, ...] = ()) -> AvmesosFramework:
        framework = AvmesosFramework(
            f"http://{cluster.http_address}", name, WAIT, capabilities=capabilities
        )
        started.append(framework)
        framework.start()
        return framework

    yield make
    for framework in started:
        if framework.thread.is_alive():
            framework.tear_down()
            if not framework.wait_stopped(5.0):
                framework.disconnect()


def resources(cpus: float, mem: float) -> list[dict]:
    return [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}},
    ]


def command_task(offer: dict, task_id: str, command: str) -> dict:
    """A v1 TaskInfo as a Mesos framework author writes it."""
    return {
        "name": task_id,
        "task_id": {"value": task_id},
        "agent_id": offer["agent_id"],
        "resources": resources(0.1, 32),
        "command": {"value": command, "shell": True},
    }


NO_FILTER = {"filters": {"refuse_seconds": 0}}


def master_state(cluster: LocalCluster) -> dict:
    url = f"http://{cluster.http_address}/master/state"
    with urllib.request.urlopen(url, timeout=WAIT) as response:
        return json.load(response)


def test_avmesos_subscribes_and_gets_offers_in_v1_json(framework: Make, calls: Calls):
    avmesos = framework("subscriber")
    assert avmesos.framework_id
    assert avmesos.client.streamId, "SUBSCRIBE answers with a Mesos-Stream-Id header"
    offer = avmesos.next_offer().get_offer()
    assert offer["framework_id"] == {"value": avmesos.framework_id}
    assert offer["id"]["value"] and offer["agent_id"]["value"] and offer["hostname"]
    names = {resource["name"] for resource in offer["resources"]}
    assert {"cpus", "mem"} <= names, offer["resources"]
    cpus = next(r for r in offer["resources"] if r["name"] == "cpus")
    assert cpus["type"] == "SCALAR" and cpus["scalar"]["value"] > 0
    assert [answer.status for answer in calls.of("SUBSCRIBE")] == [200]


def test_command_tasks_run_and_every_call_is_answered_202(framework: Make, calls: Calls):
    avmesos = framework("commands")
    offer = avmesos.next_offer()
    agent_id = offer.get_offer()["agent_id"]
    offer.accept(
        [
            command_task(offer.get_offer(), "ok", "true"),
            command_task(offer.get_offer(), "bad", "exit 3"),
        ],
        NO_FILTER,
    )
    ok = avmesos.until_terminal("ok")
    bad = avmesos.until_terminal("bad")
    assert [s["state"] for s in ok][-2:] == ["TASK_RUNNING", "TASK_FINISHED"], ok
    assert bad[-1]["state"] == "TASK_FAILED", bad
    for status in ok + bad:
        assert status["agent_id"] == agent_id, status
        assert status.get("uuid"), f"agent updates carry a uuid to acknowledge: {status}"
    assert avmesos.errors.empty()
    assert calls.of("ACCEPT") and calls.of("ACKNOWLEDGE")
    assert calls.refused() == []
    for answer in calls.of("ACKNOWLEDGE") + calls.of("ACCEPT"):
        assert answer.content_length == "0", answer


def test_a_killed_task_reports_task_killed(framework: Make):
    avmesos = framework("killer")
    offer = avmesos.next_offer()
    offer.accept([command_task(offer.get_offer(), "sleeper", "sleep 60")], NO_FILTER)
    running = avmesos.until_state("sleeper", "TASK_RUNNING")
    avmesos.driver.kill(running[-1]["agent_id"]["value"], "sleeper")
    assert avmesos.until_terminal("sleeper")[-1]["state"] == "TASK_KILLED"


def test_reconciliation_answers_known_and_unknown_tasks(framework: Make):
    avmesos = framework("reconciler")
    offer = avmesos.next_offer()
    offer.accept([command_task(offer.get_offer(), "steady", "sleep 60")], NO_FILTER)
    agent_id = avmesos.until_state("steady", "TASK_RUNNING")[-1]["agent_id"]
    avmesos.driver.reconcile(
        [
            {"task_id": {"value": "steady"}, "agent_id": agent_id},
            {"task_id": {"value": "never-launched"}},
        ]
    )
    known = avmesos.next_update("steady", answer=True)
    assert known["state"] == "TASK_RUNNING", known
    assert known.get("reason") == "REASON_RECONCILIATION", known
    unknown = avmesos.next_update("never-launched", answer=True)
    # Not PARTITION_AWARE: Mesos answers TASK_LOST for a task it does not know.
    assert unknown["state"] == "TASK_LOST" and unknown["reason"] == "REASON_RECONCILIATION"
    avmesos.driver.kill(agent_id["value"], "steady")
    assert avmesos.until_terminal("steady")[-1]["state"] == "TASK_KILLED"


def test_a_custom_executor_runs_its_task(framework: Make):
    avmesos = framework("executor")
    offer = avmesos.next_offer()
    task = {
        "name": "by-executor",
        "task_id": {"value": "by-executor"},
        "agent_id": offer.get_offer()["agent_id"],
        "resources": resources(0.1, 32),
        "executor": {
            "executor_id": {"value": "compat-executor"},
            "name": "compat executor",
            "command": {"value": f"{sys.executable} {EXECUTOR}", "shell": True},
            "resources": resources(0.1, 64),
        },
    }
    offer.accept([task], NO_FILTER)
    states = [status["state"] for status in avmesos.until_terminal("by-executor")]
    assert states[-2:] == ["TASK_RUNNING", "TASK_FINISHED"], states


def test_teardown_ends_the_stream_and_the_frameworks_tasks(framework: Make, cluster, calls):
    avmesos = framework("torn-down")
    offer = avmesos.next_offer()
    offer.accept([command_task(offer.get_offer(), "long", "sleep 60")], NO_FILTER)
    avmesos.until_state("long", "TASK_RUNNING")
    avmesos.tear_down()
    assert avmesos.wait_stopped(WAIT), "the master closes the subscription stream on TEARDOWN"
    # avmesos sends TEARDOWN again when its loop sees the next event: the master no longer
    # knows the framework then and answers 400, as Mesos does ("Framework cannot be found").
    # The answers are recorded as they return, from avmesos's threads, so in any order.
    statuses = sorted(answer.status for answer in calls.of("TEARDOWN"))
    assert statuses[:1] == [202] and set(statuses[1:]) <= {400}, statuses
    # Mesos marks a removed framework's tasks TASK_KILLED in its completed frameworks at once.
    deadline = time.monotonic() + 2.0
    while True:
        state = master_state(cluster)
        assert avmesos.framework_id not in [f["id"] for f in state["frameworks"]]
        (gone,) = [f for f in state["completed_frameworks"] if f["id"] == avmesos.framework_id]
        states = [t["state"] for t in gone["tasks"] + gone["completed_tasks"] if t["id"] == "long"]
        if states == ["TASK_KILLED"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert states == ["TASK_KILLED"], gone


def mesos_cli(cluster: LocalCluster, tmp_path: Path, *argv: str) -> str:
    """Run the Mesos CLI (``mesos <argv>``) against the master; its stdout."""
    config = tmp_path / "mesos-cli.toml"
    config.write_text(f'[master]\naddress = "{cluster.http_address}"\n')
    done = subprocess.run(
        [sys.executable, "-m", "avmesos.cli.mesos-cli", *argv],
        capture_output=True,
        text=True,
        timeout=WAIT,
        env={"MESOS_CLI_CONFIG": str(config), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        check=False,
    )
    assert done.returncode == 0, f"mesos {' '.join(argv)}: {done.stdout}{done.stderr}"
    return done.stdout


def test_the_mesos_cli_lists_agents_frameworks_and_tasks(framework: Make, cluster, tmp_path):
    avmesos = framework("listed")
    accepted = avmesos.next_offer()
    offer = accepted.get_offer()
    # combine_offers: avmesos's other way to accept (no slave_id added to the tasks).
    avmesos.client.combine_offers(
        [accepted], [command_task(offer, "listed-task", "sleep 60")], NO_FILTER
    )
    avmesos.until_state("listed-task", "TASK_RUNNING")

    agents = mesos_cli(cluster, tmp_path, "agent", "list")
    assert offer["agent_id"]["value"] in agents and "True" in agents, agents
    frameworks = mesos_cli(cluster, tmp_path, "framework", "list")
    assert avmesos.framework_id in frameworks and "listed" in frameworks, frameworks
    tasks = mesos_cli(cluster, tmp_path, "task", "list")
    assert "listed-task" in tasks and "TASK_RUNNING" in tasks, tasks
    assert avmesos.framework_id in tasks, tasks

    avmesos.driver.kill(offer["agent_id"]["value"], "listed-task")
    assert avmesos.until_terminal("listed-task")[-1]["state"] == "TASK_KILLED"
    finished = mesos_cli(cluster, tmp_path, "task", "list", "--all")
    assert "listed-task" in finished and "TASK_KILLED" in finished, finished
