"""The record table: every name this server answers, and what it answers, kept up to date.

Records belong to owners (a task, an agent, the leading master…); an owner's records are
replaced as one (``replace``), so a task that changes its address or ends leaves nothing
behind. Two owners may give the same name the same value (two tasks of one app on one agent):
the value stays until both have gone. Names are absolute and lower-case (``web.app.corral.``).
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass


class RecordType(enum.Enum):
    A = "A"
    AAAA = "AAAA"
    SRV = "SRV"


@dataclass(frozen=True, slots=True)
class Record:
    """One resource record. ``value`` is an address for A/AAAA, ``target:port`` for SRV (as
    Mesos-DNS's ``/v1/enumerate`` shows it)."""

    name: str
    type: RecordType
    value: str

    @property
    def srv_target(self) -> tuple[str, int]:
        target, _, port = self.value.rpartition(":")
        return target, int(port)


class RecordTable:
    """Names to values, by type; see the module docstring."""

    def __init__(self) -> None:
        # Invariant: _values[type][name][value] is the number of owners whose records include
        # (name, type, value); a name with no values left is deleted.
        self._values: dict[RecordType, dict[str, Counter[str]]] = {kind: {} for kind in RecordType}
        self._owned: dict[Hashable, tuple[Record, ...]] = {}
        # Invariant: _names[name] counts the records of all types under name (NXDOMAIN vs
        # NODATA: a name with records of another type exists).
        self._names: Counter[str] = Counter()
        self.generation = 1  # changes with every change of the records: the SOA serial
        self._watchers: list[Callable[[set[str] | None], None]] = []

    def watch(self, changed: Callable[[set[str] | None], None]) -> None:
        """Call ``changed`` with the names whose records changed, after every change (None:
        all of them), so that what was derived from them can be forgotten."""
        self._watchers.append(changed)

    def __len__(self) -> int:
        return sum(self._names.values())

    def replace(self, owner: Hashable, records: Iterable[Record]) -> bool:
        """``owner``'s records are now ``records`` (none: the owner is gone); True when that
        changed anything."""
        new = tuple(dict.fromkeys(records))  # duplicates of one owner count once
        old = self._owned.get(owner, ())
        if old == new:
            return False
        for record in old:
            self._remove(record)
        for record in new:
            self._add(record)
        if new:
            self._owned[owner] = new
        else:
            self._owned.pop(owner, None)
        self.generation += 1
        if self._watchers:
            names = {record.name for record in set(old).symmetric_difference(new)}
            for watcher in self._watchers:
                watcher(names)
        return True

    def clear(self) -> None:
        for kind in RecordType:
            self._values[kind].clear()
        self._owned.clear()
        self._names.clear()
        self.generation += 1
        for watcher in self._watchers:
            watcher(None)

    def owned(self, owner: Hashable) -> tuple[Record, ...]:
        return self._owned.get(owner, ())

    def lookup(self, name: str, kind: RecordType) -> list[str]:
        """The values of ``name`` (absolute, any case) for ``kind``; [] if none."""
        values = self._values[kind].get(name.lower())
        return list(values) if values else []

    def exists(self, name: str) -> bool:
        return name.lower() in self._names

    def names(self) -> int:
        return len(self._names)

    def _add(self, record: Record) -> None:
        by_name = self._values[record.type]
        values = by_name.get(record.name)
        if values is None:
            values = by_name[record.name] = Counter()
        values[record.value] += 1
        self._names[record.name] += 1

    def _remove(self, record: Record) -> None:
        values = self._values[record.type][record.name]
        values[record.value] -= 1
        if values[record.value] == 0:
            del values[record.value]
            if not values:
                del self._values[record.type][record.name]
        self._names[record.name] -= 1
        if self._names[record.name] == 0:
            del self._names[record.name]
