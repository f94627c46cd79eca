"""The wire format between runtimes: one ZeroMQ frame carries a batch of messages.

A frame is a msgpack array of messages; each message is a 4-array
``[to_id, from_upid, name, body]`` where ``from_upid`` is ``""`` for anonymous
senders and ``to_id == ""`` addresses the receiving runtime itself (control
messages such as remote ``link`` and ``exited``). Messages are packed one by one
when sent, so an unencodable body fails at ``send`` in the sender's own code, and
framed by prefixing the array header to the concatenated messages.
"""

from __future__ import annotations

from typing import Any

import msgpack
import msgspec

RUNTIME_ID = ""  # the id that addresses a runtime rather than one of its processes

# Control messages, addressed to RUNTIME_ID:
# - link: from_upid is the linking process (its runtime is who gets told), body is the
#   target's UPID. The target's runtime remembers the linker's runtime, or answers with
#   exited at once when no such process runs there.
# - exited: from_upid is the process that ended, body is None.
CONTROL_LINK = "libprocess/link"
CONTROL_EXITED = "libprocess/exited"

MAX_FRAME_HEADER_BYTES = 5  # the longest msgpack array header (array 32)


class MalformedFrame(ValueError):
    """Bytes from a peer that are not a batch of messages."""


class UnencodableBody(TypeError):
    """A message body that msgpack cannot encode (a bug in the sender's code)."""


class MessageTooLarge(ValueError):
    """A single message over the runtime's size limit."""


def frame_header(count: int) -> bytes:
    """The msgpack array header for ``count`` concatenated messages."""
    if count < 16:
        return bytes((0x90 | count,))
    if count < 0x10000:
        return b"\xdc" + count.to_bytes(2, "big")
    return b"\xdd" + count.to_bytes(4, "big")


class Plain:
    """A body its sender vouches is built only of msgpack's plain types: dict, list, str,
    bytes, int, float, bool and None (as the protocol codec's ``to_wire`` builds them).

    Sent remotely, it is packed by msgspec, about three times as fast as msgpack's packer on a
    master's offers, without msgpack's refusals (msgspec would quietly pack a set as a list:
    hence the promise). Delivered locally, the receiver gets ``body`` itself.
    """

    __slots__ = ("body",)

    def __init__(self, body: Any) -> None:
        self.body = body


def _plain_str(value: Any) -> str:
    """msgspec's hook for what it does not pack itself: in a plain body, str subclasses
    (a UPID in a ``pid`` field)."""
    if isinstance(value, str):
        return str(value)
    raise TypeError(f"objects of type {type(value).__name__} are not plain msgpack values")


class Encoder:
    """Packs messages one at a time (a reused Packer: not thread-safe, one per runtime loop)."""

    def __init__(self, max_message_bytes: int) -> None:
        self._pack = msgpack.Packer(use_bin_type=True).pack
        self._pack_plain = msgspec.msgpack.Encoder(enc_hook=_plain_str).encode
        self.max_message_bytes = max_message_bytes

    def encode(self, to_id: str, sender: str, name: str, body: Any) -> bytes:
        # The Packer resets its buffer when packing fails, so a bad body leaves no trace.
        try:
            if type(body) is Plain:
                data = self._pack_plain((to_id, sender, name, body.body))
            else:
                data = self._pack((to_id, sender, name, body))
        except (TypeError, ValueError, OverflowError) as error:
            raise _unencodable(to_id, name, error) from None
        if len(data) > self.max_message_bytes:
            raise _too_large(to_id, name, len(data), self.max_message_bytes)
        return data


_PLAIN_PACKER = msgspec.msgpack.Encoder(enc_hook=_plain_str)  # thread-safe, unlike Packer


def encode_message(to_id: str, sender: str, name: str, body: Any, max_message_bytes: int) -> bytes:
    """One encoded message, like ``Encoder.encode``, but safe to call from any thread."""
    try:
        if type(body) is Plain:
            data = _PLAIN_PACKER.encode((to_id, sender, name, body.body))
        else:
            data = msgpack.packb((to_id, sender, name, body), use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as error:
        raise _unencodable(to_id, name, error) from None
    if len(data) > max_message_bytes:
        raise _too_large(to_id, name, len(data), max_message_bytes)
    return data


def _unencodable(to_id: str, name: str, error: Exception) -> UnencodableBody:
    return UnencodableBody(
        f"cannot encode the body of message {name!r} for {to_id!r}: {error}; "
        "bodies must be built of dict, list, tuple, str, bytes, int (64-bit), float, bool "
        "and None: convert sets to lists and objects to dicts before sending"
    )


def _too_large(to_id: str, name: str, size: int, limit: int) -> MessageTooLarge:
    return MessageTooLarge(
        f"message {name!r} for {to_id!r} is {size} bytes, over the runtime's limit of "
        f"{limit}; send smaller messages or raise max_message_bytes on both runtimes"
    )


def encode_frame(messages: list[tuple[str, str, str, Any]]) -> bytes:
    """One frame from whole messages (for tests, tools and benchmarks)."""
    return msgpack.packb(messages, use_bin_type=True)


# Frames are decoded by msgspec (the same msgpack, about twice as fast to read as msgpack's
# own unpacker on the master's small messages). Bodies are packed by msgpack, which refuses
# what plain msgpack cannot carry (sets, objects), unless their sender vouches (``Plain``).
_decode = msgspec.msgpack.Decoder().decode


# The receive path reads only each message's envelope; its body stays msgpack bytes
# (``msgspec.Raw``, a view into the frame) until its handler runs: a message waiting in a
# mailbox costs its bytes, not the Python objects of its body (several times more for a status
# update; a master behind by 100,000 messages held hundreds of MB of them). Mesos's
# libprocess keeps a waiting message's body as bytes likewise, and parses it in the handler.
_decode_envelopes = msgspec.msgpack.Decoder(list[tuple[str, str, str, msgspec.Raw]]).decode
Raw = msgspec.Raw


def decode_envelopes(frame: bytes) -> list[Any]:
    """The batch in a frame as ``(to_id, sender, name, body)`` tuples, each body a ``Raw``
    for ``decode_body``; a frame that is not such a list is read as ``decode_frame`` reads it
    (the receiver then judges each message, and complains of the bad ones)."""
    try:
        return _decode_envelopes(frame)
    except msgspec.ValidationError:
        return decode_frame(frame)
    except Exception as error:
        raise MalformedFrame(f"frame of {len(frame)} bytes is not msgpack: {error}") from None


def decode_body(body: msgspec.Raw) -> Any:
    """A message's body from its bytes; ``MalformedFrame`` if they are not msgpack."""
    try:
        return _decode(body)
    except Exception as error:
        raise MalformedFrame(f"message body of {len(body)} bytes is not msgpack: {error}") from None


def decode_frame(frame: bytes) -> list[Any]:
    """The batch in a frame; messages inside are validated one by one by the receiver.

    Returns a list or raises ``MalformedFrame``, whatever the bytes are.
    """
    try:
        batch = _decode(frame)
    except Exception as error:  # bad bytes, or values no Python type holds (a map as a key)
        raise MalformedFrame(f"frame of {len(frame)} bytes is not msgpack: {error}") from None
    if type(batch) is not list:
        raise MalformedFrame(f"frame holds a {type(batch).__name__}, expected a list of messages")
    return batch
