"""End to end: a real master and agent, a framework launching tasks with ports and a
DiscoveryInfo, ``corral dns`` in its own OS process following the master, and a real
resolver (dnspython) asking it over UDP and TCP.

Waits are wall-clock safety nets; the freshness checks are the point: a task's records
answer within 1 s of the framework hearing TASK_RUNNING and are gone within 1 s of its end.
"""

from __future__ import annotations

import getpass
import json
import shutil
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from corral.cli.cluster import LocalCluster, start_local_cluster, wait_for_agents
from corral.cli.dns import DnsProcess, launch_dns
from corral.ids import TaskID
from corral.protocol import CommandInfo, DiscoveryInfo, FrameworkInfo, Port, TaskInfo
from corral.resources import Resources
from corral.scheduler import SchedulerDriver
from corral.task_states import TaskState
from master import MasterOptions
from tests.test_cluster import Recorder

pytest.importorskip("dns", reason="needs dnspython: pip install dnspython (the test extra)")
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

WAIT = 30.0  # wall-clock safety net for the cluster
FRESH = 1.0  # seconds: the promise being tested
AGENT = "cpus:4;mem:1024;disk:1024;ports:[31000-31020]"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> LocalCluster:
    cluster = start_local_cluster(
        1,
        work_dir=str(tmp_path_factory.mktemp("dns-cluster")),
        resources=AGENT,
        master_options=MasterOptions(allocation_interval=0.2),
    )
    try:
        wait_for_agents(cluster.http_address, 1)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def upstream(cluster) -> DnsProcess:
    """A second server (another zone, no resolvers), for forwarding and refusals."""
    server = launch_dns(cluster.http_address, "--domain", "upstream.test")
    yield server
    assert server.stop() == 0


@pytest.fixture(scope="module")
def server(cluster, upstream) -> DnsProcess:
    server = launch_dns(cluster.http_address, "--resolvers", f"127.0.0.1:{upstream.port}")
    yield server
    assert server.stop() == 0


@pytest.fixture
def framework(cluster):
    drivers: list[SchedulerDriver] = []

    def make(name: str) -> tuple[SchedulerDriver, Recorder]:
        recorder = Recorder()
        driver = SchedulerDriver(
            recorder, FrameworkInfo(user=getpass.getuser(), name=name), cluster.http_address
        )
        driver.start()
        drivers.append(driver)
        recorder.ids.get(timeout=WAIT)
        return driver, recorder

    yield make
    for driver in drivers:
        driver.stop()


def ask(server: DnsProcess, name: str, kind: str = "A", tcp: bool = False):
    query = dns.message.make_query(name, kind)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(query, server.ip, port=server.port, timeout=2.0)


def values(reply) -> list[str]:
    return sorted(item.to_text() for rrset in reply.answer for item in rrset)


def until(check: Callable[[], Any], within: float, what: str) -> tuple[Any, float]:
    """Poll ``check`` every 5 ms until it is truthy; (its value, seconds it took)."""
    start = time.monotonic()
    while True:
        value = check()
        elapsed = time.monotonic() - start
        if value:
            return value, elapsed
        assert elapsed < within, f"{what} not within {within} s"
        time.sleep(0.005)


def metrics(server: DnsProcess) -> dict[str, int]:
    with urllib.request.urlopen(f"http://{server.ip}:{server.http_port}/metrics", timeout=5) as r:
        return json.load(r)


def get(server: DnsProcess, path: str) -> Any:
    with urllib.request.urlopen(f"http://{server.ip}:{server.http_port}{path}", timeout=5) as r:
        return json.load(r)


def launch_web(driver, recorder, command: str = "sleep 60", task_id: str = "web-1") -> TaskInfo:
    offer = recorder.next_offer()
    task = TaskInfo(
        name="Web Server",
        task_id=TaskID(task_id),
        agent_id=offer.agent_id,
        resources=Resources.parse("cpus:0.1;mem:32;ports:[31000-31001]"),
        command=CommandInfo(value=command),
        discovery=DiscoveryInfo(
            name="web", ports=(Port(number=31000, name="http", protocol="tcp"),)
        ),
    )
    driver.launch_tasks([offer.id], [task])
    return task


