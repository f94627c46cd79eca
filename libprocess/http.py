"""The runtime's HTTP server (aiohttp): process routes at ``/<id><path>``, and metrics.

Requests are handed to the owning process as a dispatch, so a route handler runs
inside its process like any other event and may read its state without locks.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import structlog
from aiohttp import web

from libprocess.future import Future

if TYPE_CHECKING:
    from libprocess.runtime import Runtime

log = structlog.get_logger("libprocess.http")


class HttpServer:
    """setup → start → stop, one method each, on the runtime's loop."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._runner: web.AppRunner | None = None
        app = web.Application()
        app.router.add_get("/metrics/snapshot", self._metrics)
        app.router.add_route("*", "/{process}", self._process_route)
        app.router.add_route("*", "/{process}/{path:.*}", self._process_route)
        self._app = app

    async def start(self, host: str, port: int) -> str:
        """Listen; returns the ``host:port`` actually bound."""
        if self._runner is not None:
            raise RuntimeError("the HTTP server is already started")
        self._runner = web.AppRunner(self._app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError as error:
            await self._runner.cleanup()
            self._runner = None
            raise OSError(
                f"cannot serve HTTP on {host}:{port} ({error.strerror}); "
                "choose another port, or 0 for any"
            ) from None
        bound_port = site._server.sockets[0].getsockname()[1]  # the real port when 0 was asked
        return f"{host}:{bound_port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        snapshot = self._runtime.metrics.snapshot()
        return web.Response(text=json.dumps(snapshot), content_type="application/json")

    async def _process_route(self, request: web.Request) -> web.StreamResponse:
        ident = request.match_info["process"]
        path = "/" + request.match_info.get("path", "")
        runtime = self._runtime
        process = runtime._processes.get(ident)
        if process is None:
            raise web.HTTPNotFound(text=f"no process {ident!r} runs here\n")
        route = process._routes.get(path)
        if route is None:
            known = ", ".join(sorted(process._routes)) or "none"
            raise web.HTTPNotFound(
                text=f"process {ident!r} has no route {path!r} (it has: {known})\n"
            )
        handler, _ = route
        future: Future = runtime.dispatch(process, handler, request)
        try:
            response = await future
        except web.HTTPException:
            raise
        except Exception as error:
            log.exception("http_route_failed", process=ident, path=path)
            raise web.HTTPInternalServerError(
                text=f"route {path!r} of process {ident!r} failed: {error}\n"
            ) from None
        if not isinstance(response, web.StreamResponse):
            log.error(
                "http_route_bad_response", process=ident, path=path, got=type(response).__name__
            )
            raise web.HTTPInternalServerError(
                text=f"route {path!r} of process {ident!r} returned no HTTP response\n"
            )
        return response
