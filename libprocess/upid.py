"""Process addresses: ``id@host:port``.

A UPID is a ``str`` subclass so that it packs into msgpack as a plain string,
compares and hashes as one, and costs nothing extra on the wire; its parts are
parsed once, when it is built.

Only the canonical spelling parses: equality is string equality, so two spellings of
one address (``h:80`` and ``h:080``) would be two different processes to every map
keyed by UPID, and the runtime would mistake a local address for a remote one.
"""

from __future__ import annotations

_EXPECTED = "expected a process address 'id@host:port'"


class InvalidUPID(ValueError):
    """A string that is not ``id@host:port``."""


class UPID(str):
    """The address of a process: its id, and the host:port of its runtime.

    The id has no '@'; neither part has whitespace or control characters; the port
    is 1-65535 in ASCII decimal digits without leading zeros.
    """

    id: str
    host: str
    port: int
    address: str  # "host:port", the runtime's ZeroMQ endpoint without scheme

    def __new__(cls, value: str) -> UPID:
        if isinstance(value, UPID):
            return value
        if not isinstance(value, str):
            raise InvalidUPID(f"{_EXPECTED} as a str, got {type(value).__name__} {value!r}")
        ident, at, address = value.partition("@")
        host, colon, port = address.rpartition(":")
        if not (at and ident and colon and host and "@" not in address):
            raise InvalidUPID(f"{_EXPECTED}, got {value!r}")
        if not value.isprintable() or " " in value:
            raise InvalidUPID(
                f"{_EXPECTED} without whitespace or control characters, got {value!r}"
            )
        # isascii() first: str.isdigit() also accepts digits int() rejects (superscripts) and
        # digits ZeroMQ does not read (Arabic-Indic); the length bound keeps int() far from
        # its digit limit.
        if not (port.isascii() and port.isdigit() and len(port) <= 5 and port[0] != "0"):
            raise InvalidUPID(
                f"{_EXPECTED} with a decimal port 1-65535 (no sign, no leading zero), got {value!r}"
            )
        port_number = int(port)
        if port_number > 65535:
            raise InvalidUPID(f"{_EXPECTED} with a port in 1-65535, got {value!r}")
        self = super().__new__(cls, value)
        self.id = ident
        self.host = host
        self.port = port_number
        self.address = address
        return self

    @classmethod
    def of(cls, ident: str, host: str, port: int) -> UPID:
        return cls(f"{ident}@{host}:{port}")

    @property
    def endpoint(self) -> str:
        """The ZeroMQ endpoint of the runtime that hosts this process."""
        return f"tcp://{self.address}"

    def __repr__(self) -> str:
        return f"UPID({str.__str__(self)!r})"

    def __reduce__(self):
        return (UPID, (str(self),))


class UPIDCache:
    """Interns UPIDs parsed from incoming messages, so a busy peer costs one dict lookup."""

    def __init__(self, capacity: int = 65536) -> None:
        self._capacity = capacity
        self._cache: dict[str, UPID] = {}

    def get(self, value: str) -> UPID:
        try:
            return self._cache[value]
        except KeyError:
            pid = UPID(value)
            if len(self._cache) >= self._capacity:
                self._cache.clear()
            self._cache[value] = pid
            return pid
