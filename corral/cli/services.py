"""``corral services``: the Marathon-compatible scheduler for long-running services."""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from corral.cli.layer_process import LayerProcess, start_layer

DESCRIPTION = """\
A framework that keeps long-running services running, with Marathon's REST API on
--http-port: post an app definition to /v2/apps and it keeps that many (healthy) instances,
replaces the ones that end, scales, and rolls out new versions under the app's upgrade
strategy. State is kept in --work-dir (crash-safe files); restarted on the same directory, it
takes its running tasks over. See docs/services.md."""


def add_parser(commands: argparse._SubParsersAction) -> None:
    services = commands.add_parser(
        "services",
        help="run the Marathon-compatible services scheduler",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    services.add_argument("--master", default="127.0.0.1:5050", help="the master's HTTP host:port")
    services.add_argument("--ip", default="127.0.0.1", help="address to listen on")
    services.add_argument(
        "--http-port", type=int, default=8080, help="REST API port (default 8080; 0: a free one)"
    )
    services.add_argument("--work-dir", default="corral-work/services", help="where state is kept")
    services.add_argument("--framework-name", default="marathon", help="default: marathon")
    services.add_argument(
        "--failover-timeout",
        type=float,
        default=604800.0,
        metavar="SECONDS",
        help="how long the master keeps the tasks of a scheduler that is gone (default: a week)",
    )
    services.add_argument("--role", default="*", help="the role offers are asked for")
    services.add_argument("--log-level", default="info")


def run(args: argparse.Namespace) -> int:
    from libprocess import log as logsetup
    from services.scheduler import ServicesOptions
    from services.service import Services, serve

    logsetup.configure(args.log_level)
    if args.failover_timeout < 0:
        print("corral services: --failover-timeout is 0 or more seconds", file=sys.stderr)
        return 2
    work_dir = Path(args.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    options = ServicesOptions(
        master=args.master,
        work_dir=work_dir,
        ip=args.ip,
        http_port=args.http_port,
        framework_name=args.framework_name,
        failover_timeout=args.failover_timeout,
        role=args.role,
    )

    def ready(services: Services) -> None:
        print(
            f"services serving http://{options.ip}:{services.api.port} "
            f"(framework {options.framework_name}), master {options.master}, "
            f"work directory {work_dir}",
            flush=True,
        )

    try:
        return serve(options, ready)
    except ValueError as error:  # a --master that is no address
        print(f"corral services: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"corral services: cannot listen on {options.ip}: {error}", file=sys.stderr)
        return 1


READY = re.compile(r"^services serving http://(?P<ip>[^:\s]+):(?P<port>\d+) ")


@dataclass
class ServicesProcess(LayerProcess):
    """A ``corral services`` started by ``launch_services``, in an OS process of its own."""

    ip: str
    http_port: int
    work_dir: Path
    banner: str  # what it printed when ready

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.http_port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"


def launch_services(
    master: str,
    *arguments: str,
    work_dir: str | Path,
    ip: str = "127.0.0.1",
    http_port: int = 0,
    timeout: float = 30.0,
    log_level: str = "warning",
) -> ServicesProcess:
    """Start ``corral services --master MASTER --ip IP --http-port PORT --work-dir DIR
    ARGUMENTS…`` (a free port by default) and wait until it listens."""
    flags = ["--master", master, "--ip", ip, "--http-port", str(http_port)]
    flags += ["--work-dir", str(work_dir), "--log-level", log_level, *arguments]
    process, ready, line = start_layer("services", flags, READY, timeout)
    return ServicesProcess(process, ip, int(ready["port"]), Path(work_dir), line)
