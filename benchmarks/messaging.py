"""Messaging benchmarks of the libprocess runtime on one machine.

Run from the repository root (``make bench`` / ``make bench-quick``)::

    .venv/bin/python benchmarks/messaging.py [--quick] [--messages N] [--repeats R]
                                             [--only raw,remote,rpc,local,pingpong]

Five scenarios, each run several times; the figure kept is the median of the repeats.

raw
    The ceiling of the stack, without actors: one OS process PUSHes N msgpack-packed
    ~100-byte dicts (one ``packb`` per send) over tcp on 127.0.0.1 to a PULL socket in
    another OS process, which unpacks each one. msgs/s = N / (last receive - first send).
remote
    One-way actor messages between OS processes: a ``Source`` actor here sends N messages
    (the same ~100-byte dict as body) to a ``Sink`` actor launched in a child process with
    ``libprocess.launch``. The sink counts them, checks their order, and answers "done" with
    its count and the time of the last one. msgs/s = N / (last receive - first send).
    ``remote_to_raw`` is remote / raw in the same run: the share of the bare stack's
    throughput the runtime keeps. It can exceed 1, since the runtime packs many messages
    into one ZeroMQ frame.
rpc
    Request/response like libprocess's ClientServer benchmark: 8 ``Client`` actors here,
    each keeping 250 requests (tiny body: the request's number) in flight to one ``Echo``
    actor in a child process; each response triggers the next request until the client's
    quota is done. rpcs/s = responses / (first request - last response).
local
    Actor-to-actor messages inside one runtime: 4 pairs of actors (a ``Client`` and an
    ``Echo``) bounce requests and responses, 32 in flight per pair. Every message is
    handled by an actor; msgs/s = (requests + responses) / elapsed.
pingpong
    The same with one pair and one message in flight (``local_pingpong_msgs_per_s``): each
    message costs a full trip through the run queue, nothing is amortized. An extra
    figure, with no goal; half as many messages as ``local``.

Timing reads CLOCK_MONOTONIC (``time.monotonic``), one clock for all processes of the
machine, so "first send in one process, last receive in another" is a sound interval.
Each scenario starts with a small warm-up round (connections made, code paths warm) that
is not counted. A repeat counts only if the receiver got every message, in order: a loss
or a reordering fails the scenario instead of flattering its figure.

Progress goes to stderr, one line per repeat. The last line on stdout is one JSON object:
the medians (``raw_msgs_per_s``, ``remote_msgs_per_s``, ``remote_to_raw``, ``rpcs_per_s``,
``local_msgs_per_s``, ``local_pingpong_msgs_per_s``), every repeat's figure (``runs``),
the message counts (``messages``), and the goals with whether each is met. The exit
status is 1 if a scenario failed (its figure is then null and ``errors`` says why).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import msgpack
import zmq

from libprocess import UPID, Future, Process, Promise, Runtime, collect, handler, launch
from libprocess import log as logsetup

# CLOCK_MONOTONIC on Linux: one clock shared by every process of the machine.
now = time.monotonic

GOALS = {
    "remote_to_raw": 0.5,
    "rpcs_per_s": 50_000,
    "local_msgs_per_s": 300_000,
}

RPC_CLIENTS = 8  # as in libprocess's ClientServer benchmark
RPC_IN_FLIGHT = 250  # requests each client keeps outstanding
LOCAL_PAIRS = 4  # client/echo pairs in the local scenario
LOCAL_IN_FLIGHT = 32  # requests each local client keeps outstanding
SOURCE_CHUNK = 1024  # messages the Source sends per event before yielding to its mailbox


class BenchmarkError(RuntimeError):
    """A scenario could not produce an honest figure (a loss, a hang, a dead child)."""


def body(seq: int) -> dict[str, Any]:
    """The ~100-byte message body (104-108 bytes packed) of the raw and remote scenarios."""
    return {
        "seq": seq,
        "framework": "framework-0001",
        "agent": "agent-0042",
        "task": "task-000123",
        "state": "TASK_RUNNING",
        "cpus": 0.5,
        "mem": 128,
    }


def round_timeout(count: int) -> float:
    """Seconds to wait for one round: generous, only a guard against hanging."""
    return 30.0 + count / 10_000


# -- actors (module level, so that children started with 'spawn' can import them) ------------


class Sink(Process):
    """Counts a round's messages and answers "done" once it has them all."""

    def __init__(self) -> None:
        super().__init__("sink")
        self.expected = 0
        self.count = 0
        self.out_of_order = 0

    @handler("expect")
    def expect(self, sender: UPID, count: int) -> None:
        self.expected = count
        self.count = 0
        self.out_of_order = 0
        self.send(sender, "ready")

    @handler("m")
    def message(self, sender: UPID, message: dict[str, Any]) -> None:
        if message["seq"] != self.count:
            self.out_of_order += 1
        self.count += 1
        if self.count == self.expected:
            done = {"count": self.count, "last": now(), "out_of_order": self.out_of_order}
            self.send(sender, "done", done)

    @handler("probe")
    def probe(self, sender: UPID, _: Any) -> None:
        self.send(sender, "probed", {"count": self.count, "expected": self.expected})


