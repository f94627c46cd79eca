"""The allocator's backlog gate: cycles wait while the master is behind, within limits."""

from __future__ import annotations

import pytest

from master.allocator.backlog_gate import BacklogGate, BacklogLimits

LIMITS = BacklogLimits(high=100, low=25, max_hold=1.0, recheck=0.01)


def test_a_cycle_runs_at_once_below_the_high_mark():
    gate = BacklogGate(LIMITS)
    assert gate.wait(99, now=0.0) == 0.0
    assert gate.held_since is None


def test_a_hold_begins_at_high_and_lasts_until_low():
    gate = BacklogGate(LIMITS)
    assert gate.wait(100, now=0.0) == pytest.approx(0.01)
    assert gate.held_since == 0.0
    assert gate.wait(60, now=0.1) == pytest.approx(0.01)  # under high, still over low
    assert gate.wait(26, now=0.2) == pytest.approx(0.01)
    assert gate.wait(25, now=0.3) == 0.0  # down to low: the cycle runs
    assert gate.held_since is None
    assert gate.wait(60, now=0.4) == 0.0  # a new hold needs the high mark again


def test_no_hold_lasts_longer_than_max_hold():
    gate = BacklogGate(LIMITS)
    assert gate.wait(10_000, now=5.0) > 0
    assert gate.wait(10_000, now=5.999) > 0
    assert gate.wait(10_000, now=6.0) == 0.0  # held a whole max_hold: this one runs
    assert gate.wait(10_000, now=6.01) > 0  # and the next waits again, from now
    assert gate.held_since == 6.01


@pytest.mark.parametrize(
    "limits",
    [
        {"high": 10, "low": 11},
        {"high": 10, "low": -1},
        {"recheck": 0.0},
        {"recheck": 2.0, "max_hold": 1.0},
    ],
)
def test_limits_that_cannot_work_are_refused(limits):
    with pytest.raises(ValueError, match=r"low <= high|recheck"):
        BacklogLimits(**limits)
