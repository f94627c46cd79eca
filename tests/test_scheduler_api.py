"""The v1 scheduler HTTP API (``POST /api/v1/scheduler``) against a real in-process master.

A real HTTP client (http.client, reading the chunked RecordIO stream in a thread) talks to a
real ``MasterProcess`` and its allocator; a fake agent actor registers and records what the
master sends it. The runtime clock is paused: allocations and heartbeats happen when a test
advances it. Wall-clock timeouts are safety nets only.
"""

from __future__ import annotations

import base64
import http.client
import json
import queue
import socket
import threading
import time
import uuid
from typing import Any

import pytest

from corral.ids import AgentID, ExecutorID, TaskID, new_status_uuid
from corral.protocol import AgentInfo, FrameworkInfo, TaskStatus
from corral.protocol.messages import (
    AgentRegistered,
    ExecutorToFramework,
    ExitedExecutor,
    FrameworkToExecutor,
    KillTask,
    RegisterAgent,
    RunTask,
    RunTaskGroup,
    ShutdownExecutor,
    ShutdownFramework,
    StatusUpdate,
    StatusUpdateAcknowledgement,
)
from corral.resources import Resources
from corral.scheduler import Scheduler, SchedulerDriver
from corral.task_states import Source, TaskState
from corral.v1.http import CallError, accepts
from corral.v1.recordio import Decoder
from libprocess import Runtime
from master import MasterOptions, MasterProcess
from master.scheduler_api_calls import parse_call
from tests.master_actors import FakeAgent

WAIT = 5.0  # wall-clock safety net
QUIET = 0.3  # wall-clock pause to let events that should not come have a chance to
PATH = "/api/v1/scheduler"
HEARTBEAT = 5.0  # runtime-clock seconds between heartbeats in these tests
AGENT_RESOURCES = Resources.parse("cpus:4;mem:1024")
OPTIONS = MasterOptions(
    hostname="test-master", allocation_interval=1.0, http_heartbeat_interval=HEARTBEAT
)
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
FRAMEWORK_INFO = {"user": "tester", "name": "http-framework", "failover_timeout": 60.0}


# -- the HTTP client --------------------------------------------------------------------------


def post(
    address: str,
    body: Any,
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> tuple[int, str, http.client.HTTPMessage]:
    """(status, body text, headers) of one request; ``body`` a dict (sent as JSON) or bytes."""
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=WAIT)
    try:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        connection.request(method, PATH, data, JSON_HEADERS if headers is None else headers)
        response = connection.getresponse()
        return response.status, response.read().decode(), response.headers
    finally:
        connection.close()


