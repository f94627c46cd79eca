"""Mesos-DNS's HTTP API (``/v1/version``, ``/v1/config``, ``/v1/hosts/{host}``,
``/v1/services/{service}``, ``/v1/enumerate``) and ``/metrics``, over aiohttp.

As in Mesos-DNS, names are looked up in the domain only (a bare ``web.app`` means
``web.app.<domain>.``), and a name with nothing answers one entry of empty strings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from corral import __version__
from nameserver.cluster_state import ClusterState
from nameserver.metrics import Counters
from nameserver.records import RecordType


class HttpApi:
    """setup → start → stop, as aiohttp's runner."""

    def __init__(
        self,
        state: ClusterState,
        counters: Counters,
        config: Callable[[], dict[str, Any]],
        status: Callable[[], dict[str, Any]],
    ) -> None:
        self.state = state
        self.counters = counters
        self.config = config
        self.status = status
        self.port = 0
        app = web.Application()
        app.router.add_get("/v1/version", self._version)
        app.router.add_get("/v1/config", lambda _: web.json_response(self.config()))
        app.router.add_get("/v1/hosts/{host}", self._hosts)
        app.router.add_get("/v1/services/{service}", self._services)
        app.router.add_get("/v1/enumerate", lambda _: web.json_response(state.enumerate()))
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)

    async def start(self, ip: str, port: int) -> int:
        await self._runner.setup()
        site = web.TCPSite(self._runner, ip, port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self.port

    async def stop(self) -> None:
        await self._runner.cleanup()

    def _absolute(self, name: str) -> str:
        name = name.lower().rstrip(".") + "."
        tail = f".{self.state.domain}."
        return name if name.endswith(tail) else name[:-1] + tail

    async def _version(self, _: web.Request) -> web.Response:
        return web.json_response(
            {
                "Service": "corral dns (Mesos-DNS's API)",
                "URL": "docs/dns.md",
                "Version": __version__,
            }
        )

    async def _hosts(self, request: web.Request) -> web.Response:
        name = self._absolute(request.match_info["host"])
        table = self.state.table
        found = [
            {"host": name, "ip": address}
            for kind in (RecordType.A, RecordType.AAAA)
            for address in table.lookup(name, kind)
        ]
        return web.json_response(found or [{"host": "", "ip": ""}])

    async def _services(self, request: web.Request) -> web.Response:
        name = self._absolute(request.match_info["service"])
        table = self.state.table
        found = []
        for value in table.lookup(name, RecordType.SRV):
            target, _, port = value.rpartition(":")
            for address in table.lookup(target, RecordType.A) or [""]:
                found.append({"service": name, "host": target, "ip": address, "port": port})
        return web.json_response(found or [{"service": "", "host": "", "ip": "", "port": ""}])

    async def _metrics(self, _: web.Request) -> web.Response:
        body: dict[str, Any] = self.counters.snapshot()
        body.update(self.status())
        return web.json_response(body)
