"""``corral master``, ``corral agent`` and ``corral local``: running the cluster's processes."""

from __future__ import annotations

import os
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from agent.agent import AgentProcess
from agent.leftovers import kill_leftover_containers
from agent.options import AgentOptions
from libprocess import Launched, LaunchOptions, launch, serve
from master import MasterOptions, MasterProcess

log = structlog.get_logger("corral.cli.cluster")


def run_master(
    ip: str, port: int, native_port: int, work_dir: str, options: MasterOptions, log_level: str
) -> int:
    """The master in the foreground, until Ctrl-C (SIGINT) or SIGTERM."""
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    launch_options = LaunchOptions(host=ip, port=native_port, http_port=port, log_level=log_level)
    return serve(
        MasterProcess,
        work_dir,
        options,
        options=launch_options,
        on_ready=lambda pid, http: print(f"master {pid} serving http://{http}", flush=True),
    )


def run_agent(ip: str, options: AgentOptions, log_level: str) -> int:
    """An agent in the foreground, until Ctrl-C (SIGINT) or SIGTERM; 1 when it failed to
    start, or when the master refused it for good (the reason is printed to stderr)."""
    Path(options.work_dir).mkdir(parents=True, exist_ok=True)
    launch_options = LaunchOptions(host=ip, http_port=options.port, log_level=log_level)
    served: list[AgentProcess] = []

    def agent(options: AgentOptions) -> AgentProcess:
        served.append(AgentProcess(options))
        return served[-1]

    code = serve(
        agent,
        options,
        options=launch_options,
        on_ready=lambda pid, http: print(
            f"agent {pid} serving http://{http}, master {options.master}", flush=True
        ),
    )
    refusal = served[-1].refusal if served else None
    if refusal is None:
        return code
    print(refused_agent(refusal, options.work_dir), file=sys.stderr, flush=True)
    return 1


def refused_agent(reason: str, work_dir: Path) -> str:
    """What ``corral agent`` says when the master refused the agent for good."""
    return (
        f"corral agent: the master refused this agent for good: {reason}. The agent destroyed "
        "its containers and forgot its agent id: fix what the master names, then start it "
        f"again and it registers as a new agent (with --work-dir {work_dir}, or a fresh one)."
    )


@dataclass(frozen=True)
class ProcessSpec:
    """How one of the cluster's processes was launched, so that a restart repeats it exactly:
    the same arguments (work directory, options) and the same native and HTTP ports, hence
    the same pid (``master@ip:port``) and the same address for everyone who knew it."""

    factory: type[MasterProcess] | type[AgentProcess]
    args: tuple[Any, ...]
    launch_options: LaunchOptions

    def launch(self) -> Launched:
        return launch(self.factory, *self.args, options=self.launch_options)


