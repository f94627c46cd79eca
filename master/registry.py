"""The registry: which agents the master has admitted, persisted in its work directory.

The embedded default of Mesos's registrar, as a snapshot and a log:

- ``<work_dir>/registry.json``: every agent as of the last compaction (``{"version": 1,
  "agents": {id: {"info", "status"}}}``), replaced atomically (temporary file, fsync, rename);
- ``<work_dir>/registry.log``: one JSON line per change since then (``{"agents": {...}}``, the
  entries that change), appended and fsynced before the master answers the agents concerned.

A change costs the size of the change, not of the registry: at 20,000 agents, rewriting the
whole file for every batch of registrations took most of a second each. When the log holds as
many entries as the registry has agents (at least ``MIN_COMPACTION``), the snapshot is
rewritten and the log emptied, so the work stays linear overall. Recovery reads the snapshot,
then replays the log; a torn last line (the master died while appending it) is dropped: its
agents were not answered yet, and they retry.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import structlog

from corral.ids import AgentID
from corral.protocol import AgentInfo, ProtocolError, json_compatible

log = structlog.get_logger("master.registry")

FILE_NAME = "registry.json"
LOG_NAME = "registry.log"
MIN_COMPACTION = 1024  # log entries before a compaction is considered
_VERSION = 1


class AgentStatus(enum.Enum):
    ADMITTED = "ADMITTED"  # registered; may re-register after a restart
    UNREACHABLE = "UNREACHABLE"  # stopped answering pings; may come back
    GONE = "GONE"  # left for good; its id is refused from now on


class RegistryError(RuntimeError):
    """The registry cannot be read or written (a fault of the master's host)."""


@dataclass(frozen=True)
class Entry:
    info: AgentInfo
    status: AgentStatus


class Registry:
    """Admitted agents by id; every change is on disk when the method returns."""

    def __init__(self, work_dir: str) -> None:
        self.path = os.path.join(work_dir, FILE_NAME)
        self.log_path = os.path.join(work_dir, LOG_NAME)
        self._work_dir = work_dir
        self._agents: dict[AgentID, Entry] = {}
        self._wire: dict[AgentID, dict[str, Any]] = {}  # each entry's JSON, made once
        self._logged = 0  # entries in the log since the snapshot

    def recover(self) -> None:
        """Read what an earlier run left (nothing: an empty registry)."""
        agents: dict[AgentID, Entry] = {}
        wire: dict[AgentID, dict[str, Any]] = {}
        try:
            with open(self.path, encoding="utf-8") as file:
                data = json.load(file)
            self._take(data["agents"], agents, wire, self.path)
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise RegistryError(
                f"cannot read the registry {self.path}: {error}; fix or move the file away "
                "(moving it away forgets which agents were admitted)"
            ) from None
        logged = 0
        try:
            with open(self.log_path, encoding="utf-8") as file:
                text = file.read()
        except FileNotFoundError:
            text = ""
        except OSError as error:
            raise RegistryError(f"cannot read the registry log {self.log_path}: {error}") from None
        complete, _, torn = text.rpartition("\n")
        if torn:  # the master died while appending it: those agents were never answered
            log.warning("registry_torn_line_dropped", path=self.log_path, length=len(torn))
        for index, line in enumerate(complete.split("\n") if complete else ()):
            try:
                changes = json.loads(line)["agents"]
            except (ValueError, KeyError, TypeError) as error:
                raise RegistryError(
                    f"the registry log {self.log_path} is corrupt at line {index + 1} "
                    f"({error}); fix or move it away (moving it away forgets the changes since "
                    "the last compaction)"
                ) from None
            self._take(changes, agents, wire, f"{self.log_path}:{index + 1}")
            logged += len(changes)
        self._agents, self._wire, self._logged = agents, wire, logged

    @staticmethod
    def _take(
        items: Any, agents: dict[AgentID, Entry], wire: dict[AgentID, dict[str, Any]], where: str
    ) -> None:
        try:
            for agent_id, item in items.items():
                entry = Entry(AgentInfo.from_wire(item["info"]), AgentStatus(item["status"]))
                agents[AgentID(agent_id)] = entry
                wire[AgentID(agent_id)] = item
        except (AttributeError, KeyError, TypeError, ValueError, ProtocolError) as error:
            raise RegistryError(
                f"the registry {where} is not in the expected format ({error!r})"
            ) from None

    # -- reading ------------------------------------------------------------------------

    def status(self, agent_id: AgentID) -> AgentStatus | None:
        entry = self._agents.get(agent_id)
        return entry.status if entry else None

    def entries(self) -> dict[AgentID, Entry]:
        return dict(self._agents)

    def __contains__(self, agent_id: object) -> bool:
        return agent_id in self._agents

    def __len__(self) -> int:
        return len(self._agents)

    # -- changes (each one written before returning) --------------------------------------

    def admit(self, *infos: AgentInfo) -> None:
        """Record agents (each ``info`` carries its id) as admitted, in one write."""
        entries: dict[AgentID, Entry] = {}
        for info in infos:
            if info.id is None:
                raise ValueError(f"an agent is admitted with its id set, got {info!r}")
            entries[info.id] = Entry(info, AgentStatus.ADMITTED)
        self._change(entries)

    def mark(self, agent_id: AgentID, status: AgentStatus) -> None:
        self.mark_all((agent_id,), status)

    def mark_all(self, agent_ids: Iterable[AgentID], status: AgentStatus) -> None:
        """Give recorded agents a new status, in one write (unknown ids are skipped)."""
        entries = {
            agent_id: Entry(entry.info, status)
            for agent_id in agent_ids
            if (entry := self._agents.get(agent_id)) is not None and entry.status is not status
        }
        self._change(entries)

    def _change(self, entries: dict[AgentID, Entry]) -> None:
        """Log ``entries``, then apply them; on a failed write nothing is changed."""
        if not entries:
            return
        wire = {
            agent_id: {
                "info": json_compatible(entry.info.to_wire()),
                "status": entry.status.value,
            }
            for agent_id, entry in entries.items()
        }
        try:
            self._append(json.dumps({"agents": wire}, sort_keys=True))
        except OSError as error:
            raise RegistryError(f"cannot write the registry log {self.log_path}: {error}") from None
        self._agents.update(entries)
        self._wire.update(wire)
        self._logged += len(entries)
        if self._logged >= max(MIN_COMPACTION, len(self._agents)):
            try:
                self._compact()
            except OSError as error:  # the log still holds everything: only a warning
                log.warning("registry_compaction_failed", path=self.path, error=str(error))

    def _append(self, line: str) -> None:
        os.makedirs(self._work_dir, exist_ok=True)
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def _compact(self) -> None:
        """Write the whole registry as the snapshot, then start an empty log."""
        self._replace(self.path, json.dumps({"version": _VERSION, "agents": self._wire}))
        self._replace(self.log_path, "")
        log.info("registry_compacted", agents=len(self._agents), entries=self._logged)
        self._logged = 0

    def _replace(self, path: str, text: str) -> None:
        fd, temporary = tempfile.mkstemp(prefix=".registry-", dir=self._work_dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
