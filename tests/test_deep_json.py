"""Deeply nested JSON is a 400 that names the problem and the limit, on every v1 endpoint.

Black-box: real HTTP requests to a real master (``/api/v1/scheduler``, ``/api/v1``) and a real
agent (``/api/v1/executor``, ``/api/v1``). Python's JSON parser recurses once per level, so
such bodies used to end in a ``RecursionError`` inside the route: ``http_route_failed`` and a
500. A body nested as deep as the limit allows is still read, and answered for what it says.
"""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest

from corral.protocol.messages import RegisterAgent
from corral.v1.http import MAX_DEPTH, CallError, json_body
from libprocess import Runtime
from master import MasterProcess
from tests.test_agent import Cluster as AgentCluster
from tests.test_master import OPTIONS

WAIT = 10.0  # wall-clock safety net
TOO_DEEP = f"nests arrays and objects more than {MAX_DEPTH} levels deep, the most a call may"

# Unbalanced (the 100,000 "["), and balanced arrays and objects 10,000 levels deep.
DEEP_BODIES = {
    "unbalanced arrays": b"[" * 100_000,
    "balanced arrays": b"[" * 10_000 + b"]" * 10_000,
    "balanced objects": b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
}


def nested(levels: int) -> Any:
    """``levels`` arrays inside each other: [[[...[1]...]]]."""
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def post(runtime: Runtime, path: str, body: bytes) -> tuple[int, str, str]:
    """(status, Content-Type, body text) of a JSON POST to ``path``."""
    host, port = runtime.http_address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=WAIT)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    try:
        connection.request("POST", path, body, headers)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read().decode()
    finally:
        connection.close()


def assert_too_deep_is_refused(runtime: Runtime, path: str) -> None:
    for shape, body in DEEP_BODIES.items():
        status, content_type, text = post(runtime, path, body)
        assert status == 400, (shape, status, text)
        assert content_type.startswith("text/plain"), shape
        assert TOO_DEEP in text, (shape, text)


@pytest.fixture
def master_runtime(paused_clock, tmp_path):
    """A real master serving HTTP, on the paused clock."""
    with Runtime("127.0.0.1", 0, http_port=0) as runtime:
        runtime.spawn(MasterProcess(str(tmp_path / "master"), OPTIONS))
        runtime.settle()
        yield runtime


@pytest.fixture
def agent_runtime(tmp_path):
    """A real agent (registered with a stand-in master) serving HTTP."""
    with Runtime("127.0.0.1", 0, http_port=0) as runtime:
        cluster = AgentCluster(runtime, tmp_path / "agent")
        cluster.master.next(RegisterAgent)
        yield runtime
        cluster.close()


# -- one test per endpoint ----------------------------------------------------------------------


def test_the_masters_scheduler_api_refuses_deep_json_with_a_400(master_runtime):
    assert_too_deep_is_refused(master_runtime, "/api/v1/scheduler")
    at_the_limit = json.dumps({"type": "FLY", "fly": nested(MAX_DEPTH - 2)}).encode()
    status, _, text = post(master_runtime, "/api/v1/scheduler", at_the_limit)
    assert status == 400 and "'type' is not a scheduler call type" in text, text


def test_the_masters_operator_api_refuses_deep_json_with_a_400(master_runtime):
    assert_too_deep_is_refused(master_runtime, "/api/v1")
    at_the_limit = json.dumps({"type": "GET_HEALTH", "extra": nested(MAX_DEPTH - 1)}).encode()
    status, _, text = post(master_runtime, "/api/v1", at_the_limit)
    assert status == 200 and json.loads(text)["get_health"] == {"healthy": True}, text


def test_the_masters_agents_gone_endpoint_refuses_deep_json_with_a_400(master_runtime):
    assert_too_deep_is_refused(master_runtime, "/master/agents/gone")
    at_the_limit = json.dumps({"agent_id": "nobody", "extra": nested(MAX_DEPTH - 1)}).encode()
    status, _, text = post(master_runtime, "/master/agents/gone", at_the_limit)
    assert status == 404 and "agent nobody is unknown to this master" in text, text