@dataclass
class LocalCluster:
    """A master and agents, each in an OS process of its own, on this machine.

    Besides starting and stopping, the cluster can fail on purpose, for failure tests and
    chaos runs: every process can be killed (SIGKILL, as a crash), restarted with the options
    and ports it was first started with, and an agent can be paused (SIGSTOP: it holds its
    connections but answers nothing, as a hung or partitioned machine) and resumed. Everything
    goes by OS pid. ``master`` and ``agents[i]`` always hold the current process of each slot.
    """

    master: Launched
    agents: list[Launched]
    http_address: str  # the master's: what frameworks and tools are given
    work_dir: Path
    master_spec: ProcessSpec | None = None  # None: not restartable (built by hand)
    agent_specs: list[ProcessSpec] = field(default_factory=list)
    # Slots whose current process this cluster SIGKILLed: "master" or an agent's index.
    # Cleared by a restart. Such a process has no exit code of its own to report.
    killed: set[str | int] = field(default_factory=set)
    paused: set[int] = field(default_factory=set)  # agents stopped with SIGSTOP

    # -- the master -------------------------------------------------------------------------

    def kill_master(self) -> None:
        """SIGKILL the master: nothing is finalized, its registry stays as last written."""
        log.info("local_master_killed", pid=str(self.master.pid), os_pid=self.master.os_pid)
        self.master.kill()
        self.killed.add("master")

    def restart_master(self) -> Launched:
        """Start the master again, with the same work directory, options and ports: its pid
        and HTTP address are unchanged, so agents and drivers find it again by themselves.
        A master still running is stopped first (SIGTERM)."""
        spec = self._spec(self.master_spec, "the master")
        if self.master.is_alive():
            self.master.stop()
        self.master = spec.launch()
        self.killed.discard("master")
        log.info("local_master_restarted", pid=str(self.master.pid), os_pid=self.master.os_pid)
        return self.master

    # -- agents -----------------------------------------------------------------------------

    def kill_agent(self, index: int) -> None:
        """SIGKILL agent ``index`` (also when paused): its containers are left running."""
        agent = self.agents[index]
        log.info("local_agent_killed", index=index, pid=str(agent.pid), os_pid=agent.os_pid)
        agent.kill()
        self.paused.discard(index)
        self.killed.add(index)

    def stop_agent(self, index: int, timeout: float = 10.0) -> int | None:
        """Stop agent ``index`` cleanly (SIGTERM; SIGKILL after ``timeout``); its exit code."""
        self.resume_agent(index)  # a stopped process cannot take SIGTERM
        return self.agents[index].stop(timeout)

    def restart_agent(self, index: int) -> Launched:
        """Start agent ``index`` again with the same work directory, options and ports (so
        the same pid ``agent@ip:port``); one still running is stopped first (SIGTERM)."""
        spec = self._spec(
            self.agent_specs[index] if index < len(self.agent_specs) else None, f"agent {index}"
        )
        if self.agents[index].is_alive():
            self.stop_agent(index)
        self.agents[index] = spec.launch()
        self.killed.discard(index)
        self.paused.discard(index)
        agent = self.agents[index]
        log.info("local_agent_restarted", index=index, pid=str(agent.pid), os_pid=agent.os_pid)
        return agent

    def pause_agent(self, index: int) -> None:
        """SIGSTOP agent ``index``: its sockets stay open but it answers nothing (no pongs,
        no acknowledgements), as a hung machine or one behind a one-way partition."""
        agent = self.agents[index]
        os.kill(agent.os_pid, signal.SIGSTOP)
        self.paused.add(index)
        log.info("local_agent_paused", index=index, pid=str(agent.pid), os_pid=agent.os_pid)

    def resume_agent(self, index: int) -> None:
        """SIGCONT agent ``index`` after ``pause_agent``; it carries on where it stopped."""
        if index not in self.paused:
            return
        agent = self.agents[index]
        if agent.is_alive():
            os.kill(agent.os_pid, signal.SIGCONT)
        self.paused.discard(index)
        log.info("local_agent_resumed", index=index, pid=str(agent.pid), os_pid=agent.os_pid)

    # -- the whole cluster ------------------------------------------------------------------

    def stop(self) -> list[int | None]:
        """Agents first, then the master; returns their exit codes, in that order.

        Paused agents are resumed first, so that they can take SIGTERM. A process this cluster
        killed (``kill_master``/``kill_agent``, and not restarted since) reports ``None``: it
        was killed on purpose and has no exit code of its own; one that died by itself reports
        what the OS said (a negative number for a signal). The cluster is going for good, so
        the containers stopped agents leave for a successor (checkpointing frameworks') are
        killed too.
        """
        codes: list[int | None] = []
        for index, agent in enumerate(self.agents):
            self.resume_agent(index)
            code = agent.stop()
            codes.append(None if index in self.killed else code)
            kill_leftover_containers(self.work_dir / f"agent-{index}")
        code = self.master.stop()
        codes.append(None if "master" in self.killed else code)
        return codes

    @staticmethod
    def _spec(spec: ProcessSpec | None, what: str) -> ProcessSpec:
        if spec is None:
            raise RuntimeError(
                f"cannot restart {what}: this LocalCluster does not know how it was launched; "
                "start the cluster with start_local_cluster() to restart its processes"
            )
        return spec


def free_port(ip: str) -> int:
    with socket.socket() as sock:
        sock.bind((ip, 0))
        return sock.getsockname()[1]


