"""Launching an actor in an OS process of its own.

The child is started with multiprocessing's ``spawn`` method (never ``fork``, which
would copy ZeroMQ state), builds a runtime, spawns the actor and reports its UPID.
It lives until the actor terminates, ``stop()`` sends SIGTERM, or its parent dies.
"""

from __future__ import annotations

import asyncio
import atexit
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

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
    child.start()
    sender.close()
    try:
        if not receiver.poll(ready_timeout):
            raise LaunchError(
                f"{factory!r} did not report ready within {ready_timeout} s; see its log"
            )
        status, detail, http_address = receiver.recv()
    except EOFError:
        child.join(5)
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
        child.join(5)
        raise LaunchError(f"{factory!r} failed to start: {detail}")
    launched = Launched(child, UPID(detail), http_address)
    with _launched_lock:
        _launched.add(launched)
    return launched


@atexit.register
def _stop_launched_at_exit() -> None:
    # Registered after multiprocessing's own exit hook, so it runs first: children are
    # stopped here instead of being joined forever there.
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
    loop = asyncio.get_running_loop()
    runtime = Runtime(
        options.host, options.port, http_port=options.http_port, transport=options.transport
    )
    try:
        await runtime.astart()
        process = factory(*args, **kwargs)
        pid = runtime.spawn(process)
    except BaseException as error:
        report.send(("error", f"{type(error).__name__}: {error}", None))
        report.close()
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

    loop.call_later(options.parent_check_interval, check_parent)
    report.send(("ready", str(pid), runtime.http_address))
    report.close()
    await stop.wait()
    await runtime.astop()