def test_the_agents_executor_api_refuses_deep_json_with_a_400(agent_runtime):
    assert_too_deep_is_refused(agent_runtime, "/api/v1/executor")
    ids = {"framework_id": {"value": "fw-1"}, "executor_id": {"value": "ex"}}
    at_the_limit = json.dumps({"type": "FLY", **ids, "fly": nested(MAX_DEPTH - 1)}).encode()
    status, _, text = post(agent_runtime, "/api/v1/executor", at_the_limit)
    assert status == 400 and "unknown call type 'FLY'" in text, text


def test_the_agents_operator_api_refuses_deep_json_with_a_400(agent_runtime):
    assert_too_deep_is_refused(agent_runtime, "/api/v1")
    at_the_limit = json.dumps({"type": "GET_HEALTH", "extra": nested(MAX_DEPTH - 1)}).encode()
    status, _, text = post(agent_runtime, "/api/v1", at_the_limit)
    assert status == 200 and json.loads(text)["get_health"] == {"healthy": True}, text


# -- an accepted body never breaks what reads it ------------------------------------------------

# The call types of Mesos's v1 protos, and field names those calls read.
SCHEDULER_CALLS = [
    "ACCEPT",
    "ACCEPT_INVERSE_OFFERS",
    "ACKNOWLEDGE",
    "ACKNOWLEDGE_OPERATION_STATUS",
    "DECLINE",
    "DECLINE_INVERSE_OFFERS",
    "KILL",
    "MESSAGE",
    "RECONCILE",
    "RECONCILE_OPERATIONS",
    "REQUEST",
    "REVIVE",
    "SHUTDOWN",
    "SUBSCRIBE",
    "SUPPRESS",
    "TEARDOWN",
    "UPDATE_FRAMEWORK",
]
MASTER_CALLS = [
    "CREATE_VOLUMES",
    "DEACTIVATE_AGENT",
    "DESTROY_VOLUMES",
    "DRAIN_AGENT",
    "GET_AGENTS",
    "GET_EXECUTORS",
    "GET_FLAGS",
    "GET_FRAMEWORKS",
    "GET_HEALTH",
    "GET_LOGGING_LEVEL",
    "GET_MAINTENANCE_SCHEDULE",
    "GET_MAINTENANCE_STATUS",
    "GET_MASTER",
    "GET_METRICS",
    "GET_OPERATIONS",
    "GET_QUOTA",
    "GET_ROLES",
    "GET_STATE",
    "GET_TASKS",
    "GET_VERSION",
    "GET_WEIGHTS",
    "GROW_VOLUME",
    "LIST_FILES",
    "MARK_AGENT_GONE",
    "REACTIVATE_AGENT",
    "READ_FILE",
    "REMOVE_QUOTA",
    "RESERVE_RESOURCES",
    "SET_LOGGING_LEVEL",
    "SET_QUOTA",
    "SHRINK_VOLUME",
    "START_MAINTENANCE",
    "STOP_MAINTENANCE",
    "SUBSCRIBE",
    "TEARDOWN",
    "UNRESERVE_RESOURCES",
    "UPDATE_MAINTENANCE_SCHEDULE",
    "UPDATE_QUOTA",
    "UPDATE_WEIGHTS",
]
EXECUTOR_CALLS = ["SUBSCRIBE", "UPDATE", "MESSAGE"]
AGENT_CALLS = [
    "ADD_RESOURCE_PROVIDER_CONFIG",
    "ATTACH_CONTAINER_INPUT",
    "ATTACH_CONTAINER_OUTPUT",
    "GET_AGENT",
    "GET_CONTAINERS",
    "GET_EXECUTORS",
    "GET_FLAGS",
    "GET_FRAMEWORKS",
    "GET_HEALTH",
    "GET_LOGGING_LEVEL",
    "GET_METRICS",
    "GET_OPERATIONS",
    "GET_RESOURCE_PROVIDERS",
    "GET_STATE",
    "GET_TASKS",
    "GET_VERSION",
    "KILL_CONTAINER",
    "KILL_NESTED_CONTAINER",
    "LAUNCH_CONTAINER",
    "LAUNCH_NESTED_CONTAINER",
    "LAUNCH_NESTED_CONTAINER_SESSION",
    "LIST_FILES",
    "MARK_RESOURCE_PROVIDER_GONE",
    "PRUNE_IMAGES",
    "READ_FILE",
    "REMOVE_CONTAINER",
    "REMOVE_NESTED_CONTAINER",
    "REMOVE_RESOURCE_PROVIDER_CONFIG",
    "SET_LOGGING_LEVEL",
    "UPDATE_RESOURCE_PROVIDER_CONFIG",
    "WAIT_CONTAINER",
    "WAIT_NESTED_CONTAINER",
]
FIELDS = [
    "framework_info",
    "operations",
    "offer_ids",
    "filters",
    "agent_id",
    "task_id",
    "executor_id",
    "labels",
    "resources",
    "roles",
    "tasks",
    "status",
    "uuid",
    "data",
    "value",
    "name",
    "id",
    "framework_id",
    "task_infos",
    "path",
    "container_id",
    "weight_infos",
    "quota",
    "machines",
    "role",
    "level",
    "timeout",
]


