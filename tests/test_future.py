"""Futures and promises: states, callbacks, composition, waiting, and ``after`` on the clock."""

from __future__ import annotations

import asyncio
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from libprocess import (
    DiscardedError,
    Future,
    FutureError,
    FutureTimeout,
    Process,
    Promise,
    Runtime,
    State,
    collect,
)
from libprocess.future import NotReady

WAIT = 5.0  # wall-clock safety net for waits on another thread; never a timeout under test


class Boom(Exception):
    pass


def honouring() -> Promise:
    """A promise whose holder honours a discard request at once, as a well-behaved one does."""
    promise: Promise = Promise()
    promise.future.on_discard(promise.discard)
    return promise


def later(fn, *args) -> threading.Thread:
    """Run ``fn(*args)`` on a new thread, started now."""
    thread = threading.Thread(target=fn, args=args, daemon=True)
    thread.start()
    return thread


# -- states -----------------------------------------------------------------------------------


def test_a_new_future_is_pending():
    future = Promise().future

    assert future.state is State.PENDING
    assert future.is_pending()
    assert not (future.is_ready() or future.is_failed() or future.is_discarded())
    assert future.failure is None
    assert not future.has_discard()
    with pytest.raises(NotReady, match="pending"):
        _ = future.value
    assert repr(future) == "<Future pending>"


def test_set_makes_it_ready_once():
    promise: Promise[int] = Promise()

    assert promise.set(7) is True
    assert promise.set(8) is False
    assert promise.fail(Boom()) is False
    assert promise.discard() is False

    future = promise.future
    assert future.state is State.READY
    assert future.is_ready()
    assert future.value == 7
    assert future.failure is None
    assert repr(future) == "<Future ready 7>"


def test_fail_makes_it_failed_once():
    promise: Promise[int] = Promise()
    error = Boom("first")

    assert promise.fail(error) is True
    assert promise.fail(Boom("second")) is False
    assert promise.set(1) is False
    assert promise.discard() is False

    future = promise.future
    assert future.is_failed()
    assert future.failure is error
    with pytest.raises(Boom, match="first"):
        _ = future.value


def test_fail_with_a_message_wraps_it_in_a_future_error():
    promise: Promise[int] = Promise()
    promise.fail("disk full")

    assert isinstance(promise.future.failure, FutureError)
    assert str(promise.future.failure) == "disk full"
    assert str(Future.failed("gone").failure) == "gone"


def test_discard_makes_it_discarded_once():
    promise: Promise[int] = Promise()

    assert promise.discard() is True
    assert promise.discard() is False
    assert promise.set(1) is False
    assert promise.fail(Boom()) is False

    future = promise.future
    assert future.is_discarded()
    assert future.failure is None
    with pytest.raises(DiscardedError):
        _ = future.value


def test_ready_failed_and_discarded_constructors():
    assert Future.ready(3).value == 3
    assert Future.ready().value is None
    error = Boom()
    assert Future.failed(error).failure is error
    assert Future.discarded().is_discarded()


@given(st.lists(st.sampled_from(["set", "fail", "discard"]), min_size=1, max_size=6))
def test_only_the_first_completion_counts(operations):
    promise: Promise[str] = Promise()
    outcomes = {
        "set": (lambda: promise.set("value"), State.READY),
        "fail": (lambda: promise.fail(Boom()), State.FAILED),
        "discard": (promise.discard, State.DISCARDED),
    }

    results = [outcomes[operation][0]() for operation in operations]

    assert results == [True] + [False] * (len(operations) - 1)
    assert promise.future.state is outcomes[operations[0]][1]


def test_racing_threads_complete_a_future_exactly_once():
    for _ in range(50):
        promise: Promise[int] = Promise()
        runs: list[int] = []
        promise.future.on_any(lambda f, runs=runs: runs.append(f.value))
        barrier = threading.Barrier(8)
        won: list[int] = []

        def race(n: int, promise=promise, barrier=barrier, won=won) -> None:
            barrier.wait()
            if promise.set(n):
                won.append(n)

        threads = [later(race, n) for n in range(8)]
        for thread in threads:
            thread.join(WAIT)

        assert len(won) == 1
        assert runs == won == [promise.future.value]


# -- callbacks --------------------------------------------------------------------------------


