"""The actor: a ``Process`` with a mailbox, served one event at a time.

Subclasses install message handlers (``@handler("name")`` or ``install``), may
route HTTP paths (``@route("/path")`` or ``route``), and react to lifecycle hooks.
Every hook and handler runs on the runtime's loop thread, one at a time, never
concurrently with another event of the same process — so no locks are needed
inside a process. Handlers must not block: long work returns a Future, and its
continuation comes back in through ``defer``.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from libprocess.async_work import AsyncWork
from libprocess.host import ProcessState
from libprocess.mailbox import Mailbox
from libprocess.upid import UPID, InvalidUPID

if TYPE_CHECKING:
    from libprocess.clock import Timer
    from libprocess.future import Future
    from libprocess.host import Host

__all__ = ["Process", "ProcessState", "handler", "route"]

MessageHandler = Callable[[UPID | None, Any], Any]
T = TypeVar("T")


def handler(name: str) -> Callable[[Callable], Callable]:
    """Mark a method as the handler of messages called ``name``: ``method(self, sender, body)``."""

    def mark(method: Callable) -> Callable:
        method.__libprocess_message__ = name
        return method

    return mark


def route(path: str, description: str = "") -> Callable[[Callable], Callable]:
    """Mark a method as the HTTP handler of ``/<process id><path>``.

    The method runs inside the process with an ``aiohttp.web.Request`` and returns an
    ``aiohttp.web.StreamResponse`` or a Future of one. It cannot await, so the request
    body has been read for it: ``libprocess.http.request_body(request)`` returns it.
    Raising an ``aiohttp.web.HTTPException`` answers with it; any other error is a 500.
    """
    if not path.startswith("/"):
        raise ValueError(f"an HTTP route starts with '/', got {path!r}")

    def mark(method: Callable) -> Callable:
        method.__libprocess_route__ = (path, description)
        return method

    return mark


class Process:
    """Base class of actors. Override the hooks; call the rest.

    ``mailbox`` is the runtime's record of the process (its queued events, pid, state,
    links and async work): the process reads its identity from it, only the runtime
    changes it.
    """

    _class_handlers: dict[str, str] = {}
    _class_routes: dict[str, tuple[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers = dict(cls._class_handlers)
        routes = dict(cls._class_routes)
        for attr, value in vars(cls).items():
            name = getattr(value, "__libprocess_message__", None)
            if name is not None:
                _refuse_coroutine(value, f"message handler {name!r}")
                handlers[name] = attr
            path = getattr(value, "__libprocess_route__", None)
            if path is not None:
                _refuse_coroutine(value, f"HTTP route {path[0]!r}")
                routes[path[0]] = (attr, path[1])
        cls._class_handlers = handlers
        cls._class_routes = routes

    def __init__(self, id: str | None = None) -> None:
        if id is not None:
            _check_id(id)
        self.mailbox = Mailbox(
            id, {name: getattr(self, attr) for name, attr in self._class_handlers.items()}
        )
        self._routes: dict[str, tuple[Callable, str]] = {
            path: (getattr(self, attr), description)
            for path, (attr, description) in self._class_routes.items()
        }
        self._ahead_routes: set[str] = set()

    # -- identity -------------------------------------------------------------------

    @property
    def pid(self) -> UPID:
        pid = self.mailbox.pid
        if pid is None:
            raise RuntimeError(f"{type(self).__name__} has no pid until it is spawned")
        return pid

    @property
    def runtime(self) -> Host:
        """The runtime hosting this process (a ``libprocess.Runtime``)."""
        host = self.mailbox.host
        if host is None:
            raise RuntimeError(f"{type(self).__name__} is not spawned in a runtime yet")
        return host

    @property
    def state(self) -> str:
        """``created``, ``running`` or ``terminated``."""
        return self.mailbox.state

    @property
    def routes(self) -> Mapping[str, tuple[Callable, str]]:
        """The HTTP routes this process serves: path -> (handler, description)."""
        return MappingProxyType(self._routes)

    def __repr__(self) -> str:
        mailbox = self.mailbox
        return f"<{type(self).__name__} {mailbox.pid or mailbox.requested_id or '(unspawned)'}>"

    # -- hooks ------------------------------------------------------------------------

    def initialize(self) -> None:
        """Runs inside the process as its first event, after ``spawn``.

        If it raises, the error is logged and the process is terminated.
        """

    def finalize(self) -> None:
        """Runs inside the process as its last event, when it terminates.

        Pending dispatches have already failed with ``ProcessTerminated``. If it raises,
        the error is logged and termination completes anyway.
        """

    def exited(self, pid: UPID) -> None:
        """Runs inside the process when a linked process ends or its runtime is lost."""

    def unhandled(self, sender: UPID | None, name: str, body: Any) -> None:
        """Runs for a message with no installed handler; the default counts and logs it."""
        self.runtime.unhandled_message(self, sender, name)

    # -- installing -------------------------------------------------------------------

    def install(self, name: str, handler: MessageHandler) -> None:
        """Handle messages called ``name`` with ``handler(sender, body)``."""
        if not callable(handler):
            raise TypeError(f"message {name!r} needs a callable handler, got {handler!r}")
        _refuse_coroutine(handler, f"message handler {name!r}")
        self.mailbox.handlers[name] = handler

    def route(
        self, path: str, handler: Callable, description: str = "", *, ahead: bool = False
    ) -> None:
        """Serve HTTP requests for ``/<id><path>`` with ``handler(request)``.

        ``ahead``: each request is served before the events already queued for the process
        (``Runtime.dispatch_ahead``), for reads that must answer in time however far behind
        the process is (a busy master's ``/master/state``); still one event at a time.
        """
        if not path.startswith("/"):
            raise ValueError(f"an HTTP route starts with '/', got {path!r}")
        if not callable(handler):
            raise TypeError(f"HTTP route {path!r} needs a callable handler, got {handler!r}")
        _refuse_coroutine(handler, f"HTTP route {path!r}")
        self._routes[path] = (handler, description)
        if ahead:
            self._ahead_routes.add(path)
        else:
            self._ahead_routes.discard(path)

    @property
    def ahead_routes(self) -> frozenset[str]:
        """The paths of the routes served ahead of the queued events (``route(ahead=True)``)."""
        return frozenset(self._ahead_routes)

    def alias(self, public_path: str, path: str) -> None:
        """Serve this process's route ``path`` also at ``public_path`` (e.g. Mesos's
        ``/version`` for the master's ``/version``); call it once the process runs."""
        self.runtime.http_aliases[public_path] = (self.pid.id, path)

    # -- acting ---------------------------------------------------------------------

    def send(self, to: UPID | str, name: str, body: Any = None) -> None:
        """Fire and forget; ordered with respect to this process's earlier sends to ``to``."""
        mailbox = self.mailbox
        if mailbox.host is None:
            raise RuntimeError(f"{type(self).__name__} is not spawned in a runtime yet")
        mailbox.host.send(to, name, body, mailbox.pid)

    def link(self, pid: UPID | str) -> None:
        """Get ``exited(pid)`` once when ``pid`` ends or the connection to its runtime breaks.

        Meant to be called inside the process; from another thread it is handed to the loop.
        """
        self.runtime.link(self, UPID(pid))

    def unlink(self, pid: UPID | str) -> None:
        """Stop watching ``pid``: no ``exited`` for it unless linked again."""
        self.runtime.unlink(self, UPID(pid))

    def delay(self, seconds: float, method: Callable | str, *args: Any, **kwargs: Any) -> Timer:
        """Run ``method(*args)`` inside this process after ``seconds`` of runtime clock time."""
        runtime = self.runtime
        return runtime.timers.schedule(
            seconds, lambda: runtime.dispatch(self, method, *args, **kwargs)
        )

    def defer(self, fn: Callable[..., Any]) -> Callable[..., Future[Any]]:
        """Wrap ``fn`` so that calling it, from anywhere, runs it inside this process.

        ``future.then(self.defer(self._on_result))`` brings a continuation back in.
        """
        runtime = self.runtime
        return lambda *args, **kwargs: runtime.dispatch(self, fn, *args, **kwargs)

    def run_async(self, awaitable: Awaitable[T]) -> Future[T]:
        """Run ``awaitable`` on the runtime's loop as work owned by this process.

        For what a handler must not wait for (a subprocess, a file, a socket, a thread). The
        returned future completes *inside this process*, as one of its events, so callbacks
        registered on it (``on_ready``, ``on_failed``, ``on_any``, ``then``) run like a
        handler: on the loop thread, one at a time with the process's other events.

        - If this process terminates first, the work is cancelled and the future fails with
          ``ProcessTerminated``, during the process's last event (before ``finalize``).
        - A failure that arrives with no callback registered and nobody awaiting is logged as
          an error, ``async_work_failed``, naming the process and the work; never dropped.
          (A cancellation at termination that nobody listens for is logged at info,
          ``async_work_cancelled``.) Futures made from it by ``then`` follow the same rule.
        - A callback that raises is reported as a failed handler of this process
          (``handler_failed``, counted in ``libprocess/handler_errors``); the process keeps
          serving.
        - ``discard()`` on the future cancels the work; the future is then discarded, unless
          the work had already finished.

        ``awaitable`` is a coroutine, or a future of the runtime's loop (an asyncio future or
        task, a libprocess Future). Call ``run_async`` inside the process. From another
        thread the start is handed to the loop and the future returned at once; it still
        completes inside the process, but a callback registered on that thread after it
        completed runs at once, on that thread, as with any completed future.
        """
        work = AsyncWork(self, self.mailbox.work, awaitable)
        self.runtime.call_on_loop(work.start)
        return work.future

    def terminate(self) -> None:
        """End this process after the current event; pending events are not served."""
        self.runtime.terminate(self)


def _refuse_coroutine(fn: Callable, what: str) -> None:
    if inspect.iscoroutinefunction(fn):
        raise TypeError(
            f"{what} is a coroutine function; handlers must not block the process. "
            "Make it a plain method that returns a Future, or continue with defer(); "
            "run what must be awaited with run_async()"
        )


def _check_id(ident: str) -> None:
    """Refuse, at construction, an id that could not be part of a UPID."""
    problem = None
    if not isinstance(ident, str) or not ident:
        problem = "it is empty or not a string"
    elif "/" in ident:
        problem = "it contains '/' (ids are one path segment of HTTP routes)"
    else:
        try:
            UPID.of(ident, "127.0.0.1", 1)
        except InvalidUPID as error:
            problem = str(error)
    if problem is not None:
        raise ValueError(
            f"{ident!r} cannot be a process id: {problem}; use letters, digits and "
            "punctuation other than '@' and '/', with no whitespace"
        )
