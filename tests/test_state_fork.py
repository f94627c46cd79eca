"""State built in a forked child (master/state_fork.py, master/state_snapshot.py): the bytes
come back, errors come back as words, the parent is not held up, and the master's endpoints
answer the same JSON as a build on its actor."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import psutil
import pytest

from libprocess.future import Future
from master.state_fork import StateBuildFailed, fork_build
from master.state_snapshot import StateSnapshot
from tests.test_operator_api import (
    OPTIONS,
    address,
    make_cluster,
    register_agent,
    request,
    web_runtime,  # noqa: F401 (a fixture)
)


@pytest.fixture
def loop():
    running = asyncio.new_event_loop()
    yield running
    running.close()


def wait(loop: asyncio.AbstractEventLoop, future: Future[Any], seconds: float = 30.0) -> Any:
    """Run ``loop`` until ``future`` completes (a real child: wall-clock time)."""

    async def done() -> Any:
        return await asyncio.wait_for(_awaited(future), seconds)

    return loop.run_until_complete(done())


async def _awaited(future: Future[Any]) -> Any:
    return await future


def _forked() -> list[psutil.Process]:
    return psutil.Process().children()


def test_the_child_builds_and_the_parent_reads_its_bytes_and_reaps_it(loop):
    before = {child.pid for child in _forked()}
    body = b"x" * (3 * (1 << 20) + 17)  # more than one read and more than a pipe's buffer
    assert wait(loop, fork_build(lambda: body, loop)) == body
    assert {child.pid for child in _forked()} == before  # reaped: no zombie left


def test_the_child_sees_memory_as_it_was_at_the_fork(loop):
    records = {"tasks": 1}

    def work() -> bytes:
        time.sleep(0.2)  # the parent changes its copy meanwhile
        return json.dumps(records).encode()

    future = fork_build(work, loop)
    records["tasks"] = 2
    assert json.loads(wait(loop, future)) == {"tasks": 1}


def test_a_build_that_fails_says_why(loop):
    def work() -> bytes:
        raise KeyError("agent-7 vanished")

    with pytest.raises(StateBuildFailed, match="KeyError: 'agent-7 vanished'"):
        wait(loop, fork_build(work, loop))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def forked_snapshot(loop, build: Callable[[], dict], clock: Clock) -> StateSnapshot:
    return StateSnapshot(build, clock, 0.0, fork_when=lambda: True, loop=lambda: loop)


def test_reads_during_a_build_share_it_and_a_stale_body_answers_while_it_is_rebuilt(loop):
    clock = Clock()
    version = {"n": 1}

    def build() -> dict:  # in the child
        time.sleep(0.3)
        return {"version": version["n"]}

    snapshot = forked_snapshot(loop, build, clock)
    first = snapshot.view("state")
    assert isinstance(first, Future) and snapshot.view("state") is first  # one child for both
    ticks = []
    loop.call_soon(lambda: [loop.call_later(0.01 * i, ticks.append, i) for i in range(10)])
    assert json.loads(wait(loop, first)) == {"version": 1}
    assert len(ticks) >= 5  # the parent's loop ran while the child built
    assert snapshot.builds == 1
    assert snapshot.view("state") == b'{"version":1}'  # fresh: no child

    version["n"] = 2
    time.sleep(snapshot.last_build_seconds * 5)  # stale now (FORK_SHARE 0.25)
    assert snapshot.view("state") == b'{"version":1}'  # answered at once, stale,
    assert snapshot.builds == 1
    deadline = time.monotonic() + 30
    while snapshot.view("state") != b'{"version":2}':  # rebuilt meanwhile, by one child
        assert time.monotonic() < deadline, "the stale state was never rebuilt"
        loop.run_until_complete(asyncio.sleep(0.05))
    assert snapshot.builds == 2

    version["n"] = 3
    snapshot.invalidate()  # an operator's change: the next read must see it
    again = snapshot.view("state")
    assert isinstance(again, Future)
    assert json.loads(wait(loop, again)) == {"version": 3}


def test_one_child_at_a_time_and_each_view_from_its_own(loop):
    clock = Clock()
    snapshot = forked_snapshot(loop, lambda: {"tasks": [1, 2, 3]}, clock)
    whole = snapshot.view("state")
    count = snapshot.view("count", lambda state: {"count": len(state["tasks"])})
    assert isinstance(whole, Future) and isinstance(count, Future)
    assert wait(loop, count) == b'{"count":3}'  # it waited for the first child, then ran
    assert whole.is_ready() and whole.value == b'{"tasks":[1,2,3]}'
    assert snapshot.builds == 2


def test_a_forked_master_state_is_the_one_its_actor_builds(web_runtime, paused_clock, tmp_path):  # noqa: F811
    options = replace(OPTIONS, state_cache_seconds=0.0, state_fork_threshold=0)
    cluster = make_cluster(web_runtime, paused_clock, tmp_path, options)
    register_agent(cluster)
    status, headers, body = request(address(cluster), "/master/state")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    master = cluster.master
    here = cluster.runtime.dispatch(master, master.views.build_state).result(5)
    assert json.loads(body) == json.loads(json.dumps(here))
    assert [slave["id"] for slave in json.loads(body)["slaves"]] == [cluster.agent_id]
    status, _, wrapped = request(address(cluster), "/master/slaves?jsonp=cb")
    assert status == 200 and wrapped.startswith(b"cb(") and wrapped.endswith(b");")
    status, _, refused = request(address(cluster), "/master/state?jsonp=1bad")
    assert status == 400 and b"not a JavaScript function name" in refused
