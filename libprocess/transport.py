"""ZeroMQ transport: one inbound PULL socket per runtime, one outbound PUSH per peer.

Sends are batched: messages for a peer collect during one turn of the loop and go
out as one frame when the turn ends (or sooner, when a batch is full). Receiving
wakes once per readable edge and drains many frames.

High-water marks, for a peer that reads slower than we send (or not at all): each
PUSH socket queues up to ``send_hwm`` frames in ZeroMQ, and the kernel's socket
buffers hold some more; past that the frames wait in the runtime (``backlog_frames``
per peer) and go out, in order, as soon as the socket is writable again; past *that*,
new frames are dropped and their messages counted in ``libprocess/messages_dropped``.
Sending never blocks the loop. The receiving PULL socket holds what arrives (``receive_hwm``
frames, 0 by default: no limit) before TCP back-pressure reaches the sender: a runtime that
falls behind keeps reading, so its peers' heartbeats are answered and a busy runtime is not
taken for a lost one (its backlog is bounded by what the protocol above lets peers send).
Delivery is therefore ordered but not reliable, as in libprocess: what arrives arrives in
order, with gaps only where drops were counted; reliability is built above it.
(tests/test_remote.py checks this with a peer that does not read.)

Size limits: a frame longer than ``max_frame_bytes`` is dropped unread and counted in
``libprocess/frames_oversized``; one over four times that is refused by ZeroMQ itself
(``MAXMSGSIZE``), which also closes the connection it came on, uncounted.

A peer is *lost* when its connection breaks (ZeroMQ's DISCONNECTED monitor event,
raised within milliseconds when a peer's process dies, or after ``peer_timeout``
without heartbeat replies when the peer or the network hangs) or when it cannot be
reached at all. Its socket is closed, what was queued for it is dropped (the batch and
backlog are counted in ``libprocess/messages_dropped``; up to ``send_hwm`` frames
already inside ZeroMQ are lost uncounted), and the runtime tells the processes linked
to it. The next send opens a fresh connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
import zmq
from zmq.utils.monitor import parse_monitor_message

from libprocess import wire

log = structlog.get_logger("libprocess.transport")

_MONITOR_EVENTS = zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_CONNECT_RETRIED
_ZERO_COPY_BYTES = 64 * 1024  # smaller frames are copied into ZeroMQ: cheaper than tracking


@dataclass(frozen=True)
class TransportConfig:
    """Knobs of the transport; defaults suit a LAN cluster and loopback tests."""

    max_message_bytes: int = 64 * 1024 * 1024
    batch_messages: int = 1024  # flush a peer's batch early once it holds this many
    batch_bytes: int = 256 * 1024  # ... or this many bytes
    drain_frames: int = 128  # frames read per wake before yielding to the loop
    send_hwm: int = 1000
    # 0: no limit. With one, a runtime that falls behind stops reading its connections once
    # the queue is full, so its peers' heartbeats go unanswered and every peer drops its
    # connection to it: being busy would look like being lost.
    receive_hwm: int = 0
    backlog_frames: int = 10_000
    heartbeat_interval: float = 1.0
    peer_timeout: float = 5.0  # no heartbeat reply for this long: the peer is lost
    linger: float = 0.2  # on close, time left for queued frames to leave

    @property
    def max_frame_bytes(self) -> int:
        """The largest frame a runtime with this config sends, and so accepts.

        A batch is flushed once it reaches ``batch_bytes``, so before its last message it
        held at most ``batch_bytes - 1``; add one whole message and the array header.
        Runtimes that talk to each other need the same limits.
        """
        return self.max_message_bytes + self.batch_bytes + wire.MAX_FRAME_HEADER_BYTES

    def __post_init__(self) -> None:
        if self.peer_timeout <= self.heartbeat_interval:
            raise ValueError(
                f"peer_timeout ({self.peer_timeout}) must exceed heartbeat_interval "
                f"({self.heartbeat_interval}) or every peer would look lost"
            )


class Peer:
    """The outbound connection to one remote runtime."""

    __slots__ = (
        "address",
        "backlog",
        "connected",
        "monitor",
        "parts",
        "pending_bytes",
        "socket",
        "watching_writable",
    )

    def __init__(self, address: str, socket: zmq.Socket, monitor: zmq.Socket) -> None:
        self.address = address
        self.socket = socket
        self.monitor = monitor
        self.connected = False
        self.parts: list[bytes] = []  # encoded messages of the batch being built
        self.pending_bytes = 0
        self.backlog: deque[tuple[bytes, int]] = deque()  # (frame, messages) refused by HWM
        self.watching_writable = False


class Transport:
    """Moves encoded batches between runtimes; the runtime interprets them."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        config: TransportConfig,
        on_batch: Callable[[list[Any]], None],
        on_peer_lost: Callable[[str, str], None],
        complain: Callable[..., None],
    ) -> None:
        self._loop = loop
        self.config = config
        self._on_batch = on_batch
        self._on_peer_lost = on_peer_lost
        self._complain = complain
        self._context = zmq.Context()
        self._encode = wire.Encoder(config.max_message_bytes).encode
        self._inbound: zmq.Socket | None = None
        self._peers: dict[str, Peer] = {}
        self._dirty: list[Peer] = []
        self._flush_scheduled = False
        self.address = ""
        # Counted here as plain ints (hot path); the runtime's metrics read them.
        self.frames_sent = 0
        self.frames_received = 0
        self.messages_sent = 0
        self.bytes_received = 0

    # -- lifecycle ----------------------------------------------------------------------

    def bind(self, host: str, port: int) -> str:
        """Bind the inbound socket; returns the ``host:port`` actually bound."""
        sock = self._context.socket(zmq.PULL)
        sock.setsockopt(zmq.RCVHWM, self.config.receive_hwm)
        sock.setsockopt(zmq.LINGER, 0)
        # A last-resort guard; frames over max_message_bytes are refused in Python first.
        sock.setsockopt(zmq.MAXMSGSIZE, 4 * self.config.max_frame_bytes)
        try:
            sock.bind(f"tcp://{host}:{port or '*'}")
        except zmq.ZMQError as error:
            sock.close(0)
            raise OSError(
                f"cannot listen on {host}:{port} ({error}); choose another port, or 0 for any"
            ) from None
        endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        bound_port = int(endpoint.rsplit(":", 1)[1])
        self._inbound = sock
        self._loop.add_reader(sock.getsockopt(zmq.FD), self._drain)
        self._loop.call_soon(self._drain)
        self.address = f"{host}:{bound_port}"
        return self.address

    def close(self) -> None:
        """Flush what is batched, then close every socket (waiting at most ``linger``)."""
        self._flush()
        linger_ms = int(self.config.linger * 1000)
        for peer in list(self._peers.values()):
            self._close_peer(peer, linger_ms)
        self._peers.clear()
        if self._inbound is not None:
            self._loop.remove_reader(self._inbound.getsockopt(zmq.FD))
            self._inbound.close(0)
            self._inbound = None
        self._context.term()

    @property
    def idle(self) -> bool:
        return not self._dirty and not self._flush_scheduled

    def peers(self) -> list[str]:
        return list(self._peers)

    # -- sending --------------------------------------------------------------------------

    def send(self, address: str, to_id: str, sender: str, name: str, body: Any) -> None:
        """Queue one message for ``address``; raises if the body cannot be encoded."""
        self.send_encoded(address, self._encode(to_id, sender, name, body))

    def send_encoded(self, address: str, data: bytes) -> None:
        """Queue one message already encoded (by ``wire.encode_message``) for ``address``."""
        peer = self._peers.get(address)
        if peer is None:
            peer = self._connect(address)
        parts = peer.parts
        parts.append(data)
        peer.pending_bytes += len(data)
        if len(parts) == 1:
            self._dirty.append(peer)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon(self._flush)
        elif len(parts) >= self.config.batch_messages or (
            peer.pending_bytes >= self.config.batch_bytes
        ):
            self._flush_peer(peer)

    def ensure_peer(self, address: str) -> None:
        """Open the connection to ``address`` if there is none (links watch it)."""
        if address not in self._peers:
            self._connect(address)

    def _connect(self, address: str) -> Peer:
        config = self.config
        sock = self._context.socket(zmq.PUSH)
        sock.setsockopt(zmq.SNDHWM, config.send_hwm)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.HEARTBEAT_IVL, int(config.heartbeat_interval * 1000))
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, int(config.peer_timeout * 1000))
        sock.setsockopt(zmq.HEARTBEAT_TTL, int(config.peer_timeout * 1000))
        sock.setsockopt(zmq.CONNECT_TIMEOUT, int(config.peer_timeout * 1000))
        monitor = sock.get_monitor_socket(_MONITOR_EVENTS)
        peer = Peer(address, sock, monitor)
        self._peers[address] = peer
        self._loop.add_reader(monitor.getsockopt(zmq.FD), self._on_monitor, peer)
        sock.connect(f"tcp://{address}")
        self._loop.call_soon(self._on_monitor, peer)
        return peer

    def _flush(self) -> None:
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, []
        for peer in dirty:
            if peer.parts:
                self._flush_peer(peer)

    def _flush_peer(self, peer: Peer) -> None:
        parts = peer.parts
        count = len(parts)
        frame = wire.frame_header(count) + b"".join(parts)
        parts.clear()
        peer.pending_bytes = 0
        if peer.backlog:
            self._backlog(peer, frame, count)
            return
        try:
            peer.socket.send(frame, zmq.NOBLOCK, copy=len(frame) < _ZERO_COPY_BYTES)
        except zmq.Again:
            self._backlog(peer, frame, count)
            return
        except zmq.ZMQError as error:
            self._drop(peer, count, f"send failed: {error}")
            return
        self.frames_sent += 1
        self.messages_sent += count

    def _backlog(self, peer: Peer, frame: bytes, count: int) -> None:
        if len(peer.backlog) >= self.config.backlog_frames:
            self._drop(peer, count, "the peer's send queue is full (high-water mark)")
            return
        peer.backlog.append((frame, count))
        if not peer.watching_writable:
            peer.watching_writable = True
            self._loop.add_reader(peer.socket.getsockopt(zmq.FD), self._on_writable, peer)
            self._loop.call_soon(self._on_writable, peer)

    def _on_writable(self, peer: Peer) -> None:
        if self._peers.get(peer.address) is not peer:
            return
        backlog = peer.backlog
        while backlog and peer.socket.getsockopt(zmq.EVENTS) & zmq.POLLOUT:
            frame, count = backlog[0]
            try:
                peer.socket.send(frame, zmq.NOBLOCK)
            except zmq.Again:
                break
            backlog.popleft()
            self.frames_sent += 1
            self.messages_sent += count
        if not backlog and peer.watching_writable:
            peer.watching_writable = False
            self._loop.remove_reader(peer.socket.getsockopt(zmq.FD))

    def _drop(self, peer: Peer, count: int, reason: str) -> None:
        self._complain("messages_dropped", count=count, peer=peer.address, reason=reason)

    # -- connection events --------------------------------------------------------------

    def _on_monitor(self, peer: Peer) -> None:
        if self._peers.get(peer.address) is not peer:
            return
        monitor = peer.monitor
        while True:
            try:
                event = parse_monitor_message(monitor.recv_multipart(zmq.NOBLOCK))["event"]
            except zmq.Again:
                return
            except zmq.ZMQError:
                return
            if event == zmq.EVENT_CONNECTED:
                peer.connected = True
                log.debug("peer_connected", peer=peer.address)
            elif event == zmq.EVENT_DISCONNECTED:
                self._lose(peer, "the connection broke")
                return
            elif event == zmq.EVENT_CONNECT_RETRIED and not peer.connected:
                self._lose(peer, "the peer cannot be reached")
                return

    def _lose(self, peer: Peer, reason: str) -> None:
        if self._peers.get(peer.address) is not peer:
            return
        del self._peers[peer.address]
        queued = len(peer.parts) + sum(count for _, count in peer.backlog)
        peer.parts.clear()
        if queued:
            self._drop(peer, queued, f"{reason}, so what was queued for it is lost")
        self._close_peer(peer, 0)
        log.info("peer_lost", peer=peer.address, reason=reason, dropped=queued)
        self._on_peer_lost(peer.address, reason)

    def _close_peer(self, peer: Peer, linger_ms: int) -> None:
        self._loop.remove_reader(peer.monitor.getsockopt(zmq.FD))
        if peer.watching_writable:
            self._loop.remove_reader(peer.socket.getsockopt(zmq.FD))
            peer.watching_writable = False
        if peer.parts:
            with contextlib.suppress(zmq.ZMQError):
                frame = wire.frame_header(len(peer.parts)) + b"".join(peer.parts)
                peer.socket.send(frame, zmq.NOBLOCK)
            peer.parts.clear()
        peer.socket.disable_monitor()
        peer.monitor.close(0)
        peer.socket.close(linger_ms)

    # -- receiving ----------------------------------------------------------------------

    def _drain(self) -> None:
        sock = self._inbound
        if sock is None:
            return
        recv = sock.recv
        on_frame = self._on_frame
        for _ in range(self.config.drain_frames):
            try:
                frame = recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            on_frame(frame)
        self._loop.call_soon(self._drain)  # more may be waiting; the edge will not fire again

    def _on_frame(self, frame: bytes) -> None:
        self.frames_received += 1
        self.bytes_received += len(frame)
        if len(frame) > self.config.max_frame_bytes:
            self._complain("frames_oversized", bytes=len(frame), limit=self.config.max_frame_bytes)
            return
        try:
            batch = wire.decode_envelopes(frame)
        except wire.MalformedFrame as error:
            self._complain("frames_malformed", error=str(error))
            return
        self._on_batch(batch)