def test_callbacks_run_once_in_order_when_it_becomes_ready():
    promise: Promise[int] = Promise()
    calls: list[object] = []
    future = promise.future
    future.on_any(lambda f: calls.append(("any", f.value)))
    future.on_ready(lambda value: calls.append(("ready", value)))
    future.on_failed(lambda error: calls.append(("failed", error)))
    future.on_discarded(lambda: calls.append("discarded"))

    assert calls == []
    promise.set(5)
    promise.set(6)

    assert calls == [("any", 5), ("ready", 5)]


def test_on_failed_gets_the_error():
    promise: Promise[int] = Promise()
    errors: list[BaseException] = []
    readies: list[int] = []
    promise.future.on_failed(errors.append).on_ready(readies.append)
    error = Boom()

    promise.fail(error)

    assert errors == [error]
    assert readies == []


def test_on_discarded_runs_only_for_a_discard():
    promise: Promise[int] = Promise()
    calls: list[str] = []
    promise.future.on_discarded(lambda: calls.append("discarded"))
    promise.future.on_failed(lambda _: calls.append("failed"))
    promise.future.on_any(lambda f: calls.append(f.state.value))

    promise.discard()

    assert calls == ["discarded", "discarded"]


@pytest.mark.parametrize(
    ("future", "expected"),
    [
        (Future.ready(1), ["any", "ready"]),
        (Future.failed(Boom()), ["any", "failed"]),
        (Future.discarded(), ["any", "discarded"]),
    ],
)
def test_callbacks_on_a_complete_future_run_at_once(future, expected):
    calls: list[str] = []

    future.on_any(lambda _: calls.append("any"))
    future.on_ready(lambda _: calls.append("ready"))
    future.on_failed(lambda _: calls.append("failed"))
    future.on_discarded(lambda: calls.append("discarded"))

    assert calls == expected


def test_callbacks_run_on_the_completing_thread():
    promise: Promise[int] = Promise()
    ran_on: list[int] = []
    promise.future.on_any(lambda _: ran_on.append(threading.get_ident()))

    thread = later(promise.set, 1)
    thread.join(WAIT)

    assert ran_on == [thread.ident]


def test_a_failing_callback_is_logged_and_the_others_still_run():
    promise: Promise[int] = Promise()
    calls: list[str] = []

    def broken(_: Future[int]) -> None:
        raise Boom("callback failed on purpose")

    promise.future.on_any(lambda _: calls.append("before"))
    promise.future.on_any(broken)
    promise.future.on_any(lambda _: calls.append("after"))

    with capture_logs() as logs:
        assert promise.set(1) is True

    assert calls == ["before", "after"]
    assert promise.future.value == 1
    failures = [entry for entry in logs if entry["event"] == "future_callback_failed"]
    assert len(failures) == 1
    assert failures[0]["log_level"] == "error"
    assert "broken" in failures[0]["callback"]


def test_callbacks_registered_while_another_thread_completes_each_run_once():
    promise: Promise[int] = Promise()
    counts = [0]
    lock = threading.Lock()

    def count(_: Future[int]) -> None:
        with lock:
            counts[0] += 1

    start = threading.Event()

    def complete() -> None:
        start.wait(WAIT)
        promise.set(1)

    thread = later(complete)
    registered = 0
    for n in range(2000):
        if n == 100:
            start.set()
        promise.future.on_any(count)
        registered += 1
    thread.join(WAIT)

    assert counts[0] == registered


# -- discard requests -------------------------------------------------------------------------


def test_discard_is_a_request_the_promise_holder_may_ignore():
    promise: Promise[int] = Promise()
    future = promise.future

    assert future.discard() is True
    assert future.discard() is False
    assert future.has_discard()
    assert future.is_pending()  # nobody honoured it
    assert promise.set(3) is True
    assert future.value == 3


def test_on_discard_hooks_run_when_a_discard_is_requested():
    promise = honouring()
    requests: list[str] = []
    promise.future.on_discard(lambda: requests.append("asked"))

    promise.future.discard()

    assert requests == ["asked"]
    assert promise.future.is_discarded()


def test_on_discard_after_the_request_runs_at_once():
    promise: Promise[int] = Promise()
    promise.future.discard()
    requests: list[str] = []

    promise.future.on_discard(lambda: requests.append("late"))

    assert requests == ["late"]