class Subscription:
    """A SUBSCRIBE stream: its response, and its events decoded by a reader thread."""

    def __init__(self, address: str, call: dict[str, Any], headers: dict[str, str]) -> None:
        host, port = address.rsplit(":", 1)
        self.connection = http.client.HTTPConnection(host, int(port), timeout=WAIT)
        self.connection.request("POST", PATH, json.dumps(call).encode(), headers)
        self.response = self.connection.getresponse()
        self.status = self.response.status
        self.headers = self.response.headers
        self.stream_id = self.headers.get("Mesos-Stream-Id")
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()  # None: the end
        self.ended = threading.Event()
        self.framework_id: str | None = None
        self.text = ""  # the body of a refusal
        if self.status != 200:
            self.text = self.response.read().decode()
            self.ended.set()
            return
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        decoder = Decoder()
        try:
            while data := self.response.read1(65536):
                for record in decoder.feed(data):
                    self.events.put(json.loads(record))
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            # The stream ended, or the test closed the connection under the reader.
            pass
        finally:
            self.ended.set()
            self.events.put(None)

    def next(self, kind: str, timeout: float = WAIT) -> dict[str, Any]:
        """The next event of type ``kind``, skipping others."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {kind} event within {timeout} s") from None
            if event is None:
                self.events.put(None)
                raise AssertionError(f"the stream ended before a {kind} event")
            if event["type"] == kind:
                return event

    def drain(self) -> list[dict[str, Any]]:
        """The events received so far (after a short wall-clock pause)."""
        time.sleep(QUIET)
        events = []
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return events
            if event is None:
                self.events.put(None)
                return events
            events.append(event)

    def wait_ended(self, timeout: float = WAIT) -> bool:
        return self.ended.wait(timeout)

    def disconnect(self) -> None:
        """The client goes away: its socket closes."""
        sock = self.connection.sock
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
        self.connection.close()


# -- the cluster ------------------------------------------------------------------------------


class Cluster:
    """A master with the API and a fake agent, in one runtime, with the clock paused."""

    def __init__(self, runtime: Runtime, clock: Any, work_dir: str) -> None:
        self.runtime = runtime
        self.clock = clock
        self.master = MasterProcess(work_dir, OPTIONS)
        runtime.spawn(self.master)
        self.address = runtime.http_address
        self.agents: list[FakeAgent] = []
        self.subscriptions: list[Subscription] = []

    def add_agent(self, hostname: str = "host-a") -> tuple[FakeAgent, str]:
        agent = FakeAgent()
        self.runtime.spawn(agent)
        info = AgentInfo(hostname=hostname, resources=AGENT_RESOURCES)
        self.runtime.dispatch(agent, agent.say, self.master.pid, RegisterAgent(info, "t")).result(
            WAIT
        )
        agent_id = agent.next(AgentRegistered).agent_id
        self.agents.append(agent)
        return agent, agent_id

    def subscribe(
        self, framework_id: str | None = None, headers: dict[str, str] | None = None, **info: Any
    ) -> Subscription:
        call: dict[str, Any] = {
            "type": "SUBSCRIBE",
            "subscribe": {"framework_info": {**FRAMEWORK_INFO, **info}},
        }
        if framework_id is not None:
            call["framework_id"] = {"value": framework_id}
            call["subscribe"]["framework_info"]["id"] = {"value": framework_id}
        subscription = Subscription(
            self.address, call, JSON_HEADERS if headers is None else headers
        )
        self.subscriptions.append(subscription)
        return subscription

    def subscribed(self, **info: Any) -> Subscription:
        """A framework subscribed over HTTP, its SUBSCRIBED event read."""
        subscription = self.subscribe(**info)
        assert subscription.status == 200
        event = subscription.next("SUBSCRIBED")
        subscription.framework_id = event["subscribed"]["framework_id"]["value"]
        return subscription

    def call(
        self, subscription: Subscription, kind: str, body: dict[str, Any] | None = None, **extra
    ) -> tuple[int, str, http.client.HTTPMessage]:
        call: dict[str, Any] = {"type": kind, "framework_id": {"value": subscription.framework_id}}
        if body is not None:
            call[kind.lower()] = body
        call.update(extra)
        headers = {**JSON_HEADERS, "Mesos-Stream-Id": subscription.stream_id}
        return post(self.address, call, headers)

    def accepted(self, subscription: Subscription, kind: str, body: Any = None) -> None:
        status, text, headers = self.call(subscription, kind, body)
        assert (status, text) == (202, ""), text
        assert headers["Content-Length"] == "0"
        self.settle()

    def settle(self) -> None:
        self.runtime.settle()

    def tick(self, seconds: float = 1.0) -> None:
        for _ in range(round(seconds)):
            self.clock.advance(1.0)
            self.settle()

    def describe(self) -> dict[str, Any]:
        return self.runtime.dispatch(self.master, self.master.describe).result(WAIT)

    def framework(self, framework_id: str) -> dict[str, Any]:
        (framework,) = [f for f in self.describe()["frameworks"] if f["id"] == framework_id]
        return framework

    def close(self) -> None:
        """Stop the master first: its bridges see it exit and end their streams, so that the
        runtime's HTTP server stops at once (an open stream would hold it up)."""
        self.runtime.terminate(self.master)
        self.runtime.wait(self.master).result(WAIT)
        self.settle()
        for subscription in self.subscriptions:
            subscription.connection.close()


@pytest.fixture
def cluster(paused_clock, tmp_path):
    with Runtime("127.0.0.1", 0, http_port=0) as runtime:
        made = Cluster(runtime, paused_clock, str(tmp_path))
        try:
            yield made
        finally:
            made.close()


@pytest.fixture
def ready(cluster) -> tuple[Cluster, FakeAgent, str, Subscription]:
    """An agent and an HTTP framework subscribed to it."""
    agent, agent_id = cluster.add_agent()
    return cluster, agent, agent_id, cluster.subscribed()


def task_json(name: str, agent_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "task_id": {"value": name},
        "agent_id": {"value": agent_id},
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 128}},
        ],
        "command": {"value": "sleep 100"},
        **fields,
    }


