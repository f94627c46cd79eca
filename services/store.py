"""Where the scheduler's state lives: apps, app versions, deployments, instance records and
the framework id, behind the ``Store`` interface.

``LogStore``, the default, is an append-only log with snapshots in the work directory: one
fsync per change, or per batch of changes (``batch()``: the launches of one round of offers).
``FileStore`` keeps one file per record instead: a write goes to a temporary file in the same
directory, is fsynced, renamed over the record (atomic on POSIX) and the directory is fsynced.
Both end what they write with a SHA-256, so a torn or damaged write is never read back as if
it were whole. The high-availability work adds a ZooKeeper store behind the same interface.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import json
import os
import urllib.parse
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger("services.store")

NAMESPACES = ("apps", "versions", "deployments", "instances", "framework")
_TMP = ".tmp"


class Store(abc.ABC):
    """Records by namespace and key; values are JSON-compatible. ``put`` and ``delete``
    return once the change is durable."""

    @abc.abstractmethod
    def put(self, namespace: str, key: str, value: Any) -> None: ...

    @abc.abstractmethod
    def delete(self, namespace: str, key: str) -> None: ...

    @abc.abstractmethod
    def get(self, namespace: str, key: str) -> Any | None: ...

    @abc.abstractmethod
    def all(self, namespace: str) -> dict[str, Any]:
        """Every record of ``namespace``, by key."""

    def batch(self) -> contextlib.AbstractContextManager[None]:
        """Changes made inside are made durable together when it ends (where the store can;
        by default each change is durable on its own already)."""
        return contextlib.nullcontext()

    def close(self) -> None:  # noqa: B027 (a hook: most stores hold nothing open)
        """Release what the store holds open; it is not used afterwards."""


class FileStore(Store):
    """See the module docstring. One process at a time owns a directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        for namespace in NAMESPACES:
            directory = self.root / namespace
            directory.mkdir(parents=True, exist_ok=True)
            for leftover in directory.glob(f"*{_TMP}"):
                leftover.unlink()  # a write that never completed: its record is the old one

    def _path(self, namespace: str, key: str) -> Path:
        if namespace not in NAMESPACES:
            raise ValueError(f"namespace is one of {', '.join(NAMESPACES)}; got {namespace!r}")
        return self.root / namespace / urllib.parse.quote(key, safe="")

    def put(self, namespace: str, key: str, value: Any) -> None:
        path = self._path(namespace, key)
        body = json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
        data = body + b"\n" + hashlib.sha256(body).hexdigest().encode() + b"\n"
        temporary = path.with_name(path.name + _TMP)
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
        self._sync_directory(path.parent)

    def delete(self, namespace: str, key: str) -> None:
        path = self._path(namespace, key)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        self._sync_directory(path.parent)

    def get(self, namespace: str, key: str) -> Any | None:
        return self._read(self._path(namespace, key))

    def all(self, namespace: str) -> dict[str, Any]:
        out = {}
        directory = self._path(namespace, "x").parent
        for path in sorted(directory.iterdir()):
            if path.name.endswith(_TMP):
                continue
            value = self._read(path)
            if value is not None:
                out[urllib.parse.unquote(path.name)] = value
        return out

    @staticmethod
    def _read(path: Path) -> Any | None:
        return _read_checked(path)

    @staticmethod
    def _sync_directory(directory: Path) -> None:
        _sync_directory(directory)


def _read_checked(path: Path) -> Any | None:
    """A record's body if its checksum holds; None (logged) if it is damaged or absent."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    body, _, rest = data.rstrip(b"\n").rpartition(b"\n")
    if not body or hashlib.sha256(body).hexdigest().encode() != rest:
        log.error("store_record_damaged", path=str(path), size=len(data))
        return None
    return json.loads(body)


def _sync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class MemoryStore(Store):
    """A store that forgets everything with its process: for cores under test."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {n: {} for n in NAMESPACES}

    def put(self, namespace: str, key: str, value: Any) -> None:
        self.data[namespace][key] = json.loads(json.dumps(value))

    def delete(self, namespace: str, key: str) -> None:
        self.data[namespace].pop(key, None)

    def get(self, namespace: str, key: str) -> Any | None:
        return self.data[namespace].get(key)

    def all(self, namespace: str) -> dict[str, Any]:
        return dict(self.data[namespace])


