"""The protocol codec's cost per message: what a master pays to read and write each one.

Run from the repository root::

    .venv/bin/python benchmarks/codec.py [--repeats R] [--messages N]

For each message of a launch's life (an ACCEPT of 8 tasks, a status update, its
acknowledgement, a decline, a ResourceOffers of 10 offers, the RunTask an agent gets), built as
the cluster benchmark's frameworks and master build them, it times:

encode_us
    ``to_wire()`` then packing (as ``Plain``): what ``send_message`` costs per message.
decode_us
    Reading the frame bytes (``libprocess.wire.decode_frame`` of a one-message frame) then
    ``decode_message``: what a receiver pays before its handler runs.

Each figure is the median over ``--repeats`` of the mean over ``--messages`` calls, in
microseconds. Decoding meets the same ids and resources again and again, as a master does (the
codec's memos see them as a master's would). The last line is one JSON object:
``{"codec": {message: {"encode_us": ..., "decode_us": ...}}}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from corral.ids import AgentID, ExecutorID, FrameworkID, OfferID, TaskID
from corral.protocol import (
    CommandInfo,
    Filters,
    FrameworkInfo,
    Launch,
    Offer,
    Operation,
    OperationType,
    TaskInfo,
    TaskStatus,
    decode_message,
)
from corral.protocol.messages import (
    AcceptOffers,
    DeclineOffers,
    Message,
    ResourceOffers,
    RunTask,
    StatusUpdate,
    StatusUpdateAcknowledgement,
)
from corral.resources import Resources
from corral.task_states import TaskState
from libprocess.wire import Encoder, Plain, decode_frame, frame_header

PREFIX = "5f0e7c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6"
FRAMEWORK = FrameworkID(f"{PREFIX}-0001")
AGENT = AgentID(f"{PREFIX}-S17")


def messages() -> dict[str, Message]:
    task_resources = Resources.parse("cpus:0.1;mem:32")
    agent_resources = Resources.parse("cpus:24;mem:4096;disk:4096;ports:[31000-32000]")
    command = CommandInfo(value="sleep 1000")
    tasks = tuple(
        TaskInfo(
            name=f"f1-t{i}",
            task_id=TaskID(f"f1-t{i}"),
            agent_id=AGENT,
            resources=task_resources,
            command=command,
        )
        for i in range(8)
    )
    launch = Operation(type=OperationType.LAUNCH, launch=Launch(task_infos=tasks))
    status = TaskStatus(
        task_id=tasks[0].task_id,
        state=TaskState.TASK_RUNNING,
        agent_id=AGENT,
        executor_id=ExecutorID(str(tasks[0].task_id)),
        timestamp=time.time(),
        uuid=uuid.uuid4().bytes,
    )
    offers = tuple(
        Offer(
            id=OfferID(f"{PREFIX}-O{i}"),
            framework_id=FRAMEWORK,
            agent_id=AgentID(f"{PREFIX}-S{i}"),
            hostname="sim-host",
            resources=agent_resources,
        )
        for i in range(10)
    )
    return {
        "accept_8_tasks": AcceptOffers(
            framework_id=FRAMEWORK,
            offer_ids=(OfferID(f"{PREFIX}-O5"),),
            operations=(launch,),
            filters=Filters(refuse_seconds=1.0),
        ),
        "status_update": StatusUpdate(
            framework_id=FRAMEWORK, status=status, pid="slave(1)@127.0.0.1:5051"
        ),
        "acknowledgement": StatusUpdateAcknowledgement(
            agent_id=AGENT, framework_id=FRAMEWORK, task_id=status.task_id, uuid=status.uuid
        ),
        "decline": DeclineOffers(
            framework_id=FRAMEWORK,
            offer_ids=(OfferID(f"{PREFIX}-O6"),),
            filters=Filters(refuse_seconds=5.0),
        ),
        "offers_10": ResourceOffers(
            offers, tuple(f"slave(1)@127.0.0.1:{5051 + i}" for i in range(10))
        ),
        "run_task": RunTask(
            framework=FrameworkInfo(user="bench", name="bench-framework", id=FRAMEWORK),
            task=tasks[0],
            pid="scheduler-1@127.0.0.1:40000",
        ),
    }


def mean_us(call: Callable[[], Any], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        call()
    return (time.perf_counter() - started) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    encoder = Encoder(max_message_bytes=64 << 20)
    results: dict[str, dict[str, float]] = {}
    for name, message in messages().items():
        frame = frame_header(1) + encoder.encode(
            "master", "", message.NAME, Plain(message.to_wire())
        )
        decoded = decode_message(message.NAME, decode_frame(frame)[0][3])
        assert decoded == message, f"{name} does not survive a round trip"

        def encode(message: Message = message) -> bytes:
            return encoder.encode("master", "", message.NAME, Plain(message.to_wire()))

        def decode(frame: bytes = frame, name: str = message.NAME) -> Message:
            return decode_message(name, decode_frame(frame)[0][3])

        encode_us = [mean_us(encode, args.messages) for _ in range(args.repeats)]
        decode_us = [mean_us(decode, args.messages) for _ in range(args.repeats)]
        results[name] = {
            "encode_us": round(statistics.median(encode_us), 2),
            "decode_us": round(statistics.median(decode_us), 2),
        }
        print(f"{name:16} encode {results[name]['encode_us']:8.2f} µs   "
              f"decode {results[name]['decode_us']:8.2f} µs", flush=True)  # fmt: skip
    print(json.dumps({"codec": results}))


if __name__ == "__main__":
    main()
