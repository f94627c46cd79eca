"""The DC/OS command line (PyPI ``dcoscli`` 0.6.1, which nobody on this project wrote), run
unmodified as a subprocess against Corral's front door: ``dcos cluster setup``, ``dcos node``,
``dcos task``, ``dcos task log`` against the master, and ``dcos marathon app add|list|show|
update|restart|remove``, ``dcos marathon deployment list`` and ``dcos marathon task list``
against the services scheduler behind it.

Everything runs in OS processes of its own: master, agent, ``corral dns``, ``corral
services``, ``corral frontdoor``, and each ``dcos`` command. The CLI is built once into a
cache directory (``tests/compat/dcoscli-venv.sh``: it needs ``python3 -m venv`` and the
package index); when it cannot be built the tests skip, naming the command that builds it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from corral.cli.cluster import LocalCluster, start_local_cluster, wait_for_agents
from corral.cli.dns import DnsProcess, launch_dns
from corral.cli.frontdoor import FrontDoorProcess, launch_frontdoor
from master import MasterOptions

WAIT = 60.0  # wall-clock safety net for anything the cluster does
AGENT = "cpus:2;mem:1024;disk:1024;ports:[34600-34640]"  # a range other tests leave alone
ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "tests" / "compat" / "dcoscli-venv.sh"
VENV = Path(
    os.environ.get("CORRAL_DCOSCLI_VENV", Path.home() / ".cache" / "corral" / "dcoscli-0.6.1")
)
MARKER = "corral-task-log-marker"


@pytest.fixture(scope="session")
def dcos_binary() -> Path:
    """The DC/OS CLI's ``dcos``, built into the cache directory the first time."""
    dcos = VENV / "bin" / "dcos"
    build = f"{BUILD.relative_to(ROOT)} {VENV}"
    if not _runs(dcos):
        try:
            VENV.parent.mkdir(parents=True, exist_ok=True)
            built = subprocess.run(
                ["bash", str(BUILD), str(VENV)], capture_output=True, text=True, timeout=600
            )
        except OSError as error:
            pytest.skip(f"cannot make {VENV.parent} ({error.strerror}); build it with `{build}`")
        except subprocess.TimeoutExpired:
            pytest.skip(f"building the DC/OS CLI took over 10 minutes; build it with `{build}`")
        if built.returncode != 0 or not _runs(dcos):
            tail = (built.stderr or built.stdout).strip().splitlines()[-3:]
            pytest.skip(
                f"the DC/OS CLI (dcoscli 0.6.1) could not be built ({' / '.join(tail)}); it "
                f"needs python3-venv and the package index: build it with `{build}`"
            )
    return dcos


