"""``corral dns``: Mesos-DNS's names for the cluster, live from the master's event stream."""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass

from corral.cli.layer_process import LayerProcess, start_layer

DESCRIPTION = """\
A DNS server for the cluster's tasks, with Mesos-DNS's names under --domain:
  task.framework.DOMAIN          A/AAAA: the task's container address, else its agent's
  task.framework.slave.DOMAIN    A: the agent's address
  _task._tcp.framework.DOMAIN    SRV: the task's ports (DiscoveryInfo's, else its `ports`)
  leader.DOMAIN, master.DOMAIN, slave.DOMAIN, agent.DOMAIN, and SOA and NS at DOMAIN
Records follow the master's v1 operator SUBSCRIBE stream: a task is named within a second
of TASK_RUNNING and forgotten within a second of its end. Names outside DOMAIN go to
--resolvers, or are REFUSED. Mesos-DNS's HTTP API (/v1/...) and /metrics are on --http-port.
See docs/dns.md."""


def add_parser(commands: argparse._SubParsersAction) -> None:
    dns = commands.add_parser(
        "dns",
        help="serve Mesos-DNS's names for the cluster's tasks",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dns.add_argument("--master", default="127.0.0.1:5050", help="the master's HTTP host:port")
    dns.add_argument("--domain", default="corral", help="the zone answered (default: corral)")
    dns.add_argument("--ip", default="127.0.0.1", help="address to listen on (DNS and HTTP)")
    dns.add_argument(
        "--port", type=int, default=53, help="DNS port, UDP and TCP (default 53; 0: a free one)"
    )
    dns.add_argument(
        "--http-port",
        type=int,
        default=8123,
        help="HTTP port of the /v1 API and /metrics (default 8123; 0: a free one)",
    )
    dns.add_argument(
        "--resolvers",
        nargs="*",
        default=[],
        metavar="HOST[:PORT]",
        help="servers asked for names outside the domain, in order (default: none, REFUSED)",
    )
    dns.add_argument("--ttl", type=int, default=60, help="seconds, of every record (default 60)")
    dns.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each resolver")
    dns.add_argument(
        "--ip-sources",
        default="netinfo,mesos,host",
        help="where a task's address comes from, first that has one (default: netinfo,mesos,host)",
    )
    dns.add_argument(
        "--enforce-rfc952",
        action="store_true",
        help="labels by RFC 952 (24 characters, a letter first) instead of RFC 1123",
    )
    dns.add_argument(
        "--client-rate",
        type=float,
        default=5000.0,
        help="queries per second one client address may send; more are dropped and counted "
        "(default 5000; 0: no limit)",
    )
    dns.add_argument(
        "--client-burst",
        type=float,
        default=10000.0,
        help="queries one client may send at once (default 10000)",
    )
    dns.add_argument("--log-level", default="info")


def run(args: argparse.Namespace) -> int:
    from libprocess import log as logsetup
    from nameserver import Nameserver, NameserverOptions
    from nameserver.options import OptionsError
    from nameserver.service import serve

    logsetup.configure(args.log_level)
    try:
        options = NameserverOptions(
            master=args.master,
            domain=args.domain,
            ip=args.ip,
            port=args.port,
            http_port=args.http_port,
            resolvers=tuple(args.resolvers),
            ttl=args.ttl,
            forward_timeout=args.timeout,
            ip_sources=tuple(s.strip() for s in args.ip_sources.split(",") if s.strip()),
            enforce_rfc952=args.enforce_rfc952,
            client_rate=args.client_rate,
            client_burst=args.client_burst,
        )
    except OptionsError as error:
        print(f"corral dns: {error}", file=sys.stderr)
        return 2

    def ready(server: Nameserver) -> None:
        print(
            f"dns serving {options.ip}:{server.dns.port} (udp, tcp) for {options.domain}., "
            f"http://{options.ip}:{server.http.port}, following master {options.master}",
            flush=True,
        )

    try:
        return serve(options, ready)
    except OptionsError as error:
        print(f"corral dns: {error}", file=sys.stderr)
        return 2
    except PermissionError as error:
        print(
            f"corral dns: cannot listen on {options.ip}:{options.port} ({error}); ports below "
            "1024 need root: pass e.g. --port 8053",
            file=sys.stderr,
        )
        return 1
    except OSError as error:
        print(f"corral dns: cannot listen on {options.ip}: {error}", file=sys.stderr)
        return 1


READY = re.compile(r"^dns serving (?P<ip>\S+):(?P<port>\d+) .* http://\S+:(?P<http>\d+),")


@dataclass
class DnsProcess(LayerProcess):
    """A ``corral dns`` started by ``launch_dns``, in an OS process of its own."""

    ip: str
    port: int
    http_port: int
    banner: str  # what it printed when ready


def launch_dns(
    master: str, *arguments: str, ip: str = "127.0.0.1", timeout: float = 30.0
) -> DnsProcess:
    """Start ``corral dns --master MASTER --ip IP --port 0 --http-port 0 ARGUMENTS…`` (free
    ports, unless ARGUMENTS name others) and wait until it listens."""
    flags = ["--master", master, "--ip", ip, "--port", "0", "--http-port", "0"]
    flags += ["--log-level", "warning", *arguments]
    process, ready, line = start_layer("dns", flags, READY, timeout)
    return DnsProcess(process, ip, int(ready["port"]), int(ready["http"]), line)