def wait_state(recorder, task_id: str, state: TaskState) -> None:
    while recorder.next_update(task_id).state is not state:
        pass


def test_a_task_is_named_within_a_second_of_running_and_gone_within_a_second_of_its_end(
    server, framework
):
    driver, recorder = framework("Shop.Front_end")
    task = launch_web(driver, recorder)
    wait_state(recorder, task.task_id, TaskState.TASK_RUNNING)
    name = "web.shop.front-end.corral."
    reply, took = until(lambda: ask(server, name).answer and ask(server, name), FRESH, name)
    assert values(reply) == ["127.0.0.1"]
    srv = ask(server, "_web._tcp.shop.front-end.corral.", "SRV")
    (rrset,) = srv.answer
    (record,) = rrset
    assert record.port == 31000
    target = record.target.to_text()
    assert target.startswith("web-") and target.endswith("-s0.shop.front-end.corral.")
    assert [rr.name.to_text() for rr in srv.additional] == [target]
    ports = values(ask(server, "_web._tcp.shop.front-end.slave.corral.", "SRV"))
    assert [p.split()[2] for p in ports] == ["31000", "31001"]  # the ports resource
    assert values(ask(server, name, tcp=True)) == ["127.0.0.1"]

    driver.kill_task(task.task_id)
    wait_state(recorder, task.task_id, TaskState.TASK_KILLED)
    _, gone = until(lambda: ask(server, name).rcode() == dns.rcode.NXDOMAIN, FRESH, f"{name} gone")
    assert took < FRESH and gone < FRESH


def test_the_cluster_names_its_leader_and_agents_and_unknown_names_are_nxdomain(server, cluster):
    until(lambda: metrics(server)["dns/stream_connected"], WAIT, "the subscription")
    assert values(ask(server, "leader.corral.")) == ["127.0.0.1"]
    assert values(ask(server, "master.corral.")) == ["127.0.0.1"]
    assert values(ask(server, "slave.corral.")) == ["127.0.0.1"]
    assert values(ask(server, "agent.corral.")) == ["127.0.0.1"]
    port = cluster.http_address.rsplit(":", 1)[1]
    assert values(ask(server, "_leader._tcp.corral.", "SRV")) == [f"0 0 {port} leader.corral."]
    soa = ask(server, "corral.", "SOA")
    assert soa.answer[0][0].mname.to_text() == "ns1.corral."
    missing = ask(server, "nothing.here.corral.")
    assert missing.rcode() == dns.rcode.NXDOMAIN
    assert missing.authority[0].rdtype == dns.rdatatype.SOA


def test_other_zones_are_forwarded_and_refused_without_resolvers(server, upstream):
    until(lambda: metrics(upstream)["dns/stream_connected"], WAIT, "the upstream subscription")
    forwarded = ask(server, "leader.upstream.test.")
    assert values(forwarded) == ["127.0.0.1"]
    assert ask(server, "nothing.upstream.test.").rcode() == dns.rcode.NXDOMAIN
    assert values(ask(server, "leader.upstream.test.", tcp=True)) == ["127.0.0.1"]
    assert metrics(server)["dns/forwarded"] >= 3
    refused = ask(upstream, "leader.corral.")
    assert refused.rcode() == dns.rcode.REFUSED
    assert metrics(upstream)["dns/refused"] >= 1


