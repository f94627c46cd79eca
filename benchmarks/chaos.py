"""Chaos run: a local cluster works while a seeded schedule kills its parts; nothing is lost.

A master and ``--agents`` agents run in OS processes of their own (``LocalCluster``); the
framework (``benchmarks/chaos_framework.py``) runs in a child process, so that it too can be
SIGKILLed. It launches short (``sleep 0.1..2``) and long (``sleep 600``) command tasks, kills
some long ones on purpose, and journals every launch, kill and status update it receives
before acknowledging it. Meanwhile a ``random.Random(seed)`` schedule injects one fault every
few seconds, each a real SIGKILL:

- ``agent``: an agent, restarted after a short random delay (its tasks run on; it recovers);
- ``executor``: the process of one running task (command tasks are run by the agent as their
  executor, so the task's process is what crashes); the task writes ``echo $$ > pid`` in its
  sandbox, and the pid is checked against the process's ``CORRAL_TASK_ID`` before the kill;
- ``framework``: the framework's process, started again after a short delay on the same
  journal (failover with the same framework id, then reconciliation);
- ``master``: the master, restarted after a short delay on the same work directory and ports.

Then a quiet period: every process is running again, the framework stops launching, the
master lists every agent and the framework connected, the framework reconciles, and the
cluster is left to converge. The invariants are then checked against the journal,
``/master/state``, each agent's ``/agent/state`` and the OS (task pids); every single check
counts in ``invariants_checked`` and every failure is a violation, one line on stderr:

1. every task launched is terminal in the journal, or its latest journaled state is RUNNING
   and the master and its agent list it RUNNING and its process runs; a launch that never
   reached the master (the master or the framework died first), or that its agent never got
   (TASK_UNREACHABLE, then a master failover forgot it) may instead be unknown to all:
   TASK_UNKNOWN in reconciliation, on no agent, and never started (no pid file);
2. the tasks the master lists as unfinished are exactly those the agents list as unfinished,
   no task is on two agents, none the journal shows terminal is running anywhere, and no
   task's journal goes on after a terminal update, and the master never answers TASK_UNKNOWN
   (to a reconciliation naming the agent) for a task its agent still has;
3. resources: the master's ``used`` of each agent equals the sum of its unfinished tasks'
   resources, as the master lists them and as the journal launched them, and never exceeds
   the agent's total; after every task is killed at the end, every agent's ``used`` is empty
   and the allocator offers every agent's full resources again;
4. no lost update: every task whose process the OS saw end, that the agent or the master
   reports terminal, or whose process the run killed, is terminal in the journal; and every
   short task launched long enough ago is terminal in the journal; no update the framework
   acknowledged is still resent by its agent after the quiet period (watched for longer than
   the agents' retry interval).

``--faults`` limits the kinds injected (``--faults agent,executor,framework``, say), to tell
which kind of fault a violation comes from.

Adjustments to the plan, for the record: the framework is PARTITION_AWARE (an agent down for
longer than the master's ping timeout has its tasks TASK_UNREACHABLE, not terminal, and they
come back when it returns; TASK_LOST would end them for the framework while they run on);
the framework's driver retries every 0.2 s doubling to 1 s instead of 1 s to 60 s (the
defaults make each master restart cost up to tens of seconds of the run); the master pings
every 0.3 s and takes an agent for unreachable after 3 missed pings, as in
``tests/test_failures.py``.

The last stdout line is one JSON object: ``seed``, ``duration_s``, ``faults``,
``faults_by_kind``, ``tasks_launched``, ``invariants_checked``, ``violations`` (and a few
details). The exit code is 0 when there are no violations, 1 otherwise. Everything started is
stopped by pid at the end, also on errors and Ctrl-C, and the containers agents leave behind
are killed (``agent.leftovers``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: benchmarks/ is not a package root
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from agent.leftovers import kill_leftover_containers  # noqa: E402
from benchmarks.chaos_framework import read_journal  # noqa: E402
from corral.cli.cluster import LocalCluster, start_local_cluster, wait_for_agents  # noqa: E402
from corral.cli.listings import StateUnavailable, fetch_state  # noqa: E402
from corral.resources import Resources  # noqa: E402
from corral.task_states import TaskState, is_terminal  # noqa: E402
from master import MasterOptions  # noqa: E402

FRAMEWORK_PROGRAM = ROOT / "benchmarks" / "chaos_framework.py"
AGENT = "cpus:4;mem:1024;disk:1024"
MASTER = MasterOptions(allocation_interval=0.1, agent_ping_timeout=0.3, max_agent_ping_timeouts=3)
AGENT_OPTIONS = {
    "registration_backoff": 0.1,
    "registration_backoff_max": 0.5,
    "executor_shutdown_grace": 0.5,
    "executor_registration_timeout": 10.0,
    "executor_reregistration_timeout": 2.0,
    "status_update_retry_min": 0.5,
    "status_update_retry_max": 2.0,
}
KINDS = ("agent", "executor", "framework", "master")
WEIGHTS = (3, 3, 2, 2)
RESEND_WATCH = 2.5  # seconds (> status_update_retry_max) to see acknowledged updates resent
SHORT_GRACE = 8.0  # seconds after which a short task (at most 2 s of sleep) must be over
RUNNING = TaskState.TASK_RUNNING.value
UNKNOWN = TaskState.TASK_UNKNOWN.value
UNREACHABLE = TaskState.TASK_UNREACHABLE.value


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def terminal(state: str | None) -> bool:
    return state is not None and state != UNKNOWN and is_terminal(TaskState(state))


# -- what the journal says --------------------------------------------------------------------


@dataclass
class TaskRecord:
    task_id: str
    agent_id: str
    kind: str
    resources: Resources
    launched_at: float
    states: list[dict[str, Any]] = field(default_factory=list)  # journaled updates, in order

    @property
    def latest(self) -> str | None:
        """The latest state heard, an UNKNOWN answer counting only if nothing else came, or
        if it came after TASK_UNREACHABLE: the task's agent came back without it, after a
        master failover that forgot it (for a PARTITION_AWARE framework, the task is gone).
        """
        known = [u["state"] for u in self.states if u["state"] != UNKNOWN]
        if known and not (known[-1] == UNREACHABLE and self.states[-1]["state"] == UNKNOWN):
            return known[-1]
        return UNKNOWN if self.states else None


@dataclass
class JournalView:
    framework_id: str | None
    tasks: dict[str, TaskRecord]
    offers: list[dict[str, Any]]
    lines: int


def read_view(path: Path) -> JournalView:
    framework_id = None
    tasks: dict[str, TaskRecord] = {}
    offers = []
    entries = read_journal(path)
    for entry in entries:
        event = entry["event"]
        if event == "registered":
            framework_id = framework_id or entry["framework_id"]
        elif event == "launch":
            tasks[entry["task_id"]] = TaskRecord(
                entry["task_id"],
                entry["agent_id"],
                entry["kind"],
                Resources.from_json(entry["resources"]),
                entry["t"],
            )
        elif event == "update" and entry["task_id"] in tasks:
            tasks[entry["task_id"]].states.append(entry)
        elif event == "offer":
            offers.append(entry)
    return JournalView(framework_id, tasks, offers, len(entries))


# -- the run ------------------------------------------------------------------------------------


@dataclass
class Checks:
    """Every invariant check counted; every failure one line."""

    checked: int = 0
    violations: list[str] = field(default_factory=list)

    def check(self, ok: bool, description: str) -> bool:
        self.checked += 1
        if not ok:
            self.violations.append(description)
            progress(f"VIOLATION: {description}")
        return ok


class Framework:
    """The framework's child process: started, SIGKILLed, started again, told what to do."""

    def __init__(self, master: str, journal: Path, seed: int, log: Path) -> None:
        self.master = master
        self.journal = journal
        self.seed = seed
        self.log = log
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "a") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    str(FRAMEWORK_PROGRAM),
                    "--master",
                    self.master,
                    "--journal",
                    str(self.journal),
                    "--seed",
                    str(self.seed),
                    "--quick-retries",
                ],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=log,
                text=True,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            os.kill(self.process.pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=10)
            if self.process.stdin is not None:
                self.process.stdin.close()

    def tell(self, command: str) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()


