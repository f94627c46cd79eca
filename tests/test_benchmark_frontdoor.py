"""benchmarks/frontdoor.py runs a real master and front door and ends with its figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_frontdoor_benchmark_reports_its_figures():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "frontdoor.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    for where in ("direct", "door"):
        for path in ("health", "summary"):
            assert figures[f"{where}_{path}_errors"] == 0
            assert figures[f"{where}_{path}_per_s"] > 0
            assert 0 < figures[f"{where}_{path}_p50_ms"] <= figures[f"{where}_{path}_p99_ms"]
    assert figures["stream_extra_ms"] < 1000  # an event is not held back on its way through