def test_discarding_a_complete_future_does_nothing():
    promise: Promise[int] = Promise()
    requests: list[str] = []
    promise.future.on_discard(lambda: requests.append("asked"))
    promise.set(1)

    assert promise.future.discard() is False
    promise.future.on_discard(lambda: requests.append("late"))

    assert requests == []
    assert not promise.future.has_discard()
    assert promise.future.value == 1


# -- then -------------------------------------------------------------------------------------


def test_then_maps_a_value():
    promise: Promise[int] = Promise()

    result = promise.future.then(lambda x: x * 10).then(str)
    assert result.is_pending()
    promise.set(4)

    assert result.value == "40"


def test_then_on_a_ready_future_runs_at_once():
    assert Future.ready(2).then(lambda x: x + 1).value == 3


def test_then_follows_a_returned_future():
    source: Promise[int] = Promise()
    inner: Promise[str] = Promise()

    result = source.future.then(lambda x: inner.future)
    source.set(1)
    assert result.is_pending()
    inner.set("inner value")

    assert result.value == "inner value"


def test_then_follows_a_returned_failure():
    error = Boom()

    result = Future.ready(1).then(lambda _: Future.failed(error))

    assert result.failure is error


def test_then_fails_when_fn_raises():
    error = Boom("in fn")

    def fn(_: int) -> int:
        raise error

    result = Future.ready(1).then(fn)

    assert result.failure is error


def test_then_passes_failure_through_without_calling_fn():
    called: list[int] = []
    error = Boom()
    promise: Promise[int] = Promise()

    result = promise.future.then(called.append).then(called.append)
    promise.fail(error)

    assert result.failure is error
    assert called == []


def test_then_passes_discard_through_without_calling_fn():
    called: list[int] = []
    promise: Promise[int] = Promise()

    result = promise.future.then(called.append)
    promise.discard()

    assert result.is_discarded()
    assert called == []


def test_discarding_a_then_result_asks_the_source_along_the_chain():
    source = honouring()

    result = source.future.then(lambda x: x + 1).then(lambda x: x + 1)
    assert result.discard() is True

    assert source.future.has_discard()
    assert source.future.is_discarded()
    assert result.is_discarded()


def test_discarding_a_then_result_reaches_the_returned_future():
    source: Promise[int] = Promise()
    inner = honouring()

    result = source.future.then(lambda _: inner.future)
    source.set(1)
    result.discard()

    assert inner.future.has_discard()
    assert result.is_discarded()


def test_discard_request_on_a_then_result_can_be_ignored_by_the_source():
    source: Promise[int] = Promise()

    result = source.future.then(lambda x: x * 2)
    result.discard()
    assert source.future.has_discard()
    source.set(21)

    assert result.value == 42


def test_a_long_then_chain_completes_without_overflowing_the_stack():
    source: Promise[int] = Promise()
    future = source.future
    for _ in range(5000):
        future = future.then(lambda x: x + 1)

    source.set(0)

    assert future.value == 5000


def test_a_long_chain_of_returned_futures_completes():
    source: Promise[int] = Promise()
    future = source.future
    for _ in range(3000):
        future = future.then(lambda x: Future.ready(x + 1))

    source.set(0)

    assert future.value == 3000


def test_a_long_chain_passes_discard_requests_all_the_way_back():
    source = honouring()
    future = source.future
    for _ in range(3000):
        future = future.then(lambda x: x)

    future.discard()

    assert source.future.is_discarded()
    assert future.is_discarded()


def test_callbacks_keep_their_order_in_deep_chains():
    """Nested completions run depth first, as plain recursion would run them."""
    order: list[str] = []
    root: Promise[int] = Promise()
    future = root.future
    for n in range(100):
        step: Promise[int] = Promise()
        future.on_any(lambda f, step=step: step.set(f.value + 1))
        future.on_any(lambda f, n=n: order.append(f"after {n}"))
        future = step.future
    future.on_any(lambda f: order.append(f"end {f.value}"))

    root.set(0)

    expected = ["end 100"] + [f"after {n}" for n in reversed(range(100))]
    assert order == expected


# -- recover ----------------------------------------------------------------------------------


def test_recover_passes_a_value_through_without_calling_fn():
    called: list[Future[int]] = []

    result = Future.ready(5).recover(lambda f: called.append(f) or 0)

    assert result.value == 5
    assert called == []


