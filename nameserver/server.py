"""The DNS server's sockets: UDP and TCP on one port, over asyncio.

Every packet passes the flood guard (per client address), then the answerer
(nameserver/answers.py) decides; queries for other zones are forwarded in tasks this server
owns and awaits when it stops. TCP carries RFC 1035's two-byte length before each message;
a connection that stays silent for ``idle_timeout`` seconds is closed.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from nameserver.answers import Answerer, Forward, Reply
from nameserver.flood_guard import FloodGuard
from nameserver.forwarding import Forwarder
from nameserver.metrics import Counters

log = structlog.get_logger("nameserver.server")

MAX_FORWARDS = 1024  # forwarded queries waiting at once; beyond, SERVFAIL at once


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        server = self.server
        counters = server.counters
        counters.queries += 1
        counters.udp_queries += 1
        if not server.guard.allow(addr[0], server.loop.time()):
            counters.flood_dropped += 1
            return
        decision = server.answerer.answer(data, udp=True)
        if isinstance(decision, Reply):
            self.transport.sendto(decision.packet, addr)
        elif isinstance(decision, Forward):
            server.forward(decision, lambda packet: self.transport.sendto(packet, addr), tcp=False)

    def error_received(self, exc: Exception) -> None:
        log.debug("udp_error", error=repr(exc))  # an ICMP error for an earlier answer


class DnsServer:
    """setup (bind) → serving → stop; see the module docstring."""

    def __init__(
        self,
        answerer: Answerer,
        forwarder: Forwarder,
        guard: FloodGuard,
        counters: Counters,
        idle_timeout: float = 10.0,
    ) -> None:
        self.answerer = answerer
        self.forwarder = forwarder
        self.guard = guard
        self.counters = counters
        self.idle_timeout = idle_timeout
        self.port = 0
        self.loop: asyncio.AbstractEventLoop | None = None  # set by start()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        # Invariant: every forwarding or TCP connection task is here until it ends.
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, ip: str, port: int) -> int:
        """Bind UDP and TCP to ``ip``:``port`` (0: a free port both can have); the port."""
        self.loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        for _ in range(20):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            udp.bind((ip, port))
            chosen = udp.getsockname()[1]
            try:
                tcp = await asyncio.start_server(self._connection, ip, chosen, family=family)
            except OSError:
                udp.close()
                if port:
                    raise
                continue  # the free UDP port is taken over TCP: try another
            break
        else:
            raise OSError(f"found no port free over both UDP and TCP on {ip}")
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self._udp, _ = await self.loop.create_datagram_endpoint(lambda: _Udp(self), sock=udp)
        self._tcp = tcp
        self.port = chosen
        log.info("dns_listening", ip=ip, port=chosen)
        return chosen

    def forward(self, decision: Forward, send: Callable[[bytes], None], tcp: bool) -> None:
        """Forward in a task of this server's; ``send`` takes the answer packet."""
        if len(self._tasks) >= MAX_FORWARDS:
            send(self.answerer.failed_forward(decision.query))
            return

        async def run() -> None:
            answer = await self.forwarder.forward(decision.packet, tcp)
            if answer is None:
                answer = self.answerer.failed_forward(decision.query)
            else:
                self.counters.forwarded += 1
            send(answer)

        self._spawn(run())

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = self.loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("dns_task_failed", error=repr(task.exception()))

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = (writer.get_extra_info("peername") or ("?",))[0]
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while True:
                try:
                    prefix = await asyncio.wait_for(reader.readexactly(2), self.idle_timeout)
                    (length,) = struct.unpack(">H", prefix)
                    data = await asyncio.wait_for(reader.readexactly(length), self.idle_timeout)
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    return
                self.counters.queries += 1
                self.counters.tcp_queries += 1
                if not self.guard.allow(client, self.loop.time()):
                    self.counters.flood_dropped += 1
                    return  # a flooding client over TCP loses its connection
                decision = self.answerer.answer(data, udp=False)
                if decision is None:
                    return  # not even a header to answer to: the stream's framing is lost
                if isinstance(decision, Reply):
                    writer.write(struct.pack(">H", len(decision.packet)) + decision.packet)
                elif isinstance(decision, Forward):
                    answer = await self.forwarder.forward(decision.packet, tcp=True)
                    if answer is None:
                        answer = self.answerer.failed_forward(decision.query)
                    else:
                        self.counters.forwarded += 1
                    writer.write(struct.pack(">H", len(answer)) + answer)
                await writer.drain()
        finally:
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def stop(self) -> None:
        """Close both sockets; cancel and await every task still running."""
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._tcp is not None:
            await self._tcp.wait_closed()
