"""Async work owned by a process (``Process.run_async``): its outcome comes back inside the
process, its failure is never lost, and it ends with the process. Real runtimes, no mocks."""

from __future__ import annotations

import asyncio
import inspect
import re
import threading
import time

import pytest
from structlog.testing import capture_logs

from libprocess import (
    DiscardedError,
    FutureTimeout,
    Process,
    ProcessTerminated,
    Promise,
    Runtime,
    handler,
)

WAIT = 5.0  # wall-clock safety net for waits on another thread; never part of what is tested


class Boom(Exception):
    pass


def call(runtime: Runtime, process: Process, fn, *args):
    """Run ``fn(*args)`` inside ``process``; its result."""
    return runtime.dispatch(process, fn, *args).result(WAIT)


def started(runtime: Runtime, process: Process, fn, *args):
    """Run ``fn(*args)`` inside ``process`` and return the future it returns, untouched
    (a dispatch that returns a future is followed: this one must stay unobserved)."""
    return call(runtime, process, lambda: [fn(*args)])[0]


def eventually(condition, what: str) -> None:
    """Wait (at most WAIT s of wall-clock time, a safety net) until ``condition()`` holds."""
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what} after {WAIT} s")
        time.sleep(0.001)


def logged(logs: list[dict], event: str) -> list[dict]:
    return [entry for entry in logs if entry["event"] == event]


async def answer(value):
    return value


async def fail(message: str):
    raise Boom(message)


async def wait_forever(cancelled: threading.Event):
    try:
        await asyncio.Event().wait()
    finally:
        cancelled.set()


