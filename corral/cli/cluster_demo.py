"""``corral demo`` (``make demo``): a local cluster runs an example framework's tasks, then a
service.

A master and agents start in OS processes of their own; the run-commands framework (in this
process, through the scheduler driver) runs shell commands as tasks on them, with a line per
status update, and a summary follows. Then the DC/OS layer: ``corral services`` and the front
door start, and a health-checked service is deployed, scaled, rolled out, broken and healed
through the front door (corral/cli/service_demo.py). Everything is stopped cleanly, and the
demo says what to run next.
"""

from __future__ import annotations

import shutil

from corral.cli.cluster import start_local_cluster, wait_for_agents
from corral.cli.listings import agents_table, fetch_state
from corral.cli.service_demo import ServiceDemo
from corral.frameworks.commands import run_commands
from libprocess import log as logsetup

AGENT_RESOURCES = "cpus:2;mem:1024;disk:1024;ports:[31000-31100]"


def run_cluster_demo(agents: int = 2, tasks: int = 12, log_level: str = "warning") -> int:
    logsetup.configure(log_level)
    _title(f"starting a local cluster: a master and {agents} agents, each in its own process")
    cluster = start_local_cluster(agents, resources=AGENT_RESOURCES, log_level=log_level)
    ok = False
    try:
        wait_for_agents(cluster.http_address, agents)
        print(f"   master {cluster.master.pid}, HTTP http://{cluster.http_address}")
        for line in agents_table(fetch_state(cluster.http_address)).splitlines():
            print(f"   {line}")

        _title(f"running {tasks} shell commands as tasks (0.5 cpus, 64 MB each)")
        commands = [f"echo task {i} && sleep 0.{1 + i % 4}" for i in range(tasks)]
        summary = run_commands(
            cluster.http_address,
            commands,
            cpus=0.5,
            mem=64,
            name="demo",
            timeout=120,
            report=lambda line: print(f"   {line}", flush=True),
        )
        _title("summary")
        for line in summary.describe().splitlines():
            print(f"   {line}")
        ok = summary.ok

        _title("a service through the front door: deploy, scale, roll out, break, heal")
        service = ServiceDemo(
            cluster.http_address, cluster.work_dir, lambda line: print(f"   {line}", flush=True)
        )
        ok = service.run() and ok
    finally:
        _title("stopping the cluster (SIGTERM; actors finalize)")
        codes = cluster.stop()
        print(f"   exit codes: agents {codes[:-1]}, master {codes[-1]}")
        shutil.rmtree(cluster.work_dir, ignore_errors=True)
    _title("done" if ok else "done, with failures")
    print("   next: `corral local` runs this cluster until Ctrl-C, with its front door at")
    print(
        "   http://127.0.0.1:8000 (`corral app list`, `dcos cluster setup http://127.0.0.1:8000`)"
    )
    return 0 if ok else 1


def _title(text: str) -> None:
    print(f"\n== {text}", flush=True)
