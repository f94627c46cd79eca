"""Metrics: counters, gauges, timers and the flat Mesos-style snapshot."""

from __future__ import annotations

import json
import math
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from libprocess.metrics import PERCENTILES, Counter, Gauge, Metrics, Timer

# -- counters ---------------------------------------------------------------------------------


def test_counter_starts_at_zero_and_counts_up():
    metrics = Metrics()
    counter = metrics.counter("master/messages_received")

    assert metrics.snapshot() == {"master/messages_received": 0}
    counter.inc()
    counter.inc(4)

    assert counter.value == 5
    assert metrics.snapshot() == {"master/messages_received": 5}


def test_counter_refuses_to_go_down():
    counter = Counter("c")
    counter.inc(2)

    with pytest.raises(ValueError, match="-1"):
        counter.inc(-1)
    assert counter.value == 2


# -- gauges -----------------------------------------------------------------------------------


def test_gauge_holds_the_value_last_set():
    metrics = Metrics()
    gauge = metrics.gauge("master/uptime_secs")

    assert metrics.snapshot() == {"master/uptime_secs": 0}
    gauge.set(3.5)
    gauge.set(2.25)

    assert metrics.snapshot() == {"master/uptime_secs": 2.25}


def test_gauge_reads_its_callable_at_each_snapshot():
    metrics = Metrics()
    queue = [1, 2, 3]
    metrics.gauge("allocator/event_queue", lambda: len(queue))

    assert metrics.snapshot() == {"allocator/event_queue": 3}
    queue.clear()
    assert metrics.snapshot() == {"allocator/event_queue": 0}


def test_a_failing_gauge_is_left_out_and_the_rest_still_served():
    metrics = Metrics()
    metrics.counter("ok").inc()

    def broken() -> float:
        raise ZeroDivisionError("no denominator")

    metrics.gauge("broken", broken)
    metrics.gauge("after", lambda: 7)

    with capture_logs() as logs:
        snapshot = metrics.snapshot()

    assert snapshot == {"ok": 1, "after": 7}
    assert [(entry["event"], entry["metric"]) for entry in logs] == [
        ("metric_read_failed", "broken")
    ]


# -- timers -----------------------------------------------------------------------------------