def start_local_cluster(
    agents: int = 2,
    *,
    ip: str = "127.0.0.1",
    port: int = 0,
    work_dir: str | None = None,
    resources: str | None = None,
    master_options: MasterOptions | None = None,
    isolation: str | None = None,
    launcher: str = "posix",
    log_level: str = "warning",
    agent_options: dict[str, Any] | None = None,
) -> LocalCluster:
    """Launch a master (HTTP on ``port``; 0 picks a free one) and ``agents`` agents (with
    ``isolation`` and ``launcher`` as their flags; the defaults are Mesos's).

    ``agent_options`` are further ``AgentOptions`` fields for every agent (shorter retry and
    timeout settings for tests, say). Every process gets fixed native and HTTP ports, chosen
    now, so that a restart keeps its pid and address.
    """
    root = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="corral-local-"))
    (root / "master").mkdir(parents=True, exist_ok=True)
    extra = dict(agent_options or {})
    reserved = {"master", "work_dir", "port"} & extra.keys()
    if reserved:
        raise ValueError(
            f"agent_options cannot set {sorted(reserved)}: the cluster chooses each agent's "
            "master, work directory and port"
        )
    master_spec = ProcessSpec(
        MasterProcess,
        (str(root / "master"), master_options or MasterOptions()),
        LaunchOptions(
            host=ip, port=free_port(ip), http_port=port or free_port(ip), log_level=log_level
        ),
    )
    master = master_spec.launch()
    launched: list[Launched] = []
    specs: list[ProcessSpec] = []
    try:
        for index in range(agents):
            agent_port = free_port(ip)
            fields: dict[str, Any] = {
                "resources": resources,
                "launcher": launcher,
                **({"isolation": isolation} if isolation else {}),
                **extra,
            }
            options = AgentOptions(
                master=master.http_address,
                work_dir=root / f"agent-{index}",
                port=agent_port,
                **fields,
            )
            spec = ProcessSpec(
                AgentProcess,
                (options,),
                LaunchOptions(
                    host=ip, port=free_port(ip), http_port=agent_port, log_level=log_level
                ),
            )
            launched.append(spec.launch())
            specs.append(spec)
    except BaseException:
        for agent in launched:
            agent.stop()
        master.stop()
        raise
    return LocalCluster(master, launched, master.http_address, root, master_spec, specs)


def wait_for_agents(http_address: str, count: int, timeout: float = 30.0) -> None:
    """Block until the master lists ``count`` agents (they register in the background)."""
    from corral.cli.listings import StateUnavailable, fetch_state

    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        try:
            seen = len(fetch_state(http_address).get("agents", []))
        except StateUnavailable:
            seen = 0
        if seen >= count:
            return
        time.sleep(0.05)
    raise TimeoutError(
        f"only {seen} of {count} agents registered with the master at {http_address} within "
        f"{timeout:g} s; see the agents' logs"
    )


def run_local(
    agents: int,
    ip: str,
    port: int,
    work_dir: str | None,
    resources: str | None,
    log_level: str,
    frontdoor_port: int = 8000,
) -> int:
    """``corral local``: the cluster runs until Ctrl-C (or SIGTERM), then stops cleanly. The
    front door listens on ``frontdoor_port`` of 127.0.0.1, or a free port if that is taken."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Also when started in the background (where a shell leaves SIGINT ignored).
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    cluster = start_local_cluster(
        agents, ip=ip, port=port, work_dir=work_dir, resources=resources, log_level=log_level
    )
    dns = door = services = None
    try:
        wait_for_agents(cluster.http_address, agents)
        print(f"master {cluster.master.pid} at http://{cluster.http_address}", flush=True)
        for agent in cluster.agents:
            print(f"agent  {agent.pid} (OS pid {agent.os_pid})", flush=True)
        from corral.cli.dns import launch_dns

        dns = launch_dns(cluster.http_address)  # on free ports, bound to 127.0.0.1
        print(dns.banner, flush=True)
        from corral.cli.services import launch_services

        services = launch_services(  # on a free port, bound to 127.0.0.1
            cluster.http_address, work_dir=cluster.work_dir / "services"
        )
        print(services.banner, flush=True)
        from corral.cli.frontdoor import launch_local_frontdoor

        door = launch_local_frontdoor(
            cluster.http_address,
            frontdoor_port,
            services=services.address,
            dns=f"{dns.ip}:{dns.http_port}",
        )
        print(door.banner, flush=True)
        print(f"work directory {cluster.work_dir}; Ctrl-C stops the cluster", flush=True)
        while cluster.master.is_alive():
            time.sleep(0.5)
        print("the master exited; stopping the agents", flush=True)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        if door is not None:
            door.stop()
        if services is not None:
            services.stop()
        if dns is not None:
            dns.stop()
        cluster.stop()