def answered(runtime: Runtime, path: str, body: bytes) -> int:
    """The status of a JSON POST; a 200 stream (a SUBSCRIBE) is not read to its end."""
    host, port = runtime.http_address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=WAIT)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    try:
        connection.request("POST", path, body, headers)
        response = connection.getresponse()
        if response.getheader("Transfer-Encoding") != "chunked":
            response.read()
        return response.status
    finally:
        connection.close()


def assert_no_call_nested_to_the_limit_fails(runtime: Runtime, path: str, calls, ids) -> None:
    deep = nested(MAX_DEPTH - 2)  # inside {"type": ..., "<call>": {field: ...}}
    for call_type in calls:
        fields = {field: deep for field in FIELDS}
        for body in ({"type": call_type, **ids, **fields}, {**ids, "type": call_type,
                     call_type.lower(): fields}):  # fmt: skip
            status = answered(runtime, path, json.dumps(body).encode())
            assert status != 500, (call_type, status)  # 500: the route itself failed


def test_every_master_call_nested_to_the_limit_is_answered_not_failed(master_runtime):
    assert_no_call_nested_to_the_limit_fails(
        master_runtime, "/api/v1/scheduler", SCHEDULER_CALLS, {}
    )
    assert_no_call_nested_to_the_limit_fails(master_runtime, "/api/v1", MASTER_CALLS, {})
    assert answered(master_runtime, "/api/v1", b'{"type": "GET_HEALTH"}') == 200


def test_every_agent_call_nested_to_the_limit_is_answered_not_failed(agent_runtime):
    ids = {"framework_id": {"value": "fw-1"}, "executor_id": {"value": "ex"}}
    assert_no_call_nested_to_the_limit_fails(agent_runtime, "/api/v1/executor", EXECUTOR_CALLS, ids)
    assert_no_call_nested_to_the_limit_fails(agent_runtime, "/api/v1", AGENT_CALLS, {})
    assert answered(agent_runtime, "/api/v1", b'{"type": "GET_HEALTH"}') == 200


# -- how deep is measured -----------------------------------------------------------------------


def test_the_limit_counts_arrays_and_objects_alike_and_is_inclusive():
    for levels in (MAX_DEPTH - 1, MAX_DEPTH):
        assert json_body(json.dumps(nested(levels)).encode()) == nested(levels)
    mixed = b'{"a": [' * (MAX_DEPTH // 2) + b"1" + b"]}" * (MAX_DEPTH // 2)
    assert json_body(mixed) is not None
    for too_deep in (json.dumps(nested(MAX_DEPTH + 1)).encode(), b"[" + mixed + b"]"):
        with pytest.raises(CallError, match=TOO_DEEP) as refused:
            json_body(too_deep)
        assert refused.value.status == 400


def test_brackets_inside_strings_nest_nothing():
    brackets = "[{" * 1000
    body = json.dumps({"name": brackets, "escaped": 'a "quoted" \\' + brackets}).encode()
    assert json_body(body)["name"] == brackets


def test_many_shallow_arrays_are_not_deep():
    wide = json.dumps({"tasks": [{"resources": [[1], [2]]} for _ in range(5000)]}).encode()
    assert len(json_body(wide)["tasks"]) == 5000
