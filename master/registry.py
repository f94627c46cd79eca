"""The registry: which agents the master has admitted, persisted in its work directory.

The embedded default of Mesos's registrar: one JSON file, ``<work_dir>/registry.json``,
rewritten atomically (a temporary file, fsync, ``os.replace``) on every change, before the
master answers the agent, so that an admitted agent is never forgotten by a restarted
master. A later issue adds a replicated engine behind the same methods.

After a restart the master reads it back (``recover``): ADMITTED agents are expected to
re-register (within the master's ``agent_reregister_timeout``, else they are marked
UNREACHABLE), UNREACHABLE ones are listed as such, GONE ones stay refused.
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

from corral.ids import AgentID
from corral.protocol import AgentInfo, ProtocolError, json_compatible

FILE_NAME = "registry.json"
_VERSION = 1


class AgentStatus(enum.Enum):
    ADMITTED = "ADMITTED"  # registered; may re-register after a restart
    UNREACHABLE = "UNREACHABLE"  # stopped answering pings; may come back
    GONE = "GONE"  # left for good; its id is refused from now on


class RegistryError(RuntimeError):
    """The registry file cannot be read or written (a fault of the master's host)."""


@dataclass(frozen=True)
class Entry:
    info: AgentInfo
    status: AgentStatus


class Registry:
    """Admitted agents by id; every change is on disk when the method returns."""

    def __init__(self, work_dir: str) -> None:
        self.path = os.path.join(work_dir, FILE_NAME)
        self._work_dir = work_dir
        self._agents: dict[AgentID, Entry] = {}

    def recover(self) -> None:
        """Read the file left by an earlier run (none: an empty registry)."""
        try:
            with open(self.path, encoding="utf-8") as file:
                data = json.load(file)
        except FileNotFoundError:
            return
        except (OSError, ValueError) as error:
            raise RegistryError(
                f"cannot read the registry {self.path}: {error}; fix or move the file away "
                "(moving it away forgets which agents were admitted)"
            ) from None
        try:
            agents = {
                AgentID(agent_id): Entry(
                    AgentInfo.from_wire(item["info"]), AgentStatus(item["status"])
                )
                for agent_id, item in data["agents"].items()
            }
        except (KeyError, TypeError, ValueError, ProtocolError) as error:
            raise RegistryError(
                f"the registry {self.path} is not in the expected format ({error!r})"
            ) from None
        self._agents = agents

    # -- reading ------------------------------------------------------------------------

    def status(self, agent_id: AgentID) -> AgentStatus | None:
        entry = self._agents.get(agent_id)
        return entry.status if entry else None

    def entries(self) -> dict[AgentID, Entry]:
        """Every recorded agent (a copy: changes go through the methods below)."""
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
        if entries:
            self._change(entries)

    def _change(self, entries: dict[AgentID, Entry]) -> None:
        """Apply ``entries`` and write; on a failed write nothing is changed."""
        before = dict(self._agents)
        self._agents.update(entries)
        try:
            self._write()
        except OSError as error:
            self._agents = before
            raise RegistryError(f"cannot write the registry {self.path}: {error}") from None

    def _write(self) -> None:
        data: dict[str, Any] = {
            "version": _VERSION,
            "agents": {
                agent_id: {
                    "info": json_compatible(entry.info.to_wire()),
                    "status": entry.status.value,
                }
                for agent_id, entry in self._agents.items()
            },
        }
        os.makedirs(self._work_dir, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=".registry-", dir=self._work_dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                json.dump(data, file, indent=1, sort_keys=True)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
