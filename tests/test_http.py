"""The runtime's HTTP server: process routes at /<id>/<path>, errors, and metrics."""

from __future__ import annotations

import gc
import json
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from aiohttp import web

from libprocess import Process, Promise, Runtime, Stream, handler, route
from libprocess.http import request_body

WAIT = 5.0  # wall-clock safety net; never part of what is tested


@pytest.fixture
def http_runtime():
    with Runtime("127.0.0.1", 0, http_port=0) as running:
        yield running


def fetch(
    runtime: Runtime, path: str, data: bytes | None = None, method: str | None = None
) -> tuple[int, str, str]:
    """(status, body text, content type) of a request to the runtime's HTTP server."""
    request = urllib.request.Request(f"http://{runtime.http_address}{path}", data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return response.status, response.read().decode(), response.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode(), error.headers["Content-Type"]


class Ledger(Process):
    """Keeps two fields that every handler changes together: ``total == 2 * count``."""

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id)
        self.count = 0
        self.total = 0
        self.route_threads: list = []
        self.promised: Promise | None = None

    @handler("add")
    def add(self, sender, body) -> None:
        self.count += 1
        self.total += 2

    @route("/state", "the counts, read inside the process")
    def show_state(self, request: web.Request) -> web.Response:
        self.route_threads.append(threading.get_ident())
        return web.json_response({"count": self.count, "total": self.total})

    @route("/echo")
    def echo(self, request: web.Request) -> web.Response:
        return web.Response(body=request_body(request), content_type="application/octet-stream")

    @route("/later")
    def later(self, request: web.Request):
        self.promised = Promise()
        self.delay(2.0, self.promised.set, web.Response(text="worth the wait"))
        return self.promised.future

    @route("/boom")
    def boom(self, request: web.Request) -> web.Response:
        raise ZeroDivisionError("the route divided by zero")

    @route("/refuse")
    def refuse(self, request: web.Request) -> web.Response:
        raise web.HTTPBadRequest(text="missing field 'framework_id'")

    @route("/not-a-response")
    def not_a_response(self, request: web.Request):
        return {"count": self.count}


def test_the_server_listens_on_the_loopback_at_the_port_it_got(http_runtime):
    host, port = http_runtime.http_address.rsplit(":", 1)
    assert host == "127.0.0.1"
    assert int(port) > 0


def test_a_route_is_served_inside_its_process_at_id_and_path(http_runtime):
    ledger = Ledger()
    pid = http_runtime.spawn(ledger)
    assert pid.id == "ledger(1)"  # parentheses in the path are fine
    for _ in range(50):
        http_runtime.send(pid, "add")
    status, body, content_type = fetch(http_runtime, f"/{pid.id}/state")
    # The messages were queued before the request came in, so the route sees all of them.
    assert (status, json.loads(body)) == (200, {"count": 50, "total": 100})
    assert content_type.startswith("application/json")
    loop_thread = http_runtime.dispatch(pid, threading.get_ident).result(WAIT)
    assert ledger.route_threads == [loop_thread]


def test_routes_read_state_consistently_while_messages_stream_in(http_runtime):
    pid = http_runtime.spawn(Ledger())
    stop = threading.Event()

    def pump() -> None:
        while not stop.wait(0.001):
            for _ in range(100):
                http_runtime.send(pid, "add")

    pumper = threading.Thread(target=pump)
    pumper.start()
    try:
        seen = [0]
        for _ in range(1000):  # until the state moved a few times under our reads
            status, body, _ = fetch(http_runtime, f"/{pid.id}/state")
            assert status == 200
            state = json.loads(body)
            assert state["total"] == 2 * state["count"]
            assert state["count"] >= seen[-1]  # a later request never sees an older state
            if state["count"] > seen[-1]:
                seen.append(state["count"])
            if len(seen) > 5:
                break
        assert len(seen) > 5
    finally:
        stop.set()
        pumper.join(WAIT)


class Backlog(Ledger):
    """A ledger whose every "more" queues another while ``refill``: its mailbox holds the
    same number of messages until ``refill`` is turned off."""

    refill = True

    @handler("more")
    def more(self, sender, body) -> None:
        self.add(sender, body)
        if self.refill:
            self.send(self.pid, "more")

    def show_and_stop(self, request: web.Request) -> web.Response:
        self.refill = False
        return self.show_state(request)


def test_a_route_served_ahead_answers_before_the_queued_messages(http_runtime):
    backlog = 20_000
    for ahead in (False, True):
        ledger = Backlog()
        ledger.refill = ahead  # without it, a fixed backlog: the answer waits for all of it
        http_runtime.spawn(ledger)
        ledger.route("/count", ledger.show_and_stop, "the counts", ahead=ahead)
        assert ledger.ahead_routes == ({"/count"} if ahead else set())
        http_runtime.dispatch(ledger, lambda ledger=ledger: [
            ledger.send(ledger.pid, "more") for _ in range(backlog)]).result(WAIT)  # fmt: skip
        status, body, _ = fetch(http_runtime, f"/{ledger.pid.id}/count")
        state = json.loads(body)
        assert status == 200 and state["total"] == 2 * state["count"]  # between two messages
        drained = http_runtime.dispatch(ledger, lambda ledger=ledger: ledger.count).result(WAIT)
        if ahead:  # answered with the whole backlog still queued behind it
            assert drained == state["count"] + backlog
        else:  # answered after all of it
            assert state["count"] == drained == backlog


