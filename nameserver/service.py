"""The whole server: the follower keeps the records, DNS and HTTP answer from them.

``Nameserver`` runs inside an asyncio loop: ``start()`` binds DNS (UDP and TCP) and HTTP and
starts following the master; ``stop()`` undoes it in reverse order. ``serve(options)`` runs one
in the foreground until SIGINT or SIGTERM (``corral dns``).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any

import structlog

from nameserver.answers import Answerer
from nameserver.cluster_state import ClusterState
from nameserver.flood_guard import FloodGuard
from nameserver.follower import Follower
from nameserver.forwarding import Forwarder
from nameserver.http_api import HttpApi
from nameserver.metrics import Counters
from nameserver.options import NameserverOptions, OptionsError
from nameserver.records import RecordTable
from nameserver.server import DnsServer

log = structlog.get_logger("nameserver.service")


class Nameserver:
    """See the module docstring."""

    def __init__(self, options: NameserverOptions) -> None:
        self.options = options
        self.counters = Counters()
        self.table = RecordTable()
        listener = options.ip if options.ip not in ("0.0.0.0", "::") else None
        self.state = ClusterState(
            options.domain,
            self.table,
            ip_sources=options.ip_sources,
            enforce_rfc952=options.enforce_rfc952,
            nameserver=(options.soa_mname, listener) if listener else None,
        )
        self.answerer = Answerer(self.table, options, self.counters)
        self.dns = DnsServer(
            self.answerer,
            Forwarder(options.resolver_addresses, options.forward_timeout),
            FloodGuard(options.client_rate, options.client_burst),
            self.counters,
            options.tcp_idle_timeout,
        )
        self.follower = Follower(options.master, self.state, self.counters, options.reconnect_max)
        self.http = HttpApi(
            self.state,
            self.counters,
            lambda: options.mesos_dns_config(self.dns.port, self.http.port),
            self._status,
        )
        self._started = False

    async def start(self) -> None:
        if self._started:
            raise RuntimeError("this Nameserver is already started; start() it once")
        self._started = True
        port = await self.dns.start(self.options.ip, self.options.port)
        if (self.options.ip, port) in self.options.resolver_addresses:
            await self.dns.stop()
            raise OptionsError(
                f"--resolvers names this server itself ({self.options.ip}:{port}): queries "
                "for other zones would go round in a loop; name another server"
            )
        try:
            await self.http.start(self.options.ip, self.options.http_port)
        except BaseException:
            await self.dns.stop()
            raise
        self.follower.start()
        log.info(
            "nameserver_started",
            dns=f"{self.options.ip}:{self.dns.port}",
            http=f"{self.options.ip}:{self.http.port}",
            master=self.options.master,
        )

    async def stop(self) -> None:
        """Stop following, then HTTP, then DNS; every step runs even if one fails."""
        errors = []
        for step in (self.follower.stop, self.http.stop, self.dns.stop):
            try:
                await step()
            except Exception as error:  # collected; the first is raised below
                errors.append(error)
        if errors:
            raise errors[0]

    def _status(self) -> dict[str, Any]:
        return {
            "dns/stream_connected": int(self.follower.connected.is_set()),
            "dns/tasks": len(self.state.tasks),
            "dns/agents": len(self.state.agents),
            "dns/frameworks": len(self.state.frameworks),
            "dns/names": self.table.names(),
            "dns/records": len(self.table),
            "dns/serial": self.table.generation,
        }


def serve(options: NameserverOptions, on_ready: Callable[[Nameserver], None]) -> int:
    """Run a nameserver until SIGINT or SIGTERM; ``on_ready`` is called once it listens."""
    try:
        import uvloop
    except ImportError:  # not on Linux: the standard loop
        uvloop = None

    async def main() -> None:
        server = Nameserver(options)
        await server.start()
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping.set)
        try:
            on_ready(server)
            stop = loop.create_task(stopping.wait())
            failed = loop.create_task(server.follower.wait_failed())
            await asyncio.wait((stop, failed), return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if failed.done():
                failed.result()  # the follower's bug: raise it (the process exits with it)
            failed.cancel()
        finally:
            await server.stop()

    if uvloop is not None:
        uvloop.run(main())
    else:
        asyncio.run(main())
    return 0
