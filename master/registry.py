"""The registry: which agents the master has admitted, and an operator's settings (role
weights, quotas, deactivated agents), persisted in its work directory.

The embedded default of Mesos's registrar, as a snapshot and a log:

- ``<work_dir>/registry.json``: everything as of the last compaction (``{"version": 1,
  "agents": {id: {"info", "status"}}, "weights": {role: weight}, "quotas": {role:
  {"guarantees", "limits"}}, "deactivated": [id, ...]}``), replaced atomically (temporary
  file, fsync, rename);
- ``<work_dir>/registry.log``: one JSON line per change since then (``{"agents": {...}}``,
  ``{"weights": {...}}``, ``{"quotas": {role: {...} | null}}``, ``{"deactivated": {id:
  bool}}``: the entries that change), appended and fsynced before the master answers whoever
  asked for the change.

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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from corral.ids import AgentID
from corral.protocol import AgentInfo, ProtocolError, json_compatible
from master.allocator.quota import Quota

log = structlog.get_logger("master.registry")

FILE_NAME = "registry.json"
LOG_NAME = "registry.log"
MIN_COMPACTION = 1024  # log entries before a compaction is considered
_VERSION = 1
_SECTIONS = frozenset({"agents", "weights", "quotas", "deactivated"})


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


@dataclass
class Settings:
    """An operator's settings: they outlive a master restart, as the agents do."""

    weights: dict[str, float]
    quotas: dict[str, Quota]
    deactivated: set[AgentID]

    @classmethod
    def empty(cls) -> Settings:
        return cls({}, {}, set())

    def take(self, changes: Mapping[str, Any]) -> int:
        """Apply a log line's (or the snapshot's) settings; returns how many entries."""
        weights = changes.get("weights", {})
        quotas = changes.get("quotas", {})
        deactivated = changes.get("deactivated", {})
        if isinstance(deactivated, list):  # the snapshot lists them
            deactivated = dict.fromkeys(deactivated, True)
        for role, weight in weights.items():
            self.weights[role] = float(weight)
        for role, quota in quotas.items():
            if quota is None:
                self.quotas.pop(role, None)
            else:
                self.quotas[role] = Quota(dict(quota["guarantees"]), dict(quota["limits"]))
        for agent_id, flag in deactivated.items():
            if flag:
                self.deactivated.add(AgentID(agent_id))
            else:
                self.deactivated.discard(AgentID(agent_id))
        return len(weights) + len(quotas) + len(deactivated)

    def to_json(self) -> dict[str, Any]:
        return {
            "weights": dict(sorted(self.weights.items())),
            "quotas": {role: _quota_json(quota) for role, quota in sorted(self.quotas.items())},
            "deactivated": sorted(self.deactivated),
        }


def _quota_json(quota: Quota) -> dict[str, Any]:
    return {"guarantees": dict(quota.guarantees), "limits": dict(quota.limits)}


class Registry:
    """Admitted agents by id, and the settings; every change is on disk when the method
    returns."""

    def __init__(self, work_dir: str) -> None:
        self.path = os.path.join(work_dir, FILE_NAME)
        self.log_path = os.path.join(work_dir, LOG_NAME)
        self._work_dir = work_dir
        self._agents: dict[AgentID, Entry] = {}
        # Each entry's JSON text, made once (compaction joins them): as text it is ~1/5 of
        # the dicts it was kept as (~2 KB an agent, 40 MB at 20,000 agents).
        self._wire: dict[AgentID, str] = {}
        self.settings = Settings.empty()  # read it; change it with the set_ methods
        self._logged = 0  # entries in the log since the snapshot
        self.writes = 0  # appends to the log since this registry was made

    def recover(self) -> None:
        """Read what an earlier run left (nothing: an empty registry)."""
        agents: dict[AgentID, Entry] = {}
        wire: dict[AgentID, str] = {}
        settings = Settings.empty()
        try:
            with open(self.path, encoding="utf-8") as file:
                data = json.load(file)
            self._take(data["agents"], agents, wire, self.path)
            self._take_settings(data, settings, self.path)
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
                changes = json.loads(line)
                if not isinstance(changes, dict) or not changes.keys() & _SECTIONS:
                    raise ValueError(f"a line names one of {', '.join(sorted(_SECTIONS))}")
            except ValueError as error:
                raise RegistryError(
                    f"the registry log {self.log_path} is corrupt at line {index + 1} "
                    f"({error}); fix or move it away (moving it away forgets the changes since "
                    "the last compaction)"
                ) from None
            where = f"{self.log_path}:{index + 1}"
            agent_changes = changes.get("agents", {})
            self._take(agent_changes, agents, wire, where)
            logged += len(agent_changes) + self._take_settings(changes, settings, where)
        self._agents, self._wire, self._logged = agents, wire, logged
        self.settings = settings

    @staticmethod
    def _take_settings(changes: dict[str, Any], settings: Settings, where: str) -> int:
        try:
            return settings.take(changes)
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            raise RegistryError(
                f"the registry {where} has settings not in the expected format ({error!r})"
            ) from None

    @staticmethod
    def _take(
        items: Any, agents: dict[AgentID, Entry], wire: dict[AgentID, str], where: str
    ) -> None:
        try:
            for agent_id, item in items.items():
                entry = Entry(AgentInfo.from_wire(item["info"]), AgentStatus(item["status"]))
                agents[AgentID(agent_id)] = entry
                wire[AgentID(agent_id)] = json.dumps(item)
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

    def set_weights(self, weights: Mapping[str, float]) -> None:
        """Record role weights (others keep theirs), in one write."""
        self._log({"weights": {role: float(weight) for role, weight in weights.items()}})

    def set_quotas(self, quotas: Mapping[str, Quota]) -> None:
        """Record role quotas, in one write; a default (empty) quota removes the role's."""
        self._log(
            {
                "quotas": {
                    role: None if quota.is_default() else _quota_json(quota)
                    for role, quota in quotas.items()
                }
            }
        )

    def set_deactivated(self, agent_id: AgentID, deactivated: bool) -> None:
        """Record that an operator deactivated (or reactivated) an agent."""
        self._log({"deactivated": {agent_id: deactivated}})

    def _log(self, changes: dict[str, Any]) -> None:
        """Write settings changes, then apply them; on a failed write nothing is changed."""
        self._append_line(changes)
        self._logged += self.settings.take(changes)
        self._maybe_compact()

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
        self._append_line({"agents": wire})
        self._agents.update(entries)
        self._wire.update((agent_id, json.dumps(item)) for agent_id, item in wire.items())
        self._logged += len(entries)
        self._maybe_compact()

    def _append_line(self, changes: dict[str, Any]) -> None:
        try:
            self._append(json.dumps(changes, sort_keys=True))
        except OSError as error:
            raise RegistryError(f"cannot write the registry log {self.log_path}: {error}") from None
        self.writes += 1

    def _maybe_compact(self) -> None:
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
        self._replace(self.path, self._snapshot_text())
        self._replace(self.log_path, "")
        log.info("registry_compacted", agents=len(self._agents), entries=self._logged)
        self._logged = 0

    def _snapshot_text(self) -> str:
        """``json.dumps({"version": …, "agents": {id: entry…}, **settings})``, byte for byte,
        with each agent's entry the text kept for it."""
        agents = ", ".join(
            f"{json.dumps(agent_id)}: {text}" for agent_id, text in self._wire.items()
        )
        settings = json.dumps(self.settings.to_json())[1:-1]
        head = f'{{"version": {json.dumps(_VERSION)}, "agents": {{{agents}}}'
        return head + (f", {settings}}}" if settings else "}")

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
