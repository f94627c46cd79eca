"""End to end: frameworks' tasks with health checks and checks on a real master and agent.

The master and the agent run in OS processes of their own; the tasks are real HTTP servers
(``python3 -m http.server`` on a port of the task's ``ports`` resource, given in its command
line), one of which starts failing; the framework is a native SchedulerDriver, or a v1 HTTP
scheduler. The agent's ports are free ports found now (other clusters may run on this
machine). Waits are wall-clock safety nets: the checks run on the agent's own clock.
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import os
import shutil
import socket
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.leftovers import kill_leftover_containers
from containerizer.cgroups import CgroupRoot, CgroupsUnavailable
from corral.cli.cluster import LocalCluster, start_local_cluster, wait_for_agents
from corral.cli.listings import fetch_state, tasks_table
from corral.ids import TaskID
from corral.protocol import (
    CheckInfo,
    CheckType,
    CommandInfo,
    FrameworkInfo,
    HealthCheck,
    HttpCheck,
    Offer,
    TaskInfo,
    TaskStatus,
    TcpCheck,
)
from corral.resources import Resources
from corral.scheduler import SchedulerDriver
from corral.task_states import Reason, Source, TaskState
from master import MasterOptions
from tests.test_cluster import WAIT, Recorder
from tests.test_scheduler_api import JSON_HEADERS, Subscription, post

PYTHON = sys.executable
TASK = "cpus:0.5;mem:64"


def free_ports(count: int) -> list[int]:
    sockets = [socket.create_server(("127.0.0.1", 0)) for _ in range(count)]
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def agent_resources(ports: list[int]) -> str:
    ranges = ",".join(f"{port}-{port}" for port in sorted(ports))
    return f"cpus:4;mem:1024;disk:1024;ports:[{ranges}]"


def start(tmp_path_factory, name: str, **flags) -> LocalCluster:
    cluster = start_local_cluster(
        1,
        work_dir=str(tmp_path_factory.mktemp(name)),
        resources=agent_resources(free_ports(6)),
        master_options=MasterOptions(allocation_interval=0.2),
        **flags,
    )
    wait_for_agents(cluster.http_address, 1)
    return cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[LocalCluster]:
    cluster = start(tmp_path_factory, "checks")
    try:
        yield cluster
    finally:
        assert cluster.stop() == [0, 0]


@pytest.fixture
def framework(cluster):
    drivers: list[SchedulerDriver] = []

    def make() -> tuple[SchedulerDriver, Recorder]:
        recorder = Recorder()
        info = FrameworkInfo(user=getpass.getuser(), name="checked")
        driver = SchedulerDriver(recorder, info, cluster.http_address)
        driver.start()
        drivers.append(driver)
        recorder.ids.get(timeout=WAIT)
        return driver, recorder

    yield make
    for driver in drivers:
        driver.stop()


def port_of(offer: Offer) -> int:
    (begin, _end), *_ = offer.resources.ranges("ports")
    return begin


def server_task(offer: Offer, name: str, script: str, port: int, **fields) -> TaskInfo:
    """A task that serves ``www/`` of its sandbox on ``port`` (the task's own port)."""
    return TaskInfo(
        name=name,
        task_id=TaskID(f"{name}-{time.monotonic_ns()}"),
        agent_id=offer.agent_id,
        resources=Resources.parse(f"{TASK};ports:[{port}-{port}]"),
        command=CommandInfo(value=script),
        **fields,
    )


def serve(port: int, before: str = "", after: str = "wait") -> str:
    http = f"{PYTHON} -m http.server {port} --bind 127.0.0.1 --directory www"
    return f"mkdir -p www && echo ok > www/health && {before} {http} & {after}"


def http_check(port: int, **values) -> HealthCheck:
    values = {
        "delay_seconds": 0.0,
        "interval_seconds": 0.5,
        "timeout_seconds": 2.0,
        "consecutive_failures": 2,
        "grace_period_seconds": 20.0,  # the server takes a moment to start
        **values,
    }
    return HealthCheck(type=CheckType.HTTP, http=HttpCheck(port=port, path="/health"), **values)


def until(recorder: Recorder, task_id: str, wanted) -> list[TaskStatus]:
    """Updates of the task up to the first that ``wanted`` accepts (which is last)."""
    seen = []
    deadline = time.monotonic() + WAIT
    while not seen or not wanted(seen[-1]):
        assert time.monotonic() < deadline, f"still waiting; seen {[s.state for s in seen]}"
        seen.append(recorder.next_update(task_id))
    return seen


def master_task(cluster: LocalCluster, path: str, task_id: str) -> dict:
    with urllib.request.urlopen(f"http://{cluster.http_address}{path}", timeout=WAIT) as answer:
        body = json.load(answer)
    if "frameworks" in body:  # /master/state: Mesos's shapes are the frameworks' tasks
        tasks = [t for f in body["frameworks"] for t in f["tasks"] + f["completed_tasks"]]
    else:
        tasks = body["tasks"]
    (found,) = [t for t in tasks if t["id"] == task_id]
    return found


def v1_tasks(address: str) -> list[dict]:
    """GET_TASKS of a master's or an agent's v1 operator API: the tasks it holds now."""
    request = urllib.request.Request(
        f"http://{address}/api/v1",
        data=json.dumps({"type": "GET_TASKS"}).encode(),
        headers=JSON_HEADERS,
    )
    with urllib.request.urlopen(request, timeout=WAIT) as answer:
        lists = json.load(answer)["get_tasks"]  # the master's and the agent's lists differ
    return [task for kind in lists.values() for task in kind]


def agent_state(cluster: LocalCluster) -> dict:
    (agent,) = cluster.agents
    with urllib.request.urlopen(f"http://{agent.http_address}/state", timeout=WAIT) as answer:
        return json.load(answer)


def agent_task(cluster: LocalCluster, task_id: str) -> dict:
    state = agent_state(cluster)
    tasks = [
        t
        for f in state["frameworks"]
        for e in f["executors"]
        for t in e["tasks"] + e["completed_tasks"]
        if t["id"] == task_id
    ]
    (found,) = tasks
    return found


def test_an_http_health_check_makes_a_task_healthy_everywhere(cluster, framework):
    driver, recorder = framework()
    offer = recorder.next_offer()
    port = port_of(offer)
    task = server_task(offer, "web", serve(port), port, health_check=http_check(port))
    driver.launch_tasks([offer.id], [task])
    updates = until(recorder, task.task_id, lambda s: s.healthy is not None)
    assert [s.state for s in updates[:2]] == [TaskState.TASK_STARTING, TaskState.TASK_RUNNING]
    healthy = updates[-1]
    assert (healthy.state, healthy.healthy) == (TaskState.TASK_RUNNING, True)
    assert healthy.reason is Reason.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED
    assert healthy.source is Source.SOURCE_EXECUTOR

    task_id = str(task.task_id)
    for path in ("/master/state", "/master/tasks"):
        shown = master_task(cluster, path, task_id)
        assert shown["statuses"][-1]["healthy"] is True, path
    assert agent_task(cluster, task_id)["statuses"][-1]["healthy"] is True
    for address in (cluster.http_address, cluster.agents[0].http_address):  # v1 operator API
        (v1,) = [t for t in v1_tasks(address) if t["task_id"]["value"] == task_id]
        assert v1["statuses"][-1]["healthy"] is True, address
        assert v1["statuses"][-1]["reason"] == "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"
    listing = tasks_table(fetch_state(cluster.http_address))
    (row,) = [line for line in listing.splitlines() if line.startswith(task_id)]
    assert " healthy " in f"{row} "
    assert "HEALTH" in listing.splitlines()[0]

    driver.kill_task(task.task_id)
    final = until(recorder, task.task_id, lambda s: s.state is TaskState.TASK_KILLED)[-1]
    assert final.healthy is None  # killed by the framework, not by its health check


def test_a_server_that_stops_answering_is_killed_unhealthy(cluster, framework):
    """The server serves www/health, which the task deletes once it has been found
    healthy: every check then gets 404, and after two the task is killed."""
    driver, recorder = framework()
    offer = recorder.next_offer()
    port = port_of(offer)
    script = serve(port, after="until [ -e healthy-seen ]; do sleep 0.1; done; rm www/health; wait")
    task = server_task(offer, "fading", script, port, health_check=http_check(port))
    driver.launch_tasks([offer.id], [task])
    until(recorder, task.task_id, lambda s: s.healthy is True)
    sandbox = agent_sandbox(cluster, str(task.task_id))
    (sandbox / "healthy-seen").touch()
    updates = until(recorder, task.task_id, lambda s: s.state is TaskState.TASK_KILLED)
    unhealthy = [s for s in updates if s.state is TaskState.TASK_RUNNING]
    assert [s.healthy for s in unhealthy] == [False, False]  # two failures: the second kills
    assert all(s.reason is Reason.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED for s in unhealthy)
    killed = updates[-1]
    assert killed.healthy is False
    assert killed.reason is None  # as Mesos's command executor: no reason of its own
    assert "SIGTERM" in (killed.message or "")
    shown = master_task(cluster, "/master/tasks", str(task.task_id))
    assert shown["state"] == "TASK_KILLED"
    assert shown["statuses"][-1]["healthy"] is False


def agent_sandbox(cluster: LocalCluster, task_id: str) -> Path:
    state = agent_state(cluster)
    (directory,) = [
        e["directory"]
        for f in state["frameworks"]
        for e in f["executors"]
        if any(t["id"] == task_id for t in e["tasks"])
    ]
    return Path(directory)


def test_a_tcp_health_check(cluster, framework):
    driver, recorder = framework()
    offer = recorder.next_offer()
    port = port_of(offer)
    check = dataclasses.replace(
        http_check(port), type=CheckType.TCP, http=None, tcp=TcpCheck(port=port)
    )
    task = server_task(offer, "tcp", serve(port), port, health_check=check)
    driver.launch_tasks([offer.id], [task])
    healthy = until(recorder, task.task_id, lambda s: s.healthy is not None)[-1]
    assert healthy.healthy is True
    driver.kill_task(task.task_id)
    until(recorder, task.task_id, lambda s: s.state is TaskState.TASK_KILLED)


def test_a_general_check_reports_status_codes_and_never_kills(cluster, framework):
    """An HTTP check of a path the task creates later: 404, then 200; the task lives on."""
    driver, recorder = framework()
    offer = recorder.next_offer()
    port = port_of(offer)
    check = CheckInfo(
        type=CheckType.HTTP,
        http=HttpCheck(port=port, path="/later"),
        delay_seconds=0.5,
        interval_seconds=0.5,
        timeout_seconds=2.0,
    )
    script = serve(port, after="sleep 3; echo here > www/later; wait")
    task = server_task(offer, "observed", script, port, check=check)
    driver.launch_tasks([offer.id], [task])
    updates = until(
        recorder,
        task.task_id,
        lambda s: s.check_status is not None and s.check_status.http.status_code == 200,
    )
    running = [s for s in updates if s.state is TaskState.TASK_RUNNING]
    assert running[0].check_status.to_wire() == {"type": "HTTP", "http": {}}
    codes = [s.check_status.http.status_code for s in running[1:]]
    assert codes[-2:] == [404, 200]  # maybe an empty one first, while the server starts
    assert all(s.reason is Reason.REASON_TASK_CHECK_STATUS_UPDATED for s in running[1:])
    assert all(s.state is TaskState.TASK_RUNNING for s in updates[1:])
    shown = master_task(cluster, "/master/tasks", str(task.task_id))
    assert shown["statuses"][-1]["check_status"]["http"]["status_code"] == 200
    driver.kill_task(task.task_id)
    until(recorder, task.task_id, lambda s: s.state is TaskState.TASK_KILLED)


def test_an_invalid_health_check_is_task_error(cluster, framework):
    driver, recorder = framework()
    offer = recorder.next_offer()
    port = port_of(offer)
    bad = dataclasses.replace(http_check(port), http=HttpCheck(port=port, path="health"))
    task = server_task(offer, "bad", serve(port), port, health_check=bad)
    driver.launch_tasks([offer.id], [task])
    final = until(recorder, task.task_id, lambda s: s.state.is_terminal)[-1]
    assert final.state is TaskState.TASK_ERROR
    assert "path 'health' must start with '/'" in (final.message or "")


def test_a_v1_http_framework_gets_health_updates(cluster):
    subscription = Subscription(
        cluster.http_address,
        {
            "type": "SUBSCRIBE",
            "subscribe": {"framework_info": {"user": getpass.getuser(), "name": "v1-checked"}},
        },
        JSON_HEADERS,
    )
    try:
        assert subscription.status == 200
        framework_id = subscription.next("SUBSCRIBED")["subscribed"]["framework_id"]["value"]
        offer = subscription.next("OFFERS", WAIT)["offers"]["offers"][0]
        ports = next(r for r in offer["resources"] if r["name"] == "ports")
        port = ports["ranges"]["range"][0]["begin"]
        task = {
            "name": "v1-web",
            "task_id": {"value": f"v1-web-{time.monotonic_ns()}"},
            "agent_id": offer["agent_id"],
            "resources": [
                {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}},
                {"name": "mem", "type": "SCALAR", "scalar": {"value": 64}},
                {
                    "name": "ports",
                    "type": "RANGES",
                    "ranges": {"range": [{"begin": port, "end": port}]},
                },
            ],
            "command": {"value": serve(port)},
            "health_check": {
                "type": "HTTP",
                "http": {"port": port, "path": "/health"},
                "delay_seconds": 0,
                "interval_seconds": 0.5,
                "grace_period_seconds": 20,
            },
        }
        call = {
            "type": "ACCEPT",
            "framework_id": {"value": framework_id},
            "accept": {
                "offer_ids": [offer["id"]],
                "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}],
            },
        }
        headers = {**JSON_HEADERS, "Mesos-Stream-Id": subscription.stream_id}
        shapeless = json.loads(json.dumps(call))  # a COMMAND health check with no command
        shapeless["accept"]["operations"][0]["launch"]["task_infos"][0]["health_check"] = {
            "type": "COMMAND"
        }
        status, text, _ = post(cluster.http_address, shapeless, headers)
        assert status == 400 and "needs 'command'" in text, (status, text)
        status, text, _ = post(cluster.http_address, call, headers)
        assert status == 202, text
        deadline = time.monotonic() + WAIT
        while True:
            assert time.monotonic() < deadline, "no healthy update"
            update = subscription.next("UPDATE", WAIT)["update"]["status"]
            if "uuid" in update:
                acknowledge = {
                    "type": "ACKNOWLEDGE",
                    "framework_id": {"value": framework_id},
                    "acknowledge": {
                        "agent_id": update["agent_id"],
                        "task_id": update["task_id"],
                        "uuid": update["uuid"],
                    },
                }
                post(cluster.http_address, acknowledge, headers)
            if "healthy" in update:
                break
        assert update["healthy"] is True
        assert update["state"] == "TASK_RUNNING"
        assert update["reason"] == "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"
        kill = {
            "type": "KILL",
            "framework_id": {"value": framework_id},
            "kill": {"task_id": task["task_id"], "agent_id": offer["agent_id"]},
        }
        post(cluster.http_address, kill, headers)
    finally:
        subscription.connection.close()