def launch(cluster: Cluster, subscription: Subscription, agent: FakeAgent, name: str) -> RunTask:
    offer = subscription.next("OFFERS")["offers"]["offers"][0]
    cluster.accepted(
        subscription,
        "ACCEPT",
        {
            "offer_ids": [offer["id"]],
            "operations": [
                {
                    "type": "LAUNCH",
                    "launch": {"task_infos": [task_json(name, offer["agent_id"]["value"])]},
                }
            ],
            "filters": {"refuse_seconds": 0},
        },
    )
    return agent.next(RunTask)


def agent_update(
    cluster: Cluster, agent: FakeAgent, agent_id: str, framework_id: str, task: str, state
) -> TaskStatus:
    status = TaskStatus(
        TaskID(task),
        state,
        source=Source.SOURCE_EXECUTOR,
        agent_id=AgentID(agent_id),
        uuid=new_status_uuid(),
    )
    update = StatusUpdate(framework_id, status, pid=str(agent.pid))
    cluster.runtime.dispatch(agent, agent.say, cluster.master.pid, update).result(WAIT)
    return status


# -- subscription -----------------------------------------------------------------------------


def test_subscribe_streams_subscribed_a_heartbeat_then_offers(ready):
    cluster, _, agent_id, subscription = ready
    assert subscription.headers["Transfer-Encoding"] == "chunked"
    assert subscription.headers["Content-Type"].startswith("application/json")
    assert uuid.UUID(subscription.stream_id).version == 4
    second = cluster.subscribe()
    event = second.next("SUBSCRIBED")
    subscribed = event["subscribed"]
    assert set(subscribed) == {"framework_id", "heartbeat_interval_seconds", "master_info"}
    assert subscribed["heartbeat_interval_seconds"] == HEARTBEAT
    master_info = subscribed["master_info"]
    assert master_info["pid"] == str(cluster.master.pid)
    assert master_info["hostname"] == "test-master"
    assert master_info["address"]["port"] == cluster.master.pid.port
    assert second.events.get(timeout=WAIT)["type"] == "HEARTBEAT"  # at once, as Mesos
    framework = cluster.framework(subscribed["framework_id"]["value"])
    assert framework["active"] and framework["name"] == "http-framework"
    assert framework["pid"] != str(cluster.master.pid)  # the bridge's own pid
    offers = subscription.next("OFFERS")["offers"]["offers"]
    (offer,) = offers
    assert offer["framework_id"] == {"value": subscription.framework_id}
    assert offer["agent_id"] == {"value": agent_id}
    assert offer["hostname"] == "host-a"
    assert {r["name"]: r["scalar"]["value"] for r in offer["resources"]} == {
        "cpus": 4,
        "mem": 1024,
    }
    assert offer["allocation_info"] == {"role": "*"}
    assert "slave_id" not in offer and "value" in offer["id"]


def test_heartbeats_come_every_interval_on_the_runtime_clock(ready):
    cluster, _, _, subscription = ready
    subscription.next("HEARTBEAT")
    cluster.settle()
    assert [e for e in subscription.drain() if e["type"] == "HEARTBEAT"] == []
    cluster.tick(HEARTBEAT - 1)
    assert [e for e in subscription.drain() if e["type"] == "HEARTBEAT"] == []
    cluster.tick(1)
    subscription.next("HEARTBEAT")
    cluster.tick(HEARTBEAT)
    subscription.next("HEARTBEAT")


# -- calls -----------------------------------------------------------------------------------


def test_accept_launch_update_and_acknowledge(ready):
    cluster, agent, agent_id, subscription = ready
    run = launch(cluster, subscription, agent, "t1")
    assert run.task.task_id == "t1"
    assert run.task.command.value == "sleep 100"
    assert run.framework.name == "http-framework"
    sent = agent_update(
        cluster, agent, agent_id, subscription.framework_id, "t1", TaskState.TASK_RUNNING
    )
    status = subscription.next("UPDATE")["update"]["status"]
    assert status["task_id"] == {"value": "t1"}
    assert status["state"] == "TASK_RUNNING"
    assert status["agent_id"] == {"value": agent_id}
    assert base64.b64decode(status["uuid"]) == sent.uuid
    cluster.accepted(
        subscription,
        "ACKNOWLEDGE",
        {"agent_id": status["agent_id"], "task_id": status["task_id"], "uuid": status["uuid"]},
    )
    ack = agent.next(StatusUpdateAcknowledgement)
    assert (ack.task_id, ack.uuid, ack.framework_id) == ("t1", sent.uuid, subscription.framework_id)
    (task,) = cluster.describe()["tasks"]
    assert task["state"] == "TASK_RUNNING"


