"""What ``/master/state`` costs the master at scale: its first build, and a poll after changes.

A real ``MasterProcess`` runs in this process's runtime; its records are filled through the
master's own cores (agents register, frameworks subscribe, offers are made and accepted, the
agents' TASK_RUNNING updates arrive), ``--agents`` agents and ``--tasks`` tasks over
``--frameworks`` frameworks, without sockets to agents: what the cores decide to send is
dropped. Everything runs inside the master's actor (a dispatch), as the HTTP route does.

Figures (the last stdout line, one JSON object):

- ``state_build_s``: the first ``/master/state`` (the body's bytes, as the route serves them);
- ``state_poll_s``: the next one after ``--changed`` (1%) of the tasks changed state (half of
  them finished, half got a new status) and the agents' offers came and went, medians over
  ``--repeats`` rounds;
- ``state_bytes``: the body's size; ``tasks_page_s``: ``/master/tasks`` (100, newest first)
  after the same changes; ``summary_s``: ``/master/state-summary`` likewise;
- ``master_rss_mb``: the process's resident set once filled (the master is most of it: the
  peers' runtime and the benchmark's own list of task names are small), after a collection;
  ``master_rss_mb_after_state``: the same after the first build and the first poll (the
  fragments ``/master/state`` keeps between polls); ``baseline_rss_mb``: before the fill;
- ``backlog_state_s``: ``GET /master/state`` over HTTP while ``--backlog`` status updates
  wait in the master's mailbox (as under a launch storm), and ``backlog_drain_s``: how long
  the backlog took, from the same moment.

``--quick``: 2,000 agents and 10,000 tasks (for CI: checks that it works). ``--tracemalloc N``:
where the memory goes, the top ``N`` allocation sites after the fill and after the first poll
(to stderr; it slows the fill several times, and the figures above then include its own cost).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
import urllib.request
from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import make_mocked_request

from corral.ids import AgentID, TaskID
from corral.protocol import AgentInfo, CommandInfo, FrameworkInfo, Operation, TaskInfo, TaskStatus
from corral.protocol.messages import AcceptOffers, RegisterAgent, ResourceOffers, StatusUpdate
from corral.resources import Resources
from corral.task_states import TaskState
from libprocess import Runtime
from libprocess.log import configure as configure_logging
from master import MasterOptions, MasterProcess
from master import outbox as outbox_actions
from master.allocator.offer import Allocation
from master.state_views import StateViews

AGENT = Resources.parse("cpus:64;mem:65536;disk:65536;ports:[31000-32000]")
TASK = Resources.parse("cpus:0.01;mem:1")


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Filler:
    """Fills a master's records through its cores; runs inside the master's actor."""

    def __init__(self, master: MasterProcess, peers: str) -> None:
        """``peers``: the address (host:port, on 127.0.0.1) of a runtime of ours that the
        agents' and schedulers' pids name: anything sent to them lands there, unheard."""
        self.master = master
        self.peers = peers
        self.core = master.core
        self.clock = 1.7e9
        self.updates = 0
        self.agent_ids: list[AgentID] = []  # as filled
        self.framework_records: list[Any] = []

    def drain(self) -> list:
        """The outbox's actions: LATER work is run (as the actor would), the rest dropped."""
        sent = []
        for action in self.core.out.take():
            if action[0] == outbox_actions.LATER:
                action[1](self.master.runtime.clock.now())
            elif action[0] == outbox_actions.SEND:
                sent.append(action[2])
        return sent

    def agents(self, count: int) -> list[AgentID]:
        for index in range(count):
            pid = f"agent-{index}@{self.peers}"
            info = AgentInfo(hostname=f"host-{index}", resources=AGENT)
            self.core.agents.register(pid, RegisterAgent(info, version="bench"))
            if index % 1000 == 999:
                self.drain()
        self.drain()
        return list(self.core.state.agents)

    def frameworks(self, count: int) -> list[Any]:
        records = []
        for index in range(count):
            framework_id = self.core.ids.framework_id()
            info = FrameworkInfo(user="bench", name=f"framework-{index}", id=framework_id)
            self.core.frameworks.add(info, f"scheduler-{index}@{self.peers}")
            self.drain()
            records.append(self.core.state.frameworks[framework_id])
        return records

    def offer(self, framework: Any, agent_id: AgentID) -> Any:
        agent = self.core.state.agents[agent_id]
        allocation = Allocation(
            framework.id, "*", agent_id, AGENT.allocated_to("*"), agent.generation
        )
        self.core.offers.allocated([allocation])
        (message,) = [m for m in self.drain() if isinstance(m, ResourceOffers)]
        return message.offers[0]

    def launch(self, framework: Any, agent_id: AgentID, names: list[str]) -> None:
        offer = self.offer(framework, agent_id)
        tasks = [TaskInfo(n, TaskID(n), agent_id, TASK, command=CommandInfo("true")) for n in names]
        accept = AcceptOffers(framework.id, (offer.id,), (Operation.of_launch(*tasks),))
        self.core.offers.accept(framework, accept, now=self.master.runtime.clock.now())
        self.drain()

    def update(self, framework_id: Any, task_id: str, state: TaskState) -> None:
        task = self.core.state.task(framework_id, TaskID(task_id))
        assert task is not None, task_id
        agent = self.core.state.agents[task.agent_id]
        self.updates += 1
        self.clock += 0.001
        status = TaskStatus(
            TaskID(task_id),
            state,
            agent_id=agent.id,
            timestamp=self.clock,
            uuid=self.updates.to_bytes(16, "big"),
        )
        self.core.tasks.update(agent, agent.pid, StatusUpdate(framework_id, status, agent.pid))
        self.drain()

    def offers_churn(self, frameworks: list[Any], agent_ids: list[AgentID], count: int) -> None:
        """Offers come and go on ``count`` agents: one made and rescinded (declined) each."""
        for index in range(count):
            framework = frameworks[index % len(frameworks)]
            offer = self.offer(framework, agent_ids[(index * 7919) % len(agent_ids)])
            self.core.state.remove_offer(offer.id)


