"""``corral frontdoor``: DC/OS's paths on one HTTP port (DC/OS's Admin Router)."""

from __future__ import annotations

import argparse
import re
import socket
import sys
from dataclasses import dataclass

from corral.cli.layer_process import LayerProcess, start_layer

DESCRIPTION = """\
One HTTP port with DC/OS's paths, so that the DC/OS command line and Marathon clients work
against Corral unmodified:
  /mesos/...              the master's HTTP API (--master)
  /service/marathon/...   the services scheduler's Marathon API (--services)
  /mesos_dns/...          the DNS server's Mesos-DNS API (--dns)
  /slave/<agent id>/...   that agent's HTTP API (its address comes from the master)
  /dcos-metadata/dcos-version.json, /metadata   what the DC/OS CLI asks first
Streams (the master's RecordIO, Marathon's events) pass through as they are produced. A part
not given, or down, answers 502 with how to start it; an unknown path 404 with the list.
See docs/frontdoor.md."""

DEFAULT_PORT = 8000


def add_parser(commands: argparse._SubParsersAction) -> None:
    door = commands.add_parser(
        "frontdoor",
        help="serve DC/OS's paths (/mesos, /service/marathon, /mesos_dns) on one port",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    door.add_argument("--master", default="127.0.0.1:5050", help="the master's HTTP host:port")
    door.add_argument("--services", default=None, help="the services scheduler's HTTP host:port")
    door.add_argument("--dns", default=None, help="the DNS server's HTTP host:port (/v1 API)")
    door.add_argument(
        "--dns-domain",
        default="corral",
        help="the DNS server's --domain: DC/OS's names under .mesos are asked under it "
        "(default: corral)",
    )
    door.add_argument("--ip", default="127.0.0.1", help="address to listen on")
    door.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port (default 8000; 0: a free one)"
    )
    door.add_argument("--log-level", default="info")


_ADDRESS = re.compile(r"^[^\s/:]+:\d{1,5}$")


def run(args: argparse.Namespace) -> int:
    from frontdoor import Upstream, serve
    from libprocess import log as logsetup

    for flag in ("master", "services", "dns"):
        value = getattr(args, flag)
        if value is not None and not _ADDRESS.match(value.removeprefix("http://")):
            print(
                f"corral frontdoor: --{flag} must be HOST:PORT (e.g. 127.0.0.1:5050), "
                f"got {value!r}",
                file=sys.stderr,
            )
            return 2
    logsetup.configure(args.log_level)

    def address(value: str | None) -> str | None:
        return value.removeprefix("http://") if value else None

    addresses = {
        Upstream.MASTER: address(args.master),
        Upstream.SERVICES: address(args.services),
        Upstream.DNS: address(args.dns),
    }

    def ready(door) -> None:
        parts = ", ".join(f"{u.value} {a}" for u, a in addresses.items() if a)
        print(f"frontdoor serving http://{args.ip}:{door.port} for {parts}", flush=True)

    try:
        return serve(addresses, args.ip, args.port, ready, args.dns_domain)
    except OSError as error:
        print(
            f"corral frontdoor: cannot listen on {args.ip}:{args.port} ({error.strerror or error})"
            "; pass another --port (0: a free one)",
            file=sys.stderr,
        )
        return 1


READY = re.compile(r"^frontdoor serving (?P<url>http://(?P<ip>[^:\s]+):(?P<port>\d+)) ")


@dataclass
class FrontDoorProcess(LayerProcess):
    """A ``corral frontdoor`` started by ``launch_frontdoor``, in an OS process of its own."""

    ip: str
    port: int
    banner: str  # what it printed when ready

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{self.port}"


def launch_frontdoor(
    master: str,
    *,
    services: str | None = None,
    dns: str | None = None,
    ip: str = "127.0.0.1",
    port: int = 0,
    timeout: float = 30.0,
) -> FrontDoorProcess:
    """Start ``corral frontdoor`` (on ``port``, 0: a free one) and wait until it listens."""
    arguments = ["--master", master, "--ip", ip, "--port", str(port), "--log-level", "warning"]
    if services:
        arguments += ["--services", services]
    if dns:
        arguments += ["--dns", dns]
    process, ready, line = start_layer("frontdoor", arguments, READY, timeout)
    return FrontDoorProcess(process, ready["ip"], int(ready["port"]), line)


def launch_local_frontdoor(
    master: str, port: int, *, services: str | None = None, dns: str | None = None
) -> FrontDoorProcess:
    """``corral local``'s front door: on ``port`` of 127.0.0.1, or a free port when that one
    is taken (another cluster's front door, say); the banner then says so."""
    taken = port != 0 and not _free("127.0.0.1", port)
    door = launch_frontdoor(master, services=services, dns=dns, port=0 if taken else port)
    if taken:
        door.banner += f" (port {port} was taken; `corral local --frontdoor-port N` picks one)"
    return door


def _free(ip: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind((ip, port))
        except OSError:
            return False
    return True
