"""Launching an actor in an OS process of its own.

The child is started with multiprocessing's ``spawn`` method (never ``fork``, which
would copy ZeroMQ state), builds a runtime, spawns the actor and reports its UPID.
It lives until the actor terminates, ``stop()`` sends SIGTERM, or its parent dies.
"""

from __future__ import annotations

import asyncio
import atexit
import multiprocessing
import multiprocessing.util  # registers its exit hook now, before ours: see below
import os
import pickle
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from libprocess.host import ProcessTerminated
from libprocess.process import Process
from libprocess.runtime import Runtime, new_event_loop
from libprocess.transport import TransportConfig
from libprocess.upid import UPID

log = structlog.get_logger("libprocess.launch")

_launched: set[Launched] = set()
_launched_lock = threading.Lock()


class LaunchError(RuntimeError):
    """The child process failed before its actor was serving."""


@dataclass(frozen=True)
class LaunchOptions:
    """How the child's runtime is set up."""

    host: str = "127.0.0.1"
    port: int = 0
    http_port: int | None = None
    transport: TransportConfig = field(default_factory=TransportConfig)
    log_level: str = "warning"
    parent_check_interval: float = 0.5  # seconds of real time between checks on the parent


class Launched:
    """A handle on an actor running in a child OS process."""

    def __init__(
        self, process: multiprocessing.process.BaseProcess, pid: UPID, http_address: str | None
    ) -> None:
        self.process = process
        self.pid = pid
        self.http_address = http_address

    @property
    def os_pid(self) -> int:
        return self.process.pid

    def is_alive(self) -> bool:
        return self.process.is_alive()

    @property
    def exitcode(self) -> int | None:
        return self.process.exitcode

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (a clean stop: actors finalize), then SIGKILL after ``timeout``."""
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout)
            if self.process.is_alive():
                log.warning(
                    "launched_process_killed",
                    pid=self.pid,
                    os_pid=self.os_pid,
                    reason=f"no exit within {timeout} s of SIGTERM",
                )
                self.process.kill()
                self.process.join()
        else:
            self.process.join()
        with _launched_lock:
            _launched.discard(self)
        return self.process.exitcode

    def kill(self) -> None:
        """SIGKILL, as a crash would: nothing is finalized."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        with _launched_lock:
            _launched.discard(self)

    def join(self, timeout: float | None = None) -> int | None:
        self.process.join(timeout)
        return self.process.exitcode

    def __repr__(self) -> str:
        return f"<Launched {self.pid} os_pid={self.os_pid}>"


def launch(
    factory: type[Process] | Callable[..., Process],
    *args: Any,
    options: LaunchOptions | None = None,
    ready_timeout: float = 60.0,
    **kwargs: Any,
) -> Launched:
    """Start ``factory(*args, **kwargs)`` in a new OS process; returns once it serves.

    ``factory`` and its arguments are pickled, so they must be importable (a class or a
    module-level function). Blocks the calling thread while the child starts.
    """
    options = options or LaunchOptions()
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_child_main,
        args=(sender, factory, args, kwargs, options, os.getpid()),
        name=f"libprocess-{getattr(factory, '__name__', 'actor')}",
    )
    try:
        child.start()  # pickles the target and its arguments before it starts anything
    except (pickle.PicklingError, TypeError, AttributeError) as error:
        receiver.close()
        raise LaunchError(
            f"cannot send {factory!r} and its arguments to a new process: {error}; the "
            "factory must be a class or a module-level function, and its arguments picklable"
        ) from None
    finally:
        sender.close()
    try:
        if not receiver.poll(ready_timeout):
            raise LaunchError(
                f"{factory!r} did not report ready within {ready_timeout} s; see its log"
            )
        status, detail, http_address = receiver.recv()
    except EOFError:
        _reap(child)
        raise LaunchError(
            f"{factory!r} exited with code {child.exitcode} before it was ready; see its log"
        ) from None
    except BaseException:
        child.kill()
        child.join()
        raise
    finally:
        receiver.close()
    if status != "ready":
        _reap(child)
        raise LaunchError(f"{factory!r} failed to start in its process: {detail}")
    launched = Launched(child, UPID(detail), http_address)
    with _launched_lock:
        _launched.add(launched)
    return launched