def fill(master: MasterProcess, args: argparse.Namespace) -> tuple[Filler, list[tuple]]:
    filler = Filler(master, args.peers)
    started = time.perf_counter()
    agent_ids = filler.agents(args.agents)
    frameworks = filler.frameworks(args.frameworks)
    per_agent = max(1, args.tasks // len(agent_ids))
    tasks: list[tuple] = []
    for index, agent_id in enumerate(agent_ids):
        framework = frameworks[index % len(frameworks)]
        names = [f"task-{index}-{n}" for n in range(per_agent)]
        filler.launch(framework, agent_id, names)
        for name in names:
            filler.update(framework.id, name, TaskState.TASK_RUNNING)
            tasks.append((framework.id, name))
    progress(
        f"filled: {len(agent_ids)} agents, {len(tasks)} RUNNING tasks, {len(frameworks)} "
        f"frameworks in {time.perf_counter() - started:.1f} s"
    )
    filler.agent_ids, filler.framework_records = agent_ids, frameworks
    return filler, tasks


def rss_mb() -> float:
    """This process's resident set now (after a full collection), in MB."""
    gc.collect()
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def top_allocations(title: str, count: int, frames: int = 6) -> None:
    """The ``count`` biggest allocation sites alive now: by file, by line, and by traceback
    (its innermost ``frames``, innermost first)."""
    if not tracemalloc.is_tracing():
        return
    gc.collect()
    snapshot = tracemalloc.take_snapshot().filter_traces(
        (tracemalloc.Filter(False, tracemalloc.__file__),)
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def where(frame: tracemalloc.Frame) -> str:
        return f"{os.path.relpath(frame.filename, root)}:{frame.lineno}"

    by_file = snapshot.statistics("filename")
    total = sum(stat.size for stat in by_file)
    progress(f"-- {title}: {total / 2**20:.1f} MB traced")
    for group in ("filename", "lineno", "traceback"):
        progress(f"-- by {group}:")
        for stat in snapshot.statistics(group)[:count]:
            innermost = list(reversed(stat.traceback))[: frames if group == "traceback" else 1]
            progress(
                f"{stat.size / 2**20:9.1f} MB {stat.count:9d} blocks  "
                + " < ".join(where(frame) for frame in innermost)
            )


def timed(work: Callable[[], bytes]) -> tuple[float, bytes]:
    started = time.perf_counter()
    body = work()
    return time.perf_counter() - started, body


def measure(
    master: MasterProcess, args: argparse.Namespace
) -> tuple[dict[str, Any], Filler, list[tuple]]:
    views = master.views
    snapshot = views.snapshot
    baseline_rss = rss_mb()
    if args.tracemalloc:
        tracemalloc.start(args.frames)
    filler, tasks = fill(master, args)
    filled_rss = rss_mb()
    top_allocations("after the fill", args.tracemalloc)

    def get(path: str) -> Callable[[], bytes]:
        """The body the route at ``path`` answers, built anew (as after the cache expired)."""
        request = make_mocked_request("GET", path)
        route = {
            "/master/state": views.state_json,
            "/master/state-summary": views.state_summary_json,
            "/master/tasks": views.tasks_response,
        }[request.path]

        def run() -> bytes:
            snapshot.invalidate()
            return route(request).body

        return run

    state = get("/master/state")

    build_s, body = timed(state)
    result: dict[str, Any] = {
        "agents": len(master.state.agents),
        "tasks": len(master.state.tasks),
        "frameworks": len(master.state.frameworks),
        "state_build_s": round(build_s, 4),
        "state_bytes": len(body),
        "baseline_rss_mb": round(baseline_rss, 1),
        "master_rss_mb": round(filled_rss, 1),
    }
    progress(f"RSS: {baseline_rss:.0f} MB before the fill, {filled_rss:.0f} MB after")
    progress(f"first build: {build_s:.3f} s, {len(body) / 1e6:.1f} MB")
    if args.dump:
        with open(args.dump, "wb") as out:
            out.write(body)
    polls, pages, summaries = [], [], []
    changed = max(2, int(len(tasks) * args.changed))
    cursor = 0
    for round_ in range(args.repeats):
        for n in range(changed):
            framework_id, name = tasks[cursor % len(tasks)]
            cursor += 1
            finish = n % 2 == 0
            state_ = TaskState.TASK_FINISHED if finish else TaskState.TASK_RUNNING
            filler.update(framework_id, name, state_)
            if finish:  # a new task takes its place, so the cluster keeps its size
                agent_id = master.state.completed_task(framework_id, TaskID(name)).agent_id
                framework = master.state.frameworks[framework_id]
                new = f"{name}-r{round_}"
                filler.launch(framework, agent_id, [new])
                filler.update(framework_id, new, TaskState.TASK_RUNNING)
                tasks[(cursor - 1) % len(tasks)] = (framework_id, new)
        filler.offers_churn(filler.framework_records, filler.agent_ids, changed)
        poll_s, body = timed(state)
        polls.append(poll_s)
        page_s, _ = timed(get("/master/tasks?limit=100&offset=0&order=des"))
        pages.append(page_s)
        summary_s, _ = timed(get("/master/state-summary"))
        summaries.append(summary_s)
        progress(f"round {round_}: poll {poll_s:.3f} s, tasks page {page_s:.3f} s")
        if round_ == 0:  # the answers sent and dropped, as the route's are
            body = b""
            result["master_rss_mb_after_state"] = round(rss_mb(), 1)
            progress(f"RSS after the first poll: {result['master_rss_mb_after_state']:.0f} MB")
            top_allocations("after the first poll", args.tracemalloc)
            tracemalloc.stop()
    result.update(
        state_poll_s=round(statistics.median(polls), 4),
        tasks_page_s=round(statistics.median(pages), 4),
        summary_s=round(statistics.median(summaries), 4),
        changed_per_poll=changed,
        check_bytes=len(body := views.snapshot.view("state")),  # the last poll's, as cached
    )
    if args.check:  # the last poll's body against a build with nothing kept from before
        fresh = StateViews(master)
        fresh.registered, fresh.started = views.registered, views.started
        fresh.completed_frameworks = views.completed_frameworks
        result["exact"] = json.dumps(fresh.build_state(), separators=(",", ":")).encode() == body
    return result, filler, tasks


def poll_behind_backlog(
    runtime: Runtime, master: MasterProcess, filler: Filler, tasks: list[tuple], count: int
) -> dict[str, float]:
    """``GET /master/state`` over HTTP (the cache expired) while ``count`` status updates wait
    in the master's mailbox: how long the answer takes, and how long the backlog did."""
    runtime.dispatch(master, master.views.snapshot.invalidate).result(60)
    queued, drained = threading.Event(), threading.Event()

    def queue() -> None:  # on the loop: the whole backlog is queued before the request
        for index in range(count):
            framework_id, name = tasks[index % len(tasks)]
            runtime.dispatch(master, filler.update, framework_id, name, TaskState.TASK_RUNNING)
        runtime.dispatch(master, drained.set)
        queued.set()

    runtime.call_on_loop(queue)
    queued.wait(600)
    started = time.perf_counter()
    with urllib.request.urlopen(
        f"http://{runtime.http_address}/master/state", timeout=600
    ) as answer:
        size = len(answer.read())
    answered = time.perf_counter() - started
    drained.wait(600)
    return {
        "backlog_messages": count,
        "backlog_state_s": round(answered, 4),
        "backlog_drain_s": round(time.perf_counter() - started, 4),
        "backlog_state_bytes": size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=20_000)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--frameworks", type=int, default=10)
    parser.add_argument("--changed", type=float, default=0.01, help="share of tasks per poll")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--check", action="store_true", help="compare the last poll with a build from scratch"
    )
    parser.add_argument(
        "--backlog",
        type=int,
        default=None,
        help="status updates queued for the last poll (50,000; --quick 10,000; 0: none)",
    )
    parser.add_argument("--dump", help="write the first /master/state body to this file")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--tracemalloc", type=int, default=0, metavar="N", help="print the top N allocation sites"
    )
    parser.add_argument("--frames", type=int, default=8, help="traceback depth for --tracemalloc")
    args = parser.parse_args()
    if args.quick:
        args.agents, args.tasks, args.repeats = 2000, 10_000, 2
    if args.backlog is None:
        args.backlog = 10_000 if args.quick else 50_000
    configure_logging("warning")
    # No pings, offers or allocations of the master's own while it is measured, and builds
    # on its actor, whatever the default (benchmarks/cluster.py times forked builds).
    options = MasterOptions(
        hostname="bench-master",
        allocation_interval=3600.0,
        agent_ping_timeout=3600.0,
        state_fork_threshold=None,
    )
    with (
        tempfile.TemporaryDirectory() as work_dir,
        Runtime("127.0.0.1", 0) as peers,
        Runtime("127.0.0.1", 0, http_port=0) as runtime,
    ):
        args.peers = peers.address
        master = MasterProcess(work_dir, options)
        runtime.spawn(master)
        result, filler, tasks = runtime.dispatch(master, measure, master, args).result(3600)
        if args.backlog:
            result.update(poll_behind_backlog(runtime, master, filler, tasks, args.backlog))
        runtime.terminate(master.pid)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