class LogStore(Store):
    """An append-only log with snapshots, in ``root``: every change is one line of the log
    (its SHA-256, then the change as JSON), appended and fsynced; inside ``batch()`` the
    changes of the whole batch go out as one write and one fsync, which is what makes
    launching thousands of instances cheap. On open the snapshot is read and the log replayed
    on top; a torn last line (a crash mid-append) fails its checksum, is dropped and cut off.
    When the log outgrows ``compact_after`` bytes, the whole state is written as a new
    snapshot (temporary file, fsync, rename) and the log emptied; a crash between the two
    only replays changes already in the snapshot, which changes nothing."""

    def __init__(self, root: str | os.PathLike[str], compact_after: int = 8 * 1024 * 1024):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.compact_after = compact_after
        self.data: dict[str, dict[str, Any]] = {n: {} for n in NAMESPACES}
        self._pending: list[bytes] | None = None  # lines of the batch under way
        self._depth = 0
        snapshot = _read_checked(self.root / "snapshot")
        if snapshot is None and (self.root / "snapshot").exists():
            raise RuntimeError(
                f"the snapshot {self.root / 'snapshot'} is damaged; restore it from a backup "
                "or move the directory away to start empty"
            )
        for namespace, records in (snapshot or {}).items():
            self.data[namespace].update(records)
        self._log_path = self.root / "log"
        self._replay()
        self._log = open(self._log_path, "ab")  # noqa: SIM115 (open for the store's life)

    def _replay(self) -> None:
        try:
            data = self._log_path.read_bytes()
        except FileNotFoundError:
            return
        good = 0
        for line in data.splitlines(keepends=True):
            digest, _, body = line.rstrip(b"\n").partition(b" ")
            if not line.endswith(b"\n") or hashlib.sha256(body).hexdigest().encode() != digest:
                log.warning(
                    "store_log_torn_tail", path=str(self._log_path), dropped=len(data) - good
                )
                break
            self._apply(json.loads(body))
            good += len(line)
        if good != len(data):
            with open(self._log_path, "r+b") as file:
                file.truncate(good)
                os.fsync(file.fileno())

    def _apply(self, change: dict[str, Any]) -> None:
        records = self.data[change["ns"]]
        if change["op"] == "put":
            records[change["key"]] = change["value"]
        else:
            records.pop(change["key"], None)

    def _record(self, change: dict[str, Any]) -> None:
        if change["ns"] not in NAMESPACES:
            raise ValueError(f"namespace is one of {', '.join(NAMESPACES)}; got {change['ns']!r}")
        body = json.dumps(change, separators=(",", ":"), sort_keys=True).encode()
        line = hashlib.sha256(body).hexdigest().encode() + b" " + body + b"\n"
        self._apply(json.loads(body))  # a copy: later changes to the caller's value are not ours
        if self._pending is not None:
            self._pending.append(line)
        else:
            self._write([line])

    def _write(self, lines: list[bytes]) -> None:
        if not lines:
            return
        self._log.write(b"".join(lines))
        self._log.flush()
        os.fsync(self._log.fileno())
        if self._log.tell() > self.compact_after:
            self.compact()

    def batch(self) -> contextlib.AbstractContextManager[None]:
        return _Batch(self)

    def put(self, namespace: str, key: str, value: Any) -> None:
        self._record({"op": "put", "ns": namespace, "key": key, "value": value})

    def delete(self, namespace: str, key: str) -> None:
        self._record({"op": "delete", "ns": namespace, "key": key})

    def get(self, namespace: str, key: str) -> Any | None:
        return self.data[namespace].get(key)

    def all(self, namespace: str) -> dict[str, Any]:
        return dict(self.data[namespace])

    def compact(self) -> None:
        """Write the whole state as the snapshot, then empty the log."""
        body = json.dumps(self.data, separators=(",", ":"), sort_keys=True).encode()
        data = body + b"\n" + hashlib.sha256(body).hexdigest().encode() + b"\n"
        temporary = self.root / "snapshot.tmp"
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.root / "snapshot")
        _sync_directory(self.root)
        self._log.truncate(0)
        self._log.seek(0)
        os.fsync(self._log.fileno())

    def close(self) -> None:
        self._log.close()


class _Batch:
    def __init__(self, store: LogStore) -> None:
        self.store = store

    def __enter__(self) -> None:
        if self.store._depth == 0:
            self.store._pending = []
        self.store._depth += 1

    def __exit__(self, *exc: object) -> None:
        self.store._depth -= 1
        if self.store._depth == 0:
            lines, self.store._pending = self.store._pending or [], None
            self.store._write(lines)  # also after an error: what was applied is kept
