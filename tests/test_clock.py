"""The runtime clock and its timers: pause, advance, resume; schedule, fire, cancel."""

from __future__ import annotations

import math
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libprocess import Clock, Process, Runtime, clock
from libprocess.clock import Timer

WAIT = 5.0  # wall-clock safety net for waits on another thread; never a timeout under test


def on_loop(runtime: Runtime, fn, *args):
    """Run ``fn(*args)`` on the runtime's loop thread (inside a helper process); its result."""
    process = Helper()
    runtime.spawn(process)
    try:
        return runtime.dispatch(process, fn, *args).result(timeout=WAIT)
    finally:
        runtime.terminate(process)


class Helper(Process):
    pass


# -- the clock on its own ---------------------------------------------------------------------


def test_paused_time_stands_still_and_advances_by_hand():
    own = Clock()
    own.pause()
    start = own.now()

    time.sleep(0.01)
    assert own.now() == start
    own.advance(3600)
    assert own.now() == pytest.approx(start + 3600)
    assert own.paused


def test_pause_and_resume_twice_are_harmless():
    own = Clock()
    own.pause()
    start = own.now()
    own.pause()

    assert own.now() == start
    own.resume()
    own.resume()
    assert not own.paused


def test_time_never_goes_backwards_across_resume():
    own = Clock()
    before = own.now()
    own.pause()
    own.advance(1000)
    advanced = own.now()
    own.resume()
    after = own.now()

    assert before + 1000 <= advanced <= after
    readings = [own.now() for _ in range(1000)]
    assert readings == sorted(readings)
    own.pause()
    assert own.now() >= readings[-1]


def test_running_time_follows_the_wall():
    own = Clock()
    start = own.now()

    time.sleep(0.02)

    assert own.now() - start >= 0.019


def test_advance_needs_a_paused_clock():
    own = Clock()

    with pytest.raises(RuntimeError, match=r"pause\(\) first"):
        own.advance(1)


@pytest.mark.parametrize("seconds", [-1, -1e-9, math.nan, math.inf])
def test_advance_refuses_what_is_not_a_step_forward(seconds):
    own = Clock()
    own.pause()
    start = own.now()

    with pytest.raises(ValueError, match="advance"):
        own.advance(seconds)
    assert own.now() == start


def test_advance_zero_is_allowed():
    own = Clock()
    own.pause()
    start = own.now()

    own.advance(0)

    assert own.now() == start


@given(st.lists(st.sampled_from([0.1, 0.2, 0.3, 0.7, 1e-3, 1e-9]), min_size=1, max_size=50))
def test_advances_add_up_exactly(steps):
    """Ten advances of 0.1 s reach a 1 s deadline: the clock counts in nanoseconds."""
    own = Clock()
    own.pause()
    start = own.now_ns()

    for step in steps:
        own.advance(step)

    assert own.now_ns() - start == sum(round(step * 1e9) for step in steps)


# -- timers on a paused clock -----------------------------------------------------------------


def test_timers_fire_in_deadline_order(runtime, paused_clock):
    fired: list[str] = []
    for name, seconds in [("c", 3.0), ("a", 1.0), ("d", 4.0), ("b", 2.0)]:
        runtime.timers.schedule(seconds, lambda name=name: fired.append(name))

    paused_clock.advance(10)
    runtime.settle()

    assert fired == ["a", "b", "c", "d"]


def test_timers_with_one_deadline_fire_in_the_order_scheduled(runtime, paused_clock):
    fired: list[int] = []
    for n in range(20):
        runtime.timers.schedule(1.0, lambda n=n: fired.append(n))

    paused_clock.advance(1)
    runtime.settle()

    assert fired == list(range(20))


@pytest.mark.parametrize("start", [0.3, 7.77, 31.4159, 1e5 / 3, 123456.789])
def test_a_paused_timer_waits_for_its_deadline_exactly(runtime, paused_clock, start):
    """Ten advances of 0.1 s reach 1 s from any starting time (float seconds would drift)."""
    paused_clock.advance(start)
    fired = threading.Event()
    runtime.timers.schedule(1.0, fired.set)

    for _ in range(9):
        paused_clock.advance(0.1)
        runtime.settle()
        assert not fired.is_set()
    paused_clock.advance(0.1)
    runtime.settle()

    assert fired.is_set()


