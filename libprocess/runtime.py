"""The runtime: one per OS process, one event loop serving all its processes.

It owns the processes and their run queue, the timers, the ZeroMQ transport and
(optionally) the HTTP server. It runs either in a background thread of its own
(``start``/``stop``, or ``with Runtime() as runtime``) or inside an application's
asyncio loop (``await astart()``/``await astop()``, or ``async with``). Its public
methods may be called from any thread; calls from outside the loop thread are handed
to the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import structlog

from libprocess import current, wire
from libprocess.clock import Clock, Timer, Timers, clock
from libprocess.events import INITIALIZE, TERMINATE, Dispatch, Exited
from libprocess.faults import Faults
from libprocess.future import Future, Promise
from libprocess.garbage import GC_STATS, GENERATIONS
from libprocess.host import ProcessState, ProcessTerminated
from libprocess.http import HttpServer
from libprocess.metrics import Metrics
from libprocess.process import Process
from libprocess.transport import Transport, TransportConfig
from libprocess.upid import UPID, InvalidUPID, UPIDCache

log = structlog.get_logger("libprocess.runtime")

# Bad input the runtime survives: each is counted as libprocess/<kind> and logged.
COMPLAINTS = (
    "frames_malformed",
    "frames_oversized",
    "messages_malformed",
    "messages_unknown_process",
    "messages_unknown_name",
    "messages_dropped",
    "handler_errors",
)
_LOUD_COMPLAINTS = 10  # log each of the first ten of a kind, then every thousandth

EVENTS_PER_TURN = 4096  # events served before the loop gets a turn for I/O
EVENTS_PER_PROCESS = 256  # events one process serves before the next gets a go
# ... or this much wall time (checked every _CHECK_EVERY events), whichever comes first: with
# events of 100 µs (a master's status updates) 4,096 of them would keep sockets unread and
# HTTP answers unwritten for 0.4 s at a time (a 100 MB /master/state takes dozens of turns).
TURN_SECONDS = 0.005
_CHECK_EVERY = 32


class UnknownProcess(LookupError):
    """No process with that id runs in this runtime."""


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where installed (it is faster), asyncio's default loop elsewhere."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class Runtime:
    """Hosts processes at ``host:port`` and moves messages between them and other runtimes."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        http_port: int | None = None,
        advertise_host: str | None = None,
        transport: TransportConfig | None = None,
        clock: Clock = clock,
    ) -> None:
        if host in ("0.0.0.0", "*", "::") and not advertise_host:
            raise ValueError(
                f"listening on {host!r} needs advertise_host: the address other runtimes "
                "use to reach this one"
            )
        self.host = host
        self.port = port
        self.http_port = http_port
        # Absolute HTTP paths served by a process route: path -> (process id, route path).
        self.http_aliases: dict[str, tuple[str, str]] = {}
        self.advertise_host = advertise_host or host
        self.transport_config = transport or TransportConfig()
        self.clock = clock
        self.metrics = Metrics()
        self.address = ""  # "host:port" once started
        self.http_address: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._thread_id: int | None = None
        self._transport: Transport | None = None
        self._timers: Timers | None = None
        self._http = None
        self._state = "new"
        self._processes: dict[str, Process] = {}
        # Processes spawned from other threads, by id, until the loop registers them: a pid
        # that spawn() returned must resolve at once (dispatch, terminate, wait, link).
        self._reserved: dict[str, Process] = {}
        self._ids_lock = threading.Lock()
        self._id_counters: dict[str, itertools.count] = {}
        self._runq: deque[Process] = deque()
        self._run_scheduled = False
        self._served = 0
        self._upids = UPIDCache()
        # Local links: target id -> processes that linked to it.
        self._links: dict[str, set[Process]] = {}
        # Remote links: remote pid -> local processes that linked to it.
        self._remote_links: dict[UPID, set[Process]] = {}
        # Remote linkers: local id -> addresses of runtimes with processes linked to it.
        self._remote_linkers: dict[str, set[str]] = {}
        self._complaints = {kind: self.metrics.counter(f"libprocess/{kind}") for kind in COMPLAINTS}
        self._stop_requested = False  # request_stop() called: it owns the shutdown
        self._stopped: asyncio.Event | None = None
        # Test-only deliberate drops (libprocess.faults): ``_dropping`` is the rules' owner
        # while any rule is set, else None, so the message paths check one attribute.
        self._dropping: Faults | None = None
        self.faults = Faults(self.metrics, self._set_dropping)

    def _set_dropping(self, faults: Faults | None) -> None:
        self._dropping = faults

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> Runtime:
        """Start serving in a background thread; returns once bound and ready."""
        self._require_state("new", "start()", "a runtime starts once: make a new Runtime")
        self._state = "starting"
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            loop = new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._open(loop))
            except BaseException as error:
                failure.append(error)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                _cancel_leftover_tasks(loop)
                loop.close()

        self._thread = threading.Thread(target=main, name="libprocess-runtime", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError(f"the runtime did not start within {timeout} s")
        if failure:
            self._state = "stopped"
            raise failure[0]
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Terminate every process, close sockets and the HTTP server, end the thread.

        Idempotent; safe while a ``request_stop()`` is under way (it waits for that one).
        """
        if self._state in ("new", "stopped"):
            if self._thread is not None and not self._on_loop():
                self._thread.join(timeout)  # a request_stop() may still be winding down
            return
        if self._thread is None:
            raise RuntimeError(
                "this runtime runs inside an application's loop: stop it with await astop()"
            )
        if self._on_loop():
            raise RuntimeError(
                "stop() would wait on the runtime's own thread; call request_stop() instead"
            )
        if self._stop_requested:  # request_stop() winds it down and ends the thread itself
            self._thread.join(timeout)
            return
        loop = self._loop
        assert loop is not None
        try:
            asyncio.run_coroutine_threadsafe(self._close(), loop).result(timeout)
            loop.call_soon_threadsafe(loop.stop)
        except (RuntimeError, concurrent.futures.CancelledError):
            pass  # a request_stop() finished first and closed the loop: nothing left to do
        self._thread.join(timeout)

    async def astart(self) -> Runtime:
        """Start serving inside the running asyncio loop (embedding in an application)."""
        self._require_state("new", "astart()", "a runtime starts once: make a new Runtime")
        self._state = "starting"
        try:
            await self._open(asyncio.get_running_loop())
        except BaseException:
            self._state = "stopped"
            raise
        return self

    async def astop(self) -> None:
        if self._state in ("new", "stopped"):
            return
        if self._thread is not None:
            raise RuntimeError("this runtime runs in its own thread: stop it with stop()")
        await self._close()

    def request_stop(self) -> None:
        """Ask the runtime to stop soon, from anywhere, without waiting."""
        if self._loop is None or self._state != "running" or self._stop_requested:
            return
        self._stop_requested = True

        def begin() -> None:
            task = self._loop.create_task(self._close())
            task.add_done_callback(self._requested_stop_done)

        self.call_on_loop(begin)

    def _requested_stop_done(self, task: asyncio.Task) -> None:
        error = None if task.cancelled() else task.exception()
        if error is not None:  # nobody awaits this task: make its failure loud
            log.error("runtime_stop_failed", address=self.address, exc_info=error)
        if self._thread is not None:
            self._loop.stop()

    @property
    def state(self) -> str:
        """``new``, ``starting``, ``running``, ``stopping`` or ``stopped``."""
        return self._state

    async def wait_stopped(self) -> None:
        """Wait, inside the runtime's loop, until the runtime has stopped."""
        if self._stopped is not None:
            await self._stopped.wait()

    def __enter__(self) -> Runtime:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> Runtime:
        return await self.astart()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.astop()

    async def _open(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread_id = threading.get_ident()
        self._stopped = asyncio.Event()
        self._timers = Timers(loop, self.clock)
        current.enter_loop(self._timers)
        self._timers.bind_thread()
        self._transport = Transport(
            loop, self.transport_config, self._deliver_batch, self._peer_lost, self._complain
        )
        try:
            bound = self._transport.bind(self.host, self.port)
        except BaseException:
            self._transport.close()
            current.leave_loop()
            raise
        self.address = f"{self.advertise_host}:{bound.rsplit(':', 1)[1]}"
        self._register_metrics()
        if self.http_port is not None:
            self._http = HttpServer(self)
            try:
                self.http_address = await self._http.start(self.host, self.http_port)
            except BaseException:  # leave nothing bound behind a failed start
                self._transport.close()
                self._timers.close()
                current.leave_loop()
                raise
        self._state = "running"
        current.register(self._timers)
        self.clock.attach(self)
        log.info("runtime_started", address=self.address, http=self.http_address)

    async def _close(self) -> None:
        if self._state == "stopping":  # another stop is under way: finish with it
            await self._stopped.wait()
            return
        if self._state != "running":
            return
        self._state = "stopping"
        # Reverse spawn order, like a stack of resources: the newest goes first.
        for process in reversed(list(self._processes.values())):
            self._finish(process)
        errors: list[BaseException] = []
        if self._http is not None:
            try:
                await self._http.stop()
            except Exception as error:
                errors.append(error)
        self._transport.close()
        self._timers.close()
        current.unregister(self._timers)
        self.clock.detach(self)
        current.leave_loop()
        self._state = "stopped"
        self._stopped.set()
        log.info("runtime_stopped", address=self.address)
        if errors:
            raise errors[0]

    def _require_state(self, state: str, call: str, advice: str) -> None:
        if self._state != state:
            raise RuntimeError(
                f"{call} needs a {state} runtime, but this one is {self._state}; {advice}"
            )

    def _register_metrics(self) -> None:
        metrics = self.metrics
        transport = self._transport
        metrics.gauge("libprocess/processes", lambda: len(self._processes))
        metrics.gauge("libprocess/peers", lambda: len(transport.peers()))
        metrics.gauge("libprocess/events_served", lambda: self._served)
        metrics.gauge("libprocess/messages_sent", lambda: transport.messages_sent)
        metrics.gauge("libprocess/frames_sent", lambda: transport.frames_sent)
        metrics.gauge("libprocess/frames_received", lambda: transport.frames_received)
        metrics.gauge("libprocess/bytes_received", lambda: transport.bytes_received)
        GC_STATS.install()
        metrics.gauge("libprocess/gc_seconds", lambda: GC_STATS.total_seconds)
        for generation in GENERATIONS:
            metrics.gauge(
                f"libprocess/gc_collections_{generation}",
                lambda g=generation: GC_STATS.collections[g],
            )
            metrics.gauge(
                f"libprocess/gc_seconds_{generation}", lambda g=generation: GC_STATS.seconds[g]
            )

    # -- threads ------------------------------------------------------------------------

    def on_loop(self) -> bool:
        """Whether the caller runs on this runtime's loop thread (where blocking waits on the
        runtime would deadlock)."""
        return threading.get_ident() == self._thread_id

    _on_loop = on_loop

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The asyncio loop serving this runtime's processes (once started)."""
        if self._loop is None:
            raise RuntimeError("the runtime has no loop until it is started")
        return self._loop

    def call_on_loop(self, fn: Callable, *args: Any) -> None:
        """Run ``fn(*args)`` on the loop thread: now if already there, else soon."""
        if threading.get_ident() == self._thread_id:
            fn(*args)
        elif self._loop is None or self._state not in ("starting", "running"):
            advice = (
                "start it before using it"
                if self._state == "new"
                else "use it only while it runs (a stopped runtime cannot be restarted)"
            )
            raise RuntimeError(f"the runtime is {self._state}; {advice}")
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    # -- processes ------------------------------------------------------------------------

    @property
    def timers(self) -> Timers:
        if self._timers is None:
            raise RuntimeError("the runtime has no timers until it is started")
        return self._timers

    def spawn(self, process: Process) -> UPID:
        """Start serving ``process``; its ``initialize`` runs as its first event."""
        if self._state != "running":
            raise RuntimeError(
                f"spawn() needs a running runtime, but this one is {self._state}; "
                "start it first (runtime.start(), 'with Runtime() as runtime', or "
                "'async with Runtime() as runtime')"
            )
        mailbox = getattr(process, "mailbox", None)
        if not isinstance(process, Process) or mailbox is None:
            raise TypeError(
                f"spawn() takes a Process whose __init__ ran, got a {type(process).__name__}; "
                "a subclass that defines __init__ must call super().__init__()"
            )
        if mailbox.host is not None:
            raise RuntimeError(f"{process!r} is already spawned; a process is spawned once")
        with self._ids_lock:
            ident = mailbox.requested_id or self._generate_id(process)
            if ident in self._processes or ident in self._reserved:
                raise ValueError(
                    f"a process with id {ident!r} already runs in this runtime; "
                    "ids are unique per runtime: pick another or let one be generated"
                )
            pid = UPID(f"{ident}@{self.address}")  # checked before anything is reserved
            self._reserved[ident] = process
        mailbox.pid = pid
        mailbox.host = self
        mailbox.done = Promise()
        self.call_on_loop(self._register, process)
        return pid

    def _generate_id(self, process: Process) -> str:
        base = type(process).__name__.lower()
        counter = self._id_counters.setdefault(base, itertools.count(1))
        while True:
            ident = f"{base}({next(counter)})"
            if ident not in self._processes and ident not in self._reserved:
                return ident

    def _register(self, process: Process) -> None:
        mailbox = process.mailbox
        ident = mailbox.pid.id
        with self._ids_lock:
            self._reserved.pop(ident, None)
            stopping = self._state != "running"  # spawned from another thread as it stopped
            if not stopping:
                self._processes[ident] = process
        if stopping:
            mailbox.state = ProcessState.TERMINATED
            mailbox.done.set(None)
            return
        mailbox.events.appendleft(INITIALIZE)
        self._schedule(process)

    def terminate(self, target: Process | UPID | str, inject: bool = True) -> bool:
        """End a process: at once (``inject``, pending events dropped) or after its queue."""
        process = self._resolve(target)
        if process is None or process.mailbox.state == ProcessState.TERMINATED:
            return False
        self.call_on_loop(self._enqueue_terminate, process, inject)
        return True

    def _enqueue_terminate(self, process: Process, inject: bool) -> None:
        events = process.mailbox.events
        if process.mailbox.state == ProcessState.TERMINATED:
            return
        if inject:
            events.appendleft(TERMINATE)
        else:
            events.append(TERMINATE)
        self._schedule(process)

    def wait(self, target: Process | UPID | str) -> Future[None]:
        """A future that is ready once the process has terminated (at once if unknown)."""
        process = target if isinstance(target, Process) else self._resolve(target)
        if process is None or process.mailbox.done is None:
            return Future.ready(None)
        return process.mailbox.done.future

    def processes(self) -> list[UPID]:
        """The pids of the processes running here."""
        return [process.pid for process in list(self._processes.values())]

    def process(self, ident: str) -> Process | None:
        """The process with id ``ident`` running here, if any (for this runtime's HTTP
        server and tests; actors talk to each other by pid)."""
        return self._processes.get(ident)

    def _resolve(self, target: Process | UPID | str) -> Process | None:
        if isinstance(target, Process):
            return target if target.mailbox.host is self else None
        pid = UPID(target)
        if pid.address != self.address:
            return None
        process = self._processes.get(pid.id)
        return process if process is not None else self._reserved.get(pid.id)

    def _finish(self, process: Process) -> None:
        """Terminate ``process`` now: fail what it will never serve, finalize, tell linkers."""
        mailbox = process.mailbox
        if mailbox.state == ProcessState.TERMINATED:
            return
        if mailbox.state == ProcessState.CREATED:
            # Terminated before its first event: initialize still comes first, so that
            # finalize always pairs with it (its queued INITIALIZE is dropped below).
            INITIALIZE.serve(process)
        mailbox.state = ProcessState.TERMINATED
        pid = mailbox.pid
        events = mailbox.events
        dropped = 0
        while events:
            event = events.popleft()
            if type(event) is tuple:
                dropped += 1
            elif isinstance(event, Dispatch):
                event.abandon(process)
        for work in list(mailbox.work):
            work.abandon()
        try:
            process.finalize()
        except Exception:
            log.exception("finalize_failed", process=pid)
        with self._ids_lock:
            self._processes.pop(pid.id, None)
        for linker in self._links.pop(pid.id, ()):
            if linker.mailbox.state != ProcessState.TERMINATED:
                self._enqueue(linker, Exited(pid))
        for address in self._remote_linkers.pop(pid.id, ()):
            self._send_control(address, pid, wire.CONTROL_EXITED, None)
        for target in mailbox.links_out:
            self._forget_link(process, target)
        mailbox.links_out.clear()
        log.debug("process_terminated", process=pid, dropped_messages=dropped)
        mailbox.done.set(None)

    # -- scheduling -----------------------------------------------------------------------

    def _enqueue(self, process: Process, event: Any) -> None:
        mailbox = process.mailbox
        mailbox.events.append(event)
        if not mailbox.scheduled:
            mailbox.scheduled = True
            self._runq.append(process)
            if not self._run_scheduled:
                self._run_scheduled = True
                self._loop.call_soon(self._run)

    def _schedule(self, process: Process) -> None:
        mailbox = process.mailbox
        if not mailbox.scheduled:
            mailbox.scheduled = True
            self._runq.append(process)
            if not self._run_scheduled:
                self._run_scheduled = True
                self._loop.call_soon(self._run)

    def _run(self) -> None:
        """Serve runnable processes, a bounded number of events (and of time) per turn of
        the loop."""
        runq = self._runq
        served = 0
        deadline = time.perf_counter() + TURN_SECONDS
        while runq and served < EVENTS_PER_TURN:
            served += self._serve(runq.popleft(), deadline)
            if time.perf_counter() >= deadline:
                break
        self._served += served
        if runq:
            self._loop.call_soon(self._run)
        else:
            self._run_scheduled = False

    def _serve(self, process: Process, deadline: float) -> int:
        mailbox = process.mailbox
        events = mailbox.events
        handlers = mailbox.handlers
        count = 0
        while events and count < EVENTS_PER_PROCESS:
            event = events.popleft()
            count += 1
            if type(event) is tuple:
                sender, name, body = event
                handler = handlers.get(name)
                if type(body) is wire.Raw:
                    try:
                        body = wire.decode_body(body)
                    except wire.MalformedFrame as error:
                        self._complain("messages_malformed", error=str(error), message=name)
                        continue
                try:
                    if handler is None:
                        process.unhandled(sender, name, body)
                    else:
                        handler(sender, body)
                except Exception as error:
                    self.handler_failed(process, error, message=name, sender=sender)
            else:
                if event.serve(process):
                    self._finish(process)
                if mailbox.state == ProcessState.TERMINATED:
                    return count
            if count % _CHECK_EVERY == 0 and time.perf_counter() >= deadline:
                break
        if events:
            self._runq.append(process)
        else:
            mailbox.scheduled = False
        return count

    # -- messages -------------------------------------------------------------------------

    def send(self, to: UPID | str, name: str, body: Any = None, sender: UPID | None = None) -> None:
        """Fire and forget ``name`` with ``body`` to ``to``; ordered per sender and receiver.

        Local delivery passes ``body`` by reference (do not mutate it after sending);
        remote delivery encodes it with msgpack here, so an unencodable body raises here.
        A ``wire.Plain`` body is packed faster remotely and unwrapped locally.
        """
        if type(to) is not UPID:
            to = UPID(to)  # an invalid address raises here, in the caller's thread
        if self._dropping is not None and self._dropping.drops(
            to.id, to.address, sender, name, "send"
        ):
            return  # a test's deliberate drop (libprocess.faults), decided at send time
        if threading.get_ident() != self._thread_id:
            if to.address == self.address:
                if type(body) is wire.Plain:
                    body = body.body
                self.call_on_loop(self._deliver_local, to, name, body, sender)
            else:
                # Encoded here, so that a bad body raises in the caller, not on the loop.
                data = wire.encode_message(
                    to.id, sender or "", name, body, self.transport_config.max_message_bytes
                )
                self.call_on_loop(lambda: self._transport.send_encoded(to.address, data))
            return
        if to.address == self.address:
            if type(body) is wire.Plain:
                body = body.body
            process = self._processes.get(to.id)
            if process is None:
                if not self._deliver_to_reserved(to.id, (sender, name, body)):
                    self._complain("messages_unknown_process", to=to, message=name, sender=sender)
                return
            self._enqueue(process, (sender, name, body))
        else:
            self._transport.send(to.address, to.id, sender or "", name, body)

    def _deliver_local(self, to: UPID, name: str, body: Any, sender: UPID | None) -> None:
        """The local half of ``send`` for a send handed over from another thread."""
        process = self._processes.get(to.id)
        if process is None:
            if not self._deliver_to_reserved(to.id, (sender, name, body)):
                self._complain("messages_unknown_process", to=to, message=name, sender=sender)
            return
        self._enqueue(process, (sender, name, body))

    def dispatch(
        self, target: Process | UPID | str, method: Callable | str, *args: Any, **kwargs: Any
    ) -> Future[Any]:
        """Run ``method(*args, **kwargs)`` inside a local process; a future of its result.

        ``method`` is a name, a bound method, a function of the process's class (bound
        for you), or any other callable (run as is, inside the process).
        """
        return self._dispatch(target, Dispatch(method, args, kwargs, Promise()), ahead=False)

    def dispatch_ahead(
        self, target: Process | UPID | str, method: Callable, *args: Any
    ) -> Future[Any]:
        """``dispatch``, but served before the events already queued for the process (after
        its ``initialize``): for a read that must not wait behind a backlog of messages.
        Several are served in the order they were made."""
        return self._dispatch(target, Dispatch(method, args, {}, Promise()), ahead=True)

    def _dispatch(
        self, target: Process | UPID | str, dispatch: Dispatch, ahead: bool
    ) -> Future[Any]:
        process = self._resolve(target)
        if process is None:
            return Future.failed(UnknownProcess(f"no process {target} runs in this runtime"))
        if process.mailbox.state == ProcessState.TERMINATED:
            return Future.failed(ProcessTerminated(f"{process.pid} has terminated"))
        self.call_on_loop(self._enqueue_dispatch, process, dispatch, ahead)
        return dispatch.promise.future

    def _enqueue_dispatch(self, process: Process, dispatch: Dispatch, ahead: bool = False) -> None:
        mailbox = process.mailbox
        if mailbox.state == ProcessState.TERMINATED:  # ended while handed over
            dispatch.abandon(process)
        elif not ahead or mailbox.state != ProcessState.RUNNING:  # initialize comes first
            self._enqueue(process, dispatch)
        else:
            events = mailbox.events
            # After the ahead dispatches already at the front, so that they keep their order.
            place = 0
            while place < len(events) and type(events[place]) is Dispatch and events[place].ahead:
                place += 1
            dispatch.ahead = True
            events.insert(place, dispatch)
            self._schedule(process)

    def delay(
        self, seconds: float, target: Process | UPID | str, method: Callable | str, *args: Any
    ) -> Timer:
        """Dispatch ``method(*args)`` to ``target`` after ``seconds`` of runtime clock time."""
        return self.timers.schedule(seconds, lambda: self.dispatch(target, method, *args))

    def _deliver_batch(self, batch: list[Any]) -> None:
        """Hand a frame's messages to their processes (the receive hot path)."""
        processes = self._processes
        upids = self._upids
        enqueue = self._enqueue
        dropping = self._dropping
        for message in batch:
            try:
                if type(message) is tuple:  # (to_id, sender, name, Raw body): typed already
                    to_id, sender, name, body = message
                    sender = upids.get(sender) if sender else None
                else:
                    to_id, sender, name, body = self._envelope(message, upids)
            except (TypeError, ValueError, InvalidUPID) as error:
                self._complain(
                    "messages_malformed",
                    expected="[to_id: str, sender: '' or 'id@host:port', name: str, body]",
                    error=str(error) or type(error).__name__,
                )
                continue
            if (
                dropping is not None
                and to_id  # control messages (to the runtime itself) are never dropped
                and dropping.drops(to_id, self.address, sender, name, "inbound")
            ):
                continue
            process = processes.get(to_id)
            if process is not None:
                enqueue(process, (sender, name, body))
            elif to_id == wire.RUNTIME_ID:
                if type(body) is wire.Raw:
                    try:
                        body = wire.decode_body(body)
                    except wire.MalformedFrame as error:
                        self._complain("messages_malformed", error=str(error))
                        continue
                self._control(sender, name, body)
            elif not self._deliver_to_reserved(to_id, (sender, name, body)):
                self._complain("messages_unknown_process", to=to_id, message=name, sender=sender)

    @staticmethod
    def _envelope(message: Any, upids: Any) -> tuple[str, UPID | None, str, Any]:
        """A message of a frame decoded untyped, checked: TypeError or ValueError if bad."""
        if type(message) is not list:  # a 4-key map would unpack into its keys
            raise TypeError(f"got a {type(message).__name__}")
        to_id, sender, name, body = message
        if type(name) is not str or type(to_id) is not str or type(sender) is not str:
            raise TypeError(
                f"got [{type(to_id).__name__}, {type(sender).__name__}, {type(name).__name__}, ...]"
            )
        return to_id, (upids.get(sender) if sender else None), name, body

    def _deliver_to_reserved(self, ident: str, message: tuple) -> bool:
        """Queue a message for a process spawned from another thread but not registered yet.

        Its pid may reach a peer, and the peer's message arrive, before the loop runs the
        registration; the message waits in the mailbox, behind initialize once registered.
        """
        process = self._reserved.get(ident)
        if process is None:
            return False
        process.mailbox.events.append(message)
        return True

    def unhandled_message(self, process: Process, sender: UPID | None, name: str) -> None:
        """Count (``libprocess/messages_unknown_name``) and log a message that ``process``
        has no handler for."""
        self._complain("messages_unknown_name", process=process.pid, message=name, sender=sender)

    def handler_failed(self, process: Process, error: Exception, **context: Any) -> None:
        """A bug inside ``process`` (a handler or a callback of its async work raised):
        counted in ``libprocess/handler_errors`` and logged with its traceback; the process
        keeps serving."""
        self._complaints["handler_errors"].inc()
        log.error("handler_failed", process=process.pid, exc_info=error, **context)

    def _complain(self, kind: str, count: int = 1, **details: Any) -> None:
        """Count bad input (or loss) and log it, loudly at first, then sparsely."""
        counter = self._complaints[kind]
        counter.value += count
        seen = counter.value
        if seen <= _LOUD_COMPLAINTS or seen % 1000 < count:
            log.warning(kind, total=seen, **details)

    # -- links ----------------------------------------------------------------------------

    def link(self, linker: Process, pid: UPID | str) -> None:
        """Deliver ``exited(pid)`` to ``linker`` once, when ``pid`` ends or the connection
        to its runtime breaks (at once if it is local and does not exist)."""
        self.call_on_loop(self._link, linker, UPID(pid))

    def unlink(self, linker: Process, pid: UPID | str) -> None:
        """Stop watching ``pid`` for ``linker``: no ``exited`` for it unless linked again."""
        self.call_on_loop(self._unlink, linker, UPID(pid))

    def _link(self, process: Process, pid: UPID) -> None:
        links_out = process.mailbox.links_out
        if pid in links_out:
            return
        if pid.address == self.address:
            target = self._processes.get(pid.id) or self._reserved.get(pid.id)
            if target is None:
                self._enqueue(process, Exited(pid))
                return
            links_out.add(pid)
            self._links.setdefault(pid.id, set()).add(process)
            return
        links_out.add(pid)
        linkers = self._remote_links.get(pid)
        if linkers is None:
            linkers = self._remote_links[pid] = set()
            # Sent from the linker, so that the target's runtime knows whom to tell.
            self._send_control(pid.address, process.pid, wire.CONTROL_LINK, pid)
        linkers.add(process)

    def _unlink(self, process: Process, pid: UPID) -> None:
        links_out = process.mailbox.links_out
        if links_out and pid in links_out:
            links_out.discard(pid)
            self._forget_link(process, pid)

    def _forget_link(self, process: Process, pid: UPID) -> None:
        table = self._links if pid.address == self.address else self._remote_links
        key = pid.id if pid.address == self.address else pid
        linkers = table.get(key)
        if linkers is not None:
            linkers.discard(process)
            if not linkers:
                del table[key]

    def _send_control(self, address: str, about: UPID, name: str, body: Any) -> None:
        self._transport.send(address, wire.RUNTIME_ID, about, name, body)

    def _control(self, sender: UPID | None, name: str, body: Any) -> None:
        """Runtime-to-runtime messages: remote link requests and exit notices."""
        if name == wire.CONTROL_LINK and sender is not None and isinstance(body, str):
            try:
                target = UPID(body)
            except InvalidUPID as error:
                self._complain("messages_malformed", error=str(error))
                return
            process = self._processes.get(target.id)
            if process is None or target.address != self.address:
                self._send_control(sender.address, target, wire.CONTROL_EXITED, None)
            else:
                self._remote_linkers.setdefault(target.id, set()).add(sender.address)
        elif name == wire.CONTROL_EXITED and sender is not None:
            for process in self._remote_links.pop(sender, ()):
                process.mailbox.links_out.discard(sender)
                if process.mailbox.state != ProcessState.TERMINATED:
                    self._enqueue(process, Exited(sender))
        elif name in (wire.CONTROL_LINK, wire.CONTROL_EXITED):
            self._complain(
                "messages_malformed",
                error=f"control message {name!r} needs a sender (and a link, a target pid)",
            )
        else:
            self._complain("messages_malformed", error=f"unknown control message {name!r}")

    def _peer_lost(self, address: str, reason: str) -> None:
        for pid in [pid for pid in self._remote_links if pid.address == address]:
            for process in self._remote_links.pop(pid):
                process.mailbox.links_out.discard(pid)
                if process.mailbox.state != ProcessState.TERMINATED:
                    self._enqueue(process, Exited(pid))
        for ident in list(self._remote_linkers):
            addresses = self._remote_linkers[ident]
            addresses.discard(address)
            if not addresses:
                del self._remote_linkers[ident]

    # -- settling (tests) -----------------------------------------------------------------

    async def wait_settled(self) -> None:
        """Wait until no process is runnable, no timer is due and no batch is unsent."""
        quiet = 0
        while quiet < 3:
            await asyncio.sleep(0)
            busy = (
                self._runq
                or self._run_scheduled
                or self.timers.has_due()
                or not self._transport.idle
            )
            quiet = 0 if busy else quiet + 1

    def settle(self, timeout: float = 10.0) -> None:
        """Block (from outside the loop) until the runtime is settled; see ``wait_settled``."""
        if self._on_loop():
            raise RuntimeError("settle() would block the runtime's loop; await wait_settled()")
        if self._state != "running":
            return
        asyncio.run_coroutine_threadsafe(self.wait_settled(), self._loop).result(timeout)


def _cancel_leftover_tasks(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