def test_launch_group_reaches_the_agent(ready):
    cluster, agent, agent_id, subscription = ready
    offer = subscription.next("OFFERS")["offers"]["offers"][0]
    executor = {
        "executor_id": {"value": "group-executor"},
        "type": "DEFAULT",
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}}],
    }
    tasks = [task_json(name, agent_id) for name in ("g1", "g2")]
    operation = {
        "type": "LAUNCH_GROUP",
        "launch_group": {"executor": executor, "task_group": {"tasks": tasks}},
    }
    cluster.accepted(
        subscription, "ACCEPT", {"offer_ids": [offer["id"]], "operations": [operation]}
    )
    group = agent.next(RunTaskGroup)
    assert [task.task_id for task in group.task_group.tasks] == ["g1", "g2"]
    assert group.executor.executor_id == "group-executor"


def test_an_invalid_launch_is_answered_by_an_update_not_an_http_error(ready):
    cluster, _, agent_id, subscription = ready
    offer = subscription.next("OFFERS")["offers"]["offers"][0]
    task = task_json("big", agent_id)
    task["resources"][0]["scalar"]["value"] = 64
    operation = {"type": "LAUNCH", "launch": {"task_infos": [task]}}
    cluster.accepted(
        subscription, "ACCEPT", {"offer_ids": [offer["id"]], "operations": [operation]}
    )
    status = subscription.next("UPDATE")["update"]["status"]
    assert (status["state"], status["reason"]) == ("TASK_ERROR", "REASON_TASK_INVALID")
    assert "uuid" not in status  # the master's own update: nothing to acknowledge


def test_decline_revive_and_suppress(ready):
    cluster, _, _, subscription = ready
    offer = subscription.next("OFFERS")["offers"]["offers"][0]
    cluster.accepted(
        subscription, "DECLINE", {"offer_ids": [offer["id"]], "filters": {"refuse_seconds": 1000}}
    )
    cluster.tick(3)
    assert [e for e in subscription.drain() if e["type"] == "OFFERS"] == []
    cluster.accepted(subscription, "REVIVE")  # drops the filter
    cluster.tick(1)
    offer = subscription.next("OFFERS")["offers"]["offers"][0]
    cluster.accepted(subscription, "SUPPRESS", {"roles": ["*"]})
    cluster.accepted(
        subscription, "DECLINE", {"offer_ids": [offer["id"]], "filters": {"refuse_seconds": 0}}
    )
    cluster.tick(3)
    assert [e for e in subscription.drain() if e["type"] == "OFFERS"] == []
    cluster.accepted(subscription, "REVIVE", {"roles": ["*"]})
    cluster.tick(1)
    subscription.next("OFFERS")


def test_kill_reaches_the_agent_and_an_unknown_task_is_lost(ready):
    cluster, agent, agent_id, subscription = ready
    launch(cluster, subscription, agent, "t1")
    cluster.accepted(subscription, "KILL", {"task_id": {"value": "t1"}})
    kill = agent.next(KillTask)
    assert (kill.task_id, kill.agent_id) == ("t1", agent_id)
    cluster.accepted(subscription, "KILL", {"task_id": {"value": "nope"}})
    status = subscription.next("UPDATE")["update"]["status"]
    assert (status["task_id"], status["state"], status["reason"]) == (
        {"value": "nope"},
        "TASK_LOST",
        "REASON_TASK_UNKNOWN",
    )


def test_reconcile_implicit_and_explicit(ready):
    cluster, agent, _, subscription = ready
    launch(cluster, subscription, agent, "t1")
    cluster.accepted(subscription, "RECONCILE", {"tasks": []})
    status = subscription.next("UPDATE")["update"]["status"]
    assert (status["task_id"], status["state"]) == ({"value": "t1"}, "TASK_STAGING")
    assert status["reason"] == "REASON_RECONCILIATION" and "uuid" not in status
    cluster.accepted(subscription, "RECONCILE", {"tasks": [{"task_id": {"value": "ghost"}}]})
    status = subscription.next("UPDATE")["update"]["status"]
    assert (status["task_id"], status["state"]) == ({"value": "ghost"}, "TASK_LOST")


