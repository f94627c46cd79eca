"""The runtime's HTTP server (aiohttp): process routes at ``/<id><path>``, and metrics.

Requests are handed to the owning process as a dispatch, so a route handler runs
inside its process like any other event and may read its state without locks; a route
installed with ``ahead=True`` is dispatched before the events already queued (reads that
must answer however busy the process is). The
request body is read before the dispatch (a handler cannot await): ``request_body``
gives it to the handler.

A handler answers with an aiohttp response, a Future of one, or a ``Stream``: a chunked
response that stays open, which the process writes to whenever it likes (Mesos's v1
SUBSCRIBE calls). The server sends what is written, in order, until the process closes the
stream or the client goes away; then the stream's ``on_close`` runs inside the process.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from aiohttp import web

from libprocess.host import ProcessTerminated

if TYPE_CHECKING:
    from libprocess.future import Future
    from libprocess.metrics import Metrics
    from libprocess.process import Process
    from libprocess.upid import UPID

log = structlog.get_logger("libprocess.http")

_LISTED_PROCESSES = 20  # at most this many known processes named in a 404

# Where the body read for a route handler is kept on its request (a typed key where
# aiohttp has them, which it asks for; a plain string on older versions).
_BODY = web.RequestKey("body", bytes) if hasattr(web, "RequestKey") else "libprocess_body"


def request_body(request: web.BaseRequest) -> bytes:
    """The body of a request handed to a process route (``b""`` if it had none).

    Route handlers run inside their process and cannot await ``request.read()``; the
    server reads the body before it dispatches the request.
    """
    try:
        return request[_BODY]
    except KeyError:
        raise LookupError(
            "this request has no body read for it: request_body() works on requests that "
            "the runtime's HTTP server handed to a process route"
        ) from None


class Stream:
    """A streaming HTTP response: return it from a route handler, then ``write`` to it.

    Use it from inside the process that returned it (the runtime's loop). ``write`` queues
    bytes and never blocks; it returns False once the stream is closed (by ``close`` or by the
    client leaving), after which the process should forget it. ``on_close`` runs inside the
    process exactly once, however the stream ended.
    """

    def __init__(
        self,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.status = status
        self.headers = dict(headers or {})
        self.content_type = content_type
        self.on_close = on_close
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._closed = False
        self.written = 0  # bytes handed to the client so far

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, data: bytes) -> bool:
        if self._closed:
            return False
        self._queue.put_nowait(bytes(data))
        return True

    def close(self) -> None:
        """End the response once what was written is sent."""
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(None)


class Served(Protocol):
    """What the HTTP server asks of the runtime whose processes it serves (a ``Runtime``)."""

    metrics: Metrics
    # Absolute HTTP paths served by a process route: path -> (process id, route path).
    http_aliases: dict[str, tuple[str, str]]

    def process(self, ident: str) -> Process | None: ...

    def processes(self) -> list[UPID]: ...

    def dispatch(self, target: Process, method: Callable, *args: Any) -> Future[Any]: ...

    def dispatch_ahead(self, target: Process, method: Callable, *args: Any) -> Future[Any]: ...


class HttpServer:
    """setup → start → stop, one method each, on the runtime's loop."""

    def __init__(self, runtime: Served) -> None:
        self._runtime = runtime
        self._runner: web.AppRunner | None = None
        self._streams: set[Stream] = set()  # open ones: ended first when the server stops
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
        bound_port = self._runner.addresses[0][1]  # the real port when 0 was asked
        return f"{host}:{bound_port}"

    async def stop(self) -> None:
        for stream in list(self._streams):  # else each would hold the shutdown up
            stream.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        snapshot = self._runtime.metrics.snapshot()
        return web.Response(text=json.dumps(snapshot), content_type="application/json")

    async def _process_route(self, request: web.Request) -> web.StreamResponse:
        runtime = self._runtime
        # A trailing slash is ignored, as Mesos's HTTP server does (its CLI asks for
        # /master/frameworks/).
        public = request.path.rstrip("/") or "/"
        alias = runtime.http_aliases.get(public)
        if alias is not None:
            ident, path = alias
        else:
            ident = request.match_info["process"]
            path = "/" + request.match_info.get("path", "").rstrip("/")
        process = runtime.process(ident)
        if process is None:
            raise web.HTTPNotFound(text=self._unknown_process(ident))
        routes = process.routes
        route = routes.get(path)
        if route is None:
            known = ", ".join(sorted(routes)) or "none"
            raise web.HTTPNotFound(
                text=f"process {ident!r} has no route {path!r} (it has: {known})\n"
            )
        handler, _ = route
        request[_BODY] = await request.read() if request.body_exists else b""
        dispatch = runtime.dispatch_ahead if path in process.ahead_routes else runtime.dispatch
        future: Future = dispatch(process, handler, request)
        try:
            response = await future
        except web.HTTPException:
            raise
        except ProcessTerminated:
            raise web.HTTPServiceUnavailable(
                text=f"process {ident!r} terminated before it answered {path!r}; "
                "retry once it (or its replacement) runs again\n"
            ) from None
        except Exception as error:
            log.exception("http_route_failed", process=ident, path=path)
            raise web.HTTPInternalServerError(
                text=f"route {path!r} of process {ident!r} failed: "
                f"{type(error).__name__}: {error} (the traceback is in the runtime's log)\n"
            ) from None
        if isinstance(response, Stream):
            return await self._stream(request, process, response)
        if not isinstance(response, web.StreamResponse):
            log.error(
                "http_route_bad_response", process=ident, path=path, got=type(response).__name__
            )
            raise web.HTTPInternalServerError(
                text=f"route {path!r} of process {ident!r} returned a "
                f"{type(response).__name__}, not an HTTP response; it must return an "
                "aiohttp.web.StreamResponse (such as web.Response) or a Future of one\n"
            )
        return response

    async def _stream(self, request: web.Request, process, stream: Stream) -> web.StreamResponse:
        response = web.StreamResponse(status=stream.status, headers=stream.headers)
        response.content_type = stream.content_type
        response.enable_chunked_encoding()
        self._streams.add(stream)
        try:
            await response.prepare(request)
            while (data := await stream._queue.get()) is not None:
                await response.write(data)
                stream.written += len(data)
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError) as error:
            log.debug("http_stream_ended", process=process.pid.id, reason=repr(error))
            if isinstance(error, asyncio.CancelledError):
                raise
        finally:
            self._streams.discard(stream)
            stream._closed = True
            if stream.on_close is not None:
                self._runtime.dispatch(process, stream.on_close)
        return response

    def _unknown_process(self, ident: str) -> str:
        """A 404 text naming the routes that are served, so that a typo is easy to spot."""
        runtime = self._runtime
        served = sorted(
            f"/{pid.id}{path}"
            for pid in runtime.processes()
            if (process := runtime.process(pid.id)) is not None
            for path in process.routes
        )
        listed = ", ".join([*served[:_LISTED_PROCESSES], "/metrics/snapshot"])
        if len(served) > _LISTED_PROCESSES:
            listed += f" (and {len(served) - _LISTED_PROCESSES} more process routes)"
        return f"no process {ident!r} runs here; routes served: {listed}\n"
