"""benchmarks/dns.py loads a real corral dns and a real cluster, and ends with its figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_dns_benchmark_reports_its_figures():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "dns.py"), "--quick", "--tasks", "1000"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["tasks"] == 1000
    assert figures["errors"] == 0
    assert figures["churn_errors"] == 0 and figures["churn_events"] > 0
    for key in (
        "queries_per_s",
        "p50_ms",
        "p99_ms",
        "warmup_queries_per_s",
        "churn_queries_per_s",
        "freshness_ms",
        "gone_ms",
    ):
        assert figures[key] > 0, key
    assert figures["p50_ms"] <= figures["p99_ms"]
    assert figures["freshness_samples"] == 3
    assert figures["records"] > 5000  # 1000 tasks' records, known before the load began