def test_the_http_api_has_mesos_dns_shapes(server, framework):
    driver, recorder = framework("api")
    task = launch_web(driver, recorder, task_id="web-api")
    wait_state(recorder, task.task_id, TaskState.TASK_RUNNING)
    until(lambda: ask(server, "web.api.corral.").answer, FRESH, "web.api.corral.")
    assert get(server, "/v1/hosts/web.api") == [{"host": "web.api.corral.", "ip": "127.0.0.1"}]
    (service,) = get(server, "/v1/services/_web._tcp.api.corral.")
    assert (service["service"], service["ip"], service["port"]) == (
        "_web._tcp.api.corral.",
        "127.0.0.1",
        "31000",
    )
    assert get(server, "/v1/hosts/nothing") == [{"host": "", "ip": ""}]
    frameworks = {f["name"]: f for f in get(server, "/v1/enumerate")["frameworks"]}
    (listed,) = frameworks["api"]["tasks"]
    assert listed["id"] == "web-api"
    assert {"name": "web.api.corral.", "host": "127.0.0.1", "rtype": "A"} in listed["records"]
    config = get(server, "/v1/config")
    assert (config["Domain"], config["Port"], config["RefreshSeconds"]) == (
        "corral",
        server.port,
        0,
    )
    assert get(server, "/v1/version")["Version"]
    driver.kill_task(task.task_id)


def huge_query() -> bytes:
    name = b"".join(bytes([63]) + b"a" * 63 for _ in range(8)) + b"\x00"
    return struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0) + name + struct.pack(">HH", 1, 1)


def test_garbage_huge_names_and_a_flood_are_counted_and_the_server_keeps_answering(cluster):
    guarded = launch_dns(cluster.http_address, "--client-rate", "50", "--client-burst", "50")
    try:
        until(lambda: metrics(guarded)["dns/stream_connected"], WAIT, "the subscription")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2.0)
            target = (guarded.ip, guarded.port)
            sock.sendto(b"\x00\x01not dns at all", target)
            assert sock.recvfrom(512)[0][:2] == b"\x00\x01"  # FORMERR, to the same id
            sock.sendto(huge_query(), target)
            assert sock.recvfrom(512)[0][:2] == b"\x00\x07"
            for _ in range(500):
                sock.sendto(dns.message.make_query("leader.corral.", "A").to_wire(), target)
        counted, _ = until(
            lambda: (m := metrics(guarded))["dns/queries"] >= 502 and m, WAIT, "all counted"
        )
        assert counted["dns/malformed"] >= 1
        assert counted["dns/oversized_names"] == 1
        assert counted["dns/flood_dropped"] >= 400
        time.sleep(0.2)  # ten tokens come back
        assert values(ask(guarded, "leader.corral.")) == ["127.0.0.1"]
        with socket.create_connection(target, timeout=2.0) as tcp:  # TCP too, after garbage
            garbage = b"\x00\x09" + b"\xff" * 14
            tcp.sendall(struct.pack(">H", len(garbage)) + garbage)
            (length,) = struct.unpack(">H", tcp.recv(2))
            assert tcp.recv(length)[:2] == b"\x00\x09"  # FORMERR
            tcp.sendall(b"\x00\x05hello")  # no header at all: the connection is closed
            assert tcp.recv(2) == b""
    finally:
        assert guarded.stop() == 0