# -- a COMMAND health check inside the task's container (cgroups, linux launcher) --------------

ISOLATION = "cgroups/cpu,cgroups/mem,cgroups/pids,filesystem/posix,namespaces/net"


def _isolation_missing() -> str | None:
    if os.geteuid() != 0:
        return "cgroups and namespaces need root"
    try:
        CgroupRoot().require(["cpu", "memory", "pids", "freezer"])
    except CgroupsUnavailable as error:
        return str(error)
    for program in ("unshare", "nsenter"):
        if shutil.which(program) is None:
            return f"the linux launcher needs util-linux's {program} (apt-get install util-linux)"
    if shutil.which("ip") is None:
        return "namespaces/net needs iproute2's ip (apt-get install iproute2)"
    return None


@pytest.mark.skipif(_isolation_missing() is not None, reason=_isolation_missing() or "")
def test_checks_run_in_the_task_container(tmp_path_factory):
    """The task mounts a tmpfs in its own mount namespace and leaves a marker there: only a
    command in that namespace sees it; the check also finds itself in the task's cgroup. The
    task serves HTTP on its own loopback (namespaces/net): a general HTTP check reaches it."""
    isolated = start(tmp_path_factory, "isolated", isolation=ISOLATION, launcher="linux")
    driver = None
    try:
        recorder = Recorder()
        driver = SchedulerDriver(
            recorder, FrameworkInfo(user=getpass.getuser(), name="inside"), isolated.http_address
        )
        driver.start()
        recorder.ids.get(timeout=WAIT)
        offer = recorder.next_offer()
        port = port_of(offer)
        script = (
            "mkdir -p private && mount -t tmpfs none private && touch private/marker && "
            f"exec {PYTHON} -m http.server {port} --bind 127.0.0.1"
        )
        # In the task's mount namespace (its tmpfs), pid namespace (pid 1 is the task's
        # server) and cgroups (the same memory cgroup as the task's, under Corral's root).
        probe = (
            "test -f private/marker && grep -q http.server /proc/1/cmdline && "
            "grep -q /corral/ /proc/self/cgroup && "
            'test "$(grep memory /proc/self/cgroup)" = "$(grep memory /proc/1/cgroup)"'
        )
        check = HealthCheck(
            type=CheckType.COMMAND,
            command=CommandInfo(value=probe),
            delay_seconds=0.5,
            interval_seconds=0.5,
            consecutive_failures=1,
            grace_period_seconds=10.0,
        )
        served = CheckInfo(
            type=CheckType.HTTP,
            http=HttpCheck(port=port, path="/"),
            delay_seconds=0.5,
            interval_seconds=0.5,
        )
        task = TaskInfo(
            name="inside",
            task_id=TaskID("inside-1"),
            agent_id=offer.agent_id,
            resources=Resources.parse(f"{TASK};ports:[{port}-{port}]"),
            command=CommandInfo(value=script),
            health_check=check,
            check=served,
        )
        driver.launch_tasks([offer.id], [task])
        updates = until(
            recorder,
            task.task_id,
            lambda s: (
                s.state.is_terminal
                or (s.healthy is not None and s.check_status.http.status_code == 200)
            ),
        )
        final = updates[-1]
        assert (final.state, final.healthy) == (TaskState.TASK_RUNNING, True)
        assert final.check_status.http.status_code == 200
        sandbox = agent_sandbox(isolated, "inside-1")
        assert not (sandbox / "private" / "marker").exists(), "the marker is the task's own"
        driver.kill_task(task.task_id)
        until(recorder, task.task_id, lambda s: s.state is TaskState.TASK_KILLED)
    finally:
        if driver is not None:
            driver.stop()
        assert isolated.stop() == [0, 0]


