"""The state benchmark runs end to end, reports its figures, and its /master/state body is the
one a build from scratch gives."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIGURES = ("state_build_s", "state_poll_s", "tasks_page_s", "summary_s", "backlog_state_s")


def test_quick_run_reports_every_figure():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.state",
            "--agents=200",
            "--tasks=1000",
            "--repeats=1",
            "--backlog=1000",
            "--check",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert (summary["agents"], summary["tasks"]) == (200, 1000)
    for key in FIGURES:
        assert isinstance(summary[key], float) and summary[key] > 0, (key, summary[key])
    assert summary["state_bytes"] > 100_000 and summary["exact"] is True
    assert summary["backlog_messages"] == 1000
    assert 0 < summary["baseline_rss_mb"] < summary["master_rss_mb"]
    assert summary["master_rss_mb"] < summary["master_rss_mb_after_state"] < 4000
    assert summary["backlog_state_s"] <= summary["backlog_drain_s"]
