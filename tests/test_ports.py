"""network/ports and PORT0... for real: containers that listen on TCP ports of 127.0.0.1.

First the Mesos containerizer alone (its ``check_ports``, called as the agent's timer would,
on a plain asyncio loop), with a session per container and with cgroups; then end to end: a
master and an agent with ``network/ports`` in OS processes of their own, a framework here,
and tasks that serve on the port they were given or bind one they were not. Every
container is destroyed, every process stopped by its pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import itertools
import json
import os
import re
import signal
import socket
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from agent import AgentOptions, AgentProcess
from containerizer import ContainerConfig, TerminationReason
from containerizer.cgroups import CgroupRoot, CgroupsUnavailable
from containerizer.mesos import MesosContainerizer
from corral.cli.cluster import start_local_cluster, wait_for_agents
from corral.ids import AgentID, ExecutorID, FrameworkID, TaskID
from corral.protocol import (
    CommandInfo,
    DiscoveryInfo,
    ExecutorInfo,
    ExecutorType,
    FrameworkInfo,
    Operation,
    Port,
    TaskInfo,
)
from corral.protocol.messages import RegisterAgent, RunTask, StatusUpdate
from corral.resources import Resources
from corral.scheduler import SchedulerDriver
from corral.task_states import Reason, Source, TaskState
from master import MasterOptions
from tests.agent_actors import FakeMaster
from tests.test_cluster import WAIT, Recorder

PYTHON = sys.executable
_numbers = itertools.count(1)

# Listens on 127.0.0.1:$LISTEN_PORT (or, with LISTEN_ANY set, on the first free port of
# LISTEN_ANY's "begin-end" that is not in $PORTS), writes the port to ./listening, sleeps.
LISTENER = r"""
import os, socket, time
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if "LISTEN_ANY" in os.environ:
    begin, end = map(int, os.environ["LISTEN_ANY"].split("-"))
    own = {int(p) for p in os.environ.get("PORTS", "").split(",") if p}
    for port in range(begin, end + 1):
        if port in own:
            continue
        try:
            sock.bind(("127.0.0.1", port))
            break
        except OSError:
            continue
    else:
        raise SystemExit("no free port to steal in " + os.environ["LISTEN_ANY"])
else:
    sock.bind(("127.0.0.1", int(os.environ["LISTEN_PORT"])))
sock.listen()
with open("listening.tmp", "w") as out:
    out.write(str(sock.getsockname()[1]))
os.rename("listening.tmp", "listening")
time.sleep(120)
"""


def free_ports(count: int) -> list[int]:
    """``count`` TCP ports of 127.0.0.1 free at the moment of asking, distinct."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


async def wait_listening(sandbox: Path) -> int:
    deadline = time.monotonic() + WAIT
    while not (sandbox / "listening").exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing listened in {sandbox} within {WAIT} s")
        await asyncio.sleep(0.02)
    return int((sandbox / "listening").read_text())


def listener(sandbox: Path, ports: list[int], **env: str) -> ContainerConfig:
    return ContainerConfig(
        command=[PYTHON, "-c", LISTENER],
        sandbox=sandbox,
        environment={"PATH": "/usr/bin:/bin", "PORTS": ",".join(map(str, ports)), **env},
        ports=tuple((port, port) for port in ports),
    )


def own_and_foreign(mc: MesosContainerizer, tmp_path: Path, mine: int, theirs: int):
    """Launch one container listening on its own port and one on ``theirs`` (given
    ``mine`` only); check; the checks' violations and the foreign one's termination."""

    async def scenario():
        tag = f"{os.getpid()}-{next(_numbers)}"
        good, bad = f"good-{tag}", f"bad-{tag}"
        try:
            await mc.launch(good, listener(tmp_path / "good", [mine], LISTEN_PORT=str(mine)))
            await mc.launch(bad, listener(tmp_path / "bad", [mine], LISTEN_PORT=str(theirs)))
            await wait_listening(tmp_path / "good")
            await wait_listening(tmp_path / "bad")
            violations = await mc.check_ports()
            termination = await asyncio.wait_for(mc.wait(bad), WAIT)
            again = await mc.check_ports()
            still = mc.status(good).state.value
            return violations, termination, again, still
        finally:
            for container_id in mc.containers():
                await mc.destroy(container_id, grace_seconds=0)
            mc.detach()

    return asyncio.run(scenario())