def test_messages_shutdown_and_failures_both_ways(ready):
    cluster, agent, agent_id, subscription = ready
    data = base64.b64encode(b"\x00hello").decode()
    cluster.accepted(
        subscription,
        "MESSAGE",
        {"agent_id": {"value": agent_id}, "executor_id": {"value": "e1"}, "data": data},
    )
    message = agent.next(FrameworkToExecutor)
    assert (message.executor_id, message.data) == ("e1", b"\x00hello")
    cluster.accepted(
        subscription, "SHUTDOWN", {"agent_id": {"value": agent_id}, "executor_id": {"value": "e1"}}
    )
    assert agent.next(ShutdownExecutor).executor_id == "e1"
    back = ExecutorToFramework(
        AgentID(agent_id), subscription.framework_id, ExecutorID("e1"), b"hi"
    )
    cluster.runtime.dispatch(agent, agent.say, cluster.master.pid, back).result(WAIT)
    event = subscription.next("MESSAGE")["message"]
    assert event == {
        "agent_id": {"value": agent_id},
        "executor_id": {"value": "e1"},
        "data": base64.b64encode(b"hi").decode(),
    }
    exited = ExitedExecutor(AgentID(agent_id), subscription.framework_id, ExecutorID("e1"), 3)
    cluster.runtime.dispatch(agent, agent.say, cluster.master.pid, exited).result(WAIT)
    failure = subscription.next("FAILURE")["failure"]
    assert failure == {"agent_id": {"value": agent_id}, "executor_id": {"value": "e1"}, "status": 3}


def test_request_is_accepted_and_ignored(ready):
    cluster, _, _, subscription = ready
    cluster.accepted(subscription, "REQUEST", {"requests": [{"agent_id": {"value": "x"}}]})
    assert cluster.framework(subscription.framework_id)["active"]


def test_teardown_shuts_the_framework_down_and_ends_the_stream(ready):
    cluster, agent, _, subscription = ready
    launch(cluster, subscription, agent, "t1")
    cluster.accepted(subscription, "TEARDOWN")
    assert agent.next(ShutdownFramework).framework_id == subscription.framework_id
    assert subscription.wait_ended()
    assert cluster.describe()["frameworks"] == []
    status, text, _ = cluster.call(subscription, "REVIVE")
    assert status == 400 and "Framework cannot be found" in text


# -- disconnection and resubscription ---------------------------------------------------------


def wait_inactive(cluster: Cluster, framework_id: str) -> None:
    """Advance heartbeats until a write finds the client gone and the master disconnects."""
    deadline = time.monotonic() + WAIT
    while cluster.framework(framework_id)["active"]:
        assert time.monotonic() < deadline, "the master never saw the client go"
        cluster.tick(HEARTBEAT)
        time.sleep(0.02)


def test_a_client_that_goes_away_disconnects_its_framework_which_can_resubscribe(ready):
    cluster, _, _, subscription = ready
    framework_id = subscription.framework_id
    subscription.next("OFFERS")
    subscription.disconnect()
    wait_inactive(cluster, framework_id)
    framework = cluster.framework(framework_id)
    assert (framework["active"], framework["connected"]) == (False, False)
    status, text, _ = cluster.call(subscription, "REVIVE")
    assert status == 403 and "not subscribed" in text
    again = cluster.subscribe(framework_id)
    event = again.next("SUBSCRIBED")
    assert event["subscribed"]["framework_id"] == {"value": framework_id}
    assert again.stream_id != subscription.stream_id
    again.framework_id = framework_id
    assert cluster.framework(framework_id)["active"]
    again.next("OFFERS")  # its offers came back to the allocator and are offered again
    cluster.accepted(again, "REVIVE")
    status, text, _ = cluster.call(subscription, "REVIVE")  # the old stream id
    assert status == 400 and "didn't match the stream ID" in text


def test_the_failover_timeout_still_removes_a_framework_that_does_not_come_back(ready):
    cluster, agent, _, subscription = ready
    launch(cluster, subscription, agent, "t1")
    subscription.disconnect()
    wait_inactive(cluster, subscription.framework_id)
    cluster.tick(FRAMEWORK_INFO["failover_timeout"])
    assert agent.next(ShutdownFramework).framework_id == subscription.framework_id
    assert cluster.describe()["frameworks"] == []


def test_resubscribing_from_a_new_connection_replaces_the_old_stream(ready):
    cluster, _, _, old = ready
    framework_id = old.framework_id
    new = cluster.subscribe(framework_id)
    new.next("SUBSCRIBED")
    new.framework_id = framework_id
    error = old.next("ERROR")["error"]
    assert "failed over" in error["message"]
    assert old.wait_ended()
    cluster.settle()
    framework = cluster.framework(framework_id)
    assert framework["active"] and framework["connected"]
    assert cluster.master.scheduler_api.subscription(framework_id).stream_id == new.stream_id
    cluster.accepted(new, "REVIVE")
    status, text, _ = cluster.call(old, "REVIVE")
    assert status == 400 and "didn't match" in text


