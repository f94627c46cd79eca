"""``benchmarks/cluster.py --quick`` runs end to end: real master, simulated agents and
frameworks in OS processes of their own, and a final JSON line with the figures (no speed is
asserted: the machine is shared; the full-scale figures are reported in the issue)."""

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
TIMEOUT = float(os.environ.get("CORRAL_CLUSTER_BENCH_TIMEOUT", "120"))

pytestmark = pytest.mark.timeout(TIMEOUT + 30)


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, list[psutil.Process]]:
    """Run the quick mode once; the JSON, its output directory, and the pids it started."""
    out = tmp_path_factory.mktemp("cluster-bench")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "cluster.py"), "--quick", "--out", str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    children: dict[int, psutil.Process] = {}  # kept as found: a reused pid is not theirs
    deadline = time.monotonic() + TIMEOUT
    try:
        while True:
            children.update((child.pid, child) for child in _descendants(process.pid))
            try:
                stdout, stderr = process.communicate(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    raise
    except subprocess.TimeoutExpired:
        for child in _descendants(process.pid):
            child.kill()
        process.send_signal(signal.SIGKILL)
        process.wait()
        pytest.fail(f"benchmarks/cluster.py --quick ran over {TIMEOUT:g} s")
    assert process.returncode == 0, f"exit {process.returncode}\n{stderr[-4000:]}"
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert lines, f"no stdout\n{stderr[-4000:]}"
    return json.loads(lines[-1]), out, list(children.values())


def test_quick_mode_reports_the_figures(quick_run: tuple[dict, Path, list[psutil.Process]]) -> None:
    result, _, _ = quick_run
    for key in (
        "agents",
        "register_s",
        "reregister_s",
        "cycle_median_s",
        "launches_per_s",
        "updates_per_s",
        "p50_launch_ms",
        "p99_launch_ms",
        "master_rss_mb",
        "master_cpu_percent",
        "master_cpu_us_per_launch",
        "master_gc_s",
        "fixed_rate",
        "state_ms",
        "frameworks",
        "allocator_process",
        "plot",
        "json",
    ):
        assert key in result, f"{key} missing from {sorted(result)}"
    assert result["agents"] == 2000
    assert result["register_s"] > 0 and result["reregister_s"] > 0
    assert result["master_rss_mb"] > 0
    assert result["state_ms"] is not None and result["state_ms"] > 0
    assert result["master_cpu_us_per_launch"] > 0
    assert 0 <= result["master_gc_s"] <= result["frameworks"]["10"]["master_cpu_s"]
    assert result["fixed_rate"]["rate"] == 250 and result["fixed_rate"]["launches_per_s"] > 0


def test_tasks_ran_in_every_phase(quick_run: tuple[dict, Path, list[psutil.Process]]) -> None:
    result, _, _ = quick_run
    assert set(result["frameworks"]) == {"1", "10"}
    for count, phase in result["frameworks"].items():
        assert phase["running"] > 0, f"no task reached RUNNING with {count} frameworks"
        assert phase["finished"] > 0, f"no task finished with {count} frameworks"
        assert phase["failed"] == {}, phase["failed_examples"]
        assert phase["p50_launch_ms"] <= phase["p99_launch_ms"]
        assert phase["cycle_median_s"] is not None
        assert phase["frameworks_cpu_percent"] > 0 and phase["agents_cpu_percent"] > 0
    compare = result["allocator_process"]
    if compare.get("available"):
        assert compare["own_process"]["launches_per_s"], compare


def test_outputs_written_and_processes_gone(
    quick_run: tuple[dict, Path, list[psutil.Process]],
) -> None:
    result, out, children = quick_run
    written = json.loads(Path(result["json"]).read_text())
    assert written["agents"] == result["agents"]
    assert Path(result["json"]).parent == out
    if result["plot"] is not None:  # None only where matplotlib is not installed
        assert Path(result["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert children, "the benchmark started no processes?"
    # A helper that ends on its own once its parent is gone (multiprocessing's resource
    # tracker reads its pipe's end) may need a moment after the benchmark exits.
    _, alive = psutil.wait_procs(children, timeout=10)
    alive = [process for process in alive if _running(process.pid)]
    assert not alive, f"processes left running: {[_described(p) for p in alive]}"


def _described(process: psutil.Process) -> str:
    try:
        return f"{process.pid} {' '.join(process.cmdline())[:200]}"
    except psutil.Error:
        return str(process.pid)


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