def _runs(dcos: Path) -> bool:
    if not dcos.exists():
        return False
    try:
        done = subprocess.run([str(dcos), "--version"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and b"dcoscli.version=0.6.1" in done.stdout


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[LocalCluster]:
    cluster = start_local_cluster(
        1,
        work_dir=str(tmp_path_factory.mktemp("dcos-cli")),
        resources=AGENT,
        master_options=MasterOptions(allocation_interval=0.2),
    )
    try:
        wait_for_agents(cluster.http_address, 1)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def dns(cluster) -> Iterator[DnsProcess]:
    server = launch_dns(cluster.http_address)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def services(cluster, tmp_path_factory) -> Iterator[Any]:
    try:
        from corral.cli.services import launch_services
    except ImportError:
        pytest.skip("needs the services scheduler (corral/cli/services.py), not built yet")
    scheduler = launch_services(
        cluster.http_address, work_dir=tmp_path_factory.mktemp("services-work")
    )
    yield scheduler
    scheduler.stop()


@pytest.fixture(scope="module")
def door(cluster, dns) -> Iterator[FrontDoorProcess]:
    """The front door with the master and the DNS server (and no services scheduler)."""
    door = launch_frontdoor(cluster.http_address, dns=f"127.0.0.1:{dns.http_port}")
    yield door
    assert door.stop() == 0


@pytest.fixture(scope="module")
def full_door(cluster, dns, services) -> Iterator[FrontDoorProcess]:
    """The front door with the services scheduler behind it too."""
    door = launch_frontdoor(
        cluster.http_address, dns=f"127.0.0.1:{dns.http_port}", services=services.address
    )
    yield door
    assert door.stop() == 0


Dcos = Callable[..., subprocess.CompletedProcess]


def _dcos_in(dcos_binary: Path, config: Path) -> Dcos:
    def dcos(*arguments: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DCOS_")}
        env["DCOS_DIR"] = str(config)  # the CLI's configuration: this test's own
        done = subprocess.run(
            [str(dcos_binary), *arguments], capture_output=True, text=True, env=env, timeout=WAIT
        )
        if check:
            assert done.returncode == 0, (arguments, done.stdout, done.stderr)
        return done

    return dcos


@pytest.fixture(scope="module")
def dcos(dcos_binary, door, tmp_path_factory) -> Dcos:
    """``dcos`` with a cluster set up at the master-only front door."""
    run = _dcos_in(dcos_binary, tmp_path_factory.mktemp("dcos-config"))
    run("cluster", "setup", door.url)
    return run


@pytest.fixture(scope="module")
def marathon_dcos(dcos_binary, full_door, tmp_path_factory) -> Dcos:
    run = _dcos_in(dcos_binary, tmp_path_factory.mktemp("dcos-config-full"))
    run("cluster", "setup", full_door.url)
    return run


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=WAIT) as response:
        return json.loads(response.read())


def until(check: Callable[[], Any], what: str, within: float = WAIT) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {within:g} s")


# -- against the master ---------------------------------------------------------------------


def test_cluster_setup_records_the_front_door(dcos, door):
    clusters = json.loads(dcos("cluster", "list", "--json").stdout)
    assert len(clusters) == 1
    cluster_id = get_json(f"{door.url}/metadata")["CLUSTER_ID"]
    assert clusters[0]["cluster_id"] == cluster_id
    assert clusters[0]["url"] == door.url
    assert clusters[0]["version"] == "1.11.0"
    assert clusters[0]["status"] == "AVAILABLE"
    assert clusters[0]["attached"] is True


def test_dcos_node_lists_the_master_and_the_agent(dcos, cluster):
    nodes = json.loads(dcos("node", "--json").stdout)
    agents = [node for node in nodes if node["type"] == "agent"]
    masters = [node for node in nodes if node["type"].startswith("master")]
    agent_id = get_json(f"http://{cluster.http_address}/master/slaves")["slaves"][0]["id"]
    assert [agent["id"] for agent in agents] == [agent_id]
    assert [master["ip"] for master in masters] == ["127.0.0.1"]  # Mesos-DNS's master.mesos
    table = dcos("node").stdout
    assert agent_id in table and "agent" in table and "master" in table


@pytest.fixture(scope="module")
def command_task(cluster, tmp_path_factory) -> Iterator[str]:
    """A task run by ``corral run`` (a framework of its own) that prints MARKER and stays."""
    log = tmp_path_factory.mktemp("corral-run") / "run.log"
    with open(log, "w") as out:
        run = subprocess.Popen(
            [sys.executable, "-m", "corral", "run", "--master", cluster.http_address,
             "--name", "dcos-cli-test", "--command", f"echo {MARKER}; exec sleep 600"],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
    try:
        state = f"http://{cluster.http_address}/master/state"

        def running() -> str | None:
            for framework in get_json(state)["frameworks"]:
                for task in framework["tasks"]:
                    if framework["name"] == "dcos-cli-test" and task["state"] == "TASK_RUNNING":
                        return task["id"]
            return None

        yield until(running, "the corral run task running")
    finally:
        run.terminate()
        try:
            run.wait(10)
        except subprocess.TimeoutExpired:
            run.kill()
            run.wait()


def test_dcos_task_lists_the_running_task(dcos, command_task):
    tasks = json.loads(dcos("task", "--json").stdout)
    assert command_task in [task["id"] for task in tasks]
    assert command_task in dcos("task").stdout


def test_dcos_task_log_reads_the_sandbox_through_the_agents_route(dcos, command_task):
    log = until(
        lambda: MARKER in (out := dcos("task", "log", command_task).stdout) and out,
        "the marker in dcos task log",
    )
    assert MARKER in log


# -- against the services scheduler ---------------------------------------------------------


def app_definition(tmp_path: Path, **fields: Any) -> Path:
    app = {
        "id": "/web",
        "cmd": f"echo {MARKER}; exec python3 -m http.server $PORT0",
        "cpus": 0.1,
        "mem": 32,
        "instances": 1,
        "portDefinitions": [{"port": 0}],
        **fields,
    }
    path = tmp_path / "web.json"
    path.write_text(json.dumps(app))
    return path


def running_tasks(marathon_dcos: Dcos) -> list[dict[str, Any]]:
    tasks = json.loads(marathon_dcos("marathon", "task", "list", "--json").stdout)
    return [
        task
        for task in tasks
        if task.get("appId") == "/web" and task.get("state") in (None, "TASK_RUNNING")
    ]


def app(marathon_dcos: Dcos) -> dict[str, Any] | None:
    apps = json.loads(marathon_dcos("marathon", "app", "list", "--json").stdout)
    return next((a for a in apps if a["id"] == "/web"), None)


def test_a_service_through_the_dcos_cli(marathon_dcos, tmp_path):
    dcos = marathon_dcos
    added = dcos("marathon", "app", "add", str(app_definition(tmp_path)))
    assert added.stdout.startswith("Created deployment ")

    # list and show
    until(lambda: (a := app(dcos)) and a["tasksRunning"] == 1, "one instance running")
    assert "/web" in dcos("marathon", "app", "list").stdout
    shown = json.loads(dcos("marathon", "app", "show", "/web").stdout)
    assert shown["id"] == "/web" and shown["instances"] == 1 and shown["mem"] == 32

    # task list, and dcos task / dcos task log for a Marathon task
    first = until(lambda: running_tasks(dcos), "the task in dcos marathon task list")
    assert first[0]["id"].startswith("web.")
    until(lambda: first[0]["id"] in dcos("task").stdout, "the task in dcos task")
    until(lambda: MARKER in dcos("task", "log", first[0]["id"]).stdout, "the app's stdout")

    # update to more instances than fit (20 of 0.1 cpus on 2 cpus): the deployment stays
    dcos("marathon", "app", "update", "/web", "instances=30")
    deployments = until(
        lambda: json.loads(dcos("marathon", "deployment", "list", "--json").stdout),
        "a deployment listed",
    )
    assert deployments[0]["affectedApps"] == ["/web"]
    assert "/web" in dcos("marathon", "deployment", "list").stdout
    # ... a change while it holds the app needs --force, as in Marathon
    held = dcos("marathon", "app", "update", "/web", "instances=2", check=False)
    assert held.returncode != 0
    dcos("marathon", "app", "update", "--force", "/web", "instances=2")
    until(lambda: (a := app(dcos)) and a["tasksRunning"] == 2 and not a["deployments"], "2 up")
    until(lambda: not json.loads(dcos("marathon", "deployment", "list", "--json").stdout), "done")
    assert "There are no deployments" in dcos("marathon", "deployment", "list", check=False).stderr

    # restart: every instance replaced
    before = {task["id"] for task in running_tasks(dcos)}
    assert len(before) == 2
    assert dcos("marathon", "app", "restart", "/web").stdout.startswith("Created deployment ")
    until(
        lambda: len(now := {t["id"] for t in running_tasks(dcos)}) == 2 and not now & before,
        "both instances replaced",
    )

    # remove: the app and its tasks go
    dcos("marathon", "app", "remove", "/web")
    until(lambda: app(dcos) is None, "the app gone")
    until(lambda: not running_tasks(dcos), "its tasks gone")
