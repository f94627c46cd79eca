"""The JSON of each agent, framework and task, kept serialized between builds of the state.

``/master/state`` at 20,000 agents and 100,000 tasks is ~100 MB of JSON; building its dicts
and ``json.dumps`` of them took seconds of the master's actor at every poll, though between two
polls only a few entities change. Here each entity's dict is built once and serialized once,
and kept while the entity's *key* (a tuple of what its JSON is made of, compared by value
with identity first) stays the same. A build asks each table for the fragments it needs and
``dumps`` assembles the answer by joining their bytes: the cost of a poll is in proportion to
what changed, plus one cheap pass over the entities to compare their keys.

The key is computed from the records at each build rather than told by the cores' events, so
nothing that changes a record without an event (an offer made, an executor started, a pong)
can leave a stale fragment behind.

``dumps(value)`` gives exactly ``json.dumps(value, separators=(",", ":")).encode()``: a
fragment's bytes are that of its dict, serialized when it is built and never changed after
(views derive new dicts from it). A fragment is found by the identity of its dict, which it
keeps alive (so no other live object has that id).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable
from typing import Any

_encode = json.JSONEncoder(separators=(",", ":")).encode


class Fragment:
    """One entity's JSON: its dict (read-only) and its bytes."""

    __slots__ = ("_derived", "json", "value")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.json: bytes = _encode(value).encode()
        self._derived: dict[str, Fragment] | None = None


class _Entry(Fragment):
    """A table's fragment with what it was built from: the entity (kept, so its id stays its),
    the key, and the sweep it was last asked for in. One object a fragment, where a list
    beside it cost 88 bytes more (there are two per task)."""

    __slots__ = ("entity", "key", "seen")

    def __init__(self, value: Any, entity: object, key: Hashable, seen: int) -> None:
        super().__init__(value)
        self.entity = entity
        self.key = key
        self.seen = seen


class StateFragments:
    """Tables of fragments, one per kind of entity, and the index ``dumps`` reads them by."""

    def __init__(self) -> None:
        self._index: dict[int, Fragment] = {}  # id(fragment.value) -> fragment, for dumps
        self._tables: list[FragmentTable] = []

    def table(self, render: Callable[..., Any]) -> FragmentTable:
        """A table whose fragments are ``render(*args)`` of the arguments ``get`` is given."""
        table = FragmentTable(self, render)
        self._tables.append(table)
        return table

    def sweep(self) -> None:
        """Forget the fragments no ``get`` asked for since the last sweep (after a build)."""
        for table in self._tables:
            table.sweep()

    def fragment_of(self, value: Any) -> Fragment | None:
        """The fragment whose dict is ``value`` (this very object), if any."""
        return self._index.get(id(value))

    def derived(self, value: Any, name: str, derive: Callable[[Any], Any]) -> Any:
        """``derive(value)``, kept with ``value``'s fragment (computed once while it lives);
        a value with no fragment is derived anew."""
        fragment = self._index.get(id(value))
        if fragment is None:
            return derive(value)
        kept = fragment._derived
        if kept is None:
            kept = fragment._derived = {}
        found = kept.get(name)
        if found is None:
            derived = derive(value)
            if derived is value:
                return value
            found = kept[name] = Fragment(derived)
            self._index[id(derived)] = found
        return found.value

    def dumps(self, value: Any) -> bytes:
        """``json.dumps(value, separators=(",", ":")).encode()``, joining the fragments' bytes
        where ``value`` holds their dicts."""
        return b"".join(self.parts(value))

    def parts(self, value: Any) -> list[bytes]:
        """``dumps(value)`` before the join: the fragments' own bytes (not copies) between the
        pieces around them. Kept instead of the joined body, they cost a list of references,
        where the body is a second copy of every fragment (~100 MB at 100,000 tasks)."""
        parts: list[bytes] = []
        self._write(value, parts)
        return parts

    def _write(self, value: Any, parts: list[bytes]) -> None:
        if isinstance(value, dict):
            fragment = self._index.get(id(value))
            if fragment is not None:
                parts.append(fragment.json)
            elif not value:
                parts.append(b"{}")
            elif not all(type(key) is str for key in value):
                parts.append(_encode(value).encode())  # json's own conversion of the keys
            else:
                first = True
                for key, item in value.items():
                    parts.append(b"{" if first else b",")
                    first = False
                    parts.append(_encode(key).encode() + b":")
                    self._write(item, parts)
                parts.append(b"}")
        elif isinstance(value, list | tuple):
            index = self._index
            try:  # most lists here are all fragments (tasks, agents): their bytes, comma-separated
                jsons = [index[id(item)].json for item in value]
            except KeyError:
                pass  # an id in the index is a live fragment's dict: nothing else has it
            else:
                if jsons:
                    separated = [b","] * (2 * len(jsons) - 1)
                    separated[::2] = jsons
                    parts.append(b"[")
                    parts.extend(separated)
                    parts.append(b"]")
                else:
                    parts.append(b"[]")
                return
            if not value:
                parts.append(b"[]")
                return
            parts.append(b"[")
            first = True
            for item in value:
                if not first:
                    parts.append(b",")
                first = False
                fragment = index.get(id(item))
                if fragment is not None:
                    parts.append(fragment.json)
                else:
                    self._write(item, parts)
            parts.append(b"]")
        else:
            parts.append(_encode(value).encode())

    def _forget(self, fragment: Fragment) -> None:
        self._index.pop(id(fragment.value), None)
        for derived in (fragment._derived or {}).values():
            self._forget(derived)


class FragmentTable:
    """The fragments of one kind of entity, each kept while its entity's key is unchanged."""

    def __init__(self, owner: StateFragments, render: Callable[..., Any]) -> None:
        self._owner = owner
        self._render = render
        self._entries: dict[int, _Entry] = {}  # by id(entity)
        self._sweeps = 0
        self.renders = 0  # how many fragments were built (for tests and the benchmark)

    def get(self, entity: object, key: Hashable, *args: Any) -> Any:
        """The dict of ``entity``'s fragment: the one kept if ``key`` equals the key it was
        built with, else ``render(*args)``, kept under ``key``."""
        entry = self._entries.get(id(entity))
        if entry is not None and entry.entity is entity and entry.key == key:
            entry.seen = self._sweeps
            return entry.value
        if entry is not None:
            self._owner._forget(entry)
        entry = _Entry(self._render(*args), entity, key, self._sweeps)
        self.renders += 1
        self._entries[id(entity)] = entry
        self._owner._index[id(entry.value)] = entry
        return entry.value

    def many(self, entities: Iterable[Any], key_of: Callable[[Any], Hashable]) -> list[Any]:
        """``[get(e, key_of(e), e) for e in entities]``, in one loop (100,000 tasks a build)."""
        entries = self._entries
        sweeps = self._sweeps
        values = []
        for entity in entities:
            key = key_of(entity)
            entry = entries.get(id(entity))
            if entry is not None and entry.entity is entity and entry.key == key:
                entry.seen = sweeps
                values.append(entry.value)
            else:
                values.append(self.get(entity, key, entity))
        return values

    def sweep(self) -> None:
        current = self._sweeps
        stale = [ident for ident, entry in self._entries.items() if entry.seen != current]
        for ident in stale:
            self._owner._forget(self._entries.pop(ident))
        self._sweeps += 1

    def __len__(self) -> int:
        return len(self._entries)
