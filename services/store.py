"""Where the scheduler's state lives: apps, app versions, deployments, instance records and
the framework id, behind the ``Store`` interface.

``FileStore``, the default, keeps one file per record in the work directory. A write goes to
a temporary file in the same directory, is fsynced, renamed over the record (atomic on POSIX)
and the directory is fsynced: after a crash a record is either its old or its new content.
Each file ends with the SHA-256 of its body, so a torn or damaged record is never read back
as if it were whole (it is skipped and logged), and leftover temporary files are ignored and
removed on open. The high-availability work adds a ZooKeeper store behind the same interface.
"""

from __future__ import annotations

import abc
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
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        body, _, rest = data.rstrip(b"\n").rpartition(b"\n")
        if not body or hashlib.sha256(body).hexdigest().encode() != rest:
            log.error("store_record_damaged", path=str(path), size=len(data))
            return None
        return json.loads(body)

    @staticmethod
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
