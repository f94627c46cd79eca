"""Queries for other zones, sent on to the configured resolvers in turn (Mesos-DNS's
``resolvers``): the first that answers in time is the answer."""

from __future__ import annotations

import asyncio
import struct

import structlog

log = structlog.get_logger("nameserver.forwarding")


class _Exchange(asyncio.DatagramProtocol):
    """One query over UDP: the first datagram back with the query's id is the answer."""

    def __init__(self, query_id: bytes) -> None:
        self.query_id = query_id
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: object) -> None:
        if data[:2] == self.query_id and not self.answer.done():
            self.answer.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


class Forwarder:
    """Asks ``resolvers`` (host, port) one after the other, ``timeout`` seconds each."""

    def __init__(self, resolvers: list[tuple[str, int]], timeout: float) -> None:
        self.resolvers = resolvers
        self.timeout = timeout

    async def forward(self, packet: bytes, tcp: bool) -> bytes | None:
        """The first resolver's answer, or None if none answered. Over UDP a truncated
        answer is asked again over TCP, as a stub resolver would; a client that came over TCP
        is asked for over TCP."""
        for host, port in self.resolvers:
            try:
                if not tcp:
                    answer = await asyncio.wait_for(self._udp(packet, host, port), self.timeout)
                    if not answer[2] & 0x02:  # TC not set
                        return answer
                return await asyncio.wait_for(self._tcp(packet, host, port), self.timeout)
            except (TimeoutError, OSError, asyncio.IncompleteReadError) as error:
                log.info("resolver_unanswered", resolver=f"{host}:{port}", error=repr(error))
        return None

    @staticmethod
    async def _udp(packet: bytes, host: str, port: int) -> bytes:
        loop = asyncio.get_running_loop()
        transport, exchange = await loop.create_datagram_endpoint(
            lambda: _Exchange(packet[:2]), remote_addr=(host, port)
        )
        try:
            transport.sendto(packet)
            return await exchange.answer
        finally:
            transport.close()

    @staticmethod
    async def _tcp(packet: bytes, host: str, port: int) -> bytes:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(struct.pack(">H", len(packet)) + packet)
            await writer.drain()
            (length,) = struct.unpack(">H", await reader.readexactly(2))
            return await reader.readexactly(length)
        finally:
            writer.close()
