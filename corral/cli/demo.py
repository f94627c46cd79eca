"""``corral demo``: actors in several OS processes, exchanging messages over ZeroMQ.

A conductor actor (in this process) launches node actors, each in an OS process of
its own, wires them into a ring, sends a token round, measures request/response
between processes, then kills one node with SIGKILL and shows the conductor being
told through its link. Later issues turn this into a whole local cluster.
"""

from __future__ import annotations

import os
import queue
import signal
import time
from typing import Any

from libprocess import UPID, Launched, LaunchOptions, Process, Runtime, handler, launch
from libprocess import log as logsetup


class Node(Process):
    """Passes the token to the next node of the ring and answers pings."""

    def __init__(self) -> None:
        super().__init__("node")
        self.next: UPID | None = None

    @handler("ring")
    def ring(self, sender: UPID | None, body: dict[str, Any]) -> None:
        self.next = UPID(body["next"])

    @handler("token")
    def token(self, sender: UPID | None, body: dict[str, Any]) -> None:
        body["hops"] += 1
        conductor = UPID(body["conductor"])
        self.send(conductor, "hop", {"hop": body["hops"], "os_pid": os.getpid(), "sender": sender})
        if body["hops"] < body["limit"]:
            self.send(self.next, "token", body)
        else:
            self.send(conductor, "token_home", body)

    @handler("ping")
    def ping(self, sender: UPID | None, body: Any) -> None:
        self.send(sender, "pong", body)


class Conductor(Process):
    """Lives in the demo's own process; everything it hears goes to the printing thread."""

    def __init__(self, events: queue.Queue) -> None:
        super().__init__("conductor")
        self.events = events
        self.pings_left: dict[UPID, int] = {}

    @handler("hop")
    def hop(self, sender: UPID | None, body: dict[str, Any]) -> None:
        self.events.put(("hop", sender, body))

    @handler("token_home")
    def token_home(self, sender: UPID | None, body: dict[str, Any]) -> None:
        self.events.put(("token_home", sender, body))

    def ping_burst(self, node: UPID, count: int, window: int = 250) -> None:
        self.pings_left[node] = count
        self.started = time.perf_counter()
        for i in range(min(window, count)):
            self.send(node, "ping", i)

    @handler("pong")
    def pong(self, sender: UPID | None, body: Any) -> None:
        left = self.pings_left[sender] = self.pings_left[sender] - 1
        if left >= 250:
            self.send(sender, "ping", body)
        elif left == 0:
            self.events.put(("burst_done", sender, time.perf_counter() - self.started))

    def watch(self, node: UPID) -> None:
        self.link(node)

    def exited(self, pid: UPID) -> None:
        self.events.put(("exited", pid, time.perf_counter()))


def run_demo(nodes: int = 3, rounds: int = 3, log_level: str = "warning") -> int:
    logsetup.configure(log_level)
    events: queue.Queue = queue.Queue()
    say = _Printer()
    launched: list[Launched] = []
    with Runtime("127.0.0.1", 0) as runtime:
        conductor = Conductor(events)
        runtime.spawn(conductor)
        say.title(f"conductor {conductor.pid} runs in this process (OS pid {os.getpid()})")
        try:
            for _ in range(nodes):
                node = launch(Node, options=LaunchOptions(log_level=log_level))
                launched.append(node)
                say.line(f"started {node.pid} in OS process {node.os_pid}")
            by_pid = {node.pid: node for node in launched}

            say.title(f"a token goes {rounds} times round the ring of {nodes} processes")
            for i, node in enumerate(launched):
                runtime.send(node.pid, "ring", {"next": launched[(i + 1) % nodes].pid})
            limit = rounds * nodes
            token = {"hops": 0, "limit": limit, "conductor": str(conductor.pid)}
            runtime.send(launched[0].pid, "token", token, conductor.pid)
            for _ in range(limit):
                _, at, body = _expect(events, "hop")
                came_from = body["sender"]
                origin = "conductor" if came_from == conductor.pid else came_from
                say.line(f"hop {body['hop']:>2}: {origin} -> {at} (OS pid {body['os_pid']})")
            _expect(events, "token_home")
            say.line("the token came home")

            count = 20_000
            say.title(f"{count:,} request/response round trips with each node, 250 in flight")
            for node in launched:
                runtime.dispatch(conductor, Conductor.ping_burst, node.pid, count)
                _, pid, seconds = _expect(events, "burst_done", timeout=60)
                say.line(f"{pid}: {count:,} in {seconds:.2f} s = {count / seconds:,.0f} per second")

            victim = launched[-1]
            say.title(f"the conductor links to {victim.pid}, which is then killed with SIGKILL")
            runtime.dispatch(conductor, Conductor.watch, victim.pid).result(5)
            killed_at = time.perf_counter()
            os.kill(victim.os_pid, signal.SIGKILL)
            _, pid, noticed_at = _expect(events, "exited", timeout=30)
            victim.join(5)
            launched.remove(victim)
            say.line(
                f"exited({pid}) reached the conductor {1000 * (noticed_at - killed_at):.0f} ms "
                f"after the kill (OS process {by_pid[pid].os_pid} exit code {victim.exitcode})"
            )
        finally:
            say.title("stopping the other nodes cleanly (SIGTERM, actors finalize)")
            for node in launched:
                code = node.stop()
                say.line(f"stopped {node.pid} (exit code {code})")
    say.title("done")
    return 0


def _expect(events: queue.Queue, kind: str, timeout: float = 10.0) -> tuple:
    deadline = time.monotonic() + timeout
    while True:
        try:
            event = events.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise SystemExit(f"demo: no {kind!r} event within {timeout} s; see the log") from None
        if event[0] == kind:
            return event


class _Printer:
    def title(self, text: str) -> None:
        print(f"\n== {text}", flush=True)

    def line(self, text: str) -> None:
        print(f"   {text}", flush=True)
