"""The follower against a stand-in master over real HTTP in this process: it resynchronizes
from each new SUBSCRIBED after the stream is cut, and treats a stream that is not the v1
operator API's as lost rather than failing."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from corral.v1 import recordio
from nameserver.cluster_state import ClusterState
from nameserver.follower import Follower
from nameserver.metrics import Counters
from nameserver.records import RecordType
from tests import nameserver_events as ev

AGENT = "c0ffee-S0"
WAIT = 10.0


class StandInMaster:
    """Answers GET_MASTER, and each SUBSCRIBE with the next of ``streams`` (a list of
    record lists), closing the stream after it; the last one stays open."""

    def __init__(self, streams: list[list[bytes]]) -> None:
        self.streams = streams
        self.subscribes = 0
        self.done = asyncio.Event()  # the test is over: end the open stream

    async def call(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if body["type"] == "GET_MASTER":
            info = {"id": "m", "address": {"ip": "10.0.0.1", "port": 1}}
            return web.json_response({"type": "GET_MASTER", "get_master": {"master_info": info}})
        records = self.streams[min(self.subscribes, len(self.streams) - 1)]
        last = self.subscribes >= len(self.streams) - 1
        self.subscribes += 1
        stream = web.StreamResponse(headers={"Content-Type": "application/recordio"})
        await stream.prepare(request)
        for record in records:
            await stream.write(record)
        if last:
            await asyncio.wait_for(self.done.wait(), WAIT)
        return stream


def encoded(event: dict) -> bytes:
    return recordio.encode(json.dumps(event).encode())


def state_with(task_name: str) -> dict:
    return ev.subscribed(
        agents=[ev.agent(AGENT, "10.0.0.2")],
        frameworks=[ev.framework("marathon")],
        tasks=[ev.task(f"t-{task_name}", task_name, AGENT)],
    )


async def follow(master: StandInMaster, until) -> tuple[ClusterState, Counters]:
    app = web.Application()
    app.router.add_post("/api/v1", master.call)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state, counters = ClusterState("corral"), Counters()
    follower = Follower(f"127.0.0.1:{port}", state, counters, reconnect_max=0.2)
    follower.start()
    try:
        deadline = asyncio.get_running_loop().time() + WAIT
        while not until(state, counters):
            assert asyncio.get_running_loop().time() < deadline, (counters, state.tasks)
            await asyncio.sleep(0.01)
    finally:
        await follower.stop()
        master.done.set()
        await runner.cleanup()
    return state, counters


def test_a_cut_stream_is_followed_again_and_the_new_snapshot_replaces_the_old():
    first = [encoded(state_with("web"))]
    second = [
        encoded(state_with("api")),
        encoded(ev.task_added(ev.task("t-db", "db", AGENT))),
    ]
    master = StandInMaster([first, second])
    state, counters = asyncio.run(
        follow(master, lambda state, c: c.subscriptions >= 2 and len(state.tasks) == 2)
    )
    table = state.table
    assert table.lookup("web.marathon.corral.", RecordType.A) == []  # gone with the old stream
    assert table.lookup("api.marathon.corral.", RecordType.A) == ["10.0.0.2"]
    assert table.lookup("db.marathon.corral.", RecordType.A) == ["10.0.0.2"]
    assert table.lookup("leader.corral.", RecordType.A) == ["10.0.0.1"]
    assert counters.stream_losses == 1


def test_garbage_on_the_stream_is_a_lost_stream_and_bad_events_are_counted():
    bad_event = encoded({"type": "TASK_ADDED", "task_added": {}})
    with_a_bad_event = [
        encoded(state_with("web")),
        bad_event,
        encoded(ev.task_added(ev.task("t-db", "db", AGENT))),
    ]
    garbage = [b"not recordio at all\n"]
    master = StandInMaster([with_a_bad_event, garbage, [encoded(state_with("api"))]])
    state, counters = asyncio.run(
        follow(
            master,
            lambda state, c: c.subscriptions >= 2 and ("c0ffee-0000", "t-api") in state.tasks,
        )
    )
    assert counters.event_errors == 1  # skipped; the event after it was applied
    assert counters.stream_losses == 1  # the garbage stream never got to SUBSCRIBED
    assert master.subscribes == 3
    assert state.table.lookup("api.marathon.corral.", RecordType.A) == ["10.0.0.2"]
