"""Embedding the runtime in an application: in a background thread, or inside the
application's own asyncio loop; and the lifecycle rules around start and stop."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from libprocess import FutureTimeout, Process, Promise, Runtime, handler

WAIT = 5.0  # wall-clock safety net; never part of what is tested


class Account(Process):
    def __init__(self) -> None:
        super().__init__()
        self.balance = 0
        self.finalized = False

    def deposit(self, amount: int) -> int:
        self.balance += amount
        return self.balance

    def finalize(self) -> None:
        self.finalized = True

    @handler("deposit")
    def on_deposit(self, sender, body) -> None:
        self.deposit(body)


class Stopper(Process):
    @handler("stop")
    def stop(self, sender, body) -> None:
        self.runtime.request_stop()


def wait_for_state(runtime: Runtime, state: str) -> None:
    deadline = time.monotonic() + WAIT  # safety net only
    while runtime.state != state:
        assert time.monotonic() < deadline, f"runtime still {runtime.state}, expected {state}"
        time.sleep(0.005)


# -- a runtime in a background thread -------------------------------------------------------


def test_a_runtime_in_a_background_thread_serves_calls_from_other_threads():
    account = Account()
    with Runtime() as runtime:
        assert runtime.state == "running"
        pid = runtime.spawn(account)
        runtime.send(pid, "deposit", 5)  # ordered before the dispatch below
        assert runtime.dispatch(pid, "deposit", 1).result(WAIT) == 6
        loop_thread = runtime.dispatch(pid, threading.get_ident).result(WAIT)
        assert loop_thread != threading.get_ident()

        answers: list = []

        def worker(n: int) -> None:
            answers.append(runtime.dispatch(pid, "deposit", 1).result(WAIT))

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
        assert sorted(answers) == list(range(7, 15))
    assert runtime.state == "stopped"
    assert account.finalized
    with pytest.raises(RuntimeError, match="stopped"):
        runtime.spawn(Account())


def test_result_on_the_runtime_thread_raises_instead_of_deadlocking():
    with Runtime() as runtime:
        pid = runtime.spawn(Account())
        never = Promise()

        def blocks():
            return never.future.result(WAIT)

        with pytest.raises(RuntimeError, match=r"result\(\) was called on a runtime's own loop"):
            runtime.dispatch(pid, blocks).result(WAIT)
        # A complete future has nothing to wait for, so result() is fine there.
        assert runtime.dispatch(pid, lambda: runtime.dispatch(pid, "deposit", 0)).result(WAIT) == 0


# -- a runtime inside the application's asyncio loop ----------------------------------------


def test_a_runtime_inside_an_applications_asyncio_loop():
    app_ticks: list = []

    async def app() -> None:
        async with Runtime() as runtime:
            assert runtime.state == "running"
            pid = runtime.spawn(Account())
            assert await runtime.dispatch(pid, "deposit", 5) == 5
            # The runtime serves on the application's own thread ...
            assert await runtime.dispatch(pid, threading.get_ident) == threading.get_ident()

            # ... alongside the application's other tasks.
            async def ticker() -> None:
                for n in range(3):
                    app_ticks.append(n)
                    await asyncio.sleep(0)

            task = asyncio.create_task(ticker())
            total = await runtime.dispatch(pid, "deposit", 1)
            await task
            assert total == 6

            # Calls from another thread are handed to the application's loop.
            def from_thread() -> int:
                return runtime.dispatch(pid, "deposit", 10).result(WAIT)

            assert await asyncio.to_thread(from_thread) == 16
        assert runtime.state == "stopped"

    asyncio.run(app())
    assert app_ticks == [0, 1, 2]


def test_result_on_the_applications_loop_thread_raises_instead_of_deadlocking():
    async def app() -> None:
        async with Runtime() as runtime:
            pid = runtime.spawn(Account())
            pending = Promise().future
            with pytest.raises(RuntimeError, match="use then\\(\\) or await"):
                pending.result(WAIT)
            assert await runtime.dispatch(pid, "deposit", 1) == 1

    asyncio.run(app())


def test_sync_stop_is_refused_inside_the_application_loop():
    async def app() -> None:
        async with Runtime() as runtime:
            with pytest.raises(RuntimeError, match="await astop"):
                runtime.stop()
            assert runtime.state == "running"

    asyncio.run(app())


def test_async_stop_is_refused_for_a_threaded_runtime():
    with Runtime() as runtime:
        with pytest.raises(RuntimeError, match=r"stop it with stop\(\)"):
            asyncio.run(runtime.astop())
        assert runtime.state == "running"


# -- lifecycle rules ------------------------------------------------------------------------


def test_stop_is_idempotent():
    runtime = Runtime()
    runtime.stop()  # never started: nothing to do
    runtime.start()
    runtime.stop()
    runtime.stop()
    assert runtime.state == "stopped"

    async def app() -> None:
        embedded = Runtime()
        await embedded.astart()
        await embedded.astop()
        await embedded.astop()
        assert embedded.state == "stopped"

    asyncio.run(app())


def test_start_twice_raises():
    with (
        Runtime() as runtime,
        pytest.raises(RuntimeError, match=r"start\(\) needs a new runtime.*running"),
    ):
        runtime.start()
    with pytest.raises(RuntimeError, match="starts once: make a new Runtime"):
        runtime.start()


def test_spawn_and_send_before_start_raise_clear_errors():
    runtime = Runtime()
    with pytest.raises(RuntimeError, match=r"needs a running runtime.*new.*start it first"):
        runtime.spawn(Account())
    with pytest.raises(RuntimeError, match="start it before using it"):
        runtime.send("someone@127.0.0.1:5050", "hello")


def test_request_stop_from_inside_an_actor_stops_a_threaded_runtime():
    account = Account()
    runtime = Runtime().start()
    try:
        runtime.spawn(account)
        stopper = runtime.spawn(Stopper())
        runtime.send(stopper, "stop")
        runtime.wait(stopper).result(WAIT)
        wait_for_state(runtime, "stopped")
        assert account.finalized
    finally:
        runtime.stop()  # already stopped: returns at once
    assert runtime.state == "stopped"


def test_request_stop_from_inside_an_actor_stops_an_embedded_runtime():
    async def app() -> None:
        runtime = await Runtime().astart()
        stopper = runtime.spawn(Stopper())
        runtime.send(stopper, "stop")
        await asyncio.wait_for(runtime.wait_stopped(), WAIT)
        assert runtime.state == "stopped"
        await runtime.astop()  # idempotent

    asyncio.run(app())


def test_stop_while_a_requested_stop_is_under_way_waits_for_it():
    for _ in range(5):
        runtime = Runtime(http_port=0).start()
        account = Account()
        runtime.spawn(account)
        runtime.request_stop()
        runtime.stop()
        assert runtime.state == "stopped"
        assert account.finalized


def _busy_port() -> socket.socket:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    return holder


def test_a_failed_start_releases_what_it_bound():
    holder = _busy_port()
    try:
        runtime = Runtime(http_port=holder.getsockname()[1])
        with pytest.raises(OSError, match="choose another port"):
            runtime.start()
        assert runtime.state == "stopped"
        # Its message port was released: a new runtime can bind the very same one.
        port = int(runtime.address.rsplit(":", 1)[1])
        with Runtime(port=port) as again:
            assert again.address == f"127.0.0.1:{port}"
    finally:
        holder.close()


def test_a_failed_embedded_start_leaves_the_application_thread_unmarked():
    holder = _busy_port()

    async def app() -> None:
        runtime = Runtime(http_port=holder.getsockname()[1])
        with pytest.raises(OSError, match="choose another port"):
            await runtime.astart()
        assert runtime.state == "stopped"
        # This thread is no longer taken for a runtime's loop: result() may wait here.
        with pytest.raises(FutureTimeout):
            Promise().future.result(0.01)

    try:
        asyncio.run(app())
    finally:
        holder.close()


def test_stop_right_after_request_stop_returns_promptly():
    """stop() from another thread while a request_stop() winds down must not wait for its
    timeout: the requested stop ends the thread, stop() just joins it."""
    runtime = Runtime().start()
    runtime.request_stop()
    started = time.monotonic()
    runtime.stop(timeout=10)
    assert time.monotonic() - started < 5
    assert runtime.state == "stopped"
