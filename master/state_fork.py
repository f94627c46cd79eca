"""A build of the master's state in a forked child: an immutable copy of the master, made by
the kernel in milliseconds.

At 20,000 agents and 100,000 tasks, ``/master/state`` is ~100 MB of JSON and takes seconds to
build. Built on the master's actor, those seconds stop every launch: the benchmark's hold
phase showed up to 50 s with no progress. Copying the records for another thread would cost
nearly what the build costs, and another OS process fed by the master's events would need an
event for every change the endpoints show. ``fork()`` gives the child the master's memory as
it is between two events, shared copy-on-write. The child builds the JSON from that memory,
writes it to a pipe and exits, and the master goes on with its next event at once. The
master's cost is the fork: page tables, ~10-30 ms at 500 MB. Pages are then copied as either
side writes to them.

The child does no I/O other than the pipe: no logging, no sockets (it holds the parent's
ZeroMQ sockets but never touches them), no garbage collection, and ``os._exit`` without
running the parent's exit handlers. It is killed if the master dies first (Linux's
parent-death signal), so an orphan build never outlives it.

The pipe carries one byte, ``b"+"`` for a body or ``b"!"`` for an error's text, then the body
or the text; the parent reads it on its asyncio loop, so reading costs it a system call per
megabyte.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import os
import signal
import time
import traceback
from collections.abc import Callable

import structlog

from libprocess.future import Future, Promise

log = structlog.get_logger("master.state_fork")

_CHUNK = 1 << 20
_PR_SET_PDEATHSIG = 1


class StateBuildFailed(Exception):
    """The child could not build the state: its error, in words."""


try:  # loaded here, in the parent: the child only calls it
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: the child ends when its build does
    _prctl = None


def _die_with_parent(parent: int) -> None:
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was asked for
            os._exit(3)


def _child(work: Callable[[], bytes], out: int, parent: int) -> None:
    """The child's whole life: build, write, exit (never returns)."""
    code = 0
    try:
        _die_with_parent(parent)
        gc.disable()  # the child exits soon: collecting would only copy pages
        try:
            body = b"+" + work()
        except BaseException as error:  # said to the parent, which answers with it
            code = 1
            lines = traceback.format_exception_only(type(error), error)
            body = b"!" + "".join(lines).strip().encode(errors="replace")
        view = memoryview(body)
        while view:
            view = view[os.write(out, view) :]
    except BaseException:
        code = 2  # the pipe is gone (the parent stopped reading): nothing to tell
    finally:
        os._exit(code)


def fork_build(work: Callable[[], bytes], loop: asyncio.AbstractEventLoop) -> Future[bytes]:
    """``work()`` run in a forked child; its bytes, read on ``loop`` (call this on ``loop``'s
    thread, between two of the master's events, so the child sees a consistent master)."""
    read_end, write_end = os.pipe()
    started = time.perf_counter()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        _child(work, write_end, parent)
    forked_ms = (time.perf_counter() - started) * 1000
    os.close(write_end)
    os.set_blocking(read_end, False)
    promise: Promise[bytes] = Promise()
    chunks: list[bytes] = []

    def readable() -> None:
        try:
            data = os.read(read_end, _CHUNK)
        except BlockingIOError:
            return
        except OSError as error:
            data, failure = b"", error
        else:
            failure = None
        if data:
            chunks.append(data)
            return
        loop.remove_reader(read_end)
        os.close(read_end)
        _, status = os.waitpid(pid, 0)  # the pipe closed: the child has exited or is exiting
        code = os.waitstatus_to_exitcode(status)
        body = b"".join(chunks)
        chunks.clear()
        seconds = time.perf_counter() - started
        if code == 0 and body[:1] == b"+" and failure is None:
            log.debug("state_forked_build", child=pid, fork_ms=round(forked_ms, 1),
                      seconds=round(seconds, 3), bytes=len(body) - 1)  # fmt: skip
            promise.set(body[1:])
            return
        reason = (
            body[1:].decode(errors="replace")
            if body[:1] == b"!"
            else f"the child {pid} ended with exit code {code} after {len(body)} bytes"
            + (f" ({failure})" if failure else "")
        )
        log.error("state_forked_build_failed", child=pid, reason=reason)
        promise.fail(StateBuildFailed(reason))

    loop.add_reader(read_end, readable)
    return promise.future