def test_subscribing_with_a_removed_framework_id_gets_an_error_event(ready):
    cluster, _, _, subscription = ready
    cluster.accepted(subscription, "TEARDOWN")
    assert subscription.wait_ended()
    again = cluster.subscribe(subscription.framework_id)
    assert again.status == 200
    assert "was removed" in again.next("ERROR")["error"]["message"]
    assert again.wait_ended()


def test_suppressed_roles_at_subscription_mean_no_offers_until_revive(cluster):
    cluster.add_agent()
    subscription = cluster.subscribe()
    call = {
        "type": "SUBSCRIBE",
        "subscribe": {"framework_info": FRAMEWORK_INFO, "suppressed_roles": ["*"]},
    }
    suppressed = Subscription(cluster.address, call, JSON_HEADERS)
    cluster.subscriptions.append(suppressed)
    suppressed.framework_id = suppressed.next("SUBSCRIBED")["subscribed"]["framework_id"]["value"]
    subscription.next("SUBSCRIBED")
    offer = subscription.next("OFFERS")["offers"]["offers"][0]  # the other framework's
    subscription.framework_id = offer["framework_id"]["value"]
    cluster.accepted(
        subscription, "DECLINE", {"offer_ids": [offer["id"]], "filters": {"refuse_seconds": 100}}
    )
    cluster.tick(3)
    assert [e for e in suppressed.drain() if e["type"] == "OFFERS"] == []
    cluster.accepted(suppressed, "REVIVE")
    cluster.tick(1)
    suppressed.next("OFFERS")


# -- HTTP and native frameworks together -------------------------------------------------------


class Offered(Scheduler):
    def __init__(self) -> None:
        self.offers: queue.Queue = queue.Queue()

    def resource_offers(self, driver, offers) -> None:
        self.offers.put(offers)


def test_an_http_and_a_native_framework_share_the_master(ready):
    cluster, _, agent_id, subscription = ready
    offer = subscription.next("OFFERS")["offers"]["offers"][0]
    scheduler = Offered()
    info = FrameworkInfo(user="tester", name="native-framework")
    driver = SchedulerDriver(scheduler, info, cluster.address, host="127.0.0.1")
    driver.start()
    try:
        deadline = time.monotonic() + WAIT
        while len(cluster.describe()["frameworks"]) < 2:
            assert time.monotonic() < deadline, "the native framework did not register"
            time.sleep(0.02)
        # The HTTP framework declines its offer for long; the allocator offers it to the other.
        cluster.accepted(
            subscription,
            "DECLINE",
            {"offer_ids": [offer["id"]], "filters": {"refuse_seconds": 1000}},
        )
        cluster.tick(1)
        (native_offer,) = scheduler.offers.get(timeout=WAIT)
        assert native_offer.agent_id == agent_id
        names = {f["name"]: f["active"] for f in cluster.describe()["frameworks"]}
        assert names == {"http-framework": True, "native-framework": True}
        # The native driver's framework is not one the HTTP API takes calls for.
        native_id = next(
            f["id"] for f in cluster.describe()["frameworks"] if f["name"] == "native-framework"
        )
        call = {"type": "REVIVE", "framework_id": {"value": native_id}}
        headers = {**JSON_HEADERS, "Mesos-Stream-Id": subscription.stream_id}
        status, text, _ = post(cluster.address, call, headers)
        assert status == 403 and "not connected via HTTP" in text
    finally:
        driver.stop()


# -- refusals ----------------------------------------------------------------------------------


def test_a_method_other_than_post_is_405_with_allow(ready):
    cluster, _, _, _ = ready
    status, text, headers = post(cluster.address, b"", {}, method="GET")
    assert (status, headers["Allow"]) == (405, "POST")
    assert "POST a JSON scheduler Call" in text


@pytest.mark.parametrize(
    "headers, status, words",
    [
        ({}, 400, "Expecting 'Content-Type' to be present"),
        ({"Content-Type": "text/plain"}, 415, "Expecting 'Content-Type' of application/json"),
        ({"Content-Type": "application/x-protobuf"}, 415, "JSON only"),
    ],
)
def test_content_types(ready, headers, status, words):
    cluster, _, _, _ = ready
    call = {"type": "SUBSCRIBE", "subscribe": {"framework_info": FRAMEWORK_INFO}}
    answer, text, _ = post(cluster.address, call, headers)
    assert answer == status and words in text, text


