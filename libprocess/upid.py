"""Process addresses: ``id@host:port``.

A UPID is a ``str`` subclass so that it packs into msgpack as a plain string,
compares and hashes as one, and costs nothing extra on the wire; its parts are
parsed once, when it is built.
"""

from __future__ import annotations


class InvalidUPID(ValueError):
    """A string that is not ``id@host:port``."""


class UPID(str):
    """The address of a process: its id, and the host:port of its runtime."""

    id: str
    host: str
    port: int
    address: str  # "host:port", the runtime's ZeroMQ endpoint without scheme

    def __new__(cls, value: str) -> UPID:
        if isinstance(value, UPID):
            return value
        self = super().__new__(cls, value)
        ident, at, address = value.rpartition("@")
        host, colon, port = address.rpartition(":")
        if not at or not ident or not colon or not host or not port.isdigit():
            raise InvalidUPID(f"expected a process address 'id@host:port', got {value!r}")
        port_number = int(port)
        if not 0 < port_number < 65536:
            raise InvalidUPID(f"port of {value!r} is out of range 1-65535")
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
