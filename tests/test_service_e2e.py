"""What a long-running service needs from the kernel, all at once, on a real cluster.

A framework's task serves HTTP on its ``PORT0`` with an HTTP health check and a named port:
it becomes healthy; a real resolver (dnspython) finds it by name and by SRV record within a
second of TASK_RUNNING; the agent's ``network/ports`` isolator leaves it alone (it listens only
on its own port) while it kills a neighbour that listens on a port it was not given; when the
service stops answering its health check it is killed and reported unhealthy, and its name is
gone within a second. The master, the agent and ``corral dns`` run in OS processes of their own;
waits are wall-clock safety nets.
"""

from __future__ import annotations

import getpass
import re
import time
from collections.abc import Iterator

import dns.message
import dns.query
import dns.rcode
import pytest

from corral.cli.cluster import LocalCluster, start_local_cluster, wait_for_agents
from corral.cli.dns import DnsProcess, launch_dns
from corral.ids import TaskID
from corral.protocol import CommandInfo, DiscoveryInfo, FrameworkInfo, Port, TaskInfo
from corral.resources import Resources
from corral.scheduler import SchedulerDriver
from corral.task_states import Reason, TaskState
from master import MasterOptions
from tests.test_cluster import WAIT, Recorder
from tests.test_health_checks_e2e import PYTHON, agent_resources, agent_sandbox, free_ports
from tests.test_health_checks_e2e import http_check as health_check
from tests.test_health_checks_e2e import until as updates_until

FRESH = 1.0  # seconds from TASK_RUNNING (or the end) to the name's answer: the promise


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[LocalCluster]:
    cluster = start_local_cluster(
        1,
        work_dir=str(tmp_path_factory.mktemp("service")),
        resources=agent_resources(free_ports(4)),
        master_options=MasterOptions(allocation_interval=0.2),
        isolation="posix/cpu,posix/mem,filesystem/posix,network/ports",
        agent_options={"container_ports_watch_interval": 0.2},
    )
    try:
        wait_for_agents(cluster.http_address, 1)
        yield cluster
    finally:
        assert cluster.stop() == [0, 0]


@pytest.fixture(scope="module")
def names(cluster) -> Iterator[DnsProcess]:
    server = launch_dns(cluster.http_address)
    yield server
    assert server.stop() == 0


def ask(server: DnsProcess, name: str, kind: str = "A"):
    query = dns.message.make_query(name, kind)
    return dns.query.udp(query, server.ip, port=server.port, timeout=2.0)


def answered_within(check, seconds: float, what: str) -> float:
    """Seconds until ``check()`` is true, polled every 5 ms; fails after ``seconds``."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < seconds, f"{what}: not within {seconds} s"
        time.sleep(0.005)
    return time.monotonic() - start


def test_a_healthy_service_is_found_by_name_keeps_to_its_ports_and_is_replaced_when_it_fails(
    cluster, names
):
    recorder = Recorder()
    driver = SchedulerDriver(
        recorder, FrameworkInfo(user=getpass.getuser(), name="shop"), cluster.http_address
    )
    driver.start()
    try:
        recorder.ids.get(timeout=WAIT)
        offer = recorder.next_offer()
        ports = [p for begin, end in offer.resources.ranges("ports") for p in range(begin, end + 1)]
        port = ports[0]
        # Serves www/ on PORT0 until the test says stop; then www/health is gone (404s).
        script = (
            "mkdir -p www && echo ok > www/health && "
            f"{PYTHON} -m http.server $PORT0 --bind 127.0.0.1 --directory www & "
            "until [ -e stop ]; do sleep 0.1; done; rm www/health; wait"
        )
        web = TaskInfo(
            name="web",
            task_id=TaskID(f"web-{time.monotonic_ns()}"),
            agent_id=offer.agent_id,
            resources=Resources.parse(f"cpus:0.5;mem:64;ports:[{port}-{port}]"),
            command=CommandInfo(value=script),
            health_check=health_check(port),
            discovery=DiscoveryInfo(name="web", ports=(Port(number=port, name="http"),)),
        )
        driver.launch_tasks([offer.id], [web])
        running = updates_until(recorder, web.task_id, lambda s: s.state is TaskState.TASK_RUNNING)
        assert running[-1].healthy is None  # not yet checked
        found = answered_within(
            lambda: bool(ask(names, "web.shop.corral.").answer), FRESH, "A web.shop.corral."
        )
        (a,) = ask(names, "web.shop.corral.").answer
        assert [item.to_text() for item in a] == ["127.0.0.1"]
        (srv,) = ask(names, "_web._tcp.shop.corral.", "SRV").answer
        assert [record.port for record in srv] == [port]
        assert found < FRESH
        healthy = updates_until(recorder, web.task_id, lambda s: s.healthy is not None)[-1]
        assert (healthy.state, healthy.healthy) == (TaskState.TASK_RUNNING, True)

        # A neighbour given one port that listens on another of the agent's is killed; the
        # service, on its own port, is not.
        offer = recorder.next_offer()
        (given, _), *_ = offer.resources.ranges("ports")
        taken = next(p for p in ports if p not in (port, given))
        thief = TaskInfo(
            name="thief",
            task_id=TaskID(f"thief-{time.monotonic_ns()}"),
            agent_id=offer.agent_id,
            resources=Resources.parse(f"cpus:0.1;mem:32;ports:[{given}-{given}]"),
            command=CommandInfo(value=f"exec {PYTHON} -m http.server {taken} --bind 127.0.0.1"),
        )
        driver.launch_tasks([offer.id], [thief])
        ended = updates_until(recorder, thief.task_id, lambda s: s.state.is_terminal)[-1]
        assert ended.state is TaskState.TASK_FAILED
        assert ended.reason is Reason.REASON_CONTAINER_LIMITATION
        assert re.search(rf"\b{taken}\b", ended.message or ""), ended.message
        assert ask(names, "web.shop.corral.").answer  # the service lives on

        # The service stops answering: unhealthy, killed, and its name goes.
        (agent_sandbox(cluster, str(web.task_id)) / "stop").touch()
        updates = updates_until(recorder, web.task_id, lambda s: s.state.is_terminal)
        killed = updates[-1]
        assert (killed.state, killed.healthy) == (TaskState.TASK_KILLED, False)
        assert any(s.healthy is False for s in updates if s.state is TaskState.TASK_RUNNING)
        gone = answered_within(
            lambda: ask(names, "web.shop.corral.").rcode() == dns.rcode.NXDOMAIN,
            FRESH,
            "web.shop.corral. gone",
        )
        assert gone < FRESH
    finally:
        driver.stop()