def test_advance_by_steps_fires_each_timer_as_its_deadline_passes(runtime, paused_clock):
    fired: list[float] = []
    for seconds in (5.0, 15.0, 25.0):
        runtime.timers.schedule(seconds, lambda s=seconds: fired.append(s))

    seen = []
    for _ in range(3):
        paused_clock.advance(10)
        runtime.settle()
        seen.append(list(fired))

    assert seen == [[5.0], [5.0, 15.0], [5.0, 15.0, 25.0]]


def test_timer_callbacks_run_on_the_runtime_loop(runtime, paused_clock):
    loop_thread = on_loop(runtime, threading.get_ident)
    ran_on: list[int] = []
    runtime.timers.schedule(1, lambda: ran_on.append(threading.get_ident()))

    paused_clock.advance(1)
    runtime.settle()

    assert ran_on == [loop_thread]
    assert loop_thread != threading.get_ident()


def test_cancel_stops_a_pending_timer(runtime, paused_clock):
    fired: list[str] = []
    keep = runtime.timers.schedule(1, lambda: fired.append("keep"))
    drop = runtime.timers.schedule(1, lambda: fired.append("drop"))

    assert drop.cancel() is True
    assert drop.cancel() is False  # already cancelled
    paused_clock.advance(2)
    runtime.settle()

    assert fired == ["keep"]
    assert keep.cancel() is False  # already fired
    assert "fired" in repr(keep)
    assert "cancelled" in repr(drop)


def test_cancel_from_an_earlier_callback_stops_a_timer_due_at_once(runtime, paused_clock):
    fired: list[str] = []
    answers: list[bool] = []
    second: list[Timer] = []
    runtime.timers.schedule(1, lambda: answers.append(second[0].cancel()))
    second.append(runtime.timers.schedule(1, lambda: fired.append("second")))

    paused_clock.advance(1)
    runtime.settle()

    assert answers == [True]
    assert fired == []


def test_pending_counts_timers_not_yet_fired_or_cancelled(runtime, paused_clock):
    timers = runtime.timers
    base = timers.pending()
    early = timers.schedule(1, lambda: None)
    timers.schedule(2, lambda: None)
    timers.schedule(3, lambda: None).cancel()

    assert timers.pending() == base + 2
    paused_clock.advance(1)
    runtime.settle()
    assert early.fired
    assert timers.pending() == base + 1


def test_a_failing_timer_callback_does_not_stop_the_others(runtime, paused_clock):
    fired: list[str] = []

    def broken() -> None:
        raise RuntimeError("timer callback failed on purpose")

    runtime.timers.schedule(1, lambda: fired.append("before"))
    runtime.timers.schedule(1, broken)
    runtime.timers.schedule(1, lambda: fired.append("after"))

    paused_clock.advance(1)
    runtime.settle()

    assert fired == ["before", "after"]


def test_timers_scheduled_from_a_foreign_thread_fire(runtime, paused_clock):
    fired = threading.Event()
    scheduled = threading.Event()

    def schedule() -> None:
        runtime.timers.schedule(2, fired.set)
        scheduled.set()

    thread = threading.Thread(target=schedule)
    thread.start()
    thread.join(WAIT)
    assert scheduled.is_set()

    paused_clock.advance(1.5)
    runtime.settle()
    assert not fired.is_set()
    paused_clock.advance(0.5)
    runtime.settle()
    assert fired.is_set()


def test_a_zero_timer_from_the_loop_runs_after_the_caller_returns(runtime, paused_clock):
    """schedule() never runs callbacks inside itself, even when they are already due."""
    order: list[str] = []

    def inside() -> None:
        runtime.timers.schedule(0, lambda: order.append("timer"))
        order.append("scheduled")

    on_loop(runtime, inside)
    runtime.settle()

    assert order == ["scheduled", "timer"]


def test_timers_due_forever_do_not_starve_the_loop(runtime, paused_clock):
    """A timer that keeps rescheduling itself at once still lets other events through."""
    stop = threading.Event()
    rounds = [0]
    saw_stop = threading.Event()

    def again() -> None:
        rounds[0] += 1
        if stop.is_set():
            saw_stop.set()  # the chain ended because it was told to, not by an error
        else:
            runtime.timers.schedule(0, again)

    runtime.timers.schedule(0, again)
    try:
        assert on_loop(runtime, lambda: "served") == "served"
        served_at = rounds[0]
    finally:
        stop.set()
    assert saw_stop.wait(WAIT)
    assert rounds[0] > served_at >= 1