class Source(Process):
    """Sends a round of N messages to a Sink; ``run`` is dispatched to it from outside."""

    def __init__(self, sink: UPID) -> None:
        super().__init__("source")
        self.sink = sink
        self._count = 0
        self._start = 0.0
        self._round: Promise[dict[str, Any]] | None = None
        self._probe: Promise[dict[str, Any]] | None = None

    def run(self, count: int) -> Future[dict[str, Any]]:
        """One round; a future of the sink's report, with ``start`` (the first send) added."""
        self._count = count
        self._round = Promise()
        self.send(self.sink, "expect", count)
        return self._round.future

    def probe(self) -> Future[dict[str, Any]]:
        """A future of how many messages the sink has (after a round failed to finish)."""
        self._probe = Promise()
        self.send(self.sink, "probe")
        return self._probe.future

    @handler("ready")
    def ready(self, sender: UPID, _: Any) -> None:
        self._start = now()
        self._send_from(0)

    @handler("more")
    def more(self, sender: UPID, seq: int) -> None:
        self._send_from(seq)

    def _send_from(self, seq: int) -> None:
        end = min(seq + SOURCE_CHUNK, self._count)
        send = self.send
        sink = self.sink
        for i in range(seq, end):
            send(sink, "m", body(i))
        if end < self._count:
            send(self.pid, "more", end)  # let other events in between chunks

    @handler("done")
    def done(self, sender: UPID, report: dict[str, Any]) -> None:
        report["start"] = self._start
        self._round.set(report)

    @handler("probed")
    def probed(self, sender: UPID, report: dict[str, Any]) -> None:
        if self._probe is not None:
            self._probe.set(report)


class Echo(Process):
    """Answers each request with its body."""

    @handler("request")
    def request(self, sender: UPID, number: int) -> None:
        self.send(sender, "response", number)


class Client(Process):
    """Keeps ``window`` requests in flight to an Echo until ``quota`` are answered."""

    def __init__(self) -> None:
        super().__init__()
        self._server: UPID | None = None
        self._quota = 0
        self._sent = 0
        self._received = 0
        self._mismatched = 0
        self._first = 0.0
        self._round: Promise[dict[str, Any]] | None = None

    def run(self, server: UPID, quota: int, window: int) -> Future[dict[str, Any]]:
        self._server = server
        self._quota = quota
        self._sent = 0
        self._received = 0
        self._mismatched = 0
        self._round = Promise()
        self._first = now()
        for _ in range(min(window, quota)):
            self._request()
        return self._round.future

    def _request(self) -> None:
        self.send(self._server, "request", self._sent)
        self._sent += 1

    @handler("response")
    def response(self, sender: UPID, number: int) -> None:
        if number != self._received:  # responses come back in request order
            self._mismatched += 1
        self._received += 1
        if self._sent < self._quota:
            self._request()
        elif self._received == self._quota:
            self._round.set(self.report(now()))

    def report(self, last: float | None = None) -> dict[str, Any]:
        return {
            "first": self._first,
            "last": last,
            "received": self._received,
            "quota": self._quota,
            "mismatched": self._mismatched,
        }