@pytest.mark.parametrize(
    "body, words",
    [
        (b"", "has no body"),
        (b"{not json", "Failed to parse body into JSON"),
        (b"[1, 2]", "a JSON object"),
        (b'{"subscribe": {}}', "Expecting 'type' to be present"),
        (b'{"type": "FLY"}', "not a scheduler call type"),
        (b'{"type": 7}', "not a scheduler call type"),
        (b'{"type": "SUBSCRIBE"}', "Expecting 'subscribe' to be present"),
        (b'{"type": "SUBSCRIBE", "subscribe": {"framework_info": {"name": "x"}}}',
         "subscribe.framework_info.user"),
        (b'{"type": "TEARDOWN"}', "Expecting 'framework_id' to be present"),
        (b'{"type": "TEARDOWN", "framework_id": "abc"}', "'framework_id' is malformed"),
        (b'{"type": "SUBSCRIBE", "framework_id": {"value": "a"}, "subscribe": {"framework_info":'
         b' {"user": "u", "name": "n", "id": {"value": "b"}}}}', "differs from"),
    ],
)  # fmt: skip
def test_malformed_calls_are_400_with_a_reason(ready, body, words):
    cluster, _, _, _ = ready
    status, text, _ = post(cluster.address, body)
    assert status == 400 and words in text, text


def test_calls_of_newer_mesos_versions_are_501(ready):
    cluster, _, _, subscription = ready
    status, text, _ = cluster.call(subscription, "UPDATE_FRAMEWORK", {})
    assert status == 501 and "not implemented by Corral" in text


@pytest.mark.parametrize(
    "accept, status",
    [
        ("application/x-protobuf", 406),
        ("text/html, application/json;q=0", 406),
        ("application/json;q=0, */*", 406),
        ("*/*", 200),
        ("application/*;q=0.5", 200),
        ("application/x-protobuf, application/json", 200),
    ],
)
def test_subscribe_needs_an_accept_that_allows_json(ready, accept, status):
    cluster, _, _, _ = ready
    subscription = cluster.subscribe(headers={"Content-Type": "application/json", "Accept": accept})
    assert subscription.status == status
    if status == 406:
        assert "JSON only" in subscription.text


def test_subscribe_with_a_stream_id_is_400(ready):
    cluster, _, _, subscription = ready
    headers = {**JSON_HEADERS, "Mesos-Stream-Id": subscription.stream_id}
    call = {"type": "SUBSCRIBE", "subscribe": {"framework_info": FRAMEWORK_INFO}}
    status, text, _ = post(cluster.address, call, headers)
    assert status == 400 and "should not include the 'Mesos-Stream-Id'" in text


def test_calls_need_the_framework_s_stream_id(ready):
    cluster, _, _, subscription = ready
    call = {"type": "TEARDOWN", "framework_id": {"value": subscription.framework_id}}
    status, text, _ = post(cluster.address, call)
    assert status == 400 and "should include the 'Mesos-Stream-Id' header" in text
    status, text, _ = post(cluster.address, call, {**JSON_HEADERS, "Mesos-Stream-Id": "other"})
    assert status == 400 and "didn't match the stream ID" in text
    other = cluster.subscribed(name="other")  # its own stream id does not serve another
    status, text, _ = post(
        cluster.address, call, {**JSON_HEADERS, "Mesos-Stream-Id": other.stream_id}
    )
    assert status == 400
    unknown = {"type": "TEARDOWN", "framework_id": {"value": "no-such-framework"}}
    status, text, _ = post(cluster.address, unknown, {**JSON_HEADERS, "Mesos-Stream-Id": "x"})
    assert status == 400 and "Framework cannot be found" in text
    assert cluster.framework(subscription.framework_id)["active"]  # nothing happened


@pytest.mark.parametrize(
    "body, words",
    [
        ({"agent_id": {"value": "a"}, "task_id": {"value": "t"}, "uuid": "not base64!"},
         "acknowledge.uuid"),
        ({"agent_id": {"value": "a"}, "task_id": {"value": "t"},
          "uuid": base64.b64encode(b"short").decode()}, "16-byte uuid"),
        ({"agent_id": {"value": "a"}, "task_id": {"value": "t"}}, "acknowledge.uuid"),
    ],
)  # fmt: skip
def test_acknowledge_with_a_malformed_uuid_is_400(ready, body, words):
    cluster, agent, _, subscription = ready
    status, text, _ = cluster.call(subscription, "ACKNOWLEDGE", body)
    assert status == 400 and words in text, text
    cluster.settle()
    assert not [m for m in agent.drain() if isinstance(m, StatusUpdateAcknowledgement)]


