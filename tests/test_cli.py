"""The ``corral`` command line as an operator uses it: master and agent in the foreground,
listings, and a clean stop on SIGTERM."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from corral.cli.cluster import free_port, wait_for_agents

CORRAL = str(Path(sys.executable).with_name("corral"))
WAIT = 20.0  # wall-clock safety net


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [CORRAL, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _stop(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=WAIT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise


def test_master_and_agent_in_the_foreground(tmp_path):
    port = free_port("127.0.0.1")
    master = _start("master", "--port", str(port), "--work-dir", str(tmp_path / "master"))
    agent = None
    try:
        assert "serving http://127.0.0.1:" in master.stdout.readline()
        agent = _start(
            "agent",
            "--master",
            f"127.0.0.1:{port}",
            "--port",
            str(free_port("127.0.0.1")),
            "--work-dir",
            str(tmp_path / "agent"),
            "--resources",
            "cpus:3;mem:512",
        )
        wait_for_agents(f"127.0.0.1:{port}", 1, timeout=WAIT)
        listed = subprocess.run(
            [CORRAL, "agents", "--master", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )
        assert listed.returncode == 0, listed.stderr
        assert "cpus:3" in listed.stdout and "mem:512" in listed.stdout
        assert "registry.log" in {path.name for path in (tmp_path / "master").iterdir()}
    finally:
        codes = [_stop(agent) if agent else 0, _stop(master)]
    assert codes == [0, 0]


def test_an_agent_without_a_master_keeps_trying_and_stops_cleanly(tmp_path):
    agent = _start(
        "agent",
        "--master", f"127.0.0.1:{free_port('127.0.0.1')}",
        "--port", str(free_port("127.0.0.1")),
        "--work-dir", str(tmp_path / "agent"),
        "--resources", "cpus:1;mem:128",
    )  # fmt: skip
    # Serving (its SIGTERM handler is in place once it says so), then retrying discovery.
    assert "serving" in agent.stdout.readline()
    time.sleep(1.0)
    assert agent.poll() is None
    assert _stop(agent) == 0


def test_local_runs_a_cluster_until_sigterm(tmp_path):
    port, door = free_port("127.0.0.1"), free_port("127.0.0.1")
    local = _start(
        "local", "--agents", "2", "--port", str(port), "--work-dir", str(tmp_path),
        "--frontdoor-port", str(door),
    )  # fmt: skip
    agent_pids = []
    try:
        lines = []
        deadline = time.monotonic() + WAIT
        while not any("Ctrl-C stops the cluster" in line for line in lines):
            assert time.monotonic() < deadline, lines
            lines.append(local.stdout.readline())
        agent_pids = [
            int(line.split("OS pid ")[1].rstrip(")\n")) for line in lines if "OS pid" in line
        ]
        assert len(agent_pids) == 2
        listed = subprocess.run(
            [CORRAL, "agents", "--master", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )
        assert listed.stdout.count("-S") == 2, listed.stdout
        # The front door it printed serves the master's state under /mesos.
        assert any(line.startswith(f"frontdoor serving http://127.0.0.1:{door} ") for line in lines)
        with urllib.request.urlopen(f"http://127.0.0.1:{door}/mesos/master/state") as answer:
            assert len(json.loads(answer.read())["slaves"]) == 2
    finally:
        code = _stop(local)
    assert code == 0
    for pid in agent_pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 0)
            raise AssertionError(f"agent process {pid} outlived corral local")