def test_corral_dns_help_explains_the_flags():
    shown = subprocess.run(
        [sys.executable, "-m", "corral", "dns", "--help"],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=True,
    ).stdout
    for flag in ("--master", "--domain", "--port", "--http-port", "--resolvers", "--ttl"):
        assert flag in shown
    bad = subprocess.run(
        [sys.executable, "-m", "corral", "dns", "--domain", "..", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert bad.returncode == 2 and "--domain" in bad.stderr
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    looped = subprocess.run(
        [sys.executable, "-m", "corral", "dns", "--master", "127.0.0.1:1", "--port", str(port),
         "--http-port", "0", "--resolvers", f"127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )  # fmt: skip
    assert looped.returncode == 2 and "itself" in looped.stderr


def test_records_resync_after_the_master_restarts(tmp_path):
    cluster = start_local_cluster(
        1,
        work_dir=str(tmp_path),
        resources=AGENT,
        master_options=MasterOptions(allocation_interval=0.2),
    )
    server = None
    driver = None
    try:
        wait_for_agents(cluster.http_address, 1)
        server = launch_dns(cluster.http_address)
        recorder = Recorder()
        driver = SchedulerDriver(
            recorder,
            FrameworkInfo(user=getpass.getuser(), name="svc", failover_timeout=300.0),
            cluster.http_address,
        )
        driver.start()
        recorder.ids.get(timeout=WAIT)
        task = launch_web(driver, recorder)
        wait_state(recorder, task.task_id, TaskState.TASK_RUNNING)
        until(lambda: ask(server, "web.svc.corral.").answer, FRESH, "web.svc.corral.")

        cluster.restart_master()
        until(lambda: metrics(server)["dns/stream_losses"] >= 1, WAIT, "the loss noticed")
        # Meanwhile the last records are served; then SUBSCRIBED resynchronizes them.
        assert values(ask(server, "web.svc.corral.")) == ["127.0.0.1"]
        until(lambda: metrics(server)["dns/subscriptions"] >= 2, WAIT, "a resync")
        until(
            lambda: metrics(server)["dns/tasks"] == 1 and ask(server, "web.svc.corral.").answer,
            WAIT,
            "the task known again (its agent re-registered)",
        )
        # And events flow again on the new stream: the task's end removes its name.
        driver.kill_task(task.task_id)
        until(
            lambda: ask(server, "web.svc.corral.").rcode() == dns.rcode.NXDOMAIN,
            WAIT,
            "web.svc.corral. gone after the resync",
        )
    finally:
        if driver is not None:
            driver.stop()
        if server is not None:
            server.stop()
        cluster.stop()


def test_corral_local_starts_dns_and_prints_where(tmp_path):
    local = subprocess.Popen(
        [sys.executable, "-m", "corral", "local", "--agents", "1", "--port", "0",
         "--work-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        lines: list[str] = []
        deadline = time.monotonic() + WAIT
        while not any("Ctrl-C stops the cluster" in line for line in lines):
            assert time.monotonic() < deadline and local.poll() is None, lines
            lines.append(local.stdout.readline())
        (banner,) = [line for line in lines if line.startswith("dns serving 127.0.0.1:")]
        port = int(banner.split()[2].rsplit(":", 1)[1])
        started = DnsProcess(local, "127.0.0.1", port, 0, banner)  # only to ask it
        until(lambda: ask(started, "leader.corral.").answer, WAIT, "leader.corral.")
    finally:
        local.terminate()
        assert local.wait(WAIT) == 0
        local.stdout.close()


def dig(server: DnsProcess, *arguments: str) -> list[str]:
    done = subprocess.run(
        ["dig", f"@{server.ip}", "-p", str(server.port), "+short", "+time=2", *arguments],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=True,
    )
    return sorted(done.stdout.split("\n")[:-1])


@pytest.mark.skipif(
    shutil.which("dig") is None, reason="needs dig: apt-get install dnsutils (Debian)"
)
def test_dig_resolves_a_task_by_name_and_srv_over_udp_and_tcp(server, framework):
    driver, recorder = framework("dug")
    task = launch_web(driver, recorder, task_id="web-dig")
    wait_state(recorder, task.task_id, TaskState.TASK_RUNNING)
    until(lambda: dig(server, "web.dug.corral", "A"), FRESH, "web.dug.corral")
    assert dig(server, "web.dug.corral", "A") == ["127.0.0.1"]
    assert dig(server, "+tcp", "web.dug.corral", "A") == ["127.0.0.1"]
    (srv,) = dig(server, "_web._tcp.dug.corral", "SRV")
    priority, weight, port, target = srv.split()
    assert (priority, weight, port) == ("0", "0", "31000")
    assert dig(server, target, "A") == ["127.0.0.1"]
    assert dig(server, "leader.upstream.test", "A") == ["127.0.0.1"]  # forwarded
    driver.kill_task(task.task_id)
