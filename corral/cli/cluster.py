"""``corral master``, ``corral agent`` and ``corral local``: running the cluster's processes."""

from __future__ import annotations

import signal
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from agent.agent import AgentProcess
from agent.options import AgentOptions
from libprocess import Launched, LaunchOptions, launch, serve
from master.master import MasterOptions, MasterProcess


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
    """An agent in the foreground, until Ctrl-C (SIGINT) or SIGTERM."""
    Path(options.work_dir).mkdir(parents=True, exist_ok=True)
    launch_options = LaunchOptions(host=ip, http_port=options.port, log_level=log_level)
    return serve(
        AgentProcess,
        options,
        options=launch_options,
        on_ready=lambda pid, http: print(
            f"agent {pid} serving http://{http}, master {options.master}", flush=True
        ),
    )


@dataclass
class LocalCluster:
    """A master and agents, each in an OS process of its own, on this machine."""

    master: Launched
    agents: list[Launched]
    http_address: str  # the master's: what frameworks and tools are given
    work_dir: Path

    def stop(self) -> list[int | None]:
        """Agents first, then the master; returns their exit codes."""
        codes = [agent.stop() for agent in self.agents]
        codes.append(self.master.stop())
        return codes


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
) -> LocalCluster:
    """Launch a master (HTTP on ``port``; 0 picks a free one) and ``agents`` agents (with
    ``isolation`` and ``launcher`` as their flags; the defaults are Mesos's)."""
    root = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="corral-local-"))
    (root / "master").mkdir(parents=True, exist_ok=True)
    master = launch(
        MasterProcess,
        str(root / "master"),
        master_options or MasterOptions(),
        options=LaunchOptions(host=ip, http_port=port or free_port(ip), log_level=log_level),
    )
    launched: list[Launched] = []
    try:
        for index in range(agents):
            agent_port = free_port(ip)
            options = AgentOptions(
                master=master.http_address,
                work_dir=root / f"agent-{index}",
                resources=resources,
                port=agent_port,
                launcher=launcher,
                **({"isolation": isolation} if isolation else {}),
            )
            launched.append(
                launch(
                    AgentProcess,
                    options,
                    options=LaunchOptions(host=ip, http_port=agent_port, log_level=log_level),
                )
            )
    except BaseException:
        for agent in launched:
            agent.stop()
        master.stop()
        raise
    return LocalCluster(master, launched, master.http_address, root)


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
    agents: int, ip: str, port: int, work_dir: str | None, resources: str | None, log_level: str
) -> int:
    """``corral local``: the cluster runs until Ctrl-C (or SIGTERM), then stops cleanly."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Also when started in the background (where a shell leaves SIGINT ignored).
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    cluster = start_local_cluster(
        agents, ip=ip, port=port, work_dir=work_dir, resources=resources, log_level=log_level
    )
    try:
        wait_for_agents(cluster.http_address, agents)
        print(f"master {cluster.master.pid} at http://{cluster.http_address}", flush=True)
        for agent in cluster.agents:
            print(f"agent  {agent.pid} (OS pid {agent.os_pid})", flush=True)
        print(f"work directory {cluster.work_dir}; Ctrl-C stops the cluster", flush=True)
        while cluster.master.is_alive():
            time.sleep(0.5)
        print("the master exited; stopping the agents", flush=True)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        cluster.stop()
