"""Actors launched in OS processes of their own: start, serve, stop, kill, fail, orphan.

Every process a test starts is stopped by its pid in teardown.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from libprocess import UPID, Launched, LaunchError, LaunchOptions, launch
from tests.actors import (
    Collector,
    Echo,
    FailingStart,
    Farewell,
    Faulty,
    free_port,
    launch_child_and_wait,
)


@pytest.fixture
def children():
    """Launch children for one test; each is stopped (SIGKILL, by pid) after it."""
    started: list[Launched] = []

    def start(factory=Echo, *args, **kwargs) -> Launched:
        child = launch(factory, *args, **kwargs)
        started.append(child)
        return child

    yield start
    for child in started:
        child.kill()


def alive(os_pid: int) -> bool:
    """Whether ``os_pid`` is a process that has not exited (a zombie has exited)."""
    try:
        state = Path(f"/proc/{os_pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def wait_until(condition, timeout: float, what: str) -> float:
    """Poll ``condition``; returns the seconds it took. ``timeout`` is a safety net."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.01)
    return time.monotonic() - started


def test_launch_returns_the_pid_of_an_actor_in_a_new_os_process(home, collector, echo):
    assert type(echo.pid) is UPID
    assert echo.pid.id == "echo(1)"
    assert echo.pid.address != home.address
    assert echo.os_pid != os.getpid() and echo.is_alive()
    assert isinstance(echo.process, multiprocessing.get_context("spawn").Process)
    cmdline = Path(f"/proc/{echo.os_pid}/cmdline").read_bytes()
    assert b"spawn_main" in cmdline  # started fresh by the spawn method, not forked
    home.send(echo.pid, "ping", {"hello": "child"}, sender=collector.pid)
    assert collector.next() == (echo.pid, "pong", {"hello": "child"})


def test_stop_ends_the_child_cleanly_after_finalize(home, collector, children):
    child = children(Farewell, str(collector.pid))
    home.send(child.pid, "ping", 1, sender=collector.pid)
    assert collector.next()[1] == "pong"  # serving
    assert child.stop() == 0
    assert not child.is_alive()
    sender, name, body = collector.next()
    assert (sender, name, body) == (child.pid, "bye", child.os_pid)


def test_kill_ends_the_child_with_sigkill_and_no_finalize(home, collector, children):
    child = children(Farewell, str(collector.pid))
    home.send(child.pid, "ping", 1, sender=collector.pid)
    assert collector.next()[1] == "pong"
    child.kill()
    assert child.exitcode == -signal.SIGKILL
    assert not alive(child.os_pid)
    time.sleep(0.2)  # a "bye" sent from finalize would be here within milliseconds
    assert collector.inbox.empty()


def test_a_failing_constructor_makes_launch_raise_with_the_reason():
    before = set(multiprocessing.active_children())
    with pytest.raises(LaunchError, match=r"failed to start.*ValueError: no good reason"):
        launch(Faulty, "no good reason")
    assert set(multiprocessing.active_children()) <= before  # the child is gone


def test_a_failing_initialize_makes_launch_raise():
    before = set(multiprocessing.active_children())
    with pytest.raises(LaunchError, match=r"ended during initialize\(\)"):
        launch(FailingStart, options=LaunchOptions(log_level="critical"))
    assert set(multiprocessing.active_children()) <= before


def test_an_unpicklable_factory_makes_launch_raise_before_starting_anything():
    before = set(multiprocessing.active_children())
    with pytest.raises(LaunchError, match="module-level function"):
        launch(lambda: Echo())
    assert set(multiprocessing.active_children()) <= before


def test_a_child_not_ready_in_time_is_killed():
    before = set(multiprocessing.active_children())
    with pytest.raises(LaunchError, match=r"did not report ready within 0\.01 s"):
        launch(Echo, ready_timeout=0.01)
    assert set(multiprocessing.active_children()) <= before


def test_the_child_exits_when_its_actor_terminates(home, collector, children):
    child = children()
    home.send(child.pid, "quit", None, sender=collector.pid)
    assert child.join(timeout=10) == 0
    assert child.stop() == 0  # stopping an exited child just reports its code


def test_a_child_whose_parent_dies_exits_on_its_own():
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    parent = context.Process(target=launch_child_and_wait, args=(sender, 0.1))
    parent.start()
    sender.close()
    grandchild = None
    try:
        assert receiver.poll(30), "the helper parent did not report its child"
        grandchild = receiver.recv()
        assert alive(grandchild)
        os.kill(parent.pid, signal.SIGKILL)
        parent.join(10)
        took = wait_until(lambda: not alive(grandchild), 5.0, "the orphaned child exiting")
        assert took < 5.0
    finally:
        receiver.close()
        if parent.is_alive():
            parent.kill()
            parent.join()
        if grandchild is not None and alive(grandchild):
            cmdline = Path(f"/proc/{grandchild}/cmdline").read_bytes()
            if b"spawn_main" in cmdline:  # still ours, not a recycled pid
                os.kill(grandchild, signal.SIGKILL)


def test_launch_options_choose_the_child_port(children):
    port = free_port()
    child = children(options=LaunchOptions(port=port))
    assert child.pid.port == port and child.pid.host == "127.0.0.1"


def test_a_program_that_exits_without_stopping_its_children_stops_them():
    # Without care, multiprocessing's exit hook would join the serving child forever.
    script = (
        "from libprocess import launch\n"
        "from tests.actors import Echo\n"
        "print(launch(Echo).os_pid, flush=True)\n"
    )
    root = Path(__file__).resolve().parent.parent
    program = subprocess.Popen(
        [sys.executable, "-c", script], cwd=root, stdout=subprocess.PIPE, text=True
    )
    child = None
    try:
        child = int(program.stdout.readline())
        assert program.wait(timeout=20) == 0
        assert not alive(child)
    finally:
        if program.poll() is None:
            program.kill()
            program.wait()
        program.stdout.close()
        if child is not None and alive(child):
            os.kill(child, signal.SIGKILL)


def test_serve_runs_an_actor_in_the_foreground_until_sigterm(runtime):
    """``serve`` is a program's main (``corral master``): ready, serving, clean stop."""
    program = (
        "from libprocess import serve\n"
        "from tests.actors import Echo\n"
        "raise SystemExit(serve(Echo, on_ready=lambda pid, http: print(pid, flush=True)))\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", program],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
        text=True,
    )
    try:
        pid = UPID(child.stdout.readline().strip())
        collector = Collector()
        runtime.spawn(collector)
        runtime.send(pid, "ping", {"n": 7}, collector.pid)
        assert collector.next(timeout=10) == (pid, "pong", {"n": 7})
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=10) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
