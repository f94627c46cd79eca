"""benchmarks/launch.py runs against a real local cluster and ends with its JSON figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_launch_benchmark_reports_its_figures():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "launch.py"), "--quick", "--tasks", "40"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["finished"] == figures["tasks"] == 40
    for key in ("running_per_s", "finished_per_s", "p50_ms", "p99_ms"):
        assert figures[key] > 0, key
    assert figures["p50_ms"] <= figures["p99_ms"]


def test_launch_benchmark_over_the_v1_http_api_reports_its_figures():
    """``--api http``: a Mesos v1 scheduler HTTP framework does the launching instead."""
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "launch.py"),
            "--quick",
            "--tasks",
            "40",
            "--api",
            "http",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["api"] == "http"
    assert figures["http_finished"] == figures["tasks"] == 40
    assert figures["http_refused_calls"] == 0, figures["http_refused"]
    for key in ("http_running_per_s", "http_finished_per_s", "http_p50_ms", "http_p99_ms"):
        assert figures[key] > 0, key
    assert figures["http_p50_ms"] <= figures["http_p99_ms"]
    assert "running_per_s" not in figures, "the native framework did not run"
