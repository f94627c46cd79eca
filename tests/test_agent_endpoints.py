"""The agent's Mesos endpoints over real HTTP: /state, /monitor/statistics, /files/*,
/containers, /metrics/snapshot, with a real agent running a command task."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request

import pytest

from corral.protocol.messages import RegisterAgent, StatusUpdate
from corral.task_states import TaskState
from libprocess import Runtime
from tests.test_agent import Cluster, command_task, wait_until

WAIT = 10.0


@pytest.fixture
def http_runtime():
    with Runtime("127.0.0.1", 0, http_port=0) as running:
        yield running


@pytest.fixture
def running(http_runtime, tmp_path):
    """An agent with one command task running, which wrote ``out.txt`` in its sandbox."""
    cluster = Cluster(http_runtime, tmp_path)
    cluster.master.next(RegisterAgent)
    cluster.run(command_task("web", "printf 'hello sandbox' > out.txt; sleep 30"))
    states = [cluster.master.next(StatusUpdate, WAIT)[1].status.state for _ in range(2)]
    assert states == [TaskState.TASK_STARTING, TaskState.TASK_RUNNING]
    runs = tmp_path / "frameworks" / "fw-1" / "executors" / "web" / "runs"
    (cluster.sandbox,) = runs.iterdir()
    wait_until(lambda: (cluster.sandbox / "out.txt").exists(), WAIT)
    yield cluster
    cluster.close()


def get(runtime: Runtime, endpoint: str, **query: str) -> tuple[int, bytes, str]:
    url = f"http://{runtime.http_address}{endpoint}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    try:
        with urllib.request.urlopen(url, timeout=WAIT) as response:
            return response.status, response.read(), response.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read(), error.headers["Content-Type"]


def get_json(runtime: Runtime, endpoint: str, **query: str):
    status, body, content_type = get(runtime, endpoint, **query)
    assert status == 200, body
    assert content_type.startswith("application/json")
    return json.loads(body)


def test_state_is_mesos_json_at_every_path_with_corrals_keys(running, http_runtime):
    for path in ("/state", "/slave(1)/state", "/agent/state", "/state.json"):
        state = get_json(http_runtime, path)
        assert state["id"] == "test-S0" and state["hostname"] == "test-agent"
        assert state["pid"] == str(running.agent_pid) and state["registered"] is True
        assert state["resources"]["cpus"] == 2 and state["resources"]["ports"] == "[31000-31010]"
        assert state["attributes"] == {"rack": "r1"}
        assert state["master_hostname"] == "127.0.0.1"
        assert state["flags"]["work_dir"] == str(running.work_dir)
        assert "isolators" in state and state["completed_frameworks"] == []
        (framework,) = state["frameworks"]
        assert framework["id"] == "fw-1" and framework["name"] == "agent-tests"
        (executor,) = framework["executors"]
        assert executor["id"] == "web"
        assert executor["directory"] == str(running.sandbox)
        assert executor["container"] == running.sandbox.name
        assert executor["resources"]["mem"] == 32
        assert executor["queued_tasks"] == [] and executor["completed_tasks"] == []
        (task,) = executor["tasks"]
        assert task["id"] == "web" and task["state"] == "TASK_RUNNING"
        assert task["slave_id"] == "test-S0" and task["framework_id"] == "fw-1"
    status, body, content_type = get(http_runtime, "/state", jsonp="show")
    assert status == 200 and content_type.startswith("text/javascript")
    assert body.startswith(b"show(") and body.endswith(b");")


def test_monitor_containers_and_metrics(running, http_runtime):
    (entry,) = get_json(http_runtime, "/monitor/statistics")
    assert entry["executor_id"] == "web" and entry["framework_id"] == "fw-1"
    (container,) = get_json(http_runtime, "/containers")
    assert container["container_id"] == running.sandbox.name
    assert container["executor_id"] == "web" and container["framework_id"] == "fw-1"
    assert container["status"]["executor_pid"] > 0
    assert "statistics" in container
    metrics = get_json(http_runtime, "/metrics/snapshot")
    assert metrics["slave/registered"] == 1
    assert metrics["slave/tasks_running"] == 1
    assert metrics["slave/executors_running"] == 1
    assert metrics["slave/cpus_total"] == 2 and metrics["slave/mem_total"] == 1024
    assert metrics["slave/mem_used"] == 32
    assert metrics["slave/uptime_secs"] >= 0
    assert metrics["slave/tasks_finished"] == 0


def test_files_browse_read_and_download_a_sandbox(running, http_runtime):
    directory = str(running.sandbox)
    entries = get_json(http_runtime, "/files/browse", path=directory)
    by_name = {os.path.basename(entry["path"]): entry for entry in entries}
    assert {"out.txt", "stdout", "stderr"} <= set(by_name)
    out = by_name["out.txt"]
    assert out["size"] == len("hello sandbox") and out["mode"].startswith("-rw")
    assert out["nlink"] == 1 and out["uid"] and out["gid"] and out["mtime"] > 0
    # Mesos's virtual form of the same directory (relative to the work dir).
    virtual = "/" + str(running.sandbox.relative_to(running.work_dir))
    assert len(get_json(http_runtime, "/files/browse", path=virtual)) == len(entries)
    file = f"{directory}/out.txt"
    assert get_json(http_runtime, "/files/read", path=file, offset="-1") == {
        "data": "",
        "offset": 13,
    }
    for past in ("13", "99"):  # at or past the end: no data, the size as the offset (Mesos)
        assert get_json(http_runtime, "/files/read", path=file, offset=past) == {
            "data": "",
            "offset": 13,
        }
    assert get_json(http_runtime, "/files/read", path=file, offset="6", length="4") == {
        "data": "sand",
        "offset": 6,
    }
    status, body, content_type = get(http_runtime, "/files/download", path=file)
    assert (status, body, content_type) == (200, b"hello sandbox", "application/octet-stream")


def test_files_stay_inside_the_sandboxes(running, http_runtime, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret").write_text("not yours")
    (running.sandbox / "escape").symlink_to(outside / "secret")
    (running.sandbox / "escape-dir").symlink_to(outside)
    directory = str(running.sandbox)
    cases = [
        ("/files/browse", {}, 400, "path"),
        ("/files/browse", {"path": f"{directory}/../../.."}, 400, ".."),
        ("/files/read", {"path": f"{directory}/../web/out.txt", "offset": "0"}, 400, ".."),
        ("/files/browse", {"path": "/etc"}, 404, "not in a sandbox"),
        ("/files/download", {"path": "/etc/passwd"}, 404, "not in a sandbox"),
        ("/files/browse", {"path": str(running.work_dir / "meta")}, 404, "not in a sandbox"),
        ("/files/read", {"path": f"{directory}/missing", "offset": "0"}, 404, "does not exist"),
        ("/files/download", {"path": f"{directory}/escape"}, 403, "leads out"),
        ("/files/read", {"path": f"{directory}/escape", "offset": "0"}, 403, "leads out"),
        ("/files/browse", {"path": f"{directory}/escape-dir"}, 403, "leads out"),
        ("/files/read", {"path": directory, "offset": "0"}, 400, "directory"),
        ("/files/read", {"path": f"{directory}/out.txt", "offset": "x"}, 400, "offset"),
    ]
    for path, query, expected, needle in cases:
        status, body, content_type = get(http_runtime, path, **query)
        assert status == expected, (path, query, body)
        assert needle in body.decode(), (needle, body)
        assert content_type.startswith("text/plain")
    # The escaping link is still listed (browsing the sandbox is fine); its target is not read.
    names = [
        os.path.basename(e["path"]) for e in get_json(http_runtime, "/files/browse", path=directory)
    ]
    assert "escape" in names


def test_a_finished_executor_is_listed_as_completed(running, http_runtime):
    running.run(command_task("brief", "true"))
    wait_until(
        lambda: any(
            executor["id"] == "brief"
            for framework in get_json(http_runtime, "/state")["frameworks"]
            for executor in framework["completed_executors"]
        ),
        WAIT,
    )
    state = get_json(http_runtime, "/state")
    (framework,) = state["frameworks"]
    (done,) = framework["completed_executors"]
    (task,) = done["completed_tasks"]
    assert task["id"] == "brief" and task["state"] == "TASK_FINISHED"
    assert get_json(http_runtime, "/metrics/snapshot")["slave/tasks_finished"] == 1
