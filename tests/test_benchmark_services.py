"""``benchmarks/services.py --quick`` runs end to end: a real master, simulated agents (with
their simulated health results) and a real ``corral services`` in OS processes of their own,
and a final JSON line with the figures (no speed is asserted: the machine is shared; the
full-scale figures are in docs/services.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = float(os.environ.get("CORRAL_SERVICES_BENCH_TIMEOUT", "150"))
KEYS = (
    "agents",
    "instances",
    "deploy_running_s",
    "deploy_healthy_s",
    "apps_embed_tasks_ms",
    "apps_embed_tasks_p99_ms",
    "tasks_ms",
    "tasks_p99_ms",
    "restart_1000_s",
    "restart_min_healthy_fraction",
    "events_subscribers",
    "events_per_subscriber",
    "deploy_with_subscribers_s",
    "deploy_without_subscribers_s",
    "scale_to_zero_s",
    "cpus",
)

pytestmark = pytest.mark.timeout(TIMEOUT + 30)


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, list[psutil.Process]]:
    """Run the quick mode once; the JSON, its output directory, and the pids it started."""
    out = tmp_path_factory.mktemp("services-bench")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "services.py"), "--quick", "--out", str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    children: dict[int, psutil.Process] = {}  # kept as found: a reused pid is not theirs
    deadline = time.monotonic() + TIMEOUT
    try:
        while True:
            children.update((child.pid, child) for child in descendants(process.pid))
            try:
                stdout, stderr = process.communicate(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    raise
    except subprocess.TimeoutExpired:
        for child in descendants(process.pid):
            child.kill()
        process.send_signal(signal.SIGKILL)
        process.wait()
        pytest.fail(f"benchmarks/services.py --quick ran over {TIMEOUT:g} s")
    assert process.returncode == 0, f"exit {process.returncode}\n{stderr[-4000:]}"
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert lines, f"no stdout\n{stderr[-4000:]}"
    return json.loads(lines[-1]), out, list(children.values())


def test_quick_mode_reports_every_key(quick_run: tuple[dict, Path, list[psutil.Process]]) -> None:
    result, _, _ = quick_run
    missing = [key for key in KEYS if key not in result]
    assert not missing, f"{missing} missing from {sorted(result)}"
    assert result["errors"] == []
    assert (result["agents"], result["instances"], result["events_subscribers"]) == (2000, 1000, 10)
    assert result["cpus"] == os.cpu_count()


def test_the_figures_are_sane(quick_run: tuple[dict, Path, list[psutil.Process]]) -> None:
    result, _, _ = quick_run
    # Healthy only once the simulated agents sent their health results; never before running.
    assert 0 < result["deploy_running_s"] <= result["deploy_healthy_s"] < 60
    for key in ("apps_embed_tasks", "tasks"):
        assert 0 < result[f"{key}_ms"] <= result[f"{key}_p99_ms"], key
    assert result["restart_1000_s"] > 0
    # The upgrade strategy's floor held over every poll of the rolling restart.
    assert 0.9 <= result["restart_min_healthy_fraction"] <= 1.0
    # Every subscriber got the deployment's events: at least a status update per instance.
    assert result["events_per_subscriber"] >= 100
    assert result["events_subscribers_cut_off"] == 0
    assert result["deploy_with_subscribers_s"] > 0 and result["deploy_without_subscribers_s"] > 0
    assert result["scale_to_zero_s"] > 0


def test_outputs_written_and_processes_gone(
    quick_run: tuple[dict, Path, list[psutil.Process]],
) -> None:
    result, out, children = quick_run
    written = json.loads((out / "services.json").read_text())
    assert written["deploy_healthy_s"] == result["deploy_healthy_s"]
    assert children, "the benchmark started no processes?"
    _, alive = psutil.wait_procs(children, timeout=10)
    alive = [process for process in alive if running(process)]
    assert not alive, f"processes left running: {[process.pid for process in alive]}"
