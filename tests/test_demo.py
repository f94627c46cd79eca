"""``make demo`` runs ``corral demo``: the kernel's tasks, then a service through the front door.

The whole demo runs as a user would run it (its own OS process, real cluster, real front door);
the test reads what it prints, step by step, and its exit status.
"""

from __future__ import annotations

import re
import subprocess
import sys


def test_the_demo_runs_tasks_then_deploys_scales_rolls_out_and_heals_a_service():
    done = subprocess.run(
        [sys.executable, "-m", "corral", "demo"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert re.search(r"(\d+)/\1 tasks finished", out)
    steps = [
        "deploying /demo/web: 3 instances",
        "3 running, 3 healthy",
        "scaling /demo/web to 5 instances",
        "5 running, 5 healthy",
        "rolling out a new version",
        "every instance runs version",
        "killing instance",
        "replaced: 5 healthy instances",
        "removing /demo/web",
        "exit codes: agents [0, 0], master 0",
        "next: `corral local`",
    ]
    positions = [out.find(step) for step in steps]
    assert -1 not in positions, [s for s, p in zip(steps, positions, strict=True) if p < 0]
    assert positions == sorted(positions), "the steps are printed in order"