@dataclass
class Outage:
    kind: str
    target: int | None  # an agent's index
    until: float


class ChaosRun:
    def __init__(
        self,
        seed: int,
        duration: float,
        agents: int,
        work_dir: Path,
        log_level: str = "error",
        kinds: tuple[str, ...] = KINDS,
    ) -> None:
        self.seed = seed
        self.kinds = kinds
        self.log_level = log_level
        self.duration = duration
        self.agent_count = agents
        self.work_dir = work_dir
        self.rng = random.Random(seed)
        self.faults: Counter[str] = Counter()
        self.outages: list[Outage] = []
        self.killed_tasks: dict[str, int] = {}  # task id -> the pid the run SIGKILLed
        self.checks = Checks()
        self.cluster: LocalCluster | None = None
        self.framework: Framework | None = None
        self.journal = work_dir / "journal.jsonl"
        self.acknowledged_lines = 0  # journal lines before the resend watch began

    # -- setup and teardown -------------------------------------------------------------

    def start(self) -> None:
        progress(f"chaos seed {self.seed}: a master and {self.agent_count} agents ({AGENT})")
        self.cluster = start_local_cluster(
            self.agent_count,
            work_dir=str(self.work_dir / "cluster"),
            resources=AGENT,
            master_options=MASTER,
            agent_options=AGENT_OPTIONS,
            log_level=self.log_level,
        )
        wait_for_agents(self.cluster.http_address, self.agent_count, timeout=30)
        self.framework = Framework(
            self.cluster.http_address, self.journal, self.seed, self.work_dir / "framework.log"
        )
        self.framework.start()
        self.wait_until(lambda: read_view(self.journal).framework_id, "the framework registers")

    def cleanup(self) -> None:
        if self.framework is not None:
            self.framework.kill()
        if self.cluster is not None:
            self.cluster.stop()
            for index in range(self.agent_count):
                kill_leftover_containers(self.cluster.work_dir / f"agent-{index}")

    def wait_until(self, probe, what: str, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"not within {timeout:g} s: {what}")
            time.sleep(0.1)

    # -- observing -----------------------------------------------------------------------

    def master_state(self) -> dict[str, Any]:
        try:
            return fetch_state(self.cluster.http_address, timeout=2.0)
        except StateUnavailable:
            return {}

    def agent_state(self, index: int) -> dict[str, Any]:
        address = self.cluster.agents[index].http_address
        try:
            with urllib.request.urlopen(f"http://{address}/agent/state", timeout=2.0) as reply:
                return json.loads(reply.read())
        except OSError:
            return {}

    def pid_file(self, task_id: str) -> Path | None:
        found = list(
            self.cluster.work_dir.glob(f"agent-*/frameworks/*/executors/{task_id}/runs/*/pid")
        )
        return found[0] if found else None

    def task_process(self, task_id: str) -> psutil.Process | None:
        """The task's process, if it runs: the pid it wrote, checked by its environment."""
        path = self.pid_file(task_id)
        try:
            pid = int(path.read_text()) if path else None
            if pid is None:
                return None
            process = psutil.Process(pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                return None
            if process.environ().get("CORRAL_TASK_ID") != task_id:
                return None
            return process
        except (OSError, ValueError, psutil.Error):
            return None

    # -- faults ----------------------------------------------------------------------------

    def down(self, kind: str) -> list[Outage]:
        return [outage for outage in self.outages if outage.kind == kind]

    def inject(self) -> None:
        kinds = [kind for kind in KINDS if kind in self.kinds]
        weights = [weight for kind, weight in zip(KINDS, WEIGHTS, strict=True) if kind in kinds]
        while kinds:
            kind = self.rng.choices(kinds, weights)[0]
            if getattr(self, f"_fault_{kind}")():
                self.faults[kind] += 1
                return
            index = kinds.index(kind)
            del kinds[index], weights[index]
        progress("  no fault possible right now")

    def _fault_agent(self) -> bool:
        down = {outage.target for outage in self.down("agent")}
        candidates = [i for i in range(self.agent_count) if i not in down]
        if len(candidates) <= 1 and self.agent_count > 1:
            return False  # keep one agent up, so work goes on
        index = self.rng.choice(candidates)
        delay = self.rng.uniform(0.3, 2.5)
        progress(f"  fault: SIGKILL agent {index} (restart in {delay:.1f} s)")
        self.cluster.kill_agent(index)
        self.outages.append(Outage("agent", index, time.monotonic() + delay))
        return True

    def _fault_executor(self) -> bool:
        view = read_view(self.journal)
        running = sorted(t for t, task in view.tasks.items() if task.latest == RUNNING)
        self.rng.shuffle(running)
        for task_id in running:
            process = self.task_process(task_id)
            if process is None:
                continue
            progress(f"  fault: SIGKILL task {task_id}'s process (pid {process.pid})")
            try:
                process.send_signal(signal.SIGKILL)
            except psutil.Error:
                continue
            self.killed_tasks[task_id] = process.pid
            return True
        return False

    def _fault_framework(self) -> bool:
        if self.down("framework"):
            return False
        delay = self.rng.uniform(0.2, 2.0)
        progress(
            f"  fault: SIGKILL the framework (pid {self.framework.process.pid}; "
            f"restart in {delay:.1f} s)"
        )
        self.framework.kill()
        self.outages.append(Outage("framework", None, time.monotonic() + delay))
        return True

    def _fault_master(self) -> bool:
        if self.down("master"):
            return False
        delay = self.rng.uniform(0.3, 2.0)
        progress(f"  fault: SIGKILL the master (restart in {delay:.1f} s)")
        self.cluster.kill_master()
        self.outages.append(Outage("master", None, time.monotonic() + delay))
        return True

    def restore(self, everything: bool = False) -> None:
        """Restart what is down and due (or everything down)."""
        now = time.monotonic()
        for outage in list(self.outages):
            if not everything and outage.until > now:
                continue
            self.outages.remove(outage)
            if outage.kind == "agent":
                progress(f"  restart agent {outage.target}")
                self.cluster.restart_agent(outage.target)
            elif outage.kind == "master":
                progress("  restart the master")
                self.cluster.restart_master()
            elif outage.kind == "framework":
                progress("  restart the framework")
                self.framework.start()

    def chaos(self) -> None:
        end = time.monotonic() + self.duration
        next_fault = time.monotonic() + self.rng.uniform(1.0, 2.5)
        while time.monotonic() < end:
            self.restore()
            if time.monotonic() >= next_fault:
                self.inject()
                next_fault = time.monotonic() + self.rng.uniform(1.0, 3.0)
            time.sleep(0.05)
        self.restore(everything=True)

    # -- converging --------------------------------------------------------------------------

    def settled(self) -> bool:
        """Every agent and the framework are back, and the journal agrees with the master
        about every task (so the checks look at a cluster at rest, not one in motion)."""
        state = self.master_state()
        agents = [a for a in state.get("agents", []) if a.get("connected")]
        frameworks = [f for f in state.get("frameworks", []) if f.get("connected")]
        if len(agents) < self.agent_count or not frameworks:
            return False
        view = read_view(self.journal)
        master_tasks = {t["id"]: t["state"] for t in state.get("tasks", [])}
        now = time.time()
        for task_id, task in view.tasks.items():
            latest = task.latest
            if terminal(latest):
                continue
            if task.kind == "short" and now - task.launched_at < SHORT_GRACE:
                return False
            if latest == UNKNOWN and task_id not in master_tasks:
                continue  # unknown to both
            if master_tasks.get(task_id) != latest:
                return False
        return True

    def converge(self, timeout: float) -> None:
        self.framework.tell("quiet")
        self.wait_until(
            lambda: (
                len([a for a in self.master_state().get("agents", []) if a["connected"]])
                == self.agent_count
            ),
            "the master lists every agent",
        )
        self.wait_until(
            lambda: any(f["connected"] for f in self.master_state().get("frameworks", [])),
            "the framework is connected",
        )
        self.framework.tell("reconcile")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.settled():
            time.sleep(0.25)
        self.framework.tell("reconcile")
        # Let the answers arrive: the journal stops growing.
        lines, quiet_since = -1, time.monotonic()
        while time.monotonic() - quiet_since < 1.5 and time.monotonic() < deadline + 5:
            now = read_view(self.journal).lines
            if now != lines:
                lines, quiet_since = now, time.monotonic()
            time.sleep(0.25)
        # Updates acknowledged must stop coming: watch longer than the agents' retry interval.
        self.acknowledged_lines = read_view(self.journal).lines
        time.sleep(RESEND_WATCH)

    # -- invariants ----------------------------------------------------------------------------

    def check(self) -> None:
        checks = self.checks
        view = read_view(self.journal)
        state = self.master_state()
        agent_states = [self.agent_state(i) for i in range(self.agent_count)]
        master_tasks = {t["id"]: t for t in state.get("tasks", [])}
        master_unfinished = {
            t: task for t, task in master_tasks.items() if not terminal(task["state"])
        }
        on_agents: dict[str, list[tuple[str, str]]] = {}  # task id -> [(agent id, state)]
        for agent in agent_states:
            for framework in agent.get("frameworks", []):
                for executor in framework["executors"]:
                    for task in executor["tasks"]:
                        on_agents.setdefault(task["id"], []).append((agent["id"], task["state"]))
        agent_unfinished = {
            t: places for t, places in on_agents.items() if any(not terminal(s) for _, s in places)
        }
        now = time.time()

        # 1. every task: terminal in the journal, or running everywhere, or unknown to all.
        for task_id, task in sorted(view.tasks.items()):
            latest = task.latest
            if terminal(latest):
                checks.check(True, "")
                continue
            if latest == UNKNOWN or latest is None:
                ok = (
                    task_id not in master_tasks
                    and task_id not in on_agents
                    and self.pid_file(task_id) is None
                )
                checks.check(
                    ok,
                    f"task {task_id}: the journal has it {latest or 'with no update'}, but "
                    f"master={master_tasks.get(task_id, {}).get('state')} "
                    f"agents={on_agents.get(task_id)} pid file={self.pid_file(task_id)}",
                )
                continue
            checks.check(
                latest == RUNNING,
                f"task {task_id}: its latest journaled state is {latest}, neither terminal "
                "nor RUNNING",
            )
            checks.check(
                master_tasks.get(task_id, {}).get("state") == RUNNING,
                f"task {task_id}: RUNNING in the journal, the master lists it "
                f"{master_tasks.get(task_id, {}).get('state')}",
            )
            checks.check(
                [s for a, s in on_agents.get(task_id, []) if a == task.agent_id] == [RUNNING],
                f"task {task_id}: RUNNING in the journal, its agent {task.agent_id} lists "
                f"{on_agents.get(task_id)}",
            )
            checks.check(
                self.task_process(task_id) is not None,
                f"task {task_id}: RUNNING in the journal, but its process does not run",
            )

        # 2. the master and the agents agree; nothing terminal runs; terminal is final.
        checks.check(
            set(master_unfinished) == set(agent_unfinished),
            f"unfinished tasks differ: only at the master "
            f"{sorted(set(master_unfinished) - set(agent_unfinished))}, only on agents "
            f"{sorted(set(agent_unfinished) - set(master_unfinished))}",
        )
        for task_id, places in sorted(on_agents.items()):
            checks.check(len(places) == 1, f"task {task_id} is on several agents: {places}")
        for task_id, task in sorted(view.tasks.items()):
            if not terminal(task.latest):
                continue
            checks.check(
                task_id not in master_unfinished and task_id not in agent_unfinished,
                f"task {task_id} is {task.latest} in the journal but unfinished at the master "
                f"({master_tasks.get(task_id, {}).get('state')}) or on an agent "
                f"({on_agents.get(task_id)})",
            )
            # The task's own stream (updates with a uuid) ends with its terminal update; the
            # master's answers (no uuid: reconciliation, kills) may tell that end before the
            # stream's resends catch up, but must not tell another one.
            stream = {u["uuid"]: u["state"] for u in task.states if u["uuid"]}  # resends once
            states = list(stream.values())
            ends = [i for i, s in enumerate(states) if terminal(s)]
            checks.check(
                not ends or ends[0] == len(states) - 1,
                f"task {task_id}: the journal goes on after a terminal update: {states}",
            )
            told = {u["state"] for u in task.states if not u["uuid"] and terminal(u["state"])}
            checks.check(
                not ends or told <= {states[-1]},
                f"task {task_id}: the master told {sorted(told)}, its stream ended "
                f"{states[-1] if states else None}",
            )

        # ... and the master never denies a task that runs: no TASK_UNKNOWN answer between
        # updates from the task's agent (a framework would launch it again, twice running).
        for task_id, task in sorted(view.tasks.items()):
            sources = [u for u in task.states if u["uuid"] or u["state"] == UNKNOWN]
            for index, update in enumerate(sources):
                if update["state"] != UNKNOWN:
                    continue
                before = any(u["uuid"] for u in sources[:index])
                after = [u["state"] for u in sources[index + 1 :] if u["uuid"]]
                checks.check(
                    not (before and after),
                    f"task {task_id}: the master answered TASK_UNKNOWN to a reconciliation "
                    f"naming its agent {task.agent_id}, but its agent still had it (and "
                    f"reported it {after[0] if after else '?'} afterwards)",
                )

        # 3. resources.
        for agent in state.get("agents", []):
            used = Resources.from_json(agent["used_resources"])
            total = Resources.from_json(agent["resources"])
            listed = Resources()
            for task in master_unfinished.values():
                if task["agent_id"] == agent["id"]:
                    listed = listed + Resources.from_json(task["resources"])
            launched = Resources()
            for task in view.tasks.values():
                unfinished = task.latest not in (UNKNOWN, None) and not terminal(task.latest)
                if task.agent_id == agent["id"] and unfinished:
                    launched = launched + task.resources
            checks.check(
                used == listed,
                f"agent {agent['id']}: the master counts {used} used, its unfinished tasks "
                f"hold {listed}",
            )
            checks.check(
                used == launched,
                f"agent {agent['id']}: the master counts {used} used, the framework's "
                f"unfinished tasks there hold {launched}",
            )
            checks.check(
                total.contains(used),
                f"agent {agent['id']}: used {used} exceeds its total {total}",
            )

        # 4. no lost update, and none resent once acknowledged.
        entries = read_journal(self.journal)
        seen: set[tuple[str, str]] = set()
        for entry in entries[: self.acknowledged_lines]:
            if entry["event"] == "update" and entry["uuid"]:
                seen.add((entry["task_id"], entry["uuid"]))
        resent: dict[str, dict[str, Any]] = {}
        for entry in entries[self.acknowledged_lines :]:
            if entry["event"] == "update" and (entry["task_id"], entry["uuid"]) in seen:
                resent[entry["task_id"]] = entry
        for task_id in sorted({task_id for task_id, _ in seen}):
            entry = resent.get(task_id)
            checks.check(
                entry is None,
                f"task {task_id}: its {entry and entry['state']} update (uuid "
                f"{entry and entry['uuid']}) from agent {entry and entry['agent_id']} is still "
                f"resent after the framework acknowledged it",
            )

        for task_id, task in sorted(view.tasks.items()):
            if terminal(task.latest):
                continue
            ended = self.pid_file(task_id) is not None and self.task_process(task_id) is None
            if ended or task_id in self.killed_tasks:
                checks.check(
                    False,
                    f"task {task_id}: its process ended "
                    f"({'killed by the run' if task_id in self.killed_tasks else 'by itself'}) "
                    f"but the journal's latest state is {task.latest}",
                )
            else:
                checks.check(True, "")
            for agent_id, agent_state in on_agents.get(task_id, []):
                checks.check(
                    not terminal(agent_state),
                    f"task {task_id}: agent {agent_id} has it {agent_state}, the journal "
                    f"{task.latest}",
                )
            master = master_tasks.get(task_id, {}).get("state")
            checks.check(
                not terminal(master),
                f"task {task_id}: the master has it {master}, the journal {task.latest}",
            )
            if task.kind == "short" and now - task.launched_at > SHORT_GRACE:
                checks.check(
                    task.latest == UNKNOWN and task_id not in master_tasks,
                    f"task {task_id}: a short task launched {now - task.launched_at:.0f} s ago "
                    f"is {task.latest} in the journal",
                )

    def drain(self, timeout: float) -> None:
        """Kill every task, then check nothing is used and every agent is offered whole."""
        checks = self.checks
        started = time.time()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.framework.tell("drain")
            time.sleep(1.0)
            view = read_view(self.journal)
            if all(terminal(t.latest) or t.latest == UNKNOWN for t in view.tasks.values()):
                break
        view = read_view(self.journal)
        for task_id, task in sorted(view.tasks.items()):
            checks.check(
                terminal(task.latest) or task.latest == UNKNOWN,
                f"task {task_id}: still {task.latest} in the journal after every task was killed",
            )
            checks.check(
                self.task_process(task_id) is None,
                f"task {task_id}: its process still runs after every task was killed",
            )
        state = {}
        while time.monotonic() < deadline + 3:
            state = self.master_state()
            if state and all(not Resources.from_json(a["used_resources"]) for a in state["agents"]):
                break
            time.sleep(0.2)
        for agent in state.get("agents", []):
            used = Resources.from_json(agent["used_resources"])
            checks.check(not used, f"agent {agent['id']}: {used} still used after the drain")
        totals = {a["id"]: Resources.from_json(a["resources"]) for a in state.get("agents", [])}
        whole: set[str] = set()
        while time.monotonic() < deadline + 6 and len(whole) < len(totals):
            for offer in read_view(self.journal).offers:
                resources = Resources.from_json(offer["resources"])
                total = totals.get(offer["agent_id"])
                if offer["t"] >= started and total is not None and resources == total:
                    whole.add(offer["agent_id"])
            time.sleep(0.2)
        state = self.master_state()
        held = [
            (framework["id"], offer["resources"])
            for framework in state.get("frameworks", [])
            for offer in framework["offers"]
        ]
        for agent_id in sorted(totals):
            last = [o for o in read_view(self.journal).offers if o["agent_id"] == agent_id][-1:]
            checks.check(
                agent_id in whole,
                f"agent {agent_id}: never offered whole ({totals[agent_id]}) after the drain; "
                f"last offered {last and Resources.from_json(last[0]['resources'])}; "
                f"offers the master holds for frameworks: {held}",
            )
        # The master and its allocator never disagreed (since the master's last start).
        address = self.cluster.http_address
        with urllib.request.urlopen(f"http://{address}/metrics/snapshot", timeout=5.0) as reply:
            refused = json.loads(reply.read()).get("master/allocator_errors")
        checks.check(
            refused == 0,
            f"the allocator refused {refused} of the master's events (its view and the "
            "master's differ; the master's log says which: allocator_event_refused)",
        )


def run(
    seed: int,
    duration: float,
    agents: int,
    converge_timeout: float,
    log_level: str = "error",
    kinds: tuple[str, ...] = KINDS,
) -> dict[str, Any]:
    """One chaos run in a fresh work directory (kept when something went wrong)."""
    work_dir = Path(tempfile.mkdtemp(prefix=f"corral-chaos-{seed}-"))
    chaos = ChaosRun(seed, duration, agents, work_dir, log_level, kinds)
    started = time.monotonic()
    keep = False
    launched = 0
    try:
        chaos.start()
        progress(f"chaos for {duration:g} s")
        chaos.chaos()
        progress(f"quiet: {sum(chaos.faults.values())} faults injected; converging")
        chaos.converge(converge_timeout)
        progress("checking invariants")
        chaos.check()
        progress("killing every task; checking resources come back")
        chaos.drain(converge_timeout)
        keep = bool(chaos.checks.violations)
    except BaseException:
        keep = True
        raise
    finally:
        chaos.cleanup()
        if chaos.journal.exists():
            launched = len(read_view(chaos.journal).tasks)
        if keep:
            progress(f"work directory kept for inspection: {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    return {
        "seed": seed,
        "duration_s": round(time.monotonic() - started, 1),
        "chaos_s": duration,
        "agents": agents,
        "faults": sum(chaos.faults.values()),
        "faults_by_kind": {kind: chaos.faults[kind] for kind in KINDS},
        "tasks_launched": launched,
        "invariants_checked": chaos.checks.checked,
        "violations": len(chaos.checks.violations),
        "violation_samples": chaos.checks.violations[:10],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of chaos")
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--converge-timeout", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true", help="20 s of chaos at most")
    parser.add_argument("--log-level", default="error", help="of the cluster's processes")
    parser.add_argument(
        "--faults", default=",".join(KINDS), help=f"the kinds to inject, of {','.join(KINDS)}"
    )
    args = parser.parse_args()
    if args.quick:
        args.duration = min(args.duration, 20.0)
        args.converge_timeout = min(args.converge_timeout, 15.0)
    from libprocess import log as logsetup

    logsetup.configure("error")

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    kinds = tuple(kind.strip() for kind in args.faults.split(",") if kind.strip())
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"--faults: unknown kinds {sorted(unknown)}; the kinds are {KINDS}")
    result = run(
        args.seed, args.duration, args.agents, args.converge_timeout, args.log_level, kinds
    )
    print(json.dumps(result))
    return 0 if result["violations"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
