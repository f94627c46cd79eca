"""End to end through the real front door (``corral frontdoor`` in its own OS process) to a
real master and agent and a real ``corral dns``: Mesos's paths under ``/mesos``, an agent by
id under ``/slave``, Mesos-DNS's API under ``/mesos_dns``, the v1 operator SUBSCRIBE stream
and the services scheduler's Server-Sent Events passed through as they are produced, and the
front door's answers when a part is down or a path is unknown. Waits are wall-clock safety nets.
"""

from __future__ import annotations

import contextlib
import getpass
import http.client
import json
import queue
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import psutil
import pytest

from corral.cli.cluster import LocalCluster, free_port, start_local_cluster, wait_for_agents
from corral.cli.dns import DnsProcess, launch_dns
from corral.cli.frontdoor import FrontDoorProcess, launch_frontdoor
from corral.protocol import FrameworkInfo
from corral.scheduler import SchedulerDriver
from corral.v1.recordio import Decoder
from master import MasterOptions
from tests.test_cluster import Recorder

WAIT = 30.0
AGENT = "cpus:2;mem:512;disk:512;ports:[31000-31010]"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> LocalCluster:
    cluster = start_local_cluster(
        1,
        work_dir=str(tmp_path_factory.mktemp("frontdoor")),
        resources=AGENT,
        master_options=MasterOptions(allocation_interval=0.2),
    )
    try:
        wait_for_agents(cluster.http_address, 1)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def dns(cluster) -> DnsProcess:
    server = launch_dns(cluster.http_address)
    yield server
    assert server.stop() == 0


@pytest.fixture(scope="module")
def door(cluster, dns) -> FrontDoorProcess:
    # The services scheduler's address names a port where nothing listens: "down".
    door = launch_frontdoor(
        cluster.http_address, dns=f"127.0.0.1:{dns.http_port}", services=_closed_port()
    )
    yield door
    assert door.stop() == 0


def _closed_port() -> str:
    return f"127.0.0.1:{free_port('127.0.0.1')}"