def test_checks_go_on_after_the_agent_restarts(tmp_path_factory):
    """An agent SIGKILLed and restarted finds its checkpointing framework's task running and
    checks it again: healthy once more, then killed when it stops answering."""
    restarting = start(
        tmp_path_factory,
        "restart",
        agent_options={
            "registration_backoff": 0.1,
            "registration_backoff_max": 0.5,
            "status_update_retry_min": 0.5,
            "status_update_retry_max": 2.0,
        },
    )
    driver = None
    try:
        recorder = Recorder()
        info = FrameworkInfo(user=getpass.getuser(), name="restarted", checkpoint=True)
        driver = SchedulerDriver(recorder, info, restarting.http_address)
        driver.start()
        recorder.ids.get(timeout=WAIT)
        offer = recorder.next_offer()
        port = port_of(offer)
        task = server_task(offer, "kept", serve(port), port, health_check=http_check(port))
        driver.launch_tasks([offer.id], [task])
        until(recorder, task.task_id, lambda s: s.healthy is True)
        sandbox = agent_sandbox(restarting, str(task.task_id))

        restarting.kill_agent(0)
        restarting.restart_agent(0)
        again = until(recorder, task.task_id, lambda s: s.healthy is True)[-1]
        assert again.state is TaskState.TASK_RUNNING
        (sandbox / "www" / "health").unlink()  # from now on every check gets 404
        updates = until(recorder, task.task_id, lambda s: s.state.is_terminal)
        assert updates[-1].state is TaskState.TASK_KILLED
        assert updates[-1].healthy is False
    finally:
        if driver is not None:
            driver.stop()
        restarting.stop()
        kill_leftover_containers(restarting.work_dir / "agent-0")
