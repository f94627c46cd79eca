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