def get(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_the_masters_state_through_the_front_door(cluster, door):
    status, _, body = get(f"{door.url}/mesos/master/state")
    assert status == 200
    state = json.loads(body)
    _, _, direct = get(f"http://{cluster.http_address}/master/state")
    assert state["id"] == json.loads(direct)["id"]
    assert len(state["slaves"]) == 1
    # The DC/OS CLI asks for Mesos's .json twins.
    status, _, body = get(f"{door.url}/mesos/master/state.json")
    assert status == 200 and json.loads(body)["id"] == state["id"]
    status, _, body = get(f"{door.url}/mesos/master/state-summary")
    assert status == 200 and len(json.loads(body)["slaves"]) == 1


def test_a_v1_call_with_a_body_passes_both_ways(door):
    body = json.dumps({"type": "GET_HEALTH"}).encode()
    status, headers, answer = get(f"{door.url}/mesos/api/v1", "POST", body)
    assert status == 200, answer
    assert json.loads(answer) == {"type": "GET_HEALTH", "get_health": {"healthy": True}}
    assert headers["Content-Type"].startswith("application/json")


def test_an_agent_by_id_under_slave_and_agent(cluster, door):
    _, _, body = get(f"http://{cluster.http_address}/master/slaves")
    agent_id = json.loads(body)["slaves"][0]["id"]
    for prefix in ("slave", "agent"):
        status, _, body = get(f"{door.url}/{prefix}/{agent_id}/state.json")
        assert status == 200
        assert json.loads(body)["id"] == agent_id
    status, _, body = get(f"{door.url}/slave/no-such-agent/state")
    assert status == 404
    assert b"the master knows no agent no-such-agent" in body


def test_mesos_dns_api_through_the_front_door(door):
    status, _, body = get(f"{door.url}/mesos_dns/v1/version")
    assert status == 200 and "Version" in json.loads(body)
    # DC/OS's name for the masters, asked under corral dns's own domain.
    status, _, body = get(f"{door.url}/mesos_dns/v1/hosts/master.mesos")
    assert status == 200
    assert json.loads(body) == [{"host": "master.corral.", "ip": "127.0.0.1"}]


class Stream:
    """A SUBSCRIBE stream through the front door, read in a thread: records as they come,
    each with the time it arrived."""

    def __init__(self, door: FrontDoorProcess) -> None:
        self.connection = http.client.HTTPConnection(door.ip, door.port, timeout=WAIT)
        self.connection.request(
            "POST",
            "/mesos/api/v1",
            json.dumps({"type": "SUBSCRIBE"}),
            {"Content-Type": "application/json", "Accept": "application/json"},
        )
        self.response = self.connection.getresponse()
        self.records: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        decoder = Decoder()
        try:
            while chunk := self.response.read1(65536):
                for record in decoder.feed(chunk):
                    self.records.put((time.monotonic(), json.loads(record)))
        except (OSError, ValueError, http.client.HTTPException):
            pass  # hung up

    def next(self, kind: str) -> tuple[float, dict[str, Any]]:
        deadline = time.monotonic() + WAIT
        while (left := deadline - time.monotonic()) > 0:
            try:
                arrived, event = self.records.get(timeout=left)
            except queue.Empty:
                break
            if event["type"] == kind:
                return arrived, event
        raise AssertionError(f"no {kind} event through the front door within {WAIT} s")

    def close(self) -> None:
        sock = self.connection.sock
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
        self.thread.join(5)
        self.connection.close()


def test_the_operator_stream_passes_through_unbuffered(cluster, door):
    stream = Stream(door)
    driver = None
    try:
        assert stream.response.status == 200
        assert stream.response.getheader("Content-Type").startswith("application/json")
        _, subscribed = stream.next("SUBSCRIBED")
        assert len(subscribed["subscribed"]["get_state"]["get_agents"]["agents"]) == 1
        # While the stream stays open, an event produced now arrives now.
        recorder = Recorder()
        started = time.monotonic()
        driver = SchedulerDriver(
            recorder, FrameworkInfo(user=getpass.getuser(), name="through-the-door"),
            cluster.http_address,
        )  # fmt: skip
        driver.start()
        recorder.ids.get(timeout=WAIT)
        registered = time.monotonic()
        arrived, event = stream.next("FRAMEWORK_ADDED")
        info = event["framework_added"]["framework"]["framework_info"]
        assert info["name"] == "through-the-door"
        assert arrived - started < 5.0
        # Arrived about when the framework registered: not held back for more bytes.
        assert arrived - registered < 1.0
        assert stream.thread.is_alive()  # the stream is still open
    finally:
        if driver is not None:
            driver.stop()
        stream.close()


def test_a_part_that_is_down_is_a_502_naming_it_and_how_to_start_it(door):
    status, _, body = get(f"{door.url}/service/marathon/v2/apps")
    assert status == 502
    text = body.decode()
    assert "the services scheduler (Marathon's API) at 127.0.0.1:" in text
    assert "does not answer (Connection refused)" in text
    assert "corral services --master" in text


def test_a_master_that_is_down_and_a_part_not_given(tmp_path):
    lonely = launch_frontdoor(_closed_port())  # no dns, no services given
    try:
        status, _, body = get(f"{lonely.url}/mesos/master/state")
        assert status == 502
        assert b"the master at 127.0.0.1:" in body and b"corral master" in body
        status, _, body = get(f"{lonely.url}/slave/some-agent/state")
        assert status == 502 and b"the master at" in body
        status, _, body = get(f"{lonely.url}/mesos_dns/v1/version")
        assert status == 502
        assert b"this front door was not given the DNS server" in body
        assert b"--dns HOST:PORT" in body
    finally:
        assert lonely.stop() == 0


def test_an_unknown_path_is_a_404_listing_the_prefixes(door):
    status, _, body = get(f"{door.url}/v2/apps")
    assert status == 404
    text = body.decode()
    assert text.startswith("no part of the cluster is served at /v2/apps")
    for prefix in ("/mesos/...", "/service/marathon/...", "/mesos_dns/...", "/slave/<agent id>"):
        assert prefix in text


def test_what_the_dcos_cli_asks_of_the_front_door_itself(cluster, door):
    status, _, body = get(f"{door.url}/dcos-metadata/dcos-version.json")
    assert status == 200 and json.loads(body)["version"] == "1.11.0"
    status, _, body = get(f"{door.url}/metadata")
    cluster_id = json.loads(body)["CLUSTER_ID"]
    assert status == 200 and len(cluster_id) == 36
    status, _, _ = get(f"{door.url}/pkgpanda/active.buildinfo.full.json", "HEAD")
    assert status == 200  # no login wanted: security is disabled
    status, _, body = get(f"{door.url}/")
    assert status == 200 and b"/service/marathon/" in body


@pytest.fixture(scope="module")
def services(cluster, tmp_path_factory):
    from corral.cli.services import launch_services

    scheduler = launch_services(cluster.http_address, work_dir=tmp_path_factory.mktemp("svc"))
    yield scheduler
    scheduler.stop()


def test_marathons_event_stream_passes_through_unbuffered(cluster, services):
    door = launch_frontdoor(cluster.http_address, services=services.address)
    connection = http.client.HTTPConnection(door.ip, door.port, timeout=WAIT)
    reader = None
    try:
        connection.request(
            "GET", "/service/marathon/v2/events", headers={"Accept": "text/event-stream"}
        )
        response = connection.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type").startswith("text/event-stream")
        events: queue.Queue[tuple[float, dict]] = queue.Queue()

        def read() -> None:
            buffer = b""
            try:
                while chunk := response.read1(65536):
                    buffer += chunk
                    while b"\n\n" in buffer:
                        block, buffer = buffer.split(b"\n\n", 1)
                        for line in block.split(b"\n"):
                            if line.startswith(b"data:"):
                                events.put((time.monotonic(), json.loads(line[5:])))
            except (OSError, ValueError, http.client.HTTPException):
                pass  # hung up

        reader = threading.Thread(target=read, daemon=True)
        reader.start()

        def next_event(kind: str) -> tuple[float, dict]:
            deadline = time.monotonic() + WAIT
            while (left := deadline - time.monotonic()) > 0:
                try:
                    arrived, event = events.get(timeout=left)
                except queue.Empty:
                    break
                if event.get("eventType") == kind:
                    return arrived, event
            raise AssertionError(f"no {kind} through the front door within {WAIT} s")

        next_event("event_stream_attached")
        app = {"id": "/sse-probe", "cmd": "exec sleep 600", "cpus": 0.1, "mem": 16}
        posted_at = time.monotonic()
        status, _, body = get(
            f"{door.url}/service/marathon/v2/apps", "POST", json.dumps(app).encode()
        )
        assert status == 201, body
        answered_at = time.monotonic()
        arrived, event = next_event("api_post_event")
        assert event["appDefinition"]["id"] == "/sse-probe"
        # It came while the request was being answered, not when more bytes followed.
        assert arrived - posted_at < 5.0 and arrived - answered_at < 1.0
        assert streams(door) == 1

        # The client hangs up: the front door closes its connection to the scheduler at once
        # (not at the stream's next event, which may never come).
        upstream = upstream_connections(door, services.http_port)
        connection.sock.shutdown(socket.SHUT_RDWR)
        reader.join(5)
        deadline = time.monotonic() + WAIT
        while upstream_connections(door, services.http_port) != upstream - 1:
            assert time.monotonic() < deadline, "the upstream stream outlived its client"
            time.sleep(0.05)
        get(f"{door.url}/service/marathon/v2/apps/sse-probe?force=true", "DELETE")
        deadline = time.monotonic() + WAIT
        while streams(door) != 0:  # the scheduler lets it go at its next write
            assert time.monotonic() < deadline, "the scheduler still serves the stream"
            time.sleep(0.05)
    finally:
        sock = connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if reader is not None:
            reader.join(5)
        connection.close()
        assert door.stop() == 0


def upstream_connections(door: FrontDoorProcess, port: int) -> int:
    """The front door's open TCP connections to ``port`` (the OS's count, by its pid)."""
    return sum(
        1
        for c in psutil.Process(door.process.pid).net_connections("tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


def streams(door: FrontDoorProcess) -> int:
    """Event streams the services scheduler serves (its Marathon /metrics gauge)."""
    _, _, body = get(f"{door.url}/service/marathon/metrics")
    return json.loads(body)["gauges"]["marathon.http.event-streams.active.gauge"]["value"]


def test_a_v1_scheduler_subscribes_and_calls_through_the_front_door(door):
    """The scheduler API's stream and its Mesos-Stream-Id header, both ways."""
    connection = http.client.HTTPConnection(door.ip, door.port, timeout=WAIT)
    subscribe = {
        "type": "SUBSCRIBE",
        "subscribe": {"framework_info": {"user": getpass.getuser(), "name": "v1-through-door"}},
    }
    try:
        connection.request(
            "POST",
            "/mesos/api/v1/scheduler",
            json.dumps(subscribe),
            {"Content-Type": "application/json", "Accept": "application/json"},
        )
        response = connection.getresponse()
        assert response.status == 200
        stream_id = response.getheader("Mesos-Stream-Id")
        assert stream_id
        decoder = Decoder()
        records: list[dict] = []
        while not records:
            records += [json.loads(r) for r in decoder.feed(response.read1(65536))]
        assert records[0]["type"] == "SUBSCRIBED"
        framework_id = records[0]["subscribed"]["framework_id"]["value"]
        teardown = json.dumps({"type": "TEARDOWN", "framework_id": {"value": framework_id}})
        request = urllib.request.Request(
            f"{door.url}/mesos/api/v1/scheduler", data=teardown.encode(), method="POST"
        )
        request.add_header("Content-Type", "application/json")
        request.add_header("Mesos-Stream-Id", "not-the-stream")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=WAIT)
        assert refused.value.code == 400  # the master saw the header as the client sent it
        assert b"stream ID 'not-the-stream'" in refused.value.read()
        request.remove_header("Mesos-stream-id")
        request.add_header("Mesos-Stream-Id", stream_id)
        with urllib.request.urlopen(request, timeout=WAIT) as answer:
            assert answer.status == 202
    finally:
        connection.close()