# -- measuring ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """Messages per timed round of each scenario, and timed rounds per scenario."""

    raw: int
    remote: int
    rpc: int  # requests, summed over the clients
    local: int  # messages: requests plus responses
    repeats: int

    @staticmethod
    def of(quick: bool, messages: int | None, repeats: int | None) -> Sizes:
        if quick:
            sizes = Sizes(raw=100_000, remote=100_000, rpc=40_000, local=300_000, repeats=3)
        else:
            sizes = Sizes(raw=300_000, remote=300_000, rpc=80_000, local=1_000_000, repeats=5)
        if messages is not None:
            sizes = replace(sizes, raw=messages, remote=messages, rpc=messages, local=messages)
        if repeats is not None:
            sizes = replace(sizes, repeats=repeats)
        return sizes


def warmup_size(count: int) -> int:
    return min(count, max(1000, count // 20))


@dataclass(frozen=True)
class Round:
    count: int  # messages (or responses) received, all of those sent
    seconds: float  # first send to last receive

    @property
    def rate(self) -> float:
        return self.count / self.seconds


def progress(scenario: str, label: str, result: Round, unit: str) -> None:
    print(
        f"{scenario:<9}{label:<8}{result.rate:>12,.0f} {unit}"
        f"   ({result.count:,} in {result.seconds:.3f} s)",
        file=sys.stderr,
        flush=True,
    )


def repeat(
    scenario: str, run_round: Callable[[int], Round], count: int, repeats: int, unit: str
) -> list[float]:
    """A warm-up round, then ``repeats`` timed rounds; the rates of the timed ones."""
    progress(scenario, "warm-up", run_round(warmup_size(count)), unit)
    rates = []
    for index in range(repeats):
        result = run_round(count)
        progress(scenario, f"{index + 1}/{repeats}", result, unit)
        rates.append(result.rate)
    return rates


# -- raw: pyzmq PUSH -> PULL with msgpack, no runtime ------------------------------------


def _raw_receiver(pipe) -> None:
    """The child of the raw scenario: PULL, unpack each message, report count and time."""
    context = zmq.Context()
    sock = context.socket(zmq.PULL)
    sock.setsockopt(zmq.LINGER, 0)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    pipe.send(port)
    recv = sock.recv
    unpackb = msgpack.unpackb
    try:
        while (count := pipe.recv()) is not None:
            sock.setsockopt(zmq.RCVTIMEO, int(round_timeout(count) * 1000))
            pipe.send("ready")
            received = out_of_order = 0
            try:
                while received < count:
                    if unpackb(recv())["seq"] != received:
                        out_of_order += 1
                    received += 1
            except zmq.Again:
                pass  # reported short: the parent fails the round
            pipe.send({"count": received, "last": now(), "out_of_order": out_of_order})
    finally:
        sock.close(0)
        context.term()


def _receive(pipe, timeout: float, what: str) -> Any:
    if not pipe.poll(timeout):
        raise BenchmarkError(f"no {what} from the raw receiver within {timeout:g} s")
    return pipe.recv()


def _stop_child(child: multiprocessing.process.BaseProcess) -> None:
    """Stop a child we started, by its pid: join, then SIGTERM, then SIGKILL."""
    child.join(5)
    if child.is_alive():
        child.terminate()
        child.join(5)
    if child.is_alive():
        child.kill()
        child.join()


def bench_raw(sizes: Sizes) -> list[float]:
    context = multiprocessing.get_context("spawn")
    pipe, child_pipe = context.Pipe()
    child = context.Process(target=_raw_receiver, args=(child_pipe,), name="bench-raw-receiver")
    child.start()
    child_pipe.close()
    zmq_context = sock = None
    try:
        zmq_context = zmq.Context()
        sock = zmq_context.socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 0)
        port = _receive(pipe, 60, "port")
        sock.connect(f"tcp://127.0.0.1:{port}")

        def run_round(count: int) -> Round:
            timeout = round_timeout(count)
            sock.setsockopt(zmq.SNDTIMEO, int(timeout * 1000))
            pipe.send(count)
            _receive(pipe, timeout, "ready")
            send = sock.send
            packb = msgpack.packb
            start = now()
            for seq in range(count):
                send(packb(body(seq)))
            report = _receive(pipe, timeout, "report")
            if report["count"] != count or report["out_of_order"]:
                raise BenchmarkError(
                    f"the raw receiver got {report['count']:,} of {count:,} messages, "
                    f"{report['out_of_order']:,} out of order"
                )
            return Round(count, report["last"] - start)

        return repeat("raw", run_round, sizes.raw, sizes.repeats, "msgs/s")
    finally:
        if sock is not None:
            sock.close(0)
        if zmq_context is not None:
            zmq_context.term()
        with contextlib.suppress(OSError):
            pipe.send(None)  # the child's way out; it may be gone already
        pipe.close()
        _stop_child(child)


# -- the runtime's scenarios --------------------------------------------------------------


def _dropped(runtime: Runtime) -> int:
    return int(runtime.metrics.snapshot().get("libprocess/messages_dropped", 0))


def bench_remote(sizes: Sizes) -> list[float]:
    sink = launch(Sink)
    runtime = Runtime("127.0.0.1", 0)
    try:
        runtime.start()
        source = Source(sink.pid)
        runtime.spawn(source)

        def run_round(count: int) -> Round:
            future = runtime.dispatch(source, Source.run, count)
            try:
                report = future.result(round_timeout(count))
            except TimeoutError:
                probed = runtime.dispatch(source, Source.probe).result(10)
                raise BenchmarkError(
                    f"the sink got {probed['count']:,} of {count:,} messages (it expected "
                    f"{probed['expected']:,}) within {round_timeout(count):g} s; the sender's "
                    f"runtime counted {_dropped(runtime):,} dropped"
                ) from None
            if report["count"] != count or report["out_of_order"]:
                raise BenchmarkError(
                    f"the sink got {report['count']:,} of {count:,} messages, "
                    f"{report['out_of_order']:,} out of order"
                )
            return Round(count, report["last"] - report["start"])

        return repeat("remote", run_round, sizes.remote, sizes.repeats, "msgs/s")
    finally:
        runtime.stop()
        sink.stop()


def _run_clients(
    runtime: Runtime, clients: list[Client], servers: list[UPID], quota: int, window: int
) -> Round:
    """One round of every client against its server; responses / (first send - last one)."""
    total = quota * len(clients)
    futures = [
        runtime.dispatch(client, Client.run, server, quota, window)
        for client, server in zip(clients, servers, strict=True)
    ]
    try:
        reports = collect(futures).result(round_timeout(total))
    except TimeoutError:
        reports = [runtime.dispatch(client, Client.report).result(10) for client in clients]
        received = sum(report["received"] for report in reports)
        raise BenchmarkError(
            f"the clients got {received:,} of {total:,} responses; the runtime counted "
            f"{_dropped(runtime):,} messages dropped"
        ) from None
    mismatched = sum(report["mismatched"] for report in reports)
    if mismatched:
        raise BenchmarkError(f"{mismatched:,} responses came back out of order")
    first = min(report["first"] for report in reports)
    last = max(report["last"] for report in reports)
    return Round(total, last - first)


def _split(total: int, parts: int) -> int:
    """Each part's quota: at least one, so the round is never empty."""
    return max(1, total // parts)


def bench_rpc(sizes: Sizes) -> list[float]:
    server = launch(Echo, "server")
    runtime = Runtime("127.0.0.1", 0)
    try:
        runtime.start()
        clients = [Client() for _ in range(RPC_CLIENTS)]
        for client in clients:
            runtime.spawn(client)
        servers = [server.pid] * RPC_CLIENTS

        def run_round(count: int) -> Round:
            quota = _split(count, RPC_CLIENTS)
            return _run_clients(runtime, clients, servers, quota, RPC_IN_FLIGHT)

        return repeat("rpc", run_round, sizes.rpc, sizes.repeats, "rpcs/s")
    finally:
        runtime.stop()
        server.stop()


def _bench_local(scenario: str, count: int, repeats: int, pairs: int, window: int) -> list[float]:
    runtime = Runtime("127.0.0.1", 0).start()
    try:
        clients = [Client() for _ in range(pairs)]
        echoes = [Echo() for _ in range(pairs)]
        for process in clients + echoes:
            runtime.spawn(process)
        servers = [echo.pid for echo in echoes]

        def run_round(count: int) -> Round:
            quota = _split(count // 2, pairs)  # two messages per request
            result = _run_clients(runtime, clients, servers, quota, window)
            return Round(2 * result.count, result.seconds)

        return repeat(scenario, run_round, count, repeats, "msgs/s")
    finally:
        runtime.stop()


def bench_local(sizes: Sizes) -> list[float]:
    return _bench_local("local", sizes.local, sizes.repeats, LOCAL_PAIRS, LOCAL_IN_FLIGHT)


def bench_pingpong(sizes: Sizes) -> list[float]:
    """Strict ping-pong: one pair, one message in flight, so no batching of any kind."""
    return _bench_local("pingpong", sizes.local // 2, sizes.repeats, 1, 1)


# -- main ---------------------------------------------------------------------------------


SCENARIOS: dict[str, tuple[str, Callable[[Sizes], list[float]]]] = {
    "raw": ("raw_msgs_per_s", bench_raw),
    "remote": ("remote_msgs_per_s", bench_remote),
    "rpc": ("rpcs_per_s", bench_rpc),
    "local": ("local_msgs_per_s", bench_local),
    "pingpong": ("local_pingpong_msgs_per_s", bench_pingpong),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller rounds, 3 repeats (<30 s)")
    parser.add_argument(
        "--messages", type=int, metavar="N", help="messages per round in every scenario"
    )
    parser.add_argument("--repeats", type=int, metavar="R", help="timed rounds per scenario")
    parser.add_argument(
        "--only",
        metavar="NAMES",
        help=f"comma-separated scenarios to run, of: {', '.join(SCENARIOS)} (default: all)",
    )
    args = parser.parse_args(argv)
    if args.messages is not None and args.messages < 2:
        parser.error("--messages must be at least 2")
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    chosen = args.only.split(",") if args.only else list(SCENARIOS)
    unknown = [name for name in chosen if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    logsetup.configure("warning", stream=sys.stderr)
    sizes = Sizes.of(args.quick, args.messages, args.repeats)

    began = now()
    load_before = os.getloadavg()[0]
    medians: dict[str, float | None] = {key: None for key, _ in SCENARIOS.values()}
    runs: dict[str, list[float]] = {}
    errors: dict[str, str] = {}
    for scenario in chosen:
        key, bench = SCENARIOS[scenario]
        try:
            rates = bench(sizes)
        except Exception as error:
            traceback.print_exc(file=sys.stderr)
            errors[scenario] = f"{type(error).__name__}: {error}"
            continue
        runs[scenario] = [round(rate) for rate in rates]
        medians[key] = round(statistics.median(rates))

    raw, remote = medians["raw_msgs_per_s"], medians["remote_msgs_per_s"]
    remote_to_raw = round(remote / raw, 3) if raw and remote else None
    figures = {**medians, "remote_to_raw": remote_to_raw}
    goals_met = {
        key: figures[key] is not None and figures[key] >= goal for key, goal in GOALS.items()
    }
    summary = {
        "raw_msgs_per_s": raw,
        "remote_msgs_per_s": remote,
        "remote_to_raw": remote_to_raw,
        "rpcs_per_s": medians["rpcs_per_s"],
        "local_msgs_per_s": medians["local_msgs_per_s"],
        "local_pingpong_msgs_per_s": medians["local_pingpong_msgs_per_s"],
        "goals": GOALS,
        "goals_met": goals_met,
        "all_goals_met": all(goals_met.values()),
        "quick": args.quick,
        "messages": asdict(sizes),
        "runs": runs,
        "config": {
            "body_bytes": len(msgpack.packb(body(0))),
            "rpc_clients": RPC_CLIENTS,
            "rpc_in_flight": RPC_IN_FLIGHT,
            "local_pairs": LOCAL_PAIRS,
            "local_in_flight": LOCAL_IN_FLIGHT,
            "pingpong_pairs": 1,
            "pingpong_in_flight": 1,
        },
        "seconds": round(now() - began, 1),
        # The machine is shared: a high load average explains a low or scattered figure.
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_before": round(load_before, 2),
            "load_average_after": round(os.getloadavg()[0], 2),
        },
        "errors": errors,
    }
    print(json.dumps(summary), flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