def _reap(child: multiprocessing.process.BaseProcess, timeout: float = 5.0) -> None:
    """Wait for a child that is on its way out; kill it if it does not go."""
    child.join(timeout)
    if child.is_alive():
        child.kill()
        child.join()


@atexit.register
def _stop_launched_at_exit() -> None:
    # Exit hooks run last-registered first. multiprocessing.util registers its hook, which
    # joins every live child and would wait forever on a serving one, when it is first
    # imported; importing it at the top of this module puts ours after it, so this runs
    # first and stops the children.
    with _launched_lock:
        children = list(_launched)
    for child in children:
        child.stop(timeout=5)


def _child_main(
    report, factory, args: tuple, kwargs: dict, options: LaunchOptions, parent_pid: int
) -> None:
    from libprocess import log as logsetup

    logsetup.configure(options.log_level)
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(_serve_child(report, factory, args, kwargs, options, parent_pid))
    finally:
        loop.close()


async def _serve_child(report, factory, args, kwargs, options: LaunchOptions, parent_pid: int):
    def ready(pid: UPID, http_address: str | None) -> None:
        report.send(("ready", str(pid), http_address))
        report.close()

    def failed(reason: str) -> None:
        report.send(("error", reason, None))
        report.close()

    await _serve(factory, args, kwargs, options, ready, failed, parent_pid)


def serve(
    factory: type[Process] | Callable[..., Process],
    *args: Any,
    options: LaunchOptions | None = None,
    on_ready: Callable[[UPID, str | None], None] | None = None,
    **kwargs: Any,
) -> int:
    """Run ``factory(*args, **kwargs)`` in this process until SIGINT/SIGTERM or until the
    actor ends (a program's main: ``corral master``). Returns 0, or 1 if it failed to start.

    ``on_ready(pid, http_address)`` runs once the actor has initialized.
    """
    options = options or LaunchOptions()
    from libprocess import log as logsetup

    logsetup.configure(options.log_level)
    failure: list[str] = []
    loop = new_event_loop()
    try:
        loop.run_until_complete(
            _serve(
                factory, args, kwargs, options, on_ready or (lambda *_: None), failure.append, None
            )
        )
    finally:
        loop.close()
    if failure:
        log.error("serve_failed", reason=failure[0])
        return 1
    return 0


async def _serve(
    factory, args, kwargs, options: LaunchOptions, ready, failed, parent_pid: int | None
) -> None:
    """Start a runtime, spawn the actor, call ``ready``, serve until told to stop."""
    loop = asyncio.get_running_loop()
    runtime = Runtime(
        options.host, options.port, http_port=options.http_port, transport=options.transport
    )
    try:
        await runtime.astart()
        process = factory(*args, **kwargs)
        pid = runtime.spawn(process)
        # A dispatch is served after initialize: once it is, the actor is serving.
        await runtime.dispatch(process, _serving)
    except ProcessTerminated:
        failed(
            "the actor ended during initialize() (it raised, or terminated itself); "
            "the log has the traceback"
        )
        await runtime.astop()
        return
    except BaseException as error:
        failed(f"{type(error).__name__}: {error}")
        await runtime.astop()
        return
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    runtime.wait(process).on_any(lambda _: loop.call_soon_threadsafe(stop.set))

    def check_parent() -> None:
        if os.getppid() != parent_pid:
            log.warning("parent_gone", pid=pid, parent=parent_pid)
            stop.set()
        else:
            loop.call_later(options.parent_check_interval, check_parent)

    if parent_pid is not None:
        loop.call_later(options.parent_check_interval, check_parent)
    ready(pid, runtime.http_address)
    await stop.wait()
    await runtime.astop()


def _serving() -> None:
    """Dispatched to the launched actor: it runs once the actor has initialized."""
