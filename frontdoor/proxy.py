"""The front door's HTTP server: one port, DC/OS's paths, each request forwarded to the part
of the cluster the routing table names, the answer streamed back as it arrives.

Why aiohttp and not nginx (DC/OS's Admin Router is nginx with Lua): aiohttp is already
Corral's HTTP stack, so ``make demo`` and the tests run on a machine with only python3, make
and a venv; the routes need logic nginx would need Lua for (an agent's address looked up in
the master's state by agent id, sentences naming which part is down and how to start it);
and at one port per cluster the proxy's cost is small next to the master's own (see
docs/frontdoor.md for the figures). Streams pass through unbuffered: each chunk read from
the upstream is written to the client at once (``iter_any``), with no read timeout, so the
master's RecordIO SUBSCRIBE and Marathon's Server-Sent Events flow as they are produced.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

import corral
from frontdoor import metadata
from frontdoor.headers import end_to_end, forwarded_for
from frontdoor.routes import (
    DESCRIPTIONS,
    Forward,
    ForwardToAgent,
    Local,
    NotFound,
    RoutingTable,
    Unconfigured,
    Upstream,
    agent_address,
    index_text,
    rewrite_location,
)

log = structlog.get_logger("frontdoor.proxy")

CONNECT_TIMEOUT = 5.0  # seconds to reach an upstream; a stream may then stay quiet forever
SHUTDOWN_GRACE = 1.0  # seconds answers under way get to finish when the front door stops
BODY_IN_MEMORY = 8 * 2**20  # request bodies of known length up to this are read whole


class FrontDoor:
    """One front door: ``start(ip, port)`` listens, ``stop()`` closes it (in reverse order:
    the listener, then the upstream connections). Runs in the caller's asyncio loop."""

    def __init__(self, addresses: dict[Upstream, str | None], dns_domain: str = "corral") -> None:
        if addresses.get(Upstream.MASTER) is None:
            raise ValueError("a front door needs the master's HTTP address (--master HOST:PORT)")
        self.table = RoutingTable(addresses, dns_domain)
        self.master = addresses[Upstream.MASTER]
        self.port: int | None = None
        self._ip = "127.0.0.1"
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None

    async def start(self, ip: str, port: int) -> int:
        """Listen on ``ip:port`` (0: a free port); the port listened on."""
        if self._runner is not None:
            raise RuntimeError("this FrontDoor is already started; start() it once")
        self._ip = ip
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT),
            auto_decompress=False,  # bytes pass as the upstream wrote them
            cookie_jar=aiohttp.DummyCookieJar(),  # cookies are the client's, not ours
        )
        app = web.Application(client_max_size=BODY_IN_MEMORY)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # A client that hangs up cancels its handler, which closes the upstream request: a
        # stream nobody reads is not kept open upstream. On stop, open streams are cut
        # after SHUTDOWN_GRACE rather than waited for (they never end by themselves).
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, handler_cancellation=True
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, ip, port, shutdown_timeout=SHUTDOWN_GRACE)
        try:
            await site.start()
        except BaseException:
            await self.stop()
            raise
        self.port = self._runner.addresses[0][1]
        routes = {upstream.value: address for upstream, address in self.table.addresses.items()}
        log.info("frontdoor_started", address=f"{ip}:{self.port}", routes=routes)
        return self.port

    async def stop(self) -> None:
        """Close the listener, then the upstream connections; both run even if one fails."""
        errors: list[BaseException] = []
        if self._runner is not None:
            try:
                await self._runner.cleanup()
            except Exception as error:  # collected; the first is raised below
                errors.append(error)
        if self._session is not None:
            try:
                await self._session.close()
            except Exception as error:
                errors.append(error)
        if errors:
            raise errors[0]

    # -- one request ----------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        # Routed and forwarded as sent (still percent-encoded): an app id's %2F stays one.
        decision = self.table.resolve(request.rel_url.raw_path)
        if isinstance(decision, Local):
            return self._local(request, decision.path)
        if isinstance(decision, NotFound):
            return _sentence(404, decision.sentence())
        if isinstance(decision, Unconfigured):
            return _sentence(502, decision.sentence())
        if isinstance(decision, ForwardToAgent):
            found = await self._find_agent(decision.agent_id)
            if isinstance(found, web.Response):
                return found
            what = f"agent {decision.agent_id} at {found}"
            start = "`corral agents` lists the agents the master knows and whether they are up"
            return await self._forward(request, decision.at(found), what, start)
        name, start = DESCRIPTIONS[decision.upstream]
        return await self._forward(request, decision, f"{name} at {decision.address}", start)

    def _local(self, request: web.Request, path: str) -> web.Response:
        if path == "/":
            body = "Corral's front door (DC/OS's paths on one port):\n" + index_text()
            return web.Response(text=body)
        if path == "/dcos-metadata/dcos-version.json":
            return web.json_response(metadata.dcos_version(corral.__version__))
        if path == "/metadata":
            return web.json_response(metadata.cluster_metadata(self.master, self._ip))
        return web.json_response({})  # /pkgpanda/...: 200, no login wanted

    async def _find_agent(self, agent_id: str) -> str | web.Response:
        url = f"http://{self.master}/master/slaves"
        try:
            async with self._session.get(url) as response:
                slaves = json.loads(await response.read())
        except (aiohttp.ClientError, OSError, ValueError) as error:
            name, start = DESCRIPTIONS[Upstream.MASTER]
            return _sentence(
                502, f"{name} at {self.master} does not answer ({_reason(error)}): {start}."
            )
        address = agent_address(slaves, agent_id)
        if address is None:
            return _sentence(
                404,
                f"the master knows no agent {agent_id}; `corral agents` (or `dcos node`) lists "
                "the agents and their ids.",
            )
        return address

    async def _forward(
        self, request: web.Request, route: Forward, what: str, start: str
    ) -> web.StreamResponse:
        headers = CIMultiDict(end_to_end(request.headers.items(), drop=("host",)))
        headers["X-Forwarded-For"] = forwarded_for(
            request.headers.get("X-Forwarded-For"), request.remote
        )
        headers["X-Forwarded-Proto"] = request.scheme
        headers["X-Forwarded-Host"] = request.host
        headers["X-Forwarded-Prefix"] = route.prefix
        body: Any = None
        if request.body_exists:
            known = request.content_length is not None
            body = await request.read() if known else request.content  # chunked: streamed
            if known:
                headers.pop("Content-Length", None)  # aiohttp sets it for the bytes
        url = URL.build(
            scheme="http",
            authority=route.address,
            path=route.path,
            query_string=request.rel_url.raw_query_string,
            encoded=True,
        )
        try:
            upstream = await self._session.request(
                request.method,
                url,
                headers=headers,
                data=body,
                allow_redirects=False,
                skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            log.info("frontdoor_upstream_down", upstream=what, url=str(url), error=_reason(error))
            return _sentence(502, f"{what} does not answer ({_reason(error)}): {start}.")
        try:
            answered = await self._relay(request, upstream, route)
        except BaseException:  # the client hung up (cancelled), or a bug: drop the upstream
            upstream.close()
            raise
        upstream.release()  # read to its end: the connection goes back to the pool
        return answered

    async def _relay(
        self, request: web.Request, upstream: aiohttp.ClientResponse, route: Forward
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for name, value in end_to_end(upstream.headers.items()):
            if name.lower() == "location":
                value = rewrite_location(value, route.address, route.prefix)
            response.headers.add(name, value)
        if upstream.headers.get("Content-Length") is None:
            response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)  # at once: streams are not held back
        except (aiohttp.ClientError, OSError) as error:
            # The upstream went away mid-answer: the client sees the answer cut short (as
            # with any proxy); nothing can be said in a response already begun.
            log.info("frontdoor_stream_cut", url=str(upstream.url), error=_reason(error))
            return response
        await response.write_eof()
        return response


def _sentence(status: int, text: str) -> web.Response:
    """An error as the front door says it: a sentence, plain text, ending in a newline."""
    return web.Response(status=status, text=text if text.endswith("\n") else text + "\n")


def _reason(error: BaseException) -> str:
    if isinstance(error, aiohttp.ClientConnectorError):
        cause = error.os_error
        return os.strerror(cause.errno) if cause.errno else str(cause)
    if isinstance(error, TimeoutError):
        return f"no connection within {CONNECT_TIMEOUT:g} s"
    return str(error) or type(error).__name__


def serve(
    addresses: dict[Upstream, str | None],
    ip: str,
    port: int,
    on_ready: Callable[[FrontDoor], None],
    dns_domain: str = "corral",
) -> int:
    """Run a front door until SIGINT or SIGTERM; ``on_ready(front_door)`` once it listens."""
    import signal

    try:
        import uvloop
    except ImportError:  # not on Linux: the standard loop
        uvloop = None

    async def main() -> None:
        door = FrontDoor(addresses, dns_domain)
        await door.start(ip, port)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping.set)
        try:
            on_ready(door)
            await stopping.wait()
        finally:
            await door.stop()

    if uvloop is not None:
        uvloop.run(main())
    else:
        asyncio.run(main())
    return 0