class Worker(Process):
    """Starts work on request and notes, in order, what happened inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list = []
        self.threads: list[int] = []

    def finalize(self) -> None:
        self.log.append("finalize")

    @handler("note")
    def note(self, sender, body) -> None:
        self.log.append(("note", body))

    def start(self, awaitable):
        """Start ``awaitable`` and follow it with callbacks that note its outcome."""
        future = self.run_async(awaitable)
        future.on_ready(self.ready)
        future.on_failed(self.failed)
        return future

    def ready(self, value) -> None:
        self.threads.append(threading.get_ident())
        self.log.append(("ready", value))

    def failed(self, error) -> None:
        self.threads.append(threading.get_ident())
        self.log.append(("failed", type(error).__name__, str(error)))


# -- outcomes come back inside the process ------------------------------------------------------


def test_the_result_comes_back_inside_the_process_as_one_of_its_events(runtime):
    worker = Worker()
    runtime.spawn(worker)
    loop_thread = call(runtime, worker, threading.get_ident)

    def start_then_note():
        future = worker.start(answer(42))
        pending_at_once = future.is_pending()
        worker.send(worker.pid, "note", "sent after the start")
        return [future, pending_at_once]

    future, pending_at_once = call(runtime, worker, start_then_note)
    assert future.result(WAIT) == 42
    runtime.settle()

    # The outcome waited its turn behind the message queued first, as any event does.
    assert pending_at_once
    assert worker.log == [("note", "sent after the start"), ("ready", 42)]
    assert worker.threads == [loop_thread]


def test_a_failure_comes_back_to_on_failed_with_the_error_raised(runtime):
    worker = Worker()
    runtime.spawn(worker)

    future = started(runtime, worker, worker.start, fail("disk on fire"))

    with pytest.raises(Boom, match="disk on fire"):
        future.result(WAIT)
    runtime.settle()
    assert worker.log == [("failed", "Boom", "disk on fire")]


def test_work_may_await_a_libprocess_future_on_the_paused_clock(runtime, paused_clock):
    worker = Worker()
    runtime.spawn(worker)
    never: Promise[int] = Promise()

    async def ask_with_a_deadline():
        return await never.future.after(5.0)

    future = started(runtime, worker, worker.start, ask_with_a_deadline())
    runtime.settle()
    paused_clock.advance(4.9)
    runtime.settle()
    assert future.is_pending()

    paused_clock.advance(0.1)

    with pytest.raises(FutureTimeout):
        future.result(WAIT)
    runtime.settle()
    assert worker.log == [("failed", "FutureTimeout", "still pending after 5 s")]


def test_then_on_the_work_continues_inside_the_process(runtime):
    worker = Worker()
    runtime.spawn(worker)
    loop_thread = call(runtime, worker, threading.get_ident)
    threads: list[int] = []

    def double(value):
        threads.append(threading.get_ident())
        return value * 2

    future = started(runtime, worker, lambda: worker.run_async(answer(21)).then(double))

    assert future.result(WAIT) == 42
    assert threads == [loop_thread]


def test_run_async_from_another_thread_still_completes_inside_the_process(runtime):
    worker = Worker()
    runtime.spawn(worker)
    loop_thread = call(runtime, worker, threading.get_ident)
    gate: Promise[str] = Promise()

    async def wait_for_gate():
        return await gate.future

    future = worker.run_async(wait_for_gate())  # the test's thread, not the loop's
    future.on_ready(worker.ready)
    gate.set("opened")

    assert future.result(WAIT) == "opened"
    runtime.settle()
    assert worker.log == [("ready", "opened")]
    assert worker.threads == [loop_thread]


# -- failures are never lost ----------------------------------------------------------------


def test_a_failure_nobody_listens_for_is_logged_as_an_error_naming_process_and_work(runtime):
    worker = Worker()
    runtime.spawn(worker)

    with capture_logs() as logs:
        future = started(runtime, worker, lambda: worker.run_async(fail("nobody hears this")))
        eventually(lambda: logged(logs, "async_work_failed"), "the failure to be logged")

    assert future.is_failed()
    [entry] = logged(logs, "async_work_failed")
    assert entry["log_level"] == "error"
    assert entry["process"] == worker.pid
    assert entry["work"] == "fail"
    assert entry["error"] == "Boom: nobody hears this"
    assert isinstance(entry["exc_info"], Boom)


def test_a_failure_somebody_listens_for_is_not_logged(runtime):
    worker = Worker()
    runtime.spawn(worker)

    with capture_logs() as logs:
        future = started(runtime, worker, worker.start, fail("handled"))
        with pytest.raises(Boom):
            future.result(WAIT)
        runtime.settle()

    assert worker.log == [("failed", "Boom", "handled")]
    assert logged(logs, "async_work_failed") == []


def test_a_then_that_raises_with_nobody_listening_is_logged(runtime):
    worker = Worker()
    runtime.spawn(worker)

    def broken(value):
        raise Boom(f"could not use {value}")

    with capture_logs() as logs:
        started(runtime, worker, lambda: worker.run_async(answer(7)).then(broken))
        eventually(lambda: logged(logs, "async_work_failed"), "the failure to be logged")

    [entry] = logged(logs, "async_work_failed")
    assert entry["process"] == worker.pid
    assert entry["error"] == "Boom: could not use 7"


def test_a_raising_callback_is_reported_as_a_failed_handler_and_the_process_serves_on(runtime):
    worker = Worker()
    runtime.spawn(worker)

    def broken_callback(value):
        raise Boom(f"callback could not take {value}")

    with capture_logs() as logs:
        future = started(runtime, worker, lambda: worker.run_async(answer(3)))
        future.result(WAIT)
        call(runtime, worker, lambda: future.on_ready(broken_callback))
        worker.send(worker.pid, "note", "still serving")
        runtime.settle()

    assert runtime.metrics.get("libprocess/handler_errors").value == 1
    [entry] = logged(logs, "handler_failed")
    assert entry["process"] == worker.pid
    assert entry["work"] == "answer"
    assert "broken_callback" in entry["callback"]
    assert isinstance(entry["exc_info"], Boom)
    assert worker.log == [("note", "still serving")]
    assert worker.state == "running"


# -- the work ends with its process -----------------------------------------------------------


def test_terminating_the_process_cancels_the_work_and_fails_its_future(runtime):
    worker = Worker()
    pid = runtime.spawn(worker)
    cancelled = threading.Event()

    future = started(runtime, worker, worker.start, wait_forever(cancelled))
    runtime.terminate(pid)
    runtime.wait(pid).result(WAIT)

    with pytest.raises(
        ProcessTerminated, match=re.escape(f"{pid} terminated before its async work ")
    ):
        future.result(WAIT)
    assert "wait_forever" in str(future.failure)
    assert cancelled.wait(WAIT)
    # The callbacks ran in the process's last event, before finalize.
    assert worker.log == [("failed", "ProcessTerminated", str(future.failure)), "finalize"]


def test_work_cancelled_at_termination_with_nobody_listening_is_not_an_error(runtime):
    worker = Worker()
    pid = runtime.spawn(worker)
    cancelled = threading.Event()

    with capture_logs() as logs:
        started(runtime, worker, lambda: worker.run_async(wait_forever(cancelled)))
        runtime.terminate(pid)
        runtime.wait(pid).result(WAIT)
        assert cancelled.wait(WAIT)
        runtime.settle()

    assert logged(logs, "async_work_failed") == []
    [entry] = logged(logs, "async_work_cancelled")
    assert entry["process"] == pid
    assert entry["work"] == "wait_forever"


def test_work_asked_of_a_terminated_process_fails_at_once_and_never_runs(runtime):
    worker = Worker()
    pid = runtime.spawn(worker)
    runtime.terminate(pid)
    runtime.wait(pid).result(WAIT)
    coroutine = answer(1)

    future = worker.run_async(coroutine)

    with pytest.raises(ProcessTerminated, match="could start"):
        future.result(WAIT)
    assert inspect.getcoroutinestate(coroutine) == inspect.CORO_CLOSED


def test_discarding_the_future_cancels_the_work(runtime):
    worker = Worker()
    runtime.spawn(worker)
    cancelled = threading.Event()

    future = started(runtime, worker, lambda: worker.run_async(wait_forever(cancelled)))
    assert future.discard()

    assert cancelled.wait(WAIT)
    with pytest.raises(DiscardedError):
        future.result(WAIT)


def test_run_async_refuses_what_cannot_be_awaited_and_says_why(runtime):
    worker = Worker()
    runtime.spawn(worker)

    with pytest.raises(TypeError, match="call the coroutine function"):
        worker.run_async(answer)
    with pytest.raises(TypeError, match="takes an awaitable"):
        worker.run_async(42)
