"""The master-work benchmark runs end to end: every task it launches reaches RUNNING, and the
figures it reports add up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_a_small_run_launches_its_tasks_and_accounts_for_the_masters_time():
    done = subprocess.run(
        [
            sys.executable,
            "benchmarks/master_cpu.py",
            "--agents",
            "200",
            "--frameworks",
            "4",
            "--rounds",
            "3",
            "--tasks-per-round",
            "40",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # 40 tasks a round, each framework's share launched on its first offers.
    assert result["running"] == 3 * 40
    assert result["offers"] >= 3 * 4  # every framework is offered something each round
    assert result["master_s"] > 0 and result["master_us_per_launch"] > 0
    # master_s is rounded to the millisecond: within 5 us a launch of the unrounded figure
    assert result["master_us_per_launch"] == pytest.approx(1e6 * result["master_s"] / 120, abs=5)
    assert abs(sum(result["split_percent"].values()) - 100) < 1
