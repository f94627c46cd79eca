"""The messaging benchmark runs end to end and reports its figures as promised."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REQUIRED = (
    "raw_msgs_per_s",
    "remote_msgs_per_s",
    "remote_to_raw",
    "rpcs_per_s",
    "local_msgs_per_s",
)


def test_quick_run_reports_every_figure():
    done = subprocess.run(
        [sys.executable, "benchmarks/messaging.py", "--quick", "--messages", "2000"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    for key in REQUIRED:
        value = summary[key]
        assert isinstance(value, int | float) and value > 0, (key, value)
    assert summary["remote_to_raw"] == round(
        summary["remote_msgs_per_s"] / summary["raw_msgs_per_s"], 3
    )
    assert summary["quick"] is True
    assert summary["errors"] == {}
    # One progress line per warm-up and timed round of each scenario, on stderr.
    assert sum(" 1/3 " in line for line in done.stderr.splitlines()) == len(summary["runs"])