def test_recover_turns_a_failure_into_a_value():
    source: Promise[int] = Promise()
    seen: list[Future[int]] = []

    result = source.future.recover(lambda f: seen.append(f) or -1)
    source.fail(Boom())

    assert result.value == -1
    assert seen == [source.future]


def test_recover_handles_a_discard_too():
    result = Future.discarded().recover(lambda f: "fallback" if f.is_discarded() else "?")

    assert result.value == "fallback"


def test_recover_may_return_a_future_or_raise():
    inner: Promise[int] = Promise()
    followed = Future.failed(Boom()).recover(lambda _: inner.future)
    error = Boom("again")

    def raising(_: Future[int]) -> int:
        raise error

    assert followed.is_pending()
    inner.set(9)
    assert followed.value == 9
    assert Future.failed(Boom()).recover(raising).failure is error


def test_discarding_a_recover_result_asks_the_source():
    source: Promise[int] = Promise()

    source.future.recover(lambda _: 0).discard()

    assert source.future.has_discard()


# -- associate --------------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", ["set", "fail", "discard"])
def test_associate_completes_with_the_other_future(outcome):
    promise: Promise[int] = Promise()
    other: Promise[int] = Promise()
    error = Boom()

    promise.associate(other.future)
    assert promise.future.is_pending()
    {"set": lambda: other.set(3), "fail": lambda: other.fail(error), "discard": other.discard}[
        outcome
    ]()

    assert promise.future.state is other.future.state
    assert promise.future._value is other.future._value


def test_associate_with_a_complete_future_completes_at_once():
    promise: Promise[int] = Promise()

    promise.associate(Future.ready(11))

    assert promise.future.value == 11


def test_associate_passes_discard_requests_on():
    promise: Promise[int] = Promise()
    other = honouring()
    promise.associate(other.future)

    promise.future.discard()

    assert other.future.has_discard()
    assert promise.future.is_discarded()


def test_resolve_takes_a_value_or_a_future():
    plain: Promise[int] = Promise()
    followed: Promise[int] = Promise()
    other: Promise[int] = Promise()

    plain.resolve(1)
    followed.resolve(other.future)
    other.set(2)

    assert (plain.future.value, followed.future.value) == (1, 2)


# -- collect ----------------------------------------------------------------------------------


def test_collect_keeps_the_order_of_its_inputs():
    promises: list[Promise[int]] = [Promise() for _ in range(4)]

    result = collect(promise.future for promise in promises)
    for n in (2, 0, 3):
        promises[n].set(n * 10)
        assert result.is_pending()
    promises[1].set(10)

    assert result.value == [0, 10, 20, 30]


def test_collect_of_nothing_is_an_empty_list():
    assert collect([]).value == []


def test_collect_of_ready_futures_is_ready_at_once():
    assert collect([Future.ready(1), Future.ready(2)]).value == [1, 2]


def test_collect_fails_with_the_first_failure_and_asks_the_rest_to_stop():
    promises: list[Promise[int]] = [Promise() for _ in range(3)]
    first, second = Boom("first"), Boom("second")

    result = collect([promise.future for promise in promises])
    promises[2].fail(first)
    promises[0].fail(second)

    assert result.failure is first
    assert promises[1].future.has_discard()


def test_collect_is_discarded_when_an_input_is():
    promises: list[Promise[int]] = [Promise() for _ in range(2)]

    result = collect([promise.future for promise in promises])
    promises[0].discard()

    assert result.is_discarded()
    assert promises[1].future.has_discard()


def test_discarding_collect_asks_every_input():
    promises = [honouring() for _ in range(3)]
    promises[0].set(0)

    result = collect([promise.future for promise in promises])
    result.discard()

    assert [promise.future.has_discard() for promise in promises] == [False, True, True]
    assert result.is_discarded()


def test_collect_inputs_completed_from_many_threads():
    promises: list[Promise[int]] = [Promise() for _ in range(200)]
    result = collect([promise.future for promise in promises])

    def complete(start: int) -> None:
        for n in range(start, 200, 4):
            promises[n].set(n)

    threads = [later(complete, start) for start in range(4)]
    for thread in threads:
        thread.join(WAIT)

    assert result.value == list(range(200))


