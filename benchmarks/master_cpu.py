"""The master's own work per launch, measured without sockets, simulators or a second core.

Run from the repository root::

    .venv/bin/python benchmarks/master_cpu.py [--agents N] [--frameworks F] [--rounds R]
        [--tasks-per-round T] [--profile N] [--log-level L]

``benchmarks/cluster.py`` measures the whole cluster, where the master shares two cores with
the simulated agents and frameworks and its figures move with theirs. This one drives the
master's cores (``MasterCore``) and its allocator (``HierarchicalAllocator``) in one process,
through the same calls the master's actor makes, and times only the master's side of each
message: decoding what it receives (from msgpack frame bytes, as the transport gets them),
the cores' decisions, the allocator's cycles and events, and encoding what it sends.
Frameworks and agents are played by plain code, untimed. Times are read on the thread's CPU
clock, so other work on the machine does not inflate them.

Each round is one allocation cycle: every offer made goes to its framework; each framework
launches ``--tasks-per-round`` / F tasks of ``cpus:0.1;mem:32`` on its first offers, one
``AcceptOffers`` per offer (as the cluster benchmark's frameworks do: as many tasks as the
offer holds, up to the budget), and declines the rest with a 5 s filter in one
``DeclineOffers`` (as the driver sends the declines of one callback). Each launched task's
agent answers TASK_STARTING then TASK_RUNNING, each acknowledged by its framework, one in
flight at a time (the agent's status update stream). The round's clock advances by one
allocation interval (1 s), so filters expire as they would.

Figures: ``master_us_per_launch`` (the master's time over the rounds / tasks RUNNING),
``us_per_offer`` (time / offers made), and the split of the master's time by kind of work
(``split_percent``: decode, offers, accept, updates, acknowledgements, allocator, encode;
the garbage collector's pauses fall in whichever kind allocated) and ``gc_s``, the seconds
of those pauses (the collector runs with the master's thresholds; ``--no-gc`` turns it off).
The last line is one JSON object with these keys.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import pstats
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from corral.ids import ExecutorID, IdGenerator, TaskID  # noqa: E402
from corral.protocol import (  # noqa: E402
    AgentInfo,
    CommandInfo,
    Filters,
    FrameworkInfo,
    MasterInfo,
    Operation,
    TaskInfo,
    TaskStatus,
    decode_message,
)
from corral.protocol.messages import (  # noqa: E402
    AcceptOffers,
    DeclineOffers,
    Message,
    RegisterAgent,
    ResourceOffers,
    RunTask,
    StatusUpdate,
    StatusUpdateAcknowledgement,
)
from corral.resources import Resources  # noqa: E402
from corral.task_states import Source, TaskState  # noqa: E402
from libprocess.garbage import GC_STATS  # noqa: E402
from libprocess.log import configure  # noqa: E402
from libprocess.wire import Encoder, Plain, decode_frame, frame_header  # noqa: E402
from master import outbox  # noqa: E402
from master.allocator.hierarchical import HierarchicalAllocator  # noqa: E402
from master.allocator.options import AllocatorOptions  # noqa: E402
from master.core import MasterCore  # noqa: E402
from master.options import MasterOptions  # noqa: E402
from master.registry import Registry  # noqa: E402

AGENT_RESOURCES = "cpus:24;mem:4096;disk:4096;ports:[31000-32000]"
TASK_RESOURCES = "cpus:0.1;mem:32"
BUSY_SECONDS = 5.0  # the decline filter of a framework that wants no more now
INTERVAL = 1.0  # simulated seconds per round
# The thread's CPU clock: what the master's work costs, however busy the machine's cores are.
clock = time.thread_time
KINDS = ("decode", "offers", "accept", "updates", "acknowledgements", "allocator", "encode")


class Bench:
    """A master's cores and allocator, the simulated peers, and a stopwatch per kind of work."""

    def __init__(self, agents: int, frameworks: int, work_dir: str) -> None:
        self.now = 0.0
        self.spent: dict[str, float] = defaultdict(float)
        self.encoder = Encoder(max_message_bytes=64 << 20)
        self.core = MasterCore(
            MasterOptions(hostname="bench"), Registry(work_dir), IdGenerator("bench"), time.time
        )
        self.allocator = HierarchicalAllocator(AllocatorOptions(), 0)
        self.core.frameworks.master_info = MasterInfo(
            id="bench", port=5050, pid="master@127.0.0.1:5050", hostname="bench"
        )
        self.core.start(self.now)
        self.inbox: dict[str, list[Message]] = defaultdict(list)  # pid -> messages sent to it
        self.offers_made = 0
        self.running = 0
        total = Resources.parse(AGENT_RESOURCES)
        for index in range(agents):
            pid = f"agent-{index}@127.0.0.2:{10000 + index}"
            self.receive(pid, RegisterAgent(AgentInfo(f"sim-{index}", resources=total), "bench"))
        self.framework_pids = []
        for index in range(frameworks):
            framework_id = self.core.ids.framework_id()
            pid = f"scheduler-{index}@127.0.0.3:{20000 + index}"
            info = FrameworkInfo(user="bench", name=f"bench-{index}", id=framework_id)
            self.core.frameworks.add(info, pid)
            self.framework_pids.append(pid)
        self.drain()
        self.inbox.clear()
        self.spent.clear()

    # -- the master's side, timed ---------------------------------------------------------

    def receive(self, sender: str, message: Message, kind: str = "decode") -> None:
        """``message`` as it arrives: frame bytes (encoded untimed, the sender's work),
        decoded and handed to the core as the actor's handler would."""
        frame = frame_header(1) + self.encoder.encode(
            "master", sender, message.NAME, message.to_wire()
        )
        started = clock()
        body = decode_frame(frame)[0][3]
        decoded = decode_message(message.NAME, body)
        middle = clock()
        self.spent["decode"] += middle - started
        self.handle(sender, decoded)
        self.spent[kind] += clock() - middle
        self.drain()

    def handle(self, sender: str, message: Message) -> None:
        core = self.core
        if isinstance(message, RegisterAgent):
            core.agents.register(sender, message)
        elif isinstance(message, AcceptOffers):
            framework = core.frameworks.caller(sender, message.framework_id, "accept")
            core.offers.accept(framework, message, self.now)
        elif isinstance(message, DeclineOffers):
            framework = core.frameworks.caller(sender, message.framework_id, "decline")
            core.offers.decline(framework, message)
        elif isinstance(message, StatusUpdate):
            core.tasks.update(core.state.agent_by_pid(sender), sender, message)
        elif isinstance(message, StatusUpdateAcknowledgement):
            framework = core.frameworks.caller(sender, message.framework_id, "acknowledgement")
            core.tasks.to_agent(framework, message, message.agent_id, "acknowledgement")
        else:
            raise AssertionError(f"the bench does not send {message!r}")

    def drain(self) -> None:
        """Carry out the outbox as MasterProcess.apply does: sends are encoded (timed), events
        go to the allocator (timed), later work runs; links and timers are not kept."""
        while True:
            actions = self.core.out.take()
            if not actions:
                return
            for action in actions:
                kind = action[0]
                started = clock()
                if kind == outbox.SEND:
                    pid, message = action[1], action[2]
                    self.encoder.encode("x", "master", message.NAME, Plain(message.to_wire()))
                    self.spent["encode"] += clock() - started
                    self.inbox[pid].append(message)
                elif kind == outbox.ALLOCATE:
                    action[1].apply(self.allocator, self.now)
                    self.spent["allocator"] += clock() - started
                elif kind == outbox.LATER:
                    action[1](self.now)

    def cycle(self) -> None:
        started = clock()
        allocations = self.allocator.allocate(self.now)
        middle = clock()
        self.core.offers.allocated(allocations)
        self.spent["allocator"] += middle - started
        self.spent["offers"] += clock() - middle
        self.offers_made += len(allocations)
        self.drain()

    # -- the peers, untimed ---------------------------------------------------------------

    def frameworks_answer(self, budget: int) -> None:
        task = Resources.parse(TASK_RESOURCES)
        command = CommandInfo(value="sleep 1000")
        per_framework = max(1, budget // len(self.framework_pids))
        for pid in self.framework_pids:
            left = per_framework
            for message in self.take(pid, ResourceOffers):
                declined = []
                for offer in message.offers:
                    fits = min(
                        offer.resources.scalar_millis("cpus") // task.scalar_millis("cpus"),
                        offer.resources.scalar_millis("mem") // task.scalar_millis("mem"),
                        left,
                    )
                    if fits <= 0:
                        declined.append(offer.id)
                        continue
                    left -= fits
                    tasks = [
                        TaskInfo(
                            name=(name := f"t{uuid.uuid4().hex[:12]}"),
                            task_id=TaskID(name),
                            agent_id=offer.agent_id,
                            resources=task,
                            command=command,
                        )
                        for _ in range(fits)
                    ]
                    accept = AcceptOffers(
                        offer.framework_id,
                        (offer.id,),
                        (Operation.of_launch(*tasks),),
                        Filters(refuse_seconds=1.0),
                    )
                    self.receive(pid, accept, "accept")
                if declined:  # one DECLINE for the callback's declines, as the driver sends
                    decline = DeclineOffers(
                        message.offers[0].framework_id,
                        tuple(declined),
                        Filters(refuse_seconds=BUSY_SECONDS),
                    )
                    self.receive(pid, decline, "offers")

    def agents_answer(self) -> None:
        """Every RunTask gets TASK_STARTING; every acknowledged STARTING, TASK_RUNNING."""
        for pid in [pid for pid in self.inbox if pid.startswith("agent-")]:
            for message in self.take(pid, RunTask):
                self.update(pid, message.framework.id, message.task, TaskState.TASK_STARTING)
            for ack in self.take(pid, StatusUpdateAcknowledgement):
                if ack.uuid in self.starting:
                    task = self.starting.pop(ack.uuid)
                    self.update(pid, ack.framework_id, task, TaskState.TASK_RUNNING)

    starting: dict[bytes, TaskInfo] = {}

    def update(self, pid: str, framework_id: Any, task: TaskInfo, state: TaskState) -> None:
        status = TaskStatus(
            task_id=task.task_id,
            state=state,
            source=Source.SOURCE_EXECUTOR,
            agent_id=task.agent_id,
            executor_id=ExecutorID(str(task.task_id)),
            timestamp=time.time(),
            uuid=uuid.uuid4().bytes,
        )
        if state is TaskState.TASK_STARTING:
            self.starting[status.uuid] = task
        self.receive(pid, StatusUpdate(framework_id, status, pid), "updates")

    def frameworks_acknowledge(self) -> None:
        for pid in self.framework_pids:
            for update in self.take(pid, StatusUpdate):
                status = update.status
                if status.state is TaskState.TASK_RUNNING:
                    self.running += 1
                if status.uuid is not None:
                    ack = StatusUpdateAcknowledgement(
                        status.agent_id, update.framework_id, status.task_id, status.uuid
                    )
                    self.receive(pid, ack, "acknowledgements")

    def take(self, pid: str, kind: type) -> list[Any]:
        messages = self.inbox.get(pid, [])
        taken = [message for message in messages if isinstance(message, kind)]
        self.inbox[pid] = [message for message in messages if not isinstance(message, kind)]
        return taken

    def round(self, budget: int) -> None:
        self.cycle()
        self.frameworks_answer(budget)
        for _ in range(2):  # STARTING, then RUNNING
            self.agents_answer()
            self.frameworks_acknowledge()
        self.agents_answer()  # the RUNNING acknowledgements reach their agents
        self.now += INTERVAL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=20_000)
    parser.add_argument("--frameworks", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--tasks-per-round", type=int, default=2_000)
    parser.add_argument("--profile", type=int, default=0, help="print the top N functions")
    parser.add_argument(
        "--log-level", default="error", choices=("debug", "info", "warning", "error")
    )
    parser.add_argument(
        "--no-gc",
        action="store_true",
        help="turn Python's garbage collector off (to compare code without its pauses)",
    )
    args = parser.parse_args()
    configure(args.log_level)
    gc.set_threshold(*MasterOptions().gc_thresholds)  # as the master's process runs
    if args.no_gc:
        gc.disable()
    with tempfile.TemporaryDirectory(prefix="corral-bench-master-") as work_dir:
        print(f"registering {args.agents} agents and {args.frameworks} frameworks", flush=True)
        bench = Bench(args.agents, args.frameworks, work_dir)
        profiler = cProfile.Profile() if args.profile else None
        GC_STATS.install()
        gc_before = GC_STATS.total_seconds
        for number in range(args.rounds):
            if profiler is not None:
                profiler.enable()
            bench.round(args.tasks_per_round)
            if profiler is not None:
                profiler.disable()
            if (number + 1) % 5 == 0:
                print(f"  round {number + 1}/{args.rounds}: {bench.running} RUNNING", flush=True)
        gc_seconds = GC_STATS.total_seconds - gc_before
    spent = sum(bench.spent.values())
    result = {
        "agents": args.agents,
        "frameworks": args.frameworks,
        "rounds": args.rounds,
        "running": bench.running,
        "offers": bench.offers_made,
        "master_s": round(spent, 3),
        "master_us_per_launch": round(1e6 * spent / bench.running) if bench.running else None,
        "us_per_offer": round(1e6 * spent / bench.offers_made, 1) if bench.offers_made else None,
        "split_percent": {kind: round(100 * bench.spent[kind] / spent, 1) for kind in KINDS},
        "gc_s": round(gc_seconds, 3),
    }
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