def test_negative_delay_fires_like_zero(runtime, paused_clock):
    fired = threading.Event()

    runtime.timers.schedule(-5, fired.set)
    runtime.settle()

    assert fired.is_set()


@pytest.mark.parametrize("seconds", [math.nan, math.inf])
def test_schedule_refuses_a_delay_that_is_not_a_number_of_seconds(runtime, seconds):
    with pytest.raises(ValueError, match="seconds"):
        runtime.timers.schedule(seconds, lambda: None)


# -- Process.delay ----------------------------------------------------------------------------


class Ticker(Process):
    def __init__(self) -> None:
        super().__init__()
        self.ticks: list[tuple[str, int]] = []

    def tick(self, label: str) -> None:
        self.ticks.append((label, threading.get_ident()))


def test_delay_runs_methods_inside_the_process_in_deadline_order(runtime, paused_clock):
    ticker = Ticker()
    runtime.spawn(ticker)
    runtime.settle()
    ticker.delay(3, "tick", "third")
    ticker.delay(1, ticker.tick, "first")
    cancelled = ticker.delay(2, "tick", "never")
    ticker.delay(2.5, Ticker.tick, "second")

    assert cancelled.cancel()
    paused_clock.advance(2.9)
    runtime.settle()
    assert [label for label, _ in ticker.ticks] == ["first", "second"]
    paused_clock.advance(0.1)
    runtime.settle()

    assert [label for label, _ in ticker.ticks] == ["first", "second", "third"]
    assert {thread for _, thread in ticker.ticks} == {on_loop(runtime, threading.get_ident)}


def test_runtime_delay_dispatches_to_a_process_by_pid(runtime, paused_clock):
    ticker = Ticker()
    pid = runtime.spawn(ticker)

    runtime.delay(1, pid, "tick", "by pid")
    paused_clock.advance(1)
    runtime.settle()

    assert [label for label, _ in ticker.ticks] == ["by pid"]


# -- real time --------------------------------------------------------------------------------


def test_a_real_time_timer_fires_when_the_clock_runs(runtime):
    assert not clock.paused
    fired = threading.Event()
    fired_at: list[float] = []
    start = clock.now()

    def record() -> None:
        fired_at.append(clock.now())
        fired.set()

    runtime.timers.schedule(0.05, record)

    assert fired.wait(WAIT)
    assert fired_at[0] - start >= 0.05


def test_a_cancelled_real_time_timer_never_fires(runtime):
    fired: list[str] = []
    done = threading.Event()
    runtime.timers.schedule(0.05, lambda: fired.append("cancelled")).cancel()
    runtime.timers.schedule(0.06, done.set)

    assert done.wait(WAIT)
    assert fired == []


def test_resume_hands_pending_timers_back_to_real_time(runtime):
    fired = threading.Event()
    clock.pause()
    try:
        runtime.timers.schedule(10, fired.set)
        clock.advance(9.97)
        runtime.settle()
        assert not fired.is_set()
    finally:
        clock.resume()

    assert fired.wait(WAIT)


def test_pausing_holds_a_real_time_timer(runtime):
    fired = threading.Event()
    runtime.timers.schedule(0.03, fired.set)
    clock.pause()
    try:
        time.sleep(0.1)
        runtime.settle()
        assert not fired.is_set()
        clock.advance(0.03)
        runtime.settle()
        assert fired.is_set()
    finally:
        clock.resume()


def test_a_stopped_runtime_ignores_the_clock_and_refuses_new_timers():
    fired: list[str] = []
    with Runtime("127.0.0.1", 0) as stopped:
        stopped.timers.schedule(100, lambda: fired.append("late"))

    clock.pause()
    try:
        clock.advance(200)
    finally:
        clock.resume()
    assert fired == []
    assert stopped.timers.pending() == 0
    with pytest.raises(RuntimeError, match="stopped"):
        stopped.timers.schedule(1, lambda: fired.append("never"))