@given(st.permutations(range(8)), st.data())
def test_collect_value_does_not_depend_on_completion_order(order, data):
    promises: list[Promise[int]] = [Promise() for _ in range(8)]
    result = collect([promise.future for promise in promises])
    failing = data.draw(st.none() | st.sampled_from(order))

    for n in order:
        if n == failing:
            promises[n].fail(Boom(n))
        else:
            promises[n].set(n * n)

    if failing is None:
        assert result.value == [n * n for n in range(8)]
    else:
        assert result.failure.args == (failing,)


# -- result(): waiting from a thread ----------------------------------------------------------


def test_result_returns_a_value_set_by_another_thread():
    promise: Promise[str] = Promise()
    started = threading.Event()

    def complete() -> None:
        started.wait(WAIT)
        promise.set("from a thread")

    later(complete)
    started.set()

    assert promise.future.result(timeout=WAIT) == "from a thread"


def test_result_raises_a_failure_set_by_another_thread():
    promise: Promise[str] = Promise()
    later(promise.fail, Boom("remote"))

    with pytest.raises(Boom, match="remote"):
        promise.future.result(timeout=WAIT)


def test_result_of_a_discarded_future_raises_discarded_error():
    promise: Promise[str] = Promise()
    later(promise.discard)

    with pytest.raises(DiscardedError):
        promise.future.result(timeout=WAIT)


def test_result_times_out_on_a_pending_future():
    future = Promise().future

    with pytest.raises(FutureTimeout, match=r"0\.01 s") as raised:
        future.result(timeout=0.01)

    assert isinstance(raised.value, TimeoutError)
    assert future.is_pending()


def test_result_of_a_complete_future_needs_no_wait():
    assert Future.ready(1).result(timeout=0) == 1


class Helper(Process):
    pass


def test_result_on_the_runtime_loop_refuses_to_block_it(runtime):
    helper = Helper()
    runtime.spawn(helper)
    pending: Future[int] = Promise().future

    blocked = runtime.dispatch(helper, lambda: pending.result(timeout=WAIT))
    done = runtime.dispatch(helper, lambda: Future.ready(4).result())

    with pytest.raises(RuntimeError, match="loop"):
        blocked.result(timeout=WAIT)
    assert done.result(timeout=WAIT) == 4


# -- await ------------------------------------------------------------------------------------


def test_await_a_future_completed_on_the_same_loop():
    async def main() -> int:
        promise: Promise[int] = Promise()
        asyncio.get_running_loop().call_soon(promise.set, 12)
        return await promise.future

    assert asyncio.run(main()) == 12


def test_await_a_future_completed_from_another_thread():
    async def main() -> tuple[str, int]:
        promise: Promise[str] = Promise()
        go = threading.Event()
        thread = threading.Thread(target=lambda: go.wait(WAIT) and promise.set("thread"))
        thread.start()
        asyncio.get_running_loop().call_soon(go.set)
        value = await asyncio.wait_for(promise.future, WAIT)
        thread.join(WAIT)
        return value, threading.get_ident()

    value, _ = asyncio.run(main())
    assert value == "thread"


def test_await_raises_failure_and_discard():
    async def outcome(future: Future[int]) -> object:
        try:
            return await future
        except Exception as error:
            return error

    error = Boom()
    assert asyncio.run(outcome(Future.failed(error))) is error
    assert isinstance(asyncio.run(outcome(Future.discarded())), DiscardedError)
    assert asyncio.run(outcome(Future.ready(3))) == 3


def test_await_fails_when_failed_from_another_thread():
    async def main() -> None:
        promise: Promise[int] = Promise()
        asyncio.get_running_loop().call_soon(later, promise.fail, Boom("thread"))
        await asyncio.wait_for(promise.future, WAIT)

    with pytest.raises(Boom, match="thread"):
        asyncio.run(main())


def test_cancelling_the_awaiting_task_requests_discard():
    promise = honouring()

    async def main() -> None:
        task = asyncio.ensure_future(_await(promise.future))
        await asyncio.sleep(0)  # let the task start waiting
        assert not promise.future.has_discard()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert promise.future.has_discard()
    assert promise.future.is_discarded()


async def _await(future: Future):
    return await future


