"""``corral``: the command line entry point."""

from __future__ import annotations

import argparse
import sys

from corral import __version__
from corral.cli import app as app_command
from corral.cli import dns as dns_command
from corral.cli import frontdoor as frontdoor_command
from corral.cli import services as services_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corral",
        description="Corral: a data-center operating system in the line of Apache Mesos.",
    )
    parser.add_argument("--version", action="version", version=f"corral {__version__}")
    commands = parser.add_subparsers(dest="subcommand", metavar="COMMAND")

    master = commands.add_parser("master", help="run a master in the foreground")
    master.add_argument("--ip", default="127.0.0.1", help="address to listen on")
    master.add_argument("--port", type=int, default=5050, help="HTTP port (users give this)")
    master.add_argument("--native-port", type=int, default=0, help="libprocess port (0: any)")
    master.add_argument("--work-dir", default="corral-work/master", help="registry directory")
    master.add_argument("--allocation-interval", type=float, default=1.0, help="seconds")
    master.add_argument("--agent-ping-timeout", type=float, default=15.0, help="seconds")
    master.add_argument(
        "--max-agent-ping-timeouts",
        type=int,
        default=5,
        help="unanswered pings in a row before an agent is unreachable",
    )
    master.add_argument(
        "--agent-removal-rate-limit",
        default=None,
        metavar="N/DURATION",
        help="remove at most N unreachable agents per DURATION, e.g. '1/10secs' or '5/1mins' "
        "(units: secs, mins, hrs, days); the others wait their turn and are kept if they "
        "answer meanwhile (default: no limit)",
    )
    master.add_argument(
        "--agent-reregister-timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="after a master restart, how long agents of the registry have to re-register "
        "before they are marked unreachable (default: 600)",
    )
    master.add_argument("--log-level", default="info")

    agent = commands.add_parser("agent", help="run an agent in the foreground")
    agent.add_argument("--master", default="127.0.0.1:5050", help="the master's HTTP host:port")
    agent.add_argument("--ip", default="127.0.0.1", help="address to listen on")
    agent.add_argument("--port", type=int, default=5051, help="HTTP port")
    agent.add_argument("--work-dir", default="corral-work/agent", help="sandboxes live here")
    agent.add_argument("--resources", default=None, help="e.g. 'cpus:4;mem:4096' (else detected)")
    agent.add_argument("--attributes", default=None, help="e.g. 'rack:r1;zone:a'")
    agent.add_argument("--hostname", default=None)
    agent.add_argument(
        "--isolation",
        default="posix/cpu,posix/mem,filesystem/posix",
        help="isolators, e.g. 'cgroups/cpu,cgroups/mem,cgroups/pids,filesystem/posix'",
    )
    agent.add_argument("--launcher", default="posix", choices=["posix", "linux"])
    agent.add_argument(
        "--executor-reregistration-timeout",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="after a restart, how long a running executor has to reconnect before it is "
        "destroyed (default: 2)",
    )
    agent.add_argument(
        "--recovery-timeout",
        type=float,
        default=900.0,
        metavar="SECONDS",
        help="how long a checkpointing executor waits for its restarted agent before it "
        "exits (default: 900)",
    )
    agent.add_argument(
        "--container-ports-watch-interval",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="network/ports: seconds between two scans of the listening sockets (default: 30)",
    )
    agent.add_argument(
        "--check-agent-port-range-only",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="network/ports: only ports of the agent's ports resource count (default: on)",
    )
    agent.add_argument(
        "--container-ports-isolated-range",
        default=None,
        metavar="RANGES",
        help="network/ports: the ports that count instead, e.g. '[31000-32000]'",
    )
    agent.add_argument(
        "--enforce-container-ports",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="network/ports: kill a task listening on a port not its own, else only log "
        "(default: on)",
    )
    agent.add_argument("--log-level", default="info")

    local = commands.add_parser("local", help="a master and agents on this machine, until Ctrl-C")
    local.add_argument("--agents", type=int, default=2)
    local.add_argument("--ip", default="127.0.0.1")
    local.add_argument("--port", type=int, default=5050, help="the master's HTTP port")
    local.add_argument("--work-dir", default=None, help="default: a new temporary directory")
    local.add_argument("--resources", default=None, help="each agent's, e.g. 'cpus:2;mem:2048'")
    local.add_argument(
        "--frontdoor-port",
        type=int,
        default=8000,
        help="the front door's port on 127.0.0.1 (default 8000; a free one if taken; 0: free)",
    )
    local.add_argument("--log-level", default="warning")

    run = commands.add_parser("run", help="run one command as a task, like mesos-execute")
    run.add_argument("--master", default="127.0.0.1:5050", help="the master's HTTP host:port")
    run.add_argument("--command", required=True, help="the shell command")
    run.add_argument("--name", default="corral-run", help="the framework's name")
    run.add_argument("--cpus", type=float, default=0.1)
    run.add_argument("--mem", type=float, default=32.0, help="MB")
    run.add_argument("--timeout", type=float, default=None, help="give up after seconds")
    run.add_argument("--log-level", default="warning")

    for what in ("agents", "frameworks", "tasks", "state"):
        listing = commands.add_parser(what, help=f"list the cluster's {what} (state: as JSON)")
        listing.add_argument("--master", default="127.0.0.1:5050", help="the master's host:port")
        if what == "tasks":
            listing.add_argument(
                "--usage", action="store_true", help="add each task's usage, from its agent"
            )

    dns_command.add_parser(commands)
    services_command.add_parser(commands)
    frontdoor_command.add_parser(commands)
    app_command.add_parsers(commands)

    demo = commands.add_parser(
        "demo", help="start a local cluster, run an example framework's tasks, stop it"
    )
    demo.add_argument("--agents", type=int, default=2, help="agents to start")
    demo.add_argument("--tasks", type=int, default=12, help="tasks to run")
    demo.add_argument(
        "--actors", action="store_true", help="the runtime demo instead: actors in processes"
    )
    demo.add_argument("--log-level", default="warning", help="runtime log level")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.subcommand == "master":
        from corral.cli.cluster import run_master
        from master.options import MasterOptions, parse_rate_limit

        try:
            rate = args.agent_removal_rate_limit
            options = MasterOptions(
                allocation_interval=args.allocation_interval,
                agent_ping_timeout=args.agent_ping_timeout,
                max_agent_ping_timeouts=args.max_agent_ping_timeouts,
                agent_removal_rate_limit=parse_rate_limit(rate) if rate is not None else None,
                agent_reregister_timeout=args.agent_reregister_timeout,
            )
        except ValueError as error:
            parser.error(str(error))
        return run_master(
            args.ip, args.port, args.native_port, args.work_dir, options, args.log_level
        )
    if args.subcommand == "agent":
        from agent.options import AgentOptions
        from corral.cli.cluster import run_agent

        try:
            options = AgentOptions(
                master=args.master,
                work_dir=args.work_dir,
                resources=args.resources,
                attributes=args.attributes,
                hostname=args.hostname,
                port=args.port,
                isolation=args.isolation,
                launcher=args.launcher,
                executor_reregistration_timeout=args.executor_reregistration_timeout,
                recovery_timeout=args.recovery_timeout,
                container_ports_watch_interval=args.container_ports_watch_interval,
                check_agent_port_range_only=args.check_agent_port_range_only,
                container_ports_isolated_range=args.container_ports_isolated_range,
                enforce_container_ports=args.enforce_container_ports,
            )
        except ValueError as error:
            parser.error(str(error))
        return run_agent(args.ip, options, args.log_level)
    if args.subcommand == "local":
        if args.agents < 1:
            parser.error(f"--agents must be at least 1, got {args.agents}")
        from corral.cli.cluster import run_local

        return run_local(
            args.agents,
            args.ip,
            args.port,
            args.work_dir,
            args.resources,
            args.log_level,
            frontdoor_port=args.frontdoor_port,
        )
    if args.subcommand == "run":
        from corral.cli.run import run
        from libprocess import log as logsetup

        logsetup.configure(args.log_level)
        return run(
            args.master,
            args.command,
            cpus=args.cpus,
            mem=args.mem,
            name=args.name,
            timeout=args.timeout,
        )
    if args.subcommand in ("agents", "frameworks", "tasks", "state"):
        from corral.cli.listings import show

        return show(args.subcommand, args.master, getattr(args, "usage", False))
    if args.subcommand == "dns":
        return dns_command.run(args)
    if args.subcommand == "services":
        return services_command.run(args)
    if args.subcommand == "frontdoor":
        return frontdoor_command.run(args)
    if args.subcommand in ("app", "deployments"):
        return app_command.run(args)
    if args.subcommand == "demo":
        if args.actors:
            from corral.cli.demo import run_demo

            return run_demo(log_level=args.log_level)
        if not 1 <= args.agents <= 8 or args.tasks < 1:
            parser.error("--agents must be 1-8 and --tasks at least 1")
        from corral.cli.cluster_demo import run_cluster_demo

        return run_cluster_demo(agents=args.agents, tasks=args.tasks, log_level=args.log_level)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
