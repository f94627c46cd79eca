"""Actors and entry points for tests that run them in child OS processes.

Children are started with the ``spawn`` method and import what they run by module name
(``tests.actors``), so everything here is defined at module level.
"""

from __future__ import annotations

import os
import queue
import socket
import time
from typing import Any

from libprocess import UPID, LaunchOptions, Process, handler, launch


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the moment of asking)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Echo(Process):
    """Answers ``ping`` with ``pong`` (same body) and reports what it sees of senders."""

    @handler("ping")
    def ping(self, sender: UPID | None, body: Any) -> None:
        self.send(sender, "pong", body)

    @handler("whoami")
    def whoami(self, sender: UPID | None, body: Any) -> None:
        # What the receiver made of the sender field: its type and its parts.
        self.send(sender, "you_are", [type(sender).__name__, sender, sender.id, os.getpid()])

    @handler("link_to")
    def link_to(self, sender: UPID | None, body: Any) -> None:
        self.watcher = sender
        self.link(body)

    @handler("quit")
    def quit(self, sender: UPID | None, body: Any) -> None:
        self.terminate()

    def exited(self, pid: UPID) -> None:
        self.send(self.watcher, "saw_exited", pid)


class Farewell(Echo):
    """Echo that says ``bye`` to ``watcher`` when it is finalized."""

    def __init__(self, watcher: str) -> None:
        super().__init__()
        self.watcher_pid = UPID(watcher)

    def finalize(self) -> None:
        self.send(self.watcher_pid, "bye", os.getpid())


class Faulty(Process):
    """An actor whose constructor fails."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        raise ValueError(reason)


class FailingStart(Process):
    """An actor whose initialize fails."""

    def initialize(self) -> None:
        raise RuntimeError("cannot initialize")


class Collector(Process):
    """Puts every message and exit notice it gets on a thread-safe queue, for the test thread.

    Messages arrive as ``(sender, name, body)``; exit notices as ``(pid, "exited", when)``
    with ``when`` the wall-clock ``time.monotonic()`` at which the notice was served.
    """

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id)
        self.inbox: queue.Queue[tuple[Any, str, Any]] = queue.Queue()

    def unhandled(self, sender: UPID | None, name: str, body: Any) -> None:
        self.inbox.put((sender, name, body))

    def exited(self, pid: UPID) -> None:
        self.inbox.put((pid, "exited", time.monotonic()))

    def next(self, timeout: float = 5.0) -> tuple[Any, str, Any]:
        """The next message; ``timeout`` is a wall-clock safety net, not a protocol timeout."""
        try:
            return self.inbox.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.pid} received nothing within {timeout} s") from None

    def next_named(self, name: str, timeout: float = 5.0) -> tuple[Any, str, Any]:
        """The next message called ``name``, skipping others."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.pid} received no {name!r} within {timeout} s")
            message = self.next(left)
            if message[1] == name:
                return message

    def send_many(self, to: str, name: str, bodies: list[Any]) -> None:
        """Send one message per body, in order, in one event (dispatch this)."""
        for body in bodies:
            self.send(to, name, body)


def launch_child_and_wait(report, parent_check_interval: float) -> None:
    """A parent process for the orphan test: launch an Echo, report its OS pid, then idle.

    The test kills this process with SIGKILL; the Echo child must notice and exit.
    """
    child = launch(Echo, options=LaunchOptions(parent_check_interval=parent_check_interval))
    report.send(child.os_pid)
    report.close()
    time.sleep(60)  # a guard: the test kills this process long before
    child.stop()
