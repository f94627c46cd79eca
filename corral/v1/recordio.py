"""RecordIO, the framing of Mesos's v1 streams: ``<decimal length>\\n<record>``, repeated.

Records may arrive split or joined across chunks in any way, so the decoder is incremental.
"""

from __future__ import annotations

MAX_RECORD = 64 * 1024 * 1024  # bytes; a longer announced record is refused as corrupt


class RecordIOError(ValueError):
    """The stream is not RecordIO (a bad length line, or an absurd length)."""


def encode(record: bytes) -> bytes:
    return b"%d\n%s" % (len(record), record)


class Decoder:
    """Feed bytes as they come; get whole records back."""

    def __init__(self, max_record: int = MAX_RECORD) -> None:
        self._buffer = bytearray()
        self._max = max_record

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        records = []
        while True:
            newline = self._buffer.find(b"\n")
            if newline < 0:
                if len(self._buffer) > 20:
                    raise RecordIOError(f"no record length within {bytes(self._buffer[:20])!r}")
                return records
            line = bytes(self._buffer[:newline]).strip()
            if not line.isdigit():
                raise RecordIOError(f"a record starts with its decimal length, got {line!r}")
            length = int(line)
            if length > self._max:
                raise RecordIOError(f"a record of {length} bytes is over the {self._max} limit")
            end = newline + 1 + length
            if len(self._buffer) < end:
                return records
            records.append(bytes(self._buffer[newline + 1 : end]))
            del self._buffer[:end]