def assert_killed_for(violations, termination, again, still, theirs: int) -> None:
    (violation,) = violations
    assert violation.container_id.startswith("bad-")
    assert list(violation.ports) == [(theirs, theirs)]
    assert termination.reason is TerminationReason.CONTAINER_LIMITATION
    assert str(theirs) in termination.message and violation.container_id in termination.message
    assert termination.signal is not None  # killed, not exited
    assert again == []  # the good one is fine
    assert still == "RUNNING"


def test_a_container_on_a_foreign_port_is_killed_per_session(tmp_path):
    mine, theirs = free_ports(2)
    low, high = min(mine, theirs), max(mine, theirs)
    mc = MesosContainerizer(
        isolation="posix/cpu,filesystem/posix,network/ports", isolated_ports=[(low, high)]
    )
    assert_killed_for(*own_and_foreign(mc, tmp_path, mine, theirs), theirs)


def test_a_container_on_a_foreign_port_is_killed_per_cgroup(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("cgroups need root")
    try:
        root = CgroupRoot(name=f"corral-ports-{os.getpid()}")
    except CgroupsUnavailable as error:
        pytest.skip(f"no usable cgroup v1 here: {error}")
    if "freezer" not in root.available():
        pytest.skip("the freezer cgroup is not mounted")
    try:
        mine, theirs = free_ports(2)
        mc = MesosContainerizer(
            isolation="cgroups/pids,network/ports", cgroup_root=root, isolated_ports=None
        )
        assert_killed_for(*own_and_foreign(mc, tmp_path, mine, theirs), theirs)
    finally:
        for container_id in root.containers():
            root.create(container_id).destroy()
        root.remove()


def test_outside_the_isolated_range_nothing_is_checked(tmp_path):
    mine, theirs = free_ports(2)
    mc = MesosContainerizer(
        isolation="filesystem/posix,network/ports", isolated_ports=[(mine, mine)]
    )

    async def scenario():
        container_id = f"outside-{os.getpid()}"
        try:
            await mc.launch(container_id, listener(tmp_path, [mine], LISTEN_PORT=str(theirs)))
            await wait_listening(tmp_path)
            return await mc.check_ports(), mc.status(container_id).state.value
        finally:
            for running in mc.containers():
                await mc.destroy(running, grace_seconds=0)
            mc.detach()

    assert asyncio.run(scenario()) == ([], "RUNNING")


def test_without_enforcement_a_violation_is_only_reported(tmp_path):
    mine, theirs = free_ports(2)
    mc = MesosContainerizer(isolation="network/ports", enforce_ports=False)

    async def scenario():
        container_id = f"logged-{os.getpid()}"
        try:
            await mc.launch(container_id, listener(tmp_path, [mine], LISTEN_PORT=str(theirs)))
            await wait_listening(tmp_path)
            first, second = await mc.check_ports(), await mc.check_ports()
            return first, second, mc.status(container_id).state.value
        finally:
            for running in mc.containers():
                await mc.destroy(running, grace_seconds=0)
            mc.detach()

    first, second, state = asyncio.run(scenario())
    assert [v.ports for v in first] and list(first[0].ports) == [(theirs, theirs)]
    assert second == []  # reported once
    assert state == "RUNNING"


def test_a_scan_stays_cheap(tmp_path):
    """One scan of the machine's sockets, whatever the number of containers: 40 listening
    containers are checked in well under a watch interval."""
    ports = free_ports(40)
    mc = MesosContainerizer(isolation="network/ports", isolated_ports=None)

    async def scenario():
        try:
            for index, port in enumerate(ports):
                config = listener(tmp_path / str(index), [port], LISTEN_PORT=str(port))
                await mc.launch(f"many-{os.getpid()}-{index}", config)
            for index in range(len(ports)):
                await wait_listening(tmp_path / str(index))
            started = time.perf_counter()
            violations = await mc.check_ports()
            return violations, time.perf_counter() - started
        finally:
            for running in mc.containers():
                await mc.destroy(running, grace_seconds=0)
            mc.detach()

    violations, seconds = asyncio.run(scenario())
    print(f"one check of {len(ports)} listening containers: {seconds * 1000:.1f} ms")
    assert violations == []
    assert seconds < 2.0


def test_updated_ports_let_an_executor_listen_on_its_tasks_ports(tmp_path):
    """A custom executor's container is widened to the ports of the tasks it was given."""
    mine, theirs = free_ports(2)
    mc = MesosContainerizer(isolation="network/ports", isolated_ports=None)

    async def scenario():
        container_id = f"widened-{os.getpid()}"
        try:
            await mc.launch(container_id, listener(tmp_path, [mine], LISTEN_PORT=str(theirs)))
            await wait_listening(tmp_path)
            mc.update_ports(container_id, [(mine, mine), (theirs, theirs)])
            return await mc.check_ports(), mc.status(container_id).state.value
        finally:
            for running in mc.containers():
                await mc.destroy(running, grace_seconds=0)
            mc.detach()

    assert asyncio.run(scenario()) == ([], "RUNNING")


def test_a_recovered_container_is_watched_with_its_checkpointed_ports(tmp_path):
    mine, theirs = free_ports(2)
    runtime_dir = tmp_path / "run"
    container_id = f"recovered-{os.getpid()}"

    def containerizer() -> MesosContainerizer:
        return MesosContainerizer(isolation="network/ports", runtime_dir=runtime_dir)

    async def before_restart():
        first = containerizer()
        await first.launch(container_id, listener(tmp_path, [mine], LISTEN_PORT=str(theirs)))
        await wait_listening(tmp_path)
        state = first.status(container_id).checkpoint
        first.detach()  # the agent goes down; the container runs on
        return state

    async def after_restart(state):
        second = containerizer()
        try:
            result = await second.recover([state])
            assert result.running == {container_id}
            violations = await second.check_ports()
            return violations, await asyncio.wait_for(second.wait(container_id), WAIT)
        finally:
            for running in second.containers():
                await second.destroy(running, grace_seconds=0)
            second.detach()

    state = asyncio.run(before_restart())
    try:
        violations, termination = asyncio.run(after_restart(state))
    finally:  # whatever happened, the container's session goes, by its pid (if still its)
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if abs(psutil.Process(state.pid).create_time() - state.start_time) < 0.01:
                os.killpg(state.pid, signal.SIGKILL)
    assert [v.container_id for v in violations] == [container_id]
    assert termination.reason is TerminationReason.CONTAINER_LIMITATION
    assert str(theirs) in termination.message


# -- the agent's watcher, on the runtime clock -----------------------------------------------


def test_the_agent_checks_every_watch_interval_of_the_runtime_clock(
    runtime, tmp_path, paused_clock
):
    """With the clock paused, no check runs however long the thief listens; one interval
    later it is killed and its task fails with the limitation."""
    mine, theirs = free_ports(2)
    low, high = min(mine, theirs), max(mine, theirs)
    master = FakeMaster()
    master_pid = runtime.spawn(master)
    options = AgentOptions(
        master=str(master_pid),
        work_dir=tmp_path,
        resources=f"cpus:2;mem:1024;disk:1024;ports:[{low}-{high}]",
        isolation="filesystem/posix,network/ports",
        container_ports_watch_interval=30.0,
    )
    containerizer = MesosContainerizer(
        isolation=options.isolation, isolated_ports=options.isolated_ports()
    )
    agent = AgentProcess(options, containerizer)
    runtime.spawn(agent)
    try:
        master.next(RegisterAgent)
        task = TaskInfo(
            name="thief",
            task_id=TaskID("thief"),
            agent_id=AgentID("test-S0"),
            resources=Resources.parse(f"cpus:0.1;mem:32;ports:[{mine}-{mine}]"),
            command=CommandInfo(value=f"LISTEN_PORT={theirs} exec {PYTHON} -c '{LISTENER}'"),
        )
        framework = FrameworkInfo(user="tester", name="ports", id=FrameworkID("fw-ports"))
        runtime.dispatch(
            master, master.send_message, agent.pid, RunTask(framework, task, "s(1)@127.0.0.1:9")
        )
        states = [master.next(StatusUpdate)[1].status.state for _ in range(2)]
        assert states == [TaskState.TASK_STARTING, TaskState.TASK_RUNNING]
        (container_id,) = containerizer.containers()
        sandbox_dir = containerizer.status(container_id).sandbox
        deadline = time.monotonic() + WAIT
        while not (sandbox_dir / "listening").exists():
            assert time.monotonic() < deadline, "the task did not listen"
            time.sleep(0.02)
        paused_clock.advance(29.0)
        paused_clock.settle()
        time.sleep(0.5)  # a check, had one run, would have killed it by now
        assert agent.port_watcher is not None and agent.port_watcher.checks == 0
        assert master.drain(StatusUpdate) == []
        paused_clock.advance(1.0)
        paused_clock.settle()
        status = master.next(StatusUpdate, WAIT)[1].status
        assert status.state is TaskState.TASK_FAILED
        assert status.reason is Reason.REASON_CONTAINER_LIMITATION
        assert f"listening on port(s) {theirs}" in (status.message or "")
        assert agent.port_watcher.checks == 1
    finally:
        with contextlib.suppress(Exception):
            runtime.dispatch(agent, agent.shutdown, 0.5).result(15)


# -- end to end -------------------------------------------------------------------------------


def _agent_range() -> tuple[int, int]:
    """Ten consecutive ports of 127.0.0.1, free now, for the agent's ``ports``."""
    for base in range(38100, 60000, 37):
        taken = False
        for port in range(base, base + 10):
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    taken = True
                    break
        if not taken:
            return base, base + 9
    raise AssertionError("no ten free consecutive ports on 127.0.0.1")


@pytest.fixture(scope="module")
def ports_cluster(tmp_path_factory):
    low, high = _agent_range()
    cluster = start_local_cluster(
        1,
        work_dir=str(tmp_path_factory.mktemp("ports")),
        resources=f"cpus:4;mem:1024;disk:1024;ports:[{low}-{high}]",
        master_options=MasterOptions(allocation_interval=0.2),
        isolation="posix/cpu,posix/mem,filesystem/posix,network/ports",
        agent_options={"container_ports_watch_interval": 0.2},
    )
    try:
        wait_for_agents(cluster.http_address, 1)
        yield cluster, (low, high)
    finally:
        assert cluster.stop() == [0, 0]


@pytest.fixture
def driver(ports_cluster):
    cluster, _ = ports_cluster
    recorder = Recorder()
    info = FrameworkInfo(user=getpass.getuser(), name="ports")
    driver = SchedulerDriver(recorder, info, cluster.http_address)
    driver.start()
    recorder.ids.get(timeout=WAIT)
    yield driver, recorder
    driver.stop()


def _task(offer, command: str, ports: list[int], **fields) -> TaskInfo:
    task_id = TaskID(f"ports-{next(_numbers)}")
    given = ",".join(f"{port}-{port}" for port in ports)
    return TaskInfo(
        name=str(task_id),
        task_id=task_id,
        agent_id=offer.agent_id,
        resources=Resources.parse(f"cpus:0.2;mem:64;ports:[{given}]"),
        command=CommandInfo(value=command),
        **fields,
    )


def _running(recorder: Recorder, task_id) -> None:
    states = [recorder.next_update(task_id).state for _ in range(2)]
    assert states == [TaskState.TASK_STARTING, TaskState.TASK_RUNNING]


def _get(url: str) -> str:
    deadline = time.monotonic() + WAIT
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_the_agent_shows_its_ports_flags_and_isolator(ports_cluster):
    cluster, _ = ports_cluster
    agent = cluster.agents[0].http_address
    flags = json.loads(_get(f"http://{agent}/flags"))["flags"]
    assert flags["container_ports_watch_interval"] == "200ms"
    assert flags["check_agent_port_range_only"] == "true"
    assert flags["enforce_container_ports"] == "true"
    assert "network/ports" in flags["isolation"].split(",")


def test_ports_reach_the_task_and_only_a_foreign_listener_is_killed(ports_cluster, driver):
    _, (low, high) = ports_cluster
    driver, recorder = driver
    offer = recorder.next_offer()
    offered = [port for b, e in offer.resources.ranges("ports") for port in range(b, e + 1)]
    assert offered == list(range(low, high + 1))
    web_ports = offered[:2]
    # Serves its sandbox on PORT0, after writing its environment there as JSON.
    server = (
        f'{PYTHON} -c \'import json, os; json.dump(dict(os.environ), open("env.json", "w"))\''
        f" && exec {PYTHON} -m http.server $PORT0 --bind 127.0.0.1"
    )
    discovery = DiscoveryInfo(
        name="web",
        ports=(Port(number=web_ports[1], name="admin", protocol="tcp"),),
    )
    web = _task(offer, server, web_ports, discovery=discovery)
    driver.launch_tasks([offer.id], [web])
    _running(recorder, web.task_id)
    env = json.loads(_get(f"http://127.0.0.1:{web_ports[0]}/env.json"))
    assert env["PORT0"] == env["PORT"] == str(web_ports[0])
    assert env["PORT1"] == env["PORT_ADMIN"] == str(web_ports[1])
    assert env["PORTS"] == f"{web_ports[0]},{web_ports[1]}"
    assert env["HOST"]  # the agent's hostname, as Marathon gives it
    assert env["MESOS_FRAMEWORK_ID"] and env["MESOS_SANDBOX"]  # Mesos's own stay

    # Once the server serves, a task given one port binds the first other free one.
    offer = recorder.next_offer()
    offered = [port for b, e in offer.resources.ranges("ports") for port in range(b, e + 1)]
    thief_ports = offered[:1]
    thief_command = f"LISTEN_ANY={low}-{high} exec {PYTHON} -c '{LISTENER}'"
    thief = _task(offer, thief_command, thief_ports)
    driver.launch_tasks([offer.id], [thief])
    _running(recorder, thief.task_id)
    started = time.monotonic()
    ended = recorder.next_update(thief.task_id)
    print(f"the thief was killed {time.monotonic() - started:.2f} s after it ran")
    assert ended.state is TaskState.TASK_FAILED
    assert ended.reason is Reason.REASON_CONTAINER_LIMITATION
    assert ended.source is Source.SOURCE_EXECUTOR
    stolen = re.search(r"listening on port\(s\) (\d+)", ended.message or "")
    assert stolen is not None, ended.message
    assert low <= int(stolen.group(1)) <= high
    assert int(stolen.group(1)) not in thief_ports

    # The server, on its own ports, lived through many more checks and still serves.
    time.sleep(1.0)
    assert "env.json" in _get(f"http://127.0.0.1:{web_ports[0]}/")
    assert recorder.updates.empty() and not recorder.held
    driver.kill_task(web.task_id)
    assert recorder.next_update(web.task_id).state is TaskState.TASK_KILLED


def test_each_task_of_the_default_executor_gets_its_own_ports(driver, tmp_path):
    driver, recorder = driver
    offer = recorder.next_offer()
    offered = [port for b, e in offer.resources.ranges("ports") for port in range(b, e + 1)]
    executor = ExecutorInfo(
        executor_id=ExecutorID(f"default-{next(_numbers)}"),
        type=ExecutorType.DEFAULT,
        resources=Resources.parse("cpus:0.1;mem:32"),
    )
    dump = "import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], 'w'))"
    group = tuple(
        _task(
            offer,
            f'{PYTHON} -c "{dump}" {tmp_path / f"env-{index}.json"}',
            [offered[index]],
            discovery=DiscoveryInfo(ports=(Port(number=offered[index], name=f"member-{index}"),)),
        )
        for index in range(2)
    )
    driver.accept_offers([offer.id], [Operation.of_launch_group(executor, group)])
    finished = set()
    while len(finished) < len(group):
        status = recorder.updates.get(timeout=WAIT)
        expected = (TaskState.TASK_STARTING, TaskState.TASK_RUNNING, TaskState.TASK_FINISHED)
        assert status.state in expected, status
        if status.state is TaskState.TASK_FINISHED:
            finished.add(status.task_id)
    for index in range(2):
        env = json.loads((tmp_path / f"env-{index}.json").read_text())
        assert env["PORT0"] == env["PORTS"] == str(offered[index])
        assert env[f"PORT_MEMBER_{index}"] == str(offered[index])
        assert "PORT1" not in env