def test_completing_after_the_awaiting_loop_closed_is_quiet():
    promise: Promise[int] = Promise()
    cancelled = threading.Event()

    def awaiting_thread() -> None:
        async def main() -> None:
            task = asyncio.ensure_future(_await(promise.future))
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            cancelled.set()

        asyncio.run(main())

    later(awaiting_thread).join(WAIT)
    assert cancelled.is_set()

    with capture_logs() as logs:
        assert promise.set(1) is True  # from this thread, not the (closed) loop's

    assert [entry for entry in logs if entry["log_level"] == "error"] == []


def test_await_inside_a_runtime_embedded_in_an_application_loop():
    async def main() -> int:
        async with Runtime("127.0.0.1", 0) as runtime:
            helper = Helper()
            runtime.spawn(helper)
            return await runtime.dispatch(helper, lambda: 6 * 7)

    assert asyncio.run(main()) == 42


# -- after: timeouts on the runtime clock -----------------------------------------------------


def test_after_fails_with_timeout_exactly_at_the_deadline(runtime, paused_clock):
    paused_clock.advance(98765.4321)  # an awkward start, where float seconds would drift
    source: Promise[int] = Promise()

    result = source.future.after(5)
    paused_clock.advance(4.9)
    runtime.settle()
    assert result.is_pending()
    assert not source.future.has_discard()

    paused_clock.advance(0.1)
    runtime.settle()

    assert isinstance(result.failure, FutureTimeout)
    assert "5 s" in str(result.failure)
    assert source.future.has_discard()


def test_after_still_times_out_when_the_source_honours_the_discard(runtime, paused_clock):
    source = honouring()

    result = source.future.after(1)
    paused_clock.advance(1)
    runtime.settle()

    assert source.future.is_discarded()
    assert isinstance(result.failure, FutureTimeout)


def test_after_with_fn_decides_the_result(runtime, paused_clock):
    source: Promise[int] = Promise()
    seen: list[Future[int]] = []

    result = source.future.after(2, lambda f: seen.append(f) or -1)
    paused_clock.advance(2)
    runtime.settle()

    assert result.value == -1
    assert seen == [source.future]
    assert not source.future.has_discard()  # fn decides; the source is left alone
    source.set(5)
    assert result.value == -1


def test_after_with_fn_returning_a_future_or_raising(runtime, paused_clock):
    followed: Promise[int] = Promise()
    error = Boom()

    def raising(_: Future[int]) -> int:
        raise error

    via_future = Promise().future.after(1, lambda _: followed.future)
    via_raise = Promise().future.after(1, raising)
    paused_clock.advance(1)
    runtime.settle()

    assert via_future.is_pending()
    followed.set(8)
    assert via_future.value == 8
    assert via_raise.failure is error


def test_after_completed_in_time_cancels_its_timer(runtime, paused_clock):
    source: Promise[int] = Promise()
    called: list[Future[int]] = []
    before = runtime.timers.pending()

    result = source.future.after(5, called.append)
    assert runtime.timers.pending() == before + 1
    paused_clock.advance(3)
    runtime.settle()
    source.set(3)

    assert result.value == 3
    assert runtime.timers.pending() == before
    paused_clock.advance(10)
    runtime.settle()
    assert called == []
    assert not source.future.has_discard()


def test_after_passes_a_failure_in_time_through(runtime, paused_clock):
    source: Promise[int] = Promise()
    error = Boom()

    result = source.future.after(5)
    source.fail(error)

    assert result.failure is error


def test_after_on_a_complete_future_needs_no_timer(runtime, paused_clock):
    before = runtime.timers.pending()

    result = Future.ready(1).after(5)

    assert result.value == 1
    assert runtime.timers.pending() == before


def test_discarding_an_after_result_asks_the_source(runtime, paused_clock):
    source = honouring()

    result = source.future.after(5)
    result.discard()

    assert source.future.is_discarded()
    assert result.is_discarded()


def test_after_inside_a_process_uses_its_runtime(runtime, paused_clock):
    helper = Helper()
    runtime.spawn(helper)
    source: Promise[int] = Promise()

    # In a list: a dispatch that returns a future would follow it.
    [result] = runtime.dispatch(helper, lambda: [source.future.after(1)]).result(timeout=WAIT)
    paused_clock.advance(1)
    runtime.settle()

    assert isinstance(result.failure, FutureTimeout)