def test_malformed_call_bodies_name_the_field(ready):
    cluster, _, agent_id, subscription = ready
    bad_task = task_json("t", agent_id, resources=[{"name": "cpus", "type": "SCALAR"}])
    cases = [
        ("ACCEPT", None, "Expecting 'accept' to be present"),
        ("ACCEPT", {"offer_ids": []}, "at least one offer"),
        ("ACCEPT", {"offer_ids": [{"value": "o"}],
                    "operations": [{"type": "LAUNCH", "launch": {"task_infos": [bad_task]}}]},
         "accept.operations[0].launch.task_infos[0].resources"),
        ("ACCEPT", {"offer_ids": [{"value": "o"}], "operations": [{"type": "TELEPORT"}]},
         "accept.operations[0].type"),
        ("DECLINE", {"offer_ids": [{"value": "o"}], "filters": {"refuse_seconds": -1}},
         "decline.filters.refuse_seconds"),
        ("KILL", {}, "kill.task_id"),
        ("SHUTDOWN", {"executor_id": {"value": "e"}}, "shutdown.agent_id"),
        ("RECONCILE", {"tasks": [{}]}, "reconcile.tasks[0].task_id"),
        ("MESSAGE", {"agent_id": {"value": "a"}, "executor_id": {"value": "e"}},
         "message.data"),
        ("REVIVE", {"roles": ["bad role"]}, "revive.roles[0]"),
    ]  # fmt: skip
    for kind, body, words in cases:
        status, text, _ = cluster.call(subscription, kind, body)
        assert status == 400 and words in text, (kind, text)
    assert cluster.framework(subscription.framework_id)["active"]


def test_unsupported_operations_are_dropped_and_the_rest_applies(ready):
    cluster, agent, agent_id, subscription = ready
    offer = subscription.next("OFFERS")["offers"]["offers"][0]
    operations = [
        {"type": "CREATE", "create": {"volumes": []}},
        {"type": "LAUNCH", "launch": {"task_infos": [task_json("t1", agent_id)]}},
    ]
    cluster.accepted(subscription, "ACCEPT", {"offer_ids": [offer["id"]], "operations": operations})
    assert agent.next(RunTask).task.task_id == "t1"


def test_a_master_not_ready_answers_503(ready):
    cluster, _, _, _ = ready
    master = cluster.master
    info = master.master_info
    cluster.runtime.dispatch(master, setattr, master, "master_info", None).result(WAIT)
    try:
        call = {"type": "SUBSCRIBE", "subscribe": {"framework_info": FRAMEWORK_INFO}}
        status, text, _ = post(cluster.address, call)
        assert status == 503 and "retry" in text
    finally:
        cluster.runtime.dispatch(master, setattr, master, "master_info", info).result(WAIT)


# -- the sans-IO pieces ------------------------------------------------------------------------


def test_accepts_follows_the_most_specific_media_range():
    json_only = ["application/json"]
    assert accepts(None, json_only)
    assert accepts("application/json", json_only)
    assert accepts("text/html, */*;q=0.1", json_only)
    assert not accepts("application/json; q=0, */*", json_only)
    assert not accepts("application/x-protobuf", json_only)
    assert not accepts("*/*;q=0", json_only)
    assert not accepts("application/*;q=0.0", json_only)
    assert accepts(
        "application/json;q=0, application/recordio", [*json_only, "application/recordio"]
    )


def test_parse_call_fills_the_subscribe_id_from_the_call():
    call = parse_call(
        json.dumps(
            {
                "type": "SUBSCRIBE",
                "framework_id": {"value": "f1"},
                "subscribe": {"framework_info": {"user": "u", "name": "n"}},
                "unknown_key": {"ignored": True},
            }
        ).encode()
    )
    assert call.framework_id == "f1"
    assert call.subscribe.framework_info.id == "f1"
    with pytest.raises(CallError) as refused:
        parse_call(b'{"type": "KILL", "framework_id": {"value": "f1"}}')
    assert refused.value.status == 400 and "'kill'" in refused.value.reason
