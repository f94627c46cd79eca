"""The chaos run (benchmarks/chaos.py) against a real local cluster: faults of every kind are
injected, and afterwards every invariant holds.

Each seed runs ``--quick --duration 12`` (12 s of faults, then convergence and the checks) in
a subprocess of its own; the run cleans up its processes by pid, and the work directory of a
run with violations is kept and named on stderr.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KEYS = {
    "seed",
    "duration_s",
    "faults",
    "faults_by_kind",
    "tasks_launched",
    "invariants_checked",
    "violations",
}


# Five schedules that between them kill every kind of part several times (seed 4 kills
# agents four times, and showed the resource leak of issue 12 before it was fixed). 12 s
# of chaos gives each 4 to 6 faults; a run takes about 25 s.
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 6])
def test_a_chaos_run_injects_faults_and_finds_no_violation(seed):
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "chaos.py"),
            "--quick",
            "--seed",
            str(seed),
            "--duration",
            "12",
            "--agents",
            "2",
            "--converge-timeout",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=75,
        cwd=ROOT,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, f"no result line; stderr:\n{done.stderr[-3000:]}"
    result = json.loads(lines[-1])
    assert result.keys() >= KEYS, result
    assert result["seed"] == seed
    assert result["faults"] > 0 and sum(result["faults_by_kind"].values()) == result["faults"]
    assert result["tasks_launched"] > 0
    assert result["invariants_checked"] > 0
    assert result["violations"] == 0, "\n".join(
        line for line in done.stderr.splitlines() if line.startswith("VIOLATION")
    )
    assert done.returncode == 0, done.stderr[-3000:]