def reference_percentile(values: list[float], fraction: float) -> float:
    """Linear interpolation between closest ranks, written out the long way."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = fraction * (len(ordered) - 1)
    below = math.floor(rank)
    above = math.ceil(rank)
    return ordered[below] + (ordered[above] - ordered[below]) * (rank - below)


def test_timer_name_carries_its_unit_as_mesos_does():
    assert Timer("allocator/allocation_run").name == "allocator/allocation_run_ms"
    assert Timer("registrar/state_store", unit="secs").name == "registrar/state_store_secs"
    assert Timer("x", unit="us").name == "x_us"


def test_timer_unit_must_be_known():
    with pytest.raises(ValueError, match=r"'ms', 'secs' or 'us'.*'minutes'"):
        Timer("x", unit="minutes")


@pytest.mark.parametrize("capacity", [0, -1])
def test_timer_needs_room_for_a_sample(capacity):
    with pytest.raises(ValueError, match="capacity"):
        Timer("x", capacity=capacity)


@pytest.mark.parametrize(("unit", "scale"), [("ms", 1000.0), ("us", 1e6), ("secs", 1.0)])
def test_timer_records_seconds_in_its_unit(unit, scale):
    timer = Timer("t", unit=unit)

    timer.record(0.25)

    assert timer.snapshot()[f"t_{unit}"] == pytest.approx(0.25 * scale)


def test_timer_snapshot_keys_follow_mesos_naming():
    metrics = Metrics()
    timer = metrics.timer("allocator/allocation_run")
    for seconds in (0.004, 0.001, 0.003, 0.002):
        timer.record(seconds)

    snapshot = metrics.snapshot()

    assert set(snapshot) == {
        "allocator/allocation_run_ms",
        "allocator/allocation_run_ms/count",
        "allocator/allocation_run_ms/min",
        "allocator/allocation_run_ms/max",
        "allocator/allocation_run_ms/p50",
        "allocator/allocation_run_ms/p90",
        "allocator/allocation_run_ms/p95",
        "allocator/allocation_run_ms/p99",
        "allocator/allocation_run_ms/p999",
        "allocator/allocation_run_ms/p9999",
    }
    assert snapshot["allocator/allocation_run_ms"] == pytest.approx(2.0)  # the latest sample
    assert snapshot["allocator/allocation_run_ms/count"] == 4
    assert snapshot["allocator/allocation_run_ms/min"] == pytest.approx(1.0)
    assert snapshot["allocator/allocation_run_ms/max"] == pytest.approx(4.0)
    assert snapshot["allocator/allocation_run_ms/p50"] == pytest.approx(2.5)
    assert snapshot["allocator/allocation_run_ms/p90"] == pytest.approx(3.7)
    json.dumps(snapshot)  # served as JSON at /metrics/snapshot


def test_timer_without_samples_shows_only_its_count():
    timer = Timer("idle")

    assert timer.snapshot() == {"idle_ms/count": 0}
    with pytest.raises(ValueError, match="no samples"):
        timer.percentile(0.5)


def test_timer_percentiles_match_a_straightforward_computation():
    timer = Timer("t", unit="secs")
    samples = [0.9, 0.1, 0.5, 0.7, 0.3, 0.2, 0.8, 0.4, 0.6, 1.0, 0.05]
    for sample in samples:
        timer.record(sample)

    snapshot = timer.snapshot()

    for label, fraction in PERCENTILES:
        expected = reference_percentile(samples, fraction)
        assert snapshot[f"t_secs/{label}"] == pytest.approx(expected)
        assert timer.percentile(fraction) == pytest.approx(expected)
    assert timer.percentile(0.5) == pytest.approx(statistics.median(samples))
    assert timer.percentile(0.0) == min(samples)
    assert timer.percentile(1.0) == max(samples)


def test_timer_with_one_sample_reports_it_everywhere():
    timer = Timer("t", unit="secs")
    timer.record(0.125)

    snapshot = timer.snapshot()

    assert {snapshot[f"t_secs/{label}"] for label, _ in PERCENTILES} == {0.125}
    assert snapshot["t_secs/min"] == snapshot["t_secs/max"] == 0.125


@pytest.mark.parametrize("fraction", [-0.1, 1.5, math.nan])
def test_percentile_fraction_must_be_between_0_and_1(fraction):
    timer = Timer("t")
    for sample in (1.0, 2.0, 3.0):
        timer.record(sample)

    with pytest.raises(ValueError, match="between 0 and 1"):
        timer.percentile(fraction)


@pytest.mark.parametrize("seconds", [-0.001, math.nan, math.inf])
def test_timer_refuses_durations_that_are_not_durations(seconds):
    timer = Timer("t")
    timer.record(0.5)

    with pytest.raises(ValueError, match="duration"):
        timer.record(seconds)
    assert timer.count == 1
    assert timer.snapshot()["t_ms/max"] == pytest.approx(500.0)


def test_timer_percentiles_cover_only_the_latest_samples_but_count_all():
    timer = Timer("t", unit="secs", capacity=3)
    for sample in (100.0, 200.0, 1.0, 2.0, 3.0):
        timer.record(sample)

    snapshot = timer.snapshot()

    assert snapshot["t_secs/count"] == 5
    assert snapshot["t_secs/max"] == 3.0
    assert snapshot["t_secs/min"] == 1.0
    assert snapshot["t_secs/p50"] == 2.0


_durations = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)


@given(st.lists(_durations, min_size=1, max_size=200))
def test_percentiles_are_ordered_between_min_and_max(samples):
    timer = Timer("t", unit="secs", capacity=1000)
    for sample in samples:
        timer.record(sample)

    snapshot = timer.snapshot()
    chain = [snapshot["t_secs/min"]]
    chain += [snapshot[f"t_secs/{label}"] for label, _ in PERCENTILES]
    chain.append(snapshot["t_secs/max"])

    assert chain == sorted(chain)
    assert chain[0] == min(samples)
    assert chain[-1] == max(samples)
    assert snapshot["t_secs/count"] == len(samples)


@given(
    st.lists(_durations, min_size=1, max_size=100),
    st.floats(min_value=0.0, max_value=1.0),
)
def test_percentile_agrees_with_reference_and_stays_in_range(samples, fraction):
    timer = Timer("t", unit="secs")
    for sample in samples:
        timer.record(sample)

    got = timer.percentile(fraction)

    assert min(samples) <= got <= max(samples)
    assert got == pytest.approx(reference_percentile(samples, fraction), rel=1e-9, abs=1e-9)


@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=2, max_size=10, unique=True))
def test_percentile_never_decreases_as_the_fraction_grows(fractions):
    timer = Timer("t", unit="secs")
    for sample in (0.3, 0.1, 1e-9, 7.0, 7.0, 0.2):
        timer.record(sample)

    values = [timer.percentile(fraction) for fraction in sorted(fractions)]

    assert values == sorted(values)


# -- the registry -----------------------------------------------------------------------------


def test_duplicate_names_are_rejected_and_the_first_kept():
    metrics = Metrics()
    first = metrics.counter("master/tasks_running")
    first.inc(3)

    with pytest.raises(ValueError, match="'master/tasks_running' already exists"):
        metrics.gauge("master/tasks_running")

    assert metrics.get("master/tasks_running") is first
    assert metrics.snapshot() == {"master/tasks_running": 3}


def test_a_timer_name_collides_under_its_unit_suffix():
    metrics = Metrics()
    metrics.timer("cycle")

    with pytest.raises(ValueError, match="cycle_ms"):
        metrics.counter("cycle_ms")
    metrics.counter("cycle")  # a different name: no suffix


def test_remove_frees_the_name():
    metrics = Metrics()
    metrics.counter("c").inc(9)

    metrics.remove("c")
    metrics.remove("never-added")  # removing what is not there is harmless
    assert metrics.get("c") is None
    assert metrics.snapshot() == {}

    assert metrics.counter("c").value == 0


def test_snapshot_flattens_every_kind_together():
    metrics = Metrics()
    metrics.counter("a/count").inc(2)
    metrics.gauge("a/level").set(0.5)
    metrics.gauge("a/read", lambda: 11)
    metrics.timer("a/time").record(0.001)

    snapshot = metrics.snapshot()

    assert snapshot["a/count"] == 2
    assert snapshot["a/level"] == 0.5
    assert snapshot["a/read"] == 11
    assert snapshot["a/time_ms"] == pytest.approx(1.0)
    assert snapshot["a/time_ms/count"] == 1
    assert isinstance(metrics.get("a/level"), Gauge)
