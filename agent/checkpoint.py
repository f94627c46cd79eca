"""The agent's checkpoints: what a restarted agent needs to find its work again.

Mesos's agent "meta" directory, in our own format. Under ``<work_dir>/meta``::

    agent.msgpack                                  the agent's info, with its id
    frameworks/<fid>/framework.msgpack             FrameworkInfo and the scheduler's pid
    frameworks/<fid>/executors/<eid>.msgpack       one executor run (see ExecutorRecord)
    frameworks/<fid>/tasks/<tid>.msgpack           a task's status-update stream and state

Only frameworks that asked for it (``FrameworkInfo.checkpoint``) are written; the agent's own
record always is. Every file is replaced atomically (a temporary file, then ``os.replace``),
so a reader sees the old record or the new one, never a torn one. Files are not fsynced: they
guard against the agent process dying, not the machine (whose reboot ends every container
anyway). A file that cannot be read is logged and skipped, never fatal: the agent recovers
what it can, and what it cannot read ends as lost.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import structlog

from corral.ids import ExecutorID, FrameworkID, TaskID
from corral.protocol import AgentInfo, FrameworkInfo, ProtocolError

log = structlog.get_logger("agent.checkpoint")

_SUFFIX = ".msgpack"


@dataclass
class FrameworkCheckpoint:
    """One framework as recovered: its info, its driver's pid, its executors and streams."""

    info: FrameworkInfo
    pid: str
    executors: dict[ExecutorID, dict[str, Any]] = field(default_factory=dict)
    streams: dict[TaskID, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Recovered:
    """Everything read back from the meta directory."""

    agent: AgentInfo | None = None
    frameworks: dict[FrameworkID, FrameworkCheckpoint] = field(default_factory=dict)


class AgentCheckpoints:
    """Reads and writes the meta directory; the agent decides when (see agent/agent.py and
    agent/recovery.py)."""

    def __init__(self, meta_dir: Path) -> None:
        self.root = Path(meta_dir)

    # -- writing -------------------------------------------------------------------------

    def save_agent(self, info: AgentInfo) -> None:
        self._write(self.root / f"agent{_SUFFIX}", info.to_wire())

    def save_framework(self, info: FrameworkInfo, pid: str) -> None:
        assert info.id is not None
        path = self._framework_dir(info.id) / f"framework{_SUFFIX}"
        self._write(path, {"info": info.to_wire(), "pid": pid})

    def save_executor(
        self, framework_id: FrameworkID, executor_id: ExecutorID, record: dict[str, Any]
    ) -> None:
        path = self._framework_dir(framework_id) / "executors" / f"{executor_id}{_SUFFIX}"
        self._write(path, record)

    def remove_executor(self, framework_id: FrameworkID, executor_id: ExecutorID) -> None:
        path = self._framework_dir(framework_id) / "executors" / f"{executor_id}{_SUFFIX}"
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def save_stream(
        self, framework_id: FrameworkID, task_id: TaskID, record: dict[str, Any] | None
    ) -> None:
        """A task's stream record (None: the stream is gone, its file too)."""
        path = self._framework_dir(framework_id) / "tasks" / f"{task_id}{_SUFFIX}"
        if record is None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        else:
            self._write(path, record)

    def remove_framework(self, framework_id: FrameworkID) -> None:
        shutil.rmtree(self._framework_dir(framework_id), ignore_errors=True)

    def remove_agent(self) -> None:
        """Forget the agent: its id and everything checkpointed under it (the master refused
        it for good), so that the next agent on this work directory registers as new, as
        Mesos's agent removes its ``latest`` link."""
        shutil.rmtree(self.root, ignore_errors=True)

    # -- reading -------------------------------------------------------------------------

    def recover(self) -> Recovered:
        recovered = Recovered()
        agent = self._read(self.root / f"agent{_SUFFIX}")
        if agent is not None:
            recovered.agent = self._decode(AgentInfo, agent, "agent")
        frameworks = self.root / "frameworks"
        for directory in _children(frameworks):
            record = self._read(directory / f"framework{_SUFFIX}")
            info = None
            if isinstance(record, dict):
                info = self._decode(FrameworkInfo, record.get("info"), str(directory))
            if info is None or info.id != directory.name:
                log.warning("checkpoint_framework_unreadable", path=str(directory))
                continue
            framework = FrameworkCheckpoint(info, str(record.get("pid") or ""))
            for path in _children(directory / "executors"):
                executor = self._read(path)
                if isinstance(executor, dict):
                    framework.executors[ExecutorID(path.name.removesuffix(_SUFFIX))] = executor
            for path in _children(directory / "tasks"):
                stream = self._read(path)
                if isinstance(stream, dict):
                    framework.streams[TaskID(path.name.removesuffix(_SUFFIX))] = stream
            recovered.frameworks[info.id] = framework
        return recovered

    # -- inside ----------------------------------------------------------------------------

    def _framework_dir(self, framework_id: FrameworkID) -> Path:
        return self.root / "frameworks" / framework_id

    def _write(self, path: Path, data: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_bytes(msgpack.packb(data, use_bin_type=True))
        os.replace(temporary, path)

    def _read(self, path: Path) -> Any:
        try:
            return msgpack.unpackb(path.read_bytes(), raw=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, msgpack.UnpackException) as error:
            log.warning("checkpoint_unreadable", path=str(path), error=repr(error))
            return None

    @staticmethod
    def _decode(kind: Any, data: Any, where: str) -> Any:
        try:
            return kind.from_wire(data)
        except (ProtocolError, TypeError, ValueError, KeyError) as error:
            log.warning("checkpoint_unreadable", path=where, error=repr(error))
            return None


def _children(directory: Path) -> Iterator[Path]:
    """Entries of ``directory`` (none if missing), skipping half-written temporaries."""
    try:
        entries = sorted(directory.iterdir())
    except FileNotFoundError:
        return
    for entry in entries:
        if not entry.name.startswith("."):
            yield entry
