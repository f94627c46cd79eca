"""The allocator benchmark runs end to end and reports its figures as promised."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORKLOADS = {"cycle", "decline_offers", "suppress_offers", "large_and_small_quota"}
GOALS = {
    "cycle_20000x2000_median_s",
    "cycle_10000x1000_median_s",
    "decline_offers_20000x2000_max_round_s",
    "large_and_small_quota_2500+500_first_cycle_s",
    "large_and_small_quota_2500+500_empty_cycle_s",
    "speedup_vs_reference_cycle_20000x2000",
    "peak_rss_mb_20000x2000",
}


def positive(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def test_quick_run_reports_every_workload():
    done = subprocess.run(
        [
            sys.executable,
            "benchmarks/allocator.py",
            "--quick",
            "--agents",
            "200",
            "--frameworks",
            "20",
            "--rounds",
            "2",
            "--quota-roles",
            "25,5",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["errors"] == {}
    assert summary["quick"] is True

    results = summary["results"]
    assert {result["workload"] for result in results} == WORKLOADS
    cycles = [result for result in results if result["workload"] == "cycle"]
    assert [(r["agents"], r["frameworks"]) for r in cycles] == [(200, 20), (100, 10)]
    for result in results:
        name = result["workload"]
        for key in ("agents", "frameworks", "median_s", "max_s", "reference_median_s", "speedup"):
            assert positive(result[key]), (name, key, result[key])
        assert result["min_s"] <= result["median_s"] <= result["max_s"], name
        # --quick always times the reference on a sample, and says so.
        assert result["reference_sampled_agents"] == 1, name
        assert result["reference_agrees"] is True, name
        assert positive(result["fast_sampled_median_s"]), name

    decline = next(r for r in results if r["workload"] == "decline_offers")
    assert [r["round"] for r in decline["rounds"]] == [0, 1]
    assert decline["max_s"] == max(r["seconds"] for r in decline["rounds"])
    assert all(r["offers"] > 0 for r in decline["rounds"])
    suppress = next(r for r in results if r["workload"] == "suppress_offers")
    assert [s["suppressed"] for s in suppress["steps"]] == [4, 8, 12, 16, 20]
    assert suppress["steps"][-1]["offers"] == 0  # everyone suppressed: nothing offered
    quota = next(r for r in results if r["workload"] == "large_and_small_quota")
    assert quota["agents"] == 25 // 5 + 5 * 5
    assert positive(quota["empty_cycle_median_s"])

    assert positive(summary["peak_rss_mb"])
    assert summary["memory"]["agents"] == 200
    assert set(summary["goals"]) == GOALS == set(summary["goals_met"])
    # Nothing ran at the goals' sizes: no goal is judged.
    assert all(met is None for met in summary["goals_met"].values())
    assert summary["all_goals_met"] is False
    assert len(summary["machine"]["load_average_before"]) == 3
    # Progress on stderr, one line per step.
    assert "repeat 1/2" in done.stderr and "round 2/2" in done.stderr