def test_the_request_body_is_handed_to_the_route(http_runtime):
    pid = http_runtime.spawn(Ledger())
    payload = json.dumps({"type": "SUBSCRIBE"}).encode()
    assert fetch(http_runtime, f"/{pid.id}/echo", payload)[:2] == (200, payload.decode())
    assert fetch(http_runtime, f"/{pid.id}/echo")[:2] == (200, "")


def test_a_route_returning_a_future_of_a_response_is_answered_when_it_completes(
    http_runtime, paused_clock
):
    ledger = Ledger()
    pid = http_runtime.spawn(ledger)
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(fetch, http_runtime, f"/{pid.id}/later")
        # Wait (wall clock, safety net only) until the route has run and armed its timer.
        for _ in range(500):
            if http_runtime.dispatch(pid, lambda: ledger.promised is not None).result(WAIT):
                break
            threading.Event().wait(0.01)
        http_runtime.settle()
        paused_clock.advance(1.9)
        http_runtime.settle()
        assert not answer.done()
        assert ledger.promised.future.is_pending()
        paused_clock.advance(0.2)
        status, body, _ = answer.result(WAIT)
    assert (status, body) == (200, "worth the wait")


def test_an_unknown_process_is_a_404_that_names_what_is_served(http_runtime):
    pid = http_runtime.spawn(Ledger("books"))
    status, body, _ = fetch(http_runtime, "/bokos/state")
    assert status == 404
    assert "no process 'bokos' runs here" in body
    assert f"/{pid.id}/state" in body
    assert "/metrics/snapshot" in body


def test_an_unknown_route_is_a_404_that_lists_the_known_routes(http_runtime):
    pid = http_runtime.spawn(Ledger())
    status, body, _ = fetch(http_runtime, f"/{pid.id}/stat")
    assert status == 404
    assert f"process {pid.id!r} has no route '/stat'" in body
    for known in ("/state", "/echo", "/later", "/boom"):
        assert known in body


def test_a_raising_route_is_a_500_with_a_message_and_the_runtime_keeps_serving(http_runtime):
    ledger = Ledger()
    pid = http_runtime.spawn(ledger)
    status, body, _ = fetch(http_runtime, f"/{pid.id}/boom")
    assert status == 500
    assert "route '/boom'" in body
    assert "ZeroDivisionError: the route divided by zero" in body
    http_runtime.send(pid, "add")
    status, body, _ = fetch(http_runtime, f"/{pid.id}/state")
    assert (status, json.loads(body)) == (200, {"count": 1, "total": 2})
    assert ledger.state == "running"


def test_a_route_may_answer_with_an_http_error_of_its_own(http_runtime):
    pid = http_runtime.spawn(Ledger())
    status, body, _ = fetch(http_runtime, f"/{pid.id}/refuse")
    assert (status, body) == (400, "missing field 'framework_id'")


def test_a_route_returning_something_else_than_a_response_is_a_500(http_runtime):
    pid = http_runtime.spawn(Ledger())
    status, body, _ = fetch(http_runtime, f"/{pid.id}/not-a-response")
    assert status == 500
    assert "returned a dict, not an HTTP response" in body


def test_a_route_installed_at_runtime_is_served(http_runtime):
    class Late(Process):
        def initialize(self) -> None:
            self.route("/hello", lambda request: web.Response(text=f"hello {request.method}"))

    pid = http_runtime.spawn(Late())
    http_runtime.settle()
    assert fetch(http_runtime, f"/{pid.id}/hello", b"x", method="PUT")[:2] == (200, "hello PUT")


def test_metrics_snapshot_is_flat_json_with_runtime_counters_and_user_timers(http_runtime):
    latency = http_runtime.metrics.timer("test/latency")
    for ms in range(1, 101):
        latency.record(ms / 1000)
    http_runtime.send(f"nobody@{http_runtime.address}", "hello")
    http_runtime.settle()
    status, body, content_type = fetch(http_runtime, "/metrics/snapshot")
    assert status == 200
    assert content_type.startswith("application/json")
    snapshot = json.loads(body)
    assert all(isinstance(value, int | float) for value in snapshot.values())  # flat
    assert snapshot["libprocess/messages_unknown_process"] == 1
    assert snapshot["libprocess/handler_errors"] == 0
    assert snapshot["libprocess/processes"] == 0
    for key in ("count", "min", "max", "p50", "p90", "p95", "p99", "p999", "p9999"):
        assert f"test/latency_ms/{key}" in snapshot
    assert snapshot["test/latency_ms/count"] == 100
    assert snapshot["test/latency_ms/p50"] == pytest.approx(50.5)
    assert snapshot["test/latency_ms/max"] == pytest.approx(100.0)


def test_metrics_snapshot_counts_the_garbage_collectors_collections_and_time(http_runtime):
    before = json.loads(fetch(http_runtime, "/metrics/snapshot")[1])
    gc.collect()  # a full collection: generation 2
    after = json.loads(fetch(http_runtime, "/metrics/snapshot")[1])
    assert after["libprocess/gc_collections_2"] >= before["libprocess/gc_collections_2"] + 1
    assert after["libprocess/gc_seconds_2"] > before["libprocess/gc_seconds_2"]
    assert after["libprocess/gc_seconds"] == pytest.approx(
        sum(after[f"libprocess/gc_seconds_{generation}"] for generation in (0, 1, 2))
    )


def test_the_http_server_stops_with_the_runtime():
    runtime = Runtime("127.0.0.1", 0, http_port=0).start()
    address = runtime.http_address
    assert fetch(runtime, "/metrics/snapshot")[0] == 200
    runtime.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://{address}/metrics/snapshot", timeout=WAIT)


class Broadcaster(Process):
    """Streams: each ``say`` message goes to every open stream; ``/close`` ends them."""

    def __init__(self) -> None:
        super().__init__("broadcaster")
        self.streams: list[Stream] = []
        self.closed: list[int] = []

    @route("/subscribe")
    def subscribe(self, request: web.Request) -> Stream:
        number = len(self.streams)
        stream = Stream(headers={"Stream-Number": str(number)}, content_type="text/plain",
                        on_close=lambda: self.closed.append(number))  # fmt: skip
        stream.write(b"hello\n")
        self.streams.append(stream)
        return stream

    @handler("say")
    def say(self, sender, body) -> None:
        for stream in self.streams:
            stream.write(body.encode())

    @handler("close")
    def close_all(self, sender, body) -> None:
        for stream in self.streams:
            stream.close()


def test_a_stream_sends_what_the_process_writes_until_it_closes(http_runtime):
    process = Broadcaster()
    http_runtime.spawn(process)
    url = f"http://{http_runtime.http_address}/broadcaster/subscribe"
    with urllib.request.urlopen(url, timeout=WAIT) as response:
        assert response.status == 200
        assert response.headers["Transfer-Encoding"] == "chunked"
        assert response.headers["Stream-Number"] == "0"
        assert response.readline() == b"hello\n"
        http_runtime.send(process.pid, "say", "one\n")
        assert response.readline() == b"one\n"
        http_runtime.send(process.pid, "say", "two\n")
        http_runtime.send(process.pid, "close")
        assert response.read() == b"two\n"  # then the end of the response
    http_runtime.settle()
    assert process.closed == [0]
    assert process.streams[0].closed and not process.streams[0].write(b"late")


def test_a_stream_whose_client_left_is_closed_and_told_to_its_process(http_runtime):
    process = Broadcaster()
    http_runtime.spawn(process)
    url = f"http://{http_runtime.http_address}/broadcaster/subscribe"
    with urllib.request.urlopen(url, timeout=WAIT) as response:
        assert response.readline() == b"hello\n"
    deadline = time.monotonic() + WAIT
    while not process.closed and time.monotonic() < deadline:
        http_runtime.send(process.pid, "say", "anyone?\n" * 1000)  # writes find the socket gone
        time.sleep(0.01)
    assert process.closed == [0]


def test_an_alias_serves_a_process_route_at_another_path(http_runtime):
    ledger = Ledger("ledger")
    http_runtime.spawn(ledger)
    http_runtime.dispatch(ledger, ledger.alias, "/api/v1/ledger", "/state").result(WAIT)
    status, body, _ = fetch(http_runtime, "/api/v1/ledger")
    assert status == 200 and json.loads(body) == {"count": 0, "total": 0}
    assert fetch(http_runtime, "/api/v1/other")[0] == 404


def test_stopping_the_runtime_ends_open_streams_at_once():
    runtime = Runtime("127.0.0.1", 0, http_port=0).start()
    process = Broadcaster()
    runtime.spawn(process)
    url = f"http://{runtime.http_address}/broadcaster/subscribe"
    with urllib.request.urlopen(url, timeout=WAIT) as response:
        assert response.readline() == b"hello\n"
        started = time.monotonic()
        runtime.stop()
        assert time.monotonic() - started < 2.0
        assert response.read() == b""  # the response ended cleanly


def test_a_trailing_slash_is_ignored(http_runtime):
    ledger = Ledger("ledger")
    http_runtime.spawn(ledger)
    http_runtime.dispatch(ledger, ledger.alias, "/api/v1/ledger", "/state").result(WAIT)
    for path in ("/ledger/state/", "/api/v1/ledger/"):
        status, body, _ = fetch(http_runtime, path)
        assert status == 200 and json.loads(body) == {"count": 0, "total": 0}, path
